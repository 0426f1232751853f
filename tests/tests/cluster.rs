//! A real 3-node cluster (three `ohm serve` processes, RF=3, mutual-TLS
//! QUIC between them): schema and modules through any node, followers
//! passing requests to the leader, tenants created through any node, the leader killed with kill -9 in the
//! middle of a load with every acknowledged write found afterwards, and
//! the killed node restarted and caught up.

mod common;

use common::{runtime, wasm, Server, TempDir};
use ohm::driver::cluster::ClusterClient;
use ohm::driver::{CallResult, ClientConfig, ClientError, Trust};
use ohm::proto::{ErrorCode, StatusInfo};
use ohm::types::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: usize = 3;

/// Held by each test for its whole run: each starts three node processes,
/// and three clusters at once on a 2-core machine starve each other's
/// heartbeats.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

struct Cluster {
    dir: TempDir,
    servers: Vec<Option<Server>>,
    addrs: Vec<String>,
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        let dir = TempDir::new(name);
        // Ports from the process id, so parallel runs do not collide.
        let port = 20_000 + (std::process::id() % 4000) as u16 * 10;
        let out = dir.path().join("cluster");
        let ok = Command::new(common::ohm_binary())
            .args(["cluster", "init", "--nodes", "3", "--partitions", "4"])
            .arg("--out")
            .arg(&out)
            .args(["--port", &port.to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "ohm cluster init failed");
        let mut c = Cluster {
            dir,
            servers: (0..NODES).map(|_| None).collect(),
            addrs: (0..NODES)
                .map(|i| format!("127.0.0.1:{}", port + 10 * i as u16))
                .collect(),
        };
        for i in 0..NODES {
            c.start_node(i);
        }
        c
    }

    fn start_node(&mut self, i: usize) {
        let node_dir = self.cluster_dir().join(format!("n{}", i + 1));
        let data = self.dir.path().join(format!("data{}", i + 1));
        let s = Server::start_with(
            &data,
            &["--cluster", node_dir.to_str().unwrap(), "--io-threads", "1"],
        )
        .unwrap();
        assert_eq!(
            s.addr,
            self.addrs[i],
            "node {} serves where cluster.conf says",
            i + 1
        );
        self.servers[i] = Some(s);
    }

    fn cluster_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("cluster")
    }

    fn config(&self) -> ClientConfig {
        let token = std::fs::read_to_string(self.cluster_dir().join("demo.token")).unwrap();
        ClientConfig::new(
            self.addrs[0].clone(),
            Trust::CaFile(self.cluster_dir().join("ca.pem")),
            token.trim(),
        )
    }

    async fn client(&self) -> ClusterClient {
        ClusterClient::connect(self.config(), &self.addrs)
            .await
            .unwrap()
    }

    /// A cluster client that knows only node `i` (it follows redirects).
    async fn client_via(&self, i: usize) -> ClusterClient {
        let mut cfg = self.config();
        cfg.addr = self.addrs[i].clone();
        ClusterClient::connect(cfg, &[self.addrs[i].clone()])
            .await
            .unwrap()
    }

    /// A cluster client with `token` instead of the demo tenant's.
    async fn client_as(&self, token: &str) -> ClusterClient {
        let mut cfg = self.config();
        cfg.token = token.to_string();
        ClusterClient::connect(cfg, &self.addrs).await.unwrap()
    }

    fn admin_token(&self) -> String {
        let token = std::fs::read_to_string(self.cluster_dir().join("admin.token")).unwrap();
        token.trim().to_string()
    }

    /// Connects to node `i` alone with `token`, trying until `within` has
    /// passed (a restarted node knows a created tenant once partition 0's
    /// log is applied there).
    async fn connect_as(&self, i: usize, token: &str, within: Duration) -> ohm::driver::Client {
        let mut cfg = self.config();
        cfg.addr = self.addrs[i].clone();
        cfg.token = token.to_string();
        let deadline = Instant::now() + within;
        loop {
            match ohm::driver::Client::connect(cfg.clone()).await {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("node {}: {e}; trying again", i + 1);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("node {} never took the token: {e}", i + 1),
            }
        }
    }

    /// One node's own view (no redirects).
    /// Node `i`'s status as the admin sees it (a tenant sees no node-wide
    /// counters).
    async fn status_of(&self, i: usize) -> Option<StatusInfo> {
        let mut cfg = self.config();
        cfg.token = self.admin_token();
        cfg.addr = self.addrs[i].clone();
        let c = ohm::driver::Client::connect(cfg).await.ok()?;
        let s = c.status().await.ok();
        c.close().await;
        s
    }
}

