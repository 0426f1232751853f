//! `ohm bench isolation`: what one tenant's worst does to another tenant's
//! latency (issue 11). Tenant A (the demo tenant, running the voter) calls
//! `vote` (one partition) back to back and `results` (every partition) every
//! few ms, first alone, then while tenant B runs its worst on the same node:
//! calls that burn their whole fuel, calls of 10,000 statements that run to
//! their time limit, calls that take 48 MiB of memory, compile bombs, and a
//! module flood up to its quota and back (and, when asked, ad-hoc
//! statements that run to their time limit). Prints A's p50/p99/max in both
//! phases and their ratios; a timing is printed, never asserted.
//!
//! ```text
//!   ohm serve --demo (child) <--QUIC-- A: vote x N, results x 1   (both phases)
//!                            <--QUIC-- B: one loop per kind x K    (second phase)
//! ```

use super::load::{Histogram, VoteGen};
use super::voter::node::NodeProcess;
use super::voter::{Durability, CONTESTANT_NAMES, MAX_VOTES};
use crate::driver::{CallResult, Client, ClientConfig, ClientError, Trust};
use crate::types::Value;
use crate::wasm::wat_guest::{return_const, Guest, UNIT};
use anyhow::Context;
use clap::ValueEnum;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// B's table (the sandbox guest's schema, `tests/guest-sandbox`).
const B_SCHEMA: [&str; 2] = [
    "CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT)",
    "PARTITION TABLE t ON COLUMN k",
];
/// Rows B loads before the run, so its statements have rows to scan.
const B_ROWS: i64 = 20_000;
/// Rows per INSERT while loading them.
const B_ROWS_PER_INSERT: i64 = 500;
/// Statements in one of B's `many_statements` calls, one batch each: far
/// more than fit in the call's time limit.
const B_STATEMENTS: i64 = 10_000;
/// Bytes one `grab` call takes (under the 64 MiB memory limit).
const B_GRAB_BYTES: i64 = 48 << 20;
/// Functions in a compile bomb (about 2 s to compile on this machine's kind).
const BOMB_FUNCTIONS: usize = 8_000;
/// Modules one flood deploys before it drops them all again; past the
/// tenant's quota they are refused.
const FLOOD_MODULES_MAX: usize = 100;
/// How long B's loops get to end after the loaded phase (a compile or a
/// statement may run to its limit) before they are abandoned.
const B_STOP_WAIT: Duration = Duration::from_secs(20);
/// Where B's calls write their first row (above the rows it loaded).
const B_KEYS_FROM: i64 = 1 << 40;

/// What tenant B runs meanwhile, each kind in its own loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Hog {
    /// `spin`: burns its whole fuel, then traps.
    Spin,
    /// `many_statements`: 10,000 scans, stopped by the call's time limit.
    Statements,
    /// `grab`: takes 48 MiB of instance memory.
    Grab,
    /// Deploys of a module that takes seconds to compile.
    Bombs,
    /// Deploys module after module up to the quota, then drops them all.
    Flood,
    /// Ad-hoc cross joins, stopped by the statement time limit (they hold
    /// every partition meanwhile).
    Sql,
}

/// Options of `ohm bench isolation`.
#[derive(clap::Args, Debug, Clone)]
pub struct IsolationArgs {
    /// Seconds of each phase (A alone, then A beside B).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Partitions of the node the bench starts (default: the node's).
    #[arg(long)]
    pub partitions: Option<usize>,
    /// What B runs in the second phase.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "spin,statements,grab,bombs,flood"
    )]
    pub b: Vec<Hog>,
    /// Loops per kind of B's work, each with one request in flight.
    #[arg(long, default_value_t = 2)]
    pub b_loops: usize,
    /// A's connections calling `vote` back to back.
    #[arg(long, default_value_t = 2)]
    pub a_connections: usize,
    /// A's pause between two `results` calls (ms); 0: A runs no
    /// multi-partition calls at all, so its `vote` latency is B's doing
    /// alone.
    #[arg(long, default_value_t = 5)]
    pub results_pause_ms: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// A's latencies in one phase.
#[derive(Default)]
struct Phase {
    single: Histogram,
    multi: Histogram,
    errors: BTreeMap<String, u64>,
}

/// What B's requests came to, by kind and outcome.
type Outcomes = Arc<Mutex<BTreeMap<(Hog, String), u64>>>;

