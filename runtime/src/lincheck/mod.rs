//! Linearizability checking of operation histories: did a concurrent
//! system behave as if each operation took effect atomically at one instant
//! between its call and its return, in an order a sequential model allows?
//!
//! Owns: the `Model` trait a checked object implements, the search
//! (`check`, `check_detailed`: Wing & Gong's backtracking with Lowe's memo of
//! (linearized set, model state), as in porcupine), three models
//! (`RegisterModel`, `KvModel` for recorded histories, `OhmKvModel` for
//! Ohm's own kv procedures) and the readers of recorded history files
//! (`history`). Must not: read a clock except to compare it with the
//! caller's deadline, or do I/O outside `history::read_file`. The search
//! is iterative, so a history of many thousands of operations cannot
//! overflow the stack, and its memo has a memory bound (`MEMO_BYTES_MAX`).
//!
//! ```text
//!   [Operation] --Model::partition--> groups (e.g. one per key)
//!   each group --search (init, step)--> ok | fails | out of time
//!   --> Verdict (+ Failure: the group and its longest linearizable prefix)
//! ```
//!
//! An operation whose outcome is unknown (a timeout: it may or may not
//! have taken effect) has `ret == RET_UNKNOWN` and an output the model
//! accepts whatever the state (each model has an `Unknown` output). It may
//! then be linearized anywhere after its call, including after every other
//! operation, which is the same as never having taken effect.

pub mod history;
mod kv;
mod ohm_kv;
mod register;
mod search;
#[cfg(test)]
mod tests_search;
#[cfg(test)]
mod tests_testdata;

pub use kv::{KvInput, KvModel, KvOp, KvOutput};
pub use ohm_kv::{OhmKvHistory, OhmKvInput, OhmKvModel, OhmKvOp, OhmKvOutput, Versioned};
pub use register::{RegisterInput, RegisterModel, RegisterOutput};
pub use search::{check, check_detailed, Failure, Report, MEMO_BYTES_MAX};

use std::collections::BTreeMap;
use std::fmt;

/// The `ret` of an operation whose outcome is unknown: it may take effect
/// at any point after its call, or never.
pub const RET_UNKNOWN: u64 = u64::MAX;

/// One operation of a history: `client` called it with `input` at time
/// `call` and it returned `output` at time `ret`. Times are in any unit
/// that only grows (ticks, nanoseconds, line numbers); two operations are
/// concurrent unless one returned before the other was called (equal times
/// count as concurrent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    pub client: u64,
    pub input: I,
    pub call: u64,
    pub output: O,
    /// `RET_UNKNOWN` when the outcome is unknown.
    pub ret: u64,
}

impl<I, O> Operation<I, O> {
    /// An operation that returned `output` at `ret` (`ret >= call`).
    pub fn new(client: u64, input: I, call: u64, output: O, ret: u64) -> Self {
        Operation {
            client,
            input,
            call,
            output,
            ret,
        }
    }

    /// An operation whose outcome is unknown; `output` must be the model's
    /// unknown output (e.g. `OhmKvOutput::Unknown`).
    pub fn unknown(client: u64, input: I, call: u64, output: O) -> Self {
        Operation::new(client, input, call, output, RET_UNKNOWN)
    }
}

/// A sequential specification of the object a history was recorded from.
pub trait Model {
    type State: Clone + Eq + std::hash::Hash + fmt::Debug;
    type Input: fmt::Debug;
    type Output: fmt::Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` returning `output` from `state`, or None when
    /// that output is impossible there.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Groups of operation indexes that can be checked independently
    /// (P-compositionality: e.g. one group per key). Default: one group of
    /// everything. Every index must be below `ops.len()`.
    fn partition(&self, ops: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..ops.len()).collect()]
    }
}

/// What `check` concluded about a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The deadline passed before the search reached a verdict.
    Unknown,
}

impl Verdict {
    /// The word `ohm lincheck` prints (and expected.tsv files use).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "NOT-linearizable",
            Verdict::Unknown => "unknown",
        }
    }

    /// The verdict `as_str` prints as `word`.
    pub fn from_word(word: &str) -> Option<Verdict> {
        [
            Verdict::Linearizable,
            Verdict::NotLinearizable,
            Verdict::Unknown,
        ]
        .into_iter()
        .find(|v| v.as_str() == word)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One group per distinct `key(input)`, in key order, each holding its
/// operations' indexes in history order: a `Model::partition` for models
/// whose keys are independent.
pub fn partition_by<I, O, K: Ord>(
    ops: &[Operation<I, O>],
    key: impl Fn(&I) -> K,
) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        groups.entry(key(&op.input)).or_default().push(i);
    }
    groups.into_values().collect()
}
