//! `Paxos`: one replica's consensus state, its inputs (`tick`, `step`,
//! `propose`, `persisted`, ...) and its `Ready`. The role-specific halves
//! live in `election.rs` (pre-vote, phase 1), `leader.rs` (phase 2 as the
//! proposer, chosen, leases) and `follower.rs` (phase 2 as an acceptor).

use super::leader::LeaderState;
use super::log::MemLog;
use super::{Config, ConsensusError, Message, Ready};
use crate::durability::{LogRecord, SnapshotMeta, Vote};
use crate::rng::Rng;
use crate::types::{Ballot, NodeId, Slot};
use std::collections::VecDeque;

/// What a replica is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Asking for pre-votes (`pre`) or promises.
    Candidate {
        pre: bool,
    },
    Leader,
}

/// A write batch handed to the shell and not yet reported durable.
#[derive(Debug)]
struct PendingWrite {
    seq: u64,
    /// The last slot of the log once this batch is applied.
    last: Slot,
    vote: Option<Ballot>,
}

/// A snapshot being received from the leader.
#[derive(Debug)]
pub(super) struct Incoming {
    pub ballot: Ballot,
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// Bytes of one snapshot a follower accepts (a bigger one is refused).
pub const SNAPSHOT_BYTES_MAX: usize = 16 << 30;

/// One replica of a group. See the module doc of `consensus`.
pub struct Paxos {
    pub(super) cfg: Config,
    pub(super) rng: Rng,
    pub(super) now: u64,
    pub(super) role: Role,
    /// The highest ballot promised (durable once `durable_vote` reaches it).
    pub(super) promised: Ballot,
    pub(super) durable_vote: Ballot,
    /// The highest round seen in any message (a candidate picks above it).
    pub(super) max_round: u64,
    /// The leader of `promised`, once heard from.
    pub(super) leader: Option<NodeId>,
    pub(super) log: MemLog,
    pub(super) chosen: Slot,
    /// The caller has applied (or executed) everything up to here.
    pub(super) applied: Slot,
    /// When a follower last heard from its leader (or started).
    pub(super) last_heard_us: u64,
    /// A follower without news from a leader campaigns at this time.
    pub(super) election_due_us: u64,
    pub(super) election: super::election::Election,
    pub(super) lead: Option<LeaderState>,
    pub(super) incoming: Option<Incoming>,
    next_seq: u64,
    pending: VecDeque<PendingWrite>,
    /// Our own log is durable up to here (what a leader counts for itself).
    pub(super) persisted_slot: Slot,
    pub(super) out: Ready,
}

impl Paxos {
    /// A replica whose storage holds `vote` and a log continuing from
    /// `snapshot`; feed the records after it with `restore` before any
    /// other input.
    pub fn new(
        cfg: Config,
        vote: Vote,
        snapshot: SnapshotMeta,
        now_us: u64,
        seed: u64,
    ) -> Result<Paxos, ConsensusError> {
        cfg.check()?;
        let mut p = Paxos {
            rng: Rng::new(seed),
            now: now_us,
            role: Role::Follower,
            promised: vote.promised,
            durable_vote: vote.promised,
            max_round: vote.promised.round,
            leader: None,
            log: MemLog::new(snapshot),
            chosen: snapshot.slot,
            applied: snapshot.slot,
            // A restarted replica may have been loyal to a leader before it
            // stopped: it stays loyal to nobody else for a lease.
            last_heard_us: now_us,
            election_due_us: now_us,
            election: Default::default(),
            lead: None,
            incoming: None,
            next_seq: 1,
            pending: VecDeque::new(),
            persisted_slot: snapshot.slot,
            out: Ready::default(),
            cfg,
        };
        p.reset_election_timer();
        if p.cfg.members.len() == 1 {
            // Alone: nobody to wait for.
            p.election_due_us = now_us;
        }
        Ok(p)
    }

    /// A record found in storage at start-up (in slot order, after the
    /// snapshot). Its payload is kept: it is not applied yet.
    pub fn restore(&mut self, rec: LogRecord) {
        self.note_round(rec.ballot);
        self.log.append(rec);
        self.persisted_slot = self.log.last_slot();
    }

    // ---- inputs ------------------------------------------------------------

    /// Time passes: heartbeats, elections, check-quorum.
    pub fn tick(&mut self, now_us: u64) {
        self.now = self.now.max(now_us);
        match self.role {
            Role::Leader => self.leader_tick(),
            _ if self.now >= self.election_due_us => self.campaign(),
            _ => {}
        }
    }

