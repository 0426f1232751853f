//! The consensus core's view of its log, in memory: the ballot of every
//! slot after the snapshot (as runs: ballots change only when leaders
//! do), and the payloads of the newest records.
//!
//! Every record after the `applied` watermark the caller keeps is held
//! here, so applying never reads the disk; applied records are kept up to
//! `CACHE_BYTES_MAX` to catch up followers (none when the group has no
//! followers), and read from storage beyond.

use crate::durability::{LogRecord, SnapshotMeta};
use crate::types::{Ballot, Slot};
use std::collections::VecDeque;

#[derive(Debug, Default)]
pub(super) struct MemLog {
    /// What the log continues from.
    snap: SnapshotMeta,
    /// `(first slot, ballot)` runs covering `snap.slot + 1 ..= last`.
    runs: Vec<(Slot, Ballot)>,
    last: Slot,
    /// The newest records, contiguous, ending at `last` when not empty.
    cache: VecDeque<LogRecord>,
    cache_bytes: u64,
}

impl MemLog {
    pub fn new(snap: SnapshotMeta) -> MemLog {
        MemLog {
            snap,
            runs: Vec::new(),
            last: snap.slot,
            cache: VecDeque::new(),
            cache_bytes: 0,
        }
    }

    pub fn snapshot(&self) -> SnapshotMeta {
        self.snap
    }

    pub fn last_slot(&self) -> Slot {
        self.last
    }

    pub fn last_ballot(&self) -> Ballot {
        self.runs.last().map_or(self.snap.ballot, |r| r.1)
    }

    /// The ballot of the record at `slot`, if this log knows it (the
    /// snapshot's slot included).
    pub fn ballot_at(&self, slot: Slot) -> Option<Ballot> {
        if slot == self.snap.slot {
            return Some(self.snap.ballot);
        }
        if slot < self.snap.slot || slot > self.last {
            return None;
        }
        let i = self.runs.partition_point(|r| r.0 <= slot);
        self.runs.get(i.checked_sub(1)?).map(|r| r.1)
    }

    /// The first slot of the run of equal ballots holding `slot` (a
    /// follower's hint to skip a whole divergent term at once).
    pub fn run_start(&self, slot: Slot) -> Slot {
        let i = self.runs.partition_point(|r| r.0 <= slot);
        match i.checked_sub(1).and_then(|i| self.runs.get(i)) {
            Some(r) => r.0,
            None => self.snap.slot.next(),
        }
    }

    /// Appends the record at `last + 1`.
    pub fn append(&mut self, rec: LogRecord) {
        assert_eq!(rec.slot, self.last.next(), "the log is contiguous");
        if self.runs.last().map(|r| r.1) != Some(rec.ballot) {
            self.runs.push((rec.slot, rec.ballot));
        }
        self.last = rec.slot;
        if self.cache.back().is_some_and(|b| b.slot.next() != rec.slot) {
            self.clear_cache();
        }
        self.cache_bytes += rec.payload.len() as u64;
        self.cache.push_back(rec);
    }

    /// Drops every record after `slot` (at least the snapshot's).
    pub fn truncate_after(&mut self, slot: Slot) {
        assert!(slot >= self.snap.slot, "truncating into the snapshot");
        if slot >= self.last {
            return;
        }
        while self.runs.last().is_some_and(|r| r.0 > slot) {
            self.runs.pop();
        }
        while self.cache.back().is_some_and(|r| r.slot > slot) {
            if let Some(r) = self.cache.pop_back() {
                self.cache_bytes -= r.payload.len() as u64;
            }
        }
        self.last = slot;
    }

    /// The cached record at `slot`.
    pub fn get(&self, slot: Slot) -> Option<&LogRecord> {
        let first = self.cache.front()?.slot;
        let i = slot.0.checked_sub(first.0)?;
        self.cache.get(usize::try_from(i).ok()?)
    }

    /// Cached records from `from` on, about `bytes_max` of payload (at
    /// least one), or None when `from` is not cached.
    pub fn cached_from(&self, from: Slot, bytes_max: usize) -> Option<Vec<LogRecord>> {
        if from > self.last {
            return Some(Vec::new());
        }
        let first = self.cache.front()?.slot;
        let skip = usize::try_from(from.0.checked_sub(first.0)?).ok()?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for r in self.cache.iter().skip(skip) {
            if !out.is_empty() && bytes + r.payload.len() > bytes_max {
                break;
            }
            bytes += r.payload.len();
            out.push(r.clone());
        }
        Some(out)
    }

    /// Forgets applied payloads (at or below `applied`) past `keep_bytes`.
    pub fn trim(&mut self, applied: Slot, keep_bytes: u64) {
        while self.cache_bytes > keep_bytes {
            match self.cache.front() {
                Some(r) if r.slot <= applied => {
                    self.cache_bytes -= r.payload.len() as u64;
                    self.cache.pop_front();
                }
                _ => break,
            }
        }
    }

