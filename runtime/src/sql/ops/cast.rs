//! CAST (explicit conversion) and the assignment coercion used when a value
//! is stored into a typed column, plus the text rendering both rely on.
//!
//! The two differ where PostgreSQL differs: an explicit cast to VARCHAR(n)
//! truncates, an assignment errors; an assignment of a boolean to an integer
//! column is refused.

use super::SqlError;
use crate::types::datetime::{self as dt, DateTimeError, USECS_PER_DAY};
use crate::types::{format_timestamp, DataType, Interval, Value};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr;
use std::sync::Arc;

/// The largest scale rust_decimal can hold.
const DECIMAL_SCALE_MAX: u8 = 28;

/// CAST(v AS ty), PostgreSQL rules: text parses strictly (leading/trailing
/// spaces allowed), a failed parse is an error naming the value and type;
/// double -> integer rounds half to even, decimal -> integer half away from
/// zero; out-of-range is an error; bool <-> integer; anything -> text renders
/// it; VARCHAR(n) truncates on an explicit cast; DECIMAL(p,s) rounds to scale
/// s and errors past precision p.
pub fn cast(v: &Value, ty: DataType) -> Result<Value, SqlError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        DataType::SmallInt | DataType::Integer | DataType::BigInt => to_int(v, ty).map(Value::Int),
        DataType::Double => to_double(v).map(Value::Double),
        DataType::Decimal { precision, scale } => {
            to_decimal(v, precision, scale).map(Value::Decimal)
        }
        DataType::Varchar(n) => {
            let s = render_text(v);
            Ok(Value::Text(match n {
                Some(n) => smol_str::SmolStr::from(truncate_chars(&s, n)),
                None => smol_str::SmolStr::from(s),
            }))
        }
        DataType::Varbinary(n) => {
            let b = to_bytes(v, ty)?;
            let n = n.map_or(b.len(), |n| (n as usize).min(b.len()));
            Ok(Value::Bytes(Arc::from(&b[..n])))
        }
        DataType::Boolean => to_bool(v).map(Value::Bool),
        DataType::Timestamp => to_timestamp(v).map(Value::Timestamp),
        DataType::TimestampTz => to_timestamptz(v).map(Value::TimestampTz),
        DataType::Date => to_date(v).map(Value::Date),
        DataType::Time => to_time(v).map(Value::Time),
        DataType::Interval => to_interval(v).map(Value::Interval),
        DataType::Uuid => to_uuid(v).map(Value::Uuid),
    }
}

/// The assignment cast applied when inserting or updating a column of type
/// `ty` (PostgreSQL assignment rules, lenient where SQLite is): numbers
/// convert between numeric columns with range checks; quoted text parses into
/// numeric, boolean and timestamp columns; text longer than VARCHAR(n) is an
/// error unless the excess is spaces; values render into text columns; a
/// boolean into a numeric column or a number into a boolean one is an error.
pub fn coerce_to_column(v: &Value, ty: DataType) -> Result<Value, SqlError> {
    if fits_column(v, ty) {
        return Ok(v.clone());
    }
    coerce_slow(v, ty)
}

/// `coerce_to_column` for an owned value: one already of the column's type
/// moves through untouched.
pub fn coerce_owned(v: Value, ty: DataType) -> Result<Value, SqlError> {
    if fits_column(&v, ty) {
        return Ok(v);
    }
    coerce_slow(&v, ty)
}

/// NULL, or already of the column's type and within its bounds.
fn fits_column(v: &Value, ty: DataType) -> bool {
    match (v, ty) {
        (Value::Null, _) => true,
        (Value::Int(i), _) => ty.int_range().is_some_and(|(lo, hi)| (lo..=hi).contains(i)),
        (Value::Double(_), DataType::Double)
        | (Value::Bool(_), DataType::Boolean)
        | (Value::Timestamp(_), DataType::Timestamp)
        | (Value::TimestampTz(_), DataType::TimestampTz)
        | (Value::Date(_), DataType::Date)
        | (Value::Time(_), DataType::Time)
        | (Value::Interval(_), DataType::Interval)
        | (Value::Uuid(_), DataType::Uuid)
        | (Value::Text(_), DataType::Varchar(None)) => true,
        // Bytes bound characters from above: within n bytes is within n chars.
        (Value::Text(t), DataType::Varchar(Some(n))) => t.len() <= n as usize,
        _ => false,
    }
}

