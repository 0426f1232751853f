//! Hostile and failing guests: each call ends in its typed `ProcError`, the
//! data is exactly as before, and the next call on the same host succeeds
//! (on a fresh instance where the old one trapped).

use super::*;
use crate::wasm::{Limits, ProcError};

/// Runs `proc` on a kv database holding two rows, checks that it fails
/// with an error accepted by `check`, that the table is unchanged, and that
/// the next call works.
fn fails_cleanly(db: &mut TestDb, proc: &str, args: &[Value], check: impl Fn(&ProcError) -> bool) {
    put(db, 1, "one");
    put(db, 2, "two");
    let before = all_rows(db);
    let e = match db.call(proc, args) {
        Err(e) => e,
        Ok(out) => panic!("{proc} succeeded: {out:?}"),
    };
    assert!(check(&e), "{proc}: unexpected error: {e}");
    assert_eq!(e.procedure(), proc);
    assert!(!db.engine().in_txn(), "{proc}: transaction left open");
    assert_eq!(all_rows(db), before, "{proc}: data changed");
    put(db, 3, "three");
    assert_eq!(all_rows(db).len(), 3);
}

fn kv(k: i64) -> [Value; 2] {
    [Value::Int(k), Value::text("new")]
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let mut db = kv_db();
    fails_cleanly(
        &mut db,
        "spin",
        &[],
        |e| matches!(e, ProcError::OutOfFuel { fuel, .. } if *fuel == crate::wasm::FUEL_PER_CALL_DEFAULT),
    );
}

#[test]
fn growing_memory_to_4_gib_hits_the_memory_limit() {
    let mut db = kv_db();
    fails_cleanly(
        &mut db,
        "grow",
        &[],
        |e| matches!(e, ProcError::MemoryLimit { bytes, .. } if *bytes == crate::wasm::MEMORY_BYTES_DEFAULT),
    );
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    let mut db = kv_db();
    fails_cleanly(&mut db, "recurse", &[], |e| {
        matches!(e, ProcError::StackOverflow { .. })
    });
}

#[test]
fn a_pointer_outside_memory_is_an_abi_error() {
    let mut db = kv_db();
    fails_cleanly(&mut db, "bad_ptr", &[], |e| {
        e.to_string()
            == "procedure bad_ptr broke the host ABI: ohm.batch: request (ptr 0x7fff0000, len 100) \
                is outside guest memory (131072 bytes)"
    });
}

#[test]
fn a_buffer_too_small_for_the_arguments_is_an_abi_error() {
    let mut db = kv_db();
    fails_cleanly(&mut db, "short_take", &[Value::Int(1)], |e| {
        e.to_string()
            .ends_with("ohm.take: buffer of 1 bytes is smaller than the 13 pending bytes")
    });
}

#[test]
fn abort_after_writes_undoes_them() {
    let mut db = kv_db();
    fails_cleanly(
        &mut db,
        "put_abort",
        &kv(9),
        |e| matches!(e, ProcError::Aborted { reason, .. } if reason == "not today"),
    );
}

#[test]
fn panic_then_unreachable_is_panicked_with_the_message() {
    let mut db = kv_db();
    fails_cleanly(
        &mut db,
        "put_panic",
        &kv(9),
        |e| matches!(e, ProcError::Panicked { message, .. } if message == "boom: index out of bounds"),
    );
}

#[test]
fn too_many_statements_is_a_limit() {
    let mut db = kv_db();
    db.set_limits(Limits {
        statements_max: 50,
        ..Limits::default()
    });
    fails_cleanly(&mut db, "many", &[], |e| {
        matches!(
            e,
            ProcError::Limit {
                what: "statements",
                limit: 50,
                ..
            }
        )
    });
}

#[test]
fn too_many_rows_returned_is_a_limit() {
    let mut db = kv_db();
    db.set_limits(Limits {
        rows_returned_max: 0,
        ..Limits::default()
    });
    fails_cleanly(&mut db, "get", &[Value::Int(1)], |e| {
        matches!(
            e,
            ProcError::Limit {
                what: "rows returned",
                ..
            }
        )
    });
}

#[test]
fn a_result_over_the_limit_is_a_limit() {
    let mut db = kv_db();
    db.set_limits(Limits {
        result_bytes_max: 4,
        ..Limits::default()
    });
    fails_cleanly(&mut db, "trivial", &[], |e| {
        matches!(
            e,
            ProcError::Limit {
                what: "result bytes",
                limit: 4,
                ..
            }
        )
    });
}

#[test]
fn a_lower_memory_limit_applies_to_the_live_instance() {
    let mut db = kv_db();
    db.set_limits(Limits {
        memory_bytes_max: 1 << 20,
        ..Limits::default()
    });
    fails_cleanly(
        &mut db,
        "grow",
        &[],
        |e| matches!(e, ProcError::MemoryLimit { bytes, .. } if *bytes == 1 << 20),
    );
}

#[test]
fn repeated_traps_never_wedge_the_host() {
    let mut db = kv_db();
    for i in 0..5 {
        for proc in ["spin", "recurse", "bad_ptr", "grow"] {
            assert!(db.call(proc, &[]).is_err());
        }
        put(&mut db, i, "ok");
    }
    assert_eq!(all_rows(&mut db).len(), 5);
}
