//! The coordinator: one thread that runs everything that is not a
//! single-partition call — multi-partition procedures, ad-hoc SQL, DDL,
//! deploys, the catalog and tenant creation — one at a time, holding every
//! partition's lock (VoltDB's rule: serializable without row locks).
//!
//! A change is applied to every partition's state, then each partition's
//! share is logged as an `Entry::Multi` with one transaction id in every
//! partition's log, and the reply waits until all of them are durable. The
//! locks are held until then, so nothing that reads the change can be
//! acknowledged before it is durable everywhere. Recovery applies a
//! transaction only if every partition logged it (see `node::recovery`).

use super::multi::{self, Guards};
use super::route;
use super::routes::Routes;
use super::sqltext::{self, Kind};
use crate::catalog::Catalog;
use crate::durability::{self, Entry, LoggedWrites, MultiBody};
use crate::partition::reply::{self, ReplyFn};
use crate::partition::writer::WriterMsg;
use crate::partition::Partition;
use crate::proto::{
    CatalogInfo, ErrorCode, ErrorReply, ProcedureInfo, Reply, SqlResult, TableInfo,
};
use crate::types::{TenantId, Value};
use crate::wasm::{CompiledModule, ProcHost, TxnContext, WasmRuntime};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Requests waiting for the coordinator.
pub const COORDINATOR_QUEUE_MAX: usize = 1024;

