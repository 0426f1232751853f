//! `ohm bench proc`: the voter workload's `vote` procedure in-process, as
//! Wasm and, in the same run, as the very same Rust compiled natively, each
//! against its own identical engine. No network, one partition, one core.
//!
//! Owns: the voter call generator (`../shared/WORKLOADS.md`: six
//! contestants, `max_votes = 2`, about 1% of votes for contestant 999), the
//! alternating measurement, and the workload's invariants, checked on both
//! sides after the run. Must not: give one side an advantage; both run the
//! same calls, in the same order, through the same `ProcHost::call`.

use super::{measure, Rng};
use crate::sql::{Engine, QueryResult};
use crate::types::Value;
use crate::wasm::{testing, ProcHost, ProcOutput, TxnContext, WasmRuntime};
use anyhow::{bail, ensure, Context};
use std::path::PathBuf;
use std::time::Duration;

/// Options of `ohm bench proc`.
#[derive(Debug, Clone)]
pub struct ProcBenchOptions {
    /// Seconds each measured phase runs.
    pub seconds: f64,
    /// Measured phases per side; the sides alternate, and the median counts.
    pub rounds: usize,
    /// The voter module; default: where `cargo procs` puts it.
    pub wasm: Option<PathBuf>,
}

impl Default for ProcBenchOptions {
    fn default() -> Self {
        ProcBenchOptions {
            seconds: 2.0,
            rounds: 5,
            wasm: None,
        }
    }
}

const CONTESTANTS: i32 = 6;
const CONTESTANT_NAMES: &str = "Edwina Burnam,Tabatha Gehling,Kelly Clauss,\
     Jessie Alloway,Alana Bregman,Jessie Eichman";
const MAX_VOTES: i64 = 2;
/// One call in this many names a contestant that does not exist.
const INVALID_EVERY: u64 = 100;
const INVALID_CONTESTANT: i64 = 999;
const WARMUP: Duration = Duration::from_millis(300);
const ROUNDS_MAX: usize = 100;
const SEED: u64 = 0x0_70_7E;

/// One side of the comparison: an engine, a host with the voter module
/// deployed, and the call generator.
struct Side {
    label: &'static str,
    engine: Engine,
    host: ProcHost,
    rng: Rng,
    txn: i64,
    /// Calls by outcome: accepted, invalid contestant, over the limit.
    outcomes: [u64; 3],
    fuel_used: u64,
}

impl Side {
    fn new(label: &'static str, runtime: &WasmRuntime) -> anyhow::Result<Side> {
        let mut engine = Engine::new();
        for ddl in ohm_voter::SCHEMA {
            engine
                .execute(ddl)
                .with_context(|| format!("voter schema: {ddl}"))?;
        }
        Ok(Side {
            label,
            engine,
            host: ProcHost::new(runtime.clone()),
            rng: Rng::new(SEED),
            txn: 0,
            outcomes: [0; 3],
            fuel_used: 0,
        })
    }

    fn call(&mut self, procedure: &str, args: &[Value]) -> anyhow::Result<ProcOutput> {
        self.txn += 1;
        let txn = TxnContext {
            timestamp_us: 1_700_000_000_000_000 + self.txn,
            seed: self.txn as u64,
        };
        let outcome = self
            .host
            .call(&mut self.engine, procedure, args, txn)
            .with_context(|| format!("{}: {procedure}", self.label))?;
        self.fuel_used += outcome.fuel_used;
        Ok(outcome.output)
    }

    /// One `vote` call with the next generated arguments; returns its code.
    fn vote(&mut self) -> anyhow::Result<u64> {
        let (code, _) = ohm_voter::AREA_CODES
            [(self.rng.next_u64() % ohm_voter::AREA_CODES.len() as u64) as usize];
        let phone = code as i64 * ohm_voter::PHONE_AREA_FACTOR + self.rng.range(0, 9_999_999);
        let contestant = if self.rng.next_u64().is_multiple_of(INVALID_EVERY) {
            INVALID_CONTESTANT
        } else {
            self.rng.range(1, CONTESTANTS as i64)
        };
        let args = [
            Value::Int(phone),
            Value::Int(contestant),
            Value::Int(MAX_VOTES),
        ];
        let out = self.call("vote", &args)?;
        let code = match out {
            ProcOutput::Value(Value::Int(c)) if (0..3).contains(&c) => c as usize,
            other => bail!("{}: vote returned {other:?}", self.label),
        };
        self.outcomes[code] += 1;
        Ok(code as u64)
    }

