//! A hostile node (issue 15): a real libp2p peer, built like a node
//! (Kademlia server, the data protocol), that joins a network and lies.
//!
//! It enters honest routing tables like any node, so it sits in close
//! groups and clients and nodes ask it for data. Every answer it gives is
//! a lie:
//!
//! - puts of chunks and records are "stored", with its own signed
//!   receipt, and dropped;
//! - gets of chunks are answered with wrong bytes of a plausible size;
//! - gets of records are answered with the first copy it ever saw
//!   (stale), or that copy with its entries changed (forged), in turn;
//! - offers are answered "missing everything", and nothing is fetched.
//!
//! And it attacks, every [`ATTACK_EVERY`], every peer it knows with:
//!
//! - an offer of [`MAX_OFFER_NAMES`] chunk names it does not have (so the
//!   peers' replication queues fill with fetches that fail: replication
//!   starvation);
//! - an offer of record digests for records it does not have;
//! - a flood of [`FLOOD`] gets of chunks nobody has.
//!
//! Oversized frames, stalled frame bodies and malformed messages are sent
//! by the raw peer of `tests/malformed.rs` and the codec's tests; claiming
//! to be close to everything is not possible here (closeness is the XOR
//! distance of a peer's id, which every node and client computes itself;
//! placing many ids near an address is `tests/sybil.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use safe_network::close_group::{sign_receipt, sign_record_receipt};
use safe_network::driver::{self, Inbound, Net};
use safe_network::libp2p::identity::Keypair;
use safe_network::libp2p::{Multiaddr, PeerId};
use safe_network::{Role, build_swarm};
use safe_protocol::XorName;
use safe_protocol::coin::pay::PaymentError;
use safe_protocol::messages::{MAX_OFFER_NAMES, Request, Response};
use safe_protocol::mutable::{Record, Write};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bytes_for;

/// How often the hostile node attacks every peer it knows.
pub const ATTACK_EVERY: Duration = Duration::from_secs(2);
/// Gets of missing chunks sent to each peer per attack.
pub const FLOOD: usize = 200;
/// Gets of one flood under way at once.
pub const FLOOD_IN_FLIGHT: usize = 32;

/// What the hostile node has done, for the test's report.
#[derive(Debug, Default)]
pub struct HostileCounts {
    /// Requests it answered with a lie.
    pub lies: AtomicU64,
    /// Attack requests it sent.
    pub attacks: AtomicU64,
}

/// A running hostile node; stop it with [`Hostile::stop`].
pub struct Hostile {
    net: Net,
    tasks: Vec<JoinHandle<()>>,
    /// What it has done.
    pub counts: Arc<HostileCounts>,
}

