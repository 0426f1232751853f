//! Tests of the log: append, sync, reopen, torn tails, corruption, rotation,
//! each on the real disk (a temp dir) and on `SimFs`; and the helpers the
//! other durability tests share.

use super::*;
use crate::storage::Row;
use crate::types::{Ballot, NodeId, Slot, TenantId, Value};
use cap_std::fs::Dir;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ohm-dur-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn dir(&self) -> Dir {
        Dir::open_ambient_dir(&self.0, cap_std::ambient_authority()).expect("open temp dir")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A disk the tests run the log on.
pub(super) trait Disk {
    type F: Fs;
    fn fs(&self) -> Self::F;
}

impl Disk for TempDir {
    type F = DirFs;
    fn fs(&self) -> DirFs {
        DirFs::new(self.dir())
    }
}

impl Disk for SimFs {
    type F = SimFs;
    fn fs(&self) -> SimFs {
        self.clone()
    }
}

/// Runs each generic test `fn name<D: Disk>(d: &D)` on both disks.
macro_rules! on_both_disks {
    ($($name:ident),* $(,)?) => {
        mod dir {
            $(#[test]
            fn $name() {
                super::$name(&crate::durability::tests_log::TempDir::new(stringify!($name)));
            })*
        }
        mod sim {
            $(#[test]
            fn $name() {
                super::$name(&crate::durability::SimFs::new());
            })*
        }
    };
}
pub(super) use on_both_disks;

/// Writes `name` whole and durably.
pub(super) fn put<F: Fs>(fs: &F, name: &str, bytes: &[u8]) {
    let mut f = fs.create(name).expect("create");
    f.write_all(bytes).expect("write");
    f.sync_data().expect("fsync");
    fs.sync_dir().expect("fsync dir");
}

pub(super) fn get<F: Fs>(fs: &F, name: &str) -> Vec<u8> {
    fs.read(name).expect("read")
}

pub(super) fn entry(i: u64) -> Entry {
    let row: Row = vec![
        Value::Int(i as i64),
        Value::text(&"p".repeat(i as usize % 40)),
    ]
    .into();
    match i % 3 {
        0 => Entry::Commit {
            tenant: TenantId(1),
            writes: LoggedWrites {
                ops: vec![LoggedOp::Insert {
                    table: "t".into(),
                    row,
                }],
            },
            kept: None,
        },
        1 => Entry::Multi {
            txn: i,
            tenant: TenantId(2),
            body: MultiBody::Writes(LoggedWrites {
                ops: vec![LoggedOp::Delete {
                    table: "u".into(),
                    row,
                }],
            }),
        },
        _ => Entry::Multi {
            txn: i,
            tenant: TenantId(2),
            body: MultiBody::Ddl(format!("CREATE TABLE x{i} (a INT)")),
        },
    }
}

pub(super) fn payload(i: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_entry(&entry(i), &mut out).unwrap();
    out
}

/// The ballot record `i` is accepted in (below `VOTE`).
pub(super) fn ballot(i: u64) -> Ballot {
    Ballot {
        round: 1 + i / 4,
        node: NodeId((i % 3) as u32),
    }
}

/// The promise the tests' logs hold, above every `ballot(i)` they use.
pub(super) const VOTE: Vote = Vote {
    promised: Ballot {
        round: 1 << 20,
        node: NodeId(1),
    },
};

pub(super) fn record(i: u64) -> LogRecord {
    LogRecord {
        slot: Slot(i),
        ballot: ballot(i),
        payload: payload(i).into(),
    }
}

pub(super) fn append_range<F: Fs>(log: &mut Log<F>, slots: std::ops::RangeInclusive<u64>) {
    for i in slots {
        log.append(&record(i)).expect("append");
    }
}

/// Every record after the snapshot.
pub(super) fn read_all<F: Fs>(log: &mut Log<F>) -> Vec<LogRecord> {
    let mut from = log.snapshot_meta().map_or(Slot(0), |m| m.slot).next();
    let mut out = Vec::new();
    while from <= log.last_slot() {
        let got = log.read(from, 1000).expect("read");
        from = got.last().expect("a read returns a record").slot.next();
        out.extend(got);
    }
    out
}

pub(super) fn expect_records<F: Fs>(log: &mut Log<F>, slots: std::ops::RangeInclusive<u64>) {
    let want: Vec<LogRecord> = slots.map(record).collect();
    assert_eq!(read_all(log), want);
    for r in &want {
        assert_eq!(decode_entry(&r.payload).expect("decodes"), entry(r.slot.0));
    }
}

/// Opens the log; a fresh one gets the tests' vote.
pub(super) fn open<D: Disk>(d: &D, opts: LogOptions) -> (Log<D::F>, Opened) {
    let (mut log, opened) = Log::open(d.fs(), opts).expect("open");
    if log.vote() == Vote::default() {
        log.set_vote(VOTE).expect("set vote");
    }
    (log, opened)
}

fn open_err<D: Disk>(d: &D, opts: LogOptions) -> DurabilityError {
    match Log::open(d.fs(), opts) {
        Ok(_) => panic!("opened a log that should be refused"),
        Err(e) => e,
    }
}

fn small() -> LogOptions {
    LogOptions {
        segment_bytes_max: 100,
        ..LogOptions::default()
    }
}

on_both_disks!(
    append_sync_reopen_returns_everything,
    torn_tail_at_every_byte_is_cut_and_reported,
    a_log_closed_cleanly_refuses_a_torn_tail_or_a_lost_segment,
    a_torn_tail_is_cut_only_past_the_mark,
    a_truncation_below_the_mark_takes_the_mark_down,
    check_reports_what_open_would_do_and_changes_nothing,
    flipped_byte_in_a_middle_record_is_corrupt,
    rotation_and_bad_earlier_segment,
    bad_segment_header_is_corrupt,
    huge_length_field_is_corruption_not_allocation,
);

fn append_sync_reopen_returns_everything<D: Disk>(d: &D) {
    let (mut log, opened) = open(d, LogOptions::default());
    assert_eq!(opened.torn_tail, None);
    assert_eq!((log.last_slot(), log.snapshot_meta()), (Slot(0), None));
    append_range(&mut log, 1..=50);
    assert_eq!(log.durable_slot(), Slot(0));
    log.sync().expect("sync");
    assert_eq!(log.durable_slot(), Slot(50));
    assert!(log.bytes_since_snapshot() > 0);
    drop(log);
    let (mut log, opened) = open(d, LogOptions::default());
    expect_records(&mut log, 1..=50);
    assert_eq!(opened.torn_tail, None);
    assert_eq!((log.durable_slot(), log.vote()), (Slot(50), VOTE));
    append_range(&mut log, 51..=60);
    log.flush().expect("flush");
    // A flushed record survives a process crash (the SimFs keeps it until
    // it is told to crash).
    drop(log);
    let (mut log, _) = open(d, LogOptions::default());
    expect_records(&mut log, 1..=60);
}

#[test]
#[should_panic(expected = "appended slot must follow")]
fn append_with_a_gap_is_refused() {
    let (mut log, _) = open(&SimFs::new(), LogOptions::default());
    append_range(&mut log, 1..=2);
    append_range(&mut log, 4..=4);
}

/// Record boundaries (file offsets) of the records of 1..=n in one segment.
pub(super) fn offsets(n: u64) -> Vec<usize> {
    let mut at = vec![segment::SEGMENT_HEADER_BYTES];
    for i in 1..=n {
        at.push(at[at.len() - 1] + frame::RECORD_HEADER_BYTES + payload(i).len());
    }
    at
}

fn torn_tail_at_every_byte_is_cut_and_reported<D: Disk>(d: &D) {
    let (mut log, _) = open(d, LogOptions::default());
    append_range(&mut log, 1..=4);
    log.sync().expect("sync");
    drop(log);
    let fs = d.fs();
    let seg = segment::segment_name(Slot(1));
    let whole = get(&fs, &seg);
    let at = offsets(4);
    assert_eq!(whole.len(), at[4]);
    // Each round tears a log as a crash would, so before the durable mark
    // the open after slot 5 left (`a_torn_tail_is_cut_only_past_the_mark`).
    let mark_at_3 = |fs: &D::F| {
        super::mark::write(
            fs,
            super::mark::Mark {
                slot: Slot(3),
                clean: false,
            },
        )
        .expect("mark")
    };
    for cut in at[3] + 1..at[4] {
        put(&fs, &seg, &whole[..cut]);
        mark_at_3(&fs);
        let (mut log, opened) = open(d, LogOptions::default());
        expect_records(&mut log, 1..=3);
        let torn = opened.torn_tail.expect("torn tail reported");
        assert_eq!(torn.file, seg);
        assert_eq!(torn.offset, at[3] as u64, "cut at {cut}");
        assert_eq!(torn.bytes_dropped, (cut - at[3]) as u64);
        assert_eq!(fs.len(&seg).expect("stat"), at[3] as u64);
        // The log continues cleanly after the cut.
        append_range(&mut log, 4..=5);
        log.sync().expect("sync");
        drop(log);
        let (mut log, opened) = open(d, LogOptions::default());
        expect_records(&mut log, 1..=5);
        assert_eq!(opened.torn_tail, None);
    }
    // A CRC-failing last record (bytes written out of order) is a torn tail
    // too, wherever the bad byte is: in its length, ballot or payload.
    for flip in [at[3], at[3] + 8, at[3] + 16, at[3] + 24, at[4] - 1] {
        let mut bad = whole.clone();
        bad[flip] ^= 0x40;
        put(&fs, &seg, &bad);
        mark_at_3(&fs);
        let (mut log, opened) = open(d, LogOptions::default());
        expect_records(&mut log, 1..=3);
        assert_eq!(
            opened.torn_tail.map(|t| t.offset),
            Some(at[3] as u64),
            "flip at {flip}"
        );
    }
}

/// Before: after a clean stop, a torn or cut tail, or a deleted newest
/// segment, was cut as "never acknowledged" and the log opened short.
fn a_log_closed_cleanly_refuses_a_torn_tail_or_a_lost_segment<D: Disk>(d: &D) {
    let (mut log, _) = open(d, small());
    append_range(&mut log, 1..=12);
    log.close_clean().expect("close");
    let segments = log.segment_files();
    assert!(segments.len() >= 3, "{segments:?}");
    drop(log);
    let fs = d.fs();
    let newest = segments.last().expect("a segment").clone();
    let whole = get(&fs, &newest);
    // A flipped byte in the last record, or its last bytes cut.
    let mut flipped = whole.clone();
    *flipped.last_mut().expect("bytes") ^= 0x40;
    for damaged in [flipped, whole[..whole.len() - 3].to_vec()] {
        put(&fs, &newest, &damaged);
        let e = open_err(d, small()).to_string();
        assert!(
            e.contains(&newest) && e.contains("closed cleanly at slot 12"),
            "{e}"
        );
    }
    // The newest segment gone: the log ends early, at a whole record.
    fs.remove(&newest).expect("remove");
    let e = open_err(d, small());
    assert!(
        matches!(
            e,
            DurabilityError::LogShort {
                mark: Slot(12),
                clean: true,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("stopped cleanly"), "{e}");
    // Put back, it opens whole.
    put(&fs, &newest, &whole);
    let (mut log, opened) = open(d, small());
    assert_eq!(opened.torn_tail, None);
    expect_records(&mut log, 1..=12);
}

/// After a crash, what the last open found is still there or the open is
/// refused; only what was appended after it may be cut as torn.
fn a_torn_tail_is_cut_only_past_the_mark<D: Disk>(d: &D) {
    let (mut log, _) = open(d, LogOptions::default());
    append_range(&mut log, 1..=4);
    log.sync().expect("sync");
    drop(log);
    // The next open marks slot 4; then 5 and 6 are appended, and the
    // process dies.
    let (mut log, _) = open(d, LogOptions::default());
    append_range(&mut log, 5..=6);
    log.sync().expect("sync");
    drop(log);
    let fs = d.fs();
    let seg = segment::segment_name(Slot(1));
    let whole = get(&fs, &seg);
    let at = offsets(6);
    // Slot 6 torn: cut.
    put(&fs, &seg, &whole[..at[6] - 1]);
    let (mut log, opened) = open(d, LogOptions::default());
    assert_eq!(opened.torn_tail.map(|t| t.offset), Some(at[5] as u64));
    expect_records(&mut log, 1..=5);
    drop(log);
    // Slot 4 torn: it was found durable, so this is damage.
    put(&fs, &seg, &whole[..at[4] - 1]);
    let e = open_err(d, LogOptions::default());
    assert!(
        matches!(
            e,
            DurabilityError::LogShort {
                end: Slot(3),
                mark: Slot(5),
                clean: false
            }
        ),
        "{e}"
    );
}

fn check_reports_what_open_would_do_and_changes_nothing<D: Disk>(d: &D) {
    let (mut log, _) = open(d, LogOptions::default());
    append_range(&mut log, 1..=4);
    log.sync().expect("sync");
    drop(log);
    let fs = d.fs();
    let seg = segment::segment_name(Slot(1));
    let whole = get(&fs, &seg);
    let at = offsets(4);
    put(&fs, &seg, &whole[..at[4] - 2]);
    put(&fs, "log-00000000000000000009.seg.tmp", b"left over");
    let c = super::check_log(&fs).expect("check");
    assert_eq!((c.last, c.segments), (Slot(3), 1));
    assert_eq!(c.mark, Some((Slot(0), false)));
    assert_eq!(c.torn_tail.map(|t| t.offset), Some(at[3] as u64));
    assert_eq!(
        c.leftovers,
        vec!["log-00000000000000000009.seg.tmp".to_string()]
    );
    assert_eq!(
        get(&fs, &seg),
        whole[..at[4] - 2].to_vec(),
        "check changed the log"
    );
    // What an open would change is still there: the leftover, and the mark
    // an open would move to slot 3.
    assert_eq!(
        get(&fs, "log-00000000000000000009.seg.tmp"),
        b"left over".to_vec()
    );
    let mark = super::mark::read(&fs).expect("the mark");
    assert_eq!((mark.slot, mark.clean), (Slot(0), false));
    // Damage before the end is what open refuses, and so does check.
    let mut bad = whole.clone();
    bad[at[1] + 20] ^= 0x40;
    put(&fs, &seg, &bad);
    let e = super::check_log(&fs).expect_err("a middle record is damaged");
    assert!(e.to_string().contains(&seg), "{e}");
}

/// Consensus may drop records past the chosen ones: the mark follows the
/// log down, so the next open does not take that for damage.
fn a_truncation_below_the_mark_takes_the_mark_down<D: Disk>(d: &D) {
    let (mut log, _) = open(d, LogOptions::default());
    append_range(&mut log, 1..=5);
    log.sync().expect("sync");
    drop(log);
    let (mut log, _) = open(d, LogOptions::default());
    log.truncate_after(Slot(2)).expect("truncate");
    log.sync().expect("sync");
    drop(log);
    let (mut log, _) = open(d, LogOptions::default());
    expect_records(&mut log, 1..=2);
}

fn flipped_byte_in_a_middle_record_is_corrupt<D: Disk>(d: &D) {
    let (mut log, _) = open(d, LogOptions::default());
    append_range(&mut log, 1..=5);
    log.sync().expect("sync");
    drop(log);
    let fs = d.fs();
    let seg = segment::segment_name(Slot(1));
    let mut bytes = get(&fs, &seg);
    let at = offsets(5);
    bytes[at[2] + 20] ^= 0x01;
    put(&fs, &seg, &bytes);
    match open_err(d, LogOptions::default()) {
        DurabilityError::Corrupt { file, offset, what } => {
            assert_eq!(file, seg);
            assert_eq!(offset, at[2] as u64, "{what}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    // The file was not cut.
    assert_eq!(get(&fs, &seg).len(), at[5]);
}

fn rotation_and_bad_earlier_segment<D: Disk>(d: &D) {
    let (mut log, _) = open(d, small());
    append_range(&mut log, 1..=30);
    log.sync().expect("sync");
    let files = log.segment_files();
    assert!(files.len() >= 5, "{files:?}");
    drop(log);
    let (mut log, _) = open(d, small());
    expect_records(&mut log, 1..=30);
    append_range(&mut log, 31..=40);
    log.sync().expect("sync");
    drop(log);
    let (mut log, _) = open(d, small());
    expect_records(&mut log, 1..=40);
    let files = log.segment_files();
    drop(log);
    let fs = d.fs();
    // A cut at the end of an earlier segment is corruption, not a torn tail.
    let bytes = get(&fs, &files[1]);
    put(&fs, &files[1], &bytes[..bytes.len() - 1]);
    match open_err(d, small()) {
        DurabilityError::Corrupt { file, .. } => assert_eq!(file, files[1]),
        other => panic!("expected Corrupt, got {other}"),
    }
    put(&fs, &files[1], &bytes);
    // A missing middle segment is a gap.
    fs.remove(&files[2]).expect("remove");
    match open_err(d, small()) {
        DurabilityError::Corrupt {
            file, offset: 0, ..
        } => assert_eq!(file, files[3]),
        other => panic!("expected Corrupt, got {other}"),
    }
}

fn bad_segment_header_is_corrupt<D: Disk>(d: &D) {
    let (mut log, _) = open(d, LogOptions::default());
    append_range(&mut log, 1..=2);
    log.sync().expect("sync");
    drop(log);
    let fs = d.fs();
    let seg = segment::segment_name(Slot(1));
    let good = get(&fs, &seg);
    // A bad magic, an unknown version, another first slot.
    for (at, flip) in [(0, b'X'), (8, 1), (12, 1)] {
        let mut bytes = good.clone();
        bytes[at] ^= flip;
        put(&fs, &seg, &bytes);
        let err = open_err(d, LogOptions::default());
        assert!(err.to_string().contains("offset 0"), "{err}");
    }
}

fn huge_length_field_is_corruption_not_allocation<D: Disk>(d: &D) {
    let (mut log, _) = open(d, LogOptions::default());
    append_range(&mut log, 1..=3);
    log.sync().expect("sync");
    drop(log);
    let fs = d.fs();
    let seg = segment::segment_name(Slot(1));
    let mut bytes = get(&fs, &seg);
    let at = offsets(3);
    bytes[at[1]..at[1] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    put(&fs, &seg, &bytes);
    match open_err(d, LogOptions::default()) {
        DurabilityError::Corrupt { offset, what, .. } => {
            assert_eq!(offset, at[1] as u64);
            assert!(what.contains("length"), "{what}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
}

/// Appends record `i` and writes it out.
fn append_flushed(log: &mut Log<SimFs>, i: u64) -> Result<(), DurabilityError> {
    log.append(&record(i))?;
    log.flush()
}

/// A disk that fills up: the log notices while it still has the space it
/// set aside (within a quarter of it), and takes records into it; with
/// room again it says so when asked. Past what was set aside, a write
/// fails as the disk's would.
#[test]
fn a_full_disk_is_noticed_while_the_space_set_aside_lasts() {
    let d = SimFs::new();
    let reserve = 8 << 10;
    let opts = LogOptions {
        segment_bytes_max: 1 << 20,
        reserve_bytes: reserve,
    };
    let (mut log, _) = open(&d, opts.clone());
    append_range(&mut log, 1..=40);
    log.sync().expect("sync");
    assert_eq!(log.space_short(), None);

    d.set_full(true);
    let mut i = 40;
    let before = log.bytes_since_snapshot();
    while log.space_short().is_none() {
        i += 1;
        append_flushed(&mut log, i).expect("written into the space set aside");
        let written = log.bytes_since_snapshot() - before;
        assert!(
            written <= reserve / 4 + 200,
            "not noticed after {written} bytes"
        );
    }
    let why = log.space_short().unwrap().to_string();
    assert!(why.starts_with("setting aside space in log-"), "{why}");
    assert!(why.contains("No space left"), "{why}");
    // What was set aside takes more: nearly all of the reserve.
    let noticed = log.bytes_since_snapshot();
    while log.bytes_since_snapshot() - noticed < reserve - 200 {
        i += 1;
        append_flushed(&mut log, i).expect("written into the space set aside");
    }
    log.sync().expect("sync");

    d.set_full(false);
    Storage::retry_reserve(&mut log).expect("retry");
    assert_eq!(log.space_short(), None);
    append_range(&mut log, i + 1..=i + 40);
    log.sync().expect("sync");
    drop(log);
    d.crash(7);
    let (mut log, opened) = open(&d, opts.clone());
    assert_eq!(opened.torn_tail, None);
    expect_records(&mut log, 1..=i + 40);

    d.set_full(true);
    let failed = (i + 41..i + 10_000).find_map(|j| append_flushed(&mut log, j).err());
    let e = failed.expect("a full disk refuses writes past the space set aside");
    assert!(e.is_no_space(), "{e}");
}

/// A segment due to be closed on a full disk goes on past its size, in
/// the space set aside for it, rather than a new one begun with none; the
/// log says the disk is full, tries again only when asked (not at every
/// record), and begins the next segment once there is room.
#[test]
fn a_segment_is_not_begun_on_a_full_disk_until_there_is_room() {
    let d = SimFs::new();
    let opts = LogOptions {
        segment_bytes_max: 1 << 10,
        reserve_bytes: 8 << 10,
    };
    let (mut log, _) = open(&d, opts.clone());
    append_range(&mut log, 1..=20);
    log.sync().expect("sync");
    d.set_full(true);
    let mut i = 20;
    while log.space_short().is_none() {
        i += 1;
        append_flushed(&mut log, i).expect("written into the space set aside");
        assert!(i < 200, "never noticed");
    }
    let why = log.space_short().unwrap().to_string();
    assert!(why.contains(".seg.tmp"), "the segment not begun: {why}");
    let segments = log.segment_files();
    let syncs = d.stats().syncs;
    for _ in 0..20 {
        i += 1;
        append_flushed(&mut log, i).expect("written into the space set aside");
    }
    assert_eq!(log.segment_files(), segments, "none begun while full");
    assert_eq!(d.stats().syncs, syncs, "not tried again at every record");
    assert!(!d.list(64).unwrap().iter().any(|n| n.ends_with(".tmp")));

    Storage::retry_reserve(&mut log).expect("retry on a full disk");
    assert!(log.space_short().is_some());
    d.set_full(false);
    Storage::retry_reserve(&mut log).expect("retry");
    assert_eq!(log.space_short(), None);
    assert_eq!(log.segment_files().len(), segments.len() + 1, "begun");
    append_range(&mut log, i + 1..=i + 20);
    log.sync().expect("sync");
    drop(log);
    d.crash(3);
    let (mut log, _) = open(&d, opts);
    expect_records(&mut log, 1..=i + 20);
}
