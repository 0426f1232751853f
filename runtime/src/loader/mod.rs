//! Bulk loading from files: `ohm load csv|text` (and `ohm migrate`'s
//! copies). A reader thread cuts the input into records (`records`),
//! converts each field for its column (`convert`) and groups them into
//! chunks of `chunk_rows` records; up to `parallel` chunks are in flight as
//! `load` requests, each with an idempotency key made of the load's id and
//! the chunk's number. Answers are taken in chunk order: each chunk
//! acknowledged in order advances the resume state (`state`), so an
//! interrupted load resumes where the acknowledged chunks end and sends the
//! chunks after them again with the same keys (a chunk the node applied
//! but whose answer was lost is answered, not applied, again).
//!
//! ```text
//!   file ─▶ reader thread ─▶ chunks (bounded) ─▶ N senders ─load─▶ node
//!                                                   │ answers
//!   reject file, state file, progress ◀── in order ─┘
//! ```
//!
//! Owns: the pipeline, the reject file, the resume state. Must not: know
//! the node's internals (it speaks the protocol through `driver`).

pub mod convert;
mod read;
pub mod records;
mod state;

use crate::driver::{Client, ClientError, SharedLoad};
use crate::proto::{ErrorCode, LoadRequest, Loaded};
use anyhow::{bail, Context};
use convert::{Encoding, Formats, Kind};
use read::{read_chunks, Chunk, RawRecord, RecordReader, Reject};
use records::Format;
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use state::State;

/// Records per chunk unless told.
pub const CHUNK_ROWS_DEFAULT: usize = 20_000;
/// The most records one chunk may have (the protocol's bound).
pub const CHUNK_ROWS_MAX: usize = crate::proto::LOAD_ROWS_MAX;
/// Chunks in flight unless told.
pub const PARALLEL_DEFAULT: usize = 4;
/// The most chunks in flight.
pub const PARALLEL_MAX: usize = 64;
/// Sends of one chunk the node answered `overloaded`, `unavailable` or
/// `not_leader` (nothing applied, or applied under its key) before the
/// load stops.
const SEND_TRIES_MAX: u32 = 10;
/// The first wait before a chunk is sent again; doubled each time, up to
/// `RETRY_WAIT_MAX`.
const RETRY_WAIT_FIRST: Duration = Duration::from_millis(50);
const RETRY_WAIT_MAX: Duration = Duration::from_secs(2);
/// Rejected lines printed on the terminal (all go to the reject file).
const REJECTS_SHOWN_MAX: usize = 10;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What to load and how to read it.
#[derive(Debug, Clone)]
pub struct Options {
    pub table: String,
    /// The columns each record gives, in order (None: the header's names
    /// with a header, else every column of the table in table order).
    pub columns: Option<Vec<String>>,
    /// The first record names the columns.
    pub header: bool,
    pub format: Format,
    pub encoding: Encoding,
    pub formats: Formats,
    pub chunk_rows: usize,
    pub parallel: usize,
    /// Rows that may be rejected (by the loader or the node) in all; one
    /// more stops the load.
    pub max_errors: u64,
    pub reject_file: Option<PathBuf>,
    /// Redraw a progress line on standard error.
    pub progress: bool,
}

/// Where the records come from.
#[derive(Debug, Clone)]
pub enum Input {
    Stdin,
    /// A file; its resume state is kept in `state` while the load runs.
    File {
        path: PathBuf,
        state: PathBuf,
    },
}

/// How a load ended.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Records read (data lines, not the header).
    pub read: u64,
    pub loaded: u64,
    pub rejected: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Chunks the node had applied already (a resumed load): their rows
    /// are counted in `loaded` as it first answered.
    pub again: u64,
    /// Why the load stopped before the end (None: it reached the end).
    pub stopped: Option<String>,
    /// Where the resume state is, when the load can be resumed.
    pub resume: Option<PathBuf>,
}

/// A chunk's answer.
enum Answer {
    Loaded(Loaded),
    /// Applied before under its key, its answer not kept.
    AppliedBefore,
}

