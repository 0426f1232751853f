//! Peer links over real quinn on loopback: messages arrive from the node
//! the certificate names; another CA's node, a node outside the peer list
//! and a node answering at the wrong address are refused; a peer that
//! stops reading costs the others nothing.

use super::peer::{Deliver, PeerConfig, PeerNet, PeerSendError, PEER_QUEUE_MAX};
use super::peer_tls::{new_cluster, NewCluster, PeerIdentity, CA_CERT_FILE, NODE_CERT_FILE};
use crate::catalog::PartitionId;
use crate::consensus::Message;
use crate::durability::LogRecord;
use crate::peer::{Group, PeerMessage};
use crate::types::{Ballot, NodeId, Slot};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("ohm-peer-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Writes node `n`'s files of `cluster` to a directory and loads them.
fn identity(cluster: &NewCluster, n: u32) -> PeerIdentity {
    let dir = temp_dir(&format!("n{n}"));
    let node = &cluster.nodes[n as usize - 1];
    std::fs::write(dir.join(CA_CERT_FILE), &cluster.ca_cert_pem).unwrap();
    std::fs::write(dir.join(NODE_CERT_FILE), &node.cert_pem).unwrap();
    std::fs::write(dir.join("node.key"), &node.key_pem).unwrap();
    let id = PeerIdentity::load(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    id
}

type Inbox = Arc<Mutex<Vec<(NodeId, PeerMessage)>>>;

fn inbox() -> (Inbox, Deliver) {
    let got: Inbox = Arc::default();
    let g = got.clone();
    (
        got,
        Arc::new(move |from, m| g.lock().unwrap().push((from, m))),
    )
}

fn free_addr() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

fn start(
    id: &PeerIdentity,
    listen: SocketAddr,
    peers: &[(u32, SocketAddr)],
    deliver: Deliver,
) -> PeerNet {
    let cfg = PeerConfig {
        listen,
        peers: peers
            .iter()
            .map(|&(n, a)| (NodeId(n), a))
            .collect::<BTreeMap<_, _>>(),
    };
    let (net, run) = PeerNet::start(id, cfg, deliver).unwrap();
    tokio::spawn(run);
    net
}

fn ping(n: u64) -> PeerMessage {
    PeerMessage::Consensus {
        group: Group::Partition(PartitionId(3)),
        msg: Message::Promise {
            ballot: Ballot {
                round: n,
                node: NodeId(1),
            },
        },
    }
}

fn big(n: u64) -> PeerMessage {
    PeerMessage::Consensus {
        group: Group::Meta,
        msg: Message::Accept {
            ballot: Ballot::default(),
            prev_slot: Slot(n),
            prev_ballot: Ballot::default(),
            records: vec![LogRecord {
                slot: Slot(n + 1),
                ballot: Ballot::default(),
                payload: Arc::from(vec![7u8; 256 << 10]),
            }],
            chosen: Slot(0),
            sent_us: 0,
        },
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_exchange_messages_named_by_their_certificates() {
    let cluster = new_cluster(3, &[]).unwrap();
    let addrs = [free_addr(), free_addr(), free_addr()];
    let mut nets = Vec::new();
    let mut inboxes = Vec::new();
    for n in 1..=3u32 {
        let (got, deliver) = inbox();
        let peers: Vec<_> = (1..=3u32)
            .filter(|&p| p != n)
            .map(|p| (p, addrs[p as usize - 1]))
            .collect();
        nets.push(start(
            &identity(&cluster, n),
            addrs[n as usize - 1],
            &peers,
            deliver,
        ));
        inboxes.push(got);
    }
    for (i, net) in nets.iter().enumerate() {
        for to in (1..=3u32).filter(|&p| p as usize != i + 1) {
            for k in 0..100 {
                net.send(NodeId(to), ping(k)).unwrap();
            }
        }
    }
    for (i, got) in inboxes.iter().enumerate() {
        wait_for("200 messages", Duration::from_secs(10), || {
            got.lock().unwrap().len() == 200
        })
        .await;
        let got = got.lock().unwrap();
        for from in (1..=3u32).filter(|&p| p as usize != i + 1) {
            let mine: Vec<_> = got
                .iter()
                .filter(|(f, _)| *f == NodeId(from))
                .map(|(_, m)| m.clone())
                .collect();
            let sent: Vec<_> = (0..100).map(ping).collect();
            assert_eq!(mine, sent, "n{} from n{from}: all, in order", i + 1);
        }
    }
    assert_eq!(
        nets[0].send(NodeId(9), ping(0)),
        Err(PeerSendError::UnknownPeer(NodeId(9)))
    );
    let st = nets[0].status();
    assert!(st
        .iter()
        .all(|s| s.connected && s.sent == 100 && s.received == 100));
    for net in nets {
        net.shutdown().await;
    }
}

/// A node of another cluster (another CA) at a peer's address: nothing
/// passes either way, and the refusal is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_signed_by_another_ca_is_refused_both_ways() {
    let ours = new_cluster(2, &[]).unwrap();
    let theirs = new_cluster(2, &[]).unwrap();
    let (a, b) = (free_addr(), free_addr());
    let (got_a, deliver_a) = inbox();
    let (got_b, deliver_b) = inbox();
    let n1 = start(&identity(&ours, 1), a, &[(2, b)], deliver_a);
    let impostor = start(&identity(&theirs, 2), b, &[(1, a)], deliver_b);
    for k in 0..10 {
        let _ = n1.send(NodeId(2), ping(k));
        let _ = impostor.send(NodeId(1), ping(k));
    }
    wait_for("both sides refuse", Duration::from_secs(10), || {
        n1.refused() > 0 && impostor.refused() > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(got_a.lock().unwrap().is_empty() && got_b.lock().unwrap().is_empty());
    let st = n1.status();
    assert!(!st[0].connected);
    let why = st[0].last_error.clone().unwrap_or_default();
    assert!(why.contains("dialing n2"), "{why}");
    n1.shutdown().await;
    impostor.shutdown().await;
}

/// The dialer checks the certificate names the node it meant: node 3 at
/// the address listed for node 2 is not node 2. And a node not in the
/// peer list is turned away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_node_at_an_address_and_an_unlisted_node_are_refused() {
    let cluster = new_cluster(3, &[]).unwrap();
    let (a, b) = (free_addr(), free_addr());
    let (got_a, deliver_a) = inbox();
    let (got_3, deliver_3) = inbox();
    let n1 = start(&identity(&cluster, 1), a, &[(2, b)], deliver_a);
    // n3 listens where n1 expects n2, and lists n1 (which does not list it).
    let n3 = start(&identity(&cluster, 3), b, &[(1, a)], deliver_3);
    for k in 0..10 {
        let _ = n1.send(NodeId(2), ping(k));
        let _ = n3.send(NodeId(1), ping(k));
    }
    wait_for("n1 refuses n3's dial", Duration::from_secs(10), || {
        n1.refused() > 0
    })
    .await;
    wait_for(
        "n1's dial fails on the name",
        Duration::from_secs(10),
        || n1.status()[0].last_error.is_some(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        got_a.lock().unwrap().is_empty(),
        "nothing from an unlisted node"
    );
    assert!(got_3.lock().unwrap().is_empty(), "n3 is not n2");
    let why = n1.status()[0].last_error.clone().unwrap();
    assert!(
        why.contains("n2.ohm-cluster") || why.contains("certificate"),
        "{why}"
    );
    n1.shutdown().await;
    n3.shutdown().await;
}

/// A peer that accepts but never reads (a stopped process): `send` to it
/// never waits, its queue fills and drops, and another peer gets
/// everything sent to it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_costs_the_others_nothing() {
    let cluster = new_cluster(3, &[]).unwrap();
    let addrs = [free_addr(), free_addr(), free_addr()];
    let (_, deliver1) = inbox();
    let (got2, deliver2) = inbox();
    let n1 = start(
        &identity(&cluster, 1),
        addrs[0],
        &[(2, addrs[1]), (3, addrs[2])],
        deliver1,
    );
    let n2 = start(&identity(&cluster, 2), addrs[1], &[(1, addrs[0])], deliver2);
    // n3 stopped reading: it holds the connection but never accepts the
    // stream, so its receive windows fill and n1's writes to it stop.
    let id3 = identity(&cluster, 3);
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(id3.server_config().unwrap()).unwrap();
    let ep3 = quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(crypto)), addrs[2])
        .unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(i) = ep3.accept().await {
            if let Ok(c) = i.await {
                held.push(c);
            }
        }
    });
    wait_for("links up", Duration::from_secs(10), || {
        n1.status().iter().all(|s| s.connected)
    })
    .await;
    let mut full = 0;
    for k in 0..(PEER_QUEUE_MAX as u64 + 2000) {
        if n1.send(NodeId(3), big(k)).is_err() {
            full += 1;
        }
        if k < 2000 {
            n1.send(NodeId(2), ping(k)).unwrap();
        }
    }
    // Getting here at all shows `send` never waited on the stalled peer.
    assert!(full > 0, "the stalled peer's queue filled");
    wait_for("n2 gets all 2000", Duration::from_secs(20), || {
        got2.lock().unwrap().len() == 2000
    })
    .await;
    assert!(n1.status()[1].dropped > 0);
    n1.shutdown().await;
    n2.shutdown().await;
    holder.abort();
}

