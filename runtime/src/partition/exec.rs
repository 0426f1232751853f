//! Running one single-partition call on a partition's state: the
//! procedure, its commit or rollback, and its write-set encoded as a log
//! payload. A panic inside is caught and rolled back; a write-set too big
//! for one record, or writing where the partition may not (a row another
//! partition owns, a replicated table), is undone.

use super::error::CallError;
use super::kept::answer_to_keep;
use super::state::{PartitionState, TenantPart};
use crate::catalog::{partition_for, PartitionId, Quota};
use crate::durability;
use crate::storage::{Database, WriteOp, WriteSet};
use crate::types::{TenantId, Value};
use crate::wasm::{ProcOutput, TxnContext};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// What running a call did.
pub struct Executed {
    pub result: Result<ProcOutput, CallError>,
    /// The record payload of its writes; None when it wrote nothing (a
    /// read, or a failure).
    pub payload: Option<Arc<[u8]>>,
}

/// One call to run: whose, what, with what, under which idempotency key.
pub struct CallSpec<'a> {
    pub tenant: TenantId,
    pub procedure: &'a str,
    pub args: &'a [Value],
    pub key: Option<&'a str>,
    /// Its time limit, if less than the tenant's (`call_timeout_ms`).
    pub timeout_ms: Option<u64>,
    /// Why a call that writes is undone and refused now (the disk is
    /// full: `CallError::DiskFull`); a read runs.
    pub refuse_writes: Option<&'a str>,
}

/// Runs `call` on `state`, a partition of a node of `partitions` whose
/// tenants each hold at most `quota`'s rows here (the node's default; a
/// tenant's own quota is over it); `scratch` is a buffer
/// reused across calls for encoding the payload. A
/// call with an idempotency `key` that writes keeps its answer under it
/// (in the state, and in its record for the other replicas).
pub fn run_call(
    state: &mut PartitionState,
    partitions: u32,
    quota: &Quota,
    call: CallSpec<'_>,
    txn: TxnContext,
    scratch: &mut Vec<u8>,
) -> Executed {
    let here = state.id;
    let part = state.tenant(call.tenant);
    run_on_part(
        part,
        Placement { here, partitions },
        quota,
        call,
        txn,
        scratch,
    )
}

/// Where a partition is: which one, of how many.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub here: PartitionId,
    pub partitions: u32,
}

/// Runs `call` on its tenant's `part` of partition `at` (see `run_call`).
pub fn run_on_part(
    part: &mut TenantPart,
    at: Placement,
    quota: &Quota,
    call: CallSpec<'_>,
    txn: TxnContext,
    scratch: &mut Vec<u8>,
) -> Executed {
    let CallSpec {
        tenant,
        procedure,
        args,
        key,
        timeout_ms,
        refuse_writes,
    } = call;
    let failed = |e| Executed {
        result: Err(e),
        payload: None,
    };
    // The node's defaults with the tenant's own quota over them.
    let quota = quota.with(Some(&part.quota));
    // Refused before it runs while the fuel the tenant's calls burned
    // here is more than a second's worth ahead (`fuel_per_sec`).
    if let Err(quota) = part.fuel.check(txn.timestamp_us, quota.fuel_per_sec) {
        return failed(CallError::Quota {
            procedure: procedure.to_string(),
            quota,
        });
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // Timed by the thread's watch, if it has one (a node's executor,
        // or the runner a lent part is on), to the tenant's limit or the
        // call's own, if less.
        let cap = quota.call_timeout_ms;
        let limit = timeout_ms.map_or(cap, |t| t.min(cap)).max(1);
        let _work = crate::sql::interrupt::Work::begin(Some(limit), None);
        // nextval() gives values this partition owns.
        part.engine.set_placement(crate::storage::Placement {
            partition: Some(at.here.0),
            partitions: at.partitions,
        });
        part.procs.call(&mut part.engine, procedure, args, txn)
    }));
    let fuel = part.procs.fuel_used_last();
    part.fuel.charge(fuel, txn.timestamp_us, quota.fuel_per_sec);
    let outcome = match outcome {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return failed(CallError::Proc(e)),
        Err(_) => {
            if part.engine.in_txn() {
                let _ = part.engine.rollback();
            }
            return failed(CallError::Internal {
                procedure: procedure.to_string(),
            });
        }
    };
    if outcome.write_set.ops.is_empty() {
        return Executed {
            result: Ok(outcome.output),
            payload: None,
        };
    }
    if let Some(why) = refuse_writes {
        // No room to log it: undone, as if it had failed.
        undo(&mut part.engine, &outcome.write_set);
        return failed(CallError::DiskFull {
            why: why.to_string(),
        });
    }
    let Placement { here, partitions } = at;
    let db = part.engine.database();
    if let Some(what) = misplaced_write(db, &outcome.write_set, here, partitions) {
        // Committed in memory, but another partition owns it (or every
        // partition holds it): undo it, nothing is logged.
        undo(&mut part.engine, &outcome.write_set);
        return failed(CallError::WrongPartition {
            procedure: procedure.to_string(),
            what,
        });
    }
    let added = outcome.write_set.rows_added();
    if let Err(quota) = quota.check_rows_applied(here, part.rows(), added) {
        undo(&mut part.engine, &outcome.write_set);
        return failed(CallError::Quota {
            procedure: procedure.to_string(),
            quota,
        });
    }
    let kept = key.map(|k| (k, answer_to_keep(&outcome.output)));
    scratch.clear();
    let logged = kept.as_ref().map(|(k, o)| (*k, o.as_ref()));
    let db = part.engine.database();
    if let Err(e) = durability::encode_commit(tenant, db, &outcome.write_set, logged, scratch) {
        // Committed in memory but too big to log: undo it, so what is in
        // memory stays exactly what the log can rebuild.
        undo(&mut part.engine, &outcome.write_set);
        return failed(CallError::TooLarge {
            procedure: procedure.to_string(),
            message: e.to_string(),
        });
    }
    if let Some((k, o)) = kept {
        part.kept.keep(k.to_string(), o);
    }
    Executed {
        result: Ok(outcome.output),
        payload: Some(Arc::from(scratch.as_slice())),
    }
}

