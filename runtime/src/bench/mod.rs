//! `ohm bench`: throughput measurements printed for people, never asserted.
//!
//! Owns: the timing loop, the deterministic RNG the workloads draw from, and
//! the workloads themselves (`sql`: Ohm's engine against SQLite; `proc`: the
//! voter procedure as Wasm against the same code native; `voter`: the voter
//! workload over QUIC against a node, beside PostgreSQL, or against local
//! clusters; `failover`: leaders killed under writes; `isolation`: one
//! tenant's latency while another runs its worst; `snapshot`: how long a
//! partition stops answering while a large state is snapshotted; `tpch`:
//! the 22 TPC-H queries as written, Ohm's engine beside SQLite). Must not:
//! be used by the node at run time, or turn a timing into a pass/fail.
//!
//! ```text
//!   options --> workload (schema, load, verify) --> measure(op) per engine
//!                                                        |
//!                                       table of ops/s <-+
//! ```

pub mod bulk;
mod engines;
pub mod failover;
pub mod isolation;
pub mod load;
pub mod local_cluster;
pub mod postgres;
mod proc;
pub mod snapshot;
mod sql;
pub mod tpch;
pub mod voter;

pub use proc::{run as run_proc, ProcBenchOptions};

use std::time::{Duration, Instant};

/// Options of `ohm bench sql`.
#[derive(Debug, Clone)]
pub struct SqlBenchOptions {
    /// Rows loaded into `accounts` before the reads are measured.
    pub rows: usize,
    /// Wall-clock seconds each measurement runs (after a short warm-up).
    pub seconds: f64,
}

impl Default for SqlBenchOptions {
    fn default() -> Self {
        SqlBenchOptions {
            rows: 100_000,
            seconds: 2.0,
        }
    }
}

/// Runs the SQL benchmark (Ohm's engine against in-memory SQLite) and prints
/// a table of operations per second. Errs if an engine fails a statement or
/// the two engines disagree about the data.
pub fn run_sql(opts: &SqlBenchOptions) -> anyhow::Result<()> {
    sql::run(opts)
}

/// Deterministic xorshift64* generator: the same seed draws the same ids on
/// both engines, so they do the same work.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Zero is xorshift's fixed point; any other constant would do.
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough integer in `lo..=hi` (modulo bias is irrelevant here).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as i64
    }
}

/// Operations between two looks at the clock: reading it costs about as much
/// as a point select, so look only every so often.
const OPS_PER_CLOCK_CHECK: u64 = 16;

/// Runs `op` for `warmup` unmeasured, then for `measured`, and returns
/// operations per second of the measured part. `op` returns a checksum of the
/// work it did, which is black-boxed so the work cannot be optimised out.
fn measure(
    warmup: Duration,
    measured: Duration,
    mut op: impl FnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<f64> {
    run_for(warmup, &mut op)?;
    let (ops, elapsed) = run_for(measured, &mut op)?;
    Ok(ops as f64 / elapsed.as_secs_f64())
}

/// Calls `op` until `span` has passed; returns the calls made and the time
/// taken (at least `span`).
fn run_for(
    span: Duration,
    op: &mut impl FnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let mut ops = 0u64;
    let mut checksum = 0u64;
    loop {
        for _ in 0..OPS_PER_CLOCK_CHECK {
            checksum = checksum.wrapping_add(op()?);
        }
        ops += OPS_PER_CLOCK_CHECK;
        let elapsed = start.elapsed();
        if elapsed >= span {
            std::hint::black_box(checksum);
            return Ok((ops, elapsed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.range(5, 9);
            assert_eq!(x, b.range(5, 9));
            assert!((5..=9).contains(&x));
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn measure_propagates_errors() {
        let err = measure(Duration::ZERO, Duration::ZERO, || anyhow::bail!("boom"));
        assert!(err.is_err());
    }
}
