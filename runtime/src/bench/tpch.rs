//! `ohm bench tpch`: the 22 TPC-H queries as the specification writes them
//! (default substitution parameters) on the official schema, Ohm's engine
//! beside SQLite in memory, same data, per-query times.
//!
//! Owns: the TPC-H texts (`tpch/qNN.sql` as written, `tpch/sqlite/qNN.sql`
//! where SQLite needs its own date and substring syntax; `tpch/dss.ddl` and
//! `tpch/dss.ri`, dbgen's schema and keys), loading dbgen's `.tbl` files into
//! both engines, timing, and checking Ohm's answers against a reference
//! engine's (`--answers`, written by `tests/tpch/reference.py` with DuckDB).
//! Must not: tune one side only, or turn a time into a pass/fail. SQLite gets
//! the same schema with a unique index for each primary key (it has no
//! `ALTER TABLE ... ADD PRIMARY KEY`) and `ANALYZE` after the load, the
//! setup a SQLite user would choose; Ohm gets the schema and keys as written.
//!
//! ```text
//!   tpchgen-cli (or --data DIR) --> *.tbl --> load --> Ohm engine ---+--> times, answers
//!                                               \--> SQLite ---------/       |
//!                                     --answers FILE (DuckDB's) --> compare <-/
//! ```