pub fn run(args: &IsolationArgs) -> anyhow::Result<ExitCode> {
    let node = NodeProcess::start(Durability::Sync, args.partitions)?;
    let trust = Trust::Fingerprint(node.ready.fingerprint.clone());
    let addr = node.ready.addr.clone();
    let a_cfg = ClientConfig::new(addr.clone(), trust.clone(), node.demo_token()?);
    let admin_path = node.ready.data.join("admin.token");
    let admin_token = std::fs::read_to_string(&admin_path)
        .with_context(|| format!("reading {}", admin_path.display()))?;
    let admin_cfg = ClientConfig::new(addr.clone(), trust.clone(), admin_token.trim());
    let sandbox = crate::wasm::default_procedures_dir()
        .context("cannot tell where the example procedures are: set OHM_WASM_DIR")?
        .join("ohm_guest_sandbox.wasm");
    let sandbox = std::fs::read(&sandbox)
        .with_context(|| format!("reading {} (run `cargo procs` first)", sandbox.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pid = node.pid();
    rt.block_on(async move {
        let a = Client::connect(a_cfg.clone()).await?;
        let six = vec![Value::Int(6), Value::text(CONTESTANT_NAMES)];
        a.call("initialize", six).await?;
        let partitions = a.status().await?.partitions.len();
        let admin = Client::connect(admin_cfg).await?;
        let b_token = admin.create_tenant("hog").await?.token;
        let b_cfg = ClientConfig::new(addr.clone(), trust, b_token);
        let b = Client::connect(b_cfg.clone()).await?;
        set_up_b(&b, sandbox).await?;
        println!(
            "ohm: node pid {} at {addr}, {partitions} partitions; A: {} vote connections and \
             one results loop; B: {:?} x {} loops, {} s per phase",
            pid, args.a_connections, args.b, args.b_loops, args.seconds
        );
        let phase = Duration::from_secs(args.seconds.max(1));
        let idle = measure_a(&a_cfg, args, phase).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Outcomes::default();
        // B runs on a thread and runtime of its own, so its loops do not
        // delay A's on the client side.
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let b_side = {
            let (stop, outcomes, args) = (stop.clone(), outcomes.clone(), args.clone());
            std::thread::spawn(move || run_b(b_cfg, &args, (stop, outcomes), started_tx))
        };
        started.await.context("B's loops did not start")??;
        let loaded = measure_a(&a_cfg, args, phase).await?;
        stop.store(true, Ordering::Relaxed);
        if let Ok(Err(e)) = b_side.join() {
            eprintln!("warning: B's loops: {e:#}");
        }
        report(&idle, &loaded, &outcomes);
        anyhow::Ok(())
    })?;
    drop(node);
    Ok(ExitCode::SUCCESS)
}

/// B's loops, each kind `b_loops` times, until `stop`; `started` hears
/// once they all run (or why they could not start).
fn run_b(
    cfg: ClientConfig,
    args: &IsolationArgs,
    (stop, outcomes): (Arc<AtomicBool>, Outcomes),
    started: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    // B's clients stand for other machines: on this one they would take
    // CPU from the node being measured (and from A's client) at par.
    crate::node::priority::lower_priority();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut hogs = tokio::task::JoinSet::new();
        let mut connected = Ok(());
        'kinds: for &kind in &args.b {
            for i in 0..args.b_loops.max(1) {
                let client = match Client::connect(cfg.clone()).await {
                    Ok(c) => c,
                    Err(e) => {
                        connected = Err(anyhow::Error::new(e).context("connecting B"));
                        break 'kinds;
                    }
                };
                let (stop, outcomes) = (stop.clone(), outcomes.clone());
                let seed = args.seed ^ ((kind as u64) << 32) ^ i as u64;
                let bomb = (kind == Hog::Bombs).then(|| bomb(&format!("bomb{i}")));
                hogs.spawn(hog(kind, i, client, (stop, outcomes), bomb, seed));
            }
        }
        let failed = connected.is_err();
        let _ = started.send(connected);
        if failed {
            stop.store(true, Ordering::Relaxed);
        }
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ended = tokio::time::timeout(B_STOP_WAIT, async {
            while hogs.join_next().await.is_some() {}
        })
        .await;
        if ended.is_err() {
            eprintln!("warning: some of B's loops did not end within {B_STOP_WAIT:?}");
            hogs.abort_all();
        }
        anyhow::Ok(())
    })
}

