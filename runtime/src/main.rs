//! The `ohm` command line: conformance runs, benchmarks, the linearizability
//! checker for recorded histories (`lincheck`) and the client commands
//! (`sql`, `deploy`, `drop`, `call`, `status`, `tenant`); the node (`ohm
//! serve`) arrives with the node issue.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ohm::slt::{self, expected::ExpectedFailures, SltDb};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "ohm",
    version,
    about = "Ohm: a distributed in-memory SQL database with WebAssembly stored procedures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run sqllogictest files against the SQL engine and compare with the
    /// expected answers (SQLite's), the way SQLite's own runner does.
    ///
    /// Prints `FILE: N passed, M failed, K skipped` per file and
    /// `slt: ...` for the run; exits non-zero if any record failed.
    Slt(SltArgs),
    /// Measure throughput and latency.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check recorded operation histories for linearizability.
    ///
    /// Reads Jepsen etcd logs (`INFO jepsen.util - <process> :invoke|:ok|:fail|:info
    /// :read|:write|:cas <value>`: a register) and EDN key-value logs
    /// (`{:process P, :type ..., :f :get|:put|:append, :key "k", :value ...}`),
    /// telling them apart by content. Prints `FILE<TAB>linearizable`,
    /// `FILE<TAB>NOT-linearizable` or `FILE<TAB>unknown` (the search ran out of
    /// time) per file, in the order given. Exits 0 if every file is
    /// linearizable, 1 if any is not or is unknown, 2 if any file cannot be
    /// read or parsed (named with its line on stderr; the others are still
    /// checked).
    Lincheck(LincheckArgs),
    /// Verify a stopped node's data directory, changing nothing: node.meta,
    /// the catalog, and per partition every log record's checksum and slot
    /// sequence, the newest snapshot, the vote and the durable mark. Prints
    /// a line per part; exits 0 if a start would find nothing damaged or
    /// missing, 1 if it would refuse (those lines start with DAMAGED or
    /// MISSING). Refused while a node runs on the directory.
    Check(ohm::cli::check::CheckArgs),
    /// Run a node: recover the data directory, listen on QUIC, serve until
    /// SIGINT/SIGTERM. Prints `ready addr=... fingerprint=... data=...`.
    Serve(ohm::node::serve::ServeArgs),
    /// The embedded default: start a node with the demo tenant and the
    /// example procedures, run the voter workload against it for a few
    /// seconds, print the results, and keep serving until Ctrl-C.
    Demo(ohm::cli::demo::DemoArgs),
    /// SQL shell (interactive), or run statements from -c, -f or stdin.
    Sql(ohm::cli::SqlArgs),
    /// Bulk-load rows into a table from a CSV file or PostgreSQL's COPY
    /// text format: chunks in parallel, bad lines to a reject file, a
    /// progress line, and --resume after an interruption.
    #[command(subcommand)]
    Load(LoadCommand),
    /// Move a PostgreSQL schema and its data into a tenant: translate the
    /// schema (--plan FILE to review it, with each table's placement and a
    /// report), then --apply: create it, copy the data in parallel (resumable),
    /// and verify row counts and checksums on both sides.
    Migrate(ohm::cli::migrate::MigrateArgs),
    /// Deploy (or replace) a procedure module.
    Deploy(ohm::cli::DeployArgs),
    /// Remove a module and its procedures.
    Drop(ohm::cli::DropArgs),
    /// Call a procedure and print its value or rows.
    Call(ohm::cli::CallArgs),
    /// The node's version, durability and per-partition counters.
    Status(ohm::cli::StatusArgs),
    /// Manage tenants (admin token).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Cluster certificates: a CA, and one certificate per node, as files
    /// to copy to each machine.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run the deterministic simulator: a replica group of real partition
    /// cores (consensus, SQL, Wasm procedures, the log on a simulated disk)
    /// under network, disk, crash and clock faults, checked for agreement,
    /// equal states, the bank's total and linearizable kv histories.
    ///
    /// A failing seed is printed with the command that replays it; every
    /// run prints a trace hash (equal runs, equal hashes).
    Sim(ohm::sim::cli::SimArgs),
    /// The fault suite on real processes (needs root, iproute2 and
    /// nftables): per seeded schedule, a fresh cluster of node processes,
    /// each in its own network namespace, under kv, bank and voter load
    /// while nodes are killed, paused, cut off and lose packets; then every
    /// invariant is checked. Exits 1 on any anomaly.
    Torture(ohm::torture::TortureArgs),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Create the cluster CA and certificates for nodes 1..=N in a new
    /// directory (DIR/ca.pem, DIR/ca.key, DIR/n<id>/).
    Init(ohm::cli::cluster::ClusterInitArgs),
    /// Sign a certificate for one more node with the CA in DIR.
    AddNode(ohm::cli::cluster::ClusterAddNodeArgs),
}

