//! The Rust client library: one QUIC connection to a node, a few long-lived
//! bidirectional streams, and many requests in flight on each (pipelining).
//!
//! ```text
//!  request() ─id, oneshot─▶ pending[stream] ◀─resolve by id── reader task
//!      └──(id, request)──▶ mpsc ─▶ writer task (coalesces) ─▶ QUIC stream
//! ```
//!
//! One writer task serves every stream of the connection
//! (`net::stream_out`), so requests queued together leave in one packet.
//!
//! Ids come from one counter, so they are unique on the connection; a
//! request goes to stream `id % streams`. `Client` is a cheap clone; any
//! number of tasks may call through clones at once. Must not: spawn per
//! request, or queue without bound (`QUEUE_PER_STREAM_MAX`).

pub mod cluster;

use crate::net::endpoint;
use crate::net::frame::FrameReader;
use crate::net::stream_out::{self, StreamOut};
use crate::net::tls::{ClientTrust, PIN_MISMATCH};
use crate::proto::codec::{self, FrameTooLarge};
use crate::proto::{
    CatalogInfo, ErrorCode, ErrorReply, Loaded, Reply, Request, Rows, SqlResult, StatusInfo,
    FRAME_BYTES_MAX,
};
use crate::types::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long `connect` waits for the handshake and the auth answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests queued for one stream's writer before callers wait.
pub const QUEUE_PER_STREAM_MAX: usize = 1024;
/// Streams a client may open (the node allows 64).
pub const STREAMS_MAX: usize = 32;
/// A writer coalesces queued requests up to about this many bytes.
pub const WRITE_BATCH_BYTES_MAX: usize = 256 << 10;

