//! Scenario tests of the consensus core: a few replicas in one thread with
//! an in-memory log each and a network the test controls (deliver, drop,
//! cut links). The simulator (`sim/`) runs the same core at scale with
//! faults; these pin individual behaviours.

use super::*;
use crate::types::Ballot;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// One replica's disk, kept simply: what the shell would persist.
#[derive(Default)]
struct Disk {
    vote: Vote,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    records: Vec<LogRecord>,
}

impl Disk {
    fn persist(&mut self, r: &Ready) {
        if let Some(v) = r.vote {
            self.vote = v;
        }
        if let Some(t) = r.truncate_after {
            self.records.retain(|x| x.slot <= t);
        }
        if let Some((meta, bytes)) = &r.snapshot {
            self.snapshot = Some((*meta, bytes.clone()));
            self.records.retain(|x| x.slot > meta.slot);
        }
        for rec in &r.records {
            let last = self
                .records
                .last()
                .map_or(self.snapshot.as_ref().map_or(Slot(0), |s| s.0.slot), |l| {
                    l.slot
                });
            assert_eq!(rec.slot, last.next(), "the shell appends contiguously");
            self.records.push(rec.clone());
        }
    }

    fn read(&self, from: Slot) -> Vec<LogRecord> {
        self.records
            .iter()
            .filter(|r| r.slot >= from)
            .take(3)
            .cloned()
            .collect()
    }
}

struct Replica {
    px: Paxos,
    disk: Disk,
    up: bool,
    /// Records handed out as chosen, in order (what a partition applies).
    applied: Vec<LogRecord>,
    /// Snapshot reads storage answers with "no snapshot" before it finds
    /// one (a snapshot still being written).
    snapshot_misses: u32,
    /// Payload bytes read from storage for lagging followers.
    read_bytes: usize,
}

struct Cluster {
    nodes: BTreeMap<NodeId, Replica>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    /// Links that drop everything (both directions are listed).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Drops the messages it says yes to (a lossy link for some kinds).
    lose: Option<Lose>,
    now: u64,
}

type Lose = Box<dyn Fn(NodeId, NodeId, &Message) -> bool>;

fn ids(n: u32) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

impl Cluster {
    fn new(n: u32) -> Cluster {
        Cluster::with(n, |_| {})
    }

    /// `n` replicas whose configuration `f` adjusts.
    fn with(n: u32, f: impl Fn(&mut Config)) -> Cluster {
        let members = ids(n);
        let nodes = members
            .iter()
            .map(|&id| {
                let mut cfg = Config::new(id, members.clone());
                f(&mut cfg);
                let px = Paxos::new(
                    cfg,
                    Vote::default(),
                    SnapshotMeta::default(),
                    0,
                    id.0 as u64,
                )
                .unwrap();
                let r = Replica {
                    px,
                    disk: Disk::default(),
                    up: true,
                    applied: Vec::new(),
                    snapshot_misses: 0,
                    read_bytes: 0,
                };
                (id, r)
            })
            .collect();
        Cluster {
            nodes,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            lose: None,
            now: 0,
        }
    }

    fn node(&mut self, id: u32) -> &mut Replica {
        self.nodes.get_mut(&NodeId(id)).unwrap()
    }

    /// Drains every replica's Ready (persisting at once) and delivers
    /// messages until the network is quiet.
    fn settle(&mut self) {
        for _ in 0..100_000 {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            let mut busy = false;
            for id in ids {
                busy |= self.drain(id);
            }
            let Some((from, to, msg)) = self.queue.pop_front() else {
                if busy {
                    continue;
                }
                return;
            };
            if self.cut.contains(&(from, to)) {
                continue;
            }
            if self.lose.as_ref().is_some_and(|lose| lose(from, to, &msg)) {
                continue;
            }
            let r = self.nodes.get_mut(&to).unwrap();
            if r.up {
                r.px.step(from, msg);
            }
        }
        panic!("the network never went quiet");
    }

