//! One `load` chunk over every held partition: each row goes to the
//! partition its partition column names (a replicated table's rows to
//! every partition), each partition inserts its rows in one transaction
//! from one plan, and the chunk comes back as each partition's share of
//! writes: one log record per partition, all or nothing. A row that fails
//! is skipped and reported, up to the chunk's `max_errors`; one more and
//! nothing of the chunk is kept.
//!
//! ```text
//!   rows ──partition_for(partition column)──▶ bucket per partition
//!     bucket p ──Engine::load_row (each its own statement)──▶ write-set p ──▶ share p
//!     a row that fails: undone, reported (row, column, why)
//! ```
//!
//! Owns: routing and applying a chunk. Must not: log, wait, or talk to
//! cores (the coordinator commits the shares).

use super::scratch::{self, Guards};
use super::TxnError;
use crate::catalog::{partition_for, PartitionId, Quota};
use crate::durability::{self, LoggedWrites};
use crate::sql::load::RowError;
use crate::sql::SqlError;
use crate::types::{TenantId, Value};

/// Rejected rows a refusal names in its message (the rest are counted).
const REFUSAL_ROWS_SHOWN: usize = 10;

/// One chunk of rows for one table.
pub struct Chunk<'a> {
    pub table: &'a str,
    /// The columns each row gives (empty: every column, in table order).
    pub columns: &'a [String],
    pub rows: Vec<Vec<Value>>,
    /// Rows that may be skipped before the chunk is refused.
    pub max_errors: u64,
    /// The transaction's timestamp (`now()` in defaults).
    pub now_us: i64,
}

/// A row not loaded: its place in the chunk (from 1), the column at fault
/// when one was, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub row: u64,
    pub column: Option<String>,
    pub message: String,
}

/// What a chunk did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub loaded: u64,
    /// By row, at most `max_errors` of them.
    pub rejected: Vec<Rejected>,
}

/// Why a chunk was refused; nothing of it is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadError {
    /// The load cannot start (no such table or column), or ran past its
    /// time limit.
    Sql(SqlError),
    /// Over `max_errors` rows failed: the first of them, by row.
    TooManyRejected {
        rejected: Vec<Rejected>,
        max_errors: u64,
    },
    Txn(TxnError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Sql(e) => write!(f, "{e}"),
            LoadError::Txn(e) => write!(f, "{e}"),
            LoadError::TooManyRejected {
                rejected,
                max_errors,
            } => {
                write!(
                    f,
                    "{} rows failed, more than max_errors ({max_errors}); nothing of this \
                     chunk was loaded:",
                    rejected.len()
                )?;
                for r in rejected.iter().take(REFUSAL_ROWS_SHOWN) {
                    write!(f, " row {}", r.row)?;
                    if let Some(c) = &r.column {
                        write!(f, ", column \"{c}\"")?;
                    }
                    write!(f, ": {};", r.message)?;
                }
                if rejected.len() > REFUSAL_ROWS_SHOWN {
                    write!(f, " and {} more", rejected.len() - REFUSAL_ROWS_SHOWN)?;
                }
                Ok(())
            }
        }
    }
}

fn rejected(row: usize, e: RowError) -> Rejected {
    Rejected {
        row: row as u64 + 1,
        column: e.column,
        message: e.error.to_string(),
    }
}

