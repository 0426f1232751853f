//! The operations of Ohm's kv procedures (procedures/kv): `get`, `put`,
//! `cas` and `delete` on one key each, with the version every write bumps.
//! This is what the simulator's histories are checked against.
//!
//! Per key: absent at first; `put` stores and returns the new version (1
//! when the key was absent, else the old version + 1); `cas` stores only if
//! the current value equals `expected` (None: the key must be absent), with
//! the same version rule, and returns whether it stored; `delete` removes
//! the key and returns whether it was there, so a later put starts at
//! version 1 again.

use super::{partition_by, Model, Operation};
use crate::types::Value;

/// A call of one kv procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OhmKvInput {
    pub key: String,
    pub op: OhmKvOp,
}

/// Which procedure, with its arguments after the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OhmKvOp {
    Get,
    Put {
        value: Vec<u8>,
    },
    Cas {
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    },
    Delete,
}

impl OhmKvInput {
    /// `get(key)`.
    pub fn get(key: impl Into<String>) -> OhmKvInput {
        OhmKvInput::new(key, OhmKvOp::Get)
    }

    /// `put(key, value)`.
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> OhmKvInput {
        let value = value.into();
        OhmKvInput::new(key, OhmKvOp::Put { value })
    }

    /// `cas(key, expected, new)`; `expected` None means "must be absent".
    pub fn cas(
        key: impl Into<String>,
        expected: Option<Vec<u8>>,
        new: impl Into<Vec<u8>>,
    ) -> OhmKvInput {
        let new = new.into();
        OhmKvInput::new(key, OhmKvOp::Cas { expected, new })
    }

    /// `delete(key)`.
    pub fn delete(key: impl Into<String>) -> OhmKvInput {
        OhmKvInput::new(key, OhmKvOp::Delete)
    }

    fn new(key: impl Into<String>, op: OhmKvOp) -> OhmKvInput {
        OhmKvInput {
            key: key.into(),
            op,
        }
    }
}

/// What a procedure returned: one kind per procedure, plus `Unknown`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OhmKvOutput {
    /// The value `get` read; None for NULL (absent).
    Get(Option<Vec<u8>>),
    /// The version `put` returned.
    Put(i64),
    /// Whether `cas` stored.
    Cas(bool),
    /// Whether `delete` found the key.
    Delete(bool),
    /// No reply (timeout, lost connection, node gone): accepted whatever
    /// the state, and a write then takes effect as it would have.
    Unknown,
}

/// A present key's value and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub version: i64,
}

/// The kv procedures, as a `Model` partitioned per key. State: one key,
/// None while absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct OhmKvModel;

/// The version a write to a key in `state` gives it.
fn next_version(state: &Option<Versioned>) -> i64 {
    state.as_ref().map_or(1, |s| s.version + 1)
}

impl Model for OhmKvModel {
    type State = Option<Versioned>;
    type Input = OhmKvInput;
    type Output = OhmKvOutput;

    fn init(&self) -> Option<Versioned> {
        None
    }

    /// Panics if `output` is of another procedure's kind (a caller bug).
    fn step(
        &self,
        state: &Option<Versioned>,
        input: &OhmKvInput,
        output: &OhmKvOutput,
    ) -> Option<Option<Versioned>> {
        use OhmKvOp as I;
        use OhmKvOutput as O;
        let unknown = *output == O::Unknown;
        match &input.op {
            I::Get => match output {
                O::Get(v) => {
                    (v.as_ref() == state.as_ref().map(|s| &s.value)).then(|| state.clone())
                }
                O::Unknown => Some(state.clone()),
                _ => mismatch(input, output),
            },
            I::Put { value } => {
                let version = next_version(state);
                match output {
                    O::Put(v) if *v != version => None,
                    O::Put(_) | O::Unknown => Some(Some(Versioned {
                        value: value.clone(),
                        version,
                    })),
                    _ => mismatch(input, output),
                }
            }
            I::Cas { expected, new } => {
                let hit = expected.as_ref() == state.as_ref().map(|s| &s.value);
                let after = match hit {
                    true => Some(Versioned {
                        value: new.clone(),
                        version: next_version(state),
                    }),
                    false => state.clone(),
                };
                match output {
                    O::Cas(stored) => (*stored == hit).then_some(after),
                    _ if unknown => Some(after),
                    _ => mismatch(input, output),
                }
            }
            I::Delete => match output {
                O::Delete(found) => (*found == state.is_some()).then_some(None),
                _ if unknown => Some(None),
                _ => mismatch(input, output),
            },
        }
    }

