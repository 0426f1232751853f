//! Sequences: `CREATE/DROP SEQUENCE`, `SERIAL` and `GENERATED ... AS
//! IDENTITY` columns, `nextval()` and `setval()`, with values unique across
//! the cluster, not per partition.
//!
//! A sequence lives in two tables Ohm keeps in the tenant's database, so
//! that it is logged, replicated, snapshotted and rolled back as rows are:
//!
//! ```text
//!   ohm_sequences       (replicated: the same on every partition; DDL writes it)
//!     name | start | increment | min | max | owner ("table.column") | always
//!   ohm_sequence_state  (partitioned on part_key: one row per sequence and partition)
//!     name | part_key | last
//! ```
//!
//! Each partition gives out only values that hash to itself (the partition
//! function of `catalog::partition_for`): from the last value it gave, it
//! steps by the increment until it meets one it owns. No two partitions can
//! give the same value, with no coordination; a value given inside a
//! single-partition call belongs to that partition, so a row keyed by it
//! stays there; and a database on its own (one partition) counts 1, 2, 3 as
//! PostgreSQL does. Values are increasing per partition, not across them,
//! and have gaps (as PostgreSQL's do with a cache). The coordinator's
//! scratch copy, which holds every partition, takes each value from the
//! partition furthest behind.
//! `part_key` is the smallest number that hashes to its partition, so the
//! state row is written where it belongs.
//!
//! A statement's `nextval()`s are evaluated while the database is borrowed
//! for reading: the values are noted in `Database::sequence_cursor` and
//! written to the state rows by `flush` at the end of the statement, in
//! its transaction (so a rolled-back statement gives its values back).
//!
//! Must not: let anything but DDL and `nextval`/`setval` change the two
//! tables (ddl.rs and dml.rs refuse them by `is_internal`), or give a
//! value outside a statement the node logs as a write (`nextval` is
//! refused in views, so only statements that name it call it, and those
//! are classified as writes).

use super::bind::{lower, object_name, Binder, Mode};
use super::error::SqlError;
use super::expr::Expr;
use crate::catalog::partition_for;
use crate::storage::{ColumnDef, ColumnDefault, Database, IndexDef, TableId, TableSchema};
use crate::types::{DataType, Value};
use sqlparser::ast;
use std::ops::ControlFlow;

/// The table of sequence definitions (replicated).
pub const DEFS: &str = "ohm_sequences";
/// The table of each partition's last value per sequence (partitioned).
pub const STATE: &str = "ohm_sequence_state";
/// Values `nextval` steps over, per partition, looking for one its
/// partition owns (it needs `partitions` steps on average).
const PROBES_PER_PARTITION: u64 = 64;
/// Sequences a tenant may have.
pub const SEQUENCES_MAX: usize = 10_000;

/// Whether `name` is one of the tables Ohm keeps sequences in.
pub fn is_internal(name: &str) -> bool {
    name.eq_ignore_ascii_case(DEFS) || name.eq_ignore_ascii_case(STATE)
}

/// A sequence's definition (a row of `ohm_sequences`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeqDef {
    pub name: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    /// `table.column` whose default it is, dropped with it.
    pub owner: Option<String>,
    /// `GENERATED ALWAYS AS IDENTITY`: an INSERT may not give the value.
    pub always: bool,
}

fn column(name: &str, ty: DataType, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ty,
        nullable,
        default: None,
    }
}

fn pk(name: &str, columns: Vec<usize>) -> IndexDef {
    crate::storage::primary_key_index(&format!("{name}_pkey"), columns)
}

/// Creates the two tables if this database has none yet.
fn ensure_tables(db: &mut Database) -> Result<(TableId, TableId), SqlError> {
    let text = DataType::Varchar(None);
    if db.table_id(DEFS).is_none() {
        db.create_table(TableSchema {
            name: DEFS.into(),
            columns: vec![
                column("name", text, false),
                column("start", DataType::BigInt, false),
                column("increment", DataType::BigInt, false),
                column("min", DataType::BigInt, false),
                column("max", DataType::BigInt, false),
                column("owner", text, true),
                column("always", DataType::Boolean, false),
            ],
            primary_key: Some(0),
            indexes: vec![pk(DEFS, vec![0])],
            partition_column: None,
            foreign_keys: Vec::new(),
            checks: Vec::new(),
        })?;
    }
    if db.table_id(STATE).is_none() {
        db.create_table(TableSchema {
            name: STATE.into(),
            columns: vec![
                column("name", text, false),
                column("part_key", DataType::BigInt, false),
                column("last", DataType::BigInt, false),
            ],
            primary_key: Some(0),
            indexes: vec![pk(STATE, vec![0, 1])],
            partition_column: Some(1),
            foreign_keys: Vec::new(),
            checks: Vec::new(),
        })?;
    }
    let id = |n: &str| {
        db.table_id(n)
            .ok_or_else(|| SqlError::exec(format!("internal: table {n} vanished")))
    };
    Ok((id(DEFS)?, id(STATE)?))
}

