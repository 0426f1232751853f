//! A client of a cluster: connections to the nodes it has heard of, and
//! the one it believes leads (where requests go). Any node takes any
//! request (one that does not lead passes it on); an answer that names the
//! leader moves the client there for the next request. A `not_leader`
//! answer (nothing was done) moves it to the leader the answer names and
//! the request is sent again; while a leader is being elected, or the node it
//! talked to is gone, it waits a little and tries the nodes it knows.
//! A call goes with an idempotency key (fresh per call, or the caller's):
//! when its answer is lost (the connection closed, or `unavailable`: a
//! leader changed under it) it is sent again with the same key, and the
//! partition answers a call it already applied as the first time instead
//! of applying it twice. Other requests are not resent: an `unavailable`
//! answer may mean they took effect, and only the caller can tell whether
//! to send them again.
//!
//! Bounds: `CLUSTER_ATTEMPTS_MAX` tries per request, `CALL_RESENDS_MAX`
//! resends of a call, `CLUSTER_NODES_MAX` addresses remembered.

use super::{CallResult, Client, ClientConfig, ClientError, Deployed};
use crate::proto::{ErrorCode, Reply, Request};
use crate::proto::{SqlResult, StatusInfo};
use crate::types::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Tries of one request (redirects and waits for an election included).
pub const CLUSTER_ATTEMPTS_MAX: usize = 100;
/// Times a call whose answer was lost is sent again (same key).
pub const CALL_RESENDS_MAX: usize = 10;
/// Random bytes naming a client in its calls' idempotency keys.
const KEY_PREFIX_BYTES: usize = 16;
/// Addresses a cluster client remembers.
pub const CLUSTER_NODES_MAX: usize = 64;
/// The wait before trying again when no leader is known.
pub const RETRY_DELAY: Duration = Duration::from_millis(100);
/// How long one node gets to answer a connection attempt (a dead node's
/// address is not waited on for the template's whole timeout).
pub const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a connection to a node may hear nothing before the node is
/// taken for dead (at most; the template's may be shorter). A request in
/// flight to a node killed or cut off fails after this, so it bounds how
/// long a failover keeps a caller waiting. Keep-alives go 4 times as often.
pub const NODE_IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// A node that did not answer is not tried again (nor followed to, when
/// another node still names it leader) for this long.
pub const DOWN_FOR: Duration = Duration::from_secs(2);

pub struct ClusterClient {
    /// Trust, token and timeouts for every node; `addr` is replaced.
    template: ClientConfig,
    /// Every node heard of, in the order first heard.
    known: Mutex<Vec<String>>,
    /// Where requests go now.
    current: Mutex<String>,
    conns: tokio::sync::Mutex<BTreeMap<String, Client>>,
    /// Nodes that did not answer, and when.
    down: Mutex<BTreeMap<String, std::time::Instant>>,
    /// This client's calls' keys are this (random, hex) and a counter.
    key_prefix: String,
    keys_made: AtomicU64,
}

impl ClusterClient {
    /// Connects to the first of `addrs` that answers (all are remembered).
    pub async fn connect(template: ClientConfig, addrs: &[String]) -> Result<Self, ClientError> {
        let first = addrs
            .first()
            .ok_or_else(|| ClientError::Config("a cluster client needs an address".into()))?;
        let c = ClusterClient {
            template,
            known: Mutex::new(addrs.iter().take(CLUSTER_NODES_MAX).cloned().collect()),
            current: Mutex::new(first.clone()),
            conns: tokio::sync::Mutex::new(BTreeMap::new()),
            down: Mutex::new(BTreeMap::new()),
            key_prefix: random_hex()?,
            keys_made: AtomicU64::new(0),
        };
        let mut last = None;
        for a in addrs {
            match c.client(a).await {
                Ok(_) => {
                    c.set_current(a);
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Config("no address".into())))
    }

    /// Closes every connection this client opened (requests in flight
    /// fail with `Closed`). A connection that goes without a close (its
    /// process died, or its runtime stopped first) counts against the
    /// tenant's `connections_max` until the node's idle timeout ends it.
    pub async fn close(&self) {
        let conns = std::mem::take(&mut *self.conns.lock().await);
        for c in conns.values() {
            c.close().await;
        }
    }

    /// The node requests go to now.
    pub fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_current(&self, addr: &str) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = addr.to_string();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if !known.iter().any(|k| k == addr) && known.len() < CLUSTER_NODES_MAX {
            known.push(addr.to_string());
        }
    }

    async fn client(&self, addr: &str) -> Result<Client, ClientError> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(addr) {
            return Ok(c.clone());
        }
        let mut cfg = self.template.clone();
        cfg.addr = addr.to_string();
        cfg.connect_timeout = cfg.connect_timeout.min(NODE_CONNECT_TIMEOUT);
        cfg.idle_timeout = cfg.idle_timeout.min(NODE_IDLE_TIMEOUT);
        let c = Client::connect(cfg).await?;
        conns.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    async fn forget(&self, addr: &str) {
        if let Some(c) = self.conns.lock().await.remove(addr) {
            c.close().await;
        }
    }

    fn is_down(&self, addr: &str) -> bool {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.get(addr).is_some_and(|t| t.elapsed() < DOWN_FOR)
    }

