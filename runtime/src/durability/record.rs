//! The log record's payload: what an entry is, and its codec (layouts in
//! the module doc of `durability`).
//!
//! Owns: `Entry` and its parts, `encode_entry`, the allocation-free
//! `encode_commit` fast path, `decode_entry` (payload only: the partition
//! encodes once and hands the bytes to consensus; `frame` puts the record
//! frame around it) and the value/row/str primitives the snapshot codec
//! shares. Must not: do I/O. Decoding trusts nothing: every length is checked
//! against the bytes that remain before anything is allocated.

use crate::sql::{ColumnInfo, RowSet};
use crate::storage::{Database, Row, WriteOp, WriteSet};
use crate::types::{DataType, TenantId, Value};
use crate::wasm::ProcOutput;
use rust_decimal::Decimal;
use smol_str::SmolStr;
use std::sync::Arc;

/// Largest record (the bytes its `len` field counts: slot, ballot, payload)
/// accepted; a bigger length field is corruption, never an allocation.
pub const RECORD_BYTES_MAX: usize = 64 << 20;
/// Largest payload a record holds.
pub const PAYLOAD_BYTES_MAX: usize = RECORD_BYTES_MAX - super::frame::RECORD_FIELDS_BYTES;

const ENTRY_COMMIT: u8 = 1;
const ENTRY_MULTI: u8 = 2;
const ENTRY_KEPT_COMMIT: u8 = 3;
const ENTRY_DECIDE: u8 = 4;
/// A `Multi` entry that is a share of a two-phase commit (applied once its
/// outcome is known); tag 2 is one from before, applied once chosen.
const ENTRY_SHARE: u8 = 5;
const BODY_WRITES: u8 = 1;
const BODY_DDL: u8 = 2;
const BODY_DEPLOY: u8 = 3;
const BODY_DROP_MODULE: u8 = 4;
const BODY_KEPT_WRITES: u8 = 5;
const BODY_CREATE_TENANT: u8 = 6;
const BODY_SET_QUOTA: u8 = 7;
const BODY_PRINCIPAL: u8 = 8;
const OUTPUT_NOT_KEPT: u8 = 0;
const OUTPUT_VALUE: u8 = 1;
const OUTPUT_ROWS: u8 = 2;
const OP_INSERT: u8 = 1;
const OP_UPDATE: u8 = 2;
const OP_DELETE: u8 = 3;

/// One entry of a partition's log.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A single-partition transaction's writes (and, for a call that came
    /// with an idempotency key, the key and its answer).
    Commit {
        tenant: TenantId,
        writes: LoggedWrites,
        kept: Option<KeptCall>,
    },
    /// This partition's share of coordinator transaction `txn` (every
    /// partition gets one per coordinator txn, possibly with empty writes).
    Multi {
        txn: u64,
        tenant: TenantId,
        body: MultiBody,
    },
    /// The outcome of coordinator transaction `txn`, whose shares were
    /// logged before it (two-phase commit: see `partition::decide`).
    /// Partition 0 logs only aborts (its share is the commit); the other
    /// partitions log both.
    Decide { txn: u64, commit: bool },
}

/// What a coordinator transaction did on this partition.
#[derive(Debug, Clone, PartialEq)]
pub enum MultiBody {
    Writes(LoggedWrites),
    /// Partition 0's share of a multi-partition call that came with an
    /// idempotency key: its writes here, and the key and its answer.
    KeptWrites {
        writes: LoggedWrites,
        kept: KeptCall,
    },
    /// SQL text of a DDL statement.
    Ddl(String),
    Deploy {
        name: String,
        wasm: Vec<u8>,
    },
    DropModule {
        name: String,
    },
    /// Partition 0's share of creating a tenant in a cluster (the other
    /// partitions' shares are empty): partition 0's group is the cluster's
    /// metadata group.
    CreateTenant(TenantRecord),
    /// An administrator set the tenant's quotas (the whole set, replacing
    /// the one before), on every partition.
    SetQuota(crate::catalog::QuotaSet),
    /// Partition 0's share of creating or revoking a principal (a token)
    /// in a cluster; the other partitions' shares are empty.
    Principal(crate::catalog::PrincipalChange),
}

/// A tenant and its first principal, as partition 0 logs its creation
/// (the token itself is never logged, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    pub principal: String,
    pub admin: bool,
    pub token_sha256: [u8; 32],
}

/// A call's idempotency key and its answer, logged with what the call
/// wrote, so that every replica answers a retry of it the same way
/// instead of running it again.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptCall {
    pub key: String,
    /// None: the answer was too big to keep (see `partition::kept`).
    pub output: Option<ProcOutput>,
}

/// A transaction's writes with tables named (ids are not stable across a
/// snapshot restore).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoggedWrites {
    pub ops: Vec<LoggedOp>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoggedOp {
    Insert { table: SmolStr, row: Row },
    Update { table: SmolStr, old: Row, new: Row },
    Delete { table: SmolStr, row: Row },
}

impl LoggedOp {
    pub fn table(&self) -> &str {
        match self {
            LoggedOp::Insert { table, .. }
            | LoggedOp::Update { table, .. }
            | LoggedOp::Delete { table, .. } => table,
        }
    }
}

/// The name of table `id`, which a write-set of `db` names.
fn table_name(db: &Database, id: crate::storage::TableId) -> &str {
    &db.table(id)
        .expect("a write-set names tables of the database it came from")
        .schema()
        .name
}

impl LoggedWrites {
    /// Rows these writes add, net of the rows they delete.
    pub fn rows_added(&self) -> i64 {
        self.ops.iter().fold(0i64, |n, op| match op {
            LoggedOp::Insert { .. } => n.saturating_add(1),
            LoggedOp::Delete { .. } => n.saturating_sub(1),
            LoggedOp::Update { .. } => n,
        })
    }

    /// Names the tables of `ws`, a write-set committed on `db`.
    pub fn from_write_set(db: &Database, ws: &WriteSet) -> LoggedWrites {
        let ops = ws
            .ops
            .iter()
            .map(|op| match op {
                WriteOp::Insert { table, row } => LoggedOp::Insert {
                    table: SmolStr::new(table_name(db, *table)),
                    row: row.clone(),
                },
                WriteOp::Update { table, old, new } => LoggedOp::Update {
                    table: SmolStr::new(table_name(db, *table)),
                    old: old.clone(),
                    new: new.clone(),
                },
                WriteOp::Delete { table, row } => LoggedOp::Delete {
                    table: SmolStr::new(table_name(db, *table)),
                    row: row.clone(),
                },
            })
            .collect();
        LoggedWrites { ops }
    }
}

