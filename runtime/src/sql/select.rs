//! Planning queries: FROM items, joins, grouping, ordering, and the choice of
//! how each table is read (index lookup, range scan, hash join or scan).
//!
//! Owns: `plan_query`, `plan_subquery`, and access-path selection.
//! Must not: execute anything (constant folding aside).

use super::access::plan_levels;
use super::bind::{
    contains_aggregate, lower, object_name, Binder, Grouping, Mode, Scope, ScopeTable,
};
use super::error::SqlError;
use super::exec::default_nulls_first;
use super::expr::Expr;
use super::plan::*;
use super::ColumnInfo;
use crate::storage::TableId;
use crate::types::DataType;
use sqlparser::ast;
use std::cell::RefCell;
use std::sync::Arc;

/// FROM items a query may join: bounds planning work on hostile input.
pub const FROM_ITEMS_MAX: usize = 128;

pub fn plan_subquery(parent: &Binder, q: &ast::Query) -> Result<(QueryPlan, bool), SqlError> {
    let mut child = Binder::new(parent.catalog);
    child.scopes = parent.scopes.iter().map(clone_scope).collect();
    child.next_param.set(parent.next_param.get());
    child.max_param.set(parent.max_param.get());
    child.next_slot.set(parent.next_slot.get());
    let plan = plan_query(&mut child, q);
    parent.next_param.set(child.next_param.get());
    parent.max_param.set(child.max_param.get());
    parent.next_slot.set(child.next_slot.get());
    for (p, c) in parent.scopes.iter().zip(&child.scopes) {
        if c.correlated.get() {
            p.correlated.set(true);
        }
    }
    let plan = plan?;
    Ok((plan, child.correlated_out.get()))
}

fn clone_scope(s: &Scope) -> Scope {
    Scope {
        tables: s.tables.clone(),
        correlated: s.correlated.clone(),
    }
}

pub fn plan_query(b: &mut Binder, q: &ast::Query) -> Result<QueryPlan, SqlError> {
    if q.with.is_some() {
        return Err(SqlError::unsupported("WITH (common table expressions)"));
    }
    if q.fetch.is_some() || !q.locks.is_empty() {
        return Err(SqlError::unsupported("FETCH or FOR UPDATE/SHARE"));
    }
    let (limit, offset) = limit_clause(b, q.limit_clause.as_ref())?;
    let order: &[ast::OrderByExpr] = match &q.order_by {
        None => &[],
        Some(ob) => match &ob.kind {
            ast::OrderByKind::Expressions(list) => list,
            ast::OrderByKind::All(_) => return Err(SqlError::unsupported("ORDER BY ALL")),
        },
    };
    let mut plan = match q.body.as_ref() {
        ast::SetExpr::Select(s) => plan_select(b, s, order)?,
        other => {
            let mut p = plan_set_expr(b, other)?;
            p.order_by = output_order(&p.columns, order)?;
            p
        }
    };
    plan.limit = limit;
    plan.offset = offset;
    Ok(plan)
}

fn limit_clause(
    b: &Binder,
    lc: Option<&ast::LimitClause>,
) -> Result<(Option<Expr>, Option<Expr>), SqlError> {
    let bind = |e: &ast::Expr| b.bind(e, Mode::NoColumns);
    match lc {
        None => Ok((None, None)),
        Some(ast::LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(SqlError::unsupported("LIMIT BY"));
            }
            Ok((
                limit.as_ref().map(bind).transpose()?,
                offset.as_ref().map(|o| bind(&o.value)).transpose()?,
            ))
        }
        Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
            Ok((Some(bind(limit)?), Some(bind(offset)?)))
        }
    }
}

