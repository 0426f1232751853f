//! End-to-end: a node whose disk fills up. It keeps running: calls that
//! write are refused with `disk_full`, reads are answered, and writes
//! resume once there is room again; everything it acknowledged is there
//! after a restart.
//!
//! The data directory is a small tmpfs mounted for the test (root only;
//! without root the test says so and passes, except under `CI=true`).

mod common;

use common::{runtime, Server, TempDir};
use ohm::driver::{CallResult, ClientError};
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

/// A put of `key` (64 KiB); the error code if refused.
async fn put(c: &ohm::driver::Client, key: &str) -> Result<(), ClientError> {
    let value = vec![7u8; 64 << 10];
    let args = vec![Value::text(key), Value::Bytes(value.into())];
    c.call("put", args).await.map(|_| ())
}

fn is_full(e: &ClientError) -> bool {
    matches!(e, ClientError::Server(e) if e.code == ErrorCode::DiskFull)
}

/// Every key of `acked` reads back whole.
async fn all_there(c: &ohm::driver::Client, acked: &[String]) {
    for key in acked {
        let got = c.call("get", vec![Value::text(key)]).await;
        assert!(
            matches!(&got, Ok(CallResult::Value(Value::Bytes(b))) if b.len() == 64 << 10),
            "acknowledged put {key} lost: {got:?}"
        );
    }
}

/// Before, the node exited (code 70) within seconds of the disk filling:
/// clients got no reply, and reads stopped too.
#[test]
fn a_full_disk_refuses_writes_serves_reads_and_resumes_with_room() {
    let tmp = TempDir::new("full-disk");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Room for the log's reserve (80 MiB at most set aside) and ~40 MiB.
    if !mount_tmpfs(&data, 128) {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root and must be able to mount a tmpfs"
        );
        eprintln!("skipping: mounting a tmpfs needs root");
        return;
    }
    let _mounted = Mounted(data.clone());
    // Segments of 8 MiB: one is due to be begun while the disk is full.
    let args = [
        "--partitions",
        "1",
        "--demo",
        "--snapshot-log-mib",
        "4096",
        "--segment-mib",
        "8",
    ];
    let mut server = Server::start(&data, &args).unwrap();
    let rt = runtime();
    let mut acked = rt.block_on(async {
        let c = server.client("demo.token").await;
        let mut acked = Vec::new();
        for i in 0..2_000 {
            let key = format!("k{i}");
            match put(&c, &key).await {
                Ok(()) => acked.push(key),
                Err(e) if is_full(&e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("disk is full") && msg.contains("nothing was done"),
                        "{msg}"
                    );
                    return acked;
                }
                Err(e) => panic!("put {i} failed other than disk_full: {e:?}"),
            }
        }
        panic!("2000 puts of 64 KiB fit on a 128 MiB disk")
    });
    assert!(acked.len() > 100, "{} puts went through first", acked.len());

    // Full: the node runs, reads are served, writes are still refused.
    rt.block_on(async {
        let c = server.client("demo.token").await;
        all_there(&c, &acked).await;
        let e = put(&c, "refused").await.unwrap_err();
        assert!(is_full(&e), "{e:?}");
        let status = c.status().await.unwrap();
        assert!(status.partitions[0].disk_full, "status says so: {status:?}");
        // Through the coordinator too: DDL and DML refused, queries served.
        for sql in ["CREATE TABLE more (a BIGINT PRIMARY KEY)", "DELETE FROM kv"] {
            let e = c.sql(sql).await.unwrap_err();
            assert!(is_full(&e), "{sql}: {e:?}");
        }
        c.sql("SELECT COUNT(*) FROM kv").await.unwrap();
    });
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the node keeps running"
    );

    // Room again: writes resume (the node tries every second).
    remount(&data, 512);
    rt.block_on(async {
        let c = server.client("demo.token").await;
        let start = Instant::now();
        loop {
            match put(&c, "after").await {
                Ok(()) => break,
                Err(e) if is_full(&e) => {
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "writes never resumed"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        acked.push("after".into());
        let status = c.status().await.unwrap();
        assert!(!status.partitions[0].disk_full, "{status:?}");
        for i in 0..50 {
            let key = format!("more{i}");
            put(&c, &key).await.unwrap();
            acked.push(key);
        }
    });
    server.stop().unwrap();

    let server = Server::start(&data, &args).unwrap();
    rt.block_on(async {
        let c = server.client("demo.token").await;
        all_there(&c, &acked).await;
    });
}
