//! Start-up: every partition's state rebuilt from its last snapshot and the
//! log after it.
//!
//! A coordinator transaction is applied only if every partition has it: in
//! its log, or already inside its snapshot (`mp_txn_max`). One that some
//! partition lacks was never acknowledged (the coordinator answers only
//! after all partitions logged it); it is skipped everywhere, and the
//! partitions that logged it take a snapshot at once, so the skipped
//! record leaves their log before any later transaction could be confused
//! with it.

use crate::catalog::PartitionId;
use crate::durability::{
    decode_entry, snapshot, DiskLog, Entry, LoadedSnapshot, Log, LogOptions, Storage,
};
use crate::partition::{ModuleCache, PartitionState, TenantPart};
use crate::types::Slot;
use crate::wasm::{ProcHost, WasmRuntime};
use anyhow::{anyhow, Context};
use std::collections::BTreeSet;

/// Payload bytes read from a log at a time.
const READ_BYTES: usize = 4 << 20;

pub struct Recovered {
    pub states: Vec<PartitionState>,
    pub logs: Vec<DiskLog>,
    /// The highest coordinator transaction id seen anywhere.
    pub last_txn: u64,
    pub cache: ModuleCache,
    /// Partitions whose log holds a skipped (never acknowledged) record.
    pub needs_snapshot: Vec<bool>,
}

pub fn recover(
    dir: &cap_std::fs::Dir,
    partitions: u32,
    runtime: &WasmRuntime,
    opts: &LogOptions,
) -> anyhow::Result<Recovered> {
    let mut opened = Vec::new();
    for p in 0..partitions {
        let name = format!("p{p}");
        dir.create_dir_all(&name)
            .with_context(|| format!("creating {name}/ in the data directory"))?;
        let sub = dir
            .open_dir(&name)
            .with_context(|| format!("opening {name}/ in the data directory"))?;
        let (mut log, found) =
            Log::open_dir(sub, opts.clone()).map_err(|e| anyhow!("partition {p}: {e}"))?;
        if let Some(t) = &found.torn_tail {
            eprintln!(
                "ohm: partition {p}: cut a torn record at the end of {}/{} at offset {} ({} bytes): \
                 it was being written when the node stopped and was never acknowledged",
                name, t.file, t.offset, t.bytes_dropped
            );
        }
        let rec = load(&mut log).map_err(|e| anyhow!("partition {p}: {e}"))?;
        opened.push((log, rec));
    }
    let logged: Vec<BTreeSet<u64>> = opened
        .iter()
        .map(|(_, r)| {
            r.entries
                .iter()
                .filter_map(|(_, e)| match e {
                    Entry::Multi { txn, .. } => Some(*txn),
                    Entry::Commit { .. } => None,
                })
                .collect()
        })
        .collect();
    let covered: Vec<u64> = opened
        .iter()
        .map(|(_, r)| r.snapshot.as_ref().map_or(0, |s| s.mp_txn_max))
        .collect();
    let complete =
        |txn: u64| (0..logged.len()).all(|p| logged[p].contains(&txn) || covered[p] >= txn);
    let last_txn = logged
        .iter()
        .filter_map(|s| s.last().copied())
        .chain(covered.iter().copied())
        .max()
        .unwrap_or(0);

    let mut out = Recovered {
        states: Vec::new(),
        logs: Vec::new(),
        last_txn,
        cache: ModuleCache::default(),
        needs_snapshot: vec![false; partitions as usize],
    };
    for (p, (log, rec)) in opened.into_iter().enumerate() {
        let state = replay(
            p as u32,
            rec,
            runtime,
            &mut out.cache,
            &complete,
            &mut out.needs_snapshot[p],
        )?;
        out.states.push(state);
        out.logs.push(log);
    }
    Ok(out)
}

/// What one partition's log holds: its snapshot and the entries after it.
struct LogRecovered {
    snapshot: Option<LoadedSnapshot>,
    entries: Vec<(Slot, Entry)>,
}

fn load(log: &mut DiskLog) -> anyhow::Result<LogRecovered> {
    let snapshot = match log.read_snapshot()? {
        Some((_, bytes)) => Some(snapshot::decode(&bytes)?),
        None => None,
    };
    let mut entries = Vec::new();
    let mut from = log.snapshot_meta().map_or(Slot(0), |m| m.slot).next();
    while from <= log.last_slot() {
        for r in log.read(from, READ_BYTES)? {
            from = r.slot.next();
            let entry = decode_entry(&r.payload).map_err(|e| anyhow!("slot {}: {e}", r.slot))?;
            entries.push((r.slot, entry));
        }
    }
    Ok(LogRecovered { snapshot, entries })
}

fn replay(
    p: u32,
    rec: LogRecovered,
    runtime: &WasmRuntime,
    cache: &mut ModuleCache,
    complete: &dyn Fn(u64) -> bool,
    skipped_any: &mut bool,
) -> anyhow::Result<PartitionState> {
    let mut state = PartitionState::new(PartitionId(p), runtime.clone());
    if let Some(snap) = rec.snapshot {
        state.last_lsn = snap.slot.0;
        state.mp_txn_max = snap.mp_txn_max;
        for t in snap.tenants {
            let mut part = TenantPart {
                engine: t.engine,
                procs: ProcHost::new(runtime.clone()),
                modules: Vec::new(),
            };
            for (name, wasm) in t.modules {
                let compiled = cache
                    .compile(runtime, &name, &wasm)
                    .map_err(|e| anyhow!("partition {p}: snapshot module {name}: {e}"))?;
                part.procs
                    .deploy(&mut part.engine, compiled)
                    .map_err(|e| anyhow!("partition {p}: snapshot module {name}: {e}"))?;
                part.remember_module(&name, wasm.into());
            }
            state.insert_tenant(t.tenant, part);
        }
    }
    for (slot, entry) in rec.entries {
        state.last_lsn = slot.0;
        if let Entry::Multi { txn, .. } = &entry {
            if !complete(*txn) {
                eprintln!(
                    "ohm: partition {p}: skipping coordinator transaction {txn} at slot {}: \
                     not every partition logged it, so it was never acknowledged",
                    slot.0
                );
                *skipped_any = true;
                continue;
            }
        }
        state
            .replay(&entry, cache)
            .map_err(|e| anyhow!("partition {p}: slot {}: {e}", slot.0))?;
    }
    Ok(state)
}