/// A peer killed (no goodbye) and started again at the same address gets
/// our messages long before our link to its old process would time out:
/// its new dial makes us dial it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_hears_from_us_without_waiting_out_the_old_link() {
    let cluster = new_cluster(2, &[]).unwrap();
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let (a_got, a_deliver) = inbox();
    let a = start(&identity(&cluster, 1), a_addr, &[(2, b_addr)], a_deliver);
    // B runs on a runtime of its own, so that it can die without a word:
    // shutting that runtime down drops its tasks unpolled, sending nothing.
    let b_id = identity(&cluster, 2);
    let run_b = |deliver: Deliver| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // The dead runtime lets go of the port in the background.
        let cfg = PeerConfig {
            listen: b_addr,
            peers: [(NodeId(1), a_addr)].into_iter().collect(),
        };
        let started = Instant::now();
        let net = loop {
            let r = rt.block_on(async { PeerNet::start(&b_id, cfg.clone(), deliver.clone()) });
            match r {
                Ok((net, run)) => {
                    rt.spawn(run);
                    break net;
                }
                Err(e) => assert!(started.elapsed() < Duration::from_secs(10), "{e}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (rt, net)
    };
    let (b_got, b_deliver) = inbox();
    let (rt, b) = tokio::task::block_in_place(|| run_b(b_deliver));
    a.send(NodeId(2), ping(1)).unwrap();
    b.send(NodeId(1), ping(2)).unwrap();
    wait_for("a first exchange", Duration::from_secs(10), || {
        b_got.lock().unwrap().len() == 1 && a_got.lock().unwrap().len() == 1
    })
    .await;
    rt.shutdown_background();
    drop(b); // no driver left to send anything

    // Twice in quick succession: each run of B is a new incarnation, and
    // each makes A dial again (a node may crash again while it starts).
    for n in 0..2u64 {
        let (b2_got, b2_deliver) = inbox();
        let (rt2, b2) = tokio::task::block_in_place(|| run_b(b2_deliver));
        // The new B dials A (what any restarted node does first).
        b2.send(NodeId(1), ping(3)).unwrap();
        let start = Instant::now();
        while b2_got.lock().unwrap().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the restarted peer never heard from us"
            );
            // Consensus resends; so does this.
            let _ = a.send(NodeId(2), ping(4));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Because its hello made us drop the old link, not because the old
        // link timed out (after `PEER_IDLE_TIMEOUT`, the slow way round).
        let why = a.status()[0].last_error.clone().unwrap_or_default();
        assert!(why.contains("restarted"), "run {n}: {why}");
        assert_eq!(a.status()[0].restarts, n + 1);
        rt2.shutdown_background();
        drop(b2);
    }
    a.shutdown().await;
}
