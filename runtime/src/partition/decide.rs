//! Two-phase commit of coordinator transactions across the partitions'
//! logs, so that a leader change in the middle of one never leaves it
//! applied on some partitions only.
//!
//! A coordinator transaction `t` leaves a share (`Entry::Multi`) in every
//! partition's log. The node's coordinator proposes the shares of
//! partitions 1.. first (prepare); once every one is chosen it proposes
//! partition 0's, and that share being chosen *is* the commit (the one
//! decision point). Then it tells the other partitions (`decided`), whose
//! leaders log `Entry::Decide { t, commit }` so their followers find the
//! outcome in their own log. If some share could not be chosen, partition
//! 0 logs `Decide { t, abort }` instead, and the partitions that applied
//! their share in memory rebuild their state without it.
//!
//! ```text
//!  coordinator ─shares─▶ p1..pn ─(all chosen)─▶ p0 share (chosen = commit)
//!              ─decided(t)─▶ p1..pn leaders ─Decide(t)─▶ their logs
//! ```
//!
//! A replica of a partition other than 0 applies a share only once it
//! knows the outcome: a `Decide` later in its own log, what it was told
//! (`decided`), or — alone in its group, where the log is the group's and
//! recovery already skipped what was never committed — the share being
//! there at all. Until then applying stalls at that share: a follower
//! waits; a leader runs nothing, refuses holds (`CallError::InDoubt`), and
//! asks partition 0's replica on its node (`Ready::asks`, every
//! `ASK_EVERY_US`). That replica answers from its state (`resolve`): a
//! transaction up to its `mp_txn_max` committed if its share is among
//! `committed`, else aborted; a later one is undecided, and partition 0's
//! leader decides it — abort — when no transaction of its own coordinator
//! is in flight. That is safe: the commit is partition 0's share, proposed
//! only by the coordinator that ran the transaction after every other
//! share was chosen; had it been chosen this leader's log would hold it,
//! and once a later record of this leader is chosen an older leader's
//! share never can be.
//! Every `Decide`, wherever it is logged, states an outcome already chosen
//! on partition 0, so a replica may learn from one that is not chosen yet.

use super::core::PartitionCore;
use super::error::CallError;
use super::hold::Hold;
use crate::durability::{self, Entry, LogRecord};
use crate::types::{Ballot, Slot};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Outcomes a replica keeps learned ahead of applying them; beyond it the
/// oldest go (a replica that still needs one asks again).
pub const DECISIONS_KNOWN_MAX: usize = 1024;
/// Outcomes a leader keeps waiting to be logged (room to propose).
pub const DECISIONS_TO_LOG_MAX: usize = 64;
/// Committed transactions partition 0 remembers; older ones are below its
/// `floor`, where it can no longer answer (see `Committed`).
pub const COMMITS_KEPT_MAX: usize = 4096;
/// How often a replica stalled at a share asks partition 0 again.
pub const ASK_EVERY_US: u64 = 20_000;

/// Partition 0's memory of committed coordinator transactions (its shares
/// applied). A transaction up to its `mp_txn_max` that is not among them
/// was aborted — logged so, or never to be committed: a share from an
/// older leader cannot be chosen once a later record of a newer one is.
/// Below `floor` it no longer knows; a transaction stays in doubt only
/// while no newer one can run, so a question from below it is a broken
/// invariant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    floor: u64,
    txns: BTreeSet<u64>,
}

impl Committed {
    pub fn from_image(image: durability::snapshot::Committed) -> Committed {
        Committed {
            floor: image.floor,
            txns: image.txns.into_iter().collect(),
        }
    }

    pub fn image(&self) -> durability::snapshot::Committed {
        durability::snapshot::Committed {
            floor: self.floor,
            txns: self.txns.iter().copied().collect(),
        }
    }

    pub fn insert(&mut self, txn: u64) {
        self.txns.insert(txn);
        while self.txns.len() > COMMITS_KEPT_MAX {
            if let Some(t) = self.txns.pop_first() {
                self.floor = self.floor.max(t + 1);
            }
        }
    }

    /// The outcome of a transaction partition 0 is past (`txn` at most
    /// its `mp_txn_max`); None below the floor.
    pub fn outcome(&self, txn: u64) -> Option<bool> {
        if self.txns.contains(&txn) {
            Some(true)
        } else if txn < self.floor {
            None
        } else {
            Some(false)
        }
    }
}

