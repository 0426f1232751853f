//! What every run must keep true, checked as it goes and at its end:
//! - agreement: no two replicas ever hold different records at one chosen
//!   slot;
//! - replicas whose state reflects exactly the same chosen slots have equal
//!   state (hashed over every tenant's rows);
//! - the bank's total never changes (every total a client read, and the
//!   last one);
//! - the kv history is linearizable (which also means no acknowledged
//!   write is lost, and nothing unacknowledged shows half-done);
//! - and, seen from above (the simulator knows every node's state and
//!   every message): a promise sent survives any crash, no replica
//!   accepts a ballot below one it promised, and no replica answers a read
//!   invoked after a higher ballot chose something (a lease must have
//!   ended by then).

use crate::partition::PartitionState;
use crate::types::{Ballot, Slot};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// Violations one run collects before it gives up listing them.
pub const VIOLATIONS_MAX: usize = 20;

#[derive(Default)]
pub struct Checker {
    /// Every chosen slot seen: (ballot, payload digest, first node to show it).
    chosen: BTreeMap<Slot, (Ballot, u64, usize)>,
    /// State hashes seen at a slot: (hash, node).
    states: BTreeMap<Slot, (u64, usize)>,
    /// The highest ballot each node sent a promise for.
    promised: BTreeMap<usize, Ballot>,
    /// When the leader of each ballot first had something chosen (its
    /// no-op): from then on, no older leader may read alone.
    first_chosen_us: BTreeMap<Ballot, u64>,
    pub violations: Vec<String>,
}

impl Checker {
    pub fn violation(&mut self, what: String) {
        if self.violations.len() < VIOLATIONS_MAX {
            self.violations.push(what);
        }
    }

    /// Node `node` sends a promise (`accept` false) or an acceptance of
    /// `ballot`.
    pub fn sent(&mut self, node: usize, ballot: Ballot, accept: bool) {
        let promised = self.promised.get(&node).copied().unwrap_or_default();
        if ballot < promised {
            let what = if accept { "accepted" } else { "promised" };
            self.violation(format!(
                "n{} promised ballot {promised} and later {what} ballot {ballot}",
                node + 1
            ));
        }
        if !accept {
            self.promised.insert(node, promised.max(ballot));
        }
    }

    /// Node `node` restarted remembering `promised`: a promise it sent must
    /// have survived the crash.
    pub fn restarted(&mut self, node: usize, promised: Ballot) {
        let sent = self.promised.get(&node).copied().unwrap_or_default();
        if promised < sent {
            self.violation(format!(
                "n{} promised ballot {sent}, crashed, and restarted remembering only ballot {promised}",
                node + 1
            ));
        }
    }

    /// Node `node`, leading `ballot`, answers a read invoked at `call_us`.
    pub fn read_answered(&mut self, node: usize, ballot: Ballot, call_us: u64) {
        let newer = self
            .first_chosen_us
            .range(ballot..)
            .find(|(b, t)| **b > ballot && **t < call_us);
        if let Some((b, t)) = newer {
            let what = format!(
                "lease: n{} answered, in ballot {ballot}, a read invoked at {call_us} µs, after ballot {b} chose at {t} µs",
                node + 1
            );
            self.violation(what);
        }
    }

    /// Node `node` says slot `slot` is chosen with this record.
    pub fn chosen(&mut self, node: usize, slot: Slot, ballot: Ballot, payload: &[u8], now_us: u64) {
        let first = self.first_chosen_us.entry(ballot).or_insert(now_us);
        *first = (*first).min(now_us);
        let digest = digest(payload);
        match self.chosen.get(&slot) {
            None => {
                self.chosen.insert(slot, (ballot, digest, node));
            }
            Some(&(b, d, first)) if (b, d) != (ballot, digest) => self.violation(format!(
                "agreement: slot {slot} is chosen as ballot {b} (digest {d:016x}) on n{} and as \
                 ballot {ballot} (digest {digest:016x}) on n{}",
                first + 1,
                node + 1
            )),
            Some(_) => {}
        }
    }

    /// Node `node`'s state reflects exactly the chosen slots up to `slot`.
    pub fn state(&mut self, node: usize, slot: Slot, state: &PartitionState) {
        let h = state_hash(state);
        match self.states.get(&slot) {
            None => {
                self.states.insert(slot, (h, node));
            }
            Some(&(other, first)) if other != h => self.violation(format!(
                "divergence: at slot {slot} n{} has state {other:016x} and n{} has {h:016x}",
                first + 1,
                node + 1
            )),
            Some(_) => {}
        }
    }
}

/// A digest of bytes (FNV-1a, then mixed).
pub fn digest(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    crate::rng::mix(h)
}

/// A hash of every tenant's tables and rows, independent of row order and
/// of how rows are stored.
pub fn state_hash(state: &PartitionState) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for (tenant, part) in state.tenants() {
        tenant.0.hash(&mut h);
        let mut tables: Vec<_> = part.engine.database().tables().collect();
        tables.sort_by(|a, b| a.schema().name.cmp(&b.schema().name));
        for t in tables {
            t.schema().name.hash(&mut h);
            let mut rows: Vec<u64> = t
                .scan()
                .map(|(_, row)| {
                    let mut rh = std::hash::DefaultHasher::new();
                    for v in row.iter() {
                        v.hash(&mut rh);
                    }
                    rh.finish()
                })
                .collect();
            rows.sort_unstable();
            rows.hash(&mut h);
        }
        for (name, wasm) in &part.modules {
            name.hash(&mut h);
            digest(wasm).hash(&mut h);
        }
    }
    h.finish()
}
