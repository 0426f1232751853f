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
//!  snapshot_step (from tick)  snapshot_staged(meta, written)  set_disk_full(why)
//!                   │
//!          ┌────────▼────────┐  ready() ─▶ Ready { write: batch to persist (vote,
//!          │ PartitionCore   │              truncation, snapshot, install_staged,
//!          │  state + Paxos  │              records, then messages to send),
//!          └─────────────────┘              messages, replies, lent state,
//!                                           held_chosen, reads, stage_snapshot,
//!                                           discard_staged, rebuild, fatal }
//! ```
//!
//! Must not: read a clock or draw randomness (both come in: `Now` and a
//! seed), do I/O except through the `Storage` handed to `recover` and
//! `rebuild`, spawn, or name wire types.

use super::decide::{Decisions, Gate};
use super::error::CallError;
use super::exec::{run_call, CallSpec};
use super::hold::Hold;
use super::procs::ProcRuntime;
use super::recover::apply_record;
use super::replies::{CallResult, Replies};
use super::state::PartitionState;
use crate::catalog::PartitionId;
use crate::consensus::{self, Message, Paxos};
use crate::durability::{self, LogRecord, SnapshotMeta, Vote};
use crate::rng;
use crate::types::{NodeId, Slot, TenantId, Value};
use crate::wasm::TxnContext;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// Calls a core keeps waiting to run (while held, or while too much is
/// unchosen); beyond it a call is refused as overloaded.
pub const CALLS_WAITING_MAX: usize = 65_536;
/// Consensus `Ready`s gathered into one `ready()`: acting on one (applying,
/// running waiting calls) can make another.
const READY_ROUNDS_MAX: usize = 4;

/// The time as the shell read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Now {
    /// A monotonic clock (consensus timers, leases).
    pub mono_us: u64,
    /// Microseconds since the Unix epoch (transaction timestamps).
    pub wall_us: i64,
}

/// Bytes of a snapshot a node's partition encodes before it goes back to
/// serving calls (a few milliseconds' work: that is the longest a snapshot
/// holds its partition up at a time).
pub const SNAPSHOT_STEP_BYTES: usize = 1 << 20;
/// After a snapshot's file could not be written (a full disk, say), the
/// next one waits this long (the log keeps every record meanwhile).
pub const SNAPSHOT_RETRY_US: u64 = 10_000_000;

/// How a replica of a partition runs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub partition: PartitionId,
    /// Partitions of the node (rows are placed by `partition_for` over
    /// this many).
    pub partitions: u32,
    pub consensus: consensus::Config,
    /// Log bytes after which a snapshot is taken (or the newest
    /// snapshot's size, if more: `PartitionCore::snapshot_due`).
    pub snapshot_log_bytes: u64,
    /// Bytes of a snapshot encoded at a time before the partition goes
    /// back to serving (`SNAPSHOT_STEP_BYTES` on a node).
    pub snapshot_step_bytes: usize,
    /// Each tenant's quota by default (a tenant's own, in its part, is
    /// over it): its rows here and its time limit, checked by each call.
    pub quota: crate::catalog::Quota,
}

/// A batch to make durable, in this order, then report with `persisted`.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub seq: u64,
    pub vote: Option<Vote>,
    /// Drop every record after this slot (if the log goes past it).
    pub truncate_after: Option<Slot>,
    /// Install this snapshot (received from the leader).
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// Install the snapshot taken here and staged for this meta
    /// (`Ready::stage_snapshot`, `Storage::install_staged`).
    pub install_staged: Option<SnapshotMeta>,
    pub records: Vec<LogRecord>,
    /// Send once all of the above is durable.
    pub then_send: Vec<(NodeId, Message)>,
}

