//! SQL values as a procedure holds them: `Value` and the exact `Decimal`
//! (dates, times, intervals and UUIDs are in `datetime`).
//!
//! Owns: the owned value type, its display, and its ABI encoding and
//! decoding (to and from `abi::RawValue`). Must not: convert between Rust
//! types and values (that is `convert`), or know about rows.

use std::fmt;
use std::str::FromStr;

use crate::abi::{self, RawValue, Writer};
use crate::datetime::{Date, Interval, Time, Timestamp, TimestampTz, Uuid};
use crate::error::{Error, Result};

/// One SQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// Any integer column (BIGINT, INTEGER, SMALLINT, TINYINT).
    Int(i64),
    /// DOUBLE / FLOAT / REAL.
    Double(f64),
    /// DECIMAL, exact.
    Decimal(Decimal),
    /// TEXT / VARCHAR.
    Text(String),
    /// VARBINARY.
    Bytes(Vec<u8>),
    /// TIMESTAMP.
    Timestamp(Timestamp),
    /// TIMESTAMP WITH TIME ZONE (TIMESTAMPTZ).
    TimestampTz(TimestampTz),
    /// DATE.
    Date(Date),
    /// TIME (without time zone).
    Time(Time),
    /// INTERVAL.
    Interval(Interval),
    /// UUID.
    Uuid(Uuid),
}

impl Value {
    /// The SQL type name, for messages ("INTEGER", "TEXT").
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Bool(_) => "BOOLEAN",
            Value::Int(_) => "INTEGER",
            Value::Double(_) => "DOUBLE",
            Value::Decimal(_) => "DECIMAL",
            Value::Text(_) => "TEXT",
            Value::Bytes(_) => "VARBINARY",
            Value::Timestamp(_) => "TIMESTAMP",
            Value::TimestampTz(_) => "TIMESTAMPTZ",
            Value::Date(_) => "DATE",
            Value::Time(_) => "TIME",
            Value::Interval(_) => "INTERVAL",
            Value::Uuid(_) => "UUID",
        }
    }

    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Appends the ABI encoding; fails only for a decimal whose scale is
    /// over `abi::DECIMAL_SCALE_MAX` or a time outside 00:00:00..=24:00:00.
    pub fn encode(&self, w: &mut Writer) -> Result<()> {
        match self {
            Value::Null => w.null(),
            Value::Bool(v) => w.bool_value(*v),
            Value::Int(v) => w.int_value(*v),
            Value::Double(v) => w.double_value(*v),
            Value::Decimal(d) => d.encode(w)?,
            Value::Text(v) => w.text_value(v),
            Value::Bytes(v) => w.bytes_value(v),
            Value::Timestamp(t) => w.timestamp_value(t.0),
            Value::TimestampTz(t) => w.timestamptz_value(t.0),
            Value::Date(d) => w.date_value(d.0),
            Value::Time(t) => t.encode(w)?,
            Value::Interval(i) => w.interval_value(i.months, i.days, i.micros),
            Value::Uuid(u) => w.uuid_value(&u.0),
        }
        Ok(())
    }

    /// An owned copy of a decoded value.
    pub fn from_raw(raw: RawValue<'_>) -> Value {
        match raw {
            RawValue::Null => Value::Null,
            RawValue::Bool(v) => Value::Bool(v),
            RawValue::Int(v) => Value::Int(v),
            RawValue::Double(v) => Value::Double(v),
            RawValue::Decimal { mantissa, scale } => Value::Decimal(Decimal { mantissa, scale }),
            RawValue::Text(v) => Value::Text(v.to_string()),
            RawValue::Bytes(v) => Value::Bytes(v.to_vec()),
            RawValue::Timestamp(v) => Value::Timestamp(Timestamp(v)),
            RawValue::TimestampTz(v) => Value::TimestampTz(TimestampTz(v)),
            RawValue::Date(v) => Value::Date(Date(v)),
            RawValue::Time(v) => Value::Time(Time(v)),
            RawValue::Interval {
                months,
                days,
                micros,
            } => Value::Interval(Interval::new(months, days, micros)),
            RawValue::Uuid(v) => Value::Uuid(Uuid(v)),
        }
    }
}

