//! A node's records on disk.
//!
//! Layout (format 2):
//!
//! ```text
//! DIR/segments/         chunk bodies, appended to segment files
//!                       (see `segments.rs` for the record format)
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
//! Opening the store checks every segment past its watermark: records
//! there are re-hashed and indexed, damaged ones dropped, a torn tail cut
//! off; index entries pointing past the end of their segment are dropped.
//! So an acknowledged chunk is never lost to a crash, and the index never
//! names bytes that are not there.
//!
//! Removed chunks leave dead space in their segment; once at least half of
//! a sealed segment is dead, each [`NodeStore::flush`] copies up to
//! [`COMPACT_BYTES`] of its live records to the newest segment, and deletes
//! it once the copies are durable. Capacity counts the bytes a chunk takes
//! in its segment (header block and padding included).
//!
//! A format 1 store (one file per chunk under `DIR/records/`) is migrated
//! when opened: each file is verified and appended, and the old directory
//! removed once the new index is durable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use safe_protocol::mutable::{Hash, Record};
use safe_protocol::{Chunk, MAX_CHUNK_SIZE, XorName};

use crate::segments::{self, Found, Location, ReadError, Segments};

/// The store format this program writes.
pub const FORMAT: u64 = 2;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CHUNKS: TableDefinition<[u8; 32], (u32, u64, u32)> = TableDefinition::new("chunks");
const WATERMARKS: TableDefinition<u32, u64> = TableDefinition::new("segments");
const MUTABLE: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("mutable");
/// The format 1 chunk index (name -> size), dropped by the migration.
const FORMAT1_RECORDS: TableDefinition<[u8; 32], u64> = TableDefinition::new("records");
/// Bytes of the digest in front of each stored mutable record.
const DIGEST_LEN: usize = 32;

/// Live records a flush copies out of a half-dead segment at most (the
/// rest in later flushes).
pub const COMPACT_BYTES: u64 = 64 * 1024 * 1024;

/// redb page cache: small and fixed, so memory does not grow with records.
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
    /// The directory holds a store of a format this program does not know.
    #[error("{dir} holds store format {found}; this program reads formats 1 and {FORMAT}")]
    Format {
        /// The directory.
        dir: PathBuf,
        /// The format found.
        found: u64,
    },
    /// The index failed.
    #[error("record index: {0}")]
    Index(String),
}

fn index_err(e: impl std::fmt::Display) -> NodeStoreError {
    NodeStoreError::Index(e.to_string())
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

/// Whether a put stored something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Newly stored.
    Stored,
    /// Already held.
    AlreadyHeld,
}

/// An index entry as a [`Location`].
fn location((segment, offset, len): (u32, u64, u32)) -> Location {
    Location {
        segment,
        offset,
        len,
    }
}

/// A [`Location`] as an index entry.
fn entry(loc: Location) -> (u32, u64, u32) {
    (loc.segment, loc.offset, loc.len)
}

