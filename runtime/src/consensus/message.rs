//! The messages replicas of one group exchange. The shell frames and routes
//! them (it knows the sender and the group); here they are plain values.

use crate::durability::{LogRecord, SnapshotMeta};
use crate::types::{Ballot, Slot};

/// Payload bytes of records in one `Accept` (at least one record is always
/// sent, however big).
pub const MESSAGE_RECORD_BYTES_MAX: usize = 1 << 20;
/// Bytes of snapshot in one `Snapshot` message.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Would you promise `ballot` to me? Changes nothing at the receiver.
    PreVote {
        ballot: Ballot,
        last_slot: Slot,
        last_ballot: Ballot,
    },
    PreVoteReply {
        ballot: Ballot,
        granted: bool,
        /// The receiver's promised ballot, so a refused candidate can pick
        /// a higher round next time.
        promised: Ballot,
    },
    /// Phase 1: promise `ballot` to me and accept nothing below it.
    /// `transfer_of` is the ballot of the leader that handed leadership to
    /// the sender (`TimeoutNow`), else `Ballot::default()`: a replica loyal
    /// to exactly that leader may promise anyway, since that leader gave up
    /// its lease when it asked.
    Elect {
        ballot: Ballot,
        last_slot: Slot,
        last_ballot: Ballot,
        transfer_of: Ballot,
    },
    /// From the leader of `ballot` to a follower whose log matches its
    /// own: start an election now (leadership transfer).
    TimeoutNow { ballot: Ballot },
    /// Phase 1 answer: promised (durably) to `ballot`.
    Promise { ballot: Ballot },
    /// Phase 2 (and heartbeat, with no records): accept `records`, which
    /// follow the record at `prev_slot` accepted in `prev_ballot`.
    Accept {
        ballot: Ballot,
        prev_slot: Slot,
        prev_ballot: Ballot,
        records: Vec<LogRecord>,
        /// The leader's chosen watermark.
        chosen: Slot,
        /// The leader's clock when it sent this (echoed, for its lease).
        sent_us: u64,
    },
    /// Answer to `Accept`: the receiver's log matches the leader's up to
    /// `matched` (records durable), or, when `matched` is None, it does not
    /// match at `prev_slot`: try again from `hint + 1`.
    Accepted {
        ballot: Ballot,
        matched: Option<Slot>,
        hint: Slot,
        sent_us: u64,
    },
    /// Part of the leader's snapshot, for a replica too far behind to catch
    /// up from the log. Chunks come in order; `done` on the last.
    Snapshot {
        ballot: Ballot,
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
        sent_us: u64,
    },
    /// Answer to a snapshot chunk: received up to `offset`; with `done`,
    /// installed (and then `Accepted` semantics apply at `meta.slot`).
    SnapshotAck {
        ballot: Ballot,
        meta: SnapshotMeta,
        offset: u64,
        done: bool,
        sent_us: u64,
    },
    /// Your ballot is below one I promised.
    Reject { promised: Ballot },
}

impl Message {
    /// The ballot a message speaks for (for `Reject`, the higher one).
    pub fn ballot(&self) -> Ballot {
        match self {
            Message::PreVote { ballot, .. }
            | Message::PreVoteReply { ballot, .. }
            | Message::Elect { ballot, .. }
            | Message::Promise { ballot }
            | Message::TimeoutNow { ballot }
            | Message::Accept { ballot, .. }
            | Message::Accepted { ballot, .. }
            | Message::Snapshot { ballot, .. }
            | Message::SnapshotAck { ballot, .. } => *ballot,
            Message::Reject { promised } => *promised,
        }
    }

    /// Payload bytes carried (records or snapshot data).
    pub fn payload_bytes(&self) -> usize {
        match self {
            Message::Accept { records, .. } => records.iter().map(|r| r.payload.len()).sum(),
            Message::Snapshot { data, .. } => data.len(),
            _ => 0,
        }
    }
}
