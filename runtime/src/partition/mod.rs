//! The partition: one slice of every tenant's partitioned tables (and a copy
//! of the replicated ones), run by one executor thread, logged by one
//! writer thread.
//!
//! ```text
//!  dispatch ──Task──▶ [bounded queue] ──▶ executor ──records+replies──▶ writer
//!                                           │  (runs calls in order,      │ append, fsync
//!                                           │   under the state lock)     ▼
//!  coordinator ── locks every partition ────┘                        replies sent
//! ```
//!
//! Owns: `PartitionState` (the engines and procedure hosts of every tenant on
//! this partition), the executor loop (`executor.rs`) and the log writer
//! (`writer.rs`), and replaying log entries into a state (`replay`).
//! Must not: reply to a call before its log record (and every record before
//! it) is durable; import tokio or quinn (replies are plain callbacks).
//!
//! The state sits behind a `Mutex` that only its executor takes, batch by
//! batch, except when the coordinator runs a multi-partition transaction:
//! then it holds every partition's lock, so such a transaction sees and
//! changes every partition at one point in each partition's order.

pub mod executor;
pub mod reply;
pub mod writer;

use crate::catalog::PartitionId;
use crate::durability::{self, Entry, LoggedWrites, MultiBody, TenantImage};
use crate::sql::Engine;
use crate::types::TenantId;
use crate::wasm::{CompiledModule, DeployError, ProcHost, WasmRuntime};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// One tenant's share of a partition.
pub struct TenantPart {
    pub engine: Engine,
    pub procs: ProcHost,
    /// Deployed modules' bytes, for snapshots (name order).
    pub modules: Vec<(String, Arc<[u8]>)>,
}

impl TenantPart {
    pub fn new(runtime: &WasmRuntime) -> TenantPart {
        TenantPart {
            engine: Engine::new(),
            procs: ProcHost::new(runtime.clone()),
            modules: Vec::new(),
        }
    }

    /// Records a deployed module's bytes (replacing an older version).
    pub fn remember_module(&mut self, name: &str, wasm: Arc<[u8]>) {
        self.modules.retain(|(n, _)| n != name);
        self.modules.push((name.to_string(), wasm));
        self.modules.sort_by(|a, b| a.0.cmp(&b.0));
    }

    pub fn forget_module(&mut self, name: &str) {
        self.modules.retain(|(n, _)| n != name);
    }

    /// Rows in all of this tenant's tables here.
    pub fn rows(&self) -> u64 {
        self.engine
            .database()
            .tables()
            .map(|t| t.len() as u64)
            .sum()
    }
}

/// Everything one partition holds.
pub struct PartitionState {
    pub id: PartitionId,
    runtime: WasmRuntime,
    tenants: BTreeMap<TenantId, TenantPart>,
    /// The last log sequence number given to an entry of this partition.
    pub last_lsn: u64,
    /// The highest coordinator transaction applied here.
    pub mp_txn_max: u64,
}

impl PartitionState {
    pub fn new(id: PartitionId, runtime: WasmRuntime) -> PartitionState {
        PartitionState {
            id,
            runtime,
            tenants: BTreeMap::new(),
            last_lsn: 0,
            mp_txn_max: 0,
        }
    }

    /// The tenant's part, created empty on first use.
    pub fn tenant(&mut self, t: TenantId) -> &mut TenantPart {
        let runtime = &self.runtime;
        self.tenants
            .entry(t)
            .or_insert_with(|| TenantPart::new(runtime))
    }

    pub fn tenant_ref(&self, t: TenantId) -> Option<&TenantPart> {
        self.tenants.get(&t)
    }

    pub fn insert_tenant(&mut self, t: TenantId, part: TenantPart) {
        self.tenants.insert(t, part);
    }

    /// The next log sequence number (taken).
    pub fn next_lsn(&mut self) -> crate::types::Slot {
        self.last_lsn += 1;
        crate::types::Slot(self.last_lsn)
    }

