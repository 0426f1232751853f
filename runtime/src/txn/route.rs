//! Ad-hoc statements that one partition can answer: a SELECT, UPDATE or
//! DELETE over a single partitioned table (plus replicated ones) whose WHERE
//! pins the partition column to a literal (`... WHERE phone_number =
//! 2125551234 AND ...`). It runs on the owning partition alone instead of
//! gathering the table.

use super::scratch::Guards;
use crate::catalog::{partition_for, PartitionId};
use crate::types::{DataType, Value};
use sqlparser::ast::{
    BinaryOperator, Expr, FromTable, SetExpr, Statement, TableFactor, TableWithJoins,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;
use std::collections::BTreeSet;

/// The partition that holds every row `stmt` can read, if there is one.
pub fn single_partition(
    g: &Guards,
    tenant: crate::types::TenantId,
    stmt: &str,
    params: &[Value],
    words: &[String],
    names: &BTreeSet<String>,
) -> Option<PartitionId> {
    let db = g[0].tenant_ref(tenant)?.engine.database();
    let mut partitioned = names.iter().filter_map(|n| {
        let t = db.table_by_name(n)?;
        t.schema()
            .partition_column
            .map(|c| (n.clone(), t.schema().columns[c].clone()))
    });
    let (table, column) = partitioned.next()?;
    // One partitioned table, named once (a second mention could be a
    // subquery that needs every partition's rows), and no views.
    if partitioned.next().is_some() || words.iter().filter(|w| **w == table).count() != 1 {
        return None;
    }
    if g[0]
        .tenant_ref(tenant)?
        .engine
        .views()
        .keys()
        .any(|v| names.contains(&v.to_ascii_lowercase()))
    {
        return None;
    }
    let parsed = Parser::parse_sql(&SQLiteDialect {}, stmt).ok()?;
    let (from, selection) = match parsed.as_slice() {
        [Statement::Query(q)] if q.with.is_none() => match q.body.as_ref() {
            SetExpr::Select(sel) => match sel.from.as_slice() {
                [from] => (from, sel.selection.as_ref()?),
                _ => return None,
            },
            _ => return None,
        },
        [Statement::Update(u)] if u.from.is_none() && u.returning.is_none() => {
            (&u.table, u.selection.as_ref()?)
        }
        [Statement::Delete(d)] if d.using.is_none() && d.limit.is_none() => match &d.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => match t.as_slice() {
                [from] => (from, d.selection.as_ref()?),
                _ => return None,
            },
        },
        _ => return None,
    };
    if !names_only(from, &table) {
        return None;
    }
    let key = pinned(selection, &column.name, column.ty, params)?;
    Some(partition_for(&key, g.len() as u32))
}

/// Whether `from` is exactly `table`, with no joins.
fn names_only(from: &TableWithJoins, table: &str) -> bool {
    let TableFactor::Table { name, .. } = &from.relation else {
        return false;
    };
    from.joins.is_empty() && name.to_string().eq_ignore_ascii_case(table)
}

/// The literal a top-level `column = literal` conjunct gives the column.
fn pinned(e: &Expr, column: &str, ty: DataType, params: &[Value]) -> Option<Value> {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => pinned(left, column, ty, params).or_else(|| pinned(right, column, ty, params)),
        Expr::Nested(inner) => pinned(inner, column, ty, params),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let (col, lit) = match (left.as_ref(), right.as_ref()) {
                (c, Expr::Value(v)) | (Expr::Value(v), c) => (c, &v.value),
                _ => return None,
            };
            let name = match col {
                Expr::Identifier(i) => &i.value,
                Expr::CompoundIdentifier(parts) => &parts.last()?.value,
                _ => return None,
            };
            if !name.eq_ignore_ascii_case(column) {
                return None;
            }
            literal(lit, ty, params)
        }
        _ => None,
    }
}

/// The value a literal (or a `$n` parameter) has in a column of type
/// `ty`, when that is exact.
fn literal(v: &sqlparser::ast::Value, ty: DataType, params: &[Value]) -> Option<Value> {
    use sqlparser::ast::Value as L;
    match v {
        L::Placeholder(p) => {
            let n: usize = p.strip_prefix('$')?.parse().ok()?;
            match params.get(n.checked_sub(1)?)? {
                Value::Int(i) if ty.is_integer() => Some(Value::Int(*i)),
                Value::Text(s) if ty.is_text() => Some(Value::Text(s.clone())),
                Value::Text(s) => as_typed(s, ty),
                _ => None,
            }
        }
        L::Number(n, _) if ty.is_integer() => n.parse().ok().map(Value::Int),
        L::SingleQuotedString(s) if ty.is_text() => Some(Value::text(s)),
        L::SingleQuotedString(s) => as_typed(s, ty),
        _ => None,
    }
}

/// Text for a date/time or UUID column, as the column will hold it
/// (`'2024-01-02'` is a DATE there): what the row's partition is hashed
/// from. None for other types and for text that does not parse.
fn as_typed(s: &str, ty: DataType) -> Option<Value> {
    let typed = matches!(
        ty,
        DataType::Date
            | DataType::Time
            | DataType::Timestamp
            | DataType::TimestampTz
            | DataType::Interval
            | DataType::Uuid
    );
    if !typed {
        return None;
    }
    crate::sql::ops::cast(&Value::text(s), ty).ok()
}
