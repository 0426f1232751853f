//! SQL data types and values shared by `storage` and `sql`.
//!
//! Owns: `DataType` (a column's declared type), `Value` (one datum), the total
//! order and hashing used by indexes, DISTINCT and GROUP BY, and display.
//! Must not: know about tables, plans or I/O.
//!
//! Integers of every width are held as `i64`; the column's `DataType` bounds
//! what may be stored. Text and bytes are reference-counted so copying a row
//! into a result set does not copy the payload.

pub mod datetime;

pub use datetime::Interval;
use rust_decimal::Decimal;
use smol_str::SmolStr;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A column's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    SmallInt,
    Integer,
    BigInt,
    Double,
    /// DECIMAL(precision, scale); exact.
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// VARCHAR(n) with `Some(n)`; TEXT / unbounded VARCHAR with `None`.
    Varchar(Option<u32>),
    Varbinary(Option<u32>),
    Boolean,
    /// Microseconds since 1970-01-01 00:00:00, no time zone.
    Timestamp,
    /// TIMESTAMP WITH TIME ZONE: microseconds since 1970-01-01 00:00:00
    /// UTC; input with an offset is converted, output is in UTC.
    TimestampTz,
    /// Days since 1970-01-01.
    Date,
    /// Microseconds since midnight (no time zone).
    Time,
    Interval,
    Uuid,
}

impl DataType {
    /// The inclusive range an integer column accepts, if integral.
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            DataType::SmallInt => Some((i16::MIN as i64, i16::MAX as i64)),
            DataType::Integer => Some((i32::MIN as i64, i32::MAX as i64)),
            DataType::BigInt => Some((i64::MIN, i64::MAX)),
            _ => None,
        }
    }

    pub fn is_integer(self) -> bool {
        self.int_range().is_some()
    }

    pub fn is_numeric(self) -> bool {
        self.is_integer() || matches!(self, DataType::Double | DataType::Decimal { .. })
    }

    pub fn is_text(self) -> bool {
        matches!(self, DataType::Varchar(_))
    }

    /// DATE, TIMESTAMP and TIMESTAMP WITH TIME ZONE: points in time that
    /// compare with one another.
    pub fn is_datetime(self) -> bool {
        matches!(
            self,
            DataType::Date | DataType::Timestamp | DataType::TimestampTz
        )
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::SmallInt => write!(f, "SMALLINT"),
            DataType::Integer => write!(f, "INTEGER"),
            DataType::BigInt => write!(f, "BIGINT"),
            DataType::Double => write!(f, "DOUBLE"),
            DataType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            DataType::Varchar(Some(n)) => write!(f, "VARCHAR({n})"),
            DataType::Varchar(None) => write!(f, "TEXT"),
            DataType::Varbinary(Some(n)) => write!(f, "VARBINARY({n})"),
            DataType::Varbinary(None) => write!(f, "VARBINARY"),
            DataType::Boolean => write!(f, "BOOLEAN"),
            DataType::Timestamp => write!(f, "TIMESTAMP"),
            DataType::TimestampTz => write!(f, "TIMESTAMPTZ"),
            DataType::Date => write!(f, "DATE"),
            DataType::Time => write!(f, "TIME"),
            DataType::Interval => write!(f, "INTERVAL"),
            DataType::Uuid => write!(f, "UUID"),
        }
    }
}

/// A tenant: the namespace every table, procedure and principal belongs to.
/// Numbered by the node's catalog; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub u32);

/// One SQL datum.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Decimal(Decimal),
    /// Up to 23 bytes inline (no allocation, no pointer to chase); longer
    /// text is shared behind an `Arc`.
    Text(SmolStr),
    Bytes(Arc<[u8]>),
    /// Microseconds since the Unix epoch.
    Timestamp(i64),
    /// Microseconds since the Unix epoch, UTC.
    TimestampTz(i64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    Interval(Interval),
    Uuid([u8; 16]),
}

