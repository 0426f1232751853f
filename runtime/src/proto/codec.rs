//! The wire format of `proto` (documented for strangers in docs/PROTOCOL.md).
//!
//! A frame is a 4-byte big-endian body length followed by a MessagePack
//! body: a map with string keys. Requests carry `id`, `op` and the op's
//! fields; responses carry `id` and either `ok` (a reply map with a `kind`)
//! or `error` (`code`, `message`).
//!
//! Owns: encoding and decoding bodies, by hand with `rmp` (the call path
//! runs at hundreds of thousands of frames per second, so no serde, no
//! intermediate value tree). Must not: do I/O, or trust a length, a type or
//! a nesting depth it reads (see `read.rs`). Unknown map keys are skipped so
//! newer peers can add fields.
//!
//! `encode_*` append a whole frame (prefix and body) to a buffer, so a
//! writer can coalesce many frames into one write; `decode_*` take one body
//! (the prefix has been read by `net::frame`).

mod read;
mod reply;
#[cfg(test)]
mod tests;

pub use read::{DecodeError, DEPTH_MAX, ITEMS_MAX};

use super::{ErrorCode, ErrorReply, Request, RequestFrame, ResponseFrame, FRAME_BYTES_MAX};
use crate::types::Value;
use read::{Reader, Result};

/// Length of the frame prefix.
pub const PREFIX_BYTES: usize = 4;

/// An encoded body over `FRAME_BYTES_MAX`; nothing was appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message of {bytes} bytes is over the frame limit of {FRAME_BYTES_MAX} bytes")]
pub struct FrameTooLarge {
    pub bytes: usize,
}

/// The request ops, as named on the wire.
pub const OPS: [&str; 14] = [
    "auth",
    "call",
    "sql",
    "load",
    "deploy",
    "drop",
    "catalog",
    "status",
    "create_tenant",
    "tenant_quota",
    "token_create",
    "token_revoke",
    "tokens",
    "certificate",
];

/// Appends one request frame to `out`.
pub fn encode_request(
    frame: &RequestFrame,
    out: &mut Vec<u8>,
) -> std::result::Result<(), FrameTooLarge> {
    encode_request_parts(frame.id, &frame.request, out)
}