impl fmt::Display for Value {
    /// SQL-ish: NULL, true, 42, 1.5, 12.34, text as is, bytes as `x'0aff'`;
    /// dates, times, intervals and UUIDs as PostgreSQL prints them
    /// (`2024-01-02 03:04:05.5`, `2024-01-02`, `1 day 02:00:00`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Text(v) => f.write_str(v),
            Value::Bytes(v) => {
                f.write_str("x'")?;
                for b in v {
                    write!(f, "{b:02x}")?;
                }
                f.write_str("'")
            }
            Value::Timestamp(t) => write!(f, "{t}"),
            Value::TimestampTz(t) => write!(f, "{t}"),
            Value::Date(d) => write!(f, "{d}"),
            Value::Time(t) => write!(f, "{t}"),
            Value::Interval(i) => write!(f, "{i}"),
            Value::Uuid(u) => write!(f, "{u}"),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => |$v:ident| $e:expr;)*) => {$(
        impl From<$t> for Value {
            fn from($v: $t) -> Value {
                $e
            }
        }
    )*};
}

value_from! {
    bool => |v| Value::Bool(v);
    i64 => |v| Value::Int(v);
    i32 => |v| Value::Int(v.into());
    i16 => |v| Value::Int(v.into());
    i8 => |v| Value::Int(v.into());
    u8 => |v| Value::Int(v.into());
    u16 => |v| Value::Int(v.into());
    u32 => |v| Value::Int(v.into());
    f64 => |v| Value::Double(v);
    Decimal => |v| Value::Decimal(v);
    Timestamp => |v| Value::Timestamp(v);
    TimestampTz => |v| Value::TimestampTz(v);
    Date => |v| Value::Date(v);
    Time => |v| Value::Time(v);
    Interval => |v| Value::Interval(v);
    Uuid => |v| Value::Uuid(v);
    String => |v| Value::Text(v);
    &str => |v| Value::Text(v.to_string());
    Vec<u8> => |v| Value::Bytes(v);
    &[u8] => |v| Value::Bytes(v.to_vec());
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// An exact decimal number: `mantissa / 10^scale`. Equality is structural:
/// 1.0 (10, 1) and 1.00 (100, 2) differ; compare `normalized()` values for
/// numeric equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    /// The digits, as an integer.
    pub mantissa: i128,
    /// Digits after the point, at most `abi::DECIMAL_SCALE_MAX` (28) to be
    /// sent to the host.
    pub scale: u8,
}

impl Decimal {
    /// `mantissa / 10^scale`, or None if `scale` is over
    /// `abi::DECIMAL_SCALE_MAX`.
    pub const fn new(mantissa: i128, scale: u8) -> Option<Decimal> {
        if scale > abi::DECIMAL_SCALE_MAX {
            None
        } else {
            Some(Decimal { mantissa, scale })
        }
    }

    /// The same number with trailing fractional zeros removed (1.50 -> 1.5).
    pub fn normalized(self) -> Decimal {
        let (mut m, mut s) = (self.mantissa, self.scale);
        while s > 0 && m % 10 == 0 {
            m /= 10;
            s -= 1;
        }
        Decimal {
            mantissa: m,
            scale: s,
        }
    }

    /// The nearest `f64` (not exact for most fractions).
    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 / 10f64.powi(i32::from(self.scale))
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<()> {
        if self.scale > abi::DECIMAL_SCALE_MAX {
            return Err(Error::Type(format!(
                "decimal {self} has scale {}, over the limit of {}",
                self.scale,
                abi::DECIMAL_SCALE_MAX
            )));
        }
        w.decimal_value(self.mantissa, self.scale);
        Ok(())
    }
}

impl From<i64> for Decimal {
    fn from(v: i64) -> Decimal {
        Decimal {
            mantissa: v.into(),
            scale: 0,
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = usize::from(self.scale);
        if self.mantissa < 0 {
            f.write_str("-")?;
        }
        if scale == 0 {
            return f.write_str(&digits);
        }
        if digits.len() <= scale {
            write!(f, "0.{}{digits}", "0".repeat(scale - digits.len()))
        } else {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{int}.{frac}")
        }
    }
}

impl FromStr for Decimal {
    type Err = Error;

