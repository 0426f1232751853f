//! `ohm serve`: the node process. Opens the data directory, recovers,
//! sets up TLS (generating a certificate on first start), listens on QUIC
//! and serves until SIGINT/SIGTERM.

use super::cluster::{ClusterConfig, PeerRouter};
use super::forward::{Forwarder, FORWARD_SWEEP_EVERY};
use super::writer::Durability;
use super::{demo, ClusterSetup, Node, NodeConfig};
use crate::net::peer::{PeerConfig, PeerNet};
use crate::net::peer_tls::PeerIdentity;
use crate::peer::{Group, PeerMessage};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DurabilityArg {
    /// Acknowledge after fsync (survives kill -9, OS crash, power loss).
    Sync,
    /// Acknowledge after write(), fsync every 100 ms (survives kill -9; an
    /// OS crash or power loss may lose the last 100 ms).
    Async,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Data directory (created if missing): logs, snapshots, certificate, tokens.
    #[arg(long, default_value = "ohm-data")]
    pub data: PathBuf,
    /// UDP address to listen on for clients [default: 127.0.0.1:7450; in a
    /// cluster, this node's `client=` address in cluster.conf].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Run as one node of a cluster: this node's directory from `ohm
    /// cluster init` (ca.pem, node.pem, node.key, cluster.conf, catalog).
    /// The node id comes from the certificate; partitions, replicas and
    /// every node's addresses from cluster.conf.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["demo", "cert"])]
    pub cluster: Option<PathBuf>,
    /// Partitions (default: one per core; fixed once the data directory exists).
    #[arg(long)]
    pub partitions: Option<u32>,
    #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
    pub durability: DurabilityArg,
    /// Take a partition's snapshot once its log has grown by this many MiB,
    /// or by its last snapshot's size if that is more.
    #[arg(long, default_value_t = 256)]
    pub snapshot_log_mib: u64,
    /// KiB of a snapshot encoded between two turns at calls; 0: the whole
    /// snapshot in one go, as before stepped snapshots (for `ohm bench
    /// snapshot`'s baseline).
    #[arg(long, hide = true, default_value_t = (crate::partition::SNAPSHOT_STEP_BYTES >> 10) as u64)]
    pub snapshot_step_kib: u64,
    /// MiB a log segment holds before the next is begun (hidden: for
    /// tests that need segments begun while the disk is full).
    #[arg(long, hide = true, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub segment_mib: u64,
    /// Modules each tenant may have deployed at once (its quota).
    #[arg(long, default_value_t = crate::catalog::quota::MODULES_PER_TENANT_DEFAULT)]
    pub quota_modules: u32,
    /// MiB of module code each tenant may have deployed, over all modules.
    #[arg(long, default_value_t = crate::catalog::quota::MODULE_BYTES_PER_TENANT_DEFAULT >> 20)]
    pub quota_module_mib: u64,
    /// Rows each tenant may hold on one partition (a replicated table's
    /// rows count on every partition).
    #[arg(long, default_value_t = crate::catalog::quota::ROWS_PER_TENANT_PARTITION_DEFAULT)]
    pub quota_rows: u64,
    /// Client connections each tenant may have open on this node.
    #[arg(long, default_value_t = crate::catalog::quota::CONNECTIONS_PER_TENANT_DEFAULT)]
    pub quota_connections: u64,
    /// Requests of each tenant this node holds unanswered at once.
    #[arg(long, default_value_t = crate::catalog::quota::IN_FLIGHT_PER_TENANT_DEFAULT)]
    pub quota_in_flight: u64,
    /// Calls and SQL requests each tenant may start per second on this node.
    #[arg(long, default_value_t = crate::catalog::quota::CALLS_PER_SEC_PER_TENANT_DEFAULT)]
    pub quota_calls_per_sec: u64,
    /// Wasm fuel (about one per instruction) each tenant's calls may burn
    /// per second on one partition.
    #[arg(long, default_value_t = crate::catalog::quota::FUEL_PER_SEC_PER_TENANT_DEFAULT)]
    pub quota_fuel_per_sec: u64,
    /// Time limit of a procedure call (ms), each tenant's unless its own
    /// is set (`ohm tenant quota`); past it the call is rolled back and
    /// answered `timeout`.
    #[arg(long, default_value_t = super::CALL_TIMEOUT_MS_DEFAULT)]
    pub call_timeout_ms: u64,
    /// Time limit of one ad-hoc SQL statement (ms), each tenant's unless
    /// its own is set.
    #[arg(long, default_value_t = super::SQL_TIMEOUT_MS_DEFAULT)]
    pub sql_timeout_ms: u64,
    /// CPU time a deployed module may take to compile (ms); a costlier one
    /// is refused.
    #[arg(long, default_value_t = super::COMPILE_TIME_MAX_MS_DEFAULT)]
    pub compile_time_max_ms: u64,
    /// Create the `demo` tenant with the example procedures (voter, bank, kv)
    /// and write its token to DATA/demo.token.
    #[arg(long)]
    pub demo: bool,
    /// Where the example modules are (default: $OHM_WASM_DIR, else
    /// target/wasm32-unknown-unknown/wasm beside this binary).
    #[arg(long, value_name = "DIR")]
    pub procedures: Option<PathBuf>,
    /// Serve this certificate (PEM chain) instead of the generated one.
    #[arg(long, requires = "key", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, requires = "cert", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Threads for the network (tokio workers).
    #[arg(long, default_value_t = 2)]
    pub io_threads: usize,
    /// Serve Prometheus metrics over plain HTTP at http://ADDR/metrics:
    /// host:port, or a port alone for loopback (off unless given).
    /// Metrics name tenants and count their work: keep it where only
    /// operators reach it.
    #[arg(long, value_name = "ADDR", value_parser = crate::net::metrics_http::parse_addr)]
    pub metrics: Option<SocketAddr>,
    /// How the node logs to stderr: `text` (a line each, for people) or
    /// `json` (an object each, for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The node's log on stderr, from `tracing`'s events at INFO and above:
/// a line each (`2026-12-05T02:04:34.123456Z  INFO ohm::node::executor:
/// leading partition=0 ballot=3/1`), or a JSON object each with `timestamp`, `level`,
/// `message` and the event's fields. Set once per process; a second call
/// (tests start nodes in one process) keeps the first.
pub fn init_logs(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        // Which crate spoke: the node (`ohm::...`) or a library (quinn).
        .with_target(true)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The partition count: as given, else as the data directory says, else
/// one per core.
fn partitions(args: &ServeArgs, dir: &cap_std::fs::Dir) -> u32 {
    if let Some(n) = args.partitions {
        return n;
    }
    if let Ok(meta) = dir.read_to_string(super::datadir::META_FILE) {
        if let Some(n) = meta
            .lines()
            .find_map(|l| l.strip_prefix("partitions ")?.parse().ok())
        {
            return n;
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The default client address of a lone node.
const LISTEN_DEFAULT: &str = "127.0.0.1:7450";

/// A cluster node's identity, its view of the cluster, and its links.
struct Joined {
    identity: PeerIdentity,
    config: Arc<ClusterConfig>,
    router: Arc<PeerRouter>,
    net: Arc<PeerNet>,
}

/// Loads the node's cluster directory and starts its peer links (inside
/// the network runtime).
fn join(dir: &Path, rt: &tokio::runtime::Runtime) -> anyhow::Result<Joined> {
    let identity = PeerIdentity::load(dir)?;
    let config = Arc::new(ClusterConfig::load(dir, identity.node)?);
    let router = Arc::new(PeerRouter::default());
    let peer_cfg = PeerConfig {
        listen: config.me().peer,
        peers: config.peers(),
    };
    let (net, links) = {
        let _in_rt = rt.enter();
        PeerNet::start(&identity, peer_cfg, router.deliver())
            .with_context(|| format!("starting the peer links on {}", config.me().peer))?
    };
    rt.spawn(links);
    Ok(Joined {
        identity,
        config,
        router,
        net: Arc::new(net),
    })
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.log_format);
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating the data directory {}", args.data.display()))?;
    let dir = cap_std::fs::Dir::open_ambient_dir(&args.data, cap_std::ambient_authority())
        .with_context(|| format!("opening the data directory {}", args.data.display()))?;
    // One network thread: tokio's current-thread runtime (no work-stealing
    // hand-offs between threads); more: the multi-thread scheduler.
    let rt = if args.io_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.io_threads)
            .thread_name("ohm-io")
            .enable_all()
            .build()
    }
    .context("starting the network runtime")?;
    let joined = match &args.cluster {
        Some(d) => Some(join(d, &rt)?),
        None => None,
    };
    let partitions = match &joined {
        Some(j) => {
            if args.partitions.is_some_and(|p| p != j.config.partitions) {
                bail!(
                    "--partitions {} disagrees with cluster.conf (partitions {}); leave it out",
                    args.partitions.unwrap_or_default(),
                    j.config.partitions
                );
            }
            j.config.partitions
        }
        None => partitions(&args, &dir),
    };
    let listen = match (&joined, args.listen) {
        (_, Some(l)) => l,
        (Some(j), None) => j.config.me().client,
        (None, None) => LISTEN_DEFAULT.parse().context("the default address")?,
    };
    let config = NodeConfig {
        partitions,
        durability: match args.durability {
            DurabilityArg::Sync => Durability::Sync,
            DurabilityArg::Async => Durability::Async,
        },
        snapshot_log_bytes: args.snapshot_log_mib.max(1) << 20,
        snapshot_step_bytes: match args.snapshot_step_kib {
            0 => usize::MAX,
            kib => usize::try_from(kib.saturating_mul(1024)).unwrap_or(usize::MAX),
        },
        segment_bytes_max: args.segment_mib << 20,
        quota: crate::catalog::Quota {
            modules_max: args.quota_modules,
            module_bytes_max: args.quota_module_mib.saturating_mul(1 << 20),
            rows_max: args.quota_rows,
            connections_max: args.quota_connections,
            in_flight_max: args.quota_in_flight,
            calls_per_sec: args.quota_calls_per_sec,
            fuel_per_sec: args.quota_fuel_per_sec,
            call_timeout_ms: args.call_timeout_ms.max(1),
            sql_timeout_ms: args.sql_timeout_ms.max(1),
        },
        compile_time_max_ms: args.compile_time_max_ms.max(1),
    };
    check_quota_flags(&config.quota)?;
    let tls_dir = dir.try_clone().context("opening the data directory")?;
    let setup = joined.as_ref().map(|j| {
        let net = j.net.clone();
        let links_net = j.net.clone();
        let forward_net = j.net.clone();
        ClusterSetup {
            links: Arc::new(move || links_net.status()),
            forwarder: {
                let up_net = j.net.clone();
                Arc::new(Forwarder::new(
                    Arc::new(move |to, msg| forward_net.send(to, msg).is_ok()),
                    Arc::new(move |to| up_net.connected(to)),
                ))
            },
            config: j.config.clone(),
            dir: args.cluster.clone().unwrap_or_default(),
            outbox: Arc::new(move |p| {
                let net = net.clone();
                Arc::new(move |to, msg| {
                    let group = Group::Partition(p);
                    // A full queue drops it; consensus sends again.
                    let _ = net.send(to, PeerMessage::Consensus { group, msg });
                })
            }),
        }
    });
    let node = Node::start_in(dir.try_clone()?, config.clone(), args.demo, setup)?;
    if let Some(j) = &joined {
        j.router.connect(&node);
        if let Some(f) = node.forwarder.clone() {
            // Forwards whose leader never answered are answered in the end.
            rt.spawn(async move {
                let mut every = tokio::time::interval(FORWARD_SWEEP_EVERY);
                loop {
                    every.tick().await;
                    f.expire(std::time::Instant::now());
                }
            });
        }
        tracing::info!(
            "node {} of a cluster of {} nodes (replicas {}), peers on {}",
            j.config.me.0,
            j.config.nodes.len(),
            j.config.replicas,
            j.config.me().peer
        );
    }
    if args.demo {
        let procs = args
            .procedures
            .clone()
            .or_else(demo::default_procedures_dir)
            .context("cannot tell where the example procedures are: pass --procedures DIR")?;
        demo::setup(&node, &procs)?;
    }
    // In a cluster, clients are served with the node's certificate (the
    // cluster CA signed it for the names clients use: they pass --ca).
    let identity = match (&args.cert, &args.key, &joined) {
        (Some(c), Some(k), _) => crate::net::tls::load_files(c, k)?,
        (_, _, Some(j)) => j.identity.server_identity(),
        _ => crate::net::tls::load_or_create(&tls_dir, &default_names(&listen))?,
    };
    rt.block_on(serve_quic(node.clone(), identity, listen, &args, &config))?;
    node.shutdown();
    if let Some(j) = &joined {
        // Peers see the links close at once rather than after their idle
        // timeout.
        j.net.close();
    }
    if let Some(why) = node.fatal.get() {
        bail!("the node stopped because it could not go on: {why}");
    }
    tracing::info!("stopped; everything acknowledged is durable");
    Ok(())
}

/// How long a stopping node may take before it exits anyway.
const STOP_MAX: std::time::Duration = std::time::Duration::from_secs(30);
/// The exit code when it does.
const EXIT_STOP_OVERRUN: i32 = 75;

fn default_names(listen: &SocketAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        names.push(listen.ip().to_string());
    }
    names
}

async fn serve_quic(
    node: Arc<Node>,
    identity: crate::net::tls::ServerIdentity,
    listen: SocketAddr,
    args: &ServeArgs,
    config: &NodeConfig,
) -> anyhow::Result<()> {
    let endpoint = crate::net::endpoint::server(listen, &identity)
        .with_context(|| format!("listening on {listen}"))?;
    let addr = endpoint.local_addr().context("reading the bound address")?;
    if addr.port() == 0 {
        bail!("the endpoint has no port");
    }
    tracing::info!(
        "serving {} partitions, durability {}, data {}",
        config.partitions,
        config.durability.name(),
        args.data.display()
    );
    let metrics = match args.metrics {
        None => String::new(),
        Some(at) => {
            let listener = crate::net::metrics_http::bind(at)
                .await
                .with_context(|| format!("--metrics: listening on {at}"))?;
            let at = listener
                .local_addr()
                .context("reading the metrics address")?;
            let shown = node.clone();
            let page: Arc<dyn Fn() -> String + Send + Sync> =
                Arc::new(move || super::metrics::render(&shown));
            tokio::spawn(crate::net::metrics_http::serve(listener, page));
            tracing::info!("metrics at http://{at}/metrics");
            format!(" metrics={at}")
        }
    };
    println!(
        "ready addr={addr} fingerprint={} data={}{metrics}",
        identity.fingerprint(),
        args.data.display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let fatal = node.fatal.clone();
    let signal = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = fatal.wait() => {}
        }
        // Each step of the stop is bounded; this is the backstop should a
        // thread not end (nothing acknowledged is lost by exiting: every
        // acknowledged write is in the log).
        let _ = std::thread::Builder::new()
            .name("ohm-stop-backstop".into())
            .spawn(|| {
                std::thread::sleep(STOP_MAX);
                tracing::error!("the node did not stop within {STOP_MAX:?}; exiting now");
                std::process::exit(EXIT_STOP_OVERRUN);
            });
    };
    // Connections stay open while the partitions finish what is in flight
    // and answer it (new requests are refused meanwhile); then the server
    // delivers those answers and closes them.
    let stopping = node.clone();
    let drain = async move {
        let _ = tokio::task::spawn_blocking(move || stopping.shutdown()).await;
    };
    let chain = identity.chain.iter().map(|c| c.to_vec()).collect();
    crate::net::server::serve(endpoint, node, chain, signal, drain).await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Refuses a `--quota-*` or time limit flag over the ceiling an
/// administrator could set for that quota (`QuotaField::ceiling`): past
/// it the default would stop bounding what the node can hold.
fn check_quota_flags(quota: &crate::catalog::Quota) -> anyhow::Result<()> {
    use crate::catalog::QuotaField;
    for field in QuotaField::ALL {
        let (value, ceiling) = (quota.get(field), field.ceiling());
        if value > ceiling {
            let flag = match field {
                QuotaField::ModulesMax => "--quota-modules",
                QuotaField::ModuleBytesMax => "--quota-module-mib",
                QuotaField::RowsMax => "--quota-rows",
                QuotaField::ConnectionsMax => "--quota-connections",
                QuotaField::InFlightMax => "--quota-in-flight",
                QuotaField::CallsPerSec => "--quota-calls-per-sec",
                QuotaField::CallTimeoutMs => "--call-timeout-ms",
                QuotaField::SqlTimeoutMs => "--sql-timeout-ms",
                QuotaField::FuelPerSec => "--quota-fuel-per-sec",
            };
            // That flag is in MiB.
            let mib = |v: u64| {
                if field == QuotaField::ModuleBytesMax {
                    v >> 20
                } else {
                    v
                }
            };
            bail!(
                "{flag} {} is over the most {} may be ({}): give at most that",
                mib(value),
                field.name(),
                mib(ceiling)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A default over the ceiling was taken as given before (a node with
    /// `--quota-modules 100000` bounded nothing the node can hold).
    #[test]
    fn a_quota_flag_over_its_ceiling_is_refused_naming_the_flag() {
        let quota = crate::catalog::Quota::default();
        check_quota_flags(&quota).unwrap();
        let over = crate::catalog::Quota {
            modules_max: 4_097,
            ..quota
        };
        let e = check_quota_flags(&over).unwrap_err().to_string();
        assert!(
            e.contains("--quota-modules 4097") && e.contains("4096"),
            "{e}"
        );
        let over = crate::catalog::Quota {
            sql_timeout_ms: 3_600_001,
            ..quota
        };
        let e = check_quota_flags(&over).unwrap_err().to_string();
        assert!(e.contains("--sql-timeout-ms"), "{e}");
    }
}
