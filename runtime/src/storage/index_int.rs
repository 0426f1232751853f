//! The integer specialization of indexes: a single key column of type
//! SMALLINT, INTEGER or BIGINT, whose stored values are always `Value::Int`
//! or `Value::Null`, keyed by plain `i64` (no boxed keys, no dynamic
//! comparisons).
//!
//! Owns: `IntOrdered` (the ordered store) and the translation of probes of
//! any value kind into `i64` keys and closed ranges. Must not: change what
//! a probe matches: every answer is the one `Value::total_cmp` gives on the
//! generic path (`3.0` finds 3, `2.5 < id` means `3 <= id`, NaN sorts above
//! every number, text above every number, booleans below).
//!
//! ```text
//!   IntOrdered: BTreeMap<i64, RowId> (unique) or BTreeSet<(i64, RowId)>,
//!               + BTreeSet<RowId> of NULL keys
//!   probe Value --first_int--> smallest i64 at or above it (binary search
//!                              over total_cmp when the probe is not an Int)
//!   (Bound<&Value>, Bound<&Value>) --int_range--> lo..=hi | empty
//! ```

use super::RowId;
use crate::types::Value;
use std::cmp::Ordering;
use std::collections::{btree_map, btree_set, BTreeMap, BTreeSet};
use std::ops::Bound;

/// The key a stored integer-column value has: `None` for NULL.
#[inline]
pub(super) fn stored_key(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Null => None,
        other => panic!("integer index column holds {other:?}; the table checks types"),
    }
}

/// The smallest `i` with `Int(i) >= v` (`> v` when `strict`) in
/// `Value::total_cmp` order; `None` if no i64 is that large.
pub(super) fn first_int(v: &Value, strict: bool) -> Option<i64> {
    if let Value::Int(i) = v {
        return if strict { i.checked_add(1) } else { Some(*i) };
    }
    // Other kinds are rare probes (a DOUBLE or DECIMAL literal, a stray
    // text): search the i64 line with total_cmp itself, so the answer
    // agrees with the generic path on every edge (NaN, -0.0, +-1e300,
    // 2^63, families) by construction. At most 64 comparisons.
    let reaches = |i: i64| match Value::Int(i).total_cmp(v) {
        Ordering::Greater => true,
        Ordering::Equal => !strict,
        Ordering::Less => false,
    };
    if !reaches(i64::MAX) {
        return None;
    }
    if reaches(i64::MIN) {
        return Some(i64::MIN);
    }
    // Invariant: !reaches(lo), reaches(hi).
    let (mut lo, mut hi) = (i128::from(i64::MIN), i128::from(i64::MAX));
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if reaches(mid as i64) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi as i64)
}

/// The key equal to probe `v`, if any i64 equals it (`3.0` -> 3, `3.5` ->
/// none, text -> none).
#[inline]
pub(super) fn probe_key(v: &Value) -> Option<i64> {
    if let Value::Int(i) = v {
        return Some(*i);
    }
    let i = first_int(v, false)?;
    (Value::Int(i).total_cmp(v) == Ordering::Equal).then_some(i)
}

/// The closed key range `lo..=hi` of non-NULL keys within the bounds, or
/// `None` if it is empty. The bounds hold no NULL (the caller has already
/// answered "nothing" for those).
pub(super) fn int_range(lower: Bound<&Value>, upper: Bound<&Value>) -> Option<(i64, i64)> {
    let lo = match lower {
        Bound::Unbounded => i64::MIN,
        Bound::Included(v) => first_int(v, false)?,
        Bound::Excluded(v) => first_int(v, true)?,
    };
    // The last key below the upper bound is one less than the first key
    // past it; no key past it means every key is below.
    let past = match upper {
        Bound::Unbounded => None,
        Bound::Included(v) => first_int(v, true),
        Bound::Excluded(v) => first_int(v, false),
    };
    let hi = match past {
        None => i64::MAX,
        Some(p) => p.checked_sub(1)?,
    };
    (lo <= hi).then_some((lo, hi))
}

/// `int_range` for the bounds of a single-column index given as key
/// prefixes (already trimmed to one value, NULL-free). An empty prefix is
/// below every key when included and excludes everything when excluded,
/// as on the generic path.
pub(super) fn key_range(lower: Bound<&[Value]>, upper: Bound<&[Value]>) -> Option<(i64, i64)> {
    int_range(column_bound(lower)?, column_bound(upper)?)
}

fn column_bound(b: Bound<&[Value]>) -> Option<Bound<&Value>> {
    match b {
        Bound::Unbounded | Bound::Included([]) => Some(Bound::Unbounded),
        Bound::Excluded([]) => None,
        Bound::Included([v, ..]) => Some(Bound::Included(v)),
        Bound::Excluded([v, ..]) => Some(Bound::Excluded(v)),
    }
}

