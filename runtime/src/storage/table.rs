//! One table: row slots with a free list, its indexes, and the constraint
//! checks every insert and update passes.
//!
//! Owns: `Table` (schema; a byte arena holding each slot's row packed,
//! where RowId = slot; a liveness flag per slot; the free list; indexes kept
//! in step with `schema.indexes`). Must not: know about transactions;
//! `Database` logs each change and calls the `undo_*` methods in reverse to
//! restore exactly the prior state (slots, free list, indexes).
//!
//! Rows are kept as bytes (packed.rs), not as one 24-byte `Value` per cell:
//! about 40 bytes instead of 96 for a row of four columns. Readers get the
//! values decoded into a buffer they own (`read`, `rows`), or a fresh row
//! (`get`, `scan`). Each slot's region in the arena starts with its
//! capacity; a row rewritten no longer than that stays in place, a longer
//! one moves to the end. When the bytes no live row uses pass
//! `ARENA_SLACK_BYTES` and the live ones, the arena is rewritten without
//! them (`compact`): linear in the table's bytes, amortized over at least as
//! many bytes of writes. An insert allocates nothing per row once the arena
//! has grown.
//!
//! A snapshot reads a table a slice at a time while writes go on
//! (`snapshot_rows`): from `begin_snapshot` until its cursor has passed a
//! slot, the first change to that slot keeps what it held (copy on write,
//! `SnapshotCow`), so the snapshot sees every row as it was when it began.
//!
//! ```text
//!   Database --insert_row/update_row/delete_row--> Table --> arena, indexes
//!   Database --undo_insert/undo_update/undo_delete--> Table (reverse order)
//!   snapshot --begin_snapshot, snapshot_rows*--> rows as of the begin
//! ```

use super::bitmap::Bitmap;
use super::check::{check_value, value_error, Check};
use super::hash::FxHashMap;
use super::index::Index;
use super::packed;
use super::{Row, RowId, StorageError, TableId, TableSchema};
use crate::types::Value;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Slots one `snapshot_rows` call passes at most (rows or empty).
const SNAPSHOT_SLOTS_PER_CALL: u32 = 1 << 16;

/// Bytes of the arena no live row uses that are always tolerated; past
/// this, the arena is compacted once they outgrow the live rows' bytes.
/// (Small under test, so the model tests compact often.)
pub(super) const ARENA_SLACK_BYTES: usize = if cfg!(test) { 256 } else { 1 << 20 };

/// The most bytes a table's arena holds (one partition's share of it):
/// what a 5-byte `Offset` addresses, 1 TiB.
const ARENA_BYTES_MAX: usize = (1 << 40) - 1;

/// Where a slot's region starts in the arena, in 5 bytes rather than 8
/// (3 bytes a row). All ones: the slot has no region.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Offset([u8; 5]);

const NO_REGION: Offset = Offset([0xff; 5]);

