//! The client protocol's messages, as Rust types: what a client may ask
//! (`Request`) and what the node answers (`Response`). The bytes on the wire
//! (MessagePack maps inside length-prefixed frames on QUIC streams) are
//! defined in `codec.rs` and documented in docs/PROTOCOL.md; this file is
//! the one definition both the node and the Rust client use.
//!
//! Values travel as MessagePack nil/bool/int/float/str/bin. A DECIMAL goes
//! as its decimal string and a TIMESTAMP as integer microseconds since the
//! Unix epoch; result columns carry their SQL type so a client can tell.

pub mod codec;

use crate::types::Value;

/// ALPN protocol id: a connection that does not offer it is refused.
pub const ALPN: &[u8] = b"ohm/1";
/// Largest frame body either side accepts (a 32 MiB module plus headroom).
pub const FRAME_BYTES_MAX: usize = 40 << 20;
/// Requests a connection may have in flight before the node stops reading
/// its streams (backpressure, not an error).
pub const IN_FLIGHT_PER_CONNECTION_MAX: usize = 4096;

/// A request and the id its response will carry (chosen by the client,
/// unique among its requests in flight on the connection).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFrame {
    pub id: u64,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Must succeed before anything else on the connection.
    Auth { token: String },
    /// Run a deployed procedure in its own transaction. With an
    /// idempotency `key`, a call the partition already applied under that
    /// key (recently: see PROTOCOL.md) is answered as the first time and
    /// not run again.
    Call {
        procedure: String,
        args: Vec<Value>,
        key: Option<String>,
        /// The call's time limit, if less than the tenant's
        /// (`call_timeout_ms`).
        timeout_ms: Option<u64>,
    },
    /// Ad-hoc SQL: one or more statements separated by `;`, each in its own
    /// transaction (autocommit). One result per statement. `params` are the
    /// values of `$1`, `$2`, ... (or `?`s in order); a request with params
    /// has exactly one statement. `timeout_ms`: each statement's time
    /// limit, if less than the tenant's (`sql_timeout_ms`).
    Sql {
        sql: String,
        params: Vec<Value>,
        timeout_ms: Option<u64>,
    },
    /// Bulk load: rows for one table, applied all or nothing (but for
    /// rows skipped under `max_errors`), one log record per partition.
    Load(LoadRequest),
    /// Deploy (or atomically replace) a procedure module.
    Deploy { name: String, wasm: Vec<u8> },
    /// Remove a module and its procedures.
    Drop { name: String },
    /// The tenant's tables and procedures.
    Catalog,
    /// The node's state and counters.
    Status,
    /// The certificate chain the node presents (DER, end-entity first).
    /// Answered before `auth`: a client that pins a fingerprint but whose
    /// TLS library cannot show it the handshake's certificate fetches it,
    /// checks its fingerprint, and connects again trusting only it.
    Certificate,
    /// Admin principals only: create a tenant and its first principal.
    CreateTenant { name: String },
    /// Admin principals only: a tenant's quotas, after setting each of
    /// `set` (a value, or None: back to the node's default).
    TenantQuota {
        tenant: String,
        set: Vec<(String, Option<u64>)>,
    },
    /// Create principal `name` with `role` (a caller's `grants`: the
    /// procedures it may call, or `*`) and answer its token. `tenant`: the
    /// tenant's name, for an admin; a tenant's owner names none (its own).
    TokenCreate {
        tenant: Option<String>,
        name: String,
        role: String,
        grants: Vec<String>,
    },
    /// Revoke principal `name`: its token is refused from then on, also on
    /// connections it already opened.
    TokenRevoke {
        tenant: Option<String>,
        name: String,
    },
    /// A tenant's principals and their roles (never their tokens).
    Tokens { tenant: Option<String> },
}

/// Quota changes one `tenant_quota` request may carry.
pub const QUOTA_CHANGES_MAX: usize = 64;

/// One of a tenant's quotas, as `tenant_quota` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaValue {
    pub name: String,
    pub value: u64,
    /// An administrator set it for this tenant (false: the node's default).
    pub set: bool,
}

