//! `ohm migrate postgres://user@host/db`: flags, and what is printed (the
//! placement table, the report's count, the verification table). The work
//! is `migrate`'s.

use super::connect::{ConnectArgs, TokenRole};
use crate::migrate::{self, translate::Placement, translate::Settings, verify};
use anyhow::bail;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// Flags of `ohm migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The source: postgres://USER[:PASSWORD]@HOST[:PORT]/DB, with
    /// ?sslmode=disable|require|verify-full and ?sslrootcert=FILE. TLS is
    /// used (and the certificate verified) unless sslmode=disable, or the
    /// host is this machine and no sslmode is given. The password may also
    /// come from PGPASSWORD.
    #[arg(value_name = "URL")]
    pub url: String,
    /// The source schema to migrate.
    #[arg(long, default_value = "public")]
    pub schema: String,
    /// Write the translated DDL, each table's placement and why, and the
    /// report of what changed or was not carried over, to FILE.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Create the schema in the tenant, copy the data, and verify it.
    #[arg(long)]
    pub apply: bool,
    /// Only compare the source with the tenant (row counts and checksums).
    #[arg(long, conflicts_with = "apply")]
    pub verify: bool,
    /// Continue a migration that stopped (with the same flags and
    /// --work-dir).
    #[arg(long, requires = "apply")]
    pub resume: bool,
    /// Where the copies, the resume state and the reject files go
    /// (default: ./ohm-migrate-DB).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Replicate tables with fewer rows than this.
    #[arg(long, default_value_t = migrate::translate::REPLICATE_BELOW_DEFAULT)]
    pub replicate_below: u64,
    /// Partition TABLE on COLUMN (overrides the proposal; repeatable).
    #[arg(long, value_name = "TABLE=COLUMN")]
    pub partition: Vec<String>,
    /// Replicate TABLE whatever its size (repeatable).
    #[arg(long, value_name = "TABLE")]
    pub replicate: Vec<String>,
    /// Tables copied and loaded at once.
    #[arg(long, default_value_t = migrate::JOBS_DEFAULT)]
    pub jobs: usize,
    /// Rows per load chunk.
    #[arg(long, default_value_t = crate::loader::CHUNK_ROWS_DEFAULT)]
    pub chunk_rows: usize,
    /// Chunks in flight per table.
    #[arg(long, default_value_t = crate::loader::PARALLEL_DEFAULT)]
    pub parallel: usize,
    /// Rows each table may have rejected (written to DIR/TABLE.rejected);
    /// one more stops the migration.
    #[arg(long, default_value_t = 0)]
    pub max_errors: u64,
}

/// The database name in a postgres:// URL (for the default work dir).
fn database_of(url: &str) -> String {
    let path = url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(url)
        .split_once('/')
        .map(|(_, p)| p)
        .unwrap_or("");
    let db = path.split('?').next().unwrap_or("");
    let clean: String = db
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    if clean.is_empty() {
        "postgres".into()
    } else {
        clean
    }
}

fn options(args: &MigrateArgs) -> anyhow::Result<migrate::Options> {
    if !args.url.starts_with("postgres://") && !args.url.starts_with("postgresql://") {
        bail!(
            "the source must be a postgres:// URL, not {:?}",
            migrate::redact(&args.url)
        );
    }
    let mut settings = Settings {
        replicate_below: args.replicate_below,
        ..Settings::default()
    };
    for p in &args.partition {
        let Some((t, c)) = p.split_once('=') else {
            bail!("--partition {p:?}: give TABLE=COLUMN");
        };
        settings.partition.insert(t.to_string(), c.to_string());
    }
    settings.replicate = args.replicate.iter().cloned().collect();
    Ok(migrate::Options {
        url: args.url.clone(),
        schema: args.schema.clone(),
        settings,
        plan_file: args.plan.clone(),
        apply: args.apply,
        verify_only: args.verify,
        resume: args.resume,
        work_dir: args
            .work_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("ohm-migrate-{}", database_of(&args.url)))),
        jobs: args.jobs,
        chunk_rows: args.chunk_rows,
        parallel: args.parallel,
        max_errors: args.max_errors,
    })
}

fn print_checks(checks: &[verify::TableCheck]) -> bool {
    println!(
        "\n{:<28} {:>12} {:>12}  {:<16}  {:<16}  result",
        "table", "source rows", "ohm rows", "source checksum", "ohm checksum"
    );
    let mut all = true;
    for c in checks {
        let ok = c.equal();
        all &= ok;
        println!(
            "{:<28} {:>12} {:>12}  {:016x}  {:016x}  {}",
            c.table,
            c.source.rows,
            c.ohm.rows,
            c.source.checksum,
            c.ohm.checksum,
            if ok { "equal" } else { "DIFFERENT" }
        );
    }
    for c in checks.iter().filter(|c| !c.equal()) {
        eprintln!("{}: the first differing rows:", c.table);
        for d in &c.differences {
            eprintln!("  {d}");
        }
    }
    all
}

/// `ohm migrate`. Exit status: 0 when done (and verified equal); 1 when a
/// difference was found or the migration stopped (it says how to resume);
/// 130 when interrupted.
pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let opts = options(&args)?;
    let client = args.connect.connect(TokenRole::Demo).await?;
    let interrupt = super::load::interrupt_on_ctrl_c();
    let out = migrate::run(&client, &opts, interrupt.clone()).await?;
    let plan = &out.plan;
    println!("{} tables from schema {}:", plan.tables.len(), plan.schema);
    for t in &plan.tables {
        let placed = match &t.placement {
            Placement::Replicated => "replicated".to_string(),
            Placement::On(c) => format!("partitioned on {c}"),
        };
        let rows = if t.rows_estimated {
            format!("~{}", t.rows)
        } else {
            t.rows.to_string()
        };
        println!("  {:<28} {:>12} rows  {placed}", t.name, rows);
    }
    let dropped = plan.notes.iter().filter(|n| n.dropped).count();
    println!(
        "report: {} changes, {} not carried over{}",
        plan.notes.len() - dropped,
        dropped,
        match &opts.plan_file {
            Some(f) => format!(" (all in {})", f.display()),
            None => " (write them out with --plan FILE)".into(),
        }
    );
    if !opts.apply && !opts.verify_only {
        println!("nothing applied: review the plan, then run again with --apply");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(why) = &out.stopped {
        eprintln!("the migration stopped: {why}");
        eprintln!(
            "what was loaded stays; continue with the same command and --resume (state: {})",
            opts.work_dir.display()
        );
        return Ok(ExitCode::from(if interrupt.load(Ordering::Relaxed) {
            130
        } else {
            1
        }));
    }
    if !print_checks(&out.checks) {
        eprintln!("verification found differences");
        return Ok(ExitCode::from(1));
    }
    if opts.apply {
        std::fs::remove_file(opts.work_dir.join("migrate.state")).ok();
        std::fs::remove_dir(&opts.work_dir).ok();
        println!(
            "migrated and verified: {} tables, {} rows{}",
            out.checks.len(),
            out.checks.iter().map(|c| c.ohm.rows).sum::<u64>(),
            if out.rejected > 0 {
                format!(
                    " ({} rows rejected, see {})",
                    out.rejected,
                    opts.work_dir.display()
                )
            } else {
                String::new()
            }
        );
    } else {
        println!("verified: every table equal");
    }
    Ok(ExitCode::SUCCESS)
}
