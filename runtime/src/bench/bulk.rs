//! `ohm bench load`: one generated CSV (bigint key, text, decimal,
//! timestamp) loaded into a node this bench starts, with `ohm load`'s
//! pipeline over QUIC, and in the same run into a PostgreSQL server it
//! starts, with COPY ... FROM STDIN streamed by a client; both with
//! durability on (Ohm `--durability sync`, PostgreSQL `fsync=on`,
//! `synchronous_commit=on`). Prints rows/s of each, the ratio, and Ohm's
//! memory per row (the node's resident set grown by the load).
//! docs/WORKLOADS.md, "load".

use super::postgres::{self, PgServer};
use super::voter::node::NodeProcess;
use super::voter::Durability;
use crate::driver::{Client, ClientConfig, Trust};
use crate::loader::convert::{Encoding, Formats};
use crate::loader::records::Format;
use crate::loader::{self, Input, Options};
use crate::types::Value;
use anyhow::{bail, Context};
use clap::Args;
use futures_util::SinkExt;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// Flags of `ohm bench load`.
#[derive(Debug, Clone, Args)]
pub struct BulkArgs {
    /// Rows in the generated file.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// The node's partitions (default: its own default).
    #[arg(long)]
    pub partitions: Option<usize>,
    /// Lines per `load` chunk.
    #[arg(long, default_value_t = loader::CHUNK_ROWS_DEFAULT)]
    pub chunk_rows: usize,
    /// Chunks in flight.
    #[arg(long, default_value_t = loader::PARALLEL_DEFAULT)]
    pub parallel: usize,
    /// Skip PostgreSQL (no ratio is printed).
    #[arg(long)]
    pub no_pg: bool,
    /// Seed of the generated rows.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

const TABLE_DDL: &str = "CREATE TABLE bench_load (id BIGINT PRIMARY KEY, name VARCHAR(40) NOT \
                         NULL, amount DECIMAL(12,2) NOT NULL, at TIMESTAMP NOT NULL)";
/// Bytes of the file sent to PostgreSQL at a time.
const COPY_BYTES: usize = 1 << 20;

/// Writes the bench's CSV: a header, then `rows` rows in key order.
fn generate(path: &Path, rows: u64, seed: u64) -> anyhow::Result<u64> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(f);
    let mut rng = crate::rng::Rng::new(seed);
    writeln!(out, "id,name,amount,at")?;
    const WORDS: [&str; 8] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    for id in 1..=rows {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        let cents = rng.below(10_000_000);
        // Within 2024, to the second.
        let secs = 1_704_067_200 + rng.below(366 * 86_400) as i64;
        let at = crate::types::format_timestamp(secs * 1_000_000);
        writeln!(
            out,
            "{id},{w} {},{}.{:02},{at}",
            rng.below(100_000),
            cents / 100,
            cents % 100
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// The resident set of process `pid`, in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kb * 1024)
}

struct Side {
    rows_per_sec: f64,
    secs: f64,
}

async fn ohm_side(args: &BulkArgs, csv: &Path) -> anyhow::Result<(Side, f64)> {
    let node = NodeProcess::start(Durability::Sync, args.partitions)?;
    let trust = Trust::Fingerprint(node.ready.fingerprint.clone());
    let mut cfg = ClientConfig::new(node.ready.addr.clone(), trust, node.demo_token()?);
    cfg.streams = args.parallel.max(1);
    let client = Client::connect(cfg)
        .await
        .context("connecting to the node")?;
    client.sql(TABLE_DDL).await?;
    client
        .sql("PARTITION TABLE bench_load ON COLUMN id")
        .await?;
    let status = client.status().await?;
    let before = rss(node.pid())?;
    let opts = Options {
        table: "bench_load".into(),
        columns: None,
        header: true,
        format: Format::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'"',
            null: Vec::new(),
        },
        encoding: Encoding::Utf8,
        formats: Formats::default(),
        chunk_rows: args.chunk_rows,
        parallel: args.parallel,
        max_errors: 0,
        reject_file: None,
        progress: false,
    };
    let dir = csv.parent().context("the CSV's directory")?;
    let input = Input::File {
        path: csv.to_path_buf(),
        state: dir.join("ohm.ohm-load"),
    };
    let t = Instant::now();
    let s = loader::load(
        &client,
        &input,
        &opts,
        false,
        Arc::new(AtomicBool::new(false)),
    )
    .await?;
    let secs = t.elapsed().as_secs_f64();
    if let Some(why) = s.stopped {
        bail!("the Ohm load stopped: {why}");
    }
    let after = rss(node.pid())?;
    let counted = client.sql("SELECT COUNT(*) FROM bench_load").await?;
    let n = match counted.first() {
        Some(crate::proto::SqlResult::Rows(r)) => r.rows.first().and_then(|r| r.first()).cloned(),
        _ => None,
    };
    if n != Some(Value::Int(args.rows as i64)) || s.loaded != args.rows {
        bail!(
            "Ohm holds {n:?} rows after loading {} of {}",
            s.loaded,
            args.rows
        );
    }
    println!(
        "ohm: node pid {} started by the bench, {} partitions, durability {}, {} chunks of {} \
         lines, {} in flight",
        node.pid(),
        status.partitions.len(),
        status.durability,
        args.rows.div_ceil(args.chunk_rows as u64),
        args.chunk_rows,
        args.parallel
    );
    let per_row = after.saturating_sub(before) as f64 / args.rows as f64;
    Ok((
        Side {
            rows_per_sec: args.rows as f64 / secs,
            secs,
        },
        per_row,
    ))
}

async fn pg_side(args: &BulkArgs, csv: &Path) -> anyhow::Result<(Side, String)> {
    let bin = postgres::find_bin_dir().context(
        "PostgreSQL's server is not installed (no initdb under /usr/lib/postgresql/*/bin or \
         on PATH): install it with `apt-get install postgresql`, or pass --no-pg",
    )?;
    let server = PgServer::start(&bin)?;
    let pg = postgres::connect(&server.dsn()).await?;
    pg.batch_execute(&TABLE_DDL.replace("DECIMAL", "NUMERIC"))
        .await
        .context("creating the PostgreSQL table")?;
    let t = Instant::now();
    let sink = pg
        .copy_in("COPY bench_load FROM STDIN (FORMAT csv, HEADER)")
        .await
        .context("COPY FROM STDIN")?;
    futures_util::pin_mut!(sink);
    let mut f = std::fs::File::open(csv)?;
    let mut buf = vec![0u8; COPY_BYTES];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        sink.send(bytes::Bytes::copy_from_slice(&buf[..n]))
            .await
            .context("sending COPY data")?;
    }
    let copied = sink.finish().await.context("finishing COPY")?;
    let secs = t.elapsed().as_secs_f64();
    if copied != args.rows {
        bail!("PostgreSQL copied {copied} rows of {}", args.rows);
    }
    Ok((
        Side {
            rows_per_sec: args.rows as f64 / secs,
            secs,
        },
        server.version.clone(),
    ))
}

