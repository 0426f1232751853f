//! One partition's durable state on disk: the log of committed entries in
//! CRC-checked segment files, and periodic snapshots that let old segments go.
//!
//! Owns: the record format and its codec (`record`), the segment files with
//! append, sync, recovery and compaction (`log`), snapshot files (`snapshot`),
//! and replaying logged writes into an engine (`apply`).
//! `Fs` is the seam every file operation will go through: `DirFs` on the
//! real disk, `SimFs` (a simulated disk that crashes on demand) in tests.
//! Must not: touch any path except through the `cap_std::fs::Dir` it is given,
//! assign lsns (the caller does), or know about consensus: a record is
//! self-contained (tables are named, never numbered), so the same bytes can be
//! replicated later.
//!
//! ```text
//!   encode_entry / encode_commit --bytes--> Log::append --> buffer
//!   Log::flush (write) / Log::sync (write + fsync) --> log-<first lsn>.seg
//!   Log::write_snapshot --> snap-<lsn>.snap, then old segments removed
//!   Log::open --> newest snapshot + entries after it (+ torn tail cut off)
//! ```
//!
//! # Layouts (all integers little-endian)
//!
//! Record (`RECORD_BYTES_MAX` bounds `len`):
//! ```text
//!   len: u32 (= 8 + payload bytes) | crc: u32 (CRC-32 of lsn..end) | lsn: u64 | payload
//! ```
//! Payload: `tag u8` then
//! ```text
//!   1 Commit: tenant u32, writes
//!   2 Multi:  txn u64, tenant u32, body tag u8:
//!             1 Writes: writes | 2 Ddl: str | 3 Deploy: str name, bytes wasm | 4 DropModule: str
//!   writes = count u32, ops;  op = kind u8 (1 insert, 2 update, 3 delete), str table,
//!            row (insert, delete) or row old, row new (update)
//!   row    = count u32, values;  str, bytes = len u32, then the bytes (str is UTF-8)
//!   value  = tag u8: 0 Null | 1 false | 2 true | 3 Int i64 | 4 Double (f64 bits) |
//!            5 Decimal (16 bytes, rust_decimal::Decimal::serialize) | 6 Text str |
//!            7 Bytes bytes | 8 Timestamp i64
//! ```
//! Segment file `log-<first lsn, 20 digits>.seg`: a 20-byte header
//! `magic "OHMLOG\0\0" | version u32 (1) | first lsn u64`, then records in lsn
//! order. A segment's records continue the previous segment's without a gap.
//!
//! Snapshot file `snap-<lsn, 20 digits>.snap` (written as `.tmp`, then
//! renamed): a 12-byte header `magic "OHMSNAP\0" | version u32 (1)`, then
//! frames `len u32 | crc u32 (CRC-32 of payload) | payload`, each payload a
//! `kind u8` and its fields, in this order:
//! ```text
//!   1 Begin:  lsn u64, mp_txn_max u64, tenants u32
//!   per tenant:  2 Tenant: tenant u32, tables u32, views u32, modules u32
//!     per table: 3 Table: schema, rows u64;  then 4 Rows: count u32, rows ... until all rows
//!     per view:  5 View: str name, columns u32 + strs, str query (SQL)
//!     per module: 6 Module: str name, bytes wasm
//!   7 End: total rows u64
//!   schema = str name, columns u32 + (str name, type, nullable u8, default: u8 0 | 1 value),
//!            primary key u32 (u32::MAX = none), indexes u32 + (str name, columns u32 + u32s,
//!            unique u8, kind u8 (1 hash, 2 ordered)), partition column u32 (u32::MAX = none)
//!   type   = u8: 1 SMALLINT 2 INTEGER 3 BIGINT 4 DOUBLE 5 DECIMAL(p u8, s u8)
//!            6 VARCHAR(opt) 7 VARBINARY(opt) 8 BOOLEAN 9 TIMESTAMP;  opt = u8 0 | 1 u32
//! ```
//!
//! Recovery: a partial or CRC-failing record at the end of the last segment,
//! with nothing valid after it, is a torn tail (cut off and reported);
//! anything else wrong is `DurabilityError::Corrupt` naming file and offset.

mod apply;
mod fs;
mod log;
mod record;
mod sim_fs;
mod snapshot;
mod storage;

#[cfg(test)]
mod tests_log;
#[cfg(test)]
mod tests_snapshot;

pub use apply::{apply, ApplyError};
pub use fs::{DirFs, Fs, FsFile};
pub use log::{Log, LogOptions, Recovered, TornTail};
pub use record::{
    decode_entry, encode_commit, encode_entry, Entry, LoggedOp, LoggedWrites, MultiBody,
    RecordTooLarge, RECORD_BYTES_MAX,
};
pub use sim_fs::{CrashReport, CrashedFile, SimFile, SimFs, SimFsStats, GARBLED_TAIL_BYTES};
pub use snapshot::{LoadedSnapshot, LoadedTenant, SnapshotInfo, TenantImage};
pub use storage::{LogRecord, SnapshotMeta, Storage, Vote};

use thiserror::Error;

/// A log sequence number: the position of an entry in one partition's log.
/// Assigned by the caller, 1, 2, 3, ... with no gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Lsn(pub u64);

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why the log or a snapshot could not be read or written.
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
    /// The snapshot's state could not be rebuilt (a table or view refused).
    #[error("cannot restore snapshot {file}: {what}")]
    Restore { file: String, what: String },
    /// Every entry a snapshot covers must already be durable in the log.
    #[error("snapshot at lsn {lsn} asked for, but only lsn {durable} is durable")]
    SnapshotAhead { lsn: Lsn, durable: Lsn },
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

/// Fsyncs the directory itself, so created, renamed and removed names survive
/// an OS crash. (The `Dir`'s own descriptor may be `O_PATH`, which cannot be
/// fsynced, so "." is opened through it.)
fn sync_dir(dir: &cap_std::fs::Dir) -> Result<(), DurabilityError> {
    let file = dir.open(".").map_err(io_err(".", "open dir"))?;
    file.sync_all().map_err(io_err(".", "fsync dir"))
}

/// The length of the whole record at the start of `bytes` (as produced by
/// `encode_entry`/`encode_commit`: a `len` field counting the bytes after
/// `len` and `crc`). For the node's own buffers, never for bytes read back.
pub fn record_len(bytes: &[u8]) -> usize {
    let len: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .expect("a record starts with its length");
    8 + u32::from_le_bytes(len) as usize
}
