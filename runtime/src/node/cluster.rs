//! A node's view of its cluster: who the nodes are, where each listens for
//! peers and for clients, how many partitions there are and how many
//! replicas each has. Read from `cluster.conf`, which `ohm cluster init`
//! writes into every node's directory (the same file on every node: the
//! partition-to-replica map is computed from it, so nodes must agree).
//!
//! ```text
//! ohm-cluster 1
//! partitions 4
//! replicas 3
//! node 1 peer=127.0.0.1:7451 client=127.0.0.1:7450
//! node 2 peer=127.0.0.1:7461 client=127.0.0.1:7460
//! node 3 peer=127.0.0.1:7471 client=127.0.0.1:7470
//! ```
//!
//! Lines starting with `#` and blank lines are ignored. Every partition
//! has a replica on every node for now (`replicas` = the node count): the
//! coordinator runs multi-partition work on one node holding every
//! partition, which needs that node to host them all, until multi-partition
//! transactions commit across nodes.

use super::executor::{Input, PartitionStats, PEER_INPUTS_MAX};
use crate::catalog::PartitionId;
use crate::consensus::Message;
use crate::durability::deployed_module;
use crate::peer::{Group, PeerMessage};
use crate::types::NodeId;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

/// The file's name in a node's cluster directory.
pub const CLUSTER_FILE: &str = "cluster.conf";
const HEADER: &str = "ohm-cluster 1";
/// Bytes of `cluster.conf` read at most (outside input).
const FILE_BYTES_MAX: u64 = 1 << 20;
/// Nodes one cluster may list (a replica group has at most
/// `consensus::MEMBERS_MAX` members; every node holds every partition).
pub const CLUSTER_NODES_MAX: usize = crate::consensus::MEMBERS_MAX;

/// Where one node listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddrs {
    /// Other nodes dial this (QUIC, `ohm-peer/2`).
    pub peer: SocketAddr,
    /// Clients dial this (QUIC, `ohm/1`).
    pub client: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node (from its certificate).
    pub me: NodeId,
    pub partitions: u32,
    pub replicas: u32,
    pub nodes: BTreeMap<NodeId, NodeAddrs>,
}

