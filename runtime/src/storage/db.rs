//! The tables of one partition, the catalog rules of DDL, and the single
//! open transaction (undo + write-set).
//!
//! Owns: `Database`. Must not: run DDL inside a transaction (refused with
//! `TxnOpen`, so undo never meets a dropped table or index), or let a failed
//! insert/update change anything.
//!
//! ```text
//!   begin --> insert/update/delete --> ops: Vec<WriteOp> + undo: Vec<UndoMeta>
//!                                       (same length; Savepoint = that length)
//!   rollback_to(sp): pop both back to sp, reversing each change in its table
//!   commit: ops become the WriteSet       rollback: rollback_to(0)
//! ```

use super::table::{Placed, Table};
use super::{
    CheckConstraint, ColumnDef, ColumnDefault, IndexDef, Row, RowId, Savepoint, StorageError,
    TableId, TableSchema, WriteOp, WriteSet,
};
use crate::types::Value;
use std::collections::BTreeMap;

/// What `ops[i]` alone does not say but undo needs: the row's slot and, for
/// an insert, whether the slot was new.
#[derive(Debug, Clone, Copy)]
struct UndoMeta {
    id: RowId,
    fresh: bool,
}

/// The tables of one partition and its (at most one) open transaction.
pub struct Database {
    /// Indexed by `TableId`; a dropped table leaves `None` so ids stay unique.
    tables: Vec<Option<Table>>,
    /// Lower-cased table name -> id.
    names: BTreeMap<String, TableId>,
    in_txn: bool,
    /// The write-set of the open transaction, in order.
    ops: Vec<WriteOp>,
    /// Parallel to `ops`.
    undo: Vec<UndoMeta>,
    schema_version: u64,
    /// Which partition this database is, for values that must stay on it.
    placement: Placement,
    /// Sequence values the running statement has taken (see `SeqCursor`).
    sequences: std::cell::RefCell<SeqCursor>,
}

/// Which of `partitions` partitions a database is: `partition` None for
/// one holding every partition's rows (the coordinator's scratch copy).
/// A database on its own is partition 0 of 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub partition: Option<u32>,
    pub partitions: u32,
}

/// What the running statement has taken from sequences and not yet
/// written to their rows: `last[(sequence, partition)]` is the value it
/// gave last. Readers hold `&Database` while they evaluate, so this is
/// kept behind a `RefCell`; the SQL layer writes it out at the end of the
/// statement (and clears it at the start of the next).
#[derive(Debug, Default)]
pub struct SeqCursor {
    pub last: BTreeMap<(String, u32), i64>,
}

impl Default for Database {
    fn default() -> Self {
        Self::new()
    }
}

fn unknown(id: TableId) -> StorageError {
    StorageError::NoSuchTable(format!("#{}", id.0))
}

fn invalid(msg: String) -> StorageError {
    StorageError::InvalidSchema(msg)
}

impl Database {
    pub fn new() -> Database {
        Database {
            tables: Vec::new(),
            names: BTreeMap::new(),
            in_txn: false,
            ops: Vec::new(),
            undo: Vec::new(),
            schema_version: 0,
            placement: Placement {
                partition: Some(0),
                partitions: 1,
            },
            sequences: std::cell::RefCell::new(SeqCursor::default()),
        }
    }

    /// Which partition this database is (see `Placement`).
    pub fn placement(&self) -> Placement {
        self.placement
    }

    pub fn set_placement(&mut self, placement: Placement) {
        assert!(
            placement.partitions > 0,
            "a node has at least one partition"
        );
        self.placement = placement;
    }

    /// The sequence values the running statement has taken.
    pub fn sequence_cursor(&self) -> &std::cell::RefCell<SeqCursor> {
        &self.sequences
    }

    /// Bumped by every successful DDL statement: a plan made at an older
    /// version must be re-planned.
    pub fn schema_version(&self) -> u64 {
        self.schema_version
    }

    fn no_ddl_in_txn(&self) -> Result<(), StorageError> {
        if self.in_txn {
            return Err(StorageError::TxnOpen);
        }
        Ok(())
    }

    fn index_name_taken(&self, name: &str) -> bool {
        self.tables().any(|t| t.index_position(name).is_some())
    }

