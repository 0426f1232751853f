//! Relief for a partition's executor: a call that could hold another
//! tenant up (one waits, or was active lately) runs on its tenant's part
//! lent out of the state, on the executor's thread, with the executor
//! itself parked meanwhile; other calls run on the state itself, since
//! nothing would take the loop over from them. If a lent call runs past
//! `HANDOFF_AFTER`, the monitor thread starts a new thread that takes the
//! executor's loop over, and the thread running the call becomes its
//! tenant's runner (`runner`). A call timed by CPU (another tenant is
//! active) runs past `HANDOFF_AFTER` when it has used that much CPU, or
//! `HANDOFF_WALL_MAX` of wall time: a cheap call that waited for the CPU
//! (the node is busy) is not a long call, and made a runner (nice 10) it
//! would wait for the CPU behind the dear ones. No tenant's call then
//! waits behind another tenant's long call for more than about
//! `HANDOFF_AFTER` of that call's CPU time (at most `HANDOFF_WALL_MAX`),
//! the first one included, and a lent call that ends in time costs two
//! lock round trips.
//!
//! ```text
//!  thread 1: executor loop ── park(executor) ── call ────────────── unpark ─▶ executor loop
//!  monitor:                    (ran HANDOFF_AFTER) take executor ─▶ thread 2: executor loop
//!  thread 1:                                            call ends ─▶ tenant's runner ─▶ part home
//! ```
//!
//! Owns: the parked executor and the hand-over. Must not: run calls or
//! touch the core (the executor's loop does); keep an executor it took
//! over (it goes to the new thread at once).

use super::executor::{Executor, Flow, Input};
use super::priority::CallTimer;
use super::runner::{self, Adopted, Job};
use crate::partition::Lease;
use crate::types::TenantId;
use std::sync::mpsc::{sync_channel, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a call runs on the executor's thread before another thread
/// takes the executor's loop over (CPU time when the call is timed by CPU,
/// else wall time).
pub const HANDOFF_AFTER: Duration = Duration::from_millis(2);
/// How long in wall time a call timed by CPU runs on the executor's thread
/// before the loop is taken over however little CPU it used (it may wait
/// for something other than the CPU: memory being paged in).
pub const HANDOFF_WALL_MAX: Duration = Duration::from_millis(20);
/// How often the monitor looks at the parked executors.
const MONITOR_PERIOD: Duration = Duration::from_millis(1);

/// Threads that took an executor's loop over, for the node to join at
/// shutdown (finished ones are dropped as new ones come: at most one per
/// partition runs).
pub type Handovers = Arc<Mutex<Vec<JoinHandle<()>>>>;

/// One partition's executor, as the monitor sees it.
pub struct Relief {
    partition: u32,
    handovers: Handovers,
    /// The call running with the executor parked, if one is.
    current: Mutex<Option<Arc<Parking>>>,
}

/// One call run with the executor parked. Its own, so the thread that
/// takes the loop over can park the executor again while this call still
/// runs.
struct Parking {
    /// What the call has cost so far, readable from the monitor's thread.
    timer: CallTimer,
    slot: Mutex<Slot>,
}

impl Parking {
    /// Whether the call has run long enough to take the loop over from it.
    fn ran_long(&self) -> bool {
        ran_long(self.timer.wall(), || self.timer.cost())
    }
}

/// Whether a call that has run for `wall`, at a cost of `cost()` (read
/// only if needed: it may be a system call), has run long.
fn ran_long(wall: Duration, cost: impl FnOnce() -> Duration) -> bool {
    wall >= HANDOFF_WALL_MAX || (wall >= HANDOFF_AFTER && cost() >= HANDOFF_AFTER)
}

enum Slot {
    Empty,
    /// Parked while its thread runs a call of `tenant` on a part lent
    /// from the state's generation `gen`.
    Parked {
        exec: Box<Executor>,
        tenant: TenantId,
        gen: u64,
    },
    /// Taken over while the call ran.
    TakenOver(TakenOver),
}

/// What the thread whose executor was taken over goes on with.
struct TakenOver {
    adopted: Adopted,
    back: Sender<Input>,
}

impl Relief {
    pub fn new(partition: u32, handovers: Handovers) -> Arc<Relief> {
        Arc::new(Relief {
            partition,
            handovers,
            current: Mutex::new(None),
        })
    }

    fn park(&self, exec: Box<Executor>, lease: &Lease, timer: CallTimer) -> Arc<Parking> {
        let (tenant, gen) = (lease.tenant(), lease.generation());
        let parking = Arc::new(Parking {
            timer,
            slot: Mutex::new(Slot::Parked { exec, tenant, gen }),
        });
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(parking.clone());
        parking
    }

    fn unpark(&self, parking: &Arc<Parking>) -> Result<Box<Executor>, TakenOver> {
        {
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, parking)) {
                *current = None;
            }
        }
        let mut slot = parking.slot.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Parked { exec, .. } => Ok(exec),
            Slot::TakenOver(t) => Err(t),
            Slot::Empty => unreachable!("unparked twice"),
        }
    }

    /// The monitor's look: takes the loop over from a call that has run
    /// for `HANDOFF_AFTER` (`Parking::ran_long`), if another tenant is
    /// waiting or was active lately (else nobody waits for the loop) and
    /// a runner slot is free for the call's thread.
    fn look(&self) {
        let Some(parking) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return;
        };
        // Its CPU clock is read outside the lock the call's end takes.
        if !parking.ran_long() {
            return;
        }
        let mut slot = parking.slot.lock().unwrap_or_else(|p| p.into_inner());
        let (mut exec, tenant, gen) = match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Parked { exec, tenant, gen } if exec.needs_relief(tenant) => (exec, tenant, gen),
            other => {
                *slot = other;
                return;
            }
        };
        // The new thread gets the executor once it is known to run.
        let (hand, taken) = sync_channel::<(Box<Executor>, Arc<crate::sql::interrupt::Watch>)>(1);
        let next = std::thread::Builder::new()
            .name(format!("ohm-p{}", self.partition))
            .spawn(move || {
                if let Ok((exec, watch)) = taken.recv() {
                    crate::sql::interrupt::install(watch);
                    run_loop(exec);
                }
            });
        let Ok(next) = next else {
            // No thread: the call runs to its end where it is.
            *slot = Slot::Parked { exec, tenant, gen };
            return;
        };
        let Some(adopted) = exec.runners.adopt(tenant, gen) else {
            unreachable!("a free runner slot was checked above");
        };
        exec.took_over(tenant, HANDOFF_AFTER);
        let back = exec.own.clone();
        let watch = adopted.exec_watch.clone();
        if let Err(e) = hand.send((exec, watch)) {
            // Unreachable (the thread waits for it); the executor goes
            // back where it was rather than be lost.
            let (exec, _) = e.0;
            *slot = Slot::Parked { exec, tenant, gen };
            return;
        }
        *slot = Slot::TakenOver(TakenOver { adopted, back });
        let mut handovers = self.handovers.lock().unwrap_or_else(|p| p.into_inner());
        handovers.retain(|h| !h.is_finished());
        handovers.push(next);
        drop(handovers);
        drop(slot);
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &parking)) {
            *current = None;
        }
    }
}

