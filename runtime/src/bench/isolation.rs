//! `ohm bench isolation`: what one tenant's worst does to another tenant's
//! latency (issue 11). Tenant A (the demo tenant, running the voter) calls
//! `vote` (one partition) back to back and `results` (every partition) every
//! few ms, first alone, then while tenant B runs its worst on the same node:
//! calls that burn their whole fuel, calls of 10,000 statements that run to
//! their time limit, calls that take 48 MiB of memory, compile bombs, and a
//! module flood up to its quota and back (and, when asked, ad-hoc
//! statements that run to their time limit). Prints A's p50/p99/max on both
//! sides and their ratios; a timing is printed, never asserted.
//!
//! A runs without pause from start to end; B is paused and resumed so that
//! windows of A alone and of A beside B alternate in ABBA order (alone,
//! beside, beside, alone, ...). `results` reads every vote, so it grows
//! slower as A votes: measured one side after the other, the second side
//! would be measured on a larger table and charged A's own growth.
//! Interleaved, both sides see the same table sizes. A window alone starts
//! once none of B's requests is in flight and the node has stopped counting
//! B as active (`SETTLE`); a call that overlaps B's work (it spans a switch
//! to or from a window beside B) counts beside B, and one that spans
//! neither (the settling) counts on neither side.
//!
//! ```text
//!   ohm serve --demo (child) <--QUIC-- A: vote x N, results x 1   (always)
//!                            <--QUIC-- B: one loop per kind x K    (its windows)
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
/// How long B's requests get to end when B is paused or stopped (a compile
/// or a statement may run to its limit); past it the window alone is
/// skipped, or the loops abandoned.
const B_STOP_WAIT: Duration = Duration::from_secs(20);
/// Where B's calls write their first row (above the rows it loaded).
const B_KEYS_FROM: i64 = 1 << 40;
/// The shortest window the bench takes (shorter ones would be mostly
/// switching).
const WINDOW_MIN: Duration = Duration::from_millis(100);
/// How often a paused loop of B, or the bench waiting for B's requests to
/// end, looks again.
const PAUSE_POLL: Duration = Duration::from_millis(5);
/// How long after B's last request ended a window alone starts: until
/// then the node still counts B as active, or heavy (`node::runner`), and
/// times A's calls as it does beside another tenant.
const SETTLE: Duration = Duration::from_millis(1100);

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
    /// Seconds A is measured on each side (alone, beside B).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Length of one window (ms); windows alone and beside B alternate in
    /// ABBA order. `--window-ms` of `--seconds` x 1000 measures A alone,
    /// then beside B, once each.
    #[arg(long, default_value_t = 1000)]
    pub window_ms: u64,
    /// Partitions of the node the bench starts (default: the node's).
    #[arg(long)]
    pub partitions: Option<usize>,
    /// What B runs in its windows.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "spin,statements,grab,bombs,flood"
    )]
    pub b: Vec<Hog>,
    /// Loops per kind of B's work, each with one request in flight; 0: B
    /// runs nothing, so both sides are A alone and their ratio is the
    /// bench's own noise.
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

/// A's latencies on one side.
#[derive(Default)]
struct Latencies {
    single: Histogram,
    multi: Histogram,
    errors: BTreeMap<String, u64>,
}

/// Which side A's samples count on: one side, or `SETTLING` (neither)
/// while B's requests end before a window alone.
type Side = u64;
const ALONE: Side = 0;
const BESIDE_B: Side = 1;
const SETTLING: Side = 2;

/// The side now (the word's low 2 bits) and how many switches there were
/// (the rest), so a sample read the same word at its start and end only
/// if no switch fell inside it. One writer: the bench's windows.
#[derive(Default)]
struct Switch(AtomicU64);

impl Switch {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self, side: Side) {
        let switches = (self.now() >> 2) + 1;
        self.0.store(switches << 2 | side, Ordering::SeqCst);
    }
}