/// What a replica knows of outcomes, and where its applying waits.
#[derive(Default)]
pub(super) struct Decisions {
    known: BTreeMap<u64, bool>,
    /// The transaction whose share applying stopped at.
    pub(super) stalled: Option<u64>,
    /// When partition 0 was last asked (monotonic µs).
    asked_us: Option<u64>,
    /// Outcomes this replica's leader has still to log.
    to_log: VecDeque<(u64, bool)>,
    /// Partition 0's leader: questions it can answer once its log is
    /// chosen up to the slot (what its state held when asked).
    to_answer: BTreeMap<u64, Slot>,
}

impl Decisions {
    pub(super) fn learn(&mut self, txn: u64, commit: bool) {
        self.known.insert(txn, commit);
        while self.known.len() > DECISIONS_KNOWN_MAX {
            self.known.pop_first();
        }
    }

    pub(super) fn get(&self, txn: u64) -> Option<bool> {
        self.known.get(&txn).copied()
    }

    /// Passed: a share applied or passed over, an outcome acted on.
    pub(super) fn forget(&mut self, txn: u64) {
        self.known.remove(&txn);
    }

    /// After a rebuild: only what the new state waits for is kept.
    pub(super) fn rebuilt(&mut self, stalled: Option<u64>) {
        self.stalled = stalled;
        self.known.retain(|t, _| Some(*t) == stalled);
    }

    /// Leadership lost: what it was to log or answer is for the next leader.
    pub(super) fn lost_leadership(&mut self) {
        self.to_log.clear();
        self.to_answer.clear();
    }
}

/// The lowest coordinator transaction id the leader of partition 0 in
/// ballot `b` gives: ids are unique across leaders (a coordinator none of
/// whose shares was chosen leaves no trace for the next to count from),
/// ballots order them, and each leadership has 2^32 ids. Rounds above
/// 2^24 share the last range.
pub fn txn_floor(b: Ballot) -> u64 {
    const ROUND_MAX: u64 = (1 << 24) - 1;
    (b.round.min(ROUND_MAX) << 40) | (u64::from(b.node.0 & 0xff) << 32)
}

/// What applying does with one record.
pub(super) enum Gate {
    Apply,
    /// An aborted transaction's share: passed over.
    Skip(u64),
    /// A share whose outcome is not known yet.
    Stall(u64),
}

impl<T> PartitionCore<T> {
    /// Input: coordinator transaction `txn`'s outcome, from the node's
    /// coordinator (which ran it) or partition 0's replica here (asked).
    /// A leader that holds or waits at its share logs it.
    ///
    /// Heard only for a share this replica holds or waits at: an outcome
    /// kept for another could be taken for that of a later transaction
    /// given the same id (a coordinator whose shares were never chosen
    /// leaves its ids to the next one).
    pub fn decided(&mut self, txn: u64, commit: bool) {
        if self.fatal.is_some() || self.cfg.partition.0 == 0 {
            return;
        }
        let holds = self
            .state
            .as_ref()
            .is_some_and(|s| s.undecided == Some(txn));
        if !holds && self.dec.stalled != Some(txn) {
            return;
        }
        let queued = self.dec.to_log.iter().any(|(t, _)| *t == txn);
        if self.leading && !queued {
            if self.dec.to_log.len() >= DECISIONS_TO_LOG_MAX {
                return; // not taken: asked again, and answered again
            }
            self.dec.to_log.push_back((txn, commit));
        }
        self.dec.learn(txn, commit);
        self.after_consensus();
    }

    /// Input (partition 0): a replica on this node asks for `txn`'s
    /// outcome. Answered (`Ready::answers`) from this replica's state once
    /// what it applied up to now is chosen; a leader with nothing of its
    /// own coordinator in flight aborts a transaction it never committed.
    /// Otherwise nothing (the asker asks again), and nothing for one older
    /// than every commit it remembers (`Committed`): the asker then waits
    /// for the outcome its own log will hold.
    pub fn resolve(&mut self, txn: u64) {
        if self.fatal.is_some() || self.cfg.partition.0 != 0 {
            return;
        }
        let Some(state) = self.state.as_deref() else {
            return; // lent: its holder may be deciding it
        };
        if matches!(self.hold, Hold::Lent { .. }) {
            return; // a shell is lent: the same
        }
        if txn <= state.mp_txn_max {
            if self.applied <= self.paxos.chosen() {
                self.out
                    .answers
                    .extend(state.committed.outcome(txn).map(|c| (txn, c)));
            } else if self.dec.to_answer.len() < DECISIONS_KNOWN_MAX {
                // A leader ahead of what is chosen: once it is.
                self.dec.to_answer.insert(txn, self.applied);
            }
            return;
        }
        if matches!(self.hold, Hold::Free) && self.can_run() {
            self.propose_decision(txn, false);
        }
    }

