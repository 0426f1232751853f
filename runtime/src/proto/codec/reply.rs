//! Reply maps (`ok` in a response). Every reply is a map whose `kind` names
//! its shape; fields may come in any order and unknown ones are skipped.
//! DECIMAL cells travel as strings and TIMESTAMP cells as integers; the
//! column (or `type`) names the SQL type, and the decoder retypes them.

use super::read::{DecodeError, Reader, Result};
use super::{field, required, values, w};
use crate::proto::{
    CatalogInfo, Column, Loaded, PartitionStatus, PeerLink, PrincipalDesc, ProcedureInfo,
    QuotaValue, RejectedRow, ReplicaStatus, Reply, Rows, SqlResult, StatusInfo, TableInfo,
};
use crate::types::Value;

pub(super) fn encode(out: &mut Vec<u8>, reply: &Reply) {
    match reply {
        Reply::Authenticated {
            tenant,
            principal,
            admin,
            role,
        } => {
            head(out, "authenticated", 4);
            w::kv_str(out, "tenant", tenant);
            w::kv_str(out, "principal", principal);
            w::kv_bool(out, "admin", *admin);
            w::kv_str(out, "role", role);
        }
        Reply::Value(v) => {
            head(out, "value", 2);
            w::kv_str(out, "type", &v.kind().to_string());
            w::str(out, "value");
            w::value(out, v);
        }
        Reply::Rows(rows) => encode_rows(out, rows),
        Reply::Sql(results) => {
            head(out, "sql", 1);
            w::str(out, "results");
            w::array(out, results.len());
            for r in results {
                match r {
                    SqlResult::Rows(rows) => encode_rows(out, rows),
                    SqlResult::Affected(n) => {
                        head(out, "affected", 1);
                        w::kv_uint(out, "count", *n);
                    }
                    SqlResult::Done(tag) => {
                        head(out, "done", 1);
                        w::kv_str(out, "tag", tag);
                    }
                }
            }
        }
        Reply::Deployed {
            module,
            procedures,
            replaced,
            warnings,
        } => {
            head(out, "deployed", 3 + usize::from(!warnings.is_empty()));
            w::kv_str(out, "module", module);
            w::str(out, "procedures");
            w::array(out, procedures.len());
            procedures.iter().for_each(|p| w::str(out, p));
            w::kv_bool(out, "replaced", *replaced);
            if !warnings.is_empty() {
                w::str(out, "warnings");
                w::array(out, warnings.len());
                warnings.iter().for_each(|x| w::str(out, x));
            }
        }
        Reply::Dropped { module, existed } => {
            head(out, "dropped", 2);
            w::kv_str(out, "module", module);
            w::kv_bool(out, "existed", *existed);
        }
        Reply::Catalog(c) => encode_catalog(out, c),
        Reply::Status(s) => encode_status(out, s),
        Reply::TenantCreated {
            tenant,
            principal,
            token,
        } => {
            head(out, "tenant_created", 3);
            w::kv_str(out, "tenant", tenant);
            w::kv_str(out, "principal", principal);
            w::kv_str(out, "token", token);
        }
        Reply::Quota { tenant, quota } => {
            head(out, "quota", 2);
            w::kv_str(out, "tenant", tenant);
            w::str(out, "quota");
            w::array(out, quota.len());
            for q in quota {
                w::map(out, 3);
                w::kv_str(out, "name", &q.name);
                w::kv_uint(out, "value", q.value);
                w::kv_bool(out, "set", q.set);
            }
        }
        Reply::Token {
            tenant,
            principal,
            token,
        } => {
            head(out, "token", 3);
            w::kv_str(out, "tenant", tenant);
            w::str(out, "principal");
            encode_principal(out, principal);
            w::kv_str(out, "token", token);
        }
        Reply::Certificate { chain } => {
            head(out, "certificate", 1);
            w::str(out, "chain");
            w::array(out, chain.len());
            chain.iter().for_each(|c| w::bin(out, c));
        }
        Reply::Revoked { tenant, principal } => {
            head(out, "revoked", 2);
            w::kv_str(out, "tenant", tenant);
            w::kv_str(out, "principal", principal);
        }
        Reply::Principals { tenant, principals } => {
            head(out, "principals", 2);
            w::kv_str(out, "tenant", tenant);
            w::str(out, "principals");
            w::array(out, principals.len());
            principals.iter().for_each(|p| encode_principal(out, p));
        }
        Reply::Loaded(l) => {
            head(out, "loaded", 3);
            w::kv_uint(out, "loaded", l.loaded);
            w::str(out, "rejected");
            w::array(out, l.rejected.len());
            for r in &l.rejected {
                w::map(out, 3);
                w::kv_uint(out, "row", r.row);
                w::str(out, "column");
                w::opt_str(out, r.column.as_deref());
                w::kv_str(out, "message", &r.message);
            }
            w::kv_bool(out, "again", l.again);
        }
    }
}

