//! One table: row slots with a free list, its indexes, and the constraint
//! checks every insert and update passes.
//!
//! Owns: `Table` (schema; a flat arena of `width` cells per slot, where
//! RowId = slot and width = column count; a liveness flag per slot; the free
//! list; indexes kept in step with `schema.indexes`). Must not: know about
//! transactions; `Database` logs each change and calls the `undo_*` methods
//! in reverse to restore exactly the prior state (slots, free list, indexes).
//!
//! Rows live inline in one `Vec<Value>` rather than one box each, so a point
//! lookup touches the row's cells directly and an insert allocates nothing
//! per row once the arena has grown. Dead slots hold `Value::Null`.
//!
//! A snapshot reads a table a slice at a time while writes go on
//! (`snapshot_rows`): from `begin_snapshot` until its cursor has passed a
//! slot, the first change to that slot keeps what it held (copy on write,
//! `SnapshotCow`), so the snapshot sees every row as it was when it began.
//!
//! ```text
//!   Database --insert_row/update_row/delete_row--> Table --> cells, indexes
//!   Database --undo_insert/undo_update/undo_delete--> Table (reverse order)
//!   snapshot --begin_snapshot, snapshot_rows*--> rows as of the begin
//! ```

use super::hash::FxHashMap;
use super::index::Index;
use super::{ColumnDef, Row, RowId, StorageError, TableId, TableSchema};
use crate::types::{DataType, Value};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Slots one `snapshot_rows` call passes at most (rows or empty).
const SNAPSHOT_SLOTS_PER_CALL: u32 = 1 << 16;

/// Which snapshot a table's copy-on-write serves: live until that snapshot
/// is finished or abandoned (a table lent to another thread then drops its
/// copy at its next write).
pub type SnapshotToken = Arc<AtomicBool>;

/// A snapshot reading this table: the slots it covers (those the table had
/// when it began), how far it has read, and what the slots it has not read
/// yet held then, where they changed since (None: the slot was empty).
/// Each slot is kept at most once, so this holds at most the table's rows
/// as of the begin.
struct SnapshotCow {
    token: SnapshotToken,
    slots: u32,
    cursor: u32,
    kept: FxHashMap<u32, Option<Row>>,
}

/// A table's rows and indexes.
pub struct Table {
    id: TableId,
    schema: TableSchema,
    /// Values per row: the column count (`reshape` changes it).
    width: usize,
    /// Slot `s` is `cells[s * width..(s + 1) * width]`; a dead slot is all Null.
    cells: Vec<Value>,
    /// Whether each slot holds a row; its length is the slot count.
    alive: Bitmap,
    /// Free slots, reused last-freed first; undo pops and pushes in exact
    /// reverse so the next RowId after a rollback is what it was before.
    free: Vec<u32>,
    live: usize,
    /// Parallel to `schema.indexes`.
    indexes: Vec<Index>,
    /// A snapshot reading the rows as they were when it began.
    cow: Option<Box<SnapshotCow>>,
}

/// Where an inserted row went; undo needs to know whether the slot is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    pub(crate) id: RowId,
    /// The arena grew by a slot (rather than reusing a free slot).
    pub(crate) fresh: bool,
}

