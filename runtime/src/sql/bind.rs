//! Name resolution and expression binding: sqlparser `Expr` -> `expr::Expr`.
//!
//! Owns: scopes (which tables and columns a name can mean, including the
//! enclosing queries of a subquery), parameter numbering, aggregate
//! extraction in grouped queries, and static type inference.
//! Must not: choose access paths (that is `select`).

use super::error::SqlError;
use super::expr::{CmpOp, Expr, Subquery};
use super::ops::{self, ArithOp};
use super::plan::{AggCall, AggFunc};
use super::Catalog;
use crate::types::{DataType, Value};
use rust_decimal::Decimal;
use sqlparser::ast;
use std::cell::{Cell, RefCell};
use std::str::FromStr;
use std::sync::Arc;

/// Nesting depth of subqueries a statement may have: bounds recursion on
/// hostile input.
pub const SUBQUERY_DEPTH_MAX: usize = 32;
/// Expression nesting depth accepted.
pub const EXPR_DEPTH_MAX: usize = 256;

/// One FROM item visible to names.
#[derive(Debug, Clone)]
pub struct ScopeTable {
    /// Lower-cased alias or table name.
    pub alias: String,
    pub columns: Vec<(String, Option<DataType>)>,
    pub offset: usize,
}

#[derive(Debug, Default)]
pub struct Scope {
    pub tables: Vec<ScopeTable>,
    /// Set when a name inside resolved to an enclosing query.
    pub correlated: Cell<bool>,
}

impl Scope {
    pub fn width(&self) -> usize {
        self.tables.iter().map(|t| t.columns.len()).sum()
    }
}

/// The GROUP BY keys and the aggregate calls found so far.
pub struct Grouping {
    pub keys: Vec<Expr>,
    pub calls: RefCell<Vec<AggCall>>,
}

#[derive(Clone, Copy)]
pub enum Mode<'g> {
    Plain,
    /// Columns may only appear through a group key or inside an aggregate.
    Grouped(&'g Grouping),
    /// No columns at all (VALUES, LIMIT, DEFAULT).
    NoColumns,
}

pub struct Binder<'c> {
    pub catalog: &'c Catalog<'c>,
    pub scopes: Vec<Scope>,
    pub next_param: Cell<usize>,
    pub max_param: Cell<usize>,
    pub next_slot: Cell<usize>,
    depth: Cell<usize>,
    /// Set when a SELECT planned directly by this binder read an enclosing row.
    pub correlated_out: Cell<bool>,
}

pub fn lower(id: &ast::Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_ascii_lowercase()
    }
}

/// The one schema a tenant has. Names qualified with it (`public.t`, as
/// every pg_dump writes them) are the plain names.
pub const SCHEMA_PUBLIC: &str = "public";

pub fn object_name(name: &ast::ObjectName) -> Result<String, SqlError> {
    let part = |p: &ast::ObjectNamePart| match p {
        ast::ObjectNamePart::Identifier(id) => Some(lower(id)),
        _ => None,
    };
    match name.0.as_slice() {
        [one] => part(one).ok_or_else(|| SqlError::unsupported(format!("name {name}"))),
        [schema, one] => match (part(schema), part(one)) {
            (Some(s), Some(n)) if s == SCHEMA_PUBLIC => Ok(n),
            (Some(s), Some(_)) => Err(SqlError::plan(format!(
                "schema \"{s}\" does not exist: a tenant has one schema, public \
                 ({name} names another)"
            ))),
            _ => Err(SqlError::unsupported(format!("name {name}"))),
        },
        _ => Err(SqlError::unsupported(format!(
            "name {name} with a database part: a tenant has one schema, public"
        ))),
    }
}

const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "total",
    "group_concat",
    "string_agg",
];

fn func_name(f: &ast::Function) -> String {
    f.name.to_string().to_ascii_lowercase()
}

fn is_aggregate_call(f: &ast::Function) -> bool {
    let name = func_name(f);
    if !AGGREGATES.contains(&name.as_str()) {
        return false;
    }
    // min/max with several arguments are the scalar greatest/least in SQLite.
    match &f.args {
        ast::FunctionArguments::List(l) => {
            !(matches!(name.as_str(), "min" | "max") && l.args.len() > 1)
        }
        _ => true,
    }
}

/// True if `e` contains an aggregate call outside any subquery.
pub fn contains_aggregate(e: &ast::Expr) -> bool {
    use ast::Expr as A;
    let any = |xs: &[&ast::Expr]| xs.iter().any(|x| contains_aggregate(x));
    match e {
        A::Function(f) => {
            is_aggregate_call(f)
                || match &f.args {
                    ast::FunctionArguments::List(l) => l.args.iter().any(|a| match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => {
                            contains_aggregate(x)
                        }
                        _ => false,
                    }),
                    _ => false,
                }
        }
        A::BinaryOp { left, right, .. } => any(&[left, right]),
        A::UnaryOp { expr, .. }
        | A::Nested(expr)
        | A::IsNull(expr)
        | A::IsNotNull(expr)
        | A::IsTrue(expr)
        | A::IsNotTrue(expr)
        | A::IsFalse(expr)
        | A::IsNotFalse(expr)
        | A::Cast { expr, .. }
        | A::Floor { expr, .. }
        | A::Ceil { expr, .. } => contains_aggregate(expr),
        A::In { expr, target, .. } => {
            contains_aggregate(expr)
                || matches!(target, ast::InTarget::List(l) if l.iter().any(contains_aggregate))
        }
        A::IsDistinctFrom(a, b) | A::IsNotDistinctFrom(a, b) => any(&[a, b]),
        A::Between {
            expr, low, high, ..
        } => any(&[expr, low, high]),
        A::Like { expr, pattern, .. } | A::ILike { expr, pattern, .. } => any(&[expr, pattern]),
        A::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(contains_aggregate)
                || conditions
                    .iter()
                    .any(|c| contains_aggregate(&c.condition) || contains_aggregate(&c.result))
                || else_result.as_deref().is_some_and(contains_aggregate)
        }
        A::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            contains_aggregate(expr)
                || substring_from.as_deref().is_some_and(contains_aggregate)
                || substring_for.as_deref().is_some_and(contains_aggregate)
        }
        _ => false,
    }
}

