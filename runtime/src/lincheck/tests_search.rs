//! Tests of the search itself, apart from any one model's semantics: time
//! order and ties, depth, the deadline, the memo bound, the report.

use super::search::{search, Outcome};
use super::{
    check, check_detailed, Model, Operation, RegisterInput as I, RegisterModel,
    RegisterOutput as O, Verdict, MEMO_BYTES_MAX,
};
use std::time::{Duration, Instant};

type Op = Operation<I, O>;

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn op(client: u64, input: I, call: u64, output: O, ret: u64) -> Op {
    Operation::new(client, input, call, output, ret)
}

/// `n` clients write their own number at once; afterwards every client
/// reads `last`, and finally cas `last` -> -1 succeeds once.
fn concurrent_writes(n: u64, last: i64) -> Vec<Op> {
    let mut ops: Vec<Op> = (0..n)
        .map(|c| op(c, I::Write(c as i64), c, O::Write, 2 * n))
        .collect();
    ops.extend((0..n).map(|c| op(c, I::Read, 2 * n + 1, O::Read(Some(last)), 2 * n + 2)));
    ops.push(op(
        0,
        I::Cas { from: last, to: -1 },
        2 * n + 3,
        O::Cas(true),
        2 * n + 4,
    ));
    ops
}

#[test]
fn the_empty_history_is_linearizable() {
    assert_eq!(check(&RegisterModel, &[], soon()), Verdict::Linearizable);
}

#[test]
fn equal_times_count_as_concurrent() {
    // The read returns at 5, the write is called at 5: either order holds.
    let ops = [
        op(0, I::Read, 0, O::Read(Some(1)), 5),
        op(1, I::Write(1), 5, O::Write, 9),
    ];
    assert_eq!(check(&RegisterModel, &ops, soon()), Verdict::Linearizable);
    // One tick apart they are ordered, and the read came first.
    let ops = [
        op(0, I::Read, 0, O::Read(Some(1)), 4),
        op(1, I::Write(1), 5, O::Write, 9),
    ];
    assert_eq!(
        check(&RegisterModel, &ops, soon()),
        Verdict::NotLinearizable
    );
}

#[test]
fn a_long_sequential_history_does_not_recurse() {
    let n = 10_000u64;
    let mut ops: Vec<Op> = Vec::new();
    for i in 0..n {
        let t = 4 * i;
        ops.push(op(0, I::Write(i as i64), t, O::Write, t + 1));
        ops.push(op(1, I::Read, t + 2, O::Read(Some(i as i64)), t + 3));
    }
    assert_eq!(check(&RegisterModel, &ops, soon()), Verdict::Linearizable);
    let last = ops.len() - 1;
    ops[last].output = O::Read(Some(-5));
    assert_eq!(
        check(&RegisterModel, &ops, soon()),
        Verdict::NotLinearizable
    );
}

#[test]
fn many_concurrent_writes_resolve_through_the_memo() {
    let n = 12;
    assert_eq!(
        check(&RegisterModel, &concurrent_writes(n, 7), soon()),
        Verdict::Linearizable
    );
    assert_eq!(
        check(&RegisterModel, &concurrent_writes(n, n as i64), soon()),
        Verdict::NotLinearizable
    );
}

#[test]
fn a_tiny_memo_is_cleared_but_the_verdict_holds() {
    let ops = concurrent_writes(8, 3);
    let refs: Vec<&Op> = ops.iter().collect();
    for bytes_max in [0, 200, MEMO_BYTES_MAX] {
        assert_eq!(
            search(&RegisterModel, &refs, soon(), bytes_max),
            Outcome::Linearizable,
            "memo of {bytes_max} bytes"
        );
    }
    let bad = concurrent_writes(8, 99);
    let refs: Vec<&Op> = bad.iter().collect();
    let outcome = search(&RegisterModel, &refs, soon(), 0);
    assert!(
        matches!(outcome, Outcome::NotLinearizable(_)),
        "{outcome:?}"
    );
}

#[test]
fn a_passed_deadline_gives_unknown_and_names_the_group() {
    let ops = concurrent_writes(4, 1);
    let report = check_detailed(&RegisterModel, &ops, Instant::now());
    assert_eq!(report.verdict, Verdict::Unknown);
    let failure = report.failure.expect("the group being searched");
    assert_eq!(failure.group, 0);
    assert_eq!(failure.ops.len(), ops.len());
}

#[test]
fn the_longest_prefix_is_a_linearization_up_to_the_failure() {
    let ops = [
        op(0, I::Write(1), 0, O::Write, 1),
        op(0, I::Write(2), 2, O::Write, 3),
        op(1, I::Read, 4, O::Read(Some(2)), 5),
        op(1, I::Read, 6, O::Read(Some(1)), 7),
    ];
    let report = check_detailed(&RegisterModel, &ops, soon());
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let failure = report.failure.expect("a failure is reported");
    assert_eq!(failure.longest_prefix, vec![0, 1, 2]);
}

/// A model whose partition names an operation that is not there.
struct BadPartition;

impl Model for BadPartition {
    type State = ();
    type Input = ();
    type Output = ();
    fn init(&self) {}
    fn step(&self, _: &(), _: &(), _: &()) -> Option<()> {
        Some(())
    }
    fn partition(&self, _: &[Operation<(), ()>]) -> Vec<Vec<usize>> {
        vec![vec![0, 1]]
    }
}

#[test]
#[should_panic(expected = "Model::partition named operation 1")]
fn a_partition_out_of_range_is_a_caller_bug() {
    check(&BadPartition, &[Operation::new(0, (), 0, (), 1)], soon());
}

#[test]
#[should_panic(expected = "returns at 1 before its call at 2")]
fn a_return_before_the_call_is_a_caller_bug() {
    check(
        &RegisterModel,
        &[op(0, I::Read, 2, O::Read(None), 1)],
        soon(),
    );
}
