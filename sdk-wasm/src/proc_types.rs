//! The Rust types a procedure may take and return, each with its declared
//! `abi::ty` code (what `ohm_describe` tells the host).
//!
//! Owns: `ProcParam` (decoding one argument, strictly: the host already
//! checked the caller's values against the declared types) and `ProcReturn`
//! (encoding the procedure result). Must not: know about arguments lists or
//! statuses (`invoke`).

use crate::abi::{result_kind, ty, RawValue, Writer};
use crate::datetime::{Date, Interval, Time, Timestamp, TimestampTz, Uuid};
use crate::error::Result;
use crate::rows::Rows;
use crate::value::{Decimal, Value};

/// A type a procedure parameter may have.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a procedure parameter",
    note = "use i64, i32, i16, f64, bool, String, Vec<u8>, Decimal, Timestamp, TimestampTz, Date, Time, Interval, Uuid, or an Option of one"
)]
pub trait ProcParam: Sized {
    /// The declared type, an `abi::ty` code.
    const TY: u8;
    /// Converts one decoded argument, or says why it does not fit (the
    /// caller prefixes the parameter's name).
    fn from_raw(v: RawValue<'_>) -> core::result::Result<Self, String>;
}

/// A type a procedure may return inside its `Result`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a procedure result",
    note = "use (), Rows, i64, i32, i16, f64, bool, String, Vec<u8>, Decimal, Timestamp, TimestampTz, Date, Time, Interval, Uuid, or an Option of one"
)]
pub trait ProcReturn {
    /// The declared type, an `abi::ty` code (`ty::UNIT`, `ty::ROWS` too).
    const TY: u8;
    /// Appends the ABI procedure result (kind byte, then value or row set).
    fn encode_result(&self, w: &mut Writer) -> Result<()>;
}

fn wrong(expected: u8, found: &RawValue<'_>) -> String {
    if matches!(found, RawValue::Null) {
        format!(
            "is NULL, but {} is not nullable (make it an Option)",
            ty::name(expected)
        )
    } else {
        format!("expected {}, got {}", ty::name(expected), found.type_name())
    }
}

macro_rules! proc_type {
    ($t:ty, $ty:expr, |$raw:ident| $from:expr, |$v:ident, $w:ident| $enc:expr) => {
        impl ProcParam for $t {
            const TY: u8 = $ty;
            #[inline]
            fn from_raw($raw: RawValue<'_>) -> core::result::Result<$t, String> {
                $from
            }
        }

        impl ProcReturn for $t {
            const TY: u8 = $ty;
            #[inline]
            fn encode_result(&self, $w: &mut Writer) -> Result<()> {
                $w.u8(result_kind::VALUE);
                let $v = self;
                $enc;
                Ok(())
            }
        }
    };
}

proc_type!(
    i64,
    ty::I64,
    |raw| match raw {
        RawValue::Int(n) => Ok(n),
        other => Err(wrong(ty::I64, &other)),
    },
    |v, w| w.int_value(*v)
);

macro_rules! narrow_int {
    ($($t:ty => $code:expr),*) => {$(
        proc_type!($t, $code, |raw| match raw {
            RawValue::Int(n) => <$t>::try_from(n).map_err(|_| {
                format!("{n} is out of range for {} ({}..={})", ty::name($code), <$t>::MIN, <$t>::MAX)
            }),
            other => Err(wrong($code, &other)),
        }, |v, w| w.int_value(i64::from(*v)));
    )*};
}

narrow_int!(i32 => ty::I32, i16 => ty::I16);

proc_type!(
    f64,
    ty::F64,
    |raw| match raw {
        RawValue::Double(x) => Ok(x),
        RawValue::Int(n) => Ok(n as f64),
        other => Err(wrong(ty::F64, &other)),
    },
    |v, w| w.double_value(*v)
);

proc_type!(
    bool,
    ty::BOOL,
    |raw| match raw {
        RawValue::Bool(b) => Ok(b),
        other => Err(wrong(ty::BOOL, &other)),
    },
    |v, w| w.bool_value(*v)
);

proc_type!(
    String,
    ty::TEXT,
    |raw| match raw {
        RawValue::Text(s) => Ok(s.to_string()),
        other => Err(wrong(ty::TEXT, &other)),
    },
    |v, w| w.text_value(v)
);

proc_type!(
    Vec<u8>,
    ty::BYTES,
    |raw| match raw {
        RawValue::Bytes(b) => Ok(b.to_vec()),
        other => Err(wrong(ty::BYTES, &other)),
    },
    |v, w| w.bytes_value(v)
);

proc_type!(
    Timestamp,
    ty::TIMESTAMP,
    |raw| match raw {
        RawValue::Timestamp(t) => Ok(Timestamp(t)),
        other => Err(wrong(ty::TIMESTAMP, &other)),
    },
    |v, w| w.timestamp_value(v.0)
);

