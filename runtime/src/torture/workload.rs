//! The fault suite's workloads, each with the invariant it checks once the
//! faults are healed: kv registers (the history is linearizable, so no
//! acknowledged write is lost), bank transfers (money is conserved, seen
//! both while running and at the end) and voter (`results()` counts exactly
//! the vote rows, and every acknowledged vote is one of them).
//!
//! Owns: the clients' loops, what they record, and the final checks.
//! Must not: decide faults, or count an outcome it cannot know: a call
//! whose answer was lost is "unknown" (it may or may not have applied) and
//! is checked as such, never as done or not done.
//!
//! ```text
//!   kv clients ──get/put/cas/delete──▶ history ──lincheck (OhmKvModel)──▶ verdict
//!   bank clients ──transfer/total_balance──▶ every total read must be TOTAL
//!   voter clients ──vote (fresh phone each)──▶ acked[c] <= rows[c] <= acked[c] + unknown
//! ```

use super::Workload;
use crate::driver::cluster::ClusterClient;
use crate::driver::{CallResult, ClientConfig, ClientError};
use crate::lincheck::{
    self, OhmKvHistory as History, OhmKvInput, OhmKvModel, OhmKvOp, OhmKvOutput, Verdict,
};
use crate::proto::{ErrorCode, SqlResult};
use crate::rng::Rng;
use crate::types::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Clients of each workload.
pub const KV_CLIENTS: usize = 4;
pub const BANK_CLIENTS: usize = 2;
pub const VOTER_CLIENTS: usize = 2;
/// Keys the kv clients share (few, so they contend).
const KV_KEYS: u64 = 8;
/// Bank accounts, and what each starts with.
pub const ACCOUNTS: i64 = 8;
const OPENING_BALANCE: i64 = 1_000;
/// Contestants of the voter workload.
const CONTESTANTS: i64 = 3;
/// A call that has not answered after this long is given up on, its
/// outcome unknown (a call to a node cut from its peers may wait for the
/// heal).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between one client's calls: enough load to overlap the faults,
/// little enough that the history stays checkable.
const THINK: Duration = Duration::from_millis(5);
/// How long the linearizability search may take per schedule.
const LINCHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// Operations one kv history may hold: past it the kv clients stop, so
/// a long `--seconds` cannot outgrow what the checker can search.
const HISTORY_OPS_MAX: usize = 100_000;
/// Anomalies kept per workload (the rest are counted).
const ANOMALIES_MAX: usize = 20;

/// What became of one call.
#[derive(Debug)]
pub enum Outcome {
    Done(CallResult),
    /// Answered with an error that says nothing was applied.
    Failed(String),
    /// No answer, or one that leaves it open.
    Unknown(String),
}

/// A call with a deadline, sorted by what its answer proves.
pub async fn call(client: &ClusterClient, procedure: &str, args: Vec<Value>) -> Outcome {
    match tokio::time::timeout(CALL_TIMEOUT, client.call(procedure, args)).await {
        Err(_) => Outcome::Unknown(format!("no answer within {CALL_TIMEOUT:?}")),
        Ok(Ok(r)) => Outcome::Done(r),
        Ok(Err(ClientError::Server(e))) if nothing_applied(e.code) => {
            Outcome::Failed(e.to_string())
        }
        Ok(Err(e)) => Outcome::Unknown(e.to_string()),
    }
}

/// Error codes that say the call changed nothing. `unavailable` and
/// `internal` are not among them: the first may follow a write that
/// applied, and the second is a node bug whose effect the checks judge.
/// Nor are `not_leader`, `overloaded` (the client may have sent the call
/// before, its answer lost: this try did nothing, the first may have) and
/// `already_applied` (it was applied).
fn nothing_applied(code: ErrorCode) -> bool {
    use ErrorCode::*;
    matches!(
        code,
        BadRequest
            | Unauthenticated
            | AuthFailed
            | Forbidden
            | UnknownProcedure
            | BadArguments
            | Aborted
            | Sql
            | Limit
            | Trap
            | TooLarge
            | NotSupported
            | WrongPartition
            | QuotaExceeded
    )
}

/// Anomalies found by one workload: the first few in words, and a count;
/// apart, checks that could not be made (the cluster did not answer).
#[derive(Default)]
pub struct Anomalies {
    pub found: Vec<String>,
    pub count: u64,
    pub unchecked: Vec<String>,
}

