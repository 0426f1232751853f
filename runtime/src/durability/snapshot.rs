//! Snapshot files: every tenant's tables (schema, indexes, partition column,
//! rows), views and modules as of one lsn, in CRC-checked frames.
//!
//! Owns: writing a snapshot atomically (temp name, fsync, rename, fsync dir)
//! and loading one back into fresh engines. Must not: decide when to snapshot
//! or which segments to drop (`log` does), or read a frame bigger than
//! `FRAME_BYTES_MAX` or past the file's end.

use super::record::{put_bytes, put_len, put_row, put_str, put_u32, put_u64, put_value, Reader};
use super::{io_err, sync_dir, DurabilityError, Lsn};
use crate::sql::Engine;
use crate::storage::{ColumnDef, IndexDef, IndexKind, TableSchema};
use crate::types::{DataType, TenantId};
use cap_std::fs::{Dir, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"OHMSNAP\0";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 12;
pub(super) const TMP_SUFFIX: &str = ".snap.tmp";
/// Largest frame; a module or a single row bigger than this cannot be saved.
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// Rows frames are closed once they pass this size.
const ROWS_FRAME_BYTES: usize = 1 << 20;
const NONE: u32 = u32::MAX;

const F_BEGIN: u8 = 1;
const F_TENANT: u8 = 2;
const F_TABLE: u8 = 3;
const F_ROWS: u8 = 4;
const F_VIEW: u8 = 5;
const F_MODULE: u8 = 6;
const F_END: u8 = 7;

/// One tenant's state, borrowed for `Log::write_snapshot`.
pub struct TenantImage<'a> {
    pub tenant: TenantId,
    pub engine: &'a Engine,
    pub modules: &'a [(String, Arc<[u8]>)],
}

/// A snapshot read back.
#[derive(Debug)]
pub struct LoadedSnapshot {
    pub lsn: Lsn,
    pub mp_txn_max: u64,
    pub tenants: Vec<LoadedTenant>,
}

/// One tenant rebuilt from a snapshot.
pub struct LoadedTenant {
    pub tenant: TenantId,
    /// Tables with schema, indexes, partition column and rows; views.
    pub engine: Engine,
    pub modules: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for LoadedTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedTenant")
            .field("tenant", &self.tenant)
            .field("tables", &self.engine.database().tables().count())
            .field("modules", &self.modules.len())
            .finish()
    }
}

/// What `write_snapshot` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub file: String,
    pub bytes: u64,
    pub rows: u64,
}

pub(super) fn snapshot_name(lsn: Lsn) -> String {
    format!("snap-{:020}.snap", lsn.0)
}

/// Frames onto a buffered file, counting bytes.
struct FrameWriter<W: Write> {
    w: W,
    file: String,
    bytes: u64,
}

impl<W: Write> FrameWriter<W> {
    fn emit(&mut self, payload: &mut Vec<u8>) -> Result<(), DurabilityError> {
        if payload.len() > FRAME_BYTES_MAX {
            return Err(DurabilityError::Restore {
                file: self.file.clone(),
                what: format!(
                    "a frame of {} bytes is over {FRAME_BYTES_MAX}",
                    payload.len()
                ),
            });
        }
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        head[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.w
            .write_all(&head)
            .map_err(io_err(&self.file, "write"))?;
        self.w
            .write_all(payload)
            .map_err(io_err(&self.file, "write"))?;
        self.bytes += 8 + payload.len() as u64;
        payload.clear();
        Ok(())
    }
}

fn put_type(out: &mut Vec<u8>, t: DataType) {
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
    }
}

fn put_opt_index(out: &mut Vec<u8>, i: Option<usize>) {
    put_u32(
        out,
        i.map_or(NONE, |i| u32::try_from(i).expect("column counts are small")),
    );
}

fn put_schema(out: &mut Vec<u8>, s: &TableSchema) {
    put_str(out, &s.name);
    put_len(out, s.columns.len());
    for c in &s.columns {
        put_str(out, &c.name);
        put_type(out, c.ty);
        out.push(c.nullable as u8);
        match &c.default {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                put_value(out, v);
            }
        }
    }
    put_opt_index(out, s.primary_key);
    put_len(out, s.indexes.len());
    for ix in &s.indexes {
        put_str(out, &ix.name);
        put_len(out, ix.columns.len());
        for &c in &ix.columns {
            put_opt_index(out, Some(c));
        }
        out.push(ix.unique as u8);
        out.push(match ix.kind {
            IndexKind::Hash => 1,
            IndexKind::Ordered => 2,
        });
    }
    put_opt_index(out, s.partition_column);
}

