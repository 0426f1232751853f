//! Disk space set aside ahead of the log's end, so that a disk filling up
//! is noticed while the log can still take every record its partition has
//! already run: the log never runs out of space part-way through a record.
//!
//! Owns: `Reserve`, the space set aside in the log's current segment
//! (`FsFile::reserve`: `fallocate` with `FALLOC_FL_KEEP_SIZE`, so the
//! file's length, and recovery, are as without it), and whether the disk
//! refused more (`short`). Must not: write records, or decide anything for
//! the partition: the writer reports `short`, and the partition refuses
//! writes until it clears (see `node::writer`).
//!
//! ```text
//!   flush (write up to end) ─▶ ahead(end): set aside up to end + reserve bytes
//!        ok  → short = None          ENOSPC/EDQUOT → short = Some(why)
//!   rotate: the new segment is set aside before it is used (else the
//!           current one goes on past its size); the old one's rest given back
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
    /// Set aside up to this offset of the current segment.
    to: u64,
    /// Why no more could be set aside (the disk is full), while so.
    short: Option<String>,
    /// The file system cannot set space aside: not tried again.
    unsupported: bool,
}

impl Reserve {
    pub(super) fn new(bytes: u64) -> Reserve {
        Reserve {
            bytes,
            to: 0,
            short: None,
            unsupported: bytes == 0,
        }
    }

    /// Before the current segment (`file`, named `name`) is written up to
    /// `end`: space set aside to `bytes` past it, if the disk
    /// has it (if not, `short` says so, and what was set aside before is
    /// what is left).
    pub(super) fn ahead<F: FsFile>(
        &mut self,
        file: &mut F,
        name: &str,
        end: u64,
    ) -> Result<(), DurabilityError> {
        // While short, more is asked for each time: that is how room
        // coming back (or a segment that could not be begun) is noticed.
        if self.unsupported || (self.short.is_none() && self.to >= end + self.bytes) {
            return Ok(());
        }
        let target = (end + self.bytes).max(self.to) + self.bytes / 4;
        match file.reserve(self.to, target - self.to) {
            Ok(()) => {
                self.to = target;
                self.short = None;
                Ok(())
            }
            Err(e) if is_no_space(&e) => {
                self.short = Some(format!("setting aside space in {name}: {e}"));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                self.unsupported = true;
                eprintln!(
                    "ohm: {name}: this file system cannot set space aside ({e}); \
                     if the disk fills, the node stops rather than refusing writes"
                );
                Ok(())
            }
            Err(e) => Err(io_err(name, "set aside space in")(e)),
        }
    }

    /// The current segment ends at `end` and another takes over: what was
    /// set aside past `end` is given back (a failure only leaves it used).
    pub(super) fn give_back<F: FsFile>(&mut self, file: &mut F, end: u64) {
        if self.to > end {
            let _ = file.unreserve(end, self.to - end);
        }
        self.to = 0;
    }

    /// A new current segment, with `to` bytes set aside (`create_segment`).
    pub(super) fn took_over(&mut self, to: u64) {
        self.to = to;
    }

    /// The current segment was replaced or cut (which frees what was set
    /// aside past the cut): set aside again at the next write.
    pub(super) fn reset(&mut self) {
        self.to = 0;
    }

    /// Why the disk has no room for more of the log, while so.
    pub(super) fn short(&self) -> Option<&str> {
        self.short.as_deref()
    }

    /// A new segment could not be set aside: the current one goes on.
    pub(super) fn note_short(&mut self, why: String) {
        self.short = Some(why);
    }

    /// Whether space can be set aside on this file system at all.
    pub(super) fn supported(&self) -> bool {
        !self.unsupported
    }
}
