//! The host ABI, version 1: every number and byte layout that crosses the
//! boundary between a procedure module and the Ohm host, defined once.
//!
//! Owns: the import/export names, status and error codes, type tags, and a
//! byte codec (`Writer`, `Reader`) for values, statement batches, results,
//! procedure arguments and the module description. The runtime uses this
//! very module, so the guest SDK and the host cannot drift apart.
//! Must not: know about SQL, wasmtime, or how values are stored.
//!
//! `docs/ABI.md` is the prose version of this file, written so that a guest
//! SDK in another language can be built from it alone.
//!
//! ```text
//!   host                         guest (exports memory, ohm_describe, ohm_call)
//!    |-- ohm_describe() ----------> (ptr << 32 | len) of the description
//!    |-- ohm_call(proc, args_len) -> guest: ohm.take(buf, args_len)   (args)
//!    |                               guest: ohm.batch(req, out) ...   (SQL)
//!    |                               guest: ohm.result(ptr, len)      (answer)
//!    |<- status (CALL_OK, CALL_ABORT, ...)
//! ```
//!
//! All integers are little-endian. A `str` is a `u32` byte length followed by
//! that many bytes of UTF-8; `bytes` the same without the UTF-8 rule.
//!
//! Layouts (each `value` is a tag byte from `tag` and its payload):
//! - arguments (pending for `ohm_call`): `u32` count, then that many values.
//! - batch request: `u32` statement count (at most `BATCH_STATEMENTS_MAX`),
//!   then per statement `u32` statement index (into the description's
//!   statements), `u32` parameter count, the parameter values.
//! - batch response (status 0): `u32` count (= the request's), then per
//!   statement an `outcome_kind` byte: `ROWS` + row set, or `AFFECTED` + `u64`.
//! - batch error (status = an `ErrorCode`): `u32` index of the failing
//!   statement within the batch, then the message as UTF-8.
//! - row set: `u32` column count, that many `str` column names, `u32` row
//!   count, then the rows' values, row by row.
//! - procedure result (`CALL_OK`): a `result_kind` byte, then one value or a
//!   row set.

use std::fmt;

/// The ABI version this SDK and runtime speak; carried in the description.
pub const ABI_VERSION: u16 = 1;
/// The only module a procedure may import from.
pub const IMPORT_MODULE: &str = "ohm";
/// First four bytes of a module description.
pub const DESCRIBE_MAGIC: [u8; 4] = *b"OHMD";

/// Exports a module must have.
pub const EXPORT_MEMORY: &str = "memory";
/// `ohm_describe() -> i64`: `(ptr << 32) | len` of the description bytes.
pub const EXPORT_DESCRIBE: &str = "ohm_describe";
/// `ohm_call(procedure: i32, args_len: i32) -> i32`: runs one procedure; the
/// arguments are pending in the host (fetch them with `ohm.take`).
pub const EXPORT_CALL: &str = "ohm_call";

/// Host functions, all in module `ohm`.
/// `batch(req_ptr: i32, req_len: i32, out_ptr: i32, out_cap: i32) -> i64`.
pub const FN_BATCH: &str = "batch";
/// `take(dst_ptr: i32, dst_len: i32) -> i32`.
pub const FN_TAKE: &str = "take";
/// `result(ptr: i32, len: i32)`.
pub const FN_RESULT: &str = "result";
/// `panic(ptr: i32, len: i32)`: the message of a guest panic, sent just
/// before the guest traps.
pub const FN_PANIC: &str = "panic";
/// `now() -> i64`: the transaction's timestamp, microseconds since the epoch.
pub const FN_NOW: &str = "now";
/// `seed() -> i64`: the transaction's random seed.
pub const FN_SEED: &str = "seed";

