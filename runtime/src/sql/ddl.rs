//! DDL: CREATE/DROP TABLE, INDEX and VIEW, and `PARTITION TABLE`.
//!
//! Owns: translating column types and constraints into a `TableSchema`.
//! Must not: run inside an open transaction (the engine refuses that).

use super::bind::{lower, object_name, Binder};
use super::constraint;
use super::error::SqlError;
use super::expr::Ctx;
use super::sequence;
use super::{Engine, View};
use crate::storage::{
    CheckConstraint, ColumnDef, ColumnDefault, IndexDef, IndexKind, TableId, TableSchema,
};
use crate::types::{DataType, Value};
use sqlparser::ast;
use std::cell::RefCell;

/// Columns a table may have.
pub const TABLE_COLUMNS_MAX: usize = 1600;
/// DECIMAL without (p, s): exact with 14 places after the point.
const DECIMAL_DEFAULT: DataType = DataType::Decimal {
    precision: 28,
    scale: 14,
};
/// rust_decimal's limit.
const DECIMAL_PRECISION_MAX: u64 = 28;

pub fn map_type(t: &ast::DataType) -> Result<DataType, SqlError> {
    use ast::DataType as T;
    let len = |l: &Option<ast::CharacterLength>| -> Result<Option<u32>, SqlError> {
        match l {
            None => Ok(None),
            Some(ast::CharacterLength::IntegerLength { length, .. }) => {
                match u32::try_from(*length) {
                    Ok(n) if n >= 1 => Ok(Some(n)),
                    _ => Err(SqlError::plan(format!(
                        "length for type {t} must be between 1 and {}",
                        u32::MAX
                    ))),
                }
            }
            Some(ast::CharacterLength::Max) => Ok(None),
        }
    };
    Ok(match t {
        T::SmallInt(_) | T::Int2(_) | T::TinyInt(_) => DataType::SmallInt,
        T::Int(_) | T::Integer(_) | T::Int4(_) | T::MediumInt(_) => DataType::Integer,
        T::BigInt(_) | T::Int8(_) => DataType::BigInt,
        T::Float(_)
        | T::Real
        | T::Double(_)
        | T::DoublePrecision
        | T::Float4
        | T::Float8
        | T::Float64 => DataType::Double,
        T::Decimal(info) | T::Numeric(info) | T::Dec(info) => decimal(info, t)?,
        T::Varchar(l)
        | T::CharacterVarying(l)
        | T::CharVarying(l)
        | T::Nvarchar(l)
        | T::Char(l)
        | T::Character(l) => DataType::Varchar(len(l)?),
        T::Text | T::String(_) | T::Clob(_) => DataType::Varchar(None),
        T::Varbinary(l) => DataType::Varbinary(binary_len(l, t)?),
        T::Binary(l) | T::Bytes(l) => DataType::Varbinary(match l {
            Some(n) => Some(positive_len(*n, t)?),
            None => None,
        }),
        T::Blob(_) | T::Bytea => DataType::Varbinary(None),
        T::Bool | T::Boolean => DataType::Boolean,
        T::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
            DataType::TimestampTz
        }
        T::Timestamp(_, _) | T::Datetime(_) => DataType::Timestamp,
        T::TimestampNtz(_) => DataType::Timestamp,
        T::Date => DataType::Date,
        T::Time(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
            return Err(SqlError::unsupported(
                "type TIME WITH TIME ZONE (PostgreSQL advises against it too): use TIME, or \
                 TIMESTAMP WITH TIME ZONE",
            ))
        }
        T::Time(_, _) => DataType::Time,
        T::Interval { .. } => DataType::Interval,
        T::Uuid => DataType::Uuid,
        T::Signed | T::SignedInteger => DataType::BigInt,
        other => {
            let custom = matches!(other, T::Custom(..));
            return Err(SqlError::unsupported(
                match super::unsupported::type_advice(&other.to_string(), custom) {
                    Some(todo) => format!("type {other}: {todo}"),
                    None => format!("type {other}"),
                },
            ));
        }
    })
}

fn positive_len(n: u64, t: &ast::DataType) -> Result<u32, SqlError> {
    match u32::try_from(n) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(SqlError::plan(format!(
            "length for type {t} must be between 1 and {}",
            u32::MAX
        ))),
    }
}

fn binary_len(l: &Option<ast::BinaryLength>, t: &ast::DataType) -> Result<Option<u32>, SqlError> {
    match l {
        None | Some(ast::BinaryLength::Max) => Ok(None),
        Some(ast::BinaryLength::IntegerLength { length }) => positive_len(*length, t).map(Some),
    }
}

