//! Connection exhaustion (issue 15): one machine holding many idle TCP
//! sockets open to a node (no handshake) must not lock other clients out.
//! Before the per-source limits, 140 such sockets filled the node's 128
//! places for connections in negotiation and every new client got
//! "connection reset". The nodes here apply the limits to loopback (a
//! test-only switch), the attacker's sockets come from 127.0.0.2 and the
//! honest client from 127.0.0.1.

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