/// The columns of `table` as the catalog gives them: name and kind.
async fn table_columns(client: &Client, table: &str) -> anyhow::Result<Vec<(String, Kind)>> {
    let cat = client.catalog().await.context("reading the catalog")?;
    let t = cat
        .tables
        .iter()
        .find(|t| t.name == table)
        .ok_or_else(|| anyhow::anyhow!("the tenant has no table named {table:?}"))?;
    Ok(t.columns
        .iter()
        .map(|(n, ty, _)| (n.clone(), Kind::of(ty)))
        .collect())
}

/// Runs a load to its end, or until it must stop (an error the node gave,
/// more rejected rows than `max_errors`, `interrupt` set): what it did,
/// and where to resume.
pub async fn load(
    client: &Client,
    input: &Input,
    opts: &Options,
    resume: bool,
    interrupt: Arc<AtomicBool>,
) -> anyhow::Result<Summary> {
    if opts.chunk_rows == 0 || opts.chunk_rows > CHUNK_ROWS_MAX {
        bail!("--chunk-rows must be 1 to {CHUNK_ROWS_MAX}");
    }
    if opts.parallel == 0 || opts.parallel > PARALLEL_MAX {
        bail!("--parallel must be 1 to {PARALLEL_MAX}");
    }
    let table_cols = table_columns(client, &opts.table).await?;
    let started = Instant::now();
    // Where to start, and the columns: fresh, or from the resume state.
    let (mut st, mut source): (Option<State>, Box<dyn Read + Send>) = match input {
        Input::Stdin => {
            if resume {
                bail!("--resume needs a file: standard input cannot be read again");
            }
            (None, Box::new(std::io::stdin()))
        }
        Input::File { path, state } => {
            let mut f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let st = if resume {
                let st = State::read(state)?;
                st.check(path, &mut f, opts)?;
                f.seek(std::io::SeekFrom::Start(st.offset))
                    .with_context(|| format!("seeking in {}", path.display()))?;
                st
            } else {
                if state.exists() {
                    bail!(
                        "{} holds the state of an earlier load of this file that did not \
                         finish: continue it with --resume, or delete the file to load \
                         from the start",
                        state.display()
                    );
                }
                State::fresh(state, &mut f, opts)?
            };
            (Some(st), Box::new(f))
        }
    };
    // The header is read before anything is sent (a resumed load's is in
    // its state).
    let mut reader = RecordReader::new(opts.format.clone());
    let mut line = st.as_ref().map_or(1, |s| s.line);
    let mut offset = st.as_ref().map_or(0, |s| s.offset);
    let columns: Vec<String> = match st.as_ref().and_then(|s| s.columns.clone()) {
        Some(c) => c,
        None => {
            let header = if opts.header {
                let rec = reader
                    .next(&mut source)?
                    .ok_or_else(|| anyhow::anyhow!("the input is empty: no header line"))?;
                let (rec, raw) = match rec {
                    RawRecord::Read(rec, raw) => (rec, raw),
                    RawRecord::Bad(e, _) => anyhow::bail!("line 1 (the header): {e}"),
                };
                offset += raw.len() as u64;
                line += rec.newlines;
                let names: Result<Vec<String>, String> = rec
                    .fields()
                    .map(|f| opts.encoding.decode(f.unwrap_or_default()).map(Into::into))
                    .collect();
                Some(names.map_err(|e| anyhow::anyhow!("line 1 (the header): {e}"))?)
            } else {
                None
            };
            match (&opts.columns, header) {
                (Some(c), _) => c.clone(),
                (None, Some(h)) => h
                    .into_iter()
                    .map(|n| n.trim_start_matches('\u{feff}').trim().to_string())
                    .collect(),
                (None, None) => table_cols.iter().map(|(n, _)| n.clone()).collect(),
            }
        }
    };
    let kinds: Vec<Kind> = columns
        .iter()
        .map(|c| {
            table_cols
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, k)| *k)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "table {:?} has no column {c:?} (its columns: {})",
                        opts.table,
                        table_cols
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        })
        .collect::<anyhow::Result<_>>()?;
    if let Some(st) = &mut st {
        st.columns = Some(columns.clone());
        if !resume {
            st.offset = offset;
            st.line = line;
        }
        st.write()?;
    }
    let mut rejects_out = match &opts.reject_file {
        Some(p) => Some(RejectFile::open(
            p,
            st.as_ref().filter(|_| resume).map(|s| s.reject_bytes),
        )?),
        None => None,
    };

    let mut summary = Summary {
        loaded: st.as_ref().map_or(0, |s| s.loaded),
        rejected: st.as_ref().map_or(0, |s| s.rejected),
        read: st.as_ref().map_or(0, |s| s.read),
        bytes: offset,
        ..Summary::default()
    };
    let first_chunk = st.as_ref().map_or(0, |s| s.next_chunk);
    let load_id = match &st {
        Some(s) => s.load_id.clone(),
        None => State::new_id()?,
    };

    // The reader thread: chunks into a bounded channel.
    let (chunk_tx, chunk_rx) = tokio::sync::mpsc::channel::<Chunk>(opts.parallel);
    let stop_reading = Arc::new(AtomicBool::new(false));
    // Rows rejected so far, acknowledged in order: each chunk is sent with
    // what is left of --max-errors.
    let rejected_so_far = Arc::new(std::sync::atomic::AtomicU64::new(summary.rejected));
    let reader_thread = {
        let stop = stop_reading.clone();
        let opts = opts.clone();
        let kinds = kinds.clone();
        let columns = columns.clone();
        std::thread::Builder::new()
            .name("ohm-load-reader".into())
            .spawn(move || {
                read_chunks(
                    reader,
                    source,
                    (&opts, &columns, &kinds),
                    (first_chunk, offset, line),
                    chunk_tx,
                    &stop,
                )
            })
            .context("starting the reader thread")?
    };
    // Senders: each takes the next chunk and sends it until answered.
    let chunk_rx = Arc::new(tokio::sync::Mutex::new(chunk_rx));
    let (done_tx, mut done_rx) =
        tokio::sync::mpsc::channel::<(Chunk, Result<Answer, ClientError>)>(opts.parallel);
    let mut senders = Vec::new();
    for _ in 0..opts.parallel {
        let (rx, tx) = (chunk_rx.clone(), done_tx.clone());
        let halt = stop_reading.clone();
        let rejected_so_far = rejected_so_far.clone();
        let client = client.clone();
        let (table, columns, id) = (opts.table.clone(), columns.clone(), load_id.clone());
        let max_errors = opts.max_errors;
        senders.push(tokio::spawn(async move {
            loop {
                let Some(mut chunk) = rx.lock().await.recv().await else {
                    return;
                };
                if halt.load(Ordering::Relaxed) {
                    // The load stops: what was read but not sent is sent
                    // by a resumed load.
                    return;
                }
                let rows = std::mem::take(&mut chunk.rows);
                let req = LoadRequest {
                    table: table.clone(),
                    columns: columns.clone(),
                    rows,
                    key: Some(format!("ohm-load:{id}:{}", chunk.index)),
                    // Chunks in flight share what is left; the total is
                    // checked again as answers come in order.
                    max_errors: max_errors.saturating_sub(rejected_so_far.load(Ordering::Relaxed)),
                    timeout_ms: None,
                };
                let answer = send(&client, req).await;
                if tx.send((chunk, answer)).await.is_err() {
                    return;
                }
            }
        }));
    }
    drop(done_tx);

    // Answers, taken in chunk order.
    let mut waiting: BTreeMap<u64, (Chunk, Result<Answer, ClientError>)> = BTreeMap::new();
    let mut next = first_chunk;
    let mut shown = 0usize;
    let mut last_drawn = Instant::now();
    let total_bytes = match input {
        Input::File { path, .. } => std::fs::metadata(path).map(|m| m.len()).ok(),
        Input::Stdin => None,
    };
    let bytes_at_start = summary.bytes;
    let mut stopped: Option<String> = None;
    loop {
        if interrupt.load(Ordering::Relaxed) && stopped.is_none() {
            stopped = Some("interrupted".into());
            stop_reading.store(true, Ordering::Relaxed);
        }
        let got = tokio::select! {
            got = done_rx.recv() => got,
            () = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        let Some((chunk, answer)) = got else { break };
        waiting.insert(chunk.index, (chunk, answer));
        while let Some((chunk, answer)) = waiting.remove(&next) {
            if stopped.is_some() && answer.is_err() {
                // After a stop, answers are taken while they say applied.
                next = u64::MAX;
                break;
            }
            let loaded = match answer {
                Ok(Answer::Loaded(l)) => {
                    if l.again {
                        summary.again += 1;
                    }
                    l
                }
                Ok(Answer::AppliedBefore) => {
                    summary.again += 1;
                    Loaded {
                        loaded: chunk.sent.len() as u64,
                        ..Loaded::default()
                    }
                }
                Err(e) => {
                    stopped = Some(format!(
                        "chunk {} (from line {}) was not loaded: {}",
                        chunk.index,
                        chunk.sent.first_line().unwrap_or(0),
                        e
                    ));
                    stop_reading.store(true, Ordering::Relaxed);
                    next = u64::MAX;
                    break;
                }
            };
            let mut rejects = chunk.rejects;
            for r in &loaded.rejected {
                // The node numbers rows from 1; a number out of range is
                // still a rejected row, without its line.
                let sent = (r.row as usize)
                    .checked_sub(1)
                    .and_then(|i| chunk.sent.get(i));
                let (line, raw) = sent.unwrap_or((0, &[]));
                rejects.push(Reject {
                    line,
                    column: r.column.clone(),
                    why: r.message.clone(),
                    raw: raw.to_vec(),
                });
            }
            rejects.sort_by_key(|r| r.line);
            for r in &rejects {
                if shown < REJECTS_SHOWN_MAX {
                    shown += 1;
                    eprintln!(
                        "{}line {}{}: {}",
                        if opts.progress { "\r\x1b[K" } else { "" },
                        r.line,
                        r.column
                            .as_ref()
                            .map_or(String::new(), |c| format!(", column {c:?}")),
                        r.why
                    );
                }
                if let Some(out) = &mut rejects_out {
                    out.write(r)?;
                }
            }
            summary.read += chunk.records;
            summary.loaded += loaded.loaded;
            summary.rejected += rejects.len() as u64;
            rejected_so_far.store(summary.rejected, Ordering::Relaxed);
            summary.bytes += chunk.bytes;
            if let Some(st) = &mut st {
                st.next_chunk = chunk.index + 1;
                (st.offset, st.line) = chunk.end;
                (st.read, st.loaded, st.rejected) =
                    (summary.read, summary.loaded, summary.rejected);
                st.reject_bytes = rejects_out.as_ref().map_or(0, |r| r.bytes);
                if let Some(out) = &mut rejects_out {
                    out.flush()?;
                }
                st.write()?;
            }
            next += 1;
            if summary.rejected > opts.max_errors && stopped.is_none() {
                stopped = Some(format!(
                    "{} rows were rejected, more than --max-errors {}",
                    summary.rejected, opts.max_errors
                ));
                stop_reading.store(true, Ordering::Relaxed);
            }
        }
        if opts.progress && last_drawn.elapsed() >= PROGRESS_EVERY {
            last_drawn = Instant::now();
            draw_progress(&summary, started, bytes_at_start, total_bytes);
        }
    }
    for s in senders {
        let _ = s.await;
    }
    let read_result = reader_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
    if opts.progress {
        eprint!("\r\x1b[K");
    }
    if let Err(e) = read_result {
        stopped.get_or_insert(format!("{e:#}"));
    }
    summary.elapsed = started.elapsed();
    summary.stopped = stopped;
    if let Some(out) = &mut rejects_out {
        out.flush()?;
    }
    if let (Some(st), Input::File { .. }) = (&st, input) {
        if summary.stopped.is_none() {
            st.remove()?;
        } else {
            summary.resume = Some(st.path().to_path_buf());
        }
    }
    Ok(summary)
}

