//! `ohm migrate postgres://...`: a PostgreSQL schema and its data into an
//! Ohm tenant.
//!
//! ```text
//!   source catalog ─read─▶ Source ─translate─▶ Plan ──--plan──▶ FILE (DDL + report)
//!                                               │ --apply
//!   1 schema: each statement of the plan, in order, through `sql`
//!   2 copies: every table, --jobs at once, from one snapshot of the source
//!             (`pg_export_snapshot`, as pg_dump's copies are):
//!             COPY (SELECT ...) TO STDOUT ─▶ DIR/<n>-<table>.copy
//!   3 loads:  per table, parents first, --jobs at once: the copy ─▶ loader
//!             (chunks, keys, reject file, resume) ─▶ `load`
//!   4 after:  foreign keys that wait for the data; sequences set to the source's
//!   5 verify: per table, row count and checksum on both sides (`verify`)
//! ```
//!
//! Every step is recorded once done (`record`), so `--resume` continues
//! after the last one: a statement of the schema, the copies, a table
//! loaded. A table part-loaded resumes from its copy and the loader's own
//! state (`load_table` says how the files on disk tell how far it got).
//! Every copy is made before any load, so all are of one moment of the
//! source; copies cut short are all made again, from a new snapshot.
//!
//! Owns: the order of the steps and their record. Must not: write to the
//! source (every source query is a read).

mod connect;
mod propose;
mod record;
pub mod source;
pub mod translate;
pub mod verify;

use crate::driver::Client;
use crate::loader::convert::{Encoding, Formats};
use crate::loader::records::Format;
use crate::loader::{self, Input};
use crate::proto::SqlResult;
use anyhow::{bail, Context};
pub use connect::{connect, redact};
use futures_util::StreamExt;
use record::{hex, sync_dir, Record};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;
use translate::{ident, Plan, Settings, TablePlan};

/// Tables copied and loaded at once unless told.
pub const JOBS_DEFAULT: usize = 2;
/// The most tables at once.
pub const JOBS_MAX: usize = 16;

/// What to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// `postgres://user@host:port/db?sslmode=...&sslrootcert=FILE`.
    pub url: String,
    /// The source schema migrated.
    pub schema: String,
    /// How tables are placed (the proposal's inputs and overrides).
    pub settings: Settings,
    /// Write the plan (DDL and report) here.
    pub plan_file: Option<PathBuf>,
    pub apply: bool,
    /// Only compare the two sides (after an earlier --apply).
    pub verify_only: bool,
    pub resume: bool,
    /// Where the copies, resume state and reject files go.
    pub work_dir: PathBuf,
    /// Tables copied, and loaded, at once.
    pub jobs: usize,
    /// The loader's chunk size and chunks in flight, per table.
    pub chunk_rows: usize,
    pub parallel: usize,
    /// Rows each table may have rejected.
    pub max_errors: u64,
}

/// How a migration ended.
#[derive(Debug, Default)]
pub struct Outcome {
    pub plan: Plan,
    pub checks: Vec<verify::TableCheck>,
    /// Why it stopped before the end (None: it reached the end).
    pub stopped: Option<String>,
    /// Rows the loads rejected (in DIR/<n>-<table>.rejected).
    pub rejected: u64,
}

/// What a migration is of, for its record: the source database (its URL
/// without the password or the query: a moved sslrootcert is the same
/// source) and the schema.
fn source_identity(opts: &Options) -> String {
    let url = redact(&opts.url);
    let base = url.split('?').next().unwrap_or("");
    format!("source={base} schema={}", opts.schema)
}

/// Files an earlier, abandoned migration left in the work directory:
/// copies, load states, reject files. A fresh migration does not start
/// over them (a load state would be resumed into the wrong rows).
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.to_string_lossy();
            [".copy", ".ohm-load", ".rejected", ".tmp"]
                .iter()
                .any(|s| name.ends_with(s))
        })
        .collect()
}