fn encode_principal(out: &mut Vec<u8>, p: &PrincipalDesc) {
    w::map(out, 3);
    w::kv_str(out, "name", &p.name);
    w::kv_str(out, "role", &p.role);
    w::str(out, "grants");
    w::array(out, p.grants.len());
    p.grants.iter().for_each(|g| w::str(out, g));
}

fn principal(r: &mut Reader) -> Result<PrincipalDesc> {
    let (mut m, mut grants) = (Fields::default(), None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "name" => m.a = Some(field(r, "name", Reader::str)?),
            "role" => m.b = Some(field(r, "role", Reader::str)?),
            "grants" => grants = Some(field(r, "grants", strings)?),
            _ => r.skip(1)?,
        }
    }
    Ok(PrincipalDesc {
        name: required(m.a, "name", "a principal")?.to_string(),
        role: required(m.b, "role", "a principal")?.to_string(),
        grants: grants.unwrap_or_default(),
    })
}

/// Opens a reply map of `fields` fields plus `kind`.
fn head(out: &mut Vec<u8>, kind: &str, fields: usize) {
    w::map(out, fields + 1);
    w::kv_str(out, "kind", kind);
}

fn encode_rows(out: &mut Vec<u8>, rows: &Rows) {
    head(out, "rows", 2);
    w::str(out, "columns");
    w::array(out, rows.columns.len());
    for c in &rows.columns {
        w::map(out, 2);
        w::kv_str(out, "name", &c.name);
        w::str(out, "type");
        w::opt_str(out, c.ty.as_deref());
    }
    w::str(out, "rows");
    w::array(out, rows.rows.len());
    for row in &rows.rows {
        w::array(out, row.len());
        row.iter().for_each(|v| w::value(out, v));
    }
}

fn encode_catalog(out: &mut Vec<u8>, c: &CatalogInfo) {
    head(out, "catalog", 3);
    w::kv_str(out, "tenant", &c.tenant);
    w::str(out, "tables");
    w::array(out, c.tables.len());
    for t in &c.tables {
        w::map(out, 5);
        w::kv_str(out, "name", &t.name);
        w::str(out, "columns");
        w::array(out, t.columns.len());
        for (name, ty, nullable) in &t.columns {
            w::map(out, 3);
            w::kv_str(out, "name", name);
            w::kv_str(out, "type", ty);
            w::kv_bool(out, "nullable", *nullable);
        }
        w::str(out, "primary_key");
        w::array(out, t.primary_key.len());
        t.primary_key.iter().for_each(|k| w::str(out, k));
        w::str(out, "partition_column");
        w::opt_str(out, t.partition_column.as_deref());
        w::kv_uint(out, "rows", t.rows);
    }
    w::str(out, "procedures");
    w::array(out, c.procedures.len());
    for p in &c.procedures {
        w::map(out, 4);
        w::kv_str(out, "name", &p.name);
        w::kv_str(out, "module", &p.module);
        w::str(out, "params");
        w::array(out, p.params.len());
        for (name, ty) in &p.params {
            w::map(out, 2);
            w::kv_str(out, "name", name);
            w::kv_str(out, "type", ty);
        }
        w::str(out, "partition");
        match &p.partition {
            Some((column, parameter)) => {
                w::map(out, 2);
                w::kv_str(out, "column", column);
                w::kv_uint(out, "parameter", u64::from(*parameter));
            }
            None => w::nil(out),
        }
    }
}

