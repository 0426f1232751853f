//! The simulated network: every message is delayed, and may be dropped,
//! duplicated (the copy on its own delay, so messages also reorder), or
//! cut by a partition between nodes.

use crate::rng::Rng;
use std::collections::{BTreeMap, BTreeSet};

/// One seed's network weather.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Per message, in parts per million.
    pub drop_ppm: u32,
    pub duplicate_ppm: u32,
    /// Usual one-way delay, uniform in this range.
    pub delay_us: (u64, u64),
    /// Some messages are much later.
    pub spike_ppm: u32,
    pub spike_us: u64,
}

impl NetConfig {
    /// A random mix for one seed; `faults` off: a clean network.
    pub fn draw(rng: &mut Rng, faults: bool) -> NetConfig {
        if !faults {
            return NetConfig {
                drop_ppm: 0,
                duplicate_ppm: 0,
                delay_us: (100, 500),
                spike_ppm: 0,
                spike_us: 0,
            };
        }
        NetConfig {
            drop_ppm: rng.range(0, 50_000) as u32,
            duplicate_ppm: rng.range(0, 20_000) as u32,
            delay_us: (rng.range(50, 300), rng.range(500, 3_000)),
            spike_ppm: rng.range(0, 20_000) as u32,
            spike_us: rng.range(5_000, 80_000),
        }
    }
}

/// Links and their faults between endpoints: nodes `0..n`, then clients.
#[derive(Debug)]
pub struct Net {
    pub cfg: NetConfig,
    /// Partitions in force, by id: endpoint pairs (both directions
    /// listed) that drop everything.
    cuts: BTreeMap<u64, BTreeSet<(usize, usize)>>,
    next_cut: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

impl Net {
    pub fn new(cfg: NetConfig) -> Net {
        Net {
            cfg,
            cuts: BTreeMap::new(),
            next_cut: 0,
            dropped: 0,
            duplicated: 0,
        }
    }

    /// Cuts every link between `side` and the other endpoints of `0..n`;
    /// the partition's id, for `heal`.
    pub fn partition(&mut self, side: &[usize], n: usize) -> u64 {
        let mut cut = BTreeSet::new();
        for &a in side {
            for b in (0..n).filter(|b| !side.contains(b)) {
                cut.insert((a, b));
                cut.insert((b, a));
            }
        }
        self.add(cut)
    }

    /// Cuts the two directions of one link; the partition's id.
    pub fn cut_link(&mut self, a: usize, b: usize) -> u64 {
        self.add(BTreeSet::from([(a, b), (b, a)]))
    }

    fn add(&mut self, cut: BTreeSet<(usize, usize)>) -> u64 {
        self.next_cut += 1;
        self.cuts.insert(self.next_cut, cut);
        self.next_cut
    }

    /// Ends one partition (others stay).
    pub fn heal(&mut self, id: u64) {
        self.cuts.remove(&id);
    }

    pub fn heal_all(&mut self) {
        self.cuts.clear();
    }

    /// Whether the link from `from` to `to` is cut now (a message in flight
    /// when a partition starts is lost too).
    pub fn cut(&self, from: usize, to: usize) -> bool {
        self.cuts.values().any(|c| c.contains(&(from, to)))
    }

    /// The delays of the copies of one message from endpoint `from` to
    /// endpoint `to`: none when it is lost, two when it is duplicated (only
    /// if `may_duplicate`).
    pub fn delays(
        &mut self,
        rng: &mut Rng,
        from: usize,
        to: usize,
        may_duplicate: bool,
    ) -> Vec<u64> {
        if self.cut(from, to) {
            self.dropped += 1;
            return Vec::new();
        }
        if rng.chance(self.cfg.drop_ppm) {
            self.dropped += 1;
            return Vec::new();
        }
        let one = |rng: &mut Rng| {
            let (lo, hi) = self.cfg.delay_us;
            let d = rng.range(lo, hi.max(lo + 1));
            if rng.chance(self.cfg.spike_ppm) {
                d + self.cfg.spike_us
            } else {
                d
            }
        };
        let mut out = vec![one(rng)];
        if may_duplicate && rng.chance(self.cfg.duplicate_ppm) {
            self.duplicated += 1;
            out.push(one(rng));
        }
        out
    }
}
