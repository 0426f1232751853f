//! `ohm sql`: the interactive SQL shell and script runner. Owns reading
//! input (rustyline on a terminal; `-c`, `-f` or piped stdin otherwise, cut
//! into items by `script.rs`, pg_dump's plain dumps included), the
//! backslash meta-commands, sending COPY rows, and the exit status of
//! scripts. Rendering lives in `format.rs`; the network in `driver`.

use super::connect::{ConnectArgs, TokenRole};
use super::format::{render_error, render_result, TextTable};
use super::script::{CopyBatch, Item, Script};
use crate::driver::{Client, ClientError};
use crate::proto::CatalogInfo;
use crate::types::Value;
use anyhow::Context;
use clap::Args;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Lines kept in `$HOME/.ohm_history`.
const HISTORY_LINES_MAX: usize = 1000;

/// Flags of `ohm sql`.
#[derive(Debug, Clone, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Run these statements and exit.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    pub command: Option<String>,
    /// Run the statements in this file and exit.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// In a script, go on after a failed statement or COPY row (exit
    /// status still 1).
    #[arg(long = "continue")]
    pub keep_going: bool,
}

/// Cuts text into statements at `;` outside quotes and `--` comments.
#[derive(Debug, Default)]
pub struct StatementBuffer {
    text: String,
}

impl StatementBuffer {
    /// Adds a line; returns the statements it completed (without `;`).
    pub fn push_line(&mut self, line: &str) -> Vec<String> {
        self.text.push_str(line);
        self.text.push('\n');
        let (done, rest) = split_statements(&self.text);
        self.text = rest;
        done
    }

    /// Whether a statement has been started but not finished.
    pub fn is_pending(&self) -> bool {
        !self.text.trim().is_empty()
    }

    /// What is left at end of input (a last statement without `;`).
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.text);
        let rest = rest.trim();
        (!rest.is_empty() && !is_only_comments(rest)).then(|| rest.to_string())
    }
}

fn is_only_comments(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim().starts_with("--"))
}

