//! Node ids cost work (issue 15, Sybil resistance): an attacker with many
//! cheap keys placed next to an address cannot get into honest routing
//! tables, or into the close group that clients compute, on a network of
//! real nodes on 127.0.0.1.

use std::time::Duration;

use safe_client::Connection;
use safe_network::close_group::closest;
use safe_network::identity::{id_work, valid_id};
use safe_network::libp2p::identity::Keypair;
use safe_protocol::XorName;
use safe_testkit::K;

const DIFFICULTY: u32 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cheap_ids_next_to_an_address_never_enter_its_close_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = safe_testkit::testnet_config(&dir.path().join("net"), 8);
    config.node.admission.id_difficulty = DIFFICULTY;
    let net = safe_testkit::start(config).await;
    let honest: Vec<_> = net.nodes().map(|n| n.peer_id()).collect();
    assert!(honest.iter().all(|p| id_work(p) >= DIFFICULTY));

    // The attacker makes cheap keys (no work) until it has K + 1 that are
    // all closer to the target than every honest node.
    let target = XorName([0x42; 32]);
    let nearest_honest = closest(&target, honest.clone(), 1)[0];
    let mut cheap = Vec::new();
    while cheap.len() < K + 1 {
        let k = Keypair::generate_ed25519();
        let id = k.public().to_peer_id();
        if !valid_id(&id, DIFFICULTY) && closest(&target, [id, nearest_honest], 1)[0] == id {
            cheap.push(k);
        }
    }
    let attackers: Vec<_> = cheap.iter().map(|k| k.public().to_peer_id()).collect();
    // Were they admitted, they would be the whole close group.
    let mut everyone = honest.clone();
    everyone.extend(&attackers);
    let would_be = closest(&target, everyone, K);
    assert!(would_be.iter().all(|p| attackers.contains(p)));

    // They run real nodes (that demand no work themselves) and join.
    let seeds = net.contacts().await;
    let mut running = Vec::new();
    for (i, key) in cheap.iter().enumerate() {
        let node_dir = dir.path().join(format!("attacker-{i}"));
        std::fs::create_dir_all(&node_dir).unwrap();
        std::fs::write(
            node_dir.join(safe_node::IDENTITY_FILE),
            key.to_protobuf_encoding().unwrap(),
        )
        .unwrap();
        let mut c = safe_node::NodeConfig::new(&node_dir);
        c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        c.peers = seeds.clone();
        c.close_group = K;
        c.admission.id_difficulty = 0;
        running.push(safe_node::start(c).await.expect("attacker node starts"));
    }
    // Long enough for identify and a Kademlia bootstrap round.
    tokio::time::sleep(Duration::from_secs(3)).await;

    for node in net.nodes() {
        let table = node.routing_peers().await;
        assert!(
            table.len() >= K,
            "honest nodes still see each other: {}",
            table.len()
        );
        assert!(
            !table.iter().any(|p| attackers.contains(p)),
            "an attacker id entered an honest routing table"
        );
    }
    // A client that knows the network's difficulty finds the honest group.
    let client = Connection::connect_with_difficulty(
        &safe_client::Bootstrap::given(seeds.clone()),
        K,
        DIFFICULTY,
    )
    .await
    .unwrap();
    let group = client.lookup_group(&target).await;
    assert_eq!(group.len(), K, "{group:?}");
    assert!(group.iter().all(|p| honest.contains(p)), "{group:?}");
    assert_eq!(group, closest(&target, honest.clone(), K));

    client.shutdown().await;
    for node in running {
        node.stop().await;
    }
    net.down().await;
}
