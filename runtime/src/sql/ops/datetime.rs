//! Arithmetic on dates, times, timestamps and intervals, PostgreSQL's
//! operator table:
//!
//! ```text
//!   date ± integer -> date           date - date -> integer (days)
//!   date ± interval -> timestamp     date + time -> timestamp
//!   timestamp[tz] ± interval -> same timestamp[tz] - same -> interval
//!   time ± interval -> time          time - time -> interval
//!   interval ± interval -> interval  interval * or / number -> interval
//! ```
//!
//! Owns: these operators' results and their types. Must not: know about
//! rows or plans.

use super::{division_by_zero, to_f64, ArithOp, SqlError};
use crate::sql::ops::cast::{date_from_days, date_micros};
use crate::types::datetime::{self as dt, USECS_PER_DAY};
use crate::types::{DataType, Interval, Value};

fn timestamp_range() -> SqlError {
    SqlError::OutOfRange("timestamp out of range".into())
}

fn interval_range() -> SqlError {
    SqlError::OutOfRange("interval out of range".into())
}

/// The type of `a op b` when either side is a date/time type (`None`
/// operand types are NULL literals), or `None` if PostgreSQL has no such
/// operator. Only called when at least one side is a date/time type.
pub fn return_type(op: ArithOp, a: Option<DataType>, b: Option<DataType>) -> Option<DataType> {
    use ArithOp::{Add, Div, Mul, Sub};
    use DataType as T;
    let int = |t: Option<DataType>| t.is_none_or(|t| t.is_integer());
    let num = |t: Option<DataType>| t.is_none_or(|t| t.is_numeric());
    let is = |t: Option<DataType>, want: DataType| t.is_none_or(|t| t == want);
    Some(match (op, a, b) {
        (Add | Sub, Some(T::Date), x) if int(x) && x.is_some() => T::Date,
        (Add, x, Some(T::Date)) if int(x) && x.is_some() => T::Date,
        (Sub, Some(T::Date), Some(T::Date)) => T::Integer,
        (Add | Sub, Some(T::Date), x) if is(x, T::Interval) => T::Timestamp,
        (Add, x, Some(T::Date)) if is(x, T::Interval) => T::Timestamp,
        (Add, Some(T::Date), Some(T::Time)) | (Add, Some(T::Time), Some(T::Date)) => T::Timestamp,
        (Add | Sub, Some(t @ (T::Timestamp | T::TimestampTz)), x) if is(x, T::Interval) => t,
        (Add, x, Some(t @ (T::Timestamp | T::TimestampTz))) if is(x, T::Interval) => t,
        (Sub, Some(T::Timestamp | T::TimestampTz), Some(T::Timestamp | T::TimestampTz))
        | (Sub, Some(T::Date), Some(T::Timestamp | T::TimestampTz))
        | (Sub, Some(T::Timestamp | T::TimestampTz), Some(T::Date)) => T::Interval,
        (Sub, Some(T::Time), Some(T::Time)) => T::Interval,
        (Add | Sub, Some(T::Time), x) if is(x, T::Interval) => T::Time,
        (Add, x, Some(T::Time)) if is(x, T::Interval) => T::Time,
        (Add | Sub, Some(T::Interval), x) if is(x, T::Interval) => T::Interval,
        (Add, None, Some(T::Interval)) => T::Interval,
        (Mul | Div, Some(T::Interval), x) if num(x) => T::Interval,
        (Mul, x, Some(T::Interval)) if num(x) => T::Interval,
        _ => return None,
    })
}

