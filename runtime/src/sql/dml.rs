//! INSERT (with ON CONFLICT / OR REPLACE / OR IGNORE), UPDATE and DELETE:
//! planning and applying.
//!
//! Owns: turning target rows into storage calls, with assignment casts to
//! the column types. Reads happen first against a stable database (so
//! `INSERT ... SELECT` from the same table and `UPDATE` see the old rows),
//! then changes are applied one row at a time inside the caller's
//! transaction; any error rolls the whole statement back (the engine's job).

use super::bind::{lower, object_name, Binder, Mode, Scope, ScopeTable};
use super::constraint;
use super::error::SqlError;
use super::exec;
use super::expr::{Ctx, Expr, SubqueryCache};
use super::ops;
use super::plan::*;
use super::select;
use crate::storage::{Database, Row, RowId};
use crate::types::{DataType, Value};
use sqlparser::ast;
use std::cell::RefCell;

/// The table a DML statement changes, with its schema; views are refused.
fn table_of(
    b: &Binder,
    name: &ast::ObjectName,
) -> Result<(crate::storage::TableId, String, crate::storage::TableSchema), SqlError> {
    let n = object_name(name)?;
    if super::sequence::is_internal(&n) {
        return Err(SqlError::plan(format!(
            "table \"{n}\" is Ohm's own record of sequences: change a sequence with setval() \
             or DDL"
        )));
    }
    if b.catalog.views.contains_key(&n) {
        return Err(SqlError::plan(format!(
            "cannot change view \"{n}\": views are read-only"
        )));
    }
    let id = b
        .catalog
        .db
        .table_id(&n)
        .ok_or_else(|| SqlError::plan(format!("relation \"{n}\" does not exist")))?;
    let schema = b
        .catalog
        .db
        .table(id)
        .ok_or_else(|| SqlError::exec("internal: table vanished"))?
        .schema()
        .clone();
    Ok((id, n, schema))
}

pub fn plan_insert(b: &mut Binder, ins: &ast::Insert) -> Result<DmlPlan, SqlError> {
    let ast::TableObject::TableName(name) = &ins.table else {
        return Err(SqlError::unsupported("INSERT INTO a table function"));
    };
    if ins.returning.is_some() {
        return Err(SqlError::unsupported("RETURNING"));
    }
    let (id, tname, schema) = table_of(b, name)?;
    let targets: Vec<usize> = if ins.columns.is_empty() {
        (0..schema.columns.len()).collect()
    } else {
        let mut t = Vec::with_capacity(ins.columns.len());
        for c in &ins.columns {
            let cname = object_name(c)?;
            let i = schema.column_index(&cname).ok_or_else(|| {
                SqlError::plan(format!(
                    "column \"{cname}\" of relation \"{tname}\" does not exist"
                ))
            })?;
            if t.contains(&i) {
                return Err(SqlError::plan(format!(
                    "column \"{cname}\" specified more than once"
                )));
            }
            t.push(i);
        }
        t
    };
    let source = match ins.source.as_deref() {
        Some(q) => match q.body.as_ref() {
            ast::SetExpr::Values(v) if q.order_by.is_none() && q.limit_clause.is_none() => {
                select::plan_values(b, v)?
            }
            _ => select::plan_query(b, q)?,
        },
        None => return Err(SqlError::unsupported("INSERT without VALUES or SELECT")),
    };
    if source.columns.len() > targets.len() {
        return Err(SqlError::plan(
            "INSERT has more expressions than target columns",
        ));
    }
    let targets = targets[..source.columns.len()].to_vec();
    // GENERATED ALWAYS AS IDENTITY: the sequence gives the value, unless
    // the INSERT says OVERRIDING SYSTEM VALUE (as pg_dump's do).
    if !matches!(ins.overriding, Some(ast::InsertOverriding::System)) {
        let always = super::sequence::always_identity(b.catalog.db, &tname);
        for &t in &targets {
            let col = &schema.columns[t].name;
            if always(col) {
                return Err(SqlError::plan(format!(
                    "cannot insert a non-DEFAULT value into column \"{col}\": it is an \
                     identity column defined as GENERATED ALWAYS (use OVERRIDING SYSTEM VALUE \
                     to override)"
                )));
            }
        }
    }
    // A column the INSERT gives is not defaulted: its default (perhaps a
    // sequence's nextval) is never evaluated.
    let defaults = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| match targets.contains(&i) {
            true => Ok(Expr::Const(Value::Null)),
            false => constraint::bind_default(b, c.default.as_ref()),
        })
        .collect::<Result<_, _>>()?;
    let checks = constraint::bind_checks(b, &schema)?;
    let mut conflict = match (&ins.or, ins.replace_into) {
        (_, true) | (Some(ast::SqliteOnConflict::Replace), _) => Conflict::Replace,
        (Some(ast::SqliteOnConflict::Ignore), _) => Conflict::Ignore,
        (None, false)
        | (Some(ast::SqliteOnConflict::Abort), _)
        | (Some(ast::SqliteOnConflict::Fail), _) => Conflict::Error,
        (Some(other), _) => return Err(SqlError::unsupported(format!("INSERT OR {other}"))),
    };
    let mut do_update = None;
    match &ins.on {
        None => {}
        Some(ast::OnInsert::OnConflict(oc)) => {
            let index = arbiter(&schema, &tname, oc.conflict_target.as_ref())?;
            match &oc.action {
                ast::OnConflictAction::DoNothing => conflict = Conflict::Ignore,
                ast::OnConflictAction::DoUpdate(du) => {
                    do_update = Some(plan_do_update(b, &schema, &tname, index, du)?);
                }
            }
        }
        Some(other) => return Err(SqlError::unsupported(format!("{other}"))),
    }
    let column_types = schema.columns.iter().map(|c| c.ty).collect();
    let all_columns_in_order =
        targets.len() == schema.columns.len() && targets.iter().enumerate().all(|(i, t)| i == *t);
    Ok(DmlPlan::Insert(InsertPlan {
        all_columns_in_order,
        table: id,
        table_name: tname,
        source: Box::new(source),
        targets,
        defaults,
        column_types,
        conflict,
        do_update,
        checks,
    }))
}

