//! Peer links: one QUIC endpoint per node (ALPN `ohm-peer/2`, mutual TLS,
//! see `peer_tls`) that dials every other node and accepts their dials.
//! Frames and messages are `peer`'s; docs/PEERS.md documents both.
//!
//! Each peer has its own bounded queue (`PEER_QUEUE_MAX` messages,
//! `PEER_QUEUE_BYTES_MAX` bytes) drained by its own task onto one
//! unidirectional stream. `send` never waits: when a peer is slow, stopped
//! or gone, its queue fills and what does not fit is dropped and counted
//! (consensus sends again what matters); no other peer notices. What was
//! queued while a peer was unreachable is dropped before each redial, so
//! a peer coming back does not get a burst of stale messages. A node has
//! one inbound link per peer (a newer dial replaces the older link), and
//! handshakes in progress have their own small budget.
//!
//! Must not: deliver a message from a node whose certificate the cluster
//! CA did not sign, or that is not in the peer list; block the caller of
//! `send` or `Deliver`; let a peer make this node buffer without bound.

use super::frame::{FrameError, FrameReader};
use super::peer_tls::{node_name, node_of_cert, PeerIdentity, PEER_ALPN};
use super::NetError;
use crate::peer::{decode, decode_hello, encode, encode_hello, PeerMessage, PEER_FRAME_BYTES_MAX};
use crate::types::NodeId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, IdleTimeout, TransportConfig, VarInt};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Messages waiting for one peer.
pub const PEER_QUEUE_MAX: usize = 8192;
/// Bytes (`PeerMessage::weight_bytes`) waiting for one peer.
pub const PEER_QUEUE_BYTES_MAX: usize = 128 << 20;
/// Peer connections accepted at once, handshakes included (a cluster has
/// few nodes, and each has one inbound link).
pub const PEER_CONNECTIONS_MAX: usize = 256;
/// Handshakes in progress at once (anyone who can reach the port can
/// start one; a handshake over this is refused).
pub const PEER_HANDSHAKES_MAX: usize = 16;
/// Unidirectional streams a peer may have open at once on a connection.
pub const PEER_STREAMS_MAX: u32 = 4;
/// Bytes of frames coalesced into one stream write.
pub const PEER_WRITE_BATCH_BYTES_MAX: usize = 1 << 20;
/// A dial that has not completed its handshake by then has failed.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// The first wait after a failed dial; it doubles with each failure.
pub const REDIAL_DELAY_MIN: Duration = Duration::from_millis(50);
/// The longest wait between dials.
pub const REDIAL_DELAY_MAX: Duration = Duration::from_secs(1);
/// A peer silent this long is gone (keep-alives keep a live one open), so
/// a stopped or cut-off peer is noticed in seconds, not minutes.
pub const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pings on an idle link.
pub const PEER_KEEP_ALIVE: Duration = Duration::from_millis(500);
/// Unread bytes in flight towards the receiver, per stream.
pub const PEER_STREAM_WINDOW_BYTES: u32 = 16 << 20;
/// Unread bytes in flight towards the receiver, over a whole link.
pub const PEER_CONNECTION_WINDOW_BYTES: u32 = 64 << 20;

/// Connection close codes on peer links.
pub const CLOSE_SHUTDOWN: u32 = 0;
pub const CLOSE_WRONG_PROTOCOL: u32 = 1;
pub const CLOSE_UNKNOWN_PEER: u32 = 2;
pub const CLOSE_BAD_FRAME: u32 = 3;
pub const CLOSE_REPLACED: u32 = 4;

/// Where messages from peers go. Called on a network task: must not block.
pub type Deliver = Arc<dyn Fn(NodeId, PeerMessage) + Send + Sync>;

/// This node's place in the cluster.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The UDP address peers dial.
    pub listen: SocketAddr,
    /// Every other node and the address it listens on.
    pub peers: BTreeMap<NodeId, SocketAddr>,
}

/// Why `send` did not queue a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerSendError {
    #[error("{0} is not in this node's peer list")]
    UnknownPeer(NodeId),
    #[error("the queue for {0} is full; the message was dropped")]
    Full(NodeId),
}

