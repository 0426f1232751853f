//! The data directory as a whole: its lock, and `node.meta`, which says
//! what the directory must hold. A node never recreates state over data
//! it should have found: a directory that has been started once must have
//! its `node.meta`, its `catalog` and every partition's directory, and a
//! start that finds one missing refuses, naming it (recreating it would
//! lose what it held, and a new catalog would hand tenant ids, and so
//! tables, to other tenants).
//!
//! `node.meta` is written first on a directory's first start, marked
//! `initializing`, and rewritten without the mark once the catalog and
//! every partition exist (before anything is served): a first start that
//! was interrupted is finished by the next one; a directory without
//! `node.meta` that holds a node's files is refused.
//!
//! ```text
//!   no node.meta, no node files ──write "initializing"──▶ first start ──finish──▶ complete
//!   no node.meta, node files    ──▶ refused (node.meta was removed)
//!   "initializing"              ──▶ first start again (nothing was served)
//!   complete                    ──▶ catalog and p0..pN must exist, else refused
//! ```
//!
//! Every check runs before the start writes anything (the catalog, a
//! token, a log), so a refused start leaves the directory as it found it
//! (but for `LOCK`'s pid).
//!
//! Owns: `LOCK`, `node.meta`. Must not: read or write the catalog or the
//! partitions' logs (`catalog`, `recovery` do; this only checks they
//! exist).

use super::recovery::Members;
use anyhow::{bail, Context};

/// Says what the directory must hold (see the module doc).
pub const META_FILE: &str = "node.meta";
const LOCK_FILE: &str = "LOCK";
/// The line that marks a first start not yet finished.
const INITIALIZING: &str = "initializing";
/// Entries the data directory may hold (a node writes a few dozen); one
/// with more is refused rather than half looked at.
const DATA_DIR_ENTRIES_MAX: usize = 4096;

/// Whether the directory has been started before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Never (or its first start was interrupted): the catalog and the
    /// partitions may be created; `finish` once they are.
    First,
    /// Yes: everything `node.meta` names must be there.
    Before,
}

/// What `node.meta` should say for this start.
fn meta_text(partitions: u32, members: &Members) -> String {
    let mut want = format!("ohm-node 1\npartitions {partitions}\n");
    if let Some((me, all)) = members {
        let all: Vec<String> = all.iter().map(|n| n.0.to_string()).collect();
        want.push_str(&format!("node {}\nmembers {}\n", me.0, all.join(",")));
    }
    want
}

/// Reads `node.meta` (writing it, marked `initializing`, on a first
/// start): the partition count and the cluster membership are fixed for
/// the life of a data directory (rows are placed by the count).
pub fn open_meta(
    dir: &cap_std::fs::Dir,
    partitions: u32,
    members: &Members,
) -> anyhow::Result<Started> {
    let want = meta_text(partitions, members);
    let text = match dir.read_to_string(META_FILE) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            refuse_node_files_without_meta(dir)?;
            write_meta(dir, &format!("{want}{INITIALIZING}\n"))?;
            return Ok(Started::First);
        }
        Err(e) => return Err(e).context("reading node.meta in the data directory"),
    };
    let first = text.lines().any(|l| l.trim() == INITIALIZING);
    let (had, wanted) = (fields(&text), fields(&want));
    let field = |f: &Fields, k: &str| f.get(k).cloned();
    if field(&had, "node") != field(&wanted, "node")
        || field(&had, "members") != field(&wanted, "members")
    {
        let (was, now) = (owner(&had), owner(&wanted));
        bail!(
            "the data directory belongs to {was}, and this start is for {now}: its log \
             and votes are that node's; start it as that node, or use an empty \
             directory"
        );
    }
    if field(&had, "partitions") != field(&wanted, "partitions") {
        let had = field(&had, "partitions").unwrap_or_else(|| "?".into());
        bail!(
            "the data directory was created with {had} partitions; start with \
             --partitions {had} (rows are placed by the partition count)"
        );
    }
    if had != wanted {
        bail!(
            "node.meta in the data directory reads {text:?}, which this build does not \
             take for {want:?}: restore it from a backup, or write those lines"
        );
    }
    Ok(if first {
        Started::First
    } else {
        Started::Before
    })
}

