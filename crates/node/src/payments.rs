//! Storage payments on a node (`docs/DESIGN-currency.md`, "Paying for
//! storage, version 1"): its quote, taking a certified batch payment, and
//! the credit a put of a new chunk uses.
//!
//! Only a node given a genesis key (and in close groups of at least
//! [`MIN_CURRENCY_GROUP`]) charges; any other stores for free, as every
//! node did before the currency.

use safe_protocol::XorName;
use safe_protocol::coin::pay::{
    ChunkPayment, Manifest, PAY_FORMAT, PaymentError, QUOTE_GRACE, QUOTE_SECS, Quote, in_batch,
    price,
};
use safe_protocol::coin::{
    CertifiedSpend, Key, MIN_CURRENCY_GROUP, SpendHash, WalletAddress, WalletKeys,
};
use safe_protocol::messages::{Refusal, Response};

use crate::node::Node;
use crate::store::{Credit, Earning};

/// The network's genesis key if this node charges for storage.
pub(crate) fn charges(node: &Node) -> Option<Key> {
    node.genesis.filter(|_| node.k >= MIN_CURRENCY_GROUP)
}

/// The wallet a node is paid to when no reward address is given: derived
/// from its key, so the node (and whoever holds its key) can spend it.
pub fn reward_wallet(signing: &ed25519_dalek::SigningKey) -> WalletKeys {
    WalletKeys::from_secret(&blake3::derive_key(
        "safe node reward wallet v1",
        signing.as_bytes(),
    ))
}

/// Unix seconds now.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Most chunks one payment may buy at this node: an eighth of its free
/// room, counted in whole chunks, at least one.
fn max_chunks(used: u64, capacity: u64) -> u32 {
    let free = capacity.saturating_sub(used) / safe_protocol::MAX_CHUNK_SIZE as u64 / 8;
    u32::try_from(free).unwrap_or(u32::MAX).max(1)
}

/// Answers a [`safe_protocol::messages::Request::Quote`]: the price, and
/// which of `names` this node holds already (those cost nothing).
pub(crate) async fn quote(node: &Node, names: Vec<XorName>) -> Response {
    let Some(genesis) = charges(node) else {
        return Response::PaymentRefused(PaymentError::Free);
    };
    if names.len() > safe_protocol::coin::pay::MAX_QUOTE_NAMES {
        return Response::Refused(Refusal::OverLimit);
    }
    let held = node
        .blocking(move |s| {
            // Held: a chunk of that name, or a record at that address (a
            // create of it is free, and refused anyway), but never an
            // account's (whether one exists is not told). Each name is
            // looked up once, however often it is asked.
            let mut seen: std::collections::HashMap<XorName, bool> = Default::default();
            names
                .iter()
                .map(|n| {
                    if let Some(h) = seen.get(n) {
                        return Ok(*h);
                    }
                    let h = s.contains(n)?
                        || s.record(n)?
                            .is_some_and(|r| !safe_protocol::account::is_account(&r));
                    seen.insert(*n, h);
                    Ok(h)
                })
                .collect::<Result<Vec<bool>, crate::store::NodeStoreError>>()
        })
        .await;
    let Ok(held) = held else {
        return Response::Refused(Refusal::StorageFailed);
    };
    let quote = Quote {
        format: PAY_FORMAT,
        genesis,
        node: node.signing.verifying_key().to_bytes(),
        reward: node.reward,
        price: price(node.store.used(), node.store.capacity()),
        max_chunks: max_chunks(node.store.used(), node.store.capacity()),
        expires: now() + QUOTE_SECS,
    };
    Response::Quote {
        quote: quote.sign(&node.signing),
        held,
    }
}

/// Answers a [`safe_protocol::messages::Request::Pay`]: checks the
/// payment, cheapest first, and credits this node the chunks its entry
/// counts (once: a replay gets the credit already recorded).
pub(crate) async fn pay(
    node: &Node,
    payment: CertifiedSpend,
    manifest: Manifest,
    secret: [u8; 32],
) -> Response {
    match take(node, payment, manifest, secret).await {
        Ok(credit) => Response::Paid {
            remaining: credit.remaining,
        },
        Err(Ok(e)) => Response::PaymentRefused(e),
        Err(Err(r)) => Response::Refused(r),
    }
}