/// The type of a value as named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Null,
    Bool,
    Int,
    Double,
    Decimal,
    Text,
    Bytes,
    Timestamp,
    TimestampTz,
    Date,
    Time,
    Interval,
    Uuid,
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueKind::Null => "NULL",
            ValueKind::Bool => "BOOLEAN",
            ValueKind::Int => "BIGINT",
            ValueKind::Double => "DOUBLE",
            ValueKind::Decimal => "DECIMAL",
            ValueKind::Text => "TEXT",
            ValueKind::Bytes => "VARBINARY",
            ValueKind::Timestamp => "TIMESTAMP",
            ValueKind::TimestampTz => "TIMESTAMPTZ",
            ValueKind::Date => "DATE",
            ValueKind::Time => "TIME",
            ValueKind::Interval => "INTERVAL",
            ValueKind::Uuid => "UUID",
        })
    }
}

impl ValueKind {
    /// Kinds whose values text converts to in a comparison (`d = '2020-01-01'`).
    pub fn parses_from_text(self) -> bool {
        matches!(
            self,
            ValueKind::Timestamp
                | ValueKind::TimestampTz
                | ValueKind::Date
                | ValueKind::Time
                | ValueKind::Interval
                | ValueKind::Uuid
        )
    }
}

impl Value {
    pub fn text(s: &str) -> Value {
        Value::Text(SmolStr::new(s))
    }

    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Bool(_) => ValueKind::Bool,
            Value::Int(_) => ValueKind::Int,
            Value::Double(_) => ValueKind::Double,
            Value::Decimal(_) => ValueKind::Decimal,
            Value::Text(_) => ValueKind::Text,
            Value::Bytes(_) => ValueKind::Bytes,
            Value::Timestamp(_) => ValueKind::Timestamp,
            Value::TimestampTz(_) => ValueKind::TimestampTz,
            Value::Date(_) => ValueKind::Date,
            Value::Time(_) => ValueKind::Time,
            Value::Interval(_) => ValueKind::Interval,
            Value::Uuid(_) => ValueKind::Uuid,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Rank of the value's family in the total order: NULL sorts first (as
    /// the smallest value), then booleans, numbers, text, bytes, dates and
    /// timestamps (with and without zone: all count from the epoch in UTC,
    /// the session's zone), times, intervals, UUIDs.
    fn family(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Double(_) | Value::Decimal(_) => 2,
            Value::Text(_) => 3,
            Value::Bytes(_) => 4,
            // A date is its midnight (UTC, the session's zone): equal to
            // that timestamp in SQL, so in hashing and indexes too.
            Value::Timestamp(_) | Value::TimestampTz(_) | Value::Date(_) => 5,
            Value::Time(_) => 7,
            Value::Interval(_) => 8,
            Value::Uuid(_) => 9,
        }
    }

    /// Total order over all values, used for sorting, indexes, DISTINCT and
    /// GROUP BY. Numbers of different representations compare by value; NaN
    /// sorts above every other number. SQL comparison (with NULL semantics)
    /// is `sql::ops`'s business, not this.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Double(a), Value::Double(b)) => a.total_cmp(b),
            (Value::Decimal(a), Value::Decimal(b)) => a.cmp(b),
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (
                Value::Timestamp(a) | Value::TimestampTz(a),
                Value::Timestamp(b) | Value::TimestampTz(b),
            ) => a.cmp(b),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            (Value::Date(_), Value::Timestamp(_) | Value::TimestampTz(_))
            | (Value::Timestamp(_) | Value::TimestampTz(_), Value::Date(_)) => {
                point_micros(self).cmp(&point_micros(other))
            }
            (Value::Time(a), Value::Time(b)) => a.cmp(b),
            (Value::Interval(a), Value::Interval(b)) => a.span().cmp(&b.span()),
            (Value::Uuid(a), Value::Uuid(b)) => a.cmp(b),
            (Value::Null, Value::Null) => Ordering::Equal,
            (a, b) if a.family() == 2 && b.family() == 2 => numeric_cmp(a, b),
            (a, b) => a.family().cmp(&b.family()),
        }
    }
}

