//! `ohm load csv|text FILE|- --table T`: bulk loading from the command
//! line. Owns the flags and what is printed; the pipeline is `loader`.

use super::connect::{ConnectArgs, TokenRole};
use crate::loader::convert::{DateFormat, Encoding, Formats};
use crate::loader::records::Format;
use crate::loader::{self, Input, Options};
use anyhow::bail;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Flags of `ohm load csv` and `ohm load text`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The file to load, or - for standard input (which cannot be resumed).
    #[arg(value_name = "FILE|-")]
    pub file: String,
    /// The table to load into.
    #[arg(long)]
    pub table: String,
    /// The columns each line gives, in order, comma-separated (default:
    /// the header's names; without a header, every column in table order).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// The first line names the columns (the default for csv).
    #[arg(long, conflicts_with = "no_header")]
    pub header: bool,
    /// The first line is data (the default for text).
    #[arg(long)]
    pub no_header: bool,
    /// Between fields (default: , for csv, a tab for text).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
    /// csv: quotes a field (default ").
    #[arg(long, value_name = "CHAR", default_value = "\"")]
    pub quote: String,
    /// csv: escapes a quote inside a quoted field (default: the quote, so
    /// "" is one ").
    #[arg(long, value_name = "CHAR")]
    pub escape: Option<String>,
    /// A field equal to this (unquoted, for csv) is NULL (default: empty
    /// for csv, \N for text).
    #[arg(long, value_name = "STRING")]
    pub null: Option<String>,
    /// How dates are written, e.g. %d/%m/%Y (%Y %m %d %H %M %S %f; default:
    /// as PostgreSQL reads them, ISO 8601 and the like).
    #[arg(long, value_name = "FORMAT")]
    pub date_format: Option<String>,
    /// How timestamps are written, e.g. "%d.%m.%Y %H:%M:%S".
    #[arg(long, value_name = "FORMAT")]
    pub timestamp_format: Option<String>,
    /// The file's encoding: utf8 (checked) or latin1.
    #[arg(long, default_value = "utf8")]
    pub encoding: String,
    /// Lines per chunk: each chunk is loaded whole (but for rejected
    /// rows) or not at all, and acknowledged on its own.
    #[arg(long, default_value_t = loader::CHUNK_ROWS_DEFAULT)]
    pub chunk_rows: usize,
    /// Chunks in flight at once.
    #[arg(long, default_value_t = loader::PARALLEL_DEFAULT)]
    pub parallel: usize,
    /// Rows that may be rejected (each written to the reject file); one
    /// more stops the load. The chunks loaded by then stay loaded.
    #[arg(long, default_value_t = 0)]
    pub max_errors: u64,
    /// Where rejected lines go, as CSV: line,column,reason,record
    /// (default: FILE.rejected when FILE is a file).
    #[arg(long, value_name = "FILE")]
    pub reject_file: Option<PathBuf>,
    /// Continue an interrupted load of FILE where its acknowledged chunks
    /// end (its state is in FILE.ohm-load), with the same flags.
    #[arg(long)]
    pub resume: bool,
    /// Where the resume state is kept (default: FILE.ohm-load).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Show a progress line even when standard error is not a terminal;
    /// --no-progress never shows it.
    #[arg(long, conflicts_with = "no_progress")]
    pub progress: bool,
    #[arg(long)]
    pub no_progress: bool,
}

fn one_char(flag: &str, s: &str) -> anyhow::Result<u8> {
    let s = if s == "\\t" { "\t" } else { s };
    match s.as_bytes() {
        [c] if c.is_ascii() && *c != b'\n' && *c != b'\r' => Ok(*c),
        _ => bail!("--{flag} must be one ASCII character (\\t for a tab), not {s:?}"),
    }
}

