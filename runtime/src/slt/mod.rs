//! The SQL conformance runner: sqllogictest files, judged the way SQLite's
//! C runner judges them.
//!
//! Owns: running records against an `SltDb`, conditions and labels, the
//! expected-failures list, and the per-file and total counts. The
//! `sqllogictest` crate is used only to parse; formatting, sorting and
//! hashing follow the C runner (see `format`), because the corpus's answers
//! were written by it. Must not: know how an engine works inside.
//!
//! ```text
//!   file --preprocess--> crate parser --> records --run_script--> Counts
//!                                              |  SltDb::run(sql)      + Failure per failed record
//!                                              v
//!                                  format::{format_value, sort, hash}
//! ```

pub mod expected;
pub mod format;
pub mod sqlite;

use crate::sql::{Engine, QueryResult};
use crate::types::Value;
use expected::ExpectedFailures;
use format::Sort;
use sqllogictest::{
    ColumnType, Condition, Control, QueryExpect, Record, ResultMode, SortMode, StatementExpect,
};
use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The labels a run answers to when none are given.
pub const DEFAULT_LABEL: &str = "postgresql";
/// How many actual values a failure report shows.
const SHOWN_VALUES_MAX: usize = 40;
/// How deep directory recursion goes when collecting `*.test` files.
const DIR_DEPTH_MAX: usize = 32;

/// What one SQL text produced.
#[derive(Debug, Clone, PartialEq)]
pub enum SltOutput {
    /// Completed without a row count (DDL, transaction control).
    Done,
    /// INSERT / UPDATE / DELETE: rows affected.
    Affected(u64),
    Rows {
        columns: usize,
        rows: Vec<Vec<Value>>,
    },
}

/// A database the runner can drive. An `Err` is a SQL error, with its message.
pub trait SltDb {
    fn run(&mut self, sql: &str) -> Result<SltOutput, String>;
}

impl SltDb for Engine {
    fn run(&mut self, sql: &str) -> Result<SltOutput, String> {
        match self.execute(sql).map_err(|e| e.to_string())? {
            QueryResult::Rows(set) => Ok(SltOutput::Rows {
                columns: set.columns.len(),
                rows: set.rows,
            }),
            QueryResult::Affected(n) => Ok(SltOutput::Affected(n)),
            QueryResult::Done(_) => Ok(SltOutput::Done),
        }
    }
}

/// A query's declared type letter, kept as written (`I`, `R`, `T`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Letter(char);

impl ColumnType for Letter {
    fn from_char(value: char) -> Option<Letter> {
        Some(Letter(value))
    }
    fn to_char(&self) -> char {
        self.0
    }
}

/// What a run answers to, and which failures are known.
#[derive(Debug, Clone)]
pub struct Options {
    /// `skipif L` skips when L is one of these; `onlyif L` runs only then.
    pub labels: Vec<String>,
    pub expected: ExpectedFailures,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            labels: vec![DEFAULT_LABEL.to_string()],
            expected: ExpectedFailures::none(),
        }
    }
}

/// Record counts for a file or a whole run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Failures listed in the expected-failures file.
    pub expected_failures: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.expected_failures += other.expected_failures;
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )?;
        if self.expected_failures > 0 {
            write!(f, ", {} expected-failures", self.expected_failures)?;
        }
        Ok(())
    }
}