/// The names of the records in the segment files of the store in `dir`,
/// in segment order, read from the files alone: safe while a node has the
/// store open, and it includes records dropped but not yet compacted away.
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
            .records(id, |name, _| f(name))
            .map_err(seg_err(format!("reading segment {id}")))?;
    }
    Ok(())
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
    /// Bytes of dead records per segment (removed, or superseded).
    dead: Mutex<BTreeMap<u32, u64>>,
    mutable_count: AtomicU64,
    /// Record changes waiting for the next group commit.
    pending_mutable: Mutex<Vec<MutableJob>>,
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
        let index = Database::builder()
            .set_cache_size(INDEX_CACHE_BYTES)
            .create(dir.join("index.redb"))
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    NodeStoreError::InUse(dir.to_path_buf())
                }
                other => index_err(other),
            })?;
        let store = Self {
            segments,
            index,
            used: AtomicU64::new(0),
            count: AtomicU64::new(0),
            capacity,
            disk_reserve: AtomicU64::new(DISK_RESERVE),
            dirty: AtomicBool::new(false),
            dead: Mutex::new(BTreeMap::new()),
            mutable_count: AtomicU64::new(0),
            pending_mutable: Mutex::new(Vec::new()),
            committing: Mutex::new(()),
        };
        store.check_format(dir)?;
        store.reconcile(&found)?;
        store.migrate(dir)?;
        Ok(store)
    }

    /// Refuses a newer format, and marks a new or migrated store as ours.
    fn check_format(&self, dir: &Path) -> Result<(), NodeStoreError> {
        let txn = self.index.begin_write().map_err(index_err)?;
        {
            let mut meta = txn.open_table(META).map_err(index_err)?;
            let found = meta.get("format").map_err(index_err)?.map(|v| v.value());
            match found {
                Some(FORMAT) => {}
                Some(found) if found > FORMAT => {
                    return Err(NodeStoreError::Format {
                        dir: dir.to_path_buf(),
                        found,
                    });
                }
                // New, or format 1 (which had no meta table): the chunks
                // of a format 1 store are migrated right after.
                _ => {
                    meta.insert("format", FORMAT).map_err(index_err)?;
                }
            }
        }
        txn.commit().map_err(index_err)
    }

    /// Checks the segments past their watermarks and drops index entries
    /// that point at nothing (see the module docs).
    fn reconcile(&self, found: &[(u32, u64)]) -> Result<(), NodeStoreError> {
        let txn = self.index.begin_write().map_err(index_err)?;
        let (mut used, mut count) = (0u64, 0u64);
        let mut live: BTreeMap<u32, u64> = BTreeMap::new();
        let mut lengths = BTreeMap::new();
        {
            let mut chunks = txn.open_table(CHUNKS).map_err(index_err)?;
            let mut marks = txn.open_table(WATERMARKS).map_err(index_err)?;
            let (mut adopted, mut damaged) = (0u64, 0u64);
            for &(id, len) in found {
                let mark = marks.get(id).map_err(index_err)?.map_or(0, |v| v.value());
                // A segment shorter than its watermark lost bytes it had
                // made durable (a disk that lied about a flush): where its
                // last whole record ends is unknown, so check all of it.
                let from = if len < mark { 0 } else { mark };
                let mut failed = None;
                let valid = self
                    .segments
                    .recover(id, from, |f| {
                        let result = match f {
                            Found::Good(name, loc) => match chunks.get(name.0).map(|v| v.is_some())
                            {
                                Ok(true) => Ok(()),
                                Ok(false) => {
                                    adopted += 1;
                                    chunks.insert(name.0, entry(loc)).map(|_| ())
                                }
                                Err(e) => Err(e),
                            },
                            Found::Damaged(name, loc) => {
                                damaged += 1;
                                match chunks.get(name.0).map(|v| v.map(|v| v.value())) {
                                    Ok(Some(e)) if e == entry(loc) => {
                                        chunks.remove(name.0).map(|_| ())
                                    }
                                    Ok(_) => Ok(()),
                                    Err(e) => Err(e),
                                }
                            }
                        };
                        if let Err(e) = result {
                            failed.get_or_insert(e);
                        }
                    })
                    .map_err(seg_err(format!("checking segment {id}")))?;
                if let Some(e) = failed {
                    return Err(index_err(e));
                }
                marks.insert(id, valid).map_err(index_err)?;
                lengths.insert(id, valid);
            }
            // Watermarks of segments that are gone.
            let stale: Vec<u32> = marks
                .iter()
                .map_err(index_err)?
                .filter_map(|e| e.ok().map(|(k, _)| k.value()))
                .filter(|id| !lengths.contains_key(id))
                .collect();
            for id in stale {
                marks.remove(id).map_err(index_err)?;
            }
            // Index entries that point past the end of their segment.
            let mut gone = Vec::new();
            for e in chunks.iter().map_err(index_err)? {
                let (name, value) = e.map_err(index_err)?;
                let value = value.value();
                let loc = location(value);
                if lengths.get(&loc.segment).is_some_and(|&l| loc.end() <= l) {
                    used += segments::span(loc.len as usize);
                    count += 1;
                    *live.entry(loc.segment).or_default() += segments::span(loc.len as usize);
                } else {
                    gone.push(name.value());
                }
            }
            for name in &gone {
                chunks.remove(name).map_err(index_err)?;
            }
            if !gone.is_empty() || adopted > 0 || damaged > 0 {
                tracing::warn!(
                    adopted,
                    damaged,
                    missing = gone.len(),
                    "store recovered: indexed records written before a crash, \
                     dropped damaged ones and index entries with no record"
                );
            }
            tracing::debug!(records = count, segments = found.len(), "store reconciled");
            let mutable = txn.open_table(MUTABLE).map_err(index_err)?;
            for e in mutable.iter().map_err(index_err)? {
                let (_, value) = e.map_err(index_err)?;
                used += value.value().len() as u64;
                self.mutable_count.fetch_add(1, Ordering::Relaxed);
            }
        }
        txn.commit().map_err(index_err)?;
        self.used.store(used, Ordering::Relaxed);
        self.count.store(count, Ordering::Relaxed);
        let mut dead = self.lock_dead();
        for (id, len) in lengths {
            let live = live.get(&id).copied().unwrap_or(0);
            if len > live {
                dead.insert(id, len - live);
            }
        }
        Ok(())
    }

    /// Moves the chunk files of a format 1 store into segments.
    fn migrate(&self, dir: &Path) -> Result<(), NodeStoreError> {
        let old = dir.join(format1::DIR);
        if !old.exists() {
            return Ok(());
        }
        let names = format1::names(&old)?;
        tracing::info!(
            chunks = names.len(),
            "migrating the store to format {FORMAT}"
        );
        let direct = safe_direct::Direct::new();
        let mut moved = 0u64;
        for name in names {
            match format1::read(&direct, &old, name)? {
                Some(chunk) => {
                    // Capacity does not apply: these were accepted already.
                    if !self.contains(&name)? {
                        self.used
                            .fetch_add(segments::span(chunk.len()), Ordering::Relaxed);
                        self.insert_reserved(&chunk)?;
                        moved += 1;
                    }
                }
                None => {
                    tracing::warn!(%name, "format 1 chunk file is damaged, not migrated");
                }
            }
        }
        self.flush()?;
        // Only now that every chunk is durable in its new place.
        let txn = self.index.begin_write().map_err(index_err)?;
        txn.delete_table(FORMAT1_RECORDS).map_err(index_err)?;
        txn.commit().map_err(index_err)?;
        std::fs::remove_dir_all(&old).map_err(|source| NodeStoreError::Migration {
            path: old.clone(),
            source,
        })?;
        tracing::info!(moved, "store migrated to format {FORMAT}");
        Ok(())
    }

    fn lock_dead(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, u64>> {
        // Only a statistic: a poisoned lock is used as is.
        self.dead.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes stored.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Records stored.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The capacity limit in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// True if the store holds `name`.
    pub fn contains(&self, name: &XorName) -> Result<bool, NodeStoreError> {
        Ok(self.lookup(name)?.is_some())
    }

    /// Where the record called `name` is, if the index has it.
    fn lookup(&self, name: &XorName) -> Result<Option<Location>, NodeStoreError> {
        let txn = self.index.begin_read().map_err(index_err)?;
        let table = match txn.open_table(CHUNKS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(index_err(e)),
        };
        Ok(table
            .get(name.0)
            .map_err(index_err)?
            .map(|v| location(v.value())))
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
                // race: keep its record, ours is dead space.
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

    fn write_index<T>(
        &self,
        f: impl FnOnce(&mut redb::Table<[u8; 32], (u32, u64, u32)>) -> Result<T, redb::StorageError>,
    ) -> Result<T, NodeStoreError> {
        let mut txn = self.index.begin_write().map_err(index_err)?;
        txn.set_durability(Durability::None).map_err(index_err)?;
        let out = {
            let mut table = txn.open_table(CHUNKS).map_err(index_err)?;
            f(&mut table).map_err(index_err)?
        };
        txn.commit().map_err(index_err)?;
        self.dirty.store(true, Ordering::Release);
        Ok(out)
    }

    /// Reads and verifies a chunk. A record that fails verification is
    /// dropped (replication restores it) and reported as absent. Blocking.
    pub fn get(&self, name: XorName) -> Result<Option<Chunk>, NodeStoreError> {
        // Compaction may move the record between the lookup and the read:
        // a record gone from under us is looked up again, once.
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
            tracing::warn!(%name, "record failed verification, dropping it: {why}");
            self.remove_at(&name, Some(loc))?;
            return Ok(None);
        }
        Ok(None)
    }

    /// Drops a record. Blocking.
    pub fn remove(&self, name: &XorName) -> Result<(), NodeStoreError> {
        self.remove_at(name, None)
    }

    /// Drops the record called `name` (only if it is at `at`, when given).
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

    /// Up to `limit` names after `after` (or from the start), in order:
    /// callers page through every record without holding them all.
    pub fn names_after(
        &self,
        after: Option<XorName>,
        limit: usize,
    ) -> Result<Vec<XorName>, NodeStoreError> {
        self.page(CHUNKS, after, limit, |name, _| Some(name))
    }

    /// Up to `limit` entries of `table` after `after`, in key order, each
    /// mapped by `f` (`None` skips it).
    fn page<V: redb::Value + 'static, T>(
        &self,
        table: TableDefinition<[u8; 32], V>,
        after: Option<XorName>,
        limit: usize,
        mut f: impl FnMut(XorName, V::SelfType<'_>) -> Option<T>,
    ) -> Result<Vec<T>, NodeStoreError> {
        let txn = self.index.begin_read().map_err(index_err)?;
        let table = match txn.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(index_err(e)),
        };
        let range = match after {
            Some(a) => table.range((std::ops::Bound::Excluded(a.0), std::ops::Bound::Unbounded)),
            None => table.range::<[u8; 32]>(..),
        }
        .map_err(index_err)?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in range.take(limit) {
            let (k, v) = entry.map_err(index_err)?;
            out.extend(f(XorName(k.value()), v.value()));
        }
        Ok(out)
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

    /// Compaction step: copies up to [`COMPACT_BYTES`] of the live records
    /// of the deadest sealed segment that is at least half dead to the
    /// newest segment; once none are left, deletes it. A step at a time, so
    /// a flush (and the durability of recent puts) never waits long.
    fn compact(&self) -> Result<(), NodeStoreError> {
        let newest = self.segments.newest();
        let candidate = {
            let dead = self.lock_dead();
            dead.iter()
                .filter(|(id, _)| Some(**id) != newest)
                .max_by_key(|(_, d)| **d)
                .map(|(id, d)| (*id, *d))
        };
        let Some((id, dead)) = candidate else {
            return Ok(());
        };
        let err = || seg_err(format!("compacting segment {id}"));
        let len = match std::fs::metadata(self.segments.path(id)) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.lock_dead().remove(&id);
                return Ok(());
            }
            Err(e) => return Err(err()(e)),
        };
        if dead * 2 < len {
            return Ok(());
        }
        let mut records = Vec::new();
        self.segments
            .records(id, |name, loc| records.push((name, loc)))
            .map_err(err())?;
        let mut copied = 0u64;
        for (name, loc) in records {
            if self.lookup(&name)? != Some(loc) {
                continue;
            }
            if copied >= COMPACT_BYTES {
                // The rest in the next step.
                return Ok(());
            }
            copied += segments::span(loc.len as usize);
            let Some(chunk) = self.get(name)? else {
                continue;
            };
            let (new, repointed) = self
                .segments
                .append_then(&name, chunk.bytes(), |new| {
                    // Repoint the entry only if nothing changed it meanwhile.
                    let repointed = self.write_index(|t| {
                        let current = t.get(name.0)?.map(|v| v.value());
                        if current == Some(entry(loc)) {
                            t.insert(name.0, entry(new))?;
                            return Ok(true);
                        }
                        Ok(false)
                    });
                    (new, repointed)
                })
                .map_err(err())?;
            if repointed? {
                self.add_dead(loc);
            } else {
                self.add_dead(new);
            }
        }
        if copied > 0 {
            // Made durable by the next flush; the segment goes after that.
            return Ok(());
        }
        // Nothing may still point into the segment (a record its walk
        // could not reach, say).
        let left = self
            .page(CHUNKS, None, usize::MAX, |_, v| (v.0 == id).then_some(()))?
            .len();
        if left > 0 {
            tracing::error!(
                segment = id,
                left,
                "segment still holds live records; not removed"
            );
            self.lock_dead().remove(&id);
            return Ok(());
        }
        // The copies are durable (synced and committed by the flush that
        // ran this step, or an earlier one): the original can go.
        self.segments
            .remove(id)
            .map_err(seg_err(format!("removing segment {id}")))?;
        self.lock_dead().remove(&id);
        tracing::info!(segment = id, freed = len, "compacted a segment");
        Ok(())
    }

    /// Mutable records held.
    pub fn mutable_count(&self) -> u64 {
        self.mutable_count.load(Ordering::Relaxed)
    }

    /// The stored bytes of the mutable record at `name`: digest, then record.
    fn mutable_raw(&self, name: &XorName) -> Result<Option<Vec<u8>>, NodeStoreError> {
        let txn = self.index.begin_read().map_err(index_err)?;
        let table = match txn.open_table(MUTABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(index_err(e)),
        };
        Ok(table
            .get(name.0)
            .map_err(index_err)?
            .map(|v| v.value().to_vec()))
    }

    /// The mutable record at `name`, decoded (not re-verified: only
    /// verified records are ever written). Blocking.
    pub fn mutable(&self, name: &XorName) -> Result<Option<Record>, NodeStoreError> {
        Ok(self
            .mutable_raw(name)?
            .and_then(|raw| decode_stored(name, &raw)))
    }

    /// The digest of the mutable record at `name`. Blocking.
    pub fn mutable_digest(&self, name: &XorName) -> Result<Option<Hash>, NodeStoreError> {
        Ok(self
            .mutable_raw(name)?
            .and_then(|raw| raw.get(..DIGEST_LEN).and_then(|d| <Hash>::try_from(d).ok())))
    }

    /// Reads, changes and writes the mutable record at `name` in one
    /// durable transaction: `f` sees the current record and returns the
    /// record to write (or `None` to leave it) and a value for the caller.
    /// Writes are serialised, so a check in `f` holds when it writes.
    ///
    /// Group commit: callers queue their change; whoever gets the commit
    /// lock runs every queued change in one transaction and one durable
    /// commit, then wakes each caller with its own outcome. Under load many
    /// writes share one fsync; alone, a write commits at once. Blocking.
    pub fn update_mutable<T: Send + 'static>(
        &self,
        name: &XorName,
        f: impl FnOnce(Option<Record>) -> (Option<Record>, T) + Send + 'static,
    ) -> Result<T, NodeStoreError> {
        // Record writes are small, but they must not eat the reserve the
        // index itself needs either.
        self.check_disk(0)?;
        let name = *name;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<T, NodeStoreError>>(1);
        let job: MutableJob = Box::new(move |table, batch| {
            let outcome = change_one(table, batch, &name, f);
            Box::new(move |committed: Result<(), String>| {
                let result = match (committed, outcome) {
                    (Ok(()), outcome) => outcome,
                    (Err(e), Ok(_)) => Err(NodeStoreError::Index(e)),
                    (Err(_), Err(e)) => Err(e),
                };
                let _ = tx.send(result);
            })
        });
        // Neither lock guards an invariant a panic could break (jobs run
        // under catch_unwind anyway), so a poisoned lock is used as is.
        self.pending_mutable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(job);
        {
            let _leader = self
                .committing
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let jobs = std::mem::take(
                &mut *self
                    .pending_mutable
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if !jobs.is_empty() {
                self.commit_batch(jobs);
            }
        }
        rx.recv()
            .map_err(|_| NodeStoreError::Index("record write was dropped".into()))?
    }

    /// Runs queued record changes in one transaction, commits it durably
    /// and tells each caller how it went.
    fn commit_batch(&self, jobs: Vec<MutableJob>) {
        let mut batch = Batch {
            used: self.used(),
            capacity: self.capacity,
            created: 0,
            wrote: false,
        };
        let start = batch.used;
        let mut done = Vec::with_capacity(jobs.len());
        let committed = (|| {
            let txn = self.index.begin_write().map_err(|e| e.to_string())?;
            {
                let mut table = txn.open_table(MUTABLE).map_err(|e| e.to_string())?;
                for job in jobs {
                    // A job that panics loses only its own write (its
                    // caller sees the write dropped), not the batch.
                    let run = std::panic::AssertUnwindSafe(|| job(&mut table, &mut batch));
                    if let Ok(finish) = std::panic::catch_unwind(run) {
                        done.push(finish);
                    }
                }
            }
            if batch.wrote {
                txn.commit().map_err(|e| e.to_string())
            } else {
                // Nothing changed: no need for a durable commit.
                txn.abort().map_err(|e| e.to_string())
            }
        })();
        if committed.is_ok() {
            self.mutable_count
                .fetch_add(batch.created, Ordering::Relaxed);
            if batch.used >= start {
                self.used.fetch_add(batch.used - start, Ordering::Relaxed);
            } else {
                self.used.fetch_sub(start - batch.used, Ordering::Relaxed);
            }
        }
        // Jobs not reached (the transaction failed to open) are dropped,
        // which their callers see as a failed write.
        for finish in done {
            finish(committed.clone());
        }
    }

    /// Up to `limit` (address, digest) pairs of mutable records after
    /// `after`, in order.
    pub fn mutable_after(
        &self,
        after: Option<XorName>,
        limit: usize,
    ) -> Result<Vec<(XorName, Hash)>, NodeStoreError> {
        self.page(MUTABLE, after, limit, |name, value| {
            let digest = value.get(..DIGEST_LEN)?.try_into().ok()?;
            Some((name, digest))
        })
    }

    /// Records in the index (for checks).
    pub fn index_len(&self) -> Result<u64, NodeStoreError> {
        let txn = self.index.begin_read().map_err(index_err)?;
        match txn.open_table(CHUNKS) {
            Ok(t) => t.len().map_err(index_err),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(index_err(e)),
        }
    }
}