impl Hostile {
    /// Starts a hostile node on 127.0.0.1 and joins the network through
    /// `contacts`.
    pub async fn join(contacts: &[Multiaddr], seed: u64) -> Self {
        let keypair = Keypair::generate_ed25519();
        let mut swarm = build_swarm(keypair.clone(), Role::Node, 0).expect("a swarm");
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("an address"))
            .expect("listens");
        let (tx, rx) = mpsc::channel(driver::INBOUND_QUEUE);
        let (net, driver_task) = driver::spawn(swarm, Some(tx), safe_network::Admission::new(0));
        for c in contacts {
            let _ = net.dial(c.clone()).await;
        }
        net.bootstrap().await;
        let counts = Arc::new(HostileCounts::default());
        let liar = tokio::spawn(lie(net.clone(), keypair, rx, counts.clone()));
        let attacker = tokio::spawn(attack(net.clone(), counts.clone(), seed));
        Self {
            net,
            tasks: vec![driver_task, liar, attacker],
            counts,
        }
    }

    /// Its peer id.
    pub fn peer_id(&self) -> PeerId {
        self.net.peer_id()
    }

    /// Stops it.
    pub async fn stop(self) {
        for t in &self.tasks[1..] {
            t.abort();
        }
        self.net.shutdown().await;
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Answers every request with a lie.
async fn lie(
    net: Net,
    keypair: Keypair,
    mut rx: mpsc::Receiver<Inbound>,
    counts: Arc<HostileCounts>,
) {
    // The first copy of each record seen (from an honest offer): served
    // stale, or forged, forever after.
    let stale: Arc<Mutex<HashMap<XorName, Record>>> = Arc::default();
    let mut turn = 0u64;
    while let Some(Inbound {
        peer,
        request,
        channel,
    }) = rx.recv().await
    {
        turn += 1;
        let response = match request {
            Request::PutChunk { bytes, .. } | Request::CacheChunk { bytes } => {
                let name = XorName::from_content(&bytes);
                match sign_receipt(&keypair, &name) {
                    Some(r) => Response::Stored { receipts: vec![r] },
                    None => Response::NotFound,
                }
            }
            Request::GetChunk { name } => {
                Response::Chunk(Bytes::from(bytes_for(name.0[0] as u64 + turn, 4096)))
            }
            Request::PutRecord { write, .. } => match Write::decode(&write) {
                Ok(w) => match sign_record_receipt(&keypair, &w.address(), &w.proof()) {
                    Some(r) => Response::RecordStored(r),
                    None => Response::NotFound,
                },
                Err(e) => Response::RecordRefused(e),
            },
            Request::GetRecord { name } => {
                let copy = stale
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&name)
                    .cloned();
                match copy {
                    Some(mut record) => {
                        if turn.is_multiple_of(2) {
                            // Forged: the entries changed, the proofs not.
                            record
                                .state
                                .entries
                                .insert(b"forged".to_vec(), b"by a hostile node".to_vec());
                        }
                        match record.encode() {
                            Ok(b) => Response::Record(Bytes::from(b)),
                            Err(_) => Response::NotFound,
                        }
                    }
                    None => Response::NotFound,
                }
            }
            Request::OfferChunks { names } => Response::OfferTaken { missing: names },
            // Every node it is asked about has been up forever.
            Request::PeerAges { peers } => Response::PeerAges(vec![u64::MAX / 2; peers.len()]),
            // Certificates it made up.
            Request::RelayCerts { peers } => {
                Response::RelayCerts(vec![Bytes::from_static(&[1; 64]); peers.len()])
            }
            // A vote for anything, that is no vote.
            Request::Spend { .. } => Response::Voted(safe_protocol::coin::Vote {
                node: [1; 32],
                sig: vec![2; 64],
            }),
            Request::GetSpend { .. } => Response::NotFound,
            // Takes any payment, and quotes nothing.
            Request::Quote { .. } => Response::PaymentRefused(PaymentError::Free),
            Request::Pay { .. } => Response::Paid {
                remaining: u32::MAX,
            },
            // A proof of nothing.
            Request::Audit { nonce, .. } => Response::AuditProof(nonce),
            Request::OfferRecords { items } => {
                // Keep a first copy of each, to serve stale later.
                let (net, stale) = (net.clone(), stale.clone());
                tokio::spawn(async move {
                    for (name, _) in items.into_iter().take(16) {
                        if stale
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .contains_key(&name)
                        {
                            continue;
                        }
                        if let Ok(Response::Record(b)) =
                            net.request(peer, Request::GetRecord { name }).await
                            && let Ok(r) = Record::decode(&b)
                        {
                            stale
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .entry(name)
                                .or_insert(r);
                        }
                    }
                });
                Response::OfferTaken {
                    missing: Vec::new(),
                }
            }
            Request::GetAccount(_) => Response::NotFound,
        };
        counts.lies.fetch_add(1, Ordering::Relaxed);
        net.respond(channel, response).await;
    }
}

/// Offers of made-up names and floods of gets, to every known peer: a
/// round per peer every [`ATTACK_EVERY`], with [`FLOOD_IN_FLIGHT`] gets
/// under way at once (a new round against a peer starts only once its
/// last one is over, so the attack is steady rather than piling up).
async fn attack(net: Net, counts: Arc<HostileCounts>, seed: u64) {
    let busy: Arc<Mutex<HashSet<PeerId>>> = Arc::default();
    let mut round = 0u64;
    loop {
        tokio::time::sleep(ATTACK_EVERY).await;
        round += 1;
        for peer in net.routing_peers().await {
            if !busy.lock().unwrap_or_else(|e| e.into_inner()).insert(peer) {
                continue;
            }
            let (net, counts, busy) = (net.clone(), counts.clone(), busy.clone());
            tokio::spawn(async move {
                let made_up = |i: u64| {
                    let mut b = Vec::with_capacity(24);
                    b.extend_from_slice(&seed.to_le_bytes());
                    b.extend_from_slice(&round.to_le_bytes());
                    b.extend_from_slice(&i.to_le_bytes());
                    XorName::from_content(&b)
                };
                let names: Vec<XorName> = (0..MAX_OFFER_NAMES as u64).map(made_up).collect();
                let items = names.iter().take(64).map(|n| (*n, [7u8; 32])).collect();
                let offers = futures::future::join(
                    net.request_unpaced(peer, Request::OfferChunks { names }),
                    net.request_unpaced(peer, Request::OfferRecords { items }),
                );
                let flood = futures::stream::iter(0..FLOOD as u64).for_each_concurrent(
                    FLOOD_IN_FLIGHT,
                    |i| {
                        let net = net.clone();
                        let name = made_up(1 << 32 | i);
                        async move {
                            let _ = net.request_unpaced(peer, Request::GetChunk { name }).await;
                        }
                    },
                );
                let _answers = futures::future::join(offers, flood).await;
                counts
                    .attacks
                    .fetch_add(2 + FLOOD as u64, Ordering::Relaxed);
                busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&peer);
            });
        }
    }
}
