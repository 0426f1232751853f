//! Tests of the log: append, sync, reopen, torn tails, corruption, rotation.

use super::*;
use crate::storage::Row;
use crate::types::{TenantId, Value};
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

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

pub(super) fn append_range(log: &mut Log, lsns: std::ops::RangeInclusive<u64>) {
    let mut buf = Vec::new();
    for i in lsns {
        buf.clear();
        encode_entry(Lsn(i), &entry(i), &mut buf).unwrap();
        log.append(&buf).expect("append");
    }
}

fn expect_entries(got: &[(Lsn, Entry)], lsns: std::ops::RangeInclusive<u64>) {
    let want: Vec<(Lsn, Entry)> = lsns.map(|i| (Lsn(i), entry(i))).collect();
    assert_eq!(got, &want[..]);
}

fn open(t: &TempDir, opts: LogOptions) -> (Log, Recovered) {
    Log::open(t.dir(), opts).expect("open")
}

#[test]
fn append_sync_reopen_returns_everything() {
    let t = TempDir::new("reopen");
    let (mut log, rec) = open(&t, LogOptions::default());
    assert!(rec.entries.is_empty() && rec.snapshot.is_none() && rec.torn_tail.is_none());
    append_range(&mut log, 1..=50);
    assert_eq!(log.durable_lsn(), Lsn(0));
    log.sync().expect("sync");
    assert_eq!(log.durable_lsn(), Lsn(50));
    assert!(log.bytes_since_snapshot() > 0);
    drop(log);
    let (mut log, rec) = open(&t, LogOptions::default());
    expect_entries(&rec.entries, 1..=50);
    assert!(rec.torn_tail.is_none());
    assert_eq!(log.durable_lsn(), Lsn(50));
    append_range(&mut log, 51..=60);
    log.flush().expect("flush");
    drop(log);
    let (_, rec) = open(&t, LogOptions::default());
    expect_entries(&rec.entries, 1..=60);
}

#[test]
#[should_panic(expected = "appended lsn must follow")]
fn append_with_a_gap_is_refused() {
    let t = TempDir::new("gap");
    let (mut log, _) = open(&t, LogOptions::default());
    append_range(&mut log, 1..=2);
    append_range(&mut log, 4..=4);
}

/// Record boundaries (file offsets) of the records of 1..=n in one segment.
fn offsets(n: u64) -> Vec<usize> {
    let mut at = vec![log::SEGMENT_HEADER_BYTES];
    let mut buf = Vec::new();
    for i in 1..=n {
        buf.clear();
        encode_entry(Lsn(i), &entry(i), &mut buf).unwrap();
        at.push(at[at.len() - 1] + buf.len());
    }
    at
}

#[test]
fn torn_tail_at_every_byte_is_cut_and_reported() {
    let t = TempDir::new("torn");
    let (mut log, _) = open(&t, LogOptions::default());
    append_range(&mut log, 1..=4);
    log.sync().expect("sync");
    drop(log);
    let seg = t.path(&log::segment_name(Lsn(1)));
    let whole = std::fs::read(&seg).expect("read");
    let at = offsets(4);
    assert_eq!(whole.len(), at[4]);
    for cut in at[3] + 1..at[4] {
        std::fs::write(&seg, &whole[..cut]).expect("write");
        let (mut log, rec) = open(&t, LogOptions::default());
        expect_entries(&rec.entries, 1..=3);
        let torn = rec.torn_tail.expect("torn tail reported");
        assert_eq!(torn.file, log::segment_name(Lsn(1)));
        assert_eq!(torn.offset, at[3] as u64, "cut at {cut}");
        assert_eq!(torn.bytes_dropped, (cut - at[3]) as u64);
        assert_eq!(std::fs::metadata(&seg).expect("stat").len(), at[3] as u64);
        // The log continues cleanly after the cut.
        append_range(&mut log, 4..=5);
        log.sync().expect("sync");
        drop(log);
        let (_, rec) = open(&t, LogOptions::default());
        expect_entries(&rec.entries, 1..=5);
        assert!(rec.torn_tail.is_none());
    }
    // A CRC-failing last record (bytes written out of order) is a torn tail too.
    let mut bad = whole[..at[4]].to_vec();
    bad[at[4] - 1] ^= 0xff;
    std::fs::write(&seg, &bad).expect("write");
    let (_, rec) = open(&t, LogOptions::default());
    expect_entries(&rec.entries, 1..=3);
    assert_eq!(rec.torn_tail.map(|t| t.offset), Some(at[3] as u64));
}