    /// What a snapshot of this partition holds.
    pub fn images(&self) -> Vec<TenantImage<'_>> {
        self.tenants
            .iter()
            .map(|(t, p)| TenantImage {
                tenant: *t,
                engine: &p.engine,
                modules: &p.modules,
            })
            .collect()
    }

    /// Rows of one tenant here.
    pub fn tenant_rows(&self, t: TenantId) -> u64 {
        self.tenants.get(&t).map_or(0, TenantPart::rows)
    }

    /// Applies one recovered log entry.
    pub fn replay(&mut self, entry: &Entry, modules: &mut ModuleCache) -> Result<(), ReplayError> {
        match entry {
            Entry::Commit { tenant, writes } => self.replay_writes(*tenant, writes),
            Entry::Multi { txn, tenant, body } => {
                self.mp_txn_max = self.mp_txn_max.max(*txn);
                match body {
                    MultiBody::Writes(w) => self.replay_writes(*tenant, w),
                    MultiBody::Ddl(sql) => self
                        .tenant(*tenant)
                        .engine
                        .execute(sql)
                        .map(|_| ())
                        .map_err(|e| ReplayError::Ddl {
                            sql: sql.clone(),
                            message: e.to_string(),
                        }),
                    MultiBody::Deploy { name, wasm } => {
                        let compiled = modules.compile(&self.runtime, name, wasm)?;
                        let part = self.tenant(*tenant);
                        part.procs
                            .deploy(&mut part.engine, compiled)
                            .map_err(ReplayError::Deploy)?;
                        part.remember_module(name, Arc::from(wasm.as_slice()));
                        Ok(())
                    }
                    MultiBody::DropModule { name } => {
                        let part = self.tenant(*tenant);
                        part.procs.drop_module(name);
                        part.forget_module(name);
                        Ok(())
                    }
                }
            }
        }
    }

    fn replay_writes(&mut self, t: TenantId, w: &LoggedWrites) -> Result<(), ReplayError> {
        durability::apply(&mut self.tenant(t).engine, w)
            .map(|_| ())
            .map_err(|e| ReplayError::Apply(e.to_string()))
    }
}

/// Why a recovered entry could not be applied: the log and the state
/// disagree, so the node must not serve.
#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("replaying writes: {0}")]
    Apply(String),
    #[error("replaying DDL {sql:?}: {message}")]
    Ddl { sql: String, message: String },
    #[error("replaying a deploy: {0}")]
    Deploy(DeployError),
}

/// Modules compiled once per distinct bytes (every partition logs the same
/// deploy; compiling it once per partition would multiply start-up time).
#[derive(Default)]
pub struct ModuleCache {
    compiled: HashMap<(String, [u8; 32]), Arc<CompiledModule>>,
}

impl ModuleCache {
    pub fn compile(
        &mut self,
        runtime: &WasmRuntime,
        name: &str,
        wasm: &[u8],
    ) -> Result<Arc<CompiledModule>, ReplayError> {
        use sha2::Digest;
        let key = (name.to_string(), sha2::Sha256::digest(wasm).into());
        if let Some(c) = self.compiled.get(&key) {
            return Ok(c.clone());
        }
        let c = runtime.compile(name, wasm).map_err(ReplayError::Deploy)?;
        self.compiled.insert(key, c.clone());
        Ok(c)
    }
}

/// Counters the status request reads without taking the state lock.
#[derive(Default)]
pub struct PartitionStats {
    pub committed: AtomicU64,
    pub failed: AtomicU64,
    pub queued: AtomicU64,
    pub durable_lsn: AtomicU64,
    pub log_bytes: AtomicU64,
}

impl PartitionStats {
    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}

/// A partition as the rest of the node shares it.
pub struct Partition {
    pub id: PartitionId,
    pub state: Mutex<PartitionState>,
    pub stats: PartitionStats,
}

impl Partition {
    /// The state, even if a thread panicked while holding it: a panic in a
    /// call is caught by the executor before it can leave half a change.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, PartitionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
