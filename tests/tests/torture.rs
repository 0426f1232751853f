//! The fault suite on real processes (`ohm torture`), short: a few seeded
//! schedules of kill -9, SIGSTOP, cut links, splits, bridges and packet
//! loss against node processes in their own network namespaces, every
//! invariant checked after each; and the same suite against nodes with a
//! planted bug (a leader that acknowledges before a quorum accepted), which
//! it must catch. Longer runs: `ohm torture --schedules 40` (see
//! docs/OPERATIONS.md, "The fault suite").
//!
//! Needs root, iproute2 and nftables (`.ci/run` installs nftables). Without
//! them the tests say so and pass, except under `CI`, where they fail.

mod common;

use common::{ohm_binary, wasm_dir};
use std::process::Command;

/// The suite starts clusters of its own: one at a time on a 2-core machine.
static ONE_SUITE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether this machine can build the suite's networks; why not, if not.
fn can_run() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        return Err("not root".into());
    }
    for (tool, arg) in [("ip", "-V"), ("nft", "--version")] {
        let ok = Command::new(tool).arg(arg).output();
        if !ok.is_ok_and(|o| o.status.success()) {
            return Err(format!("`{tool}` is not installed"));
        }
    }
    Ok(())
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Runs `ohm torture` with `args`; its output, and whether it exited 0.
/// None when this machine cannot run it (outside CI).
fn torture(args: &[&str]) -> Option<(String, bool)> {
    if let Err(why) = can_run() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the fault suite must run in CI: {why}"
        );
        eprintln!("skipping the fault suite: {why} (it needs root, iproute2 and nftables)");
        return None;
    }
    let _one = ONE_SUITE_AT_A_TIME
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let out = Command::new(ohm_binary())
        .arg("torture")
        .args(args)
        .env("OHM_WASM_DIR", wasm_dir())
        .output()
        .expect("running ohm torture");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    Some((text, out.status.success()))
}

/// All three workloads, the bank's multi-partition transfers among them:
/// before commits were two-phase across the partitions' logs, a transfer
/// interrupted by a change of leader could apply on some partitions only,
/// which the bank found in about one schedule in ten.
#[test]
fn a_short_fault_suite_finds_no_anomaly() {
    let Some((text, ok)) = torture(&["--schedules", "2", "--seconds", "10", "--seed", "1"]) else {
        return;
    };
    assert!(ok, "the fault suite found anomalies:\n{text}");
    assert!(text.contains("2 schedules, 0 with anomalies"), "{text}");
    // Each schedule checked every workload and the replicas.
    for what in [
        "linearizable",
        "total kept",
        "results agree",
        "replicas converged",
    ] {
        assert_eq!(text.matches(what).count(), 2, "{what}:\n{text}");
    }
}

#[test]
fn the_fault_suite_catches_a_leader_that_acknowledges_before_a_quorum_accepted() {
    // The planted bug exists in debug builds only, which is what tests run.
    if !cfg!(debug_assertions) {
        eprintln!("skipping: planted bugs exist only in debug builds");
        return;
    }
    let Some((text, ok)) = torture(&[
        "--planted-bug",
        "ack_before_chosen",
        "--schedules",
        "6",
        "--seconds",
        "10",
        "--seed",
        "1",
        // The single-partition workloads catch it; the bank adds time.
        "--workloads",
        "kv,voter",
    ]) else {
        return;
    };
    assert!(ok, "the planted bug was not caught:\n{text}");
    assert!(
        text.contains("planted bug ack_before_chosen: CAUGHT"),
        "{text}"
    );
}