/// `node.meta`'s lines as key and value, as an operator may have written
/// them (spaces and blank lines aside, in any order; members in any
/// order), without the `initializing` mark.
type Fields = std::collections::BTreeMap<String, String>;

/// Whose directory `node.meta`'s fields say it is.
fn owner(f: &Fields) -> String {
    match (f.get("node"), f.get("members")) {
        (Some(n), Some(m)) => format!("node {n} of a cluster of nodes {m}"),
        _ => "a lone node".to_string(),
    }
}

fn fields(text: &str) -> Fields {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != INITIALIZING)
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            let v = v.trim();
            let v = if k == "members" {
                let mut ids: Vec<&str> = v.split(',').map(str::trim).collect();
                ids.sort_by_key(|id| (id.len(), *id));
                ids.join(",")
            } else {
                v.to_string()
            };
            (k.to_string(), v)
        })
        .collect()
}

/// The first start is done (the catalog and every partition exist):
/// `node.meta` loses its `initializing` mark.
pub fn finish(dir: &cap_std::fs::Dir, partitions: u32, members: &Members) -> anyhow::Result<()> {
    // The partitions' directories are durable before the mark goes.
    crate::catalog::sync_dir(dir).context("syncing the data directory")?;
    write_meta(dir, &meta_text(partitions, members))
}

/// Writes `node.meta` whole, durably (a temporary file renamed over it).
fn write_meta(dir: &cap_std::fs::Dir, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = format!("{META_FILE}.tmp");
    let mut f = dir
        .create(&tmp)
        .with_context(|| format!("writing {tmp} in the data directory"))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {tmp} in the data directory"))?;
    dir.rename(&tmp, dir, META_FILE)
        .with_context(|| format!("renaming {tmp} to {META_FILE} in the data directory"))?;
    crate::catalog::sync_dir(dir).context("syncing the data directory")
}

/// Names in the data directory that only a node that started writes.
fn is_node_file(name: &str) -> bool {
    is_partition_dir(name) || name == "catalog" || name.ends_with(".token")
}

/// `p<N>`: a partition's directory.
fn is_partition_dir(name: &str) -> bool {
    name.strip_prefix('p')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A directory without `node.meta` must not hold what a started node
/// leaves: it was removed, and the partition count it gave is unknown.
fn refuse_node_files_without_meta(dir: &cap_std::fs::Dir) -> anyhow::Result<()> {
    let mut found = Vec::new();
    let mut cluster_dir = false;
    let entries = dir.entries().context("listing the data directory")?;
    for (n, entry) in entries.enumerate() {
        if n >= DATA_DIR_ENTRIES_MAX {
            bail!(
                "the data directory holds more than {DATA_DIR_ENTRIES_MAX} entries: it is \
                 not a node's; use an empty directory"
            );
        }
        let name = entry.context("listing the data directory")?.file_name();
        let name = name.to_string_lossy().into_owned();
        cluster_dir |= name == super::cluster::CLUSTER_FILE;
        if is_node_file(&name) {
            found.push(name);
        }
    }
    // A cluster node's directory, used as its data directory too, holds
    // the catalog `ohm cluster init` wrote before the first start.
    if cluster_dir {
        found.retain(|n| n != "catalog");
    }
    if found.is_empty() {
        return Ok(());
    }
    found.sort();
    let partitions = found.iter().filter(|n| is_partition_dir(n)).count();
    bail!(
        "node.meta is missing from the data directory, which holds a node's files ({}): \
         it records the partition count rows are placed by, and the node does not guess \
         it. Restore node.meta from a backup; if it is lost, write it by hand with the \
         lines `ohm-node 1` and `partitions N` (N: the --partitions this directory was \
         created with; it holds {} partition directories), and for a cluster node also \
         `node ID` and `members ID,ID,...`",
        found.join(", "),
        partitions
    )
}

/// Checks a directory started before: its catalog (a new one would give
/// new tokens and hand the old tenants' ids, and so their tables, to
/// whoever is created next) and every partition's directory with its log
/// (recreated, the rows it held would be lost, and the other partitions
/// would drop the multi-partition transactions it no longer has). Every
/// partition has a segment or a snapshot from the first start on.
pub fn check_started(
    dir: &cap_std::fs::Dir,
    partitions: u32,
    started: Started,
) -> anyhow::Result<()> {
    if started == Started::First {
        return Ok(());
    }
    let restore = "restore it from a backup (or from where it was moved); the node does not \
                   recreate it";
    if !dir.exists("catalog") {
        bail!(
            "catalog is missing from the data directory (node.meta says the node has \
             started here before): it holds the tenants, their ids and token hashes, and \
             a new one would hand the old tenants' tables to new tenants; {restore} (a \
             cluster node may take the one in its cluster directory)"
        );
    }
    for p in 0..partitions {
        let name = format!("p{p}");
        let sub = match dir.open_dir(&name) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{name}/ is missing from the data directory (node.meta names {partitions} \
                 partitions): it holds partition {p}'s log; {restore}"
            ),
            Err(e) => {
                return Err(e).with_context(|| format!("opening {name}/ in the data directory"))
            }
        };
        if !holds_log(&sub).with_context(|| format!("listing {name}/ in the data directory"))? {
            bail!(
                "{name}/ in the data directory holds no log segment and no snapshot (every \
                 partition has one from the node's first start on): partition {p}'s log \
                 files were removed; restore them from a backup; the node does not recreate \
                 them"
            );
        }
    }
    Ok(())
}

