//! The writer: one thread per partition that owns its log (`Storage`). It
//! writes the batches its executor hands it, makes them durable (group
//! commit: one fsync for everything queued), then tells the executor,
//! which releases what became chosen.
//!
//! In a cluster the log is also read, by the executor, for peers that
//! lag and to rebuild after losing leadership: it sits behind a mutex that
//! the writer holds while it writes and syncs a group, and the executor
//! only for those rare reads. Messages a batch holds back (`then_send`:
//! promises and acceptances) leave once the batch is durable.
//!
//! A full disk is a state, not a failure: the log sets space aside ahead
//! of its end (`durability::LOG_RESERVE_BYTES`), and when the disk has no
//! room for more the writer says so (`Input::Space`): the partition
//! refuses writes, goes on with reads, and writes what it ran before into
//! the space set aside. The writer tries again every `SPACE_RETRY` and says
//! when there is room again.
//!
//! A failed write or fsync stops the partition's writing for good and is
//! reported: after it the log's state is unknown, and nothing written
//! since the last good fsync may be acknowledged.

use super::executor::{Durable, Input};
use crate::consensus::Message;
use crate::durability::{DurabilityError, Storage};
use crate::partition::WriteBatch;
use crate::types::NodeId;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Batches one writer queue holds (each carries up to a batch of calls).
pub const WRITER_QUEUE_MAX: usize = 256;
/// Batches gathered into one group commit.
const GROUP_MAX: usize = 64;
/// With `--durability async`, how often the log is fsynced.
pub const ASYNC_SYNC_INTERVAL_MS: u64 = 100;
/// While the disk is full, how often the writer tries again to set space
/// aside for the log.
pub const SPACE_RETRY: Duration = Duration::from_secs(1);

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
    Batch(WriteBatch),
    /// Sync and exit (after everything queued before it).
    Stop,
}

/// Sends a consensus message to a peer (never waits; a full queue drops
/// it, which consensus survives by sending again).
pub type Outbox = Arc<dyn Fn(NodeId, Message) + Send + Sync>;

/// Removes files the log no longer needs (`Storage::take_removals`), on a
/// thread of the writer's (`durability::Remover::remove`).
pub type RemoveFn = Arc<dyn Fn(&[String]) -> Result<(), DurabilityError> + Send + Sync>;
/// Lists of files waiting for the remover thread (one per snapshot
/// installed); a full queue makes the writer wait.
const REMOVALS_QUEUE_MAX: usize = 8;

pub struct Writer<S: Storage> {
    pub storage: Arc<Mutex<S>>,
    /// Where held-back messages go (none on a lone node).
    pub outbox: Option<Outbox>,
    pub msgs: Receiver<WriterMsg>,
    pub executor: Sender<Input>,
    /// Where the executor reads what is durable.
    pub durable: Arc<Durable>,
    pub durability: Durability,
    pub partition: u32,
    /// Where the time each group took to write and sync is counted.
    pub stats: Arc<super::executor::PartitionStats>,
    /// Removes old files off this thread (the log defers them); None:
    /// the log removes them itself.
    pub remove: Option<RemoveFn>,
}

/// Why the partition stops after `e`, a failed write or sync.
fn failure(e: &DurabilityError) -> String {
    if e.is_no_space() {
        return format!(
            "its disk is full and a write needed room it did not have (past the {} MiB set \
             aside for the log, or a file with none set aside): {e}. Nothing after the last \
             fsync is acknowledged.",
            crate::durability::LOG_RESERVE_BYTES >> 20
        );
    }
    format!("its log failed: {e}. Nothing after the last fsync is acknowledged.")
}

