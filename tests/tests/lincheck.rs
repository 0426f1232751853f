//! `ohm lincheck` end to end, on small histories written here: one verdict
//! line per file in the order given, and the exit code (0 all
//! linearizable, 1 any not, 2 any unreadable). The recorded corpus is
//! checked by the library's own test (`lincheck::tests_testdata`).

mod common;

use common::{ohm_binary, TempDir};
use std::path::PathBuf;
use std::process::{Command, Output};

const GOOD: &str = "INFO  jepsen.util - 0\t:invoke\t:write\t1
INFO  jepsen.util - 0\t:ok\t:write\t1
INFO  jepsen.util - 1\t:invoke\t:read\tnil
INFO  jepsen.util - 1\t:ok\t:read\t1
";

/// A read of a value never written.
const BAD: &str = r#"{:process 0, :type :invoke, :f :get, :key "k", :value nil}
{:process 0, :type :ok, :f :get, :key "k", :value "x"}
"#;

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write a history");
    path
}

fn lincheck(files: &[&PathBuf]) -> Output {
    Command::new(ohm_binary())
        .arg("lincheck")
        .args(files)
        .output()
        .expect("run ohm lincheck")
}

fn stdout_lines(out: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().map(str::to_string).collect()
}

#[test]
fn lincheck_prints_a_verdict_per_file_and_exits_by_the_worst() {
    let dir = TempDir::new("lincheck");
    let good = write(&dir, "good.log", GOOD);
    let bad = write(&dir, "bad.txt", BAD);
    let line = |p: &PathBuf, v: &str| format!("{}\t{v}", p.display());

    let out = lincheck(&[&good]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout_lines(&out), [line(&good, "linearizable")]);

    let out = lincheck(&[&bad, &good]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout_lines(&out),
        [line(&bad, "NOT-linearizable"), line(&good, "linearizable")]
    );

    let broken = write(
        &dir,
        "broken.log",
        &GOOD.replace(":invoke\t:read", ":ok\t:read"),
    );
    let out = lincheck(&[&good, &broken]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(stdout_lines(&out), [line(&good, "linearizable")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:3: process 1 completes an operation it never invoked",
        broken.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
}
