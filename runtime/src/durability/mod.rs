//! One partition replica's durable state on disk: the Paxos log of records
//! in CRC-checked segment files, the vote (the promised ballot), and
//! snapshots that let old segments go. Everything goes through an `Fs`: the
//! real disk (`DirFs`, a cap-std `Dir`) or the simulated one (`SimFs`), so
//! the simulator runs the same log code, recovery included.
//!
//! Owns: the payload codec (`record`: `Entry`, `encode_entry`, the
//! allocation-free `encode_commit`, `decode_entry`) and the record frame
//! (`frame`),
//! segment files with append, sync, truncation, reads and recovery (`log`,
//! `segment`, `log_storage`), the space set aside ahead of the log
//! (`reserve`), removing files a snapshot made old (inline, or by a
//! `Remover` on another thread), the vote file (`vote`), the snapshot codec
//! (`snapshot`: `encode`/`decode` of bytes), the `Storage` trait the
//! consensus core drives (`storage`), the `Fs` seam (`fs`, `sim_fs`), and
//! replaying logged writes into an engine (`apply`).
//! Must not: touch any path except through its `Fs`, assign slots (the
//! caller does), or know about consensus beyond storing what it is given: a
//! record is self-contained (tables are named, never numbered), so the same
//! bytes are replicated.
//!
//! ```text
//!   encode_entry / encode_commit --payload--> LogRecord { slot, ballot, payload }
//!   Storage::append --> buffer --flush (write) / sync (write + fsync)--> log-<first slot>.seg
//!   Storage::set_vote --> vote (durable on return)
//!   snapshot::encode --bytes--> Storage::install_snapshot --> snap-<slot>.snap, covered segments removed
//!                               (or handed out by take_removals, for a Remover)
//!   Log::open --> vote, newest snapshot's meta, segments checked (torn tail cut)
//!   Storage::read / read_snapshot --> records and snapshot bytes (restart, lagging peer)
//! ```
//!
//! # Layouts (all integers little-endian)
//!
//! Record, version 2 (`RECORD_BYTES_MAX` bounds `len`):
//! ```text
//!   len: u32 (= 20 + payload bytes) | crc: u32 (CRC-32 of slot..end) |
//!   slot: u64 | ballot round: u64 | ballot node: u32 | payload
//! ```
//! Record, version 1 (read only; its ballot reads as `Ballot::default()`):
//! ```text
//!   len: u32 (= 8 + payload bytes) | crc: u32 (CRC-32 of slot..end) | slot: u64 | payload
//! ```
//! Payload (may be empty: a consensus no-op; otherwise an `Entry`): `tag u8` then
//! ```text
//!   1 Commit: tenant u32, writes
//!   2 Multi:  txn u64, tenant u32, body tag u8:
//!             1 Writes: writes | 2 Ddl: str | 3 Deploy: str name, bytes wasm | 4 DropModule: str
//!             | 5 KeptWrites: kept, writes
//!             | 6 CreateTenant: tenant record (partition 0, in a cluster)
//!             | 7 SetQuota: quotas (every partition; the tenant's whole set)
//!             | 8 Principal: principal change (partition 0, in a cluster)
//!   3 KeptCommit: tenant u32, kept, writes   (a call that came with an idempotency key)
//!   4 Decide: txn u64, outcome u8 (0 abort, 1 commit)   (of coordinator transaction txn)
//!   5 Share:  as 2 Multi: a share of a two-phase commit, applied once its outcome is known
//!   tenant record = id u32, str name, str principal, admin u8, token SHA-256 (32 bytes)
//!   quotas = count u32, then (str name, value u64) each (`catalog::QuotaField` names)
//!   principal change = tenant u32, str name, role u8 (0: revoked, and nothing
//!            follows; 1 admin, 2 owner, 3 deployer, 4 caller, 5 reader), token
//!            SHA-256 (32 bytes), and for a caller: count u32, str procedure each
//!   kept   = str key, answer;  answer = u8 0 (not kept: too big) | 1 value |
//!            2 columns u32 + (str name, u8 0 | 1 type), rows u32 + rows
//!   writes = count u32, ops;  op = kind u8 (1 insert, 2 update, 3 delete), str table,
//!            row (insert, delete) or row old, row new (update)
//!   row    = count u32, values;  str, bytes = len u32, then the bytes (str is UTF-8)
//!   value  = tag u8: 0 Null | 1 false | 2 true | 3 Int i64 | 4 Double (f64 bits) |
//!            5 Decimal (16 bytes, rust_decimal::Decimal::serialize) | 6 Text str |
//!            7 Bytes bytes | 8 Timestamp i64 | 9 TimestampTz i64 (UTC) |
//!            10 Date i32 (days since 1970-01-01) | 11 Time i64 (µs since
//!            midnight, 0..=86400000000) | 12 Interval (months i32, days i32,
//!            µs i64) | 13 Uuid (16 bytes)
//! ```
//! Segment file `log-<first slot, 20 digits>.seg` (created as `.seg.tmp`,
//! synced, renamed): a 20-byte header `magic "OHMLOG\0\0" | version u32 (2;
//! 1 is still read) | first slot u64`, then records of that version in slot
//! order. A segment's records continue the previous segment's without a
//! gap. Records are only appended to a version-2 segment: a log whose last
//! segment is version 1 starts a new segment at its next append.
//!
//! Vote file `vote` (written as `vote.tmp`, synced, renamed): 28 bytes,
//! `magic "OHMVOTE\0" | version u32 (1) | ballot round u64 | ballot node u32 |
//! crc u32 (CRC-32 of the bytes before it)`. None means the default vote.
//!
//! Snapshot file `snap-<slot, 20 digits>.snap` (written as `.snap.tmp`, or
//! for one taken here as `.snap.staged.tmp` by a `Stager`, synced, renamed): a 12-byte header `magic "OHMSNAP\0" | version u32 (8;
//! 1 to 7 are still read)`, then frames `len u32 | crc u32 (CRC-32 of payload) |
//! payload`, each payload a `kind u8` and its fields, in this order:
//! ```text
//!   1 Begin:  slot u64, ballot round u64, ballot node u32 (version 2 only), mp_txn_max u64, tenants u32
//!   9 Committed (version 4): floor u64, count u32, txns u64 (partition 0's
//!            committed coordinator transactions from floor on; see partition::decide)
//!   10 Tenants (version 5): count u32, tenant records (partition 0 in a cluster: the
//!            tenants created since `ohm cluster init`); then (version 7) count u32,
//!            principal changes (the principals created or revoked since then)
//!   per tenant:  2 Tenant: tenant u32, tables u32, views u32, modules u32, kept u32 (version 3),
//!                quotas (version 6; as in a record)
//!     per table: 3 Table: schema, rows u64;  then 4 Rows: count u32, rows ... until all rows
//!     per view:  5 View: str name, columns u32 + strs, str query (SQL)
//!     per module: 6 Module: str name, bytes wasm
//!     per kept call (oldest first): 8 Kept: kept (as in a record)
//!   7 End: total rows u64
//!   schema = str name, columns u32 + (str name, type, nullable u8, default: u8 0 | 1 value),
//!            primary key u32 (u32::MAX = none), indexes u32 + (str name, columns u32 + u32s,
//!            unique u8, kind u8 (1 hash, 2 ordered)), partition column u32 (u32::MAX = none),
//!            (version 8) foreign keys u32 + (str name, columns u32 + u32s, str parent,
//!            parent columns u32 + u32s)
//!   type   = u8: 1 SMALLINT 2 INTEGER 3 BIGINT 4 DOUBLE 5 DECIMAL(p u8, s u8)
//!            6 VARCHAR(opt) 7 VARBINARY(opt) 8 BOOLEAN 9 TIMESTAMP 10 TIMESTAMPTZ
//!            11 DATE 12 TIME 13 INTERVAL 14 UUID;  opt = u8 0 | 1 u32
//! ```
//!
//! Recovery: a partial or CRC-failing record at the end of the last segment,
//! with nothing valid after it, is a torn tail (cut off and reported);
//! anything else wrong is `DurabilityError::Corrupt` naming file and offset.
//! A segment missing between the snapshot and the rest is refused, never
//! guessed around. Segments holding only records the snapshot covers (a
//! compaction or an install a crash interrupted; a log that ends before the
//! snapshot) are not read, and go at the next snapshot installed. Leftover
//! `.tmp` files are removed. A missing vote file while a segment holds a
//! record of a ballot above the default is refused (`VoteMissing`).

