//! The writer: one thread per partition that owns its log. It appends what
//! the executor and the coordinator send, makes it durable (group commit:
//! one fsync for everything queued), then sends the replies, in order.
//! It also takes snapshots when the log has grown past a threshold.
//!
//! A failed log write or fsync stops the node: after it, the node cannot
//! tell what is durable, and continuing could acknowledge writes it loses.

use super::reply::ReplyFn;
use super::Partition;
use crate::durability::{snapshot, DiskLog, DurabilityError, SnapshotMeta, Storage};
use crate::proto::{ErrorReply, Reply};
use crate::types::{Ballot, Slot};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

/// Messages one writer queue holds (each carries up to a batch of calls).
pub const WRITER_QUEUE_MAX: usize = 256;
/// Messages gathered into one group commit.
const GROUP_MAX: usize = 64;
/// With `--durability async`, how often the log is fsynced.
pub const ASYNC_SYNC_INTERVAL_MS: u64 = 100;

/// How acknowledged writes survive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after fsync: survives a process crash and an OS crash.
    Sync,
    /// Acknowledge after write(), fsync every `ASYNC_SYNC_INTERVAL_MS`:
    /// survives a process crash (kill -9); an OS crash or power loss loses
    /// up to that interval of acknowledged writes.
    Async,
}

impl Durability {
    pub fn name(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Async => "async",
        }
    }
}

pub enum WriterMsg {
    /// An executor batch: its records (possibly none; each `len u32 |
    /// payload`, see `push_payload`) and its replies.
    Batch {
        records: Vec<u8>,
        last_lsn: Option<u64>,
        replies: Vec<(ReplyFn, Result<Reply, ErrorReply>)>,
    },
    /// A coordinator transaction's record for this partition; `done` is
    /// told once it is durable.
    Multi {
        records: Vec<u8>,
        last_lsn: u64,
        done: SyncSender<()>,
    },
    /// Sync what is queued, snapshot now (if anything was logged since the
    /// last one), and tell `done`.
    Snapshot { done: SyncSender<()> },
    /// Sync and exit (after everything queued before it).
    Stop,
}

/// Waits until everything queued so far on each of `writers` is durable
/// (an empty coordinator record acts as a barrier: writers answer in order).
pub fn sync_all(writers: &[SyncSender<WriterMsg>]) {
    let waits: Vec<Receiver<()>> = writers
        .iter()
        .filter_map(|w| {
            let (done, wait) = std::sync::mpsc::sync_channel(1);
            let msg = WriterMsg::Multi {
                records: Vec::new(),
                last_lsn: 0,
                done,
            };
            w.send(msg).ok().map(|_| wait)
        })
        .collect();
    for w in waits {
        // A writer that stopped has stopped the node (it exits on failure).
        let _ = w.recv();
    }
}

pub struct WriterConfig {
    pub durability: Durability,
    /// Log bytes after which a snapshot is taken.
    pub snapshot_log_bytes: u64,
}

