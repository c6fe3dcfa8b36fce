//! A node's records on disk.
//!
//! Layout (format 1):
//!
//! ```text
//! DIR/records/          chunk bodies, one file each (a safe local store:
//!                       written to tmp/, fsynced, renamed, dir fsynced)
//! DIR/index.redb        redb table `records`: name -> size in bytes
//!                       redb table `mutable`: address -> digest (32 bytes)
//!                       followed by the encoded mutable record
//! ```
//!
//! Mutable records live in redb itself (they are small and change in
//! place): each write is read, validated and written in one transaction
//! committed durably before the node answers, so an acknowledged write
//! survives `kill -9` and power loss.
//!
//! The chunk files are the truth; the index makes counting, listing and
//! capacity checks cheap. A put writes the body atomically (temp file, then
//! rename: a killed process leaves it complete or absent, and the kernel
//! keeps it), then records it in the index with a fast commit.
//! [`NodeStore::flush`], called every second by the node, fsyncs the files
//! written since the last flush and their directories, then commits the
//! index durably: one round of disk flushes per second instead of four per
//! chunk. So a stored chunk survives `kill -9` at once and a power cut
//! after at most a second (the other K-1 copies cover that second).
//! Opening the store reconciles index and files (files missing from the
//! index are verified and added, index entries without a file are
//! dropped), so an acknowledged chunk is never lost to a crash.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use safe_client::LocalStore;
use safe_client::store::StoreError;
use safe_protocol::mutable::{Hash, Record};
use safe_protocol::{Chunk, XorName};

const RECORDS: TableDefinition<[u8; 32], u64> = TableDefinition::new("records");
const MUTABLE: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("mutable");
/// Bytes of the digest in front of each stored mutable record.
const DIGEST_LEN: usize = 32;

/// redb page cache: small and fixed, so memory does not grow with records.
const INDEX_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Files written but not yet fsynced; past this, puts sync their own file
/// (so a stalled flusher cannot let the list grow without bound).
pub const MAX_UNSYNCED: usize = 4096;

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
    /// Chunk files failed.
    #[error(transparent)]
    Chunks(#[from] StoreError),
    /// Another running node has the directory open.
    #[error("{0} is in use by another running node")]
    InUse(PathBuf),
    /// The index failed.
    #[error("record index: {0}")]
    Index(String),
}

fn index_err(e: impl std::fmt::Display) -> NodeStoreError {
    NodeStoreError::Index(e.to_string())
}

/// Whether a put stored something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Newly stored.
    Stored,
    /// Already held.
    AlreadyHeld,
}

/// Chunk files plus their index and the capacity limit.
pub struct NodeStore {
    chunks: LocalStore,
    index: Database,
    used: AtomicU64,
    count: AtomicU64,
    capacity: u64,
    dirty: AtomicBool,
    unsynced: Mutex<Vec<PathBuf>>,
    mutable_count: AtomicU64,
    /// Record changes waiting for the next group commit.
    pending_mutable: Mutex<Vec<MutableJob>>,
    /// Held by whoever is committing a batch of record changes.
    committing: Mutex<()>,
}

