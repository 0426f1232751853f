//! The executor: one thread per partition, running single-partition calls
//! one after another, in the order they arrive.
//!
//! It takes a batch from its bounded queue, runs each call under the state
//! lock, encodes each committed write-set as a log record, and hands the
//! records and the replies to the writer, which answers once the records
//! are durable. Calls run speculatively on top of earlier ones whose records
//! are not yet durable; no reply (not even a read's or a failure's) leaves
//! before everything it could have seen is durable, because the writer
//! answers strictly in order.

use super::reply::{self, ReplyFn};
use super::writer::WriterMsg;
use super::Partition;
use crate::durability;
use crate::proto::{ErrorCode, ErrorReply, Reply};
use crate::types::{TenantId, Value};
use crate::wasm::TxnContext;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Requests one executor queue holds; beyond it callers get `overloaded`.
pub const PARTITION_QUEUE_MAX: usize = 16_384;
/// Calls run under one lock acquisition and logged as one group.
pub const EXECUTOR_BATCH_MAX: usize = 512;

/// Work for an executor.
pub enum Task {
    Call {
        tenant: TenantId,
        procedure: String,
        args: Vec<Value>,
        reply: ReplyFn,
    },
    /// Finish what is queued before this, then exit.
    Stop,
}

/// Transaction timestamps: wall-clock microseconds, but never repeating or
/// going back on one partition (a procedure may rely on their order).
struct Clock {
    last_us: i64,
    seed: u64,
}

impl Clock {
    fn next(&mut self, partition: u32) -> TxnContext {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        self.last_us = now.max(self.last_us + 1);
        // SplitMix64 over (partition, counter): distinct seeds per call.
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.seed ^ (u64::from(partition) << 48);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        TxnContext {
            timestamp_us: self.last_us,
            seed: z ^ (z >> 31),
        }
    }
}

/// Runs until the queue's senders are gone, then returns.
pub fn run(part: Arc<Partition>, tasks: Receiver<Task>, writer: SyncSender<WriterMsg>) {
    let mut clock = Clock {
        last_us: 0,
        seed: 0,
    };
    let mut batch: Vec<Task> = Vec::with_capacity(EXECUTOR_BATCH_MAX);
    let mut records: Vec<u8> = Vec::new();
    let mut stopping = false;
    while !stopping {
        let Ok(first) = tasks.recv() else { break };
        batch.push(first);
        while batch.len() < EXECUTOR_BATCH_MAX {
            match tasks.try_recv() {
                Ok(t) => batch.push(t),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        part.stats
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        let mut replies = Vec::with_capacity(batch.len());
        let mut state = part.lock();
        let first_lsn = state.last_lsn;
        for task in batch.drain(..) {
            let Task::Call {
                tenant,
                procedure,
                args,
                reply,
            } = task
            else {
                stopping = true;
                continue;
            };
            let txn = clock.next(part.id.0);
            let result = run_call(&mut state, tenant, &procedure, &args, txn, &mut records);
            let counter = if result.is_ok() {
                &part.stats.committed
            } else {
                &part.stats.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            replies.push((reply, result));
        }
        let last_lsn = state.last_lsn;
        // Sent while the lock is held: whoever takes the lock next (the
        // coordinator, or the writer for a snapshot) finds these records
        // queued ahead of anything it logs.
        let msg = WriterMsg::Batch {
            records: std::mem::take(&mut records),
            last_lsn: (last_lsn > first_lsn).then_some(last_lsn),
            replies,
        };
        if writer.send(msg).is_err() {
            return; // the writer stopped: the node is going down
        }
        drop(state);
    }
}

/// Runs one call; on commit, appends its log record to `records`.
fn run_call(
    state: &mut super::PartitionState,
    tenant: TenantId,
    procedure: &str,
    args: &[Value],
    txn: TxnContext,
    records: &mut Vec<u8>,
) -> Result<Reply, ErrorReply> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let part = state.tenant(tenant);
        part.procs.call(&mut part.engine, procedure, args, txn)
    }));
    let outcome = match outcome {
        Ok(r) => r.map_err(|e| reply::proc_error(&e))?,
        Err(_) => {
            let part = state.tenant(tenant);
            if part.engine.in_txn() {
                let _ = part.engine.rollback();
            }
            return Err(reply::internal(format!(
                "procedure {procedure} hit a bug in the node (rolled back; the node keeps serving)"
            )));
        }
    };
    if !outcome.write_set.ops.is_empty() {
        state.next_lsn();
        let part = state.tenant(tenant);
        let db = part.engine.database();
        let encoded = super::writer::push_payload(records, |out| {
            durability::encode_commit(tenant, db, &outcome.write_set, out)
        });
        if let Err(e) = encoded {
            // Committed in memory but too big to log: undo it, so what is
            // in memory stays exactly what the log can rebuild.
            let undo = durability::LoggedWrites::from_write_set(db, &outcome.write_set).inverse();
            durability::apply(&mut part.engine, &undo)
                .expect("undoing a transaction just committed on this partition cannot fail");
            state.last_lsn -= 1;
            return Err(ErrorReply::new(
                ErrorCode::TooLarge,
                format!("procedure {procedure}: {e}"),
            ));
        }
    }
    Ok(reply::output(outcome.output))
}
