//! Snapshots: every tenant's tables (schema, indexes, partition column,
//! rows), views and modules as of one slot, as bytes in CRC-checked frames
//! (layout in the module doc of `durability`).
//!
//! Owns: the codec only: `Encoder` (state to bytes a piece at a time, rows
//! as the caller hands them over), `encode` (all at once), `decode` (bytes to fresh
//! engines), `read_meta` (the slot and ballot, from the first frame) and
//! `check` (every frame's CRC, without rebuilding anything). Must not: do
//! I/O (`Log::install_snapshot` writes the bytes atomically, `read_snapshot`
//! reads them back), decide when to snapshot, or read a frame bigger than
//! `FRAME_BYTES_MAX` or past the end of the bytes.
//!
//! ```text
//!   TenantImage* --encode--> bytes --install_snapshot--> snap-<slot>.snap
//!   snap-<slot>.snap --read_snapshot--> bytes --decode--> LoadedSnapshot
//! ```

use super::record::KeptCall;
use super::record::{
    get_output, get_type, principal_change, put_bytes, put_len, put_output, put_principal_change,
    put_quota_set, put_row, put_str, put_tenant_record, put_type, put_u32, put_u64, put_value,
    quota_set, tenant_record, Reader, TenantRecord,
};
use super::storage::SnapshotMeta;
use super::DurabilityError;
use crate::sql::Engine;
use crate::storage::{
    CheckConstraint, ColumnDef, ColumnDefault, ForeignKey, IndexDef, IndexKind, TableId,
    TableSchema,
};
use crate::types::{Ballot, NodeId, Slot, TenantId};
use crate::wasm::ProcOutput;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"OHMSNAP\0";
/// Version 2 added the ballot to the Begin frame, version 3 the kept
/// calls (idempotency keys and answers), version 4 the Committed frame,
/// version 5 the Tenants frame, version 6 each tenant's quotas, version 7
/// the principals in the Tenants frame, version 8 each table's foreign
/// keys, version 9 CHECK constraints and defaults computed per insert;
/// versions 1 to 8 still load.
const VERSION: u32 = 9;
const HEADER_BYTES: usize = 12;
/// Enough of a snapshot's start to hold its header and Begin frame.
pub(super) const META_PREFIX_BYTES: usize = HEADER_BYTES + 8 + 64;
/// Largest frame; a module or a single row bigger than this cannot be saved.
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// Rows frames are closed once they pass this size.
const ROWS_FRAME_BYTES: usize = 1 << 20;
const NONE: u32 = u32::MAX;
/// Names bytes that came without a file (`decode`, `read_meta`) in errors.
const BYTES_LABEL: &str = "snapshot bytes";

const F_BEGIN: u8 = 1;
const F_TENANT: u8 = 2;
const F_TABLE: u8 = 3;
const F_ROWS: u8 = 4;
const F_VIEW: u8 = 5;
const F_MODULE: u8 = 6;
const F_END: u8 = 7;
const F_KEPT: u8 = 8;
const F_COMMITTED: u8 = 9;
const F_TENANTS: u8 = 10;
/// Committed transactions a snapshot holds at most (a bigger count is
/// corruption, never an allocation).
const COMMITTED_MAX: usize = 1 << 20;

/// The coordinator transactions partition 0 knows were committed (see
/// `partition::decide`): every one from `floor` on is in `txns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    pub floor: u64,
    pub txns: Vec<u64>,
}

/// One tenant's state, borrowed for `encode`.
pub struct TenantImage<'a> {
    pub tenant: TenantId,
    pub engine: &'a Engine,
    pub modules: &'a [(String, Arc<[u8]>)],
    /// Calls kept for their idempotency keys, oldest first.
    pub kept: Vec<(&'a str, Option<&'a ProcOutput>)>,
    /// The quotas an administrator set for the tenant.
    pub quota: &'a crate::catalog::QuotaSet,
}