/// Counters for one peer, read by `status` without asking the tasks, and
/// what makes its dialer dial again.
#[derive(Default)]
struct LinkStats {
    connected: AtomicBool,
    /// The peer restarted (a new incarnation said hello) while our link to
    /// it looked up: our link leads to its old process, which will never
    /// answer (noticed only after `PEER_IDLE_TIMEOUT`). Makes the link
    /// close and dial again.
    redial: tokio::sync::Notify,
    /// The peer dialed us while our link to it was down: it is back, so
    /// the dialer stops waiting out its redial delay.
    wake: tokio::sync::Notify,
    /// The peer's incarnation, from the hello of its latest stream.
    incarnation: Mutex<Option<u64>>,
    /// Restarts of the peer seen so far (new incarnations).
    restarts: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    queued_bytes: AtomicUsize,
    last_error: Mutex<Option<String>>,
}

impl LinkStats {
    /// The peer said hello as `incarnation`. A new one (it restarted)
    /// makes our link to it dial again, or stop waiting to.
    fn hello(&self, incarnation: u64) {
        let mut seen = self.incarnation.lock().unwrap_or_else(|p| p.into_inner());
        let restarted = seen.is_some_and(|s| s != incarnation);
        *seen = Some(incarnation);
        if !restarted {
            return;
        }
        self.restarts.fetch_add(1, Ordering::Relaxed);
        if self.connected.load(Ordering::Relaxed) {
            self.redial.notify_one();
        } else {
            self.wake.notify_one();
        }
    }

    fn failed(&self, what: String) {
        self.connected.store(false, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(what);
    }
}

/// What `status` reports about one peer.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub node: NodeId,
    /// Where it is dialed.
    pub addr: SocketAddr,
    /// Our link to it is up (its handshake passed and it has not failed).
    pub connected: bool,
    /// Messages written to its link.
    pub sent: u64,
    /// Messages dropped: its queue was full, or it was unreachable.
    pub dropped: u64,
    /// Messages received from it.
    pub received: u64,
    /// Why its link last failed.
    pub last_error: Option<String>,
    /// Times it was seen to restart (a hello from a new incarnation).
    pub restarts: u64,
}

struct Link {
    addr: SocketAddr,
    tx: mpsc::Sender<PeerMessage>,
    stats: Arc<LinkStats>,
}

/// The handle the node keeps: send, look, shut down.
pub struct PeerNet {
    me: NodeId,
    endpoint: quinn::Endpoint,
    links: BTreeMap<NodeId, Link>,
    refused: Arc<AtomicU64>,
}

impl PeerNet {
    /// Binds the peer endpoint. The returned future runs the links (dial,
    /// accept, read) until `shutdown`; the caller spawns it.
    pub fn start(
        identity: &PeerIdentity,
        cfg: PeerConfig,
        deliver: Deliver,
    ) -> Result<(PeerNet, impl Future<Output = ()> + Send + 'static), NetError> {
        if cfg.peers.contains_key(&identity.node) {
            return Err(NetError::Config(format!(
                "the peer list names this node ({}) itself",
                identity.node
            )));
        }
        let server = QuicServerConfig::try_from(identity.server_config()?)
            .map_err(|e| NetError::Config(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
        server.transport_config(Arc::new(transport()?));
        let client = QuicClientConfig::try_from(identity.client_config()?)
            .map_err(|e| NetError::Config(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client));
        client.transport_config(Arc::new(transport()?));
        let mut endpoint =
            quinn::Endpoint::server(server, cfg.listen).map_err(|e| NetError::Io {
                what: format!("binding the peer address UDP {}", cfg.listen),
                source: e,
            })?;
        endpoint.set_default_client_config(client);

        let incarnation = new_incarnation();
        let mut tasks = JoinSet::new();
        let mut links = BTreeMap::new();
        let mut known = BTreeMap::new();
        for (&node, &addr) in &cfg.peers {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
            let stats = Arc::new(LinkStats::default());
            known.insert(node, stats.clone());
            tasks.spawn(dial_loop(
                endpoint.clone(),
                node,
                addr,
                rx,
                stats.clone(),
                incarnation,
            ));
            links.insert(node, Link { addr, tx, stats });
        }
        let refused = Arc::new(AtomicU64::new(0));
        let accept = accept_loop(endpoint.clone(), Arc::new(known), deliver, refused.clone());
        let run = async move {
            tasks.spawn(accept);
            while tasks.join_next().await.is_some() {}
        };
        let net = PeerNet {
            me: identity.node,
            endpoint,
            links,
            refused,
        };
        Ok((net, run))
    }

    /// This node's id (from its certificate).
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The address the endpoint is bound to (with the port chosen, if 0
    /// was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.endpoint.local_addr().map_err(|e| NetError::Io {
            what: "the peer endpoint's address".into(),
            source: e,
        })
    }

