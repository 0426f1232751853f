//! `Storage` for `Log`: what a replica needs beyond appending. Cutting off
//! an unchosen suffix, reading records from a slot (a restart, a lagging
//! peer), installing and reading snapshots as bytes, and the vote.
//!
//! Owns: the order of the file operations that keeps every crash point
//! recoverable, and the small sealed files (`seal`, `replace_file`) the
//! vote and the durable mark are. Must not: decode payloads or snapshots (the caller does),
//! or leave a state recovery would take for corruption.
//!
//! ```text
//!   truncate_after(s): the durable mark lowered to s if above it (replaced,
//!                      durable); later segments removed (newest first), dir
//!                      fsynced; then the segment holding s + 1 cut (durable at sync)
//!   install_snapshot:  snap .tmp written, fsynced, renamed, dir fsynced;
//!                      then covered segments, older snapshots, stale files removed
//!   Stager::stage:     snap .staged.tmp written, fsynced (another thread, no
//!                      lock on the log: the slow part of a snapshot taken here)
//!   install_staged:    that file renamed, dir fsynced; then as install_snapshot
//!   (either install, after `defer_removals`: the files made old are handed
//!    out by `take_removals`, for a `Remover` on another thread, instead)
//!   read(from):        segment index --> nearest offset --> records (file, then buffer)
//! ```
//!
//! Crash outcomes (what `tests_crash` checks): a crash inside
//! `truncate_after`, or after it and before the next `sync`, recovers the
//! old log, a prefix of it that still reaches the truncation point (when
//! whole later segments were being removed), or the new one; a crash inside
//! `install_snapshot` recovers the old state or the new one.

use super::fs::{Fs, FsFile};
use super::log::{create_segment, Log};
use super::segment::{corrupt, Cursor, ReadCache, SEGMENT_HEADER_BYTES};
use super::snapshot::{self, snapshot_name, staged_name};
use super::storage::{LogRecord, SnapshotMeta, Storage, Vote};
use super::{io_err, vote, DurabilityError};
use crate::types::Slot;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Bytes a stager writes between two looks at its `cancel` flag, and
/// between two fsyncs: the disk never holds more than this of the
/// snapshot unwritten, so the log's own fsyncs meanwhile wait behind at
/// most that much (one fsync at the end had them wait for the whole file).
const STAGE_CHUNK_BYTES: usize = 32 << 20;

/// Records one `read` returns at most (a bound for empty payloads, which
/// `bytes_max` does not limit).
pub const READ_RECORDS_MAX: usize = 1 << 16;

/// A small file replaced whole (`replace_file`), little-endian: `magic |
/// version u32 | body | crc u32` (CRC-32 of the bytes before it).
pub(super) fn seal(magic: &[u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The `body_bytes` of sealed file `file`, its length, header and CRC
/// checked.
pub(super) fn unseal<'a>(
    file: &str,
    bytes: &'a [u8],
    (magic, version): (&[u8; 8], u32),
    body_bytes: usize,
) -> Result<&'a [u8], DurabilityError> {
    let corrupt = |offset: usize, what: String| DurabilityError::Corrupt {
        file: file.to_string(),
        offset: offset as u64,
        what,
    };
    let len = 16 + body_bytes;
    if bytes.len() != len {
        return Err(corrupt(0, format!("{} bytes, expected {len}", bytes.len())));
    }
    if bytes[..8] != magic[..] || bytes[8..12] != version.to_le_bytes() {
        return Err(corrupt(0, "bad header (magic or version)".into()));
    }
    let at = len - 4;
    let crc = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if crc32fast::hash(&bytes[..at]) != crc {
        return Err(corrupt(at, "CRC mismatch".into()));
    }
    Ok(&bytes[12..at])
}

/// Reads sealed file `name`, which must be `bytes` long (checked before it
/// is read, so a file grown by damage is not read whole).
pub(super) fn read_sealed<F: Fs>(
    fs: &F,
    name: &str,
    bytes: usize,
) -> Result<Vec<u8>, DurabilityError> {
    let len = fs.len(name).map_err(io_err(name, "stat"))?;
    if len != bytes as u64 {
        return Err(DurabilityError::Corrupt {
            file: name.to_string(),
            offset: 0,
            what: format!("{len} bytes, expected {bytes}"),
        });
    }
    fs.read(name).map_err(io_err(name, "read"))
}