impl NodeStore {
    /// Opens (creating if needed) the store in `dir` with a limit of
    /// `capacity` bytes, reconciling index and files.
    pub fn open(dir: &Path, capacity: u64) -> Result<Self, NodeStoreError> {
        let chunks = LocalStore::open(dir.join("records"))?;
        chunks.clear_tmp()?;
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
            chunks,
            index,
            used: AtomicU64::new(0),
            count: AtomicU64::new(0),
            capacity,
            dirty: AtomicBool::new(false),
            unsynced: Mutex::new(Vec::new()),
            mutable_count: AtomicU64::new(0),
            pending_mutable: Mutex::new(Vec::new()),
            committing: Mutex::new(()),
        };
        store.reconcile()?;
        Ok(store)
    }

    fn reconcile(&self) -> Result<(), NodeStoreError> {
        let txn = self.index.begin_write().map_err(index_err)?;
        let (mut used, mut count) = (0u64, 0u64);
        {
            let mut table = txn.open_table(RECORDS).map_err(index_err)?;
            // Files the index does not know (written just before a crash).
            let mut on_disk = 0u64;
            let mut adopt = Vec::new();
            self.chunks.for_each_name(|name| {
                on_disk += 1;
                if matches!(table.get(name.0), Ok(None)) {
                    adopt.push(name);
                }
            })?;
            for name in adopt {
                match self.chunks.get_blocking(name) {
                    Ok(chunk) => {
                        table
                            .insert(name.0, chunk.len() as u64)
                            .map_err(index_err)?;
                    }
                    // Only a file proven damaged is deleted; any other
                    // error (EIO, EMFILE, ...) stops the start instead of
                    // destroying what may be an acknowledged chunk.
                    Err(StoreError::Corrupt(_)) => self.chunks.remove_blocking(&name)?,
                    Err(e) => return Err(e.into()),
                }
            }
            // Index entries whose file is gone.
            let mut gone = Vec::new();
            for entry in table.iter().map_err(index_err)? {
                let (name, size) = entry.map_err(index_err)?;
                let name = XorName(name.value());
                // The file must exist with the indexed size (a power cut can
                // leave a short file behind a durable index entry).
                let on_disk = std::fs::metadata(self.chunks.chunk_path(&name)).map(|m| m.len());
                if on_disk.as_ref().ok() == Some(&size.value()) {
                    used += size.value();
                    count += 1;
                } else {
                    if on_disk.is_ok() {
                        self.chunks.remove_blocking(&name)?;
                    }
                    gone.push(name);
                }
            }
            for name in &gone {
                table.remove(name.0).map_err(index_err)?;
            }
            if !gone.is_empty() {
                tracing::warn!(
                    missing = gone.len(),
                    "index listed records with no file; dropped them"
                );
            }
            tracing::debug!(records = count, files = on_disk, "store reconciled");
            let mutable = txn.open_table(MUTABLE).map_err(index_err)?;
            for entry in mutable.iter().map_err(index_err)? {
                let (_, value) = entry.map_err(index_err)?;
                used += value.value().len() as u64;
                self.mutable_count.fetch_add(1, Ordering::Relaxed);
            }
        }
        txn.commit().map_err(index_err)?;
        self.used.store(used, Ordering::Relaxed);
        self.count.store(count, Ordering::Relaxed);
        Ok(())
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

    /// True if the index lists `name`.
    pub fn contains(&self, name: &XorName) -> Result<bool, NodeStoreError> {
        // The file is checked too: an index entry alone never counts as
        // holding a record (it would make us refuse the copy we lack).
        Ok(self.indexed(name)? && self.chunks.chunk_path(name).exists())
    }

    /// True if the index lists `name` (whether or not its file is there).
    fn indexed(&self, name: &XorName) -> Result<bool, NodeStoreError> {
        let txn = self.index.begin_read().map_err(index_err)?;
        let table = match txn.open_table(RECORDS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(index_err(e)),
        };
        Ok(table.get(name.0).map_err(index_err)?.is_some())
    }

    /// Stores a (validated) chunk durably, within capacity. Blocking.
    pub fn put(&self, chunk: &Chunk) -> Result<Put, NodeStoreError> {
        if self.contains(chunk.name())? {
            return Ok(Put::AlreadyHeld);
        }
        let size = chunk.len() as u64;
        let before = self.used.fetch_add(size, Ordering::Relaxed);
        if before + size > self.capacity {
            self.used.fetch_sub(size, Ordering::Relaxed);
            return Err(NodeStoreError::Full {
                used: before,
                capacity: self.capacity,
            });
        }
        let result = self.write_body(chunk).and_then(|()| {
            self.write_index(|t| t.insert(chunk.name().0, size).map(|old| old.is_none()))
        });
        match result {
            Ok(true) => {
                self.count.fetch_add(1, Ordering::Relaxed);
                Ok(Put::Stored)
            }
            Ok(false) => {
                // A concurrent put of the same chunk won the race.
                self.used.fetch_sub(size, Ordering::Relaxed);
                Ok(Put::AlreadyHeld)
            }
            Err(e) => {
                self.used.fetch_sub(size, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn write_body(&self, chunk: &Chunk) -> Result<(), NodeStoreError> {
        let Some(path) = self.chunks.put_deferred(chunk)? else {
            return Ok(());
        };
        let mut unsynced = self
            .unsynced
            .lock()
            .map_err(|_| NodeStoreError::Index("unsynced list poisoned".into()))?;
        if unsynced.len() < MAX_UNSYNCED {
            unsynced.push(path);
            return Ok(());
        }
        drop(unsynced);
        LocalStore::sync(&[path])?;
        Ok(())
    }

    fn write_index<T>(
        &self,
        f: impl FnOnce(&mut redb::Table<[u8; 32], u64>) -> Result<T, redb::StorageError>,
    ) -> Result<T, NodeStoreError> {
        let mut txn = self.index.begin_write().map_err(index_err)?;
        txn.set_durability(Durability::None).map_err(index_err)?;
        let out = {
            let mut table = txn.open_table(RECORDS).map_err(index_err)?;
            f(&mut table).map_err(index_err)?
        };
        txn.commit().map_err(index_err)?;
        self.dirty.store(true, Ordering::Release);
        Ok(out)
    }

    /// Reads and verifies a chunk. A file that fails verification is
    /// deleted (replication restores it) and reported as absent. Blocking.
    pub fn get(&self, name: XorName) -> Result<Option<Chunk>, NodeStoreError> {
        match self.chunks.get_blocking(name) {
            Ok(chunk) => Ok(Some(chunk)),
            Err(StoreError::NotFound(_)) => {
                // Drop a stale index entry, if there is one.
                if self.indexed(&name)? {
                    self.remove(&name)?;
                }
                Ok(None)
            }
            Err(StoreError::Corrupt(e)) => {
                tracing::warn!(%name, "record failed verification, dropping it: {e}");
                self.remove(&name)?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Drops a record. Blocking.
    pub fn remove(&self, name: &XorName) -> Result<(), NodeStoreError> {
        // File first: a crash in between leaves an index entry without a
        // file, which reads and the next start drop.
        self.chunks.remove_blocking(name)?;
        if let Some(size) =
            self.write_index(|t| t.remove(name.0).map(|old| old.map(|v| v.value())))?
        {
            self.used.fetch_sub(size, Ordering::Relaxed);
            self.count.fetch_sub(1, Ordering::Relaxed);
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
        self.page(RECORDS, after, limit, |name, _| Some(name))
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

    /// Makes every index change so far durable (one fsync for all of them).
    pub fn flush(&self) -> Result<(), NodeStoreError> {
        let paths = match self.unsynced.lock() {
            Ok(mut u) => std::mem::take(&mut *u),
            Err(_) => return Err(NodeStoreError::Index("unsynced list poisoned".into())),
        };
        if let Err(e) = LocalStore::sync(&paths) {
            if let Ok(mut u) = self.unsynced.lock() {
                u.extend(paths);
            }
            return Err(e.into());
        }
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let result = (|| {
            let mut txn = self.index.begin_write().map_err(index_err)?;
            txn.set_durability(Durability::Immediate)
                .map_err(index_err)?;
            txn.open_table(RECORDS).map_err(index_err)?;
            txn.commit().map_err(index_err)
        })();
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        result
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
        match txn.open_table(RECORDS) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_record_writes_are_serialised_and_durable() {
        use safe_client::mutable::{new_append, new_create};
        use safe_protocol::mutable::{SigningKey, Write, record_address};
        let dir = tempfile::tempdir().unwrap();
        let name = record_address(b"inbox", 0);
        {
            let store = std::sync::Arc::new(NodeStore::open(dir.path(), 1 << 30).unwrap());
            let key = SigningKey::from_bytes(&[1; 32]);
            let create = new_create(b"inbox", 0, vec![], 1, true, &key).unwrap();
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
                            let a = new_append(
                                name,
                                vec![w, i],
                                &[SigningKey::from_bytes(&[w + 2; 32])],
                            );
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
    fn capacity_reconcile_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let a = Chunk::new(vec![1u8; 1000]).unwrap();
        let b = Chunk::new(vec![2u8; 1000]).unwrap();
        let c = Chunk::new(vec![3u8; 100]).unwrap();
        {
            let store = NodeStore::open(dir.path(), 2050).unwrap();
            assert_eq!(store.put(&a).unwrap(), Put::Stored);
            assert_eq!(store.put(&a).unwrap(), Put::AlreadyHeld);
            assert_eq!(store.put(&b).unwrap(), Put::Stored);
            let err = store.put(&c).unwrap_err();
            assert!(
                matches!(err, NodeStoreError::Full { used: 2000, .. }),
                "{err}"
            );
            assert_eq!((store.used(), store.count()), (2000, 2));
            // No flush: the index may be behind the files, as after kill -9.
        }
        // A file written without an index entry (crash between the two).
        let loose = LocalStore::open(dir.path().join("records")).unwrap();
        loose.put_blocking(&c).unwrap();
        let store = NodeStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((store.used(), store.count()), (2100, 3));
        assert_eq!(store.get(*b.name()).unwrap().unwrap(), b);
        // Damage on disk: never served, dropped.
        std::fs::write(loose.chunk_path(a.name()), b"junk").unwrap();
        assert!(store.get(*a.name()).unwrap().is_none());
        assert_eq!((store.used(), store.count()), (1100, 2));
        let names = store.names_after(None, 1).unwrap();
        assert_eq!(names.len(), 1);
        let rest = store.names_after(Some(names[0]), 10).unwrap();
        assert_eq!(rest.len(), 1);
        store.flush().unwrap();
        assert_eq!(store.index_len().unwrap(), 2);
    }
}