fn write_tenant<W: Write>(
    fw: &mut FrameWriter<W>,
    p: &mut Vec<u8>,
    t: &TenantImage<'_>,
) -> Result<u64, DurabilityError> {
    assert!(
        !t.engine.database().in_txn(),
        "snapshot of an engine with an open transaction"
    );
    let db = t.engine.database();
    p.push(F_TENANT);
    put_u32(p, t.tenant.0);
    put_len(p, db.tables().count());
    put_len(p, t.engine.views().len());
    put_len(p, t.modules.len());
    fw.emit(p)?;
    let mut rows = 0u64;
    for table in db.tables() {
        p.push(F_TABLE);
        put_schema(p, table.schema());
        put_u64(p, table.len() as u64);
        fw.emit(p)?;
        let mut in_frame = 0u32;
        p.extend_from_slice(&[F_ROWS, 0, 0, 0, 0]);
        for (_, row) in table.scan() {
            put_row(p, row);
            in_frame += 1;
            rows += 1;
            if p.len() >= ROWS_FRAME_BYTES {
                p[1..5].copy_from_slice(&in_frame.to_le_bytes());
                fw.emit(p)?;
                in_frame = 0;
                p.extend_from_slice(&[F_ROWS, 0, 0, 0, 0]);
            }
        }
        if in_frame > 0 {
            p[1..5].copy_from_slice(&in_frame.to_le_bytes());
            fw.emit(p)?;
        }
        p.clear();
    }
    for view in t.engine.views().values() {
        p.push(F_VIEW);
        put_str(p, &view.name);
        put_len(p, view.columns.len());
        for c in &view.columns {
            put_str(p, c);
        }
        put_str(p, &view.query.to_string());
        fw.emit(p)?;
    }
    for (name, wasm) in t.modules {
        p.push(F_MODULE);
        put_str(p, name);
        put_bytes(p, wasm);
        fw.emit(p)?;
    }
    Ok(rows)
}

/// Writes `snap-<lsn>.snap` atomically.
pub(super) fn write(
    dir: &Dir,
    lsn: Lsn,
    mp_txn_max: u64,
    tenants: &[TenantImage<'_>],
) -> Result<SnapshotInfo, DurabilityError> {
    let name = snapshot_name(lsn);
    let tmp = format!("{}{TMP_SUFFIX}", name.trim_end_matches(".snap"));
    let file = dir
        .open_with(
            &tmp,
            OpenOptions::new().write(true).create(true).truncate(true),
        )
        .map_err(io_err(&tmp, "create"))?;
    let mut fw = FrameWriter {
        w: BufWriter::with_capacity(1 << 20, file),
        file: tmp.clone(),
        bytes: 0,
    };
    let mut head = MAGIC.to_vec();
    put_u32(&mut head, VERSION);
    fw.w.write_all(&head).map_err(io_err(&tmp, "write"))?;
    fw.bytes += head.len() as u64;
    let mut p = Vec::new();
    p.push(F_BEGIN);
    put_u64(&mut p, lsn.0);
    put_u64(&mut p, mp_txn_max);
    put_len(&mut p, tenants.len());
    fw.emit(&mut p)?;
    let mut rows = 0;
    for t in tenants {
        rows += write_tenant(&mut fw, &mut p, t)?;
    }
    p.push(F_END);
    put_u64(&mut p, rows);
    fw.emit(&mut p)?;
    let bytes = fw.bytes;
    let file =
        fw.w.into_inner()
            .map_err(|e| io_err(&tmp, "write")(e.into_error()))?;
    file.sync_all().map_err(io_err(&tmp, "fsync"))?;
    drop(file);
    dir.rename(&tmp, dir, &name)
        .map_err(io_err(&name, "rename"))?;
    sync_dir(dir)?;
    Ok(SnapshotInfo {
        file: name,
        bytes,
        rows,
    })
}

/// Reads frames from a snapshot file, never past its length.
struct FrameReader<R: Read> {
    r: R,
    file: String,
    offset: u64,
    len: u64,
    buf: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    fn corrupt(&self, offset: u64, what: String) -> DurabilityError {
        DurabilityError::Corrupt {
            file: self.file.clone(),
            offset,
            what,
        }
    }

    /// The next frame's payload, and its offset.
    fn next(&mut self) -> Result<(u64, &[u8]), DurabilityError> {
        let at = self.offset;
        let mut head = [0u8; 8];
        if self.len.saturating_sub(at) < 8 {
            return Err(self.corrupt(at, "snapshot ends before its End frame".into()));
        }
        self.r
            .read_exact(&mut head)
            .map_err(io_err(&self.file, "read"))?;
        let n = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if n > FRAME_BYTES_MAX || n as u64 > self.len - at - 8 {
            return Err(self.corrupt(at, format!("frame length {n} is out of bounds")));
        }
        self.buf.resize(n, 0);
        self.r
            .read_exact(&mut self.buf)
            .map_err(io_err(&self.file, "read"))?;
        if crc32fast::hash(&self.buf) != crc {
            return Err(self.corrupt(at, "frame CRC mismatch".into()));
        }
        self.offset = at + 8 + n as u64;
        Ok((at, &self.buf))
    }
}

fn get_type(r: &mut Reader<'_>) -> Result<DataType, String> {
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
        t => return Err(format!("unknown type tag {t}")),
    })
}