/// Whether a partition's directory holds a log segment or a snapshot (the
/// log's own listing checks their names and bounds their count).
fn holds_log(sub: &cap_std::fs::Dir) -> std::io::Result<bool> {
    for entry in sub.entries()?.take(crate::durability::DIR_ENTRIES_MAX + 1) {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with("log-") && name.ends_with(".seg"))
            || (name.starts_with("snap-") && name.ends_with(".snap"))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The data directory's locks, held while the node runs.
#[derive(Debug)]
pub struct Lock {
    _dir: std::fs::File,
    _file: std::fs::File,
}

/// Takes the data directory's lock: an exclusive advisory lock on the
/// directory itself (so removing `LOCK` cannot let a second node in) and
/// on `LOCK` (which older builds lock), released when the process ends,
/// however it ends; `LOCK` names the pid. Two nodes writing one log would
/// destroy it.
pub fn lock(dir: &cap_std::fs::Dir) -> anyhow::Result<Lock> {
    use std::io::{Seek, Write};
    let held = lock_dir(dir)?;
    let mut file = dir
        .open_with(
            LOCK_FILE,
            cap_std::fs::OpenOptions::new().write(true).create(true),
        )
        .context("opening LOCK in the data directory")?
        .into_std();
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("another node (an older build) is using this data directory; stop it first")
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e).context("locking LOCK"),
    }
    file.set_len(0).context("writing LOCK")?;
    file.rewind().context("writing LOCK")?;
    write!(file, "{}", std::process::id()).context("writing LOCK")?;
    Ok(Lock {
        _dir: held,
        _file: file,
    })
}

/// What `node.meta` says, for a tool that reads a stopped node's directory
/// (`ohm check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSeen {
    pub partitions: u32,
    /// The first start never finished.
    pub initializing: bool,
    /// `node N of a cluster of nodes ...`, or `a lone node`.
    pub owner: String,
}

/// Reads `node.meta` without writing anything.
pub fn read_meta(dir: &cap_std::fs::Dir) -> anyhow::Result<MetaSeen> {
    let text = dir
        .read_to_string(META_FILE)
        .context("reading node.meta in the data directory")?;
    let f = fields(&text);
    let partitions = f
        .get("partitions")
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("node.meta reads {text:?}: no `partitions N` line"))?;
    Ok(MetaSeen {
        partitions,
        initializing: text.lines().any(|l| l.trim() == INITIALIZING),
        owner: owner(&f),
    })
}

