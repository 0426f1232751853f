//! `ohm bench voter --nodes N`: the voter workload against a local cluster
//! of N node processes (each partition replicated on every node, RF = N)
//! and, in the same run, against a cluster of one (RF = 1): same
//! partitions, durability, connections, calls in flight and vote stream,
//! both through `ClusterClient`, so the ratio is the price of replication
//! alone.

use super::{
    check_invariants, initialize, measure_side, ohm_tallies, vote_args, vote_code, Row, VoteFn,
    VoterArgs,
};
use crate::bench::local_cluster::{LocalCluster, LocalClusterOptions};
use crate::bench::voter::{build_runtime, RuntimeChoice};
use crate::driver::cluster::ClusterClient;
use crate::driver::ClientConfig;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Partitions when --partitions is not given (`ohm cluster init`'s default).
const DEFAULT_PARTITIONS: u32 = 4;

pub(super) fn run(
    args: &VoterArgs,
    nodes: u32,
    rows: &mut Vec<Row>,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    if nodes < 2 {
        anyhow::bail!("--nodes must be at least 2 (the run compares it with one node)");
    }
    let partitions = args
        .partitions
        .map_or(DEFAULT_PARTITIONS, |p| p.min(u32::MAX as usize) as u32);
    for n in [1, nodes] {
        let cluster =
            LocalCluster::start(&LocalClusterOptions::new(n, partitions, args.durability))?;
        let rt = build_runtime(RuntimeChoice::Current)?;
        let leader = rt.block_on(async {
            cluster.set_up_examples(&["voter"]).await?;
            let c = cluster.demo_client().await?;
            initialize(&c).await?;
            anyhow::Ok(c.current())
        })?;
        let pids: Vec<String> = (0..n as usize)
            .filter_map(|i| cluster.pid(i))
            .map(|p| p.to_string())
            .collect();
        println!(
            "ohm rf{n}: {n} node process(es) (pids {}), {partitions} partitions, each on \
             {n} node(s), durability {:?}, leaders on {leader}",
            pids.join(" "),
            args.durability
        );
        let (cfg, addrs, connections) = (
            cluster.demo_config()?,
            cluster.addrs.clone(),
            args.connections,
        );
        let connect =
            move || -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<VoteFn>>> + Send>> {
                Box::pin(vote_fns(cfg.clone(), addrs.clone(), connections))
            };
        let side = format!("ohm rf{n} ({n} node{})", if n == 1 { "" } else { "s" });
        let (mut row, total) = measure_side(args, &side, args.seed, &connect)?;
        row.rf = Some(n);
        rows.push(row);
        let tallies = rt.block_on(async { ohm_tallies(&cluster.demo_client().await?).await })?;
        match check_invariants(total.accepted, total.errors, 0, &tallies) {
            Ok(summary) => println!("{side} invariants {summary}"),
            Err(e) => failures.push(format!("{side}: {e}")),
        }
        drop(cluster); // stops the nodes and removes their directory
    }
    Ok(())
}

/// One cluster client per connection, each sending votes to the leader.
async fn vote_fns(
    cfg: ClientConfig,
    addrs: Vec<String>,
    connections: usize,
) -> anyhow::Result<Vec<VoteFn>> {
    let mut fns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = Arc::new(ClusterClient::connect(cfg.clone(), &addrs).await?);
        let f: VoteFn = Arc::new(move |phone, contestant| {
            let client = client.clone();
            Box::pin(
                async move { vote_code(client.call("vote", vote_args(phone, contestant)).await) },
            )
        });
        fns.push(f);
    }
    Ok(fns)
}
