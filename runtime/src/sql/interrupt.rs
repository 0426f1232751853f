//! Stopping work that runs past its time, or whose client has gone: the
//! engine's side (checks inside scans, joins and between statements) and
//! the watchdog's (a pure `scan` the node runs on its own thread).
//!
//! Owns: `Watch` (one per thread that runs statements or calls, shared
//! with the watchdog), the thread's current piece of work (`Work`), and
//! `check`/`tick`, which say whether to stop.
//! Must not: read a clock on the working thread. The thread only counts
//! its work (a generation number); the watchdog reads the clock and stops
//! a generation that ran past its budget. A thread without a watch (the
//! simulator, tests, tools) is never stopped, so a seed still replays.
//!
//! ```text
//!   executor / coordinator thread            watchdog thread (every 5 ms)
//!   Work::begin ── gen += 1 (odd: running)   scan: a gen seen running for
//!   tick()/check() ── tripped == gen? ◀──────      its budget → tripped = gen
//!   drop(Work) ── gen += 1 (even: idle)
//! ```

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// Rows visited between two looks at the flags (`tick`).
pub const CHECK_EVERY_ROWS: u32 = 1024;

/// Why work was stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Stopped {
    #[error("stopped after its time limit of {budget_ms} ms; everything it did was rolled back")]
    Deadline { budget_ms: u64 },
    #[error(
        "cancelled: its client closed the stream or connection; everything it did was rolled back"
    )]
    Cancelled,
    #[error("cancelled: the node is stopping; everything it did was rolled back")]
    Shutdown,
}

/// The timing of one thread's work, shared with the watchdog.
#[derive(Debug)]
pub struct Watch {
    /// Bumped when work begins (odd: running) and ends (even: idle).
    gen: AtomicU64,
    /// A generation the watchdog stopped (0: none yet).
    tripped: AtomicU64,
    /// The running work's budget.
    budget_ms: AtomicU64,
    /// The budget of work that names none.
    default_ms: u64,
    /// Set once the node stops: work running now and begun later stops
    /// at its next look (`Stopped::Shutdown`).
    halted: AtomicBool,
}

impl Watch {
    pub fn new(default_ms: u64) -> Arc<Watch> {
        Arc::new(Watch {
            gen: AtomicU64::new(0),
            tripped: AtomicU64::new(0),
            budget_ms: AtomicU64::new(default_ms),
            default_ms,
            halted: AtomicBool::new(false),
        })
    }
}

impl Watch {
    /// Stops the work running now, if any (as if its time were up): for a
    /// thread whose work must give way.
    pub fn stop_running(&self) {
        let gen = self.gen.load(Ordering::Acquire);
        if !gen.is_multiple_of(2) {
            self.tripped.store(gen, Ordering::Release);
        }
    }

    /// Stops the work running now and any begun later, as the node stops.
    pub fn halt(&self) {
        self.halted.store(true, Ordering::Release);
    }
}

/// What the watchdog remembers of one watch between scans.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    gen: u64,
    since_ms: u64,
}

/// The watchdog's step for one watch, `now_ms` from its monotonic clock:
/// stops the watch's work once one generation has run for its budget.
pub fn scan(w: &Watch, seen: &mut Seen, now_ms: u64) {
    let gen = w.gen.load(Ordering::Acquire);
    if gen.is_multiple_of(2) {
        return;
    }
    if gen != seen.gen {
        *seen = Seen {
            gen,
            since_ms: now_ms,
        };
    } else if now_ms.saturating_sub(seen.since_ms) >= w.budget_ms.load(Ordering::Relaxed) {
        w.tripped.store(gen, Ordering::Release);
    }
}

/// The work this thread is running.
struct Current {
    watch: Arc<Watch>,
    /// The generation of the work running (0: none).
    gen: u64,
    client: Option<Arc<AtomicBool>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
    static TICKS: Cell<u32> = const { Cell::new(0) };
}

/// Makes `watch` time the work this thread begins from now on.
pub fn install(watch: Arc<Watch>) {
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(Current {
            watch,
            gen: 0,
            client: None,
        })
    });
}

/// One piece of timed work (a statement, a call) on this thread, until
/// dropped. Work begun inside other work is part of it.
#[must_use = "the work ends when this is dropped"]
pub struct Work {
    outer: bool,
}

impl Work {
    /// Begins work with `budget_ms` (None: the watch's default), stopped
    /// early if `client` is set (its stream or connection closed).
    pub fn begin(budget_ms: Option<u64>, client: Option<Arc<AtomicBool>>) -> Work {
        let outer = CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            let Some(cur) = c.as_mut().filter(|cur| cur.gen == 0) else {
                return false;
            };
            let w = &cur.watch;
            w.budget_ms
                .store(budget_ms.unwrap_or(w.default_ms), Ordering::Relaxed);
            cur.gen = w.gen.fetch_add(1, Ordering::AcqRel) + 1;
            cur.client = client;
            true
        });
        Work { outer }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if !self.outer {
            return;
        }
        CURRENT.with(|c| {
            if let Some(cur) = c.borrow_mut().as_mut() {
                cur.watch.gen.fetch_add(1, Ordering::AcqRel);
                cur.gen = 0;
                cur.client = None;
            }
        });
    }
}

/// The work a thread is running, for helper threads to take part in: a
/// helper that `join`s it stops when that work is stopped (its time, its
/// client, the node stopping), and never otherwise.
#[derive(Clone)]
pub struct SharedWork(Option<(Arc<Watch>, u64, Option<Arc<AtomicBool>>)>);

/// This thread's running work, to share with helpers (empty when none).
pub fn current_work() -> SharedWork {
    CURRENT.with(|c| {
        SharedWork(
            c.borrow()
                .as_ref()
                .filter(|cur| cur.gen != 0)
                .map(|cur| (cur.watch.clone(), cur.gen, cur.client.clone())),
        )
    })
}

