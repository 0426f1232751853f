//! The node: wiring of partitions, writers, the coordinator and the QUIC
//! service, start-up (recovery) and shutdown. The only place that spawns
//! threads. Each partition is a replica group of one on this node (its
//! consensus core chooses what is durable here); clusters come later.
//!
//! ```text
//!  QUIC (net::server) ─▶ Service::dispatch ─┬─▶ executor p0..pN ⇄ writer p0..pN ─▶ log
//!                                           └─▶ coordinator (holds every partition
//!                                                by messages to the executors)
//! ```
//!
//! A fatal state (a log that cannot be written, partitions that disagree,
//! a bug mid-transaction) is reported to the node (`Node::fatal`), which
//! stops serving; `ohm serve` then exits with an error.
//!
//! What survives what (also in README): with `--durability sync` (the
//! default) a call is acknowledged after its log record is fsynced, so an
//! acknowledged call survives kill -9, an OS crash and power loss. With
//! `async` it survives kill -9; an OS crash can lose the last
//! `ASYNC_SYNC_INTERVAL_MS` of acknowledged calls.

mod adhoc;
pub mod cluster;
pub mod coordinator;
pub mod datadir;
pub mod demo;
pub mod executor;
pub mod fair;
pub mod forward;
pub mod hold;
pub mod metrics;
pub mod priority;
pub mod recovery;
pub mod relief;
pub mod reply;
pub mod routes;
pub mod runner;
pub mod serve;
pub mod service;
pub mod tokens;
pub mod usage;
pub mod watchdog;
pub mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_load;
#[cfg(test)]
mod tests_tenancy;

use crate::catalog::{Catalog, PartitionId, ADMIN_TENANT, DEMO_TENANT};
use crate::durability::LogOptions;
use anyhow::{bail, Context};
use coordinator::{CoordTask, Coordinator, COORDINATOR_QUEUE_MAX};
use executor::{Executor, Input, PartitionStats};
use routes::Routes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Sender, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use writer::{Durability, Writer, WriterMsg, WRITER_QUEUE_MAX};

/// Native stack of executor and coordinator threads: SQL runs inside a
/// procedure's host calls, on the same stack as the Wasm code (512 KiB).
pub(crate) const THREAD_STACK_BYTES: usize = 16 << 20;
/// Partitions one node may run.
pub const PARTITIONS_MAX: u32 = 256;

/// How the node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub partitions: u32,
    pub durability: Durability,
    pub snapshot_log_bytes: u64,
    /// Bytes of a snapshot encoded between two turns at calls
    /// (`partition::SNAPSHOT_STEP_BYTES`; `usize::MAX`: all in one go).
    pub snapshot_step_bytes: usize,
    pub segment_bytes_max: u64,
    /// What each tenant may hold and use, unless an administrator set
    /// the tenant's own (`tenant_quota`).
    pub quota: crate::catalog::Quota,
    /// Longest a deployed module may take to compile; slower ones are
    /// refused (`deploy`).
    pub compile_time_max_ms: u64,
}

/// Default compile-time budget of a deployed module.
pub const COMPILE_TIME_MAX_MS_DEFAULT: u64 = 10_000;

pub use crate::catalog::quota::{CALL_TIMEOUT_MS_DEFAULT, SQL_TIMEOUT_MS_DEFAULT};

/// What a node in a cluster needs beyond `NodeConfig`.
pub struct ClusterSetup {
    pub config: Arc<cluster::ClusterConfig>,
    /// The node's cluster directory (certificates, `cluster.conf`, and the
    /// catalog `ohm cluster init` wrote for the first start).
    pub dir: std::path::PathBuf,
    /// Sends a partition's consensus messages to a peer.
    pub outbox: Arc<dyn Fn(PartitionId) -> writer::Outbox + Send + Sync>,
    /// The links to the other nodes, for `status`.
    pub links: PeerLinks,
    /// Passes client requests to the node that coordinates, and runs those
    /// passed here.
    pub forwarder: Arc<forward::Forwarder>,
}

/// Reports the node's links to its peers.
pub type PeerLinks = Arc<dyn Fn() -> Vec<crate::net::peer::PeerStatus> + Send + Sync>;