impl Anomalies {
    /// A broken invariant.
    pub fn add(&mut self, what: String) {
        self.count += 1;
        if self.found.len() < ANOMALIES_MAX {
            self.found.push(what);
        }
    }

    /// A check that could not be made: a liveness failure, not proof of
    /// a broken invariant.
    pub fn unchecked(&mut self, what: String) {
        if self.unchecked.len() < ANOMALIES_MAX {
            self.unchecked.push(what);
        }
    }
}

/// What every client shares: when the run started, and when to stop.
pub struct Shared {
    pub start: Instant,
    pub stop: AtomicBool,
}

impl Shared {
    fn us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst)
    }
}

/// The running workloads: their clients' tasks and what they record.
pub struct Load {
    pub shared: Arc<Shared>,
    workloads: Vec<Workload>,
    history: Arc<Mutex<History>>,
    bank: Arc<Mutex<Bank>>,
    votes: Arc<Mutex<Votes>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the clients of `workloads`, each with its own cluster client
    /// and a seed drawn from `seed`.
    pub async fn start(
        cfg: &ClientConfig,
        addrs: &[String],
        seed: u64,
        workloads: &[Workload],
    ) -> anyhow::Result<Load> {
        let mut load = Load {
            shared: Arc::new(Shared {
                start: Instant::now(),
                stop: AtomicBool::new(false),
            }),
            workloads: workloads.to_vec(),
            history: Arc::default(),
            bank: Arc::default(),
            votes: Arc::default(),
            tasks: Vec::new(),
        };
        let mut seeds = Rng::new(seed);
        let clients = |w: Workload, n: usize| if workloads.contains(&w) { n } else { 0 };
        for p in 0..clients(Workload::Kv, KV_CLIENTS) {
            let c = ClusterClient::connect(cfg.clone(), addrs).await?;
            let (shared, history) = (load.shared.clone(), load.history.clone());
            let t = kv_client(p as u64, c, seeds.next_u64(), shared, history);
            load.tasks.push(tokio::spawn(t));
        }
        for _ in 0..clients(Workload::Bank, BANK_CLIENTS) {
            let c = ClusterClient::connect(cfg.clone(), addrs).await?;
            let (shared, bank) = (load.shared.clone(), load.bank.clone());
            load.tasks
                .push(tokio::spawn(bank_client(c, seeds.next_u64(), shared, bank)));
        }
        for n in 0..clients(Workload::Voter, VOTER_CLIENTS) {
            let c = ClusterClient::connect(cfg.clone(), addrs).await?;
            let (shared, votes) = (load.shared.clone(), load.votes.clone());
            let t = voter_client(n, c, seeds.next_u64(), shared, votes);
            load.tasks.push(tokio::spawn(t));
        }
        Ok(load)
    }

    /// Tells the clients to stop after the calls they have in flight
    /// (each ends within `CALL_TIMEOUT`).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for the clients, then checks each workload: a summary line and
    /// what it found, per workload.
    pub async fn check(mut self, checker: &ClusterClient) -> Vec<(String, Anomalies)> {
        for t in std::mem::take(&mut self.tasks) {
            if let Err(e) = t.await {
                let mut a = Anomalies::default();
                a.unchecked(format!("a workload client failed: {e}"));
                return vec![("workloads: NOT CHECKED".into(), a)];
            }
        }
        let mut out = Vec::new();
        for w in &self.workloads {
            out.push(match w {
                Workload::Kv => kv_check(checker, &self.shared, &self.history).await,
                Workload::Bank => bank_check(checker, &self.bank).await,
                Workload::Voter => voter_check(checker, &self.votes).await,
            });
        }
        out
    }
}

