//! `ProcHost`: the procedures deployed in one partition and their live
//! instances. A plain struct owned by the partition's thread: no threads,
//! no async, no locks.
//!
//! Owns: the procedure namespace (name -> module + index), one instance per
//! Wasm module (created at deploy, reused by every call, re-created after a
//! failed call), and the transaction around each call.
//! Must not: compile modules (the shared `WasmRuntime` does, once per node).
//!
//! ```text
//!   call(engine, "vote", args, txn)
//!     -> encode + check args -> engine.begin()
//!     -> instance: lend engine, ohm_call, take engine back
//!     -> CALL_OK: engine.commit() -> WriteSet       anything else: engine.rollback()
//! ```
//!
//! Redeploy is atomic between calls: `call` and `deploy` both take
//! `&mut self`, so a call in progress always finishes on the version it
//! started with, and the next call sees the new one.

use super::engine::{CompiledModule, WasmRuntime};
use super::error::{DeployError, Fault, ProcError};
use super::host::{self, CallState};
use super::instance::Live;
use super::limits::Limits;
use super::{codec, deploy, native, CallOutcome, DeployInfo, ProcOutput, TxnContext};
use crate::sql::{Engine, Prepared};
use crate::types::Value;
use ohm_sdk::abi::{ModuleDesc, ProcedureDesc, Writer};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a module runs.
enum Code {
    Wasm {
        compiled: Arc<CompiledModule>,
        /// None after a failed call: re-created on the next call.
        live: Option<Live>,
    },
    Native {
        module: &'static ohm_sdk::Module,
        desc: ModuleDesc,
        /// Native calls have no store to keep their call state in.
        state: Box<CallState>,
    },
}

/// A module deployed in this partition.
struct Deployed {
    code: Code,
    /// Prepared against this partition's schema, in declaration order.
    statements: Vec<Prepared>,
    /// `ProcHost::calls` when it was last called (for eviction).
    last_call: u64,
}

impl Deployed {
    fn desc(&self) -> &ModuleDesc {
        match &self.code {
            Code::Wasm { compiled, .. } => &compiled.desc,
            Code::Native { desc, .. } => desc,
        }
    }
}

/// Where a procedure lives.
#[derive(Debug, Clone)]
struct ProcRef {
    module: String,
    index: u32,
}

/// The procedures of one partition.
pub struct ProcHost {
    runtime: WasmRuntime,
    limits: Limits,
    modules: BTreeMap<String, Deployed>,
    procedures: BTreeMap<String, ProcRef>,
    /// Scratch for encoded arguments, reused across calls.
    args: Vec<u8>,
    /// Calls made, a clock for "least recently called".
    calls: u64,
    /// Fuel the last call burned, also when it failed.
    fuel_used: u64,
}

/// Wasm instances one tenant keeps live on one partition between calls;
/// instantiating another first drops the least recently called one.
pub const INSTANCES_LIVE_MAX: usize = 8;
/// Linear memory an instance may keep between calls: one that has grown
/// past it is dropped after its call and instantiated afresh by the next.
pub const INSTANCE_IDLE_BYTES_MAX: usize = 8 << 20;

impl ProcHost {
    pub fn new(runtime: WasmRuntime) -> ProcHost {
        ProcHost {
            runtime,
            limits: Limits::default(),
            modules: BTreeMap::new(),
            procedures: BTreeMap::new(),
            args: Vec::new(),
            calls: 0,
            fuel_used: 0,
        }
    }

    pub fn runtime(&self) -> &WasmRuntime {
        &self.runtime
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Limits for the calls that follow (memory applies as instances grow).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits.clamped();
    }

    /// Compiles `bytes` as module `name` and deploys it here.
    pub fn deploy_wasm(
        &mut self,
        engine: &mut Engine,
        name: &str,
        bytes: &[u8],
    ) -> Result<DeployInfo, DeployError> {
        let compiled = self.runtime.compile(name, bytes)?;
        self.deploy(engine, compiled)
    }

    /// Deploys a module compiled once for all partitions: prepares its
    /// statements against this partition's schema, checks its partition
    /// declarations, instantiates it, then swaps it in.
    pub fn deploy(
        &mut self,
        engine: &mut Engine,
        compiled: Arc<CompiledModule>,
    ) -> Result<DeployInfo, DeployError> {
        let name = compiled.name.clone();
        let statements = deploy::prepare_module(engine, &name, &compiled.desc)?;
        self.check_names_free(&name, &compiled.desc)?;
        let warnings = deploy::partition_warnings(engine, &name, &compiled.desc, &statements);
        // Instantiated by its first call: an idle module costs no memory
        // or mappings (compiling ran the module once already, so its start
        // function and memory are known to fit).
        let code = Code::Wasm {
            compiled,
            live: None,
        };
        Ok(self.install(name, code, statements, warnings))
    }

