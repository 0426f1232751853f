//! `ohm bench voter` end to end, briefly: a node and a PostgreSQL server on
//! loopback, the workload on both, and the invariants checked on both. The
//! timings it prints are not judged here (benchmarks are not tests); what
//! is judged is that it runs and that both sides keep the invariants.
//!
//! Needs PostgreSQL's server binaries (`.ci/run` installs them). Without
//! them this test says so and passes, except under `CI=true`.

mod common;

use common::ohm_binary;
use std::process::Command;

fn postgres_installed() -> bool {
    let under_lib = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").exists()))
        .unwrap_or(false);
    under_lib || Command::new("initdb").arg("--version").output().is_ok()
}

#[test]
fn bench_voter_runs_both_sides_and_checks_invariants() {
    if !postgres_installed() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is missing under CI: .ci/run should have installed it"
        );
        eprintln!("skipping: PostgreSQL server binaries not found (apt-get install postgresql)");
        return;
    }
    let out = Command::new(ohm_binary())
        .args(["bench", "voter", "--seconds", "1", "--warmup", "0"])
        .args([
            "--connections",
            "2",
            "--in-flight",
            "16",
            "--runtime",
            "current",
        ])
        .env("OHM_WASM_DIR", common::wasm_dir())
        .output()
        .expect("running ohm bench voter");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ohm invariants ok"), "{stdout}");
    assert!(stdout.contains("postgresql invariants ok"), "{stdout}");
    assert!(stdout.contains("ratio ohm/postgresql"), "{stdout}");
}
