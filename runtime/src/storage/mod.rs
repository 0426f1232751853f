//! In-memory tables for one partition: rows, constraints, indexes, undo and
//! the write-set.
//!
//! Owns: `Database` (the tables of one partition and the open transaction),
//! `Table` (row slots + indexes), `TableSchema`, `IndexDef`, `WriteSet`.
//! Must not: parse SQL, do I/O, or use async. Values arriving here already
//! have their column's type (the SQL layer casts); storage re-checks NOT NULL,
//! VARCHAR/VARBINARY length, integer range, PRIMARY KEY and UNIQUE, and
//! rejects with a `StorageError` naming the table, constraint and value.
//!
//! ```text
//!   sql layer --insert/update/delete--> Database --> Table (rows, indexes)
//!                                         |  undo list (per transaction)
//!                                         |  write-set (per transaction)
//!   begin / savepoint / rollback_to / commit -> WriteSet / rollback
//! ```

// IMPLEMENTATION NOTE FOR THE STORAGE HELPER: the signatures below are the
// contract the SQL layer codes against. Replace every `todo!()`; keep the
// signatures (add methods freely).

use crate::types::{DataType, Value};
use std::ops::Bound;
use thiserror::Error;

pub type Row = Box<[Value]>;

/// Slot number of a row inside its table; stable while the row lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowId(pub u32);

/// Identifies a table within a `Database`; never reused after a drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(pub u32);

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: DataType,
    pub nullable: bool,
    /// Applied by the SQL layer when an INSERT omits the column.
    pub default: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// Equality lookups only.
    Hash,
    /// Equality, ranges and ordered scans.
    Ordered,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    pub name: String,
    /// Column positions in the table, in key order.
    pub columns: Vec<usize>,
    pub unique: bool,
    pub kind: IndexKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Names the PRIMARY KEY's index in `indexes`, if any.
    pub primary_key: Option<usize>,
    /// Every index, including those backing PRIMARY KEY and UNIQUE.
    pub indexes: Vec<IndexDef>,
    /// `PARTITION TABLE t ON COLUMN c`: recorded now, used by the node later.
    pub partition_column: Option<usize>,
}

impl TableSchema {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("null value in column \"{column}\" of table \"{table}\" violates not-null constraint")]
    NotNull { table: String, column: String },
    #[error("duplicate key value violates unique constraint \"{constraint}\" on table \"{table}\": key ({columns})=({key}) already exists")]
    Unique {
        table: String,
        constraint: String,
        columns: String,
        key: String,
    },
    #[error("value too long for column \"{column}\" of table \"{table}\" ({ty}): {len} > {max}")]
    TooLong {
        table: String,
        column: String,
        ty: DataType,
        len: usize,
        max: u32,
    },
    #[error("value {value} out of range for column \"{column}\" of table \"{table}\" ({ty})")]
    OutOfRange {
        table: String,
        column: String,
        ty: DataType,
        value: String,
    },
    #[error(
        "value of type {found} does not match column \"{column}\" of table \"{table}\" ({ty})"
    )]
    TypeMismatch {
        table: String,
        column: String,
        ty: DataType,
        found: String,
    },
    #[error("row has {found} values but table \"{table}\" has {expected} columns")]
    Arity {
        table: String,
        expected: usize,
        found: usize,
    },
    #[error("table \"{0}\" already exists")]
    TableExists(String),
    #[error("table \"{0}\" does not exist")]
    NoSuchTable(String),
    #[error("index \"{0}\" already exists")]
    IndexExists(String),
    #[error("index \"{0}\" does not exist")]
    NoSuchIndex(String),
    #[error("row {0:?} does not exist")]
    NoSuchRow(RowId),
    #[error("a transaction is already open")]
    TxnOpen,
    #[error("no transaction is open")]
    NoTxn,
}

/// One change in a transaction's write-set, with the rows as they are after
/// (insert, update) or were before (delete) the change.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Insert { table: TableId, row: Row },
    Update { table: TableId, old: Row, new: Row },
    Delete { table: TableId, row: Row },
}

