//! Bound (compiled) scalar expressions and their evaluation.
//!
//! Owns: `Expr`, the resolved form of a SQL expression in which every column
//! is an offset into the row being evaluated, and `Ctx`, what evaluation may
//! read (parameters, enclosing rows, the database for subqueries).
//! Must not: look names up (that is `bind`), or touch storage except through
//! subquery plans.

use super::error::SqlError;
use super::exec;
use super::ops::{self, ArithOp};
use super::plan::QueryPlan;
use crate::storage::Database;
use crate::types::{DataType, Value};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    pub fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::NotEq => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::LtEq => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::GtEq => ord != Ordering::Less,
        }
    }

    /// The operator with its operands swapped: `a < b` is `b > a`.
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
            other => other,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }
}

/// A subquery inside an expression. `slot` numbers it within its statement
/// for the per-execution cache used when it is not correlated.
#[derive(Debug, Clone, PartialEq)]
pub struct Subquery {
    pub plan: Arc<QueryPlan>,
    pub correlated: bool,
    pub slot: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(Value),
    /// Offset into the row being evaluated.
    Column(usize),
    /// A column of an enclosing query's row: `depth` 1 is the nearest.
    Outer {
        depth: usize,
        index: usize,
    },
    /// The n-th (0-based) statement parameter.
    Param(usize),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Concat(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `IS [NOT] DISTINCT FROM`: NULL-safe equality.
    IsDistinct {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// `IS [NOT] TRUE/FALSE`.
    IsBool {
        expr: Box<Expr>,
        value: bool,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    InSubquery {
        expr: Box<Expr>,
        sub: Subquery,
        negated: bool,
    },
    Exists {
        sub: Subquery,
        negated: bool,
    },
    ScalarSubquery(Subquery),
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Cast(Box<Expr>, DataType),
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<char>,
        negated: bool,
        case_insensitive: bool,
    },
    Coalesce(Vec<Expr>),
    NullIf(Box<Expr>, Box<Expr>),
    Func {
        name: String,
        args: Vec<Expr>,
    },
    /// The transaction's timestamp as this type: TIMESTAMPTZ (`now()`,
    /// `current_timestamp`), DATE (`current_date`), TIMESTAMP
    /// (`localtimestamp`) or TIME (`localtime`).
    Now(DataType),
    /// `nextval('name')`: this partition's next value of the sequence.
    NextVal(String),
    /// `setval('name', value [, called])`.
    SetVal {
        name: String,
        args: Vec<Expr>,
    },
}

/// Results of uncorrelated subqueries, computed once per statement execution.
#[derive(Default)]
pub struct SubqueryCache {
    // Keyed by subquery slot. BTreeMaps: empty ones cost nothing to create,
    // which matters on the point-query path where there are no subqueries.
    scalars: BTreeMap<usize, Value>,
    sets: BTreeMap<usize, Arc<InSet>>,
    exists: BTreeMap<usize, bool>,
    /// Hash tables of correlated subqueries kept across outer rows
    /// (`Access::HashJoin { kept: true }`), keyed by the address of their
    /// plan level: plans neither move nor drop while the statement runs,
    /// and the same level always builds the same table.
    pub(super) kept: BTreeMap<usize, Arc<exec::HashTable>>,
}

/// The values of an IN subquery, ready for membership tests.
pub struct InSet {
    values: HashSet<Value>,
    has_null: bool,
}

/// Enclosing rows for correlated subqueries, innermost first.
pub struct Outer<'a> {
    pub row: &'a [Value],
    pub parent: Option<&'a Outer<'a>>,
}

/// What evaluation may read.
pub struct Ctx<'a> {
    pub db: &'a Database,
    pub params: &'a [Value],
    /// The transaction's timestamp (µs since the epoch, UTC): what
    /// `now()`, `current_date` and their kin read. Set by whoever runs the
    /// statement (a procedure's call, the coordinator), never a clock read
    /// here, so a procedure sees the same value as `ctx.now()`.
    pub now_us: i64,
    pub outer: Option<&'a Outer<'a>>,
    pub cache: &'a RefCell<SubqueryCache>,
}

impl<'a> Ctx<'a> {
    /// A statement's top-level context: no enclosing rows.
    pub fn new(
        db: &'a Database,
        params: &'a [Value],
        now_us: i64,
        cache: &'a RefCell<SubqueryCache>,
    ) -> Ctx<'a> {
        Ctx {
            db,
            params,
            now_us,
            outer: None,
            cache,
        }
    }

    fn outer_value(&self, depth: usize, index: usize) -> Result<Value, SqlError> {
        let mut o = self.outer;
        for _ in 1..depth {
            o = o.and_then(|x| x.parent);
        }
        o.and_then(|x| x.row.get(index))
            .cloned()
            .ok_or_else(|| SqlError::exec("internal: outer column reference out of range"))
    }
}

