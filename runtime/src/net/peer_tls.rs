//! TLS for peer links: the cluster CA and one certificate per node
//! (`new_cluster`, `new_node`, used by `ohm cluster`), a node's identity as
//! loaded from its certificate directory, and the mutual-TLS rustls configs
//! (TLS 1.3 only, ALPN `ohm-peer/2`, client certificates required).
//!
//! A node's id is in its certificate: the DNS name `n<id>.ohm-cluster`
//! (`node_name`). A dialing node checks the certificate is valid for the
//! node it meant to reach; an accepting node reads the id from the
//! certificate the dialer presented. Only certificates the cluster CA
//! signed get that far.
//!
//! Must not: accept a peer whose certificate another CA signed, or talk to
//! a peer without TLS.

use super::tls::{provider, ServerIdentity, PEM_BYTES_MAX};
use super::NetError;
use crate::types::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::path::Path;
use std::sync::Arc;

/// The ALPN of peer links; the version in it pins the message format.
pub const PEER_ALPN: &[u8] = b"ohm-peer/2";
/// Files in a node's certificate directory, and the CA's in the cluster's.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
pub const NODE_CERT_FILE: &str = "node.pem";
pub const NODE_KEY_FILE: &str = "node.key";
/// The DNS suffix of node names in certificates.
const NODE_NAME_SUFFIX: &str = ".ohm-cluster";
/// Node ids run 1..=NODE_ID_MAX.
pub const NODE_ID_MAX: u32 = 1 << 20;

/// The name a node's certificate carries: `n<id>.ohm-cluster`.
pub fn node_name(node: NodeId) -> String {
    format!("n{}{NODE_NAME_SUFFIX}", node.0)
}

fn parse_node_name(name: &str) -> Option<NodeId> {
    let digits = name.strip_prefix('n')?.strip_suffix(NODE_NAME_SUFFIX)?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u32 = digits.parse().ok()?;
    (1..=NODE_ID_MAX).contains(&id).then_some(NodeId(id))
}

/// The node a certificate names (exactly one `n<id>.ohm-cluster`).
pub fn node_of_cert(der: &CertificateDer<'_>) -> Result<NodeId, NetError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| NetError::Pem(format!("peer certificate: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| NetError::Pem(format!("peer certificate: {e}")))?
        .ok_or_else(|| NetError::Pem("peer certificate: no subject alternative name".into()))?;
    let mut nodes = san.value.general_names.iter().filter_map(|n| match n {
        x509_parser::extensions::GeneralName::DNSName(d) => parse_node_name(d),
        _ => None,
    });
    match (nodes.next(), nodes.next()) {
        (Some(n), None) => Ok(n),
        (None, _) => Err(NetError::Pem(format!(
            "peer certificate: no node name (n<id>{NODE_NAME_SUFFIX}) in it"
        ))),
        (Some(_), Some(_)) => Err(NetError::Pem(
            "peer certificate: more than one node name in it".into(),
        )),
    }
}

/// A new cluster: its CA and the first nodes' certificates, as PEM.
pub struct NewCluster {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub nodes: Vec<NewNode>,
}

/// One node's certificate and key, as PEM.
pub struct NewNode {
    pub node: NodeId,
    pub cert_pem: String,
    pub key_pem: String,
}

fn cert_error(e: rcgen::Error) -> NetError {
    NetError::CertGen(e.to_string())
}

/// A CA and certificates for nodes 1..=`nodes`, each also valid for
/// `names` (the host names or addresses clients use to reach the nodes).
pub fn new_cluster(nodes: u32, names: &[String]) -> Result<NewCluster, NetError> {
    if nodes == 0 || nodes > NODE_ID_MAX {
        return Err(NetError::Config(format!(
            "a cluster has 1..={NODE_ID_MAX} nodes"
        )));
    }
    let ca_key = KeyPair::generate().map_err(cert_error)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Ohm cluster CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = params.self_signed(&ca_key).map_err(cert_error)?;
    let issuer = Issuer::new(params, &ca_key);
    let nodes = (1..=nodes)
        .map(|n| sign_node(&issuer, NodeId(n), names))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NewCluster {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        nodes,
    })
}

