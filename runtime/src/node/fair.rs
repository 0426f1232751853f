//! Fair turns for tenants on one partition: the calls waiting at an
//! executor are served by start-time fair queueing on measured cost, so one
//! tenant's flood of expensive calls cannot starve another's cheap ones.
//!
//! Each tenant has a lane (its calls, in order) and a virtual finish time:
//! the virtual time its last call started plus what that call cost (µs of
//! the executor's time). A lane that gets a call while empty starts at the
//! later of its finish and the partition's virtual time (the start of the
//! call last taken); the lane with the earliest start goes next. A tenant
//! that just ran a long call thus waits while others run as long, and an
//! idle tenant builds no credit.
//!
//! Owns: the order calls are taken in. Must not: run calls, read the
//! clock (the executor measures and reports each call's cost).

use crate::types::TenantId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The least a call is charged (µs), so free calls still take turns.
const COST_MIN_US: u64 = 1;
/// Lanes kept beyond those with calls before the ones that neither wait
/// nor owe time are swept (a sweep looks at every lane).
const LANES_IDLE_MAX: usize = 64;

struct Lane<C> {
    calls: VecDeque<C>,
    /// Virtual start of the lane's next call (while it has calls), or the
    /// finish of its last one (while empty).
    start: u64,
}

/// The calls waiting at one executor, by tenant. Bounded by what the
/// executor admits (`PARTITION_QUEUE_MAX`); lanes that neither hold calls
/// nor owe time are swept once more than `LANES_IDLE_MAX` of them are kept,
/// so there is at most one per tenant of the node.
pub struct Fair<C> {
    lanes: BTreeMap<TenantId, Lane<C>>,
    /// Lanes with calls, by their virtual start.
    order: BTreeSet<(u64, TenantId)>,
    /// The virtual time: the virtual start of the call last taken (not a
    /// clock: it moves by what calls cost).
    vtime: u64,
    /// The lane of the call taken and not yet charged.
    taken: Option<(TenantId, u64)>,
    len: usize,
}

impl<C> Default for Fair<C> {
    fn default() -> Self {
        Fair {
            lanes: BTreeMap::new(),
            order: BTreeSet::new(),
            vtime: 0,
            taken: None,
            len: 0,
        }
    }
}

impl<C> Fair<C> {
    /// Calls waiting, over every lane.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls waiting in `tenant`'s lane.
    pub fn lane_len(&self, tenant: TenantId) -> usize {
        self.lanes.get(&tenant).map_or(0, |l| l.calls.len())
    }

    /// Whether a tenant other than `tenant` has calls waiting.
    pub fn others_waiting(&self, tenant: TenantId) -> bool {
        self.len > self.lane_len(tenant)
    }

    /// Queues `call` of `tenant` behind its earlier ones.
    pub fn push(&mut self, tenant: TenantId, call: C) {
        self.enqueue(tenant, call, false);
    }

    /// Queues `call` of `tenant` before its others (a call handed out and
    /// given back unrun).
    pub fn push_front(&mut self, tenant: TenantId, call: C) {
        self.enqueue(tenant, call, true);
    }

    fn enqueue(&mut self, tenant: TenantId, call: C, front: bool) {
        let now = self.vtime;
        let lane = self.lanes.entry(tenant).or_insert(Lane {
            calls: VecDeque::new(),
            start: now,
        });
        let waiting = !lane.calls.is_empty() || self.taken.is_some_and(|(t, _)| t == tenant);
        if !waiting {
            lane.start = lane.start.max(now);
            self.order.insert((lane.start, tenant));
        }
        if front {
            lane.calls.push_front(call);
        } else {
            lane.calls.push_back(call);
        }
        self.len += 1;
    }

    /// The next call to run: the first of the lane with the earliest start.
    /// Its cost is reported with `ran` before the next `take`.
    pub fn take(&mut self) -> Option<(TenantId, C)> {
        self.take_where(|_| true)
    }

    /// As `take`, among the lanes of tenants `ok` accepts (the others keep
    /// their place).
    pub fn take_where(&mut self, ok: impl Fn(TenantId) -> bool) -> Option<(TenantId, C)> {
        if self.taken.is_some() {
            self.ran(0);
        }
        let first = self.order.iter().find(|(_, t)| ok(*t)).copied()?;
        self.order.remove(&first);
        let (start, tenant) = first;
        let lane = self.lanes.get_mut(&tenant);
        let lane = lane.expect("a lane in `order` is kept");
        let call = lane.calls.pop_front();
        let call = call.expect("a lane in `order` has calls");
        self.len -= 1;
        self.vtime = self.vtime.max(start);
        self.taken = Some((tenant, start));
        Some((tenant, call))
    }

    /// The first call of `tenant`'s lane, out of turn and charged nothing
    /// (it runs elsewhere, taking none of the partition's time).
    pub fn take_from(&mut self, tenant: TenantId) -> Option<C> {
        let lane = self.lanes.get_mut(&tenant)?;
        let call = lane.calls.pop_front()?;
        self.len -= 1;
        let taken = self.taken.is_some_and(|(t, _)| t == tenant);
        if lane.calls.is_empty() && !taken {
            self.order.remove(&(lane.start, tenant));
        }
        Some(call)
    }