/// What `ohm_call` returns; the payload handed to `ohm.result` depends on it.
pub mod status {
    /// The procedure returned; payload: an encoded procedure result.
    pub const CALL_OK: i32 = 0;
    /// The procedure aborted; payload: the reason, UTF-8.
    pub const CALL_ABORT: i32 = 1;
    /// A statement failed and the procedure passed the error on; payload:
    /// `u32` error code, then the message as UTF-8 (rest of the payload).
    pub const CALL_SQL_ERROR: i32 = 2;
    /// The arguments did not decode as the procedure's parameters; payload:
    /// the reason, UTF-8.
    pub const CALL_BAD_ARGS: i32 = 3;
}

/// Why a statement in a batch failed: the high half of `batch`'s return.
/// Numbers are part of the ABI; never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Any other execution error: overflow, division by zero, a bad cast,
    /// a wrong parameter type, too many rows.
    Exec = 1,
    /// NOT NULL violated.
    NotNull = 2,
    /// PRIMARY KEY or UNIQUE violated.
    Unique = 3,
    /// A text or bytes value longer than its column allows.
    TooLong = 4,
    /// A number out of its column's range.
    OutOfRange = 5,
    /// A value of the wrong type for its column.
    Type = 6,
    /// The statement no longer plans (a table or column was dropped since deploy).
    Plan = 7,
    /// The table has no free row slots left.
    TableFull = 8,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::Exec,
        ErrorCode::NotNull,
        ErrorCode::Unique,
        ErrorCode::TooLong,
        ErrorCode::OutOfRange,
        ErrorCode::Type,
        ErrorCode::Plan,
        ErrorCode::TableFull,
    ];

    pub fn from_u32(n: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| *c as u32 == n)
    }

    /// A short lowercase name, as shown in messages ("unique").
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Exec => "exec",
            ErrorCode::NotNull => "not_null",
            ErrorCode::Unique => "unique",
            ErrorCode::TooLong => "too_long",
            ErrorCode::OutOfRange => "out_of_range",
            ErrorCode::Type => "type",
            ErrorCode::Plan => "plan",
            ErrorCode::TableFull => "table_full",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Packs `batch`'s return: status (0 or an `ErrorCode`) high, payload length low.
pub fn pack_batch_return(code: u32, len: u32) -> i64 {
    ((code as i64) << 32) | len as i64
}

/// Splits `batch`'s return into (status, payload length).
pub fn unpack_batch_return(ret: i64) -> (u32, u32) {
    ((ret >> 32) as u32, ret as u32)
}

/// Value tags: the first byte of every encoded value.
pub mod tag {
    pub const NULL: u8 = 0;
    /// 1 byte, 0 or 1.
    pub const BOOL: u8 = 1;
    /// `i64`.
    pub const INT: u8 = 2;
    /// `f64` bits.
    pub const DOUBLE: u8 = 3;
    /// `i128` mantissa (16 bytes), then `u8` scale (0..=28): value = mantissa / 10^scale.
    pub const DECIMAL: u8 = 4;
    /// `str`.
    pub const TEXT: u8 = 5;
    /// `bytes`.
    pub const BYTES: u8 = 6;
    /// `i64` microseconds since 1970-01-01 00:00:00 UTC.
    pub const TIMESTAMP: u8 = 7;
    /// TIMESTAMP WITH TIME ZONE: `i64` microseconds since 1970-01-01
    /// 00:00:00 UTC (the instant; no zone is carried).
    pub const TIMESTAMPTZ: u8 = 8;
    /// `i32` days since 1970-01-01.
    pub const DATE: u8 = 9;
    /// `i64` microseconds since midnight, 0..=`TIME_MICROS_MAX` (24:00:00
    /// included, as in PostgreSQL).
    pub const TIME: u8 = 10;
    /// `i32` months, `i32` days, `i64` microseconds, kept apart as
    /// PostgreSQL keeps them (a month is not a fixed number of days).
    pub const INTERVAL: u8 = 11;
    /// 16 bytes, in the order the canonical text prints them.
    pub const UUID: u8 = 12;
}

