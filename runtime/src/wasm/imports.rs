//! The `ohm` import module: the host functions a Wasm procedure calls, as
//! thin glue between guest memory and `host::CallState`.
//!
//! Owns: `HostState` (a store's data: the engine lent for the call, the
//! module's prepared statements, the call state, the memory handle and the
//! resource limiter), bounds checks on every guest `(ptr, len)`, fuel
//! charged for bytes the host copies, and `add_to_linker`.
//! Must not: decide anything `host` can decide without wasmtime.
//!
//! A host function that hits a fault records it in the `CallState` and
//! returns an error, which traps the guest: the guest can never observe or
//! recover from a fault.

use super::error::Fault;
use super::host::{encode_batch_error, BatchFailure, CallState};
use super::limits::{Limits, PANIC_MESSAGE_BYTES_MAX, TABLE_ELEMENTS_MAX};
use super::TxnContext;
use crate::sql::{Engine, Prepared};
use ohm_sdk::abi;
use std::ops::Range;
use wasmtime::{Caller, Linker, Memory, ResourceLimiter};

/// Fuel every host call costs, whatever it copies.
const HOST_CALL_FUEL: u64 = 16;
/// Bytes the host copies per unit of fuel charged.
const BYTES_PER_FUEL: u64 = 64;

/// What a store carries. Between calls `engine` is an empty spare and
/// `statements` is empty: the partition's engine and the module's prepared
/// statements are lent in for exactly one call (`instance::Lend`).
pub struct HostState {
    pub(super) engine: Engine,
    pub(super) statements: Vec<Prepared>,
    pub(super) call: CallState,
    /// Set once the instance exists; a host call before that (from a start
    /// function) is an ABI violation.
    pub(super) memory: Option<Memory>,
    pub(super) limiter: Limiter,
    /// Scratch for batch responses, reused across batches.
    response: Vec<u8>,
}

impl HostState {
    pub fn new(memory_bytes_max: usize) -> HostState {
        HostState {
            engine: Engine::new(),
            statements: Vec::new(),
            call: CallState::new(Limits::default(), TxnContext::default()),
            memory: None,
            limiter: Limiter {
                memory_bytes_max,
                hit: None,
            },
            response: Vec::new(),
        }
    }

    /// The fault that ended the call, whether a host function or the
    /// limiter found it.
    pub fn take_fault(&mut self) -> Option<Fault> {
        self.call.take_fault().or_else(|| self.limiter.hit.take())
    }
}

/// Bounds linear memory and tables; a refused growth traps with a recorded fault.
pub struct Limiter {
    pub(super) memory_bytes_max: usize,
    pub(super) hit: Option<Fault>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes_max {
            let fault = Fault::MemoryLimit(self.memory_bytes_max);
            self.hit = Some(fault.clone());
            return Err(wasmtime::Error::new(fault));
        }
        Ok(maximum.is_none_or(|m| desired <= m))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > TABLE_ELEMENTS_MAX {
            let fault = Fault::Limit {
                what: "table elements",
                limit: TABLE_ELEMENTS_MAX as u64,
            };
            self.hit = Some(fault.clone());
            return Err(wasmtime::Error::new(fault));
        }
        Ok(maximum.is_none_or(|m| desired <= m))
    }

    fn instances(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        4
    }
    fn memories(&self) -> usize {
        1
    }
}

type Ctx<'a> = Caller<'a, HostState>;

/// Records `fault` and makes the error that traps the guest.
fn trap(call: &mut CallState, fault: Fault) -> wasmtime::Error {
    wasmtime::Error::new(call.fail(fault))
}

/// The guest range `(ptr, len)` as a byte range of a memory of `size` bytes.
fn guest_range(
    func: &str,
    what: &str,
    ptr: i32,
    len: i32,
    size: usize,
) -> Result<Range<usize>, Fault> {
    // The ABI passes pointers and lengths as i32 bit patterns of u32s.
    let (p, l) = (ptr as u32 as usize, len as u32 as usize);
    match p.checked_add(l) {
        Some(end) if end <= size => Ok(p..end),
        _ => Err(Fault::Abi(format!(
            "ohm.{func}: {what} (ptr {p:#x}, len {l}) is outside guest memory ({size} bytes)"
        ))),
    }
}

