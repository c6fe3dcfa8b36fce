//! Mutable records, kept in the index itself (they are small and change in
//! place), and their group commit: each write is read, validated and
//! written in one transaction committed durably before the node answers,
//! so an acknowledged write survives `kill -9` and power loss; under load
//! many writes share one commit.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use redb::{ReadableDatabase, ReadableTable};
use safe_protocol::XorName;
use safe_protocol::mutable::{Hash, Record};

use super::index::{MUTABLE, index_err};
use super::{NodeStore, NodeStoreError};

/// Bytes of the digest in front of each stored mutable record.
pub(super) const DIGEST_LEN: usize = 32;

impl NodeStore {
    /// Mutable records held.
    pub fn record_count(&self) -> u64 {
        self.record_count.load(Ordering::Relaxed)
    }

    /// The stored bytes of the mutable record at `name`: digest, then record.
    pub(super) fn record_raw(&self, name: &XorName) -> Result<Option<Vec<u8>>, NodeStoreError> {
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
    pub fn record(&self, name: &XorName) -> Result<Option<Record>, NodeStoreError> {
        Ok(self
            .record_raw(name)?
            .and_then(|raw| decode_stored(name, &raw)))
    }

    /// The digest of the mutable record at `name`. Blocking.
    pub fn record_digest(&self, name: &XorName) -> Result<Option<Hash>, NodeStoreError> {
        Ok(self
            .record_raw(name)?
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
    pub fn update_record<T: Send + 'static>(
        &self,
        name: &XorName,
        f: impl FnOnce(Option<Record>) -> (Option<Record>, T) + Send + 'static,
    ) -> Result<T, NodeStoreError> {
        // Record writes are small, but they must not eat the reserve the
        // index itself needs either.
        self.check_disk(0)?;
        let name = *name;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<T, NodeStoreError>>(1);
        let job: RecordJob = Box::new(move |table, batch| {
            let outcome = change_one(table, batch, &name, f);
            Box::new(move |committed: Result<(), Arc<redb::Error>>| {
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
        self.pending_records
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
                    .pending_records
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if !jobs.is_empty() {
                self.commit_batch(jobs);
            }
        }
        rx.recv().map_err(|_| NodeStoreError::WriteDropped)?
    }

    /// Runs queued record changes in one transaction, commits it durably
    /// and tells each caller how it went.
    pub(super) fn commit_batch(&self, jobs: Vec<RecordJob>) {
        let mut batch = Batch {
            used: self.used(),
            capacity: self.capacity,
            created: 0,
            wrote: false,
        };
        let start = batch.used;
        let mut done = Vec::with_capacity(jobs.len());
        let committed = (|| {
            let txn = self.index.begin_write().map_err(shared)?;
            {
                let mut table = txn.open_table(MUTABLE).map_err(shared)?;
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
                txn.commit().map_err(shared)
            } else {
                // Nothing changed: no need for a durable commit.
                txn.abort().map_err(shared)
            }
        })();
        if committed.is_ok() {
            self.record_count
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
    pub fn records_after(
        &self,
        after: Option<XorName>,
        limit: usize,
    ) -> Result<Vec<(XorName, Hash)>, NodeStoreError> {
        self.page(MUTABLE, after, limit, |name, value| {
            let digest = value.get(..DIGEST_LEN)?.try_into().ok()?;
            Some((name, digest))
        })
    }
}

/// A queued record change: runs inside the batch's transaction and returns
/// what to do once the commit succeeded or failed.
pub(super) type RecordJob = Box<
    dyn for<'t> FnOnce(
            &mut redb::Table<'t, [u8; 32], &'static [u8]>,
            &mut Batch,
        ) -> Box<dyn FnOnce(Result<(), Arc<redb::Error>>) + Send>
        + Send,
>;

/// Space accounting within one batch of record changes.
pub(super) struct Batch {
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
    let body = new.encode().map_err(NodeStoreError::Encode)?;
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

/// A redb failure, shared by every write of a failed group commit.
fn shared(e: impl Into<redb::Error>) -> Arc<redb::Error> {
    Arc::new(e.into())
}
