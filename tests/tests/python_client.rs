//! The official Python client (`clients/python`), its pytest suite run
//! against real `ohm serve` processes it starts from this build's binary.
//!
//! The suite runs under `$OHM_PYTHON`, a Python with the client installed
//! from the repository (`pip install ./clients/python pytest`; `.ci/run`
//! makes one in a fresh virtual environment, `target/python-client-venv`).
//! An installed client older than the source is reinstalled first, so the
//! tests run today's code the way a user installs it. Without
//! `$OHM_PYTHON` this test says so and passes, except under `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// Where the installed `ohm` package lives, per `python`.
fn installed_package(python: &Path) -> Option<PathBuf> {
    let out = Command::new(python)
        .args(["-c", "import ohm, os; print(os.path.dirname(ohm.__file__))"])
        .current_dir(std::env::temp_dir())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Whether every module of the source is installed with the same bytes.
fn installed_is_current(installed: &Path, source: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(source) else {
        return false;
    };
    entries.filter_map(Result::ok).all(|e| {
        let name = e.file_name();
        !name.to_string_lossy().ends_with(".py")
            || std::fs::read(e.path()).ok() == std::fs::read(installed.join(&name)).ok()
    })
}

#[test]
fn python_client_suite_passes_against_a_real_node() {
    let Some(python) = std::env::var_os("OHM_PYTHON").map(PathBuf::from) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "OHM_PYTHON is not set under CI: .ci/run should have made the client's venv"
        );
        eprintln!(
            "skipping: set OHM_PYTHON to a Python with `pip install ./clients/python pytest` \
             (.ci/run makes target/python-client-venv)"
        );
        return;
    };
    let client = repo().join("clients/python");
    let source = client.join("src/ohm");
    let current = installed_package(&python).is_some_and(|p| installed_is_current(&p, &source));
    if !current {
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--force-reinstall",
            ])
            .arg(&client)
            .output()
            .expect("running pip");
        assert!(
            out.status.success(),
            "reinstalling the client failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let installed = installed_package(&python).expect("the client is installed");
    assert!(
        installed_is_current(&installed, &source),
        "{} is not the source in {}",
        installed.display(),
        source.display()
    );
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(client.join("tests"))
        .env("OHM_BINARY", common::ohm_binary())
        .env("OHM_WASM_DIR", common::wasm_dir())
        .current_dir(&client)
        .output()
        .expect("running pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // pytest's summary ("22 passed in 5.1s") in cargo test's output, even
    // when the test passes (written past libtest's capture of print!).
    if let Some(summary) = stdout.lines().rev().find(|l| l.contains(" passed")) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "pytest clients/python/tests: {summary}");
    }
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(" passed") && !stdout.contains(" failed"),
        "{stdout}"
    );
}