    /// Acts on one replica's Ready; whether there was anything to do.
    fn drain(&mut self, id: NodeId) -> bool {
        let r = self.nodes.get_mut(&id).unwrap();
        if !r.up {
            return false;
        }
        let ready = r.px.ready();
        let busy = !ready.is_empty();
        r.disk.persist(&ready);
        if let Some(seq) = ready.persist_seq {
            r.px.persisted(seq);
        }
        let applied_to = r
            .applied
            .last()
            .map_or(r.px.snapshot_meta().slot, |a| a.slot);
        if ready.snapshot.is_some() {
            r.applied.clear();
        }
        let from = match &ready.snapshot {
            Some((m, _)) => m.slot.next(),
            None => applied_to.next(),
        };
        if ready.chosen >= from && !r.px.is_leader() {
            let recs = r.px.records(from, ready.chosen);
            r.applied.extend(recs);
            r.px.applied(ready.chosen);
        }
        for to in ready
            .reads
            .iter()
            .map(|(to, from)| (*to, *from))
            .collect::<Vec<_>>()
        {
            let recs = r.disk.read(to.1);
            r.read_bytes += recs.iter().map(|x| x.payload.len()).sum::<usize>();
            r.px.read_done(to.0, to.1, recs);
        }
        for to in &ready.snapshot_reads {
            if r.snapshot_misses > 0 {
                r.snapshot_misses -= 1;
                r.px.read_failed(*to);
                continue;
            }
            let (meta, bytes) = r.disk.snapshot.clone().unwrap();
            r.px.snapshot_read(*to, meta, bytes);
        }
        for (to, m) in ready.messages.into_iter().chain(ready.after_persist) {
            self.queue.push_back((id, to, m));
        }
        busy
    }

    fn tick(&mut self, dt_us: u64) {
        self.now += dt_us;
        let now = self.now;
        for r in self.nodes.values_mut().filter(|r| r.up) {
            r.px.tick(now);
        }
        self.settle();
    }

    /// Ticks in 10 ms steps for `ms`.
    fn run_ms(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.tick(10_000);
        }
    }

    fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, r)| r.up && r.px.is_leader())
            .map(|(id, _)| *id)
            .collect();
        match leaders.as_slice() {
            [] => None,
            [one] => Some(*one),
            many => {
                // Two may think they lead (an old one not yet told), but
                // never in the same ballot.
                let ballots: BTreeSet<Ballot> =
                    many.iter().map(|id| self.nodes[id].px.promised()).collect();
                assert_eq!(ballots.len(), many.len(), "two leaders in one ballot");
                many.iter()
                    .copied()
                    .max_by_key(|id| self.nodes[id].px.promised())
            }
        }
    }

    fn propose(&mut self, id: NodeId, data: &[u8]) -> Result<Slot, ConsensusError> {
        let r = self.node(id.0);
        r.px.propose(Arc::from(data.to_vec()))
    }

    fn isolate(&mut self, id: u32) {
        for other in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.cut.insert((NodeId(id), other));
            self.cut.insert((other, NodeId(id)));
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    /// Chosen payloads of every replica agree slot by slot.
    fn check_agreement(&self) {
        let mut by_slot: BTreeMap<Slot, (Ballot, Arc<[u8]>)> = BTreeMap::new();
        for r in self.nodes.values() {
            for rec in &r.applied {
                let e = by_slot
                    .entry(rec.slot)
                    .or_insert((rec.ballot, rec.payload.clone()));
                assert_eq!(*e, (rec.ballot, rec.payload.clone()), "slot {}", rec.slot);
            }
        }
    }
}

#[test]
fn a_single_replica_leads_at_once_and_chooses_what_is_durable() {
    let mut c = Cluster::new(1);
    c.tick(1);
    assert!(c.node(1).px.is_leader());
    let s = c.propose(NodeId(1), b"a").unwrap();
    let r = c.node(1).px.ready();
    assert_eq!(r.records.len(), 1);
    assert!(r.chosen < s, "not chosen before it is durable");
    c.node(1).disk.persist(&r);
    c.node(1).px.persisted(r.persist_seq.unwrap());
    assert_eq!(c.node(1).px.chosen(), s);
    // Alone, a read needs no quorum round.
    let now = c.now;
    assert!(c.node(1).px.read_allowed(now));
}