fn decimal(info: &ast::ExactNumberInfo, t: &ast::DataType) -> Result<DataType, SqlError> {
    let (p, s) = match info {
        ast::ExactNumberInfo::None => return Ok(DECIMAL_DEFAULT),
        ast::ExactNumberInfo::Precision(p) => (*p, 0i64),
        ast::ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
    };
    if p == 0 || p > DECIMAL_PRECISION_MAX {
        return Err(SqlError::plan(format!(
            "{t}: precision must be between 1 and {DECIMAL_PRECISION_MAX}"
        )));
    }
    if s < 0 || s as u64 > p {
        return Err(SqlError::plan(format!(
            "{t}: scale must be between 0 and the precision {p}"
        )));
    }
    Ok(DataType::Decimal {
        precision: p as u8,
        scale: s as u8,
    })
}

/// `DEFAULT e` for column `column` of type `ty` (see
/// `constraint::declare_default`).
fn default_of(
    engine: &Engine,
    e: &ast::Expr,
    ty: DataType,
    column: &str,
) -> Result<ColumnDefault, SqlError> {
    let catalog = engine.catalog();
    let b = Binder::new(&catalog);
    let cache = RefCell::new(Default::default());
    let ctx = Ctx::new(&engine.db, &[], engine.now_us, &cache);
    constraint::declare_default(&b, &ctx, e, ty, column)
}

/// `CHECK (...)` constraints for a table shaped as `schema`, named.
fn checks_of(
    engine: &Engine,
    schema: &TableSchema,
    list: &[ast::CheckConstraint],
) -> Result<Vec<CheckConstraint>, SqlError> {
    let catalog = engine.catalog();
    let mut b = Binder::new(&catalog);
    let mut out: Vec<CheckConstraint> = Vec::new();
    for c in list {
        let taken: Vec<String> = out.iter().map(|c| c.name.clone()).collect();
        out.push(constraint::declare_check(&mut b, schema, c, &taken)?.0);
    }
    Ok(out)
}

fn index_columns(schema: &TableSchema, cols: &[ast::IndexColumn]) -> Result<Vec<usize>, SqlError> {
    cols.iter()
        .map(|c| match &c.column.expr {
            ast::Expr::Identifier(id) => schema.column_index(&lower(id)).ok_or_else(|| {
                SqlError::plan(format!(
                    "column \"{}\" named in key does not exist in table \"{}\"",
                    lower(id),
                    schema.name
                ))
            }),
            other => Err(SqlError::unsupported(format!(
                "index on expression {other}"
            ))),
        })
        .collect()
}

/// A copy of table `id`'s schema, to plan a change against.
fn schema_of(engine: &Engine, id: TableId) -> Result<TableSchema, SqlError> {
    engine
        .db
        .table(id)
        .map(|t| t.schema().clone())
        .ok_or_else(|| SqlError::exec("internal: table vanished"))
}

fn key_name(table: &str, schema: &TableSchema, cols: &[usize], suffix: &str) -> String {
    let names: Vec<&str> = cols
        .iter()
        .map(|c| schema.columns[*c].name.as_str())
        .collect();
    format!("{table}_{}_{suffix}", names.join("_"))
}