/// A date or timestamp as microseconds since the epoch, wide enough for
/// every date (a date is its midnight).
fn point_micros(v: &Value) -> i128 {
    match v {
        Value::Date(d) => i128::from(*d) * i128::from(datetime::USECS_PER_DAY),
        Value::Timestamp(t) | Value::TimestampTz(t) => i128::from(*t),
        _ => 0,
    }
}

/// Compares two numbers of possibly different representations by value.
fn numeric_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Double(y)) => int_double_cmp(*x, *y),
        (Value::Double(x), Value::Int(y)) => int_double_cmp(*y, *x).reverse(),
        (Value::Int(x), Value::Decimal(y)) => Decimal::from(*x).cmp(y),
        (Value::Decimal(x), Value::Int(y)) => x.cmp(&Decimal::from(*y)),
        (Value::Decimal(x), Value::Double(y)) => decimal_double_cmp(x, *y),
        (Value::Double(x), Value::Decimal(y)) => decimal_double_cmp(y, *x).reverse(),
        _ => a.total_cmp(b),
    }
}

fn int_double_cmp(i: i64, d: f64) -> Ordering {
    if d.is_nan() {
        return Ordering::Less;
    }
    // Exact: compare as f64 first, and break ties on the integer part so
    // that 2^53+1 and 2^53 as a double are not called equal.
    let approx = (i as f64).total_cmp(&d);
    if approx != Ordering::Equal {
        return approx;
    }
    if d >= 9.223_372_036_854_776e18 {
        return Ordering::Less;
    }
    if d < -9.223_372_036_854_776e18 {
        return Ordering::Greater;
    }
    i.cmp(&(d as i64))
}

fn decimal_double_cmp(x: &Decimal, d: f64) -> Ordering {
    use rust_decimal::prelude::ToPrimitive;
    if d.is_nan() {
        return Ordering::Less;
    }
    match Decimal::try_from(d) {
        Ok(dd) => x.cmp(&dd),
        Err(_) => x.to_f64().unwrap_or(0.0).total_cmp(&d),
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.total_cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Value) -> Ordering {
        self.total_cmp(other)
    }
}

impl Hash for Value {
    /// Consistent with `total_cmp` equality: numbers that are equal in value
    /// hash alike whatever their representation.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.family().hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Double(d) => {
                if d.fract() == 0.0 && *d >= -9.2e18 && *d <= 9.2e18 {
                    (*d as i64).hash(state)
                } else {
                    d.to_bits().hash(state)
                }
            }
            Value::Decimal(d) => {
                use rust_decimal::prelude::ToPrimitive;
                if d.fract().is_zero() {
                    match d.to_i64() {
                        Some(i) => i.hash(state),
                        None => d.normalize().hash(state),
                    }
                } else {
                    // A non-integral decimal equals a double only if the
                    // double converts to the same decimal; hash the double.
                    d.to_f64().unwrap_or(0.0).to_bits().hash(state)
                }
            }
            Value::Text(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Timestamp(_) | Value::TimestampTz(_) | Value::Date(_) => {
                point_micros(self).hash(state)
            }
            Value::Time(t) => t.hash(state),
            Value::Interval(i) => i.span().hash(state),
            Value::Uuid(u) => u.hash(state),
        }
    }
}

impl fmt::Display for Value {
    /// The plain rendering used by result tables and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{d}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Text(s) => f.write_str(s),
            Value::Bytes(b) => {
                f.write_str("\\x")?;
                for byte in b.iter() {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Value::Timestamp(t) => f.write_str(&datetime::format_timestamp_as(*t, false)),
            Value::TimestampTz(t) => f.write_str(&datetime::format_timestamp_as(*t, true)),
            Value::Date(d) => f.write_str(&datetime::format_date(i64::from(*d))),
            Value::Time(t) => f.write_str(&datetime::format_time(*t)),
            Value::Interval(i) => write!(f, "{i}"),
            Value::Uuid(u) => f.write_str(&datetime::format_uuid(u)),
        }
    }
}