#[test]
fn three_replicas_elect_one_leader_and_agree() {
    let mut c = Cluster::new(3);
    c.run_ms(3000);
    let l = c.leader().expect("a leader within 3 s");
    for i in 0..50u8 {
        c.propose(l, &[i]).unwrap();
    }
    c.run_ms(200);
    for r in c.nodes.values() {
        assert_eq!(r.px.chosen(), c.nodes[&l].px.last_slot());
    }
    c.check_agreement();
    let followers = c.nodes.values().filter(|r| !r.px.is_leader());
    for r in followers {
        // The no-op and the 50 proposals, in order.
        let payloads: Vec<u8> = r
            .applied
            .iter()
            .filter_map(|a| a.payload.first().copied())
            .collect();
        assert_eq!(payloads, (0..50).collect::<Vec<u8>>());
    }
}

#[test]
fn a_new_leader_keeps_what_was_chosen_and_the_old_one_gives_up_the_rest() {
    let mut c = Cluster::new(3);
    c.run_ms(3000);
    let old = c.leader().unwrap();
    for i in 0..10u8 {
        c.propose(old, &[i]).unwrap();
    }
    c.run_ms(100);
    let chosen = c.nodes[&old].px.chosen();
    c.isolate(old.0);
    // Proposed while cut off: never chosen.
    for i in 100..105u8 {
        c.propose(old, &[i]).unwrap();
    }
    c.run_ms(3000);
    assert!(
        !c.nodes[&old].px.is_leader(),
        "check-quorum: a leader that hears nobody steps down"
    );
    let new = c.leader().unwrap();
    assert_ne!(new, old);
    assert!(c.nodes[&new].px.promised() > c.nodes[&old].px.promised());
    c.propose(new, b"n").unwrap();
    c.run_ms(100);
    c.heal();
    c.run_ms(500);
    c.check_agreement();
    let r = &c.nodes[&old];
    assert!(r.px.chosen() > chosen);
    assert!(
        r.applied
            .iter()
            .all(|a| a.payload.first().is_none_or(|b| !(100..105).contains(b))),
        "the old leader's unchosen records were replaced: {:?}",
        r.applied
            .iter()
            .map(|a| (a.slot.0, a.ballot.round, a.payload.to_vec()))
            .collect::<Vec<_>>()
    );
    assert_eq!(r.disk.records.last().unwrap().payload.as_ref(), b"n");
}

#[test]
fn a_follower_cut_off_and_back_does_not_disturb_the_leader() {
    let mut c = Cluster::new(3);
    c.run_ms(3000);
    let l = c.leader().unwrap();
    let ballot = c.nodes[&l].px.promised();
    let f = c.nodes.keys().copied().find(|id| *id != l).unwrap();
    // Only the link between the leader and f is cut: f times out and asks
    // for pre-votes, which the third replica (hearing the leader) refuses.
    c.cut.insert((l, f));
    c.cut.insert((f, l));
    c.run_ms(5000);
    c.heal();
    c.run_ms(500);
    assert_eq!(c.leader(), Some(l));
    assert_eq!(
        c.nodes[&l].px.promised(),
        ballot,
        "no new ballot was needed"
    );
}

