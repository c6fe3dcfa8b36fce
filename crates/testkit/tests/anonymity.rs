//! Anonymous reads through 3-hop relay circuits (issue 16), on an
//! in-process network of 12 real nodes on 127.0.0.1.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use safe_client::ChunkStore;
use safe_client::anonymous::{AnonError, Circuit, HOPS, Relay, choose_path};
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
    let network = safe_network::network_id();
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
    let network = safe_network::network_id();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_survives_garbage_and_floods_and_keeps_relaying() {
    use futures::StreamExt;
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    use safe_network::libp2p::identity::Keypair;
    use safe_network::libp2p::swarm::SwarmEvent;
    use safe_network::libp2p::swarm::dial_opts::DialOpts;
    use safe_relay::cell::{CELL, LinkCell, LinkCommand};

    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path(), 12).await;
    let client = client(&net).await;
    let network = safe_network::network_id();
    let chunk = Chunk::new(bytes_for(9, 100_000)).unwrap();
    let name = *chunk.name();
    client.put(chunk.clone()).await.unwrap();
    let sample = full_sample(&client, net.len(), network).await;
    let path = choose_path(&sample, &name, K).unwrap();
    let target = path[0].clone();

    // A raw relay link to the guard-to-be, from a stranger.
    let mut swarm = safe_network::build_relay_swarm(Keypair::generate_ed25519()).unwrap();
    let addrs: Vec<_> = target
        .addrs
        .iter()
        .filter(|a| safe_network::is_tcp(a))
        .cloned()
        .collect();
    swarm
        .dial(DialOpts::peer_id(target.peer).addresses(addrs).build())
        .unwrap();
    loop {
        if let SwarmEvent::ConnectionEstablished { peer_id, .. } = swarm.select_next_some().await
            && peer_id == target.peer
        {
            break;
        }
    }
    let mut control = swarm.behaviour().new_control();
    let driver = tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    let stream = control
        .open_stream(target.peer, safe_network::RELAY_PROTOCOL)
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.split();
    let send = |cell: LinkCell| {
        let mut bytes = vec![0u8; CELL];
        cell.encode((&mut bytes[..]).try_into().unwrap());
        bytes
    };
    // Garbage CREATEs, valid CREATEs past the per-link cap, and relay
    // cells for circuits that do not exist.
    let mut out = Vec::new();
    for id in 1..=40u32 {
        out.extend(send(
            LinkCell::with_prefix(id, LinkCommand::Create, &[7; 41]).unwrap(),
        ));
    }
    for id in 100..100 + 80u32 {
        let key = safe_network::close_group::peer_to_key(&target.peer).unwrap();
        let (_, create) =
            safe_relay::handshake::start(&target.cert, &key, &network, now()).unwrap();
        out.extend(send(
            LinkCell::with_prefix(id, LinkCommand::Create, &create).unwrap(),
        ));
    }
    for id in 1000..1050u32 {
        out.extend(send(
            LinkCell::with_prefix(id, LinkCommand::Relay, &[1; 100]).unwrap(),
        ));
    }
    writer.write_all(&out).await.unwrap();
    writer.flush().await.unwrap();
    // Every CREATE is answered: DESTROY for the 40 bad ones, CREATED for
    // the per-link cap of the valid ones and DESTROY for the rest; cells
    // for no circuit get nothing back (no amplification).
    let mut created = 0;
    let mut destroyed = 0;
    let mut buf = vec![0u8; CELL];
    for _ in 0..(40 + 80) {
        tokio::time::timeout(Duration::from_secs(20), reader.read_exact(&mut buf))
            .await
            .expect("the relay answers every cell")
            .unwrap();
        match LinkCell::decode(&buf).unwrap().command {
            LinkCommand::Created => created += 1,
            LinkCommand::Destroy => destroyed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, safe_node::relay::MAX_CIRCUITS_PER_LINK);
    assert_eq!(destroyed, 40 + 80 - created);
    let more = tokio::time::timeout(Duration::from_secs(2), reader.read_exact(&mut buf)).await;
    assert!(more.is_err(), "nothing answers cells for no circuit");
    // A malformed cell (an unknown link command) closes the link.
    let mut bad = send(LinkCell::with_prefix(1, LinkCommand::Padding, &[]).unwrap());
    bad[4] = 99;
    writer.write_all(&bad).await.unwrap();
    writer.flush().await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(20), reader.read_exact(&mut buf)).await;
    assert!(matches!(closed, Ok(Err(_))), "the link is closed");
    driver.abort();

    // The relay still carries a client's circuit, as the guard.
    let mut circuit = Circuit::build(&path, network).await.unwrap();
    assert_eq!(&circuit.get_chunk(name).await.unwrap(), chunk.bytes());
    net.down().await;
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_and_files_are_read_and_written_through_circuits_and_lying_exits_change_nothing() {
    use safe_client::{Client, MutableError, NewRecord, SigningKey};
    use safe_protocol::mutable::{RecordError, record_address};
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path(), 12).await;
    let conn = client(&net).await;
    let network = safe_network::network_id();
    let direct = Client::from((*conn).clone());
    let owner = SigningKey::from_bytes(&[3; 32]);
    let stranger = SigningKey::from_bytes(&[4; 32]);
    let new = NewRecord {
        name: b"anonymous records".to_vec(),
        tag: 0,
        owners: Vec::new(),
        threshold: 1,
        public_append: true,
    };
    let address = direct.create_record(new, &owner).await.unwrap();
    direct
        .set_entry(address, "colour", "blue", std::slice::from_ref(&owner))
        .await
        .unwrap();
    // Every node's certificate is known before the anonymous client samples.
    full_sample(&conn, net.len(), network).await;
    let anon = Client::from((*conn).clone()).anonymous(network, None);

    let r = anon.get_record(address).await.unwrap();
    assert_eq!(r.state.entries[b"colour".as_slice()], b"blue");
    // An owner's write and a stranger's append, through circuits; seen
    // by a direct reader.
    anon.set_entry(address, "colour", "red", std::slice::from_ref(&owner))
        .await
        .unwrap();
    anon.append(address, b"hello".to_vec(), std::slice::from_ref(&stranger))
        .await
        .unwrap();
    let seen = direct.get_record(address).await.unwrap();
    assert_eq!(seen.state.entries[b"colour".as_slice()], b"red");
    assert_eq!(seen.appends.len(), 1);
    // Nothing there: "not found" through two exits. A refused write: the
    // members' refusal, reported by two exits.
    // An account record is never handed out through an exit (its login
    // entry is a password verifier): as if it were absent.
    let account = direct
        .create_account(
            "anonymous-test",
            "correct horse battery",
            safe_client::RootSecret::generate().unwrap(),
            |_| {},
        )
        .await
        .unwrap();
    let hidden = anon.get_record(account.address()).await;
    assert!(
        matches!(hidden, Err(MutableError::NotFound(_))),
        "{hidden:?}"
    );
    let missing = record_address(b"nobody made this", 0);
    let none = anon.get_record(missing).await;
    assert!(matches!(none, Err(MutableError::NotFound(_))), "{none:?}");
    let refused = anon
        .set_entry(address, "colour", "green", std::slice::from_ref(&stranger))
        .await;
    assert!(
        matches!(refused, Err(MutableError::Refused(RecordError::NotOwner))),
        "{refused:?}"
    );

    // A third of the nodes now lie as exits (they flip bytes of every
    // answer): each write and read is still exactly right.
    for n in net.nodes().step_by(3) {
        n.faults().lying_exit.store(true, Ordering::Relaxed);
    }
    for i in 0..4u8 {
        anon.set_entry(address, "n", vec![i], std::slice::from_ref(&owner))
            .await
            .unwrap();
        let r = anon.get_record(address).await.unwrap();
        assert_eq!(r.state.entries[b"n".as_slice()], vec![i]);
    }
    assert_eq!(
        direct.get_record(address).await.unwrap().state.entries[b"n".as_slice()],
        vec![3]
    );
    // A file stored through circuits (each chunk's exit puts it to its
    // close group and hands back the members' receipts), with the liars
    // still among the exits: read back directly, the same bytes, each
    // chunk on its close group.
    let data = bytes_for(21, 3 << 20);
    let put = anon.put_bytes(data.clone()).await.unwrap();
    assert_eq!(
        direct.get_bytes(&put.address, u64::MAX).await.unwrap(),
        data
    );
    assert!(put.chunks >= 4, "{}", put.chunks);
    anon.shutdown().await;
    net.down().await;
}
