//! Where a tenant's procedures run: read by every dispatch (under a read
//! lock), rewritten by the coordinator after a deploy or drop.

use crate::types::TenantId;
use crate::wasm::CompiledModule;
use ohm_sdk::abi::ParamDesc;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone)]
pub struct ProcRoute {
    pub module: String,
    pub params: Vec<ParamDesc>,
    /// The argument whose value picks the partition; None: multi-partition.
    pub partition_param: Option<usize>,
    /// "table.column", for the catalog.
    pub partition_column: Option<String>,
}

pub type TenantRoutes = HashMap<String, ProcRoute>;

#[derive(Default)]
pub struct Routes {
    map: RwLock<HashMap<TenantId, Arc<TenantRoutes>>>,
}

impl Routes {
    pub fn get(&self, tenant: TenantId) -> Option<Arc<TenantRoutes>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant)
            .cloned()
    }

    /// Replaces a tenant's routes with those of `modules`.
    pub fn rebuild<'a>(
        &self,
        tenant: TenantId,
        modules: impl Iterator<Item = &'a Arc<CompiledModule>>,
    ) {
        let mut routes = TenantRoutes::new();
        for m in modules {
            for p in &m.desc().procedures {
                routes.insert(
                    p.name.clone(),
                    ProcRoute {
                        module: m.name().to_string(),
                        params: p.params.clone(),
                        partition_param: p.partition.as_ref().map(|d| d.parameter as usize),
                        partition_column: p
                            .partition
                            .as_ref()
                            .map(|d| format!("{}.{}", d.table, d.column)),
                    },
                );
            }
        }
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant, Arc::new(routes));
    }
}
