//! Per-call limits of a procedure and the engine-wide bounds of the sandbox.
//!
//! Owns: `Limits` (what one call may consume) and the named defaults.
//! Must not: enforce anything itself; `host` counts against these, the
//! wasmtime glue turns fuel, memory and stack into traps.

/// Default fuel per call: roughly ten million Wasm instructions.
pub const FUEL_PER_CALL_DEFAULT: u64 = 10_000_000;
/// Default bytes of linear memory one instance may grow to.
pub const MEMORY_BYTES_DEFAULT: usize = 64 << 20;
/// Default rows the host may hand the guest in one call, over all batches.
pub const ROWS_RETURNED_DEFAULT: u64 = 100_000;
/// Default bytes of batch responses the host may hand the guest in one call.
pub const BYTES_RETURNED_DEFAULT: usize = 16 << 20;
/// Default statements one call may execute, over all batches.
pub const STATEMENTS_PER_CALL_DEFAULT: u64 = 10_000;
/// Default size of the procedure's own result (`ohm.result`).
pub const RESULT_BYTES_DEFAULT: usize = 16 << 20;
/// Default size of one batch request.
pub const REQUEST_BYTES_DEFAULT: usize = 4 << 20;
/// Default size of the encoded arguments of one call.
pub const ARGS_BYTES_DEFAULT: usize = 4 << 20;

/// Native stack one Wasm call may use (engine-wide, `max_wasm_stack`).
pub const WASM_STACK_BYTES_DEFAULT: usize = 512 << 10;
/// Largest module accepted at deploy.
pub const MODULE_BYTES_MAX_DEFAULT: usize = 32 << 20;
/// Fuel for instantiating a module and running `ohm_describe` at deploy.
pub const DESCRIBE_FUEL_DEFAULT: u64 = 10_000_000;

/// The part of a guest panic message that is kept.
pub const PANIC_MESSAGE_BYTES_MAX: usize = 4 << 10;
/// Elements a guest table may grow to.
pub const TABLE_ELEMENTS_MAX: usize = 100_000;
/// Every ABI length is a `u32`, so no per-call byte limit may exceed it.
const ABI_BYTES_MAX: usize = u32::MAX as usize;

/// What one procedure call may consume. Every bound is per call except
/// `memory_bytes_max`, which bounds the instance (its memory outlives calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel (deterministic instruction budget); host calls that copy
    /// bytes also charge fuel, so a guest cannot loop over cheap host calls.
    pub fuel_max: u64,
    /// Linear memory of the instance.
    pub memory_bytes_max: usize,
    /// Rows in batch responses, over the call; also bounds a row-set result.
    pub rows_returned_max: u64,
    /// Bytes of batch responses.
    pub bytes_returned_max: usize,
    /// Statements executed.
    pub statements_max: u64,
    /// Bytes of the procedure result.
    pub result_bytes_max: usize,
    /// Bytes of one batch request.
    pub request_bytes_max: usize,
    /// Bytes of the encoded arguments.
    pub args_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_max: FUEL_PER_CALL_DEFAULT,
            memory_bytes_max: MEMORY_BYTES_DEFAULT,
            rows_returned_max: ROWS_RETURNED_DEFAULT,
            bytes_returned_max: BYTES_RETURNED_DEFAULT,
            statements_max: STATEMENTS_PER_CALL_DEFAULT,
            result_bytes_max: RESULT_BYTES_DEFAULT,
            request_bytes_max: REQUEST_BYTES_DEFAULT,
            args_bytes_max: ARGS_BYTES_DEFAULT,
        }
    }
}

impl Limits {
    /// The limits with every byte bound clamped to what the ABI can carry.
    pub fn clamped(self) -> Limits {
        Limits {
            bytes_returned_max: self.bytes_returned_max.min(ABI_BYTES_MAX),
            result_bytes_max: self.result_bytes_max.min(ABI_BYTES_MAX),
            request_bytes_max: self.request_bytes_max.min(ABI_BYTES_MAX),
            args_bytes_max: self.args_bytes_max.min(ABI_BYTES_MAX),
            ..self
        }
    }
}

/// Engine-wide settings, fixed when the `WasmRuntime` is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `max_wasm_stack`: deeper recursion traps as a stack overflow.
    pub wasm_stack_bytes: usize,
    /// Largest module `compile` accepts.
    pub module_bytes_max: usize,
    /// Fuel for instantiation plus `ohm_describe` at deploy.
    pub describe_fuel: u64,
    /// Memory an instance may have at deploy (its initial memory must fit).
    pub memory_bytes_max: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            wasm_stack_bytes: WASM_STACK_BYTES_DEFAULT,
            module_bytes_max: MODULE_BYTES_MAX_DEFAULT,
            describe_fuel: DESCRIBE_FUEL_DEFAULT,
            memory_bytes_max: MEMORY_BYTES_DEFAULT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamped_keeps_byte_limits_within_u32() {
        let l = Limits {
            bytes_returned_max: usize::MAX,
            ..Limits::default()
        }
        .clamped();
        assert_eq!(l.bytes_returned_max, u32::MAX as usize);
        assert_eq!(l.result_bytes_max, RESULT_BYTES_DEFAULT);
    }
}
