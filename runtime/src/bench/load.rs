//! The closed-loop load generator of the network benchmarks: C connections,
//! each with K calls outstanding, for a warm-up and then a measured span.
//! Owns the vote generator (seeded, deterministic), the latency histogram
//! and the per-second throughput samples. Knows nothing of Ohm or
//! PostgreSQL: a side hands in one `VoteFn` per connection.
//!
//! ```text
//!   VoteGen --(phone, contestant)--> C x K tasks --VoteFn--> server
//!                                        | outcome, latency
//!   sampler (1/s) <-- completed ---------+--> Histogram, Outcomes
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One vote in flight: resolves to the procedure's return code.
pub type VoteFuture = Pin<Box<dyn Future<Output = Result<i64, String>> + Send>>;
/// Casts a vote `(phone_number, contestant_number)` on one connection.
pub type VoteFn = Arc<dyn Fn(i64, i32) -> VoteFuture + Send + Sync>;

/// Contestants the client votes for (1..=6).
pub const CONTESTANTS: i32 = 6;
/// The contestant number no one has: about 1% of votes name it.
pub const INVALID_CONTESTANT: i32 = 999;
/// One vote in this many names `INVALID_CONTESTANT`.
const INVALID_ONE_IN: u64 = 100;
/// Error messages kept per run (the rest are only counted).
const ERROR_SAMPLES_MAX: usize = 5;

/// splitmix64: tiny, seedable, good enough to spread votes.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An integer in `0..n` (modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Draws votes the way the classic voter client does: a known area code
/// times 10^7 plus a random 7-digit number, contestants 1..=6, about 1% 999.
#[derive(Debug, Clone)]
pub struct VoteGen {
    rng: SplitMix,
}

impl VoteGen {
    pub fn new(seed: u64) -> VoteGen {
        VoteGen {
            rng: SplitMix::new(seed),
        }
    }

    /// The next `(phone_number, contestant_number)`.
    pub fn next_vote(&mut self) -> (i64, i32) {
        let codes = &ohm_voter::AREA_CODES;
        let area = codes[self.rng.below(codes.len() as u64) as usize].0 as i64;
        let phone = area * ohm_voter::PHONE_AREA_FACTOR
            + self.rng.below(ohm_voter::PHONE_AREA_FACTOR as u64) as i64;
        let contestant = if self.rng.below(INVALID_ONE_IN) == 0 {
            INVALID_CONTESTANT
        } else {
            1 + self.rng.below(CONTESTANTS as u64) as i32
        };
        (phone, contestant)
    }
}

/// Sub-buckets per power of two: latencies are kept within ~6%.
const HIST_SUB_BITS: u32 = 4;
const HIST_SUB: usize = 1 << HIST_SUB_BITS;
/// Powers of two covered: microseconds up to 2^40 (about 12 days).
const HIST_MAGNITUDES: usize = 40;

/// A log-linear histogram of latencies in microseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; HIST_MAGNITUDES * HIST_SUB],
            total: 0,
        }
    }
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        if us < HIST_SUB as u64 {
            return us as usize;
        }
        let mag = 63 - us.leading_zeros(); // >= HIST_SUB_BITS
        let sub = (us >> (mag - HIST_SUB_BITS)) as usize & (HIST_SUB - 1);
        let idx = (mag - HIST_SUB_BITS + 1) as usize * HIST_SUB + sub;
        idx.min(HIST_MAGNITUDES * HIST_SUB - 1)
    }

    /// The largest value that falls in bucket `idx`.
    fn upper(idx: usize) -> u64 {
        if idx < HIST_SUB {
            return idx as u64;
        }
        let mag = (idx / HIST_SUB) as u32 - 1 + HIST_SUB_BITS;
        let sub = (idx % HIST_SUB) as u64;
        let lo = (1u64 << mag) + (sub << (mag - HIST_SUB_BITS));
        lo + (1u64 << (mag - HIST_SUB_BITS)) - 1
    }

    pub fn record(&mut self, us: u64) {
        self.counts[Self::bucket(us)] += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), as its bucket's upper bound;
    /// None when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (idx, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::upper(idx));
            }
        }
        None
    }
}

/// What the votes returned, over a whole run (warm-up included, since the
/// invariants count every accepted vote).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub accepted: u64,
    pub invalid: u64,
    pub over_limit: u64,
    pub errors: u64,
    /// Other return codes (a bug on the server side).
    pub unexpected: u64,
}

impl Outcomes {
    fn record(&mut self, r: &Result<i64, String>) {
        match r {
            Ok(ohm_voter::VOTE_ACCEPTED) => self.accepted += 1,
            Ok(ohm_voter::VOTE_INVALID_CONTESTANT) => self.invalid += 1,
            Ok(ohm_voter::VOTE_OVER_LIMIT) => self.over_limit += 1,
            Ok(_) => self.unexpected += 1,
            Err(_) => self.errors += 1,
        }
    }

    pub fn add(&mut self, o: &Outcomes) {
        self.accepted += o.accepted;
        self.invalid += o.invalid;
        self.over_limit += o.over_limit;
        self.errors += o.errors;
        self.unexpected += o.unexpected;
    }
}

/// The shape of one run.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    pub in_flight: usize,
    pub warmup: Duration,
    pub measured: Duration,
    pub seed: u64,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Calls completed in each whole second after the warm-up.
    pub per_second: Vec<u64>,
    pub latency_us: Histogram,
    pub outcomes: Outcomes,
    pub error_samples: Vec<String>,
}

impl LoadReport {
    /// Median of the per-second samples (calls/s).
    pub fn median_rate(&self) -> f64 {
        median(&self.per_second)
    }
}