/// Largest decimal scale.
pub const DECIMAL_SCALE_MAX: u8 = 28;
/// Largest TIME: 24:00:00, in microseconds since midnight.
pub const TIME_MICROS_MAX: i64 = 86_400_000_000;

/// Declared types of procedure parameters and results (`u8`). The low
/// bits name the type; `NULLABLE` set means NULL is allowed too.
pub mod ty {
    pub const BOOL: u8 = 1;
    /// 64-bit integer.
    pub const I64: u8 = 2;
    pub const F64: u8 = 3;
    pub const DECIMAL: u8 = 4;
    pub const TEXT: u8 = 5;
    pub const BYTES: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    /// 32-bit integer: an INT value in `i32`'s range.
    pub const I32: u8 = 8;
    /// 16-bit integer: an INT value in `i16`'s range.
    pub const I16: u8 = 9;
    /// Result only: the procedure returns nothing (the caller sees NULL).
    pub const UNIT: u8 = 10;
    /// Result only: the procedure returns a row set.
    pub const ROWS: u8 = 11;
    /// TIMESTAMP WITH TIME ZONE: a `tag::TIMESTAMPTZ` value.
    pub const TIMESTAMPTZ: u8 = 12;
    /// A `tag::DATE` value.
    pub const DATE: u8 = 13;
    /// A `tag::TIME` value.
    pub const TIME: u8 = 14;
    /// A `tag::INTERVAL` value.
    pub const INTERVAL: u8 = 15;
    /// A `tag::UUID` value.
    pub const UUID: u8 = 16;
    /// Flag: NULL is also allowed.
    pub const NULLABLE: u8 = 0x80;

    /// The type without the NULLABLE flag.
    pub fn base(t: u8) -> u8 {
        t & !NULLABLE
    }

    /// Whether `t` (flag included) names a type a parameter may have.
    pub fn is_param(t: u8) -> bool {
        matches!(
            base(t),
            BOOL | I64
                | F64
                | DECIMAL
                | TEXT
                | BYTES
                | TIMESTAMP
                | I32
                | I16
                | TIMESTAMPTZ
                | DATE
                | TIME
                | INTERVAL
                | UUID
        )
    }

    /// Whether `t` (flag included) names a type a result may have.
    pub fn is_result(t: u8) -> bool {
        is_param(t) || t == UNIT || t == ROWS
    }

    /// The SQL-ish name of a type, for messages ("BIGINT", "TEXT NULL").
    pub fn name(t: u8) -> String {
        let b = match base(t) {
            BOOL => "BOOLEAN",
            I64 => "BIGINT",
            F64 => "DOUBLE",
            DECIMAL => "DECIMAL",
            TEXT => "TEXT",
            BYTES => "VARBINARY",
            TIMESTAMP => "TIMESTAMP",
            I32 => "INTEGER",
            I16 => "SMALLINT",
            UNIT => "NOTHING",
            ROWS => "ROWS",
            TIMESTAMPTZ => "TIMESTAMPTZ",
            DATE => "DATE",
            TIME => "TIME",
            INTERVAL => "INTERVAL",
            UUID => "UUID",
            _ => "UNKNOWN",
        };
        if t & NULLABLE != 0 {
            format!("{b} NULL")
        } else {
            b.to_string()
        }
    }
}

/// Procedure results (the payload of `ohm.result` with `CALL_OK`): a kind byte.
pub mod result_kind {
    /// Followed by one encoded value (NULL for a unit result).
    pub const VALUE: u8 = 0;
    /// Followed by a row set.
    pub const ROWS: u8 = 1;
}

/// One statement's outcome in a batch response: a kind byte.
pub mod outcome_kind {
    /// Followed by a row set.
    pub const ROWS: u8 = 0;
    /// Followed by `u64` rows affected.
    pub const AFFECTED: u8 = 1;
}

