//! Disk space set aside ahead of the log's end, so that a disk filling up
//! is noticed while the log can still take every record its partition has
//! already run: the log never runs out of space part-way through a record.
//!
//! Owns: `Reserve`, the space set aside in the log's current segment
//! (`FsFile::reserve`: `fallocate` with `FALLOC_FL_KEEP_SIZE`, so the
//! file's length, and recovery, are as without it), and whether the disk
//! refused more (`short`) or a new segment (`blocked`). Must not: write
//! records, print, or decide anything for the partition: the writer reports
//! `Log::space_short`, and the partition refuses writes until it clears
//! (see `node::writer`).
//!
//! ```text
//!   flush (write up to end) ─▶ ahead(end): set aside up to end + reserve bytes
//!        ok  → short = None          ENOSPC/EDQUOT → short = Some(why)
//!   rotate: the new segment is set aside before it is used, then the old
//!           one's rest given back; no room → blocked: the current segment
//!           goes on past its size until the writer's retry begins one
//! ```

use super::fs::{is_no_space, FsFile};
use super::{io_err, DurabilityError};

/// Bytes set aside past the end of what is written. It must hold what a
/// partition may have run but not yet written when the disk fills: about
/// one group of writes normally; at most `consensus::UNCHOSEN_BYTES_MAX`
/// (a burst past this reserve at that moment still stops the partition,
/// as any write error does, with nothing acknowledged lost).
pub const LOG_RESERVE_BYTES: u64 = 64 << 20;

/// The space set aside in the log's current segment.
#[derive(Debug)]
pub(super) struct Reserve {
    /// How much to keep set aside past the end (`LogOptions`); a quarter
    /// more is set aside at a time, so most flushes need no call to the
    /// file system.
    bytes: u64,
    /// The byte offset of the current segment up to which space is set
    /// aside.
    reserved_to: u64,
    /// Why no more could be set aside (the disk is full), while so.
    short: Option<String>,
    /// Why a new segment could not be begun (the disk is full), while so:
    /// the current one goes on past its size until one can be.
    blocked: Option<String>,
    /// Why the file system cannot set space aside, once found (then it is
    /// not tried again).
    unsupported: Option<String>,
}

impl Reserve {
    /// Keeps `bytes` set aside (0: none, as on a file system without it).
    pub(super) fn new(bytes: u64) -> Reserve {
        Reserve {
            bytes,
            reserved_to: 0,
            short: None,
            blocked: None,
            unsupported: (bytes == 0).then(|| "no space is to be set aside".to_string()),
        }
    }

    /// Before the current segment (`file`, named `name`) is written up to
    /// `end`: space set aside to `bytes` past it, if it has less and the
    /// disk has room (if not, `short` says so, and what was set aside
    /// before is what is left; the next call asks again).
    pub(super) fn ahead<F: FsFile>(
        &mut self,
        file: &mut F,
        name: &str,
        end: u64,
    ) -> Result<(), DurabilityError> {
        if self.unsupported.is_some() || self.reserved_to >= end + self.bytes {
            return Ok(());
        }
        let target = end + self.bytes + self.bytes / 4;
        match file.reserve(self.reserved_to, target - self.reserved_to) {
            Ok(()) => {
                self.reserved_to = target;
                self.short = None;
                Ok(())
            }
            Err(e) if is_no_space(&e) => {
                self.short = Some(format!("setting aside space in {name}: {e}"));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                self.unsupported = Some(format!("{name}: {e}"));
                Ok(())
            }
            Err(e) => Err(io_err(name, "set aside space in")(e)),
        }
    }

    /// The current segment ends at `end` and another took over: what was
    /// set aside past `end` is given back (a failure only leaves it used).
    pub(super) fn give_back<F: FsFile>(&mut self, file: &mut F, end: u64) {
        if self.reserved_to > end {
            let _ = file.unreserve(end, self.reserved_to - end);
        }
        self.reserved_to = 0;
    }

    /// A new current segment, with `reserved` bytes set aside
    /// (`create_segment`): segments can be begun again.
    pub(super) fn took_over(&mut self, reserved: u64) {
        self.reserved_to = reserved;
        self.blocked = None;
    }

    /// The current segment was replaced or cut (which frees what was set
    /// aside past the cut): set aside again at the next write.
    pub(super) fn reset(&mut self) {
        self.reserved_to = 0;
    }

    /// Why the disk has no room for more of the log, while so.
    pub(super) fn short(&self) -> Option<&str> {
        self.short.as_deref().or(self.blocked.as_deref())
    }

    /// A new segment could not be begun for want of room: the current one
    /// goes on (`blocked`).
    pub(super) fn block(&mut self, why: String) {
        self.blocked = Some(why);
    }

    /// Whether beginning a new segment failed for want of room, and has
    /// not been tried again since.
    pub(super) fn blocked(&self) -> bool {
        self.blocked.is_some()
    }

    /// Bytes to set aside in a new segment (0 where that cannot be done).
    pub(super) fn for_new_segment(&self) -> u64 {
        if self.unsupported.is_some() {
            0
        } else {
            self.bytes
        }
    }

    /// Why space cannot be set aside on this file system, if it cannot.
    pub(super) fn unsupported(&self) -> Option<&str> {
        self.unsupported.as_deref()
    }
}
