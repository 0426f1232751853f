//! `ohm bench voter`: the voter workload (WORKLOADS.md) over QUIC against
//! an Ohm node in a separate process, and in the same run against
//! PostgreSQL on loopback (`synchronous_commit` on, then off), with the
//! same connections, calls in flight and vote stream. Owns the run's
//! orchestration, the Ohm side (starting a node unless `--addr`), the
//! invariants and the report. The load itself is `load.rs`; PostgreSQL's
//! server and functions are `postgres.rs`.
//!
//! ```text
//!   ohm serve --demo (child) <--QUIC-- C x K tasks --tokio-postgres--> postgres (child)
//!                                   |
//!            per-second samples, histogram, outcomes --> table + invariants
//! ```

use super::load::{run_load, LoadReport, LoadShape, Outcomes, VoteFn};
use super::postgres;
use crate::cli::{ConnectArgs, TokenRole};
use crate::driver::cluster::ClusterClient;
use crate::driver::{CallResult, Client, ClientConfig, ClientError, Trust};
use crate::proto::SqlResult;
use crate::types::Value;
use anyhow::{bail, Context};
use clap::ValueEnum;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod cluster;
pub mod node;

/// The classic demo's contestants.
pub const CONTESTANT_NAMES: &str =
    "Edwina Burnam,Tabatha Gehling,Kelly Clauss,Jessie Alloway,Alana Bregman,Jessie Eichman";
/// Votes one phone may cast.
pub const MAX_VOTES: i64 = 2;
/// Warm-up and measured span of each runtime-flavour trial (`--runtime auto`).
const TRIAL_WARMUP: Duration = Duration::from_millis(500);
const TRIAL_MEASURED: Duration = Duration::from_secs(1);
/// Mixed into the seed of PostgreSQL's `synchronous_commit=off` phase.
const PG_OFF_SEED_XOR: u64 = 0x0FF0_0FF0;

/// The client's tokio runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeChoice {
    /// Try both for a second each and keep the faster.
    Auto,
    Current,
    Multi,
}

/// Durability of the node the bench starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    Sync,
    Async,
}

/// Flags of `ohm bench voter`.
#[derive(Debug, Clone, clap::Args)]
pub struct VoterArgs {
    /// Client connections per side.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Calls outstanding on each connection.
    #[arg(long, default_value_t = 256)]
    pub in_flight: usize,
    /// Measured seconds per side (after the warm-up).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Unmeasured seconds before.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Durability of the node started (ignored with --addr).
    #[arg(long, value_enum, default_value_t = Durability::Sync)]
    pub durability: Durability,
    /// Partitions of the node started (default: the node's, one per core).
    #[arg(long)]
    pub partitions: Option<usize>,
    /// The client's tokio runtime flavour.
    #[arg(long, value_enum, default_value_t = RuntimeChoice::Auto)]
    pub runtime: RuntimeChoice,
    /// Seed of the vote stream (the same on both sides).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Use this node instead of starting one (with --token/--ca/--fingerprint/--data).
    #[arg(long)]
    pub addr: Option<String>,
    #[arg(long, env = "OHM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    #[arg(long, value_name = "sha256:HEX")]
    pub fingerprint: Option<String>,
    #[arg(long, value_name = "DIR", default_value = "ohm-data")]
    pub data: PathBuf,
    /// Use this PostgreSQL instead of starting one (its voter tables are replaced).
    #[arg(long, value_name = "DSN")]
    pub pg_dsn: Option<String>,
    /// Skip PostgreSQL.
    #[arg(long)]
    pub no_pg: bool,
    /// Skip Ohm (measure PostgreSQL only).
    #[arg(long, hide = true)]
    pub no_ohm: bool,
    /// Measure a local cluster of this many node processes (every
    /// partition replicated on each, RF = N) and, in the same run, a
    /// cluster of one (RF = 1), both through the cluster client; prints
    /// `ratio rfN/rf1`. PostgreSQL is not run. Partitions: --partitions,
    /// else 4.
    #[arg(long, conflicts_with_all = ["addr", "pg_dsn", "no_ohm"])]
    pub nodes: Option<u32>,
}