pub fn create_table(engine: &mut Engine, ct: &ast::CreateTable) -> Result<(), SqlError> {
    let name = object_name(&ct.name)?;
    if ct.query.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE ... AS SELECT"));
    }
    if ct.temporary {
        // Ohm has no session-scoped tables: one made here would be every
        // session's, which a temporary table must never be.
        return Err(SqlError::unsupported(format!(
            "CREATE TEMPORARY TABLE {name}: tables are shared by every session; create an \
             ordinary table and drop it when done"
        )));
    }
    if engine.db.table_id(&name).is_some()
        || engine.views.contains_key(&name)
        || sequence::find(&engine.db, &name).is_some()
    {
        if ct.if_not_exists {
            return Ok(());
        }
        return Err(SqlError::plan(format!(
            "relation \"{name}\" already exists"
        )));
    }
    if sequence::is_internal(&name) {
        return Err(SqlError::plan(format!(
            "the name \"{name}\" is Ohm's own (it keeps sequences there)"
        )));
    }
    if ct.columns.is_empty() || ct.columns.len() > TABLE_COLUMNS_MAX {
        return Err(SqlError::plan(format!(
            "table \"{name}\" must have 1 to {TABLE_COLUMNS_MAX} columns"
        )));
    }
    let mut schema = TableSchema {
        name: name.clone(),
        columns: Vec::new(),
        primary_key: None,
        indexes: Vec::new(),
        partition_column: None,
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    let mut pk: Option<Vec<usize>> = None;
    let mut uniques: Vec<Vec<usize>> = Vec::new();
    let mut fks: Vec<ast::ForeignKeyConstraint> = Vec::new();
    let mut checks: Vec<ast::CheckConstraint> = Vec::new();
    let mut seqs: Vec<sequence::SeqDef> = Vec::new();
    for (i, c) in ct.columns.iter().enumerate() {
        let cname = lower(&c.name);
        if schema.column_index(&cname).is_some() {
            return Err(SqlError::plan(format!(
                "column \"{cname}\" specified more than once"
            )));
        }
        let serial = sequence::serial(&name, &cname, &c.data_type);
        let ty = match &serial {
            Some((ty, _)) => *ty,
            None => map_type(&c.data_type)?,
        };
        let mut col = ColumnDef {
            name: cname.clone(),
            ty,
            nullable: true,
            default: None,
        };
        if let Some((_, def)) = serial {
            // SERIAL: NOT NULL DEFAULT nextval('t_c_seq'), as in PostgreSQL.
            col.nullable = false;
            col.default = Some(ColumnDefault::Expr(sequence::default_text(&def.name)));
            seqs.push(def);
        }
        for opt in &c.options {
            match &opt.option {
                ast::ColumnOption::Null => {}
                ast::ColumnOption::NotNull => col.nullable = false,
                ast::ColumnOption::Default(e) => {
                    col.default = Some(default_of(engine, e, ty, &cname)?)
                }
                ast::ColumnOption::Check(c) => checks.push(c.clone()),
                ast::ColumnOption::Generated {
                    generated_as,
                    sequence_options,
                    generation_expr: None,
                    ..
                } => {
                    let always = match generated_as {
                        ast::GeneratedAs::Always => true,
                        ast::GeneratedAs::ByDefault => false,
                        ast::GeneratedAs::ExpStored => {
                            return Err(SqlError::unsupported(format!(
                                "column \"{cname}\": GENERATED ... STORED columns"
                            )))
                        }
                    };
                    let opts = sequence_options.as_deref().unwrap_or(&[]);
                    let def = sequence::identity(&name, &cname, ty, always, opts)?;
                    col.nullable = false;
                    col.default = Some(ColumnDefault::Expr(sequence::default_text(&def.name)));
                    seqs.push(def);
                }
                ast::ColumnOption::PrimaryKey(_) => {
                    if pk.replace(vec![i]).is_some() {
                        return Err(SqlError::plan(format!(
                            "multiple primary keys for table \"{name}\" are not allowed"
                        )));
                    }
                }
                ast::ColumnOption::Unique(_) => uniques.push(vec![i]),
                ast::ColumnOption::ForeignKey(f) => {
                    let mut f = f.clone();
                    f.columns = vec![c.name.clone()];
                    fks.push(f);
                }
                other => return Err(SqlError::unsupported(format!("column option {other}"))),
            }
        }
        schema.columns.push(col);
    }
    for tc in &ct.constraints {
        match tc {
            ast::TableConstraint::PrimaryKey(p) => {
                let cols = index_columns(&schema, &p.columns)?;
                if pk.replace(cols).is_some() {
                    return Err(SqlError::plan(format!(
                        "multiple primary keys for table \"{name}\" are not allowed"
                    )));
                }
            }
            ast::TableConstraint::Unique(u) => uniques.push(index_columns(&schema, &u.columns)?),
            ast::TableConstraint::ForeignKey(f) => fks.push(f.clone()),
            ast::TableConstraint::Check(c) => checks.push(c.clone()),
            other => return Err(SqlError::unsupported(format!("table constraint {other}"))),
        }
    }
    if let Some(cols) = pk {
        for c in &cols {
            schema.columns[*c].nullable = false;
        }
        schema.indexes.push(crate::storage::primary_key_index(
            &format!("{name}_pkey"),
            cols,
        ));
        schema.primary_key = Some(0);
    }
    for cols in uniques {
        let iname = key_name(&name, &schema, &cols, "key");
        schema.indexes.push(IndexDef {
            name: iname,
            columns: cols,
            unique: true,
            kind: IndexKind::Hash,
        });
    }
    for f in &fks {
        let fk = super::fk::declare(&engine.db, &schema, f)?;
        schema.foreign_keys.push(fk);
    }
    schema.checks = checks_of(engine, &schema, &checks)?;
    if sequence::all(&engine.db).len() + seqs.len() > sequence::SEQUENCES_MAX {
        return Err(SqlError::plan(format!(
            "table \"{name}\" needs {} sequences, past the {} a tenant may have",
            seqs.len(),
            sequence::SEQUENCES_MAX
        )));
    }
    for d in &seqs {
        if sequence::find(&engine.db, &d.name).is_some() || engine.db.table_id(&d.name).is_some() {
            return Err(SqlError::plan(format!(
                "relation \"{}\" already exists: a SERIAL or identity column of \"{name}\" \
                 needs that name for its sequence",
                d.name
            )));
        }
    }
    engine.db.create_table(schema)?;
    for d in seqs {
        sequence::create(&mut engine.db, d, false)?;
    }
    Ok(())
}