    fn partition(&self, ops: &[Operation<OhmKvInput, OhmKvOutput>]) -> Vec<Vec<usize>> {
        partition_by(ops, |input| input.key.clone())
    }
}

fn mismatch(input: &OhmKvInput, output: &OhmKvOutput) -> ! {
    panic!("OhmKvModel: input {input:?} paired with output {output:?}")
}

impl OhmKvInput {
    /// The kv procedure, and its arguments, that performs this operation.
    pub fn call(&self) -> (&'static str, Vec<Value>) {
        let key = Value::text(&self.key);
        let bytes = |b: &[u8]| Value::Bytes(b.into());
        match &self.op {
            OhmKvOp::Get => ("get", vec![key]),
            OhmKvOp::Put { value } => ("put", vec![key, bytes(value)]),
            OhmKvOp::Cas { expected, new } => (
                "cas",
                vec![
                    key,
                    expected.as_deref().map_or(Value::Null, bytes),
                    bytes(new),
                ],
            ),
            OhmKvOp::Delete => ("delete", vec![key]),
        }
    }
}

impl OhmKvOutput {
    /// What the value a kv procedure returned for `input` means; None when
    /// it is not of the shape that procedure returns.
    pub fn from_value(input: &OhmKvInput, v: &Value) -> Option<OhmKvOutput> {
        Some(match (&input.op, v) {
            (OhmKvOp::Get, Value::Null) => OhmKvOutput::Get(None),
            (OhmKvOp::Get, Value::Bytes(b)) => OhmKvOutput::Get(Some(b.to_vec())),
            (OhmKvOp::Put { .. }, Value::Int(v)) => OhmKvOutput::Put(*v),
            (OhmKvOp::Cas { .. }, Value::Bool(b)) => OhmKvOutput::Cas(*b),
            (OhmKvOp::Delete, Value::Bool(b)) => OhmKvOutput::Delete(*b),
            _ => return None,
        })
    }
}

/// A kv history as clients record it (the simulator's and `ohm
/// torture`'s), with counts of what was answered and what is unknown.
#[derive(Debug, Default)]
pub struct OhmKvHistory {
    pub ops: Vec<Operation<OhmKvInput, OhmKvOutput>>,
    pub ok: u64,
    pub unknown: u64,
}

impl OhmKvHistory {
    /// A call that returned `out`.
    pub fn ok(&mut self, process: u64, input: OhmKvInput, call: u64, out: OhmKvOutput, ret: u64) {
        self.ok += 1;
        self.ops
            .push(Operation::new(process, input, call, out, ret));
    }

    /// A call whose outcome is unknown. A read changed nothing whatever
    /// happened, so it constrains nothing and is left out (unknown
    /// operations are what makes checking slow).
    pub fn unknown(&mut self, process: u64, input: OhmKvInput, call: u64) {
        self.unknown += 1;
        if input.op == OhmKvOp::Get {
            return;
        }
        let out = OhmKvOutput::Unknown;
        self.ops.push(Operation::unknown(process, input, call, out));
    }
}

#[cfg(test)]
mod tests {
    use super::{OhmKvInput as In, OhmKvModel, OhmKvOutput as Out};
    use crate::lincheck::{check, check_detailed, Operation, Verdict};
    use std::time::{Duration, Instant};

    type Op = Operation<In, Out>;

    fn verdict(ops: &[Op]) -> Verdict {
        let deadline = Instant::now() + Duration::from_secs(10);
        check(&OhmKvModel, ops, deadline)
    }

    /// Operations one after another, each on its own tick pair.
    fn sequential(calls: Vec<(In, Out)>) -> Vec<Op> {
        let t = |i: usize| 2 * i as u64;
        let each = calls.into_iter().enumerate();
        each.map(|(i, (input, output))| Operation::new(0, input, t(i), output, t(i) + 1))
            .collect()
    }

