//! Crash tests on `SimFs`: a randomized workload against a model, and
//! targeted crashes inside `truncate_after` and `install_snapshot` at every
//! fsync they make. A failure names its seed; the same seed replays it.

use super::tests_log::read_all;
use super::*;
use crate::rng::Rng;
use crate::types::{Ballot, NodeId, Slot};
use std::collections::BTreeMap;

const SEEDS: u64 = 300;
const STEPS: usize = 250;

/// What the log must hold, as far as a crash allows.
#[derive(Default)]
struct Model {
    /// Records after the snapshot, in slot order.
    records: Vec<LogRecord>,
    snap: Option<SnapshotMeta>,
    vote: Vote,
    /// Records up to this slot survive any crash; up to `flushed`, any
    /// restart without a crash.
    synced: Slot,
    flushed: Slot,
    /// Every record a crash may bring back, by slot.
    history: BTreeMap<Slot, Vec<LogRecord>>,
}

impl Model {
    fn snap_slot(&self) -> Slot {
        self.snap.map_or(Slot(0), |m| m.slot)
    }

    fn last(&self) -> Slot {
        self.records.last().map_or(self.snap_slot(), |r| r.slot)
    }

    /// After a reopen (a crash or not: `open` syncs what it found), what
    /// was found is durable and all a later crash can bring back.
    fn reset_to(&mut self, found: Vec<LogRecord>) {
        self.records = found;
        self.synced = self.last();
        self.flushed = self.synced;
        self.history = self
            .records
            .iter()
            .map(|r| (r.slot, vec![r.clone()]))
            .collect();
    }
}

/// Counts, so a test that could pass vacuously fails instead.
#[derive(Default, Debug)]
struct Seen {
    crashes: u64,
    torn: u64,
    truncations: u64,
    installs_ahead: u64,
    installs_behind: u64,
    failed_syncs: u64,
}

fn random_payload(rng: &mut Rng) -> Vec<u8> {
    let len = if rng.chance(50_000) {
        rng.range(300, 700)
    } else {
        rng.below(100)
    };
    (0..len).map(|_| rng.below(256) as u8).collect()
}

