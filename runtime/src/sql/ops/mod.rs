//! Operations on single values: arithmetic with overflow checks, SQL
//! comparison, truthiness, CAST and assignment coercion, LIKE and the scalar
//! function library.
//!
//! Owns: the semantics of one operator or function applied to values
//! (PostgreSQL-flavoured; where PostgreSQL and SQLite agree, exactly that).
//! Must not: know about rows, plans or storage. Pure functions, no I/O.
//!
//! ```text
//!   mod.rs      arith, negate, compare, truthy
//!   cast.rs     cast (explicit), coerce_to_column (assignment), rendering
//!   datetime.rs date/time/interval arithmetic
//!   like.rs     LIKE / ILIKE matching
//!   func.rs     call_scalar dispatch, arity, return types
//!   func_num.rs / func_text.rs / func_time.rs   the function bodies
//! ```

mod cast;
pub mod datetime;
mod func;
mod func_num;
mod func_text;
mod func_time;
mod like;

pub use cast::{cast, coerce_owned, coerce_to_column, format_double, render_text};
pub use func::{call_scalar, common_type, scalar_return_type};
pub use like::like;

use super::error::SqlError;
use crate::types::{DataType, Value, ValueKind};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    /// The operator as written in SQL, for error messages.
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

pub(crate) fn bigint_range() -> SqlError {
    SqlError::exec("bigint out of range")
}

pub(crate) fn division_by_zero() -> SqlError {
    SqlError::exec("division by zero")
}

pub(crate) fn double_range() -> SqlError {
    SqlError::exec("double precision out of range")
}

/// `a op b`. NULL in, NULL out. Int op Int stays Int (division truncates
/// toward zero); overflow is an error ("bigint out of range"); division or
/// modulo by zero is an error ("division by zero"). Int with Double -> Double;
/// Decimal with Int -> Decimal; Decimal with Double -> Double. Dates, times
/// and intervals as `datetime` says; any other operands -> a type error
/// naming the operator and both types.
pub fn arith(op: ArithOp, a: &Value, b: &Value) -> Result<Value, SqlError> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
        (Value::Int(x), Value::Int(y)) => int_arith(op, *x, *y).map(Value::Int),
        (Value::Double(_), _) | (_, Value::Double(_)) if is_number(a) && is_number(b) => {
            double_arith(op, to_f64(a)?, to_f64(b)?).map(Value::Double)
        }
        _ if is_number(a) && is_number(b) => {
            decimal_arith(op, to_decimal(a)?, to_decimal(b)?).map(Value::Decimal)
        }
        _ => match datetime::arith(op, a, b) {
            Some(r) => r,
            None => Err(SqlError::exec(format!(
                "operator does not exist: {} {} {}",
                a.kind(),
                op.symbol(),
                b.kind()
            ))),
        },
    }
}

/// The result type of `a op b` given the operand types (None for a NULL
/// literal), or None if the operator does not apply to those types.
pub fn arith_return_type(a: Option<DataType>, b: Option<DataType>) -> Option<DataType> {
    let numeric = |t: Option<DataType>| t.is_none_or(|t| t.is_numeric());
    if !numeric(a) || !numeric(b) {
        return None;
    }
    match (a, b) {
        (Some(DataType::Double), _) | (_, Some(DataType::Double)) => Some(DataType::Double),
        (Some(DataType::Decimal { scale: x, .. }), Some(DataType::Decimal { scale: y, .. })) => {
            Some(decimal_type(x.max(y)))
        }
        (Some(DataType::Decimal { scale, .. }), _) | (_, Some(DataType::Decimal { scale, .. })) => {
            Some(decimal_type(scale))
        }
        _ => Some(DataType::BigInt),
    }
}

/// The DECIMAL type computed results carry: rust_decimal's 28 digits.
pub(crate) fn decimal_type(scale: u8) -> DataType {
    DataType::Decimal {
        precision: 28,
        scale: scale.min(28),
    }
}

