//! What one tenant may hold and use on a node: its quota. Checked where
//! the thing is spent (the coordinator for deploys; a partition, or the
//! coordinator for multi-partition work, for rows), always before
//! anything is logged, so going over is a typed `quota_exceeded` answer
//! and never a stopped node or a directory that cannot start.
//!
//! The node's `ohm serve --quota-*` flags give every tenant's defaults;
//! an administrator sets one tenant's values over them (`QuotaSet`, logged
//! on every partition so that every replica and every restart agrees).
//!
//! Owns: the named defaults, the names and bounds of each quota, and the
//! checks of a deploy and of rows against them.
//! Must not: enforce per-call sandbox limits (`wasm::Limits` does), or
//! count connections, requests and calls (`node::usage` does, against
//! these values).

use super::PartitionId;
use std::collections::BTreeMap;
use thiserror::Error;

/// Modules one tenant may have deployed at once.
pub const MODULES_PER_TENANT_DEFAULT: u32 = 64;
/// Bytes of module code one tenant may have deployed, over all its modules.
pub const MODULE_BYTES_PER_TENANT_DEFAULT: u64 = 128 << 20;
/// Rows one tenant may hold on one partition (about 8.4 million).
pub const ROWS_PER_TENANT_PARTITION_DEFAULT: u64 = 8 << 20;
/// Client connections one tenant may have open on one node.
pub const CONNECTIONS_PER_TENANT_DEFAULT: u64 = 1_000;
/// Requests of one tenant a node holds unanswered at once (over all its
/// connections; one connection holds at most
/// `proto::IN_FLIGHT_PER_CONNECTION_MAX`).
pub const IN_FLIGHT_PER_TENANT_DEFAULT: u64 = 16_384;
/// Calls and ad-hoc SQL requests one tenant may start per second on one
/// node (a burst of up to one second's worth is taken at once). High
/// enough that only an administrator's lower value ever binds on today's
/// hardware: fair turns, not this, share a busy partition.
pub const CALLS_PER_SEC_PER_TENANT_DEFAULT: u64 = 1_000_000;
/// Wasm fuel (about one per instruction) one tenant's calls may burn per
/// second on one partition (a burst of one second's worth at once). As
/// high as a partition's thread could burn in about 30 s: only an
/// administrator's lower value ever binds; fair turns share a busy
/// partition.
pub const FUEL_PER_SEC_PER_TENANT_DEFAULT: u64 = 100_000_000_000;
/// Time limit of a procedure call (ms); past it the call is rolled back.
pub const CALL_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Time limit of one ad-hoc SQL statement (ms).
pub const SQL_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// One tenant's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Modules deployed at once.
    pub modules_max: u32,
    /// Bytes of all deployed modules' code.
    pub module_bytes_max: u64,
    /// Rows in all the tenant's tables on one partition (a replicated
    /// table's rows count on every partition, each holding a copy).
    pub rows_max: u64,
    /// Client connections open on one node.
    pub connections_max: u64,
    /// Requests unanswered on one node, over all connections.
    pub in_flight_max: u64,
    /// Calls and `sql` requests started per second on one node.
    pub calls_per_sec: u64,
    /// Wasm fuel its calls burn per second on one partition.
    pub fuel_per_sec: u64,
    /// Time limit of one procedure call (ms).
    pub call_timeout_ms: u64,
    /// Time limit of one ad-hoc statement (ms); a request may ask for less.
    pub sql_timeout_ms: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            modules_max: MODULES_PER_TENANT_DEFAULT,
            module_bytes_max: MODULE_BYTES_PER_TENANT_DEFAULT,
            rows_max: ROWS_PER_TENANT_PARTITION_DEFAULT,
            connections_max: CONNECTIONS_PER_TENANT_DEFAULT,
            in_flight_max: IN_FLIGHT_PER_TENANT_DEFAULT,
            calls_per_sec: CALLS_PER_SEC_PER_TENANT_DEFAULT,
            fuel_per_sec: FUEL_PER_SEC_PER_TENANT_DEFAULT,
            call_timeout_ms: CALL_TIMEOUT_MS_DEFAULT,
            sql_timeout_ms: SQL_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// The most connections_max may be: every connection a node serves.
pub const CONNECTIONS_CEILING: u64 = 10_000;

/// One quota, by the name the protocol, the CLI and the log use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaField {
    ModulesMax,
    ModuleBytesMax,
    RowsMax,
    ConnectionsMax,
    InFlightMax,
    CallsPerSec,
    CallTimeoutMs,
    SqlTimeoutMs,
    FuelPerSec,
}

