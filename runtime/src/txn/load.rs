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
//!       (buckets on up to LOAD_THREADS_MAX threads at once)
//!     a row that fails: undone, reported (row, column, why)
//! ```
//!
//! The partitions' shares run at once on scoped threads (the lent states
//! are disjoint; at most `LOAD_THREADS_MAX`, the coordinator's among
//! them), each joined to the coordinator's time limit; their results are
//! merged in partition order, so what comes back does not depend on which
//! finished first.
//!
//! Owns: routing and applying a chunk, and the threads it runs on (begun
//! and joined within `load`). Must not: log, or talk to cores (the
//! coordinator commits the shares).

use super::scratch::{self, Guards};
use super::TxnError;
use crate::catalog::{partition_for, Quota};
use crate::durability::{self, LoggedWrites};
use crate::sql::load::RowError;
use crate::sql::{interrupt, Engine, SqlError};
use crate::types::{TenantId, Value};
use std::sync::Mutex;

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
    /// Over `max_errors` rows failed: those each partition saw before it
    /// stopped (at most `max_errors` + 1 a partition), by row.
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
/// The partitions' rows go in at once, on up to `LOAD_THREADS_MAX`
/// threads (the partitions' states are disjoint), so a chunk takes the
/// node's cores rather than the coordinator's one; what comes back does
/// not depend on which thread finishes first.
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
    let merged = merge(run_shares(g, &share, buckets), n);
    out.loaded = merged.loaded;
    refused.extend(merged.refused);
    let (mut shares, mut done, mut failed) = (merged.shares, merged.done, merged.failed);
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
    let placed = if replicated {
        copy_replicated(g, tenant, chunk.table, &mut shares, &mut done)
    } else {
        Ok(())
    };
    // Each share's size was checked where it was made (a replicated
    // table's copies are partition 0's share).
    let fits = placed.and_then(|()| {
        scratch::check_rows_applied(g, tenant, quota, &shares).map_err(LoadError::Txn)
    });
    if let Err(e) = fits {
        undo(g, &done, &shares);
        return Err(e);
    }
    if done.is_empty() {
        shares.clear();
    }
    Ok((out, shares))
}

/// One partition's rows of a chunk, each with its place in the chunk.
type Bucket = Vec<(usize, Vec<Value>)>;

/// A replicated table's rows went in on partition 0: the same writes go
/// to every other partition (each holds the same copy).
fn copy_replicated(
    g: &mut Guards,
    tenant: TenantId,
    table: &str,
    shares: &mut [LoggedWrites],
    done: &mut Vec<usize>,
) -> Result<(), LoadError> {
    if shares[0].ops.is_empty() {
        return Ok(());
    }
    for p in 1..shares.len() {
        shares[p] = shares[0].clone();
        if let Err(e) = durability::apply(&mut g[p].tenant(tenant).engine, &shares[p]) {
            return Err(LoadError::Txn(TxnError::Internal(format!(
                "partition {p}'s copy of replicated table \"{table}\" differs from partition \
                 0's: {e}"
            ))));
        }
        done.push(p);
    }
    Ok(())
}

/// The shares' results taken together, in partition order.
struct Merged {
    loaded: u64,
    /// Every share's refused rows (a failed share's up to where it stopped).
    refused: Vec<Rejected>,
    /// By partition; empty where nothing was applied.
    shares: Vec<LoggedWrites>,
    /// The partitions whose share went in (to undo should the chunk fail).
    done: Vec<usize>,
    /// Why a share was not applied: one that could not run outranks one
    /// with too many bad rows, whose error says less; then the lowest
    /// partition's.
    failed: Option<LoadError>,
}

