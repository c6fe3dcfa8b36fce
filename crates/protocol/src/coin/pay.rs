//! Paying for storage (`docs/DESIGN-currency.md`, "Paying for storage,
//! version 1"): the price curve, signed quotes, the manifest one batch
//! spend pays, and the Merkle tree of the batch's chunk names.
//!
//! A client asks each node it will store with for one [`SignedQuote`],
//! pays every node `price × count` in one spend whose memo is the
//! [`Manifest`]'s hash, and then presents the certified spend to each
//! payee. A payee credits itself `count` chunks, each of which must be in
//! the batch (a [`ChunkPayment`]'s Merkle path to [`Manifest::batch`]).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{Key, SpendHash, WalletAddress};
use crate::XorName;

/// Format of quotes and manifests.
pub const PAY_FORMAT: u8 = 1;
/// Price of a chunk on an empty node, in nanos.
pub const BASE_PRICE: u64 = 1000;
/// Seconds a quote is good for after it is made.
pub const QUOTE_SECS: u64 = 600;
/// Seconds past a quote's expiry in which a payment for it is still
/// taken: the coins moved when the spend was made, and a spend carries no
/// time, so a certification that took long must not cost the client.
pub const QUOTE_GRACE: u64 = 600;
/// Most payees of one spend (one output each, and one for change).
pub const MAX_PAYEES: usize = super::MAX_OUTPUTS - 1;
/// Most names one quote request asks about.
pub const MAX_QUOTE_NAMES: usize = 1024;
/// Most sibling hashes in a chunk's path: 2^24 chunks (16 TiB) a batch.
pub const MAX_PATH: usize = 24;

/// Nanos a node asks per chunk when `used` of `capacity` bytes are taken:
/// `BASE × (10¹² + 15 p⁴) / (10⁹ (1000 − p))` with `p` the fill in per
/// mille, at most 990. Integers only; an empty node asks [`BASE_PRICE`].
pub fn price(used: u64, capacity: u64) -> u64 {
    let p = if capacity == 0 {
        990
    } else {
        (u128::from(used) * 1000 / u128::from(capacity)).min(990)
    };
    let num = u128::from(BASE_PRICE) * (1_000_000_000_000 + 15 * p * p * p * p);
    let den = 1_000_000_000 * (1000 - p);
    u64::try_from(num / den).unwrap_or(u64::MAX).max(1)
}

/// What a node asks to store chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// [`PAY_FORMAT`].
    pub format: u8,
    /// The network (its genesis key).
    pub genesis: Key,
    /// The node's ed25519 public key (its peer id's key).
    pub node: Key,
    /// Where the node is paid.
    pub reward: WalletAddress,
    /// Nanos per chunk.
    pub price: u64,
    /// Most chunks one payment may buy under it (a share of the node's
    /// free space: a cheap quote does not buy unlimited room).
    pub max_chunks: u32,
    /// Unix seconds after which the node no longer takes a payment made
    /// for it (after [`QUOTE_GRACE`] more, for a spend certified late).
    pub expires: u64,
}

/// A quote and its node's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedQuote {
    /// The quote.
    pub quote: Quote,
    /// ed25519 by `quote.node` over [`Quote::signing_bytes`].
    pub sig: Vec<u8>,
}

impl Quote {
    /// What the node signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = b"safe storage quote v1".to_vec();
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    /// Signed by `key` (which must be `self.node`'s).
    pub fn sign(self, key: &SigningKey) -> SignedQuote {
        let sig = key.sign(&self.signing_bytes()).to_bytes().to_vec();
        SignedQuote { quote: self, sig }
    }
}

impl SignedQuote {
    /// Whether `quote.node` signed it.
    pub fn valid(&self) -> bool {
        VerifyingKey::from_bytes(&self.quote.node)
            .ok()
            .zip(Signature::from_slice(&self.sig).ok())
            .is_some_and(|(k, s)| k.verify_strict(&self.quote.signing_bytes(), &s).is_ok())
    }
}

/// One payee of a batch. Entry `i` is paid by the spend's output `i`, so
/// no output can be claimed by two payees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The payee's quote.
    pub quote: SignedQuote,
    /// Chunks of the batch it is paid to store (1 to `chunks`, and at most
    /// the quote's `max_chunks`).
    pub count: u32,
}

/// What one batch spend pays for; its hash is the spend's memo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`PAY_FORMAT`].
    pub format: u8,
    /// Merkle root ([`batch_root`]) of the batch's chunk names.
    pub batch: [u8; 32],
    /// Names in the batch.
    pub chunks: u32,
    /// At most [`MAX_PAYEES`], distinct nodes; entry `i` is paid by
    /// output `i` of the spend.
    pub entries: Vec<Entry>,
}