fn put(key: &str, value: u64) -> (String, Vec<Value>) {
    (
        "put".into(),
        vec![
            Value::Text(key.into()),
            Value::Bytes(value.to_be_bytes().to_vec().into()),
        ],
    )
}

async fn get(c: &ClusterClient, key: &str) -> Option<u64> {
    match c.call("get", vec![Value::Text(key.into())]).await.unwrap() {
        CallResult::Value(Value::Bytes(b)) => Some(u64::from_be_bytes(b[..].try_into().unwrap())),
        CallResult::Value(Value::Null) => None,
        other => panic!("get {key}: {other:?}"),
    }
}

/// Set-up DDL runs while the new cluster may still be settling its
/// leaders: a statement answered `unavailable` (its outcome unknown) is
/// sent again, and "already exists" then means the first one took.
const SET_UP_TRIES: u32 = 10;

async fn set_up_ddl(c: &ClusterClient, ddl: &str) {
    let mut unknown = false;
    for _ in 0..SET_UP_TRIES {
        match c.sql(ddl).await {
            Ok(_) => return,
            Err(ClientError::Server(e)) if e.code == ErrorCode::Unavailable => {
                unknown = true;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) if unknown && e.to_string().contains("already exists") => return,
            Err(e) => panic!("{ddl}: {e}"),
        }
    }
    panic!("{ddl}: unavailable {SET_UP_TRIES} times");
}

/// The kv and voter schemas and modules, and the voter's contestants.
async fn set_up(c: &ClusterClient) {
    for (module, schema) in [("kv", ohm_kv::SCHEMA), ("voter", ohm_voter::SCHEMA)] {
        for ddl in schema {
            set_up_ddl(c, ddl).await;
        }
        c.deploy(module, wasm(module)).await.unwrap();
    }
    let args = vec![Value::Int(3), Value::Text("A,B,C".into())];
    match c.call("initialize", args).await.unwrap() {
        CallResult::Value(Value::Int(3)) => {}
        other => panic!("initialize: {other:?}"),
    }
}

/// `results()`, a multi-partition procedure the coordinator runs: its
/// rows (one per contestant).
async fn results(c: &ClusterClient) -> usize {
    match c.call("results", vec![]).await {
        Ok(CallResult::Rows(r)) => r.rows.len(),
        other => panic!("results(): {other:?}"),
    }
}

/// The node whose client address `c` settled on leads every partition.
fn leader_index(cluster: &Cluster, c: &ClusterClient) -> usize {
    let cur = c.current();
    cluster.addrs.iter().position(|a| *a == cur).unwrap()
}