fn get_opt_index(r: &mut Reader<'_>, what: &str) -> Result<Option<usize>, String> {
    let i = r.u32(what)?;
    Ok((i != NONE).then_some(i as usize))
}

fn get_bool(r: &mut Reader<'_>, what: &str) -> Result<bool, String> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(format!("{what} flag {b} is not 0 or 1")),
    }
}

fn get_schema(r: &mut Reader<'_>) -> Result<TableSchema, String> {
    let name = r.str("table name")?.to_string();
    let n = r.count(7, "column count")?;
    let mut columns = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str("column name")?.to_string();
        let ty = get_type(r)?;
        let nullable = get_bool(r, "nullable")?;
        let default = if get_bool(r, "default")? {
            Some(r.value()?)
        } else {
            None
        };
        columns.push(ColumnDef {
            name,
            ty,
            nullable,
            default,
        });
    }
    let primary_key = get_opt_index(r, "primary key")?;
    let n = r.count(10, "index count")?;
    let mut indexes = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str("index name")?.to_string();
        let k = r.count(4, "index column count")?;
        let mut cols = Vec::with_capacity(k);
        for _ in 0..k {
            cols.push(r.u32("index column")? as usize);
        }
        let unique = get_bool(r, "unique")?;
        let kind = match r.u8("index kind")? {
            1 => IndexKind::Hash,
            2 => IndexKind::Ordered,
            k => return Err(format!("unknown index kind {k}")),
        };
        indexes.push(IndexDef {
            name,
            columns: cols,
            unique,
            kind,
        });
    }
    let partition_column = get_opt_index(r, "partition column")?;
    Ok(TableSchema {
        name,
        columns,
        primary_key,
        indexes,
        partition_column,
    })
}

/// Quotes an identifier so it comes back exactly (case and all).
fn quote(id: &str) -> String {
    format!("\"{}\"", id.replace('"', "\"\""))
}

struct Loader<R: Read> {
    fr: FrameReader<R>,
    rows: u64,
}

