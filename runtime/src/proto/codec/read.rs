//! A bounds-checked MessagePack reader over one frame body, and the
//! `DecodeError` every decoding step returns. Every length read from the
//! input is checked against the bytes that remain before anything is
//! allocated, and nesting is bounded by `DEPTH_MAX`.

use crate::types::Value;
use rmp::Marker;
use std::sync::Arc;

/// Deepest nesting `skip` walks through (unknown fields may hold any value).
pub const DEPTH_MAX: usize = 16;
/// Most elements in any one array or map (arguments, rows, columns, keys).
pub const ITEMS_MAX: usize = 1 << 22;

/// Why a frame body could not be decoded, with the request id when it could
/// be read (so the server can answer that request with `bad_request`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct DecodeError {
    pub id: Option<u64>,
    /// Where: a field path such as `args[2]` or `ok.rows[3][1]`; empty for
    /// the frame itself.
    pub field: String,
    pub message: String,
    /// The frame is well-formed MessagePack and only a value in it is not
    /// acceptable (an integer outside BIGINT's range): the server answers
    /// that request `bad_arguments` and goes on reading the stream.
    pub bad_value: bool,
}

impl DecodeError {
    pub(crate) fn new(message: impl Into<String>) -> DecodeError {
        DecodeError {
            id: None,
            field: String::new(),
            message: message.into(),
            bad_value: false,
        }
    }

    /// Prefixes the field path with `name` (called on the way out).
    pub(crate) fn at(mut self, name: &str) -> DecodeError {
        self.field = match (self.field.is_empty(), self.field.starts_with('[')) {
            (true, _) => name.to_string(),
            (false, true) => format!("{name}{}", self.field),
            (false, false) => format!("{name}.{}", self.field),
        };
        self
    }

    pub(crate) fn at_index(mut self, index: usize) -> DecodeError {
        self.field = if self.field.is_empty() || self.field.starts_with('[') {
            format!("[{index}]{}", self.field)
        } else {
            format!("[{index}].{}", self.field)
        };
        self
    }