impl Table {
    /// An empty table; `schema` has been validated by the caller.
    pub(crate) fn new(id: TableId, schema: TableSchema) -> Table {
        let indexes = schema
            .indexes
            .iter()
            .map(|d| Index::new(d, &schema.columns))
            .collect();
        Table {
            id,
            width: schema.columns.len(),
            schema,
            cells: Vec::new(),
            alive: Bitmap::default(),
            free: Vec::new(),
            live: 0,
            indexes,
            cow: None,
        }
    }

    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }
    pub fn id(&self) -> TableId {
        self.id
    }
    pub fn len(&self) -> usize {
        self.live
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The values of row `id` (one per column), or None if the slot is not live.
    #[inline]
    pub fn get(&self, id: RowId) -> Option<&[Value]> {
        let slot = id.0 as usize;
        if !self.alive.get(slot)? {
            return None;
        }
        Some(&self.cells[self.range(slot)])
    }
    /// All live rows, in slot order.
    pub fn scan(&self) -> impl Iterator<Item = (RowId, &[Value])> + '_ {
        self.alive
            .ones()
            .map(|i| (RowId(i as u32), &self.cells[self.range(i)]))
    }
    /// The cells of slot `slot` in the arena.
    #[inline]
    fn range(&self, slot: usize) -> std::ops::Range<usize> {
        slot * self.width..(slot + 1) * self.width
    }
    /// Position of the index named `name` (case-insensitive) in `schema().indexes`.
    pub fn index_position(&self, name: &str) -> Option<usize> {
        self.schema
            .indexes
            .iter()
            .position(|d| d.name.eq_ignore_ascii_case(name))
    }
    /// Rows whose index key equals `key` (one value per index column, already
    /// of the columns' types). Works for Hash and Ordered indexes. A key
    /// containing NULL matches nothing. On an Ordered index `key` may be a
    /// prefix of the columns (rows in key order); on a Hash index a prefix
    /// works but scans the whole index. Unknown index position: no rows.
    pub fn index_lookup(&self, index: usize, key: &[Value]) -> Vec<RowId> {
        let mut out = Vec::new();
        self.index_lookup_into(index, key, &mut out);
        out
    }
    /// `index_lookup` appending to a caller-owned buffer (no allocation once
    /// the buffer has grown).
    pub fn index_lookup_into(&self, index: usize, key: &[Value], out: &mut Vec<RowId>) {
        if let Some(ix) = self.indexes.get(index) {
            ix.lookup_into(key, out);
        }
    }
    /// The first row whose index key equals the full `key`, without
    /// allocating: the point lookup for PRIMARY KEY and UNIQUE indexes.
    #[inline]
    pub fn index_get(&self, index: usize, key: &[Value]) -> Option<RowId> {
        self.indexes.get(index)?.lookup_one(key)
    }
    /// Rows of an Ordered index whose key lies within the bounds, in key order
    /// (ascending; ties by RowId). Bounds may be a prefix of the index columns.
    /// NULL keys are excluded unless both bounds are Unbounded. A bound that
    /// contains NULL matches nothing. On a Hash index this scans and sorts.
    pub fn index_range(
        &self,
        index: usize,
        lower: Bound<&[Value]>,
        upper: Bound<&[Value]>,
    ) -> Vec<RowId> {
        let mut out = Vec::new();
        self.index_range_into(index, lower, upper, &mut out);
        out
    }
    /// `index_range` appending to a caller-owned buffer.
    pub fn index_range_into(
        &self,
        index: usize,
        lower: Bound<&[Value]>,
        upper: Bound<&[Value]>,
        out: &mut Vec<RowId>,
    ) {
        if let Some(ix) = self.indexes.get(index) {
            ix.range_into(lower, upper, out);
        }
    }

    pub(crate) fn schema_mut(&mut self) -> &mut TableSchema {
        &mut self.schema
    }

    /// Checks `row` against arity, types, ranges, lengths, NOT NULL and every
    /// unique index (`except` is the row being updated), changing nothing.
    fn check(&self, row: &[Value], except: Option<RowId>) -> Result<(), StorageError> {
        let cols = &self.schema.columns;
        if row.len() != cols.len() {
            return Err(StorageError::Arity {
                table: self.schema.name.clone(),
                expected: cols.len(),
                found: row.len(),
            });
        }
        // One pass; on failure report the first column failing the
        // earliest check (type, then range, then length, then NOT NULL).
        let mut worst: Option<(Check, usize)> = None;
        for (i, (v, c)) in row.iter().zip(cols).enumerate() {
            if let Some(fail) = check_value(v, c.ty, c.nullable) {
                if worst.is_none_or(|(w, _)| fail.rank() < w.rank()) {
                    worst = Some((fail, i));
                }
            }
        }
        if let Some((fail, i)) = worst {
            return Err(self.value_error(fail, i, &row[i]));
        }
        for (ix, def) in self.indexes.iter().zip(&self.schema.indexes) {
            if ix.conflict(row, except).is_some() {
                return Err(self.unique_error(ix, &def.name, row));
            }
        }
        Ok(())
    }

    fn value_error(&self, fail: Check, col: usize, v: &Value) -> StorageError {
        value_error(&self.schema.name, &self.schema.columns[col], fail, v)
    }

    /// Gives the table `schema` (its column list changed by `ALTER TABLE`):
    /// each live row becomes what `map` writes for it, and every index is
    /// rebuilt. Slots keep their RowIds. A snapshot reading the table keeps
    /// every row it has not read yet as it was, in the old shape.
    pub(crate) fn reshape(&mut self, schema: TableSchema, map: &dyn Fn(&[Value], &mut Vec<Value>)) {
        if let Some((from, to)) = self.cow.as_deref().map(|c| (c.cursor, c.slots)) {
            for slot in from..to {
                self.keep_for_snapshot(slot as usize);
            }
        }
        let width = schema.columns.len();
        let slots = self.alive.len();
        let mut cells = Vec::with_capacity(slots * width);
        let mut row = Vec::with_capacity(width);
        for slot in 0..slots {
            if self.alive.is_set(slot) {
                row.clear();
                map(&self.cells[self.range(slot)], &mut row);
                assert_eq!(row.len(), width, "reshape: a row of the new width");
                cells.append(&mut row);
            } else {
                cells.resize(cells.len() + width, Value::Null);
            }
        }
        self.cells = cells;
        self.width = width;
        self.indexes = schema
            .indexes
            .iter()
            .map(|d| Index::new(d, &schema.columns))
            .collect();
        self.schema = schema;
        for slot in self.alive.ones().collect::<Vec<_>>() {
            let r = self.range(slot);
            for ix in &mut self.indexes {
                ix.insert(&self.cells[r.clone()], RowId(slot as u32));
            }
        }
    }

    /// Validates `row` and copies it into a slot (the caller keeps `row`,
    /// e.g. for the write-set).
    #[inline]
    pub(crate) fn insert_row(&mut self, row: &[Value]) -> Result<Placed, StorageError> {
        self.check(row, None)?;
        let placed = match self.free.pop() {
            Some(slot) => {
                self.keep_for_snapshot(slot as usize);
                let r = self.range(slot as usize);
                self.cells[r].clone_from_slice(row);
                self.alive.set(slot as usize, true);
                Placed {
                    id: RowId(slot),
                    fresh: false,
                }
            }
            None => {
                let Ok(slot) = u32::try_from(self.alive.len()) else {
                    return Err(StorageError::TableFull(self.schema.name.clone()));
                };
                // Past what any snapshot reads; drops an old one's copy.
                self.keep_for_snapshot(slot as usize);
                // Vec growth is geometric, so this amortizes to no allocation.
                self.cells.extend_from_slice(row);
                self.alive.push(true);
                Placed {
                    id: RowId(slot),
                    fresh: true,
                }
            }
        };
        for ix in &mut self.indexes {
            ix.insert(row, placed.id);
        }
        self.live += 1;
        Ok(placed)
    }

    /// Validates `row` and puts it in place of row `id`; returns the old row.
    pub(crate) fn update_row(&mut self, id: RowId, row: &[Value]) -> Result<Row, StorageError> {
        if self.get(id).is_none() {
            return Err(StorageError::NoSuchRow(id));
        }
        self.check(row, Some(id))?;
        self.keep_for_snapshot(id.0 as usize);
        let r = self.range(id.0 as usize);
        let old = &self.cells[r.clone()];
        for ix in &mut self.indexes {
            if ix.key_changed(old, row) {
                ix.remove(old, id);
                ix.insert(row, id);
            }
        }
        let old: Row = self.cells[r]
            .iter_mut()
            .zip(row)
            .map(|(cell, v)| std::mem::replace(cell, v.clone()))
            .collect();
        Ok(old)
    }

    /// Removes row `id`; returns it.
    pub(crate) fn delete_row(&mut self, id: RowId) -> Result<Row, StorageError> {
        if self.get(id).is_none() {
            return Err(StorageError::NoSuchRow(id));
        }
        let slot = id.0 as usize;
        self.keep_for_snapshot(slot);
        let r = self.range(slot);
        for ix in &mut self.indexes {
            ix.remove(&self.cells[r.clone()], id);
        }
        let row: Row = self.cells[r].iter_mut().map(take_cell).collect();
        self.alive.set(slot, false);
        self.free.push(id.0);
        self.live -= 1;
        Ok(row)
    }

    /// Reverses `insert_row` (the most recent change not yet undone).
    pub(crate) fn undo_insert(&mut self, placed: Placed) {
        let slot = placed.id.0 as usize;
        assert!(self.alive.is_set(slot), "undo: inserted row is live");
        self.keep_for_snapshot(slot);
        let r = self.range(slot);
        for ix in &mut self.indexes {
            ix.remove(&self.cells[r.clone()], placed.id);
        }
        if placed.fresh {
            assert_eq!(slot + 1, self.alive.len(), "undo: fresh slot is the last");
            self.alive.pop();
            self.cells.truncate(r.start);
        } else {
            self.cells[r].iter_mut().for_each(|c| *c = Value::Null);
            self.alive.set(slot, false);
            self.free.push(placed.id.0);
        }
        self.live -= 1;
    }

    /// Reverses `update_row`, putting `old` back.
    pub(crate) fn undo_update(&mut self, id: RowId, old: Row) {
        let slot = id.0 as usize;
        assert!(self.alive.is_set(slot), "undo: updated row is live");
        self.keep_for_snapshot(slot);
        let r = self.range(slot);
        let new = &self.cells[r.clone()];
        for ix in &mut self.indexes {
            if ix.key_changed(new, &old) {
                ix.remove(new, id);
                ix.insert(&old, id);
            }
        }
        put_cells(&mut self.cells[r], old);
    }

    /// Reverses `delete_row`, putting `row` back in its own slot.
    pub(crate) fn undo_delete(&mut self, id: RowId, row: Row) {
        assert_eq!(
            self.free.pop(),
            Some(id.0),
            "undo: deleted slot tops the free list"
        );
        let slot = id.0 as usize;
        assert!(!self.alive.is_set(slot), "undo: deleted slot is empty");
        self.keep_for_snapshot(slot);
        for ix in &mut self.indexes {
            ix.insert(&row, id);
        }
        let r = self.range(slot);
        put_cells(&mut self.cells[r], row);
        self.alive.set(slot, true);
        self.live += 1;
    }

    /// A snapshot begins reading this table: it will see every row as it
    /// is now, whatever changes before `snapshot_rows` reaches it. (It
    /// replaces the copy of any earlier snapshot.)
    pub(crate) fn begin_snapshot(&mut self, token: &SnapshotToken) {
        self.cow = Some(Box::new(SnapshotCow {
            token: token.clone(),
            slots: u32::try_from(self.alive.len()).expect("slots fit a RowId"),
            cursor: 0,
            kept: FxHashMap::default(),
        }));
    }

    /// Before slot `slot` changes: keeps what it holds for the snapshot
    /// reading this table, if that one has not read it yet. Drops the copy
    /// of a snapshot that is over.
    #[inline]
    fn keep_for_snapshot(&mut self, slot: usize) {
        let Some(cow) = self.cow.as_deref_mut() else {
            return;
        };
        if !cow.token.load(Ordering::Relaxed) {
            self.cow = None;
            return;
        }
        let Ok(s) = u32::try_from(slot) else {
            return;
        };
        if s < cow.cursor || s >= cow.slots || cow.kept.contains_key(&s) {
            return;
        }
        let was = self
            .alive
            .is_set(slot)
            .then(|| self.cells[slot * self.width..(slot + 1) * self.width].into());
        cow.kept.insert(s, was);
    }

    /// Hands the rows of the snapshot `token` to `more`, in slot order from
    /// where the last call stopped, each as it was when the snapshot began,
    /// until `more` returns false. Some(true) once every row is handed
    /// (the table's copy is dropped then), Some(false) if `more` stopped
    /// first, None if this table has no copy for that snapshot.
    pub(crate) fn snapshot_rows(
        &mut self,
        token: &SnapshotToken,
        mut more: impl FnMut(&[Value]) -> bool,
    ) -> Option<bool> {
        let cow = self
            .cow
            .as_deref_mut()
            .filter(|c| Arc::ptr_eq(&c.token, token))?;
        if !cow.token.load(Ordering::Relaxed) {
            self.cow = None;
            return None;
        }
        let mut go = true;
        // Empty slots cost no bytes: bounded apart, so a sparse table's
        // step stays short too.
        let stop_at = cow.cursor.saturating_add(SNAPSHOT_SLOTS_PER_CALL);
        while go && cow.cursor < cow.slots && cow.cursor < stop_at {
            let slot = cow.cursor as usize;
            let kept = if cow.kept.is_empty() {
                None
            } else {
                cow.kept.remove(&cow.cursor)
            };
            match kept {
                Some(Some(was)) => go = more(&was),
                Some(None) => {}
                None if self.alive.get(slot) == Some(true) => {
                    go = more(&self.cells[slot * self.width..(slot + 1) * self.width]);
                }
                None => {}
            }
            cow.cursor += 1;
        }
        let done = cow.cursor >= cow.slots;
        if done {
            self.cow = None;
        }
        Some(done)
    }

    #[cfg(test)]
    pub(crate) fn holds_snapshot_copy(&self) -> bool {
        self.cow.is_some()
    }

    /// Drops the copy kept for a snapshot, if any (one that was abandoned).
    pub(crate) fn end_snapshot(&mut self) {
        self.cow = None;
    }

    /// The unique-violation error for `row` against index `ix`, naming the
    /// constraint, its columns and the offending key.
    fn unique_error(&self, ix: &Index, constraint: &str, row: &[Value]) -> StorageError {
        let cols = &self.schema.columns;
        let names: Vec<&str> = ix
            .columns()
            .iter()
            .map(|&c| cols[c].name.as_str())
            .collect();
        let key: Vec<String> = ix.key_values(row).iter().map(Value::to_string).collect();
        StorageError::Unique {
            table: self.schema.name.clone(),
            constraint: constraint.to_string(),
            columns: names.join(", "),
            key: key.join(", "),
        }
    }

    /// Builds an index over the live rows; on a unique violation returns the
    /// error and the table is unchanged.
    pub(crate) fn add_index(&mut self, def: super::IndexDef) -> Result<(), StorageError> {
        let mut ix = Index::new(&def, &self.schema.columns);
        for (id, row) in self.scan() {
            if ix.conflict(row, None).is_some() {
                return Err(self.unique_error(&ix, &def.name, row));
            }
            ix.insert(row, id);
        }
        self.indexes.push(ix);
        self.schema.indexes.push(def);
        Ok(())
    }

    /// Drops the index at `pos`, keeping `schema.primary_key` pointing at the
    /// same index (or None if it was this one).
    pub(crate) fn remove_index(&mut self, pos: usize) {
        self.indexes.remove(pos);
        self.schema.indexes.remove(pos);
        self.schema.primary_key = match self.schema.primary_key {
            Some(pk) if pk == pos => None,
            Some(pk) if pk > pos => Some(pk - 1),
            other => other,
        };
    }

    #[cfg(test)]
    pub(crate) fn index_entry_count(&self, index: usize) -> usize {
        self.indexes[index].entry_count()
    }
    #[cfg(test)]
    pub(crate) fn free_slots(&self) -> &[u32] {
        &self.free
    }
    /// Asserts the arena's invariants and returns its slot count: `width`
    /// cells per slot, dead slots all Null and exactly those on the free
    /// list, `get` agreeing with liveness, `len` counting live slots.
    #[cfg(test)]
    pub(crate) fn check_arena(&self) -> usize {
        let slots = self.alive.len();
        assert_eq!(self.cells.len(), slots * self.width, "arena size");
        let mut dead: Vec<u32> = Vec::new();
        for i in 0..slots {
            let id = RowId(i as u32);
            if self.alive.is_set(i) {
                assert_eq!(self.get(id), Some(&self.cells[self.range(i)]));
            } else {
                dead.push(id.0);
                assert_eq!(self.get(id), None, "dead slot {i} visible");
                let cells = &self.cells[self.range(i)];
                assert!(cells.iter().all(Value::is_null), "dead slot {i} not Null");
            }
        }
        let mut free = self.free.clone();
        free.sort_unstable();
        assert_eq!(free, dead, "free list is exactly the dead slots");
        assert_eq!(self.live, slots - dead.len(), "live count");
        assert_eq!(self.get(RowId(slots as u32)), None, "past the end");
        slots
    }
}