/// Applies `chunk` to `tenant`'s part of every held partition and returns
/// what it did and each partition's share of writes (none at all when it
/// wrote nothing). On error every held state is as it was.
pub fn load(
    g: &mut Guards,
    tenant: TenantId,
    quota: &Quota,
    chunk: Chunk<'_>,
) -> Result<(Outcome, Vec<LoggedWrites>), LoadError> {
    let n = g.len();
    let plan = g[0]
        .tenant(tenant)
        .engine
        .load_plan(chunk.table, chunk.columns)
        .map_err(LoadError::Sql)?;
    let mut out = Outcome::default();
    let mut refused = Vec::new();
    // Rows by partition; a replicated table's rows are loaded on partition
    // 0 and its writes copied to the others.
    let mut buckets: Vec<Vec<(usize, Vec<Value>)>> = (0..n).map(|_| Vec::new()).collect();
    for (i, row) in chunk.rows.into_iter().enumerate() {
        match plan.partition_value(&row) {
            None => buckets[0].push((i, row)),
            Some(Ok(v)) => buckets[partition_for(&v, n as u32).0 as usize].push((i, row)),
            Some(Err(e)) => refused.push(rejected(i, e)),
        }
    }
    let replicated = plan.partition_value(&[]).is_none();
    let mut shares: Vec<LoggedWrites> = (0..n).map(|_| LoggedWrites::default()).collect();
    let mut done = Vec::new();
    let undo = |g: &mut Guards, done: &[usize], shares: &[LoggedWrites]| {
        for &p in done.iter().rev() {
            durability::apply(&mut g[p].tenant(tenant).engine, &shares[p].inverse())
                .expect("undoing writes just made on a held partition cannot fail");
        }
    };
    for (p, bucket) in buckets.into_iter().enumerate() {
        if bucket.is_empty() {
            continue;
        }
        let engine = &mut g[p].tenant(tenant).engine;
        engine.set_now(chunk.now_us);
        engine.set_placement(crate::storage::Placement {
            partition: Some(p as u32),
            partitions: n as u32,
        });
        // Table ids may differ between partitions: each plans its own.
        let plan = match engine.load_plan(chunk.table, chunk.columns) {
            Ok(plan) => plan,
            Err(e) => {
                undo(g, &done, &shares);
                return Err(LoadError::Sql(e));
            }
        };
        if let Err(e) = engine.begin() {
            undo(g, &done, &shares);
            return Err(LoadError::Sql(e));
        }
        let mut failed = None;
        for (i, row) in bucket {
            match engine.load_row(&plan, row) {
                Ok(()) => out.loaded += 1,
                Err(e) if matches!(e.error, SqlError::Stopped(_)) => {
                    failed = Some(LoadError::Sql(e.error));
                    break;
                }
                Err(e) => {
                    refused.push(rejected(i, e));
                    if refused.len() as u64 > chunk.max_errors {
                        failed = Some(LoadError::TooManyRejected {
                            rejected: Vec::new(),
                            max_errors: chunk.max_errors,
                        });
                        break;
                    }
                }
            }
        }
        if let Some(mut e) = failed {
            engine
                .rollback()
                .expect("the transaction begun for this chunk is open");
            undo(g, &done, &shares);
            if let LoadError::TooManyRejected { rejected, .. } = &mut e {
                refused.sort_by_key(|r| r.row);
                *rejected = refused;
            }
            return Err(e);
        }
        let ws = match engine.commit() {
            Ok(ws) => ws,
            Err(e) => {
                undo(g, &done, &shares);
                return Err(LoadError::Sql(e));
            }
        };
        shares[p] = LoggedWrites::from_write_set(engine.database(), &ws);
        done.push(p);
    }
    refused.sort_by_key(|r| r.row);
    if refused.len() as u64 > chunk.max_errors {
        // Rows refused while routing, before any partition ran.
        undo(g, &done, &shares);
        return Err(LoadError::TooManyRejected {
            rejected: refused,
            max_errors: chunk.max_errors,
        });
    }
    out.rejected = refused;
    if replicated && !shares[0].ops.is_empty() {
        // Every partition holds the same copy: the same writes apply.
        for p in 1..n {
            shares[p] = shares[0].clone();
            if let Err(e) = durability::apply(&mut g[p].tenant(tenant).engine, &shares[p]) {
                undo(g, &done, &shares);
                return Err(LoadError::Txn(TxnError::Internal(format!(
                    "partition {p}'s copy of replicated table \"{}\" differs from partition \
                     0's: {e}",
                    chunk.table
                ))));
            }
            done.push(p);
        }
    }
    let checked = scratch::check_size(&shares).and_then(|()| {
        for (p, share) in shares.iter().enumerate() {
            let added = share.rows_added();
            if added <= 0 {
                continue;
            }
            let rows = g[p].tenant_ref(tenant).map_or(0, |t| t.rows());
            g[p].quota_of(tenant, quota)
                .check_rows_applied(PartitionId(p as u32), rows, added)
                .map_err(TxnError::Quota)?;
        }
        Ok(())
    });
    if let Err(e) = checked {
        undo(g, &done, &shares);
        return Err(LoadError::Txn(e));
    }
    if done.is_empty() {
        shares.clear();
    }
    Ok((out, shares))
}
