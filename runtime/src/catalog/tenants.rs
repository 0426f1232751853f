//! Tenants and principals, and their file.
//!
//! File `catalog` (text, one record per line, ending in a CRC line):
//! ```text
//! ohm-catalog 2
//! tenant <id> <name>
//! principal <tenant id> <name> <role> <sha256 of token, hex> [<grants>]
//! crc <crc32 of every byte above, hex>
//! ```
//! `<role>` is `admin`, `owner`, `deployer`, `caller` or `reader`; a
//! caller's `<grants>` are the procedures it may call, comma-separated
//! (`*`: every one). Version 1 files (roles `admin` and `user`, a user
//! being an owner) still load; the next save writes version 2.

pub use crate::durability::TenantRecord;
use crate::types::TenantId;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use thiserror::Error;

/// The tenant of the node's administrators (it holds no data of its own).
pub const ADMIN_TENANT: &str = "system";
/// The tenant the embedded default creates.
pub const DEMO_TENANT: &str = "demo";

const FILE: &str = "catalog";
const FILE_TMP: &str = "catalog.tmp";
const HEADER: &str = "ohm-catalog 2";
/// Longest catalog file read (a bound on outside input).
const FILE_BYTES_MAX: u64 = 16 << 20;
/// Tenants one node holds.
pub const TENANTS_MAX: usize = 10_000;
/// Bytes of randomness in a token.
const TOKEN_BYTES: usize = 32;
/// Principals (tokens) one tenant may have.
pub const PRINCIPALS_PER_TENANT_MAX: usize = 100;
/// Principal names one tenant's changes may have named in a cluster since
/// `ohm cluster init` (partition 0 keeps each revoked name, to keep it
/// revoked): past it only a name already used may be made again.
pub const PRINCIPAL_NAMES_PER_TENANT_MAX: usize = 1_000;
/// Procedures one caller may be granted by name.
pub const GRANTS_MAX: usize = 256;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("{op} {file}: {source}")]
    Io {
        file: &'static str,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("{file} line {line}: {what} (the file is damaged; restore it from a backup)")]
    Corrupt {
        file: &'static str,
        line: usize,
        what: String,
    },
    #[error("tenant name {0:?} is not valid: use 1-63 letters, digits, '_' or '-', starting with a letter")]
    BadName(String),
    #[error("a tenant named {0:?} already exists")]
    Exists(String),
    #[error("this node already holds {TENANTS_MAX} tenants")]
    Full,
    #[error("could not draw random bytes for a token")]
    Random,
    #[error("the replicated tenants disagree with this node's catalog: {0}")]
    Conflict(String),
    #[error("principal name {0:?} is not valid: use 1-63 letters, digits, '_' or '-', starting with a letter")]
    BadPrincipal(String),
    #[error("tenant {tenant:?} already has a principal named {name:?} (choose another name; to replace its token, make one under another name and revoke this one)")]
    PrincipalExists { tenant: String, name: String },
    #[error("tenant {tenant:?} has no principal named {name:?}")]
    NoPrincipal { tenant: String, name: String },
    #[error("tenant {0:?} already has {PRINCIPALS_PER_TENANT_MAX} principals: revoke one first")]
    TooManyPrincipals(String),
    #[error("{0}")]
    BadRole(String),
    #[error("{name:?} is the last admin of tenant {ADMIN_TENANT:?}: create another admin token before revoking it")]
    LastAdmin { name: String },
    #[error("tenant {0:?} has had {PRINCIPAL_NAMES_PER_TENANT_MAX} principal names in this cluster: make a principal under a name it had before")]
    TooManyNames(String),
}

/// What a principal may do inside its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The node's administrators (tenant `system` only): create tenants,
    /// set quotas, manage every tenant's tokens, see the whole status.
    Admin,
    /// Everything inside the tenant, its tokens included.
    Owner,
    /// Deploy and drop modules, call every procedure, run any SQL.
    Deployer,
    /// Call the procedures named (`*`: every one); nothing else but the
    /// catalog and status.
    Caller(Vec<String>),
    /// Ad-hoc queries (SELECT) only, the catalog and status.
    Reader,
}

