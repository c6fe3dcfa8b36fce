//! A node's chunks and mutable records on disk.
//!
//! Layout (format 2):
//!
//! ```text
//! DIR/segments/         chunk bodies, appended to segment files
//!                       (see `segments.rs` for the entry format)
//! DIR/index.redb        redb table `meta`: "format" -> 2
//!                       redb table `chunks`: name -> (segment, offset, length)
//!                       redb table `segments`: segment -> watermark
//!                       redb table `mutable`: address -> digest (32 bytes)
//!                       followed by the encoded mutable record
//! ```
//!
//! Mutable records live in redb itself (they are small and change in
//! place): each write is read, validated and written in one transaction
//! committed durably before the node answers, so an acknowledged write
//! survives `kill -9` and power loss.
//!
//! A chunk put appends the body to the active segment (with `O_DIRECT`, so
//! it is on its way to the disk before the put returns, and a killed
//! process loses nothing), then records its place in the index with a fast
//! commit. [`NodeStore::flush`], called every second by the node, fsyncs
//! the segments written since the last flush and commits the index durably
//! together with each segment's watermark (the length made durable): one
//! round of disk flushes per second instead of several per chunk. So a
//! stored chunk survives `kill -9` at once and a power cut after at most a
//! second (the other K-1 copies cover that second).
//!
//! Opening the store checks every segment past its watermark: entries
//! there are re-hashed and indexed, damaged ones dropped, a torn tail cut
//! off; index entries pointing past the end of their segment are dropped.
//! So an acknowledged chunk is never lost to a crash, and the index never
//! names bytes that are not there. The index's own page checksums are
//! checked on every open as well: a damaged index is repaired by redb if it
//! can be, and refused with an error otherwise (see `open_index`).
//!
//! Removed chunks leave dead space in their segment; once at least half of
//! a sealed segment is dead, each [`NodeStore::flush`] copies up to
//! [`COMPACT_BYTES`] of its live chunks to the newest segment, and deletes
//! it once the copies are durable. Capacity counts the bytes a chunk takes
//! in its segment (header block and padding included).
//!
//! A format 1 store (one file per chunk under `DIR/records/`) is migrated
//! when opened: each file is verified and appended, and the old directory
//! removed once the new index is durable.
//!
//! This module holds the store itself and the chunk path (put, get,
//! remove, flush, space accounting); each other job has a file of its own:
//! `index` (the redb tables and paging), `recovery` (checking segments on
//! open), `compaction`, `migration` (format 1) and `records` (mutable
//! records and their group commit). Tests are in `tests.rs`.

mod compaction;
mod index;
mod migration;
mod payments;
mod records;
mod recovery;
mod spends;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redb::{Database, Durability, ReadableTable};
use safe_protocol::{Chunk, MAX_CHUNK_SIZE, XorName};

pub use compaction::COMPACT_BYTES;
use index::{WATERMARKS, entry, index_err, location};
pub use payments::{Credit, Earning, read_earnings};
use records::RecordJob;
pub use spends::HeldSpend;

use crate::segments::{self, Location, ReadError, Segments};

/// The store format this program writes.
pub const FORMAT: u64 = 2;

