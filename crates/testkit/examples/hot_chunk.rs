//! Popular data (issue 15): many clients reading one hot chunk, with the
//! caching of popular chunks off (the baseline: reads spread over the
//! close group only) and on (ring nodes cache it; `safe_client::popular`).
//!
//! ```text
//! cargo run --release -p safe-testkit --example hot_chunk [-- NODES CLIENTS GETS]
//! ```
//!
//! Defaults: 25 nodes, 20 clients, 10 000 gets in all, one 200 KB chunk
//! per phase (a fresh one for each, on the same network). Reports, per
//! phase, the share of gets its close group served, the largest share one
//! node served, how many nodes served any, and get latency (p50, p99).

use std::sync::Arc;
use std::time::{Duration, Instant};

use safe_client::{ChunkStore, Connection};
use safe_protocol::{Chunk, XorName};
use safe_testkit::{K, bytes_for, testnet};

struct Phase {
    group_share: f64,
    max_share: f64,
    serving: usize,
    p50: Duration,
    p99: Duration,
    cache_hits: u64,
}

async fn phase(
    net: &safe_node::testnet::Testnet,
    clients: &[Arc<Connection>],
    gets: usize,
    seed: u64,
    caching: bool,
) -> Phase {
    let chunk = Chunk::new(bytes_for(seed, 200_000)).expect("a chunk");
    let name: XorName = *chunk.name();
    clients[0].put(chunk).await.expect("put");
    // Let replication settle so only reads are counted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for c in clients {
        c.set_popular_caching(caching);
    }
    let ids: Vec<_> = net.nodes().map(|n| n.peer_id()).collect();
    let group = safe_network::close_group::closest(&name, ids.clone(), K);
    let before: Vec<u64> = net.nodes().map(|n| n.chunks_served()).collect();
    let hits_before: u64 = net.nodes().map(|n| n.cache_hits()).sum();
    let per_client = gets / clients.len();
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .map(|c| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let t = Instant::now();
                    let got = c.get(name).await.expect("get");
                    lat.push(t.elapsed());
                    assert_eq!(got.name(), &name);
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client task"));
    }
    lat.sort();
    let served: Vec<u64> = net
        .nodes()
        .zip(&before)
        .map(|(n, b)| n.chunks_served() - b)
        .collect();
    let total: u64 = served.iter().sum();
    let by_group: u64 = ids
        .iter()
        .zip(&served)
        .filter(|(id, _)| group.contains(id))
        .map(|(_, s)| s)
        .sum();
    let hits: u64 = net.nodes().map(|n| n.cache_hits()).sum::<u64>() - hits_before;
    Phase {
        group_share: by_group as f64 / total as f64,
        max_share: *served.iter().max().unwrap_or(&0) as f64 / total as f64,
        serving: served.iter().filter(|s| **s > 0).count(),
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
        cache_hits: hits,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("NODES CLIENTS GETS are numbers"))
        .collect();
    let nodes = args.first().copied().unwrap_or(25);
    let clients_n = args.get(1).copied().unwrap_or(20);
    let gets = args.get(2).copied().unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let net = testnet(dir.path(), nodes).await;
    let mut clients = Vec::new();
    for _ in 0..clients_n {
        clients.push(safe_testkit::client(&net).await);
    }
    println!("{nodes} nodes, {clients_n} clients, {gets} gets of one 200 KB chunk per phase");
    for (label, caching, seed) in [("no caching", false, 1), ("caching", true, 2)] {
        let p = phase(&net, &clients, gets, seed, caching).await;
        println!(
            "{label:>10}: close group served {:.1}%, busiest node {:.1}%, {} nodes served, \
             {} cache hits; latency p50 {:.2} ms, p99 {:.2} ms",
            p.group_share * 100.0,
            p.max_share * 100.0,
            p.serving,
            p.cache_hits,
            p.p50.as_secs_f64() * 1000.0,
            p.p99.as_secs_f64() * 1000.0,
        );
    }
    net.down().await;
}
