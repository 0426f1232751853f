//! End-to-end: `ohm load` as a user runs it, against a real node. A CSV
//! with bad lines loads the good ones and names the bad ones (line, column,
//! reason) in its reject file; a load killed with kill -9, and a load whose
//! node is killed with kill -9, each resume with --resume to exactly the
//! source's rows (the table has no key that would hide a duplicate).

mod common;

use common::{acknowledged_chunks, ohm_binary, runtime, Server, TempDir};
use ohm::proto::SqlResult;
use ohm::types::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a loader may take to get some chunks acknowledged.
const PROGRESS_WAIT: Duration = Duration::from_secs(60);

fn loader(server: &Server, args: &[&str]) -> Command {
    let mut c = Command::new(ohm_binary());
    c.arg("load")
        .args(args)
        .args(["--addr", &server.addr, "--fingerprint", &server.fingerprint])
        .args(["--token", &server.token("demo.token"), "--no-progress"]);
    c
}

fn run(server: &Server, args: &[&str]) -> Output {
    loader(server, args).output().expect("running ohm load")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// COUNT(*) and SUM(id) of `table`.
fn count_sum(server: &Server, table: &str) -> (i64, i64) {
    runtime().block_on(async {
        let c = server.client("demo.token").await;
        let r = c
            .sql(&format!("SELECT COUNT(*), SUM(id) FROM {table}"))
            .await
            .unwrap();
        let Some(SqlResult::Rows(r)) = r.first() else {
            panic!("{r:?}")
        };
        match r.rows[0].as_slice() {
            [Value::Int(n), Value::Int(s)] => (*n, *s),
            [Value::Int(0), Value::Null] => (0, 0),
            other => panic!("{other:?}"),
        }
    })
}

fn sql(server: &Server, text: &str) {
    runtime().block_on(async {
        server.client("demo.token").await.sql(text).await.unwrap();
    });
}

#[test]
fn a_csv_with_bad_lines_loads_the_good_ones_and_names_the_bad_ones() {
    let tmp = TempDir::new("load-bad-lines");
    let server = Server::start(&tmp.path().join("data"), &["--demo"]).unwrap();
    sql(
        &server,
        "CREATE TABLE people (id BIGINT PRIMARY KEY, name VARCHAR(8) NOT NULL, \
         born DATE, score DECIMAL(5,1)); PARTITION TABLE people ON COLUMN id",
    );
    let csv = tmp.path().join("people.csv");
    std::fs::write(
        &csv,
        "id,name,born,score\n\
         1,ann,1990-01-02,1.5\n\
         2,\"bob, jr\",1991-02-03,2\n\
         x3,cy,1992-03-04,3\n\
         4,dee,1993-04-05,lots\n\
         5,eve\n\
         6,\"fay\",1994-13-01,6\n\
         7,\"gus is too long\",1995-01-01,7\n\
         1,dup,1996-01-01,8\n\
         9,,1997-01-01,9\n\
         10,\"open,1998-01-01,10\n",
    )
    .unwrap();
    let out = run(
        &server,
        &[
            "csv",
            csv.to_str().unwrap(),
            "--table",
            "people",
            "--max-errors",
            "10",
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("read 10 lines") && stdout.contains("loaded 2 rows, rejected 8"),
        "{stdout}"
    );
    assert_eq!(count_sum(&server, "people"), (2, 1 + 2));
    let rejects = std::fs::read_to_string(tmp.path().join("people.csv.rejected")).unwrap();
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines[0], "line,column,reason,record");
    let want = [
        ("4,\"id\",", "is not an integer"),
        ("5,\"score\",", "numeric"),
        ("6,\"\",", "2 fields"),
        ("7,\"born\",", "date"),
        ("8,\"name\",", "too long"),
        ("9,\"\",", "duplicate key"),
        // An unquoted empty field is NULL in CSV, as in PostgreSQL.
        ("10,\"name\",", "not-null"),
        ("11,\"\",", "never closed"),
    ];
    assert_eq!(lines.len(), 1 + want.len(), "{rejects}");
    for (line, (start, says)) in lines[1..].iter().zip(want) {
        assert!(
            line.starts_with(start) && line.contains(says),
            "{line:?}: want {start} {says}"
        );
    }
    // The record itself is kept, to fix and load again.
    assert!(
        lines[1].ends_with(",\"x3,cy,1992-03-04,3\""),
        "{}",
        lines[1]
    );
    // Over --max-errors: the load stops and says so.
    sql(&server, "CREATE TABLE p2 (id BIGINT, name TEXT)");
    let csv2 = tmp.path().join("p2.csv");
    std::fs::write(&csv2, "id,name\n1,a\nx,b\ny,c\n").unwrap();
    let out = run(
        &server,
        &[
            "csv",
            csv2.to_str().unwrap(),
            "--table",
            "p2",
            "--max-errors",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("more than --max-errors 1"),
        "{}",
        text(&out.stderr)
    );
}

/// A CSV of `rows` rows of `t (id, payload)`; the sum of its ids.
fn write_rows(path: &Path, rows: i64) -> i64 {
    let mut s = String::with_capacity(rows as usize * 40);
    s.push_str("id,payload\n");
    for i in 1..=rows {
        s.push_str(&format!("{i},\"row {i}, some text to carry\"\n"));
    }
    std::fs::write(path, s).unwrap();
    rows * (rows + 1) / 2
}

/// Starts a load and waits until `chunks` chunks are acknowledged (the
/// loader must still be running then: the kill lands mid-load).
fn start_and_wait(
    server: &Server,
    args: &[&str],
    state: &Path,
    chunks: u64,
) -> std::process::Child {
    let mut child = loader(server, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while acknowledged_chunks(state) < chunks {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the load ended before the kill"
        );
        assert!(start.elapsed() < PROGRESS_WAIT, "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

#[test]
fn a_load_killed_with_kill_9_resumes_to_exactly_the_source_rows() {
    let tmp = TempDir::new("load-kill-loader");
    let server = Server::start(&tmp.path().join("data"), &["--demo"]).unwrap();
    // No key: a chunk applied twice would show as extra rows.
    sql(
        &server,
        "CREATE TABLE t (id BIGINT, payload TEXT); PARTITION TABLE t ON COLUMN id",
    );
    let csv = tmp.path().join("rows.csv");
    let rows = 200_000;
    let sum = write_rows(&csv, rows);
    let state = tmp.path().join("rows.csv.ohm-load");
    let args = [
        "csv",
        csv.to_str().unwrap(),
        "--table",
        "t",
        "--chunk-rows",
        "1000",
    ];
    let mut child = start_and_wait(&server, &args, &state, 5);
    child.kill().unwrap();
    child.wait().unwrap();
    let (partial, _) = count_sum(&server, "t");
    assert!(
        partial > 0 && partial < rows,
        "killed mid-load: {partial} rows"
    );
    // Without --resume it refuses to start over the state.
    let out = run(&server, &args);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--resume"),
        "{}",
        text(&out.stderr)
    );
    let mut resumed = args.to_vec();
    resumed.push("--resume");
    let out = run(&server, &resumed);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(count_sum(&server, "t"), (rows, sum), "every row once");
    assert!(!state.exists(), "a finished load leaves no state");
}

#[test]
fn a_load_whose_node_is_killed_with_kill_9_resumes_to_exactly_the_source_rows() {
    let tmp = TempDir::new("load-kill-node");
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &["--demo"]).unwrap();
    sql(
        &server,
        "CREATE TABLE t (id BIGINT, payload TEXT); PARTITION TABLE t ON COLUMN id",
    );
    let csv = tmp.path().join("rows.csv");
    let rows = 200_000;
    let sum = write_rows(&csv, rows);
    let state = tmp.path().join("rows.csv.ohm-load");
    let args = [
        "csv",
        csv.to_str().unwrap(),
        "--table",
        "t",
        "--chunk-rows",
        "1000",
    ];
    let child = start_and_wait(&server, &args, &state, 5);
    server.kill9();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("--resume"),
        "{}",
        text(&out.stderr)
    );
    let server = Server::start(&data, &["--demo"]).unwrap();
    let mut resumed = args.to_vec();
    resumed.push("--resume");
    let out = run(&server, &resumed);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(count_sum(&server, "t"), (rows, sum), "every row once");
}
