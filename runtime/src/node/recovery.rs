//! Start-up: every partition's log opened, and its replica (a group of one
//! on a lone node, one of the group's replicas in a cluster) recovered from
//! its snapshot and the records after it.
//!
//! On a lone node a coordinator transaction is applied only if every
//! partition has it — in its log, or already inside its snapshot
//! (`mp_txn_max`) — and no log says it was aborted. One that some
//! partition lacks was never acknowledged (partition 0's share, the
//! commit, is logged only after every other share is; see
//! `partition::decide`); it is skipped everywhere, and the
//! partitions that logged it take a snapshot at once, so the skipped
//! record leaves their log before any later transaction could be confused
//! with it.

use super::datadir::Started;
use super::executor::Token;
use crate::catalog::PartitionId;
use crate::consensus;
use crate::durability::{self, DirFs, Log, LogOptions, Storage};
use crate::partition::{CoreConfig, Now, PartitionCore, ProcRuntime};
use crate::types::{NodeId, Slot};
use anyhow::{anyhow, Context};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Payload bytes read from a log at once while scanning it.
const SCAN_BYTES_MAX: usize = 4 << 20;

pub struct Recovered {
    pub cores: Vec<PartitionCore<Token>>,
    pub logs: Vec<Log<DirFs>>,
    /// The highest coordinator transaction id seen anywhere.
    pub last_txn: u64,
    /// Partitions whose log holds a skipped (never acknowledged) record.
    pub needs_snapshot: Vec<bool>,
    /// Principals partition 0's log revokes past its snapshot, chosen or
    /// not, with the coordinator transaction that does: in a cluster the
    /// state holds them only once the leader says they are chosen, and a
    /// revoked token must not work meanwhile.
    pub revoked: Vec<(u64, crate::types::TenantId, String)>,
}

/// What one partition's log says about coordinator transactions.
struct Scan {
    /// Transactions whose shares the log holds.
    logged: BTreeSet<u64>,
    /// Transactions the log says were aborted.
    aborted: BTreeSet<u64>,
    /// Every transaction up to this one is inside the snapshot.
    covered: u64,
    /// Principals the log revokes (a cluster's partition 0), chosen or
    /// not, with the transaction that does.
    revoked: Vec<(u64, crate::types::TenantId, String)>,
}

/// Who this replica is and who the others are: `None` on a lone node
/// (a group of one, node 1).
pub type Members = Option<(NodeId, Vec<NodeId>)>;

