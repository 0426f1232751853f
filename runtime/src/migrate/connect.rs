//! Connecting to the source: its URL (password kept out of anything
//! written), TLS, and the session settings every read uses.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting to the source may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The oldest source read: the catalog columns read (`attgenerated`)
/// are PostgreSQL 12's.
const SERVER_VERSION_MIN: i32 = 120_000;

/// The URL without its password (in the authority or as `password=`), for
/// messages, the plan file and the state file.
pub fn redact(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((auth, host)) => {
                let user = auth.split(':').next().unwrap_or("");
                format!("{scheme}://{user}@{host}")
            }
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("password="))
        .collect();
    if kept.is_empty() {
        base
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// Connects to the source: over TLS unless the URL says `sslmode=disable`
/// (on loopback too: every link is encrypted unless told otherwise), the
/// certificate verified against `sslrootcert` (a PEM file) or the system's
/// roots, whatever the TLS mode. Refuses a server older than PostgreSQL 12.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode: Option<String> = None;
    let mut root: Option<PathBuf> = None;
    let mut rest = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => root = Some(PathBuf::from(v)),
            _ => rest.push(kv),
        }
    }
    let plain_url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config: tokio_postgres::Config = plain_url
        .parse()
        .with_context(|| format!("reading the source URL {}", redact(url)))?;
    if config.get_password().is_none() {
        if let Ok(p) = std::env::var("PGPASSWORD") {
            config.password(p);
        }
    }
    config.connect_timeout(CONNECT_TIMEOUT);
    let tls = match mode.as_deref() {
        Some("disable") => false,
        None | Some("prefer" | "require" | "verify-ca" | "verify-full") => true,
        Some(other) => bail!(
            "sslmode={other}: use require or verify-full (both verify the server's certificate), \
             or disable for a server without TLS on a trusted link"
        ),
    };
    let target = redact(url);
    if !tls {
        let (client, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {target}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("source connection: {e}");
            }
        });
        return checked(client, &target).await;
    }
    let mut roots = rustls::RootCertStore::empty();
    match &root {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(path)
                .with_context(|| format!("sslrootcert {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("sslrootcert {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("sslrootcert {}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _unreadable) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!(
                    "no trusted roots on this system to check {target}'s certificate ({} \
                     errors reading them): give ?sslrootcert=FILE, or ?sslmode=disable for a \
                     server without TLS on a trusted link",
                    found.errors.len()
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.ssl_mode(tokio_postgres::config::SslMode::Require);
    let (client, conn) = config
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls_config))
        .await
        .with_context(|| format!("connecting to {target} over TLS"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("source connection: {e}");
        }
    });
    checked(client, &target).await
}

/// The connection, once its server is known to be new enough.
async fn checked(
    client: tokio_postgres::Client,
    target: &str,
) -> anyhow::Result<tokio_postgres::Client> {
    let v: String = client
        .query_one("SHOW server_version_num", &[])
        .await
        .with_context(|| format!("reading {target}'s version"))?
        .get(0);
    let num: i32 = v.trim().parse().unwrap_or(0);
    if num < SERVER_VERSION_MIN {
        bail!("{target} is PostgreSQL {v}; ohm migrate reads PostgreSQL 12 and later");
    }
    Ok(client)
}

/// Session settings every source connection reads with: text forms the
/// loader and the checksums expect.
pub(super) const SESSION: &str = "SET DateStyle = ISO, YMD; SET IntervalStyle = postgres; \
     SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = hex; \
     SET client_encoding = 'UTF8'";

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn no_password_is_written_anywhere() {
        assert_eq!(
            redact("postgres://me:s3cr@t@db:5432/x"),
            "postgres://me@db:5432/x"
        );
        assert_eq!(
            redact("postgres://me@db/x?password=s3cret&sslmode=require"),
            "postgres://me@db/x?sslmode=require"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }
}