/// A set-operation operand or VALUES list (no ORDER BY of its own).
fn plan_set_expr(b: &mut Binder, e: &ast::SetExpr) -> Result<QueryPlan, SqlError> {
    match e {
        ast::SetExpr::Select(s) => plan_select(b, s, &[]),
        ast::SetExpr::Query(q) => plan_query(b, q),
        ast::SetExpr::Values(v) => plan_values(b, v),
        ast::SetExpr::SetOperation {
            left,
            op,
            set_quantifier,
            right,
        } => {
            let op = match op {
                ast::SetOperator::Union => SetOp::Union,
                ast::SetOperator::Intersect => SetOp::Intersect,
                ast::SetOperator::Except | ast::SetOperator::Minus => SetOp::Except,
            };
            let all = match set_quantifier {
                ast::SetQuantifier::All => true,
                ast::SetQuantifier::Distinct | ast::SetQuantifier::None => false,
                other => return Err(SqlError::unsupported(format!("set quantifier {other}"))),
            };
            let l = plan_set_expr(b, left)?;
            let r = plan_set_expr(b, right)?;
            if l.columns.len() != r.columns.len() {
                return Err(SqlError::plan(format!(
                    "each {op:?} query must have the same number of columns ({} vs {})",
                    l.columns.len(),
                    r.columns.len()
                )));
            }
            let columns = l.columns.clone();
            Ok(QueryPlan {
                node: QueryNode::SetOp {
                    op,
                    all,
                    left: Box::new(l),
                    right: Box::new(r),
                },
                columns,
                order_by: Vec::new(),
                limit: None,
                offset: None,
            })
        }
        other => Err(SqlError::unsupported(format!("query form {other}"))),
    }
}

pub fn plan_values(b: &Binder, v: &ast::Values) -> Result<QueryPlan, SqlError> {
    let mut rows = Vec::with_capacity(v.rows.len());
    let mut width = None;
    for r in &v.rows {
        let row = r
            .content
            .iter()
            .map(|e| b.bind(e, Mode::NoColumns))
            .collect::<Result<Vec<_>, _>>()?;
        if *width.get_or_insert(row.len()) != row.len() {
            return Err(SqlError::plan("VALUES lists must all be the same length"));
        }
        rows.push(row);
    }
    let columns = (1..=width.unwrap_or(0))
        .map(|i| ColumnInfo {
            name: format!("column{i}"),
            ty: None,
        })
        .collect();
    Ok(QueryPlan {
        node: QueryNode::Values(rows),
        columns,
        order_by: Vec::new(),
        limit: None,
        offset: None,
    })
}

/// ORDER BY over a set operation's output: ordinals or output column names.
fn output_order(
    columns: &[ColumnInfo],
    order: &[ast::OrderByExpr],
) -> Result<Vec<SortKey>, SqlError> {
    order
        .iter()
        .map(|o| {
            let index = match &o.expr {
                ast::Expr::Value(v) => ordinal(&v.value, columns.len())?,
                ast::Expr::Identifier(id) => {
                    let name = lower(id);
                    columns.iter().position(|c| c.name == name).ok_or_else(|| {
                        SqlError::plan(format!("ORDER BY term \"{name}\" does not match any result column"))
                    })?
                }
                other => {
                    return Err(SqlError::unsupported(format!(
                        "ORDER BY expression {other} on a set operation (use a column name or position)"
                    )))
                }
            };
            Ok(sort_key(index, &o.options))
        })
        .collect()
}

fn ordinal(v: &ast::Value, n: usize) -> Result<usize, SqlError> {
    match v {
        ast::Value::Number(s, _) => match s.parse::<usize>() {
            Ok(k) if k >= 1 && k <= n => Ok(k - 1),
            _ => Err(SqlError::plan(format!(
                "ORDER BY position {s} is not in select list"
            ))),
        },
        other => Err(SqlError::plan(format!("cannot ORDER BY constant {other}"))),
    }
}

fn sort_key(index: usize, o: &ast::OrderByOptions) -> SortKey {
    let desc = matches!(o.sort, Some(ast::OrderBySort::Desc));
    SortKey {
        index,
        desc,
        nulls_first: o.nulls_first.unwrap_or_else(|| default_nulls_first(desc)),
    }
}

/// One FROM item before levels are chosen.
struct FromItem {
    source: Source,
    alias: String,
    columns: Vec<(String, Option<DataType>)>,
    /// ON conjuncts of a LEFT JOIN (bound later, once the scope is complete).
    on: Option<ast::Expr>,
}