/// B's table, its rows and the sandbox guest.
async fn set_up_b(b: &Client, sandbox: Vec<u8>) -> anyhow::Result<()> {
    for stmt in B_SCHEMA {
        b.sql(stmt).await?;
    }
    for from in (0..B_ROWS).step_by(B_ROWS_PER_INSERT as usize) {
        let values: Vec<String> = (from..from + B_ROWS_PER_INSERT)
            .map(|k| format!("({k}, 'row')"))
            .collect();
        b.sql(&format!("INSERT INTO t VALUES {}", values.join(",")))
            .await?;
    }
    b.deploy("sandbox", sandbox).await?;
    Ok(())
}

/// A's load for `phase`: `a_connections` loops of `vote` and one of
/// `results`, each latency recorded.
async fn measure_a(
    cfg: &ClientConfig,
    args: &IsolationArgs,
    phase: Duration,
) -> anyhow::Result<Phase> {
    let end = Instant::now() + phase;
    let mut loops = tokio::task::JoinSet::new();
    for i in 0..args.a_connections.max(1) {
        let client = Client::connect(cfg.clone()).await?;
        let mut votes = VoteGen::new(args.seed ^ (i as u64 + 1));
        loops.spawn(async move {
            let mut p = Phase::default();
            while Instant::now() < end {
                let (phone, contestant) = votes.next_vote();
                let vote = vec![
                    Value::Int(phone),
                    Value::Int(contestant as i64),
                    Value::Int(MAX_VOTES),
                ];
                let t = Instant::now();
                let r = client.call("vote", vote).await;
                p.single.record(t.elapsed().as_micros() as u64);
                note_error(&mut p, r);
            }
            p
        });
    }
    if args.results_pause_ms > 0 {
        let pause = Duration::from_millis(args.results_pause_ms);
        let client = Client::connect(cfg.clone()).await?;
        loops.spawn(async move {
            let mut p = Phase::default();
            while Instant::now() < end {
                let t = Instant::now();
                let r = client.call("results", vec![]).await;
                p.multi.record(t.elapsed().as_micros() as u64);
                note_error(&mut p, r);
                tokio::time::sleep(pause).await;
            }
            p
        });
    }
    let mut all = Phase::default();
    while let Some(p) = loops.join_next().await {
        let p = p.context("one of A's loops")?;
        all.single.merge(&p.single);
        all.multi.merge(&p.multi);
        for (k, n) in p.errors {
            *all.errors.entry(k).or_default() += n;
        }
    }
    Ok(all)
}

fn note_error(p: &mut Phase, r: Result<CallResult, ClientError>) {
    if let Err(e) = r {
        *p.errors.entry(error_name(&e)).or_default() += 1;
    }
}

fn error_name(e: &ClientError) -> String {
    match e {
        ClientError::Server(s) => s.code.name().to_string(),
        other => other.to_string(),
    }
}

/// One of B's loops: `kind` again and again until `stop`.
async fn hog(
    kind: Hog,
    loop_no: usize,
    b: Client,
    (stop, outcomes): (Arc<AtomicBool>, Outcomes),
    bomb: Option<Vec<u8>>,
    seed: u64,
) {
    let mut rng = super::load::SplitMix::new(seed);
    let mut round = 0usize;
    let mut flooded: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let k = B_KEYS_FROM + rng.below(1 << 40) as i64;
        let outcome: Result<(), ClientError> = match kind {
            Hog::Spin => b.call("spin", vec![Value::Int(k)]).await.map(drop),
            Hog::Statements => {
                let args = vec![Value::Int(k), Value::Int(B_STATEMENTS)];
                b.call("many_statements", args).await.map(drop)
            }
            Hog::Grab => {
                let args = vec![Value::Int(k), Value::Int(B_GRAB_BYTES)];
                b.call("grab", args).await.map(drop)
            }
            Hog::Bombs => {
                // Different bytes each time (a custom section), so no
                // compile is cached.
                let mut wasm = bomb.clone().unwrap_or_default();
                wasm.extend_from_slice(&custom_section(round as u64));
                let name = format!("bomb{loop_no}");
                let deployed = b.deploy(&name, wasm).await.map(drop);
                if deployed.is_ok() {
                    let _ = b.drop_module(&name).await;
                }
                deployed
            }
            Hog::Flood => {
                let name = format!("flood{loop_no}x{}", flooded.len());
                let deployed = b.deploy(&name, tiny(&name)).await.map(drop);
                let full = deployed.is_err() || flooded.len() + 1 >= FLOOD_MODULES_MAX;
                if deployed.is_ok() {
                    flooded.push(name);
                }
                if full {
                    for m in flooded.drain(..) {
                        let _ = b.drop_module(&m).await;
                    }
                }
                deployed
            }
            Hog::Sql => b
                .sql("SELECT COUNT(*) FROM t a, t b WHERE a.k + b.k < 0")
                .await
                .map(drop),
        };
        let name = match outcome {
            Ok(()) => "ok".to_string(),
            Err(e) => error_name(&e),
        };
        let mut o = outcomes.lock().unwrap_or_else(|p| p.into_inner());
        *o.entry((kind, name)).or_default() += 1;
    }
}