fn coerce_slow(v: &Value, ty: DataType) -> Result<Value, SqlError> {
    let numeric = matches!(v, Value::Int(_) | Value::Double(_) | Value::Decimal(_));
    match (v, ty) {
        (_, _) if ty.is_numeric() && !numeric && !matches!(v, Value::Text(_)) => {
            Err(mismatch(v, ty))
        }
        // Text, and the date/time values PostgreSQL assigns between
        // (a DATE into a TIMESTAMP column, say), convert; nothing else.
        (
            Value::Int(_) | Value::Double(_) | Value::Decimal(_) | Value::Bool(_) | Value::Bytes(_),
            DataType::TimestampTz
            | DataType::Date
            | DataType::Time
            | DataType::Interval
            | DataType::Uuid,
        ) => Err(mismatch(v, ty)),
        (Value::Uuid(_), _) if ty != DataType::Uuid && !ty.is_text() => Err(mismatch(v, ty)),
        (Value::Interval(_), _) if !matches!(ty, DataType::Time) && !ty.is_text() => {
            Err(mismatch(v, ty))
        }
        (_, DataType::Varchar(n)) => match v {
            Value::Bytes(_) => Err(mismatch(v, ty)),
            _ => fit_text(render_text(v), n),
        },
        (_, DataType::Varbinary(n)) => {
            let b = match v {
                Value::Text(_) | Value::Bytes(_) => to_bytes(v, ty)?,
                _ => return Err(mismatch(v, ty)),
            };
            if let Some(n) = n.filter(|n| b.len() > *n as usize) {
                return Err(SqlError::TooLong(format!(
                    "value too long for type varbinary({n})"
                )));
            }
            Ok(Value::Bytes(Arc::from(b)))
        }
        (Value::Int(_) | Value::Double(_) | Value::Decimal(_), DataType::Boolean) => {
            Err(mismatch(v, ty))
        }
        (
            Value::Int(_) | Value::Double(_) | Value::Decimal(_) | Value::Bool(_),
            DataType::Timestamp,
        ) => Err(mismatch(v, ty)),
        _ => cast(v, ty),
    }
}

fn mismatch(v: &Value, ty: DataType) -> SqlError {
    let col = match ty {
        DataType::Varchar(_) => "text".to_string(),
        _ => ty.to_string().to_lowercase(),
    };
    SqlError::exec(format!(
        "column is of type {col} but expression is of type {}",
        v.kind().to_string().to_lowercase()
    ))
}

/// Fits text into VARCHAR(n) for storage: too long is an error, except that
/// trailing spaces beyond n are dropped (PostgreSQL does the same).
fn fit_text(s: String, n: Option<u32>) -> Result<Value, SqlError> {
    let Some(n) = n else {
        return Ok(Value::Text(smol_str::SmolStr::from(s)));
    };
    let Some((cut, _)) = s.char_indices().nth(n as usize) else {
        return Ok(Value::Text(smol_str::SmolStr::from(s)));
    };
    if s[cut..].bytes().all(|b| b == b' ') {
        return Ok(Value::text(&s[..cut]));
    }
    Err(SqlError::TooLong(format!(
        "value too long for type character varying({n})"
    )))
}

fn truncate_chars(s: &str, n: u32) -> &str {
    match s.char_indices().nth(n as usize) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

fn cannot_cast(v: &Value, ty: DataType) -> SqlError {
    SqlError::exec(format!("cannot cast type {} to {ty}", v.kind()))
}

/// The PostgreSQL name of an integer type, for error messages.
fn int_name(ty: DataType) -> &'static str {
    match ty {
        DataType::SmallInt => "smallint",
        DataType::Integer => "integer",
        _ => "bigint",
    }
}

fn int_range_error(ty: DataType) -> SqlError {
    SqlError::OutOfRange(format!("{} out of range", int_name(ty)))
}

fn check_int_range(i: i64, ty: DataType) -> Result<i64, SqlError> {
    let (lo, hi) = ty.int_range().unwrap_or((i64::MIN, i64::MAX));
    if i < lo || i > hi {
        return Err(int_range_error(ty));
    }
    Ok(i)
}

fn to_int(v: &Value, ty: DataType) -> Result<i64, SqlError> {
    let i = match v {
        Value::Int(i) => *i,
        Value::Bool(b) => i64::from(*b),
        Value::Double(d) => double_to_i64(*d).ok_or_else(|| int_range_error(ty))?,
        Value::Decimal(d) => d
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            .to_i64()
            .ok_or_else(|| int_range_error(ty))?,
        Value::Text(s) => return parse_int(s, ty),
        _ => return Err(cannot_cast(v, ty)),
    };
    check_int_range(i, ty)
}