impl<'c> Binder<'c> {
    pub fn new(catalog: &'c Catalog<'c>) -> Binder<'c> {
        Binder {
            catalog,
            scopes: Vec::new(),
            next_param: Cell::new(0),
            max_param: Cell::new(0),
            next_slot: Cell::new(0),
            depth: Cell::new(0),
            correlated_out: Cell::new(false),
        }
    }

    pub fn param_count(&self) -> usize {
        self.max_param.get()
    }

    fn resolve(
        &self,
        qualifier: Option<&str>,
        column: &str,
    ) -> Result<(Expr, Option<DataType>), SqlError> {
        let n = self.scopes.len();
        for (depth, scope) in self.scopes.iter().rev().enumerate() {
            let mut hit: Option<(usize, Option<DataType>)> = None;
            for t in &scope.tables {
                if qualifier.is_some_and(|q| q != t.alias) {
                    continue;
                }
                for (i, (name, ty)) in t.columns.iter().enumerate() {
                    if name == column {
                        if hit.is_some() {
                            return Err(SqlError::plan(format!(
                                "column reference \"{column}\" is ambiguous"
                            )));
                        }
                        hit = Some((t.offset + i, *ty));
                    }
                }
            }
            if let Some((index, ty)) = hit {
                if depth == 0 {
                    return Ok((Expr::Column(index), ty));
                }
                for s in &self.scopes[n - depth..] {
                    s.correlated.set(true);
                }
                return Ok((Expr::Outer { depth, index }, ty));
            }
            if let Some(q) = qualifier {
                if scope.tables.iter().any(|t| t.alias == q) {
                    return Err(SqlError::plan(format!(
                        "column \"{column}\" does not exist in table \"{q}\""
                    )));
                }
            }
        }
        match qualifier {
            Some(q) => Err(SqlError::plan(format!(
                "missing FROM-clause entry for table \"{q}\""
            ))),
            None => {
                let tables: Vec<&str> = self
                    .scopes
                    .last()
                    .map(|s| s.tables.iter().map(|t| t.alias.as_str()).collect())
                    .unwrap_or_default();
                if tables.is_empty() {
                    Err(SqlError::plan(format!(
                        "column \"{column}\" does not exist (the query has no FROM clause)"
                    )))
                } else {
                    Err(SqlError::plan(format!(
                        "column \"{column}\" does not exist in {}",
                        tables
                            .iter()
                            .map(|t| format!("\"{t}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        }
    }

    /// Binds `e` and returns it with its inferred type.
    pub fn bind(&self, e: &ast::Expr, mode: Mode) -> Result<Expr, SqlError> {
        Ok(self.bind_typed(e, mode)?.0)
    }

    pub fn bind_typed(
        &self,
        e: &ast::Expr,
        mode: Mode,
    ) -> Result<(Expr, Option<DataType>), SqlError> {
        let d = self.depth.get();
        if d > EXPR_DEPTH_MAX {
            return Err(SqlError::plan(format!(
                "expression nested more than {EXPR_DEPTH_MAX} levels deep"
            )));
        }
        self.depth.set(d + 1);
        let r = match mode {
            Mode::Grouped(g) => self.bind_grouped(e, g),
            _ => self.bind_inner(e, mode),
        };
        self.depth.set(d);
        r
    }

    fn bind_grouped(
        &self,
        e: &ast::Expr,
        g: &Grouping,
    ) -> Result<(Expr, Option<DataType>), SqlError> {
        if let ast::Expr::Function(f) = e {
            if is_aggregate_call(f) {
                return self.bind_aggregate(f, g);
            }
        }
        if let ast::Expr::Nested(inner) = e {
            return self.bind_typed(inner, Mode::Grouped(g));
        }
        if !contains_aggregate(e) {
            let (p, s) = (self.next_param.get(), self.next_slot.get());
            if let Ok((plain, ty)) = self.bind_inner(e, Mode::Plain) {
                if let Some(k) = g.keys.iter().position(|k| *k == plain) {
                    return Ok((Expr::Column(k), ty));
                }
                let mut cols = Vec::new();
                plain.columns_used(&mut cols);
                if cols.is_empty() && !has_correlated_sub(&plain) {
                    return Ok((plain, ty));
                }
            }
            self.next_param.set(p);
            self.next_slot.set(s);
        }
        match e {
            ast::Expr::Identifier(id) => Err(SqlError::plan(format!(
                "column \"{}\" must appear in the GROUP BY clause or be used in an aggregate function",
                lower(id)
            ))),
            ast::Expr::CompoundIdentifier(ids) => Err(SqlError::plan(format!(
                "column \"{}\" must appear in the GROUP BY clause or be used in an aggregate function",
                ids.iter().map(lower).collect::<Vec<_>>().join(".")
            ))),
            _ => self.bind_inner(e, Mode::Grouped(g)),
        }
    }

    fn bind_aggregate(
        &self,
        f: &ast::Function,
        g: &Grouping,
    ) -> Result<(Expr, Option<DataType>), SqlError> {
        let name = func_name(f);
        let ast::FunctionArguments::List(list) = &f.args else {
            return Err(SqlError::plan(format!(
                "aggregate {name} needs an argument list"
            )));
        };
        if f.filter.is_some() || f.over.is_some() || !list.clauses.is_empty() {
            return Err(SqlError::unsupported(format!(
                "FILTER, OVER or ORDER BY in aggregate {name}"
            )));
        }
        let distinct = matches!(
            list.duplicate_treatment,
            Some(ast::DuplicateTreatment::Distinct)
        );
        let mut args = Vec::new();
        let mut star = false;
        for a in &list.args {
            match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => star = true,
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => {
                    if contains_aggregate(x) {
                        return Err(SqlError::plan("aggregate function calls cannot be nested"));
                    }
                    args.push(self.bind_typed(x, Mode::Plain)?)
                }
                _ => return Err(SqlError::unsupported(format!("argument form in {name}"))),
            }
        }
        let (func, ty) = match (name.as_str(), star, args.len()) {
            ("count", true, 0) => (AggFunc::CountStar, Some(DataType::BigInt)),
            ("count", false, 1) => (AggFunc::Count, Some(DataType::BigInt)),
            ("sum", false, 1) => (AggFunc::Sum, sum_type(args[0].1)),
            ("avg", false, 1) => (AggFunc::Avg, avg_type(args[0].1)),
            ("min", false, 1) => (AggFunc::Min, args[0].1),
            ("max", false, 1) => (AggFunc::Max, args[0].1),
            ("total", false, 1) => (AggFunc::Total, Some(DataType::Double)),
            ("group_concat", false, 1 | 2) | ("string_agg", false, 2) => {
                (AggFunc::GroupConcat, Some(DataType::Varchar(None)))
            }
            _ => {
                return Err(SqlError::plan(format!(
                    "function {name}({}) does not exist",
                    if star {
                        "*".to_string()
                    } else {
                        format!("{} arguments", args.len())
                    }
                )))
            }
        };
        if func == AggFunc::Sum || func == AggFunc::Avg {
            if let Some(t) = args[0].1 {
                if !t.is_numeric() && t != DataType::Interval {
                    return Err(SqlError::plan(format!(
                        "function {name}({t}) does not exist"
                    )));
                }
            }
        }
        let mut it = args.into_iter().map(|a| a.0);
        let call = AggCall {
            func,
            arg: it.next(),
            separator: it.next(),
            distinct,
        };
        let mut calls = g.calls.borrow_mut();
        let j = match calls.iter().position(|c| *c == call) {
            Some(j) => j,
            None => {
                calls.push(call);
                calls.len() - 1
            }
        };
        Ok((Expr::Column(g.keys.len() + j), ty))
    }

    fn bind_inner(&self, e: &ast::Expr, mode: Mode) -> Result<(Expr, Option<DataType>), SqlError> {
        use ast::Expr as A;
        let b = |x: &ast::Expr| self.bind_typed(x, mode);
        let bx = |x: &ast::Expr| -> Result<Box<Expr>, SqlError> {
            Ok(Box::new(self.bind_typed(x, mode)?.0))
        };
        let boolean = Some(DataType::Boolean);
        Ok(match e {
            A::Identifier(id) => self.column(None, id, mode)?,
            A::CompoundIdentifier(ids) => match ids.as_slice() {
                [t, c] => self.column(Some(t), c, mode)?,
                _ => return Err(SqlError::unsupported(format!("qualified column name {e}"))),
            },
            A::Value(v) => literal(&v.value, self)?,
            A::Nested(x) => b(x)?,
            A::UnaryOp { op, expr } => match op {
                ast::UnaryOperator::Plus => b(expr)?,
                ast::UnaryOperator::Minus => {
                    // Fold `- 5` so that i64::MIN and negative literals are constants.
                    if let A::Value(v) = expr.as_ref() {
                        if let ast::Value::Number(n, _) = &v.value {
                            return number(&format!("-{n}"));
                        }
                    }
                    let (x, t) = b(expr)?;
                    (Expr::Neg(Box::new(x)), t)
                }
                ast::UnaryOperator::Not => (Expr::Not(bx(expr)?), boolean),
                _ => return Err(SqlError::unsupported(format!("operator {op}"))),
            },
            A::BinaryOp { left, op, right } => self.binary(left, op, right, mode)?,
            A::IsNull(x) => (
                Expr::IsNull {
                    expr: bx(x)?,
                    negated: false,
                },
                boolean,
            ),
            A::IsNotNull(x) => (
                Expr::IsNull {
                    expr: bx(x)?,
                    negated: true,
                },
                boolean,
            ),
            A::IsTrue(x) => (
                Expr::IsBool {
                    expr: bx(x)?,
                    value: true,
                    negated: false,
                },
                boolean,
            ),
            A::IsNotTrue(x) => (
                Expr::IsBool {
                    expr: bx(x)?,
                    value: true,
                    negated: true,
                },
                boolean,
            ),
            A::IsFalse(x) => (
                Expr::IsBool {
                    expr: bx(x)?,
                    value: false,
                    negated: false,
                },
                boolean,
            ),
            A::IsNotFalse(x) => (
                Expr::IsBool {
                    expr: bx(x)?,
                    value: false,
                    negated: true,
                },
                boolean,
            ),
            A::IsDistinctFrom(l, r) => (
                Expr::IsDistinct {
                    left: bx(l)?,
                    right: bx(r)?,
                    negated: false,
                },
                boolean,
            ),
            A::IsNotDistinctFrom(l, r) => (
                Expr::IsDistinct {
                    left: bx(l)?,
                    right: bx(r)?,
                    negated: true,
                },
                boolean,
            ),
            A::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (x, xt) = b(expr)?;
                let (lo, hi) = (self.coerced(low, xt, mode)?, self.coerced(high, xt, mode)?);
                (
                    Expr::Between {
                        expr: Box::new(x),
                        low: Box::new(lo),
                        high: Box::new(hi),
                        negated: *negated,
                    },
                    boolean,
                )
            }
            A::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                ..
            } => {
                let (x, xt) = b(expr)?;
                let list = list
                    .iter()
                    .map(|i| self.coerced(i, xt, mode))
                    .collect::<Result<Vec<_>, _>>()?;
                (
                    Expr::InList {
                        expr: Box::new(x),
                        list,
                        negated: *negated,
                    },
                    boolean,
                )
            }
            A::In {
                expr,
                target: ast::InTarget::Subquery(q),
                negated,
                ..
            } => {
                let sub = self.subquery(q, Some(1))?;
                (
                    Expr::InSubquery {
                        expr: bx(expr)?,
                        sub,
                        negated: *negated,
                    },
                    boolean,
                )
            }
            A::Exists { subquery, negated } => (
                Expr::Exists {
                    sub: self.subquery(subquery, None)?,
                    negated: *negated,
                },
                boolean,
            ),
            A::Subquery(q) => {
                let sub = self.subquery(q, Some(1))?;
                let ty = sub.plan.columns.first().and_then(|c| c.ty);
                (Expr::ScalarSubquery(sub), ty)
            }
            A::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand, conditions, else_result, mode)?,
            A::Cast {
                expr, data_type, ..
            } => {
                let ty = super::ddl::map_type(data_type)?;
                (Expr::Cast(bx(expr)?, ty), Some(ty))
            }
            A::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any: false,
            } => self.like(expr, pattern, escape_char, *negated, false, mode)?,
            A::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any: false,
            } => self.like(expr, pattern, escape_char, *negated, true, mode)?,
            A::Function(f) => self.function(f, mode)?,
            A::Floor { expr, .. } => {
                let (x, t) = b(expr)?;
                (
                    Expr::Func {
                        name: "floor".into(),
                        args: vec![x],
                    },
                    t,
                )
            }
            A::Ceil { expr, .. } => {
                let (x, t) = b(expr)?;
                (
                    Expr::Func {
                        name: "ceil".into(),
                        args: vec![x],
                    },
                    t,
                )
            }
            A::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![bx(expr)?.as_ref().clone()];
                if let Some(f) = substring_from {
                    args.push(b(f)?.0);
                } else {
                    args.push(Expr::Const(Value::Int(1)));
                }
                if let Some(f) = substring_for {
                    args.push(b(f)?.0);
                }
                (
                    Expr::Func {
                        name: "substr".into(),
                        args,
                    },
                    Some(DataType::Varchar(None)),
                )
            }
            A::Trim {
                expr,
                trim_where,
                trim_what,
                ..
            } => {
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "trim",
                };
                let mut args = vec![b(expr)?.0];
                if let Some(w) = trim_what {
                    args.push(b(w)?.0);
                }
                (
                    Expr::Func {
                        name: name.into(),
                        args,
                    },
                    Some(DataType::Varchar(None)),
                )
            }
            A::Position { expr, r#in } => (
                Expr::Func {
                    name: "strpos".into(),
                    args: vec![b(r#in)?.0, b(expr)?.0],
                },
                Some(DataType::BigInt),
            ),
            A::Interval(iv) => (interval_literal(iv)?, Some(DataType::Interval)),
            A::Extract { field, expr, .. } => {
                let (x, _) = b(expr)?;
                (
                    Expr::Func {
                        name: "extract".into(),
                        args: vec![Expr::Const(Value::text(&extract_field(field))), x],
                    },
                    ops::scalar_return_type("extract", &[]),
                )
            }
            A::AtTimeZone {
                timestamp,
                time_zone,
            } => {
                let (ts, ty) = b(timestamp)?;
                let (zone, zone_ty) = b(time_zone)?;
                // An untyped literal is read as an instant, as PostgreSQL does.
                let (ts, ty) = coerce_literal(ts, ty, Some(DataType::TimestampTz))?;
                let wrong = match ty {
                    Some(DataType::Timestamp | DataType::TimestampTz | DataType::Date) => None,
                    // The result's type depends on the argument's.
                    None if matches!(ts, Expr::Param(_)) => Some("a parameter".to_string()),
                    None => None,
                    Some(other) => Some(other.to_string()),
                };
                if let Some(what) = wrong {
                    return Err(SqlError::plan(format!(
                        "AT TIME ZONE of {what}: it takes a TIMESTAMP, a TIMESTAMP WITH \
                         TIME ZONE or a DATE (for a parameter, CAST it to one)"
                    )));
                }
                if let Some(t) = zone_ty.filter(|t| !t.is_text() && *t != DataType::Interval) {
                    return Err(SqlError::plan(format!(
                        "AT TIME ZONE {t}: a zone is text ('UTC', 'UTC+5') or an INTERVAL"
                    )));
                }
                let args = [None, ty];
                (
                    Expr::Func {
                        name: "timezone".into(),
                        args: vec![zone, ts],
                    },
                    ops::scalar_return_type("timezone", &args),
                )
            }
            A::TypedString(ts) => {
                let ty = super::ddl::map_type(&ts.data_type)?;
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                (Expr::Const(ops::cast(&Value::text(&text), ty)?), Some(ty))
            }
            _ => return Err(SqlError::unsupported(format!("expression {e}"))),
        })
    }

    fn column(
        &self,
        table: Option<&ast::Ident>,
        col: &ast::Ident,
        mode: Mode,
    ) -> Result<(Expr, Option<DataType>), SqlError> {
        if let Mode::NoColumns = mode {
            return Err(SqlError::plan(format!(
                "cannot use column reference \"{}\" here",
                lower(col)
            )));
        }
        let q = table.map(lower);
        let (e, ty) = self.resolve(q.as_deref(), &lower(col))?;
        if let (Mode::Grouped(_), Expr::Column(_)) = (mode, &e) {
            return Err(SqlError::plan(format!(
                "column \"{}\" must appear in the GROUP BY clause or be used in an aggregate function",
                lower(col)
            )));
        }
        Ok((e, ty))
    }

    /// Binds `e`, casting a string literal to `target` as PostgreSQL types an
    /// untyped literal by its context (`int_col = '5'`).
    fn coerced(
        &self,
        e: &ast::Expr,
        target: Option<DataType>,
        mode: Mode,
    ) -> Result<Expr, SqlError> {
        let (x, ty) = self.bind_typed(e, mode)?;
        Ok(coerce_literal(x, ty, target)?.0)
    }

    fn binary(
        &self,
        l: &ast::Expr,
        op: &ast::BinaryOperator,
        r: &ast::Expr,
        mode: Mode,
    ) -> Result<(Expr, Option<DataType>), SqlError> {
        use ast::BinaryOperator as B;
        let (lx, lt) = self.bind_typed(l, mode)?;
        let (rx, rt) = self.bind_typed(r, mode)?;
        let cmp = |op: CmpOp| -> Result<(Expr, Option<DataType>), SqlError> {
            let (lx, _) = coerce_literal(lx.clone(), lt, rt)?;
            let (rx, _) = coerce_literal(rx.clone(), rt, lt)?;
            check_comparable(lt, rt, op.symbol())?;
            Ok((
                Expr::Cmp(op, Box::new(lx), Box::new(rx)),
                Some(DataType::Boolean),
            ))
        };
        let arith = |op: ArithOp, sym: &str| -> Result<(Expr, Option<DataType>), SqlError> {
            let temporal = |t: Option<DataType>| {
                t.is_some_and(|t| {
                    t.is_datetime() || matches!(t, DataType::Time | DataType::Interval)
                })
            };
            if temporal(lt) || temporal(rt) {
                // A quoted literal beside a date/time is read as the type
                // PostgreSQL resolves it to: `ts + '1 day'` an interval,
                // `ts - '2020-01-01'` a timestamp.
                let (lx, lt) = coerce_literal(lx.clone(), lt, literal_partner(op, rt))?;
                let (rx, rt) = coerce_literal(rx.clone(), rt, literal_partner(op, lt))?;
                let ty = ops::datetime::return_type(op, lt, rt).ok_or_else(|| {
                    let name = |t: Option<DataType>| t.map_or("unknown".into(), |t| t.to_string());
                    SqlError::plan(format!(
                        "operator does not exist: {} {sym} {}",
                        name(lt),
                        name(rt)
                    ))
                })?;
                return Ok((Expr::Arith(op, Box::new(lx), Box::new(rx)), Some(ty)));
            }
            let ty = arith_type(lt, rt, sym)?;
            Ok((
                Expr::Arith(op, Box::new(lx.clone()), Box::new(rx.clone())),
                ty,
            ))
        };
        match op {
            B::Plus => arith(ArithOp::Add, "+"),
            B::Minus => arith(ArithOp::Sub, "-"),
            B::Multiply => arith(ArithOp::Mul, "*"),
            B::Divide => arith(ArithOp::Div, "/"),
            B::Modulo => arith(ArithOp::Mod, "%"),
            B::StringConcat => Ok((
                Expr::Concat(Box::new(lx), Box::new(rx)),
                Some(DataType::Varchar(None)),
            )),
            B::Eq => cmp(CmpOp::Eq),
            B::NotEq => cmp(CmpOp::NotEq),
            B::Lt => cmp(CmpOp::Lt),
            B::LtEq => cmp(CmpOp::LtEq),
            B::Gt => cmp(CmpOp::Gt),
            B::GtEq => cmp(CmpOp::GtEq),
            B::And => Ok((
                Expr::And(Box::new(lx), Box::new(rx)),
                Some(DataType::Boolean),
            )),
            B::Or => Ok((
                Expr::Or(Box::new(lx), Box::new(rx)),
                Some(DataType::Boolean),
            )),
            _ => Err(SqlError::unsupported(format!("operator {op}"))),
        }
    }

    fn case(
        &self,
        operand: &Option<Box<ast::Expr>>,
        conditions: &[ast::CaseWhen],
        else_result: &Option<Box<ast::Expr>>,
        mode: Mode,
    ) -> Result<(Expr, Option<DataType>), SqlError> {
        let (operand, ot) = match operand {
            Some(o) => {
                let (x, t) = self.bind_typed(o, mode)?;
                (Some(Box::new(x)), t)
            }
            None => (None, None),
        };
        let mut ty: Option<DataType> = None;
        let mut whens = Vec::with_capacity(conditions.len());
        for c in conditions {
            let w = if operand.is_some() {
                self.coerced(&c.condition, ot, mode)?
            } else {
                self.bind(&c.condition, mode)?
            };
            let (t, tt) = self.bind_typed(&c.result, mode)?;
            ty = unify(ty, tt);
            whens.push((w, t));
        }
        let otherwise = match else_result {
            Some(e) => {
                let (x, t) = self.bind_typed(e, mode)?;
                ty = unify(ty, t);
                Some(Box::new(x))
            }
            None => None,
        };
        Ok((
            Expr::Case {
                operand,
                whens,
                otherwise,
            },
            ty,
        ))
    }

    fn like(
        &self,
        expr: &ast::Expr,
        pattern: &ast::Expr,
        escape: &Option<Box<ast::Expr>>,
        negated: bool,
        case_insensitive: bool,
        mode: Mode,
    ) -> Result<(Expr, Option<DataType>), SqlError> {
        let escape = match escape.as_deref() {
            None => None,
            Some(ast::Expr::Value(v)) => match &v.value {
                ast::Value::SingleQuotedString(s) if s.chars().count() == 1 => s.chars().next(),
                _ => return Err(SqlError::plan("ESCAPE must be a single character string")),
            },
            Some(_) => return Err(SqlError::plan("ESCAPE must be a single character string")),
        };
        let e = Expr::Like {
            expr: Box::new(self.bind(expr, mode)?),
            pattern: Box::new(self.bind(pattern, mode)?),
            escape,
            negated,
            case_insensitive,
        };
        Ok((e, Some(DataType::Boolean)))
    }

    fn function(
        &self,
        f: &ast::Function,
        mode: Mode,
    ) -> Result<(Expr, Option<DataType>), SqlError> {
        let name = func_name(f);
        if is_aggregate_call(f) {
            return Err(SqlError::plan(format!(
                "aggregate function {name} is not allowed here"
            )));
        }
        if let Some(bound) = super::sequence::bind_call(self, f, mode)? {
            return Ok(bound);
        }
        let args: Vec<(Expr, Option<DataType>)> = match &f.args {
            ast::FunctionArguments::None => Vec::new(),
            ast::FunctionArguments::List(l) => {
                if l.duplicate_treatment.is_some() || !l.clauses.is_empty() {
                    return Err(SqlError::plan(format!(
                        "DISTINCT or ORDER BY is not allowed in {name}()"
                    )));
                }
                let mut out = Vec::with_capacity(l.args.len());
                for a in &l.args {
                    match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => {
                            out.push(self.bind_typed(x, mode)?)
                        }
                        _ => {
                            return Err(SqlError::unsupported(format!("argument form in {name}()")))
                        }
                    }
                }
                out
            }
            ast::FunctionArguments::Subquery(_) => {
                return Err(SqlError::unsupported(format!(
                    "subquery argument to {name}()"
                )))
            }
        };
        if f.over.is_some() {
            return Err(SqlError::unsupported("window functions"));
        }
        if let Some(ty) = clock_function(&name, args.len())? {
            return Ok((Expr::Now(ty), Some(ty)));
        }
        let name = match name.as_str() {
            "min" => "least".to_string(),
            "max" => "greatest".to_string(),
            "ifnull" => "coalesce".to_string(),
            _ => name,
        };
        match name.as_str() {
            "coalesce" => {
                if args.is_empty() {
                    return Err(SqlError::plan(
                        "function coalesce needs at least one argument",
                    ));
                }
                let ty = args.iter().fold(None, |t, a| unify(t, a.1));
                Ok((Expr::Coalesce(args.into_iter().map(|a| a.0).collect()), ty))
            }
            "nullif" => {
                let [a, b]: [(Expr, Option<DataType>); 2] = args
                    .try_into()
                    .map_err(|_| SqlError::plan("function nullif expects 2 arguments"))?;
                let ty = a.1;
                Ok((Expr::NullIf(Box::new(a.0), Box::new(b.0)), ty))
            }
            _ => {
                let types: Vec<Option<DataType>> = args.iter().map(|a| a.1).collect();
                let ty = ops::scalar_return_type(&name, &types).ok_or_else(|| {
                    let sig: Vec<String> = types
                        .iter()
                        .map(|t| t.map(|t| t.to_string()).unwrap_or("unknown".into()))
                        .collect();
                    SqlError::plan(format!(
                        "function {name}({}) does not exist",
                        sig.join(", ")
                    ))
                })?;
                Ok((
                    Expr::Func {
                        name,
                        args: args.into_iter().map(|a| a.0).collect(),
                    },
                    Some(ty),
                ))
            }
        }
    }

    /// Plans a subquery with the current scopes as its enclosing ones.
    pub fn subquery(
        &self,
        q: &ast::Query,
        want_columns: Option<usize>,
    ) -> Result<Subquery, SqlError> {
        if self.scopes.len() > SUBQUERY_DEPTH_MAX {
            return Err(SqlError::plan(format!(
                "subqueries nested more than {SUBQUERY_DEPTH_MAX} deep"
            )));
        }
        let slot = self.next_slot.get();
        self.next_slot.set(slot + 1);
        // Plan with a nested binder sharing our scopes (moved in and back).
        let (plan, correlated) = super::select::plan_subquery(self, q)?;
        if let Some(n) = want_columns {
            if plan.columns.len() != n {
                return Err(SqlError::plan(format!(
                    "subquery must return only one column, not {}",
                    plan.columns.len()
                )));
            }
        }
        Ok(Subquery {
            plan: Arc::new(plan),
            correlated,
            slot,
        })
    }

    pub fn take_param(&self, explicit: Option<usize>) -> usize {
        let i = match explicit {
            Some(n) => n,
            None => {
                let n = self.next_param.get();
                self.next_param.set(n + 1);
                n
            }
        };
        self.max_param.set(self.max_param.get().max(i + 1));
        i
    }
}