    /// Deploys a native module (trusted code compiled into the host).
    pub fn deploy_native(
        &mut self,
        engine: &mut Engine,
        name: &str,
        module: &'static ohm_sdk::Module,
    ) -> Result<DeployInfo, DeployError> {
        if !ohm_sdk::abi::valid_name(name) {
            return Err(DeployError::Name {
                module: name.to_string(),
            });
        }
        let desc = module.desc();
        let statements = deploy::prepare_module(engine, name, &desc)?;
        self.check_names_free(name, &desc)?;
        let warnings = deploy::partition_warnings(engine, name, &desc, &statements);
        let state = Box::new(CallState::new(self.limits, TxnContext::default()));
        let code = Code::Native {
            module,
            desc,
            state,
        };
        Ok(self.install(name.to_string(), code, statements, warnings))
    }

    /// A procedure name belongs to one module at a time.
    fn check_names_free(&self, module: &str, desc: &ModuleDesc) -> Result<(), DeployError> {
        for p in &desc.procedures {
            match self.procedures.get(&p.name) {
                Some(r) if r.module != module => {
                    return Err(DeployError::Procedure {
                        module: module.to_string(),
                        procedure: p.name.clone(),
                        message: format!("is already deployed by module {}", r.module),
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Swaps the module in, replacing a previous version and its procedures.
    fn install(
        &mut self,
        name: String,
        code: Code,
        statements: Vec<Prepared>,
        warnings: Vec<String>,
    ) -> DeployInfo {
        let replaced = self.drop_module(&name);
        let deployed = Deployed {
            code,
            statements,
            last_call: 0,
        };
        let procedures: Vec<String> = deployed
            .desc()
            .procedures
            .iter()
            .map(|p| p.name.clone())
            .collect();
        for (i, p) in procedures.iter().enumerate() {
            let r = ProcRef {
                module: name.clone(),
                index: i as u32,
            };
            self.procedures.insert(p.clone(), r);
        }
        let info = DeployInfo {
            module: name.clone(),
            procedures,
            statements: deployed.statements.len(),
            replaced,
            warnings,
        };
        self.modules.insert(name, deployed);
        info
    }

    /// Removes a module and its procedures; false if it was not deployed.
    pub fn drop_module(&mut self, name: &str) -> bool {
        let existed = self.modules.remove(name).is_some();
        self.procedures.retain(|_, r| r.module != name);
        existed
    }

    /// Every deployed procedure, by name: (module, declaration).
    pub fn procedures(&self) -> impl Iterator<Item = (&str, &ProcedureDesc)> + '_ {
        self.procedures.values().filter_map(|r| {
            let m = self.modules.get(&r.module)?;
            Some((
                r.module.as_str(),
                m.desc().procedures.get(r.index as usize)?,
            ))
        })
    }

    /// The declaration of procedure `name` (for routing by its partition parameter).
    pub fn procedure(&self, name: &str) -> Option<&ProcedureDesc> {
        let r = self.procedures.get(name)?;
        self.modules
            .get(&r.module)?
            .desc()
            .procedures
            .get(r.index as usize)
    }

    /// Runs `procedure` in its own transaction on `engine`: committed (and
    /// its write-set returned) if the procedure returns, rolled back on
    /// anything else, so a failed call leaves the data exactly as it was.
    pub fn call(
        &mut self,
        engine: &mut Engine,
        procedure: &str,
        args: &[Value],
        txn: TxnContext,
    ) -> Result<CallOutcome, ProcError> {
        // A call refused before it runs burned nothing.
        self.fuel_used = 0;
        let r = self
            .procedures
            .get(procedure)
            .ok_or_else(|| ProcError::UnknownProcedure {
                procedure: procedure.to_string(),
            })?;
        let module = r.module.clone();
        let index = r.index;
        self.calls += 1;
        self.make_room_for(&module);
        let deployed = self
            .modules
            .get_mut(&module)
            .expect("every procedure entry points at a deployed module");
        deployed.last_call = self.calls;
        let limits = self.limits;
        let decl = deployed
            .desc()
            .procedures
            .get(index as usize)
            .expect("procedure indexes come from the module's own list");
        let returns = decl.returns;
        encode_args(&mut self.args, decl, args, &limits).map_err(|f| f.into_error(procedure))?;
        // The statements' now() is the call's `ctx.now()`.
        engine.set_now(txn.timestamp_us);
        if engine.in_txn() || engine.begin().is_err() {
            return Err(ProcError::TxnOpen {
                procedure: procedure.to_string(),
            });
        }
        let call = Call {
            procedure,
            index,
            returns,
            args: &self.args,
            limits: &limits,
            txn,
        };
        let out = run(deployed, engine, &call, &mut self.fuel_used);
        end_txn(engine, out)
    }
}

impl ProcHost {
    /// Before module `calling` runs: if it has no instance and
    /// `INSTANCES_LIVE_MAX` others are live, drops the least recently
    /// called one.
    fn make_room_for(&mut self, calling: &str) {
        let is_live = |d: &Deployed| matches!(d.code, Code::Wasm { live: Some(_), .. });
        if self.modules.get(calling).is_none_or(is_live) {
            return;
        }
        let live = self.modules.values().filter(|d| is_live(d)).count();
        if live < INSTANCES_LIVE_MAX {
            return;
        }
        let oldest = self
            .modules
            .values_mut()
            .filter(|d| is_live(d))
            .min_by_key(|d| d.last_call);
        if let Some(Deployed {
            code: Code::Wasm { live, .. },
            ..
        }) = oldest
        {
            *live = None;
        }
    }

    /// Live Wasm instances (for tests and status).
    pub fn instances_live(&self) -> usize {
        self.modules
            .values()
            .filter(|d| matches!(d.code, Code::Wasm { live: Some(_), .. }))
            .count()
    }
}

/// Encodes `args` into `buf` after checking them against `decl`.
fn encode_args(
    buf: &mut Vec<u8>,
    decl: &ProcedureDesc,
    args: &[Value],
    limits: &Limits,
) -> Result<(), Fault> {
    let mut w = Writer::with_buf(std::mem::take(buf));
    w.buf.clear();
    let encoded = codec::encode_args(&decl.params, args, &mut w);
    *buf = w.into_inner();
    encoded.map_err(Fault::BadArguments)?;
    if buf.len() > limits.args_bytes_max {
        return Err(Fault::Limit {
            what: "argument bytes",
            limit: limits.args_bytes_max as u64,
        });
    }
    Ok(())
}

/// Commits the call's transaction if it produced an output, else rolls it back.
fn end_txn(
    engine: &mut Engine,
    out: Result<(ProcOutput, u64), ProcError>,
) -> Result<CallOutcome, ProcError> {
    const OPEN: &str =
        "the call's transaction is open: begun by call, and procedures cannot end it";
    match out {
        Ok((output, fuel_used)) => {
            let write_set = engine.commit().expect(OPEN);
            Ok(CallOutcome {
                output,
                write_set,
                fuel_used,
            })
        }
        Err(e) => {
            engine.rollback().expect(OPEN);
            Err(e)
        }
    }
}

/// One call's inputs.
struct Call<'a> {
    procedure: &'a str,
    index: u32,
    returns: u8,
    args: &'a [u8],
    limits: &'a Limits,
    txn: TxnContext,
}

/// Runs a call on a deployed module; the output and the fuel it used
/// (also in `fuel_used`, set when it failed too).
fn run(
    d: &mut Deployed,
    engine: &mut Engine,
    c: &Call<'_>,
    fuel_used: &mut u64,
) -> Result<(ProcOutput, u64), ProcError> {
    let finish =
        |status, payload: &[u8]| host::finish(c.procedure, c.returns, status, payload, c.limits);
    match &mut d.code {
        Code::Wasm { compiled, live } => {
            let instance = match live {
                Some(l) => l,
                None => live.insert(
                    Live::new(&compiled.pre, c.limits).map_err(|f| f.into_error(c.procedure))?,
                ),
            };
            let ran = instance.call(engine, &mut d.statements, c.index, c.args, c.limits, c.txn);
            *fuel_used = instance.fuel_used;
            match ran {
                Ok((status, fuel)) => {
                    let out = finish(status, instance.result());
                    if instance.memory_bytes() > INSTANCE_IDLE_BYTES_MAX {
                        // Not kept holding what it grew to between calls.
                        *live = None;
                    }
                    Ok((out?, fuel))
                }
                Err(f) => {
                    // A trapped guest may have left its memory half-updated.
                    *live = None;
                    Err(f.into_error(c.procedure))
                }
            }
        }
        Code::Native { module, state, .. } => {
            state.reset(*c.limits, c.txn, &[]);
            let out = native::run_native(module, c.index, c.args, engine, &d.statements, state)
                .map_err(|f| f.into_error(c.procedure))?;
            Ok((finish(out.status, &out.payload)?, 0))
        }
    }
}

impl crate::partition::Procedures for ProcHost {
    fn call(
        &mut self,
        engine: &mut Engine,
        procedure: &str,
        args: &[Value],
        txn: TxnContext,
    ) -> Result<super::CallOutcome, ProcError> {
        ProcHost::call(self, engine, procedure, args, txn)
    }

    fn deploy(
        &mut self,
        engine: &mut Engine,
        name: &str,
        wasm: &[u8],
    ) -> Result<DeployInfo, DeployError> {
        let compiled = self.runtime.compile_cached(name, wasm)?;
        ProcHost::deploy(self, engine, compiled)
    }

    fn drop_module(&mut self, name: &str) -> bool {
        ProcHost::drop_module(self, name)
    }

    fn fuel_used_last(&self) -> u64 {
        self.fuel_used
    }
}

impl crate::partition::ProcRuntime for WasmRuntime {
    fn procedures(&self) -> Box<dyn crate::partition::Procedures> {
        Box::new(ProcHost::new(self.clone()))
    }
}
