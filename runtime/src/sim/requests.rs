//! What the simulated nodes serve: clients' calls (single-partition ones
//! straight to the core, multi-partition ones through a hold on the one
//! partition, as the node's coordinator does), and the simulator's own
//! set-up steps (DDL, deploys, the bank's accounts), run the same way.

use super::client::Request;
use super::node::{MultiCall, SimLease, Token};
use super::world::{Addr, Event, Msg, World, TENANT};
use super::Shared;
use crate::durability::{self, Entry, MultiBody};
use crate::partition::{CallError, CallResult, LentCall, PartitionState};
use crate::types::{TenantId, Value};
use crate::wasm::{ProcOutput, TxnContext};
use std::collections::VecDeque;
use std::sync::Arc;

/// One in this many single-partition calls that find no part lent lends
/// the tenant's part (its calls then run one per `LentRun` event).
const LEND_ONE_IN: u64 = 8;
/// The delay before a lent part's next call runs (µs, uniform).
const LENT_RUN_US: (u64, u64) = (100, 5_000);

/// A set-up step, run on the leader through the holding path.
pub(super) enum SetupStep {
    /// DDL, replayed as text.
    Ddl(&'static str),
    /// A write, replayed as its write-set.
    Insert(String),
    Deploy(&'static str, Arc<[u8]>),
}

impl World<'_> {
    pub(super) fn node_request(&mut self, n: usize, c: usize, op: u64, request: Request) {
        if self.nodes[n].live.is_none() {
            return;
        }
        if self.shared.multi.contains(request.procedure) {
            self.nodes[n].multi_queue.push_back(MultiCall {
                client: c,
                op,
                request,
                result: None,
            });
            return self.start_multi(n);
        }
        let token = Token::Call { client: c, op };
        let lend = self.rng.range(0, LEND_ONE_IN) == 0;
        let Some(live) = self.nodes[n].live.as_mut() else {
            return;
        };
        let core = &mut live.core;
        if live.lease.is_none() && lend {
            // As the node lends a heavy tenant's part to a runner.
            live.lease = core.lend_part(TENANT).map(|lease| SimLease {
                lease,
                jobs: VecDeque::new(),
            });
            if live.lease.is_some() {
                self.stats.leases += 1;
                self.lent_run_later(n);
            }
        }
        let Some(live) = self.nodes[n].live.as_mut() else {
            return;
        };
        match &mut live.lease {
            Some(l) => {
                let call = LentCall {
                    procedure: request.procedure.to_string(),
                    args: request.args,
                    key: None,
                    timeout_ms: None,
                    txn: live.core.lent_txn(),
                };
                l.jobs.push_back((token, call));
            }
            None => {
                let procedure = request.procedure.to_string();
                live.core
                    .call(token, TENANT, procedure, request.args, (None, None));
                self.act(n);
            }
        }
    }

    fn lent_run_later(&mut self, n: usize) {
        let d = self.rng.range(LENT_RUN_US.0, LENT_RUN_US.1);
        let epoch = self.nodes[n].epoch;
        self.at(d, Event::LentRun { node: n, epoch });
    }

    /// A lent part runs its next call; with none left, or once the core
    /// wants it (a hold, a snapshot) or it went stale, it goes home and
    /// the calls it did not run go to the core, in order.
    pub(super) fn lent_run(&mut self, n: usize, epoch: u64) {
        if self.nodes[n].epoch != epoch {
            return;
        }
        let Some(live) = self.nodes[n].live.as_mut() else {
            return;
        };
        let Some(l) = live.lease.as_mut() else {
            return;
        };
        let core = &mut live.core;
        let stale = l.lease.generation() != core.part_generation() || !core.is_leader();
        if l.jobs.is_empty() || core.wants_parts_home() || stale {
            let Some(SimLease { lease, jobs }) = live.lease.take() else {
                return;
            };
            core.part_home(lease);
            for (token, call) in jobs {
                core.call(token, TENANT, call.procedure, call.args, (call.key, None));
            }
            return self.act(n);
        }
        if let Some((token, call)) = l.jobs.pop_front() {
            let ran = l.lease.run(&call);
            core.lent_ran(token, ran);
        }
        self.act(n);
        self.lent_run_later(n);
    }

    fn start_multi(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        if node.multi.is_some() {
            return;
        }
        let Some(m) = node.multi_queue.pop_front() else {
            return;
        };
        let token = Token::Multi {
            client: m.client,
            op: m.op,
        };
        node.multi = Some(m);
        // Half of them on the tenant's shell alone (`hold_for`), as the
        // node's coordinator holds for one tenant's work.
        let scope = self.rng.next_u64().is_multiple_of(2).then_some(TENANT);
        if let Some(core) = self.nodes[n].core() {
            core.hold_for(token, scope);
        }
        self.act(n);
    }

    /// The core lent its state: run the held work and hand it back.
    pub(super) fn run_lent(&mut self, n: usize, token: Token, mut state: Box<PartitionState>) {
        let (result, entry) = match token {
            Token::Setup => {
                // Which steps the state already has (a step whose answer
                // was lost with a leader may still have been chosen).
                let next = state.mp_txn_max as usize;
                let entry = self
                    .setup
                    .get(next)
                    .map(|step| setup_entry(&mut state, step));
                (Ok(ProcOutput::Value(Value::Null)), entry)
            }
            Token::Multi { .. } => {
                let now = self.nodes[n].clock(self.now);
                let txn = TxnContext {
                    timestamp_us: now.wall_us,
                    seed: self.rng.next_u64(),
                };
                let request = self.nodes[n].multi.as_ref().map(|m| m.request.clone());
                match request {
                    Some(req) => run_multi(&mut state, self.shared, &req, txn),
                    None => (Err(CallError::OutcomeUnknown), None),
                }
            }
            Token::Call { .. } => (Err(CallError::OutcomeUnknown), None),
        };
        if let Some(m) = &mut self.nodes[n].multi {
            m.result = Some(result);
        }
        if let Some(core) = self.nodes[n].core() {
            core.release(token, state, entry, false);
        }
    }

    pub(super) fn held_chosen(&mut self, n: usize, token: Token) {
        if let Some(core) = self.nodes[n].core() {
            core.resume();
        }
        if let Token::Multi { client, op } = token {
            let result = self.nodes[n]
                .multi
                .take()
                .and_then(|m| m.result)
                .unwrap_or(Err(CallError::OutcomeUnknown));
            self.respond(n, client, op, result);
            self.start_multi(n);
        } else if self.setup_done(n) {
            self.setup_node = None;
        } else if let Some(core) = self.nodes[n].core() {
            core.hold(Token::Setup);
        }
    }

    pub(super) fn answer(&mut self, n: usize, token: Token, result: CallResult) {
        match token {
            Token::Call { client, op } => self.respond(n, client, op, result),
            Token::Multi { client, op } => {
                // Refused or lost before it ran.
                self.nodes[n].multi = None;
                self.respond(n, client, op, result);
                self.start_multi(n);
            }
            // Refused (leadership moved): the boot loop asks again.
            Token::Setup => self.setup_node = None,
        }
    }

    pub(super) fn respond(&mut self, n: usize, client: usize, op: u64, result: CallResult) {
        if result.is_ok() {
            self.check_read(n, client, op);
        }
        let msg = Msg::Response { op, result };
        self.send_client(Addr::Node(n), Addr::Client(client), msg);
    }

    /// A read answered: it must not have been invoked after a higher
    /// ballot chose something.
    fn check_read(&mut self, n: usize, client: usize, op: u64) {
        let Some(p) = self.clients.get(client).and_then(|c| c.pending.as_ref()) else {
            return;
        };
        let read = matches!(p.request.procedure, "get" | "balance" | "total_balance");
        if p.op != op || !read {
            return;
        }
        let call_us = p.call_us;
        if let Some(l) = &self.nodes[n].live {
            let ballot = l.core.paxos().promised();
            self.checker.read_answered(n, ballot, call_us);
        }
    }

    /// Runs the set-up steps on whichever node leads (no faults yet).
    pub(super) fn boot(&mut self) -> bool {
        let end = self.now + 20_000_000;
        while self.now < end {
            if (0..self.nodes.len()).any(|i| self.setup_done(i)) {
                return true;
            }
            if self.setup_node.is_none() {
                let leader = (0..self.nodes.len()).find(|&i| {
                    self.nodes[i].live.as_ref().is_some_and(|l| {
                        l.core.is_leader() && l.core.paxos().chosen() == l.core.paxos().last_slot()
                    })
                });
                if let Some(l) = leader {
                    self.setup_node = Some(l);
                    if let Some(core) = self.nodes[l].core() {
                        core.hold(Token::Setup);
                    }
                    self.act(l);
                }
            }
            if !self.step() {
                return false;
            }
        }
        false
    }

    /// Whether node `n` leads, with every set-up step chosen in its state.
    fn setup_done(&self, n: usize) -> bool {
        self.nodes[n].live.as_ref().is_some_and(|l| {
            let p = l.core.paxos();
            l.core.is_leader()
                && p.chosen() == p.last_slot()
                && l.core.applied() == p.chosen()
                && l.core
                    .state()
                    .is_some_and(|s| s.mp_txn_max as usize >= self.setup.len())
        })
    }
}

/// Applies a set-up step to a held state; its entry.
pub(super) fn setup_entry(state: &mut PartitionState, step: &SetupStep) -> Vec<u8> {
    setup_entry_for(state, TENANT, step)
}

/// `setup_entry` for tenant `tenant`.
pub(super) fn setup_entry_for(
    state: &mut PartitionState,
    tenant: TenantId,
    step: &SetupStep,
) -> Vec<u8> {
    let body = match step {
        SetupStep::Insert(sql) => {
            let engine = &mut state.tenant(tenant).engine;
            let ws = engine
                .begin()
                .and_then(|()| engine.execute(sql).map(|_| ()))
                .and_then(|()| engine.commit())
                .unwrap_or_else(|e| panic!("set-up statement {sql}: {e}"));
            MultiBody::Writes(durability::LoggedWrites::from_write_set(
                engine.database(),
                &ws,
            ))
        }
        SetupStep::Ddl(sql) => {
            state
                .tenant(tenant)
                .engine
                .execute(sql)
                .unwrap_or_else(|e| panic!("set-up statement {sql}: {e}"));
            MultiBody::Ddl(sql.to_string())
        }
        SetupStep::Deploy(name, wasm) => {
            state
                .tenant(tenant)
                .deploy(name, wasm.clone())
                .unwrap_or_else(|e| panic!("set-up deploy {name}: {e}"));
            MultiBody::Deploy {
                name: name.to_string(),
                wasm: wasm.to_vec(),
            }
        }
    };
    encode_multi_for(state, tenant, body)
}

fn encode_multi(state: &mut PartitionState, body: MultiBody) -> Vec<u8> {
    encode_multi_for(state, TENANT, body)
}

fn encode_multi_for(state: &mut PartitionState, tenant: TenantId, body: MultiBody) -> Vec<u8> {
    let txn = state.mp_txn_max + 1;
    state.mp_txn_max = txn;
    let mut out = Vec::new();
    durability::encode_entry(&Entry::Multi { txn, tenant, body }, &mut out)
        .expect("the simulator's entries are small");
    out
}

/// A multi-partition bank procedure on the one held partition.
fn run_multi(
    state: &mut Box<PartitionState>,
    shared: &Shared,
    req: &Request,
    txn: TxnContext,
) -> (CallResult, Option<Vec<u8>>) {
    let held = std::slice::from_mut(state);
    let ran = crate::txn::call_procedure(
        held,
        (TENANT, &crate::catalog::Quota::default()),
        "bank",
        &shared.bank_words,
        req.procedure,
        &req.args,
        txn,
    );
    match ran {
        Ok((out, shares)) => {
            let entry = shares
                .into_iter()
                .next()
                .filter(|s| !s.ops.is_empty())
                .map(|s| encode_multi(state, MultiBody::Writes(s)));
            (Ok(out), entry)
        }
        Err(crate::txn::TxnError::Proc(e)) => (Err(CallError::Proc(e)), None),
        Err(e) => (
            Err(CallError::Internal {
                procedure: format!("{} ({e})", req.procedure),
            }),
            None,
        ),
    }
}
