//! The one error type a procedure sees, and how each kind reaches the caller.
//!
//! Owns: `Error`, the `Result` alias and `abort`. Must not: know how an error
//! is encoded on the wire (that is `invoke`'s job, at the end of a call).
//!
//! ```text
//!   Error::Aborted(reason)        -> CALL_ABORT      reason
//!   Error::Sql { code, message }  -> CALL_SQL_ERROR  u32 code, message
//!   Error::Type(m) / Batch(m)     -> CALL_ABORT      m
//! ```

use std::fmt;

use crate::abi::ErrorCode;
use crate::BatchError;

/// Why a procedure (or one of its steps) failed. Every variant ends the
/// call with the transaction rolled back if it is returned from the
/// procedure; a procedure may also catch one and carry on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The procedure gave up on purpose (`abort("reason")`); the caller sees
    /// the reason.
    Aborted(String),
    /// A statement of a batch failed. The whole batch changed nothing, so a
    /// procedure may catch this (say `ErrorCode::Unique`) and carry on.
    Sql {
        /// Why the statement failed.
        code: ErrorCode,
        /// Position of the failing statement within the executed batch
        /// (the same position its `Rows` would have had).
        statement: u32,
        /// The host's message.
        message: String,
    },
    /// A value did not convert to the Rust type asked for (a column read
    /// with the wrong type, a NULL into a non-`Option`, an out-of-range
    /// integer, a result that does not encode).
    Type(String),
    /// A batch could not be sent or its answer not read (too many statements
    /// queued, too many parameters, a malformed response).
    Batch(String),
}

/// The result type of procedures and of every fallible SDK call.
pub type Result<T> = core::result::Result<T, Error>;

/// An `Error::Aborted` with `reason`: `return Err(abort("no such account"))`
/// rolls the transaction back and hands the reason to the caller.
pub fn abort(reason: impl Into<String>) -> Error {
    Error::Aborted(reason.into())
}

impl Error {
    /// The SQL error code, when this is a failed statement.
    pub fn sql_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Sql { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<BatchError> for Error {
    fn from(e: BatchError) -> Error {
        Error::Sql {
            code: e.code,
            statement: e.statement,
            message: e.message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Aborted(reason) => f.write_str(reason),
            Error::Sql {
                code,
                statement,
                message,
            } => write!(
                f,
                "statement {statement} of the batch failed ({code}): {message}"
            ),
            Error::Type(m) | Error::Batch(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_code() {
        assert_eq!(abort("no funds").to_string(), "no funds");
        let e = Error::from(BatchError {
            code: ErrorCode::Unique,
            statement: 1,
            message: "duplicate key 7".into(),
        });
        assert_eq!(e.sql_code(), Some(ErrorCode::Unique));
        assert_eq!(
            e.to_string(),
            "statement 1 of the batch failed (unique): duplicate key 7"
        );
        assert_eq!(Error::Type("x".into()).sql_code(), None);
    }
}
