//! What one partition replica holds: every tenant's engine (tables and
//! views), procedures and deployed module bytes on this partition, and how
//! a logged entry changes it.

use super::decide::Committed;
use super::kept::KeptCalls;
use super::procs::{ProcRuntime, Procedures};
use crate::catalog::PartitionId;
use crate::durability::{self, Entry, LoggedWrites, MultiBody, TenantImage};
use crate::sql::Engine;
use crate::types::TenantId;
use crate::wasm::DeployError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thiserror::Error;

/// One tenant's share of a partition.
pub struct TenantPart {
    pub engine: Engine,
    pub procs: Box<dyn Procedures>,
    /// Deployed modules' bytes, for snapshots (name order).
    pub modules: Vec<(String, Arc<[u8]>)>,
    /// Recent calls that came with an idempotency key, with their answers.
    pub kept: KeptCalls,
    /// Modules whose logged deploy could not be applied here (e.g. this
    /// build's sandbox refuses what an older one took), with why: their
    /// bytes stay in `modules` (and in snapshots), their procedures are
    /// not served, and everything else is.
    pub failed: BTreeMap<String, String>,
    /// The quotas an administrator set for the tenant, over the node's
    /// defaults (`PartitionState::quota_of`).
    pub quota: crate::catalog::QuotaSet,
    /// Wasm fuel its calls burned here lately (`fuel_per_sec`); not
    /// logged: a new leader starts it afresh.
    pub fuel: crate::catalog::FuelDue,
}

impl TenantPart {
    pub fn new(runtime: &dyn ProcRuntime) -> TenantPart {
        TenantPart {
            engine: Engine::new(),
            procs: runtime.procedures(),
            modules: Vec::new(),
            kept: KeptCalls::default(),
            failed: BTreeMap::new(),
            quota: crate::catalog::QuotaSet::default(),
            fuel: crate::catalog::FuelDue::default(),
        }
    }

    /// Records a deployed module's bytes (replacing an older version).
    pub fn remember_module(&mut self, name: &str, wasm: Arc<[u8]>) {
        self.modules.retain(|(n, _)| n != name);
        self.modules.push((name.to_string(), wasm));
        self.modules.sort_by(|a, b| a.0.cmp(&b.0));
    }

    pub fn forget_module(&mut self, name: &str) {
        self.modules.retain(|(n, _)| n != name);
        self.failed.remove(name);
    }

    /// Applies a deploy that was logged (so chosen): one that fails here
    /// is kept and marked failed rather than stopping the replica, since
    /// the log cannot be taken back and every other module and tenant
    /// must still be served.
    pub fn deploy_logged(&mut self, name: &str, wasm: Arc<[u8]>) {
        match self.procs.deploy(&mut self.engine, name, &wasm) {
            Ok(_) => {
                self.failed.remove(name);
            }
            Err(e) => {
                // The previous version, if any, is gone as the log says.
                self.procs.drop_module(name);
                self.failed.insert(name.to_string(), e.to_string());
            }
        }
        self.remember_module(name, wasm);
    }

    /// Deploys module bytes here and remembers them.
    pub fn deploy(
        &mut self,
        name: &str,
        wasm: Arc<[u8]>,
    ) -> Result<crate::wasm::DeployInfo, DeployError> {
        let info = self.procs.deploy(&mut self.engine, name, &wasm)?;
        self.failed.remove(name);
        self.remember_module(name, wasm);
        Ok(info)
    }

    /// Rows in all of this tenant's tables here.
    pub fn rows(&self) -> u64 {
        self.engine
            .database()
            .tables()
            .map(|t| t.len() as u64)
            .sum()
    }
}

/// Everything one partition replica holds. Owned by its core; lent whole
/// to the node's coordinator while it holds the partition for every
/// tenant, or as a shell (`shell_for`) while it holds it for one.
pub struct PartitionState {
    pub id: PartitionId,
    runtime: Arc<dyn ProcRuntime>,
    tenants: BTreeMap<TenantId, TenantPart>,
    /// Tenants whose part is lent out to run their calls on another thread
    /// (`partition::lease`): not here until it comes back.
    /// (A few at most, and kept in a Vec so that lending one for each
    /// call allocates nothing.)
    away: Vec<TenantId>,
    /// A state lent to a holder that works on one tenant (`shell_for`):
    /// that tenant's part alone is here, every other tenant is away.
    only: Option<TenantId>,
    /// The highest coordinator transaction applied here.
    pub mp_txn_max: u64,
    /// Coordinator transactions that not every partition logged (found at
    /// start-up): never applied.
    pub skipped: Arc<BTreeSet<u64>>,
    /// The coordinator transaction whose share this state holds applied in
    /// memory, its outcome not known yet (set by the coordinator that ran
    /// it; see `decide`). A state holding one is never snapshotted.
    pub undecided: Option<u64>,
    /// Partition 0: coordinator transactions it committed (see `decide`).
    pub committed: Committed,
    /// Partition 0, as lent: the lowest id its holder may give a new
    /// coordinator transaction (`decide::txn_floor`).
    pub txn_floor: u64,
    /// Partition 0 in a cluster: the tenants created since `ohm cluster
    /// init`, in order (its group is the cluster's metadata group; the node
    /// adds them to its catalog as they are applied).
    pub created_tenants: Vec<durability::TenantRecord>,
    /// Partition 0 in a cluster: the principals created or revoked since
    /// `ohm cluster init`, applied over `created_tenants`. Shared, and
    /// copied when changed: a node sees that it changed by pointer.
    pub principals: Arc<crate::catalog::PrincipalOverlay>,
}

