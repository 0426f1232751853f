//! Snapshots of a partition replica: taken here when the log has grown
//! (begun at the last applied slot, encoded a step at a time while the
//! partition serves, written aside by the shell off the log's thread,
//! installed once written and that slot is chosen, then the log is
//! compacted), and installed when the leader sends one.
//!
//! ```text
//!   due -> Building (steps) -> Ready::stage_snapshot -> Staging::Writing
//!     -> snapshot_staged(ok) -> Staged -> (slot chosen) WriteBatch::install_staged
//!     -> persisted: compacted
//!   given up (leadership lost, leader's snapshot installed): Writing is
//!   voided (its file discarded when it is reported), Staged discarded
//! ```

use super::core::{PartitionCore, WriteBatch, SNAPSHOT_RETRY_US};
use super::state::{PartitionState, ReplayError};
use crate::durability::snapshot::{Encoder, Piece};
use crate::durability::{self, SnapshotMeta};
use crate::storage::SnapshotToken;
use crate::types::TenantId;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

/// A snapshot taken here, once encoded: at most one at a time. `bytes`:
/// its size (the newest snapshot's once installed); `asked`: it was asked
/// for, so one given up is asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Staging {
    /// The shell writes its file; `void`: given up meanwhile (its file is
    /// discarded when the shell reports).
    Writing {
        meta: SnapshotMeta,
        bytes: u64,
        asked: bool,
        void: bool,
    },
    /// Its file is written; installed once its slot is chosen.
    Staged { meta: SnapshotMeta, bytes: u64 },
}

/// A snapshot being encoded a step at a time while the partition serves.
pub(super) struct Building {
    meta: SnapshotMeta,
    /// The tables' copies on write for it; cleared when it is over.
    token: SnapshotToken,
    encoder: Encoder,
    /// What is left to encode, in file order.
    pieces: VecDeque<Piece>,
    /// It was asked for (`request_snapshot`): asked again if abandoned.
    asked: bool,
}

impl<T> PartitionCore<T> {
    /// Takes a snapshot of what is applied as soon as it can, whatever the
    /// log's size (written once its slot is chosen).
    pub fn request_snapshot(&mut self) {
        self.snapshot_asked = true;
        self.after_consensus();
    }

    /// A snapshot from the leader replaces the state.
    pub(super) fn install_received(&mut self, meta: SnapshotMeta, bytes: &[u8]) {
        let decoded = durability::snapshot::decode(bytes)
            .map_err(|e| ReplayError::Decode(e.to_string()))
            .and_then(|s| {
                PartitionState::from_snapshot(self.cfg.partition, self.runtime.clone(), s)
            });
        match decoded {
            Ok(mut s) => {
                s.skipped = self.skipped.clone();
                self.state = Some(Box::new(s));
                self.snapshot_bytes = bytes.len() as u64;
                self.applied = meta.slot;
                // Whatever this replica executed as leader is gone with it.
                self.needs_rebuild = false;
                self.dec.stalled = None;
                self.new_part_generation();
            }
            Err(e) => self.stop(format!(
                "installing the leader's snapshot at slot {}: {e}",
                meta.slot
            )),
        }
    }

    /// Whether a snapshot would be taken now but for the state: one is
    /// asked for or the log has grown enough, none is being written, and
    /// there is something new to put in it. (It waits for lent parts.)
    ///
    /// Enough is `snapshot_log_bytes`, or the newest snapshot's size if
    /// that is more: each snapshot writes the whole state, so with a fixed
    /// threshold the bytes snapshots write grow with the square of the
    /// data's size; with this one they stay within about twice what the log
    /// wrote (a snapshot is at most the one before plus what the log added
    /// since, and the log added at least the one before).
    pub fn snapshot_due(&self) -> bool {
        let enough = self.cfg.snapshot_log_bytes.max(self.snapshot_bytes);
        let grown = self.snapshot_asked || self.log_bytes >= enough;
        let in_flight = self.staging.is_some()
            || self.building.is_some()
            || self.cur_local.is_some()
            || self.batches.iter().any(|b| b.2.is_some());
        let snap_slot = self.paxos.snapshot_meta().slot;
        let waits = self.now.mono_us < self.snapshot_retry_at_us;
        grown && !in_flight && !waits && self.applied > snap_slot && !self.needs_rebuild
    }

