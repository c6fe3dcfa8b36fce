//! Storage payments this node took (`docs/DESIGN-currency.md`, "Paying
//! for storage, version 1"): per paying spend, the batch it covers and the
//! chunks it may still store here; and what the node earned. Written in
//! durable commits before the node answers.

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::index::index_err;
use super::{NodeStore, NodeStoreError};

/// Spend hash → format, batch root, chunks in the batch, credit left.
const PAYMENTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("payments");
/// (Spend hash, output index) → nanos earned.
const EARNINGS: TableDefinition<([u8; 32], u32), u64> = TableDefinition::new("earnings");
/// Spend hash → its receipt: where the spend is kept (the spend address
/// of its first input), which a wallet takes the earning in with.
const RECEIPTS: TableDefinition<[u8; 32], [u8; 32]> = TableDefinition::new("earning_receipts");

/// Format of a payments entry.
const PAYMENT_FORMAT: u8 = 1;

/// A payment taken: what it covers, and how much of it is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    /// Merkle root of the batch's chunk names.
    pub batch: [u8; 32],
    /// Names in the batch.
    pub chunks: u32,
    /// New chunks this node will still store under the payment.
    pub remaining: u32,
}

impl Credit {
    fn encode(&self) -> [u8; 41] {
        let mut raw = [0u8; 41];
        raw[0] = PAYMENT_FORMAT;
        raw[1..33].copy_from_slice(&self.batch);
        raw[33..37].copy_from_slice(&self.chunks.to_le_bytes());
        raw[37..41].copy_from_slice(&self.remaining.to_le_bytes());
        raw
    }

    fn decode(raw: &[u8]) -> Option<Self> {
        if raw.len() != 41 || raw[0] != PAYMENT_FORMAT {
            return None;
        }
        Some(Self {
            batch: raw[1..33].try_into().ok()?,
            chunks: u32::from_le_bytes(raw[33..37].try_into().ok()?),
            remaining: u32::from_le_bytes(raw[37..41].try_into().ok()?),
        })
    }
}

/// One payment earned: which spend output, and how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Earning {
    /// The paying spend's hash.
    pub spend: [u8; 32],
    /// The output of it paying this node.
    pub output: u32,
    /// Nanos.
    pub amount: u64,
    /// Where the spend is kept (`safe wallet receive` takes it in from
    /// there); `None` for earnings recorded before receipts were kept.
    pub receipt: Option<[u8; 32]>,
}

fn corrupt(spend: &[u8; 32]) -> NodeStoreError {
    NodeStoreError::Corrupt(format!("payment entry {}", hex::encode(spend)))
}

impl NodeStore {
    /// The payment made by spend `spend`, if this node took it. Blocking.
    pub fn credit(&self, spend: &[u8; 32]) -> Result<Option<Credit>, NodeStoreError> {
        let txn = self.index.begin_read().map_err(index_err)?;
        let table = match txn.open_table(PAYMENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(index_err(e)),
        };
        match table.get(spend).map_err(index_err)? {
            Some(v) => Credit::decode(v.value())
                .map(Some)
                .ok_or_else(|| corrupt(spend)),
            None => Ok(None),
        }
    }

    /// Takes a verified payment: records `credit` and what it earned,
    /// unless the spend was taken before, in which case nothing changes
    /// (a replay earns nothing). Returns the credit as recorded. Blocking.
    pub fn take_payment(
        &self,
        spend: &[u8; 32],
        credit: Credit,
        earned: Earning,
    ) -> Result<Credit, NodeStoreError> {
        self.check_disk(64)?;
        let mut txn = self.index.begin_write().map_err(index_err)?;
        txn.set_durability(Durability::Immediate)
            .map_err(index_err)?;
        let held = {
            let mut table = txn.open_table(PAYMENTS).map_err(index_err)?;
            let existing = table
                .get(spend)
                .map_err(index_err)?
                .map(|v| v.value().to_vec());
            match existing {
                Some(raw) => Credit::decode(&raw).ok_or_else(|| corrupt(spend))?,
                None => {
                    table
                        .insert(spend, credit.encode().as_slice())
                        .map_err(index_err)?;
                    let mut earnings = txn.open_table(EARNINGS).map_err(index_err)?;
                    earnings
                        .insert((earned.spend, earned.output), earned.amount)
                        .map_err(index_err)?;
                    if let Some(receipt) = earned.receipt {
                        let mut receipts = txn.open_table(RECEIPTS).map_err(index_err)?;
                        receipts.insert(spend, receipt).map_err(index_err)?;
                    }
                    credit
                }
            }
        };
        txn.commit().map_err(index_err)?;
        Ok(held)
    }

    /// Takes one chunk's worth of the credit of spend `spend` (durable
    /// with the next [`NodeStore::flush`], as the chunk is).
    /// `Ok(None)` if the node took no such payment, `Ok(Some(false))` if
    /// it is used up. Racing calls are serialised by the write
    /// transaction, so no more chunks are ever taken than were paid for.
    /// Blocking.
    pub fn use_credit(&self, spend: &[u8; 32]) -> Result<Option<bool>, NodeStoreError> {
        self.adjust_credit(spend, |r| r.checked_sub(1))
    }

    /// Gives back a chunk's worth of credit taken by [`Self::use_credit`]
    /// for a chunk that then could not be stored. Blocking.
    pub fn refund_credit(&self, spend: &[u8; 32]) -> Result<(), NodeStoreError> {
        self.adjust_credit(spend, |r| r.checked_add(1)).map(|_| ())
    }

