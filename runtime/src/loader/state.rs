//! A load's resume state: which file (its size and the hash of its first
//! bytes), read how (the options that shape chunks), and how far the
//! acknowledged chunks reach (the next chunk's number, byte offset and
//! line). Written (to a temporary file, synced, renamed) after each chunk
//! acknowledged in order, removed when the load completes.

use super::Options;
use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

/// Bytes at the head of the file whose hash names it.
const HEAD_BYTES: u64 = 1 << 20;
/// The first line of a state file.
const MAGIC: &str = "ohm-load-state 1";
/// The largest state file read (a few lines).
const STATE_BYTES_MAX: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    path: PathBuf,
    /// The loaded file's size and the SHA-256 of its first bytes.
    size: u64,
    head: String,
    /// What shapes the chunks: they must be cut again exactly as before.
    settings: String,
    pub load_id: String,
    /// The columns each record gives (from the header or the options).
    pub columns: Option<Vec<String>>,
    pub next_chunk: u64,
    pub offset: u64,
    pub line: u64,
    pub read: u64,
    pub loaded: u64,
    pub rejected: u64,
    /// The reject file's length once those chunks' rejects were written.
    pub reject_bytes: u64,
}

fn identity(f: &mut std::fs::File) -> anyhow::Result<(u64, String)> {
    let size = f.metadata().context("reading the file's size")?.len();
    f.seek(std::io::SeekFrom::Start(0))?;
    let mut head = Vec::new();
    f.take(HEAD_BYTES)
        .read_to_end(&mut head)
        .context("reading the file's head")?;
    f.seek(std::io::SeekFrom::Start(0))?;
    let hash = Sha256::digest(&head);
    Ok((size, hash.iter().map(|b| format!("{b:02x}")).collect()))
}

/// The options that decide how records are cut into chunks and sent.
fn settings(o: &Options) -> String {
    format!(
        "table={:?} columns={:?} header={} format={:?} encoding={:?} formats={:?} chunk_rows={} \
         reject_file={:?}",
        o.table, o.columns, o.header, o.format, o.encoding, o.formats, o.chunk_rows, o.reject_file
    )
}

impl State {
    /// A new load of the file `f`, its state to be kept at `path`.
    pub fn fresh(path: &Path, f: &mut std::fs::File, opts: &Options) -> anyhow::Result<State> {
        let (size, head) = identity(f)?;
        Ok(State {
            path: path.to_path_buf(),
            size,
            head,
            settings: settings(opts),
            load_id: State::new_id()?,
            columns: None,
            next_chunk: 0,
            offset: 0,
            line: 1,
            read: 0,
            loaded: 0,
            rejected: 0,
            reject_bytes: 0,
        })
    }

    /// A fresh load id: 16 hex digits from the OS's secure RNG (its
    /// chunks' idempotency keys must not meet another load's).
    pub fn new_id() -> anyhow::Result<String> {
        let mut id = [0u8; 8];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut id)
            .map_err(|_| anyhow::anyhow!("the OS gave no random bytes for the load's id"))?;
        Ok(id.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses to resume over another file, a changed one, or other
    /// options than the load began with.
    pub fn check(&self, file: &Path, f: &mut std::fs::File, opts: &Options) -> anyhow::Result<()> {
        let (size, head) = identity(f)?;
        if size != self.size || head != self.head {
            bail!(
                "{} is not the file the interrupted load read ({} bytes then, {size} now, or \
                 its first MiB differs): delete {} to load it from the start",
                file.display(),
                self.size,
                self.path.display()
            );
        }
        let now = settings(opts);
        if now != self.settings {
            bail!(
                "the interrupted load used other options; give the same ones to resume \
                 (then: {}; now: {now})",
                self.settings
            );
        }
        Ok(())
    }

    /// Reads the state at `path`.
    pub fn read(path: &Path) -> anyhow::Result<State> {
        let what = || format!("reading the resume state {}", path.display());
        let f = std::fs::File::open(path).with_context(|| {
            format!(
                "--resume: no resume state at {} (the load finished, or never began)",
                path.display()
            )
        })?;
        let mut text = String::new();
        f.take(STATE_BYTES_MAX)
            .read_to_string(&mut text)
            .with_context(what)?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            bail!("{} is not an ohm load state file", path.display());
        }
        let mut kv = std::collections::BTreeMap::new();
        for l in lines {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("{}: bad line {l:?}", path.display()))?;
            kv.insert(k.to_string(), v.to_string());
        }
        let get = |k: &str| {
            kv.get(k)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{}: no {k} (the file is damaged)", path.display()))
        };
        let num = |k: &str| -> anyhow::Result<u64> {
            get(k)?
                .parse()
                .map_err(|_| anyhow::anyhow!("{}: {k} is not a number", path.display()))
        };
        let columns = get("columns")?;
        Ok(State {
            path: path.to_path_buf(),
            size: num("size")?,
            head: get("head")?,
            settings: get("settings")?,
            load_id: get("load_id")?,
            columns: (!columns.is_empty())
                .then(|| columns.split('\u{1f}').map(str::to_string).collect()),
            next_chunk: num("next_chunk")?,
            offset: num("offset")?,
            line: num("line")?,
            read: num("read")?,
            loaded: num("loaded")?,
            rejected: num("rejected")?,
            reject_bytes: num("reject_bytes")?,
        })
    }

    /// Writes the state durably: a temporary file, synced, renamed over.
    pub fn write(&self) -> anyhow::Result<()> {
        let text = format!(
            "{MAGIC}\nsize={}\nhead={}\nsettings={}\nload_id={}\ncolumns={}\nnext_chunk={}\n\
             offset={}\nline={}\nread={}\nloaded={}\nrejected={}\nreject_bytes={}\n",
            self.size,
            self.head,
            self.settings.replace('\n', " "),
            self.load_id,
            self.columns
                .as_ref()
                .map_or(String::new(), |c| c.join("\u{1f}")),
            self.next_chunk,
            self.offset,
            self.line,
            self.read,
            self.loaded,
            self.rejected,
            self.reject_bytes
        );
        let tmp = self.path.with_extension("tmp");
        let what = || format!("writing the resume state {}", self.path.display());
        {
            let mut f = std::fs::File::create(&tmp).with_context(what)?;
            std::io::Write::write_all(&mut f, text.as_bytes()).with_context(what)?;
            f.sync_all().with_context(what)?;
        }
        std::fs::rename(&tmp, &self.path).with_context(what)?;
        self.sync_dir()
    }

    /// The load completed: nothing to resume.
    pub fn remove(&self) -> anyhow::Result<()> {
        std::fs::remove_file(&self.path)
            .with_context(|| format!("removing the resume state {}", self.path.display()))?;
        self.sync_dir()
    }

    /// Syncs the state file's directory, so its rename or removal lasts
    /// through a power loss (the chunks it counts are durable on the node).
    fn sync_dir(&self) -> anyhow::Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))
    }
}
