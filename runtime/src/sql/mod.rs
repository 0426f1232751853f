//! SQL: sqlparser AST -> checked plan -> execution over `storage`.
//!
//! Owns: the `Engine` (a `storage::Database` plus prepared-statement
//! bookkeeping), planning, and execution. Must not: do I/O, spawn, or use
//! async; it runs inside a partition executor thread.
//!
//! ```text
//!   text --sqlparser--> AST --plan--> Plan --execute(params)--> QueryResult
//!                                      ^ cached in `Prepared`; no parsing on
//!                                        the execute path
//! ```

pub mod error;
pub mod ops;

pub use error::SqlError;

use crate::storage::Database;
use crate::types::{DataType, Value};

/// A result column: its name as the client sees it and its type (None when
/// the type is unknown, e.g. a bare NULL).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    pub ty: Option<DataType>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowSet {
    pub columns: Vec<ColumnInfo>,
    pub rows: Vec<Vec<Value>>,
}

/// What one statement produced.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Rows(RowSet),
    /// INSERT / UPDATE / DELETE: rows affected.
    Affected(u64),
    /// DDL and transaction control; the tag names what was done ("CREATE TABLE").
    Done(&'static str),
}

/// A statement parsed and planned once, executed many times.
pub struct Prepared {
    // planner's choice
}

impl Prepared {
    /// How many parameters (`?` or `$n`) the statement takes.
    pub fn param_count(&self) -> usize {
        todo!()
    }
}

/// One partition's SQL engine.
pub struct Engine {
    db: Database,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    pub fn new() -> Engine {
        Engine {
            db: Database::new(),
        }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs every statement in `sql` (separated by `;`) in order, each in its
    /// own transaction unless one is open; returns the last one's result.
    pub fn execute(&mut self, _sql: &str) -> Result<QueryResult, SqlError> {
        todo!()
    }

    /// Runs one statement with parameter values.
    pub fn execute_with(&mut self, _sql: &str, _params: &[Value]) -> Result<QueryResult, SqlError> {
        todo!()
    }

    /// Parses and plans one statement.
    pub fn prepare(&mut self, _sql: &str) -> Result<Prepared, SqlError> {
        todo!()
    }

    /// Executes a prepared statement; re-plans transparently if the schema
    /// changed since it was prepared.
    pub fn execute_prepared(
        &mut self,
        _stmt: &Prepared,
        _params: &[Value],
    ) -> Result<QueryResult, SqlError> {
        todo!()
    }
}
