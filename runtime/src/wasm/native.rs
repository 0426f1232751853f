//! Native procedures: an `ohm_sdk::Module` compiled into the host binary
//! (unit tests, `ohm bench proc`), run through the very same host logic as
//! Wasm — `Backend` is implemented over `host::CallState`.
//!
//! Owns: `NativeBackend` and `run_native` (a call with panics caught).
//! Must not: bound CPU or memory — native code has no fuel and no sandbox,
//! so it is for trusted code only; the per-call statement, row and byte
//! limits still apply.

use super::error::Fault;
use super::host::{BatchFailure, CallState};
use crate::sql::{Engine, Prepared};
use ohm_sdk::abi::ErrorCode;
use ohm_sdk::{Backend, BatchError, CallOutput, Module};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The host as a native procedure sees it.
pub struct NativeBackend<'a> {
    pub engine: &'a mut Engine,
    pub statements: &'a [Prepared],
    pub state: &'a mut CallState,
}

impl Backend for NativeBackend<'_> {
    fn batch(&mut self, request: &[u8], response: &mut Vec<u8>) -> Result<(), BatchError> {
        match self
            .state
            .batch(self.engine, self.statements, request, response)
        {
            Ok(()) => Ok(()),
            Err(BatchFailure::Statement(e)) => Err(e),
            // The fault is recorded in the state and wins over whatever the
            // procedure makes of this error; the error only has to stop it.
            Err(BatchFailure::Fatal(f)) => Err(BatchError {
                code: ErrorCode::Exec,
                statement: 0,
                message: format!("the call cannot continue: {f}"),
            }),
        }
    }

    fn now(&self) -> i64 {
        self.state.txn().timestamp_us
    }

    fn seed(&self) -> u64 {
        self.state.txn().seed
    }
}

/// Runs procedure number `procedure` of `module` with encoded `args`. A
/// panic becomes `Fault::Panicked`; a fault recorded by a host call (a
/// limit, a malformed batch) wins over what the procedure returned.
pub fn run_native(
    module: &Module,
    procedure: u32,
    args: &[u8],
    engine: &mut Engine,
    statements: &[Prepared],
    state: &mut CallState,
) -> Result<CallOutput, Fault> {
    let out = {
        let mut backend = NativeBackend {
            engine,
            statements,
            state,
        };
        // The engine is only reached through `batch`, which leaves it
        // consistent at every return; the caller rolls the transaction back.
        catch_unwind(AssertUnwindSafe(|| {
            module.call(&mut backend, procedure, args)
        }))
    };
    if let Some(f) = state.take_fault() {
        return Err(f);
    }
    let out = out.map_err(|payload| Fault::Panicked(panic_message(payload.as_ref())))?;
    let limit = state.limits().result_bytes_max;
    if out.payload.len() > limit {
        return Err(Fault::Limit {
            what: "result bytes",
            limit: limit as u64,
        });
    }
    Ok(out)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
