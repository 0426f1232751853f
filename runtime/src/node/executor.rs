//! The executor: one thread per partition, the shell around its
//! `PartitionCore`. It feeds the core what arrives on its queue (calls,
//! the coordinator's hold/release/resume, the writer's "durable" notices)
//! and the clock, and acts on the core's `Ready`: batches to the writer,
//! replies to the network, lent states to the coordinator, a snapshot to
//! a thread of its own that writes it aside.
//!
//! ```text
//!  dispatch ──Call──▶ ┌──────────┐ ──WriteBatch──▶ writer ──fsync──┐
//!  coordinator ─Hold▶ │ executor │                                 │
//!  writer ─Persisted▶ │  (core)  │ ◀──Persisted, Space (disk full)─┘
//!                     └──────────┘ ──replies──▶ clients (after chosen)
//!                        │   ▲
//!     stage_snapshot ────┘   └──── Staged ── snapshot thread (Stager)
//! ```

use super::fair::Fair;
use super::priority::CallTimer;
use super::reply::{self, ClientAddrs, ReplyFn};
use super::runner::{Job, Runners};
use super::writer::{Outbox, WriterMsg};
use crate::consensus::{Message, MESSAGE_RECORD_BYTES_MAX};
use crate::durability::{DirFs, DiskLog, SnapshotMeta, Stager, Storage};
use crate::partition::{
    CallError, CallResult, Lease, LentCall, Now, PartitionCore, PartitionState, Ran, Ready,
};
use crate::proto::{ErrorCode, ErrorReply};
use crate::types::NodeId;
use crate::types::{TenantId, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Calls one partition's queue admits; beyond it callers get `overloaded`.
pub const PARTITION_QUEUE_MAX: usize = 16_384;
/// Inputs taken off the queue at once (calls among them go to their
/// tenants' lanes).
pub const EXECUTOR_BATCH_MAX: usize = PARTITION_QUEUE_MAX;
/// Calls run between two looks at the queue.
const ROUND_CALLS_MAX: usize = 512;
/// Calls one tenant may have waiting in its lane on one partition; beyond
/// it, that tenant's calls are answered `overloaded` (the partition's queue
/// stays open to the others).
pub const LANE_CALLS_MAX: usize = PARTITION_QUEUE_MAX / 4;
/// How long calls run between two looks at the queue (the first always
/// runs): a call that arrives meanwhile waits at most this, plus one call,
/// before it takes its fair turn.
const ROUND_TIME_MAX: Duration = Duration::from_millis(2);
/// Inputs other than calls handed to the core between two rounds of calls.
const OTHER_INPUTS_MAX: usize = 512;
/// Inputs handed to the core between looks at what the writer made
/// durable (so replies leave while a long queue is worked through).
const CHECK_EVERY: usize = 32;
/// How often the core hears the time when nothing arrives.
const TICK: Duration = Duration::from_millis(10);
/// How often per-tenant row counts are published for `status`.
const ROWS_EVERY: Duration = Duration::from_millis(200);
/// Messages from peers one partition's queue admits; beyond it they are
/// dropped (consensus sends again what matters).
pub const PEER_INPUTS_MAX: u64 = 4096;
/// Rounds of acting on the core's output (a rebuild or a log read for a
/// peer makes more) before going back to the queue.
const ACT_ROUNDS_MAX: usize = 4;
/// How long a stopping partition waits for its log to make what it ran
/// durable, so those calls get their real answers.
pub const STOP_DRAIN_MAX: Duration = Duration::from_secs(5);

/// The node's executors, by partition (set once they all exist).
pub type Siblings = std::sync::Weak<std::sync::OnceLock<Vec<std::sync::mpsc::Sender<Input>>>>;

/// The coordinator's side of a hold.
pub type Lent = Result<Box<PartitionState>, CallError>;

/// Who waits for what the core says.
pub enum Token {
    Call(ReplyFn),
    Hold(SyncSender<Lent>),
    Release(SyncSender<Result<(), CallError>>),
}

/// A call's reply while the call waits in an executor's queue. Dropped
/// there (the partition stopped and its queue went with it), it answers
/// that the call was not applied: it never ran.
pub struct QueuedReply(Option<ReplyFn>);

impl QueuedReply {
    /// Wraps the reply of a call about to be queued.
    pub fn new(f: ReplyFn) -> QueuedReply {
        QueuedReply(Some(f))
    }

    /// The reply, for whoever answers from now on.
    pub fn take(mut self) -> ReplyFn {
        self.0.take().expect("a QueuedReply is taken once")
    }
}

impl Drop for QueuedReply {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(ErrorReply::new(
                ErrorCode::Unavailable,
                "the partition stopped before running this call; it was not applied",
            )));
        }
    }
}

/// Work for an executor.
pub enum Input {
    Call {
        tenant: TenantId,
        procedure: String,
        args: Vec<Value>,
        /// The call's idempotency key, if it came with one.
        key: Option<String>,
        /// Its time limit, if less than the tenant's (`call_timeout_ms`).
        timeout_ms: Option<u64>,
        reply: QueuedReply,
    },
    /// Lend the state (after the calls the core has started or queued;
    /// that tenant's calls still waiting in the executor's lanes run after
    /// the holder) for work on `tenant`'s data only (None: anyone's, and
    /// every call waits): a shell with that tenant's part alone, while the
    /// other tenants' calls go on.
    Hold {
        tenant: Option<TenantId>,
        lent: SyncSender<Lent>,
    },
    /// The state comes back with this partition's share of the holder's
    /// transaction; `done` hears once it is chosen.
    Release {
        state: Box<PartitionState>,
        entry: Option<Vec<u8>>,
        /// The entry is an abort in place of a share the state holds: the
        /// state is rebuilt from the log.
        discard: bool,
        done: SyncSender<Result<(), CallError>>,
    },
    /// A coordinator transaction's outcome (from the coordinator, or
    /// partition 0's replica answering an ask).
    Decided { txn: u64, commit: bool },
    /// Partition 0: a partition here asks for a transaction's outcome.
    Resolve { txn: u64 },
    /// The holder is done.
    Resume,
    /// Take a snapshot now; `done` hears once it is written.
    Snapshot(SyncSender<()>),
    /// From the writer: more is durable (see `Durable`).
    Persisted,
    /// From the writer: the log failed.
    WriterFailed(String),
    /// From the writer: the disk has no room for more of the log (why),
    /// or has again (None).
    Space(Option<String>),
    /// From the stager thread: the snapshot's file is written aside (or
    /// could not be).
    Staged {
        meta: SnapshotMeta,
        written: Result<(), String>,
    },
    /// A consensus message from a peer replica (admitted up to
    /// `PEER_INPUTS_MAX` by its stats' `peer_queued`).
    Peer { from: NodeId, msg: Message },
    /// From a runner: a call ran on its tenant's lent part.
    /// It took `cost` there.
    Ran {
        ran: Ran,
        reply: QueuedReply,
        cost: Duration,
    },
    /// From a runner: the lent part comes home, with the calls it was
    /// handed and did not start (they go back to the front of the lane).
    PartHome { lease: Box<Lease>, unrun: Vec<Job> },
    /// Finish what is queued before this, then exit.
    Stop,
}