impl WriteBatch {
    pub fn has_writes(&self) -> bool {
        self.vote.is_some()
            || self.truncate_after.is_some()
            || self.snapshot.is_some()
            || self.install_staged.is_some()
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
    /// A snapshot taken here: write it aside (`Log::stager`), off the
    /// thread that writes the log, then report with `snapshot_staged`.
    pub stage_snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// Remove the file staged for this snapshot, given up (before any
    /// `stage_snapshot` of the same Ready: the slot may be the same).
    pub discard_staged: Option<SnapshotMeta>,
    /// Leadership was lost (or the state holds an aborted share): call
    /// `rebuild` with the storage.
    pub rebuild: bool,
    /// Partitions other than 0: ask partition 0's replica on this node for
    /// these coordinator transactions' outcomes (its `resolve`).
    pub asks: Vec<u64>,
    /// Partition 0: outcomes asked for, for the node's other partitions
    /// (their `decided`).
    pub answers: Vec<(u64, bool)>,
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
            stage_snapshot: None,
            discard_staged: None,
            rebuild: false,
            asks: Vec::new(),
            answers: Vec::new(),
            fatal: None,
        }
    }
}

/// A call not yet run.
pub(super) struct Queued<T> {
    token: T,
    pub(super) tenant: TenantId,
    procedure: String,
    args: Vec<Value>,
    /// The call's idempotency key, if it came with one.
    key: Option<String>,
    /// Its time limit, if less than the tenant's.
    timeout_ms: Option<u64>,
}

/// One partition replica. `T` identifies a caller (a reply callback in
/// the node, an operation id in the simulator).
pub struct PartitionCore<T> {
    pub(super) cfg: CoreConfig,
    pub(super) paxos: Paxos,
    pub(super) runtime: Arc<dyn ProcRuntime>,
    /// Coordinator transactions not every partition logged (found at
    /// start-up): never applied, whatever state is rebuilt.
    pub(super) skipped: Arc<BTreeSet<u64>>,
    pub(super) state: Option<Box<PartitionState>>,
    /// The last slot the state reflects.
    pub(super) applied: Slot,
    pub(super) now: Now,
    pub(super) txn_last_us: i64,
    pub(super) txn_seed: u64,
    pub(super) leading: bool,
    pub(super) waiting: Replies<T>,
    pub(super) queued: VecDeque<Queued<T>>,
    pub(super) hold: Hold<T>,
    /// Coordinator transactions' outcomes (see `decide`).
    pub(super) dec: Decisions,
    /// Log bytes after the newest snapshot, as the shell last reported.
    pub(super) log_bytes: u64,
    /// A snapshot taken here, being written aside or written (see
    /// `snapshots::Staging`).
    pub(super) staging: Option<super::snapshots::Staging>,
    /// No snapshot is begun before this (`SNAPSHOT_RETRY_US` after one
    /// could not be written).
    pub(super) snapshot_retry_at_us: u64,
    /// A snapshot being encoded, a step at a time.
    pub(super) building: Option<Box<super::snapshots::Building>>,
    /// Bytes of the newest snapshot this replica loaded, encoded or
    /// installed: the log grows by as much again before the next one
    /// (`snapshot_due`).
    pub(super) snapshot_bytes: u64,
    /// Batches handed out: (our seq, consensus seq, local snapshot).
    pub(super) batches: VecDeque<(u64, Option<u64>, Option<SnapshotMeta>)>,
    pub(super) next_seq: u64,
    /// The consensus batch and local snapshot in the batch being built.
    pub(super) cur_paxos_seq: Option<u64>,
    pub(super) cur_local: Option<SnapshotMeta>,
    pub(super) needs_rebuild: bool,
    /// Why the disk has no room for more of the log, while so
    /// (`set_disk_full`): calls that write are refused, reads go on.
    pub(super) disk_full: Option<String>,
    /// Snapshot at the next chance, whatever the log's size.
    pub(super) snapshot_asked: bool,
    pub(super) fatal: Option<String>,
    pub(super) out: Ready<T>,
    /// Reused for encoding each call's payload.
    pub(super) scratch: Vec<u8>,
    /// The generation of the state's parts: leases of an older one are
    /// stale (see `lease`).
    pub(super) part_gen: u64,
    /// Calls that ran on lent parts, in order, waiting to be proposed:
    /// at most what the shell handed to leases while the core took calls.
    pub(super) ran_waiting: VecDeque<(T, super::lease::Ran)>,
    /// Lent parts that came back while the state was lent to a holder (at
    /// most one per tenant away; boxed as they travel).
    #[allow(clippy::vec_box)]
    pub(super) homecoming: Vec<Box<super::lease::Lease>>,
}