impl ClusterConfig {
    /// Parses `cluster.conf` for node `me`; errors name the line.
    pub fn parse(text: &str, me: NodeId) -> anyhow::Result<ClusterConfig> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some((_, HEADER)) => {}
            Some((n, l)) => bail!("{CLUSTER_FILE} line {n}: expected `{HEADER}`, found `{l}`"),
            None => bail!("{CLUSTER_FILE} is empty"),
        }
        let (mut partitions, mut replicas) = (None, None);
        let mut nodes = BTreeMap::new();
        for (n, line) in lines {
            let at = || format!("{CLUSTER_FILE} line {n}");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("partitions") => partitions = Some(number(words.next(), &at)?),
                Some("replicas") => replicas = Some(number(words.next(), &at)?),
                Some("node") => {
                    let id = NodeId(number(words.next(), &at)?);
                    let (mut peer, mut client) = (None, None);
                    for w in words.by_ref() {
                        let (k, v) = w
                            .split_once('=')
                            .with_context(|| format!("{}: `{w}` is not key=address", at()))?;
                        let addr: SocketAddr = v
                            .parse()
                            .with_context(|| format!("{}: `{v}` is not ip:port", at()))?;
                        match k {
                            "peer" => peer = Some(addr),
                            "client" => client = Some(addr),
                            _ => bail!("{}: unknown key `{k}` (peer, client)", at()),
                        }
                    }
                    let (Some(peer), Some(client)) = (peer, client) else {
                        bail!("{}: a node needs peer=ip:port and client=ip:port", at());
                    };
                    if id.0 == 0 || id.0 > crate::net::peer_tls::NODE_ID_MAX {
                        bail!(
                            "{}: node ids are 1..={}",
                            at(),
                            crate::net::peer_tls::NODE_ID_MAX
                        );
                    }
                    if nodes.insert(id, NodeAddrs { peer, client }).is_some() {
                        bail!("{}: node {} is listed twice", at(), id.0);
                    }
                }
                Some(other) => bail!("{}: unknown setting `{other}`", at()),
                None => {}
            }
            if words.next().is_some() {
                bail!("{}: unexpected words after the setting", at());
            }
        }
        let partitions = partitions.context("cluster.conf does not say `partitions N`")?;
        let replicas = replicas.context("cluster.conf does not say `replicas R`")?;
        if partitions == 0 || partitions > super::PARTITIONS_MAX {
            bail!(
                "{CLUSTER_FILE}: partitions must be 1..={}",
                super::PARTITIONS_MAX
            );
        }
        if nodes.is_empty() || nodes.len() > CLUSTER_NODES_MAX {
            bail!("{CLUSTER_FILE}: a cluster lists 1..={CLUSTER_NODES_MAX} nodes");
        }
        if replicas as usize != nodes.len() {
            bail!(
                "{CLUSTER_FILE}: replicas {replicas} with {} nodes: every node holds a replica of \
                 every partition for now (multi-partition transactions run on one node holding \
                 them all until they commit across nodes), so replicas must equal the node count",
                nodes.len()
            );
        }
        if !nodes.contains_key(&me) {
            bail!(
                "{CLUSTER_FILE} does not list node {} (this node's certificate says it is node {})",
                me.0,
                me.0
            );
        }
        Ok(ClusterConfig {
            me,
            partitions,
            replicas,
            nodes,
        })
    }

    /// Reads `cluster.conf` from a node's cluster directory.
    pub fn load(dir: &std::path::Path, me: NodeId) -> anyhow::Result<ClusterConfig> {
        use std::io::Read;
        let path = dir.join(CLUSTER_FILE);
        let f =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut text = String::new();
        f.take(FILE_BYTES_MAX + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        if text.len() as u64 > FILE_BYTES_MAX {
            bail!("{} is over {FILE_BYTES_MAX} bytes", path.display());
        }
        ClusterConfig::parse(&text, me).with_context(|| format!("in {}", path.display()))
    }

    /// The file's text (what `ohm cluster init` writes).
    pub fn render(partitions: u32, replicas: u32, nodes: &BTreeMap<NodeId, NodeAddrs>) -> String {
        let mut s = format!("{HEADER}\npartitions {partitions}\nreplicas {replicas}\n");
        for (id, a) in nodes {
            s.push_str(&format!(
                "node {} peer={} client={}\n",
                id.0, a.peer, a.client
            ));
        }
        s
    }

    /// The replicas of partition `p`, this node among them.
    pub fn members(&self, _p: PartitionId) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Every other node and where it listens for peers.
    pub fn peers(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.nodes
            .iter()
            .filter(|(id, _)| **id != self.me)
            .map(|(id, a)| (*id, a.peer))
            .collect()
    }

    pub fn me(&self) -> NodeAddrs {
        self.nodes[&self.me]
    }

    /// Where clients reach `node`.
    pub fn client_addr(&self, node: NodeId) -> Option<SocketAddr> {
        self.nodes.get(&node).map(|a| a.client)
    }
}

/// Hands messages from peers to the partitions' executors, each admitted
/// up to `PEER_INPUTS_MAX` (beyond it dropped: consensus resends). Set up
/// before the node starts (the peer links run first), filled once it has.
///
/// A record that deploys a module starts compiling it on a thread of its
/// own as it arrives (at most `PRECOMPILES_MAX` at once): a replica applies
/// the deploy only once it is chosen, a round trip later, and by then the
/// compile is done or under way, so its executors wait for it (or not at
/// all) instead of each compiling while their peers hear nothing.
#[derive(Default)]
pub struct PeerRouter {
    partitions: std::sync::OnceLock<Routed>,
    precompiling: Arc<AtomicUsize>,
    forwarder: std::sync::OnceLock<Arc<super::forward::Forwarder>>,
}