use super::engines::{BenchDb, OhmDb, SqliteDb};
use crate::types::Value;
use anyhow::{bail, ensure, Context};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The tables in load order (parents before children), with their files.
const TABLES: [&str; 8] = [
    "region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];
const DDL: &str = include_str!("tpch/dss.ddl");
const KEYS: &str = include_str!("tpch/dss.ri");
/// Rows inserted per transaction while loading.
const LOAD_BATCH_ROWS: usize = 10_000;
/// The largest scale factor a run may generate (sf 1 is ~1 GiB of text).
const SF_MAX: f64 = 10.0;
/// Times each query runs per engine; the fastest run is reported.
const RUNS_MAX: usize = 100;
/// Relative difference under which two numbers are the same answer: the
/// reference averages in binary floating point, Ohm in decimal.
const NUMBER_TOLERANCE: f64 = 1e-9;
/// Rows read from one `.tbl` file (sf 10's lineitem has 60 million), and
/// lines read from an answers file.
const TABLE_ROWS_MAX: usize = 100_000_000;
const ANSWER_LINES_MAX: usize = 10_000_000;
/// Mismatching cells shown per query before the rest are counted.
const MISMATCHES_SHOWN: usize = 5;

/// The query texts, as the specification writes them.
const QUERIES: [&str; 22] = [
    include_str!("tpch/q01.sql"),
    include_str!("tpch/q02.sql"),
    include_str!("tpch/q03.sql"),
    include_str!("tpch/q04.sql"),
    include_str!("tpch/q05.sql"),
    include_str!("tpch/q06.sql"),
    include_str!("tpch/q07.sql"),
    include_str!("tpch/q08.sql"),
    include_str!("tpch/q09.sql"),
    include_str!("tpch/q10.sql"),
    include_str!("tpch/q11.sql"),
    include_str!("tpch/q12.sql"),
    include_str!("tpch/q13.sql"),
    include_str!("tpch/q14.sql"),
    include_str!("tpch/q15.sql"),
    include_str!("tpch/q16.sql"),
    include_str!("tpch/q17.sql"),
    include_str!("tpch/q18.sql"),
    include_str!("tpch/q19.sql"),
    include_str!("tpch/q20.sql"),
    include_str!("tpch/q21.sql"),
    include_str!("tpch/q22.sql"),
];

/// SQLite's texts where it needs its own syntax: `date('1994-01-01', '+1
/// years')` for date arithmetic, `strftime` for EXTRACT, `substr`, and no
/// column list on a derived table (Q13). Otherwise the text as written.
fn sqlite_text(q: usize) -> &'static str {
    match q {
        1 => include_str!("tpch/sqlite/q01.sql"),
        3 => include_str!("tpch/sqlite/q03.sql"),
        4 => include_str!("tpch/sqlite/q04.sql"),
        5 => include_str!("tpch/sqlite/q05.sql"),
        6 => include_str!("tpch/sqlite/q06.sql"),
        7 => include_str!("tpch/sqlite/q07.sql"),
        8 => include_str!("tpch/sqlite/q08.sql"),
        9 => include_str!("tpch/sqlite/q09.sql"),
        10 => include_str!("tpch/sqlite/q10.sql"),
        12 => include_str!("tpch/sqlite/q12.sql"),
        13 => include_str!("tpch/sqlite/q13.sql"),
        14 => include_str!("tpch/sqlite/q14.sql"),
        15 => include_str!("tpch/sqlite/q15.sql"),
        20 => include_str!("tpch/sqlite/q20.sql"),
        22 => include_str!("tpch/sqlite/q22.sql"),
        _ => QUERIES[q - 1],
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct TpchArgs {
    /// Scale factor dbgen's data is generated at (with `tpchgen-cli`).
    #[arg(long, default_value_t = 0.01)]
    pub sf: f64,
    /// A directory holding the 8 `.tbl` files already (`region.tbl`, ...),
    /// instead of generating them; `--sf` is then ignored.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The reference answers (`tests/tpch/reference.py` writes them): Ohm's
    /// answers are checked against them, and any difference fails the run.
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    /// Times each query runs on each engine; the fastest is reported.
    #[arg(long, default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=RUNS_MAX as u64))]
    pub runs: u64,
    /// Only these queries (1-22); all when none is given.
    #[arg(long = "query", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=22))]
    pub queries: Vec<u64>,
    /// Run Ohm alone (no SQLite times).
    #[arg(long)]
    pub no_sqlite: bool,
    /// Print Ohm's plan (EXPLAIN) of each query before timing it.
    #[arg(long)]
    pub explain: bool,
}

pub fn run(args: &TpchArgs) -> anyhow::Result<ExitCode> {
    ensure!(
        args.sf > 0.0 && args.sf <= SF_MAX,
        "--sf {} is outside 0 < sf <= {SF_MAX}",
        args.sf
    );
    let generated;
    let dir: &Path = match &args.data {
        Some(d) => d,
        None => {
            generated = Generated::new(args.sf)?;
            &generated.dir
        }
    };
    let tables = read_tables(dir)?;
    let answers = args.answers.as_deref().map(read_answers).transpose()?;
    let queries: Vec<usize> = if args.queries.is_empty() {
        (1..=22).collect()
    } else {
        args.queries.iter().map(|&q| q as usize).collect()
    };

    let lineitems = tables
        .iter()
        .find(|t| t.name == "lineitem")
        .map_or(0, |t| t.rows.len());
    let source = match &args.data {
        Some(d) => format!("data from {}", d.display()),
        None => format!("sf {}", args.sf),
    };
    println!(
        "tpch {source} ({lineitems} lineitem rows), {} run(s) per query, fastest shown",
        args.runs
    );
    let mut ohm = OhmDb::new();
    let started = Instant::now();
    load(&mut ohm, &tables, Keys::AsWritten)?;
    println!("ohm: loaded in {:.2} s", started.elapsed().as_secs_f64());
    let mut sqlite = if args.no_sqlite {
        None
    } else {
        let mut db = SqliteDb::open()?;
        let started = Instant::now();
        load(&mut db, &tables, Keys::UniqueIndexes)?;
        db.execute("ANALYZE")?;
        println!("sqlite: loaded in {:.2} s", started.elapsed().as_secs_f64());
        Some(db)
    };

    println!();
    println!("| query | ohm ms | sqlite ms | ohm/sqlite | rows | answer |");
    println!("|------:|-------:|----------:|-----------:|-----:|:-------|");
    let (mut ohm_total, mut sqlite_total) = (Duration::ZERO, Duration::ZERO);
    let mut wrong = 0;
    for &q in &queries {
        if args.explain {
            explain(&mut ohm, q)?;
        }
        let (ohm_time, rows) = time_query(&mut ohm, QUERIES[q - 1], args.runs)
            .with_context(|| format!("Q{q} on ohm"))?;
        ohm_total += ohm_time;
        let sqlite_time = match sqlite.as_mut() {
            Some(db) => {
                let (t, _) = time_query(db, sqlite_text(q), args.runs)
                    .with_context(|| format!("Q{q} on sqlite"))?;
                sqlite_total += t;
                Some(t)
            }
            None => None,
        };
        let verdict = match answers.as_ref().map(|a| a.iter().find(|x| x.query == q)) {
            None => "not checked".to_string(),
            Some(None) => {
                wrong += 1;
                format!("the answers file has no Q{q}")
            }
            Some(Some(expected)) => match compare(&rows, expected) {
                Ok(()) => "equal".to_string(),
                Err(why) => {
                    wrong += 1;
                    eprintln!("Q{q}: Ohm's answer differs from the reference:\n{why}");
                    "DIFFERS".to_string()
                }
            },
        };
        println!(
            "| Q{q} | {} | {} | {} | {} | {verdict} |",
            ms(ohm_time),
            sqlite_time.map_or("-".to_string(), ms),
            sqlite_time.map_or("-".to_string(), |s| ratio(ohm_time, s)),
            rows.len()
        );
    }
    println!(
        "| total | {} | {} | {} | | |",
        ms(ohm_total),
        if sqlite.is_some() {
            ms(sqlite_total)
        } else {
            "-".to_string()
        },
        if sqlite.is_some() {
            ratio(ohm_total, sqlite_total)
        } else {
            "-".to_string()
        },
    );
    if answers.is_some() {
        if wrong > 0 {
            println!("{wrong} answer(s) differ from the reference");
            return Ok(ExitCode::FAILURE);
        }
        println!("all {} answers equal the reference", queries.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}", a.as_secs_f64() / b.as_secs_f64().max(1e-9))
}

/// Where a run generated its data; removed when the run ends.
struct Generated {
    dir: PathBuf,
}

impl Generated {
    fn new(sf: f64) -> anyhow::Result<Generated> {
        let dir = std::env::temp_dir().join(format!("ohm-tpch-{}-sf{sf}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let generated = Generated { dir };
        let out = std::process::Command::new("tpchgen-cli")
            .arg("-s")
            .arg(sf.to_string())
            .arg("-o")
            .arg(&generated.dir)
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "tpchgen-cli is not installed (pip install tpchgen-cli), and no --data DIR \
                 of .tbl files was given"
            ),
            Err(e) => return Err(e).context("running tpchgen-cli"),
        };
        ensure!(
            out.status.success(),
            "tpchgen-cli -s {sf} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(generated)
    }
}

impl Drop for Generated {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One table's rows as dbgen wrote them: every field as text.
struct TableData {
    name: &'static str,
    rows: Vec<Vec<Value>>,
}

fn read_tables(dir: &Path) -> anyhow::Result<Vec<TableData>> {
    TABLES
        .iter()
        .map(|&name| {
            let path = dir.join(format!("{name}.tbl"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (TPC-H data)", path.display()))?;
            let mut rows = Vec::new();
            let mut width = None;
            for (i, line) in text.lines().enumerate() {
                ensure!(
                    i < TABLE_ROWS_MAX,
                    "{}: more than {TABLE_ROWS_MAX} rows",
                    path.display()
                );
                // dbgen ends every field, the last one too, with '|'.
                let Some(body) = line.strip_suffix('|') else {
                    bail!("{}:{}: a dbgen row ends with '|'", path.display(), i + 1);
                };
                let row: Vec<Value> = body.split('|').map(Value::text).collect();
                let w = *width.get_or_insert(row.len());
                ensure!(
                    row.len() == w,
                    "{}:{}: {} fields where the first row has {w}",
                    path.display(),
                    i + 1,
                    row.len()
                );
                rows.push(row);
            }
            Ok(TableData { name, rows })
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Keys {
    /// `dss.ri` as written: primary and foreign keys by ALTER TABLE.
    AsWritten,
    /// A unique index for each primary key in `dss.ri`.
    UniqueIndexes,
}

/// The statements of a script: split at ';', `--` comment lines dropped.
fn statements(script: &str) -> impl Iterator<Item = String> + '_ {
    script.split(';').filter_map(|s| {
        let body: Vec<&str> = s
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        let body = body.join("\n").trim().to_string();
        (!body.is_empty()).then_some(body)
    })
}

fn load<D: BenchDb>(db: &mut D, tables: &[TableData], keys: Keys) -> anyhow::Result<()> {
    for stmt in statements(DDL) {
        db.execute(&stmt)?;
    }
    for table in tables {
        let Some(width) = table.rows.first().map(Vec::len) else {
            continue;
        };
        let marks = vec!["?"; width].join(", ");
        let insert = db.prepare(&format!("INSERT INTO {} VALUES ({marks})", table.name))?;
        for batch in table.rows.chunks(LOAD_BATCH_ROWS) {
            db.execute("BEGIN")?;
            for row in batch {
                db.run(&insert, row)?;
            }
            db.execute("COMMIT")?;
        }
    }
    for stmt in statements(KEYS) {
        match keys {
            Keys::AsWritten => db.execute(&stmt)?,
            Keys::UniqueIndexes => {
                if let Some(index) = unique_index_for(&stmt) {
                    db.execute(&index)?;
                }
            }
        }
    }
    Ok(())
}

/// `CREATE UNIQUE INDEX` for an `ALTER TABLE t ADD PRIMARY KEY (cols)`.
fn unique_index_for(stmt: &str) -> Option<String> {
    let words: Vec<&str> = stmt.split_whitespace().collect();
    let table = words.get(2)?;
    let cols = stmt.split_once("PRIMARY KEY")?.1.trim();
    Some(format!(
        "CREATE UNIQUE INDEX {table}_pkey ON {table} {cols}"
    ))
}

/// Runs a query's statements `runs` times; the fastest run's time and the
/// rows its last SELECT returned.
fn time_query<D: BenchDb>(
    db: &mut D,
    text: &str,
    runs: u64,
) -> anyhow::Result<(Duration, Vec<Vec<Value>>)> {
    let stmts: Vec<String> = statements(text).collect();
    let mut best = Duration::MAX;
    let mut rows = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        for stmt in &stmts {
            if stmt.trim_start().to_ascii_lowercase().starts_with("select") {
                let prepared = db.prepare(stmt)?;
                rows = db.rows(&prepared, &[])?;
            } else {
                db.execute(stmt)?;
            }
        }
        best = best.min(started.elapsed());
    }
    Ok((best, rows))
}

/// Prints Ohm's plan of query `q`, its other statements (Q15's view) run
/// around it.
fn explain(db: &mut OhmDb, q: usize) -> anyhow::Result<()> {
    let stmts: Vec<String> = statements(QUERIES[q - 1]).collect();
    for stmt in &stmts {
        if stmt.trim_start().to_ascii_lowercase().starts_with("select") {
            let plan = db.prepare(&format!("EXPLAIN {stmt}"))?;
            println!("Q{q} plan:");
            for row in db.rows(&plan, &[])? {
                println!("  {}", row[0]);
            }
        } else {
            db.execute(stmt)?;
        }
    }
    Ok(())
}

/// One query's reference answer: each row's values as text (NULL as None).
struct Answer {
    query: usize,
    rows: Vec<Vec<Option<String>>>,
}

/// Reads the answers file: a `-- qN` line before each query's rows, then
/// one line per row, values separated by tabs, `\N` for NULL.
fn read_answers(path: &Path) -> anyhow::Result<Vec<Answer>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the answers {}", path.display()))?;
    let mut answers: Vec<Answer> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        ensure!(
            i < ANSWER_LINES_MAX,
            "{}: more than {ANSWER_LINES_MAX} lines",
            path.display()
        );
        if let Some(q) = line.strip_prefix("-- q") {
            let query = q
                .trim()
                .parse()
                .with_context(|| format!("{}:{}: not a query number", path.display(), i + 1))?;
            answers.push(Answer {
                query,
                rows: Vec::new(),
            });
            continue;
        }
        let Some(current) = answers.last_mut() else {
            bail!(
                "{}:{}: a row before any '-- qN' line",
                path.display(),
                i + 1
            );
        };
        let row = line
            .split('\t')
            .map(|v| (v != "\\N").then(|| v.to_string()))
            .collect();
        current.rows.push(row);
    }
    Ok(answers)
}

/// Ohm's rows against the reference's, in order: numbers equal within
/// `NUMBER_TOLERANCE`, text equal up to trailing blanks (CHAR(n)).
fn compare(got: &[Vec<Value>], expected: &Answer) -> Result<(), String> {
    if got.len() != expected.rows.len() {
        return Err(format!(
            "{} rows, the reference has {}",
            got.len(),
            expected.rows.len()
        ));
    }
    let mut out = Vec::new();
    let mut differing = 0;
    for (r, (g, e)) in got.iter().zip(&expected.rows).enumerate() {
        if g.len() != e.len() {
            return Err(format!(
                "row {}: {} columns, the reference has {}",
                r + 1,
                g.len(),
                e.len()
            ));
        }
        for (c, (g, e)) in g.iter().zip(e).enumerate() {
            if !same(g, e.as_deref()) {
                differing += 1;
                if out.len() < MISMATCHES_SHOWN {
                    out.push(format!(
                        "  row {} column {}: ohm {g}, reference {}",
                        r + 1,
                        c + 1,
                        e.as_deref().unwrap_or("NULL")
                    ));
                }
            }
        }
    }
    if differing == 0 {
        return Ok(());
    }
    if differing > out.len() {
        out.push(format!("  ... {} more", differing - out.len()));
    }
    Err(out.join("\n"))
}

fn same(got: &Value, expected: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return got.is_null();
    };
    let number = match got {
        Value::Int(i) => Some(*i as f64),
        Value::Double(d) => Some(*d),
        Value::Decimal(d) => rust_decimal::prelude::ToPrimitive::to_f64(d),
        _ => None,
    };
    match (number, expected.parse::<f64>()) {
        (Some(g), Ok(e)) => g == e || (g - e).abs() <= NUMBER_TOLERANCE * g.abs().max(e.abs()),
        _ => got.to_string().trim_end() == expected.trim_end(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_statements_without_comments() {
        let got: Vec<String> = statements("-- a\nselect 1;\n\n-- b\nselect 2;\n").collect();
        assert_eq!(got, vec!["select 1".to_string(), "select 2".to_string()]);
        assert_eq!(statements(QUERIES[14]).count(), 3, "Q15: view, query, drop");
    }

    #[test]
    fn every_primary_key_becomes_a_unique_index() {
        let indexes: Vec<String> = statements(KEYS)
            .filter_map(|s| unique_index_for(&s))
            .collect();
        assert_eq!(indexes.len(), 8, "{indexes:?}");
        assert!(indexes.contains(
            &"CREATE UNIQUE INDEX LINEITEM_pkey ON LINEITEM (L_ORDERKEY,L_LINENUMBER)".to_string()
        ));
    }

    #[test]
    fn numbers_compare_within_tolerance_and_char_padding_is_ignored() {
        let d = |s: &str| Value::Decimal(s.parse().unwrap());
        assert!(same(&d("0.0499"), Some("0.0499")));
        assert!(same(&d("25.5220058532"), Some("25.522005853257337")));
        assert!(!same(&d("25.52"), Some("25.53")));
        assert!(same(&Value::text("BUILDING  "), Some("BUILDING")));
        assert!(!same(&Value::Null, Some("0")));
        assert!(same(&Value::Null, None));
        assert!(same(&Value::Date(0), Some("1970-01-01")));
    }
}