impl<T> PartitionCore<T> {
    // ---- inputs ------------------------------------------------------------

    /// Time passes; a step of the snapshot being built is taken.
    pub fn tick(&mut self, now: Now) {
        self.set_time(now);
        self.snapshot_step();
        self.after_consensus();
    }

    /// The time, with nothing else: reads that ran since the last reading
    /// are stamped with it (a time no earlier than when they read, which
    /// is what their lease is checked against).
    pub fn set_time(&mut self, now: Now) {
        self.now.mono_us = self.now.mono_us.max(now.mono_us);
        self.now.wall_us = now.wall_us;
        self.paxos.tick(self.now.mono_us);
        self.waiting.stamp(self.now.mono_us);
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

    /// Storage could not give what `to` needs; asked for again later.
    pub fn read_failed(&mut self, to: NodeId) {
        self.paxos.read_failed(to);
    }

    pub fn snapshot_read(&mut self, to: NodeId, meta: SnapshotMeta, bytes: Vec<u8>) {
        self.paxos.snapshot_read(to, meta, bytes);
    }

    /// A single-partition call: runs now if this replica leads and is
    /// free, else waits (or is refused). With an idempotency `key` the
    /// tenant kept here (see `kept`), it is answered as the first time,
    /// not run again. `timeout_ms`: its time limit, if less than the
    /// tenant's (`call_timeout_ms`).
    pub fn call(
        &mut self,
        token: T,
        tenant: TenantId,
        procedure: String,
        args: Vec<Value>,
        (key, timeout_ms): (Option<String>, Option<u64>),
    ) {
        if let Some(e) = self.refusal() {
            return self.out.replies.push((token, Err(e)));
        }
        let q = Queued {
            token,
            tenant,
            procedure,
            args,
            key,
            timeout_ms,
        };
        // The holder's tenant's calls wait for it even where others run.
        if !self.runs_now() || self.hold.held_tenant() == Some(tenant) {
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

    /// Whether a call handed over now would wait here (this replica leads
    /// but is held for every tenant, has calls waiting, or cannot run yet)
    /// rather than run or be refused at once (a call of a tenant `is_away`
    /// says so of waits too). A shell that orders calls itself keeps them
    /// meanwhile.
    pub fn would_queue(&self) -> bool {
        self.fatal.is_none() && self.leading && !self.runs_now()
    }

    /// Whether a call handed over now runs at once: nobody holds the
    /// partition (or the holder works on one tenant's shell, and the call
    /// is another's: see `is_away`), no call waits before it, and this
    /// replica can run one.
    pub(super) fn runs_now(&self) -> bool {
        self.hold.lets_others_run() && self.queued.is_empty() && self.can_run()
    }

    // ---- outputs -----------------------------------------------------------

    /// What to do since the last call.
    pub fn ready(&mut self) -> Ready<T> {
        for _ in 0..READY_ROUNDS_MAX {
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
            let snapshot = batch.snapshot.as_ref().map(|(meta, _)| meta);
            if let Some(covered) = snapshot.or(batch.install_staged.as_ref()).map(|m| m.slot) {
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

    /// The replies released so far, ahead of the next `ready` (for a shell
    /// that answers while it works through a long queue).
    pub fn take_replies(&mut self) -> Vec<(T, CallResult)> {
        std::mem::take(&mut self.out.replies)
    }

    // ---- queries -----------------------------------------------------------

    pub fn partition(&self) -> PartitionId {
        self.cfg.partition
    }

    /// Hands this group's leadership to `to` (see
    /// `Paxos::transfer_leadership`); calls wait meanwhile. Not while the
    /// state is asked for or lent: the holder's entry must be proposed.
    pub fn transfer_leadership(&mut self, to: NodeId) {
        if matches!(self.hold, Hold::Free) {
            self.paxos.transfer_leadership(to);
        }
    }

    pub fn paxos(&self) -> &Paxos {
        &self.paxos
    }

    pub fn is_leader(&self) -> bool {
        self.leading
    }

    /// The state, unless it is lent whole (while a shell is lent, the
    /// state without that tenant's part).
    pub fn state(&self) -> Option<&PartitionState> {
        self.state.as_deref()
    }

    pub fn applied(&self) -> Slot {
        self.applied
    }

    // ---- internals ---------------------------------------------------------

    pub(super) fn can_run(&self) -> bool {
        self.leading
            && self.state.is_some()
            && !self.needs_rebuild
            && self.fatal.is_none()
            && self.paxos.can_propose()
            && self.awaiting().is_none()
    }

    pub(super) fn run(&mut self, q: Queued<T>) {
        let txn = self.next_txn();
        let Some(state) = self.state.as_deref_mut() else {
            return self.queued.push_front(q);
        };
        if state.is_away(q.tenant) {
            // The shell hands such a call to the tenant's lease instead.
            let e = CallError::Overloaded(
                "the tenant's part of this partition is lent out; the call was not applied".into(),
            );
            return self.out.replies.push((q.token, Err(e)));
        }
        if let Some(key) = &q.key {
            let kept = state.tenant_ref(q.tenant).and_then(|p| p.kept.get(key));
            if let Some(answer) = kept {
                // Applied before: answer as then, once what this state
                // reflects (the first run's record among it) is chosen.
                let result = answer.cloned().ok_or_else(|| CallError::AnswerNotKept {
                    procedure: q.procedure.clone(),
                    key: key.clone(),
                });
                return self.waiting.push(q.token, result, self.applied, false);
            }
        }
        let call = CallSpec {
            tenant: q.tenant,
            procedure: &q.procedure,
            args: &q.args,
            key: q.key.as_deref(),
            timeout_ms: q.timeout_ms,
            refuse_writes: self.disk_full.as_deref(),
        };
        let done = run_call(
            state,
            self.cfg.partitions,
            &self.cfg.quota,
            call,
            txn,
            &mut self.scratch,
        );
        let (dep, wrote) = match done.payload {
            Some(payload) => match self.paxos.propose(payload) {
                Ok(slot) => (slot, true),
                Err(e) => {
                    // `can_run` checked leadership and room: unreachable
                    // unless the core's own rules changed under it.
                    let what = format!("proposing a checked record failed: {e}");
                    return self.stop_refusing(q.token, what);
                }
            },
            None => (self.applied, false),
        };
        if wrote {
            self.applied = dep;
        }
        self.waiting.push(q.token, done.result, dep, wrote);
    }

    /// Transaction context: the wall clock, never repeating or going back
    /// on this partition, and a seed from this replica's stream.
    pub(super) fn next_txn(&mut self) -> TxnContext {
        self.txn_last_us = self.now.wall_us.max(self.txn_last_us + 1);
        self.txn_seed = self.txn_seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        TxnContext {
            timestamp_us: self.txn_last_us,
            seed: rng::mix(self.txn_seed),
        }
    }

    /// Whether calls or a hold wait for records to be chosen (a shell
    /// that stops lets them finish first).
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty() || matches!(self.hold, Hold::Back { .. })
    }

    /// Stops while `token`'s input was being handled: it was never logged,
    /// so it is refused like what comes after.
    pub(super) fn stop_refusing(&mut self, token: T, what: String) {
        self.stop(what);
        if let Some(refused) = self.refusal() {
            self.out.replies.push((token, Err(refused)));
        }
    }

    /// Once stopped, why a new call, hold or release is refused.
    pub fn refusal(&self) -> Option<CallError> {
        self.fatal.as_ref().map(|why| CallError::Stopped {
            why: why.clone(),
            maybe_applied: false,
        })
    }

    /// The partition cannot go on (a broken invariant found here, or the
    /// shell's log writer failed): every call it still has is answered
    /// (see `give_up_all`) and it takes no more inputs.
    pub fn stop(&mut self, what: String) {
        if self.fatal.is_some() {
            return;
        }
        let why = format!("partition {}: {what}", self.cfg.partition.0);
        self.fatal = Some(why.clone());
        let refused = CallError::Stopped {
            why: why.clone(),
            maybe_applied: false,
        };
        let unknown = CallError::Stopped {
            why,
            maybe_applied: true,
        };
        self.give_up_all(&refused, &unknown);
    }

    /// The shell's log has no room for more (`Some(why)`: the disk is
    /// full), or has again (`None`). While full, a call that writes is
    /// undone and refused (`CallError::DiskFull`), and so is a holder's
    /// entry; reads go on, and so does what the core logs itself
    /// (elections, outcomes, snapshots, which may free space). What ran
    /// before is written into the space the log set aside for it. Parts
    /// lent out then may hold writes that will not be logged: their calls
    /// are refused and the state is rebuilt from the log.
    pub fn set_disk_full(&mut self, why: Option<String>) {
        let filled = why.is_some() && self.disk_full.is_none();
        self.disk_full = why.map(|w| format!("partition {}: {w}", self.cfg.partition.0));
        if filled {
            let lent = self.parts_away() > 0;
            if lent || !self.ran_waiting.is_empty() || !self.homecoming.is_empty() {
                self.new_part_generation();
            }
            if lent {
                self.needs_rebuild = true;
            }
        }
        self.after_consensus();
    }

    /// Why a write is refused now, if it is.
    pub(super) fn disk_full_error(&self) -> Option<CallError> {
        let why = self.disk_full.as_ref()?;
        Some(CallError::DiskFull { why: why.clone() })
    }

    /// Turns a consensus `Ready` into this core's outputs.
    pub(super) fn take_consensus(&mut self, r: consensus::Ready) {
        if let Some(p) = &r.problem {
            return self.stop(p.clone());
        }
        if r.stepped_down {
            self.lose_leadership();
        }
        if let Some((meta, bytes)) = &r.snapshot {
            self.drop_local_snapshot();
            self.install_received(*meta, bytes);
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
            // A snapshot of ours queued to install is older: the
            // leader's replaces it.
            if let Some(ours) = batch.install_staged.take() {
                self.cur_local = None;
                self.out.discard_staged = Some(ours);
            }
            batch.snapshot = Some(s);
        }
        batch.records.extend(r.records);
        batch.then_send.extend(r.after_persist);
        if r.persist_seq.is_some() {
            self.cur_paxos_seq = self.cur_paxos_seq.max(r.persist_seq);
        }
    }

    /// Leadership changes, applying, releasing, snapshots, waiting calls.
    pub(super) fn after_consensus(&mut self) {
        if self.fatal.is_some() {
            return;
        }
        let leads = self.paxos.is_leader();
        if leads && !self.leading {
            self.leading = true;
        } else if !leads && self.leading {
            self.lose_leadership();
        }
        // A leader applies its whole log (what it adopted, and its no-op)
        // before it runs anything; a follower applies what is chosen.
        let upto = if self.leading {
            self.paxos.last_slot()
        } else {
            self.paxos.chosen()
        };
        self.apply_up_to(upto);
        self.settle_decisions();
        self.waiting.release(&self.paxos, &mut self.out.replies);
        self.check_hold();
        self.propose_ran();
        self.maybe_snapshot();
        self.run_queued();
    }

    pub(super) fn apply_up_to(&mut self, to: Slot) {
        // A snapshot from the leader replaces the state first (`ready`).
        if self.needs_rebuild
            || to <= self.applied
            || self.paxos.snapshot_pending()
            || self.state.is_none()
        {
            return;
        }
        if self.paxos.record(self.applied.next()).is_none() {
            // A rebuild stopped at a share whose later records memory no
            // longer holds: rebuilt again once its outcome is known (told,
            // or logged since).
            if let Some(t) = self.dec.stalled {
                let logged = (self.applied.0 + 1..=self.paxos.last_slot().0)
                    .filter_map(|s| self.paxos.record(Slot(s)))
                    .any(|l| durability::decision(&l.payload).is_some_and(|d| d.0 == t));
                if logged || self.dec.get(t).is_some() {
                    self.needs_rebuild = true;
                }
            }
            return;
        }
        self.dec.stalled = None;
        let last = self.paxos.last_slot();
        for r in self.paxos.records(self.applied.next(), to) {
            // An outcome logged after a share, in what this replica has.
            let logged = |txn: u64| {
                (r.slot.0 + 1..=last.0)
                    .filter_map(|s| self.paxos.record(Slot(s)))
                    .find_map(|l| durability::decision(&l.payload).filter(|d| d.0 == txn))
                    .map(|d| d.1)
            };
            let gate = self.gate(&r, logged);
            let Some(state) = self.state.as_deref_mut() else {
                return;
            };
            match gate {
                Gate::Stall(txn) => {
                    self.dec.stalled = Some(txn);
                    break;
                }
                Gate::Skip(txn) => {
                    state.mp_txn_max = state.mp_txn_max.max(txn);
                    self.dec.forget(txn);
                }
                Gate::Apply => {
                    if let Err(e) = apply_record(state, &r) {
                        return self.stop(format!("slot {}: {e}", r.slot));
                    }
                    if let Some(txn) = durability::multi_txn(&r.payload) {
                        self.dec.forget(txn);
                    }
                    // The outcome of a share this state holds in memory.
                    match durability::decision(&r.payload) {
                        Some((txn, commit)) if state.undecided == Some(txn) => {
                            self.dec.learn(txn, commit);
                            if !commit {
                                // The state still holds the aborted share:
                                // nothing after it may apply until it is
                                // rebuilt without it (`settle_decisions`
                                // asks for that). Records after it in this
                                // batch were logged by a leader whose state
                                // never had the share: one that updates a
                                // row the share changed stopped a replica
                                // that applied on (`ohm torture`, seed 2).
                                self.applied = r.slot;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            self.applied = r.slot;
        }
        self.paxos.applied(self.applied);
    }

    pub(super) fn lose_leadership(&mut self) {
        if !self.leading {
            return;
        }
        self.leading = false;
        self.dec.lost_leadership();
        // Lent parts go stale; a state missing them must not follow.
        self.new_part_generation();
        if self.parts_away() > 0 {
            self.needs_rebuild = true;
        }
        let refused = CallError::NotLeader {
            leader: self.paxos.leader(),
        };
        self.give_up_all(&refused, &CallError::OutcomeUnknown);
        self.drop_local_snapshot();
        if self.applied > self.paxos.chosen() {
            self.needs_rebuild = true;
        }
    }

    /// Answers every call and hold the core still has: a write whose record
    /// is chosen with its result, one written but not chosen with `unknown`,
    /// everything else with `refused` (nothing was done). A lent state stays
    /// lent: its holder hands it back or gives up.
    fn give_up_all(&mut self, refused: &CallError, unknown: &CallError) {
        let chosen = self.paxos.chosen();
        let out = &mut self.out.replies;
        self.waiting.fail_all(chosen, refused, unknown, out);
        out.extend(
            self.queued
                .drain(..)
                .map(|q| (q.token, Err(refused.clone()))),
        );
        // Never proposed: not applied.
        out.extend(
            self.ran_waiting
                .drain(..)
                .map(|(token, _)| (token, Err(refused.clone()))),
        );
        match std::mem::replace(&mut self.hold, Hold::Free) {
            Hold::Asked { token, .. } => out.push((token, Err(refused.clone()))),
            Hold::Back { token, .. } => out.push((token, Err(unknown.clone()))),
            lent @ Hold::Lent { .. } => self.hold = lent,
            Hold::Free | Hold::Done { .. } => {}
        }
    }
}