fn from_items(
    b: &Binder,
    from: &[ast::TableWithJoins],
) -> Result<(Vec<FromItem>, Vec<ast::Expr>), SqlError> {
    let mut items = Vec::new();
    let mut inner_on = Vec::new();
    let mut offset = 0;
    for twj in from {
        push_join_tree(b, twj, &mut items, &mut inner_on, &mut offset)?;
    }
    if items.len() > FROM_ITEMS_MAX {
        return Err(SqlError::plan(format!(
            "too many FROM items ({}, at most {FROM_ITEMS_MAX})",
            items.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for it in &items {
        if !seen.insert(it.alias.clone()) {
            return Err(SqlError::plan(format!(
                "table name \"{}\" specified more than once",
                it.alias
            )));
        }
    }
    Ok((items, inner_on))
}

/// Lays out one FROM item and its joins. A parenthesized join without an
/// alias, `(a CROSS JOIN b)`, is flattened into the enclosing list.
fn push_join_tree(
    b: &Binder,
    twj: &ast::TableWithJoins,
    items: &mut Vec<FromItem>,
    inner_on: &mut Vec<ast::Expr>,
    offset: &mut usize,
) -> Result<(), SqlError> {
    {
        match &twj.relation {
            ast::TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => {
                if items.len() > FROM_ITEMS_MAX {
                    return Err(SqlError::plan(format!(
                        "too many FROM items (at most {FROM_ITEMS_MAX})"
                    )));
                }
                push_join_tree(b, table_with_joins, items, inner_on, offset)?
            }
            other => push_factor(b, other, false, None, items, offset)?,
        }
        for j in &twj.joins {
            use ast::JoinOperator as J;
            let (outer, constraint) = match &j.join_operator {
                J::Join(c) | J::Inner(c) => (false, Some(c)),
                J::CrossJoin(c) => (false, Some(c)),
                J::Left(c) | J::LeftOuter(c) => (true, Some(c)),
                other => return Err(SqlError::unsupported(format!("join type {other:?}"))),
            };
            let on = match constraint {
                Some(ast::JoinConstraint::On(e)) => Some(e.clone()),
                Some(ast::JoinConstraint::None) | None => None,
                Some(_) => {
                    return Err(SqlError::unsupported(
                        "USING or NATURAL joins (write ON a.c = b.c)",
                    ))
                }
            };
            if outer {
                push_factor(b, &j.relation, true, on, items, offset)?;
            } else {
                push_factor(b, &j.relation, false, None, items, offset)?;
                inner_on.extend(on);
            }
        }
    }
    Ok(())
}

fn push_factor(
    b: &Binder,
    f: &ast::TableFactor,
    outer: bool,
    on: Option<ast::Expr>,
    items: &mut Vec<FromItem>,
    offset: &mut usize,
) -> Result<(), SqlError> {
    let (kind, alias, columns) = match f {
        ast::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            let tname = object_name(name)?;
            let alias_name = alias
                .as_ref()
                .map(|a| lower(&a.name))
                .unwrap_or_else(|| tname.clone());
            if let Some(id) = b.catalog.db.table_id(&tname) {
                let t = b
                    .catalog
                    .db
                    .table(id)
                    .ok_or_else(|| SqlError::exec("internal: table vanished"))?;
                let cols = t
                    .schema()
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), Some(c.ty)))
                    .collect::<Vec<_>>();
                (SourceKind::Table { id, name: tname }, alias_name, cols)
            } else if let Some(view) = b.catalog.views.get(&tname) {
                let mut vb = Binder::new(b.catalog);
                let mut plan = plan_query(&mut vb, &view.query)?;
                if vb.param_count() > 0 {
                    return Err(SqlError::plan(format!("view \"{tname}\" uses parameters")));
                }
                rename_columns(&mut plan, &view.columns)?;
                let cols = plan_columns(&plan);
                (
                    SourceKind::Derived {
                        plan: Arc::new(plan),
                        name: tname,
                    },
                    alias_name,
                    cols,
                )
            } else {
                return Err(SqlError::plan(format!(
                    "relation \"{tname}\" does not exist"
                )));
            }
        }
        ast::TableFactor::Derived {
            subquery,
            alias,
            lateral: false,
            ..
        } => {
            let (plan, _) = plan_subquery(b, subquery)?;
            let mut plan = plan;
            let alias_name = match alias {
                Some(a) => {
                    let names: Vec<String> = a.columns.iter().map(|c| lower(&c.name)).collect();
                    rename_columns(&mut plan, &names)?;
                    lower(&a.name)
                }
                None => return Err(SqlError::plan("subquery in FROM must have an alias")),
            };
            let cols = plan_columns(&plan);
            (
                SourceKind::Derived {
                    plan: Arc::new(plan),
                    name: alias_name.clone(),
                },
                alias_name,
                cols,
            )
        }
        ast::TableFactor::NestedJoin { .. } => {
            return Err(SqlError::unsupported("parenthesized joins"))
        }
        other => return Err(SqlError::unsupported(format!("FROM item {other}"))),
    };
    let width = columns.len();
    items.push(FromItem {
        source: Source {
            kind,
            offset: *offset,
            width,
            outer,
        },
        alias,
        columns,
        on,
    });
    *offset += width;
    Ok(())
}

