//! A partition replica's start and rebuild: its state loaded from the
//! newest snapshot and the records after it, through `Storage`; and how a
//! batch of writes reaches storage, in the order consensus requires.

use super::core::{CoreConfig, Now, PartitionCore, Ready, WriteBatch};
use super::decide::{Decisions, Gate};
use super::hold::Hold;
use super::procs::ProcRuntime;
use super::replies::Replies;
use super::state::{PartitionState, ReplayError};
use crate::consensus::Paxos;
use crate::durability::{self, DurabilityError, LogRecord, SnapshotMeta, Storage, Vote};
use crate::rng;
use crate::types::Slot;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Payload bytes read from storage at once.
const READ_BYTES_MAX: usize = 4 << 20;
/// Write batches a group of one persists at start-up before its whole log
/// must be chosen (an election, its no-op, and what applying it asks for).
const SETTLE_ROUNDS_MAX: usize = 8;

fn storage_err(e: DurabilityError) -> ReplayError {
    ReplayError::Storage(e.to_string())
}

/// The state in `storage`'s newest snapshot (or an empty one), where the
/// log continues from, and the snapshot's size in bytes.
fn load_snapshot(
    cfg: &CoreConfig,
    runtime: &Arc<dyn ProcRuntime>,
    skipped: &Arc<BTreeSet<u64>>,
    storage: &mut dyn Storage,
) -> Result<(PartitionState, SnapshotMeta, u64), ReplayError> {
    let (mut state, meta, size) = match storage.read_snapshot().map_err(storage_err)? {
        Some((meta, bytes)) => {
            let snap = durability::snapshot::decode(&bytes).map_err(storage_err)?;
            let s = PartitionState::from_snapshot(cfg.partition, runtime.clone(), snap)?;
            (s, meta, bytes.len() as u64)
        }
        None => (
            PartitionState::new(cfg.partition, runtime.clone()),
            SnapshotMeta::default(),
            0,
        ),
    };
    state.skipped = skipped.clone();
    Ok((state, meta, size))
}

impl<T> PartitionCore<T> {
    /// Recovers a replica from its storage: the snapshot, then every record
    /// after it (kept in memory until applied). A group of one elects
    /// itself and applies its whole log before this returns.
    pub fn recover(
        cfg: CoreConfig,
        runtime: Arc<dyn ProcRuntime>,
        storage: &mut dyn Storage,
        skipped: Arc<BTreeSet<u64>>,
        now: Now,
        seed: u64,
    ) -> Result<PartitionCore<T>, ReplayError> {
        let (state, meta, snapshot_bytes) = load_snapshot(&cfg, &runtime, &skipped, storage)?;
        let mut records = Vec::new();
        let mut next = meta.slot.next();
        while next <= storage.last_slot() {
            let recs = storage.read(next, READ_BYTES_MAX).map_err(storage_err)?;
            let Some(last) = recs.last().map(|r| r.slot) else {
                break;
            };
            records.extend(recs);
            next = last.next();
        }
        // Accepting in a ballot promises it: a record of a ballot above the
        // durable vote means that vote's write was lost; restore it.
        let stored = storage.vote();
        let mut vote = stored;
        if let Some(top) = records.iter().map(|r| r.ballot).max() {
            vote.promised = vote.promised.max(top);
        }
        let mut paxos = Paxos::new(cfg.consensus.clone(), vote, meta, now.mono_us, seed)
            .map_err(|e| ReplayError::Storage(e.to_string()))?;
        for r in records {
            paxos.restore(r);
        }
        let mut core = PartitionCore {
            paxos,
            runtime,
            skipped,
            state: Some(Box::new(state)),
            applied: meta.slot,
            now,
            txn_last_us: 0,
            txn_seed: rng::mix(seed ^ u64::from(cfg.partition.0)),
            leading: false,
            waiting: Replies::default(),
            queued: VecDeque::new(),
            hold: Hold::Free,
            dec: Decisions::default(),
            log_bytes: storage.bytes_since_snapshot(),
            staging: None,
            snapshot_retry_at_us: 0,
            building: None,
            snapshot_bytes,
            batches: VecDeque::new(),
            next_seq: 1,
            cur_paxos_seq: None,
            cur_local: None,
            needs_rebuild: false,
            disk_full: None,
            snapshot_asked: false,
            fatal: None,
            out: Ready::default(),
            scratch: Vec::new(),
            part_gen: 0,
            ran_waiting: VecDeque::new(),
            homecoming: Vec::new(),
            cfg,
        };
        if vote != stored {
            core.raise_vote(vote);
        }
        if core.cfg.consensus.members.len() == 1 {
            core.settle_alone(storage)?;
        }
        Ok(core)
    }

    /// Persists a vote restored from the records, with the first batch.
    fn raise_vote(&mut self, vote: Vote) {
        self.out.write.get_or_insert_with(WriteBatch::default).vote = Some(vote);
    }