fn has_correlated_sub(e: &Expr) -> bool {
    let mut found = matches!(
        e,
        Expr::InSubquery { sub, .. } | Expr::Exists { sub, .. } | Expr::ScalarSubquery(sub) if sub.correlated
    );
    if !found {
        e.children(&mut |c| found = found || has_correlated_sub(c));
    }
    found
}

pub fn expr_has_correlated_sub(e: &Expr) -> bool {
    has_correlated_sub(e)
}

fn literal(v: &ast::Value, b: &Binder) -> Result<(Expr, Option<DataType>), SqlError> {
    Ok(match v {
        ast::Value::Number(n, _) => number(n)?,
        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
            (Expr::Const(Value::text(s)), None)
        }
        ast::Value::Boolean(x) => (Expr::Const(Value::Bool(*x)), Some(DataType::Boolean)),
        ast::Value::Null => (Expr::Const(Value::Null), None),
        ast::Value::HexStringLiteral(h) => {
            let bytes = decode_hex(h)
                .ok_or_else(|| SqlError::plan(format!("invalid hexadecimal literal X'{h}'")))?;
            (
                Expr::Const(Value::Bytes(bytes.into())),
                Some(DataType::Varbinary(None)),
            )
        }
        ast::Value::Placeholder(p) => {
            let explicit = match p.strip_prefix('$') {
                Some(n) => match n.parse::<usize>() {
                    Ok(k) if (1..=65_535).contains(&k) => Some(k - 1),
                    _ => return Err(SqlError::plan(format!("invalid parameter {p}"))),
                },
                None if p == "?" => None,
                None => return Err(SqlError::plan(format!("invalid parameter {p}"))),
            };
            (Expr::Param(b.take_param(explicit)), None)
        }
        other => return Err(SqlError::unsupported(format!("literal {other}"))),
    })
}

