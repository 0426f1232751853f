//! The SQL boundary's error type: every failure of parse, plan or execution,
//! with a message that names what was wrong and where.

use crate::storage::StorageError;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The text is not SQL we can parse; the message carries line/column.
    #[error("syntax error: {0}")]
    Parse(String),
    /// Valid syntax we do not support (yet); names the construct.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Unknown names, wrong types, wrong arity: found while planning.
    #[error("{0}")]
    Plan(String),
    /// Found while running: overflow, division by zero, bad cast, too many rows.
    #[error("{0}")]
    Exec(String),
    /// A value too long for its type (VARCHAR(n), VARBINARY(n)), found while
    /// converting it; a separate variant so callers can tell it apart.
    #[error("{0}")]
    TooLong(String),
    /// A number outside its type's range, found while converting it.
    #[error("{0}")]
    OutOfRange(String),
    /// A constraint or catalog rule enforced by storage.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Ran past its time limit, or its client left (`interrupt`).
    #[error(transparent)]
    Stopped(#[from] super::interrupt::Stopped),
}

impl SqlError {
    pub fn plan(msg: impl Into<String>) -> SqlError {
        SqlError::Plan(msg.into())
    }
    pub fn exec(msg: impl Into<String>) -> SqlError {
        SqlError::Exec(msg.into())
    }
    pub fn unsupported(msg: impl Into<String>) -> SqlError {
        SqlError::Unsupported(msg.into())
    }

    /// The error of row `row` (1-based) of a `VALUES` list of `rows`: the
    /// same kind, with the row named first. Storage's constraint errors name
    /// the key that clashed and keep their kind (procedures see its code).
    pub fn in_row(self, row: usize, rows: usize) -> SqlError {
        let at = |m: String| format!("row {row} of {rows} in VALUES: {m}");
        match self {
            SqlError::TooLong(m) => SqlError::TooLong(at(m)),
            SqlError::OutOfRange(m) => SqlError::OutOfRange(at(m)),
            SqlError::Plan(m) => SqlError::Plan(at(m)),
            SqlError::Exec(m) => SqlError::Exec(at(m)),
            other => other,
        }
    }

    /// The error of storing a value into `column` of `table`: the same kind,
    /// with the place named first.
    pub fn in_column(self, column: &str, table: &str) -> SqlError {
        let at = |m: String| format!("column \"{column}\" of table \"{table}\": {m}");
        match self {
            SqlError::TooLong(m) => SqlError::TooLong(at(m)),
            SqlError::OutOfRange(m) => SqlError::OutOfRange(at(m)),
            SqlError::Storage(s) => SqlError::Storage(s),
            other => SqlError::Exec(at(other.to_string())),
        }
    }
}
