//! The checks a value passes before a table stores it: its column's type,
//! range and length, and NOT NULL; and the errors that name a failure.
//!
//! Owns: `check_value`, `Check` (which failure, ranked so the earliest kind
//! is reported first), `value_error`, `fill_error`. Must not: look at other
//! rows (unique keys are the indexes' part).

use super::{ColumnDef, StorageError};
use crate::types::{DataType, Value};

/// A failed value check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    Type,
    Range,
    Length(usize, u32),
    NotNull,
}

impl Check {
    /// Which kind of failure is reported first (lowest).
    pub(super) fn rank(self) -> u8 {
        match self {
            Check::Type => 0,
            Check::Range => 1,
            Check::Length(..) => 2,
            Check::NotNull => 3,
        }
    }
}

/// The error for a value of column `c` that failed `fail`.
pub(super) fn value_error(table: &str, c: &ColumnDef, fail: Check, v: &Value) -> StorageError {
    let table = table.to_string();
    let column = c.name.clone();
    match fail {
        Check::Type => StorageError::TypeMismatch {
            table,
            column,
            ty: c.ty,
            found: v.kind().to_string(),
        },
        Check::Range => StorageError::OutOfRange {
            table,
            column,
            ty: c.ty,
            value: v.to_string(),
        },
        Check::Length(len, max) => StorageError::TooLong {
            table,
            column,
            ty: c.ty,
            len,
            max,
        },
        Check::NotNull => StorageError::NotNull { table, column },
    }
}

/// Why `fill` cannot go in every row of a new column `c` of table `table`.
pub(crate) fn fill_error(table: &str, c: &ColumnDef, fill: &Value) -> Option<StorageError> {
    let fail = check_value(fill, c.ty, c.nullable)?;
    Some(match fail {
        // PostgreSQL's words for ADD COLUMN ... NOT NULL without a default.
        Check::NotNull => StorageError::InvalidSchema(format!(
            "column \"{}\" of relation \"{table}\" contains null values: give it a DEFAULT",
            c.name
        )),
        other => value_error(table, c, other, fill),
    })
}

/// Checks one value against its column; `None` if it is acceptable.
#[inline]
pub(super) fn check_value(v: &Value, ty: DataType, nullable: bool) -> Option<Check> {
    let fits = match (v, ty) {
        (Value::Null, _) => return (!nullable).then_some(Check::NotNull),
        (Value::Int(i), DataType::SmallInt | DataType::Integer | DataType::BigInt) => {
            let (lo, hi) = ty.int_range()?;
            return (*i < lo || *i > hi).then_some(Check::Range);
        }
        (Value::Text(s), DataType::Varchar(max)) => {
            let max = max?;
            // Byte length bounds char count from above: count only if needed.
            if s.len() <= max as usize {
                return None;
            }
            let len = s.chars().count();
            return (len > max as usize).then_some(Check::Length(len, max));
        }
        (Value::Bytes(b), DataType::Varbinary(max)) => {
            let max = max?;
            return (b.len() > max as usize).then_some(Check::Length(b.len(), max));
        }
        (Value::Double(_), DataType::Double)
        | (Value::Decimal(_), DataType::Decimal { .. })
        | (Value::Bool(_), DataType::Boolean)
        | (Value::Timestamp(_), DataType::Timestamp)
        | (Value::TimestampTz(_), DataType::TimestampTz)
        | (Value::Date(_), DataType::Date)
        | (Value::Interval(_), DataType::Interval)
        | (Value::Uuid(_), DataType::Uuid) => true,
        (Value::Time(t), DataType::Time) => (0..=crate::types::datetime::USECS_PER_DAY).contains(t),
        _ => false,
    };
    (!fits).then_some(Check::Type)
}