impl Role {
    /// The role's name, as the catalog file and the protocol spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Deployer => "deployer",
            Role::Caller(_) => "caller",
            Role::Reader => "reader",
        }
    }

    /// A caller's grants (empty for every other role).
    pub fn grants(&self) -> &[String] {
        match self {
            Role::Caller(g) => g,
            _ => &[],
        }
    }

    /// The role named `name` with `grants` (a caller's only), checked: a
    /// caller needs 1 to `GRANTS_MAX` procedure names or `*`.
    pub fn parse(name: &str, grants: &[String]) -> Result<Role, CatalogError> {
        let bad = |m: String| Err(CatalogError::BadRole(m));
        let role = match name {
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            "deployer" => Role::Deployer,
            "reader" => Role::Reader,
            "caller" => {
                if grants.is_empty() {
                    return bad(
                        "a caller needs the procedures it may call (or `*` for every one)".into(),
                    );
                }
                if grants.len() > GRANTS_MAX {
                    return bad(format!("a caller may be granted at most {GRANTS_MAX} procedures by name; {} were given", grants.len()));
                }
                if let Some(g) = grants
                    .iter()
                    .find(|g| *g != "*" && !ohm_sdk::abi::valid_name(g))
                {
                    return bad(format!("{g:?} is not a procedure name"));
                }
                let mut g = grants.to_vec();
                g.sort();
                g.dedup();
                return Ok(Role::Caller(g));
            }
            other => {
                return bad(format!(
                    "no role named {other:?}: use owner, deployer, caller or reader (admin in \
                     tenant {ADMIN_TENANT:?})"
                ))
            }
        };
        if !grants.is_empty() {
            return bad(format!("only a caller has grants, not a {name}"));
        }
        Ok(role)
    }

    /// Whether this role may call `procedure`.
    pub fn may_call(&self, procedure: &str) -> bool {
        match self {
            Role::Admin | Role::Owner | Role::Deployer => true,
            Role::Caller(g) => g.iter().any(|g| g == "*" || g == procedure),
            Role::Reader => false,
        }
    }
}

/// A principal as a cluster's partition 0 logs it: its role and the
/// SHA-256 of its token (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalEntry {
    pub role: Role,
    pub token_sha256: [u8; 32],
}

/// One principal created (`Some`) or revoked (`None`), as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalChange {
    pub tenant: TenantId,
    pub name: String,
    pub entry: Option<PrincipalEntry>,
}

/// Principals created or revoked in a cluster since `ohm cluster init`,
/// by tenant and name (None: revoked), as partition 0 holds them.
pub type PrincipalOverlay = BTreeMap<(TenantId, String), Option<PrincipalEntry>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
}

/// An identity inside a tenant, as a session sees it once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub tenant_name: String,
    pub name: String,
    pub role: Role,
    /// The SHA-256 of its token: a request runs as the principal that
    /// token names (a principal revoked and made again under its name
    /// has another token).
    pub token_sha256: [u8; 32],
}

impl Principal {
    /// One of the node's administrators (create tenants, set quotas, see
    /// the whole status).
    pub fn admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// One principal's name and role (a tenant's tokens, as listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalInfo {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
struct PrincipalRecord {
    tenant: TenantId,
    name: String,
    role: Role,
    token_sha256: [u8; 32],
}

/// Every tenant and principal of the node.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tenants: BTreeMap<TenantId, Tenant>,
    principals: BTreeMap<(TenantId, String), PrincipalRecord>,
    by_token: HashMap<[u8; 32], (TenantId, String)>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The SHA-256 of a token, as the catalog keeps it.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A fresh token: `ohm_` and 64 hex digits from the OS's secure RNG.
fn new_token() -> Result<String, CatalogError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| CatalogError::Random)?;
    Ok(format!("ohm_{}", hex(&bytes)))
}

