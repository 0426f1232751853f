//! Multi-Paxos for one replica group (one partition's log), sans-IO.
//!
//! Owns: `Paxos`, one replica's consensus state machine: leader election by
//! ballots (a pre-vote, then phase 1 — promises — with the rule that a
//! replica promises only to a candidate whose log is at least as complete
//! as its own), phase 2 (accepts, many records per message), the chosen
//! watermark, catch-up of lagging replicas from the log or a snapshot,
//! check-quorum, and leader leases for reads.
//! Must not: read a clock, draw OS randomness, sleep, spawn, send or touch a
//! disk (time comes in as `now_us`, randomness as a seed, and every effect
//! goes out through `Ready`); import tokio, quinn or wasmtime; interpret
//! record payloads (they are opaque bytes; an empty payload is the no-op a
//! new leader appends).
//!
//! ```text
//!   tick(now) / step(from, msg) / propose(payload) / persisted(seq)
//!   read_done(..) / snapshot_read(..) / compacted(meta)
//!                 │
//!              ┌──▼───┐   ready() ─▶ Ready { vote, truncate_after, records, snapshot,
//!              │Paxos │                      messages, after_persist, chosen,
//!              └──────┘                      reads, snapshot_reads, stepped_down }
//!                             the shell persists vote, truncation, snapshot and
//!                             records (in that order, then syncs), sends
//!                             after_persist, and reports persisted(seq)
//! ```
//!
//! The algorithm is Multi-Paxos with a stable leader and a contiguous log
//! (the shape Raft made familiar; the words are Paxos's):
//! - A record carries the ballot of the leader that first proposed it. Two
//!   logs holding a record with the same slot and ballot agree on it and on
//!   everything before it, because a leader sends records in order with the
//!   slot and ballot of the one before (`prev`), and a replica accepts them
//!   only on top of a matching record.
//! - A replica promises ballot `b` only if `b` is above every ballot it
//!   promised, and only to a candidate whose last record (ballot, slot) is
//!   at least its own; so a leader's log holds every chosen record and
//!   needs no recovery phase. It appends a no-op in its own ballot, and it
//!   counts acceptances only for records of its own ballot (a record of an
//!   older ballot is chosen when a later one of the current ballot is).
//! - The promised ballot is persisted before a promise or an acceptance is
//!   sent, and records before their acceptance is.
//!
//! Leases: a follower that heard from its leader refuses to promise anyone
//! else (and refuses pre-votes) for `lease_us` on its own clock, including
//! for `lease_us` after it starts (it may have forgotten a leader). A
//! leader whose accepts sent at `t` were acknowledged by a quorum may serve
//! reads alone until `t + lease_us * (1 - ρ) / (1 + ρ)` on its clock, where
//! ρ = `clock_drift_ppm` / 10^6 bounds how far any clock's rate may differ
//! from real time. Reads executed outside a lease wait for a quorum round
//! that started after them (a read index) instead.

mod election;
mod follower;
mod leader;
mod log;
mod message;
mod paxos;

#[cfg(test)]
mod tests;

pub use message::{Message, MESSAGE_RECORD_BYTES_MAX, SNAPSHOT_CHUNK_BYTES};
pub use paxos::{Paxos, Role};

use crate::durability::{LogRecord, SnapshotMeta, Vote};
use crate::types::{NodeId, Slot};
use thiserror::Error;

/// Records a leader may have proposed and not yet seen chosen; past it,
/// `propose` refuses (backpressure).
pub const UNCHOSEN_RECORDS_MAX: u64 = 65_536;
/// Payload bytes a leader may have proposed and not yet seen chosen.
pub const UNCHOSEN_BYTES_MAX: u64 = 256 << 20;
/// Payload bytes of applied records kept in memory to catch up followers
/// without reading the disk.
pub const CACHE_BYTES_MAX: u64 = 16 << 20;
/// Accept messages (or snapshot chunks) a leader keeps in flight to one
/// follower.
pub const INFLIGHT_MAX: usize = 8;
/// Replicas in one group.
pub const MEMBERS_MAX: usize = 7;
/// The most catch-up bytes a leader may send at once after a pause (see
/// `Config::catch_up_bytes_per_s`); at least one message's worth.
pub const CATCH_UP_BURST_BYTES: usize = 4 << 20;

