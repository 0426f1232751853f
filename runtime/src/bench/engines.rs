//! The engines `ohm bench sql` compares, behind one trait so a single
//! measuring path serves both.
//!
//! Owns: `BenchDb` and its two implementations, Ohm's `Engine` and SQLite in
//! memory through rusqlite. Must not: tune either side: SQLite keeps its
//! default pragmas, and each statement on either engine is one autocommit
//! transaction.

use crate::sql::{Engine, Prepared, QueryResult};
use crate::types::Value;
use anyhow::{bail, Context};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, ToSql};

/// What the measuring loop needs from an engine. `Stmt` is prepared once and
/// executed many times; parameters are Ohm `Value`s on both sides.
pub(super) trait BenchDb {
    type Stmt;
    fn name(&self) -> &'static str;
    /// Runs one unparameterised statement (DDL) without preparing it.
    fn execute(&mut self, sql: &str) -> anyhow::Result<()>;
    fn prepare(&mut self, sql: &str) -> anyhow::Result<Self::Stmt>;
    /// Runs a statement, reads every returned value, returns a checksum of
    /// them (or the affected-row count) so the work cannot be skipped.
    fn run(&mut self, stmt: &Self::Stmt, params: &[Value]) -> anyhow::Result<u64>;
    /// Runs a statement and returns its rows, for comparing engines.
    fn rows(&mut self, stmt: &Self::Stmt, params: &[Value]) -> anyhow::Result<Vec<Vec<Value>>>;
}

/// Ohm's engine, in-process; statements prepared once.
pub(super) struct OhmDb {
    engine: Engine,
}

impl OhmDb {
    pub(super) fn new() -> OhmDb {
        OhmDb {
            engine: Engine::new(),
        }
    }
}

/// A prepared statement with its text, for error messages.
pub(super) struct OhmStmt {
    prepared: Prepared,
    sql: String,
}

impl BenchDb for OhmDb {
    type Stmt = OhmStmt;

    fn name(&self) -> &'static str {
        "ohm"
    }

    fn execute(&mut self, sql: &str) -> anyhow::Result<()> {
        self.engine
            .execute(sql)
            .with_context(|| format!("ohm: {sql}"))?;
        Ok(())
    }

    fn prepare(&mut self, sql: &str) -> anyhow::Result<OhmStmt> {
        let prepared = self
            .engine
            .prepare(sql)
            .with_context(|| format!("ohm: prepare {sql}"))?;
        Ok(OhmStmt {
            prepared,
            sql: sql.to_string(),
        })
    }

    fn run(&mut self, stmt: &OhmStmt, params: &[Value]) -> anyhow::Result<u64> {
        let result = self.engine.execute_prepared(&stmt.prepared, params);
        match result.with_context(|| format!("ohm: {}", stmt.sql))? {
            QueryResult::Rows(set) => Ok(set
                .rows
                .iter()
                .flatten()
                .map(checksum)
                .fold(0, u64::wrapping_add)),
            QueryResult::Affected(n) => Ok(n),
            QueryResult::Done(_) => Ok(0),
        }
    }

    fn rows(&mut self, stmt: &OhmStmt, params: &[Value]) -> anyhow::Result<Vec<Vec<Value>>> {
        let result = self.engine.execute_prepared(&stmt.prepared, params);
        match result.with_context(|| format!("ohm: {}", stmt.sql))? {
            QueryResult::Rows(set) => Ok(set.rows),
            other => bail!("ohm: {} returned {other:?}, not rows", stmt.sql),
        }
    }
}

/// SQLite in memory with its default pragmas. Statements go through
/// rusqlite's prepared-statement cache (a hash lookup on the text per call).
pub(super) struct SqliteDb {
    conn: Connection,
}

impl SqliteDb {
    pub(super) fn open() -> anyhow::Result<SqliteDb> {
        let conn = Connection::open_in_memory().context("sqlite: open in memory")?;
        Ok(SqliteDb { conn })
    }