/// A guest with one do-nothing procedure `name`.
fn tiny_guest(name: &str) -> Guest {
    let mut g = Guest::new();
    let unit = g.constant(&UNIT);
    let body = return_const(unit, 0);
    g.procedure(name, vec![], ohm_sdk::abi::ty::UNIT, None, &body);
    g
}

fn tiny(name: &str) -> Vec<u8> {
    tiny_guest(name).wasm()
}

/// `tiny`, plus `BOMB_FUNCTIONS` functions for the compiler to chew on.
fn bomb(name: &str) -> Vec<u8> {
    let mut g = tiny_guest(name);
    g.extra = (0..BOMB_FUNCTIONS)
        .map(|i| {
            format!(
                "(func $f{i} (param i64) (result i64) (i64.mul (local.get 0) (i64.const {i})))\n"
            )
        })
        .collect();
    g.wasm()
}

/// A Wasm custom section named "round" holding `n`: appended to a module,
/// it changes the bytes and nothing else.
fn custom_section(n: u64) -> Vec<u8> {
    let name = b"round";
    let payload_len = 1 + name.len() + 8;
    let mut s = vec![0u8, payload_len as u8, name.len() as u8];
    s.extend_from_slice(name);
    s.extend_from_slice(&n.to_le_bytes());
    s
}

fn report(idle: &Phase, loaded: &Phase, outcomes: &Outcomes) {
    let ms = |us: Option<u64>| us.map_or("-".to_string(), |u| format!("{:.2}", u as f64 / 1e3));
    let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if a > 0 => format!("{:.2}x", b as f64 / a as f64),
        _ => "-".to_string(),
    };
    println!();
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "A's latency (ms)", "calls", "p50", "p99", "max", "calls+B", "p50+B", "p99+B"
    );
    for (what, i, l) in [
        ("vote (one partition)", &idle.single, &loaded.single),
        ("results (all partitions)", &idle.multi, &loaded.multi),
    ] {
        println!(
            "{:<26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   p99 ratio {}, max+B {}",
            what,
            i.count(),
            ms(i.quantile(0.5)),
            ms(i.quantile(0.99)),
            ms(i.quantile(1.0)),
            l.count(),
            ms(l.quantile(0.5)),
            ms(l.quantile(0.99)),
            ratio(i.quantile(0.99), l.quantile(0.99)),
            ms(l.quantile(1.0)),
        );
    }
    for (phase, p) in [("alone", idle), ("beside B", loaded)] {
        if !p.errors.is_empty() {
            println!("A's errors {phase}: {:?}", p.errors);
        }
    }
    let o = outcomes.lock().unwrap_or_else(|p| p.into_inner());
    println!("B's requests by kind and outcome:");
    for ((kind, outcome), n) in o.iter() {
        println!("  {kind:?} {outcome}: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flood_and_bomb_modules_are_valid_and_distinct() {
        let runtime = crate::wasm::testing::shared_runtime();
        let mut bombed = bomb("b");
        bombed.extend_from_slice(&custom_section(7));
        for wasm in [tiny("a"), tiny("b"), bombed] {
            let m = runtime.compile("m", &wasm).unwrap();
            assert_eq!(m.desc().procedures.len(), 1);
        }
        assert_ne!(tiny("a"), tiny("b"));
    }
}
