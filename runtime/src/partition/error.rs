//! Why a call on a partition did not succeed, as the partition knows it
//! (the node turns these into protocol errors; the simulator records them
//! in its histories).

use crate::types::NodeId;
use crate::wasm::ProcError;
use thiserror::Error;

/// A failed call. Whether it may have taken effect matters to a client that
/// retries: see `CallError::outcome_unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CallError {
    /// The procedure failed; nothing it did is visible.
    #[error("{0}")]
    Proc(ProcError),
    /// The call committed in memory but its record is over the size limit;
    /// it was undone.
    #[error("procedure {procedure}: {message}")]
    TooLarge { procedure: String, message: String },
    /// A bug in the node while running the call (caught; rolled back).
    #[error("procedure {procedure} hit a bug in the node (rolled back; the node keeps serving)")]
    Internal { procedure: String },
    /// This replica does not lead its group: nothing was done.
    #[error("this replica is not the partition's leader{}", leader.map_or(String::new(), |l| format!(" (the leader is {l})")))]
    NotLeader { leader: Option<NodeId> },
    /// Leadership was lost after the call ran and before its record was
    /// chosen: it may or may not take effect.
    #[error("leadership of the partition changed before the call was known to be durable; it may or may not have taken effect")]
    OutcomeUnknown,
    /// The partition stopped (`why`: its log could not be written, ...)
    /// before the call was known to be durable.
    #[error("the partition stopped before this call was known to be durable ({why}); {}", if *maybe_applied { "it may or may not have taken effect" } else { "it was not applied" })]
    Stopped { why: String, maybe_applied: bool },
    /// A call with this idempotency key was applied before; its answer
    /// was too big to keep (`kept::KEPT_ANSWER_BYTES_MAX`). Nothing was
    /// done this time.
    #[error("procedure {procedure}: a call with idempotency key {key:?} was already applied; its answer was too big to keep, so it cannot be repeated (nothing was done this time)")]
    AnswerNotKept { procedure: String, key: String },
    /// The partition waits for the outcome of a coordinator transaction
    /// whose coordinator went away (see `partition::decide`); nothing was
    /// done.
    #[error("partition {partition} is settling the outcome of multi-partition transaction {txn}, whose coordinator changed; nothing was done: retry shortly")]
    InDoubt { partition: u32, txn: u64 },
    /// The partition's disk has no room for its log (`why` says which
    /// file): a call that writes is refused while so; nothing was done.
    #[error("{why}: the disk is full, so writes are refused until there is room again; nothing was done (reads go on)")]
    DiskFull { why: String },
    /// Too much is waiting on this partition; nothing was done.
    #[error("the partition is overloaded: {0}; retry shortly")]
    Overloaded(String),
    /// A single-partition call wrote where its partition may not (a row
    /// another partition owns, or a replicated table); rolled back.
    #[error("procedure {procedure} runs on one partition and {what}; nothing it did was kept (write that from a multi-partition procedure, or route the call by the row's partition column)")]
    WrongPartition { procedure: String, what: String },
    /// The call would take the tenant past a quota (rows on this
    /// partition); rolled back.
    #[error("procedure {procedure}: {quota}")]
    Quota {
        procedure: String,
        quota: crate::catalog::QuotaError,
    },
}

impl CallError {
    /// Whether the call may have taken effect.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            CallError::OutcomeUnknown
                | CallError::Stopped {
                    maybe_applied: true,
                    ..
                }
        )
    }
}