impl PartitionState {
    pub fn new(id: PartitionId, runtime: Arc<dyn ProcRuntime>) -> PartitionState {
        PartitionState {
            id,
            runtime,
            tenants: BTreeMap::new(),
            away: Vec::new(),
            only: None,
            mp_txn_max: 0,
            skipped: Arc::default(),
            undecided: None,
            committed: Committed::default(),
            txn_floor: 0,
            created_tenants: Vec::new(),
            principals: Arc::default(),
        }
    }

    /// The tenant's part, created empty on first use. Never one that is
    /// away (lent out): its holder has it, and a new empty one here would
    /// be a second, diverging copy.
    pub fn tenant(&mut self, t: TenantId) -> &mut TenantPart {
        assert!(
            !self.is_away(t),
            "tenant {} of partition {} is away: its part is lent out",
            t.0,
            self.id.0
        );
        let runtime = &self.runtime;
        self.tenants
            .entry(t)
            .or_insert_with(|| TenantPart::new(runtime.as_ref()))
    }

    pub fn tenant_ref(&self, t: TenantId) -> Option<&TenantPart> {
        self.tenants.get(&t)
    }

    /// Takes the tenant's part out (created empty if it has none yet) to
    /// lend it; the tenant is away until `put_part`.
    pub(super) fn take_part(&mut self, t: TenantId) -> TenantPart {
        let part = self
            .tenants
            .remove(&t)
            .unwrap_or_else(|| TenantPart::new(self.runtime.as_ref()));
        self.away.push(t);
        part
    }

    /// A part taken with `take_part` comes back; false (and dropped) when
    /// the tenant is not away from this state.
    pub(super) fn put_part(&mut self, t: TenantId, part: TenantPart) -> bool {
        let Some(i) = self.away.iter().position(|a| *a == t) else {
            return false;
        };
        self.away.swap_remove(i);
        self.tenants.insert(t, part);
        true
    }

    /// Whether the tenant's part is lent out (or, in a shell, is not the
    /// tenant the shell was made for).
    pub fn is_away(&self, t: TenantId) -> bool {
        self.away.contains(&t) || self.only.is_some_and(|o| o != t)
    }