/// `now()` and its kin: the type each gives of the transaction's
/// timestamp, None for any other name; an error for clocks Ohm does not
/// have (every reading inside a transaction is the transaction's).
fn clock_function(name: &str, args: usize) -> Result<Option<DataType>, SqlError> {
    let ty = match name {
        "now" | "current_timestamp" | "transaction_timestamp" | "statement_timestamp" => {
            DataType::TimestampTz
        }
        "current_date" => DataType::Date,
        "localtimestamp" => DataType::Timestamp,
        "localtime" => DataType::Time,
        "current_time" => {
            return Err(SqlError::unsupported(
                "CURRENT_TIME (a time with time zone); use LOCALTIME, or CURRENT_TIMESTAMP",
            ))
        }
        "clock_timestamp" | "timeofday" => {
            return Err(SqlError::unsupported(format!(
                "{name}(): a statement reads one clock, the transaction's timestamp, so that \
                 every replica computes the same; use now()"
            )))
        }
        _ => return Ok(None),
    };
    if args != 0 {
        return Err(SqlError::plan(format!(
            "function {name} takes no arguments"
        )));
    }
    Ok(Some(ty))
}

/// An EXTRACT field in PostgreSQL's spelling (`YEARS` is `year`).
fn extract_field(f: &ast::DateTimeField) -> String {
    use ast::DateTimeField as F;
    match f {
        F::Custom(id) => id.value.to_ascii_lowercase(),
        F::Week(_) | F::Weeks | F::IsoWeek => "week".into(),
        F::DayOfWeek => "dow".into(),
        F::DayOfYear => "doy".into(),
        F::Microsecond => "microseconds".into(),
        F::Millisecond => "milliseconds".into(),
        other => {
            let s = other.to_string().to_ascii_lowercase();
            match s.strip_suffix('s') {
                Some(one) if one != "microsecond" && one != "millisecond" => one.to_string(),
                _ => s,
            }
        }
    }
}