/// Refuses DDL on the tables Ohm keeps sequences in.
fn not_internal(name: &str) -> Result<(), SqlError> {
    if sequence::is_internal(name) {
        return Err(SqlError::plan(format!(
            "table \"{name}\" is Ohm's own (it keeps sequences there); DDL may not change it"
        )));
    }
    Ok(())
}

pub fn create_index(engine: &mut Engine, ci: &ast::CreateIndex) -> Result<(), SqlError> {
    let tname = object_name(&ci.table_name)?;
    not_internal(&tname)?;
    let id = engine
        .db
        .table_id(&tname)
        .ok_or_else(|| SqlError::plan(format!("relation \"{tname}\" does not exist")))?;
    let schema = schema_of(engine, id)?;
    let cols = index_columns(&schema, &ci.columns)?;
    let name = match &ci.name {
        Some(n) => object_name(n)?,
        None => key_name(&tname, &schema, &cols, "idx"),
    };
    let exists = engine.db.tables().any(|t| {
        t.schema()
            .indexes
            .iter()
            .any(|ix| ix.name.eq_ignore_ascii_case(&name))
    });
    if exists {
        if ci.if_not_exists {
            return Ok(());
        }
        return Err(SqlError::plan(format!(
            "relation \"{name}\" already exists"
        )));
    }
    if ci.predicate.is_some() || !ci.include.is_empty() {
        return Err(SqlError::unsupported(
            "partial or covering (INCLUDE) indexes",
        ));
    }
    let kind = match &ci.using {
        Some(ast::IndexType::Hash) => IndexKind::Hash,
        Some(ast::IndexType::BTree) | None => IndexKind::Ordered,
        Some(other) => return Err(SqlError::unsupported(format!("index type {other}"))),
    };
    engine.db.create_index(
        id,
        IndexDef {
            name,
            columns: cols,
            unique: ci.unique,
            kind,
        },
    )?;
    Ok(())
}

pub fn create_view(engine: &mut Engine, cv: &ast::CreateView) -> Result<(), SqlError> {
    let name = object_name(&cv.name)?;
    not_internal(&name)?;
    if cv.materialized {
        return Err(SqlError::unsupported("materialized views"));
    }
    if engine.db.table_id(&name).is_some() || (engine.views.contains_key(&name) && !cv.or_replace) {
        if cv.if_not_exists {
            return Ok(());
        }
        return Err(SqlError::plan(format!(
            "relation \"{name}\" already exists"
        )));
    }
    if sequence::query_takes_values(&cv.query) {
        // A read through the view would take values no log records.
        return Err(SqlError::unsupported(format!(
            "view \"{name}\" calls nextval() or setval(): call it in the statement itself"
        )));
    }
    let columns: Vec<String> = cv.columns.iter().map(|c| lower(&c.name)).collect();
    // Plan it now so a broken view is refused at creation.
    {
        let catalog = engine.catalog();
        let mut b = Binder::new(&catalog);
        let plan = super::select::plan_query(&mut b, &cv.query)?;
        if b.param_count() > 0 {
            return Err(SqlError::plan(format!(
                "view \"{name}\" cannot use parameters"
            )));
        }
        if columns.len() > plan.columns.len() {
            return Err(SqlError::plan(format!(
                "view \"{name}\" names more columns than its query has"
            )));
        }
    }
    engine.views.insert(
        name.clone(),
        View {
            name,
            query: (*cv.query).clone(),
            columns,
        },
    );
    Ok(())
}