    /// The tenants whose parts are lent out.
    pub fn away(&self) -> impl Iterator<Item = TenantId> + '_ {
        self.away.iter().copied()
    }

    /// How many tenants' parts are lent out (a shell counts its other
    /// tenants as one: it is never whole).
    pub fn away_count(&self) -> usize {
        self.away.len() + usize::from(self.only.is_some())
    }

    /// A shell for a holder that works on tenant `t` alone: `t`'s part
    /// (taken out of this state, where `t` is away until `merge_shell`)
    /// and a copy of what is not any tenant's (transaction ids, outcomes,
    /// tenants and principals created). This state goes on serving the
    /// other tenants meanwhile.
    pub(super) fn shell_for(&mut self, t: TenantId) -> PartitionState {
        let part = self.take_part(t);
        PartitionState {
            id: self.id,
            runtime: self.runtime.clone(),
            tenants: BTreeMap::from([(t, part)]),
            away: Vec::new(),
            only: Some(t),
            mp_txn_max: self.mp_txn_max,
            skipped: self.skipped.clone(),
            undecided: self.undecided,
            committed: self.committed.clone(),
            txn_floor: self.txn_floor,
            created_tenants: self.created_tenants.clone(),
            principals: self.principals.clone(),
        }
    }

    /// A shell made by `shell_for` comes back: its tenant's part goes in,
    /// and what is not any tenant's is taken as the holder left it (only
    /// the holder changes it: calls on parts change none of it).
    pub(super) fn merge_shell(&mut self, shell: PartitionState) {
        // Every field named: a new one must be decided on here.
        let PartitionState {
            id: _,
            runtime: _,
            mut tenants,
            away: _,
            only,
            mp_txn_max,
            skipped: _,
            undecided,
            committed,
            txn_floor,
            created_tenants,
            principals,
        } = shell;
        let t = only.expect("merge_shell of a state that is not a shell");
        let part = tenants
            .remove(&t)
            .expect("a shell without the part it was made with");
        let put = self.put_part(t, part);
        assert!(put, "a shell's tenant that is not away from its state");
        self.mp_txn_max = self.mp_txn_max.max(mp_txn_max);
        self.undecided = undecided;
        self.committed = committed;
        self.txn_floor = txn_floor;
        self.created_tenants = created_tenants;
        self.principals = principals;
    }

    pub fn tenants(&self) -> impl Iterator<Item = (TenantId, &TenantPart)> + '_ {
        self.tenants.iter().map(|(t, p)| (*t, p))
    }

    /// A tenant's quota here: the node's `defaults` with what an
    /// administrator set for the tenant over them.
    pub fn quota_of(
        &self,
        tenant: TenantId,
        defaults: &crate::catalog::Quota,
    ) -> crate::catalog::Quota {
        defaults.with(self.tenant_ref(tenant).map(|p| &p.quota))
    }

    pub fn runtime(&self) -> &Arc<dyn ProcRuntime> {
        &self.runtime
    }

    /// What a snapshot of this partition holds (every part must be here).
    pub fn images(&self) -> Vec<TenantImage<'_>> {
        assert!(self.away.is_empty(), "a snapshot with parts lent out");
        self.tenants
            .iter()
            .map(|(t, p)| TenantImage {
                tenant: *t,
                engine: &p.engine,
                modules: &p.modules,
                kept: p.kept.iter().collect(),
                quota: &p.quota,
            })
            .collect()
    }

    /// A snapshot begins: every table will hand it its rows as they are
    /// now (`storage::Table::begin_snapshot`). Every part must be here.
    pub(super) fn begin_snapshot(&mut self, token: &crate::storage::SnapshotToken) {
        assert!(self.away_count() == 0, "a snapshot with parts lent out");
        for part in self.tenants.values_mut() {
            part.engine.database_mut().begin_snapshot(token);
        }
    }

    /// Table `table` of `tenant`, for the snapshot reading it (None if
    /// either is gone, or the part is away).
    pub(super) fn snapshot_table(
        &mut self,
        tenant: TenantId,
        table: crate::storage::TableId,
    ) -> Option<&mut crate::storage::Table> {
        if self.is_away(tenant) {
            return None;
        }
        let part = self.tenants.get_mut(&tenant)?;
        part.engine.database_mut().snapshot_table(table)
    }

    /// The tables here drop what they kept for an abandoned snapshot.
    pub(super) fn end_snapshot(&mut self) {
        for part in self.tenants.values_mut() {
            part.engine.database_mut().end_snapshot();
        }
    }

    /// Partition 0 in a cluster: records a principal created or revoked.
    pub fn set_principal(&mut self, c: &crate::catalog::PrincipalChange) {
        Arc::make_mut(&mut self.principals).insert((c.tenant, c.name.clone()), c.entry.clone());
    }

    /// Rebuilds a state from a decoded snapshot.
    pub fn from_snapshot(
        id: PartitionId,
        runtime: Arc<dyn ProcRuntime>,
        snap: durability::LoadedSnapshot,
    ) -> Result<PartitionState, ReplayError> {
        let mut state = PartitionState::new(id, runtime);
        state.mp_txn_max = snap.mp_txn_max;
        state.committed = Committed::from_image(snap.committed);
        state.created_tenants = snap.created_tenants;
        state.principals = Arc::new(snap.principals);
        for t in snap.tenants {
            let mut part = TenantPart {
                engine: t.engine,
                procs: state.runtime.procedures(),
                modules: Vec::new(),
                kept: KeptCalls::default(),
                failed: BTreeMap::new(),
                quota: t.quota,
                fuel: crate::catalog::FuelDue::default(),
            };
            for k in t.kept {
                part.kept.keep(k.key, k.output);
            }
            for (name, wasm) in t.modules {
                part.deploy_logged(&name, Arc::from(wasm));
            }
            state.tenants.insert(t.tenant, part);
        }
        Ok(state)
    }

    /// Applies one logged entry (a record's payload, decoded).
    pub fn replay(&mut self, entry: &Entry) -> Result<(), ReplayError> {
        match entry {
            Entry::Commit {
                tenant,
                writes,
                kept,
            } => {
                self.replay_writes(*tenant, writes)?;
                if let Some(k) = kept {
                    self.tenant(*tenant)
                        .kept
                        .keep(k.key.clone(), k.output.clone());
                }
                Ok(())
            }
            Entry::Multi { txn, tenant, body } => {
                if self.skipped.contains(txn) {
                    return Ok(());
                }
                self.mp_txn_max = self.mp_txn_max.max(*txn);
                if self.id.0 == 0 {
                    self.committed.insert(*txn);
                }
                self.replay_multi(*tenant, body)
            }
            // Shares are applied or passed over by their outcome before
            // this (see `decide`).
            Entry::Decide { txn, .. } => {
                self.mp_txn_max = self.mp_txn_max.max(*txn);
                Ok(())
            }
        }
    }

    fn replay_multi(&mut self, tenant: TenantId, body: &MultiBody) -> Result<(), ReplayError> {
        let part = self.tenant(tenant);
        match body {
            MultiBody::Writes(w) => self.replay_writes(tenant, w),
            MultiBody::KeptWrites { writes, kept } => {
                self.replay_writes(tenant, writes)?;
                let k = kept.clone();
                self.tenant(tenant).kept.keep(k.key, k.output);
                Ok(())
            }
            MultiBody::Ddl(sql) => {
                part.engine
                    .execute(sql)
                    .map(|_| ())
                    .map_err(|e| ReplayError::Ddl {
                        sql: sql.clone(),
                        message: e.to_string(),
                    })
            }
            MultiBody::Deploy { name, wasm } => {
                part.deploy_logged(name, Arc::from(wasm.as_slice()));
                Ok(())
            }
            MultiBody::DropModule { name } => {
                part.procs.drop_module(name);
                part.forget_module(name);
                Ok(())
            }
            MultiBody::CreateTenant(t) => {
                self.created_tenants.push(t.clone());
                Ok(())
            }
            MultiBody::SetQuota(q) => {
                part.quota = q.clone();
                Ok(())
            }
            MultiBody::Principal(c) => {
                self.set_principal(c);
                Ok(())
            }
        }
    }

    fn replay_writes(&mut self, t: TenantId, w: &LoggedWrites) -> Result<(), ReplayError> {
        durability::apply(&mut self.tenant(t).engine, w)
            .map(|_| ())
            .map_err(|e| ReplayError::Apply(e.to_string()))
    }
}