#[test]
fn a_lagging_follower_catches_up_from_storage_and_from_a_snapshot() {
    let mut c = Cluster::new(3);
    c.run_ms(3000);
    let l = c.leader().unwrap();
    let f = c.nodes.keys().copied().find(|id| *id != l).unwrap();
    c.isolate(f.0);
    // Big records, so the leader's memory cache drops old ones and must
    // read them back from its storage for the follower.
    let big = vec![7u8; 1 << 20];
    for _ in 0..(CACHE_BYTES_MAX >> 20) + 8 {
        c.propose(l, &big).unwrap();
        c.run_ms(10);
    }
    c.heal();
    c.run_ms(2000);
    assert_eq!(c.nodes[&f].px.chosen(), c.nodes[&l].px.chosen());
    c.check_agreement();

    // Now compact the leader's log past what a cut-off follower holds.
    c.isolate(f.0);
    for i in 0..5u8 {
        c.propose(l, &[i]).unwrap();
    }
    c.run_ms(100);
    let chosen = c.nodes[&l].px.chosen();
    let meta = SnapshotMeta {
        slot: chosen,
        ballot: c.nodes[&l].px.ballot_at(chosen).unwrap(),
    };
    let leader = c.node(l.0);
    leader.disk.snapshot = Some((meta, b"state".to_vec()));
    leader.disk.records.retain(|r| r.slot > meta.slot);
    leader.px.applied(chosen);
    leader.px.compacted(meta);
    // Storage finds no snapshot the first two times it is asked: the
    // leader asks again rather than wait for a read that never comes.
    leader.snapshot_misses = 2;
    c.heal();
    c.run_ms(2000);
    assert_eq!(c.nodes[&l].snapshot_misses, 0, "asked again");
    let fr = &c.nodes[&f];
    assert_eq!(fr.disk.snapshot.as_ref().map(|s| s.0), Some(meta));
    assert_eq!(fr.px.chosen(), c.nodes[&l].px.chosen());
}

/// Catch-up from storage is paced (`Config::catch_up_bytes_per_s`): a
/// follower far behind gets the old records at that rate, not all at once
/// on the leader's thread, and proposals go on meanwhile.
#[test]
fn catch_up_from_storage_is_paced() {
    const RATE: u64 = 8 << 20;
    let mut c = Cluster::with(3, |cfg| cfg.catch_up_bytes_per_s = RATE);
    c.run_ms(3000);
    let l = c.leader().unwrap();
    let f = c.nodes.keys().copied().find(|id| *id != l).unwrap();
    c.isolate(f.0);
    // 24 MiB more than the leader's memory cache holds.
    let big = vec![7u8; 1 << 20];
    for _ in 0..(CACHE_BYTES_MAX >> 20) + 24 {
        c.propose(l, &big).unwrap();
        c.run_ms(10);
    }
    c.heal();
    c.run_ms(1000);
    // A second's pace and the burst, plus the one read (three records
    // here) charged after it was made.
    let read = c.nodes[&l].read_bytes;
    let most = CATCH_UP_BURST_BYTES + RATE as usize + 3 * big.len();
    assert!(read > CATCH_UP_BURST_BYTES, "catch-up goes on: {read}");
    assert!(
        read <= most,
        "{read} bytes read in a second, more than {most}"
    );
    assert!(c.nodes[&f].px.chosen() < c.nodes[&l].px.chosen());
    // Live work goes on meanwhile.
    c.propose(l, b"live").unwrap();
    c.run_ms(100);
    assert_eq!(
        c.nodes[&l].px.chosen(),
        c.nodes[&l].px.last_slot(),
        "chosen by the leader and the third replica"
    );
    c.run_ms(4000);
    assert_eq!(c.nodes[&f].px.chosen(), c.nodes[&l].px.chosen());
    c.check_agreement();
}

/// Found by `ohm sim` (seed 5483): the accept carrying a follower's last
/// records was lost, the heartbeats after it were answered, and those
/// answers counted as progress, so the leader never sent the records
/// again; with no new proposals the follower stayed behind for good.
#[test]
fn a_lost_accept_is_sent_again_though_heartbeats_get_through() {
    let mut c = Cluster::new(3);
    c.run_ms(3000);
    let l = c.leader().unwrap();
    let f = c.nodes.keys().copied().find(|id| *id != l).unwrap();
    c.propose(l, b"a").unwrap();
    c.settle();
    let before = c.nodes[&f].px.last_slot();
    // Only the next accept with records to f is lost; heartbeats pass.
    let lost = std::cell::Cell::new(false);
    let lost = std::rc::Rc::new(lost);
    let seen = lost.clone();
    c.lose = Some(Box::new(move |from, to, m| {
        let records = matches!(m, Message::Accept { records, .. } if !records.is_empty());
        let hit = from == l && to == f && records && !seen.get();
        seen.set(seen.get() || hit);
        hit
    }));
    c.propose(l, b"b").unwrap();
    c.settle();
    assert!(lost.get(), "the accept was lost");
    assert_eq!(c.nodes[&f].px.last_slot(), before);
    c.run_ms(2000);
    assert_eq!(c.nodes[&f].px.last_slot(), c.nodes[&l].px.last_slot());
    assert_eq!(c.nodes[&f].px.chosen(), c.nodes[&l].px.chosen());
}