/// Runs until every sender is gone; then syncs and returns.
pub fn run(part: Arc<Partition>, mut log: DiskLog, msgs: Receiver<WriterMsg>, cfg: WriterConfig) {
    let mut group: Vec<WriterMsg> = Vec::with_capacity(GROUP_MAX);
    let mut unsynced = false;
    let mut last_sync = Instant::now();
    let mut stopping = false;
    while !stopping {
        let first = match cfg.durability {
            Durability::Sync => msgs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Durability::Async => msgs.recv_timeout(Duration::from_millis(ASYNC_SYNC_INTERVAL_MS)),
        };
        match first {
            Ok(m) => group.push(m),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while group.len() < GROUP_MAX {
            match msgs.try_recv() {
                Ok(m) => group.push(m),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let mut snapshot_asked = Vec::new();
        fatal_on(append_all(&mut log, &group, &mut unsynced), &part);
        let periodic = last_sync.elapsed() >= Duration::from_millis(ASYNC_SYNC_INTERVAL_MS);
        if unsynced && (cfg.durability == Durability::Sync || periodic) {
            fatal_on(log.sync(), &part);
            unsynced = false;
            last_sync = Instant::now();
        } else if unsynced {
            fatal_on(log.flush(), &part);
        }
        part.stats
            .durable_lsn
            .store(log.durable_slot().0, Ordering::Relaxed);
        part.stats
            .log_bytes
            .store(log.bytes_since_snapshot(), Ordering::Relaxed);
        for m in group.drain(..) {
            match m {
                WriterMsg::Batch { replies, .. } => {
                    for (reply, result) in replies {
                        reply(result);
                    }
                }
                WriterMsg::Multi { done, .. } => {
                    let _ = done.send(());
                }
                WriterMsg::Snapshot { done } => snapshot_asked.push(done),
                WriterMsg::Stop => stopping = true,
            }
        }
        if !snapshot_asked.is_empty() || log.bytes_since_snapshot() >= cfg.snapshot_log_bytes {
            stopping |= snapshot(&part, &mut log, &msgs, snapshot_asked.is_empty());
            for done in snapshot_asked {
                let _ = done.send(());
            }
        }
    }
    if unsynced {
        fatal_on(log.sync(), &part);
    }
}

fn append_all(
    log: &mut DiskLog,
    group: &[WriterMsg],
    unsynced: &mut bool,
) -> Result<(), DurabilityError> {
    for m in group {
        let (records, last) = match m {
            WriterMsg::Batch {
                records,
                last_lsn: Some(last),
                ..
            } => (records, *last),
            WriterMsg::Multi {
                records, last_lsn, ..
            } if !records.is_empty() => (records, *last_lsn),
            _ => continue,
        };
        append_records(log, records, last)?;
        *unsynced = true;
    }
    Ok(())
}

/// Appends `payload` (what `encode` writes) to a batch of records, after
/// its length: `len u32 | payload`. On error the batch is as it was.
pub fn push_payload<E>(
    records: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let start = records.len();
    records.extend_from_slice(&[0; 4]);
    if let Err(e) = encode(records) {
        records.truncate(start);
        return Err(e);
    }
    let len = u32::try_from(records.len() - start - 4)
        .expect("payloads are far below 4 GiB (PAYLOAD_BYTES_MAX)");
    records[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Appends a batch's payloads at the slots after the log's last; the
/// sender took the slots in the same order, the last being `last`.
fn append_records(log: &mut DiskLog, mut bytes: &[u8], last: u64) -> Result<(), DurabilityError> {
    while let Some((len, rest)) = bytes.split_first_chunk::<4>() {
        let (payload, rest) = rest.split_at(u32::from_le_bytes(*len) as usize);
        log.append_payload(log.last_slot().next(), Ballot::default(), payload)?;
        bytes = rest;
    }
    assert_eq!(
        log.last_slot(),
        Slot(last),
        "the writer and its senders agree on slots"
    );
    Ok(())
}

/// Takes a snapshot if the partition is free now (`may_skip`) or waits for
/// it. Holding the state lock means every record of what the state holds
/// was already sent to this writer: they are drained and synced first, so
/// the snapshot's lsn is durable in the log before the log is cut.
fn snapshot(
    part: &Partition,
    log: &mut DiskLog,
    msgs: &Receiver<WriterMsg>,
    may_skip: bool,
) -> bool {
    let mut stop = false;
    let state = loop {
        match part.state.try_lock() {
            Ok(s) => break s,
            Err(TryLockError::Poisoned(p)) => break p.into_inner(),
            Err(TryLockError::WouldBlock) if may_skip => return stop, // busy: try later
            // Asked for: whoever holds the partition (the coordinator) may
            // be waiting for this writer, so keep serving while waiting.
            Err(TryLockError::WouldBlock) => {
                stop |= drain(part, log, msgs);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    stop |= drain(part, log, msgs);
    if state.last_lsn == 0 || log.bytes_since_snapshot() == 0 {
        return stop;
    }
    let meta = SnapshotMeta {
        slot: Slot(state.last_lsn),
        ballot: Ballot::default(),
    };
    let started = Instant::now();
    let written = snapshot::encode(meta, state.mp_txn_max, &state.images())
        .and_then(|bytes| log.install_snapshot(meta, &bytes).map(|()| bytes.len()));
    match written {
        Ok(bytes) => eprintln!(
            "ohm: partition {}: snapshot at slot {} ({bytes} bytes) in {} ms",
            part.id.0,
            meta.slot,
            started.elapsed().as_millis()
        ),
        Err(e) => fatal(part, &e),
    }
    part.stats.log_bytes.store(0, Ordering::Relaxed);
    stop
}

/// Appends, syncs and answers everything queued now; true if a stop was
/// among it.
fn drain(part: &Partition, log: &mut DiskLog, msgs: &Receiver<WriterMsg>) -> bool {
    let pending: Vec<WriterMsg> = msgs.try_iter().collect();
    if pending.is_empty() {
        return false;
    }
    let mut unsynced = false;
    fatal_on(append_all(log, &pending, &mut unsynced), part);
    fatal_on(log.sync(), part);
    let mut stop = false;
    for m in pending {
        match m {
            WriterMsg::Batch { replies, .. } => {
                for (reply, result) in replies {
                    reply(result);
                }
            }
            WriterMsg::Multi { done, .. } | WriterMsg::Snapshot { done } => {
                let _ = done.send(());
            }
            WriterMsg::Stop => stop = true,
        }
    }
    stop
}

fn fatal_on<T>(r: Result<T, DurabilityError>, part: &Partition) -> T {
    match r {
        Ok(v) => v,
        Err(e) => fatal(part, &e),
    }
}

/// A log that cannot be written: stop the node rather than acknowledge
/// what may not be durable.
fn fatal(part: &Partition, e: &DurabilityError) -> ! {
    eprintln!(
        "ohm: partition {}: the log failed: {e}. Stopping: nothing after the last fsync is acknowledged.",
        part.id.0
    );
    std::process::exit(70)
}