async fn take(
    node: &Node,
    payment: CertifiedSpend,
    manifest: Manifest,
    secret: [u8; 32],
) -> Result<Credit, Result<PaymentError, Refusal>> {
    let genesis = charges(node).ok_or(Ok(PaymentError::Free))?;
    let spend = &payment.spend.spend;
    if spend.genesis != genesis {
        return Err(Ok(PaymentError::NotCertified(
            "the spend is for another network".into(),
        )));
    }
    manifest.check_form().map_err(Ok)?;
    if spend.memo != manifest.hash() {
        return Err(Ok(PaymentError::Malformed(
            "the spend's memo is not the manifest's hash".into(),
        )));
    }
    let me = node.signing.verifying_key().to_bytes();
    let (index, entry) = manifest
        .entry_for(&me)
        .ok_or(Ok(PaymentError::WrongPayee))?;
    let quote = &entry.quote.quote;
    if !entry.quote.valid() || quote.genesis != genesis || quote.reward != node.reward {
        return Err(Ok(PaymentError::WrongPayee));
    }
    if quote.format != PAY_FORMAT {
        return Err(Ok(PaymentError::Malformed("unknown quote format".into())));
    }
    if quote.expires.saturating_add(QUOTE_GRACE) < now() {
        return Err(Ok(PaymentError::StaleQuote));
    }
    let output = usize::try_from(index)
        .ok()
        .and_then(|i| spend.outputs.get(i))
        .ok_or(Ok(PaymentError::WrongPayee))?;
    if !node.reward.paid_with(output, &secret) {
        return Err(Ok(PaymentError::WrongPayee));
    }
    let owed = u128::from(quote.price) * u128::from(entry.count);
    if u128::from(output.amount) < owed {
        return Err(Ok(PaymentError::Underpaid {
            paid: output.amount,
            owed,
        }));
    }
    let hash = spend.hash();
    // A payment taken already: its credit, whatever this request says
    // (checked before the certificates, which cost lookups).
    if let Some(credit) = node
        .blocking(move |s| s.credit(&hash.0))
        .await
        .map_err(|_| Err(Refusal::StorageFailed))?
    {
        return Ok(credit);
    }
    crate::spends::check_certified(node, &payment, &genesis)
        .await
        .map_err(|e| Ok(PaymentError::NotCertified(e)))?;
    let credit = Credit {
        batch: manifest.batch,
        chunks: manifest.chunks,
        remaining: entry.count,
    };
    let earned = Earning {
        spend: hash.0,
        output: index,
        amount: output.amount,
        receipt: spend
            .inputs
            .first()
            .map(|i| safe_protocol::coin::spend_address(&i.id(&genesis)).0),
    };
    let taken = node
        .blocking(move |s| s.take_payment(&hash.0, credit, earned))
        .await
        .map_err(|e| {
            tracing::error!(spend = %hash, "cannot record a payment: {e}");
            Err(Refusal::StorageFailed)
        })?;
    tracing::debug!(spend = %hash, chunks = taken.remaining, nanos = output.amount, "took a storage payment");
    Ok(taken)
}

/// Why a new chunk gets no credit.
pub(crate) enum NoCredit {
    /// The payment does not cover it.
    Payment(PaymentError),
    /// This node cannot take it (not its group, or its store failed).
    Node(Refusal),
}

impl From<NoCredit> for Response {
    fn from(n: NoCredit) -> Self {
        match n {
            NoCredit::Payment(e) => Response::PaymentRefused(e),
            NoCredit::Node(r) => Response::Refused(r),
        }
    }
}

