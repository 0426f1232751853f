//! `ohm torture`: the fault suite on real processes. Each schedule starts a
//! fresh cluster of `ohm serve` processes, each in its own network
//! namespace (`testbed`), runs the kv, bank and voter workloads against it
//! (`workload`) while a seeded plan of faults (`schedule`) kills, pauses,
//! cuts off and drops packets of its nodes, heals everything, and then
//! checks: the kv history is linearizable, money is conserved, the votes
//! counted are the votes stored and acknowledged, the cluster takes writes
//! again, and every replica reaches the same applied slot and row count.
//!
//! Owns: the run loop, turning a plan's faults into signals, restarts and
//! cuts, and the verdicts. Must not: judge anything a workload's check does
//! not prove, or leave processes, namespaces or rules behind (drops).
//!
//! ```text
//!   for seed in seeds:  Testbed + LocalCluster ─▶ set up ─▶ workloads ┐
//!                       plan(seed) ─▶ fault, hold, heal, gap, ...     ├─▶ heal all
//!                       checks ◀─ stop workloads ◀─ writes resume ◀───┘
//!   verdict per schedule; exit 1 on any anomaly (or, with --planted-bug,
//!   exit 0 only if one was found)
//! ```

pub mod schedule;
pub mod testbed;
pub mod workload;

use crate::bench::local_cluster::{LocalCluster, LocalClusterOptions};
use crate::bench::voter::Durability;
use crate::driver::cluster::ClusterClient;
use crate::driver::{Client, ClientConfig};
use crate::proto::StatusInfo;
use crate::rng::Rng;
use anyhow::bail;
use schedule::{Fault, Step, Target};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testbed::Testbed;

/// Schedules one run may have.
pub const SCHEDULES_MAX: u32 = 10_000;
/// Longest fault phase of one schedule.
pub const SECONDS_MAX: u64 = 3600;
/// How long setting up the schemas, modules, accounts and contestants may
/// take (modules compile on every node).
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a node may take to answer `status` before it counts as down.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// After the heal, how long the workloads go on before they stop.
const AFTER_HEAL: Duration = Duration::from_secs(2);
/// After the heal, how long the cluster may take to take a write again.
const RESUME_TIMEOUT: Duration = Duration::from_secs(60);
/// After the workloads stop, how long the replicas may take to agree.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long replicas at the same applied slots may show different row
/// counts (each node publishes its counts every `ROWS_EVERY`, 200 ms)
/// before that counts as a divergence.
const ROWS_SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, clap::Args)]
pub struct TortureArgs {
    /// Node processes (3 to 5; every partition on each).
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Schedules to run, seeds --seed, --seed + 1, ...
    #[arg(long, default_value_t = 20)]
    pub schedules: u32,
    /// The first schedule's seed (run one schedule again with its seed).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long faults are injected in each schedule.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Partitions of each cluster.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Run the nodes with this planted bug (a debug build's
    /// `OHM_PLANTED_BUG`, e.g. ack_before_chosen) and expect the suite to
    /// catch it: exit 0 once a schedule finds an anomaly, 1 if none does.
    #[arg(long, value_name = "BUG")]
    pub planted_bug: Option<String>,
    /// The `ohm` binary the nodes run (default: this one).
    #[arg(long, value_name = "PATH")]
    pub ohm: Option<PathBuf>,
    /// The workloads to run and check.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "kv,bank,voter"
    )]
    pub workloads: Vec<Workload>,
}

/// A workload of the suite (`workload`), with its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Registers: the history must be linearizable.
    Kv,
    /// Multi-partition transfers: money is conserved.
    Bank,
    /// Single-partition votes: counted as stored and acknowledged.
    Voter,
}

/// What one schedule found.
struct Verdict {
    /// Broken invariants: lost or phantom writes, stale reads, money made
    /// or lost, replicas that disagree.
    safety: Vec<String>,
    /// The cluster did not come back after the heal.
    liveness: Vec<String>,
}