pub fn recover(
    (dir, seen): (&cap_std::fs::Dir, Started),
    config: &super::NodeConfig,
    members: &Members,
    runtime: Arc<dyn ProcRuntime>,
    opts: &LogOptions,
    now: Now,
) -> anyhow::Result<Recovered> {
    // Every log is examined before any is changed: a start refused for one
    // partition leaves the others as they were too.
    let mut examined = Vec::new();
    let partitions = config.partitions;
    for p in 0..partitions {
        let name = format!("p{p}");
        if seen == Started::First {
            dir.create_dir_all(&name)
                .with_context(|| format!("creating {name}/ in the data directory"))?;
        }
        // Checked before anything was written (`datadir::check_partitions`).
        let sub = dir
            .open_dir(&name)
            .with_context(|| format!("opening {name}/ in the data directory"))?;
        examined.push(Log::examine(DirFs::new(sub)).map_err(|e| anyhow!("partition {p}: {e}"))?);
    }
    let mut logs = Vec::new();
    let mut scans = Vec::new();
    for (p, examined) in examined.into_iter().enumerate() {
        let name = format!("p{p}");
        let (mut log, opened) = Log::open_examined(examined, opts.clone())
            .map_err(|e| anyhow!("partition {p}: {e}"))?;
        if let Some(t) = &opened.torn_tail {
            tracing::warn!(
                partition = p,
                "cut a half-written record at the end of {}/{} at offset {} \
                 ({} bytes). It follows everything the log's last start found durable, so it is \
                 most likely a write the crash interrupted (not acknowledged); it cannot be told \
                 from damage to the file since the crash",
                name,
                t.file,
                t.offset,
                t.bytes_dropped
            );
        }
        scans.push(scan(&mut log).map_err(|e| anyhow!("partition {p}: {e}"))?);
        logs.push(log);
    }
    let complete = |txn: u64| {
        scans
            .iter()
            .all(|s| s.logged.contains(&txn) || s.covered >= txn)
    };
    // In a cluster a replica's log may lag its group's (what it lacks is
    // chosen elsewhere and comes from the leader): the rule holds only on a
    // lone node, where the log is the group's.
    let skipped: BTreeSet<u64> = scans
        .iter()
        .flat_map(|s| s.logged.iter().copied())
        .filter(|t| members.is_none() && !complete(*t))
        .chain(
            scans
                .iter()
                .flat_map(|s| s.aborted.iter().copied())
                .filter(|_| members.is_none()),
        )
        .collect();
    for t in &skipped {
        tracing::warn!(
            "skipping coordinator transaction {t}: it was aborted, or not every partition \
             logged it; it was never acknowledged"
        );
    }
    let last_txn = scans
        .iter()
        .flat_map(|s| s.logged.last().copied().into_iter().chain([s.covered]))
        .max()
        .unwrap_or(0);
    let needs_snapshot = scans
        .iter()
        .map(|s| s.logged.iter().any(|t| skipped.contains(t)))
        .collect();
    // A revocation the log says was aborted never holds.
    let revoked = scans
        .first()
        .map(|s| {
            let aborted = &s.aborted;
            s.revoked
                .iter()
                .filter(|r| !aborted.contains(&r.0))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let skipped = Arc::new(skipped);
    #[cfg_attr(not(debug_assertions), allow(clippy::let_unit_value, unused_variables))]
    let planted = planted_bugs()?;
    let mut cores = Vec::new();
    for (p, log) in logs.iter_mut().enumerate() {
        let cfg = CoreConfig {
            partition: PartitionId(p as u32),
            partitions,
            consensus: consensus::Config {
                #[cfg(debug_assertions)]
                bugs: planted,
                ..match members {
                    None => consensus::Config::single(NodeId(1)),
                    Some((me, all)) => consensus::Config::new(*me, all.clone()),
                }
            },
            snapshot_log_bytes: config.snapshot_log_bytes,
            snapshot_step_bytes: config.snapshot_step_bytes,
            quota: config.quota,
        };
        let seed = (now.wall_us as u64) ^ ((p as u64) << 48);
        let core = PartitionCore::recover(cfg, runtime.clone(), log, skipped.clone(), now, seed)
            .map_err(|e| anyhow!("partition {p}: {e}"))?;
        cores.push(core);
    }
    Ok(Recovered {
        cores,
        logs,
        last_txn,
        needs_snapshot,
        revoked,
    })
}

/// Reads a partition's log for the coordinator transactions it holds.
fn scan(log: &mut Log<DirFs>) -> Result<Scan, durability::DurabilityError> {
    let covered = match log.read_snapshot()? {
        Some((_, bytes)) => durability::snapshot::read_begin(&bytes)?.1,
        None => 0,
    };
    let mut logged = BTreeSet::new();
    let mut aborted = BTreeSet::new();
    let mut revoked = Vec::new();
    let mut next = log.snapshot_meta().map_or(Slot(0), |m| m.slot).next();
    while next <= log.last_slot() {
        let recs = log.read(next, SCAN_BYTES_MAX)?;
        let Some(last) = recs.last().map(|r| r.slot) else {
            break;
        };
        for r in &recs {
            if let Some(txn) = durability::multi_txn(&r.payload) {
                logged.insert(txn);
            }
            if let Some((txn, false)) = durability::decision(&r.payload) {
                aborted.insert(txn);
            }
            revoked.extend(durability::revoked_principal(&r.payload));
        }
        next = last.next();
    }
    Ok(Scan {
        logged,
        aborted,
        covered,
        revoked,
    })
}

/// The bugs `consensus::PLANTED_BUG_ENV` asks a debug build to plant, for
/// the fault suite to prove it catches them (`ohm torture --planted-bug`).
#[cfg(debug_assertions)]
fn planted_bugs() -> anyhow::Result<consensus::Bugs> {
    let Ok(text) = std::env::var(consensus::PLANTED_BUG_ENV) else {
        return Ok(consensus::Bugs::default());
    };
    let bugs = consensus::Bugs::parse(&text)
        .map_err(|e| anyhow!("{}: {e}", consensus::PLANTED_BUG_ENV))?;
    if bugs != consensus::Bugs::default() {
        tracing::error!(
            "running with planted bugs ({}={text}): this node may lose \
             acknowledged writes on purpose; never use it for data",
            consensus::PLANTED_BUG_ENV
        );
    }
    Ok(bugs)
}

/// Release builds carry no planted bugs; asking for one is refused rather
/// than ignored, so a fault suite never mistakes a healthy node for a
/// bugged one that escaped it.
#[cfg(not(debug_assertions))]
fn planted_bugs() -> anyhow::Result<()> {
    match std::env::var_os(consensus::PLANTED_BUG_ENV) {
        None => Ok(()),
        Some(_) => Err(anyhow!(
            "{} is set, but this is a release build: planted bugs exist only in debug builds \
             (cargo build -p ohm); unset it",
            consensus::PLANTED_BUG_ENV
        )),
    }
}
