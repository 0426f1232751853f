//! The example procedures (voter, bank, kv) run natively and as Wasm, in
//! process: the same calls must give the same answers and leave the same
//! data. Then the sandbox: a Rust guest that misbehaves on purpose must end
//! each call in a typed error with everything rolled back, and the next
//! call must work.
//!
//! The Wasm modules come from `cargo procs` (the README's test command runs
//! it first); a missing module fails the test with that instruction.

// Phone numbers are grouped as people write them: area code, exchange, line.
#![allow(clippy::inconsistent_digit_grouping)]

use ohm::sql::QueryResult;
use ohm::types::Value;
use ohm::wasm::{testing, testing::TestDb, DeployError, Limits, ProcError, ProcOutput};
use ohm_sdk::abi::ErrorCode;

fn wasm(crate_name: &str) -> Vec<u8> {
    let path = testing::procedure_wasm(crate_name).unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.into())
}

/// A database with `schema` run, and `module` deployed natively or as Wasm.
fn db(
    schema: &[&str],
    name: &str,
    native: &'static ohm_sdk::Module,
    wasm: Option<&[u8]>,
) -> TestDb {
    let mut db = TestDb::new();
    for ddl in schema {
        db.sql(ddl);
    }
    match wasm {
        Some(bytes) => db.deploy_wasm(name, bytes),
        None => db.deploy_native(name, native),
    }
    .unwrap_or_else(|e| panic!("deploy {name}: {e}"));
    db
}

type Step<'a> = (&'a str, Vec<Value>);
type Answer = Result<ProcOutput, ProcError>;

/// Runs `steps` on a native and a Wasm deployment; asserts both answer
/// every step alike and end with the same rows in `dump`; returns the
/// answers and the final rows.
fn both(
    schema: &[&str],
    native: &'static ohm_sdk::Module,
    crate_name: &str,
    steps: &[Step],
    dump: &str,
) -> (Vec<Answer>, Vec<Vec<Value>>) {
    let module = wasm(crate_name);
    let name = crate_name.trim_start_matches("ohm-");
    let mut n = db(schema, name, native, None);
    let mut w = db(schema, name, native, Some(&module));
    let mut answers = Vec::new();
    for (i, (procedure, args)) in steps.iter().enumerate() {
        let a = n.call(procedure, args);
        let b = w.call(procedure, args);
        assert_eq!(a, b, "step {i}: {procedure}{args:?}: native vs wasm");
        answers.push(a);
    }
    let rows = n.query_rows(dump);
    assert_eq!(rows, w.query_rows(dump), "{dump}: native vs wasm");
    (answers, rows)
}

fn int(n: i64) -> Answer {
    Ok(ProcOutput::Value(Value::Int(n)))
}

fn aborted(answer: &Answer, reason: &str) {
    match answer {
        Err(ProcError::Aborted { reason: r, .. }) => assert_eq!(r, reason),
        other => panic!("expected abort {reason:?}, got {other:?}"),
    }
}

const NAMES: &str = "Alice,Bob,Carol,Dave,Erin,Frank";

