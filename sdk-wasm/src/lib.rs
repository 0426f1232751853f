//! ohm-sdk: write Ohm stored procedures in Rust.
//!
//! CONTRACT SKELETON (being filled in): the items below are the interface the
//! runtime relies on; keep their signatures.

pub mod abi;

use abi::ErrorCode;

/// A statement failed inside a batch; the batch changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    pub code: ErrorCode,
    /// Position of the failing statement within the batch (0-based).
    pub statement: u32,
    pub message: String,
}

/// The host as a procedure sees it. In Wasm it is the `ohm` import module;
/// natively (unit tests, `ohm bench proc`) the runtime implements it over
/// the same host logic.
pub trait Backend {
    /// Runs one encoded batch request (`abi` layout); on success `response`
    /// holds the encoded batch response (cleared first).
    fn batch(&mut self, request: &[u8], response: &mut Vec<u8>) -> Result<(), BatchError>;
    /// The transaction's timestamp, microseconds since the epoch.
    fn now(&self) -> i64;
    /// The transaction's random seed.
    fn seed(&self) -> u64;
}

/// A statement a module declares: `index` is its position in the module's
/// statement list (what a batch request names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    pub index: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// What one call produced: an `abi::status` code and its payload, exactly
/// as `ohm_call` returns them and `ohm.result` carries them in Wasm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutput {
    pub status: i32,
    pub payload: Vec<u8>,
}
