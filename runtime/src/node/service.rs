//! The node as the network sees it: authentication and dispatch of each
//! request to a partition's executor (single-partition calls) or to the
//! coordinator (everything else). Never blocks: a full queue is an
//! `overloaded` error the client may retry.

use super::coordinator::CoordTask;
use super::executor::{
    Input, PartitionStats, QueuedReply, PARTITION_QUEUE_MAX, ROLE_CANDIDATE, ROLE_LEADER,
};
use super::forward::forwarded_kind;
use super::priority;
use super::reply::ReplyFn;
use super::Node;

/// A compile slot of `Node::compiling`, given back when dropped.
struct CompileSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for CompileSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Modules a node compiles at once for deploys; more are `overloaded`.
pub const COMPILES_IN_FLIGHT_MAX: usize = 2;

use super::tokens::{TokenChange, TokenOp};
use super::usage::{Connected, TenantUsage};
use crate::catalog::{partition_for, Principal, Role};
use crate::net::server::{Replier, Service};
use crate::proto::{
    ErrorCode, ErrorReply, PartitionStatus, PeerLink, ReplicaStatus, Reply, Request, StatusInfo,
};
use crate::types::datetime as dt;
use crate::types::{parse_timestamp, NodeId, Value};
use ohm_sdk::abi::{ty, ParamDesc, TIME_MICROS_MAX};
use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::Arc;

fn overloaded(what: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Overloaded,
        format!("{what} is full: too many requests in flight; retry shortly"),
    )
}

pub(super) fn stopping() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Unavailable,
        "the node is stopping; this request was not applied",
    )
}

/// Converts arguments the wire cannot type exactly to the declared type:
/// a DECIMAL sent as its string, a date or time as its number or its text,
/// a UUID as text or 16 bytes. Anything else is left for the type check.
fn coerce(params: &[ParamDesc], args: &mut [Value]) -> Result<(), String> {
    for (p, a) in params.iter().zip(args.iter_mut()) {
        if let Some(new) = retype(p.ty, a).map_err(|m| format!("argument {}: {m}", p.name))? {
            *a = new;
        }
    }
    Ok(())
}

/// `v` as declared type `t`, if the wire sends that type as another.
fn retype(t: u8, v: &Value) -> Result<Option<Value>, String> {
    Ok(Some(match (ty::base(t), v) {
        (ty::DECIMAL, Value::Text(s)) => Value::Decimal(
            s.parse()
                .map_err(|_| format!("{s:?} is not a decimal number"))?,
        ),
        (ty::TIMESTAMP, Value::Int(us)) => Value::Timestamp(*us),
        (ty::TIMESTAMP, Value::Text(s)) => {
            Value::Timestamp(parse_timestamp(s).ok_or_else(|| format!("{s:?} is not a timestamp"))?)
        }
        (ty::TIMESTAMPTZ, Value::Int(us)) => Value::TimestampTz(*us),
        (ty::TIMESTAMPTZ, Value::Text(s)) => Value::TimestampTz(
            dt::parse_timestamptz(s).map_err(|e| e.message("timestamp with time zone", s))?,
        ),
        (ty::DATE, Value::Int(days)) => Value::Date(i32::try_from(*days).map_err(|_| {
            format!("{days} is out of range for DATE (days since 1970-01-01, a 32-bit number)")
        })?),
        (ty::DATE, Value::Text(s)) => {
            let days = dt::parse_date(s).map_err(|e| e.message("date", s))?;
            // parse_date keeps to PostgreSQL's dates, all within i32.
            Value::Date(i32::try_from(days).map_err(|_| format!("date out of range: {s:?}"))?)
        }
        (ty::TIME, Value::Int(us)) if (0..=TIME_MICROS_MAX).contains(us) => Value::Time(*us),
        (ty::TIME, Value::Int(us)) => {
            return Err(format!(
                "{us} is out of range for TIME (0..={TIME_MICROS_MAX} microseconds since midnight)"
            ))
        }
        (ty::TIME, Value::Text(s)) => {
            Value::Time(dt::parse_time(s).map_err(|e| e.message("time", s))?)
        }
        (ty::INTERVAL, Value::Text(s)) => Value::Interval(
            dt::parse_interval(s, None, false).map_err(|e| e.message("interval", s))?,
        ),
        (ty::UUID, Value::Text(s)) => Value::Uuid(
            dt::parse_uuid(s)
                .ok_or_else(|| format!("invalid input syntax for type uuid: {s:?}"))?,
        ),
        (ty::UUID, Value::Bytes(b)) => Value::Uuid(
            <[u8; 16]>::try_from(&b[..])
                .map_err(|_| format!("a UUID is 16 bytes; this bin has {}", b.len()))?,
        ),
        _ => return Ok(None),
    }))
}