/// A query's output columns as a FROM item's (name, type) list.
fn plan_columns(plan: &QueryPlan) -> Vec<(String, Option<DataType>)> {
    plan.columns
        .iter()
        .map(|c| (c.name.clone(), c.ty))
        .collect()
}

fn rename_columns(plan: &mut QueryPlan, names: &[String]) -> Result<(), SqlError> {
    if names.len() > plan.columns.len() {
        return Err(SqlError::plan(format!(
            "{} column names given but the query has {} columns",
            names.len(),
            plan.columns.len()
        )));
    }
    for (c, n) in plan.columns.iter_mut().zip(names) {
        c.name = n.clone();
    }
    Ok(())
}

fn plan_select(
    b: &mut Binder,
    s: &ast::Select,
    order: &[ast::OrderByExpr],
) -> Result<QueryPlan, SqlError> {
    if s.top.is_some()
        || s.into.is_some()
        || !s.lateral_views.is_empty()
        || s.qualify.is_some()
        || !s.named_window.is_empty()
    {
        return Err(SqlError::unsupported(
            "TOP, INTO, LATERAL VIEW, QUALIFY or WINDOW",
        ));
    }
    let (items, inner_on) = from_items(b, &s.from)?;
    let mut scope = Scope::default();
    for it in &items {
        scope.tables.push(ScopeTable {
            alias: it.alias.clone(),
            columns: it.columns.clone(),
            offset: it.source.offset,
        });
    }
    let width = scope.width();
    b.scopes.push(scope);
    let result = plan_select_in_scope(b, s, order, items, inner_on, width);
    let scope = b.scopes.pop();
    if scope.is_some_and(|s| s.correlated.get()) {
        b.correlated_out.set(true);
    }
    result
}

fn bind_pred(b: &Binder, e: &ast::Expr, what: &str) -> Result<Expr, SqlError> {
    if contains_aggregate(e) {
        return Err(SqlError::plan(format!(
            "aggregate functions are not allowed in {what}"
        )));
    }
    b.bind(e, Mode::Plain)
}