/// A running node (everything but the network).
pub struct Node {
    /// Each partition's executor queue (calls are admitted up to
    /// `PARTITION_QUEUE_MAX` by its stats' `queued`).
    pub executors: Vec<Sender<Input>>,
    pub stats: Vec<Arc<PartitionStats>>,
    pub coordinator: SyncSender<CoordTask>,
    writers: Vec<SyncSender<WriterMsg>>,
    pub routes: Arc<Routes>,
    pub catalog: Arc<RwLock<Catalog>>,
    pub config: NodeConfig,
    /// The cluster this node is part of (none on a lone node).
    pub cluster: Option<Arc<cluster::ClusterConfig>>,
    /// Its links to the other nodes (none on a lone node).
    pub links: Option<PeerLinks>,
    /// In a cluster: requests passed to and from the node that coordinates.
    pub forwarder: Option<Arc<forward::Forwarder>>,
    /// Who leads partition 0 (and so coordinates), as this node's replica
    /// of it knows: a node id, 0 when unknown.
    pub p0_leader: Arc<std::sync::atomic::AtomicU32>,
    /// The node's Wasm engine (shared with every partition).
    pub runtime: crate::wasm::WasmRuntime,
    pub started: Instant,
    pub connections: AtomicU64,
    /// Each tenant's connections, requests and call rate, against its quota.
    pub usage: usage::Usage,
    /// Modules being compiled for deploys (`service::COMPILES_IN_FLIGHT_MAX`).
    pub compiling: Arc<std::sync::atomic::AtomicUsize>,
    /// Set when the node must stop (see the module doc).
    pub fatal: Arc<Fatal>,
    /// Every executor's queue, for the partitions to reach each other
    /// (they hold it weakly: it goes with the node).
    _siblings: Arc<std::sync::OnceLock<Vec<Sender<Input>>>>,
    /// Held while the node runs: one node per data directory.
    _lock: datadir::Lock,
    /// Executor, coordinator and writer threads, joined by `shutdown`.
    threads: Mutex<Vec<(ThreadRole, std::thread::JoinHandle<()>)>>,
    /// Threads that took an executor's loop over (`relief`).
    handovers: relief::Handovers,
    /// Set as the node begins to stop; the watchdog halts work still
    /// running `watchdog::STOP_WORK_MAX` later.
    stopping: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ThreadRole {
    Executor,
    Coordinator,
    Writer,
    Watchdog,
}

impl Node {
    /// Opens the data directory, recovers every partition and starts the
    /// executor, writer and coordinator threads.
    pub fn start(
        dir: cap_std::fs::Dir,
        config: NodeConfig,
        demo: bool,
    ) -> anyhow::Result<Arc<Node>> {
        Node::start_in(dir, config, demo, None)
    }

