//! `ohm demo`: the embedded default. Starts a node (`ohm serve --demo`, a
//! child process) with the demo tenant and the example procedures, runs the
//! voter workload against it for a few seconds (`ohm bench voter --no-pg`),
//! prints the results, then keeps the node serving for `ohm sql` until
//! Ctrl-C.

use crate::bench::voter::node::parse_ready;
use anyhow::{bail, Context};
use clap::Args;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

/// How long the node may take to start (recovery of a large data dir).
const READY_TIMEOUT: Duration = Duration::from_secs(300);

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
}

/// Stops the node however `run` ends (SIGTERM: it syncs and exits).
struct NodeGuard(Child);

impl Drop for NodeGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the ohm binary")?;
    let mut child = Command::new(&exe)
        .arg("serve")
        .arg("--data")
        .arg(&args.data)
        .args(["--listen", &args.listen, "--demo"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting ohm serve")?;
    let stdout = child.stdout.take().context("the node's stdout")?;
    let mut node = NodeGuard(child);
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
        "node ready at {} ({}), data in {}\n",
        ready.addr,
        ready.fingerprint,
        ready.data.display()
    );
    let data = args.data.to_string_lossy().to_string();
    let status = Command::new(&exe)
        .args(["bench", "voter", "--no-pg", "--warmup", "1", "--seconds"])
        .arg(args.seconds.to_string())
        .args(["--addr", &ready.addr, "--data", &data])
        .status()
        .context("running the voter workload")?;
    if !status.success() {
        bail!("the voter workload failed");
    }
    println!("\nresults() — total votes per contestant:");
    Command::new(&exe)
        .args(["call", "results", "--addr", &ready.addr, "--data", &data])
        .status()
        .context("calling results")?;
    println!(
        "\nThe node keeps serving. In another terminal, from this directory:\n\
         \x20 {exe} sql                      # SQL shell on the demo tenant (\\d lists tables and procedures)\n\
         \x20 {exe} call vote 2125551234 3 2 # a vote: phone, contestant, max votes\n\
         \x20 {exe} status                   # partitions, counters, log\n\
         Ctrl-C stops the node (everything acknowledged is durable in {data}/).",
        exe = exe.display()
    );
    let code = node.0.wait().context("waiting for the node")?;
    std::mem::forget(node);
    Ok(if code.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
