//! One replica's log on disk: segment files of records, appended in slot
//! order, fsynced on `sync`, checked on `open`; the vote and the snapshots
//! beside them. Generic over the `Fs`, so the simulator runs this code.
//!
//! Owns: `Log` (the current segment and its append buffer, which slot is
//! durable, the vote, the snapshot files), recovery (`Log::open`) and
//! torn-tail truncation. `log_storage` adds the rest of `Storage`
//! (truncation, reads, snapshots, the vote). Must not: decode payloads, or
//! touch anything but its `Fs`. After an error the `Log` is in an unknown
//! state: drop it and `open` again.
//!
//! ```text
//!   open: list --> vote --> newest snapshot's meta --> scan segments after it
//!         --> (vote check) --> cut a torn tail --> current segment open for append
//!   append_payload --> buf --flush--> current segment --sync--> durable
//! ```

use super::frame::{put_record, RECORD_HEADER_BYTES};
use super::fs::{DirFs, Fs, FsFile};
use super::mark::{self, Mark, MARK_FILE, MARK_TMP};
use super::record::PAYLOAD_BYTES_MAX;
use super::reserve::{Reserve, LOG_RESERVE_BYTES};
use super::segment::{
    corrupt, read_whole, scan, segment_header, ReadCache, Segment, SEGMENT_FILE_BYTES_MAX,
    SEGMENT_VERSION,
};
use super::snapshot;
use super::storage::{SnapshotMeta, Vote};
use super::vote::{self, VOTE_FILE, VOTE_TMP};
use super::{io_err, DurabilityError};
use crate::types::{Ballot, Slot};
use std::collections::VecDeque;

/// Files the log directory may hold.
pub const DIR_ENTRIES_MAX: usize = 100_000;
/// Appended bytes held in memory before they are written (not fsynced).
pub const APPEND_BUFFER_BYTES_MAX: usize = 8 << 20;
/// Slots whose cumulative byte offsets are remembered, to tell how much log
/// follows a snapshot's slot; an older slot gets an estimate.
const RECENT_SLOTS_MAX: usize = 1 << 16;
/// Suffix of a file being written before it is renamed into place.
const TMP_SUFFIX: &str = ".tmp";

/// How the log is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment is closed and a new one started once it holds this much.
    pub segment_bytes_max: u64,
    /// Disk space kept set aside past the log's end (`Reserve`;
    /// `LOG_RESERVE_BYTES` on a node).
    pub reserve_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes_max: 64 << 20,
            reserve_bytes: LOG_RESERVE_BYTES,
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

/// What `Log::open` found besides the log itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Opened {
    /// Set when a torn/partial record at the end of the last segment was cut off.
    pub torn_tail: Option<TornTail>,
}

/// One replica's log, over any `Fs`.
pub struct Log<F: Fs> {
    pub(super) fs: F,
    pub(super) opts: LogOptions,
    /// Oldest first; the last is the one appended to (its records may go
    /// on past `last` only in `buf`, never on disk).
    pub(super) segments: Vec<Segment>,
    /// The last segment, open for appending.
    pub(super) file: F::File,
    /// Records appended to the last segment and not yet written.
    pub(super) buf: Vec<u8>,
    /// The last segment was cut since its last fsync.
    pub(super) cut_unsynced: bool,
    pub(super) last: Slot,
    pub(super) durable: Slot,
    pub(super) vote: Vote,
    /// What the durable mark file says (`mark`); None before the first.
    pub(super) mark: Option<Mark>,
    pub(super) snapshot: Option<SnapshotMeta>,
    /// Snapshot files, oldest first (only the newest counts).
    pub(super) snapshots: Vec<(Slot, String)>,
    /// Segment files wholly covered by the snapshot, left by a compaction
    /// or an install a crash interrupted: removed at the next install.
    pub(super) stale: Vec<String>,
    /// Record bytes appended (or recovered) after the snapshot `open` found.
    pub(super) bytes_total: u64,
    pub(super) bytes_at_snapshot: u64,
    /// `recent[i]` is `bytes_total` just after slot `recent_base + i`; never empty.
    pub(super) recent: VecDeque<u64>,
    pub(super) recent_base: u64,
    /// Where the last `read` stopped (reset when segment bytes change).
    pub(super) read_cache: ReadCache,
    /// Disk space set aside past the current segment's end.
    pub(super) reserve: Reserve,
    /// Files a snapshot made old, left for another thread to remove
    /// (`defer_removals`, `take_removals`); None: removed at once.
    pub(super) deferred: Option<Vec<String>>,
}

