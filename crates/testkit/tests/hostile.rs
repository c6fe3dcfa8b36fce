//! Hostile nodes (issue 15): two real libp2p peers join a 10-node
//! network as nodes and lie to everyone (wrong chunk bytes, stale and
//! forged records, receipts for data they drop, offers of chunks they do
//! not have) while flooding every honest node with made-up offers and
//! gets (`safe_testkit::hostile`). Clients must still store and read
//! everything right, honest nodes must keep their queues within their
//! limits, and replication must still restore copies after a node goes.
//!
//! Two, so that they are a minority of every close group (K = 5) however
//! their ids fall: a group with a hostile majority can refuse or hide
//! anything, and keeping attackers from gathering in one group is the
//! work of the Sybil defences (ids that cost work, `tests/sybil.rs`), not
//! of the protocol checked here.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use safe_client::{Client, Connection, NewRecord, SigningKey};
use safe_protocol::XorName;
use safe_testkit::hostile::Hostile;
use safe_testkit::{K, bytes_for, testnet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_nodes_cannot_make_clients_accept_wrong_data() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("SAFE_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path(), 10).await;
    let contacts = net.contacts().await;
    let mut hostile = Vec::new();
    for seed in 0..2 {
        hostile.push(Hostile::join(&contacts, seed).await);
    }
    let liars: Vec<_> = hostile.iter().map(|h| h.peer_id()).collect();
    // They are in honest routing tables: the attack is real.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut known = 0;
        for n in net.nodes() {
            let peers = n.routing_peers().await;
            known += liars.iter().filter(|l| peers.contains(l)).count();
        }
        if known >= 2 * 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hostile nodes joined routing tables"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Wait for the first round of floods.
    while hostile
        .iter()
        .any(|h| h.counts.attacks.load(Ordering::Relaxed) == 0)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Clients store files and records while the attack goes on, and read
    // everything back: once, or for SAFE_HOSTILE_SECS (the long run).
    let secs: u64 = std::env::var("SAFE_HOSTILE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let client = Client::from(Connection::connect_to(&contacts, K).await.unwrap());
    let reader = Client::from(Connection::connect_to(&contacts, K).await.unwrap());
    let key = SigningKey::from_bytes(&[9; 32]);
    let (mut files, mut records) = (Vec::new(), HashMap::new());
    let mut round = 0u64;
    loop {
        for i in 0..20u64 {
            let seed = round * 100 + i;
            let data = bytes_for(100 + seed, 1 + (seed as usize * 53_000) % 900_000);
            let report = client
                .put_bytes(data.clone())
                .await
                .expect("put under attack");
            files.push((report.address, data));
        }
        for i in 0..5 {
            let address = client
                .create_record(NewRecord::named(format!("hostile test {round} {i}")), &key)
                .await
                .expect("create under attack");
            let mut version = 0;
            for v in 0..3 {
                let r = client
                    .set_entry(address, "n", format!("{v}"), std::slice::from_ref(&key))
                    .await
                    .expect("update under attack");
                version = r.state.version;
            }
            records.insert(address, version);
        }

        // Everything reads back right, whoever answers.
        for (address, data) in &files {
            assert_eq!(&reader.get_bytes(address, 1 << 30).await.unwrap(), data);
        }
        for (address, version) in &records {
            let r = reader.get_record(*address).await.unwrap();
            assert!(r.state.version >= *version, "not stale");
            assert!(
                !r.state.entries.contains_key(b"forged".as_slice()),
                "not forged"
            );
            assert_eq!(r.state.entries.get(b"n".as_slice()), Some(&b"2".to_vec()));
        }
        round += 1;
        if secs > 0 {
            eprintln!(
                "hostile: round {round} done after {:.0} s: {} files, {} records",
                started.elapsed().as_secs_f64(),
                files.len(),
                records.len()
            );
        }
        if Instant::now() >= until {
            break;
        }
    }

    // Honest queues stayed within their limits.
    for n in net.nodes() {
        assert!(n.fetch_queue() <= safe_node::replication::FETCH_QUEUE);
    }
    let lies: u64 = hostile
        .iter()
        .map(|h| h.counts.lies.load(Ordering::Relaxed))
        .sum();
    let attacks: u64 = hostile
        .iter()
        .map(|h| h.counts.attacks.load(Ordering::Relaxed))
        .sum();
    assert!(
        lies > 0 && attacks > 0,
        "the hostile nodes were asked and attacked"
    );

    // Replication still works through the floods: a node goes, and every
    // chunk it held is back on each honest member of its close group.
    let gone = net.node(0).unwrap().peer_id();
    let held: Vec<XorName> = net
        .node(0)
        .unwrap()
        .store()
        .chunk_names_after(None, 100_000)
        .unwrap();
    net.stop_node(0).await;
    let mut everyone: Vec<_> = net.nodes().map(|n| n.peer_id()).collect();
    everyone.extend(&liars);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut short = 0;
        for name in &held {
            let group = safe_network::close_group::closest(name, everyone.clone(), K);
            short += net
                .nodes()
                .filter(|n| group.contains(&n.peer_id()) && !n.holds(name))
                .count();
        }
        if short == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{short} honest group members still lack chunks of the node that went ({gone})"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "hostile: {round} rounds, {} files and {} records written and read back right; \
         {lies} lies told, {attacks} attack requests sent; {} chunks of the stopped node restored",
        files.len(),
        records.len(),
        held.len()
    );
    for h in hostile {
        h.stop().await;
    }
    // The attack and the requests over, the nodes (still up, caches
    // full) hold no request bytes: the inbound budget is all back.
    assert_eq!(safe_testkit::inbound_bytes_after_requests().await, 0);
    net.down().await;
}
