//! Address diversity (issue 15, Sybil resistance): an attacker whose
//! nodes all sit in one network block (an IPv4 /24) gets at most
//! `max_per_subnet` of them into a close group, however close their ids
//! are to the target. Every node here has an address of its own on
//! loopback, honest ones each in their own 127.0.x.0/24 and the
//! attacker's all in 127.0.99.0/24, and counts loopback blocks (a
//! test-only switch; real networks are never on loopback).

use std::collections::HashMap;
use std::time::Duration;

use safe_client::{Bootstrap, Connection};
use safe_network::Admission;
use safe_network::close_group::closest;
use safe_network::libp2p::identity::Keypair;
use safe_network::libp2p::kad::KBucketKey;
use safe_protocol::XorName;
use safe_testkit::K;

const MAX: usize = 2;

fn admission(max_per_subnet: usize) -> Admission {
    Admission {
        id_difficulty: 0,
        max_per_subnet,
        limit_loopback_connections: false,
        limit_loopback_subnets: true,
        ..Admission::new(0)
    }
}

/// A node in `dir` listening on `ip`; `key` for an attacker's node (its
/// chosen id, and no limit of its own: it answers lookups with every
/// node of its block).
async fn node(
    dir: &std::path::Path,
    ip: &str,
    peers: Vec<safe_network::libp2p::Multiaddr>,
    key: Option<&Keypair>,
) -> safe_node::RunningNode {
    std::fs::create_dir_all(dir).unwrap();
    if let Some(key) = key {
        std::fs::write(
            dir.join(safe_node::IDENTITY_FILE),
            key.to_protobuf_encoding().unwrap(),
        )
        .unwrap();
    }
    let mut c = safe_node::NodeConfig::new(dir);
    c.listen = vec![format!("/ip4/{ip}/tcp/0").parse().unwrap()];
    c.peers = peers;
    c.close_group = K;
    c.replication_interval = Duration::from_secs(1);
    c.admission = admission(if key.is_some() { 0 } else { MAX });
    safe_node::start(c).await.expect("node starts")
}

async fn contacts(n: &safe_node::RunningNode) -> Vec<safe_network::libp2p::Multiaddr> {
    for _ in 0..100 {
        let a = n.listen_addrs().await;
        if !a.is_empty() {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a node reports its address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_block_gets_at_most_its_share_of_a_close_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut honest = Vec::new();
    let first = node(&dir.path().join("h0"), "127.0.10.1", Vec::new(), None).await;
    let seeds = contacts(&first).await;
    honest.push(first);
    for i in 1..8 {
        let ip = format!("127.0.{}.1", 10 + i);
        honest.push(node(&dir.path().join(format!("h{i}")), &ip, seeds.clone(), None).await);
    }
    let honest_ids: Vec<_> = honest.iter().map(|n| n.peer_id()).collect();

    // K + 1 attacker keys all closer to the target than every honest node.
    let target = XorName([0x5a; 32]);
    let nearest_honest = closest(&target, honest_ids.clone(), 1)[0];
    let mut keys = Vec::new();
    while keys.len() < K + 1 {
        let k = Keypair::generate_ed25519();
        if closest(&target, [k.public().to_peer_id(), nearest_honest], 1)[0]
            == k.public().to_peer_id()
        {
            keys.push(k);
        }
    }
    let attackers: Vec<_> = keys.iter().map(|k| k.public().to_peer_id()).collect();
    let mut attacker_nodes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let ip = format!("127.0.99.{}", i + 1);
        attacker_nodes.push(
            node(
                &dir.path().join(format!("a{i}")),
                &ip,
                seeds.clone(),
                Some(key),
            )
            .await,
        );
    }
    // Identify and a bootstrap round.
    for n in honest.iter().chain(&attacker_nodes) {
        n.bootstrap().await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Were one block not limited, the attacker would be the whole group.
    let bootstrap = Bootstrap::given(seeds.clone());
    let blind = Connection::connect_with_admission(&bootstrap, K, admission(0))
        .await
        .unwrap();
    let blind_group = blind.lookup_group(&target).await;
    let blind_count = blind_group.iter().filter(|p| attackers.contains(p)).count();

    // With the limit, a client's lookup finds at most MAX of them.
    let client = Connection::connect_with_admission(&bootstrap, K, admission(MAX))
        .await
        .unwrap();
    let group = client.lookup_group(&target).await;
    let count = group.iter().filter(|p| attackers.contains(p)).count();
    eprintln!("close group of the target: {count} attackers with the limit, {blind_count} without");
    assert_eq!(group.len(), K, "{group:?}");
    assert!(
        count <= MAX,
        "{count} attackers from one /24 in the close group"
    );
    assert!(
        blind_count > MAX,
        "without the limit the attacker fills more of the group: {blind_count}"
    );

    // And no honest routing table holds more than MAX of them in any one
    // k-bucket (the bucket of a peer is the length of the prefix its
    // Kademlia key shares with the node's).
    for n in &honest {
        let own = KBucketKey::from(n.peer_id());
        let mut per_bucket: HashMap<u32, usize> = HashMap::new();
        for p in n.routing_peers().await {
            if attackers.contains(&p)
                && let Some(bucket) = own.distance(&KBucketKey::from(p)).ilog2()
            {
                *per_bucket.entry(bucket).or_default() += 1;
            }
        }
        let most = per_bucket.values().copied().max().unwrap_or(0);
        assert!(
            most <= MAX,
            "an honest node routes to {most} of the block's nodes in one k-bucket"
        );
    }

    blind.shutdown().await;
    client.shutdown().await;
    for n in attacker_nodes.into_iter().chain(honest) {
        n.stop().await;
    }
}
