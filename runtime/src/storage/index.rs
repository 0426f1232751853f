//! One secondary structure over a table's rows: a hash index (equality) or an
//! ordered index (equality, prefix equality, ranges, ordered scans).
//!
//! Owns: the key -> RowId maps and the key order used by range scans.
//! Must not: check types or NOT NULL (the table does), or decide whether a
//! change is allowed; `conflict` only reports, `insert` assumes it was asked.
//!
//! ```text
//!   Hash:    FxHashMap<key, One(RowId) | Many(sorted RowIds)>; NULL keys absent
//!            (a unique index on one integer column: FxHashMap<i64, RowId>,
//!            16 bytes an entry where a posting list makes it 32)
//!   Ordered: BTreeSet<(key, RowId)>; NULL keys present (NULL sorts lowest)
//!            (unique on one integer column: BTreeMap<i64, RowId>)
//!   key = i64 for one integer column (index_int.rs), the Value for one
//!   other column (hash only), else Box<[Value]>
//!   range/lookup probes: (prefix, Low|High) compare as prefix ++ [-inf|+inf]
//! ```

use super::hash::FxHashMap;
use super::index_int::{key_range, probe_key, stored_key, IntOrdered};
use super::{ColumnDef, IndexDef, IndexKind, RowId};
use crate::types::Value;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::hash_map::Entry as HashEntry;
use std::collections::BTreeSet;
use std::hash::Hash;
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

impl Postings {
    /// The lowest row.
    #[inline]
    fn first(&self) -> RowId {
        match self {
            Postings::One(r) => *r,
            Postings::Many(rs) => rs[0],
        }
    }

    fn extend_into(&self, out: &mut Vec<RowId>) {
        match self {
            Postings::One(r) => out.push(*r),
            Postings::Many(rs) => out.extend_from_slice(rs),
        }
    }

    fn add(&mut self, id: RowId) {
        match self {
            Postings::One(r) => {
                let r = *r;
                *self = Postings::Many(if r < id { vec![r, id] } else { vec![id, r] });
            }
            Postings::Many(rs) => {
                if let Err(at) = rs.binary_search(&id) {
                    rs.insert(at, id);
                }
            }
        }
    }

    /// Removes `id`; true if no row is left (the key must go).
    fn remove(&mut self, id: RowId) -> bool {
        match self {
            Postings::One(r) => *r == id,
            Postings::Many(rs) => {
                if let Ok(at) = rs.binary_search(&id) {
                    rs.remove(at);
                }
                if let [only] = rs[..] {
                    *self = Postings::One(only);
                }
                false
            }
        }
    }
}

fn hash_insert<K: Hash + Eq>(map: &mut FxHashMap<K, Postings>, key: K, id: RowId, unique: bool) {
    match map.entry(key) {
        HashEntry::Vacant(v) => {
            v.insert(Postings::One(id));
        }
        HashEntry::Occupied(mut o) => {
            assert!(!unique, "unique index insert after a conflict check");
            o.get_mut().add(id);
        }
    }
}

fn hash_remove<K, Q>(map: &mut FxHashMap<K, Postings>, key: &Q, id: RowId)
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    if map.get_mut(key).is_some_and(|p| p.remove(id)) {
        map.remove(key);
    }
}