impl QuotaField {
    /// Every quota, in the order answers list them.
    pub const ALL: [QuotaField; 9] = [
        QuotaField::ModulesMax,
        QuotaField::ModuleBytesMax,
        QuotaField::RowsMax,
        QuotaField::ConnectionsMax,
        QuotaField::InFlightMax,
        QuotaField::CallsPerSec,
        QuotaField::CallTimeoutMs,
        QuotaField::SqlTimeoutMs,
        QuotaField::FuelPerSec,
    ];

    /// The quota's name on the wire, in the CLI and in the log.
    pub fn name(self) -> &'static str {
        match self {
            QuotaField::ModulesMax => "modules_max",
            QuotaField::ModuleBytesMax => "module_bytes_max",
            QuotaField::RowsMax => "rows_max",
            QuotaField::ConnectionsMax => "connections_max",
            QuotaField::InFlightMax => "in_flight_max",
            QuotaField::CallsPerSec => "calls_per_sec",
            QuotaField::CallTimeoutMs => "call_timeout_ms",
            QuotaField::SqlTimeoutMs => "sql_timeout_ms",
            QuotaField::FuelPerSec => "fuel_per_sec",
        }
    }

    /// Every quota's name, comma-separated (for messages and help).
    pub fn names() -> String {
        QuotaField::ALL.map(QuotaField::name).join(", ")
    }

    /// The quota named `name`, if this build has one.
    pub fn by_name(name: &str) -> Option<QuotaField> {
        QuotaField::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The largest value an administrator may set: past it the quota
    /// would stop bounding anything the node can hold (a module costs
    /// address space and mappings, a connection a task, and so on).
    pub fn ceiling(self) -> u64 {
        match self {
            QuotaField::ModulesMax => 4_096,
            QuotaField::ModuleBytesMax => 16 << 30,
            QuotaField::RowsMax => 1 << 40,
            // The most a node serves in all (`net::server::CONNECTIONS_MAX`).
            QuotaField::ConnectionsMax => CONNECTIONS_CEILING,
            QuotaField::InFlightMax => 1 << 20,
            QuotaField::CallsPerSec => 1_000_000_000,
            // A long call runs beside the others (`node::runner`), but
            // holds its tenant's part and multi-partition work meanwhile.
            QuotaField::CallTimeoutMs => 600_000,
            QuotaField::SqlTimeoutMs => 3_600_000,
            QuotaField::FuelPerSec => 1_000_000_000_000,
        }
    }
}

impl std::fmt::Display for QuotaField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The quotas an administrator set for one tenant, over the node's
/// defaults; what is not set follows the defaults (also when they change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaSet(BTreeMap<QuotaField, u64>);

/// Why a quota could not be set.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QuotaSetError {
    #[error("unknown quota {name:?} (known: {known})", name = .0, known = QuotaField::names())]
    Unknown(String),
    #[error("quota {field} may be at most {ceiling}; {value} is too high")]
    TooHigh {
        field: QuotaField,
        value: u64,
        ceiling: u64,
    },
    #[error("quota {0} is a time limit and may not be 0")]
    Zero(QuotaField),
    #[error(
        "the {0} tenant's quotas are the node's defaults and cannot be set (a mistake there \
         could lock the administrators out)"
    )]
    AdminTenant(&'static str),
}

impl QuotaSet {
    /// Nothing set: the node's defaults throughout.
    pub const fn new() -> QuotaSet {
        QuotaSet(BTreeMap::new())
    }

    /// Sets `field` (None: back to the node's default). Refuses a value
    /// over the field's ceiling.
    pub fn set(&mut self, field: QuotaField, value: Option<u64>) -> Result<(), QuotaSetError> {
        match value {
            Some(v) if v > field.ceiling() => Err(QuotaSetError::TooHigh {
                field,
                value: v,
                ceiling: field.ceiling(),
            }),
            Some(0) if matches!(field, QuotaField::CallTimeoutMs | QuotaField::SqlTimeoutMs) => {
                Err(QuotaSetError::Zero(field))
            }
            Some(v) => {
                self.0.insert(field, v);
                Ok(())
            }
            None => {
                self.0.remove(&field);
                Ok(())
            }
        }
    }

    /// `set`, by the quota's name.
    pub fn set_named(&mut self, name: &str, value: Option<u64>) -> Result<(), QuotaSetError> {
        let field = QuotaField::by_name(name).ok_or_else(|| QuotaSetError::Unknown(name.into()))?;
        self.set(field, value)
    }