/// Writes `name` atomically: `<name>.tmp` written and fsynced, renamed, the
/// directory fsynced.
pub(super) fn replace_file<F: Fs>(fs: &F, name: &str, bytes: &[u8]) -> Result<(), DurabilityError> {
    let tmp = format!("{name}.tmp");
    let mut f = fs.create(&tmp).map_err(io_err(&tmp, "create"))?;
    f.write_all(bytes).map_err(io_err(&tmp, "write"))?;
    f.sync_data().map_err(io_err(&tmp, "fsync"))?;
    drop(f);
    fs.rename(&tmp, name).map_err(io_err(name, "rename"))?;
    fs.sync_dir().map_err(io_err(".", "fsync dir"))
}

impl<F: Fs> Log<F> {
    /// The index of the segment holding `slot` (after the snapshot, at most
    /// the last slot).
    fn segment_of(&self, slot: Slot) -> usize {
        self.segments
            .partition_point(|s| s.first <= slot)
            .checked_sub(1)
            .expect("the first segment starts by the slot after the snapshot")
    }

    /// What is buffered for segment `k`: only the last has anything.
    fn tail_of(&self, k: usize) -> &[u8] {
        if k + 1 == self.segments.len() {
            &self.buf
        } else {
            &[]
        }
    }

    /// Removes the segments after segment `k`, newest first, durably (so a
    /// crash leaves a contiguous prefix of them, never a gap); `k` becomes
    /// the current segment. The record bytes dropped.
    fn remove_after(&mut self, k: usize) -> Result<u64, DurabilityError> {
        let later: Vec<_> = self.segments.drain(k + 1..).collect();
        let mut dropped = 0;
        for seg in later.iter().rev() {
            self.fs
                .remove(&seg.name)
                .map_err(io_err(&seg.name, "remove"))?;
            dropped += seg.bytes - SEGMENT_HEADER_BYTES as u64;
        }
        self.fs.sync_dir().map_err(io_err(".", "fsync dir"))?;
        self.buf.clear();
        self.cut_unsynced = false;
        let name = &self.current().name;
        self.file = self.fs.open_append(name).map_err(io_err(name, "open"))?;
        self.reserve.reset();
        Ok(dropped)
    }

    /// Empties the log so that it continues at `slot + 1` (a snapshot at
    /// `slot`, which is durable, covers every record it had).
    fn restart_at(&mut self, slot: Slot) -> Result<(), DurabilityError> {
        for seg in &self.segments {
            self.fs
                .remove(&seg.name)
                .map_err(io_err(&seg.name, "remove"))?;
        }
        // Syncs the directory, the removals with it.
        let (file, seg, _) = create_segment(&self.fs, slot.next(), 0)??;
        self.segments = vec![seg];
        self.file = file;
        self.reserve.reset();
        self.buf.clear();
        self.cut_unsynced = false;
        self.last = slot;
        self.bytes_total = 0;
        self.bytes_at_snapshot = 0;
        self.recent = VecDeque::from([0]);
        self.recent_base = slot.0;
        Ok(())
    }

    /// Removes the segments whose records are all at most `slot`, oldest
    /// first, so a crash part-way leaves a contiguous suffix (not synced
    /// here).
    fn remove_covered(&mut self, slot: Slot) -> Result<(), DurabilityError> {
        while self.segments.len() > 1 && self.segments[1].first <= slot.next() {
            let seg = self.segments.remove(0);
            self.remove_old(seg.name)?;
        }
        self.bytes_at_snapshot = self.bytes_at(slot);
        Ok(())
    }