fn plan_hash(plan: &Plan) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for s in plan.schema_script() {
        h.update(s.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The files of table number `n` of the plan in the work directory:
/// `<n>-<name as far as it is plain>.<suffix>` (a name is not a path).
fn file(dir: &Path, n: usize, name: &str, suffix: &str) -> PathBuf {
    let plain: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    dir.join(format!("{n}-{plain}.{suffix}"))
}

/// The source relation a table's rows are read from: `ONLY` for a plain
/// table (so rows of tables that inherit from it are not read twice).
pub fn relation(schema: &str, t: &TablePlan) -> String {
    let only = if t.source_partitioned { "" } else { "ONLY " };
    format!("{only}{}.{}", ident(schema), ident(&t.name))
}

/// Reads, translates, and does what `opts` says.
pub async fn run(
    client: &Client,
    opts: &Options,
    interrupt: Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    if opts.jobs == 0 || opts.jobs > JOBS_MAX {
        bail!("--jobs must be 1 to {JOBS_MAX}");
    }
    let mut pg = connect(&opts.url).await?;
    pg.batch_execute(connect::SESSION)
        .await
        .context("setting the source session's formats")?;
    let src = source::read(&mut pg, &opts.schema).await?;
    // A resumed migration keeps the placements its first run chose.
    let mut settings = opts.settings.clone();
    if opts.apply && opts.resume {
        settings.recorded = true;
        for (t, placed) in Record::placements(&opts.work_dir, &source_identity(opts))? {
            match placed {
                Some(c) => {
                    settings.partition.insert(t, c);
                }
                None => {
                    settings.replicate.insert(t);
                }
            }
        }
    }
    let plan = translate::translate(&src, &settings)?;
    if let Some(f) = &opts.plan_file {
        std::fs::write(f, plan.render(&redact(&opts.url)))
            .with_context(|| format!("writing the plan to {}", f.display()))?;
    }
    let mut out = Outcome {
        plan,
        ..Outcome::default()
    };
    if opts.apply {
        if let Some(why) = apply(
            client,
            &pg,
            opts,
            &out.plan,
            interrupt.clone(),
            &mut out.rejected,
        )
        .await?
        {
            out.stopped = Some(why);
            return Ok(out);
        }
    }
    if opts.apply || opts.verify_only {
        for t in &out.plan.tables {
            if interrupt.load(Ordering::Relaxed) {
                out.stopped = Some("interrupted".into());
                return Ok(out);
            }
            out.checks
                .push(verify::table(&pg, client, &opts.schema, t).await?);
        }
    }
    Ok(out)
}

/// `--apply`: the schema, the copies, the loads, what waits for the data.
/// Returns why it stopped, if it did.
async fn apply(
    client: &Client,
    pg: &tokio_postgres::Client,
    opts: &Options,
    plan: &Plan,
    interrupt: Arc<AtomicBool>,
    rejected: &mut u64,
) -> anyhow::Result<Option<String>> {
    // A fresh migration goes into a tenant without its objects; checked
    // before the record exists, so that on a resume, an object of the plan
    // already there is one this migration made.
    if !opts.resume {
        let state = Record::path(&opts.work_dir);
        if state.exists() {
            bail!(
                "{} holds a migration that did not finish: continue it with --resume, or \
                 remove {} to start again (into a tenant without its tables)",
                state.display(),
                opts.work_dir.display()
            );
        }
        let left = leftovers(&opts.work_dir);
        if let Some(first) = left.first() {
            bail!(
                "{} holds {} files of an earlier migration ({} ...): remove them, or use another \
                 --work-dir",
                opts.work_dir.display(),
                left.len(),
                first.display()
            );
        }
        refuse_existing(client, plan).await?;
    }
    let identity = format!("{} plan={}", source_identity(opts), plan_hash(plan));
    std::fs::create_dir_all(&opts.work_dir)
        .with_context(|| format!("creating {}", opts.work_dir.display()))?;
    let mut record = Record::open(&opts.work_dir, identity, opts.resume, plan)?;
    apply_schema(client, plan, &mut record, opts.resume).await?;
    if !record.has("copies") {
        copy_all(pg, opts, plan, &record).await?;
        record.mark("copies".into())?;
    }
    let (stopped, rej) = load_all(client, opts, plan, &mut record, interrupt).await?;
    *rejected = rej;
    if stopped.is_some() {
        return Ok(stopped);
    }
    after_data(client, pg, &opts.schema, plan, &mut record, opts.resume).await?;
    Ok(None)
}

/// Whether an error says its object is there already (a statement that ran
/// before the record of it was written).
fn already_exists(e: &crate::driver::ClientError) -> bool {
    e.to_string().contains("already exists")
}

/// The plan's tables and sequences that the tenant has already.
async fn refuse_existing(client: &Client, plan: &Plan) -> anyhow::Result<()> {
    let cat = client
        .catalog()
        .await
        .context("reading the tenant's catalog")?;
    let have: BTreeSet<&str> = cat.tables.iter().map(|t| t.name.as_str()).collect();
    let mut clash: Vec<String> = plan
        .tables
        .iter()
        .map(|t| t.name.clone())
        .filter(|t| have.contains(t.as_str()))
        .collect();
    // The sequences table comes with the tenant's first sequence.
    let seqs = match client.sql("SELECT name FROM ohm_sequences").await {
        Ok(mut r) => r.pop(),
        Err(e) if e.to_string().contains("\"ohm_sequences\" does not exist") => None,
        Err(e) => return Err(e).context("reading the tenant's sequences"),
    };
    if let Some(SqlResult::Rows(r)) = seqs {
        let seqs: BTreeSet<String> = r.rows.iter().map(|row| row[0].to_string()).collect();
        clash.extend(
            plan.setvals
                .iter()
                .map(|(_, ohm)| ohm.clone())
                .filter(|s| seqs.contains(s))
                .map(|s| format!("sequence {s}")),
        );
    }
    if !clash.is_empty() {
        bail!(
            "the tenant already has {}: migrate into a tenant without them (or drop them)",
            clash.join(", ")
        );
    }
    Ok(())
}

async fn apply_schema(
    client: &Client,
    plan: &Plan,
    record: &mut Record,
    resume: bool,
) -> anyhow::Result<()> {
    // Only a resume may find its first pending statement done already.
    let mut first_pending = resume;
    for (i, sql) in plan.schema_script().iter().enumerate() {
        let step = format!("ddl {i}");
        if record.has(&step) {
            continue;
        }
        match client.sql(sql).await {
            Ok(_) => {}
            // It ran before the record of it was written (the tenant had
            // none of the plan's objects when the record began).
            Err(e) if first_pending && already_exists(&e) => {}
            Err(e) => bail!("applying the schema: {sql}: {e}"),
        }
        first_pending = false;
        record.mark(step)?;
    }
    Ok(())
}

/// COPY of one table from the source's snapshot into `path` (through a
/// temporary file, synced, renamed: a copy cut short is never taken for
/// whole).
async fn copy_out(
    pg: &tokio_postgres::Client,
    schema: &str,
    t: &TablePlan,
    path: &Path,
) -> anyhow::Result<u64> {
    let exprs: Vec<&str> = t.columns.iter().map(|c| c.copy_expr.as_str()).collect();
    let sql = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT",
        exprs.join(", "),
        relation(schema, t)
    );
    let tmp = path.with_extension("copy.tmp");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let stream = pg
        .copy_out(sql.as_str())
        .await
        .with_context(|| format!("COPY of {} from the source", t.name))?;
    futures_util::pin_mut!(stream);
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("COPY of {} from the source", t.name))?;
        bytes += chunk.len() as u64;
        f.write_all(&chunk)
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    let f = f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    sync_dir(path)?;
    Ok(bytes)
}