impl Catalog {
    /// Loads `catalog` from `dir`, or returns None when there is none yet.
    pub fn load(dir: &cap_std::fs::Dir) -> Result<Option<Catalog>, CatalogError> {
        let io = |op| {
            move |source| CatalogError::Io {
                file: FILE,
                op,
                source,
            }
        };
        let mut file = match dir.open(FILE) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("open")(e)),
        };
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(&mut file, FILE_BYTES_MAX),
            &mut text,
        )
        .map_err(io("read"))?;
        Catalog::parse(&text).map(Some)
    }

    fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let corrupt = |line: usize, what: &str| CatalogError::Corrupt {
            file: FILE,
            line,
            what: what.to_string(),
        };
        let body_end = text
            .rfind("crc ")
            .ok_or_else(|| corrupt(0, "no crc line"))?;
        let (body, crc_line) = text.split_at(body_end);
        let want = u32::from_str_radix(crc_line.trim_start_matches("crc ").trim(), 16)
            .map_err(|_| corrupt(body.lines().count() + 1, "bad crc line"))?;
        if crc32fast::hash(body.as_bytes()) != want {
            return Err(corrupt(0, "checksum mismatch"));
        }
        let mut cat = Catalog::default();
        let mut version = 0;
        for (i, line) in body.lines().enumerate() {
            let n = i + 1;
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                [h] if n == 1 && *h == "ohm-catalog" => return Err(corrupt(n, "no version")),
                ["ohm-catalog", v] if n == 1 => {
                    version = match *v {
                        "1" => 1,
                        "2" => 2,
                        _ => {
                            let what =
                                format!("format version {v} is not 1 or 2 (a later Ohm wrote it?)");
                            return Err(corrupt(n, &what));
                        }
                    };
                }
                _ if version == 0 => return Err(corrupt(n, "no header line")),
                ["tenant", id, name] => {
                    let id = id.parse().map_err(|_| corrupt(n, "bad tenant id"))?;
                    cat.tenants.insert(
                        TenantId(id),
                        Tenant {
                            id: TenantId(id),
                            name: name.to_string(),
                        },
                    );
                }
                ["principal", t, name, kind, hash, grants @ ..] if grants.len() <= 1 => {
                    let tenant = TenantId(t.parse().map_err(|_| corrupt(n, "bad tenant id"))?);
                    if !cat.tenants.contains_key(&tenant) {
                        return Err(corrupt(n, "principal of an unknown tenant"));
                    }
                    let token_sha256 = unhex32(hash).ok_or_else(|| corrupt(n, "bad hash"))?;
                    let grants: Vec<String> = grants
                        .first()
                        .map(|g| g.split(',').map(str::to_string).collect())
                        .unwrap_or_default();
                    let role = match (version, *kind) {
                        (1, "admin") => Role::Admin,
                        (1, "user") => Role::Owner,
                        (1, _) => return Err(corrupt(n, "role is not admin or user")),
                        (_, kind) => {
                            Role::parse(kind, &grants).map_err(|e| corrupt(n, &e.to_string()))?
                        }
                    };
                    if cat.by_token.contains_key(&token_sha256)
                        || cat.principals.contains_key(&(tenant, name.to_string()))
                    {
                        return Err(corrupt(n, "a principal or token twice"));
                    }
                    let system = cat
                        .tenants
                        .get(&tenant)
                        .is_some_and(|t| t.name == ADMIN_TENANT);
                    if (role == Role::Admin) != system {
                        return Err(corrupt(
                            n,
                            "the admin role outside tenant system, or another role in it",
                        ));
                    }
                    cat.add_record(PrincipalRecord {
                        tenant,
                        name: name.to_string(),
                        role,
                        token_sha256,
                    });
                }
                _ => return Err(corrupt(n, "unknown record")),
            }
        }
        Ok(cat)
    }

    fn render(&self) -> String {
        let mut s = format!("{HEADER}\n");
        for t in self.tenants.values() {
            s.push_str(&format!("tenant {} {}\n", t.id.0, t.name));
        }
        for p in self.principals.values() {
            s.push_str(&format!(
                "principal {} {} {} {}",
                p.tenant.0,
                p.name,
                p.role.name(),
                hex(&p.token_sha256)
            ));
            if let Role::Caller(g) = &p.role {
                s.push(' ');
                s.push_str(&g.join(","));
            }
            s.push('\n');
        }
        let crc = crc32fast::hash(s.as_bytes());
        s.push_str(&format!("crc {crc:08x}\n"));
        s
    }

    /// Writes the catalog atomically: a crash leaves the old or the new file.
    pub fn save(&self, dir: &cap_std::fs::Dir) -> Result<(), CatalogError> {
        let io = |op| {
            move |source| CatalogError::Io {
                file: FILE,
                op,
                source,
            }
        };
        let mut f = dir.create(FILE_TMP).map_err(io("create"))?;
        f.write_all(self.render().as_bytes()).map_err(io("write"))?;
        f.sync_all().map_err(io("fsync"))?;
        drop(f);
        dir.rename(FILE_TMP, dir, FILE).map_err(io("rename"))?;
        sync_dir(dir).map_err(io("fsync directory of"))
    }

    fn add_record(&mut self, rec: PrincipalRecord) {
        self.remove_record(rec.tenant, &rec.name);
        let key = (rec.tenant, rec.name.clone());
        self.by_token.insert(rec.token_sha256, key.clone());
        self.principals.insert(key, rec);
    }

    fn remove_record(&mut self, tenant: TenantId, name: &str) -> Option<PrincipalRecord> {
        let rec = self.principals.remove(&(tenant, name.to_string()))?;
        self.by_token.remove(&rec.token_sha256);
        Some(rec)
    }

    fn principal_of(&self, rec: &PrincipalRecord) -> Option<Principal> {
        Some(Principal {
            tenant: rec.tenant,
            tenant_name: self.tenants.get(&rec.tenant)?.name.clone(),
            name: rec.name.clone(),
            role: rec.role.clone(),
            token_sha256: rec.token_sha256,
        })
    }

    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    pub fn tenant(&self, id: TenantId) -> Option<&Tenant> {
        self.tenants.get(&id)
    }

    pub fn tenant_by_name(&self, name: &str) -> Option<&Tenant> {
        self.tenants.values().find(|t| t.name == name)
    }

    /// Adds a tenant with one principal and returns the principal's token
    /// (the only time it is visible). The caller saves the catalog.
    pub fn create_tenant(
        &mut self,
        name: &str,
        principal: &str,
        admin: bool,
    ) -> Result<(TenantId, String), CatalogError> {
        let (record, token) = self.new_tenant(name, principal, admin)?;
        self.adopt(&record)?;
        Ok((record.id, token))
    }

    /// A tenant that could be added next, with one principal, and the
    /// principal's token; nothing is added (a cluster logs the record
    /// first, and every node `adopt`s it once applied).
    pub fn new_tenant(
        &self,
        name: &str,
        principal: &str,
        admin: bool,
    ) -> Result<(TenantRecord, String), CatalogError> {
        if !valid_name(name) {
            return Err(CatalogError::BadName(name.to_string()));
        }
        if self.tenant_by_name(name).is_some() {
            return Err(CatalogError::Exists(name.to_string()));
        }
        if self.tenants.len() >= TENANTS_MAX {
            return Err(CatalogError::Full);
        }
        if admin != (name == ADMIN_TENANT) {
            return Err(CatalogError::BadRole(format!(
                "the admin role is for tenant {ADMIN_TENANT:?} alone, and every principal there \
                 is an admin"
            )));
        }
        let id = TenantId(self.tenants.keys().next_back().map_or(0, |t| t.0 + 1));
        let token = new_token()?;
        let record = TenantRecord {
            id,
            name: name.to_string(),
            principal: principal.to_string(),
            admin,
            token_sha256: token_sha256(&token),
        };
        Ok((record, token))
    }

    /// Adds a tenant and its principal as `new_tenant` made them; a tenant
    /// already here under this id and name is left as it is (true: added).
    pub fn adopt(&mut self, t: &TenantRecord) -> Result<bool, CatalogError> {
        match self.tenants.get(&t.id) {
            // Here already; its principals may have changed since (a
            // cluster's overlay is applied over the created tenants).
            Some(have) if have.name == t.name => return Ok(false),
            Some(have) => {
                return Err(CatalogError::Conflict(format!(
                    "tenant {} is {:?} here but {:?} in the record",
                    t.id.0, have.name, t.name
                )))
            }
            None => {}
        }
        if let Some(have) = self.tenant_by_name(&t.name) {
            return Err(CatalogError::Conflict(format!(
                "tenant {:?} is id {} here but {} in the record",
                t.name, have.id.0, t.id.0
            )));
        }
        if self.tenants.len() >= TENANTS_MAX {
            return Err(CatalogError::Full);
        }
        self.tenants.insert(
            t.id,
            Tenant {
                id: t.id,
                name: t.name.clone(),
            },
        );
        self.add_record(PrincipalRecord {
            tenant: t.id,
            name: t.principal.clone(),
            role: first_role(t.admin),
            token_sha256: t.token_sha256,
        });
        Ok(true)
    }

    /// The principal a token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        self.principal_of(
            self.principals
                .get(self.by_token.get(&token_sha256(token))?)?,
        )
    }

    /// Whether a token with this SHA-256 still names a principal (false
    /// once it is revoked).
    pub fn holds_token(&self, token_sha256: &[u8; 32]) -> bool {
        self.by_token.contains_key(token_sha256)
    }

    /// The principal the token with this SHA-256 names.
    pub fn principal_by_token(&self, token_sha256: &[u8; 32]) -> Option<Principal> {
        self.principal_of(self.principals.get(self.by_token.get(token_sha256)?)?)
    }

    /// Principal `name` of `tenant`.
    pub fn principal(&self, tenant: TenantId, name: &str) -> Option<Principal> {
        self.principal_of(self.principals.get(&(tenant, name.to_string()))?)
    }

    /// Tenant `tenant`'s principals, by name.
    pub fn principals_of(&self, tenant: TenantId) -> Vec<PrincipalInfo> {
        let from = (tenant, String::new());
        self.principals
            .range(from..)
            .take_while(|((t, _), _)| *t == tenant)
            .map(|(_, p)| PrincipalInfo {
                name: p.name.clone(),
                role: p.role.clone(),
            })
            .collect()
    }

    /// A new principal `name` of `tenant` with `role`, and its token; nothing
    /// is added (`apply` adds it: in a cluster, once partition 0 logged it).
    pub fn new_principal(
        &self,
        tenant: TenantId,
        name: &str,
        role: Role,
    ) -> Result<(PrincipalChange, String), CatalogError> {
        let t = self.tenants.get(&tenant).ok_or_else(|| {
            CatalogError::Conflict(format!("tenant {} is not in the catalog", tenant.0))
        })?;
        if !valid_name(name) {
            return Err(CatalogError::BadPrincipal(name.to_string()));
        }
        if (role == Role::Admin) != (t.name == ADMIN_TENANT) {
            return Err(CatalogError::BadRole(format!(
                "the admin role is for tenant {ADMIN_TENANT:?} alone, and every principal there is an admin"
            )));
        }
        if self.principals.contains_key(&(tenant, name.to_string())) {
            return Err(CatalogError::PrincipalExists {
                tenant: t.name.clone(),
                name: name.to_string(),
            });
        }
        if self.principals_of(tenant).len() >= PRINCIPALS_PER_TENANT_MAX {
            return Err(CatalogError::TooManyPrincipals(t.name.clone()));
        }
        let token = new_token()?;
        let change = PrincipalChange {
            tenant,
            name: name.to_string(),
            entry: Some(PrincipalEntry {
                role,
                token_sha256: token_sha256(&token),
            }),
        };
        Ok((change, token))
    }

    /// Revoking principal `name` of `tenant`, checked; nothing is removed
    /// (`apply` removes it). The last admin of the system tenant stays.
    pub fn revoke_principal(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<PrincipalChange, CatalogError> {
        let t = self.tenants.get(&tenant).ok_or_else(|| {
            CatalogError::Conflict(format!("tenant {} is not in the catalog", tenant.0))
        })?;
        let Some(rec) = self.principals.get(&(tenant, name.to_string())) else {
            return Err(CatalogError::NoPrincipal {
                tenant: t.name.clone(),
                name: name.to_string(),
            });
        };
        if rec.role == Role::Admin && self.principals_of(tenant).len() == 1 {
            return Err(CatalogError::LastAdmin {
                name: name.to_string(),
            });
        }
        Ok(PrincipalChange {
            tenant,
            name: name.to_string(),
            entry: None,
        })
    }

    /// Makes `change` so here: a principal added (or its entry replaced),
    /// or removed. Its tenant must be here.
    pub fn apply(&mut self, change: &PrincipalChange) -> Result<(), CatalogError> {
        let Some(t) = self.tenants.get(&change.tenant) else {
            return Err(CatalogError::Conflict(format!(
                "a principal of tenant {}, which is not here",
                change.tenant.0
            )));
        };
        // Checked before anything changes: an error leaves it as it was.
        if let Some(e) = &change.entry {
            if (e.role == Role::Admin) != (t.name == ADMIN_TENANT) {
                return Err(CatalogError::Conflict(format!(
                    "principal {:?} of tenant {:?} has role {}: the admin role is for tenant \
                     {ADMIN_TENANT:?} alone, and every principal there is an admin",
                    change.name,
                    t.name,
                    e.role.name()
                )));
            }
            let other = self.by_token.get(&e.token_sha256);
            if let Some(other) = other.filter(|o| **o != (change.tenant, change.name.clone())) {
                return Err(CatalogError::Conflict(format!(
                    "principal {:?}'s token is principal {:?}'s too",
                    change.name, other.1
                )));
            }
        }
        self.remove_record(change.tenant, &change.name);
        if let Some(e) = &change.entry {
            self.add_record(PrincipalRecord {
                tenant: change.tenant,
                name: change.name.clone(),
                role: e.role.clone(),
                token_sha256: e.token_sha256,
            });
        }
        Ok(())
    }

    /// Removes principal `name` of `tenant`, if here.
    pub fn forget_principal(&mut self, tenant: TenantId, name: &str) {
        self.remove_record(tenant, name);
    }

    /// Applies a cluster's principal overlay (partition 0's) over this.
    pub fn apply_overlay(&mut self, overlay: &PrincipalOverlay) -> Result<(), CatalogError> {
        for ((tenant, name), entry) in overlay {
            self.apply(&PrincipalChange {
                tenant: *tenant,
                name: name.clone(),
                entry: entry.clone(),
            })?;
        }
        Ok(())
    }
}