/// Undoes `ws`, a transaction just committed on `engine`.
fn undo(engine: &mut crate::sql::Engine, ws: &WriteSet) {
    let undo = durability::LoggedWrites::from_write_set(engine.database(), ws).inverse();
    durability::apply(engine, &undo)
        .expect("undoing a transaction just committed on this partition cannot fail");
}

/// The first write of `ws` that partition `here` (of `partitions`) may not
/// make in a single-partition call, said as "<what it did>": a row whose
/// partition column hashes to another partition (inserted, or updated to
/// or from such a value), or any row of a replicated table (every
/// partition holds a copy, and one partition's call would change only its
/// own).
fn misplaced_write(
    db: &Database,
    ws: &WriteSet,
    here: PartitionId,
    partitions: u32,
) -> Option<String> {
    for op in &ws.ops {
        let (table, rows, verb) = match op {
            WriteOp::Insert { table, row } => (table, [Some(row), None], "inserted"),
            WriteOp::Update { table, old, new } => (table, [Some(old), Some(new)], "updated"),
            WriteOp::Delete { table, row } => (table, [Some(row), None], "deleted"),
        };
        // A procedure runs no DDL, so its tables are there; if not, the
        // write is refused rather than let through unchecked.
        let Some(t) = db.table(*table) else {
            return Some(format!(
                "{verb} a row of a table this partition does not hold"
            ));
        };
        let schema = t.schema();
        let Some(col) = schema.partition_column else {
            return Some(format!(
                "{verb} a row of {}, a replicated table (every partition holds it)",
                schema.name
            ));
        };
        for row in rows.into_iter().flatten() {
            let Some(v) = row.get(col) else {
                return Some(format!(
                    "{verb} a row of {} without its partition column",
                    schema.name
                ));
            };
            let owner = partition_for(v, partitions);
            if owner != here {
                return Some(format!(
                    "{verb} a row of {} whose {} is {v:?}, which partition {} owns, not {}",
                    schema.name,
                    schema
                        .columns
                        .get(col)
                        .map_or("partition column", |c| c.name.as_str()),
                    owner.0,
                    here.0
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which writes partition 0 of 2 may make in a single-partition call.
    #[test]
    fn only_rows_this_partition_owns_and_no_replicated_table() {
        let mut e = crate::sql::Engine::new();
        e.execute("CREATE TABLE t (k BIGINT PRIMARY KEY, v BIGINT)")
            .unwrap();
        e.execute("PARTITION TABLE t ON COLUMN k").unwrap();
        e.execute("CREATE TABLE shared (k BIGINT PRIMARY KEY)")
            .unwrap();
        let db = e.database();
        let (t, shared) = (db.table_id("t").unwrap(), db.table_id("shared").unwrap());
        let key = |p: u32| {
            (0..)
                .find(|k| partition_for(&Value::Int(*k), 2).0 == p)
                .unwrap()
        };
        let row = |k: i64| -> crate::storage::Row { vec![Value::Int(k), Value::Int(1)].into() };
        let (ours, theirs) = (row(key(0)), row(key(1)));
        let check =
            |op: WriteOp| misplaced_write(db, &WriteSet { ops: vec![op] }, PartitionId(0), 2);
        assert_eq!(
            check(WriteOp::Insert {
                table: t,
                row: ours.clone()
            }),
            None
        );
        let what = check(WriteOp::Insert {
            table: t,
            row: theirs.clone(),
        })
        .unwrap();
        assert!(what.contains("inserted a row of t whose k is"), "{what}");
        assert!(what.contains("which partition 1 owns, not 0"), "{what}");
        // An update may not move a row to another partition (nor from one).
        let moved = check(WriteOp::Update {
            table: t,
            old: ours.clone(),
            new: theirs.clone(),
        });
        assert!(moved.unwrap().starts_with("updated"));
        let back = check(WriteOp::Update {
            table: t,
            old: theirs.clone(),
            new: ours.clone(),
        });
        assert!(back.unwrap().starts_with("updated"));
        let mut ours_again = ours.to_vec();
        ours_again[1] = Value::Int(2);
        let in_place = WriteOp::Update {
            table: t,
            old: ours.clone(),
            new: ours_again.into(),
        };
        assert_eq!(check(in_place), None, "an update that stays is fine");
        assert_eq!(
            check(WriteOp::Delete {
                table: t,
                row: ours
            }),
            None
        );
        assert!(check(WriteOp::Delete {
            table: t,
            row: theirs
        })
        .is_some());
        let what = check(WriteOp::Insert {
            table: shared,
            row: vec![Value::Int(1)].into(),
        })
        .unwrap();
        assert!(
            what.contains("a row of shared, a replicated table"),
            "{what}"
        );
    }
}