#[test]
fn a_three_node_cluster_survives_its_leader_killed_mid_load() {
    let _one = one_at_a_time();
    let rt = runtime();
    let mut cluster = Cluster::start("cluster-failover");
    rt.block_on(async {
        let c = cluster.client().await;
        let t = Instant::now();
        set_up(&c).await;
        eprintln!("cluster: set-up took {:?}", t.elapsed());
        // Through every node: a call sent to a follower is passed on.
        for i in 0..NODES {
            let one = cluster.client_via(i).await;
            let (p, args) = put(&format!("via-{i}"), i as u64);
            one.call(&p, args).await.unwrap();
            assert_eq!(get(&one, &format!("via-{i}")).await, Some(i as u64));
        }
        // A follower, asked directly, passes the call to the leader and
        // says who leads.
        let (p, args) = put("find-leader", 0);
        c.call(&p, args).await.unwrap();
        let leader = leader_index(&cluster, &c);
        let follower = (leader + 1) % NODES;
        let mut cfg = cluster.config();
        cfg.addr = cluster.addrs[follower].clone();
        let direct = ohm::driver::Client::connect(cfg).await.unwrap();
        let (p, args) = put("direct", 1);
        direct.call(&p, args).await.unwrap();
        assert_eq!(
            direct.leader_hint().as_deref(),
            Some(cluster.addrs[leader].as_str())
        );
        direct.close().await;
        // Status, from the leader and from a follower: roles, the leader,
        // every replica, and the links to the other nodes.
        // (Leaders gather on partition 0's leader within a second or so.)
        let me = (leader + 1) as u32;
        let deadline = Instant::now() + Duration::from_secs(20);
        let st = loop {
            let st = cluster.status_of(leader).await.unwrap();
            if st.partitions.iter().all(|p| p.role == "leader") {
                break st;
            }
            assert!(Instant::now() < deadline, "leaders never gathered: {st:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(st.peers.len(), NODES - 1);
        assert!(st.peers.iter().all(|l| l.connected), "{:?}", st.peers);
        for p in &st.partitions {
            assert_eq!((p.role.as_str(), p.leader), ("leader", me), "{p:?}");
            assert_eq!(p.replicas.len(), NODES, "{p:?}");
            assert!(p.replicas.iter().all(|r| r.matched.is_some()), "{p:?}");
        }
        let st = cluster.status_of(follower).await.unwrap();
        for p in &st.partitions {
            assert_eq!(p.role, "follower", "{p:?}");
            assert!(p.replicas.iter().all(|r| r.matched.is_none()), "{p:?}");
            assert!(p.applied <= p.durable_lsn, "{p:?}");
        }

        // Load, then kill -9 the leader in the middle of it.
        let mut acked = Vec::new();
        let mut unknown = 0;
        let mut killed_at = None;
        let mut resumed_after = None;
        for k in 0..600u64 {
            if k == 200 {
                let l = leader_index(&cluster, &c);
                cluster.servers[l].as_mut().unwrap().kill9();
                cluster.servers[l] = None;
                killed_at = Some((Instant::now(), l));
            }
            let (p, args) = put(&format!("k{k}"), k);
            match c.call(&p, args).await {
                Ok(_) => {
                    acked.push(k);
                    if let (Some((t, _)), None) = (killed_at, resumed_after) {
                        resumed_after = Some(t.elapsed());
                    }
                }
                // Sent to the node as it died: may or may not have applied.
                Err(ClientError::Closed { .. }) => unknown += 1,
                Err(ClientError::Server(e)) if e.code == ErrorCode::Unavailable => unknown += 1,
                Err(e) => panic!("put k{k}: {e}"),
            }
        }
        let (_, dead) = killed_at.unwrap();
        eprintln!(
            "cluster: {} writes acknowledged, {unknown} of unknown outcome; writes resumed {:?} \
             after the leader (node {}) was killed",
            acked.len(),
            resumed_after,
            dead + 1
        );
        assert!(acked.len() >= 590, "writes resumed after failover");
        assert!(leader_index(&cluster, &c) != dead);
        // The new coordinator runs procedures another node deployed.
        assert_eq!(results(&c).await, 3);
        for k in &acked {
            assert_eq!(
                get(&c, &format!("k{k}")).await,
                Some(*k),
                "acknowledged k{k} is present"
            );
        }

        // The killed node comes back and catches up with the others.
        cluster.start_node(dead);
        // Asked at once, before it has heard who leads or applied the
        // deploy again, it does not claim the procedure is unknown: it
        // sends the client on (or asks it to retry).
        let fresh = cluster.client_via(dead).await;
        assert_eq!(get(&fresh, "k0").await, Some(0));
        let (p, args) = put("after-restart", 7);
        c.call(&p, args).await.unwrap();
        let leader = leader_index(&cluster, &c);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let want = cluster.status_of(leader).await.unwrap();
            if let Some(got) = cluster.status_of(dead).await {
                let caught_up = want
                    .partitions
                    .iter()
                    .zip(&got.partitions)
                    .all(|(w, g)| g.durable_lsn >= w.durable_lsn);
                if caught_up {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not catch up",
                dead + 1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    for s in cluster.servers.iter_mut().flatten() {
        s.stop().unwrap();
    }
}

/// Every node killed at once and started again: each replica's state comes
/// back from its snapshot (none here) and learns the rest from the leader,
/// so the procedures deployed before are applied again only then. The
/// node that then leads partition 0 still runs them: single-partition
/// calls and the coordinator's multi-partition ones (it took its modules
/// and routes from the state as it was at start-up and never looked again).
#[test]
fn a_cluster_restarted_whole_still_runs_what_was_deployed() {
    let _one = one_at_a_time();
    let rt = runtime();
    let mut cluster = Cluster::start("cluster-restart-all");
    rt.block_on(async {
        let c = cluster.client().await;
        set_up(&c).await;
        for k in 0..20u64 {
            let (p, args) = put(&format!("r{k}"), k);
            c.call(&p, args).await.unwrap();
        }
    });
    for s in cluster.servers.iter_mut() {
        s.take().unwrap().kill9();
    }
    for i in 0..NODES {
        cluster.start_node(i);
    }
    rt.block_on(async {
        let c = cluster.client().await;
        assert_eq!(results(&c).await, 3);
        for k in 0..20u64 {
            assert_eq!(get(&c, &format!("r{k}")).await, Some(k), "r{k}");
        }
        let (p, args) = put("after", 1);
        c.call(&p, args).await.unwrap();
        // Every node, asked through a client that knows only it, serves
        // (or forwards) both kinds of call.
        for i in 0..NODES {
            let one = cluster.client_via(i).await;
            assert_eq!(get(&one, "after").await, Some(1), "through node {}", i + 1);
            assert_eq!(results(&one).await, 3, "through node {}", i + 1);
        }
    });
    for s in cluster.servers.iter_mut().flatten() {
        s.stop().unwrap();
    }
}

/// `secret` (acme's table) does not exist for the tenant `c` is.
async fn assert_no_table(c: &ClusterClient, who: &str) {
    match c.sql("SELECT * FROM secret").await {
        Err(ClientError::Server(e)) => assert!(
            e.message.contains("relation \"secret\" does not exist"),
            "{who}: {e:?}"
        ),
        other => panic!("{who} reached acme's table: {other:?}"),
    }
}

/// Node `i` takes one connection with `token` and refuses a second as over
/// the tenant's `connections_max` (within a few seconds: a follower applies
/// the quota with its next heartbeat).
async fn holds_to_one_connection(cluster: &Cluster, i: usize, token: &str) {
    let first = cluster.connect_as(i, token, Duration::from_secs(30)).await;
    let mut cfg = cluster.config();
    cfg.addr = cluster.addrs[i].clone();
    cfg.token = token.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ohm::driver::Client::connect(cfg.clone()).await {
            Err(ClientError::Server(e)) if e.code == ErrorCode::QuotaExceeded => {
                assert!(e.message.contains("connections_max"), "{e:?}");
                break;
            }
            Ok(second) if Instant::now() < deadline => {
                second.close().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!(
                "node {}: a second connection: {:?}",
                i + 1,
                other.map(|_| ())
            ),
        }
    }
    first.close().await;
}

/// A tenant created in a cluster is logged through partition 0 (the
/// metadata group): its token works on every node at once and after the
/// whole cluster restarts, its name cannot be taken twice, and it sees only
/// its own tables. The quotas an administrator sets for it hold on every
/// node, also after the restart.
#[test]
fn a_tenant_created_through_one_node_is_known_to_every_node() {
    let _one = one_at_a_time();
    let rt = runtime();
    let mut cluster = Cluster::start("cluster-tenants");
    let token = rt.block_on(async {
        let admin = cluster.client_as(&cluster.admin_token()).await;
        let t = admin.create_tenant("acme").await.unwrap();
        assert_eq!(t.tenant, "acme");
        match admin.create_tenant("acme").await {
            Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::BadArguments, "{e:?}"),
            other => panic!("a second tenant named acme: {other:?}"),
        }
        // Known to every node as soon as the leader answered: the followers
        // applied partition 0's record before it was acknowledged, or
        // within their next heartbeat.
        for i in 0..NODES {
            let c = cluster
                .connect_as(i, &t.token, Duration::from_secs(5))
                .await;
            c.close().await;
        }
        let acme = cluster.client_as(&t.token).await;
        acme.sql("CREATE TABLE secret (id BIGINT PRIMARY KEY, v VARCHAR)")
            .await
            .unwrap();
        acme.sql("INSERT INTO secret VALUES (1, 'acme only')")
            .await
            .unwrap();
        let demo = cluster.client().await;
        assert_no_table(&demo, "the demo tenant").await;
        // The demo tenant's modules, for after the restart.
        set_up(&demo).await;
        acme.close().await;
        let one = [("connections_max".to_string(), Some(1))];
        admin.tenant_quota("acme", &one).await.unwrap();
        for i in 0..NODES {
            holds_to_one_connection(&cluster, i, &t.token).await;
        }
        t.token
    });
    for s in cluster.servers.iter_mut() {
        s.take().unwrap().kill9();
    }
    for i in 0..NODES {
        cluster.start_node(i);
    }
    rt.block_on(async {
        for i in 0..NODES {
            holds_to_one_connection(&cluster, i, &token).await;
        }
        // Back to the default, so the clients below connect wherever they
        // go (a node may count a connection just closed a little longer).
        let admin = cluster.client_as(&cluster.admin_token()).await;
        admin
            .tenant_quota("acme", &[("connections_max".to_string(), None)])
            .await
            .unwrap();
        // The first coordinator transaction since the restart was acme's
        // alone (on its shell): the demo tenant's modules, logged before,
        // are still found for its own (before, they were taken as up to
        // date, and its multi-partition calls found no module).
        let demo = cluster.client().await;
        assert_eq!(results(&demo).await, 3);
        for i in 0..NODES {
            let c = cluster.connect_as(i, &token, Duration::from_secs(30)).await;
            c.close().await;
        }
        let acme = cluster.client_as(&token).await;
        let rows = acme.sql("SELECT v FROM secret").await.unwrap();
        assert!(format!("{rows:?}").contains("acme only"), "{rows:?}");
        // Ids stay unique: the next tenant does not take acme's.
        let admin = cluster.client_as(&cluster.admin_token()).await;
        let next = admin.create_tenant("beta").await.unwrap();
        let beta = cluster.client_as(&next.token).await;
        assert_no_table(&beta, "beta").await;
    });
    for s in cluster.servers.iter_mut().flatten() {
        s.stop().unwrap();
    }
}

/// Connects to node `i` alone with `token` until it is refused (a
/// follower applies a revocation within its next heartbeat or so).
async fn refused_on(cluster: &Cluster, i: usize, token: &str, within: Duration) {
    let mut cfg = cluster.config();
    cfg.addr = cluster.addrs[i].clone();
    cfg.token = token.to_string();
    let deadline = Instant::now() + within;
    loop {
        match ohm::driver::Client::connect(cfg.clone()).await {
            Err(ClientError::Auth { .. }) => return,
            Ok(c) if Instant::now() < deadline => {
                c.close().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("node {}: {e}; trying again", i + 1);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("node {}: a revoked token: {:?}", i + 1, other.map(|_| ())),
        }
    }
}

/// Issue 11, roles: a principal created through one node is logged on
/// partition 0 and its token works on every node; a request it sends
/// through a follower is held to its role on the leader; once revoked its
/// token is refused on every node, also after the whole cluster restarts.
#[test]
fn a_token_created_or_revoked_through_one_node_holds_on_every_node() {
    let _one = one_at_a_time();
    let rt = runtime();
    let mut cluster = Cluster::start("cluster-tokens");
    let (reader, deployer) = rt.block_on(async {
        let admin = cluster.client_as(&cluster.admin_token()).await;
        let t = admin.create_tenant("acme").await.unwrap();
        let owner = cluster.client_as(&t.token).await;
        owner
            .sql("CREATE TABLE notes (id BIGINT PRIMARY KEY)")
            .await
            .unwrap();
        let reader = owner.create_token(None, "ro", "reader", &[]).await.unwrap();
        let deployer = owner
            .create_token(None, "ci", "deployer", &[])
            .await
            .unwrap();
        for i in 0..NODES {
            let c = cluster
                .connect_as(i, &reader.token, Duration::from_secs(5))
                .await;
            assert_eq!(c.session().role, "reader");
            // Through a follower too, the reader only reads.
            c.sql("SELECT count(*) FROM notes").await.unwrap();
            match c.sql("INSERT INTO notes VALUES (1)").await {
                Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::Forbidden, "{e:?}"),
                other => panic!("node {}: a reader's insert: {other:?}", i + 1),
            }
            c.close().await;
        }
        let revoke = ohm::proto::Request::TokenRevoke {
            tenant: None,
            name: "ro".into(),
        };
        owner.request(revoke).await.unwrap();
        for i in 0..NODES {
            refused_on(&cluster, i, &reader.token, Duration::from_secs(5)).await;
        }
        owner.close().await;
        (reader.token, deployer.token)
    });
    for s in cluster.servers.iter_mut() {
        s.take().unwrap().kill9();
    }
    // One node alone (no quorum, so no leader to say what is chosen):
    // its state holds only its snapshot, but a revocation in its log is
    // taken at its word.
    cluster.start_node(0);
    rt.block_on(refused_on(&cluster, 0, &reader, Duration::ZERO));
    for i in 1..NODES {
        cluster.start_node(i);
    }
    rt.block_on(async {
        for i in 0..NODES {
            refused_on(&cluster, i, &reader, Duration::from_secs(5)).await;
        }
        for i in 0..NODES {
            let c = cluster
                .connect_as(i, &deployer, Duration::from_secs(30))
                .await;
            assert_eq!(c.session().role, "deployer");
            c.close().await;
        }
    });
    for s in cluster.servers.iter_mut().flatten() {
        s.stop().unwrap();
    }
}

/// Any node takes any request: a plain `Client` (it follows nothing) that
/// knows only a follower runs single- and multi-partition calls, SQL and a
/// deploy through it, the follower passing each to the leader; answers
/// name the leader, and a `ClusterClient` that knows only the follower
/// moves to the leader after its first request.
#[test]
fn a_follower_passes_every_request_to_the_leader() {
    let _one = one_at_a_time();
    let rt = runtime();
    let mut cluster = Cluster::start("cluster-forward");
    rt.block_on(async {
        let c = cluster.client().await;
        set_up(&c).await;
        let (p, args) = put("seen", 1);
        c.call(&p, args).await.unwrap();
        let lead = leader_index(&cluster, &c);
        let follower = (lead + 1) % NODES;
        let mut cfg = cluster.config();
        cfg.addr = cluster.addrs[follower].clone();
        let plain = ohm::driver::Client::connect(cfg).await.unwrap();
        let (p, args) = put("forwarded", 7);
        plain.call(&p, args).await.unwrap();
        assert_eq!(
            plain.leader_hint().as_deref(),
            Some(cluster.addrs[lead].as_str()),
            "the answer names the leader"
        );
        match plain
            .call("get", vec![Value::Text("forwarded".into())])
            .await
        {
            Ok(CallResult::Value(Value::Bytes(b))) => assert_eq!(b[..], 7u64.to_be_bytes()),
            other => panic!("get through the follower: {other:?}"),
        }
        match plain.call("results", vec![]).await {
            Ok(CallResult::Rows(r)) => assert_eq!(r.rows.len(), 3),
            other => panic!("results() through the follower: {other:?}"),
        }
        plain
            .sql("CREATE TABLE notes (id BIGINT PRIMARY KEY, v VARCHAR)")
            .await
            .unwrap();
        plain
            .sql("INSERT INTO notes VALUES (1, 'x')")
            .await
            .unwrap();
        let d = plain.deploy("kv", wasm("kv")).await.unwrap();
        assert!(d.replaced, "{d:?}");
        // Status is the follower's own.
        let s = plain.status().await.unwrap();
        assert_eq!(s.node_id, follower as u64 + 1);
        plain.close().await;
        let via = cluster.client_via(follower).await;
        assert_eq!(get(&via, "seen").await, Some(1));
        assert_eq!(via.current(), cluster.addrs[lead], "moved to the leader");
    });
    for s in cluster.servers.iter_mut().flatten() {
        s.stop().unwrap();
    }
}

/// A call sent again with its idempotency key is answered as the first
/// time and applied once: single-partition (kv put, whose answer is the
/// key's version) and multi-partition (a bank transfer, whose answer is
/// the payer's new balance), on the leader that ran it and, after that
/// leader is killed, on the one that takes over.
#[test]
fn a_call_sent_again_with_its_key_applies_once_across_a_leader_kill() {
    let _one = one_at_a_time();
    let rt = runtime();
    let mut cluster = Cluster::start("cluster-keys");
    let int = |r: Result<CallResult, ClientError>| match r {
        Ok(CallResult::Value(Value::Int(i))) => i,
        other => panic!("expected an integer: {other:?}"),
    };
    let put = |v: u8| vec![Value::Text("ik".into()), Value::Bytes(vec![v].into())];
    let transfer = || vec![Value::Int(1), Value::Int(2), Value::Int(10)];
    let leader = rt.block_on(async {
        let c = cluster.client().await;
        set_up(&c).await;
        for ddl in ohm_bank::SCHEMA {
            c.sql(ddl).await.unwrap();
        }
        c.deploy("bank", wasm("bank")).await.unwrap();
        for id in [1, 2] {
            c.call("open_account", vec![Value::Int(id), Value::Int(100)])
                .await
                .unwrap();
        }
        assert_eq!(int(c.call_with_key("put", put(1), "put-1").await), 1);
        assert_eq!(int(c.call_with_key("put", put(2), "put-1").await), 1);
        assert_eq!(
            int(c.call_with_key("transfer", transfer(), "tr-1").await),
            90
        );
        assert_eq!(
            int(c.call_with_key("transfer", transfer(), "tr-1").await),
            90
        );
        let balance = int(c.call("balance", vec![Value::Int(2)]).await);
        assert_eq!(balance, 110, "one transfer applied");
        // The same through a plain client, to the node that leads.
        let mut cfg = cluster.config();
        cfg.addr = c.current();
        let direct = ohm::driver::Client::connect(cfg).await.unwrap();
        assert_eq!(int(direct.call_with_key("put", put(3), "put-1").await), 1);
        assert_eq!(int(direct.call("put", put(4)).await), 2, "no key: runs");
        direct.close().await;
        leader_index(&cluster, &c)
    });
    cluster.servers[leader].take().unwrap().kill9();
    rt.block_on(async {
        let c = cluster.client().await;
        assert_eq!(int(c.call_with_key("put", put(5), "put-1").await), 1);
        assert_eq!(
            int(c.call_with_key("transfer", transfer(), "tr-1").await),
            90
        );
        assert_eq!(int(c.call("balance", vec![Value::Int(2)]).await), 110);
        assert_eq!(int(c.call_with_key("put", put(6), "put-2").await), 3);
        assert_eq!(
            int(c.call_with_key("transfer", transfer(), "tr-2").await),
            80
        );
    });
    for s in cluster.servers.iter_mut().flatten() {
        s.stop().unwrap();
    }
}

/// `ohm bench failover` end to end, one kill: a local cluster started by
/// the command, its leader killed under writes and restarted, and every
/// acknowledged write read back (the command fails otherwise).
#[test]
fn bench_failover_kills_a_leader_and_loses_nothing() {
    let _one = one_at_a_time();
    let out = Command::new(common::ohm_binary())
        .args(["bench", "failover", "--kills", "1", "--writers", "2"])
        .env("OHM_WASM_DIR", common::wasm_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("failover over 1 kills: median"), "{stdout}");
    assert!(
        stdout.contains("every acknowledged put was read back"),
        "{stdout}"
    );
}

/// `ohm demo --nodes 3` from nothing: a local cluster started, the example
/// procedures deployed through it, a voter run, the leaders and lag shown;
/// SIGTERM stops every node. (Its one-shot calls use a plain client that
/// follows nothing: a node that lost leadership mid-run passes them on.)
#[test]
fn demo_with_three_nodes_runs_and_stops_its_nodes() {
    let _one = one_at_a_time();
    use std::io::{BufRead, BufReader};
    /// SIGTERM to the demo however the test ends (it stops its nodes).
    struct Demo(std::process::Child);
    impl Drop for Demo {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = self.0.wait();
        }
    }
    let dir = TempDir::new("demo-nodes");
    let child = Command::new(common::ohm_binary())
        .args(["demo", "--nodes", "3", "--seconds", "1", "--cluster-data"])
        .arg(dir.path().join("cl"))
        .env("OHM_WASM_DIR", common::wasm_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("demo.err")).unwrap())
        .spawn()
        .unwrap();
    let mut demo = Demo(child);
    let err = || std::fs::read_to_string(dir.path().join("demo.err")).unwrap_or_default();
    let stdout = demo.0.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut pids = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(180)) {
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("node 1 pid ") {
            pids = line
                .split(", ")
                .filter_map(|p| p.rsplit(' ').next()?.parse::<u32>().ok())
                .collect();
            break;
        }
    }
    assert_eq!(pids.len(), 3, "{seen}\n{}", err());
    assert!(seen.contains("ohm invariants ok"), "{seen}");
    assert!(seen.contains("| leader |"), "{seen}");
    assert!(seen.contains("reachable"), "{seen}");
    Command::new("kill")
        .args(["-TERM", &demo.0.id().to_string()])
        .status()
        .unwrap();
    assert!(demo.0.wait().unwrap().success(), "{}", err());
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "node pid {pid} still runs"
        );
    }
}
