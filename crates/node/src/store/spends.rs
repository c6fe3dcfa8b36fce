//! The spentbook: at each spend address, the one spend this node voted for
//! (`docs/DESIGN-currency.md`). An entry is written once, in a durable
//! commit before the node answers, and never changed or removed: a vote
//! is for ever.

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use safe_protocol::XorName;

use super::index::index_err;
use super::{NodeStore, NodeStoreError};

/// Spend address → format byte, spend hash, encoded signed spend.
pub(super) const SPENDS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("spends");

/// Format of a spentbook entry.
const ENTRY_FORMAT: u8 = 1;

/// The spend held at an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldSpend {
    /// Its hash.
    pub hash: [u8; 32],
    /// The encoded signed spend.
    pub spend: Vec<u8>,
}

fn decode(raw: &[u8]) -> Option<HeldSpend> {
    let (&format, rest) = raw.split_first()?;
    if format != ENTRY_FORMAT || rest.len() < 32 {
        return None;
    }
    let (hash, spend) = rest.split_at(32);
    Some(HeldSpend {
        hash: hash.try_into().ok()?,
        spend: spend.to_vec(),
    })
}

impl NodeStore {
    /// The spend this node holds (voted for) at `address`. Blocking.
    pub fn spend_at(&self, address: &XorName) -> Result<Option<HeldSpend>, NodeStoreError> {
        let txn = self.index.begin_read().map_err(index_err)?;
        let table = match txn.open_table(SPENDS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(index_err(e)),
        };
        Ok(table
            .get(address.0)
            .map_err(index_err)?
            .and_then(|v| decode(v.value())))
    }

    /// Holds `spend` (hash `hash`) at `address` unless a spend is held
    /// there already; returns what is held after, committed durably.
    /// Racing calls are serialised by the write transaction: exactly one
    /// spend is ever held at an address. Blocking.
    pub fn hold_spend(
        &self,
        address: &XorName,
        hash: [u8; 32],
        spend: &[u8],
    ) -> Result<HeldSpend, NodeStoreError> {
        self.check_disk(spend.len() as u64)?;
        let mut txn = self.index.begin_write().map_err(index_err)?;
        txn.set_durability(Durability::Immediate)
            .map_err(index_err)?;
        let held = {
            let mut table = txn.open_table(SPENDS).map_err(index_err)?;
            let existing = table
                .get(address.0)
                .map_err(index_err)?
                .map(|v| v.value().to_vec());
            match existing {
                Some(raw) => decode(&raw).ok_or_else(|| {
                    NodeStoreError::Corrupt(format!("spentbook entry at {address}"))
                })?,
                None => {
                    let mut raw = Vec::with_capacity(1 + 32 + spend.len());
                    raw.push(ENTRY_FORMAT);
                    raw.extend_from_slice(&hash);
                    raw.extend_from_slice(spend);
                    table.insert(address.0, raw.as_slice()).map_err(index_err)?;
                    HeldSpend {
                        hash,
                        spend: spend.to_vec(),
                    }
                }
            }
        };
        txn.commit().map_err(index_err)?;
        Ok(held)
    }
}