/// `INTERVAL '3' MONTH`, `INTERVAL '1-2' YEAR TO MONTH`, `INTERVAL '1 day'`:
/// a constant read now, so a bad one fails the statement's planning.
fn interval_literal(iv: &ast::Interval) -> Result<Expr, SqlError> {
    use crate::types::datetime::{parse_interval, IntervalUnit};
    let text = match iv.value.as_ref() {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            ast::Value::Number(n, _) => n.clone(),
            other => {
                return Err(SqlError::plan(format!(
                    "INTERVAL {other}: expected a quoted interval"
                )))
            }
        },
        other => {
            return Err(SqlError::unsupported(format!(
                "INTERVAL of expression {other}: write CAST(... AS INTERVAL)"
            )))
        }
    };
    let unit = |f: &Option<ast::DateTimeField>| -> Result<Option<IntervalUnit>, SqlError> {
        match f {
            None => Ok(None),
            Some(f) => IntervalUnit::parse(&extract_field(f))
                .map(Some)
                .ok_or_else(|| SqlError::plan(format!("INTERVAL field {f} is not a unit of time"))),
        }
    };
    let lead = unit(&iv.leading_field)?;
    let last = unit(&iv.last_field)?;
    let year_month = lead == Some(IntervalUnit::Year) && last == Some(IntervalUnit::Month);
    // A number with no unit counts in the last field named, as PostgreSQL
    // reads it: `INTERVAL '5' DAY TO SECOND` is 5 seconds.
    let v = parse_interval(&text, last.or(lead), year_month).map_err(|e| {
        let m = e.message("interval", &text);
        match e {
            crate::types::datetime::DateTimeError::OutOfRange => SqlError::OutOfRange(m),
            _ => SqlError::plan(m),
        }
    })?;
    Ok(Expr::Const(Value::Interval(truncate_interval(
        v,
        last.or(lead),
    ))))
}

