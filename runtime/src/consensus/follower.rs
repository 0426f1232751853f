//! The acceptor side of phase 2: accepting a leader's records on top of a
//! matching record, learning the chosen watermark, and receiving a
//! snapshot when too far behind.

use super::paxos::{Incoming, Paxos, Role, SNAPSHOT_BYTES_MAX};
use super::Message;
use crate::durability::LogRecord;
use crate::types::{Ballot, NodeId, Slot};

impl Paxos {
    /// A message from the leader of `ballot`: follow it (raising our promise
    /// if needed); false when `ballot` is below our promise (then rejected).
    fn follow(&mut self, from: NodeId, ballot: Ballot) -> bool {
        if ballot < self.promised {
            let promised = self.promised;
            self.send(from, Message::Reject { promised });
            return false;
        }
        if self.role == Role::Leader && ballot > self.promised {
            self.step_down();
        }
        self.promise(ballot);
        self.role = Role::Follower;
        self.leader = Some(from);
        self.last_heard_us = self.now;
        self.reset_election_timer();
        true
    }

    pub(super) fn on_accept(&mut self, from: NodeId, msg: Message) {
        let Message::Accept {
            ballot,
            prev_slot,
            prev_ballot,
            records,
            chosen,
            sent_us,
        } = msg
        else {
            return;
        };
        if !follows_on(prev_slot, prev_ballot, ballot, &records) {
            return; // not what a leader sends: ignored, like a garbled packet
        }
        if !self.follow(from, ballot) {
            return;
        }
        let last = self.log.last_slot();
        let settled = self.chosen.max(self.log.snapshot().slot);
        let mismatch = if prev_slot > last {
            Some(last)
        } else if prev_slot > settled && self.log.ballot_at(prev_slot) != Some(prev_ballot) {
            // Skip back over the whole run of the ballot that disagrees.
            Some(Slot(self.log.run_start(prev_slot).0.saturating_sub(1)).max(settled))
        } else {
            None
        };
        if let Some(hint) = mismatch {
            let reply = Message::Accepted {
                ballot,
                matched: None,
                hint,
                sent_us,
            };
            return self.send(from, reply);
        }
        let matched = Slot(prev_slot.0 + records.len() as u64);
        for rec in records {
            self.accept_record(rec, settled);
        }
        if matched.max(settled) > self.chosen {
            // Chosen up to what the leader says, within what we know
            // matches its log.
            self.chosen = self.chosen.max(chosen.min(matched));
        }
        let reply = Message::Accepted {
            ballot,
            matched: Some(matched),
            hint: matched,
            sent_us,
        };
        self.send_after_persist(from, reply);
    }

    /// Accepts one record following a matching prefix.
    fn accept_record(&mut self, rec: LogRecord, settled: Slot) {
        if rec.slot <= settled {
            return; // chosen here already: the same record
        }
        if rec.slot <= self.log.last_slot() {
            if self.log.ballot_at(rec.slot) == Some(rec.ballot) {
                return; // the same record
            }
            self.truncate_after(Slot(rec.slot.0 - 1));
        }
        self.append(rec);
    }

    pub(super) fn on_snapshot(&mut self, from: NodeId, msg: Message) {
        let Message::Snapshot {
            ballot,
            meta,
            offset,
            data,
            done,
            sent_us,
        } = msg
        else {
            return;
        };
        if !self.follow(from, ballot) {
            return;
        }
        let fresh = self
            .incoming
            .as_ref()
            .is_none_or(|i| i.ballot != ballot || i.meta != meta);
        if offset == 0 && fresh {
            self.incoming = Some(Incoming {
                ballot,
                meta,
                data: Vec::new(),
            });
        }
        let Some(inc) = self
            .incoming
            .as_mut()
            .filter(|i| i.ballot == ballot && i.meta == meta)
        else {
            return; // a chunk of a transfer we do not have: wait for its start
        };
        let have = inc.data.len() as u64;
        if offset == have && have as usize + data.len() > SNAPSHOT_BYTES_MAX {
            // It cannot catch up from this leader: say so rather than ask
            // for the same chunk forever.
            self.incoming = None;
            self.out.problem = Some(format!(
                "the leader's snapshot at slot {} is over {SNAPSHOT_BYTES_MAX} bytes; this replica \
                 cannot receive it",
                meta.slot
            ));
            return;
        }
        if offset == have {
            inc.data.extend_from_slice(&data);
        }
        let received = inc.data.len() as u64;
        if !(done && offset.saturating_add(data.len() as u64) == received) {
            let ack = Message::SnapshotAck {
                ballot,
                meta,
                offset: received,
                done: false,
                sent_us,
            };
            return self.send(from, ack);
        }
        let Some(inc) = self.incoming.take() else {
            return;
        };
        if meta.slot <= self.chosen.max(self.log.snapshot().slot) {
            // Nothing new in it (a duplicate transfer): just acknowledge.
            let ack = Message::SnapshotAck {
                ballot,
                meta,
                offset: received,
                done: true,
                sent_us,
            };
            return self.send(from, ack);
        }
        // Records after the snapshot stay only if ours agree with the
        // leader's at its slot.
        if self.log.ballot_at(meta.slot) != Some(meta.ballot) {
            self.truncate_after(meta.slot.min(self.log.last_slot()));
        }
        self.out.records.retain(|r| r.slot > meta.slot);
        self.log.install(meta);
        self.out.snapshot = Some((meta, inc.data));
        self.chosen = self.chosen.max(meta.slot);
        self.applied = meta.slot;
        self.persisted_slot = self.persisted_slot.max(meta.slot);
        let ack = Message::SnapshotAck {
            ballot,
            meta,
            offset: received,
            done: true,
            sent_us,
        };
        self.send_after_persist(from, ack);
    }
}

/// Whether an accept's records can be a leader's: in slot order from
/// `prev_slot + 1`, with ballots that never go down from `prev_ballot` and
/// never exceed the leader's own.
fn follows_on(prev_slot: Slot, prev_ballot: Ballot, ballot: Ballot, records: &[LogRecord]) -> bool {
    let mut slot = prev_slot;
    let mut last = prev_ballot;
    for r in records {
        if r.slot != slot.next() || r.ballot < last || r.ballot > ballot {
            return false;
        }
        slot = r.slot;
        last = r.ballot;
    }
    prev_ballot <= ballot
}
