//! A peer that speaks the data protocol's name but sends garbage, oversized
//! or over-limit messages: the node rejects each and keeps serving.
//!
//! The peer is a stock libp2p swarm (Noise, `libp2p-yamux`), so the same
//! test shows that nodes, which send larger Yamux frames than
//! `libp2p-yamux` does (`safe_network::muxer`), interoperate with it.

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use safe_network::DATA_PROTOCOL;
use safe_network::libp2p::request_response::{self, Codec, ProtocolSupport};
use safe_network::libp2p::swarm::SwarmEvent;
use safe_network::libp2p::{self, Multiaddr, PeerId, StreamProtocol, noise, tcp, yamux};
use safe_node::testnet::{Testnet, TestnetConfig};
use safe_protocol::messages::{MAX_MESSAGE_SIZE, MAX_OFFER_NAMES, Refusal, Request, Response};
use safe_protocol::mutable::{Limit, MAX_WRITE_SIZE, RecordError};
use safe_protocol::{MAX_CHUNK_SIZE, XorName};
use safe_testkit::client_with;

/// Sends whatever bytes it is given; reads up to 4 MiB back.
#[derive(Clone, Default)]
struct RawCodec;

async fn read_all<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    io.take(4 << 20).read_to_end(&mut v).await?;
    Ok(v)
}

async fn write_all<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.close().await
}

impl Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_all(io).await
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_all(io).await
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        write_all(io, &req).await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        write_all(io, &res).await
    }
}

type RawSwarm = libp2p::Swarm<request_response::Behaviour<RawCodec>>;

fn raw_swarm() -> RawSwarm {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::new(
                [(DATA_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            )
        })
        .unwrap()
        .build()
}

/// Sends `bytes` and returns the decoded answer, or None if the node
/// closed the stream without one.
async fn send(swarm: &mut RawSwarm, peer: PeerId, bytes: Vec<u8>) -> Option<Response> {
    let id = swarm.behaviour_mut().send_request(&peer, bytes);
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) if request_id == id => {
                if response.is_empty() {
                    return None; // stream closed without an answer
                }
                let body = bytes::Bytes::from(response[4..].to_vec());
                return Some(
                    safe_network::codec::decode_response(&body).expect("node answers well-formed"),
                );
            }
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                request_id, ..
            }) if request_id == id => {
                return None;
            }
            _ => {}
        }
    }
}

fn encode(request: &Request) -> Vec<u8> {
    safe_network::codec::encode_frame(request).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_and_oversized_requests_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestnetConfig::new(dir.path());
    config.nodes = 3;
    config.node.close_group = 3;
    let net = Testnet::up(config).await.unwrap();
    let target = net.node(0).unwrap();
    let peer = target.peer_id();
    let addr: Multiaddr = safe_node::testnet::tcp_only(target.listen_addrs().await).remove(0);

    let mut swarm = raw_swarm();
    swarm.dial(addr).unwrap();

    // Garbage, a wrong version byte, a message over the size limit: the
    // stream is closed with no answer.
    assert_eq!(
        send(&mut swarm, peer, b"\x01garbage that is no message".to_vec()).await,
        None
    );
    let mut wrong_version = encode(&Request::GetChunk {
        name: XorName([1; 32]),
    });
    wrong_version[0] = 99;
    assert_eq!(send(&mut swarm, peer, wrong_version).await, None);
    assert_eq!(
        send(&mut swarm, peer, vec![0u8; MAX_MESSAGE_SIZE + 100]).await,
        None
    );
    assert_eq!(send(&mut swarm, peer, Vec::new()).await, None);

    // Well-formed but over a limit: refused with a reason.
    let too_big = Request::PutChunk {
        bytes: vec![7u8; MAX_CHUNK_SIZE + 1].into(),
        replicate: true,
        payment: None,
    };
    assert_eq!(
        send(&mut swarm, peer, encode(&too_big)).await,
        Some(Response::Refused(Refusal::TooLarge))
    );
    let long_offer = Request::OfferChunks {
        names: vec![XorName([2; 32]); MAX_OFFER_NAMES + 1],
    };
    assert_eq!(
        send(&mut swarm, peer, encode(&long_offer)).await,
        Some(Response::Refused(Refusal::OverLimit))
    );
    // Mutable-record writes that are garbage, oversized or over a limit.
    let garbage_write = Request::PutRecord {
        write: b"\x01not a write".to_vec().into(),
        payment: None,
    };
    assert_eq!(
        send(&mut swarm, peer, encode(&garbage_write)).await,
        Some(Response::RecordRefused(RecordError::Malformed))
    );
    let huge_write = Request::PutRecord {
        write: vec![1u8; MAX_WRITE_SIZE + 1].into(),
        payment: None,
    };
    assert_eq!(
        send(&mut swarm, peer, encode(&huge_write)).await,
        Some(Response::RecordRefused(RecordError::TooLarge(
            Limit::WriteSize
        )))
    );
    let long_record_offer = Request::OfferRecords {
        items: vec![(XorName([2; 32]), [0; 32]); MAX_OFFER_NAMES + 1],
    };
    assert_eq!(
        send(&mut swarm, peer, encode(&long_record_offer)).await,
        Some(Response::Refused(Refusal::OverLimit))
    );
    assert_eq!(
        send(
            &mut swarm,
            peer,
            encode(&Request::GetRecord {
                name: XorName([4; 32])
            })
        )
        .await,
        Some(Response::NotFound)
    );
    assert_eq!(
        target.store().chunk_count(),
        0,
        "nothing stored from bad requests"
    );
    assert_eq!(target.store().record_count(), 0);

    // A valid request on the same connection still works...
    let get = Request::GetChunk {
        name: XorName([3; 32]),
    };
    assert_eq!(
        send(&mut swarm, peer, encode(&get)).await,
        Some(Response::NotFound)
    );

    // A full-size chunk crosses both ways between stock `libp2p-yamux`
    // (16 KiB frames) and the node's muxer (256 KiB frames).
    let chunk: bytes::Bytes = (0..MAX_CHUNK_SIZE)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let name = XorName::from_content(&chunk);
    let put = Request::PutChunk {
        bytes: chunk.clone(),
        replicate: true,
        payment: None,
    };
    assert!(matches!(
        send(&mut swarm, peer, encode(&put)).await,
        Some(Response::Stored { .. })
    ));
    assert_eq!(
        send(&mut swarm, peer, encode(&Request::GetChunk { name })).await,
        Some(Response::Chunk(chunk))
    );

    // ...and the network still stores and serves files.
    let client = client_with(&net, 3).await;
    let data = vec![42u8; 300_000];
    let address = safe_testkit::put(&client, data.clone()).await;
    let out = safe_testkit::get(&client, &address).await;
    assert_eq!(out, data);
    client.shutdown().await;
    net.down().await;
}