pub enum CoordTask {
    Sql {
        tenant: TenantId,
        sql: String,
        reply: ReplyFn,
    },
    Call {
        tenant: TenantId,
        procedure: String,
        args: Vec<Value>,
        reply: ReplyFn,
    },
    Deploy {
        tenant: TenantId,
        name: String,
        wasm: Vec<u8>,
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
    /// Finish what is queued before this, then exit.
    Stop,
}

pub struct Coordinator {
    pub parts: Arc<[Arc<Partition>]>,
    pub writers: Vec<SyncSender<WriterMsg>>,
    pub runtime: WasmRuntime,
    pub routes: Arc<Routes>,
    pub catalog: Arc<RwLock<Catalog>>,
    pub dir: Arc<cap_std::fs::Dir>,
    /// The last coordinator transaction id used (recovered from the logs).
    pub last_txn: Cell<u64>,
    /// Every deployed module, compiled once: (tenant, module) -> module.
    pub modules: BTreeMap<(TenantId, String), Arc<CompiledModule>>,
}

impl Coordinator {
    pub fn run(mut self, tasks: Receiver<CoordTask>) {
        while let Ok(task) = tasks.recv() {
            if matches!(task, CoordTask::Stop) {
                return;
            }
            // A panic here may leave a transaction applied on some
            // partitions and not others (their logs are intact): stop the
            // node, and let recovery rebuild a consistent state.
            let handled =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(task)));
            if handled.is_err() {
                fatal("the coordinator hit a bug in the middle of a transaction");
            }
        }
    }

    fn handle(&mut self, task: CoordTask) {
        match task {
            CoordTask::Sql { tenant, sql, reply } => reply(self.sql(tenant, &sql).map(Reply::Sql)),
            CoordTask::Call {
                tenant,
                procedure,
                args,
                reply,
            } => reply(self.call(tenant, &procedure, args)),
            CoordTask::Deploy {
                tenant,
                name,
                wasm,
                reply,
            } => reply(self.deploy(tenant, &name, wasm)),
            CoordTask::Drop {
                tenant,
                name,
                reply,
            } => reply(self.drop_module(tenant, &name)),
            CoordTask::Catalog {
                tenant,
                tenant_name,
                reply,
            } => reply(Ok(Reply::Catalog(self.catalog_info(tenant, tenant_name)))),
            CoordTask::CreateTenant { name, reply } => reply(self.create_tenant(&name)),
            CoordTask::Stop => {}
        }
    }

    fn lock_all(&self) -> Guards<'_> {
        self.parts.iter().map(|p| p.lock()).collect()
    }

    /// Logs one coordinator transaction (one entry per partition, in one
    /// id) and waits until every partition has it durable.
    fn commit(&self, g: &mut Guards<'_>, tenant: TenantId, bodies: Vec<MultiBody>) {
        let txn = self.last_txn.get() + 1;
        self.last_txn.set(txn);
        let mut waits = Vec::with_capacity(bodies.len());
        for (i, body) in bodies.into_iter().enumerate() {
            let lsn = g[i].next_lsn();
            g[i].mp_txn_max = txn;
            let mut records = Vec::new();
            crate::partition::writer::push_payload(&mut records, |out| {
                durability::encode_entry(&Entry::Multi { txn, tenant, body }, out)
            })
            .expect("callers check writes against PAYLOAD_BYTES_MAX before applying them");
            let (done, wait) = sync_channel(1);
            let msg = WriterMsg::Multi {
                records,
                last_lsn: lsn.0,
                done,
            };
            if self.writers[i].send(msg).is_ok() {
                waits.push(wait);
            }
        }
        for w in waits {
            // A writer that stops has stopped the node (it exits on failure).
            let _ = w.recv();
        }
    }

    /// Waits until everything logged so far on every partition is durable
    /// (a read must not be answered before what it saw is).
    fn barrier(&self) {
        crate::partition::writer::sync_all(&self.writers);
    }

    fn sql(&self, tenant: TenantId, sql: &str) -> Result<Vec<SqlResult>, ErrorReply> {
        let stmts = sqltext::split(sql).map_err(|m| ErrorReply::new(ErrorCode::Sql, m))?;
        let many = stmts.len() > 1;
        let mut results = Vec::with_capacity(stmts.len());
        for (i, stmt) in stmts.iter().enumerate() {
            match self.statement(tenant, stmt) {
                Ok(r) => results.push(r),
                Err(mut e) if many => {
                    e.message = format!(
                        "statement {} of {}: {} ({} earlier statement(s) committed)",
                        i + 1,
                        stmts.len(),
                        e.message,
                        i
                    );
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(results)
    }

    fn statement(&self, tenant: TenantId, stmt: &str) -> Result<SqlResult, ErrorReply> {
        let words = sqltext::words(stmt);
        match sqltext::classify(&words) {
            Kind::TxnControl => Err(ErrorReply::new(
                ErrorCode::NotSupported,
                "each ad-hoc statement is its own transaction: BEGIN/COMMIT/ROLLBACK are not \
                 supported over the protocol; put statements that must commit together in a \
                 procedure",
            )),
            Kind::Query => self.query(tenant, stmt, &words),
            Kind::InsertValues => self.write(tenant, stmt, &words, true),
            Kind::Write => self.write(tenant, stmt, &words, false),
            Kind::Ddl => self.ddl(tenant, stmt),
        }
    }

    fn query(
        &self,
        tenant: TenantId,
        stmt: &str,
        words: &[String],
    ) -> Result<SqlResult, ErrorReply> {
        let mut g = self.lock_all();
        let names = multi::needed(&g, tenant, words);
        let one = if multi::all_replicated(&g, tenant, &names) {
            Some(0)
        } else {
            route::single_partition(&g, tenant, stmt, words, &names).map(|p| p.0 as usize)
        };
        let result = if let Some(p) = one {
            let engine = &mut g[p].tenant(tenant).engine;
            let prepared = engine.prepare(stmt).map_err(|e| reply::sql_error(&e))?;
            if prepared.kind() != crate::sql::StatementKind::Query
                && words.first().is_none_or(|w| w != "explain")
            {
                return Err(ErrorReply::new(
                    ErrorCode::Sql,
                    "this statement is not a query",
                ));
            }
            engine.execute(stmt)
        } else {
            multi::scratch(&g, tenant, &names, false)?.execute(stmt)
        };
        drop(g);
        let r = result.map_err(|e| reply::sql_error(&e))?;
        self.barrier();
        Ok(reply::sql_result(r))
    }

    fn write(
        &self,
        tenant: TenantId,
        stmt: &str,
        words: &[String],
        empty: bool,
    ) -> Result<SqlResult, ErrorReply> {
        let mut g = self.lock_all();
        let names = multi::needed(&g, tenant, words);
        if let Some(p) = route::single_partition(&g, tenant, stmt, words, &names) {
            if let Some(r) = self.write_on(&mut g, tenant, p.0 as usize, stmt)? {
                return Ok(r);
            }
        }
        let mut s = multi::scratch(&g, tenant, &names, empty)?;
        s.begin().map_err(|e| reply::sql_error(&e))?;
        let r = match s.execute(stmt) {
            Ok(r) => r,
            Err(e) => {
                let _ = s.rollback();
                return Err(reply::sql_error(&e));
            }
        };
        let ws = s.commit().map_err(|e| reply::sql_error(&e))?;
        self.route_writes(&mut g, tenant, &s, &ws)?;
        Ok(reply::sql_result(r))
    }

    /// Runs a write pinned to partition `p` there alone. None (and nothing
    /// changed) when it moved a row to another partition: the caller then
    /// takes the general path.
    fn write_on(
        &self,
        g: &mut Guards<'_>,
        tenant: TenantId,
        p: usize,
        stmt: &str,
    ) -> Result<Option<SqlResult>, ErrorReply> {
        let engine = &mut g[p].tenant(tenant).engine;
        engine.begin().map_err(|e| reply::sql_error(&e))?;
        let r = match engine.execute(stmt) {
            Ok(r) => r,
            Err(e) => {
                let _ = engine.rollback();
                return Err(reply::sql_error(&e));
            }
        };
        let ws = engine.commit().map_err(|e| reply::sql_error(&e))?;
        let logged = LoggedWrites::from_write_set(engine.database(), &ws);
        let n = self.parts.len();
        let shares = multi::split(engine, logged.clone(), n as u32);
        let stays = shares
            .iter()
            .enumerate()
            .all(|(i, s)| i == p || s.ops.is_empty());
        let fits = multi::check_size(std::slice::from_ref(&logged));
        if !stays || fits.is_err() {
            durability::apply(engine, &logged.inverse())
                .expect("undoing writes just made under the same lock cannot fail");
            fits?;
            return Ok(None);
        }
        let mut logged = Some(logged);
        let bodies = (0..n)
            .map(|i| {
                let w = if i == p { logged.take() } else { None };
                MultiBody::Writes(w.unwrap_or(LoggedWrites { ops: Vec::new() }))
            })
            .collect();
        self.commit(g, tenant, bodies);
        Ok(Some(reply::sql_result(r)))
    }

    /// Routes a scratch engine's write-set to the partitions, applies and
    /// logs it.
    fn route_writes(
        &self,
        g: &mut Guards<'_>,
        tenant: TenantId,
        s: &crate::sql::Engine,
        ws: &crate::storage::WriteSet,
    ) -> Result<(), ErrorReply> {
        if ws.ops.is_empty() {
            self.barrier();
            return Ok(());
        }
        let logged = LoggedWrites::from_write_set(s.database(), ws);
        let shares = multi::split(s, logged, self.parts.len() as u32);
        multi::check_size(&shares)?;
        multi::apply_all(g, tenant, &shares)?;
        self.commit(
            g,
            tenant,
            shares.into_iter().map(MultiBody::Writes).collect(),
        );
        Ok(())
    }

    fn ddl(&self, tenant: TenantId, stmt: &str) -> Result<SqlResult, ErrorReply> {
        let mut g = self.lock_all();
        let first = g[0]
            .tenant(tenant)
            .engine
            .execute(stmt)
            .map_err(|e| reply::sql_error(&e))?;
        for (i, p) in g.iter_mut().enumerate().skip(1) {
            if let Err(e) = p.tenant(tenant).engine.execute(stmt) {
                // Same schema, same statement: this cannot differ. Stop
                // rather than serve partitions whose schemas disagree.
                fatal(&format!(
                    "DDL {stmt:?} succeeded on partition 0 and failed on partition {i}: {e}"
                ));
            }
        }
        let n = g.len();
        self.commit(
            &mut g,
            tenant,
            (0..n).map(|_| MultiBody::Ddl(stmt.to_string())).collect(),
        );
        Ok(reply::sql_result(first))
    }

    fn call(
        &mut self,
        tenant: TenantId,
        procedure: &str,
        args: Vec<Value>,
    ) -> Result<Reply, ErrorReply> {
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
            .get(&(tenant, route.module.clone()))
            .cloned()
            .ok_or_else(|| reply::internal("a routed procedure's module is not compiled"))?;
        let mut g = self.lock_all();
        let words: Vec<String> = compiled
            .desc()
            .statements
            .iter()
            .flat_map(|s| sqltext::words(&s.sql))
            .collect();
        let names = multi::needed(&g, tenant, &words);
        let mut s = multi::scratch(&g, tenant, &names, false)?;
        let mut host = ProcHost::new(self.runtime.clone());
        host.deploy(&mut s, compiled)
            .map_err(|e| reply::deploy_error(&e))?;
        let txn = TxnContext {
            timestamp_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64),
            seed: (self.last_txn.get() + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        let outcome = host
            .call(&mut s, procedure, &args, txn)
            .map_err(|e| reply::proc_error(&e))?;
        self.route_writes(&mut g, tenant, &s, &outcome.write_set)?;
        Ok(reply::output(outcome.output))
    }

    fn deploy(&mut self, tenant: TenantId, name: &str, wasm: Vec<u8>) -> Result<Reply, ErrorReply> {
        let compiled = self
            .runtime
            .compile(name, &wasm)
            .map_err(|e| reply::deploy_error(&e))?;
        let mut g = self.lock_all();
        let wasm: Arc<[u8]> = Arc::from(wasm);
        let mut info = None;
        for (i, p) in g.iter_mut().enumerate() {
            let part = p.tenant(tenant);
            match part.procs.deploy(&mut part.engine, compiled.clone()) {
                Ok(d) => info = info.or(Some(d)),
                Err(e) if i == 0 => return Err(reply::deploy_error(&e)),
                Err(e) => fatal(&format!(
                    "module {name} deployed on partition 0 but not on {i}: {e}"
                )),
            }
            part.remember_module(name, wasm.clone());
        }
        let info = info.ok_or_else(|| reply::internal("a node without partitions"))?;
        let n = g.len();
        let body = |_| MultiBody::Deploy {
            name: name.to_string(),
            wasm: wasm.to_vec(),
        };
        self.commit(&mut g, tenant, (0..n).map(body).collect());
        drop(g);
        self.modules.insert((tenant, name.to_string()), compiled);
        self.rebuild_routes(tenant);
        Ok(Reply::Deployed {
            module: info.module,
            procedures: info.procedures,
            replaced: info.replaced,
        })
    }

    fn drop_module(&mut self, tenant: TenantId, name: &str) -> Result<Reply, ErrorReply> {
        let existed = self.modules.contains_key(&(tenant, name.to_string()));
        if existed {
            let mut g = self.lock_all();
            for p in g.iter_mut() {
                let part = p.tenant(tenant);
                part.procs.drop_module(name);
                part.forget_module(name);
            }
            let n = g.len();
            let body = |_| MultiBody::DropModule {
                name: name.to_string(),
            };
            self.commit(&mut g, tenant, (0..n).map(body).collect());
            drop(g);
            self.modules.remove(&(tenant, name.to_string()));
            self.rebuild_routes(tenant);
        }
        Ok(Reply::Dropped {
            module: name.to_string(),
            existed,
        })
    }

    pub fn rebuild_routes(&self, tenant: TenantId) {
        let mods = self
            .modules
            .range((tenant, String::new())..)
            .take_while(|((t, _), _)| *t == tenant)
            .map(|(_, m)| m);
        self.routes.rebuild(tenant, mods);
    }

    fn catalog_info(&self, tenant: TenantId, tenant_name: String) -> CatalogInfo {
        let g = self.lock_all();
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
        CatalogInfo {
            tenant: tenant_name,
            tables,
            procedures,
        }
    }

    fn create_tenant(&mut self, name: &str) -> Result<Reply, ErrorReply> {
        let mut cat = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        let mut next = cat.clone();
        let (_, token) = next
            .create_tenant(name, "owner", false)
            .map_err(|e| ErrorReply::new(ErrorCode::BadArguments, e.to_string()))?;
        next.save(&self.dir)
            .map_err(|e| ErrorReply::new(ErrorCode::Unavailable, e.to_string()))?;
        *cat = next;
        Ok(Reply::TenantCreated {
            tenant: name.to_string(),
            principal: "owner".to_string(),
            token,
        })
    }
}

/// Modules by tenant, from a recovered partition 0.
pub fn modules_of(
    state: &crate::partition::PartitionState,
    tenants: impl Iterator<Item = TenantId>,
    cache: &mut crate::partition::ModuleCache,
    runtime: &WasmRuntime,
) -> Result<BTreeMap<(TenantId, String), Arc<CompiledModule>>, crate::partition::ReplayError> {
    let mut out = BTreeMap::new();
    for t in tenants {
        if let Some(part) = state.tenant_ref(t) {
            for (name, wasm) in &part.modules {
                out.insert((t, name.clone()), cache.compile(runtime, name, wasm)?);
            }
        }
    }
    Ok(out)
}

/// A broken invariant: partitions that should be identical are not.
/// Serving on would spread the damage; stop the node (the log is intact).
fn fatal(what: &str) -> ! {
    eprintln!("ohm: stopping: {what}");
    std::process::exit(70)
}
