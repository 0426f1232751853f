//! Replaying logged writes into an engine: recovery and (later) followers.
//!
//! Owns: `apply` and `ApplyError`. Must not: run SQL or Wasm; a logged write
//! is applied to storage exactly as recorded, all of it or none of it.

// ApplyError names the op, table and row, so it is large; it is also
// rare (a replica that drifted, a bug), so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use super::record::{LoggedOp, LoggedWrites};
use crate::sql::Engine;
use crate::storage::{Database, RowId, StorageError, Table, WriteSet};
use crate::types::Value;
use thiserror::Error;

/// Why logged writes could not be applied; the engine is left as it was.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error("op {op} ({kind}): table \"{table}\" does not exist")]
    NoSuchTable {
        op: usize,
        kind: &'static str,
        table: String,
    },
    #[error("op {op} ({kind}) on table \"{table}\": row ({row}) not found")]
    RowNotFound {
        op: usize,
        kind: &'static str,
        table: String,
        row: String,
    },
    #[error("op {op} ({kind}) on table \"{table}\", row ({row}): {source}")]
    Storage {
        op: usize,
        kind: &'static str,
        table: String,
        row: String,
        #[source]
        source: StorageError,
    },
    /// The engine already has a transaction open.
    #[error("cannot apply writes: {0}")]
    Begin(StorageError),
}

fn show(row: &[Value]) -> String {
    let mut s = String::new();
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&v.to_string());
    }
    s
}

/// The row of `table` equal to `row`: found through the primary key (or
/// another unique index whose key has no NULL) when there is one, else by a
/// scan (the first of several identical rows).
fn find(table: &Table, row: &[Value]) -> Option<RowId> {
    let schema = table.schema();
    let keyed = schema
        .primary_key
        .into_iter()
        .chain(
            schema
                .indexes
                .iter()
                .enumerate()
                .filter(|(_, d)| d.unique)
                .map(|(i, _)| i),
        )
        .find(|&i| {
            schema.indexes.get(i).is_some_and(|d| {
                d.columns
                    .iter()
                    .all(|&c| row.get(c).is_some_and(|v| !v.is_null()))
            })
        });
    if let Some(def) = keyed.and_then(|i| schema.indexes.get(i).map(|d| (i, d))) {
        let (i, def) = def;
        let key: Vec<Value> = def
            .columns
            .iter()
            .filter_map(|&c| row.get(c).cloned())
            .collect();
        let id = table.index_get(i, &key)?;
        return (*table.get(id)? == *row).then_some(id);
    }
    let mut rows = table.rows();
    while let Some((id, r)) = rows.next() {
        if r == row {
            return Some(id);
        }
    }
    None
}

fn kind(op: &LoggedOp) -> &'static str {
    match op {
        LoggedOp::Insert { .. } => "insert",
        LoggedOp::Update { .. } => "update",
        LoggedOp::Delete { .. } => "delete",
    }
}

fn apply_op(db: &mut Database, i: usize, op: &LoggedOp) -> Result<(), ApplyError> {
    let kind = kind(op);
    let table = op.table();
    let Some(tid) = db.table_id(table) else {
        return Err(ApplyError::NoSuchTable {
            op: i,
            kind,
            table: table.to_string(),
        });
    };
    let storage = |row: &[Value]| {
        let row = show(row);
        move |source| ApplyError::Storage {
            op: i,
            kind,
            table: table.to_string(),
            row,
            source,
        }
    };
    let locate = |db: &Database, row: &[Value]| {
        db.table(tid)
            .and_then(|t| find(t, row))
            .ok_or_else(|| ApplyError::RowNotFound {
                op: i,
                kind,
                table: table.to_string(),
                row: show(row),
            })
    };
    match op {
        LoggedOp::Insert { row, .. } => {
            db.insert(tid, row.clone()).map_err(storage(row))?;
        }
        LoggedOp::Update { old, new, .. } => {
            let id = locate(db, old)?;
            db.update(tid, id, new.clone()).map_err(storage(new))?;
        }
        LoggedOp::Delete { row, .. } => {
            let id = locate(db, row)?;
            db.delete(tid, id).map_err(storage(row))?;
        }
    }
    Ok(())
}

/// Applies `writes` to `engine` in one storage transaction and returns its
/// write-set. On any error it rolls back and says which op, table and row.
pub fn apply(engine: &mut Engine, writes: &LoggedWrites) -> Result<WriteSet, ApplyError> {
    let db = engine.database_mut();
    db.begin().map_err(ApplyError::Begin)?;
    for (i, op) in writes.ops.iter().enumerate() {
        if let Err(e) = apply_op(db, i, op) {
            db.rollback().expect("the transaction begun above is open");
            return Err(e);
        }
    }
    Ok(db.commit().expect("the transaction begun above is open"))
}

