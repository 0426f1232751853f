//! Reading SQL scripts as `ohm sql -f` and piped stdin do, including the
//! plain dumps `pg_dump` writes: statements cut at `;` outside quotes,
//! `$tag$` bodies and comments; psql's backslash commands; `COPY ... FROM
//! stdin` followed by its rows in PostgreSQL's text format; and the
//! statements a dump carries that mean nothing in Ohm (`SET`, `OWNER TO`,
//! `GRANT` ...), which are counted and skipped.
//!
//! Owns: the text → items cut, with the line each item starts on. Must not:
//! talk to a node (the shell sends what this yields). Input is streamed: a
//! script of any size is read a line at a time, and a COPY's rows come out
//! in batches of at most `COPY_BATCH_ROWS` rows or `COPY_BATCH_BYTES`.
//!
//! ```text
//!   BufRead --lines--> Scanner (quotes, comments, $$) --> Item::Statement
//!                         |                          \--> Item::Skipped
//!                         \-- `\cmd` --> Item::Meta     \-> COPY: Item::Rows ...
//! ```

use crate::sql::TABLE_COLUMNS_MAX;
use crate::txn::sqltext::dollar_tag;
use std::collections::BTreeMap;
use std::io::BufRead;

/// Rows of one COPY sent together, at most.
pub const COPY_BATCH_ROWS: usize = 500;
/// Bytes of COPY data sent together, at most (a row longer than this goes
/// alone).
pub const COPY_BATCH_BYTES: usize = 1 << 20;
/// Parameters one request may bind (`$1` .. `$65535`).
const PARAMS_MAX: usize = 65_535;
/// Longest statement read (a longer one is an error naming its line).
pub const STATEMENT_BYTES_MAX: usize = 16 << 20;
/// Longest line read.
const LINE_BYTES_MAX: usize = 16 << 20;

/// One thing a script asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A statement to send, without its `;`.
    Statement { sql: String, line: usize },
    /// A backslash command (`\d`, `\q` ...).
    Meta { text: String, line: usize },
    /// Rows of a `COPY ... FROM stdin`, as `INSERT` text with `$n`
    /// parameters, and the values (None for `\N`) row after row.
    Rows(CopyBatch),
}

/// A batch of COPY rows ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyBatch {
    /// `INSERT INTO t (cols) OVERRIDING SYSTEM VALUE VALUES ($1, ...), (...)`.
    pub sql: String,
    pub values: Vec<Option<String>>,
    /// The file line of each row.
    pub lines: Vec<usize>,
    /// The table, for messages.
    pub table: String,
    /// What the INSERT names: the table and its column list, as the COPY
    /// gave them.
    pub target: String,
    /// Columns per row.
    pub width: usize,
}

impl CopyBatch {
    /// One row of the batch as its own batch (to find which row a
    /// refused batch stumbled on).
    pub fn row(&self, i: usize) -> CopyBatch {
        let vals = self.values[i * self.width..(i + 1) * self.width].to_vec();
        CopyBatch {
            sql: insert_sql(&self.target, self.width, 1),
            values: vals,
            lines: vec![self.lines[i]],
            table: self.table.clone(),
            target: self.target.clone(),
            width: self.width,
        }
    }
}

/// COPY takes the values as given, an identity column's too (as
/// PostgreSQL's COPY does): hence OVERRIDING SYSTEM VALUE.
fn insert_sql(target: &str, width: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {target} OVERRIDING SYSTEM VALUE VALUES ");
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push_str(&format!("${n}"));
        }
        sql.push(')');
    }
    sql
}

/// A script that cannot be read on: where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError {
    pub line: usize,
    pub message: String,
}

/// Where the scanner is inside a statement's text.
#[derive(Debug, Clone, PartialEq)]
enum Quote {
    None,
    Single,
    /// `E'...'`: a backslash escapes the next character.
    Escaped,
    Double,
    Dollar(String),
    Block(u32),
}

/// An open `COPY ... FROM stdin`.
struct Copy {
    target: String,
    table: String,
    width: Option<usize>,
    started: usize,
    values: Vec<Option<String>>,
    lines: Vec<usize>,
    bytes: usize,
}

