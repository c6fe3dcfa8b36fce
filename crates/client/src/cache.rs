//! Size-bounded caches of verified, content-addressed data, for clients
//! that read the same things again and again (the gateway serving a
//! site's pages).
//!
//! Only immutable data is cached: chunks, which are verified against their
//! name before they are stored here, and decoded public manifests, which
//! are a function of their (content-addressed) name. A cached entry can
//! therefore never be stale or wrong; the caches only trade memory for
//! round trips. Each is bounded by bytes and evicts with quick_cache's
//! CLOCK-Pro policy (frequently read entries stay).

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use safe_protocol::manifest::{Entry, FileData, Manifest, Node};
use safe_protocol::{Chunk, XorName};

/// Default bytes of chunks kept ([`Caches::new`]).
pub const DEFAULT_CHUNK_CACHE_BYTES: u64 = 64 << 20;
/// Default (estimated) bytes of decoded manifests kept.
pub const DEFAULT_MANIFEST_CACHE_BYTES: u64 = 16 << 20;
/// Estimated bytes one manifest entry takes in memory, decoded.
const ENTRY_BYTES: u64 = 160;

#[derive(Clone)]
struct ChunkWeight;

impl Weighter<XorName, Chunk> for ChunkWeight {
    fn weight(&self, _: &XorName, chunk: &Chunk) -> u64 {
        // The bytes plus the key and bookkeeping: never zero, so every
        // entry can be evicted.
        chunk.bytes().len() as u64 + 64
    }
}

#[derive(Clone)]
struct ManifestWeight;

impl Weighter<XorName, Arc<Manifest>> for ManifestWeight {
    fn weight(&self, _: &XorName, m: &Arc<Manifest>) -> u64 {
        m.entries().iter().map(entry_weight).sum::<u64>() + 64
    }
}

/// What one entry holds in memory: its name, inline bytes and link
/// target, and the rest of it ([`ENTRY_BYTES`]).
fn entry_weight(e: &Entry) -> u64 {
    let held = match &e.node {
        Node::File {
            data: FileData::Inline(bytes),
            ..
        } => bytes.len(),
        Node::Symlink { target, .. } => target.len(),
        _ => 0,
    };
    ENTRY_BYTES + (e.name.len() + held) as u64
}

/// The caches of one client (shared by its clones).
pub struct Caches {
    chunks: Cache<XorName, Chunk, ChunkWeight>,
    manifests: Cache<XorName, Arc<Manifest>, ManifestWeight>,
}

impl Caches {
    /// Caches holding up to `chunk_bytes` of chunks and about
    /// `manifest_bytes` of decoded manifests.
    pub fn new(chunk_bytes: u64, manifest_bytes: u64) -> Self {
        Self {
            // The item estimates size the tables; they grow if needed.
            chunks: Cache::with_weighter(
                (chunk_bytes / (64 << 10)).max(16) as usize,
                chunk_bytes,
                ChunkWeight,
            ),
            manifests: Cache::with_weighter(
                (manifest_bytes / 4096).max(16) as usize,
                manifest_bytes,
                ManifestWeight,
            ),
        }
    }

    /// The cached chunk `name`.
    pub fn chunk(&self, name: &XorName) -> Option<Chunk> {
        self.chunks.get(name)
    }

    /// Keeps a chunk (callers pass only chunks verified against their
    /// name: [`Chunk`] values are).
    pub fn keep_chunk(&self, chunk: &Chunk) {
        self.chunks.insert(*chunk.name(), chunk.clone());
    }

    /// The cached public manifest `name`.
    pub fn manifest(&self, name: &XorName) -> Option<Arc<Manifest>> {
        self.manifests.get(name)
    }

    /// Keeps a decoded public manifest.
    pub fn keep_manifest(&self, name: XorName, manifest: Arc<Manifest>) {
        self.manifests.insert(name, manifest);
    }

    /// Bytes of chunks held now.
    pub fn chunk_bytes(&self) -> u64 {
        self.chunks.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn chunks_are_bounded_by_bytes() {
        let caches = Caches::new(1 << 20, 1 << 20);
        let mut names = Vec::new();
        for i in 0..64u32 {
            let chunk = Chunk::new(Bytes::from(vec![i as u8; 64 << 10])).unwrap();
            names.push(*chunk.name());
            caches.keep_chunk(&chunk);
            assert!(caches.chunk_bytes() <= 1 << 20, "{}", caches.chunk_bytes());
        }
        let held = names.iter().filter(|n| caches.chunk(n).is_some()).count();
        assert!(held > 0 && held < 64, "{held} of 64 held");
        let last = caches.chunk(&names[63]).unwrap();
        assert_eq!(last.bytes()[0], 63);
    }
}