/// Counters `status` reads without asking the executor.
#[derive(Default)]
pub struct PartitionStats {
    pub committed: AtomicU64,
    pub failed: AtomicU64,
    pub queued: AtomicU64,
    pub peer_queued: AtomicU64,
    pub durable_lsn: AtomicU64,
    pub log_bytes: AtomicU64,
    /// Rows per tenant, as of the last publication.
    pub rows: Mutex<Arc<BTreeMap<TenantId, u64>>>,
    /// `ROLE_*`, as of the last action.
    pub role: std::sync::atomic::AtomicU8,
    /// The disk has no room for the log: writes are refused.
    pub disk_full: AtomicBool,
    /// The leader as this replica knows it (0: unknown).
    pub leader: std::sync::atomic::AtomicU32,
    pub applied: AtomicU64,
    /// Every replica and how far its log matches the leader's (known on
    /// the leader only), as of the last action.
    pub replicas: Mutex<Vec<(u32, Option<u64>)>>,
    /// Times the known leader changed to another known node.
    pub leader_changes: AtomicU64,
    /// The last leader known, across elections (`leader_changes`).
    pub leader_watch: Mutex<super::metrics::LeaderWatch>,
    /// How long the log writer took per group (write, then sync or flush).
    pub log_sync: super::metrics::Histogram,
    /// Wasm fuel each tenant's calls burned here while this replica led,
    /// as of the last publication (with `rows`).
    pub fuel: Mutex<Arc<BTreeMap<TenantId, u64>>>,
}

pub const ROLE_FOLLOWER: u8 = 0;
pub const ROLE_CANDIDATE: u8 = 1;
pub const ROLE_LEADER: u8 = 2;

impl PartitionStats {
    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }

    /// Rows of every tenant here.
    pub fn rows_total(&self) -> u64 {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.values().sum()
    }

    pub fn rows_of(&self, t: TenantId) -> u64 {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner()).clone();
        rows.get(&t).copied().unwrap_or(0)
    }
}

/// The wall and monotonic clocks, read once per batch of inputs.
pub fn now(started: Instant) -> Now {
    let wall_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    Now {
        mono_us: started.elapsed().as_micros() as u64,
        wall_us,
    }
}

/// What the executor reports when its core can no longer go on.
pub type FatalFn = Arc<dyn Fn(String) + Send + Sync>;

/// What the writer has made durable, readable by the executor at once (the
/// `Persisted` message that also says it may wait behind queued calls).
#[derive(Default)]
pub struct Durable {
    seq: AtomicU64,
    log_bytes: AtomicU64,
    /// The executor is (about to be) waiting for input: the writer must
    /// wake it. A busy executor reads `seq` at its next step instead.
    idle: std::sync::atomic::AtomicBool,
}

impl Durable {
    /// Batch `seq` (and all before it) is durable; the log holds
    /// `log_bytes` after its snapshot. True when the executor must be
    /// woken to see it.
    pub fn set(&self, seq: u64, log_bytes: u64) -> bool {
        self.log_bytes.store(log_bytes, Ordering::Relaxed);
        self.seq.store(seq, Ordering::SeqCst);
        self.idle.load(Ordering::SeqCst)
    }

    fn get(&self) -> (u64, u64) {
        let seq = self.seq.load(Ordering::SeqCst);
        (seq, self.log_bytes.load(Ordering::Relaxed))
    }

    /// The executor is about to wait (true) or has work (false).
    fn idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::SeqCst);
    }
}

pub struct Executor {
    pub core: PartitionCore<Token>,
    pub inputs: Receiver<Input>,
    pub writer: SyncSender<WriterMsg>,
    pub stats: Arc<PartitionStats>,
    pub started: Instant,
    pub fatal: FatalFn,
    pub durable: Arc<Durable>,
    /// The last durable batch handed to the core.
    pub seen: u64,
    /// The partition's log (the writer's), read for lagging peers and to
    /// rebuild after losing leadership.
    pub log: Arc<Mutex<DiskLog>>,
    /// To the other replicas (none on a lone node).
    pub outbox: Option<Outbox>,
    /// In a cluster: the node's executors, for asking partition 0 about a
    /// coordinator transaction's outcome and passing its answers on.
    pub siblings: Option<Siblings>,
    pub addrs: ClientAddrs,
    /// Partition 0's replica in a cluster: keeps the node's routes in step
    /// with the modules other nodes deploy.
    pub routes: Option<RoutesRefresh>,
    /// In a cluster: gathers this partition's leadership on the node that
    /// leads partition 0.
    pub anchor: Option<Anchor>,
    /// Calls taken off the queue, waiting for their tenant's fair turn.
    pub turns: Fair<PendingCall>,
    /// Heavy tenants' lent parts, on their own threads.
    pub runners: Runners,
    /// This executor's own queue, for its runners' answers.
    pub own: Sender<Input>,
    /// Holds waiting for a round of calls and for the parts they need to
    /// come home from runners before they go to the core, in arrival order
    /// (meanwhile the other tenants' calls run). The node's one
    /// coordinator asks one at a time, so there is at most one.
    pub held_back: std::collections::VecDeque<HeldBack>,
    /// What the loop keeps between steps.
    pub looping: Looping,
    /// Where another thread takes the loop over while a call runs long.
    pub relief: Arc<super::relief::Relief>,
}

/// A hold at the executor, not yet handed to the core.
pub struct HeldBack {
    tenant: Option<TenantId>,
    lent: SyncSender<Lent>,
    /// A round of calls ran since it arrived.
    after_round: bool,
}

/// What the executor's loop keeps between two steps.
pub struct Looping {
    batch: Vec<Input>,
    rows_at: Instant,
    waiters: SnapshotWaiters,
    /// The round of calls under way, if one is.
    round: Option<Round>,
    /// The thread writing a snapshot aside, and what cancels it.
    stager: Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>,
    /// What writes snapshots aside, opened on the log's directory at the
    /// first (so later ones need not wait for the log's lock).
    stager_fs: Option<Stager<DirFs>>,
}

impl Default for Looping {
    fn default() -> Self {
        Looping {
            batch: Vec::with_capacity(OTHER_INPUTS_MAX),
            rows_at: Instant::now(),
            waiters: SnapshotWaiters::new(),
            round: None,
            stager: None,
            stager_fs: None,
        }
    }
}

/// A round of calls: when it began, when its last call ended, how many
/// ran.
#[derive(Debug, Clone, Copy)]
struct Round {
    began: Instant,
    at: Instant,
    ran: usize,
}