/// The executor's loop, on whichever thread runs it.
pub fn run_loop(mut exec: Box<Executor>) {
    loop {
        match exec.step() {
            Flow::Again => {}
            Flow::Exit => return,
            Flow::Run(lease, job, timer) => match run_parked(exec, lease, job, timer) {
                Some(e) => exec = e,
                None => return,
            },
        }
    }
}

/// Runs `job` on `lease` with `exec` parked, timed by `timer` (started on
/// this thread): the executor back if it was not taken over meanwhile;
/// else this thread serves as the tenant's runner until recalled (None).
fn run_parked(
    exec: Box<Executor>,
    mut lease: Box<Lease>,
    job: Job,
    timer: CallTimer,
) -> Option<Box<Executor>> {
    let relief = exec.relief.clone();
    let parking = relief.park(exec, &lease, timer);
    let ran = lease.run(&job.call);
    let cost = timer.cost();
    match relief.unpark(&parking) {
        Ok(mut exec) => {
            exec.ran_here(lease, job.reply, ran, cost);
            Some(exec)
        }
        Err(t) => {
            drop(relief);
            let TakenOver { adopted, back } = t;
            let mut unrun = Vec::new();
            let mut job = job;
            if job.put_back(&adopted.flags, &ran) {
                // Stopped to make way: it runs again after what needed
                // the part.
                unrun.push(job);
            } else {
                let _ = back.send(Input::Ran {
                    ran,
                    reply: job.reply,
                    cost,
                });
            }
            let Adopted {
                jobs,
                flags,
                runner_watch,
                ..
            } = adopted;
            runner::serve(lease, jobs, back, (runner_watch, flags), unrun);
            None
        }
    }
}

/// The monitor: looks at every partition's executor each
/// `MONITOR_PERIOD`, until they are all gone.
pub fn monitor(reliefs: Vec<Weak<Relief>>) {
    loop {
        std::thread::sleep(MONITOR_PERIOD);
        let mut any = false;
        for r in &reliefs {
            if let Some(r) = r.upgrade() {
                any = true;
                r.look();
            }
        }
        if !any {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_waited_rather_than_worked_is_not_taken_over() {
        let ms = Duration::from_millis;
        // Waited (for the CPU) past HANDOFF_AFTER, used little of it.
        assert!(!ran_long(ms(6), || ms(1)));
        // Timed by wall time (a lone tenant): its cost is its wall time.
        assert!(ran_long(ms(6), || ms(6)));
        assert!(ran_long(HANDOFF_AFTER, || HANDOFF_AFTER));
        assert!(!ran_long(ms(1), || panic!(
            "no clock read before HANDOFF_AFTER"
        )));
        // Past HANDOFF_WALL_MAX it is taken over whatever it used.
        assert!(ran_long(HANDOFF_WALL_MAX, || ms(0)));
        // A parked call reads its timer: here asleep, so nearly no CPU.
        let parking = Parking {
            timer: CallTimer::start(false),
            slot: Mutex::new(Slot::Empty),
        };
        std::thread::sleep(HANDOFF_AFTER);
        assert!(parking.ran_long());
    }
}