    /// A value as it was logged: taken as is (ceilings are checked when an
    /// administrator sets a value, and a later build's may differ; what
    /// was logged must still load). Only a name this build does not know
    /// is refused.
    pub fn insert_logged(&mut self, name: &str, value: u64) -> Result<(), QuotaSetError> {
        let field = QuotaField::by_name(name).ok_or_else(|| QuotaSetError::Unknown(name.into()))?;
        self.0.insert(field, value);
        Ok(())
    }

    /// What is set for `field`, if anything.
    pub fn get(&self, field: QuotaField) -> Option<u64> {
        self.0.get(&field).copied()
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What is set, in field order.
    pub fn iter(&self) -> impl Iterator<Item = (QuotaField, u64)> + '_ {
        self.0.iter().map(|(f, v)| (*f, *v))
    }
}

impl Quota {
    /// One quota's value.
    pub fn get(&self, field: QuotaField) -> u64 {
        match field {
            QuotaField::ModulesMax => u64::from(self.modules_max),
            QuotaField::ModuleBytesMax => self.module_bytes_max,
            QuotaField::RowsMax => self.rows_max,
            QuotaField::ConnectionsMax => self.connections_max,
            QuotaField::InFlightMax => self.in_flight_max,
            QuotaField::CallsPerSec => self.calls_per_sec,
            QuotaField::CallTimeoutMs => self.call_timeout_ms,
            QuotaField::SqlTimeoutMs => self.sql_timeout_ms,
            QuotaField::FuelPerSec => self.fuel_per_sec,
        }
    }

    /// These defaults with a tenant's own values over them.
    pub fn with(&self, set: Option<&QuotaSet>) -> Quota {
        let mut q = *self;
        for (field, v) in set.into_iter().flat_map(QuotaSet::iter) {
            match field {
                // A value over what a u32 holds (logged by another build)
                // is the most it holds.
                QuotaField::ModulesMax => q.modules_max = u32::try_from(v).unwrap_or(u32::MAX),
                QuotaField::ModuleBytesMax => q.module_bytes_max = v,
                QuotaField::RowsMax => q.rows_max = v,
                QuotaField::ConnectionsMax => q.connections_max = v,
                QuotaField::InFlightMax => q.in_flight_max = v,
                QuotaField::CallsPerSec => q.calls_per_sec = v,
                // A time limit of 0 would stop everything at once.
                QuotaField::CallTimeoutMs => q.call_timeout_ms = v.max(1),
                QuotaField::SqlTimeoutMs => q.sql_timeout_ms = v.max(1),
                QuotaField::FuelPerSec => q.fuel_per_sec = v,
            }
        }
        q
    }
}

/// A quota a request would go over.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QuotaError {
    #[error(
        "quota modules_max: the tenant has {have} modules deployed and may have {max}; \
         drop one first, or ask the node's administrator to raise the quota (nothing was done)"
    )]
    Modules { have: u32, max: u32 },
    #[error(
        "quota module_bytes_max: the tenant's modules would take {would} bytes and may take \
         {max}; drop one first, or ask the node's administrator to raise the quota \
         (nothing was done)"
    )]
    ModuleBytes { would: u64, max: u64 },
    #[error(
        "quota rows_max: the tenant would hold {would} rows on partition {partition} and may \
         hold {max} per partition; delete rows first, or ask the node's administrator to raise \
         the quota (rolled back: nothing was written)"
    )]
    Rows {
        partition: u32,
        would: u64,
        max: u64,
    },
    #[error("{}", at_usage_quota("connections_max", *max, "connections open on this node",
        "close one first"))]
    Connections { max: u64 },
    #[error("{}", at_usage_quota("in_flight_max", *max, "requests unanswered on this node",
        "wait for answers before sending more; this request was not run"))]
    InFlight { max: u64 },
    #[error("{}", at_usage_quota("calls_per_sec", *max,
        "calls and SQL requests started a second on this node (a second's worth at once)",
        "retry shortly; this request was not run"))]
    CallsPerSec { max: u64 },
    #[error("{}", at_usage_quota("fuel_per_sec", *max,
        "Wasm fuel a second on this partition (a second's worth at once)",
        &format!("retry in about {wait_ms} ms; this call was not run")))]
    FuelPerSec { max: u64, wait_ms: u64 },
}