    /// `start`, as one node of a cluster when `cluster` is given.
    pub fn start_in(
        dir: cap_std::fs::Dir,
        config: NodeConfig,
        demo: bool,
        cluster: Option<ClusterSetup>,
    ) -> anyhow::Result<Arc<Node>> {
        if config.partitions == 0 || config.partitions > PARTITIONS_MAX {
            bail!("--partitions must be 1..={PARTITIONS_MAX}");
        }
        let members: recovery::Members = cluster.as_ref().map(|c| {
            let me = c.config.me;
            (me, c.config.members(PartitionId(0)))
        });
        let lock = datadir::lock(&dir)?;
        let seen = datadir::open_meta(&dir, config.partitions, &members)?;
        let mut new_tokens = Vec::new();
        datadir::check_started(&dir, config.partitions, seen)?;
        let mut catalog = match (Catalog::load(&dir)?, &cluster) {
            (Some(c), _) => c,
            (None, None) => Catalog::default(),
            // Every node starts from the catalog `ohm cluster init` wrote,
            // so tenant ids and principals agree across the cluster.
            (None, Some(c)) => {
                let from = cap_std::fs::Dir::open_ambient_dir(&c.dir, cap_std::ambient_authority())
                    .with_context(|| format!("opening {}", c.dir.display()))?;
                Catalog::load(&from)?.with_context(|| {
                    format!(
                        "{} has no catalog: a cluster's first start takes its tenants from the \
                         directory `ohm cluster init` wrote",
                        c.dir.display()
                    )
                })?
            }
        };
        if catalog.tenant_by_name(ADMIN_TENANT).is_none() {
            let (_, token) = catalog.create_tenant(ADMIN_TENANT, "admin", true)?;
            new_tokens.push(("admin.token".to_string(), token));
        }
        if demo && cluster.is_none() && catalog.tenant_by_name(DEMO_TENANT).is_none() {
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
            ..LogOptions::default()
        };
        let started = Instant::now();
        let procs: Arc<dyn crate::partition::ProcRuntime> = Arc::new(runtime.clone());
        let mut rec = recovery::recover(
            (&dir, seen),
            &config,
            &members,
            procs,
            &opts,
            executor::now(started),
        )?;
        // Replaying the logs held their records while the tables grew:
        // give the memory they left back, so a restarted node does not
        // hold more than the one that loaded the data did.
        release_free_memory();
        if seen == datadir::Started::First {
            // The catalog and every partition exist: from now on each must.
            datadir::finish(&dir, config.partitions, &members)?;
        }
        // In a cluster, the tenants created since `ohm cluster init` live in
        // partition 0's log and snapshot, not in the catalog file.
        let base_catalog = catalog.clone();
        let mut adopted = Vec::new();
        let mut principals = Arc::default();
        if let Some(p0) = rec.cores.first().and_then(|c| c.state()) {
            coordinator::adopt_created(&mut catalog, &p0.created_tenants)?;
            catalog.apply_overlay(&p0.principals)?;
            // Refused until the state holds them (`RoutesRefresh`); those
            // it applied already it holds (a principal made again after
            // one of them is not taken out).
            rec.revoked.retain(|(txn, _, _)| *txn > p0.mp_txn_max);
            for (_, tenant, name) in &rec.revoked {
                catalog.forget_principal(*tenant, name);
            }
            adopted = p0.created_tenants.iter().map(|t| t.id).collect();
            principals = p0.principals.clone();
        }
        let tenants: Vec<_> = catalog.tenants().map(|t| t.id).collect();
        let p0 = rec
            .cores
            .first()
            .and_then(|c| c.state())
            .context("a node without partitions")?;
        let modules = coordinator::modules_of(p0, tenants.iter().copied(), &runtime)?;
        // In a cluster the state is only the snapshot's until the leader
        // says what else is chosen: the routes and modules reflect this
        // transaction, which may be older than the last one logged.
        let modules_txn = p0.mp_txn_max;

        let fatal = Arc::new(Fatal::default());
        let fatal_fn: executor::FatalFn = {
            let f = fatal.clone();
            Arc::new(move |what: String| f.set(what))
        };
        let addrs: reply::ClientAddrs =
            Arc::new(cluster.as_ref().map_or_else(Default::default, |c| {
                c.config
                    .nodes
                    .iter()
                    .map(|(id, a)| (*id, a.client))
                    .collect()
            }));
        // Built before partition 0's replica starts keeping them up to date.
        let routes = Arc::new(Routes::default());
        coordinator::note_tenants(p0, tenants.iter().copied(), &routes);
        for t in &tenants {
            routes.rebuild(
                *t,
                modules
                    .range((*t, String::new())..)
                    .take_while(|((tt, _), _)| tt == t)
                    .map(|(_, m)| m),
            );
        }
        let catalog = Arc::new(RwLock::new(catalog));
        let mut executors = Vec::new();
        let mut writers = Vec::new();
        let mut stats = Vec::new();
        let mut threads = Vec::new();
        let p0_leader = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let siblings = Arc::new(std::sync::OnceLock::new());
        let mut watchdog = watchdog::Watchdog::default();
        let mut reliefs = Vec::new();
        let handovers = relief::Handovers::default();
        for (i, (core, log)) in rec.cores.drain(..).zip(rec.logs.drain(..)).enumerate() {
            let links = PartitionLinks {
                watch: watchdog.watch(config.quota.call_timeout_ms),
                runner_watches: (0..runner::LENT_PARTS_MAX)
                    .map(|_| watchdog.watch(config.quota.call_timeout_ms))
                    .collect(),
                relief: {
                    let r = relief::Relief::new(i as u32, handovers.clone());
                    reliefs.push(Arc::downgrade(&r));
                    r
                },
                outbox: cluster.as_ref().map(|c| (c.outbox)(PartitionId(i as u32))),
                siblings: cluster.as_ref().map(|_| Arc::downgrade(&siblings)),
                addrs: addrs.clone(),
                // Partition 0's replica keeps this node's routes up to date
                // with what other nodes deploy.
                routes: (i == 0 && cluster.is_some()).then(|| executor::RoutesRefresh {
                    routes: routes.clone(),
                    runtime: runtime.clone(),
                    catalog: catalog.clone(),
                    base: base_catalog.clone(),
                    adopted: adopted.clone(),
                    principals: principals.clone(),
                    revoked: rec.revoked.clone(),
                    seen: modules_txn,
                }),
                anchor: cluster.as_ref().map(|c| executor::Anchor {
                    me: c.config.me,
                    p0_leader: p0_leader.clone(),
                    is_p0: i == 0,
                    next_try: started,
                    backoff: std::time::Duration::from_secs(1),
                    was_leading: false,
                }),
            };
            let p = spawn_partition(
                i,
                core,
                log,
                &config,
                started,
                &fatal_fn,
                links,
                &mut threads,
            )?;
            executors.push(p.executor);
            writers.push(p.writer);
            stats.push(p.stats);
        }
        let _ = siblings.set(executors.clone());
        let coord = Coordinator {
            executors: executors.clone(),
            runtime: runtime.clone(),
            routes: routes.clone(),
            catalog: catalog.clone(),
            dir: Arc::new(dir),
            last_txn: std::cell::Cell::new(rec.last_txn),
            modules: std::cell::RefCell::new(modules),
            modules_txn: std::cell::Cell::new(modules_txn),
            modules_synced: std::cell::RefCell::default(),
            addrs,
            clustered: cluster.is_some(),
            quota: config.quota,
            fatal: fatal_fn,
        };
        let (ctx, crx) = sync_channel(COORDINATOR_QUEUE_MAX);
        let coord_watch = watchdog.watch(config.quota.sql_timeout_ms);
        let stopping = watchdog.stopping();
        // Ends once the executors and the coordinator have (their watches
        // go with their threads).
        threads.push((
            ThreadRole::Watchdog,
            spawn("ohm-watchdog".to_string(), move || watchdog.run())?,
        ));
        // Ends once the executors have.
        threads.push((
            ThreadRole::Watchdog,
            spawn("ohm-relief".to_string(), move || relief::monitor(reliefs))?,
        ));
        threads.push((
            ThreadRole::Coordinator,
            spawn("ohm-coord".to_string(), move || {
                crate::sql::interrupt::install(coord_watch);
                coord.run(crx)
            })?,
        ));
        let node = Arc::new(Node {
            executors,
            stats,
            coordinator: ctx,
            writers,
            routes,
            catalog,
            config,
            links: cluster.as_ref().map(|c| c.links.clone()),
            forwarder: cluster.as_ref().map(|c| c.forwarder.clone()),
            cluster: cluster.map(|c| c.config),
            p0_leader,
            runtime,
            started,
            connections: AtomicU64::new(0),
            usage: usage::Usage::default(),
            compiling: Arc::default(),
            threads: Mutex::new(threads),
            handovers,
            stopping,
            fatal,
            _siblings: siblings,
            _lock: lock,
        });
        for (i, skipped) in rec.needs_snapshot.iter().enumerate() {
            if *skipped {
                node.snapshot(PartitionId(i as u32));
            }
        }
        Ok(node)
    }

