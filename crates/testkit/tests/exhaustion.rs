//! Connection exhaustion (issue 15): one machine holding many idle TCP
//! sockets open to a node (no handshake) must not lock other clients out.
//! Before the per-source limits, 140 such sockets filled the node's 128
//! places for connections in negotiation and every new client got
//! "connection reset". The nodes here apply the limits to loopback (a
//! test-only switch), the attacker's sockets come from 127.0.0.2 and the
//! honest client from 127.0.0.1. Request floods are in the second test.

use std::time::Duration;

use safe_network::ip_limits::{HANDSHAKE_TIMEOUT, MAX_PENDING_PER_SOURCE, denied};
use safe_protocol::Chunk;
use safe_testkit::{bytes_for, start, testnet_config};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_one_source_do_not_lock_others_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = testnet_config(dir.path(), 3);
    config.node.admission.limit_loopback_connections = true;
    let net = start(config).await;
    let contacts = net.contacts().await;
    let target = contacts[0]
        .iter()
        .find_map(|p| match p {
            safe_network::libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .expect("a TCP contact");

    // 300 idle sockets from 127.0.0.2: more than twice the node's global
    // cap on connections in negotiation.
    let before = denied();
    let mut idle = Vec::new();
    for _ in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        if let Ok(s) = socket
            .connect(format!("127.0.0.1:{target}").parse().unwrap())
            .await
        {
            idle.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = denied() - before;
    assert!(
        refused >= (300 - MAX_PENDING_PER_SOURCE) as u64,
        "all but {MAX_PENDING_PER_SOURCE} were refused at once: {refused}"
    );

    // An honest client still gets in, and stores and reads.
    let client = tokio::time::timeout(
        Duration::from_secs(20),
        safe_client::Connection::connect_to(&contacts[..1], 3),
    )
    .await
    .expect("connects in time")
    .expect("a client from another address connects despite the idle sockets");
    let chunk = Chunk::new(bytes_for(3, 10_000)).unwrap();
    safe_client::ChunkStore::put(&client, chunk.clone())
        .await
        .unwrap();
    let got = safe_client::ChunkStore::get(&client, *chunk.name())
        .await
        .unwrap();
    assert_eq!(got.bytes(), chunk.bytes());

    // The sockets the node let into negotiation are closed once the
    // handshake timeout passes: every idle socket ends.
    tokio::time::sleep(HANDSHAKE_TIMEOUT + Duration::from_secs(1)).await;
    for s in &mut idle {
        let mut buf = [0u8; 64];
        let ended = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // the node's side of a handshake
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "an idle socket was closed by the node");
    }
    client.shutdown().await;
    net.down().await;
}

/// Request floods (issue 15): a peer sending far over the node's request
/// rate is refused with `PeerRateLimited` (without taking room in the
/// node's queue), then banned: disconnected and refused. A client that
/// keeps to the rate is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_refused_then_banned_and_others_are_served() {
    use futures::StreamExt;
    use safe_protocol::XorName;
    use safe_protocol::messages::{Refusal, Request, Response};

    let dir = tempfile::tempdir().unwrap();
    let mut config = testnet_config(dir.path(), 3);
    // A low rate, so that the flood is over it at once: bursts of 100, and
    // a ban after about 100 refusals more.
    config.node.admission.request_rate = 50;
    let net = start(config).await;
    let contacts = net.contacts().await;
    let target = net.node(0).unwrap().peer_id();
    let (limited_before, banned_before) = (
        safe_network::peer_limits::limited(),
        safe_network::peer_limits::banned(),
    );

    // The flooder: a bare network stack that sends every request once,
    // whatever the answer (the client's own requests pause and retry when
    // refused for their rate; see below).
    let swarm = safe_network::build_swarm(
        safe_network::libp2p::identity::Keypair::generate_ed25519(),
        safe_network::Role::Client,
        0,
    )
    .unwrap();
    let (flooder, _task) =
        safe_network::driver::spawn(swarm, None, safe_network::Admission::new(0));
    flooder.dial(contacts[0].clone()).await.unwrap();
    let (mut answered, mut limited, mut failed) = (0, 0, 0);
    let mut next = 0u64;
    // Batches of 32 gets of missing chunks, until the node stops
    // answering this peer at all (or 20 s pass).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while failed == 0 && std::time::Instant::now() < deadline {
        let batch = (0..32).map(|_| {
            next += 1;
            let mut name = [0u8; 32];
            name[..8].copy_from_slice(&next.to_be_bytes());
            flooder.request_unpaced(
                target,
                Request::GetChunk {
                    name: XorName(name),
                },
            )
        });
        for answer in futures::future::join_all(batch).await {
            match answer {
                Ok(Response::NotFound) => answered += 1,
                Ok(Response::Refused(Refusal::PeerRateLimited)) => limited += 1,
                Ok(other) => panic!("unexpected answer {other:?}"),
                Err(_) => failed += 1,
            }
        }
    }
    assert!(
        answered >= 100,
        "its burst was served first: {answered} answered"
    );
    assert!(limited > 0, "then it was refused: {limited} refused");
    assert!(failed > 0, "then it was cut off");
    // The ban comes after more than a burst's worth (100) of refusals; the
    // last few answers are lost with the connection the ban closes.
    let refused = safe_network::peer_limits::limited() - limited_before;
    assert!(
        refused > 100 && refused >= limited,
        "{refused} refused in all"
    );
    assert_eq!(safe_network::peer_limits::banned() - banned_before, 1);
    // It stays banned: its next request gets no answer, not even a refusal.
    let after = flooder
        .request_unpaced(
            target,
            Request::GetChunk {
                name: XorName([1; 32]),
            },
        )
        .await;
    assert!(after.is_err(), "a banned peer is refused: {after:?}");

    // Another client stores and reads through the same node, and asks it
    // for twice its burst as fast as it will answer: refused requests
    // pause and go again, so every one is answered, and the client is
    // never banned.
    let client = safe_client::Connection::connect_to(&contacts[..1], 3)
        .await
        .unwrap();
    let banned_before = safe_network::peer_limits::banned();
    let limited_before = safe_network::peer_limits::limited();
    let names: Vec<XorName> = (0..200u8).map(|i| XorName([i; 32])).collect();
    let answers: Vec<_> = futures::stream::iter(names)
        .map(|name| client.request(target, Request::GetChunk { name }))
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(Response::NotFound))),
        "every request answered: {:?}",
        answers
            .iter()
            .find(|a| !matches!(a, Ok(Response::NotFound)))
    );
    let paced = safe_network::peer_limits::limited() - limited_before;
    assert!(paced > 0, "it did go over the rate");
    eprintln!(
        "flood: {answered} answered, {limited} refused, then cut off ({refused} refusals counted by the node); \
         paced client: 200 of 200 answered after {paced} refusals, not banned"
    );
    assert_eq!(safe_network::peer_limits::banned(), banned_before);
    let chunk = Chunk::new(bytes_for(4, 10_000)).unwrap();
    safe_client::ChunkStore::put(&client, chunk.clone())
        .await
        .unwrap();
    assert_eq!(
        safe_client::ChunkStore::get(&client, *chunk.name())
            .await
            .unwrap()
            .bytes(),
        chunk.bytes()
    );
    flooder.shutdown().await;
    client.shutdown().await;
    net.down().await;
}
