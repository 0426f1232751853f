//! A cluster of `ohm serve` processes on this machine, for `ohm demo
//! --nodes`, `ohm bench voter --nodes` and `ohm bench failover`: `ohm
//! cluster init` into a directory, then one child process per node (this
//! same binary) on loopback, each node's messages in `n<i>.log` beside its
//! data.
//!
//! Owns: picking free ports, starting the nodes and reading their `ready`
//! lines, kill -9 and restart of one node, SIGSTOP/SIGCONT, stopping them
//! all (SIGTERM, then kill), and the example schemas and modules set up
//! through the cluster. `ohm torture` runs each node in its own network
//! namespace (`LocalClusterOptions::netns`), on its own address.
//! Must not: be used by a node, or leave processes behind (drop stops them).
//!
//! ```text
//!   <root>/cluster/   ca.pem, tokens, cluster.conf, n1/ n2/ n3/  (cluster init)
//!   <root>/data1/ data2/ data3/                                  (each node's data)
//!   <root>/n1.log n2.log n3.log                                  (each node's stderr)
//! ```

use super::voter::node::parse_ready;
use super::voter::Durability;
use crate::cli::cluster::ClusterInitArgs;
use crate::driver::cluster::ClusterClient;
use crate::driver::{ClientConfig, Trust};
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// Nodes a local cluster may have.
pub const LOCAL_NODES_MAX: u32 = 7;
/// Port ranges tried before giving up on finding free ones.
const PORT_TRIES_MAX: u32 = 64;
/// How long a node may take to print its `ready` line.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct LocalClusterOptions {
    pub nodes: u32,
    pub partitions: u32,
    pub durability: Durability,
    /// Where the cluster lives; kept afterwards. None: a fresh temporary
    /// directory, removed on drop.
    pub dir: Option<PathBuf>,
    /// Each node's address, one per node (empty: loopback, free ports).
    pub hosts: Vec<std::net::IpAddr>,
    /// Each node's network namespace, one per node (empty: this one): the
    /// node runs under `ip netns exec`.
    pub netns: Vec<String>,
    /// The `ohm` binary the nodes run (None: this one).
    pub binary: Option<PathBuf>,
    /// Environment variables set for every node.
    pub env: Vec<(String, String)>,
}

impl LocalClusterOptions {
    /// `nodes` nodes on loopback, in a temporary directory.
    pub fn new(nodes: u32, partitions: u32, durability: Durability) -> LocalClusterOptions {
        LocalClusterOptions {
            nodes,
            partitions,
            durability,
            dir: None,
            hosts: vec![],
            netns: vec![],
            binary: None,
            env: vec![],
        }
    }
}

/// The first node's client port when every node has its own address.
const OWN_HOST_PORT: u16 = 7450;

/// The running nodes; stopped (and a temporary directory removed) on drop.
pub struct LocalCluster {
    root: PathBuf,
    keep: bool,
    durability: Durability,
    netns: Vec<String>,
    binary: Option<PathBuf>,
    env: Vec<(String, String)>,
    nodes: Vec<Option<Child>>,
    /// Node i+1's client address.
    pub addrs: Vec<String>,
}

impl LocalCluster {
    /// Initialises the cluster (unless `opts.dir` holds one already) and
    /// starts every node.
    pub fn start(opts: &LocalClusterOptions) -> anyhow::Result<LocalCluster> {
        if !(1..=LOCAL_NODES_MAX).contains(&opts.nodes) {
            bail!("--nodes must be 1 to {LOCAL_NODES_MAX}");
        }
        let per_node = |what: &str, n: usize| {
            if n != 0 && n != opts.nodes as usize {
                bail!("{n} {what} for {} nodes", opts.nodes);
            }
            Ok(())
        };
        per_node("hosts", opts.hosts.len())?;
        per_node("network namespaces", opts.netns.len())?;
        let (root, keep) = match &opts.dir {
            Some(d) => (d.clone(), true),
            None => (super::postgres::fresh_temp_dir("ohm-local-cluster")?, false),
        };
        let conf = root.join("cluster").join("cluster.conf");
        let addrs = if conf.exists() {
            existing_addrs(&conf, opts.nodes)?
        } else {
            let (hosts, port) = if opts.hosts.is_empty() {
                (
                    vec![std::net::Ipv4Addr::LOCALHOST.into()],
                    free_ports(opts.nodes)?,
                )
            } else {
                (opts.hosts.clone(), OWN_HOST_PORT)
            };
            crate::cli::cluster::init_quiet(&ClusterInitArgs {
                out: root.join("cluster"),
                nodes: opts.nodes,
                names: vec![],
                partitions: opts.partitions,
                hosts: hosts.clone(),
                port,
            })?;
            (0..opts.nodes as usize)
                .map(|i| {
                    let at = (u32::from(port) + 10 * i as u32) as u16;
                    std::net::SocketAddr::new(hosts[i % hosts.len()], at).to_string()
                })
                .collect()
        };
        let mut c = LocalCluster {
            root,
            keep,
            durability: opts.durability,
            netns: opts.netns.clone(),
            binary: opts.binary.clone(),
            env: opts.env.clone(),
            nodes: (0..opts.nodes).map(|_| None).collect(),
            addrs,
        };
        let waits = (0..c.nodes.len())
            .map(|i| c.spawn(i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (i, rx) in waits.into_iter().enumerate() {
            c.wait_ready(i, rx)?;
        }
        Ok(c)
    }

    /// The directory holding the cluster.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn cluster_dir(&self) -> PathBuf {
        self.root.join("cluster")
    }

    /// Node i+1's log file.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.root.join(format!("n{}.log", i + 1))
    }

