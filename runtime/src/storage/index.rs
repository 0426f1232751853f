//! One secondary structure over a table's rows: a hash index (equality) or an
//! ordered index (equality, prefix equality, ranges, ordered scans).
//!
//! Owns: the key -> RowId maps and the key order used by range scans.
//! Must not: check types or NOT NULL (the table does), or decide whether a
//! change is allowed; `conflict` only reports, `insert` assumes it was asked.
//!
//! ```text
//!   Hash:    FxHashMap<key, One(RowId) | Many(sorted RowIds)>; NULL keys absent
//!   Ordered: BTreeSet<(key, RowId)>; NULL keys present (NULL sorts lowest)
//!   range/lookup probes: (prefix, Low|High) compare as prefix ++ [-inf|+inf]
//! ```

use super::hash::FxHashMap;
use super::{IndexDef, IndexKind, RowId};
use crate::types::Value;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

/// What follows the key values in the order of an ordered index.
#[derive(Debug, Clone, Copy)]
enum Tail {
    /// Below every key that extends the prefix.
    Low,
    /// A stored entry: its key ends here, ties broken by row.
    Row(RowId),
    /// Above every key that extends the prefix.
    High,
}

/// Anything comparable inside the ordered index: stored entries and probes.
trait OrdKey {
    fn key(&self) -> &[Value];
    fn tail(&self) -> Tail;
}

/// Lexicographic order over `key ++ [tail]` where Low < Row(_) < any value
/// < High. Entries of one index all have the same length, so a probe with a
/// prefix and Low/High brackets exactly the entries extending that prefix.
fn cmp_ord_keys(a: &dyn OrdKey, b: &dyn OrdKey) -> Ordering {
    let (ka, kb) = (a.key(), b.key());
    let n = ka.len().min(kb.len());
    for (x, y) in ka[..n].iter().zip(&kb[..n]) {
        match x.cmp(y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    // Rank of the element right after the common part: Low 0, Row 1,
    // a further key value 2, High 3.
    let rank = |k: &[Value], t: Tail| match (k.len() > n, t) {
        (true, _) => 2u8,
        (false, Tail::Low) => 0,
        (false, Tail::Row(_)) => 1,
        (false, Tail::High) => 3,
    };
    match (ka.len() > n, a.tail(), kb.len() > n, b.tail()) {
        (false, Tail::Row(ra), false, Tail::Row(rb)) => ra.cmp(&rb),
        _ => rank(ka, a.tail()).cmp(&rank(kb, b.tail())),
    }
}

impl PartialEq for dyn OrdKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        cmp_ord_keys(self, other) == Ordering::Equal
    }
}
impl Eq for dyn OrdKey + '_ {}
impl PartialOrd for dyn OrdKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for dyn OrdKey + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_ord_keys(self, other)
    }
}

/// A stored ordered-index entry.
#[derive(Debug)]
struct Entry {
    key: Box<[Value]>,
    row: RowId,
}

impl OrdKey for Entry {
    fn key(&self) -> &[Value] {
        &self.key
    }
    fn tail(&self) -> Tail {
        Tail::Row(self.row)
    }
}
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_ord_keys(self, other)
    }
}
impl<'a> Borrow<dyn OrdKey + 'a> for Entry {
    fn borrow(&self) -> &(dyn OrdKey + 'a) {
        self
    }
}

/// A borrowed search key for the ordered index.
struct Probe<'a> {
    key: &'a [Value],
    tail: Tail,
}

impl OrdKey for Probe<'_> {
    fn key(&self) -> &[Value] {
        self.key
    }
    fn tail(&self) -> Tail {
        self.tail
    }
}

/// Rows of one hash key. `Many` is sorted by RowId and has at least two rows,
/// so undo restores the exact same contents.
#[derive(Debug)]
enum Postings {
    One(RowId),
    Many(Vec<RowId>),
}

#[derive(Debug)]
enum Store {
    Hash(FxHashMap<Box<[Value]>, Postings>),
    Ordered(BTreeSet<Entry>),
}

