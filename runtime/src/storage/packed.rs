//! The in-memory byte form of a stored row: what `Table` keeps per slot
//! instead of one 24-byte `Value` per cell.
//!
//! Owns: `encode` (a row's values to bytes), `decode_into` (bytes back to
//! exactly the values encoded) and `Region` (a slot's span in the table's
//! byte arena: a capacity, then the row). Must not: depend on the schema
//! (a row decodes alone, so `ALTER TABLE` and undo need no re-encoding
//! rules) or reach the disk: the durable log and snapshots have their own
//! format (durability/record.rs), and this one may change freely.
//!
//! Each value is a tag byte and the fewest bytes that hold it exactly:
//!
//! ```text
//!   NULL, FALSE, TRUE          tag only
//!   integer                    tag + 1, 2, 4 or 8 bytes (the smallest that fits)
//!   DECIMAL                    tag + scale + 8-byte mantissa (or 16 bytes if wider)
//!   text, bytes                tag + varint length + the bytes, inline
//!   timestamp, time, double    tag + 8      date: tag + 4
//!   interval, uuid             tag + 16
//! ```
//!
//! For `ohm bench load`'s row (a BIGINT key, an 11-character name, a
//! DECIMAL(12,2), a TIMESTAMP) that is about 37 bytes, where four `Value`s
//! take 96. Text longer than a `SmolStr` holds inline (23 bytes) is
//! allocated again on each decode; text is kept inline here because a
//! shared pointer would cost more memory than the text for most columns.

use crate::types::{Interval, Value};
use rust_decimal::Decimal;
use smol_str::SmolStr;
use std::sync::Arc;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT8: u8 = 3;
const INT16: u8 = 4;
const INT32: u8 = 5;
const INT64: u8 = 6;
const DOUBLE: u8 = 7;
const DECIMAL64: u8 = 8;
const DECIMAL128: u8 = 9;
const TEXT: u8 = 10;
const BYTES: u8 = 11;
const TIMESTAMP: u8 = 12;
const TIMESTAMPTZ: u8 = 13;
const DATE: u8 = 14;
const TIME: u8 = 15;
const INTERVAL: u8 = 16;
const UUID: u8 = 17;

/// Appends `row`'s values to `out`.
pub(super) fn encode(row: &[Value], out: &mut Vec<u8>) {
    for v in row {
        encode_value(v, out);
    }
}

fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Int(i) => {
            if let Ok(b) = i8::try_from(*i) {
                out.push(INT8);
                out.extend_from_slice(&b.to_le_bytes());
            } else if let Ok(b) = i16::try_from(*i) {
                out.push(INT16);
                out.extend_from_slice(&b.to_le_bytes());
            } else if let Ok(b) = i32::try_from(*i) {
                out.push(INT32);
                out.extend_from_slice(&b.to_le_bytes());
            } else {
                out.push(INT64);
                out.extend_from_slice(&i.to_le_bytes());
            }
        }
        Value::Double(d) => {
            out.push(DOUBLE);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::Decimal(d) => match narrow_decimal(d) {
            Some((scale, m)) => {
                out.push(DECIMAL64);
                out.push(scale);
                out.extend_from_slice(&m.to_le_bytes());
            }
            None => {
                out.push(DECIMAL128);
                out.extend_from_slice(&d.serialize());
            }
        },
        Value::Text(s) => {
            out.push(TEXT);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(BYTES);
            put_varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Timestamp(t) => put_tagged(out, TIMESTAMP, &t.to_le_bytes()),
        Value::TimestampTz(t) => put_tagged(out, TIMESTAMPTZ, &t.to_le_bytes()),
        Value::Date(d) => put_tagged(out, DATE, &d.to_le_bytes()),
        Value::Time(t) => put_tagged(out, TIME, &t.to_le_bytes()),
        Value::Interval(iv) => {
            out.push(INTERVAL);
            out.extend_from_slice(&iv.months.to_le_bytes());
            out.extend_from_slice(&iv.days.to_le_bytes());
            out.extend_from_slice(&iv.micros.to_le_bytes());
        }
        Value::Uuid(u) => put_tagged(out, UUID, u),
    }
}

fn put_tagged(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend_from_slice(bytes);
}

