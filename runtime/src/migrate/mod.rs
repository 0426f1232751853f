//! `ohm migrate postgres://...`: a PostgreSQL schema and its data into an
//! Ohm tenant.
//!
//! ```text
//!   source catalog ─read─▶ Source ─translate─▶ Plan ──--plan──▶ FILE (DDL + report)
//!                                               │ --apply
//!   1 schema: each statement of the plan, in order, through `sql`
//!   2 data:   per table, parents first, up to --jobs at once:
//!             COPY (SELECT ...) TO STDOUT in the source's snapshot ─▶ DIR/t.copy
//!             ─▶ loader (chunks, keys, reject file, resume) ─▶ `load`
//!   3 after:  foreign keys that wait for the data; sequences set to the source's
//!   4 verify: per table, row count and checksum on both sides (`verify`)
//! ```
//!
//! Every step is recorded in DIR/migrate.state once done (written to a
//! temporary file, synced, renamed), so `--resume` continues after the last
//! one: a statement of the schema, a table loaded. A table part-loaded
//! resumes from its copy and the loader's own state (`table_data` says how
//! the files on disk tell how far it got). The copies come from one
//! snapshot of the source (`pg_export_snapshot`), as pg_dump's do.
//!
//! Owns: the order of the steps and their record. Must not: write to the
//! source (every source query is a read).

pub mod source;
pub mod translate;
pub mod verify;

use crate::driver::Client;
use crate::loader::convert::{Encoding, Formats};
use crate::loader::records::Format;
use crate::loader::{self, Input};
use crate::proto::SqlResult;
use anyhow::{bail, Context};
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use translate::{ident, Plan, Settings, TablePlan};

/// Tables copied and loaded at once unless told.
pub const JOBS_DEFAULT: usize = 2;
/// The most tables at once.
pub const JOBS_MAX: usize = 16;
/// The first line of the state file.
const STATE_MAGIC: &str = "ohm-migrate-state 1";
/// The largest state file read.
const STATE_BYTES_MAX: u64 = 16 << 20;

/// What to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// `postgres://user@host:port/db?sslmode=...&sslrootcert=FILE`.
    pub url: String,
    pub schema: String,
    pub settings: Settings,
    /// Write the plan (DDL and report) here.
    pub plan_file: Option<PathBuf>,
    pub apply: bool,
    /// Only compare the two sides (after an earlier --apply).
    pub verify_only: bool,
    pub resume: bool,
    /// Where the copies, resume state and reject files go.
    pub work_dir: PathBuf,
    pub jobs: usize,
    pub chunk_rows: usize,
    pub parallel: usize,
    pub max_errors: u64,
}

/// How a migration ended.
#[derive(Debug, Default)]
pub struct Outcome {
    pub plan: Plan,
    pub checks: Vec<verify::TableCheck>,
    /// Why it stopped before the end (None: it reached the end).
    pub stopped: Option<String>,
    pub rejected: u64,
}

/// The URL without its password, for messages and the state file.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, tail) = match rest.split_once('@') {
        Some((a, t)) => (a, t),
        None => return url.to_string(),
    };
    let user = auth.split(':').next().unwrap_or("");
    format!("{scheme}://{user}@{tail}")
}

