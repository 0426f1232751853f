//! A fault schedule: what `ohm torture` does to the cluster and when,
//! drawn from a seed. Pure: the same seed and sizes give the same plan, so
//! a schedule that found something can be run again (`--seed`).
//!
//! Owns: the kinds of fault and the plan of steps. Must not: touch
//! processes or the network (the runner does), or read a clock.
//!
//! ```text
//!   seed, nodes, seconds --plan--> [Step { start_ms, hold_ms, faults }]
//!   one step at a time: faults start at start_ms, all healed at
//!   start_ms + hold_ms, then a quiet gap before the next step
//! ```

use crate::rng::Rng;
use std::fmt;

/// Faults one step may combine.
pub const STEP_FAULTS_MAX: usize = 2;
/// Steps one schedule may have (a bound on `--seconds` as well).
pub const STEPS_MAX: usize = 1000;
/// When the first fault may start: the workload runs unharmed first.
const FIRST_FAULT_MS: (u64, u64) = (500, 1500);
/// How long a fault holds.
const HOLD_MS: (u64, u64) = (800, 4000);
/// The quiet gap after a step is healed.
const GAP_MS: (u64, u64) = (300, 2000);
/// Packet loss drawn for a loss fault, in percent.
const LOSS_PERCENT: (u64, u64) = (5, 40);

/// A node a fault hits: the one leading partition 0 when the fault starts
/// (every partition's leader gathers there), or a fixed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Leader,
    Node(usize),
}

/// One fault, healed at the end of its step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// kill -9; restarted when healed.
    Kill(Target),
    /// SIGSTOP; SIGCONT when healed.
    Pause(Target),
    /// Cut from every other node (clients still reach it).
    Isolate(Target),
    /// `minority` nodes (with the leader when `with_leader`) cut from the
    /// rest.
    Split { minority: usize, with_leader: bool },
    /// Two sides that do not hear each other, and `Target` in the middle,
    /// heard by both.
    Bridge(Target),
    /// Every node drops this share of the packets it receives.
    Loss { percent: u32 },
}

/// Faults that start together and are healed together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub start_ms: u64,
    pub hold_ms: u64,
    pub faults: Vec<Fault>,
}

/// The steps of a schedule of `seconds` on `nodes` nodes (3 or more).
pub fn plan(seed: u64, nodes: usize, seconds: u64) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let end_ms = seconds.saturating_mul(1000);
    let mut steps = Vec::new();
    let mut at = rng.range(FIRST_FAULT_MS.0, FIRST_FAULT_MS.1);
    while at < end_ms && steps.len() < STEPS_MAX {
        let hold_ms = rng
            .range(HOLD_MS.0, HOLD_MS.1)
            .min(end_ms.saturating_sub(at).max(HOLD_MS.0));
        let mut faults = vec![fault(&mut rng, nodes)];
        // Now and then a second fault joins the first: loss under a kill,
        // a pause during a split.
        if rng.below(4) == 0 && faults.len() < STEP_FAULTS_MAX {
            faults.push(fault(&mut rng, nodes));
        }
        steps.push(Step {
            start_ms: at,
            hold_ms,
            faults,
        });
        at += hold_ms + rng.range(GAP_MS.0, GAP_MS.1);
    }
    steps
}

fn target(rng: &mut Rng, nodes: usize) -> Target {
    // Half the time the leader: most bugs live in a change of leader.
    if rng.below(2) == 0 {
        Target::Leader
    } else {
        Target::Node(rng.below(nodes as u64) as usize)
    }
}

fn fault(rng: &mut Rng, nodes: usize) -> Fault {
    match rng.below(6) {
        0 => Fault::Kill(target(rng, nodes)),
        1 => Fault::Pause(target(rng, nodes)),
        2 => Fault::Isolate(target(rng, nodes)),
        3 => Fault::Split {
            minority: 1 + rng.below(((nodes - 1) / 2) as u64) as usize,
            with_leader: rng.below(2) == 0,
        },
        4 => Fault::Bridge(target(rng, nodes)),
        _ => Fault::Loss {
            percent: rng.range(LOSS_PERCENT.0, LOSS_PERCENT.1) as u32,
        },
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Leader => write!(f, "the leader"),
            Target::Node(i) => write!(f, "n{}", i + 1),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(t) => write!(f, "kill -9 {t}"),
            Fault::Pause(t) => write!(f, "pause {t}"),
            Fault::Isolate(t) => write!(f, "isolate {t}"),
            Fault::Split {
                minority,
                with_leader,
            } => write!(
                f,
                "split off {minority} node(s){}",
                if *with_leader { " with the leader" } else { "" }
            ),
            Fault::Bridge(t) => write!(f, "bridge through {t}"),
            Fault::Loss { percent } => write!(f, "{percent}% loss"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_plan_within_its_time_and_bounds() {
        for seed in 0..200 {
            for nodes in [3, 5] {
                let a = plan(seed, nodes, 20);
                assert_eq!(a, plan(seed, nodes, 20), "seed {seed} replays");
                assert!(!a.is_empty());
                let mut prev_end = 0;
                for s in &a {
                    assert!(s.start_ms >= prev_end, "steps do not overlap: {a:?}");
                    assert!(s.start_ms < 20_000);
                    assert!((1..=STEP_FAULTS_MAX).contains(&s.faults.len()));
                    prev_end = s.start_ms + s.hold_ms;
                    for f in &s.faults {
                        match f {
                            Fault::Split { minority, .. } => {
                                assert!(*minority >= 1 && *minority <= (nodes - 1) / 2)
                            }
                            Fault::Kill(Target::Node(i))
                            | Fault::Pause(Target::Node(i))
                            | Fault::Isolate(Target::Node(i))
                            | Fault::Bridge(Target::Node(i)) => assert!(*i < nodes),
                            _ => {}
                        }
                    }
                }
            }
        }
        assert_ne!(plan(1, 3, 20), plan(2, 3, 20));
    }

    #[test]
    fn every_kind_of_fault_is_drawn() {
        let mut seen = [false; 6];
        for seed in 0..50 {
            for s in plan(seed, 5, 30) {
                for f in s.faults {
                    let k = match f {
                        Fault::Kill(_) => 0,
                        Fault::Pause(_) => 1,
                        Fault::Isolate(_) => 2,
                        Fault::Split { .. } => 3,
                        Fault::Bridge(_) => 4,
                        Fault::Loss { .. } => 5,
                    };
                    seen[k] = true;
                }
            }
        }
        assert_eq!(seen, [true; 6]);
    }
}
