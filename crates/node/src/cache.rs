//! The node's cache of popular chunks (issue 15; the models are Hyphanet's
//! path caching and libp2p-kad's caching of records along lookup paths).
//!
//! A client that reads a chunk again and again offers it
//! (`Request::CacheChunk`) to a few nodes just outside the chunk's close
//! group, and asks them first on later reads; so the more a chunk is
//! read, the more nodes serve it, and its close group is spared.
//!
//! A cached chunk is checked against its name before it is kept, and is
//! only ever served: it is not in the store, not in the `/chunks`
//! listing, never signed for, never offered to other nodes, and never
//! counted as one of the K replicas. The cache is in memory, bounded by
//! bytes (`--cache-size`, [`DEFAULT_CACHE_BYTES`]; 0 turns it off), and
//! evicts with quick_cache's CLOCK-Pro policy, which keeps frequently read
//! entries and resists being flushed by a stream of one-off offers.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use safe_protocol::XorName;

/// Default bytes of chunks a node caches: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

#[derive(Clone)]
struct Weight;

impl Weighter<XorName, Bytes> for Weight {
    fn weight(&self, _: &XorName, bytes: &Bytes) -> u64 {
        // The bytes plus the key and bookkeeping: never zero.
        bytes.len() as u64 + 64
    }
}

/// Popular chunks kept in memory (see the module docs).
pub(crate) struct ChunkCache {
    cache: Option<Cache<XorName, Bytes, Weight>>,
    hits: AtomicU64,
    inserts: AtomicU64,
}

impl ChunkCache {
    /// A cache of at most `bytes` (none if 0).
    pub(crate) fn new(bytes: u64) -> Self {
        // quick_cache sizes its shards from an estimate of the entries:
        // one per 64 KiB (chunks are up to 1 MiB, usually smaller).
        let cache = (bytes > 0)
            .then(|| Cache::with_weighter(((bytes / (64 << 10)) as usize).max(16), bytes, Weight));
        Self {
            cache,
            hits: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
        }
    }

    /// Whether the cache is on.
    pub(crate) fn enabled(&self) -> bool {
        self.cache.is_some()
    }

    /// The cached copy of `name`, if any (counted as a hit).
    pub(crate) fn get(&self, name: &XorName) -> Option<Bytes> {
        let found = self.cache.as_ref()?.get(name);
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Keeps a copy of `bytes`, already checked to be the chunk called
    /// `name`.
    ///
    /// A copy, not the bytes themselves: bytes that arrived in a request
    /// hold their share of the inbound budget
    /// ([`safe_network::codec::INBOUND_BUDGET`]) for as long as they live,
    /// so a cache that kept them would pin up to its whole size of that
    /// budget, and a full budget stops the node reading any request.
    pub(crate) fn insert(&self, name: XorName, bytes: Bytes) {
        if let Some(cache) = &self.cache {
            cache.insert(name, Bytes::copy_from_slice(&bytes));
            self.inserts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bytes held now (weights, so slightly above the chunk bytes).
    pub(crate) fn held(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.weight())
    }

    /// Reads answered from the cache so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Chunks taken into the cache so far.
    pub(crate) fn inserts(&self) -> u64 {
        self.inserts.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_by_bytes_and_can_be_off() {
        let cache = ChunkCache::new(1 << 20);
        for i in 0..64u8 {
            cache.insert(XorName([i; 32]), Bytes::from(vec![i; 64 << 10]));
        }
        assert!(cache.held() <= 1 << 20, "{}", cache.held());
        assert_eq!(cache.inserts(), 64);
        let kept = (0..64u8)
            .filter(|i| cache.get(&XorName([*i; 32])).is_some())
            .count();
        assert!(kept > 0 && kept < 64, "{kept}");
        assert_eq!(cache.hits(), kept as u64);

        // Kept as a copy: the bytes given may be a request's, which hold
        // inbound budget for as long as they live.
        let given = Bytes::from(vec![7u8; 1024]);
        cache.insert(XorName([99; 32]), given.clone());
        let kept = cache.get(&XorName([99; 32])).expect("just inserted");
        assert_eq!(kept, given);
        assert_ne!(
            kept.as_ptr(),
            given.as_ptr(),
            "a copy, not the request's buffer"
        );

        let off = ChunkCache::new(0);
        off.insert(XorName([1; 32]), Bytes::from_static(b"x"));
        assert!(!off.enabled());
        assert!(off.get(&XorName([1; 32])).is_none());
        assert_eq!(off.held(), 0);
    }
}