/// Formats microseconds since the epoch as `YYYY-MM-DD HH:MM:SS[.ffffff]`
/// (trailing zeros of the fraction trimmed, as PostgreSQL prints).
pub fn format_timestamp(micros: i64) -> String {
    datetime::format_timestamp_as(micros, false)
}

/// Parses a TIMESTAMP: `YYYY-MM-DD[ HH:MM[:SS[.f]]]` (a `T` separator is
/// accepted; a zone is ignored, as PostgreSQL's `timestamp` ignores it).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    datetime::parse_timestamp_text(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn h(v: &Value) -> u64 {
        let mut s = DefaultHasher::new();
        v.hash(&mut s);
        s.finish()
    }

    #[test]
    fn numbers_compare_and_hash_by_value() {
        assert_eq!(Value::Int(3), Value::Double(3.0));
        assert_eq!(h(&Value::Int(3)), h(&Value::Double(3.0)));
        assert_eq!(Value::Int(3), Value::Decimal(Decimal::new(300, 2)));
        assert_eq!(h(&Value::Int(3)), h(&Value::Decimal(Decimal::new(300, 2))));
        assert!(Value::Int(3) < Value::Double(3.5));
        assert!(Value::Double(f64::NAN) > Value::Int(i64::MAX));
        assert!(Value::Null < Value::Int(i64::MIN));
        // 2^53 + 1 is not equal to its nearest double.
        assert!(Value::Int((1 << 53) + 1) > Value::Double((1u64 << 53) as f64));
    }

    #[test]
    fn a_value_stays_three_words() {
        assert!(std::mem::size_of::<Value>() <= 24);
    }

    #[test]
    fn zoned_and_plain_timestamps_order_and_hash_alike() {
        assert_eq!(Value::Timestamp(5), Value::TimestampTz(5));
        assert_eq!(h(&Value::Timestamp(5)), h(&Value::TimestampTz(5)));
        let midnight = Value::Timestamp(86_400_000_000);
        assert_eq!(Value::Date(1), midnight);
        assert_eq!(h(&Value::Date(1)), h(&midnight));
        assert!(Value::Date(i32::MAX) > Value::Timestamp(i64::MAX));
        let month = Value::Interval(Interval::new(1, 0, 0));
        let days = Value::Interval(Interval::new(0, 30, 0));
        assert_eq!(month, days);
        assert_eq!(h(&month), h(&days));
        assert!(Value::Interval(Interval::new(0, 0, -1)) < Value::Interval(Interval::ZERO));
    }

    #[test]
    fn timestamps_round_trip() {
        for s in [
            "1970-01-01 00:00:00",
            "2024-02-29 23:59:59.123456",
            "1969-12-31 12:00:00",
        ] {
            let t = parse_timestamp(s).unwrap();
            assert_eq!(format_timestamp(t), s);
        }
        assert_eq!(
            format_timestamp(parse_timestamp("2024-01-01 00:00:00.5").unwrap()),
            "2024-01-01 00:00:00.5"
        );
        assert_eq!(parse_timestamp("2023-02-29"), None);
        assert_eq!(parse_timestamp("2023-13-01"), None);
    }
}

/// A position in a partition's replicated log: the slot of one record,
/// numbered 1, 2, 3, ... with no gaps. `Slot(0)` means "before the first".
/// On disk it is the record's sequence number (`lsn` in segment names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Slot(pub u64);

impl Slot {
    /// The slot after this one. Saturates: no log gets near 2^64 slots,
    /// but a slot from a peer's message may be anything.
    pub fn next(self) -> Slot {
        Slot(self.0.saturating_add(1))
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A node of a cluster, and so a replica of the groups it hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A Paxos ballot: one leader's term of office in a replica group. Ordered
/// by round, then by node, so no two nodes ever lead the same ballot.
/// `Ballot::default()` (round 0) is below every ballot a leader uses; a log
/// written before replication existed carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node.0)
    }
}
