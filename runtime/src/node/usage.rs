//! What each tenant uses on this node right now: connections open,
//! requests unanswered, and the rate it starts calls at. Each is taken as
//! the thing begins and checked against the tenant's quota
//! (`catalog::Quota`: the node's defaults with what an administrator set);
//! going over is a `quota_exceeded` answer for that request or connection
//! alone, and other tenants never notice.
//!
//! Owns: the counters and their checks. Must not: block (a dispatch must
//! not): every counter is an atomic, and the map of tenants is locked only
//! to find or add one, at `auth`.
//!
//! Bounds: one entry per tenant that authenticated, so at most
//! `catalog::TENANTS_MAX` (a tenant is never removed while the node runs).

use crate::catalog::{Quota, QuotaError};
use crate::types::TenantId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Nanoseconds in a second: the burst a rate lets through at once.
const SECOND_NS: u64 = 1_000_000_000;

/// Every tenant's use of this node.
pub struct Usage {
    started: Instant,
    tenants: Mutex<HashMap<TenantId, Arc<TenantUsage>>>,
}

/// One tenant's use of this node.
pub struct TenantUsage {
    /// What its requests did, for `--metrics` (`node::metrics`).
    pub metrics: super::metrics::TenantMetrics,
    started: Instant,
    connections: AtomicU64,
    in_flight: AtomicU64,
    /// When, in ns since `started`, the tenant's next call would be on
    /// time at its rate (the "theoretical arrival time" of a generic cell
    /// rate algorithm): a call is taken while this is at most a second
    /// ahead of now, and moves it on by one call's share of a second.
    calls_due_ns: AtomicU64,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            started: Instant::now(),
            tenants: Mutex::default(),
        }
    }
}

impl Usage {
    /// A tenant's counters (made at its first connection).
    pub fn of(&self, tenant: TenantId) -> Arc<TenantUsage> {
        // Held only to find or add an entry: never across a request.
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants
            .entry(tenant)
            .or_insert_with(|| {
                Arc::new(TenantUsage {
                    metrics: super::metrics::TenantMetrics::default(),
                    started: self.started,
                    connections: AtomicU64::new(0),
                    in_flight: AtomicU64::new(0),
                    calls_due_ns: AtomicU64::new(0),
                })
            })
            .clone()
    }
}

impl Usage {
    /// Every tenant that authenticated here, by id.
    pub fn all(&self) -> Vec<(TenantId, Arc<TenantUsage>)> {
        let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = tenants.iter().map(|(t, u)| (*t, u.clone())).collect();
        all.sort_by_key(|(t, _)| *t);
        all
    }
}

/// Takes one from `counter` unless it is at `max` already.
fn take(counter: &AtomicU64, max: u64) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

impl TenantUsage {
    /// A connection of the tenant, counted until the guard is dropped.
    pub fn connect(self: &Arc<Self>, quota: &Quota) -> Result<Connected, QuotaError> {
        if !take(&self.connections, quota.connections_max) {
            return Err(QuotaError::Connections {
                max: quota.connections_max,
            });
        }
        Ok(Connected(self.clone()))
    }

    /// Connections open now.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests unanswered now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A request of the tenant of kind `op` (`metrics::OPS`), counted
    /// unanswered until the guard is dropped and timed from now; `call` (a
    /// call or ad-hoc SQL) also counts against the tenant's rate. Refused
    /// requests take nothing.
    pub fn begin(
        self: &Arc<Self>,
        quota: &Quota,
        call: bool,
        op: usize,
    ) -> Result<InFlight, QuotaError> {
        if !take(&self.in_flight, quota.in_flight_max) {
            return Err(QuotaError::InFlight {
                max: quota.in_flight_max,
            });
        }
        let guard = InFlight {
            usage: self.clone(),
            op,
            began: Instant::now(),
        };
        if call && !self.take_call(quota.calls_per_sec, self.started.elapsed()) {
            return Err(QuotaError::CallsPerSec {
                max: quota.calls_per_sec,
            });
        }
        Ok(guard)
    }

