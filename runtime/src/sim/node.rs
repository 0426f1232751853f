//! One simulated node: the real `PartitionCore` (state, consensus,
//! procedures) over the real `Log` on a simulated disk, and a shell that
//! does what the node's executor and writer threads do — with the disk's
//! latency and faults, and the node's own drifting clock.
//!
//! A batch to persist is written after a delay and synced after another,
//! so a crash can land between the two (and tear the write); messages the
//! batch holds back are sent once it is synced.

use super::client::Request;
use crate::consensus::Message;
use crate::durability::{CrashReport, DurabilityError, Log, LogOptions, SimFs, Storage};
use crate::partition::{CallResult, Now, PartitionCore, WriteBatch};
use crate::types::{NodeId, Slot};
use std::collections::VecDeque;

/// Who waits for a core's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// A single-partition call of client `client`'s operation `op`.
    Call { client: usize, op: u64 },
    /// A multi-partition call (held partition) of that operation.
    Multi { client: usize, op: u64 },
    /// A set-up step (DDL, deploy) run by the simulator itself.
    Setup,
}

/// A multi-partition call in progress on this node.
pub struct MultiCall {
    pub client: usize,
    pub op: u64,
    pub request: Request,
    /// Its answer, once run (sent when its entry is chosen).
    pub result: Option<CallResult>,
}

/// The parts of a node that a crash loses.
pub struct Live {
    pub core: PartitionCore<Token>,
    pub log: Log<SimFs>,
    /// The tenant's part lent out, as the node lends a heavy tenant's to a
    /// runner thread: its calls, in order, run one per `LentRun` event.
    pub lease: Option<SimLease>,
}

/// A lent part and the calls handed to it.
pub struct SimLease {
    pub lease: Box<crate::partition::Lease>,
    pub jobs: VecDeque<(Token, crate::partition::LentCall)>,
}

pub struct SimNode {
    pub id: NodeId,
    pub disk: SimFs,
    pub live: Option<Live>,
    /// Bumped by every crash: disk events of an older life are ignored.
    pub epoch: u64,
    /// This node's clock runs at `1 + drift_ppm / 10^6` of real time;
    /// it read `base_local_us` at real time `base_real_us`.
    pub drift_ppm: i64,
    pub base_real_us: u64,
    pub base_local_us: u64,
    /// Batches waiting to be written, in order.
    pub to_write: VecDeque<WriteBatch>,
    /// Written, not yet synced: their seq and the messages they hold back.
    pub to_sync: Vec<(u64, Vec<(NodeId, Message)>)>,
    /// A snapshot to write aside (`Event::Stage`), as the node's stager
    /// thread does while its log goes on.
    pub to_stage: Option<(crate::durability::SnapshotMeta, Vec<u8>)>,
    pub multi: Option<MultiCall>,
    pub multi_queue: VecDeque<MultiCall>,
    /// Chosen slots already compared across nodes.
    pub checked: Slot,
    /// Why the node stopped for good (a replica that refused to start).
    pub dead: Option<String>,
}

impl SimNode {
    pub fn new(index: usize, drift_ppm: i64, start_us: u64) -> SimNode {
        SimNode {
            id: NodeId(index as u32 + 1),
            disk: SimFs::new(),
            live: None,
            epoch: 0,
            drift_ppm,
            base_real_us: 0,
            base_local_us: start_us,
            to_write: VecDeque::new(),
            to_sync: Vec::new(),
            to_stage: None,
            multi: None,
            multi_queue: VecDeque::new(),
            checked: Slot(0),
            dead: None,
        }
    }

    /// This node's clock at real time `real_us`.
    pub fn clock(&self, real_us: u64) -> Now {
        let since = real_us.saturating_sub(self.base_real_us) as i128;
        let local = since + since * self.drift_ppm as i128 / 1_000_000;
        let mono = self.base_local_us + local.max(0) as u64;
        Now {
            mono_us: mono,
            // Transaction timestamps: some day in 2027, plus the clock.
            wall_us: 1_800_000_000_000_000 + mono as i64,
        }
    }

    /// From real time `real_us` on, the clock runs at a new rate (it never
    /// jumps or goes back).
    pub fn set_drift(&mut self, real_us: u64, drift_ppm: i64) {
        self.base_local_us = self.clock(real_us).mono_us;
        self.base_real_us = real_us;
        self.drift_ppm = drift_ppm;
    }

    /// Opens the log on this node's disk.
    pub fn open_log(&self, opts: &LogOptions) -> Result<Log<SimFs>, DurabilityError> {
        Log::open(self.disk.clone(), opts.clone()).map(|(log, _)| log)
    }

    /// Loses everything not on disk (and what the disk had not synced).
    pub fn crash(&mut self, seed: u64) -> CrashReport {
        self.live = None;
        let report = self.disk.crash(seed);
        self.epoch += 1;
        self.to_write.clear();
        self.to_stage = None;
        self.to_sync.clear();
        self.multi = None;
        self.multi_queue.clear();
        report
    }

    /// Writes the oldest waiting batch (not synced); false on a disk error.
    pub fn write_next(&mut self) -> Result<(), String> {
        let Some(live) = &mut self.live else {
            return Ok(());
        };
        let Some(batch) = self.to_write.pop_front() else {
            return Ok(());
        };
        crate::partition::write_batch(&mut live.log, &batch).map_err(|e| e.to_string())?;
        self.to_sync.push((batch.seq, batch.then_send));
        Ok(())
    }

    /// Syncs what was written; the messages now free to go.
    pub fn sync(&mut self) -> Result<Vec<(NodeId, Message)>, String> {
        let Some(live) = &mut self.live else {
            return Ok(Vec::new());
        };
        if self.to_sync.is_empty() {
            return Ok(Vec::new());
        }
        live.log.sync().map_err(|e| e.to_string())?;
        let log_bytes = live.log.bytes_since_snapshot();
        let mut send = Vec::new();
        let mut last = 0;
        for (seq, msgs) in self.to_sync.drain(..) {
            last = seq;
            send.extend(msgs);
        }
        live.core.persisted(last, log_bytes);
        Ok(send)
    }

    pub fn core(&mut self) -> Option<&mut PartitionCore<Token>> {
        self.live.as_mut().map(|l| &mut l.core)
    }
}
