//! Segment files: their names and headers (both versions), the scan that
//! recovery runs over each, and a cursor that reads records back from a
//! known slot without reading a segment from its start.
//!
//! Owns: `Segment` (what the log knows of one file, with a sparse index of
//! record offsets), `scan`, `Cursor`. Must not: write, cut or remove files
//! (`log` does), or decode payloads.
//!
//! ```text
//!   whole file bytes --scan--> records checked, index built, torn tail found
//!   (segment, slot) --Cursor::seek--> index point --frames forward--> records
//! ```

use super::frame::{frame, Framed};
use super::fs::Fs;
use super::record::RECORD_BYTES_MAX;
use super::{DurabilityError, TornTail};
use crate::types::{Ballot, Slot};

const SEGMENT_MAGIC: &[u8; 8] = b"OHMLOG\0\0";
/// Version 2 records carry a ballot; version 1 segments are still read.
pub(super) const SEGMENT_VERSION: u32 = 2;
pub(super) const SEGMENT_HEADER_BYTES: usize = 20;
/// Largest segment file read at recovery (a segment is rotated near
/// `segment_bytes_max`, so a bigger one is not ours).
pub const SEGMENT_FILE_BYTES_MAX: u64 = 4 << 30;
/// A record is remembered in a segment's index when it starts at least this
/// far after the last one remembered: a read seeks to within this of a slot.
const INDEX_STRIDE_BYTES: u64 = 64 << 10;
/// Bytes read from a file at a time when reading records back.
const READ_WINDOW_BYTES: usize = 256 << 10;

pub(super) fn segment_name(first: Slot) -> String {
    format!("log-{:020}.seg", first.0)
}

pub(super) fn segment_header(first: Slot, version: u32) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..20].copy_from_slice(&first.0.to_le_bytes());
    h
}

pub(super) fn corrupt(file: &str, offset: u64, what: String) -> DurabilityError {
    DurabilityError::Corrupt {
        file: file.to_string(),
        offset,
        what,
    }
}

/// What the log knows of one segment file.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub first: Slot,
    pub name: String,
    /// The record format (1 or 2); only version 2 is appended to.
    pub version: u32,
    /// Bytes in the file plus those buffered for it.
    pub bytes: u64,
    /// (slot, offset) of some records, ascending; the first is always
    /// (`first`, header end), where record `first` starts or will.
    index: Vec<(Slot, u64)>,
}

impl Segment {
    pub fn new(first: Slot, version: u32) -> Segment {
        let header = SEGMENT_HEADER_BYTES as u64;
        Segment {
            first,
            name: segment_name(first),
            version,
            bytes: header,
            index: vec![(first, header)],
        }
    }

    /// Notes that record `slot` starts at `offset`.
    pub fn note(&mut self, slot: Slot, offset: u64) {
        let &(_, last) = self.index.last().expect("a segment's index is never empty");
        if offset >= last + INDEX_STRIDE_BYTES {
            self.index.push((slot, offset));
        }
    }

    /// The remembered record at or before `slot`.
    fn locate(&self, slot: Slot) -> (Slot, u64) {
        let i = self.index.partition_point(|&(s, _)| s <= slot);
        self.index[i.saturating_sub(1)]
    }

    /// Forgets records after `slot` (they were cut off).
    pub fn cut_index(&mut self, slot: Slot) {
        let first = self.index[0];
        self.index.retain(|&(s, _)| s <= slot);
        if self.index.is_empty() {
            self.index.push(first);
        }
    }

    /// Whether the segment holds any record, given the log's last slot.
    pub fn has_records(&self, last: Slot) -> bool {
        self.first <= last
    }
}

/// What scanning one segment found.
pub(super) struct Scanned {
    /// Bytes of whole records (plus header) kept.
    pub end: u64,
    /// The slot after the last whole record.
    pub next: Slot,
    pub torn: Option<TornTail>,
    /// Sizes of the records after `skip_to`, in order.
    pub sizes: Vec<u64>,
    /// The highest ballot a record holds.
    pub ballot_max: Ballot,
}

/// Whether any whole, CRC-valid record with slot >= `min` starts in `data`
/// at or after `from`: if so, a bad record before it is not a torn tail.
fn valid_after(data: &[u8], from: usize, min: Slot, version: u32) -> bool {
    (from..data.len()).any(|p| {
        matches!(data.get(p..).map(|d| frame(d, version)),
            Some(Framed::Ok { slot, .. }) if slot >= min)
    })
}