struct Routed {
    executors: Vec<(Sender<Input>, Arc<PartitionStats>)>,
    runtime: crate::wasm::WasmRuntime,
}

/// Modules compiled ahead of their deploy at once; more are left to the
/// executors that apply them.
pub const PRECOMPILES_MAX: usize = 2;

impl PeerRouter {
    /// From now on messages reach this node's executors and forwarder.
    pub fn connect(&self, node: &Arc<super::Node>) {
        if let Some(f) = &node.forwarder {
            f.connect(node);
            let _ = self.forwarder.set(f.clone());
        }
        let _ = self.partitions.set(Routed {
            executors: node
                .executors
                .iter()
                .cloned()
                .zip(node.stats.iter().cloned())
                .collect(),
            runtime: node.runtime.clone(),
        });
    }

    /// What the peer links call for each message.
    pub fn deliver(self: &Arc<Self>) -> crate::net::peer::Deliver {
        let me = self.clone();
        Arc::new(move |from, msg| me.route(from, msg))
    }

    fn route(&self, from: NodeId, msg: PeerMessage) {
        let (group, msg) = match msg {
            PeerMessage::Consensus { group, msg } => (group, msg),
            PeerMessage::Forward {
                id,
                tenant,
                principal,
                token_sha256,
                request,
            } => {
                if let Some(f) = self.forwarder.get() {
                    f.run_forwarded(from, id, tenant, principal, token_sha256, &request);
                }
                return;
            }
            PeerMessage::Forwarded { id, response } => {
                if let Some(f) = self.forwarder.get() {
                    f.answered(from, id, &response);
                }
                return;
            }
        };
        // Group 0 is reserved (metadata is logged by partition 0's group);
        // its messages go nowhere.
        let Group::Partition(p) = group else {
            return;
        };
        let Some(routed) = self.partitions.get() else {
            return;
        };
        let Some((tx, stats)) = routed.executors.get(p.0 as usize) else {
            return;
        };
        if let Message::Accept { records, .. } = &msg {
            for r in records {
                self.precompile(&routed.runtime, &r.payload);
            }
        }
        if stats.peer_queued.fetch_add(1, Ordering::Relaxed) >= PEER_INPUTS_MAX {
            stats.peer_queued.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if tx.send(Input::Peer { from, msg }).is_err() {
            stats.peer_queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Starts compiling the module `payload` deploys, if it does and the
    /// module is not compiled yet. The result lands in the runtime's cache
    /// (an error is left for the deploy to report, as it would anyway).
    fn precompile(&self, runtime: &crate::wasm::WasmRuntime, payload: &Arc<[u8]>) {
        // The header only, here on the link's task; hashing the module (is
        // it compiled?) happens on the thread.
        if deployed_module(payload).is_none() {
            return;
        }
        if self.precompiling.fetch_add(1, Ordering::Relaxed) >= PRECOMPILES_MAX {
            self.precompiling.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let (runtime, payload, count) =
            (runtime.clone(), payload.clone(), self.precompiling.clone());
        let job = move || {
            super::priority::lower_priority();
            if let Some((name, wasm)) = deployed_module(&payload) {
                // Compiled (or compiling) already: a resend of the record.
                let _ = runtime.compile_cached(name, wasm);
            }
            count.fetch_sub(1, Ordering::Relaxed);
        };
        if std::thread::Builder::new()
            .name("ohm-precompile".into())
            .spawn(job)
            .is_err()
        {
            self.precompiling.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn number(word: Option<&str>, at: &dyn Fn() -> String) -> anyhow::Result<u32> {
    let w = word.with_context(|| format!("{}: a number is missing", at()))?;
    w.parse()
        .with_context(|| format!("{}: `{w}` is not a number", at()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> String {
        let nodes = (1..=3)
            .map(|i| {
                let a = NodeAddrs {
                    peer: format!("127.0.0.1:{}", 7401 + i * 10).parse().unwrap(),
                    client: format!("127.0.0.1:{}", 7400 + i * 10).parse().unwrap(),
                };
                (NodeId(i), a)
            })
            .collect();
        ClusterConfig::render(4, 3, &nodes)
    }

    #[test]
    fn a_rendered_file_parses_back() {
        let c = ClusterConfig::parse(&three(), NodeId(2)).unwrap();
        assert_eq!((c.partitions, c.replicas, c.nodes.len()), (4, 3, 3));
        assert_eq!(c.peers().len(), 2);
        assert!(!c.peers().contains_key(&NodeId(2)));
        assert_eq!(
            c.members(PartitionId(3)),
            vec![NodeId(1), NodeId(2), NodeId(3)]
        );
        assert_eq!(
            c.client_addr(NodeId(3)),
            Some("127.0.0.1:7430".parse().unwrap())
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let cases = [
            ("", "is empty"),
            ("ohm-cluster 2\n", "line 1"),
            (
                &three().replace("replicas 3", "replicas 2"),
                "replicas must equal",
            ),
            (&three().replace("partitions 4\n", ""), "partitions N"),
            (
                &three().replace("partitions 4", "partitions 0"),
                "partitions must be",
            ),
            (
                &three().replace("peer=127.0.0.1:7421", "peer=nowhere"),
                "line 5",
            ),
            (&three().replace("node 3", "node 2"), "listed twice"),
            (&three().replace("node 3 peer", "node 3 pear"), "line 6"),
            (&format!("{}speed 9\n", three()), "unknown setting"),
            (
                &three().replace("replicas 3", "replicas 3 4"),
                "unexpected words",
            ),
        ];
        for (text, want) in cases {
            let e = format!("{:#}", ClusterConfig::parse(text, NodeId(1)).unwrap_err());
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = ClusterConfig::parse(&three(), NodeId(7))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not list node 7"), "{e}");
    }

    #[test]
    fn a_deploy_arriving_from_a_peer_is_compiled_before_it_is_applied() {
        use crate::durability::{encode_entry, Entry, LogRecord, MultiBody};
        use crate::types::{Ballot, Slot, TenantId};
        let path =
            crate::wasm::testing::procedure_wasm("ohm_voter").unwrap_or_else(|e| panic!("{e}"));
        let wasm = std::fs::read(path).unwrap();
        let runtime = crate::wasm::WasmRuntime::new().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let router = Arc::new(PeerRouter::default());
        let _ = router.partitions.set(Routed {
            executors: vec![(tx, Arc::new(PartitionStats::default()))],
            runtime: runtime.clone(),
        });
        let mut payload = Vec::new();
        let deploy = Entry::Multi {
            txn: 1,
            tenant: TenantId(1),
            body: MultiBody::Deploy {
                name: "voter".into(),
                wasm: wasm.clone(),
            },
        };
        encode_entry(&deploy, &mut payload).unwrap();
        let b = Ballot {
            round: 1,
            node: NodeId(2),
        };
        let accept = Message::Accept {
            ballot: b,
            prev_slot: Slot(0),
            prev_ballot: Ballot::default(),
            records: vec![LogRecord {
                slot: Slot(1),
                ballot: b,
                payload: Arc::from(payload),
            }],
            chosen: Slot(0),
            sent_us: 0,
        };
        let msg = PeerMessage::Consensus {
            group: Group::Partition(PartitionId(0)),
            msg: accept,
        };
        (router.deliver())(NodeId(2), msg);
        // The message is passed on at once, not after the compile.
        assert!(matches!(rx.try_recv(), Ok(Input::Peer { .. })));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !runtime.is_cached("voter", &wasm) {
            assert!(std::time::Instant::now() < deadline, "never compiled");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