#[test]
fn a_replica_promises_only_to_a_candidate_as_complete_as_itself() {
    let mut c = Cluster::new(3);
    c.run_ms(3000);
    let l = c.leader().unwrap();
    let others: Vec<NodeId> = c.nodes.keys().copied().filter(|id| *id != l).collect();
    let (behind, ahead) = (others[0], others[1]);
    c.isolate(behind.0);
    c.propose(l, b"x").unwrap();
    c.run_ms(100);
    // The leader dies; only the replica that missed "x" and the one that
    // has it remain. The one that missed it must not win.
    c.node(l.0).up = false;
    c.heal();
    c.isolate(l.0);
    c.run_ms(5000);
    assert_eq!(c.leader(), Some(ahead));
    c.check_agreement();
    assert!(c.nodes[&behind]
        .applied
        .iter()
        .any(|a| a.payload.as_ref() == b"x"));
}

#[test]
fn leases_shrink_by_the_drift_bound_and_reads_wait_outside_them() {
    let cfg = Config::new(NodeId(1), ids(3));
    // 500 ms * 0.98 / 1.02
    assert_eq!(cfg.leader_lease_us(), 480_392);
    let mut c = Cluster::new(3);
    c.run_ms(3000);
    let l = c.leader().unwrap();
    let t = c.now;
    assert!(
        c.nodes[&l].px.read_allowed(t),
        "a quorum answered a heartbeat just now"
    );
    // Cut the leader off: reads executed later are refused once the lease
    // from the last answered heartbeat has run out.
    c.isolate(l.0);
    c.run_ms(200);
    let in_lease = c.now;
    assert!(c.nodes[&l].px.read_allowed(in_lease));
    c.run_ms(400);
    assert!(!c.nodes[&l].px.read_allowed(c.now));
}

