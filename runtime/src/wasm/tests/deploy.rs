//! Deploy rejections: each refused module gets one message naming the
//! module, the import/export/statement/procedure, and the problem.

use super::*;
use ohm_sdk::abi::{ModuleDesc, ProcedureDesc};

fn db() -> TestDb {
    let mut db = TestDb::new();
    for s in SCHEMA {
        db.sql(s);
    }
    db.sql("CREATE TABLE names (id INTEGER PRIMARY KEY, name VARCHAR(20))");
    db
}

fn rejected(g: &Guest) -> String {
    match db().deploy_wasm("m", &g.wasm()) {
        Err(e) => e.to_string(),
        Ok(info) => panic!("deployed: {info:?}"),
    }
}

/// A module with a do-nothing procedure `p` (no parameters) plus `with`.
fn minimal(with: impl FnOnce(&mut Guest)) -> Guest {
    let mut g = Guest::new();
    with(&mut g);
    g
}

fn wat_rejected(wat: &str) -> String {
    let bytes = wat::parse_str(wat).unwrap();
    match db().deploy_wasm("m", &bytes) {
        Err(e) => e.to_string(),
        Ok(info) => panic!("deployed: {info:?}"),
    }
}

fn proc_with(params: Vec<abi::ParamDesc>, partition: Option<abi::PartitionDesc>) -> Guest {
    minimal(|g| {
        g.procedure("vote", params, ty::UNIT, partition, "(i32.const 0)");
    })
}

#[test]
fn a_well_formed_module_deploys() {
    let info = db()
        .deploy_wasm(
            "m",
            &proc_with(vec![param("k", ty::I64)], on("kv", "k", 0)).wasm(),
        )
        .unwrap();
    assert_eq!(info.procedures, ["vote"]);
    assert!(!info.replaced);
}

#[test]
fn imports_from_other_modules_are_refused() {
    let mut g = minimal(|_| {});
    g.imports = Some(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#
            .into(),
    );
    assert_eq!(
        rejected(&g),
        "module m: import wasi_snapshot_preview1.fd_write: a procedure may import only from module \"ohm\", not \"wasi_snapshot_preview1\""
    );
}

#[test]
fn unknown_host_functions_are_refused() {
    let mut g = minimal(|_| {});
    g.imports = Some(r#"(import "ohm" "sleep" (func (param i64)))"#.into());
    assert_eq!(
        rejected(&g),
        "module m: import ohm.sleep: the host has no such function (it has batch, take, result, panic, now, seed)"
    );
}

#[test]
fn wrong_import_signatures_are_refused() {
    let mut g = minimal(|_| {});
    g.imports = Some(r#"(import "ohm" "batch" (func (param i32 i32) (result i32)))"#.into());
    assert_eq!(
        rejected(&g),
        "module m: import ohm.batch: signature is (i32, i32) -> i32 but the host function is (i32, i32, i32, i32) -> i64"
    );
    let mut g = minimal(|_| {});
    g.imports = Some(r#"(import "ohm" "now" (global i64))"#.into());
    assert_eq!(rejected(&g), "module m: import ohm.now: must be a function");
}

#[test]
fn missing_or_mistyped_exports_are_refused() {
    let e = wat_rejected(
        r#"(module (memory (export "memory") 1) (func (export "ohm_describe") (result i64) (i64.const 0)))"#,
    );
    assert_eq!(
        e,
        "module m: export ohm_call: missing (a function (i32, i32) -> i32)"
    );
    let e = wat_rejected(
        r#"(module (memory (export "memory") 1) (func (export "ohm_describe") (result i32) (i32.const 0))
           (func (export "ohm_call") (param i32 i32) (result i32) (i32.const 0)))"#,
    );
    assert_eq!(
        e,
        "module m: export ohm_describe: signature is () -> i32, must be () -> i64"
    );
    let e = wat_rejected(
        r#"(module (func (export "ohm_describe") (result i64) (i64.const 0))
           (func (export "ohm_call") (param i32 i32) (result i32) (i32.const 0)))"#,
    );
    assert_eq!(e, "module m: export memory: missing");
}

#[test]
fn garbage_bytes_are_refused() {
    let e = db()
        .deploy_wasm("m", b"not a wasm module")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("module m: not a valid WebAssembly module: "),
        "{e}"
    );
    let e = db().deploy_wasm("bad-name", b"").unwrap_err().to_string();
    assert!(
        e.starts_with("module name \"bad-name\" is not valid"),
        "{e}"
    );
}