/// A snapshot decoded.
#[derive(Debug)]
pub struct LoadedSnapshot {
    /// It holds everything up to and including this slot...
    pub slot: Slot,
    /// ...whose record was accepted in this ballot (default for version 1).
    pub ballot: Ballot,
    pub mp_txn_max: u64,
    /// Empty before version 4.
    pub committed: Committed,
    /// Partition 0 in a cluster: the tenants created there (empty before
    /// version 5).
    pub created_tenants: Vec<TenantRecord>,
    /// Partition 0 in a cluster: the principals created or revoked there
    /// (empty before version 7).
    pub principals: crate::catalog::PrincipalOverlay,
    pub tenants: Vec<LoadedTenant>,
}

/// One tenant rebuilt from a snapshot.
pub struct LoadedTenant {
    pub tenant: TenantId,
    /// Tables with schema, indexes, partition column and rows; views.
    pub engine: Engine,
    pub modules: Vec<(String, Vec<u8>)>,
    /// Calls kept for their idempotency keys, oldest first.
    pub kept: Vec<KeptCall>,
    /// The quotas an administrator set (none before version 6).
    pub quota: crate::catalog::QuotaSet,
}

impl std::fmt::Debug for LoadedTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedTenant")
            .field("tenant", &self.tenant)
            .field("tables", &self.engine.database().tables().count())
            .field("modules", &self.modules.len())
            .field("kept", &self.kept.len())
            .finish()
    }
}

pub(super) fn snapshot_name(slot: Slot) -> String {
    format!("snap-{:020}.snap", slot.0)
}

/// The file a snapshot is written to aside (`Stager`) before
/// `install_staged` renames it to `snapshot_name`; one left by a crash is
/// removed at open (a `snap-….tmp` leftover).
pub(super) fn staged_name(slot: Slot) -> String {
    format!("{}.staged.tmp", snapshot_name(slot))
}

/// Frames onto the snapshot's bytes.
struct FrameWriter {
    out: Vec<u8>,
    file: String,
}

impl FrameWriter {
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
        put_u32(&mut self.out, payload.len() as u32);
        put_u32(&mut self.out, crc32fast::hash(payload));
        self.out.extend_from_slice(payload);
        payload.clear();
        Ok(())
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
            Some(ColumnDefault::Value(v)) => {
                out.push(1);
                put_value(out, v);
            }
            Some(ColumnDefault::Expr(sql)) => {
                out.push(2);
                put_str(out, sql);
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
    put_len(out, s.foreign_keys.len());
    for fk in &s.foreign_keys {
        put_str(out, &fk.name);
        put_len(out, fk.columns.len());
        for &c in &fk.columns {
            put_opt_index(out, Some(c));
        }
        put_str(out, &fk.parent);
        put_len(out, fk.parent_columns.len());
        for &c in &fk.parent_columns {
            put_opt_index(out, Some(c));
        }
    }
    put_len(out, s.checks.len());
    for c in &s.checks {
        put_str(out, &c.name);
        put_str(out, &c.expr);
    }
}

/// A piece of a snapshot in order: frames encoded when it began, or the
/// rows of one table, handed over later (`Encoder::row`).
pub enum Piece {
    /// Frames encoded when the snapshot began, to append as they are.
    Frames(Vec<u8>),
    /// The rows of `tenant`'s table `table`, as they were then.
    Rows { tenant: TenantId, table: TableId },
}

/// A snapshot encoded a piece at a time, so that the partition can go on
/// serving between pieces (`partition::snapshots`): `begin` encodes all but
/// the tables' rows at once (schemas, views, modules, kept calls) and returns the pieces in
/// file order; the rows follow, table by table, as the caller hands them
/// over (as they were when it began: `storage::Table::snapshot_rows`).
pub struct Encoder {
    fw: FrameWriter,
    /// The open Rows frame's payload.
    p: Vec<u8>,
    in_frame: u32,
    rows: u64,
}

impl Encoder {
    /// The snapshot of `tenants` as of `meta`: its first frames, and the
    /// pieces that follow them.
    pub fn begin(
        meta: SnapshotMeta,
        mp_txn_max: u64,
        committed: &Committed,
        created_tenants: &[TenantRecord],
        principals: &crate::catalog::PrincipalOverlay,
        tenants: &[TenantImage<'_>],
    ) -> Result<(Encoder, Vec<Piece>), DurabilityError> {
        let file = snapshot_name(meta.slot);
        let mut fw = FrameWriter {
            out: MAGIC.to_vec(),
            file: file.clone(),
        };
        put_u32(&mut fw.out, VERSION);
        let mut p = Vec::new();
        p.push(F_BEGIN);
        put_u64(&mut p, meta.slot.0);
        put_u64(&mut p, meta.ballot.round);
        put_u32(&mut p, meta.ballot.node.0);
        put_u64(&mut p, mp_txn_max);
        put_len(&mut p, tenants.len());
        fw.emit(&mut p)?;
        p.push(F_COMMITTED);
        put_u64(&mut p, committed.floor);
        put_len(&mut p, committed.txns.len());
        for t in &committed.txns {
            put_u64(&mut p, *t);
        }
        fw.emit(&mut p)?;
        p.push(F_TENANTS);
        put_len(&mut p, created_tenants.len());
        for t in created_tenants {
            put_tenant_record(&mut p, t);
        }
        put_len(&mut p, principals.len());
        for ((tenant, name), entry) in principals {
            let change = crate::catalog::PrincipalChange {
                tenant: *tenant,
                name: name.clone(),
                entry: entry.clone(),
            };
            put_principal_change(&mut p, &change);
        }
        fw.emit(&mut p)?;
        let mut pieces = Vec::new();
        let mut frames = FrameWriter {
            out: Vec::new(),
            file,
        };
        for t in tenants {
            tenant_pieces(&mut frames, &mut p, t, &mut pieces)?;
        }
        let encoder = Encoder {
            fw,
            p,
            in_frame: 0,
            rows: 0,
        };
        Ok((encoder, pieces))
    }

    /// Bytes encoded so far.
    pub fn encoded_bytes(&self) -> usize {
        self.fw.out.len() + self.p.len()
    }

    /// Appends frames encoded by `begin` (a `Piece::Frames`).
    pub fn frames(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.in_frame, 0, "frames inside a table's rows");
        self.fw.out.extend_from_slice(bytes);
    }

