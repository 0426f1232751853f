//! The node's watchdog: one thread that reads the clock for every thread
//! that runs statements or calls (the executors and the coordinator) and
//! stops work that ran past its time limit (`sql::interrupt`).
//!
//! Owns: the watches' thread and its period. Must not: touch partition
//! state; it only sets a flag the working thread reads.

use crate::sql::interrupt::{self, Seen, Watch};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the watchdog looks: a deadline is met within about this.
pub const WATCHDOG_PERIOD: Duration = Duration::from_millis(5);

/// Watches to hand to working threads, timed by one watchdog thread.
#[derive(Default)]
pub struct Watchdog {
    watches: Vec<Weak<Watch>>,
}

impl Watchdog {
    /// A watch whose work gets `default_ms` unless it names a budget;
    /// install it on the working thread (`interrupt::install`).
    pub fn watch(&mut self, default_ms: u64) -> Arc<Watch> {
        let w = Watch::new(default_ms);
        self.watches.push(Arc::downgrade(&w));
        w
    }

    /// Runs until every watch is gone (their threads have ended).
    pub fn run(self) {
        let start = Instant::now();
        let mut seen = vec![Seen::default(); self.watches.len()];
        loop {
            std::thread::sleep(WATCHDOG_PERIOD);
            let now_ms = start.elapsed().as_millis() as u64;
            let mut any = false;
            for (w, s) in self.watches.iter().zip(seen.iter_mut()) {
                if let Some(w) = w.upgrade() {
                    any = true;
                    interrupt::scan(&w, s, now_ms);
                }
            }
            if !any {
                return;
            }
        }
    }
}