pub(crate) fn is_number(v: &Value) -> bool {
    matches!(v, Value::Int(_) | Value::Double(_) | Value::Decimal(_))
}

/// A number as f64; callers have checked `is_number`.
pub(crate) fn to_f64(v: &Value) -> Result<f64, SqlError> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Double(d) => Ok(*d),
        Value::Decimal(d) => d.to_f64().ok_or_else(double_range),
        other => Err(SqlError::exec(format!("{} is not a number", other.kind()))),
    }
}

fn to_decimal(v: &Value) -> Result<Decimal, SqlError> {
    match v {
        Value::Int(i) => Ok(Decimal::from(*i)),
        Value::Decimal(d) => Ok(*d),
        other => Err(SqlError::exec(format!(
            "{} is not exact numeric",
            other.kind()
        ))),
    }
}

fn int_arith(op: ArithOp, x: i64, y: i64) -> Result<i64, SqlError> {
    let r = match op {
        ArithOp::Add => x.checked_add(y),
        ArithOp::Sub => x.checked_sub(y),
        ArithOp::Mul => x.checked_mul(y),
        ArithOp::Div if y == 0 => return Err(division_by_zero()),
        ArithOp::Div => x.checked_div(y),
        ArithOp::Mod if y == 0 => return Err(division_by_zero()),
        // i64::MIN % -1 is mathematically 0; PostgreSQL returns 0 too.
        ArithOp::Mod => Some(x.wrapping_rem(y)),
    };
    r.ok_or_else(bigint_range)
}

fn double_arith(op: ArithOp, x: f64, y: f64) -> Result<f64, SqlError> {
    let r = match op {
        ArithOp::Add => x + y,
        ArithOp::Sub => x - y,
        ArithOp::Mul => x * y,
        ArithOp::Div if y == 0.0 => return Err(division_by_zero()),
        ArithOp::Div => x / y,
        ArithOp::Mod if y == 0.0 => return Err(division_by_zero()),
        ArithOp::Mod => x % y,
    };
    if r.is_infinite() && x.is_finite() && y.is_finite() {
        return Err(double_range());
    }
    Ok(r)
}

fn decimal_arith(op: ArithOp, x: Decimal, y: Decimal) -> Result<Decimal, SqlError> {
    let r = match op {
        ArithOp::Add => x.checked_add(y),
        ArithOp::Sub => x.checked_sub(y),
        ArithOp::Mul => x.checked_mul(y),
        ArithOp::Div if y.is_zero() => return Err(division_by_zero()),
        ArithOp::Div => x.checked_div(y),
        ArithOp::Mod if y.is_zero() => return Err(division_by_zero()),
        ArithOp::Mod => x.checked_rem(y),
    };
    r.ok_or_else(|| SqlError::exec("numeric out of range"))
}

/// Unary minus. NULL -> NULL; i64::MIN -> overflow error.
pub fn negate(v: &Value) -> Result<Value, SqlError> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::Int(i) => i.checked_neg().map(Value::Int).ok_or_else(bigint_range),
        Value::Double(d) => Ok(Value::Double(-d)),
        Value::Decimal(d) => Ok(Value::Decimal(-*d)),
        Value::Interval(i) => datetime::negate(*i),
        other => Err(SqlError::exec(format!(
            "operator does not exist: - {}",
            other.kind()
        ))),
    }
}