/// The log of a node: on the real disk.
pub type DiskLog = Log<DirFs>;

impl Log<DirFs> {
    /// `Log::open` on a directory of the real disk.
    pub fn open_dir(
        dir: cap_std::fs::Dir,
        opts: LogOptions,
    ) -> Result<(DiskLog, Opened), DurabilityError> {
        Log::open(DirFs::new(dir), opts)
    }
}

fn parse_name(name: &str, prefix: &str, suffix: &str) -> Option<Slot> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Slot)
}

/// The log's files in the directory, by kind, sorted by slot.
#[derive(Default)]
struct Listing {
    segments: Vec<(Slot, String)>,
    snapshots: Vec<(Slot, String)>,
    vote: bool,
    mark: bool,
    /// Temporary files a write a crash interrupted left.
    leftovers: Vec<String>,
}

/// Lists the directory, changing nothing (`Log::open_examined` removes the
/// leftovers).
fn list<F: Fs>(fs: &F) -> Result<Listing, DurabilityError> {
    let names = fs.list(DIR_ENTRIES_MAX).map_err(io_err(".", "list"))?;
    if names.len() > DIR_ENTRIES_MAX {
        let what = format!("more than {DIR_ENTRIES_MAX} files");
        return Err(corrupt(".", 0, what));
    }
    let mut out = Listing::default();
    for name in names {
        if let Some(first) = parse_name(&name, "log-", ".seg") {
            out.segments.push((first, name));
        } else if let Some(slot) = parse_name(&name, "snap-", ".snap") {
            out.snapshots.push((slot, name));
        } else if name == VOTE_FILE {
            out.vote = true;
        } else if name == MARK_FILE {
            out.mark = true;
        } else if name == VOTE_TMP
            || name == MARK_TMP
            || (name.ends_with(TMP_SUFFIX)
                && (name.starts_with("snap-") || name.starts_with("log-")))
        {
            out.leftovers.push(name);
        }
    }
    out.segments.sort();
    out.snapshots.sort();
    Ok(out)
}

/// The meta of snapshot file `name`, from its first frame only.
fn snapshot_meta<F: Fs>(fs: &F, slot: Slot, name: &str) -> Result<SnapshotMeta, DurabilityError> {
    let len = fs.len(name).map_err(io_err(name, "stat"))?;
    let mut prefix = vec![0u8; len.min(snapshot::META_PREFIX_BYTES as u64) as usize];
    fs.read_at(name, 0, &mut prefix)
        .map_err(io_err(name, "read"))?;
    let meta = snapshot::read_meta_named(name, &prefix)?;
    if meta.slot != slot {
        let what = format!("holds slot {}, which its name does not", meta.slot);
        return Err(corrupt(name, 0, what));
    }
    Ok(meta)
}

/// What scanning the segments after the snapshot found (nothing written yet).
struct Recovery {
    /// Segments the log continues with, oldest first (maybe none).
    live: Vec<Segment>,
    stale: Vec<String>,
    /// A torn tail of the last live segment: where to cut it.
    torn: Option<(TornTail, u64)>,
    next: Slot,
    sizes: Vec<u64>,
    /// The highest ballot a live record holds, and its file.
    ballot_max: (Ballot, String),
}