struct Run {
    seed: u64,
    rng: Rng,
    fs: SimFs,
    opts: LogOptions,
    log: Log<SimFs>,
    m: Model,
    ballot: Ballot,
    seen: Seen,
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut rng = Rng::new(seed);
        let fs = SimFs::new();
        let opts = LogOptions {
            segment_bytes_max: rng.range(64, 600),
            ..LogOptions::default()
        };
        let (log, _) = Log::open(fs.clone(), opts.clone()).expect("open an empty log");
        Run {
            seed,
            rng,
            fs,
            opts,
            log,
            m: Model::default(),
            ballot: Ballot::default(),
            seen: Seen::default(),
        }
    }

    fn append(&mut self) {
        for _ in 0..self.rng.range(1, 5) {
            let r = LogRecord {
                slot: self.m.last().next(),
                ballot: self.ballot,
                payload: random_payload(&mut self.rng).into(),
            };
            self.log.append(&r).expect("append");
            self.m.history.entry(r.slot).or_default().push(r.clone());
            self.m.records.push(r);
        }
    }

    fn sync(&mut self) {
        // Armed only when this sync fsyncs, so the failure is its own.
        let fail = self.rng.chance(100_000) && self.log.durable_slot() < self.log.last_slot();
        if fail {
            self.fs.fail_next_sync();
        }
        match self.log.sync() {
            Ok(()) => {
                self.m.synced = self.m.last();
                self.m.flushed = self.m.last();
            }
            Err(DurabilityError::Io { .. }) if fail => {
                // After an error the replica stops: here, the machine too.
                self.seen.failed_syncs += 1;
                self.crash();
            }
            Err(e) => panic!("seed {}: sync: {e}", self.seed),
        }
    }

    fn truncate(&mut self) {
        let (lo, hi) = (self.m.snap_slot().0, self.m.last().0);
        let slot = Slot(self.rng.range(lo, hi + 1));
        self.log.truncate_after(slot).expect("truncate");
        self.m.records.retain(|r| r.slot <= slot);
        self.m.synced = self.m.synced.min(slot);
        self.m.flushed = self.m.flushed.min(slot);
        self.seen.truncations += 1;
    }

    fn vote(&mut self) {
        self.ballot = Ballot {
            round: self.ballot.round + self.rng.range(1, 3),
            node: NodeId(self.rng.below(3) as u32),
        };
        self.m.vote = Vote {
            promised: self.ballot,
        };
        self.log.set_vote(self.m.vote).expect("set vote");
    }

    fn install(&mut self) {
        let (lo, hi) = (self.m.snap_slot().0, self.m.last().0);
        let ahead = self.rng.chance(400_000);
        let slot = Slot(if ahead {
            hi + self.rng.range(1, 10)
        } else {
            self.rng.range(lo, hi + 1)
        });
        let meta = SnapshotMeta {
            slot,
            ballot: self.ballot,
        };
        let bytes = snapshot::encode(
            meta,
            slot.0,
            &snapshot::Committed::default(),
            &[],
            &Default::default(),
            &[],
        )
        .expect("encode");
        install(&mut self.log, meta, &bytes, self.rng.below(2) == 0).expect("install");
        if slot > self.m.last() {
            self.m.records.clear();
            self.seen.installs_ahead += 1;
        } else {
            self.m.records.retain(|r| r.slot > slot);
            self.seen.installs_behind += 1;
        }
        self.m.snap = Some(meta);
        self.m.synced = self.m.synced.max(slot);
        self.m.flushed = self.m.flushed.max(slot);
    }

    /// Reopens (after a crash, or a restart without one) and checks the
    /// log against the model; `kept` is the slot up to which records must
    /// be there.
    fn reopen(&mut self, kept: Slot) {
        let seed = self.seed;
        let lens: BTreeMap<String, u64> = self
            .fs
            .names()
            .into_iter()
            .map(|n| (n.clone(), self.fs.len(&n).expect("stat")))
            .collect();
        let (mut log, opened) = match Log::open(self.fs.clone(), self.opts.clone()) {
            Ok(x) => x,
            Err(e) => panic!("seed {seed}: reopen refused: {e}"),
        };
        assert_eq!(log.vote(), self.m.vote, "seed {seed}: vote");
        assert_eq!(log.snapshot_meta(), self.m.snap, "seed {seed}: snapshot");
        let found = read_all(&mut log);
        let mut slot = self.m.snap_slot();
        for r in &found {
            slot = slot.next();
            assert_eq!(r.slot, slot, "seed {seed}: contiguous");
            let versions = self.m.history.get(&r.slot).map_or(&[][..], |v| &v[..]);
            assert!(
                versions.contains(r),
                "seed {seed}: slot {slot} holds what was never appended there: {r:?}, not one of {versions:?}"
            );
        }
        let must: Vec<&LogRecord> = self.m.records.iter().filter(|r| r.slot <= kept).collect();
        assert!(
            found.len() >= must.len(),
            "seed {seed}: lost records up to {kept}"
        );
        for (want, got) in must.iter().zip(&found) {
            assert_eq!(*want, got, "seed {seed}: a kept record changed");
        }
        self.check_tail(&log, &opened, &lens);
        self.log = log;
        self.m.reset_to(found);
    }

    /// The last segment holds whole records only, and a cut was reported
    /// exactly when the file was longer.
    fn check_tail(&mut self, log: &Log<SimFs>, opened: &Opened, lens: &BTreeMap<String, u64>) {
        let seed = self.seed;
        let files = log.segment_files();
        let last = files.last().expect("a current segment");
        let first = Slot(last[4..24].parse().expect("a segment name"));
        let data = self.fs.read(last).expect("read");
        let mut seg = segment::Segment::new(first, segment::SEGMENT_VERSION);
        let scanned = segment::scan(&data, &mut seg, true, Slot(0)).expect("scan");
        assert!(
            scanned.torn.is_none(),
            "seed {seed}: {last} ends in a torn record"
        );
        let end = data.len() as u64;
        assert_eq!(
            scanned.end, end,
            "seed {seed}: {last} ends in whole records"
        );
        match &opened.torn_tail {
            Some(t) => {
                self.seen.torn += 1;
                assert_eq!(&t.file, last, "seed {seed}");
                assert_eq!(
                    t.offset + t.bytes_dropped,
                    lens[&t.file],
                    "seed {seed}: {t:?}"
                );
                assert!(t.offset == end || t.offset == 0, "seed {seed}: {t:?}");
            }
            None => {
                let before = lens.get(last).copied().unwrap_or(end);
                assert_eq!(before, end, "seed {seed}: {last} was cut without a report");
            }
        }
    }

    fn crash(&mut self) {
        let _ = self.log.flush(); // maybe written, maybe not
        self.fs.crash(self.rng.next_u64());
        self.seen.crashes += 1;
        self.reopen(self.m.synced);
    }

    /// A process restart: what was written survives, the buffer does not.
    fn restart(&mut self) {
        self.reopen(self.m.flushed);
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=39 => self.append(),
            40..=54 => self.sync(),
            55..=61 => {
                self.log.flush().expect("flush");
                self.m.flushed = self.m.last();
            }
            62..=68 => self.truncate(),
            69..=72 => self.vote(),
            73..=78 => self.install(),
            79..=83 => self.restart(),
            _ => self.crash(),
        }
    }
}