    /// Removes snapshots older than `slot` and stale segments, and syncs
    /// the directory (or leaves them to `take_removals`).
    fn remove_old_files(&mut self, slot: Slot) -> Result<(), DurabilityError> {
        let (old, keep) = self.snapshots.drain(..).partition(|(s, _)| *s < slot);
        self.snapshots = keep;
        let old: Vec<(Slot, String)> = old;
        let names = old.into_iter().map(|(_, n)| n).chain(self.stale.drain(..));
        for name in names.collect::<Vec<_>>() {
            self.remove_old(name)?;
        }
        if self.deferred.is_some() {
            return Ok(());
        }
        self.fs.sync_dir().map_err(io_err(".", "fsync dir"))
    }

    /// Removes a file a snapshot made old, or leaves it to be removed
    /// (`defer_removals`). Either way the log no longer needs it: a crash
    /// before it is gone leaves a file the next open knows as old.
    fn remove_old(&mut self, name: String) -> Result<(), DurabilityError> {
        match &mut self.deferred {
            Some(later) => later.push(name),
            None => self.fs.remove(&name).map_err(io_err(&name, "remove"))?,
        }
        Ok(())
    }

    /// From now on the files a snapshot makes old (covered segments, older
    /// snapshots, stale files) are not removed here but handed out by
    /// `take_removals`, for a `Remover` on another thread: removing
    /// gigabytes of files takes a second, which the log's writer would
    /// otherwise hold every write up for.
    pub fn defer_removals(&mut self) {
        self.deferred.get_or_insert_with(Vec::new);
    }

    /// A remover of this log's old files, for another thread.
    pub fn remover(&self) -> Result<Remover<F>, DurabilityError> {
        let fs = self.fs.try_clone().map_err(io_err(".", "open again"))?;
        Ok(Remover { fs })
    }
}

/// Removes files a log no longer needs (`Log::take_removals`), on the
/// log's directory but without its state, from another thread.
pub struct Remover<F: Fs> {
    fs: F,
}

impl<F: Fs> Remover<F> {
    /// Removes `names` in order (oldest first, so a crash part-way leaves
    /// the newest segments, as removing them in place would), then syncs
    /// the directory. One already gone is skipped; one that cannot be
    /// removed does not keep the others: the first such error is returned.
    pub fn remove(&self, names: &[String]) -> Result<(), DurabilityError> {
        let mut first = None;
        for name in names {
            match self.fs.remove(name) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    first = first.or(Some(io_err(name, "remove")(e)));
                }
                _ => {}
            }
        }
        let synced = self.fs.sync_dir().map_err(io_err(".", "fsync dir"));
        first.map_or(synced, Err)
    }
}

impl<F: Fs> Storage for Log<F> {
    fn vote(&self) -> Vote {
        self.vote
    }