    /// Partition 0: answers the questions whose basis is now chosen.
    fn answer_chosen(&mut self) {
        let chosen = self.paxos.chosen();
        if self.dec.to_answer.is_empty() {
            return;
        }
        let Some(state) = self.state.as_deref() else {
            return;
        };
        let ready: Vec<u64> = self
            .dec
            .to_answer
            .iter()
            .filter(|(_, at)| **at <= chosen)
            .map(|(t, _)| *t)
            .collect();
        for txn in ready {
            self.dec.to_answer.remove(&txn);
            if let Some(commit) = state.committed.outcome(txn) {
                self.out.answers.push((txn, commit));
            }
        }
    }

    /// Whose outcome this replica waits for: the share applying stopped
    /// at, or the one its state holds applied in memory (a leader's, as
    /// the coordinator handed it back).
    pub(super) fn awaiting(&self) -> Option<u64> {
        self.dec
            .stalled
            .or_else(|| self.state.as_ref().and_then(|s| s.undecided))
    }

    /// Refuses a hold while the partition waits for an outcome.
    pub(super) fn in_doubt(&self) -> Option<CallError> {
        self.awaiting().map(|txn| CallError::InDoubt {
            partition: self.cfg.partition.0,
            txn,
        })
    }

    /// What applying does with `r`; `logged` finds an outcome logged after
    /// it, in what this replica has.
    pub(super) fn gate(&self, r: &LogRecord, logged: impl FnOnce(u64) -> Option<bool>) -> Gate {
        if self.cfg.partition.0 == 0 {
            return Gate::Apply; // its share is the commit
        }
        // Shares logged before two-phase commit apply once chosen.
        let Some(txn) = durability::share_txn(&r.payload) else {
            return Gate::Apply;
        };
        if self.skipped.contains(&txn) {
            return Gate::Apply; // never committed: the state passes over it
        }
        let alone = self.cfg.consensus.members.len() == 1;
        match self.dec.get(txn).or_else(|| logged(txn)) {
            Some(true) => Gate::Apply,
            Some(false) => Gate::Skip(txn),
            // Alone, the log is the group's and recovery skipped what
            // partition 0 never committed.
            None if alone => Gate::Apply,
            None => Gate::Stall(txn),
        }
    }

    /// After applying: an outcome for what the state holds, outcomes to
    /// log, a question to ask.
    pub(super) fn settle_decisions(&mut self) {
        self.answer_chosen();
        if let Some(state) = self.state.as_deref_mut() {
            if let Some(t) = state.undecided {
                match self.dec.get(t) {
                    Some(true) => {
                        state.undecided = None;
                        self.dec.forget(t);
                    }
                    // Its share is in the state: rebuilt without it (the
                    // rebuild finds the outcome here, then forgets it).
                    Some(false) => {
                        state.undecided = None;
                        self.needs_rebuild = true;
                    }
                    None => {}
                }
            }
        }
        while self.leading && self.paxos.can_propose() && !self.dec.to_log.is_empty() {
            if let Some((txn, commit)) = self.dec.to_log.pop_front() {
                self.propose_decision(txn, commit);
            }
        }
        let Some(txn) = self.awaiting() else {
            self.dec.asked_us = None;
            return;
        };
        if self.cfg.partition.0 == 0 || self.cfg.consensus.members.len() == 1 {
            return;
        }
        let now = self.now.mono_us;
        if self.dec.asked_us.is_none_or(|t| now >= t + ASK_EVERY_US) {
            self.dec.asked_us = Some(now);
            self.out.asks.push(txn);
        }
    }

    /// Logs `txn`'s outcome here. Applied at once when everything before
    /// it is (a record that only decides changes nothing else), else by
    /// applying in order.
    fn propose_decision(&mut self, txn: u64, commit: bool) {
        let mut payload = Vec::new();
        if let Err(e) = durability::encode_entry(&Entry::Decide { txn, commit }, &mut payload) {
            return self.stop(format!("encoding an outcome: {e}"));
        }
        let slot = match self.paxos.propose(Arc::from(payload)) {
            Ok(slot) => slot,
            Err(e) => return self.stop(format!("proposing an outcome failed: {e}")),
        };
        let in_order =
            !self.needs_rebuild && self.dec.stalled.is_none() && self.applied.next() == slot;
        if let (true, Some(state)) = (in_order, self.state.as_deref_mut()) {
            if let Err(e) = state.replay(&Entry::Decide { txn, commit }) {
                return self.stop(format!("slot {}: {e}", slot.0));
            }
            self.applied = slot;
        }
    }
}
