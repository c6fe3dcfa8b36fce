//! The libp2p side of `safe`, shared by nodes and clients.
//!
//! - [`Behaviour`]: Kademlia (`/safe/kad/1`) for peer routing, identify
//!   (`/safe/id/1`) so peers learn each other's listen addresses, and the
//!   request-response data protocol (`/safe/data/1`) with [`DataCodec`].
//! - [`build_swarm`]: QUIC, and TCP with TLS or Noise and Yamux, on tokio.
//! - [`close_group`]: who is responsible for a name.
//! - [`identity`] and [`contacts`]: keys and bootstrap files on disk.
//!
//! Positions in the XOR space follow Kademlia: a node sits at SHA-256 of its
//! peer id (derived from its public key, so it cannot choose its place) and
//! data named `n` sits at SHA-256 of `n`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod close_group;
pub mod codec;
pub mod contacts;
pub mod diversity;
pub mod driver;
pub mod identity;
pub mod ip_limits;
pub mod muxer;
pub mod peer_limits;
pub mod tls;

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{StreamProtocol, Swarm, identify, kad, noise, request_response, tcp};

pub use codec::DataCodec;
pub use libp2p;
pub use libp2p_stream;

/// Kademlia protocol name: our own, so we never mix with other networks.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/safe/kad/1");
/// Data protocol name.
pub const DATA_PROTOCOL: StreamProtocol = StreamProtocol::new("/safe/data/1");
/// Identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/safe/id/1";

/// Default close group size K: each chunk lives on the K closest nodes.
pub const DEFAULT_CLOSE_GROUP: usize = 5;

/// How long one data request may take before it fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent data-protocol streams per connection (inbound and outbound).
pub const MAX_CONCURRENT_STREAMS: usize = 64;
/// Most established connections a peer keeps in all, but for
/// [`ip_limits::RESERVED_FOR_KNOWN`] more kept for peers in its routing
/// table.
pub const MAX_CONNECTIONS: u32 = 512;
/// Most established connections with any one peer.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// Most incoming connections still being negotiated.
pub const MAX_PENDING_INCOMING: u32 = 128;

/// Connections idle this long are closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

mod behaviour {
    #![allow(missing_docs)] // the derive generates an undocumented event enum
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::{connection_limits, identify, kad, request_response};

    /// Everything a safe peer speaks.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Peers banned for floods ([`crate::peer_limits`]): their
        /// connections are closed and refused.
        pub blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
        /// Caps on incoming connections per source address
        /// ([`crate::ip_limits`]).
        pub per_source: crate::ip_limits::Behaviour,
        /// Caps on connections (see [`super::MAX_CONNECTIONS`]).
        pub limits: connection_limits::Behaviour,
        /// Peer routing.
        pub kad: kad::Behaviour<kad::store::MemoryStore>,
        /// Exchange of listen addresses and protocols.
        pub identify: identify::Behaviour,
        /// Chunk transfer.
        pub data: request_response::Behaviour<super::DataCodec>,
        /// Relay links (`/safe/relay/1`, anonymous access): raw streams of
        /// fixed-size cells, opened and accepted through its `Control`.
        pub relay: libp2p_stream::Behaviour,
    }
}
pub use behaviour::{Behaviour, BehaviourEvent};

/// Who may enter routing tables and lookup answers, and how incoming
/// connections are limited. The first two are the same on every node and
/// client of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// A peer id is routed to only if it meets this work difficulty
    /// ([`identity::valid_id`]).
    pub id_difficulty: u32,
    /// Places one network block may hold per k-bucket and per lookup
    /// answer ([`diversity`]); 0 turns the limit off.
    pub max_per_subnet: usize,
    /// Count loopback sources like any other for the per-source
    /// connection limits ([`ip_limits`]; off: local testnets run every
    /// node on 127.0.0.1, and their tests turn it on).
    pub limit_loopback_connections: bool,
    /// Count loopback addresses like any other for the address-block
    /// limits ([`diversity`]; off for the same reason; their tests give
    /// nodes addresses in different 127.x.y.0/24 blocks and turn it on).
    pub limit_loopback_subnets: bool,
    /// Inbound data requests a second one peer may send before it is
    /// refused, and banned if it keeps on ([`peer_limits`]); 0 turns the
    /// limit off.
    pub request_rate: u32,
}