    /// Takes a snapshot of one partition now and waits until it is
    /// written.
    pub fn snapshot(&self, p: PartitionId) {
        let (done, wait) = sync_channel(1);
        if let Some(e) = self.executors.get(p.0 as usize) {
            if e.send(Input::Snapshot(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    /// Stops the node: the coordinator and executors finish what is queued,
    /// then the writers sync and close their logs. Requests after this get
    /// `unavailable`.
    pub fn shutdown(&self) {
        // Work still running `STOP_WORK_MAX` from now is halted (rolled back,
        // answered `unavailable`), so a long statement cannot hold the stop.
        self.stopping.store(true, Ordering::Release);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let (writers, others): (Vec<_>, Vec<_>) = threads
            .into_iter()
            .partition(|(role, _)| *role == ThreadRole::Writer);
        let _ = self.coordinator.send(CoordTask::Stop);
        for e in &self.executors {
            let _ = e.send(Input::Stop);
        }
        for (_, t) in others {
            let _ = t.join();
        }
        // An executor whose loop another thread took over ends there.
        loop {
            let taken =
                std::mem::take(&mut *self.handovers.lock().unwrap_or_else(|p| p.into_inner()));
            if taken.is_empty() {
                break;
            }
            for t in taken {
                let _ = t.join();
            }
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

/// The channels of one running partition.
struct Spawned {
    executor: Sender<Input>,
    writer: SyncSender<WriterMsg>,
    stats: Arc<PartitionStats>,
}

/// How a partition's executor reaches the rest of the cluster.
struct PartitionLinks {
    /// Times the executor's calls.
    watch: Arc<crate::sql::interrupt::Watch>,
    /// Time the calls of its runners (`runner`), one each.
    runner_watches: Vec<Arc<crate::sql::interrupt::Watch>>,
    relief: Arc<relief::Relief>,
    outbox: Option<writer::Outbox>,
    siblings: Option<executor::Siblings>,
    addrs: reply::ClientAddrs,
    routes: Option<executor::RoutesRefresh>,
    anchor: Option<executor::Anchor>,
}

/// Starts partition `i`'s log writer and executor threads.
#[allow(clippy::too_many_arguments)]
fn spawn_partition(
    i: usize,
    core: crate::partition::PartitionCore<executor::Token>,
    log: crate::durability::DiskLog,
    config: &NodeConfig,
    started: Instant,
    fatal: &executor::FatalFn,
    links: PartitionLinks,
    threads: &mut Vec<(ThreadRole, std::thread::JoinHandle<()>)>,
) -> anyhow::Result<Spawned> {
    let (etx, erx) = channel();
    let (wtx, wrx) = sync_channel(WRITER_QUEUE_MAX);
    let mut watches = links.runner_watches;
    watches.push(links.watch);
    let runners = runner::Runners::new(i as u32, watches);
    let watch = runners.exec_watch();
    let durable = Arc::new(executor::Durable::default());
    // Old files are removed on a thread of the writer's, not by it.
    let remover = log.remover()?;
    let mut log = log;
    log.defer_removals();
    // Space is set aside for the log now: a full disk is known at once.
    crate::durability::Storage::retry_reserve(&mut log)
        .with_context(|| format!("partition {i}: setting aside space for its log"))?;
    if let Some(why) = log.space_unsupported() {
        tracing::warn!(
            partition = i,
            "this file system cannot set space aside for the log ({why}); \
             if the disk fills, the partition stops rather than refusing writes"
        );
    }
    let remove: writer::RemoveFn = Arc::new(move |names| remover.remove(names));
    let log = Arc::new(Mutex::new(log));
    let stats = Arc::new(PartitionStats::default());
    let writer = Writer {
        storage: log.clone(),
        outbox: links.outbox.clone(),
        msgs: wrx,
        executor: etx.clone(),
        durable: durable.clone(),
        durability: config.durability,
        partition: i as u32,
        stats: stats.clone(),
        remove: Some(remove),
    };
    threads.push((
        ThreadRole::Writer,
        spawn(format!("ohm-log{i}"), move || writer.run())?,
    ));
    let exec = Executor {
        core,
        inputs: erx,
        writer: wtx.clone(),
        stats: stats.clone(),
        started,
        fatal: fatal.clone(),
        durable,
        seen: 0,
        log,
        outbox: links.outbox,
        siblings: links.siblings,
        addrs: links.addrs,
        routes: links.routes,
        anchor: links.anchor,
        turns: Default::default(),
        runners,
        own: etx.clone(),
        held_back: Default::default(),
        looping: Default::default(),
        relief: links.relief,
    };
    threads.push((
        ThreadRole::Executor,
        spawn(format!("ohm-p{i}"), move || {
            crate::sql::interrupt::install(watch);
            exec.run()
        })?,
    ));
    Ok(Spawned {
        executor: etx,
        writer: wtx,
        stats,
    })
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

/// Why the node must stop, once something made it impossible to go on.
#[derive(Default)]
pub struct Fatal {
    what: Mutex<Option<String>>,
    notify: tokio::sync::Notify,
}

impl Fatal {
    /// Records the first reason and wakes whoever waits.
    pub fn set(&self, what: String) {
        tracing::error!("{what}");
        let mut w = self.what.lock().unwrap_or_else(|p| p.into_inner());
        if w.is_none() {
            *w = Some(what);
        }
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn get(&self) -> Option<String> {
        self.what.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Resolves once the node must stop.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.get().is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// Hands the allocator's free pages back to the system (glibc keeps freed
/// memory in its heaps, where a recovery's spent log records leave a lot).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