/// The memory of the calling instance.
fn memory(caller: &mut Ctx<'_>, func: &str) -> wasmtime::Result<Memory> {
    match caller.data().memory {
        Some(m) => Ok(m),
        None => Err(trap(
            &mut caller.data_mut().call,
            Fault::Abi(format!("ohm.{func} called before the instance was ready")),
        )),
    }
}

/// Traps unless a call is in progress: before the instance exists (its
/// start function) there is no transaction to read a time or seed of.
fn in_call(caller: &mut Ctx<'_>, name: &str) -> wasmtime::Result<()> {
    if caller.data().memory.is_some() {
        return Ok(());
    }
    let f = Fault::Abi(format!(
        "ohm.{name} called from the start function: there is no call in progress"
    ));
    Err(trap(&mut caller.data_mut().call, f))
}

/// Charges fuel for a host call that copies `bytes`.
fn charge(caller: &mut Ctx<'_>, bytes: usize) -> wasmtime::Result<()> {
    let cost = HOST_CALL_FUEL + bytes as u64 / BYTES_PER_FUEL;
    let fuel = caller.get_fuel()?;
    if fuel < cost {
        caller.set_fuel(0)?;
        let limit = caller.data().call.limits().fuel_max;
        return Err(trap(&mut caller.data_mut().call, Fault::OutOfFuel(limit)));
    }
    caller.set_fuel(fuel - cost)
}

/// `batch(req_ptr, req_len, out_ptr, out_cap) -> i64`: runs a batch; the
/// payload (response or error) goes to `out` if it fits, else it is left
/// pending for `take`. Returns `(status << 32) | payload length`.
fn batch(caller: &mut Ctx<'_>, req: (i32, i32), out: (i32, i32)) -> wasmtime::Result<i64> {
    charge(caller, req.1 as u32 as usize)?;
    let mem = memory(caller, abi::FN_BATCH)?;
    let (data, st) = mem.data_and_store_mut(&mut *caller);
    let size = data.len();
    let ranges = guest_range(abi::FN_BATCH, "request", req.0, req.1, size).and_then(|r| {
        Ok((
            r,
            guest_range(abi::FN_BATCH, "output buffer", out.0, out.1, size)?,
        ))
    });
    let (req_range, out_range) = ranges.map_err(|f| trap(&mut st.call, f))?;
    let request = data.get(req_range).unwrap_or_default();
    let mut response = std::mem::take(&mut st.response);
    let code = match st
        .call
        .batch(&mut st.engine, &st.statements, request, &mut response)
    {
        Ok(()) => 0,
        Err(BatchFailure::Statement(e)) => {
            encode_batch_error(&e, &mut response);
            e.code as u32
        }
        Err(BatchFailure::Fatal(f)) => {
            st.response = response;
            return Err(trap(&mut st.call, f));
        }
    };
    let len = response.len();
    match data.get_mut(out_range.start..out_range.start + len) {
        Some(dst) if len <= out_range.len() => dst.copy_from_slice(&response),
        _ => st.call.set_pending(&response),
    }
    st.response = response;
    charge(caller, len)?;
    Ok(abi::pack_batch_return(code, len as u32))
}

/// `take(dst_ptr, dst_len) -> i32`: copies the pending bytes (arguments, or
/// a response that did not fit) to `dst` and returns their length.
fn take(caller: &mut Ctx<'_>, dst_ptr: i32, dst_len: i32) -> wasmtime::Result<i32> {
    let mem = memory(caller, abi::FN_TAKE)?;
    let (data, st) = mem.data_and_store_mut(&mut *caller);
    let range = guest_range(abi::FN_TAKE, "buffer", dst_ptr, dst_len, data.len())
        .map_err(|f| trap(&mut st.call, f))?;
    let pending = st.call.pending();
    let n = pending.len();
    match data.get_mut(range.start..range.start + n) {
        Some(dst) if n <= range.len() => dst.copy_from_slice(pending),
        _ => {
            let f = Fault::Abi(format!(
                "ohm.take: buffer of {} bytes is smaller than the {n} pending bytes",
                range.len()
            ));
            return Err(trap(&mut st.call, f));
        }
    }
    st.call.clear_pending();
    charge(caller, n)?;
    Ok(n as i32)
}