#[test]
fn a_bad_description_is_refused() {
    let e = wat_rejected(
        r#"(module (memory (export "memory") 1) (data (i32.const 0) "OHMX\01\00")
           (func (export "ohm_describe") (result i64) (i64.const 6))
           (func (export "ohm_call") (param i32 i32) (result i32) (i32.const 0)))"#,
    );
    assert_eq!(
        e,
        "module m: description: description does not start with \"OHMD\" (at byte 0)"
    );
    let e = wat_rejected(
        r#"(module (memory (export "memory") 1)
           (func (export "ohm_describe") (result i64) (i64.const 0x0000fff000000100))
           (func (export "ohm_call") (param i32 i32) (result i32) (i32.const 0)))"#,
    );
    assert_eq!(
        e,
        "module m: description: ohm_describe returned ptr 0xfff0, len 256: outside guest memory (65536 bytes)"
    );
    let e = wat_rejected(
        r#"(module (memory (export "memory") 1)
           (func (export "ohm_describe") (result i64) (loop $l (br $l)) (i64.const 0))
           (func (export "ohm_call") (param i32 i32) (result i32) (i32.const 0)))"#,
    );
    assert_eq!(
        e,
        "module m: description: ohm_describe failed: out of fuel (limit 10000000)"
    );
}

#[test]
fn an_initial_memory_over_the_limit_is_refused() {
    let e = wat_rejected(
        r#"(module (memory (export "memory") 2000)
           (func (export "ohm_describe") (result i64) (i64.const 0))
           (func (export "ohm_call") (param i32 i32) (result i32) (i32.const 0)))"#,
    );
    assert_eq!(
        e,
        "module m: instantiation failed: memory limit of 67108864 bytes"
    );
}

#[test]
fn host_calls_from_a_start_function_are_refused() {
    let e = wat_rejected(
        r#"(module (import "ohm" "take" (func $take (param i32 i32) (result i32)))
           (memory (export "memory") 1)
           (func $start (drop (call $take (i32.const 0) (i32.const 0))))
           (start $start)
           (func (export "ohm_describe") (result i64) (i64.const 0))
           (func (export "ohm_call") (param i32 i32) (result i32) (i32.const 0)))"#,
    );
    assert_eq!(
        e,
        "module m: instantiation failed: ABI violation: ohm.take called before the instance was ready"
    );
}

#[test]
fn statements_must_prepare_against_the_schema() {
    let e = rejected(&minimal(|g| {
        g.statement("bad", "SELEC 1");
    }));
    assert!(
        e.starts_with("module m: statement bad: does not prepare: syntax error: "),
        "{e}"
    );
    let e = rejected(&minimal(|g| {
        g.statement("gone", "SELECT * FROM nope");
    }));
    assert!(
        e.starts_with("module m: statement gone: does not prepare: "),
        "{e}"
    );
    assert!(e.contains("nope"), "{e}");
    let e = rejected(&minimal(|g| {
        g.statement("ddl", "CREATE TABLE x (a INTEGER)");
    }));
    assert_eq!(
        e,
        "module m: statement ddl: is not a query or DML: a procedure may run only SELECT, INSERT, UPDATE and DELETE"
    );
    let e = rejected(&minimal(|g| {
        g.statement("txn", "COMMIT");
    }));
    assert!(
        e.starts_with("module m: statement txn: is not a query or DML"),
        "{e}"
    );
    let e = rejected(&minimal(|g| {
        g.statement("s", "SELECT 1").statement("s", "SELECT 2");
    }));
    assert_eq!(e, "module m: statement s: is declared twice");
}

#[test]
fn procedure_declarations_are_checked() {
    let e = rejected(&minimal(|g| {
        g.procedure("p", vec![], ty::UNIT, None, "(i32.const 0)");
        g.procedure("p", vec![], ty::UNIT, None, "(i32.const 0)");
    }));
    assert_eq!(e, "module m: procedure p: is declared twice");
    let e = rejected(&proc_with(vec![param("k", 42)], None));
    assert_eq!(
        e,
        "module m: procedure vote: parameter k has unknown type code 42"
    );
    let e = rejected(&minimal(|g| {
        g.procedure(
            "p",
            vec![param("k", ty::ROWS)],
            ty::UNIT,
            None,
            "(i32.const 0)",
        );
    }));
    assert!(e.contains("parameter k has unknown type code 11"), "{e}");
}

#[test]
fn a_procedure_name_belongs_to_one_module() {
    let mut db = db();
    db.deploy_wasm("a", &proc_with(vec![], None).wasm())
        .unwrap();
    let e = db
        .deploy_wasm("b", &proc_with(vec![], None).wasm())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "module b: procedure vote: is already deployed by module a"
    );
}