/// What the node answers to a request with this id.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseFrame {
    pub id: u64,
    pub response: Result<Reply, ErrorReply>,
    /// In a cluster: this node passed the request to the node that leads,
    /// which clients reach here (send there next time).
    pub leader: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Authenticated {
        tenant: String,
        principal: String,
        admin: bool,
        /// The principal's role (`admin`, `owner`, `deployer`, `caller`,
        /// `reader`).
        role: String,
    },
    /// A procedure's single value (NULL for a procedure that returns nothing).
    Value(Value),
    /// A procedure's rows.
    Rows(Rows),
    /// One result per SQL statement, in order.
    Sql(Vec<SqlResult>),
    Deployed {
        module: String,
        procedures: Vec<String>,
        replaced: bool,
        /// What the deploy warns of (it deployed anyway): statements a
        /// single-partition call could not run (docs/PROTOCOL.md).
        warnings: Vec<String>,
    },
    Dropped {
        module: String,
        existed: bool,
    },
    Catalog(CatalogInfo),
    Status(StatusInfo),
    TenantCreated {
        tenant: String,
        principal: String,
        token: String,
    },
    /// A tenant's quotas (every one, in a fixed order).
    Quota {
        tenant: String,
        quota: Vec<QuotaValue>,
    },
    /// A principal created, and its token (the only time it is shown).
    Token {
        tenant: String,
        principal: PrincipalDesc,
        token: String,
    },
    /// What a `load` did.
    Loaded(Loaded),
    /// A principal revoked.
    Revoked {
        tenant: String,
        principal: String,
    },
    /// A tenant's principals, by name.
    Principals {
        tenant: String,
        principals: Vec<PrincipalDesc>,
    },
    /// The node's certificate chain (DER, end-entity first).
    Certificate {
        chain: Vec<Vec<u8>>,
    },
}

/// `load`: one chunk of rows for one table. The node routes each row to
/// the partition that owns it and applies the chunk in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRequest {
    pub table: String,
    /// The columns each row gives, in order; empty: every column of the
    /// table, in table order.
    pub columns: Vec<String>,
    /// Values as the wire sends them, retyped by each column's type (as
    /// call arguments are by their parameters').
    pub rows: Vec<Vec<Value>>,
    /// Idempotency key: a chunk already applied under it is answered as
    /// the first time and not applied again.
    pub key: Option<String>,
    /// Rows that may fail (and are skipped, each reported) before the
    /// whole chunk is refused.
    pub max_errors: u64,
    /// The chunk's time limit, if less than the tenant's `sql_timeout_ms`.
    pub timeout_ms: Option<u64>,
}

/// Rows one `load` request may carry.
pub const LOAD_ROWS_MAX: usize = 1 << 20;

/// What a `load` did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Loaded {
    /// Rows inserted.
    pub loaded: u64,
    /// Rows skipped, each with why (at most `max_errors` of them).
    pub rejected: Vec<RejectedRow>,
    /// The chunk was applied before under this key: this is that answer.
    pub again: bool,
}

/// A row a `load` could not insert.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    /// Its place in the request's `rows`, from 1.
    pub row: u64,
    /// The column at fault, when one is.
    pub column: Option<String>,
    pub message: String,
}

/// A principal's name and role, and a caller's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalDesc {
    pub name: String,
    pub role: String,
    pub grants: Vec<String>,
}