fn plan_select_in_scope(
    b: &mut Binder,
    s: &ast::Select,
    order: &[ast::OrderByExpr],
    items: Vec<FromItem>,
    inner_on: Vec<ast::Expr>,
    width: usize,
) -> Result<QueryPlan, SqlError> {
    let mut where_conj = Vec::new();
    for on in &inner_on {
        bind_pred(b, on, "JOIN conditions")?.into_conjuncts(&mut where_conj);
    }
    if let Some(w) = &s.selection {
        bind_pred(b, w, "WHERE")?.into_conjuncts(&mut where_conj);
    }
    let mut on_conj: Vec<Vec<Expr>> = Vec::with_capacity(items.len());
    for it in &items {
        let mut v = Vec::new();
        if let Some(on) = &it.on {
            bind_pred(b, on, "JOIN conditions")?.into_conjuncts(&mut v);
        }
        on_conj.push(v);
    }

    // Projection items, with `*` expanded.
    let mut select_items: Vec<(ast::Expr, String)> = Vec::new();
    for item in &s.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) => select_items.push((e.clone(), expr_name(e))),
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                select_items.push((expr.clone(), lower(alias)))
            }
            ast::SelectItem::Wildcard(_) => expand_star(b, None, &mut select_items)?,
            ast::SelectItem::QualifiedWildcard(
                ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                _,
            ) => expand_star(b, Some(object_name(n)?), &mut select_items)?,
            other => return Err(SqlError::unsupported(format!("select item {other}"))),
        }
    }

    let group_exprs: Vec<ast::Expr> = match &s.group_by {
        ast::GroupByExpr::Expressions(list, mods) if mods.is_empty() => list.clone(),
        ast::GroupByExpr::Expressions(..) => {
            return Err(SqlError::unsupported("GROUP BY modifiers"))
        }
        ast::GroupByExpr::All(_) => return Err(SqlError::unsupported("GROUP BY ALL")),
    };
    let grouped = !group_exprs.is_empty()
        || s.having.is_some()
        || select_items.iter().any(|(e, _)| contains_aggregate(e))
        || order.iter().any(|o| contains_aggregate(&o.expr));

    let mut keys = Vec::with_capacity(group_exprs.len());
    for g in &group_exprs {
        let target = match g {
            ast::Expr::Value(v) => Some(&select_items[ordinal(&v.value, select_items.len())?].0),
            ast::Expr::Identifier(id)
                if b.scopes.last().is_some_and(|sc| !scope_has(sc, &lower(id))) =>
            {
                select_items
                    .iter()
                    .find(|(_, n)| *n == lower(id))
                    .map(|(e, _)| e)
            }
            _ => None,
        };
        keys.push(bind_pred(b, target.unwrap_or(g), "GROUP BY")?);
    }
    let grouping = Grouping {
        keys,
        calls: RefCell::new(Vec::new()),
    };
    let mode = if grouped {
        Mode::Grouped(&grouping)
    } else {
        Mode::Plain
    };

    let mut projection = Vec::with_capacity(select_items.len());
    let mut columns = Vec::with_capacity(select_items.len());
    for (e, name) in &select_items {
        let (x, ty) = b.bind_typed(e, mode)?;
        projection.push(x);
        columns.push(ColumnInfo {
            name: name.clone(),
            ty,
        });
    }
    let having = match &s.having {
        Some(h) => Some(b.bind(h, mode)?),
        None => None,
    };
    let distinct = match &s.distinct {
        None | Some(ast::Distinct::All) => false,
        Some(ast::Distinct::Distinct) => true,
        Some(ast::Distinct::On(_)) => return Err(SqlError::unsupported("DISTINCT ON")),
    };
    let visible = projection.len();
    let mut order_by = Vec::with_capacity(order.len());
    for o in order {
        let index = match &o.expr {
            ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                ordinal(&v.value, visible)?
            }
            ast::Expr::Identifier(id) if select_items.iter().any(|(_, n)| *n == lower(id)) => {
                let n = lower(id);
                let hits: Vec<usize> = (0..visible).filter(|&i| columns[i].name == n).collect();
                if hits.len() > 1 && !hits.iter().all(|&i| projection[i] == projection[hits[0]]) {
                    return Err(SqlError::plan(format!("ORDER BY \"{n}\" is ambiguous")));
                }
                hits[0]
            }
            e => {
                let x = b.bind(e, mode)?;
                match projection.iter().position(|p| *p == x) {
                    Some(i) => i,
                    None => {
                        if distinct {
                            return Err(SqlError::plan(
                                "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
                            ));
                        }
                        projection.push(x);
                        projection.len() - 1
                    }
                }
            }
        };
        order_by.push(sort_key(index, &o.options));
    }

    let calls = grouping.calls.into_inner();
    let aggregate = if grouped {
        Some(AggPlan {
            keys: grouping.keys,
            calls,
        })
    } else {
        None
    };
    let mut sources: Vec<Source> = items.iter().map(|i| i.source.clone()).collect();
    if sources.is_empty() {
        sources.push(Source {
            kind: SourceKind::Unit,
            offset: 0,
            width: 0,
            outer: false,
        });
        on_conj.push(Vec::new());
    }
    let (levels, pre_filter) = plan_levels(b, &sources, where_conj, on_conj)?;
    let select = SelectPlan {
        sources,
        width,
        levels,
        pre_filter,
        aggregate,
        having,
        projection,
        distinct,
        visible,
    };
    Ok(QueryPlan {
        node: QueryNode::Select(Box::new(select)),
        columns,
        order_by,
        limit: None,
        offset: None,
    })
}

