//! Tests of the whole procedure host: hand-written WAT guests deployed into
//! a `TestDb`, well-behaved and hostile, plus deploy rejections and native
//! modules.

mod abi_edges;
mod calls;
mod deadline;
mod deploy;
pub(crate) mod footprint;
pub(crate) use super::wat_guest as guest;
mod hostile;
mod native;

use super::testing::TestDb;
use crate::types::Value;
use guest::*;
use ohm_sdk::abi::{self, ty};

const SCHEMA: [&str; 2] = [
    "CREATE TABLE kv (k BIGINT PRIMARY KEY, v VARCHAR(100))",
    "PARTITION TABLE kv ON COLUMN k",
];

fn kv() -> Vec<abi::ParamDesc> {
    vec![param("k", ty::I64), param("v", ty::TEXT)]
}

fn k() -> Vec<abi::ParamDesc> {
    vec![param("k", ty::I64)]
}

/// The kv module: statements put/get/count, well-behaved procedures, and
/// hostile ones; `trivial` returns `trivial_result` (to tell versions apart).
fn kv_guest(trivial_result: i64) -> Guest {
    let mut g = Guest::new();
    g.statement("put", "INSERT INTO kv VALUES (?, ?)")
        .statement("get", "SELECT k, v FROM kv WHERE k = ?")
        .statement("count", "SELECT COUNT(*) FROM kv");
    well_behaved(&mut g, trivial_result);
    hostile(&mut g);
    g
}

fn well_behaved(g: &mut Guest, trivial_result: i64) {
    let unit = g.constant(&UNIT);
    let trivial = g.constant(&int_result(trivial_result));
    let put = format!("{} {}", batch_with_args(0, OUT_CAP), return_const(unit, 0));
    g.procedure("put", kv(), ty::UNIT, on("kv", "k", 0), &put);
    let get = format!("{} {}", batch_with_args(1, OUT_CAP), return_response_rows());
    g.procedure("get", k(), ty::ROWS, on("kv", "k", 0), &get);
    // A 4-byte output buffer: the response stays pending and is taken.
    let via_take = format!(
        "{} (drop (call $take (i32.const {OUT}) (i32.wrap_i64 (local.get $r)))) {}",
        batch_with_args(1, 4),
        return_response_rows()
    );
    g.procedure("get_via_take", k(), ty::ROWS, on("kv", "k", 0), &via_take);
    g.procedure("trivial", vec![], ty::I64, None, &return_const(trivial, 0));
    let now = return_i64(abi::tag::TIMESTAMP, "(call $now)");
    g.procedure("clock", vec![], ty::TIMESTAMP, None, &now);
    let seed = return_i64(abi::tag::INT, "(call $seed)");
    g.procedure("rnd", vec![], ty::I64, None, &seed);
}

fn hostile(g: &mut Guest) {
    let reason = g.constant(b"not today");
    let (msg, msg_len) = g.constant(b"boom: index out of bounds");
    let text = g.constant(&[abi::result_kind::VALUE, abi::tag::TEXT, 1, 0, 0, 0, b'x']);
    // One request running statement `count`.
    let count_req: Vec<u8> = [1u32, 2, 0].iter().flat_map(|n| n.to_le_bytes()).collect();
    let (req, req_len) = g.constant(&count_req);
    let unit = |g: &mut Guest, name: &str, body: &str| {
        g.procedure(name, vec![], ty::UNIT, None, body);
    };
    unit(g, "spin", "(loop $l (br $l)) (i32.const 0)");
    let grow = "(drop (memory.grow (i32.sub (i32.const 65536) (memory.size)))) (i32.const 0)";
    unit(g, "grow", grow);
    unit(
        g,
        "recurse",
        "(drop (call $deep (i32.const 0))) (i32.const 0)",
    );
    g.extra = "(func $deep (param i32) (result i32)
    (i32.add (call $deep (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))"
        .into();
    let bad_ptr = format!(
        "(drop (call $batch (i32.const 0x7fff0000) (i32.const 100) (i32.const {OUT}) (i32.const 16))) (i32.const 0)"
    );
    unit(g, "bad_ptr", &bad_ptr);
    let abort = format!(
        "{} {}",
        batch_with_args(0, OUT_CAP),
        return_const(reason, 1)
    );
    g.procedure("put_abort", kv(), ty::UNIT, on("kv", "k", 0), &abort);
    let panic = format!(
        "{} (call $panic (i32.const {msg}) (i32.const {msg_len})) unreachable",
        batch_with_args(0, OUT_CAP)
    );
    g.procedure("put_panic", kv(), ty::UNIT, on("kv", "k", 0), &panic);
    let many = format!(
        "(loop $l (drop (call $batch (i32.const {req}) (i32.const {req_len}) (i32.const {OUT}) (i32.const {OUT_CAP}))) (br $l)) (i32.const 0)"
    );
    unit(g, "many", &many);
    g.procedure(
        "wrong_result",
        vec![],
        ty::I64,
        None,
        &return_const(text, 0),
    );
    let short_take = format!("(drop (call $take (i32.const {ARGS}) (i32.const 1))) (i32.const 0)");
    g.procedure("short_take", k(), ty::UNIT, None, &short_take);
}

/// A database with the kv schema and the kv module deployed as Wasm.
fn kv_db() -> TestDb {
    let mut db = TestDb::new();
    for s in SCHEMA {
        db.sql(s);
    }
    if let Err(e) = db.deploy_wasm("kv", &kv_guest(42).wasm()) {
        panic!("{e}");
    }
    db
}

fn put(db: &mut TestDb, k: i64, v: &str) {
    if let Err(e) = db.call("put", &[Value::Int(k), Value::text(v)]) {
        panic!("put {k}: {e}");
    }
}

fn all_rows(db: &mut TestDb) -> Vec<Vec<Value>> {
    db.query_rows("SELECT k, v FROM kv ORDER BY k")
}