/// How one replica runs. Times are microseconds of the replica's own clock.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: NodeId,
    /// Every replica of the group, this one included (fixed for now).
    pub members: Vec<NodeId>,
    /// A leader sends accepts (empty ones are heartbeats) this often.
    pub heartbeat_us: u64,
    /// A follower that has not heard from a leader for a random time in
    /// `[election_timeout_us, 2 * election_timeout_us)` asks for a pre-vote.
    /// A leader that has not heard from a quorum for this long steps down.
    pub election_timeout_us: u64,
    /// How long a follower stays loyal to a leader it heard from; at most
    /// `election_timeout_us`.
    pub lease_us: u64,
    /// The bound ρ on clock rate drift, in parts per million.
    pub clock_drift_ppm: u64,
    /// Bytes per second a leader sends to followers catching up from its
    /// storage or a snapshot (live replication is not paced).
    pub catch_up_bytes_per_s: u64,
    /// Planted bugs, for proving that the simulator and the fault suite
    /// find them (test and debug builds only).
    #[cfg(any(test, debug_assertions))]
    pub bugs: Bugs,
}

impl Config {
    /// A group of one replica on `id` with the node's default timings.
    pub fn single(id: NodeId) -> Config {
        Config::new(id, vec![id])
    }

    /// Default timings: heartbeats every 50 ms, elections after 500–1000 ms
    /// of silence, 2% clock drift; catch-up paced at 32 MiB/s.
    pub fn new(id: NodeId, members: Vec<NodeId>) -> Config {
        Config {
            id,
            members,
            heartbeat_us: 50_000,
            election_timeout_us: 500_000,
            lease_us: 500_000,
            clock_drift_ppm: 20_000,
            catch_up_bytes_per_s: 32 << 20,
            #[cfg(any(test, debug_assertions))]
            bugs: Bugs::default(),
        }
    }

    /// How long after a quorum acknowledged accepts sent at `t` the leader
    /// may read alone: `lease_us * (1 - ρ) / (1 + ρ)`.
    pub fn leader_lease_us(&self) -> u64 {
        #[cfg(any(test, debug_assertions))]
        if self.bugs.lease_ignores_drift {
            return self.lease_us;
        }
        let ppm = self.clock_drift_ppm.min(999_999);
        let num = u128::from(self.lease_us) * u128::from(1_000_000 - ppm);
        (num / u128::from(1_000_000 + ppm)) as u64
    }

    fn check(&self) -> Result<(), ConsensusError> {
        let bad = |what: String| Err(ConsensusError::Config(what));
        if self.members.is_empty() || self.members.len() > MEMBERS_MAX {
            return bad(format!("a group has 1..={MEMBERS_MAX} members"));
        }
        if !self.members.contains(&self.id) {
            return bad(format!("{} is not a member of its own group", self.id));
        }
        let mut m = self.members.clone();
        m.sort();
        m.dedup();
        if m.len() != self.members.len() {
            return bad("a member is listed twice".into());
        }
        if self.heartbeat_us == 0 || self.heartbeat_us * 2 > self.election_timeout_us {
            return bad("heartbeats must come at least twice per election timeout".into());
        }
        if self.lease_us > self.election_timeout_us {
            return bad("the lease cannot outlast the election timeout".into());
        }
        if self.catch_up_bytes_per_s == 0 {
            return bad("catch-up needs a pace above zero".into());
        }
        Ok(())
    }
}

