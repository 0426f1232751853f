//! Well-behaved Wasm calls: statements, results, the transaction around a
//! call, arguments, redeploy, and the per-call overhead.

use super::*;
use crate::sql::RowSet;
use crate::storage::WriteOp;
use crate::wasm::{ProcError, ProcOutput, TxnContext};
use ohm_sdk::abi::ErrorCode;
use std::time::Instant;

fn rows(out: ProcOutput) -> RowSet {
    match out {
        ProcOutput::Rows(r) => r,
        other => panic!("expected rows, got {other:?}"),
    }
}

#[test]
fn put_commits_and_get_returns_the_row_set() {
    let mut db = kv_db();
    let out = db
        .call_outcome("put", &[Value::Int(1), Value::text("one")])
        .unwrap();
    assert_eq!(out.output, ProcOutput::Value(Value::Null));
    assert!(out.fuel_used > 0);
    let [WriteOp::Insert { row, .. }] = &out.write_set.ops[..] else {
        panic!("{:?}", out.write_set)
    };
    assert_eq!(&row[..], &[Value::Int(1), Value::text("one")]);
    let r = rows(db.call("get", &[Value::Int(1)]).unwrap());
    let names: Vec<_> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["k", "v"]);
    assert_eq!(r.rows, vec![vec![Value::Int(1), Value::text("one")]]);
    assert!(rows(db.call("get", &[Value::Int(2)]).unwrap())
        .rows
        .is_empty());
    assert_eq!(
        all_rows(&mut db),
        vec![vec![Value::Int(1), Value::text("one")]]
    );
}

#[test]
fn a_response_too_big_for_the_buffer_is_taken() {
    let mut db = kv_db();
    put(&mut db, 7, "seven");
    let r = rows(db.call("get_via_take", &[Value::Int(7)]).unwrap());
    assert_eq!(r.rows, vec![vec![Value::Int(7), Value::text("seven")]]);
}

#[test]
fn a_statement_error_reaches_the_caller_and_undoes_the_call() {
    let mut db = kv_db();
    put(&mut db, 1, "one");
    let before = all_rows(&mut db);
    let e = db
        .call("put", &[Value::Int(1), Value::text("again")])
        .unwrap_err();
    let ProcError::Sql { code, message, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*code, ErrorCode::Unique);
    assert!(message.contains("duplicate key"), "{message}");
    let e = db
        .call("put", &[Value::Int(2), Value::text(&"x".repeat(101))])
        .unwrap_err();
    let ProcError::Sql { code, message, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*code, ErrorCode::TooLong);
    assert!(message.contains("value too long"), "{message}");
    assert_eq!(all_rows(&mut db), before);
    put(&mut db, 2, "two");
}

#[test]
fn now_and_seed_come_from_the_transaction() {
    let mut db = kv_db();
    db.set_txn(TxnContext {
        timestamp_us: 1_700_000_000_123_456,
        seed: u64::MAX - 1,
    });
    assert_eq!(
        db.call("clock", &[]).unwrap(),
        ProcOutput::Value(Value::Timestamp(1_700_000_000_123_456))
    );
    // The seed's u64 bits travel in an i64.
    assert_eq!(
        db.call("rnd", &[]).unwrap(),
        ProcOutput::Value(Value::Int(-2))
    );
}

#[test]
fn arguments_are_checked_before_the_guest_runs() {
    let mut db = kv_db();
    let e = db.call("put", &[Value::Int(1)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "procedure put: bad arguments: takes 2 arguments, 1 given"
    );
    let e = db
        .call("put", &[Value::text("1"), Value::text("x")])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "procedure put: bad arguments: argument k: expected BIGINT, got TEXT"
    );
    let e = db.call("nope", &[]).unwrap_err();
    assert_eq!(e.to_string(), "no procedure named nope is deployed");
    assert!(!db.engine().in_txn());
}

#[test]
fn a_result_of_the_wrong_type_is_an_abi_error() {
    let mut db = kv_db();
    let e = db.call("wrong_result", &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "procedure wrong_result broke the host ABI: result is TEXT but the procedure declares BIGINT"
    );
    put(&mut db, 1, "one");
}

#[test]
fn redeploy_swaps_between_calls() {
    let mut db = kv_db();
    assert_eq!(
        db.call("trivial", &[]).unwrap(),
        ProcOutput::Value(Value::Int(42))
    );
    let info = db.deploy_wasm("kv", &kv_guest(43).wasm()).unwrap();
    assert!(info.replaced);
    assert_eq!(info.statements, 3);
    assert_eq!(
        db.call("trivial", &[]).unwrap(),
        ProcOutput::Value(Value::Int(43))
    );
    // A rejected redeploy leaves the running version in place.
    let mut bad = kv_guest(44);
    bad.statement("oops", "SELECT * FROM missing");
    assert!(db.deploy_wasm("kv", &bad.wasm()).is_err());
    assert_eq!(
        db.call("trivial", &[]).unwrap(),
        ProcOutput::Value(Value::Int(43))
    );
    assert!(db.host().drop_module("kv"));
    let e = db.call("trivial", &[]).unwrap_err();
    assert!(matches!(e, ProcError::UnknownProcedure { .. }), "{e}");
}

#[test]
fn procedures_are_listed_with_their_declarations() {
    let mut db = kv_db();
    let host = db.host();
    let names: Vec<_> = host
        .procedures()
        .map(|(m, p)| format!("{m}.{}", p.name))
        .collect();
    assert!(names.contains(&"kv.put".to_string()), "{names:?}");
    assert_eq!(names.len(), 15);
    let put = host.procedure("put").unwrap();
    assert_eq!(put.partition.as_ref().map(|p| p.parameter), Some(0));
}

#[test]
fn one_module_compiles_once_and_deploys_in_many_partitions() {
    let runtime = crate::wasm::testing::shared_runtime();
    let compiled = runtime.compile("kv", &kv_guest(42).wasm()).unwrap();
    for _ in 0..2 {
        let mut engine = crate::sql::Engine::new();
        for s in SCHEMA {
            engine.execute(s).unwrap();
        }
        let mut host = crate::wasm::ProcHost::new(runtime.clone());
        host.deploy(&mut engine, compiled.clone()).unwrap();
        let out = host
            .call(&mut engine, "trivial", &[], TxnContext::default())
            .unwrap();
        assert_eq!(out.output, ProcOutput::Value(Value::Int(42)));
    }
}

/// Per-call overhead, printed (run with --nocapture); timings are not asserted.
#[test]
fn call_overhead() {
    let mut db = kv_db();
    for k in 0..1000 {
        put(&mut db, k, "value");
    }
    let n = 20_000;
    let time = |db: &mut TestDb, proc: &str, args: &[Value]| {
        let start = Instant::now();
        for _ in 0..n {
            if let Err(e) = db.call(proc, args) {
                panic!("{e}");
            }
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let trivial = time(&mut db, "trivial", &[]);
    let get = time(&mut db, "get", &[Value::Int(500)]);
    println!(
        "wasm call overhead: trivial {trivial:.0} calls/s, one point SELECT batch {get:.0} calls/s"
    );
}