    fn calls(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    fn scalar(&mut self, sql: &str) -> anyhow::Result<i64> {
        match self.engine.execute(sql)? {
            QueryResult::Rows(r) => match r.rows.first().and_then(|row| row.first()) {
                Some(Value::Int(n)) => Ok(*n),
                other => bail!("{sql}: expected one integer, got {other:?}"),
            },
            other => bail!("{sql}: expected rows, got {other:?}"),
        }
    }

    /// The workload's invariants: `results()` sums to the accepted votes the
    /// generator counted, no phone is over the limit, and the per-contestant
    /// totals equal a GROUP BY over `votes`.
    fn verify(&mut self) -> anyhow::Result<()> {
        let label = self.label;
        let rows = match self.call("results", &[])? {
            ProcOutput::Rows(r) => r.rows,
            other => bail!("{label}: results returned {other:?}"),
        };
        ensure!(
            rows.len() == CONTESTANTS as usize,
            "{label}: results has {} rows, expected {CONTESTANTS}",
            rows.len()
        );
        let mut sum = 0;
        for row in &rows {
            let (Some(Value::Int(number)), Some(Value::Int(total))) = (row.get(1), row.get(2))
            else {
                bail!("{label}: results row {row:?} is not (name, number, total)");
            };
            let counted = self.scalar(&format!(
                "SELECT COUNT(*) FROM votes WHERE contestant_number = {number}"
            ))?;
            ensure!(
                counted == *total,
                "{label}: contestant {number}: results says {total}, GROUP BY says {counted}"
            );
            sum += total;
        }
        ensure!(
            sum as u64 == self.outcomes[0],
            "{label}: results sums to {sum}, but {} votes were accepted",
            self.outcomes[0]
        );
        let over = self.scalar(&format!(
            "SELECT COUNT(*) FROM (SELECT phone_number FROM votes \
             GROUP BY phone_number HAVING COUNT(*) > {MAX_VOTES}) AS t"
        ))?;
        ensure!(
            over == 0,
            "{label}: {over} phones have more than {MAX_VOTES} votes"
        );
        Ok(())
    }
}

/// Runs the benchmark and prints calls/s for both sides and their ratio.
pub fn run(opts: &ProcBenchOptions) -> anyhow::Result<()> {
    ensure!(
        opts.seconds > 0.0 && opts.seconds.is_finite(),
        "--seconds must be a positive number"
    );
    ensure!(
        (1..=ROUNDS_MAX).contains(&opts.rounds),
        "--rounds must be between 1 and {ROUNDS_MAX}"
    );
    let path = match &opts.wasm {
        Some(p) => p.clone(),
        None => testing::procedure_wasm("ohm_voter").map_err(anyhow::Error::msg)?,
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let runtime = WasmRuntime::new()?;
    let mut wasm = Side::new("wasm", &runtime)?;
    wasm.host
        .deploy_wasm(&mut wasm.engine, "voter", &bytes)
        .with_context(|| format!("deploying {}", path.display()))?;
    let mut native = Side::new("native", &runtime)?;
    native
        .host
        .deploy_native(&mut native.engine, "voter", ohm_voter::module())?;
    for side in [&mut wasm, &mut native] {
        let names = Value::Text(CONTESTANT_NAMES.into());
        side.call("initialize", &[Value::Int(CONTESTANTS as i64), names])?;
    }

    println!(
        "ohm bench proc: voter `vote` in-process, one partition, one thread; \
         {} s per phase, {} rounds, sides alternate",
        opts.seconds, opts.rounds
    );
    println!("wasm module: {} ({} bytes)", path.display(), bytes.len());
    let measured = Duration::from_secs_f64(opts.seconds);
    let (mut wasm_rates, mut native_rates) = (Vec::new(), Vec::new());
    for round in 0..opts.rounds {
        // Alternate which side goes first, so neither always runs on a
        // warmer (or fuller) machine.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let (side, rates) = match which {
                0 => (&mut wasm, &mut wasm_rates),
                _ => (&mut native, &mut native_rates),
            };
            rates.push(measure(WARMUP, measured, || side.vote())?);
        }
        println!(
            "round {}: wasm {:>9.0} calls/s   native {:>9.0} calls/s",
            round + 1,
            wasm_rates[round],
            native_rates[round]
        );
    }
    wasm.verify()?;
    native.verify()?;
    let (w, n) = (median(&mut wasm_rates), median(&mut native_rates));
    println!();
    println!(
        "{:<8} {:>12} {:>12} {:>14}",
        "side", "calls/s", "us/call", "votes stored"
    );
    for (side, rate) in [(&wasm, w), (&native, n)] {
        println!(
            "{:<8} {:>12.0} {:>12.2} {:>14}",
            side.label,
            rate,
            1e6 / rate,
            side.outcomes[0]
        );
    }
    println!();
    println!(
        "native/wasm: {:.2}x (a Wasm call takes that many times a native one)",
        n / w
    );
    println!(
        "wasm fuel per call: {:.0} (mean over {} calls, initialize and results included)",
        wasm.fuel_used as f64 / wasm.calls().max(1) as f64,
        wasm.calls()
    );
    println!(
        "invariants hold on both sides: results() = accepted votes, no phone over \
         {MAX_VOTES} votes, per-contestant totals = GROUP BY"
    );
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
