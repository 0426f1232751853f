//! What one tenant may hold and use on a node: its quota. Checked where
//! the thing is spent (the coordinator for deploys; a partition, or the
//! coordinator for multi-partition work, for rows), always before
//! anything is logged, so going over is a typed `quota_exceeded` answer
//! and never a stopped node or a directory that cannot start.
//!
//! Owns: the named defaults and the checks of a deploy and of rows against
//! them.
//! Must not: enforce per-call sandbox limits (`wasm::Limits` does).

use super::PartitionId;
use thiserror::Error;

/// Modules one tenant may have deployed at once.
pub const MODULES_PER_TENANT_DEFAULT: u32 = 64;
/// Bytes of module code one tenant may have deployed, over all its modules.
pub const MODULE_BYTES_PER_TENANT_DEFAULT: u64 = 128 << 20;
/// Rows one tenant may hold on one partition (about 8.4 million).
pub const ROWS_PER_TENANT_PARTITION_DEFAULT: u64 = 8 << 20;

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
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            modules_max: MODULES_PER_TENANT_DEFAULT,
            module_bytes_max: MODULE_BYTES_PER_TENANT_DEFAULT,
            rows_max: ROWS_PER_TENANT_PARTITION_DEFAULT,
        }
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