mod apply;
mod frame;
mod fs;
mod log;
mod log_storage;
mod mark;
mod record;
mod reserve;
mod segment;
mod sim_fs;
pub mod snapshot;
mod storage;
mod vote;

#[cfg(test)]
mod tests_crash;
#[cfg(test)]
mod tests_log;
#[cfg(test)]
mod tests_snapshot;
#[cfg(test)]
mod tests_storage;

pub use apply::{apply, ApplyError};
pub use fs::{is_no_space, DirFs, Fs, FsFile};
pub use log::{
    check as check_log, DiskLog, Examined, Log, LogCheck, LogOptions, Opened, TornTail,
    APPEND_BUFFER_BYTES_MAX, DIR_ENTRIES_MAX,
};
pub use log_storage::{Remover, Stager, READ_RECORDS_MAX};
pub use record::{
    decision, decode_entry, deployed_module, encode_commit, encode_entry, mark_share, multi_txn,
    multi_writes_bytes, output_bytes, put_output, revoked_principal, share_txn, Entry, KeptCall,
    LoggedOp, LoggedWrites, MultiBody, RecordTooLarge, TenantRecord, PAYLOAD_BYTES_MAX,
    RECORD_BYTES_MAX,
};
pub use reserve::LOG_RESERVE_BYTES;
pub use segment::SEGMENT_FILE_BYTES_MAX;
pub use sim_fs::{CrashReport, CrashedFile, SimFile, SimFs, SimFsStats, GARBLED_TAIL_BYTES};
pub use snapshot::{LoadedSnapshot, LoadedTenant, TenantImage, FRAME_BYTES_MAX};
pub use storage::{LogRecord, SnapshotMeta, Storage, Vote};