    /// The call last taken cost `cost_us`: its lane's next call starts that
    /// much later.
    pub fn ran(&mut self, cost_us: u64) {
        let Some((tenant, start)) = self.taken.take() else {
            return;
        };
        let lane = self.lanes.get_mut(&tenant);
        let lane = lane.expect("the lane of a call taken is kept until charged");
        lane.start = start.saturating_add(cost_us.max(COST_MIN_US));
        if !lane.calls.is_empty() {
            self.order.insert((lane.start, tenant));
        }
        // Lanes that neither wait nor owe time are forgotten, now and then.
        if self.lanes.len() > self.order.len() + LANES_IDLE_MAX {
            let now = self.vtime;
            self.lanes
                .retain(|_, l| !l.calls.is_empty() || l.start > now);
        }
    }

    /// Every waiting call, in the order they would be taken if each cost
    /// nothing (to answer them when the partition stops).
    pub fn drain(&mut self) -> Vec<(TenantId, C)> {
        let mut out = Vec::with_capacity(self.len);
        while let Some(c) = self.take() {
            out.push(c);
        }
        self.ran(0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(i: u32) -> TenantId {
        TenantId(i)
    }

    /// Takes `n` calls, charging each `cost(tenant)`; the tenants in order.
    fn run(f: &mut Fair<u32>, n: usize, cost: impl Fn(TenantId) -> u64) -> Vec<u32> {
        let mut order = Vec::new();
        for _ in 0..n {
            let Some((tenant, _)) = f.take() else { break };
            f.ran(cost(tenant));
            order.push(tenant.0);
        }
        order
    }

    #[test]
    fn a_cheap_call_goes_before_a_flood_queued_ahead_of_it() {
        let mut f = Fair::default();
        for i in 0..100 {
            f.push(t(2), i);
        }
        // Tenant 2's first call runs (1 ms), then tenant 1's call arrives.
        assert_eq!(run(&mut f, 1, |_| 1000), vec![2]);
        f.push(t(1), 0);
        assert_eq!(run(&mut f, 2, |_| 1000), vec![1, 2]);
        assert_eq!(f.len(), 98);
    }

    #[test]
    fn busy_tenants_share_by_cost_not_by_count() {
        let mut f = Fair::default();
        for i in 0..1000 {
            f.push(t(1), i);
            f.push(t(2), i);
        }
        // Tenant 1's calls cost 10 µs, tenant 2's 1,000 µs: each gets about
        // the same time, so tenant 1 runs about 100 calls per call of 2.
        let order = run(&mut f, 505, |t| if t.0 == 1 { 10 } else { 1000 });
        let ones = order.iter().filter(|&&x| x == 1).count();
        let twos = order.len() - ones;
        assert!(
            (495..=502).contains(&ones) && (3..=10).contains(&twos),
            "{ones} / {twos}"
        );
    }

    #[test]
    fn an_idle_tenant_builds_no_credit_but_a_costly_one_keeps_its_debt() {
        let mut f = Fair::default();
        // Tenant 1 alone for a long while.
        for i in 0..50 {
            f.push(t(1), i);
        }
        assert_eq!(run(&mut f, 50, |_| 100).len(), 50);
        // Tenant 2 arrives: it starts at the virtual time, not at 0, so
        // tenant 1 is not shut out for the 5 ms tenant 2 "missed"; they
        // alternate (tenant 2 first: tenant 1's last call ended later).
        for i in 0..10 {
            f.push(t(1), i);
            f.push(t(2), i);
        }
        assert_eq!(run(&mut f, 6, |_| 100), vec![2, 1, 2, 1, 2, 1]);
        // A call of 1 ms by tenant 1: tenant 2 now runs ten 100 µs calls.
        let mut f = Fair::default();
        f.push(t(1), 0);
        assert_eq!(run(&mut f, 1, |_| 1000), vec![1]);
        for i in 0..12 {
            f.push(t(1), i);
            f.push(t(2), i);
        }
        let order = run(&mut f, 11, |_| 100);
        assert_eq!(order.iter().filter(|&&x| x == 2).count(), 10, "{order:?}");
    }

    #[test]
    fn a_tenants_own_calls_keep_their_order_and_idle_lanes_are_swept() {
        let mut f = Fair::default();
        for i in 0..5 {
            f.push(t(1), i);
        }
        let mut got = Vec::new();
        while let Some((_, c)) = f.take() {
            f.ran(7);
            got.push(c);
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert!(f.is_empty());
        // Many tenants, one call each: each owes 1 µs until the virtual
        // time passes it; then their lanes go.
        for i in 0..1000 {
            f.push(t(10 + i), 0);
            f.take();
            f.ran(1);
        }
        assert_eq!(f.lanes.len(), 1001);
        f.push(t(5), 0);
        f.push(t(5), 1);
        assert_eq!(run(&mut f, 2, |_| 5), vec![5, 5]);
        assert!(f.lanes.len() <= 2, "{}", f.lanes.len());
        for i in 0..3 {
            f.push(t(3), i);
        }
        assert_eq!(f.drain().len(), 3);
        assert!(f.is_empty() && f.taken.is_none());
    }
}
