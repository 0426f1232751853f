//! `ohm bench failover`: how long writes stop when the leader is killed.
//!
//! A local cluster (`LocalCluster`, the kv example deployed) takes puts
//! from a few writers, each through its own `ClusterClient`, one put in
//! flight each. Then, `--kills` times: wait until writes have gone through
//! for `STEADY_FOR` and one node leads every partition, kill -9 that node,
//! and time from the kill until the first put *sent after the kill* is
//! acknowledged (by any writer); then restart the node. Prints every kill, the
//! median and the maximum, and reads every acknowledged put back at the
//! end (one missing fails the run). Timings are printed, never asserted.
//!
//! ```text
//!   writers --put--> ClusterClient --> leader --+   kill -9 leader at t0
//!      | ack of a put sent after t0 = resumed   |   restart it, wait steady
//!      +--------------------------------------> report median / max
//! ```

use super::local_cluster::{LocalCluster, LocalClusterOptions};
use super::voter::Durability;
use crate::driver::cluster::ClusterClient;
use crate::driver::{CallResult, ClientError};
use crate::proto::ErrorCode;
use crate::types::Value;
use anyhow::bail;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kills one run may ask for.
pub const KILLS_MAX: u32 = 1000;
/// Writers one run may ask for.
pub const WRITERS_MAX: usize = 64;
/// Writes must go through for this long before a kill (and after a
/// restart) so every kill finds a settled cluster.
const STEADY_FOR: Duration = Duration::from_secs(2);
/// A kill after which no write is acknowledged for this long counts as a
/// failed failover (and ends the run).
const RESUME_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for writes to settle before a kill.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Puts read back at once when checking.
const CHECK_IN_FLIGHT: usize = 16;

#[derive(Debug, Clone, clap::Args)]
pub struct FailoverArgs {
    /// Node processes in the local cluster (every partition on each).
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Leaders to kill, one after another.
    #[arg(long, default_value_t = 20)]
    pub kills: u32,
    /// Partitions of the cluster.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Writers, each with its own cluster client and one put in flight.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    #[arg(long, value_enum, default_value_t = Durability::Sync)]
    pub durability: Durability,
}

/// What the writers share with the run.
struct Watch {
    /// Microseconds since `start` of the last kill (`NO_KILL`: none now).
    killed_at_us: AtomicU64,
    /// Microseconds since `start` of the first acknowledgement of a put
    /// sent after the last kill (0: none yet).
    resumed_at_us: AtomicU64,
    /// Microseconds since `start` of the latest error of any writer.
    last_error_us: AtomicU64,
    acked: AtomicU64,
    unknown: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    /// The last error's text, to print.
    last_error: Mutex<String>,
}

/// `Watch::killed_at_us` between kills.
const NO_KILL: u64 = u64::MAX;

impl Default for Watch {
    fn default() -> Watch {
        Watch {
            killed_at_us: AtomicU64::new(NO_KILL),
            resumed_at_us: AtomicU64::default(),
            last_error_us: AtomicU64::default(),
            acked: AtomicU64::default(),
            unknown: AtomicU64::default(),
            errors: AtomicU64::default(),
            stop: AtomicBool::default(),
            last_error: Mutex::default(),
        }
    }
}

