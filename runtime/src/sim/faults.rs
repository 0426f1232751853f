//! Faults while a run is under way, and its end: heal everything, restart
//! every node, let every call finish, read everything back, and check.

use super::world::{Event, World};
use crate::lincheck::{self, OhmKvModel, Verdict};
use std::time::{Duration, Instant};

/// Virtual time the end of a run may take to answer every call once the
/// faults stop.
const DRAIN_US: u64 = 30_000_000;
/// Virtual time replicas get to converge after that.
const CONVERGE_US: u64 = 5_000_000;
/// Wall time the linearizability check of one run may take.
const LINCHECK_MS: u64 = 10_000;

impl World<'_> {
    /// Injects one random fault and schedules the next.
    pub(super) fn fault(&mut self) {
        if !self.faults {
            return;
        }
        let n = self.nodes.len();
        let node = self.rng.below(n as u64) as usize;
        match self.rng.below(100) {
            0..=19 if self.nodes[node].live.is_some() => self.crash(node),
            20..=29 if n > 1 => {
                let id = self.net.partition(&[node], n);
                self.stats.partitions += 1;
                let d = self.rng.range(20_000, 2_000_000);
                self.at(d, Event::Heal(id));
            }
            // The leader cut off, often briefly, with some of the clients
            // that only read, at a moment it has nothing in flight: the
            // moments around a change of leader are where ballots,
            // promises and leases matter.
            30..=54 if n > 1 => {
                if let Some(leader) = self.leader() {
                    self.isolate_when_quiet = Some((leader, self.now + 100_000));
                }
            }
            55..=69 if n > 2 => {
                let side: Vec<usize> = (0..n).filter(|_| self.rng.below(2) == 0).collect();
                let id = self.net.partition(&side, n);
                self.stats.partitions += 1;
                let d = self.rng.range(20_000, 2_000_000);
                self.at(d, Event::Heal(id));
            }
            70..=79 if n > 1 => {
                let other = (node + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                let id = self.net.cut_link(node, other);
                self.stats.partitions += 1;
                let d = self.rng.range(200_000, 3_000_000);
                self.at(d, Event::Heal(id));
            }
            80..=89 => {
                self.nodes[node].disk.fail_next_sync();
            }
            // The leader hands over to another replica (as the node does
            // to gather leaders on one node): its lease must end, and a
            // follower loyal to it may promise the new candidate.
            90..=96 if n > 1 => {
                if let Some(leader) = self.leader() {
                    let to = (leader + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                    let to = self.nodes[to].id;
                    if let Some(core) = self.nodes[leader].core() {
                        core.transfer_leadership(to);
                        self.stats.transfers += 1;
                    }
                    self.act(leader);
                }
            }
            _ => {}
        }
        let next = self.rng.range(100_000, 1_500_000);
        self.at(next, Event::Fault);
    }

    /// Cuts off the leader (with some reading clients) once it has nothing
    /// unchosen, or when the deadline passes.
    pub(super) fn maybe_isolate(&mut self, n: usize) {
        let Some((leader, deadline)) = self.isolate_when_quiet else {
            return;
        };
        if leader != n {
            return;
        }
        let quiet = self.nodes[n]
            .live
            .as_ref()
            .is_some_and(|l| l.core.applied() == l.core.paxos().chosen());
        if !quiet && self.now < deadline {
            return;
        }
        self.isolate_when_quiet = None;
        let nodes = self.nodes.len();
        // Often with the worst clocks the bound allows: the cut-off leader's
        // slow, everyone else's fast (its lease must end before they elect).
        if self.rng.below(2) == 0 {
            let rho = self.nodes_drift_max();
            for i in 0..nodes {
                let d = if i == leader { -rho } else { rho };
                self.nodes[i].set_drift(self.now, d);
            }
        }
        let mut side = vec![leader];
        for c in 0..self.clients.len() {
            if self.clients[c].reads_only && self.rng.below(4) != 0 {
                side.push(nodes + c);
            }
        }
        let id = self.net.partition(&side, nodes + self.clients.len());
        self.stats.partitions += 1;
        let d = self.rng.range(100_000, 1_000_000);
        self.at(d, Event::Heal(id));
    }

    /// The drift bound the cores are told, in parts per million.
    fn nodes_drift_max(&self) -> i64 {
        self.shared
            .consensus(crate::types::NodeId(1), 1)
            .clock_drift_ppm as i64
    }

    /// Stops the faults, lets the cluster recover, reads everything back
    /// and checks what the run must keep true.
    pub(super) fn finish(&mut self) {
        self.faults = false;
        self.isolate_when_quiet = None;
        self.net.heal_all();
        for i in 0..self.nodes.len() {
            if self.nodes[i].live.is_none() {
                self.start_node(i);
            }
        }
        // Calls under way finish (or time out); then the final reads.
        for c in &mut self.clients {
            c.done = true;
        }
        self.run_until(DRAIN_US, |w| w.clients_idle());
        self.final_reads();
        if !self.run_until(DRAIN_US, |w| w.clients_idle()) {
            let waiting: Vec<String> = self
                .clients
                .iter()
                .filter_map(|c| c.pending.as_ref().map(|p| p.request.procedure.to_string()))
                .collect();
            self.checker.violation(format!(
                "no progress: {} virtual seconds after the faults stopped, calls still wait: {}",
                DRAIN_US / 1_000_000,
                waiting.join(", ")
            ));
        }
        if !self.run_until(CONVERGE_US, |w| w.converged()) {
            let nodes = self.describe_nodes();
            self.checker.violation(format!(
                "replicas did not converge on one chosen slot after the faults stopped: {nodes}"
            ));
        }
        for i in 0..self.nodes.len() {
            self.check_node(i);
        }
        self.check_history();
    }

    /// Each node's role and watermarks, for a failure report.
    fn describe_nodes(&self) -> String {
        let show = |n: &super::node::SimNode| match &n.live {
            None => format!("{} down", n.id),
            Some(l) => {
                let p = l.core.paxos();
                format!(
                    "{} {:?} ballot {} leader {:?} chosen {} applied {} last {} snapshot {}",
                    n.id,
                    p.role(),
                    p.promised(),
                    p.leader(),
                    p.chosen(),
                    l.core.applied(),
                    p.last_slot(),
                    p.snapshot_meta().slot
                )
            }
        };
        self.nodes.iter().map(show).collect::<Vec<_>>().join("; ")
    }

    /// Every live replica has applied the same, highest chosen slot.
    fn converged(&self) -> bool {
        let slots: Vec<_> = self
            .nodes
            .iter()
            .filter(|n| n.dead.is_none())
            .map(|n| {
                n.live
                    .as_ref()
                    .map(|l| (l.core.paxos().chosen(), l.core.applied()))
            })
            .collect();
        let Some(Some(first)) = slots.first() else {
            return false;
        };
        slots
            .iter()
            .all(|s| s.is_some_and(|(c, a)| c == first.0 && a == c))
    }

    fn check_history(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(LINCHECK_MS);
        let started = Instant::now();
        let report = lincheck::check_detailed(&OhmKvModel, &self.history.ops, deadline);
        self.stats.lincheck_ms = started.elapsed().as_millis() as u64;
        match report.verdict {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable => {
                let key = report
                    .failure
                    .as_ref()
                    .and_then(|f| f.ops.first())
                    .and_then(|&i| self.history.ops.get(i))
                    .map_or("?".to_string(), |op| op.input.key.clone());
                self.checker.violation(format!(
                    "linearizability: the kv history of key {key} is not linearizable ({} operations)",
                    self.history.ops.len()
                ));
            }
            Verdict::Unknown => self.stats.lincheck_unknown = 1,
        }
    }
}