#[derive(Subcommand)]
enum LoadCommand {
    /// CSV (RFC 4180, as PostgreSQL's COPY ... CSV reads it): a header
    /// line naming the columns unless --no-header.
    Csv(ohm::cli::load::LoadArgs),
    /// PostgreSQL's COPY text format (tab-separated, \N for NULL,
    /// backslash escapes), as `COPY ... TO STDOUT` and pg_dump write it.
    Text(ohm::cli::load::LoadArgs),
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its first token (once).
    Create(ohm::cli::TenantCreateArgs),
    /// Show a tenant's quotas, after setting those given (NAME=VALUE, or
    /// NAME=default).
    Quota(ohm::cli::TenantQuotaArgs),
    /// Create, revoke and list a tenant's principals (tokens with roles).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a principal with a role and print its token (once).
    Create(ohm::cli::admin::TokenCreateArgs),
    /// Revoke a principal: its token is refused from now on, also on
    /// connections already open.
    Revoke(ohm::cli::admin::TokenRevokeArgs),
    /// List a tenant's principals and their roles (never their tokens).
    List(ohm::cli::admin::TokenListArgs),
}

#[derive(Args)]
struct SltArgs {
    /// Answer to this label in `skipif`/`onlyif` (repeatable; replaces the
    /// default `postgresql`).
    #[arg(long = "label", value_name = "L")]
    labels: Vec<String>,
    /// Print the first N failures with file:line, SQL, expected and actual.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "20")]
    fail_detail: Option<usize>,
    /// Records known to fail (`path-suffix:line  reason` per line); they
    /// count as expected failures, and a listed record that passes fails.
    #[arg(long, value_name = "FILE")]
    expected_failures: Option<PathBuf>,
    /// Engine to run against; `sqlite` checks the runner itself.
    #[arg(long, value_enum, default_value_t = Engine::Ohm, hide = true)]
    engine: Engine,
    /// `.test` files, or directories searched recursively for them.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Longest `--timeout-ms` (a day).
const LINCHECK_TIMEOUT_MS_MAX: u64 = 24 * 3600 * 1000;

#[derive(Args)]
struct LincheckArgs {
    /// Time the search may spend on one history before reporting it
    /// `unknown`.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(0..=LINCHECK_TIMEOUT_MS_MAX))]
    timeout_ms: u64,
    /// History files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Engine {
    Ohm,
    Sqlite,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Benchmark the embedded SQL engine (no network, one partition).
    Sql {
        /// Rows loaded before timing starts.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Seconds each measured phase runs (after a short warm-up).
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Benchmark the voter `vote` procedure in-process: as Wasm and as the
    /// same Rust compiled natively, against identical engines.
    Proc {
        /// Seconds each measured phase runs (after a short warm-up).
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Measured phases per side (the sides alternate; medians are reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// The voter module (default: where `cargo procs` builds it).
        #[arg(long)]
        wasm: Option<std::path::PathBuf>,
    },
    /// The voter workload over QUIC against a node, and against PostgreSQL
    /// on loopback in the same run.
    Voter(ohm::bench::voter::VoterArgs),
    /// Bulk load: a generated CSV of 1,000,000 rows loaded with `ohm load`
    /// into a node it starts and with COPY into a PostgreSQL it starts,
    /// both durable; rows/s of each, the ratio, Ohm's bytes per row.
    Load(ohm::bench::bulk::BulkArgs),
    /// Kill -9 the leader of a local cluster again and again under writes:
    /// how long writes stop (median, max), and every acknowledged write
    /// read back.
    Failover(ohm::bench::failover::FailoverArgs),
    /// One tenant's latency alone, then while another tenant runs its
    /// worst (expensive calls, compile bombs, module floods, memory-hungry
    /// instances) on the same node: p50/p99/max and the p99 ratios.
    Isolation(ohm::bench::isolation::IsolationArgs),
    /// Load a few GiB into one partition while a prober gets and puts:
    /// its longest call and the snapshots' bytes, with snapshots encoded
    /// in one go and in steps, in the same run.
    Snapshot(ohm::bench::snapshot::SnapshotArgs),
    /// The 22 TPC-H queries as written on the official schema: Ohm's
    /// engine beside SQLite in memory, per-query times, and Ohm's answers
    /// checked against a reference engine's (`--answers`).
    Tpch(ohm::bench::tpch::TpchArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Slt(args) => run_slt(args),
        Command::Lincheck(args) => run_lincheck(args),
        Command::Serve(args) => ohm::node::serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => ohm::cli::demo::run(args),
        Command::Bench(BenchCommand::Sql { rows, seconds }) => {
            ohm::bench::run_sql(&ohm::bench::SqlBenchOptions { rows, seconds })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Proc {
            seconds,
            rounds,
            wasm,
        }) => {
            ohm::bench::run_proc(&ohm::bench::ProcBenchOptions {
                seconds,
                rounds,
                wasm,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Voter(args)) => ohm::bench::voter::run(args),
        Command::Bench(BenchCommand::Load(args)) => ohm::bench::bulk::run(&args),
        Command::Bench(BenchCommand::Failover(args)) => ohm::bench::failover::run(&args),
        Command::Bench(BenchCommand::Isolation(args)) => ohm::bench::isolation::run(&args),
        Command::Bench(BenchCommand::Snapshot(args)) => ohm::bench::snapshot::run(&args),
        Command::Bench(BenchCommand::Tpch(args)) => ohm::bench::tpch::run(&args),
        Command::Sql(args) => client_runtime()?.block_on(ohm::cli::sql::run(args)),
        Command::Load(LoadCommand::Csv(args)) => {
            client_runtime()?.block_on(ohm::cli::load::run(args, true))
        }
        Command::Load(LoadCommand::Text(args)) => {
            client_runtime()?.block_on(ohm::cli::load::run(args, false))
        }
        Command::Migrate(args) => client_runtime()?.block_on(ohm::cli::migrate::run(args)),
        Command::Deploy(args) => client_runtime()?.block_on(ohm::cli::admin::deploy(args)),
        Command::Drop(args) => client_runtime()?.block_on(ohm::cli::admin::drop_module(args)),
        Command::Call(args) => client_runtime()?.block_on(ohm::cli::admin::call(args)),
        Command::Status(args) => client_runtime()?.block_on(ohm::cli::admin::status(args)),
        Command::Torture(args) => ohm::torture::run(&args),
        Command::Check(args) => Ok(if ohm::cli::check::run(&args)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Command::Sim(args) => match ohm::sim::cli::run_cli(&args) {
            Ok(true) => Ok(ExitCode::SUCCESS),
            Ok(false) => Ok(ExitCode::FAILURE),
            Err(e) => bail!(e),
        },
        Command::Cluster(ClusterCommand::Init(args)) => {
            ohm::cli::cluster::init(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster(ClusterCommand::AddNode(args)) => {
            ohm::cli::cluster::add_node(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenant(TenantCommand::Create(args)) => {
            client_runtime()?.block_on(ohm::cli::admin::tenant_create(args))
        }
        Command::Tenant(TenantCommand::Quota(args)) => {
            client_runtime()?.block_on(ohm::cli::admin::tenant_quota(args))
        }
        Command::Tenant(TenantCommand::Token(TokenCommand::Create(args))) => {
            client_runtime()?.block_on(ohm::cli::admin::token_create(args))
        }
        Command::Tenant(TenantCommand::Token(TokenCommand::Revoke(args))) => {
            client_runtime()?.block_on(ohm::cli::admin::token_revoke(args))
        }
        Command::Tenant(TenantCommand::Token(TokenCommand::List(args))) => {
            client_runtime()?.block_on(ohm::cli::admin::token_list(args))
        }
    }
}

/// The client commands' runtime: two workers, so the shell may block one
/// in readline while the connection keeps being served.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn run_lincheck(args: LincheckArgs) -> anyhow::Result<ExitCode> {
    use ohm::lincheck::{history, Verdict};
    let timeout = Duration::from_millis(args.timeout_ms);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut unreadable, mut all_linearizable) = (false, true);
    for file in &args.files {
        let history = match history::read_file(file) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("ohm lincheck: {e}");
                unreadable = true;
                continue;
            }
        };
        let verdict = history.check(Instant::now() + timeout);
        all_linearizable &= verdict == Verdict::Linearizable;
        writeln!(out, "{}\t{verdict}", file.display()).context("writing the report")?;
        out.flush().context("writing the report")?;
    }
    Ok(if unreadable {
        ExitCode::from(2)
    } else if all_linearizable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_slt(args: SltArgs) -> anyhow::Result<ExitCode> {
    let expected = match &args.expected_failures {
        Some(path) => ExpectedFailures::load(path)?,
        None => ExpectedFailures::none(),
    };
    let labels = if args.labels.is_empty() {
        vec![slt::DEFAULT_LABEL.to_string()]
    } else {
        args.labels
    };
    let files = slt::collect_test_files(&args.files)?;
    if files.is_empty() {
        bail!("no .test files found in {:?}", args.files);
    }
    let opts = slt::Options { labels, expected };
    let mut make_db = move || -> Result<Box<dyn SltDb>, String> {
        match args.engine {
            Engine::Ohm => Ok(Box::new(ohm::sql::Engine::new())),
            Engine::Sqlite => Ok(Box::new(slt::sqlite::SqliteDb::open()?)),
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let counts = slt::run_suite(
        &files,
        &mut make_db,
        &opts,
        args.fail_detail.unwrap_or(0),
        &mut out,
    )
    .context("writing the report")?;
    out.flush().context("writing the report")?;
    Ok(if counts.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