/// `encode_request` of request `id` (a client that keeps its requests
/// for a retry need not copy them into a frame).
pub fn encode_request_parts(
    id: u64,
    request: &Request,
    out: &mut Vec<u8>,
) -> std::result::Result<(), FrameTooLarge> {
    framed(out, |out| {
        let (op, fields) = match request {
            Request::Auth { .. } => ("auth", 1),
            Request::Call {
                key, timeout_ms, ..
            } => (
                "call",
                2 + usize::from(key.is_some()) + usize::from(timeout_ms.is_some()),
            ),
            Request::Sql {
                params, timeout_ms, ..
            } => (
                "sql",
                1 + usize::from(!params.is_empty()) + usize::from(timeout_ms.is_some()),
            ),
            Request::Load(l) => (
                "load",
                2 + usize::from(!l.columns.is_empty())
                    + usize::from(l.key.is_some())
                    + usize::from(l.max_errors > 0)
                    + usize::from(l.timeout_ms.is_some()),
            ),
            Request::Deploy { .. } => ("deploy", 2),
            Request::Drop { .. } => ("drop", 1),
            Request::Catalog => ("catalog", 0),
            Request::Status => ("status", 0),
            Request::Certificate => ("certificate", 0),
            Request::CreateTenant { .. } => ("create_tenant", 1),
            Request::TenantQuota { .. } => ("tenant_quota", 2),
            Request::TokenCreate { tenant, grants, .. } => (
                "token_create",
                2 + usize::from(tenant.is_some()) + usize::from(!grants.is_empty()),
            ),
            Request::TokenRevoke { tenant, .. } => {
                ("token_revoke", 1 + usize::from(tenant.is_some()))
            }
            Request::Tokens { tenant } => ("tokens", usize::from(tenant.is_some())),
        };
        w::map(out, 2 + fields);
        w::str(out, "id");
        w::uint(out, id);
        w::str(out, "op");
        w::str(out, op);
        match request {
            Request::Auth { token } => w::kv_str(out, "token", token),
            Request::Call {
                procedure,
                args,
                key,
                timeout_ms,
            } => {
                w::kv_str(out, "procedure", procedure);
                w::str(out, "args");
                w::array(out, args.len());
                args.iter().for_each(|v| w::value(out, v));
                if let Some(k) = key {
                    w::kv_str(out, "key", k);
                }
                if let Some(t) = timeout_ms {
                    w::kv_uint(out, "timeout_ms", *t);
                }
            }
            Request::Sql {
                sql,
                params,
                timeout_ms,
            } => {
                w::kv_str(out, "sql", sql);
                if !params.is_empty() {
                    w::str(out, "params");
                    w::array(out, params.len());
                    params.iter().for_each(|v| w::value(out, v));
                }
                if let Some(t) = timeout_ms {
                    w::kv_uint(out, "timeout_ms", *t);
                }
            }
            Request::Load(l) => {
                w::kv_str(out, "table", &l.table);
                if !l.columns.is_empty() {
                    w::str(out, "columns");
                    w::array(out, l.columns.len());
                    l.columns.iter().for_each(|c| w::str(out, c));
                }
                w::str(out, "rows");
                w::array(out, l.rows.len());
                for row in &l.rows {
                    w::array(out, row.len());
                    row.iter().for_each(|v| w::value(out, v));
                }
                if let Some(k) = &l.key {
                    w::kv_str(out, "key", k);
                }
                if l.max_errors > 0 {
                    w::kv_uint(out, "max_errors", l.max_errors);
                }
                if let Some(t) = l.timeout_ms {
                    w::kv_uint(out, "timeout_ms", t);
                }
            }
            Request::Deploy { name, wasm } => {
                w::kv_str(out, "name", name);
                w::str(out, "wasm");
                w::bin(out, wasm);
            }
            Request::Drop { name } | Request::CreateTenant { name } => w::kv_str(out, "name", name),
            Request::Catalog | Request::Status | Request::Certificate => {}
            Request::TenantQuota { tenant, set } => {
                w::kv_str(out, "name", tenant);
                w::str(out, "set");
                w::map(out, set.len());
                for (name, value) in set {
                    w::str(out, name);
                    match value {
                        Some(v) => w::uint(out, *v),
                        None => w::nil(out),
                    }
                }
            }
            Request::TokenCreate {
                tenant,
                name,
                role,
                grants,
            } => {
                if let Some(t) = tenant {
                    w::kv_str(out, "tenant", t);
                }
                w::kv_str(out, "name", name);
                w::kv_str(out, "role", role);
                if !grants.is_empty() {
                    w::str(out, "grants");
                    w::array(out, grants.len());
                    grants.iter().for_each(|g| w::str(out, g));
                }
            }
            Request::TokenRevoke { tenant, name } => {
                if let Some(t) = tenant {
                    w::kv_str(out, "tenant", t);
                }
                w::kv_str(out, "name", name);
            }
            Request::Tokens { tenant } => {
                if let Some(t) = tenant {
                    w::kv_str(out, "tenant", t);
                }
            }
        }
    })
}

/// Decodes one request body. On error, `DecodeError::id` holds the request
/// id if the body had a readable one.
pub fn decode_request(body: &[u8]) -> std::result::Result<RequestFrame, DecodeError> {
    request(body).map_err(|mut e| {
        e.id = peek_id(body);
        e
    })
}

