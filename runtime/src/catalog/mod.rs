//! The node's catalog: tenants, their principals and tokens, and the
//! partition map (which partition owns a row or a call).
//!
//! Owns: the tenant list and its file `catalog` in the data directory
//! (written whole, atomically: temp file, fsync, rename, fsync of the
//! directory). Tables and procedures live in each tenant's engines and
//! procedure hosts (`partition`), and reach the log like any other change.
//!
//! Must not: keep a token in the clear. A principal is found by the SHA-256
//! of its token; the token itself is shown once, when it is created.

mod partition_map;
pub mod quota;
mod tenants;

pub use partition_map::{partition_for, PartitionId};
pub use quota::{FuelDue, Quota, QuotaError, QuotaField, QuotaSet, QuotaSetError};
pub use tenants::{
    sync_dir, token_sha256, Catalog, CatalogError, Principal, PrincipalChange, PrincipalEntry,
    PrincipalInfo, PrincipalOverlay, Role, Tenant, ADMIN_TENANT, DEMO_TENANT, GRANTS_MAX,
    PRINCIPALS_PER_TENANT_MAX, PRINCIPAL_NAMES_PER_TENANT_MAX,
};
