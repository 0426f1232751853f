//! The coordinator: one thread that runs everything that is not a
//! single-partition call — multi-partition procedures, ad-hoc SQL, DDL,
//! deploys, the catalog and tenant creation — one at a time, holding every
//! partition (VoltDB's rule: serializable without row locks). Holding is
//! done by messages to the executors (`hold`): each core lends its state.
//!
//! A change is applied to every held state, then each partition's share is
//! handed back as an `Entry::Multi` (one transaction id in every
//! partition's log), committed in two phases (`partition::decide`), and the
//! reply waits until partition 0's share, the commit, is chosen; the
//! partitions are held until then, so nothing that reads the change is
//! acknowledged before it is durable everywhere. On a lone node recovery
//! applies a transaction only if every partition logged it (see
//! `node::recovery`).

use super::executor::{FatalFn, Input};
use super::hold::{hold_all, Held};
use super::reply::{self, ReplyFn};
use super::routes::Routes;
use crate::catalog::Catalog;
use crate::durability::{self, Entry, KeptCall, LoggedWrites, MultiBody};
use crate::partition::kept::answer_to_keep;
use crate::proto::{
    CatalogInfo, ErrorCode, ErrorReply, LoadRequest, Loaded, ProcedureInfo, RejectedRow, Reply,
    TableInfo,
};
use crate::sql::interrupt;
use crate::txn::{self, sqltext};
use crate::types::{TenantId, Value};
use crate::wasm::{CompiledModule, TxnContext, WasmRuntime};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Work run on every held partition state (`CoordTask::Inspect`).
pub type InspectFn = Box<dyn FnOnce(&mut [Box<crate::partition::PartitionState>]) + Send>;

/// Requests waiting for the coordinator.
pub const COORDINATOR_QUEUE_MAX: usize = 1024;

pub enum CoordTask {
    Sql {
        tenant: TenantId,
        sql: String,
        /// Values of the statement's `$n`s (then it has exactly one).
        params: Vec<Value>,
        /// Each statement's time limit, when less than the tenant's.
        timeout_ms: Option<u64>,
        /// Queries only (a reader's request): any other statement refuses
        /// the request before any statement runs.
        read_only: bool,
        /// Set when the client is gone: the running statement stops.
        client: Option<Arc<AtomicBool>>,
        reply: ReplyFn,
    },
    Call {
        tenant: TenantId,
        procedure: String,
        args: Vec<Value>,
        key: Option<String>,
        /// The call's time limit, when less than the tenant's.
        timeout_ms: Option<u64>,
        reply: ReplyFn,
    },
    /// A bulk-load chunk (`load`).
    Load {
        tenant: TenantId,
        load: LoadRequest,
        reply: ReplyFn,
    },
    Deploy {
        tenant: TenantId,
        name: String,
        wasm: Vec<u8>,
        /// `wasm` compiled already (off this thread); None: compile here.
        compiled: Option<Arc<CompiledModule>>,
        reply: ReplyFn,
    },
    Drop {
        tenant: TenantId,
        name: String,
        reply: ReplyFn,
    },
    Catalog {
        tenant: TenantId,
        tenant_name: String,
        reply: ReplyFn,
    },
    CreateTenant {
        name: String,
        reply: ReplyFn,
    },
    /// Sets (then answers) a tenant's quotas.
    TenantQuota {
        tenant: String,
        set: Vec<(String, Option<u64>)>,
        reply: ReplyFn,
    },
    /// Creates, revokes or lists a tenant's principals (tokens).
    Token {
        tenant: String,
        op: super::tokens::TokenOp,
        reply: ReplyFn,
    },
    /// Run `f` on every held partition state (tests and tools that inspect
    /// state without a lock), then let them go.
    Inspect {
        f: InspectFn,
        reply: ReplyFn,
    },
    /// Finish what is queued before this, then exit.
    Stop,
}

