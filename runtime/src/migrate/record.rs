//! What a migration has done, in WORK-DIR/migrate.state: the first line
//! names the format, the second what the migration is of (the source, the
//! schema, a hash of the plan), then one line per step done: `place T C`
//! (each table's placement, fixed by the first run so a resume makes the
//! same plan even if the row counts moved), `ddl N`, `copies`, `loaded T`,
//! `deferred T N`. Names are hex, so any name fits on a line. Written to a
//! temporary file, synced, renamed, and the directory synced.

use super::translate::{Placement, Plan};
use anyhow::{bail, Context};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The first line of the state file.
const STATE_MAGIC: &str = "ohm-migrate-state 2";
/// The largest state file read.
const STATE_BYTES_MAX: u64 = 16 << 20;

/// A name as it is written in the state file.
pub(super) fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str, path: &Path) -> anyhow::Result<String> {
    let bad = || anyhow::anyhow!("{}: a damaged name {s:?}", path.display());
    let digits = s.as_bytes();
    if !digits.len().is_multiple_of(2) || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad());
    }
    let value = |d: u8| (d as char).to_digit(16).unwrap_or(0) as u8;
    let bytes: Vec<u8> = digits
        .chunks(2)
        .map(|p| (value(p[0]) << 4) | value(p[1]))
        .collect();
    String::from_utf8(bytes).map_err(|_| bad())
}

/// Syncs the directory holding `path`, so a rename into it lasts.
pub(super) fn sync_dir(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// The steps done, as recorded in DIR/migrate.state.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Record {
    path: PathBuf,
    /// What the migration is of: the source (redacted), the schema, and
    /// the hash of the plan's statements.
    identity: String,
    done: BTreeSet<String>,
}

impl Record {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("migrate.state")
    }

    /// The placements an earlier run of this migration recorded: table →
    /// partition column (None: replicated). Empty when there is none.
    /// `source` is what the identity line must begin with (the source and
    /// the schema): another migration's placements are refused.
    pub fn placements(dir: &Path, source: &str) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let path = Record::path(dir);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let (identity, done) = Record::read(&path)?;
        if !identity.starts_with(source) {
            bail!(
                "--resume: {} is of another migration ({identity}, not {source})",
                path.display()
            );
        }
        let mut out = Vec::new();
        for line in done {
            let Some(rest) = line.strip_prefix("place ") else {
                continue;
            };
            let (t, c) = rest.split_once(' ').unwrap_or((rest, "-"));
            let col = if c == "-" {
                None
            } else {
                Some(unhex(c, &path)?)
            };
            out.push((unhex(t, &path)?, col));
        }
        Ok(out)
    }

    /// A fresh record (refused when one is there: `--resume` continues it),
    /// with `plan`'s placements; or, resuming, the one there, which must be
    /// of this migration.
    pub fn open(dir: &Path, identity: String, resume: bool, plan: &Plan) -> anyhow::Result<Record> {
        let path = Record::path(dir);
        if !resume {
            if path.exists() {
                bail!(
                    "{} holds a migration that did not finish: continue it with --resume, or \
                     remove {} to start again (into a tenant without these tables)",
                    path.display(),
                    dir.display()
                );
            }
            let done = plan
                .tables
                .iter()
                .map(|t| match &t.placement {
                    Placement::On(c) => format!("place {} {}", hex(&t.name), hex(c)),
                    Placement::Replicated => format!("place {} -", hex(&t.name)),
                })
                .collect();
            let r = Record {
                path,
                identity,
                done,
            };
            r.write()?;
            return Ok(r);
        }
        if !path.exists() {
            bail!(
                "--resume: no migration state at {} (was --work-dir the same?)",
                path.display()
            );
        }
        let (was, done) = Record::read(&path)?;
        if was != identity {
            bail!(
                "--resume: {} is of another migration, or the source's schema changed since \
                 ({was} vs now {identity}); start again into a fresh tenant",
                path.display()
            );
        }
        Ok(Record {
            path,
            identity,
            done,
        })
    }

    /// The identity line and the steps of the record at `path`.
    fn read(path: &Path) -> anyhow::Result<(String, BTreeSet<String>)> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if meta.len() > STATE_BYTES_MAX {
            bail!(
                "{}: over {STATE_BYTES_MAX} bytes, not a migration state",
                path.display()
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines();
        if lines.next() != Some(STATE_MAGIC) {
            bail!("{}: not a migration state (first line)", path.display());
        }
        let identity = lines.next().unwrap_or("").to_string();
        Ok((identity, lines.map(|l| l.to_string()).collect()))
    }

    pub fn has(&self, step: &str) -> bool {
        self.done.contains(step)
    }

    pub fn mark(&mut self, step: String) -> anyhow::Result<()> {
        self.done.insert(step);
        self.write()
    }

    fn write(&self) -> anyhow::Result<()> {
        let mut text = format!("{STATE_MAGIC}\n{}\n", self.identity);
        for s in &self.done {
            text.push_str(s);
            text.push('\n');
        }
        let tmp = self.path.with_extension("state.tmp");
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming {} into place", tmp.display()))?;
        sync_dir(&self.path)
    }
}