/// What the loop does after a step.
pub enum Flow {
    Again,
    /// The partition stopped; the loop ends.
    Exit,
    /// Run this call on the lent part, where the loop can be taken over,
    /// timed from now (on this thread) by the timer.
    Run(Box<Lease>, Job, CallTimer),
}

/// A call in `Executor::turns`.
pub struct PendingCall {
    procedure: String,
    args: Vec<Value>,
    key: Option<String>,
    timeout_ms: Option<u64>,
    reply: QueuedReply,
    /// Times it was stopped on a runner to make way (see `runner::Job`).
    preempts: u8,
}

impl PendingCall {
    /// A call handed to a runner and given back unrun.
    fn from_job(job: Job) -> PendingCall {
        PendingCall {
            procedure: job.call.procedure,
            args: job.call.args,
            key: job.call.key,
            timeout_ms: job.call.timeout_ms,
            reply: job.reply,
            preempts: job.preempts,
        }
    }

    fn into_input(self, tenant: TenantId) -> Input {
        Input::Call {
            tenant,
            procedure: self.procedure,
            args: self.args,
            key: self.key,
            timeout_ms: self.timeout_ms,
            reply: self.reply,
        }
    }
}

/// First try, and longest wait, between leadership transfers that did not
/// take.
const TRANSFER_BACKOFF_MIN: Duration = Duration::from_secs(1);
const TRANSFER_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Multi-partition work (and DDL, deploys) runs on one node holding every
/// partition, so every partition's leadership follows partition 0's: its
/// replica here publishes who leads it, and the leader of any other
/// partition hands over to that node (`transfer_leadership`), backing off
/// when a transfer does not take.
pub struct Anchor {
    pub me: NodeId,
    /// Who leads partition 0, as its replica here knows (0: nobody known).
    pub p0_leader: Arc<std::sync::atomic::AtomicU32>,
    pub is_p0: bool,
    pub next_try: Instant,
    pub backoff: Duration,
    /// Leading as of the last look (leadership changes are logged).
    pub was_leading: bool,
}

impl Anchor {
    fn step(&mut self, core: &mut PartitionCore<Token>) {
        if self.is_p0 {
            let leader = core.paxos().leader().map_or(0, |n| n.0);
            self.p0_leader.store(leader, Ordering::Relaxed);
            return;
        }
        if !core.is_leader() {
            self.backoff = TRANSFER_BACKOFF_MIN;
            return;
        }
        let target = self.p0_leader.load(Ordering::Relaxed);
        let now = Instant::now();
        if target == 0
            || target == self.me.0
            || core.paxos().transferring_to().is_some()
            || now < self.next_try
        {
            return;
        }
        core.transfer_leadership(NodeId(target));
        self.next_try = now + self.backoff;
        self.backoff = (self.backoff * 2).min(TRANSFER_BACKOFF_MAX);
    }
}

/// The node's procedure routes and tenants, brought up to this replica's
/// state whenever a coordinator transaction (a deploy or a new tenant among
/// them) was applied to it.
pub struct RoutesRefresh {
    pub routes: Arc<super::routes::Routes>,
    pub runtime: crate::wasm::WasmRuntime,
    pub catalog: Arc<std::sync::RwLock<crate::catalog::Catalog>>,
    /// The catalog `ohm cluster init` made (the node's file): the node's is
    /// this plus the tenants partition 0's state holds.
    pub base: crate::catalog::Catalog,
    /// The tenants of partition 0's state the node's catalog holds, in
    /// order. A state rebuilt without one (never chosen) has a list this is
    /// not a prefix of, and the catalog is made again from `base`.
    pub adopted: Vec<TenantId>,
    /// The principals overlay of partition 0's state the node's catalog
    /// holds (another one, by pointer: the catalog is made again).
    pub principals: Arc<crate::catalog::PrincipalOverlay>,
    /// Revocations this node's partition 0 log held at start past what
    /// its state applied (the coordinator transaction, the principal):
    /// each is taken out of every catalog made again until the state has
    /// applied its transaction (then the state says what holds).
    pub revoked: Vec<(u64, TenantId, String)>,
    /// The last coordinator transaction the routes reflect.
    pub seen: u64,
}

impl RoutesRefresh {
    fn check(&mut self, state: Option<&PartitionState>, fatal: &FatalFn) {
        // With a part lent out, looked at once every part is home (a
        // leader's coordinator keeps its own node's routes meanwhile).
        let Some(state) = state.filter(|s| s.mp_txn_max != self.seen && s.away_count() == 0) else {
            return;
        };
        self.seen = state.mp_txn_max;
        if let Err(e) = self.adopt_tenants(state) {
            return fatal(format!("partition 0's tenants and principals: {e}"));
        }
        let tenants: Vec<TenantId> = {
            let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            cat.tenants().map(|t| t.id).collect()
        };
        match super::coordinator::modules_of(state, tenants.iter().copied(), &self.runtime) {
            Ok(modules) => {
                super::coordinator::note_tenants(state, tenants.iter().copied(), &self.routes);
                for t in tenants {
                    let mods = modules
                        .range((t, String::new())..)
                        .take_while(|((tt, _), _)| *tt == t)
                        .map(|(_, m)| m);
                    self.routes.rebuild(t, mods);
                }
            }
            Err(e) => fatal(format!("a deployed module does not compile here: {e}")),
        }
    }

    /// Brings the node's catalog to `base` plus partition 0's tenants
    /// and principals (applied here; on a leader, possibly not chosen yet:
    /// nobody holds such a tenant's or principal's token before it is).
    fn adopt_tenants(
        &mut self,
        state: &PartitionState,
    ) -> Result<(), crate::catalog::CatalogError> {
        let created = &state.created_tenants;
        // What the catalog holds is the start of `created`: add the rest.
        let grown = created.len() >= self.adopted.len()
            && created.iter().zip(&self.adopted).all(|(t, id)| t.id == *id);
        let same_principals = Arc::ptr_eq(&state.principals, &self.principals);
        if grown && same_principals && created.len() == self.adopted.len() {
            return Ok(());
        }
        let mut cat = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        if grown && same_principals {
            let new = created.get(self.adopted.len()..).unwrap_or_default();
            super::coordinator::adopt_created(&mut cat, new)?;
        } else {
            let mut fresh = self.base.clone();
            super::coordinator::adopt_created(&mut fresh, created)?;
            fresh.apply_overlay(&state.principals)?;
            self.revoked.retain(|(txn, _, _)| *txn > state.mp_txn_max);
            for (_, tenant, name) in &self.revoked {
                fresh.forget_principal(*tenant, name);
            }
            *cat = fresh;
        }
        let ids = created.iter().map(|t| t.id).collect();
        self.adopted = ids;
        self.principals = state.principals.clone();
        Ok(())
    }
}