/// A result column: its name and SQL type name (`BIGINT`, `VARCHAR(2)`,
/// `DECIMAL(10,2)`, `TIMESTAMP`, ...; None when unknown, e.g. a bare NULL).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SqlResult {
    Rows(Rows),
    /// INSERT / UPDATE / DELETE: rows affected.
    Affected(u64),
    /// DDL and the like: what was done ("CREATE TABLE").
    Done(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CatalogInfo {
    pub tenant: String,
    pub tables: Vec<TableInfo>,
    pub procedures: Vec<ProcedureInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub name: String,
    /// (name, SQL type, nullable)
    pub columns: Vec<(String, String, bool)>,
    pub primary_key: Vec<String>,
    /// None: replicated to every partition.
    pub partition_column: Option<String>,
    /// Rows across all partitions.
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcedureInfo {
    pub name: String,
    pub module: String,
    /// (name, SQL type)
    pub params: Vec<(String, String)>,
    /// "table.column" and the parameter index, or None for multi-partition.
    pub partition: Option<(String, u32)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusInfo {
    pub version: String,
    pub node_id: u64,
    pub uptime_ms: u64,
    /// "sync" or "async".
    pub durability: String,
    pub connections: u64,
    pub partitions: Vec<PartitionStatus>,
    /// In a cluster: this node's links to the other nodes (empty on a
    /// lone node).
    pub peers: Vec<PeerLink>,
}

/// A node's link to another node of its cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerLink {
    pub node: u32,
    /// Where it is dialed (`ip:port`).
    pub addr: String,
    /// Our link to it is up.
    pub connected: bool,
    /// Why the link last failed, if it has.
    pub last_error: Option<String>,
}

/// A replica of a partition as its leader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStatus {
    pub node: u32,
    /// The slot up to which its log matches the leader's (reported by the
    /// leader only; None elsewhere).
    pub matched: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PartitionStatus {
    pub id: u32,
    /// Transactions committed since start (this partition's share).
    pub committed: u64,
    /// Calls that failed (rolled back) since start.
    pub failed: u64,
    /// Requests waiting in the executor's queue now.
    pub queued: u64,
    /// Last log sequence number made durable.
    pub durable_lsn: u64,
    /// Bytes of log since the last snapshot.
    pub log_bytes: u64,
    /// Rows held for this tenant on this partition.
    pub rows: u64,
    /// "leader", "follower" or "candidate" ("leader" on a lone node).
    pub role: String,
    /// The node leading this partition as this replica knows (0: unknown).
    pub leader: u32,
    /// The highest slot applied to this replica's state.
    pub applied: u64,
    /// Every replica of the partition (one, itself, on a lone node).
    pub replicas: Vec<ReplicaStatus>,
    /// This replica's disk has no room for its log: writes are refused
    /// (`disk_full`) until it has.
    pub disk_full: bool,
}

/// A typed error: `code` is stable (clients branch on it), `message` says
/// what was wrong and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
    /// With `not_leader`: where clients reach the node that leads (when
    /// this node knows), as `ip:port`.
    pub leader: Option<String>,
}

/// Error codes on the wire, as snake_case strings (`ErrorCode::name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Frame or request not understood (the stream is closed after it).
    BadRequest,
    /// Request before a successful `auth`.
    Unauthenticated,
    /// Wrong token.
    AuthFailed,
    /// The principal may not do this (e.g. create_tenant as a non-admin).
    Forbidden,
    UnknownProcedure,
    BadArguments,
    /// The procedure called abort().
    Aborted,
    /// A statement failed (constraint, type, ...): `message` says which.
    Sql,
    /// A Wasm call hit a sandbox limit (fuel, memory, stack, rows, bytes,
    /// statements) or trapped.
    Limit,
    Trap,
    /// A module was refused at deploy.
    Deploy,
    /// A frame over `FRAME_BYTES_MAX`, or a result over the reply limit.
    TooLarge,
    /// The node's queues are full; retry later.
    Overloaded,
    NotSupported,
    /// The node is stopping, or a log write failed: the request was not
    /// applied (for a failed log write: the node stops).
    Unavailable,
    Internal,
    /// A call with this idempotency key was applied before, and its
    /// answer was too big to keep: nothing was done this time.
    AlreadyApplied,
    /// This node does not lead what the request needs (a partition, or
    /// every partition for multi-partition work): nothing was done; retry
    /// at `leader`.
    NotLeader,
    /// A single-partition call wrote a row its partition does not own, or
    /// a replicated table: rolled back.
    WrongPartition,
    /// The tenant is at one of its quotas (the message names it): nothing
    /// was done.
    QuotaExceeded,
    /// A statement or call ran past its time limit (the message names it)
    /// and was rolled back.
    Timeout,
    /// The partition's disk is full: the request would write, and was
    /// refused (nothing was done); reads go on. Retry once there is room.
    DiskFull,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthenticated,
        ErrorCode::AuthFailed,
        ErrorCode::Forbidden,
        ErrorCode::UnknownProcedure,
        ErrorCode::BadArguments,
        ErrorCode::Aborted,
        ErrorCode::Sql,
        ErrorCode::Limit,
        ErrorCode::Trap,
        ErrorCode::Deploy,
        ErrorCode::TooLarge,
        ErrorCode::Overloaded,
        ErrorCode::NotSupported,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::NotLeader,
        ErrorCode::AlreadyApplied,
        ErrorCode::WrongPartition,
        ErrorCode::QuotaExceeded,
        ErrorCode::Timeout,
        ErrorCode::DiskFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownProcedure => "unknown_procedure",
            ErrorCode::BadArguments => "bad_arguments",
            ErrorCode::Aborted => "aborted",
            ErrorCode::Sql => "sql",
            ErrorCode::Limit => "limit",
            ErrorCode::Trap => "trap",
            ErrorCode::Deploy => "deploy",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::NotSupported => "not_supported",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::AlreadyApplied => "already_applied",
            ErrorCode::WrongPartition => "wrong_partition",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Timeout => "timeout",
            ErrorCode::DiskFull => "disk_full",
        }
    }

    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl ErrorReply {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            code,
            message: message.into(),
            leader: None,
        }
    }

    /// `not_leader`, naming where the leader is when known.
    pub fn not_leader(message: impl Into<String>, leader: Option<String>) -> ErrorReply {
        ErrorReply {
            code: ErrorCode::NotLeader,
            message: message.into(),
            leader,
        }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorReply {}