    /// Starts node i+1 (again, after a kill); returns once it is ready.
    pub fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let rx = self.spawn(i)?;
        self.wait_ready(i, rx)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<Receiver<String>> {
        if self.nodes.get(i).is_none_or(|n| n.is_some()) {
            bail!("node {} is running or does not exist", i + 1);
        }
        let exe = match &self.binary {
            Some(b) => b.clone(),
            None => std::env::current_exe().context("finding the ohm binary")?,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .with_context(|| format!("opening {}", self.log_path(i).display()))?;
        let mut cmd = match self.netns.get(i) {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.arg("serve")
            .arg("--cluster")
            .arg(self.cluster_dir().join(format!("n{}", i + 1)))
            .arg("--data")
            .arg(self.root.join(format!("data{}", i + 1)))
            .args(["--io-threads", "1", "--durability"])
            .arg(match self.durability {
                Durability::Sync => "sync",
                Durability::Async => "async",
            })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let stdout = child.stdout.take().context("the node's stdout")?;
        let (tx, rx) = channel();
        // Reads until the node exits (it prints only `ready`), so the pipe
        // stays open for its whole life.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(r) = parse_ready(&line) {
                    let _ = tx.send(r.addr);
                }
            }
        });
        self.nodes[i] = Some(child);
        Ok(rx)
    }

    fn wait_ready(&mut self, i: usize, rx: Receiver<String>) -> anyhow::Result<()> {
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(addr) if addr == self.addrs[i] => Ok(()),
            Ok(addr) => bail!(
                "node {} serves on {addr}, not on {} as cluster.conf says",
                i + 1,
                self.addrs[i]
            ),
            Err(_) => {
                let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                bail!(
                    "node {} printed no `ready` line within {READY_TIMEOUT:?}; the end of {}:\n{}",
                    i + 1,
                    self.log_path(i).display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            }
        }
    }

    /// kill -9 of node i+1 (no chance to sync or say goodbye).
    pub fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        let mut child = self
            .nodes
            .get_mut(i)
            .and_then(Option::take)
            .with_context(|| format!("node {} is not running", i + 1))?;
        child.kill().context("kill -9")?;
        child.wait().context("waiting for the killed node")?;
        Ok(())
    }

    /// SIGSTOP (`stop: true`) or SIGCONT to node i+1: a node that hangs
    /// without dying, its sockets and connections kept.
    pub fn signal_stop(&self, i: usize, stop: bool) -> anyhow::Result<()> {
        let pid = self
            .pid(i)
            .with_context(|| format!("node {} is not running", i + 1))?;
        let sig = if stop { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .context("running kill")?;
        if !ok.success() {
            bail!("kill {sig} {pid} (node {}) failed", i + 1);
        }
        Ok(())
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(Option::is_some)
    }

    /// The process id of node i+1, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes.get(i)?.as_ref().map(Child::id)
    }

    fn token(&self, file: &str) -> anyhow::Result<String> {
        let path = self.cluster_dir().join(file);
        let t = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(t.trim().to_string())
    }

    /// A client configuration for the admin principal, trusting the
    /// cluster CA (`status` shows the node-wide counters to admins only).
    pub fn admin_config(&self) -> anyhow::Result<ClientConfig> {
        let mut cfg = self.demo_config()?;
        cfg.token = self.token("admin.token")?;
        Ok(cfg)
    }

    /// A client configuration for the demo tenant, trusting the cluster CA.
    pub fn demo_config(&self) -> anyhow::Result<ClientConfig> {
        Ok(ClientConfig::new(
            self.addrs[0].clone(),
            Trust::CaFile(self.cluster_dir().join(crate::net::peer_tls::CA_CERT_FILE)),
            self.token("demo.token")?,
        ))
    }

    /// A cluster client of the demo tenant that knows every node.
    pub async fn demo_client(&self) -> anyhow::Result<ClusterClient> {
        Ok(ClusterClient::connect(self.demo_config()?, &self.addrs).await?)
    }

    /// Creates the example schemas and deploys the example modules named
    /// (of `node::demo::EXAMPLES`) into the demo tenant, through the
    /// cluster; a schema already there is kept.
    pub async fn set_up_examples(&self, modules: &[&str]) -> anyhow::Result<()> {
        let dir = crate::wasm::default_procedures_dir()
            .context("cannot tell where the example procedures are: set OHM_WASM_DIR")?;
        let client = self.demo_client().await?;
        for (module, schema) in crate::node::demo::EXAMPLES {
            if !modules.contains(&module) {
                continue;
            }
            let path = dir.join(format!("ohm_{module}.wasm"));
            let wasm = std::fs::read(&path).with_context(|| {
                format!(
                    "reading {} (build the example procedures with `cargo procs`, or set \
                     OHM_WASM_DIR)",
                    path.display()
                )
            })?;
            for stmt in schema {
                match resent(|| client.sql(stmt)).await {
                    Ok(_) => {}
                    // Made before, or by an earlier try whose answer was lost.
                    Err(e) if e.to_string().contains("already exists") => {}
                    Err(e) => bail!("the {module} schema: {stmt}: {e}"),
                }
            }
            resent(|| client.deploy(module, wasm.clone()))
                .await
                .with_context(|| format!("deploying {module}"))?;
        }
        Ok(())
    }

    /// Stops every node: SIGTERM (they sync and exit), then kill after
    /// `STOP_TIMEOUT`.
    pub fn stop(&mut self) {
        for child in self.nodes.iter().flatten() {
            // CONT after TERM: a stopped node (SIGSTOP) handles neither
            // until it runs again.
            for sig in ["-TERM", "-CONT"] {
                let _ = Command::new("kill")
                    .args([sig, &child.id().to_string()])
                    .status();
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for (i, slot) in self.nodes.iter_mut().enumerate() {
            let Some(mut child) = slot.take() else {
                continue;
            };
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        eprintln!(
                            "warning: node {} did not stop within {STOP_TIMEOUT:?}; killing it",
                            i + 1
                        );
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Set-up requests sent again after an answer was lost (a cluster that
/// just started moves its leaders); each is safe to repeat.
const SETUP_RESENDS_MAX: u32 = 10;

/// `f()`, sent again while its answer is lost, up to `SETUP_RESENDS_MAX`
/// times.
async fn resent<T, F, Fut>(f: F) -> Result<T, crate::driver::ClientError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::driver::ClientError>>,
{
    let mut resends = 0;
    loop {
        match f().await {
            Err(e) if resends < SETUP_RESENDS_MAX && crate::driver::cluster::answer_lost(&e) => {
                resends += 1;
                tokio::time::sleep(crate::driver::cluster::RETRY_DELAY).await;
            }
            r => return r,
        }
    }
}

/// The client addresses of the first `nodes` nodes of an existing
/// cluster.conf (which must list exactly that many).
fn existing_addrs(conf: &Path, nodes: u32) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(conf).with_context(|| format!("reading {}", conf.display()))?;
    let parsed = crate::node::cluster::ClusterConfig::parse(&text, crate::types::NodeId(1))
        .with_context(|| format!("{}", conf.display()))?;
    if parsed.nodes.len() != nodes as usize {
        bail!(
            "{} holds a cluster of {} nodes, not {nodes}: pass --nodes {} or another directory",
            conf.display(),
            parsed.nodes.len(),
            parsed.nodes.len()
        );
    }
    Ok(parsed
        .nodes
        .values()
        .map(|a| a.client.to_string())
        .collect())
}

/// A first port such that `nodes` nodes' client and peer ports (port +
/// 10 i and the one after) are all free on loopback now.
fn free_ports(nodes: u32) -> anyhow::Result<u16> {
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for k in 0..PORT_TRIES_MAX {
        // 20000..=59990, in steps of 10.
        let base = 20_000 + (seed.wrapping_add(k.wrapping_mul(7919)) % 4000) * 10;
        let free = (0..nodes).all(|i| {
            [0, 1].iter().all(|d| {
                std::net::UdpSocket::bind(("127.0.0.1", (base + 10 * i + d) as u16)).is_ok()
            })
        });
        if free {
            return Ok(base as u16);
        }
    }
    bail!("found no free UDP ports on 127.0.0.1 for {nodes} nodes after {PORT_TRIES_MAX} tries")
}