    fn describe(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("field `{}`: {}", self.field, self.message)
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, DecodeError>;

/// Names a marker's family for error messages.
fn family(m: Marker) -> &'static str {
    match m {
        Marker::Null => "nil",
        Marker::True | Marker::False => "bool",
        Marker::FixPos(_)
        | Marker::FixNeg(_)
        | Marker::U8
        | Marker::U16
        | Marker::U32
        | Marker::U64
        | Marker::I8
        | Marker::I16
        | Marker::I32
        | Marker::I64 => "int",
        Marker::F32 | Marker::F64 => "float",
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => "str",
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => "bin",
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => "array",
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => "map",
        Marker::Reserved => "the reserved byte 0xc1",
        _ => "ext",
    }
}

fn expected(what: &str, found: Marker) -> DecodeError {
    DecodeError::new(format!("expected {what}, found {}", family(found)))
}

/// A cursor over one body. Cheap to copy (a slice and an offset), which the
/// decoders use to look ahead for a map's `kind` key.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Errs on bytes left after the top-level value.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::new(format!(
                "{n} trailing bytes after the message"
            ))),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e).map(|s| (e, s))) {
            Some((e, s)) => {
                self.pos = e;
                Ok(s)
            }
            None => Err(DecodeError::new(format!(
                "truncated: needs {n} more bytes, {} remain",
                self.remaining()
            ))),
        }
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn marker(&mut self) -> Result<Marker> {
        let [b] = self.be::<1>()?;
        Ok(Marker::from_u8(b))
    }

    /// A length that must fit in the remaining input (every element or
    /// byte it announces takes at least one byte) and under `ITEMS_MAX`.
    fn len_of(&mut self, m: Marker, items: bool) -> Result<usize> {
        let n = match m {
            Marker::FixArray(n) | Marker::FixMap(n) | Marker::FixStr(n) => n as usize,
            Marker::Str8 | Marker::Bin8 => u8::from_be_bytes(self.be()?) as usize,
            Marker::Str16 | Marker::Bin16 | Marker::Array16 | Marker::Map16 => {
                u16::from_be_bytes(self.be()?) as usize
            }
            _ => u32::from_be_bytes(self.be()?) as usize,
        };
        if n > self.remaining() {
            return Err(DecodeError::new(format!(
                "truncated: declares {n} {}, only {} bytes remain",
                if items { "elements" } else { "bytes" },
                self.remaining()
            )));
        }
        if items && n > ITEMS_MAX {
            return Err(DecodeError::new(format!(
                "{n} elements is over the limit of {ITEMS_MAX}"
            )));
        }
        Ok(n)
    }

    pub(crate) fn map_len(&mut self) -> Result<usize> {
        match self.marker()? {
            m @ (Marker::FixMap(_) | Marker::Map16 | Marker::Map32) => self.len_of(m, true),
            m => Err(expected("a map", m)),
        }
    }

    pub(crate) fn array_len(&mut self) -> Result<usize> {
        match self.marker()? {
            m @ (Marker::FixArray(_) | Marker::Array16 | Marker::Array32) => self.len_of(m, true),
            m => Err(expected("an array", m)),
        }
    }

    fn str_after(&mut self, m: Marker) -> Result<&'a str> {
        let n = self.len_of(m, false)?;
        std::str::from_utf8(self.take(n)?)
            .map_err(|e| DecodeError::new(format!("string is not valid UTF-8: {e}")))
    }

    pub(crate) fn str(&mut self) -> Result<&'a str> {
        match self.marker()? {
            m @ (Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32) => {
                self.str_after(m)
            }
            m => Err(expected("a string", m)),
        }
    }

    /// An unsigned integer or nil.
    pub(crate) fn opt_uint(&mut self) -> Result<Option<u64>> {
        if self.buf.get(self.pos) == Some(&0xc0) {
            self.pos += 1;
            return Ok(None);
        }
        self.uint().map(Some)
    }

    /// A string or nil.
    pub(crate) fn opt_str(&mut self) -> Result<Option<&'a str>> {
        if self.buf.get(self.pos) == Some(&0xc0) {
            self.pos += 1;
            return Ok(None);
        }
        self.str().map(Some)
    }

    pub(crate) fn bin(&mut self) -> Result<&'a [u8]> {
        match self.marker()? {
            m @ (Marker::Bin8 | Marker::Bin16 | Marker::Bin32) => {
                let n = self.len_of(m, false)?;
                self.take(n)
            }
            m => Err(expected("bin (bytes)", m)),
        }
    }

    pub(crate) fn bool(&mut self) -> Result<bool> {
        match self.marker()? {
            Marker::True => Ok(true),
            Marker::False => Ok(false),
            m => Err(expected("a bool", m)),
        }
    }

    /// Any integer marker, widened to i128 so u64 and i64 both fit.
    fn int_after(&mut self, m: Marker) -> Result<Option<i128>> {
        Ok(Some(match m {
            Marker::FixPos(n) => n as i128,
            Marker::FixNeg(n) => n as i128,
            Marker::U8 => u8::from_be_bytes(self.be()?) as i128,
            Marker::U16 => u16::from_be_bytes(self.be()?) as i128,
            Marker::U32 => u32::from_be_bytes(self.be()?) as i128,
            Marker::U64 => u64::from_be_bytes(self.be()?) as i128,
            Marker::I8 => i8::from_be_bytes(self.be()?) as i128,
            Marker::I16 => i16::from_be_bytes(self.be()?) as i128,
            Marker::I32 => i32::from_be_bytes(self.be()?) as i128,
            Marker::I64 => i64::from_be_bytes(self.be()?) as i128,
            _ => return Ok(None),
        }))
    }

    pub(crate) fn uint(&mut self) -> Result<u64> {
        let m = self.marker()?;
        match self.int_after(m)? {
            Some(v) => u64::try_from(v)
                .map_err(|_| DecodeError::new(format!("expected an unsigned integer, found {v}"))),
            None => Err(expected("an unsigned integer", m)),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let v = self.uint()?;
        u32::try_from(v).map_err(|_| DecodeError::new(format!("{v} is over {}", u32::MAX)))
    }

    /// One value: nil, bool, int, float, str or bin, or an INTERVAL's
    /// `[months, days, microseconds]`. A DECIMAL or UUID arrives as text
    /// and a TIMESTAMP, TIMESTAMPTZ, DATE or TIME as an integer; the caller
    /// retypes them.
    pub(crate) fn value(&mut self) -> Result<Value> {
        let m = self.marker()?;
        if let Some(v) = self.int_after(m)? {
            return i64::try_from(v).map(Value::Int).map_err(|_| DecodeError {
                bad_value: true,
                ..DecodeError::new(format!("integer {v} is outside BIGINT's range"))
            });
        }
        Ok(match m {
            Marker::Null => Value::Null,
            Marker::True => Value::Bool(true),
            Marker::False => Value::Bool(false),
            Marker::F32 => Value::Double(f32::from_be_bytes(self.be()?) as f64),
            Marker::F64 => Value::Double(f64::from_be_bytes(self.be()?)),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                Value::text(self.str_after(m)?)
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let n = self.len_of(m, false)?;
                Value::Bytes(Arc::from(self.take(n)?))
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let n = self.len_of(m, true)?;
                if n != 3 {
                    return Err(DecodeError::new(format!(
                        "an array value is an INTERVAL [months, days, microseconds]; \
                         this one has {n} items"
                    )));
                }
                let part = |r: &mut Self, what: &str| -> Result<i64> {
                    let m = r.marker()?;
                    let v = r.int_after(m)?.ok_or_else(|| {
                        DecodeError::new(format!("INTERVAL {what} must be an integer"))
                    })?;
                    i64::try_from(v).map_err(|_| {
                        DecodeError::new(format!("INTERVAL {what} {v} is out of range"))
                    })
                };
                let month_or_day = |v: i64, what: &str| {
                    i32::try_from(v).map_err(|_| {
                        DecodeError::new(format!("INTERVAL {what} {v} is out of range"))
                    })
                };
                let months = month_or_day(part(self, "months")?, "months")?;
                let days = month_or_day(part(self, "days")?, "days")?;
                let micros = part(self, "microseconds")?;
                Value::Interval(crate::types::Interval::new(months, days, micros))
            }
            m => {
                return Err(expected(
                    "a value (nil, bool, int, float, str, bin or [int, int, int])",
                    m,
                ))
            }
        })
    }

    /// Steps over one value of any type (an unknown field), at most
    /// `DEPTH_MAX` levels deep.
    pub(crate) fn skip(&mut self, depth: usize) -> Result<()> {
        if depth > DEPTH_MAX {
            return Err(DecodeError::new(format!(
                "nested deeper than {DEPTH_MAX} levels"
            )));
        }
        let m = self.marker()?;
        if self.int_after(m)?.is_some() {
            return Ok(());
        }
        match m {
            Marker::Null | Marker::True | Marker::False | Marker::Reserved => Ok(()),
            Marker::F32 => self.take(4).map(drop),
            Marker::F64 => self.take(8).map(drop),
            Marker::FixStr(_)
            | Marker::Str8
            | Marker::Str16
            | Marker::Str32
            | Marker::Bin8
            | Marker::Bin16
            | Marker::Bin32 => {
                let n = self.len_of(m, false)?;
                self.take(n).map(drop)
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                for _ in 0..self.len_of(m, true)? {
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                for _ in 0..self.len_of(m, true)? {
                    self.skip(depth + 1)?;
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            Marker::FixExt1 => self.take(2).map(drop),
            Marker::FixExt2 => self.take(3).map(drop),
            Marker::FixExt4 => self.take(5).map(drop),
            Marker::FixExt8 => self.take(9).map(drop),
            Marker::FixExt16 => self.take(17).map(drop),
            Marker::Ext8 => {
                let n = u8::from_be_bytes(self.be()?) as usize;
                self.take(n.saturating_add(1)).map(drop)
            }
            Marker::Ext16 => {
                let n = u16::from_be_bytes(self.be()?) as usize;
                self.take(n.saturating_add(1)).map(drop)
            }
            _ => {
                let n = u32::from_be_bytes(self.be()?) as usize;
                self.take(n.saturating_add(1)).map(drop)
            }
        }
    }

    /// Finds `key` in the map starting here without consuming anything;
    /// returns a reader positioned at its value.
    pub(crate) fn find_key(&self, key: &str) -> Result<Option<Reader<'a>>> {
        let mut r = *self;
        for _ in 0..r.map_len()? {
            if r.str()? == key {
                return Ok(Some(r));
            }
            r.skip(1)?;
        }
        Ok(None)
    }
}
