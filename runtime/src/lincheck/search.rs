//! The search for a linearization of one group of operations.
//!
//! The group's call and return entries sit in time order in a doubly
//! linked list (calls before returns at equal times, so those operations
//! count as concurrent). Walking from the front, a call whose operation the
//! model can step is linearized: its call and return are unlinked, the old
//! state is pushed, and the walk restarts from the front. Reaching a return
//! means that operation had to be linearized before this point and was not,
//! so the last choice is undone (relinked in place, dancing-links style) and
//! the walk resumes after it. An empty list is a linearization; undoing with
//! nothing to undo means there is none. A memo of every (linearized set,
//! state) reached prunes the search (Lowe): two paths that linearized the
//! same operations into the same state have the same future.

use super::{Model, Operation, Verdict};
use std::collections::HashSet;
use std::time::Instant;

/// Approximate bytes the memo of one group may hold. When full it is
/// cleared: the memo only prunes, so forgetting costs time, never a wrong
/// verdict, and the deadline bounds the time.
pub const MEMO_BYTES_MAX: usize = 256 << 20;
/// Search steps between two looks at the clock.
const STEPS_PER_CLOCK_READ: u32 = 1024;
/// Bytes a memo entry costs beyond its bitset and state (hash table slot,
/// boxed slice header and allocation): a rough figure for the bound.
const MEMO_ENTRY_OVERHEAD_BYTES: usize = 48;
const NIL: usize = usize::MAX;

/// `check_detailed`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub verdict: Verdict,
    /// For `NotLinearizable`, the group that failed; for `Unknown`, the group
    /// being searched when the deadline passed; None when `Linearizable`.
    pub failure: Option<Failure>,
}

/// The group a verdict other than `Linearizable` is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its position in `Model::partition`'s answer.
    pub group: usize,
    /// Its operations (indexes into the history), in the partition's order:
    /// e.g. `ops[failure.ops[0]].input` names the key.
    pub ops: Vec<usize>,
    /// The longest sequence of its operations (indexes into the history)
    /// found to be a valid linearization of a prefix of the group, in
    /// linearization order. The operation that could not be placed after it
    /// is among the group's others.
    pub longest_prefix: Vec<usize>,
}

/// Whether `ops` is linearizable with respect to `model`, each group of
/// `model.partition(ops)` checked on its own; `Unknown` once `deadline`
/// passes. Panics on a caller bug: an operation returning before its call,
/// or a partition index out of range.
pub fn check<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    deadline: Instant,
) -> Verdict {
    check_detailed(model, ops, deadline).verdict
}

/// `check`, plus which group failed and how far its search got.
pub fn check_detailed<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    deadline: Instant,
) -> Report {
    for (i, op) in ops.iter().enumerate() {
        assert!(
            op.call <= op.ret,
            "lincheck: operation {i} returns at {} before its call at {}",
            op.ret,
            op.call
        );
    }
    for (group, indexes) in model.partition(ops).into_iter().enumerate() {
        let members: Vec<&Operation<M::Input, M::Output>> = indexes
            .iter()
            .map(|&i| {
                assert!(
                    i < ops.len(),
                    "lincheck: Model::partition named operation {i} of a history of {}",
                    ops.len()
                );
                &ops[i]
            })
            .collect();
        let (verdict, prefix) = match search(model, &members, deadline, MEMO_BYTES_MAX) {
            Outcome::Linearizable => continue,
            Outcome::NotLinearizable(prefix) => (Verdict::NotLinearizable, prefix),
            Outcome::OutOfTime(prefix) => (Verdict::Unknown, prefix),
        };
        let longest_prefix = prefix.into_iter().map(|k| indexes[k]).collect();
        let failure = Failure {
            group,
            ops: indexes,
            longest_prefix,
        };
        return Report {
            verdict,
            failure: Some(failure),
        };
    }
    Report {
        verdict: Verdict::Linearizable,
        failure: None,
    }
}

/// How one group's search ended; prefixes hold positions in the group.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Linearizable,
    NotLinearizable(Vec<usize>),
    OutOfTime(Vec<usize>),
}

