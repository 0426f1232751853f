//! Stored procedures: sandboxed WebAssembly modules (and, for tests and
//! benchmarks, native `ohm_sdk::Module`s) speaking the host ABI v1 of
//! `ohm_sdk::abi`.
//!
//! Owns: the wasmtime engine and its configuration, module validation and
//! deployment, the `ohm` host functions, per-call limits, instance reuse,
//! and the transaction around each call.
//! Must not: spawn, block, or do I/O; a `ProcHost` belongs to one partition
//! thread and is driven by plain method calls.
//!
//! ```text
//!   WasmRuntime (one per node, shared)      ProcHost (one per partition)
//!     compile(name, bytes) ----Arc<CompiledModule>----> deploy(engine, ..)
//!                                                       call(engine, proc, args, txn)
//!                                                         -> CallOutcome | ProcError
//!
//!   engine-free:  host (batches, call state), codec (values), deploy (schema rules), native
//!   wasmtime:     engine, compile (ABI checks), imports (host functions), instance
//! ```
//!
//! Host function semantics beyond `abi.rs`: `take(dst, cap)` copies all
//! pending bytes (the call's arguments, or a batch payload that did not fit
//! the guest's buffer) and returns their length, trapping if `cap` is too
//! small; `batch` writes its payload to `out` only when it fits `out_cap`,
//! and otherwise leaves it pending for `take` (the returned length tells
//! the guest which happened). Every host call costs fuel for the bytes it
//! copies.

pub mod codec;
mod compile;
pub mod deploy;
mod engine;
mod error;
pub mod host;
mod imports;
mod instance;
mod limits;
pub mod native;
mod proc_host;
pub mod testing;
pub mod wat_guest;

#[cfg(test)]
pub(crate) mod tests;

pub use engine::{CompiledModule, WasmRuntime};
pub use error::{DeployError, EngineError, Fault, ProcError};
pub use limits::*;
pub use proc_host::ProcHost;

use crate::sql::RowSet;
use crate::storage::WriteSet;
use crate::types::Value;

/// Where the example modules are looked for when no directory is given:
/// `$OHM_WASM_DIR`, then `<target>/wasm32-unknown-unknown/wasm` beside the
/// running binary (`cargo procs` puts them there).
pub fn default_procedures_dir() -> Option<std::path::PathBuf> {
    if let Some(d) = std::env::var_os("OHM_WASM_DIR") {
        return Some(std::path::PathBuf::from(d));
    }
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/ohm -> target/wasm32-unknown-unknown/wasm
    let target = exe.parent()?.parent()?;
    Some(target.join("wasm32-unknown-unknown").join("wasm"))
}

/// What the host gives a transaction besides data: its timestamp and a
/// seed for deterministic randomness (no clock or entropy otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxnContext {
    /// Microseconds since the Unix epoch (`ohm.now`).
    pub timestamp_us: i64,
    /// `ohm.seed`.
    pub seed: u64,
}

/// What a procedure returned.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcOutput {
    /// One value (NULL for a procedure that returns nothing).
    Value(Value),
    Rows(RowSet),
}

/// A call that committed.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    pub output: ProcOutput,
    /// What the call wrote, for the log.
    pub write_set: WriteSet,
    /// Fuel the call consumed (0 for native procedures).
    pub fuel_used: u64,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployInfo {
    pub module: String,
    /// The module's procedures, in declaration order.
    pub procedures: Vec<String>,
    /// Statements prepared.
    pub statements: usize,
    /// Whether a previous version of the module was replaced.
    pub replaced: bool,
    /// What the deploy warns of (`deploy::partition_warnings`).
    pub warnings: Vec<String>,
}