/// An ordered index over one integer column: `(key, row)` pairs in order,
/// and the rows whose key is NULL (which sort below every key).
#[derive(Debug)]
pub(super) struct IntOrdered {
    keys: IntKeys,
    nulls: BTreeSet<RowId>,
}

/// A unique index maps each key to its one row: 12 bytes an entry where a
/// `(key, row)` pair takes 16 (a primary key's index is unique).
#[derive(Debug)]
enum IntKeys {
    Unique(BTreeMap<i64, RowId>),
    Many(BTreeSet<(i64, RowId)>),
}

/// The rows of `IntOrdered::rows_in`.
pub(super) enum RowsIn<'a> {
    /// One key of a unique index: one descent, no range cursor.
    One(Option<RowId>),
    Unique(btree_map::Range<'a, i64, RowId>),
    Many(btree_set::Range<'a, (i64, RowId)>),
}

impl Iterator for RowsIn<'_> {
    type Item = RowId;
    #[inline]
    fn next(&mut self) -> Option<RowId> {
        match self {
            RowsIn::One(id) => id.take(),
            RowsIn::Unique(r) => r.next().map(|(_, &id)| id),
            RowsIn::Many(r) => r.next().map(|&(_, id)| id),
        }
    }
}

impl IntOrdered {
    pub(super) fn new(unique: bool) -> IntOrdered {
        IntOrdered {
            keys: if unique {
                IntKeys::Unique(BTreeMap::new())
            } else {
                IntKeys::Many(BTreeSet::new())
            },
            nulls: BTreeSet::new(),
        }
    }

    /// Adds `id` under `key`; a unique index must have been checked (a
    /// key already there is a bug, and panics).
    pub(super) fn insert(&mut self, key: Option<i64>, id: RowId) {
        match (key, &mut self.keys) {
            (Some(k), IntKeys::Unique(map)) => {
                let was = map.insert(k, id);
                assert!(was.is_none(), "unique index insert after a conflict check");
            }
            (Some(k), IntKeys::Many(set)) => {
                set.insert((k, id));
            }
            (None, _) => {
                self.nulls.insert(id);
            }
        }
    }

    pub(super) fn remove(&mut self, key: Option<i64>, id: RowId) {
        match (key, &mut self.keys) {
            (Some(k), IntKeys::Unique(map)) => {
                if map.get(&k) == Some(&id) {
                    map.remove(&k);
                }
            }
            (Some(k), IntKeys::Many(set)) => {
                set.remove(&(k, id));
            }
            (None, _) => {
                self.nulls.remove(&id);
            }
        }
    }