pub fn run(args: &TortureArgs) -> anyhow::Result<ExitCode> {
    if !(3..=5).contains(&args.nodes) {
        bail!("--nodes must be 3 to 5");
    }
    if !(1..=SCHEDULES_MAX).contains(&args.schedules) {
        bail!("--schedules must be 1 to {SCHEDULES_MAX}");
    }
    if !(1..=SECONDS_MAX).contains(&args.seconds) {
        bail!("--seconds must be 1 to {SECONDS_MAX}");
    }
    println!(
        "ohm torture: {} schedules (seeds {}..={}), {} node processes in their own network \
         namespaces, {} partitions, {} s of faults each{}",
        args.schedules,
        args.seed,
        args.seed + u64::from(args.schedules) - 1,
        args.nodes,
        args.partitions,
        args.seconds,
        args.planted_bug.as_ref().map_or(String::new(), |b| format!(
            "; planted bug: {b} (must be caught)"
        ))
    );
    testbed::check_tools()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let (mut failed, mut caught) = (0u32, None);
    for k in 0..args.schedules {
        let seed = args.seed + u64::from(k);
        // A schedule the suite itself could not run (its cluster would not
        // start or set up) fails, and the run goes on.
        let v = schedule_once(&rt, args, seed).unwrap_or_else(|e| {
            println!("schedule seed {seed}: ERROR {e:#}");
            Verdict {
                safety: vec![],
                liveness: vec![format!("the schedule could not run: {e:#}")],
            }
        });
        if !v.safety.is_empty() || !v.liveness.is_empty() {
            failed += 1;
        }
        if args.planted_bug.is_some() && !v.safety.is_empty() {
            caught = Some(seed);
            break;
        }
    }
    let took = started.elapsed().as_secs_f64();
    Ok(match &args.planted_bug {
        Some(bug) => match caught {
            Some(seed) => {
                println!(
                    "planted bug {bug}: CAUGHT by the schedule with seed {seed} ({took:.0} s)"
                );
                ExitCode::SUCCESS
            }
            None => {
                println!(
                    "planted bug {bug}: NOT caught by {} schedules ({took:.0} s)",
                    args.schedules
                );
                ExitCode::FAILURE
            }
        },
        None => {
            println!(
                "{} schedules, {failed} with anomalies ({took:.0} s)",
                args.schedules
            );
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    })
}

/// One schedule on a fresh testbed and cluster; prints its verdict.
fn schedule_once(
    rt: &tokio::runtime::Runtime,
    args: &TortureArgs,
    seed: u64,
) -> anyhow::Result<Verdict> {
    let nodes = args.nodes as usize;
    let steps = schedule::plan(seed, nodes, args.seconds);
    let net = Testbed::create(nodes)?;
    let dir = crate::bench::postgres::fresh_temp_dir(&format!("ohm-torture-{seed}"))?;
    let env = match &args.planted_bug {
        Some(b) => vec![(crate::consensus::PLANTED_BUG_ENV.to_string(), b.clone())],
        None => vec![],
    };
    let cluster = LocalCluster::start(&LocalClusterOptions {
        dir: Some(dir.clone()),
        hosts: (0..nodes).map(|i| net.node_ip(i).into()).collect(),
        netns: net.netns_all(),
        binary: args.ohm.clone(),
        env,
        ..LocalClusterOptions::new(args.nodes, args.partitions, Durability::Sync)
    })?;
    rt.block_on(within(
        SETUP_TIMEOUT,
        "creating the example schemas and deploying their modules",
        cluster.set_up_examples(&["kv", "bank", "voter"]),
    ))?;
    let started = Instant::now();
    let mut run = Run {
        cluster: Arc::new(Mutex::new(cluster)),
        net,
        rng: Rng::new(seed ^ 0x7a3f_0000_0000_0000),
        killed: vec![],
        paused: vec![],
        done: vec![],
    };
    let (summaries, verdict) = rt.block_on(run.drive(seed, &steps, &args.workloads))?;
    let mut cluster = run.lock();
    cluster.stop();
    drop(cluster);
    let ok = verdict.safety.is_empty() && verdict.liveness.is_empty();
    println!(
        "schedule seed {seed}: {} ({:.1} s)",
        if ok { "ok" } else { "ANOMALY" },
        started.elapsed().as_secs_f64()
    );
    println!("  faults: {}", run.done.join("; "));
    for s in &summaries {
        println!("  {s}");
    }
    for a in verdict.safety.iter().chain(&verdict.liveness) {
        println!("  ANOMALY {a}");
    }
    if ok || args.planted_bug.is_some() {
        // With a planted bug the anomaly is what was asked for; its
        // directory (about 1 GB of logs) would pile up run after run.
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!(
            "  the cluster's directory is kept: {} (node logs n<i>.log); run it again with \
             --seed {seed} --schedules 1",
            dir.display()
        );
    }
    Ok(verdict)
}

/// One schedule's live state. The cluster is declared (so dropped)
/// before the network its nodes run in.
struct Run {
    cluster: Arc<Mutex<LocalCluster>>,
    net: Testbed,
    /// Draws the nodes a fault picks (leaders are looked up, not drawn).
    rng: Rng,
    killed: Vec<usize>,
    paused: Vec<usize>,
    /// What was done, for the report.
    done: Vec<String>,
}

impl Run {
    fn lock(&self) -> std::sync::MutexGuard<'_, LocalCluster> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn nodes(&self) -> usize {
        self.lock().addrs.len()
    }

    async fn drive(
        &mut self,
        seed: u64,
        steps: &[Step],
        workloads: &[Workload],
    ) -> anyhow::Result<(Vec<String>, Verdict)> {
        let (cfg, admin_cfg, addrs) = {
            let c = self.lock();
            (c.demo_config()?, c.admin_config()?, c.addrs.clone())
        };
        let admin = ClusterClient::connect(cfg.clone(), &addrs).await?;
        within(
            SETUP_TIMEOUT,
            "creating the accounts and contestants",
            workload::set_up(&admin),
        )
        .await?;
        let load = workload::Load::start(&cfg, &addrs, seed, workloads).await?;
        for step in steps {
            self.step(step, load.shared.start, &cfg, &addrs).await?;
        }
        self.heal().await?;
        tokio::time::sleep(AFTER_HEAL).await;
        load.stop();

        let mut verdict = Verdict {
            safety: vec![],
            liveness: vec![],
        };
        let checker = ClusterClient::connect(cfg.clone(), &addrs).await?;
        if let Err(e) = resume(&checker).await {
            verdict.liveness.push(e);
        }
        let mut summaries = Vec::new();
        for (summary, a) in load.check(&checker).await {
            summaries.push(summary);
            verdict.safety.extend(a.found);
            verdict.liveness.extend(a.unchecked);
        }
        // As the admin: applied slots and rows over every tenant.
        match converge(&admin_cfg, &addrs).await {
            Ok(s) => summaries.push(s),
            Err(Divergence::Rows(e)) => verdict.safety.push(e),
            Err(Divergence::Slots(e)) => verdict.liveness.push(e),
        }
        Ok((summaries, verdict))
    }

    /// One step: its faults at its start, healed at its end.
    async fn step(
        &mut self,
        step: &Step,
        start: Instant,
        cfg: &ClientConfig,
        addrs: &[String],
    ) -> anyhow::Result<()> {
        sleep_until(start, step.start_ms).await;
        let mut what = Vec::new();
        for f in &step.faults {
            what.push(self.inject(f, cfg, addrs).await?);
        }
        self.done.push(format!(
            "[{:.1} s +{:.1} s] {}",
            step.start_ms as f64 / 1000.0,
            step.hold_ms as f64 / 1000.0,
            what.join(" + ")
        ));
        sleep_until(start, step.start_ms + step.hold_ms).await;
        self.heal().await
    }

    /// Starts fault `f`; what was done, in words.
    async fn inject(
        &mut self,
        f: &Fault,
        cfg: &ClientConfig,
        addrs: &[String],
    ) -> anyhow::Result<String> {
        let leader = leader(cfg, addrs).await;
        let nodes = self.nodes();
        let pick = |t: Target, rng: &mut Rng| match (t, leader) {
            (Target::Node(i), _) | (Target::Leader, Some(i)) => i,
            (Target::Leader, None) => rng.below(nodes as u64) as usize,
        };
        let named = |t: Target, i: usize| match t {
            Target::Leader => format!("{t} (n{})", i + 1),
            Target::Node(_) => format!("n{}", i + 1),
        };
        Ok(match *f {
            Fault::Kill(t) => {
                let i = pick(t, &mut self.rng);
                if !self.lock().is_running(i) || self.paused.contains(&i) {
                    return Ok(format!("kill -9 {} (already down)", named(t, i)));
                }
                self.lock().kill9(i)?;
                self.killed.push(i);
                format!("kill -9 {}", named(t, i))
            }
            Fault::Pause(t) => {
                let i = pick(t, &mut self.rng);
                if !self.lock().is_running(i) || self.paused.contains(&i) {
                    return Ok(format!("pause {} (already down)", named(t, i)));
                }
                self.lock().signal_stop(i, true)?;
                self.paused.push(i);
                format!("pause {}", named(t, i))
            }
            Fault::Isolate(t) => {
                let i = pick(t, &mut self.rng);
                let rest: Vec<usize> = (0..nodes).filter(|&j| j != i).collect();
                self.net.cut_between(&[i], &rest)?;
                format!("isolate {}", named(t, i))
            }
            Fault::Split {
                minority,
                with_leader,
            } => {
                let mut order: Vec<usize> = (0..nodes).collect();
                shuffle(&mut order, &mut self.rng);
                if let Some(l) = leader {
                    // The leader first (with it) or last (without it).
                    order.retain(|&j| j != l);
                    if with_leader {
                        order.insert(0, l);
                    } else {
                        order.push(l);
                    }
                }
                let (small, big) = order.split_at(minority.min(nodes - 1));
                self.net.cut_between(small, big)?;
                format!("split {:?} | {:?}", plus_one(small), plus_one(big))
            }
            Fault::Bridge(t) => {
                let mid = pick(t, &mut self.rng);
                let mut rest: Vec<usize> = (0..nodes).filter(|&j| j != mid).collect();
                shuffle(&mut rest, &mut self.rng);
                let (left, right) = rest.split_at(rest.len() / 2);
                self.net.cut_between(left, right)?;
                format!(
                    "bridge {:?} - {} - {:?}",
                    plus_one(left),
                    named(t, mid),
                    plus_one(right)
                )
            }
            Fault::Loss { percent } => {
                self.net.set_loss(percent)?;
                format!("{percent}% loss")
            }
        })
    }

    /// Undoes every fault: rules cleared, paused nodes continued, killed
    /// nodes started again (from their data directories).
    async fn heal(&mut self) -> anyhow::Result<()> {
        self.net.heal()?;
        for i in std::mem::take(&mut self.paused) {
            self.lock().signal_stop(i, false)?;
        }
        for i in std::mem::take(&mut self.killed) {
            let c = self.cluster.clone();
            tokio::task::spawn_blocking(move || {
                c.lock().unwrap_or_else(|p| p.into_inner()).start_node(i)
            })
            .await??;
        }
        Ok(())
    }
}