impl Recovery {
    /// The last slot a whole record (or the snapshot) holds.
    fn last(&self) -> Slot {
        Slot(self.next.0 - 1)
    }
}

/// Checks the segments that may hold records after `snap` (read only).
fn recover<F: Fs>(
    fs: &F,
    names: &[(Slot, String)],
    snap: Slot,
) -> Result<Recovery, DurabilityError> {
    // Segments before the last one starting by `snap + 1` hold only
    // records the snapshot covers.
    let start = names
        .iter()
        .rposition(|(first, _)| *first <= snap.next())
        .unwrap_or(0);
    let (covered, candidates) = names.split_at(start);
    let mut rec = Recovery {
        live: Vec::new(),
        stale: covered.iter().map(|(_, n)| n.clone()).collect(),
        torn: None,
        next: snap.next(),
        sizes: Vec::new(),
        ballot_max: (Ballot::default(), String::new()),
    };
    for (k, (first, name)) in candidates.iter().enumerate() {
        let follows = if k == 0 {
            *first <= rec.next
        } else {
            *first == rec.next
        };
        if !follows {
            let what = format!(
                "segment starts at slot {first}, but the log (or snapshot) before it ends at {}",
                rec.last()
            );
            return Err(corrupt(name, 0, what));
        }
        let data = read_whole(fs, name)?;
        let is_last = k + 1 == candidates.len();
        let mut seg = Segment::new(*first, SEGMENT_VERSION);
        let s = scan(&data, &mut seg, is_last, snap)?;
        if s.ballot_max > rec.ballot_max.0 {
            rec.ballot_max = (s.ballot_max, name.clone());
        }
        rec.torn = s.torn.map(|t| (t, s.end));
        rec.next = s.next;
        rec.sizes.extend(s.sizes);
        rec.live.push(seg);
    }
    // Only the first live segment can end by the snapshot (later ones start
    // after it): ending before it, it is covered too.
    if rec.next <= snap {
        rec.stale.extend(rec.live.drain(..).map(|s| s.name));
        rec.torn = None;
        rec.next = snap.next();
        rec.sizes.clear();
        rec.ballot_max = (Ballot::default(), String::new());
    }
    Ok(rec)
}

/// What `check` found in one log's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheck {
    /// Segment files holding records after the snapshot.
    pub segments: usize,
    /// Segment files wholly covered by the snapshot (a start removes them).
    pub stale: usize,
    /// The newest snapshot, every byte of it checked.
    pub snapshot: Option<SnapshotMeta>,
    /// The last slot a whole record (or the snapshot) holds.
    pub last: Slot,
    pub vote: Option<Vote>,
    /// The durable mark: its slot, and whether the log was closed cleanly.
    pub mark: Option<(Slot, bool)>,
    /// A half-written record a start would cut (it follows the mark).
    pub torn_tail: Option<TornTail>,
    /// Temporary files a start would remove.
    pub leftovers: Vec<String>,
}

/// Checks a stopped log's directory without changing anything: every
/// record's CRC and slot sequence, the newest snapshot whole, the vote and
/// the durable mark — what `open` checks, and the snapshot beyond its
/// first frame. Err is what `open` would refuse on.
pub fn check<F: Fs>(fs: &F) -> Result<LogCheck, DurabilityError> {
    let found = examine(fs, SnapshotRead::Whole)?;
    let rec = found.rec;
    Ok(LogCheck {
        segments: rec.live.len(),
        stale: rec.stale.len(),
        snapshot: found.snapshot,
        last: rec.last(),
        vote: found.vote,
        mark: found.mark.map(|m| (m.slot, m.clean)),
        torn_tail: rec.torn.map(|(t, _)| t),
        leftovers: found.files.leftovers,
    })
}

/// What a log's directory holds, checked and not yet changed: what `open`
/// and `check` share.
struct Found {
    files: Listing,
    vote: Option<Vote>,
    snapshot: Option<SnapshotMeta>,
    mark: Option<Mark>,
    rec: Recovery,
}