    /// Queues `msg` for `to`; never waits.
    pub fn send(&self, to: NodeId, msg: PeerMessage) -> Result<(), PeerSendError> {
        let link = self.links.get(&to).ok_or(PeerSendError::UnknownPeer(to))?;
        let weight = msg.weight_bytes();
        let queued = link.stats.queued_bytes.fetch_add(weight, Ordering::Relaxed);
        if queued + weight > PEER_QUEUE_BYTES_MAX || link.tx.try_send(msg).is_err() {
            link.stats.queued_bytes.fetch_sub(weight, Ordering::Relaxed);
            link.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(PeerSendError::Full(to));
        }
        Ok(())
    }

    /// Whether our link to `node` is up (its handshake passed and it has
    /// not failed since).
    pub fn connected(&self, node: NodeId) -> bool {
        self.links
            .get(&node)
            .is_some_and(|l| l.stats.connected.load(Ordering::Relaxed))
    }

    /// Every peer's link, in node order.
    pub fn status(&self) -> Vec<PeerStatus> {
        self.links
            .iter()
            .map(|(&node, l)| PeerStatus {
                node,
                addr: l.addr,
                connected: l.stats.connected.load(Ordering::Relaxed),
                sent: l.stats.sent.load(Ordering::Relaxed),
                dropped: l.stats.dropped.load(Ordering::Relaxed),
                received: l.stats.received.load(Ordering::Relaxed),
                last_error: l
                    .stats
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
                restarts: l.stats.restarts.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Handshakes refused so far (another CA, a node not in the list, the
    /// wrong ALPN).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Closes the endpoint (every link) without waiting.
    pub fn close(&self) {
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"node stopping");
    }

    /// Closes every link; the future from `start` then ends.
    pub async fn shutdown(self) {
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"node stopping");
        drop(self.links);
        self.endpoint.wait_idle().await;
    }
}

fn transport() -> Result<TransportConfig, NetError> {
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(PEER_STREAMS_MAX))
        .max_idle_timeout(Some(
            IdleTimeout::try_from(PEER_IDLE_TIMEOUT)
                .map_err(|e| NetError::Config(e.to_string()))?,
        ))
        .keep_alive_interval(Some(PEER_KEEP_ALIVE))
        .stream_receive_window(VarInt::from_u32(PEER_STREAM_WINDOW_BYTES))
        .receive_window(VarInt::from_u32(PEER_CONNECTION_WINDOW_BYTES))
        .send_window(u64::from(PEER_CONNECTION_WINDOW_BYTES));
    Ok(t)
}

/// This run of the node, as its hellos name it: the time it started, in
/// nanoseconds (a restarted node's is another).
fn new_incarnation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Keeps a link to `to` up for as long as the node sends to it.
async fn dial_loop(
    endpoint: quinn::Endpoint,
    to: NodeId,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<PeerMessage>,
    stats: Arc<LinkStats>,
    incarnation: u64,
) {
    let mut delay = REDIAL_DELAY_MIN;
    loop {
        let restarts = stats.restarts.load(Ordering::Relaxed);
        match dial(&endpoint, to, addr).await {
            Ok(conn) => {
                stats.connected.store(true, Ordering::Relaxed);
                delay = REDIAL_DELAY_MIN;
                match pump(&conn, &mut rx, &stats, incarnation, restarts).await {
                    Ok(()) => return, // the node is done sending
                    Err(e) => stats.failed(e),
                }
            }
            Err(e) => stats.failed(e),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stats.wake.notified() => {}
        }
        delay = (delay * 2).min(REDIAL_DELAY_MAX);
        // Stale by the time the peer is back; consensus sends again.
        loop {
            match rx.try_recv() {
                Ok(m) => {
                    stats
                        .queued_bytes
                        .fetch_sub(m.weight_bytes(), Ordering::Relaxed);
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
    }
}

async fn dial(
    endpoint: &quinn::Endpoint,
    to: NodeId,
    addr: SocketAddr,
) -> Result<Connection, String> {
    let connecting = endpoint
        .connect(addr, &node_name(to))
        .map_err(|e| format!("dialing {to} at {addr}: {e}"))?;
    match tokio::time::timeout(DIAL_TIMEOUT, connecting).await {
        // rustls checked the certificate is valid for `node_name(to)`;
        // it must also name no other node.
        Ok(Ok(conn)) => match identify(&conn) {
            Ok(n) if n == to => Ok(conn),
            Ok(n) => {
                conn.close(VarInt::from_u32(CLOSE_UNKNOWN_PEER), b"not the node dialed");
                Err(format!("dialing {to} at {addr}: {n} answered"))
            }
            Err((code, why)) => {
                conn.close(VarInt::from_u32(code), why.as_bytes());
                Err(format!("dialing {to} at {addr}: {why}"))
            }
        },
        Ok(Err(e)) => Err(format!("dialing {to} at {addr}: {e}")),
        Err(_) => Err(format!(
            "dialing {to} at {addr}: no handshake within {DIAL_TIMEOUT:?}"
        )),
    }
}

/// Says hello as `incarnation`, then sends queued messages on one stream
/// until the link fails (`Err`), the peer is seen to have restarted since
/// the dial (`restarts_at_dial`), or the node drops its handle (`Ok`).
/// A restart ends the link even while a write waits: a link to a dead
/// process soon has its whole window unacknowledged, and writes block.
async fn pump(
    conn: &Connection,
    rx: &mut mpsc::Receiver<PeerMessage>,
    stats: &LinkStats,
    incarnation: u64,
    restarts_at_dial: u64,
) -> Result<(), String> {
    let restarted = async {
        // A permit left from before this dial is no news.
        while stats.restarts.load(Ordering::Relaxed) == restarts_at_dial {
            stats.redial.notified().await;
        }
    };
    tokio::select! {
        r = send_queued(conn, rx, stats, incarnation) => r,
        _ = restarted => {
            conn.close(VarInt::from_u32(CLOSE_REPLACED), b"the peer restarted");
            Err("the peer restarted (a new incarnation said hello): dialing it again".into())
        }
    }
}

async fn send_queued(
    conn: &Connection,
    rx: &mut mpsc::Receiver<PeerMessage>,
    stats: &LinkStats,
    incarnation: u64,
) -> Result<(), String> {
    let mut send = conn
        .open_uni()
        .await
        .map_err(|e| format!("opening a stream: {e}"))?;
    let mut buf = Vec::new();
    encode_hello(incarnation, &mut buf);
    send.write_all(&buf)
        .await
        .map_err(|e| format!("writing: {e}"))?;
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            e = conn.closed() => return Err(format!("link closed: {e}")),
        };
        let Some(first) = first else {
            let _ = send.finish();
            return Ok(());
        };
        buf.clear();
        let mut n = 0u64;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            stats
                .queued_bytes
                .fetch_sub(m.weight_bytes(), Ordering::Relaxed);
            encode(&m, &mut buf);
            n += 1;
            if buf.len() < PEER_WRITE_BATCH_BYTES_MAX {
                next = rx.try_recv().ok();
            }
        }
        send.write_all(&buf)
            .await
            .map_err(|e| format!("writing: {e}"))?;
        stats.sent.fetch_add(n, Ordering::Relaxed);
    }
}

/// The inbound links by sender: a node has one (a newer dial replaces an
/// older link, which its dialer has given up on).
type Inbound = Arc<Mutex<BTreeMap<NodeId, Connection>>>;

async fn accept_loop(
    endpoint: quinn::Endpoint,
    known: Arc<BTreeMap<NodeId, Arc<LinkStats>>>,
    deliver: Deliver,
    refused: Arc<AtomicU64>,
) {
    let handshakes = Arc::new(Semaphore::new(PEER_HANDSHAKES_MAX));
    let inbound = Inbound::default();
    let mut conns = JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        while conns.try_join_next().is_some() {}
        // Anyone who can reach the port can start a handshake: those get
        // their own small budget, so they cannot crowd out the peers.
        let permit = match handshakes.clone().try_acquire_owned() {
            Ok(p) if conns.len() < PEER_CONNECTIONS_MAX => p,
            _ => {
                refused.fetch_add(1, Ordering::Relaxed);
                incoming.refuse();
                continue;
            }
        };
        let link = Accepted {
            known: known.clone(),
            inbound: inbound.clone(),
            deliver: deliver.clone(),
            refused: refused.clone(),
        };
        conns.spawn(link.run(incoming, permit));
    }
    conns.shutdown().await;
}

