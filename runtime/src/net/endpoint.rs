//! quinn endpoints for client links, with the transport limits named here.
//!
//! Flow control: frames are read incrementally (see `frame`), so a stream
//! window far smaller than `FRAME_BYTES_MAX` still carries a 40 MiB deploy;
//! the windows below are sized for throughput and bound what one
//! connection can make the node buffer.

use super::tls::{self, ClientTrust, ServerIdentity};
use super::NetError;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Bidirectional streams a client may have open at once on a connection.
pub const STREAMS_PER_CONNECTION_MAX: u32 = 64;
/// A connection silent this long is closed (keep-alives keep clients open).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Clients ping this often so an idle but live connection stays open.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// The idle timeout the Rust client asks for (QUIC takes the lower of the
/// two sides'): a node that died is noticed within this, so requests in
/// flight to it fail and the cluster client moves on.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Unread bytes one stream may have in flight towards the receiver.
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// Unread bytes all of a connection's streams may have in flight.
pub const CONNECTION_WINDOW_BYTES: u32 = 48 << 20;

/// A client's keep-alive: every `KEEP_ALIVE_INTERVAL`, or more often when
/// its idle timeout is short, so a live connection is never taken for dead.
pub fn keep_alive_for(idle: Duration) -> Duration {
    KEEP_ALIVE_INTERVAL.min(idle / 4)
}

/// Transport settings; a client (with its idle timeout) also sends
/// keep-alives.
fn transport(client_idle: Option<Duration>) -> Result<TransportConfig, NetError> {
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(STREAMS_PER_CONNECTION_MAX))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(Some(
            IdleTimeout::try_from(client_idle.unwrap_or(IDLE_TIMEOUT))
                .map_err(|e| NetError::Config(e.to_string()))?,
        ))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW_BYTES))
        .send_window(u64::from(CONNECTION_WINDOW_BYTES));
    if let Some(idle) = client_idle {
        t.keep_alive_interval(Some(keep_alive_for(idle)));
    }
    Ok(t)
}

/// A server endpoint on `addr` presenting `identity`.
pub fn server(addr: SocketAddr, identity: &ServerIdentity) -> Result<quinn::Endpoint, NetError> {
    let crypto = QuicServerConfig::try_from(tls::server_config(identity)?)
        .map_err(|e| NetError::Config(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport(None)?));
    quinn::Endpoint::server(config, addr).map_err(|e| NetError::Io {
        what: format!("binding UDP {addr}"),
        source: e,
    })
}

/// A client endpoint (bound to an ephemeral port of `peer`'s family) whose
/// connections trust the server as `trust` says.
pub fn client(peer: SocketAddr, trust: &ClientTrust) -> Result<quinn::Endpoint, NetError> {
    client_with(peer, trust, CLIENT_IDLE_TIMEOUT)
}

/// `client` whose connections close after `idle` without a packet from
/// the server (keep-alives keep a live one open).
pub fn client_with(
    peer: SocketAddr,
    trust: &ClientTrust,
    idle: Duration,
) -> Result<quinn::Endpoint, NetError> {
    let crypto = QuicClientConfig::try_from(tls::client_config(trust)?)
        .map_err(|e| NetError::Config(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport(Some(idle))?));
    let bind: SocketAddr = if peer.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| NetError::Io {
        what: format!("binding UDP {bind}"),
        source: e,
    })?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}