/// Bounds the host enforces on what a module declares (deploy fails beyond them).
pub const STATEMENTS_MAX: usize = 1024;
pub const PROCEDURES_MAX: usize = 256;
pub const PARAMS_MAX: usize = 64;
pub const NAME_BYTES_MAX: usize = 64;
pub const SQL_BYTES_MAX: usize = 64 << 10;
pub const DESCRIBE_BYTES_MAX: usize = 4 << 20;
/// Statements one batch may carry.
pub const BATCH_STATEMENTS_MAX: usize = 1000;
/// Parameters one statement may be given.
pub const STATEMENT_PARAMS_MAX: usize = 1000;

/// A name procedures and statements may have: `[A-Za-z_][A-Za-z0-9_]*`, at
/// most `NAME_BYTES_MAX` bytes.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= NAME_BYTES_MAX
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Appends ABI encodings to a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer { buf: Vec::new() }
    }

    pub fn with_buf(buf: Vec<u8>) -> Writer {
        Writer { buf }
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A length as `u32`. Callers bound lengths far below 4 GiB; a longer
    /// one is a bug in the caller, not bad input.
    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("ABI lengths are bounded below 4 GiB"));
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub fn null(&mut self) {
        self.u8(tag::NULL);
    }
    pub fn bool_value(&mut self, v: bool) {
        self.u8(tag::BOOL);
        self.u8(v as u8);
    }
    pub fn int_value(&mut self, v: i64) {
        self.u8(tag::INT);
        self.i64(v);
    }
    pub fn double_value(&mut self, v: f64) {
        self.u8(tag::DOUBLE);
        self.u64(v.to_bits());
    }
    /// `scale` must be at most `DECIMAL_SCALE_MAX`.
    pub fn decimal_value(&mut self, mantissa: i128, scale: u8) {
        self.u8(tag::DECIMAL);
        self.buf.extend_from_slice(&mantissa.to_le_bytes());
        self.u8(scale);
    }
    pub fn text_value(&mut self, v: &str) {
        self.u8(tag::TEXT);
        self.str(v);
    }
    pub fn bytes_value(&mut self, v: &[u8]) {
        self.u8(tag::BYTES);
        self.bytes(v);
    }
    pub fn timestamp_value(&mut self, micros: i64) {
        self.u8(tag::TIMESTAMP);
        self.i64(micros);
    }
    pub fn timestamptz_value(&mut self, micros: i64) {
        self.u8(tag::TIMESTAMPTZ);
        self.i64(micros);
    }
    pub fn date_value(&mut self, days: i32) {
        self.u8(tag::DATE);
        self.i32(days);
    }
    /// `micros` must be in 0..=`TIME_MICROS_MAX` (a reader refuses others).
    pub fn time_value(&mut self, micros: i64) {
        self.u8(tag::TIME);
        self.i64(micros);
    }
    pub fn interval_value(&mut self, months: i32, days: i32, micros: i64) {
        self.u8(tag::INTERVAL);
        self.i32(months);
        self.i32(days);
        self.i64(micros);
    }
    pub fn uuid_value(&mut self, bytes: &[u8; 16]) {
        self.u8(tag::UUID);
        self.buf.extend_from_slice(bytes);
    }
}

