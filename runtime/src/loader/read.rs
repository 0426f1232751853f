//! Reading a load's input: records cut from the bytes read
//! (`RecordReader`, one `Record` refilled for each), converted for their
//! columns and grouped into chunks on the reader thread (`read_chunks`),
//! each keeping its rows' raw lines for the reject file (`Sent`).
//!
//! Owns: the read buffer and the chunks until they are handed on. Must
//! not: talk to the node (the senders do).

use super::convert::{self, Kind};
use super::records::{self, Format, Record};
use super::Options;
use crate::types::Value;
use anyhow::Context;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes of input one chunk may hold: a chunk closes at this or at
/// `chunk_rows`, whichever comes first, so wide rows stay well inside a
/// frame (`proto::FRAME_BYTES_MAX`, 40 MiB).
const CHUNK_BYTES_MAX: u64 = 16 << 20;
/// Bytes read from the input at a time.
const READ_BYTES: usize = 1 << 20;

/// A rejected record: its first line, the column at fault and why, and its
/// bytes as read.
#[derive(Debug, Clone)]
pub(super) struct Reject {
    pub(super) line: u64,
    pub(super) column: Option<String>,
    pub(super) why: String,
    pub(super) raw: Vec<u8>,
}

/// Records read, converted and grouped: one `load` request.
pub(super) struct Chunk {
    pub(super) index: u64,
    pub(super) rows: Vec<Vec<Value>>,
    /// The rows sent, as read (for the reject file, should the node
    /// refuse one).
    pub(super) sent: Sent,
    /// Records the reader refused.
    pub(super) rejects: Vec<Reject>,
    pub(super) records: u64,
    pub(super) bytes: u64,
    /// Where the next chunk starts: byte offset and line number.
    pub(super) end: (u64, u64),
}

/// Each row of a chunk as read: its first line and its bytes, all the
/// rows' bytes in one buffer.
#[derive(Default)]
pub(super) struct Sent {
    /// Each row's first line and where its bytes end in `bytes`.
    pub(super) rows: Vec<(u64, usize)>,
    pub(super) bytes: Vec<u8>,
}

impl Sent {
    pub(super) fn push(&mut self, line: u64, raw: &[u8]) {
        self.bytes.extend_from_slice(raw);
        self.rows.push((line, self.bytes.len()));
    }
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }
    pub(super) fn first_line(&self) -> Option<u64> {
        self.rows.first().map(|r| r.0)
    }
    /// Row `i` (from 0): its first line and its bytes.
    pub(super) fn get(&self, i: usize) -> Option<(u64, &[u8])> {
        let &(line, end) = self.rows.get(i)?;
        let start = i.checked_sub(1).map_or(0, |p| self.rows[p].1);
        Some((line, &self.bytes[start..end]))
    }
}

/// Records from a byte stream, with the bytes each used.
pub(super) struct RecordReader {
    format: Format,
    buf: Vec<u8>,
    at: usize,
    eof: bool,
    /// Filled again for each record.
    rec: Record,
}

/// A record read, with its raw bytes; or why it could not be read, with
/// the bytes skipped.
pub(super) enum RawRecord<'a> {
    Read(&'a Record, &'a [u8]),
    Bad(records::RecordError, &'a [u8]),
}

impl RecordReader {
    pub(super) fn new(format: Format) -> RecordReader {
        RecordReader {
            format,
            buf: Vec::with_capacity(READ_BYTES),
            at: 0,
            eof: false,
            rec: Record::default(),
        }
    }

    /// The next record; None at the end.
    pub(super) fn next(&mut self, src: &mut dyn Read) -> anyhow::Result<Option<RawRecord<'_>>> {
        loop {
            let start = self.at;
            match records::next_record(&self.format, &self.buf[start..], self.eof, &mut self.rec) {
                Ok(true) => {
                    self.at += self.rec.used;
                    let raw = &self.buf[start..self.at];
                    return Ok(Some(RawRecord::Read(&self.rec, raw)));
                }
                Err((e, used)) => {
                    self.at += used;
                    return Ok(Some(RawRecord::Bad(e, &self.buf[start..self.at])));
                }
                Ok(false) if self.eof => return Ok(None),
                Ok(false) => {
                    self.buf.drain(..self.at);
                    self.at = 0;
                    let len = self.buf.len();
                    self.buf.resize(len + READ_BYTES, 0);
                    let n = src
                        .read(&mut self.buf[len..])
                        .context("reading the input")?;
                    self.buf.truncate(len + n);
                    self.eof = n == 0;
                }
            }
        }
    }
}

/// The reader thread: records into chunks until the input ends or `stop`.
pub(super) fn read_chunks(
    mut reader: RecordReader,
    mut src: Box<dyn Read + Send>,
    (opts, columns, kinds): (&Options, &[String], &[Kind]),
    (mut index, mut offset, mut line): (u64, u64, u64),
    out: tokio::sync::mpsc::Sender<Chunk>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    loop {
        let mut chunk = Chunk {
            index,
            rows: Vec::with_capacity(opts.chunk_rows),
            sent: Sent {
                rows: Vec::with_capacity(opts.chunk_rows),
                bytes: Vec::new(),
            },
            rejects: Vec::new(),
            records: 0,
            bytes: 0,
            end: (offset, line),
        };
        while chunk.records < opts.chunk_rows as u64 && chunk.bytes < CHUNK_BYTES_MAX {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let Some(rec) = reader.next(&mut src)? else {
                break;
            };
            chunk.records += 1;
            let at_line = line;
            let (rec, raw) = match rec {
                RawRecord::Read(rec, raw) => (rec, raw),
                RawRecord::Bad(e, raw) => {
                    line += raw.iter().filter(|&&b| b == b'\n').count() as u64;
                    chunk.bytes += raw.len() as u64;
                    chunk.rejects.push(Reject {
                        line: at_line,
                        column: None,
                        why: e.to_string(),
                        raw: raw.to_vec(),
                    });
                    continue;
                }
            };
            line += rec.newlines;
            chunk.bytes += raw.len() as u64;
            match row_of(rec, columns, kinds, opts) {
                Ok(row) => {
                    chunk.rows.push(row);
                    chunk.sent.push(at_line, raw);
                }
                Err((column, why)) => chunk.rejects.push(Reject {
                    line: at_line,
                    column,
                    why,
                    raw: raw.to_vec(),
                }),
            }
        }
        if chunk.records == 0 {
            return Ok(());
        }
        offset += chunk.bytes;
        chunk.end = (offset, line);
        index += 1;
        if out.blocking_send(chunk).is_err() {
            return Ok(());
        }
    }
}

/// A record's values for the load's columns, or the column at fault and why.
fn row_of(
    rec: &Record,
    columns: &[String],
    kinds: &[Kind],
    opts: &Options,
) -> Result<Vec<Value>, (Option<String>, String)> {
    if rec.len() != columns.len() {
        return Err((
            None,
            format!(
                "{} fields; the load gives {} columns ({})",
                rec.len(),
                columns.len(),
                columns.join(", ")
            ),
        ));
    }
    let mut row = Vec::with_capacity(columns.len());
    for ((f, kind), name) in rec.fields().zip(kinds).zip(columns) {
        let v = match f {
            None => Value::Null,
            Some(bytes) => opts
                .encoding
                .decode(bytes)
                .and_then(|text| convert::convert(*kind, &text, &opts.formats))
                .map_err(|why| (Some(name.clone()), why))?,
        };
        row.push(v);
    }
    Ok(row)
}