/// Splits `text` into complete statements and the unfinished remainder.
pub fn split_statements(text: &str) -> (Vec<String>, String) {
    let mut done = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut in_comment = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, in_comment, c) {
            (_, true, '\n') => in_comment = false,
            (_, true, _) => {}
            (Some(q), _, c) if c == q => quote = None,
            (Some(_), _, _) => {}
            (None, _, '\'' | '"') => quote = Some(c),
            (None, _, '-') if chars.peek().map(|p| p.1) == Some('-') => in_comment = true,
            (None, _, ';') => {
                let stmt = text[start..i].trim();
                if !stmt.is_empty() && !is_only_comments(stmt) {
                    done.push(stmt.to_string());
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    (done, text[start..].to_string())
}

/// A backslash command of the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meta {
    Describe(Option<String>),
    Timing,
    Help,
    Quit,
    Unknown(String),
}

/// Parses a line starting with `\`.
pub fn parse_meta(line: &str) -> Meta {
    let mut words = line.split_whitespace();
    match (words.next().unwrap_or(""), words.next()) {
        ("\\d", name) => Meta::Describe(name.map(|n| n.trim_end_matches(';').to_string())),
        ("\\timing", None) => Meta::Timing,
        ("\\?", None) => Meta::Help,
        ("\\q", None) => Meta::Quit,
        _ => Meta::Unknown(line.trim().to_string()),
    }
}

const HELP: &str = "\
  \\d          list tables and procedures
  \\d NAME     describe a table (columns, key, partitioning)
  \\timing     toggle printing how long each statement took
  \\?          this help
  \\q          quit
Statements end with ';' and may span lines.";

/// Runs `ohm sql`.
pub async fn run(args: SqlArgs) -> anyhow::Result<ExitCode> {
    let client = args.connect.connect(TokenRole::Demo).await?;
    let mut shell = Shell {
        client,
        timing: false,
    };
    let keep = args.keep_going;
    if let Some(sql) = &args.command {
        shell
            .run_script(Script::new(sql.as_bytes()), "-c", keep)
            .await
    } else if let Some(path) = &args.file {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let input = std::io::BufReader::new(file);
        let name = path.display().to_string();
        shell.run_script(Script::new(input), &name, keep).await
    } else if !std::io::stdin().is_terminal() {
        let input = std::io::stdin().lock();
        shell.run_script(Script::new(input), "stdin", keep).await
    } else {
        shell.interactive().await
    }
}

struct Shell {
    client: Client,
    timing: bool,
}

/// Whether to go on reading input.
enum Flow {
    Continue,
    Quit,
}

impl Shell {
    /// Runs a script item by item, streaming it: statements, backslash
    /// commands, and COPY rows. Errors name the script and line; at the end
    /// one line per kind of statement skipped, and rows copied per table.
    async fn run_script<R: BufRead>(
        &mut self,
        mut script: Script<R>,
        name: &str,
        keep_going: bool,
    ) -> anyhow::Result<ExitCode> {
        let mut failed = false;
        let mut copied: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            let item = match script.next_item() {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("{name}:{}: {}", e.line, e.message);
                    failed = true;
                    break;
                }
            };
            let ok = match item {
                Item::Statement { sql, line } => self.statement(&sql, Some((name, line))).await?,
                Item::Meta { text, .. } => match self.meta(&text).await? {
                    (Flow::Quit, ok) => {
                        failed |= !ok;
                        break;
                    }
                    (Flow::Continue, ok) => ok,
                },
                Item::Rows(batch) => {
                    let (n, ok) = self.copy_rows(&batch, name, keep_going).await?;
                    *copied.entry(batch.table.clone()).or_default() += n;
                    ok
                }
            };
            failed |= !ok;
            if !ok && !keep_going {
                break;
            }
        }
        for (table, rows) in &copied {
            println!("COPY {table} {rows}");
        }
        for (kind, n) in &script.skipped {
            eprintln!("{name}: skipped {n} {kind} (nothing to do in Ohm)");
        }
        Ok(exit_code(failed))
    }

    /// Sends a batch of COPY rows as one INSERT. If the node refuses it,
    /// the rows go one at a time to find the one at fault, which is named
    /// by its line (the rows before it are loaded; with `keep_going` those
    /// after it too). Returns the rows loaded and whether all were.
    async fn copy_rows(
        &mut self,
        batch: &CopyBatch,
        name: &str,
        keep_going: bool,
    ) -> anyhow::Result<(u64, bool)> {
        let params = |b: &CopyBatch| -> Vec<Value> {
            b.values
                .iter()
                .map(|v| v.as_deref().map_or(Value::Null, Value::text))
                .collect()
        };
        match self.client.sql_with(&batch.sql, params(batch)).await {
            Ok(_) => return Ok((batch.lines.len() as u64, true)),
            Err(ClientError::Server(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let (mut loaded, mut all) = (0, true);
        for i in 0..batch.lines.len() {
            let one = batch.row(i);
            match self.client.sql_with(&one.sql, params(&one)).await {
                Ok(_) => loaded += 1,
                Err(ClientError::Server(e)) => {
                    eprintln!(
                        "{name}:{}: COPY {}: {}",
                        one.lines[0],
                        batch.table,
                        render_error(&e)
                    );
                    all = false;
                    if !keep_going {
                        break;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((loaded, all))
    }

    async fn interactive(&mut self) -> anyhow::Result<ExitCode> {
        let config = rustyline::Config::builder()
            .max_history_size(HISTORY_LINES_MAX)?
            .history_ignore_dups(true)?
            .auto_add_history(true)
            .build();
        let mut editor = rustyline::DefaultEditor::with_config(config)?;
        let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ohm_history"));
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        let s = self.client.session();
        println!(
            "ohm sql: tenant {} as {}. \\? for help, \\q to quit.",
            s.tenant, s.principal
        );
        let mut buffer = StatementBuffer::default();
        loop {
            let prompt = if buffer.is_pending() {
                "ohm-> "
            } else {
                "ohm=> "
            };
            let line = match tokio::task::block_in_place(|| editor.readline(prompt)) {
                Ok(line) => line,
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    buffer = StatementBuffer::default();
                    continue;
                }
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            };
            if line.trim_start().starts_with('\\') && !buffer.is_pending() {
                if let (Flow::Quit, _) = self.meta(&line).await? {
                    break;
                }
                continue;
            }
            for sql in buffer.push_line(&line) {
                self.statement(&sql, None).await?;
            }
        }
        if let Some(path) = &history {
            let _ = editor.save_history(path);
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Runs one statement and prints its result or error (after the
    /// script's name and line, `at`, when there is one); Ok(false) when the
    /// node refused it. A lost connection is an Err (nothing to go on with).
    async fn statement(&mut self, sql: &str, at: Option<(&str, usize)>) -> anyhow::Result<bool> {
        let started = Instant::now();
        let result = self.client.sql(sql).await;
        let elapsed = started.elapsed();
        let mut out = std::io::stdout().lock();
        let ok = match result {
            Ok(results) => {
                for r in &results {
                    write!(out, "{}", render_result(sql, r))?;
                }
                true
            }
            Err(ClientError::Server(e)) => {
                out.flush()?;
                match at {
                    Some((name, line)) => eprintln!("{name}:{line}: {}", render_error(&e)),
                    None => eprintln!("{}", render_error(&e)),
                }
                false
            }
            Err(e) => return Err(e.into()),
        };
        if self.timing {
            writeln!(out, "Time: {:.3} ms", elapsed.as_secs_f64() * 1e3)?;
        }
        if std::io::stdin().is_terminal() {
            writeln!(out)?;
        }
        Ok(ok)
    }

    async fn meta(&mut self, line: &str) -> anyhow::Result<(Flow, bool)> {
        match parse_meta(line) {
            Meta::Quit => return Ok((Flow::Quit, true)),
            Meta::Help => println!("{HELP}"),
            Meta::Timing => {
                self.timing = !self.timing;
                println!("Timing is {}.", if self.timing { "on" } else { "off" });
            }
            Meta::Describe(name) => {
                let catalog = match self.client.catalog().await {
                    Ok(c) => c,
                    Err(ClientError::Server(e)) => {
                        eprintln!("{}", render_error(&e));
                        return Ok((Flow::Continue, false));
                    }
                    Err(e) => return Err(e.into()),
                };
                match describe(&catalog, name.as_deref()) {
                    Ok(text) => print!("{text}"),
                    Err(msg) => {
                        eprintln!("{msg}");
                        return Ok((Flow::Continue, false));
                    }
                }
            }
            Meta::Unknown(cmd) => {
                eprintln!("unknown command {cmd}: \\? lists the commands");
                return Ok((Flow::Continue, false));
            }
        }
        Ok((Flow::Continue, true))
    }
}

fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `\d` (everything) or `\d NAME` (one table), as text.
pub fn describe(catalog: &CatalogInfo, name: Option<&str>) -> Result<String, String> {
    let Some(name) = name else {
        return Ok(describe_all(catalog));
    };
    let table = catalog
        .tables
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| format!("no table named {name:?} (\\d lists them)"))?;
    let columns = TextTable {
        header: vec!["Column".into(), "Type".into(), "Nullable".into()],
        right: vec![false; 3],
        rows: table
            .columns
            .iter()
            .map(|(n, ty, null)| {
                let null = if *null { "" } else { "not null" };
                vec![n.clone(), ty.clone(), null.to_string()]
            })
            .collect(),
    };
    let mut out = format!("Table \"{}\"\n{}", table.name, columns.render());
    if !table.primary_key.is_empty() {
        out.push_str(&format!(
            "Primary key: ({})\n",
            table.primary_key.join(", ")
        ));
    }
    match &table.partition_column {
        Some(col) => out.push_str(&format!("Partitioned on: {col}\n")),
        None => out.push_str("Replicated to every partition\n"),
    }
    Ok(out)
}

fn describe_all(catalog: &CatalogInfo) -> String {
    let tables = TextTable {
        header: vec!["Table".into(), "Partitioned on".into(), "Rows".into()],
        right: vec![false, false, true],
        rows: catalog
            .tables
            .iter()
            .map(|t| {
                let part = t.partition_column.clone().unwrap_or("(replicated)".into());
                vec![t.name.clone(), part, t.rows.to_string()]
            })
            .collect(),
    };
    let procedures = TextTable {
        header: vec![
            "Procedure".into(),
            "Module".into(),
            "Parameters".into(),
            "Partition".into(),
        ],
        right: vec![false; 4],
        rows: catalog
            .procedures
            .iter()
            .map(|p| {
                let params: Vec<String> =
                    p.params.iter().map(|(n, t)| format!("{n} {t}")).collect();
                let part = match &p.partition {
                    Some((col, i)) => format!("{col} (parameter {i})"),
                    None => "multi-partition".into(),
                };
                vec![p.name.clone(), p.module.clone(), params.join(", "), part]
            })
            .collect(),
    };
    format!(
        "Tenant {}\n{}\n{}",
        catalog.tenant,
        tables.render(),
        procedures.render()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ProcedureInfo, TableInfo};

    #[test]
    fn statements_span_lines_and_respect_quotes_and_comments() {
        let mut b = StatementBuffer::default();
        assert!(b.push_line("SELECT 'a;b',").is_empty());
        assert!(b.is_pending());
        assert_eq!(
            b.push_line("  2; SELECT 3 -- c;omment"),
            vec!["SELECT 'a;b',\n  2"]
        );
        assert_eq!(b.push_line(";"), vec!["SELECT 3 -- c;omment"]);
        assert!(!b.is_pending());
        assert!(b.push_line("-- only a comment;").is_empty());
        assert_eq!(b.finish(), None);
        b.push_line("select \"x;\" from t");
        assert_eq!(b.finish().as_deref(), Some("select \"x;\" from t"));
    }

    #[test]
    fn empty_statements_are_skipped() {
        let (done, rest) = split_statements(";; select 1;;\n");
        assert_eq!(done, vec!["select 1"]);
        assert_eq!(rest.trim(), "");
    }

    #[test]
    fn meta_commands_parse() {
        assert_eq!(parse_meta("\\d"), Meta::Describe(None));
        assert_eq!(
            parse_meta(" \\d votes "),
            Meta::Describe(Some("votes".into()))
        );
        assert_eq!(parse_meta("\\timing"), Meta::Timing);
        assert_eq!(parse_meta("\\?"), Meta::Help);
        assert_eq!(parse_meta("\\q"), Meta::Quit);
        assert_eq!(parse_meta("\\x"), Meta::Unknown("\\x".into()));
    }

    fn catalog() -> CatalogInfo {
        CatalogInfo {
            tenant: "demo".into(),
            tables: vec![TableInfo {
                name: "votes".into(),
                columns: vec![
                    ("phone_number".into(), "BIGINT".into(), false),
                    ("state".into(), "VARCHAR(2)".into(), true),
                ],
                primary_key: vec![],
                partition_column: Some("phone_number".into()),
                rows: 42,
            }],
            procedures: vec![ProcedureInfo {
                name: "vote".into(),
                module: "voter".into(),
                params: vec![("phone_number".into(), "BIGINT".into())],
                partition: Some(("votes.phone_number".into(), 0)),
            }],
        }
    }

    #[test]
    fn describe_lists_and_details() {
        let all = describe(&catalog(), None).unwrap();
        assert!(all.contains(" votes | phone_number   |   42"), "{all}");
        assert!(all.contains("votes.phone_number (parameter 0)"), "{all}");
        let one = describe(&catalog(), Some("VOTES")).unwrap();
        assert!(
            one.contains(" phone_number | BIGINT     | not null"),
            "{one}"
        );
        assert!(one.ends_with("Partitioned on: phone_number\n"), "{one}");
        assert!(describe(&catalog(), Some("nope")).is_err());
    }
}
