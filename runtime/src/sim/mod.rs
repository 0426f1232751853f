//! The deterministic simulator: a replica group of real partition cores
//! (real consensus, real SQL engines, real Wasm procedures, the real log
//! over a simulated disk) on one thread, with a virtual clock per node
//! (each drifting within the bound the cores are told), a network that
//! drops, delays, duplicates, reorders and partitions, disks that lose
//! unsynced writes, tear them and fail fsyncs, crashes and restarts — all
//! driven by one seeded RNG, so a seed replays exactly (its trace hash
//! says so).
//!
//! ```text
//!   seed ─▶ Rng ─▶ World: event queue (virtual time)
//!                   ├─ SimNode × R: PartitionCore + Log<SimFs> + clock + disk latency
//!                   ├─ Net: per-message delay / drop / duplicate, partitions
//!                   ├─ clients: kv (history) and bank (transfers, totals)
//!                   └─ faults: crash, restart, partition, heal, fsync failure,
//!                      crash right after a promise or an answer ("buggify")
//!   end: heal, drain, read back ─▶ Checker: agreement, equal states,
//!        bank total, linearizable kv history ─▶ Outcome
//! ```
//!
//! Must not: import tokio or quinn, read the wall clock or OS randomness
//! inside a run (the only wall clock read is the linearizability check's
//! time bound, which cannot change a run's trace), or iterate a hash map
//! where order matters.

mod check;
pub mod cli;
mod client;
mod faults;
mod net;
mod node;
mod requests;
mod workload;
mod world;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_2pc;
#[cfg(test)]
mod tests_core;

use crate::consensus;
use crate::lincheck::Operation;
use crate::lincheck::{OhmKvInput, OhmKvOutput};
use crate::partition::ProcRuntime;
use crate::types::NodeId;
use crate::wasm::WasmRuntime;
use std::collections::BTreeSet;
use std::sync::Arc;

/// One run's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub replicas: usize,
    /// Events processed while faults are injected (then the run heals and
    /// drains).
    pub steps: u64,
    pub faults: bool,
    /// Log bytes after which a replica snapshots (small, so snapshots and
    /// catch-up from them happen often).
    pub snapshot_log_bytes: u64,
}

impl SimConfig {
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            replicas: 3,
            steps: 20_000,
            faults: true,
            snapshot_log_bytes: 32 << 10,
        }
    }
}

/// What runs share: the Wasm engine (compiled modules are cached across
/// runs), the example modules, and the group's timings.
pub struct Shared {
    pub runtime: Arc<dyn ProcRuntime>,
    pub kv: Arc<[u8]>,
    pub bank: Arc<[u8]>,
    /// The words of the bank module's statements (the tables a
    /// multi-partition bank call needs).
    pub bank_words: Vec<String>,
    /// Procedures that run as multi-partition transactions.
    pub multi: BTreeSet<String>,
    /// Planted bugs (tests only).
    #[cfg(test)]
    pub bugs: consensus::Bugs,
}

impl Shared {
    /// Compiles the kv and bank modules (once per process).
    pub fn new(kv: Vec<u8>, bank: Vec<u8>) -> Result<Shared, String> {
        let runtime = WasmRuntime::new().map_err(|e| e.to_string())?;
        runtime
            .compile_cached("kv", &kv)
            .map_err(|e| format!("the kv module: {e}"))?;
        let compiled = runtime
            .compile_cached("bank", &bank)
            .map_err(|e| format!("the bank module: {e}"))?;
        let desc = compiled.desc();
        let bank_words = desc
            .statements
            .iter()
            .flat_map(|s| crate::txn::sqltext::words(&s.sql))
            .collect();
        let multi = desc
            .procedures
            .iter()
            .filter(|p| p.partition.is_none())
            .map(|p| p.name.clone())
            .collect();
        Ok(Shared {
            runtime: Arc::new(runtime),
            kv: Arc::from(kv),
            bank: Arc::from(bank),
            bank_words,
            multi,
            #[cfg(test)]
            bugs: consensus::Bugs::default(),
        })
    }

    /// The group's configuration for replica `id` of `replicas`: fast
    /// timings (10 ms heartbeats, 200 ms elections and leases) and clocks
    /// that may drift 50% (the simulator's clocks do, up to that bound; a
    /// wide bound makes a lease that mishandles it fail often, and the
    /// lease's formula holds for any bound).
    pub fn consensus(&self, id: NodeId, replicas: usize) -> consensus::Config {
        let members = (1..=replicas as u32).map(NodeId).collect();
        let mut c = consensus::Config::new(id, members);
        c.heartbeat_us = 10_000;
        c.election_timeout_us = 200_000;
        c.lease_us = 200_000;
        c.clock_drift_ppm = 500_000;
        #[cfg(test)]
        {
            c.bugs = self.bugs;
        }
        c
    }
}

/// Counts of what happened in a run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub steps: u64,
    pub virtual_ms: u64,
    pub starts: u64,
    pub crashes: u64,
    /// Writes a crash took back because they were not yet synced, writes it
    /// tore, and bytes it garbled at the torn end.
    pub unsynced_writes_lost: u64,
    pub torn_writes: u64,
    pub garbled_bytes: u64,
    pub storage_failures: u64,
    pub partitions: u64,
    /// Leadership handed over on request (the leader asked to transfer).
    pub transfers: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub rebuilds: u64,
    /// Times the tenant's part was lent out (see `partition::lease`).
    pub leases: u64,
    pub snapshots_written: u64,
    /// Snapshots whose file could not be written aside (an injected
    /// fsync failure): given up, tried again later, no crash.
    pub snapshots_failed: u64,
    pub snapshots_sent: u64,
    pub retries: u64,
    pub kv_ok: u64,
    pub kv_unknown: u64,
    pub bank_ok: u64,
    pub bank_aborted: u64,
    /// Runs whose kv history the linearizability check could not finish
    /// within its time bound (not a violation, but not checked either).
    pub lincheck_unknown: u64,
    /// Wall-clock milliseconds spent checking histories.
    pub lincheck_ms: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.virtual_ms += o.virtual_ms;
        self.starts += o.starts;
        self.crashes += o.crashes;
        self.unsynced_writes_lost += o.unsynced_writes_lost;
        self.torn_writes += o.torn_writes;
        self.garbled_bytes += o.garbled_bytes;
        self.storage_failures += o.storage_failures;
        self.partitions += o.partitions;
        self.transfers += o.transfers;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.rebuilds += o.rebuilds;
        self.leases += o.leases;
        self.snapshots_written += o.snapshots_written;
        self.snapshots_failed += o.snapshots_failed;
        self.snapshots_sent += o.snapshots_sent;
        self.retries += o.retries;
        self.kv_ok += o.kv_ok;
        self.kv_unknown += o.kv_unknown;
        self.bank_ok += o.bank_ok;
        self.bank_aborted += o.bank_aborted;
        self.lincheck_unknown += o.lincheck_unknown;
        self.lincheck_ms += o.lincheck_ms;
    }
}

/// What a run found.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    /// Empty when every check held.
    pub violations: Vec<String>,
    /// A hash of every event in order: equal for equal runs.
    pub trace_hash: u64,
    pub stats: Stats,
    /// The kv history (for inspecting a failure).
    pub history: Vec<Operation<OhmKvInput, OhmKvOutput>>,
}

/// Runs one seed.
pub fn run(cfg: SimConfig, shared: &Shared) -> Outcome {
    world::World::new(cfg, shared).run()
}
