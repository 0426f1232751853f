//! What one tenant may hold and use on a node: its quota. Checked where
//! the thing is spent (the coordinator for deploys), always before
//! anything is logged, so going over is a typed `quota_exceeded` answer
//! and never a stopped node or a directory that cannot start.
//!
//! Owns: the named defaults and the check of a deploy against them.
//! Must not: enforce per-call sandbox limits (`wasm::Limits` does).

use thiserror::Error;

/// Modules one tenant may have deployed at once.
pub const MODULES_PER_TENANT_DEFAULT: u32 = 64;
/// Bytes of module code one tenant may have deployed, over all its modules.
pub const MODULE_BYTES_PER_TENANT_DEFAULT: u64 = 128 << 20;

/// One tenant's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Modules deployed at once.
    pub modules_max: u32,
    /// Bytes of all deployed modules' code.
    pub module_bytes_max: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            modules_max: MODULES_PER_TENANT_DEFAULT,
            module_bytes_max: MODULE_BYTES_PER_TENANT_DEFAULT,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_fits_until_a_quota_is_reached_and_a_redeploy_replaces() {
        let q = Quota {
            modules_max: 2,
            module_bytes_max: 100,
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
}
