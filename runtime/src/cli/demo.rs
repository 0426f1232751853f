//! `ohm demo`: the embedded default. Starts a node (`ohm serve --demo`, a
//! child process) with the demo tenant and the example procedures, runs the
//! voter workload against it for a few seconds (`ohm bench voter --no-pg`),
//! prints the results, then keeps the node serving for `ohm sql` until
//! Ctrl-C. With `--nodes N`: the same on a local cluster of N processes
//! (every partition replicated on each), then the leaders and each
//! replica's lag.

use crate::bench::voter::node::parse_ready;
use anyhow::{bail, Context};
use clap::Args;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

/// How long the node may take to start (recovery of a large data dir).
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a cluster's leaders may take to gather on one node.
const GATHER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Data directory of the demo node (kept between runs).
    #[arg(long, default_value = "ohm-data")]
    pub data: PathBuf,
    /// Address the node listens on.
    #[arg(long, default_value = "127.0.0.1:7450")]
    pub listen: String,
    /// Seconds of voter load to show.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Run a local cluster of this many node processes instead of one node
    /// (RF = N: every partition on each), in --cluster-data.
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Where the local cluster lives (kept between runs): its certificates
    /// and tokens in cluster/, node i's data in data<i>/, its log in
    /// n<i>.log.
    #[arg(long, default_value = "ohm-cluster")]
    pub cluster_data: PathBuf,
}

/// The demo's node process. Stops the node however `run` ends (SIGTERM:
/// it syncs and exits). A demo killed outright (SIGKILL) runs no
/// destructor: the node also has the kernel send it SIGTERM when its
/// parent dies (`die_with_parent`).
///
/// The child sits behind a lock shared with the signal thread
/// (`forward_stop_signals`): it is reaped only under the lock, and signalled
/// only under it while not yet reaped, so a SIGTERM never reaches a pid the
/// kernel has given to another process.
struct NodeGuard(Node);

/// A handle on the node process, shared with the signal thread.
#[derive(Clone)]
struct Node(std::sync::Arc<std::sync::Mutex<NodeProcess>>);

struct NodeProcess {
    child: Child,
    exited: Option<std::process::ExitStatus>,
}

/// How often the demo looks whether its node has exited.
const NODE_POLL: Duration = Duration::from_millis(100);

impl Node {
    fn new(child: Child) -> Node {
        Node(std::sync::Arc::new(std::sync::Mutex::new(NodeProcess {
            child,
            exited: None,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NodeProcess> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// SIGTERM to the node unless it has exited and been reaped.
    fn stop(&self) {
        let p = self.lock();
        if p.exited.is_none() {
            // SAFETY: kill(2) on our own child's pid, which the kernel keeps
            // for it until it is reaped; it is not (`exited` is None, and
            // reaping happens under this lock).
            unsafe { libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM) };
        }
    }

    /// Waits for the node to exit, and reaps it.
    fn wait(&self) -> std::io::Result<std::process::ExitStatus> {
        loop {
            {
                let mut p = self.lock();
                if let Some(status) = p.exited {
                    return Ok(status);
                }
                if let Some(status) = p.child.try_wait()? {
                    p.exited = Some(status);
                    return Ok(status);
                }
            }
            std::thread::sleep(NODE_POLL);
        }
    }
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        self.0.stop();
        let _ = self.0.wait();
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if let Some(nodes) = args.nodes {
        return run_cluster(&args, nodes);
    }
    let exe = std::env::current_exe().context("finding the ohm binary")?;
    let mut serve = Command::new(&exe);
    serve
        .arg("serve")
        .arg("--data")
        .arg(&args.data)
        .args(["--listen", &args.listen, "--demo"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    die_with_parent(&mut serve, std::process::id());
    let mut child = serve.spawn().context("starting ohm serve")?;
    let stdout = child.stdout.take().context("the node's stdout")?;
    let pid = child.id();
    let node = NodeGuard(Node::new(child));
    forward_stop_signals(node.0.clone())?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(r) = parse_ready(&line) {
                let _ = tx.send(r);
            }
        }
    });
    let Ok(ready) = rx.recv_timeout(READY_TIMEOUT) else {
        bail!("the node did not start (see its messages above)");
    };
    println!(
        "node ready at {} ({}), pid {pid}, data in {}\n",
        ready.addr,
        ready.fingerprint,
        ready.data.display()
    );
    let data = args.data.to_string_lossy().to_string();
    show_voter(
        &exe,
        args.seconds,
        &["--addr", &ready.addr, "--data", &data],
    )?;
    println!(
        "\nThe node keeps serving. In another terminal, from this directory:\n\
         \x20 {exe} sql                      # SQL shell on the demo tenant (\\d lists tables and procedures)\n\
         \x20 {exe} call vote 2125551234 3 2 # a vote: phone, contestant, max votes\n\
         \x20 {exe} status                   # partitions, counters, log\n\
         Ctrl-C (or SIGTERM to this process) stops the node (everything acknowledged is durable in {data}/).",
        exe = exe.display()
    );
    let code = node.0.wait().context("waiting for the node")?;
    Ok(if code.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Has the kernel send the child SIGTERM when the thread that spawns it
/// (the demo's main thread, which lives as long as the demo) dies, however
/// it dies: a `kill -9` of the demo then stops the node too.
fn die_with_parent(cmd: &mut Command, parent: u32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl and getppid are async-signal-safe, and the closure
    // touches no memory of the parent's but a copied pid.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the prctl took effect (the child now
            // has another parent: init, or a subreaper): do not start.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other(
                    "the demo exited while starting the node",
                ));
            }
            Ok(())
        });
    }
}