    /// Checks `def` against `schema` (columns exist, at least one, none twice).
    fn check_index_def(&self, schema: &TableSchema, def: &IndexDef) -> Result<(), StorageError> {
        if def.columns.is_empty() {
            return Err(invalid(format!("index \"{}\" has no columns", def.name)));
        }
        for (i, &c) in def.columns.iter().enumerate() {
            if c >= schema.columns.len() {
                return Err(invalid(format!(
                    "index \"{}\" names column {c} but table \"{}\" has {} columns",
                    def.name,
                    schema.name,
                    schema.columns.len()
                )));
            }
            if def.columns[..i].contains(&c) {
                return Err(invalid(format!(
                    "index \"{}\" names column \"{}\" twice",
                    def.name, schema.columns[c].name
                )));
            }
        }
        if self.index_name_taken(&def.name) {
            return Err(StorageError::IndexExists(def.name.clone()));
        }
        Ok(())
    }

    /// Creates a table with the indexes in `schema.indexes`. Columns of the
    /// primary key become NOT NULL (as in SQL).
    pub fn create_table(&mut self, mut schema: TableSchema) -> Result<TableId, StorageError> {
        self.no_ddl_in_txn()?;
        let key = schema.name.to_ascii_lowercase();
        if self.names.contains_key(&key) {
            return Err(StorageError::TableExists(schema.name));
        }
        for (i, c) in schema.columns.iter().enumerate() {
            if schema.columns[..i]
                .iter()
                .any(|d| d.name.eq_ignore_ascii_case(&c.name))
            {
                return Err(invalid(format!(
                    "column \"{}\" specified more than once in table \"{}\"",
                    c.name, schema.name
                )));
            }
        }
        for (i, def) in schema.indexes.iter().enumerate() {
            self.check_index_def(&schema, def)?;
            if schema.indexes[..i]
                .iter()
                .any(|d| d.name.eq_ignore_ascii_case(&def.name))
            {
                return Err(StorageError::IndexExists(def.name.clone()));
            }
        }
        if let Some(pk) = schema.primary_key {
            let Some(def) = schema.indexes.get(pk).filter(|d| d.unique) else {
                return Err(invalid(format!(
                    "primary key of table \"{}\" must name a unique index",
                    schema.name
                )));
            };
            for &c in &def.columns.clone() {
                schema.columns[c].nullable = false;
            }
        }
        if schema.checks.len() > super::TABLE_CHECKS_MAX {
            return Err(invalid(format!(
                "table \"{}\" has {} CHECK constraints, over the {} a table may have",
                schema.name,
                schema.checks.len(),
                super::TABLE_CHECKS_MAX
            )));
        }
        if let Some(c) = schema
            .partition_column
            .filter(|&c| c >= schema.columns.len())
        {
            return Err(invalid(format!(
                "partition column {c} is out of range for table \"{}\"",
                schema.name
            )));
        }
        let Ok(n) = u32::try_from(self.tables.len()) else {
            return Err(invalid("too many tables created".to_string()));
        };
        let id = TableId(n);
        self.tables.push(Some(Table::new(id, schema)));
        self.names.insert(key, id);
        self.schema_version += 1;
        Ok(id)
    }