    /// A message from another replica of the group.
    pub fn step(&mut self, from: NodeId, msg: Message) {
        if from == self.cfg.id || !self.cfg.members.contains(&from) {
            return; // not of this group: the shell should not route it here
        }
        self.note_round(msg.ballot());
        match msg {
            Message::PreVote {
                ballot,
                last_slot,
                last_ballot,
            } => self.on_pre_vote(from, ballot, last_slot, last_ballot),
            Message::PreVoteReply {
                ballot,
                granted,
                promised,
            } => self.on_pre_vote_reply(from, ballot, granted, promised),
            Message::Elect {
                ballot,
                last_slot,
                last_ballot,
                transfer_of,
            } => self.on_elect(from, ballot, last_slot, last_ballot, transfer_of),
            Message::TimeoutNow { ballot } => self.on_timeout_now(from, ballot),
            Message::Promise { ballot } => self.on_promise(from, ballot),
            Message::Reject { promised } => self.on_reject(promised),
            m @ Message::Accept { .. } => self.on_accept(from, m),
            m @ Message::Snapshot { .. } => self.on_snapshot(from, m),
            Message::Accepted {
                ballot,
                matched,
                hint,
                sent_us,
            } => self.on_accepted(from, ballot, matched, hint, sent_us),
            Message::SnapshotAck {
                ballot,
                meta,
                offset,
                done,
                sent_us,
            } => self.on_snapshot_ack(from, ballot, meta, offset, done, sent_us),
        }
        if self.role == Role::Leader {
            self.maybe_timeout_now();
        }
    }

    /// The write batch `seq` (and every one before it) is durable.
    pub fn persisted(&mut self, seq: u64) {
        while self.pending.front().is_some_and(|w| w.seq <= seq) {
            let Some(w) = self.pending.pop_front() else {
                break;
            };
            self.persisted_slot = w.last;
            if let Some(v) = w.vote {
                self.durable_vote = self.durable_vote.max(v);
            }
        }
        match self.role {
            Role::Candidate { pre: false } => self.check_election_won(),
            Role::Leader => self.advance_chosen(),
            _ => {}
        }
        // `chosen` may have moved (`advance_chosen` trims then too).
        self.trim_cache();
    }

    /// The caller has applied everything up to `slot` (payloads before it
    /// may leave memory).
    pub fn applied(&mut self, slot: Slot) {
        self.applied = self.applied.max(slot);
        self.trim_cache();
    }

    /// Payloads applied, durable and chosen may leave memory (storage has
    /// them, and no leadership change can make them unapplied); nothing
    /// else may.
    pub(super) fn trim_cache(&mut self) {
        // Alone, nobody is ever caught up from it.
        let keep = if self.cfg.members.len() == 1 {
            0
        } else {
            super::CACHE_BYTES_MAX
        };
        let upto = self.applied.min(self.persisted_slot).min(self.chosen);
        self.log.trim(upto, keep);
    }

    /// A snapshot at `meta` was written to storage here; the records it
    /// covers are gone from the log.
    pub fn compacted(&mut self, meta: SnapshotMeta) {
        assert!(meta.slot <= self.chosen, "only chosen state is snapshotted");
        self.log.compacted(meta);
    }

    // ---- outputs -----------------------------------------------------------

    /// What to persist, send and apply since the last call.
    pub fn ready(&mut self) -> Ready {
        let mut r = std::mem::take(&mut self.out);
        r.chosen = self.chosen;
        if r.vote.is_some()
            || r.truncate_after.is_some()
            || !r.records.is_empty()
            || r.snapshot.is_some()
        {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.pending.push_back(PendingWrite {
                seq,
                last: self.log.last_slot(),
                vote: r.vote.map(|v| v.promised),
            });
            r.persist_seq = Some(seq);
        } else if !r.after_persist.is_empty() {
            // Nothing new to write, but what was written before must be
            // durable first: wait for the newest batch.
            r.persist_seq = self.pending.back().map(|w| w.seq);
            if r.persist_seq.is_none() {
                r.messages.append(&mut r.after_persist);
            }
        }
        r
    }

