//! One simulated run: the event loop, the nodes' shells' reactions, the
//! clients, and the faults. Everything happens on one thread, in the order
//! of a priority queue keyed by (virtual time, sequence number), and every
//! random choice comes from one seeded `Rng`: a seed replays exactly.

use super::check::Checker;
use super::client::{self, Client, Request};
use super::net::{Net, NetConfig};
use super::node::{Live, SimNode};
use super::requests::SetupStep;
use super::{Outcome, Shared, SimConfig, Stats};
use crate::consensus::{Message, MESSAGE_RECORD_BYTES_MAX};
use crate::durability::{LogOptions, Storage};
use crate::partition::{CallResult, CoreConfig, PartitionCore};
use crate::rng::Rng;
use crate::types::{NodeId, Slot, TenantId};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

/// Nodes are ticked this often (real time).
const TICK_US: u64 = 5_000;
/// Readies acted on for one input at most: acting on one (a storage read,
/// a lent state) feeds the core again.
const ACT_ROUNDS_MAX: usize = 16;
/// Writing a snapshot aside takes up to this many times a batch's write.
const STAGE_SLOWER: u64 = 20;
/// The tenant every run works in.
pub(super) const TENANT: TenantId = TenantId(7);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Addr {
    Node(usize),
    Client(usize),
}

#[derive(Debug)]
pub(super) enum Msg {
    Peer(Message),
    Request { op: u64, request: Request },
    Response { op: u64, result: CallResult },
}

#[derive(Debug)]
pub(super) enum Event {
    Deliver {
        to: Addr,
        from: Addr,
        msg: Msg,
    },
    Tick(usize),
    DiskWrite {
        node: usize,
        epoch: u64,
    },
    DiskSync {
        node: usize,
        epoch: u64,
    },
    ClientStart(usize),
    ClientTimeout {
        client: usize,
        op: u64,
    },
    Crash {
        node: usize,
        epoch: u64,
    },
    Restart(usize),
    Fault,
    Heal(u64),
    /// A lent part runs its next call (or goes home).
    LentRun {
        node: usize,
        epoch: u64,
    },
    /// The snapshot handed out is written aside (`SimNode::to_stage`).
    Stage {
        node: usize,
        epoch: u64,
    },
}

pub struct World<'a> {
    pub(super) cfg: SimConfig,
    pub(super) shared: &'a Shared,
    pub(super) rng: Rng,
    pub(super) now: u64,
    pub(super) seq: u64,
    pub(super) queue: BinaryHeap<Reverse<(u64, u64)>>,
    pub(super) events: BTreeMap<u64, Event>,
    pub(super) nodes: Vec<SimNode>,
    pub(super) clients: Vec<Client>,
    pub(super) net: Net,
    pub(super) opts: LogOptions,
    pub(super) disk_write_us: (u64, u64),
    pub(super) disk_sync_us: (u64, u64),
    /// The set-up steps; a state that applied k of them has `mp_txn_max`
    /// k (each is one coordinator transaction).
    pub(super) setup: Vec<SetupStep>,
    /// The node running the set-up.
    pub(super) setup_node: Option<usize>,
    pub(super) history: crate::lincheck::OhmKvHistory,
    pub(super) checker: Checker,
    pub(super) trace: u64,
    pub(super) next_op: u64,
    pub(super) next_process: u64,
    pub(super) faults: bool,
    /// A leader to cut off once it is quiet, and by when anyway.
    pub(super) isolate_when_quiet: Option<(usize, u64)>,
    pub(super) stats: Stats,
}