impl Drop for Load {
    /// A schedule that ends early (an error) leaves no client running.
    fn drop(&mut self) {
        self.stop();
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Creates the bank's accounts and the voter's contestants.
pub async fn set_up(client: &ClusterClient) -> anyhow::Result<()> {
    for id in 0..ACCOUNTS {
        let args = vec![Value::Int(id), Value::Int(OPENING_BALANCE)];
        client.call("open_account", args).await?;
    }
    let names = (0..CONTESTANTS)
        .map(|c| format!("c{c}"))
        .collect::<Vec<_>>()
        .join(",");
    let args = vec![Value::Int(CONTESTANTS), Value::Text(names.into())];
    client.call("initialize", args).await?;
    Ok(())
}

/// The kv registers: each client draws gets, puts, compare-and-sets and
/// deletes on a few shared keys and records each with its times.
pub async fn kv_client(
    process: u64,
    client: ClusterClient,
    seed: u64,
    shared: Arc<Shared>,
    history: Arc<Mutex<History>>,
) {
    let mut rng = Rng::new(seed);
    let mut written = 0u64;
    while shared.running() && lock(&history).ops.len() < HISTORY_OPS_MAX {
        let key = format!("k{}", rng.below(KV_KEYS));
        let value = |n: u64| format!("p{process}-{n}").into_bytes();
        let input = match rng.below(10) {
            0..=3 => OhmKvInput::get(key),
            4..=6 => {
                written += 1;
                OhmKvInput::put(key, value(written))
            }
            7..=8 => {
                // A value this client may have written, so some succeed.
                let expected = match rng.below(3) {
                    0 => None,
                    n => Some(value(written.saturating_sub(n - 1).max(1))),
                };
                written += 1;
                OhmKvInput::cas(key, expected, value(written))
            }
            _ => OhmKvInput::delete(key),
        };
        let (procedure, args) = input.call();
        let started = shared.us();
        let outcome = call(&client, procedure, args).await;
        let ended = shared.us();
        record(&history, process, input, started, ended, outcome);
        tokio::time::sleep(THINK).await;
    }
}

fn record(
    history: &Mutex<History>,
    process: u64,
    input: OhmKvInput,
    call: u64,
    ret: u64,
    outcome: Outcome,
) {
    let mut h = lock(history);
    match outcome {
        Outcome::Done(CallResult::Value(v)) => match OhmKvOutput::from_value(&input, &v) {
            Some(out) => h.ok(process, input, call, out, ret),
            // A value of the wrong shape: recorded as impossible, so the
            // checker reports the history.
            None => h.ok(process, input, call, OhmKvOutput::Put(-1), ret),
        },
        Outcome::Done(CallResult::Rows(_)) => h.ok(process, input, call, OhmKvOutput::Put(-1), ret),
        Outcome::Failed(_) => {}
        Outcome::Unknown(_) => h.unknown(process, input, call),
    }
}

/// After the heal: a get of every key (so a lost write shows even when no
/// client read it again), then the search.
pub async fn kv_check(
    client: &ClusterClient,
    shared: &Shared,
    history: &Mutex<History>,
) -> (String, Anomalies) {
    let mut anomalies = Anomalies::default();
    for k in 0..KV_KEYS {
        let input = OhmKvInput::get(format!("k{k}"));
        let (procedure, args) = input.call();
        let started = shared.us();
        match call(client, procedure, args).await {
            o @ Outcome::Done(_) => record(history, u64::MAX, input, started, shared.us(), o),
            Outcome::Failed(e) | Outcome::Unknown(e) => anomalies.unchecked(format!(
                "liveness: kv: the final read of k{k} failed after the heal: {e}"
            )),
        }
    }
    let h = lock(history);
    let started = Instant::now();
    let report = lincheck::check_detailed(&OhmKvModel, &h.ops, started + LINCHECK_TIMEOUT);
    let took = started.elapsed().as_secs_f64();
    let verdict = match report.verdict {
        Verdict::Linearizable => "linearizable".to_string(),
        Verdict::Unknown => {
            anomalies.unchecked(format!(
                "kv: the linearizability search did not finish within {LINCHECK_TIMEOUT:?} \
                 ({} operations)",
                h.ops.len()
            ));
            format!("NOT decided within {LINCHECK_TIMEOUT:?}")
        }
        Verdict::NotLinearizable => {
            let ops = report
                .failure
                .as_ref()
                .map(|f| f.ops.clone())
                .unwrap_or_default();
            let key = ops
                .first()
                .and_then(|&i| h.ops.get(i))
                .map_or("?".into(), |op| op.input.key.clone());
            let mut lines = String::new();
            for &i in ops.iter().take(12) {
                if let Some(op) = h.ops.get(i) {
                    lines += &format!("\n      {}", describe(op));
                }
            }
            anomalies.add(format!(
                "kv: the history of key {key} is not linearizable (an acknowledged write lost, \
                 or a stale read); its operations:{lines}"
            ));
            "NOT linearizable".into()
        }
    };
    let summary = format!(
        "kv {} ok, {} unknown: {verdict} ({took:.1} s)",
        h.ok, h.unknown
    );
    (summary, anomalies)
}

fn describe(op: &lincheck::Operation<OhmKvInput, OhmKvOutput>) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let what = match &op.input.op {
        OhmKvOp::Get => "get".to_string(),
        OhmKvOp::Put { value } => format!("put {}", text(value)),
        OhmKvOp::Cas { expected, new } => format!(
            "cas {} -> {}",
            expected.as_deref().map_or("absent".into(), text),
            text(new)
        ),
        OhmKvOp::Delete => "delete".into(),
    };
    let ret = if op.ret == lincheck::RET_UNKNOWN {
        "?".to_string()
    } else {
        format!("{:.3}", op.ret as f64 / 1e6)
    };
    let client = if op.client == u64::MAX {
        "final".to_string()
    } else {
        op.client.to_string()
    };
    format!(
        "client {client} [{:.3} s .. {ret} s] {what} {} => {:?}",
        op.call as f64 / 1e6,
        op.input.key,
        op.output
    )
}

/// What the bank clients saw.
#[derive(Default)]
pub struct Bank {
    pub transfers: u64,
    pub unknown: u64,
    pub totals_read: u64,
    pub anomalies: Anomalies,
}

/// Transfers between the accounts, and reads of the total, which must
/// always be the money the accounts opened with.
pub async fn bank_client(
    client: ClusterClient,
    seed: u64,
    shared: Arc<Shared>,
    bank: Arc<Mutex<Bank>>,
) {
    let mut rng = Rng::new(seed);
    let total = ACCOUNTS * OPENING_BALANCE;
    while shared.running() {
        if rng.below(5) == 0 {
            match call(&client, "total_balance", vec![]).await {
                Outcome::Done(CallResult::Value(Value::Int(t))) => {
                    let mut b = lock(&bank);
                    b.totals_read += 1;
                    if t != total {
                        let at = shared.start.elapsed().as_secs_f64();
                        b.anomalies.add(format!(
                            "bank: total_balance() read {t} at {at:.3} s (from {}), not {total}",
                            client.current()
                        ));
                    }
                }
                Outcome::Done(other) => lock(&bank)
                    .anomalies
                    .add(format!("bank: total_balance() answered {other:?}")),
                Outcome::Failed(_) | Outcome::Unknown(_) => {}
            }
        } else {
            let from = rng.below(ACCOUNTS as u64) as i64;
            let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1) as i64) % ACCOUNTS;
            let amount = 1 + rng.below(50) as i64;
            let args = vec![Value::Int(from), Value::Int(to), Value::Int(amount)];
            match call(&client, "transfer", args).await {
                Outcome::Done(_) => lock(&bank).transfers += 1,
                Outcome::Unknown(_) => lock(&bank).unknown += 1,
                Outcome::Failed(_) => {}
            }
        }
        tokio::time::sleep(THINK).await;
    }
}