fn arbiter(
    schema: &crate::storage::TableSchema,
    tname: &str,
    target: Option<&ast::ConflictTarget>,
) -> Result<usize, SqlError> {
    match target {
        None => schema
            .primary_key
            .ok_or_else(|| SqlError::plan(format!("ON CONFLICT DO UPDATE on \"{tname}\" needs a conflict target (it has no primary key)"))),
        Some(ast::ConflictTarget::Columns { columns, predicate: None }) => {
            let mut cols = Vec::new();
            for c in columns {
                cols.push(schema.column_index(&lower(c)).ok_or_else(|| {
                    SqlError::plan(format!("column \"{}\" does not exist in table \"{tname}\"", lower(c)))
                })?);
            }
            cols.sort_unstable();
            schema
                .indexes
                .iter()
                .position(|ix| {
                    let mut ic = ix.columns.clone();
                    ic.sort_unstable();
                    ix.unique && ic == cols
                })
                .ok_or_else(|| SqlError::plan("there is no unique or exclusion constraint matching the ON CONFLICT specification"))
        }
        Some(ast::ConflictTarget::OnConstraint(n)) => {
            let n = object_name(n)?;
            schema
                .indexes
                .iter()
                .position(|ix| ix.unique && ix.name.eq_ignore_ascii_case(&n))
                .ok_or_else(|| SqlError::plan(format!("constraint \"{n}\" for table \"{tname}\" does not exist")))
        }
        Some(other) => Err(SqlError::unsupported(format!("ON CONFLICT target {other}"))),
    }
}

fn plan_do_update(
    b: &mut Binder,
    schema: &crate::storage::TableSchema,
    tname: &str,
    index: usize,
    du: &ast::DoUpdate,
) -> Result<DoUpdatePlan, SqlError> {
    let cols: Vec<(String, Option<DataType>)> = schema
        .columns
        .iter()
        .map(|c| (c.name.clone(), Some(c.ty)))
        .collect();
    let n = cols.len();
    let mut scope = Scope::default();
    scope.tables.push(ScopeTable {
        alias: tname.to_string(),
        columns: cols.clone(),
        offset: 0,
    });
    scope.tables.push(ScopeTable {
        alias: "excluded".into(),
        columns: cols,
        offset: n,
    });
    b.scopes.push(scope);
    let r = (|| {
        let assignments = assignments(b, schema, &du.assignments)?;
        let filter = du
            .selection
            .as_ref()
            .map(|e| b.bind(e, Mode::Plain))
            .transpose()?;
        Ok(DoUpdatePlan {
            index,
            assignments,
            filter,
        })
    })();
    b.scopes.pop();
    r
}

