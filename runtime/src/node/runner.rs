//! Runners: threads that run a heavy tenant's calls on its lent part of a
//! partition (`partition::lease`), so the executor goes on with the other
//! tenants' calls meanwhile. A tenant is heavy once two of its calls in a
//! row cost `HEAVY_CALL_MIN` (CPU time while another tenant is active: a
//! cheap call that waited for the CPU behind dear ones is not dear itself;
//! else wall time), and stays so for `HEAVY_FOR`; its calls go to a runner
//! only while another tenant is active here. Cheap tenants, and a tenant
//! alone, never pay the hop to another thread.
//!
//! ```text
//!  executor ──lend_part──▶ Lease ──▶ runner thread (nice 10, its own watch)
//!  executor ──Job──▶ runner ──Input::Ran──▶ executor ──lent_ran──▶ core
//!  runner (recalled: idle, or the core wants it) ──Input::PartHome(lease, calls not run)──▶ executor
//! ```
//!
//! Owns: which tenants are heavy, the runner threads of one partition and
//! their watches. Must not: touch the core (the executor hands what runners
//! send to it), or keep a part once recalled beyond the call it is running.

use super::executor::{Input, QueuedReply};
use super::priority::CallTimer;
use crate::partition::{Lease, LentCall};
use crate::sql::interrupt::{self, Watch};
use crate::types::TenantId;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Parts one partition lends out at once (so runner threads per
/// partition); a heavy tenant beyond them runs on the executor.
pub const LENT_PARTS_MAX: usize = 4;
/// Calls handed to one runner and not answered yet; the rest wait in the
/// tenant's lane.
pub const LEASE_JOBS_MAX: usize = 64;
/// How long a runner may have no call before it is recalled (its part
/// comes home).
pub const RUNNER_IDLE_MAX: Duration = Duration::from_millis(20);
/// Two calls in a row that take at least this long make their tenant
/// heavy.
pub const HEAVY_CALL_MIN: Duration = Duration::from_millis(1);
/// How long a tenant stays heavy after its last heavy call.
pub const HEAVY_FOR: Duration = Duration::from_secs(1);
/// Tenants remembered per partition (heavy, or with a recent call); past
/// it the ones neither heavy nor recent are forgotten (then the oldest).
const HEAVY_TENANTS_MAX: usize = 1024;
/// A tenant with a call within this long is active: another tenant's long
/// call is moved off the executor's thread only if one is (`relief`).
pub const ACTIVE_FOR: Duration = Duration::from_secs(1);
/// Times a runner's call is stopped to make way for its own tenant's
/// multi-partition work and run again; the next time it runs to its end
/// (or its time limit) and is answered.
const PREEMPTS_MAX: u8 = 3;

/// Notes `tenant` in `map` as `v` (its time is `at(v)`); entries older
/// than `keep` are forgotten (then the oldest) when it is full
/// (`HEAVY_TENANTS_MAX`).
fn remember<V: Copy>(
    map: &mut BTreeMap<TenantId, V>,
    tenant: TenantId,
    v: V,
    keep: Duration,
    at: impl Fn(&V) -> Instant,
) {
    if map.len() >= HEAVY_TENANTS_MAX && !map.contains_key(&tenant) {
        let now = at(&v);
        map.retain(|_, x| now.duration_since(at(x)) < keep);
        if map.len() >= HEAVY_TENANTS_MAX {
            let oldest = map.iter().min_by_key(|(_, x)| at(x)).map(|(t, _)| *t);
            if let Some(t) = oldest {
                map.remove(&t);
            }
        }
    }
    map.insert(tenant, v);
}

/// What `adopt` gives: the new runner's side (for the thread that was the
/// executor's) and the watch the executor's new thread installs.
pub struct Adopted {
    pub jobs: Receiver<Job>,
    pub flags: Arc<Flags>,
    pub runner_watch: Arc<Watch>,
    pub exec_watch: Arc<Watch>,
}

/// A call for a runner, with who hears its answer.
pub struct Job {
    pub call: LentCall,
    pub reply: QueuedReply,
    /// Times it was stopped to make way and put back (`PREEMPTS_MAX`).
    pub preempts: u8,
}

impl Job {
    /// Whether the call that ran as `ran`, under `flags`, goes back unrun:
    /// it was stopped to make way (so it failed, and nothing of it stays)
    /// and may be put back once more.
    pub fn put_back(&mut self, flags: &Flags, ran: &crate::partition::Ran) -> bool {
        let back = flags.preempted() && !ran.succeeded() && self.preempts < PREEMPTS_MAX;
        if back {
            self.preempts += 1;
        }
        back
    }
}

/// One runner thread, as its executor sees it.
struct Runner {
    /// Closed (None) once recalled.
    jobs: Option<SyncSender<Job>>,
    flags: Arc<Flags>,
    /// Calls sent and not yet answered (`Input::Ran`).
    in_flight: usize,
    /// When it was last sent a call or answered one.
    busy_at: Instant,
    /// Which of the partition's watches times it.
    slot: usize,
    /// The generation of the state its part was lent from.
    gen: u64,
}

/// One partition's runners and heavy tenants.
pub struct Runners {
    partition: u32,
    /// The executor's and one per runner, made with the node's watchdog.
    /// A thread keeps its watch when its role changes (`adopt`).
    watches: Vec<Arc<Watch>>,
    /// Which of them times the executor's thread.
    exec_watch: usize,
    free: Vec<usize>,
    out: BTreeMap<TenantId, Runner>,
    heavy: BTreeMap<TenantId, Instant>,
    /// When each tenant's last call here ended, and whether it took
    /// `HEAVY_CALL_MIN`.
    last_call: BTreeMap<TenantId, (Instant, bool)>,
}

impl Runners {
    /// Runners of `partition`: the last of `watches` times the executor's
    /// thread, each other one a runner's (`LENT_PARTS_MAX` + 1 of them).
    pub fn new(partition: u32, watches: Vec<Arc<Watch>>) -> Runners {
        assert_eq!(watches.len(), LENT_PARTS_MAX + 1, "a watch per thread");
        let free = (0..LENT_PARTS_MAX).rev().collect();
        Runners {
            partition,
            watches,
            exec_watch: LENT_PARTS_MAX,
            free,
            out: BTreeMap::new(),
            heavy: BTreeMap::new(),
            last_call: BTreeMap::new(),
        }
    }

    /// The watch of the executor's thread.
    pub fn exec_watch(&self) -> Arc<Watch> {
        self.watches[self.exec_watch].clone()
    }

    /// Whether a runner slot is free.
    pub fn can_adopt(&self) -> bool {
        !self.free.is_empty()
    }

    /// The executor's thread, running a call of `tenant` on its lent part,
    /// becomes that tenant's runner (keeping its watch, its call counted
    /// in flight); the executor's loop goes on with a free slot's watch,
    /// which comes back with the rest.
    pub fn adopt(&mut self, tenant: TenantId, gen: u64) -> Option<Adopted> {
        let next = self.free.pop()?;
        let (tx, jobs) = sync_channel(LEASE_JOBS_MAX);
        let flags = Arc::new(Flags::default());
        let runner = Runner {
            jobs: Some(tx),
            flags: flags.clone(),
            in_flight: 1,
            busy_at: Instant::now(),
            slot: self.exec_watch,
            gen,
        };
        self.out.insert(tenant, runner);
        let old = std::mem::replace(&mut self.exec_watch, next);
        Some(Adopted {
            jobs,
            flags,
            runner_watch: self.watches[old].clone(),
            exec_watch: self.watches[next].clone(),
        })
    }

    /// Notes that a call of `tenant` took `cost` (on the executor, or on
    /// its runner).
    pub fn ran(&mut self, tenant: TenantId, cost: Duration, now: Instant) {
        let long = cost >= HEAVY_CALL_MIN;
        let after_long = self.last_call.get(&tenant).is_some_and(|(_, l)| *l);
        remember(&mut self.last_call, tenant, (now, long), ACTIVE_FOR, |v| {
            v.0
        });
        if long && after_long {
            remember(&mut self.heavy, tenant, now, HEAVY_FOR, |at| *at);
        }
    }

    /// Whether a tenant other than `tenant` had a call here within
    /// `ACTIVE_FOR` (so `tenant`'s long call would hold it up).
    pub fn others_active(&self, tenant: TenantId, now: Instant) -> bool {
        self.last_call
            .iter()
            .any(|(t, (at, _))| *t != tenant && now.duration_since(*at) < ACTIVE_FOR)
    }

    /// Whether `tenant`'s calls should run on a runner: it is heavy, and a
    /// runner slot is free.
    pub fn wants_lease(&self, tenant: TenantId, now: Instant) -> bool {
        !self.free.is_empty()
            && self
                .heavy
                .get(&tenant)
                .is_some_and(|at| now.duration_since(*at) < HEAVY_FOR)
    }

    /// Whether `tenant`'s part is out on a runner (its calls go there).
    pub fn is_out(&self, tenant: TenantId) -> bool {
        self.out.contains_key(&tenant)
    }

    /// Whether a runner is out with `tenant`'s part and takes another call.
    pub fn has_room(&self, tenant: TenantId) -> bool {
        self.out
            .get(&tenant)
            .is_some_and(|r| r.jobs.is_some() && r.in_flight < LEASE_JOBS_MAX)
    }

    /// Tenants out on runners.
    pub fn tenants_out(&self) -> impl Iterator<Item = TenantId> + '_ {
        self.out.keys().copied()
    }

    pub fn any_out(&self) -> bool {
        !self.out.is_empty()
    }

    /// Starts a runner thread with `lease`, sending what it does to
    /// `back`. The lease comes back when no slot is free or the thread
    /// cannot start.
    pub fn start(&mut self, lease: Box<Lease>, back: Sender<Input>) -> Result<(), Box<Lease>> {
        let Some(slot) = self.free.pop() else {
            return Err(lease);
        };
        let (tenant, gen) = (lease.tenant(), lease.generation());
        let (tx, rx) = sync_channel(LEASE_JOBS_MAX);
        let flags = Arc::new(Flags::default());
        let watch = self.watches[slot].clone();
        // The lease travels to the thread through this, and comes back
        // through it if the thread cannot start.
        let handoff = Arc::new(std::sync::Mutex::new(Some(lease)));
        let thread = {
            let (handoff, flags) = (handoff.clone(), flags.clone());
            std::thread::Builder::new()
                .name(format!("ohm-p{}-t{}", self.partition, tenant.0))
                .spawn(move || {
                    let lease = handoff.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(lease) = lease {
                        serve(lease, rx, back, (watch, flags), Vec::new());
                    }
                })
        };
        if thread.is_err() {
            self.free.push(slot);
            let lease = handoff.lock().unwrap_or_else(|p| p.into_inner()).take();
            return lease.map_or(Ok(()), Err);
        }
        let runner = Runner {
            jobs: Some(tx),
            flags,
            in_flight: 0,
            busy_at: Instant::now(),
            slot,
            gen,
        };
        self.out.insert(tenant, runner);
        Ok(())
    }

    /// Hands `job` to `tenant`'s runner; it comes back when the runner has
    /// no room, was recalled, or has gone home meanwhile (boxed: it is
    /// large, and that is the rare case).
    pub fn send(&mut self, tenant: TenantId, job: Job) -> Result<(), Box<Job>> {
        let Some(r) = self.out.get_mut(&tenant) else {
            return Err(Box::new(job));
        };
        let Some(tx) = r.jobs.as_ref().filter(|_| r.in_flight < LEASE_JOBS_MAX) else {
            return Err(Box::new(job));
        };
        match tx.try_send(job) {
            Ok(()) => {
                r.in_flight += 1;
                r.busy_at = Instant::now();
                Ok(())
            }
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => Err(Box::new(job)),
        }
    }

    /// A call of `tenant`'s runner was answered; it took `cost`.
    pub fn answered(&mut self, tenant: TenantId, cost: Duration) {
        self.ran(tenant, cost, Instant::now());
        if let Some(r) = self.out.get_mut(&tenant) {
            r.in_flight = r.in_flight.saturating_sub(1);
            r.busy_at = Instant::now();
        }
    }

    /// `tenant`'s runner brought its part home (and ended).
    pub fn home(&mut self, tenant: TenantId) {
        if let Some(r) = self.out.remove(&tenant) {
            self.free.push(r.slot);
        }
    }

    /// Recalls the runners that have had no call for `RUNNER_IDLE_MAX`
    /// and whose tenant has none waiting (`waiting`).
    pub fn recall_idle(&mut self, now: Instant, waiting: impl Fn(TenantId) -> bool) {
        for (t, r) in self.out.iter_mut() {
            let idle = r.in_flight == 0 && now.duration_since(r.busy_at) >= RUNNER_IDLE_MAX;
            if idle && r.jobs.is_some() && !waiting(*t) {
                r.recall();
            }
        }
    }

    /// Recalls the runners whose part is of another generation than `gen`
    /// (the state was replaced: what they run is not applied).
    pub fn recall_stale(&mut self, gen: u64) {
        for r in self.out.values_mut() {
            if r.gen != gen && r.jobs.is_some() {
                r.recall();
            }
        }
    }

    /// Asks every runner to bring its part home after the call it runs
    /// (the calls it has not started come back with it).
    pub fn recall_all(&mut self) {
        for r in self.out.values_mut() {
            r.recall();
        }
    }

    /// Recalls `tenant`'s runner (every runner: None) at once: the call it
    /// runs is stopped, rolled back, and comes home unrun with the part,
    /// to run again after what needs the part (a hold, which every other
    /// tenant's multi-partition work waits behind).
    pub fn preempt(&mut self, tenant: Option<TenantId>) {
        for (t, r) in self.out.iter_mut() {
            if tenant.is_none_or(|x| x == *t) {
                r.flags.preempted.store(true, Ordering::Release);
                r.recall();
                self.watches[r.slot].stop_running();
            }
        }
    }
}