/// After the heal: `check_invariant` (every account there, none negative,
/// the total kept).
pub async fn bank_check(client: &ClusterClient, bank: &Mutex<Bank>) -> (String, Anomalies) {
    let total = ACCOUNTS * OPENING_BALANCE;
    let args = vec![Value::Int(ACCOUNTS), Value::Int(total)];
    let outcome = call(client, "check_invariant", args).await;
    let mut b = lock(bank);
    let verdict = match outcome {
        Outcome::Done(CallResult::Value(Value::Int(t))) if t == total => "total kept".to_string(),
        Outcome::Unknown(e) => {
            b.anomalies.unchecked(format!(
                "liveness: bank: check_invariant had no answer after the heal: {e}"
            ));
            "NOT CHECKED".into()
        }
        other => {
            b.anomalies.add(format!(
                "bank: check_invariant({ACCOUNTS}, {total}) after the heal: {other:?}"
            ));
            "INVARIANT BROKEN".into()
        }
    };
    let summary = format!(
        "bank {} transfers, {} unknown, {} totals read: {verdict}",
        b.transfers, b.unknown, b.totals_read
    );
    (summary, std::mem::take(&mut b.anomalies))
}

/// What the voter clients saw.
#[derive(Default)]
pub struct Votes {
    /// Acknowledged (accepted) votes per contestant.
    pub acked: BTreeMap<i64, u64>,
    pub unknown: u64,
    pub anomalies: Anomalies,
}