/// Where the rows of an index live. A single integer column gets plain
/// `i64` keys (see index_int.rs); a single other column is keyed by the
/// value itself; everything else by boxed key slices.
#[derive(Debug)]
enum Store {
    Hash(FxHashMap<Box<[Value]>, Postings>),
    HashValue(FxHashMap<Value, Postings>),
    HashInt(FxHashMap<i64, Postings>),
    /// A unique index on one integer column: one row a key, no list.
    HashIntUnique(FxHashMap<i64, RowId>),
    Ordered(BTreeSet<Entry>),
    OrderedInt(IntOrdered),
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
    /// An empty index for `def` over a table with `table_columns`; the caller
    /// has checked the column positions.
    pub(crate) fn new(def: &IndexDef, table_columns: &[ColumnDef]) -> Index {
        let columns: Box<[usize]> = def.columns.as_slice().into();
        let contiguous = match columns.first() {
            Some(&a) if columns.iter().enumerate().all(|(i, &c)| c == a + i) => {
                Some((a, a + columns.len()))
            }
            _ => None,
        };
        let single = columns.len() == 1;
        let int = single
            && table_columns
                .get(columns[0])
                .is_some_and(|c| c.ty.is_integer());
        let store = match (def.kind, single, int) {
            (IndexKind::Hash, _, true) if def.unique => Store::HashIntUnique(FxHashMap::default()),
            (IndexKind::Hash, _, true) => Store::HashInt(FxHashMap::default()),
            (IndexKind::Hash, true, false) => Store::HashValue(FxHashMap::default()),
            (IndexKind::Hash, false, _) => Store::Hash(FxHashMap::default()),
            (IndexKind::Ordered, _, true) => Store::OrderedInt(IntOrdered::new(def.unique)),
            (IndexKind::Ordered, _, false) => Store::Ordered(BTreeSet::new()),
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

    /// The value of the key column of a single-column index.
    #[inline]
    fn single<'a>(&self, row: &'a [Value]) -> &'a Value {
        &row[self.columns[0]]
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
        let found = match &self.store {
            Store::HashInt(map) => map.get(&stored_key(self.single(row))?)?.first(),
            Store::HashIntUnique(map) => *map.get(&stored_key(self.single(row))?)?,
            Store::HashValue(map) => match self.single(row) {
                Value::Null => return None,
                v => map.get(v)?.first(),
            },
            Store::OrderedInt(ix) => {
                let k = stored_key(self.single(row))?;
                ix.rows_in(k, k).find(|r| Some(*r) != except)?
            }
            Store::Hash(map) => {
                let mut buf = Vec::new();
                let key = borrow_key(self.contiguous, &self.columns, row, &mut buf);
                if has_null(key) {
                    return None;
                }
                map.get(key)?.first()
            }
            Store::Ordered(set) => {
                let mut buf = Vec::new();
                let key = borrow_key(self.contiguous, &self.columns, row, &mut buf);
                if has_null(key) {
                    return None;
                }
                let mut rows = ordered_eq(set, key);
                rows.find(|r| Some(*r) != except)?
            }
        };
        (Some(found) != except).then_some(found)
    }

    /// Adds `row` (stored at `id`); a unique index must have been checked.
    pub(crate) fn insert(&mut self, row: &[Value], id: RowId) {
        let unique = self.unique;
        let single = &row[self.columns[0]];
        match &mut self.store {
            Store::HashInt(map) => {
                if let Some(k) = stored_key(single) {
                    hash_insert(map, k, id, unique);
                }
            }
            Store::HashIntUnique(map) => {
                if let Some(k) = stored_key(single) {
                    match map.entry(k) {
                        HashEntry::Vacant(v) => {
                            v.insert(id);
                        }
                        HashEntry::Occupied(_) => {
                            panic!("unique index insert after a conflict check")
                        }
                    }
                }
            }
            Store::HashValue(map) => {
                if !single.is_null() {
                    hash_insert(map, single.clone(), id, unique);
                }
            }
            Store::OrderedInt(ix) => ix.insert(stored_key(single), id),
            Store::Hash(map) => {
                let key = owned_key(self.contiguous, &self.columns, row);
                if !has_null(&key) {
                    hash_insert(map, key, id, unique);
                }
            }
            Store::Ordered(set) => {
                let key = owned_key(self.contiguous, &self.columns, row);
                set.insert(Entry { key, row: id });
            }
        }
    }

