//! SQL conformance, end to end: the real `ohm slt` binary over the
//! sqllogictest corpus, plus small scripts that prove the harness can fail.
//!
//! The binary is found next to this test's executable (`target/<profile>/ohm`),
//! so build the workspace first: `cargo build --workspace && cargo test --workspace`.
//! `OHM_BIN` overrides the path.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits inside the workspace")
        .to_path_buf()
}

fn ohm_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("OHM_BIN") {
        return Ok(PathBuf::from(bin));
    }
    // target/<profile>/deps/slt-<hash> -> target/<profile>/ohm
    let exe = std::env::current_exe().context("locating the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable has no target/<profile> directory")?;
    let bin = profile_dir.join(format!("ohm{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "{} not found: build the binary first (`cargo build --workspace`, same profile as the tests) \
             or set OHM_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

fn ohm(args: &[&str]) -> anyhow::Result<Output> {
    let bin = ohm_binary()?;
    let output = Command::new(&bin)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(output)
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The corpus, or `None` (test skipped) when it is absent outside CI.
fn testdata() -> anyhow::Result<Option<PathBuf>> {
    let dir = match std::env::var_os("OHM_TESTDATA") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("../shared/testdata"),
    };
    let slt = dir.join("slt");
    if slt.is_dir() {
        return Ok(Some(slt));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!(
            "OHM_TESTDATA: {} not found, and CI=true requires it",
            slt.display()
        );
    }
    eprintln!("skipping: OHM_TESTDATA ({}) not found", slt.display());
    Ok(None)
}

/// A scratch directory unique to this process and test.
fn scratch(test: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ohm-slt-{}-{test}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

#[test]
fn ohm_passes_the_conformance_suite() -> anyhow::Result<()> {
    let Some(slt) = testdata()? else {
        return Ok(());
    };
    let list = workspace_root().join("runtime/slt-expected-failures.txt");
    let output = ohm(&[
        "slt",
        "--fail-detail",
        "20",
        "--expected-failures",
        list.to_str().context("non-UTF-8 path")?,
        slt.to_str().context("non-UTF-8 path")?,
    ])?;
    let stdout = stdout_of(&output);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "ohm slt failed: {}",
        stdout.lines().last().unwrap_or("")
    );
    Ok(())
}

/// Ohm's own files (tests/slt): dates, times, time zones, intervals and
/// UUIDs, whose expected answers were written by PostgreSQL
/// (tests/slt/pg_expect.py). Every record must pass: there is no
/// expected-failures list for these.
#[test]
fn ohm_answers_its_own_files_as_postgresql_does() -> anyhow::Result<()> {
    let dir = workspace_root().join("tests/slt");
    let output = ohm(&[
        "slt",
        "--fail-detail",
        "20",
        dir.to_str().context("non-UTF-8 path")?,
    ])?;
    let stdout = stdout_of(&output);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let summary = stdout.lines().last().unwrap_or("");
    assert!(output.status.success(), "ohm slt failed: {summary}");
    // A file that stopped parsing would pass nothing: count what ran.
    let passed: usize = summary
        .strip_prefix("slt: ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no pass count in {summary:?}"))?;
    assert!(passed >= 150, "only {passed} records passed: {summary}");
    Ok(())
}

/// The corpus's answers are SQLite's: against SQLite, the runner itself
/// must agree on every record (formatting, sorting, hashing, conditions).
#[test]
fn the_runner_agrees_with_sqlite_on_the_corpus() -> anyhow::Result<()> {
    let Some(slt) = testdata()? else {
        return Ok(());
    };
    let output = ohm(&[
        "slt",
        "--engine",
        "sqlite",
        "--label",
        "sqlite",
        "--fail-detail",
        "20",
        slt.to_str().context("non-UTF-8 path")?,
    ])?;
    let stdout = stdout_of(&output);
    let summary = stdout.lines().last().unwrap_or("");
    assert!(output.status.success(), "{stdout}");
    assert!(
        summary.starts_with("slt: ") && summary.contains(" 0 failed"),
        "{summary}"
    );
    Ok(())
}

const PASSING: &str = "\
statement ok
CREATE TABLE t(a INTEGER, b TEXT)

statement ok
INSERT INTO t VALUES (1, 'one'), (2, '')

query IT rowsort
SELECT a, b FROM t
----
1
one
2
(empty)

skipif sqlite # this engine answers to sqlite here
query I
SELECT 1
----
999
";

const FAILING: &str = "\
query I
SELECT 1 + 1
----
3

query T
SELECT 'fine'
----
fine
";

#[test]
fn the_harness_fails_when_an_answer_is_wrong() -> anyhow::Result<()> {
    let dir = scratch("harness")?;
    std::fs::write(dir.join("a_pass.test"), PASSING)?;
    std::fs::write(dir.join("b_fail.test"), FAILING)?;
    let dir_arg = dir.to_str().context("non-UTF-8 temp dir")?;
    let base = ["slt", "--engine", "sqlite", "--label", "sqlite"];

    let output = ohm(&[&base[..], &["--fail-detail", "5", dir_arg]].concat())?;
    let stdout = stdout_of(&output);
    assert!(
        !output.status.success(),
        "a wrong answer must fail the run:\n{stdout}"
    );
    assert!(
        stdout.contains("a_pass.test: 3 passed, 0 failed, 1 skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("b_fail.test: 1 passed, 1 failed, 0 skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("b_fail.test:1\n"),
        "failure detail names file:line:\n{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("slt: 4 passed, 1 failed, 1 skipped")
    );

    let pass_only = dir.join("a_pass.test");
    let output = ohm(&[&base[..], &[pass_only.to_str().context("non-UTF-8 path")?]].concat())?;
    assert!(output.status.success(), "{}", stdout_of(&output));

    // Listed as expected, the failure no longer fails the run...
    let list = dir.join("expected.txt");
    std::fs::write(&list, "# known\nb_fail.test:1  1 + 1 is not 3\n")?;
    let list_arg = list.to_str().context("non-UTF-8 path")?;
    let output = ohm(&[&base[..], &["--expected-failures", list_arg, dir_arg]].concat())?;
    let stdout = stdout_of(&output);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("b_fail.test: 1 passed, 0 failed, 0 skipped, 1 expected-failures"),
        "{stdout}"
    );

    // ...and a listed record that passes does.
    std::fs::write(&list, "b_fail.test:6  claimed broken\n")?;
    let output = ohm(&[
        &base[..],
        &["--fail-detail", "--expected-failures", list_arg, dir_arg],
    ]
    .concat())?;
    let stdout = stdout_of(&output);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("unexpectedly passed"), "{stdout}");

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