/// An index over one table.
#[derive(Debug)]
pub(crate) struct Index {
    columns: Box<[usize]>,
    /// `Some(a..b)` when the key columns are `a, a+1, .., b-1`: the key is
    /// then a slice of the row and probing allocates nothing.
    contiguous: Option<(usize, usize)>,
    unique: bool,
    store: Store,
}

/// The key of `row`: a slice of it when the columns are contiguous, else
/// built in `buf`.
#[inline]
fn borrow_key<'a>(
    contiguous: Option<(usize, usize)>,
    columns: &[usize],
    row: &'a [Value],
    buf: &'a mut Vec<Value>,
) -> &'a [Value] {
    match contiguous {
        Some((a, b)) => &row[a..b],
        None => {
            buf.extend(columns.iter().map(|&c| row[c].clone()));
            buf
        }
    }
}

/// A range bound cut to the index arity; `None` if it contains NULL (a
/// comparison with NULL is never true, so the range is empty).
fn trim_bound(b: Bound<&[Value]>, arity: usize) -> Option<Bound<&[Value]>> {
    match b {
        Bound::Included(k) | Bound::Excluded(k) if has_null(k) => None,
        Bound::Included(k) => Some(Bound::Included(&k[..k.len().min(arity)])),
        Bound::Excluded(k) => Some(Bound::Excluded(&k[..k.len().min(arity)])),
        Bound::Unbounded => Some(Bound::Unbounded),
    }
}

fn has_null(key: &[Value]) -> bool {
    key.iter().any(Value::is_null)
}

impl Index {
    /// An empty index for `def`; the caller has checked the column positions.
    pub(crate) fn new(def: &IndexDef) -> Index {
        let columns: Box<[usize]> = def.columns.as_slice().into();
        let contiguous = match columns.first() {
            Some(&a) if columns.iter().enumerate().all(|(i, &c)| c == a + i) => {
                Some((a, a + columns.len()))
            }
            _ => None,
        };
        let store = match def.kind {
            IndexKind::Hash => Store::Hash(FxHashMap::default()),
            IndexKind::Ordered => Store::Ordered(BTreeSet::new()),
        };
        Index {
            columns,
            contiguous,
            unique: def.unique,
            store,
        }
    }

    pub(crate) fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// Runs `f` on the key of `row`, borrowing it when the columns are
    /// contiguous and building it otherwise.
    #[inline]
    fn with_key<R>(&self, row: &[Value], f: impl FnOnce(&[Value]) -> R) -> R {
        let mut buf = Vec::new();
        f(borrow_key(self.contiguous, &self.columns, row, &mut buf))
    }

    fn owned_key(&self, row: &[Value]) -> Box<[Value]> {
        match self.contiguous {
            Some((a, b)) => row[a..b].into(),
            None => self.columns.iter().map(|&c| row[c].clone()).collect(),
        }
    }

    /// The key of `row` as values, for error messages.
    pub(crate) fn key_values(&self, row: &[Value]) -> Vec<Value> {
        self.columns.iter().map(|&c| row[c].clone()).collect()
    }

    /// Whether `old` and `new` differ in any key column.
    pub(crate) fn key_changed(&self, old: &[Value], new: &[Value]) -> bool {
        self.columns.iter().any(|&c| old[c] != new[c])
    }

    /// For a unique index: a row other than `except` that already holds the
    /// key of `row`. Keys with NULL never conflict.
    pub(crate) fn conflict(&self, row: &[Value], except: Option<RowId>) -> Option<RowId> {
        if !self.unique {
            return None;
        }
        self.with_key(row, |key| {
            if has_null(key) {
                return None;
            }
            let found = match &self.store {
                Store::Hash(map) => match map.get(key)? {
                    Postings::One(r) => *r,
                    Postings::Many(rs) => *rs.first()?,
                },
                Store::Ordered(set) => {
                    let (lo, hi) = (
                        Probe {
                            key,
                            tail: Tail::Low,
                        },
                        Probe {
                            key,
                            tail: Tail::High,
                        },
                    );
                    let range = (
                        Bound::Included(&lo as &dyn OrdKey),
                        Bound::Included(&hi as &dyn OrdKey),
                    );
                    let mut it = set.range::<dyn OrdKey, _>(range).map(|e| e.row);
                    it.find(|r| Some(*r) != except)?
                }
            };
            (Some(found) != except).then_some(found)
        })
    }

