//! `ohm cluster init` and `ohm cluster add-node`: the cluster CA and each
//! node's certificate, written as files an operator copies to each machine
//! (docs/OPERATIONS.md, "Clusters").
//!
//! ```text
//!   DIR/ca.pem  ca.key          the CA (ca.key stays with the operator)
//!   DIR/n1/ca.pem node.pem node.key   what node 1 needs
//! ```
//!
//! Must not: overwrite an existing file (a lost CA key cannot be recovered,
//! and replacing a node's certificate behind its back is an outage).

use crate::catalog::{Catalog, ADMIN_TENANT, DEMO_TENANT};
use crate::net::peer_tls::{
    new_cluster, new_node, NewNode, CA_CERT_FILE, CA_KEY_FILE, NODE_CERT_FILE, NODE_KEY_FILE,
};
use crate::node::cluster::{ClusterConfig, NodeAddrs, CLUSTER_FILE};
use crate::types::NodeId;
use anyhow::{bail, Context};
use clap::Args;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct ClusterInitArgs {
    /// Directory to create (it must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Nodes to create certificates for (ids 1..=N).
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// A host name or IP address clients use to reach the nodes, added to
    /// every node's certificate (repeatable; localhost and 127.0.0.1 are
    /// always there).
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// Partitions of the cluster (fixed for its life: rows are placed by it).
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// The address the nodes listen on, for cluster.conf: once for every
    /// node, or once per node in id order (or edit the file for nodes on
    /// different machines).
    #[arg(long = "host", default_value = "127.0.0.1")]
    pub hosts: Vec<std::net::IpAddr>,
    /// Node 1 serves clients on this UDP port and peers on the next; node
    /// i on `port + 10 * (i - 1)` and the one after.
    #[arg(long, default_value_t = 7450)]
    pub port: u16,
}

#[derive(Args, Debug)]
pub struct ClusterAddNodeArgs {
    /// The directory `ohm cluster init` made (its ca.pem and ca.key sign).
    #[arg(long)]
    pub dir: PathBuf,
    /// The new node's id (not one in use).
    #[arg(long)]
    pub node: u32,
    /// Host names or IP addresses for clients, as for `init`.
    #[arg(long = "name")]
    pub names: Vec<String>,
}

/// The client-facing names for certificates: localhost and 127.0.0.1,
/// then `extra`. A node name (`*.ohm-cluster`) or a wildcard would let a
/// certificate pass for another node, so neither is allowed.
fn names(extra: &[String]) -> anyhow::Result<Vec<String>> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for n in extra {
        let lower = n.to_ascii_lowercase();
        if lower.ends_with(".ohm-cluster") || lower == "ohm-cluster" || n.contains('*') {
            bail!("--name {n}: node names (*.ohm-cluster) and wildcards are not allowed");
        }
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    Ok(names)
}

pub fn init(args: &ClusterInitArgs) -> anyhow::Result<()> {
    let nodes = init_quiet(args)?;
    println!(
        "cluster CA and {nodes} node certificates in {}",
        args.out.display()
    );
    println!(
        "copy {}/n<id>/ to node <id>'s machine and start it with `ohm serve --cluster DIR/n<id>`; \
         keep ca.key offline (it signs new nodes); admin.token and demo.token log in as the \
         cluster's admin and demo tenant",
        args.out.display()
    );
    Ok(())
}

/// `init` without telling anyone; the number of node certificates made.
pub fn init_quiet(args: &ClusterInitArgs) -> anyhow::Result<usize> {
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .with_context(|| format!("reading {}", args.out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty: refusing to write a new cluster over it",
            args.out.display()
        );
    }
    if args.hosts.len() != 1 && args.hosts.len() != args.nodes as usize {
        bail!(
            "--host given {} times: give it once (every node) or once per node ({})",
            args.hosts.len(),
            args.nodes
        );
    }
    let mut addrs = BTreeMap::new();
    for i in 1..=args.nodes {
        let host = args.hosts[(i as usize - 1) % args.hosts.len()];
        let port = u32::from(args.port) + 10 * (i - 1);
        if port + 1 > u32::from(u16::MAX) {
            bail!(
                "--port {} leaves no room for {} nodes",
                args.port,
                args.nodes
            );
        }
        let at = |p: u32| std::net::SocketAddr::new(host, p as u16);
        addrs.insert(
            NodeId(i),
            NodeAddrs {
                client: at(port),
                peer: at(port + 1),
            },
        );
    }
    // The file parses as every node will parse it (checks counts).
    let conf = ClusterConfig::render(args.partitions, args.nodes, &addrs);
    ClusterConfig::parse(&conf, NodeId(1))?;
    // The tenants every node starts with: tenant ids and principals must
    // agree across the cluster.
    let mut catalog = Catalog::default();
    let (_, admin) = catalog.create_tenant(ADMIN_TENANT, "admin", true)?;
    let (_, demo) = catalog.create_tenant(DEMO_TENANT, "demo", false)?;
    let cluster = new_cluster(args.nodes, &names(&args.names)?)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_new(&args.out.join(CA_CERT_FILE), &cluster.ca_cert_pem, false)?;
    write_new(&args.out.join(CA_KEY_FILE), &cluster.ca_key_pem, true)?;
    write_new(&args.out.join("admin.token"), &format!("{admin}\n"), true)?;
    write_new(&args.out.join("demo.token"), &format!("{demo}\n"), true)?;
    write_new(&args.out.join(CLUSTER_FILE), &conf, false)?;
    for node in &cluster.nodes {
        write_node(&args.out, &cluster.ca_cert_pem, node)?;
        let d = args.out.join(format!("n{}", node.node.0));
        write_new(&d.join(CLUSTER_FILE), &conf, false)?;
        let dir = cap_std::fs::Dir::open_ambient_dir(&d, cap_std::ambient_authority())
            .with_context(|| format!("opening {}", d.display()))?;
        catalog.save(&dir)?;
    }
    Ok(cluster.nodes.len())
}