/// A value as decoded from the wire, borrowing text and bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawValue<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Decimal {
        mantissa: i128,
        scale: u8,
    },
    Text(&'a str),
    Bytes(&'a [u8]),
    Timestamp(i64),
    TimestampTz(i64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight, 0..=`TIME_MICROS_MAX`.
    Time(i64),
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    Uuid([u8; 16]),
}

impl RawValue<'_> {
    /// The type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            RawValue::Null => "NULL",
            RawValue::Bool(_) => "BOOLEAN",
            RawValue::Int(_) => "INTEGER",
            RawValue::Double(_) => "DOUBLE",
            RawValue::Decimal { .. } => "DECIMAL",
            RawValue::Text(_) => "TEXT",
            RawValue::Bytes(_) => "VARBINARY",
            RawValue::Timestamp(_) => "TIMESTAMP",
            RawValue::TimestampTz(_) => "TIMESTAMPTZ",
            RawValue::Date(_) => "DATE",
            RawValue::Time(_) => "TIME",
            RawValue::Interval { .. } => "INTERVAL",
            RawValue::Uuid(_) => "UUID",
        }
    }

    /// Writes this value back in its encoding.
    pub fn encode(&self, w: &mut Writer) {
        match *self {
            RawValue::Null => w.null(),
            RawValue::Bool(v) => w.bool_value(v),
            RawValue::Int(v) => w.int_value(v),
            RawValue::Double(v) => w.double_value(v),
            RawValue::Decimal { mantissa, scale } => w.decimal_value(mantissa, scale),
            RawValue::Text(v) => w.text_value(v),
            RawValue::Bytes(v) => w.bytes_value(v),
            RawValue::Timestamp(v) => w.timestamp_value(v),
            RawValue::TimestampTz(v) => w.timestamptz_value(v),
            RawValue::Date(v) => w.date_value(v),
            RawValue::Time(v) => w.time_value(v),
            RawValue::Interval {
                months,
                days,
                micros,
            } => w.interval_value(months, days, micros),
            RawValue::Uuid(ref v) => w.uuid_value(v),
        }
    }
}

/// Why bytes did not decode: what was expected and at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// Reads ABI encodings from untrusted bytes: every read is bounds-checked
/// and fails with the offset instead of panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// An error at the current offset.
    pub fn error(&self, message: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            message: message.into(),
        }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.error(format!("{} unexpected trailing bytes", self.remaining())))
        }
    }

    /// The bytes read since offset `start` (an earlier `offset()`).
    pub fn consumed_since(&self, start: usize) -> &'a [u8] {
        &self.bytes[start.min(self.pos)..self.pos]
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.error(format!(
                "truncated {what}: needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// A `u32` count that must not exceed `max` (checked before anything is
    /// allocated for it).
    pub fn count(&mut self, max: usize, what: &str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(DecodeError {
                offset: at,
                message: format!("{what} is {n}, over the limit of {max}"),
            });
        }
        Ok(n)
    }

    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    pub fn str(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let b = self.bytes(what)?;
        std::str::from_utf8(b).map_err(|e| DecodeError {
            offset: at + 4 + e.valid_up_to(),
            message: format!("{what} is not valid UTF-8"),
        })
    }

    /// One tagged value.
    pub fn value(&mut self) -> Result<RawValue<'a>, DecodeError> {
        let at = self.pos;
        Ok(match self.u8("value tag")? {
            tag::NULL => RawValue::Null,
            tag::BOOL => match self.u8("boolean")? {
                0 => RawValue::Bool(false),
                1 => RawValue::Bool(true),
                b => return Err(self.error(format!("boolean byte is {b}, not 0 or 1"))),
            },
            tag::INT => RawValue::Int(self.i64("integer")?),
            tag::DOUBLE => RawValue::Double(f64::from_bits(self.u64("double")?)),
            tag::DECIMAL => {
                let mantissa = i128::from_le_bytes(self.array("decimal mantissa")?);
                let scale = self.u8("decimal scale")?;
                if scale > DECIMAL_SCALE_MAX {
                    return Err(
                        self.error(format!("decimal scale {scale} is over {DECIMAL_SCALE_MAX}"))
                    );
                }
                RawValue::Decimal { mantissa, scale }
            }
            tag::TEXT => RawValue::Text(self.str("text")?),
            tag::BYTES => RawValue::Bytes(self.bytes("bytes")?),
            tag::TIMESTAMP => RawValue::Timestamp(self.i64("timestamp")?),
            tag::TIMESTAMPTZ => RawValue::TimestampTz(self.i64("timestamptz")?),
            tag::DATE => RawValue::Date(self.i32("date")?),
            tag::TIME => {
                let at = self.pos;
                let micros = self.i64("time")?;
                if !(0..=TIME_MICROS_MAX).contains(&micros) {
                    return Err(DecodeError {
                        offset: at,
                        message: format!(
                            "time is {micros} microseconds since midnight, \
                             outside 0..={TIME_MICROS_MAX}"
                        ),
                    });
                }
                RawValue::Time(micros)
            }
            tag::INTERVAL => RawValue::Interval {
                months: self.i32("interval months")?,
                days: self.i32("interval days")?,
                micros: self.i64("interval microseconds")?,
            },
            tag::UUID => RawValue::Uuid(self.array("uuid")?),
            t => {
                return Err(DecodeError {
                    offset: at,
                    message: format!("unknown value tag {t}"),
                })
            }
        })
    }
}