/// The search described in the module doc, over one group.
pub(super) fn search<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
    deadline: Instant,
    memo_bytes_max: usize,
) -> Outcome {
    let mut list = Entries::new(ops);
    let mut linearized = Bitset::new(ops.len());
    let mut memo = Memo::<M::State>::new(ops.len(), memo_bytes_max);
    // The operations linearized so far, each with the state before it.
    let mut path: Vec<(usize, M::State)> = Vec::with_capacity(ops.len());
    let mut longest: Vec<usize> = Vec::new();
    let mut state = model.init();
    let mut cur = list.first();
    let mut steps: u32 = 0;
    while list.first() != NIL {
        if steps.is_multiple_of(STEPS_PER_CLOCK_READ) && Instant::now() >= deadline {
            note_longest(&mut longest, &path);
            return Outcome::OutOfTime(longest);
        }
        steps = steps.wrapping_add(1);
        assert!(
            cur != NIL,
            "lincheck: the walk passed the last return of a non-empty list"
        );
        let k = list.op[cur];
        if list.is_call[cur] {
            if let Some(next) = model.step(&state, &ops[k].input, &ops[k].output) {
                linearized.set(k);
                if memo.insert(&linearized, &next) {
                    path.push((k, std::mem::replace(&mut state, next)));
                    list.lift(k);
                    cur = list.first();
                    continue;
                }
                linearized.clear(k);
            }
            cur = list.next[cur];
        } else {
            // Operation k's return: something before it must be undone.
            note_longest(&mut longest, &path);
            let Some((undo, before)) = path.pop() else {
                return Outcome::NotLinearizable(longest);
            };
            state = before;
            linearized.clear(undo);
            list.unlift(undo);
            cur = list.next[list.call_node[undo]];
        }
    }
    Outcome::Linearizable
}

fn note_longest<S>(longest: &mut Vec<usize>, path: &[(usize, S)]) {
    if path.len() > longest.len() {
        *longest = path.iter().map(|(k, _)| *k).collect();
    }
}

/// The call and return entries of a group in time order, as a doubly linked
/// list over arrays. Node 0 is the head sentinel; `NIL` ends the list.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation (position in the group) node i belongs to.
    op: Vec<usize>,
    is_call: Vec<bool>,
    call_node: Vec<usize>,
    ret_node: Vec<usize>,
}

impl Entries {
    fn new<I, O>(ops: &[&Operation<I, O>]) -> Entries {
        // (time, 0 for a call / 1 for a return, operation): calls first at a tie.
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * ops.len());
        for (k, op) in ops.iter().enumerate() {
            events.push((op.call, 0, k));
            events.push((op.ret, 1, k));
        }
        events.sort_unstable();
        let nodes = events.len() + 1;
        let mut list = Entries {
            next: (1..=nodes)
                .map(|n| if n == nodes { NIL } else { n })
                .collect(),
            prev: (0..nodes).map(|n| n.wrapping_sub(1)).collect(),
            op: vec![0; nodes],
            is_call: vec![false; nodes],
            call_node: vec![0; ops.len()],
            ret_node: vec![0; ops.len()],
        };
        for (i, &(_, kind, k)) in events.iter().enumerate() {
            let node = i + 1;
            list.op[node] = k;
            list.is_call[node] = kind == 0;
            if kind == 0 {
                list.call_node[k] = node;
            } else {
                list.ret_node[k] = node;
            }
        }
        list
    }

    fn first(&self) -> usize {
        self.next[0]
    }

    fn lift(&mut self, k: usize) {
        self.unlink(self.call_node[k]);
        self.unlink(self.ret_node[k]);
    }

    /// Undoes `lift(k)`; only valid for the most recent lift still in effect.
    fn unlift(&mut self, k: usize) {
        self.relink(self.ret_node[k]);
        self.relink(self.call_node[k]);
    }

    fn unlink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = x;
        if x != NIL {
            self.prev[x] = p;
        }
    }

    fn relink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        if x != NIL {
            self.prev[x] = n;
        }
    }
}

/// Which operations of a group are linearized.
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(bits: usize) -> Bitset {
        Bitset(vec![0; bits.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// The (linearized set, state) pairs reached so far, in about
/// `memo_bytes_max` bytes.
struct Memo<S> {
    seen: HashSet<(Box<[u64]>, S)>,
    entries_max: usize,
}

impl<S: Clone + Eq + std::hash::Hash> Memo<S> {
    fn new(ops: usize, memo_bytes_max: usize) -> Memo<S> {
        let entry_bytes =
            ops.div_ceil(64) * 8 + std::mem::size_of::<S>() + MEMO_ENTRY_OVERHEAD_BYTES;
        Memo {
            seen: HashSet::new(),
            entries_max: (memo_bytes_max / entry_bytes).max(1),
        }
    }

    /// Records the pair; false if it was already there.
    fn insert(&mut self, linearized: &Bitset, state: &S) -> bool {
        if self.seen.len() >= self.entries_max {
            self.seen.clear();
        }
        self.seen
            .insert((linearized.0.clone().into_boxed_slice(), state.clone()))
    }
}