/// Rounds half to even (as PostgreSQL's float-to-integer casts do) and
/// converts if the result fits in i64.
pub(crate) fn double_to_i64(d: f64) -> Option<i64> {
    let r = d.round_ties_even();
    // 2^63 is exactly representable; anything at or above it does not fit.
    let limit = 2f64.powi(63);
    if (-limit..limit).contains(&r) {
        Some(r as i64)
    } else {
        None
    }
}

/// Parses `[+-]digits` with surrounding ASCII whitespace, for integer type `ty`.
fn parse_int(s: &str, ty: DataType) -> Result<i64, SqlError> {
    let t = s.trim_ascii();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SqlError::exec(format!(
            "invalid input syntax for type {}: \"{s}\"",
            int_name(ty)
        )));
    }
    let out_of_range = || {
        SqlError::OutOfRange(format!(
            "value \"{s}\" is out of range for type {}",
            int_name(ty)
        ))
    };
    let i: i64 = t.parse().map_err(|_| out_of_range())?;
    check_int_range(i, ty).map_err(|_| out_of_range())
}

fn to_double(v: &Value) -> Result<f64, SqlError> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Double(d) => Ok(*d),
        Value::Decimal(d) => d.to_f64().ok_or_else(super::double_range),
        Value::Text(s) => parse_double(s),
        _ => Err(cannot_cast(v, DataType::Double)),
    }
}

/// Parses a double: decimal or exponent notation, or NaN / Infinity in any
/// case, with surrounding ASCII whitespace.
pub(crate) fn parse_double(s: &str) -> Result<f64, SqlError> {
    let t = s.trim_ascii();
    let special = match t.to_ascii_lowercase().as_str() {
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    };
    if let Some(d) = special {
        return Ok(d);
    }
    let plain = t
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    match t.parse::<f64>() {
        Ok(d) if plain && d.is_finite() => Ok(d),
        Ok(_) if plain => Err(SqlError::OutOfRange(format!(
            "\"{t}\" is out of range for type double precision"
        ))),
        _ => Err(SqlError::exec(format!(
            "invalid input syntax for type double precision: \"{s}\""
        ))),
    }
}

fn to_decimal(v: &Value, precision: u8, scale: u8) -> Result<Decimal, SqlError> {
    if scale > DECIMAL_SCALE_MAX {
        return Err(SqlError::exec(format!(
            "DECIMAL scale {scale} exceeds the maximum of {DECIMAL_SCALE_MAX}"
        )));
    }
    let ty = DataType::Decimal { precision, scale };
    let d = match v {
        Value::Int(i) => Decimal::from(*i),
        Value::Decimal(d) => *d,
        Value::Double(d) => double_to_decimal(*d)?,
        Value::Text(s) => parse_decimal(s)?,
        _ => return Err(cannot_cast(v, ty)),
    };
    let mut r = d.round_dp_with_strategy(u32::from(scale), RoundingStrategy::MidpointAwayFromZero);
    let int_digits = precision.saturating_sub(scale);
    if int_digits <= DECIMAL_SCALE_MAX {
        let limit = Decimal::from_i128_with_scale(10i128.pow(u32::from(int_digits)), 0);
        if r.abs() >= limit {
            return Err(SqlError::OutOfRange(format!(
                "numeric field overflow: a DECIMAL({precision},{scale}) value must round to an \
                 absolute value less than 10^{int_digits}"
            )));
        }
    }
    // Show the declared scale (5 as DECIMAL(4,2) is 5.00); rescale only adds
    // zeros here, and keeps a smaller scale if 96 bits cannot hold it.
    r.rescale(u32::from(scale));
    Ok(r)
}

/// A double as the decimal its shortest rendering spells.
pub(crate) fn double_to_decimal(d: f64) -> Result<Decimal, SqlError> {
    if !d.is_finite() {
        return Err(SqlError::exec(format!(
            "cannot convert {} to numeric",
            format_double(d)
        )));
    }
    Decimal::from_str(&format!("{d}")).map_err(|_| SqlError::exec("numeric out of range"))
}