    /// Parses `[-+]digits[.digits]`, keeping the written scale ("1.50" has
    /// scale 2).
    fn from_str(s: &str) -> Result<Decimal> {
        let bad = || Error::Type(format!("{s:?} is not a decimal number"));
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let scale = u8::try_from(frac.len())
            .ok()
            .filter(|n| *n <= abi::DECIMAL_SCALE_MAX)
            .ok_or_else(|| {
                Error::Type(format!(
                    "{s:?} has more than {} digits after the point",
                    abi::DECIMAL_SCALE_MAX
                ))
            })?;
        let mut mantissa: i128 = 0;
        for c in int.bytes().chain(frac.bytes()) {
            if !c.is_ascii_digit() {
                return Err(bad());
            }
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(c - b'0')))
                .ok_or_else(|| Error::Type(format!("{s:?} has too many digits")))?;
        }
        Ok(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(m: i128, s: u8) -> Decimal {
        Decimal::new(m, s).unwrap()
    }

    #[test]
    fn decimal_display_and_parse() {
        for (d, text) in [
            (dec(1234, 2), "12.34"),
            (dec(-5, 2), "-0.05"),
            (dec(7, 0), "7"),
            (dec(0, 3), "0.000"),
            (dec(-120, 1), "-12.0"),
        ] {
            assert_eq!(d.to_string(), text);
            assert_eq!(text.parse::<Decimal>().unwrap(), d);
        }
        assert_eq!(".5".parse::<Decimal>().unwrap(), dec(5, 1));
        for bad in ["", "-", ".", "1.2.3", "1e5", "12a", "--1"] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad:?} parsed");
        }
        let long = format!("0.{}", "1".repeat(29));
        assert!(long.parse::<Decimal>().is_err());
        assert!("9".repeat(40).parse::<Decimal>().is_err());
        assert_eq!(dec(1500, 3).normalized(), dec(15, 1));
        assert_eq!(Decimal::new(1, 29), None);
    }

    #[test]
    fn decimal_scale_over_the_limit_does_not_encode() {
        let mut w = Writer::new();
        let e = Decimal {
            mantissa: 1,
            scale: 30,
        }
        .encode(&mut w)
        .unwrap_err();
        assert!(
            e.to_string().contains("scale 30, over the limit of 28"),
            "{e}"
        );
    }

    #[test]
    fn values_round_trip_through_raw() {
        let vals = [
            Value::Null,
            Value::Bool(false),
            Value::Int(-3),
            Value::Double(2.5),
            Value::Decimal(dec(-1234, 2)),
            Value::Text("é".into()),
            Value::Bytes(vec![0, 0xff]),
            Value::Timestamp(Timestamp(9)),
            Value::TimestampTz(TimestampTz(-9)),
            Value::Date(Date(-1)),
            Value::Time(Time(0)),
            Value::Time(Time(abi::TIME_MICROS_MAX)),
            Value::Interval(Interval::new(-1, 2, -3)),
            Value::Uuid(Uuid([7; 16])),
        ];
        let mut w = Writer::new();
        for v in &vals {
            v.encode(&mut w).unwrap();
        }
        let mut r = abi::Reader::new(&w.buf);
        for v in &vals {
            assert_eq!(Value::from_raw(r.value().unwrap()), *v);
        }
        assert_eq!(Value::Bytes(vec![10, 255]).to_string(), "x'0aff'");
        assert_eq!(Value::from(Some(3i32)), Value::Int(3));
        assert_eq!(Value::from(None::<String>), Value::Null);
    }

    #[test]
    fn dates_and_times_display_and_refuse_bad_times() {
        let cases = [
            (
                Value::from(TimestampTz(500_000)),
                "1970-01-01 00:00:00.5+00",
            ),
            (Value::from(Date(19_724)), "2024-01-02"),
            (Value::from(Time(11_045_500_000)), "03:04:05.5"),
            (
                Value::from(Interval::new(1, 2, 3_000_000)),
                "1 mon 2 days 00:00:03",
            ),
            (
                Value::from(Uuid([0xab; 16])),
                "abababab-abab-abab-abab-abababababab",
            ),
        ];
        for (v, text) in cases {
            assert_eq!(v.to_string(), text);
        }
        let names: Vec<&str> = [
            Value::from(TimestampTz(0)),
            Value::from(Date(0)),
            Value::from(Time(0)),
            Value::from(Interval::default()),
            Value::from(Uuid([0; 16])),
        ]
        .iter()
        .map(Value::type_name)
        .collect();
        assert_eq!(names, ["TIMESTAMPTZ", "DATE", "TIME", "INTERVAL", "UUID"]);
        let mut w = Writer::new();
        let e = Value::Time(Time(abi::TIME_MICROS_MAX + 1))
            .encode(&mut w)
            .unwrap_err();
        assert!(e.to_string().contains("outside 00:00:00..=24:00:00"), "{e}");
    }
}
