//! The storage a replica's Paxos log lives in, as the consensus core and
//! the partition see it: a synchronous trait, called only by the thread that
//! owns the replica's disk (the node's log writer; the simulator's one
//! thread).
//!
//! Implemented by `Log` over any `Fs`: the real one (a cap-std `Dir`) and
//! the simulated disk (`SimFs`), so the simulator runs the same log code,
//! recovery included, that the node does.
//!
//! ```text
//!   set_vote ----------------------------> vote file (durable on return)
//!   append* / truncate_after -> buffer --sync--> segments (durable)
//!   install_snapshot(meta, bytes) -------> snap file (durable), covered records dropped
//!   read(from) / read_snapshot / vote ---> what a restart or a lagging peer needs
//! ```

use super::DurabilityError;
use crate::types::{Ballot, Slot};
use std::sync::Arc;

/// One record of the log: an entry accepted at `slot` in `ballot`.
/// `payload` is an encoded `Entry` (opaque to the log), or empty: a
/// consensus no-op, stored and read back like any other record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub slot: Slot,
    /// The ballot the record was accepted in.
    pub ballot: Ballot,
    pub payload: Arc<[u8]>,
}

/// What a replica must remember besides its log: the highest ballot it
/// promised. Never goes back, across crashes included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vote {
    pub promised: Ballot,
}

/// Which state a snapshot holds: everything up to and including `slot`,
/// whose record was accepted in `ballot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    pub slot: Slot,
    pub ballot: Ballot,
}

/// A replica's durable state. After any `Err` the storage is in an unknown
/// state: the replica must stop (the node exits; the simulator crashes the
/// replica) and reopen it.
pub trait Storage {
    /// The vote persisted last (the default when none was ever written).
    fn vote(&self) -> Vote;

    /// Persists `vote`; it is durable when this returns (no I/O when it is
    /// the vote already held). A vote never goes back: a lower one is a
    /// broken invariant (asserted).
    fn set_vote(&mut self, vote: Vote) -> Result<(), DurabilityError>;

    /// The snapshot the log continues from, if any.
    fn snapshot_meta(&self) -> Option<SnapshotMeta>;

    /// The last slot appended; the snapshot's slot (or 0) when no record
    /// follows it.
    fn last_slot(&self) -> Slot;

    /// The last slot known durable (synced), or the snapshot's slot when
    /// that is higher.
    fn durable_slot(&self) -> Slot;

    /// Buffers `record`, whose slot must be `last_slot() + 1` (asserted).
    /// Not durable until `sync`. A payload over `PAYLOAD_BYTES_MAX` is
    /// `TooLarge`, and the log is unchanged.
    ///
    /// Persist a promise (`set_vote`) before appending records of a ballot
    /// above the default: a restart refuses a directory that has no vote
    /// file while its log holds such records (`VoteMissing`), since that
    /// looks like a lost promise.
    fn append(&mut self, record: &LogRecord) -> Result<(), DurabilityError>;

    /// Writes what is buffered without an fsync: survives a process crash,
    /// not an OS crash.
    fn flush(&mut self) -> Result<(), DurabilityError>;

    /// Writes what is buffered and fsyncs: everything appended (and every
    /// truncation) survives a crash once this returns.
    fn sync(&mut self) -> Result<(), DurabilityError>;

    /// `sync`, then records that the log was closed here (on disk: the
    /// durable mark), so a later open refuses a log that lost records up
    /// to its last slot or has any torn tail. An append after it takes the
    /// record back first.
    fn close_clean(&mut self) -> Result<(), DurabilityError> {
        self.sync()
    }

    /// Drops every record after `slot` (which must be at least the
    /// snapshot's slot and at most `last_slot()`, asserted); appends
    /// continue at `slot + 1`. Durable with the next `sync`; a crash before
    /// then recovers the old log, or a prefix of it no shorter than `slot`,
    /// or the new one (records after `slot` are never a mix of both).
    fn truncate_after(&mut self, slot: Slot) -> Result<(), DurabilityError>;

    /// Records from `from` on, in slot order, about `bytes_max` of payload
    /// (always at least one record when `from <= last_slot()`, none when
    /// `from > last_slot()`, at most `READ_RECORDS_MAX`). `from` must be
    /// after the snapshot's slot: older records are gone (`Compacted`: send
    /// the snapshot instead).
    fn read(&mut self, from: Slot, bytes_max: usize) -> Result<Vec<LogRecord>, DurabilityError>;

    /// The newest snapshot, as the bytes `install_snapshot` was given
    /// (every frame's CRC checked).
    fn read_snapshot(&mut self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, DurabilityError>;

    /// Writes `bytes` (a snapshot from `snapshot::encode` holding `meta`;
    /// its frames are checked, and another meta is `SnapshotMismatch`)
    /// durably, then drops the records it covers (up to `meta.slot`). When
    /// the log ends before `meta.slot` (a follower catching up, maybe just
    /// after `truncate_after`) it is emptied and continues at
    /// `meta.slot + 1`; records after `meta.slot` are kept (the caller
    /// truncates them if they do not follow the snapshot's history).
    /// `meta.slot` must be at least the current snapshot's (asserted).
    /// Durable when this returns: a crash inside recovers the old state or
    /// the new one.
    fn install_snapshot(&mut self, meta: SnapshotMeta, bytes: &[u8])
        -> Result<(), DurabilityError>;

    /// `install_snapshot` of the snapshot a stager (`Log::stager`) wrote
    /// aside for `meta`: only the rename and what follows it, quick
    /// however large the snapshot. An error if none was staged.
    fn install_staged(&mut self, meta: SnapshotMeta) -> Result<(), DurabilityError>;

    /// Record bytes after the newest snapshot: what a restart would replay.
    fn bytes_since_snapshot(&self) -> u64;

    /// Files that installing a snapshot made old and left to remove (see
    /// `Log::defer_removals`), oldest first; empty unless deferred.
    fn take_removals(&mut self) -> Vec<String>;

    /// Why the disk has no room for more of the log, while so: what is
    /// appended still fits in the space set aside before (`Reserve`), but
    /// no more should be asked of it (see `node::writer`).
    fn space_short(&self) -> Option<String>;

    /// Tries again to set space aside, so `space_short` clears once the
    /// disk has room. An error is an I/O failure other than a full disk.
    fn retry_reserve(&mut self) -> Result<(), DurabilityError>;
}