/// A queued record change: runs inside the batch's transaction and returns
/// what to do once the commit succeeded or failed.
type MutableJob = Box<
    dyn for<'t> FnOnce(
            &mut redb::Table<'t, [u8; 32], &'static [u8]>,
            &mut Batch,
        ) -> Box<dyn FnOnce(Result<(), String>) + Send>
        + Send,
>;

/// Space accounting within one batch of record changes.
struct Batch {
    used: u64,
    capacity: u64,
    created: u64,
    wrote: bool,
}

/// One record change within a batch: read, let `f` decide, write.
fn change_one<T>(
    table: &mut redb::Table<'_, [u8; 32], &'static [u8]>,
    batch: &mut Batch,
    name: &XorName,
    f: impl FnOnce(Option<Record>) -> (Option<Record>, T),
) -> Result<T, NodeStoreError> {
    let old = table
        .get(name.0)
        .map_err(index_err)?
        .map(|v| v.value().to_vec());
    let old_len = old.as_ref().map_or(0, |o| o.len() as u64);
    let current = old.as_deref().and_then(|raw| decode_stored(name, raw));
    let (new, out) = f(current);
    let Some(new) = new else {
        return Ok(out);
    };
    let body = new
        .encode()
        .map_err(|e| NodeStoreError::Index(format!("record does not encode: {e}")))?;
    let mut value = Vec::with_capacity(DIGEST_LEN + body.len());
    value.extend_from_slice(&new.digest());
    value.extend_from_slice(&body);
    let new_len = value.len() as u64;
    if new_len > old_len && batch.used + (new_len - old_len) > batch.capacity {
        return Err(NodeStoreError::Full {
            used: batch.used,
            capacity: batch.capacity,
        });
    }
    table.insert(name.0, value.as_slice()).map_err(index_err)?;
    batch.wrote = true;
    batch.used = (batch.used + new_len).saturating_sub(old_len);
    batch.created += u64::from(old.is_none());
    Ok(out)
}

