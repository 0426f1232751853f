//! Simulated clients: each runs one operation at a time against the node it
//! believes leads (following `NotLeader` hints), and records what happened
//! as a history: the kv clients' histories are checked for
//! linearizability, the bank clients' totals against the money that exists.
//!
//! A call answered "not leader" or "overloaded" did nothing: the client
//! sends it again (a new invocation). A call whose outcome is unknown (a
//! timeout, leadership lost mid-call) is recorded as such, and the client
//! goes on under a new process id (Jepsen's rule: that process may still
//! be "inside" the old call).

use crate::lincheck::OhmKvInput;
use crate::rng::Rng;
use crate::types::Value;

/// Keys the kv clients share (few, so they contend).
pub const KV_KEYS: u64 = 5;
/// Bank accounts, and what each holds at the start.
pub const ACCOUNTS: i64 = 8;
pub const OPENING_BALANCE: i64 = 100;
/// A call without an answer after this long has an unknown outcome.
pub const CALL_TIMEOUT_US: u64 = 100_000;

/// What a client asks a node for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub procedure: &'static str,
    pub args: Vec<Value>,
}

/// What a kind of client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kv,
    Bank,
}

/// The operation a client is waiting on.
#[derive(Debug, Clone)]
pub struct Pending {
    pub op: u64,
    pub request: Request,
    /// For kv clients: what the history records.
    pub kv: Option<OhmKvInput>,
    /// When it was first invoked (a resend keeps it if nothing happened).
    pub call_us: u64,
}

pub struct Client {
    pub kind: Kind,
    /// The history's process id (changes after an unknown outcome).
    pub process: u64,
    /// The node it sends to.
    pub target: usize,
    pub pending: Option<Pending>,
    /// Values written so far (each put/cas writes a fresh value).
    pub written: u64,
    /// Only reads (else three calls in ten are reads).
    pub reads_only: bool,
    /// Stopped drawing new operations (the run is ending).
    pub done: bool,
    /// A call to send again (it did nothing the first time).
    pub retry: Option<(Request, Option<OhmKvInput>)>,
    /// Calls to make before anything else (the run's final reads).
    pub script: std::collections::VecDeque<(Request, Option<OhmKvInput>)>,
}

impl Client {
    pub fn new(kind: Kind, process: u64, target: usize, reads_only: bool) -> Client {
        Client {
            kind,
            process,
            target,
            pending: None,
            written: 0,
            reads_only,
            done: false,
            retry: None,
            script: Default::default(),
        }
    }

    /// Draws the next operation.
    pub fn next_request(&mut self, rng: &mut Rng) -> (Request, Option<OhmKvInput>) {
        match self.kind {
            Kind::Kv => {
                let key = format!("k{}", rng.below(KV_KEYS));
                let input = match (self.reads_only, rng.below(10)) {
                    (true, _) | (false, 0..=2) => OhmKvInput::get(key),
                    (false, 3..=5) => OhmKvInput::put(key, self.fresh_value()),
                    (false, 6..=8) => {
                        let expected = match rng.below(3) {
                            0 => None,
                            _ => Some(self.recent_value(rng)),
                        };
                        OhmKvInput::cas(key, expected, self.fresh_value())
                    }
                    _ => OhmKvInput::delete(key),
                };
                (kv_request(&input), Some(input))
            }
            Kind::Bank => {
                let a = rng.below(ACCOUNTS as u64) as i64;
                let request = match rng.below(10) {
                    0..=6 => {
                        let b = (a + 1 + rng.below(ACCOUNTS as u64 - 1) as i64) % ACCOUNTS;
                        let amount = 1 + rng.below(40) as i64;
                        Request {
                            procedure: "transfer",
                            args: vec![Value::Int(a), Value::Int(b), Value::Int(amount)],
                        }
                    }
                    7..=8 => Request {
                        procedure: "total_balance",
                        args: vec![],
                    },
                    _ => Request {
                        procedure: "balance",
                        args: vec![Value::Int(a)],
                    },
                };
                (request, None)
            }
        }
    }

    fn fresh_value(&mut self) -> Vec<u8> {
        self.written += 1;
        format!("p{}-{}", self.process, self.written).into_bytes()
    }

    /// A value this client may have written (for a cas that may succeed).
    fn recent_value(&self, rng: &mut Rng) -> Vec<u8> {
        let n = self.written.saturating_sub(rng.below(3)).max(1);
        format!("p{}-{}", self.process, n).into_bytes()
    }
}

/// The kv procedure call for a history input.
pub fn kv_request(input: &OhmKvInput) -> Request {
    let (procedure, args) = input.call();
    Request { procedure, args }
}