/// SQL comparison: `Ok(None)` if either side is NULL. Numbers compare by value
/// across Int/Double/Decimal (NaN equals NaN and is above every number, as in
/// PostgreSQL); text by bytes; bool, bytes, UUIDs, times and intervals
/// with their own kind; dates and both timestamps with one another (a date
/// is its midnight, UTC); text with a date/time or UUID parses the text. Comparing different families (text
/// with a number) is a type error naming both types.
pub fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, SqlError> {
    let ord = match (a, b) {
        (Value::Null, _) | (_, Value::Null) => return Ok(None),
        _ if is_number(a) && is_number(b) => {
            // total_cmp already ranks NaN above all numbers; only NaN vs NaN
            // of different sign bits needs fixing.
            match (a, b) {
                (Value::Double(x), Value::Double(y)) if x.is_nan() && y.is_nan() => Ordering::Equal,
                _ => a.total_cmp(b),
            }
        }
        (Value::Text(_), x) | (x, Value::Text(_)) if x.kind().parses_from_text() => {
            let (x, y) = (text_as(a, b)?, text_as(b, a)?);
            return compare(&x, &y);
        }
        (
            Value::Date(_) | Value::Timestamp(_) | Value::TimestampTz(_),
            Value::Date(_) | Value::Timestamp(_) | Value::TimestampTz(_),
        ) => point_micros(a).cmp(&point_micros(b)),
        _ if a.kind() == b.kind() => a.total_cmp(b),
        _ => {
            return Err(SqlError::exec(format!(
                "cannot compare {} with {}",
                a.kind(),
                b.kind()
            )))
        }
    };
    Ok(Some(ord))
}

/// `v`, read as `other`'s type if it is text and `other` is a type text
/// converts to (`ts < '2020-01-01'`).
fn text_as(v: &Value, other: &Value) -> Result<Value, SqlError> {
    match (v, other) {
        (Value::Text(_), Value::Text(_)) => Ok(v.clone()),
        (Value::Text(_), o) => cast(v, kind_type(o)),
        _ => Ok(v.clone()),
    }
}

/// The type a value of this kind casts to, for date/time kinds and UUID.
fn kind_type(v: &Value) -> DataType {
    match v {
        Value::Date(_) => DataType::Date,
        Value::Time(_) => DataType::Time,
        Value::TimestampTz(_) => DataType::TimestampTz,
        Value::Interval(_) => DataType::Interval,
        Value::Uuid(_) => DataType::Uuid,
        _ => DataType::Timestamp,
    }
}

/// A date or timestamp as microseconds since the epoch (a date is its
/// midnight; the session's zone is UTC), wide enough for any date.
fn point_micros(v: &Value) -> i128 {
    match v {
        Value::Date(d) => i128::from(*d) * i128::from(crate::types::datetime::USECS_PER_DAY),
        Value::Timestamp(t) | Value::TimestampTz(t) => i128::from(*t),
        _ => 0,
    }
}

/// SQL boolean interpretation of a value in WHERE/AND/OR/NOT: NULL is
/// unknown; numbers are true when non-zero (SQLite compatibility, which the
/// conformance corpus relies on); text, bytes and timestamps are errors.
pub fn truthy(v: &Value) -> Result<Option<bool>, SqlError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Int(i) => Ok(Some(*i != 0)),
        Value::Double(d) => Ok(Some(*d != 0.0)),
        Value::Decimal(d) => Ok(Some(!d.is_zero())),
        _ => Err(SqlError::exec(format!(
            "argument of WHERE/AND/OR/NOT must be type boolean, not {}",
            v.kind()
        ))),
    }
}

