//! How a partition runs stored procedures, as a trait: the partition core
//! never names the Wasm engine. The node and the simulator hand it the
//! sandbox (`wasm::WasmRuntime`, over wasmtime); tests may hand it anything
//! that keeps the contract.

use crate::sql::Engine;
use crate::types::Value;
use crate::wasm::{CallOutcome, DeployError, DeployInfo, ProcError, TxnContext};

/// One tenant's procedures on one partition.
pub trait Procedures: Send {
    /// Runs `procedure` in its own transaction on `engine`: committed (its
    /// write-set returned) if it returns, rolled back on anything else.
    fn call(
        &mut self,
        engine: &mut Engine,
        procedure: &str,
        args: &[Value],
        txn: TxnContext,
    ) -> Result<CallOutcome, ProcError>;

    /// Deploys (or replaces) module `name` from its bytes, prepared
    /// against `engine`'s schema. Nothing changes on error.
    fn deploy(
        &mut self,
        engine: &mut Engine,
        name: &str,
        wasm: &[u8],
    ) -> Result<DeployInfo, DeployError>;

    /// Removes a module and its procedures; false if it was not deployed.
    fn drop_module(&mut self, name: &str) -> bool;

    /// Wasm fuel the last `call` burned, also when it failed (0 for
    /// procedures that are not Wasm).
    fn fuel_used_last(&self) -> u64 {
        0
    }
}

/// Makes `Procedures` for each tenant of each partition (one per node,
/// shared: it may cache compiled modules across partitions).
pub trait ProcRuntime: Send + Sync {
    fn procedures(&self) -> Box<dyn Procedures>;
}
