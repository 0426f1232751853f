//! The node's watchdog: one thread that reads the clock for every thread
//! that runs statements or calls (the executors and the coordinator) and
//! stops work that ran past its time limit (`sql::interrupt`), and, once
//! the node stops, work that goes on past `STOP_WORK_MAX`.
//!
//! Owns: the watches' thread and its period. Must not: touch partition
//! state; it only sets a flag the working thread reads.

use crate::sql::interrupt::{self, Seen, Watch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the watchdog looks: a deadline is met within about this.
pub const WATCHDOG_PERIOD: Duration = Duration::from_millis(5);
/// Once the node stops, how long work may still run (what was running and
/// what was queued before the stop) before every watch is halted and what
/// runs is rolled back (`Stopped::Shutdown`).
pub const STOP_WORK_MAX: Duration = Duration::from_secs(5);

/// Watches to hand to working threads, timed by one watchdog thread.
#[derive(Default)]
pub struct Watchdog {
    watches: Vec<Weak<Watch>>,
    /// Set as the node begins to stop (`stopping`).
    stopping: Arc<AtomicBool>,
}

impl Watchdog {
    /// A watch whose work gets `default_ms` unless it names a budget;
    /// install it on the working thread (`interrupt::install`).
    pub fn watch(&mut self, default_ms: u64) -> Arc<Watch> {
        let w = Watch::new(default_ms);
        self.watches.push(Arc::downgrade(&w));
        w
    }

    /// The flag that says the node is stopping: set it, and every watch
    /// is halted `STOP_WORK_MAX` later.
    pub fn stopping(&self) -> Arc<AtomicBool> {
        self.stopping.clone()
    }

    /// Runs until every watch is gone (their threads have ended).
    pub fn run(self) {
        let start = Instant::now();
        let mut seen = vec![Seen::default(); self.watches.len()];
        let mut halt_at_ms = None;
        loop {
            std::thread::sleep(WATCHDOG_PERIOD);
            let now_ms = start.elapsed().as_millis() as u64;
            if halt_at_ms.is_none() && self.stopping.load(Ordering::Acquire) {
                halt_at_ms = Some(now_ms + STOP_WORK_MAX.as_millis() as u64);
            }
            let halt = halt_at_ms.is_some_and(|at| now_ms >= at);
            let mut any = false;
            for (w, s) in self.watches.iter().zip(seen.iter_mut()) {
                if let Some(w) = w.upgrade() {
                    any = true;
                    if halt {
                        w.halt();
                    }
                    interrupt::scan(&w, s, now_ms);
                }
            }
            if !any {
                return;
            }
        }
    }
}