/// redb page cache: small and fixed, so memory does not grow with what is stored.
const INDEX_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeStoreError {
    /// The capacity limit would be exceeded.
    #[error("node storage is full ({used} of {capacity} bytes used)")]
    Full {
        /// Bytes in use.
        used: u64,
        /// The limit.
        capacity: u64,
    },
    /// The disk ran out of space before the capacity limit was reached.
    #[error("the disk holding the store is full ({used} bytes stored)")]
    DiskFull {
        /// Bytes in use.
        used: u64,
    },
    /// Chunk files of a format 1 store could not be read or removed
    /// (during migration).
    #[error("migrating {path}: {source}")]
    Migration {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Segment files failed.
    #[error("{context}: {source}")]
    Segments {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// Another running node has the directory open.
    #[error("{0} is in use by another running node")]
    InUse(PathBuf),
    /// The store was not closed cleanly (its node was killed) and cannot
    /// be read until it is recovered, which its node does when it starts.
    #[error("the store in {0} was not closed cleanly; its node recovers it when it next starts")]
    Unclean(PathBuf),
    /// The directory holds a store of a format this program does not know.
    #[error("{dir} holds store format {found}; this program reads formats 1 and {FORMAT}")]
    Format {
        /// The directory.
        dir: PathBuf,
        /// The format found.
        found: u64,
    },
    /// The index failed. Shared (`Arc`) because one failed group commit
    /// fails every write in it.
    #[error("store index: {0}")]
    Index(#[source] std::sync::Arc<redb::Error>),
    /// A record to be written does not encode (over a limit).
    #[error("record does not encode: {0}")]
    Encode(#[source] safe_protocol::mutable::RecordError),
    /// A record write was dropped before its commit (its change panicked,
    /// or the commit's transaction could not be opened).
    #[error("record write was dropped")]
    WriteDropped,
    /// A blocking store task could not be run to its end.
    #[error("store task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// An entry in the index is not in a form this program wrote.
    #[error("corrupt index entry: {0}")]
    Corrupt(String),
}

fn seg_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeStoreError {
    let context = context.into();
    move |source| NodeStoreError::Segments { context, source }
}

/// Disk space a write leaves free by default (`--disk-reserve`), for the
/// index and compaction (which copies up to [`COMPACT_BYTES`] per flush):
/// a disk that fills mid-commit leaves redb refusing every write until the
/// node is restarted, so writes are refused (as
/// [`NodeStoreError::DiskFull`]) before that can happen.
pub const DISK_RESERVE: u64 = 128 * 1024 * 1024;

/// Bytes free to this process on the filesystem holding `dir`, if known.
fn available_space(dir: &Path) -> Option<u64> {
    rustix::fs::statvfs(dir)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

/// Whether a write failed for want of disk space (or quota), which makes
/// the node full rather than broken.
fn out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Opens (creating if needed) the index in `dir` and checks it.
///
/// redb checks its page checksums only when it repairs after a crash:
/// damage done while the node was down (bit rot, a stray write) would be
/// read as it is, and a record is not re-verified when served (a chunk
/// is). So every open checks them all (one read of the index: about
/// 50 ms for a million chunks); redb repairs what it can (a commit it can
/// roll back: chunks indexed since are found again in their segments by
/// recovery, past that commit's watermarks) and the store refuses to open
/// over anything else, with [`NodeStoreError::Index`].
///
/// redb takes some damage for a bug of its own and panics on it (its
/// debug builds always, release builds in a few places, `unreachable!`):
/// a panic while opening is reported as a damaged index too, so a damaged
/// store fails to open with an error instead of taking the node down.
fn open_index(dir: &Path) -> Result<Database, NodeStoreError> {
    let path = dir.join("index.redb");
    let open = || {
        let mut index = Database::builder()
            .set_cache_size(INDEX_CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    NodeStoreError::InUse(dir.to_path_buf())
                }
                other => index_err(other),
            })?;
        if !index.check_integrity().map_err(index_err)? {
            tracing::warn!(
                "{}: the index was damaged and has been repaired (rolled back to its last \
                 intact commit)",
                path.display()
            );
        }
        Ok(index)
    };
    without_panics(&path, open)
}

/// Runs `f` (which reads the index at `path`), a redb panic on a damaged
/// file reported as a damaged index (see [`open_index`]).
fn without_panics<T>(
    path: &Path,
    f: impl FnOnce() -> Result<T, NodeStoreError>,
) -> Result<T, NodeStoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        tracing::error!("{}: damaged beyond repair ({why})", path.display());
        Err(index_err(redb::StorageError::Corrupted(format!(
            "damaged beyond repair ({why})"
        ))))
    })
}