/// A sequence's name as `nextval('...')` and DDL give it: `public.` may
/// qualify it; unquoted, it is lower-cased.
pub fn name_of(text: &str) -> String {
    let t = text.trim();
    let t = match t.split_once('.') {
        Some((schema, rest)) if schema.eq_ignore_ascii_case(super::bind::SCHEMA_PUBLIC) => rest,
        _ => t,
    };
    match t.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => t.to_ascii_lowercase(),
    }
}

fn text_of(v: &Value) -> Option<&str> {
    match v {
        Value::Text(t) => Some(t.as_str()),
        _ => None,
    }
}

fn row_def(row: &[Value]) -> Option<SeqDef> {
    let int = |i: usize| match row.get(i)? {
        Value::Int(v) => Some(*v),
        _ => None,
    };
    Some(SeqDef {
        name: text_of(row.first()?)?.to_string(),
        start: int(1)?,
        increment: int(2)?,
        min: int(3)?,
        max: int(4)?,
        owner: text_of(row.get(5)?).map(str::to_string),
        always: matches!(row.get(6)?, Value::Bool(true)),
    })
}

/// `def` as its row of `ohm_sequences`.
fn def_row(def: &SeqDef) -> crate::storage::Row {
    vec![
        Value::text(&def.name),
        Value::Int(def.start),
        Value::Int(def.increment),
        Value::Int(def.min),
        Value::Int(def.max),
        def.owner.as_deref().map_or(Value::Null, Value::text),
        Value::Bool(def.always),
    ]
    .into()
}

/// Whether `def` is owned by column `column` of `table` (any of its
/// columns if None).
fn owned_by(def: &SeqDef, table: &str, column: Option<&str>) -> bool {
    def.owner
        .as_deref()
        .and_then(|o| o.split_once('.'))
        .is_some_and(|(t, c)| {
            t.eq_ignore_ascii_case(table) && column.is_none_or(|col| c.eq_ignore_ascii_case(col))
        })
}

/// The definition of sequence `name`, if there is one.
pub fn find(db: &Database, name: &str) -> Option<SeqDef> {
    let t = db.table_by_name(DEFS)?;
    let id = t.index_get(0, &[Value::text(name)])?;
    row_def(&t.get(id)?)
}

/// Every sequence's definition.
pub fn all(db: &Database) -> Vec<SeqDef> {
    db.table_by_name(DEFS)
        .map(|t| t.scan().filter_map(|(_, r)| row_def(&r)).collect())
        .unwrap_or_default()
}

fn get(db: &Database, name: &str) -> Result<SeqDef, SqlError> {
    find(db, name).ok_or_else(|| {
        SqlError::plan(format!(
            "relation \"{name}\" does not exist (no such sequence)"
        ))
    })
}

/// The smallest non-negative number partition `q` of `n` owns: the state
/// row of `q` is keyed by it, so it is written on `q`.
pub fn key_of(q: u32, n: u32) -> i64 {
    (0..)
        .find(|k: &i64| partition_for(&Value::Int(*k), n).0 == q)
        .expect("every partition owns some number")
}