/// Visits the direct children of an `Expr` (not into subqueries), for both
/// `children` and `children_mut`: `$iter` is `iter` or `iter_mut`.
macro_rules! for_each_child {
    ($e:expr, $f:ident, $iter:ident) => {
        match $e {
            Expr::Const(_)
            | Expr::Column(_)
            | Expr::Outer { .. }
            | Expr::Param(_)
            | Expr::Now(_)
            | Expr::NextVal(_) => {}
            Expr::Exists { .. } | Expr::ScalarSubquery(_) => {}
            Expr::Arith(_, a, b)
            | Expr::Concat(a, b)
            | Expr::Cmp(_, a, b)
            | Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::NullIf(a, b)
            | Expr::IsDistinct {
                left: a, right: b, ..
            }
            | Expr::Like {
                expr: a,
                pattern: b,
                ..
            } => {
                $f(a);
                $f(b)
            }
            Expr::Neg(a) | Expr::Not(a) | Expr::Cast(a, _) => $f(a),
            Expr::IsNull { expr, .. }
            | Expr::IsBool { expr, .. }
            | Expr::InSubquery { expr, .. } => $f(expr),
            Expr::Between {
                expr, low, high, ..
            } => {
                $f(expr);
                $f(low);
                $f(high)
            }
            Expr::InList { expr, list, .. } => {
                $f(expr);
                list.$iter().for_each(|x| $f(x))
            }
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                if let Some(o) = operand {
                    $f(o)
                }
                for (w, t) in whens.$iter() {
                    $f(w);
                    $f(t)
                }
                if let Some(o) = otherwise {
                    $f(o)
                }
            }
            Expr::Coalesce(list)
            | Expr::Func { args: list, .. }
            | Expr::SetVal { args: list, .. } => list.$iter().for_each(|x| $f(x)),
        }
    };
}

fn truth(v: &Value) -> Result<Option<bool>, SqlError> {
    ops::truthy(v)
}

impl Expr {
    pub fn constant(&self) -> Option<&Value> {
        match self {
            Expr::Const(v) => Some(v),
            _ => None,
        }
    }

    /// Evaluates to a boolean in a WHERE/ON/HAVING position: NULL is false.
    pub fn eval_pred(&self, ctx: &Ctx, row: &[Value]) -> Result<bool, SqlError> {
        Ok(truth(&self.eval(ctx, row)?)? == Some(true))
    }