#[test]
fn flipped_byte_in_a_middle_record_is_corrupt() {
    let t = TempDir::new("flip");
    let (mut log, _) = open(&t, LogOptions::default());
    append_range(&mut log, 1..=5);
    log.sync().expect("sync");
    drop(log);
    let seg = t.path(&log::segment_name(Lsn(1)));
    let mut bytes = std::fs::read(&seg).expect("read");
    let at = offsets(5);
    bytes[at[2] + 20] ^= 0x01;
    std::fs::write(&seg, &bytes).expect("write");
    match Log::open(t.dir(), LogOptions::default()) {
        Err(DurabilityError::Corrupt { file, offset, what }) => {
            assert_eq!(file, log::segment_name(Lsn(1)));
            assert_eq!(offset, at[2] as u64, "{what}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    // The file was not cut.
    assert_eq!(std::fs::read(&seg).expect("read").len(), at[5]);
}

#[test]
fn rotation_and_bad_earlier_segment() {
    let t = TempDir::new("rotate");
    let opts = LogOptions {
        segment_bytes_max: 100,
    };
    let (mut log, _) = open(&t, opts.clone());
    append_range(&mut log, 1..=30);
    log.sync().expect("sync");
    let files = log.segment_files();
    assert!(files.len() >= 5, "{files:?}");
    drop(log);
    let (mut log, rec) = open(&t, opts.clone());
    expect_entries(&rec.entries, 1..=30);
    append_range(&mut log, 31..=40);
    log.sync().expect("sync");
    drop(log);
    let (log, rec) = open(&t, opts.clone());
    expect_entries(&rec.entries, 1..=40);
    let files = log.segment_files();
    drop(log);
    // A cut at the end of an earlier segment is corruption, not a torn tail.
    let second = t.path(&files[1]);
    let bytes = std::fs::read(&second).expect("read");
    std::fs::write(&second, &bytes[..bytes.len() - 1]).expect("write");
    match Log::open(t.dir(), opts.clone()) {
        Err(DurabilityError::Corrupt { file, .. }) => assert_eq!(file, files[1]),
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    std::fs::write(&second, &bytes).expect("write");
    // A missing middle segment is a gap.
    std::fs::remove_file(t.path(&files[2])).expect("remove");
    match Log::open(t.dir(), opts) {
        Err(DurabilityError::Corrupt {
            file, offset: 0, ..
        }) => assert_eq!(file, files[3]),
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn bad_segment_header_is_corrupt() {
    let t = TempDir::new("header");
    let (mut log, _) = open(&t, LogOptions::default());
    append_range(&mut log, 1..=2);
    log.sync().expect("sync");
    drop(log);
    let seg = t.path(&log::segment_name(Lsn(1)));
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[0] = b'X';
    std::fs::write(&seg, &bytes).expect("write");
    let err = Log::open(t.dir(), LogOptions::default())
        .err()
        .expect("corrupt");
    assert!(err.to_string().contains("offset 0"), "{err}");
}

#[test]
fn huge_length_field_is_corruption_not_allocation() {
    let t = TempDir::new("huge");
    let (mut log, _) = open(&t, LogOptions::default());
    append_range(&mut log, 1..=3);
    log.sync().expect("sync");
    drop(log);
    let seg = t.path(&log::segment_name(Lsn(1)));
    let mut bytes = std::fs::read(&seg).expect("read");
    let at = offsets(3);
    bytes[at[1]..at[1] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&seg, &bytes).expect("write");
    match Log::open(t.dir(), LogOptions::default()) {
        Err(DurabilityError::Corrupt { offset, what, .. }) => {
            assert_eq!(offset, at[1] as u64);
            assert!(what.contains("length"), "{what}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}