/// Why a payment is refused; each says what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The network is free: its nodes have no genesis key.
    #[error("this network does not charge for storage")]
    Free,
    /// A put of a new chunk came with no payment.
    #[error("no payment for this chunk: storing on this network costs coins (see `safe wallet`)")]
    Unpaid,
    /// The payment named is not one this node was shown.
    #[error("this node was not shown that payment (send it before the chunks)")]
    UnknownPayment,
    /// The chunk is not in the batch the payment is for.
    #[error("the payment does not cover this chunk")]
    NotInBatch,
    /// Every chunk the payment pays this node for is stored.
    #[error("the payment's credit at this node is used up")]
    Exhausted,
    /// The manifest is malformed or is not the spend's memo.
    #[error("malformed payment: {0}")]
    Malformed(String),
    /// The manifest pays other nodes, not this one, or the output is not
    /// to this node's reward address.
    #[error("the payment is to another node")]
    WrongPayee,
    /// The output pays less than the quote times the count.
    #[error("underpaid: {paid} nanos for {owed} owed")]
    Underpaid {
        /// What the output pays.
        paid: u64,
        /// Price times count.
        owed: u128,
    },
    /// The quote has expired.
    #[error("the quote has expired; ask for a new one")]
    StaleQuote,
    /// The spend is not certified (or not on this network).
    #[error("the payment is not certified: {0}")]
    NotCertified(String),
}

impl Manifest {
    /// Its hash: the paying spend's memo.
    pub fn hash(&self) -> [u8; 32] {
        blake3::derive_key(
            "safe payment manifest v1",
            &postcard::to_stdvec(self).unwrap_or_default(),
        )
    }

    /// Checks what needs no keys: the format, the bounds, distinct payees
    /// and counts within the batch.
    pub fn check_form(&self) -> Result<(), PaymentError> {
        let bad = |s: &str| Err(PaymentError::Malformed(s.into()));
        if self.format != PAY_FORMAT {
            return bad("unknown manifest format");
        }
        if self.entries.is_empty() || self.entries.len() > MAX_PAYEES {
            return bad("1 to 63 payees");
        }
        if self.chunks == 0 || self.chunks > 1 << MAX_PATH {
            return bad("chunks out of range");
        }
        let mut nodes = std::collections::BTreeSet::new();
        for e in &self.entries {
            if e.count == 0 || e.count > self.chunks || e.count > e.quote.quote.max_chunks {
                return bad("a count is out of range");
            }
            if !nodes.insert(e.quote.quote.node) {
                return bad("a payee is named twice");
            }
        }
        Ok(())
    }

    /// The entry paying `node`, and its index (that of the output paying
    /// it).
    pub fn entry_for(&self, node: &Key) -> Option<(u32, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .find(|(_, e)| &e.quote.quote.node == node)
            .and_then(|(i, e)| Some((u32::try_from(i).ok()?, e)))
    }
}

/// What a put of a new chunk carries on a charging network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPayment {
    /// The spend that paid the batch.
    pub spend: SpendHash,
    /// The chunk's position in the batch.
    pub index: u32,
    /// Sibling hashes from the leaf up, at most [`MAX_PATH`].
    pub path: Vec<[u8; 32]>,
}

fn leaf(name: &XorName) -> [u8; 32] {
    blake3::derive_key("safe payment leaf v1", &name.0)
}

fn parent(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(left);
    both[32..].copy_from_slice(right);
    blake3::derive_key("safe payment node v1", &both)
}

/// Every level of the tree over `names`, leaves first.
fn levels(names: &[XorName]) -> Vec<Vec<[u8; 32]>> {
    let mut levels = vec![names.iter().map(leaf).collect::<Vec<_>>()];
    while levels.last().is_some_and(|l| l.len() > 1) {
        let below = levels.last().map(Vec::as_slice).unwrap_or_default();
        let up = below
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => parent(l, r),
                [odd] => *odd,
                _ => [0; 32],
            })
            .collect();
        levels.push(up);
    }
    levels
}

/// The Merkle root of `names` in order (leaves and inner nodes under
/// their own domains; an odd node is carried up unchanged).
pub fn batch_root(names: &[XorName]) -> [u8; 32] {
    levels(names)
        .last()
        .and_then(|l| l.first().copied())
        .unwrap_or_else(|| leaf(&XorName([0; 32])))
}