impl LoggedWrites {
    /// The writes that undo these (in reverse order): applied after them,
    /// they restore the rows as they were.
    pub fn inverse(&self) -> LoggedWrites {
        let ops = self
            .ops
            .iter()
            .rev()
            .map(|op| match op {
                LoggedOp::Insert { table, row } => LoggedOp::Delete {
                    table: table.clone(),
                    row: row.clone(),
                },
                LoggedOp::Delete { table, row } => LoggedOp::Insert {
                    table: table.clone(),
                    row: row.clone(),
                },
                LoggedOp::Update { table, old, new } => LoggedOp::Update {
                    table: table.clone(),
                    old: new.clone(),
                    new: old.clone(),
                },
            })
            .collect();
        LoggedWrites { ops }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::QueryResult;
    use crate::types::Value;

    fn rows(e: &mut Engine, sql: &str) -> Vec<Vec<Value>> {
        match e.execute(sql).expect("query") {
            QueryResult::Rows(r) => r.rows,
            other => panic!("not rows: {other:?}"),
        }
    }

    fn row(vals: &[Value]) -> crate::storage::Row {
        vals.to_vec().into_boxed_slice()
    }

    #[test]
    fn insert_update_delete_by_primary_key() {
        let mut e = Engine::new();
        e.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
            .expect("ddl");
        let (i, t) = (Value::Int, Value::text);
        let w = LoggedWrites {
            ops: vec![
                LoggedOp::Insert {
                    table: "T".into(),
                    row: row(&[i(1), t("a")]),
                },
                LoggedOp::Insert {
                    table: "t".into(),
                    row: row(&[i(2), t("b")]),
                },
                LoggedOp::Update {
                    table: "t".into(),
                    old: row(&[i(1), t("a")]),
                    new: row(&[i(1), t("z")]),
                },
                LoggedOp::Delete {
                    table: "t".into(),
                    row: row(&[i(2), t("b")]),
                },
            ],
        };
        let ws = apply(&mut e, &w).expect("apply");
        assert_eq!(ws.ops.len(), 4);
        assert_eq!(
            rows(&mut e, "SELECT id, v FROM t"),
            vec![vec![i(1), t("z")]]
        );
        // An update whose old image differs from the stored row is refused.
        let stale = LoggedWrites {
            ops: vec![LoggedOp::Update {
                table: "t".into(),
                old: row(&[i(1), t("a")]),
                new: row(&[i(1), t("q")]),
            }],
        };
        let err = apply(&mut e, &stale).unwrap_err();
        assert!(
            matches!(err, ApplyError::RowNotFound { op: 0, .. }),
            "{err}"
        );
        assert_eq!(rows(&mut e, "SELECT v FROM t"), vec![vec![t("z")]]);
    }

    #[test]
    fn keyless_duplicates_delete_one() {
        let mut e = Engine::new();
        e.execute("CREATE TABLE d (a INT, b TEXT)").expect("ddl");
        e.execute("INSERT INTO d VALUES (1, 'x'), (1, 'x'), (2, 'y')")
            .expect("insert");
        let r = row(&[Value::Int(1), Value::text("x")]);
        let w = LoggedWrites {
            ops: vec![LoggedOp::Delete {
                table: "d".into(),
                row: r.clone(),
            }],
        };
        apply(&mut e, &w).expect("apply");
        assert_eq!(
            rows(&mut e, "SELECT count(*) FROM d WHERE a = 1"),
            vec![vec![Value::Int(1)]]
        );
        let w = LoggedWrites {
            ops: vec![LoggedOp::Update {
                table: "d".into(),
                old: r,
                new: row(&[Value::Int(3), Value::text("x")]),
            }],
        };
        apply(&mut e, &w).expect("apply");
        assert_eq!(
            rows(&mut e, "SELECT a FROM d ORDER BY a"),
            vec![vec![Value::Int(2)], vec![Value::Int(3)]]
        );
    }

    #[test]
    fn unknown_table_rolls_back_and_names_it() {
        let mut e = Engine::new();
        e.execute("CREATE TABLE t (id INT PRIMARY KEY)")
            .expect("ddl");
        let w = LoggedWrites {
            ops: vec![
                LoggedOp::Insert {
                    table: "t".into(),
                    row: row(&[Value::Int(1)]),
                },
                LoggedOp::Insert {
                    table: "nope".into(),
                    row: row(&[Value::Int(2)]),
                },
            ],
        };
        let err = apply(&mut e, &w).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
        assert!(matches!(err, ApplyError::NoSuchTable { op: 1, .. }));
        assert_eq!(
            rows(&mut e, "SELECT count(*) FROM t"),
            vec![vec![Value::Int(0)]]
        );
        // A constraint failure also rolls back, and names the row.
        let dup = LoggedWrites {
            ops: vec![
                LoggedOp::Insert {
                    table: "t".into(),
                    row: row(&[Value::Int(5)]),
                },
                LoggedOp::Insert {
                    table: "t".into(),
                    row: row(&[Value::Int(5)]),
                },
            ],
        };
        let err = apply(&mut e, &dup).unwrap_err();
        assert!(matches!(err, ApplyError::Storage { op: 1, .. }), "{err}");
        assert!(err.to_string().contains("(5)"), "{err}");
        assert_eq!(
            rows(&mut e, "SELECT count(*) FROM t"),
            vec![vec![Value::Int(0)]]
        );
        assert!(!e.database().in_txn());
    }
}