fn request(body: &[u8]) -> Result<RequestFrame> {
    let mut r = Reader::new(body);
    let (mut id, mut op, mut token, mut procedure, mut args) = (None, None, None, None, None);
    let (mut sql, mut name, mut wasm, mut key) = (None, None, None, None);
    let (mut params, mut set, mut timeout_ms) = (None, None, None);
    let (mut tenant, mut role, mut grants) = (None, None, None);
    let (mut table, mut columns, mut rows, mut max_errors) = (None, None, None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "id" => id = Some(field(&mut r, "id", Reader::uint)?),
            "op" => op = Some(field(&mut r, "op", Reader::str)?),
            "token" => token = Some(field(&mut r, "token", Reader::str)?),
            "procedure" => procedure = Some(field(&mut r, "procedure", Reader::str)?),
            "args" => args = Some(field(&mut r, "args", values)?),
            "sql" => sql = Some(field(&mut r, "sql", Reader::str)?),
            "params" => params = Some(field(&mut r, "params", values)?),
            "name" => name = Some(field(&mut r, "name", Reader::str)?),
            "wasm" => wasm = Some(field(&mut r, "wasm", Reader::bin)?),
            "key" => key = Some(field(&mut r, "key", Reader::str)?),
            "set" => set = Some(field(&mut r, "set", quota_changes)?),
            "timeout_ms" => timeout_ms = Some(field(&mut r, "timeout_ms", time_limit)?),
            "tenant" => tenant = Some(field(&mut r, "tenant", Reader::str)?),
            "role" => role = Some(field(&mut r, "role", Reader::str)?),
            "grants" => grants = Some(field(&mut r, "grants", grant_list)?),
            "table" => table = Some(field(&mut r, "table", Reader::str)?),
            "columns" => columns = Some(field(&mut r, "columns", column_list)?),
            "rows" => rows = Some(field(&mut r, "rows", load_rows)?),
            "max_errors" => max_errors = Some(field(&mut r, "max_errors", Reader::uint)?),
            _ => r.skip(1)?,
        }
    }
    r.finish()?;
    let id = required(id, "id", "every request")?;
    let op = required(op, "op", "every request")?;
    let request = match op {
        "auth" => Request::Auth {
            token: required(token, "token", "op \"auth\"")?.to_string(),
        },
        "call" => Request::Call {
            procedure: required(procedure, "procedure", "op \"call\"")?.to_string(),
            args: args.unwrap_or_default(),
            key: key.map(idempotency_key).transpose()?,
            timeout_ms,
        },
        "sql" => Request::Sql {
            sql: required(sql, "sql", "op \"sql\"")?.to_string(),
            params: params.unwrap_or_default(),
            timeout_ms,
        },
        "load" => Request::Load(crate::proto::LoadRequest {
            table: required(table, "table", "op \"load\"")?.to_string(),
            columns: columns.unwrap_or_default(),
            rows: required(rows, "rows", "op \"load\"")?,
            key: key.map(idempotency_key).transpose()?,
            max_errors: max_errors.unwrap_or(0),
            timeout_ms,
        }),
        "deploy" => Request::Deploy {
            name: required(name, "name", "op \"deploy\"")?.to_string(),
            wasm: required(wasm, "wasm", "op \"deploy\"")?.to_vec(),
        },
        "drop" => Request::Drop {
            name: required(name, "name", "op \"drop\"")?.to_string(),
        },
        "catalog" => Request::Catalog,
        "status" => Request::Status,
        "certificate" => Request::Certificate,
        "create_tenant" => Request::CreateTenant {
            name: required(name, "name", "op \"create_tenant\"")?.to_string(),
        },
        "tenant_quota" => Request::TenantQuota {
            tenant: required(name, "name", "op \"tenant_quota\"")?.to_string(),
            set: set.unwrap_or_default(),
        },
        "token_create" => Request::TokenCreate {
            tenant: tenant.map(str::to_string),
            name: required(name, "name", "op \"token_create\"")?.to_string(),
            role: required(role, "role", "op \"token_create\"")?.to_string(),
            grants: grants.unwrap_or_default(),
        },
        "token_revoke" => Request::TokenRevoke {
            tenant: tenant.map(str::to_string),
            name: required(name, "name", "op \"token_revoke\"")?.to_string(),
        },
        "tokens" => Request::Tokens {
            tenant: tenant.map(str::to_string),
        },
        other => {
            return Err(DecodeError::new(format!(
                "unknown op {other:?} (expected one of {})",
                OPS.join(", ")
            ))
            .at("op"))
        }
    };
    Ok(RequestFrame { id, request })
}

/// The top-level `id` of a frame's body (one that failed to decode, or
/// only its first bytes), if it can be read before any field cut short.
pub fn peek_id(body: &[u8]) -> Option<u64> {
    let mut r = Reader::new(body).find_key("id").ok()??;
    r.uint().ok()
}

/// Appends one response frame to `out`.
pub fn encode_response(
    frame: &ResponseFrame,
    out: &mut Vec<u8>,
) -> std::result::Result<(), FrameTooLarge> {
    framed(out, |out| {
        w::map(out, if frame.leader.is_some() { 3 } else { 2 });
        w::str(out, "id");
        w::uint(out, frame.id);
        if let Some(l) = &frame.leader {
            w::kv_str(out, "leader", l);
        }
        match &frame.response {
            Ok(reply) => {
                w::str(out, "ok");
                reply::encode(out, reply);
            }
            Err(e) => {
                w::str(out, "error");
                w::map(out, if e.leader.is_some() { 3 } else { 2 });
                w::kv_str(out, "code", e.code.name());
                w::kv_str(out, "message", &e.message);
                if let Some(l) = &e.leader {
                    w::kv_str(out, "leader", l);
                }
            }
        }
    })
}

/// Decodes one response body. An error code this build does not know is
/// kept readable as `internal` with the code in the message.
pub fn decode_response(body: &[u8]) -> std::result::Result<ResponseFrame, DecodeError> {
    response(body).map_err(|mut e| {
        e.id = peek_id(body);
        e
    })
}