fn encode_status(out: &mut Vec<u8>, s: &StatusInfo) {
    head(out, "status", 7);
    w::kv_str(out, "version", &s.version);
    w::kv_uint(out, "node_id", s.node_id);
    w::kv_uint(out, "uptime_ms", s.uptime_ms);
    w::kv_str(out, "durability", &s.durability);
    w::kv_uint(out, "connections", s.connections);
    w::str(out, "partitions");
    w::array(out, s.partitions.len());
    for p in &s.partitions {
        w::map(out, 12);
        w::kv_uint(out, "id", u64::from(p.id));
        w::kv_uint(out, "committed", p.committed);
        w::kv_uint(out, "failed", p.failed);
        w::kv_uint(out, "queued", p.queued);
        w::kv_uint(out, "durable_lsn", p.durable_lsn);
        w::kv_uint(out, "log_bytes", p.log_bytes);
        w::kv_uint(out, "rows", p.rows);
        w::kv_str(out, "role", &p.role);
        w::kv_uint(out, "leader", u64::from(p.leader));
        w::kv_uint(out, "applied", p.applied);
        w::kv_bool(out, "disk_full", p.disk_full);
        w::str(out, "replicas");
        w::array(out, p.replicas.len());
        for r in &p.replicas {
            w::map(out, 2);
            w::kv_uint(out, "node", u64::from(r.node));
            w::str(out, "matched");
            match r.matched {
                Some(m) => w::uint(out, m),
                None => w::nil(out),
            }
        }
    }
    w::str(out, "peers");
    w::array(out, s.peers.len());
    for l in &s.peers {
        w::map(out, 4);
        w::kv_uint(out, "node", u64::from(l.node));
        w::kv_str(out, "addr", &l.addr);
        w::kv_bool(out, "connected", l.connected);
        w::str(out, "last_error");
        w::opt_str(out, l.last_error.as_deref());
    }
}

/// The kinds of reply, as named on the wire.
pub const KINDS: [&str; 15] = [
    "authenticated",
    "value",
    "rows",
    "sql",
    "deployed",
    "dropped",
    "catalog",
    "status",
    "quota",
    "tenant_created",
    "token",
    "revoked",
    "principals",
    "loaded",
    "certificate",
];