/// The environment variable a debug build of `ohm serve` reads its planted
/// bugs from (`ohm torture --planted-bug`): comma-separated names of
/// `Bugs` fields. Release builds refuse to start when it is set.
pub const PLANTED_BUG_ENV: &str = "OHM_PLANTED_BUG";

/// Bugs the simulator and the fault suite must catch (test and debug
/// builds only).
#[cfg(any(test, debug_assertions))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Send promises and acceptances without waiting for the promised
    /// ballot to be durable.
    pub promise_not_durable: bool,
    /// Leases that forget clocks drift: the leader reads alone for the
    /// whole `lease_us`.
    pub lease_ignores_drift: bool,
    /// Answer a call once its record is durable on the leader, before a
    /// quorum accepted it (the partition core reads this switch).
    pub ack_before_chosen: bool,
}

#[cfg(any(test, debug_assertions))]
impl Bugs {
    /// The names `parse` takes.
    pub const NAMES: [&'static str; 3] = [
        "promise_not_durable",
        "lease_ignores_drift",
        "ack_before_chosen",
    ];

    /// Comma-separated names of bugs to plant (`-` and `_` alike).
    pub fn parse(text: &str) -> Result<Bugs, String> {
        let mut bugs = Bugs::default();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.replace('-', "_").as_str() {
                "promise_not_durable" => bugs.promise_not_durable = true,
                "lease_ignores_drift" => bugs.lease_ignores_drift = true,
                "ack_before_chosen" => bugs.ack_before_chosen = true,
                _ => {
                    return Err(format!(
                        "{name:?} is not a planted bug (known: {})",
                        Bugs::NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(bugs)
    }
}

/// What the shell must do after feeding inputs: persist, send, apply.
#[derive(Debug, Default)]
pub struct Ready {
    /// Identifies this batch of writes: report it to `persisted` once the
    /// vote, truncation and records below are durable. None: nothing to
    /// persist.
    pub persist_seq: Option<u64>,
    /// 1. Persist this first (durably).
    pub vote: Option<Vote>,
    /// 2. Then drop every record after this slot (nothing to do when the
    ///    log ends there or before).
    pub truncate_after: Option<Slot>,
    /// 3. Then install this snapshot, received from the leader (storage,
    ///    and the state the caller applies records to).
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    /// 4. Then append these, and sync.
    pub records: Vec<LogRecord>,
    /// Send now.
    pub messages: Vec<(NodeId, Message)>,
    /// Send once this batch is durable.
    pub after_persist: Vec<(NodeId, Message)>,
    /// Everything up to here is chosen (never goes back).
    pub chosen: Slot,
    /// Read records from this slot on (`Storage::read`) and hand them to
    /// `read_done` for this follower.
    pub reads: Vec<(NodeId, Slot)>,
    /// Read the newest snapshot and hand it to `snapshot_read` for this
    /// follower.
    pub snapshot_reads: Vec<NodeId>,
    /// This replica was leader and no longer is: whatever it executed
    /// beyond `chosen` may never be chosen.
    pub stepped_down: bool,
    /// This replica cannot go on as it is (it cannot catch up): stop it
    /// and say why.
    pub problem: Option<String>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.persist_seq.is_none()
            && self.vote.is_none()
            && self.truncate_after.is_none()
            && self.records.is_empty()
            && self.snapshot.is_none()
            && self.messages.is_empty()
            && self.after_persist.is_empty()
            && self.reads.is_empty()
            && self.snapshot_reads.is_empty()
            && !self.stepped_down
            && self.problem.is_none()
    }
}

/// Why the consensus core refused something.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConsensusError {
    #[error("not the leader (the leader is {})", leader.map_or("unknown".to_string(), |l| l.to_string()))]
    NotLeader { leader: Option<NodeId> },
    #[error(
        "too many records waiting to be chosen ({records} records, {bytes} bytes); retry shortly"
    )]
    Busy { records: u64, bytes: u64 },
    #[error("invalid group configuration: {0}")]
    Config(String),
}