use crate::types::{Ballot, Slot};
use thiserror::Error;

/// Why the log, the vote or a snapshot could not be read or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DurabilityError {
    #[error("{op} {file}: {source}")]
    Io {
        file: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Bad bytes that are not a torn tail: the node must not start on them.
    #[error("corrupt {file} at offset {offset}: {what}")]
    Corrupt {
        file: String,
        offset: u64,
        what: String,
    },
    /// The snapshot's state could not be encoded or rebuilt (a frame too
    /// big, a table or view refused).
    #[error("cannot restore snapshot {file}: {what}")]
    Restore { file: String, what: String },
    /// No vote file, but the log holds a record accepted in a ballot: the
    /// promise this replica made is lost, and answering as if it had never
    /// promised could let two values be chosen.
    #[error("no vote file, but {file} holds a record accepted in ballot {ballot}: the promise this replica made is lost; restore the vote file, or empty this replica's directory and let it catch up from its peers")]
    VoteMissing { file: String, ballot: Ballot },
    /// The log ends before the slot its durable mark says was durable:
    /// segments or records that were durable are gone.
    #[error(
        "the log ends at slot {end}, but every record up to slot {mark} was durable when the \
         node last {when}: segment files or records after slot {end} are missing or cut. \
         Nothing was changed; restore them from a backup (in a cluster, or empty this \
         replica's directory to have it catch up from its peers)",
        when = if *clean { "stopped cleanly" } else { "started" }
    )]
    LogShort { end: Slot, mark: Slot, clean: bool },
    /// A payload over `PAYLOAD_BYTES_MAX` was appended; the log is unchanged.
    #[error("record at slot {slot} has a payload of {bytes} bytes, over the limit of {PAYLOAD_BYTES_MAX}")]
    TooLarge { slot: Slot, bytes: usize },
    /// Records asked for that a snapshot replaced: send the snapshot instead.
    #[error("slot {from} is compacted into the snapshot at slot {snapshot}")]
    Compacted { from: Slot, snapshot: Slot },
    /// Snapshot bytes to install hold another slot or ballot than was said.
    #[error("snapshot bytes hold slot {} ballot {}, but slot {} ballot {} was to be installed", found.slot, found.ballot, meta.slot, meta.ballot)]
    SnapshotMismatch {
        meta: SnapshotMeta,
        found: SnapshotMeta,
    },
}

impl DurabilityError {
    /// Whether this is the disk (or a quota on it) being full.
    pub fn is_no_space(&self) -> bool {
        matches!(self, DurabilityError::Io { source, .. } if fs::is_no_space(source))
    }
}

/// Shorthand for an I/O error on `file`.
fn io_err<'a>(
    file: &'a str,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> DurabilityError + 'a {
    move |source| DurabilityError::Io {
        file: file.to_string(),
        op,
        source,
    }
}