/// The format version of a segment whose header is `data`'s start, if it
/// is one of ours for `first`.
fn header_version(data: &[u8], first: Slot) -> Option<u32> {
    let head = data.get(..SEGMENT_HEADER_BYTES)?;
    (1..=SEGMENT_VERSION).find(|&v| head == segment_header(first, v))
}

/// Checks every record of segment `seg` (whose whole content is `data`),
/// building its index and setting its version and size (to the end of its
/// whole records). Only the last segment may end in a torn record.
pub(super) fn scan(
    data: &[u8],
    seg: &mut Segment,
    is_last: bool,
    skip_to: Slot,
) -> Result<Scanned, DurabilityError> {
    let name = seg.name.clone();
    let mut out = Scanned {
        end: 0,
        next: seg.first,
        torn: None,
        sizes: Vec::new(),
        ballot_max: Ballot::default(),
    };
    if data.len() < SEGMENT_HEADER_BYTES && is_last {
        // Torn while being created: nothing after the header was synced.
        out.torn = Some(TornTail {
            file: name,
            offset: 0,
            bytes_dropped: data.len() as u64,
        });
        return Ok(out);
    }
    let Some(version) = header_version(data, seg.first) else {
        let what = format!(
            "bad segment header (expected magic, version 1 to {SEGMENT_VERSION}, first slot {})",
            seg.first
        );
        return Err(corrupt(&name, 0, what));
    };
    *seg = Segment::new(seg.first, version);
    let mut pos = SEGMENT_HEADER_BYTES;
    while pos < data.len() {
        let rest = data.get(pos..).unwrap_or_default();
        let bad = match frame(rest, version) {
            Framed::Ok {
                slot, ballot, len, ..
            } => {
                if slot != out.next {
                    let what = format!("record has slot {slot}, expected {}", out.next);
                    return Err(corrupt(&name, pos as u64, what));
                }
                seg.note(slot, pos as u64);
                if slot > skip_to {
                    out.sizes.push(len as u64);
                }
                out.ballot_max = out.ballot_max.max(ballot);
                pos += len;
                out.next = slot.next();
                continue;
            }
            Framed::Partial => "partial record".to_string(),
            Framed::BadLength(l) => format!("record length {l} is out of bounds"),
            Framed::BadCrc => "record CRC mismatch".to_string(),
        };
        if !is_last || valid_after(data, pos + 1, out.next, version) {
            return Err(corrupt(&name, pos as u64, bad));
        }
        out.torn = Some(TornTail {
            file: name,
            offset: pos as u64,
            bytes_dropped: (data.len() - pos) as u64,
        });
        break;
    }
    out.end = pos as u64;
    seg.bytes = out.end;
    Ok(out)
}

/// Reads a segment whole, refusing one too big to be ours.
pub(super) fn read_whole<F: Fs>(fs: &F, name: &str) -> Result<Vec<u8>, DurabilityError> {
    let len = fs.len(name).map_err(super::io_err(name, "stat"))?;
    if len > SEGMENT_FILE_BYTES_MAX {
        let what = format!("segment of {len} bytes is over {SEGMENT_FILE_BYTES_MAX}");
        return Err(corrupt(name, 0, what));
    }
    fs.read(name).map_err(super::io_err(name, "read"))
}

/// A record read back: its slot, ballot and payload.
pub(super) type RecordRef<'a> = (Slot, Ballot, &'a [u8]);

/// Where the last read stopped, and the bytes it had loaded: the next read
/// of a lagging peer continues there instead of seeking and loading again.
/// Valid until the bytes of a segment change (a cut, a snapshot install):
/// the log resets it then.
#[derive(Debug, Default)]
pub(super) struct ReadCache {
    /// The segment (by first slot) it is of.
    seg: Option<Slot>,
    window: Vec<u8>,
    window_at: u64,
    /// The slot of the next record, and where it starts.
    next: Option<(Slot, u64)>,
}

/// Reads one segment's records in slot order, from a window of its bytes:
/// those in the file, then those still buffered (`tail`).
pub(super) struct Cursor<'a, F: Fs> {
    fs: &'a F,
    seg: &'a Segment,
    /// Bytes of the segment in its file; `tail` follows them.
    flushed: u64,
    tail: &'a [u8],
    window: Vec<u8>,
    window_at: u64,
    /// Where the next record starts, and its slot.
    pub pos: u64,
    pub next: Slot,
}

