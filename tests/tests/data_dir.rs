//! End-to-end: an operator's accidents with a stopped node's data
//! directory (issue 12). A directory that has served must keep its
//! `node.meta`, `catalog` and every partition's log; a start that finds
//! one missing refuses, naming it, and recreates nothing, so putting the
//! file back brings every row back. Removing `LOCK` from under a running
//! node does not let a second node open the directory.

mod common;

use common::{ohm_binary, runtime, wasm_dir, Server, TempDir};
use ohm::proto::SqlResult;
use ohm::types::Value;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Rows the node is given before the accident.
const ROWS: i64 = 200;
/// How long a refused start may take to exit.
const REFUSAL_WAIT: Duration = Duration::from_secs(60);

/// A stopped 4-partition node's directory, holding `ROWS` rows of the demo
/// tenant's table `secret` (written by ad-hoc SQL, so on every partition).
fn node_with_rows(tmp: &TempDir) -> std::path::PathBuf {
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &["--partitions", "4", "--demo"]).unwrap();
    runtime().block_on(async {
        let c = server.client("demo.token").await;
        c.sql("CREATE TABLE secret (k BIGINT PRIMARY KEY, v TEXT)")
            .await
            .unwrap();
        c.sql("PARTITION TABLE secret ON COLUMN k").await.unwrap();
        let values: Vec<String> = (0..ROWS).map(|k| format!("({k}, 'row {k}')")).collect();
        c.sql(&format!("INSERT INTO secret VALUES {}", values.join(",")))
            .await
            .unwrap();
    });
    server.stop().unwrap();
    data
}

/// The demo tenant's rows in `secret`, on a node started on `data`.
fn rows_after_restart(data: &Path, args: &[&str]) -> i64 {
    let mut server = Server::start(data, args).unwrap();
    let n = runtime().block_on(async {
        let c = server.client("demo.token").await;
        match c.sql("SELECT COUNT(*) FROM secret").await.unwrap().pop() {
            Some(SqlResult::Rows(r)) => match r.rows.first().and_then(|r| r.first()) {
                Some(Value::Int(n)) => *n,
                other => panic!("a count, not {other:?}"),
            },
            other => panic!("rows, not {other:?}"),
        }
    });
    server.stop().unwrap();
    n
}