/// `result(ptr, len)`: the payload that goes with `ohm_call`'s status.
fn result(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    charge(caller, len as u32 as usize)?;
    let mem = memory(caller, abi::FN_RESULT)?;
    let (data, st) = mem.data_and_store_mut(&mut *caller);
    let range = guest_range(abi::FN_RESULT, "payload", ptr, len, data.len())
        .map_err(|f| trap(&mut st.call, f))?;
    let payload = data.get(range).unwrap_or_default();
    st.call
        .set_result(payload)
        .map_err(|f| trap(&mut st.call, f))
}

/// `panic(ptr, len)`: the message of a guest panic; the guest traps next.
fn panic(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    charge(caller, (len as u32 as usize).min(PANIC_MESSAGE_BYTES_MAX))?;
    let mem = memory(caller, abi::FN_PANIC)?;
    let (data, st) = mem.data_and_store_mut(&mut *caller);
    let range = guest_range(abi::FN_PANIC, "message", ptr, len, data.len())
        .map_err(|f| trap(&mut st.call, f))?;
    st.call.record_panic(data.get(range).unwrap_or_default());
    Ok(())
}

/// Defines the `ohm` functions in `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let m = abi::IMPORT_MODULE;
    linker.func_wrap(
        m,
        abi::FN_BATCH,
        |mut c: Ctx<'_>, rp: i32, rl: i32, op: i32, oc: i32| batch(&mut c, (rp, rl), (op, oc)),
    )?;
    linker.func_wrap(m, abi::FN_TAKE, |mut c: Ctx<'_>, p: i32, l: i32| {
        take(&mut c, p, l)
    })?;
    linker.func_wrap(m, abi::FN_RESULT, |mut c: Ctx<'_>, p: i32, l: i32| {
        result(&mut c, p, l)
    })?;
    linker.func_wrap(m, abi::FN_PANIC, |mut c: Ctx<'_>, p: i32, l: i32| {
        panic(&mut c, p, l)
    })?;
    linker.func_wrap(m, abi::FN_NOW, |mut c: Ctx<'_>| {
        in_call(&mut c, abi::FN_NOW)?;
        Ok(c.data().call.txn().timestamp_us)
    })?;
    // The seed is a u64 carried in an i64's bits.
    linker.func_wrap(m, abi::FN_SEED, |mut c: Ctx<'_>| {
        in_call(&mut c, abi::FN_SEED)?;
        Ok(c.data().call.txn().seed as i64)
    })?;
    Ok(())
}

/// Signatures of the `ohm` functions: (name, params, results), `true` = i64.
pub const HOST_FUNCTIONS: [(&str, &[bool], &[bool]); 6] = [
    (abi::FN_BATCH, &[false, false, false, false], &[true]),
    (abi::FN_TAKE, &[false, false], &[false]),
    (abi::FN_RESULT, &[false, false], &[]),
    (abi::FN_PANIC, &[false, false], &[]),
    (abi::FN_NOW, &[], &[true]),
    (abi::FN_SEED, &[], &[true]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_ranges_are_checked_without_overflow() {
        assert_eq!(guest_range("batch", "request", 10, 5, 15), Ok(10..15));
        let e = guest_range("batch", "request", 10, 6, 15).unwrap_err();
        assert_eq!(
            e,
            Fault::Abi(
                "ohm.batch: request (ptr 0xa, len 6) is outside guest memory (15 bytes)".into()
            )
        );
        // -1 as a pointer is 0xffffffff, never a wrap-around to small numbers.
        assert!(guest_range("take", "buffer", -1, -1, 1 << 20).is_err());
        assert_eq!(guest_range("take", "buffer", 0, 0, 0), Ok(0..0));
    }
}
