//! The index (redb): which segment entry holds each chunk, the segments'
//! watermarks, the store format, and the tables' paging. Chunk entries are
//! written with fast commits; [`NodeStore::flush`] makes them durable.

use std::path::Path;
use std::sync::atomic::Ordering;

use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use safe_protocol::XorName;

use super::{FORMAT, NodeStore, NodeStoreError};
use crate::segments::Location;

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const CHUNKS: TableDefinition<[u8; 32], (u32, u64, u32)> =
    TableDefinition::new("chunks");
pub(super) const WATERMARKS: TableDefinition<u32, u64> = TableDefinition::new("segments");
pub(super) const MUTABLE: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("mutable");

/// A redb failure as a store error, its cause kept.
pub(super) fn index_err(e: impl Into<redb::Error>) -> NodeStoreError {
    NodeStoreError::Index(std::sync::Arc::new(e.into()))
}

/// An index entry as a [`Location`].
pub(super) fn location((segment, offset, len): (u32, u64, u32)) -> Location {
    Location {
        segment,
        offset,
        len,
    }
}

/// A [`Location`] as an index entry.
pub(super) fn entry(loc: Location) -> (u32, u64, u32) {
    (loc.segment, loc.offset, loc.len)
}

impl NodeStore {
    /// Refuses a newer format, and marks a new or migrated store as ours.
    pub(super) fn check_format(&self, dir: &Path) -> Result<(), NodeStoreError> {
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

    /// True if the store holds `name`.
    pub fn contains(&self, name: &XorName) -> Result<bool, NodeStoreError> {
        Ok(self.lookup(name)?.is_some())
    }

    /// Where the chunk called `name` is, if the index has it.
    pub(super) fn lookup(&self, name: &XorName) -> Result<Option<Location>, NodeStoreError> {
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

    pub(super) fn write_index<T>(
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

    /// Up to `limit` names after `after` (or from the start), in order:
    /// callers page through every chunk without holding them all.
    pub fn chunk_names_after(
        &self,
        after: Option<XorName>,
        limit: usize,
    ) -> Result<Vec<XorName>, NodeStoreError> {
        self.page(CHUNKS, after, limit, |name, _| Some(name))
    }

    /// Up to `limit` entries of `table` after `after`, in key order, each
    /// mapped by `f` (`None` skips it).
    pub(super) fn page<V: redb::Value + 'static, T>(
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

    /// Chunks in the index (for checks).
    pub fn index_len(&self) -> Result<u64, NodeStoreError> {
        let txn = self.index.begin_read().map_err(index_err)?;
        match txn.open_table(CHUNKS) {
            Ok(t) => t.len().map_err(index_err),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(index_err(e)),
        }
    }
}