/// One bit per slot (set = live): small enough to stay in cache for the
/// point lookups that check it.
#[derive(Default)]
struct Bitmap {
    words: Vec<u64>,
    /// Number of slots (bits in use).
    len: usize,
}

impl Bitmap {
    fn len(&self) -> usize {
        self.len
    }
    /// Bit `i`, or None past the end.
    #[inline]
    fn get(&self, i: usize) -> Option<bool> {
        (i < self.len).then(|| (self.words[i / 64] >> (i % 64)) & 1 == 1)
    }
    /// Bit `i`, which must be in range.
    fn is_set(&self, i: usize) -> bool {
        self.get(i).expect("slot within the table")
    }
    fn set(&mut self, i: usize, on: bool) {
        assert!(i < self.len, "slot within the table");
        let (w, b) = (i / 64, 1u64 << (i % 64));
        if on {
            self.words[w] |= b;
        } else {
            self.words[w] &= !b;
        }
    }
    fn push(&mut self, on: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        self.len += 1;
        self.set(self.len - 1, on);
    }
    /// Drops the last bit (which the caller has cleared or is discarding).
    fn pop(&mut self) {
        assert!(self.len > 0, "pop from an empty bitmap");
        self.set(self.len - 1, false);
        self.len -= 1;
        if self.len.is_multiple_of(64) {
            self.words.pop();
        }
    }
    /// Positions of set bits, ascending.
    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(w * 64 + b)
            })
        })
    }
}