impl<R: Read> Loader<R> {
    /// Reads the next frame, which must be of `kind`, and decodes it with `f`.
    fn frame<T>(
        &mut self,
        kind: u8,
        f: impl FnOnce(&mut Reader<'_>) -> Result<T, String>,
    ) -> Result<T, DurabilityError> {
        let file = self.fr.file.clone();
        let (at, payload) = self.fr.next()?;
        let corrupt = |what: String| DurabilityError::Corrupt {
            file,
            offset: at,
            what,
        };
        let mut r = Reader::new(payload);
        let decoded = r.u8("frame kind").and_then(|got| {
            if got != kind {
                return Err(format!("frame kind {got}, expected {kind}"));
            }
            let v = f(&mut r)?;
            if !r.is_empty() {
                return Err("bytes after the frame's fields".to_string());
            }
            Ok(v)
        });
        decoded.map_err(corrupt)
    }

    fn restore_err(&self, what: String) -> DurabilityError {
        DurabilityError::Restore {
            file: self.fr.file.clone(),
            what,
        }
    }

    fn table(&mut self, engine: &mut Engine) -> Result<(), DurabilityError> {
        let (schema, mut left) =
            self.frame(F_TABLE, |r| Ok((get_schema(r)?, r.u64("row count")?)))?;
        let name = schema.name.clone();
        let db = engine.database_mut();
        let id = db
            .create_table(schema)
            .map_err(|e| self.restore_err(format!("table \"{name}\": {e}")))?;
        while left > 0 {
            let rows = self.frame(F_ROWS, |r| {
                let n = r.count(4, "rows in frame")?;
                (0..n).map(|_| r.row()).collect::<Result<Vec<_>, _>>()
            })?;
            if rows.is_empty() || rows.len() as u64 > left {
                let what = format!("rows frame of {} rows, {left} expected", rows.len());
                return Err(self.fr.corrupt(self.fr.offset, what));
            }
            left -= rows.len() as u64;
            self.rows += rows.len() as u64;
            // A transaction per frame: its write-set is dropped at commit.
            let fail = |e: crate::storage::StorageError| format!("table \"{name}\": {e}");
            db.begin().map_err(|e| self.restore_err(fail(e)))?;
            for row in rows {
                if let Err(e) = db.insert(id, row) {
                    db.rollback().map_err(|e| self.restore_err(fail(e)))?;
                    return Err(self.restore_err(fail(e)));
                }
            }
            db.commit().map_err(|e| self.restore_err(fail(e)))?;
        }
        Ok(())
    }

    fn tenant(&mut self) -> Result<LoadedTenant, DurabilityError> {
        let (tenant, tables, views, modules) = self.frame(F_TENANT, |r| {
            Ok((
                TenantId(r.u32("tenant")?),
                r.u32("tables")?,
                r.u32("views")?,
                r.u32("modules")?,
            ))
        })?;
        let mut engine = Engine::new();
        for _ in 0..tables {
            self.table(&mut engine)?;
        }
        let mut pending = Vec::new();
        for _ in 0..views {
            pending.push(self.frame(F_VIEW, |r| {
                let name = quote(r.str("view name")?);
                let n = r.count(4, "view column count")?;
                let cols = (0..n)
                    .map(|_| r.str("view column").map(quote))
                    .collect::<Result<Vec<_>, _>>()?;
                let query = r.str("view query")?;
                let cols = if cols.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", cols.join(", "))
                };
                Ok(format!("CREATE VIEW {name}{cols} AS {query}"))
            })?);
        }
        // A view may use one created after it alphabetically: retry until no progress.
        while !pending.is_empty() {
            let before = pending.len();
            let mut last_err = String::new();
            pending.retain(|sql| match engine.execute(sql) {
                Ok(_) => false,
                Err(e) => {
                    last_err = format!("{sql}: {e}");
                    true
                }
            });
            if pending.len() == before {
                return Err(self.restore_err(last_err));
            }
        }
        let mut mods = Vec::new();
        for _ in 0..modules {
            mods.push(self.frame(F_MODULE, |r| {
                Ok((r.str("module name")?.to_string(), r.bytes("wasm")?.to_vec()))
            })?);
        }
        Ok(LoadedTenant {
            tenant,
            engine,
            modules: mods,
        })
    }
}

/// Loads snapshot file `name`, rebuilding every tenant's engine.
pub(super) fn load(dir: &Dir, name: &str) -> Result<LoadedSnapshot, DurabilityError> {
    let file = dir.open(name).map_err(io_err(name, "open"))?;
    let len = file.metadata().map_err(io_err(name, "stat"))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut head = [0u8; HEADER_BYTES];
    let corrupt = |what: &str| DurabilityError::Corrupt {
        file: name.to_string(),
        offset: 0,
        what: what.to_string(),
    };
    if len < HEADER_BYTES as u64 {
        return Err(corrupt("shorter than the snapshot header"));
    }
    r.read_exact(&mut head).map_err(io_err(name, "read"))?;
    if &head[..8] != MAGIC || head[8..12] != VERSION.to_le_bytes() {
        return Err(corrupt("bad snapshot header (magic or version)"));
    }
    let fr = FrameReader {
        r,
        file: name.to_string(),
        offset: HEADER_BYTES as u64,
        len,
        buf: Vec::new(),
    };
    let mut l = Loader { fr, rows: 0 };
    let (lsn, mp_txn_max, n) = l.frame(F_BEGIN, |r| {
        Ok((Lsn(r.u64("lsn")?), r.u64("mp_txn_max")?, r.u32("tenants")?))
    })?;
    if snapshot_name(lsn) != name {
        return Err(corrupt(&format!(
            "holds lsn {lsn}, which its name does not"
        )));
    }
    let mut tenants = Vec::new();
    for _ in 0..n {
        tenants.push(l.tenant()?);
    }
    let total = l.frame(F_END, |r| r.u64("total rows"))?;
    if total != l.rows || l.fr.offset != len {
        let what = format!(
            "End frame says {total} rows ({} read), ends at {} of {len} bytes",
            l.rows, l.fr.offset
        );
        return Err(l.fr.corrupt(l.fr.offset, what));
    }
    Ok(LoadedSnapshot {
        lsn,
        mp_txn_max,
        tenants,
    })
}