/// What the invariants are checked against, read back from a database.
#[derive(Debug, Clone, Default)]
pub struct Tallies {
    /// `results()`: (contestant_number, total_votes).
    pub results: Vec<(i64, i64)>,
    /// Phones with more than `MAX_VOTES` votes.
    pub phones_over_limit: u64,
    /// `SELECT contestant_number, COUNT(*) FROM votes GROUP BY 1`.
    pub group_by: Vec<(i64, i64)>,
}

impl Tallies {
    /// Votes counted, by `results()`.
    pub fn votes(&self) -> i64 {
        self.results.iter().map(|r| r.1).sum()
    }
}

/// Checks the workload's invariants; Ok carries a one-line summary.
/// `before`: the votes `results()` counted before the run (a node given by
/// `--addr`, such as the demo's, keeps earlier runs' votes).
pub fn check_invariants(
    accepted: u64,
    unknown: u64,
    before: i64,
    t: &Tallies,
) -> Result<String, String> {
    let sum = t.votes() - before;
    // A vote that failed (a connection lost, a leader changed) may or may
    // not have been counted; every accepted one must have been.
    let most = accepted.saturating_add(unknown) as i64;
    if sum < accepted as i64 || sum > most {
        let earlier = if before == 0 {
            String::new()
        } else {
            format!(" (beyond the {before} counted before the run)")
        };
        return Err(format!(
            "sum of results() is {sum}{earlier}, but {accepted} votes were accepted \
             and {unknown} failed (may or may not have counted)"
        ));
    }
    if t.phones_over_limit != 0 {
        return Err(format!(
            "{} phones have more than {MAX_VOTES} votes",
            t.phones_over_limit
        ));
    }
    let mut results: Vec<(i64, i64)> = t.results.iter().copied().filter(|r| r.1 != 0).collect();
    let mut group_by = t.group_by.clone();
    results.sort_unstable();
    group_by.sort_unstable();
    if results != group_by {
        return Err(format!(
            "results() per contestant {results:?} differs from GROUP BY over votes {group_by:?}"
        ));
    }
    let mut counted = match sum - accepted as i64 {
        0 => "= accepted".to_string(),
        n => format!("= accepted + {n} of the {unknown} that failed"),
    };
    if before != 0 {
        counted.push_str(&format!(", beside {before} from before the run"));
    }
    Ok(format!(
        "ok: {sum} votes {counted}, none over {MAX_VOTES} per phone, totals match"
    ))
}

/// One measured row of the report.
struct Row {
    side: String,
    flavour: RuntimeChoice,
    report: LoadReport,
    note: String,
    /// The replication factor of a local cluster's side (`--nodes`).
    rf: Option<u32>,
}

type ConnectFn<'a> =
    &'a dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<VoteFn>>> + Send>>;

fn build_runtime(flavour: RuntimeChoice) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = match flavour {
        RuntimeChoice::Multi => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    Ok(b.enable_all().build()?)
}

