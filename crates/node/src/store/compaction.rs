//! Compaction: removed chunks leave dead space in their segment; once at
//! least half of a sealed segment is dead, each [`NodeStore::flush`]
//! copies up to [`COMPACT_BYTES`] of its live chunks to the newest
//! segment, and deletes it once the copies are durable.

use redb::ReadableTable;

use super::index::{CHUNKS, entry};
use super::{NodeStore, NodeStoreError, seg_err};
use crate::segments;

/// Live chunks a flush copies out of a half-dead segment at most (the
/// rest in later flushes).
pub const COMPACT_BYTES: u64 = 64 * 1024 * 1024;

impl NodeStore {
    /// Compaction step: copies up to [`COMPACT_BYTES`] of the live chunks
    /// of the deadest sealed segment that is at least half dead to the
    /// newest segment; once none are left, deletes it. A step at a time, so
    /// a flush (and the durability of recent puts) never waits long.
    pub(super) fn compact(&self) -> Result<(), NodeStoreError> {
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
        let mut entries = Vec::new();
        self.segments
            .entries(id, |name, loc| entries.push((name, loc)))
            .map_err(err())?;
        let mut copied = 0u64;
        for (name, loc) in entries {
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
        // Nothing may still point into the segment (an entry its walk
        // could not reach, say).
        let left = self
            .page(CHUNKS, None, usize::MAX, |_, v| (v.0 == id).then_some(()))?
            .len();
        if left > 0 {
            tracing::error!(
                segment = id,
                left,
                "segment still holds live chunks; not removed"
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
}
