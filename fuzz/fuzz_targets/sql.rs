//! Fuzz target `sql`: arbitrary text through parse, plan and execute.
//!
//! Each input gets a fresh engine holding a small fixed schema and data. The
//! input, read as UTF-8 (lossily), runs once as a whole script, then again on
//! another fresh engine piece by piece (split on `;`) so that a piece that
//! fails does not hide the ones after it, while later pieces still see the
//! DDL of earlier ones. Each piece is also prepared and, if it takes a few
//! parameters, executed with values drawn from the input. An `Err` is a fine
//! answer; a panic, abort or hang is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ohm::sql::Engine;
use ohm::types::Value;

/// Longer inputs only slow the fuzzer down; SQL bugs show up in short text.
const INPUT_BYTES_MAX: usize = 4096;
/// Prepared statements with more parameters than this are not executed.
const PARAMS_MAX: usize = 16;

const SETUP: &[&str] = &[
    "CREATE TABLE t(id INTEGER PRIMARY KEY, name VARCHAR(16) NOT NULL, score BIGINT, \
     ratio DOUBLE, price DECIMAL(10,2), ok BOOLEAN, at TIMESTAMP)",
    "CREATE INDEX t_score ON t(score)",
    "CREATE TABLE u(id BIGINT PRIMARY KEY, t_id INTEGER, note TEXT)",
    "INSERT INTO t VALUES (1, 'a', 10, 0.5, 1.25, true, '2024-01-01 00:00:00'), \
     (2, 'b', NULL, -1.0, 0.00, false, NULL), (3, 'c', 10, NULL, 99.99, NULL, '1970-01-01')",
    "INSERT INTO u VALUES (1, 1, 'x'), (2, 1, NULL), (3, 3, ''), (4, NULL, 'y')",
];

fn engine() -> Engine {
    let mut engine = Engine::new();
    for sql in SETUP {
        // The fixed schema is plain SQL every build must accept: failing here
        // is a bug worth the fuzzer's attention too.
        if let Err(e) = engine.execute(sql) {
            panic!("fuzz setup statement rejected: {sql}: {e}");
        }
    }
    engine
}

/// Parameter values for a prepared statement, drawn from the input bytes.
fn params(count: usize, data: &[u8]) -> Vec<Value> {
    (0..count)
        .map(|i| match data.get(i).copied().unwrap_or(0) % 5 {
            0 => Value::Null,
            1 => Value::Int(i64::from(data.get(i + 1).copied().unwrap_or(0)) - 128),
            2 => Value::Int(i64::MAX),
            3 => Value::text("a"),
            _ => Value::Double(-0.5),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() > INPUT_BYTES_MAX {
        return;
    }
    let text = String::from_utf8_lossy(data);

    let _ = engine().execute(&text);

    let mut engine = engine();
    for piece in text.split(';') {
        let _ = engine.execute(piece);
        if let Ok(stmt) = engine.prepare(piece) {
            let count = stmt.param_count();
            if count <= PARAMS_MAX {
                let _ = engine.execute_prepared(&stmt, &params(count, data));
            }
        }
    }
});