/// Reads a script an item at a time.
pub struct Script<R> {
    input: R,
    line: usize,
    text: String,
    start_line: usize,
    quote: Quote,
    copy: Option<Copy>,
    pending: std::collections::VecDeque<Item>,
    done: bool,
    /// Statements skipped, by kind (`SET`, `OWNER TO` ...).
    pub skipped: BTreeMap<&'static str, usize>,
}

impl<R: BufRead> Script<R> {
    pub fn new(input: R) -> Script<R> {
        Script {
            input,
            line: 0,
            text: String::new(),
            start_line: 0,
            quote: Quote::None,
            copy: None,
            pending: Default::default(),
            done: false,
            skipped: BTreeMap::new(),
        }
    }

    /// The next item, or None at the end of the script.
    pub fn next_item(&mut self) -> Result<Option<Item>, ScriptError> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if self.done {
                return Ok(None);
            }
            let Some(line) = self.read_line()? else {
                self.done = true;
                if let Some(c) = &self.copy {
                    return Err(ScriptError {
                        line: c.started,
                        message: format!(
                            "COPY {} FROM stdin: the script ended before its closing \\.",
                            c.table
                        ),
                    });
                }
                let rest = std::mem::take(&mut self.text);
                if !is_blank(&rest) {
                    self.statement(rest.trim().to_string())?;
                }
                continue;
            };
            if self.copy.is_some() {
                self.copy_line(&line)?;
            } else if is_blank(&self.text) && line.trim_start().starts_with('\\') {
                self.text.clear();
                self.meta(line.trim().to_string());
            } else {
                self.scan_line(&line)?;
            }
        }
    }

    fn read_line(&mut self) -> Result<Option<String>, ScriptError> {
        let mut buf = Vec::new();
        let mut limited = std::io::Read::take(&mut self.input, LINE_BYTES_MAX as u64 + 1);
        let n = limited
            .read_until(b'\n', &mut buf)
            .map_err(|e| ScriptError {
                line: self.line + 1,
                message: format!("reading: {e}"),
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if buf.len() > LINE_BYTES_MAX {
            return Err(self.error(format!("line is longer than {LINE_BYTES_MAX} bytes")));
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        String::from_utf8(buf)
            .map(Some)
            .map_err(|e| self.error(format!("not UTF-8: {e}")))
    }

    fn error(&self, message: String) -> ScriptError {
        ScriptError {
            line: self.line,
            message,
        }
    }

    fn meta(&mut self, text: String) {
        let word = text.split_whitespace().next().unwrap_or("");
        // pg_dump 15.14+ fences a dump with these; they only guard psql.
        if word == "\\restrict" || word == "\\unrestrict" {
            *self
                .skipped
                .entry("psql \\restrict/\\unrestrict")
                .or_default() += 1;
            return;
        }
        self.pending.push_back(Item::Meta {
            text,
            line: self.line,
        });
    }

    /// Scans one line of statement text, cutting statements at `;`.
    fn scan_line(&mut self, line: &str) -> Result<(), ScriptError> {
        if is_blank(&self.text) {
            self.text.clear();
            self.start_line = self.line;
        }
        let from = self.text.len();
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > STATEMENT_BYTES_MAX {
            return Err(ScriptError {
                line: self.start_line,
                message: format!("statement is longer than {STATEMENT_BYTES_MAX} bytes"),
            });
        }
        let ends = scan(self.text.as_bytes(), from, &mut self.quote);
        let Some(&last) = ends.last() else {
            return Ok(());
        };
        let mut cut = 0;
        let mut stmts = Vec::with_capacity(ends.len());
        for end in ends {
            let piece = &self.text[cut..end];
            // The statement's line: the first after its blank and comment lines.
            let lead = piece.len() - strip_blank_lines(piece).len();
            let line = self.start_line + self.text[..cut + lead].matches('\n').count();
            stmts.push((piece.trim().to_string(), line));
            cut = end + 1;
        }
        let rest = self.text[last + 1..].to_string();
        for (stmt, start) in stmts.into_iter().filter(|s| !is_blank(&s.0)) {
            if self.copy.is_some() {
                return Err(self.error(
                    "a statement follows COPY ... FROM stdin on its line; its rows must start \
                     on the next line"
                        .into(),
                ));
            }
            self.start_line = start;
            self.statement(stmt)?;
        }
        self.text = if is_blank(&rest) { String::new() } else { rest };
        self.start_line = self.line;
        if self.copy.is_some() && !self.text.is_empty() {
            return Err(self.error(
                "text follows COPY ... FROM stdin on its line; its rows must start on the next \
                 line"
                    .into(),
            ));
        }
        Ok(())
    }

    /// A complete statement: skipped, opening a COPY, or yielded.
    fn statement(&mut self, sql: String) -> Result<(), ScriptError> {
        let words = leading_words(&sql, 64);
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        if let Some(why) = changes_how_text_reads(&w) {
            return Err(ScriptError {
                line: self.start_line,
                message: format!("{why}: {sql}"),
            });
        }
        if let Some(kind) = skip_kind(&w) {
            *self.skipped.entry(kind).or_default() += 1;
            return Ok(());
        }
        if w.first() == Some(&"copy") {
            return self.open_copy(&sql);
        }
        self.pending.push_back(Item::Statement {
            sql,
            line: self.start_line,
        });
        Ok(())
    }

    /// `COPY t [(cols)] FROM stdin [;]`: the rows follow, up to `\.`.
    fn open_copy(&mut self, sql: &str) -> Result<(), ScriptError> {
        let bad = |why: &str| ScriptError {
            line: self.start_line,
            message: format!("{why}: {sql}"),
        };
        let lower = sql.to_ascii_lowercase();
        let from = lower
            .find(" from ")
            .ok_or_else(|| bad("COPY without FROM"))?;
        let source = lower[from + 6..].trim();
        if !(source.starts_with("stdin") && source[5..].trim().is_empty()) {
            return Err(bad(
                "only COPY ... FROM stdin in PostgreSQL's text format is read from a script \
                 (for a file, use ohm load)",
            ));
        }
        let target = sql[4..from].trim().to_string();
        let (table, width) = match target.find('(') {
            Some(open) => {
                let cols = target[open + 1..].trim_end().trim_end_matches(')');
                let n = cols.split(',').filter(|c| !c.trim().is_empty()).count();
                (target[..open].trim().to_string(), Some(n))
            }
            None => (target.clone(), None),
        };
        if table.is_empty() || width == Some(0) {
            return Err(bad("COPY names no table or no columns"));
        }
        self.copy = Some(Copy {
            target,
            table,
            width,
            started: self.start_line,
            values: Vec::new(),
            lines: Vec::new(),
            bytes: 0,
        });
        Ok(())
    }

    fn copy_line(&mut self, line: &str) -> Result<(), ScriptError> {
        let at = self.line;
        let Some(copy) = self.copy.as_mut() else {
            return Ok(());
        };
        if line == "\\." {
            self.flush_copy();
            self.copy = None;
            self.text.clear();
            return Ok(());
        }
        let fields = copy_fields(line).map_err(|m| ScriptError {
            line: at,
            message: format!("COPY {}: {m}", copy.table),
        })?;
        let width = *copy.width.get_or_insert(fields.len());
        if fields.len() != width || width > TABLE_COLUMNS_MAX {
            return Err(ScriptError {
                line: at,
                message: format!(
                    "COPY {}: this row has {} field(s) where the COPY has {} column(s) \
                     (at most {TABLE_COLUMNS_MAX})",
                    copy.table,
                    fields.len(),
                    width
                ),
            });
        }
        copy.bytes += line.len();
        copy.values.extend(fields);
        copy.lines.push(at);
        let rows_max = COPY_BATCH_ROWS.min(PARAMS_MAX / width).max(1);
        if copy.lines.len() >= rows_max || copy.bytes >= COPY_BATCH_BYTES {
            self.flush_copy();
        }
        Ok(())
    }

    fn flush_copy(&mut self) {
        let Some(copy) = self.copy.as_mut() else {
            return;
        };
        if copy.lines.is_empty() {
            return;
        }
        let width = copy.width.unwrap_or(1);
        let rows = copy.lines.len();
        self.pending.push_back(Item::Rows(CopyBatch {
            sql: insert_sql(&copy.target, width, rows),
            values: std::mem::take(&mut copy.values),
            lines: std::mem::take(&mut copy.lines),
            table: copy.table.clone(),
            target: copy.target.clone(),
            width,
        }));
        copy.bytes = 0;
    }
}

/// Scans `b` from `from` for the `;` that end statements, outside quotes,
/// `$tag$` bodies and comments; `quote` carries the state from one line
/// to the next.
fn scan(b: &[u8], from: usize, quote: &mut Quote) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut i = from;
    while i < b.len() {
        let c = b[i];
        let next = match std::mem::replace(quote, Quote::None) {
            Quote::Single if c == b'\'' => Quote::None,
            Quote::Double if c == b'"' => Quote::None,
            Quote::Escaped if c == b'\\' => {
                i += 1;
                Quote::Escaped
            }
            Quote::Escaped if c == b'\'' => Quote::None,
            q @ (Quote::Single | Quote::Double | Quote::Escaped) => q,
            Quote::Dollar(tag) => {
                if b[i..].starts_with(tag.as_bytes()) {
                    i += tag.len() - 1;
                    Quote::None
                } else {
                    Quote::Dollar(tag)
                }
            }
            Quote::Block(depth) => {
                if b[i..].starts_with(b"*/") {
                    i += 1;
                    if depth > 1 {
                        Quote::Block(depth - 1)
                    } else {
                        Quote::None
                    }
                } else if b[i..].starts_with(b"/*") {
                    i += 1;
                    Quote::Block(depth + 1)
                } else {
                    Quote::Block(depth)
                }
            }
            Quote::None => match c {
                // `E'...'` (not the end of a longer word such as `type'`).
                b'\''
                    if i > 0
                        && matches!(b[i - 1], b'E' | b'e')
                        && (i < 2 || !(b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b'_')) =>
                {
                    Quote::Escaped
                }
                b'\'' => Quote::Single,
                b'"' => Quote::Double,
                b'-' if b.get(i + 1) == Some(&b'-') => {
                    // The rest of the line is a comment.
                    while i + 1 < b.len() && b[i + 1] != b'\n' {
                        i += 1;
                    }
                    Quote::None
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    i += 1;
                    Quote::Block(1)
                }
                b'$' => match dollar_tag(&b[i..]) {
                    Some(tag) => {
                        i += tag.len() - 1;
                        Quote::Dollar(tag)
                    }
                    None => Quote::None,
                },
                b';' => {
                    ends.push(i);
                    Quote::None
                }
                _ => Quote::None,
            },
        };
        *quote = next;
        i += 1;
    }
    ends
}

/// `text` from its first line that is not blank or a `--` comment.
fn strip_blank_lines(text: &str) -> &str {
    let mut rest = text;
    loop {
        let t = rest.trim_start_matches([' ', '\t', '\r']);
        if let Some(after) = t.strip_prefix('\n') {
            rest = after;
        } else if t.starts_with("--") {
            match t.find('\n') {
                Some(nl) => rest = &t[nl + 1..],
                None => return "",
            }
        } else {
            return t;
        }
    }
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with("--")
    })
}

