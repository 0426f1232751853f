//! Fuzz target `abi`: the bytes a hostile procedure module controls, through
//! the host code that reads them. The first input byte picks the reader:
//!
//! - 0: a module description (`ModuleDesc::decode`, then the deploy rules);
//!   whatever decodes must encode back to the same bytes.
//! - 1: a batch request, run by the host against a small table inside a
//!   transaction; rolling back must restore the table exactly.
//! - 2: a procedure result payload, checked against each declared type.
//! - 3: a status and payload from `ohm_call` (`host::finish`).
//! - 4: a whole module, compiled and checked as a deploy would.
//!
//! An `Err` is a fine answer; a panic, abort or hang is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ohm::sql::{Engine, QueryResult};
use ohm::types::Value;
use ohm::wasm::host::{self, CallState};
use ohm::wasm::{codec, deploy, testing, Limits, TxnContext};
use ohm_sdk::abi::{self, ModuleDesc};

const INPUT_BYTES_MAX: usize = 64 << 10;

const STATEMENTS: &[&str] = &[
    "INSERT INTO kv (k, v) VALUES (?, ?)",
    "SELECT k, v FROM kv WHERE k = ?",
    "UPDATE kv SET v = ? WHERE k = ?",
    "DELETE FROM kv WHERE k = ?",
    "SELECT COUNT(*), MAX(v) FROM kv",
];

fn dump(e: &mut Engine) -> Vec<Vec<Value>> {
    match e.execute("SELECT k, v FROM kv ORDER BY k") {
        Ok(QueryResult::Rows(r)) => r.rows,
        other => panic!("dump: {other:?}"),
    }
}

fn batch(bytes: &[u8]) {
    let mut e = Engine::new();
    for sql in [
        "CREATE TABLE kv (k BIGINT PRIMARY KEY, v VARCHAR(8))",
        "INSERT INTO kv VALUES (1, 'one'), (2, 'two')",
    ] {
        e.execute(sql).expect("fixed setup");
    }
    let prepared: Vec<_> = STATEMENTS
        .iter()
        .map(|s| e.prepare(s).expect("fixed statements"))
        .collect();
    let before = dump(&mut e);
    let limits = Limits {
        rows_returned_max: 1000,
        statements_max: 100,
        ..Limits::default()
    };
    let mut state = CallState::new(limits, TxnContext::default());
    e.begin().expect("no transaction is open");
    let mut response = Vec::new();
    // Twice: a fault must stick, and a second batch sees the first's writes.
    for _ in 0..2 {
        let _ = state.batch(&mut e, &prepared, bytes, &mut response);
    }
    e.rollback().expect("the transaction is open");
    assert_eq!(before, dump(&mut e), "rollback must restore the table");
}

fn description(bytes: &[u8]) {
    if let Ok(desc) = ModuleDesc::decode(bytes) {
        assert_eq!(desc.encode(), bytes, "decode then encode must round-trip");
        let _ = deploy::check_desc("fuzz", &desc);
    }
}

fn results(bytes: &[u8]) {
    let base = [
        abi::ty::BOOL,
        abi::ty::I64,
        abi::ty::F64,
        abi::ty::DECIMAL,
        abi::ty::TEXT,
        abi::ty::BYTES,
        abi::ty::TIMESTAMP,
        abi::ty::I32,
        abi::ty::I16,
        abi::ty::TIMESTAMPTZ,
        abi::ty::DATE,
        abi::ty::TIME,
        abi::ty::INTERVAL,
        abi::ty::UUID,
    ];
    let types = base
        .iter()
        .flat_map(|t| [*t, *t | abi::ty::NULLABLE])
        .chain([abi::ty::UNIT, abi::ty::ROWS]);
    for ty in types {
        let _ = codec::decode_result(ty, bytes, 1000);
    }
}

fn finish(bytes: &[u8]) {
    let Some((&status, payload)) = bytes.split_first() else {
        return;
    };
    let status = i32::from(status) - 2;
    for ty in [abi::ty::I64, abi::ty::ROWS, abi::ty::UNIT] {
        let _ = host::finish("fuzz", ty, status, payload, &Limits::default());
    }
}

fn module(bytes: &[u8]) {
    let _ = testing::shared_runtime().compile("fuzz", bytes);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if rest.len() > INPUT_BYTES_MAX {
        return;
    }
    match mode % 5 {
        0 => description(rest),
        1 => batch(rest),
        2 => results(rest),
        3 => finish(rest),
        _ => module(rest),
    }
});