proc_type!(
    TimestampTz,
    ty::TIMESTAMPTZ,
    |raw| match raw {
        RawValue::TimestampTz(t) => Ok(TimestampTz(t)),
        other => Err(wrong(ty::TIMESTAMPTZ, &other)),
    },
    |v, w| w.timestamptz_value(v.0)
);

proc_type!(
    Date,
    ty::DATE,
    |raw| match raw {
        RawValue::Date(d) => Ok(Date(d)),
        other => Err(wrong(ty::DATE, &other)),
    },
    |v, w| w.date_value(v.0)
);

proc_type!(
    Interval,
    ty::INTERVAL,
    |raw| match raw {
        RawValue::Interval {
            months,
            days,
            micros,
        } => Ok(Interval::new(months, days, micros)),
        other => Err(wrong(ty::INTERVAL, &other)),
    },
    |v, w| w.interval_value(v.months, v.days, v.micros)
);

proc_type!(
    Uuid,
    ty::UUID,
    |raw| match raw {
        RawValue::Uuid(b) => Ok(Uuid(b)),
        other => Err(wrong(ty::UUID, &other)),
    },
    |v, w| w.uuid_value(&v.0)
);

/// The reader refuses a TIME outside 00:00:00..=24:00:00, so only the
/// result side can fail: a `Time` built from its public field.
impl ProcParam for Time {
    const TY: u8 = ty::TIME;
    fn from_raw(raw: RawValue<'_>) -> core::result::Result<Time, String> {
        match raw {
            RawValue::Time(t) => Ok(Time(t)),
            other => Err(wrong(ty::TIME, &other)),
        }
    }
}

impl ProcReturn for Time {
    const TY: u8 = ty::TIME;
    fn encode_result(&self, w: &mut Writer) -> Result<()> {
        w.u8(result_kind::VALUE);
        self.encode(w)
    }
}

impl ProcParam for Decimal {
    const TY: u8 = ty::DECIMAL;
    fn from_raw(raw: RawValue<'_>) -> core::result::Result<Decimal, String> {
        match raw {
            RawValue::Decimal { mantissa, scale } => Ok(Decimal { mantissa, scale }),
            RawValue::Int(n) => Ok(Decimal::from(n)),
            other => Err(wrong(ty::DECIMAL, &other)),
        }
    }
}

impl ProcReturn for Decimal {
    const TY: u8 = ty::DECIMAL;
    fn encode_result(&self, w: &mut Writer) -> Result<()> {
        w.u8(result_kind::VALUE);
        Value::Decimal(*self).encode(w)
    }
}

/// NULL is `None`; declared with `ty::NULLABLE`.
impl<T: ProcParam> ProcParam for Option<T> {
    const TY: u8 = T::TY | ty::NULLABLE;
    fn from_raw(raw: RawValue<'_>) -> core::result::Result<Option<T>, String> {
        match raw {
            RawValue::Null => Ok(None),
            other => T::from_raw(other).map(Some),
        }
    }
}

/// `None` reaches the caller as NULL. Only value types (not `Rows`, not
/// `()`) may be optional.
impl<T: ProcReturn + ProcParam> ProcReturn for Option<T> {
    const TY: u8 = <T as ProcReturn>::TY | ty::NULLABLE;
    fn encode_result(&self, w: &mut Writer) -> Result<()> {
        match self {
            Some(v) => v.encode_result(w),
            None => {
                w.u8(result_kind::VALUE);
                w.null();
                Ok(())
            }
        }
    }
}

/// Nothing: the caller sees NULL.
impl ProcReturn for () {
    const TY: u8 = ty::UNIT;
    fn encode_result(&self, w: &mut Writer) -> Result<()> {
        w.u8(result_kind::VALUE);
        w.null();
        Ok(())
    }
}