pub fn drop(
    engine: &mut Engine,
    object_type: &ast::ObjectType,
    if_exists: bool,
    names: &[ast::ObjectName],
) -> Result<(), SqlError> {
    if *object_type == ast::ObjectType::Table {
        // A table another one's foreign key references stays (as
        // PostgreSQL's DROP without CASCADE), unless both go now.
        let dropped = names
            .iter()
            .map(object_name)
            .collect::<Result<Vec<_>, _>>()?;
        for name in &dropped {
            // A SERIAL's sequence goes with its table: not while another
            // table's default takes values from it.
            sequence::owned_droppable(&engine.db, name, None, &dropped)?;
            let by = super::fk::referencing(&engine.db, name)
                .find(|(child, _)| !dropped.iter().any(|d| d.eq_ignore_ascii_case(&child.name)));
            if let Some((child, fk)) = by {
                return Err(SqlError::plan(format!(
                    "cannot drop table \"{name}\" because foreign key \"{}\" of table \"{}\" \
                     references it: drop that table or its foreign key first",
                    fk.name, child.name
                )));
            }
        }
    }
    for n in names {
        let name = object_name(n)?;
        match object_type {
            ast::ObjectType::Table if sequence::is_internal(&name) => {
                return Err(SqlError::plan(format!(
                    "table \"{name}\" is Ohm's own (it keeps sequences there): DROP SEQUENCE \
                     drops a sequence"
                )))
            }
            ast::ObjectType::Table => match engine.db.table_id(&name) {
                Some(id) => {
                    engine.db.drop_table(id)?;
                    // A SERIAL's sequence goes with its table.
                    sequence::drop_owned(&mut engine.db, &name, None)?;
                }
                None if if_exists => {}
                None => return Err(SqlError::plan(format!("table \"{name}\" does not exist"))),
            },
            ast::ObjectType::Sequence => sequence::drop(&mut engine.db, &name, if_exists)?,
            ast::ObjectType::View => {
                if engine.views.remove(&name).is_none() && !if_exists {
                    return Err(SqlError::plan(format!("view \"{name}\" does not exist")));
                }
            }
            ast::ObjectType::Index => {
                let owner = engine
                    .db
                    .tables()
                    .find(|t| {
                        t.schema()
                            .indexes
                            .iter()
                            .any(|ix| ix.name.eq_ignore_ascii_case(&name))
                    })
                    .map(|t| t.id());
                if let Some(id) = owner {
                    if let Some(t) = engine.db.table(id) {
                        not_internal(&t.schema().name)?;
                    }
                    super::fk::index_unneeded(&engine.db, id, &name)?;
                }
                match owner {
                    Some(id) => engine.db.drop_index(id, &name)?,
                    None if if_exists => {}
                    None => return Err(SqlError::plan(format!("index \"{name}\" does not exist"))),
                }
            }
            other => return Err(SqlError::unsupported(format!("DROP {other}"))),
        }
    }
    Ok(())
}

/// `PARTITION TABLE t ON COLUMN c` (VoltDB's DDL; not in sqlparser's grammar).
/// Returns None if `sql` is not that statement.
pub fn parse_partition(sql: &str) -> Option<Result<(String, String), SqlError>> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    if words.first().map(|w| w.to_ascii_uppercase()) != Some("PARTITION".into()) {
        return None;
    }
    let upper: Vec<String> = words
        .iter()
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    if upper.len() == 6 && upper[1] == "TABLE" && upper[3] == "ON" && upper[4] == "COLUMN" {
        let t = words[2].to_ascii_lowercase();
        let c = words[5].trim_end_matches(';').to_ascii_lowercase();
        return Some(Ok((t, c)));
    }
    Some(Err(SqlError::Parse(
        "expected PARTITION TABLE <table> ON COLUMN <column>".into(),
    )))
}

pub fn partition(engine: &mut Engine, table: &str, column: &str) -> Result<(), SqlError> {
    not_internal(table)?;
    let id = engine
        .db
        .table_id(table)
        .ok_or_else(|| SqlError::plan(format!("table \"{table}\" does not exist")))?;
    let t = engine
        .db
        .table(id)
        .ok_or_else(|| SqlError::exec("internal: table vanished"))?;
    let c = t.schema().column_index(column).ok_or_else(|| {
        SqlError::plan(format!(
            "column \"{column}\" does not exist in table \"{table}\""
        ))
    })?;
    // Its foreign keys, and those that reference it, must stay checkable
    // within a partition once it is partitioned.
    let mut after = t.schema().clone();
    after.partition_column = Some(c);
    for fk in &after.foreign_keys {
        let parent = if fk.parent.eq_ignore_ascii_case(&after.name) {
            &after
        } else {
            match engine.db.table_by_name(&fk.parent) {
                Some(p) => p.schema(),
                None => continue,
            }
        };
        super::fk::enforceable(&after, fk, parent)?;
    }
    for (child, fk) in super::fk::referencing(&engine.db, &after.name) {
        let child = if child.name.eq_ignore_ascii_case(&after.name) {
            &after
        } else {
            child
        };
        super::fk::enforceable(child, fk, &after)?;
    }
    engine.db.set_partition_column(id, c)?;
    Ok(())
}