    pub fn eval(&self, ctx: &Ctx, row: &[Value]) -> Result<Value, SqlError> {
        match self {
            Expr::Const(v) => Ok(v.clone()),
            Expr::Column(i) => row
                .get(*i)
                .cloned()
                .ok_or_else(|| SqlError::exec("internal: column offset out of range")),
            Expr::Outer { depth, index } => ctx.outer_value(*depth, *index),
            Expr::Param(i) => ctx.params.get(*i).cloned().ok_or_else(|| {
                SqlError::exec(format!(
                    "statement needs parameter ${} but only {} given",
                    i + 1,
                    ctx.params.len()
                ))
            }),
            Expr::Arith(op, a, b) => ops::arith(*op, &a.eval(ctx, row)?, &b.eval(ctx, row)?),
            Expr::Neg(a) => ops::negate(&a.eval(ctx, row)?),
            Expr::Concat(a, b) => concat(&a.eval(ctx, row)?, &b.eval(ctx, row)?),
            Expr::Cmp(op, a, b) => {
                let (x, y) = (a.eval(ctx, row)?, b.eval(ctx, row)?);
                Ok(match ops::compare(&x, &y)? {
                    None => Value::Null,
                    Some(ord) => Value::Bool(op.holds(ord)),
                })
            }
            Expr::IsDistinct {
                left,
                right,
                negated,
            } => {
                let (x, y) = (left.eval(ctx, row)?, right.eval(ctx, row)?);
                let distinct = match (x.is_null(), y.is_null()) {
                    (true, true) => false,
                    (true, false) | (false, true) => true,
                    _ => ops::compare(&x, &y)? != Some(Ordering::Equal),
                };
                Ok(Value::Bool(distinct != *negated))
            }
            Expr::And(a, b) => {
                let x = truth(&a.eval(ctx, row)?)?;
                if x == Some(false) {
                    return Ok(Value::Bool(false));
                }
                let y = truth(&b.eval(ctx, row)?)?;
                Ok(match (x, y) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                })
            }
            Expr::Or(a, b) => {
                let x = truth(&a.eval(ctx, row)?)?;
                if x == Some(true) {
                    return Ok(Value::Bool(true));
                }
                let y = truth(&b.eval(ctx, row)?)?;
                Ok(match (x, y) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                })
            }
            Expr::Not(a) => Ok(match truth(&a.eval(ctx, row)?)? {
                None => Value::Null,
                Some(b) => Value::Bool(!b),
            }),
            Expr::IsNull { expr, negated } => {
                Ok(Value::Bool(expr.eval(ctx, row)?.is_null() != *negated))
            }
            Expr::IsBool {
                expr,
                value,
                negated,
            } => {
                let t = truth(&expr.eval(ctx, row)?)?;
                Ok(Value::Bool((t == Some(*value)) != *negated))
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let v = expr.eval(ctx, row)?;
                let lo = ops::compare(&v, &low.eval(ctx, row)?)?.map(|o| o != Ordering::Less);
                let hi = ops::compare(&v, &high.eval(ctx, row)?)?.map(|o| o != Ordering::Greater);
                let r = match (lo, hi) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                Ok(negate_opt(r, *negated))
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(ctx, row)?;
                if list.is_empty() {
                    return Ok(Value::Bool(*negated));
                }
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    match ops::compare(&v, &item.eval(ctx, row)?)? {
                        Some(Ordering::Equal) => return Ok(Value::Bool(!*negated)),
                        None => saw_null = true,
                        _ => {}
                    }
                }
                Ok(if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                })
            }
            Expr::InSubquery { expr, sub, negated } => {
                let v = expr.eval(ctx, row)?;
                let set = in_set(ctx, row, sub)?;
                let r = if set.values.is_empty() && !set.has_null {
                    Some(false)
                } else if v.is_null() {
                    None
                } else if set.values.contains(&v) {
                    // Hash equality is numeric across representations, like SQL `=`.
                    Some(true)
                } else if set.has_null {
                    None
                } else {
                    check_comparable(&v, &set.values)?;
                    Some(false)
                };
                Ok(negate_opt(r, *negated))
            }
            Expr::Exists { sub, negated } => {
                let found = exists(ctx, row, sub)?;
                Ok(Value::Bool(found != *negated))
            }
            Expr::ScalarSubquery(sub) => scalar(ctx, row, sub),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => eval_case(ctx, row, operand, whens, otherwise),
            Expr::Cast(e, ty) => ops::cast(&e.eval(ctx, row)?, *ty),
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
                case_insensitive,
            } => {
                let (v, p) = (expr.eval(ctx, row)?, pattern.eval(ctx, row)?);
                match (&v, &p) {
                    (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
                    (Value::Text(s), Value::Text(pat)) => Ok(Value::Bool(
                        ops::like(s, pat, *escape, *case_insensitive) != *negated,
                    )),
                    _ => Err(SqlError::exec(format!(
                        "operator does not exist: {} LIKE {}",
                        v.kind(),
                        p.kind()
                    ))),
                }
            }
            Expr::Coalesce(list) => {
                for e in list {
                    let v = e.eval(ctx, row)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                Ok(Value::Null)
            }
            Expr::NullIf(a, b) => {
                let x = a.eval(ctx, row)?;
                let y = b.eval(ctx, row)?;
                Ok(if ops::compare(&x, &y)? == Some(Ordering::Equal) {
                    Value::Null
                } else {
                    x
                })
            }
            Expr::Func { name, args } => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(ctx, row))
                    .collect::<Result<Vec<_>, _>>()?;
                ops::call_scalar(name, &vals)?
                    .ok_or_else(|| SqlError::exec(format!("function {name} does not exist")))
            }
            Expr::Now(ty) => Ok(now_as(ctx.now_us, *ty)),
            Expr::NextVal(name) => Ok(Value::Int(super::sequence::next(ctx.db, name)?)),
            Expr::SetVal { name, args } => {
                let v = match args.first().map(|a| a.eval(ctx, row)).transpose()? {
                    Some(Value::Int(v)) => v,
                    Some(Value::Null) | None => return Ok(Value::Null),
                    Some(other) => {
                        return Err(SqlError::exec(format!(
                            "setval: value {other} is not a whole number"
                        )))
                    }
                };
                let called = match args.get(1).map(|a| a.eval(ctx, row)).transpose()? {
                    None => true,
                    Some(Value::Bool(b)) => b,
                    Some(Value::Null) => return Ok(Value::Null),
                    Some(other) => {
                        return Err(SqlError::exec(format!(
                            "setval: is_called {other} is not a boolean"
                        )))
                    }
                };
                Ok(Value::Int(super::sequence::set(ctx.db, name, v, called)?))
            }
        }
    }

    /// Splits an AND into its parts, nested ANDs too.
    pub fn into_conjuncts(self, out: &mut Vec<Expr>) {
        match self {
            Expr::And(a, b) => {
                a.into_conjuncts(out);
                b.into_conjuncts(out);
            }
            other => out.push(other),
        }
    }

    /// Splits an OR into its branches, nested ORs too.
    pub fn into_disjuncts(self, out: &mut Vec<Expr>) {
        match self {
            Expr::Or(a, b) => {
                a.into_disjuncts(out);
                b.into_disjuncts(out);
            }
            other => out.push(other),
        }
    }

    /// The AND of `parts` (at least one).
    pub fn and_all(parts: Vec<Expr>) -> Expr {
        let mut it = parts.into_iter();
        let first = it.next().expect("and_all of at least one part");
        it.fold(first, |acc, e| Expr::And(Box::new(acc), Box::new(e)))
    }

    /// The OR of `parts` (at least one).
    pub fn or_all(parts: Vec<Expr>) -> Expr {
        let mut it = parts.into_iter();
        let first = it.next().expect("or_all of at least one part");
        it.fold(first, |acc, e| Expr::Or(Box::new(acc), Box::new(e)))
    }

    /// Calls `f` on every direct child expression (not into subqueries).
    pub fn children(&self, f: &mut dyn FnMut(&Expr)) {
        for_each_child!(self, f, iter)
    }

    /// Whether evaluation reads the transaction's timestamp (`now()`).
    pub fn reads_clock(&self) -> bool {
        let mut found = matches!(self, Expr::Now(_));
        self.children(&mut |c| found = found || c.reads_clock());
        found
    }

    /// Whether evaluation takes values from a sequence (`nextval`,
    /// `setval`): it changes state, so it is never computed once for many
    /// rows, nor kept as a constant.
    pub fn uses_sequence(&self) -> bool {
        let mut found = matches!(self, Expr::NextVal(_) | Expr::SetVal { .. });
        self.children(&mut |c| found = found || c.uses_sequence());
        found
    }

    /// Calls `f` on each subquery in this expression, outermost first (not
    /// into the subqueries' own plans).
    pub fn subqueries(&self, f: &mut dyn FnMut(&Subquery)) {
        match self {
            Expr::ScalarSubquery(sub) | Expr::Exists { sub, .. } => f(sub),
            Expr::InSubquery { sub, .. } => f(sub),
            _ => {}
        }
        self.children(&mut |c| c.subqueries(f));
    }

    /// Whether evaluation reads an enclosing query's row (not counting
    /// what subqueries inside read).
    pub fn reads_outer(&self) -> bool {
        let mut found = matches!(self, Expr::Outer { .. });
        self.children(&mut |c| found = found || c.reads_outer());
        found
    }

    /// The row offsets this expression reads (of the row it is evaluated on).
    pub fn columns_used(&self, out: &mut Vec<usize>) {
        if let Expr::Column(i) = self {
            out.push(*i);
        }
        self.children(&mut |c| c.columns_used(out));
    }

    /// True if evaluation reads no row and no enclosing row (parameters and
    /// constants only): such an expression can be evaluated once per execution.
    pub fn is_row_independent(&self) -> bool {
        let mut ok = !matches!(
            self,
            Expr::Column(_)
                | Expr::NextVal(_)
                | Expr::SetVal { .. }
                | Expr::Outer { .. }
                | Expr::InSubquery { .. }
                | Expr::Exists { .. }
                | Expr::ScalarSubquery(_)
        );
        if ok {
            self.children(&mut |c| ok = ok && c.is_row_independent());
        }
        ok
    }

    /// Rewrites every column offset through `map` (used when an expression
    /// moves to a row with a different layout).
    pub fn remap_columns(&mut self, map: &dyn Fn(usize) -> usize) {
        if let Expr::Column(i) = self {
            *i = map(*i);
            return;
        }
        self.children_mut(&mut |c| c.remap_columns(map));
    }

    fn children_mut(&mut self, f: &mut dyn FnMut(&mut Expr)) {
        for_each_child!(self, f, iter_mut)
    }
}