/// Votes from fresh phone numbers (one vote each, so every vote is
/// accepted), for contestants 1..=CONTESTANTS.
pub async fn voter_client(
    n: usize,
    client: ClusterClient,
    seed: u64,
    shared: Arc<Shared>,
    votes: Arc<Mutex<Votes>>,
) {
    let mut rng = Rng::new(seed);
    let mut phone = 2_025_550_000 + (n as i64) * 1_000_000;
    while shared.running() {
        phone += 1;
        let contestant = 1 + rng.below(CONTESTANTS as u64) as i64;
        let args = vec![Value::Int(phone), Value::Int(contestant), Value::Int(10)];
        match call(&client, "vote", args).await {
            Outcome::Done(CallResult::Value(Value::Int(ohm_voter::VOTE_ACCEPTED))) => {
                *lock(&votes).acked.entry(contestant).or_default() += 1
            }
            Outcome::Done(other) => lock(&votes).anomalies.add(format!(
                "voter: vote({phone}, {contestant}) answered {other:?}"
            )),
            Outcome::Unknown(_) => lock(&votes).unknown += 1,
            Outcome::Failed(_) => {}
        }
        tokio::time::sleep(THINK).await;
    }
}

/// After the heal: `results()` against the vote rows, and the rows
/// against what was acknowledged.
pub async fn voter_check(client: &ClusterClient, votes: &Mutex<Votes>) -> (String, Anomalies) {
    let results = call(client, "results", vec![]).await;
    let count = "SELECT contestant_number, COUNT(*) FROM votes GROUP BY contestant_number";
    let rows = match tokio::time::timeout(CALL_TIMEOUT, client.sql(count)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    };
    let mut v = lock(votes);
    let mut anomalies = std::mem::take(&mut v.anomalies);
    let (Outcome::Done(CallResult::Rows(results)), Ok(rows)) = (results, rows) else {
        anomalies.unchecked(
            "liveness: voter: results() or the count of vote rows failed after the heal".into(),
        );
        return ("voter: NOT CHECKED".into(), anomalies);
    };
    // results(): (contestant_name, contestant_number, total_votes).
    let by_results: BTreeMap<i64, i64> = results
        .rows
        .iter()
        .filter_map(|r| match (r.get(1), r.get(2)) {
            (Some(Value::Int(c)), Some(Value::Int(n))) => Some((*c, *n)),
            _ => None,
        })
        .collect();
    let by_rows: BTreeMap<i64, i64> = match rows.first() {
        Some(SqlResult::Rows(r)) => r
            .rows
            .iter()
            .filter_map(|r| match (r.first(), r.get(1)) {
                (Some(Value::Int(c)), Some(Value::Int(n))) => Some((*c, *n)),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    let nonzero = |m: &BTreeMap<i64, i64>| -> BTreeMap<i64, i64> {
        m.iter()
            .filter(|(_, n)| **n != 0)
            .map(|(c, n)| (*c, *n))
            .collect()
    };
    if nonzero(&by_results) != nonzero(&by_rows) {
        anomalies.add(format!(
            "voter: results() counts {by_results:?} but the vote rows are {by_rows:?}"
        ));
    }
    for c in 1..=CONTESTANTS {
        let acked = v.acked.get(&c).copied().unwrap_or(0) as i64;
        let rows = by_rows.get(&c).copied().unwrap_or(0);
        if rows < acked {
            anomalies.add(format!(
                "voter: contestant {c} has {rows} vote rows but {acked} votes were acknowledged \
                 (acknowledged votes lost)"
            ));
        }
        if rows > acked + v.unknown as i64 {
            anomalies.add(format!(
                "voter: contestant {c} has {rows} vote rows, more than the {acked} acknowledged \
                 and {} of unknown outcome",
                v.unknown
            ));
        }
    }
    let acked: u64 = v.acked.values().sum();
    let total: i64 = by_rows.values().sum();
    let verdict = if anomalies.count == 0 {
        "results agree"
    } else {
        "MISMATCH"
    };
    let summary = format!(
        "voter {acked} acked, {} unknown, {total} rows: {verdict}",
        v.unknown
    );
    (summary, anomalies)
}