/// `CREATE SCHEMA`: a tenant has one schema, `public`, so only `CREATE
/// SCHEMA IF NOT EXISTS public` (a no-op) is accepted.
pub fn create_schema(name: &ast::SchemaName, if_not_exists: bool) -> Result<(), SqlError> {
    let named = match name {
        ast::SchemaName::Simple(n) | ast::SchemaName::NamedAuthorization(n, _) => n.to_string(),
        ast::SchemaName::UnnamedAuthorization(id) => id.value.clone(),
    };
    let public = named.eq_ignore_ascii_case(super::bind::SCHEMA_PUBLIC);
    match (public, if_not_exists) {
        (true, true) => Ok(()),
        (true, false) => Err(SqlError::plan("schema \"public\" already exists")),
        (false, _) => Err(SqlError::unsupported(format!(
            "CREATE SCHEMA {named}: a tenant has one schema, public; create the tables there \
             (a tenant is Ohm's unit of separation)"
        ))),
    }
}

/// `ALTER TABLE`, one change per statement: ADD/DROP CONSTRAINT (PRIMARY
/// KEY, UNIQUE, FOREIGN KEY, CHECK), ADD/DROP/RENAME COLUMN and ALTER
/// COLUMN SET/DROP DEFAULT and NOT NULL.
///
/// DDL runs on every partition, each holding its own rows of a partitioned
/// table, and must succeed or fail alike on all of them. So a change whose
/// outcome depends on the rows (a new key or CHECK must hold, SET NOT NULL
/// must find no NULL) is refused on a partitioned table; on a table not
/// partitioned every partition holds the same rows.
pub fn alter_table(engine: &mut Engine, at: &ast::AlterTable) -> Result<(), SqlError> {
    use ast::AlterTableOperation as Op;
    let name = object_name(&at.name)?;
    not_internal(&name)?;
    let Some(id) = engine.db.table_id(&name) else {
        if at.if_exists {
            return Ok(());
        }
        return Err(SqlError::plan(format!(
            "relation \"{name}\" does not exist"
        )));
    };
    // One change per statement: DDL is not transactional, so a second one
    // failing would leave the first applied.
    let [op] = at.operations.as_slice() else {
        return Err(SqlError::unsupported(format!(
            "ALTER TABLE {name} with {} changes: give one change per ALTER TABLE",
            at.operations.len()
        )));
    };
    let schema = schema_of(engine, id)?;
    let partitioned = schema.partition_column.is_some();
    let rows_decide = matches!(
        op,
        Op::AddConstraint { .. }
            | Op::AlterColumn {
                op: ast::AlterColumnOperation::SetNotNull,
                ..
            }
    );
    if partitioned && rows_decide {
        return Err(SqlError::unsupported(format!(
            "ALTER TABLE {name} {op} on a partitioned table: whether it holds depends on each \
             partition's rows, and partitions must never disagree; declare it in CREATE TABLE, \
             before PARTITION TABLE"
        )));
    }
    let column = |id: &ast::Ident| {
        let c = lower(id);
        schema
            .column_index(&c)
            .map(|i| (i, c.clone()))
            .ok_or_else(|| {
                SqlError::plan(format!(
                    "column \"{c}\" of relation \"{name}\" does not exist"
                ))
            })
    };
    match op {
        Op::AddConstraint { constraint, .. } => add_constraint(engine, id, &schema, constraint)?,
        Op::DropConstraint {
            if_exists,
            name: cname,
            drop_behavior,
        } => {
            no_cascade(drop_behavior.as_ref(), "DROP CONSTRAINT")?;
            drop_constraint(engine, id, &schema, &lower(cname), *if_exists)?
        }
        Op::AddColumn {
            if_not_exists,
            column_def,
            column_position,
            ..
        } => {
            if column_position.is_some() {
                return Err(SqlError::unsupported(
                    "ADD COLUMN ... FIRST/AFTER: a new column goes last",
                ));
            }
            if *if_not_exists && schema.column_index(&lower(&column_def.name)).is_some() {
                return Ok(());
            }
            add_column(engine, id, &schema, column_def)?
        }
        Op::DropColumn {
            column_names,
            if_exists,
            drop_behavior,
            ..
        } => {
            no_cascade(drop_behavior.as_ref(), "DROP COLUMN")?;
            let [c] = column_names.as_slice() else {
                return Err(SqlError::unsupported(
                    "DROP COLUMN of several columns: drop one per ALTER TABLE",
                ));
            };
            if *if_exists && schema.column_index(&lower(c)).is_none() {
                return Ok(());
            }
            let (i, c) = column(c)?;
            let checks = constraint::without_column(&schema, &c)?;
            sequence::owned_droppable(&engine.db, &name, Some(&c), &[])?;
            engine.db.drop_column(id, i, checks)?;
            sequence::drop_owned(&mut engine.db, &name, Some(&c))?;
        }
        Op::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let (i, from) = column(old_column_name)?;
            let to = lower(new_column_name);
            let checks = constraint::rename_column(&schema, &from, &to)?;
            engine.db.rename_column(id, i, &to, checks)?;
            sequence::rename_owner(&mut engine.db, &name, &from, &to)?;
        }
        Op::AlterColumn { column_name, op } => {
            let (i, c) = column(column_name)?;
            use ast::AlterColumnOperation as A;
            match op {
                A::SetNotNull => engine.db.set_column_nullable(id, i, false)?,
                A::DropNotNull => engine.db.set_column_nullable(id, i, true)?,
                A::SetDefault { value } => {
                    let d = default_of(engine, value, schema.columns[i].ty, &c)?;
                    engine.db.set_column_default(id, i, Some(d))?
                }
                A::DropDefault => engine.db.set_column_default(id, i, None)?,
                A::SetDataType { .. } => {
                    return Err(SqlError::unsupported(format!(
                        "ALTER COLUMN {c} TYPE: add a column of the new type, UPDATE it from \
                         \"{c}\", then drop \"{c}\""
                    )))
                }
                other => {
                    return Err(SqlError::unsupported(format!(
                        "ALTER TABLE {name} ALTER COLUMN {c} {other}"
                    )))
                }
            }
        }
        other => return Err(SqlError::unsupported(format!("ALTER TABLE {name} {other}"))),
    }
    Ok(())
}