pub(super) fn decode(r: &mut Reader) -> Result<Reply> {
    let kind = kind_of(r)?;
    Ok(match kind {
        "authenticated" => {
            let mut m = Fields::default();
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "tenant" => m.a = Some(field(r, "tenant", Reader::str)?),
                    "principal" => m.b = Some(field(r, "principal", Reader::str)?),
                    "admin" => m.flag = Some(field(r, "admin", Reader::bool)?),
                    "role" => m.c = Some(field(r, "role", Reader::str)?),
                    _ => r.skip(1)?,
                }
            }
            Reply::Authenticated {
                tenant: required(m.a, "tenant", BY)?.to_string(),
                principal: required(m.b, "principal", BY)?.to_string(),
                admin: required(m.flag, "admin", BY)?,
                // A node before roles sends none: its principals were
                // admins or their tenant's owners.
                role: m.c.map_or_else(
                    || {
                        if m.flag == Some(true) {
                            "admin"
                        } else {
                            "owner"
                        }
                        .to_string()
                    },
                    str::to_string,
                ),
            }
        }
        "value" => {
            let (mut ty, mut value) = (None, None);
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "type" => ty = Some(field(r, "type", Reader::opt_str)?),
                    "value" => value = Some(field(r, "value", Reader::value)?),
                    _ => r.skip(1)?,
                }
            }
            let v = required(value, "value", BY)?;
            Reply::Value(retype(v, Cell::of(ty.flatten())).map_err(|e| e.at("value"))?)
        }
        "rows" => Reply::Rows(rows(r)?),
        "sql" => {
            let mut results = None;
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "results" => results = Some(field(r, "results", |r| list(r, sql_result))?),
                    _ => r.skip(1)?,
                }
            }
            Reply::Sql(required(results, "results", BY)?)
        }
        "deployed" => {
            let (mut m, mut procedures, mut warnings) = (Fields::default(), None, None);
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "module" => m.a = Some(field(r, "module", Reader::str)?),
                    "procedures" => procedures = Some(field(r, "procedures", strings)?),
                    "replaced" => m.flag = Some(field(r, "replaced", Reader::bool)?),
                    "warnings" => warnings = Some(field(r, "warnings", strings)?),
                    _ => r.skip(1)?,
                }
            }
            Reply::Deployed {
                module: required(m.a, "module", BY)?.to_string(),
                procedures: required(procedures, "procedures", BY)?,
                replaced: required(m.flag, "replaced", BY)?,
                warnings: warnings.unwrap_or_default(),
            }
        }
        "dropped" => {
            let mut m = Fields::default();
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "module" => m.a = Some(field(r, "module", Reader::str)?),
                    "existed" => m.flag = Some(field(r, "existed", Reader::bool)?),
                    _ => r.skip(1)?,
                }
            }
            Reply::Dropped {
                module: required(m.a, "module", BY)?.to_string(),
                existed: required(m.flag, "existed", BY)?,
            }
        }
        "catalog" => Reply::Catalog(catalog(r)?),
        "status" => Reply::Status(status(r)?),
        "tenant_created" => {
            let mut m = Fields::default();
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "tenant" => m.a = Some(field(r, "tenant", Reader::str)?),
                    "principal" => m.b = Some(field(r, "principal", Reader::str)?),
                    "token" => m.c = Some(field(r, "token", Reader::str)?),
                    _ => r.skip(1)?,
                }
            }
            Reply::TenantCreated {
                tenant: required(m.a, "tenant", BY)?.to_string(),
                principal: required(m.b, "principal", BY)?.to_string(),
                token: required(m.c, "token", BY)?.to_string(),
            }
        }
        "quota" => {
            let (mut tenant, mut quota) = (None, None);
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "tenant" => tenant = Some(field(r, "tenant", Reader::str)?),
                    "quota" => quota = Some(field(r, "quota", quota_values)?),
                    _ => r.skip(1)?,
                }
            }
            Reply::Quota {
                tenant: required(tenant, "tenant", BY)?.to_string(),
                quota: required(quota, "quota", BY)?,
            }
        }
        "token" => {
            let (mut m, mut p) = (Fields::default(), None);
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "tenant" => m.a = Some(field(r, "tenant", Reader::str)?),
                    "principal" => p = Some(field(r, "principal", principal)?),
                    "token" => m.c = Some(field(r, "token", Reader::str)?),
                    _ => r.skip(1)?,
                }
            }
            Reply::Token {
                tenant: required(m.a, "tenant", BY)?.to_string(),
                principal: required(p, "principal", BY)?,
                token: required(m.c, "token", BY)?.to_string(),
            }
        }
        "certificate" => {
            let mut chain = None;
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "chain" => {
                        chain = Some(field(r, "chain", |r| {
                            list(r, |r| r.bin().map(<[u8]>::to_vec))
                        })?)
                    }
                    _ => r.skip(1)?,
                }
            }
            Reply::Certificate {
                chain: required(chain, "chain", BY)?,
            }
        }
        "revoked" => {
            let mut m = Fields::default();
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "tenant" => m.a = Some(field(r, "tenant", Reader::str)?),
                    "principal" => m.b = Some(field(r, "principal", Reader::str)?),
                    _ => r.skip(1)?,
                }
            }
            Reply::Revoked {
                tenant: required(m.a, "tenant", BY)?.to_string(),
                principal: required(m.b, "principal", BY)?.to_string(),
            }
        }
        "principals" => {
            let (mut tenant, mut ps) = (None, None);
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "tenant" => tenant = Some(field(r, "tenant", Reader::str)?),
                    "principals" => ps = Some(field(r, "principals", |r| list(r, principal))?),
                    _ => r.skip(1)?,
                }
            }
            Reply::Principals {
                tenant: required(tenant, "tenant", BY)?.to_string(),
                principals: required(ps, "principals", BY)?,
            }
        }
        "loaded" => {
            let (mut loaded, mut rejected, mut again) = (None, None, None);
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "loaded" => loaded = Some(field(r, "loaded", Reader::uint)?),
                    "rejected" => rejected = Some(field(r, "rejected", |r| list(r, rejected_row))?),
                    "again" => again = Some(field(r, "again", Reader::bool)?),
                    _ => r.skip(1)?,
                }
            }
            Reply::Loaded(Loaded {
                loaded: required(loaded, "loaded", BY)?,
                rejected: rejected.unwrap_or_default(),
                again: again.unwrap_or(false),
            })
        }
        other => {
            return Err(DecodeError::new(format!(
                "unknown reply kind {other:?} (expected one of {})",
                KINDS.join(", ")
            ))
            .at("kind"))
        }
    })
}