/// The value after `last` (or the first, `start`, when None) that
/// partition `q` of `n` owns.
fn after(def: &SeqDef, last: Option<i64>, q: u32, n: u32) -> Result<i64, SqlError> {
    let limit = || {
        SqlError::exec(format!(
            "nextval: reached {} value of sequence \"{}\" ({})",
            if def.increment > 0 {
                "maximum"
            } else {
                "minimum"
            },
            def.name,
            if def.increment > 0 { def.max } else { def.min }
        ))
    };
    let mut v = match last {
        None => def.start,
        Some(l) => l.checked_add(def.increment).ok_or_else(limit)?,
    };
    for _ in 0..PROBES_PER_PARTITION * u64::from(n) {
        if v > def.max || v < def.min {
            return Err(limit());
        }
        if n == 1 || partition_for(&Value::Int(v), n).0 == q {
            return Ok(v);
        }
        v = v.checked_add(def.increment).ok_or_else(limit)?;
    }
    Err(SqlError::exec(format!(
        "nextval: sequence \"{}\" found no value partition {q} owns in {} steps",
        def.name,
        PROBES_PER_PARTITION * u64::from(n)
    )))
}

/// The last value partition `q` gave from `name`, as of this statement.
fn last(db: &Database, name: &str, q: u32) -> Option<i64> {
    if let Some(v) = db
        .sequence_cursor()
        .borrow()
        .last
        .get(&(name.to_string(), q))
    {
        return Some(*v);
    }
    let n = db.placement().partitions;
    let t = db.table_by_name(STATE)?;
    let id = t.index_get(0, &[Value::text(name), Value::Int(key_of(q, n))])?;
    match t.get(id)?.get(2)? {
        Value::Int(v) => Some(*v),
        _ => None,
    }
}

/// `nextval(name)`: this partition's next value (a database holding
/// every partition takes them in turn).
pub fn next(db: &Database, name: &str) -> Result<i64, SqlError> {
    let def = get(db, name)?;
    let place = db.placement();
    let (q, last) = match place.partition {
        Some(p) => (p, last(db, name, p)),
        // The partition furthest behind gives the next value: the values
        // come out close to in order, and rows keyed by them spread over
        // every partition even one row per statement.
        None => (0..place.partitions)
            .map(|q| (q, last(db, name, q)))
            .min_by_key(|(_, l)| l.map(|v| v.saturating_mul(def.increment.signum())))
            .expect("a node has at least one partition"),
    };
    let v = after(&def, last, q, place.partitions)?;
    db.sequence_cursor()
        .borrow_mut()
        .last
        .insert((def.name, q), v);
    Ok(v)
}

/// `setval(name, v, called)`: the next value is the first after `v` (or
/// `v` itself, if not `called`) on every partition. It changes every
/// partition's state, so a single-partition call may not make it.
pub fn set(db: &Database, name: &str, v: i64, called: bool) -> Result<i64, SqlError> {
    let def = get(db, name)?;
    if v < def.min || v > def.max {
        return Err(SqlError::exec(format!(
            "setval: value {v} is out of bounds for sequence \"{name}\" ({}..{})",
            def.min, def.max
        )));
    }
    let place = db.placement();
    if place.partition.is_some() && place.partitions > 1 {
        return Err(SqlError::exec(format!(
            "setval(\"{name}\") sets every partition's place in the sequence, and this \
             statement runs on one partition: run it on its own (SELECT setval(...)) or in a \
             multi-partition procedure"
        )));
    }
    let before = if called {
        v
    } else {
        v.checked_sub(def.increment).ok_or_else(|| {
            SqlError::exec(format!(
                "setval: value {v} is out of bounds for sequence \"{name}\""
            ))
        })?
    };
    let mut c = db.sequence_cursor().borrow_mut();
    for q in 0..place.partitions {
        c.last.insert((def.name.clone(), q), before);
    }
    Ok(v)
}

/// Writes the values the statement took to the state rows, inside its
/// transaction.
pub fn flush(db: &mut Database) -> Result<(), SqlError> {
    let taken = std::mem::take(&mut db.sequence_cursor().borrow_mut().last);
    if taken.is_empty() {
        return Ok(());
    }
    let n = db.placement().partitions;
    let state = db
        .table_id(STATE)
        .ok_or_else(|| SqlError::exec("internal: sequence state table missing"))?;
    for ((name, q), v) in taken {
        let key = [Value::text(&name), Value::Int(key_of(q, n))];
        let row: crate::storage::Row = vec![key[0].clone(), key[1].clone(), Value::Int(v)].into();
        let at = db.table(state).and_then(|t| t.index_get(0, &key));
        match at {
            Some(id) => db.update(state, id, row)?,
            None => {
                db.insert(state, row)?;
            }
        }
    }
    Ok(())
}