/// Wasm fuel one tenant may still burn on one partition: a bucket that
/// fills at `fuel_per_sec` up to one second's worth, full at first. A
/// call starts unless it is below empty, and takes out what it burned, so
/// the bucket may go below empty; a lower or higher quota fills it at its
/// own rate from then on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FuelDue {
    /// Fuel taken out more than filled in since it was full (below 0:
    /// room left; it never holds more than a second's worth).
    owed: i64,
    /// When it was last filled (the caller's clock, microseconds); None:
    /// never used, full.
    at_us: Option<i64>,
    /// Fuel taken out in all (for `--metrics`).
    burned: u64,
}

impl FuelDue {
    /// Fills the bucket for the time since it was last filled. A clock
    /// that went back fills nothing and counts on from its new reading.
    fn fill(&mut self, now_us: i64, per_sec: u64) {
        let full = i64::try_from(per_sec).unwrap_or(i64::MAX);
        let Some(at) = self.at_us else {
            self.owed = -full;
            self.at_us = Some(now_us);
            return;
        };
        let gained = (now_us.saturating_sub(at).max(0) as u128) * u128::from(per_sec) / 1_000_000;
        let gained = i64::try_from(gained).unwrap_or(i64::MAX);
        self.owed = self.owed.saturating_sub(gained).max(-full);
        self.at_us = Some(now_us);
    }

    /// Whether a call may start at `now_us` under `per_sec`.
    pub fn check(&mut self, now_us: i64, per_sec: u64) -> Result<(), QuotaError> {
        self.fill(now_us, per_sec);
        if per_sec == 0 || self.owed > 0 {
            let owed = u128::from(self.owed.unsigned_abs());
            let wait_ms = owed * 1_000 / u128::from(per_sec.max(1)) + 1;
            return Err(QuotaError::FuelPerSec {
                max: per_sec,
                wait_ms: u64::try_from(wait_ms).unwrap_or(u64::MAX),
            });
        }
        Ok(())
    }

    /// Takes out `fuel` burned at `now_us`.
    pub fn charge(&mut self, fuel: u64, now_us: i64, per_sec: u64) {
        self.fill(now_us, per_sec);
        self.burned = self.burned.saturating_add(fuel);
        let fuel = i64::try_from(fuel).unwrap_or(i64::MAX);
        self.owed = self.owed.saturating_add(fuel);
    }

    /// Fuel taken out in all since this bucket was made.
    pub fn burned(&self) -> u64 {
        self.burned
    }
}

/// The message of a usage quota reached: what to do differs when the
/// administrator set it to 0 (waiting never helps then).
fn at_usage_quota(name: &str, max: u64, what: &str, then: &str) -> String {
    if max == 0 {
        return format!(
            "quota {name}: the tenant may have no {what} (its quota is 0); ask the node's \
             administrator"
        );
    }
    format!(
        "quota {name}: the tenant is at its {max} {what}; {then}, or ask the node's \
         administrator to raise the quota"
    )
}

impl Quota {
    /// Whether deploying module `name` of `bytes` bytes fits beside the
    /// tenant's `deployed` modules (name, bytes); a module of the same name
    /// is replaced, so it does not count.
    pub fn check_deploy<'a>(
        &self,
        deployed: impl Iterator<Item = (&'a str, u64)>,
        name: &str,
        bytes: u64,
    ) -> Result<(), QuotaError> {
        let (mut have, mut sum) = (0u32, 0u64);
        for (_, b) in deployed.filter(|(n, _)| *n != name) {
            have = have.saturating_add(1);
            sum = sum.saturating_add(b);
        }
        if have >= self.modules_max {
            return Err(QuotaError::Modules {
                have,
                max: self.modules_max,
            });
        }
        let would = sum.saturating_add(bytes);
        if would > self.module_bytes_max {
            return Err(QuotaError::ModuleBytes {
                would,
                max: self.module_bytes_max,
            });
        }
        Ok(())
    }

    /// Whether a tenant holding `rows` rows on `partition` may end a
    /// transaction there with `grown` more (net of its deletes). A
    /// transaction that does not add rows always may, so a tenant over its
    /// quota (lowered, say) can still delete and update.
    pub fn check_rows(
        &self,
        partition: PartitionId,
        rows: u64,
        grown: i64,
    ) -> Result<(), QuotaError> {
        let would = rows.saturating_add_signed(grown);
        if grown > 0 && would > self.rows_max {
            return Err(QuotaError::Rows {
                partition: partition.0,
                would,
                max: self.rows_max,
            });
        }
        Ok(())
    }