/// PostgreSQL drops what lies below an interval's last named field:
/// `INTERVAL '1 day 3 hours' DAY` is 1 day.
fn truncate_interval(
    v: crate::types::Interval,
    last: Option<crate::types::datetime::IntervalUnit>,
) -> crate::types::Interval {
    use crate::types::datetime::{IntervalUnit as U, USECS_PER_HOUR, USECS_PER_MINUTE};
    let keep = |unit: i64| v.micros - v.micros % unit;
    match last {
        Some(U::Year | U::Decade | U::Century | U::Millennium) => {
            crate::types::Interval::new(v.months - v.months % 12, 0, 0)
        }
        Some(U::Month) => crate::types::Interval::new(v.months, 0, 0),
        Some(U::Day | U::Week) => crate::types::Interval::new(v.months, v.days, 0),
        Some(U::Hour) => crate::types::Interval::new(v.months, v.days, keep(USECS_PER_HOUR)),
        Some(U::Minute) => crate::types::Interval::new(v.months, v.days, keep(USECS_PER_MINUTE)),
        _ => v,
    }
}

fn decode_hex(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A numeric literal: integers are BIGINT, decimals DECIMAL (exact, as in
/// PostgreSQL), exponent forms DOUBLE.
pub fn number(n: &str) -> Result<(Expr, Option<DataType>), SqlError> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok((Expr::Const(Value::Int(i)), Some(DataType::BigInt)));
    }
    let is_exp = n.contains(['e', 'E']);
    if !is_exp {
        if let Ok(d) = Decimal::from_str(n) {
            let scale = d.scale().min(28) as u8;
            return Ok((
                Expr::Const(Value::Decimal(d)),
                Some(DataType::Decimal {
                    precision: 28,
                    scale,
                }),
            ));
        }
    }
    match n.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok((Expr::Const(Value::Double(f)), Some(DataType::Double))),
        _ => Err(SqlError::plan(format!(
            "numeric literal {n} is out of range"
        ))),
    }
}