/// The transaction's timestamp as `ty` (the session's zone is UTC).
fn now_as(now_us: i64, ty: DataType) -> Value {
    let day = crate::types::datetime::USECS_PER_DAY;
    match ty {
        DataType::Date => Value::Date(now_us.div_euclid(day) as i32),
        DataType::Timestamp => Value::Timestamp(now_us),
        DataType::Time => Value::Time(now_us.rem_euclid(day)),
        _ => Value::TimestampTz(now_us),
    }
}

fn negate_opt(r: Option<bool>, negated: bool) -> Value {
    match r {
        None => Value::Null,
        Some(b) => Value::Bool(b != negated),
    }
}

fn concat(a: &Value, b: &Value) -> Result<Value, SqlError> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    let render = |v: &Value| ops::cast(v, DataType::Varchar(None));
    match (render(a)?, render(b)?) {
        (Value::Text(x), Value::Text(y)) => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(&x);
            s.push_str(&y);
            Ok(Value::Text(smol_str::SmolStr::from(s)))
        }
        _ => Err(SqlError::exec(
            "internal: cast to text did not produce text",
        )),
    }
}

fn eval_case(
    ctx: &Ctx,
    row: &[Value],
    operand: &Option<Box<Expr>>,
    whens: &[(Expr, Expr)],
    otherwise: &Option<Box<Expr>>,
) -> Result<Value, SqlError> {
    let base = match operand {
        Some(o) => Some(o.eval(ctx, row)?),
        None => None,
    };
    for (when, then) in whens {
        let hit = match &base {
            Some(b) => ops::compare(b, &when.eval(ctx, row)?)? == Some(Ordering::Equal),
            None => when.eval_pred(ctx, row)?,
        };
        if hit {
            return then.eval(ctx, row);
        }
    }
    match otherwise {
        Some(e) => e.eval(ctx, row),
        None => Ok(Value::Null),
    }
}

