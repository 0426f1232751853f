//! The partition: one slice of every tenant's partitioned tables (and a
//! copy of the replicated ones), as one replica holds it. Sans-IO.
//!
//! ```text
//!   call / hold / release / resume ─┐
//!   tick(now) / step(msg) ──────────┼─▶ PartitionCore ─ready()─▶ records to persist,
//!   persisted(seq) / reads ─────────┘   (state + Paxos)          messages, replies,
//!                                                                 lent state, fatal
//! ```
//!
//! Owns: `PartitionState` (every tenant's engine, procedures, module
//! bytes and kept calls here), `PartitionCore` (runs calls when leading, applies chosen
//! records when following, holds replies until chosen, lends its state to
//! the node's coordinator, snapshots) and the `Procedures` trait through
//! which it runs procedures.
//! Must not: import tokio, quinn or wasmtime (procedures come in through
//! `ProcRuntime`); read a clock or draw randomness (they come in); share
//! its state behind a lock (it is owned by one core, and lent whole);
//! name wire types; stop the process (a fatal state is a value).
//!
//! A partition replica owns its consensus core: the leader executes calls
//! and proposes their write-sets; followers apply chosen write-sets and
//! never run Wasm.

pub mod core;
pub mod decide;
pub mod error;
pub mod exec;
mod hold;
pub mod kept;
pub mod lease;
pub mod procs;
mod recover;
pub mod replies;
mod snapshots;
pub mod state;

pub use self::core::{
    CoreConfig, Now, PartitionCore, Ready, WriteBatch, CALLS_WAITING_MAX, SNAPSHOT_RETRY_US,
    SNAPSHOT_STEP_BYTES,
};
pub use decide::Committed;
pub use error::CallError;
pub use lease::{Lease, LentCall, Ran};
pub use procs::{ProcRuntime, Procedures};
pub use recover::{persist, write_batch};
pub use replies::CallResult;
pub use state::{PartitionState, ReplayError, TenantPart};
