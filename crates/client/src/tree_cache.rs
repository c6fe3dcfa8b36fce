//! What earlier tree puts stored, so that putting a tree again sends only
//! what changed ([`crate::Client::put_tree`] with a cache file).
//!
//! Two kinds of entries map a 32-byte key to the root chunk name a put
//! gave:
//! - a file, keyed by its absolute path, size, modification and change
//!   times (nanoseconds) and inode: the same key means the same bytes, as
//!   `rsync` and `git` assume;
//! - a manifest, keyed by the BLAKE3 of its encoded bytes.
//!
//! A hit is trusted only once the network confirms it holds that root
//! chunk, or an ancestor from the cache that stands for it (see
//! [`crate::Client::put_tree`]); since a root is stored only after
//! everything under it, that means the whole file (or directory) is there.
//! A wrong or stale cache therefore costs a re-upload, never a broken
//! snapshot.
//!
//! File format (version 1): the codec's format byte, then the postcard
//! list of `(key, name)` pairs. A missing, damaged or other-version file
//! is an empty cache. It is rewritten whole (temp file and rename) after
//! each put, keeping the entries that put used and then older ones up to
//! [`MAX_CACHE_ENTRIES`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use safe_protocol::XorName;
use safe_protocol::codec;

/// Format version of the cache file.
pub const CACHE_FORMAT: u8 = 1;
/// Most entries kept.
pub const MAX_CACHE_ENTRIES: usize = 1 << 20;
/// Largest cache file read.
const MAX_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// A cache key.
pub type Key = [u8; 32];

/// Earlier puts' results, and this put's.
pub(crate) struct PutCache {
    path: Option<PathBuf>,
    old: HashMap<Key, XorName>,
    used: Mutex<HashMap<Key, XorName>>,
}

impl PutCache {
    /// A cache saved to `path` that starts empty, whatever the file holds.
    pub(crate) fn empty(path: Option<&Path>) -> Self {
        Self {
            path: path.map(Path::to_path_buf),
            old: HashMap::new(),
            used: Mutex::default(),
        }
    }

    /// The cache in `path` (`None`: no cache at all).
    pub(crate) fn open(path: Option<&Path>) -> Self {
        let old = path
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| {
                codec::decode::<Vec<(Key, XorName)>>(CACHE_FORMAT, &bytes, MAX_CACHE_BYTES).ok()
            })
            .map(|pairs| pairs.into_iter().collect())
            .unwrap_or_default();
        Self {
            path: path.map(Path::to_path_buf),
            old,
            used: Mutex::default(),
        }
    }

    /// The key of a file as the walk found it.
    pub(crate) fn file_key(path: &Path, meta: &std::fs::Metadata) -> Key {
        let mut h = blake3::Hasher::new_derive_key("safe put cache file v1");
        h.update(path.as_os_str().as_encoded_bytes());
        h.update(&meta.len().to_le_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            for n in [
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
            ] {
                h.update(&n.to_le_bytes());
            }
            h.update(&meta.ino().to_le_bytes());
            h.update(&meta.dev().to_le_bytes());
        }
        #[cfg(not(unix))]
        if let Ok(t) = meta.modified() {
            h.update(format!("{t:?}").as_bytes());
        }
        *h.finalize().as_bytes()
    }

    /// The key of a manifest's encoded bytes.
    pub(crate) fn manifest_key(bytes: &[u8]) -> Key {
        blake3::derive_key("safe put cache manifest v1", bytes)
    }

    /// What an earlier put stored under `key`.
    pub(crate) fn get(&self, key: &Key) -> Option<XorName> {
        self.old.get(key).copied()
    }

    /// Notes what this put stored (or confirmed) under `key`.
    pub(crate) fn note(&self, key: Key, name: XorName) {
        if self.path.is_some() {
            self.used
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, name);
        }
    }

    /// Writes the cache: this put's entries, then older ones up to the
    /// limit. A failure only costs the next put its shortcuts.
    pub(crate) fn save(self) -> std::io::Result<()> {
        let Some(path) = self.path else {
            return Ok(());
        };
        let mut pairs: Vec<(Key, XorName)> = self
            .used
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .into_iter()
            .collect();
        let room = MAX_CACHE_ENTRIES.saturating_sub(pairs.len());
        let fresh: std::collections::HashSet<Key> = pairs.iter().map(|(k, _)| *k).collect();
        pairs.extend(
            self.old
                .into_iter()
                .filter(|(k, _)| !fresh.contains(k))
                .take(room),
        );
        let bytes = codec::encode(CACHE_FORMAT, &pairs).map_err(std::io::Error::other)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_entries_come_back_and_damage_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        let cache = PutCache::open(Some(&path));
        assert!(cache.get(&[1; 32]).is_none());
        cache.note([1; 32], XorName([2; 32]));
        cache.save().unwrap();
        let cache = PutCache::open(Some(&path));
        assert_eq!(cache.get(&[1; 32]), Some(XorName([2; 32])));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(PutCache::open(Some(&path)).get(&[1; 32]).is_none());
    }
}