/// A failed membership test still has to type-check, as `=` would.
fn check_comparable(v: &Value, set: &HashSet<Value>) -> Result<(), SqlError> {
    if let Some(any) = set.iter().next() {
        ops::compare(v, any)?;
    }
    Ok(())
}

fn run_sub(
    ctx: &Ctx,
    row: &[Value],
    sub: &Subquery,
    limit: Option<usize>,
) -> Result<Vec<Vec<Value>>, SqlError> {
    let outer = Outer {
        row,
        parent: ctx.outer,
    };
    let sub_ctx = Ctx {
        db: ctx.db,
        params: ctx.params,
        now_us: ctx.now_us,
        outer: Some(&outer),
        cache: ctx.cache,
    };
    exec::run_query(&sub.plan, &sub_ctx, limit)
}

fn scalar(ctx: &Ctx, row: &[Value], sub: &Subquery) -> Result<Value, SqlError> {
    if !sub.correlated {
        if let Some(v) = ctx.cache.borrow().scalars.get(&sub.slot) {
            return Ok(v.clone());
        }
    }
    let rows = run_sub(ctx, row, sub, Some(2))?;
    if rows.len() > 1 {
        return Err(SqlError::exec(
            "more than one row returned by a subquery used as an expression",
        ));
    }
    let v = match rows.into_iter().next() {
        None => Value::Null,
        Some(mut r) if r.len() == 1 => r.pop().unwrap_or(Value::Null),
        Some(_) => return Err(SqlError::exec("subquery must return only one column")),
    };
    if !sub.correlated {
        ctx.cache.borrow_mut().scalars.insert(sub.slot, v.clone());
    }
    Ok(v)
}

fn exists(ctx: &Ctx, row: &[Value], sub: &Subquery) -> Result<bool, SqlError> {
    if !sub.correlated {
        if let Some(b) = ctx.cache.borrow().exists.get(&sub.slot) {
            return Ok(*b);
        }
    }
    let found = !run_sub(ctx, row, sub, Some(1))?.is_empty();
    if !sub.correlated {
        ctx.cache.borrow_mut().exists.insert(sub.slot, found);
    }
    Ok(found)
}

fn in_set(ctx: &Ctx, row: &[Value], sub: &Subquery) -> Result<Arc<InSet>, SqlError> {
    if !sub.correlated {
        if let Some(s) = ctx.cache.borrow().sets.get(&sub.slot) {
            return Ok(s.clone());
        }
    }
    let rows = run_sub(ctx, row, sub, None)?;
    let mut set = InSet {
        values: HashSet::with_capacity(rows.len()),
        has_null: false,
    };
    for mut r in rows {
        if r.len() != 1 {
            return Err(SqlError::exec("subquery has too many columns"));
        }
        match r.pop() {
            Some(Value::Null) | None => set.has_null = true,
            Some(v) => {
                set.values.insert(v);
            }
        }
    }
    let set = Arc::new(set);
    if !sub.correlated {
        ctx.cache.borrow_mut().sets.insert(sub.slot, set.clone());
    }
    Ok(set)
}
