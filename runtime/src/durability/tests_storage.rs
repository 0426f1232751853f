//! Tests of `Storage` on `Log`: version-1 segments, ballots, the vote,
//! truncation, reads from a slot, installing snapshots, fsync failures.

use super::tests_log::{
    append_range, ballot, expect_records, get, offsets, on_both_disks, open, payload, put,
    read_all, record, Disk, VOTE,
};
use super::*;
use crate::types::{Ballot, NodeId, Slot};

fn small() -> LogOptions {
    LogOptions {
        segment_bytes_max: 150,
        ..LogOptions::default()
    }
}

fn meta(slot: u64) -> SnapshotMeta {
    SnapshotMeta {
        slot: Slot(slot),
        ballot: ballot(slot),
    }
}

fn snap(slot: u64) -> Vec<u8> {
    snapshot::encode(
        meta(slot),
        0,
        &snapshot::Committed::default(),
        &[],
        &Default::default(),
        &[],
    )
    .expect("encode")
}

/// A version-1 segment holding records `slots` (as the old code wrote them).
fn v1_segment(slots: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    let mut out = segment::segment_header(Slot(*slots.start()), 1).to_vec();
    for i in slots {
        let body = [&i.to_le_bytes()[..], &payload(i)].concat();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

fn v1_record(i: u64) -> LogRecord {
    LogRecord {
        ballot: Ballot::default(),
        ..record(i)
    }
}

on_both_disks!(
    version_1_segments_are_read_and_appends_go_to_version_2,
    vote_is_set_and_read_back,
    truncate_inside_across_and_at_the_snapshot,
    reads_cross_segments_and_the_buffer_within_the_byte_bound,
    install_snapshot_on_empty_behind_and_ahead,
);

fn version_1_segments_are_read_and_appends_go_to_version_2<D: Disk>(d: &D) {
    let fs = d.fs();
    put(&fs, "log-00000000000000000001.seg", &v1_segment(1..=5));
    // No vote file: a version-1 log has only default ballots, so that is fine.
    let (mut log, opened) = Log::open(d.fs(), LogOptions::default()).expect("open");
    assert_eq!((opened.torn_tail, log.vote()), (None, Vote::default()));
    assert_eq!(
        read_all(&mut log),
        (1..=5).map(v1_record).collect::<Vec<_>>()
    );
    log.set_vote(VOTE).expect("vote");
    append_range(&mut log, 6..=8);
    log.sync().expect("sync");
    let files = log.segment_files();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(get(&fs, &files[1])[8..12], 2u32.to_le_bytes());
    // Truncating into the version-1 segment and appending again.
    log.truncate_after(Slot(4)).expect("truncate");
    append_range(&mut log, 5..=6);
    log.sync().expect("sync");
    drop(log);
    let (mut log, _) = open(d, LogOptions::default());
    let mut want: Vec<_> = (1..=4).map(v1_record).collect();
    want.extend((5..=6).map(record));
    assert_eq!(read_all(&mut log), want);
    assert_eq!(
        log.segment_files(),
        [
            "log-00000000000000000001.seg",
            "log-00000000000000000005.seg"
        ]
    );
    assert_eq!(
        get(&fs, &log.segment_files()[0]).len(),
        offsets(4)[4] - 4 * 12
    );
    // A version-1 segment with no record is replaced in place by a version-2 one.
    drop(log);
    let fresh = d.fs();
    for name in fresh.list(100).expect("ls") {
        fresh.remove(&name).expect("remove");
    }
    let header_only = segment::segment_header(Slot(1), 1);
    put(&fresh, "log-00000000000000000001.seg", &header_only);
    let (mut log, _) = open(d, LogOptions::default());
    append_range(&mut log, 1..=2);
    log.sync().expect("sync");
    assert_eq!(log.segment_files(), ["log-00000000000000000001.seg"]);
    drop(log);
    let (mut log, _) = open(d, LogOptions::default());
    expect_records(&mut log, 1..=2);
}

#[test]
fn ballots_and_empty_payloads_round_trip() {
    let sim = SimFs::new();
    let (mut log, _) = open(&sim, LogOptions::default());
    let top = Ballot {
        round: u64::MAX,
        node: NodeId(u32::MAX),
    };
    log.set_vote(Vote { promised: top }).expect("vote");
    let records: Vec<LogRecord> = [
        (Ballot::default(), &b""[..]),
        (top, b"x"),
        (ballot(3), b""),
        (
            Ballot {
                round: 1,
                node: NodeId(0),
            },
            b"\0\0",
        ),
    ]
    .iter()
    .enumerate()
    .map(|(i, (b, p))| LogRecord {
        slot: Slot(i as u64 + 1),
        ballot: *b,
        payload: (*p).into(),
    })
    .collect();
    for r in &records {
        log.append(r).expect("append");
    }
    assert_eq!(read_all(&mut log), records, "from the buffer");
    log.sync().expect("sync");
    drop(log);
    let (mut log, _) = open(&sim, LogOptions::default());
    assert_eq!(read_all(&mut log), records, "after reopen");
    assert_eq!(log.vote().promised, top);
}

#[test]
fn an_oversized_payload_is_refused_and_the_log_unchanged() {
    let sim = SimFs::new();
    let (mut log, _) = open(&sim, LogOptions::default());
    append_range(&mut log, 1..=1);
    let big = LogRecord {
        slot: Slot(2),
        ballot: ballot(2),
        payload: vec![0; PAYLOAD_BYTES_MAX + 1].into(),
    };
    assert!(matches!(
        log.append(&big),
        Err(DurabilityError::TooLarge { slot: Slot(2), .. })
    ));
    append_range(&mut log, 2..=2);
    log.sync().expect("sync");
    expect_records(&mut log, 1..=2);
}

fn vote_is_set_and_read_back<D: Disk>(d: &D) {
    let (mut log, _) = Log::open(d.fs(), LogOptions::default()).expect("open");
    assert_eq!(log.vote(), Vote::default());
    let v = |round| Vote {
        promised: Ballot {
            round,
            node: NodeId(2),
        },
    };
    log.set_vote(v(5)).expect("vote");
    log.set_vote(v(5)).expect("same vote again");
    log.set_vote(v(9)).expect("vote");
    drop(log);
    let (log, _) = Log::open(d.fs(), LogOptions::default()).expect("open");
    assert_eq!(log.vote(), v(9));
    drop(log);
    let fs = d.fs();
    let good = get(&fs, "vote");
    // A corrupt vote file is refused, named.
    let mut bad = good.clone();
    bad[14] ^= 1;
    put(&fs, "vote", &bad);
    let err = Log::open(d.fs(), LogOptions::default())
        .err()
        .expect("refused");
    assert!(
        matches!(&err, DurabilityError::Corrupt { file, .. } if file == "vote"),
        "{err}"
    );
    put(&fs, "vote", &good[..20]);
    assert!(Log::open(d.fs(), LogOptions::default()).is_err());
    // A missing vote file while records hold ballots is refused...
    put(&fs, "vote", &good);
    let (mut log, _) = Log::open(d.fs(), LogOptions::default()).expect("open");
    append_range(&mut log, 1..=3);
    log.sync().expect("sync");
    drop(log);
    fs.remove("vote").expect("remove");
    match Log::open(d.fs(), LogOptions::default()) {
        Err(DurabilityError::VoteMissing { file, ballot: b }) => {
            // The highest of ballot(1..=3).
            assert_eq!(
                (file.as_str(), b),
                ("log-00000000000000000001.seg", ballot(2))
            );
        }
        other => panic!("expected VoteMissing, got {:?}", other.map(|_| ())),
    }
    // ...and nothing was changed: with the vote back, it opens.
    put(&fs, "vote", &good);
    let (mut log, _) = Log::open(d.fs(), LogOptions::default()).expect("open");
    expect_records(&mut log, 1..=3);
}

#[test]
#[should_panic(expected = "a promise never goes back")]
fn a_vote_going_back_is_a_broken_invariant() {
    let (mut log, _) = open(&SimFs::new(), LogOptions::default());
    log.set_vote(Vote::default()).expect("vote");
}

#[test]
fn a_vote_survives_every_crash_after_set_vote_returned() {
    for seed in 0..64 {
        let sim = SimFs::new();
        let (mut log, _) = Log::open(sim.clone(), LogOptions::default()).expect("open");
        log.set_vote(VOTE).expect("vote");
        let next = Vote {
            promised: Ballot {
                round: VOTE.promised.round + 1,
                node: NodeId(0),
            },
        };
        log.set_vote(next).expect("vote");
        append_range(&mut log, 1..=3);
        log.flush().expect("flush");
        drop(log);
        sim.crash(seed);
        let (log, _) = Log::open(sim.clone(), LogOptions::default()).expect("reopen");
        assert_eq!(log.vote(), next, "seed {seed}");
    }
    // A crash inside set_vote keeps the old vote or the new one.
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let sim = SimFs::new();
        let (mut log, _) = Log::open(sim.clone(), LogOptions::default()).expect("open");
        log.set_vote(VOTE).expect("vote");
        sim.fail_next_dir_sync();
        let next = Vote {
            promised: Ballot {
                round: 7 << 20,
                node: NodeId(0),
            },
        };
        assert!(log.set_vote(next).is_err());
        drop(log);
        sim.crash(seed);
        let (log, _) = Log::open(sim.clone(), LogOptions::default()).expect("reopen");
        assert!(log.vote() == VOTE || log.vote() == next, "seed {seed}");
        outcomes.insert(log.vote().promised.round);
    }
    assert_eq!(outcomes.len(), 2, "both outcomes happen");
}

fn truncate_inside_across_and_at_the_snapshot<D: Disk>(d: &D) {
    let (mut log, _) = open(d, small());
    append_range(&mut log, 1..=30);
    log.sync().expect("sync");
    let before = log.bytes_since_snapshot();
    // Inside the last segment, in the buffer only.
    append_range(&mut log, 31..=33);
    log.truncate_after(Slot(31)).expect("truncate");
    assert_eq!(log.last_slot(), Slot(31));
    // Inside an earlier segment: later segments go.
    let segs = log.segment_files().len();
    log.truncate_after(Slot(12)).expect("truncate");
    assert!(log.segment_files().len() < segs);
    assert_eq!((log.last_slot(), log.durable_slot()), (Slot(12), Slot(12)));
    assert!(log.bytes_since_snapshot() < before);
    // Replacement records with other ballots and payloads.
    let other = |i: u64| LogRecord {
        slot: Slot(i),
        ballot: Ballot {
            round: 999,
            node: NodeId(7),
        },
        payload: payload(i + 1000).into(),
    };
    for i in 13..=20 {
        log.append(&other(i)).expect("append");
    }
    log.sync().expect("sync");
    drop(log);
    let (mut log, _) = open(d, small());
    let mut want: Vec<_> = (1..=12).map(record).collect();
    want.extend((13..=20).map(other));
    assert_eq!(read_all(&mut log), want);
    // At the snapshot's slot: every record after it goes.
    log.install_snapshot(meta(15), &snap(15)).expect("install");
    log.truncate_after(Slot(15)).expect("truncate");
    assert_eq!(log.last_slot(), Slot(15));
    assert!(read_all(&mut log).is_empty());
    append_range(&mut log, 16..=18);
    log.sync().expect("sync");
    drop(log);
    let (mut log, _) = open(d, small());
    expect_records(&mut log, 16..=18);
    // A truncation of nothing is nothing.
    log.truncate_after(Slot(18)).expect("truncate");
    assert_eq!(log.last_slot(), Slot(18));
}

#[test]
#[should_panic(expected = "outside snapshot slot")]
fn truncating_into_the_snapshot_is_a_broken_invariant() {
    let sim = SimFs::new();
    let (mut log, _) = open(&sim, LogOptions::default());
    append_range(&mut log, 1..=4);
    log.install_snapshot(meta(3), &snap(3)).expect("install");
    let _ = log.truncate_after(Slot(2));
}

/// Slots of `got`.
fn slots(got: &[LogRecord]) -> Vec<u64> {
    got.iter().map(|r| r.slot.0).collect()
}

fn reads_cross_segments_and_the_buffer_within_the_byte_bound<D: Disk>(d: &D) {
    let (mut log, _) = open(d, small());
    append_range(&mut log, 1..=20);
    log.sync().expect("sync");
    append_range(&mut log, 21..=24);
    log.flush().expect("flush");
    append_range(&mut log, 25..=27);
    // From every slot, with room for all: across segments, the file and the buffer.
    for from in 1..=27 {
        let got = log.read(Slot(from), usize::MAX).expect("read");
        assert_eq!(
            got,
            (from..=27).map(record).collect::<Vec<_>>(),
            "from {from}"
        );
    }
    // The byte bound: as many whole payloads as fit, at least one.
    let sizes: Vec<usize> = (1..=27).map(|i| payload(i).len()).collect();
    for bound in [0, 1, sizes[4], sizes[4] + sizes[5], 500] {
        let got = log.read(Slot(5), bound).expect("read");
        let total: usize = got.iter().map(|r| r.payload.len()).sum();
        assert!(!got.is_empty());
        assert!(got.len() == 1 || total <= bound, "bound {bound}: {total}");
        let next = sizes.get(4 + got.len()).copied().unwrap_or(0);
        assert!(got.last().unwrap().slot == Slot(27) || total + next > bound);
        assert_eq!(slots(&got), (5..5 + got.len() as u64).collect::<Vec<_>>());
    }
    assert!(log.read(Slot(28), 100).expect("read").is_empty());
    // Before the snapshot: compacted.
    log.sync().expect("sync");
    log.install_snapshot(meta(10), &snap(10)).expect("install");
    assert!(matches!(
        log.read(Slot(10), 100),
        Err(DurabilityError::Compacted {
            from: Slot(10),
            snapshot: Slot(10)
        })
    ));
    assert_eq!(
        slots(&log.read(Slot(11), usize::MAX).expect("read")),
        (11..=27).collect::<Vec<_>>()
    );
}

#[test]
fn a_read_does_not_reread_a_big_segment_per_record() {
    let sim = SimFs::new();
    let (mut log, _) = open(&sim, LogOptions::default());
    let n = 40_000;
    append_range(&mut log, 1..=n);
    log.sync().expect("sync");
    let seg_bytes = sim.len(&log.segment_files()[0]).expect("stat");
    assert!(seg_bytes > 2 << 20, "one big segment: {seg_bytes}");
    let before = sim.stats().bytes_read;
    for from in [n - 5, n / 2, 7] {
        let got = log.read(Slot(from), 1).expect("read");
        assert_eq!(slots(&got), [from]);
    }
    let read = sim.stats().bytes_read - before;
    assert!(read < 1 << 20, "three one-record reads read {read} bytes");
    // Reading it all, a window at a time, reads it about once.
    let before = sim.stats().bytes_read;
    assert_eq!(read_all(&mut log).len() as u64, n);
    let read = sim.stats().bytes_read - before;
    assert!(read < 2 * seg_bytes, "{read} bytes read for {seg_bytes}");
}

fn install_snapshot_on_empty_behind_and_ahead<D: Disk>(d: &D) {
    // On an empty log.
    let (mut log, _) = open(d, small());
    log.install_snapshot(meta(5), &snap(5)).expect("install");
    assert_eq!((log.last_slot(), log.durable_slot()), (Slot(5), Slot(5)));
    append_range(&mut log, 6..=7);
    log.sync().expect("sync");
    drop(log);
    let (mut log, _) = open(d, small());
    assert_eq!(log.snapshot_meta(), Some(meta(5)));
    expect_records(&mut log, 6..=7);
    // On a log that ends before it (a follower catching up), just after a
    // truncation: emptied, continuing after it.
    append_range(&mut log, 8..=20);
    log.sync().expect("sync");
    log.truncate_after(Slot(9)).expect("truncate");
    log.install_snapshot(meta(40), &snap(40)).expect("install");
    assert_eq!(
        (
            log.last_slot(),
            log.durable_slot(),
            log.bytes_since_snapshot()
        ),
        (Slot(40), Slot(40), 0)
    );
    assert!(read_all(&mut log).is_empty());
    assert_eq!(log.segment_files(), ["log-00000000000000000041.seg"]);
    append_range(&mut log, 41..=45);
    log.sync().expect("sync");
    // With records beyond it: kept, covered segments removed.
    let segs = log.segment_files().len();
    log.install_snapshot(meta(43), &snap(43)).expect("install");
    assert!(log.segment_files().len() <= segs);
    assert_eq!(log.last_slot(), Slot(45));
    expect_records(&mut log, 44..=45);
    drop(log);
    let (mut log, _) = open(d, small());
    assert_eq!(log.snapshot_meta(), Some(meta(43)));
    expect_records(&mut log, 44..=45);
    let snaps: Vec<String> = d
        .fs()
        .list(100)
        .expect("ls")
        .into_iter()
        .filter(|n| n.starts_with("snap-"))
        .collect();
    assert_eq!(snaps, ["snap-00000000000000000043.snap"]);
    // Bytes that are not the snapshot said, or not a snapshot, are refused.
    assert!(matches!(
        log.install_snapshot(meta(44), &snap(45)),
        Err(DurabilityError::SnapshotMismatch { .. })
    ));
    let mut bad = snap(44);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        log.install_snapshot(meta(44), &bad),
        Err(DurabilityError::Corrupt { .. })
    ));
    assert_eq!(log.snapshot_meta(), Some(meta(43)));
}

#[test]
fn an_fsync_failure_is_an_io_error_naming_the_file() {
    let sim = SimFs::new();
    let (mut log, _) = open(&sim, LogOptions::default());
    append_range(&mut log, 1..=3);
    sim.fail_next_sync();
    match log.sync() {
        Err(DurabilityError::Io { file, op, .. }) => {
            assert_eq!(
                (file.as_str(), op),
                ("log-00000000000000000001.seg", "fsync")
            );
        }
        other => panic!("expected Io, got {other:?}"),
    }
    sim.fail_next_sync();
    match log.set_vote(Vote {
        promised: Ballot {
            round: u64::MAX,
            node: NodeId(0),
        },
    }) {
        Err(DurabilityError::Io { file, op, .. }) => {
            assert_eq!((file.as_str(), op), ("vote.tmp", "fsync"))
        }
        other => panic!("expected Io, got {other:?}"),
    }
    sim.fail_next_dir_sync();
    let err = log
        .install_snapshot(meta(2), &snap(2))
        .expect_err("dir fsync fails");
    assert!(err.to_string().contains("fsync dir"), "{err}");
}