/// Whether a put stored something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Newly stored.
    Stored,
    /// Already held.
    AlreadyHeld,
}

/// The names of the chunks in the segment files of the store in `dir`,
/// in segment order, read from the files alone: safe while a node has the
/// store open, and it includes chunks dropped but not yet compacted away.
pub fn segment_names(dir: &Path, mut f: impl FnMut(XorName)) -> Result<(), NodeStoreError> {
    let seg_dir = dir.join("segments");
    if !seg_dir.is_dir() {
        return Err(seg_err(format!("reading {}", seg_dir.display()))(
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let (segments, found) = Segments::open_with_limit(&seg_dir, segments::SEGMENT_BYTES)
        .map_err(seg_err(format!("reading {}", seg_dir.display())))?;
    for (id, _) in found {
        segments
            .entries(id, |name, _| f(name))
            .map_err(seg_err(format!("reading segment {id}")))?;
    }
    Ok(())
}

/// The names of the live chunks in the index of the store in `dir`, in
/// name order (dropped chunks waiting for compaction are not listed).
/// The index is opened read-only, so this works only while no node has
/// the store open ([`NodeStoreError::InUse`] otherwise: ask the running
/// node on its metrics address, `/chunks`).
pub fn index_names(dir: &Path, mut f: impl FnMut(XorName)) -> Result<(), NodeStoreError> {
    read_index(dir, |txn| {
        let table = match txn.open_table(index::CHUNKS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(index::index_err(e)),
        };
        for e in table.iter().map_err(index::index_err)? {
            let (name, _) = e.map_err(index::index_err)?;
            f(XorName(name.value()));
        }
        Ok(())
    })
}

/// Runs `read` on the index of the store in `dir`, opened read-only:
/// [`NodeStoreError::InUse`] while a node has the store open.
pub(crate) fn read_index<T>(
    dir: &Path,
    read: impl FnOnce(&redb::ReadTransaction) -> Result<T, NodeStoreError>,
) -> Result<T, NodeStoreError> {
    let path = dir.join("index.redb");
    if !path.is_file() {
        return Err(seg_err(format!("reading {}", path.display()))(
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    without_panics(&path, || {
        let db = redb::ReadOnlyDatabase::open(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => NodeStoreError::InUse(dir.to_path_buf()),
            redb::DatabaseError::RepairAborted => NodeStoreError::Unclean(dir.to_path_buf()),
            other => index::index_err(other),
        })?;
        let txn = redb::ReadableDatabase::begin_read(&db).map_err(index::index_err)?;
        read(&txn)
    })
}

/// Chunk segments plus their index and the capacity limit.
pub struct NodeStore {
    segments: Segments,
    index: Database,
    used: AtomicU64,
    count: AtomicU64,
    capacity: u64,
    /// Disk space a write must leave free ([`DISK_RESERVE`] unless set).
    disk_reserve: AtomicU64,
    dirty: AtomicBool,
    /// Bytes of dead entries per segment (removed, or superseded).
    dead: Mutex<BTreeMap<u32, u64>>,
    record_count: AtomicU64,
    /// Record changes waiting for the next group commit.
    pending_records: Mutex<Vec<RecordJob>>,
    /// Held by whoever is committing a batch of record changes.
    committing: Mutex<()>,
}

impl NodeStore {
    /// Opens (creating if needed) the store in `dir` with a limit of
    /// `capacity` bytes, recovering from a crash and migrating an older
    /// format.
    pub fn open(dir: &Path, capacity: u64) -> Result<Self, NodeStoreError> {
        Self::open_with_segment_limit(dir, capacity, segments::SEGMENT_BYTES)
    }

    /// [`NodeStore::open`] with segments sealed at `segment_bytes`.
    pub fn open_with_segment_limit(
        dir: &Path,
        capacity: u64,
        segment_bytes: u64,
    ) -> Result<Self, NodeStoreError> {
        let seg_dir = dir.join("segments");
        let (segments, found) = Segments::open_with_limit(&seg_dir, segment_bytes)
            .map_err(seg_err(format!("opening {}", seg_dir.display())))?;
        let index = open_index(dir)?;
        let store = Self {
            segments,
            index,
            used: AtomicU64::new(0),
            count: AtomicU64::new(0),
            capacity,
            disk_reserve: AtomicU64::new(DISK_RESERVE),
            dirty: AtomicBool::new(false),
            dead: Mutex::new(BTreeMap::new()),
            record_count: AtomicU64::new(0),
            pending_records: Mutex::new(Vec::new()),
            committing: Mutex::new(()),
        };
        store.check_format(dir)?;
        store.reconcile(&found)?;
        store.migrate(dir)?;
        Ok(store)
    }

    fn lock_dead(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, u64>> {
        // Only a statistic: a poisoned lock is used as is.
        self.dead.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes stored.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Chunks stored.
    pub fn chunk_count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The capacity limit in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Stores a (validated) chunk durably, within capacity. Blocking.
    pub fn put(&self, chunk: &Chunk) -> Result<Put, NodeStoreError> {
        if self.contains(chunk.name())? {
            return Ok(Put::AlreadyHeld);
        }
        // What the chunk takes on disk, header and padding included, so
        // that many small chunks cannot take the disk past the limit.
        let size = segments::span(chunk.len());
        self.check_disk(size)?;
        let before = self.used.fetch_add(size, Ordering::Relaxed);
        if before + size > self.capacity {
            self.used.fetch_sub(size, Ordering::Relaxed);
            return Err(NodeStoreError::Full {
                used: before,
                capacity: self.capacity,
            });
        }
        // The space stays reserved while the chunk is written.
        self.insert_reserved(chunk)
    }

    /// Sets the disk space writes must leave free (default
    /// [`DISK_RESERVE`]).
    pub fn set_disk_reserve(&self, bytes: u64) {
        self.disk_reserve.store(bytes, Ordering::Relaxed);
    }

    /// Whether the disk has room for a full-size chunk beyond the reserve
    /// (true if that cannot be known).
    pub fn has_room(&self) -> bool {
        self.check_disk(segments::span(MAX_CHUNK_SIZE)).is_ok()
    }

    /// [`NodeStoreError::DiskFull`] if writing `size` bytes would leave the
    /// disk with less than the reserve free.
    fn check_disk(&self, size: u64) -> Result<(), NodeStoreError> {
        let reserve = self.disk_reserve.load(Ordering::Relaxed);
        match available_space(self.segments.dir()) {
            Some(free) if free < size.saturating_add(reserve) => Err(NodeStoreError::DiskFull {
                used: self.used.load(Ordering::Relaxed),
            }),
            _ => Ok(()),
        }
    }

    /// Appends `chunk` and indexes it; its size is already counted in
    /// `used`, and is given back unless it is stored.
    fn insert_reserved(&self, chunk: &Chunk) -> Result<Put, NodeStoreError> {
        let size = segments::span(chunk.len());
        let stored = self
            .segments
            .append_then(chunk.name(), chunk.bytes(), |loc| {
                // A concurrent put of the same chunk may have won the
                // race: keep its entry, ours is dead space.
                let fresh = self.write_index(|t| {
                    if t.get(chunk.name().0)?.is_some() {
                        return Ok(false);
                    }
                    t.insert(chunk.name().0, entry(loc)).map(|_| true)
                });
                (loc, fresh)
            })
            .map_err(seg_err(format!("writing chunk {}", chunk.name())));
        match stored {
            Ok((_, Ok(true))) => {
                self.count.fetch_add(1, Ordering::Relaxed);
                Ok(Put::Stored)
            }
            Ok((loc, Ok(false))) => {
                self.used.fetch_sub(size, Ordering::Relaxed);
                self.add_dead(loc);
                Ok(Put::AlreadyHeld)
            }
            Ok((loc, Err(e))) => {
                self.used.fetch_sub(size, Ordering::Relaxed);
                self.add_dead(loc);
                Err(e)
            }
            Err(e) => {
                let used = self.used.fetch_sub(size, Ordering::Relaxed) - size;
                match e {
                    NodeStoreError::Segments { source, .. } if out_of_space(&source) => {
                        Err(NodeStoreError::DiskFull { used })
                    }
                    e => Err(e),
                }
            }
        }
    }

    fn add_dead(&self, loc: Location) {
        *self.lock_dead().entry(loc.segment).or_default() += segments::span(loc.len as usize);
    }

    /// Reads and verifies a chunk. A chunk that fails verification is
    /// dropped (replication restores it) and reported as absent. Blocking.
    pub fn get(&self, name: XorName) -> Result<Option<Chunk>, NodeStoreError> {
        // Compaction may move the chunk between the lookup and the read:
        // a chunk gone from under us is looked up again, once.
        for attempt in 0..2 {
            let Some(loc) = self.lookup(&name)? else {
                return Ok(None);
            };
            let why = match self.segments.read(&name, loc) {
                Ok(bytes) => match Chunk::verified(name, bytes) {
                    Ok(chunk) => return Ok(Some(chunk)),
                    Err(e) => e.to_string(),
                },
                Err(ReadError::Missing(_)) if attempt == 0 => continue,
                Err(ReadError::Io { segment, source }) => {
                    return Err(seg_err(format!("reading segment {segment}"))(source));
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(%name, "chunk failed verification, dropping it: {why}");
            self.remove_at(&name, Some(loc))?;
            return Ok(None);
        }
        Ok(None)
    }

    /// Drops a chunk. Blocking.
    pub fn remove(&self, name: &XorName) -> Result<(), NodeStoreError> {
        self.remove_at(name, None)
    }

    /// Drops the chunk called `name` (only if it is at `at`, when given).
    fn remove_at(&self, name: &XorName, at: Option<Location>) -> Result<(), NodeStoreError> {
        let removed = self.write_index(|t| {
            let current = t.get(name.0)?.map(|v| location(v.value()));
            match current {
                Some(loc) if at.is_none_or(|at| at == loc) => {
                    t.remove(name.0)?;
                    Ok(Some(loc))
                }
                _ => Ok(None),
            }
        })?;
        if let Some(loc) = removed {
            self.used
                .fetch_sub(segments::span(loc.len as usize), Ordering::Relaxed);
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.add_dead(loc);
        }
        Ok(())
    }

    /// Makes every chunk stored so far durable: fsyncs the segments written
    /// since the last flush, then commits the index with their watermarks
    /// (one round of disk flushes for all of them). Then compacts a sealed
    /// segment that is at least half dead, if there is one.
    pub fn flush(&self) -> Result<(), NodeStoreError> {
        let marks = self.segments.sync().map_err(seg_err("syncing segments"))?;
        if self.dirty.swap(false, Ordering::AcqRel) || !marks.is_empty() {
            let result = (|| {
                let mut txn = self.index.begin_write().map_err(index_err)?;
                txn.set_durability(Durability::Immediate)
                    .map_err(index_err)?;
                {
                    let mut table = txn.open_table(WATERMARKS).map_err(index_err)?;
                    for &(id, len) in &marks {
                        table.insert(id, len).map_err(index_err)?;
                    }
                }
                txn.commit().map_err(index_err)
            })();
            if result.is_err() {
                // The watermarks stay where they were (recovery checks
                // the rest); the entries are retried next time.
                self.dirty.store(true, Ordering::Release);
                return result;
            }
        }
        self.compact()
    }
}

#[cfg(test)]
mod tests;
