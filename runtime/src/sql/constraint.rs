//! CHECK constraints and column defaults kept as SQL text: declaring them
//! (validated, named as PostgreSQL names them), binding them into a DML
//! plan, checking each written row, and rewriting them when a column is
//! renamed or dropped.
//!
//! Owns: the text form storage keeps (`CheckConstraint::expr`,
//! `ColumnDefault::Expr`) and what may appear in it: columns of the row,
//! constants and functions; no subqueries, aggregates, parameters or clock
//! in a CHECK (a row must pass or fail the same whenever it is checked, on
//! every replica). Must not: touch rows (ddl.rs and dml.rs do).

use super::bind::{lower, Binder, Mode, Scope, ScopeTable};
use super::error::SqlError;
use super::expr::{Ctx, Expr};
use super::ops;
use crate::storage::{CheckConstraint, ColumnDefault, TableSchema};
use crate::types::{DataType, Value};
use sqlparser::ast;
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// Nesting the parser accepts in a stored expression (as for statements).
const STORED_EXPR_DEPTH_MAX: usize = 64;

/// A CHECK bound to a table's row (column `i` is offset `i`).
#[derive(Debug, Clone, PartialEq)]
pub struct BoundCheck {
    pub name: String,
    pub expr: Expr,
}

/// Parses an expression kept as text in the schema.
pub fn parse_stored(text: &str) -> Result<ast::Expr, SqlError> {
    Parser::new(&SQLiteDialect {})
        .with_recursion_limit(STORED_EXPR_DEPTH_MAX)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::exec(format!("internal: stored expression {text:?}: {e}")))
}

/// Binds `e` against one row of `schema` (columns named bare or as
/// `table.column`).
fn bind_on_row(
    b: &mut Binder,
    schema: &TableSchema,
    e: &ast::Expr,
) -> Result<(Expr, Option<DataType>), SqlError> {
    let mut scope = Scope::default();
    scope.tables.push(ScopeTable {
        alias: schema.name.clone(),
        columns: schema
            .columns
            .iter()
            .map(|c| (c.name.clone(), Some(c.ty)))
            .collect(),
        offset: 0,
    });
    b.scopes.push(scope);
    let r = b.bind_typed(e, Mode::Plain);
    b.scopes.pop();
    r
}

/// The CHECKs of `schema`, bound for a DML plan on its rows.
pub fn bind_checks(b: &mut Binder, schema: &TableSchema) -> Result<Vec<BoundCheck>, SqlError> {
    schema
        .checks
        .iter()
        .map(|c| {
            let e = parse_stored(&c.expr)?;
            let (expr, _) = bind_on_row(b, schema, &e).map_err(|err| {
                SqlError::exec(format!(
                    "check constraint \"{}\" of table \"{}\" no longer binds: {err}",
                    c.name, schema.name
                ))
            })?;
            Ok(BoundCheck {
                name: c.name.clone(),
                expr,
            })
        })
        .collect()
}

/// A column's default as an expression evaluated per inserted row.
pub fn bind_default(b: &Binder, d: Option<&ColumnDefault>) -> Result<Expr, SqlError> {
    match d {
        None => Ok(Expr::Const(Value::Null)),
        Some(ColumnDefault::Value(v)) => Ok(Expr::Const(v.clone())),
        Some(ColumnDefault::Expr(text)) => b.bind(&parse_stored(text)?, Mode::NoColumns),
    }
}

