//! One partition's log on disk: segment files of records, appended in lsn
//! order, fsynced on `sync`, scanned on `open`, compacted after a snapshot.
//!
//! Owns: `Log` (the open current segment, the append buffer, which lsn is
//! durable), recovery (`Log::open`) and torn-tail truncation. Must not: decode
//! entries on the append path, or write anywhere but the given `Dir`. After an
//! `Io` error the `Log` is in an unknown state: drop it and `open` again.

use super::record::{decode_entry, frame, Entry, Framed, RECORD_HEADER_BYTES};
use super::snapshot::{self, LoadedSnapshot, SnapshotInfo, TenantImage};
use super::{io_err, sync_dir, DurabilityError, Lsn};
use cap_std::fs::{Dir, File, OpenOptions};
use std::collections::VecDeque;
use std::io::Write;

const SEGMENT_MAGIC: &[u8; 8] = b"OHMLOG\0\0";
const SEGMENT_VERSION: u32 = 1;
pub(super) const SEGMENT_HEADER_BYTES: usize = 20;
/// Largest segment file read at recovery (a segment is rotated near
/// `segment_bytes_max`, so a bigger one is not ours).
pub const SEGMENT_FILE_BYTES_MAX: u64 = 4 << 30;
/// Files the log directory may hold.
pub const DIR_ENTRIES_MAX: usize = 100_000;
/// Appended bytes held in memory before they are written (not fsynced).
pub const APPEND_BUFFER_BYTES_MAX: usize = 8 << 20;
/// Lsns whose cumulative byte offsets are remembered, to tell how much log
/// follows a snapshot's lsn; an older lsn gets an estimate.
const RECENT_LSNS_MAX: usize = 1 << 16;

/// How the log is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment is closed and a new one started once it holds this much.
    pub segment_bytes_max: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes_max: 64 << 20,
        }
    }
}

/// A partial or CRC-failing record cut off the end of the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub file: String,
    pub offset: u64,
    pub bytes_dropped: u64,
}

/// What `Log::open` found.
#[derive(Debug)]
pub struct Recovered {
    pub snapshot: Option<LoadedSnapshot>,
    /// Records after the snapshot, in lsn order.
    pub entries: Vec<(Lsn, Entry)>,
    /// Set when a torn/partial record at the end of the last segment was cut off.
    pub torn_tail: Option<TornTail>,
}

#[derive(Debug, Clone)]
struct Segment {
    first: Lsn,
    name: String,
    /// Bytes in the file plus those buffered for it.
    bytes: u64,
}

/// One partition's log.
pub struct Log {
    dir: Dir,
    opts: LogOptions,
    /// Oldest first; the last is the one appended to.
    segments: Vec<Segment>,
    file: File,
    buf: Vec<u8>,
    last: Lsn,
    durable: Lsn,
    snapshots: Vec<(Lsn, String)>,
    snapshot_lsn: Lsn,
    /// Record bytes appended (or recovered) since the snapshot `open` loaded.
    bytes_total: u64,
    bytes_at_snapshot: u64,
    /// `recent[i]` is `bytes_total` just after lsn `recent_base + i`; never empty.
    recent: VecDeque<u64>,
    recent_base: u64,
}

pub(super) fn segment_name(first: Lsn) -> String {
    format!("log-{:020}.seg", first.0)
}

fn parse_name(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn segment_header(first: Lsn) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first.0.to_le_bytes());
    h
}

fn corrupt(file: &str, offset: usize, what: String) -> DurabilityError {
    DurabilityError::Corrupt {
        file: file.to_string(),
        offset: offset as u64,
        what,
    }
}

/// Files named by the lsn they start at (segments) or hold (snapshots).
type Files = Vec<(Lsn, String)>;