/// Connects in a fresh runtime of `flavour` and runs the load; Ctrl-C
/// aborts with an error so the servers are still stopped.
fn run_in(
    flavour: RuntimeChoice,
    connect: ConnectFn,
    shape: LoadShape,
) -> anyhow::Result<LoadReport> {
    let rt = build_runtime(flavour)?;
    rt.block_on(async {
        let conns = connect().await?;
        tokio::select! {
            r = run_load(&conns, shape) => Ok(r),
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
    })
}

/// Measures one side: picks the runtime flavour if asked, then the real
/// run. Returns the row and every vote's outcome (trials included).
fn measure_side(
    args: &VoterArgs,
    side: &str,
    seed: u64,
    connect: ConnectFn,
) -> anyhow::Result<(Row, Outcomes)> {
    let shape = LoadShape {
        in_flight: args.in_flight,
        warmup: Duration::from_secs(args.warmup),
        measured: Duration::from_secs(args.seconds),
        seed,
    };
    let mut total = Outcomes::default();
    let (flavour, note) = match args.runtime {
        RuntimeChoice::Auto => {
            let mut rates = Vec::new();
            for (i, f) in [RuntimeChoice::Current, RuntimeChoice::Multi]
                .into_iter()
                .enumerate()
            {
                let trial = LoadShape {
                    warmup: TRIAL_WARMUP,
                    measured: TRIAL_MEASURED,
                    seed: seed ^ (0x7121 + i as u64),
                    ..shape
                };
                let r = run_in(f, connect, trial)?;
                total.add(&r.outcomes);
                rates.push((f, r.median_rate()));
            }
            let best = if rates[1].1 > rates[0].1 {
                rates[1].0
            } else {
                rates[0].0
            };
            let note = format!(
                "picked: current {:.0}/s, multi {:.0}/s",
                rates[0].1, rates[1].1
            );
            (best, note)
        }
        f => (f, "chosen by --runtime".to_string()),
    };
    eprintln!(
        "bench voter: measuring {side} ({} s + {} s warm-up)...",
        args.seconds, args.warmup
    );
    let report = run_in(flavour, connect, shape)?;
    total.add(&report.outcomes);
    let row = Row {
        side: side.to_string(),
        flavour,
        report,
        note,
        rf: None,
    };
    Ok((row, total))
}

/// Runs `ohm bench voter`.
pub fn run(args: VoterArgs) -> anyhow::Result<ExitCode> {
    if args.connections == 0 || args.in_flight == 0 || args.seconds == 0 {
        bail!("--connections, --in-flight and --seconds must be at least 1");
    }
    let pg_bin = if args.no_pg || args.pg_dsn.is_some() || args.nodes.is_some() {
        None
    } else {
        Some(postgres::find_bin_dir().context(
            "PostgreSQL's server is not installed (no initdb under /usr/lib/postgresql/*/bin \
             or on PATH): install it with `apt-get install postgresql`, or pass --pg-dsn \
             or --no-pg",
        )?)
    };
    print_header(&args);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    if let Some(nodes) = args.nodes {
        cluster::run(&args, nodes, &mut rows, &mut failures)?;
    } else if !args.no_ohm {
        run_ohm(&args, &mut rows, &mut failures)?;
    }
    if !args.no_pg && args.nodes.is_none() {
        run_pg(&args, pg_bin, &mut rows, &mut failures)?;
    }
    print_rows(&rows);
    for f in &failures {
        eprintln!("INVARIANT VIOLATED: {f}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_header(args: &VoterArgs) {
    println!(
        "ohm bench voter: client pid {} on this machine ({} cores), a separate process \
         from the servers, over loopback",
        std::process::id(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "settings: {} connections x {} in flight, {} s measured after {} s warm-up, \
         6 contestants, max_votes {MAX_VOTES}, ~1% contestant 999, seed {}",
        args.connections, args.in_flight, args.seconds, args.warmup, args.seed
    );
}

fn run_ohm(
    args: &VoterArgs,
    rows: &mut Vec<Row>,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let (node, cfg) = match &args.addr {
        Some(addr) => {
            let connect = ConnectArgs {
                addr: addr.clone(),
                token: args.token.clone(),
                ca: args.ca.clone(),
                fingerprint: args.fingerprint.clone(),
                data: args.data.clone(),
            };
            (None, connect.resolve(TokenRole::Demo)?)
        }
        None => {
            let node = node::NodeProcess::start(args.durability, args.partitions)?;
            let trust = Trust::Fingerprint(node.ready.fingerprint.clone());
            let cfg = ClientConfig::new(node.ready.addr.clone(), trust, node.demo_token()?);
            (Some(node), cfg)
        }
    };
    let setup = build_runtime(RuntimeChoice::Current)?.block_on(ohm_setup(cfg.clone()))?;
    // A node given by --addr (the demo's, run again) has earlier votes.
    let before = build_runtime(RuntimeChoice::Current)?
        .block_on(async { ohm_tallies(&Client::connect(cfg.clone()).await?).await })?
        .votes();
    let where_ = match &node {
        Some(n) => format!("node pid {} started by the bench", n.pid()),
        None => "node given by --addr".to_string(),
    };
    println!(
        "ohm: {where_} at {}, {} partitions, durability {}, version {}",
        cfg.addr, setup.partitions, setup.durability, setup.version
    );
    let (load_cfg, connections) = (cfg.clone(), args.connections);
    let connect = move || -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<VoteFn>>> + Send>> {
        Box::pin(ohm_vote_fns(load_cfg.clone(), connections))
    };
    let (row, total) = measure_side(
        args,
        &format!("ohm ({})", setup.durability),
        args.seed,
        &connect,
    )?;
    rows.push(row);
    let tallies = build_runtime(RuntimeChoice::Current)?
        .block_on(async { ohm_tallies(&Client::connect(cfg).await?).await })?;
    match check_invariants(total.accepted, total.errors, before, &tallies) {
        Ok(summary) => println!("ohm invariants {summary}"),
        Err(e) => failures.push(format!("ohm: {e}")),
    }
    drop(node); // stops the node and removes its data directory
    Ok(())
}

/// What `ohm_setup` learned from the node.
struct OhmSetup {
    partitions: usize,
    durability: String,
    version: String,
}

/// What the set-up and the tallies need of an Ohm client: one node's or a
/// cluster's.
trait Session {
    async fn call(&self, procedure: &str, args: Vec<Value>) -> Result<CallResult, ClientError>;
    async fn sql(&self, sql: &str) -> Result<Vec<SqlResult>, ClientError>;
}

impl Session for Client {
    async fn call(&self, procedure: &str, args: Vec<Value>) -> Result<CallResult, ClientError> {
        Client::call(self, procedure, args).await
    }
    async fn sql(&self, sql: &str) -> Result<Vec<SqlResult>, ClientError> {
        Client::sql(self, sql).await
    }
}

impl Session for ClusterClient {
    async fn call(&self, procedure: &str, args: Vec<Value>) -> Result<CallResult, ClientError> {
        ClusterClient::call(self, procedure, args).await
    }
    async fn sql(&self, sql: &str) -> Result<Vec<SqlResult>, ClientError> {
        ClusterClient::sql(self, sql).await
    }
}

/// `initialize(6, names)`, as the workload starts.
async fn initialize(client: &impl Session) -> anyhow::Result<()> {
    let args = vec![Value::Int(6), Value::text(CONTESTANT_NAMES)];
    match client.call("initialize", args).await? {
        CallResult::Value(Value::Int(6)) => Ok(()),
        other => bail!("initialize(6, ...) returned {other:?}, expected 6"),
    }
}

async fn ohm_setup(cfg: ClientConfig) -> anyhow::Result<OhmSetup> {
    let client = Client::connect(cfg).await?;
    initialize(&client).await?;
    let status = client.status().await?;
    Ok(OhmSetup {
        partitions: status.partitions.len(),
        durability: status.durability,
        version: status.version,
    })
}

async fn ohm_vote_fns(cfg: ClientConfig, connections: usize) -> anyhow::Result<Vec<VoteFn>> {
    let mut fns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = Client::connect(cfg.clone()).await?;
        let f: VoteFn = Arc::new(move |phone, contestant| {
            let client = client.clone();
            Box::pin(
                async move { vote_code(client.call("vote", vote_args(phone, contestant)).await) },
            )
        });
        fns.push(f);
    }
    Ok(fns)
}

/// `vote(phone, contestant, MAX_VOTES)`'s arguments.
fn vote_args(phone: i64, contestant: i32) -> Vec<Value> {
    vec![
        Value::Int(phone),
        Value::Int(contestant as i64),
        Value::Int(MAX_VOTES),
    ]
}

/// A vote's result code, or what went wrong.
fn vote_code(r: Result<CallResult, ClientError>) -> Result<i64, String> {
    match r {
        Ok(CallResult::Value(Value::Int(code))) => Ok(code),
        Ok(other) => Err(format!("vote returned {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// (first column, second column) of every row, as integers.
fn int_pairs(
    rows: &crate::proto::Rows,
    first: usize,
    second: usize,
) -> anyhow::Result<Vec<(i64, i64)>> {
    rows.rows
        .iter()
        .map(|r| match (r.get(first), r.get(second)) {
            (Some(Value::Int(a)), Some(Value::Int(b))) => Ok((*a, *b)),
            other => bail!("expected two integers, got {other:?}"),
        })
        .collect()
}

async fn ohm_sql_rows(client: &impl Session, sql: &str) -> anyhow::Result<crate::proto::Rows> {
    match client.sql(sql).await?.into_iter().next() {
        Some(SqlResult::Rows(rows)) => Ok(rows),
        other => bail!("{sql}: expected rows, got {other:?}"),
    }
}

async fn ohm_tallies(client: &impl Session) -> anyhow::Result<Tallies> {
    let results = match client.call("results", vec![]).await? {
        CallResult::Rows(rows) => int_pairs(&rows, 1, 2)?,
        other => bail!("results() returned {other:?}, expected rows"),
    };
    let over = ohm_sql_rows(
        client,
        &format!(
            "SELECT phone_number, COUNT(*) FROM votes GROUP BY phone_number \
             HAVING COUNT(*) > {MAX_VOTES}"
        ),
    )
    .await?;
    let group_by = ohm_sql_rows(
        client,
        "SELECT contestant_number, COUNT(*) FROM votes GROUP BY contestant_number",
    )
    .await?;
    Ok(Tallies {
        results,
        phones_over_limit: over.rows.len() as u64,
        group_by: int_pairs(&group_by, 0, 1)?,
    })
}

fn run_pg(
    args: &VoterArgs,
    bin: Option<PathBuf>,
    rows: &mut Vec<Row>,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let server = bin.map(|b| postgres::PgServer::start(&b)).transpose()?;
    let dsn = match (&args.pg_dsn, &server) {
        (Some(dsn), _) => dsn.clone(),
        (None, Some(s)) => s.dsn(),
        (None, None) => bail!("no PostgreSQL: pass --pg-dsn or install it"),
    };
    match &server {
        Some(s) => println!(
            "postgresql {}: started by the bench on 127.0.0.1:{} (temp cluster), fsync=on, \
             PL/pgSQL functions, tokio-postgres pipelining each connection",
            s.version, s.port
        ),
        None => println!("postgresql: given by --pg-dsn (its voter tables were replaced)"),
    }
    let rt = build_runtime(RuntimeChoice::Current)?;
    let n = rt.block_on(postgres::setup(&dsn, 6, CONTESTANT_NAMES))?;
    if n != 6 {
        bail!("PostgreSQL initialize(6, ...) returned {n}, expected 6");
    }
    let (mut accepted, mut failed) = (0, 0);
    for sync in [true, false] {
        let (d, c) = (dsn.clone(), args.connections);
        let connect =
            move || -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<VoteFn>>> + Send>> {
                let d = d.clone();
                Box::pin(async move { postgres::vote_fns(&d, c, sync, MAX_VOTES).await })
            };
        let side = if sync {
            "postgresql (sync)"
        } else {
            "postgresql (off)"
        };
        // The off phase runs on the sync phase's database: a stream of its
        // own, so it does not re-vote the phones the sync phase used.
        let seed = if sync {
            args.seed
        } else {
            args.seed ^ PG_OFF_SEED_XOR
        };
        let (row, total) = measure_side(args, side, seed, &connect)?;
        accepted += total.accepted;
        failed += total.errors;
        rows.push(row);
    }
    let tallies = rt.block_on(postgres::read_tallies(&dsn, MAX_VOTES))?;
    match check_invariants(accepted, failed, 0, &tallies) {
        Ok(summary) => println!("postgresql invariants {summary}"),
        Err(e) => failures.push(format!("postgresql: {e}")),
    }
    drop(server); // stops the server and deletes its directory
    Ok(())
}

fn ms(us: Option<u64>) -> String {
    us.map(|u| format!("{:.2}", u as f64 / 1e3))
        .unwrap_or_default()
}

fn print_rows(rows: &[Row]) {
    use crate::cli::format::TextTable;
    let header = [
        "side",
        "runtime",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "accepted",
        "invalid",
        "over limit",
        "errors",
    ];
    let table = TextTable {
        header: header.map(String::from).to_vec(),
        right: vec![false, false, true, true, true, true, true, true, true],
        rows: rows
            .iter()
            .map(|r| {
                let o = &r.report.outcomes;
                let flavour = format!("{:?}", r.flavour).to_lowercase();
                vec![
                    r.side.clone(),
                    flavour,
                    format!("{:.0}", r.report.median_rate()),
                    ms(r.report.latency_us.quantile(0.5)),
                    ms(r.report.latency_us.quantile(0.99)),
                    o.accepted.to_string(),
                    o.invalid.to_string(),
                    o.over_limit.to_string(),
                    (o.errors + o.unexpected).to_string(),
                ]
            })
            .collect(),
    };
    print!("{}", table.render());
    for r in rows {
        println!("{}: runtime {}", r.side, r.note);
        for e in &r.report.error_samples {
            println!("{}: error: {e}", r.side);
        }
    }
    let rate = |prefix: &str| {
        rows.iter()
            .find(|r| r.side.starts_with(prefix))
            .map(|r| r.report.median_rate())
    };
    if let (Some(ohm), Some(sync), Some(off)) = (
        rate("ohm"),
        rate("postgresql (sync)"),
        rate("postgresql (off)"),
    ) {
        println!(
            "ratio ohm/postgresql: {:.2}x against synchronous_commit=on, {:.2}x against off",
            ohm / sync.max(1.0),
            ohm / off.max(1.0)
        );
    }
    let rf: Vec<(u32, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.rf?, r.report.median_rate())))
        .collect();
    if let (Some((1, one)), Some(&(n, many))) = (rf.first().copied(), rf.get(1)) {
        println!("ratio rf{n}/rf1: {:.2} x", many / one.max(1.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tallies() -> Tallies {
        Tallies {
            results: vec![(2, 5), (1, 3), (3, 0)],
            phones_over_limit: 0,
            group_by: vec![(1, 3), (2, 5)],
        }
    }

    #[test]
    fn invariants_hold_and_fail() {
        assert!(check_invariants(8, 0, 0, &tallies()).is_ok());
        let err = check_invariants(9, 0, 0, &tallies()).unwrap_err();
        assert!(err.contains("sum of results() is 8, but 9"), "{err}");
        // Failed votes may have counted, but no more than failed.
        let ok = check_invariants(6, 2, 0, &tallies()).unwrap();
        assert!(ok.contains("= accepted + 2 of the 2 that failed"), "{ok}");
        let err = check_invariants(6, 1, 0, &tallies()).unwrap_err();
        assert!(err.contains("and 1 failed"), "{err}");
        let mut t = tallies();
        t.phones_over_limit = 2;
        assert!(check_invariants(8, 0, 0, &t)
            .unwrap_err()
            .contains("2 phones"));
        let mut t = tallies();
        t.group_by = vec![(1, 4), (2, 4)];
        assert!(check_invariants(8, 0, 0, &t)
            .unwrap_err()
            .contains("differs"));
        // A node that had votes before the run (the demo's, run again).
        let ok = check_invariants(5, 0, 3, &tallies()).unwrap();
        assert!(ok.contains("beside 3 from before the run"), "{ok}");
        let err = check_invariants(8, 0, 3, &tallies()).unwrap_err();
        assert!(
            err.contains("is 5 (beyond the 3 counted before the run), but 8"),
            "{err}"
        );
    }

    #[test]
    fn int_pairs_reads_columns() {
        let rows = crate::proto::Rows {
            columns: vec![],
            rows: vec![vec![Value::text("Kelly"), Value::Int(3), Value::Int(7)]],
        };
        assert_eq!(int_pairs(&rows, 1, 2).unwrap(), vec![(3, 7)]);
        assert!(int_pairs(&rows, 0, 1).is_err());
    }
}