    fn adjust_credit(
        &self,
        spend: &[u8; 32],
        change: impl Fn(u32) -> Option<u32>,
    ) -> Result<Option<bool>, NodeStoreError> {
        let mut txn = self.index.begin_write().map_err(index_err)?;
        // Made durable by the store's next flush, as the chunk's index
        // entry is. A crash before it loses the decrement, while recovery
        // may keep the chunk from its segment: at most the puts since the
        // last flush are stored without using their credit.
        txn.set_durability(Durability::None).map_err(index_err)?;
        let done = {
            let mut table = match txn.open_table(PAYMENTS) {
                Ok(t) => t,
                Err(e) => return Err(index_err(e)),
            };
            let existing = table
                .get(spend)
                .map_err(index_err)?
                .map(|v| v.value().to_vec());
            let Some(raw) = existing else {
                return Ok(None);
            };
            let mut credit = Credit::decode(&raw).ok_or_else(|| corrupt(spend))?;
            match change(credit.remaining) {
                Some(r) => {
                    credit.remaining = r;
                    table
                        .insert(spend, credit.encode().as_slice())
                        .map_err(index_err)?;
                    true
                }
                None => false,
            }
        };
        txn.commit().map_err(index_err)?;
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
        Ok(Some(done))
    }

    /// Every payment this node earned. Blocking.
    pub fn earnings(&self) -> Result<Vec<Earning>, NodeStoreError> {
        let txn = self.index.begin_read().map_err(index_err)?;
        earnings_in(&txn)
    }
}

impl NodeStore {
    /// Up to `limit` earnings after `after` (spend hash, output), in
    /// order: callers page through them without holding them all.
    /// Blocking.
    pub fn earnings_after(
        &self,
        after: Option<([u8; 32], u32)>,
        limit: usize,
    ) -> Result<Vec<Earning>, NodeStoreError> {
        let txn = self.index.begin_read().map_err(index_err)?;
        earnings_page(&txn, after, limit)
    }
}

/// What the node whose store is in `dir` earned, read while it is stopped
/// ([`NodeStoreError::InUse`] while it runs: ask it on its metrics
/// address, `/earnings`).
pub fn read_earnings(dir: &std::path::Path) -> Result<Vec<Earning>, NodeStoreError> {
    super::read_index(dir, earnings_in)
}

fn earnings_in(txn: &redb::ReadTransaction) -> Result<Vec<Earning>, NodeStoreError> {
    earnings_page(txn, None, usize::MAX)
}

/// Up to `limit` earnings after `after`, with their receipts.
fn earnings_page(
    txn: &redb::ReadTransaction,
    after: Option<([u8; 32], u32)>,
    limit: usize,
) -> Result<Vec<Earning>, NodeStoreError> {
    let table = match txn.open_table(EARNINGS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(index_err(e)),
    };
    let receipts = match txn.open_table(RECEIPTS) {
        Ok(t) => Some(t),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(index_err(e)),
    };
    let rows = match after {
        Some(a) => table.range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
        None => table.range::<([u8; 32], u32)>(..),
    }
    .map_err(index_err)?;
    let mut out = Vec::new();
    for row in rows.take(limit) {
        let (k, v) = row.map_err(index_err)?;
        let (spend, output) = k.value();
        let receipt = match &receipts {
            Some(r) => r.get(&spend).map_err(index_err)?.map(|v| v.value()),
            None => None,
        };
        out.push(Earning {
            spend,
            output,
            amount: v.value(),
            receipt,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_is_taken_once_and_its_credit_never_overdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(NodeStore::open(dir.path(), 1 << 30).unwrap());
        let spend = [7; 32];
        let credit = Credit {
            batch: [1; 32],
            chunks: 10,
            remaining: 3,
        };
        let earned = Earning {
            spend,
            output: 2,
            amount: 3000,
            receipt: Some([5; 32]),
        };
        assert_eq!(store.credit(&spend).unwrap(), None);
        assert_eq!(store.use_credit(&spend).unwrap(), None, "no such payment");
        assert_eq!(store.take_payment(&spend, credit, earned).unwrap(), credit);
        // Racing puts: 3 credits, 8 takers, exactly 3 succeed.
        let takers: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || store.use_credit(&spend).unwrap())
            })
            .collect();
        let took = takers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|r| *r == Some(true))
            .count();
        assert_eq!(took, 3);
        assert_eq!(store.credit(&spend).unwrap().unwrap().remaining, 0);
        // A replayed payment changes nothing and earns nothing more.
        assert_eq!(
            store
                .take_payment(&spend, credit, earned)
                .unwrap()
                .remaining,
            0
        );
        assert_eq!(store.earnings().unwrap(), vec![earned]);
        // A refund gives one back; it survives a reopen.
        store.refund_credit(&spend).unwrap();
        store.flush().unwrap();
        drop(store);
        let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(store.credit(&spend).unwrap().unwrap().remaining, 1);
        assert_eq!(store.earnings().unwrap(), vec![earned]);
        // Read while stopped, from the files alone; refused while open.
        assert!(matches!(
            read_earnings(dir.path()),
            Err(NodeStoreError::InUse(_))
        ));
        drop(store);
        assert_eq!(read_earnings(dir.path()).unwrap(), vec![earned]);
    }
}