    /// Adds `row` (stored at `id`); a unique index must have been checked.
    pub(crate) fn insert(&mut self, row: &[Value], id: RowId) {
        let key = self.owned_key(row);
        match &mut self.store {
            Store::Hash(map) => {
                if has_null(&key) {
                    return;
                }
                match map.entry(key) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(Postings::One(id));
                    }
                    std::collections::hash_map::Entry::Occupied(mut o) => {
                        assert!(!self.unique, "unique index insert after a conflict check");
                        let p = o.get_mut();
                        match p {
                            Postings::One(r) => {
                                let r = *r;
                                *p = Postings::Many(if r < id { vec![r, id] } else { vec![id, r] });
                            }
                            Postings::Many(rs) => {
                                if let Err(at) = rs.binary_search(&id) {
                                    rs.insert(at, id);
                                }
                            }
                        }
                    }
                }
            }
            Store::Ordered(set) => {
                set.insert(Entry { key, row: id });
            }
        }
    }

    /// Removes `row` (stored at `id`).
    pub(crate) fn remove(&mut self, row: &[Value], id: RowId) {
        let mut buf = Vec::new();
        let key = borrow_key(self.contiguous, &self.columns, row, &mut buf);
        match &mut self.store {
            Store::Hash(map) => {
                let emptied = match map.get_mut(key) {
                    None => false,
                    Some(Postings::One(r)) => *r == id,
                    Some(p) => {
                        if let Postings::Many(rs) = p {
                            if let Ok(at) = rs.binary_search(&id) {
                                rs.remove(at);
                            }
                            if let [only] = rs[..] {
                                *p = Postings::One(only);
                            }
                        }
                        false
                    }
                };
                if emptied {
                    map.remove(key);
                }
            }
            Store::Ordered(set) => {
                let probe = Probe {
                    key,
                    tail: Tail::Row(id),
                };
                set.remove(&probe as &dyn OrdKey);
            }
        }
    }

    /// Appends to `out` the rows whose key equals `key`, or (ordered index,
    /// or hash index by scanning) whose key starts with `key`.
    pub(crate) fn lookup_into(&self, key: &[Value], out: &mut Vec<RowId>) {
        if key.len() > self.columns.len() || has_null(key) {
            return;
        }
        match &self.store {
            Store::Hash(map) if key.len() == self.columns.len() => match map.get(key) {
                None => {}
                Some(Postings::One(r)) => out.push(*r),
                Some(Postings::Many(rs)) => out.extend_from_slice(rs),
            },
            Store::Hash(map) => {
                // A prefix of a hash key: no structure helps, scan.
                let start = out.len();
                for p in map
                    .iter()
                    .filter(|(k, _)| k.starts_with(key))
                    .map(|(_, p)| p)
                {
                    match p {
                        Postings::One(r) => out.push(*r),
                        Postings::Many(rs) => out.extend_from_slice(rs),
                    }
                }
                out[start..].sort_unstable();
            }
            Store::Ordered(_) => self.range_into(Bound::Included(key), Bound::Included(key), out),
        }
    }

    /// The single row holding `key` (full key), without allocating.
    #[inline]
    pub(crate) fn lookup_one(&self, key: &[Value]) -> Option<RowId> {
        if key.len() != self.columns.len() || has_null(key) {
            return None;
        }
        match &self.store {
            Store::Hash(map) => match map.get(key)? {
                Postings::One(r) => Some(*r),
                Postings::Many(rs) => rs.first().copied(),
            },
            Store::Ordered(set) => {
                let (lo, hi) = (
                    Probe {
                        key,
                        tail: Tail::Low,
                    },
                    Probe {
                        key,
                        tail: Tail::High,
                    },
                );
                let range = (
                    Bound::Included(&lo as &dyn OrdKey),
                    Bound::Included(&hi as &dyn OrdKey),
                );
                set.range::<dyn OrdKey, _>(range).next().map(|e| e.row)
            }
        }
    }

    /// Appends rows with keys within the bounds (bounds may be prefixes), in
    /// key order then RowId. Keys with NULL are skipped unless both bounds
    /// are Unbounded; a bound containing NULL matches nothing.
    pub(crate) fn range_into(
        &self,
        lower: Bound<&[Value]>,
        upper: Bound<&[Value]>,
        out: &mut Vec<RowId>,
    ) {
        let arity = self.columns.len();
        let (Some(lower), Some(upper)) = (trim_bound(lower, arity), trim_bound(upper, arity))
        else {
            return;
        };
        let full = matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded));
        let set = match &self.store {
            Store::Ordered(set) => set,
            Store::Hash(map) => return hash_range(map, lower, upper, out),
        };
        if full {
            out.extend(set.iter().map(|e| e.row));
            return;
        }
        const NULL_KEY: &[Value] = &[Value::Null];
        let lo = match lower {
            // NULL sorts lowest: start after every key whose first column is NULL.
            Bound::Unbounded => Probe {
                key: NULL_KEY,
                tail: Tail::High,
            },
            Bound::Included(k) => Probe {
                key: k,
                tail: Tail::Low,
            },
            Bound::Excluded(k) => Probe {
                key: k,
                tail: Tail::High,
            },
        };
        let hi = match upper {
            Bound::Unbounded => None,
            Bound::Included(k) => Some(Probe {
                key: k,
                tail: Tail::High,
            }),
            Bound::Excluded(k) => Some(Probe {
                key: k,
                tail: Tail::Low,
            }),
        };
        let lo: &dyn OrdKey = &lo;
        let range = match &hi {
            // BTreeSet::range panics on an inverted range; it is just empty.
            Some(hi) if lo > (hi as &dyn OrdKey) => return,
            Some(hi) => (Bound::Included(lo), Bound::Included(hi as &dyn OrdKey)),
            None => (Bound::Included(lo), Bound::Unbounded),
        };
        let rows = set.range::<dyn OrdKey, _>(range);
        out.extend(rows.filter(|e| !has_null(&e.key)).map(|e| e.row));
    }

    /// Number of entries (rows with a stored key).
    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> usize {
        match &self.store {
            Store::Hash(map) => map
                .values()
                .map(|p| match p {
                    Postings::One(_) => 1,
                    Postings::Many(rs) => rs.len(),
                })
                .sum(),
            Store::Ordered(set) => set.len(),
        }
    }
}

