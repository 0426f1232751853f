//! One table: row slots with a free list, its indexes, and the constraint
//! checks every insert and update passes.
//!
//! Owns: `Table` (schema, `Vec<Option<Row>>` slots where RowId = slot, free
//! list, indexes kept in step with `schema.indexes`). Must not: know about
//! transactions; `Database` logs each change and calls the `undo_*` methods
//! in reverse to restore exactly the prior state (slots, free list, indexes).
//!
//! ```text
//!   Database --insert_row/update_row/delete_row--> Table --> slots, indexes
//!   Database --undo_insert/undo_update/undo_delete--> Table (reverse order)
//! ```

use super::index::Index;
use super::{Row, RowId, StorageError, TableId, TableSchema};
use crate::types::{DataType, Value};
use std::ops::Bound;

/// A table's rows and indexes.
pub struct Table {
    id: TableId,
    schema: TableSchema,
    slots: Vec<Option<Row>>,
    /// Free slots, reused last-freed first; undo pops and pushes in exact
    /// reverse so the next RowId after a rollback is what it was before.
    free: Vec<u32>,
    live: usize,
    /// Parallel to `schema.indexes`.
    indexes: Vec<Index>,
}

/// Where an inserted row went; undo needs to know whether the slot is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    pub(crate) id: RowId,
    /// The slot vector grew (rather than reusing a free slot).
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
            schema,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            indexes,
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
    #[inline]
    pub fn get(&self, id: RowId) -> Option<&Row> {
        self.slots.get(id.0 as usize)?.as_ref()
    }
    /// All live rows, in slot order.
    pub fn scan(&self) -> impl Iterator<Item = (RowId, &Row)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((RowId(i as u32), s.as_ref()?)))
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
                let names: Vec<&str> = ix
                    .columns()
                    .iter()
                    .map(|&c| cols[c].name.as_str())
                    .collect();
                let key: Vec<String> = ix.key_values(row).iter().map(Value::to_string).collect();
                return Err(StorageError::Unique {
                    table: self.schema.name.clone(),
                    constraint: def.name.clone(),
                    columns: names.join(", "),
                    key: key.join(", "),
                });
            }
        }
        Ok(())
    }

    fn value_error(&self, fail: Check, col: usize, v: &Value) -> StorageError {
        let table = self.schema.name.clone();
        let c = &self.schema.columns[col];
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

    /// Validates and stores a new row.
    #[inline]
    pub(crate) fn insert_row(&mut self, row: Row) -> Result<Placed, StorageError> {
        self.check(&row, None)?;
        let placed = match self.free.pop() {
            Some(slot) => Placed {
                id: RowId(slot),
                fresh: false,
            },
            None => {
                let Ok(slot) = u32::try_from(self.slots.len()) else {
                    return Err(StorageError::TableFull(self.schema.name.clone()));
                };
                self.slots.push(None);
                Placed {
                    id: RowId(slot),
                    fresh: true,
                }
            }
        };
        for ix in &mut self.indexes {
            ix.insert(&row, placed.id);
        }
        self.slots[placed.id.0 as usize] = Some(row);
        self.live += 1;
        Ok(placed)
    }

    /// Validates `row` and puts it in place of row `id`; returns the old row.
    pub(crate) fn update_row(&mut self, id: RowId, row: Row) -> Result<Row, StorageError> {
        if self.get(id).is_none() {
            return Err(StorageError::NoSuchRow(id));
        }
        self.check(&row, Some(id))?;
        let slot = &mut self.slots[id.0 as usize];
        let old = slot.replace(row).expect("slot checked live above");
        let new = slot.as_ref().expect("slot just filled");
        for ix in &mut self.indexes {
            if ix.key_changed(&old, new) {
                ix.remove(&old, id);
                ix.insert(new, id);
            }
        }
        Ok(old)
    }

    /// Removes row `id`; returns it.
    pub(crate) fn delete_row(&mut self, id: RowId) -> Result<Row, StorageError> {
        let Some(row) = self.slots.get_mut(id.0 as usize).and_then(Option::take) else {
            return Err(StorageError::NoSuchRow(id));
        };
        for ix in &mut self.indexes {
            ix.remove(&row, id);
        }
        self.free.push(id.0);
        self.live -= 1;
        Ok(row)
    }

    /// Reverses `insert_row` (the most recent change not yet undone).
    pub(crate) fn undo_insert(&mut self, placed: Placed) {
        let slot = placed.id.0 as usize;
        let row = self.slots[slot].take().expect("undo: inserted row is live");
        for ix in &mut self.indexes {
            ix.remove(&row, placed.id);
        }
        if placed.fresh {
            assert_eq!(slot + 1, self.slots.len(), "undo: fresh slot is the last");
            self.slots.pop();
        } else {
            self.free.push(placed.id.0);
        }
        self.live -= 1;
    }

    /// Reverses `update_row`, putting `old` back.
    pub(crate) fn undo_update(&mut self, id: RowId, old: Row) {
        let slot = &mut self.slots[id.0 as usize];
        let new = slot.replace(old).expect("undo: updated row is live");
        let old = slot.as_ref().expect("slot just filled");
        for ix in &mut self.indexes {
            if ix.key_changed(&new, old) {
                ix.remove(&new, id);
                ix.insert(old, id);
            }
        }
    }

    /// Reverses `delete_row`, putting `row` back in its own slot.
    pub(crate) fn undo_delete(&mut self, id: RowId, row: Row) {
        assert_eq!(
            self.free.pop(),
            Some(id.0),
            "undo: deleted slot tops the free list"
        );
        for ix in &mut self.indexes {
            ix.insert(&row, id);
        }
        let slot = &mut self.slots[id.0 as usize];
        assert!(slot.is_none(), "undo: deleted slot is empty");
        *slot = Some(row);
        self.live += 1;
    }

    /// Builds an index over the live rows; on a unique violation returns the
    /// error and the table is unchanged.
    pub(crate) fn add_index(&mut self, def: super::IndexDef) -> Result<(), StorageError> {
        let mut ix = Index::new(&def, &self.schema.columns);
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(row) = slot else { continue };
            if ix.conflict(row, None).is_some() {
                let cols = &self.schema.columns;
                let names: Vec<&str> = ix
                    .columns()
                    .iter()
                    .map(|&c| cols[c].name.as_str())
                    .collect();
                let key: Vec<String> = ix.key_values(row).iter().map(Value::to_string).collect();
                return Err(StorageError::Unique {
                    table: self.schema.name.clone(),
                    constraint: def.name,
                    columns: names.join(", "),
                    key: key.join(", "),
                });
            }
            ix.insert(row, RowId(i as u32));
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
        | (Value::Timestamp(_), DataType::Timestamp) => true,
        _ => false,
    };
    (!fits).then_some(Check::Type)
}
