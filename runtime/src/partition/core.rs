//! `PartitionCore`: one replica of one partition, sans-IO. It owns the
//! partition's state and its replica's consensus core, runs calls when it
//! leads, applies chosen records when it follows, holds replies until what
//! they depend on is chosen, lends its state to the node's coordinator,
//! and snapshots. The shell (the node's executor and log writer threads,
//! or the simulator) feeds it and acts on its `Ready`.
//!
//! ```text
//!  call(token, ..) hold/release/resume   tick(now) step(from, msg)
//!  persisted(seq, log bytes) read_done/snapshot_read  rebuild(storage)
//!                   │
//!          ┌────────▼────────┐  ready() ─▶ Ready { write: batch to persist (vote,
//!          │ PartitionCore   │              truncation, snapshot, records, then
//!          │  state + Paxos  │              messages to send), messages, replies,
//!          └─────────────────┘              lent state, held_chosen, reads,
//!                                           rebuild, fatal }
//! ```
//!
//! Must not: read a clock or draw randomness (both come in: `Now` and a
//! seed), do I/O except through the `Storage` handed to `recover` and
//! `rebuild`, spawn, or name wire types.

use super::error::CallError;
use super::exec::run_call;
use super::procs::ProcRuntime;
use super::replies::{CallResult, Replies};
use super::state::{PartitionState, ReplayError};
use crate::catalog::PartitionId;
use crate::consensus::{self, Message, Paxos};
use crate::durability::{self, LogRecord, SnapshotMeta, Storage, Vote};
use crate::rng;
use crate::types::{NodeId, Slot, TenantId, Value};
use crate::wasm::TxnContext;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// Calls a core keeps waiting to run (while held, or while too much is
/// unchosen); beyond it a call is refused as overloaded.
pub const CALLS_WAITING_MAX: usize = 65_536;
/// Payload bytes read from storage at once when rebuilding.
const READ_BYTES_MAX: usize = 4 << 20;

/// The time as the shell read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Now {
    /// A monotonic clock (consensus timers, leases).
    pub mono_us: u64,
    /// Microseconds since the Unix epoch (transaction timestamps).
    pub wall_us: i64,
}

/// How a replica of a partition runs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub partition: PartitionId,
    pub consensus: consensus::Config,
    /// Log bytes after which a snapshot is taken.
    pub snapshot_log_bytes: u64,
}

/// A batch to make durable, in this order, then report with `persisted`.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub seq: u64,
    pub vote: Option<Vote>,
    /// Drop every record after this slot (if the log goes past it).
    pub truncate_after: Option<Slot>,
    /// Install this snapshot (received from the leader, or taken here).
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    pub records: Vec<LogRecord>,
    /// Send once all of the above is durable.
    pub then_send: Vec<(NodeId, Message)>,
}

impl WriteBatch {
    pub fn has_writes(&self) -> bool {
        self.vote.is_some()
            || self.truncate_after.is_some()
            || self.snapshot.is_some()
            || !self.records.is_empty()
    }
}

/// What the shell must do.
pub struct Ready<T> {
    pub write: Option<WriteBatch>,
    /// Send now.
    pub messages: Vec<(NodeId, Message)>,
    /// Answer these calls (and holds refused).
    pub replies: Vec<(T, CallResult)>,
    /// The state, lent to whoever asked with `hold(token)`.
    pub lent: Option<(T, Box<PartitionState>)>,
    /// The entry handed back with `release(token, ..)` is chosen (or there
    /// was none and everything the holder saw is).
    pub held_chosen: Option<T>,
    /// Read records from this slot on for that peer (`read_done`).
    pub reads: Vec<(NodeId, Slot)>,
    /// Read the newest snapshot for that peer (`snapshot_read`).
    pub snapshot_reads: Vec<NodeId>,
    /// Leadership was lost: call `rebuild` with the storage.
    pub rebuild: bool,
    /// The replica cannot go on (its log and state disagree, or storage
    /// failed): stop it. Every later input is ignored.
    pub fatal: Option<String>,
}