/// A's side of the run, by where each call fell (`Sides::of`).
#[derive(Default)]
struct Sides {
    alone: Latencies,
    beside: Latencies,
    /// Calls that fell on neither side, and the longest of them (µs).
    dropped: u64,
    dropped_max_us: u64,
}

impl Sides {
    /// Where a call of `us` that read `start` and `end` from `Switch`
    /// counts: alone if both say alone with no switch between; beside B
    /// if either says beside B (it overlapped B's work); else (it fell in
    /// the settling) on neither side.
    fn of(&mut self, (start, end): (u64, u64), us: u64) -> Option<&mut Latencies> {
        let beside = [start, end].iter().any(|w| w & 3 == BESIDE_B);
        if start == end && start & 3 == ALONE {
            Some(&mut self.alone)
        } else if beside {
            Some(&mut self.beside)
        } else {
            self.dropped += 1;
            self.dropped_max_us = self.dropped_max_us.max(us);
            None
        }
    }

    fn merge(&mut self, other: Sides) {
        for (mine, theirs) in [
            (&mut self.alone, other.alone),
            (&mut self.beside, other.beside),
        ] {
            mine.single.merge(&theirs.single);
            mine.multi.merge(&theirs.multi);
            for (k, n) in theirs.errors {
                *mine.errors.entry(k).or_default() += n;
            }
        }
        self.dropped += other.dropped;
        self.dropped_max_us = self.dropped_max_us.max(other.dropped_max_us);
    }
}

/// B's loops' controls: `paused` keeps them from starting requests,
/// `in_flight` counts the requests they have started and not seen end,
/// `stop` ends them.
#[derive(Default)]
struct BControl {
    stop: AtomicBool,
    paused: AtomicBool,
    in_flight: AtomicUsize,
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
        let side = Duration::from_secs(args.seconds.max(1));
        let window = Duration::from_millis(args.window_ms).clamp(WINDOW_MIN, side);
        let windows = side.as_millis().div_ceil(window.as_millis()) as usize;
        println!(
            "ohm: node pid {} at {addr}, {partitions} partitions; A: {} vote connections and \
             one results loop; B: {:?} x {} loops; {windows} windows of {} ms per side, \
             alone and beside B in ABBA order",
            pid,
            args.a_connections,
            args.b,
            args.b_loops,
            window.as_millis()
        );
        let control = Arc::new(BControl::default());
        control.paused.store(true, Ordering::SeqCst);
        let outcomes = Outcomes::default();
        // B runs on a thread and runtime of its own, so its loops do not
        // delay A's on the client side.
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let b_side = {
            let (control, outcomes, args) = (control.clone(), outcomes.clone(), args.clone());
            std::thread::spawn(move || run_b(b_cfg, &args, (control, outcomes), started_tx))
        };
        // B stops however this ends, an error on A's side included.
        let stop_b = StopOnDrop(control.clone());
        started.await.context("B's loops did not start")??;
        let switch = Arc::new(Switch::default());
        switch.set(SETTLING);
        let a_done = Arc::new(AtomicBool::new(false));
        let a_side = measure_a(&a_cfg, args, (switch.clone(), a_done.clone())).await?;
        let skipped = run_windows(&control, &switch, windows, window).await;
        a_done.store(true, Ordering::SeqCst);
        let sides = a_side.await?;
        drop(stop_b);
        if let Ok(Err(e)) = b_side.join() {
            eprintln!("warning: B's loops: {e:#}");
        }
        report(&sides, &outcomes);
        if skipped > 0 {
            println!("windows alone skipped (B's requests did not end in time): {skipped}");
        }
        anyhow::Ok(())
    })?;
    drop(node);
    Ok(ExitCode::SUCCESS)
}

