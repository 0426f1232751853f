//! Finding 2 of issue 11: fuel counts Wasm instructions only, so a call
//! running slow statements could hold its partition for minutes. The
//! thread's watch now stops it inside the statement, and the call rolls
//! back with a typed error.

use super::*;
use crate::sql::interrupt::{self, Seen, Stopped, Watch, Work};
use crate::wasm::ProcError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `put` then a statement visiting rows³ combinations.
fn slow_guest() -> Guest {
    let mut g = Guest::new();
    g.statement("put", "INSERT INTO kv VALUES (?, ?)")
        .statement(
            "slow",
            "SELECT COUNT(*) FROM kv a, kv b, kv c WHERE a.k + b.k + c.k < 0",
        );
    let unit = g.constant(&UNIT);
    let slow = format!(
        "{put}
    (i32.store (i32.const {REQ}) (i32.const 1))
    (i32.store (i32.const {req4}) (i32.const 1))
    (i32.store (i32.const {req8}) (i32.const 0))
    (drop (call $batch (i32.const {REQ}) (i32.const 12) (i32.const {OUT}) (i32.const {OUT_CAP})))
    {ret}",
        put = batch_with_args(0, OUT_CAP),
        req4 = REQ + 4,
        req8 = REQ + 8,
        ret = return_const(unit, 0),
    );
    g.procedure("put_then_slow", kv(), ty::UNIT, on("kv", "k", 0), &slow);
    g
}

#[test]
fn a_call_past_its_time_limit_is_stopped_inside_its_statement_and_rolled_back() {
    std::thread::spawn(|| {
        let watch = Watch::new(100);
        let done = Arc::new(AtomicBool::new(false));
        let dog = {
            let (w, done) = (watch.clone(), done.clone());
            std::thread::spawn(move || {
                let (start, mut seen) = (Instant::now(), Seen::default());
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    interrupt::scan(&w, &mut seen, start.elapsed().as_millis() as u64);
                }
            })
        };
        interrupt::install(watch);
        let mut db = TestDb::new();
        for s in SCHEMA {
            db.sql(s);
        }
        let values: Vec<String> = (0..2000).map(|i| format!("({i}, 'v')")).collect();
        db.sql(&format!("INSERT INTO kv VALUES {}", values.join(",")));
        db.deploy_wasm("slow", &slow_guest().wasm()).unwrap();
        let work = Work::begin(None, None);
        let e = db
            .call("put_then_slow", &[Value::Int(-1), Value::text("gone")])
            .unwrap_err();
        drop(work);
        done.store(true, Ordering::Relaxed);
        dog.join().unwrap();
        assert_eq!(
            e,
            ProcError::Stopped {
                procedure: "put_then_slow".into(),
                why: Stopped::Deadline { budget_ms: 100 },
            }
        );
        // The put before the slow statement was rolled back with it.
        assert_eq!(
            db.query_rows("SELECT COUNT(*) FROM kv"),
            vec![vec![Value::Int(2000)]]
        );
    })
    .join()
    .unwrap();
}
