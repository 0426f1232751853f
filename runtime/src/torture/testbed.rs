//! The network of a fault-suite run: one Linux network namespace per node,
//! each joined by a veth link to a bridge in this namespace (where the
//! suite's clients are), and nftables rules inside each namespace that cut
//! links between nodes or drop a share of packets.
//!
//! Owns: creating and removing the namespaces, links and bridge (and those
//! a killed earlier run left), and turning a set of cut links and a loss
//! rate into each namespace's rules. Must not: touch any interface or rule
//! it did not make. Needs root, `ip` (iproute2) and `nft` (nftables).
//!
//! ```text
//!   ohm-t<pid>-n1 [198.18.S.1]──veth──┐
//!   ohm-t<pid>-n2 [198.18.S.2]──veth──┤ bridge ohb<pid> [198.18.S.254] (clients)
//!   ohm-t<pid>-n3 [198.18.S.3]──veth──┘
//! ```
//!
//! 198.18.0.0/15 is set aside for benchmarking networks (RFC 2544); a /24
//! already in use on this machine is skipped.
//!
//! A cut drops packets between two nodes' addresses in both nodes'
//! namespaces; clients on the bridge still reach every node, so a node
//! cut from its peers may go on answering them (as a real partition does).

use anyhow::{bail, Context};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// Nodes one testbed may hold.
pub const TESTBED_NODES_MAX: usize = 9;
/// The nftables table this module owns in each namespace.
const TABLE: &str = "ohm_torture";
/// Namespace names start with this, then `<pid>-n<i>`.
const NS_PREFIX: &str = "ohm-t";

/// The namespaces, links and rules of one run; removed on drop.
pub struct Testbed {
    id: u32,
    subnet: u8,
    nodes: usize,
    /// Links cut now, as (lower, higher) node indexes.
    cuts: BTreeSet<(usize, usize)>,
    loss_percent: u32,
}