/// Casts a text literal to the type it is compared with.
pub fn coerce_literal(
    e: Expr,
    ty: Option<DataType>,
    other: Option<DataType>,
) -> Result<(Expr, Option<DataType>), SqlError> {
    match (&e, ty, other) {
        (Expr::Const(v @ Value::Text(_)), None, Some(t)) if !t.is_text() => {
            Ok((Expr::Const(ops::cast(v, t)?), Some(t)))
        }
        _ => Ok((e, ty)),
    }
}

/// The type a text literal beside a date/time operand is read as: the
/// same type in a subtraction (`ts - '2020-01-01'`, as PostgreSQL prefers
/// the operand's own type), otherwise an interval (`ts + '1 day'`).
fn literal_partner(op: ArithOp, other: Option<DataType>) -> Option<DataType> {
    match (op, other) {
        (ArithOp::Sub, Some(t)) if t.is_datetime() || t == DataType::Time => Some(t),
        (ArithOp::Add | ArithOp::Sub, Some(t))
            if t.is_datetime() || matches!(t, DataType::Time | DataType::Interval) =>
        {
            Some(DataType::Interval)
        }
        _ => None,
    }
}

fn family(t: DataType) -> u8 {
    match t {
        DataType::SmallInt
        | DataType::Integer
        | DataType::BigInt
        | DataType::Double
        | DataType::Decimal { .. } => 1,
        DataType::Varchar(_) => 2,
        DataType::Varbinary(_) => 3,
        DataType::Boolean => 4,
        DataType::Timestamp | DataType::TimestampTz | DataType::Date => 5,
        DataType::Time => 6,
        DataType::Interval => 7,
        DataType::Uuid => 8,
    }
}

