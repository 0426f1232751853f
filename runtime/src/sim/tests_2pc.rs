//! Two-phase commit of coordinator transactions (`partition::decide`),
//! driven by hand on real cores, storage on a simulated disk and messages
//! passed between two replicas of a partition other than 0: a share is
//! applied by a follower only once its outcome is logged, an abort drops
//! it everywhere (the leader rebuilds), and a new leader that finds a share
//! without an outcome runs nothing until partition 0 answers. Before this,
//! a follower applied a share as soon as it was chosen, and a leader change
//! mid-commit left a bank transfer applied on some partitions only (`ohm
//! torture`, bank workload).

use super::node::Token;
use super::requests::{setup_entry, SetupStep};
use super::tests_core::{now, shared};
use super::world::TENANT;
use super::Shared;
use crate::catalog::PartitionId;
use crate::consensus::Message;
use crate::durability::{Log, LogOptions, SimFs, Storage};
use crate::partition::{persist, CallError, CoreConfig, PartitionCore, Ready};
use crate::types::NodeId;
use std::sync::Arc;

/// One replica: its core and its log.
struct Replica {
    id: NodeId,
    core: PartitionCore<Token>,
    log: Log<SimFs>,
    /// Its disk (clones share it): what a restart opens.
    fs: SimFs,
}

impl Replica {
    fn new(shared: &Shared, partition: u32, id: u32, replicas: usize, fs: SimFs) -> Replica {
        let (mut log, _) = Log::open(fs.clone(), LogOptions::default()).unwrap();
        let cfg = CoreConfig {
            partition: PartitionId(partition),
            // Partitions 0 and 1.
            partitions: 2,
            consensus: shared.consensus(NodeId(id), replicas),
            snapshot_log_bytes: u64::MAX,
            snapshot_step_bytes: crate::partition::SNAPSHOT_STEP_BYTES,
            quota: crate::catalog::Quota::default(),
        };
        let core = PartitionCore::recover(
            cfg,
            shared.runtime.clone(),
            &mut log,
            Arc::default(),
            now(0),
            u64::from(id),
        )
        .unwrap();
        Replica {
            id: NodeId(id),
            core,
            log,
            fs,
        }
    }

    /// Acts on the core's Ready as the node's executor does (persisting at
    /// once, rebuilding when asked); what it sends, and the Ready.
    fn drain(&mut self) -> (Vec<(NodeId, Message)>, Ready<Token>) {
        self.core.snapshot_step();
        let mut r = self.core.ready();
        let mut sent = std::mem::take(&mut r.messages);
        if let Some(b) = r.write.take() {
            persist(&mut self.log, &b).unwrap();
            self.core.persisted(b.seq, self.log.bytes_since_snapshot());
            sent.extend(b.then_send);
        }
        super::tests_core::stage(&mut self.core, &self.log, &r);
        if r.rebuild {
            self.core.rebuild(&mut self.log);
        }
        assert!(r.fatal.is_none(), "{:?}", r.fatal);
        (sent, r)
    }

    fn rows(&self, table: &str) -> usize {
        let state = self.core.state().expect("not lent");
        let db = state.tenant_ref(TENANT).unwrap().engine.database();
        db.table_by_name(table).map_or(0, |t| t.len())
    }
}

/// Two replicas of a group of three (the third is down), at time `t`.
struct Pair {
    r: [Replica; 2],
    t: u64,
    /// What each drain said, in order.
    readies: Vec<(usize, Ready<Token>)>,
}

impl Pair {
    /// Runs both for `rounds` ticks of 10 ms, passing messages between
    /// them; the Readies are kept.
    fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.t += 10_000;
            for i in 0..2 {
                self.r[i].core.tick(now(self.t));
            }
            for _ in 0..4 {
                for i in 0..2 {
                    let (sent, ready) = self.r[i].drain();
                    let from = self.r[i].id;
                    for (to, msg) in sent {
                        if to == self.r[1 - i].id {
                            self.r[1 - i].core.step(from, msg);
                        }
                    }
                    self.readies.push((i, ready));
                }
            }
        }
    }

    fn leader(&self) -> usize {
        let leaders: Vec<usize> = (0..2).filter(|i| self.r[*i].core.is_leader()).collect();
        assert_eq!(leaders.len(), 1, "one leader");
        leaders[0]
    }

    /// The leader runs `step` as the node's coordinator would for
    /// transaction shares: held, applied, handed back undecided, chosen.
    fn share(&mut self, step: SetupStep) -> u64 {
        let l = self.leader();
        self.r[l].core.hold(Token::Setup);
        let (_, ready) = self.r[l].drain();
        let (token, mut state) = ready.lent.expect("lent");
        let mut entry = setup_entry(&mut state, &step);
        assert!(crate::durability::mark_share(&mut entry));
        let txn = state.mp_txn_max;
        state.undecided = Some(txn);
        self.r[l].core.release(token, state, Some(entry), false);
        self.readies.clear();
        self.run(5);
        assert!(
            self.readies
                .iter()
                .any(|(i, r)| *i == l && r.held_chosen.is_some()),
            "the share is chosen"
        );
        self.r[l].core.resume();
        txn
    }
}

