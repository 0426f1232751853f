//! TLS for client links: the node's certificate (loaded, or generated once
//! and kept under the data directory), the rustls server and client configs
//! (TLS 1.3 only, ALPN `ohm/1`, the `ring` provider named explicitly), and
//! certificate pinning by SHA-256 fingerprint.
//!
//! Must not: touch the disk except through the data directory's `Dir` (or a
//! path the operator gave on the command line), or accept a server whose
//! certificate neither chains to the given CA nor matches the pin.

use super::NetError;
use crate::proto::ALPN;
use cap_std::fs::Dir;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Where the node keeps its certificate, relative to the data directory.
pub const CERT_PATH: &str = "tls/cert.pem";
pub const KEY_PATH: &str = "tls/key.pem";
/// Largest PEM file read (certificates and keys are a few KiB).
pub const PEM_BYTES_MAX: u64 = 1 << 20;

/// The node's certificate chain and private key.
#[derive(Debug)]
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ServerIdentity {
    /// `sha256:<hex>` of the end-entity certificate (what clients pin).
    pub fn fingerprint(&self) -> String {
        self.chain
            .first()
            .map(|c| fingerprint(c))
            .unwrap_or_default()
    }

    /// The end-entity certificate as PEM (what clients may trust as a CA file).
    pub fn cert_pem(&self) -> String {
        let mut out = String::new();
        for c in &self.chain {
            out.push_str("-----BEGIN CERTIFICATE-----\n");
            let b64 = base64(c);
            for line in b64.as_bytes().chunks(64) {
                out.push_str(&String::from_utf8_lossy(line));
                out.push('\n');
            }
            out.push_str("-----END CERTIFICATE-----\n");
        }
        out
    }

    fn from_pem(cert: &[u8], key: &[u8], what: &str) -> Result<ServerIdentity, NetError> {
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NetError::Pem(format!("{what}: certificate: {e}")))?;
        if chain.is_empty() {
            return Err(NetError::Pem(format!("{what}: no certificate in the file")));
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| NetError::Pem(format!("{what}: private key: {e}")))?;
        Ok(ServerIdentity { chain, key })
    }
}

/// `sha256:` and the lowercase hex SHA-256 of a DER certificate.
pub fn fingerprint(cert_der: &[u8]) -> String {
    let digest = Sha256::digest(cert_der);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in digest.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Normalises a fingerprint as an operator might type it: with or without
/// the `sha256:` prefix, any case, `:` separators between bytes allowed.
pub fn parse_fingerprint(s: &str) -> Result<String, NetError> {
    let hex: String = s
        .trim()
        .trim_start_matches("sha256:")
        .trim_start_matches("SHA256:")
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(NetError::Config(format!(
            "fingerprint {s:?} is not `sha256:` and 64 hex digits"
        )));
    }
    Ok(format!("sha256:{hex}"))
}

/// The node's certificate from `tls/cert.pem` + `tls/key.pem` under the data
/// directory, or a new self-signed one for `names` written there.
pub fn load_or_create(dir: &Dir, names: &[String]) -> Result<ServerIdentity, NetError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| NetError::Io { what, source: e }
    };
    if dir.exists(CERT_PATH) && dir.exists(KEY_PATH) {
        let cert = read_bounded(
            dir.open(CERT_PATH).map_err(io(CERT_PATH))?.into_std(),
            CERT_PATH,
        )?;
        let key = read_bounded(
            dir.open(KEY_PATH).map_err(io(KEY_PATH))?.into_std(),
            KEY_PATH,
        )?;
        return ServerIdentity::from_pem(&cert, &key, "data directory tls/");
    }
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| NetError::CertGen(e.to_string()))?;
    let cert_pem = generated.cert.pem();
    let key_pem = generated.signing_key.serialize_pem();
    dir.create_dir_all("tls").map_err(io("tls/"))?;
    let mut opts = cap_std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    cap_std::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut key_file = dir.open_with(KEY_PATH, &opts).map_err(io(KEY_PATH))?;
    key_file
        .write_all(key_pem.as_bytes())
        .map_err(io(KEY_PATH))?;
    dir.write(CERT_PATH, cert_pem.as_bytes())
        .map_err(io(CERT_PATH))?;
    ServerIdentity::from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), "generated")
}

/// A certificate chain and key the operator named by path.
pub fn load_files(cert: &Path, key: &Path) -> Result<ServerIdentity, NetError> {
    let read = |p: &Path| {
        let f = std::fs::File::open(p).map_err(|e| NetError::Io {
            what: p.display().to_string(),
            source: e,
        })?;
        read_bounded(f, &p.display().to_string())
    };
    ServerIdentity::from_pem(&read(cert)?, &read(key)?, &cert.display().to_string())
}