// ---- encoding -------------------------------------------------------------

pub(super) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(super) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A length as u32. Lengths over 4 GiB cannot be logged (a record is capped
/// far lower), so this is an invariant of the caller.
pub(super) fn put_len(out: &mut Vec<u8>, n: usize) {
    put_u32(
        out,
        u32::try_from(n).expect("lengths logged are far below 4 GiB"),
    );
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

pub(super) fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(false) => out.push(1),
        Value::Bool(true) => out.push(2),
        Value::Int(i) => {
            out.push(3);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Double(d) => {
            out.push(4);
            put_u64(out, d.to_bits());
        }
        Value::Decimal(d) => {
            out.push(5);
            out.extend_from_slice(&d.serialize());
        }
        Value::Text(s) => {
            out.push(6);
            put_str(out, s);
        }
        Value::Bytes(b) => {
            out.push(7);
            put_bytes(out, b);
        }
        Value::Timestamp(t) => {
            out.push(8);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::TimestampTz(t) => {
            out.push(9);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::Date(d) => {
            out.push(10);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Value::Time(t) => {
            out.push(11);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::Interval(i) => {
            out.push(12);
            out.extend_from_slice(&i.months.to_le_bytes());
            out.extend_from_slice(&i.days.to_le_bytes());
            out.extend_from_slice(&i.micros.to_le_bytes());
        }
        Value::Uuid(u) => {
            out.push(13);
            out.extend_from_slice(u);
        }
    }
}

pub(super) fn put_row(out: &mut Vec<u8>, row: &[Value]) {
    put_len(out, row.len());
    for v in row {
        put_value(out, v);
    }
}

/// A transaction whose payload would be over `PAYLOAD_BYTES_MAX`: refused
/// (the caller undoes it) rather than logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the transaction's writes take {bytes} bytes in the log, over the limit of {PAYLOAD_BYTES_MAX} bytes per transaction; split the work into smaller transactions")]
pub struct RecordTooLarge {
    pub bytes: usize,
}

/// Checks the payload written onto `out` from `start`; too big, it is
/// removed again.
fn finish_payload(start: usize, out: &mut Vec<u8>) -> Result<(), RecordTooLarge> {
    let bytes = out.len() - start;
    if bytes > PAYLOAD_BYTES_MAX {
        out.truncate(start);
        return Err(RecordTooLarge { bytes });
    }
    Ok(())
}

fn put_writes(out: &mut Vec<u8>, w: &LoggedWrites) {
    put_len(out, w.ops.len());
    for op in &w.ops {
        match op {
            LoggedOp::Insert { table, row } => put_op(out, OP_INSERT, table, row, None),
            LoggedOp::Update { table, old, new } => put_op(out, OP_UPDATE, table, old, Some(new)),
            LoggedOp::Delete { table, row } => put_op(out, OP_DELETE, table, row, None),
        }
    }
}

fn put_op(out: &mut Vec<u8>, kind: u8, table: &str, row: &[Value], new: Option<&[Value]>) {
    out.push(kind);
    put_str(out, table);
    put_row(out, row);
    if let Some(new) = new {
        put_row(out, new);
    }
}

/// Encodes `entry` as a record payload onto `out` (no frame: the log adds
/// it); on error `out` is left as it was.
pub fn encode_entry(entry: &Entry, out: &mut Vec<u8>) -> Result<(), RecordTooLarge> {
    let start = out.len();
    match entry {
        Entry::Commit {
            tenant,
            writes,
            kept: None,
        } => {
            out.push(ENTRY_COMMIT);
            put_u32(out, tenant.0);
            put_writes(out, writes);
        }
        Entry::Commit {
            tenant,
            writes,
            kept: Some(kept),
        } => {
            out.push(ENTRY_KEPT_COMMIT);
            put_u32(out, tenant.0);
            put_kept(out, &kept.key, kept.output.as_ref());
            put_writes(out, writes);
        }
        Entry::Multi { txn, tenant, body } => {
            out.push(ENTRY_MULTI);
            put_u64(out, *txn);
            put_u32(out, tenant.0);
            match body {
                MultiBody::Writes(w) => {
                    out.push(BODY_WRITES);
                    put_writes(out, w);
                }
                MultiBody::KeptWrites { writes, kept } => {
                    out.push(BODY_KEPT_WRITES);
                    put_kept(out, &kept.key, kept.output.as_ref());
                    put_writes(out, writes);
                }
                MultiBody::Ddl(sql) => {
                    out.push(BODY_DDL);
                    put_str(out, sql);
                }
                MultiBody::Deploy { name, wasm } => {
                    out.push(BODY_DEPLOY);
                    put_str(out, name);
                    put_bytes(out, wasm);
                }
                MultiBody::DropModule { name } => {
                    out.push(BODY_DROP_MODULE);
                    put_str(out, name);
                }
                MultiBody::SetQuota(q) => {
                    out.push(BODY_SET_QUOTA);
                    put_quota_set(out, q);
                }
                MultiBody::CreateTenant(t) => {
                    out.push(BODY_CREATE_TENANT);
                    put_tenant_record(out, t);
                }
                MultiBody::Principal(c) => {
                    out.push(BODY_PRINCIPAL);
                    put_principal_change(out, c);
                }
            }
        }
        Entry::Decide { txn, commit } => {
            out.push(ENTRY_DECIDE);
            put_u64(out, *txn);
            out.push(u8::from(*commit));
        }
    }
    finish_payload(start, out)
}

/// The payload bytes `encode_entry` gives for an `Entry::Multi` carrying
/// `writes` (no key), measured in `scratch` without copying them; over
/// `PAYLOAD_BYTES_MAX` is refused as `encode_entry` would.
pub fn multi_writes_bytes(
    writes: &LoggedWrites,
    scratch: &mut Vec<u8>,
) -> Result<usize, RecordTooLarge> {
    scratch.clear();
    scratch.push(ENTRY_MULTI);
    put_u64(scratch, 0);
    put_u32(scratch, 0);
    scratch.push(BODY_WRITES);
    put_writes(scratch, writes);
    finish_payload(0, scratch)?;
    Ok(scratch.len())
}

/// The payload `encode_entry` gives for `Entry::Commit`, straight from a
/// storage write-set committed on `db` (no intermediate `LoggedWrites`);
/// `kept`: the call's idempotency key and the answer to keep (None: too
/// big to keep).
pub fn encode_commit(
    tenant: TenantId,
    db: &Database,
    ws: &WriteSet,
    kept: Option<(&str, Option<&ProcOutput>)>,
    out: &mut Vec<u8>,
) -> Result<(), RecordTooLarge> {
    let start = out.len();
    match kept {
        None => {
            out.push(ENTRY_COMMIT);
            put_u32(out, tenant.0);
        }
        Some((key, output)) => {
            out.push(ENTRY_KEPT_COMMIT);
            put_u32(out, tenant.0);
            put_kept(out, key, output);
        }
    }
    put_len(out, ws.ops.len());
    for op in &ws.ops {
        match op {
            WriteOp::Insert { table, row } => {
                put_op(out, OP_INSERT, table_name(db, *table), row, None)
            }
            WriteOp::Update { table, old, new } => {
                put_op(out, OP_UPDATE, table_name(db, *table), old, Some(new))
            }
            WriteOp::Delete { table, row } => {
                put_op(out, OP_DELETE, table_name(db, *table), row, None)
            }
        }
    }
    finish_payload(start, out)
}

fn put_kept(out: &mut Vec<u8>, key: &str, output: Option<&ProcOutput>) {
    put_str(out, key);
    put_output(out, output);
}

/// A call's answer (`OUTPUT_NOT_KEPT` for None); the bytes it takes are
/// what counts against `partition::kept`'s bounds.
pub fn put_output(out: &mut Vec<u8>, output: Option<&ProcOutput>) {
    match output {
        None => out.push(OUTPUT_NOT_KEPT),
        Some(ProcOutput::Value(v)) => {
            out.push(OUTPUT_VALUE);
            put_value(out, v);
        }
        Some(ProcOutput::Rows(rows)) => {
            out.push(OUTPUT_ROWS);
            put_len(out, rows.columns.len());
            for c in rows.columns.iter() {
                put_str(out, &c.name);
                match c.ty {
                    None => out.push(0),
                    Some(t) => {
                        out.push(1);
                        put_type(out, t);
                    }
                }
            }
            put_len(out, rows.rows.len());
            for r in &rows.rows {
                put_row(out, r);
            }
        }
    }
}

/// The bytes `put_output` writes, counted without writing them.
pub fn output_bytes(output: Option<&ProcOutput>) -> usize {
    let value = |v: &Value| {
        1 + match v {
            Value::Null | Value::Bool(_) => 0,
            Value::Int(_)
            | Value::Double(_)
            | Value::Timestamp(_)
            | Value::TimestampTz(_)
            | Value::Time(_) => 8,
            Value::Date(_) => 4,
            Value::Decimal(_) | Value::Interval(_) | Value::Uuid(_) => 16,
            Value::Text(s) => 4 + s.len(),
            Value::Bytes(b) => 4 + b.len(),
        }
    };
    let ty = |t: DataType| match t {
        DataType::Decimal { .. } => 3,
        DataType::Varchar(n) | DataType::Varbinary(n) => 2 + if n.is_some() { 4 } else { 0 },
        _ => 1,
    };
    1 + match output {
        None => 0,
        Some(ProcOutput::Value(v)) => value(v),
        Some(ProcOutput::Rows(rows)) => {
            let columns: usize = rows
                .columns
                .iter()
                .map(|c| 4 + c.name.len() + 1 + c.ty.map_or(0, ty))
                .sum();
            let cells: usize = rows
                .rows
                .iter()
                .map(|r| 4 + r.iter().map(value).sum::<usize>())
                .sum();
            4 + columns + 4 + cells
        }
    }
}

pub(super) fn put_type(out: &mut Vec<u8>, t: DataType) {
    let opt = |out: &mut Vec<u8>, n: Option<u32>| match n {
        None => out.push(0),
        Some(n) => {
            out.push(1);
            put_u32(out, n);
        }
    };
    match t {
        DataType::SmallInt => out.push(1),
        DataType::Integer => out.push(2),
        DataType::BigInt => out.push(3),
        DataType::Double => out.push(4),
        DataType::Decimal { precision, scale } => out.extend_from_slice(&[5, precision, scale]),
        DataType::Varchar(n) => {
            out.push(6);
            opt(out, n)
        }
        DataType::Varbinary(n) => {
            out.push(7);
            opt(out, n)
        }
        DataType::Boolean => out.push(8),
        DataType::Timestamp => out.push(9),
        DataType::TimestampTz => out.push(10),
        DataType::Date => out.push(11),
        DataType::Time => out.push(12),
        DataType::Interval => out.push(13),
        DataType::Uuid => out.push(14),
    }
}

// ---- decoding -------------------------------------------------------------

/// A cursor over untrusted bytes; every read checks what remains. Errors say
/// what was being read; the caller adds the file and offset.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub(super) type DecodeResult<T> = Result<T, String>;

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn take(&mut self, n: usize, what: &str) -> DecodeResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("{what} of {n} bytes runs past the end"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> DecodeResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub(super) fn u8(&mut self, what: &str) -> DecodeResult<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(super) fn u32(&mut self, what: &str) -> DecodeResult<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(super) fn u64(&mut self, what: &str) -> DecodeResult<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(super) fn i64(&mut self, what: &str) -> DecodeResult<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// A count of items each at least `item_bytes_min` long: a count the
    /// remaining bytes cannot hold is refused before anything is allocated.
    pub(super) fn count(&mut self, item_bytes_min: usize, what: &str) -> DecodeResult<usize> {
        let n = self.u32(what)? as usize;
        let left = self.buf.len() - self.pos;
        if n.saturating_mul(item_bytes_min.max(1)) > left {
            return Err(format!(
                "{what} {n} is more than the {left} bytes left hold"
            ));
        }
        Ok(n)
    }

    pub(super) fn bytes(&mut self, what: &str) -> DecodeResult<&'a [u8]> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    pub(super) fn str(&mut self, what: &str) -> DecodeResult<&'a str> {
        std::str::from_utf8(self.bytes(what)?).map_err(|e| format!("{what} is not UTF-8: {e}"))
    }

    pub(super) fn value(&mut self) -> DecodeResult<Value> {
        Ok(match self.u8("value tag")? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Int(self.i64("integer")?),
            4 => Value::Double(f64::from_bits(self.u64("double")?)),
            5 => Value::Decimal(decimal(self.array("decimal")?)?),
            6 => Value::Text(SmolStr::new(self.str("text")?)),
            7 => Value::Bytes(Arc::from(self.bytes("bytes")?)),
            8 => Value::Timestamp(self.i64("timestamp")?),
            9 => Value::TimestampTz(self.i64("timestamp with time zone")?),
            10 => Value::Date(i32::from_le_bytes(self.array("date")?)),
            11 => {
                let t = self.i64("time")?;
                if !(0..=crate::types::datetime::USECS_PER_DAY).contains(&t) {
                    return Err(format!("time {t} is not within a day"));
                }
                Value::Time(t)
            }
            12 => Value::Interval(crate::types::Interval {
                months: i32::from_le_bytes(self.array("interval months")?),
                days: i32::from_le_bytes(self.array("interval days")?),
                micros: self.i64("interval microseconds")?,
            }),
            13 => Value::Uuid(self.array("uuid")?),
            t => return Err(format!("unknown value tag {t}")),
        })
    }

    pub(super) fn row(&mut self) -> DecodeResult<Row> {
        let n = self.count(1, "row length")?;
        let mut row = Vec::with_capacity(n);
        for _ in 0..n {
            row.push(self.value()?);
        }
        Ok(row.into_boxed_slice())
    }
}

pub(super) fn get_type(r: &mut Reader<'_>) -> Result<DataType, String> {
    let opt = |r: &mut Reader<'_>| -> Result<Option<u32>, String> {
        match r.u8("length flag")? {
            0 => Ok(None),
            1 => Ok(Some(r.u32("length")?)),
            f => Err(format!("bad length flag {f}")),
        }
    };
    Ok(match r.u8("type")? {
        1 => DataType::SmallInt,
        2 => DataType::Integer,
        3 => DataType::BigInt,
        4 => DataType::Double,
        5 => DataType::Decimal {
            precision: r.u8("precision")?,
            scale: r.u8("scale")?,
        },
        6 => DataType::Varchar(opt(r)?),
        7 => DataType::Varbinary(opt(r)?),
        8 => DataType::Boolean,
        9 => DataType::Timestamp,
        10 => DataType::TimestampTz,
        11 => DataType::Date,
        12 => DataType::Time,
        13 => DataType::Interval,
        14 => DataType::Uuid,
        t => return Err(format!("unknown type tag {t}")),
    })
}

pub(super) fn get_output(r: &mut Reader<'_>) -> DecodeResult<Option<ProcOutput>> {
    Ok(match r.u8("answer tag")? {
        OUTPUT_NOT_KEPT => None,
        OUTPUT_VALUE => Some(ProcOutput::Value(r.value()?)),
        OUTPUT_ROWS => {
            // The smallest column: an empty name and no type.
            let n = r.count(5, "answer column count")?;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let name = r.str("answer column name")?.to_string();
                let ty = match r.u8("answer column type flag")? {
                    0 => None,
                    1 => Some(get_type(r)?),
                    f => return Err(format!("bad answer column type flag {f}")),
                };
                columns.push(ColumnInfo { name, ty });
            }
            let n = r.count(4, "answer row count")?;
            let mut rows = Vec::with_capacity(n);
            for _ in 0..n {
                rows.push(r.row()?.into_vec());
            }
            Some(ProcOutput::Rows(RowSet {
                columns: columns.into(),
                rows,
            }))
        }
        t => return Err(format!("unknown answer tag {t}")),
    })
}

fn kept(r: &mut Reader<'_>) -> DecodeResult<KeptCall> {
    Ok(KeptCall {
        key: r.str("idempotency key")?.to_string(),
        output: get_output(r)?,
    })
}

/// `Decimal::deserialize` accepts any bits; refuse those no `serialize` makes
/// (scale over 28, unused flag bits set).
fn decimal(b: [u8; 16]) -> DecodeResult<Decimal> {
    if b[0] != 0 || b[1] != 0 || b[2] > 28 || b[3] & 0x7f != 0 {
        return Err(format!("decimal flags {:02x?} are invalid", &b[..4]));
    }
    Ok(Decimal::deserialize(b))
}

fn writes(r: &mut Reader<'_>) -> DecodeResult<LoggedWrites> {
    // The smallest op: kind, empty table name, empty row.
    let n = r.count(9, "op count")?;
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = r.u8("op kind")?;
        let table = SmolStr::new(r.str("table name")?);
        let row = r.row()?;
        ops.push(match kind {
            OP_INSERT => LoggedOp::Insert { table, row },
            OP_UPDATE => LoggedOp::Update {
                table,
                old: row,
                new: r.row()?,
            },
            OP_DELETE => LoggedOp::Delete { table, row },
            k => return Err(format!("unknown op kind {k}")),
        });
    }
    Ok(LoggedWrites { ops })
}

/// The coordinator transaction a payload belongs to, read from its first
/// bytes only (None for a single-partition commit, a no-op, or bytes too
/// short to say).
pub fn multi_txn(payload: &[u8]) -> Option<u64> {
    if !matches!(payload.first(), Some(&(ENTRY_MULTI | ENTRY_SHARE))) {
        return None;
    }
    let txn: [u8; 8] = payload.get(1..9)?.try_into().ok()?;
    Some(u64::from_le_bytes(txn))
}

/// The principal a payload revokes (a cluster's partition 0), with the
/// coordinator transaction that does, read without decoding anything else.
pub fn revoked_principal(payload: &[u8]) -> Option<(u64, TenantId, String)> {
    let txn = multi_txn(payload)?;
    let mut r = Reader::new(payload.get(9..)?);
    r.u32("tenant").ok()?;
    if r.u8("multi body tag").ok()? != BODY_PRINCIPAL {
        return None;
    }
    let c = principal_change(&mut r).ok()?;
    c.entry.is_none().then_some((txn, c.tenant, c.name))
}

/// The coordinator transaction of a two-phase share (see `mark_share`).
pub fn share_txn(payload: &[u8]) -> Option<u64> {
    if payload.first() != Some(&ENTRY_SHARE) {
        return None;
    }
    multi_txn(payload)
}

/// Marks an encoded `Entry::Multi` as a share of a two-phase commit
/// (partition::decide): it decodes the same, and a replica applies it only
/// once its outcome is known. False (unchanged) for any other payload.
pub fn mark_share(payload: &mut [u8]) -> bool {
    match payload.first_mut() {
        Some(tag) if *tag == ENTRY_MULTI => {
            *tag = ENTRY_SHARE;
            true
        }
        _ => false,
    }
}

/// The coordinator transaction a payload decides and whether it commits
/// (None for any other entry or bytes that do not decode as a decision).
pub fn decision(payload: &[u8]) -> Option<(u64, bool)> {
    if payload.len() != 10 || payload[0] != ENTRY_DECIDE {
        return None;
    }
    let txn: [u8; 8] = payload[1..9].try_into().ok()?;
    let commit = match payload[9] {
        0 => false,
        1 => true,
        _ => return None,
    };
    Some((u64::from_le_bytes(txn), commit))
}

/// The module a payload deploys, (name, wasm), read without decoding the
/// rest (None for any other entry or bytes that do not decode).
pub fn deployed_module(payload: &[u8]) -> Option<(&str, &[u8])> {
    let mut r = Reader::new(payload);
    if !matches!(r.u8("entry tag").ok()?, ENTRY_MULTI | ENTRY_SHARE) {
        return None;
    }
    r.u64("txn").ok()?;
    r.u32("tenant").ok()?;
    if r.u8("multi body tag").ok()? != BODY_DEPLOY {
        return None;
    }
    let name = r.str("module name").ok()?;
    let wasm = r.bytes("wasm").ok()?;
    r.is_empty().then_some((name, wasm))
}

/// Appends a tenant record (layout in the module doc of `durability`).
pub(super) fn put_tenant_record(out: &mut Vec<u8>, t: &TenantRecord) {
    put_u32(out, t.id.0);
    put_str(out, &t.name);
    put_str(out, &t.principal);
    out.push(u8::from(t.admin));
    out.extend_from_slice(&t.token_sha256);
}

/// Reads what `put_tenant_record` wrote.
pub(super) fn tenant_record(r: &mut Reader<'_>) -> DecodeResult<TenantRecord> {
    let id = TenantId(r.u32("tenant id")?);
    let name = r.str("tenant name")?.to_string();
    let principal = r.str("principal name")?.to_string();
    let admin = match r.u8("principal kind")? {
        0 => false,
        1 => true,
        k => return Err(format!("unknown principal kind {k} of tenant {name}")),
    };
    let token_sha256 = r
        .take(32, "token hash")?
        .try_into()
        .map_err(|_| "token hash is not 32 bytes".to_string())?;
    Ok(TenantRecord {
        id,
        name,
        principal,
        admin,
        token_sha256,
    })
}

/// Appends a principal created or revoked (layout in the module doc of
/// `durability`).
pub(super) fn put_principal_change(out: &mut Vec<u8>, c: &crate::catalog::PrincipalChange) {
    use crate::catalog::Role;
    put_u32(out, c.tenant.0);
    put_str(out, &c.name);
    let Some(e) = &c.entry else {
        out.push(0);
        return;
    };
    out.push(match e.role {
        Role::Admin => 1,
        Role::Owner => 2,
        Role::Deployer => 3,
        Role::Caller(_) => 4,
        Role::Reader => 5,
    });
    out.extend_from_slice(&e.token_sha256);
    if let Role::Caller(grants) = &e.role {
        put_len(out, grants.len());
        for g in grants {
            put_str(out, g);
        }
    }
}

/// Reads what `put_principal_change` wrote.
pub(super) fn principal_change(
    r: &mut Reader<'_>,
) -> DecodeResult<crate::catalog::PrincipalChange> {
    use crate::catalog::{PrincipalEntry, Role};
    let tenant = TenantId(r.u32("tenant id")?);
    let name = r.str("principal name")?.to_string();
    let role = match r.u8("principal role")? {
        0 => None,
        1 => Some(Role::Admin),
        2 => Some(Role::Owner),
        3 => Some(Role::Deployer),
        4 => Some(Role::Caller(Vec::new())),
        5 => Some(Role::Reader),
        k => return Err(format!("unknown role {k} of principal {name}")),
    };
    let entry = match role {
        None => None,
        Some(mut role) => {
            let token_sha256 = r
                .take(32, "token hash")?
                .try_into()
                .map_err(|_| "token hash is not 32 bytes".to_string())?;
            if let Role::Caller(grants) = &mut role {
                // A grant is at least its 4-byte length.
                let n = r.count(4, "grants")?;
                for _ in 0..n {
                    grants.push(r.str("grant")?.to_string());
                }
                // Held to what a new one may be (1 to GRANTS_MAX names).
                role =
                    Role::parse("caller", grants).map_err(|e| format!("principal {name}: {e}"))?;
            }
            Some(PrincipalEntry { role, token_sha256 })
        }
    };
    Ok(crate::catalog::PrincipalChange {
        tenant,
        name,
        entry,
    })
}

/// Appends a tenant's quota set (layout in the module doc of `durability`).
pub(super) fn put_quota_set(out: &mut Vec<u8>, q: &crate::catalog::QuotaSet) {
    put_len(out, q.iter().count());
    for (field, value) in q.iter() {
        put_str(out, field.name());
        put_u64(out, value);
    }
}

/// Reads what `put_quota_set` wrote; a name this build does not know is
/// an error (never dropped), a value is taken as logged.
pub(super) fn quota_set(r: &mut Reader<'_>) -> DecodeResult<crate::catalog::QuotaSet> {
    // An entry is at least 12 bytes (an empty name and a value).
    let n = r.count(12, "quotas")?;
    let mut q = crate::catalog::QuotaSet::default();
    for _ in 0..n {
        let name = r.str("quota name")?;
        let value = r.u64("quota value")?;
        q.insert_logged(name, value).map_err(|e| e.to_string())?;
    }
    Ok(q)
}

/// Decodes a record's payload (as `encode_entry` made it).
pub fn decode_entry(payload: &[u8]) -> Result<Entry, String> {
    let mut r = Reader::new(payload);
    let entry = match r.u8("entry tag")? {
        ENTRY_COMMIT => Entry::Commit {
            tenant: TenantId(r.u32("tenant")?),
            writes: writes(&mut r)?,
            kept: None,
        },
        ENTRY_KEPT_COMMIT => {
            let tenant = TenantId(r.u32("tenant")?);
            let kept = kept(&mut r)?;
            Entry::Commit {
                tenant,
                writes: writes(&mut r)?,
                kept: Some(kept),
            }
        }
        ENTRY_MULTI | ENTRY_SHARE => {
            let txn = r.u64("txn")?;
            let tenant = TenantId(r.u32("tenant")?);
            let body = match r.u8("multi body tag")? {
                BODY_WRITES => MultiBody::Writes(writes(&mut r)?),
                BODY_KEPT_WRITES => {
                    let kept = kept(&mut r)?;
                    MultiBody::KeptWrites {
                        writes: writes(&mut r)?,
                        kept,
                    }
                }
                BODY_DDL => MultiBody::Ddl(r.str("ddl")?.to_string()),
                BODY_DEPLOY => MultiBody::Deploy {
                    name: r.str("module name")?.to_string(),
                    wasm: r.bytes("wasm")?.to_vec(),
                },
                BODY_DROP_MODULE => MultiBody::DropModule {
                    name: r.str("module name")?.to_string(),
                },
                BODY_CREATE_TENANT => MultiBody::CreateTenant(tenant_record(&mut r)?),
                BODY_SET_QUOTA => MultiBody::SetQuota(quota_set(&mut r)?),
                BODY_PRINCIPAL => MultiBody::Principal(principal_change(&mut r)?),
                t => return Err(format!("unknown multi body tag {t}")),
            };
            Entry::Multi { txn, tenant, body }
        }
        ENTRY_DECIDE => {
            let txn = r.u64("txn")?;
            let commit = match r.u8("outcome")? {
                0 => false,
                1 => true,
                o => {
                    return Err(format!(
                        "unknown outcome {o} of coordinator transaction {txn}"
                    ))
                }
            };
            Entry::Decide { txn, commit }
        }
        t => return Err(format!("unknown entry tag {t}")),
    };
    if !r.is_empty() {
        return Err(format!("{} bytes after the entry", payload.len() - r.pos()));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durability::frame::{frame, put_record, Framed};
    use crate::sql::Engine;
    use crate::types::{Ballot, NodeId, Slot};

    /// Values compared bit for bit (Value's own `==` is SQL's: 1 = 1.0, NaN
    /// rules), so a codec that changed a kind or a bit would fail.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
            (Value::Decimal(x), Value::Decimal(y)) => x.serialize() == y.serialize(),
            _ => a.kind() == b.kind() && a == b,
        }
    }

    /// `e` through the payload codec and a version-2 record frame.
    fn one_record(slot: Slot, e: &Entry) -> Entry {
        let mut payload = Vec::new();
        encode_entry(e, &mut payload).unwrap();
        let ballot = Ballot {
            round: slot.0 * 3,
            node: NodeId(7),
        };
        let mut out = Vec::new();
        put_record(&mut out, slot, ballot, &payload);
        match frame(&out, 2) {
            Framed::Ok {
                slot: got,
                ballot: b,
                payload,
                len,
            } => {
                assert_eq!((got, b), (slot, ballot));
                assert_eq!(len, out.len());
                decode_entry(payload).expect("decodes")
            }
            _ => panic!("record does not frame"),
        }
    }

    fn every_value() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Int(0),
            Value::Double(f64::NAN),
            Value::Double(-0.0),
            Value::Double(f64::INFINITY),
            Value::Double(f64::MIN_POSITIVE),
            Value::Decimal(Decimal::MAX),
            Value::Decimal(Decimal::MIN),
            Value::Decimal(Decimal::new(-1, 28)),
            Value::Decimal("-0.00".parse().expect("decimal")),
            Value::text(""),
            Value::text("short"),
            Value::text(&"long ütf-8 text ".repeat(300)),
            Value::Bytes(Arc::from(&[][..])),
            Value::Bytes(Arc::from(&[0u8, 255, 7][..])),
            Value::Timestamp(i64::MIN),
            Value::Timestamp(i64::MAX),
            Value::TimestampTz(-1),
            Value::Date(i32::MIN),
            Value::Date(19_000),
            Value::Time(0),
            Value::Time(86_400_000_000),
            Value::Interval(crate::types::Interval::new(-1, i32::MAX, i64::MIN)),
            Value::Uuid([0xa5; 16]),
        ]
    }

    #[test]
    fn every_value_round_trips_bit_for_bit() {
        let row: Row = every_value().into_boxed_slice();
        let e = Entry::Commit {
            tenant: TenantId(7),
            writes: LoggedWrites {
                ops: vec![LoggedOp::Insert {
                    table: "t".into(),
                    row: row.clone(),
                }],
            },
            kept: None,
        };
        let Entry::Commit { writes, tenant, .. } = one_record(Slot(3), &e) else {
            panic!("kind changed");
        };
        assert_eq!(tenant, TenantId(7));
        let LoggedOp::Insert { row: got, .. } = &writes.ops[0] else {
            panic!("op kind changed");
        };
        assert_eq!(got.len(), row.len());
        for (a, b) in row.iter().zip(got.iter()) {
            assert!(same(a, b), "{a:?} came back as {b:?}");
        }
    }

    fn ops() -> LoggedWrites {
        let r = |i: i64| -> Row { vec![Value::Int(i), Value::text("x")].into_boxed_slice() };
        LoggedWrites {
            ops: vec![
                LoggedOp::Insert {
                    table: "a".into(),
                    row: r(1),
                },
                LoggedOp::Update {
                    table: "Bee".into(),
                    old: r(1),
                    new: r(2),
                },
                LoggedOp::Delete {
                    table: "a".into(),
                    row: r(3),
                },
            ],
        }
    }

    fn quotas() -> crate::catalog::QuotaSet {
        let mut q = crate::catalog::QuotaSet::default();
        q.set_named("rows_max", Some(5)).unwrap();
        q.set_named("calls_per_sec", Some(1_000_000_000)).unwrap();
        q
    }

    #[test]
    fn a_quota_this_build_does_not_know_is_refused_not_dropped_and_a_value_loads_as_logged() {
        let entry = Entry::Multi {
            txn: 1,
            tenant: TenantId(3),
            body: MultiBody::SetQuota(quotas()),
        };
        let mut payload = Vec::new();
        encode_entry(&entry, &mut payload).unwrap();
        assert_eq!(revoked_principal(&payload), None);
        let revoke = |entry| Entry::Multi {
            txn: 41,
            tenant: TenantId(3),
            body: MultiBody::Principal(crate::catalog::PrincipalChange {
                tenant: TenantId(3),
                name: "app".into(),
                entry,
            }),
        };
        let mut revoked = Vec::new();
        encode_entry(&revoke(None), &mut revoked).unwrap();
        assert_eq!(
            revoked_principal(&revoked),
            Some((41, TenantId(3), "app".to_string()))
        );
        let made = Some(crate::catalog::PrincipalEntry {
            role: crate::catalog::Role::Reader,
            token_sha256: [1; 32],
        });
        let mut created = Vec::new();
        encode_entry(&revoke(made), &mut created).unwrap();
        assert_eq!(
            revoked_principal(&created),
            None,
            "a principal made is not revoked"
        );
        let at = payload
            .windows(8)
            .position(|w| w == b"rows_max")
            .expect("the name is in the payload");
        let mut unknown = payload.clone();
        unknown[at..at + 8].copy_from_slice(b"rows_mix");
        let e = decode_entry(&unknown).unwrap_err();
        assert!(e.contains("unknown quota \"rows_mix\""), "{e}");
        // A value over this build's ceiling was logged under another's:
        // it loads as logged.
        let value_at = payload
            .windows(8)
            .position(|w| w == 1_000_000_000u64.to_le_bytes())
            .expect("the value is in the payload");
        let mut high = payload;
        high[value_at..value_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let Entry::Multi {
            body: MultiBody::SetQuota(q),
            ..
        } = decode_entry(&high).unwrap()
        else {
            panic!("not a quota record")
        };
        assert_eq!(
            q.get(crate::catalog::QuotaField::CallsPerSec),
            Some(u64::MAX)
        );
    }

    #[test]
    fn every_entry_kind_round_trips() {
        let t = TenantId(u32::MAX);
        let entries = [
            Entry::Commit {
                tenant: t,
                writes: ops(),
                kept: None,
            },
            Entry::Commit {
                tenant: t,
                writes: LoggedWrites::default(),
                kept: None,
            },
            Entry::Multi {
                txn: 9,
                tenant: t,
                body: MultiBody::Writes(ops()),
            },
            Entry::Multi {
                txn: 10,
                tenant: t,
                body: MultiBody::Writes(LoggedWrites::default()),
            },
            Entry::Multi {
                txn: 11,
                tenant: t,
                body: MultiBody::Ddl("CREATE TABLE x (a INT)".into()),
            },
            Entry::Multi {
                txn: 12,
                tenant: t,
                body: MultiBody::Deploy {
                    name: "m".into(),
                    wasm: vec![0, 97, 115, 109],
                },
            },
            Entry::Multi {
                txn: u64::MAX,
                tenant: t,
                body: MultiBody::DropModule { name: "m".into() },
            },
            Entry::Commit {
                tenant: t,
                writes: ops(),
                kept: Some(KeptCall {
                    key: "k-1".into(),
                    output: Some(ProcOutput::Value(Value::Int(-4))),
                }),
            },
            Entry::Commit {
                tenant: t,
                writes: ops(),
                kept: Some(KeptCall {
                    key: "k-2".into(),
                    output: None,
                }),
            },
            Entry::Multi {
                txn: 13,
                tenant: t,
                body: MultiBody::KeptWrites {
                    writes: ops(),
                    kept: KeptCall {
                        key: "k-3".into(),
                        output: Some(ProcOutput::Rows(RowSet {
                            columns: vec![
                                ColumnInfo {
                                    name: "a".into(),
                                    ty: Some(DataType::Decimal {
                                        precision: 10,
                                        scale: 2,
                                    }),
                                },
                                ColumnInfo {
                                    name: "b".into(),
                                    ty: None,
                                },
                            ]
                            .into(),
                            rows: vec![every_value()[..2].to_vec(), vec![Value::Null; 2]],
                        })),
                    },
                },
            },
            Entry::Decide {
                txn: 14,
                commit: true,
            },
            Entry::Decide {
                txn: u64::MAX,
                commit: false,
            },
            Entry::Multi {
                txn: 15,
                tenant: t,
                body: MultiBody::SetQuota(quotas()),
            },
            Entry::Multi {
                txn: 16,
                tenant: t,
                body: MultiBody::SetQuota(crate::catalog::QuotaSet::default()),
            },
            Entry::Multi {
                txn: 17,
                tenant: t,
                body: MultiBody::Principal(crate::catalog::PrincipalChange {
                    tenant: t,
                    name: "app".into(),
                    entry: Some(crate::catalog::PrincipalEntry {
                        role: crate::catalog::Role::Caller(vec!["*".into(), "vote".into()]),
                        token_sha256: [3; 32],
                    }),
                }),
            },
            Entry::Multi {
                txn: 18,
                tenant: t,
                body: MultiBody::Principal(crate::catalog::PrincipalChange {
                    tenant: t,
                    name: "ro".into(),
                    entry: Some(crate::catalog::PrincipalEntry {
                        role: crate::catalog::Role::Reader,
                        token_sha256: [4; 32],
                    }),
                }),
            },
            Entry::Multi {
                txn: 19,
                tenant: t,
                body: MultiBody::Principal(crate::catalog::PrincipalChange {
                    tenant: t,
                    name: "app".into(),
                    entry: None,
                }),
            },
        ];
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(&one_record(Slot(i as u64 + 1), e), e);
            // The quick readers agree with the decoder.
            let mut payload = Vec::new();
            encode_entry(e, &mut payload).unwrap();
            let want_txn = match e {
                Entry::Multi { txn, .. } => Some(*txn),
                _ => None,
            };
            assert_eq!(multi_txn(&payload), want_txn);
            let want_decision = match e {
                Entry::Decide { txn, commit } => Some((*txn, *commit)),
                _ => None,
            };
            assert_eq!(decision(&payload), want_decision);
        }
        // A share marked for two-phase commit decodes the same.
        let multi = &entries[2];
        let mut share = Vec::new();
        encode_entry(multi, &mut share).unwrap();
        assert_eq!(share_txn(&share), None);
        assert!(mark_share(&mut share));
        assert_eq!(share_txn(&share), Some(9));
        assert_eq!(multi_txn(&share), Some(9));
        assert_eq!(&decode_entry(&share).unwrap(), multi);
        assert!(!mark_share(&mut share), "marked once");
        // An outcome byte other than 0 or 1 is refused, not read as one.
        let mut bad = Vec::new();
        encode_entry(
            &Entry::Decide {
                txn: 3,
                commit: true,
            },
            &mut bad,
        )
        .unwrap();
        bad[9] = 2;
        assert_eq!(decision(&bad), None);
        assert!(decode_entry(&bad)
            .unwrap_err()
            .contains("unknown outcome 2"));
        // What the kept-call bounds count is what is written.
        let kept = entries.iter().filter_map(|e| match e {
            Entry::Commit { kept: Some(k), .. } => Some(k),
            Entry::Multi {
                body: MultiBody::KeptWrites { kept, .. },
                ..
            } => Some(kept),
            _ => None,
        });
        let every = ProcOutput::Rows(RowSet {
            columns: vec![ColumnInfo {
                name: "v".into(),
                ty: Some(DataType::Varchar(Some(3))),
            }]
            .into(),
            rows: every_value().into_iter().map(|v| vec![v]).collect(),
        });
        let values: Vec<ProcOutput> = every_value().into_iter().map(ProcOutput::Value).collect();
        let mut outputs: Vec<Option<&ProcOutput>> = kept.map(|k| k.output.as_ref()).collect();
        outputs.push(Some(&every));
        outputs.extend(values.iter().map(Some));
        for output in &outputs {
            let mut b = Vec::new();
            put_output(&mut b, *output);
            assert_eq!(output_bytes(*output), b.len(), "{output:?}");
        }
        assert!(outputs.len() > values.len() + 3);
    }

    #[test]
    fn encode_commit_gives_encode_entry_bytes() {
        let mut e = Engine::new();
        e.execute("CREATE TABLE Acct (id INT PRIMARY KEY, v DOUBLE, s TEXT)")
            .expect("ddl");
        e.execute("CREATE TABLE other (x INT)").expect("ddl");
        e.execute("INSERT INTO acct VALUES (1, 1.5, 'a'), (2, -0.0, NULL)")
            .expect("insert");
        e.begin().expect("begin");
        e.execute("INSERT INTO other VALUES (5)").expect("insert");
        e.execute("UPDATE acct SET v = v + 1 WHERE id = 1")
            .expect("update");
        e.execute("DELETE FROM acct WHERE id = 2").expect("delete");
        let ws = e.commit().expect("commit");
        assert_eq!(ws.ops.len(), 3);
        let db = e.database();
        let mut fast = vec![0xAA];
        encode_commit(TenantId(3), db, &ws, None, &mut fast).unwrap();
        let mut slow = vec![0xAA];
        let entry = Entry::Commit {
            tenant: TenantId(3),
            writes: LoggedWrites::from_write_set(db, &ws),
            kept: None,
        };
        encode_entry(&entry, &mut slow).unwrap();
        assert_eq!(fast, slow);
        assert_eq!(one_record(Slot(42), &entry), entry);
        let LoggedOp::Insert { table, .. } = &entry_ops(&entry)[0] else {
            panic!("first op is the insert");
        };
        assert_eq!(table.as_str(), "other");
    }

    fn entry_ops(e: &Entry) -> &[LoggedOp] {
        match e {
            Entry::Commit { writes, .. } => &writes.ops,
            _ => &[],
        }
    }

    #[test]
    fn hostile_payloads_are_errors_not_panics() {
        let mut payload = Vec::new();
        encode_entry(
            &Entry::Commit {
                tenant: TenantId(1),
                writes: ops(),
                kept: None,
            },
            &mut payload,
        )
        .unwrap();
        for cut in 0..payload.len() {
            assert!(decode_entry(&payload[..cut]).is_err(), "cut at {cut}");
        }
        // A kept call's answer cut or garbled anywhere: an error.
        let mut kept = Vec::new();
        let rows = ProcOutput::Rows(RowSet {
            columns: vec![ColumnInfo {
                name: "n".into(),
                ty: Some(DataType::BigInt),
            }]
            .into(),
            rows: vec![vec![Value::Int(1)], vec![Value::Null]],
        });
        let entry = Entry::Commit {
            tenant: TenantId(1),
            writes: ops(),
            kept: Some(KeptCall {
                key: "k".into(),
                output: Some(rows),
            }),
        };
        encode_entry(&entry, &mut kept).unwrap();
        for cut in 0..kept.len() {
            assert!(decode_entry(&kept[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..kept.len() {
            let mut bad = kept.clone();
            bad[at] = 0xff;
            // Refused, or (a changed value) decoded as something else.
            if let Ok(e) = decode_entry(&bad) {
                assert_ne!(e, entry, "byte {at} changed nothing");
            }
        }
        // A huge answer row count is refused without allocating.
        let mut p = vec![
            ENTRY_KEPT_COMMIT,
            1,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            b'k',
            OUTPUT_ROWS,
            0,
            0,
            0,
            0,
        ];
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_entry(&p).unwrap_err().contains("answer row count"));
        // A huge op count is refused without allocating.
        let mut p = vec![ENTRY_COMMIT, 1, 0, 0, 0];
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_entry(&p).unwrap_err().contains("op count"));
        // A decimal with scale 29 is refused.
        let mut b = Decimal::ONE.serialize();
        b[2] = 29;
        assert!(decimal(b).is_err());
    }

    #[test]
    fn a_payload_over_the_limit_is_refused_and_removed() {
        let big = Entry::Multi {
            txn: 1,
            tenant: TenantId(1),
            body: MultiBody::Deploy {
                name: "m".into(),
                wasm: vec![0; PAYLOAD_BYTES_MAX],
            },
        };
        let mut out = vec![1, 2, 3];
        let err = encode_entry(&big, &mut out).unwrap_err();
        assert!(err.bytes > PAYLOAD_BYTES_MAX);
        assert_eq!(out, vec![1, 2, 3]);
    }

    /// The size check of a load chunk's shares measures without copying
    /// them: it must agree with what the commit then encodes.
    #[test]
    fn multi_writes_bytes_is_the_encoded_share_size() {
        let writes = LoggedWrites {
            ops: vec![
                LoggedOp::Insert {
                    table: "t".into(),
                    row: vec![Value::Int(1), Value::Text("a".into())].into(),
                },
                LoggedOp::Delete {
                    table: "other".into(),
                    row: vec![Value::Null].into(),
                },
            ],
        };
        let entry = Entry::Multi {
            txn: u64::MAX,
            tenant: TenantId(u32::MAX),
            body: MultiBody::Writes(writes.clone()),
        };
        let mut out = Vec::new();
        encode_entry(&entry, &mut out).unwrap();
        let mut scratch = vec![9; 3];
        assert_eq!(
            multi_writes_bytes(&writes, &mut scratch).unwrap(),
            out.len()
        );
        let big = LoggedWrites {
            ops: vec![LoggedOp::Insert {
                table: "t".into(),
                row: vec![Value::Bytes(vec![0u8; PAYLOAD_BYTES_MAX].into())].into(),
            }],
        };
        let err = multi_writes_bytes(&big, &mut scratch).unwrap_err();
        assert!(err.bytes > PAYLOAD_BYTES_MAX);
    }

    #[test]
    fn deployed_module_reads_only_deploys() {
        let deploy = Entry::Multi {
            txn: 9,
            tenant: TenantId(3),
            body: MultiBody::Deploy {
                name: "kv".into(),
                wasm: vec![0, 97, 115, 109],
            },
        };
        let mut p = Vec::new();
        encode_entry(&deploy, &mut p).unwrap();
        assert_eq!(deployed_module(&p), Some(("kv", &[0, 97, 115, 109][..])));
        for cut in 0..p.len() {
            assert_eq!(deployed_module(&p[..cut]), None, "cut at {cut}");
        }
        let mut longer = p.clone();
        longer.push(0);
        assert_eq!(deployed_module(&longer), None);
        let others = [
            Entry::Multi {
                txn: 9,
                tenant: TenantId(3),
                body: MultiBody::DropModule { name: "kv".into() },
            },
            Entry::Multi {
                txn: 9,
                tenant: TenantId(3),
                body: MultiBody::Ddl("CREATE TABLE t (a INT PRIMARY KEY)".into()),
            },
            Entry::Commit {
                tenant: TenantId(3),
                writes: LoggedWrites::default(),
                kept: None,
            },
        ];
        for e in others {
            let mut p = Vec::new();
            encode_entry(&e, &mut p).unwrap();
            assert_eq!(deployed_module(&p), None, "{e:?}");
        }
    }
}