    /// Records `from..=to` for the caller to apply; they are in memory
    /// (every record after `applied` is).
    pub fn records(&self, from: Slot, to: Slot) -> Vec<LogRecord> {
        let mut out = Vec::new();
        let mut s = from;
        while s <= to {
            let Some(r) = self.log.get(s) else {
                panic!(
                    "records after the applied watermark stay in memory: slot {s} of {from}..={to} \
                     is not (applied {}, chosen {}, persisted {}, last {}, snapshot {}, role {:?})",
                    self.applied,
                    self.chosen,
                    self.persisted_slot,
                    self.log.last_slot(),
                    self.log.snapshot().slot,
                    self.role
                );
            };
            out.push(r.clone());
            s = s.next();
        }
        out
    }

    // ---- queries -----------------------------------------------------------

    /// Whether a snapshot received from the leader waits in the next
    /// `Ready` (nothing before it may be applied meanwhile).
    pub fn snapshot_pending(&self) -> bool {
        self.out.snapshot.is_some()
    }

    /// Whether `ready` has something to hand out.
    pub fn has_ready(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The leader this replica follows (itself when leading), if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn promised(&self) -> Ballot {
        self.promised
    }

    pub fn chosen(&self) -> Slot {
        self.chosen
    }

    pub fn last_slot(&self) -> Slot {
        self.log.last_slot()
    }

    pub fn snapshot_meta(&self) -> SnapshotMeta {
        self.log.snapshot()
    }

    /// The record at `slot`, if its payload is still in memory.
    pub fn record(&self, slot: Slot) -> Option<&LogRecord> {
        self.log.get(slot)
    }

    /// Our own log is durable up to here.
    pub fn persisted_slot(&self) -> Slot {
        self.persisted_slot
    }

    /// The planted bugs this replica runs with (test and debug builds).
    #[cfg(any(test, debug_assertions))]
    pub fn bugs(&self) -> super::Bugs {
        self.cfg.bugs
    }

    /// The ballot of the record at `slot`, if known.
    pub fn ballot_at(&self, slot: Slot) -> Option<Ballot> {
        self.log.ballot_at(slot)
    }

    // ---- shared helpers ----------------------------------------------------

    pub(super) fn quorum(&self) -> usize {
        self.cfg.members.len() / 2 + 1
    }

    pub(super) fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let me = self.cfg.id;
        self.cfg.members.iter().copied().filter(move |m| *m != me)
    }

    pub(super) fn note_round(&mut self, b: Ballot) {
        self.max_round = self.max_round.max(b.round);
    }

    pub(super) fn reset_election_timer(&mut self) {
        let t = self.cfg.election_timeout_us;
        self.election_due_us = self.now + self.rng.range(t, 2 * t);
    }

    /// Raises the promise to `b` (persisted with the next batch).
    pub(super) fn promise(&mut self, b: Ballot) {
        if b > self.promised {
            self.promised = b;
            self.out.vote = Some(Vote { promised: b });
        }
    }

    /// Whether a follower is still loyal to a leader it heard from (or to
    /// whoever led before it started).
    pub(super) fn loyal(&self) -> bool {
        self.now < self.last_heard_us + self.cfg.lease_us
    }

    /// Whether a candidate's last record is at least ours.
    pub(super) fn up_to_date(&self, last_slot: Slot, last_ballot: Ballot) -> bool {
        (last_ballot, last_slot) >= (self.log.last_ballot(), self.log.last_slot())
    }

    pub(super) fn send(&mut self, to: NodeId, msg: Message) {
        self.out.messages.push((to, msg));
    }

    pub(super) fn send_after_persist(&mut self, to: NodeId, msg: Message) {
        self.out.after_persist.push((to, msg));
    }

    /// Appends a record to the log (and to the batch to persist).
    pub(super) fn append(&mut self, rec: LogRecord) {
        self.out.records.push(rec.clone());
        self.log.append(rec);
    }

    /// Drops our records after `slot` (and tells the shell to).
    pub(super) fn truncate_after(&mut self, slot: Slot) {
        if slot >= self.log.last_slot() {
            return;
        }
        assert!(slot >= self.chosen, "a chosen record is never truncated");
        // Records of this batch past the cut never reach the disk.
        self.out.records.retain(|r| r.slot <= slot);
        self.out.truncate_after = Some(match self.out.truncate_after {
            Some(t) => t.min(slot),
            None => slot,
        });
        self.log.truncate_after(slot);
        self.applied = self.applied.min(slot);
        self.persisted_slot = self.persisted_slot.min(slot);
        // Batches handed out before the cut end where it is, once durable.
        for w in &mut self.pending {
            w.last = w.last.min(slot);
        }
    }
}