    /// Encodes the next step of the snapshot being built, if one is
    /// (`tick` does, once per turn of the shell's loop: a step per input
    /// would let a queue of calls wait for a step each).
    pub fn snapshot_step(&mut self) {
        if self.building.is_some() && self.fatal.is_none() {
            self.build_snapshot();
        }
    }

    /// Takes a snapshot when the log has grown enough: begun now, at the
    /// last applied slot, encoded a step at a time (`snapshot_step`), and
    /// written aside once whole.
    pub(super) fn maybe_snapshot(&mut self) {
        match self.staging {
            Some(Staging::Staged { meta, bytes }) if meta.slot <= self.paxos.chosen() => {
                self.staging = None;
                return self.queue_local_snapshot(meta, bytes);
            }
            Some(_) => return,
            None => {}
        }
        if self.building.is_some() {
            return; // a step at each `snapshot_step`
        }
        if !self.snapshot_due() {
            return;
        }
        // A share held in memory, its outcome unknown, never goes into one,
        // nor a state with parts lent out (they come home first) or holding
        // what lent parts ran and is not proposed yet.
        if !self.ran_waiting.is_empty() {
            return;
        }
        let whole = |s: &&mut PartitionState| s.undecided.is_none() && s.away_count() == 0;
        let Some(state) = self.state.as_deref_mut().filter(whole) else {
            return;
        };
        let Some(ballot) = self.paxos.ballot_at(self.applied) else {
            return;
        };
        let meta = SnapshotMeta {
            slot: self.applied,
            ballot,
        };
        let asked = std::mem::take(&mut self.snapshot_asked);
        let committed = state.committed.image();
        let begun = durability::snapshot::Encoder::begin(
            meta,
            state.mp_txn_max,
            &committed,
            &state.created_tenants,
            &state.principals,
            &state.images(),
        );
        let (encoder, pieces) = match begun {
            Ok(b) => b,
            Err(e) => return self.stop(format!("encoding a snapshot: {e}")),
        };
        let token = SnapshotToken::new(AtomicBool::new(true));
        state.begin_snapshot(&token);
        self.building = Some(Box::new(Building {
            meta,
            token,
            encoder,
            pieces: pieces.into(),
            asked,
        }));
    }

    /// Whether a snapshot is being encoded and can take a step now (its
    /// next table's part is here): the shell should step the core (`tick`)
    /// without waiting for input. (While it waits for a part, input brings
    /// the part home.)
    pub fn snapshot_can_step(&self) -> bool {
        let (Some(b), Some(state)) = (self.building.as_deref(), self.state.as_deref()) else {
            return false;
        };
        match b.pieces.front() {
            Some(Piece::Rows { tenant, .. }) => !state.is_away(*tenant),
            _ => true,
        }
    }

    /// Encodes up to `snapshot_step_bytes` more of the snapshot being
    /// built, then returns to serving; once it is whole, it waits for its
    /// slot to be chosen. Rows come as they were when it began (the tables
    /// keep what changes before the snapshot reads it). A table whose
    /// tenant's part is lent out waits for it; one dropped since the
    /// snapshot began ends it (it is begun again).
    fn build_snapshot(&mut self) {
        let (Some(b), Some(state)) = (self.building.as_deref_mut(), self.state.as_deref_mut())
        else {
            return;
        };
        let until = b
            .encoder
            .encoded_bytes()
            .saturating_add(self.cfg.snapshot_step_bytes);
        while let Some(piece) = b.pieces.front() {
            match piece {
                Piece::Frames(bytes) => b.encoder.frames(bytes),
                Piece::Rows { tenant, table } => {
                    if state.is_away(*tenant) {
                        return;
                    }
                    let (encoder, token) = (&mut b.encoder, &b.token);
                    let mut failed = None;
                    let done = state.snapshot_table(*tenant, *table).and_then(|t| {
                        t.snapshot_rows(token, |row| match encoder.row(row) {
                            Ok(()) => encoder.encoded_bytes() < until,
                            Err(e) => {
                                failed = Some(e);
                                false
                            }
                        })
                    });
                    if let Some(e) = failed {
                        return self.stop(format!("encoding a snapshot: {e}"));
                    }
                    match done {
                        Some(true) => {
                            if let Err(e) = b.encoder.end_rows() {
                                return self.stop(format!("encoding a snapshot: {e}"));
                            }
                        }
                        Some(false) => return,
                        None => return self.abandon_snapshot(),
                    }
                }
            }
            b.pieces.pop_front();
            if b.encoder.encoded_bytes() >= until {
                return;
            }
        }
        let Some(b) = self.building.take() else {
            return;
        };
        let Building {
            meta,
            encoder,
            token,
            asked,
            ..
        } = *b;
        token.store(false, Ordering::Relaxed);
        match encoder.finish() {
            Ok(bytes) => {
                self.staging = Some(Staging::Writing {
                    meta,
                    bytes: bytes.len() as u64,
                    asked,
                    void: false,
                });
                self.out.stage_snapshot = Some((meta, bytes));
            }
            Err(e) => self.stop(format!("encoding a snapshot: {e}")),
        }
    }

