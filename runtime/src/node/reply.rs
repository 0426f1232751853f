//! Turning engine, partition and transaction results and errors into
//! protocol replies (the cores below never name wire types).

use crate::partition::{CallError, CallResult};
use crate::proto::{Column, ErrorCode, ErrorReply, Reply, Rows, SqlResult};
use crate::sql::interrupt::Stopped;
use crate::sql::{QueryResult, RowSet, SqlError};
use crate::txn::TxnError;
use crate::types::NodeId;
use crate::wasm::{DeployError, ProcError, ProcOutput};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The answer to a request, handed to whoever waits for it (a callback, so
/// this module needs no async runtime). Called exactly once.
pub type ReplyFn = Box<dyn FnOnce(Result<Reply, ErrorReply>) + Send>;

/// Where clients reach each node of the cluster (empty on a lone node), so
/// a `not_leader` answer can say where to go.
pub type ClientAddrs = Arc<BTreeMap<NodeId, SocketAddr>>;

pub fn rows(set: RowSet) -> Rows {
    Rows {
        columns: set
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                ty: c.ty.map(|t| t.to_string()),
            })
            .collect(),
        rows: set.rows,
    }
}

pub fn output(out: ProcOutput) -> Reply {
    match out {
        ProcOutput::Value(v) => Reply::Value(v),
        ProcOutput::Rows(r) => Reply::Rows(rows(r)),
    }
}

pub fn sql_result(r: QueryResult) -> SqlResult {
    match r {
        QueryResult::Rows(set) => SqlResult::Rows(rows(set)),
        QueryResult::Affected(n) => SqlResult::Affected(n),
        QueryResult::Done(tag) => SqlResult::Done(tag.to_string()),
    }
}

pub fn sql_error(e: &SqlError) -> ErrorReply {
    let code = match e {
        SqlError::Unsupported(_) => ErrorCode::NotSupported,
        SqlError::Stopped(Stopped::Shutdown) => ErrorCode::Unavailable,
        SqlError::Stopped(_) => ErrorCode::Timeout,
        _ => ErrorCode::Sql,
    };
    ErrorReply::new(code, e.to_string())
}

pub fn proc_error(e: &ProcError) -> ErrorReply {
    let code = match e {
        ProcError::UnknownProcedure { .. } => ErrorCode::UnknownProcedure,
        ProcError::BadArguments { .. } => ErrorCode::BadArguments,
        ProcError::Aborted { .. } => ErrorCode::Aborted,
        ProcError::Sql { .. } => ErrorCode::Sql,
        ProcError::OutOfFuel { .. }
        | ProcError::MemoryLimit { .. }
        | ProcError::StackOverflow { .. }
        | ProcError::Limit { .. } => ErrorCode::Limit,
        ProcError::Panicked { .. } | ProcError::Trap { .. } | ProcError::Abi { .. } => {
            ErrorCode::Trap
        }
        ProcError::Stopped {
            why: Stopped::Shutdown,
            ..
        } => ErrorCode::Unavailable,
        ProcError::Stopped { .. } => ErrorCode::Timeout,
        _ => ErrorCode::Internal,
    };
    ErrorReply::new(code, e.to_string())
}

pub fn deploy_error(e: &DeployError) -> ErrorReply {
    ErrorReply::new(ErrorCode::Deploy, e.to_string())
}

pub fn internal(what: impl std::fmt::Display) -> ErrorReply {
    ErrorReply::new(ErrorCode::Internal, format!("internal error: {what}"))
}

/// A partition's answer to a call.
pub fn call_result(r: CallResult, addrs: &ClientAddrs) -> Result<Reply, ErrorReply> {
    r.map(output).map_err(|e| call_error(&e, addrs))
}

pub fn call_error(e: &CallError, addrs: &ClientAddrs) -> ErrorReply {
    match e {
        CallError::NotLeader { leader } => {
            let at = leader.and_then(|l| addrs.get(&l)).map(|a| a.to_string());
            let message = match (leader, &at) {
                (Some(l), Some(a)) => format!("this node does not lead the partition; node {} does, at {a}: retry there (nothing was done)", l.0),
                _ => "this node does not lead the partition and knows no leader yet (an election is under way): retry shortly (nothing was done)".to_string(),
            };
            ErrorReply::not_leader(message, at)
        }
        CallError::Proc(p) => proc_error(p),
        CallError::TooLarge { .. } => ErrorReply::new(ErrorCode::TooLarge, e.to_string()),
        CallError::WrongPartition { .. } => {
            ErrorReply::new(ErrorCode::WrongPartition, e.to_string())
        }
        CallError::Quota { .. } => ErrorReply::new(ErrorCode::QuotaExceeded, e.to_string()),
        CallError::Internal { .. } => ErrorReply::new(ErrorCode::Internal, e.to_string()),
        CallError::Overloaded(_) => ErrorReply::new(ErrorCode::Overloaded, e.to_string()),
        CallError::DiskFull { .. } => ErrorReply::new(ErrorCode::DiskFull, e.to_string()),
        CallError::AnswerNotKept { .. } => {
            ErrorReply::new(ErrorCode::AlreadyApplied, e.to_string())
        }
        CallError::OutcomeUnknown | CallError::Stopped { .. } | CallError::InDoubt { .. } => {
            ErrorReply::new(ErrorCode::Unavailable, e.to_string())
        }
    }
}

pub fn txn_error(e: &TxnError) -> ErrorReply {
    let code = match e {
        TxnError::Sql(_) => ErrorCode::Sql,
        TxnError::NotSupported(_) => ErrorCode::NotSupported,
        TxnError::TooLarge(_) => ErrorCode::TooLarge,
        TxnError::Quota(_) => ErrorCode::QuotaExceeded,
        TxnError::UnknownProcedure(_) => ErrorCode::UnknownProcedure,
        TxnError::Proc(p) => return proc_error(p),
        TxnError::Deploy(d) => return deploy_error(d),
        _ => ErrorCode::Internal,
    };
    ErrorReply::new(code, e.to_string())
}