fn assignments(
    b: &Binder,
    schema: &crate::storage::TableSchema,
    list: &[ast::Assignment],
) -> Result<Vec<(usize, Expr)>, SqlError> {
    let mut out: Vec<(usize, Expr)> = Vec::with_capacity(list.len());
    for a in list {
        let c = assignment_column(schema, a, &out)?;
        out.push((c, b.bind(&a.value, Mode::Plain)?));
    }
    Ok(out)
}

/// The column an assignment sets; assigning one column twice is an error.
fn assignment_column(
    schema: &crate::storage::TableSchema,
    a: &ast::Assignment,
    done: &[(usize, Expr)],
) -> Result<usize, SqlError> {
    let ast::AssignmentTarget::ColumnName(cn) = &a.target else {
        return Err(SqlError::unsupported("assigning to a tuple of columns"));
    };
    let cname = match cn.0.last() {
        Some(ast::ObjectNamePart::Identifier(id)) => lower(id),
        _ => return Err(SqlError::plan(format!("bad column name {cn}"))),
    };
    let c = schema.column_index(&cname).ok_or_else(|| {
        SqlError::plan(format!(
            "column \"{cname}\" of relation \"{}\" does not exist",
            schema.name
        ))
    })?;
    if done.iter().any(|(x, _)| *x == c) {
        return Err(SqlError::plan(format!(
            "multiple assignments to same column \"{cname}\""
        )));
    }
    Ok(c)
}

pub fn plan_update(b: &mut Binder, up: &ast::Update) -> Result<DmlPlan, SqlError> {
    if up.from.is_some()
        || up.returning.is_some()
        || !up.table.joins.is_empty()
        || up.limit.is_some()
    {
        return Err(SqlError::unsupported(
            "UPDATE with FROM, joins, LIMIT or RETURNING",
        ));
    }
    let (name, alias) = match &up.table.relation {
        ast::TableFactor::Table { name, alias, .. } => (name, alias),
        other => return Err(SqlError::unsupported(format!("UPDATE of {other}"))),
    };
    let (id, tname, schema) = table_of(b, name)?;
    let alias = alias.as_ref().map(|a| lower(&a.name)).unwrap_or(tname);
    let values: Vec<&ast::Expr> = up.assignments.iter().map(|a| &a.value).collect();
    let (scan, bound) = select::plan_table_scan(b, id, &alias, up.selection.as_ref(), &values)?;
    let mut assignments_out = Vec::with_capacity(up.assignments.len());
    let always = super::sequence::always_identity(b.catalog.db, &schema.name);
    for (a, (x, _)) in up.assignments.iter().zip(bound) {
        let c = assignment_column(&schema, a, &assignments_out)?;
        let col = &schema.columns[c].name;
        if always(col) {
            return Err(SqlError::plan(format!(
                "column \"{col}\" can only be updated to DEFAULT: it is an identity column \
                 defined as GENERATED ALWAYS"
            )));
        }
        assignments_out.push((c, x));
    }
    let column_types = schema.columns.iter().map(|c| c.ty).collect();
    let checks = constraint::bind_checks(b, &schema)?;
    Ok(DmlPlan::Update(UpdatePlan {
        table: id,
        scan: Box::new(scan),
        assignments: assignments_out,
        column_types,
        checks,
    }))
}

pub fn plan_delete(b: &mut Binder, del: &ast::Delete) -> Result<DmlPlan, SqlError> {
    if del.using.is_some()
        || del.returning.is_some()
        || del.limit.is_some()
        || !del.tables.is_empty()
    {
        return Err(SqlError::unsupported(
            "DELETE with USING, LIMIT, RETURNING or several tables",
        ));
    }
    let from = match &del.from {
        ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
    };
    let [twj] = from.as_slice() else {
        return Err(SqlError::unsupported("DELETE from several tables"));
    };
    let (name, alias) = match &twj.relation {
        ast::TableFactor::Table { name, alias, .. } if twj.joins.is_empty() => (name, alias),
        other => return Err(SqlError::unsupported(format!("DELETE from {other}"))),
    };
    let (id, tname, _) = table_of(b, name)?;
    let alias = alias.as_ref().map(|a| lower(&a.name)).unwrap_or(tname);
    let (scan, _) = select::plan_table_scan(b, id, &alias, del.selection.as_ref(), &[])?;
    Ok(DmlPlan::Delete(DeletePlan {
        table: id,
        scan: Box::new(scan),
    }))
}