impl<'a, F: Fs> Cursor<'a, F> {
    /// A cursor at record `slot` of `seg` (which must hold it or end just
    /// before it); `tail` is what is buffered for `seg`. Starts from
    /// `cache` when it is of `seg` and no further than `slot`.
    pub fn seek(
        fs: &'a F,
        seg: &'a Segment,
        tail: &'a [u8],
        slot: Slot,
        cache: ReadCache,
    ) -> Result<Cursor<'a, F>, DurabilityError> {
        let (mut next, mut pos) = seg.locate(slot);
        let (mut window, mut window_at) = (Vec::new(), pos);
        if cache.seg == Some(seg.first) {
            (window, window_at) = (cache.window, cache.window_at);
            if let Some((s, at)) = cache.next.filter(|&(s, _)| next <= s && s <= slot) {
                (next, pos) = (s, at);
            }
        }
        let mut c = Cursor {
            fs,
            seg,
            flushed: seg.bytes - tail.len() as u64,
            tail,
            window,
            window_at,
            pos,
            next,
        };
        while c.next < slot {
            if c.next_record()?.is_none() {
                let what = format!("segment ends at slot {}, before slot {slot}", c.next);
                return Err(corrupt(&seg.name, c.pos, what));
            }
        }
        Ok(c)
    }

    /// What the next read can continue from.
    pub fn into_cache(self) -> ReadCache {
        ReadCache {
            seg: Some(self.seg.first),
            window: self.window,
            window_at: self.window_at,
            next: Some((self.next, self.pos)),
        }
    }

    /// Loads bytes from `at` on into the window: `n` of them, or a whole
    /// window's worth, bounded by the segment's end.
    fn fill(&mut self, at: u64, n: usize) -> Result<(), DurabilityError> {
        let end = self.seg.bytes.min(at + n.max(READ_WINDOW_BYTES) as u64);
        self.window.clear();
        self.window.resize((end - at) as usize, 0);
        self.window_at = at;
        let in_file = (self.flushed.min(end).saturating_sub(at)) as usize;
        if in_file > 0 {
            let name = &self.seg.name;
            self.fs
                .read_at(name, at, &mut self.window[..in_file])
                .map_err(super::io_err(name, "read"))?;
        }
        if end > self.flushed {
            let from = (at.max(self.flushed) - self.flushed) as usize;
            let to = (end - self.flushed) as usize;
            let bytes = self
                .tail
                .get(from..to)
                .expect("the tail holds the segment's last bytes");
            self.window[in_file..].copy_from_slice(bytes);
        }
        Ok(())
    }

    /// Makes the window hold the `n` bytes at `pos`; their start in it, or
    /// None if the segment ends before them.
    fn ensure(&mut self, n: usize) -> Result<Option<usize>, DurabilityError> {
        if self.pos + n as u64 > self.seg.bytes {
            return Ok(None);
        }
        let end = self.window_at + self.window.len() as u64;
        if self.pos < self.window_at || self.pos + n as u64 > end {
            self.fill(self.pos, n)?;
        }
        Ok(Some((self.pos - self.window_at) as usize))
    }

    /// The next record (slot, ballot, payload), or None at the segment's end.
    /// Bytes that no longer frame (changed since recovery) are `Corrupt`.
    pub fn next_record(&mut self) -> Result<Option<RecordRef<'_>>, DurabilityError> {
        if self.pos >= self.seg.bytes {
            return Ok(None);
        }
        let seg = self.seg;
        let (pos, expected) = (self.pos, self.next);
        let head = self.ensure(4)?.and_then(|at| self.window.get(at..at + 4));
        let len = match head {
            Some(&[a, b, c, d]) => 8 + u32::from_le_bytes([a, b, c, d]) as usize,
            _ => return Err(corrupt(&seg.name, pos, "partial record".into())),
        };
        if len > 8 + RECORD_BYTES_MAX {
            let what = format!("record length {len} is out of bounds");
            return Err(corrupt(&seg.name, pos, what));
        }
        let Some(at) = self.ensure(len)? else {
            let what = format!("record of {len} bytes runs past the segment");
            return Err(corrupt(&seg.name, pos, what));
        };
        match frame(&self.window[at..at + len], seg.version) {
            Framed::Ok {
                slot,
                ballot,
                payload,
                len,
            } if slot == expected => {
                self.pos += len as u64;
                self.next = slot.next();
                Ok(Some((slot, ballot, payload)))
            }
            Framed::Ok { slot, .. } => {
                let what = format!("record has slot {slot}, expected {expected}");
                Err(corrupt(&seg.name, pos, what))
            }
            _ => {
                let what = "record no longer frames (CRC or length)".to_string();
                Err(corrupt(&seg.name, pos, what))
            }
        }
    }
}