impl Runner {
    fn recall(&mut self) {
        self.flags.recalled.store(true, Ordering::Release);
        self.jobs = None;
    }
}

/// What a runner's executor tells it besides its calls.
#[derive(Default)]
pub struct Flags {
    /// Bring the part home; start no more calls.
    recalled: AtomicBool,
    /// And the call running was stopped to make way: it goes home unrun.
    preempted: AtomicBool,
}

impl Flags {
    /// Whether the call that just ran was stopped to make way.
    pub fn preempted(&self) -> bool {
        self.preempted.load(Ordering::Acquire)
    }
}

/// A runner thread's work: runs the calls it gets on the lent part, each
/// answered through `back`, until its executor recalls it (closing
/// `jobs`); then sends the part home with `unrun` and the calls it did not
/// start (or was stopped in).
pub fn serve(
    mut lease: Box<Lease>,
    jobs: Receiver<Job>,
    back: Sender<Input>,
    (watch, flags): (Arc<Watch>, Arc<Flags>),
    mut unrun: Vec<Job>,
) {
    interrupt::install(watch);
    // Behind the executors: a heavy tenant takes what CPU they leave.
    super::priority::lower_priority();
    // Ends once the executor has dropped its sender and every call it
    // sent is taken, so none is lost with the channel.
    for job in jobs.iter() {
        if flags.recalled.load(Ordering::Acquire) {
            unrun.push(job);
            continue;
        }
        let mut job = job;
        // A runner exists only while another tenant is active here.
        let timer = CallTimer::start(true);
        let ran = lease.run(&job.call);
        // Stopped to make way: it runs again once the part is back.
        if job.put_back(&flags, &ran) {
            unrun.push(job);
            continue;
        }
        let answer = Input::Ran {
            ran,
            reply: job.reply,
            cost: timer.cost(),
        };
        if let Err(gone) = back.send(answer) {
            drop(gone); // the executor is gone, and the part with it
            return;
        }
    }
    let _ = back.send(Input::PartHome { lease, unrun });
}
