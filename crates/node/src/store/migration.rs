//! Migration from format 1 (one file per chunk under `DIR/records/`, the
//! layout of the client's local store at the time): each file is verified
//! and appended to the segments, and the old directory removed once the
//! new index is durable. The node reads format 1 itself; it does not
//! depend on the client for it.

use std::path::Path;
use std::sync::atomic::Ordering;

use redb::TableDefinition;

use super::index::index_err;
use super::{FORMAT, NodeStore, NodeStoreError};
use crate::segments;

/// The format 1 chunk index (name -> size), dropped by the migration.
pub(super) const FORMAT1_RECORDS: TableDefinition<[u8; 32], u64> = TableDefinition::new("records");

impl NodeStore {
    /// Moves the chunk files of a format 1 store into segments.
    pub(super) fn migrate(&self, dir: &Path) -> Result<(), NodeStoreError> {
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
}

/// Reading a format 1 store: one file per chunk under `DIR/records/`,
/// in the layout the client's local store used then (`chunks/ab/abcd…`,
/// named by the hex of the chunk's name, fanned out by its first byte).
/// Node-private: the node only ever reads this format, to migrate it.
pub(super) mod format1 {
    use std::path::{Path, PathBuf};

    use safe_protocol::{Chunk, MAX_CHUNK_SIZE, XorName};

    use super::NodeStoreError;

    /// The format 1 store's directory inside the node's.
    pub(in crate::store) const DIR: &str = "records";

    fn err(path: &Path) -> impl FnOnce(std::io::Error) -> NodeStoreError {
        let path = path.to_path_buf();
        move |source| NodeStoreError::Migration { path, source }
    }

    /// Where the chunk called `name` lives in the store at `root`.
    pub(in crate::store) fn path(root: &Path, name: &XorName) -> PathBuf {
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