/// What an accepted link needs from the accept loop.
struct Accepted {
    known: Arc<BTreeMap<NodeId, Arc<LinkStats>>>,
    inbound: Inbound,
    deliver: Deliver,
    refused: Arc<AtomicU64>,
}

impl Accepted {
    /// One peer's dial: who it is (from its certificate), then its streams.
    async fn run(self, incoming: quinn::Incoming, handshake: OwnedSemaphorePermit) {
        let Ok(conn) = incoming.await else {
            // The TLS handshake failed: no certificate, or another CA's.
            self.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        drop(handshake);
        let from = match identify(&conn) {
            Ok(n) if self.known.contains_key(&n) => n,
            Ok(n) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                let why = format!("{n} is not in this node's peer list");
                return conn.close(VarInt::from_u32(CLOSE_UNKNOWN_PEER), why.as_bytes());
            }
            Err((code, why)) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return conn.close(VarInt::from_u32(code), why.as_bytes());
            }
        };
        let older = self.links().insert(from, conn.clone());
        let stats = self.known[&from].clone();
        if !stats.connected.load(Ordering::Relaxed) {
            stats.wake.notify_one();
        }
        if let Some(older) = older {
            older.close(
                VarInt::from_u32(CLOSE_REPLACED),
                b"replaced by a newer link",
            );
        }
        let mut streams = JoinSet::new();
        // At most PEER_STREAMS_MAX open at once (the transport's limit).
        while let Ok(recv) = conn.accept_uni().await {
            while streams.try_join_next().is_some() {}
            streams.spawn(read_stream(
                conn.clone(),
                recv,
                from,
                self.deliver.clone(),
                stats.clone(),
            ));
        }
        streams.shutdown().await;
        let mut links = self.links();
        if links.get(&from).map(Connection::stable_id) == Some(conn.stable_id()) {
            links.remove(&from);
        }
    }

    fn links(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Connection>> {
        self.inbound.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn identify(conn: &Connection) -> Result<NodeId, (u32, String)> {
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol);
    if alpn.as_deref() != Some(PEER_ALPN) {
        return Err((
            CLOSE_WRONG_PROTOCOL,
            "peer links speak ohm-peer/2 only".into(),
        ));
    }
    let certs = conn
        .peer_identity()
        .and_then(|i| {
            i.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .ok_or((CLOSE_UNKNOWN_PEER, "no certificate".to_string()))?;
    let first = certs
        .first()
        .ok_or((CLOSE_UNKNOWN_PEER, "no certificate".to_string()))?;
    node_of_cert(first).map_err(|e| (CLOSE_UNKNOWN_PEER, e.to_string()))
}

async fn read_stream(
    conn: Connection,
    recv: quinn::RecvStream,
    from: NodeId,
    deliver: Deliver,
    stats: Arc<LinkStats>,
) {
    let mut recv = FrameReader::new(recv);
    let mut buf = Vec::new();
    let mut said_hello = false;
    loop {
        let why = match recv.frame_within(&mut buf, PEER_FRAME_BYTES_MAX).await {
            Ok(true) if !said_hello => match decode_hello(&buf) {
                Ok(incarnation) => {
                    said_hello = true;
                    stats.hello(incarnation);
                    continue;
                }
                Err(e) => e.to_string(),
            },
            Ok(true) => match decode(&buf) {
                Ok(m) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    deliver(from, m);
                    continue;
                }
                Err(e) => e.to_string(),
            },
            Ok(false) | Err(FrameError::Read(_)) => return,
            Err(e) => e.to_string(),
        };
        // Same software on both ends: a bad frame is a bug or an attack.
        tracing::warn!("closing the link from {from}: {why}");
        let why = format!("bad frame: {why}");
        let end = why.len().min(200);
        conn.close(VarInt::from_u32(CLOSE_BAD_FRAME), &why.as_bytes()[..end]);
        return;
    }
}