    /// `(journal_mode, synchronous)` as SQLite reports them, for the header.
    pub(super) fn pragmas(&self) -> anyhow::Result<(String, i64)> {
        let journal = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        let synchronous = self
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        Ok((journal, synchronous))
    }
}

/// Binds an Ohm value without copying it.
struct SqliteParam<'a>(&'a Value);

impl ToSql for SqliteParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            other => {
                let msg = format!(
                    "bench binds only NULL, integers and text, not {}",
                    other.kind()
                );
                return Err(rusqlite::Error::ToSqlConversionFailure(msg.into()));
            }
        }))
    }
}

fn from_sqlite(v: ValueRef<'_>) -> anyhow::Result<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(d) => Value::Double(d),
        ValueRef::Text(t) => Value::text(std::str::from_utf8(t).context("sqlite: text not UTF-8")?),
        ValueRef::Blob(b) => Value::Bytes(b.into()),
    })
}

impl SqliteDb {
    /// Runs `sql` and hands each returned value (row index, value) to `each`.
    fn for_each_value(
        &mut self,
        sql: &str,
        params: &[Value],
        mut each: impl FnMut(usize, ValueRef<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .with_context(|| format!("sqlite: prepare {sql}"))?;
        let bound = params_from_iter(params.iter().map(SqliteParam));
        let columns = stmt.column_count();
        if columns == 0 {
            let n = stmt
                .execute(bound)
                .with_context(|| format!("sqlite: {sql}"))?;
            return Ok(n as u64);
        }
        let mut rows = stmt
            .query(bound)
            .with_context(|| format!("sqlite: {sql}"))?;
        let mut row_index = 0;
        while let Some(row) = rows.next().with_context(|| format!("sqlite: {sql}"))? {
            for col in 0..columns {
                each(row_index, row.get_ref(col)?)?;
            }
            row_index += 1;
        }
        Ok(0)
    }
}

impl BenchDb for SqliteDb {
    type Stmt = String;

    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn execute(&mut self, sql: &str) -> anyhow::Result<()> {
        self.conn
            .execute_batch(sql)
            .with_context(|| format!("sqlite: {sql}"))
    }

    fn prepare(&mut self, sql: &str) -> anyhow::Result<String> {
        self.conn
            .prepare_cached(sql)
            .with_context(|| format!("sqlite: prepare {sql}"))?;
        Ok(sql.to_string())
    }

    fn run(&mut self, sql: &String, params: &[Value]) -> anyhow::Result<u64> {
        let mut sum = 0u64;
        let affected = self.for_each_value(sql, params, |_, v| {
            sum = sum.wrapping_add(match v {
                ValueRef::Integer(i) => i as u64,
                ValueRef::Text(t) | ValueRef::Blob(t) => t.len() as u64,
                ValueRef::Real(d) => d.to_bits(),
                ValueRef::Null => 1,
            });
            Ok(())
        })?;
        Ok(sum.wrapping_add(affected))
    }

    fn rows(&mut self, sql: &String, params: &[Value]) -> anyhow::Result<Vec<Vec<Value>>> {
        let mut out: Vec<Vec<Value>> = Vec::new();
        self.for_each_value(sql, params, |row, v| {
            if out.len() <= row {
                out.push(Vec::new());
            }
            out[row].push(from_sqlite(v)?);
            Ok(())
        })?;
        Ok(out)
    }
}

/// A cheap fold of one Ohm value, matching what the SQLite side reads.
fn checksum(v: &Value) -> u64 {
    match v {
        Value::Int(i) | Value::Timestamp(i) | Value::TimestampTz(i) | Value::Time(i) => *i as u64,
        Value::Date(d) => *d as u64,
        Value::Interval(i) => i.span() as u64,
        Value::Uuid(u) => u64::from_le_bytes([u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7]]),
        Value::Text(s) => s.len() as u64,
        Value::Bytes(b) => b.len() as u64,
        Value::Double(d) => d.to_bits(),
        Value::Decimal(d) => d.mantissa() as u64,
        Value::Bool(b) => *b as u64,
        Value::Null => 1,
    }
}
