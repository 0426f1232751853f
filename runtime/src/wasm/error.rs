//! The errors of the procedure boundary: `ProcError` (a call failed),
//! `DeployError` (a module was refused), and `Fault` (what ended a call,
//! before it is attributed to a procedure).
//!
//! Every message names the procedure or module and says what to change.

use ohm_sdk::abi::ErrorCode;
use thiserror::Error;

/// Why a procedure call failed. The transaction was rolled back: nothing the
/// call wrote is visible.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProcError {
    #[error("no procedure named {procedure} is deployed")]
    UnknownProcedure { procedure: String },
    #[error("procedure {procedure}: bad arguments: {message}")]
    BadArguments { procedure: String, message: String },
    #[error("procedure {procedure} aborted: {reason}")]
    Aborted { procedure: String, reason: String },
    #[error("procedure {procedure}: statement failed ({code}): {message}")]
    Sql {
        procedure: String,
        code: ErrorCode,
        message: String,
    },
    #[error("procedure {procedure} ran out of fuel (limit {fuel} per call)")]
    OutOfFuel { procedure: String, fuel: u64 },
    #[error("procedure {procedure} went over its memory limit of {bytes} bytes")]
    MemoryLimit { procedure: String, bytes: usize },
    #[error("procedure {procedure} overflowed its stack (too deep a recursion)")]
    StackOverflow { procedure: String },
    #[error("procedure {procedure} panicked: {message}")]
    Panicked { procedure: String, message: String },
    #[error("procedure {procedure} trapped: {message}")]
    Trap { procedure: String, message: String },
    #[error("procedure {procedure} broke the host ABI: {message}")]
    Abi { procedure: String, message: String },
    #[error("procedure {procedure} went over the limit of {limit} {what} per call")]
    Limit {
        procedure: String,
        what: &'static str,
        limit: u64,
    },
    #[error("procedure {procedure} cannot start: a transaction is already open on this engine")]
    TxnOpen { procedure: String },
    #[error("procedure {procedure} {why}")]
    Stopped {
        procedure: String,
        why: crate::sql::interrupt::Stopped,
    },
}

impl ProcError {
    /// The procedure the error is about.
    pub fn procedure(&self) -> &str {
        match self {
            ProcError::UnknownProcedure { procedure }
            | ProcError::BadArguments { procedure, .. }
            | ProcError::Aborted { procedure, .. }
            | ProcError::Sql { procedure, .. }
            | ProcError::OutOfFuel { procedure, .. }
            | ProcError::MemoryLimit { procedure, .. }
            | ProcError::StackOverflow { procedure }
            | ProcError::Panicked { procedure, .. }
            | ProcError::Trap { procedure, .. }
            | ProcError::Abi { procedure, .. }
            | ProcError::Limit { procedure, .. }
            | ProcError::TxnOpen { procedure }
            | ProcError::Stopped { procedure, .. } => procedure,
        }
    }
}

/// What ended a call, found by code that does not know the procedure's
/// name (host functions, the limiter, result decoding). `into_error`
/// attributes it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Fault {
    #[error("bad arguments: {0}")]
    BadArguments(String),
    #[error("out of fuel (limit {0})")]
    OutOfFuel(u64),
    #[error("memory limit of {0} bytes")]
    MemoryLimit(usize),
    #[error("stack overflow")]
    StackOverflow,
    #[error("panicked: {0}")]
    Panicked(String),
    #[error("trap: {0}")]
    Trap(String),
    #[error("ABI violation: {0}")]
    Abi(String),
    #[error("over the limit of {limit} {what}")]
    Limit { what: &'static str, limit: u64 },
    #[error("{0}")]
    Stopped(crate::sql::interrupt::Stopped),
}

impl Fault {
    /// The same fault as a `ProcError` naming `procedure`.
    pub fn into_error(self, procedure: &str) -> ProcError {
        let procedure = procedure.to_string();
        match self {
            Fault::BadArguments(message) => ProcError::BadArguments { procedure, message },
            Fault::OutOfFuel(fuel) => ProcError::OutOfFuel { procedure, fuel },
            Fault::MemoryLimit(bytes) => ProcError::MemoryLimit { procedure, bytes },
            Fault::StackOverflow => ProcError::StackOverflow { procedure },
            Fault::Panicked(message) => ProcError::Panicked { procedure, message },
            Fault::Trap(message) => ProcError::Trap { procedure, message },
            Fault::Abi(message) => ProcError::Abi { procedure, message },
            Fault::Limit { what, limit } => ProcError::Limit {
                procedure,
                what,
                limit,
            },
            Fault::Stopped(why) => ProcError::Stopped { procedure, why },
        }
    }
}

/// Why a module was not deployed. Nothing changed: the previous version (if
/// any) stays deployed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DeployError {
    #[error("module name {module:?} is not valid: use letters, digits and _ (at most 64 bytes, not starting with a digit)")]
    Name { module: String },
    #[error("module {module}: {bytes} bytes is over the limit of {max} bytes")]
    TooLarge {
        module: String,
        bytes: usize,
        max: usize,
    },
    #[error("module {module}: not a valid WebAssembly module: {message}")]
    Invalid { module: String, message: String },
    #[error("module {module}: import {import}: {message}")]
    Import {
        module: String,
        import: String,
        message: String,
    },
    #[error("module {module}: export {export}: {message}")]
    Export {
        module: String,
        export: String,
        message: String,
    },
    #[error("module {module}: instantiation failed: {message}")]
    Instantiate { module: String, message: String },
    #[error("module {module}: description: {message}")]
    Description { module: String, message: String },
    #[error("module {module}: statement {statement}: {message}")]
    Statement {
        module: String,
        statement: String,
        message: String,
    },
    #[error("module {module}: procedure {procedure}: {message}")]
    Procedure {
        module: String,
        procedure: String,
        message: String,
    },
}

/// The shared Wasm engine could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("wasm engine: {0}")]
pub struct EngineError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_name_the_procedure() {
        let e = Fault::Limit {
            what: "statements",
            limit: 5,
        }
        .into_error("vote");
        assert_eq!(
            e.to_string(),
            "procedure vote went over the limit of 5 statements per call"
        );
        assert_eq!(e.procedure(), "vote");
    }
}