impl<T> Default for Ready<T> {
    fn default() -> Self {
        Ready {
            write: None,
            messages: Vec::new(),
            replies: Vec::new(),
            lent: None,
            held_chosen: None,
            reads: Vec::new(),
            snapshot_reads: Vec::new(),
            rebuild: false,
            fatal: None,
        }
    }
}

/// A call not yet run.
struct Queued<T> {
    token: T,
    tenant: TenantId,
    procedure: String,
    args: Vec<Value>,
}

/// The coordinator's hold on this partition.
enum Hold<T> {
    Free,
    /// Asked for; lent once the state is here.
    Asked(T),
    /// The state is out.
    Lent,
    /// The state is back; `dep` (the holder's entry, or the last slot it
    /// saw) must be chosen before `token` hears.
    Back {
        token: T,
        dep: Slot,
    },
    /// Told; calls wait for `resume`.
    Done,
}

/// One partition replica. `T` identifies a caller (a reply callback in
/// the node, an operation id in the simulator).
pub struct PartitionCore<T> {
    cfg: CoreConfig,
    paxos: Paxos,
    runtime: Arc<dyn ProcRuntime>,
    state: Option<Box<PartitionState>>,
    /// The last slot the state reflects.
    applied: Slot,
    now: Now,
    txn_last_us: i64,
    txn_seed: u64,
    leading: bool,
    waiting: Replies<T>,
    queued: VecDeque<Queued<T>>,
    hold: Hold<T>,
    /// Log bytes after the newest snapshot, as the shell last reported.
    log_bytes: u64,
    /// A snapshot encoded at a slot not yet chosen.
    snapshot_pending: Option<(SnapshotMeta, Vec<u8>)>,
    /// Batches handed out: (our seq, consensus seq, local snapshot).
    batches: VecDeque<(u64, Option<u64>, Option<SnapshotMeta>)>,
    next_seq: u64,
    /// The consensus batch and local snapshot in the batch being built.
    cur_paxos_seq: Option<u64>,
    cur_local: Option<SnapshotMeta>,
    needs_rebuild: bool,
    /// Snapshot at the next chance, whatever the log's size.
    snapshot_asked: bool,
    fatal: Option<String>,
    out: Ready<T>,
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
        let st = |e: durability::DurabilityError| ReplayError::Storage(e.to_string());
        let (state, meta) = match storage.read_snapshot().map_err(st)? {
            Some((meta, bytes)) => {
                let snap = durability::snapshot::decode(&bytes).map_err(st)?;
                let s = PartitionState::from_snapshot(cfg.partition, runtime.clone(), snap)?;
                (s, meta)
            }
            None => (
                PartitionState::new(cfg.partition, runtime.clone()),
                SnapshotMeta::default(),
            ),
        };
        let mut state = Box::new(state);
        state.skipped = skipped;
        let mut records = Vec::new();
        let mut next = meta.slot.next();
        while next <= storage.last_slot() {
            let recs = storage.read(next, READ_BYTES_MAX).map_err(st)?;
            let Some(last) = recs.last().map(|r| r.slot) else {
                break;
            };
            records.extend(recs);
            next = last.next();
        }
        // Accepting in a ballot promises it: a record of a ballot above the
        // durable vote means that vote's write was lost; restore it.
        let mut vote = storage.vote();
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
            state: Some(state),
            applied: meta.slot,
            now,
            txn_last_us: 0,
            txn_seed: rng::mix(seed ^ u64::from(cfg.partition.0)),
            leading: false,
            waiting: Replies::default(),
            queued: VecDeque::new(),
            hold: Hold::Free,
            log_bytes: storage.bytes_since_snapshot(),
            snapshot_pending: None,
            batches: VecDeque::new(),
            next_seq: 1,
            cur_paxos_seq: None,
            cur_local: None,
            needs_rebuild: false,
            snapshot_asked: false,
            fatal: None,
            out: Ready::default(),
            cfg,
        };
        if vote != storage.vote() {
            core.paxos_raise_vote(vote);
        }
        if core.cfg.consensus.members.len() == 1 {
            core.settle_alone(storage)?;
        }
        Ok(core)
    }

    fn paxos_raise_vote(&mut self, vote: Vote) {
        // Re-persisted with the first batch.
        self.out.write.get_or_insert_with(WriteBatch::default).vote = Some(vote);
    }

    /// A group of one: lead, persist, apply, until the log is all chosen.
    fn settle_alone(&mut self, storage: &mut dyn Storage) -> Result<(), ReplayError> {
        let now = self.now;
        self.tick(now);
        for _ in 0..8 {
            let ready = self.ready();
            if let Some(f) = ready.fatal {
                return Err(ReplayError::Apply(f));
            }
            let Some(batch) = ready.write else { break };
            persist(storage, &batch).map_err(|e| ReplayError::Storage(e.to_string()))?;
            self.persisted(batch.seq, storage.bytes_since_snapshot());
            if self.paxos.chosen() == self.paxos.last_slot() && self.leading {
                break;
            }
        }
        let ready = self.ready();
        if let Some(f) = ready.fatal {
            return Err(ReplayError::Apply(f));
        }
        if let Some(batch) = ready.write {
            persist(storage, &batch).map_err(|e| ReplayError::Storage(e.to_string()))?;
            self.persisted(batch.seq, storage.bytes_since_snapshot());
        }
        Ok(())
    }

    // ---- inputs ------------------------------------------------------------

    pub fn tick(&mut self, now: Now) {
        self.now.mono_us = self.now.mono_us.max(now.mono_us);
        self.now.wall_us = now.wall_us;
        self.paxos.tick(self.now.mono_us);
        self.after_consensus();
    }

    pub fn step(&mut self, from: NodeId, msg: Message) {
        if self.fatal.is_some() {
            return;
        }
        self.paxos.step(from, msg);
        self.after_consensus();
    }

    /// Batch `seq` (and all before it) is durable; the log now holds
    /// `log_bytes` after its newest snapshot.
    pub fn persisted(&mut self, seq: u64, log_bytes: u64) {
        self.log_bytes = log_bytes;
        while self.batches.front().is_some_and(|b| b.0 <= seq) {
            let Some((_, paxos_seq, local)) = self.batches.pop_front() else {
                break;
            };
            if let Some(p) = paxos_seq {
                self.paxos.persisted(p);
            }
            if let Some(meta) = local {
                self.paxos.compacted(meta);
            }
        }
        self.after_consensus();
    }

    pub fn read_done(&mut self, to: NodeId, from: Slot, records: Vec<LogRecord>) {
        self.paxos.read_done(to, from, records);
    }

    pub fn snapshot_read(&mut self, to: NodeId, meta: SnapshotMeta, bytes: Vec<u8>) {
        self.paxos.snapshot_read(to, meta, bytes);
    }

    /// A single-partition call: runs now if this replica leads and is
    /// free, else waits (or is refused).
    pub fn call(&mut self, token: T, tenant: TenantId, procedure: String, args: Vec<Value>) {
        let q = Queued {
            token,
            tenant,
            procedure,
            args,
        };
        if !matches!(self.hold, Hold::Free) || !self.queued.is_empty() || !self.can_run() {
            if !self.leading {
                let leader = self.paxos.leader();
                return self
                    .out
                    .replies
                    .push((q.token, Err(CallError::NotLeader { leader })));
            }
            if self.queued.len() >= CALLS_WAITING_MAX {
                let e = CallError::Overloaded(format!("{CALLS_WAITING_MAX} calls are waiting"));
                return self.out.replies.push((q.token, Err(e)));
            }
            return self.queued.push_back(q);
        }
        self.run(q);
    }

    /// The coordinator asks for the state: lent (in `Ready::lent`) after
    /// the calls that came before; calls after it wait until `resume`.
    pub fn hold(&mut self, token: T) {
        if !self.leading || !matches!(self.hold, Hold::Free) {
            let leader = self.paxos.leader();
            return self
                .out
                .replies
                .push((token, Err(CallError::NotLeader { leader })));
        }
        self.hold = Hold::Asked(token);
        self.lend();
    }

    /// The state comes back, with this partition's share of the holder's
    /// transaction (an encoded entry, already applied to the state), if
    /// any. `token` hears (`held_chosen`) once it, or whatever the holder
    /// saw, is chosen.
    pub fn release(&mut self, token: T, state: Box<PartitionState>, entry: Option<Vec<u8>>) {
        assert!(
            matches!(self.hold, Hold::Lent),
            "release without a lent state"
        );
        self.state = Some(state);
        let dep = match entry {
            Some(payload) => match self.paxos.propose(Arc::from(payload)) {
                Ok(slot) => {
                    self.applied = slot;
                    slot
                }
                Err(e) => {
                    // Lost leadership while lent: the state holds an entry
                    // that will never be logged; rebuild it.
                    self.needs_rebuild = true;
                    let err = CallError::Overloaded(e.to_string());
                    self.out.replies.push((token, Err(err)));
                    self.hold = Hold::Done;
                    return self.after_consensus();
                }
            },
            None => self.applied,
        };
        self.hold = Hold::Back { token, dep };
        self.after_consensus();
    }

    /// The holder is done: waiting calls run.
    pub fn resume(&mut self) {
        self.hold = Hold::Free;
        self.run_queued();
    }

    /// Takes a snapshot of what is applied as soon as it can, whatever the
    /// log's size (written once its slot is chosen).
    pub fn request_snapshot(&mut self) {
        self.snapshot_asked = true;
        self.after_consensus();
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
                self.after_consensus();
            }
            Err(e) => self.fail(format!("rebuilding after losing leadership: {e}")),
        }
    }

    fn rebuild_from(&mut self, storage: &mut dyn Storage) -> Result<(), ReplayError> {
        let st = |e: durability::DurabilityError| ReplayError::Storage(e.to_string());
        let skipped = self
            .state
            .as_ref()
            .map(|s| s.skipped.clone())
            .unwrap_or_default();
        let (mut state, meta) = match storage.read_snapshot().map_err(st)? {
            Some((meta, bytes)) => {
                let snap = durability::snapshot::decode(&bytes).map_err(st)?;
                let s =
                    PartitionState::from_snapshot(self.cfg.partition, self.runtime.clone(), snap)?;
                (s, meta)
            }
            None => (
                PartitionState::new(self.cfg.partition, self.runtime.clone()),
                SnapshotMeta::default(),
            ),
        };
        state.skipped = skipped;
        let chosen = self.paxos.chosen();
        let mut next = meta.slot.next();
        while next <= chosen {
            // In memory if recent (and not yet written, it can only be
            // there); else from the log.
            if let Some(r) = self.paxos.record(next) {
                apply_record(&mut state, r)?;
                next = next.next();
                continue;
            }
            let recs = storage.read(next, READ_BYTES_MAX).map_err(st)?;
            if recs.first().map(|r| r.slot) != Some(next) {
                return Err(ReplayError::Storage(format!(
                    "slot {next} is chosen but neither in memory nor in the log"
                )));
            }
            for r in recs.into_iter().take_while(|r| r.slot <= chosen) {
                apply_record(&mut state, &r)?;
                next = r.slot.next();
            }
        }
        self.state = Some(Box::new(state));
        self.applied = chosen;
        self.paxos.applied(chosen);
        Ok(())
    }

    // ---- outputs -----------------------------------------------------------

    /// What to do since the last call.
    pub fn ready(&mut self) -> Ready<T> {
        // Acting on one consensus Ready (applying, running waiting calls)
        // can make another; a few rounds gather them all.
        for _ in 0..4 {
            if self.fatal.is_some() {
                break;
            }
            let r = self.paxos.ready();
            self.take_consensus(r);
            self.after_consensus();
            if !self.paxos.has_ready() {
                break;
            }
        }
        if let Some(batch) = &mut self.out.write {
            // A snapshot in the batch covers the records up to its slot.
            if let Some((meta, _)) = &batch.snapshot {
                let covered = meta.slot;
                batch.records.retain(|r| r.slot > covered);
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            batch.seq = seq;
            let entry = (seq, self.cur_paxos_seq.take(), self.cur_local.take());
            self.batches.push_back(entry);
        }
        let mut out = std::mem::take(&mut self.out);
        out.fatal = self.fatal.clone();
        out.rebuild = self.needs_rebuild && self.state.is_some();
        out
    }

    // ---- queries -----------------------------------------------------------

    pub fn paxos(&self) -> &Paxos {
        &self.paxos
    }

    pub fn is_leader(&self) -> bool {
        self.leading
    }

    /// The state, unless it is lent.
    pub fn state(&self) -> Option<&PartitionState> {
        self.state.as_deref()
    }

    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// Calls waiting to run, and replies waiting to be released.
    pub fn backlog(&self) -> (usize, usize) {
        (self.queued.len(), self.waiting.len())
    }

    // ---- internals ---------------------------------------------------------

    fn can_run(&self) -> bool {
        self.leading
            && self.state.is_some()
            && !self.needs_rebuild
            && self.fatal.is_none()
            && self.paxos.can_propose()
    }

    fn run(&mut self, q: Queued<T>) {
        let txn = self.next_txn();
        let Some(state) = self.state.as_deref_mut() else {
            return self.queued.push_front(q);
        };
        let done = run_call(state, q.tenant, &q.procedure, &q.args, txn);
        let (dep, wrote) = match done.payload {
            Some(payload) => match self.paxos.propose(Arc::from(payload)) {
                Ok(slot) => (slot, true),
                Err(e) => {
                    // `can_run` checked leadership and room: unreachable
                    // unless the core's own rules changed under it.
                    return self.fail(format!("proposing a checked record failed: {e}"));
                }
            },
            None => (self.applied, false),
        };
        if wrote {
            self.applied = dep;
        }
        self.waiting
            .push(q.token, done.result, dep, self.now.mono_us, wrote);
    }

    fn run_queued(&mut self) {
        while matches!(self.hold, Hold::Free) && self.can_run() {
            let Some(q) = self.queued.pop_front() else {
                break;
            };
            self.run(q);
        }
        if matches!(self.hold, Hold::Asked(_)) {
            self.lend();
        }
    }

    /// Lends the state if a hold is asked and every call before it ran.
    fn lend(&mut self) {
        if !self.queued.is_empty() && self.can_run() {
            return self.run_queued();
        }
        if !matches!(self.hold, Hold::Asked(_)) || self.state.is_none() || self.needs_rebuild {
            return;
        }
        if let (Hold::Asked(token), Some(state)) = (
            std::mem::replace(&mut self.hold, Hold::Lent),
            self.state.take(),
        ) {
            self.out.lent = Some((token, state));
        }
    }

    /// Transaction context: the wall clock, never repeating or going back
    /// on this partition, and a seed from this replica's stream.
    fn next_txn(&mut self) -> TxnContext {
        self.txn_last_us = self.now.wall_us.max(self.txn_last_us + 1);
        self.txn_seed = self.txn_seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        TxnContext {
            timestamp_us: self.txn_last_us,
            seed: rng::mix(self.txn_seed),
        }
    }

    fn fail(&mut self, what: String) {
        if self.fatal.is_none() {
            self.fatal = Some(format!("partition {}: {what}", self.cfg.partition.0));
        }
    }

    /// Turns a consensus `Ready` into this core's outputs.
    fn take_consensus(&mut self, r: consensus::Ready) {
        if r.stepped_down {
            self.lose_leadership();
        }
        if let Some((meta, bytes)) = &r.snapshot {
            self.install_received(*meta, bytes);
            self.snapshot_pending = None;
        }
        self.out.messages.extend(r.messages);
        self.out.reads.extend(r.reads);
        self.out.snapshot_reads.extend(r.snapshot_reads);
        let has = r.vote.is_some()
            || r.truncate_after.is_some()
            || r.snapshot.is_some()
            || !r.records.is_empty()
            || !r.after_persist.is_empty();
        if !has {
            return;
        }
        let batch = self.out.write.get_or_insert_with(WriteBatch::default);
        if r.vote.is_some() {
            batch.vote = r.vote;
        }
        if let Some(t) = r.truncate_after {
            batch.records.retain(|x| x.slot <= t);
            batch.truncate_after = Some(batch.truncate_after.map_or(t, |b| b.min(t)));
        }
        if let Some(s) = r.snapshot {
            batch.records.retain(|x| x.slot > s.0.slot);
            batch.snapshot = Some(s);
        }
        batch.records.extend(r.records);
        batch.then_send.extend(r.after_persist);
        if r.persist_seq.is_some() {
            self.cur_paxos_seq = self.cur_paxos_seq.max(r.persist_seq);
        }
    }

    /// A snapshot from the leader replaces the state.
    fn install_received(&mut self, meta: SnapshotMeta, bytes: &[u8]) {
        let skipped = self
            .state
            .as_ref()
            .map(|s| s.skipped.clone())
            .unwrap_or_default();
        let decoded = durability::snapshot::decode(bytes)
            .map_err(|e| ReplayError::Decode(e.to_string()))
            .and_then(|s| {
                PartitionState::from_snapshot(self.cfg.partition, self.runtime.clone(), s)
            });
        match decoded {
            Ok(mut s) => {
                s.skipped = skipped;
                self.state = Some(Box::new(s));
                self.applied = meta.slot;
                // Whatever this replica executed as leader is gone with it.
                self.needs_rebuild = false;
            }
            Err(e) => self.fail(format!(
                "installing the leader's snapshot at slot {}: {e}",
                meta.slot
            )),
        }
    }

    /// Leadership changes, applying, releasing, snapshots, waiting calls.
    fn after_consensus(&mut self) {
        if self.fatal.is_some() {
            return;
        }
        let leads = self.paxos.is_leader();
        if leads && !self.leading {
            self.leading = true;
            // Records we hold beyond what we applied (the new leader's
            // adopted log and its no-op) come before anything it runs.
            let last = self.paxos.last_slot();
            self.apply_up_to(last);
        } else if !leads && self.leading {
            self.lose_leadership();
        }
        if !self.leading {
            let chosen = self.paxos.chosen();
            self.apply_up_to(chosen);
        }
        self.waiting.release(&self.paxos, &mut self.out.replies);
        self.check_hold();
        self.maybe_snapshot();
        self.run_queued();
    }

    fn apply_up_to(&mut self, to: Slot) {
        // A snapshot from the leader replaces the state first (`ready`).
        if self.needs_rebuild || to <= self.applied || self.paxos.snapshot_pending() {
            return;
        }
        let Some(state) = self.state.as_deref_mut() else {
            return;
        };
        for r in self.paxos.records(self.applied.next(), to) {
            if let Err(e) = apply_record(state, &r) {
                return self.fail(format!("slot {}: {e}", r.slot));
            }
            self.applied = r.slot;
        }
        self.paxos.applied(self.applied);
    }

    fn lose_leadership(&mut self) {
        if !self.leading {
            return;
        }
        self.leading = false;
        let leader = self.paxos.leader();
        let chosen = self.paxos.chosen();
        self.waiting.fail_all(chosen, leader, &mut self.out.replies);
        for q in self.queued.drain(..) {
            self.out
                .replies
                .push((q.token, Err(CallError::NotLeader { leader })));
        }
        match std::mem::replace(&mut self.hold, Hold::Free) {
            Hold::Asked(t) => self
                .out
                .replies
                .push((t, Err(CallError::NotLeader { leader }))),
            Hold::Back { token, .. } => {
                self.out
                    .replies
                    .push((token, Err(CallError::OutcomeUnknown)));
            }
            Hold::Lent => self.hold = Hold::Lent,
            Hold::Free | Hold::Done => {}
        }
        self.snapshot_pending = None;
        if self.applied > chosen {
            self.needs_rebuild = true;
        }
    }

    fn check_hold(&mut self) {
        let Hold::Back { dep, .. } = &self.hold else {
            return;
        };
        if *dep > self.paxos.chosen() {
            return;
        }
        if let Hold::Back { token, .. } = std::mem::replace(&mut self.hold, Hold::Done) {
            self.out.held_chosen = Some(token);
        }
    }

    /// Takes a snapshot when the log has grown enough: encoded now, at the
    /// last applied slot, and written once that slot is chosen.
    fn maybe_snapshot(&mut self) {
        if let Some((meta, _)) = &self.snapshot_pending {
            if meta.slot <= self.paxos.chosen() {
                if let Some((meta, bytes)) = self.snapshot_pending.take() {
                    self.queue_local_snapshot(meta, bytes);
                }
            }
            return;
        }
        let in_flight = self.cur_local.is_some() || self.batches.iter().any(|b| b.2.is_some());
        let snap_slot = self.paxos.snapshot_meta().slot;
        let grown = self.snapshot_asked || self.log_bytes >= self.cfg.snapshot_log_bytes;
        if in_flight || !grown || self.applied <= snap_slot {
            return;
        }
        let Some(state) = self.state.as_deref() else {
            return;
        };
        if self.needs_rebuild {
            return;
        }
        let Some(ballot) = self.paxos.ballot_at(self.applied) else {
            return;
        };
        let meta = SnapshotMeta {
            slot: self.applied,
            ballot,
        };
        self.snapshot_asked = false;
        match durability::snapshot::encode(meta, state.mp_txn_max, &state.images()) {
            Ok(bytes) => self.snapshot_pending = Some((meta, bytes)),
            Err(e) => self.fail(format!("encoding a snapshot: {e}")),
        }
        // Checked again at once: a group of one may have chosen it already.
        if self
            .snapshot_pending
            .as_ref()
            .is_some_and(|(m, _)| m.slot <= self.paxos.chosen())
        {
            self.maybe_snapshot();
        }
    }

    fn queue_local_snapshot(&mut self, meta: SnapshotMeta, bytes: Vec<u8>) {
        let batch = self.out.write.get_or_insert_with(WriteBatch::default);
        if batch.snapshot.is_some() {
            return; // a received one is being installed: it wins
        }
        batch.records.retain(|r| r.slot > meta.slot);
        batch.snapshot = Some((meta, bytes));
        self.cur_local = Some(meta);
    }
}