/// Connects to the source. TLS unless `sslmode=disable`, or no sslmode
/// and the host is this machine (loopback or a socket): verified against
/// `sslrootcert` (a PEM file) or the system's roots.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode: Option<String> = None;
    let mut root: Option<PathBuf> = None;
    let mut rest = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => root = Some(PathBuf::from(v)),
            _ => rest.push(kv),
        }
    }
    let plain_url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config: tokio_postgres::Config = plain_url
        .parse()
        .with_context(|| format!("reading the source URL {}", redact(url)))?;
    if config.get_password().is_none() {
        if let Ok(p) = std::env::var("PGPASSWORD") {
            config.password(p);
        }
    }
    let local = config.get_hosts().iter().all(|h| match h {
        tokio_postgres::config::Host::Tcp(name) => {
            matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1")
        }
        tokio_postgres::config::Host::Unix(_) => true,
    });
    let tls = match mode.as_deref() {
        Some("disable") => false,
        None => !local,
        Some("prefer" | "require" | "verify-ca" | "verify-full") => true,
        Some(other) => bail!(
            "sslmode={other}: use disable, require or verify-full (every TLS mode verifies the \
             server's certificate)"
        ),
    };
    let target = redact(url);
    if !tls {
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {target}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("source connection: {e}");
            }
        });
        return Ok(client);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &root {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(path)
                .with_context(|| format!("sslrootcert {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("sslrootcert {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("sslrootcert {}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                bail!(
                    "no trusted roots on this system to check {target}'s certificate: give \
                     ?sslrootcert=FILE, or sslmode=disable on a trusted network"
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.ssl_mode(tokio_postgres::config::SslMode::Require);
    let (client, conn) = config
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls_config))
        .await
        .with_context(|| format!("connecting to {target} over TLS"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("source connection: {e}");
        }
    });
    Ok(client)
}

/// Session settings every source connection reads with: text forms the
/// loader and the checksums expect.
const SESSION: &str = "SET DateStyle = ISO, YMD; SET IntervalStyle = postgres; \
     SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = hex; \
     SET client_encoding = 'UTF8'";

/// The steps done, as recorded in DIR/migrate.state.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    path: PathBuf,
    /// What the migration is of: the source (redacted), the schema, and
    /// the hash of the plan's statements.
    identity: String,
    done: BTreeSet<String>,
}

impl Record {
    fn path(dir: &Path) -> PathBuf {
        dir.join("migrate.state")
    }

