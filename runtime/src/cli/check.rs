//! `ohm check DATA_DIR`: verifies a stopped node's data directory and
//! prints what it found, changing nothing.
//!
//! Owns: the report. Reads `node.meta`, the catalog and, per partition,
//! every log record's CRC and slot sequence, the newest snapshot whole,
//! the vote and the durable mark (`durability::check_log`): what a start
//! checks, without a start's changes (cutting a torn tail, removing
//! leftovers, writing the mark). Must not: write to the directory; it
//! holds the directory's lock only to refuse a running node, whose files
//! change under it.

use crate::durability::{check_log, DirFs, LogCheck};
use crate::node::datadir;
use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The data directory of a stopped node.
    #[arg(default_value = "ohm-data")]
    pub data: PathBuf,
}

/// Checks the directory and prints one line per part; Ok(false) when
/// something would stop a start (or lose data) — each such line starts
/// with `DAMAGED` or `MISSING`.
pub fn run(args: &CheckArgs) -> anyhow::Result<bool> {
    let dir = cap_std::fs::Dir::open_ambient_dir(&args.data, cap_std::ambient_authority())
        .with_context(|| format!("opening the data directory {}", args.data.display()))?;
    let _held = datadir::lock_dir(&dir)?;
    println!("ohm check: {}", args.data.display());
    let meta = match datadir::read_meta(&dir) {
        Ok(m) => m,
        Err(e) => {
            println!("node.meta: MISSING or unreadable: {e:#}");
            return Ok(false);
        }
    };
    println!(
        "node.meta: {} partitions, {}{}",
        meta.partitions,
        meta.owner,
        if meta.initializing {
            " (its first start never finished)"
        } else {
            ""
        }
    );
    let mut problems = 0;
    // What a start checks before it writes anything: the catalog and every
    // partition's directory, with a segment or snapshot in it.
    let started = if meta.initializing {
        datadir::Started::First
    } else {
        datadir::Started::Before
    };
    if let Err(e) = datadir::check_started(&dir, meta.partitions, started) {
        problems += 1;
        println!("data directory: MISSING: {e:#}");
    }
    match crate::catalog::Catalog::load(&dir) {
        Ok(Some(_)) => println!("catalog: ok"),
        Ok(None) if meta.initializing => println!("catalog: not written yet"),
        Ok(None) => {
            problems += 1;
            println!("catalog: MISSING (the node has started here before)");
        }
        Err(e) => {
            problems += 1;
            println!("catalog: DAMAGED: {e}");
        }
    }
    for p in 0..meta.partitions {
        let name = format!("p{p}");
        let sub = match dir.open_dir(&name) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && meta.initializing => {
                println!("{name}/: not created yet (a start creates it)");
                continue;
            }
            Err(e) => {
                problems += 1;
                println!("{name}/: MISSING: {e}");
                continue;
            }
        };
        match check_log(&DirFs::new(sub)) {
            Ok(c) => report(&name, &c),
            Err(e) => {
                problems += 1;
                println!("{name}/: DAMAGED: {e}");
            }
        }
    }
    if problems == 0 {
        println!("ohm check: no damage found");
    } else {
        println!("ohm check: {problems} part(s) damaged or missing; a start would refuse");
    }
    Ok(problems == 0)
}

/// Prints what one partition's log holds, and what a start would change.
fn report(name: &str, c: &LogCheck) {
    let mut parts = vec![format!("last slot {}, {} segment(s)", c.last.0, c.segments)];
    if let Some(s) = &c.snapshot {
        parts.push(format!("snapshot at slot {}", s.slot.0));
    }
    if let Some(v) = &c.vote {
        parts.push(format!("vote {}", v.promised));
    }
    parts.push(match c.mark {
        Some((slot, true)) => format!("closed cleanly at slot {}", slot.0),
        Some((slot, false)) => format!("durable through slot {} (not closed cleanly)", slot.0),
        None => "no durable mark (a start of this build writes one)".to_string(),
    });
    println!("{name}/: ok: {}", parts.join(", "));
    if let Some(t) = &c.torn_tail {
        println!(
            "{name}/: a start would cut {} bytes at the end of {} (offset {}): a record \
             half-written after the durable mark",
            t.bytes_dropped, t.file, t.offset
        );
    }
    if c.stale > 0 {
        println!(
            "{name}/: {} segment(s) the snapshot covers; a start removes them",
            c.stale
        );
    }
    for f in &c.leftovers {
        println!("{name}/: leftover {f} from an interrupted write; a start removes it");
    }
}