/// The first `n` words of a statement, lower-cased, comments skipped.
fn leading_words(sql: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in sql.lines() {
        let line = line.split("--").next().unwrap_or("");
        for w in line.split(|c: char| c.is_whitespace() || c == '(' || c == ';' || c == '=') {
            if !w.is_empty() {
                out.push(w.to_ascii_lowercase());
                if out.len() >= n {
                    return out;
                }
            }
        }
    }
    out
}

/// The kind of a statement that has no meaning in Ohm, to skip and count.
fn skip_kind(w: &[&str]) -> Option<&'static str> {
    Some(match w {
        ["set", ..] => "SET",
        ["select", f, ..] if f.starts_with("pg_catalog.set_config") => {
            "SELECT pg_catalog.set_config"
        }
        ["comment", "on", ..] => "COMMENT ON",
        ["grant", ..] => "GRANT",
        ["revoke", ..] => "REVOKE",
        // `ALTER <object> <name> OWNER TO <role>`, as pg_dump writes it.
        // (`RENAME [COLUMN] owner TO x` ends the same way and is real.)
        ["alter", .., "owner", "to", _] if !w.contains(&"rename") => "ALTER ... OWNER TO",
        ["alter", "default", "privileges", ..] => "ALTER DEFAULT PRIVILEGES",
        _ => return None,
    })
}