const BY: &str = "this reply kind";

fn rejected_row(r: &mut Reader) -> Result<RejectedRow> {
    let (mut row, mut column, mut message) = (None, None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "row" => row = Some(field(r, "row", Reader::uint)?),
            "column" => column = Some(field(r, "column", Reader::opt_str)?),
            "message" => message = Some(field(r, "message", Reader::str)?),
            _ => r.skip(1)?,
        }
    }
    Ok(RejectedRow {
        row: required(row, "row", "a rejected row")?,
        column: column.flatten().map(str::to_string),
        message: required(message, "message", "a rejected row")?.to_string(),
    })
}

fn quota_values(r: &mut Reader) -> Result<Vec<QuotaValue>> {
    let n = r.array_len()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut m = Fields::default();
        let mut value = None;
        for _ in 0..r.map_len().map_err(|e| e.at_index(i))? {
            match r.str()? {
                "name" => m.a = Some(field(r, "name", Reader::str)?),
                "value" => value = Some(field(r, "value", Reader::uint)?),
                "set" => m.flag = Some(field(r, "set", Reader::bool)?),
                _ => r.skip(1)?,
            }
        }
        out.push(QuotaValue {
            name: required(m.a, "name", "a quota")?.to_string(),
            value: required(value, "value", "a quota")?,
            set: required(m.flag, "set", "a quota")?,
        });
    }
    Ok(out)
}

/// Scratch slots for the small reply maps.
#[derive(Default)]
struct Fields<'a> {
    a: Option<&'a str>,
    b: Option<&'a str>,
    c: Option<&'a str>,
    flag: Option<bool>,
}

/// The `kind` of the map at `r`, looked up without consuming it.
fn kind_of<'a>(r: &Reader<'a>) -> Result<&'a str> {
    match r.find_key("kind")? {
        Some(mut k) => k.str().map_err(|e| e.at("kind")),
        None => Err(DecodeError::new(
            "missing field `kind` (required by every reply)",
        )),
    }
}

/// How a cell is retyped from its wire form.
#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Plain,
    Decimal,
    Timestamp,
    TimestampTz,
    Date,
    Time,
    Uuid,
}

impl Cell {
    fn of(ty: Option<&str>) -> Cell {
        let starts = |p: &str| {
            ty.and_then(|t| t.get(..p.len()))
                .is_some_and(|h| h.eq_ignore_ascii_case(p))
        };
        let is = |p: &str| ty.is_some_and(|t| t.eq_ignore_ascii_case(p));
        if starts("DECIMAL") || starts("NUMERIC") {
            Cell::Decimal
        } else if is("TIMESTAMPTZ") {
            Cell::TimestampTz
        } else if starts("TIMESTAMP") {
            Cell::Timestamp
        } else if is("DATE") {
            Cell::Date
        } else if is("TIME") {
            Cell::Time
        } else if is("UUID") {
            Cell::Uuid
        } else {
            Cell::Plain
        }
    }
}