/// Parses decimal text: `[+-]digits[.digits][e[+-]digits]`, trimmed.
pub(crate) fn parse_decimal(s: &str) -> Result<Decimal, SqlError> {
    let t = s.trim_ascii();
    let bad = || SqlError::exec(format!("invalid input syntax for type numeric: \"{s}\""));
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let mantissa = body.split(['e', 'E']).next().unwrap_or("");
    let plain = body
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if !plain || !mantissa.bytes().any(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let parsed = if body.contains(['e', 'E']) {
        Decimal::from_scientific(t)
    } else {
        Decimal::from_str(t)
    };
    parsed.map_err(|_| {
        if t.parse::<f64>().is_ok() {
            SqlError::exec("numeric out of range")
        } else {
            bad()
        }
    })
}

fn to_bytes(v: &Value, ty: DataType) -> Result<Vec<u8>, SqlError> {
    match v {
        Value::Text(s) => parse_bytea(s),
        Value::Bytes(b) => Ok(b.to_vec()),
        _ => Err(cannot_cast(v, ty)),
    }
}

/// Text as PostgreSQL reads it into bytea: `\\x` then hex digit pairs
/// (spaces, tabs and newlines allowed before a pair), the form Ohm and
/// PostgreSQL print and pg_dump writes; otherwise the escape form, where
/// `\\\\` is a backslash, `\\ooo` an octal byte and any other byte stands
/// for itself.
fn parse_bytea(s: &str) -> Result<Vec<u8>, SqlError> {
    if let Some(hex) = s.strip_prefix("\\x") {
        return parse_bytea_hex(hex);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = b
                .get(i + 1..i + 4)
                .filter(|o| o[0] <= b'3' && o.iter().all(|d| (b'0'..=b'7').contains(d)));
            let Some(o) = octal else {
                return Err(SqlError::exec(
                    "invalid input syntax for type bytea: a backslash starts \\\\ (a \
                     backslash) or \\ooo (an octal byte), or \\x (hex) at the start",
                ));
            };
            out.push((o[0] - b'0') << 6 | (o[1] - b'0') << 3 | (o[2] - b'0'));
            i += 4;
        }
    }
    Ok(out)
}

/// The digits after `\\x`, as PostgreSQL's `hex_decode` reads them.
fn parse_bytea_hex(hex: &str) -> Result<Vec<u8>, SqlError> {
    let digit = |c: char| -> Result<u8, SqlError> {
        c.to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| SqlError::exec(format!("invalid hexadecimal digit: \"{c}\"")))
    };
    let mut out = Vec::with_capacity(hex.len() / 2);
    let mut chars = hex.chars();
    while let Some(hi) = chars.next() {
        if matches!(hi, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        let hi = digit(hi)?;
        let Some(lo) = chars.next() else {
            return Err(SqlError::exec(
                "invalid hexadecimal data: odd number of digits",
            ));
        };
        out.push(hi << 4 | digit(lo)?);
    }
    Ok(out)
}

fn to_bool(v: &Value) -> Result<bool, SqlError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Int(i) => Ok(*i != 0),
        Value::Text(s) => parse_bool(s),
        _ => Err(cannot_cast(v, DataType::Boolean)),
    }
}

fn parse_bool(s: &str) -> Result<bool, SqlError> {
    match s.trim_ascii().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Ok(false),
        _ => Err(SqlError::exec(format!(
            "invalid input syntax for type boolean: \"{s}\""
        ))),
    }
}

/// A date/time text that does not parse, worded as PostgreSQL does.
fn datetime_error(e: DateTimeError, ty: &str, s: &str) -> SqlError {
    match e {
        DateTimeError::OutOfRange => SqlError::OutOfRange(e.message(ty, s)),
        _ => SqlError::exec(e.message(ty, s)),
    }
}

/// A DATE's midnight as microseconds since the epoch; a date past what a
/// timestamp holds (after 294247, or any from outside) is an error.
pub(crate) fn date_micros(days: i32) -> Result<i64, SqlError> {
    i64::from(days)
        .checked_mul(USECS_PER_DAY)
        .filter(|us| dt::timestamp_in_range(*us))
        .ok_or_else(|| SqlError::OutOfRange("date out of range for timestamp".into()))
}

fn to_timestamp(v: &Value) -> Result<i64, SqlError> {
    match v {
        Value::Timestamp(t) | Value::TimestampTz(t) => Ok(*t),
        Value::Date(d) => date_micros(*d),
        Value::Text(s) => {
            dt::parse_timestamp_text(s).map_err(|e| datetime_error(e, "timestamp", s))
        }
        _ => Err(cannot_cast(v, DataType::Timestamp)),
    }
}

