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
use crate::sql::{interrupt, Engine, SqlError};
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
///
/// Each partition's rows go in on a thread of their own (the partitions'
/// states are disjoint), so a chunk takes the cores the partitions have
/// rather than the coordinator's one; what comes back does not depend on
/// which thread finishes first.
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
    let mut buckets: Vec<Bucket> = (0..n).map(|_| Vec::new()).collect();
    for (i, row) in chunk.rows.into_iter().enumerate() {
        match plan.partition_value(&row) {
            None => buckets[0].push((i, row)),
            Some(Ok(v)) => buckets[partition_for(&v, n as u32).0 as usize].push((i, row)),
            Some(Err(e)) => refused.push(rejected(i, e)),
        }
    }
    if refused.len() as u64 > chunk.max_errors {
        return Err(LoadError::TooManyRejected {
            rejected: refused,
            max_errors: chunk.max_errors,
        });
    }
    let replicated = plan.partition_value(&[]).is_none();
    let share = ShareOf {
        tenant,
        table: chunk.table,
        columns: chunk.columns,
        now_us: chunk.now_us,
        partitions: n as u32,
        // A share stops once it alone is past the chunk's limit; the sum
        // is checked once all are done.
        max_errors: chunk.max_errors - refused.len() as u64,
    };
    let ran = run_shares(g, &share, buckets);
    let mut shares: Vec<LoggedWrites> = (0..n).map(|_| LoggedWrites::default()).collect();
    let mut done = Vec::new();
    let mut failed = None;
    for (p, r) in ran.into_iter().enumerate() {
        match r {
            None => {}
            Some(Ok(applied)) => {
                out.loaded += applied.loaded;
                refused.extend(applied.refused);
                shares[p] = applied.writes;
                done.push(p);
            }
            Some(Err((e, why))) => {
                refused.extend(why);
                // A partition that could not run outranks one with too
                // many bad rows: its error says more.
                let too_many = matches!(e, LoadError::TooManyRejected { .. });
                match &failed {
                    None => failed = Some(e),
                    Some(LoadError::TooManyRejected { .. }) if !too_many => failed = Some(e),
                    Some(_) => {}
                }
            }
        }
    }
    let undo = |g: &mut Guards, done: &[usize], shares: &[LoggedWrites]| {
        for &p in done.iter().rev() {
            durability::apply(&mut g[p].tenant(tenant).engine, &shares[p].inverse())
                .expect("undoing writes just made on a held partition cannot fail");
        }
    };
    refused.sort_by_key(|r| r.row);
    if failed.is_none() && refused.len() as u64 > chunk.max_errors {
        failed = Some(LoadError::TooManyRejected {
            rejected: Vec::new(),
            max_errors: chunk.max_errors,
        });
    }
    if let Some(mut e) = failed {
        undo(g, &done, &shares);
        if let LoadError::TooManyRejected {
            rejected,
            max_errors,
        } = &mut e
        {
            *rejected = refused;
            *max_errors = chunk.max_errors;
        }
        return Err(e);
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
    // Each share's size was checked where it was made (a replicated
    // table's copies are partition 0's share).
    for (p, share) in shares.iter().enumerate() {
        let added = share.rows_added();
        if added <= 0 {
            continue;
        }
        let rows = g[p].tenant_ref(tenant).map_or(0, |t| t.rows());
        let fits =
            g[p].quota_of(tenant, quota)
                .check_rows_applied(PartitionId(p as u32), rows, added);
        if let Err(e) = fits {
            undo(g, &done, &shares);
            return Err(LoadError::Txn(TxnError::Quota(e)));
        }
    }
    if done.is_empty() {
        shares.clear();
    }
    Ok((out, shares))
}

/// One partition's rows of a chunk, each with its place in the chunk.
type Bucket = Vec<(usize, Vec<Value>)>;

/// What every partition's share of one chunk has in common.
struct ShareOf<'a> {
    tenant: TenantId,
    table: &'a str,
    columns: &'a [String],
    now_us: i64,
    partitions: u32,
    /// Bad rows one share may skip before it gives up.
    max_errors: u64,
}

/// One partition's share, applied and committed to its engine.
struct Applied {
    loaded: u64,
    refused: Vec<Rejected>,
    writes: LoggedWrites,
}