fn retype(v: Value, cell: Cell) -> Result<Value> {
    Ok(match (cell, v) {
        (Cell::Decimal, Value::Text(s)) => Value::Decimal(
            s.parse()
                .map_err(|e| DecodeError::new(format!("{s:?} is not a DECIMAL: {e}")))?,
        ),
        (Cell::Timestamp, Value::Int(us)) => Value::Timestamp(us),
        (Cell::TimestampTz, Value::Int(us)) => Value::TimestampTz(us),
        (Cell::Time, Value::Int(us)) => Value::Time(us),
        (Cell::Date, Value::Int(d)) => Value::Date(
            i32::try_from(d).map_err(|_| DecodeError::new(format!("DATE {d} is out of range")))?,
        ),
        (Cell::Uuid, Value::Text(s)) => Value::Uuid(
            crate::types::datetime::parse_uuid(&s)
                .ok_or_else(|| DecodeError::new(format!("{s:?} is not a UUID")))?,
        ),
        (_, v) => v,
    })
}

fn rows(r: &mut Reader) -> Result<Rows> {
    let (mut columns, mut data) = (None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "columns" => columns = Some(field(r, "columns", |r| list(r, column))?),
            "rows" => data = Some(field(r, "rows", |r| list(r, values))?),
            _ => r.skip(1)?,
        }
    }
    let columns: Vec<Column> = required(columns, "columns", BY)?;
    let mut rows: Vec<Vec<Value>> = required(data, "rows", BY)?;
    let cells: Vec<Cell> = columns.iter().map(|c| Cell::of(c.ty.as_deref())).collect();
    if cells.iter().any(|&c| c != Cell::Plain) {
        for (i, row) in rows.iter_mut().enumerate() {
            for (j, (v, &cell)) in row.iter_mut().zip(&cells).enumerate() {
                let taken = std::mem::replace(v, Value::Null);
                *v = retype(taken, cell).map_err(|e| e.at_index(j).at_index(i).at("rows"))?;
            }
        }
    }
    Ok(Rows { columns, rows })
}

fn column(r: &mut Reader) -> Result<Column> {
    let (mut name, mut ty) = (None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "name" => name = Some(field(r, "name", Reader::str)?),
            "type" => ty = Some(field(r, "type", Reader::opt_str)?),
            _ => r.skip(1)?,
        }
    }
    Ok(Column {
        name: required(name, "name", "a column")?.to_string(),
        ty: ty.flatten().map(str::to_string),
    })
}

fn sql_result(r: &mut Reader) -> Result<SqlResult> {
    Ok(match kind_of(r)? {
        "rows" => SqlResult::Rows(rows(r)?),
        "affected" => {
            let mut count = None;
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "count" => count = Some(field(r, "count", Reader::uint)?),
                    _ => r.skip(1)?,
                }
            }
            SqlResult::Affected(required(count, "count", "an affected result")?)
        }
        "done" => {
            let mut tag = None;
            for _ in 0..r.map_len()? {
                match r.str()? {
                    "tag" => tag = Some(field(r, "tag", Reader::str)?),
                    _ => r.skip(1)?,
                }
            }
            SqlResult::Done(required(tag, "tag", "a done result")?.to_string())
        }
        other => {
            return Err(DecodeError::new(format!(
                "unknown SQL result kind {other:?} (expected rows, affected or done)"
            ))
            .at("kind"))
        }
    })
}

/// An array whose elements `f` reads, naming the index in any error.
fn list<'a, T>(
    r: &mut Reader<'a>,
    mut f: impl FnMut(&mut Reader<'a>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = r.array_len()?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(f(r).map_err(|e| e.at_index(i))?);
    }
    Ok(out)
}

fn strings(r: &mut Reader) -> Result<Vec<String>> {
    list(r, |r| r.str().map(str::to_string))
}

fn catalog(r: &mut Reader) -> Result<CatalogInfo> {
    let (mut tenant, mut tables, mut procedures) = (None, None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "tenant" => tenant = Some(field(r, "tenant", Reader::str)?),
            "tables" => tables = Some(field(r, "tables", |r| list(r, table))?),
            "procedures" => procedures = Some(field(r, "procedures", |r| list(r, procedure))?),
            _ => r.skip(1)?,
        }
    }
    Ok(CatalogInfo {
        tenant: required(tenant, "tenant", BY)?.to_string(),
        tables: required(tables, "tables", BY)?,
        procedures: required(procedures, "procedures", BY)?,
    })
}