/// Segment and snapshot files in `dir`, sorted by lsn; leftover temporary
/// snapshot files are removed.
fn list(dir: &Dir) -> Result<(Files, Files), DurabilityError> {
    let (mut segs, mut snaps, mut removed) = (Vec::new(), Vec::new(), false);
    for (n, ent) in dir.entries().map_err(io_err(".", "list"))?.enumerate() {
        if n >= DIR_ENTRIES_MAX {
            return Err(corrupt(
                ".",
                0,
                format!("more than {DIR_ENTRIES_MAX} files"),
            ));
        }
        let ent = ent.map_err(io_err(".", "list"))?;
        let Ok(name) = ent.file_name().into_string() else {
            continue;
        };
        if let Some(l) = parse_name(&name, "log-", ".seg") {
            segs.push((Lsn(l), name));
        } else if let Some(l) = parse_name(&name, "snap-", ".snap") {
            snaps.push((Lsn(l), name));
        } else if name.starts_with("snap-") && name.ends_with(snapshot::TMP_SUFFIX) {
            dir.remove_file(&name).map_err(io_err(&name, "remove"))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    segs.sort();
    snaps.sort();
    Ok((segs, snaps))
}

/// Whether any whole, CRC-valid record with lsn >= `min` starts in `data`
/// at or after `from`: if so, a bad record before it is not a torn tail.
fn valid_after(data: &[u8], from: usize, min: Lsn) -> bool {
    (from..data.len())
        .any(|p| matches!(data.get(p..).map(frame), Some(Framed::Ok { lsn, .. }) if lsn >= min))
}

/// What scanning one segment found.
struct Scanned {
    /// Bytes of whole records (plus header) kept.
    end: usize,
    next: Lsn,
    torn: Option<TornTail>,
}

/// Reads the records of segment `name` (whose first lsn is `first`),
/// pushing those after `skip_to` onto `out` with their sizes onto `sizes`.
fn scan_segment(
    data: &[u8],
    name: &str,
    first: Lsn,
    is_last: bool,
    skip_to: Lsn,
    out: &mut Vec<(Lsn, Entry)>,
    sizes: &mut Vec<u64>,
) -> Result<Scanned, DurabilityError> {
    if data.len() < SEGMENT_HEADER_BYTES && is_last {
        // Torn while being created: nothing after the header was synced.
        let torn = TornTail {
            file: name.to_string(),
            offset: 0,
            bytes_dropped: data.len() as u64,
        };
        return Ok(Scanned {
            end: 0,
            next: first,
            torn: Some(torn),
        });
    }
    if data.get(..SEGMENT_HEADER_BYTES) != Some(&segment_header(first)[..]) {
        return Err(corrupt(
            name,
            0,
            format!(
                "bad segment header (expected magic, version {SEGMENT_VERSION}, first lsn {first})"
            ),
        ));
    }
    let mut pos = SEGMENT_HEADER_BYTES;
    let mut next = first;
    while pos < data.len() {
        let rest = data.get(pos..).unwrap_or_default();
        let bad = match frame(rest) {
            Framed::Ok { lsn, payload, len } => {
                if lsn != next {
                    return Err(corrupt(
                        name,
                        pos,
                        format!("record has lsn {lsn}, expected {next}"),
                    ));
                }
                if lsn > skip_to {
                    let entry = decode_entry(payload).map_err(|w| corrupt(name, pos, w))?;
                    out.push((lsn, entry));
                    sizes.push(len as u64);
                }
                pos += len;
                next = Lsn(next.0 + 1);
                continue;
            }
            Framed::Partial => "partial record".to_string(),
            Framed::BadLength(l) => format!("record length {l} is out of bounds"),
            Framed::BadCrc => "record CRC mismatch".to_string(),
        };
        if !is_last || valid_after(data, pos + 1, next) {
            return Err(corrupt(name, pos, bad));
        }
        let torn = TornTail {
            file: name.to_string(),
            offset: pos as u64,
            bytes_dropped: (data.len() - pos) as u64,
        };
        return Ok(Scanned {
            end: pos,
            next,
            torn: Some(torn),
        });
    }
    Ok(Scanned {
        end: pos,
        next,
        torn: None,
    })
}

fn read_segment(dir: &Dir, name: &str) -> Result<Vec<u8>, DurabilityError> {
    let len = dir.metadata(name).map_err(io_err(name, "stat"))?.len();
    if len > SEGMENT_FILE_BYTES_MAX {
        return Err(corrupt(
            name,
            0,
            format!("segment of {len} bytes is over {SEGMENT_FILE_BYTES_MAX}"),
        ));
    }
    dir.read(name).map_err(io_err(name, "read"))
}

/// Cuts `name` to `len` bytes (rewriting the header if it was torn) and syncs.
fn truncate(dir: &Dir, name: &str, len: usize, first: Lsn) -> Result<(), DurabilityError> {
    let mut f = dir
        .open_with(name, OpenOptions::new().write(true))
        .map_err(io_err(name, "open"))?;
    f.set_len(len as u64).map_err(io_err(name, "truncate"))?;
    if len == 0 {
        f.write_all(&segment_header(first))
            .map_err(io_err(name, "write"))?;
    }
    f.sync_all().map_err(io_err(name, "fsync"))
}

fn create_segment(dir: &Dir, first: Lsn) -> Result<(File, Segment), DurabilityError> {
    let name = segment_name(first);
    let mut f = dir
        .open_with(&name, OpenOptions::new().write(true).create_new(true))
        .map_err(io_err(&name, "create"))?;
    f.write_all(&segment_header(first))
        .map_err(io_err(&name, "write"))?;
    f.sync_data().map_err(io_err(&name, "fsync"))?;
    sync_dir(dir)?;
    let seg = Segment {
        first,
        name,
        bytes: SEGMENT_HEADER_BYTES as u64,
    };
    Ok((f, seg))
}

impl Log {
    /// Opens (creating if empty) and recovers: loads the newest snapshot,
    /// reads every record after it, truncates a torn tail.
    pub fn open(dir: Dir, opts: LogOptions) -> Result<(Log, Recovered), DurabilityError> {
        let (seg_names, snapshots) = list(&dir)?;
        let snapshot = match snapshots.last() {
            Some((_, name)) => Some(snapshot::load(&dir, name)?),
            None => None,
        };
        let snap_lsn = snapshot.as_ref().map_or(Lsn(0), |s| s.lsn);
        // Segments holding only records the snapshot covers (left by a
        // compaction a crash interrupted) are not read.
        let start = seg_names
            .iter()
            .rposition(|(first, _)| first.0 <= snap_lsn.0 + 1)
            .unwrap_or(0);
        let mut entries = Vec::new();
        let mut sizes = Vec::new();
        let mut segments = Vec::new();
        let mut torn_tail = None;
        let mut next = Lsn(snap_lsn.0 + 1);
        let live = seg_names.get(start..).unwrap_or_default();
        for (k, (first, name)) in live.iter().enumerate() {
            let expected_first = if k == 0 {
                first.0 <= next.0
            } else {
                *first == next
            };
            if !expected_first {
                return Err(corrupt(name, 0, format!("segment starts at lsn {first}, but the log (or snapshot) before it ends at {}", next.0 - 1)));
            }
            let data = read_segment(&dir, name)?;
            let is_last = k + 1 == live.len();
            let s = scan_segment(
                &data,
                name,
                *first,
                is_last,
                snap_lsn,
                &mut entries,
                &mut sizes,
            )?;
            if let Some(t) = s.torn {
                truncate(&dir, name, s.end, *first)?;
                torn_tail = Some(t);
            }
            if s.next.0 <= snap_lsn.0 && is_last {
                return Err(corrupt(
                    name,
                    s.end,
                    format!(
                        "the log ends at lsn {}, before snapshot lsn {snap_lsn}",
                        s.next.0 - 1
                    ),
                ));
            }
            next = s.next;
            let bytes = s.end.max(SEGMENT_HEADER_BYTES) as u64;
            segments.push(Segment {
                first: *first,
                name: name.clone(),
                bytes,
            });
        }
        let file = match segments.last() {
            Some(seg) => dir
                .open_with(&seg.name, OpenOptions::new().append(true))
                .map_err(io_err(&seg.name, "open"))?,
            None => {
                let (f, seg) = create_segment(&dir, next)?;
                segments.push(seg);
                f
            }
        };
        let last = Lsn(next.0 - 1);
        let mut log = Log {
            dir,
            opts,
            segments,
            file,
            buf: Vec::new(),
            last,
            durable: last,
            snapshots,
            snapshot_lsn: snap_lsn,
            bytes_total: 0,
            bytes_at_snapshot: 0,
            recent: VecDeque::from([0]),
            recent_base: snap_lsn.0,
        };
        for size in sizes {
            log.count(size);
        }
        let recovered = Recovered {
            snapshot,
            entries,
            torn_tail,
        };
        Ok((log, recovered))
    }

    /// Remembers the size of the next record (lsn `recent_base + len`).
    fn count(&mut self, bytes: u64) {
        self.bytes_total += bytes;
        if self.recent.len() >= RECENT_LSNS_MAX {
            self.recent.pop_front();
            self.recent_base += 1;
        }
        self.recent.push_back(self.bytes_total);
    }

    /// `bytes_total` just after `lsn` (the oldest remembered if older).
    fn bytes_at(&self, lsn: Lsn) -> u64 {
        if lsn.0 < self.recent_base {
            return self.recent.front().copied().unwrap_or(self.bytes_total);
        }
        let i = (lsn.0 - self.recent_base) as usize;
        self.recent.get(i).copied().unwrap_or(self.bytes_total)
    }

    /// Buffers one whole record from `encode_entry`/`encode_commit`; its lsn
    /// must follow the last one appended.
    pub fn append(&mut self, record: &[u8]) -> Result<(), DurabilityError> {
        let lsn_bytes: [u8; 8] = record
            .get(8..RECORD_HEADER_BYTES)
            .and_then(|b| b.try_into().ok())
            .expect("append takes a whole record from encode_entry");
        let lsn = Lsn(u64::from_le_bytes(lsn_bytes));
        assert_eq!(
            lsn.0,
            self.last.0 + 1,
            "appended lsn must follow the last one"
        );
        let cur = self
            .segments
            .last()
            .expect("the log always has a current segment");
        if cur.bytes >= self.opts.segment_bytes_max && cur.first <= self.last {
            self.rotate(lsn)?;
        }
        self.buf.extend_from_slice(record);
        if let Some(cur) = self.segments.last_mut() {
            cur.bytes += record.len() as u64;
        }
        self.last = lsn;
        self.count(record.len() as u64);
        if self.buf.len() >= APPEND_BUFFER_BYTES_MAX {
            self.flush()?;
        }
        Ok(())
    }

    /// Closes the current segment (written and fsynced) and starts one at `first`.
    fn rotate(&mut self, first: Lsn) -> Result<(), DurabilityError> {
        self.sync()?;
        let (file, seg) = create_segment(&self.dir, first)?;
        self.file = file;
        self.segments.push(seg);
        Ok(())
    }

    fn current_name(&self) -> &str {
        self.segments.last().map_or("", |s| s.name.as_str())
    }

    /// Writes what is buffered without fsync: survives a process crash, not
    /// an OS crash.
    pub fn flush(&mut self) -> Result<(), DurabilityError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            return Err(io_err(self.current_name(), "write")(e));
        }
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered and fsyncs; after Ok every appended record
    /// survives a crash.
    pub fn sync(&mut self) -> Result<(), DurabilityError> {
        self.flush()?;
        if self.durable < self.last {
            if let Err(e) = self.file.sync_data() {
                return Err(io_err(self.current_name(), "fsync")(e));
            }
            self.durable = self.last;
        }
        Ok(())
    }

    pub fn durable_lsn(&self) -> Lsn {
        self.durable
    }

    /// Log bytes a restart would replay on top of the newest snapshot.
    pub fn bytes_since_snapshot(&self) -> u64 {
        self.bytes_total - self.bytes_at_snapshot.min(self.bytes_total)
    }

    /// Writes a snapshot of `tenants` as of `lsn` (already durable), then
    /// removes segments whose records are all <= `lsn`, and older snapshots.
    pub fn write_snapshot(
        &mut self,
        lsn: Lsn,
        mp_txn_max: u64,
        tenants: &[TenantImage<'_>],
    ) -> Result<SnapshotInfo, DurabilityError> {
        if lsn > self.durable {
            return Err(DurabilityError::SnapshotAhead {
                lsn,
                durable: self.durable,
            });
        }
        let info = snapshot::write(&self.dir, lsn, mp_txn_max, tenants)?;
        // Oldest first, so a crash part-way leaves a contiguous suffix.
        while self.segments.len() > 1 && self.segments[1].first.0 <= lsn.0 + 1 {
            let seg = self.segments.remove(0);
            self.dir
                .remove_file(&seg.name)
                .map_err(io_err(&seg.name, "remove"))?;
        }
        let (old, keep): (Vec<_>, Vec<_>) = self.snapshots.drain(..).partition(|(l, _)| *l < lsn);
        self.snapshots = keep;
        for (_, name) in old {
            self.dir
                .remove_file(&name)
                .map_err(io_err(&name, "remove"))?;
        }
        if !self.snapshots.iter().any(|(l, _)| *l == lsn) {
            self.snapshots.push((lsn, info.file.clone()));
            self.snapshots.sort();
        }
        sync_dir(&self.dir)?;
        if lsn >= self.snapshot_lsn {
            self.snapshot_lsn = lsn;
            self.bytes_at_snapshot = self.bytes_at(lsn);
        }
        Ok(info)
    }

    /// Segment file names, oldest first (for tests and tools).
    pub fn segment_files(&self) -> Vec<String> {
        self.segments.iter().map(|s| s.name.clone()).collect()
    }
}
