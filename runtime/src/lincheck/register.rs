//! A single register of small integers with read, write and compare-and-set,
//! starting as nil: the object of Jepsen's etcd histories.

use super::Model;

/// An operation on the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterInput {
    Read,
    Write(i64),
    /// Sets the register to `to` if it holds `from`.
    Cas {
        from: i64,
        to: i64,
    },
}

/// What an operation returned. Each input has its own output kind, plus
/// `Unknown` for any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutput {
    /// The value read; None for nil.
    Read(Option<i64>),
    Write,
    /// Whether the compare succeeded (and so the register was set).
    Cas(bool),
    /// The outcome is unknown: accepted whatever the state, and a write or
    /// cas then takes effect as it would have.
    Unknown,
}

/// The register, as a `Model`. State: its value, None for nil.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<i64> {
        None
    }

    /// Panics if `output` is of another input's kind (a caller bug).
    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: &RegisterOutput,
    ) -> Option<Option<i64>> {
        use RegisterInput as I;
        use RegisterOutput as O;
        match (input, output) {
            (I::Read, O::Read(v)) => (v == state).then_some(*state),
            (I::Read, O::Unknown) => Some(*state),
            (I::Write(v), O::Write | O::Unknown) => Some(Some(*v)),
            (&I::Cas { from, to }, out @ (O::Cas(_) | O::Unknown)) => {
                let hit = *state == Some(from);
                let after = if hit { Some(to) } else { *state };
                match out {
                    O::Cas(ok) => (*ok == hit).then_some(after),
                    _ => Some(after),
                }
            }
            _ => panic!("RegisterModel: input {input:?} paired with output {output:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RegisterInput as I, RegisterModel, RegisterOutput as O};
    use crate::lincheck::{check, Operation, Verdict};
    use std::time::{Duration, Instant};

    type Op = Operation<I, O>;

    fn verdict(ops: &[Op]) -> Verdict {
        check(
            &RegisterModel,
            ops,
            Instant::now() + Duration::from_secs(10),
        )
    }

    fn op(client: u64, input: I, call: u64, output: O, ret: u64) -> Op {
        Operation::new(client, input, call, output, ret)
    }

    #[test]
    fn sequential_reads_see_the_last_write() {
        let ops = [
            op(0, I::Read, 0, O::Read(None), 1),
            op(0, I::Write(1), 2, O::Write, 3),
            op(1, I::Read, 4, O::Read(Some(1)), 5),
            op(1, I::Cas { from: 1, to: 2 }, 6, O::Cas(true), 7),
            op(0, I::Cas { from: 1, to: 3 }, 8, O::Cas(false), 9),
            op(0, I::Read, 10, O::Read(Some(2)), 11),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_a_completed_write_is_not_linearizable() {
        let ops = [
            op(0, I::Write(1), 0, O::Write, 1),
            op(0, I::Write(2), 2, O::Write, 3),
            op(1, I::Read, 4, O::Read(Some(1)), 5),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn a_failed_cas_needs_a_state_that_differs() {
        // The cas overlaps nothing, and the register surely holds 1.
        let ops = [
            op(0, I::Write(1), 0, O::Write, 1),
            op(1, I::Cas { from: 1, to: 2 }, 2, O::Cas(false), 3),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn concurrent_writes_linearize_in_the_order_the_reads_saw() {
        // Writes of 1 and 2 overlap; reads after both see 2 then 2: only
        // "1 then 2" works. A later read of 1 then rules out every order.
        let mut ops = vec![
            op(0, I::Write(1), 0, O::Write, 10),
            op(1, I::Write(2), 1, O::Write, 9),
            op(2, I::Read, 11, O::Read(Some(2)), 12),
            op(0, I::Read, 13, O::Read(Some(2)), 14),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
        ops.push(op(1, I::Read, 15, O::Read(Some(1)), 16));
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        for seen in [None, Some(7)] {
            let ops = [
                op(0, I::Write(7), 0, O::Write, 10),
                op(1, I::Read, 2, O::Read(seen), 3),
            ];
            assert_eq!(verdict(&ops), Verdict::Linearizable, "read {seen:?}");
        }
        let ops = [
            op(0, I::Write(7), 0, O::Write, 10),
            op(1, I::Read, 2, O::Read(Some(8)), 3),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        let unknown = Operation::unknown(0, I::Write(5), 0, O::Unknown);
        // Never observed.
        let never = [unknown.clone(), op(1, I::Read, 10, O::Read(None), 11)];
        assert_eq!(verdict(&never), Verdict::Linearizable);
        // Observed long after its call, after a read that did not see it.
        let late = [
            unknown,
            op(1, I::Read, 10, O::Read(None), 11),
            op(1, I::Read, 20, O::Read(Some(5)), 21),
        ];
        assert_eq!(verdict(&late), Verdict::Linearizable);
        // But not before its call.
        let early = [
            op(1, I::Read, 0, O::Read(Some(5)), 1),
            Operation::unknown(0, I::Write(5), 2, O::Unknown),
        ];
        assert_eq!(verdict(&early), Verdict::NotLinearizable);
    }

    #[test]
    fn an_unknown_cas_takes_effect_only_if_it_compares_equal() {
        let ops = [
            op(0, I::Write(1), 0, O::Write, 1),
            Operation::unknown(1, I::Cas { from: 1, to: 2 }, 2, O::Unknown),
            op(0, I::Read, 3, O::Read(Some(2)), 4),
        ];
        assert_eq!(verdict(&ops), Verdict::Linearizable);
        let ops = [
            op(0, I::Write(1), 0, O::Write, 1),
            Operation::unknown(1, I::Cas { from: 9, to: 2 }, 2, O::Unknown),
            op(0, I::Read, 3, O::Read(Some(2)), 4),
        ];
        assert_eq!(verdict(&ops), Verdict::NotLinearizable);
    }

    #[test]
    #[should_panic(expected = "paired with output")]
    fn a_mismatched_output_is_a_caller_bug() {
        verdict(&[op(0, I::Read, 0, O::Cas(true), 1)]);
    }
}
