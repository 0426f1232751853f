//! Finding 9 of issue 11: places where the host did not do what
//! docs/ABI.md says. Each test fails on the host before the fix.

use super::*;
use crate::wasm::ProcError;

/// A database with the kv schema and `g` deployed as module "edges".
fn db_with(g: &Guest) -> TestDb {
    let mut db = TestDb::new();
    for s in SCHEMA {
        db.sql(s);
    }
    db.deploy_wasm("edges", &g.wasm()).unwrap();
    db
}

fn count(db: &mut TestDb) -> Vec<Vec<Value>> {
    db.query_rows("SELECT COUNT(*) FROM kv")
}

/// WAT: a batch of `count` statements whose bytes are `body` (after the count).
fn raw_batch(count: u32, body: &[u32]) -> String {
    let mut s = format!("(i32.store (i32.const {REQ}) (i32.const {count}))");
    for (i, w) in body.iter().enumerate() {
        s.push_str(&format!(
            " (i32.store (i32.const {}) (i32.const {w}))",
            REQ + 4 + 4 * i as u32
        ));
    }
    let len = 4 + 4 * body.len();
    format!(
        "{s} (local.set $r (call $batch (i32.const {REQ}) (i32.const {len}) (i32.const {OUT}) (i32.const {OUT_CAP})))"
    )
}

#[test]
fn a_batch_with_no_statements_traps() {
    let mut g = Guest::new();
    g.statement("put", "INSERT INTO kv VALUES (?, ?)");
    let unit = g.constant(&UNIT);
    let body = format!("{} {}", raw_batch(0, &[]), return_const(unit, 0));
    g.procedure("empty", vec![], ty::UNIT, None, &body);
    let e = db_with(&g).call("empty", &[]).unwrap_err();
    assert!(
        matches!(&e, ProcError::Abi { message, .. } if message.contains("no statements")),
        "{e}"
    );
}

#[test]
fn a_statement_given_the_wrong_number_of_parameters_traps() {
    let mut g = Guest::new();
    g.statement("put", "INSERT INTO kv VALUES (?, ?)");
    let unit = g.constant(&UNIT);
    // Statement 0 with 0 parameters: it takes 2.
    let body = format!("{} {}", raw_batch(1, &[0, 0]), return_const(unit, 0));
    g.procedure("short", vec![], ty::UNIT, None, &body);
    let e = db_with(&g).call("short", &[]).unwrap_err();
    assert!(
        matches!(&e, ProcError::Abi { message, .. } if message.contains("takes 2 parameters")),
        "{e}"
    );
}

#[test]
fn a_guest_that_panics_and_then_returns_does_not_commit() {
    let mut g = Guest::new();
    g.statement("put", "INSERT INTO kv VALUES (?, ?)");
    let unit = g.constant(&UNIT);
    let (msg, msg_len) = g.constant(b"oops");
    let body = format!(
        "{} (call $panic (i32.const {msg}) (i32.const {msg_len})) {}",
        batch_with_args(0, OUT_CAP),
        return_const(unit, 0)
    );
    g.procedure("put_panic_return", kv(), ty::UNIT, on("kv", "k", 0), &body);
    let mut db = db_with(&g);
    let e = db
        .call("put_panic_return", &[Value::Int(1), Value::text("v")])
        .unwrap_err();
    assert!(
        matches!(&e, ProcError::Panicked { message, .. } if message == "oops"),
        "{e}"
    );
    assert_eq!(count(&mut db), vec![vec![Value::Int(0)]]);
}

#[test]
fn now_and_seed_in_the_start_function_trap_at_deploy() {
    for f in ["now", "seed"] {
        let mut g = Guest::new();
        g.extra = format!("(func $start (drop (call ${f}))) (start $start)");
        let e = TestDb::new().deploy_wasm("edges", &g.wasm()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("ohm.{f}")) && text.contains("start"),
            "{f}: {text}"
        );
    }
}

/// The Wasm proposals the host takes and refuses, as docs/ABI.md lists
/// them: each case is a minimal module plus one construct.
#[test]
fn the_documented_wasm_features_are_the_ones_accepted() {
    let with = |extra: &str| {
        let mut g = Guest::new();
        g.extra = extra.to_string();
        TestDb::new().deploy_wasm("features", &g.wasm())
    };
    let accepted = [
        ("tail calls", "(func $t (result i32) (return_call $u)) (func $u (result i32) (i32.const 0))"),
        ("extended constant expressions", "(global i32 (i32.add (i32.const 1) (i32.const 2)))"),
        ("SIMD", "(func (result v128) (i32x4.splat (i32.const 1)))"),
        (
            "relaxed SIMD",
            "(func (result v128) (i32x4.relaxed_trunc_f32x4_s (f32x4.splat (f32.const 1))))",
        ),
        (
            "typed function references",
            "(type $ft (func (result i32))) (func $g (type $ft) (i32.const 1)) (elem declare func $g) \
             (func (result i32) (call_ref $ft (ref.func $g)))",
        ),
        ("funcref tables", "(table 1 funcref)"),
        ("bulk memory", "(func (memory.fill (i32.const 0) (i32.const 0) (i32.const 8)))"),
    ];
    for (what, wat) in accepted {
        if let Err(e) = with(wat) {
            panic!("{what} refused: {e}");
        }
    }
    let refused = [
        ("externref", "(table 1 externref)"),
        (
            "threads",
            "(func (memory.atomic.notify (i32.const 0) (i32.const 0)) drop)",
        ),
        ("a second memory", "(memory 1)"),
    ];
    for (what, wat) in refused {
        assert!(with(wat).is_err(), "{what} accepted");
    }
}