/// Runs one seed; the digest of the disk at the end.
fn run(seed: u64, seen: &mut Seen) -> Vec<(String, Vec<u8>)> {
    let mut r = Run::new(seed);
    r.vote();
    for _ in 0..STEPS {
        r.step();
    }
    r.crash();
    let s = &r.seen;
    seen.crashes += s.crashes;
    seen.torn += s.torn;
    seen.truncations += s.truncations;
    seen.installs_ahead += s.installs_ahead;
    seen.installs_behind += s.installs_behind;
    seen.failed_syncs += s.failed_syncs;
    r.fs.names()
        .into_iter()
        .map(|n| {
            let bytes = r.fs.read(&n).expect("read");
            (n, bytes)
        })
        .collect()
}

#[test]
fn random_appends_syncs_truncations_snapshots_and_crashes() {
    let mut seen = Seen::default();
    for seed in 0..SEEDS {
        run(seed, &mut seen);
    }
    assert!(seen.crashes > SEEDS * 10, "{seen:?}");
    assert!(seen.torn > SEEDS, "{seen:?}");
    assert!(seen.truncations > SEEDS * 5, "{seen:?}");
    assert!(
        seen.installs_ahead > SEEDS && seen.installs_behind > SEEDS,
        "{seen:?}"
    );
    assert!(seen.failed_syncs > SEEDS / 2, "{seen:?}");
}

#[test]
fn a_seed_replays_exactly() {
    let mut seen = Seen::default();
    assert_eq!(run(7, &mut seen), run(7, &mut seen));
    assert_ne!(run(7, &mut seen), run(8, &mut seen));
}

fn rec(slot: u64, round: u64) -> LogRecord {
    LogRecord {
        slot: Slot(slot),
        ballot: Ballot {
            round,
            node: NodeId(1),
        },
        payload: vec![round as u8; (slot % 13) as usize * 7].into(),
    }
}

/// A log of slots 1..=30 in ballot 1, across segments, synced.
fn old_log(fs: &SimFs) -> Log<SimFs> {
    let opts = LogOptions {
        segment_bytes_max: 150,
        ..LogOptions::default()
    };
    let (mut log, _) = Log::open(fs.clone(), opts).expect("open");
    log.set_vote(Vote {
        promised: Ballot {
            round: 9,
            node: NodeId(0),
        },
    })
    .expect("vote");
    for i in 1..=30 {
        log.append(&rec(i, 1)).expect("append");
    }
    log.sync().expect("sync");
    assert!(log.segment_files().len() > 4);
    log
}

/// Arms one fsync of either kind to fail, somewhere in what follows.
fn arm(fs: &SimFs, rng: &mut Rng) {
    match rng.below(3) {
        0 => fs.fail_sync_after(rng.below(3) as u32),
        1 => fs.fail_dir_sync_after(rng.below(3) as u32),
        _ => {}
    }
}

#[test]
fn a_crash_around_truncate_after_recovers_the_old_or_the_new_log() {
    let (mut olds, mut news) = (0, 0);
    for seed in 0..400 {
        let mut rng = Rng::new(seed);
        let fs = SimFs::new();
        let mut log = old_log(&fs);
        let cut = rng.range(0, 30);
        arm(&fs, &mut rng);
        let new_last = cut + rng.below(12);
        let done = log.truncate_after(Slot(cut)).and_then(|()| {
            for i in cut + 1..=new_last {
                log.append(&rec(i, 2))?;
            }
            if rng.below(2) == 0 {
                log.flush()?;
            }
            if rng.below(2) == 0 {
                log.sync()?;
                return Ok(true);
            }
            Ok(false)
        });
        drop(log);
        fs.crash(rng.next_u64());
        let opts = LogOptions::default();
        let (mut log, _) =
            Log::open(fs.clone(), opts).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let got = read_all(&mut log);
        assert!(
            got.len() as u64 >= cut,
            "seed {seed}: records up to {cut} lost"
        );
        for (i, r) in got.iter().enumerate() {
            let slot = i as u64 + 1;
            let round = if slot <= cut {
                1
            } else {
                got[cut as usize].ballot.round
            };
            assert_eq!(*r, rec(slot, round), "seed {seed}: slot {slot} of {got:?}");
        }
        if matches!(done, Ok(true)) {
            assert_eq!(got.len() as u64, new_last, "seed {seed}: synced");
        }
        match got.get(cut as usize).map(|r| r.ballot.round) {
            Some(1) => olds += 1,
            Some(_) => news += 1,
            None => {}
        }
    }
    assert!(olds > 20 && news > 20, "old {olds}, new {news}");
}

