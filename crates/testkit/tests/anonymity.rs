//! Anonymous reads through 3-hop relay circuits (issue 16), on an
//! in-process network of 12 real nodes on 127.0.0.1.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use safe_client::ChunkStore;
use safe_client::anonymous::{AnonError, Circuit, HOPS, Relay, choose_path};
use safe_node::testnet::TESTNET_ID_DIFFICULTY;
use safe_protocol::Chunk;
use safe_testkit::{K, bytes_for, client, testnet};

/// A sample covering the network: every node but at most one, each with a
/// certificate two other nodes agree on.
async fn full_sample(
    client: &safe_client::Connection,
    nodes: usize,
    network: [u8; 32],
) -> Vec<Relay> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sample = client.relay_sample(4, network).await;
        if sample.len() + 1 >= nodes || Instant::now() > deadline {
            return sample;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunk_read_through_a_circuit_is_right_and_its_holders_see_only_relays() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path(), 12).await;
    let client = client(&net).await;
    let network = safe_network::network_id(TESTNET_ID_DIFFICULTY);
    let chunk = Chunk::new(bytes_for(7, 200_000)).unwrap();
    let name = *chunk.name();
    client.put(chunk.clone()).await.unwrap();

    let sample = full_sample(&client, net.len(), network).await;
    assert!(sample.len() >= 11, "only {} relays confirmed", sample.len());

    // The path: guard and middle are not near the chunk, so neither holds it.
    let path = choose_path(&sample, &name, K).unwrap();
    let node = |peer| net.nodes().find(|n| n.peer_id() == peer).unwrap();
    for hop in &path[..2] {
        assert!(!node(hop.peer).holds(&name), "{} holds the chunk", hop.peer);
    }
    let served_before: Vec<u64> = net.nodes().map(|n| n.chunks_served()).collect();
    let circuits_before: u64 = net.nodes().map(|n| n.relay_circuits_created()).sum();

    let mut circuit = Circuit::build(&path, network).await.unwrap();
    let bytes = circuit.get_chunk(name).await.unwrap();
    assert_eq!(&bytes, chunk.bytes());

    // One circuit, three hops: each hop took exactly one.
    let circuits_after: u64 = net.nodes().map(|n| n.relay_circuits_created()).sum();
    assert_eq!(circuits_after - circuits_before, HOPS as u64);
    for hop in &path {
        assert!(node(hop.peer).relay_circuits_created() >= 1);
    }
    // Only holders served the chunk (the exit itself, if it holds it, or
    // the nodes it asked), never the guard or the middle.
    let served: Vec<u64> = net
        .nodes()
        .zip(&served_before)
        .map(|(n, before)| n.chunks_served() - before)
        .collect();
    for (n, s) in net.nodes().zip(&served) {
        if *s > 0 {
            assert!(n.holds(&name), "{} served without holding", n.peer_id());
            assert!(n.peer_id() != path[0].peer && n.peer_id() != path[1].peer);
        }
    }
    assert!(served.iter().sum::<u64>() >= 1);
    drop(circuit);
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lying_exit_is_caught_and_another_circuit_gives_the_right_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path(), 12).await;
    let client = client(&net).await;
    let network = safe_network::network_id(TESTNET_ID_DIFFICULTY);
    let chunk = Chunk::new(bytes_for(8, 300_000)).unwrap();
    let name = *chunk.name();
    client.put(chunk.clone()).await.unwrap();
    let sample = full_sample(&client, net.len(), network).await;

    // The exit of this path lies: the client refuses its bytes.
    let path = choose_path(&sample, &name, K).unwrap();
    let liar = net
        .nodes()
        .find(|n| n.peer_id() == path[HOPS - 1].peer)
        .unwrap();
    liar.faults().lying_exit.store(true, Ordering::Relaxed);
    let mut circuit = Circuit::build(&path, network).await.unwrap();
    assert!(matches!(
        circuit.get_chunk(name).await,
        Err(AnonError::WrongContent)
    ));
    drop(circuit);

    // Requests through random circuits, with that liar among the exits:
    // every one gives the right bytes (a circuit through the liar fails
    // its check, the liar is blamed and the next circuit avoids it).
    for _ in 0..5 {
        let bytes = client.get_chunk_anonymously(&sample, name, network).await;
        assert_eq!(&bytes.unwrap(), chunk.bytes());
    }
    net.down().await;
}
