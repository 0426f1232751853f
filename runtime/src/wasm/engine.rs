//! The shared Wasm engine: one `wasmtime::Engine` and one `Linker` with the
//! `ohm` host functions, built once per node and shared by every partition
//! (clone a `WasmRuntime` to share it; it is an `Arc`).
//!
//! Owns: the wasmtime configuration (fuel, NaN canonicalization,
//! deterministic relaxed SIMD, no threads, one 32-bit memory, stack bound),
//! and `compile`, which turns module bytes into a shareable `CompiledModule`.
//! Must not: hold per-partition state; instances live in each `ProcHost`.

use super::compile;
use super::error::{DeployError, EngineError};
use super::imports::{self, HostState};
use super::limits::RuntimeConfig;
use ohm_sdk::abi::ModuleDesc;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use wasmtime::{Config, InstancePre, Linker, WasmFeatures};

/// The node-wide Wasm engine. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct WasmRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: wasmtime::Engine,
    linker: Linker<HostState>,
    config: RuntimeConfig,
    /// Modules compiled from given bytes, so that every partition (and a
    /// replay, or the simulator's next seed) deploying the same module
    /// compiles it once. A cache, not state: losing it costs only time.
    cache: Mutex<ModuleCache>,
}

/// Compiled modules by (name, SHA-256 of the bytes). A slot is filled
/// once: whoever asks for a module another thread is compiling waits for
/// that compile instead of starting a second one (every partition of a
/// node applies a deploy at about the same time).
type ModuleCache = BTreeMap<(String, [u8; 32]), Arc<CompileSlot>>;
type CompileSlot = std::sync::OnceLock<Result<Arc<CompiledModule>, DeployError>>;

/// Compiled modules `compile_cached` keeps; past it the cache is emptied.
pub const MODULE_CACHE_MAX: usize = 256;

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A module compiled, validated against the ABI and described: what every
/// partition deploys (each prepares the statements against its own schema
/// and keeps its own instance).
pub struct CompiledModule {
    pub(super) name: String,
    pub(super) desc: ModuleDesc,
    pub(super) pre: InstancePre<HostState>,
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule")
            .field("name", &self.name)
            .field("desc", &self.desc)
            .finish_non_exhaustive()
    }
}

impl CompiledModule {
    /// The name the module was compiled under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the module declares (from `ohm_describe`).
    pub fn desc(&self) -> &ModuleDesc {
        &self.desc
    }
}

/// Unmapped bytes after each linear memory's reservation: an access just
/// past the end faults instead of being checked, for small offsets.
pub const MEMORY_GUARD_BYTES: u64 = 64 << 10;

fn wasmtime_config(config: &RuntimeConfig) -> Config {
    let mut c = Config::new();
    // wasmtime's default reserves 4 GiB of address space (plus guards) per
    // linear memory so that it can skip bounds checks; a node holding
    // thousands of instances ran out of address space and mappings that
    // way. An instance may never grow past `memory_bytes_max`, so reserve
    // exactly that: bounds checks cost a little on memory-heavy guests.
    let reservation = u64::try_from(config.memory_bytes_max).unwrap_or(u64::MAX);
    c.memory_reservation(reservation)
        .memory_guard_size(MEMORY_GUARD_BYTES)
        .memory_reservation_for_growth(0)
        .guard_before_linear_memory(false);
    c.consume_fuel(true)
        .cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true)
        .max_wasm_stack(config.wasm_stack_bytes)
        // Traps carry the trap code; frame lists would only cost time.
        .wasm_backtrace_max_frames(None)
        // The ABI is 32-bit and has one memory; threads would be nondeterministic.
        .wasm_memory64(false)
        .wasm_multi_memory(false)
        .wasm_features(
            WasmFeatures::THREADS | WasmFeatures::SHARED_EVERYTHING_THREADS,
            false,
        );
    c
}

impl WasmRuntime {
    /// An engine with the default `RuntimeConfig`.
    pub fn new() -> Result<WasmRuntime, EngineError> {
        WasmRuntime::with_config(RuntimeConfig::default())
    }

