//! Recorded histories read from files: Jepsen's etcd logs (a register) and
//! EDN key-value logs (get / put / append), told apart by their first line.
//!
//! Owns: reading a file within `HISTORY_BYTES_MAX`, detecting its format,
//! pairing each process's invocation with its completion (`Pairing`), and
//! the errors: `ParseError` (a line and what is wrong with it) inside
//! `HistoryError` (which file). Must not: panic or allocate without bound
//! on any input; a history holds at most `HISTORY_OPS_MAX` operations.
//!
//! Both formats log events one per line: an `:invoke`, then later from the
//! same process its completion, Jepsen's way:
//!
//! ```text
//!   :ok    returned                  -> called at the invoke's line, returned at this line
//!   :fail  certainly had no effect   -> a read is kept with an unknown output (it
//!                                       constrains nothing); a write is dropped; a
//!                                       Jepsen :cas is a cas that found another value
//!   :info  may or may not have had   -> unknown: returns at RET_UNKNOWN (Jepsen
//!          an effect (a timeout)        gives the process a new number after it)
//!   never completed                  -> unknown, as :info
//! ```
//!
//! Times are line numbers, so operations are ordered exactly as the log
//! orders their events. Lines from the `:nemesis` process are skipped.

mod edn;
mod jepsen;

use super::{
    check, KvInput, KvModel, KvOutput, Operation, RegisterInput, RegisterModel, RegisterOutput,
    Verdict, RET_UNKNOWN,
};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Largest history file read.
pub const HISTORY_BYTES_MAX: u64 = 64 << 20;
/// Most operations (invocations) a history may hold.
pub const HISTORY_OPS_MAX: usize = 1 << 20;

/// What is wrong with a history's text, and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl ParseError {
    fn new(line: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

/// A history file that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than {HISTORY_BYTES_MAX} bytes, the most a history may be", .path.display())]
    TooLarge { path: PathBuf },
    #[error("{}:{}: {}", .path.display(), .source.line, .source.message)]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
}

/// A parsed history, with the model it is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// A Jepsen etcd log: `RegisterModel`.
    Register(Vec<Operation<RegisterInput, RegisterOutput>>),
    /// An EDN key-value log: `KvModel`.
    Kv(Vec<Operation<KvInput, KvOutput>>),
}

impl History {
    /// Parses either format, chosen by the first line that is not blank:
    /// `INFO ...` is a Jepsen log, `{...` an EDN log.
    pub fn parse(text: &str) -> Result<History, ParseError> {
        let first = text.lines().enumerate().find(|(_, l)| !l.trim().is_empty());
        match first {
            None => Err(ParseError::new(1, "the history is empty")),
            Some((_, l)) if l.trim_start().starts_with('{') => edn::parse(text).map(History::Kv),
            Some((_, l)) if l.trim_start().starts_with("INFO") => {
                jepsen::parse(text).map(History::Register)
            }
            Some((i, _)) => Err(ParseError::new(
                i + 1,
                "neither a Jepsen log line (`INFO jepsen.util - ...`) nor an EDN map (`{:process ...}`)",
            )),
        }
    }

    /// `parse`, for bytes that must be UTF-8.
    pub fn parse_bytes(bytes: &[u8]) -> Result<History, ParseError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => History::parse(text),
            Err(e) => {
                let before = bytes.get(..e.valid_up_to()).unwrap_or_default();
                let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
                Err(ParseError::new(line, "not UTF-8 text"))
            }
        }
    }

    /// Operations in the history.
    pub fn len(&self) -> usize {
        match self {
            History::Register(ops) => ops.len(),
            History::Kv(ops) => ops.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `lincheck::check` with the history's model.
    pub fn check(&self, deadline: Instant) -> Verdict {
        match self {
            History::Register(ops) => check(&RegisterModel, ops, deadline),
            History::Kv(ops) => check(&KvModel, ops, deadline),
        }
    }
}

/// Reads and parses the history file at `path`.
pub fn read_file(path: &Path) -> Result<History, HistoryError> {
    let read_err = |source| HistoryError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(HISTORY_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > HISTORY_BYTES_MAX {
        return Err(HistoryError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    History::parse_bytes(&bytes).map_err(|source| HistoryError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// An event's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invoke,
    Done(Done),
}

/// How an invocation completed (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Ok,
    Fail,
    Info,
}

impl Kind {
    const EXPECTED: &str = "expected :invoke, :ok, :fail or :info";

    /// The kind named by a keyword without its colon.
    fn from_keyword(name: &str) -> Option<Kind> {
        Some(match name {
            "invoke" => Kind::Invoke,
            "ok" => Kind::Done(Done::Ok),
            "fail" => Kind::Done(Done::Fail),
            "info" => Kind::Done(Done::Info),
            _ => return None,
        })
    }
}

/// An invocation waiting for its completion.
struct Pending<I> {
    input: I,
    /// Its line, which is also its call time.
    line: usize,
}

/// Pairs each process's invocation with its completion, into operations.
struct Pairing<I, O> {
    pending: BTreeMap<u64, Pending<I>>,
    ops: Vec<Operation<I, O>>,
    invoked: usize,
    /// `HISTORY_OPS_MAX`, but for tests.
    ops_max: usize,
}

impl<I, O> Pairing<I, O> {
    fn new() -> Self {
        Pairing {
            pending: BTreeMap::new(),
            ops: Vec::new(),
            invoked: 0,
            ops_max: HISTORY_OPS_MAX,
        }
    }

    fn invoke(&mut self, line: usize, process: u64, input: I) -> Result<(), ParseError> {
        if let Some(p) = self.pending.get(&process) {
            return Err(ParseError::new(
                line,
                format!(
                    "process {process} invokes again before its invoke on line {} completed",
                    p.line
                ),
            ));
        }
        if self.invoked >= self.ops_max {
            let message = format!("more than {} operations", self.ops_max);
            return Err(ParseError::new(line, message));
        }
        self.invoked += 1;
        self.pending.insert(process, Pending { input, line });
        Ok(())
    }

    /// The invocation `process` is completing on `line`.
    fn complete(&mut self, line: usize, process: u64) -> Result<Pending<I>, ParseError> {
        self.pending.remove(&process).ok_or_else(|| {
            ParseError::new(
                line,
                format!("process {process} completes an operation it never invoked"),
            )
        })
    }

    /// Records the completed operation; `ret` None for an unknown outcome.
    fn push(&mut self, process: u64, call: Pending<I>, output: O, ret: Option<usize>) {
        let ret = ret.map_or(RET_UNKNOWN, |l| l as u64);
        let op = Operation::new(process, call.input, call.line as u64, output, ret);
        self.ops.push(op);
    }

    /// The operations in call order; those never completed are unknown.
    fn finish(mut self, unknown: impl Fn() -> O) -> Vec<Operation<I, O>> {
        for (process, call) in std::mem::take(&mut self.pending) {
            self.push(process, call, unknown(), None);
        }
        self.ops.sort_by_key(|op| op.call);
        self.ops
    }
}

/// Splits off the first whitespace-separated word of `s`.
fn word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    // `find` gives a char boundary, so the split cannot panic.
    Some(s.split_at(s.find(char::is_whitespace).unwrap_or(s.len())))
}

#[cfg(test)]
mod tests;