/// The session's zone is UTC, so a TIMESTAMP converts to and from a
/// TIMESTAMP WITH TIME ZONE unchanged.
fn to_timestamptz(v: &Value) -> Result<i64, SqlError> {
    match v {
        Value::Timestamp(t) | Value::TimestampTz(t) => Ok(*t),
        Value::Date(d) => date_micros(*d),
        Value::Text(s) => {
            dt::parse_timestamptz(s).map_err(|e| datetime_error(e, "timestamp with time zone", s))
        }
        _ => Err(cannot_cast(v, DataType::TimestampTz)),
    }
}

fn to_date(v: &Value) -> Result<i32, SqlError> {
    let days = match v {
        Value::Date(d) => return Ok(*d),
        Value::Timestamp(t) | Value::TimestampTz(t) => t.div_euclid(USECS_PER_DAY),
        Value::Text(s) => dt::parse_date(s).map_err(|e| datetime_error(e, "date", s))?,
        _ => return Err(cannot_cast(v, DataType::Date)),
    };
    date_from_days(days)
}

/// Days as a DATE, if within PostgreSQL's range.
pub(crate) fn date_from_days(days: i64) -> Result<i32, SqlError> {
    if !dt::date_in_range(days) {
        return Err(SqlError::OutOfRange("date out of range".into()));
    }
    i32::try_from(days).map_err(|_| SqlError::OutOfRange("date out of range".into()))
}

fn to_time(v: &Value) -> Result<i64, SqlError> {
    match v {
        Value::Time(t) => Ok(*t),
        Value::Timestamp(t) | Value::TimestampTz(t) => Ok(t.rem_euclid(USECS_PER_DAY)),
        // PostgreSQL keeps the time of day the interval's time part names.
        Value::Interval(i) => Ok(i.micros.rem_euclid(USECS_PER_DAY)),
        Value::Text(s) => dt::parse_time(s).map_err(|e| datetime_error(e, "time", s)),
        _ => Err(cannot_cast(v, DataType::Time)),
    }
}

fn to_interval(v: &Value) -> Result<Interval, SqlError> {
    match v {
        Value::Interval(i) => Ok(*i),
        Value::Time(t) => Ok(Interval::new(0, 0, *t)),
        Value::Text(s) => {
            dt::parse_interval(s, None, false).map_err(|e| datetime_error(e, "interval", s))
        }
        _ => Err(cannot_cast(v, DataType::Interval)),
    }
}

fn to_uuid(v: &Value) -> Result<[u8; 16], SqlError> {
    match v {
        Value::Uuid(u) => Ok(*u),
        Value::Text(s) => dt::parse_uuid(s)
            .ok_or_else(|| SqlError::exec(format!("invalid input syntax for type uuid: \"{s}\""))),
        _ => Err(cannot_cast(v, DataType::Uuid)),
    }
}

/// Renders a value as CAST(v AS TEXT) does: doubles in PostgreSQL style,
/// booleans as true/false, bytes as `\x` hex, NULL as the empty string
/// (callers handle NULL before rendering).
pub fn render_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Double(d) => format_double(*d),
        Value::Text(s) => s.to_string(),
        Value::Timestamp(t) => format_timestamp(*t),
        other => other.to_string(),
    }
}

