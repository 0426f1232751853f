//! Bulk load: rows for one table, each inserted as a statement of its own
//! inside the open transaction (defaults, conversion to the column types,
//! CHECKs, unique keys, foreign keys), from a plan made once per chunk: no
//! SQL text per row.
//!
//! Owns: `LoadPlan` (which columns a chunk gives, where its partition
//! column is) and `Engine::load_row`. Must not: route rows to partitions or
//! log them (the caller does, `txn::load`).

use super::dml;
use super::error::SqlError;
use super::plan::{DmlPlan, InsertPlan};
use super::Engine;
use crate::types::{DataType, Value};
use sqlparser::ast;

/// The largest TIME, 24:00:00, in microseconds (as PostgreSQL allows).
const TIME_MICROS_MAX: i64 = 86_400_000_000;

/// How a chunk's rows are inserted into one table.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    insert: InsertPlan,
    /// The columns each row gives, in order: name and type.
    columns: Vec<(String, DataType)>,
    /// Which of `columns` is the table's partition column (None: the
    /// table is replicated).
    partition: Option<usize>,
}

/// Why one row was not loaded: the column at fault, when one is.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub column: Option<String>,
    pub error: SqlError,
}

impl LoadPlan {
    /// The columns each row gives, in order.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(n, _)| n.as_str())
    }

    /// The partition column's value in `row` (values as the wire sent them),
    /// converted to its type as it will be stored; None for a replicated
    /// table.
    pub fn partition_value(&self, row: &[Value]) -> Option<Result<Value, RowError>> {
        let i = self.partition?;
        let (name, ty) = &self.columns[i];
        let v = row.get(i).cloned().unwrap_or(Value::Null);
        Some(column_value(v, *ty).map_err(|error| RowError {
            column: Some(name.clone()),
            error,
        }))
    }
}

/// `v`, as the wire sent it, converted to a column of type `ty`: the
/// integer forms of dates and times (docs/PROTOCOL.md, "Values"), 16 bytes
/// for a UUID, then what SQL converts on insert (text as PostgreSQL reads
/// it, integers to DECIMAL ...).
pub fn column_value(v: Value, ty: DataType) -> Result<Value, SqlError> {
    let v = match (ty, v) {
        (DataType::Timestamp, Value::Int(us)) => Value::Timestamp(us),
        (DataType::TimestampTz, Value::Int(us)) => Value::TimestampTz(us),
        (DataType::Date, Value::Int(days)) => Value::Date(i32::try_from(days).map_err(|_| {
            SqlError::OutOfRange(format!(
                "{days} is out of range for DATE (days since 1970-01-01, a 32-bit number)"
            ))
        })?),
        (DataType::Time, Value::Int(us)) => {
            if !(0..=TIME_MICROS_MAX).contains(&us) {
                return Err(SqlError::OutOfRange(format!(
                    "{us} is out of range for TIME (microseconds since midnight)"
                )));
            }
            Value::Time(us)
        }
        (DataType::Uuid, Value::Bytes(b)) => {
            Value::Uuid(<[u8; 16]>::try_from(&b[..]).map_err(|_| {
                SqlError::exec(format!("a UUID is 16 bytes; this one has {}", b.len()))
            })?)
        }
        (_, v) => v,
    };
    super::ops::coerce_owned(v, ty)
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Engine {
    /// The plan to load rows giving `columns` (empty: every column, in
    /// table order) into `table`. Refuses an unknown table or column, a
    /// column named twice, and a partitioned table whose partition column
    /// the rows do not give (a row's partition must be known before it is
    /// built).
    pub fn load_plan(&self, table: &str, columns: &[String]) -> Result<LoadPlan, SqlError> {
        let t = self
            .database()
            .table_by_name(table)
            .filter(|_| !super::is_sequence_table(table))
            .ok_or_else(|| SqlError::plan(format!("no table named \"{table}\"")))?;
        let schema = t.schema();
        let mut given: Vec<(String, DataType)> = Vec::new();
        if columns.is_empty() {
            given.extend(schema.columns.iter().map(|c| (c.name.clone(), c.ty)));
        }
        for name in columns {
            let c = schema
                .columns
                .iter()
                .find(|c| c.name == *name)
                .ok_or_else(|| {
                    SqlError::plan(format!("table \"{table}\" has no column \"{name}\""))
                })?;
            if given.iter().any(|(n, _)| n == name) {
                return Err(SqlError::plan(format!(
                    "column \"{name}\" is named twice in the load's columns"
                )));
            }
            given.push((c.name.clone(), c.ty));
        }
        let partition = match schema.partition_column {
            None => None,
            Some(pc) => {
                let name = &schema.columns[pc].name;
                Some(given.iter().position(|(n, _)| n == name).ok_or_else(|| {
                    SqlError::plan(format!(
                        "table \"{table}\" is partitioned on \"{name}\": the load must give \
                         that column (each row goes to the partition its value names)"
                    ))
                })?)
            }
        };
        let names: Vec<String> = given.iter().map(|(n, _)| quoted(n)).collect();
        let params: Vec<String> = (1..=given.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quoted(&schema.name),
            names.join(", "),
            params.join(", ")
        );
        let mut stmts = super::parse(&sql)?;
        let stmt: ast::Statement = stmts.remove(0);
        let insert = match self.plan(&stmt)? {
            super::StmtPlan::Dml(DmlPlan::Insert(p)) => p,
            _ => return Err(SqlError::exec("a load's INSERT did not plan as one")),
        };
        Ok(LoadPlan {
            insert,
            columns: given,
            partition,
        })
    }

    /// Inserts one row (values of the plan's columns in order, as the wire
    /// sent them) inside the open transaction, as a statement of its own:
    /// a row that fails leaves no trace, and says which column was at
    /// fault when one was.
    pub fn load_row(&mut self, plan: &LoadPlan, row: Vec<Value>) -> Result<(), RowError> {
        super::interrupt::tick().map_err(|e| RowError {
            column: None,
            error: e.into(),
        })?;
        if row.len() != plan.columns.len() {
            return Err(RowError {
                column: None,
                error: SqlError::exec(format!(
                    "the row has {} values; the load gives {} columns",
                    row.len(),
                    plan.columns.len()
                )),
            });
        }
        let mut values = Vec::with_capacity(row.len());
        for (v, (name, ty)) in row.into_iter().zip(&plan.columns) {
            values.push(column_value(v, *ty).map_err(|error| RowError {
                column: Some(name.clone()),
                error,
            })?);
        }
        self.db.sequence_cursor().borrow_mut().last.clear();
        let now_us = self.now_us;
        let insert = &plan.insert;
        self.write(|db| dml::insert_given(db, insert, values, now_us))
            .map(|_| ())
            .map_err(|error| RowError {
                column: match &error {
                    SqlError::Storage(crate::storage::StorageError::NotNull { column, .. }) => {
                        Some(column.clone())
                    }
                    _ => None,
                },
                error,
            })
    }
}