/// The role of a tenant's first principal, as its record says.
fn first_role(admin: bool) -> Role {
    if admin {
        Role::Admin
    } else {
        Role::Owner
    }
}

/// Makes a rename or create in `dir` durable.
pub fn sync_dir(dir: &cap_std::fs::Dir) -> std::io::Result<()> {
    dir.open(".")?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_only_their_principal() {
        let mut c = Catalog::default();
        let (admin, admin_token) = c.create_tenant(ADMIN_TENANT, "admin", true).unwrap();
        let (demo, demo_token) = c.create_tenant(DEMO_TENANT, "app", false).unwrap();
        assert_ne!(admin, demo);
        assert_eq!(c.authenticate(&demo_token).unwrap().tenant, demo);
        assert!(c.authenticate(&admin_token).unwrap().admin());
        assert!(!c.authenticate(&demo_token).unwrap().admin());
        assert!(c.authenticate("ohm_guess").is_none());
        assert!(matches!(
            c.create_tenant(DEMO_TENANT, "x", false),
            Err(CatalogError::Exists(_))
        ));
        assert!(matches!(
            c.create_tenant("no spaces", "x", false),
            Err(CatalogError::BadName(_))
        ));
    }

    #[test]
    fn roles_bound_calls_and_a_caller_needs_grants() {
        let caller = Role::parse("caller", &["vote".into(), "vote".into()]).unwrap();
        assert_eq!(caller, Role::Caller(vec!["vote".into()]), "deduplicated");
        assert!(caller.may_call("vote") && !caller.may_call("results"));
        assert!(Role::parse("caller", &["*".into()])
            .unwrap()
            .may_call("any"));
        assert!(!Role::Reader.may_call("vote"));
        assert!(Role::Deployer.may_call("vote"));
        for (role, grants, says) in [
            ("caller", vec![], "needs the procedures"),
            (
                "caller",
                vec!["no-dash".to_string()],
                "not a procedure name",
            ),
            (
                "reader",
                vec!["vote".to_string()],
                "only a caller has grants",
            ),
            ("root", vec![], "no role named"),
        ] {
            let e = Role::parse(role, &grants).unwrap_err().to_string();
            assert!(e.contains(says), "{role} {grants:?}: {e}");
        }
        let many = vec!["p".to_string(); GRANTS_MAX + 1];
        assert!(Role::parse("caller", &many).is_err());
    }

    #[test]
    fn principals_are_created_revoked_and_kept_in_the_file() {
        let mut c = Catalog::default();
        let (sys, admin_token) = c.create_tenant(ADMIN_TENANT, "admin", true).unwrap();
        let (t, _) = c.create_tenant("acme", "owner", false).unwrap();
        let grants = vec!["vote".to_string(), "results".to_string()];
        let role = Role::parse("caller", &grants).unwrap();
        let (change, token) = c.new_principal(t, "app", role.clone()).unwrap();
        assert!(c.authenticate(&token).is_none(), "made, not added");
        c.apply(&change).unwrap();
        let p = c.authenticate(&token).unwrap();
        assert_eq!((p.name.as_str(), &p.role), ("app", &role));
        assert!(matches!(
            c.new_principal(t, "app", Role::Reader),
            Err(CatalogError::PrincipalExists { .. })
        ));
        assert!(matches!(
            c.new_principal(t, "root", Role::Admin),
            Err(CatalogError::BadRole(_))
        ));
        assert!(matches!(
            c.new_principal(sys, "ops", Role::Owner),
            Err(CatalogError::BadRole(_))
        ));
        assert!(matches!(
            c.new_principal(t, "no spaces", Role::Reader),
            Err(CatalogError::BadPrincipal(_))
        ));
        // Written as version 2, grants and all; read back the same.
        let text = c.render();
        assert!(
            text.contains(" caller ") && text.contains(" results,vote"),
            "{text}"
        );
        let back = Catalog::parse(&text).unwrap();
        assert_eq!(back.authenticate(&token).unwrap().role, role);
        assert_eq!(back.render(), text);
        // Revoked: the token names nobody.
        let sha = token_sha256(&token);
        let gone = c.revoke_principal(t, "app").unwrap();
        c.apply(&gone).unwrap();
        assert!(c.authenticate(&token).is_none() && !c.holds_token(&sha));
        assert!(matches!(
            c.revoke_principal(t, "app"),
            Err(CatalogError::NoPrincipal { .. })
        ));
        // A change that cannot be applied leaves the catalog as it was.
        let (rec, _) = c.new_principal(t, "dup", Role::Reader).unwrap();
        let mut clash = rec.clone();
        clash.entry.as_mut().unwrap().token_sha256 = token_sha256(&token);
        c.apply(&rec).unwrap();
        let (ro, ro_token) = c.new_principal(t, "ro", Role::Reader).unwrap();
        c.apply(&ro).unwrap();
        let mut steal = clash.clone();
        steal.entry.as_mut().unwrap().token_sha256 = token_sha256(&ro_token);
        assert!(matches!(c.apply(&steal), Err(CatalogError::Conflict(_))));
        assert_eq!(c.principal(t, "dup").unwrap().role, Role::Reader, "kept");
        let mut admin = rec.clone();
        admin.entry.as_mut().unwrap().role = Role::Admin;
        assert!(matches!(c.apply(&admin), Err(CatalogError::Conflict(_))));
        c.apply(&c.revoke_principal(t, "dup").unwrap()).unwrap();
        c.apply(&c.revoke_principal(t, "ro").unwrap()).unwrap();
        // The system tenant keeps one admin at least.
        assert!(matches!(
            c.revoke_principal(sys, "admin"),
            Err(CatalogError::LastAdmin { .. })
        ));
        let (second, _) = c.new_principal(sys, "ops", Role::Admin).unwrap();
        c.apply(&second).unwrap();
        c.apply(&c.revoke_principal(sys, "admin").unwrap()).unwrap();
        assert!(c.authenticate(&admin_token).is_none());
        // A tenant's principals are bounded.
        for i in c.principals_of(t).len()..PRINCIPALS_PER_TENANT_MAX {
            let (ch, _) = c.new_principal(t, &format!("p{i}"), Role::Reader).unwrap();
            c.apply(&ch).unwrap();
        }
        assert!(matches!(
            c.new_principal(t, "one_more", Role::Reader),
            Err(CatalogError::TooManyPrincipals(_))
        ));
    }

    /// A version 1 file (roles `admin` and `user`) loads: a user is its
    /// tenant's owner.
    #[test]
    fn a_version_1_catalog_loads_with_its_users_as_owners() {
        let body = format!(
            "ohm-catalog 1\ntenant 0 system\ntenant 1 demo\nprincipal 0 admin admin {}\nprincipal 1 demo user {}\n",
            hex(&token_sha256("a")),
            hex(&token_sha256("d"))
        );
        let text = format!("{body}crc {:08x}\n", crc32fast::hash(body.as_bytes()));
        let c = Catalog::parse(&text).unwrap();
        assert_eq!(c.authenticate("a").unwrap().role, Role::Admin);
        assert_eq!(c.authenticate("d").unwrap().role, Role::Owner);
        assert!(c.render().starts_with("ohm-catalog 2\n"));
        let bad = body.replace(" user ", " owner ");
        let bad = format!("{bad}crc {:08x}\n", crc32fast::hash(bad.as_bytes()));
        assert!(matches!(
            Catalog::parse(&bad),
            Err(CatalogError::Corrupt { line: 5, .. })
        ));
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let mut c = Catalog::default();
        c.create_tenant("a", "p", false).unwrap();
        let (_, tok) = c.create_tenant(ADMIN_TENANT, "q", true).unwrap();
        assert!(matches!(
            c.create_tenant("b", "q", true),
            Err(CatalogError::BadRole(_))
        ));
        let text = c.render();
        assert!(!text.contains(&tok), "tokens are never stored");
        let back = Catalog::parse(&text).unwrap();
        assert_eq!(back.authenticate(&tok).unwrap().tenant_name, ADMIN_TENANT);
        assert_eq!(back.render(), text);
        let damaged = text.replacen("tenant 1 system", "tenant 1 c", 1);
        assert!(matches!(
            Catalog::parse(&damaged),
            Err(CatalogError::Corrupt { .. })
        ));
    }

    #[test]
    fn save_and_load_through_a_dir() {
        let tmp = std::env::temp_dir().join(format!("ohm-cat-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let dir = cap_std::fs::Dir::open_ambient_dir(&tmp, cap_std::ambient_authority()).unwrap();
        assert!(Catalog::load(&dir).unwrap().is_none());
        let mut c = Catalog::default();
        let (_, tok) = c.create_tenant("t", "p", false).unwrap();
        c.save(&dir).unwrap();
        let back = Catalog::load(&dir).unwrap().unwrap();
        assert_eq!(back.authenticate(&tok).unwrap().name, "p");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_record_made_on_one_node_authenticates_on_another_once_adopted() {
        let mut seed = Catalog::default();
        seed.create_tenant(ADMIN_TENANT, "admin", true).unwrap();
        seed.create_tenant(DEMO_TENANT, "demo", false).unwrap();
        let (mut leader, mut follower) = (seed.clone(), seed.clone());
        let (rec, token) = leader.new_tenant("acme", "owner", false).unwrap();
        assert!(leader.authenticate(&token).is_none(), "nothing added yet");
        assert_eq!(rec.id, TenantId(2));
        assert!(leader.adopt(&rec).unwrap());
        assert!(follower.adopt(&rec).unwrap());
        assert!(!follower.adopt(&rec).unwrap(), "adopting twice adds once");
        let p = follower.authenticate(&token).unwrap();
        assert_eq!((p.tenant, p.tenant_name.as_str()), (TenantId(2), "acme"));
        // A record that disagrees with what is here is refused, not merged.
        let mut clash = rec.clone();
        clash.name = "other".into();
        assert!(matches!(
            follower.adopt(&clash),
            Err(CatalogError::Conflict(_))
        ));
        let mut moved = rec;
        moved.id = TenantId(9);
        assert!(matches!(
            follower.adopt(&moved),
            Err(CatalogError::Conflict(_))
        ));
    }
}
