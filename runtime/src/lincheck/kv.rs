//! A string key-value store with get, put and append, every key starting as
//! the empty string: the object of the recorded `kv/` histories.

use super::{partition_by, Model, Operation};

/// An operation on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvInput {
    pub key: String,
    pub op: KvOp,
}

/// What is done to the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    Get,
    Put(String),
    Append(String),
}

impl KvInput {
    pub fn get(key: impl Into<String>) -> KvInput {
        KvInput {
            key: key.into(),
            op: KvOp::Get,
        }
    }

    pub fn put(key: impl Into<String>, value: impl Into<String>) -> KvInput {
        KvInput {
            key: key.into(),
            op: KvOp::Put(value.into()),
        }
    }

    pub fn append(key: impl Into<String>, value: impl Into<String>) -> KvInput {
        KvInput {
            key: key.into(),
            op: KvOp::Append(value.into()),
        }
    }
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOutput {
    /// The value a get read.
    Get(String),
    /// A put or append completed.
    Done,
    /// The outcome is unknown: accepted whatever the state, and a put or
    /// append then takes effect.
    Unknown,
}

/// The store, as a `Model` partitioned per key. State: one key's value.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvModel;

impl Model for KvModel {
    type State = String;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> String {
        String::new()
    }

    /// Panics if `output` is of another input's kind (a caller bug).
    fn step(&self, state: &String, input: &KvInput, output: &KvOutput) -> Option<String> {
        match (&input.op, output) {
            (KvOp::Get, KvOutput::Get(v)) => (v == state).then(|| state.clone()),
            (KvOp::Get, KvOutput::Unknown) => Some(state.clone()),
            (KvOp::Put(v), KvOutput::Done | KvOutput::Unknown) => Some(v.clone()),
            (KvOp::Append(v), KvOutput::Done | KvOutput::Unknown) => Some(format!("{state}{v}")),
            _ => panic!("KvModel: input {input:?} paired with output {output:?}"),
        }
    }

    fn partition(&self, ops: &[Operation<KvInput, KvOutput>]) -> Vec<Vec<usize>> {
        partition_by(ops, |input| input.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::{KvInput, KvModel, KvOutput};
    use crate::lincheck::{check, check_detailed, Operation, Verdict};
    use std::time::{Duration, Instant};

    type Op = Operation<KvInput, KvOutput>;

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    fn op(client: u64, input: KvInput, call: u64, output: KvOutput, ret: u64) -> Op {
        Operation::new(client, input, call, output, ret)
    }

    fn got(value: &str) -> KvOutput {
        KvOutput::Get(value.to_string())
    }

    #[test]
    fn appends_accumulate_and_keys_start_empty() {
        let ops = [
            op(0, KvInput::get("a"), 0, got(""), 1),
            op(0, KvInput::append("a", "x"), 2, KvOutput::Done, 3),
            op(1, KvInput::append("a", "y"), 4, KvOutput::Done, 5),
            op(1, KvInput::get("a"), 6, got("xy"), 7),
            op(0, KvInput::put("a", "z"), 8, KvOutput::Done, 9),
            op(0, KvInput::get("a"), 10, got("z"), 11),
        ];
        assert_eq!(check(&KvModel, &ops, deadline()), Verdict::Linearizable);
    }

    #[test]
    fn a_lost_append_is_not_linearizable() {
        let ops = [
            op(0, KvInput::append("a", "x"), 0, KvOutput::Done, 1),
            op(1, KvInput::append("a", "y"), 2, KvOutput::Done, 3),
            op(2, KvInput::get("a"), 4, got("y"), 5),
        ];
        assert_eq!(check(&KvModel, &ops, deadline()), Verdict::NotLinearizable);
    }

    #[test]
    fn concurrent_appends_fix_their_order_by_what_was_read() {
        let ops = [
            op(0, KvInput::append("a", "x"), 0, KvOutput::Done, 5),
            op(1, KvInput::append("a", "y"), 1, KvOutput::Done, 4),
            op(2, KvInput::get("a"), 6, got("yx"), 7),
        ];
        assert_eq!(check(&KvModel, &ops, deadline()), Verdict::Linearizable);
    }

    #[test]
    fn keys_are_checked_apart_and_the_failing_one_is_named() {
        // Key "b" alone is fine; key "c" reads a value never written.
        let ops = [
            op(0, KvInput::put("b", "1"), 0, KvOutput::Done, 1),
            op(1, KvInput::put("c", "1"), 0, KvOutput::Done, 1),
            op(0, KvInput::get("b"), 2, got("1"), 3),
            op(1, KvInput::get("c"), 2, got("1"), 3),
            op(1, KvInput::get("c"), 4, got("2"), 5),
        ];
        let report = check_detailed(&KvModel, &ops, deadline());
        assert_eq!(report.verdict, Verdict::NotLinearizable);
        let failure = report.failure.expect("a failure is reported");
        assert_eq!(failure.group, 1);
        assert_eq!(failure.ops, vec![1, 3, 4]);
        assert_eq!(ops[failure.ops[0]].input.key, "c");
        assert_eq!(failure.longest_prefix, vec![1, 3]);
    }

    #[test]
    fn an_unknown_put_may_land_after_later_reads() {
        let ops = [
            Operation::unknown(0, KvInput::put("a", "v"), 0, KvOutput::Unknown),
            op(1, KvInput::get("a"), 1, got(""), 2),
            op(1, KvInput::get("a"), 3, got("v"), 4),
        ];
        assert_eq!(check(&KvModel, &ops, deadline()), Verdict::Linearizable);
        // Once seen it stays: a later read of "" is stale.
        let mut stale = ops.to_vec();
        stale.push(op(1, KvInput::get("a"), 5, got(""), 6));
        assert_eq!(
            check(&KvModel, &stale, deadline()),
            Verdict::NotLinearizable
        );
    }
}