fn int_option(e: &ast::Expr, what: &str) -> Result<i64, SqlError> {
    let bad = || SqlError::plan(format!("{what} must be a whole number, not {e}"));
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().map_err(|_| bad()),
            _ => Err(bad()),
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => int_option(expr, what)?.checked_neg().ok_or_else(bad),
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Plus,
            expr,
        } => int_option(expr, what),
        _ => Err(bad()),
    }
}

/// A definition from CREATE SEQUENCE's (or an identity column's) options,
/// for values of type `ty`.
pub fn define(
    name: &str,
    options: &[ast::SequenceOptions],
    mut ty: DataType,
) -> Result<SeqDef, SqlError> {
    use ast::SequenceOptions as O;
    let (mut inc, mut start, mut min, mut max) = (1i64, None, None, None);
    for o in options {
        match o {
            O::DataType(t) => {
                ty = super::ddl::map_type(t)?;
            }
            O::IncrementBy(e, _) => inc = int_option(e, "INCREMENT")?,
            O::MinValue(e) => min = e.as_ref().map(|e| int_option(e, "MINVALUE")).transpose()?,
            O::MaxValue(e) => max = e.as_ref().map(|e| int_option(e, "MAXVALUE")).transpose()?,
            O::StartWith(e, _) => start = Some(int_option(e, "START")?),
            // A cache only spares PostgreSQL's disk: nothing to do here.
            O::Cache(_) | O::Cycle(true) => {}
            O::Cycle(false) => {
                return Err(SqlError::unsupported(format!(
                    "sequence \"{name}\" ... CYCLE: a sequence that starts over would give a \
                     partition's values again; declare a wider type instead"
                )))
            }
            O::OwnedBy(_) => {}
        }
    }
    let (lo, hi) = match ty {
        DataType::SmallInt | DataType::Integer | DataType::BigInt => {
            ty.int_range().unwrap_or((i64::MIN, i64::MAX))
        }
        other => {
            return Err(SqlError::plan(format!(
                "sequence \"{name}\": type {other} is not SMALLINT, INTEGER or BIGINT"
            )))
        }
    };
    if inc == 0 {
        return Err(SqlError::plan(format!(
            "INCREMENT of sequence \"{name}\" must not be zero"
        )));
    }
    let min = min.unwrap_or(if inc > 0 { 1 } else { lo });
    let max = max.unwrap_or(if inc > 0 { hi } else { -1 });
    let start = start.unwrap_or(if inc > 0 { min } else { max });
    if min < lo || max > hi || min >= max {
        return Err(SqlError::plan(format!(
            "sequence \"{name}\": MINVALUE ({min}) must be less than MAXVALUE ({max}), both \
             within {ty}"
        )));
    }
    if start < min || start > max {
        return Err(SqlError::plan(format!(
            "START value ({start}) of sequence \"{name}\" must be between {min} and {max}"
        )));
    }
    Ok(SeqDef {
        name: name.to_string(),
        start,
        increment: inc,
        min,
        max,
        owner: None,
        always: false,
    })
}

/// Records a new sequence (DDL: every partition writes the same row).
pub fn create(db: &mut Database, def: SeqDef, if_not_exists: bool) -> Result<(), SqlError> {
    if is_internal(&def.name) {
        return Err(SqlError::plan(format!(
            "the name \"{}\" is Ohm's own (it keeps sequences there)",
            def.name
        )));
    }
    if find(db, &def.name).is_some() {
        if if_not_exists {
            return Ok(());
        }
        return Err(SqlError::plan(format!(
            "relation \"{}\" already exists",
            def.name
        )));
    }
    if db.table_id(&def.name).is_some() {
        return Err(SqlError::plan(format!(
            "relation \"{}\" already exists (a table)",
            def.name
        )));
    }
    if all(db).len() >= SEQUENCES_MAX {
        return Err(SqlError::plan(format!(
            "a tenant may have {SEQUENCES_MAX} sequences; drop one first"
        )));
    }
    if let Some(owner) = &def.owner {
        let (t, c) = owner.split_once('.').unwrap_or((owner, ""));
        let known = db
            .table_by_name(t)
            .is_some_and(|t| t.schema().column_index(c).is_some());
        if !known {
            return Err(SqlError::plan(format!(
                "OWNED BY {owner}: no such table and column"
            )));
        }
    }
    let (defs, _) = ensure_tables(db)?;
    let row = def_row(&def);
    in_own_txn(db, |db| db.insert(defs, row).map(|_| ()))
}

