//! QUIC for client links: TLS identity and configs (`tls`), quinn endpoints
//! with named transport limits (`endpoint`), length-prefixed frames on
//! streams (`frame`), many streams of a connection written by one task
//! (`stream_out`), and the connection-serving shell generic over the node
//! (`server`). For peer links: the cluster CA and mutual TLS (`peer_tls`)
//! and the links themselves (`peer`).
//!
//! Must not: know what a request means (that is the `Service`'s business),
//! or let one connection's input grow memory without a named bound.

pub mod endpoint;
pub mod frame;
pub mod metrics_http;
pub mod peer;
pub mod peer_tls;
pub mod server;
pub mod stream_out;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_peer;
pub mod tls;

/// Setting up TLS or an endpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad PEM in {0}")]
    Pem(String),
    #[error("generating a certificate: {0}")]
    CertGen(String),
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    #[error("{0}")]
    Config(String),
}
