//! Becoming leader: a pre-vote (would a quorum promise me a new ballot? It
//! changes nothing, so a replica cut off from the others cannot disturb
//! them), then phase 1 (promises, durable), then `become_leader`.
//!
//! A replica grants a pre-vote or a promise only to a candidate whose
//! ballot is above its promise, whose log is at least as complete as its
//! own, and only when it is not loyal to a leader it heard from within a
//! lease (see the module doc of `consensus`).

use super::paxos::{Paxos, Role};
use super::Message;
use crate::types::{Ballot, NodeId, Slot};
use std::collections::BTreeSet;

/// The votes a candidate has collected.
#[derive(Debug, Default)]
pub(crate) struct Election {
    pub ballot: Ballot,
    pub granted: BTreeSet<NodeId>,
}

impl Paxos {
    /// The election timer fired: ask for pre-votes (or, alone, just lead).
    pub(super) fn campaign(&mut self) {
        let ballot = Ballot {
            round: self.max_round.max(self.promised.round) + 1,
            node: self.cfg.id,
        };
        self.reset_election_timer();
        if self.cfg.members.len() == 1 {
            return self.start_election(ballot);
        }
        self.role = Role::Candidate { pre: true };
        self.leader = None;
        self.election = super::election::Election {
            ballot,
            granted: BTreeSet::from([self.cfg.id]),
        };
        let (last_slot, last_ballot) = (self.log.last_slot(), self.log.last_ballot());
        for p in self.peers().collect::<Vec<_>>() {
            self.send(
                p,
                Message::PreVote {
                    ballot,
                    last_slot,
                    last_ballot,
                },
            );
        }
    }

    /// Phase 1 for `ballot`: promise it ourselves (durably), then ask.
    fn start_election(&mut self, ballot: Ballot) {
        self.start_election_for(ballot, Ballot::default());
    }

    fn start_election_for(&mut self, ballot: Ballot, transfer_of: Ballot) {
        self.role = Role::Candidate { pre: false };
        self.leader = None;
        self.promise(ballot);
        self.election = Election {
            ballot,
            granted: BTreeSet::new(),
        };
        let (last_slot, last_ballot) = (self.log.last_slot(), self.log.last_ballot());
        for p in self.peers().collect::<Vec<_>>() {
            // After our own promise is durable: a crash must not let us
            // forget a ballot we asked others to promise.
            self.send_after_persist(
                p,
                Message::Elect {
                    ballot,
                    last_slot,
                    last_ballot,
                    transfer_of,
                },
            );
        }
        self.check_election_won();
    }

    pub(super) fn on_pre_vote(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        last_slot: Slot,
        last_ballot: Ballot,
    ) {
        let granted = ballot > self.promised
            && self.role != Role::Leader
            && !self.loyal()
            && self.up_to_date(last_slot, last_ballot);
        let promised = self.promised;
        self.send(
            from,
            Message::PreVoteReply {
                ballot,
                granted,
                promised,
            },
        );
    }

    pub(super) fn on_pre_vote_reply(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        granted: bool,
        promised: Ballot,
    ) {
        self.note_round(promised);
        if self.role != (Role::Candidate { pre: true }) || ballot != self.election.ballot {
            return;
        }
        if granted {
            self.election.granted.insert(from);
        }
        let ballot = self.election.ballot;
        if self.election.granted.len() >= self.quorum() && ballot > self.promised {
            self.start_election(ballot);
        }
    }

    /// The leader hands over to us: elect now, skipping the pre-vote (our
    /// log matched the leader's when it asked).
    pub(super) fn on_timeout_now(&mut self, from: NodeId, ballot: Ballot) {
        if self.role != Role::Follower || self.leader != Some(from) || self.promised != ballot {
            return; // stale: from a leader we no longer follow
        }
        let next = Ballot {
            round: self.max_round.max(self.promised.round) + 1,
            node: self.cfg.id,
        };
        self.reset_election_timer();
        self.start_election_for(next, ballot);
    }