/// One failed record.
#[derive(Debug, Clone)]
pub struct Failure {
    pub file: String,
    pub line: u32,
    pub sql: String,
    /// What was expected and what happened.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "FAIL {}:{}", self.file, self.line)?;
        for line in self.sql.lines() {
            writeln!(f, "    {line}")?;
        }
        for line in self.detail.lines() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// The crate's parser rejects a `# comment` after `skipif`/`onlyif`, which
/// the corpus uses; drop it, and drop the CR of CRLF line ends.
fn preprocess(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let is_condition = line.starts_with("skipif") || line.starts_with("onlyif");
        match line.find('#') {
            Some(hash) if is_condition => out.push_str(line[..hash].trim_end()),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn skips(conditions: &[Condition], labels: &[String]) -> bool {
    let has = |label: &str| labels.iter().any(|l| l == label);
    conditions.iter().any(|c| match c {
        Condition::OnlyIf { label } => !has(label),
        Condition::SkipIf { label } => has(label),
    })
}

/// Per-file state carried between records.
struct FileState {
    hash_threshold: usize,
    sort: Sort,
    result_mode: ResultMode,
}

/// Runs one script against `db`; `name` is used in failure reports and to
/// match the expected-failures list. Every failure goes to `on_failure`.
pub fn run_script(
    text: &str,
    name: &str,
    db: &mut dyn SltDb,
    opts: &Options,
    on_failure: &mut dyn FnMut(Failure),
) -> Counts {
    let mut counts = Counts::default();
    let records = match sqllogictest::parse_with_name::<Letter>(&preprocess(text), name) {
        Ok(records) => records,
        Err(e) => {
            counts.failed += 1;
            let line = e.location().line();
            on_failure(Failure {
                file: name.to_string(),
                line,
                sql: String::new(),
                detail: e.to_string(),
            });
            return counts;
        }
    };
    let mut state = FileState {
        hash_threshold: 0,
        sort: Sort::No,
        result_mode: ResultMode::ValueWise,
    };
    // Conditions apply to the next statement, query or halt in the same
    // block; the crate attaches them only to statements and queries.
    let mut pending: Vec<Condition> = Vec::new();
    for record in records {
        let (line, sql, outcome) = match record {
            Record::Condition(c) => {
                pending.push(c);
                continue;
            }
            Record::Newline => {
                pending.clear();
                continue;
            }
            Record::Halt { .. } => {
                if skips(&std::mem::take(&mut pending), &opts.labels) {
                    continue;
                }
                break;
            }
            Record::HashThreshold { threshold, .. } => {
                state.hash_threshold = usize::try_from(threshold).unwrap_or(usize::MAX);
                continue;
            }
            Record::Control(Control::SortMode(m)) => {
                state.sort = sort_of(Some(m));
                continue;
            }
            Record::Control(Control::ResultMode(m)) => {
                state.result_mode = m;
                continue;
            }
            Record::Statement {
                loc, sql, expected, ..
            } => {
                if skips(&std::mem::take(&mut pending), &opts.labels) {
                    counts.skipped += 1;
                    continue;
                }
                let outcome = check_statement(run_guarded(db, &sql), &expected);
                (loc.line(), sql, outcome)
            }
            Record::Query {
                loc, sql, expected, ..
            } => {
                if skips(&std::mem::take(&mut pending), &opts.labels) {
                    counts.skipped += 1;
                    continue;
                }
                let outcome = check_query(run_guarded(db, &sql), &expected, &state);
                (loc.line(), sql, outcome)
            }
            Record::Include { loc, .. } | Record::System { loc, .. } | Record::Let { loc, .. } => {
                let detail = "unsupported record kind (include/system/let)".to_string();
                (loc.line(), String::new(), Err(detail))
            }
            // Comments, sleeps, subtests and connection switches change nothing here.
            _ => continue,
        };
        let listed = opts.expected.reason(name, line);
        let failure = |detail: String| Failure {
            file: name.to_string(),
            line,
            sql: sql.clone(),
            detail,
        };
        match (outcome, listed) {
            (Ok(()), None) => counts.passed += 1,
            (Ok(()), Some(reason)) => {
                counts.failed += 1;
                on_failure(failure(format!(
                    "unexpectedly passed; remove it from the expected-failures list (listed as: {reason})"
                )));
            }
            (Err(_), Some(_)) => counts.expected_failures += 1,
            (Err(detail), None) => {
                counts.failed += 1;
                on_failure(failure(detail));
            }
        }
    }
    counts
}

fn sort_of(mode: Option<SortMode>) -> Sort {
    match mode {
        None | Some(SortMode::NoSort) => Sort::No,
        Some(SortMode::RowSort) => Sort::Rows,
        Some(SortMode::ValueSort) => Sort::Values,
    }
}

thread_local! {
    /// Where the last panic on this thread happened, filled by the hook that
    /// `run_suite` installs.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `sql`, turning a panic inside the engine into an error: the runner
/// must survive a broken engine and keep counting.
fn run_guarded(db: &mut dyn SltDb, sql: &str) -> Result<SltOutput, String> {
    match panic::catch_unwind(AssertUnwindSafe(|| db.run(sql))) {
        Ok(result) => result,
        Err(payload) => Err(panic_message(payload.as_ref())),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_string());
    let at = PANIC_LOCATION
        .with(|l| l.borrow_mut().take())
        .map(|l| format!(" at {l}"))
        .unwrap_or_default();
    format!("PANIC: {msg}{at}")
}

fn check_statement(
    result: Result<SltOutput, String>,
    expected: &StatementExpect,
) -> Result<(), String> {
    match (expected, result) {
        (StatementExpect::Ok, Ok(_)) => Ok(()),
        (StatementExpect::Ok | StatementExpect::Count(_), Err(e)) => {
            Err(format!("statement failed: {e}"))
        }
        (StatementExpect::Count(n), Ok(SltOutput::Affected(m))) if *n == m => Ok(()),
        (StatementExpect::Count(n), Ok(other)) => {
            Err(format!("expected {n} rows affected, got {other:?}"))
        }
        (StatementExpect::Error(_), Ok(_)) => {
            Err("statement succeeded, but an error was expected".to_string())
        }
        (StatementExpect::Error(want), Err(e)) if want.is_match(&e, None) => Ok(()),
        (StatementExpect::Error(want), Err(e)) => Err(format!("expected error {want}, got: {e}")),
    }
}

fn check_query(
    result: Result<SltOutput, String>,
    expected: &QueryExpect<Letter>,
    state: &FileState,
) -> Result<(), String> {
    let (types, sort_mode, result_mode, results) = match expected {
        QueryExpect::Error(want) => {
            return match result {
                Ok(_) => Err("query succeeded, but an error was expected".to_string()),
                Err(e) if want.is_match(&e, None) => Ok(()),
                Err(e) => Err(format!("expected error {want}, got: {e}")),
            };
        }
        QueryExpect::Results {
            types,
            sort_mode,
            result_mode,
            results,
            ..
        } => (types, sort_mode, result_mode, results),
    };
    let (columns, rows) = match result.map_err(|e| format!("query failed: {e}"))? {
        SltOutput::Rows { columns, rows } => (columns, rows),
        other => return Err(format!("expected rows, got {other:?}")),
    };
    let letters: String = types.iter().map(|t| t.0).collect();
    if columns != types.len() {
        return Err(format!(
            "expected {} columns (types {letters}), got {columns}",
            types.len()
        ));
    }
    let mut formatted = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.len() != columns {
            return Err(format!(
                "a row has {} values but the result has {columns} columns",
                row.len()
            ));
        }
        let mut out = Vec::with_capacity(columns);
        for (value, t) in row.iter().zip(types) {
            out.push(
                format::format_value(value, t.0)
                    .ok_or_else(|| format!("unknown type letter {:?}", t.0))?,
            );
        }
        formatted.push(out);
    }
    let sort = if sort_mode.is_some() {
        sort_of(*sort_mode)
    } else {
        state.sort
    };
    let actual = format::sort_and_flatten(formatted, sort);
    compare(
        &actual,
        results,
        result_mode.unwrap_or(state.result_mode),
        state.hash_threshold,
    )
}

fn compare(
    actual: &[String],
    expected: &[String],
    mode: ResultMode,
    hash_threshold: usize,
) -> Result<(), String> {
    if let [line] = expected {
        if let Some((n, hash)) = format::parse_hash_line(line) {
            let got = format::hash_values(actual);
            if n == actual.len() && got == hash {
                return Ok(());
            }
            return Err(format!(
                "expected: {line}\nactual:   {} values hashing to {got}\n{}",
                actual.len(),
                show_values("actual values", actual)
            ));
        }
    }
    let expected: Vec<&str> = match mode {
        ResultMode::ValueWise => expected.iter().map(String::as_str).collect(),
        ResultMode::RowWise => expected.iter().flat_map(|l| l.split_whitespace()).collect(),
    };
    if expected
        .iter()
        .copied()
        .eq(actual.iter().map(String::as_str))
    {
        return Ok(());
    }
    let mut detail = show_values("expected", &expected);
    if hash_threshold > 0 && actual.len() > hash_threshold {
        let hash = format::hash_values(actual);
        detail.push_str(&format!(
            "actual: {} values hashing to {hash}\n",
            actual.len()
        ));
    }
    detail.push_str(&show_values("actual", actual));
    Err(detail)
}

fn show_values<S: AsRef<str>>(title: &str, values: &[S]) -> String {
    let mut out = format!("{title} ({} values):\n", values.len());
    for v in values.iter().take(SHOWN_VALUES_MAX) {
        out.push_str("  ");
        out.push_str(v.as_ref());
        out.push('\n');
    }
    if values.len() > SHOWN_VALUES_MAX {
        out.push_str(&format!("  ... {} more\n", values.len() - SHOWN_VALUES_MAX));
    }
    out
}

/// Expands directories (recursively, `*.test` files, sorted); files are
/// kept as given.
pub fn collect_test_files(paths: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, 0, &mut found)?;
            found.sort();
            out.extend(found);
        } else if path.exists() {
            out.push(path.clone());
        } else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file or directory", path.display()),
            ));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if depth > DIR_DEPTH_MAX {
        return Err(io::Error::other(format!(
            "{}: directories nested deeper than {DIR_DEPTH_MAX}",
            dir.display()
        )));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
            .path();
        if path.is_dir() {
            walk(&path, depth + 1, out)?;
        } else if path.extension().is_some_and(|e| e == "test") {
            out.push(path);
        }
    }
    Ok(())
}