    /// A snapshot taken here: records up to `meta.slot` leave the log.
    pub fn compacted(&mut self, meta: SnapshotMeta) {
        if meta.slot <= self.snap.slot {
            return;
        }
        debug_assert_eq!(self.ballot_at(meta.slot), Some(meta.ballot));
        let keep_from = self
            .runs
            .partition_point(|r| r.0 <= meta.slot)
            .saturating_sub(1);
        self.runs.drain(..keep_from);
        if let Some(first) = self.runs.first_mut() {
            first.0 = first.0.max(meta.slot.next());
        }
        if self.runs.first().is_some_and(|r| r.0 > self.last) {
            self.runs.clear();
        }
        self.snap = meta;
        self.last = self.last.max(meta.slot);
    }

    /// A snapshot from the leader: the log continues from it; records
    /// after it are kept only if the record at its slot agrees.
    pub fn install(&mut self, meta: SnapshotMeta) {
        let agrees = self.ballot_at(meta.slot) == Some(meta.ballot);
        if !agrees || meta.slot >= self.last {
            self.runs.clear();
            self.clear_cache();
            self.snap = meta;
            self.last = meta.slot;
            return;
        }
        self.compacted(meta);
        while self.cache.front().is_some_and(|r| r.slot <= meta.slot) {
            if let Some(r) = self.cache.pop_front() {
                self.cache_bytes -= r.payload.len() as u64;
            }
        }
    }

    fn clear_cache(&mut self) {
        self.cache.clear();
        self.cache_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeId;
    use std::sync::Arc;

    fn b(round: u64) -> Ballot {
        Ballot {
            round,
            node: NodeId(1),
        }
    }

    fn rec(slot: u64, round: u64) -> LogRecord {
        LogRecord {
            slot: Slot(slot),
            ballot: b(round),
            payload: Arc::from(vec![slot as u8; 3]),
        }
    }

    #[test]
    fn ballots_runs_truncation_and_snapshots() {
        let mut log = MemLog::new(SnapshotMeta {
            slot: Slot(10),
            ballot: b(1),
        });
        for s in 11..=15 {
            log.append(rec(s, 1));
        }
        for s in 16..=20 {
            log.append(rec(s, 2));
        }
        assert_eq!(log.ballot_at(Slot(10)), Some(b(1)));
        assert_eq!(log.ballot_at(Slot(15)), Some(b(1)));
        assert_eq!(log.ballot_at(Slot(16)), Some(b(2)));
        assert_eq!(log.ballot_at(Slot(21)), None);
        assert_eq!(log.ballot_at(Slot(9)), None);
        assert_eq!(log.run_start(Slot(18)), Slot(16));
        assert_eq!(log.run_start(Slot(12)), Slot(11));
        let got = log.cached_from(Slot(14), 6).unwrap();
        assert_eq!(
            got.iter().map(|r| r.slot.0).collect::<Vec<_>>(),
            vec![14, 15]
        );
        log.truncate_after(Slot(17));
        assert_eq!(log.last_slot(), Slot(17));
        assert_eq!(log.last_ballot(), b(2));
        log.truncate_after(Slot(15));
        assert_eq!(log.last_ballot(), b(1));
        log.append(rec(16, 3));
        assert_eq!(log.get(Slot(16)).unwrap().ballot, b(3));
        log.compacted(SnapshotMeta {
            slot: Slot(13),
            ballot: b(1),
        });
        assert_eq!(log.ballot_at(Slot(13)), Some(b(1)));
        assert_eq!(log.ballot_at(Slot(14)), Some(b(1)));
        assert_eq!(log.ballot_at(Slot(12)), None);
        // A leader's snapshot that disagrees replaces everything.
        log.install(SnapshotMeta {
            slot: Slot(16),
            ballot: b(4),
        });
        assert_eq!(log.last_slot(), Slot(16));
        assert!(log.get(Slot(16)).is_none() && log.cached_from(Slot(17), 1) == Some(Vec::new()));
        assert_eq!(log.ballot_at(Slot(16)), Some(b(4)));
    }

    #[test]
    fn an_agreeing_snapshot_keeps_the_records_after_it() {
        let mut log = MemLog::new(SnapshotMeta::default());
        for s in 1..=8 {
            log.append(rec(s, 1));
        }
        log.install(SnapshotMeta {
            slot: Slot(5),
            ballot: b(1),
        });
        assert_eq!(log.last_slot(), Slot(8));
        assert!(log.get(Slot(5)).is_none() && log.get(Slot(6)).is_some());
        assert_eq!(log.ballot_at(Slot(7)), Some(b(1)));
    }
}