/// Decodes a stored mutable record; a damaged one is logged and treated as
/// absent (replication brings a good copy back).
fn decode_stored(name: &XorName, raw: &[u8]) -> Option<Record> {
    match raw.get(DIGEST_LEN..).map(Record::decode) {
        Some(Ok(r)) => Some(r),
        _ => {
            tracing::warn!(%name, "stored mutable record does not decode; ignoring it");
            None
        }
    }
}

/// Reading a format 1 store: one file per chunk under `DIR/records/`,
/// in the layout the client's local store used then (`chunks/ab/abcd…`,
/// named by the hex of the chunk's name, fanned out by its first byte).
/// Node-private: the node only ever reads this format, to migrate it.
mod format1 {
    use std::path::{Path, PathBuf};

    use safe_protocol::{Chunk, MAX_CHUNK_SIZE, XorName};

    use super::NodeStoreError;

    /// The format 1 store's directory inside the node's.
    pub(super) const DIR: &str = "records";

    fn err(path: &Path) -> impl FnOnce(std::io::Error) -> NodeStoreError {
        let path = path.to_path_buf();
        move |source| NodeStoreError::Migration { path, source }
    }

    /// Where the chunk called `name` lives in the store at `root`.
    pub(super) fn path(root: &Path, name: &XorName) -> PathBuf {
        let hex = name.to_hex();
        root.join("chunks").join(&hex[..2]).join(hex)
    }