/// Moves a cell's value out, leaving the Null a dead slot holds.
fn take_cell(cell: &mut Value) -> Value {
    std::mem::replace(cell, Value::Null)
}

/// Moves `row`'s values into `cells` (same length; no reallocation).
fn put_cells(cells: &mut [Value], row: Row) {
    assert_eq!(cells.len(), row.len(), "undo: row has the table's width");
    for (cell, v) in cells.iter_mut().zip(row.into_vec()) {
        *cell = v;
    }
}

/// A failed value check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Type,
    Range,
    Length(usize, u32),
    NotNull,
}

impl Check {
    /// Which kind of failure is reported first (lowest).
    fn rank(self) -> u8 {
        match self {
            Check::Type => 0,
            Check::Range => 1,
            Check::Length(..) => 2,
            Check::NotNull => 3,
        }
    }
}

/// The error for a value of column `c` that failed `fail`.
fn value_error(table: &str, c: &ColumnDef, fail: Check, v: &Value) -> StorageError {
    let table = table.to_string();
    let column = c.name.clone();
    match fail {
        Check::Type => StorageError::TypeMismatch {
            table,
            column,
            ty: c.ty,
            found: v.kind().to_string(),
        },
        Check::Range => StorageError::OutOfRange {
            table,
            column,
            ty: c.ty,
            value: v.to_string(),
        },
        Check::Length(len, max) => StorageError::TooLong {
            table,
            column,
            ty: c.ty,
            len,
            max,
        },
        Check::NotNull => StorageError::NotNull { table, column },
    }
}