    /// Whether a call may start at `now` (since the node's start) at
    /// `per_sec` calls a second, with a second's worth at once.
    fn take_call(&self, per_sec: u64, now: std::time::Duration) -> bool {
        if per_sec == 0 {
            return false;
        }
        let now = now.as_nanos() as u64;
        let each = (SECOND_NS / per_sec).max(1);
        self.calls_due_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |due| {
                let due = due.max(now);
                (due - now + each <= SECOND_NS).then_some(due + each)
            })
            .is_ok()
    }

    #[cfg(test)]
    fn counts(&self) -> (u64, u64) {
        (
            self.connections.load(Ordering::Acquire),
            self.in_flight.load(Ordering::Acquire),
        )
    }
}

/// A tenant's open connection (counted until dropped).
pub struct Connected(Arc<TenantUsage>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A tenant's unanswered request (counted until dropped).
pub struct InFlight {
    usage: Arc<TenantUsage>,
    op: usize,
    began: Instant,
}

impl crate::net::server::AnswerGuard for InFlight {
    fn answered(&mut self, error: Option<crate::proto::ErrorCode>) {
        self.usage
            .metrics
            .answered(self.op, error, self.began.elapsed());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.usage.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(connections_max: u64, in_flight_max: u64, calls_per_sec: u64) -> Quota {
        Quota {
            connections_max,
            in_flight_max,
            calls_per_sec,
            ..Quota::default()
        }
    }

    #[test]
    fn connections_and_requests_are_counted_until_their_guards_go() {
        let usage = Usage::default();
        let (a, b) = (usage.of(TenantId(1)), usage.of(TenantId(2)));
        let q = quota(2, 1, 1_000);
        let c1 = a.connect(&q).unwrap();
        let _c2 = a.connect(&q).unwrap();
        let e = a.connect(&q).err().unwrap();
        assert_eq!(e, QuotaError::Connections { max: 2 });
        assert!(e.to_string().contains("connections_max"), "{e}");
        // Another tenant has its own count.
        let _b1 = b.connect(&q).unwrap();
        drop(c1);
        let _c3 = a.connect(&q).unwrap();
        let r1 = a.begin(&q, false, 0).unwrap();
        assert_eq!(
            a.begin(&q, true, 0).err(),
            Some(QuotaError::InFlight { max: 1 })
        );
        drop(r1);
        assert!(a.begin(&q, false, 0).is_ok());
        assert_eq!(a.counts(), (2, 0), "a refused request takes nothing");
    }

    #[test]
    fn calls_are_taken_at_the_rate_with_a_seconds_burst() {
        let usage = Usage::default();
        let a = usage.of(TenantId(1));
        let at = |ms: u64| std::time::Duration::from_millis(1_000 + ms);
        let taken = |t| (0..20).filter(|_| a.take_call(5, at(t))).count();
        assert_eq!(taken(0), 5, "one second's worth at once");
        assert_eq!(taken(100), 0, "the next is due 200 ms after the burst");
        assert_eq!(taken(450), 2, "one every 200 ms");
        assert_eq!(taken(5_000), 5, "no more than a second's worth saved up");
        // Through `begin`: a request refused by the rate gives its place
        // in flight back; requests that are not calls do not count.
        let b = usage.of(TenantId(2));
        let q = quota(10, 100, 2);
        let held: Vec<_> = (0..2).map(|_| b.begin(&q, true, 0).unwrap()).collect();
        let e = b.begin(&q, true, 0).err().unwrap();
        assert!(e.to_string().contains("calls_per_sec"), "{e}");
        assert_eq!(b.counts(), (0, 2));
        let other = b.begin(&q, false, 0).unwrap();
        assert_eq!(b.counts(), (0, 3));
        drop((held, other));
        assert_eq!(b.counts(), (0, 0));
        let e = usage
            .of(TenantId(3))
            .begin(&quota(1, 1, 0), true, 0)
            .err()
            .unwrap();
        assert!(e.to_string().contains("its quota is 0"), "{e}");
    }
}