    /// `check_rows` for a transaction already applied: the tenant holds
    /// `rows` on `partition` with its `grown` rows in.
    pub fn check_rows_applied(
        &self,
        partition: PartitionId,
        rows: u64,
        grown: i64,
    ) -> Result<(), QuotaError> {
        let before = rows.saturating_add_signed(grown.saturating_neg());
        self.check_rows(partition, before, grown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuel_fills_at_its_rate_up_to_a_seconds_worth_and_a_call_may_overdraw_it() {
        let mut f = FuelDue::default();
        let s = 1_000_000i64;
        // Full at the start: a second's worth.
        f.check(10 * s, 1_000).unwrap();
        f.charge(4_000, 10 * s, 1_000);
        // 3,000 owed: 3 s at 1,000 a second.
        match f.check(10 * s, 1_000) {
            Err(QuotaError::FuelPerSec {
                max: 1_000,
                wait_ms,
            }) => {
                assert_eq!(wait_ms, 3_001)
            }
            other => panic!("{other:?}"),
        }
        assert!(f.check(12 * s, 1_000).is_err(), "1,000 still owed");
        f.check(13 * s, 1_000).unwrap();
        // A long quiet spell fills it to a second's worth, no more.
        f.check(100 * s, 1_000).unwrap();
        f.charge(1_000, 100 * s, 1_000);
        f.check(100 * s, 1_000).unwrap();
        f.charge(1, 100 * s, 1_000);
        assert!(f.check(100 * s, 1_000).is_err());
        // A higher quota pays what is owed off at its own rate.
        f.check(100 * s + 1_000, 1_000_000).unwrap();
        // A clock that went back an hour neither fills it nor stalls it.
        let mut f = FuelDue::default();
        f.charge(3_000, 10 * s, 1_000);
        assert!(f.check(10 * s - 3_600 * s, 1_000).is_err());
        f.check(10 * s - 3_600 * s + 2 * s + 1, 1_000).unwrap();
        // A quota of 0 refuses every call.
        let e = FuelDue::default().check(s, 0).unwrap_err().to_string();
        assert!(
            e.contains("fuel_per_sec") && e.contains("quota is 0"),
            "{e}"
        );
    }

    #[test]
    fn a_deploy_fits_until_a_quota_is_reached_and_a_redeploy_replaces() {
        let q = Quota {
            modules_max: 2,
            module_bytes_max: 100,
            ..Quota::default()
        };
        let one = [("a", 40u64)];
        assert_eq!(q.check_deploy(one.iter().copied(), "b", 60), Ok(()));
        assert_eq!(
            q.check_deploy(one.iter().copied(), "b", 61),
            Err(QuotaError::ModuleBytes {
                would: 101,
                max: 100
            })
        );
        let two = [("a", 40u64), ("b", 10)];
        assert_eq!(
            q.check_deploy(two.iter().copied(), "c", 1),
            Err(QuotaError::Modules { have: 2, max: 2 })
        );
        // Replacing "b" leaves room for its new version.
        assert_eq!(q.check_deploy(two.iter().copied(), "b", 60), Ok(()));
        let e = q.check_deploy(two.iter().copied(), "c", 1).unwrap_err();
        assert!(e.to_string().contains("modules_max"), "{e}");
    }

    #[test]
    fn rows_may_grow_up_to_the_quota_and_shrink_past_it() {
        let q = Quota {
            rows_max: 10,
            ..Quota::default()
        };
        assert_eq!(q.check_rows(PartitionId(0), 8, 2), Ok(()));
        assert_eq!(
            q.check_rows(PartitionId(3), 8, 3),
            Err(QuotaError::Rows {
                partition: 3,
                would: 11,
                max: 10
            })
        );
        // Over the quota (it was lowered): deletes and updates still go.
        assert_eq!(q.check_rows(PartitionId(0), 50, -1), Ok(()));
        assert_eq!(q.check_rows(PartitionId(0), 50, 0), Ok(()));
        assert_eq!(
            q.check_rows_applied(PartitionId(0), 10, 2),
            Ok(()),
            "8 before, 10 with the call's 2"
        );
        assert!(q.check_rows_applied(PartitionId(0), 11, 2).is_err());
        let e = q.check_rows(PartitionId(1), 10, 1).unwrap_err().to_string();
        assert!(
            e.contains("quota rows_max") && e.contains("partition 1"),
            "{e}"
        );
    }
}