/// Name of a value's kind as used in "function f(TEXT) does not exist".
pub(crate) fn kind_list(args: &[Value]) -> String {
    let kinds: Vec<String> = args
        .iter()
        .map(|a| ValueKind::to_string(&a.kind()))
        .collect();
    kinds.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Value {
        Value::Decimal(Decimal::from_str(s).unwrap())
    }

    fn err(r: Result<Value, SqlError>) -> String {
        match r {
            Err(e) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn same(a: Value, b: Value) {
        assert_eq!(a.kind(), b.kind(), "{a:?} vs {b:?}");
        assert_eq!(a, b);
    }

    #[test]
    fn int_overflow_edges() {
        use ArithOp::*;
        let (max, min) = (Value::Int(i64::MAX), Value::Int(i64::MIN));
        assert_eq!(err(arith(Add, &max, &Value::Int(1))), "bigint out of range");
        assert_eq!(err(arith(Sub, &min, &Value::Int(1))), "bigint out of range");
        assert_eq!(err(arith(Mul, &max, &Value::Int(2))), "bigint out of range");
        assert_eq!(
            err(arith(Div, &min, &Value::Int(-1))),
            "bigint out of range"
        );
        same(arith(Mod, &min, &Value::Int(-1)).unwrap(), Value::Int(0));
        assert_eq!(err(negate(&min)), "bigint out of range");
        same(negate(&max).unwrap(), Value::Int(-i64::MAX));
        same(
            arith(Add, &Value::Int(i64::MAX - 1), &Value::Int(1)).unwrap(),
            max,
        );
    }

    #[test]
    fn int_division_truncates_and_mod_follows_dividend() {
        use ArithOp::*;
        same(
            arith(Div, &Value::Int(7), &Value::Int(2)).unwrap(),
            Value::Int(3),
        );
        same(
            arith(Div, &Value::Int(-7), &Value::Int(2)).unwrap(),
            Value::Int(-3),
        );
        same(
            arith(Mod, &Value::Int(-7), &Value::Int(3)).unwrap(),
            Value::Int(-1),
        );
        same(
            arith(Mod, &Value::Int(7), &Value::Int(-3)).unwrap(),
            Value::Int(1),
        );
    }

    #[test]
    fn division_by_zero_for_every_kind() {
        use ArithOp::*;
        for op in [Div, Mod] {
            for (a, b) in [
                (Value::Int(1), Value::Int(0)),
                (Value::Double(1.0), Value::Double(0.0)),
                (Value::Double(1.0), Value::Int(0)),
                (dec("1.5"), dec("0")),
                (dec("1.5"), Value::Int(0)),
                (Value::Int(1), dec("0.00")),
            ] {
                assert_eq!(
                    err(arith(op, &a, &b)),
                    "division by zero",
                    "{a:?} {op:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn mixed_arithmetic_types() {
        use ArithOp::*;
        same(
            arith(Add, &Value::Int(1), &Value::Double(0.5)).unwrap(),
            Value::Double(1.5),
        );
        same(arith(Mul, &dec("1.5"), &Value::Int(2)).unwrap(), dec("3.0"));
        same(
            arith(Sub, &dec("1.5"), &Value::Double(0.5)).unwrap(),
            Value::Double(1.0),
        );
        same(arith(Div, &dec("1"), &dec("4")).unwrap(), dec("0.25"));
        same(
            arith(Mod, &Value::Double(5.5), &Value::Int(2)).unwrap(),
            Value::Double(1.5),
        );
        same(
            arith(Mod, &Value::Double(-5.5), &Value::Int(2)).unwrap(),
            Value::Double(-1.5),
        );
        same(
            arith(Add, &Value::Null, &Value::text("a")).unwrap(),
            Value::Null,
        );
        same(
            arith(Div, &Value::Int(1), &Value::Null).unwrap(),
            Value::Null,
        );
        let big = dec("79228162514264337593543950335");
        assert_eq!(
            err(arith(Add, &big, &Value::Int(1))),
            "numeric out of range"
        );
        let huge = Value::Double(1e308);
        assert_eq!(
            err(arith(Mul, &huge, &Value::Int(10))),
            "double precision out of range"
        );
        let inf = Value::Double(f64::INFINITY);
        same(arith(Add, &inf, &Value::Int(1)).unwrap(), inf.clone());
    }

    #[test]
    fn arithmetic_type_errors() {
        use ArithOp::*;
        assert_eq!(
            err(arith(Add, &Value::Int(1), &Value::text("a"))),
            "operator does not exist: BIGINT + TEXT"
        );
        assert_eq!(
            err(arith(Mul, &Value::Bool(true), &Value::Int(1))),
            "operator does not exist: BOOLEAN * BIGINT"
        );
        assert_eq!(
            err(negate(&Value::text("x"))),
            "operator does not exist: - TEXT"
        );
        same(negate(&dec("1.5")).unwrap(), dec("-1.5"));
        same(negate(&Value::Null).unwrap(), Value::Null);
    }

    #[test]
    fn arith_types() {
        let d = |s| {
            Some(DataType::Decimal {
                precision: 10,
                scale: s,
            })
        };
        assert_eq!(
            arith_return_type(Some(DataType::Integer), None),
            Some(DataType::BigInt)
        );
        assert_eq!(
            arith_return_type(d(2), Some(DataType::Double)),
            Some(DataType::Double)
        );
        assert_eq!(arith_return_type(d(2), d(3)), Some(decimal_type(3)));
        assert_eq!(arith_return_type(Some(DataType::Varchar(None)), None), None);
    }

    #[test]
    fn compare_across_kinds() {
        let c = |a: &Value, b: &Value| compare(a, b).unwrap();
        assert_eq!(
            c(&Value::Int(1), &Value::Double(1.0)),
            Some(Ordering::Equal)
        );
        assert_eq!(c(&Value::Int(1), &dec("1.5")), Some(Ordering::Less));
        assert_eq!(
            c(&dec("2.5"), &Value::Double(2.25)),
            Some(Ordering::Greater)
        );
        assert_eq!(c(&Value::Null, &Value::Int(1)), None);
        assert_eq!(c(&Value::text("a"), &Value::Null), None);
        let nan = Value::Double(f64::NAN);
        assert_eq!(c(&nan, &Value::Double(-f64::NAN)), Some(Ordering::Equal));
        assert_eq!(
            c(&nan, &Value::Double(f64::INFINITY)),
            Some(Ordering::Greater)
        );
        assert_eq!(c(&Value::Int(i64::MAX), &nan), Some(Ordering::Less));
        assert_eq!(c(&nan, &dec("1")), Some(Ordering::Greater));
        assert_eq!(
            c(&Value::text("B"), &Value::text("a")),
            Some(Ordering::Less)
        );
        assert_eq!(
            c(&Value::Bool(false), &Value::Bool(true)),
            Some(Ordering::Less)
        );
        let ts = Value::Timestamp(86_400_000_000);
        assert_eq!(c(&Value::text("1970-01-02"), &ts), Some(Ordering::Equal));
        assert_eq!(
            c(&ts, &Value::text("1970-01-01 00:00:01")),
            Some(Ordering::Greater)
        );
        let e = compare(&ts, &Value::text("nope")).unwrap_err();
        assert_eq!(
            e,
            SqlError::exec("invalid input syntax for type timestamp: \"nope\"")
        );
        let e = compare(&Value::Int(1), &Value::text("1")).unwrap_err();
        assert_eq!(e, SqlError::exec("cannot compare BIGINT with TEXT"));
        let e = compare(&Value::Bool(true), &Value::Int(1)).unwrap_err();
        assert_eq!(e, SqlError::exec("cannot compare BOOLEAN with BIGINT"));
    }

    #[test]
    fn truthiness() {
        assert_eq!(truthy(&Value::Bool(true)).unwrap(), Some(true));
        assert_eq!(truthy(&Value::Null).unwrap(), None);
        assert_eq!(truthy(&Value::Int(0)).unwrap(), Some(false));
        assert_eq!(truthy(&Value::Int(-3)).unwrap(), Some(true));
        assert_eq!(truthy(&Value::Double(0.0)).unwrap(), Some(false));
        assert_eq!(truthy(&dec("0.00")).unwrap(), Some(false));
        assert_eq!(truthy(&dec("0.01")).unwrap(), Some(true));
        assert_eq!(
            truthy(&Value::text("t")).unwrap_err(),
            SqlError::exec("argument of WHERE/AND/OR/NOT must be type boolean, not TEXT")
        );
    }
}
