//! `ohm sim`: runs seeds (in parallel, one thread per run), prints every
//! failing seed with its violations and the command that replays it, and
//! a summary with seeds per second and the faults injected.

use super::{run, Outcome, Shared, SimConfig, Stats};
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// How many seeds to run (from --seed on). Without it, only --seed runs,
    /// and its details are printed.
    #[arg(long)]
    pub seeds: Option<u64>,
    /// The (first) seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Replicas in the group.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Events per run while faults are injected.
    #[arg(long, default_value_t = 20_000)]
    pub steps: u64,
    /// Run without faults (a clean network, no crashes).
    #[arg(long)]
    pub no_faults: bool,
    /// Threads running seeds (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the kv and bank modules are (default: $OHM_WASM_DIR, else
    /// target/wasm32-unknown-unknown/wasm beside this binary).
    #[arg(long, value_name = "DIR")]
    pub procedures: Option<PathBuf>,
}

/// A progress line (on stderr) after every this many seeds of a long run.
const PROGRESS_EVERY: u64 = 500;

/// Runs the seeds; true when none failed.
pub fn run_cli(args: &SimArgs) -> Result<bool, String> {
    if args.replicas == 0 || args.replicas > crate::consensus::MEMBERS_MAX {
        return Err(format!(
            "--replicas must be 1..={}",
            crate::consensus::MEMBERS_MAX
        ));
    }
    let dir = args
        .procedures
        .clone()
        .or_else(crate::wasm::default_procedures_dir)
        .ok_or("cannot tell where the procedure modules are: pass --procedures DIR")?;
    let read = |name: &str| {
        let path = dir.join(format!("ohm_{name}.wasm"));
        std::fs::read(&path).map_err(|e| {
            format!(
                "the simulator runs the {name} procedures, and {} could not be read ({e}): \
                 build them with `cargo procs` (or pass --procedures DIR)",
                path.display()
            )
        })
    };
    let shared = Shared::new(read("kv")?, read("bank")?)?;
    let config = |seed| SimConfig {
        seed,
        replicas: args.replicas,
        steps: args.steps,
        faults: !args.no_faults,
        ..SimConfig::new(seed)
    };
    let Some(count) = args.seeds else {
        let out = run(config(args.seed), &shared);
        print_one(&out, args);
        return Ok(out.violations.is_empty());
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let started = Instant::now();
    let (failed, total) = run_seeds(args.seed, count, threads, &config, &shared, args);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sim: {count} seeds ({}..={}), {} failed, {:.1} s, {:.2} seeds/s, {} threads, {} replicas, {} steps",
        args.seed,
        args.seed + count - 1,
        failed,
        secs,
        count as f64 / secs.max(1e-9),
        threads,
        args.replicas,
        args.steps
    );
    print_mix(&total);
    Ok(failed == 0)
}

/// Runs `count` seeds from `first` on `threads` threads; (failed, totals).
fn run_seeds(
    first: u64,
    count: u64,
    threads: usize,
    config: &(dyn Fn(u64) -> SimConfig + Sync),
    shared: &Shared,
    args: &SimArgs,
) -> (u64, Stats) {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let total = Mutex::new(Stats::default());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let out = run(config(first + i), shared);
                if !out.violations.is_empty() {
                    failed.fetch_add(1, Ordering::Relaxed);
                    print_failure(&out, args);
                }
                total
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(&out.stats);
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if finished.is_multiple_of(PROGRESS_EVERY) && finished < count {
                    eprintln!(
                        "sim: {finished}/{count} seeds, {} failed, {:.0} s",
                        failed.load(Ordering::Relaxed),
                        started.elapsed().as_secs_f64()
                    );
                }
            });
        }
    });
    let total = total.into_inner().unwrap_or_else(|p| p.into_inner());
    (failed.into_inner(), total)
}

fn replay(seed: u64, args: &SimArgs) -> String {
    let faults = if args.no_faults { " --no-faults" } else { "" };
    format!(
        "ohm sim --seed {seed} --replicas {} --steps {}{faults}",
        args.replicas, args.steps
    )
}

fn print_failure(out: &Outcome, args: &SimArgs) {
    let mut text = format!(
        "seed {} FAILED (trace {:016x}):\n",
        out.seed, out.trace_hash
    );
    for v in &out.violations {
        text.push_str(&format!("  {v}\n"));
    }
    text.push_str(&format!("  replay: {}\n", replay(out.seed, args)));
    print!("{text}");
}

fn print_one(out: &Outcome, args: &SimArgs) {
    if out.violations.is_empty() {
        println!("seed {}: ok (trace {:016x})", out.seed, out.trace_hash);
    } else {
        print_failure(out, args);
    }
    print_mix(&out.stats);
}

fn print_mix(t: &Stats) {
    println!(
        "  work: {} kv calls answered ({} with an unknown outcome), {} bank calls ({} transfers refused), {} resent; {} steps, {:.1} virtual s",
        t.kv_ok,
        t.kv_unknown,
        t.bank_ok,
        t.bank_aborted,
        t.retries,
        t.steps,
        t.virtual_ms as f64 / 1000.0
    );
    println!(
        "  faults: {} crashes ({} unsynced writes lost, {} torn, {} bytes garbled), {} fsync failures, {} partitions, {} leadership transfers asked, {} messages dropped, {} duplicated; {} replica starts, {} rebuilds after losing leadership, {} snapshots written ({} not: their file failed), {} sent to lagging replicas; {} parts lent",
        t.crashes,
        t.unsynced_writes_lost,
        t.torn_writes,
        t.garbled_bytes,
        t.storage_failures,
        t.partitions,
        t.transfers,
        t.dropped,
        t.duplicated,
        t.starts,
        t.rebuilds,
        t.snapshots_written,
        t.snapshots_failed,
        t.snapshots_sent,
        t.leases
    );
    println!(
        "  checks: kv histories checked in {:.1} s; {} too long to check within the time bound",
        t.lincheck_ms as f64 / 1000.0,
        t.lincheck_unknown
    );
}