/// Sets B's `stop` when dropped.
struct StopOnDrop(Arc<BControl>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// `windows` windows of `window` per side, alone and beside B in ABBA
/// order (each side as often first as second, so a trend in A's latency,
/// its table growing, weighs on both alike); then `SETTLING`. Returns how
/// many windows alone were skipped because B's requests did not end.
async fn run_windows(control: &BControl, switch: &Switch, windows: usize, window: Duration) -> u64 {
    let mut skipped = 0;
    let mut side = SETTLING;
    for w in 0..windows {
        let order = if w % 2 == 0 {
            [ALONE, BESIDE_B]
        } else {
            [BESIDE_B, ALONE]
        };
        for s in order {
            // Two windows of a side in a row are one longer window.
            if s != side {
                switch.set(SETTLING);
                if s == ALONE && !pause_b(control).await {
                    skipped += 1;
                    side = SETTLING;
                    tokio::time::sleep(window).await;
                    continue;
                }
                control.paused.store(s == ALONE, Ordering::SeqCst);
                switch.set(s);
                side = s;
            }
            tokio::time::sleep(window).await;
        }
    }
    switch.set(SETTLING);
    skipped
}

/// Pauses B's loops and waits (up to `B_STOP_WAIT`) until none of their
/// requests is in flight, then `SETTLE`. False if they did not end.
async fn pause_b(control: &BControl) -> bool {
    control.paused.store(true, Ordering::SeqCst);
    let quiet = tokio::time::timeout(B_STOP_WAIT, async {
        while control.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(PAUSE_POLL).await;
        }
    })
    .await;
    if quiet.is_err() {
        eprintln!("warning: B still had requests in flight {B_STOP_WAIT:?} after its pause");
        return false;
    }
    tokio::time::sleep(SETTLE).await;
    true
}

/// One of B's requests counted in `BControl::in_flight` until dropped (a
/// loop that panics takes its count back too).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a AtomicUsize) -> InFlight<'a> {
        n.fetch_add(1, Ordering::SeqCst);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// B's loops, each kind `b_loops` times, until `stop`; `started` hears
