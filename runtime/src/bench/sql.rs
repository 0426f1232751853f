//! `ohm bench sql`: Ohm's SQL engine against SQLite in memory, same schema,
//! same data, same statements, same random ids.
//!
//! Owns: the schema, the deterministic load, the cross-engine correctness
//! check, and one generic measuring path (`BenchDb`) both engines run
//! through. Must not: tune one side only. SQLite keeps its in-memory
//! defaults (no pragmas changed); every statement on either engine runs in
//! its own autocommit transaction.

use super::engines::{BenchDb, OhmDb, SqliteDb};
use super::{measure, Rng, SqlBenchOptions};
use crate::types::Value;
use anyhow::{ensure, Context};
use std::time::{Duration, Instant};

/// Identical DDL on both engines. `INTEGER PRIMARY KEY` makes `accounts.id`
/// SQLite's rowid, its fastest access path: Ohm is measured against SQLite
/// at its best.
const SCHEMA: [&str; 2] = [
    "CREATE TABLE branches(id INTEGER PRIMARY KEY, region VARCHAR(16) NOT NULL)",
    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner VARCHAR(32) NOT NULL, \
     balance BIGINT NOT NULL, branch_id INTEGER NOT NULL)",
];
const INSERT_BRANCH: &str = "INSERT INTO branches(id, region) VALUES (?, ?)";
const INSERT_ACCOUNT: &str =
    "INSERT INTO accounts(id, owner, balance, branch_id) VALUES (?, ?, ?, ?)";
const POINT_SELECT: &str = "SELECT owner, balance FROM accounts WHERE id = ?";
const RANGE_SCAN: &str = "SELECT id, balance FROM accounts WHERE id BETWEEN ? AND ?";
const JOIN_AGGREGATE: &str = "SELECT b.region, COUNT(*), SUM(a.balance) \
     FROM accounts a JOIN branches b ON a.branch_id = b.id \
     WHERE a.id BETWEEN ? AND ? GROUP BY b.region";
const TOTALS: &str = "SELECT COUNT(*), SUM(balance) FROM accounts";

const BRANCHES: i64 = 100;
const REGIONS: [&str; 8] = [
    "north", "south", "east", "west", "central", "coast", "mountain", "islands",
];
/// Distinct owner names; built once so binding one is a refcount bump.
const OWNERS: usize = 1024;
const RANGE_ROWS: i64 = 100;
const JOIN_WINDOW_ROWS: i64 = 1000;
const BALANCE_MAX: i64 = 1_000_000;
/// Keeps a typo'd `--rows` from eating the machine's memory.
const ROWS_MAX: usize = 50_000_000;
/// Point selects (and a few scans) compared row for row between engines.
const VERIFY_SAMPLES: usize = 200;
const WARMUP_MAX: Duration = Duration::from_millis(500);
/// Slices each operation is measured in, the engines taking turns, so that
/// a burst of load from a neighbour on a shared machine falls on both.
const ROUNDS: usize = 5;
// `median` takes the middle one.
const _: () = assert!(ROUNDS % 2 == 1);
const SEED: u64 = 0x0_4D5E_ED;

/// The measured operations, in the order the table prints them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Insert,
    PointSelect,
    RangeScan,
    JoinAggregate,
}

impl Op {
    const ALL: [Op; 4] = [
        Op::Insert,
        Op::PointSelect,
        Op::RangeScan,
        Op::JoinAggregate,
    ];

    fn label(self) -> &'static str {
        match self {
            Op::Insert => "point INSERT",
            Op::PointSelect => "point SELECT by PK",
            Op::RangeScan => "100-row range scan",
            Op::JoinAggregate => "join + GROUP BY (1000 ids)",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Op::Insert => INSERT_ACCOUNT,
            Op::PointSelect => POINT_SELECT,
            Op::RangeScan => RANGE_SCAN,
            Op::JoinAggregate => JOIN_AGGREGATE,
        }
    }
}

/// Draws each statement's parameters; the same seed gives both engines the
/// same sequence.
struct Workload {
    rng: Rng,
    rows: i64,
    next_id: i64,
    owners: Vec<Value>,
}

impl Workload {
    fn new(rows: usize) -> Workload {
        let owners = (0..OWNERS)
            .map(|i| Value::text(&format!("owner-{i:04}")))
            .collect();
        Workload {
            rng: Rng::new(SEED),
            rows: rows as i64,
            next_id: rows as i64 + 1,
            owners,
        }
    }

    /// The row with primary key `id`; its non-key columns come from the RNG.
    fn account(&mut self, id: i64) -> [Value; 4] {
        let owner = self.owners[self.rng.range(0, OWNERS as i64 - 1) as usize].clone();
        let balance = self.rng.range(0, BALANCE_MAX);
        [
            Value::Int(id),
            owner,
            Value::Int(balance),
            Value::Int(self.rng.range(1, BRANCHES)),
        ]
    }

