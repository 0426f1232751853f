//! The simulator on a fixed set of seeds (what CI runs), its replay
//! guarantee, and its teeth: each planted bug is found within the same
//! budget.

use super::*;
use std::sync::OnceLock;

/// Seeds CI runs with faults on, and events per run.
const CI_SEEDS: u64 = 64;
const CI_STEPS: u64 = 20_000;

fn modules() -> (Vec<u8>, Vec<u8>) {
    let read = |name: &str| {
        let path = crate::wasm::testing::procedure_wasm(name).unwrap_or_else(|e| panic!("{e}"));
        std::fs::read(path).expect("run `cargo procs` first")
    };
    (read("ohm_kv"), read("ohm_bank"))
}

/// Compiled once for every test of this module.
fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let (kv, bank) = modules();
        Shared::new(kv, bank).unwrap()
    })
}

fn with_bugs(bugs: consensus::Bugs) -> Shared {
    let (kv, bank) = modules();
    let mut s = Shared::new(kv, bank).unwrap();
    s.bugs = bugs;
    s
}

fn config(seed: u64) -> SimConfig {
    SimConfig {
        steps: CI_STEPS,
        ..SimConfig::new(seed)
    }
}

/// Runs the CI seeds on two threads; the failing outcomes.
fn failures(shared: &Shared, stop_at_first: bool) -> Vec<Outcome> {
    let next = std::sync::atomic::AtomicU64::new(1);
    let found = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seed > CI_SEEDS {
                    return;
                }
                if stop_at_first && !found.lock().unwrap().is_empty() {
                    return;
                }
                let out = run(config(seed), shared);
                if !out.violations.is_empty() {
                    found.lock().unwrap().push(out);
                }
            });
        }
    });
    found.into_inner().unwrap()
}

fn describe(outs: &[Outcome]) -> String {
    outs.iter()
        .map(|o| format!("seed {}: {}", o.seed, o.violations.join("; ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn without_faults_every_check_holds_and_work_gets_done() {
    let out = run(
        SimConfig {
            faults: false,
            steps: 3_000,
            ..SimConfig::new(7)
        },
        shared(),
    );
    assert!(out.violations.is_empty(), "{:?}", out.violations);
    assert!(out.stats.kv_ok > 50, "{:?}", out.stats);
    assert!(out.stats.bank_ok > 10, "{:?}", out.stats);
    assert_eq!(out.stats.kv_unknown, 0, "{:?}", out.stats);
}

#[test]
fn the_ci_seeds_pass_with_faults() {
    let failed = failures(shared(), false);
    assert!(failed.is_empty(), "{}", describe(&failed));
}

#[test]
fn a_seed_replays_exactly() {
    let a = run(config(3), shared());
    let b = run(config(3), shared());
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.stats.kv_ok, b.stats.kv_ok);
    let c = run(config(4), shared());
    assert_ne!(
        a.trace_hash, c.trace_hash,
        "different seeds, different runs"
    );
}

#[test]
fn planted_bug_promise_before_it_is_durable_is_found() {
    let bugs = consensus::Bugs {
        promise_not_durable: true,
        ..Default::default()
    };
    let found = failures(&with_bugs(bugs), true);
    assert!(!found.is_empty(), "the simulator missed the planted bug");
}

#[test]
fn planted_bug_acknowledge_before_chosen_is_found() {
    let bugs = consensus::Bugs {
        ack_before_chosen: true,
        ..Default::default()
    };
    let found = failures(&with_bugs(bugs), true);
    assert!(!found.is_empty(), "the simulator missed the planted bug");
}

#[test]
fn planted_bug_lease_ignoring_drift_is_found() {
    let bugs = consensus::Bugs {
        lease_ignores_drift: true,
        ..Default::default()
    };
    let found = failures(&with_bugs(bugs), true);
    assert!(!found.is_empty(), "the simulator missed the planted bug");
}

/// How many of `OHM_SIM_SEEDS` seeds (default 200) find each planted bug:
/// `cargo test -p ohm --lib sim::tests::bug_hit_rates -- --ignored --nocapture`.
#[test]
#[ignore]
fn bug_hit_rates() {
    let seeds: u64 = std::env::var("OHM_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let steps: u64 = std::env::var("OHM_SIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_STEPS);
    let cases = [
        (
            "promise_not_durable",
            consensus::Bugs {
                promise_not_durable: true,
                ..Default::default()
            },
        ),
        (
            "ack_before_chosen",
            consensus::Bugs {
                ack_before_chosen: true,
                ..Default::default()
            },
        ),
        (
            "lease_ignores_drift",
            consensus::Bugs {
                lease_ignores_drift: true,
                ..Default::default()
            },
        ),
    ];
    for (name, bugs) in cases {
        let shared = with_bugs(bugs);
        let mut hits = Vec::new();
        for seed in 1..=seeds {
            let out = run(
                SimConfig {
                    steps,
                    ..SimConfig::new(seed)
                },
                &shared,
            );
            if !out.violations.is_empty() {
                hits.push((seed, out.violations[0].clone()));
            }
        }
        println!("{name}: {} of {seeds} seeds", hits.len());
        for (s, v) in hits.iter().take(3) {
            println!("  seed {s}: {v}");
        }
    }
}