impl<'a> World<'a> {
    pub fn new(cfg: SimConfig, shared: &'a Shared) -> World<'a> {
        let mut rng = Rng::new(cfg.seed);
        let net = Net::new(NetConfig::draw(&mut rng, cfg.faults));
        let drift = shared.consensus(NodeId(1), 1).clock_drift_ppm as i64;
        let nodes = (0..cfg.replicas)
            .map(|i| {
                // Clocks at the edges of the bound are the interesting ones.
                let d = match rng.below(5) {
                    0 | 1 => -drift,
                    2 | 3 => drift,
                    _ => rng.range(0, 2 * drift as u64 + 1) as i64 - drift,
                };
                SimNode::new(i, d, rng.range(0, 10_000_000))
            })
            .collect();
        let mut setup: Vec<SetupStep> = ohm_kv::SCHEMA
            .iter()
            .chain(ohm_bank::SCHEMA)
            .map(|s| SetupStep::Ddl(s))
            .collect();
        setup.push(SetupStep::Deploy("kv", shared.kv.clone()));
        setup.push(SetupStep::Deploy("bank", shared.bank.clone()));
        let accounts: Vec<String> = (0..client::ACCOUNTS)
            .map(|i| format!("({i}, {})", client::OPENING_BALANCE))
            .collect();
        let insert = format!(
            "INSERT INTO accounts (id, balance) VALUES {}",
            accounts.join(", ")
        );
        setup.push(SetupStep::Insert(insert));
        let disk_write_us = (rng.range(10, 100), rng.range(100, 500));
        let disk_sync_us = (rng.range(50, 300), rng.range(300, 3_000));
        World {
            opts: LogOptions {
                segment_bytes_max: rng.range(4 << 10, 64 << 10),
                ..LogOptions::default()
            },
            cfg,
            shared,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            nodes,
            clients: Vec::new(),
            net,
            disk_write_us,
            disk_sync_us,
            setup,
            setup_node: None,
            history: crate::lincheck::OhmKvHistory::default(),
            checker: Checker::default(),
            trace: 0x5eed,
            next_op: 1,
            next_process: 1,
            faults: false,
            isolate_when_quiet: None,
            stats: Stats::default(),
        }
    }

    /// Boots, sets up, runs with faults, heals, drains, checks.
    pub fn run(mut self) -> Outcome {
        for i in 0..self.nodes.len() {
            self.start_node(i);
            let d = self.rng.range(0, TICK_US);
            self.at(d, Event::Tick(i));
        }
        if !self.boot() {
            self.checker
                .violation("the cluster never finished its set-up (no stable leader)".into());
            return self.outcome();
        }
        self.start_clients();
        self.faults = self.cfg.faults;
        if self.faults {
            let t = self.rng.range(10_000, 200_000);
            self.at(t, Event::Fault);
        }
        let mut steps = 0;
        while steps < self.cfg.steps && self.step() {
            steps += 1;
        }
        self.stats.steps = steps;
        self.finish();
        self.outcome()
    }

    fn outcome(mut self) -> Outcome {
        self.stats.virtual_ms = self.now / 1000;
        self.stats.dropped = self.net.dropped;
        self.stats.duplicated = self.net.duplicated;
        self.stats.kv_ok = self.history.ok;
        self.stats.kv_unknown = self.history.unknown;
        Outcome {
            seed: self.cfg.seed,
            violations: self.checker.violations,
            trace_hash: self.trace,
            stats: self.stats,
            history: self.history.ops,
        }
    }

    // ---- the event loop ------------------------------------------------------

    pub(super) fn at(&mut self, delay_us: u64, e: Event) {
        self.seq += 1;
        self.queue.push(Reverse((self.now + delay_us, self.seq)));
        self.events.insert(self.seq, e);
    }

    /// Processes one event; false when none is left.
    pub(super) fn step(&mut self) -> bool {
        let Some(Reverse((t, seq))) = self.queue.pop() else {
            return false;
        };
        let Some(e) = self.events.remove(&seq) else {
            return true;
        };
        self.now = t;
        self.trace(t, &e);
        match e {
            Event::Deliver { to, from, msg } => self.deliver(to, from, msg),
            Event::Tick(n) => {
                let now = self.nodes[n].clock(t);
                if let Some(core) = self.nodes[n].core() {
                    core.tick(now);
                    self.act(n);
                }
                self.at(TICK_US, Event::Tick(n));
            }
            Event::DiskWrite { node, epoch } => self.disk_write(node, epoch),
            Event::DiskSync { node, epoch } => self.disk_sync(node, epoch),
            Event::ClientStart(c) => self.client_start(c),
            Event::ClientTimeout { client, op } => self.client_timeout(client, op),
            Event::Crash { node, epoch } => {
                // A reboot: back almost at once, with only what the disk kept.
                if self.nodes[node].epoch == epoch && self.nodes[node].live.is_some() {
                    let down = self.rng.range(0, 30_000);
                    self.crash_for(node, down);
                }
            }
            Event::Restart(n) => self.start_node(n),
            Event::Fault => self.fault(),
            Event::Heal(id) => self.net.heal(id),
            Event::LentRun { node, epoch } => self.lent_run(node, epoch),
            Event::Stage { node, epoch } => self.stage(node, epoch),
        }
        true
    }

    /// Runs events until `done` holds (true) or `limit_us` of virtual time
    /// passes (false).
    pub(super) fn run_until(&mut self, limit_us: u64, done: impl Fn(&World<'_>) -> bool) -> bool {
        let end = self.now + limit_us;
        loop {
            if done(self) {
                return true;
            }
            match self.queue.peek() {
                Some(Reverse((t, _))) if *t <= end => {}
                _ => return false,
            }
            self.step();
        }
    }

    fn trace(&mut self, t: u64, e: &Event) {
        let (kind, who, extra) = match e {
            Event::Deliver { to, msg, .. } => {
                let to = match to {
                    Addr::Node(n) => *n as u64,
                    Addr::Client(c) => 1000 + *c as u64,
                };
                let extra = match msg {
                    Msg::Peer(m) => m.ballot().round ^ (m.payload_bytes() as u64) << 20,
                    Msg::Request { op, .. } | Msg::Response { op, .. } => *op,
                };
                (1, to, extra)
            }
            Event::Tick(n) => (2, *n as u64, 0),
            Event::DiskWrite { node, epoch } => (3, *node as u64, *epoch),
            Event::DiskSync { node, epoch } => (4, *node as u64, *epoch),
            Event::ClientStart(c) => (5, *c as u64, 0),
            Event::ClientTimeout { client, op } => (6, *client as u64, *op),
            Event::Crash { node, epoch } => (7, *node as u64, *epoch),
            Event::Restart(n) => (8, *n as u64, 0),
            Event::Fault => (9, 0, 0),
            Event::Heal(id) => (10, 0, *id),
            Event::LentRun { node, epoch } => (11, *node as u64, *epoch),
            Event::Stage { node, epoch } => (12, *node as u64, *epoch),
        };
        self.trace = crate::rng::mix(self.trace ^ t ^ (kind << 56) ^ (who << 40) ^ extra);
    }

    // ---- nodes -------------------------------------------------------------

    pub(super) fn start_node(&mut self, n: usize) {
        if self.nodes[n].live.is_some() || self.nodes[n].dead.is_some() {
            return;
        }
        let mut log = match self.nodes[n].open_log(&self.opts) {
            Ok(l) => l,
            // An injected fsync failure hit the start-up itself: like an
            // operator, try again later.
            Err(crate::durability::DurabilityError::Io { .. }) => {
                self.stats.storage_failures += 1;
                return self.crash(n);
            }
            Err(e) => return self.kill(n, format!("its log did not open: {e}")),
        };
        let cfg = CoreConfig {
            partition: crate::catalog::PartitionId(0),
            partitions: 1,
            consensus: self.shared.consensus(self.nodes[n].id, self.cfg.replicas),
            snapshot_log_bytes: self.cfg.snapshot_log_bytes,
            // Small, so that a snapshot is built over many steps with
            // writes, crashes and elections between them.
            snapshot_step_bytes: 256,
            quota: crate::catalog::Quota::default(),
        };
        let now = self.nodes[n].clock(self.now);
        let seed = self.rng.next_u64();
        let runtime = self.shared.runtime.clone();
        match PartitionCore::recover(cfg, runtime, &mut log, Arc::default(), now, seed) {
            Ok(core) => {
                self.checker.restarted(n, core.paxos().promised());
                self.nodes[n].live = Some(Live {
                    core,
                    log,
                    lease: None,
                });
                self.stats.starts += 1;
                self.act(n);
            }
            Err(e) => self.kill(n, format!("it did not recover: {e}")),
        }
    }

    /// A replica that cannot start: nothing injected should cause that.
    fn kill(&mut self, n: usize, why: String) {
        self.checker
            .violation(format!("n{} stopped for good: {why}", n + 1));
        self.nodes[n].dead = Some(why);
        self.nodes[n].live = None;
    }

    /// Crashes a node; it restarts after a while (at once once the faults
    /// have stopped).
    pub(super) fn crash(&mut self, n: usize) {
        let back = if self.faults {
            self.rng.range(10_000, 1_000_000)
        } else {
            1_000
        };
        self.crash_for(n, back);
    }

    /// Crashes a node and restarts it after `down_us`.
    pub(super) fn crash_for(&mut self, n: usize, down_us: u64) {
        let seed = self.rng.next_u64();
        let report = self.nodes[n].crash(seed);
        self.stats.crashes += 1;
        for file in &report.files {
            let lost = file.pending_ops.saturating_sub(file.kept_ops) as u64;
            self.stats.unsynced_writes_lost += lost;
            self.stats.torn_writes += u64::from(file.torn_bytes.is_some());
            self.stats.garbled_bytes += u64::from(file.garbled_at.is_some());
        }
        self.at(down_us, Event::Restart(n));
    }

    fn disk_write(&mut self, n: usize, epoch: u64) {
        if self.nodes[n].epoch != epoch {
            return;
        }
        match self.nodes[n].write_next() {
            Ok(()) => {
                let (lo, hi) = self.disk_sync_us;
                let d = self.rng.range(lo, hi);
                self.at(d, Event::DiskSync { node: n, epoch });
            }
            Err(e) => self.storage_failed(n, e),
        }
    }

    fn disk_sync(&mut self, n: usize, epoch: u64) {
        if self.nodes[n].epoch != epoch {
            return;
        }
        match self.nodes[n].sync() {
            Ok(msgs) => {
                for (to, m) in msgs {
                    self.send_peer(n, to, m);
                }
                self.act(n);
            }
            Err(e) => self.storage_failed(n, e),
        }
    }

    /// Writes the snapshot handed out aside and tells the core (an
    /// injected fsync failure is an error it survives: no crash).
    fn stage(&mut self, n: usize, epoch: u64) {
        let node = &mut self.nodes[n];
        if node.epoch != epoch {
            return; // of an earlier life: its snapshot went with it
        }
        let (Some(live), Some((meta, bytes))) = (node.live.as_mut(), node.to_stage.take()) else {
            return;
        };
        let no = std::sync::atomic::AtomicBool::new(false);
        let written = live.log.stager().and_then(|s| s.stage(meta, &bytes, &no));
        if written.is_err() {
            self.stats.snapshots_failed += 1;
        }
        live.core
            .snapshot_staged(meta, written.map_err(|e| e.to_string()));
        self.act(n);
    }

    /// The node's storage failed (an injected fsync error): like the real
    /// node, it stops; it restarts from its disk.
    fn storage_failed(&mut self, n: usize, _why: String) {
        self.stats.storage_failures += 1;
        self.crash(n);
    }

    /// Acts on a node's Ready until it has nothing more to say.
    pub(super) fn act(&mut self, n: usize) {
        // A turn of the node's loop: a step of a snapshot being built.
        if let Some(live) = self.nodes[n].live.as_mut() {
            live.core.snapshot_step();
        }
        for _ in 0..ACT_ROUNDS_MAX {
            let Some(live) = self.nodes[n].live.as_mut() else {
                return;
            };
            let r = live.core.ready();
            if let Some(f) = r.fatal {
                return self.kill(n, format!("its core stopped: {f}"));
            }
            let mut again = false;
            if r.rebuild {
                self.stats.rebuilds += 1;
                live.core.rebuild(&mut live.log);
                again = true;
            }
            for (to, from) in &r.reads {
                let recs = live.log.read(*from, MESSAGE_RECORD_BYTES_MAX);
                match recs {
                    Ok(recs) => live.core.read_done(*to, *from, recs),
                    Err(e) => return self.kill(n, format!("reading its log: {e}")),
                }
                again = true;
            }
            for to in &r.snapshot_reads {
                match live.log.read_snapshot() {
                    Ok(Some((meta, bytes))) => live.core.snapshot_read(*to, meta, bytes),
                    Ok(None) => live.core.read_failed(*to),
                    Err(e) => return self.kill(n, format!("reading its snapshot: {e}")),
                }
                self.stats.snapshots_sent += 1;
                again = true;
            }
            if let Some(meta) = r.discard_staged {
                let _ = live.log.stager().and_then(|s| s.discard(meta));
            }
            if let Some(s) = r.stage_snapshot {
                self.nodes[n].to_stage = Some(s);
                // Writing a snapshot takes longer than a batch: the log
                // goes on meanwhile.
                let (lo, hi) = self.disk_write_us;
                let d = self.rng.range(lo, hi.saturating_mul(STAGE_SLOWER));
                let epoch = self.nodes[n].epoch;
                self.at(d, Event::Stage { node: n, epoch });
            }
            if let Some(b) = r.write {
                if b.snapshot.is_some() || b.install_staged.is_some() {
                    self.stats.snapshots_written += 1;
                }
                self.nodes[n].to_write.push_back(b);
                let (lo, hi) = self.disk_write_us;
                let d = self.rng.range(lo, hi);
                let epoch = self.nodes[n].epoch;
                self.at(d, Event::DiskWrite { node: n, epoch });
            }
            let promised = r
                .messages
                .iter()
                .any(|(_, m)| matches!(m, Message::Promise { .. }));
            for (to, m) in r.messages {
                self.send_peer(n, to, m);
            }
            let acked = r.replies.iter().any(|(_, res)| res.is_ok());
            for (token, result) in r.replies {
                self.answer(n, token, result);
            }
            if let Some((token, state)) = r.lent {
                self.run_lent(n, token, state);
                again = true;
            }
            if let Some(token) = r.held_chosen {
                self.held_chosen(n, token);
                again = true;
            }
            self.buggify(n, promised, acked);
            self.maybe_isolate(n);
            self.check_node(n);
            if !again {
                return;
            }
        }
    }

    /// Fault points at interesting moments (FoundationDB's "buggify"): a
    /// node that just promised sometimes crashes right away, before its
    /// disk caught up; a leader that just answered sometimes crashes or is
    /// cut off from its peers.
    fn buggify(&mut self, n: usize, promised: bool, acked: bool) {
        if !self.faults {
            return;
        }
        let odds = if promised {
            400_000
        } else if acked {
            20_000
        } else {
            0
        };
        if odds == 0 || !self.rng.chance(odds) {
            return;
        }
        if acked && self.rng.below(2) == 0 {
            // Cut off from its peers (what it sent them is lost).
            let id = self.net.partition(&[n], self.nodes.len());
            self.stats.partitions += 1;
            let d = self.rng.range(100_000, 1_000_000);
            self.at(d, Event::Heal(id));
            return;
        }
        let epoch = self.nodes[n].epoch;
        let d = self.rng.range(0, 300);
        self.at(d, Event::Crash { node: n, epoch });
    }

    pub(super) fn check_node(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        let Some(live) = node.live.as_mut() else {
            return;
        };
        let p = live.core.paxos();
        let chosen = p.chosen();
        let from = node.checked.max(p.snapshot_meta().slot);
        if chosen <= from {
            return;
        }
        let mut s = from.next();
        while s <= chosen {
            let rec = match p.record(s) {
                Some(r) => r.clone(),
                None => match live.log.read(s, 1) {
                    Ok(mut v) if !v.is_empty() => v.swap_remove(0),
                    _ => break,
                },
            };
            self.checker
                .chosen(n, s, rec.ballot, &rec.payload, self.now);
            s = s.next();
        }
        node.checked = Slot(s.0 - 1);
        if live.core.applied() == chosen {
            // A state with a part lent out (or what it ran not yet
            // proposed) is compared once that is settled.
            if let Some(state) = live.core.exact_state() {
                self.checker.state(n, chosen, state);
            }
        }
    }

    /// An address's place in the network: nodes first, then clients.
    pub(super) fn endpoint(&self, a: Addr) -> usize {
        match a {
            Addr::Node(n) => n,
            Addr::Client(c) => self.nodes.len() + c,
        }
    }

    /// The node that leads in the highest ballot, if any is up.
    pub(super) fn leader(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i]
                    .live
                    .as_ref()
                    .is_some_and(|l| l.core.is_leader())
            })
            .max_by_key(|&i| {
                self.nodes[i]
                    .live
                    .as_ref()
                    .map(|l| l.core.paxos().promised())
            })
    }

    fn send_peer(&mut self, from: usize, to: NodeId, m: Message) {
        match &m {
            Message::Promise { ballot } => self.checker.sent(from, *ballot, false),
            Message::Accepted {
                ballot,
                matched: Some(_),
                ..
            } => self.checker.sent(from, *ballot, true),
            _ => {}
        }
        let to = to.0 as usize - 1;
        for d in self.net.delays(&mut self.rng, from, to, true) {
            let msg = Msg::Peer(m.clone());
            self.at(
                d,
                Event::Deliver {
                    to: Addr::Node(to),
                    from: Addr::Node(from),
                    msg,
                },
            );
        }
    }

    /// Client links drop and delay but never duplicate (a real client's
    /// stream would not hand a request over twice).
    pub(super) fn send_client(&mut self, from: Addr, to: Addr, msg: Msg) {
        let (a, b) = (self.endpoint(from), self.endpoint(to));
        if let Some(d) = self.net.delays(&mut self.rng, a, b, false).first() {
            self.at(*d, Event::Deliver { to, from, msg });
        }
    }

    fn deliver(&mut self, to: Addr, from: Addr, msg: Msg) {
        if self.net.cut(self.endpoint(from), self.endpoint(to)) {
            self.net.dropped += 1;
            return;
        }
        match (to, msg) {
            (Addr::Node(n), Msg::Peer(m)) => {
                let Addr::Node(f) = from else { return };
                let from_id = self.nodes[f].id;
                if let Some(core) = self.nodes[n].core() {
                    core.step(from_id, m);
                    self.act(n);
                }
            }
            (Addr::Node(n), Msg::Request { op, request }) => {
                let Addr::Client(c) = from else { return };
                self.node_request(n, c, op, request);
            }
            (Addr::Client(c), Msg::Response { op, result }) => self.client_response(c, op, result),
            _ => {}
        }
    }
}