/// A certificate for one more node, signed by an existing cluster CA.
pub fn new_node(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    node: NodeId,
    names: &[String],
) -> Result<NewNode, NetError> {
    if node.0 == 0 || node.0 > NODE_ID_MAX {
        return Err(NetError::Config(format!(
            "node ids are 1..={NODE_ID_MAX}, not {}",
            node.0
        )));
    }
    let key =
        KeyPair::from_pem(ca_key_pem).map_err(|e| NetError::Pem(format!("{CA_KEY_FILE}: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, &key)
        .map_err(|e| NetError::Pem(format!("{CA_CERT_FILE}: {e}")))?;
    sign_node(&issuer, node, names)
}

fn sign_node(
    issuer: &Issuer<'_, &KeyPair>,
    node: NodeId,
    names: &[String],
) -> Result<NewNode, NetError> {
    let mut sans = vec![node_name(node)];
    sans.extend(names.iter().cloned());
    let mut params = CertificateParams::new(sans).map_err(cert_error)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("ohm node {}", node.0));
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(cert_error)?;
    let cert = params.signed_by(&key, issuer).map_err(cert_error)?;
    Ok(NewNode {
        node,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A node's identity on peer links: its certificate (naming its id), its
/// key, and the cluster CA it trusts peers by.
#[derive(Debug)]
pub struct PeerIdentity {
    pub node: NodeId,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ca: Vec<CertificateDer<'static>>,
}

impl PeerIdentity {
    /// Reads `ca.pem`, `node.pem` and `node.key` from `dir` and checks that
    /// the CA signed the node's certificate.
    pub fn load(dir: &Path) -> Result<PeerIdentity, NetError> {
        let read = |file: &str| -> Result<Vec<u8>, NetError> {
            let path = dir.join(file);
            let f = std::fs::File::open(&path).map_err(|e| NetError::Io {
                what: path.display().to_string(),
                source: e,
            })?;
            use std::io::Read;
            let mut out = Vec::new();
            f.take(PEM_BYTES_MAX + 1)
                .read_to_end(&mut out)
                .map_err(|e| NetError::Io {
                    what: path.display().to_string(),
                    source: e,
                })?;
            if out.len() as u64 > PEM_BYTES_MAX {
                return Err(NetError::Pem(format!(
                    "{}: over {PEM_BYTES_MAX} bytes",
                    path.display()
                )));
            }
            Ok(out)
        };
        let certs = |file: &str| -> Result<Vec<CertificateDer<'static>>, NetError> {
            let pem = read(file)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| NetError::Pem(format!("{file}: {e}")))?;
            if certs.is_empty() {
                return Err(NetError::Pem(format!("{file}: no certificate in it")));
            }
            Ok(certs)
        };
        let ca = certs(CA_CERT_FILE)?;
        let chain = certs(NODE_CERT_FILE)?;
        let key = PrivateKeyDer::from_pem_slice(&read(NODE_KEY_FILE)?)
            .map_err(|e| NetError::Pem(format!("{NODE_KEY_FILE}: {e}")))?;
        let node =
            node_of_cert(&chain[0]).map_err(|e| NetError::Pem(format!("{NODE_CERT_FILE}: {e}")))?;
        let id = PeerIdentity {
            node,
            chain,
            key,
            ca,
        };
        // A certificate from another cluster's CA would only fail at the
        // first handshake, far from the cause: say it now.
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(id.roots()?),
            provider(),
        )
        .build()
        .map_err(|e| NetError::Config(format!("{CA_CERT_FILE}: {e}")))?;
        let name =
            ServerName::try_from(node_name(node)).map_err(|e| NetError::Config(e.to_string()))?;
        verifier
            .verify_server_cert(&id.chain[0], &id.chain[1..], &name, &[], UnixTime::now())
            .map_err(|e| {
                NetError::Pem(format!(
                    "{} is not a certificate {CA_CERT_FILE} signed for {}: {e}",
                    dir.join(NODE_CERT_FILE).display(),
                    node_name(node)
                ))
            })?;
        Ok(id)
    }

    fn roots(&self) -> Result<rustls::RootCertStore, NetError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in &self.ca {
            roots
                .add(c.clone())
                .map_err(|e| NetError::Pem(format!("{CA_CERT_FILE}: {e}")))?;
        }
        Ok(roots)
    }

    /// The same certificate, for serving clients (clients may trust the
    /// cluster CA instead of pinning each node).
    pub fn server_identity(&self) -> ServerIdentity {
        ServerIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }

    /// Accepting peers: TLS 1.3, ALPN `ohm-peer/2`, a client certificate the
    /// cluster CA signed is required.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, NetError> {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.roots()?),
            provider(),
        )
        .build()
        .map_err(|e| NetError::Config(format!("peer client verifier: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(NetError::Tls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(NetError::Tls)?;
        config.alpn_protocols = vec![PEER_ALPN.to_vec()];
        config.max_early_data_size = 0;
        Ok(config)
    }

    /// Dialing peers: the server must present a certificate the cluster CA
    /// signed for the node dialed (checked by name), and we present ours.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, NetError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(NetError::Tls)?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(NetError::Tls)?;
        config.alpn_protocols = vec![PEER_ALPN.to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_parse_back_and_nothing_else_does() {
        for n in [1, 7, 42, NODE_ID_MAX] {
            assert_eq!(parse_node_name(&node_name(NodeId(n))), Some(NodeId(n)));
        }
        for bad in [
            "n0.ohm-cluster",
            "n01.ohm-cluster",
            "n.ohm-cluster",
            "n-1.ohm-cluster",
            "n1.ohm-cluster.evil",
            "x1.ohm-cluster",
            "n99999999999.ohm-cluster",
            "n1048577.ohm-cluster",
            "localhost",
        ] {
            assert_eq!(parse_node_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_new_cluster_signs_each_node_for_its_own_name() {
        let c = new_cluster(3, &["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert_eq!(c.nodes.len(), 3);
        for n in &c.nodes {
            let der = CertificateDer::from_pem_slice(n.cert_pem.as_bytes()).unwrap();
            assert_eq!(node_of_cert(&der).unwrap(), n.node);
        }
        // One more node later, from the files the operator kept.
        let n4 = new_node(&c.ca_cert_pem, &c.ca_key_pem, NodeId(4), &[]).unwrap();
        let der = CertificateDer::from_pem_slice(n4.cert_pem.as_bytes()).unwrap();
        assert_eq!(node_of_cert(&der).unwrap(), NodeId(4));
        assert!(new_node(&c.ca_cert_pem, &c.ca_key_pem, NodeId(0), &[]).is_err());
        assert!(new_cluster(0, &[]).is_err());
    }

    #[test]
    fn a_certificate_without_a_node_name_is_refused() {
        let plain = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let e = node_of_cert(plain.cert.der()).unwrap_err();
        assert!(e.to_string().contains("no node name"), "{e}");
    }
}
