//! Rust types to and from SQL values: `IntoValue` for statement parameters,
//! `FromValue` for reading columns, `Params` for a statement's parameter
//! list.
//!
//! Owns: which Rust types convert to which values, and the range checks.
//! Must not: know about procedure parameters and results (`proc_types`),
//! which have their own, stricter declared types.

use crate::abi::Writer;
use crate::datetime::{Date, Interval, Time, Timestamp, TimestampTz, Uuid};
use crate::error::{Error, Result};
use crate::value::{Decimal, Value};

/// A Rust value usable as a statement parameter. Encodes straight into the
/// batch request (no `Value` is built on the way).
pub trait IntoValue {
    /// Appends this value's ABI encoding; fails only for a value the ABI
    /// cannot carry (a decimal scale over 28, a time past 24:00:00).
    fn encode(&self, w: &mut Writer) -> Result<()>;
    /// An owned `Value` of it.
    fn to_value(&self) -> Value;
}

macro_rules! into_int {
    ($($t:ty),*) => {$(
        impl IntoValue for $t {
            #[inline]
            fn encode(&self, w: &mut Writer) -> Result<()> {
                w.int_value(i64::from(*self));
                Ok(())
            }
            fn to_value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}

// Not u64 and usize: half their range has no INTEGER.
into_int!(i64, i32, i16, i8, u8, u16, u32);

impl IntoValue for f64 {
    #[inline]
    fn encode(&self, w: &mut Writer) -> Result<()> {
        w.double_value(*self);
        Ok(())
    }
    fn to_value(&self) -> Value {
        Value::Double(*self)
    }
}

impl IntoValue for bool {
    #[inline]
    fn encode(&self, w: &mut Writer) -> Result<()> {
        w.bool_value(*self);
        Ok(())
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl IntoValue for str {
    #[inline]
    fn encode(&self, w: &mut Writer) -> Result<()> {
        w.text_value(self);
        Ok(())
    }
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl IntoValue for String {
    #[inline]
    fn encode(&self, w: &mut Writer) -> Result<()> {
        w.text_value(self);
        Ok(())
    }
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl IntoValue for [u8] {
    #[inline]
    fn encode(&self, w: &mut Writer) -> Result<()> {
        w.bytes_value(self);
        Ok(())
    }
    fn to_value(&self) -> Value {
        Value::Bytes(self.to_vec())
    }
}

impl IntoValue for Vec<u8> {
    #[inline]
    fn encode(&self, w: &mut Writer) -> Result<()> {
        w.bytes_value(self);
        Ok(())
    }
    fn to_value(&self) -> Value {
        Value::Bytes(self.clone())
    }
}

/// Byte-string literals: `b"key"`.
impl<const N: usize> IntoValue for [u8; N] {
    #[inline]
    fn encode(&self, w: &mut Writer) -> Result<()> {
        w.bytes_value(self);
        Ok(())
    }
    fn to_value(&self) -> Value {
        Value::Bytes(self.to_vec())
    }
}

impl IntoValue for Decimal {
    fn encode(&self, w: &mut Writer) -> Result<()> {
        Decimal::encode(self, w)
    }
    fn to_value(&self) -> Value {
        Value::Decimal(*self)
    }
}

macro_rules! into_plain {
    ($($t:ident => |$v:ident, $w:ident| $enc:expr;)*) => {$(
        impl IntoValue for $t {
            #[inline]
            fn encode(&self, $w: &mut Writer) -> Result<()> {
                let $v = self;
                $enc;
                Ok(())
            }
            fn to_value(&self) -> Value {
                Value::$t(*self)
            }
        }
    )*};
}

into_plain! {
    Timestamp => |v, w| w.timestamp_value(v.0);
    TimestampTz => |v, w| w.timestamptz_value(v.0);
    Date => |v, w| w.date_value(v.0);
    Interval => |v, w| w.interval_value(v.months, v.days, v.micros);
    Uuid => |v, w| w.uuid_value(&v.0);
}

impl IntoValue for Time {
    fn encode(&self, w: &mut Writer) -> Result<()> {
        Time::encode(self, w)
    }
    fn to_value(&self) -> Value {
        Value::Time(*self)
    }
}

impl IntoValue for Value {
    fn encode(&self, w: &mut Writer) -> Result<()> {
        Value::encode(self, w)
    }
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// `None` is NULL.
impl<T: IntoValue> IntoValue for Option<T> {
    #[inline]
    fn encode(&self, w: &mut Writer) -> Result<()> {
        match self {
            Some(v) => v.encode(w),
            None => {
                w.null();
                Ok(())
            }
        }
    }
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_value)
    }
}

/// `&str`, `&String`, `&[u8]`, `&i64`, ...
impl<T: IntoValue + ?Sized> IntoValue for &T {
    #[inline]
    fn encode(&self, w: &mut Writer) -> Result<()> {
        (**self).encode(w)
    }
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

/// A statement's parameter list: `()`, a tuple of up to 12 `IntoValue`s,
/// or a slice, array or `Vec` of one `IntoValue` type (`&[Value]` for a
/// list built at run time).
pub trait Params {
    /// How many parameters.
    fn count(&self) -> usize;
    /// Appends each parameter's encoding, in order.
    fn encode(&self, w: &mut Writer) -> Result<()>;
}

impl Params for () {
    fn count(&self) -> usize {
        0
    }
    fn encode(&self, _: &mut Writer) -> Result<()> {
        Ok(())
    }
}

macro_rules! params_tuple {
    ($n:literal: $($t:ident $i:tt),+) => {
        impl<$($t: IntoValue),+> Params for ($($t,)+) {
            #[inline]
            fn count(&self) -> usize {
                $n
            }
            #[inline]
            fn encode(&self, w: &mut Writer) -> Result<()> {
                $(self.$i.encode(w)?;)+
                Ok(())
            }
        }
    };
}

params_tuple!(1: A 0);
params_tuple!(2: A 0, B 1);
params_tuple!(3: A 0, B 1, C 2);
params_tuple!(4: A 0, B 1, C 2, D 3);
params_tuple!(5: A 0, B 1, C 2, D 3, E 4);
params_tuple!(6: A 0, B 1, C 2, D 3, E 4, F 5);
params_tuple!(7: A 0, B 1, C 2, D 3, E 4, F 5, G 6);
params_tuple!(8: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
params_tuple!(9: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
params_tuple!(10: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
params_tuple!(11: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
params_tuple!(12: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

impl<T: IntoValue> Params for [T] {
    fn count(&self) -> usize {
        self.len()
    }
    fn encode(&self, w: &mut Writer) -> Result<()> {
        self.iter().try_for_each(|v| v.encode(w))
    }
}

impl<T: IntoValue, const N: usize> Params for [T; N] {
    fn count(&self) -> usize {
        N
    }
    fn encode(&self, w: &mut Writer) -> Result<()> {
        self.as_slice().encode(w)
    }
}

impl<T: IntoValue> Params for Vec<T> {
    fn count(&self) -> usize {
        self.len()
    }
    fn encode(&self, w: &mut Writer) -> Result<()> {
        self.as_slice().encode(w)
    }
}

impl<P: Params + ?Sized> Params for &P {
    fn count(&self) -> usize {
        (**self).count()
    }
    fn encode(&self, w: &mut Writer) -> Result<()> {
        (**self).encode(w)
    }
}

/// A Rust type a column value reads into (`row.get::<i64>(0)`). Integers
/// are range-checked; NULL reads only into `Option` (and `Value`).
pub trait FromValue: Sized {
    /// Converts, or says what was expected and what was found.
    fn from_value(v: &Value) -> Result<Self>;
}

fn mismatch<T>(expected: &str, found: &Value) -> Result<T> {
    Err(Error::Type(if found.is_null() {
        format!("expected {expected}, found NULL (read it as an Option)")
    } else {
        format!("expected {expected}, found {}", found.type_name())
    }))
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<i64> {
        match v {
            Value::Int(n) => Ok(*n),
            other => mismatch("INTEGER", other),
        }
    }
}

macro_rules! from_narrow_int {
    ($($t:ty => $sql:literal),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<$t> {
                match v {
                    Value::Int(n) => <$t>::try_from(*n).map_err(|_| {
                        Error::Type(format!(
                            "{n} is out of range for {} ({}..={})",
                            $sql,
                            <$t>::MIN,
                            <$t>::MAX
                        ))
                    }),
                    other => mismatch($sql, other),
                }
            }
        }
    )*};
}

from_narrow_int!(i32 => "INTEGER (i32)", i16 => "SMALLINT (i16)");

/// From DOUBLE, and from INTEGER (rounded to the nearest `f64`).
impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<f64> {
        match v {
            Value::Double(x) => Ok(*x),
            Value::Int(n) => Ok(*n as f64),
            other => mismatch("DOUBLE", other),
        }
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<bool> {
        match v {
            Value::Bool(b) => Ok(*b),
            other => mismatch("BOOLEAN", other),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => mismatch("TEXT", other),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Vec<u8>> {
        match v {
            Value::Bytes(b) => Ok(b.clone()),
            other => mismatch("VARBINARY", other),
        }
    }
}

/// From DECIMAL, and exactly from INTEGER (scale 0).
impl FromValue for Decimal {
    fn from_value(v: &Value) -> Result<Decimal> {
        match v {
            Value::Decimal(d) => Ok(*d),
            Value::Int(n) => Ok(Decimal::from(*n)),
            other => mismatch("DECIMAL", other),
        }
    }
}

macro_rules! from_exact {
    ($($t:ident => $sql:literal),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<$t> {
                match v {
                    Value::$t(x) => Ok(*x),
                    other => mismatch($sql, other),
                }
            }
        }
    )*};
}

// Exactly their own type: a TIMESTAMP is not read as a TIMESTAMPTZ (that
// would need a zone), nor a DATE as a TIMESTAMP.
from_exact!(
    Timestamp => "TIMESTAMP",
    TimestampTz => "TIMESTAMPTZ",
    Date => "DATE",
    Time => "TIME",
    Interval => "INTERVAL",
    Uuid => "UUID"
);

/// Any value, NULL included.
impl FromValue for Value {
    fn from_value(v: &Value) -> Result<Value> {
        Ok(v.clone())
    }
}

/// NULL is `None`.
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Option<T>> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::Reader;

    fn decode_all(bytes: &[u8]) -> Vec<Value> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while !r.is_empty() {
            out.push(Value::from_raw(r.value().unwrap()));
        }
        out
    }

    #[test]
    fn params_encode_in_order() {
        let mut w = Writer::new();
        let s = String::from("s");
        let p = (
            1i64,
            2i32,
            3u8,
            "a",
            &s,
            1.5f64,
            true,
            None::<i64>,
            Some(&b"b"[..]),
        );
        assert_eq!(p.count(), 9);
        p.encode(&mut w).unwrap();
        assert_eq!(
            decode_all(&w.buf),
            vec![
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
                Value::Text("a".into()),
                Value::Text("s".into()),
                Value::Double(1.5),
                Value::Bool(true),
                Value::Null,
                Value::Bytes(b"b".to_vec()),
            ]
        );
        let dynamic: Vec<Value> = vec![Value::Int(7), Value::Null];
        let mut w = Writer::new();
        dynamic[..].encode(&mut w).unwrap();
        [Timestamp(5)].encode(&mut w).unwrap();
        assert_eq!(dynamic.count() + [0u8; 3].count() + ().count(), 5);
        assert_eq!(
            decode_all(&w.buf),
            vec![Value::Int(7), Value::Null, Value::Timestamp(Timestamp(5))]
        );
    }

    #[test]
    fn from_value_checks_ranges_and_types() {
        assert_eq!(i32::from_value(&Value::Int(-5)).unwrap(), -5);
        let e = i32::from_value(&Value::Int(1 << 40)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "1099511627776 is out of range for INTEGER (i32) (-2147483648..=2147483647)"
        );
        assert!(i16::from_value(&Value::Int(40_000)).is_err());
        assert_eq!(i16::from_value(&Value::Int(-32_768)).unwrap(), i16::MIN);
        let e = i64::from_value(&Value::Text("x".into())).unwrap_err();
        assert_eq!(e.to_string(), "expected INTEGER, found TEXT");
        let e = String::from_value(&Value::Null).unwrap_err();
        assert!(
            e.to_string().contains("found NULL (read it as an Option)"),
            "{e}"
        );
        assert_eq!(Option::<String>::from_value(&Value::Null).unwrap(), None);
        assert_eq!(f64::from_value(&Value::Int(3)).unwrap(), 3.0);
        assert_eq!(
            Decimal::from_value(&Value::Int(3)).unwrap(),
            Decimal::from(3)
        );
        assert_eq!(Value::from_value(&Value::Null).unwrap(), Value::Null);
        assert!(bool::from_value(&Value::Int(1)).is_err());
    }

    #[test]
    fn dates_and_times_encode_and_read_back() {
        let iv = Interval::new(1, -2, 3);
        let u = Uuid([9; 16]);
        let p = (TimestampTz(1), Date(-2), Time(3), iv, Some(u), None::<Date>);
        let mut w = Writer::new();
        p.encode(&mut w).unwrap();
        let got = decode_all(&w.buf);
        assert_eq!(
            got,
            [
                Value::TimestampTz(TimestampTz(1)),
                Value::Date(Date(-2)),
                Value::Time(Time(3)),
                Value::Interval(iv),
                Value::Uuid(u),
                Value::Null,
            ]
        );
        assert_eq!(TimestampTz::from_value(&got[0]).unwrap(), TimestampTz(1));
        assert_eq!(Date::from_value(&got[1]).unwrap(), Date(-2));
        assert_eq!(Time::from_value(&got[2]).unwrap(), Time(3));
        assert_eq!(Interval::from_value(&got[3]).unwrap(), iv);
        assert_eq!(Option::<Uuid>::from_value(&got[4]).unwrap(), Some(u));
        assert_eq!(Option::<Date>::from_value(&got[5]).unwrap(), None);
        assert_eq!(Date(4).to_value(), Value::Date(Date(4)));
        let e = Date::from_value(&Value::Timestamp(Timestamp(0))).unwrap_err();
        assert_eq!(e.to_string(), "expected DATE, found TIMESTAMP");
        let e = TimestampTz::from_value(&Value::Timestamp(Timestamp(0))).unwrap_err();
        assert_eq!(e.to_string(), "expected TIMESTAMPTZ, found TIMESTAMP");
        assert!(Uuid::from_value(&Value::Text("x".into())).is_err());
        let mut w = Writer::new();
        assert!((Time(-1),).encode(&mut w).is_err());
    }
}