fn response(body: &[u8]) -> Result<ResponseFrame> {
    let mut r = Reader::new(body);
    let (mut id, mut ok, mut error, mut leader) = (None, None, None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "id" => id = Some(field(&mut r, "id", Reader::uint)?),
            "leader" => leader = Some(field(&mut r, "leader", Reader::str)?.to_string()),
            "ok" => ok = Some(field(&mut r, "ok", reply::decode)?),
            "error" => error = Some(field(&mut r, "error", error_reply)?),
            _ => r.skip(1)?,
        }
    }
    r.finish()?;
    let id = required(id, "id", "every response")?;
    let response = match (ok, error) {
        (Some(reply), None) => Ok(reply),
        (None, Some(e)) => Err(e),
        (Some(_), Some(_)) => return Err(DecodeError::new("both `ok` and `error` present")),
        (None, None) => return Err(DecodeError::new("missing field `ok` or `error`")),
    };
    Ok(ResponseFrame {
        id,
        response,
        leader,
    })
}

fn error_reply(r: &mut Reader) -> Result<ErrorReply> {
    let (mut code, mut message, mut leader) = (None, None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "code" => code = Some(field(r, "code", Reader::str)?),
            "message" => message = Some(field(r, "message", Reader::str)?),
            "leader" => leader = Some(field(r, "leader", Reader::str)?.to_string()),
            _ => r.skip(1)?,
        }
    }
    let code = required(code, "code", "an error")?;
    let message = required(message, "message", "an error")?;
    let mut e = match ErrorCode::from_name(code) {
        Some(code) => ErrorReply::new(code, message),
        None => ErrorReply::new(ErrorCode::Internal, format!("[{code}] {message}")),
    };
    e.leader = leader;
    Ok(e)
}

/// Reads a field's value, naming the field in any error.
fn field<'a, T>(
    r: &mut Reader<'a>,
    name: &str,
    f: impl FnOnce(&mut Reader<'a>) -> Result<T>,
) -> Result<T> {
    f(r).map_err(|e| e.at(name))
}

/// A call's idempotency key: 1 to `KEY_BYTES_MAX` bytes.
fn idempotency_key(k: &str) -> Result<String> {
    let max = crate::partition::kept::KEY_BYTES_MAX;
    if k.is_empty() || k.len() > max {
        return Err(DecodeError::new(format!(
            "field `key` is {} bytes; an idempotency key takes 1 to {max}",
            k.len()
        )));
    }
    Ok(k.to_string())
}

fn required<T>(v: Option<T>, name: &str, by: &str) -> Result<T> {
    v.ok_or_else(|| DecodeError::new(format!("missing field `{name}` (required by {by})")))
}

/// A request's `timeout_ms`: at least 1.
fn time_limit(r: &mut Reader) -> Result<u64> {
    match r.uint()? {
        0 => Err(DecodeError {
            bad_value: true,
            ..DecodeError::new("a time limit of 0 ms: send at least 1")
        }),
        ms => Ok(ms),
    }
}

/// `tenant_quota`'s `set`: a map of quota name to a value, or nil (back to
/// the node's default); at most `QUOTA_CHANGES_MAX` entries.
fn quota_changes(r: &mut Reader) -> Result<Vec<(String, Option<u64>)>> {
    let n = r.map_len()?;
    if n > crate::proto::QUOTA_CHANGES_MAX {
        let max = crate::proto::QUOTA_CHANGES_MAX;
        // Too many is this request's fault alone: it is answered
        // `bad_arguments` and the stream goes on (frames are delimited).
        return Err(DecodeError {
            bad_value: true,
            ..DecodeError::new(format!("{n} quota changes, over {max}"))
        });
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str()?.to_string();
        let value = r.opt_uint().map_err(|e| e.at(&name))?;
        out.push((name, value));
    }
    Ok(out)
}

/// `token_create`'s `grants`: procedure names, at most `GRANTS_MAX`.
fn grant_list(r: &mut Reader) -> Result<Vec<String>> {
    let n = r.array_len()?;
    let max = crate::catalog::GRANTS_MAX;
    if n > max {
        return Err(DecodeError {
            bad_value: true,
            ..DecodeError::new(format!("{n} grants, over {max}"))
        });
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(r.str().map_err(|e| e.at_index(i))?.to_string());
    }
    Ok(out)
}

/// `load`'s `columns`: at most `sql::TABLE_COLUMNS_MAX` names.
fn column_list(r: &mut Reader) -> Result<Vec<String>> {
    let n = r.array_len()?;
    let max = crate::sql::TABLE_COLUMNS_MAX;
    if n > max {
        return Err(DecodeError {
            bad_value: true,
            ..DecodeError::new(format!("{n} columns, over {max}"))
        });
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(r.str().map_err(|e| e.at_index(i))?.to_string());
    }
    Ok(out)
}