#[test]
fn voter_native_and_wasm_agree() {
    let phone = 212_555_0101; // New York
    let unknown_area = 999_555_0101; // no such area code: state XX
    let steps: Vec<Step> = vec![
        ("initialize", vec![Value::Int(6), text(NAMES)]),
        ("initialize", vec![Value::Int(6), text(NAMES)]),
        (
            "vote",
            vec![Value::Int(phone), Value::Int(3), Value::Int(2)],
        ),
        (
            "vote",
            vec![Value::Int(phone), Value::Int(999), Value::Int(2)],
        ),
        (
            "vote",
            vec![Value::Int(phone), Value::Int(3), Value::Int(2)],
        ),
        (
            "vote",
            vec![Value::Int(phone), Value::Int(1), Value::Int(2)],
        ),
        (
            "vote",
            vec![Value::Int(unknown_area), Value::Int(1), Value::Int(2)],
        ),
        (
            "vote",
            vec![Value::Int(415_555_0199), Value::Int(1), Value::Int(2)],
        ),
        ("results", vec![]),
        (
            "vote",
            vec![text("not a phone"), Value::Int(1), Value::Int(2)],
        ),
    ];
    let (answers, votes) = both(
        ohm_voter::SCHEMA,
        ohm_voter::module(),
        "ohm-voter",
        &steps,
        "SELECT phone_number, state, contestant_number FROM votes \
         ORDER BY phone_number, contestant_number",
    );
    assert_eq!(answers[0], int(6));
    assert_eq!(answers[1], int(6), "a second initialize changes nothing");
    assert_eq!(answers[2], int(ohm_voter::VOTE_ACCEPTED));
    assert_eq!(answers[3], int(ohm_voter::VOTE_INVALID_CONTESTANT));
    assert_eq!(answers[4], int(ohm_voter::VOTE_ACCEPTED));
    assert_eq!(answers[5], int(ohm_voter::VOTE_OVER_LIMIT));
    assert_eq!(answers[6], int(ohm_voter::VOTE_ACCEPTED));
    assert_eq!(answers[7], int(ohm_voter::VOTE_ACCEPTED));
    let Ok(ProcOutput::Rows(results)) = &answers[8] else {
        panic!("results: {:?}", answers[8]);
    };
    let names: Vec<&str> = results.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["contestant_name", "contestant_number", "total_votes"]
    );
    assert_eq!(
        results.rows[..3],
        [
            vec![text("Alice"), Value::Int(1), Value::Int(2)],
            vec![text("Carol"), Value::Int(3), Value::Int(2)],
            vec![text("Bob"), Value::Int(2), Value::Int(0)],
        ]
    );
    assert_eq!(results.rows.len(), 6);
    assert!(
        matches!(&answers[9], Err(ProcError::BadArguments { message, .. }) if message.contains("phone_number")),
        "{:?}",
        answers[9]
    );
    assert_eq!(
        votes,
        [
            vec![Value::Int(phone), text("NY"), Value::Int(3)],
            vec![Value::Int(phone), text("NY"), Value::Int(3)],
            vec![Value::Int(415_555_0199), text("CA"), Value::Int(1)],
            vec![Value::Int(unknown_area), text("XX"), Value::Int(1)],
        ]
    );
}

#[test]
fn bank_native_and_wasm_agree() {
    let i = Value::Int;
    let mut steps: Vec<Step> = (1..=4)
        .map(|id| ("open_account", vec![i(id), i(100)]))
        .collect();
    steps.extend([
        ("open_account", vec![i(1), i(5)]),
        ("open_account", vec![i(9), i(-5)]),
        ("transfer", vec![i(1), i(2), i(30)]),
        ("transfer", vec![i(1), i(2), i(71)]),
        ("transfer", vec![i(1), i(8), i(1)]),
        ("transfer", vec![i(3), i(3), i(1)]),
        ("transfer", vec![i(3), i(4), i(0)]),
        ("deposit", vec![i(4), i(50)]),
        ("deposit", vec![i(8), i(50)]),
        ("balance", vec![i(2)]),
        ("balance", vec![i(8)]),
        ("total_balance", vec![]),
        ("check_invariant", vec![i(4), i(450)]),
        ("check_invariant", vec![i(4), i(400)]),
    ]);
    let (a, rows) = both(
        ohm_bank::SCHEMA,
        ohm_bank::module(),
        "ohm-bank",
        &steps,
        "SELECT id, balance FROM accounts ORDER BY id",
    );
    for answer in &a[..4] {
        assert_eq!(*answer, Ok(ProcOutput::Value(Value::Null)));
    }
    aborted(&a[4], "account 1 already exists");
    aborted(&a[5], "opening balance -5 is negative");
    assert_eq!(a[6], int(70));
    aborted(
        &a[7],
        "insufficient funds: account 1 has 70, the transfer needs 71",
    );
    aborted(&a[8], "no account 8");
    aborted(&a[9], "transfer from account 3 to itself");
    aborted(&a[10], "transfer amount 0 is not positive");
    assert_eq!(a[11], int(150));
    aborted(&a[12], "no account 8");
    assert_eq!(a[13], int(130));
    assert_eq!(a[14], Ok(ProcOutput::Value(Value::Null)));
    assert_eq!(a[15], int(450));
    assert_eq!(a[16], int(450));
    aborted(&a[17], "balances sum to 450, expected 400");
    let expect: Vec<Vec<Value>> = [(1, 70), (2, 130), (3, 100), (4, 150)]
        .iter()
        .map(|&(id, b)| vec![i(id), i(b)])
        .collect();
    assert_eq!(rows, expect);
}

