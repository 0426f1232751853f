//! Multi-partition transactions on one node, sans-IO: run on the states of
//! every local partition while their cores lend them (the node's
//! coordinator holds them all, VoltDB's rule: serializable without row
//! locks), producing each partition's share as a log entry.
//!
//! ```text
//!   held states ──▶ scratch engine (rows the statement needs) ──▶ run SQL / procedure
//!        ▲                                                        │ write-set
//!        └──────── shares applied, all or nothing ◀── split by owning partition
//! ```
//!
//! Owns: gathering rows into a scratch engine and splitting writes back
//! (`scratch`), the single-partition fast path for pinned statements
//! (`route`), reading ad-hoc SQL text (`sqltext`), and running a
//! multi-partition procedure (`call_procedure`).
//! Must not: log, wait, or talk to cores (the caller releases each state
//! with its share); name wire types. Two-phase commit across nodes comes
//! later and replaces the "hold every partition" rule.

pub mod load;
pub mod route;
pub mod scratch;
pub mod sqltext;

use crate::catalog::Quota;
use crate::durability::LoggedWrites;
use crate::types::{TenantId, Value};
use crate::wasm::{DeployError, ProcError, ProcOutput, TxnContext};
use scratch::Guards;
use thiserror::Error;

/// Why a multi-partition transaction failed; nothing it did is kept.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TxnError {
    #[error("{0}")]
    Sql(String),
    #[error("{0}")]
    NotSupported(String),
    #[error("{0}")]
    TooLarge(String),
    /// The transaction would take the tenant past a quota.
    #[error("{0}")]
    Quota(crate::catalog::QuotaError),
    #[error("no procedure named {0} is deployed")]
    UnknownProcedure(String),
    #[error("{0}")]
    Proc(ProcError),
    #[error("{0}")]
    Deploy(DeployError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A multi-partition procedure: module `module` (deployed on every
/// partition) runs `procedure` on a scratch engine holding the tables its
/// statements mention (`words`: the statements' words, lowercase); its
/// writes are split by owner and applied to every partition. Returns the
/// output and each partition's share (empty shares where it wrote nothing;
/// no shares at all when it wrote nothing anywhere). Writes that would
/// take the tenant past `quota`'s rows on a partition are refused.
pub fn call_procedure(
    g: &mut Guards,
    (tenant, quota): (TenantId, &Quota),
    module: &str,
    words: &[String],
    procedure: &str,
    args: &[Value],
    txn: TxnContext,
) -> Result<(ProcOutput, Vec<LoggedWrites>), TxnError> {
    let wasm = g
        .first()
        .and_then(|p| p.tenant_ref(tenant))
        .and_then(|t| t.modules.iter().find(|(n, _)| n == module))
        .map(|(_, w)| w.clone())
        .ok_or_else(|| TxnError::UnknownProcedure(procedure.to_string()))?;
    // Its fuel is counted on partition 0, where multi-partition calls run
    // one at a time (`fuel_per_sec`); refused before anything is built.
    let per_sec = g.first().map_or(quota.fuel_per_sec, |p| {
        p.quota_of(tenant, quota).fuel_per_sec
    });
    if let Some(p0) = g.first_mut() {
        p0.tenant(tenant)
            .fuel
            .check(txn.timestamp_us, per_sec)
            .map_err(TxnError::Quota)?;
    }
    let names = scratch::needed(g, tenant, words);
    let mut s = scratch::scratch(g, tenant, &names, false)?;
    let runtime = g
        .first()
        .map(|p| p.runtime().clone())
        .ok_or_else(|| TxnError::Internal("a node without partitions".into()))?;
    let mut procs = runtime.procedures();
    procs
        .deploy(&mut s, module, &wasm)
        .map_err(TxnError::Deploy)?;
    let called = procs.call(&mut s, procedure, args, txn);
    if let Some(p0) = g.first_mut() {
        let fuel = procs.fuel_used_last();
        p0.tenant(tenant)
            .fuel
            .charge(fuel, txn.timestamp_us, per_sec);
    }
    let outcome = called.map_err(TxnError::Proc)?;
    let shares = route_writes(g, tenant, quota, &s, &outcome.write_set)?;
    Ok((outcome.output, shares))
}

/// Splits a scratch engine's write-set by owning partition and applies
/// each share (all or nothing), unless one would take the tenant past
/// `quota`'s rows on its partition. No shares when nothing was written.
pub fn route_writes(
    g: &mut Guards,
    tenant: TenantId,
    quota: &Quota,
    s: &crate::sql::Engine,
    ws: &crate::storage::WriteSet,
) -> Result<Vec<LoggedWrites>, TxnError> {
    if ws.ops.is_empty() {
        return Ok(Vec::new());
    }
    let logged = LoggedWrites::from_write_set(s.database(), ws);
    let shares = scratch::split(s, logged, g.len() as u32);
    scratch::check_size(&shares)?;
    scratch::check_rows(g, tenant, quota, &shares)?;
    scratch::apply_all(g, tenant, &shares)?;
    Ok(shares)
}