#[test]
fn propose_refuses_when_not_leader_or_too_much_is_unchosen() {
    let mut c = Cluster::new(3);
    c.tick(1);
    let e = c.propose(NodeId(1), b"x").unwrap_err();
    assert!(matches!(e, ConsensusError::NotLeader { .. }), "{e}");
    c.run_ms(3000);
    let l = c.leader().unwrap();
    c.isolate(l.0);
    let mut refused = None;
    for i in 0..UNCHOSEN_RECORDS_MAX + 10 {
        if let Err(e) = c.propose(l, b"") {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("backpressure");
    assert!(matches!(e, ConsensusError::Busy { .. }), "{e}");
    assert!(i <= UNCHOSEN_RECORDS_MAX, "{i}");
}

#[test]
fn config_is_checked() {
    let mut cfg = Config::new(NodeId(9), ids(3));
    let err = |cfg: &Config| {
        Paxos::new(cfg.clone(), Vote::default(), SnapshotMeta::default(), 0, 1)
            .err()
            .map(|e| e.to_string())
    };
    assert!(err(&cfg).unwrap().contains("not a member"));
    cfg.id = NodeId(1);
    cfg.lease_us = cfg.election_timeout_us + 1;
    assert!(err(&cfg).unwrap().contains("lease"));
}

/// With the lease bug planted, a cut-off leader whose clock runs slow still
/// believes it may read alone after a new leader has chosen something.
#[test]
fn a_lease_that_ignores_drift_outlives_a_new_leader() {
    let run = |bug: bool| -> bool {
        let mut c = Cluster::new(3);
        for r in c.nodes.values_mut() {
            r.px.cfg.clock_drift_ppm = 200_000;
            r.px.cfg.bugs.lease_ignores_drift = bug;
        }
        c.run_ms(3000);
        let old = c.leader().unwrap();
        c.isolate(old.0);
        // Real time passes in 1 ms steps; the old leader's clock runs 20%
        // slow, the others' 20% fast.
        let start = c.now;
        let mut stale = false;
        for ms in 1..2000u64 {
            let real = start + ms * 1000;
            c.now = real;
            for (id, r) in c.nodes.iter_mut() {
                let local = if *id == old {
                    start + ms * 800
                } else {
                    start + ms * 1200
                };
                r.px.tick(local);
            }
            c.settle();
            let new_leader = c.nodes.iter().find(|(id, r)| {
                **id != old && r.px.is_leader() && r.px.chosen() > c.nodes[&old].px.chosen()
            });
            if new_leader.is_some() {
                let old_px = &c.nodes[&old].px;
                let old_now = start + ms * 800;
                if old_px.is_leader() && old_px.read_allowed(old_now) {
                    stale = true;
                }
            }
        }
        stale
    };
    assert!(
        run(true),
        "the planted bug gives the old leader a stale lease"
    );
    assert!(
        !run(false),
        "the drift-aware lease never overlaps a new leader's choices"
    );
}

/// A batch handed out before a truncation is durable only up to the cut:
/// the records after it belong to an older history.
#[test]
fn persisted_stops_at_a_later_truncation() {
    let rec = |slot: u64, round: u64| LogRecord {
        slot: Slot(slot),
        ballot: Ballot {
            round,
            node: NodeId(1),
        },
        payload: Arc::from(vec![1u8]),
    };
    let b = |round| Ballot {
        round,
        node: NodeId(1),
    };
    let cfg = Config::new(NodeId(2), ids(3));
    let mut p = Paxos::new(cfg, Vote::default(), SnapshotMeta::default(), 0, 1).unwrap();
    let accept = |ballot, prev_slot, prev_ballot, records| Message::Accept {
        ballot,
        prev_slot: Slot(prev_slot),
        prev_ballot,
        records,
        chosen: Slot(0),
        sent_us: 0,
    };
    p.step(
        NodeId(1),
        accept(
            b(1),
            0,
            Ballot::default(),
            vec![rec(1, 1), rec(2, 1), rec(3, 1)],
        ),
    );
    let first = p.ready();
    p.step(NodeId(1), accept(b(2), 1, b(1), vec![rec(2, 2)]));
    let second = p.ready();
    assert_eq!(second.truncate_after, Some(Slot(1)));
    p.persisted(first.persist_seq.unwrap());
    assert_eq!(
        p.persisted_slot(),
        Slot(1),
        "slot 2 of ballot 2 is not durable yet"
    );
    p.persisted(second.persist_seq.unwrap());
    assert_eq!(p.persisted_slot(), Slot(2));
}

/// Records that do not follow on from `prev` (out of order, or of a
/// ballot above the leader's) are dropped, not a panic.
#[test]
fn a_garbled_accept_is_ignored() {
    let cfg = Config::new(NodeId(2), ids(3));
    let mut p = Paxos::new(cfg, Vote::default(), SnapshotMeta::default(), 0, 1).unwrap();
    let b1 = Ballot {
        round: 1,
        node: NodeId(1),
    };
    let rec = |slot: u64, round: u64| LogRecord {
        slot: Slot(slot),
        ballot: Ballot {
            round,
            node: NodeId(1),
        },
        payload: Arc::from(vec![1u8]),
    };
    for records in [vec![rec(2, 1)], vec![rec(1, 1), rec(3, 1)], vec![rec(1, 5)]] {
        p.step(
            NodeId(1),
            Message::Accept {
                ballot: b1,
                prev_slot: Slot(0),
                prev_ballot: Ballot::default(),
                records,
                chosen: Slot(0),
                sent_us: 0,
            },
        );
        assert_eq!(p.last_slot(), Slot(0));
        assert!(p.ready().after_persist.is_empty());
    }
}

/// Any message the peer codec lets through, with extreme ballots, slots,
/// offsets and payloads, stepped into a live group: the core may refuse or
/// ignore it, but arithmetic on the values must not overflow or index out
/// of bounds. (Slots and rounds at or past `peer::VALUE_MAX` never reach
/// the core: the codec refuses them.)
#[test]
fn extreme_values_from_a_peer_never_panic() {
    use crate::rng::Rng;
    fn pick(rng: &mut Rng, near: u64) -> u64 {
        let top = crate::peer::VALUE_MAX;
        match rng.below(7) {
            0 => 0,
            1 => u64::MAX,
            2 => top - 1 - rng.below(3),
            3 => top,
            4 => near.saturating_add(rng.below(4)),
            5 => near.saturating_sub(rng.below(4)),
            _ => rng.next_u64(),
        }
    }
    fn ballot(rng: &mut Rng, near: Ballot) -> Ballot {
        Ballot {
            round: pick(rng, near.round),
            node: NodeId(match rng.below(4) {
                0 => u32::MAX,
                1 => 0,
                _ => 1 + rng.below(3) as u32,
            }),
        }
    }
    let mut rng = Rng::new(11);
    let mut stepped_count = 0;
    for round in 0..40 {
        let mut c = Cluster::new(3);
        c.run_ms(2_000);
        let leader = c.leader().expect("a leader");
        for i in 0..5 {
            let _ = c.propose(leader, format!("r{i}").as_bytes());
        }
        c.run_ms(100);
        for _ in 0..200 {
            let to = NodeId(1 + rng.below(3) as u32);
            let from = NodeId(1 + rng.below(3) as u32);
            let near = c.nodes[&to].px.promised();
            let last = c.nodes[&to].px.chosen().0;
            let b = ballot(&mut rng, near);
            let s = |rng: &mut Rng| Slot(pick(rng, last));
            let meta = SnapshotMeta {
                slot: s(&mut rng),
                ballot: ballot(&mut rng, near),
            };
            let msg = match rng.below(9) {
                0 => Message::PreVote {
                    ballot: b,
                    last_slot: s(&mut rng),
                    last_ballot: ballot(&mut rng, near),
                },
                1 => Message::PreVoteReply {
                    ballot: b,
                    granted: rng.below(2) == 0,
                    promised: ballot(&mut rng, near),
                },
                2 => Message::Elect {
                    ballot: b,
                    last_slot: s(&mut rng),
                    last_ballot: ballot(&mut rng, near),
                    transfer_of: ballot(&mut rng, near),
                },
                3 => Message::Promise { ballot: b },
                4 => {
                    let first = s(&mut rng);
                    let records = (0..rng.below(3))
                        .map(|k| LogRecord {
                            slot: Slot(first.0.saturating_add(k)),
                            ballot: b,
                            payload: Arc::from(&b"x"[..]),
                        })
                        .collect();
                    Message::Accept {
                        ballot: b,
                        prev_slot: Slot(first.0.saturating_sub(1)),
                        prev_ballot: ballot(&mut rng, near),
                        records,
                        chosen: s(&mut rng),
                        sent_us: pick(&mut rng, c.now),
                    }
                }
                5 => Message::Accepted {
                    ballot: b,
                    matched: (rng.below(2) == 0).then(|| s(&mut rng)),
                    hint: s(&mut rng),
                    sent_us: pick(&mut rng, c.now),
                },
                6 => Message::Snapshot {
                    ballot: b,
                    meta,
                    offset: pick(&mut rng, 0),
                    data: vec![0; rng.below(4) as usize],
                    done: rng.below(2) == 0,
                    sent_us: pick(&mut rng, c.now),
                },
                7 => Message::SnapshotAck {
                    ballot: b,
                    meta,
                    offset: pick(&mut rng, 0),
                    done: rng.below(2) == 0,
                    sent_us: pick(&mut rng, c.now),
                },
                _ => Message::Reject { promised: b },
            };
            // Through the wire, as a peer's message would come.
            let msg = {
                let m = crate::peer::PeerMessage::Consensus {
                    group: crate::peer::Group::Meta,
                    msg,
                };
                let mut buf = Vec::new();
                crate::peer::encode(&m, &mut buf);
                match crate::peer::decode(&buf[crate::peer::PEER_PREFIX_BYTES..]) {
                    Ok(crate::peer::PeerMessage::Consensus { msg, .. }) => msg,
                    Ok(_) | Err(_) => continue,
                }
            };
            let shown = format!("{msg:?}");
            let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                c.node(to.0).px.step(from, msg);
                c.settle();
            }));
            assert!(
                stepped.is_ok(),
                "round {round}: {from} -> {to}: {shown} panicked"
            );
            stepped_count += 1;
        }
    }
    // Most draws pass the codec (a value past the bound is one choice in
    // seven per field).
    assert!(
        stepped_count > 1_000,
        "only {stepped_count} messages stepped"
    );
}