fn pair(shared: &Shared) -> Pair {
    let mut p = Pair {
        r: [
            Replica::new(shared, 1, 1, 3, SimFs::new()),
            Replica::new(shared, 1, 2, 3, SimFs::new()),
        ],
        t: 0,
        readies: Vec::new(),
    };
    p.run(100);
    p.leader();
    p
}

/// `pair`, with the kv table created by a committed share.
fn pair_with_kv(shared: &Shared) -> Pair {
    let mut p = pair(shared);
    let l = p.leader();
    let ddl = p.share(SetupStep::Ddl(ohm_kv::SCHEMA[0]));
    p.r[l].core.decided(ddl, true);
    p.run(5);
    p
}

#[test]
fn a_share_is_applied_by_a_follower_only_once_its_outcome_is_logged() {
    let shared = shared();
    let mut p = pair_with_kv(&shared);
    let l = p.leader();
    let f = 1 - l;
    let insert = "INSERT INTO kv (k, v, version) VALUES ('a', x'01', 1)".to_string();
    let txn = p.share(SetupStep::Insert(insert));
    assert_eq!(p.r[l].rows("kv"), 1, "the leader's state holds its share");
    // Chosen on both, but not decided: the follower waits at it, and the
    // leader neither runs anything nor lends its state.
    let share_slot = p.r[l].core.applied();
    assert!(p.r[f].core.paxos().chosen() >= share_slot);
    assert!(
        p.r[f].core.applied() < share_slot,
        "the follower applied a share whose outcome it did not know"
    );
    assert_eq!(p.r[f].rows("kv"), 0);
    p.r[l].core.hold(Token::Setup);
    let (_, ready) = p.r[l].drain();
    assert!(ready.lent.is_none());
    assert!(
        matches!(ready.replies.first(), Some((_, Err(CallError::InDoubt { txn: t, .. }))) if *t == txn),
        "a hold is refused while the leader waits for an outcome: {:?}",
        ready.replies.iter().map(|r| &r.1).collect::<Vec<_>>()
    );
    // Committed: the leader logs it, the follower applies the share.
    p.r[l].core.decided(txn, true);
    p.run(5);
    assert_eq!(p.r[f].rows("kv"), 1);
    assert_eq!(p.r[f].core.applied(), p.r[l].core.applied());
    assert!(p.r[f].core.applied() > share_slot);
}

#[test]
fn an_aborted_share_is_dropped_by_the_leader_and_passed_over_by_the_follower() {
    let shared = shared();
    let mut p = pair_with_kv(&shared);
    let l = p.leader();
    let f = 1 - l;
    let txn = p.share(SetupStep::Insert(
        "INSERT INTO kv (k, v, version) VALUES ('b', x'02', 1)".into(),
    ));
    assert_eq!(p.r[l].rows("kv"), 1);
    p.r[l].core.decided(txn, false);
    p.run(5);
    assert!(p.r[l].core.is_leader());
    assert_eq!(p.r[l].rows("kv"), 0, "the leader rebuilt without the share");
    assert_eq!(p.r[f].rows("kv"), 0, "the follower passed over the share");
    assert_eq!(p.r[f].core.applied(), p.r[l].core.applied());
    // And the partition goes on: the next transaction commits.
    let next = p.share(SetupStep::Insert(
        "INSERT INTO kv (k, v, version) VALUES ('c', x'03', 1)".into(),
    ));
    assert!(next > txn);
    p.r[l].core.decided(next, true);
    p.run(5);
    assert_eq!((p.r[l].rows("kv"), p.r[f].rows("kv")), (1, 1));
}

#[test]
fn a_new_leader_that_finds_a_share_without_an_outcome_asks_partition_0_and_waits() {
    let shared = shared();
    let mut p = pair_with_kv(&shared);
    let l = p.leader();
    let txn = p.share(SetupStep::Insert(
        "INSERT INTO kv (k, v, version) VALUES ('d', x'04', 1)".into(),
    ));
    // The leader (and its coordinator) goes down before any outcome and
    // comes back from its log; a new leader is elected.
    let fs = p.r[l].fs.clone();
    let id = p.r[l].id.0;
    p.r[l] = Replica::new(&shared, 1, id, 3, fs);
    p.readies.clear();
    p.run(100);
    // Either may lead: both have the share and no outcome.
    let nl = p.leader();
    assert_eq!(p.r[nl].rows("kv"), 0, "the share waits for its outcome");
    let asked = p
        .readies
        .iter()
        .filter(|(i, r)| *i == nl && r.asks.contains(&txn))
        .count();
    assert!(
        (2..=60).contains(&asked),
        "the new leader asks partition 0 now and then (asked {asked} times in 1 s)"
    );
    // Partition 0 says aborted: logged, passed over, and the partition runs.
    p.r[nl].core.decided(txn, false);
    p.run(5);
    assert_eq!(p.r[nl].rows("kv"), 0);
    assert_eq!(p.r[1 - nl].rows("kv"), 0);
    p.r[nl].core.hold(Token::Setup);
    let (_, ready) = p.r[nl].drain();
    assert!(ready.lent.is_some(), "holds are lent again");
}