/// How much of the newest snapshot `examine` reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SnapshotRead {
    /// Its first frame (a start: the rest is read as it is loaded).
    Meta,
    /// Every byte (`check`).
    Whole,
}

/// Lists and checks the directory, changing nothing: the vote, the newest
/// snapshot, the segments after it and the durable mark.
fn examine<F: Fs>(fs: &F, snapshot_read: SnapshotRead) -> Result<Found, DurabilityError> {
    let files = list(fs)?;
    let vote = if files.vote {
        Some(vote::read(fs)?)
    } else {
        None
    };
    let snapshot = match files.snapshots.last() {
        Some((slot, name)) if snapshot_read == SnapshotRead::Meta => {
            Some(snapshot_meta(fs, *slot, name)?)
        }
        Some((slot, name)) => {
            let bytes = fs.read(name).map_err(io_err(name, "read"))?;
            let meta = snapshot::check(name, &bytes)?;
            if meta.slot != *slot {
                let what = format!("holds slot {}, which its name does not", meta.slot);
                return Err(corrupt(name, 0, what));
            }
            Some(meta)
        }
        None => None,
    };
    let snap = snapshot.map_or(Slot(0), |m| m.slot);
    let rec = recover(fs, &files.segments, snap)?;
    let (ballot, file) = &rec.ballot_max;
    if vote.is_none() && *ballot > Ballot::default() {
        return Err(DurabilityError::VoteMissing {
            file: file.clone(),
            ballot: *ballot,
        });
    }
    let mark = if files.mark {
        Some(mark::read(fs)?)
    } else {
        None
    };
    if let Some(m) = mark {
        check_mark(m, &rec)?;
    }
    Ok(Found {
        files,
        vote,
        snapshot,
        mark,
        rec,
    })
}

/// Refuses a log that lost records its durable mark says were durable: it
/// ends before the mark, or it was closed cleanly and still has a torn
/// tail (nothing was being written when it was closed).
fn check_mark(m: Mark, rec: &Recovery) -> Result<(), DurabilityError> {
    if let (true, Some((torn, _))) = (m.clean, &rec.torn) {
        let what = format!(
            "the log was closed cleanly at slot {}, so no write was under way, yet the \
             last {} bytes from here are not whole records: the file was damaged after \
             the stop (nothing was changed; restore it from a backup)",
            m.slot, torn.bytes_dropped
        );
        return Err(corrupt(&torn.file, torn.offset, what));
    }
    let end = rec.last();
    if end < m.slot {
        return Err(DurabilityError::LogShort {
            end,
            mark: m.slot,
            clean: m.clean,
        });
    }
    Ok(())
}

/// Cuts segment `seg` to `len` bytes (a fresh header if even that was torn)
/// and syncs it.
fn cut_torn<F: Fs>(fs: &F, seg: &mut Segment, len: u64) -> Result<(), DurabilityError> {
    if len == 0 {
        *seg = create_segment(fs, seg.first, 0)??.1;
        return Ok(());
    }
    let name = seg.name.as_str();
    let mut f = fs.open_append(name).map_err(io_err(name, "open"))?;
    f.set_len(len).map_err(io_err(name, "truncate"))?;
    f.sync_data().map_err(io_err(name, "fsync"))
}