    fn bytes(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn versions_count_writes_and_restart_after_delete() {
        let ops = sequential(vec![
            (In::get("k"), Out::Get(None)),
            (In::put("k", "a"), Out::Put(1)),
            (In::put("k", "b"), Out::Put(2)),
            (In::cas("k", bytes("b"), "c"), Out::Cas(true)),
            (In::put("k", "d"), Out::Put(4)),
            (In::get("k"), Out::Get(bytes("d"))),
            (In::delete("k"), Out::Delete(true)),
            (In::delete("k"), Out::Delete(false)),
            (In::get("k"), Out::Get(None)),
            (In::cas("k", None, "e"), Out::Cas(true)),
            (In::put("k", "f"), Out::Put(2)),
        ]);
        assert_eq!(verdict(&ops), Verdict::Linearizable);
    }

    #[test]
    fn each_wrong_answer_is_caught() {
        let base = || vec![(In::put("k", "a"), Out::Put(1))];
        let wrong = [
            (In::put("k", "b"), Out::Put(1)),          // version not bumped
            (In::get("k"), Out::Get(None)),            // lost write
            (In::get("k"), Out::Get(bytes("b"))),      // value never written
            (In::cas("k", None, "b"), Out::Cas(true)), // key is present
            (In::cas("k", bytes("a"), "b"), Out::Cas(false)),
            (In::delete("k"), Out::Delete(false)),
        ];
        for (input, output) in wrong {
            let mut calls = base();
            calls.push((input.clone(), output.clone()));
            let ops = sequential(calls);
            assert_eq!(
                verdict(&ops),
                Verdict::NotLinearizable,
                "{input:?} -> {output:?}"
            );
        }
    }

    #[test]
    fn concurrent_puts_order_by_the_versions_they_returned() {
        // Both overlap; the one that got version 1 went first, and the read
        // after both must see the other's value.
        let ops = vec![
            Operation::new(0, In::put("k", "a"), 0, Out::Put(2), 10),
            Operation::new(1, In::put("k", "b"), 1, Out::Put(1), 9),
            Operation::new(2, In::get("k"), 11, Out::Get(bytes("a")), 12),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
        let mut swapped = ops.clone();
        swapped[2].output = Out::Get(bytes("b"));
        assert_eq!(verdict(&swapped), Verdict::NotLinearizable);
    }

    #[test]
    fn an_unknown_cas_may_or_may_not_have_stored() {
        let unknown = Operation::unknown(1, In::cas("k", None, "x"), 0, Out::Unknown);
        let stored = vec![
            unknown.clone(),
            Operation::new(0, In::get("k"), 5, Out::Get(bytes("x")), 6),
            Operation::new(0, In::put("k", "y"), 7, Out::Put(2), 8),
        ];
        assert_eq!(verdict(&stored), Verdict::Linearizable);
        let not_stored = vec![
            unknown,
            Operation::new(0, In::put("k", "y"), 5, Out::Put(1), 6),
            Operation::new(0, In::get("k"), 7, Out::Get(bytes("y")), 8),
        ];
        assert_eq!(verdict(&not_stored), Verdict::Linearizable);
    }

    #[test]
    fn an_unknown_delete_may_explain_a_later_absence() {
        // The get's NULL and the second put's version 1 are possible only
        // if the delete, whose reply was lost, took effect before them.
        let ops = vec![
            Operation::new(0, In::put("k", "a"), 0, Out::Put(1), 1),
            Operation::unknown(1, In::delete("k"), 2, Out::Unknown),
            Operation::new(0, In::get("k"), 3, Out::Get(None), 4),
            Operation::new(0, In::put("k", "b"), 5, Out::Put(1), 6),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
        // Without the delete the same answers are impossible.
        let without: Vec<Op> = [&ops[0], &ops[2], &ops[3]].into_iter().cloned().collect();
        assert_eq!(verdict(&without), Verdict::NotLinearizable);
    }

    #[test]
    fn keys_partition_and_the_report_names_the_key() {
        let ops = vec![
            Operation::new(0, In::put("x", "1"), 0, Out::Put(1), 1),
            Operation::new(1, In::put("y", "1"), 0, Out::Put(1), 1),
            Operation::new(0, In::put("x", "2"), 2, Out::Put(2), 3),
            Operation::new(1, In::put("y", "2"), 2, Out::Put(1), 3),
        ];
        let deadline = Instant::now() + Duration::from_secs(10);
        let report = check_detailed(&OhmKvModel, &ops, deadline);
        assert_eq!(report.verdict, Verdict::NotLinearizable);
        let failure = report.failure.expect("a failure is reported");
        assert_eq!(ops[failure.ops[0]].input.key, "y");
        assert_eq!(failure.longest_prefix, vec![1]);
    }
}