#[test]
fn kv_native_and_wasm_agree() {
    let big: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8).collect();
    let steps: Vec<Step> = vec![
        ("get", vec![text("a")]),
        ("put", vec![text("a"), bytes(b"one")]),
        ("put", vec![text("a"), bytes(b"two\0two")]),
        ("get", vec![text("a")]),
        ("cas", vec![text("a"), bytes(b"one"), bytes(b"three")]),
        ("cas", vec![text("a"), bytes(b"two\0two"), bytes(b"three")]),
        ("cas", vec![text("b"), Value::Null, bytes(&big)]),
        ("cas", vec![text("b"), Value::Null, bytes(b"lost")]),
        ("get", vec![text("b")]),
        ("delete", vec![text("a")]),
        ("delete", vec![text("a")]),
        ("put", vec![text(&"k".repeat(300)), bytes(b"x")]),
    ];
    let (a, rows) = both(
        ohm_kv::SCHEMA,
        ohm_kv::module(),
        "ohm-kv",
        &steps,
        "SELECT k, version FROM kv ORDER BY k",
    );
    let t = Ok(ProcOutput::Value(Value::Bool(true)));
    let f = Ok(ProcOutput::Value(Value::Bool(false)));
    assert_eq!(a[0], Ok(ProcOutput::Value(Value::Null)));
    assert_eq!((&a[1], &a[2]), (&int(1), &int(2)));
    assert_eq!(a[3], Ok(ProcOutput::Value(bytes(b"two\0two"))));
    assert_eq!((&a[4], &a[5], &a[6], &a[7]), (&f, &t, &t, &f));
    assert_eq!(a[8], Ok(ProcOutput::Value(bytes(&big))));
    assert_eq!((&a[9], &a[10]), (&t, &f));
    assert!(
        matches!(&a[11], Err(ProcError::Sql { code: ErrorCode::TooLong, message, .. })
            if message.contains("column \"k\" of table \"kv\": value too long")),
        "a 300-byte key in VARCHAR(256): {:?}",
        a[11]
    );
    assert_eq!(rows, [vec![text("b"), Value::Int(1)]]);
}

// ---- the sandbox ----

fn sandbox() -> TestDb {
    let module = wasm("ohm-guest-sandbox");
    let mut db = db(
        ohm_guest_sandbox::SCHEMA,
        "sandbox",
        ohm_guest_sandbox::module(),
        Some(&module),
    );
    assert_eq!(db.call("put", &[Value::Int(1), text("a")]), int(1));
    db
}

/// Calls `procedure`, expects `check` to accept the error, then checks the
/// table is exactly as before and that the next call succeeds.
fn misbehave(db: &mut TestDb, procedure: &str, args: &[Value], check: impl Fn(&ProcError) -> bool) {
    let before = db.query_rows("SELECT k, v FROM t ORDER BY k");
    let err = match db.call(procedure, args) {
        Err(e) => e,
        Ok(out) => panic!("{procedure} succeeded: {out:?}"),
    };
    assert!(check(&err), "{procedure}: unexpected error {err:?}");
    assert_eq!(err.procedure(), procedure, "{err}");
    let after = db.query_rows("SELECT k, v FROM t ORDER BY k");
    assert_eq!(before, after, "{procedure}: data changed after {err}");
    let k = 1000 + before.len() as i64;
    assert_eq!(
        db.call("put", &[Value::Int(k), text("next")]),
        int(before.len() as i64 + 1),
        "the call after {procedure} must work"
    );
}

#[test]
fn sandbox_infinite_loop_runs_out_of_fuel() {
    let mut db = sandbox();
    misbehave(&mut db, "spin", &[Value::Int(10)], |e| {
        matches!(e, ProcError::OutOfFuel { .. })
    });
}

#[test]
fn sandbox_4_gib_allocation_hits_the_memory_limit() {
    let mut db = sandbox();
    let four_gib = Value::Int(4 << 30);
    misbehave(&mut db, "grab", &[Value::Int(10), four_gib], |e| {
        matches!(e, ProcError::MemoryLimit { .. })
    });
}

#[test]
fn sandbox_deep_recursion_overflows_the_stack() {
    let mut db = sandbox();
    misbehave(
        &mut db,
        "recurse",
        &[Value::Int(10), Value::Int(100_000_000)],
        |e| matches!(e, ProcError::StackOverflow { .. }),
    );
}