/// `a op b` with a date/time operand; `None` if no such operator applies
/// to these values (the caller reports the type error). NULLs are the
/// caller's.
pub fn arith(op: ArithOp, a: &Value, b: &Value) -> Option<Result<Value, SqlError>> {
    use ArithOp::{Add, Div, Mul, Sub};
    use Value as V;
    Some(match (op, a, b) {
        (Add, V::Date(d), V::Int(n)) | (Add, V::Int(n), V::Date(d)) => add_days(*d, *n),
        (Sub, V::Date(d), V::Int(n)) => match n.checked_neg() {
            Some(m) => add_days(*d, m),
            None => Err(SqlError::OutOfRange("date out of range".into())),
        },
        (Sub, V::Date(x), V::Date(y)) => Ok(V::Int(i64::from(*x) - i64::from(*y))),
        (Add, V::Date(d), V::Interval(i)) | (Add, V::Interval(i), V::Date(d)) => {
            date_micros(*d).and_then(|t| shift(t, *i)).map(V::Timestamp)
        }
        (Sub, V::Date(d), V::Interval(i)) => neg(*i)
            .and_then(|n| shift(date_micros(*d)?, n))
            .map(V::Timestamp),
        (Add, V::Date(d), V::Time(t)) | (Add, V::Time(t), V::Date(d)) => {
            date_micros(*d).and_then(|day| {
                day.checked_add(*t)
                    .filter(|x| dt::timestamp_in_range(*x))
                    .map(V::Timestamp)
                    .ok_or_else(timestamp_range)
            })
        }
        // A date meets a timestamp as its midnight.
        (Sub, V::Date(d), V::Timestamp(y) | V::TimestampTz(y)) => date_micros(*d).and_then(|x| {
            dt::timestamp_diff(x, *y)
                .map(V::Interval)
                .ok_or_else(interval_range)
        }),
        (Sub, V::Timestamp(x) | V::TimestampTz(x), V::Date(d)) => date_micros(*d).and_then(|y| {
            dt::timestamp_diff(*x, y)
                .map(V::Interval)
                .ok_or_else(interval_range)
        }),
        (Add, V::Timestamp(t), V::Interval(i)) | (Add, V::Interval(i), V::Timestamp(t)) => {
            shift(*t, *i).map(V::Timestamp)
        }
        (Add, V::TimestampTz(t), V::Interval(i)) | (Add, V::Interval(i), V::TimestampTz(t)) => {
            shift(*t, *i).map(V::TimestampTz)
        }
        (Sub, V::Timestamp(t), V::Interval(i)) => {
            neg(*i).and_then(|n| shift(*t, n)).map(V::Timestamp)
        }
        (Sub, V::TimestampTz(t), V::Interval(i)) => {
            neg(*i).and_then(|n| shift(*t, n)).map(V::TimestampTz)
        }
        (Sub, V::Timestamp(x) | V::TimestampTz(x), V::Timestamp(y) | V::TimestampTz(y)) => {
            dt::timestamp_diff(*x, *y)
                .map(V::Interval)
                .ok_or_else(interval_range)
        }
        (Sub, V::Time(x), V::Time(y)) => Ok(V::Interval(Interval::new(0, 0, x - y))),
        (Add, V::Time(t), V::Interval(i)) | (Add, V::Interval(i), V::Time(t)) => {
            Ok(V::Time(time_shift(*t, i.micros)))
        }
        (Sub, V::Time(t), V::Interval(i)) => {
            Ok(V::Time(time_shift(*t, -(i.micros % USECS_PER_DAY))))
        }
        (Add, V::Interval(x), V::Interval(y)) => x
            .checked_add(*y)
            .map(V::Interval)
            .ok_or_else(interval_range),
        (Sub, V::Interval(x), V::Interval(y)) => neg(*y)
            .and_then(|n| x.checked_add(n).ok_or_else(interval_range))
            .map(V::Interval),
        (Mul, V::Interval(i), n) | (Mul, n, V::Interval(i)) if super::is_number(n) => {
            scale(*i, n, false)
        }
        (Div, V::Interval(i), n) if super::is_number(n) => scale(*i, n, true),
        _ => return None,
    })
}

fn add_days(d: i32, n: i64) -> Result<Value, SqlError> {
    let days = i64::from(d)
        .checked_add(n)
        .ok_or_else(|| SqlError::OutOfRange("date out of range".into()))?;
    date_from_days(days).map(Value::Date)
}

fn shift(t: i64, i: Interval) -> Result<i64, SqlError> {
    dt::timestamp_add(t, i).ok_or_else(timestamp_range)
}

fn neg(i: Interval) -> Result<Interval, SqlError> {
    i.checked_neg().ok_or_else(interval_range)
}

/// A time of day moved by `us`, wrapping around midnight.
fn time_shift(t: i64, us: i64) -> i64 {
    (t + us % USECS_PER_DAY).rem_euclid(USECS_PER_DAY)
}

fn scale(i: Interval, n: &Value, divide: bool) -> Result<Value, SqlError> {
    let f = to_f64(n)?;
    let factor = if divide {
        if f == 0.0 {
            return Err(division_by_zero());
        }
        1.0 / f
    } else {
        f
    };
    i.scaled_by(factor)
        .map(Value::Interval)
        .ok_or_else(interval_range)
}

/// Unary minus on an interval.
pub fn negate(i: Interval) -> Result<Value, SqlError> {
    neg(i).map(Value::Interval)
}