/// With one replica of three down, the target's election needs the old
/// leader's own promise: a leader that handed over must give it.
#[test]
fn leadership_moves_with_a_replica_down() {
    let mut c = Cluster::new(3);
    c.run_ms(3000);
    let l = c.leader().unwrap();
    let mut others = c.nodes.keys().copied().filter(|n| *n != l);
    let (to, down) = (others.next().unwrap(), others.next().unwrap());
    c.isolate(down.0);
    c.propose(l, b"before").unwrap();
    c.run_ms(100);
    c.nodes.get_mut(&l).unwrap().px.transfer_leadership(to);
    // Shorter than an election timeout: only the transfer can explain it.
    c.run_ms(200);
    assert_eq!(c.leader(), Some(to), "the target leads");
    c.propose(to, b"after").unwrap();
    c.run_ms(100);
    c.check_agreement();
    assert_eq!(c.nodes[&l].px.chosen(), c.nodes[&to].px.chosen());
}

/// A transfer: proposals stop, the target takes over at once (well within
/// the followers' loyalty, which it may override only for the leader that
/// handed over), nothing chosen is lost, and the old leader never reads
/// alone again in its ballot.
#[test]
fn leadership_moves_to_the_member_it_is_handed_to() {
    let mut c = Cluster::new(3);
    c.run_ms(3000);
    let l = c.leader().unwrap();
    for i in 0..20u8 {
        c.propose(l, &[i]).unwrap();
    }
    c.run_ms(100);
    let to = c.nodes.keys().copied().find(|n| *n != l).unwrap();
    c.nodes.get_mut(&l).unwrap().px.transfer_leadership(to);
    assert_eq!(c.nodes[&l].px.transferring_to(), Some(to));
    let e = c.propose(l, b"during").unwrap_err();
    assert!(
        matches!(
            e,
            ConsensusError::Busy { .. } | ConsensusError::NotLeader { .. }
        ),
        "{e}"
    );
    // Shorter than an election timeout: only the transfer can explain it.
    c.run_ms(100);
    assert_eq!(c.leader(), Some(to), "the target leads");
    assert!(
        !c.nodes[&l].px.read_allowed(c.now),
        "the old leader's lease is gone"
    );
    c.propose(to, b"after").unwrap();
    c.run_ms(100);
    c.check_agreement();
    let chosen = c.nodes[&to].px.chosen();
    assert_eq!(c.nodes[&l].px.chosen(), chosen, "the old leader follows");

    // A stale TimeoutNow (from a ballot no longer led) starts nothing.
    let old = c.nodes[&l].px.promised();
    let before = c.nodes[&to].px.promised();
    let other = c
        .nodes
        .keys()
        .copied()
        .find(|n| *n != l && *n != to)
        .unwrap();
    c.nodes.get_mut(&other).unwrap().px.step(
        l,
        Message::TimeoutNow {
            ballot: Ballot { round: 1, node: l },
        },
    );
    c.run_ms(50);
    assert_eq!(c.leader(), Some(to));
    assert!(c.nodes[&to].px.promised() >= before && old <= before);
}