impl Node {
    pub(crate) fn to_coordinator(&self, task: CoordTask) {
        // Queued behind the coordinator's `Stop`, it would only be refused.
        if self.stopping.load(Ordering::Acquire) {
            return reply_of(task)(Err(stopping()));
        }
        match self.coordinator.try_send(task) {
            Ok(()) => {}
            Err(TrySendError::Full(t)) => reply_of(t)(Err(overloaded("the coordinator's queue"))),
            Err(TrySendError::Disconnected(t)) => reply_of(t)(Err(stopping())),
        }
    }

    /// Compiles a module on a thread of its own, then hands the deploy to
    /// the coordinator, which finds it compiled: a slow compile holds
    /// neither the coordinator nor any partition. At most
    /// `COMPILES_IN_FLIGHT_MAX` at once; one that takes longer than the
    /// node's `compile_time_max_ms` is refused (and forgotten) once it ends.
    fn deploy(&self, tenant: crate::types::TenantId, name: String, wasm: Vec<u8>, reply: ReplyFn) {
        if self.compiling.fetch_add(1, Ordering::AcqRel) >= COMPILES_IN_FLIGHT_MAX {
            self.compiling.fetch_sub(1, Ordering::AcqRel);
            return reply(Err(ErrorReply::new(
                ErrorCode::Overloaded,
                format!(
                    "the node is compiling {COMPILES_IN_FLIGHT_MAX} modules for deploys already; \
                     retry shortly (nothing was done)"
                ),
            )));
        }
        let (runtime, coordinator) = (self.runtime.clone(), self.coordinator.clone());
        // Gives the slot back however the job ends (a compile that panics
        // included), or with the job if it never starts.
        let slot = CompileSlot(self.compiling.clone());
        let budget = std::time::Duration::from_millis(self.config.compile_time_max_ms);
        let job = move || {
            super::priority::lower_priority();
            // The budget is CPU time where the OS tells it: at a lower
            // priority on a busy node, wall time would refuse modules for
            // the load, not for what they cost.
            let (started, cpu) = (std::time::Instant::now(), priority::thread_cpu_time());
            let compiled = runtime.compile_cached(&name, &wasm);
            let took = match (cpu, priority::thread_cpu_time()) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => started.elapsed(),
            };
            drop(slot);
            let compiled = match compiled {
                Err(e) => return reply(Err(super::reply::deploy_error(&e))),
                Ok(_) if took > budget => {
                    runtime.forget(&name, &wasm);
                    return reply(Err(ErrorReply::new(
                        ErrorCode::Deploy,
                        format!(
                            "module {name} took {:.1} s of CPU to compile, over the {:.1} s budget: \
                             make it smaller (fewer or smaller functions, fewer locals)",
                            took.as_secs_f64(),
                            budget.as_secs_f64()
                        ),
                    )));
                }
                Ok(c) => c,
            };
            let task = CoordTask::Deploy {
                tenant,
                name,
                wasm,
                compiled: Some(compiled),
                reply,
            };
            match coordinator.try_send(task) {
                Ok(()) => {}
                Err(TrySendError::Full(t)) => {
                    reply_of(t)(Err(overloaded("the coordinator's queue")))
                }
                Err(TrySendError::Disconnected(t)) => reply_of(t)(Err(stopping())),
            }
        };
        let spawned = std::thread::Builder::new()
            .name("ohm-compile".into())
            .spawn(job);
        // On failure the job went with the spawn: its slot was given back,
        // and its reply, dropped unanswered, answers `internal`.
        drop(spawned);
    }

    /// In a cluster, when this node is not known to lead partition 0 (and
    /// so to coordinate): Some, with where clients reach the node that
    /// does if this one knows (None while it does not, e.g. just after a
    /// restart or during an election).
    pub(crate) fn coordinator_elsewhere(&self) -> Option<Option<String>> {
        let cluster = self.cluster.as_ref()?;
        if self.p0_leader.load(Ordering::Relaxed) == cluster.me.0 {
            return None;
        }
        Some(self.coordinator_node().and_then(|(_, at)| at))
    }

    /// In a cluster, when another node is known to lead partition 0 (and so
    /// to coordinate): that node, and where its clients reach it.
    fn coordinator_node(&self) -> Option<(NodeId, Option<String>)> {
        let cluster = self.cluster.as_ref()?;
        let leader = self.p0_leader.load(Ordering::Relaxed);
        if leader == 0 || leader == cluster.me.0 {
            return None;
        }
        let at = cluster.client_addr(NodeId(leader)).map(|a| a.to_string());
        Some((NodeId(leader), at))
    }

    /// A single-partition call whose partition this node leads (while
    /// leaders gather on partition 0's, some may still be here): run here
    /// rather than passed to a node that would send it back.
    fn leads_call(&self, who: &Principal, request: &Request) -> bool {
        let Request::Call {
            procedure, args, ..
        } = request
        else {
            return false;
        };
        let routes = self.routes.get(who.tenant);
        let Some(route) = routes.as_ref().and_then(|r| r.get(procedure)) else {
            return false;
        };
        let Some((param, arg)) = route
            .partition_param
            .and_then(|i| Some((route.params.get(i)?, args.get(i)?)))
        else {
            return false;
        };
        // Placed by the value as the call will see it.
        let mut routing = [arg.clone()];
        if coerce(std::slice::from_ref(param), &mut routing).is_err() {
            return false;
        }
        let p = partition_for(&routing[0], self.executors.len() as u32).0 as usize;
        self.stats
            .get(p)
            .is_some_and(|s| s.role.load(Ordering::Relaxed) == ROLE_LEADER)
    }

    pub(crate) fn call(
        &self,
        who: &Principal,
        procedure: String,
        mut args: Vec<Value>,
        (key, timeout_ms): (Option<String>, Option<u64>),
        reply: ReplyFn,
    ) {
        let routes = self.routes.get(who.tenant);
        let Some(route) = routes.as_ref().and_then(|r| r.get(&procedure)) else {
            // In a cluster this node may not have applied a deploy yet; the
            // node that coordinates (it leads partition 0) has, and only it
            // may say a procedure does not exist.
            if let Some(at) = self.coordinator_elsewhere() {
                let message = match &at {
                    Some(at) => format!(
                        "this node does not know procedure {procedure} (yet); the node that \
                         deploys, at {at}, does: retry there (nothing was done)"
                    ),
                    None => format!(
                        "this node does not know procedure {procedure} (yet), nor which node \
                         deploys (an election may be under way): retry shortly (nothing was done)"
                    ),
                };
                return reply(Err(ErrorReply::not_leader(message, at)));
            }
            let mut message = format!(
                "no procedure named {procedure} is deployed in tenant {}",
                who.tenant_name
            );
            for (module, why) in self.routes.failed(who.tenant) {
                message.push_str(&format!(
                    "; module {module} is deployed but failed to load on this node \
                     (deploy it again, or drop it): {why}"
                ));
            }
            return reply(Err(ErrorReply::new(ErrorCode::UnknownProcedure, message)));
        };
        if let Err(m) = coerce(&route.params, &mut args) {
            return reply(Err(ErrorReply::new(
                ErrorCode::BadArguments,
                format!("procedure {procedure}: {m}"),
            )));
        }
        let Some(param) = route.partition_param else {
            let tenant = who.tenant;
            return self.to_coordinator(CoordTask::Call {
                tenant,
                procedure,
                args,
                key,
                timeout_ms,
                reply,
            });
        };
        let Some(routing) = args.get(param) else {
            return reply(Err(ErrorReply::new(
                ErrorCode::BadArguments,
                format!(
                    "procedure {procedure} takes {} arguments, {} given",
                    route.params.len(),
                    args.len()
                ),
            )));
        };
        let p = partition_for(routing, self.executors.len() as u32).0 as usize;
        let stats = &self.stats[p];
        if stats.queued.fetch_add(1, Ordering::Relaxed) >= PARTITION_QUEUE_MAX as u64 {
            stats.queued.fetch_sub(1, Ordering::Relaxed);
            return reply(Err(overloaded("the partition's queue")));
        }
        let input = Input::Call {
            tenant: who.tenant,
            procedure,
            args,
            key,
            timeout_ms,
            reply: QueuedReply::new(reply),
        };
        if let Err(e) = self.executors[p].send(input) {
            stats.queued.fetch_sub(1, Ordering::Relaxed);
            if let Input::Call { reply, .. } = e.0 {
                reply.take()(Err(stopping()));
            }
        }
    }

    /// The node's status as `who` may see it. The node-wide counters
    /// (committed, failed, queued, log positions and bytes, slots,
    /// connections) move with every tenant's work, so only an admin sees
    /// them; anyone else gets 0 there, and its own rows.
    pub(crate) fn status(&self, who: &Principal) -> StatusInfo {
        let admin = who.admin();
        let get = |a: &std::sync::atomic::AtomicU64| if admin { PartitionStats::get(a) } else { 0 };
        StatusInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node_id: self.cluster.as_ref().map_or(1, |c| u64::from(c.me.0)),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            durability: self.config.durability.name().to_string(),
            connections: if admin {
                self.connections.load(Ordering::Relaxed)
            } else {
                0
            },
            partitions: self
                .stats
                .iter()
                .enumerate()
                .map(|(i, st)| PartitionStatus {
                    id: i as u32,
                    committed: get(&st.committed),
                    failed: get(&st.failed),
                    queued: get(&st.queued),
                    durable_lsn: get(&st.durable_lsn),
                    log_bytes: get(&st.log_bytes),
                    // As the executor last published them: status never
                    // waits behind a long transaction.
                    rows: if admin {
                        st.rows_total()
                    } else {
                        st.rows_of(who.tenant)
                    },
                    role: match st.role.load(Ordering::Relaxed) {
                        ROLE_LEADER => "leader",
                        ROLE_CANDIDATE => "candidate",
                        _ => "follower",
                    }
                    .to_string(),
                    leader: st.leader.load(Ordering::Relaxed),
                    applied: get(&st.applied),
                    replicas: st
                        .replicas
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .map(|&(node, matched)| ReplicaStatus {
                            node,
                            matched: matched.filter(|_| admin),
                        })
                        .collect(),
                    disk_full: st.disk_full.load(Ordering::Relaxed),
                })
                .collect(),
            peers: self
                .links
                .as_ref()
                .map(|links| {
                    links()
                        .into_iter()
                        .map(|l| PeerLink {
                            node: l.node.0,
                            addr: l.addr.to_string(),
                            connected: l.connected,
                            last_error: l.last_error,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

pub(super) fn reply_of(t: CoordTask) -> ReplyFn {
    match t {
        CoordTask::Sql { reply, .. }
        | CoordTask::Call { reply, .. }
        | CoordTask::Load { reply, .. }
        | CoordTask::Deploy { reply, .. }
        | CoordTask::Drop { reply, .. }
        | CoordTask::Catalog { reply, .. }
        | CoordTask::CreateTenant { reply, .. }
        | CoordTask::TenantQuota { reply, .. }
        | CoordTask::Token { reply, .. }
        | CoordTask::Inspect { reply, .. } => reply,
        CoordTask::Stop => Box::new(|_| {}),
    }
}

/// An authenticated connection: its principal, and its place in the
/// tenant's connections quota (given back when the connection goes).
pub struct Session {
    /// Who authenticated.
    pub who: Principal,
    usage: Arc<TenantUsage>,
    _connected: Connected,
}

fn quota_exceeded(e: &crate::catalog::QuotaError) -> ErrorReply {
    ErrorReply::new(ErrorCode::QuotaExceeded, e.to_string())
}

impl Service for Node {
    type Session = Session;

    fn authenticate(&self, token: &str) -> Result<(Session, Reply), ErrorReply> {
        let who = {
            let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            cat.authenticate(token)
        };
        let who = who.ok_or_else(|| {
            ErrorReply::new(
                ErrorCode::AuthFailed,
                "the token was not accepted by this node (check --token / OHM_TOKEN, or the \
                 data directory's token files)",
            )
        })?;
        let usage = self.usage.of(who.tenant);
        let quota = self.routes.quota(who.tenant, &self.config.quota);
        let connected = usage.connect(&quota).map_err(|e| quota_exceeded(&e))?;
        let reply = Reply::Authenticated {
            tenant: who.tenant_name.clone(),
            principal: who.name.clone(),
            admin: who.admin(),
            role: who.role.name().to_string(),
        };
        let session = Session {
            who,
            usage,
            _connected: connected,
        };
        Ok((session, reply))
    }

    fn dispatch(&self, session: &Arc<Session>, request: Request, replier: Replier) {
        let who = &session.who;
        let revoked = {
            let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            !cat.holds_token(&who.token_sha256)
        };
        let op = super::metrics::op_of(&request);
        if revoked {
            session.usage.metrics.refused(op, ErrorCode::AuthFailed);
            return replier.send(Err(ErrorReply::new(
                ErrorCode::AuthFailed,
                format!(
                    "principal {:?} of tenant {:?} was revoked: its token is no longer accepted \
                     (nothing was done)",
                    who.name, who.tenant_name
                ),
            )));
        }
        // Counted here, where the client is, also when the request is
        // passed to another node: its quota is this node's.
        let quota = self.routes.quota(who.tenant, &self.config.quota);
        let call = matches!(
            request,
            Request::Call { .. } | Request::Sql { .. } | Request::Load(_)
        );
        let replier = match session.usage.begin(&quota, call, op) {
            Ok(in_flight) => replier.holding(in_flight),
            Err(e) => {
                session.usage.metrics.refused(op, ErrorCode::QuotaExceeded);
                return replier.send(Err(quota_exceeded(&e)));
            }
        };
        if let Some(f) = &self.forwarder {
            if let Some((to, at)) = self.coordinator_node() {
                if forwarded_kind(&request) && !self.leads_call(who, &request) {
                    return f.forward(to, at, who, request, replier);
                }
            }
        }
        // Only ad-hoc SQL is cancelled when its client goes.
        let client = matches!(request, Request::Sql { .. }).then(|| replier.gone());
        let reply: ReplyFn = Box::new(move |r| replier.send(r));
        self.dispatch_here(who, request, client, reply);
    }

    fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Node {
    /// Runs `request` on this node (it came from a client here, or was
    /// forwarded by another node: never forwarded again).
    /// `client` is set once the client is gone (its work may stop).
    pub(crate) fn dispatch_here(
        &self,
        who: &Principal,
        request: Request,
        client: Option<Arc<std::sync::atomic::AtomicBool>>,
        reply: ReplyFn,
    ) {
        let tenant = who.tenant;
        if let Err(e) = may(who, &request) {
            return reply(Err(e));
        }
        match request {
            Request::Call {
                procedure,
                args,
                key,
                timeout_ms,
            } => self.call(who, procedure, args, (key, timeout_ms), reply),
            Request::Sql {
                sql,
                params,
                timeout_ms,
            } => self.to_coordinator(CoordTask::Sql {
                tenant,
                sql,
                params,
                timeout_ms,
                read_only: who.role == Role::Reader,
                client,
                reply,
            }),
            Request::Load(load) => self.to_coordinator(CoordTask::Load {
                tenant,
                load,
                reply,
            }),
            Request::Deploy { name, wasm } => self.deploy(tenant, name, wasm, reply),
            Request::Drop { name } => self.to_coordinator(CoordTask::Drop {
                tenant,
                name,
                reply,
            }),
            Request::Catalog => self.to_coordinator(CoordTask::Catalog {
                tenant,
                tenant_name: who.tenant_name.clone(),
                reply,
            }),
            Request::Status => reply(Ok(Reply::Status(self.status(who)))),
            Request::CreateTenant { name } => {
                self.to_coordinator(CoordTask::CreateTenant { name, reply })
            }
            Request::TenantQuota { tenant, set } => {
                self.to_coordinator(CoordTask::TenantQuota { tenant, set, reply })
            }
            Request::TokenCreate {
                tenant,
                name,
                role,
                grants,
            } => match Role::parse(&role, &grants) {
                Ok(role) => self.to_coordinator(CoordTask::Token {
                    tenant: tenant.unwrap_or_else(|| who.tenant_name.clone()),
                    op: TokenOp::Change(TokenChange::Create { name, role }),
                    reply,
                }),
                Err(e) => reply(Err(ErrorReply::new(
                    ErrorCode::BadArguments,
                    format!("{e} (nothing was done)"),
                ))),
            },
            Request::TokenRevoke { tenant, name } => self.to_coordinator(CoordTask::Token {
                tenant: tenant.unwrap_or_else(|| who.tenant_name.clone()),
                op: TokenOp::Change(TokenChange::Revoke { name }),
                reply,
            }),
            Request::Tokens { tenant } => self.to_coordinator(CoordTask::Token {
                tenant: tenant.unwrap_or_else(|| who.tenant_name.clone()),
                op: TokenOp::List,
                reply,
            }),
            Request::Auth { .. } => reply(Err(ErrorReply::new(
                ErrorCode::BadRequest,
                "this connection is already authenticated",
            ))),
            // The server answers it from the identity it serves with.
            Request::Certificate => reply(Err(ErrorReply::new(
                ErrorCode::Internal,
                "`certificate` reached the node's service; the QUIC server answers it",
            ))),
        }
    }
}

/// Whether `who`'s role lets it make `request` (docs/OPERATIONS.md,
/// "Roles and tokens"); the answer names what it lacks.
fn may(who: &Principal, request: &Request) -> Result<(), ErrorReply> {
    let role = &who.role;
    let needs = |what: &str| {
        Err(ErrorReply::new(
            ErrorCode::Forbidden,
            format!(
                "{what}; principal {:?} of tenant {:?} has role {} (nothing was done)",
                who.name,
                who.tenant_name,
                role.name()
            ),
        ))
    };
    let runs_all = matches!(role, Role::Admin | Role::Owner | Role::Deployer);
    match request {
        Request::Call { procedure, .. } if !role.may_call(procedure) => needs(&format!(
            "calling {procedure} needs a grant of it (role caller) or role owner or deployer"
        )),
        Request::Sql { .. } if !runs_all && *role != Role::Reader => {
            needs("ad-hoc SQL needs role owner, deployer or reader (queries only)")
        }
        Request::Load(_) if !runs_all => needs("loading rows needs role owner or deployer"),
        Request::Deploy { .. } | Request::Drop { .. } if !runs_all => {
            needs("deploying and dropping modules needs role owner or deployer")
        }
        Request::CreateTenant { .. } | Request::TenantQuota { .. } if !who.admin() => needs(
            "creating tenants and setting their quotas needs an admin token (the data \
             directory's admin.token)",
        ),
        Request::TokenCreate { tenant, .. }
        | Request::TokenRevoke { tenant, .. }
        | Request::Tokens { tenant } => match role {
            Role::Admin => Ok(()),
            Role::Owner if tenant.as_ref().is_none_or(|t| *t == who.tenant_name) => Ok(()),
            Role::Owner => needs("a tenant's owner manages its own tenant's tokens alone"),
            _ => needs("managing tokens needs role owner (or an admin token)"),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each role may ask, request kind by request kind.
    #[test]
    fn each_role_may_make_only_its_requests() {
        let who = |role: Role, tenant: &str| Principal {
            tenant: crate::types::TenantId(1),
            tenant_name: tenant.into(),
            name: "p".into(),
            role,
            token_sha256: [0; 32],
        };
        let call = |p: &str| Request::Call {
            procedure: p.into(),
            args: vec![],
            key: None,
            timeout_ms: None,
        };
        let sql = Request::Sql {
            sql: "SELECT 1".into(),
            params: vec![],
            timeout_ms: None,
        };
        let deploy = Request::Drop { name: "m".into() };
        let load = Request::Load(crate::proto::LoadRequest {
            table: "t".into(),
            columns: vec![],
            rows: vec![],
            key: None,
            max_errors: 0,
            timeout_ms: None,
        });
        let tokens = |t: Option<&str>| Request::Tokens {
            tenant: t.map(str::to_string),
        };
        let admin_only = Request::CreateTenant { name: "x".into() };
        let caller = Role::Caller(vec!["vote".into()]);
        // (role, request, allowed)
        let cases = [
            (Role::Owner, call("any"), true),
            (Role::Owner, sql.clone(), true),
            (Role::Owner, deploy.clone(), true),
            (Role::Owner, load.clone(), true),
            (Role::Deployer, load.clone(), true),
            (caller.clone(), load.clone(), false),
            (Role::Reader, load.clone(), false),
            (Role::Owner, tokens(None), true),
            (Role::Owner, tokens(Some("acme")), true),
            (Role::Owner, tokens(Some("other")), false),
            (Role::Owner, admin_only.clone(), false),
            (Role::Deployer, call("any"), true),
            (Role::Deployer, sql.clone(), true),
            (Role::Deployer, deploy.clone(), true),
            (Role::Deployer, tokens(None), false),
            (caller.clone(), call("vote"), true),
            (caller.clone(), call("results"), false),
            (caller.clone(), sql.clone(), false),
            (caller.clone(), deploy.clone(), false),
            (caller.clone(), Request::Catalog, true),
            (caller.clone(), Request::Status, true),
            (Role::Reader, sql.clone(), true),
            (Role::Reader, call("vote"), false),
            (Role::Reader, deploy.clone(), false),
            (Role::Reader, tokens(None), false),
            (Role::Admin, admin_only.clone(), true),
            (Role::Admin, tokens(Some("acme")), true),
        ];
        for (role, request, allowed) in cases {
            let r = may(&who(role.clone(), "acme"), &request);
            assert_eq!(r.is_ok(), allowed, "{role:?} {request:?}: {r:?}");
            if let Err(e) = r {
                assert_eq!(e.code, ErrorCode::Forbidden);
                assert!(e.message.contains(role.name()), "{}", e.message);
            }
        }
    }

    #[test]
    fn coerces_wire_values_to_declared_types() {
        let p = |ty| ParamDesc {
            name: "x".into(),
            ty,
        };
        let mut args = vec![Value::text("1.25"), Value::Int(5), Value::text("a")];
        coerce(&[p(ty::DECIMAL), p(ty::TIMESTAMP), p(ty::TEXT)], &mut args).unwrap();
        assert!(matches!(args[0], Value::Decimal(_)));
        assert!(matches!(args[1], Value::Timestamp(5)));
        assert!(matches!(args[2], Value::Text(_)));
        let mut bad = vec![Value::text("x1")];
        assert!(coerce(&[p(ty::DECIMAL)], &mut bad)
            .unwrap_err()
            .contains("argument x"));
    }

    /// Dates, times, intervals and UUIDs from their wire numbers and text.
    #[test]
    fn coerces_dates_times_intervals_and_uuids() {
        let p = |ty| ParamDesc {
            name: "x".into(),
            ty,
        };
        let one = |t: u8, v: Value| {
            let mut args = [v];
            coerce(&[p(t)], &mut args).map(|()| args[0].clone())
        };
        let uuid = *b"\xa0\xee\xbc\x99\x9c\x0b\x4e\xf8\xbb\x6d\x6b\xb9\xbd\x38\x0a\x11";
        let iv = crate::types::Interval::new(14, 3, 4_000_000);
        let good = [
            (ty::TIMESTAMPTZ, Value::Int(-7), Value::TimestampTz(-7)),
            (
                ty::TIMESTAMPTZ,
                Value::text("1970-01-01 01:00:00+01"),
                Value::TimestampTz(0),
            ),
            (ty::DATE | ty::NULLABLE, Value::Int(-1), Value::Date(-1)),
            (ty::DATE, Value::text("2024-01-02"), Value::Date(19_724)),
            (
                ty::TIME,
                Value::Int(TIME_MICROS_MAX),
                Value::Time(TIME_MICROS_MAX),
            ),
            (ty::TIME, Value::text("00:00:01.5"), Value::Time(1_500_000)),
            (ty::INTERVAL, Value::Interval(iv), Value::Interval(iv)),
            (
                ty::INTERVAL,
                Value::text("1 year 2 mons 3 days 00:00:04"),
                Value::Interval(iv),
            ),
            (
                ty::UUID,
                Value::text("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
                Value::Uuid(uuid),
            ),
            (
                ty::UUID,
                Value::Bytes(Arc::from(&uuid[..])),
                Value::Uuid(uuid),
            ),
            (ty::DATE | ty::NULLABLE, Value::Null, Value::Null),
            // Left for the type check, which names the mismatch.
            (ty::DATE, Value::Bool(true), Value::Bool(true)),
        ];
        for (t, wire, want) in good {
            assert_eq!(
                one(t, wire.clone()),
                Ok(want),
                "{wire:?} as {}",
                ty::name(t)
            );
        }
        let bad = [
            (
                ty::DATE,
                Value::Int(1 << 40),
                "argument x: 1099511627776 is out of range for DATE \
                 (days since 1970-01-01, a 32-bit number)",
            ),
            (
                ty::DATE,
                Value::text("2024-02-30"),
                "argument x: date/time field value out of range for type date: \"2024-02-30\"",
            ),
            (
                ty::TIME,
                Value::Int(-1),
                "argument x: -1 is out of range for TIME \
                 (0..=86400000000 microseconds since midnight)",
            ),
            (
                ty::TIME,
                Value::Int(TIME_MICROS_MAX + 1),
                "argument x: 86400000001 is out of range for TIME \
                 (0..=86400000000 microseconds since midnight)",
            ),
            (
                ty::TIME,
                Value::text("noon-ish"),
                "argument x: invalid input syntax for type time: \"noon-ish\"",
            ),
            (
                ty::TIMESTAMPTZ,
                Value::text("yesterday-ish"),
                "argument x: invalid input syntax for type timestamp with time zone: \
                 \"yesterday-ish\"",
            ),
            (
                ty::INTERVAL,
                Value::text("3 fortnights"),
                "argument x: invalid input syntax for type interval: \"3 fortnights\"",
            ),
            (
                ty::UUID,
                Value::text("not-a-uuid"),
                "argument x: invalid input syntax for type uuid: \"not-a-uuid\"",
            ),
            (
                ty::UUID,
                Value::Bytes(Arc::from(&[1u8, 2, 3][..])),
                "argument x: a UUID is 16 bytes; this bin has 3",
            ),
        ];
        for (t, wire, want) in bad {
            assert_eq!(one(t, wire.clone()), Err(want.to_string()), "{wire:?}");
        }
    }
}