impl SharedWork {
    /// Makes this (helper) thread's checks those of the shared work until
    /// the returned guard drops; the work's owner still begins and ends it.
    pub fn join(&self) -> Joined {
        let Some((watch, gen, client)) = self.0.clone() else {
            return Joined(None);
        };
        let before = CURRENT.with(|c| c.borrow_mut().replace(Current { watch, gen, client }));
        Joined(Some(before))
    }
}

/// A helper thread's part in shared work (`SharedWork::join`), until dropped.
#[must_use = "the helper's part ends when this is dropped"]
pub struct Joined(Option<Option<Current>>);

impl Drop for Joined {
    fn drop(&mut self) {
        if let Some(before) = self.0.take() {
            CURRENT.with(|c| *c.borrow_mut() = before);
        }
    }
}

/// Whether this thread's work must stop now.
pub fn check() -> Result<(), Stopped> {
    CURRENT.with(|c| {
        let c = c.borrow();
        let Some(cur) = c.as_ref().filter(|cur| cur.gen != 0) else {
            return Ok(());
        };
        if cur.watch.halted.load(Ordering::Acquire) {
            return Err(Stopped::Shutdown);
        }
        if cur.watch.tripped.load(Ordering::Acquire) == cur.gen {
            return Err(Stopped::Deadline {
                budget_ms: cur.watch.budget_ms.load(Ordering::Relaxed),
            });
        }
        if cur
            .client
            .as_ref()
            .is_some_and(|g| g.load(Ordering::Relaxed))
        {
            return Err(Stopped::Cancelled);
        }
        Ok(())
    })
}

/// Counts one row of work; looks at the flags every `CHECK_EVERY_ROWS`.
#[inline]
pub fn tick() -> Result<(), Stopped> {
    let n = TICKS.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n
    });
    if n.is_multiple_of(CHECK_EVERY_ROWS) {
        check()
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_past_its_budget_is_stopped_and_the_next_work_is_not() {
        let watch = Watch::new(100);
        let w = watch.clone();
        let mut seen = Seen::default();
        std::thread::spawn(move || {
            install(watch);
            let work = Work::begin(None, None);
            scan(&w, &mut seen, 1_000);
            scan(&w, &mut seen, 1_099);
            assert_eq!(check(), Ok(()));
            scan(&w, &mut seen, 1_100);
            assert_eq!(check(), Err(Stopped::Deadline { budget_ms: 100 }));
            // Nested work is part of the outer work.
            drop(Work::begin(Some(5), None));
            assert!(check().is_err());
            drop(work);
            // A stale trip does not stop the next piece of work.
            let _next = Work::begin(Some(50), None);
            assert_eq!(check(), Ok(()));
            scan(&w, &mut seen, 1_120);
            scan(&w, &mut seen, 1_169);
            assert_eq!(check(), Ok(()));
            scan(&w, &mut seen, 1_170);
            assert_eq!(check(), Err(Stopped::Deadline { budget_ms: 50 }));
        })
        .join()
        .unwrap();
    }

    /// A statement running as the node stops is cancelled (a node with a
    /// long query running did not stop on SIGTERM), and so is one begun
    /// after.
    #[test]
    fn a_halted_watch_stops_the_running_work_and_any_begun_later() {
        let watch = Watch::new(60_000);
        let w = watch.clone();
        std::thread::spawn(move || {
            install(watch);
            let work = Work::begin(None, None);
            assert_eq!(check(), Ok(()));
            w.halt();
            assert_eq!(check(), Err(Stopped::Shutdown));
            drop(work);
            let _next = Work::begin(Some(10), None);
            assert_eq!(check(), Err(Stopped::Shutdown));
        })
        .join()
        .unwrap();
    }

    /// A load chunk's shares run on helper threads: they stop when the
    /// coordinator's work runs out of time, and not after it ended.
    #[test]
    fn a_helper_that_joined_shared_work_stops_with_it() {
        let watch = Watch::new(100);
        let w = watch.clone();
        std::thread::spawn(move || {
            install(watch);
            assert!(
                current_work().0.is_none(),
                "no work running: nothing to share"
            );
            let work = Work::begin(None, None);
            let share = current_work();
            let mut seen = Seen::default();
            scan(&w, &mut seen, 0);
            let helper = |share: SharedWork| {
                std::thread::spawn(move || {
                    let _joined = share.join();
                    check()
                })
                .join()
                .unwrap()
            };
            assert_eq!(helper(share.clone()), Ok(()));
            scan(&w, &mut seen, 100);
            assert_eq!(
                helper(share.clone()),
                Err(Stopped::Deadline { budget_ms: 100 })
            );
            drop(work);
            // The next work on the owner is not the one the helper shared.
            let _next = Work::begin(None, None);
            assert_eq!(check(), Ok(()));
            // A helper's own thread forgets the work when its part ends.
            std::thread::spawn(move || {
                drop(share.join());
                assert_eq!(check(), Ok(()));
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_gone_client_cancels_and_a_thread_without_a_watch_never_stops() {
        std::thread::spawn(|| {
            let gone = Arc::new(AtomicBool::new(false));
            let _w = Work::begin(None, Some(gone.clone()));
            gone.store(true, Ordering::Relaxed);
            assert_eq!(check(), Ok(()), "no watch installed");
            install(Watch::new(1));
            let _w = Work::begin(None, Some(gone.clone()));
            assert_eq!(check(), Err(Stopped::Cancelled));
            for _ in 0..CHECK_EVERY_ROWS * 2 {
                if tick().is_err() {
                    return;
                }
            }
            panic!("tick never looked at the flags");
        })
        .join()
        .unwrap();
    }
}