/// Creates an empty version-2 segment starting at `first` (replacing one
/// of that name): written and synced under a temporary name, renamed into
/// place, the directory synced, so the name never shows a torn header.
/// With `reserve` > 0, that much space is set aside in it first (see
/// `Reserve`). The inner error: the disk had no room for it
/// (`is_no_space`), and nothing was created; the outer, any other failure.
/// Also returns the bytes set aside.
#[allow(clippy::type_complexity)]
pub(super) fn create_segment<F: Fs>(
    fs: &F,
    first: Slot,
    reserve: u64,
) -> Result<Result<(F::File, Segment, u64), DurabilityError>, DurabilityError> {
    let seg = Segment::new(first, SEGMENT_VERSION);
    let tmp = format!("{}{TMP_SUFFIX}", seg.name);
    let no_room = |e: std::io::Error, op| {
        let _ = fs.remove(&tmp);
        let e = io_err(&tmp, op)(e);
        if e.is_no_space() {
            Ok(Err(e))
        } else {
            Err(e)
        }
    };
    let mut f = match fs.create(&tmp) {
        Ok(f) => f,
        Err(e) => return no_room(e, "create"),
    };
    if let Err(e) = f.write_all(&segment_header(first, SEGMENT_VERSION)) {
        drop(f);
        return no_room(e, "write");
    }
    let reserved = match f.reserve(0, reserve) {
        Ok(()) => reserve,
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => 0,
        Err(e) => {
            drop(f);
            return no_room(e, "set aside space in");
        }
    };
    f.sync_data().map_err(io_err(&tmp, "fsync"))?;
    drop(f);
    fs.rename(&tmp, &seg.name)
        .map_err(io_err(&seg.name, "rename"))?;
    fs.sync_dir().map_err(io_err(".", "fsync dir"))?;
    let file = fs
        .open_append(&seg.name)
        .map_err(io_err(&seg.name, "open"))?;
    Ok(Ok((file, seg, reserved)))
}

/// A log's directory checked by `Log::examine` and not yet changed.
pub struct Examined<F: Fs> {
    fs: F,
    found: Found,
}

impl<F: Fs> Log<F> {
    /// Opens (creating if empty) and recovers: `examine`, then
    /// `open_examined`.
    pub fn open(fs: F, opts: LogOptions) -> Result<(Log<F>, Opened), DurabilityError> {
        Self::open_examined(Self::examine(fs)?, opts)
    }

    /// Reads the vote and the newest snapshot's meta and checks every
    /// record after it and the durable mark, changing nothing: a node
    /// examines every partition's log before it opens any, so a refused
    /// start leaves them all as they were.
    pub fn examine(fs: F) -> Result<Examined<F>, DurabilityError> {
        let found = examine(&fs, SnapshotRead::Meta)?;
        Ok(Examined { fs, found })
    }

    /// Opens an examined log: removes leftover temporary files, cuts a torn
    /// tail, starts a segment if there is none, and marks what it found
    /// durable. Records and the snapshot are then read through `Storage`.
    pub fn open_examined(
        examined: Examined<F>,
        opts: LogOptions,
    ) -> Result<(Log<F>, Opened), DurabilityError> {
        let Examined {
            fs,
            found:
                Found {
                    files,
                    vote,
                    snapshot,
                    mark: found_mark,
                    mut rec,
                },
        } = examined;
        let snap = snapshot.map_or(Slot(0), |m| m.slot);
        for name in &files.leftovers {
            fs.remove(name).map_err(io_err(name, "remove"))?;
        }
        // The names listed are made durable: a process that died may have
        // left a rename or a removal unsynced.
        fs.sync_dir().map_err(io_err(".", "fsync dir"))?;
        let mut opened = Opened::default();
        if let Some((torn, end)) = rec.torn.take() {
            let seg = rec
                .live
                .last_mut()
                .expect("a torn tail is in a live segment");
            cut_torn(&fs, seg, end)?;
            opened.torn_tail = Some(torn);
        }
        let file = match rec.live.last() {
            // A process that died may have written it without an fsync:
            // what is reported durable below must be.
            Some(seg) => {
                let name = seg.name.as_str();
                let mut f = fs.open_append(name).map_err(io_err(name, "open"))?;
                f.sync_data().map_err(io_err(name, "fsync"))?;
                f
            }
            None => {
                let (f, seg, _) = create_segment(&fs, rec.next, 0)??;
                rec.live.push(seg);
                f
            }
        };
        let last = rec.last();
        let reserve = Reserve::new(opts.reserve_bytes);
        let mut log = Log {
            fs,
            opts,
            segments: rec.live,
            file,
            buf: Vec::new(),
            cut_unsynced: false,
            last,
            durable: last,
            vote: vote.unwrap_or_default(),
            mark: found_mark,
            snapshot,
            snapshots: files.snapshots,
            stale: rec.stale,
            bytes_total: 0,
            bytes_at_snapshot: 0,
            recent: VecDeque::from([0]),
            recent_base: snap.0,
            read_cache: ReadCache::default(),
            reserve,
            deferred: None,
        };
        for size in rec.sizes {
            log.count(size);
        }
        // What was just found durable stays so: a later start that finds
        // less refuses.
        log.set_mark(Mark {
            slot: last,
            clean: false,
        })?;
        Ok((log, opened))
    }