/// A row set, as the caller sees it.
impl ProcReturn for Rows {
    const TY: u8 = ty::ROWS;
    fn encode_result(&self, w: &mut Writer) -> Result<()> {
        w.u8(result_kind::ROWS);
        self.encode(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types() {
        assert_eq!(<i64 as ProcParam>::TY, ty::I64);
        assert_eq!(<Option<i32> as ProcParam>::TY, ty::I32 | ty::NULLABLE);
        assert_eq!(<Option<String> as ProcReturn>::TY, ty::TEXT | ty::NULLABLE);
        assert_eq!(<() as ProcReturn>::TY, ty::UNIT);
        assert_eq!(<Rows as ProcReturn>::TY, ty::ROWS);
        for t in [
            <i16 as ProcParam>::TY,
            <f64 as ProcParam>::TY,
            <bool as ProcParam>::TY,
            <Vec<u8> as ProcParam>::TY,
            <Decimal as ProcParam>::TY,
            <Timestamp as ProcParam>::TY,
        ] {
            assert!(ty::is_param(t), "{t}");
        }
        let new = [
            (
                <TimestampTz as ProcParam>::TY,
                <TimestampTz as ProcReturn>::TY,
            ),
            (<Date as ProcParam>::TY, <Date as ProcReturn>::TY),
            (<Time as ProcParam>::TY, <Time as ProcReturn>::TY),
            (<Interval as ProcParam>::TY, <Interval as ProcReturn>::TY),
            (<Uuid as ProcParam>::TY, <Uuid as ProcReturn>::TY),
        ];
        assert_eq!(
            new,
            [
                (ty::TIMESTAMPTZ, ty::TIMESTAMPTZ),
                (ty::DATE, ty::DATE),
                (ty::TIME, ty::TIME),
                (ty::INTERVAL, ty::INTERVAL),
                (ty::UUID, ty::UUID)
            ]
        );
        assert_eq!(<Option<Date> as ProcParam>::TY, ty::DATE | ty::NULLABLE);
    }

    #[test]
    fn dates_and_times_decode_strictly_and_return() {
        assert_eq!(Date::from_raw(RawValue::Date(3)), Ok(Date(3)));
        assert_eq!(
            Date::from_raw(RawValue::Timestamp(3)).unwrap_err(),
            "expected DATE, got TIMESTAMP"
        );
        assert_eq!(
            TimestampTz::from_raw(RawValue::Timestamp(3)).unwrap_err(),
            "expected TIMESTAMPTZ, got TIMESTAMP"
        );
        assert_eq!(Time::from_raw(RawValue::Time(5)), Ok(Time(5)));
        assert_eq!(
            Time::from_raw(RawValue::Int(5)).unwrap_err(),
            "expected TIME, got INTEGER"
        );
        let raw = RawValue::Interval {
            months: 1,
            days: 2,
            micros: 3,
        };
        assert_eq!(Interval::from_raw(raw), Ok(Interval::new(1, 2, 3)));
        assert_eq!(Uuid::from_raw(RawValue::Uuid([1; 16])), Ok(Uuid([1; 16])));
        assert_eq!(
            Uuid::from_raw(RawValue::Text("x")).unwrap_err(),
            "expected UUID, got TEXT"
        );
        assert_eq!(Option::<Uuid>::from_raw(RawValue::Null), Ok(None));

        let mut w = Writer::new();
        Date(-1).encode_result(&mut w).unwrap();
        assert_eq!(w.buf, [result_kind::VALUE, 9, 0xff, 0xff, 0xff, 0xff]);
        let mut w = Writer::new();
        assert!(Time(-1).encode_result(&mut w).is_err());
        let mut w = Writer::new();
        Some(Time(7)).encode_result(&mut w).unwrap();
        TimestampTz(8).encode_result(&mut w).unwrap();
        Interval::new(1, 2, 3).encode_result(&mut w).unwrap();
        Uuid([4; 16]).encode_result(&mut w).unwrap();
        let mut r = crate::abi::Reader::new(&w.buf);
        let mut next = || {
            assert_eq!(r.u8("kind").unwrap(), result_kind::VALUE);
            r.value().unwrap()
        };
        assert_eq!(next(), RawValue::Time(7));
        assert_eq!(next(), RawValue::TimestampTz(8));
        assert_eq!(next(), raw);
        assert_eq!(next(), RawValue::Uuid([4; 16]));
    }

    #[test]
    fn arguments_decode_strictly() {
        assert_eq!(i16::from_raw(RawValue::Int(7)), Ok(7));
        assert_eq!(
            i16::from_raw(RawValue::Int(70_000)).unwrap_err(),
            "70000 is out of range for SMALLINT (-32768..=32767)"
        );
        assert_eq!(
            i64::from_raw(RawValue::Text("7")).unwrap_err(),
            "expected BIGINT, got TEXT"
        );
        assert_eq!(
            String::from_raw(RawValue::Null).unwrap_err(),
            "is NULL, but TEXT is not nullable (make it an Option)"
        );
        assert_eq!(Option::<String>::from_raw(RawValue::Null), Ok(None));
        assert_eq!(f64::from_raw(RawValue::Int(2)), Ok(2.0));
    }

    #[test]
    fn results_encode_with_their_kind() {
        let mut w = Writer::new();
        Some(5i32).encode_result(&mut w).unwrap();
        assert_eq!(w.buf, [result_kind::VALUE, 2, 5, 0, 0, 0, 0, 0, 0, 0]);
        let mut w = Writer::new();
        ().encode_result(&mut w).unwrap();
        None::<i64>.encode_result(&mut w).unwrap();
        assert_eq!(w.buf, [result_kind::VALUE, 0, result_kind::VALUE, 0]);
    }
}