/// The first CHECK that is false for `row` (NULL passes); an error in
/// evaluating one is that error.
pub fn failing<'c>(
    checks: &'c [BoundCheck],
    ctx: &Ctx,
    row: &[Value],
) -> Result<Option<&'c BoundCheck>, SqlError> {
    for c in checks {
        if let Value::Bool(false) = c.expr.eval(ctx, row)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Refuses `row` (already of the table's column types) if a CHECK is
/// false for it, naming the constraint and the row as PostgreSQL does.
pub fn check_row(
    checks: &[BoundCheck],
    ctx: &Ctx,
    row: &[Value],
    table: &str,
) -> Result<(), SqlError> {
    let Some(c) = failing(checks, ctx, row)? else {
        return Ok(());
    };
    let values: Vec<String> = row
        .iter()
        .map(|v| match v {
            Value::Null => "null".to_string(),
            v => v.to_string(),
        })
        .collect();
    Err(SqlError::exec(format!(
        "new row for relation \"{table}\" violates check constraint \"{}\": failing row \
         contains ({})",
        c.name,
        values.join(", ")
    )))
}

/// The column names `e` reads, lower-cased, first use first (a qualified
/// name counts by its last part).
pub fn columns_named(e: &ast::Expr) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let _ = ast::visit_expressions(e, |x| {
        let name = match x {
            ast::Expr::Identifier(id) => Some(lower(id)),
            ast::Expr::CompoundIdentifier(ids) => ids.last().map(lower),
            _ => None,
        };
        if let Some(n) = name {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// Whether `e` holds a subquery anywhere.
fn has_subquery(e: &ast::Expr) -> bool {
    ast::visit_expressions(e, |x| match x {
        ast::Expr::Subquery(_)
        | ast::Expr::Exists { .. }
        | ast::Expr::In {
            target: ast::InTarget::Subquery(_),
            ..
        } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Validates `CHECK (expr)` for a table shaped as `schema` and gives it a
/// name: the one written, or PostgreSQL's (`t_col_check` when it reads
/// one column, else `t_check`, numbered past names taken); with it, the
/// check bound to the table's row.
pub fn declare_check(
    b: &mut Binder,
    schema: &TableSchema,
    c: &ast::CheckConstraint,
    taken: &[String],
) -> Result<(CheckConstraint, BoundCheck), SqlError> {
    let text = c.expr.to_string();
    if has_subquery(&c.expr) {
        return Err(SqlError::plan(format!(
            "cannot use subquery in check constraint: CHECK ({text})"
        )));
    }
    let params_before = b.param_count();
    let (expr, ty) = bind_on_row(b, schema, &c.expr)
        .map_err(|e| SqlError::plan(format!("CHECK ({text}): {e}")))?;
    if b.param_count() != params_before {
        return Err(SqlError::plan(format!(
            "CHECK ({text}): a check constraint cannot use parameters"
        )));
    }
    if expr.reads_clock() || expr.uses_sequence() {
        return Err(SqlError::unsupported(format!(
            "CHECK ({text}) reads the clock or a sequence: a row must pass or fail a check the \
             same whenever it is checked"
        )));
    }
    if !matches!(ty, None | Some(DataType::Boolean)) {
        return Err(SqlError::plan(format!(
            "argument of CHECK must be type boolean, not type {}: CHECK ({text})",
            ty.map_or("unknown".to_string(), |t| t.to_string())
        )));
    }
    let name = match &c.name {
        Some(n) => {
            let n = lower(n);
            if schema.has_constraint(&n) || taken.iter().any(|t| t.eq_ignore_ascii_case(&n)) {
                return Err(SqlError::plan(format!(
                    "constraint \"{n}\" for relation \"{}\" already exists",
                    schema.name
                )));
            }
            n
        }
        None => {
            let base = match columns_named(&c.expr).as_slice() {
                [one] => format!("{}_{one}_check", schema.name),
                _ => format!("{}_check", schema.name),
            };
            let free = |n: &str| {
                !schema.has_constraint(n) && !taken.iter().any(|t| t.eq_ignore_ascii_case(n))
            };
            let mut name = base.clone();
            let mut i = 0u32;
            while !free(&name) {
                i += 1;
                name = format!("{base}{i}");
            }
            name
        }
    };
    let bound = BoundCheck {
        name: name.clone(),
        expr,
    };
    Ok((CheckConstraint { name, expr: text }, bound))
}

/// The instant a clock-reading default is tried on when declared, to see
/// that its type fits: fixed, so that DDL replayed without the clock
/// comes out the same.
const DEFAULT_TRIAL_US: i64 = 0;

/// Validates `DEFAULT e` for a column of type `ty`: a constant is computed
/// now; one that reads the transaction's timestamp or takes a sequence's
/// value is kept as text and computed at each insert. A subquery is
/// refused (as in PostgreSQL): its answer would differ between partitions.
pub fn declare_default(
    b: &Binder,
    ctx: &Ctx,
    e: &ast::Expr,
    ty: DataType,
    column: &str,
) -> Result<ColumnDefault, SqlError> {
    let at = |err: SqlError| SqlError::plan(format!("DEFAULT for column \"{column}\": {err}"));
    if has_subquery(e) {
        return Err(at(SqlError::plan("cannot use a subquery in a DEFAULT")));
    }
    let x = b.bind(e, Mode::NoColumns).map_err(at)?;
    if b.param_count() > 0 {
        return Err(at(SqlError::plan("a default cannot use parameters")));
    }
    if x.uses_sequence() {
        // Computed per insert; evaluating it here would take a value.
        return Ok(ColumnDefault::Expr(e.to_string()));
    }
    if x.reads_clock() {
        // Its type must still fit the column: try it on a fixed instant.
        let trial = Ctx::new(ctx.db, &[], DEFAULT_TRIAL_US, ctx.cache);
        ops::coerce_to_column(&x.eval(&trial, &[])?, ty).map_err(at)?;
        return Ok(ColumnDefault::Expr(e.to_string()));
    }
    let v = x.eval(ctx, &[])?;
    ops::coerce_to_column(&v, ty)
        .map(ColumnDefault::Value)
        .map_err(at)
}

/// The CHECKs of `schema` with column `from` called `to`.
pub fn rename_column(
    schema: &TableSchema,
    from: &str,
    to: &str,
) -> Result<Vec<CheckConstraint>, SqlError> {
    // Always quoted: a bare name might read back as a keyword (`null`,
    // `current_date`) and change what the check means.
    let ident = |old: &ast::Ident| ast::Ident {
        value: to.to_string(),
        quote_style: Some('"'),
        span: old.span,
    };
    schema
        .checks
        .iter()
        .map(|c| {
            let mut e = parse_stored(&c.expr)?;
            let _ = ast::visit_expressions_mut(&mut e, |x| {
                match x {
                    ast::Expr::Identifier(id) if lower(id).eq_ignore_ascii_case(from) => {
                        *id = ident(id);
                    }
                    ast::Expr::CompoundIdentifier(ids) => {
                        if let Some(last) = ids.last_mut() {
                            if lower(last).eq_ignore_ascii_case(from) {
                                *last = ident(last);
                            }
                        }
                    }
                    _ => {}
                }
                ControlFlow::<()>::Continue(())
            });
            Ok(CheckConstraint {
                name: c.name.clone(),
                expr: e.to_string(),
            })
        })
        .collect()
}

/// The CHECKs of `schema` that do not read column `column` (those that do
/// go with it, as in PostgreSQL).
pub fn without_column(
    schema: &TableSchema,
    column: &str,
) -> Result<Vec<CheckConstraint>, SqlError> {
    let mut out = Vec::new();
    for c in &schema.checks {
        let e = parse_stored(&c.expr)?;
        if !columns_named(&e)
            .iter()
            .any(|n| n.eq_ignore_ascii_case(column))
        {
            out.push(c.clone());
        }
    }
    Ok(out)
}