/// `install_snapshot`, or (`staged`) the same written aside by a stager
/// and then `install_staged`, as a node does with its own snapshots.
fn install(
    log: &mut Log<SimFs>,
    meta: SnapshotMeta,
    bytes: &[u8],
    staged: bool,
) -> Result<(), crate::durability::DurabilityError> {
    if !staged {
        return log.install_snapshot(meta, bytes);
    }
    let no = std::sync::atomic::AtomicBool::new(false);
    log.stager()?.stage(meta, bytes, &no)?;
    log.install_staged(meta)
}

/// Both ways in: `install_snapshot` and a staged file's `install_staged`
/// (a crash while it is staged leaves a file the next open removes); and
/// the latter with the files it makes old left to a `Remover`, as on a
/// node, of which a crash may have removed any first ones.
#[test]
fn a_crash_inside_install_snapshot_recovers_the_old_or_the_new_state() {
    let (mut olds, mut news) = (0, 0);
    let mut left_to_remove = 0;
    for seed in 0..400 {
        let mut rng = Rng::new(seed);
        let fs = SimFs::new();
        let mut log = old_log(&fs);
        let first = SnapshotMeta {
            slot: Slot(4),
            ballot: rec(4, 1).ballot,
        };
        log.install_snapshot(
            first,
            &snapshot::encode(
                first,
                0,
                &snapshot::Committed::default(),
                &[],
                &Default::default(),
                &[],
            )
            .expect("encode"),
        )
        .expect("install");
        let slot = Slot(rng.range(4, 45));
        let meta = SnapshotMeta {
            slot,
            ballot: Ballot {
                round: 3,
                node: NodeId(2),
            },
        };
        let bytes = snapshot::encode(
            meta,
            0,
            &snapshot::Committed::default(),
            &[],
            &Default::default(),
            &[],
        )
        .expect("encode");
        arm(&fs, &mut rng);
        let deferred = seed % 3 == 2;
        if deferred {
            log.defer_removals();
        }
        let done = install(&mut log, meta, &bytes, seed % 3 != 0);
        if deferred && done.is_ok() {
            let old = log.take_removals();
            left_to_remove += old.len();
            let there = fs.list(64).expect("list");
            for name in &old {
                assert!(there.contains(name), "seed {seed}: {name} removed in place");
            }
            let k = rng.below(old.len() as u64 + 1) as usize;
            // An armed fault may fail the directory's sync: as a crash would.
            let _ = log.remover().and_then(|r| r.remove(&old[..k]));
        }
        drop(log);
        fs.crash(rng.next_u64());
        let (mut log, _) = Log::open(fs.clone(), LogOptions::default())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let names = fs.list(64).expect("list");
        assert!(
            !names.iter().any(|n| n.ends_with(".tmp")),
            "seed {seed}: left over: {names:?}"
        );
        let got = read_all(&mut log);
        let found = log.snapshot_meta().expect("a snapshot");
        let (from, to) = if found == meta {
            news += 1;
            (slot.0 + 1, if slot.0 >= 30 { slot.0 } else { 30 })
        } else {
            assert!(
                done.is_err(),
                "seed {seed}: install returned, then was lost"
            );
            assert_eq!(found, first, "seed {seed}");
            olds += 1;
            (5, 30)
        };
        let want: Vec<LogRecord> = (from..=to).map(|i| rec(i, 1)).collect();
        assert_eq!(got, want, "seed {seed}");
        assert_eq!(log.last_slot(), Slot(to.max(found.slot.0)), "seed {seed}");
        if found == meta {
            assert_eq!(log.read_snapshot().expect("read").map(|s| s.1), Some(bytes));
        }
    }
    assert!(
        left_to_remove > 100,
        "{left_to_remove} files left to a remover"
    );
    assert!(olds > 20 && news > 20, "old {olds}, new {news}");
}
