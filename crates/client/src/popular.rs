//! Reads of popular chunks (issue 15; the models are Hyphanet's path
//! caching and libp2p-kad's caching along lookup paths).
//!
//! - Every read asks the chunk's close group in a random order, not
//!   closest first, so reads spread over all K holders.
//! - A chunk this client has read [`HOT_AFTER`] times is *popular*. Its
//!   *ring* is the [`RING`] nodes closest to its name outside its close
//!   group, among the nodes the client knows (every client that knows the
//!   network finds the same ring). A read of a popular chunk first asks
//!   one ring node at random (for at most [`RING_TIMEOUT`]); only if that
//!   fails does it go to the group. After such a miss the client offers
//!   the verified chunk (`Request::CacheChunk`) to [`OFFER_TO`] random
//!   ring nodes, never the node that served it, at most
//!   [`MAX_OFFERS_IN_FLIGHT`] at a time (more are skipped, not queued).
//!
//! So the more a chunk is read, the more of its ring caches it, and reads
//! of it are spread over the ring instead of falling on its group. Every
//! copy is verified against its name whichever node serves it, so a ring
//! node can make a read slower, never wrong. Nodes keep cached chunks in a
//! bounded memory cache and never count them as replicas
//! (`safe_node::cache`). Mutable records are never cached on nodes: every
//! record read and write goes to its close group.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use safe_network::libp2p::PeerId;
use safe_protocol::XorName;
use tokio::sync::Semaphore;

/// Reads by one client after which a chunk counts as popular.
pub const HOT_AFTER: u32 = 2;
/// Nodes outside a chunk's close group that may cache it.
pub const RING: usize = 8;
/// Ring nodes a popular chunk is offered to after a ring miss.
pub const OFFER_TO: usize = 2;
/// How long a ring node may take to answer before the group is asked.
pub const RING_TIMEOUT: Duration = Duration::from_secs(2);
/// Cache offers sent at once; more are skipped.
pub const MAX_OFFERS_IN_FLIGHT: usize = 4;
/// Chunks whose reads are counted; past this the counts start afresh.
pub const MAX_TRACKED: usize = 4096;

/// A client's read counts and offer budget.
pub(crate) struct Popular {
    reads: Mutex<HashMap<XorName, u32>>,
    pub(crate) offers: Arc<Semaphore>,
    enabled: AtomicBool,
}

impl Default for Popular {
    fn default() -> Self {
        Self {
            reads: Mutex::default(),
            offers: Arc::new(Semaphore::new(MAX_OFFERS_IN_FLIGHT)),
            enabled: AtomicBool::new(true),
        }
    }
}

impl Popular {
    /// Counts a read of `name`; true if the chunk is popular now.
    pub(crate) fn note_read(&self, name: &XorName) -> bool {
        if !self.enabled.load(Ordering::Relaxed) {
            return false;
        }
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        if reads.len() >= MAX_TRACKED && !reads.contains_key(name) {
            reads.clear();
        }
        let n = reads.entry(*name).or_default();
        *n = n.saturating_add(1);
        *n >= HOT_AFTER
    }

    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }
}

/// A random index below `n` (0 if `n` is 0).
pub(crate) fn random_below(n: usize) -> usize {
    let mut b = [0u8; 8];
    // The OS's generator cannot fail on Linux once it is seeded; if it
    // did, the first entry is as good a choice as any.
    if getrandom::fill(&mut b).is_err() || n == 0 {
        return 0;
    }
    (u64::from_le_bytes(b) % n as u64) as usize
}

/// `peers` in a random order (Fisher–Yates).
pub(crate) fn shuffled(mut peers: Vec<PeerId>) -> Vec<PeerId> {
    for i in (1..peers.len()).rev() {
        peers.swap(i, random_below(i + 1));
    }
    peers
}

/// The ring of `name`: the [`RING`] peers of `known` closest to it that
/// are not in `group`.
pub(crate) fn ring(name: &XorName, known: Vec<PeerId>, group: &[PeerId]) -> Vec<PeerId> {
    let near = safe_network::close_group::closest(name, known, group.len() + RING);
    near.into_iter()
        .filter(|p| !group.contains(p))
        .take(RING)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_popular_from_its_second_read_unless_off() {
        let p = Popular::default();
        let name = XorName([1; 32]);
        assert!(!p.note_read(&name));
        assert!(p.note_read(&name));
        p.set_enabled(false);
        assert!(!p.note_read(&XorName([2; 32])));
        assert!(!p.note_read(&XorName([2; 32])));
    }

    #[test]
    fn the_ring_is_outside_the_group_and_shuffles_keep_every_peer() {
        let peers: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
        let name = XorName([7; 32]);
        let group = safe_network::close_group::closest(&name, peers.clone(), 5);
        let r = ring(&name, peers.clone(), &group);
        assert_eq!(r.len(), RING);
        assert!(r.iter().all(|p| !group.contains(p)));
        let mut s = shuffled(peers.clone());
        s.sort();
        let mut sorted = peers;
        sorted.sort();
        assert_eq!(s, sorted);
    }
}