    /// Removes `row` (stored at `id`).
    pub(crate) fn remove(&mut self, row: &[Value], id: RowId) {
        let single = &row[self.columns[0]];
        let mut buf = Vec::new();
        match &mut self.store {
            Store::HashInt(map) => {
                if let Some(k) = stored_key(single) {
                    hash_remove(map, &k, id);
                }
            }
            Store::HashIntUnique(map) => {
                if let Some(k) = stored_key(single) {
                    if map.get(&k) == Some(&id) {
                        map.remove(&k);
                    }
                }
            }
            Store::HashValue(map) => hash_remove(map, single, id),
            Store::OrderedInt(ix) => ix.remove(stored_key(single), id),
            Store::Hash(map) => {
                let key = borrow_key(self.contiguous, &self.columns, row, &mut buf);
                hash_remove(map, key, id);
            }
            Store::Ordered(set) => {
                let probe = Probe {
                    key: borrow_key(self.contiguous, &self.columns, row, &mut buf),
                    tail: Tail::Row(id),
                };
                set.remove(&probe as &dyn OrdKey);
            }
        }
    }

    /// Appends to `out` the rows whose key equals `key`, or (ordered index,
    /// or hash index by scanning) whose key starts with `key`.
    pub(crate) fn lookup_into(&self, key: &[Value], out: &mut Vec<RowId>) {
        let arity = self.columns.len();
        if key.len() > arity || has_null(key) {
            return;
        }
        let postings = match &self.store {
            Store::Ordered(_) | Store::OrderedInt(_) => {
                return self.range_into(Bound::Included(key), Bound::Included(key), out)
            }
            _ if key.len() < arity => return self.hash_prefix_into(key, out),
            Store::HashIntUnique(map) => {
                out.extend(probe_key(&key[0]).and_then(|k| map.get(&k)));
                return;
            }
            Store::Hash(map) => map.get(key),
            Store::HashValue(map) => map.get(&key[0]),
            Store::HashInt(map) => probe_key(&key[0]).and_then(|k| map.get(&k)),
        };
        if let Some(p) = postings {
            p.extend_into(out);
        }
    }

    /// The rows of a hash index whose key starts with `prefix` (shorter than
    /// the key): no structure helps, scan; rows in RowId order.
    fn hash_prefix_into(&self, prefix: &[Value], out: &mut Vec<RowId>) {
        let start = out.len();
        match &self.store {
            Store::Hash(map) => map
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .for_each(|(_, p)| p.extend_into(out)),
            // A single-column key: the prefix is empty.
            Store::HashValue(map) => map.values().for_each(|p| p.extend_into(out)),
            Store::HashInt(map) => map.values().for_each(|p| p.extend_into(out)),
            Store::HashIntUnique(map) => out.extend(map.values()),
            Store::Ordered(_) | Store::OrderedInt(_) => unreachable!("hash stores only"),
        }
        out[start..].sort_unstable();
    }

