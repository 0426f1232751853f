//! An in-process database for procedure tests: one partition's engine and
//! `ProcHost`, with helpers that panic with the error message (test code
//! wants the failure, not a `Result`). The same procedure can be deployed
//! natively (`deploy_native`) and as Wasm (`deploy_wasm`), so a test or a
//! benchmark can run both and compare.
//!
//! ```ignore
//! let mut db = TestDb::new();
//! db.sql("CREATE TABLE kv (k BIGINT PRIMARY KEY, v VARCHAR(100))");
//! db.sql("PARTITION TABLE kv ON COLUMN k");
//! db.deploy_native("kv", kv::module()).unwrap();
//! db.call("put", &[Value::Int(1), Value::text("one")]).unwrap();
//! assert_eq!(db.query_rows("SELECT v FROM kv"), vec![vec![Value::text("one")]]);
//! ```
//!
//! Must not: be used by the node; it owns its engine and never logs.

use super::{
    CallOutcome, DeployError, DeployInfo, Limits, ProcError, ProcHost, ProcOutput, TxnContext,
    WasmRuntime,
};
use crate::sql::{Engine, QueryResult};
use crate::types::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The timestamp calls see unless `set_txn` says otherwise: 2024-01-01T00:00:00Z.
pub const TEST_TIMESTAMP_US: i64 = 1_704_067_200_000_000;
/// The seed calls see unless `set_txn` says otherwise.
pub const TEST_SEED: u64 = 42;

/// One engine per test process: building one costs more than a test.
pub fn shared_runtime() -> WasmRuntime {
    static RUNTIME: OnceLock<WasmRuntime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| match WasmRuntime::new() {
            Ok(r) => r,
            Err(e) => panic!("the default wasm engine must build: {e}"),
        })
        .clone()
}

/// One partition: an engine, its procedures, and a fixed transaction context.
pub struct TestDb {
    engine: Engine,
    host: ProcHost,
    txn: TxnContext,
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDb {
    pub fn new() -> TestDb {
        TestDb::with_runtime(shared_runtime())
    }

    pub fn with_runtime(runtime: WasmRuntime) -> TestDb {
        TestDb {
            engine: Engine::new(),
            host: ProcHost::new(runtime),
            txn: TxnContext {
                timestamp_us: TEST_TIMESTAMP_US,
                seed: TEST_SEED,
            },
        }
    }

    /// Runs SQL (DDL, `PARTITION TABLE`, queries); panics with the error.
    pub fn sql(&mut self, sql: &str) -> QueryResult {
        match self.engine.execute(sql) {
            Ok(r) => r,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    /// The rows of a query; panics if it fails or returns no rows.
    pub fn query_rows(&mut self, sql: &str) -> Vec<Vec<Value>> {
        match self.sql(sql) {
            QueryResult::Rows(r) => r.rows,
            other => panic!("{sql}: expected rows, got {other:?}"),
        }
    }

    pub fn deploy_native(
        &mut self,
        name: &str,
        module: &'static ohm_sdk::Module,
    ) -> Result<DeployInfo, DeployError> {
        self.host.deploy_native(&mut self.engine, name, module)
    }

    pub fn deploy_wasm(&mut self, name: &str, bytes: &[u8]) -> Result<DeployInfo, DeployError> {
        self.host.deploy_wasm(&mut self.engine, name, bytes)
    }

    /// Calls a procedure in its own transaction.
    pub fn call(&mut self, procedure: &str, args: &[Value]) -> Result<ProcOutput, ProcError> {
        self.call_outcome(procedure, args).map(|o| o.output)
    }

    /// Calls a procedure; the outcome includes the write-set and fuel used.
    pub fn call_outcome(
        &mut self,
        procedure: &str,
        args: &[Value],
    ) -> Result<CallOutcome, ProcError> {
        self.host.call(&mut self.engine, procedure, args, self.txn)
    }

    pub fn set_txn(&mut self, txn: TxnContext) {
        self.txn = txn;
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.host.set_limits(limits);
    }

    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn host(&mut self) -> &mut ProcHost {
        &mut self.host
    }
}

/// Where the built Wasm module of procedure crate `crate_name` is:
/// `$OHM_WASM_DIR/<name>.wasm`, else
/// `<target dir>/wasm32-unknown-unknown/wasm/<name>.wasm` (the target dir is
/// `$CARGO_TARGET_DIR` or the workspace's `target/`); `-` in the crate name
/// becomes `_`, as in cargo's output. The error says how to build it.
pub fn procedure_wasm(crate_name: &str) -> Result<PathBuf, String> {
    let file = format!("{}.wasm", crate_name.replace('-', "_"));
    let path = match std::env::var_os("OHM_WASM_DIR") {
        Some(dir) => PathBuf::from(dir).join(&file),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                        .join("..")
                        .join("target")
                });
            target
                .join("wasm32-unknown-unknown")
                .join("wasm")
                .join(&file)
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "procedure module {} not found; build it with \
             `cargo build --profile wasm --target wasm32-unknown-unknown -p {crate_name}` \
             (or point OHM_WASM_DIR at the directory holding {file})",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_procedure_wasm_says_how_to_build_it() {
        let e = procedure_wasm("no-such-procedure-crate").unwrap_err();
        assert!(e.contains("no_such_procedure_crate.wasm not found"), "{e}");
        assert!(
            e.contains("cargo build --profile wasm --target wasm32-unknown-unknown -p no-such-procedure-crate"),
            "{e}"
        );
    }
}