impl Admission {
    /// `id_difficulty`, the default diversity limit, loopback exempt.
    pub fn new(id_difficulty: u32) -> Self {
        Self {
            id_difficulty,
            max_per_subnet: diversity::DEFAULT_MAX_PER_SUBNET,
            limit_loopback_connections: false,
            limit_loopback_subnets: false,
            request_rate: peer_limits::DEFAULT_REQUEST_RATE,
        }
    }

    /// Whether peers enter the routing table only through
    /// [`learn_from_identify`] (which applies these checks) rather than
    /// whenever Kademlia sees them.
    fn manual_inserts(&self) -> bool {
        self.id_difficulty > 0 || self.max_per_subnet > 0
    }
}

/// Whether a swarm serves the DHT (a node) or only uses it (a client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A node: Kademlia server mode, answers data requests.
    Node,
    /// A client: Kademlia client mode, never asked to route or store.
    Client,
}

/// Why a swarm could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the network stack: {0}")]
pub struct BuildError(String);

/// Builds a swarm with QUIC and TCP+(TLS or Noise)+Yamux transports on tokio.
/// `id_difficulty`: the network's node id difficulty
/// ([`identity::valid_id`]); with more than 0, only peers whose ids meet it
/// enter the routing table (by [`learn_from_identify`]).
pub fn build_swarm(
    keypair: Keypair,
    role: Role,
    id_difficulty: u32,
) -> Result<Swarm<Behaviour>, BuildError> {
    build_swarm_with(keypair, role, Admission::new(id_difficulty))
}

/// [`build_swarm`] with every admission setting given.
pub fn build_swarm_with(
    keypair: Keypair,
    role: Role,
    admission: Admission,
) -> Result<Swarm<Behaviour>, BuildError> {
    let err = |e: &dyn std::fmt::Display| BuildError(e.to_string());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            // Offered in this order: TLS (AES-GCM on AES hardware, see
            // `tls`), then Noise for peers without it.
            (tls::Tls::new, noise::Config::new),
            muxer::Config::default,
        )
        .map_err(|e| err(&e))?
        .with_quic()
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mut kad_config = kad::Config::new(KAD_PROTOCOL);
            kad_config.set_query_timeout(Duration::from_secs(10));
            kad_config.set_periodic_bootstrap_interval(Some(Duration::from_secs(30)));
            // Kademlia is used for routing only: ignore remote record and
            // provider writes, which would otherwise fill a memory store.
            kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
            if admission.manual_inserts() {
                // Peers enter the routing table only through
                // `learn_from_identify`, which checks their ids' work and
                // their address blocks.
                kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
            }
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad_config,
            );
            kad.set_mode(Some(match role {
                Role::Node => kad::Mode::Server,
                Role::Client => kad::Mode::Client,
            }));
            let identify = identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.to_string(),
                key.public(),
            ));
            let data = request_response::Behaviour::new(
                [(
                    DATA_PROTOCOL,
                    match role {
                        Role::Node => request_response::ProtocolSupport::Full,
                        Role::Client => request_response::ProtocolSupport::Outbound,
                    },
                )],
                request_response::Config::default()
                    .with_request_timeout(REQUEST_TIMEOUT)
                    .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS),
            );
            let limits = libp2p::connection_limits::Behaviour::new(
                libp2p::connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(MAX_CONNECTIONS + ip_limits::RESERVED_FOR_KNOWN))
                    .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                    .with_max_pending_incoming(Some(MAX_PENDING_INCOMING)),
            );
            Behaviour {
                blocked: Default::default(),
                per_source: ip_limits::Behaviour::new(admission.limit_loopback_connections),
                limits,
                kad,
                identify,
                data,
                relay: libp2p_stream::Behaviour::new(),
            }
        })
        .map_err(|e| err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .with_connection_timeout(ip_limits::HANDSHAKE_TIMEOUT)
        .build();
    Ok(swarm)
}

