//! Native modules: a hand-built `ohm_sdk::Module` run through the same host
//! logic as Wasm, and `NativeBackend` driven directly.

use super::*;
use crate::sql::Engine;
use crate::wasm::host::CallState;
use crate::wasm::native::NativeBackend;
use crate::wasm::{codec, Limits, ProcError, ProcOutput, TxnContext};
use ohm_sdk::abi::{status, ErrorCode, Reader, Writer};
use ohm_sdk::{Backend, CallOutput, Context, Module, Param, Partition, Procedure, Statement};

/// `double(k BIGINT) -> BIGINT`: decodes its argument with the abi codec.
fn double(_: &mut Context<'_>, args: &[u8]) -> CallOutput {
    let mut r = Reader::new(args);
    let v = match (r.u32("count"), r.value()) {
        (Ok(1), Ok(abi::RawValue::Int(k))) => k.wrapping_mul(2),
        _ => {
            return CallOutput {
                status: status::CALL_BAD_ARGS,
                payload: b"expected one BIGINT".to_vec(),
            }
        }
    };
    let mut w = Writer::new();
    w.u8(abi::result_kind::VALUE);
    w.int_value(v);
    CallOutput {
        status: status::CALL_OK,
        payload: w.into_inner(),
    }
}

fn boom(_: &mut Context<'_>, _: &[u8]) -> CallOutput {
    panic!("native boom")
}

fn refuse(_: &mut Context<'_>, _: &[u8]) -> CallOutput {
    CallOutput {
        status: status::CALL_ABORT,
        payload: b"refused".to_vec(),
    }
}

static NATIVE: Module = Module {
    statements: &[Statement {
        index: 0,
        name: "put",
        sql: "INSERT INTO kv VALUES (?, ?)",
    }],
    procedures: &[
        Procedure {
            name: "double",
            params: &[Param {
                name: "k",
                ty: ty::I64,
            }],
            returns: ty::I64,
            partition: Some(Partition {
                table: "kv",
                column: "k",
                parameter: 0,
            }),
            invoke: double,
        },
        Procedure {
            name: "boom",
            params: &[],
            returns: ty::UNIT,
            partition: None,
            invoke: boom,
        },
        Procedure {
            name: "refuse",
            params: &[],
            returns: ty::UNIT,
            partition: None,
            invoke: refuse,
        },
    ],
};

static BAD_SQL: Module = Module {
    statements: &[Statement {
        index: 0,
        name: "gone",
        sql: "DELETE FROM missing",
    }],
    procedures: &[],
};

fn native_db() -> TestDb {
    let mut db = TestDb::new();
    for s in SCHEMA {
        db.sql(s);
    }
    if let Err(e) = db.deploy_native("native", &NATIVE) {
        panic!("{e}");
    }
    db
}

#[test]
fn native_procedures_run_with_the_same_checks() {
    let mut db = native_db();
    assert_eq!(
        db.call("double", &[Value::Int(21)]).unwrap(),
        ProcOutput::Value(Value::Int(42))
    );
    let e = db.call("double", &[Value::text("21")]).unwrap_err();
    assert!(matches!(e, ProcError::BadArguments { .. }), "{e}");
    let e = db.call("refuse", &[]).unwrap_err();
    assert_eq!(e.to_string(), "procedure refuse aborted: refused");
    assert!(!db.engine().in_txn());
}

#[test]
fn a_native_panic_is_panicked() {
    let mut db = native_db();
    let e = db.call("boom", &[]).unwrap_err();
    assert_eq!(
        e,
        ProcError::Panicked {
            procedure: "boom".into(),
            message: "native boom".into()
        }
    );
    assert_eq!(
        db.call("double", &[Value::Int(1)]).unwrap(),
        ProcOutput::Value(Value::Int(2))
    );
}

#[test]
fn native_modules_are_checked_at_deploy() {
    let mut db = native_db();
    let e = db.deploy_native("other", &BAD_SQL).unwrap_err().to_string();
    assert!(
        e.starts_with("module other: statement gone: does not prepare: "),
        "{e}"
    );
    // The same procedure names from another module collide.
    let e = db.deploy_native("again", &NATIVE).unwrap_err().to_string();
    assert_eq!(
        e,
        "module again: procedure double: is already deployed by module native"
    );
    assert!(db.deploy_native("native", &NATIVE).unwrap().replaced);
}

fn request(index: u32, params: &[Value]) -> Vec<u8> {
    let mut w = Writer::new();
    w.len(1);
    w.u32(index);
    w.len(params.len());
    for p in params {
        codec::write_value(&mut w, p);
    }
    w.into_inner()
}

#[test]
fn native_backend_runs_batches_and_reports_faults() {
    let mut engine = Engine::new();
    for s in SCHEMA {
        engine.execute(s).unwrap();
    }
    let statements = vec![engine.prepare("INSERT INTO kv VALUES (?, ?)").unwrap()];
    let txn = TxnContext {
        timestamp_us: 5,
        seed: 6,
    };
    let limits = Limits {
        statements_max: 1,
        ..Limits::default()
    };
    let mut state = CallState::new(limits, txn);
    engine.begin().unwrap();
    let mut b = NativeBackend {
        engine: &mut engine,
        statements: &statements,
        state: &mut state,
    };
    assert_eq!((b.now(), b.seed()), (5, 6));
    let mut resp = Vec::new();
    b.batch(&request(0, &[Value::Int(1), Value::text("a")]), &mut resp)
        .unwrap();
    assert_eq!(
        resp,
        [
            1,
            0,
            0,
            0,
            abi::outcome_kind::AFFECTED,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            0
        ]
    );
    // Over the statement limit: the procedure sees an error, the host the fault.
    let e = b
        .batch(&request(0, &[Value::Int(2), Value::text("b")]), &mut resp)
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Exec);
    assert!(
        e.message.contains("over the limit of 1 statements"),
        "{}",
        e.message
    );
    assert!(matches!(
        state.take_fault(),
        Some(crate::wasm::Fault::Limit { .. })
    ));
}
