//! Tests of the history readers: what each event means, and an error that
//! names the line for each way a file can be wrong.

use super::{read_file, History, HistoryError, Pairing, ParseError, HISTORY_BYTES_MAX};
use crate::lincheck::{
    KvInput, KvOutput, Operation, RegisterInput as I, RegisterOutput as O, Verdict, RET_UNKNOWN,
};
use std::time::{Duration, Instant};

/// A Jepsen log line.
fn j(process: &str, kind: &str, f: &str, value: &str) -> String {
    format!("INFO  jepsen.util - {process}\t:{kind}\t:{f}\t{value}\n")
}

fn register(text: &str) -> Vec<Operation<I, O>> {
    match History::parse(text) {
        Ok(History::Register(ops)) => ops,
        other => panic!("not a register history: {other:?}"),
    }
}

fn kv(text: &str) -> Vec<Operation<KvInput, KvOutput>> {
    match History::parse(text) {
        Ok(History::Kv(ops)) => ops,
        other => panic!("not a kv history: {other:?}"),
    }
}

fn error(text: &str) -> ParseError {
    match History::parse(text) {
        Err(e) => e,
        Ok(h) => panic!("parsed: {h:?}"),
    }
}

#[test]
fn jepsen_events_become_operations() {
    let log = [
        j("0", "invoke", "read", "nil"),       // 1
        j("1", "invoke", "write", "4"),        // 2
        j("2", "invoke", "cas", "[4 5]"),      // 3
        j("0", "ok", "read", "nil"),           // 4
        j("1", "info", "write", ":timed-out"), // 5
        j("2", "fail", "cas", "[4 5]"),        // 6
        j(":nemesis", "info", "start", "nil"), // 7
        j("6", "invoke", "read", "nil"),       // 8
        j("6", "fail", "read", ":timed-out"),  // 9
        j("3", "invoke", "write", "1"),        // 10
        j("3", "fail", "write", "1"),          // 11: had no effect, dropped
        j("4", "invoke", "cas", "[1 2]"),      // 12: never completes
    ]
    .concat();
    let want = vec![
        Operation::new(0, I::Read, 1, O::Read(None), 4),
        Operation::new(1, I::Write(4), 2, O::Unknown, RET_UNKNOWN),
        Operation::new(2, I::Cas { from: 4, to: 5 }, 3, O::Cas(false), 6),
        Operation::new(6, I::Read, 8, O::Unknown, 9),
        Operation::new(4, I::Cas { from: 1, to: 2 }, 12, O::Unknown, RET_UNKNOWN),
    ];
    assert_eq!(register(&log), want);
}

#[test]
fn jepsen_ok_values() {
    let log = [
        j("0", "invoke", "write", "3"),
        j("0", "ok", "write", "3"),
        j("0", "invoke", "read", "nil"),
        j("0", "ok", "read", "3"),
        j("0", "invoke", "cas", "[3 7]"),
        j("0", "ok", "cas", "[3 7]"),
    ]
    .concat();
    let outputs: Vec<O> = register(&log).into_iter().map(|op| op.output).collect();
    assert_eq!(outputs, vec![O::Write, O::Read(Some(3)), O::Cas(true)]);
    let history = History::parse(&log).expect("parses");
    let deadline = Instant::now() + Duration::from_secs(10);
    assert_eq!(history.check(deadline), Verdict::Linearizable);
}

#[test]
fn jepsen_errors_name_the_line() {
    let cases: [(String, usize, &str); 9] = [
        (
            j("0", "invoke", "read", "nil") + &j("0", "invoke", "read", "nil"),
            2,
            "process 0 invokes again before its invoke on line 1 completed",
        ),
        (
            j("0", "ok", "read", "nil"),
            1,
            "process 0 completes an operation it never invoked",
        ),
        (
            j("0", "invoke", "read", "nil") + &j("0", "ok", "write", "1"),
            2,
            "process 0 completes a :write but invoked a :read on line 1",
        ),
        (j("0", "invoke", "write", "x"), 1, "`x` is not nil"),
        (j("0", "invoke", "cas", "[1]"), 1, "`[1]` is not a pair"),
        (
            j("0", "invoke", "write", "nil"),
            1,
            ":write invoked with nil",
        ),
        (j("0", "invoke", "delete", "nil"), 1, "f :delete"),
        (j("0", "begin", "read", "nil"), 1, "type :begin"),
        (j("zero", "invoke", "read", "nil"), 1, "process `zero`"),
    ];
    for (text, line, message) in cases {
        let e = error(&text);
        assert_eq!(e.line, line, "{text}: {e}");
        assert!(e.message.contains(message), "{text}: {e}");
    }
    let e = error("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO something else\n");
    assert_eq!((e.line, e.message.starts_with("expected `INFO")), (2, true));
}