    fn mark_down(&self, addr: &str) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.retain(|_, t| t.elapsed() < DOWN_FOR);
        if down.len() < CLUSTER_NODES_MAX {
            down.insert(addr.to_string(), std::time::Instant::now());
        }
    }

    /// The next node to try after `addr` failed to answer: the next known
    /// one that has not failed lately (else simply the next).
    fn next_after(&self, addr: &str) -> String {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let n = known.len().max(1);
        let i = known.iter().position(|k| k == addr).map_or(0, |i| i + 1);
        let order = (0..n).filter_map(|k| known.get((i + k) % n));
        let mut fallback = None;
        for a in order {
            if a != addr && !self.is_down(a) {
                return a.clone();
            }
            fallback = fallback.or(Some(a.clone()));
        }
        fallback.unwrap_or_else(|| addr.to_string())
    }

    /// Sends `request` to the leader, following `not_leader` answers.
    pub async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        let mut last = None;
        for attempt in 0..CLUSTER_ATTEMPTS_MAX {
            let addr = self.current();
            let client = match self.client(&addr).await {
                Ok(c) => c,
                Err(e @ (ClientError::Unreachable { .. } | ClientError::Closed { .. })) => {
                    // Never connected: the request was not sent.
                    self.mark_down(&addr);
                    last = Some(e);
                    self.set_current(&self.next_after(&addr));
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let answer = client.request(request.clone()).await;
            // Taken whatever the answer, so a stale one never moves a later
            // request.
            let hint = client.leader_hint();
            match answer {
                Err(ClientError::Server(e)) if e.code == ErrorCode::NotLeader => {
                    // A leader that just failed to answer is not followed
                    // (the others have not noticed yet): ask again shortly.
                    match &e.leader {
                        Some(l) if *l != addr && !self.is_down(l) => self.set_current(l),
                        _ => tokio::time::sleep(RETRY_DELAY).await,
                    }
                    // Leaders move while an election or transfer settles:
                    // after a first redirect, pace the tries.
                    if attempt > 0 {
                        tokio::time::sleep(RETRY_DELAY).await;
                    }
                    last = Some(ClientError::Server(e));
                }
                Err(e @ ClientError::Closed { .. }) => {
                    // The request may have reached the node: say so.
                    self.forget(&addr).await;
                    self.mark_down(&addr);
                    self.set_current(&self.next_after(&addr));
                    return Err(e);
                }
                other => {
                    // The node passed it on to the leader: go there next.
                    if let Some(l) = hint.filter(|l| *l != addr && !self.is_down(l)) {
                        self.set_current(&l);
                    }
                    return other;
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Config("no attempt was made".into())))
    }

    /// Calls `procedure` with a fresh idempotency key (see the module doc).
    pub async fn call(&self, procedure: &str, args: Vec<Value>) -> Result<CallResult, ClientError> {
        let n = self.keys_made.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}-{n}", self.key_prefix);
        self.call_with_key(procedure, args, &key).await
    }

    /// Calls `procedure` with the caller's idempotency `key` (one per
    /// intended call, 1 to 128 bytes; see PROTOCOL.md), sending it again
    /// with that key while its answer is lost.
    pub async fn call_with_key(
        &self,
        procedure: &str,
        args: Vec<Value>,
        key: &str,
    ) -> Result<CallResult, ClientError> {
        let request = super::call_request(procedure, args, Some(key));
        let mut resends = 0;
        loop {
            match self.request(request.clone()).await {
                Err(e) if resends < CALL_RESENDS_MAX && answer_lost(&e) => {
                    resends += 1;
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                r => return super::call_result(r?),
            }
        }
    }

    /// Runs SQL on the leader (statements, reads included).
    pub async fn sql(&self, sql: &str) -> Result<Vec<SqlResult>, ClientError> {
        let (sql, params) = (sql.into(), Vec::new());
        let request = Request::Sql {
            sql,
            params,
            timeout_ms: None,
        };
        super::sql_result(self.request(request).await?)
    }

    pub async fn deploy(&self, name: &str, wasm: Vec<u8>) -> Result<Deployed, ClientError> {
        let name = name.to_string();
        super::deploy_result(self.request(Request::Deploy { name, wasm }).await?)
    }

    /// Creates a tenant (an admin's token); in a cluster it is logged
    /// through partition 0 and known to every node once chosen.
    pub async fn create_tenant(&self, name: &str) -> Result<super::NewTenant, ClientError> {
        super::tenant_result(self.request(super::create_tenant_request(name)).await?)
    }

    /// `Client::create_token`, on whichever node answers.
    pub async fn create_token(
        &self,
        tenant: Option<&str>,
        name: &str,
        role: &str,
        grants: &[String],
    ) -> Result<super::NewToken, ClientError> {
        let request = super::token_create_request(tenant, name, role, grants);
        super::token_result(self.request(request).await?)
    }

    /// `Client::tenant_quota`, on whichever node answers.
    pub async fn tenant_quota(
        &self,
        tenant: &str,
        set: &[(String, Option<u64>)],
    ) -> Result<Vec<crate::proto::QuotaValue>, ClientError> {
        super::quota_result(self.request(super::quota_request(tenant, set)).await?)
    }

    /// The status of the node requests go to now (not following
    /// `not_leader`: every node answers status).
    pub async fn status(&self) -> Result<StatusInfo, ClientError> {
        super::status_result(self.request(Request::Status).await?)
    }
}

/// A call answered so: it may or may not have been applied, and sending it
/// again with its key is safe.
pub fn answer_lost(e: &ClientError) -> bool {
    match e {
        ClientError::Closed { .. } => true,
        ClientError::Server(r) => r.code == ErrorCode::Unavailable,
        _ => false,
    }
}

/// `KEY_PREFIX_BYTES` from the OS's secure RNG, as hex.
fn random_hex() -> Result<String, ClientError> {
    let mut bytes = [0u8; KEY_PREFIX_BYTES];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| ClientError::Config("the OS gave no secure random bytes".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