    /// A group of one: lead, persist, apply, until the log is all chosen.
    fn settle_alone(&mut self, storage: &mut dyn Storage) -> Result<(), ReplayError> {
        let now = self.now;
        self.tick(now);
        for _ in 0..SETTLE_ROUNDS_MAX {
            let ready = self.ready();
            if let Some(f) = ready.fatal {
                return Err(ReplayError::Apply(f));
            }
            if let Some(batch) = &ready.write {
                persist(storage, batch).map_err(storage_err)?;
                self.persisted(batch.seq, storage.bytes_since_snapshot());
            }
            let p = &self.paxos;
            if self.leading && p.chosen() == p.last_slot() && self.applied == p.chosen() {
                return Ok(());
            }
        }
        Err(ReplayError::Storage(format!(
            "a replica alone in its group did not settle its log in {SETTLE_ROUNDS_MAX} rounds \
             (chosen {}, last {})",
            self.paxos.chosen(),
            self.paxos.last_slot()
        )))
    }

    /// After `Ready::rebuild`: the state is rebuilt from the snapshot and
    /// the chosen records in `storage`.
    pub fn rebuild(&mut self, storage: &mut dyn Storage) {
        if self.state.is_none() {
            return; // lent: rebuilt when it comes back
        }
        match self.rebuild_from(storage) {
            Ok(()) => {
                self.needs_rebuild = false;
                self.new_part_generation();
                self.after_consensus();
            }
            Err(e) => self.stop(format!("rebuilding its state from the log: {e}")),
        }
    }

    fn rebuild_from(&mut self, storage: &mut dyn Storage) -> Result<(), ReplayError> {
        let (mut state, meta, _) = load_snapshot(&self.cfg, &self.runtime, &self.skipped, storage)?;
        let chosen = self.paxos.chosen();
        // First the outcomes logged after the snapshot (a share's is the
        // first with its id after it), then the chosen records in order.
        let mut outcomes = BTreeMap::new();
        let last = self.paxos.last_slot();
        each_record(&self.paxos, storage, meta.slot, last, |r| {
            if let Some((txn, commit)) = durability::decision(&r.payload) {
                outcomes.insert((txn, r.slot), commit);
            }
            Ok(true)
        })?;
        let logged_after = |txn: u64, share: Slot| {
            outcomes
                .range((txn, share)..=(txn, Slot(u64::MAX)))
                .next()
                .map(|(_, c)| *c)
        };
        let mut applied = meta.slot;
        let mut stalled = None;
        each_record(&self.paxos, storage, meta.slot, chosen, |r| {
            match self.gate(r, |txn| logged_after(txn, r.slot)) {
                Gate::Stall(txn) => {
                    stalled = Some(txn);
                    return Ok(false);
                }
                Gate::Skip(txn) => state.mp_txn_max = state.mp_txn_max.max(txn),
                Gate::Apply => apply_record(&mut state, r)?,
            }
            applied = r.slot;
            Ok(true)
        })?;
        self.dec.rebuilt(stalled);
        self.abandon_snapshot();
        self.state = Some(Box::new(state));
        self.applied = applied;
        self.paxos.applied(applied);
        Ok(())
    }
}

/// Calls `f` on each record after `after` up to `to`, in order, from
/// memory if recent (and not yet written, it can only be there), else
/// from the log, until `f` says false.
fn each_record(
    paxos: &Paxos,
    storage: &mut dyn Storage,
    after: Slot,
    to: Slot,
    mut f: impl FnMut(&LogRecord) -> Result<bool, ReplayError>,
) -> Result<(), ReplayError> {
    let mut next = after.next();
    while next <= to {
        if let Some(r) = paxos.record(next) {
            if !f(r)? {
                return Ok(());
            }
            next = next.next();
            continue;
        }
        let recs = storage.read(next, READ_BYTES_MAX).map_err(storage_err)?;
        if recs.first().map(|r| r.slot) != Some(next) {
            return Err(ReplayError::Storage(format!(
                "slot {next} is in this replica's log but neither in memory nor in storage"
            )));
        }
        for r in recs.into_iter().take_while(|r| r.slot <= to) {
            if !f(&r)? {
                return Ok(());
            }
            next = r.slot.next();
        }
    }
    Ok(())
}

/// Applies one record's payload (an empty one is a no-op).
pub(super) fn apply_record(state: &mut PartitionState, r: &LogRecord) -> Result<(), ReplayError> {
    if r.payload.is_empty() {
        return Ok(());
    }
    let entry = durability::decode_entry(&r.payload).map_err(ReplayError::Decode)?;
    state.replay(&entry)
}

/// Persists a batch on `storage` in the required order and syncs.
pub fn persist(storage: &mut dyn Storage, b: &WriteBatch) -> Result<(), DurabilityError> {
    write_batch(storage, b)?;
    storage.sync()
}

/// Writes a batch in the required order (vote, truncation, snapshot,
/// records); durable once `sync` returns.
pub fn write_batch<S: Storage + ?Sized>(
    storage: &mut S,
    b: &WriteBatch,
) -> Result<(), DurabilityError> {
    if let Some(v) = b.vote {
        storage.set_vote(v)?;
    }
    if let Some(t) = b.truncate_after {
        if t < storage.last_slot() {
            storage.truncate_after(t)?;
            // A snapshot is durable at once: the cut must be too, or a
            // crash could leave records of an older history after it.
            if b.snapshot.is_some() || b.install_staged.is_some() {
                storage.sync()?;
            }
        }
    }
    if let Some((meta, bytes)) = &b.snapshot {
        storage.install_snapshot(*meta, bytes)?;
    }
    if let Some(meta) = b.install_staged {
        storage.install_staged(meta)?;
    }

    for r in &b.records {
        storage.append(r)?;
    }
    Ok(())
}