/// SIGTERM, SIGINT or SIGHUP to the demo: SIGTERM to the node (it syncs
/// and exits), so the demo's wait for it ends and the demo exits with it.
/// Without this, a SIGTERM to the demo (not the Ctrl-C a terminal sends to
/// the whole process group) killed the demo and left the node running.
fn forward_stop_signals(node: Node) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registered here, before the voter run, so no stop signal is missed.
    let (mut term, mut int, mut hup) = rt.block_on(async {
        anyhow::Ok((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("demo-signals".into())
        .spawn(move || {
            rt.block_on(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {}
                }
            });
            node.stop();
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// `ohm demo --nodes N`.
fn run_cluster(args: &DemoArgs, nodes: u32) -> anyhow::Result<ExitCode> {
    use crate::bench::local_cluster::{LocalCluster, LocalClusterOptions};
    let exe = std::env::current_exe().context("finding the ohm binary")?;
    let first = !args.cluster_data.join("cluster").exists();
    println!(
        "starting {nodes} node processes in {}{}...",
        args.cluster_data.display(),
        if first {
            " (first start: a cluster CA, a certificate per node, cluster.conf)"
        } else {
            ""
        }
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Caught from now on (acted on once the demo waits below), so a
    // SIGTERM never leaves the nodes running.
    let mut term = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    })?;
    let cluster = LocalCluster::start(&LocalClusterOptions {
        dir: Some(args.cluster_data.clone()),
        ..LocalClusterOptions::new(nodes, 4, crate::bench::voter::Durability::Sync)
    })?;
    let leader = rt.block_on(async {
        cluster.set_up_examples(&["voter", "bank", "kv"]).await?;
        let c = cluster.demo_client().await?;
        // Any call settles the client on the node that leads; leaders
        // gather there within a second or two.
        let deadline = std::time::Instant::now() + GATHER_TIMEOUT;
        loop {
            c.call("results", vec![]).await?;
            let s = c.status().await?;
            if s.partitions.iter().all(|p| p.role == "leader") {
                break;
            }
            if std::time::Instant::now() >= deadline {
                bail!("no node led every partition within {GATHER_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::Ok(c.current())
    })?;
    let conf = cluster.root().join("cluster");
    let ca = conf.join(crate::net::peer_tls::CA_CERT_FILE);
    let conf_s = conf.to_string_lossy().to_string();
    let ca_s = ca.to_string_lossy().to_string();
    println!(
        "cluster ready: nodes at {}; partitions led by {leader}\n",
        cluster.addrs.join(", ")
    );
    let connect = ["--addr", leader.as_str(), "--ca", &ca_s, "--data", &conf_s];
    show_voter(&exe, args.seconds, &connect)?;
    println!("\nthe leading node's view (lag: slots each replica trails the leader):");
    Command::new(&exe)
        .arg("status")
        .args(connect)
        .status()
        .context("asking for status")?;
    println!(
        "\nThe cluster keeps serving. In another terminal, from this directory:\n\
         \x20 {exe} sql --addr {leader} --ca {ca_s} --data {conf_s}\n\
         \x20 {exe} status --addr <any node> --ca {ca_s} --data {conf_s}\n\
         \x20 kill -9 <a node's pid> and watch another take over (node logs: {}/n<i>.log)\n\
         Ctrl-C stops every node (everything acknowledged is durable on a majority).",
        cluster.root().display(),
        exe = exe.display()
    );
    let pids: Vec<String> = (0..nodes as usize)
        .filter_map(|i| cluster.pid(i).map(|p| format!("node {} pid {p}", i + 1)))
        .collect();
    println!("{}", pids.join(", "));
    rt.block_on(async {
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })
    .context("waiting for Ctrl-C")?;
    drop(cluster); // SIGTERM to every node; they sync and exit
    Ok(ExitCode::SUCCESS)
}

/// Runs the voter workload for `seconds` against the node `connect` (the
/// connection flags) names, then shows `results()`.
fn show_voter(exe: &std::path::Path, seconds: u64, connect: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(exe)
        .args(["bench", "voter", "--no-pg", "--warmup", "1", "--seconds"])
        .arg(seconds.to_string())
        .args(connect)
        .status()
        .context("running the voter workload")?;
    if !status.success() {
        bail!("the voter workload failed");
    }
    println!("\nresults() — total votes per contestant:");
    Command::new(exe)
        .args(["call", "results"])
        .args(connect)
        .status()
        .context("calling results")?;
    Ok(())
}
