//! STUB of the Rust client (`ohm::driver`), written on branch wip-cli only so
//! the command-line tools compile against the agreed contract before the
//! real client (branch wip-net) lands. Every network call fails with
//! `ClientError::Config`. Merging wip-net replaces this file wholesale.

use crate::proto::{self, ErrorReply};
use crate::types::Value;
use std::path::PathBuf;

/// Where to connect and how to trust and authenticate.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`.
    pub addr: String,
    /// The name the certificate must carry (`localhost` for a local node).
    pub server_name: String,
    pub trust: Trust,
    pub token: String,
    /// QUIC streams the client spreads its requests over.
    pub streams: usize,
}

/// How the client decides to trust the node's certificate.
#[derive(Debug, Clone)]
pub enum Trust {
    CaFile(PathBuf),
    CaPem(Vec<u8>),
    /// `sha256:<hex>` of the node's certificate.
    Fingerprint(String),
}

/// Who the token authenticated as.
#[derive(Debug, Clone)]
pub struct Session {
    pub tenant: String,
    pub principal: String,
    pub admin: bool,
}

/// A procedure's answer.
#[derive(Debug, Clone)]
pub enum CallResult {
    Value(Value),
    Rows(proto::Rows),
}

/// A deployed module and its procedures.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub module: String,
    pub procedures: Vec<String>,
    pub replaced: bool,
}

/// A new tenant and the token of its first principal.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub tenant: String,
    pub principal: String,
    pub token: String,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("the node's certificate is not trusted: {reason}")]
    Certificate { reason: String },
    #[error("authentication failed: {message}")]
    Auth { message: String },
    #[error("{0}")]
    Server(ErrorReply),
    #[error("connection closed: {reason}")]
    Closed { reason: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("{0}")]
    Config(String),
}

/// A connection to one node (stub).
#[derive(Debug, Clone)]
pub struct Client {
    session: Session,
}

fn not_built<T>() -> Result<T, ClientError> {
    Err(ClientError::Config(
        "this build has no QUIC client yet (it arrives with branch wip-net)".into(),
    ))
}

impl Client {
    pub async fn connect(_cfg: ClientConfig) -> Result<Client, ClientError> {
        not_built()
    }
    pub fn session(&self) -> &Session {
        &self.session
    }
    pub async fn call(
        &self,
        _procedure: &str,
        _args: Vec<Value>,
    ) -> Result<CallResult, ClientError> {
        not_built()
    }
    pub async fn sql(&self, _sql: &str) -> Result<Vec<proto::SqlResult>, ClientError> {
        not_built()
    }
    pub async fn deploy(&self, _name: &str, _wasm: Vec<u8>) -> Result<Deployed, ClientError> {
        not_built()
    }
    pub async fn drop_module(&self, _name: &str) -> Result<bool, ClientError> {
        not_built()
    }
    pub async fn catalog(&self) -> Result<proto::CatalogInfo, ClientError> {
        not_built()
    }
    pub async fn status(&self) -> Result<proto::StatusInfo, ClientError> {
        not_built()
    }
    pub async fn create_tenant(&self, _name: &str) -> Result<NewTenant, ClientError> {
        not_built()
    }
}