#[test]
fn partition_declarations_are_checked_against_the_schema() {
    let k = || vec![param("k", ty::I64)];
    let cases = [
        (
            k(),
            on("nope", "k", 0),
            "partition table nope does not exist",
        ),
        (
            k(),
            on("kv", "x", 0),
            "partition column x does not exist in table kv",
        ),
        (
            k(),
            on("names", "id", 0),
            "table names is not partitioned (it is replicated to every partition); \
             declare PARTITION TABLE names ON COLUMN id, or make the procedure multi-partition",
        ),
        (
            k(),
            on("kv", "v", 0),
            "table kv is partitioned on column k, not v",
        ),
        (
            vec![
                param("a", ty::I64),
                param("b", ty::I64),
                param("c", ty::I64),
            ],
            on("kv", "k", 3),
            "partition parameter 3 does not exist (vote takes 3 parameters)",
        ),
        (
            vec![param("phone", ty::TEXT)],
            on("kv", "k", 0),
            "partition parameter 0 (phone) is TEXT but column kv.k is BIGINT",
        ),
        (
            vec![param("k", ty::I64 | ty::NULLABLE)],
            on("kv", "k", 0),
            "partition parameter 0 (k) is BIGINT NULL; a partition key cannot be NULL",
        ),
    ];
    for (params, partition, want) in cases {
        let e = rejected(&proc_with(params, partition));
        assert_eq!(e, format!("module m: procedure vote: {want}"));
    }
    // Any integer width fits an integer column.
    db().deploy_wasm(
        "m",
        &proc_with(vec![param("k", ty::I16)], on("kv", "k", 0)).wasm(),
    )
    .unwrap();
}

#[test]
fn a_description_is_checked_without_a_schema_at_compile() {
    let mut g = Guest::new();
    g.desc = ModuleDesc {
        statements: vec![],
        procedures: vec![ProcedureDesc {
            name: "9lives".into(),
            params: vec![],
            returns: ty::UNIT,
            partition: None,
        }],
    };
    let rt = crate::wasm::testing::shared_runtime();
    let e = rt.compile("m", &g.wasm()).unwrap_err().to_string();
    assert!(
        e.starts_with("module m: procedure 9lives: is not a valid procedure name"),
        "{e}"
    );
}

/// Issue 11: a deploy warns when every procedure of a module runs on one
/// partition and a statement writes a replicated table or sets a partition
/// column (a call running it fails with `wrong_partition`); it still
/// deploys. With a multi-partition procedure in the module nothing is said.
#[test]
fn a_single_partition_module_is_warned_of_statements_it_cannot_run() {
    let statements = |g: &mut Guest| {
        g.statement("put", "INSERT INTO kv VALUES (?, ?)")
            .statement("tidy", "DELETE FROM kv WHERE k = ?")
            .statement("rename", "UPDATE names SET name = ? WHERE id = ?")
            .statement("move", "UPDATE kv SET k = k + 1 WHERE k = ?")
            .statement("touch", "UPDATE kv SET v = ? WHERE k = ?");
    };
    let unit_body = |g: &mut Guest| return_const(g.constant(&UNIT), 0);
    let mut single = Guest::new();
    statements(&mut single);
    let body = unit_body(&mut single);
    single.procedure("p", kv(), ty::UNIT, on("kv", "k", 0), &body);
    let info = db().deploy_wasm("m", &single.wasm()).unwrap();
    assert_eq!(info.warnings.len(), 2, "{:?}", info.warnings);
    assert!(
        info.warnings[0].contains("statement rename writes names, a replicated table: a call"),
        "{}",
        info.warnings[0]
    );
    assert!(
        info.warnings[1].contains("statement move sets kv.k, the column kv is partitioned on: a"),
        "{}",
        info.warnings[1]
    );
    assert!(info.warnings.iter().all(|w| w.contains("wrong_partition")));
    let mut mixed = Guest::new();
    statements(&mut mixed);
    let body = unit_body(&mut mixed);
    mixed.procedure("p", kv(), ty::UNIT, on("kv", "k", 0), &body);
    mixed.procedure("all", vec![], ty::UNIT, None, &body);
    assert_eq!(
        db().deploy_wasm("m", &mixed.wasm()).unwrap().warnings,
        Vec::<String>::new()
    );
}

/// The example modules deploy without a partition warning.
#[test]
fn the_example_modules_deploy_without_warnings() {
    let examples: [(&str, &[&str], &'static ohm_sdk::Module); 3] = [
        ("voter", ohm_voter::SCHEMA, ohm_voter::module()),
        ("bank", ohm_bank::SCHEMA, ohm_bank::module()),
        ("kv", ohm_kv::SCHEMA, ohm_kv::module()),
    ];
    for (name, schema, module) in examples {
        let mut db = TestDb::new();
        for s in schema {
            db.sql(s);
        }
        let info = db.deploy_native(name, module).unwrap();
        assert_eq!(info.warnings, Vec::<String>::new(), "{name}");
    }
}