pub struct Coordinator {
    pub executors: Vec<Sender<Input>>,
    pub runtime: WasmRuntime,
    pub routes: Arc<Routes>,
    pub catalog: Arc<RwLock<Catalog>>,
    pub dir: Arc<cap_std::fs::Dir>,
    /// The last coordinator transaction id used (recovered from the logs).
    pub last_txn: Cell<u64>,
    /// Every deployed module, compiled once: (tenant, module) -> module.
    pub modules: std::cell::RefCell<BTreeMap<(TenantId, String), Arc<CompiledModule>>>,
    /// The coordinator transaction (partition 0's `mp_txn_max`) `modules`
    /// reflect: behind `last_txn` after a restart in a cluster, where the
    /// logged deploys are applied only once the leader says they are chosen.
    pub modules_txn: Cell<u64>,
    /// While `modules_txn` is behind: the tenants whose modules in
    /// `modules` reflect partition 0 at that transaction (a hold for one
    /// tenant sees, and refreshes, that tenant alone). One per tenant at
    /// most; emptied once a hold of every tenant catches `modules_txn` up.
    pub modules_synced: std::cell::RefCell<BTreeMap<TenantId, u64>>,
    /// Where clients reach each node (empty on a lone node).
    pub addrs: super::reply::ClientAddrs,
    /// Part of a cluster: tenants are created through partition 0's log.
    pub clustered: bool,
    /// What each tenant may hold and use, unless an administrator set its
    /// own (`routes` and each partition's state hold those).
    pub quota: crate::catalog::Quota,
    /// Stops the node (a broken invariant, a bug mid-transaction).
    pub fatal: FatalFn,
}