/// A statement as a module declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementDesc {
    pub name: String,
    pub sql: String,
}

/// `PARTITION ON table.column PARAMETER n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDesc {
    pub table: String,
    pub column: String,
    /// 0-based index into the procedure's parameters.
    pub parameter: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDesc {
    pub name: String,
    /// A `ty` code, possibly with `ty::NULLABLE`.
    pub ty: u8,
}

/// A procedure as a module declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureDesc {
    pub name: String,
    pub params: Vec<ParamDesc>,
    /// A `ty` code: a parameter type, `ty::UNIT` or `ty::ROWS`.
    pub returns: u8,
    /// None: multi-partition (runs on the coordinator path).
    pub partition: Option<PartitionDesc>,
}

/// What `ohm_describe` returns: the module's statements and procedures.
///
/// Layout: magic `OHMD`, `u16` ABI version, `u32` statement count, each
/// `str` name + `str` SQL; `u32` procedure count, each `str` name, `u32`
/// parameter count, each `str` name + `u8` type; `u8` result type; `u8`
/// 0 (no partition) or 1 followed by `str` table, `str` column, `u32`
/// parameter index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModuleDesc {
    pub statements: Vec<StatementDesc>,
    pub procedures: Vec<ProcedureDesc>,
}

impl ModuleDesc {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.buf.extend_from_slice(&DESCRIBE_MAGIC);
        w.u16(ABI_VERSION);
        w.len(self.statements.len());
        for s in &self.statements {
            w.str(&s.name);
            w.str(&s.sql);
        }
        w.len(self.procedures.len());
        for p in &self.procedures {
            w.str(&p.name);
            w.len(p.params.len());
            for a in &p.params {
                w.str(&a.name);
                w.u8(a.ty);
            }
            w.u8(p.returns);
            match &p.partition {
                None => w.u8(0),
                Some(part) => {
                    w.u8(1);
                    w.str(&part.table);
                    w.str(&part.column);
                    w.u32(part.parameter);
                }
            }
        }
        w.into_inner()
    }

    /// Decodes and checks the layout and bounds (not names against a schema).
    pub fn decode(bytes: &[u8]) -> Result<ModuleDesc, DecodeError> {
        if bytes.len() > DESCRIBE_BYTES_MAX {
            return Err(DecodeError {
                offset: 0,
                message: format!(
                    "description is {} bytes, over the limit of {DESCRIBE_BYTES_MAX}",
                    bytes.len()
                ),
            });
        }
        let mut r = Reader::new(bytes);
        if r.take(4, "magic")? != DESCRIBE_MAGIC {
            return Err(DecodeError {
                offset: 0,
                message: "description does not start with \"OHMD\"".into(),
            });
        }
        let at = r.offset();
        let version = r.u16("ABI version")?;
        if version != ABI_VERSION {
            return Err(DecodeError {
                offset: at,
                message: format!(
                    "module speaks ABI version {version}; this host speaks version {ABI_VERSION}"
                ),
            });
        }
        let mut d = ModuleDesc::default();
        for _ in 0..r.count(STATEMENTS_MAX, "statement count")? {
            let name = r.str("statement name")?.to_string();
            let sql = r.str("statement SQL")?.to_string();
            d.statements.push(StatementDesc { name, sql });
        }
        for _ in 0..r.count(PROCEDURES_MAX, "procedure count")? {
            d.procedures.push(decode_procedure(&mut r)?);
        }
        r.finish()?;
        Ok(d)
    }
}