    pub fn with_config(config: RuntimeConfig) -> Result<WasmRuntime, EngineError> {
        let err = |e: wasmtime::Error| EngineError(e.to_string());
        let engine = wasmtime::Engine::new(&wasmtime_config(&config)).map_err(err)?;
        let mut linker = Linker::new(&engine);
        imports::add_to_linker(&mut linker).map_err(err)?;
        Ok(WasmRuntime {
            inner: Arc::new(Inner {
                engine,
                linker,
                config,
                cache: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// `compile`, once per distinct (name, bytes), also when several
    /// threads ask at once. A failed compile is not kept.
    pub fn compile_cached(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Arc<CompiledModule>, DeployError> {
        use sha2::Digest;
        let key = (name.to_string(), sha2::Sha256::digest(bytes).into());
        let cache = || self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        let slot = {
            let mut c = cache();
            if !c.contains_key(&key) && c.len() >= MODULE_CACHE_MAX {
                c.clear();
            }
            c.entry(key.clone()).or_default().clone()
        };
        let result = slot.get_or_init(|| self.compile(name, bytes)).clone();
        if result.is_err() {
            let mut c = cache();
            if c.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                c.remove(&key);
            }
        }
        result
    }

    /// Drops (name, bytes) from the cache (a module refused after it
    /// compiled, so that no later deploy finds it there).
    pub fn forget(&self, name: &str, bytes: &[u8]) {
        use sha2::Digest;
        let key = (name.to_string(), sha2::Sha256::digest(bytes).into());
        let mut c = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.remove(&key);
    }

    /// Whether `compile_cached` has (name, bytes) compiled already.
    pub fn is_cached(&self, name: &str, bytes: &[u8]) -> bool {
        use sha2::Digest;
        let key = (name.to_string(), sha2::Sha256::digest(bytes).into());
        let c = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.get(&key).is_some_and(|s| matches!(s.get(), Some(Ok(_))))
    }

    /// Compiles and validates module `name`: size, Wasm validity, imports
    /// (only known `ohm` functions, exact signatures), exports, and its
    /// description (run once in a throwaway instance). Schema checks happen
    /// when a partition deploys it (`ProcHost::deploy`).
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<Arc<CompiledModule>, DeployError> {
        let config = &self.inner.config;
        if !ohm_sdk::abi::valid_name(name) {
            return Err(DeployError::Name {
                module: name.to_string(),
            });
        }
        if bytes.len() > config.module_bytes_max {
            return Err(DeployError::TooLarge {
                module: name.to_string(),
                bytes: bytes.len(),
                max: config.module_bytes_max,
            });
        }
        let module = wasmtime::Module::from_binary(&self.inner.engine, bytes).map_err(|e| {
            DeployError::Invalid {
                module: name.to_string(),
                message: format!("{e:#}"),
            }
        })?;
        compile::check_imports(name, &module)?;
        compile::check_exports(name, &module)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&module)
            .map_err(|e| DeployError::Invalid {
                module: name.to_string(),
                message: format!("{e:#}"),
            })?;
        let desc = compile::describe(name, &pre, config)?;
        super::deploy::check_desc(name, &desc)?;
        Ok(Arc::new(CompiledModule {
            name: name.to_string(),
            desc,
            pre,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn runtime_and_modules_are_shareable_across_partitions() {
        assert_send_sync::<WasmRuntime>();
        assert_send_sync::<CompiledModule>();
        // A partition's host may be built on one thread and moved to its own.
        fn assert_send<T: Send>() {}
        assert_send::<super::super::ProcHost>();
    }

    #[test]
    fn a_module_asked_for_at_once_is_compiled_once_and_failures_are_not_kept() {
        let path =
            crate::wasm::testing::procedure_wasm("ohm_voter").unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(path).unwrap();
        let runtime = WasmRuntime::new().unwrap();
        assert!(!runtime.is_cached("voter", &bytes));
        let got: Vec<Arc<CompiledModule>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| runtime.compile_cached("voter", &bytes).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // One compile: every thread holds the same module.
        assert!(got.iter().all(|m| Arc::ptr_eq(m, &got[0])));
        assert!(runtime.is_cached("voter", &bytes));
        let bad = b"\0asm not really";
        assert!(runtime.compile_cached("bad", bad).is_err());
        assert!(!runtime.is_cached("bad", bad));
        assert_eq!(runtime.inner.cache.lock().unwrap().len(), 1);
    }
}