/// Applies one record's payload (an empty one is a no-op).
fn apply_record(state: &mut PartitionState, r: &LogRecord) -> Result<(), ReplayError> {
    if r.payload.is_empty() {
        return Ok(());
    }
    let entry = durability::decode_entry(&r.payload).map_err(ReplayError::Decode)?;
    state.replay(&entry)
}

/// Persists a batch on `storage` in the required order and syncs.
pub fn persist(
    storage: &mut dyn Storage,
    b: &WriteBatch,
) -> Result<(), durability::DurabilityError> {
    write_batch(storage, b)?;
    storage.sync()
}

/// Writes a batch in the required order (vote, truncation, snapshot,
/// records); durable once `sync` returns.
pub fn write_batch<S: Storage + ?Sized>(
    storage: &mut S,
    b: &WriteBatch,
) -> Result<(), durability::DurabilityError> {
    if let Some(v) = b.vote {
        storage.set_vote(v)?;
    }
    if let Some(t) = b.truncate_after {
        if t < storage.last_slot() {
            storage.truncate_after(t)?;
        }
    }
    if let Some((meta, bytes)) = &b.snapshot {
        storage.install_snapshot(*meta, bytes)?;
    }
    for r in &b.records {
        storage.append(r)?;
    }
    Ok(())
}