/// Takes one chunk's credit for a new chunk `name` under `payment`;
/// the spend whose credit was used (to give it back if the chunk cannot
/// be stored after all).
pub(crate) async fn use_credit(
    node: &Node,
    name: &XorName,
    payment: Option<&ChunkPayment>,
) -> Result<SpendHash, NoCredit> {
    let refuse = |e| Err(NoCredit::Payment(e));
    let Some(payment) = payment else {
        return refuse(PaymentError::Unpaid);
    };
    // A paid put is taken only where it belongs: whoever has the batch's
    // chunks and paths (a payee, a forwarding member) cannot spend the
    // client's credit elsewhere.
    if !node.in_group(name).await {
        return Err(NoCredit::Node(Refusal::NotResponsible));
    }
    let hash = payment.spend;
    let credit = node
        .blocking(move |s| s.credit(&hash.0))
        .await
        .map_err(|_| NoCredit::Node(Refusal::StorageFailed))?;
    let Some(credit) = credit else {
        return refuse(PaymentError::UnknownPayment);
    };
    if !in_batch(
        name,
        payment.index,
        &payment.path,
        credit.chunks,
        &credit.batch,
    ) {
        return refuse(PaymentError::NotInBatch);
    }
    match node.blocking(move |s| s.use_credit(&hash.0)).await {
        Ok(Some(true)) => Ok(hash),
        Ok(Some(false)) => refuse(PaymentError::Exhausted),
        Ok(None) => refuse(PaymentError::UnknownPayment),
        Err(_) => Err(NoCredit::Node(Refusal::StorageFailed)),
    }
}

/// Gives back the credit [`use_credit`] took, for a chunk not stored.
pub(crate) async fn refund(node: &Node, spend: SpendHash) {
    if let Err(e) = node.blocking(move |s| s.refund_credit(&spend.0)).await {
        tracing::warn!(%spend, "cannot give back a chunk's credit: {e}");
    }
}

/// The reward address of a node with key `signing`, as configured.
pub(crate) fn reward_address(
    configured: Option<WalletAddress>,
    signing: &ed25519_dalek::SigningKey,
) -> WalletAddress {
    configured.unwrap_or_else(|| reward_wallet(signing).address())
}

/// Distinct members that must offer a chunk before a charging node
/// fetches it by replication: a chunk comes in unpaid only if more than a
/// malicious minority of its group (at most 2 of 5) vouch for it.
pub const OFFER_QUORUM: usize = 3;
/// Chunk names whose offerers are remembered at most (then forgotten at
/// once: the next replication round offers them again).
pub const OFFER_BOOK: usize = 16_384;

/// Who offered which chunk, on a charging node.
#[derive(Default)]
pub(crate) struct OfferBook(
    std::sync::Mutex<std::collections::HashMap<XorName, Vec<safe_network::libp2p::PeerId>>>,
);

impl OfferBook {
    /// Notes that `peer` offered `name`; whether [`OFFER_QUORUM`]
    /// distinct peers now have.
    pub(crate) fn vouched(&self, name: &XorName, peer: safe_network::libp2p::PeerId) -> bool {
        let mut book = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if book.len() >= OFFER_BOOK && !book.contains_key(name) {
            book.clear();
        }
        let offerers = book.entry(*name).or_default();
        if !offerers.contains(&peer) {
            offerers.push(peer);
        }
        if offerers.len() >= OFFER_QUORUM {
            book.remove(name);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safe_network::libp2p::PeerId;

    #[test]
    fn a_chunk_is_fetched_only_once_three_members_vouch_for_it() {
        let book = OfferBook::default();
        let name = XorName([3; 32]);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert!(!book.vouched(&name, a));
        assert!(!book.vouched(&name, a), "one member offering twice is one");
        assert!(!book.vouched(&name, b));
        assert!(book.vouched(&name, c));
    }

    #[test]
    fn a_quote_never_offers_more_than_an_eighth_of_the_free_room() {
        let chunk = safe_protocol::MAX_CHUNK_SIZE as u64;
        assert_eq!(max_chunks(0, 80 * chunk), 10);
        assert_eq!(max_chunks(80 * chunk, 80 * chunk), 1);
        assert_eq!(max_chunks(100 * chunk, 80 * chunk), 1);
    }
}