/// Takes the lock on the data directory itself (not `LOCK`): refused while
/// a node runs on it.
pub fn lock_dir(dir: &cap_std::fs::Dir) -> anyhow::Result<std::fs::File> {
    // Its own descriptor (the `Dir`'s may be `O_PATH`, which cannot be
    // locked).
    let held = dir
        .open(".")
        .context("opening the data directory to lock it")?
        .into_std();
    match held.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = dir.read_to_string(LOCK_FILE).unwrap_or_default();
            let pid = match pid.trim() {
                "" => "unknown".to_string(),
                p => p.to_string(),
            };
            bail!("another node (pid {pid}) is using this data directory; stop it first");
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).context("locking the data directory");
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> (std::path::PathBuf, cap_std::fs::Dir) {
        let p = std::env::temp_dir().join(format!("ohm-datadir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("a temp dir");
        let d = cap_std::fs::Dir::open_ambient_dir(&p, cap_std::ambient_authority())
            .expect("opening it");
        (p, d)
    }

    #[test]
    fn a_first_start_is_marked_until_finished_and_an_interrupted_one_starts_again() {
        let (p, d) = temp("first");
        assert_eq!(open_meta(&d, 4, &None).unwrap(), Started::First);
        // Interrupted before `finish`: the next start is a first start too.
        assert_eq!(open_meta(&d, 4, &None).unwrap(), Started::First);
        finish(&d, 4, &None).unwrap();
        assert_eq!(open_meta(&d, 4, &None).unwrap(), Started::Before);
        let e = open_meta(&d, 2, &None).unwrap_err().to_string();
        assert!(e.contains("created with 4 partitions"), "{e}");
        std::fs::remove_dir_all(&p).unwrap();
    }

    #[test]
    fn a_node_meta_written_by_hand_is_read_by_its_fields() {
        let (p, d) = temp("byhand");
        let members = Some((
            crate::types::NodeId(2),
            (1..=3).map(crate::types::NodeId).collect(),
        ));
        std::fs::write(
            p.join(META_FILE),
            "members 3, 1,2\n\n  partitions 4 \nnode 2\nohm-node 1\n",
        )
        .unwrap();
        assert_eq!(open_meta(&d, 4, &members).unwrap(), Started::Before);
        let e = open_meta(&d, 4, &None).unwrap_err().to_string();
        assert!(e.contains("belongs to node 2 of a cluster"), "{e}");
        std::fs::write(p.join(META_FILE), "ohm-node 2\npartitions 4\n").unwrap();
        let e = open_meta(&d, 4, &None).unwrap_err().to_string();
        assert!(e.contains("does not take"), "{e}");
        std::fs::remove_dir_all(&p).unwrap();
    }

    #[test]
    fn a_directory_with_a_nodes_files_and_no_meta_is_refused() {
        let (p, d) = temp("nometa");
        std::fs::create_dir(p.join("p0")).unwrap();
        std::fs::write(p.join("catalog"), b"x").unwrap();
        let e = open_meta(&d, 2, &None).unwrap_err().to_string();
        assert!(
            e.contains("node.meta is missing") && e.contains("catalog, p0"),
            "{e}"
        );
        assert!(
            !p.join(META_FILE).exists(),
            "node.meta must not be written over a refusal"
        );
        // Files that are not a node's (a mount's lost+found), or the
        // catalog `ohm cluster init` put in a cluster node's directory, are
        // no reason.
        let (q, d2) = temp("foreign");
        std::fs::create_dir(q.join("lost+found")).unwrap();
        std::fs::write(q.join(super::super::cluster::CLUSTER_FILE), b"x").unwrap();
        std::fs::write(q.join("catalog"), b"x").unwrap();
        assert_eq!(open_meta(&d2, 2, &None).unwrap(), Started::First);
        std::fs::remove_dir_all(&p).unwrap();
        std::fs::remove_dir_all(&q).unwrap();
    }

    #[test]
    fn the_lock_holds_when_lock_is_removed() {
        let (p, d) = temp("lock");
        let _held = lock(&d).unwrap();
        std::fs::remove_file(p.join(LOCK_FILE)).unwrap();
        let d2 = cap_std::fs::Dir::open_ambient_dir(&p, cap_std::ambient_authority()).unwrap();
        let e = lock(&d2).unwrap_err().to_string();
        assert!(e.contains("another node"), "{e}");
        std::fs::remove_dir_all(&p).unwrap();
    }
}