/// once they all are connected (or why they could not be).
fn run_b(
    cfg: ClientConfig,
    args: &IsolationArgs,
    (control, outcomes): (Arc<BControl>, Outcomes),
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
            for i in 0..args.b_loops {
                let client = match Client::connect(cfg.clone()).await {
                    Ok(c) => c,
                    Err(e) => {
                        connected = Err(anyhow::Error::new(e).context("connecting B"));
                        break 'kinds;
                    }
                };
                let (control, outcomes) = (control.clone(), outcomes.clone());
                let seed = args.seed ^ ((kind as u64) << 32) ^ i as u64;
                let bomb = (kind == Hog::Bombs).then(|| bomb(&format!("bomb{i}")));
                hogs.spawn(hog(kind, i, client, (control, outcomes), bomb, seed));
            }
        }
        let failed = connected.is_err();
        let _ = started.send(connected);
        if failed {
            control.stop.store(true, Ordering::SeqCst);
        }
        while !control.stop.load(Ordering::SeqCst) {
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

/// A's load until `done`: `a_connections` loops of `vote` and one of
/// `results`, each latency counted on the side `switch` showed at its
/// start and end. Connects, then runs on; its result is the two sides.
async fn measure_a(
    cfg: &ClientConfig,
    args: &IsolationArgs,
    (switch, done): (Arc<Switch>, Arc<AtomicBool>),
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<Sides>>> {
    let mut loops = tokio::task::JoinSet::new();
    for i in 0..args.a_connections.max(1) {
        let client = Client::connect(cfg.clone()).await?;
        let mut votes = VoteGen::new(args.seed ^ (i as u64 + 1));
        let (switch, done) = (switch.clone(), done.clone());
        loops.spawn(async move {
            let mut sides = Sides::default();
            while !done.load(Ordering::SeqCst) {
                let (phone, contestant) = votes.next_vote();
                let vote = vec![
                    Value::Int(phone),
                    Value::Int(contestant as i64),
                    Value::Int(MAX_VOTES),
                ];
                let (s, t) = (switch.now(), Instant::now());
                let r = client.call("vote", vote).await;
                let us = t.elapsed().as_micros() as u64;
                if let Some(p) = sides.of((s, switch.now()), us) {
                    p.single.record(us);
                    note_error(p, r);
                }
            }
            sides
        });
    }
    if args.results_pause_ms > 0 {
        let pause = Duration::from_millis(args.results_pause_ms);
        let client = Client::connect(cfg.clone()).await?;
        let (switch, done) = (switch.clone(), done.clone());
        loops.spawn(async move {
            let mut sides = Sides::default();
            while !done.load(Ordering::SeqCst) {
                let (s, t) = (switch.now(), Instant::now());
                let r = client.call("results", vec![]).await;
                let us = t.elapsed().as_micros() as u64;
                if let Some(p) = sides.of((s, switch.now()), us) {
                    p.multi.record(us);
                    note_error(p, r);
                }
                tokio::time::sleep(pause).await;
            }
            sides
        });
    }
    Ok(async move {
        let mut all = Sides::default();
        while let Some(sides) = loops.join_next().await {
            all.merge(sides.context("one of A's loops")?);
        }
        Ok(all)
    })
}

fn note_error(p: &mut Latencies, r: Result<CallResult, ClientError>) {
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
    (control, outcomes): (Arc<BControl>, Outcomes),
    bomb: Option<Vec<u8>>,
    seed: u64,
) {
    let mut rng = super::load::SplitMix::new(seed);
    let mut round = 0usize;
    let mut flooded: Vec<String> = Vec::new();
    while !control.stop.load(Ordering::SeqCst) {
        // Counted in flight before `paused` is read: the bench sets
        // `paused` before it reads `in_flight`, so one of the two sees
        // the other.
        let in_flight = InFlight::enter(&control.in_flight);
        if control.paused.load(Ordering::SeqCst) {
            drop(in_flight);
            tokio::time::sleep(PAUSE_POLL).await;
            continue;
        }
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
        drop(o);
        drop(in_flight);
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

fn report(sides: &Sides, outcomes: &Outcomes) {
    let (alone, beside) = (&sides.alone, &sides.beside);
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
        ("vote (one partition)", &alone.single, &beside.single),
        ("results (all partitions)", &alone.multi, &beside.multi),
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
    for (side, p) in [("alone", alone), ("beside B", beside)] {
        if !p.errors.is_empty() {
            println!("A's errors {side}: {:?}", p.errors);
        }
    }
    println!(
        "A's calls while B settled (counted on neither side): {}, the longest {} ms",
        sides.dropped,
        ms(Some(sides.dropped_max_us))
    );
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

    #[test]
    fn a_call_counts_alone_only_if_it_saw_nothing_but_a_window_alone() {
        let switch = Switch::default();
        let mut words = Vec::new();
        for side in [SETTLING, ALONE, SETTLING, BESIDE_B, SETTLING] {
            switch.set(side);
            words.push(switch.now());
        }
        let [settling, alone, before_b, beside, after_b] = words[..] else {
            unreachable!()
        };
        let mut sides = Sides::default();
        assert!(sides.of((alone, alone), 1).is_some_and(|p| {
            p.single.record(1);
            true
        }));
        assert_eq!(sides.alone.single.count(), 1);
        // Overlapping B's start or end, or inside it: beside B.
        for span in [(alone, beside), (beside, after_b), (beside, beside)] {
            sides.of(span, 1).unwrap().single.record(1);
        }
        assert_eq!(sides.beside.single.count(), 3);
        // The settling, or a switch with no window beside B in it: neither.
        for span in [(settling, alone), (alone, before_b), (after_b, after_b)] {
            assert!(sides.of(span, 7).is_none());
        }
        assert_eq!((sides.dropped, sides.dropped_max_us), (3, 7));
    }

    #[test]
    fn a_window_alone_waits_until_the_node_stops_counting_b_active() {
        use crate::node::runner::{ACTIVE_FOR, HEAVY_FOR};
        assert!(SETTLE > ACTIVE_FOR && SETTLE > HEAVY_FOR);
    }
}