/// DDL changes these tables' rows, outside any transaction of a client.
fn in_own_txn(
    db: &mut Database,
    f: impl FnOnce(&mut Database) -> Result<(), crate::storage::StorageError>,
) -> Result<(), SqlError> {
    db.begin()?;
    match f(db) {
        Ok(()) => {
            db.commit()?;
            Ok(())
        }
        Err(e) => {
            db.rollback()?;
            Err(e.into())
        }
    }
}

/// Sequences named in column defaults (`nextval('s')`), with the table
/// and column whose default it is.
fn uses(db: &Database) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for t in db.tables() {
        let s = t.schema();
        for c in &s.columns {
            let Some(ColumnDefault::Expr(text)) = &c.default else {
                continue;
            };
            let Ok(e) = super::constraint::parse_stored(text) else {
                continue;
            };
            for n in named_in(&e) {
                out.push((n, s.name.clone(), c.name.clone()));
            }
        }
    }
    out
}

/// The sequences `nextval(...)` calls in `e` name.
pub fn named_in(e: &ast::Expr) -> Vec<String> {
    let mut out = Vec::new();
    let _ = ast::visit_expressions(e, |x| {
        if let ast::Expr::Function(f) = x {
            if is_fn(f, "nextval") {
                if let Ok(Some(n)) = literal_arg(f) {
                    out.push(n);
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// `DROP SEQUENCE`: refused while a column's default uses it (as in
/// PostgreSQL without CASCADE).
pub fn drop(db: &mut Database, name: &str, if_exists: bool) -> Result<(), SqlError> {
    if find(db, name).is_none() {
        if if_exists {
            return Ok(());
        }
        return Err(SqlError::plan(format!(
            "sequence \"{name}\" does not exist"
        )));
    }
    if let Some((_, t, c)) = uses(db).into_iter().find(|(s, _, _)| s == name) {
        return Err(SqlError::plan(format!(
            "cannot drop sequence \"{name}\": the default of column \"{c}\" of table \"{t}\" \
             uses it; drop that default (or the table) first"
        )));
    }
    remove(db, name)
}

/// Removes sequence `name`'s definition and this partition's state rows.
fn remove(db: &mut Database, name: &str) -> Result<(), SqlError> {
    let (defs, state) = ensure_tables(db)?;
    let key = Value::text(name);
    let def_row = db
        .table(defs)
        .and_then(|t| t.index_get(0, std::slice::from_ref(&key)));
    let state_rows: Vec<_> = db
        .table(state)
        .map(|t| {
            t.scan()
                .filter(|(_, r)| r[0] == key)
                .map(|(id, _)| id)
                .collect()
        })
        .unwrap_or_default();
    in_own_txn(db, |db| {
        if let Some(id) = def_row {
            db.delete(defs, id)?;
        }
        for id in state_rows {
            db.delete(state, id)?;
        }
        Ok(())
    })
}

/// Refuses dropping `table` (or its column `column`) while a sequence it
/// owns feeds the default of a column that stays (PostgreSQL wants
/// CASCADE then); tables in `also_dropped` go in the same statement.
pub fn owned_droppable(
    db: &Database,
    table: &str,
    column: Option<&str>,
    also_dropped: &[String],
) -> Result<(), SqlError> {
    let owned: Vec<String> = all(db)
        .into_iter()
        .filter(|d| owned_by(d, table, column))
        .map(|d| d.name)
        .collect();
    let going = |t: &str, c: &str| {
        (t.eq_ignore_ascii_case(table) && column.is_none_or(|col| c.eq_ignore_ascii_case(col)))
            || also_dropped.iter().any(|d| d.eq_ignore_ascii_case(t))
    };
    match uses(db)
        .into_iter()
        .find(|(s, t, c)| owned.contains(s) && !going(t, c))
    {
        Some((s, t, c)) => Err(SqlError::plan(format!(
            "sequence \"{s}\", which goes with it, feeds the default of column \"{c}\" of \
             table \"{t}\": drop that default first"
        ))),
        None => Ok(()),
    }
}

/// Drops the sequences owned by `table` (or by its column `column`), as a
/// SERIAL's sequence goes with its table (`owned_droppable` said yes).
pub fn drop_owned(db: &mut Database, table: &str, column: Option<&str>) -> Result<(), SqlError> {
    let owned: Vec<String> = all(db)
        .into_iter()
        .filter(|d| owned_by(d, table, column))
        .map(|d| d.name)
        .collect();
    for name in owned {
        remove(db, &name)?;
    }
    Ok(())
}

/// Sequences owned by column `from` of `table` are owned by `to` now.
pub fn rename_owner(db: &mut Database, table: &str, from: &str, to: &str) -> Result<(), SqlError> {
    for d in all(db) {
        if owned_by(&d, table, Some(from)) {
            set_owner(db, &d.name, Some(format!("{table}.{to}")))?;
        }
    }
    Ok(())
}

/// Sets or clears the owner (`table.column`) of sequence `name`.
pub fn set_owner(db: &mut Database, name: &str, owner: Option<String>) -> Result<(), SqlError> {
    let mut def = get(db, name)?;
    let (defs, _) = ensure_tables(db)?;
    let id = db
        .table(defs)
        .and_then(|t| t.index_get(0, &[Value::text(name)]))
        .ok_or_else(|| SqlError::exec("internal: sequence row vanished"))?;
    def.owner = owner;
    let row = def_row(&def);
    in_own_txn(db, |db| db.update(defs, id, row))
}

/// A sequence and the `(table, column)` it is to be owned by, if any.
pub type OwnedBy = (String, Option<(String, String)>);

/// `ALTER SEQUENCE name OWNED BY table.column | NONE` (pg_dump writes it
/// after each SERIAL's table; not in sqlparser's grammar). None if `sql`
/// is not that statement.
pub fn parse_owned_by(sql: &str) -> Option<Result<OwnedBy, SqlError>> {
    let words: Vec<&str> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    if upper.len() < 2 || upper[0] != "ALTER" || upper[1] != "SEQUENCE" {
        return None;
    }
    if upper.len() != 6 || upper[3] != "OWNED" || upper[4] != "BY" {
        return Some(Err(SqlError::unsupported(
            "ALTER SEQUENCE other than OWNED BY: drop the sequence and create it again, or use \
             setval()",
        )));
    }
    let name = name_of(words[2]);
    if upper[5] == "NONE" {
        return Some(Ok((name, None)));
    }
    let parts: Vec<&str> = words[5].split('.').collect();
    let (t, c) = match parts.as_slice() {
        [t, c] => (t, c),
        [s, t, c] if s.eq_ignore_ascii_case(super::bind::SCHEMA_PUBLIC) => (t, c),
        _ => {
            return Some(Err(SqlError::Parse(format!(
                "ALTER SEQUENCE ... OWNED BY wants table.column, not {}",
                words[5]
            ))))
        }
    };
    Some(Ok((name, Some((name_of(t), name_of(c))))))
}

fn is_fn(f: &ast::Function, name: &str) -> bool {
    let full = f.name.to_string().to_ascii_lowercase();
    full == name || full.strip_prefix("pg_catalog.") == Some(name)
}

/// The sequence named by `f`'s first argument, a quoted literal (perhaps
/// cast to regclass, as pg_dump writes it).
fn literal_arg(f: &ast::Function) -> Result<Option<String>, SqlError> {
    let ast::FunctionArguments::List(l) = &f.args else {
        return Ok(None);
    };
    let Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(mut e))) =
        l.args.first().cloned()
    else {
        return Ok(None);
    };
    if let ast::Expr::Cast { expr, .. } = e {
        e = *expr;
    }
    match e {
        ast::Expr::Value(v) => match v.value {
            ast::Value::SingleQuotedString(s) => Ok(Some(name_of(&s))),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Whether `q` calls `nextval` or `setval` anywhere.
pub fn query_takes_values(q: &ast::Query) -> bool {
    ast::visit_expressions(q, |x| match x {
        ast::Expr::Function(f) if is_fn(f, "nextval") || is_fn(f, "setval") => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Binds `nextval('s')`, `setval('s', v [, called])`, and refuses
/// `currval`/`lastval`; None if `f` is none of them.
pub fn bind_call(
    b: &Binder,
    f: &ast::Function,
    mode: Mode,
) -> Result<Option<(Expr, Option<DataType>)>, SqlError> {
    let which = ["nextval", "setval", "currval", "lastval"]
        .into_iter()
        .find(|n| is_fn(f, n));
    let Some(which) = which else {
        return Ok(None);
    };
    if matches!(which, "currval" | "lastval") {
        return Err(SqlError::unsupported(format!(
            "{which}(): Ohm keeps no session state between statements; use the value nextval() \
             gives (or the row's SERIAL column) within the statement"
        )));
    }
    let name = literal_arg(f)?.ok_or_else(|| {
        SqlError::plan(format!(
            "{which}() takes the sequence's name as a quoted literal: {which}('name')"
        ))
    })?;
    get(b.catalog.db, &name)?;
    let ast::FunctionArguments::List(l) = &f.args else {
        return Err(SqlError::plan(format!("{which}() needs arguments")));
    };
    let big = Some(DataType::BigInt);
    match (which, l.args.len()) {
        ("nextval", 1) => Ok(Some((Expr::NextVal(name), big))),
        ("setval", 2 | 3) => {
            let mut args = Vec::with_capacity(2);
            for a in &l.args[1..] {
                let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) = a else {
                    return Err(SqlError::plan("setval() takes plain arguments"));
                };
                args.push(b.bind(x, mode)?);
            }
            Ok(Some((Expr::SetVal { name, args }, big)))
        }
        (w, n) => Err(SqlError::plan(format!(
            "function {w}() does not take {n} arguments"
        ))),
    }
}

/// The sequence name and definition a SERIAL/BIGSERIAL/SMALLSERIAL column
/// `column` of `table` gets, with its column type; None for other types.
pub fn serial(table: &str, column: &str, t: &ast::DataType) -> Option<(DataType, SeqDef)> {
    let ast::DataType::Custom(n, mods) = t else {
        return None;
    };
    if !mods.is_empty() {
        return None;
    }
    let ty = match n.to_string().to_ascii_lowercase().as_str() {
        "serial" | "serial4" => DataType::Integer,
        "bigserial" | "serial8" => DataType::BigInt,
        "smallserial" | "serial2" => DataType::SmallInt,
        _ => return None,
    };
    let def = identity(table, column, ty, false, &[]).ok()?;
    Some((ty, def))
}

/// The default text of a column fed by sequence `name`.
pub fn default_text(name: &str) -> String {
    format!("nextval('{}')", name.replace('\'', "''"))
}

/// A `GENERATED ... AS IDENTITY` column's sequence.
pub fn identity(
    table: &str,
    column: &str,
    ty: DataType,
    always: bool,
    options: &[ast::SequenceOptions],
) -> Result<SeqDef, SqlError> {
    let name = format!("{table}_{column}_seq");
    let mut def = define(&name, options, ty)?;
    def.owner = Some(format!("{table}.{column}"));
    def.always = always;
    Ok(def)
}

/// Whether some column of `table` is an identity declared `GENERATED
/// ALWAYS`: the predicate says which (one read of the definitions per
/// plan, not one per column).
pub fn always_identity(db: &Database, table: &str) -> impl Fn(&str) -> bool {
    let owners: Vec<SeqDef> = all(db)
        .into_iter()
        .filter(|d| d.always && owned_by(d, table, None))
        .collect();
    let table = table.to_string();
    move |column| owners.iter().any(|d| owned_by(d, &table, Some(column)))
}

/// `CREATE SEQUENCE` as written.
pub fn create_statement(
    db: &mut Database,
    name: &ast::ObjectName,
    options: &[ast::SequenceOptions],
    if_not_exists: bool,
) -> Result<(), SqlError> {
    let name = object_name(name)?;
    let mut def = define(&name, options, DataType::BigInt)?;
    for o in options {
        if let ast::SequenceOptions::OwnedBy(Some(owner)) = o {
            def.owner = Some(owner_of(owner)?);
        }
    }
    create(db, def, if_not_exists)
}

fn owner_of(n: &ast::ObjectName) -> Result<String, SqlError> {
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| match p {
                ast::ObjectNamePart::Identifier(id) => Ok(lower(id)),
                other => Err(SqlError::plan(format!("bad name part {other}"))),
            })
            .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [t, c] => Ok(format!("{t}.{c}")),
        [s, t, c] if s.eq_ignore_ascii_case(super::bind::SCHEMA_PUBLIC) => Ok(format!("{t}.{c}")),
        _ => Err(SqlError::plan(format!(
            "OWNED BY wants table.column, not {n}"
        ))),
    }
}
