//! Where a client command connects, how it trusts the node and which token
//! it presents: flags, then environment, then the files a local node leaves
//! in its data directory. Owns the resolution to a `driver::ClientConfig`
//! and the hints printed when connecting fails; must not touch the network.

use crate::driver::{Client, ClientConfig, ClientError, Trust};
use anyhow::{bail, Context};
use clap::Args;
use std::path::{Path, PathBuf};

/// QUIC streams a command-line client opens (the driver's default).
pub const CLI_STREAMS: usize = 4;

/// Connection flags shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The node, as host:port.
    #[arg(
        long,
        env = "OHM_ADDR",
        default_value = "127.0.0.1:7450",
        global = true
    )]
    pub addr: String,
    /// The principal's token (default: DIR/demo.token, or DIR/admin.token
    /// for admin commands).
    #[arg(long, env = "OHM_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Trust the node's certificate if a CA in this PEM file signed it.
    #[arg(long, env = "OHM_CA", value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,
    /// Trust exactly the certificate with this fingerprint (sha256:<hex>).
    #[arg(
        long,
        env = "OHM_FINGERPRINT",
        value_name = "sha256:HEX",
        global = true
    )]
    pub fingerprint: Option<String>,
    /// A local node's data directory: its tls/cert.pem and token files are
    /// used when --ca/--fingerprint/--token are not given.
    #[arg(long, value_name = "DIR", default_value = "ohm-data", global = true)]
    pub data: PathBuf,
}

/// Which default token file applies when no token is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    /// `DIR/demo.token`: the demo tenant of a node started with --demo.
    Demo,
    /// `DIR/admin.token`: the admin principal (tenant creation).
    Admin,
}

impl TokenRole {
    fn file_name(self) -> &'static str {
        match self {
            TokenRole::Demo => "demo.token",
            TokenRole::Admin => "admin.token",
        }
    }
}

impl ConnectArgs {
    /// Resolves flags, environment and data-directory files into a config.
    /// Errors say what is missing and the ways to give it.
    pub fn resolve(&self, role: TokenRole) -> anyhow::Result<ClientConfig> {
        let mut cfg = ClientConfig::new(self.addr.clone(), self.trust()?, self.token(role)?);
        cfg.streams = CLI_STREAMS;
        Ok(cfg)
    }

    fn trust(&self) -> anyhow::Result<Trust> {
        if let Some(fp) = &self.fingerprint {
            check_fingerprint(fp)?;
            return Ok(Trust::Fingerprint(fp.clone()));
        }
        if let Some(ca) = &self.ca {
            if !ca.is_file() {
                bail!("--ca {}: no such file", ca.display());
            }
            return Ok(Trust::CaFile(ca.clone()));
        }
        let cert = self.data.join("tls").join("cert.pem");
        if cert.is_file() {
            return Ok(Trust::CaFile(cert));
        }
        bail!(
            "no certificate to trust: pass --ca FILE or --fingerprint sha256:HEX \
             (or set OHM_CA / OHM_FINGERPRINT), or run from the directory holding \
             {}/ of a local node (looked for {})",
            self.data.display(),
            cert.display()
        )
    }

    fn token(&self, role: TokenRole) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.trim().to_string());
        }
        let path = self.data.join(role.file_name());
        match std::fs::read_to_string(&path) {
            Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
            Ok(_) => bail!("{} is empty", path.display()),
            Err(_) => bail!("{}", missing_token_message(role, &self.data)),
        }
    }

    /// Resolves and connects; a failure carries a hint line.
    pub async fn connect(&self, role: TokenRole) -> anyhow::Result<Client> {
        let cfg = self.resolve(role)?;
        let addr = cfg.addr.clone();
        Client::connect(cfg)
            .await
            .map_err(|e| anyhow::anyhow!("{e}\n{}", hint(&e, &addr)))
    }
}

fn missing_token_message(role: TokenRole, data: &Path) -> String {
    match role {
        TokenRole::Demo => format!(
            "no token: pass --token, set OHM_TOKEN, or run from the directory holding \
             {}/ of a node started with --demo",
            data.display()
        ),
        TokenRole::Admin => format!(
            "no admin token: pass --token, set OHM_TOKEN, or run from the directory \
             holding {}/ of the node (it writes admin.token there)",
            data.display()
        ),
    }
}

fn check_fingerprint(fp: &str) -> anyhow::Result<()> {
    let hex = fp
        .strip_prefix("sha256:")
        .context("--fingerprint must look like sha256:<64 hex digits>")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--fingerprint must look like sha256:<64 hex digits>, got {fp}");
    }
    Ok(())
}

/// One line telling the user what to try after a failed connection.
pub fn hint(err: &ClientError, addr: &str) -> String {
    match err {
        ClientError::Unreachable { .. } => format!(
            "hint: is a node running at {addr}? start one with `ohm serve --demo`, \
             or pass --addr / set OHM_ADDR"
        ),
        ClientError::Certificate { .. } => "hint: the node's certificate does not match \
             the one trusted; pass --ca DIR/tls/cert.pem or the --fingerprint printed on \
             the node's `ready` line"
            .to_string(),
        ClientError::Auth { .. } => "hint: the token was refused; pass the token of this \
             node (DIR/demo.token or DIR/admin.token) with --token or OHM_TOKEN"
            .to_string(),
        _ => "hint: run with a node of the same version as this client".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> ConnectArgs {
        ConnectArgs {
            addr: "127.0.0.1:7450".into(),
            token: None,
            ca: None,
            fingerprint: None,
            data: dir.to_path_buf(),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ohm-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn missing_everything_says_how_to_give_it() {
        let dir = temp_dir("missing");
        let err = args(&dir).resolve(TokenRole::Demo).unwrap_err().to_string();
        assert!(err.contains("--ca FILE or --fingerprint"), "{err}");
        let mut a = args(&dir);
        a.fingerprint = Some(format!("sha256:{}", "ab".repeat(32)));
        let err = a.resolve(TokenRole::Demo).unwrap_err().to_string();
        assert!(
            err.starts_with("no token: pass --token, set OHM_TOKEN"),
            "{err}"
        );
        let err = a.resolve(TokenRole::Admin).unwrap_err().to_string();
        assert!(err.starts_with("no admin token"), "{err}");
    }

    #[test]
    fn data_dir_files_fill_in_trust_and_token() {
        let dir = temp_dir("files");
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        std::fs::write(dir.join("tls/cert.pem"), "pem").unwrap();
        std::fs::write(dir.join("demo.token"), "demo-tok\n").unwrap();
        std::fs::write(dir.join("admin.token"), "admin-tok").unwrap();
        let cfg = args(&dir).resolve(TokenRole::Demo).unwrap();
        assert!(matches!(cfg.trust, Trust::CaFile(p) if p.ends_with("tls/cert.pem")));
        assert_eq!(cfg.token, "demo-tok");
        assert_eq!(
            args(&dir).resolve(TokenRole::Admin).unwrap().token,
            "admin-tok"
        );
        let mut a = args(&dir);
        a.token = Some("given".into());
        assert_eq!(a.resolve(TokenRole::Admin).unwrap().token, "given");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fingerprint_is_checked() {
        assert!(check_fingerprint(&format!("sha256:{}", "0f".repeat(32))).is_ok());
        assert!(check_fingerprint("sha256:abc").is_err());
        assert!(check_fingerprint(&"0f".repeat(32)).is_err());
    }
}