/// Why `fill` cannot go in every row of a new column `c` of table `table`.
pub(crate) fn fill_error(table: &str, c: &ColumnDef, fill: &Value) -> Option<StorageError> {
    let fail = check_value(fill, c.ty, c.nullable)?;
    Some(match fail {
        // PostgreSQL's words for ADD COLUMN ... NOT NULL without a default.
        Check::NotNull => StorageError::InvalidSchema(format!(
            "column \"{}\" of relation \"{table}\" contains null values: give it a DEFAULT",
            c.name
        )),
        other => value_error(table, c, other, fill),
    })
}

/// Checks one value against its column; `None` if it is acceptable.
#[inline]
fn check_value(v: &Value, ty: DataType, nullable: bool) -> Option<Check> {
    let fits = match (v, ty) {
        (Value::Null, _) => return (!nullable).then_some(Check::NotNull),
        (Value::Int(i), DataType::SmallInt | DataType::Integer | DataType::BigInt) => {
            let (lo, hi) = ty.int_range()?;
            return (*i < lo || *i > hi).then_some(Check::Range);
        }
        (Value::Text(s), DataType::Varchar(max)) => {
            let max = max?;
            // Byte length bounds char count from above: count only if needed.
            if s.len() <= max as usize {
                return None;
            }
            let len = s.chars().count();
            return (len > max as usize).then_some(Check::Length(len, max));
        }
        (Value::Bytes(b), DataType::Varbinary(max)) => {
            let max = max?;
            return (b.len() > max as usize).then_some(Check::Length(b.len(), max));
        }
        (Value::Double(_), DataType::Double)
        | (Value::Decimal(_), DataType::Decimal { .. })
        | (Value::Bool(_), DataType::Boolean)
        | (Value::Timestamp(_), DataType::Timestamp)
        | (Value::TimestampTz(_), DataType::TimestampTz)
        | (Value::Date(_), DataType::Date)
        | (Value::Interval(_), DataType::Interval)
        | (Value::Uuid(_), DataType::Uuid) => true,
        (Value::Time(t), DataType::Time) => (0..=crate::types::datetime::USECS_PER_DAY).contains(t),
        _ => false,
    };
    (!fits).then_some(Check::Type)
}

#[cfg(test)]
mod bitmap_tests {
    use super::Bitmap;

    #[test]
    fn bitmap_tracks_bits_across_words_and_pops_back_to_empty() {
        let mut b = Bitmap::default();
        let on = |i: usize| i.is_multiple_of(3) || i == 64 || i == 129;
        for i in 0..130 {
            b.push(on(i));
        }
        let want: Vec<usize> = (0..130).filter(|&i| on(i)).collect();
        assert_eq!(b.ones().collect::<Vec<_>>(), want);
        assert_eq!((b.len(), b.words.len()), (130, 3));
        assert_eq!(
            (b.get(129), b.get(128), b.get(130)),
            (Some(true), Some(false), None)
        );
        b.set(129, false);
        b.set(1, true);
        assert!(b.is_set(1) && !b.is_set(129));
        b.set(129, true);
        b.pop();
        b.push(false);
        assert_eq!(
            b.get(129),
            Some(false),
            "a popped set bit does not come back"
        );
        b.pop();
        b.pop();
        assert_eq!((b.len(), b.words.len()), (128, 2));
        while b.len() > 0 {
            b.pop();
        }
        assert!(b.words.is_empty() && b.ones().next().is_none());
    }
}