fn merge(ran: Vec<Option<Result<Applied, NotApplied>>>, n: usize) -> Merged {
    let mut m = Merged {
        loaded: 0,
        refused: Vec::new(),
        shares: (0..n).map(|_| LoggedWrites::default()).collect(),
        done: Vec::new(),
        failed: None,
    };
    for (p, r) in ran.into_iter().enumerate() {
        match r {
            None => {}
            Some(Ok(applied)) => {
                m.loaded += applied.loaded;
                m.refused.extend(applied.refused);
                m.shares[p] = applied.writes;
                m.done.push(p);
            }
            Some(Err((e, why))) => {
                m.refused.extend(why);
                let too_many = matches!(e, LoadError::TooManyRejected { .. });
                match &m.failed {
                    None => m.failed = Some(e),
                    Some(LoadError::TooManyRejected { .. }) if !too_many => m.failed = Some(e),
                    Some(_) => {}
                }
            }
        }
    }
    m
}

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

/// Threads one chunk's shares run on at most, the coordinator's own
/// among them (fewer when the machine has fewer cores).
const LOAD_THREADS_MAX: usize = 16;

/// A share to run: its partition, that partition's engine, its rows.
type Job<'a> = (usize, &'a mut Engine, Bucket);

/// Runs each non-empty bucket on its partition, at once: the shares are
/// dealt round-robin to at most `LOAD_THREADS_MAX` (and the core count)
/// threads, the last group on this thread. Results come back by partition
/// (None: nothing to load there).
fn run_shares(
    g: &mut Guards,
    share: &ShareOf<'_>,
    buckets: Vec<Bucket>,
) -> Vec<Option<Result<Applied, NotApplied>>> {
    let work = interrupt::current_work();
    let mut results: Vec<Option<Result<Applied, NotApplied>>> =
        (0..g.len()).map(|_| None).collect();
    let jobs: Vec<Job<'_>> = g
        .iter_mut()
        .zip(buckets)
        .enumerate()
        .filter(|(_, (_, bucket))| !bucket.is_empty())
        .map(|(p, (state, bucket))| (p, &mut state.tenant(share.tenant).engine, bucket))
        .collect();
    // Read once: on Linux asking reads cgroup files, too much for a chunk.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let threads = cores.min(LOAD_THREADS_MAX).min(jobs.len()).max(1);
    let mut groups: Vec<Vec<Job<'_>>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, job) in jobs.into_iter().enumerate() {
        groups[i % threads].push(job);
    }
    let mine = groups.pop().unwrap_or_default();
    let run = |group: Vec<Job<'_>>| -> Vec<(usize, Result<Applied, NotApplied>)> {
        group
            .into_iter()
            .map(|(p, engine, bucket)| (p, apply_share(engine, p, share, bucket)))
            .collect()
    };
    // Each helper takes its group from here; what is still here once this
    // thread has run its own group (a thread that could not start, or has
    // not begun) runs on this thread.
    let slots: Vec<Mutex<Option<Vec<Job<'_>>>>> =
        groups.into_iter().map(|g| Mutex::new(Some(g))).collect();
    fn take<'a>(slot: &Mutex<Option<Vec<Job<'a>>>>) -> Vec<Job<'a>> {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.take().unwrap_or_default()
    }
    std::thread::scope(|s| {
        let helpers: Vec<_> = slots
            .iter()
            .filter_map(|slot| {
                let (work, run) = (&work, &run);
                std::thread::Builder::new()
                    .name("ohm-load".into())
                    .stack_size(crate::node::THREAD_STACK_BYTES)
                    .spawn_scoped(s, move || {
                        let _joined = work.join();
                        run(take(slot))
                    })
                    .ok()
            })
            .collect();
        let mut ran = run(mine);
        ran.extend(run(slots.iter().flat_map(take).collect()));
        for (p, r) in ran {
            results[p] = Some(r);
        }
        for h in helpers {
            // A helper's panic is the coordinator's (a bug mid-transaction).
            let ran = h
                .join()
                .unwrap_or_else(|payload| std::panic::resume_unwind(payload));
            for (p, r) in ran {
                results[p] = Some(r);
            }
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