/// What one round of acting on the core's output left to do.
enum Acted {
    Done,
    Again,
    Stop,
}

/// Snapshot requests waiting for the log's snapshot to reach a slot.
type SnapshotWaiters = Vec<(SyncSender<()>, crate::types::Slot)>;

impl Executor {
    /// Runs until `Stop` (or every sender is gone), on this thread and,
    /// if a call it runs takes long, on the one that takes over
    /// (`relief`).
    pub fn run(self) {
        super::relief::run_loop(Box::new(self))
    }

    /// One step of the executor's loop: takes what arrived and feeds the
    /// core, then runs a round of calls, handing back the next one that
    /// is to run where it can be taken over (`Flow::Run`; the round goes
    /// on at the next step), then acts on what the core says.
    pub(super) fn step(&mut self) -> Flow {
        if self.looping.round.is_none() {
            if let Some(exit) = self.take_inputs() {
                return exit;
            }
            let now = Instant::now();
            self.looping.round = Some(Round {
                began: now,
                at: now,
                ran: 0,
            });
        }
        if let Some((lease, job, timer)) = self.run_turns() {
            return Flow::Run(lease, job, timer);
        }
        self.looping.round = None;
        self.after_round()
    }

    /// Waits for input (unless calls are runnable), takes what is queued
    /// and feeds the core; `Flow::Exit` once the partition has stopped.
    fn take_inputs(&mut self) -> Option<Flow> {
        // Idle first, then look once more: the writer either sees the flag
        // (and wakes us) or we see what it made durable. Calls waiting that
        // the core would take now, or a snapshot being built (a step of it
        // at each tick): no wait either.
        self.durable.idle(true);
        let runnable = self.runnable() || self.core.snapshot_can_step();
        let first = if runnable || self.durable.get().0 > self.seen {
            self.inputs.try_recv().map_err(|e| match e {
                std::sync::mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                std::sync::mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            self.inputs.recv_timeout(TICK)
        };
        self.durable.idle(false);
        let mut batch = std::mem::take(&mut self.looping.batch);
        match first {
            Ok(i) => self.pull(i, &mut batch),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                for (tenant, w) in self.turns.drain() {
                    self.refuse(w.into_input(tenant));
                }
                return Some(Flow::Exit);
            }
        }
        self.core.tick(now(self.started));
        let mut stop = false;
        for (fed, input) in batch.drain(..).enumerate() {
            if stop {
                self.refuse(input);
                continue;
            }
            // Now and then, if the writer made more durable, answer what
            // became chosen without waiting for the whole batch.
            if fed % CHECK_EVERY == 0 {
                self.answer_chosen();
            }
            stop |= self.feed(input);
        }
        self.looping.batch = batch;
        if stop {
            let go_on = self.act();
            self.exit(go_on);
            return Some(Flow::Exit);
        }
        None
    }

    /// After a round of calls: holds that waited for one go to the core,
    /// the core's output is acted on, and the rest of the loop's chores.
    fn after_round(&mut self) -> Flow {
        for h in self.held_back.iter_mut() {
            h.after_round = true;
        }
        self.pass_holds();
        if !self.act() {
            self.exit(false);
            return Flow::Exit;
        }
        self.recall_runners();
        if let Some(r) = &mut self.routes {
            r.check(self.core.state(), &self.fatal);
        }
        if let Some(a) = &mut self.anchor {
            a.step(&mut self.core);
            let leading = self.core.is_leader();
            if leading != a.was_leading {
                a.was_leading = leading;
                let p = self.core.partition().0;
                let ballot = self.core.paxos().promised();
                if leading {
                    tracing::info!(partition = p, %ballot, "leading");
                } else {
                    tracing::info!(partition = p, %ballot, "no longer leading");
                }
            }
        }
        let snap = self.core.paxos().snapshot_meta().slot;
        self.looping.waiters.retain(|(done, target)| {
            let written = snap >= *target;
            if written {
                let _ = done.send(());
            }
            !written
        });
        if self.looping.rows_at.elapsed() >= ROWS_EVERY {
            self.looping.rows_at = Instant::now();
            self.publish_rows();
        }
        Flow::Again
    }

    /// The partition stops: (when the core can still act) what is being
    /// made durable gets its answers, then everything else is refused.
    fn exit(&mut self, go_on: bool) {
        if go_on {
            self.drain();
        }
        // A snapshot being written aside is given up (a later start finds
        // its file and removes it); its thread ends within a chunk.
        if let Some((thread, cancel)) = self.looping.stager.take() {
            cancel.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
        for (tenant, w) in self.turns.drain() {
            self.refuse(w.into_input(tenant));
        }
        while let Some(h) = self.held_back.pop_front() {
            self.refuse(Input::Hold {
                tenant: h.tenant,
                lent: h.lent,
            });
        }
        // Whatever else is queued gets an answer before the receiver goes
        // (what arrives after that is answered by `QueuedReply`, or by the
        // sender, which finds it gone).
        for input in self.inputs.try_iter().take(PARTITION_QUEUE_MAX) {
            self.refuse(input);
        }
    }

    /// Hands one input to the core; true on `Stop`.
    fn feed(&mut self, input: Input) -> bool {
        let Some(input) = self.admit_call(input) else {
            return false;
        };
        match input {
            // Admitted above.
            Input::Call { .. } => {}
            // Passed to the core after a round of waiting calls (so
            // back-to-back holds cannot starve them) and once the parts it
            // needs are home; the rest run once the holder is done.
            Input::Hold { tenant, lent } => self.held_back.push_back(HeldBack {
                tenant,
                lent,
                after_round: false,
            }),
            Input::Release {
                state,
                entry,
                discard,
                done,
            } => self
                .core
                .release(Token::Release(done), state, entry, discard),
            Input::Decided { txn, commit } => self.core.decided(txn, commit),
            Input::Resolve { txn } => self.core.resolve(txn),
            Input::Resume => self.core.resume(),
            Input::Ran { ran, reply, cost } => self.lent_ran(ran, reply, cost),
            Input::PartHome { lease, unrun } => self.part_home(lease, unrun),
            Input::Snapshot(done) => {
                self.core.request_snapshot();
                let applied = self.core.applied();
                self.looping.waiters.push((done, applied));
            }
            // A wake-up: what is durable is read from `durable`.
            Input::Persisted => self.catch_up(),
            Input::Staged { meta, written } => self.staged(meta, written),
            Input::Peer { from, msg } => {
                self.stats.peer_queued.fetch_sub(1, Ordering::Relaxed);
                self.core.step(from, msg);
            }
            Input::WriterFailed(e) => {
                // `act` reports it and answers what the core holds.
                self.core.stop(e);
                return true;
            }
            Input::Space(why) => self.disk_space(why),
            Input::Stop => {
                // What was queued before runs first, for up to
                // `STOP_WORK_MAX` (then the watchdog halts what runs) and
                // while the core takes calls; the rest are refused, not
                // applied (by the caller, at exit).
                let deadline = Instant::now() + super::watchdog::STOP_WORK_MAX;
                while !self.core.would_queue() && Instant::now() < deadline {
                    let (runners, core) = (&self.runners, &self.core);
                    let here = |t| !runners.is_out(t) && !core.is_away(t);
                    let Some((tenant, w)) = self.turns.take_where(here) else {
                        break;
                    };
                    self.call(tenant, w);
                }
                self.bring_parts_home(deadline);
                return true;
            }
        }
        false
    }

    /// If the writer made more durable, answers what became chosen.
    fn answer_chosen(&mut self) {
        if self.durable.get().0 > self.seen {
            self.core.set_time(now(self.started));
            self.catch_up();
            for (token, result) in self.core.take_replies() {
                self.answer(token, result);
            }
        }
    }

    /// Sorts `first` and what else is queued (up to `EXECUTOR_BATCH_MAX`
    /// inputs, and up to a `Stop`): calls to their tenants' lanes, the rest
    /// to `batch` (up to `OTHER_INPUTS_MAX`).
    fn pull(&mut self, first: Input, batch: &mut Vec<Input>) {
        let mut next = Some(first);
        for _ in 0..EXECUTOR_BATCH_MAX {
            let Some(input) = next.take().or_else(|| self.inputs.try_recv().ok()) else {
                return;
            };
            match self.admit_call(input) {
                None => {}
                Some(Input::Stop) => return batch.push(Input::Stop),
                Some(other) => {
                    batch.push(other);
                    if batch.len() >= OTHER_INPUTS_MAX {
                        return;
                    }
                }
            }
        }
    }

    /// A call goes to its tenant's lane (None); any other input comes back.
    fn admit_call(&mut self, input: Input) -> Option<Input> {
        let Input::Call {
            tenant,
            procedure,
            args,
            key,
            timeout_ms,
            reply,
        } = input
        else {
            return Some(input);
        };
        let w = PendingCall {
            procedure,
            args,
            key,
            timeout_ms,
            reply,
            preempts: 0,
        };
        self.admit(tenant, w);
        None
    }

    /// Puts a call in its tenant's lane, or answers `overloaded` when the
    /// lane is full.
    fn admit(&mut self, tenant: TenantId, w: PendingCall) {
        if self.turns.lane_len(tenant) < LANE_CALLS_MAX {
            return self.turns.push(tenant, w);
        }
        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        let e = CallError::Overloaded(format!(
            "the tenant has {LANE_CALLS_MAX} calls waiting on partition {}",
            self.core.partition().0
        ));
        self.answer(Token::Call(w.reply.take()), Err(e));
    }

    /// Runs waiting calls in their tenants' fair order, each charged the
    /// time it took, until `ROUND_CALLS_MAX` calls or `ROUND_TIME_MAX`
    /// have gone by, or the core would keep them waiting (it is held). A
    /// heavy tenant's calls go to a runner with its part instead (see
    /// `runner`); a call that could hold another tenant up (one waits or
    /// was active lately) comes back with its tenant's part lent, to run
    /// where it can be taken over if it runs long (`relief`), unless the
    /// core cannot lend now. Any other call runs here: nothing would take
    /// the loop over from it (`needs_relief` asks the same, and no tenant
    /// becomes active while the loop waits for the call), and a lend costs
    /// the part's move out and back and three locks. A call is timed
    /// by the CPU it used while another tenant waits or was active (then
    /// its wall time may be mostly a wait for the CPU), else by wall time.
    fn run_turns(&mut self) -> Option<(Box<Lease>, Job, CallTimer)> {
        self.feed_runners();
        loop {
            let round = self.looping.round.as_mut()?;
            let Round { began, at, ran } = *round;
            if ran >= ROUND_CALLS_MAX
                || self.turns.is_empty()
                || self.core.would_queue()
                || (ran > 0 && at.duration_since(began) >= ROUND_TIME_MAX)
            {
                return None;
            }
            round.ran += 1;
            // Now and then, if the writer made more durable, answer what
            // became chosen without waiting for the whole round.
            if ran % CHECK_EVERY == CHECK_EVERY - 1 {
                self.answer_chosen();
            }
            let (runners, core) = (&self.runners, &self.core);
            let (tenant, w) = self
                .turns
                .take_where(|t| !runners.is_out(t) && !core.is_away(t))?;
            let others =
                self.turns.others_waiting(tenant) || self.runners.others_active(tenant, at);
            let w = match self.lend(tenant, w, at, others) {
                Ok(()) => {
                    self.turns.ran(0);
                    continue;
                }
                Err(w) => w,
            };
            if others {
                if let Some(lease) = self.core.lend_part(tenant) {
                    return Some((lease, self.job(w), CallTimer::start(others)));
                }
            }
            let timer = CallTimer::start(others);
            self.call(tenant, w);
            self.charge(tenant, timer.cost());
        }
    }

    /// The call of `lease` ran here (its executor was not taken over
    /// meanwhile): the core proposes and answers it, and has the part
    /// back.
    pub(super) fn ran_here(
        &mut self,
        lease: Box<Lease>,
        reply: QueuedReply,
        ran: Ran,
        cost: Duration,
    ) {
        let tenant = lease.tenant();
        self.core.lent_ran(Token::Call(reply.take()), ran);
        self.core.part_home(lease);
        self.charge(tenant, cost);
    }

    /// Whether a call of `tenant` that runs long should move off this
    /// thread: another tenant waits or was active lately, and a runner
    /// slot is free for it.
    pub(super) fn needs_relief(&self, tenant: TenantId) -> bool {
        self.runners.can_adopt()
            && (self.turns.others_waiting(tenant)
                || self.runners.others_active(tenant, Instant::now()))
    }

    /// The loop was taken over while a call of `tenant` ran here for
    /// `cost` so far (`relief`): the call goes on as its runner's.
    pub(super) fn took_over(&mut self, tenant: TenantId, cost: Duration) {
        self.charge(tenant, cost);
    }

    /// Charges `tenant`'s fair turn the `cost` of the call just run here.
    fn charge(&mut self, tenant: TenantId, cost: Duration) {
        let end = Instant::now();
        self.turns
            .ran(u64::try_from(cost.as_micros()).unwrap_or(u64::MAX));
        self.runners.ran(tenant, cost, end);
        if let Some(r) = &mut self.looping.round {
            r.at = end;
        }
    }

    /// Whether a call waits that could run now: on the executor (the core
    /// takes calls), or on a runner with room.
    fn runnable(&self) -> bool {
        if self.turns.is_empty() {
            return false;
        }
        let out = |t: &TenantId| self.turns.lane_len(*t);
        let feedable: usize = self
            .runners
            .tenants_out()
            .filter(|t| self.runners.has_room(*t))
            .map(|t| out(&t))
            .sum();
        // Calls of tenants whose part is out (on a runner, or back and not
        // in the state yet) cannot run here.
        // (And those a holder works on: they wait for it.)
        let mut away: Vec<TenantId> = self.runners.tenants_out().collect();
        let home = self.core.away_tenants();
        away.extend(home.filter(|t| !self.runners.is_out(*t)));
        let waiting_away: usize = away.iter().map(out).sum();
        feedable > 0 || (self.turns.len() > waiting_away && !self.core.would_queue())
    }

    /// Lends `tenant`'s part to a runner and hands it `w`, if `others`
    /// (another tenant waits or was active), the tenant is heavy, a runner
    /// slot is free and the core can lend; else `w` comes back to run here.
    fn lend(
        &mut self,
        tenant: TenantId,
        w: PendingCall,
        now: Instant,
        others: bool,
    ) -> Result<(), PendingCall> {
        if !others
            || !self.runners.wants_lease(tenant, now)
            || self.hold_waits_for(tenant)
            || self.core.snapshot_due()
            || self.core.snapshot_will_read(tenant)
        {
            return Err(w);
        }
        let Some(lease) = self.core.lend_part(tenant) else {
            return Err(w);
        };
        if let Err(lease) = self.runners.start(lease, self.own.clone()) {
            self.core.part_home(lease);
            return Err(w);
        }
        self.hand_to_runner(tenant, w);
        Ok(())
    }

    /// Hands the calls waiting in the lanes of tenants out on runners to
    /// those runners, up to their room.
    fn feed_runners(&mut self) {
        // Not while the core keeps calls waiting: what runners run would
        // wait too, unproposed (this bounds it to what they were handed).
        if self.core.would_queue() {
            return;
        }
        let out: Vec<TenantId> = self.runners.tenants_out().collect();
        for t in out {
            while self.runners.has_room(t) {
                let Some(w) = self.turns.take_from(t) else {
                    break;
                };
                self.hand_to_runner(t, w);
            }
        }
    }

    /// Sends `w` to `tenant`'s runner, or back to the front of its lane.
    fn hand_to_runner(&mut self, tenant: TenantId, w: PendingCall) {
        let job = self.job(w);
        if let Err(job) = self.runners.send(tenant, job) {
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
            self.turns.push_front(tenant, PendingCall::from_job(*job));
        }
    }

    /// `w` as a call to run on a lent part (out of the queue).
    fn job(&mut self, w: PendingCall) -> Job {
        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        let PendingCall {
            procedure,
            args,
            key,
            timeout_ms,
            reply,
            preempts,
        } = w;
        let call = LentCall {
            procedure,
            args,
            key,
            timeout_ms,
            txn: self.core.lent_txn(),
        };
        Job {
            call,
            reply,
            preempts,
        }
    }

    /// A runner's call ran: the core proposes and answers it.
    fn lent_ran(&mut self, ran: Ran, reply: QueuedReply, cost: Duration) {
        self.runners.answered(ran.tenant(), cost);
        self.core.lent_ran(Token::Call(reply.take()), ran);
    }

    /// A runner brought its part home: the calls it did not start go back
    /// to the front of the lane, in order.
    fn part_home(&mut self, lease: Box<Lease>, unrun: Vec<Job>) {
        let tenant = lease.tenant();
        self.runners.home(tenant);
        for job in unrun.into_iter().rev() {
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
            self.turns.push_front(tenant, PendingCall::from_job(job));
        }
        self.core.part_home(lease);
        self.pass_holds();
    }

    /// Hands the core the holds that waited a round and whose parts are
    /// home, in order; recalls (stopping the call it runs) the runner of
    /// the first whose part is out.
    fn pass_holds(&mut self) {
        while let Some(h) = self.held_back.front() {
            let tenant = h.tenant;
            let out = match tenant {
                Some(t) => self.runners.is_out(t),
                None => self.runners.any_out(),
            };
            if out {
                return self.runners.preempt(tenant);
            }
            if !h.after_round {
                return;
            }
            let Some(h) = self.held_back.pop_front() else {
                return;
            };
            self.core.hold_for(Token::Hold(h.lent), h.tenant);
        }
    }

    /// Whether a hold waits for `tenant`'s part (so it must not go out).
    fn hold_waits_for(&self, tenant: TenantId) -> bool {
        self.held_back
            .iter()
            .any(|h| h.tenant.is_none_or(|t| t == tenant))
    }

    /// Recalls every runner when the core wants its parts home (a snapshot
    /// or a hold waits for them, or they went stale), else those idle.
    fn recall_runners(&mut self) {
        if !self.runners.any_out() {
            return;
        }
        if self.core.wants_parts_home() || !self.core.is_leader() {
            return self.runners.recall_all();
        }
        self.runners.recall_stale(self.core.part_generation());
        let turns = &self.turns;
        self.runners
            .recall_idle(Instant::now(), |t| turns.lane_len(t) > 0);
    }

    /// On `Stop`: recalls every runner and waits (until `deadline`) for
    /// their parts and answers; anything else arriving meanwhile is
    /// refused.
    fn bring_parts_home(&mut self, deadline: Instant) {
        self.runners.recall_all();
        while self.runners.any_out() && Instant::now() < deadline {
            match self.inputs.recv_timeout(TICK) {
                Ok(Input::Ran { ran, reply, cost }) => self.lent_ran(ran, reply, cost),
                Ok(Input::PartHome { lease, unrun }) => self.part_home(lease, unrun),
                Ok(other) => self.while_stopping(other),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Hands a call to the core.
    fn call(&mut self, tenant: TenantId, w: PendingCall) {
        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        let PendingCall {
            procedure,
            args,
            key,
            timeout_ms,
            reply,
            ..
        } = w;
        let token = Token::Call(reply.take());
        self.core
            .call(token, tenant, procedure, args, (key, timeout_ms));
    }

    /// Tells the core what the writer made durable since the last time.
    fn catch_up(&mut self) {
        let (seq, log_bytes) = self.durable.get();
        if seq > self.seen {
            self.seen = seq;
            self.stats.log_bytes.store(log_bytes, Ordering::Relaxed);
            self.core.persisted(seq, log_bytes);
        }
    }

    /// Acts on the core's Ready; false when the partition must stop.
    fn act(&mut self) -> bool {
        // The clock after the calls ran (their reads are stamped with it),
        // and what became durable meanwhile.
        self.core.set_time(now(self.started));
        self.catch_up();
        for _ in 0..ACT_ROUNDS_MAX {
            match self.act_once() {
                Acted::Stop => return false,
                Acted::Done => return true,
                Acted::Again => {}
            }
        }
        true
    }

    fn act_once(&mut self) -> Acted {
        let mut ready: Ready<Token> = self.core.ready();
        let mut stop = ready.fatal.is_some();
        let mut again = false;
        if !stop && ready.rebuild {
            // Alone, a leader rebuilds only to drop an aborted share.
            if self.outbox.is_none() && !self.core.is_leader() {
                // One replica per group: nobody else can take leadership.
                self.core
                    .stop("a single-replica partition lost its leadership".into());
                stop = true;
            } else {
                let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
                self.core.rebuild(&mut *log);
                again = true;
            }
        }
        if !stop {
            if let Err(e) = self.read_for_peers(&ready) {
                self.core.stop(e);
                stop = true;
            }
            again |= !ready.reads.is_empty() || !ready.snapshot_reads.is_empty();
        }
        if let Some(out) = &self.outbox {
            for (to, msg) in ready.messages.drain(..) {
                out(to, msg);
            }
        }
        if let Some(batch) = ready.write.take().filter(|_| !stop) {
            if self.writer.send(WriterMsg::Batch(batch)).is_err() {
                // The writer stopped on an error it reported (or the node
                // is going down): nothing more may be acknowledged.
                self.core.stop("its log writer stopped".into());
                stop = true;
            }
        }
        if let Some(meta) = ready.discard_staged.take() {
            self.discard_staged(meta);
        }
        if let Some((meta, bytes)) = ready.stage_snapshot.take().filter(|_| !stop) {
            self.stage(meta, bytes);
        }
        if !self.core.stage_wanted() {
            // Given up: its writing need not go on (it reports, and the
            // core discards what it wrote).
            if let Some((_, cancel)) = &self.looping.stager {
                cancel.store(true, Ordering::Relaxed);
            }
        }
        self.pass_outcomes(&mut ready);
        self.publish_consensus();
        // What this Ready released stands, stopping or not.
        self.deliver(ready);
        if stop {
            // The core answered what it still had; the node hears why.
            let rest = self.core.ready();
            let why = rest.fatal.clone();
            self.deliver(rest);
            (self.fatal)(why.unwrap_or_else(|| "the partition stopped".into()));
            return Acted::Stop;
        }
        if again {
            Acted::Again
        } else {
            Acted::Done
        }
    }

    /// Writes a snapshot's file aside on a thread of its own: for a large
    /// state that takes seconds, and the writer goes on with the log
    /// meanwhile (the core installs it once it hears, `Input::Staged`).
    /// The core hands out one at a time.
    fn stage(&mut self, meta: SnapshotMeta, bytes: Vec<u8>) {
        if let Some((thread, _)) = self.looping.stager.take() {
            let _ = thread.join(); // it reported already
        }
        let stager = match self.stager_fs().and_then(|s| s.try_clone()) {
            Ok(s) => s,
            Err(e) => return self.staged(meta, Err(e.to_string())),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let (own, stop) = (self.own.clone(), cancel.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("ohm-p{}-snapshot", self.core.partition().0))
            .spawn(move || {
                // A panic is reported too: the core would wait for ever.
                let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    stager.stage(meta, &bytes, &stop)
                }));
                drop(bytes);
                let written = match written {
                    Ok(w) => w.map_err(|e| e.to_string()),
                    Err(_) => Err("its writing thread panicked".to_string()),
                };
                let _ = own.send(Input::Staged { meta, written });
            });
        match spawned {
            Ok(thread) => self.looping.stager = Some((thread, cancel)),
            Err(e) => self.staged(meta, Err(format!("starting its thread: {e}"))),
        }
    }

    /// The stager of this partition's log directory, opened at first use.
    fn stager_fs(&mut self) -> Result<&Stager<DirFs>, crate::durability::DurabilityError> {
        if self.looping.stager_fs.is_none() {
            let s = self
                .log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .stager()?;
            self.looping.stager_fs = Some(s);
        }
        Ok(self.looping.stager_fs.as_ref().expect("set above"))
    }

    /// Removes the file of a snapshot given up (a failure leaves a file
    /// the next start removes: reported, not fatal).
    fn discard_staged(&mut self, meta: SnapshotMeta) {
        if let Err(e) = self.stager_fs().and_then(|s| s.discard(meta)) {
            tracing::warn!(
                partition = self.core.partition().0,
                "removing the file of a snapshot given up: {e}. The next start removes it"
            );
        }
    }

    /// The writer says the disk is full (or has room again).
    fn disk_space(&mut self, why: Option<String>) {
        let p = self.core.partition().0;
        match &why {
            Some(w) if !self.core.is_leader() => tracing::warn!(
                partition = p,
                "the disk is full ({w}). This replica follows: it writes \
                 what its leader sends into the space set aside for the log, and stops if \
                 that runs out; it goes on once there is room (checked every {} s)",
                super::writer::SPACE_RETRY.as_secs()
            ),
            Some(w) => tracing::warn!(
                partition = p,
                "the disk is full ({w}). Calls that write are refused with \
                 disk_full and reads go on; what ran before is written into the space set aside \
                 for the log. Writing resumes once there is room (checked every {} s)",
                super::writer::SPACE_RETRY.as_secs()
            ),
            None => tracing::info!(partition = p, "the disk has room again: writes resume"),
        }
        self.stats.disk_full.store(why.is_some(), Ordering::Relaxed);
        self.core.set_disk_full(why);
    }

    fn staged(&mut self, meta: SnapshotMeta, written: Result<(), String>) {
        // One given up meanwhile was cancelled: nothing to report.
        let wanted = self.core.stage_wanted();
        if let (Err(e), true) = (&written, wanted) {
            tracing::warn!(
                partition = self.core.partition().0,
                "its snapshot at slot {} could not be written: {e}. The log \
                 keeps every record; the next snapshot is begun {} s from now at the soonest",
                meta.slot.0,
                crate::partition::SNAPSHOT_RETRY_US / 1_000_000
            );
        }
        self.core.snapshot_staged(meta, written);
    }

    /// Reads what lagging peers need from the log (records the leader no
    /// longer has in memory, or its snapshot).
    fn read_for_peers(&mut self, ready: &Ready<Token>) -> Result<(), String> {
        if ready.reads.is_empty() && ready.snapshot_reads.is_empty() {
            return Ok(());
        }
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        for (to, from) in &ready.reads {
            let recs = log
                .read(*from, MESSAGE_RECORD_BYTES_MAX)
                .map_err(|e| format!("reading its log for {to}: {e}"))?;
            self.core.read_done(*to, *from, recs);
        }
        for to in &ready.snapshot_reads {
            match log.read_snapshot() {
                Ok(Some((meta, bytes))) => self.core.snapshot_read(*to, meta, bytes),
                // None written yet: asked for again at a later heartbeat.
                Ok(None) => self.core.read_failed(*to),
                Err(e) => return Err(format!("reading its snapshot for {to}: {e}")),
            }
        }
        Ok(())
    }

    /// Asks partition 0's replica here for outcomes this partition waits
    /// for; hands partition 0's answers to the others.
    fn pass_outcomes(&self, ready: &mut Ready<Token>) {
        let asks = std::mem::take(&mut ready.asks);
        let answers = std::mem::take(&mut ready.answers);
        if asks.is_empty() && answers.is_empty() {
            return;
        }
        let Some(all) = self.siblings.as_ref().and_then(|s| s.upgrade()) else {
            return;
        };
        let Some(all) = all.get() else {
            return;
        };
        if let Some(p0) = all.first() {
            for txn in asks {
                let _ = p0.send(Input::Resolve { txn });
            }
        }
        for (txn, commit) in answers {
            for e in all.iter().skip(1) {
                let _ = e.send(Input::Decided { txn, commit });
            }
        }
    }

    /// What `status` shows of consensus: chosen, applied, role, leader
    /// and (on the leader) how far each replica's log matches.
    fn publish_consensus(&self) {
        let px = self.core.paxos();
        let st = &self.stats;
        st.durable_lsn.store(px.chosen().0, Ordering::Relaxed);
        st.applied.store(self.core.applied().0, Ordering::Relaxed);
        let role = match px.role() {
            crate::consensus::Role::Leader => ROLE_LEADER,
            crate::consensus::Role::Candidate { .. } => ROLE_CANDIDATE,
            crate::consensus::Role::Follower => ROLE_FOLLOWER,
        };
        st.role.store(role, Ordering::Relaxed);
        let leader = px.leader().map_or(0, |n| n.0);
        st.leader.store(leader, Ordering::Relaxed);
        let moved = st
            .leader_watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .see(leader);
        if moved {
            st.leader_changes.fetch_add(1, Ordering::Relaxed);
        }
        let mut replicas = st.replicas.lock().unwrap_or_else(|p| p.into_inner());
        replicas.clear();
        replicas.extend(px.members_matched().map(|(n, m)| (n.0, m.map(|s| s.0))));
    }

    /// Hands out replies, a lent state and a chosen release.
    fn deliver(&self, ready: Ready<Token>) {
        for (token, result) in ready.replies {
            self.answer(token, result);
        }
        if let Some((Token::Hold(tx), state)) = ready.lent {
            let _ = tx.send(Ok(state));
        }
        if let Some(Token::Release(tx)) = ready.held_chosen {
            let _ = tx.send(Ok(()));
        }
    }

    /// After `Stop`: calls whose records are being written get their
    /// answers (within `STOP_DRAIN_MAX`); anything else arriving is
    /// refused. What is still not durable then is answered as stopped,
    /// its outcome unknown.
    fn drain(&mut self) {
        let deadline = Instant::now() + STOP_DRAIN_MAX;
        while self.core.has_waiting() && Instant::now() < deadline {
            self.durable.idle(true);
            let input = self.inputs.recv_timeout(TICK);
            self.durable.idle(false);
            match input {
                Ok(other) => self.while_stopping(other),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if !self.act() {
                return;
            }
        }
        if self.core.has_waiting() {
            self.core.stop(format!(
                "the node stopped before its log made this durable (waited {STOP_DRAIN_MAX:?})"
            ));
            let rest = self.core.ready();
            self.deliver(rest);
        }
    }

    /// An input that arrives while the partition stops: a failed log stops
    /// the core, peers' messages still reach it (their acceptances choose
    /// what is waiting), what is durable is read anyway, the rest is
    /// refused.
    fn while_stopping(&mut self, input: Input) {
        match input {
            Input::WriterFailed(e) => self.core.stop(e),
            Input::Peer { from, msg } => {
                self.stats.peer_queued.fetch_sub(1, Ordering::Relaxed);
                self.core.step(from, msg);
            }
            Input::Persisted | Input::Staged { .. } | Input::Space(_) => {}
            other => self.refuse(other),
        }
    }

    /// Answers an input that arrived after the partition stopped.
    fn refuse(&self, input: Input) {
        let e = self.core.refusal().unwrap_or(CallError::Stopped {
            why: "the partition is stopping".into(),
            maybe_applied: false,
        });
        match input {
            Input::Call { reply, .. } => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                self.answer(Token::Call(reply.take()), Err(e));
            }
            Input::Hold { lent, .. } => self.answer(Token::Hold(lent), Err(e)),
            Input::Release { done, .. } => self.answer(Token::Release(done), Err(e)),
            // Its record was never proposed: not applied.
            Input::Ran { reply, .. } => self.answer(Token::Call(reply.take()), Err(e)),
            Input::PartHome { unrun, .. } => {
                for job in unrun {
                    self.answer(Token::Call(job.reply.take()), Err(e.clone()));
                }
            }
            Input::Peer { .. } => {
                self.stats.peer_queued.fetch_sub(1, Ordering::Relaxed);
            }
            Input::Snapshot(_)
            | Input::Resume
            | Input::Decided { .. }
            | Input::Resolve { .. }
            | Input::Persisted
            | Input::WriterFailed(_)
            | Input::Space(_)
            | Input::Staged { .. }
            | Input::Stop => {}
        }
    }

    fn answer(&self, token: Token, result: CallResult) {
        match token {
            Token::Call(f) => {
                let counter = if result.is_ok() {
                    &self.stats.committed
                } else {
                    &self.stats.failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                f(reply::call_result(result, &self.addrs));
            }
            Token::Hold(tx) => {
                // A hold is answered here only when refused (a lent state
                // comes through `Ready::lent`).
                let e = result.err().unwrap_or(CallError::Overloaded(
                    "the partition answered a hold without its state".into(),
                ));
                let _ = tx.send(Err(e));
            }
            Token::Release(tx) => {
                let _ = tx.send(result.map(|_| ()));
            }
        }
    }

    fn publish_rows(&self) {
        let Some(state) = self.core.state() else {
            return;
        };
        publish_per_tenant(&self.stats.rows, state, |p| p.rows());
        publish_per_tenant(&self.stats.fuel, state, |p| p.fuel.burned());
    }
}

/// Publishes `of` each tenant's part into `published`; a part lent out
/// keeps the value it had when last here.
fn publish_per_tenant(
    published: &Mutex<Arc<BTreeMap<TenantId, u64>>>,
    state: &crate::partition::PartitionState,
    of: impl Fn(&crate::partition::TenantPart) -> u64,
) {
    let mut published = published.lock().unwrap_or_else(|p| p.into_inner());
    let mut values: BTreeMap<TenantId, u64> = published
        .iter()
        .filter(|(t, _)| state.is_away(**t))
        .map(|(t, n)| (*t, *n))
        .collect();
    values.extend(state.tenants().map(|(t, p)| (t, of(p))));
    *published = Arc::new(values);
}