/// A connection reading in the exported snapshot `snapshot`.
async fn snapshot_reader(url: &str, snapshot: &str) -> anyhow::Result<tokio_postgres::Client> {
    let pg = connect(url).await?;
    pg.batch_execute(connect::SESSION).await?;
    pg.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
        snapshot.replace('\'', "")
    ))
    .await
    .context("reading in the source's snapshot")?;
    Ok(pg)
}

/// Copies every table not loaded yet, `jobs` at once, from one snapshot
/// held open by `pg` until the last copy is made (then released, so the
/// source's vacuum is not held back while the loads run).
async fn copy_all(
    pg: &tokio_postgres::Client,
    opts: &Options,
    plan: &Plan,
    record: &Record,
) -> anyhow::Result<()> {
    pg.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .context("starting the source's snapshot")?;
    let snapshot: String = pg
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .context("exporting the source's snapshot")?
        .get(0);
    let mut waiting: Vec<(usize, &TablePlan)> = plan
        .tables
        .iter()
        .enumerate()
        .filter(|(_, t)| !record.has(&format!("loaded {}", hex(&t.name))))
        .collect();
    waiting.reverse();
    let mut running = JoinSet::new();
    let mut failed: Option<anyhow::Error> = None;
    loop {
        while failed.is_none() && running.len() < opts.jobs {
            let Some((n, t)) = waiting.pop() else { break };
            let (url, snapshot, schema, t) = (
                opts.url.clone(),
                snapshot.clone(),
                opts.schema.clone(),
                t.clone(),
            );
            let path = file(&opts.work_dir, n, &t.name, "copy");
            running.spawn(async move {
                let started = Instant::now();
                let pg = snapshot_reader(&url, &snapshot).await?;
                let bytes = copy_out(&pg, &schema, &t, &path).await?;
                println!(
                    "{}: copied {:.1} MB from the source in {:.1} s",
                    t.name,
                    bytes as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                );
                anyhow::Ok(())
            });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        if let Err(e) = done.context("a table's copy")? {
            failed.get_or_insert(e);
        }
    }
    pg.batch_execute("COMMIT").await.ok();
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One table's load from its copy (resuming a load cut short). Returns
/// why it stopped, if it did, and the rows rejected.
///
/// What is on disk says how far it got: the loader writes its state
/// before it sends anything and removes it (durably) only once the load
/// is complete, and the copy is removed only after the table is recorded
/// loaded. So with no load state, a table with rows was loaded: checked
/// against the copy (one row a line in COPY's text format), less the
/// rows its reject file holds.
async fn load_table(
    client: Client,
    opts: Options,
    n: usize,
    t: TablePlan,
    interrupt: Arc<AtomicBool>,
) -> anyhow::Result<(Option<String>, u64)> {
    let dir = &opts.work_dir;
    let copy = file(dir, n, &t.name, "copy");
    let state = file(dir, n, &t.name, "ohm-load");
    let rejects = file(dir, n, &t.name, "rejected");
    let resume = state.exists();
    if !copy.exists() {
        bail!(
            "{}: its copy {} is gone, and the table is not loaded; start the migration again \
             into a fresh tenant",
            t.name,
            copy.display()
        );
    }
    if !resume {
        let have = count(&client, &t.name).await?;
        if have > 0 {
            let lines = count_lines(&copy)?;
            let rejected = count_lines(&rejects).map_or(0, |n| n.saturating_sub(1));
            if have + rejected != lines {
                bail!(
                    "{}: the table has {have} rows and no load state, but its copy {} has {lines} \
                     ({rejected} rejected): it was not loaded by this migration alone. Empty the \
                     table in Ohm and --resume",
                    t.name,
                    copy.display()
                );
            }
            return Ok((None, rejected));
        }
    }
    let lopts = loader::Options {
        table: t.name.clone(),
        columns: Some(t.columns.iter().map(|c| c.name.clone()).collect()),
        header: false,
        format: Format::Text {
            delimiter: b'\t',
            null: b"\\N".to_vec(),
        },
        encoding: Encoding::Utf8,
        formats: Formats::default(),
        chunk_rows: opts.chunk_rows,
        parallel: opts.parallel,
        max_errors: opts.max_errors,
        reject_file: Some(rejects.clone()),
        progress: false,
    };
    let input = Input::File { path: copy, state };
    let s = loader::load(&client, &input, &lopts, resume, interrupt).await?;
    let secs = s.elapsed.as_secs_f64().max(0.001);
    println!(
        "{}: loaded {} rows{} in {:.1} s ({:.0} rows/s){}",
        t.name,
        s.loaded,
        if s.rejected > 0 {
            format!(", rejected {} (see {})", s.rejected, rejects.display())
        } else {
            String::new()
        },
        secs,
        s.loaded as f64 / secs,
        if resume { " (resumed)" } else { "" }
    );
    if s.stopped.is_none() && s.rejected == 0 {
        std::fs::remove_file(&rejects).ok();
    }
    Ok((s.stopped, s.rejected))
}

/// Lines in `path` (bounded by the file: read in blocks).
fn count_lines(path: &Path) -> anyhow::Result<u64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if got == 0 {
            return Ok(n);
        }
        n += buf[..got].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

async fn count(client: &Client, table: &str) -> anyhow::Result<u64> {
    match client
        .sql(&format!("SELECT count(*) FROM {}", ident(table)))
        .await?
        .pop()
    {
        Some(SqlResult::Rows(r)) => match r.rows.first().and_then(|r| r.first()) {
            Some(crate::types::Value::Int(n)) => Ok((*n).max(0) as u64),
            other => bail!("count of {table}: {other:?}"),
        },
        other => bail!("count of {table}: {other:?}"),
    }
}

/// Every table's load, parents before children, `jobs` at once. Returns
/// why it stopped, if it did, and the rows rejected.
async fn load_all(
    client: &Client,
    opts: &Options,
    plan: &Plan,
    record: &mut Record,
    interrupt: Arc<AtomicBool>,
) -> anyhow::Result<(Option<String>, u64)> {
    let loaded = |record: &Record, t: &str| record.has(&format!("loaded {}", hex(t)));
    let mut waiting: Vec<(usize, &TablePlan)> = plan
        .tables
        .iter()
        .enumerate()
        .filter(|(_, t)| !loaded(record, &t.name))
        .collect();
    let mut running = JoinSet::new();
    let mut stopped: Option<String> = None;
    let mut rejected = 0u64;
    loop {
        while stopped.is_none() && running.len() < opts.jobs {
            let ready = waiting
                .iter()
                .position(|(_, t)| t.parents.iter().all(|p| loaded(record, p)));
            let Some(i) = ready else { break };
            let (n, t) = waiting.remove(i);
            let (client, opts, t2, interrupt) =
                (client.clone(), opts.clone(), t.clone(), interrupt.clone());
            running.spawn(async move {
                let r = load_table(client, opts, n, t2, interrupt).await;
                (n, r)
            });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (n, result) = done.context("a table's load")?;
        let t = &plan.tables[n];
        match result {
            Ok((None, rej)) => {
                rejected += rej;
                record.mark(format!("loaded {}", hex(&t.name)))?;
                std::fs::remove_file(file(&opts.work_dir, n, &t.name, "copy")).ok();
            }
            Ok((Some(why), rej)) => {
                rejected += rej;
                stopped.get_or_insert(format!("{}: {why}", t.name));
            }
            Err(e) => {
                stopped.get_or_insert(format!("{}: {e:#}", t.name));
            }
        }
    }
    if stopped.is_none() && !waiting.is_empty() {
        stopped = Some("internal: tables left waiting for their parents".into());
    }
    Ok((stopped, rejected))
}

/// Once every table is in: the foreign keys that waited for the data, and
/// each sequence set to where the source's is.
async fn after_data(
    client: &Client,
    pg: &tokio_postgres::Client,
    schema: &str,
    plan: &Plan,
    record: &mut Record,
    resume: bool,
) -> anyhow::Result<()> {
    // Only a resume may find its first pending key added already.
    let mut first_pending = resume;
    for t in &plan.tables {
        for (i, sql) in t.deferred.iter().enumerate() {
            let step = format!("deferred {} {i}", hex(&t.name));
            if record.has(&step) {
                continue;
            }
            match client.sql(sql).await {
                Ok(_) => {}
                // Added before the record of it was written.
                Err(e) if first_pending && already_exists(&e) => {}
                Err(e) => bail!("adding a foreign key after the data: {sql}: {e}"),
            }
            first_pending = false;
            record.mark(step)?;
        }
    }
    let values = source::sequence_values(pg, schema).await?;
    for (src, ohm) in &plan.setvals {
        let Some(Some(v)) = values.get(src) else {
            continue;
        };
        let name = ident(ohm).replace('\'', "''");
        client
            .sql(&format!("SELECT setval('{name}', {v}, true)"))
            .await
            .with_context(|| format!("setting sequence {ohm} to {v}"))?;
    }
    Ok(())
}