/// `f`, or an error naming `what` if it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => bail!("{what} took longer than {limit:?}"),
    }
}

async fn sleep_until(start: Instant, ms: u64) {
    let at = start + Duration::from_millis(ms);
    tokio::time::sleep_until(at.into()).await;
}

fn shuffle(v: &mut [usize], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// Node indexes as node ids, for the report.
fn plus_one(v: &[usize]) -> Vec<usize> {
    v.iter().map(|i| i + 1).collect()
}

/// One node's own status, if it answers within `STATUS_TIMEOUT`.
async fn status_of(cfg: &ClientConfig, addr: &str) -> Option<StatusInfo> {
    let mut one = cfg.clone();
    one.addr = addr.to_string();
    tokio::time::timeout(STATUS_TIMEOUT, async {
        let c = Client::connect(one).await.ok()?;
        let s = c.status().await.ok();
        c.close().await;
        s
    })
    .await
    .ok()
    .flatten()
}

/// The node that says it leads partition 0 (where every partition's
/// leader gathers), if one answers.
async fn leader(cfg: &ClientConfig, addrs: &[String]) -> Option<usize> {
    for (i, a) in addrs.iter().enumerate() {
        let Some(s) = status_of(cfg, a).await else {
            continue;
        };
        if s.partitions.first().is_some_and(|p| p.role == "leader") {
            return Some(i);
        }
    }
    None
}

/// Waits until a write is acknowledged after the heal.
async fn resume(client: &ClusterClient) -> Result<(), String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < RESUME_TIMEOUT {
        let args = vec![
            crate::types::Value::text("torture-probe"),
            crate::types::Value::Bytes(b"1".to_vec().into()),
        ];
        match workload::call(client, "put", args).await {
            workload::Outcome::Done(_) => return Ok(()),
            workload::Outcome::Failed(e) | workload::Outcome::Unknown(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "liveness: no write was acknowledged within {RESUME_TIMEOUT:?} after the heal (last \
         error: {last})"
    ))
}

enum Divergence {
    /// Replicas applied the same slots and hold different rows.
    Rows(String),
    /// Replicas did not reach the same applied slot in time.
    Slots(String),
}

/// Waits until every node answers and, per partition, every replica has
/// applied the same slot; then their row counts must agree.
async fn converge(cfg: &ClientConfig, addrs: &[String]) -> Result<String, Divergence> {
    let started = Instant::now();
    let mut last = String::new();
    let mut rows_differ_since: Option<(Vec<u64>, Instant)> = None;
    while started.elapsed() < CONVERGE_TIMEOUT {
        let mut all = Vec::new();
        for a in addrs {
            match status_of(cfg, a).await {
                Some(s) => all.push(s),
                None => last = format!("{a} does not answer status"),
            }
        }
        if all.len() == addrs.len() {
            let parts = all[0].partitions.len();
            let slots_agree = (0..parts).all(|p| {
                all.iter().all(|s| {
                    s.partitions.get(p).map(|x| x.applied) == Some(all[0].partitions[p].applied)
                })
            });
            let applied: Vec<u64> = all[0].partitions.iter().map(|p| p.applied).collect();
            if slots_agree {
                let differ = (0..parts).find_map(|p| {
                    let rows: Vec<u64> = all.iter().map(|s| s.partitions[p].rows).collect();
                    rows.iter().any(|r| *r != rows[0]).then_some((p, rows))
                });
                let Some((p, rows)) = differ else {
                    return Ok(format!(
                        "replicas converged in {:.1} s (applied slots {applied:?} on every node)",
                        started.elapsed().as_secs_f64()
                    ));
                };
                // Row counts are published every few hundred ms, apart
                // from the applied slot: only a difference that lasts
                // while nothing is applied is one.
                match &rows_differ_since {
                    Some((at, since)) if *at == applied => {
                        if since.elapsed() >= ROWS_SETTLE {
                            return Err(Divergence::Rows(format!(
                                "replicas: partition {p} applied slot {} everywhere, yet its \
                                 nodes hold {rows:?} rows",
                                applied[p]
                            )));
                        }
                    }
                    _ => rows_differ_since = Some((applied.clone(), Instant::now())),
                }
            }
            last = all
                .iter()
                .map(|s| {
                    let a: Vec<u64> = s.partitions.iter().map(|p| p.applied).collect();
                    format!("n{} applied {a:?}", s.node_id)
                })
                .collect::<Vec<_>>()
                .join(", ");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Divergence::Slots(format!(
        "liveness: the replicas did not reach the same applied slots within \
         {CONVERGE_TIMEOUT:?} ({last})"
    )))
}