fn check_comparable(a: Option<DataType>, b: Option<DataType>, op: &str) -> Result<(), SqlError> {
    if let (Some(x), Some(y)) = (a, b) {
        let (fx, fy) = (family(x), family(y));
        // Text converts to the date/time types and UUID (`d < '2020-01-01'`).
        let text_ts = (fx == 2 && fy >= 5) || (fx >= 5 && fy == 2);
        let bool_num = (fx == 4 && fy == 1) || (fx == 1 && fy == 4);
        if fx != fy && !text_ts && !bool_num {
            return Err(SqlError::plan(format!(
                "operator does not exist: {x} {op} {y}"
            )));
        }
    }
    Ok(())
}

fn arith_type(
    a: Option<DataType>,
    b: Option<DataType>,
    op: &str,
) -> Result<Option<DataType>, SqlError> {
    Ok(match (a, b) {
        (Some(x), Some(y)) => {
            if !x.is_numeric() || !y.is_numeric() {
                return Err(SqlError::plan(format!(
                    "operator does not exist: {x} {op} {y}"
                )));
            }
            Some(numeric_unify(x, y))
        }
        (Some(x), None) | (None, Some(x)) => {
            if !x.is_numeric() {
                return Err(SqlError::plan(format!(
                    "operator does not exist: {x} {op} unknown"
                )));
            }
            Some(x)
        }
        (None, None) => None,
    })
}

fn numeric_unify(x: DataType, y: DataType) -> DataType {
    match (x, y) {
        (DataType::Double, _) | (_, DataType::Double) => DataType::Double,
        (d @ DataType::Decimal { .. }, _) | (_, d @ DataType::Decimal { .. }) => d,
        _ => DataType::BigInt,
    }
}

fn unify(a: Option<DataType>, b: Option<DataType>) -> Option<DataType> {
    match (a, b) {
        (None, t) | (t, None) => t,
        (Some(x), Some(y)) if x.is_numeric() && y.is_numeric() => Some(numeric_unify(x, y)),
        (Some(x), _) => Some(x),
    }
}

fn sum_type(t: Option<DataType>) -> Option<DataType> {
    t.map(|t| if t.is_integer() { DataType::BigInt } else { t })
}

fn avg_type(t: Option<DataType>) -> Option<DataType> {
    t.map(|t| match t {
        DataType::Decimal { .. } | DataType::Interval => t,
        _ => DataType::Double,
    })
}