pub fn add_node(args: &ClusterAddNodeArgs) -> anyhow::Result<()> {
    let read = |f: &str| {
        let p = args.dir.join(f);
        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    };
    let ca_cert = read(CA_CERT_FILE)?;
    let ca_key = read(CA_KEY_FILE)?;
    let node = new_node(&ca_cert, &ca_key, NodeId(args.node), &names(&args.names)?)?;
    write_node(&args.dir, &ca_cert, &node)?;
    println!(
        "node {} certificate in {}",
        args.node,
        args.dir.join(format!("n{}", args.node)).display()
    );
    Ok(())
}

fn write_node(dir: &Path, ca_cert: &str, node: &NewNode) -> anyhow::Result<()> {
    let d = dir.join(format!("n{}", node.node.0));
    if d.exists() {
        bail!(
            "{} exists: node {} has a certificate",
            d.display(),
            node.node.0
        );
    }
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    write_new(&d.join(CA_CERT_FILE), ca_cert, false)?;
    write_new(&d.join(NODE_CERT_FILE), &node.cert_pem, false)?;
    write_new(&d.join(NODE_KEY_FILE), &node.key_pem, true)
}

/// Creates `path` (never replaces one), private keys readable by the owner
/// only, and syncs it.
fn write_new(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::peer_tls::PeerIdentity;

    #[test]
    fn init_writes_loadable_node_directories_and_never_overwrites() {
        let out = std::env::temp_dir().join(format!("ohm-cluster-init-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let args = ClusterInitArgs {
            out: out.clone(),
            nodes: 2,
            names: vec!["db.example".into()],
            partitions: 2,
            hosts: vec!["127.0.0.1".parse().unwrap()],
            port: 7450,
        };
        init(&args).unwrap();
        for n in 1..=2 {
            let id = PeerIdentity::load(&out.join(format!("n{n}"))).unwrap();
            assert_eq!(id.node, NodeId(n));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "ca.key is private");
        }
        let e = init(&args).unwrap_err().to_string();
        assert!(e.contains("is not empty"), "{e}");

        let add = ClusterAddNodeArgs {
            dir: out.clone(),
            node: 3,
            names: vec![],
        };
        add_node(&add).unwrap();
        assert_eq!(PeerIdentity::load(&out.join("n3")).unwrap().node, NodeId(3));
        let e = add_node(&add).unwrap_err().to_string();
        assert!(e.contains("has a certificate"), "{e}");
        for bad in ["n9.ohm-cluster", "*.example", "N2.OHM-CLUSTER"] {
            let add = ClusterAddNodeArgs {
                dir: out.clone(),
                node: 9,
                names: vec![bad.into()],
            };
            let e = add_node(&add).unwrap_err().to_string();
            assert!(e.contains("not allowed"), "{bad}: {e}");
        }

        // A node directory holding another cluster's CA is refused at load.
        let other = out.join("other");
        init(&ClusterInitArgs {
            out: other.clone(),
            nodes: 1,
            names: vec![],
            partitions: 1,
            hosts: vec!["127.0.0.1".parse().unwrap()],
            port: 7450,
        })
        .unwrap();
        std::fs::copy(other.join(CA_CERT_FILE), out.join("n1").join(CA_CERT_FILE)).unwrap();
        let e = PeerIdentity::load(&out.join("n1")).unwrap_err().to_string();
        assert!(
            e.contains("is not a certificate ca.pem signed for n1.ohm-cluster"),
            "{e}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn init_gives_each_node_its_own_host_or_all_one() {
        let out = std::env::temp_dir().join(format!("ohm-cluster-hosts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let mut args = ClusterInitArgs {
            out: out.clone(),
            nodes: 3,
            names: vec![],
            partitions: 2,
            hosts: vec!["10.1.0.1".parse().unwrap(), "10.1.0.2".parse().unwrap()],
            port: 7450,
        };
        let e = init_quiet(&args).unwrap_err().to_string();
        assert!(e.contains("--host given 2 times"), "{e}");
        args.hosts.push("10.1.0.3".parse().unwrap());
        init_quiet(&args).unwrap();
        let text = std::fs::read_to_string(out.join(CLUSTER_FILE)).unwrap();
        let conf = ClusterConfig::parse(&text, NodeId(1)).unwrap();
        let clients: Vec<String> = conf.nodes.values().map(|a| a.client.to_string()).collect();
        assert_eq!(clients, ["10.1.0.1:7450", "10.1.0.2:7460", "10.1.0.3:7470"]);
        std::fs::remove_dir_all(&out).unwrap();
    }
}