fn table(r: &mut Reader) -> Result<TableInfo> {
    let (mut name, mut columns, mut pk, mut part, mut rows) = (None, None, None, None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "name" => name = Some(field(r, "name", Reader::str)?),
            "columns" => columns = Some(field(r, "columns", |r| list(r, table_column))?),
            "primary_key" => pk = Some(field(r, "primary_key", strings)?),
            "partition_column" => part = Some(field(r, "partition_column", Reader::opt_str)?),
            "rows" => rows = Some(field(r, "rows", Reader::uint)?),
            _ => r.skip(1)?,
        }
    }
    const T: &str = "a table";
    Ok(TableInfo {
        name: required(name, "name", T)?.to_string(),
        columns: required(columns, "columns", T)?,
        primary_key: required(pk, "primary_key", T)?,
        partition_column: part.flatten().map(str::to_string),
        rows: required(rows, "rows", T)?,
    })
}

fn table_column(r: &mut Reader) -> Result<(String, String, bool)> {
    let mut m = Fields::default();
    for _ in 0..r.map_len()? {
        match r.str()? {
            "name" => m.a = Some(field(r, "name", Reader::str)?),
            "type" => m.b = Some(field(r, "type", Reader::str)?),
            "nullable" => m.flag = Some(field(r, "nullable", Reader::bool)?),
            _ => r.skip(1)?,
        }
    }
    const C: &str = "a column";
    Ok((
        required(m.a, "name", C)?.to_string(),
        required(m.b, "type", C)?.to_string(),
        required(m.flag, "nullable", C)?,
    ))
}

fn procedure(r: &mut Reader) -> Result<ProcedureInfo> {
    let (mut name, mut module, mut params, mut partition) = (None, None, None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "name" => name = Some(field(r, "name", Reader::str)?),
            "module" => module = Some(field(r, "module", Reader::str)?),
            "params" => params = Some(field(r, "params", |r| list(r, param))?),
            "partition" => partition = Some(field(r, "partition", partition_of)?),
            _ => r.skip(1)?,
        }
    }
    const P: &str = "a procedure";
    Ok(ProcedureInfo {
        name: required(name, "name", P)?.to_string(),
        module: required(module, "module", P)?.to_string(),
        params: required(params, "params", P)?,
        partition: partition.flatten(),
    })
}

fn param(r: &mut Reader) -> Result<(String, String)> {
    let mut m = Fields::default();
    for _ in 0..r.map_len()? {
        match r.str()? {
            "name" => m.a = Some(field(r, "name", Reader::str)?),
            "type" => m.b = Some(field(r, "type", Reader::str)?),
            _ => r.skip(1)?,
        }
    }
    Ok((
        required(m.a, "name", "a parameter")?.to_string(),
        required(m.b, "type", "a parameter")?.to_string(),
    ))
}

fn partition_of(r: &mut Reader) -> Result<Option<(String, u32)>> {
    let mut probe = *r;
    if probe.opt_str().ok() == Some(None) {
        *r = probe;
        return Ok(None);
    }
    let (mut column, mut parameter) = (None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "column" => column = Some(field(r, "column", Reader::str)?),
            "parameter" => parameter = Some(field(r, "parameter", Reader::u32)?),
            _ => r.skip(1)?,
        }
    }
    Ok(Some((
        required(column, "column", "a partition")?.to_string(),
        required(parameter, "parameter", "a partition")?,
    )))
}

