//! The clients' side of a run: issuing calls, following leaders, timing
//! out, and recording what was answered (see `client`).

use super::client::{self, Client, Kind, Pending, Request};
use super::world::{Addr, Event, Msg, World};
use crate::lincheck::{OhmKvInput, OhmKvOutput};
use crate::partition::{CallError, CallResult};
use crate::types::Value;
use crate::wasm::{ProcError, ProcOutput};

/// kv and bank clients in a run.
const KV_CLIENTS: usize = 4;
const BANK_CLIENTS: usize = 2;
/// Pause between a client's calls.
const THINK_US: (u64, u64) = (2_000, 40_000);
/// Pause before resending a call a node turned away.
const RETRY_US: (u64, u64) = (1_000, 20_000);

impl World<'_> {
    pub(super) fn start_clients(&mut self) {
        let n = self.nodes.len() as u64;
        for i in 0..KV_CLIENTS + BANK_CLIENTS {
            let kind = if i < KV_CLIENTS { Kind::Kv } else { Kind::Bank };
            let process = self.new_process();
            let target = self.rng.below(n) as usize;
            self.clients.push(Client::new(
                kind,
                process,
                target,
                kind == Kind::Kv && i % 2 == 0,
            ));
            let d = self.rng.range(0, 10_000);
            self.at(d, Event::ClientStart(i));
        }
    }

    fn new_process(&mut self) -> u64 {
        self.next_process += 1;
        self.next_process
    }

    pub(super) fn client_start(&mut self, c: usize) {
        let cl = &mut self.clients[c];
        if cl.pending.is_some() {
            return;
        }
        let next = match cl.retry.take().or_else(|| cl.script.pop_front()) {
            Some(r) => r,
            None if cl.done => return,
            None => cl.next_request(&mut self.rng),
        };
        // Like a client that may connect anywhere: now and then a writer's
        // call goes to any node (which answers, or redirects to its
        // leader). Readers stay where they were answered.
        if !self.clients[c].reads_only && self.rng.below(4) == 0 {
            let n = self.nodes.len() as u64;
            self.clients[c].target = self.rng.below(n) as usize;
        }
        self.invoke(c, next.0, next.1);
    }

    /// Whether every client is idle and has nothing left to send.
    pub(super) fn clients_idle(&self) -> bool {
        self.clients
            .iter()
            .all(|c| c.pending.is_none() && c.retry.is_none() && c.script.is_empty())
    }

    /// Ends the workload with reads that must see everything acknowledged:
    /// every key, and the bank's invariant.
    pub(super) fn final_reads(&mut self) {
        if let Some(kv) = self.clients.iter().position(|c| c.kind == Kind::Kv) {
            for k in 0..client::KV_KEYS {
                let input = OhmKvInput::get(format!("k{k}"));
                let req = client::kv_request(&input);
                self.clients[kv].script.push_back((req, Some(input)));
            }
            self.at(0, Event::ClientStart(kv));
        }
        if let Some(b) = self.clients.iter().position(|c| c.kind == Kind::Bank) {
            let total = client::ACCOUNTS * client::OPENING_BALANCE;
            let req = Request {
                procedure: "check_invariant",
                args: vec![Value::Int(client::ACCOUNTS), Value::Int(total)],
            };
            self.clients[b].script.push_back((req, None));
            self.at(0, Event::ClientStart(b));
        }
    }

    /// Sends a call (a new invocation) and arms its timeout.
    pub(super) fn invoke(&mut self, c: usize, request: Request, kv: Option<OhmKvInput>) {
        let op = self.next_op;
        self.next_op += 1;
        let target = self.clients[c].target;
        self.clients[c].pending = Some(Pending {
            op,
            request: request.clone(),
            kv,
            call_us: self.now,
        });
        let msg = Msg::Request { op, request };
        self.send_client(Addr::Client(c), Addr::Node(target), msg);
        self.at(
            client::CALL_TIMEOUT_US,
            Event::ClientTimeout { client: c, op },
        );
    }

    pub(super) fn client_timeout(&mut self, c: usize, op: u64) {
        if self.clients[c].pending.as_ref().map(|p| p.op) != Some(op) {
            return;
        }
        self.unknown(c);
        // Try another node next.
        let n = self.nodes.len();
        if n > 1 {
            let old = self.clients[c].target;
            self.clients[c].target = (old + 1 + self.rng.below(n as u64 - 1) as usize) % n;
        }
    }

    /// The pending call may or may not have happened.
    fn unknown(&mut self, c: usize) {
        let Some(p) = self.clients[c].pending.take() else {
            return;
        };
        if let Some(input) = p.kv {
            let process = self.clients[c].process;
            self.history.unknown(process, input, p.call_us);
        }
        self.clients[c].process = self.new_process();
        self.next(c);
    }

    fn next(&mut self, c: usize) {
        let d = self.rng.range(THINK_US.0, THINK_US.1);
        self.at(d, Event::ClientStart(c));
    }

    pub(super) fn client_response(&mut self, c: usize, op: u64, result: CallResult) {
        let Some(p) = self.clients[c].pending.clone() else {
            return;
        };
        if p.op != op {
            return; // an answer to a call that already timed out
        }
        match result {
            Ok(out) => {
                self.clients[c].pending = None;
                self.record_ok(c, &p, &out);
                self.next(c);
            }
            Err(CallError::NotLeader { leader }) => {
                let n = self.nodes.len() as u64;
                self.clients[c].target = match leader {
                    Some(l) => l.0 as usize - 1,
                    None => self.rng.below(n) as usize,
                };
                self.resend(c, p);
            }
            Err(CallError::Overloaded(_)) => self.resend(c, p),
            Err(e) if e.outcome_unknown() => self.unknown(c),
            Err(CallError::Proc(ProcError::Aborted { .. })) if p.kv.is_none() => {
                // A transfer refused for want of funds: it changed nothing.
                self.clients[c].pending = None;
                self.stats.bank_aborted += 1;
                self.next(c);
            }
            Err(e) => {
                self.checker.violation(format!(
                    "client {c}: {} failed unexpectedly: {e}",
                    p.request.procedure
                ));
                self.clients[c].pending = None;
                self.next(c);
            }
        }
    }

    /// A call that did nothing is sent again as a new invocation.
    fn resend(&mut self, c: usize, p: Pending) {
        self.clients[c].pending = None;
        let d = self.rng.range(RETRY_US.0, RETRY_US.1);
        self.stats.retries += 1;
        // Re-invoked after the pause: a fresh call time, same request.
        self.clients[c].retry = Some((p.request, p.kv));
        self.at(d, Event::ClientStart(c));
    }

    fn record_ok(&mut self, c: usize, p: &Pending, out: &ProcOutput) {
        let value = match out {
            ProcOutput::Value(v) => v.clone(),
            ProcOutput::Rows(_) => Value::Null,
        };
        if let Some(input) = &p.kv {
            let process = self.clients[c].process;
            match OhmKvOutput::from_value(input, &value) {
                Some(o) => self
                    .history
                    .ok(process, input.clone(), p.call_us, o, self.now),
                None => self.checker.violation(format!(
                    "kv {} returned {value:?}, not what the procedure returns",
                    p.request.procedure
                )),
            }
            return;
        }
        self.stats.bank_ok += 1;
        if p.request.procedure == "total_balance" {
            let want = client::ACCOUNTS * client::OPENING_BALANCE;
            if value != Value::Int(want) {
                self.checker.violation(format!(
                    "bank: total_balance read {value:?}, but {want} exists"
                ));
            }
        }
    }
}