impl Offset {
    fn new(at: usize) -> Offset {
        assert!(
            at < ARENA_BYTES_MAX,
            "a table's arena is past {ARENA_BYTES_MAX} bytes"
        );
        let b = (at as u64).to_le_bytes();
        Offset([b[0], b[1], b[2], b[3], b[4]])
    }
    #[inline]
    fn get(self) -> Option<usize> {
        let [a, b, c, d, e] = self.0;
        (self != NO_REGION).then(|| u64::from_le_bytes([a, b, c, d, e, 0, 0, 0]) as usize)
    }
}

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
    /// The rows: at `at[s]`, slot `s`'s region, a varint capacity then its
    /// row (packed.rs) padded to that capacity. A dead slot may keep its
    /// region for the next row placed there.
    bytes: Vec<u8>,
    /// Where each slot's region starts in `bytes` (`NO_REGION`: none).
    at: Vec<Offset>,
    /// Bytes of `bytes` in live slots' regions (headers included).
    used: usize,
    /// A row being encoded before it is placed.
    enc: Vec<u8>,
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
            bytes: Vec::new(),
            at: Vec::new(),
            used: 0,
            enc: Vec::new(),
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
    /// Whether row `id` is live.
    #[inline]
    pub fn contains(&self, id: RowId) -> bool {
        self.alive.get(id.0 as usize) == Some(true)
    }
    /// The values of row `id` (one per column), or None if the slot is not
    /// live. Allocates the row; `read` reuses a buffer.
    pub fn get(&self, id: RowId) -> Option<Row> {
        let mut out = Vec::with_capacity(self.width);
        self.read(id, &mut out).then(|| out.into_boxed_slice())
    }
    /// Puts the values of row `id` in `out` (cleared first); false, with
    /// `out` empty, if the slot is not live.
    #[inline]
    pub fn read(&self, id: RowId, out: &mut Vec<Value>) -> bool {
        self.read_cols(id, None, out)
    }
    /// `read`, decoding only the columns `cols` marks (one flag a column;
    /// None: all); the others read as NULL.
    #[inline]
    pub fn read_cols(&self, id: RowId, cols: Option<&[bool]>, out: &mut Vec<Value>) -> bool {
        out.clear();
        if !self.contains(id) {
            return false;
        }
        self.decode(id.0 as usize, cols, out);
        true
    }
    /// All live rows, in slot order, each allocated; `rows` reuses a buffer.
    pub fn scan(&self) -> impl Iterator<Item = (RowId, Row)> + '_ {
        self.alive.ones().map(|i| {
            let mut out = Vec::with_capacity(self.width);
            self.decode(i, None, &mut out);
            (RowId(i as u32), out.into_boxed_slice())
        })
    }
    /// A cursor over the live rows in slot order, decoding each into one
    /// buffer it owns.
    pub fn rows(&self) -> Rows<'_> {
        self.rows_cols(None)
    }
    /// `rows`, decoding only the columns `cols` marks (as `read_cols`).
    pub fn rows_cols<'a>(&'a self, cols: Option<&'a [bool]>) -> Rows<'a> {
        Rows {
            table: self,
            cols,
            next: 0,
            buf: Vec::with_capacity(self.width),
        }
    }
    /// Appends the values of slot `slot`, which holds a region, to `out`:
    /// the columns `cols` marks (the others as NULL), or all.
    #[inline]
    fn decode(&self, slot: usize, cols: Option<&[bool]>, out: &mut Vec<Value>) {
        let (start, _) = self.region(slot).expect("a live slot has a region");
        let row = &self.bytes[start..];
        match cols {
            Some(cols) => {
                assert_eq!(cols.len(), self.width, "a flag for each column");
                packed::decode_cols_into(row, cols, out);
            }
            None => {
                packed::decode_into(row, self.width, out);
            }
        }
    }
    /// Where slot `slot`'s row starts in `bytes` and the bytes its region
    /// holds after the header, if it has a region.
    #[inline]
    fn region(&self, slot: usize) -> Option<(usize, usize)> {
        let at = self.at.get(slot)?.get()?;
        Some(region_at(&self.bytes, at))
    }
    /// The bytes of the region starting at `at`, header included.
    fn region_len_at(&self, at: usize) -> usize {
        let (start, cap) = region_at(&self.bytes, at);
        start + cap - at
    }
    /// The bytes slot `slot`'s region takes, header included (0: none).
    fn region_bytes(&self, slot: usize) -> usize {
        self.at[slot].get().map_or(0, |at| self.region_len_at(at))
    }
    /// Writes `row` into slot `slot` (whose entry in `at` exists): in its
    /// region if the row fits, else in a new region at the end. Keeps
    /// `used` right given whether the slot was live before and is after.
    fn put(&mut self, slot: usize, row: &[Value], was_live: bool) {
        self.enc.clear();
        packed::encode(row, &mut self.enc);
        let n = self.enc.len();
        let before = if was_live { self.region_bytes(slot) } else { 0 };
        match self.region(slot) {
            Some((start, cap)) if n <= cap => {
                self.bytes[start..start + n].copy_from_slice(&self.enc);
            }
            _ => {
                self.at[slot] = Offset::new(self.bytes.len());
                packed::put_varint(&mut self.bytes, n as u64);
                self.bytes.extend_from_slice(&self.enc);
            }
        }
        self.used = self.used - before + self.region_bytes(slot);
        if self.bytes.len() - self.used > ARENA_SLACK_BYTES.max(self.used) {
            self.compact(slot);
        }
    }
    /// Slot `slot` stops being live: its region's bytes are reclaimable.
    fn release(&mut self, slot: usize) {
        self.used -= self.region_bytes(slot);
    }
    /// Rewrites the arena with only the regions of live slots and of
    /// `writing` (the slot `put` just wrote, which may not be marked live
    /// yet), in slot order, each no larger than its row; other slots lose
    /// their regions.
    fn compact(&mut self, writing: usize) {
        let mut bytes = Vec::with_capacity(self.used);
        for slot in 0..self.at.len() {
            let keep = slot == writing || self.alive.get(slot) == Some(true);
            match self.region(slot) {
                Some((start, _)) if keep => {
                    let len = packed::encoded_len(&self.bytes[start..], self.width);
                    self.at[slot] = Offset::new(bytes.len());
                    packed::put_varint(&mut bytes, len as u64);
                    bytes.extend_from_slice(&self.bytes[start..start + len]);
                }
                _ => self.at[slot] = NO_REGION,
            }
        }
        self.used = bytes.len();
        self.bytes = bytes;
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
        let mut indexes: Vec<Index> = schema
            .indexes
            .iter()
            .map(|d| Index::new(d, &schema.columns))
            .collect();
        let mut bytes = Vec::with_capacity(self.used);
        let mut old = Vec::with_capacity(self.width);
        let mut row = Vec::with_capacity(width);
        for slot in 0..self.at.len() {
            if !self.alive.is_set(slot) {
                self.at[slot] = NO_REGION;
                continue;
            }
            old.clear();
            self.decode(slot, None, &mut old);
            row.clear();
            map(&old, &mut row);
            assert_eq!(row.len(), width, "reshape: a row of the new width");
            for ix in &mut indexes {
                ix.insert(&row, RowId(slot as u32));
            }
            self.enc.clear();
            packed::encode(&row, &mut self.enc);
            self.at[slot] = Offset::new(bytes.len());
            packed::put_varint(&mut bytes, self.enc.len() as u64);
            bytes.extend_from_slice(&self.enc);
        }
        self.used = bytes.len();
        self.bytes = bytes;
        self.width = width;
        self.indexes = indexes;
        self.schema = schema;
    }

    /// Validates `row` and copies it into a slot (the caller keeps `row`,
    /// e.g. for the write-set).
    #[inline]
    pub(crate) fn insert_row(&mut self, row: &[Value]) -> Result<Placed, StorageError> {
        self.check(row, None)?;
        let placed = match self.free.pop() {
            Some(slot) => {
                self.keep_for_snapshot(slot as usize);
                self.put(slot as usize, row, false);
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
                self.at.push(NO_REGION);
                self.put(slot as usize, row, false);
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
        let Some(old) = self.get(id) else {
            return Err(StorageError::NoSuchRow(id));
        };
        self.check(row, Some(id))?;
        self.keep_for_snapshot(id.0 as usize);
        for ix in &mut self.indexes {
            if ix.key_changed(&old, row) {
                ix.remove(&old, id);
                ix.insert(row, id);
            }
        }
        self.put(id.0 as usize, row, true);
        Ok(old)
    }

    /// Removes row `id`; returns it.
    pub(crate) fn delete_row(&mut self, id: RowId) -> Result<Row, StorageError> {
        let Some(row) = self.get(id) else {
            return Err(StorageError::NoSuchRow(id));
        };
        let slot = id.0 as usize;
        self.keep_for_snapshot(slot);
        for ix in &mut self.indexes {
            ix.remove(&row, id);
        }
        self.release(slot);
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
        let row = self.get(placed.id).expect("undo: inserted row is live");
        for ix in &mut self.indexes {
            ix.remove(&row, placed.id);
        }
        self.release(slot);
        if placed.fresh {
            assert_eq!(slot + 1, self.alive.len(), "undo: fresh slot is the last");
            self.alive.pop();
            let at = self.at.pop().expect("a fresh slot has an entry").get();
            // The usual case: its region is the last; give the bytes back.
            if let Some(at) = at.filter(|&at| at + self.region_len_at(at) == self.bytes.len()) {
                self.bytes.truncate(at);
            }
        } else {
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
        let new = self.get(id).expect("undo: updated row is live");
        for ix in &mut self.indexes {
            if ix.key_changed(&new, &old) {
                ix.remove(&new, id);
                ix.insert(&old, id);
            }
        }
        assert_eq!(old.len(), self.width, "undo: row has the table's width");
        self.put(slot, &old, true);
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
        assert_eq!(row.len(), self.width, "undo: row has the table's width");
        self.put(slot, &row, false);
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
        let was = self.get(RowId(s));
        if let Some(cow) = self.cow.as_deref_mut() {
            cow.kept.insert(s, was);
        }
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
        let mut buf = Vec::with_capacity(self.width);
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
                    buf.clear();
                    let (start, _) = region_of(&self.at, &self.bytes, slot);
                    packed::decode_into(&self.bytes[start..], self.width, &mut buf);
                    go = more(&buf);
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
        let mut rows = self.rows();
        while let Some((id, row)) = rows.next() {
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
    /// Asserts the arena's invariants and returns its slot count: regions
    /// inside the arena and apart, each row within its region and of the
    /// table's width, `used` the bytes of live slots' regions, dead slots
    /// exactly those on the free list, `get` agreeing with liveness, `len`
    /// counting live slots.
    #[cfg(test)]
    pub(crate) fn check_arena(&self) -> usize {
        let slots = self.alive.len();
        assert_eq!(self.at.len(), slots, "one region entry a slot");
        let mut dead: Vec<u32> = Vec::new();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut used = 0;
        for i in 0..slots {
            let id = RowId(i as u32);
            if let Some((start, cap)) = self.region(i) {
                assert!(
                    start + cap <= self.bytes.len(),
                    "slot {i}'s region past the arena"
                );
                let len = packed::encoded_len(&self.bytes[start..], self.width);
                assert!(len <= cap, "slot {i}'s row overflows its region");
                spans.push((self.at[i].get().expect("a region"), start + cap));
            }
            if self.alive.is_set(i) {
                used += self.region_bytes(i);
                let row = self.get(id).expect("a live slot reads");
                assert_eq!(row.len(), self.width, "slot {i}'s width");
            } else {
                dead.push(id.0);
                assert_eq!(self.get(id), None, "dead slot {i} visible");
            }
        }
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "regions overlap: {w:?}");
        }
        assert_eq!(self.used, used, "bytes in live regions");
        let mut free = self.free.clone();
        free.sort_unstable();
        assert_eq!(free, dead, "free list is exactly the dead slots");
        assert_eq!(self.live, slots - dead.len(), "live count");
        assert_eq!(self.get(RowId(slots as u32)), None, "past the end");
        slots
    }
    /// The arena's size in bytes and the bytes live rows' regions use.
    #[cfg(test)]
    pub(crate) fn arena_bytes(&self) -> (usize, usize) {
        (self.bytes.len(), self.used)
    }
}

/// Where the row of the region starting at `at` begins, and the capacity
/// its header gives.
#[inline]
fn region_at(bytes: &[u8], at: usize) -> (usize, usize) {
    let (cap, n) = packed::get_varint(&bytes[at..]);
    (at + n, cap as usize)
}

/// The row and capacity of live slot `slot` (for readers that hold a
/// field of the table mutably).
fn region_of(at: &[Offset], bytes: &[u8], slot: usize) -> (usize, usize) {
    region_at(bytes, at[slot].get().expect("a live slot has a region"))
}

/// A cursor over a table's live rows (`Table::rows`): each row is decoded
/// into one buffer, so reading allocates nothing once it has grown.
pub struct Rows<'a> {
    table: &'a Table,
    /// The columns to decode (None: all).
    cols: Option<&'a [bool]>,
    next: usize,
    buf: Vec<Value>,
}

impl Rows<'_> {
    /// The next live row in slot order, valid until the next call.
    #[allow(clippy::should_implement_trait)] // lends its buffer: not an Iterator
    pub fn next(&mut self) -> Option<(RowId, &[Value])> {
        let t = self.table;
        while self.next < t.alive.len() {
            let slot = self.next;
            self.next += 1;
            if t.alive.is_set(slot) {
                self.buf.clear();
                t.decode(slot, self.cols, &mut self.buf);
                return Some((RowId(slot as u32), &self.buf));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_keeps_every_position_up_to_a_tebibyte() {
        for at in [
            0,
            1,
            255,
            256,
            u32::MAX as usize,
            1 << 32,
            ARENA_BYTES_MAX - 1,
        ] {
            assert_eq!(Offset::new(at).get(), Some(at));
        }
        assert_eq!(NO_REGION.get(), None);
        assert!(std::panic::catch_unwind(|| Offset::new(ARENA_BYTES_MAX)).is_err());
    }
}