fn decode_procedure(r: &mut Reader<'_>) -> Result<ProcedureDesc, DecodeError> {
    let name = r.str("procedure name")?.to_string();
    let mut params = Vec::new();
    for _ in 0..r.count(PARAMS_MAX, "parameter count")? {
        let name = r.str("parameter name")?.to_string();
        let ty = r.u8("parameter type")?;
        params.push(ParamDesc { name, ty });
    }
    let returns = r.u8("result type")?;
    let partition = match r.u8("partition flag")? {
        0 => None,
        1 => Some(PartitionDesc {
            table: r.str("partition table")?.to_string(),
            column: r.str("partition column")?.to_string(),
            parameter: r.u32("partition parameter")?,
        }),
        b => return Err(r.error(format!("partition flag is {b}, not 0 or 1"))),
    };
    Ok(ProcedureDesc {
        name,
        params,
        returns,
        partition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let vals = [
            RawValue::Null,
            RawValue::Bool(true),
            RawValue::Int(-5),
            RawValue::Double(1.5),
            RawValue::Decimal {
                mantissa: -12345,
                scale: 2,
            },
            RawValue::Text("héllo"),
            RawValue::Bytes(&[0, 255]),
            RawValue::Timestamp(1_700_000_000_000_000),
            RawValue::TimestampTz(-1),
            RawValue::Date(-719_528),
            RawValue::Time(TIME_MICROS_MAX),
            RawValue::Interval {
                months: -14,
                days: 3,
                micros: i64::MIN,
            },
            RawValue::Uuid(*b"0123456789abcdef"),
        ];
        let mut w = Writer::new();
        for v in &vals {
            v.encode(&mut w);
        }
        let mut r = Reader::new(&w.buf);
        for v in &vals {
            assert_eq!(r.value().unwrap(), *v);
        }
        r.finish().unwrap();
    }

    #[test]
    fn hostile_bytes_are_errors_with_offsets() {
        // A text claiming 4 GiB.
        let mut r = Reader::new(&[tag::TEXT, 0xff, 0xff, 0xff, 0xff, b'a']);
        let e = r.value().unwrap_err();
        assert!(e.message.contains("truncated text"), "{e}");
        assert_eq!(e.offset, 5);
        let e = Reader::new(&[13]).value().unwrap_err();
        assert_eq!(e.to_string(), "unknown value tag 13 (at byte 0)");
        let e = Reader::new(&[tag::TEXT, 1, 0, 0, 0, 0xff])
            .value()
            .unwrap_err();
        assert_eq!(e.to_string(), "text is not valid UTF-8 (at byte 5)");
        let mut dec = [0u8; 18];
        (dec[0], dec[17]) = (tag::DECIMAL, 29);
        let e = Reader::new(&dec).value().unwrap_err();
        assert_eq!(e.to_string(), "decimal scale 29 is over 28 (at byte 18)");
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        let e = r.count(10, "row count").unwrap_err();
        assert_eq!(
            e.to_string(),
            "row count is 4294967295, over the limit of 10 (at byte 0)"
        );
    }

    #[test]
    fn dates_and_times_have_fixed_layouts() {
        let mut w = Writer::new();
        w.date_value(-2);
        w.interval_value(1, -2, 3);
        w.uuid_value(&[0xab; 16]);
        w.time_value(5);
        let mut want = vec![tag::DATE, 0xfe, 0xff, 0xff, 0xff, tag::INTERVAL];
        want.extend([1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 3, 0, 0, 0, 0, 0, 0, 0]);
        want.push(tag::UUID);
        want.extend([0xab; 16]);
        want.extend([tag::TIME, 5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(w.buf, want);
    }

    #[test]
    fn time_out_of_range_and_truncated_values_are_refused() {
        for micros in [-1, TIME_MICROS_MAX + 1, i64::MIN] {
            let mut w = Writer::new();
            w.time_value(micros);
            let e = Reader::new(&w.buf).value().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "time is {micros} microseconds since midnight, \
                     outside 0..=86400000000 (at byte 1)"
                )
            );
        }
        let mut w = Writer::new();
        w.interval_value(1, 2, 3);
        // Months and days present, microseconds cut short.
        let e = Reader::new(&w.buf[..12]).value().unwrap_err();
        assert_eq!(
            e.to_string(),
            "truncated interval microseconds: needs 8 bytes, 3 left (at byte 9)"
        );
        for cut in 0..w.buf.len() {
            assert!(Reader::new(&w.buf[..cut]).value().is_err(), "cut at {cut}");
        }
        let e = Reader::new(&[tag::UUID, 1, 2]).value().unwrap_err();
        assert_eq!(
            e.to_string(),
            "truncated uuid: needs 16 bytes, 2 left (at byte 1)"
        );
        let e = Reader::new(&[tag::DATE, 1, 2]).value().unwrap_err();
        assert!(e.message.starts_with("truncated date"), "{e}");
    }

    #[test]
    fn description_round_trips_and_rejects_versions() {
        let d = ModuleDesc {
            statements: vec![StatementDesc {
                name: "GET".into(),
                sql: "SELECT v FROM kv WHERE k = ?".into(),
            }],
            procedures: vec![ProcedureDesc {
                name: "get".into(),
                params: vec![
                    ParamDesc {
                        name: "key".into(),
                        ty: ty::TEXT,
                    },
                    ParamDesc {
                        name: "on".into(),
                        ty: ty::DATE | ty::NULLABLE,
                    },
                    ParamDesc {
                        name: "id".into(),
                        ty: ty::UUID,
                    },
                ],
                returns: ty::BYTES | ty::NULLABLE,
                partition: Some(PartitionDesc {
                    table: "kv".into(),
                    column: "k".into(),
                    parameter: 0,
                }),
            }],
        };
        let bytes = d.encode();
        assert_eq!(ModuleDesc::decode(&bytes).unwrap(), d);
        let mut v2 = bytes.clone();
        v2[4] = 2;
        let e = ModuleDesc::decode(&v2).unwrap_err();
        assert!(e.message.contains("ABI version 2"), "{e}");
        for cut in 0..bytes.len() {
            assert!(
                ModuleDesc::decode(&bytes[..cut]).is_err(),
                "prefix {cut} decoded"
            );
        }
    }

    #[test]
    fn names_and_codes() {
        assert!(valid_name("vote") && valid_name("_x1") && !valid_name("1x"));
        assert!(!valid_name("a-b") && !valid_name("") && !valid_name(&"a".repeat(65)));
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u32(c as u32), Some(c));
        }
        assert_eq!(ErrorCode::from_u32(0), None);
        assert_eq!(unpack_batch_return(pack_batch_return(3, 77)), (3, 77));
        assert_eq!(ty::name(ty::TEXT | ty::NULLABLE), "TEXT NULL");
        let new = [
            (ty::TIMESTAMPTZ, "TIMESTAMPTZ"),
            (ty::DATE, "DATE"),
            (ty::TIME, "TIME"),
            (ty::INTERVAL, "INTERVAL"),
            (ty::UUID, "UUID"),
        ];
        for (t, name) in new {
            assert!(ty::is_param(t) && ty::is_param(t | ty::NULLABLE), "{t}");
            assert!(ty::is_result(t), "{t}");
            assert_eq!(ty::name(t), name);
        }
        assert!(!ty::is_param(ty::UNIT) && !ty::is_param(ty::ROWS) && !ty::is_param(17));
        assert!(!ty::is_result(17) && !ty::is_result(ty::ROWS | ty::NULLABLE));
    }
}