    pub fn drop_table(&mut self, id: TableId) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let slot = self
            .tables
            .get_mut(id.0 as usize)
            .ok_or_else(|| unknown(id))?;
        let table = slot.take().ok_or_else(|| unknown(id))?;
        self.names.remove(&table.schema().name.to_ascii_lowercase());
        self.schema_version += 1;
        Ok(())
    }

    /// Case-insensitive.
    pub fn table_id(&self, name: &str) -> Option<TableId> {
        self.names.get(&name.to_ascii_lowercase()).copied()
    }

    #[inline]
    pub fn table(&self, id: TableId) -> Option<&Table> {
        self.tables.get(id.0 as usize)?.as_ref()
    }

    /// The table named `name` (case-insensitive).
    pub fn table_by_name(&self, name: &str) -> Option<&Table> {
        self.table(self.table_id(name)?)
    }

    /// Live tables in id (creation) order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> + '_ {
        self.tables.iter().flatten()
    }

    /// A snapshot begins: every table will hand it its rows as they are
    /// now (`Table::begin_snapshot`). No transaction may be open.
    pub(crate) fn begin_snapshot(&mut self, token: &super::SnapshotToken) {
        assert!(!self.in_txn, "a snapshot begun inside a transaction");
        for t in self.tables.iter_mut().flatten() {
            t.begin_snapshot(token);
        }
    }

    /// Table `id` for the snapshot reading it (None once it is dropped).
    pub(crate) fn snapshot_table(&mut self, id: TableId) -> Option<&mut Table> {
        self.tables.get_mut(id.0 as usize)?.as_mut()
    }

    /// Every table drops what it kept for a snapshot (one abandoned).
    pub(crate) fn end_snapshot(&mut self) {
        for t in self.tables.iter_mut().flatten() {
            t.end_snapshot();
        }
    }

    fn table_mut(&mut self, id: TableId) -> Result<&mut Table, StorageError> {
        self.tables
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| unknown(id))
    }

    /// Builds the index over existing rows; fails (and leaves nothing) if a
    /// unique index finds duplicates.
    pub fn create_index(&mut self, table: TableId, def: IndexDef) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let schema = self.table(table).ok_or_else(|| unknown(table))?.schema();
        self.check_index_def(schema, &def)?;
        self.table_mut(table)?.add_index(def)?;
        self.schema_version += 1;
        Ok(())
    }

    /// The writes the open transaction made after `sp`, in order.
    pub fn ops_since(&self, sp: Savepoint) -> &[WriteOp] {
        self.ops.get(sp.0..).unwrap_or(&[])
    }

    /// Records a FOREIGN KEY of `table` (the SQL layer has checked it and
    /// the rows already there).
    pub fn add_foreign_key(
        &mut self,
        table: TableId,
        fk: super::ForeignKey,
    ) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let t = self.table_mut(table)?;
        let s = t.schema();
        if s.foreign_keys
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(&fk.name))
        {
            return Err(invalid(format!(
                "constraint \"{}\" for relation \"{}\" already exists",
                fk.name, s.name
            )));
        }
        let width = s.columns.len();
        if fk.columns.iter().any(|&c| c >= width) {
            return Err(invalid(format!(
                "foreign key \"{}\" names a column past table \"{}\"'s {width}",
                fk.name, s.name
            )));
        }
        t.schema_mut().foreign_keys.push(fk);
        self.schema_version += 1;
        Ok(())
    }

    /// `ALTER TABLE ... ADD PRIMARY KEY (cols)` on a table that may hold
    /// rows: its columns become NOT NULL and an ordered unique index `name`
    /// (as `CREATE TABLE` makes) backs the key. Fails,
    /// changing nothing, if the table has a key already, or a row has NULL
    /// or a duplicate there.
    pub fn add_primary_key(
        &mut self,
        table: TableId,
        name: &str,
        cols: Vec<usize>,
    ) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let t = self.table(table).ok_or_else(|| unknown(table))?;
        let schema = t.schema();
        if schema.primary_key.is_some() {
            return Err(invalid(format!(
                "multiple primary keys for table \"{}\" are not allowed",
                schema.name
            )));
        }
        let unique = super::primary_key_index(name, cols.clone());
        self.check_index_def(schema, &unique)?;
        for &c in &cols {
            if t.scan().any(|(_, row)| row[c].is_null()) {
                return Err(invalid(format!(
                    "column \"{}\" of relation \"{}\" contains null values",
                    schema.columns[c].name, schema.name
                )));
            }
        }
        let t = self.table_mut(table)?;
        t.add_index(unique)?;
        let pk = t.schema().indexes.len() - 1;
        let schema = t.schema_mut();
        schema.primary_key = Some(pk);
        for c in cols {
            schema.columns[c].nullable = false;
        }
        self.schema_version += 1;
        Ok(())
    }

    /// Records a CHECK of `table` (the SQL layer has checked the rows
    /// already there).
    pub fn add_check(
        &mut self,
        table: TableId,
        check: CheckConstraint,
    ) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let t = self.table_mut(table)?;
        if t.schema().checks.len() >= super::TABLE_CHECKS_MAX {
            return Err(invalid(format!(
                "table \"{}\" has {} CHECK constraints, the most it may have",
                t.schema().name,
                super::TABLE_CHECKS_MAX
            )));
        }
        if t.schema().has_constraint(&check.name) {
            return Err(invalid(format!(
                "constraint \"{}\" for relation \"{}\" already exists",
                check.name,
                t.schema().name
            )));
        }
        t.schema_mut().checks.push(check);
        self.schema_version += 1;
        Ok(())
    }

    /// Drops the CHECK or FOREIGN KEY of `table` named `name`
    /// (case-insensitive); false if it has none by that name.
    pub fn drop_constraint(&mut self, table: TableId, name: &str) -> Result<bool, StorageError> {
        self.no_ddl_in_txn()?;
        let s = self.table_mut(table)?.schema_mut();
        let (checks, fks) = (s.checks.len(), s.foreign_keys.len());
        s.checks.retain(|c| !c.name.eq_ignore_ascii_case(name));
        s.foreign_keys
            .retain(|f| !f.name.eq_ignore_ascii_case(name));
        let dropped = s.checks.len() != checks || s.foreign_keys.len() != fks;
        if dropped {
            self.schema_version += 1;
        }
        Ok(dropped)
    }

    /// `ALTER TABLE ... ADD COLUMN`: `column` goes last, holding `fill` in
    /// every row there is (its default, or NULL). Fails, changing nothing,
    /// if the name is taken, the table is at `columns_max`, or `fill` does
    /// not fit the column (NULL in a NOT NULL column of a table with rows).
    pub fn add_column(
        &mut self,
        table: TableId,
        column: ColumnDef,
        fill: Value,
        columns_max: usize,
    ) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let t = self.table(table).ok_or_else(|| unknown(table))?;
        let mut schema = t.schema().clone();
        if schema.column_index(&column.name).is_some() {
            return Err(invalid(format!(
                "column \"{}\" of relation \"{}\" already exists",
                column.name, schema.name
            )));
        }
        if schema.columns.len() >= columns_max {
            return Err(invalid(format!(
                "table \"{}\" has {columns_max} columns, the most it may have",
                schema.name
            )));
        }
        if !t.is_empty() {
            if let Some(e) = super::check::fill_error(&schema.name, &column, &fill) {
                return Err(e);
            }
        }
        schema.columns.push(column);
        let t = self.table_mut(table)?;
        t.reshape(schema, &|row: &[Value], out: &mut Vec<Value>| {
            out.extend_from_slice(row);
            out.push(fill.clone());
        });
        self.schema_version += 1;
        Ok(())
    }

    /// `ALTER TABLE ... DROP COLUMN`: removes column `col` and, as
    /// PostgreSQL does, every index and FOREIGN KEY of this table that
    /// names it; `checks` replaces the table's CHECKs (the SQL layer knows
    /// which read the column). Refused for the partition column, the last
    /// column, and a column another table's FOREIGN KEY references.
    pub fn drop_column(
        &mut self,
        table: TableId,
        col: usize,
        checks: Vec<CheckConstraint>,
    ) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let t = self.table(table).ok_or_else(|| unknown(table))?;
        let mut schema = t.schema().clone();
        let Some(name) = schema.columns.get(col).map(|c| c.name.clone()) else {
            return Err(invalid(format!(
                "column {col} is out of range for table \"{}\"",
                schema.name
            )));
        };
        if schema.columns.len() == 1 {
            return Err(invalid(format!(
                "cannot drop column \"{name}\": it is the last column of table \"{}\"",
                schema.name
            )));
        }
        if schema.partition_column == Some(col) {
            return Err(invalid(format!(
                "cannot drop column \"{name}\": table \"{}\" is partitioned on it",
                schema.name
            )));
        }
        for other in self.tables() {
            for fk in &other.schema().foreign_keys {
                let own = other.id() == table && fk.columns.contains(&col);
                if fk.parent.eq_ignore_ascii_case(&schema.name)
                    && fk.parent_columns.contains(&col)
                    && !own
                {
                    return Err(invalid(format!(
                        "cannot drop column \"{name}\" of table \"{}\": foreign key \"{}\" \
                         of table \"{}\" references it",
                        schema.name,
                        fk.name,
                        other.schema().name
                    )));
                }
            }
        }
        let shift = |c: usize| if c > col { c - 1 } else { c };
        let pk_name = schema.primary_key.map(|i| schema.indexes[i].name.clone());
        schema.columns.remove(col);
        schema.indexes.retain(|ix| !ix.columns.contains(&col));
        for ix in &mut schema.indexes {
            ix.columns.iter_mut().for_each(|c| *c = shift(*c));
        }
        schema.primary_key = pk_name.and_then(|n| {
            schema
                .indexes
                .iter()
                .position(|ix| ix.name.eq_ignore_ascii_case(&n))
        });
        schema.foreign_keys.retain(|fk| !fk.columns.contains(&col));
        let self_name = schema.name.clone();
        for fk in &mut schema.foreign_keys {
            fk.columns.iter_mut().for_each(|c| *c = shift(*c));
            if fk.parent.eq_ignore_ascii_case(&self_name) {
                fk.parent_columns.iter_mut().for_each(|c| *c = shift(*c));
            }
        }
        schema.partition_column = schema.partition_column.map(shift);
        schema.checks = checks;
        for t in self.tables.iter_mut().flatten() {
            if t.id() == table {
                continue;
            }
            for fk in &mut t.schema_mut().foreign_keys {
                if fk.parent.eq_ignore_ascii_case(&self_name) {
                    fk.parent_columns.iter_mut().for_each(|c| *c = shift(*c));
                }
            }
        }
        let t = self.table_mut(table)?;
        t.reshape(schema, &|row: &[Value], out: &mut Vec<Value>| {
            out.extend_from_slice(&row[..col]);
            out.extend_from_slice(&row[col + 1..]);
        });
        self.schema_version += 1;
        Ok(())
    }

    /// `ALTER TABLE ... RENAME COLUMN`: column `col` is called `name` from
    /// now on; `checks` replaces the table's CHECKs (rewritten by the SQL
    /// layer to the new name).
    pub fn rename_column(
        &mut self,
        table: TableId,
        col: usize,
        name: &str,
        checks: Vec<CheckConstraint>,
    ) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let s = self.table_mut(table)?.schema_mut();
        if s.column_index(name).is_some_and(|c| c != col) {
            return Err(invalid(format!(
                "column \"{name}\" of relation \"{}\" already exists",
                s.name
            )));
        }
        let Some(c) = s.columns.get_mut(col) else {
            return Err(invalid(format!(
                "column {col} is out of range for table \"{}\"",
                s.name
            )));
        };
        c.name = name.to_string();
        s.checks = checks;
        self.schema_version += 1;
        Ok(())
    }

    /// `ALTER COLUMN ... SET DEFAULT` / `DROP DEFAULT`.
    pub fn set_column_default(
        &mut self,
        table: TableId,
        col: usize,
        default: Option<ColumnDefault>,
    ) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let s = self.table_mut(table)?.schema_mut();
        let name = s.name.clone();
        let c = s
            .columns
            .get_mut(col)
            .ok_or_else(|| invalid(format!("column {col} is out of range for table \"{name}\"")))?;
        c.default = default;
        self.schema_version += 1;
        Ok(())
    }

    /// `ALTER COLUMN ... SET NOT NULL` (fails, changing nothing, if a row
    /// holds NULL there) / `DROP NOT NULL` (refused on a PRIMARY KEY column).
    pub fn set_column_nullable(
        &mut self,
        table: TableId,
        col: usize,
        nullable: bool,
    ) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let t = self.table(table).ok_or_else(|| unknown(table))?;
        let s = t.schema();
        let Some(c) = s.columns.get(col) else {
            return Err(invalid(format!(
                "column {col} is out of range for table \"{}\"",
                s.name
            )));
        };
        if nullable {
            if let Some(pk) = s.primary_key.map(|i| &s.indexes[i]) {
                if pk.columns.contains(&col) {
                    return Err(invalid(format!(
                        "column \"{}\" is in a primary key",
                        c.name
                    )));
                }
            }
        } else if t.scan().any(|(_, row)| row[col].is_null()) {
            return Err(invalid(format!(
                "column \"{}\" of relation \"{}\" contains null values",
                c.name, s.name
            )));
        }
        self.table_mut(table)?.schema_mut().columns[col].nullable = nullable;
        self.schema_version += 1;
        Ok(())
    }

    /// Drops the index named `name` (case-insensitive), including one backing
    /// the primary key (then `schema.primary_key` becomes None).
    pub fn drop_index(&mut self, table: TableId, name: &str) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let t = self.table_mut(table)?;
        let pos = t
            .index_position(name)
            .ok_or_else(|| StorageError::NoSuchIndex(name.to_string()))?;
        t.remove_index(pos);
        self.schema_version += 1;
        Ok(())
    }

    /// Records `PARTITION TABLE t ON COLUMN c`.
    pub fn set_partition_column(
        &mut self,
        table: TableId,
        column: usize,
    ) -> Result<(), StorageError> {
        self.no_ddl_in_txn()?;
        let t = self.table_mut(table)?;
        if column >= t.schema().columns.len() {
            return Err(invalid(format!(
                "partition column {column} is out of range for table \"{}\"",
                t.schema().name
            )));
        }
        t.schema_mut().partition_column = Some(column);
        self.schema_version += 1;
        Ok(())
    }

    pub fn begin(&mut self) -> Result<(), StorageError> {
        if self.in_txn {
            return Err(StorageError::TxnOpen);
        }
        self.in_txn = true;
        Ok(())
    }

    pub fn in_txn(&self) -> bool {
        self.in_txn
    }

    /// The current position in the open transaction (0 if none is open).
    pub fn savepoint(&self) -> Savepoint {
        Savepoint(self.ops.len())
    }

    /// Undoes everything after `sp` (and drops it from the write-set). A
    /// savepoint at or past the current position does nothing.
    pub fn rollback_to(&mut self, sp: Savepoint) {
        while self.ops.len() > sp.0 {
            let op = self.ops.pop().expect("ops longer than the savepoint");
            let meta = self.undo.pop().expect("undo is parallel to ops");
            let tid = match &op {
                WriteOp::Insert { table, .. }
                | WriteOp::Update { table, .. }
                | WriteOp::Delete { table, .. } => *table,
            };
            let table = self
                .tables
                .get_mut(tid.0 as usize)
                .and_then(Option::as_mut)
                .expect("no DDL inside a transaction, so its tables live");
            match op {
                WriteOp::Insert { .. } => table.undo_insert(Placed {
                    id: meta.id,
                    fresh: meta.fresh,
                }),
                WriteOp::Update { old, .. } => table.undo_update(meta.id, old),
                WriteOp::Delete { row, .. } => table.undo_delete(meta.id, row),
            }
        }
    }

    pub fn commit(&mut self) -> Result<WriteSet, StorageError> {
        if !self.in_txn {
            return Err(StorageError::NoTxn);
        }
        self.in_txn = false;
        self.undo.clear();
        Ok(WriteSet {
            ops: std::mem::take(&mut self.ops),
        })
    }

    /// Restores exactly the state at `begin`.
    pub fn rollback(&mut self) -> Result<(), StorageError> {
        if !self.in_txn {
            return Err(StorageError::NoTxn);
        }
        self.rollback_to(Savepoint(0));
        self.in_txn = false;
        Ok(())
    }

    /// Requires an open transaction.
    #[inline]
    pub fn insert(&mut self, table: TableId, row: Row) -> Result<RowId, StorageError> {
        if !self.in_txn {
            return Err(StorageError::NoTxn);
        }
        let t = self.table_mut(table)?;
        let placed = t.insert_row(&row)?;
        self.ops.push(WriteOp::Insert { table, row });
        self.undo.push(UndoMeta {
            id: placed.id,
            fresh: placed.fresh,
        });
        Ok(placed.id)
    }

    /// Replaces row `id`; requires an open transaction.
    pub fn update(&mut self, table: TableId, id: RowId, row: Row) -> Result<(), StorageError> {
        if !self.in_txn {
            return Err(StorageError::NoTxn);
        }
        let t = self.table_mut(table)?;
        let old = t.update_row(id, &row)?;
        self.ops.push(WriteOp::Update {
            table,
            old,
            new: row,
        });
        self.undo.push(UndoMeta { id, fresh: false });
        Ok(())
    }

    /// Removes row `id` and returns it; requires an open transaction.
    pub fn delete(&mut self, table: TableId, id: RowId) -> Result<Row, StorageError> {
        if !self.in_txn {
            return Err(StorageError::NoTxn);
        }
        let row = self.table_mut(table)?.delete_row(id)?;
        let copy = row.clone();
        self.ops.push(WriteOp::Delete { table, row });
        self.undo.push(UndoMeta { id, fresh: false });
        Ok(copy)
    }
}