    /// The shell wrote (or failed to write) the file of the snapshot it
    /// was handed in `Ready::stage_snapshot`. Once its slot is chosen it
    /// is installed; a failed one is given up, and the next is begun
    /// `SNAPSHOT_RETRY_US` later (the log keeps its records meanwhile).
    pub fn snapshot_staged(&mut self, meta: SnapshotMeta, written: Result<(), String>) {
        let Some(Staging::Writing {
            meta: m,
            bytes,
            asked,
            void,
        }) = self.staging
        else {
            return;
        };
        if m != meta {
            return;
        }
        self.staging = None;
        if written.is_ok() && !void {
            self.staging = Some(Staging::Staged { meta, bytes });
            return self.after_consensus();
        }
        // Not for one given up meanwhile (its writing was cancelled).
        if written.is_err() && !void {
            self.snapshot_retry_at_us = self.now.mono_us.saturating_add(SNAPSHOT_RETRY_US);
        }
        self.snapshot_asked |= asked;
        self.out.discard_staged = Some(meta);
    }

    /// Whether the snapshot being written aside is still wanted: once it
    /// is given up the shell may cancel its writing.
    pub fn stage_wanted(&self) -> bool {
        matches!(self.staging, Some(Staging::Writing { void: false, .. }))
    }

    /// Gives up the snapshot taken here, wherever it is (the state it
    /// holds may not be what gets chosen, or the leader's replaces it).
    pub(super) fn drop_local_snapshot(&mut self) {
        self.abandon_snapshot();
        match &mut self.staging {
            Some(Staging::Writing { void, .. }) => *void = true,
            Some(Staging::Staged { meta, .. }) => {
                self.out.discard_staged = Some(*meta);
                self.staging = None;
            }
            None => {}
        }
    }

    /// Gives up the snapshot being built (the state it reads is replaced,
    /// or was changed under it): the tables here drop what they kept for
    /// it, and lent ones at their next change.
    pub(super) fn abandon_snapshot(&mut self) {
        let Some(b) = self.building.take() else {
            return;
        };
        b.token.store(false, Ordering::Relaxed);
        self.snapshot_asked |= b.asked;
        if let Some(state) = self.state.as_deref_mut() {
            state.end_snapshot();
        }
    }

    /// Whether the snapshot being built has yet to read `tenant`'s rows:
    /// its part is not lent meanwhile (a busy tenant's part could stay out
    /// for as long as it has calls, and the snapshot with it).
    pub fn snapshot_will_read(&self, tenant: TenantId) -> bool {
        self.building.as_deref().is_some_and(|b| {
            b.pieces
                .iter()
                .any(|p| matches!(p, Piece::Rows { tenant: t, .. } if *t == tenant))
        })
    }

    /// Whether the snapshot being built waits for a part that is lent out
    /// (it should come home).
    pub(super) fn snapshot_waits_for_part(&self) -> bool {
        self.building.is_some() && self.state.is_some() && !self.snapshot_can_step()
    }

    fn queue_local_snapshot(&mut self, meta: SnapshotMeta, bytes: u64) {
        let batch = self.out.write.get_or_insert_with(WriteBatch::default);
        if batch.snapshot.is_some() {
            // A received one is being installed: it wins.
            self.out.discard_staged = Some(meta);
            return;
        }
        batch.records.retain(|r| r.slot > meta.slot);
        batch.install_staged = Some(meta);
        self.cur_local = Some(meta);
        self.snapshot_bytes = bytes;
    }
}