/// A `SET` that would change how the rest of the script's text must be
/// read: refused rather than skipped.
fn changes_how_text_reads(w: &[&str]) -> Option<&'static str> {
    let ["set", name, rest @ ..] = w else {
        return None;
    };
    // `SET x = v`, `SET x TO v` ('=' is not a word here).
    let value = rest.last().map(|v| v.trim_matches('\''))?;
    match *name {
        "standard_conforming_strings" if matches!(value, "off" | "false") => Some(
            "SET standard_conforming_strings = off: backslashes in strings are not read as \
             escapes here; dump with standard_conforming_strings on (pg_dump's default)",
        ),
        "client_encoding" if !matches!(value, "utf8" | "utf-8" | "unicode") => Some(
            "SET client_encoding other than UTF8: scripts are read as UTF-8; dump with \
             --encoding=UTF8",
        ),
        _ => None,
    }
}

/// Splits a COPY text-format line into its fields: tab-separated, `\N` is
/// NULL, and backslash escapes (`\t`, `\n`, `\\`, `\123`, `\x4F` ...) as
/// PostgreSQL writes them.
pub fn copy_fields(line: &str) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::new();
    for raw in line.split('\t') {
        if raw == "\\N" {
            out.push(None);
            continue;
        }
        if !raw.contains('\\') {
            out.push(Some(raw.to_string()));
            continue;
        }
        let bytes =
            crate::loader::records::unescape_copy(raw.as_bytes()).map_err(|e| e.to_string())?;
        let s =
            String::from_utf8(bytes).map_err(|_| "an escape makes invalid UTF-8".to_string())?;
        out.push(Some(s));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> (Vec<Item>, BTreeMap<&'static str, usize>) {
        let mut s = Script::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(i) = s.next_item().unwrap() {
            out.push(i);
        }
        (out, s.skipped)
    }

    fn stmt(sql: &str, line: usize) -> Item {
        Item::Statement {
            sql: sql.into(),
            line,
        }
    }

    #[test]
    fn statements_carry_their_first_line_and_quotes_hide_semicolons() {
        let text = "-- a dump\nCREATE TABLE t (a TEXT);\n\nINSERT INTO t VALUES ('x;y'),\n  ('z');\nSELECT \";\"; SELECT 2\n";
        let (got, _) = items(text);
        assert_eq!(
            got,
            vec![
                stmt("CREATE TABLE t (a TEXT)", 2),
                stmt("INSERT INTO t VALUES ('x;y'),\n  ('z')", 4),
                stmt("SELECT \";\"", 6),
                stmt("SELECT 2", 6),
            ]
        );
    }

    #[test]
    fn dollar_quotes_and_block_comments_hide_semicolons() {
        let text = "CREATE FUNCTION f() RETURNS int AS $body$\nBEGIN; RETURN 1; END;\n$body$ LANGUAGE plpgsql;\n/* a; /* nested; */ still; */ SELECT $$a;b$$;\n";
        let (got, _) = items(text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(&got[0], Item::Statement { sql, line: 1 } if sql.ends_with("plpgsql")));
        assert!(
            matches!(&got[1], Item::Statement { sql, line: 4 } if sql.ends_with("SELECT $$a;b$$"))
        );
    }

    #[test]
    fn what_has_no_meaning_is_counted_and_skipped() {
        let text = "\\restrict abc\nSET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\nALTER TABLE public.t OWNER TO bob;\nCOMMENT ON TABLE t IS 'x;y';\nGRANT ALL ON t TO bob;\nSELECT 1;\n\\unrestrict abc\n";
        let (got, skipped) = items(text);
        assert_eq!(got, vec![stmt("SELECT 1", 7)]);
        assert_eq!(skipped.values().sum::<usize>(), 7, "{skipped:?}");
        assert_eq!(skipped["SET"], 1);
    }

    #[test]
    fn copy_rows_come_in_batches_with_their_lines() {
        let mut text = String::from("COPY public.t (a, b) FROM stdin;\n");
        for i in 0..COPY_BATCH_ROWS + 2 {
            text.push_str(&format!("{i}\tv\\t{i}\n"));
        }
        text.push_str("3\t\\N\n\\.\nSELECT 1;\n");
        let (got, _) = items(&text);
        assert_eq!(got.len(), 3, "two batches and the statement");
        let Item::Rows(first) = &got[0] else {
            panic!("{:?}", got[0])
        };
        assert_eq!(first.lines.len(), COPY_BATCH_ROWS);
        assert_eq!(first.lines[0], 2);
        assert!(first.sql.starts_with(
            "INSERT INTO public.t (a, b) OVERRIDING SYSTEM VALUE VALUES ($1, $2), ($3, $4)"
        ));
        assert_eq!(first.values[1].as_deref(), Some("v\t0"));
        let Item::Rows(second) = &got[1] else {
            panic!("{:?}", got[1])
        };
        assert_eq!(second.lines.len(), 3);
        assert_eq!(second.values.last(), Some(&None));
        let one = second.row(2);
        assert_eq!(
            one.sql,
            "INSERT INTO public.t (a, b) OVERRIDING SYSTEM VALUE VALUES ($1, $2)"
        );
        assert_eq!(one.lines, vec![COPY_BATCH_ROWS + 4]);
        assert_eq!(got[2], stmt("SELECT 1", COPY_BATCH_ROWS + 6));
    }

    #[test]
    fn bad_copy_data_names_its_line() {
        let mut s = Script::new("COPY t (a, b) FROM stdin;\n1\t2\n3\n\\.\n".as_bytes());
        let e = s.next_item().unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("1 field(s)"), "{}", e.message);
        let mut s = Script::new("COPY t FROM stdin;\n1\n".as_bytes());
        let e = s.next_item().unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("closing \\."), "{}", e.message);
        let mut s = Script::new("COPY t FROM '/etc/passwd';\n".as_bytes());
        assert!(s.next_item().unwrap_err().message.contains("ohm load"));
    }

    #[test]
    fn copy_escapes_decode_as_postgresql_writes_them() {
        assert_eq!(
            copy_fields("a\\\\b\t\\N\t\\101\\x42\\n\t").unwrap(),
            vec![
                Some("a\\b".into()),
                None,
                Some("AB\n".into()),
                Some(String::new())
            ]
        );
        assert!(copy_fields("trailing\\").is_err());
    }

    #[test]
    fn escape_strings_parameters_and_second_statements_cut_right() {
        let text = "SELECT E'it\\'s; x', 'a''b;c';\nINSERT INTO t VALUES ($1, $2); -- c;\n\n  SELECT 3; SELECT\n4;\n";
        let (got, _) = items(text);
        assert_eq!(
            got,
            vec![
                stmt("SELECT E'it\\'s; x', 'a''b;c'", 1),
                stmt("INSERT INTO t VALUES ($1, $2)", 2),
                stmt("SELECT 3", 4),
                stmt("SELECT\n4", 4),
            ]
        );
        let (got, _) = items("INSERT INTO t VALUES\n(1); SELECT 2;\n");
        assert_eq!(
            got,
            vec![stmt("INSERT INTO t VALUES\n(1)", 1), stmt("SELECT 2", 2)]
        );
    }

    #[test]
    fn only_what_means_nothing_is_skipped() {
        let (got, skipped) = items(
            "ALTER TABLE t RENAME COLUMN owner TO x;\nALTER TABLE public.t OWNER TO postgres;\n",
        );
        assert_eq!(got, vec![stmt("ALTER TABLE t RENAME COLUMN owner TO x", 1)]);
        assert_eq!(skipped["ALTER ... OWNER TO"], 1);
        for bad in [
            "SET standard_conforming_strings = off;",
            "SET client_encoding = 'LATIN1';",
            "SET client_encoding TO 'SQL_ASCII';",
        ] {
            let mut s = Script::new(bad.as_bytes());
            let e = s.next_item().unwrap_err();
            assert_eq!(e.line, 1, "{bad}");
        }
        let (got, _) =
            items("SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n");
        assert!(got.is_empty());
    }

    #[test]
    fn meta_commands_pass_through_with_their_line() {
        let (got, _) = items("SELECT 1;\n\\d t\n");
        assert_eq!(
            got,
            vec![
                stmt("SELECT 1", 1),
                Item::Meta {
                    text: "\\d t".into(),
                    line: 2
                }
            ]
        );
    }
}