    /// The single row holding `key` (full key), without allocating.
    #[inline]
    pub(crate) fn lookup_one(&self, key: &[Value]) -> Option<RowId> {
        if key.len() != self.columns.len() || has_null(key) {
            return None;
        }
        match &self.store {
            Store::HashInt(map) => map.get(&probe_key(&key[0])?).map(Postings::first),
            Store::HashIntUnique(map) => map.get(&probe_key(&key[0])?).copied(),
            Store::HashValue(map) => map.get(&key[0]).map(Postings::first),
            Store::Hash(map) => map.get(key).map(Postings::first),
            Store::OrderedInt(ix) => {
                let k = probe_key(&key[0])?;
                ix.rows_in(k, k).next()
            }
            Store::Ordered(set) => ordered_eq(set, key).next(),
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
        match &self.store {
            Store::Ordered(set) => ordered_range(set, lower, upper, out),
            Store::OrderedInt(ix) if full => ix.all_into(out),
            Store::OrderedInt(ix) => {
                if let Some((lo, hi)) = key_range(lower, upper) {
                    out.extend(ix.rows_in(lo, hi));
                }
            }
            Store::HashInt(map) => {
                let entries = map.iter().flat_map(|(&k, p)| {
                    let (one, many) = match p {
                        Postings::One(r) => (Some(*r), &[][..]),
                        Postings::Many(rs) => (None, &rs[..]),
                    };
                    one.into_iter()
                        .chain(many.iter().copied())
                        .map(move |r| (k, r))
                });
                int_hash_range(entries, lower, upper, out)
            }
            Store::HashIntUnique(map) => {
                int_hash_range(map.iter().map(|(&k, &r)| (k, r)), lower, upper, out)
            }
            Store::HashValue(map) => {
                let entries = map.iter().map(|(k, p)| (std::slice::from_ref(k), p));
                hash_range(entries, lower, upper, out)
            }
            Store::Hash(map) => {
                let entries = map.iter().map(|(k, p)| (&k[..], p));
                hash_range(entries, lower, upper, out)
            }
        }
    }

    /// Number of entries (rows with a stored key).
    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> usize {
        fn rows<'a>(ps: impl Iterator<Item = &'a Postings>) -> usize {
            ps.map(|p| match p {
                Postings::One(_) => 1,
                Postings::Many(rs) => rs.len(),
            })
            .sum()
        }
        match &self.store {
            Store::Hash(map) => rows(map.values()),
            Store::HashValue(map) => rows(map.values()),
            Store::HashInt(map) => rows(map.values()),
            Store::HashIntUnique(map) => map.len(),
            Store::Ordered(set) => set.len(),
            Store::OrderedInt(ix) => ix.len(),
        }
    }
}

fn owned_key(contiguous: Option<(usize, usize)>, columns: &[usize], row: &[Value]) -> Box<[Value]> {
    match contiguous {
        Some((a, b)) => row[a..b].into(),
        None => columns.iter().map(|&c| row[c].clone()).collect(),
    }
}

/// Rows of a generic ordered index whose key equals the full `key`.
fn ordered_eq<'a>(set: &'a BTreeSet<Entry>, key: &[Value]) -> impl Iterator<Item = RowId> + 'a {
    let lo = Probe {
        key,
        tail: Tail::Low,
    };
    let hi = Probe {
        key,
        tail: Tail::High,
    };
    let range = (
        Bound::Included(&lo as &dyn OrdKey),
        Bound::Included(&hi as &dyn OrdKey),
    );
    set.range::<dyn OrdKey, _>(range).map(|e| e.row)
}

/// `range_into` over a generic ordered index, bounds trimmed.
fn ordered_range(
    set: &BTreeSet<Entry>,
    lower: Bound<&[Value]>,
    upper: Bound<&[Value]>,
    out: &mut Vec<RowId>,
) {
    if let (Bound::Unbounded, Bound::Unbounded) = (lower, upper) {
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

/// `range_into` over an integer hash index: a scan and a sort.
fn int_hash_range(
    entries: impl Iterator<Item = (i64, RowId)>,
    lower: Bound<&[Value]>,
    upper: Bound<&[Value]>,
    out: &mut Vec<RowId>,
) {
    let Some((lo, hi)) = key_range(lower, upper) else {
        return;
    };
    let mut hits: Vec<(i64, RowId)> = entries.filter(|(k, _)| (lo..=hi).contains(k)).collect();
    hits.sort_unstable();
    out.extend(hits.into_iter().map(|(_, r)| r));
}

/// `range_into` over a hash index: a scan and a sort, for callers that did
/// not check the index kind. Hash indexes hold no NULL keys.
fn hash_range<'a>(
    entries: impl Iterator<Item = (&'a [Value], &'a Postings)>,
    lower: Bound<&[Value]>,
    upper: Bound<&[Value]>,
    out: &mut Vec<RowId>,
) {
    let prefix_cmp = |key: &[Value], b: &[Value]| key[..b.len().min(key.len())].cmp(b);
    let mut hits: Vec<(&[Value], RowId)> = Vec::new();
    for (k, p) in entries {
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
                Postings::Many(rs) => hits.extend(rs.iter().map(|r| (k, *r))),
            }
        }
    }
    hits.sort_unstable();
    out.extend(hits.into_iter().map(|(_, r)| r));
}