/// The path of every name in `names`, in order.
pub fn batch_paths(names: &[XorName]) -> Vec<Vec<[u8; 32]>> {
    let levels = levels(names);
    (0..names.len())
        .map(|i| {
            let mut path = Vec::new();
            let mut at = i;
            for level in &levels[..levels.len().saturating_sub(1)] {
                let sibling = at ^ 1;
                if let Some(h) = level.get(sibling) {
                    path.push(*h);
                }
                at /= 2;
            }
            path
        })
        .collect()
}

/// Whether `name` is at `index` of a batch of `count` names whose root is
/// `root`, by `path`.
pub fn in_batch(
    name: &XorName,
    index: u32,
    path: &[[u8; 32]],
    count: u32,
    root: &[u8; 32],
) -> bool {
    if index >= count || path.len() > MAX_PATH {
        return false;
    }
    let (mut at, mut width) = (index as u64, count as u64);
    let mut hash = leaf(name);
    let mut siblings = path.iter();
    while width > 1 {
        let sibling = at ^ 1;
        if sibling < width {
            let Some(s) = siblings.next() else {
                return false;
            };
            hash = if at % 2 == 0 {
                parent(&hash, s)
            } else {
                parent(s, &hash)
            };
        }
        at /= 2;
        width = width.div_ceil(2);
    }
    siblings.next().is_none() && &hash == root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_is_as_documented() {
        assert_eq!(price(0, 100), 1000);
        assert_eq!(price(50, 100), 3875);
        assert_eq!(price(90, 100), 108_415);
        assert_eq!(price(99, 100), 1_540_894);
        assert_eq!(price(200, 100), price(99, 100));
        assert_eq!(price(0, 0), price(99, 100));
        let mut last = 0;
        for used in 0..=100 {
            let p = price(used, 100);
            assert!(p >= last, "the price never falls as the store fills");
            last = p;
        }
    }

    #[test]
    fn every_name_proves_its_place_and_nothing_else_does() {
        for n in [1usize, 2, 3, 5, 8, 13, 100] {
            let names: Vec<XorName> = (0..n).map(|i| XorName::from_content(&[i as u8])).collect();
            let root = batch_root(&names);
            let paths = batch_paths(&names);
            for (i, name) in names.iter().enumerate() {
                assert!(
                    in_batch(name, i as u32, &paths[i], n as u32, &root),
                    "{n}/{i}"
                );
                let other = XorName::from_content(b"not in the batch");
                assert!(!in_batch(&other, i as u32, &paths[i], n as u32, &root));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(!in_batch(name, j as u32, &paths[i], n as u32, &root));
                    // (The count is not the prover's: it is the one the
                    // payee recorded from the manifest. With odd nodes
                    // carried up, one path can fit two counts.)
                }
                let mut longer = paths[i].clone();
                longer.push([0; 32]);
                assert!(!in_batch(name, i as u32, &longer, n as u32, &root));
            }
            assert!(!in_batch(&names[0], n as u32, &paths[0], n as u32, &root));
        }
        // An inner node is not a leaf: the root of two names does not
        // prove a one-name batch.
        let two = [XorName([1; 32]), XorName([2; 32])];
        assert_ne!(batch_root(&two[..1]), batch_root(&two));
    }

    #[test]
    fn a_quote_is_bound_to_its_signer_and_its_terms() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let reward = super::super::WalletKeys::from_secret(&[3; 32]).address();
        let quote = Quote {
            format: PAY_FORMAT,
            genesis: [1; 32],
            node: key.verifying_key().to_bytes(),
            reward,
            price: 1000,
            max_chunks: 100,
            expires: 10,
        }
        .sign(&key);
        assert!(quote.valid());
        let mut cheaper = quote.clone();
        cheaper.quote.price = 1;
        assert!(!cheaper.valid());
        let mut other = quote.clone();
        other.quote.node = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert!(!other.valid());
    }

    #[test]
    fn a_manifest_names_each_payee_once() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let reward = super::super::WalletKeys::from_secret(&[3; 32]).address();
        let quote = Quote {
            format: PAY_FORMAT,
            genesis: [1; 32],
            node: key.verifying_key().to_bytes(),
            reward,
            price: 1000,
            max_chunks: 2,
            expires: 10,
        }
        .sign(&key);
        let entry = Entry { quote, count: 2 };
        let mut m = Manifest {
            format: PAY_FORMAT,
            batch: [0; 32],
            chunks: 2,
            entries: vec![entry.clone()],
        };
        assert!(m.check_form().is_ok());
        m.entries.push(entry);
        assert!(m.check_form().is_err(), "a payee named twice");
        m.entries.pop();
        m.chunks = 3;
        m.entries[0].count = 3;
        assert!(m.check_form().is_err(), "more than the quote's max_chunks");
    }
}