impl Testbed {
    /// Makes the namespaces, links and bridge for `nodes` nodes.
    pub fn create(nodes: usize) -> anyhow::Result<Testbed> {
        if !(1..=TESTBED_NODES_MAX).contains(&nodes) {
            bail!("a testbed holds 1 to {TESTBED_NODES_MAX} nodes, not {nodes}");
        }
        check_tools()?;
        remove_stale();
        let id = std::process::id();
        // This run's earlier testbed, if its removal has not finished (a
        // node process that outlived its kill keeps its namespace, and the
        // namespace its veth): names are reused per run.
        let _ = ip(&["link", "del", &format!("ohb{id}")]);
        for i in 0..TESTBED_NODES_MAX {
            remove_netns(&format!("{NS_PREFIX}{id}-n{}", i + 1));
            let _ = ip(&["link", "del", &format!("oh{id}a{i}")]);
        }
        let t = Testbed {
            id,
            subnet: free_subnet(id)?,
            nodes,
            cuts: BTreeSet::new(),
            loss_percent: 0,
        };
        // From here on, drop removes whatever was made.
        let br = t.bridge();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", t.host_ip()), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 0..nodes {
            let ns = t.netns(i);
            let (outer, inner) = (format!("oh{id}a{i}"), format!("oh{id}b{i}"));
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns,
            ])?;
            ip(&["link", "set", &outer, "master", &br, "up"])?;
            let addr = format!("{}/24", t.node_ip(i));
            in_ns(&ns, &["ip", "addr", "add", &addr, "dev", &inner])?;
            in_ns(&ns, &["ip", "link", "set", &inner, "up"])?;
            in_ns(&ns, &["ip", "link", "set", "lo", "up"])?;
        }
        t.apply()?;
        Ok(t)
    }

    fn bridge(&self) -> String {
        format!("ohb{}", self.id)
    }

    /// Node i's namespace.
    pub fn netns(&self, i: usize) -> String {
        format!("{NS_PREFIX}{}-n{}", self.id, i + 1)
    }

    pub fn netns_all(&self) -> Vec<String> {
        (0..self.nodes).map(|i| self.netns(i)).collect()
    }

    /// Node i's address.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet, (i + 1) as u8)
    }

    /// This namespace's address on the bridge (the clients').
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet, 254)
    }

    /// Cuts every link between the two sides.
    pub fn cut_between(&mut self, left: &[usize], right: &[usize]) -> anyhow::Result<()> {
        for &a in left {
            for &b in right {
                if a != b {
                    self.cuts.insert((a.min(b), a.max(b)));
                }
            }
        }
        self.apply()
    }

    /// Every node drops `percent` of the packets it receives.
    pub fn set_loss(&mut self, percent: u32) -> anyhow::Result<()> {
        self.loss_percent = percent.min(100);
        self.apply()
    }

    /// No cut, no loss.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        self.cuts.clear();
        self.loss_percent = 0;
        self.apply()
    }

    /// Writes every namespace's rules from `cuts` and `loss_percent`, each
    /// namespace's table replaced at once (`nft -f`).
    fn apply(&self) -> anyhow::Result<()> {
        for i in 0..self.nodes {
            let script = self.rules(i);
            let ns = self.netns(i);
            let mut child = Command::new("ip")
                .args(["netns", "exec", &ns, "nft", "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("running nft")?;
            child
                .stdin
                .take()
                .context("nft's stdin")?
                .write_all(script.as_bytes())
                .context("writing to nft")?;
            let out = child.wait_with_output().context("waiting for nft")?;
            if !out.status.success() {
                bail!(
                    "nft in {ns} refused the rules: {}\n{script}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(())
    }

    /// Node i's table: drops from and to the nodes cut from it, and the
    /// loss share of what it receives.
    fn rules(&self, i: usize) -> String {
        let cut: Vec<String> = self
            .cuts
            .iter()
            .filter_map(|&(a, b)| match (a == i, b == i) {
                (true, _) => Some(b),
                (_, true) => Some(a),
                _ => None,
            })
            .map(|j| self.node_ip(j).to_string())
            .collect();
        let (mut input, mut output) = (String::new(), String::new());
        if !cut.is_empty() {
            let set = cut.join(", ");
            input += &format!("    ip saddr {{ {set} }} drop\n");
            output += &format!("    ip daddr {{ {set} }} drop\n");
        }
        if self.loss_percent > 0 {
            input += &format!("    numgen random mod 100 < {} drop\n", self.loss_percent);
        }
        // `table` then `delete table`: replaces the table whether or not
        // it exists, in one transaction.
        format!(
            "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n  \
             chain input {{\n    type filter hook input priority 0; policy accept;\n{input}  }}\n  \
             chain output {{\n    type filter hook output priority 0; policy accept;\n{output}  }}\n}}\n"
        )
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            remove_netns(&self.netns(i));
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

/// Kills what still runs in namespace `ns` (nodes of a run that was itself
/// killed), then deletes it, and with it its end of each veth (and so the
/// other end).
fn remove_netns(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// A /24 of 198.18.0.0/16 no interface here has an address in, tried from
/// one the process id picks.
fn free_subnet(id: u32) -> anyhow::Result<u8> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .context("running ip addr")?;
    let used = String::from_utf8_lossy(&out.stdout).into_owned();
    for k in 0..250 {
        // 1..=250.
        let s = ((id + k) % 250 + 1) as u8;
        if !used.contains(&format!(" 198.18.{s}.")) {
            return Ok(s);
        }
    }
    bail!("every 198.18.S.0/24 has an address on this machine: remove stale testbeds")
}

/// Whether `ip` (iproute2) and `nft` (nftables) are installed.
pub fn check_tools() -> anyhow::Result<()> {
    for tool in [["ip", "-V"], ["nft", "--version"]] {
        let ok = Command::new(tool[0])
            .arg(tool[1])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !ok.is_ok_and(|s| s.success()) {
            bail!(
                "`{}` is not installed: the fault suite needs iproute2 and nftables \
                 (apt-get install iproute2 nftables)",
                tool[0]
            );
        }
    }
    Ok(())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ip").args(args))
}

fn in_ns(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {} (the fault suite needs root)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Removes the namespaces and bridges of earlier runs whose process is
/// gone (killed before its drop ran).
fn remove_stale() {
    let alive = |pid: &str| std::path::Path::new("/proc").join(pid).exists();
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            let Some(pid) = name
                .strip_prefix(NS_PREFIX)
                .and_then(|rest| rest.split('-').next())
            else {
                continue;
            };
            if pid.bytes().all(|b| b.is_ascii_digit()) && !alive(pid) {
                remove_netns(name);
            }
        }
    }
    if let Ok(out) = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "12: ohb1234: <...>"
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let Some(pid) = name.strip_prefix("ohb") else {
                continue;
            };
            if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !alive(pid) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bed(nodes: usize) -> Testbed {
        // Not created: only the rule text is looked at.
        Testbed {
            id: 7,
            subnet: 8,
            nodes,
            cuts: BTreeSet::new(),
            loss_percent: 0,
        }
    }

    #[test]
    fn rules_cut_both_directions_and_only_the_named_links() {
        let mut t = bed(3);
        t.cuts.insert((0, 2));
        t.loss_percent = 12;
        let n1 = t.rules(0);
        assert!(n1.contains("ip saddr { 198.18.8.3 } drop"), "{n1}");
        assert!(n1.contains("ip daddr { 198.18.8.3 } drop"), "{n1}");
        assert!(n1.contains("numgen random mod 100 < 12 drop"), "{n1}");
        let n2 = t.rules(1);
        assert!(!n2.contains("saddr"), "n2 is cut from nobody: {n2}");
        assert!(t.rules(2).contains("ip saddr { 198.18.8.1 } drop"));
        // std::mem::forget: the namespaces were never made.
        std::mem::forget(t);
    }
}