/// Makes a fresh database for each file.
pub type DbFactory<'a> = dyn FnMut() -> Result<Box<dyn SltDb>, String> + 'a;

/// Runs every file against a fresh database, writing `FILE: counts` per
/// file, up to `fail_detail` failure reports, and `slt: counts` at the end.
pub fn run_suite(
    files: &[PathBuf],
    make_db: &mut DbFactory<'_>,
    opts: &Options,
    fail_detail: usize,
    out: &mut dyn Write,
) -> io::Result<Counts> {
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        PANIC_LOCATION.with(|slot| *slot.borrow_mut() = at);
    }));
    let result = run_files(files, make_db, opts, fail_detail, out);
    panic::set_hook(previous_hook);
    result
}

fn run_files(
    files: &[PathBuf],
    make_db: &mut DbFactory<'_>,
    opts: &Options,
    fail_detail: usize,
    out: &mut dyn Write,
) -> io::Result<Counts> {
    let mut total = Counts::default();
    let mut shown = 0usize;
    for path in files {
        let name = path.display().to_string();
        let mut failures = Vec::new();
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"));
        let db = panic::catch_unwind(AssertUnwindSafe(&mut *make_db)).unwrap_or_else(|payload| {
            Err(format!(
                "creating the database: {}",
                panic_message(payload.as_ref())
            ))
        });
        let counts = match (text, db) {
            (Ok(text), Ok(mut db)) => run_script(&text, &name, db.as_mut(), opts, &mut |f| {
                if shown < fail_detail {
                    shown += 1;
                    failures.push(f);
                }
            }),
            (Err(e), _) | (_, Err(e)) => {
                // Always shown: it stands for a whole file.
                shown += 1;
                failures.push(Failure {
                    file: name.clone(),
                    line: 0,
                    sql: String::new(),
                    detail: e,
                });
                Counts {
                    failed: 1,
                    ..Counts::default()
                }
            }
        };
        for f in &failures {
            write!(out, "{f}")?;
        }
        writeln!(out, "{name}: {counts}")?;
        total.add(counts);
    }
    if total.failed as usize > shown && fail_detail > 0 {
        writeln!(
            out,
            "({} more failures not shown)",
            total.failed as usize - shown
        )?;
    }
    writeln!(out, "slt: {total}")?;
    Ok(total)
}

#[cfg(test)]
mod tests;
