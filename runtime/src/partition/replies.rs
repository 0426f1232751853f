//! Replies held until what they depend on is chosen.
//!
//! A call that wrote depends on its own record; one that only read (or
//! failed) depends on the last record its state reflected when it ran, and
//! also on leadership at that moment (a deposed leader's state may be
//! stale): its reply waits for a lease that covered it, or a quorum round
//! after it (`Paxos::read_allowed`). Replies leave in the order the calls
//! ran.

use super::error::CallError;
use crate::consensus::Paxos;
use crate::types::Slot;
use crate::wasm::ProcOutput;
use std::collections::VecDeque;

/// A call's result.
pub type CallResult = Result<ProcOutput, CallError>;

struct Waiting<T> {
    token: T,
    result: CallResult,
    /// Released once this slot is chosen.
    dep: Slot,
    /// A reading of the replica's clock taken after it ran (None until the
    /// next one), for the lease.
    ran_us: Option<u64>,
    /// It proposed a record (so if leadership is lost first, its outcome
    /// is unknown); else it only read.
    wrote: bool,
}

/// Replies waiting, in the order their calls ran.
pub struct Replies<T> {
    waiting: VecDeque<Waiting<T>>,
}

impl<T> Default for Replies<T> {
    fn default() -> Self {
        Replies {
            waiting: VecDeque::new(),
        }
    }
}

impl<T> Replies<T> {
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn push(&mut self, token: T, result: CallResult, dep: Slot, wrote: bool) {
        self.waiting.push_back(Waiting {
            token,
            result,
            dep,
            ran_us: None,
            wrote,
        });
    }

    /// A clock reading: every reply not yet stamped ran before it.
    pub fn stamp(&mut self, now_us: u64) {
        for w in self.waiting.iter_mut().rev() {
            if w.ran_us.is_some() {
                break;
            }
            w.ran_us = Some(now_us);
        }
    }

    /// Moves every reply whose dependency is met onto `out`, in order.
    pub fn release(&mut self, paxos: &Paxos, out: &mut Vec<(T, CallResult)>) {
        #[allow(unused_mut)]
        let mut chosen = paxos.chosen();
        #[cfg(any(test, debug_assertions))]
        if paxos.bugs().ack_before_chosen && paxos.is_leader() {
            chosen = chosen.max(paxos.persisted_slot());
        }
        while let Some(w) = self.waiting.front() {
            let led = w.wrote || w.ran_us.is_some_and(|t| paxos.read_allowed(t));
            let ready = w.dep <= chosen && led;
            if !ready {
                break;
            }
            if let Some(w) = self.waiting.pop_front() {
                out.push((w.token, w.result));
            }
        }
    }

    /// Leadership is gone or the partition stops: a write whose record is
    /// chosen succeeded; one whose record is not gets `unknown` (it may or
    /// may not take effect); a read gets `refused` (it changed nothing, and
    /// the client may retry elsewhere).
    pub fn fail_all(
        &mut self,
        chosen: Slot,
        refused: &CallError,
        unknown: &CallError,
        out: &mut Vec<(T, CallResult)>,
    ) {
        for w in self.waiting.drain(..) {
            let result = match (w.wrote, w.dep <= chosen) {
                (true, true) => w.result,
                (true, false) => Err(unknown.clone()),
                (false, _) => Err(refused.clone()),
            };
            out.push((w.token, result));
        }
    }
}