    /// An inclusive id window of `len` ids inside the loaded rows.
    fn window(&mut self, len: i64) -> [Value; 2] {
        let start = self.rng.range(1, (self.rows - len + 1).max(1));
        [Value::Int(start), Value::Int(start + len - 1)]
    }

    fn params(&mut self, op: Op) -> Vec<Value> {
        match op {
            Op::Insert => {
                let id = self.next_id;
                self.next_id += 1;
                self.account(id).to_vec()
            }
            Op::PointSelect => vec![Value::Int(self.rng.range(1, self.rows))],
            Op::RangeScan => self.window(RANGE_ROWS).to_vec(),
            Op::JoinAggregate => self.window(JOIN_WINDOW_ROWS).to_vec(),
        }
    }
}

/// Creates the schema and loads `rows` accounts, one autocommit INSERT each.
fn load<D: BenchDb>(db: &mut D, rows: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for ddl in SCHEMA {
        db.execute(ddl)?;
    }
    let branch = db.prepare(INSERT_BRANCH)?;
    for id in 1..=BRANCHES {
        let region = Value::text(REGIONS[id as usize % REGIONS.len()]);
        db.run(&branch, &[Value::Int(id), region])?;
    }
    let insert = db.prepare(INSERT_ACCOUNT)?;
    let mut workload = Workload::new(rows);
    for id in 1..=rows as i64 {
        let row = workload.account(id);
        db.run(&insert, &row)?;
    }
    Ok(start.elapsed())
}

/// Both engines must hold the same data and answer the same queries alike.
fn verify(a: &mut impl BenchDb, b: &mut impl BenchDb, rows: usize) -> anyhow::Result<()> {
    let mut check = |sql: &str, params: &[Value], sort: bool| -> anyhow::Result<()> {
        let (sa, sb) = (a.prepare(sql)?, b.prepare(sql)?);
        let (mut ra, mut rb) = (a.rows(&sa, params)?, b.rows(&sb, params)?);
        if sort {
            ra.sort();
            rb.sort();
        }
        ensure!(
            ra == rb,
            "{} and {} disagree on {sql} with {params:?}:\n  {}: {ra:?}\n  {}: {rb:?}",
            a.name(),
            b.name(),
            a.name(),
            b.name()
        );
        Ok(())
    };
    check(TOTALS, &[], false)?;
    let mut workload = Workload::new(rows);
    for i in 0..VERIFY_SAMPLES {
        check(POINT_SELECT, &workload.params(Op::PointSelect), false)?;
        if i % 20 == 0 {
            // Row order of a range is not promised without ORDER BY.
            check(RANGE_SCAN, &workload.params(Op::RangeScan), true)?;
            check(JOIN_AGGREGATE, &workload.params(Op::JoinAggregate), true)?;
        }
    }
    Ok(())
}

/// One operation's rates: each engine's median ops/s over the rounds, and
/// the median of the rounds' ratios (a over b).
#[derive(Debug, Clone, Copy, Default)]
struct Rates {
    a: f64,
    b: f64,
    ratio: f64,
}