/// The shortest idle timeout a client asks for (shorter ones are raised
/// to it: keep-alives go 4 times as often).
pub const IDLE_TIMEOUT_MIN: Duration = Duration::from_millis(200);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`.
    pub addr: String,
    /// The name the server certificate must carry (CA trust only).
    pub server_name: String,
    pub trust: Trust,
    pub token: String,
    /// Long-lived streams requests are spread over (1..=STREAMS_MAX).
    pub streams: usize,
    pub connect_timeout: Duration,
    /// A connection that hears nothing from the node for this long is
    /// closed, failing the requests in flight on it (a node killed or cut
    /// off sends nothing more); keep-alives keep a live one open. At least
    /// `IDLE_TIMEOUT_MIN`. QUIC takes the lower of both sides' timeouts, so
    /// a client that stalls this long loses its connection too.
    pub idle_timeout: Duration,
}

impl ClientConfig {
    /// Defaults: server name "localhost", 4 streams, `CONNECT_TIMEOUT`,
    /// `CLIENT_IDLE_TIMEOUT`.
    pub fn new(addr: impl Into<String>, trust: Trust, token: impl Into<String>) -> ClientConfig {
        ClientConfig {
            addr: addr.into(),
            server_name: "localhost".into(),
            trust,
            token: token.into(),
            streams: 4,
            connect_timeout: CONNECT_TIMEOUT,
            idle_timeout: crate::net::endpoint::CLIENT_IDLE_TIMEOUT,
        }
    }
}

/// How the client trusts the node's certificate.
#[derive(Debug, Clone)]
pub enum Trust {
    /// A PEM file of CA certificates (or the node's own certificate).
    CaFile(PathBuf),
    CaPem(Vec<u8>),
    /// `sha256:<64 hex>` of the node's certificate (`ohm serve` prints it).
    Fingerprint(String),
}

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("{message}")]
    Unreachable { addr: String, message: String },
    #[error("the node's certificate is not trusted: {message}")]
    Certificate { message: String },
    #[error("authentication failed: {message}")]
    Auth { message: String },
    #[error("{0}")]
    Server(ErrorReply),
    #[error("connection closed: {reason}")]
    Closed { reason: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("client configuration: {0}")]
    Config(String),
}

/// Who the connection is authenticated as.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub tenant: String,
    pub principal: String,
    pub admin: bool,
    /// `admin`, `owner`, `deployer`, `caller` or `reader`.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallResult {
    Value(Value),
    Rows(Rows),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    pub module: String,
    pub procedures: Vec<String>,
    pub replaced: bool,
    /// What the deploy warns of (it deployed anyway).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTenant {
    pub tenant: String,
    pub principal: String,
    pub token: String,
}

type Answer = Result<Reply, ErrorReply>;
type Pending = Arc<Mutex<Waiting>>;

/// The requests of one stream waiting for their answers.
#[derive(Default)]
struct Waiting {
    answers: HashMap<u64, oneshot::Sender<Answer>>,
    /// The stream's reader ended: no answer comes any more.
    ended: bool,
}

struct Stream {
    queue: mpsc::Sender<Queued>,
    pending: Pending,
}

/// A `load` chunk kept for sending again (`Client::load_shared`).
#[derive(Debug, Clone)]
pub struct SharedLoad(Arc<Request>);

impl SharedLoad {
    pub fn new(load: crate::proto::LoadRequest) -> SharedLoad {
        SharedLoad(Arc::new(Request::Load(load)))
    }
}

fn loaded_result(reply: Reply) -> Result<Loaded, ClientError> {
    match reply {
        Reply::Loaded(l) => Ok(l),
        other => Err(unexpected(other)),
    }
}

/// A request on its way to the writer.
struct Queued {
    id: u64,
    request: Outgoing,
}

/// A request as its caller gave it: owned, or shared with a caller that
/// may send it again (a load chunk is not copied for each try).
enum Outgoing {
    Owned(Request),
    Shared(Arc<Request>),
}

impl Outgoing {
    fn get(&self) -> &Request {
        match self {
            Outgoing::Owned(r) => r,
            Outgoing::Shared(r) => r,
        }
    }
}

struct Inner {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    streams: Vec<Stream>,
    next_id: AtomicU64,
    session: Session,
    /// The latest `leader` a response named (see `Client::leader_hint`).
    leader_hint: LeaderHint,
}

type LeaderHint = Arc<std::sync::Mutex<Option<String>>>;

impl Drop for Inner {
    /// The last clone gone: tell the node now rather than letting it wait
    /// for the idle timeout (best effort; `Client::close` waits for it).
    fn drop(&mut self) {
        self.connection
            .close(quinn::VarInt::from_u32(0), b"client dropped");
    }
}

/// A connection to one node. Clones share it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session", self.session())
            .finish_non_exhaustive()
    }
}

/// A `call` request.
pub(crate) fn call_request(procedure: &str, args: Vec<Value>, key: Option<&str>) -> Request {
    Request::Call {
        procedure: procedure.to_string(),
        args,
        key: key.map(str::to_string),
        timeout_ms: None,
    }
}

/// A call's reply as its result.
fn call_result(reply: Reply) -> Result<CallResult, ClientError> {
    match reply {
        Reply::Value(v) => Ok(CallResult::Value(v)),
        Reply::Rows(r) => Ok(CallResult::Rows(r)),
        other => Err(unexpected(other)),
    }
}

/// An SQL request's reply as its results.
fn sql_result(reply: Reply) -> Result<Vec<SqlResult>, ClientError> {
    match reply {
        Reply::Sql(results) => Ok(results),
        other => Err(unexpected(other)),
    }
}

/// A deploy's reply as what was deployed.
fn deploy_result(reply: Reply) -> Result<Deployed, ClientError> {
    match reply {
        Reply::Deployed {
            module,
            procedures,
            replaced,
            warnings,
        } => Ok(Deployed {
            module,
            procedures,
            replaced,
            warnings,
        }),
        other => Err(unexpected(other)),
    }
}

fn create_tenant_request(name: &str) -> Request {
    Request::CreateTenant {
        name: name.to_string(),
    }
}

fn tenant_result(reply: Reply) -> Result<NewTenant, ClientError> {
    match reply {
        Reply::TenantCreated {
            tenant,
            principal,
            token,
        } => Ok(NewTenant {
            tenant,
            principal,
            token,
        }),
        other => Err(unexpected(other)),
    }
}

/// A principal created, and its token (shown this once).
#[derive(Debug, Clone, PartialEq)]
pub struct NewToken {
    pub tenant: String,
    pub principal: crate::proto::PrincipalDesc,
    pub token: String,
}

/// What `ohm tenant token` asks: `tenant` None is the token's own tenant.
pub fn token_create_request(
    tenant: Option<&str>,
    name: &str,
    role: &str,
    grants: &[String],
) -> Request {
    Request::TokenCreate {
        tenant: tenant.map(str::to_string),
        name: name.to_string(),
        role: role.to_string(),
        grants: grants.to_vec(),
    }
}

fn token_result(reply: Reply) -> Result<NewToken, ClientError> {
    match reply {
        Reply::Token {
            tenant,
            principal,
            token,
        } => Ok(NewToken {
            tenant,
            principal,
            token,
        }),
        other => Err(unexpected(other)),
    }
}

fn quota_request(tenant: &str, set: &[(String, Option<u64>)]) -> Request {
    Request::TenantQuota {
        tenant: tenant.to_string(),
        set: set.to_vec(),
    }
}

fn quota_result(reply: Reply) -> Result<Vec<crate::proto::QuotaValue>, ClientError> {
    match reply {
        Reply::Quota { quota, .. } => Ok(quota),
        other => Err(unexpected(other)),
    }
}

fn status_result(reply: Reply) -> Result<StatusInfo, ClientError> {
    match reply {
        Reply::Status(s) => Ok(s),
        other => Err(unexpected(other)),
    }
}

fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}

impl Client {
    /// Resolves `addr`, completes the QUIC handshake and authenticates.
    pub async fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        if cfg.streams == 0 || cfg.streams > STREAMS_MAX {
            return Err(ClientError::Config(format!(
                "streams must be 1..={STREAMS_MAX}"
            )));
        }
        let trust = match &cfg.trust {
            Trust::CaFile(p) => ClientTrust::RootsPem(std::fs::read(p).map_err(|e| {
                ClientError::Config(format!("reading CA file {}: {e}", p.display()))
            })?),
            Trust::CaPem(pem) => ClientTrust::RootsPem(pem.clone()),
            Trust::Fingerprint(fp) => ClientTrust::Fingerprint(fp.clone()),
        };
        let unreachable = |message: String| ClientError::Unreachable {
            addr: cfg.addr.clone(),
            message,
        };
        let peer = tokio::net::lookup_host(&cfg.addr)
            .await
            .map_err(|e| unreachable(format!("cannot resolve {}: {e}", cfg.addr)))?
            .next()
            .ok_or_else(|| unreachable(format!("{} resolves to no address", cfg.addr)))?;
        let idle = cfg.idle_timeout.max(IDLE_TIMEOUT_MIN);
        let endpoint = endpoint::client_with(peer, &trust, idle)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let timeout_s = cfg.connect_timeout.as_secs_f64();
        let no_answer = || {
            unreachable(format!(
                "no answer from ohm at {} within {timeout_s} s — is `ohm serve` running there?",
                cfg.addr
            ))
        };
        let connecting = endpoint
            .connect(peer, &cfg.server_name)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let connection = match tokio::time::timeout(cfg.connect_timeout, connecting).await {
            Err(_) => return Err(no_answer()),
            Ok(Err(quinn::ConnectionError::TimedOut)) => return Err(no_answer()),
            Ok(Err(e)) => return Err(connection_error(&e)),
            Ok(Ok(c)) => c,
        };
        let mut streams = Vec::with_capacity(cfg.streams);
        let mut outs = Vec::with_capacity(cfg.streams);
        let leader_hint = LeaderHint::default();
        for _ in 0..cfg.streams {
            let (send, recv) = connection
                .open_bi()
                .await
                .map_err(|e| connection_error(&e))?;
            let pending: Pending = Arc::default();
            let (queue, rx) = mpsc::channel(QUEUE_PER_STREAM_MAX);
            outs.push((
                StreamOut::new(send, rx, WRITE_BATCH_BYTES_MAX),
                pending.clone(),
            ));
            tokio::spawn(reader(recv, pending.clone(), leader_hint.clone()));
            streams.push(Stream { queue, pending });
        }
        tokio::spawn(writer(outs));
        let mut inner = Inner {
            endpoint,
            connection,
            streams,
            next_id: AtomicU64::new(1),
            leader_hint,
            session: Session {
                tenant: String::new(),
                principal: String::new(),
                admin: false,
                role: String::new(),
            },
        };
        let auth = Request::Auth {
            token: cfg.token.clone(),
        };
        let answer =
            tokio::time::timeout(cfg.connect_timeout, send(&inner, Outgoing::Owned(auth))).await;
        match answer {
            Err(_) => Err(no_answer()),
            Ok(Err(ClientError::Server(e))) if e.code == ErrorCode::AuthFailed => {
                Err(ClientError::Auth { message: e.message })
            }
            Ok(Err(e)) => Err(e),
            Ok(Ok(Reply::Authenticated {
                tenant,
                principal,
                admin,
                role,
            })) => {
                inner.session = Session {
                    tenant,
                    principal,
                    admin,
                    role,
                };
                Ok(Client {
                    inner: Arc::new(inner),
                })
            }
            Ok(Ok(other)) => Err(unexpected(other)),
        }
    }

    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// Sends any request and waits for its answer (`ErrorReply` becomes
    /// `ClientError::Server`).
    pub async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        send(&self.inner, Outgoing::Owned(request)).await
    }

    /// In a cluster: where the node that leads is, as named by the latest
    /// answer this node passed on from it (a forwarded request); taken, so
    /// the next call says only what is newer.
    pub fn leader_hint(&self) -> Option<String> {
        self.inner
            .leader_hint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub async fn call(&self, procedure: &str, args: Vec<Value>) -> Result<CallResult, ClientError> {
        call_result(self.request(call_request(procedure, args, None)).await?)
    }

    /// A call with an idempotency key (see PROTOCOL.md): if a call with
    /// this key was applied lately, the answer is the first one's and
    /// nothing is applied again, so a call whose answer was lost may be
    /// sent again with the same key.
    pub async fn call_with_key(
        &self,
        procedure: &str,
        args: Vec<Value>,
        key: &str,
    ) -> Result<CallResult, ClientError> {
        call_result(
            self.request(call_request(procedure, args, Some(key)))
                .await?,
        )
    }

    /// A call stopped (and rolled back) past `timeout_ms` (at least 1),
    /// when that is less than its tenant's time limit for calls.
    pub async fn call_within(
        &self,
        procedure: &str,
        args: Vec<Value>,
        timeout_ms: u64,
    ) -> Result<CallResult, ClientError> {
        let mut request = call_request(procedure, args, None);
        if let Request::Call { timeout_ms: t, .. } = &mut request {
            *t = Some(timeout_ms);
        }
        call_result(self.request(request).await?)
    }

    pub async fn sql(&self, sql: &str) -> Result<Vec<SqlResult>, ClientError> {
        self.sql_with(sql, Vec::new()).await
    }

    /// Runs one statement with the values of its `$1`, `$2`, ... (or `?`s,
    /// in order): values are never spliced into the text.
    pub async fn sql_with(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<SqlResult>, ClientError> {
        self.sql_within(sql, params, None).await
    }

    /// `sql_with`, each statement stopped and rolled back after
    /// `timeout_ms` (None, or more than the tenant's limit: the tenant's
    /// `sql_timeout_ms`).
    pub async fn sql_within(
        &self,
        sql: &str,
        params: Vec<Value>,
        timeout_ms: Option<u64>,
    ) -> Result<Vec<SqlResult>, ClientError> {
        let sql = sql.into();
        let request = Request::Sql {
            sql,
            params,
            timeout_ms,
        };
        sql_result(self.request(request).await?)
    }

    /// Loads one chunk of rows into a table (docs/PROTOCOL.md, `load`):
    /// all of it, but for rows skipped under `max_errors`, or none. With
    /// an idempotency key, a chunk applied before under it is not applied
    /// again (the answer says `again`).
    pub async fn load(&self, load: crate::proto::LoadRequest) -> Result<Loaded, ClientError> {
        loaded_result(self.request(Request::Load(load)).await?)
    }

    /// `load` of a chunk the caller keeps, to send it again (after
    /// `overloaded`, say) without a copy of its rows for each send.
    pub async fn load_shared(&self, load: &SharedLoad) -> Result<Loaded, ClientError> {
        loaded_result(send(&self.inner, Outgoing::Shared(load.0.clone())).await?)
    }

    pub async fn deploy(&self, name: &str, wasm: Vec<u8>) -> Result<Deployed, ClientError> {
        let name = name.to_string();
        deploy_result(self.request(Request::Deploy { name, wasm }).await?)
    }

    /// Removes a module; `false` if there was none of that name.
    pub async fn drop_module(&self, name: &str) -> Result<bool, ClientError> {
        match self
            .request(Request::Drop {
                name: name.to_string(),
            })
            .await?
        {
            Reply::Dropped { existed, .. } => Ok(existed),
            other => Err(unexpected(other)),
        }
    }

    pub async fn catalog(&self) -> Result<CatalogInfo, ClientError> {
        match self.request(Request::Catalog).await? {
            Reply::Catalog(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    pub async fn status(&self) -> Result<StatusInfo, ClientError> {
        status_result(self.request(Request::Status).await?)
    }

    pub async fn create_tenant(&self, name: &str) -> Result<NewTenant, ClientError> {
        tenant_result(self.request(create_tenant_request(name)).await?)
    }

    /// Admin only: `tenant`'s quotas, after setting each of `set` (a
    /// value, or None: back to the node's default).
    pub async fn tenant_quota(
        &self,
        tenant: &str,
        set: &[(String, Option<u64>)],
    ) -> Result<Vec<crate::proto::QuotaValue>, ClientError> {
        quota_result(self.request(quota_request(tenant, set)).await?)
    }

    /// Creates principal `name` of `tenant` (None: this token's own) with
    /// `role` (a caller's `grants`: procedure names, or `*`) and answers
    /// its token. An admin's or the tenant's owner's token.
    pub async fn create_token(
        &self,
        tenant: Option<&str>,
        name: &str,
        role: &str,
        grants: &[String],
    ) -> Result<NewToken, ClientError> {
        token_result(
            self.request(token_create_request(tenant, name, role, grants))
                .await?,
        )
    }

    /// Revokes principal `name` of `tenant` (None: this token's own).
    pub async fn revoke_token(&self, tenant: Option<&str>, name: &str) -> Result<(), ClientError> {
        let request = Request::TokenRevoke {
            tenant: tenant.map(str::to_string),
            name: name.to_string(),
        };
        match self.request(request).await? {
            Reply::Revoked { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The principals of `tenant` (None: this token's own).
    pub async fn tokens(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<crate::proto::PrincipalDesc>, ClientError> {
        let request = Request::Tokens {
            tenant: tenant.map(str::to_string),
        };
        match self.request(request).await? {
            Reply::Principals { principals, .. } => Ok(principals),
            other => Err(unexpected(other)),
        }
    }

    /// Closes the connection (requests in flight fail with `Closed`) and
    /// waits briefly for the node to acknowledge.
    pub async fn close(&self) {
        self.inner
            .connection
            .close(quinn::VarInt::from_u32(0), b"client closed");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.wait_idle()).await;
    }
}

async fn send(inner: &Inner, request: Outgoing) -> Result<Reply, ClientError> {
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let Some(stream) = inner.streams.get(id as usize % inner.streams.len().max(1)) else {
        return Err(ClientError::Config("no streams".into()));
    };
    let (tx, rx) = oneshot::channel();
    {
        let mut waiting = lock(&stream.pending);
        if waiting.ended {
            return Err(closed(&inner.connection));
        }
        waiting.answers.insert(id, tx);
    }
    if stream.queue.send(Queued { id, request }).await.is_err() {
        lock(&stream.pending).answers.remove(&id);
        return Err(closed(&inner.connection));
    }
    match rx.await {
        Ok(answer) => answer.map_err(ClientError::Server),
        Err(_) => Err(closed(&inner.connection)),
    }
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, Waiting> {
    // A panic while holding this lock cannot leave it inconsistent (each
    // holder makes one insert, remove, or sets `ended` and drains), so a
    // poisoned lock is still usable.
    p.lock().unwrap_or_else(|e| e.into_inner())
}

fn closed(connection: &quinn::Connection) -> ClientError {
    match connection.close_reason() {
        Some(e) => connection_error(&e),
        None => ClientError::Closed {
            reason: "the node closed the stream".into(),
        },
    }
}

/// Maps a quinn connection error to what the caller can act on.
fn connection_error(e: &quinn::ConnectionError) -> ClientError {
    use quinn::ConnectionError as E;
    match e {
        E::TransportError(t)
            if t.reason.contains(PIN_MISMATCH) || is_crypto_code(u64::from(t.code)) =>
        {
            ClientError::Certificate {
                message: t.reason.clone(),
            }
        }
        E::ConnectionClosed(c) if is_crypto_code(u64::from(c.error_code)) => {
            ClientError::Certificate {
                message: format!("the node refused the TLS handshake: {c}"),
            }
        }
        E::ApplicationClosed(a) => ClientError::Closed {
            reason: format!(
                "the node closed the connection (code {}): {}",
                a.error_code,
                String::from_utf8_lossy(&a.reason)
            ),
        },
        E::LocallyClosed => ClientError::Closed {
            reason: "closed by this client".into(),
        },
        other => ClientError::Closed {
            reason: other.to_string(),
        },
    }
}

/// QUIC carries TLS alerts as transport codes 0x100..=0x1ff.
fn is_crypto_code(code: u64) -> bool {
    (0x100..=0x1ff).contains(&code)
}

/// Writes the requests of every stream of the connection, in one task
/// (`net::stream_out`: what is queued together leaves together). A
/// stream that fails stops taking requests: dropping its queue fails
/// later sends. What was sent waits for the reader: the node may still
/// answer it (a stopping node stops reading but delivers every answer),
/// and the reader fails the rest as it ends.
async fn writer(mut outs: Vec<(StreamOut<Queued>, Pending)>) {
    std::future::poll_fn(|cx| {
        stream_out::poll_all(
            cx,
            &mut outs,
            |pending, q, buf| encode(q, buf, pending),
            |_, _, _| {},
        );
        if outs.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

fn encode(q: Queued, buf: &mut Vec<u8>, pending: &Pending) {
    if let Err(e @ FrameTooLarge { .. }) = codec::encode_request_parts(q.id, q.request.get(), buf) {
        if let Some(tx) = lock(pending).answers.remove(&q.id) {
            let _ = tx.send(Err(ErrorReply::new(ErrorCode::TooLarge, e.to_string())));
        }
    }
}

/// Answers a stream's reader hands over under one lock of its `pending`
/// (those that arrived together, up to what `READ_AHEAD_BYTES` held).
const ANSWERS_PER_LOCK_MAX: usize = 256;

/// Hands each answer to its request. When the stream ends, the requests
/// still waiting fail: `unavailable` (not applied) if the node finished
/// the stream cleanly (it does so only once it has answered every request
/// it read, as it stops), else `Closed` (their outcome is unknown).
async fn reader(recv: quinn::RecvStream, pending: Pending, leader_hint: LeaderHint) {
    let mut recv = FrameReader::new(recv);
    let mut buf = Vec::new();
    let mut answered = Vec::new();
    let finished = loop {
        match recv.frame_within(&mut buf, FRAME_BYTES_MAX).await {
            Ok(true) => {}
            Ok(false) => break true,
            Err(_) => break false,
        }
        let Ok(frame) = codec::decode_response(&buf) else {
            break false;
        };
        if frame.leader.is_some() {
            *leader_hint.lock().unwrap_or_else(|p| p.into_inner()) = frame.leader;
        }
        answered.push((frame.id, frame.response));
        if !recv.has_frame() || answered.len() >= ANSWERS_PER_LOCK_MAX {
            hand_over(&pending, &mut answered);
        }
    };
    hand_over(&pending, &mut answered);
    let mut waiting = lock(&pending);
    waiting.ended = true;
    for (_, tx) in waiting.answers.drain() {
        if finished {
            let _ = tx.send(Err(ErrorReply::new(
                ErrorCode::Unavailable,
                "the node finished the stream without reading this request (it \
                 answers every request it reads first); it was not applied",
            )));
        }
    }
}

/// Gives each answer to the request waiting for it (one lock for all).
fn hand_over(pending: &Pending, answered: &mut Vec<(u64, Answer)>) {
    if answered.is_empty() {
        return;
    }
    let mut waiting = lock(pending);
    for (id, response) in answered.drain(..) {
        if let Some(tx) = waiting.answers.remove(&id) {
            let _ = tx.send(response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_codes_are_recognised() {
        assert!(is_crypto_code(0x100 + 42));
        assert!(!is_crypto_code(0x0a));
    }
}
