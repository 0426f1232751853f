//! What the node counts for monitoring, and its Prometheus text exposition
//! (`ohm serve --metrics ADDR`; docs/OPERATIONS.md, "Metrics").
//!
//! Owns: the request counters, error counters and latency histograms of
//! each tenant (kept in its `usage::TenantUsage`, reached without a lock
//! from the connection's session), the histogram type the partitions' log
//! writers time their syncs with, and `render`, which reads those and the
//! partitions' `PartitionStats` into the text format. Must not: block a
//! request (recording is a few relaxed atomic adds) or hold a lock a
//! request needs while rendering (the catalog is read once, for tenant
//! names).
//!
//! Bounds: one set of series per tenant that authenticated on this node
//! (`catalog::TENANTS_MAX` at most); a tenant's series are only the kinds
//! of request it made and the error codes it got, so the page grows with
//! what tenants did, not with what they could have done.

use super::executor::{PartitionStats, ROLE_CANDIDATE, ROLE_LEADER};
use super::usage::TenantUsage;
use super::Node;
use crate::proto::{ErrorCode, Request};
use crate::types::TenantId;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (100 µs to 10 s;
/// the `+Inf` bucket is implied).
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram of relaxed atomics: bucket counts (not yet
/// cumulative) and the sum in microseconds; the count is the buckets'
/// sum, so an observation costs two atomic adds.
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Counts one observation of `d`.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `_bucket`, `_sum` and `_count` samples of `name{labels}`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS_US
                .get(i)
                .map_or("+Inf".to_string(), |&us| seconds(us));
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = seconds(self.sum_us.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        // The count is the +Inf bucket's, read once, so the two agree.
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Microseconds as seconds, exactly (`0.00025`, `10`).
fn seconds(us: u64) -> String {
    let (s, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return s.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{s}.{}", digits.trim_end_matches('0'))
}

/// The kinds of request, as the protocol names them (`op`): a tenant's
/// counters are indexed by their place here (`auth` and `certificate`
/// never count: the server answers them).
pub use crate::proto::codec::OPS;

/// `request`'s index in `OPS` (tested against the names).
pub fn op_of(request: &Request) -> usize {
    match request {
        Request::Auth { .. } => 0,
        Request::Call { .. } => 1,
        Request::Sql { .. } => 2,
        Request::Load(_) => 3,
        Request::Deploy { .. } => 4,
        Request::Drop { .. } => 5,
        Request::Catalog => 6,
        Request::Status => 7,
        Request::CreateTenant { .. } => 8,
        Request::TenantQuota { .. } => 9,
        Request::TokenCreate { .. } => 10,
        Request::TokenRevoke { .. } => 11,
        Request::Tokens { .. } => 12,
        Request::Certificate => 13,
    }
}

/// One tenant's requests on this node, by kind: how many were answered,
/// how long those admitted took (from admission to the answer being
/// queued for its stream), and the errors by code.
pub struct TenantMetrics {
    requests: [AtomicU64; OPS.len()],
    latency: [Histogram; OPS.len()],
    errors: [AtomicU64; ErrorCode::ALL.len()],
}

impl Default for TenantMetrics {
    fn default() -> Self {
        TenantMetrics {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| Histogram::default()),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl TenantMetrics {
    /// A request of kind `op`, admitted, answered after `took`, with
    /// `error` if it failed.
    pub fn answered(&self, op: usize, error: Option<ErrorCode>, took: Duration) {
        if let Some(h) = self.latency.get(op) {
            h.observe(took);
        }
        self.count(op, error);
    }

    /// A request of kind `op` refused before it was admitted (a quota, a
    /// revoked principal): counted, not timed, so refusals under overload
    /// do not pull the latency of the work done down.
    pub fn refused(&self, op: usize, code: ErrorCode) {
        self.count(op, Some(code));
    }

    fn count(&self, op: usize, error: Option<ErrorCode>) {
        if let Some(n) = self.requests.get(op) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        // A code missing from `ErrorCode::ALL` is not counted rather than
        // stopping the thread that answers.
        if let Some(n) = error.and_then(|c| self.errors.get(c as usize)) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The leader a replica last knew, kept across elections (when no leader
/// is known): a change is counted when a leader is known again and it is
/// another node, so a failover A, none, B counts once and A, none, A not.
#[derive(Debug, Default, Clone, Copy)]
pub struct LeaderWatch {
    last: u32,
}

impl LeaderWatch {
    /// `leader` is now known (0: none); true if it moved to another node.
    pub fn see(&mut self, leader: u32) -> bool {
        if leader == 0 {
            return false;
        }
        let moved = self.last != 0 && self.last != leader;
        self.last = leader;
        moved
    }
}

/// Bytes of metrics text one page holds at most: past it, further tenant
/// series are left out and `ohm_metrics_truncated` says so.
pub const PAGE_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Writes `# HELP` and `# TYPE` for a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped as the text format asks (backslash, quote, newline).
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The node's metrics in the Prometheus text format (version 0.0.4).
pub fn render(node: &Node) -> String {
    let mut out = String::with_capacity(16 * 1024);
    family(
        &mut out,
        "ohm_build_info",
        "gauge",
        "The node's version (always 1).",
    );
    let _ = writeln!(
        out,
        "ohm_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    family(
        &mut out,
        "ohm_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
    );
    let _ = writeln!(
        out,
        "ohm_uptime_seconds {}",
        node.started.elapsed().as_secs()
    );
    family(
        &mut out,
        "ohm_connections",
        "gauge",
        "Client connections open (every tenant's, and those not yet authenticated).",
    );
    let _ = writeln!(
        out,
        "ohm_connections {}",
        node.connections.load(Ordering::Relaxed)
    );
    render_partitions(&mut out, &node.stats);
    let names: BTreeMap<TenantId, String> = {
        let cat = node.catalog.read().unwrap_or_else(|p| p.into_inner());
        cat.tenants().map(|t| (t.id, escape(&t.name))).collect()
    };
    let name_of = |id: TenantId| {
        names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{}", id.0))
    };
    let full = render_tenants(&mut out, node, &name_of);
    family(
        &mut out,
        "ohm_metrics_truncated",
        "gauge",
        "1 if this page left tenant series out to stay within its size bound.",
    );
    let _ = writeln!(out, "ohm_metrics_truncated {}", u8::from(full));
    out
}

fn render_partitions(out: &mut String, stats: &[std::sync::Arc<PartitionStats>]) {
    type Gauge = fn(&PartitionStats) -> u64;
    let simple: [(&str, &str, &str, Gauge); 9] = [
        (
            "ohm_partition_calls_committed_total",
            "counter",
            "Calls and transactions that committed on the partition (run here as its leader).",
            |s| s.committed.load(Ordering::Relaxed),
        ),
        (
            "ohm_partition_calls_failed_total",
            "counter",
            "Calls that failed on the partition (aborted, errors, limits).",
            |s| s.failed.load(Ordering::Relaxed),
        ),
        (
            "ohm_partition_queued",
            "gauge",
            "Calls waiting in the partition's queue.",
            |s| s.queued.load(Ordering::Relaxed),
        ),
        (
            "ohm_partition_peer_queued",
            "gauge",
            "Calls passed from other nodes waiting in the partition's queue.",
            |s| s.peer_queued.load(Ordering::Relaxed),
        ),
        (
            "ohm_partition_chosen_slot",
            "gauge",
            "The highest slot chosen in the partition's log (durable).",
            |s| s.durable_lsn.load(Ordering::Relaxed),
        ),
        (
            "ohm_partition_applied_slot",
            "gauge",
            "The highest slot applied to this replica's state.",
            |s| s.applied.load(Ordering::Relaxed),
        ),
        (
            "ohm_partition_log_bytes",
            "gauge",
            "Bytes of the partition's log since its last snapshot.",
            |s| s.log_bytes.load(Ordering::Relaxed),
        ),
        (
            "ohm_partition_leader_changes_total",
            "counter",
            "Times the leader this replica knows changed to another known node.",
            |s| s.leader_changes.load(Ordering::Relaxed),
        ),
        (
            "ohm_partition_disk_full",
            "gauge",
            "1 while the partition's disk has no room for its log (writes refused).",
            |s| u64::from(s.disk_full.load(Ordering::Relaxed)),
        ),
    ];
    for (name, kind, help, get) in simple {
        family(out, name, kind, help);
        for (i, s) in stats.iter().enumerate() {
            let _ = writeln!(out, "{name}{{partition=\"{i}\"}} {}", get(s));
        }
    }
    family(
        out,
        "ohm_partition_role",
        "gauge",
        "1 for this replica's role in the partition's group (leader, candidate or follower).",
    );
    for (i, s) in stats.iter().enumerate() {
        let role = s.role.load(Ordering::Relaxed);
        for (name, r) in [("leader", ROLE_LEADER), ("candidate", ROLE_CANDIDATE)] {
            let _ = writeln!(
                out,
                "ohm_partition_role{{partition=\"{i}\",role=\"{name}\"}} {}",
                u8::from(role == r)
            );
        }
        let follower = role != ROLE_LEADER && role != ROLE_CANDIDATE;
        let _ = writeln!(
            out,
            "ohm_partition_role{{partition=\"{i}\",role=\"follower\"}} {}",
            u8::from(follower)
        );
    }
    family(
        out,
        "ohm_partition_replica_lag_slots",
        "gauge",
        "Slots a replica's log trails the chosen slot (known on the leader only).",
    );
    for (i, s) in stats.iter().enumerate() {
        let chosen = s.durable_lsn.load(Ordering::Relaxed);
        let replicas = s.replicas.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (node, matched) in replicas {
            if let Some(m) = matched {
                let _ = writeln!(
                    out,
                    "ohm_partition_replica_lag_slots{{partition=\"{i}\",replica=\"{node}\"}} {}",
                    chosen.saturating_sub(m)
                );
            }
        }
    }
    family(out, "ohm_partition_log_sync_seconds", "histogram", "Time the partition's log writer took to write and sync (or, with async durability, flush) one group of records.");
    for (i, s) in stats.iter().enumerate() {
        s.log_sync.render(
            out,
            "ohm_partition_log_sync_seconds",
            &format!("partition=\"{i}\""),
        );
    }
}

/// The tenant families; true if the page reached `PAGE_BYTES_MAX` and
/// left series out.
fn render_tenants(out: &mut String, node: &Node, name_of: &dyn Fn(TenantId) -> String) -> bool {
    let tenants = node.usage.all();
    let mut left_out = false;
    let mut each_tenant = |out: &mut String, series: &dyn Fn(&mut String, &str, &TenantUsage)| {
        for (id, u) in &tenants {
            if out.len() >= PAGE_BYTES_MAX {
                left_out = true;
                return;
            }
            series(out, &name_of(*id), u);
        }
    };
    family(
        out,
        "ohm_tenant_connections",
        "gauge",
        "A tenant's authenticated connections open on this node.",
    );
    each_tenant(out, &|out, t, u| {
        let _ = writeln!(
            out,
            "ohm_tenant_connections{{tenant=\"{t}\"}} {}",
            u.connections()
        );
    });
    family(
        out,
        "ohm_tenant_in_flight",
        "gauge",
        "A tenant's requests unanswered on this node.",
    );
    each_tenant(out, &|out, t, u| {
        let _ = writeln!(
            out,
            "ohm_tenant_in_flight{{tenant=\"{t}\"}} {}",
            u.in_flight()
        );
    });
    family(
        out,
        "ohm_tenant_requests_total",
        "counter",
        "A tenant's requests answered, by kind (op), refused ones included.",
    );
    each_tenant(out, &|out, t, u| {
        for (op, n) in OPS.iter().zip(&u.metrics.requests) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "ohm_tenant_requests_total{{tenant=\"{t}\",op=\"{op}\"}} {n}"
                );
            }
        }
    });
    family(
        out,
        "ohm_tenant_errors_total",
        "counter",
        "A tenant's requests answered with an error, by code.",
    );
    each_tenant(out, &|out, t, u| {
        for code in ErrorCode::ALL {
            let n = u
                .metrics
                .errors
                .get(code as usize)
                .map_or(0, |n| n.load(Ordering::Relaxed));
            if n > 0 {
                let _ = writeln!(
                    out,
                    "ohm_tenant_errors_total{{tenant=\"{t}\",code=\"{}\"}} {n}",
                    code.name()
                );
            }
        }
    });
    family(out, "ohm_tenant_request_seconds", "histogram", "Time from a tenant's request being admitted to its answer being queued for its stream, by kind (op); refused requests are not timed.");
    each_tenant(out, &|out, t, u| {
        for (op, h) in OPS.iter().zip(&u.metrics.latency) {
            if h.count() > 0 {
                h.render(
                    out,
                    "ohm_tenant_request_seconds",
                    &format!("tenant=\"{t}\",op=\"{op}\""),
                );
            }
        }
    });
    family(out, "ohm_tenant_rows", "gauge", "A tenant's rows on each partition of this replica, as the partition last published them (tenants with rows).");
    let rows = node.stats.iter().map(|s| &s.rows);
    left_out |= render_per_partition(out, "ohm_tenant_rows", rows, name_of);
    family(out, "ohm_tenant_fuel_used_total", "counter", "Wasm fuel a tenant's calls burned on each partition while this replica led it (0 again after a restart or a rebuild of its state; tenants that burned any).");
    let fuel = node.stats.iter().map(|s| &s.fuel);
    left_out |= render_per_partition(out, "ohm_tenant_fuel_used_total", fuel, name_of);
    left_out
}

/// One series per tenant and partition from counts the partitions
/// publish (those above 0); true if the page reached `PAGE_BYTES_MAX`
/// and left series out.
fn render_per_partition<'a>(
    out: &mut String,
    name: &str,
    published: impl Iterator<Item = &'a Mutex<Arc<BTreeMap<TenantId, u64>>>>,
    name_of: &dyn Fn(TenantId) -> String,
) -> bool {
    for (i, counts) in published.enumerate() {
        let counts = counts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (id, n) in counts.iter().filter(|(_, n)| **n > 0) {
            if out.len() >= PAGE_BYTES_MAX {
                return true;
            }
            let _ = writeln!(
                out,
                "{name}{{tenant=\"{}\",partition=\"{i}\"}} {n}",
                name_of(*id)
            );
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_count_every_observation() {
        let h = Histogram::default();
        for us in [50, 100, 101, 2_000, 20_000_000] {
            h.observe(Duration::from_micros(us));
        }
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "op=\"call\"");
        assert!(
            out.contains("x_seconds_bucket{op=\"call\",le=\"0.0001\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{op=\"call\",le=\"0.00025\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{op=\"call\",le=\"0.0025\"} 4\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{op=\"call\",le=\"10\"} 4\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{op=\"call\",le=\"+Inf\"} 5\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_sum{op=\"call\"} 20.002251\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_count{op=\"call\"} 5\n"), "{out}");
    }

    #[test]
    fn a_failover_through_no_leader_counts_once() {
        let mut w = LeaderWatch::default();
        let moves: Vec<bool> = [0, 1, 1, 0, 2, 0, 2, 3].iter().map(|&l| w.see(l)).collect();
        // First known (1): not a change; 1, none, 2: one; 2, none, 2: none;
        // 2 to 3: one.
        assert_eq!(
            moves,
            [false, false, false, false, true, false, false, true]
        );
    }

    #[test]
    fn each_request_counts_under_its_own_op_name() {
        let mut body = Vec::new();
        for (name, request) in [
            (
                "call",
                Request::Call {
                    procedure: "p".into(),
                    args: vec![],
                    key: None,
                    timeout_ms: None,
                },
            ),
            (
                "sql",
                Request::Sql {
                    sql: "SELECT 1".into(),
                    params: vec![],
                    timeout_ms: None,
                },
            ),
            ("drop", Request::Drop { name: "m".into() }),
            ("catalog", Request::Catalog),
            ("status", Request::Status),
            ("tokens", Request::Tokens { tenant: None }),
            ("certificate", Request::Certificate),
        ] {
            body.clear();
            crate::proto::codec::encode_request_parts(1, &request, &mut body).unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains(OPS[op_of(&request)]), "{name}: {text}");
            assert_eq!(OPS[op_of(&request)], name);
        }
    }

    #[test]
    fn refusals_are_counted_but_not_timed() {
        let m = TenantMetrics::default();
        m.answered(1, None, Duration::from_millis(3));
        m.refused(1, ErrorCode::QuotaExceeded);
        assert_eq!(m.requests[1].load(Ordering::Relaxed), 2);
        assert_eq!(m.latency[1].count(), 1);
        assert_eq!(
            m.errors[ErrorCode::QuotaExceeded as usize].load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn every_error_code_has_a_counter() {
        for code in ErrorCode::ALL {
            assert!((code as usize) < ErrorCode::ALL.len(), "{code:?}");
        }
    }

    #[test]
    fn label_values_are_escaped_and_seconds_exact() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(seconds(250), "0.00025");
        assert_eq!(seconds(10_000_000), "10");
        assert_eq!(seconds(1_500_000), "1.5");
    }
}
