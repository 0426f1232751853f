//! `ohm bench snapshot`: how long a partition stops answering while its
//! snapshots are taken, and how many bytes they write, at a state of a few
//! GiB (issue 12). Each side is a fresh `ohm serve --demo` child with one
//! partition: loaders put `--gib` of values through the kv example, so the
//! node takes its snapshots as its log grows (each once the log has grown
//! by the threshold or by the newest snapshot); after the load the
//! loaders overwrite keys until the snapshot that holds the whole state
//! is written, so the largest one is taken under load too. Meanwhile a prober on its own connection
//! reads a key and writes another, one call at a time: a call's time is
//! from its first send until it succeeds (an error is counted and sent
//! again), so a pause shows as one long call. The sides are the snapshot
//! encoded in one go (`--snapshot-step-kib 0`, as before stepped
//! snapshots) and in 1 MiB steps between calls, one after the other in
//! the same run. Timings are printed, never asserted.
//!
//! ```text
//!   loaders (C x K puts) --QUIC--> ohm serve (1 partition) --> p0/snap-*.snap
//!   prober (get, put; 1 at a time) --^                 watcher (polls p0/) --^
//! ```

use super::load::Histogram;
use super::voter::node::NodeProcess;
use super::voter::Durability;
use crate::driver::{Client, ClientConfig, Trust};
use crate::types::Value;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest state a run may load.
const GIB_MAX: f64 = 64.0;
/// Loader connections a run may ask for, and puts in flight on each.
const LOADERS_MAX: usize = 64;
const IN_FLIGHT_MAX: usize = 1024;
/// How often the watcher lists the partition's directory.
const WATCH_EVERY: Duration = Duration::from_millis(20);
/// Times one put is sent again after an error before the side is given up.
const RESENDS_MAX: u32 = 100;
/// Pause between a failed call and its next send.
const RESEND_DELAY: Duration = Duration::from_millis(10);
/// The snapshot waited for after the load holds at least this share of
/// the loaded bytes.
const WHOLE_STATE_SHARE: f64 = 0.9;
/// Calls of the prober this slow or slower are counted as pauses.
const PAUSE_US: u64 = 100_000;
/// Lines of the node's log shown when a side fails.
const NODE_LOG_TAIL_LINES: usize = 20;
/// The longest calls of each kind printed, with when they began.
const LONGEST_KEPT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StepSide {
    /// The whole snapshot encoded in one go (`--snapshot-step-kib 0`).
    OneGo,
    /// Encoded in steps between calls (the node's default).
    Steps,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// GiB of values loaded: about the state the last snapshot holds.
    #[arg(long, default_value_t = 4.0)]
    pub gib: f64,
    /// Bytes of each value put.
    #[arg(long, default_value_t = 4096)]
    pub value_bytes: usize,
    /// Loader connections.
    #[arg(long, default_value_t = 4)]
    pub loaders: usize,
    /// Puts in flight on each loader connection.
    #[arg(long, default_value_t = 32)]
    pub in_flight: usize,
    /// The node's `--snapshot-log-mib`.
    #[arg(long, default_value_t = 256)]
    pub snapshot_log_mib: u64,
    /// The sides measured, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [StepSide::OneGo, StepSide::Steps])]
    pub sides: Vec<StepSide>,
    /// Longest wait after the load for the snapshot of the whole state.
    #[arg(long, default_value_t = 300)]
    pub settle_seconds: u64,
    /// KiB per step on the `steps` side (default: the node's own, 1 MiB).
    #[arg(long)]
    pub step_kib: Option<u64>,
    /// The `ohm` binary the node runs (default: this one). Another
    /// version's measures it as it was: its `steps` side runs with its own
    /// default (`one-go` needs a binary that knows `--snapshot-step-kib`).
    #[arg(long)]
    pub node_binary: Option<PathBuf>,
}

/// What one side measured.
struct Measured {
    side: StepSide,
    load: Duration,
    loaded_bytes: u64,
    /// Each snapshot file seen, by name: its size and when it was first
    /// seen (ms since the node started).
    snapshots: BTreeMap<String, (u64, u64)>,
    gets: Probe,
    puts: Probe,
    errors: u64,
    /// Puts to loaded keys after the load, until the last snapshot.
    overwrites: u64,
    /// The node's peak resident memory (VmHWM), KiB.
    peak_rss_kib: Option<u64>,
}

