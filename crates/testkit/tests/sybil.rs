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

/// Node age (issue 15): nodes that have just joined hold copies, but their
/// receipts and "not found" answers do not count toward a client's majority
/// until the rest of their close group has had them for the client's
/// minimum age; then they do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn young_nodes_do_not_count_toward_a_majority_until_old_enough() {
    use safe_client::{ChunkStore, StoreError};
    use safe_protocol::Chunk;

    let dir = tempfile::tempdir().unwrap();
    let net = safe_testkit::testnet(&dir.path().join("net"), 6).await;
    let seeds = net.contacts().await;
    let original: Vec<_> = net.nodes().map(|n| n.peer_id()).collect();
    // The first six are up this long before the others join.
    const UP_FIRST: Duration = Duration::from_secs(9);
    tokio::time::sleep(UP_FIRST).await;

    // Three nodes join now (starting them may take a while on a busy
    // machine: the first is routed to while the last starts).
    let first = std::time::Instant::now();
    let mut young = Vec::new();
    for i in 0..3 {
        let mut c = safe_node::NodeConfig::new(dir.path().join(format!("young{i}")));
        c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        c.peers = seeds.clone();
        c.close_group = K;
        young.push(safe_node::start(c).await.expect("node starts"));
    }
    let newcomers: Vec<_> = young.iter().map(|n| n.peer_id()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for n in net.nodes() {
        loop {
            let peers = n.routing_peers().await;
            if newcomers.iter().all(|p| peers.contains(p)) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "newcomers routed to");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let everyone: Vec<_> = original.iter().chain(&newcomers).copied().collect();

    // A client whose minimum age (whole seconds, as nodes report ages)
    // lies well between: above how long any newcomer has been routed to,
    // below how long the originals have.
    let spread = first.elapsed();
    let min = Duration::from_secs(spread.as_secs() + 1 + UP_FIRST.as_secs() / 2);
    assert!(min < UP_FIRST + spread);
    let client = Connection::connect_to(&seeds, K).await.unwrap();
    client.set_min_node_age(min);
    let counted = client.counted_members(&everyone).await;
    assert_eq!(
        {
            let mut c = counted.clone();
            c.sort();
            c
        },
        {
            let mut o = original.clone();
            o.sort();
            o
        },
        "only the nodes up long enough count (the newcomers started {:?} before, minimum {min:?})",
        first.elapsed()
    );

    // A client for which no node is old enough: stores nothing (every
    // receipt comes from a node too new to count) and never hears "not
    // found", where a client without the limit does both.
    let strict = Connection::connect_to(&seeds, K).await.unwrap();
    strict.set_min_node_age(Duration::from_secs(3600));
    let chunk = Chunk::new(safe_testkit::bytes_for(11, 5_000)).unwrap();
    let err = ChunkStore::put(&strict, chunk.clone()).await.unwrap_err();
    assert!(
        err.to_string().contains("joined too recently to count"),
        "{err}"
    );
    let missing = XorName([0x77; 32]);
    assert!(
        matches!(
            ChunkStore::get(&strict, missing).await,
            Err(StoreError::Network(_))
        ),
        "no verdict from nodes too new to count"
    );
    let open = Connection::connect_to(&seeds, K).await.unwrap();
    ChunkStore::put(&open, chunk.clone()).await.unwrap();
    assert!(matches!(
        ChunkStore::get(&open, missing).await,
        Err(StoreError::NotFound(_))
    ));

    // Once the last newcomer has been routed to for the minimum, they all
    // count too.
    tokio::time::sleep_until((first + spread + min + Duration::from_secs(1)).into()).await;
    let counted = client.counted_members(&everyone).await;
    assert_eq!(
        counted.len(),
        everyone.len(),
        "the newcomers are old enough now"
    );

    for c in [client, strict, open] {
        c.shutdown().await;
    }
    for n in young {
        n.stop().await;
    }
    net.down().await;
}