/// Partition 0 answers for a transaction from what it committed, and its
/// leader aborts one it never heard of, answering once that is chosen.
#[test]
fn partition_0_answers_from_its_commits_and_aborts_what_it_never_committed() {
    let shared = shared();
    let fs = SimFs::new();
    let mut p0 = Replica::new(&shared, 0, 1, 1, fs);
    p0.core.tick(now(1_000_000));
    p0.drain();
    assert!(p0.core.is_leader());
    p0.core.hold(Token::Setup);
    let (_, ready) = p0.drain();
    let (token, mut state) = ready.lent.expect("lent");
    let entry = setup_entry(&mut state, &SetupStep::Ddl(ohm_kv::SCHEMA[0]));
    let committed = state.mp_txn_max;
    p0.core.release(token, state, Some(entry), false);
    p0.drain();
    p0.core.resume();
    p0.core.resolve(committed);
    assert_eq!(p0.drain().1.answers, vec![(committed, true)]);
    // Never heard of: aborted (logged), then answered.
    let unknown = committed + 1;
    p0.core.resolve(unknown);
    let (_, ready) = p0.drain();
    assert!(
        ready.answers.is_empty(),
        "answered only once the abort is chosen"
    );
    p0.core.resolve(unknown);
    assert_eq!(p0.drain().1.answers, vec![(unknown, false)]);
    assert_eq!(p0.core.state().unwrap().mp_txn_max, unknown);
    // It survives a restart (the abort is in the log; nothing committed).
    let fs = p0.fs.clone();
    let mut again = Replica::new(&shared, 0, 1, 1, fs);
    again.core.resolve(unknown);
    again.core.resolve(committed);
    assert_eq!(
        again.drain().1.answers,
        vec![(unknown, false), (committed, true)]
    );
}

/// A leader whose state holds a share in memory loses leadership before
/// its outcome; the new leader logs the abort and then a transaction that
/// writes the same row, and the old leader, now following, learns all of
/// it chosen at once. It must rebuild without the aborted share before it
/// applies what follows: applying on stopped it with "row not found"
/// (`ohm torture` seed 2, partition 2: `Decide(t, abort)` at slot 388 and
/// an update of the same account at 389, applied in one batch).
#[test]
fn a_deposed_leader_drops_its_aborted_share_before_applying_what_follows() {
    let shared = shared();
    let mut p = pair_with_kv(&shared);
    let l = p.leader();
    let f = 1 - l;
    let first = p.share(SetupStep::Insert(
        "INSERT INTO kv (k, v, version) VALUES ('e', x'05', 1)".into(),
    ));
    assert_eq!(p.r[l].rows("kv"), 1, "the leader's state holds its share");
    p.r[l].core.transfer_leadership(p.r[f].id);
    p.run(100);
    assert!(p.r[f].core.is_leader(), "leadership moved");
    assert_eq!(
        p.r[l].rows("kv"),
        1,
        "the deposed leader still holds the share"
    );
    // The new leader: the abort, then a transaction inserting the same
    // key, then its commit, proposed before the old leader hears any of
    // them chosen (its messages are not delivered meanwhile).
    p.r[f].core.decided(first, false);
    p.r[f].drain();
    p.r[f].core.hold(Token::Setup);
    let (_, ready) = p.r[f].drain();
    let (token, mut state) = ready.lent.expect("lent once the abort is applied");
    let mut entry = setup_entry(
        &mut state,
        &SetupStep::Insert("INSERT INTO kv (k, v, version) VALUES ('e', x'06', 1)".into()),
    );
    assert!(crate::durability::mark_share(&mut entry));
    let second = state.mp_txn_max;
    state.undecided = Some(second);
    p.r[f].core.release(token, state, Some(entry), false);
    p.r[f].drain();
    p.r[f].core.resume();
    p.r[f].core.decided(second, true);
    p.r[f].drain();
    // Now everything is delivered: the old leader follows, rebuilt.
    p.readies.clear();
    p.run(20);
    assert_eq!(p.r[f].rows("kv"), 1);
    assert_eq!(
        p.r[l].rows("kv"),
        1,
        "the second insert, not the aborted one"
    );
    assert_eq!(p.r[l].core.applied(), p.r[f].core.applied());
}
