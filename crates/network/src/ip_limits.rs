//! Per-address limits on incoming connections (issue 15, connection
//! exhaustion).
//!
//! The global caps of `connection_limits` (128 incoming connections being
//! negotiated, 512 established) let one machine take them all: 140 idle
//! TCP sockets, with no handshake, locked every new client out of a node.
//! So each source address (an IPv4 address, or an IPv6 /64, which one
//! host usually has whole) may have at most [`MAX_PENDING_PER_SOURCE`]
//! incoming connections in negotiation and [`MAX_ESTABLISHED_PER_SOURCE`]
//! established; more are refused at once (the socket is closed). With the
//! handshake bounded by [`HANDSHAKE_TIMEOUT`], an idle socket holds its
//! place for at most that long.
//!
//! Past [`crate::MAX_CONNECTIONS`] established connections, only peers in
//! the routing table get in ([`RESERVED_FOR_KNOWN`] more places are kept
//! for them), so a node whose places are taken by strangers still hears
//! from its neighbours.
//!
//! Loopback sources are exempt unless the swarm is built with
//! `limit_loopback` (local testnets run every node on 127.0.0.1; tests of
//! these limits turn it on). Refusals are counted ([`denied`]; the node's
//! `safe_connections_denied_total`).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, ListenFailure};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};

/// Established connections kept past [`crate::MAX_CONNECTIONS`] for peers
/// in the routing table: a node whose places are all taken (by clients,
/// or by an attacker from many addresses) still lets its neighbours in.
pub const RESERVED_FOR_KNOWN: u32 = 64;
/// Incoming connections one source may have in negotiation at once.
pub const MAX_PENDING_PER_SOURCE: usize = 8;
/// Established incoming connections one source may have.
pub const MAX_ESTABLISHED_PER_SOURCE: usize = 32;
/// How long a connection's handshake (transport security and
/// multiplexing, and an outgoing dial) may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

static DENIED: AtomicU64 = AtomicU64::new(0);

/// Incoming connections refused by these limits in this process so far.
pub fn denied() -> u64 {
    DENIED.load(Ordering::Relaxed)
}

/// Where a connection comes from, as the limits count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    V4([u8; 4]),
    /// The /64 prefix.
    V6([u8; 8]),
}

/// The source of `addr` (its first IP component), unless it is exempt.
fn source_of(addr: &Multiaddr, limit_loopback: bool) -> Option<Source> {
    Some(match crate::diversity::counted_ip(addr, limit_loopback)? {
        IpAddr::V4(ip) => Source::V4(ip.octets()),
        IpAddr::V6(ip) => {
            let o = ip.octets();
            Source::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
        }
    })
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("too many {what} connections from {source_addr}")]
pub struct TooMany {
    what: &'static str,
    source_addr: String,
}

/// The limits (see the module docs).
pub struct Behaviour {
    limit_loopback: bool,
    /// Established connections, both ways.
    total: usize,
    /// Peers in the routing table: they may take the places kept past
    /// [`crate::MAX_CONNECTIONS`] ([`RESERVED_FOR_KNOWN`]).
    known: HashSet<PeerId>,
    pending: HashMap<ConnectionId, Source>,
    established: HashMap<ConnectionId, Source>,
    pending_per: HashMap<Source, usize>,
    established_per: HashMap<Source, usize>,
}

impl Behaviour {
    /// Limits that exempt loopback sources unless `limit_loopback`.
    pub fn new(limit_loopback: bool) -> Self {
        Self {
            limit_loopback,
            total: 0,
            known: HashSet::new(),
            pending: HashMap::new(),
            established: HashMap::new(),
            pending_per: HashMap::new(),
            established_per: HashMap::new(),
        }
    }

    /// The peers now in the routing table (who may use the places kept
    /// for known peers).
    pub fn set_known(&mut self, peers: HashSet<PeerId>) {
        self.known = peers;
    }

