//! In-process networks of real nodes on 127.0.0.1 (ephemeral ports), driven
//! through the real client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use safe_client::{Connection, StoreError, files};
use safe_node::testnet::{Testnet, TestnetConfig};
use safe_protocol::XorName;
use safe_selfenc::Config;
use safe_testkit::{K, bytes_for, client, client_with, get, put, testnet};

/// How many running nodes hold each record.
fn copies(net: &Testnet) -> HashMap<XorName, usize> {
    let mut counts = HashMap::new();
    for node in net.nodes() {
        let mut after = None;
        loop {
            let names = node.store().chunk_names_after(after, 1024).unwrap();
            let Some(last) = names.last() else { break };
            after = Some(*last);
            for n in names {
                *counts.entry(n).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Waits (bounded) until every record has exactly `k` copies; returns the
/// last count seen for the assertion message.
async fn wait_for_copies(net: &Testnet, k: usize, records: usize) -> HashMap<XorName, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = copies(net);
        if c.len() == records && c.values().all(|n| *n == k) || Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sizes_copies_node_loss_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path(), 10).await;
    let client = client(&net).await;

    let sizes = [
        0usize,
        1,
        2,
        3,
        4096,
        (1 << 20) + 1,
        (3 << 20) + 7,
        24 << 20,
    ];
    let mut files_put = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data = bytes_for(i as u64, *size);
        let address = put(&client, data.clone()).await;
        assert_eq!(get(&client, &address).await, data, "size {size}");
        files_put.push((address, data));
    }
    // The client sent each chunk once (plus nothing else).
    let records = copies(&net).len();
    let c = wait_for_copies(&net, K, records).await;
    assert!(
        c.values().all(|n| *n == K),
        "every record on exactly K nodes: {c:?}"
    );

    // Kill two members of the close group of the biggest file's root.
    let (address, data) = files_put.last().unwrap().clone();
    let holders: Vec<usize> = (0..net.len())
        .filter(|i| net.node(*i).is_some_and(|n| n.holds(&address.name)))
        .collect();
    assert_eq!(holders.len(), K);
    let before_restart = net.node(holders[0]).unwrap().store().chunk_count();
    net.stop_node(holders[0]).await;
    net.stop_node(holders[1]).await;
    assert_eq!(
        get(&client, &address).await,
        data,
        "readable with two members gone"
    );
    let c = wait_for_copies(&net, K, records).await;
    assert!(
        c.values().all(|n| *n == K),
        "back to K copies on the live nodes: {c:?}"
    );

    // A node restarted from its directory still has and serves its records.
    net.restart_node(holders[0]).await.unwrap();
    let node = net.node(holders[0]).unwrap();
    assert_eq!(node.store().chunk_count(), before_restart);
    assert!(node.holds(&address.name));
    let peer = node.peer_id();
    // The client finds the node's new address through a lookup.
    let group = client.lookup_group(&address.name).await;
    assert!(
        group.contains(&peer),
        "restarted node is back in the close group"
    );
    let chunk = client
        .get_from(peer, address.name)
        .await
        .expect("restarted node serves");
    assert_eq!(*chunk.name(), address.name);
    for (address, data) in &files_put {
        assert_eq!(&get(&client, address).await, data);
    }
    // With the node back, extra copies are handed off: K again, none lost.
    let c = wait_for_copies(&net, K, records).await;
    assert!(
        c.values().all(|n| *n == K),
        "extra copies handed off: {c:?}"
    );

    client.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_replicas_not_found_and_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path(), 10).await;
    let client = client(&net).await;
    let data = bytes_for(7, (2 << 20) + 5);
    let address = put(&client, data.clone()).await;

    // Every member of the root's group but the farthest serves corrupt bytes.
    let group = client.close_group(&address.name).await;
    assert_eq!(group.len(), K);
    for node in net
        .nodes()
        .filter(|n| group[..K - 1].contains(&n.peer_id()))
    {
        node.faults()
            .corrupt_reads
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    assert_eq!(
        get(&client, &address).await,
        data,
        "right bytes despite bad replicas"
    );
    for node in net.nodes() {
        node.faults()
            .corrupt_reads
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    // An address nobody holds: "not found", in bounded time.
    let missing = XorName::from_content(b"nobody stored this");
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        safe_client::ChunkStore::get(&*client, missing),
    )
    .await
    .expect("not-found answer arrives in bounded time");
    assert!(
        matches!(result, Err(StoreError::NotFound(n)) if n == missing),
        "{result:?}"
    );

    // An unreachable network: a clear error naming the peers tried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let addr: safe_network::libp2p::Multiaddr =
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        Connection::connect_to(std::slice::from_ref(&addr), K),
    )
    .await
    .expect("unreachable error arrives in bounded time")
    .err()
    .expect("connecting to nothing fails");
    let msg = err.to_string();
    assert!(
        msg.contains("cannot reach the network") && msg.contains(&addr.to_string()),
        "{msg}"
    );

    client.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_network_is_found_once_and_groups_computed_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path(), 10).await;
    let client = client(&net).await;
    // 40 chunks of content, and the data map's.
    let data = bytes_for(11, 40 << 20);
    let address = put(&client, data.clone()).await;
    let records = copies(&net).len();
    assert!(records >= 40, "{records} records");
    // Ten nodes are fewer than a wide lookup asks for: after it, groups are
    // computed, not looked up.
    let lookups = client.lookups();
    assert!(
        lookups < records as u64 / 2,
        "{lookups} lookups for {records} chunks"
    );
    // Each chunk ends on exactly its close group among all the nodes, as a
    // lookup per chunk would have placed it. `Testnet::up` waits only until
    // every routing table holds K peers, so the client's wide lookup can
    // miss a node that had just joined: the chunk then lands on a group
    // without it, and replication moves it (the member fetches, the outsider
    // hands off). Wait for that placement itself: the copy count alone is K
    // before the hand-over as well as after it.
    let everyone: Vec<_> = net.nodes().map(|n| n.peer_id()).collect();
    let misplaced = || {
        let mut out = Vec::new();
        for name in copies(&net).keys() {
            let group = safe_network::close_group::closest(name, everyone.iter().copied(), K);
            for node in net.nodes() {
                let holds = node.store().contains(name).unwrap();
                if holds != group.contains(&node.peer_id()) {
                    out.push((*name, node.peer_id(), holds));
                }
            }
        }
        out
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wrong = misplaced();
    while !wrong.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        wrong = misplaced();
    }
    assert!(
        wrong.is_empty(),
        "chunks held outside, or missing inside, their close group: {wrong:?}"
    );
    let c = copies(&net);
    assert_eq!(c.len(), records, "{c:?}");
    assert!(c.values().all(|n| *n == K), "{c:?}");
    assert_eq!(get(&client, &address).await, data);
    // A name nobody holds is still "not found", and only after a lookup.
    let missing = XorName::from_content(b"nobody stored this either");
    let before = client.lookups();
    let result = safe_client::ChunkStore::get(&*client, missing).await;
    assert!(
        matches!(result, Err(StoreError::NotFound(n)) if n == missing),
        "{result:?}"
    );
    assert!(client.lookups() > before, "not found after a lookup");
    client.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_nodes_refuse_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestnetConfig::new(dir.path());
    config.nodes = 3;
    config.node.close_group = 3;
    config.node.max_storage = 64 * 1024;
    let net = Testnet::up(config).await.unwrap();
    let client = client_with(&net, 3).await;
    let data = bytes_for(1, 1 << 20);
    let err = files::put_reader(
        client.clone(),
        std::io::Cursor::new(data),
        1 << 20,
        Config::default(),
        Arc::new(|_| {}),
    )
    .await
    .expect_err("put to full nodes fails");
    assert!(err.to_string().contains("full"), "{err}");
    for node in net.nodes() {
        assert!(node.store().used() <= 64 * 1024);
    }
    client.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_short_of_disk_space_refuse_as_full() {
    // A reserve no disk can meet stands in for a disk that is nearly full.
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestnetConfig::new(dir.path());
    config.nodes = 3;
    config.node.close_group = 3;
    config.node.disk_reserve = u64::MAX / 2;
    let net = Testnet::up(config).await.unwrap();
    let client = client_with(&net, 3).await;
    let err = files::put_reader(
        client.clone(),
        std::io::Cursor::new(bytes_for(2, 300_000)),
        300_000,
        Config::default(),
        Arc::new(|_| {}),
    )
    .await
    .expect_err("put to nodes without disk space fails");
    assert!(err.to_string().contains("full"), "{err}");
    for node in net.nodes() {
        assert_eq!(node.store().chunk_count(), 0, "nothing stored");
        assert_eq!(node.store().used(), 0, "no space left reserved");
    }
    client.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_store_fails_does_not_answer_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestnetConfig::new(dir.path());
    config.nodes = 3;
    config.node.close_group = 3;
    let net = Testnet::up(config).await.unwrap();
    let client = client_with(&net, 3).await;
    let chunk = safe_protocol::Chunk::new(bytes_for(5, 100_000)).unwrap();
    let name = *chunk.name();
    safe_client::ChunkStore::put(&*client, chunk).await.unwrap();
    let broken = net.node(0).unwrap();
    assert!(broken.holds(&name));
    // Node 0's segment files become directories: its index still names
    // the chunk, but every read of it fails with an I/O error.
    let segments = net.dir().join("node-0").join("segments");
    for entry in std::fs::read_dir(&segments).unwrap() {
        let path = entry.unwrap().path();
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
    }
    // It answers with a refusal, not "not found" (which clients count
    // towards a "not found" majority), and keeps its index entry.
    let result = client.get_from(broken.peer_id(), name).await;
    assert!(
        matches!(&result, Err(StoreError::Network(m)) if m.contains("node failed to store")),
        "{result:?}"
    );
    assert!(broken.store().contains(&name).unwrap());
    // The chunk is still read from the rest of its group.
    let got = safe_client::ChunkStore::get(&*client, name).await.unwrap();
    assert_eq!(*got.name(), name);
    client.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut config = safe_node::NodeConfig::new(dir.path());
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.metrics = Some("127.0.0.1:0".parse().unwrap());
    config.close_group = 1;
    let node = safe_node::start(config).await.unwrap();
    let mut addrs = Vec::new();
    for _ in 0..100 {
        addrs = node.listen_addrs().await;
        if !addrs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = Arc::new(Connection::connect_to(&addrs, 1).await.unwrap());
    let data = bytes_for(3, 5000);
    let address = put(&client, data.clone()).await;
    assert_eq!(get(&client, &address).await, data);

    let metrics_addr = node.metrics_addr().expect("metrics address");
    let mut http = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    http.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // A 5000-byte file is 3 chunks plus the root.
    assert!(text.contains("\nsafe_chunks 4\n"), "{text}");
    assert!(
        text.contains("safe_requests_total{kind=\"put\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("safe_requests_total{kind=\"get\"} 4"),
        "{text}"
    );
    assert!(text.contains("\nsafe_routing_peers 0\n"), "{text}");
    client.shutdown().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn popular_chunks_are_cached_near_their_group_never_as_replicas() {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path(), 14).await;
    let client = client(&net).await;
    let chunk = safe_protocol::Chunk::new(bytes_for(11, 100_000)).unwrap();
    let name = *chunk.name();
    safe_client::ChunkStore::put(&*client, chunk.clone())
        .await
        .unwrap();
    let ids: Vec<_> = net.nodes().map(|n| n.peer_id()).collect();
    let group = safe_network::close_group::closest(&name, ids, K);

    // Read again and again: after the first misses, ring nodes (outside
    // the group) have it cached and serve it.
    for _ in 0..30 {
        let got = safe_client::ChunkStore::get(&*client, name).await.unwrap();
        assert_eq!(got.bytes(), chunk.bytes());
    }
    let ring_hits: u64 = net
        .nodes()
        .filter(|n| !group.contains(&n.peer_id()))
        .map(|n| n.cache_hits())
        .sum();
    assert!(
        ring_hits > 0,
        "nodes outside the close group served cached copies"
    );
    // A cached copy is not a replica: no node outside the group stores it.
    for n in net.nodes().filter(|n| !group.contains(&n.peer_id())) {
        assert!(!n.store().contains(&name).unwrap(), "cached, not stored");
    }

    // Ring nodes that lie are passed over: every read is still right.
    for n in net.nodes().filter(|n| !group.contains(&n.peer_id())) {
        n.faults().corrupt_reads.store(true, Relaxed);
    }
    for _ in 0..10 {
        let got = safe_client::ChunkStore::get(&*client, name).await.unwrap();
        assert_eq!(
            got.bytes(),
            chunk.bytes(),
            "a bad cached copy is never accepted"
        );
    }
    for n in net.nodes() {
        n.faults().corrupt_reads.store(false, Relaxed);
    }

    // With caching off, reads go to the group alone.
    client.set_popular_caching(false);
    let before: u64 = net.nodes().map(|n| n.cache_hits()).sum();
    for _ in 0..10 {
        safe_client::ChunkStore::get(&*client, name).await.unwrap();
    }
    assert_eq!(net.nodes().map(|n| n.cache_hits()).sum::<u64>(), before);
    client.shutdown().await;
    net.down().await;
}

/// Replication offers from a stranger (a peer not in the node's routing
/// table: here a client) learn nothing of what the node holds or lacks:
/// every name comes back "missing", held or not, and nothing is queued
/// for fetching (issue 15, "no sign to a stranger of which names a node
/// lacks").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_offer_learns_nothing() {
    use safe_protocol::messages::{Request, Response};
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path(), 3).await;
    let store = client(&net).await;
    let chunk = safe_protocol::Chunk::new(bytes_for(21, 10_000)).unwrap();
    safe_client::ChunkStore::put(&*store, chunk.clone())
        .await
        .unwrap();
    let held = *chunk.name();
    let holder = net
        .nodes()
        .find(|n| n.holds(&held))
        .expect("a node holds the chunk");
    let lacked = XorName([0x5a; 32]);
    let answer = store
        .request(
            holder.peer_id(),
            Request::OfferChunks {
                names: vec![held, lacked],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        answer,
        Response::OfferTaken {
            missing: vec![held, lacked]
        },
        "held and lacked look the same to a stranger"
    );
    assert_eq!(holder.fetch_queue(), 0, "and nothing is fetched from it");
    store.shutdown().await;
    net.down().await;
}
