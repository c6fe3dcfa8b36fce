//! Recovery on open: segments past their watermark are checked, entries
//! there re-hashed and indexed, damaged ones dropped and a torn tail cut
//! off; index entries that point past the end of their segment are
//! dropped. So an acknowledged chunk is never lost to a crash, and the
//! index never names bytes that are not there.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use redb::ReadableTable;

use super::index::{CHUNKS, MUTABLE, WATERMARKS, entry, index_err, location};
use super::{NodeStore, NodeStoreError, seg_err};
use crate::segments::{self, Found};

impl NodeStore {
    /// Checks the segments past their watermarks and drops index entries
    /// that point at nothing (see the module docs).
    pub(super) fn reconcile(&self, found: &[(u32, u64)]) -> Result<(), NodeStoreError> {
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
                // last whole entry ends is unknown, so check all of it.
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
                    "store recovered: indexed chunks written before a crash, \
                     dropped damaged ones and index entries with no segment entry"
                );
            }
            tracing::debug!(chunks = count, segments = found.len(), "store reconciled");
            let mutable = txn.open_table(MUTABLE).map_err(index_err)?;
            for e in mutable.iter().map_err(index_err)? {
                let (_, value) = e.map_err(index_err)?;
                used += value.value().len() as u64;
                self.record_count.fetch_add(1, Ordering::Relaxed);
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
}
