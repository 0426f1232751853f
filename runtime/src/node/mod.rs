//! The node: wiring of partitions, writers, the coordinator and the QUIC
//! service, start-up (recovery) and shutdown. The only place that spawns
//! threads.
//!
//! ```text
//!  QUIC (net::server) ─▶ Service::dispatch ─┬─▶ executor p0..pN ─▶ writer p0..pN ─▶ log
//!                                           └─▶ coordinator (locks all partitions)
//! ```
//!
//! What survives what (also in README): with `--durability sync` (the
//! default) a call is acknowledged after its log record is fsynced, so an
//! acknowledged call survives kill -9, an OS crash and power loss. With
//! `async` it survives kill -9; an OS crash can lose the last
//! `ASYNC_SYNC_INTERVAL_MS` of acknowledged calls.

pub mod coordinator;
pub mod demo;
pub mod multi;
pub mod recovery;
pub mod route;
pub mod routes;
pub mod serve;
pub mod service;
pub mod sqltext;

#[cfg(test)]
mod tests;

use crate::catalog::{Catalog, PartitionId, ADMIN_TENANT, DEMO_TENANT};
use crate::durability::LogOptions;
use crate::partition::executor::{self, Task, PARTITION_QUEUE_MAX};
use crate::partition::writer::{self, Durability, WriterConfig, WriterMsg, WRITER_QUEUE_MAX};
use crate::partition::Partition;
use anyhow::{bail, Context};
use coordinator::{CoordTask, Coordinator, COORDINATOR_QUEUE_MAX};
use routes::Routes;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Native stack of executor and coordinator threads: SQL runs inside a
/// procedure's host calls, on the same stack as the Wasm code (512 KiB).
const THREAD_STACK_BYTES: usize = 16 << 20;
const META_FILE: &str = "node.meta";
/// Partitions one node may run.
pub const PARTITIONS_MAX: u32 = 256;

/// How the node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub partitions: u32,
    pub durability: Durability,
    pub snapshot_log_bytes: u64,
    pub segment_bytes_max: u64,
}