fn no_cascade(b: Option<&ast::DropBehavior>, what: &str) -> Result<(), SqlError> {
    match b {
        Some(ast::DropBehavior::Cascade) => Err(SqlError::unsupported(format!(
            "{what} ... CASCADE: drop what depends on it first"
        ))),
        _ => Ok(()),
    }
}

fn add_constraint(
    engine: &mut Engine,
    id: TableId,
    schema: &TableSchema,
    constraint: &ast::TableConstraint,
) -> Result<(), SqlError> {
    let name = &schema.name;
    match constraint {
        ast::TableConstraint::PrimaryKey(p) => {
            let cols = index_columns(schema, &p.columns)?;
            let iname = p
                .name
                .as_ref()
                .map_or_else(|| format!("{name}_pkey"), lower);
            engine.db.add_primary_key(id, &iname, cols)?;
        }
        ast::TableConstraint::Unique(u) => {
            let cols = index_columns(schema, &u.columns)?;
            let iname = u
                .name
                .as_ref()
                .map_or_else(|| key_name(name, schema, &cols, "key"), lower);
            engine.db.create_index(
                id,
                IndexDef {
                    name: iname,
                    columns: cols,
                    unique: true,
                    kind: IndexKind::Hash,
                },
            )?;
        }
        ast::TableConstraint::ForeignKey(f) => {
            let fk = super::fk::declare(&engine.db, schema, f)?;
            // pg_dump adds its keys after the data: the rows must hold.
            super::fk::validate(&engine.db, schema, &fk)?;
            engine.db.add_foreign_key(id, fk)?;
        }
        ast::TableConstraint::Check(c) => {
            let check = {
                let catalog = engine.catalog();
                let mut b = Binder::new(&catalog);
                let (check, bound) = constraint::declare_check(&mut b, schema, c, &[])?;
                let bound = [bound];
                let cache = RefCell::new(Default::default());
                let ctx = Ctx::new(&engine.db, &[], engine.now_us, &cache);
                let t = engine
                    .db
                    .table(id)
                    .ok_or_else(|| SqlError::exec("internal: table vanished"))?;
                let mut rows = t.rows();
                while let Some((_, row)) = rows.next() {
                    super::interrupt::tick()?;
                    if constraint::failing(&bound, &ctx, row)?.is_some() {
                        return Err(SqlError::plan(format!(
                            "check constraint \"{}\" of relation \"{name}\" is violated by \
                             some row",
                            check.name
                        )));
                    }
                }
                check
            };
            engine.db.add_check(id, check)?;
        }
        other => {
            return Err(SqlError::unsupported(format!(
                "ALTER TABLE {name} ADD {other}"
            )))
        }
    }
    Ok(())
}