/// Why a logged entry could not be applied: the log and the state
/// disagree, so the replica must not serve.
#[derive(Debug, Clone, Error)]
pub enum ReplayError {
    #[error("replaying writes: {0}")]
    Apply(String),
    #[error("replaying DDL {sql:?}: {message}")]
    Ddl { sql: String, message: String },
    #[error("decoding a log record: {0}")]
    Decode(String),
    #[error("storage: {0}")]
    Storage(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(txn: u64, tenant: u32, name: &str, wasm: Vec<u8>) -> Entry {
        Entry::Multi {
            txn,
            tenant: TenantId(tenant),
            body: MultiBody::Deploy {
                name: name.to_string(),
                wasm,
            },
        }
    }

    fn tiny(i: usize) -> Vec<u8> {
        crate::wasm::tests::footprint::tiny_module(i)
    }

    /// Finding 1 of issue 11: a logged deploy that cannot be applied (here
    /// bytes this build refuses) stopped the replica, so the directory
    /// could not start. It is now kept, marked failed, and everything
    /// else is served.
    #[test]
    fn a_logged_deploy_that_cannot_load_is_marked_failed_and_the_rest_loads() {
        let runtime: Arc<dyn ProcRuntime> = Arc::new(crate::wasm::testing::shared_runtime());
        let mut state = PartitionState::new(PartitionId(0), runtime);
        state.replay(&deploy(1, 1, "good", tiny(1))).unwrap();
        state
            .replay(&deploy(2, 1, "bad", b"\0asm\x01\0\0\0 not wasm".to_vec()))
            .unwrap();
        state.replay(&deploy(3, 2, "other", tiny(2))).unwrap();
        let part = state.tenant_ref(TenantId(1)).unwrap();
        assert!(part.failed["bad"].contains("bad"), "{:?}", part.failed);
        // The bytes are kept for snapshots: the log said they were deployed.
        assert!(part.modules.iter().any(|(n, _)| n == "bad"));
        let txn = crate::wasm::TxnContext::default();
        for (t, p) in [(1, "p1"), (2, "p2")] {
            let part = state.tenant(TenantId(t));
            part.procs.call(&mut part.engine, p, &[], txn).unwrap();
        }
        // A later deploy of the name that loads clears the mark.
        state.replay(&deploy(4, 1, "bad", tiny(3))).unwrap();
        let part = state.tenant(TenantId(1));
        assert!(part.failed.is_empty());
        part.procs.call(&mut part.engine, "p3", &[], txn).unwrap();
    }
}