/// The relay protocol of anonymous access: a stream per relay link,
/// carrying nothing but `safe_relay::CELL`-byte cells.
pub const RELAY_PROTOCOL: StreamProtocol = StreamProtocol::new("/safe/relay/1");

/// The network id relay certificates are bound to. One for every network
/// for now: nodes and clients cannot yet name their network (a testnet and
/// the default network differ only in their id difficulty, which a client
/// does not always know), and an id that differed between them would leave
/// a client with no relays. Certificates still name their node and period;
/// binding them to a network's genesis is for when networks are named.
pub fn network_id() -> [u8; 32] {
    blake3::derive_key("safe network id v1", b"")
}

/// A swarm that speaks only the relay protocol, for an anonymous client's
/// link to its guard: a fresh identity each time, TCP + (TLS or Noise) +
/// Yamux, no Kademlia, identify or data protocol, so the guard learns
/// nothing that ties it to the client's other connections.
pub fn build_relay_swarm(keypair: Keypair) -> Result<Swarm<libp2p_stream::Behaviour>, BuildError> {
    let err = |e: &dyn std::fmt::Display| BuildError(e.to_string());
    Ok(libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            (tls::Tls::new, noise::Config::new),
            muxer::Config::default,
        )
        .map_err(|e| err(&e))?
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .map_err(|e| err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .with_connection_timeout(ip_limits::HANDSHAKE_TIMEOUT)
        .build())
}

/// Adds what identify learned about a peer to Kademlia, if the peer is a
/// node (speaks our Kademlia protocol) whose id meets the difficulty, and
/// whose address block does not already have
/// [`Admission::max_per_subnet`] places in its k-bucket. Returns true if
/// it was added.
///
/// TCP addresses are preferred: measured on loopback, TCP+Noise+Yamux moves
/// chunks faster than QUIC (docs/BENCHMARKS.md), so a peer's QUIC addresses
/// are used only when it has no TCP one.
pub fn learn_from_identify(
    kad: &mut kad::Behaviour<kad::store::MemoryStore>,
    peer: &libp2p::PeerId,
    info: &identify::Info,
    admission: &Admission,
) -> bool {
    if !info.protocols.contains(&KAD_PROTOCOL) {
        return false;
    }
    if !identity::valid_id(peer, admission.id_difficulty) {
        tracing::debug!(%peer, "a peer whose id does not meet the network's difficulty is not routed to");
        return false;
    }
    let dialable: Vec<&libp2p::Multiaddr> = info
        .listen_addrs
        .iter()
        .filter(|a| is_dialable(a))
        .collect();
    let has_tcp = dialable.iter().any(|a| is_tcp(a));
    let chosen: Vec<&libp2p::Multiaddr> = dialable
        .into_iter()
        .filter(|a| !has_tcp || is_tcp(a))
        .collect();
    if admission.max_per_subnet > 0
        && let Some(block) =
            diversity::first_subnet(chosen.iter().copied(), admission.limit_loopback_subnets)
        && let Some(bucket) = kad.kbucket(*peer)
    {
        let mut present = false;
        let mut same = 0;
        for entry in bucket.iter() {
            if entry.node.key.preimage() == peer {
                present = true;
            } else if diversity::first_subnet(
                entry.node.value.iter(),
                admission.limit_loopback_subnets,
            ) == Some(block)
            {
                same += 1;
            }
        }
        if !present && same >= admission.max_per_subnet {
            tracing::debug!(%peer, ?block, "its address block has its share of this k-bucket");
            diversity::note_refused();
            return false;
        }
    }
    for addr in chosen {
        kad.add_address(peer, addr.clone());
    }
    true
}

/// True for a TCP address.
pub fn is_tcp(addr: &libp2p::Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_)))
}

/// Filters out unspecified addresses (0.0.0.0, ::) that identify may report.
fn is_dialable(addr: &libp2p::Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}