#[test]
fn sandbox_pointer_outside_memory_is_an_abi_error() {
    let mut db = sandbox();
    misbehave(
        &mut db,
        "wild_pointer",
        &[Value::Int(10)],
        |e| matches!(e, ProcError::Abi { message, .. } if message.contains("batch")),
    );
}

#[test]
fn sandbox_abort_after_writes_undoes_them() {
    let mut db = sandbox();
    misbehave(
        &mut db,
        "write_then_abort",
        &[Value::Int(10)],
        |e| matches!(e, ProcError::Aborted { reason, .. } if reason == "changed my mind about 10"),
    );
}

#[test]
fn sandbox_panic_reports_its_message() {
    let mut db = sandbox();
    misbehave(
        &mut db,
        "write_then_panic",
        &[Value::Int(10)],
        |e| matches!(e, ProcError::Panicked { message, .. } if message.contains("index out of bounds")),
    );
}

#[test]
fn sandbox_statement_and_row_limits() {
    let mut db = sandbox();
    db.set_limits(Limits {
        statements_max: 100,
        ..Limits::default()
    });
    misbehave(
        &mut db,
        "many_statements",
        &[Value::Int(10), Value::Int(1000)],
        |e| matches!(e, ProcError::Limit { what, .. } if what.contains("statements")),
    );
    db.set_limits(Limits {
        rows_returned_max: 10,
        ..Limits::default()
    });
    misbehave(
        &mut db,
        "read_all",
        &[Value::Int(20), Value::Int(5)],
        |e| matches!(e, ProcError::Limit { what, .. } if what.contains("rows")),
    );
}

#[test]
fn sandbox_failures_natively_are_typed_too() {
    let mut db = db(
        ohm_guest_sandbox::SCHEMA,
        "sandbox",
        ohm_guest_sandbox::module(),
        None,
    );
    misbehave(&mut db, "write_then_abort", &[Value::Int(10)], |e| {
        matches!(e, ProcError::Aborted { .. })
    });
    misbehave(
        &mut db,
        "write_then_panic",
        &[Value::Int(20)],
        |e| matches!(e, ProcError::Panicked { message, .. } if message.contains("index out of bounds")),
    );
}

// ---- deployment of real modules against the wrong schema ----

fn deploy_err(schema: &[&str], crate_name: &str) -> String {
    let mut db = TestDb::new();
    for ddl in schema {
        db.sql(ddl);
    }
    let err: DeployError = db
        .deploy_wasm("voter", &wasm(crate_name))
        .expect_err("deploy must fail");
    err.to_string()
}

#[test]
fn deploying_voter_against_a_wrong_schema_names_the_problem() {
    let no_votes = &ohm_voter::SCHEMA[..2];
    let e = deploy_err(no_votes, "ohm-voter");
    assert!(e.contains("voter") && e.contains("votes"), "{e}");

    let unpartitioned: Vec<&str> = ohm_voter::SCHEMA
        .iter()
        .copied()
        .filter(|s| !s.starts_with("PARTITION"))
        .collect();
    let e = deploy_err(&unpartitioned, "ohm-voter");
    assert!(e.contains("vote") && e.contains("not partitioned"), "{e}");

    let by_state: Vec<&str> = ohm_voter::SCHEMA
        .iter()
        .map(|s| {
            if s.starts_with("PARTITION") {
                "PARTITION TABLE votes ON COLUMN state"
            } else {
                s
            }
        })
        .collect();
    let e = deploy_err(&by_state, "ohm-voter");
    assert!(e.contains("phone_number") && e.contains("state"), "{e}");
}

#[test]
fn deploying_garbage_is_refused_and_the_host_keeps_serving() {
    let mut db = sandbox();
    let e = db
        .deploy_wasm("junk", b"\0asm\x01\0\0\0garbage")
        .unwrap_err();
    assert!(e.to_string().contains("junk"), "{e}");
    let e = db.deploy_wasm("empty", b"").unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    assert_eq!(db.call("put", &[Value::Int(2), text("b")]), int(2));
    match db.sql("SELECT COUNT(*) FROM t") {
        QueryResult::Rows(r) => assert_eq!(r.rows, [vec![Value::Int(2)]]),
        other => panic!("{other:?}"),
    }
}