    /// Replaces the durable mark, unless it says that already.
    pub(super) fn set_mark(&mut self, mark: Mark) -> Result<(), DurabilityError> {
        if self.mark != Some(mark) {
            mark::write(&self.fs, mark)?;
            self.mark = Some(mark);
        }
        Ok(())
    }

    /// Remembers the size of the next record (slot `recent_base + len`).
    pub(super) fn count(&mut self, bytes: u64) {
        self.bytes_total += bytes;
        if self.recent.len() >= RECENT_SLOTS_MAX {
            self.recent.pop_front();
            self.recent_base += 1;
        }
        self.recent.push_back(self.bytes_total);
    }

    /// `bytes_total` just after `slot` (the oldest remembered if older).
    pub(super) fn bytes_at(&self, slot: Slot) -> u64 {
        if slot.0 < self.recent_base {
            return self.recent.front().copied().unwrap_or(self.bytes_total);
        }
        let i = (slot.0 - self.recent_base) as usize;
        self.recent.get(i).copied().unwrap_or(self.bytes_total)
    }

    /// Forgets the sizes of records after `slot` (cut off): `bytes_total`
    /// drops by `dropped`.
    pub(super) fn uncount_after(&mut self, slot: Slot, dropped: u64) {
        self.bytes_total -= dropped;
        if slot.0 >= self.recent_base {
            self.recent
                .truncate((slot.0 - self.recent_base) as usize + 1);
        } else {
            self.recent = VecDeque::from([self.bytes_total]);
            self.recent_base = slot.0;
        }
    }

    pub(super) fn snapshot_slot(&self) -> Slot {
        self.snapshot.map_or(Slot(0), |m| m.slot)
    }

    /// Buffers a record of `payload` at `slot` (which must follow the last
    /// one), without allocating: the fast path `Storage::append` takes too.
    /// A payload over `PAYLOAD_BYTES_MAX` is `TooLarge`, the log unchanged.
    pub fn append_payload(
        &mut self,
        slot: Slot,
        ballot: Ballot,
        payload: &[u8],
    ) -> Result<(), DurabilityError> {
        assert_eq!(
            slot,
            self.last.next(),
            "appended slot must follow the last one"
        );
        if payload.len() > PAYLOAD_BYTES_MAX {
            let bytes = payload.len();
            return Err(DurabilityError::TooLarge { slot, bytes });
        }
        if let Some(m) = self.mark.filter(|m| m.clean) {
            // Closed cleanly, and written to after all: a crash from now
            // on may tear what follows the mark.
            self.set_mark(Mark {
                slot: m.slot,
                clean: false,
            })?;
        }
        let cur = self.current();
        let full = cur.bytes >= self.opts.segment_bytes_max && cur.has_records(self.last);
        // A disk too full to begin one is tried again by `retry_space`
        // (the writer's, each second), not at every record; unless the
        // segment nears the most a segment may hold.
        let must = cur.bytes >= SEGMENT_FILE_BYTES_MAX / 2;
        if cur.version != SEGMENT_VERSION || (full && (!self.reserve.blocked() || must)) {
            self.rotate(slot)?;
        }
        let len = (RECORD_HEADER_BYTES + payload.len()) as u64;
        let cur = self
            .segments
            .last_mut()
            .expect("the log always has a current segment");
        cur.note(slot, cur.bytes);
        cur.bytes += len;
        put_record(&mut self.buf, slot, ballot, payload);
        self.last = slot;
        self.count(len);
        if self.buf.len() >= APPEND_BUFFER_BYTES_MAX {
            self.flush_buf()?;
        }
        Ok(())
    }