/// `range_into` over a hash index: a scan and a sort, for callers that did
/// not check the index kind. Hash indexes hold no NULL keys.
fn hash_range(
    map: &FxHashMap<Box<[Value]>, Postings>,
    lower: Bound<&[Value]>,
    upper: Bound<&[Value]>,
    out: &mut Vec<RowId>,
) {
    let prefix_cmp = |key: &[Value], b: &[Value]| key[..b.len().min(key.len())].cmp(b);
    let mut hits: Vec<(&[Value], RowId)> = Vec::new();
    for (k, p) in map {
        let above = match lower {
            Bound::Unbounded => true,
            Bound::Included(b) => prefix_cmp(k, b) != Ordering::Less,
            Bound::Excluded(b) => prefix_cmp(k, b) == Ordering::Greater,
        };
        let below = match upper {
            Bound::Unbounded => true,
            Bound::Included(b) => prefix_cmp(k, b) != Ordering::Greater,
            Bound::Excluded(b) => prefix_cmp(k, b) == Ordering::Less,
        };
        if above && below {
            match p {
                Postings::One(r) => hits.push((k, *r)),
                Postings::Many(rs) => hits.extend(rs.iter().map(|r| (&k[..], *r))),
            }
        }
    }
    hits.sort_unstable();
    out.extend(hits.into_iter().map(|(_, r)| r));
}