pub fn run(args: &BulkArgs) -> anyhow::Result<ExitCode> {
    if args.rows == 0 {
        bail!("--rows must be at least 1");
    }
    let dir = postgres::fresh_temp_dir("ohm-bench-load")?;
    let csv = dir.join("bench_load.csv");
    let result = (|| {
        let bytes = generate(&csv, args.rows, args.seed)?;
        println!(
            "ohm bench load: {} rows (bigint, text, decimal, timestamp), {:.1} MB of CSV, \
             {:.1} bytes per row; client pid {}, {} cores",
            args.rows,
            bytes as f64 / 1e6,
            bytes as f64 / args.rows as f64,
            std::process::id(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (ohm, per_row) = rt.block_on(ohm_side(args, &csv))?;
        println!(
            "ohm (ohm load, sync):        {:>10.0} rows/s  ({:.2} s)",
            ohm.rows_per_sec, ohm.secs
        );
        println!(
            "ohm memory: {per_row:.0} bytes per row (the node's resident set grown by the \
             load), {:.2}x the CSV's {:.1}",
            per_row / (bytes as f64 / args.rows as f64),
            bytes as f64 / args.rows as f64
        );
        if args.no_pg {
            return Ok(());
        }
        let (pg, version) = rt.block_on(pg_side(args, &csv))?;
        println!(
            "postgresql {version} (COPY, fsync on): {:>10.0} rows/s  ({:.2} s)",
            pg.rows_per_sec, pg.secs
        );
        println!(
            "ratio ohm/postgresql: {:.2} x",
            ohm.rows_per_sec / pg.rows_per_sec
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| ExitCode::SUCCESS)
}
