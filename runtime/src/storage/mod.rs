//! In-memory tables for one partition: rows, constraints, indexes, undo and
//! the write-set.
//!
//! Owns: `Database` (the tables of one partition and the open transaction),
//! `Table` (a flat arena of row slots + indexes), `TableSchema`, `IndexDef`,
//! `WriteSet`. Readers borrow a row as `&[Value]` (`Table::get`, `scan`);
//! an owned `Row` is what goes in (insert, update) and what comes out into
//! undo and the write-set.
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

// The contract types live here; `Table` is in table.rs (with its indexes in
// index.rs) and `Database` (catalog + transaction) in db.rs.

mod bitmap;
mod check;
mod db;
mod hash;
mod index;
mod index_int;
mod packed;
mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ddl;
#[cfg(test)]
mod tests_model;

pub use db::{Database, Placement, SeqCursor};
pub use table::{Rows, SnapshotToken, Table};

use crate::types::{DataType, Value};
use thiserror::Error;

/// An owned row, one value per column: the argument of insert and update, a
/// delete's result, and the images kept in undo and the write-set. Stored rows
/// are not boxes: `Table` keeps them inline and lends them out as `&[Value]`.
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
    pub default: Option<ColumnDefault>,
}

/// A column's DEFAULT.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnDefault {
    /// A constant, computed once when the default was declared.
    Value(Value),
    /// SQL text evaluated at each insert, for a default that reads the
    /// transaction's timestamp (`now()`) or takes a sequence's value
    /// (`nextval('s')`, SERIAL); the SQL layer binds it.
    Expr(String),
}

/// CHECK constraints a table may have (each is evaluated on every row
/// written).
pub const TABLE_CHECKS_MAX: usize = 256;

/// `CHECK (expr)`: a row for which `expr` is false is refused; NULL passes.
/// `expr` is SQL text over the table's column names, which the SQL layer
/// binds and evaluates on each row it writes (storage does not parse SQL).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConstraint {
    pub name: String,
    pub expr: String,
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

/// The index backing a PRIMARY KEY: one ordered unique index serves the
/// constraint, point lookups, ranges and ORDER BY. (A hash index beside it
/// cost 36 bytes a row for lookups one B-tree descent slower at most.)
pub fn primary_key_index(name: &str, columns: Vec<usize>) -> IndexDef {
    IndexDef {
        name: name.to_string(),
        columns,
        unique: true,
        kind: IndexKind::Ordered,
    }
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
    /// FOREIGN KEY constraints this table's rows must satisfy.
    pub foreign_keys: Vec<ForeignKey>,
    /// CHECK constraints, in the order they were declared.
    pub checks: Vec<CheckConstraint>,
}

/// `FOREIGN KEY (columns) REFERENCES parent (parent_columns)`: a row whose
/// `columns` are all non-NULL must match a row of `parent` there (NO
/// ACTION: checked at the end of each statement).
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub name: String,
    /// Positions in this table.
    pub columns: Vec<usize>,
    /// The referenced table's name, lower-cased.
    pub parent: String,
    /// Positions in the parent, in the same order; a PRIMARY KEY or UNIQUE
    /// index covers exactly these.
    pub parent_columns: Vec<usize>,
}

impl TableSchema {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Whether a CHECK, FOREIGN KEY or index (backing PRIMARY KEY or
    /// UNIQUE) of this table is named `name` (case-insensitive): one table's
    /// constraints share a namespace, as in PostgreSQL.
    pub fn has_constraint(&self, name: &str) -> bool {
        self.checks
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(name))
            || self
                .foreign_keys
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(name))
            || self
                .indexes
                .iter()
                .any(|i| i.name.eq_ignore_ascii_case(name))
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
    /// A table or index definition that cannot be built (a column out of
    /// range or named twice, a primary key that is not a unique index).
    #[error("invalid definition: {0}")]
    InvalidSchema(String),
    /// The table has used every one of its 2^32 row slots.
    #[error("table \"{0}\" is full")]
    TableFull(String),
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

impl WriteSet {
    /// Rows these writes add, net of the rows they delete.
    pub fn rows_added(&self) -> i64 {
        self.ops.iter().fold(0i64, |n, op| match op {
            WriteOp::Insert { .. } => n.saturating_add(1),
            WriteOp::Delete { .. } => n.saturating_sub(1),
            WriteOp::Update { .. } => n,
        })
    }
}

/// A position in the open transaction's undo list (statement atomicity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savepoint(pub usize);
