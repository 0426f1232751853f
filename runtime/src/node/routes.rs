//! Where a tenant's procedures run, and its quotas: read by every dispatch
//! (under a read lock), rewritten by the coordinator after a deploy, drop
//! or quota change (and on a follower, from partition 0's state).

use crate::catalog::{Quota, QuotaSet};
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
    /// Modules whose logged deploy could not be applied on this node, by
    /// tenant: (module, why). Their procedures have no route.
    failed: RwLock<HashMap<TenantId, Vec<(String, String)>>>,
    /// The quotas an administrator set, by tenant (none: the node's
    /// defaults).
    quotas: RwLock<HashMap<TenantId, QuotaSet>>,
}

impl Routes {
    pub fn get(&self, tenant: TenantId) -> Option<Arc<TenantRoutes>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant)
            .cloned()
    }

    /// A tenant's modules that failed to load here: (module, why).
    pub fn failed(&self, tenant: TenantId) -> Vec<(String, String)> {
        let failed = self.failed.read().unwrap_or_else(|p| p.into_inner());
        failed.get(&tenant).cloned().unwrap_or_default()
    }

    /// Says which of a tenant's modules failed to load (from its state).
    pub fn set_failed(
        &self,
        tenant: TenantId,
        failed: &std::collections::BTreeMap<String, String>,
    ) {
        let mut map = self.failed.write().unwrap_or_else(|p| p.into_inner());
        if failed.is_empty() {
            map.remove(&tenant);
        } else {
            let list = failed.iter().map(|(m, w)| (m.clone(), w.clone())).collect();
            map.insert(tenant, list);
        }
    }

    /// The quotas an administrator set for a tenant, over `defaults`.
    pub fn quota(&self, tenant: TenantId, defaults: &Quota) -> Quota {
        let quotas = self.quotas.read().unwrap_or_else(|p| p.into_inner());
        defaults.with(quotas.get(&tenant))
    }

    /// Says which quotas an administrator set for a tenant (from its state).
    pub fn set_quota(&self, tenant: TenantId, set: Option<&QuotaSet>) {
        let mut map = self.quotas.write().unwrap_or_else(|p| p.into_inner());
        match set.filter(|s| !s.is_empty()) {
            Some(s) => map.insert(tenant, s.clone()),
            None => map.remove(&tenant),
        };
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
