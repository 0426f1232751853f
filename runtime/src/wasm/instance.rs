//! One live instance of a module in one partition: a wasmtime `Store`, the
//! `Instance` and its typed `ohm_call`, created once and reused by every
//! call (no compilation or instantiation on the hot path).
//!
//! Owns: lending the partition's engine and the module's statements to the
//! store for exactly one call (`Lend`, which gives them back even if the
//! host unwinds), setting fuel, and classifying what ended a failed call.
//! Must not: keep an instance after a failed call — the caller drops it,
//! since a trapped guest may have left its memory inconsistent.

use super::error::Fault;
use super::imports::HostState;
use super::limits::Limits;
use super::TxnContext;
use crate::sql::{Engine, Prepared};
use ohm_sdk::abi;
use wasmtime::{InstancePre, Store, Trap, TypedFunc};

/// An instance ready to take calls.
pub struct Live {
    store: Store<HostState>,
    call: TypedFunc<(i32, i32), i32>,
    /// Fuel the last call burned, also when it failed.
    pub fuel_used: u64,
}

/// While alive, the store holds the partition's engine and the module's
/// statements; dropping it (also on unwind) swaps them back.
struct Lend<'a> {
    store: &'a mut Store<HostState>,
    engine: &'a mut Engine,
    statements: &'a mut Vec<Prepared>,
}

impl<'a> Lend<'a> {
    fn new(
        store: &'a mut Store<HostState>,
        engine: &'a mut Engine,
        statements: &'a mut Vec<Prepared>,
    ) -> Lend<'a> {
        let data = store.data_mut();
        std::mem::swap(&mut data.engine, engine);
        std::mem::swap(&mut data.statements, statements);
        Lend {
            store,
            engine,
            statements,
        }
    }
}

impl Drop for Lend<'_> {
    fn drop(&mut self) {
        let data = self.store.data_mut();
        std::mem::swap(&mut data.engine, self.engine);
        std::mem::swap(&mut data.statements, self.statements);
    }
}

/// What ended a failed Wasm call (or instantiation): a fault a host
/// function or the limiter recorded, else the trap itself.
pub fn classify(e: &wasmtime::Error, state: &mut HostState, fuel_max: u64) -> Fault {
    if let Some(f) = state.take_fault() {
        return f;
    }
    let panic = state.call.panic_message().map(str::to_string);
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Fault::OutOfFuel(fuel_max),
        Some(Trap::StackOverflow) => Fault::StackOverflow,
        _ => match panic {
            Some(message) => Fault::Panicked(message),
            None => Fault::Trap(format!("{e:#}")),
        },
    }
}

impl Live {
    /// Instantiates `pre` in a fresh store bounded by `limits` (the start
    /// function, if any, runs on `limits.fuel_max`).
    pub fn new(pre: &InstancePre<HostState>, limits: &Limits) -> Result<Live, Fault> {
        let state = HostState::new(limits.memory_bytes_max);
        let mut store = Store::new(pre.module().engine(), state);
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(limits.fuel_max)
            .map_err(|e| Fault::Trap(format!("{e:#}")))?;
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| classify(&e, store.data_mut(), limits.fuel_max))?;
        // Both exports were checked when the module was compiled.
        let call = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, abi::EXPORT_CALL)
            .map_err(|e| Fault::Abi(format!("{e:#}")))?;
        let memory = instance
            .get_memory(&mut store, abi::EXPORT_MEMORY)
            .ok_or_else(|| Fault::Abi("export memory is not a memory".into()))?;
        store.data_mut().memory = Some(memory);
        Ok(Live {
            store,
            call,
            fuel_used: 0,
        })
    }

    /// Runs procedure number `index` with encoded `args`; returns the status
    /// `ohm_call` returned and the fuel used. The payload is `result()`.
    pub fn call(
        &mut self,
        engine: &mut Engine,
        statements: &mut Vec<Prepared>,
        index: u32,
        args: &[u8],
        limits: &Limits,
        txn: TxnContext,
    ) -> Result<(i32, u64), Fault> {
        let data = self.store.data_mut();
        data.call.reset(*limits, txn, args);
        data.limiter.memory_bytes_max = limits.memory_bytes_max;
        data.limiter.hit = None;
        let fuel = limits.fuel_max;
        self.fuel_used = 0;
        self.store
            .set_fuel(fuel)
            .map_err(|e| Fault::Trap(format!("{e:#}")))?;
        let lend = Lend::new(&mut self.store, engine, statements);
        // Indexes and lengths are u32 bit patterns in i32s.
        let out = self
            .call
            .call(&mut *lend.store, (index as i32, args.len() as i32));
        drop(lend);
        let used = fuel.saturating_sub(self.store.get_fuel().unwrap_or(0));
        self.fuel_used = used;
        match out {
            Ok(status) => match self.store.data_mut().take_fault() {
                // A fault the guest could not have seen, e.g. one recorded
                // by the limiter after a refused growth it survived.
                Some(f) => Err(f),
                // A guest that panicked and then returned anyway: the
                // panic stands, the call does not commit.
                None => match self.store.data().call.panic_message() {
                    Some(m) => Err(Fault::Panicked(m.to_string())),
                    None => Ok((status, used)),
                },
            },
            Err(e) => Err(classify(&e, self.store.data_mut(), fuel)),
        }
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_bytes(&self) -> usize {
        self.store
            .data()
            .memory
            .map_or(0, |m| m.data_size(&self.store))
    }

    /// The payload of the last call's `ohm.result`.
    pub fn result(&self) -> &[u8] {
        self.store.data().call.result()
    }
}