/// `load`'s `rows`: at most `LOAD_ROWS_MAX` arrays of values, and at most
/// `ITEMS_MAX` values in all (each takes far more memory decoded than its
/// one byte on the wire).
fn load_rows(r: &mut Reader) -> Result<Vec<Vec<Value>>> {
    let n = r.array_len()?;
    let max = crate::proto::LOAD_ROWS_MAX;
    if n > max {
        return Err(DecodeError {
            bad_value: true,
            ..DecodeError::new(format!("{n} rows, over {max} per request"))
        });
    }
    let mut out = Vec::with_capacity(n);
    let mut values_left = ITEMS_MAX;
    for i in 0..n {
        let row = (|| {
            let len = r.array_len()?;
            if len > values_left {
                return Err(DecodeError {
                    bad_value: true,
                    ..DecodeError::new(format!(
                        "the rows hold over {ITEMS_MAX} values; send fewer rows per request"
                    ))
                });
            }
            values_left -= len;
            let mut row = Vec::with_capacity(len);
            for j in 0..len {
                row.push(r.value().map_err(|e| e.at_index(j))?);
            }
            Ok(row)
        })()
        .map_err(|e| e.at_index(i))?;
        out.push(row);
    }
    Ok(out)
}

/// An array of scalar values.
fn values(r: &mut Reader) -> Result<Vec<Value>> {
    let n = r.array_len()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(r.value().map_err(|e| e.at_index(i))?);
    }
    Ok(out)
}

/// Appends `[len u32 BE][body]` and checks the body against the limit.
fn framed(
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>),
) -> std::result::Result<(), FrameTooLarge> {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX_BYTES]);
    body(out);
    let bytes = out.len() - start - PREFIX_BYTES;
    match u32::try_from(bytes) {
        Ok(n) if bytes <= FRAME_BYTES_MAX => {
            out[start..start + PREFIX_BYTES].copy_from_slice(&n.to_be_bytes());
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(FrameTooLarge { bytes })
        }
    }
}

/// MessagePack writers onto a `Vec<u8>`. Writing to a Vec cannot fail and
/// every length is under `FRAME_BYTES_MAX` (checked once per frame), so the
/// `rmp` results carry nothing and are dropped.
mod w {
    use crate::types::Value;
    use rmp::encode as e;

    pub fn map(out: &mut Vec<u8>, n: usize) {
        let _ = e::write_map_len(out, n as u32);
    }
    pub fn array(out: &mut Vec<u8>, n: usize) {
        let _ = e::write_array_len(out, n as u32);
    }
    pub fn str(out: &mut Vec<u8>, s: &str) {
        let _ = e::write_str(out, s);
    }
    pub fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => str(out, s),
            None => nil(out),
        }
    }
    pub fn kv_str(out: &mut Vec<u8>, k: &str, v: &str) {
        str(out, k);
        str(out, v);
    }
    pub fn kv_uint(out: &mut Vec<u8>, k: &str, v: u64) {
        str(out, k);
        uint(out, v);
    }
    pub fn kv_bool(out: &mut Vec<u8>, k: &str, v: bool) {
        str(out, k);
        let _ = e::write_bool(out, v);
    }
    pub fn bin(out: &mut Vec<u8>, b: &[u8]) {
        let _ = e::write_bin(out, b);
    }
    pub fn uint(out: &mut Vec<u8>, v: u64) {
        let _ = e::write_uint(out, v);
    }
    pub fn nil(out: &mut Vec<u8>) {
        let _ = e::write_nil(out);
    }
    pub fn value(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::Null => nil(out),
            Value::Bool(b) => {
                let _ = e::write_bool(out, *b);
            }
            Value::Int(i) | Value::Timestamp(i) | Value::TimestampTz(i) | Value::Time(i) => {
                let _ = e::write_sint(out, *i);
            }
            Value::Date(d) => {
                let _ = e::write_sint(out, i64::from(*d));
            }
            Value::Interval(i) => {
                array(out, 3);
                let _ = e::write_sint(out, i64::from(i.months));
                let _ = e::write_sint(out, i64::from(i.days));
                let _ = e::write_sint(out, i.micros);
            }
            Value::Uuid(u) => str(out, &crate::types::datetime::format_uuid(u)),
            Value::Double(d) => {
                let _ = e::write_f64(out, *d);
            }
            Value::Decimal(d) => str(out, &d.to_string()),
            Value::Text(s) => str(out, s),
            Value::Bytes(b) => bin(out, b),
        }
    }
}
