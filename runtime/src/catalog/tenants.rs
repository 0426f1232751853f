//! Tenants and principals, and their file.
//!
//! File `catalog` (text, one record per line, ending in a CRC line):
//! ```text
//! ohm-catalog 1
//! tenant <id> <name>
//! principal <tenant id> <name> <admin|user> <sha256 of token, hex>
//! crc <crc32 of every byte above, hex>
//! ```

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
const HEADER: &str = "ohm-catalog 1";
/// Longest catalog file read (a bound on outside input).
const FILE_BYTES_MAX: u64 = 16 << 20;
/// Tenants one node holds.
pub const TENANTS_MAX: usize = 10_000;
/// Bytes of randomness in a token.
const TOKEN_BYTES: usize = 32;

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
}

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
    /// May create tenants and see the node's status.
    pub admin: bool,
}

#[derive(Debug, Clone)]
struct PrincipalRecord {
    tenant: TenantId,
    name: String,
    admin: bool,
    token_sha256: [u8; 32],
}

/// Every tenant and principal of the node.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tenants: BTreeMap<TenantId, Tenant>,
    principals: Vec<PrincipalRecord>,
    by_token: HashMap<[u8; 32], usize>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn sha256(token: &str) -> [u8; 32] {
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
        for (i, line) in body.lines().enumerate() {
            let n = i + 1;
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                [h] if n == 1 && *h == "ohm-catalog" => return Err(corrupt(n, "no version")),
                ["ohm-catalog", v] if n == 1 => {
                    if *v != "1" {
                        return Err(corrupt(n, &format!("format version {v} is not 1")));
                    }
                }
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
                ["principal", t, name, kind, hash] => {
                    let tenant = TenantId(t.parse().map_err(|_| corrupt(n, "bad tenant id"))?);
                    if !cat.tenants.contains_key(&tenant) {
                        return Err(corrupt(n, "principal of an unknown tenant"));
                    }
                    let token_sha256 = unhex32(hash).ok_or_else(|| corrupt(n, "bad hash"))?;
                    cat.add_record(PrincipalRecord {
                        tenant,
                        name: name.to_string(),
                        admin: *kind == "admin",
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
        for p in &self.principals {
            let kind = if p.admin { "admin" } else { "user" };
            s.push_str(&format!(
                "principal {} {} {kind} {}\n",
                p.tenant.0,
                p.name,
                hex(&p.token_sha256)
            ));
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
        self.by_token
            .insert(rec.token_sha256, self.principals.len());
        self.principals.push(rec);
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
        let id = TenantId(self.tenants.keys().next_back().map_or(0, |t| t.0 + 1));
        let token = new_token()?;
        let record = TenantRecord {
            id,
            name: name.to_string(),
            principal: principal.to_string(),
            admin,
            token_sha256: sha256(&token),
        };
        Ok((record, token))
    }

    /// Adds a tenant and its principal as `new_tenant` made them; one
    /// already here just so is left as it is (true: added).
    pub fn adopt(&mut self, t: &TenantRecord) -> Result<bool, CatalogError> {
        match self.tenants.get(&t.id) {
            Some(have) if have.name == t.name => {
                let same = self.principals.iter().any(|p| {
                    p.tenant == t.id
                        && p.name == t.principal
                        && p.admin == t.admin
                        && p.token_sha256 == t.token_sha256
                });
                if same {
                    return Ok(false);
                }
                return Err(CatalogError::Conflict(format!(
                    "tenant {:?} has another principal or token here than in the record",
                    t.name
                )));
            }
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
            admin: t.admin,
            token_sha256: t.token_sha256,
        });
        Ok(true)
    }

    /// The principal a token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let rec = self.principals.get(*self.by_token.get(&sha256(token))?)?;
        Some(Principal {
            tenant: rec.tenant,
            tenant_name: self.tenants.get(&rec.tenant)?.name.clone(),
            name: rec.name.clone(),
            admin: rec.admin,
        })
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
        assert!(c.authenticate(&admin_token).unwrap().admin);
        assert!(!c.authenticate(&demo_token).unwrap().admin);
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
    fn round_trips_and_detects_damage() {
        let mut c = Catalog::default();
        c.create_tenant("a", "p", false).unwrap();
        let (_, tok) = c.create_tenant("b", "q", true).unwrap();
        let text = c.render();
        assert!(!text.contains(&tok), "tokens are never stored");
        let back = Catalog::parse(&text).unwrap();
        assert_eq!(back.authenticate(&tok).unwrap().tenant_name, "b");
        assert_eq!(back.render(), text);
        let damaged = text.replacen("tenant 1 b", "tenant 1 c", 1);
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
        let mut other_token = rec.clone();
        other_token.token_sha256 = [0; 32];
        assert!(matches!(
            follower.adopt(&other_token),
            Err(CatalogError::Conflict(_))
        ));
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
