//! Shared by the end-to-end tests: find the `ohm` binary and the example
//! modules, run `ohm serve` as a real process, connect a real client.
#![allow(dead_code)]

use anyhow::{bail, Context};
use ohm::driver::{Client, ClientConfig, Trust};
use ohm::proto::SqlResult;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// target/<profile>/ohm, beside this test's executable.
pub fn ohm_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/ohm
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join("ohm");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace` first",
        bin.display()
    );
    bin
}

/// target/wasm32-unknown-unknown/wasm, where `cargo procs` puts modules.
pub fn wasm_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OHM_WASM_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    let target = exe.ancestors().nth(3).expect("target/");
    target.join("wasm32-unknown-unknown").join("wasm")
}

pub fn wasm(module: &str) -> Vec<u8> {
    let p = wasm_dir().join(format!("ohm_{module}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run `cargo procs` first)", p.display()))
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("ohm-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `ohm serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub fingerprint: String,
    pub data: PathBuf,
    /// The node's `ready` line, as printed.
    pub ready: String,
}

impl Server {
    /// Starts `ohm serve --data DATA --listen 127.0.0.1:0 ARGS...` and waits
    /// for its `ready` line.
    pub fn start(data: &Path, args: &[&str]) -> anyhow::Result<Server> {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Server::start_with(data, &all)
    }

    /// Starts `ohm serve --data DATA ARGS...` and waits for its `ready` line.
    pub fn start_with(data: &Path, args: &[&str]) -> anyhow::Result<Server> {
        let mut child = Command::new(ohm_binary())
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(args)
            .env("OHM_WASM_DIR", wasm_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting ohm serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        let deadline = Duration::from_secs(120);
        let line = match rx.recv_timeout(deadline) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                bail!("ohm serve printed no ready line within {deadline:?}");
            }
        };
        let field = |k: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
                .with_context(|| format!("no {k}= in {line:?}"))
        };
        Ok(Server {
            child,
            addr: field("addr")?,
            fingerprint: field("fingerprint")?,
            data: data.to_path_buf(),
            ready: line.clone(),
        })
    }

    /// A `key=value` field of the ready line (`metrics`), if there.
    pub fn extra(&self, key: &str) -> Option<String> {
        self.ready
            .split(' ')
            .find_map(|f| f.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
    }

    pub fn token(&self, file: &str) -> String {
        std::fs::read_to_string(self.data.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .trim()
            .to_string()
    }

    pub fn config(&self, token: &str) -> ClientConfig {
        ClientConfig::new(
            self.addr.clone(),
            Trust::Fingerprint(self.fingerprint.clone()),
            token,
        )
    }

    pub async fn client(&self, token_file: &str) -> Client {
        Client::connect(self.config(&self.token(token_file)))
            .await
            .unwrap_or_else(|e| panic!("connecting: {e}"))
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("ohm serve exited with {status}");
                }
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                self.kill9();
                bail!("ohm serve did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A client that speaks the protocol's frames directly (for what the
/// driver would never send, or reads differently).
pub mod raw {
    use ohm::net::{endpoint, tls};
    use ohm::proto::{codec, Request, RequestFrame, ResponseFrame};

    pub async fn connect(addr: &str, fingerprint: &str) -> quinn::Connection {
        let peer = addr.parse().unwrap();
        let ep = endpoint::client(
            peer,
            &tls::ClientTrust::Fingerprint(fingerprint.to_string()),
        )
        .unwrap();
        ep.connect(peer, "localhost").unwrap().await.unwrap()
    }

    pub fn frame(id: u64, request: Request) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode_request(&RequestFrame { id, request }, &mut out).unwrap();
        out
    }

    /// Sends `bytes` on a new stream; the first response frame, or None if
    /// the stream ended without one.
    pub async fn exchange(conn: &quinn::Connection, bytes: &[u8]) -> Option<ResponseFrame> {
        let (mut send, mut recv) = conn.open_bi().await.ok()?;
        send.write_all(bytes).await.ok()?;
        let _ = send.finish();
        let mut len = [0u8; 4];
        recv.read_exact(&mut len).await.ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        recv.read_exact(&mut body).await.ok()?;
        Some(codec::decode_response(&body).unwrap())
    }
}

/// The Chinook files, or None (skipped) when the test data is absent
/// outside CI.
pub fn chinook() -> Option<PathBuf> {
    let root = match std::env::var_os("OHM_TESTDATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
    };
    let dir = root.join("migration/chinook");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "OHM_TESTDATA: {} not found, and CI=true requires it",
        dir.display()
    );
    eprintln!("skipping: {} not found (set OHM_TESTDATA)", dir.display());
    None
}

pub async fn one_value(c: &Client, sql: &str) -> String {
    match c
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .pop()
    {
        Some(SqlResult::Rows(r)) => {
            let cells: Vec<String> = r.rows[0].iter().map(|v| v.to_string()).collect();
            cells.join(":")
        }
        other => panic!("{sql}: {other:?}"),
    }
}

/// Each line of `expected_invariants.txt` as the query that computes it.
pub fn invariant_query(key: &str) -> String {
    let parts: Vec<&str> = key.splitn(3, '.').collect();
    match parts.as_slice() {
        ["rows", t] => format!("SELECT count(*) FROM {t}"),
        ["sum", t, e] => format!("SELECT sum({e}) FROM {t}"),
        ["nulls", t, c] => format!("SELECT count(*) FROM {t} WHERE {c} IS NULL"),
        ["nonascii", t, c] => {
            format!("SELECT count(*) FROM {t} WHERE length({c}) <> octet_length({c})")
        }
        ["min", t, c] => format!("SELECT min({c}) FROM {t}"),
        ["max", t, c] => format!("SELECT max({c}) FROM {t}"),
        ["top_country_by_sales"] => "SELECT billing_country, sum(total) FROM invoice \
             GROUP BY billing_country ORDER BY 2 DESC LIMIT 1"
            .into(),
        _ => panic!("an invariant this test does not know: {key}"),
    }
}

pub async fn check_invariants(c: &Client, dir: &Path) {
    let want = std::fs::read_to_string(dir.join("expected_invariants.txt")).unwrap();
    let mut checked = 0;
    for line in want.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line.split_once('|').expect("key | value");
        let got = one_value(c, &invariant_query(key.trim())).await;
        assert_eq!(got, value.trim(), "{key}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} invariants");
}

/// The chunks a load's state file records as acknowledged (0 while there
/// is none).
pub fn acknowledged_chunks(state: &Path) -> u64 {
    std::fs::read_to_string(state)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("next_chunk="))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
