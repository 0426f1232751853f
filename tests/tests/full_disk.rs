//! End-to-end: a node whose disk fills up. Its log cannot be written, so it
//! must stop (exit with an error) rather than go on answering; everything
//! it acknowledged before is there after a restart with room again.
//!
//! The data directory is a small tmpfs mounted for the test (root only;
//! without root the test says so and passes, except under `CI=true`).

mod common;

use common::{runtime, Server, TempDir};
use ohm::driver::ClientError;
use ohm::proto::ErrorCode;
use ohm::types::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// Mounts a tmpfs of `mib` MiB on `dir`; false when this process may not.
fn mount_tmpfs(dir: &std::path::Path, mib: u32) -> bool {
    let size = format!("size={mib}m");
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn remount(dir: &std::path::Path, mib: u32) {
    let opts = format!("remount,size={mib}m");
    let ok = Command::new("mount").args(["-o", &opts]).arg(dir).status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "remounting {}",
        dir.display()
    );
}

/// Unmounts on drop (before `TempDir` removes the directory).
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_node_and_loses_nothing_acknowledged() {
    let tmp = TempDir::new("full-disk");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    if !mount_tmpfs(&data, 24) {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root and must be able to mount a tmpfs"
        );
        eprintln!("skipping: mounting a tmpfs needs root");
        return;
    }
    let _mounted = Mounted(data.clone());
    let args = ["--partitions", "1", "--demo", "--snapshot-log-mib", "4096"];
    let mut server = Server::start(&data, &args).unwrap();
    let rt = runtime();
    let acked = rt.block_on(async {
        let c = server.client("demo.token").await;
        let mut acked = Vec::new();
        let value = vec![7u8; 64 << 10];
        for i in 0..2_000 {
            let key = format!("k{i}");
            let args = vec![Value::text(&key), Value::Bytes(value.clone().into())];
            match c.call("put", args).await {
                Ok(_) => acked.push(key),
                // The node stopping says so; whatever else is a bug.
                Err(ClientError::Server(e)) if e.code == ErrorCode::Unavailable => {
                    assert!(e.message.contains("stop"), "{e:?}");
                    break;
                }
                Err(ClientError::Server(e)) => panic!("refused before the disk filled: {e:?}"),
                Err(_) => break, // the connection closed as the node stopped
            }
        }
        acked
    });
    assert!(acked.len() > 20, "{} puts went through first", acked.len());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a node that cannot write its log must stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "it stops with an error: {status}");

    // Room again: every acknowledged put is there.
    remount(&data, 512);
    let server = Server::start(&data, &args).unwrap();
    rt.block_on(async {
        let c = server.client("demo.token").await;
        for key in &acked {
            let got = c.call("get", vec![Value::text(key)]).await.unwrap();
            assert!(
                matches!(got, ohm::driver::CallResult::Value(Value::Bytes(ref b)) if b.len() == 64 << 10),
                "acknowledged put {key} lost: {got:?}"
            );
        }
    });
}