fn coerce_row(
    row: &mut [Value],
    types: &[DataType],
    table: &str,
    names: impl Fn(usize) -> String,
) -> Result<(), SqlError> {
    for (i, (v, ty)) in row.iter_mut().zip(types).enumerate() {
        *v = ops::coerce_owned(std::mem::replace(v, Value::Null), *ty)
            .map_err(|e| e.in_column(&names(i), table))?;
    }
    Ok(())
}

fn column_name(db: &Database, table: crate::storage::TableId, i: usize) -> String {
    db.table(table)
        .and_then(|t| t.schema().columns.get(i))
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

/// Applies a DML plan inside the open transaction; returns rows affected.
/// `now_us`: the transaction's timestamp, for `now()` and its kin.
pub fn apply(
    db: &mut Database,
    plan: &DmlPlan,
    params: &[Value],
    now_us: i64,
) -> Result<u64, SqlError> {
    match plan {
        DmlPlan::Insert(p) => insert(db, p, params, now_us),
        DmlPlan::Update(p) => update(db, p, params, now_us),
        DmlPlan::Delete(p) => {
            let ids = {
                let cache = RefCell::new(SubqueryCache::default());
                let ctx = Ctx::new(db, params, now_us, &cache);
                exec::matching_row_ids(&p.scan, &ctx)?
            };
            for (id, _) in &ids {
                db.delete(p.table, *id)?;
            }
            Ok(ids.len() as u64)
        }
    }
}

fn insert(
    db: &mut Database,
    p: &InsertPlan,
    params: &[Value],
    now_us: i64,
) -> Result<u64, SqlError> {
    let rows = {
        let cache = RefCell::new(SubqueryCache::default());
        let ctx = Ctx::new(db, params, now_us, &cache);
        let full_row = |values: &mut dyn Iterator<Item = Result<Value, SqlError>>| {
            full_row(db, p, &ctx, values)
        };
        match &p.source.node {
            // VALUES: evaluate straight into the table row, no intermediate result.
            QueryNode::Values(list)
                if p.source.order_by.is_empty()
                    && p.source.limit.is_none()
                    && p.source.offset.is_none() =>
            {
                let mut out = Vec::with_capacity(list.len());
                for (i, r) in list.iter().enumerate() {
                    let row = full_row(&mut r.iter().map(|e| e.eval(&ctx, &[])));
                    // In a long VALUES list, say which row.
                    out.push(row.map_err(|e| {
                        if list.len() > 1 {
                            e.in_row(i + 1, list.len())
                        } else {
                            e
                        }
                    })?);
                }
                out
            }
            _ => {
                let src = exec::run_query(&p.source, &ctx, None)?;
                let mut out = Vec::with_capacity(src.len());
                for r in src {
                    out.push(full_row(&mut r.into_iter().map(Ok))?);
                }
                out
            }
        }
    };
    let mut n = 0;
    for row in rows {
        if insert_one(db, p, row, params, now_us)? {
            n += 1;
        }
    }
    Ok(n)
}

/// The table row for one source row (values in `p.targets` order):
/// defaults placed, values coerced to the column types, CHECKs checked.
fn full_row(
    db: &Database,
    p: &InsertPlan,
    ctx: &Ctx,
    values: &mut dyn Iterator<Item = Result<Value, SqlError>>,
) -> Result<Vec<Value>, SqlError> {
    let mut full: Vec<Value> = Vec::with_capacity(p.defaults.len());
    if p.all_columns_in_order {
        // Every column given, in table order: no defaults to place.
        for v in values {
            full.push(v?);
        }
    } else {
        for d in &p.defaults {
            full.push(d.eval(ctx, &[])?);
        }
        for &t in &p.targets {
            if let Some(v) = values.next() {
                full[t] = v?;
            }
        }
    }
    coerce_row(&mut full, &p.column_types, &p.table_name, |i| {
        column_name(db, p.table, i)
    })?;
    constraint::check_row(&p.checks, ctx, &full, &p.table_name)?;
    Ok(full)
}

/// Inserts one row whose values are given (in `p.targets` order, one per
/// target): a loaded row, with no expressions of its own to evaluate.
pub fn insert_given(
    db: &mut Database,
    p: &InsertPlan,
    values: Vec<Value>,
    now_us: i64,
) -> Result<u64, SqlError> {
    let row = {
        let cache = RefCell::new(SubqueryCache::default());
        let ctx = Ctx::new(db, &[], now_us, &cache);
        full_row(db, p, &ctx, &mut values.into_iter().map(Ok))?
    };
    Ok(u64::from(insert_one(db, p, row, &[], now_us)?))
}

/// Rows of `table` that conflict with `row` on unique index `index`.
fn conflicts(db: &Database, p: &InsertPlan, index: usize, row: &[Value]) -> Vec<RowId> {
    let Some(t) = db.table(p.table) else {
        return Vec::new();
    };
    let Some(ix) = t.schema().indexes.get(index) else {
        return Vec::new();
    };
    let key: Vec<Value> = ix.columns.iter().map(|c| row[*c].clone()).collect();
    if key.iter().any(Value::is_null) {
        return Vec::new();
    }
    t.index_lookup(index, &key)
}

fn unique_indexes(db: &Database, p: &InsertPlan) -> Vec<usize> {
    db.table(p.table)
        .map(|t| {
            t.schema()
                .indexes
                .iter()
                .enumerate()
                .filter(|(_, ix)| ix.unique)
                .map(|(i, _)| i)
                .collect()
        })
        .unwrap_or_default()
}

fn insert_one(
    db: &mut Database,
    p: &InsertPlan,
    row: Vec<Value>,
    params: &[Value],
    now_us: i64,
) -> Result<bool, SqlError> {
    if let Some(du) = &p.do_update {
        if let Some(&existing) = conflicts(db, p, du.index, &row).first() {
            return do_update(db, p, du, existing, &row, (params, now_us));
        }
    }
    match p.conflict {
        Conflict::Error => {}
        Conflict::Ignore => {
            if unique_indexes(db, p)
                .into_iter()
                .any(|i| !conflicts(db, p, i, &row).is_empty())
            {
                return Ok(false);
            }
        }
        Conflict::Replace => {
            for i in unique_indexes(db, p) {
                for id in conflicts(db, p, i, &row) {
                    db.delete(p.table, id)?;
                }
            }
        }
    }
    db.insert(p.table, row.into_boxed_slice())?;
    Ok(true)
}

fn do_update(
    db: &mut Database,
    p: &InsertPlan,
    du: &DoUpdatePlan,
    id: RowId,
    new: &[Value],
    (params, now_us): (&[Value], i64),
) -> Result<bool, SqlError> {
    let updated: Option<Row> = {
        let old = db
            .table(p.table)
            .and_then(|t| t.get(id))
            .ok_or(SqlError::exec("internal: conflicting row vanished"))?;
        let mut both: Vec<Value> = old.to_vec();
        both.extend_from_slice(new);
        let cache = RefCell::new(SubqueryCache::default());
        let ctx = Ctx::new(db, params, now_us, &cache);
        if let Some(f) = &du.filter {
            if !f.eval_pred(&ctx, &both)? {
                return Ok(false);
            }
        }
        let mut row: Vec<Value> = old.to_vec();
        for (c, e) in &du.assignments {
            row[*c] = e.eval(&ctx, &both)?;
        }
        coerce_row(&mut row, &p.column_types, &p.table_name, |i| {
            column_name(db, p.table, i)
        })?;
        constraint::check_row(&p.checks, &ctx, &row, &p.table_name)?;
        Some(row.into_boxed_slice())
    };
    if let Some(row) = updated {
        db.update(p.table, id, row)?;
    }
    Ok(true)
}

fn update(
    db: &mut Database,
    p: &UpdatePlan,
    params: &[Value],
    now_us: i64,
) -> Result<u64, SqlError> {
    let changes = {
        let cache = RefCell::new(SubqueryCache::default());
        let ctx = Ctx::new(db, params, now_us, &cache);
        let tname = db
            .table(p.table)
            .map(|t| t.schema().name.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        for (id, old) in exec::matching_row_ids(&p.scan, &ctx)? {
            super::interrupt::tick()?;
            let mut row = old.clone();
            for (c, e) in &p.assignments {
                row[*c] = e.eval(&ctx, &old)?;
            }
            coerce_row(&mut row, &p.column_types, &tname, |i| {
                column_name(db, p.table, i)
            })?;
            constraint::check_row(&p.checks, &ctx, &row, &tname)?;
            out.push((id, row));
        }
        out
    };
    let n = changes.len() as u64;
    for (id, row) in changes {
        db.update(p.table, id, row.into_boxed_slice())?;
    }
    Ok(n)
}