    fn release(map: &mut HashMap<Source, usize>, source: Source) {
        if let Some(n) = map.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&source);
            }
        }
    }

    fn deny(what: &'static str, addr: &Multiaddr) -> ConnectionDenied {
        DENIED.fetch_add(1, Ordering::Relaxed);
        ConnectionDenied::new(TooMany {
            what,
            source_addr: addr.to_string(),
        })
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(source) = source_of(remote, self.limit_loopback) else {
            return Ok(());
        };
        let n = self.pending_per.entry(source).or_default();
        if *n >= MAX_PENDING_PER_SOURCE {
            return Err(Self::deny("pending", remote));
        }
        *n += 1;
        self.pending.insert(connection_id, source);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if let Some(source) = self.pending.remove(&connection_id) {
            Self::release(&mut self.pending_per, source);
        }
        if let Some(source) = source_of(remote, self.limit_loopback)
            && self.established_per.get(&source).copied().unwrap_or(0) >= MAX_ESTABLISHED_PER_SOURCE
        {
            return Err(Self::deny("established", remote));
        }
        if self.total >= crate::MAX_CONNECTIONS as usize && !self.known.contains(&peer) {
            return Err(Self::deny("(the rest are kept for known peers)", remote));
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(_) => self.total += 1,
            FromSwarm::ConnectionClosed(_) => self.total = self.total.saturating_sub(1),
            _ => {}
        }
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                connection_id,
                endpoint: ConnectedPoint::Listener { send_back_addr, .. },
                ..
            }) => {
                if let Some(source) = source_of(send_back_addr, self.limit_loopback) {
                    *self.established_per.entry(source).or_default() += 1;
                    self.established.insert(connection_id, source);
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                if let Some(source) = self.established.remove(&connection_id) {
                    Self::release(&mut self.established_per, source);
                }
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                if let Some(source) = self.pending.remove(&connection_id) {
                    Self::release(&mut self.pending_per, source);
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_group_ipv6_by_64_and_exempt_loopback_unless_asked() {
        let a: Multiaddr = "/ip6/2001:db8:1:2:aaaa::1/tcp/1".parse().unwrap();
        let b: Multiaddr = "/ip6/2001:db8:1:2:bbbb::9/tcp/2".parse().unwrap();
        let c: Multiaddr = "/ip6/2001:db8:1:3::1/tcp/2".parse().unwrap();
        assert_eq!(source_of(&a, false), source_of(&b, false));
        assert_ne!(source_of(&a, false), source_of(&c, false));
        let lo: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        assert_eq!(source_of(&lo, false), None);
        assert_eq!(source_of(&lo, true), Some(Source::V4([127, 0, 0, 1])));
    }

    #[test]
    fn pending_connections_are_capped_per_source_and_released() {
        let mut b = Behaviour::new(false);
        let local: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().unwrap();
        let remote: Multiaddr = "/ip4/192.0.2.7/tcp/5".parse().unwrap();
        let other: Multiaddr = "/ip4/192.0.2.8/tcp/5".parse().unwrap();
        let ids: Vec<ConnectionId> = (0..MAX_PENDING_PER_SOURCE + 1)
            .map(|_| ConnectionId::new_unchecked(rand_id()))
            .collect();
        for id in &ids[..MAX_PENDING_PER_SOURCE] {
            b.handle_pending_inbound_connection(*id, &local, &remote)
                .unwrap();
        }
        let before = denied();
        assert!(
            b.handle_pending_inbound_connection(ids[MAX_PENDING_PER_SOURCE], &local, &remote)
                .is_err()
        );
        assert!(denied() > before);
        // Another source is not affected.
        b.handle_pending_inbound_connection(ConnectionId::new_unchecked(rand_id()), &local, &other)
            .unwrap();
        // A handshake that ends frees the place.
        b.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &local,
            send_back_addr: &remote,
            error: &libp2p::swarm::ListenError::Aborted,
            connection_id: ids[0],
            peer_id: None,
        }));
        b.handle_pending_inbound_connection(ids[MAX_PENDING_PER_SOURCE], &local, &remote)
            .unwrap();
    }

    #[test]
    fn the_last_places_are_kept_for_known_peers() {
        let mut b = Behaviour::new(false);
        let local: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().unwrap();
        let remote: Multiaddr = "/ip4/192.0.2.9/tcp/5".parse().unwrap();
        let (stranger, neighbour) = (PeerId::random(), PeerId::random());
        b.set_known([neighbour].into());
        let id = || ConnectionId::new_unchecked(rand_id());
        assert!(
            b.handle_established_inbound_connection(id(), stranger, &local, &remote)
                .is_ok()
        );
        b.total = crate::MAX_CONNECTIONS as usize;
        assert!(
            b.handle_established_inbound_connection(id(), stranger, &local, &remote)
                .is_err(),
            "no room for a stranger"
        );
        assert!(
            b.handle_established_inbound_connection(id(), neighbour, &local, &remote)
                .is_ok(),
            "a known peer still gets in"
        );
    }

    fn rand_id() -> usize {
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(1 << 40);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}