/// Starts `ohm serve` on `data`, which must refuse: its exit and what it
/// printed on stderr.
fn refused_start(data: &Path, args: &[&str]) -> String {
    let mut child = Command::new(ohm_binary())
        .arg("serve")
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("OHM_WASM_DIR", wasm_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ohm serve");
    let began = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for ohm serve") {
            break s;
        }
        if began.elapsed() > REFUSAL_WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ohm serve on a damaged directory was still running after {REFUSAL_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    assert!(
        !status.success() && !out.contains("ready "),
        "ohm serve started on a damaged directory: {status}, stdout {out:?}, stderr {err:?}"
    );
    err
}

#[test]
fn a_missing_partition_directory_is_refused_not_recreated() {
    let tmp = TempDir::new("dd-partition");
    let data = node_with_rows(&tmp);
    let aside = tmp.path().join("p3-aside");
    std::fs::rename(data.join("p3"), &aside).unwrap();
    let err = refused_start(&data, &["--demo"]);
    assert!(err.contains("p3/ is missing"), "{err}");
    assert!(!data.join("p3").exists(), "p3/ was recreated");
    std::fs::rename(&aside, data.join("p3")).unwrap();
    assert_eq!(rows_after_restart(&data, &["--demo"]), ROWS);
}

#[test]
fn a_partition_directory_without_its_log_is_refused() {
    let tmp = TempDir::new("dd-segments");
    let data = node_with_rows(&tmp);
    let aside = tmp.path().join("p1-files");
    std::fs::create_dir(&aside).unwrap();
    for entry in std::fs::read_dir(data.join("p1")).unwrap() {
        let entry = entry.unwrap();
        std::fs::rename(entry.path(), aside.join(entry.file_name())).unwrap();
    }
    let err = refused_start(&data, &["--demo"]);
    assert!(
        err.contains("p1/") && err.contains("no log segment"),
        "{err}"
    );
    let made = std::fs::read_dir(data.join("p1")).unwrap().count();
    assert_eq!(made, 0, "files were made in p1/ over the missing log");
    for entry in std::fs::read_dir(&aside).unwrap() {
        let entry = entry.unwrap();
        std::fs::rename(entry.path(), data.join("p1").join(entry.file_name())).unwrap();
    }
    assert_eq!(rows_after_restart(&data, &["--demo"]), ROWS);
}

#[test]
fn a_missing_catalog_is_refused_and_no_tenant_is_made_again() {
    let tmp = TempDir::new("dd-catalog");
    let data = node_with_rows(&tmp);
    let tokens = |f: &str| std::fs::read_to_string(data.join(f)).unwrap();
    let (admin, demo) = (tokens("admin.token"), tokens("demo.token"));
    std::fs::rename(data.join("catalog"), tmp.path().join("catalog-aside")).unwrap();
    let err = refused_start(&data, &["--demo"]);
    assert!(err.contains("catalog is missing"), "{err}");
    assert!(!data.join("catalog").exists(), "a new catalog was written");
    assert_eq!(tokens("admin.token"), admin, "a new admin token was made");
    assert_eq!(tokens("demo.token"), demo, "a new demo token was made");
    std::fs::rename(tmp.path().join("catalog-aside"), data.join("catalog")).unwrap();
    assert_eq!(rows_after_restart(&data, &["--demo"]), ROWS);
}

#[test]
fn a_missing_node_meta_is_refused_not_rewritten() {
    let tmp = TempDir::new("dd-meta");
    let data = node_with_rows(&tmp);
    let meta = std::fs::read(data.join("node.meta")).unwrap();
    std::fs::remove_file(data.join("node.meta")).unwrap();
    // Without --partitions, and with another count: neither may guess.
    for args in [&["--demo"][..], &["--demo", "--partitions", "2"][..]] {
        let err = refused_start(&data, args);
        assert!(err.contains("node.meta is missing"), "{args:?}: {err}");
        assert!(!data.join("node.meta").exists(), "node.meta was rewritten");
    }
    std::fs::write(data.join("node.meta"), meta).unwrap();
    assert_eq!(rows_after_restart(&data, &["--demo"]), ROWS);
}

#[test]
fn removing_lock_does_not_let_a_second_node_in() {
    let tmp = TempDir::new("dd-lock");
    let data = node_with_rows(&tmp);
    let mut first = Server::start(&data, &["--demo"]).unwrap();
    std::fs::remove_file(data.join("LOCK")).unwrap();
    let err = refused_start(&data, &["--demo"]);
    assert!(err.contains("another node"), "{err}");
    // The first node goes on serving what it has.
    let n = runtime().block_on(async {
        let c = first.client("demo.token").await;
        match c.sql("SELECT COUNT(*) FROM secret").await.unwrap().pop() {
            Some(SqlResult::Rows(r)) => r.rows.first().and_then(|r| r.first()).cloned(),
            _ => None,
        }
    });
    assert_eq!(n, Some(Value::Int(ROWS)));
    first.stop().unwrap();
}

/// `ohm check DATA`: whether it found the directory whole, and its output
/// (stdout, then stderr).
fn ohm_check(data: &Path) -> (bool, String) {
    let out = Command::new(ohm_binary())
        .arg("check")
        .arg(data)
        .output()
        .expect("running ohm check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The files of `dir` whose names start with `prefix`, sorted.
fn files(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    out.sort();
    out
}

/// Before: after a clean stop, a flipped byte in the last record, a
/// truncation at half the file or a zeroed last page each started "fine",
/// cut the records as "never acknowledged", and served without them.
#[test]
fn damage_at_the_end_of_the_log_after_a_clean_stop_is_refused() {
    let tmp = TempDir::new("dd-tail");
    let data = node_with_rows(&tmp);
    // The last partition: a start examines p0..p2 before it is refused.
    let newest = files(&data.join("p3"), "log-").pop().expect("a segment");
    let whole = std::fs::read(&newest).unwrap();
    let mut flipped = whole.clone();
    *flipped.last_mut().unwrap() ^= 0x40;
    let mut zeroed = whole.clone();
    let page = zeroed.len().saturating_sub(4096).max(64);
    zeroed[page..].fill(0);
    let half = whole[..whole.len() / 2].to_vec();
    let (whole_ok, report) = ohm_check(&data);
    assert!(whole_ok, "{report}");
    assert!(
        report.contains("p3/: ok:") && report.contains("closed cleanly"),
        "{report}"
    );
    for (kind, damaged) in [("flipped", flipped), ("zeroed", zeroed), ("half", half)] {
        std::fs::write(&newest, &damaged).unwrap();
        let (ok, report) = ohm_check(&data);
        assert!(!ok && report.contains("p3/: DAMAGED"), "{kind}: {report}");
        let err = refused_start(&data, &["--demo"]);
        assert!(
            err.contains("partition 3") && err.contains("cleanly"),
            "{kind}: {err}"
        );
        // Nothing was changed, in the other partitions either: p0's log is
        // still marked closed cleanly.
        let (_, report) = ohm_check(&data);
        let p0 = report.lines().find(|l| l.starts_with("p0/:"));
        assert!(
            p0.is_some_and(|l| l.contains("closed cleanly")),
            "{kind}: {report}"
        );
        assert!(!err.contains("never acknowledged"), "{kind}: {err}");
        assert_eq!(
            std::fs::read(&newest).unwrap(),
            damaged,
            "{kind}: the file was changed"
        );
    }
    std::fs::write(&newest, &whole).unwrap();
    assert_eq!(rows_after_restart(&data, &["--demo"]), ROWS);
    // `ohm check` leaves a running node alone.
    let mut server = Server::start(&data, &["--demo"]).unwrap();
    let (ok, report) = ohm_check(&data);
    assert!(
        !ok && report.contains("is using this data directory"),
        "{report}"
    );
    server.stop().unwrap();
}

/// Rows (of ~1 KB) that make each of 2 partitions take a snapshot at
/// `--snapshot-log-mib 1`.
const SNAPSHOT_ROWS: i64 = 3000;

/// Before: with the segments deleted and the snapshot kept, the node
/// started from the snapshot alone and the writes after it were gone.
#[test]
fn a_log_cut_back_to_its_snapshot_is_refused() {
    let tmp = TempDir::new("dd-snapshot-only");
    let data = tmp.path().join("data");
    let args = ["--partitions", "2", "--demo", "--snapshot-log-mib", "1"];
    let mut server = Server::start(&data, &args).unwrap();
    let pad = "x".repeat(1000);
    runtime().block_on(async {
        let c = server.client("demo.token").await;
        c.sql("CREATE TABLE secret (k BIGINT PRIMARY KEY, v TEXT)")
            .await
            .unwrap();
        c.sql("PARTITION TABLE secret ON COLUMN k").await.unwrap();
        // Enough log for a snapshot of each partition (~1.5 MiB each), then
        // more after it.
        for chunk in 0..SNAPSHOT_ROWS / 100 {
            let values: Vec<String> = (chunk * 100..chunk * 100 + 100)
                .map(|k| format!("({k}, '{pad}{k}')"))
                .collect();
            c.sql(&format!("INSERT INTO secret VALUES {}", values.join(",")))
                .await
                .unwrap();
            if chunk == SNAPSHOT_ROWS / 100 - 2 {
                // Snapshots are taken between calls: give them a moment.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    server.stop().unwrap();
    let p0 = data.join("p0");
    assert!(!files(&p0, "snap-").is_empty(), "no snapshot was taken");
    // Records follow the snapshot, so the mark is past it.
    let (ok, report) = ohm_check(&data);
    let line = report
        .lines()
        .find(|l| l.starts_with("p0/: ok:"))
        .unwrap_or_else(|| panic!("{ok} {report}"));
    let number_after = |what: &str| -> u64 {
        let rest = &line[line.find(what).unwrap_or_else(|| panic!("{line}")) + what.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    };
    assert!(
        number_after("last slot ") > number_after("snapshot at slot "),
        "{line}"
    );
    let aside = tmp.path().join("segments");
    std::fs::create_dir(&aside).unwrap();
    for seg in files(&p0, "log-") {
        std::fs::rename(&seg, aside.join(seg.file_name().unwrap())).unwrap();
    }
    let err = refused_start(&data, &args);
    assert!(
        err.contains("partition 0") && err.contains("missing or cut"),
        "{err}"
    );
    for seg in files(&aside, "log-") {
        std::fs::rename(&seg, p0.join(seg.file_name().unwrap())).unwrap();
    }
    assert_eq!(rows_after_restart(&data, &args), SNAPSHOT_ROWS);
}