    pub(super) fn on_elect(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        last_slot: Slot,
        last_ballot: Ballot,
        transfer_of: Ballot,
    ) {
        if ballot < self.promised {
            let promised = self.promised;
            return self.send(from, Message::Reject { promised });
        }
        if ballot == self.promised {
            // A retransmission from the candidate we promised (never grant
            // the same ballot to two nodes: ballots name their node).
            if ballot.node == from && self.role != Role::Leader {
                self.reply_promise(from, ballot);
            }
            return;
        }
        // A leader that handed leadership to the candidate (`TimeoutNow`)
        // steps down and answers like a follower: it gave up its lease, and
        // when the other replicas are down the candidate cannot win
        // without it.
        // (Not for a late `Elect` from a target that has fallen behind, after
        // the transfer was dropped and proposals resumed: that one is
        // refused below without the leader stepping down.)
        let handed_to_it = transfer_of != Ballot::default()
            && transfer_of == self.promised
            && self.lead.as_ref().and_then(|l| l.handed_to) == Some(from)
            && self.up_to_date(last_slot, last_ballot);
        if handed_to_it {
            self.step_down();
        }
        // Any other leader refuses (its followers will reject the candidate
        // if it wins); a follower loyal to another leader (or to whoever
        // led before it restarted) refuses, and so does one whose log is
        // ahead. Loyalty protects the lease of the leader we follow; a
        // leader that handed over gave its lease up (`transfer_of` is its
        // ballot).
        let handed_over = transfer_of != Ballot::default()
            && (self.leader == Some(transfer_of.node) || handed_to_it)
            && self.promised == transfer_of;
        let loyal = self.loyal() && self.leader != Some(from) && !handed_over;
        if loyal || self.role == Role::Leader || !self.up_to_date(last_slot, last_ballot) {
            return; // refused: the candidate times out and tries again later
        }
        self.role = Role::Follower;
        self.leader = None;
        self.promise(ballot);
        self.reset_election_timer();
        self.reply_promise(from, ballot);
    }

    fn reply_promise(&mut self, to: NodeId, ballot: Ballot) {
        let msg = Message::Promise { ballot };
        #[cfg(any(test, debug_assertions))]
        if self.cfg.bugs.promise_not_durable {
            return self.send(to, msg);
        }
        self.send_after_persist(to, msg);
    }

    pub(super) fn on_promise(&mut self, from: NodeId, ballot: Ballot) {
        if self.role != (Role::Candidate { pre: false }) || ballot != self.election.ballot {
            return;
        }
        self.election.granted.insert(from);
        self.check_election_won();
    }

    /// Leads once a quorum promised, our own promise counted once durable.
    pub(super) fn check_election_won(&mut self) {
        if self.role != (Role::Candidate { pre: false }) {
            return;
        }
        let ballot = self.election.ballot;
        if self.durable_vote >= ballot && self.promised == ballot {
            self.election.granted.insert(self.cfg.id);
        }
        if self.election.granted.len() >= self.quorum() {
            self.become_leader();
        }
    }

    /// Someone promised a higher ballot than ours.
    pub(super) fn on_reject(&mut self, promised: Ballot) {
        let ours = match self.role {
            Role::Leader => self.promised,
            Role::Candidate { .. } => self.election.ballot,
            Role::Follower => return,
        };
        if promised <= ours {
            return;
        }
        if self.role == Role::Leader {
            self.step_down();
        }
        self.role = Role::Follower;
        self.leader = None;
        self.reset_election_timer();
    }

    /// Stops leading (a higher ballot exists, or a quorum went quiet).
    pub(super) fn step_down(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        self.role = Role::Follower;
        self.leader = None;
        self.lead = None;
        self.out.stepped_down = true;
        // What we executed past the chosen watermark is no longer ours to
        // finish; the caller rebuilds from chosen state.
        self.applied = self.applied.min(self.chosen);
        self.reset_election_timer();
    }
}
