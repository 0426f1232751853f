//! Running one single-partition call on a partition's state: the
//! procedure, its commit or rollback, and its write-set encoded as a log
//! payload. A panic inside is caught and rolled back; a write-set too big
//! for one record is undone.

use super::error::CallError;
use super::kept::answer_to_keep;
use super::state::PartitionState;
use crate::durability;
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

/// Runs `procedure` on `state` for `tenant`; `scratch` is a buffer reused
/// across calls for encoding the payload. A call with an idempotency `key`
/// that writes keeps its answer under it (in the state, and in its record
/// for the other replicas).
pub fn run_call(
    state: &mut PartitionState,
    tenant: TenantId,
    procedure: &str,
    args: &[Value],
    key: Option<&str>,
    txn: TxnContext,
    scratch: &mut Vec<u8>,
) -> Executed {
    let failed = |e| Executed {
        result: Err(e),
        payload: None,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let part = state.tenant(tenant);
        part.procs.call(&mut part.engine, procedure, args, txn)
    }));
    let outcome = match outcome {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return failed(CallError::Proc(e)),
        Err(_) => {
            let part = state.tenant(tenant);
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
    let kept = key.map(|k| (k, answer_to_keep(&outcome.output)));
    let part = state.tenant(tenant);
    let db = part.engine.database();
    scratch.clear();
    let logged = kept.as_ref().map(|(k, o)| (*k, o.as_ref()));
    if let Err(e) = durability::encode_commit(tenant, db, &outcome.write_set, logged, scratch) {
        // Committed in memory but too big to log: undo it, so what is in
        // memory stays exactly what the log can rebuild.
        let undo = durability::LoggedWrites::from_write_set(db, &outcome.write_set).inverse();
        durability::apply(&mut part.engine, &undo)
            .expect("undoing a transaction just committed on this partition cannot fail");
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