#[test]
fn edn_events_become_operations() {
    let log = r#"
{:process 0, :type :invoke, :f :append, :key "k", :value "x 0 0 y"}
{:process 1, :type :invoke, :f :get, :key "k", :value nil}
{:process 0, :type :ok, :f :append, :key "k", :value "x 0 0 y"}
{:process 1, :type :ok, :f :get, :key "k", :value "a \"quoted\" \\ value"}
{:process :nemesis, :type :info, :f :start, :value nil}
{:process 2, :type :invoke, :f :put, :key 7, :value "v", :time 123}
{:process 2, :type :info, :f :put, :key 7, :value "v"}
{:process 3, :type :invoke, :f :put, :key "k", :value "w"}
{:process 3, :type :fail, :f :put, :key "k", :value "w"}
{:process 4, :type :invoke, :f :get, :key "k", :value nil}
"#;
    let want = vec![
        Operation::new(0, KvInput::append("k", "x 0 0 y"), 2, KvOutput::Done, 4),
        Operation::new(
            1,
            KvInput::get("k"),
            3,
            KvOutput::Get("a \"quoted\" \\ value".into()),
            5,
        ),
        Operation::unknown(2, KvInput::put("7", "v"), 7, KvOutput::Unknown),
        Operation::unknown(4, KvInput::get("k"), 11, KvOutput::Unknown),
    ];
    assert_eq!(kv(log), want);
}

#[test]
fn edn_errors_name_the_line_and_column() {
    let inv = r#"{:process 0, :type :invoke, :f :get, :key "k", :value nil}"#;
    let cases: [(String, usize, &str); 8] = [
        (format!("{inv}\n{inv}"), 2, "invokes again"),
        (
            format!(
                "{inv}\n{}",
                r#"{:process 0, :type :ok, :f :get, :key "j", :value ""}"#
            ),
            2,
            "completes :get of key \"j\" but invoked :get of key \"k\" on line 1",
        ),
        (
            format!(
                "{inv}\n{}",
                r#"{:process 0, :type :ok, :f :get, :key "k", :value nil}"#
            ),
            2,
            ":ok :get of nil; expected a string",
        ),
        (
            r#"{:process 0, :process 1}"#.into(),
            1,
            "column 14: key :process appears twice",
        ),
        (
            r#"{:process 0, :type :invoke"#.into(),
            1,
            "ends inside the map",
        ),
        (
            r#"{:process 0, :type [1]}"#.into(),
            1,
            "column 20: unsupported value starting with `[`",
        ),
        (
            r#"{:process 0, :type :invoke, :f :get, :key "k} "#.into(),
            1,
            "inside a string",
        ),
        (
            r#"{:process 0, :type :invoke, :f :put, :key "k", :value nil}"#.into(),
            1,
            "a put or append writes a string",
        ),
    ];
    for (text, line, message) in cases {
        let e = error(&text);
        assert_eq!(e.line, line, "{text}: {e}");
        assert!(e.message.contains(message), "{text}: {e}");
    }
}

#[test]
fn the_format_is_told_by_the_first_line() {
    assert_eq!(error("").message, "the history is empty");
    assert_eq!(error("\n  \n").line, 1);
    let e = error("\n\nsomething else\n");
    assert_eq!(e.line, 3);
    assert!(e.message.starts_with("neither a Jepsen log line"), "{e}");
    let e = History::parse_bytes(b"{:process 0}\n\xff\n").expect_err("not UTF-8");
    assert_eq!((e.line, e.message.as_str()), (2, "not UTF-8 text"));
}

#[test]
fn the_operation_count_is_bounded() {
    let mut pairing: Pairing<I, O> = Pairing::new();
    pairing.ops_max = 2;
    for (line, process) in [(1, 0), (2, 1)] {
        pairing
            .invoke(line, process, I::Read)
            .expect("within the bound");
    }
    let e = pairing.invoke(3, 2, I::Read).expect_err("over the bound");
    assert_eq!((e.line, e.message.as_str()), (3, "more than 2 operations"));
}

#[test]
fn file_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("ohm-lincheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let missing = dir.join("missing.log");
    let e = read_file(&missing).expect_err("no such file");
    assert!(matches!(e, HistoryError::Read { .. }), "{e}");
    assert!(e
        .to_string()
        .starts_with(&format!("{}: cannot read", missing.display())));

    let bad = dir.join("bad.log");
    std::fs::write(&bad, j("0", "ok", "read", "nil")).expect("write");
    let e = read_file(&bad).expect_err("bad history");
    let want = format!("{}:1: process 0 completes", bad.display());
    assert!(e.to_string().starts_with(&want), "{e}");

    let big = dir.join("big.log");
    let file = std::fs::File::create(&big).expect("create");
    file.set_len(HISTORY_BYTES_MAX + 1).expect("sparse file");
    let e = read_file(&big).expect_err("too large");
    assert!(matches!(e, HistoryError::TooLarge { .. }), "{e}");
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}
