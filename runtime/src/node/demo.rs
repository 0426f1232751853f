//! The embedded default's tenant: `demo`, with the example procedures
//! (voter, bank, kv) deployed and their schemas created. Runs through the
//! coordinator like any client's request, so it is logged and recovered
//! like one; a restart finds it done and does nothing.

use super::coordinator::CoordTask;
use super::reply::ReplyFn;
use super::Node;
use crate::catalog::DEMO_TENANT;
use crate::proto::{ErrorReply, Reply};
use anyhow::{anyhow, bail, Context};
use std::path::Path;
use std::sync::mpsc::sync_channel;

/// The example modules: name, schema.
pub const EXAMPLES: [(&str, &[&str]); 3] = [
    ("voter", ohm_voter::SCHEMA),
    ("bank", ohm_bank::SCHEMA),
    ("kv", ohm_kv::SCHEMA),
];

pub use crate::wasm::default_procedures_dir;

pub(crate) fn ask(
    node: &Node,
    make: impl FnOnce(ReplyFn) -> CoordTask,
) -> Result<Reply, ErrorReply> {
    let (tx, rx) = sync_channel(1);
    let task = make(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    node.coordinator.send(task).map_err(|_| {
        ErrorReply::new(
            crate::proto::ErrorCode::Unavailable,
            "the coordinator stopped; this step was not applied",
        )
    })?;
    rx.recv().map_err(|_| {
        ErrorReply::new(
            crate::proto::ErrorCode::Unavailable,
            "the coordinator stopped; this step may or may not have taken effect",
        )
    })?
}

/// Creates the example schemas and deploys the example modules into the
/// demo tenant, skipping modules already deployed.
pub fn setup(node: &Node, dir: &Path) -> anyhow::Result<()> {
    let tenant = {
        let cat = node.catalog.read().unwrap_or_else(|p| p.into_inner());
        cat.tenant_by_name(DEMO_TENANT)
            .ok_or_else(|| anyhow!("no demo tenant"))?
            .id
    };
    for (module, schema) in EXAMPLES {
        let deployed = node
            .routes
            .get(tenant)
            .is_some_and(|r| r.values().any(|p| p.module == module));
        if deployed {
            continue;
        }
        let file = dir.join(format!("ohm_{module}.wasm"));
        let alt = dir.join(format!("{module}.wasm"));
        let path = if file.exists() { file } else { alt };
        let wasm = std::fs::read(&path).with_context(|| {
            format!(
                "the demo needs the example procedures, and {} is missing: build them with \
                 `cargo procs` (or pass --procedures DIR / set OHM_WASM_DIR)",
                path.display()
            )
        })?;
        for stmt in schema {
            let sql = stmt.to_string();
            match ask(node, |reply| CoordTask::Sql {
                tenant,
                sql,
                params: Vec::new(),
                timeout_ms: None,
                read_only: false,
                client: None,
                reply,
            }) {
                Ok(_) => {}
                // A restart after a partial setup: the schema is there.
                Err(e) if e.message.contains("already exists") => {}
                Err(e) => bail!("demo schema for {module}: {e}"),
            }
        }
        let name = module.to_string();
        ask(node, |reply| CoordTask::Deploy {
            tenant,
            name,
            wasm,
            compiled: None,
            reply,
        })
        .map_err(|e| anyhow!("deploying the demo module {module}: {e}"))?;
    }
    Ok(())
}