/// The writer's remover thread, once started; dropped, it finishes what
/// it was handed and is joined.
struct RemoverThread {
    tx: Option<std::sync::mpsc::SyncSender<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RemoverThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<S: Storage> Writer<S> {
    /// Runs until `Stop` (or every sender is gone); then syncs.
    pub fn run(mut self) {
        let mut group: Vec<WriteBatch> = Vec::with_capacity(GROUP_MAX);
        let mut unsynced = false;
        let mut last_sync = Instant::now();
        let mut stopping = false;
        // Why the disk is full, as last told to the executor.
        let mut short: Option<String> = None;
        let mut retried = Instant::now();
        let mut remover: Option<RemoverThread> = None;
        // A disk full already (found at start) is told at once.
        if let Err(e) = self.tell_space(&mut short, false) {
            let _ = self
                .executor
                .send(Input::WriterFailed(format!("its log failed: {e}")));
            return;
        }
        while !stopping {
            let wait = match self.durability {
                Durability::Async => Some(Duration::from_millis(ASYNC_SYNC_INTERVAL_MS)),
                Durability::Sync => short.as_ref().map(|_| SPACE_RETRY),
            };
            let first = match wait {
                None => self.msgs.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(d) => self.msgs.recv_timeout(d),
            };
            match first {
                Ok(WriterMsg::Batch(b)) => group.push(b),
                Ok(WriterMsg::Stop) | Err(RecvTimeoutError::Disconnected) => stopping = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            while !stopping && group.len() < GROUP_MAX {
                match self.msgs.try_recv() {
                    Ok(WriterMsg::Batch(b)) => group.push(b),
                    Ok(WriterMsg::Stop) => stopping = true,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => stopping = true,
                }
            }
            let periodic = last_sync.elapsed() >= Duration::from_millis(ASYNC_SYNC_INTERVAL_MS);
            let must_sync = self.durability == Durability::Sync || periodic || stopping;
            let retry = short.is_some() && retried.elapsed() >= SPACE_RETRY;
            if retry {
                retried = Instant::now();
            }
            let written = self
                .write_group(&group, &mut unsynced, must_sync)
                .and_then(|()| self.tell_space(&mut short, retry));
            if let Err(e) = written {
                let _ = self.executor.send(Input::WriterFailed(failure(&e)));
                return;
            }
            if !unsynced {
                last_sync = Instant::now();
            }
            if !self.after_durable(&mut group, &mut remover) {
                return;
            }
            group.clear();
        }
        drop(remover);
        // Stopped without an error: the log is marked closed, so a start
        // that finds records missing from it, or a torn tail, refuses.
        if let Err(e) = self.storage().close_clean() {
            tracing::warn!(
                partition = self.partition,
                "could not mark its log closed cleanly: {e}. \
                 Everything acknowledged is durable; the next start checks the log \
                 against its last mark only"
            );
        }
    }

    /// The group is durable (for async durability: written, which is what
    /// it acknowledges): what waited for it may leave, the executor hears,
    /// and the files it made old go to the remover. False: the executor
    /// is gone.
    fn after_durable(
        &mut self,
        group: &mut [WriteBatch],
        remover: &mut Option<RemoverThread>,
    ) -> bool {
        let Some(last) = group.last().map(|b| b.seq) else {
            return true;
        };
        let (log_bytes, old) = {
            let mut storage = self.storage();
            (storage.bytes_since_snapshot(), storage.take_removals())
        };
        for b in group.iter_mut() {
            for (to, msg) in b.then_send.drain(..) {
                if let Some(out) = &self.outbox {
                    out(to, msg);
                }
            }
        }
        let wake = self.durable.set(last, log_bytes);
        if wake && self.executor.send(Input::Persisted).is_err() {
            return false;
        }
        if !old.is_empty() {
            self.hand_to_remover(remover, old);
        }
        true
    }

    /// Writes a group of batches, then syncs (or, for async durability
    /// between periodic syncs, only flushes). The vote and snapshots are
    /// always durable on their own.
    fn write_group(
        &mut self,
        group: &[WriteBatch],
        unsynced: &mut bool,
        sync: bool,
    ) -> Result<(), DurabilityError> {
        let mut storage = self.storage();
        let began = std::time::Instant::now();
        for b in group {
            crate::partition::write_batch(&mut *storage, b)?;
            *unsynced = true;
        }
        if sync && *unsynced {
            storage.sync()?;
            *unsynced = false;
        } else if *unsynced {
            storage.flush()?;
        }
        drop(storage);
        self.stats.log_sync.observe(began.elapsed());
        Ok(())
    }

    /// Has the files a snapshot made old removed on the remover thread
    /// (started at the first), so writing goes on meanwhile; where no
    /// thread can be started, they are removed here.
    fn hand_to_remover(&mut self, remover: &mut Option<RemoverThread>, old: Vec<String>) {
        let Some(remove) = self.remove.clone() else {
            return;
        };
        let p = self.partition;
        let report = move |e: DurabilityError| {
            tracing::warn!(
                partition = p,
                "removing files a snapshot made old: {e}. Nothing is \
                 lost; those left are removed at the first snapshot after the next start"
            )
        };
        if remover.is_none() {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<String>>(REMOVALS_QUEUE_MAX);
            let spawned = std::thread::Builder::new()
                .name(format!("ohm-p{p}-remove"))
                .spawn(move || {
                    for names in rx {
                        if let Err(e) = remove(&names) {
                            report(e);
                        }
                    }
                });
            match spawned {
                Ok(thread) => {
                    *remover = Some(RemoverThread {
                        tx: Some(tx),
                        thread: Some(thread),
                    })
                }
                Err(e) => tracing::warn!(
                    partition = p,
                    "cannot start a thread to remove old files ({e}); \
                     the log's writer removes them"
                ),
            }
        }
        match remover.as_ref().and_then(|r| r.tx.as_ref()) {
            Some(tx) => {
                let _ = tx.send(old);
            }
            None => {
                if let Some(remove) = &self.remove {
                    if let Err(e) = remove(&old) {
                        report(e);
                    }
                }
            }
        }
    }

    /// Tells the executor when the disk fills up or has room again (after
    /// trying again to set space aside, when `retry`).
    fn tell_space(
        &mut self,
        short: &mut Option<String>,
        retry: bool,
    ) -> Result<(), DurabilityError> {
        let mut storage = self.storage();
        if retry {
            storage.retry_reserve()?;
        }
        let now = storage.space_short();
        drop(storage);
        // Told when it fills or has room again (not each new reason).
        if now.is_some() != short.is_some() {
            *short = now.clone();
            let _ = self.executor.send(Input::Space(now));
        }
        Ok(())
    }

    fn storage(&self) -> std::sync::MutexGuard<'_, S> {
        self.storage.lock().unwrap_or_else(|p| p.into_inner())
    }
}