    fn set_vote(&mut self, vote: Vote) -> Result<(), DurabilityError> {
        assert!(
            vote.promised >= self.vote.promised,
            "a promise never goes back: {} after {}",
            vote.promised,
            self.vote.promised
        );
        if vote != self.vote {
            vote::write(&self.fs, vote)?;
            self.vote = vote;
        }
        Ok(())
    }

    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.snapshot
    }

    fn last_slot(&self) -> Slot {
        self.last
    }

    fn durable_slot(&self) -> Slot {
        self.durable
    }

    fn append(&mut self, record: &LogRecord) -> Result<(), DurabilityError> {
        self.append_payload(record.slot, record.ballot, &record.payload)
    }

    fn flush(&mut self) -> Result<(), DurabilityError> {
        self.flush_buf()
    }

    fn sync(&mut self) -> Result<(), DurabilityError> {
        self.sync_all()
    }

    fn take_removals(&mut self) -> Vec<String> {
        self.deferred
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn space_short(&self) -> Option<String> {
        Log::space_short(self).map(str::to_string)
    }

    fn retry_reserve(&mut self) -> Result<(), DurabilityError> {
        self.retry_space()
    }

    fn close_clean(&mut self) -> Result<(), DurabilityError> {
        self.sync_all()?;
        self.set_mark(super::mark::Mark {
            slot: self.last,
            clean: true,
        })
    }

    fn truncate_after(&mut self, slot: Slot) -> Result<(), DurabilityError> {
        let snap = self.snapshot_slot();
        assert!(
            snap <= slot && slot <= self.last,
            "truncate_after({slot}) outside snapshot slot {snap} ..= last slot {}",
            self.last
        );
        if slot == self.last {
            return Ok(());
        }
        // First the mark, so a crash part-way never finds the log short of
        // it.
        if self.mark.is_some_and(|m| m.slot > slot) {
            self.set_mark(super::mark::Mark { slot, clean: false })?;
        }
        let target = slot.next();
        let k = self.segment_of(target);
        let cache = std::mem::take(&mut self.read_cache);
        let offset = Cursor::seek(&self.fs, &self.segments[k], self.tail_of(k), target, cache)?.pos;
        let mut dropped = 0;
        if k + 1 < self.segments.len() {
            dropped += self.remove_after(k)?;
        }
        let seg = &mut self.segments[k];
        let flushed = seg.bytes - self.buf.len() as u64;
        dropped += seg.bytes - offset;
        if offset >= flushed {
            self.buf.truncate((offset - flushed) as usize);
        } else {
            self.buf.clear();
            self.file
                .set_len(offset)
                .map_err(io_err(&seg.name, "truncate"))?;
            self.cut_unsynced = true;
            self.reserve.reset();
        }
        seg.bytes = offset;
        seg.cut_index(slot);
        self.last = slot;
        self.durable = self.durable.min(slot);
        self.uncount_after(slot, dropped);
        Ok(())
    }

    fn read(&mut self, from: Slot, bytes_max: usize) -> Result<Vec<LogRecord>, DurabilityError> {
        let snapshot = self.snapshot_slot();
        if from <= snapshot {
            return Err(DurabilityError::Compacted { from, snapshot });
        }
        let mut out = Vec::new();
        if from > self.last {
            return Ok(out);
        }
        let (mut k, mut slot, mut bytes) = (self.segment_of(from), from, 0usize);
        let mut cache = std::mem::take(&mut self.read_cache);
        while k < self.segments.len() && slot <= self.last {
            let mut c = Cursor::seek(&self.fs, &self.segments[k], self.tail_of(k), slot, cache)?;
            let mut full = false;
            loop {
                let (at_slot, at_pos) = (c.next, c.pos);
                let Some((s, ballot, payload)) = c.next_record()? else {
                    break;
                };
                if !out.is_empty()
                    && (bytes + payload.len() > bytes_max || out.len() >= READ_RECORDS_MAX)
                {
                    // Not taken: the next read starts with it.
                    (c.next, c.pos, full) = (at_slot, at_pos, true);
                    break;
                }
                bytes += payload.len();
                out.push(LogRecord {
                    slot: s,
                    ballot,
                    payload: Arc::from(payload),
                });
                slot = s.next();
            }
            cache = c.into_cache();
            if full {
                break;
            }
            k += 1;
        }
        self.read_cache = cache;
        Ok(out)
    }

    fn read_snapshot(&mut self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, DurabilityError> {
        let Some((_, name)) = self.snapshots.last() else {
            return Ok(None);
        };
        let bytes = self.fs.read(name).map_err(io_err(name, "read"))?;
        let meta = snapshot::check(name, &bytes)?;
        if Some(meta) != self.snapshot {
            return Err(corrupt(name, 0, "changed since the log was opened".into()));
        }
        Ok(Some((meta, bytes)))
    }

    fn install_snapshot(
        &mut self,
        meta: SnapshotMeta,
        bytes: &[u8],
    ) -> Result<(), DurabilityError> {
        let name = snapshot_name(meta.slot);
        let found = snapshot::check(&format!("{name} (to install)"), bytes)?;
        if found != meta {
            return Err(DurabilityError::SnapshotMismatch { meta, found });
        }
        self.assert_not_older(meta);
        replace_file(&self.fs, &name, bytes)?;
        self.adopt_snapshot(meta, name)
    }

    fn install_staged(&mut self, meta: SnapshotMeta) -> Result<(), DurabilityError> {
        self.assert_not_older(meta);
        let (staged, name) = (staged_name(meta.slot), snapshot_name(meta.slot));
        self.fs
            .rename(&staged, &name)
            .map_err(io_err(&staged, "rename (a snapshot staged to install)"))?;
        self.fs.sync_dir().map_err(io_err(".", "fsync dir"))?;
        self.adopt_snapshot(meta, name)
    }

    fn bytes_since_snapshot(&self) -> u64 {
        self.bytes_total - self.bytes_at_snapshot.min(self.bytes_total)
    }
}

impl<F: Fs> Log<F> {
    /// What writes snapshot files aside for this log from another thread
    /// (`Stager::stage`), for `install_staged`.
    pub fn stager(&self) -> Result<Stager<F>, DurabilityError> {
        Stager::on(&self.fs)
    }

    fn assert_not_older(&self, meta: SnapshotMeta) {
        let snap = self.snapshot_slot();
        assert!(
            meta.slot >= snap,
            "a snapshot at slot {} cannot replace the one at {snap}: records between are gone",
            meta.slot
        );
    }

    /// Makes the durable snapshot file `name` (holding `meta`) the log's:
    /// drops the records it covers and the files it makes old.
    fn adopt_snapshot(&mut self, meta: SnapshotMeta, name: String) -> Result<(), DurabilityError> {
        if meta.slot > self.last {
            self.restart_at(meta.slot)?;
        } else {
            self.remove_covered(meta.slot)?;
        }
        self.remove_old_files(meta.slot)?;
        if self.snapshots.last().map(|(s, _)| *s) != Some(meta.slot) {
            self.snapshots.push((meta.slot, name));
        }
        self.snapshot = Some(meta);
        self.durable = self.durable.max(meta.slot);
        self.read_cache = ReadCache::default();
        Ok(())
    }
}

/// Writes a log's snapshot files aside (`staged_name`), on the log's
/// directory but without its state, so a thread other than the one
/// appending can: writing a large snapshot takes seconds, and the log
/// goes on taking records meanwhile.
pub struct Stager<F: Fs> {
    fs: F,
}

impl<F: Fs> Stager<F> {
    fn on(fs: &F) -> Result<Stager<F>, DurabilityError> {
        let fs = fs.try_clone().map_err(io_err(".", "open again"))?;
        Ok(Stager { fs })
    }

    /// Another stager for the same directory (for another thread).
    pub fn try_clone(&self) -> Result<Stager<F>, DurabilityError> {
        Stager::on(&self.fs)
    }

    /// Removes the file staged for `meta`, if any (a snapshot given up).
    pub fn discard(&self, meta: SnapshotMeta) -> Result<(), DurabilityError> {
        let staged = staged_name(meta.slot);
        match self.fs.remove(&staged) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&staged, "remove")(e)),
            _ => Ok(()),
        }
    }

    /// Checks `bytes` (from `snapshot::encode`, holding `meta`) and writes
    /// them durably to the file `install_staged(meta)` takes, a chunk at a
    /// time; gives up (an error) once `cancel` is set. A crash leaves at
    /// most a file the next open removes.
    pub fn stage(
        &self,
        meta: SnapshotMeta,
        bytes: &[u8],
        cancel: &AtomicBool,
    ) -> Result<(), DurabilityError> {
        let name = staged_name(meta.slot);
        let found = snapshot::check(&format!("{name} (to stage)"), bytes)?;
        if found != meta {
            return Err(DurabilityError::SnapshotMismatch { meta, found });
        }
        let mut f = self.fs.create(&name).map_err(io_err(&name, "create"))?;
        for chunk in bytes.chunks(STAGE_CHUNK_BYTES) {
            if cancel.load(Ordering::Relaxed) {
                let e = std::io::Error::new(std::io::ErrorKind::Interrupted, "given up");
                return Err(io_err(&name, "write")(e));
            }
            f.write_all(chunk).map_err(io_err(&name, "write"))?;
            f.sync_data().map_err(io_err(&name, "fsync"))?;
        }
        Ok(()) // every chunk synced after it was written (`check` saw frames)
    }
}