/// The median of `samples` (mean of the middle two for an even count).
pub fn median(samples: &[u64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2] as f64,
        n => (s[n / 2 - 1] + s[n / 2]) as f64 / 2.0,
    }
}

struct Shared {
    stop: AtomicBool,
    measuring: AtomicBool,
    completed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

/// Runs the load over `conns` (one entry per connection) and returns what
/// it measured. Must run inside a tokio runtime.
pub async fn run_load(conns: &[VoteFn], shape: LoadShape) -> LoadReport {
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        measuring: AtomicBool::new(false),
        completed: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
    });
    let mut tasks = Vec::new();
    let mut seeds = SplitMix::new(shape.seed);
    for conn in conns {
        for _ in 0..shape.in_flight {
            let (conn, shared) = (conn.clone(), shared.clone());
            let gen = VoteGen::new(seeds.next_u64());
            tasks.push(tokio::spawn(worker(conn, gen, shared)));
        }
    }
    tokio::time::sleep(shape.warmup).await;
    shared.measuring.store(true, Ordering::Relaxed);
    let per_second = sample_seconds(&shared, shape.measured).await;
    shared.measuring.store(false, Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);
    let mut report = LoadReport {
        per_second,
        ..LoadReport::default()
    };
    for task in tasks {
        if let Ok((hist, outcomes)) = task.await {
            report.latency_us.merge(&hist);
            report.outcomes.add(&outcomes);
        }
    }
    report.error_samples = std::mem::take(&mut *shared.errors.lock().expect("not poisoned"));
    report
}

async fn sample_seconds(shared: &Shared, measured: Duration) -> Vec<u64> {
    let seconds = measured.as_secs().max(1);
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await; // the first tick is immediate
    let mut last = shared.completed.load(Ordering::Relaxed);
    for _ in 0..seconds {
        ticker.tick().await;
        let now = shared.completed.load(Ordering::Relaxed);
        samples.push(now - last);
        last = now;
    }
    samples
}

async fn worker(conn: VoteFn, mut gen: VoteGen, shared: Arc<Shared>) -> (Histogram, Outcomes) {
    let mut hist = Histogram::default();
    let mut outcomes = Outcomes::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let (phone, contestant) = gen.next_vote();
        let started = Instant::now();
        let result = conn(phone, contestant).await;
        let us = started.elapsed().as_micros() as u64;
        outcomes.record(&result);
        shared.completed.fetch_add(1, Ordering::Relaxed);
        if shared.measuring.load(Ordering::Relaxed) {
            hist.record(us);
        }
        if let Err(e) = result {
            let mut errors = shared.errors.lock().expect("not poisoned");
            if errors.len() < ERROR_SAMPLES_MAX {
                errors.push(e);
            }
        }
    }
    (hist, outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn votes_use_known_area_codes_and_about_one_percent_invalid() {
        let known: BTreeSet<i64> = ohm_voter::AREA_CODES.iter().map(|c| c.0 as i64).collect();
        let mut gen = VoteGen::new(42);
        let n = 100_000;
        let mut invalid = 0;
        let mut seen_codes = BTreeSet::new();
        for _ in 0..n {
            let (phone, contestant) = gen.next_vote();
            let area = phone / ohm_voter::PHONE_AREA_FACTOR;
            assert!(known.contains(&area), "unknown area code {area}");
            seen_codes.insert(area);
            if contestant == INVALID_CONTESTANT {
                invalid += 1;
            } else {
                assert!((1..=CONTESTANTS).contains(&contestant));
            }
        }
        assert!((700..1300).contains(&invalid), "{invalid} invalid of {n}");
        assert_eq!(seen_codes.len(), known.len());
        let again: Vec<_> = (0..5).map(|_| VoteGen::new(7).next_vote()).collect();
        assert!(again.windows(2).all(|w| w[0] == w[1]), "seeded");
    }

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=10_000u64 {
            h.record(us);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 / 5000.0 - 1.0).abs() < 0.07, "p50 {p50}");
        assert!((p99 / 9900.0 - 1.0).abs() < 0.07, "p99 {p99}");
        assert_eq!(h.quantile(1.0).map(|v| v >= 10_000), Some(true));
        let mut small = Histogram::default();
        small.record(3);
        small.merge(&h);
        assert_eq!(small.count(), 10_001);
        assert_eq!(small.quantile(0.0), Some(1));
    }

    #[test]
    fn histogram_buckets_are_ordered_and_bounded() {
        let mut last = 0;
        for us in (0..1_000_000u64).step_by(97).chain([u64::MAX]) {
            let b = Histogram::bucket(us);
            assert!(b >= last);
            last = b;
            if us < 1 << 39 {
                assert!(Histogram::upper(b) >= us, "{us}");
            }
        }
    }

    #[test]
    fn median_of_samples() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[5, 1, 3]), 3.0);
        assert_eq!(median(&[4, 1, 3, 2]), 2.5);
    }

    #[test]
    fn load_runs_and_counts_outcomes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let conn: VoteFn = Arc::new(|_, contestant| {
            Box::pin(async move {
                tokio::task::yield_now().await;
                Ok(if contestant == INVALID_CONTESTANT {
                    1
                } else {
                    0
                })
            })
        });
        let shape = LoadShape {
            in_flight: 2,
            warmup: Duration::from_millis(10),
            measured: Duration::from_secs(1),
            seed: 1,
        };
        let report = rt.block_on(run_load(&[conn.clone(), conn], shape));
        assert_eq!(report.per_second.len(), 1);
        let o = &report.outcomes;
        assert!(o.accepted > 0 && o.invalid > 0 && o.errors == 0);
        assert!(report.latency_us.count() > 0);
    }
}