    fn open(dir: &Path, identity: String, resume: bool) -> anyhow::Result<Record> {
        let path = Record::path(dir);
        if !resume {
            if path.exists() {
                bail!(
                    "{} holds a migration that did not finish: continue it with --resume, or \
                     remove {} to start again (into a tenant without these tables)",
                    path.display(),
                    dir.display()
                );
            }
            let r = Record {
                path,
                identity,
                done: BTreeSet::new(),
            };
            r.write()?;
            return Ok(r);
        }
        let meta = std::fs::metadata(&path).with_context(|| {
            format!(
                "--resume: no migration state at {} (was --work-dir the same?)",
                path.display()
            )
        })?;
        if meta.len() > STATE_BYTES_MAX {
            bail!(
                "{}: over {STATE_BYTES_MAX} bytes, not a migration state",
                path.display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines();
        if lines.next() != Some(STATE_MAGIC) {
            bail!("{}: not a migration state (first line)", path.display());
        }
        let was = lines.next().unwrap_or("").to_string();
        if was != identity {
            bail!(
                "--resume: {} is of another migration, or the source's schema changed since \
                 ({was} vs now {identity}); start again into a fresh tenant",
                path.display()
            );
        }
        Ok(Record {
            path,
            identity,
            done: lines.map(|l| l.to_string()).collect(),
        })
    }

    fn has(&self, step: &str) -> bool {
        self.done.contains(step)
    }

    fn mark(&mut self, step: String) -> anyhow::Result<()> {
        self.done.insert(step);
        self.write()
    }

    fn write(&self) -> anyhow::Result<()> {
        let mut text = format!("{STATE_MAGIC}\n{}\n", self.identity);
        for s in &self.done {
            text.push_str(s);
            text.push('\n');
        }
        let tmp = self.path.with_extension("state.tmp");
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming {} into place", tmp.display()))?;
        Ok(())
    }
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
    pg.batch_execute(SESSION)
        .await
        .context("setting the source session's formats")?;
    let src = source::read(&mut pg, &opts.schema).await?;
    let plan = translate::translate(&src, &opts.settings)?;
    if let Some(f) = &opts.plan_file {
        std::fs::write(f, plan.render(&redact(&opts.url)))
            .with_context(|| format!("writing the plan to {}", f.display()))?;
    }
    let mut out = Outcome {
        plan,
        ..Outcome::default()
    };
    if opts.apply {
        let identity = format!(
            "source={} schema={} plan={}",
            redact(&opts.url),
            opts.schema,
            plan_hash(&out.plan)
        );
        std::fs::create_dir_all(&opts.work_dir)
            .with_context(|| format!("creating {}", opts.work_dir.display()))?;
        let mut record = Record::open(&opts.work_dir, identity, opts.resume)?;
        if !opts.resume {
            refuse_existing(client, &out.plan).await?;
        }
        apply_schema(client, &out.plan, &mut record).await?;
        let (stopped, rejected) =
            copy_data(client, &pg, opts, &out.plan, &mut record, interrupt.clone()).await?;
        out.rejected = rejected;
        if let Some(why) = stopped {
            out.stopped = Some(why);
            return Ok(out);
        }
        after_data(client, &pg, &opts.schema, &out.plan, &mut record).await?;
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

/// A fresh migration goes into a tenant without the plan's tables.
async fn refuse_existing(client: &Client, plan: &Plan) -> anyhow::Result<()> {
    let cat = client
        .catalog()
        .await
        .context("reading the tenant's catalog")?;
    let have: BTreeSet<&str> = cat.tables.iter().map(|t| t.name.as_str()).collect();
    let clash: Vec<&str> = plan
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .filter(|t| have.contains(t))
        .collect();
    if !clash.is_empty() {
        bail!(
            "the tenant already has table(s) {}: migrate into a tenant without them (or drop \
             them), or continue an earlier migration with --resume",
            clash.join(", ")
        );
    }
    Ok(())
}

async fn apply_schema(client: &Client, plan: &Plan, record: &mut Record) -> anyhow::Result<()> {
    let script = plan.schema_script();
    let mut first_pending = true;
    for (i, sql) in script.iter().enumerate() {
        let step = format!("ddl {i}");
        if record.has(&step) {
            continue;
        }
        match client.sql(sql).await {
            Ok(_) => {}
            // The statement ran before the record of it was written.
            Err(e)
                if first_pending
                    && record.done.iter().any(|s| s.starts_with("ddl "))
                    && e.to_string().contains("already exists") => {}
            Err(e) if first_pending && i == 0 && e.to_string().contains("already exists") => {}
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
        "COPY (SELECT {} FROM {}.{}) TO STDOUT",
        exprs.join(", "),
        ident(schema),
        ident(&t.name)
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
    Ok(bytes)
}

/// A connection reading in the exported snapshot `snapshot`.
async fn snapshot_reader(url: &str, snapshot: &str) -> anyhow::Result<tokio_postgres::Client> {
    let pg = connect(url).await?;
    pg.batch_execute(SESSION).await?;
    pg.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
        snapshot.replace('\'', "")
    ))
    .await
    .context("reading in the source's snapshot")?;
    Ok(pg)
}

/// One table's data: copied from the source (unless a whole copy is
/// there), then loaded (resuming a load cut short). Returns why it
/// stopped, if it did, and the rows rejected.
///
/// What is on disk says how far it got: the loader writes its state
/// before it sends anything and removes it only once the load is
/// complete, and the copy is removed after that. So with no load state, a
/// table with rows was loaded; with one, the load resumes from the copy.
async fn table_data(
    client: Client,
    url: String,
    snapshot: Option<String>,
    opts: Options,
    t: TablePlan,
    interrupt: Arc<AtomicBool>,
) -> anyhow::Result<(String, Option<String>, u64)> {
    let dir = &opts.work_dir;
    let spool = dir.join(format!("{}.copy", t.name));
    let state = dir.join(format!("{}.ohm-load", t.name));
    let started = Instant::now();
    let resume = state.exists();
    if !resume {
        if count(&client, &t.name).await? > 0 {
            std::fs::remove_file(&spool).ok();
            return Ok((t.name, None, 0));
        }
        if !spool.exists() {
            let Some(snapshot) = snapshot else {
                bail!("internal: a table to copy without a snapshot");
            };
            let pg = snapshot_reader(&url, &snapshot).await?;
            let bytes = copy_out(&pg, &opts.schema, &t, &spool).await?;
            println!(
                "{}: copied {:.1} MB from the source in {:.1} s",
                t.name,
                bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
        }
    } else if !spool.exists() {
        bail!(
            "{}: the load's state {} is there but its copy {} is not; the copy cannot be made \
             again to match it. Remove the state, empty the table in Ohm, and --resume",
            t.name,
            state.display(),
            spool.display()
        );
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
        reject_file: Some(dir.join(format!("{}.rejected", t.name))),
        progress: false,
    };
    let input = Input::File {
        path: spool.clone(),
        state,
    };
    let s = loader::load(&client, &input, &lopts, resume, interrupt).await?;
    let secs = s.elapsed.as_secs_f64().max(0.001);
    println!(
        "{}: loaded {} rows{} in {:.1} s ({:.0} rows/s){}",
        t.name,
        s.loaded,
        if s.rejected > 0 {
            format!(
                ", rejected {} (see {})",
                s.rejected,
                dir.join(format!("{}.rejected", t.name)).display()
            )
        } else {
            String::new()
        },
        secs,
        s.loaded as f64 / secs,
        if resume { " (resumed)" } else { "" }
    );
    if s.stopped.is_none() {
        std::fs::remove_file(&spool).ok();
        if s.rejected == 0 {
            std::fs::remove_file(dir.join(format!("{}.rejected", t.name))).ok();
        }
    }
    Ok((t.name, s.stopped, s.rejected))
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

/// Every table's data, parents before children, up to `jobs` at once.
async fn copy_data(
    client: &Client,
    pg: &tokio_postgres::Client,
    opts: &Options,
    plan: &Plan,
    record: &mut Record,
    interrupt: Arc<AtomicBool>,
) -> anyhow::Result<(Option<String>, u64)> {
    let pending: Vec<&TablePlan> = plan
        .tables
        .iter()
        .filter(|t| !record.has(&format!("loaded {}", t.name)))
        .collect();
    if pending.is_empty() {
        return Ok((None, 0));
    }
    // One snapshot for every copy still to make, held open by `pg` until
    // they are all made.
    let needs_copy = pending.iter().any(|t| {
        !opts.work_dir.join(format!("{}.copy", t.name)).exists()
            && !opts.work_dir.join(format!("{}.ohm-load", t.name)).exists()
    });
    let snapshot = if needs_copy {
        pg.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .context("starting the source's snapshot")?;
        let s: String = pg
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .context("exporting the source's snapshot")?
            .get(0);
        Some(s)
    } else {
        None
    };
    // Parents (by foreign keys added with the table) before children.
    let parents = |t: &TablePlan| -> Vec<String> {
        plan.tables
            .iter()
            .filter(|p| {
                p.name != t.name
                    && t.create
                        .contains(&format!("REFERENCES {} (", ident(&p.name)))
            })
            .map(|p| p.name.clone())
            .collect()
    };
    let mut waiting: Vec<&TablePlan> = pending;
    let mut running = tokio::task::JoinSet::new();
    let mut stopped: Option<String> = None;
    let mut rejected = 0u64;
    loop {
        while stopped.is_none() && running.len() < opts.jobs {
            let ready = waiting.iter().position(|t| {
                parents(t)
                    .iter()
                    .all(|p| record.has(&format!("loaded {p}")))
            });
            let Some(i) = ready else { break };
            let t = waiting.remove(i);
            running.spawn(table_data(
                client.clone(),
                opts.url.clone(),
                snapshot.clone(),
                opts.clone(),
                t.clone(),
                interrupt.clone(),
            ));
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (name, why, rej) = match done.context("a table's copy")? {
            Ok(r) => r,
            Err(e) => {
                stopped.get_or_insert(format!("{e:#}"));
                continue;
            }
        };
        rejected += rej;
        match why {
            Some(why) => {
                stopped.get_or_insert(format!("{name}: {why}"));
            }
            None => record.mark(format!("loaded {name}"))?,
        }
    }
    if snapshot.is_some() {
        pg.batch_execute("COMMIT").await.ok();
    }
    if stopped.is_none() && !waiting.is_empty() {
        stopped = Some("internal: tables left waiting for parents".into());
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
) -> anyhow::Result<()> {
    for t in &plan.tables {
        for (i, sql) in t.deferred.iter().enumerate() {
            let step = format!("deferred {} {i}", t.name);
            if record.has(&step) {
                continue;
            }
            client
                .sql(sql)
                .await
                .with_context(|| format!("adding a foreign key after the data: {sql}"))?;
            record.mark(step)?;
        }
    }
    let values = source::sequence_values(pg, schema).await?;
    for (src, ohm) in &plan.setvals {
        let Some(Some(v)) = values.get(src) else {
            continue;
        };
        client
            .sql(&format!(
                "SELECT setval('{}', {v}, true)",
                ohm.replace('\'', "''")
            ))
            .await
            .with_context(|| format!("setting sequence {ohm} to {v}"))?;
    }
    Ok(())
}