/// `d` as a scale and an i64 mantissa, when those give back exactly `d`
/// (its sign of zero included).
fn narrow_decimal(d: &Decimal) -> Option<(u8, i64)> {
    let m = i64::try_from(d.mantissa()).ok()?;
    let scale = u8::try_from(d.scale()).ok()?;
    let back = Decimal::from_i128_with_scale(i128::from(m), u32::from(scale));
    (back.serialize() == d.serialize()).then_some((scale, m))
}

/// Appends the `width` values encoded at the start of `bytes` to `out`;
/// returns the bytes they took.
pub(super) fn decode_into(bytes: &[u8], width: usize, out: &mut Vec<Value>) -> usize {
    let mut r = Reader { bytes, at: 0 };
    out.reserve(width);
    for _ in 0..width {
        out.push(r.value());
    }
    r.at
}

/// `decode_into` for the columns `cols` marks; the others come back as
/// NULL without being decoded (a query that reads two columns of ten pays
/// for two).
pub(super) fn decode_cols_into(bytes: &[u8], cols: &[bool], out: &mut Vec<Value>) {
    let mut r = Reader { bytes, at: 0 };
    out.reserve(cols.len());
    for &wanted in cols {
        if wanted {
            out.push(r.value());
        } else {
            r.skip();
            out.push(Value::Null);
        }
    }
}

/// The bytes the `width` values at the start of `bytes` take (nothing is
/// decoded).
pub(super) fn encoded_len(bytes: &[u8], width: usize) -> usize {
    let mut r = Reader { bytes, at: 0 };
    for _ in 0..width {
        r.skip();
    }
    r.at
}

/// Reads values this module wrote; anything else is a bug in the table,
/// so a bad byte panics (naming it) rather than returning an error.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    #[inline]
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let b: [u8; N] = self.bytes[self.at..self.at + N]
            .try_into()
            .expect("a fixed-size field");
        self.at += N;
        b
    }

    fn slice(&mut self) -> &[u8] {
        let len = usize::try_from(self.varint()).expect("a length that fits memory");
        let s = &self.bytes[self.at..self.at + len];
        self.at += len;
        s
    }

    fn varint(&mut self) -> u64 {
        let (v, n) = get_varint(&self.bytes[self.at..]);
        self.at += n;
        v
    }

    fn skip(&mut self) {
        let tag = self.take::<1>()[0];
        let fixed = match tag {
            NULL | FALSE | TRUE => 0,
            INT8 => 1,
            INT16 => 2,
            INT32 | DATE => 4,
            INT64 | DOUBLE | TIMESTAMP | TIMESTAMPTZ | TIME => 8,
            DECIMAL64 => 9,
            DECIMAL128 | INTERVAL | UUID => 16,
            TEXT | BYTES => {
                self.slice();
                0
            }
            other => panic!(
                "stored row: unknown value tag {other} at byte {}",
                self.at - 1
            ),
        };
        self.at += fixed;
    }

    #[inline(always)]
    fn value(&mut self) -> Value {
        let b = &self.bytes[self.at..];
        // Each arm reads its fixed bytes from `b` and says how many it took.
        let (v, n) = match b[0] {
            NULL => (Value::Null, 1),
            FALSE => (Value::Bool(false), 1),
            TRUE => (Value::Bool(true), 1),
            INT8 => (Value::Int(i64::from(b[1] as i8)), 2),
            INT16 => (Value::Int(i16::from_le_bytes([b[1], b[2]]).into()), 3),
            INT32 => (Value::Int(i32::from_le_bytes(fixed(&b[1..])).into()), 5),
            INT64 => (Value::Int(i64::from_le_bytes(fixed(&b[1..]))), 9),
            DOUBLE => (Value::Double(f64::from_le_bytes(fixed(&b[1..]))), 9),
            DECIMAL64 => {
                let m = i64::from_le_bytes(fixed(&b[2..]));
                let d = Decimal::from_i128_with_scale(m.into(), b[1].into());
                (Value::Decimal(d), 10)
            }
            DECIMAL128 => (Value::Decimal(Decimal::deserialize(fixed(&b[1..]))), 17),
            TEXT => {
                self.at += 1;
                let s = std::str::from_utf8(self.slice()).expect("stored text is UTF-8");
                return Value::Text(SmolStr::new(s));
            }
            BYTES => {
                self.at += 1;
                return Value::Bytes(Arc::from(self.slice()));
            }
            TIMESTAMP => (Value::Timestamp(i64::from_le_bytes(fixed(&b[1..]))), 9),
            TIMESTAMPTZ => (Value::TimestampTz(i64::from_le_bytes(fixed(&b[1..]))), 9),
            DATE => (Value::Date(i32::from_le_bytes(fixed(&b[1..]))), 5),
            TIME => (Value::Time(i64::from_le_bytes(fixed(&b[1..]))), 9),
            INTERVAL => {
                let iv = Interval {
                    months: i32::from_le_bytes(fixed(&b[1..])),
                    days: i32::from_le_bytes(fixed(&b[5..])),
                    micros: i64::from_le_bytes(fixed(&b[9..])),
                };
                (Value::Interval(iv), 17)
            }
            UUID => (Value::Uuid(fixed(&b[1..])), 17),
            other => panic!("stored row: unknown value tag {other} at byte {}", self.at),
        };
        self.at += n;
        v
    }
}

