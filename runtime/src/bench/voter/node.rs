//! The Ohm node `ohm bench voter` starts as a child process: this same
//! binary with `serve --demo` on a fresh data directory and a free port.
//! Owns reading its `ready` line and stopping it (SIGTERM, then kill) and
//! deleting its directory on drop, also when the bench fails.

use super::Durability;
use crate::bench::postgres::fresh_temp_dir;
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to print its `ready` line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of stdout read while waiting for `ready` (the node prints one).
const STARTUP_LINES_MAX: usize = 1000;

/// The node's `ready addr=<ip:port> fingerprint=sha256:<hex> data=<DIR>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub addr: String,
    pub fingerprint: String,
    pub data: PathBuf,
}

/// Parses a `ready` line; None for any other line.
pub fn parse_ready(line: &str) -> Option<Ready> {
    let rest = line.trim().strip_prefix("ready ")?;
    let (mut addr, mut fingerprint, mut data) = (None, None, None);
    for field in rest.split_whitespace() {
        match field.split_once('=')? {
            ("addr", v) => addr = Some(v.to_string()),
            ("fingerprint", v) => fingerprint = Some(v.to_string()),
            ("data", v) => data = Some(PathBuf::from(v)),
            _ => {}
        }
    }
    Some(Ready {
        addr: addr?,
        fingerprint: fingerprint?,
        data: data?,
    })
}

/// A running node child; stopped and its directory removed on drop.
pub struct NodeProcess {
    child: Child,
    dir: PathBuf,
    pub ready: Ready,
}

impl NodeProcess {
    pub fn start(durability: Durability, partitions: Option<usize>) -> anyhow::Result<NodeProcess> {
        NodeProcess::start_with(durability, partitions, None, &[])
    }

    /// `start` with more `serve` arguments, of binary `exe` (None: this
    /// one).
    pub fn start_with(
        durability: Durability,
        partitions: Option<usize>,
        exe: Option<&std::path::Path>,
        more: &[String],
    ) -> anyhow::Result<NodeProcess> {
        let dir = fresh_temp_dir("ohm-bench-node")?;
        let log = std::fs::File::create(dir.join("node.log"))?;
        let exe = match exe {
            Some(e) => e.to_path_buf(),
            None => std::env::current_exe().context("finding the ohm binary")?,
        };
        let mut cmd = Command::new(exe);
        cmd.arg("serve").arg("--data").arg(dir.join("data"));
        cmd.args(["--listen", "127.0.0.1:0", "--demo", "--durability"]);
        cmd.arg(match durability {
            Durability::Sync => "sync",
            Durability::Async => "async",
        });
        if let Some(n) = partitions {
            cmd.args(["--partitions", &n.to_string()]);
        }
        cmd.args(more);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
        let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let stdout = child.stdout.take().context("the node's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let lines = BufReader::new(stdout).lines().take(STARTUP_LINES_MAX);
            for line in lines.map_while(Result::ok) {
                if let Some(ready) = parse_ready(&line) {
                    let _ = tx.send(ready);
                }
            } // then drain nothing more: the node prints only `ready`
        });
        let ready = rx.recv_timeout(READY_TIMEOUT);
        let mut node = NodeProcess {
            child,
            dir,
            ready: Ready {
                addr: String::new(),
                fingerprint: String::new(),
                data: PathBuf::new(),
            },
        };
        match ready {
            Ok(r) => node.ready = r,
            Err(_) => {
                let log = std::fs::read_to_string(node.dir.join("node.log")).unwrap_or_default();
                bail!("the node printed no `ready` line within {READY_TIMEOUT:?}; its log:\n{log}");
            }
        }
        Ok(node)
    }

    /// The node's stderr, written to a file beside its data.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The demo tenant's token the node wrote.
    pub fn demo_token(&self) -> anyhow::Result<String> {
        let path = self.ready.data.join("demo.token");
        let token = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (was the node started with --demo?)",
                path.display()
            )
        })?;
        Ok(token.trim().to_string())
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    eprintln!("warning: the node did not stop within {STOP_TIMEOUT:?}; killing it");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_parses() {
        let r =
            parse_ready("ready addr=127.0.0.1:40123 fingerprint=sha256:ab12 data=/tmp/x/data\n");
        assert_eq!(
            r,
            Some(Ready {
                addr: "127.0.0.1:40123".into(),
                fingerprint: "sha256:ab12".into(),
                data: PathBuf::from("/tmp/x/data"),
            })
        );
        assert_eq!(parse_ready("starting"), None);
        assert_eq!(parse_ready("ready addr=1.2.3.4:5"), None);
    }
}