impl Coordinator {
    pub fn run(mut self, tasks: Receiver<CoordTask>) {
        while let Ok(task) = tasks.recv() {
            if matches!(task, CoordTask::Stop) {
                // What was queued behind the stop is refused (not applied)
                // before the receiver goes.
                for t in tasks.try_iter().take(COORDINATOR_QUEUE_MAX) {
                    super::service::reply_of(t)(Err(super::service::stopping()));
                }
                return;
            }
            // A panic here may leave a transaction applied on some
            // partitions and not others (their logs are intact): the held
            // states are kept from serving, and the node stops; recovery
            // rebuilds a consistent state.
            let handled =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(task)));
            if handled.is_err() {
                (self.fatal)("the coordinator hit a bug in the middle of a transaction".into());
                return;
            }
        }
    }

    fn handle(&mut self, task: CoordTask) {
        match task {
            CoordTask::Sql {
                tenant,
                sql,
                params,
                timeout_ms,
                read_only,
                client,
                reply,
            } => {
                // The tenant's limit caps what the request asks for.
                let cap = self.routes.quota(tenant, &self.quota).sql_timeout_ms;
                let limit = timeout_ms.map_or(cap, |t| t.min(cap)).max(1);
                reply(
                    self.sql(tenant, &sql, &params, (limit, client, read_only))
                        .map(Reply::Sql),
                )
            }
            CoordTask::Call {
                tenant,
                procedure,
                args,
                key,
                timeout_ms,
                reply,
            } => reply(self.call(tenant, &procedure, args, (key, timeout_ms))),
            CoordTask::Load {
                tenant,
                load,
                reply,
            } => reply(self.load(tenant, load)),
            CoordTask::Deploy {
                tenant,
                name,
                wasm,
                compiled,
                reply,
            } => reply(self.deploy(tenant, &name, wasm, compiled)),
            CoordTask::Drop {
                tenant,
                name,
                reply,
            } => reply(self.drop_module(tenant, &name)),
            CoordTask::Catalog {
                tenant,
                tenant_name,
                reply,
            } => reply(self.catalog_info(tenant, tenant_name).map(Reply::Catalog)),
            CoordTask::CreateTenant { name, reply } => reply(self.create_tenant(&name)),
            CoordTask::TenantQuota { tenant, set, reply } => {
                reply(self.tenant_quota(&tenant, &set))
            }
            CoordTask::Token { tenant, op, reply } => reply(self.token(&tenant, op)),
            CoordTask::Inspect { f, reply } => reply(self.inspect(f)),
            CoordTask::Stop => {}
        }
    }

    /// Every partition's state, lent for one transaction on `tenant`'s
    /// data (None: on anyone's; see `hold_all`).
    pub(super) fn hold(&self, tenant: Option<TenantId>) -> Result<Held<'_>, ErrorReply> {
        let g = hold_all(&self.executors, &self.addrs, tenant)?;
        // In a cluster another node may have coordinated since this one
        // last did (it led every partition then), and what this node
        // logged before a restart is applied only now: take up the
        // transaction ids and the modules its states hold.
        let seen = g.iter().map(|s| s.mp_txn_max).max().unwrap_or(0);
        if seen > self.last_txn.get() {
            self.last_txn.set(seen);
        }
        if let Some(p0) = g
            .first()
            .filter(|p0| p0.mp_txn_max != self.modules_txn.get())
        {
            let at = p0.mp_txn_max;
            match tenant {
                // A shell: its tenant alone is refreshed (once per
                // transaction seen); the others by a later hold of theirs.
                Some(t) => {
                    if self.modules_synced.borrow().get(&t) != Some(&at) {
                        self.refresh_modules(p0);
                        self.modules_synced.borrow_mut().insert(t, at);
                    }
                }
                // Every part is home for a hold of every tenant.
                None => {
                    self.refresh_modules(p0);
                    if p0.away_count() == 0 {
                        self.modules_txn.set(at);
                        self.modules_synced.borrow_mut().clear();
                    }
                }
            }
        }
        Ok(g)
    }

    /// Recompiles (from the cache) the modules a partition's state holds
    /// and rebuilds every tenant's routes from them, but for tenants whose
    /// part is lent out: they keep what they have.
    fn refresh_modules(&self, p0: &crate::partition::PartitionState) {
        let tenants: Vec<TenantId> = {
            let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            cat.tenants()
                .map(|t| t.id)
                .filter(|t| !p0.is_away(*t))
                .collect()
        };
        match modules_of(p0, tenants.iter().copied(), &self.runtime) {
            Ok(m) => {
                let mut modules = self.modules.borrow_mut();
                modules.retain(|(t, _), _| p0.is_away(*t));
                modules.extend(m);
                drop(modules);
                note_tenants(p0, tenants.iter().copied(), &self.routes);
                for t in tenants {
                    self.rebuild_routes(t);
                }
            }
            // It compiled where it was deployed; the same build must
            // compile it here.
            Err(e) => (self.fatal)(format!("a deployed module does not compile here: {e}")),
        }
    }

    /// Hands every state back with its share of one coordinator
    /// transaction (one entry per partition, in one id) and waits until it
    /// is committed (two phases: see `Held::finish`).
    pub(super) fn commit(
        &self,
        g: Held<'_>,
        tenant: TenantId,
        bodies: Vec<MultiBody>,
    ) -> Result<(), ErrorReply> {
        // Above every id this node saw, and every id an earlier leader of
        // partition 0 could have given (see `decide::txn_floor`).
        let floor = g.first().map_or(0, |p0| p0.txn_floor);
        let txn = (self.last_txn.get() + 1).max(floor);
        let mut entries = Vec::with_capacity(bodies.len());
        for (i, body) in bodies.into_iter().enumerate() {
            let mut payload = Vec::new();
            let encoded =
                durability::encode_entry(&Entry::Multi { txn, tenant, body }, &mut payload);
            if let Err(e) = encoded {
                // The states already hold the transaction: they must not
                // serve it unlogged. (Callers check sizes first.)
                return Err(self.broken(g, format!("a checked entry did not encode: {e}")));
            }
            // Partition 0's share is the commit; the others wait for it.
            if i > 0 {
                durability::mark_share(&mut payload);
            }
            entries.push(payload);
        }
        self.last_txn.set(txn);
        let before = g.first().map_or(0, |p0| p0.mp_txn_max);
        let mut g = g;
        for (i, state) in g.iter_mut().enumerate() {
            state.mp_txn_max = txn;
            // Partition 0's share is the commit; the others hold theirs
            // until told.
            state.undecided = (i > 0).then_some(txn);
        }
        let done = g.finish(Some((txn, entries)));
        // `modules` are the states' once the transaction is chosen (the
        // caller adds what it deployed): what was up to date before it is
        // still. If it may not be chosen, the next holds read them from
        // partition 0 again.
        if done.is_err() {
            self.modules_txn.set(u64::MAX);
            self.modules_synced.borrow_mut().clear();
        } else if self.modules_txn.get() == before {
            self.modules_txn.set(txn);
        } else {
            let mut synced = self.modules_synced.borrow_mut();
            for at in synced.values_mut().filter(|at| **at == before) {
                *at = txn;
            }
        }
        done
    }

    /// `commit` for shares of writes (partition 0's with the call's kept
    /// key, if any); nothing written: wait for what was read instead.
    pub(super) fn commit_shares(
        &self,
        g: Held<'_>,
        tenant: TenantId,
        shares: Vec<LoggedWrites>,
        kept: Option<KeptCall>,
    ) -> Result<(), ErrorReply> {
        if shares.is_empty() {
            return g.finish(None);
        }
        let mut kept = kept;
        let bodies = shares
            .into_iter()
            .map(|writes| match kept.take() {
                Some(kept) => MultiBody::KeptWrites { writes, kept },
                None => MultiBody::Writes(writes),
            })
            .collect();
        self.commit(g, tenant, bodies)
    }

    /// A broken invariant (partitions that should agree do not): the held
    /// states never serve again, and the node stops.
    pub(super) fn broken(&self, g: Held<'_>, what: String) -> ErrorReply {
        g.abandon();
        (self.fatal)(format!("stopping: {what}"));
        reply::internal(what)
    }

    fn inspect(&self, f: InspectFn) -> Result<Reply, ErrorReply> {
        let mut g = self.hold(None)?;
        f(&mut g);
        g.finish(None)?;
        Ok(Reply::Value(Value::Null))
    }

    fn call(
        &mut self,
        tenant: TenantId,
        procedure: &str,
        args: Vec<Value>,
        (key, timeout_ms): (Option<String>, Option<u64>),
    ) -> Result<Reply, ErrorReply> {
        // Held first: in a cluster the hold brings this node's modules,
        // routes and transaction ids (which seed the call) up to date.
        let mut g = self.hold(Some(tenant))?;
        // A multi-partition call's key is kept on partition 0.
        if let Some(k) = &key {
            if let Some(answer) = g[0].tenant_ref(tenant).and_then(|p| p.kept.get(k)) {
                let answer = answer.cloned().ok_or_else(|| {
                    let e = crate::partition::CallError::AnswerNotKept {
                        procedure: procedure.to_string(),
                        key: k.clone(),
                    };
                    reply::call_error(&e, &self.addrs)
                });
                // Answered once what was read (the first run among it) is
                // chosen.
                g.finish(None)?;
                return answer.map(reply::output);
            }
        }
        let route = self
            .routes
            .get(tenant)
            .and_then(|r| r.get(procedure).cloned())
            .ok_or_else(|| {
                ErrorReply::new(
                    ErrorCode::UnknownProcedure,
                    format!("no procedure named {procedure} is deployed"),
                )
            })?;
        let compiled = self
            .modules
            .borrow()
            .get(&(tenant, route.module.clone()))
            .cloned()
            .ok_or_else(|| reply::internal("a routed procedure's module is not compiled"))?;
        let words: Vec<String> = compiled
            .desc()
            .statements
            .iter()
            .flat_map(|s| sqltext::words(&s.sql))
            .collect();
        let txn = TxnContext {
            timestamp_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64),
            seed: (self.last_txn.get() + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        // The tenant's time limit for calls, or the call's own if less
        // (an ad-hoc statement's is named where it begins).
        let cap = self.routes.quota(tenant, &self.quota).call_timeout_ms;
        let limit = timeout_ms.map_or(cap, |t| t.min(cap)).max(1);
        let work = interrupt::Work::begin(Some(limit), None);
        let (output, shares) = txn::call_procedure(
            &mut g,
            (tenant, &self.quota),
            &route.module,
            &words,
            procedure,
            &args,
            txn,
        )
        .map_err(|e| reply::txn_error(&e))?;
        drop(work);
        let kept = keep_answer(&mut g, tenant, key, !shares.is_empty(), || output.clone());
        self.commit_shares(g, tenant, shares, kept)?;
        Ok(reply::output(output))
    }

    /// A `load` chunk: every partition holding the tenant's part, so the
    /// chunk commits in one coordinator transaction (one record per
    /// partition). With a key already kept on partition 0, the first
    /// answer, and nothing loaded again.
    fn load(&self, tenant: TenantId, l: LoadRequest) -> Result<Reply, ErrorReply> {
        let mut g = self.hold(Some(tenant))?;
        if let Some(k) = &l.key {
            if let Some(answer) = g[0].tenant_ref(tenant).and_then(|p| p.kept.get(k)) {
                let answer = answer.cloned();
                g.finish(None)?;
                return match answer.as_ref().and_then(loaded_from_kept) {
                    Some(loaded) => Ok(Reply::Loaded(loaded)),
                    None => Err(ErrorReply::new(
                        ErrorCode::AlreadyApplied,
                        format!(
                            "a load with key {k:?} was applied before and its answer was not \
                             kept; nothing was loaded this time"
                        ),
                    )),
                };
            }
        }
        let cap = self.routes.quota(tenant, &self.quota).sql_timeout_ms;
        let limit = l.timeout_ms.map_or(cap, |t| t.min(cap)).max(1);
        let work = interrupt::Work::begin(Some(limit), None);
        let chunk = txn::load::Chunk {
            table: &l.table,
            columns: &l.columns,
            rows: l.rows,
            max_errors: l.max_errors,
            now_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64),
        };
        let (outcome, shares) =
            txn::load::load(&mut g, tenant, &self.quota, chunk).map_err(|e| load_error(&e))?;
        drop(work);
        let loaded = Loaded {
            loaded: outcome.loaded,
            rejected: outcome
                .rejected
                .into_iter()
                .map(|r| RejectedRow {
                    row: r.row,
                    column: r.column,
                    message: r.message,
                })
                .collect(),
            again: false,
        };
        let kept = keep_answer(&mut g, tenant, l.key, !shares.is_empty(), || {
            kept_of_loaded(&loaded)
        });
        self.commit_shares(g, tenant, shares, kept)?;
        Ok(Reply::Loaded(loaded))
    }

    fn deploy(
        &mut self,
        tenant: TenantId,
        name: &str,
        wasm: Vec<u8>,
        compiled: Option<Arc<CompiledModule>>,
    ) -> Result<Reply, ErrorReply> {
        let compiled = match compiled {
            Some(c) => c,
            None => self
                .runtime
                .compile_cached(name, &wasm)
                .map_err(|e| reply::deploy_error(&e))?,
        };
        let mut g = self.hold(Some(tenant))?;
        // A tenant with nothing deployed yet has no part: an empty list.
        let deployed = g[0]
            .tenant_ref(tenant)
            .map_or(&[][..], |p| p.modules.as_slice());
        let deployed = deployed.iter().map(|(n, b)| (n.as_str(), b.len() as u64));
        let quota = g[0].quota_of(tenant, &self.quota);
        if let Err(e) = quota.check_deploy(deployed, name, wasm.len() as u64) {
            g.finish(None)?;
            // Not kept compiled for a deploy that did not happen.
            self.runtime.forget(name, &wasm);
            return Err(ErrorReply::new(ErrorCode::QuotaExceeded, e.to_string()));
        }
        let wasm: Arc<[u8]> = Arc::from(wasm);
        let mut info = None;
        for i in 0..g.len() {
            match g[i].tenant(tenant).deploy(name, wasm.clone()) {
                Ok(d) => info = info.or(Some(d)),
                Err(e) if i == 0 => return Err(reply::deploy_error(&e)),
                Err(e) => {
                    let what = format!("module {name} deployed on partition 0 but not on {i}: {e}");
                    return Err(self.broken(g, what));
                }
            }
        }
        let info = info.ok_or_else(|| reply::internal("a node without partitions"))?;
        note_tenants(&g[0], std::iter::once(tenant), &self.routes);
        let n = g.len();
        let body = |_| MultiBody::Deploy {
            name: name.to_string(),
            wasm: wasm.to_vec(),
        };
        self.commit(g, tenant, (0..n).map(body).collect())?;
        self.modules
            .borrow_mut()
            .insert((tenant, name.to_string()), compiled);
        self.rebuild_routes(tenant);
        Ok(Reply::Deployed {
            module: info.module,
            procedures: info.procedures,
            replaced: info.replaced,
            warnings: info.warnings,
        })
    }

    fn drop_module(&mut self, tenant: TenantId, name: &str) -> Result<Reply, ErrorReply> {
        // Held first: in a cluster the hold brings this node's modules up to
        // date.
        let mut g = self.hold(Some(tenant))?;
        // A module that failed to load is deployed too (its bytes are kept).
        let existed = self
            .modules
            .borrow()
            .contains_key(&(tenant, name.to_string()))
            || g[0]
                .tenant_ref(tenant)
                .is_some_and(|p| p.failed.contains_key(name));
        if !existed {
            g.finish(None)?;
        } else {
            for p in g.iter_mut() {
                let part = p.tenant(tenant);
                part.procs.drop_module(name);
                part.forget_module(name);
            }
            note_tenants(&g[0], std::iter::once(tenant), &self.routes);
            let n = g.len();
            let body = |_| MultiBody::DropModule {
                name: name.to_string(),
            };
            self.commit(g, tenant, (0..n).map(body).collect())?;
            self.modules
                .borrow_mut()
                .remove(&(tenant, name.to_string()));
            self.rebuild_routes(tenant);
        }
        Ok(Reply::Dropped {
            module: name.to_string(),
            existed,
        })
    }

    pub fn rebuild_routes(&self, tenant: TenantId) {
        let modules = self.modules.borrow();
        let mods = modules
            .range((tenant, String::new())..)
            .take_while(|((t, _), _)| *t == tenant)
            .map(|(_, m)| m);
        self.routes.rebuild(tenant, mods);
    }

    fn catalog_info(
        &self,
        tenant: TenantId,
        tenant_name: String,
    ) -> Result<CatalogInfo, ErrorReply> {
        let g = self.hold(Some(tenant))?;
        let mut tables = Vec::new();
        if let Some(p0) = g[0].tenant_ref(tenant) {
            for t in p0.engine.database().tables() {
                let s = t.schema();
                let rows = if s.partition_column.is_some() {
                    g.iter()
                        .filter_map(|p| p.tenant_ref(tenant))
                        .filter_map(|p| p.engine.database().table_by_name(&s.name))
                        .map(|t| t.len() as u64)
                        .sum()
                } else {
                    t.len() as u64
                };
                let col = |i: usize| s.columns.get(i).map(|c| c.name.clone());
                tables.push(TableInfo {
                    name: s.name.clone(),
                    columns: s
                        .columns
                        .iter()
                        .map(|c| (c.name.clone(), c.ty.to_string(), c.nullable))
                        .collect(),
                    primary_key: s
                        .primary_key
                        .and_then(|i| s.indexes.get(i))
                        .map(|ix| ix.columns.iter().filter_map(|&c| col(c)).collect())
                        .unwrap_or_default(),
                    partition_column: s.partition_column.and_then(col),
                    rows,
                });
            }
        }
        let mut procedures: Vec<ProcedureInfo> = self
            .routes
            .get(tenant)
            .map(|r| {
                r.iter()
                    .map(|(name, route)| ProcedureInfo {
                        name: name.clone(),
                        module: route.module.clone(),
                        params: route
                            .params
                            .iter()
                            .map(|p| (p.name.clone(), ohm_sdk::abi::ty::name(p.ty)))
                            .collect(),
                        partition: route
                            .partition_column
                            .clone()
                            .zip(route.partition_param.map(|i| i as u32)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        procedures.sort_by(|a, b| a.name.cmp(&b.name));
        // Row counts are answered once what they counted is chosen.
        g.finish(None)?;
        Ok(CatalogInfo {
            tenant: tenant_name,
            tables,
            procedures,
        })
    }

    fn create_tenant(&mut self, name: &str) -> Result<Reply, ErrorReply> {
        let bad = |e: crate::catalog::CatalogError| match e {
            crate::catalog::CatalogError::Random => reply::internal(e.to_string()),
            e => ErrorReply::new(ErrorCode::BadArguments, e.to_string()),
        };
        if !self.clustered {
            let mut cat = self.catalog.write().unwrap_or_else(|p| p.into_inner());
            let mut next = cat.clone();
            let (_, token) = next.create_tenant(name, "owner", false).map_err(bad)?;
            next.save(&self.dir)
                .map_err(|e| ErrorReply::new(ErrorCode::Unavailable, e.to_string()))?;
            *cat = next;
            return Ok(created(name, token));
        }
        // In a cluster partition 0's group is the metadata group: the
        // tenant is logged there and every node adds it once applied.
        let mut g = self.hold(None)?;
        let mut cat = self
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        adopt_created(&mut cat, &g[0].created_tenants)
            .map_err(|e| reply::internal(e.to_string()))?;
        let (record, token) = cat.new_tenant(name, "owner", false).map_err(bad)?;
        g[0].created_tenants.push(record.clone());
        let n = g.len();
        let body = |i| match i {
            0 => MultiBody::CreateTenant(record.clone()),
            _ => MultiBody::Writes(LoggedWrites::default()),
        };
        self.commit(g, record.id, (0..n).map(body).collect())?;
        let mut cat = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        cat.adopt(&record)
            .map_err(|e| reply::internal(e.to_string()))?;
        Ok(created(name, token))
    }
}

impl Coordinator {
    /// The id of the tenant named `name`, or an answer saying there is none.
    pub(super) fn tenant_named(&self, name: &str) -> Result<TenantId, ErrorReply> {
        let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
        cat.tenant_by_name(name).map(|t| t.id).ok_or_else(|| {
            let message = format!("no tenant named {name:?} (nothing was done)");
            ErrorReply::new(ErrorCode::BadArguments, message)
        })
    }

    /// Sets each of `changes` in tenant `name`'s quotas (None: back to the
    /// node's default) and answers them all. The whole set is logged on
    /// every partition, so every replica holds it and a restart keeps it;
    /// a bad name or value refuses the request before anything is logged.
    fn tenant_quota(
        &mut self,
        name: &str,
        changes: &[(String, Option<u64>)],
    ) -> Result<Reply, ErrorReply> {
        let tenant = self.tenant_named(name)?;
        if name == crate::catalog::ADMIN_TENANT && !changes.is_empty() {
            let e = crate::catalog::QuotaSetError::AdminTenant(crate::catalog::ADMIN_TENANT);
            let message = format!("{e} (nothing was done)");
            return Err(ErrorReply::new(ErrorCode::BadArguments, message));
        }
        // Held for the tenant: its parts lent to runners come home first,
        // so no call runs on a part that misses the change.
        let mut g = self.hold(Some(tenant))?;
        let before = g[0]
            .tenant_ref(tenant)
            .map(|p| p.quota.clone())
            .unwrap_or_default();
        let mut set = before.clone();
        for (field, value) in changes {
            if let Err(e) = set.set_named(field, *value) {
                g.finish(None)?;
                let message = format!("{e} (nothing was done)");
                return Err(ErrorReply::new(ErrorCode::BadArguments, message));
            }
        }
        if set == before {
            g.finish(None)?;
        } else {
            for p in g.iter_mut() {
                p.tenant(tenant).quota = set.clone();
            }
            let n = g.len();
            let bodies = (0..n).map(|_| MultiBody::SetQuota(set.clone())).collect();
            self.commit(g, tenant, bodies)?;
            self.routes.set_quota(tenant, Some(&set));
        }
        let quota = self.quota.with(Some(&set));
        let values = crate::catalog::QuotaField::ALL.map(|f| crate::proto::QuotaValue {
            name: f.name().to_string(),
            value: quota.get(f),
            set: set.get(f).is_some(),
        });
        Ok(Reply::Quota {
            tenant: name.to_string(),
            quota: values.to_vec(),
        })
    }
}

fn load_error(e: &txn::load::LoadError) -> ErrorReply {
    use txn::load::LoadError;
    match e {
        LoadError::Sql(e) => reply::sql_error(e),
        LoadError::Txn(e) => reply::txn_error(e),
        LoadError::TooManyRejected { .. } => ErrorReply::new(ErrorCode::Sql, e.to_string()),
    }
}

/// Column names of a kept `load` answer: its first row holds `loaded`
/// alone, each next one a rejected row.
const KEPT_LOAD_COLUMNS: [&str; 4] = ["loaded", "row", "column", "message"];

/// A `load` answer as an idempotency key keeps it (a row set, so the kept
/// answers of calls and loads are one kind of thing in the log).
/// A multi-partition transaction's answer kept under its key on partition
/// 0 (and returned, to be logged with partition 0's share). Nothing is
/// kept when it wrote nothing: sending it again changes nothing either.
fn keep_answer(
    g: &mut Held<'_>,
    tenant: TenantId,
    key: Option<String>,
    wrote: bool,
    output: impl FnOnce() -> crate::wasm::ProcOutput,
) -> Option<KeptCall> {
    let key = key.filter(|_| wrote)?;
    let kept = KeptCall {
        key,
        output: answer_to_keep(&output()),
    };
    g[0].tenant(tenant)
        .kept
        .keep(kept.key.clone(), kept.output.clone());
    Some(kept)
}

fn kept_of_loaded(l: &Loaded) -> crate::wasm::ProcOutput {
    let columns: Vec<crate::sql::ColumnInfo> = KEPT_LOAD_COLUMNS
        .iter()
        .map(|n| crate::sql::ColumnInfo {
            name: n.to_string(),
            ty: None,
        })
        .collect();
    let first = vec![
        Value::Int(l.loaded as i64),
        Value::Null,
        Value::Null,
        Value::Null,
    ];
    let rows = std::iter::once(first)
        .chain(l.rejected.iter().map(|r| {
            vec![
                Value::Null,
                Value::Int(r.row as i64),
                r.column.as_deref().map_or(Value::Null, Value::text),
                Value::text(&r.message),
            ]
        }))
        .collect();
    crate::wasm::ProcOutput::Rows(crate::sql::RowSet {
        columns: columns.into(),
        rows,
    })
}

/// The `load` answer `kept_of_loaded` kept; None if the key was kept by
/// something else (a call given the same key).
fn loaded_from_kept(out: &crate::wasm::ProcOutput) -> Option<Loaded> {
    let crate::wasm::ProcOutput::Rows(set) = out else {
        return None;
    };
    let names: Vec<&str> = set.columns.iter().map(|c| c.name.as_str()).collect();
    if names != KEPT_LOAD_COLUMNS {
        return None;
    }
    let (first, rest) = set.rows.split_first()?;
    let Some(Value::Int(loaded)) = first.first() else {
        return None;
    };
    let mut rejected = Vec::with_capacity(rest.len());
    for r in rest {
        let [_, Value::Int(row), column, Value::Text(message)] = r.as_slice() else {
            return None;
        };
        rejected.push(RejectedRow {
            row: *row as u64,
            column: match column {
                Value::Text(c) => Some(c.to_string()),
                _ => None,
            },
            message: message.to_string(),
        });
    }
    Some(Loaded {
        loaded: *loaded as u64,
        rejected,
        again: true,
    })
}

fn created(name: &str, token: String) -> Reply {
    Reply::TenantCreated {
        tenant: name.to_string(),
        principal: "owner".to_string(),
        token,
    }
}

/// Adds to `catalog` the tenants a cluster's partition 0 holds (those
/// created since `ohm cluster init`) that it lacks.
pub fn adopt_created(
    catalog: &mut Catalog,
    created: &[durability::TenantRecord],
) -> Result<(), crate::catalog::CatalogError> {
    for t in created {
        catalog.adopt(t)?;
    }
    Ok(())
}

/// Modules by tenant, compiled from a recovered partition's state.
pub fn modules_of(
    state: &crate::partition::PartitionState,
    tenants: impl Iterator<Item = TenantId>,
    runtime: &WasmRuntime,
) -> Result<BTreeMap<(TenantId, String), Arc<CompiledModule>>, crate::wasm::DeployError> {
    let mut out = BTreeMap::new();
    for t in tenants {
        if let Some(part) = state.tenant_ref(t) {
            // A module that failed to load in the state has no procedures.
            let loaded = part
                .modules
                .iter()
                .filter(|(n, _)| !part.failed.contains_key(n));
            for (name, wasm) in loaded {
                out.insert((t, name.clone()), runtime.compile_cached(name, wasm)?);
            }
        }
    }
    Ok(out)
}

/// Tells `routes` which of each tenant's modules failed to load in `state`,
/// and the quotas an administrator set for it there.
pub fn note_tenants(
    state: &crate::partition::PartitionState,
    tenants: impl Iterator<Item = TenantId>,
    routes: &Routes,
) {
    let none = BTreeMap::new();
    for t in tenants {
        let part = state.tenant_ref(t);
        routes.set_failed(t, part.map_or(&none, |p| &p.failed));
        routes.set_quota(t, part.map(|p| &p.quota));
    }
}