/// The first `N` bytes of `b`.
#[inline(always)]
fn fixed<const N: usize>(b: &[u8]) -> [u8; N] {
    b[..N].try_into().expect("N bytes")
}

/// LEB128: seven bits a byte, low first.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The varint at the start of `bytes` and the bytes it took.
#[inline]
pub(super) fn get_varint(bytes: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return (v, i + 1);
        }
    }
    panic!("stored row: a varint longer than 10 bytes");
}

/// The bytes `put_varint(v)` writes.
#[cfg(test)]
pub(super) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn round_trip(row: &[Value]) -> usize {
        let mut bytes = Vec::new();
        encode(row, &mut bytes);
        bytes.extend_from_slice(b"after");
        let mut back = Vec::new();
        let n = decode_into(&bytes, row.len(), &mut back);
        assert_eq!(&bytes[n..], b"after", "{row:?} took {n} bytes");
        assert_eq!(n, encoded_len(&bytes, row.len()));
        assert_eq!(back.len(), row.len());
        for (a, b) in row.iter().zip(&back) {
            // Identical, not only equal: 1.0 and 1.00 stay apart.
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
        n
    }

    #[test]
    fn every_kind_of_value_comes_back_exactly() {
        let dec = |s: &str| Value::Decimal(Decimal::from_str(s).unwrap());
        let mut neg_zero = Decimal::from_str("0.00").unwrap();
        neg_zero.set_sign_negative(true);
        let long = "x".repeat(300);
        let row = vec![
            Value::Null,
            Value::Bool(false),
            Value::Bool(true),
            Value::Int(0),
            Value::Int(-128),
            Value::Int(127),
            Value::Int(128),
            Value::Int(-32_769),
            Value::Int(i64::from(i32::MAX) + 1),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Double(-0.0),
            Value::Double(f64::NAN),
            Value::Double(1e300),
            dec("54330.12"),
            dec("1.0"),
            dec("1.00"),
            dec("-79228162514264337593543950335"),
            dec("0.0000000000000000000000000001"),
            Value::Decimal(neg_zero),
            Value::Text("".into()),
            Value::Text("golf 85319".into()),
            Value::Text("ünïcödé ✓".into()),
            Value::Text(long.as_str().into()),
            Value::Bytes(Arc::from(&[0u8, 255, 7][..])),
            Value::Bytes(Arc::from(&[][..])),
            Value::Timestamp(1_709_128_858_000_000),
            Value::Timestamp(i64::MIN),
            Value::TimestampTz(-1),
            Value::Date(-719_162),
            Value::Time(86_399_999_999),
            Value::Interval(Interval {
                months: -14,
                days: 3,
                micros: i64::MAX,
            }),
            Value::Uuid([0xab; 16]),
        ];
        round_trip(&row);
        for v in &row {
            round_trip(std::slice::from_ref(v));
        }
        round_trip(&[]);
    }

    #[test]
    fn the_load_benchmarks_row_takes_under_forty_bytes() {
        let row = [
            Value::Int(654_321),
            Value::Text("golf 85319".into()),
            Value::Decimal(Decimal::from_str("54330.12").unwrap()),
            Value::Timestamp(1_709_128_858_000_000),
        ];
        let n = round_trip(&row);
        assert_eq!(n, 5 + 12 + 10 + 9, "{n} bytes");
    }

    #[test]
    fn varints_of_every_width() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            assert_eq!(get_varint(&b), (v, b.len()));
        }
    }
}