fn scope_has(scope: &Scope, column: &str) -> bool {
    scope
        .tables
        .iter()
        .any(|t| t.columns.iter().any(|(n, _)| n == column))
}

fn expr_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(id) => lower(id),
        ast::Expr::CompoundIdentifier(ids) => ids.last().map(lower).unwrap_or_default(),
        ast::Expr::Function(f) => f.name.to_string().to_ascii_lowercase(),
        ast::Expr::Nested(x) => expr_name(x),
        other => other.to_string(),
    }
}

fn expand_star(
    b: &Binder,
    table: Option<String>,
    out: &mut Vec<(ast::Expr, String)>,
) -> Result<(), SqlError> {
    let scope = b
        .scopes
        .last()
        .ok_or_else(|| SqlError::plan("SELECT * with no FROM clause"))?;
    let mut any = false;
    for t in &scope.tables {
        if table.as_ref().is_some_and(|n| *n != t.alias) {
            continue;
        }
        any = true;
        for (c, _) in &t.columns {
            let e = ast::Expr::CompoundIdentifier(vec![
                ast::Ident::with_quote('"', &t.alias),
                ast::Ident::with_quote('"', c),
            ]);
            out.push((e, c.clone()));
        }
    }
    if !any {
        return Err(match table {
            Some(t) => SqlError::plan(format!("missing FROM-clause entry for table \"{t}\"")),
            None => SqlError::plan("SELECT * with no FROM clause"),
        });
    }
    Ok(())
}

/// Plans `SELECT <cols> FROM table WHERE <pred>` for UPDATE and DELETE.
/// Also binds `extra` expressions (UPDATE's SET values) over the table row.
pub fn plan_table_scan(
    b: &mut Binder,
    table: TableId,
    alias: &str,
    selection: Option<&ast::Expr>,
    extra: &[&ast::Expr],
) -> Result<(SelectPlan, Vec<(Expr, Option<DataType>)>), SqlError> {
    let t = b
        .catalog
        .db
        .table(table)
        .ok_or_else(|| SqlError::exec("internal: table vanished"))?;
    let columns: Vec<(String, Option<DataType>)> = t
        .schema()
        .columns
        .iter()
        .map(|c| (c.name.clone(), Some(c.ty)))
        .collect();
    let width = columns.len();
    let name = t.schema().name.clone();
    let mut scope = Scope::default();
    scope.tables.push(ScopeTable {
        alias: alias.to_string(),
        columns,
        offset: 0,
    });
    b.scopes.push(scope);
    let r = (|| {
        let mut conj = Vec::new();
        if let Some(w) = selection {
            bind_pred(b, w, "WHERE")?.into_conjuncts(&mut conj);
        }
        let sources = vec![Source {
            kind: SourceKind::Table { id: table, name },
            offset: 0,
            width,
            outer: false,
        }];
        let mut bound = Vec::with_capacity(extra.len());
        for e in extra {
            if contains_aggregate(e) {
                return Err(SqlError::plan(
                    "aggregate functions are not allowed in UPDATE",
                ));
            }
            bound.push(b.bind_typed(e, Mode::Plain)?);
        }
        let (levels, pre_filter) = plan_levels(b, &sources, conj, vec![Vec::new()])?;
        let plan = SelectPlan {
            sources,
            width,
            levels,
            pre_filter,
            aggregate: None,
            having: None,
            projection: Vec::new(),
            distinct: false,
            visible: 0,
        };
        Ok((plan, bound))
    })();
    b.scopes.pop();
    r
}