/// `DROP CONSTRAINT cname`: a CHECK or FOREIGN KEY, or the index behind a
/// UNIQUE or PRIMARY KEY (with the `_range` index a primary key made before
/// it became one ordered index, in catalogs that still hold one).
fn drop_constraint(
    engine: &mut Engine,
    id: TableId,
    schema: &TableSchema,
    cname: &str,
    if_exists: bool,
) -> Result<(), SqlError> {
    if engine.db.drop_constraint(id, cname)? {
        return Ok(());
    }
    let unique = schema
        .indexes
        .iter()
        .position(|ix| ix.unique && ix.name.eq_ignore_ascii_case(cname));
    let Some(pos) = unique else {
        if if_exists {
            return Ok(());
        }
        return Err(SqlError::plan(format!(
            "constraint \"{cname}\" of relation \"{}\" does not exist",
            schema.name
        )));
    };
    super::fk::index_unneeded(&engine.db, id, cname)?;
    let range = format!("{cname}_range");
    let companion = schema.primary_key == Some(pos)
        && schema
            .indexes
            .iter()
            .any(|ix| !ix.unique && ix.name.eq_ignore_ascii_case(&range));
    engine.db.drop_index(id, cname)?;
    if companion {
        engine.db.drop_index(id, &range)?;
    }
    Ok(())
}

/// `ADD COLUMN name type [NULL | NOT NULL | DEFAULT e]`: existing rows take
/// the default (or NULL).
fn add_column(
    engine: &mut Engine,
    id: TableId,
    schema: &TableSchema,
    def: &ast::ColumnDef,
) -> Result<(), SqlError> {
    let cname = lower(&def.name);
    let ty = map_type(&def.data_type)?;
    let mut col = ColumnDef {
        name: cname.clone(),
        ty,
        nullable: true,
        default: None,
    };
    if sequence::serial(&schema.name, &cname, &def.data_type).is_some() {
        return Err(SqlError::unsupported(format!(
            "ADD COLUMN {cname} SERIAL: the rows already there would each need a value; add an \
             INTEGER column, CREATE SEQUENCE, SET DEFAULT nextval(...), then fill it with UPDATE"
        )));
    }
    for opt in &def.options {
        match &opt.option {
            ast::ColumnOption::Null => {}
            ast::ColumnOption::NotNull => col.nullable = false,
            ast::ColumnOption::Default(e) => col.default = Some(default_of(engine, e, ty, &cname)?),
            other => {
                return Err(SqlError::unsupported(format!(
                    "ADD COLUMN {cname} ... {other}: add the column, then ALTER TABLE {} ADD \
                     CONSTRAINT",
                    schema.name
                )))
            }
        }
    }
    let fill = match &col.default {
        None => Value::Null,
        Some(ColumnDefault::Value(v)) => v.clone(),
        Some(ColumnDefault::Expr(e)) => {
            // The rows there would take this statement's time or sequence
            // values, which a replica replaying the DDL could not give
            // them alike.
            return Err(SqlError::unsupported(format!(
                "ADD COLUMN {cname} ... DEFAULT {e}: a default computed per row (one that reads \
                 the clock or a sequence) cannot fill the rows already there; add the column, \
                 SET DEFAULT {e}, then UPDATE {} SET {cname} = ...",
                schema.name
            )));
        }
    };
    if schema.partition_column.is_some() && !col.nullable && fill.is_null() {
        return Err(SqlError::unsupported(format!(
            "ADD COLUMN {cname} ... NOT NULL without a DEFAULT on a partitioned table: whether \
             it succeeds would depend on each partition's rows; give it a DEFAULT"
        )));
    }
    engine.db.add_column(id, col, fill, TABLE_COLUMNS_MAX)?;
    Ok(())
}

/// `ALTER SEQUENCE name OWNED BY table.column | NONE`: the sequence is
/// dropped with that column (or its table) from now on.
pub fn sequence_owned_by(
    engine: &mut Engine,
    name: &str,
    owner: Option<(String, String)>,
) -> Result<(), SqlError> {
    if let Some((t, c)) = &owner {
        let schema = engine
            .db
            .table_by_name(t)
            .ok_or_else(|| SqlError::plan(format!("relation \"{t}\" does not exist")))?
            .schema();
        if schema.column_index(c).is_none() {
            return Err(SqlError::plan(format!(
                "column \"{c}\" of relation \"{t}\" does not exist"
            )));
        }
    }
    sequence::set_owner(&mut engine.db, name, owner.map(|(t, c)| format!("{t}.{c}")))
}
