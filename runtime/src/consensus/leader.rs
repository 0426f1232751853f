//! The leader: proposes records in its ballot, keeps each follower's log
//! in step with its own (probing back on a mismatch, reading old records
//! from storage, or sending a snapshot when they are compacted away),
//! counts acceptances into the chosen watermark, steps down when a quorum
//! goes quiet, and keeps the lease that lets it read alone.

use super::paxos::{Paxos, Role};
use super::{
    ConsensusError, Message, CATCH_UP_BURST_BYTES, INFLIGHT_MAX, MESSAGE_RECORD_BYTES_MAX,
    SNAPSHOT_CHUNK_BYTES, UNCHOSEN_BYTES_MAX, UNCHOSEN_RECORDS_MAX,
};
use crate::durability::{LogRecord, SnapshotMeta};
use crate::types::{Ballot, NodeId, Slot};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A snapshot being sent to one follower, one chunk at a time (each
/// acknowledged before the next; a lost one is resent at the heartbeat).
#[derive(Debug)]
struct Outgoing {
    meta: SnapshotMeta,
    bytes: Arc<Vec<u8>>,
    /// Bytes the follower acknowledged receiving.
    acked: u64,
}

/// What the leader knows of one follower.
#[derive(Debug)]
struct Progress {
    /// The next slot to send.
    next: Slot,
    /// The follower's log matches ours up to here.
    matched: Slot,
    /// Accepts sent and not answered (capped at `INFLIGHT_MAX`).
    inflight: usize,
    /// After a mismatch: one accept at a time until one matches.
    probing: bool,
    /// Waiting for the shell to read records or the snapshot.
    reading: bool,
    snapshot: Option<Outgoing>,
    /// The leader's clock when it sent the newest accept this follower
    /// acknowledged (for the lease).
    acked_sent_us: u64,
    /// When we last heard from it (for check-quorum).
    heard_us: u64,
    /// It acknowledged something since the last heartbeat (else what is
    /// in flight is presumed lost and resent).
    progressed: bool,
}

#[derive(Debug)]
pub(crate) struct LeaderState {
    progress: BTreeMap<NodeId, Progress>,
    /// Payload bytes proposed and not yet chosen.
    unchosen_bytes: u64,
    /// Sizes of proposed records not yet chosen, for `unchosen_bytes`.
    unchosen: std::collections::VecDeque<(Slot, u64)>,
    heartbeat_due_us: u64,
    quorum_check_due_us: u64,
    /// When this replica became leader (no lease before a quorum answers).
    since_us: u64,
    /// Handing leadership to a follower: no proposals meanwhile.
    transfer: Option<Transfer>,
    /// A `TimeoutNow` went out in this ballot, to this replica: its
    /// election may win over replicas still loyal to us (and we promise it
    /// ourselves), so our lease is gone for good (reads wait for a quorum
    /// round instead).
    pub(super) handed_to: Option<NodeId>,
    /// Paces catch-up from storage and snapshots.
    pace: Pace,
}

/// A token bucket on the leader's clock for the bytes it sends to
/// followers catching up from storage or a snapshot: the shell reads those
/// on the partition's thread, between calls, so an unpaced catch-up of a
/// long-gone replica would starve live traffic. Records still in memory
/// (live replication) are not paced.
#[derive(Debug)]
struct Pace {
    /// Bytes that may be sent now; below zero after a message larger than
    /// what was left (paid back before the next).
    credit: i64,
    at_us: u64,
}

impl Pace {
    fn new(now_us: u64) -> Pace {
        Pace {
            credit: CATCH_UP_BURST_BYTES as i64,
            at_us: now_us,
        }
    }

    /// Whether a catch-up message may go now.
    fn allows(&mut self, now_us: u64, bytes_per_s: u64) -> bool {
        let earned =
            u128::from(now_us.saturating_sub(self.at_us)) * u128::from(bytes_per_s) / 1_000_000;
        let burst = CATCH_UP_BURST_BYTES as i64;
        self.credit = (self.credit as i128 + earned as i128).min(burst as i128) as i64;
        self.at_us = now_us;
        self.credit > 0
    }

    fn charge(&mut self, bytes: usize) {
        self.credit = self.credit.saturating_sub(bytes as i64);
    }
}

/// A leadership transfer in progress.
#[derive(Debug, Clone, Copy)]
struct Transfer {
    to: NodeId,
    /// Given up (proposals resume) if not done by then.
    until_us: u64,
    sent: bool,
}

impl Paxos {
    pub(super) fn become_leader(&mut self) {
        let ballot = self.election.ballot;
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        let noop_slot = self.log.last_slot().next();
        let progress = self
            .peers()
            .map(|p| {
                let pr = Progress {
                    next: noop_slot,
                    matched: Slot(0),
                    inflight: 0,
                    probing: true,
                    reading: false,
                    snapshot: None,
                    acked_sent_us: 0,
                    heard_us: self.now,
                    progressed: false,
                };
                (p, pr)
            })
            .collect();
        self.lead = Some(LeaderState {
            progress,
            unchosen_bytes: 0,
            unchosen: Default::default(),
            heartbeat_due_us: self.now + self.cfg.heartbeat_us,
            quorum_check_due_us: self.now + self.cfg.election_timeout_us,
            since_us: self.now,
            transfer: None,
            handed_to: None,
            pace: Pace::new(self.now),
        });
        // The no-op in our ballot: once it is chosen, so is everything
        // before it (records of older ballots are never counted alone).
        self.append(LogRecord {
            slot: noop_slot,
            ballot,
            payload: Arc::from(Vec::new()),
        });
        self.note_unchosen(noop_slot, 0);
        self.broadcast();
        self.advance_chosen();
    }

    /// Appends a record in our ballot and sends it; its slot.
    pub fn propose(&mut self, payload: Arc<[u8]>) -> Result<Slot, ConsensusError> {
        self.propose_within(payload, true)
    }

    /// `propose` for a record whose room was taken when `can_propose` last
    /// said yes for it (a coordinator's share, lent the state then; other
    /// records may have filled the room since). It may take the unchosen
    /// records and bytes past their bounds by this one record (a whole
    /// share: up to a deploy's module) at most, since a holder hands back
    /// one share at a time.
    pub fn propose_reserved(&mut self, payload: Arc<[u8]>) -> Result<Slot, ConsensusError> {
        self.propose_within(payload, false)
    }

    fn propose_within(
        &mut self,
        payload: Arc<[u8]>,
        bounded: bool,
    ) -> Result<Slot, ConsensusError> {
        let Some(lead) = &self.lead else {
            return Err(ConsensusError::NotLeader {
                leader: self.leader,
            });
        };
        if let Some(t) = lead.transfer {
            // Leadership is moving there: nothing new in this ballot.
            return Err(ConsensusError::NotLeader { leader: Some(t.to) });
        }
        let records = lead.unchosen.len() as u64;
        if bounded && (records >= UNCHOSEN_RECORDS_MAX || lead.unchosen_bytes >= UNCHOSEN_BYTES_MAX)
        {
            return Err(ConsensusError::Busy {
                records,
                bytes: lead.unchosen_bytes,
            });
        }
        let slot = self.log.last_slot().next();
        let bytes = payload.len() as u64;
        self.append(LogRecord {
            slot,
            ballot: self.promised,
            payload,
        });
        self.note_unchosen(slot, bytes);
        // The proposer's state already holds what it proposes.
        self.applied = slot;
        for p in self.peers().collect::<Vec<_>>() {
            self.send_to(p);
        }
        self.advance_chosen();
        Ok(slot)
    }

    /// Whether `propose` would take a record now.
    pub fn can_propose(&self) -> bool {
        self.lead.as_ref().is_some_and(|l| {
            (l.unchosen.len() as u64) < UNCHOSEN_RECORDS_MAX
                && l.unchosen_bytes < UNCHOSEN_BYTES_MAX
                && l.transfer.is_none()
        })
    }

    /// Hands leadership to `to` (a member): proposals stop, and once `to`
    /// holds our whole log and all of it is chosen, `to` is told to elect
    /// itself at once. Given up
    /// after an election timeout. Ignored when not leading, when `to` is
    /// not a peer, or while a transfer is under way.
    pub fn transfer_leadership(&mut self, to: NodeId) {
        let until_us = self.now + self.cfg.election_timeout_us;
        let is_peer = to != self.cfg.id && self.cfg.members.contains(&to);
        let Some(lead) = self
            .lead
            .as_mut()
            .filter(|l| is_peer && l.transfer.is_none())
        else {
            return;
        };
        lead.transfer = Some(Transfer {
            to,
            until_us,
            sent: false,
        });
        self.maybe_timeout_now();
    }

    /// Each member with the slot up to which its log matches ours, as the
    /// leader knows it (None for a member it has no word from; all None
    /// when not leading). Ourselves: our last slot.
    pub fn members_matched(&self) -> impl Iterator<Item = (NodeId, Option<Slot>)> + '_ {
        let last = self.log.last_slot();
        self.cfg.members.iter().map(move |&m| {
            let matched = match &self.lead {
                None => None,
                Some(_) if m == self.cfg.id => Some(last),
                Some(l) => l.progress.get(&m).map(|p| p.matched),
            };
            (m, matched)
        })
    }

    /// Where leadership is being handed, if it is.
    pub fn transferring_to(&self) -> Option<NodeId> {
        self.lead.as_ref()?.transfer.map(|t| t.to)
    }

    /// Sends `TimeoutNow` once the transfer's target holds our whole log
    /// and all of it is chosen (so no call waits on a record whose fate a
    /// change of leader would make unknown).
    pub(super) fn maybe_timeout_now(&mut self) {
        let last = self.log.last_slot();
        if self.chosen < last {
            return;
        }
        let ballot = self.promised;
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        let Some(t) = lead.transfer.filter(|t| !t.sent) else {
            return;
        };
        if lead.progress.get(&t.to).is_none_or(|p| p.matched < last) {
            return;
        }
        lead.transfer = Some(Transfer { sent: true, ..t });
        lead.handed_to = Some(t.to);
        self.send(t.to, Message::TimeoutNow { ballot });
    }

    fn note_unchosen(&mut self, slot: Slot, bytes: u64) {
        if let Some(l) = &mut self.lead {
            l.unchosen.push_back((slot, bytes));
            l.unchosen_bytes += bytes;
        }
    }

    pub(super) fn leader_tick(&mut self) {
        let now = self.now;
        let quorum = self.quorum();
        let Some(lead) = &mut self.lead else { return };
        if lead.transfer.is_some_and(|t| now >= t.until_us) {
            // The target did not take over in time: lead on (the lease
            // stays forfeited if `TimeoutNow` went out).
            lead.transfer = None;
        }
        if now >= lead.quorum_check_due_us {
            lead.quorum_check_due_us = now + self.cfg.election_timeout_us;
            let window = self.cfg.election_timeout_us;
            let heard = lead
                .progress
                .values()
                .filter(|p| p.heard_us + window > now)
                .count();
            if heard + 1 < quorum {
                return self.step_down();
            }
        }
        if now >= lead.heartbeat_due_us {
            lead.heartbeat_due_us = now + self.cfg.heartbeat_us;
            self.broadcast();
        }
        self.maybe_timeout_now();
    }

    /// Sends every follower what it lacks, or a heartbeat. Called at each
    /// heartbeat: what a follower has not acknowledged since the last one
    /// is presumed lost and sent again.
    fn broadcast(&mut self) {
        let last = self.log.last_slot();
        for p in self.peers().collect::<Vec<_>>() {
            if let Some(pr) = self.lead.as_mut().and_then(|l| l.progress.get_mut(&p)) {
                // Behind, and nothing acknowledged for a whole interval: what
                // was sent (or its answer) was lost; send again from what it
                // is known to hold.
                if !pr.progressed && (pr.inflight > 0 || pr.matched < last) && !pr.reading {
                    if pr.matched < last && pr.snapshot.is_none() {
                        pr.next = pr.matched.next();
                        pr.probing = true;
                    }
                    pr.inflight = 0;
                }
                pr.progressed = false;
            }
            if !self.send_to(p) {
                self.heartbeat(p);
            }
        }
    }

    /// An empty accept on top of what the follower is known to have: keeps
    /// it loyal, tells it what is chosen, renews the lease.
    fn heartbeat(&mut self, to: NodeId) {
        let Some(pr) = self.lead.as_ref().and_then(|l| l.progress.get(&to)) else {
            return;
        };
        if pr.reading || pr.snapshot.is_some() {
            return;
        }
        let prev_slot = pr
            .matched
            .max(self.log.snapshot().slot)
            .min(Slot(pr.next.0.saturating_sub(1)));
        let Some(prev_ballot) = self.log.ballot_at(prev_slot) else {
            return;
        };
        let msg = Message::Accept {
            ballot: self.promised,
            prev_slot,
            prev_ballot,
            records: Vec::new(),
            chosen: self.chosen,
            sent_us: self.now,
        };
        self.send(to, msg);
    }

    /// Sends `to` the records it lacks, if the window allows; whether
    /// anything was sent (or asked of the shell).
    pub(super) fn send_to(&mut self, to: NodeId) -> bool {
        let last = self.log.last_slot();
        let snap = self.log.snapshot();
        let (now, rate) = (self.now, self.cfg.catch_up_bytes_per_s);
        let Some(lead) = self.lead.as_mut() else {
            return false;
        };
        let Some(pr) = lead.progress.get_mut(&to) else {
            return false;
        };
        if pr.reading || pr.snapshot.is_some() {
            return pr.snapshot.is_some() && self.send_chunk(to);
        }
        if pr.next > last || pr.inflight >= INFLIGHT_MAX || (pr.probing && pr.inflight > 0) {
            return false;
        }
        let next = pr.next;
        let cached = if next <= snap.slot {
            None
        } else {
            self.log.cached_from(next, MESSAGE_RECORD_BYTES_MAX)
        };
        if let Some(records) = cached {
            return self.send_records(to, next, records);
        }
        // Catching up from storage or a snapshot: paced (a heartbeat
        // instead until the pace allows).
        if !lead.pace.allows(now, rate) {
            return false;
        }
        pr.reading = true;
        if next <= snap.slot {
            self.out.snapshot_reads.push(to);
        } else {
            self.out.reads.push((to, next));
        }
        true
    }

    fn send_records(&mut self, to: NodeId, next: Slot, records: Vec<LogRecord>) -> bool {
        let prev_slot = Slot(next.0 - 1);
        let Some(prev_ballot) = self.log.ballot_at(prev_slot) else {
            return false; // compacted meanwhile: the next round sends a snapshot
        };
        let Some(pr) = self.lead.as_mut().and_then(|l| l.progress.get_mut(&to)) else {
            return false;
        };
        if let Some(last) = records.last() {
            pr.next = last.slot.next();
        }
        pr.inflight += 1;
        let msg = Message::Accept {
            ballot: self.promised,
            prev_slot,
            prev_ballot,
            records,
            chosen: self.chosen,
            sent_us: self.now,
        };
        self.send(to, msg);
        true
    }

    /// Records the shell read from storage for `to` (from its `reads`).
    pub fn read_done(&mut self, to: NodeId, from: Slot, records: Vec<LogRecord>) {
        let Some(pr) = self.lead.as_mut().and_then(|l| l.progress.get_mut(&to)) else {
            return;
        };
        if !pr.reading {
            return;
        }
        pr.reading = false;
        // Only what still follows our log (a truncation may have happened
        // since the read was asked for; a leader never truncates, but be
        // exact) and starts where the follower needs it.
        if from != pr.next || records.first().map(|r| r.slot) != Some(from) {
            self.send_to(to);
            return;
        }
        let ok = records
            .iter()
            .all(|r| self.log.ballot_at(r.slot) == Some(r.ballot));
        if ok {
            let bytes = records.iter().map(|r| r.payload.len()).sum();
            if let Some(lead) = self.lead.as_mut() {
                lead.pace.charge(bytes);
            }
            self.send_records(to, from, records);
        }
    }

    /// The shell could not read what `to` needs (no snapshot yet, say):
    /// it is asked for again at a later heartbeat.
    pub fn read_failed(&mut self, to: NodeId) {
        if let Some(pr) = self.lead.as_mut().and_then(|l| l.progress.get_mut(&to)) {
            pr.reading = false;
        }
    }

    /// The snapshot the shell read for `to` (from its `snapshot_reads`).
    pub fn snapshot_read(&mut self, to: NodeId, meta: SnapshotMeta, bytes: Vec<u8>) {
        let Some(pr) = self.lead.as_mut().and_then(|l| l.progress.get_mut(&to)) else {
            return;
        };
        if !pr.reading {
            return;
        }
        pr.reading = false;
        pr.inflight = 0;
        pr.snapshot = Some(Outgoing {
            meta,
            bytes: Arc::new(bytes),
            acked: 0,
        });
        self.send_chunk(to);
    }

    /// Sends the chunk after what the follower acknowledged, unless one is
    /// in flight.
    fn send_chunk(&mut self, to: NodeId) -> bool {
        let (ballot, now, rate) = (self.promised, self.now, self.cfg.catch_up_bytes_per_s);
        let Some(lead) = self.lead.as_mut() else {
            return false;
        };
        let Some(pr) = lead.progress.get_mut(&to) else {
            return false;
        };
        let Some(out) = &pr.snapshot else {
            return false;
        };
        if pr.inflight > 0 {
            return true;
        }
        if !lead.pace.allows(now, rate) {
            return false;
        }
        let start = usize::try_from(out.acked)
            .unwrap_or(usize::MAX)
            .min(out.bytes.len());
        let end = (start + SNAPSHOT_CHUNK_BYTES).min(out.bytes.len());
        let msg = Message::Snapshot {
            ballot,
            meta: out.meta,
            offset: start as u64,
            data: out.bytes.get(start..end).unwrap_or_default().to_vec(),
            done: end == out.bytes.len(),
            sent_us: now,
        };
        pr.inflight = 1;
        lead.pace.charge(end - start);
        self.send(to, msg);
        true
    }

    pub(super) fn on_accepted(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        matched: Option<Slot>,
        hint: Slot,
        sent_us: u64,
    ) {
        if self.role != Role::Leader || ballot != self.promised {
            return;
        }
        let now = self.now;
        let last = self.log.last_slot();
        let Some(pr) = self.lead.as_mut().and_then(|l| l.progress.get_mut(&from)) else {
            return;
        };
        pr.heard_us = now;
        pr.inflight = pr.inflight.saturating_sub(1);
        match matched {
            Some(m) => {
                // Only an ack that moves `matched` is progress: heartbeat
                // acks keep coming after a lost accept, and counting them
                // would keep `broadcast` from ever sending it again.
                if m.min(last) > pr.matched {
                    pr.progressed = true;
                }
                pr.acked_sent_us = pr.acked_sent_us.max(sent_us);
                pr.matched = pr.matched.max(m.min(last));
                pr.next = pr.next.max(pr.matched.next());
                pr.probing = false;
            }
            None => {
                // Rewind to just after the follower's hint, never below
                // what it is known to hold.
                let to = hint.next().max(pr.matched.next());
                if to < pr.next {
                    pr.next = to;
                    pr.inflight = 0;
                }
                pr.probing = true;
            }
        }
        self.advance_chosen();
        self.send_to(from);
    }

    pub(super) fn on_snapshot_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        meta: SnapshotMeta,
        offset: u64,
        done: bool,
        sent_us: u64,
    ) {
        if self.role != Role::Leader || ballot != self.promised {
            return;
        }
        let now = self.now;
        let Some(pr) = self.lead.as_mut().and_then(|l| l.progress.get_mut(&from)) else {
            return;
        };
        pr.heard_us = now;
        pr.inflight = pr.inflight.saturating_sub(1);
        let Some(out) = &mut pr.snapshot else { return };
        if out.meta != meta {
            return;
        }
        pr.progressed = true;
        if done {
            pr.snapshot = None;
            pr.acked_sent_us = pr.acked_sent_us.max(sent_us);
            pr.matched = pr.matched.max(meta.slot);
            pr.next = meta.slot.next();
            pr.probing = false;
            self.advance_chosen();
            self.send_to(from);
        } else {
            // The follower has `offset` bytes (fewer than sent if a chunk
            // was lost): continue from there.
            out.acked = offset;
            self.send_chunk(from);
        }
    }

    /// The highest slot a quorum holds, if it is of our ballot, is chosen
    /// (and with it everything before it).
    pub(super) fn advance_chosen(&mut self) {
        let Some(lead) = &mut self.lead else { return };
        let matched = lead.progress.values().map(|p| p.matched);
        let q = self.cfg.members.len() / 2 + 1;
        let Some(candidate) = quorum_th(matched.chain([self.persisted_slot]), q) else {
            return;
        };
        if candidate <= self.chosen || self.log.ballot_at(candidate) != Some(self.promised) {
            return;
        }
        self.chosen = candidate;
        while lead.unchosen.front().is_some_and(|(s, _)| *s <= candidate) {
            if let Some((_, b)) = lead.unchosen.pop_front() {
                lead.unchosen_bytes -= b;
            }
        }
        // A leader applies what it adopted before it is chosen: what it
        // applied may leave memory only now (a restarted leader kept its
        // whole replayed log until its next write).
        self.trim_cache();
    }

    /// The start of the newest quorum round: accepts sent at this time (on
    /// our clock) were acknowledged by a quorum in our ballot. None when not
    /// leading or no quorum has answered yet.
    pub fn quorum_round_us(&self) -> Option<u64> {
        let lead = self.lead.as_ref()?;
        let acks = lead.progress.values().map(|p| p.acked_sent_us);
        let t = quorum_th(acks.chain([self.now]), self.quorum())?;
        (t >= lead.since_us).then_some(t)
    }

    /// Whether a read executed at `exec_us` (our clock) may be answered
    /// now, as far as leadership goes: a lease covered that moment, or a
    /// quorum confirmed our ballot after it. (The caller also waits until
    /// everything the read saw is chosen.)
    pub fn read_allowed(&self, exec_us: u64) -> bool {
        let forfeited = self.lead.as_ref().is_some_and(|l| l.handed_to.is_some());
        match self.quorum_round_us() {
            Some(t) => t >= exec_us || (!forfeited && exec_us < t + self.cfg.leader_lease_us()),
            None => false,
        }
    }
}

/// The `q`-th highest of the members' values (what a quorum has at
/// least), without allocating: there are at most `MEMBERS_MAX`.
fn quorum_th<V: Ord + Copy + Default>(values: impl Iterator<Item = V>, q: usize) -> Option<V> {
    let mut all = [V::default(); super::MEMBERS_MAX];
    let mut n = 0;
    for v in values.take(super::MEMBERS_MAX) {
        all[n] = v;
        n += 1;
    }
    let all = &mut all[..n];
    all.sort_unstable_by(|a, b| b.cmp(a));
    all.get(q.checked_sub(1)?).copied()
}