/// A share that was not applied (its engine is as it was), and the rows it
/// refused before it stopped.
type NotApplied = (LoadError, Vec<Rejected>);

/// Runs each non-empty bucket on its partition, all at once: one helper
/// thread per partition but the last, which runs on this thread. Results
/// come back by partition (None: nothing to load there).
fn run_shares(
    g: &mut Guards,
    share: &ShareOf<'_>,
    buckets: Vec<Bucket>,
) -> Vec<Option<Result<Applied, NotApplied>>> {
    let work = interrupt::shared();
    let mut results: Vec<Option<Result<Applied, NotApplied>>> =
        (0..g.len()).map(|_| None).collect();
    let mut jobs: Vec<(usize, &mut Engine, Bucket)> = g
        .iter_mut()
        .zip(buckets)
        .enumerate()
        .filter(|(_, (_, bucket))| !bucket.is_empty())
        .map(|(p, (state, bucket))| (p, &mut state.tenant(share.tenant).engine, bucket))
        .collect();
    let Some((last_p, last_engine, last_bucket)) = jobs.pop() else {
        return results;
    };
    std::thread::scope(|s| {
        let mut helpers = Vec::with_capacity(jobs.len());
        for (p, engine, bucket) in jobs {
            let work = &work;
            let spawned = std::thread::Builder::new()
                .name(format!("ohm-load-p{p}"))
                .spawn_scoped(s, move || {
                    let _joined = work.join();
                    apply_share(engine, p, share, bucket)
                });
            match spawned {
                Ok(h) => helpers.push((p, h)),
                // Nothing of this share ran; the others are undone.
                Err(e) => {
                    let why = TxnError::Internal(format!(
                        "could not start a thread for partition {p}'s rows: {e}"
                    ));
                    results[p] = Some(Err((LoadError::Txn(why), Vec::new())));
                }
            }
        }
        results[last_p] = Some(apply_share(last_engine, last_p, share, last_bucket));
        for (p, h) in helpers {
            // A helper's panic is the coordinator's (a bug mid-transaction).
            let r = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            results[p] = Some(r);
        }
    });
    results
}

/// Loads one partition's rows in one transaction of its engine: committed
/// (its writes returned), or rolled back when a row could not run or more
/// than `share.max_errors` rows failed.
fn apply_share(
    engine: &mut Engine,
    p: usize,
    share: &ShareOf<'_>,
    bucket: Bucket,
) -> Result<Applied, NotApplied> {
    engine.set_now(share.now_us);
    engine.set_placement(crate::storage::Placement {
        partition: Some(p as u32),
        partitions: share.partitions,
    });
    // Table ids may differ between partitions: each plans its own.
    let plan = engine
        .load_plan(share.table, share.columns)
        .map_err(|e| (LoadError::Sql(e), Vec::new()))?;
    engine
        .begin()
        .map_err(|e| (LoadError::Sql(e), Vec::new()))?;
    let mut loaded = 0;
    let mut refused = Vec::new();
    let mut failed = None;
    for (i, row) in bucket {
        match engine.load_row(&plan, row) {
            Ok(()) => loaded += 1,
            Err(e) if matches!(e.error, SqlError::Stopped(_)) => {
                failed = Some(LoadError::Sql(e.error));
                break;
            }
            Err(e) => {
                refused.push(rejected(i, e));
                if refused.len() as u64 > share.max_errors {
                    failed = Some(LoadError::TooManyRejected {
                        rejected: Vec::new(),
                        max_errors: share.max_errors,
                    });
                    break;
                }
            }
        }
    }
    if let Some(e) = failed {
        engine
            .rollback()
            .expect("the transaction begun for this share is open");
        return Err((e, refused));
    }
    let ws = engine
        .commit()
        .map_err(|e| (LoadError::Sql(e), Vec::new()))?;
    let writes = LoggedWrites::from_write_set(engine.database(), &ws);
    // Measured here, beside the other partitions' shares.
    if let Err(e) = scratch::check_share_size(&writes, &mut Vec::new()) {
        durability::apply(engine, &writes.inverse())
            .expect("undoing writes just made on a held partition cannot fail");
        return Err((LoadError::Txn(e), refused));
    }
    Ok(Applied {
        loaded,
        refused,
        writes,
    })
}