    /// The names of every chunk file; stray files are skipped.
    pub(super) fn names(root: &Path) -> Result<Vec<XorName>, NodeStoreError> {
        let chunks = root.join("chunks");
        let mut names = Vec::new();
        let fanout = match std::fs::read_dir(&chunks) {
            Ok(dirs) => dirs,
            // A store that never held a chunk.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(err(&chunks)(e)),
        };
        for dir in fanout {
            let dir = dir.map_err(err(&chunks))?.path();
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry.map_err(err(&dir))?;
                if let Some(name) = entry.file_name().to_str().and_then(XorName::from_hex) {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    /// The verified chunk `name`, or `None` if its file is damaged.
    pub(super) fn read(
        direct: &safe_direct::Direct,
        root: &Path,
        name: XorName,
    ) -> Result<Option<Chunk>, NodeStoreError> {
        let path = path(root, &name);
        // Never more than a chunk can be, whatever is on disk.
        let bytes = direct.read(&path, MAX_CHUNK_SIZE).map_err(err(&path))?;
        Ok(Chunk::verified(name, bytes).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_and_over_quota_mean_full_other_errors_do_not() {
        // ENOSPC and EDQUOT as the kernel reports them on Linux.
        assert!(out_of_space(&std::io::Error::from_raw_os_error(28)));
        assert!(out_of_space(&std::io::Error::from_raw_os_error(122)));
        assert!(!out_of_space(&std::io::Error::from_raw_os_error(5)));
        assert!(!out_of_space(&std::io::Error::other("boom")));
    }

    #[test]
    fn concurrent_record_writes_are_serialised_and_durable() {
        use safe_protocol::mutable::{Append, Create, Signed, SigningKey, Write, record_address};
        let dir = tempfile::tempdir().unwrap();
        let name = record_address(b"inbox", 0);
        {
            let store = std::sync::Arc::new(NodeStore::open(dir.path(), 1 << 30).unwrap());
            let key = SigningKey::from_bytes(&[1; 32]);
            let mut create = Signed::new(Create {
                name: b"inbox".to_vec(),
                tag: 0,
                owners: vec![key.verifying_key().to_bytes()],
                threshold: 1,
                public_append: true,
            });
            create.sign(&key);
            store
                .update_mutable(&name, move |_| (Some(Record::create(create).unwrap()), ()))
                .unwrap();
            // Eight writers, each a read-modify-write of the same record:
            // none may be lost to another's write.
            let writers: Vec<_> = (0..8u8)
                .map(|w| {
                    let store = store.clone();
                    std::thread::spawn(move || {
                        for i in 0..25u8 {
                            let mut a = Signed::new(Append {
                                address: name,
                                value: vec![w, i],
                                nonce: u64::from(w) << 8 | u64::from(i),
                            });
                            a.sign(&SigningKey::from_bytes(&[w + 2; 32]));
                            store
                                .update_mutable(&name, move |cur| {
                                    let mut r = cur.unwrap();
                                    r.apply(&Write::Append(a)).unwrap();
                                    (Some(r), ())
                                })
                                .unwrap();
                        }
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
            assert_eq!(store.mutable(&name).unwrap().unwrap().appends.len(), 200);
            assert_eq!(store.mutable_count(), 1);
        }
        // Every acknowledged write was committed durably.
        let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(store.mutable(&name).unwrap().unwrap().appends.len(), 200);
        assert_eq!(store.mutable_count(), 1);
    }

    #[test]
    fn a_directory_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = NodeStore::open(dir.path(), 1 << 20).unwrap();
        let err = NodeStore::open(dir.path(), 1 << 20).err().unwrap();
        assert!(matches!(err, NodeStoreError::InUse(_)), "{err}");
        assert!(err.to_string().contains("in use by another running node"));
    }

    #[test]
    fn capacity_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let a = Chunk::new(vec![1u8; 1000]).unwrap();
        let b = Chunk::new(vec![2u8; 1000]).unwrap();
        let c = Chunk::new(vec![3u8; 100]).unwrap();
        // Each takes a header block and one body block on disk.
        let store = NodeStore::open(dir.path(), 2 * 8192 + 100).unwrap();
        assert_eq!(store.put(&a).unwrap(), Put::Stored);
        assert_eq!(store.put(&a).unwrap(), Put::AlreadyHeld);
        assert_eq!(store.put(&b).unwrap(), Put::Stored);
        let err = store.put(&c).unwrap_err();
        assert!(
            matches!(err, NodeStoreError::Full { used: 16384, .. }),
            "{err}"
        );
        assert_eq!((store.used(), store.count()), (16384, 2));
        assert_eq!(store.get(*b.name()).unwrap().unwrap(), b);
        // Damage on disk: never served, dropped.
        let loc = store.lookup(a.name()).unwrap().unwrap();
        let path = store.segments.path(loc.segment);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[loc.offset as usize + 4096 + 7] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(store.get(*a.name()).unwrap().is_none());
        assert!(!store.contains(a.name()).unwrap());
        assert_eq!((store.used(), store.count()), (8192, 1));
        // Room again, and a good copy is taken.
        assert_eq!(store.put(&a).unwrap(), Put::Stored);
        assert_eq!(store.get(*a.name()).unwrap().unwrap(), a);
        let names = store.names_after(None, 1).unwrap();
        assert_eq!(names.len(), 1);
        let rest = store.names_after(Some(names[0]), 10).unwrap();
        assert_eq!(rest.len(), 1);
        store.flush().unwrap();
        assert_eq!(store.index_len().unwrap(), 2);
    }

    #[test]
    fn crashes_lose_nothing_acknowledged_and_leave_no_dangling_entries() {
        let dir = tempfile::tempdir().unwrap();
        let chunks: Vec<Chunk> = (0..4u8)
            .map(|i| Chunk::new(vec![i; 5000 + i as usize]).unwrap())
            .collect();
        {
            let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
            store.put(&chunks[0]).unwrap();
            store.put(&chunks[1]).unwrap();
            store.flush().unwrap();
        }
        // Records appended after the last flush whose index entries never
        // reached the disk (a crash between the two): found and indexed.
        {
            let (segs, _) = Segments::open(&dir.path().join("segments")).unwrap();
            segs.append(chunks[2].name(), chunks[2].bytes()).unwrap();
            segs.append(chunks[3].name(), chunks[3].bytes()).unwrap();
        }
        {
            let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
            assert_eq!(store.count(), 4);
            let used: u64 = chunks.iter().map(|c| segments::span(c.len())).sum();
            assert_eq!(store.used(), used);
            for c in &chunks {
                assert_eq!(&store.get(*c.name()).unwrap().unwrap(), c);
            }
        }
        // The disk loses the end of the segment (a power cut): the index
        // drops what is no longer there and keeps the rest.
        let path = dir.path().join("segments").join("00000001.seg");
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 4096)
            .unwrap();
        let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(store.count(), 3);
        assert!(!store.contains(chunks[3].name()).unwrap());
        for c in &chunks[..3] {
            assert_eq!(&store.get(*c.name()).unwrap().unwrap(), c);
        }
        // Appends go on from the last whole record.
        assert_eq!(store.put(&chunks[3]).unwrap(), Put::Stored);
        assert_eq!(store.get(*chunks[3].name()).unwrap().unwrap(), chunks[3]);
    }

    #[test]
    fn a_format_1_store_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let chunks: Vec<Chunk> = (0..3u8)
            .map(|i| Chunk::new(vec![i; 70_000]).unwrap())
            .collect();
        {
            // The layout the client's local store wrote then.
            let old = dir.path().join(format1::DIR);
            std::fs::create_dir_all(old.join("tmp")).unwrap();
            std::fs::write(old.join("FORMAT"), "safe-local-store 1\n").unwrap();
            for c in &chunks {
                let path = format1::path(&old, c.name());
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, c.bytes()).unwrap();
            }
            // A stray file is skipped; a damaged one left behind, not migrated.
            std::fs::write(old.join("chunks").join("stray"), b"x").unwrap();
            std::fs::write(format1::path(&old, chunks[2].name()), b"junk").unwrap();
            // The format 1 index.
            let db = Database::create(dir.path().join("index.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(FORMAT1_RECORDS).unwrap();
                for c in &chunks {
                    t.insert(c.name().0, c.len() as u64).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
        assert!(!dir.path().join("records").exists());
        assert_eq!(store.count(), 2);
        for c in &chunks[..2] {
            assert_eq!(&store.get(*c.name()).unwrap().unwrap(), c);
        }
        assert!(store.get(*chunks[2].name()).unwrap().is_none());
        drop(store);
        let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(store.count(), 2);
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = NodeStore::open(dir.path(), 1 << 20).unwrap();
            let txn = store.index.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("format", FORMAT + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = NodeStore::open(dir.path(), 1 << 20).err().unwrap();
        assert!(
            matches!(err, NodeStoreError::Format { found: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn half_dead_segments_are_compacted() {
        let dir = tempfile::tempdir().unwrap();
        // Four records of 12 KiB (header and two blocks) per segment.
        let limit = 50_000;
        let store = NodeStore::open_with_segment_limit(dir.path(), 1 << 30, limit).unwrap();
        let chunks: Vec<Chunk> = (0..10u8)
            .map(|i| Chunk::new(vec![i; 8000]).unwrap())
            .collect();
        for c in &chunks {
            store.put(c).unwrap();
        }
        let first = dir.path().join("segments").join("00000001.seg");
        assert!(first.exists());
        // Half of the first segment dies.
        store.remove(chunks[0].name()).unwrap();
        store.flush().unwrap();
        assert!(first.exists(), "a quarter dead is not enough");
        store.remove(chunks[2].name()).unwrap();
        store.flush().unwrap();
        assert!(first.exists(), "live records copied first");
        store.flush().unwrap();
        assert!(!first.exists(), "half dead: compacted");
        assert_eq!(store.count(), 8);
        for (i, c) in chunks.iter().enumerate() {
            let got = store.get(*c.name()).unwrap();
            if i == 0 || i == 2 {
                assert!(got.is_none(), "{i} was removed");
            } else {
                assert_eq!(got.as_ref(), Some(c), "{i} is still there");
            }
        }
        // And all of it survives a restart.
        drop(store);
        let store = NodeStore::open_with_segment_limit(dir.path(), 1 << 30, limit).unwrap();
        assert_eq!(store.count(), 8);
        for c in chunks.iter().skip(3).chain([&chunks[1]]) {
            assert_eq!(&store.get(*c.name()).unwrap().unwrap(), c);
        }
    }

    #[test]
    fn the_newest_segment_is_never_compacted_away() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 50_000;
        let chunks: Vec<Chunk> = (0..6u8)
            .map(|i| Chunk::new(vec![i; 8000]).unwrap())
            .collect();
        {
            let store = NodeStore::open_with_segment_limit(dir.path(), 1 << 30, limit).unwrap();
            for c in &chunks {
                store.put(c).unwrap();
            }
            // Segment 2 (the newest) holds chunks 4 and 5: all dead.
            store.remove(chunks[4].name()).unwrap();
            store.remove(chunks[5].name()).unwrap();
            store.flush().unwrap();
        }
        // After a restart nothing is open for appending yet.
        let store = NodeStore::open_with_segment_limit(dir.path(), 1 << 30, limit).unwrap();
        store.flush().unwrap();
        store.flush().unwrap();
        let newest = dir.path().join("segments").join("00000002.seg");
        assert!(newest.exists(), "the newest segment stays");
        // Appends still work, and land in it.
        assert_eq!(store.put(&chunks[4]).unwrap(), Put::Stored);
        assert_eq!(store.lookup(chunks[4].name()).unwrap().unwrap().segment, 2);
        store.flush().unwrap();
        drop(store);
        let store = NodeStore::open_with_segment_limit(dir.path(), 1 << 30, limit).unwrap();
        assert_eq!(store.count(), 5);
        for c in &chunks[..5] {
            assert_eq!(&store.get(*c.name()).unwrap().unwrap(), c);
        }
    }
}