    /// Rows with keys in `lo..=hi`, in key order then RowId.
    #[inline]
    pub(super) fn rows_in(&self, lo: i64, hi: i64) -> RowsIn<'_> {
        match &self.keys {
            IntKeys::Unique(map) if lo == hi => RowsIn::One(map.get(&lo).copied()),
            IntKeys::Unique(map) => RowsIn::Unique(map.range(lo..=hi)),
            IntKeys::Many(set) => RowsIn::Many(set.range((lo, RowId(0))..=(hi, RowId(u32::MAX)))),
        }
    }

    /// Every row: NULL keys first (by RowId), then keys in order.
    pub(super) fn all_into(&self, out: &mut Vec<RowId>) {
        out.extend(self.nulls.iter().copied());
        match &self.keys {
            IntKeys::Unique(map) => out.extend(map.values()),
            IntKeys::Many(set) => out.extend(set.iter().map(|&(_, r)| r)),
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        let keys = match &self.keys {
            IntKeys::Unique(map) => map.len(),
            IntKeys::Many(set) => set.len(),
        };
        keys + self.nulls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    /// Probes covering every family and the numeric edges.
    fn probes() -> Vec<Value> {
        let mut v = vec![
            Value::Bool(false),
            Value::Bool(true),
            Value::text(""),
            Value::text("a"),
            Value::Bytes(vec![1u8].into()),
            Value::Timestamp(0),
        ];
        for d in [
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -1e300,
            9_223_372_036_854_775_808.0,  // 2^63
            -9_223_372_036_854_775_808.0, // -2^63
            0.0,
            -0.0,
            2.5,
            -2.5,
            3.0,
            -3.0,
            2.0f64.powi(53) + 2.0,
        ] {
            v.push(Value::Double(d));
        }
        for s in [
            "2.5",
            "-2.5",
            "3",
            "3.000",
            "-3",
            "0",
            "0.0000001",
            "-0.0000001",
        ] {
            v.push(Value::Decimal(Decimal::from_str(s).unwrap()));
        }
        v.push(Value::Decimal(Decimal::MAX));
        v.push(Value::Decimal(Decimal::MIN));
        for i in [
            -4,
            -3,
            -2,
            0,
            2,
            3,
            4,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX - 1,
            i64::MAX,
        ] {
            v.push(Value::Int(i));
        }
        v
    }

    /// Keys to check membership of, around every edge the probes touch.
    fn sample_keys() -> Vec<i64> {
        let mut ks: Vec<i64> = (-5..=5).collect();
        let big = 1i64 << 53;
        ks.extend([big - 1, big, big + 1, big + 2, big + 3]);
        ks.extend([i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX]);
        ks
    }

    fn contains(range: Option<(i64, i64)>, k: i64) -> bool {
        range.is_some_and(|(lo, hi)| lo <= k && k <= hi)
    }

    #[test]
    fn int_range_agrees_with_total_cmp() {
        let ps = probes();
        fn bounds(v: &Value) -> [Bound<&Value>; 3] {
            [Bound::Unbounded, Bound::Included(v), Bound::Excluded(v)]
        }
        for a in &ps {
            for b in &ps {
                for lower in bounds(a) {
                    for upper in bounds(b) {
                        let got = int_range(lower, upper);
                        for k in sample_keys() {
                            let key = Value::Int(k);
                            let above = match lower {
                                Bound::Unbounded => true,
                                Bound::Included(v) => key.total_cmp(v).is_ge(),
                                Bound::Excluded(v) => key.total_cmp(v).is_gt(),
                            };
                            let below = match upper {
                                Bound::Unbounded => true,
                                Bound::Included(v) => key.total_cmp(v).is_le(),
                                Bound::Excluded(v) => key.total_cmp(v).is_lt(),
                            };
                            assert_eq!(
                                contains(got, k),
                                above && below,
                                "{k} in {lower:?}..{upper:?}: got {got:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn probe_key_agrees_with_total_cmp() {
        for p in probes() {
            let want = sample_keys()
                .into_iter()
                .find(|&k| Value::Int(k).total_cmp(&p).is_eq());
            assert_eq!(probe_key(&p), want, "probe {p:?}");
        }
    }

    #[test]
    fn documented_probe_rules() {
        let d = |x: f64| Value::Double(x);
        let dec = |s: &str| Value::Decimal(Decimal::from_str(s).unwrap());
        use Bound::{Excluded as Exc, Included as Inc, Unbounded as All};
        assert_eq!(probe_key(&d(3.0)), Some(3));
        assert_eq!(probe_key(&d(3.5)), None);
        assert_eq!(probe_key(&dec("3.00")), Some(3));
        assert_eq!(probe_key(&dec("3.5")), None);
        assert_eq!(probe_key(&Value::text("3")), None);
        // id > 2.5 and id >= 2.5 mean id >= 3; id < 2.5 and id <= 2.5 mean id <= 2.
        assert_eq!(int_range(Exc(&d(2.5)), All), Some((3, i64::MAX)));
        assert_eq!(int_range(Inc(&d(2.5)), All), Some((3, i64::MAX)));
        assert_eq!(int_range(All, Exc(&d(2.5))), Some((i64::MIN, 2)));
        assert_eq!(int_range(All, Inc(&d(2.5))), Some((i64::MIN, 2)));
        assert_eq!(int_range(Exc(&dec("-2.5")), All), Some((-2, i64::MAX)));
        // NaN sorts above every number.
        assert_eq!(
            int_range(All, Exc(&d(f64::NAN))),
            Some((i64::MIN, i64::MAX))
        );
        assert_eq!(int_range(Exc(&d(f64::NAN)), All), None);
        // Out-of-range doubles clamp.
        assert_eq!(
            int_range(Inc(&d(-1e300)), Inc(&d(1e300))),
            Some((i64::MIN, i64::MAX))
        );
        assert_eq!(int_range(Inc(&d(1e300)), All), None);
        assert_eq!(int_range(All, Exc(&d(-1e300))), None);
        // Text sorts above numbers, booleans below.
        let a = Value::text("a");
        assert_eq!(int_range(All, Exc(&a)), Some((i64::MIN, i64::MAX)));
        assert_eq!(int_range(Exc(&a), All), None);
        assert_eq!(
            int_range(Inc(&Value::Bool(true)), All),
            Some((i64::MIN, i64::MAX))
        );
        // Reversed and integer edges.
        assert_eq!(int_range(Inc(&Value::Int(5)), Inc(&Value::Int(4))), None);
        assert_eq!(int_range(Exc(&Value::Int(i64::MAX)), All), None);
        assert_eq!(int_range(All, Exc(&Value::Int(i64::MIN))), None);
    }
}
