//! The shared state of a running node, which every request handler and
//! background task borrows: its network handle and key, its store, its
//! counters, its fetch queue and its fault switches.
//!
//! A module of its own (not the crate root) so that the modules that
//! handle chunks, records and replication depend on it and not on each
//! other or on [`crate::start`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use safe_network::driver::Net;
use safe_network::libp2p::{PeerId, identity::Keypair};
use safe_protocol::XorName;

use crate::faults::Faults;
use crate::fetch::{Fetcher, Scope};
use crate::metrics::Metrics;
use crate::store::{NodeStore, NodeStoreError};

/// How long a node waits for another node's answer when it asks one
/// itself: the first member of a close group waiting for the others'
/// receipts before answering the client with those it has, or a member
/// fetching a peer's copy of a record.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Places beyond K in which a node still takes a record create: clients
/// and nodes see the network a little differently (a node may know a
/// closer peer that the client's lookup missed).
pub const GROUP_MARGIN: usize = 2;

/// Shared state of a running node.
pub(crate) struct Node {
    pub(crate) net: Net,
    pub(crate) keypair: Keypair,
    pub(crate) store: Arc<NodeStore>,
    pub(crate) k: usize,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) faults: Faults,
    pub(crate) fetches: Fetcher,
    /// Popular chunks kept for clients (not replicas).
    pub(crate) cache: crate::cache::ChunkCache,
    /// Per-address rate limits of account requests.
    pub(crate) limits: crate::accounts::RateLimits,
    /// Set while puts fail for want of disk space (logged once per spell).
    pub(crate) disk_full: AtomicBool,
    /// This node's relay keys (anonymous access).
    pub(crate) relay_keys: crate::relay::RelayKeys,
    /// Relay certificates of routing peers, for clients.
    pub(crate) certs: crate::relay::CertCache,
    /// The node key as an ed25519 signing key (votes on spends).
    pub(crate) signing: ed25519_dalek::SigningKey,
    /// The network's genesis key: none, no currency.
    pub(crate) genesis: Option<[u8; 32]>,
    /// Where storage payments to this node go.
    pub(crate) reward: safe_protocol::coin::WalletAddress,
    /// Who offered which chunk (a charging node fetches a chunk only once
    /// enough members vouch for it).
    pub(crate) offers: crate::payments::OfferBook,
    /// When the node started (it votes on spends only after a while).
    pub(crate) started: std::time::Instant,
    /// Spends seen certified.
    pub(crate) verified: crate::spends::Verified,
    /// Storage audits of other members, per peer.
    pub(crate) audits: crate::audit::AuditBook,
}

impl Node {
    /// Notes a write refused for want of disk space: logged once per
    /// spell, not per chunk.
    pub(crate) fn note_disk_full(&self, e: &NodeStoreError) {
        if !self.disk_full.swap(true, Ordering::Relaxed) {
            tracing::warn!("refusing writes until disk space is freed: {e}");
        }
    }

    /// Notes a write that took disk space: a later full disk is logged again.
    pub(crate) fn note_disk_ok(&self) {
        self.disk_full.store(false, Ordering::Relaxed);
    }

    /// The other members of `name`'s close group: the `k` closest to it
    /// among this node and its routing table, this node left out.
    pub(crate) async fn group_peers(&self, name: &XorName) -> Vec<PeerId> {
        let me = self.net.peer_id();
        let mut peers = self.net.routing_peers().await;
        peers.push(me);
        safe_network::close_group::closest(name, peers, self.k)
            .into_iter()
            .filter(|p| *p != me)
            .collect()
    }

    /// Whether `peer` (or this node) is among the K closest to `name` in
    /// this node's view (this node included): a member of its close group.
    pub(crate) async fn is_near(&self, peer: &PeerId, name: &XorName) -> bool {
        let mut peers = self.net.routing_peers().await;
        peers.push(self.net.peer_id());
        safe_network::close_group::closest(name, peers, self.k).contains(peer)
    }

    /// Whether this node is among the K + [`GROUP_MARGIN`] closest to
    /// `name` in its own view: near enough that a client (whose view may
    /// differ a little) can rightly count it in the close group.
    pub(crate) async fn in_group(&self, name: &XorName) -> bool {
        let me = self.net.peer_id();
        let mut peers = self.net.routing_peers().await;
        peers.push(me);
        safe_network::close_group::closest(name, peers, self.k + GROUP_MARGIN).contains(&me)
    }

    /// Whom an offer from `peer` may make this node fetch from, and what,
    /// as its routing table stands now.
    pub(crate) async fn fetch_scope(&self, peer: PeerId) -> Scope {
        Scope::new(
            self.net.peer_id(),
            peer,
            self.net.routing_peers().await,
            self.k,
        )
    }

    /// Runs a blocking store operation off the async threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&NodeStore) -> Result<T, NodeStoreError> + Send + 'static,
    ) -> Result<T, NodeStoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(NodeStoreError::Task)?
    }
}