fn status(r: &mut Reader) -> Result<StatusInfo> {
    let (mut version, mut durability, mut partitions) = (None, None, None);
    let (mut node_id, mut uptime_ms, mut connections) = (None, None, None);
    // Absent from nodes older than clusters: none.
    let mut peers = Vec::new();
    for _ in 0..r.map_len()? {
        match r.str()? {
            "version" => version = Some(field(r, "version", Reader::str)?),
            "node_id" => node_id = Some(field(r, "node_id", Reader::uint)?),
            "uptime_ms" => uptime_ms = Some(field(r, "uptime_ms", Reader::uint)?),
            "durability" => durability = Some(field(r, "durability", Reader::str)?),
            "connections" => connections = Some(field(r, "connections", Reader::uint)?),
            "partitions" => partitions = Some(field(r, "partitions", |r| list(r, partition))?),
            "peers" => peers = field(r, "peers", |r| list(r, peer_link))?,
            _ => r.skip(1)?,
        }
    }
    Ok(StatusInfo {
        version: required(version, "version", BY)?.to_string(),
        node_id: required(node_id, "node_id", BY)?,
        uptime_ms: required(uptime_ms, "uptime_ms", BY)?,
        durability: required(durability, "durability", BY)?.to_string(),
        connections: required(connections, "connections", BY)?,
        partitions: required(partitions, "partitions", BY)?,
        peers,
    })
}

fn peer_link(r: &mut Reader) -> Result<PeerLink> {
    let (mut node, mut addr, mut connected, mut last_error) = (None, None, None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "node" => node = Some(field(r, "node", Reader::u32)?),
            "addr" => addr = Some(field(r, "addr", Reader::str)?.to_string()),
            "connected" => connected = Some(field(r, "connected", Reader::bool)?),
            "last_error" => {
                last_error = field(r, "last_error", Reader::opt_str)?.map(str::to_string)
            }
            _ => r.skip(1)?,
        }
    }
    const L: &str = "a peer link";
    Ok(PeerLink {
        node: required(node, "node", L)?,
        addr: required(addr, "addr", L)?,
        connected: required(connected, "connected", L)?,
        last_error,
    })
}

fn replica(r: &mut Reader) -> Result<ReplicaStatus> {
    let (mut node, mut matched) = (None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "node" => node = Some(field(r, "node", Reader::u32)?),
            "matched" => matched = field(r, "matched", Reader::opt_uint)?,
            _ => r.skip(1)?,
        }
    }
    Ok(ReplicaStatus {
        node: required(node, "node", "a replica")?,
        matched,
    })
}

fn partition(r: &mut Reader) -> Result<PartitionStatus> {
    let mut f: [Option<u64>; 7] = [None; 7];
    const NAMES: [&str; 7] = [
        "id",
        "committed",
        "failed",
        "queued",
        "durable_lsn",
        "log_bytes",
        "rows",
    ];
    // Absent from nodes older than clusters: a lone leader.
    let (mut role, mut leader, mut applied, mut replicas) = (None, 0, None, Vec::new());
    // Absent from nodes older than refusing writes on a full disk.
    let mut disk_full = false;
    for _ in 0..r.map_len()? {
        let key = r.str()?;
        match key {
            "role" => role = Some(field(r, key, Reader::str)?.to_string()),
            "leader" => leader = field(r, key, Reader::u32)?,
            "applied" => applied = Some(field(r, key, Reader::uint)?),
            "replicas" => replicas = field(r, key, |r| list(r, replica))?,
            "disk_full" => disk_full = field(r, key, Reader::bool)?,
            _ => match NAMES.iter().position(|&n| n == key) {
                Some(i) => {
                    let v = field(r, key, Reader::uint)?;
                    if let Some(slot) = f.get_mut(i) {
                        *slot = Some(v);
                    }
                }
                None => r.skip(1)?,
            },
        }
    }
    let [id, committed, failed, queued, durable_lsn, log_bytes, rows] = f;
    const P: &str = "a partition";
    let id = required(id, "id", P)?;
    let durable_lsn = required(durable_lsn, "durable_lsn", P)?;
    Ok(PartitionStatus {
        id: u32::try_from(id)
            .map_err(|_| DecodeError::new(format!("{id} is over {}", u32::MAX)).at("id"))?,
        committed: required(committed, "committed", P)?,
        failed: required(failed, "failed", P)?,
        queued: required(queued, "queued", P)?,
        durable_lsn,
        log_bytes: required(log_bytes, "log_bytes", P)?,
        rows: required(rows, "rows", P)?,
        role: role.unwrap_or_else(|| "leader".to_string()),
        leader,
        applied: applied.unwrap_or(durable_lsn),
        replicas,
        disk_full,
    })
}