fn read_bounded(f: std::fs::File, what: &str) -> Result<Vec<u8>, NetError> {
    use std::io::Read;
    let mut out = Vec::new();
    f.take(PEM_BYTES_MAX + 1)
        .read_to_end(&mut out)
        .map_err(|e| NetError::Io {
            what: what.to_string(),
            source: e,
        })?;
    if out.len() as u64 > PEM_BYTES_MAX {
        return Err(NetError::Pem(format!("{what}: over {PEM_BYTES_MAX} bytes")));
    }
    Ok(out)
}

/// The one crypto provider: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// rustls server config: TLS 1.3 only, ALPN `ohm/1`, no client certificates
/// (clients authenticate with a token inside the protocol).
pub fn server_config(identity: &ServerIdentity) -> Result<rustls::ServerConfig, NetError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(NetError::Tls)?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(NetError::Tls)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// How a client decides to trust the server.
#[derive(Debug, Clone)]
pub enum ClientTrust {
    /// PEM certificates to use as roots (a CA, or the server's own cert).
    RootsPem(Vec<u8>),
    /// The server's end-entity certificate must have this fingerprint.
    Fingerprint(String),
}

/// rustls client config: TLS 1.3 only, ALPN `ohm/1`.
pub fn client_config(trust: &ClientTrust) -> Result<rustls::ClientConfig, NetError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(NetError::Tls)?;
    let mut config = match trust {
        ClientTrust::RootsPem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| NetError::Pem(format!("CA file: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| NetError::Pem(format!("CA file: {e}")))?;
            }
            if roots.is_empty() {
                return Err(NetError::Pem("CA file: no certificate in it".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ClientTrust::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(fp)?))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Accepts exactly the server certificate whose SHA-256 is pinned; the
/// handshake signature is still checked against that certificate's key, so
/// only the holder of the private key passes.
#[derive(Debug)]
pub struct PinnedVerifier {
    expected: String,
    provider: Arc<CryptoProvider>,
}

/// Start of the message a pin mismatch produces (the driver recognises it).
pub const PIN_MISMATCH: &str = "server certificate fingerprint mismatch";

impl PinnedVerifier {
    pub fn new(fingerprint: &str) -> Result<PinnedVerifier, NetError> {
        Ok(PinnedVerifier {
            expected: parse_fingerprint(fingerprint)?,
            provider: provider(),
        })
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        if presented == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "{PIN_MISMATCH}: expected {}, presented {presented}",
                self.expected
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Standard base64 with padding (PEM bodies), to avoid a dependency.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> (std::path::PathBuf, Dir) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ohm-tls-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let dir = Dir::open_ambient_dir(&path, cap_std::ambient_authority()).unwrap();
        (path, dir)
    }

    #[test]
    fn generated_once_then_loaded() {
        let (path, dir) = temp_dir();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let a = load_or_create(&dir, &names).unwrap();
        let b = load_or_create(&dir, &names).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(a.fingerprint().starts_with("sha256:") && a.fingerprint().len() == 71);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path.join(KEY_PATH))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The PEM we print is the one on disk, byte for byte in content.
        let on_disk = std::fs::read(path.join(CERT_PATH)).unwrap();
        let reparsed: Vec<_> = CertificateDer::pem_slice_iter(a.cert_pem().as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let disk: Vec<_> = CertificateDer::pem_slice_iter(&on_disk)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(reparsed, disk);
        let c = load_files(&path.join(CERT_PATH), &path.join(KEY_PATH)).unwrap();
        assert_eq!(c.fingerprint(), a.fingerprint());
        server_config(&c).unwrap();
        let _ = std::fs::remove_dir_all(&path);
    }

    #[test]
    fn fingerprints_parse_leniently_and_reject_junk() {
        let fp = fingerprint(b"x");
        let upper = fp.trim_start_matches("sha256:").to_uppercase();
        assert_eq!(parse_fingerprint(&upper).unwrap(), fp);
        assert!(parse_fingerprint("sha256:abc").is_err());
        assert!(parse_fingerprint(&"g".repeat(64)).is_err());
    }

    #[test]
    fn pinned_verifier_accepts_its_cert_and_names_both_on_mismatch() {
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (a, b) = (a.cert.der().clone(), b.cert.der().clone());
        let v = PinnedVerifier::new(&fingerprint(&a)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        assert!(v
            .verify_server_cert(&a, &[], &name, &[], UnixTime::now())
            .is_ok());
        let e = v
            .verify_server_cert(&b, &[], &name, &[], UnixTime::now())
            .unwrap_err()
            .to_string();
        assert!(e.contains(PIN_MISMATCH), "{e}");
        assert!(
            e.contains(&fingerprint(&a)) && e.contains(&fingerprint(&b)),
            "{e}"
        );
        assert!(!v.supported_verify_schemes().is_empty());
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