fn with_suffix(p: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Turns flags into the loader's options and input.
pub fn options(args: &LoadArgs, csv: bool) -> anyhow::Result<(Input, Options)> {
    let delimiter = match &args.delimiter {
        Some(d) => one_char("delimiter", d)?,
        None if csv => b',',
        None => b'\t',
    };
    let format = if csv {
        let quote = one_char("quote", &args.quote)?;
        let escape = match &args.escape {
            Some(e) => one_char("escape", e)?,
            None => quote,
        };
        if quote == delimiter {
            bail!("--quote and --delimiter must differ");
        }
        Format::Csv {
            delimiter,
            quote,
            escape,
            null: args.null.clone().unwrap_or_default().into_bytes(),
        }
    } else {
        Format::Text {
            delimiter,
            null: args
                .null
                .clone()
                .unwrap_or_else(|| "\\N".into())
                .into_bytes(),
        }
    };
    let formats = Formats {
        date: args
            .date_format
            .as_deref()
            .map(DateFormat::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--date-format: {e}"))?,
        timestamp: args
            .timestamp_format
            .as_deref()
            .map(DateFormat::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--timestamp-format: {e}"))?,
    };
    let input = if args.file == "-" {
        if args.state.is_some() {
            bail!("--state needs a file: standard input cannot be resumed");
        }
        Input::Stdin
    } else {
        let path = PathBuf::from(&args.file);
        Input::File {
            state: args
                .state
                .clone()
                .unwrap_or_else(|| with_suffix(&path, ".ohm-load")),
            path,
        }
    };
    let reject_file = args.reject_file.clone().or_else(|| match &input {
        Input::File { path, .. } => Some(with_suffix(path, ".rejected")),
        Input::Stdin => None,
    });
    let opts = Options {
        table: args.table.clone(),
        columns: args.columns.clone(),
        header: if csv { !args.no_header } else { args.header },
        format,
        encoding: Encoding::parse(&args.encoding)
            .map_err(|e| anyhow::anyhow!("--encoding: {e}"))?,
        formats,
        chunk_rows: args.chunk_rows,
        parallel: args.parallel,
        max_errors: args.max_errors,
        reject_file,
        progress: args.progress || (!args.no_progress && std::io::stderr().is_terminal()),
    };
    Ok((input, opts))
}

/// A flag set by Ctrl-C: a load (or migration) stops sending and waits
/// for the chunks in flight to be answered, so it can be resumed.
pub fn interrupt_on_ctrl_c() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nstopping: waiting for the chunks in flight to be answered");
            flag.store(true, Ordering::Relaxed);
        }
    });
    interrupt
}

/// `ohm load csv|text`. Exit status: 0 when every line was loaded or
/// rejected within --max-errors; 1 when the load stopped (it says how to
/// resume); 130 when interrupted.
pub async fn run(args: LoadArgs, csv: bool) -> anyhow::Result<ExitCode> {
    let (input, opts) = options(&args, csv)?;
    let client = args.connect.connect(TokenRole::Demo).await?;
    let interrupt = interrupt_on_ctrl_c();
    let s = loader::load(&client, &input, &opts, args.resume, interrupt.clone()).await?;
    let secs = s.elapsed.as_secs_f64().max(0.001);
    println!(
        "read {} lines ({:.1} MB): loaded {} rows, rejected {}{}, in {:.1} s ({:.0} rows/s){}",
        s.read,
        s.bytes as f64 / 1e6,
        s.loaded,
        s.rejected,
        match (&opts.reject_file, s.rejected) {
            (Some(f), n) if n > 0 => format!(" (see {})", f.display()),
            _ => String::new(),
        },
        secs,
        s.loaded as f64 / secs,
        if s.again > 0 {
            format!("; {} chunks had been loaded before", s.again)
        } else {
            String::new()
        }
    );
    if let Some(why) = &s.stopped {
        eprintln!("the load stopped: {why}");
        if let Some(state) = &s.resume {
            eprintln!(
                "what was acknowledged stays loaded; continue with the same command and \
                 --resume (state: {})",
                state.display()
            );
        }
        if interrupt.load(Ordering::Relaxed) {
            return Ok(ExitCode::from(130));
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