/// A running node (everything but the network).
pub struct Node {
    pub parts: Arc<[Arc<Partition>]>,
    pub executors: Vec<SyncSender<Task>>,
    pub coordinator: SyncSender<CoordTask>,
    writers: Vec<SyncSender<WriterMsg>>,
    pub routes: Arc<Routes>,
    pub catalog: Arc<RwLock<Catalog>>,
    pub config: NodeConfig,
    pub started: Instant,
    pub connections: AtomicU64,
    /// Held while the node runs: one node per data directory.
    _lock: std::fs::File,
    /// Executor, coordinator and writer threads, joined by `shutdown`.
    threads: Mutex<Vec<(ThreadRole, std::thread::JoinHandle<()>)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ThreadRole {
    Executor,
    Coordinator,
    Writer,
}

/// Reads or writes `node.meta`: the partition count is fixed for the life
/// of a data directory (rows are placed by it).
fn check_meta(dir: &cap_std::fs::Dir, partitions: u32) -> anyhow::Result<()> {
    match dir.read_to_string(META_FILE) {
        Ok(text) => {
            let want = format!("ohm-node 1\npartitions {partitions}\n");
            if text != want {
                let had = text
                    .lines()
                    .find_map(|l| l.strip_prefix("partitions "))
                    .unwrap_or("?");
                bail!(
                    "the data directory was created with {had} partitions; start with \
                     --partitions {had} (rows are placed by the partition count)"
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            dir.write(META_FILE, format!("ohm-node 1\npartitions {partitions}\n"))
                .context("writing node.meta")?;
            crate::catalog::sync_dir(dir).context("syncing the data directory")?;
            Ok(())
        }
        Err(e) => Err(e).context("reading node.meta"),
    }
}

impl Node {
    /// Opens the data directory, recovers every partition and starts the
    /// executor, writer and coordinator threads.
    pub fn start(
        dir: cap_std::fs::Dir,
        config: NodeConfig,
        demo: bool,
    ) -> anyhow::Result<Arc<Node>> {
        if config.partitions == 0 || config.partitions > PARTITIONS_MAX {
            bail!("--partitions must be 1..={PARTITIONS_MAX}");
        }
        let lock = lock_data_dir(&dir)?;
        check_meta(&dir, config.partitions)?;
        let mut new_tokens = Vec::new();
        let mut catalog = Catalog::load(&dir)?.unwrap_or_default();
        if catalog.tenant_by_name(ADMIN_TENANT).is_none() {
            let (_, token) = catalog.create_tenant(ADMIN_TENANT, "admin", true)?;
            new_tokens.push(("admin.token".to_string(), token));
        }
        if demo && catalog.tenant_by_name(DEMO_TENANT).is_none() {
            let (_, token) = catalog.create_tenant(DEMO_TENANT, "demo", false)?;
            new_tokens.push(("demo.token".to_string(), token));
        }
        // The token files first: the catalog keeps only hashes, so a crash
        // between the two must not leave a principal nobody can log in as.
        for (file, token) in &new_tokens {
            write_secret(&dir, file, token)?;
        }
        catalog.save(&dir)?;
        let runtime = crate::wasm::WasmRuntime::new()?;
        let opts = LogOptions {
            segment_bytes_max: config.segment_bytes_max,
        };
        let mut rec = recovery::recover(&dir, config.partitions, &runtime, &opts)?;
        let tenants: Vec<_> = catalog.tenants().map(|t| t.id).collect();
        let modules = coordinator::modules_of(
            &rec.states[0],
            tenants.iter().copied(),
            &mut rec.cache,
            &runtime,
        )?;

        let parts: Arc<[Arc<Partition>]> = rec
            .states
            .drain(..)
            .map(|s| {
                Arc::new(Partition {
                    id: s.id,
                    state: Mutex::new(s),
                    stats: Default::default(),
                })
            })
            .collect();
        let mut executors = Vec::new();
        let mut writers = Vec::new();
        let mut threads = Vec::new();
        for (i, log) in rec.logs.drain(..).enumerate() {
            let part = parts[i].clone();
            let (wtx, wrx) = sync_channel(WRITER_QUEUE_MAX);
            let cfg = WriterConfig {
                durability: config.durability,
                snapshot_log_bytes: config.snapshot_log_bytes,
            };
            let p = part.clone();
            threads.push((
                ThreadRole::Writer,
                spawn(format!("ohm-log{i}"), move || writer::run(p, log, wrx, cfg))?,
            ));
            let (etx, erx) = sync_channel(PARTITION_QUEUE_MAX);
            let w = wtx.clone();
            threads.push((
                ThreadRole::Executor,
                spawn(format!("ohm-p{i}"), move || executor::run(part, erx, w))?,
            ));
            executors.push(etx);
            writers.push(wtx);
        }
        let routes = Arc::new(Routes::default());
        let catalog = Arc::new(RwLock::new(catalog));
        let coord = Coordinator {
            parts: parts.clone(),
            writers: writers.clone(),
            runtime,
            routes: routes.clone(),
            catalog: catalog.clone(),
            dir: Arc::new(dir),
            last_txn: std::cell::Cell::new(rec.last_txn),
            modules,
        };
        for t in &tenants {
            coord.rebuild_routes(*t);
        }
        let (ctx, crx) = sync_channel(COORDINATOR_QUEUE_MAX);
        threads.push((
            ThreadRole::Coordinator,
            spawn("ohm-coord".to_string(), move || coord.run(crx))?,
        ));
        let node = Arc::new(Node {
            parts,
            executors,
            coordinator: ctx,
            writers,
            routes,
            catalog,
            config,
            started: Instant::now(),
            connections: AtomicU64::new(0),
            threads: Mutex::new(threads),
            _lock: lock,
        });
        for (i, skipped) in rec.needs_snapshot.iter().enumerate() {
            if *skipped {
                node.snapshot(PartitionId(i as u32));
            }
        }
        Ok(node)
    }

    /// Takes a snapshot of one partition now and waits for it.
    pub fn snapshot(&self, p: PartitionId) {
        let (done, wait) = sync_channel(1);
        if let Some(w) = self.writers.get(p.0 as usize) {
            if w.send(WriterMsg::Snapshot { done }).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    /// Stops the node: the coordinator and executors finish what is queued,
    /// then the writers sync and close their logs. Requests after this get
    /// `unavailable`.
    pub fn shutdown(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let (writers, others): (Vec<_>, Vec<_>) = threads
            .into_iter()
            .partition(|(role, _)| *role == ThreadRole::Writer);
        let _ = self.coordinator.send(CoordTask::Stop);
        for e in &self.executors {
            let _ = e.send(Task::Stop);
        }
        for (_, t) in others {
            let _ = t.join();
        }
        // Every executor and the coordinator are gone: nothing more can be
        // queued behind these stops.
        for w in &self.writers {
            let _ = w.send(WriterMsg::Stop);
        }
        for (_, t) in writers {
            let _ = t.join();
        }
    }
}

/// Takes the data directory's `LOCK` (an exclusive advisory lock, released
/// when the process ends, however it ends): two nodes writing one log would
/// destroy it.
fn lock_data_dir(dir: &cap_std::fs::Dir) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let file = dir
        .open_with(
            "LOCK",
            cap_std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true),
        )
        .context("opening LOCK in the data directory")?;
    let mut file = file.into_std();
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            bail!(
                "another node (pid {}) is using this data directory; stop it first",
                pid.trim()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).context("locking the data directory");
        }
    }
    file.set_len(0).context("writing LOCK")?;
    file.rewind().context("writing LOCK")?;
    write!(file, "{}", std::process::id()).context("writing LOCK")?;
    Ok(file)
}

/// Writes a token file readable by its owner only, durably.
fn write_secret(dir: &cap_std::fs::Dir, name: &str, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = dir
        .create(name)
        .with_context(|| format!("writing {name}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = cap_std::fs::Permissions::from_std(std::fs::Permissions::from_mode(0o600));
        f.set_permissions(perms)
            .with_context(|| format!("making {name} private"))?;
    }
    writeln!(f, "{text}").with_context(|| format!("writing {name}"))?;
    f.sync_all().with_context(|| format!("syncing {name}"))?;
    crate::catalog::sync_dir(dir).with_context(|| format!("syncing the directory of {name}"))
}

fn spawn(
    name: String,
    f: impl FnOnce() + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.clone())
        .stack_size(THREAD_STACK_BYTES)
        .spawn(f)
        .with_context(|| format!("starting thread {name}"))
}