/// A double as PostgreSQL prints it: shortest round-trip digits, no `.0` on
/// integral values, exponent form (`1e+20`, `1.5e-05`) outside [1e-4, 1e15).
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = d.abs();
    if a != 0.0 && !(1e-4..1e15).contains(&a) {
        let e = format!("{d:e}");
        let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(x) => ('-', x),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    format!("{d}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataType::{BigInt, Boolean, Double, Integer, SmallInt, Timestamp, Varbinary, Varchar};

    fn dec(s: &str) -> Value {
        Value::Decimal(Decimal::from_str(s).unwrap())
    }

    fn ok(v: Value, ty: DataType) -> Value {
        cast(&v, ty).unwrap()
    }

    fn bad(v: Value, ty: DataType) -> String {
        match cast(&v, ty) {
            Err(e) => e.to_string(),
            other => panic!("expected error, got {other:?}"),
        }
    }

    fn same(a: Value, b: Value) {
        assert_eq!(a.kind(), b.kind(), "{a:?} vs {b:?}");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), b.to_string());
    }

    #[test]
    fn null_casts_to_null() {
        for ty in [
            SmallInt,
            Double,
            Varchar(Some(1)),
            Boolean,
            Timestamp,
            Varbinary(None),
        ] {
            same(ok(Value::Null, ty), Value::Null);
        }
    }

    #[test]
    fn to_integer() {
        same(ok(Value::Int(32767), SmallInt), Value::Int(32767));
        assert_eq!(bad(Value::Int(32768), SmallInt), "smallint out of range");
        assert_eq!(bad(Value::Int(1 << 31), Integer), "integer out of range");
        same(ok(Value::Double(2.5), BigInt), Value::Int(2));
        same(ok(Value::Double(3.5), BigInt), Value::Int(4));
        same(ok(Value::Double(-2.5), BigInt), Value::Int(-2));
        assert_eq!(
            bad(Value::Double(f64::NAN), Integer),
            "integer out of range"
        );
        assert_eq!(bad(Value::Double(9.3e18), BigInt), "bigint out of range");
        same(ok(dec("2.5"), BigInt), Value::Int(3));
        same(ok(dec("-2.5"), BigInt), Value::Int(-3));
        assert_eq!(bad(dec("40000"), SmallInt), "smallint out of range");
        same(ok(Value::Bool(true), Integer), Value::Int(1));
        same(ok(Value::text("  -42 "), Integer), Value::Int(-42));
        same(ok(Value::text("+7"), SmallInt), Value::Int(7));
        assert_eq!(
            bad(Value::text("abc"), Integer),
            "invalid input syntax for type integer: \"abc\""
        );
        assert_eq!(
            bad(Value::text("1.5"), BigInt),
            "invalid input syntax for type bigint: \"1.5\""
        );
        assert_eq!(
            bad(Value::text("-"), SmallInt),
            "invalid input syntax for type smallint: \"-\""
        );
        assert_eq!(
            bad(Value::text("99999"), SmallInt),
            "value \"99999\" is out of range for type smallint"
        );
        assert_eq!(
            bad(Value::text("9223372036854775808"), BigInt),
            "value \"9223372036854775808\" is out of range for type bigint"
        );
        assert_eq!(
            bad(Value::Timestamp(0), BigInt),
            "cannot cast type TIMESTAMP to BIGINT"
        );
    }

    #[test]
    fn to_double_paths() {
        same(ok(Value::Int(3), Double), Value::Double(3.0));
        same(ok(dec("1.25"), Double), Value::Double(1.25));
        same(ok(Value::text(" 1e3 "), Double), Value::Double(1000.0));
        same(
            ok(Value::text("-Infinity"), Double),
            Value::Double(f64::NEG_INFINITY),
        );
        assert!(matches!(ok(Value::text("nAn"), Double), Value::Double(d) if d.is_nan()));
        assert_eq!(
            bad(Value::text("inf x"), Double),
            "invalid input syntax for type double precision: \"inf x\""
        );
        assert_eq!(
            bad(Value::text("1e400"), Double),
            "\"1e400\" is out of range for type double precision"
        );
        assert_eq!(
            bad(Value::Bool(true), Double),
            "cannot cast type BOOLEAN to DOUBLE"
        );
    }

    #[test]
    fn to_decimal_paths() {
        let d52 = DataType::Decimal {
            precision: 5,
            scale: 2,
        };
        same(ok(Value::Int(5), d52), dec("5.00"));
        same(ok(dec("1.005"), d52), dec("1.01"));
        same(ok(dec("-1.005"), d52), dec("-1.01"));
        same(ok(Value::Double(0.1), d52), dec("0.10"));
        same(ok(Value::text(" 12.345 "), d52), dec("12.35"));
        same(ok(Value::text("1.5e2"), d52), dec("150.00"));
        assert_eq!(
            bad(Value::Int(1000), d52),
            "numeric field overflow: a DECIMAL(5,2) value must round to an absolute value less than 10^3"
        );
        assert_eq!(
            bad(dec("999.995"), d52),
            "numeric field overflow: a DECIMAL(5,2) value must round to an absolute value less than 10^3"
        );
        assert_eq!(
            bad(Value::Double(f64::NAN), d52),
            "cannot convert NaN to numeric"
        );
        assert_eq!(
            bad(Value::text("x1"), d52),
            "invalid input syntax for type numeric: \"x1\""
        );
        assert_eq!(
            bad(Value::text("."), d52),
            "invalid input syntax for type numeric: \".\""
        );
        assert_eq!(
            bad(Value::Bool(true), d52),
            "cannot cast type BOOLEAN to DECIMAL(5,2)"
        );
        let wide = DataType::Decimal {
            precision: 40,
            scale: 30,
        };
        assert_eq!(
            bad(Value::Int(1), wide),
            "DECIMAL scale 30 exceeds the maximum of 28"
        );
        same(
            ok(
                Value::Int(7),
                DataType::Decimal {
                    precision: 3,
                    scale: 0,
                },
            ),
            dec("7"),
        );
    }

    #[test]
    fn tiny_and_huge_doubles_to_decimal() {
        let d52 = DataType::Decimal {
            precision: 5,
            scale: 2,
        };
        same(ok(Value::Double(1e-30), d52), dec("0.00"));
        same(ok(Value::Double(-0.004), d52), dec("0.00"));
        let d380 = DataType::Decimal {
            precision: 38,
            scale: 0,
        };
        same(ok(Value::Double(1e20), d380), dec("100000000000000000000"));
        assert!(cast(&Value::Double(1e30), d380).is_err());
    }

    #[test]
    fn to_text_paths() {
        let t = |v: Value| match cast(&v, Varchar(None)).unwrap() {
            Value::Text(s) => s.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(t(Value::Int(-12)), "-12");
        assert_eq!(t(Value::Double(3.0)), "3");
        assert_eq!(t(Value::Double(-0.5)), "-0.5");
        assert_eq!(t(Value::Double(1e20)), "1e+20");
        assert_eq!(t(Value::Double(1.5e-5)), "1.5e-05");
        assert_eq!(t(Value::Double(123456789012345.0)), "123456789012345");
        assert_eq!(t(Value::Double(1e15)), "1e+15");
        assert_eq!(t(Value::Double(1.234e300)), "1.234e+300");
        assert_eq!(t(Value::Double(0.0001)), "0.0001");
        assert_eq!(t(Value::Double(f64::NAN)), "NaN");
        assert_eq!(t(Value::Double(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(t(dec("1.50")), "1.50");
        assert_eq!(t(Value::Bool(false)), "false");
        assert_eq!(t(Value::Timestamp(1_500_000)), "1970-01-01 00:00:01.5");
        assert_eq!(t(Value::Bytes(Arc::from(&[0xde, 0x01][..]))), "\\xde01");
        same(
            ok(Value::text("héllo"), Varchar(Some(2))),
            Value::text("hé"),
        );
        same(ok(Value::Int(12345), Varchar(Some(3))), Value::text("123"));
    }

    #[test]
    fn to_bytes_bool_timestamp() {
        let b = |s: &[u8]| Value::Bytes(Arc::from(s));
        same(ok(Value::text("ab"), Varbinary(None)), b(b"ab"));
        // PostgreSQL's bytea input: hex after \x, else escapes.
        same(
            ok(Value::text("\\x00fF 10"), Varbinary(None)),
            b(&[0, 0xff, 0x10]),
        );
        same(
            ok(Value::text("a\\\\b\\001\\377"), Varbinary(None)),
            b(b"a\\b\x01\xff"),
        );
        same(ok(Value::text("\\x"), Varbinary(None)), b(b""));
        assert_eq!(
            bad(Value::text("\\x0"), Varbinary(None)),
            "invalid hexadecimal data: odd number of digits"
        );
        assert_eq!(
            bad(Value::text("\\xzz"), Varbinary(None)),
            "invalid hexadecimal digit: \"z\""
        );
        // Whitespace only between pairs, as PostgreSQL's hex_decode.
        for (text, digit) in [
            ("\\x6 869", " "),
            ("\\x 6 ", " "),
            ("\\x68\x0c69", "\x0c"),
            ("\\x6é", "é"),
        ] {
            assert_eq!(
                bad(Value::text(text), Varbinary(None)),
                format!("invalid hexadecimal digit: \"{digit}\""),
                "{text:?}"
            );
        }
        assert!(bad(Value::text("a\\9"), Varbinary(None)).contains("type bytea"));
        assert!(bad(Value::text("\\400"), Varbinary(None)).contains("type bytea"));
        // Printing and reading back are inverse.
        let v = b(&[0xde, 0x01, b'\\']);
        same(ok(Value::text(&v.to_string()), Varbinary(None)), v);
        same(ok(b(b"abc"), Varbinary(Some(2))), b(b"ab"));
        assert_eq!(
            bad(Value::Int(1), Varbinary(None)),
            "cannot cast type BIGINT to VARBINARY"
        );
        for s in ["t", "TRUE", " yes ", "On", "1", "y"] {
            same(ok(Value::text(s), Boolean), Value::Bool(true));
        }
        for s in ["f", "False", "n", "NO", "off", "0"] {
            same(ok(Value::text(s), Boolean), Value::Bool(false));
        }
        assert_eq!(
            bad(Value::text("maybe"), Boolean),
            "invalid input syntax for type boolean: \"maybe\""
        );
        same(ok(Value::Int(0), Boolean), Value::Bool(false));
        same(ok(Value::Int(-5), Boolean), Value::Bool(true));
        assert_eq!(
            bad(Value::Double(1.0), Boolean),
            "cannot cast type DOUBLE to BOOLEAN"
        );
        same(
            ok(Value::text("1970-01-01 00:00:02"), Timestamp),
            Value::Timestamp(2_000_000),
        );
        same(ok(Value::Timestamp(5), Timestamp), Value::Timestamp(5));
        assert_eq!(
            bad(Value::text("soon"), Timestamp),
            "invalid input syntax for type timestamp: \"soon\""
        );
        assert_eq!(
            bad(Value::Int(1), Timestamp),
            "cannot cast type BIGINT to TIMESTAMP"
        );
    }

    fn put(v: Value, ty: DataType) -> Result<Value, String> {
        coerce_to_column(&v, ty).map_err(|e| e.to_string())
    }

    #[test]
    fn assignment_coercion() {
        same(put(Value::Int(5), SmallInt).unwrap(), Value::Int(5));
        assert_eq!(
            put(Value::Int(70000), SmallInt).unwrap_err(),
            "smallint out of range"
        );
        assert_eq!(
            put(Value::Int(1 << 40), Integer).unwrap_err(),
            "integer out of range"
        );
        same(put(Value::Double(2.5), Integer).unwrap(), Value::Int(2));
        same(put(Value::text("5"), Integer).unwrap(), Value::Int(5));
        assert_eq!(
            put(Value::Bool(true), Integer).unwrap_err(),
            "column is of type integer but expression is of type boolean"
        );
        same(put(Value::Int(2), Double).unwrap(), Value::Double(2.0));
        same(
            put(
                Value::Double(1.234),
                DataType::Decimal {
                    precision: 4,
                    scale: 2,
                },
            )
            .unwrap(),
            dec("1.23"),
        );
        same(put(Value::Null, Integer).unwrap(), Value::Null);
    }

    #[test]
    fn assignment_to_text_bool_bytes_timestamp() {
        same(
            put(Value::text("abc"), Varchar(Some(3))).unwrap(),
            Value::text("abc"),
        );
        same(
            put(Value::text("ab   "), Varchar(Some(3))).unwrap(),
            Value::text("ab "),
        );
        assert_eq!(
            put(Value::text("abcd"), Varchar(Some(3))).unwrap_err(),
            "value too long for type character varying(3)"
        );
        same(
            put(Value::Double(1.5), Varchar(None)).unwrap(),
            Value::text("1.5"),
        );
        same(
            put(Value::Int(7), Varchar(Some(5))).unwrap(),
            Value::text("7"),
        );
        assert_eq!(
            put(Value::Int(1), Boolean).unwrap_err(),
            "column is of type boolean but expression is of type bigint"
        );
        same(put(Value::text("yes"), Boolean).unwrap(), Value::Bool(true));
        same(
            put(Value::text("ab"), Varbinary(None)).unwrap(),
            Value::Bytes(Arc::from(&b"ab"[..])),
        );
        assert_eq!(
            put(Value::text("abc"), Varbinary(Some(2))).unwrap_err(),
            "value too long for type varbinary(2)"
        );
        same(
            put(Value::text("1970-01-01"), Timestamp).unwrap(),
            Value::Timestamp(0),
        );
        assert_eq!(
            put(Value::Int(1), Timestamp).unwrap_err(),
            "column is of type timestamp but expression is of type bigint"
        );
        assert_eq!(
            put(Value::text("x"), Integer).unwrap_err(),
            "invalid input syntax for type integer: \"x\""
        );
    }
}