    pub(super) fn current(&self) -> &Segment {
        self.segments
            .last()
            .expect("the log always has a current segment")
    }

    /// Closes the current segment (written and fsynced) and starts one at
    /// `first`; an empty version-1 segment is replaced by a version-2 one.
    /// On a full disk a version-2 segment goes on past its size instead,
    /// into the space set aside for it.
    fn rotate(&mut self, first: Slot) -> Result<(), DurabilityError> {
        self.sync_all()?;
        // The current segment keeps its space until the new one has its
        // own: it goes on in it if the new one cannot be begun.
        let end = self.current().bytes;
        let reserve = self.reserve.for_new_segment();
        let (file, seg, reserved) = match create_segment(&self.fs, first, reserve)? {
            Ok(made) => made,
            // Where space can be set aside, and the segment may grow.
            Err(e)
                if reserve > 0
                    && self.current().version == SEGMENT_VERSION
                    && end < SEGMENT_FILE_BYTES_MAX / 2 =>
            {
                self.reserve.block(e.to_string());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.reserve.give_back(&mut self.file, end);
        self.reserve.took_over(reserved);
        if self.current().first == first {
            self.segments.pop();
        }
        self.file = file;
        self.segments.push(seg);
        Ok(())
    }

    /// Sets space aside past the current segment's end, if it has less
    /// than `LogOptions::reserve_bytes` there and the disk has room.
    pub(super) fn reserve_ahead(&mut self) -> Result<(), DurabilityError> {
        let cur = self
            .segments
            .last()
            .expect("the log always has a current segment");
        self.reserve.ahead(&mut self.file, &cur.name, cur.bytes)
    }

    /// Why the disk has no room for more of the log, while so.
    pub fn space_short(&self) -> Option<&str> {
        self.reserve.short()
    }

    /// Tries again to set space aside, and to begin the segment a full
    /// disk kept from being begun.
    pub(super) fn retry_space(&mut self) -> Result<(), DurabilityError> {
        self.reserve_ahead()?;
        let cur = self.current();
        if self.reserve.blocked() && cur.has_records(self.last) {
            self.rotate(self.last.next())?;
        }
        Ok(())
    }

    /// Why space cannot be set aside on this file system, once found.
    pub fn space_unsupported(&self) -> Option<&str> {
        self.reserve.unsupported()
    }

    /// Writes what is buffered, without fsync.
    pub(super) fn flush_buf(&mut self) -> Result<(), DurabilityError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.reserve_ahead()?;
        if let Err(e) = self.file.write_all(&self.buf) {
            return Err(io_err(&self.current().name, "write")(e));
        }
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered and fsyncs (also a cut not yet synced).
    pub(super) fn sync_all(&mut self) -> Result<(), DurabilityError> {
        self.flush_buf()?;
        if self.durable < self.last || self.cut_unsynced {
            if let Err(e) = self.file.sync_data() {
                return Err(io_err(&self.current().name, "fsync")(e));
            }
            self.cut_unsynced = false;
        }
        self.durable = self.last;
        Ok(())
    }

    /// Segment file names, oldest first (for tests and tools).
    pub fn segment_files(&self) -> Vec<String> {
        self.segments.iter().map(|s| s.name.clone()).collect()
    }
}