/// One kind of prober call.
#[derive(Default)]
struct Probe {
    hist: Histogram,
    max_us: u64,
    /// Calls of `PAUSE_US` or longer.
    pauses: u64,
    /// The `LONGEST_KEPT` longest: (µs, began ms since the node started).
    longest: Vec<(u64, u64)>,
}

impl Probe {
    fn record(&mut self, us: u64, began_ms: u64) {
        self.hist.record(us);
        self.max_us = self.max_us.max(us);
        self.pauses += u64::from(us >= PAUSE_US);
        self.longest.push((us, began_ms));
        self.longest.sort_unstable_by(|a, b| b.cmp(a));
        self.longest.truncate(LONGEST_KEPT);
    }
}

pub fn run(args: &SnapshotArgs) -> anyhow::Result<ExitCode> {
    if !(args.gib > 0.0 && args.gib <= GIB_MAX) {
        bail!("--gib must be more than 0 and at most {GIB_MAX}");
    }
    if !(1..=LOADERS_MAX).contains(&args.loaders) || !(1..=IN_FLIGHT_MAX).contains(&args.in_flight)
    {
        bail!("--loaders must be 1 to {LOADERS_MAX}, --in-flight 1 to {IN_FLIGHT_MAX}");
    }
    // The kv schema's `v VARBINARY(1048576)`.
    let value_max = 1 << 20;
    if !(1..=value_max).contains(&args.value_bytes) {
        bail!("--value-bytes must be 1 to {value_max}");
    }
    println!(
        "ohm bench snapshot: {} GiB of {}-byte values into one partition ({} loaders x {} \
         puts in flight, --snapshot-log-mib {}), durability sync; a prober gets and puts one \
         call at a time; sides: {:?}; node binary: {}",
        args.gib,
        args.value_bytes,
        args.loaders,
        args.in_flight,
        args.snapshot_log_mib,
        args.sides,
        args.node_binary
            .as_ref()
            .map_or("this one".into(), |p| p.display().to_string())
    );
    let mut done = Vec::new();
    for &side in &args.sides {
        let m = measure_side(args, side)?;
        print_side(&m);
        done.push(m);
    }
    let find = |s| done.iter().find(|m| m.side == s);
    if let (Some(one), Some(steps)) = (find(StepSide::OneGo), find(StepSide::Steps)) {
        let longest = |m: &Measured| m.gets.max_us.max(m.puts.max_us).max(1);
        println!(
            "longest prober call, one go / steps: {:.1}x ({} ms / {} ms); calls of {} ms or \
             more: {} / {}",
            longest(one) as f64 / longest(steps) as f64,
            longest(one) / 1000,
            longest(steps) / 1000,
            PAUSE_US / 1000,
            one.gets.pauses + one.puts.pauses,
            steps.gets.pauses + steps.puts.pauses,
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn measure_side(args: &SnapshotArgs, side: StepSide) -> anyhow::Result<Measured> {
    let mut more = vec![
        "--snapshot-log-mib".to_string(),
        args.snapshot_log_mib.to_string(),
    ];
    let step_kib = match side {
        StepSide::OneGo => Some(0),
        StepSide::Steps => args.step_kib.filter(|&k| k > 0),
    };
    if let Some(k) = step_kib {
        more.extend(["--snapshot-step-kib".to_string(), k.to_string()]);
    }
    let exe = args.node_binary.as_deref();
    let node = NodeProcess::start_with(Durability::Sync, Some(1), exe, &more)?;
    let trust = Trust::Fingerprint(node.ready.fingerprint.clone());
    let cfg = ClientConfig::new(node.ready.addr.clone(), trust, node.demo_token()?);
    let p0 = node.ready.data.join("p0");
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Seen = Arc::default();
    let started = Instant::now();
    let watcher = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || watch(&p0, (&stop, started), &seen))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = rt.block_on(drive(args, cfg, (&stop, &seen), started));
    stop.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    let peak_rss_kib = peak_rss_kib(node.pid());
    // The node's directory goes with it: what it said is kept here.
    let outcome = outcome.with_context(|| {
        let log = std::fs::read_to_string(node.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(NODE_LOG_TAIL_LINES).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "side {side:?}; the end of the node's log:\n{}",
            tail.join("\n")
        )
    });
    let (load, loaded_bytes, (gets, puts), (errors, overwrites)) = outcome?;
    drop(node);
    let snapshots = std::mem::take(&mut *lock(&seen));
    Ok(Measured {
        side,
        load,
        loaded_bytes,
        snapshots,
        gets,
        puts,
        errors,
        overwrites,
        peak_rss_kib,
    })
}

/// Load time, bytes, the prober's (gets, puts), (errors, overwrites).
type Outcome = (Duration, u64, (Probe, Probe), (u64, u64));
/// The snapshot files seen: name -> (bytes, first seen ms).
type Seen = Arc<Mutex<BTreeMap<String, (u64, u64)>>>;

/// Loads, waits for the snapshot of the whole state, and stops the prober.
async fn drive(
    args: &SnapshotArgs,
    cfg: ClientConfig,
    (stop, seen): (&Arc<AtomicBool>, &Seen),
    node_started: Instant,
) -> anyhow::Result<Outcome> {
    let prober = Client::connect(cfg.clone()).await?;
    put(&prober, "probe-read", vec![7; 64]).await?;
    let errors = Arc::new(AtomicU64::new(0));
    let probing = tokio::spawn(probe(prober, (stop.clone(), node_started), errors.clone()));
    let keys = ((args.gib * (1u64 << 30) as f64) / args.value_bytes as f64).ceil() as u64;
    // Puts handed out (past `keys`: overwrites), and puts of new keys done.
    let (next, loaded) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let loading = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.loaders {
        let client = Client::connect(cfg.clone()).await?;
        for _ in 0..args.in_flight {
            let (client, errors) = (client.clone(), errors.clone());
            let (next, loaded, loading) = (next.clone(), loaded.clone(), loading.clone());
            let value_bytes = args.value_bytes;
            tasks.push(tokio::spawn(async move {
                while loading.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let value: Vec<u8> = (0..value_bytes).map(|b| (i as usize + b) as u8).collect();
                    let key = format!("k{:012}", i % keys);
                    put_resent(&client, &key, value, &errors).await?;
                    if i < keys {
                        loaded.fetch_add(1, Ordering::Relaxed);
                    }
                }
                anyhow::Ok(())
            }));
        }
    }
    let loaded_bytes = keys * args.value_bytes as u64;
    let whole = (loaded_bytes as f64 * WHOLE_STATE_SHARE) as u64;
    let mut load = None;
    let mut deadline = None;
    // Loaded, the loaders overwrite keys until the snapshot holding the
    // whole state is written (whether the log grows enough for it by the
    // end of the load depends on where the snapshots before fell).
    while !lock(seen).values().any(|&(size, _)| size >= whole) {
        if load.is_none() && loaded.load(Ordering::Relaxed) >= keys {
            load = Some(started.elapsed());
            deadline = Some(Instant::now() + Duration::from_secs(args.settle_seconds));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) || tasks.iter().any(|t| t.is_finished()) {
            stop.store(true, Ordering::SeqCst);
            loading.store(false, Ordering::SeqCst);
            for t in tasks {
                t.await??;
            }
            bail!(
                "no snapshot of {whole} bytes or more within {} s of the load (seen: {:?})",
                args.settle_seconds,
                lock(seen)
            );
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
    stop.store(true, Ordering::SeqCst);
    loading.store(false, Ordering::SeqCst);
    for t in tasks {
        t.await??;
    }
    let (gets, puts) = probing.await??;
    let overwrites = next.load(Ordering::SeqCst).saturating_sub(keys);
    Ok((
        load.unwrap_or_else(|| started.elapsed()),
        loaded_bytes,
        (gets, puts),
        (errors.load(Ordering::SeqCst), overwrites),
    ))
}

/// Gets one key and puts another, one call at a time, until `stop`.
async fn probe(
    client: Client,
    (stop, node_started): (Arc<AtomicBool>, Instant),
    errors: Arc<AtomicU64>,
) -> anyhow::Result<(Probe, Probe)> {
    let ms = |t: Instant| t.duration_since(node_started).as_millis() as u64;
    let (mut gets, mut puts) = (Probe::default(), Probe::default());
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let sent = Instant::now();
        let mut resends = 0;
        loop {
            match client.call("get", vec![Value::text("probe-read")]).await {
                Ok(_) => break,
                Err(e) if resends < RESENDS_MAX && !stop.load(Ordering::SeqCst) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if resends == 0 {
                        eprintln!("warning: the prober's get: {e} (sent again)");
                    }
                    resends += 1;
                }
                Err(e) => bail!("the prober's get, sent {resends} times: {e}"),
            }
            tokio::time::sleep(RESEND_DELAY).await;
        }
        gets.record(sent.elapsed().as_micros() as u64, ms(sent));
        let sent = Instant::now();
        put_resent(&client, "probe-write", n.to_be_bytes().to_vec(), &errors).await?;
        puts.record(sent.elapsed().as_micros() as u64, ms(sent));
    }
    Ok((gets, puts))
}

/// A put, sent again after an error up to `RESENDS_MAX` times.
async fn put_resent(
    client: &Client,
    key: &str,
    value: Vec<u8>,
    errors: &AtomicU64,
) -> anyhow::Result<()> {
    let mut resends = 0;
    loop {
        match put(client, key, value.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if resends < RESENDS_MAX => {
                errors.fetch_add(1, Ordering::Relaxed);
                if resends == 0 {
                    eprintln!("warning: put {key}: {e:#} (sent again)");
                }
                resends += 1;
                tokio::time::sleep(RESEND_DELAY).await;
            }
            Err(e) => return Err(e.context(format!("put {key}, sent {RESENDS_MAX} times"))),
        }
    }
}

async fn put(client: &Client, key: &str, value: Vec<u8>) -> anyhow::Result<()> {
    let args = vec![Value::text(key), Value::Bytes(value.into())];
    client.call("put", args).await?;
    Ok(())
}

/// Records the size of every `snap-*.snap` in `dir` until `stop`: a
/// snapshot file appears whole (written aside, then renamed).
fn watch(
    dir: &Path,
    (stop, started): (&AtomicBool, Instant),
    seen: &Mutex<BTreeMap<String, (u64, u64)>>,
) {
    while !stop.load(Ordering::SeqCst) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("snap-") && name.ends_with(".snap") {
                    if let Ok(meta) = e.metadata() {
                        let ms = started.elapsed().as_millis() as u64;
                        lock(seen).entry(name).or_insert((meta.len(), ms));
                    }
                }
            }
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

/// The process's peak resident memory, from /proc (None elsewhere).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status"))).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn print_side(m: &Measured) {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let written: u64 = m.snapshots.values().map(|s| s.0).sum();
    println!("\nside {:?}:", m.side);
    println!(
        "  load: {:.1} MiB in {:.1} s ({:.1} MiB/s), then {} overwrites until the last \
         snapshot; errors sent again: {}; node peak RSS: {}",
        mib(m.loaded_bytes),
        m.load.as_secs_f64(),
        mib(m.loaded_bytes) / m.load.as_secs_f64().max(1e-9),
        m.overwrites,
        m.errors,
        m.peak_rss_kib.map_or("unknown".into(), |k| format!(
            "{:.0} MiB",
            k as f64 / 1024.0
        )),
    );
    let sizes: Vec<String> = m
        .snapshots
        .values()
        .map(|&(b, at)| format!("{:.0} (at {:.1} s)", mib(b), at as f64 / 1e3))
        .collect();
    println!(
        "  snapshots: {} written, {:.0} MiB in all ({:.2}x the loaded bytes); MiB (seen at): {}",
        m.snapshots.len(),
        mib(written),
        written as f64 / m.loaded_bytes.max(1) as f64,
        sizes.join(", ")
    );
    for (what, p) in [("get", &m.gets), ("put", &m.puts)] {
        let q = |x| {
            p.hist
                .quantile(x)
                .map_or("-".into(), |us| format!("{:.1}", us as f64 / 1e3))
        };
        println!(
            "  prober {what}: {} calls, p50 {} ms, p99 {} ms, p99.9 {} ms, max {:.1} ms, \
             {} of {} ms or more",
            p.hist.count(),
            q(0.5),
            q(0.99),
            q(0.999),
            p.max_us as f64 / 1e3,
            p.pauses,
            PAUSE_US / 1000
        );
        let longest: Vec<String> = p
            .longest
            .iter()
            .map(|&(us, at)| format!("{:.0} ms at {:.1} s", us as f64 / 1e3, at as f64 / 1e3))
            .collect();
        println!("    longest: {}", longest.join(", "));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
