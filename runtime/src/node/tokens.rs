//! A tenant's principals (its tokens), created, revoked and listed on the
//! coordinator. A lone node keeps them in its catalog file; a cluster logs
//! each change on partition 0 (its metadata group), and every node applies
//! it to its catalog once applied there (`executor::RoutesRefresh`).

use super::coordinator::{adopt_created, Coordinator};
use super::reply;
use crate::catalog::{Catalog, CatalogError, PrincipalChange, Role};
use crate::durability::{LoggedWrites, MultiBody};
use crate::proto::{ErrorCode, ErrorReply, PrincipalDesc, Reply};

/// What a `CoordTask::Token` does.
#[derive(Debug)]
pub enum TokenOp {
    Change(TokenChange),
    List,
}

/// A principal to create or revoke.
#[derive(Debug)]
pub enum TokenChange {
    Create { name: String, role: Role },
    Revoke { name: String },
}

impl TokenChange {
    /// The change as checked against `cat`, and a new principal's token.
    fn made(
        &self,
        cat: &Catalog,
        tenant: crate::types::TenantId,
    ) -> Result<(PrincipalChange, String), CatalogError> {
        match self {
            TokenChange::Create { name, role } => cat.new_principal(tenant, name, role.clone()),
            TokenChange::Revoke { name } => {
                Ok((cat.revoke_principal(tenant, name)?, String::new()))
            }
        }
    }
}

/// A principal as the protocol describes it.
pub fn describe(name: &str, role: &Role) -> PrincipalDesc {
    PrincipalDesc {
        name: name.to_string(),
        role: role.name().to_string(),
        grants: role.grants().to_vec(),
    }
}

fn refused(e: CatalogError) -> ErrorReply {
    match e {
        CatalogError::Random | CatalogError::Io { .. } => reply::internal(e.to_string()),
        e => ErrorReply::new(ErrorCode::BadArguments, format!("{e} (nothing was done)")),
    }
}

impl Coordinator {
    /// Does `op` on tenant `tenant_name`'s principals (the caller checked
    /// that its principal may).
    pub(super) fn token(&mut self, tenant_name: &str, op: TokenOp) -> Result<Reply, ErrorReply> {
        let tenant = self.tenant_named(tenant_name)?;
        let tenant_name = tenant_name.to_string();
        let TokenOp::Change(op) = op else {
            let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            let principals = cat
                .principals_of(tenant)
                .iter()
                .map(|p| describe(&p.name, &p.role))
                .collect();
            return Ok(Reply::Principals {
                tenant: tenant_name,
                principals,
            });
        };
        let (change, token) = if !self.clustered {
            // Saved with only a read lock held: requests check tokens
            // meanwhile (this thread alone changes the catalog).
            let mut next = self
                .catalog
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let (change, token) = op.made(&next, tenant).map_err(refused)?;
            next.apply(&change).map_err(refused)?;
            next.save(&self.dir)
                .map_err(|e| ErrorReply::new(ErrorCode::Unavailable, e.to_string()))?;
            *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = next;
            (change, token)
        } else {
            // Held for the tenant alone: another tenant's work goes on.
            let mut g = self.hold(Some(tenant))?;
            // Checked against partition 0's state as applied here, which
            // the node's catalog may not reflect yet.
            let mut cat = self
                .catalog
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let checked = adopt_created(&mut cat, &g[0].created_tenants)
                .and_then(|()| cat.apply_overlay(&g[0].principals))
                .map_err(|e| reply::internal(e.to_string()))
                .and_then(|()| op.made(&cat, tenant).map_err(refused))
                .and_then(|made| {
                    // Partition 0 keeps every name changed (a revoked one
                    // stays revoked): bounded per tenant.
                    let overlay = &g[0].principals;
                    let known = overlay.contains_key(&(tenant, made.0.name.clone()));
                    let names = overlay.range((tenant, String::new())..);
                    let used = names.take_while(|((t, _), _)| *t == tenant).count();
                    if !known && used >= crate::catalog::PRINCIPAL_NAMES_PER_TENANT_MAX {
                        return Err(refused(CatalogError::TooManyNames(tenant_name.clone())));
                    }
                    Ok(made)
                });
            let (change, token) = match checked {
                Ok(c) => c,
                Err(e) => {
                    g.finish(None)?;
                    return Err(e);
                }
            };
            g[0].set_principal(&change);
            let n = g.len();
            let body = |i| match i {
                0 => MultiBody::Principal(change.clone()),
                _ => MultiBody::Writes(LoggedWrites::default()),
            };
            self.commit(g, tenant, (0..n).map(body).collect())?;
            let mut cat = self.catalog.write().unwrap_or_else(|p| p.into_inner());
            cat.apply(&change)
                .map_err(|e| reply::internal(e.to_string()))?;
            (change, token)
        };
        Ok(match change.entry {
            Some(e) => Reply::Token {
                tenant: tenant_name,
                principal: describe(&change.name, &e.role),
                token,
            },
            None => Reply::Revoked {
                tenant: tenant_name,
                principal: change.name,
            },
        })
    }
}