/// Measures every operation on both engines, alternating them in `ROUNDS`
/// slices of `seconds / ROUNDS` each; returns rates in `Op::ALL` order.
fn measure_both<A: BenchDb, B: BenchDb>(
    a: &mut A,
    b: &mut B,
    opts: &SqlBenchOptions,
) -> anyhow::Result<Vec<Rates>> {
    let slice = Duration::from_secs_f64(opts.seconds / ROUNDS as f64);
    let warmup = (slice / 10).min(WARMUP_MAX);
    let mut rates = vec![Rates::default(); Op::ALL.len()];
    // Inserts go last so that the reads see the table as loaded, the same
    // size on both engines whatever their insert rates.
    for (i, op) in Op::ALL.into_iter().enumerate().rev() {
        let (stmt_a, stmt_b) = (a.prepare(op.sql())?, b.prepare(op.sql())?);
        // Each engine draws the same parameter sequence across its slices.
        let (mut work_a, mut work_b) = (Workload::new(opts.rows), Workload::new(opts.rows));
        let (mut ra, mut rb) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
        for _ in 0..ROUNDS {
            ra.push(
                measure(warmup, slice, || a.run(&stmt_a, &work_a.params(op)))
                    .with_context(|| format!("{}: measuring {}", a.name(), op.label()))?,
            );
            rb.push(
                measure(warmup, slice, || b.run(&stmt_b, &work_b.params(op)))
                    .with_context(|| format!("{}: measuring {}", b.name(), op.label()))?,
            );
        }
        let mut ratios: Vec<f64> = ra.iter().zip(&rb).map(|(x, y)| x / y).collect();
        rates[i] = Rates {
            a: median(&mut ra),
            b: median(&mut rb),
            ratio: median(&mut ratios),
        };
    }
    Ok(rates)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn check_options(opts: &SqlBenchOptions) -> anyhow::Result<()> {
    ensure!(
        (1..=ROWS_MAX).contains(&opts.rows),
        "--rows must be in 1..={ROWS_MAX}, got {}",
        opts.rows
    );
    ensure!(
        opts.seconds.is_finite() && opts.seconds > 0.0 && opts.seconds <= 3600.0,
        "--seconds must be in (0, 3600], got {}",
        opts.seconds
    );
    Ok(())
}

pub(super) fn run(opts: &SqlBenchOptions) -> anyhow::Result<()> {
    check_options(opts)?;
    let mut sqlite = SqliteDb::open()?;
    let (journal, synchronous) = sqlite.pragmas()?;
    let mut ohm = OhmDb::new();

    println!(
        "ohm bench sql: {} rows, {} s per measurement",
        opts.rows, opts.seconds
    );
    if cfg!(debug_assertions) {
        println!("WARNING: debug build: numbers are not meaningful, use --release");
    }
    println!(
        "transactions: every statement runs in its own autocommit transaction on both engines"
    );
    println!(
        "sqlite: in-memory, default settings (journal_mode={journal}, synchronous={synchronous}), \
         prepared statements via rusqlite's statement cache"
    );
    println!("ohm: Engine in-process, statements prepared once");

    let ohm_load = load(&mut ohm, opts.rows)?;
    let sqlite_load = load(&mut sqlite, opts.rows)?;
    println!(
        "load of {} rows: ohm {:.2} s, sqlite {:.2} s",
        opts.rows,
        ohm_load.as_secs_f64(),
        sqlite_load.as_secs_f64()
    );
    verify(&mut ohm, &mut sqlite, opts.rows)?;
    println!("verified: both engines agree on COUNT(*), SUM(balance) and sampled queries");

    let rates = measure_both(&mut ohm, &mut sqlite, opts)?;
    println!();
    println!(
        "each operation: {ROUNDS} rounds of {:.2} s per engine, taking turns; \
         medians of the rounds' rates and of their ratios",
        opts.seconds / ROUNDS as f64
    );
    println!(
        "{:<28} | {:>12} | {:>12} | {:>10}",
        "operation", "ohm ops/s", "sqlite ops/s", "ohm/sqlite"
    );
    println!("{:-<28}-+-{:->12}-+-{:->12}-+-{:->10}", "", "", "", "");
    for (op, r) in Op::ALL.into_iter().zip(&rates) {
        println!(
            "{:<28} | {:>12.0} | {:>12.0} | {:>10.2}",
            op.label(),
            r.a,
            r.b,
            r.ratio
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> SqlBenchOptions {
        SqlBenchOptions {
            rows: 1000,
            seconds: 0.05,
        }
    }

    #[test]
    fn sqlite_side_loads_verifies_and_measures() {
        let opts = tiny();
        let mut a = SqliteDb::open().unwrap();
        let mut b = SqliteDb::open().unwrap();
        load(&mut a, opts.rows).unwrap();
        load(&mut b, opts.rows).unwrap();
        verify(&mut a, &mut b, opts.rows).unwrap();
        let rates = measure_both(&mut a, &mut b, &opts).unwrap();
        assert_eq!(rates.len(), Op::ALL.len());
        assert!(
            rates
                .iter()
                .all(|r| r.a.is_finite() && r.b.is_finite() && r.ratio.is_finite()),
            "{rates:?}"
        );
        // The range scan really returns its 100 rows.
        let stmt = a.prepare(RANGE_SCAN).unwrap();
        let rows = a.rows(&stmt, &[Value::Int(1), Value::Int(100)]).unwrap();
        assert_eq!(rows.len(), 100);
    }

    #[test]
    fn verify_catches_different_data() {
        let mut a = SqliteDb::open().unwrap();
        let mut b = SqliteDb::open().unwrap();
        load(&mut a, 100).unwrap();
        load(&mut b, 101).unwrap();
        let err = verify(&mut a, &mut b, 100).unwrap_err();
        assert!(err.to_string().contains("disagree"), "{err}");
    }

    #[test]
    fn bad_options_are_rejected() {
        assert!(check_options(&SqlBenchOptions {
            rows: 0,
            seconds: 1.0
        })
        .is_err());
        assert!(check_options(&SqlBenchOptions {
            rows: 10,
            seconds: f64::NAN
        })
        .is_err());
        assert!(check_options(&tiny()).is_ok());
    }

    #[test]
    fn ohm_side_runs_end_to_end() {
        run(&tiny()).unwrap();
    }
}