/// Sends one chunk until it is answered, sending it again (with its key)
/// while the node says it is busy or passing leadership on.
async fn send(client: &Client, req: LoadRequest) -> Result<Answer, ClientError> {
    // Kept for a retry without a copy of the rows for each try.
    let req = SharedLoad::new(req);
    let mut wait = RETRY_WAIT_FIRST;
    let mut tries = 0;
    loop {
        tries += 1;
        match client.load_shared(&req).await {
            Ok(l) => return Ok(Answer::Loaded(l)),
            Err(ClientError::Server(e)) if e.code == ErrorCode::AlreadyApplied => {
                return Ok(Answer::AppliedBefore)
            }
            Err(ClientError::Server(e))
                if tries < SEND_TRIES_MAX
                    && matches!(
                        e.code,
                        ErrorCode::Overloaded | ErrorCode::Unavailable | ErrorCode::NotLeader
                    ) =>
            {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_WAIT_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

fn draw_progress(s: &Summary, started: Instant, bytes_at_start: u64, total: Option<u64>) {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = (s.bytes - bytes_at_start) as f64 / secs;
    let eta = total
        .filter(|_| rate > 0.0)
        .map(|t| format!(", ETA {:.0} s", t.saturating_sub(s.bytes) as f64 / rate))
        .unwrap_or_default();
    let pct = total
        .filter(|t| *t > 0)
        .map(|t| format!(" ({:.0}%)", 100.0 * s.bytes as f64 / t as f64))
        .unwrap_or_default();
    eprint!(
        "\r\x1b[K{} rows, {:.1} MB{pct}, {:.0} rows/s, {} rejected{eta}",
        s.loaded,
        s.bytes as f64 / 1e6,
        s.loaded as f64 / secs,
        s.rejected
    );
    let _ = std::io::stderr().flush();
}

/// The reject file: CSV with a header, `line,column,reason,record`, the
/// record as it was read; a resumed load cuts it back to what the
/// acknowledged chunks wrote.
struct RejectFile {
    out: std::io::BufWriter<std::fs::File>,
    bytes: u64,
}

impl RejectFile {
    fn open(path: &std::path::Path, resume_at: Option<u64>) -> anyhow::Result<RejectFile> {
        let what = || format!("opening the reject file {}", path.display());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(resume_at.is_none())
            .open(path)
            .with_context(what)?;
        let bytes = match resume_at {
            Some(n) => {
                f.set_len(n).with_context(what)?;
                f.seek(std::io::SeekFrom::Start(n)).with_context(what)?;
                n
            }
            None => 0,
        };
        let mut r = RejectFile {
            out: std::io::BufWriter::new(f),
            bytes,
        };
        if bytes == 0 {
            r.put(b"line,column,reason,record\n")?;
        }
        Ok(r)
    }

    fn put(&mut self, b: &[u8]) -> anyhow::Result<()> {
        self.out.write_all(b).context("writing the reject file")?;
        self.bytes += b.len() as u64;
        Ok(())
    }

    fn write(&mut self, r: &Reject) -> anyhow::Result<()> {
        let q = |b: &[u8]| {
            let mut s = Vec::with_capacity(b.len() + 2);
            s.push(b'"');
            for &c in b {
                if c == b'"' {
                    s.push(b'"');
                }
                s.push(c);
            }
            s.push(b'"');
            s
        };
        let mut raw = r.raw.as_slice();
        while let Some(rest) = raw.strip_suffix(b"\n").or_else(|| raw.strip_suffix(b"\r")) {
            raw = rest;
        }
        let mut line = format!("{},", r.line).into_bytes();
        line.extend(q(r.column.as_deref().unwrap_or("").as_bytes()));
        line.push(b',');
        line.extend(q(r.why.as_bytes()));
        line.push(b',');
        line.extend(q(raw));
        line.push(b'\n');
        self.put(&line)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush().context("writing the reject file")?;
        self.out
            .get_ref()
            .sync_data()
            .context("syncing the reject file")
    }
}