/// The rows a committed transaction inserted, updated and deleted, in order.
/// Later issues log and replicate it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriteSet {
    pub ops: Vec<WriteOp>,
}

/// A position in the open transaction's undo list (statement atomicity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savepoint(pub usize);

pub struct Table {
    // fields are the storage helper's choice
}

impl Table {
    pub fn schema(&self) -> &TableSchema {
        todo!()
    }
    pub fn id(&self) -> TableId {
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn get(&self, _id: RowId) -> Option<&Row> {
        todo!()
    }
    /// All live rows, in slot order.
    pub fn scan(&self) -> impl Iterator<Item = (RowId, &Row)> + '_ {
        std::iter::empty()
    }
    /// Position of the index named `name` (case-insensitive) in `schema().indexes`.
    pub fn index_position(&self, _name: &str) -> Option<usize> {
        todo!()
    }
    /// Rows whose index key equals `key` (one value per index column, already
    /// of the columns' types). Works for Hash and Ordered indexes. A key
    /// containing NULL matches nothing.
    pub fn index_lookup(&self, _index: usize, _key: &[Value]) -> Vec<RowId> {
        todo!()
    }
    /// Rows of an Ordered index whose key lies within the bounds, in key order
    /// (ascending; ties by RowId). Bounds may be a prefix of the index columns.
    /// NULL keys are excluded unless both bounds are Unbounded.
    pub fn index_range(
        &self,
        _index: usize,
        _lower: Bound<&[Value]>,
        _upper: Bound<&[Value]>,
    ) -> Vec<RowId> {
        todo!()
    }
}

/// The tables of one partition and its (at most one) open transaction.
pub struct Database {
    // fields are the storage helper's choice
}

impl Default for Database {
    fn default() -> Self {
        Self::new()
    }
}

impl Database {
    pub fn new() -> Database {
        todo!()
    }
    pub fn create_table(&mut self, _schema: TableSchema) -> Result<TableId, StorageError> {
        todo!()
    }
    pub fn drop_table(&mut self, _id: TableId) -> Result<(), StorageError> {
        todo!()
    }
    /// Case-insensitive.
    pub fn table_id(&self, _name: &str) -> Option<TableId> {
        todo!()
    }
    pub fn table(&self, _id: TableId) -> Option<&Table> {
        todo!()
    }
    pub fn tables(&self) -> impl Iterator<Item = &Table> + '_ {
        std::iter::empty()
    }
    /// Builds the index over existing rows; fails (and leaves nothing) if a
    /// unique index finds duplicates.
    pub fn create_index(&mut self, _table: TableId, _def: IndexDef) -> Result<(), StorageError> {
        todo!()
    }
    pub fn drop_index(&mut self, _table: TableId, _name: &str) -> Result<(), StorageError> {
        todo!()
    }
    /// Records `PARTITION TABLE t ON COLUMN c`.
    pub fn set_partition_column(
        &mut self,
        _table: TableId,
        _column: usize,
    ) -> Result<(), StorageError> {
        todo!()
    }

    pub fn begin(&mut self) -> Result<(), StorageError> {
        todo!()
    }
    pub fn in_txn(&self) -> bool {
        todo!()
    }
    pub fn savepoint(&self) -> Savepoint {
        todo!()
    }
    /// Undoes everything after `sp` (and drops it from the write-set).
    pub fn rollback_to(&mut self, _sp: Savepoint) {
        todo!()
    }
    pub fn commit(&mut self) -> Result<WriteSet, StorageError> {
        todo!()
    }
    /// Restores exactly the state at `begin`.
    pub fn rollback(&mut self) -> Result<(), StorageError> {
        todo!()
    }

    /// Requires an open transaction.
    pub fn insert(&mut self, _table: TableId, _row: Row) -> Result<RowId, StorageError> {
        todo!()
    }
    pub fn update(&mut self, _table: TableId, _id: RowId, _row: Row) -> Result<(), StorageError> {
        todo!()
    }
    pub fn delete(&mut self, _table: TableId, _id: RowId) -> Result<Row, StorageError> {
        todo!()
    }
}