/// Waits until one node leads every partition (leaders gather on partition
/// 0's leader) and returns its index: the node to kill.
async fn gathered_leader(
    cfg: &crate::driver::ClientConfig,
    addrs: &[String],
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        for (i, a) in addrs.iter().enumerate() {
            let mut one = cfg.clone();
            one.addr = a.clone();
            let Ok(c) = crate::driver::Client::connect(one).await else {
                continue;
            };
            let status = c.status().await;
            c.close().await;
            if status.is_ok_and(|s| s.partitions.iter().all(|p| p.role == "leader")) {
                return Ok(i);
            }
        }
        if Instant::now() >= deadline {
            bail!("no node led every partition within {SETTLE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn run(args: &FailoverArgs) -> anyhow::Result<ExitCode> {
    if args.nodes < 3 {
        bail!("--nodes must be at least 3 (a group of fewer cannot lose its leader and go on)");
    }
    if !(1..=KILLS_MAX).contains(&args.kills) {
        bail!("--kills must be 1 to {KILLS_MAX}");
    }
    if !(1..=WRITERS_MAX).contains(&args.writers) {
        bail!("--writers must be 1 to {WRITERS_MAX}");
    }
    println!(
        "ohm bench failover: {} node processes, {} partitions (each on every node), durability \
         {:?}, {} writers with one put in flight each, {} kills (kill -9 of the leader)",
        args.nodes, args.partitions, args.durability, args.writers, args.kills
    );
    let cluster = LocalCluster::start(&LocalClusterOptions::new(
        args.nodes,
        args.partitions,
        args.durability,
    ))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = rt.block_on(drive(args, cluster));
    let (times, acked_ok) = outcome?;
    Ok(if acked_ok && times.len() == args.kills as usize {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the kills; the failover times, and whether every acknowledged put
/// was read back.
async fn drive(
    args: &FailoverArgs,
    cluster: LocalCluster,
) -> anyhow::Result<(Vec<Duration>, bool)> {
    cluster.set_up_examples(&["kv"]).await?;
    let addrs = cluster.addrs.clone();
    let cfg = cluster.demo_config()?;
    let cluster = Arc::new(Mutex::new(cluster));
    let start = Instant::now();
    let watch = Arc::new(Watch::default());
    let mut writers = Vec::new();
    for w in 0..args.writers {
        let client = ClusterClient::connect(cfg.clone(), &addrs).await?;
        writers.push(tokio::spawn(write(w, client, watch.clone(), start)));
    }
    let mut times = Vec::new();
    for k in 1..=args.kills {
        settle(&watch, start).await?;
        let i = gathered_leader(&cfg, &addrs).await?;
        // No kill counts while the last one's watch is reset; the kill time
        // is taken once the process is gone, so no put sent after it can
        // have been acknowledged by the node killed.
        watch.killed_at_us.store(NO_KILL, Ordering::SeqCst);
        watch.resumed_at_us.store(0, Ordering::SeqCst);
        lock(&cluster).kill9(i)?;
        let killed = us_since(start);
        watch.killed_at_us.store(killed, Ordering::SeqCst);
        let deadline = Instant::now() + RESUME_TIMEOUT;
        let resumed = loop {
            let r = watch.resumed_at_us.load(Ordering::SeqCst);
            if r != 0 {
                break Some(r);
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let Some(resumed) = resumed else {
            println!(
                "kill {k}: node {} killed; no write acknowledged within {RESUME_TIMEOUT:?} \
                 (last error: {})",
                i + 1,
                lock_text(&watch.last_error)
            );
            break;
        };
        let took = Duration::from_micros(resumed.saturating_sub(killed));
        times.push(took);
        let restart = Instant::now();
        let c2 = cluster.clone();
        tokio::task::spawn_blocking(move || lock(&c2).start_node(i)).await??;
        println!(
            "kill {k}: node {} (leader) killed; writes resumed after {:.3} s; restarted in {:.1} s",
            i + 1,
            took.as_secs_f64(),
            restart.elapsed().as_secs_f64()
        );
    }
    watch.stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for w in writers {
        acked.push(w.await?);
    }
    report(&times);
    let total: usize = acked.iter().map(Vec::len).sum();
    println!(
        "puts: {total} acknowledged, {} of unknown outcome (in flight to a killed node), {} \
         refused or failed",
        watch.unknown.load(Ordering::SeqCst),
        watch.errors.load(Ordering::SeqCst)
    );
    let checker = Arc::new(ClusterClient::connect(cfg, &addrs).await?);
    let missing = check(&checker, acked).await?;
    if missing.is_empty() {
        println!("every acknowledged put was read back");
    } else {
        println!(
            "LOST: {} acknowledged puts are missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
    tokio::task::spawn_blocking(move || lock(&cluster).stop()).await?;
    Ok((times, missing.is_empty()))
}

/// Waits until no writer has failed for `STEADY_FOR` and writes go on.
async fn settle(watch: &Watch, start: Instant) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let quiet_since = watch.last_error_us.load(Ordering::SeqCst);
        let before = watch.acked.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let quiet = us_since(start).saturating_sub(quiet_since) >= STEADY_FOR.as_micros() as u64;
        if quiet && watch.acked.load(Ordering::SeqCst) > before {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "writes did not settle within {SETTLE_TIMEOUT:?} (last error: {})",
                lock_text(&watch.last_error)
            );
        }
    }
}

/// One writer: puts `w<w>-<n>` = n, one at a time, until told to stop;
/// returns the n of every acknowledged put.
async fn write(w: usize, client: ClusterClient, watch: Arc<Watch>, start: Instant) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut n = 0u64;
    while !watch.stop.load(Ordering::SeqCst) {
        n += 1;
        let sent = us_since(start);
        let args = vec![
            Value::text(&format!("w{w}-{n}")),
            Value::Bytes(n.to_be_bytes().to_vec().into()),
        ];
        match client.call("put", args).await {
            Ok(_) => {
                acked.push(n);
                watch.acked.fetch_add(1, Ordering::SeqCst);
                let killed = watch.killed_at_us.load(Ordering::SeqCst);
                if killed != NO_KILL && sent >= killed {
                    let now = us_since(start);
                    let _ = watch.resumed_at_us.compare_exchange(
                        0,
                        now,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
            }
            Err(e) => {
                let unknown = matches!(e, ClientError::Closed { .. })
                    || matches!(&e, ClientError::Server(s) if s.code == ErrorCode::Unavailable);
                let counter = if unknown {
                    &watch.unknown
                } else {
                    &watch.errors
                };
                counter.fetch_add(1, Ordering::SeqCst);
                watch.last_error_us.store(us_since(start), Ordering::SeqCst);
                *watch.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    acked
}

/// Reads every acknowledged put back; the keys missing or wrong.
async fn check(client: &Arc<ClusterClient>, acked: Vec<Vec<u64>>) -> anyhow::Result<Vec<String>> {
    let keys: Vec<(String, u64)> = acked
        .into_iter()
        .enumerate()
        .flat_map(|(w, ns)| ns.into_iter().map(move |n| (format!("w{w}-{n}"), n)))
        .collect();
    let mut missing = Vec::new();
    for chunk in keys.chunks(CHECK_IN_FLIGHT) {
        let gets = chunk.iter().cloned().map(|(key, n)| {
            let client = client.clone();
            async move {
                let got = client.call("get", vec![Value::text(&key)]).await;
                match got {
                    Ok(CallResult::Value(Value::Bytes(b))) if b[..] == n.to_be_bytes() => Ok(None),
                    Ok(other) => Ok(Some(format!("{key} = {other:?}"))),
                    Err(e) => Err(anyhow::anyhow!("reading {key} back: {e}")),
                }
            }
        });
        for r in futures_join(gets).await {
            if let Some(m) = r? {
                missing.push(m);
            }
        }
    }
    Ok(missing)
}

/// Runs the futures concurrently; their results in order.
async fn futures_join<T, F>(fs: impl Iterator<Item = F>) -> Vec<anyhow::Result<T>>
where
    F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.map_err(anyhow::Error::from).and_then(|r| r));
    }
    out
}

fn report(times: &[Duration]) {
    if times.is_empty() {
        println!("no failover completed");
        return;
    }
    let mut sorted = times.to_vec();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    let min = sorted[0];
    println!(
        "failover over {} kills: median {:.3} s, max {:.3} s, min {:.3} s (kill -9 to the first \
         acknowledged put sent after it)",
        times.len(),
        median.as_secs_f64(),
        max.as_secs_f64(),
        min.as_secs_f64()
    );
}

fn us_since(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock_text(m: &Mutex<String>) -> String {
    lock(m).clone()
}