    /// One row of the table whose rows are being handed over.
    pub fn row(&mut self, row: &[crate::types::Value]) -> Result<(), DurabilityError> {
        if self.in_frame == 0 {
            self.p.clear();
            self.p.extend_from_slice(&[F_ROWS, 0, 0, 0, 0]);
        }
        put_row(&mut self.p, row);
        self.in_frame += 1;
        self.rows += 1;
        if self.p.len() >= ROWS_FRAME_BYTES {
            self.close_rows()?;
        }
        Ok(())
    }

    /// The table's rows are all handed over.
    pub fn end_rows(&mut self) -> Result<(), DurabilityError> {
        self.close_rows()
    }

    fn close_rows(&mut self) -> Result<(), DurabilityError> {
        if self.in_frame > 0 {
            self.p[1..5].copy_from_slice(&self.in_frame.to_le_bytes());
            self.fw.emit(&mut self.p)?;
            self.in_frame = 0;
        }
        Ok(())
    }

    /// The whole content of the snapshot file.
    pub fn finish(mut self) -> Result<Vec<u8>, DurabilityError> {
        self.close_rows()?;
        self.p.clear();
        self.p.push(F_END);
        put_u64(&mut self.p, self.rows);
        self.fw.emit(&mut self.p)?;
        Ok(self.fw.out)
    }
}

/// A tenant's pieces: its frame, each table's frame and rows, then its
/// views, modules and kept calls.
fn tenant_pieces(
    fw: &mut FrameWriter,
    p: &mut Vec<u8>,
    t: &TenantImage<'_>,
    pieces: &mut Vec<Piece>,
) -> Result<(), DurabilityError> {
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
    put_len(p, t.kept.len());
    put_quota_set(p, t.quota);
    fw.emit(p)?;
    for table in db.tables() {
        p.push(F_TABLE);
        put_schema(p, table.schema());
        put_u64(p, table.len() as u64);
        fw.emit(p)?;
        pieces.push(Piece::Frames(std::mem::take(&mut fw.out)));
        pieces.push(Piece::Rows {
            tenant: t.tenant,
            table: table.id(),
        });
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
    for (key, output) in &t.kept {
        p.push(F_KEPT);
        put_str(p, key);
        put_output(p, *output);
        fw.emit(p)?;
    }
    if !fw.out.is_empty() {
        pieces.push(Piece::Frames(std::mem::take(&mut fw.out)));
    }
    Ok(())
}

/// The whole content of a snapshot file holding `tenants` as of `meta`,
/// encoded at once.
pub fn encode(
    meta: SnapshotMeta,
    mp_txn_max: u64,
    committed: &Committed,
    created_tenants: &[TenantRecord],
    principals: &crate::catalog::PrincipalOverlay,
    tenants: &[TenantImage<'_>],
) -> Result<Vec<u8>, DurabilityError> {
    let (mut enc, pieces) = Encoder::begin(
        meta,
        mp_txn_max,
        committed,
        created_tenants,
        principals,
        tenants,
    )?;
    for piece in pieces {
        match piece {
            Piece::Frames(bytes) => enc.frames(&bytes),
            Piece::Rows { tenant, table } => {
                let image = tenants.iter().find(|t| t.tenant == tenant);
                let table = image.and_then(|t| t.engine.database().table(table));
                if let Some(t) = table {
                    let mut rows = t.rows();
                    while let Some((_, row)) = rows.next() {
                        enc.row(row)?;
                    }
                }
                enc.end_rows()?;
            }
        }
    }
    enc.finish()
}

/// Reads frames from a snapshot's bytes, never past their end.
struct FrameReader<'a> {
    bytes: &'a [u8],
    file: &'a str,
    offset: usize,
}

impl<'a> FrameReader<'a> {
    fn corrupt(&self, offset: usize, what: String) -> DurabilityError {
        DurabilityError::Corrupt {
            file: self.file.to_string(),
            offset: offset as u64,
            what,
        }
    }

    /// The next frame's payload, and its offset.
    fn next(&mut self) -> Result<(usize, &'a [u8]), DurabilityError> {
        let at = self.offset;
        let rest = self.bytes.get(at..).unwrap_or_default();
        let Some(head) = rest.get(..8) else {
            return Err(self.corrupt(at, "snapshot ends before its End frame".into()));
        };
        let n = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let payload = rest.get(8..).and_then(|r| r.get(..n));
        let Some(payload) = payload.filter(|_| n <= FRAME_BYTES_MAX) else {
            return Err(self.corrupt(at, format!("frame length {n} is out of bounds")));
        };
        if crc32fast::hash(payload) != crc {
            return Err(self.corrupt(at, "frame CRC mismatch".into()));
        }
        self.offset = at + 8 + n;
        Ok((at, payload))
    }
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

fn get_schema(r: &mut Reader<'_>, version: u32) -> Result<TableSchema, String> {
    let name = r.str("table name")?.to_string();
    let n = r.count(7, "column count")?;
    let mut columns = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str("column name")?.to_string();
        let ty = get_type(r)?;
        let nullable = get_bool(r, "nullable")?;
        let default = match r.u8("default kind")? {
            0 => None,
            1 => Some(ColumnDefault::Value(r.value()?)),
            2 => Some(ColumnDefault::Expr(
                r.str("default expression")?.to_string(),
            )),
            k => return Err(format!("unknown default kind {k}")),
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
    let mut foreign_keys = Vec::new();
    if version >= 8 {
        let n = r.count(14, "foreign key count")?;
        for _ in 0..n {
            let name = r.str("foreign key name")?.to_string();
            let k = r.count(4, "foreign key column count")?;
            let columns = (0..k)
                .map(|_| r.u32("foreign key column").map(|c| c as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let parent = r.str("foreign key parent")?.to_string();
            let k = r.count(4, "foreign key parent column count")?;
            let parent_columns = (0..k)
                .map(|_| r.u32("foreign key parent column").map(|c| c as usize))
                .collect::<Result<Vec<_>, _>>()?;
            foreign_keys.push(ForeignKey {
                name,
                columns,
                parent,
                parent_columns,
            });
        }
    }
    let mut checks = Vec::new();
    if version >= 9 {
        let n = r.count(8, "check count")?;
        for _ in 0..n {
            let name = r.str("check name")?.to_string();
            let expr = r.str("check expression")?.to_string();
            checks.push(CheckConstraint { name, expr });
        }
    }
    Ok(TableSchema {
        name,
        columns,
        primary_key,
        indexes,
        partition_column,
        foreign_keys,
        checks,
    })
}

/// Quotes an identifier so it comes back exactly (case and all).
fn quote(id: &str) -> String {
    format!("\"{}\"", id.replace('"', "\"\""))
}

struct Loader<'a> {
    fr: FrameReader<'a>,
    rows: u64,
}

impl Loader<'_> {
    /// Reads the next frame, which must be of `kind`, and decodes it with `f`.
    fn frame<T>(
        &mut self,
        kind: u8,
        f: impl FnOnce(&mut Reader<'_>) -> Result<T, String>,
    ) -> Result<T, DurabilityError> {
        let (at, payload) = self.fr.next()?;
        let corrupt = |what: String| self.fr.corrupt(at, what);
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
            file: self.fr.file.to_string(),
            what,
        }
    }

    fn table(&mut self, engine: &mut Engine, version: u32) -> Result<(), DurabilityError> {
        let (schema, mut left) = self.frame(F_TABLE, |r| {
            Ok((get_schema(r, version)?, r.u64("row count")?))
        })?;
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

    fn tenant(&mut self, version: u32) -> Result<LoadedTenant, DurabilityError> {
        let (tenant, tables, views, modules, kept, quota) = self.frame(F_TENANT, |r| {
            Ok((
                TenantId(r.u32("tenant")?),
                r.u32("tables")?,
                r.u32("views")?,
                r.u32("modules")?,
                if version >= 3 {
                    r.u32("kept calls")?
                } else {
                    0
                },
                if version >= 6 {
                    quota_set(r)?
                } else {
                    crate::catalog::QuotaSet::default()
                },
            ))
        })?;
        let mut engine = Engine::new();
        for _ in 0..tables {
            self.table(&mut engine, version)?;
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
        let mut calls = Vec::new();
        for _ in 0..kept {
            calls.push(self.frame(F_KEPT, |r| {
                Ok(KeptCall {
                    key: r.str("idempotency key")?.to_string(),
                    output: get_output(r)?,
                })
            })?);
        }
        Ok(LoadedTenant {
            tenant,
            engine,
            modules: mods,
            kept: calls,
            quota,
        })
    }
}

/// Checks the header; the format version.
fn header(file: &str, bytes: &[u8]) -> Result<u32, DurabilityError> {
    let corrupt = |what: &str| DurabilityError::Corrupt {
        file: file.to_string(),
        offset: 0,
        what: what.to_string(),
    };
    let Some(head) = bytes.get(..HEADER_BYTES) else {
        return Err(corrupt("shorter than the snapshot header"));
    };
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if &head[..8] != MAGIC || !(1..=VERSION).contains(&version) {
        return Err(corrupt("bad snapshot header (magic or version)"));
    }
    Ok(version)
}

/// The Begin frame's fields: meta, mp_txn_max, tenant count.
fn begin(l: &mut Loader<'_>, version: u32) -> Result<(SnapshotMeta, u64, u32), DurabilityError> {
    l.frame(F_BEGIN, |r| {
        let slot = Slot(r.u64("slot")?);
        let ballot = if version == 1 {
            Ballot::default()
        } else {
            Ballot {
                round: r.u64("ballot round")?,
                node: NodeId(r.u32("ballot node")?),
            }
        };
        let meta = SnapshotMeta { slot, ballot };
        Ok((meta, r.u64("mp_txn_max")?, r.u32("tenants")?))
    })
}

fn loader<'a>(file: &'a str, bytes: &'a [u8]) -> Loader<'a> {
    let fr = FrameReader {
        bytes,
        file,
        offset: HEADER_BYTES,
    };
    Loader { fr, rows: 0 }
}

/// The slot and ballot a snapshot holds, from its header and first frame
/// (`bytes` may be just the start of it, `META_PREFIX_BYTES` is enough).
pub fn read_meta(bytes: &[u8]) -> Result<SnapshotMeta, DurabilityError> {
    read_meta_named(BYTES_LABEL, bytes)
}

/// The slot and ballot a snapshot holds and the highest coordinator
/// transaction inside it, from its header and first frame only.
pub fn read_begin(bytes: &[u8]) -> Result<(SnapshotMeta, u64), DurabilityError> {
    let version = header(BYTES_LABEL, bytes)?;
    let (meta, mp_txn_max, _) = begin(&mut loader(BYTES_LABEL, bytes), version)?;
    Ok((meta, mp_txn_max))
}

pub(super) fn read_meta_named(file: &str, bytes: &[u8]) -> Result<SnapshotMeta, DurabilityError> {
    let version = header(file, bytes)?;
    Ok(begin(&mut loader(file, bytes), version)?.0)
}

/// Checks every frame's CRC and that the frames run from a Begin to an End
/// at the last byte, without rebuilding anything; the snapshot's meta.
pub(super) fn check(file: &str, bytes: &[u8]) -> Result<SnapshotMeta, DurabilityError> {
    let version = header(file, bytes)?;
    let mut l = loader(file, bytes);
    let meta = begin(&mut l, version)?.0;
    loop {
        let (at, payload) = l.fr.next()?;
        if payload.first() == Some(&F_END) {
            if l.fr.offset != bytes.len() {
                let what = format!("{} bytes after the End frame", bytes.len() - l.fr.offset);
                return Err(l.fr.corrupt(at, what));
            }
            return Ok(meta);
        }
    }
}

/// Rebuilds every tenant's engine from a snapshot's bytes.
pub fn decode(bytes: &[u8]) -> Result<LoadedSnapshot, DurabilityError> {
    decode_named(BYTES_LABEL, bytes)
}

/// `decode`, naming `file` in errors.
pub(super) fn decode_named(file: &str, bytes: &[u8]) -> Result<LoadedSnapshot, DurabilityError> {
    let version = header(file, bytes)?;
    let mut l = loader(file, bytes);
    let (meta, mp_txn_max, n) = begin(&mut l, version)?;
    let committed = if version >= 4 {
        l.frame(F_COMMITTED, |r| {
            let floor = r.u64("committed floor")?;
            let n = r.u32("committed count")? as usize;
            if n > COMMITTED_MAX {
                return Err(format!("{n} committed transactions, over {COMMITTED_MAX}"));
            }
            let txns = (0..n)
                .map(|_| r.u64("committed transaction"))
                .collect::<Result<_, _>>()?;
            Ok(Committed { floor, txns })
        })?
    } else {
        // Not recorded then: nothing up to mp_txn_max is known.
        Committed {
            floor: mp_txn_max.saturating_add(1),
            txns: Vec::new(),
        }
    };
    let (created_tenants, principals) = if version >= 5 {
        l.frame(F_TENANTS, |r| {
            // A record is at least 45 bytes.
            let n = r.count(45, "tenant records")?;
            let created = (0..n).map(|_| tenant_record(r)).collect::<Result<_, _>>()?;
            let mut principals = crate::catalog::PrincipalOverlay::new();
            if version >= 7 {
                // A change is at least 9 bytes (tenant, empty name, role).
                for _ in 0..r.count(9, "principals")? {
                    let c = principal_change(r)?;
                    principals.insert((c.tenant, c.name), c.entry);
                }
            }
            Ok((created, principals))
        })?
    } else {
        Default::default()
    };
    let mut tenants = Vec::new();
    for _ in 0..n {
        tenants.push(l.tenant(version)?);
    }
    let total = l.frame(F_END, |r| r.u64("total rows"))?;
    if total != l.rows || l.fr.offset != bytes.len() {
        let what = format!(
            "End frame says {total} rows ({} read), ends at {} of {} bytes",
            l.rows,
            l.fr.offset,
            bytes.len()
        );
        return Err(l.fr.corrupt(l.fr.offset, what));
    }
    Ok(LoadedSnapshot {
        slot: meta.slot,
        ballot: meta.ballot,
        mp_txn_max,
        committed,
        created_tenants,
        principals,
        tenants,
    })
}
