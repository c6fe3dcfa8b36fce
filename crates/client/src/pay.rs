//! Paying for storage (issue 17; `docs/DESIGN-currency.md`, "Paying for
//! storage, version 1"): before an upload's chunks are put, the client
//! finds each chunk's close group, asks every node once for its quote,
//! and pays them all in one spend (one per [`MAX_PAYEES`] payees) whose
//! memo is the batch's manifest. It then shows each payee the certified
//! spend, and every put of the batch carries its chunk's Merkle path.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::future::join_all;
use safe_network::libp2p::PeerId;
use safe_protocol::XorName;
use safe_protocol::coin::pay::{
    ChunkPayment, Entry, MAX_PAYEES, MAX_QUOTE_NAMES, Manifest, PAY_FORMAT, PaymentError,
    SignedQuote, batch_paths, batch_root,
};
use safe_protocol::coin::{
    CertifiedSpend, Input, OneTimeKey, Parent, SignedSpend, Spend, SpendHash, WalletKeys,
};
use safe_protocol::messages::{Request, Response};

use crate::coin::CoinError;
use crate::network::Connection;

/// Most time a payment spends finishing earlier unfinished ones.
const FINISH_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);
/// Nodes asked whether the network charges.
const CHARGES_ASKED: usize = 7;
/// Answers that must agree (a majority of those that answer, and at
/// least this many where that many were asked).
const CHARGES_AGREE: usize = 2;
/// Most chunk payments a connection holds for puts not made yet (a
/// 1 TiB upload's worth).
pub const MAX_PENDING: usize = 1 << 20;

/// An output the client can spend: where it came from and its key.
pub struct Coin {
    /// The output, as an input names it.
    pub input: Input,
    /// Its one-time key.
    pub key: OneTimeKey,
    /// The certified spend that made it (none for the genesis output).
    pub parent: Option<CertifiedSpend>,
}

impl std::fmt::Debug for Coin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coin")
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

impl Coin {
    /// The outputs of `certified` that pay `wallet`.
    pub fn found(certified: &CertifiedSpend, wallet: &WalletKeys) -> Vec<Coin> {
        let hash = certified.spend.spend.hash();
        certified
            .spend
            .spend
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                let key = wallet.owns(o)?;
                Some(Coin {
                    input: Input {
                        parent: Parent::Spend(hash),
                        index: u32::try_from(i).ok()?,
                        amount: o.amount,
                        owner: o.owner,
                    },
                    key,
                    parent: Some(certified.clone()),
                })
            })
            .collect()
    }

    /// The genesis output of the network whose genesis key is `key`.
    pub fn genesis(key: &safe_protocol::mutable::SigningKey) -> Coin {
        Coin {
            input: Input {
                parent: Parent::Genesis,
                index: 0,
                amount: safe_protocol::coin::GENESIS_AMOUNT,
                owner: key.verifying_key().to_bytes(),
            },
            key: OneTimeKey::from_signing_key(key),
            parent: None,
        }
    }

    /// Nanos it holds.
    pub fn amount(&self) -> u64 {
        self.input.amount
    }
}

/// Why storage could not be paid for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayError {
    /// The cost is over the caller's limit.
    #[error("storing this costs {} coins, over the limit of {} (--max-cost); nothing was spent", safe_protocol::coin::format_amount(*cost), safe_protocol::coin::format_amount(*limit))]
    OverLimit {
        /// What it would cost.
        cost: u64,
        /// The limit.
        limit: u64,
    },
    /// The coins given do not cover the cost.
    #[error("your wallet holds {} coins and this needs {} (get coins sent to {address}: `safe wallet send` from a funded wallet; on a testnet, `safe wallet faucet`)", safe_protocol::coin::format_amount(*have), safe_protocol::coin::format_amount(*cost))]
    Insufficient {
        /// Nanos in the coins given.
        have: u64,
        /// What it costs.
        cost: u64,
        /// Where to send coins.
        address: String,
    },
    /// No node of some chunk's close group quoted.
    #[error("no node of chunk {0}'s close group gave a quote")]
    NoQuotes(XorName),
    /// The spend was not certified.
    #[error("the payment was not certified: {0}")]
    Spend(#[from] CoinError),
    /// Too many payees, chunks or pending payments.
    #[error("{0}")]
    TooLarge(String),
    /// The wallet could not be read or written.
    #[error(transparent)]
    Wallet(#[from] crate::wallet::WalletError),
    /// An earlier send went out and could not be finished yet.
    #[error(
        "an earlier send ({0}) went out and is not settled yet (its nodes did not answer); nothing more was sent: try again in a moment"
    )]
    SendUnsettled(String),
    /// An earlier send that was interrupted was finished instead of a new
    /// one.
    #[error("an earlier send from this wallet, interrupted half way, has now gone through ({}). Nothing more was sent; run the command again to send again", .0.iter().map(|l| format!("{} coins to {}", safe_protocol::coin::format_amount(l.amount), l.to)).collect::<Vec<_>>().join("; "))]
    FinishedEarlier(Vec<LateSend>),
    /// Another program kept the wallet too long ([`LOCK_WAIT`]).
    #[error("{0}")]
    WalletBusy(String),
    /// A send of nothing.
    #[error("nothing to send: the amount is 0")]
    NothingToSend,
    /// No spend is kept at a receipt.
    #[error("no spend found at {0} (a typo, another network, or its nodes did not answer)")]
    NoSpend(XorName),
    /// Drawing coins from the testnet faucet failed.
    #[error(transparent)]
    Faucet(#[from] crate::faucet::FaucetError),
    /// The faucet was asked for on a network that is not a testnet.
    #[error("this network is not a testnet: it has no faucet (get coins sent to {0})")]
    NotTestnet(String),
    /// The data directory's session could not be read.
    #[error("{0}")]
    Session(String),
    /// The account's wallet record could not be sealed, opened or created.
    #[error("{0}")]
    AccountWallet(String),
    /// The network does not charge for storage: there is nothing to pay
    /// with and no wallet on it.
    #[error(
        "this network does not charge for storage (or no node said that it does), so it has no coins"
    )]
    Free,
    /// Some of an upload's payments were made (and must be recorded:
    /// their coins are spent), then one failed.
    #[error("{error}")]
    Partial {
        /// Why the next payment failed.
        error: Box<PayError>,
        /// The payments made.
        paid: Box<Paid>,
    },
}

/// What paying for a batch did.
#[derive(Debug, Default)]
pub struct Paid {
    /// Nanos paid to nodes (change not counted).
    pub nanos: u64,
    /// Nodes paid.
    pub payees: usize,
    /// Nodes that took their payment (the others were paid, but will
    /// refuse the chunks: see [`Paid::refused`]).
    pub taken: usize,
    /// Why the payees that refused did.
    pub refused: Vec<String>,
    /// The spends that paid (one per [`MAX_PAYEES`] payees).
    pub spends: Vec<CertifiedSpend>,
    /// The coins left over (change), to spend next.
    pub change: Vec<Coin>,
    /// Whether the network charges at all (false: nothing was paid).
    pub charged: bool,
    /// Each payment shown to a payee, as it was sent (kept as the
    /// client's evidence: a signed quote and a certified payment).
    pub shown: Vec<Shown>,
}

/// A payment as shown to one payee.
#[derive(Clone, Debug)]
pub struct Shown {
    /// The payee.
    pub peer: PeerId,
    /// Index into [`Paid::spends`].
    pub spend: usize,
    /// The manifest the spend's memo commits to.
    pub manifest: Manifest,
    /// The secret of the payee's output.
    pub secret: [u8; 32],
}

/// The quote of each node that gave one.
type Quotes = HashMap<PeerId, SignedQuote>;

/// Each chunk's close group, each member's quote, and which members hold
/// which chunks already.
struct Survey {
    groups: BTreeMap<XorName, Vec<PeerId>>,
    quotes: Quotes,
    held: HashSet<(PeerId, XorName)>,
}

impl Survey {
    /// The members of `name`'s group that quoted and lack it: who is to
    /// be paid for it.
    fn payees(&self, name: &XorName) -> Vec<PeerId> {
        self.groups
            .get(name)
            .map(|g| {
                g.iter()
                    .filter(|p| self.quotes.contains_key(p) && !self.held.contains(&(**p, *name)))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Connection {
    /// `peer`'s quote, and which of `names` it holds; `Ok(None)` on a
    /// network that does not charge.
    pub async fn quote_for(
        &self,
        peer: PeerId,
        names: Vec<XorName>,
    ) -> Result<Option<(SignedQuote, Vec<bool>)>, String> {
        let asked = names.len();
        match self.request(peer, Request::Quote { names }).await {
            Ok(Response::Quote { quote, held })
                if quote.valid()
                    && held.len() == asked
                    && quote.quote.format == PAY_FORMAT
                    && quote.quote.max_chunks >= 1
                    && safe_network::close_group::peer_to_key(&peer) == Some(quote.quote.node) =>
            {
                Ok(Some((quote, held)))
            }
            Ok(Response::Quote { .. }) => {
                Err(format!("{peer}: a quote that is not its own, or malformed"))
            }
            Ok(Response::PaymentRefused(PaymentError::Free)) => Ok(None),
            Ok(other) => Err(format!("{peer}: {}", other.kind())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `peer`'s quote, `Ok(None)` on a network that does not charge.
    pub async fn quote(&self, peer: PeerId) -> Result<Option<SignedQuote>, String> {
        Ok(self.quote_for(peer, Vec::new()).await?.map(|(q, _)| q))
    }

    /// The network's genesis key if it charges for storage, `Ok(None)` if
    /// it is free (asked of the nodes this client knows, until one
    /// answers); an error if none answered.
    pub async fn charges(&self) -> Result<Option<safe_protocol::coin::Key>, String> {
        // Several nodes asked at once, and most of those that answer must
        // agree: one node alone cannot make a free network look charging,
        // or a real one look like a testnet.
        let peers: Vec<PeerId> = self
            .net
            .routing_peers()
            .await
            .into_iter()
            .take(CHARGES_ASKED)
            .collect();
        let answers = join_all(peers.iter().map(|p| self.quote(*p))).await;
        let mut said: Vec<(Option<safe_protocol::coin::Key>, usize)> = Vec::new();
        let mut errors = Vec::new();
        let mut answered = 0usize;
        for answer in answers {
            match answer {
                Ok(q) => {
                    answered += 1;
                    let this = q.map(|q| q.quote.genesis);
                    match said.iter_mut().find(|(v, _)| *v == this) {
                        Some((_, n)) => *n += 1,
                        None => said.push((this, 1)),
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let need = (answered / 2 + 1).max(CHARGES_AGREE.min(peers.len()));
        match said.into_iter().max_by_key(|(_, n)| *n) {
            Some((value, n)) if n >= need => Ok(value),
            Some(_) => {
                Err("nodes disagree on whether storing costs anything, or in which coin".into())
            }
            None => Err(format!(
                "no node said whether storing costs anything ({})",
                errors.join("; ")
            )),
        }
    }

    /// What storing the chunks `names` would cost now, in nanos (0 on a
    /// free network, and nothing for a chunk a node holds already),
    /// without paying.
    pub async fn price_of(&self, names: &[XorName]) -> Result<u64, PayError> {
        let survey = self.survey(names).await;
        let mut cost: u128 = 0;
        for name in survey.groups.keys() {
            for peer in survey.payees(name) {
                if let Some(q) = survey.quotes.get(&peer) {
                    cost += u128::from(q.quote.price);
                }
            }
        }
        u64::try_from(cost).map_err(|_| PayError::TooLarge("the cost overflows".into()))
    }

    async fn survey(&self, names: &[XorName]) -> Survey {
        let unique: Vec<XorName> = {
            let mut seen = HashSet::new();
            names.iter().copied().filter(|n| seen.insert(*n)).collect()
        };
        // Each chunk's group as its put will find it: the first one found
        // alone (on a small network that one wide lookup gives every
        // group), the rest at once.
        let mut groups: BTreeMap<XorName, Vec<PeerId>> = BTreeMap::new();
        if let Some(first) = unique.first() {
            groups.insert(*first, self.chunk_group(first).await.0);
        }
        groups.extend(
            join_all(
                unique
                    .iter()
                    .skip(1)
                    .map(|n| async move { (*n, self.chunk_group(n).await.0) }),
            )
            .await,
        );
        let mut asks: HashMap<PeerId, Vec<XorName>> = HashMap::new();
        for (name, group) in &groups {
            for peer in group {
                asks.entry(*peer).or_default().push(*name);
            }
        }
        let answers = join_all(asks.into_iter().flat_map(|(peer, names)| {
            names
                .chunks(MAX_QUOTE_NAMES)
                .map(|part| {
                    let part = part.to_vec();
                    async move { (peer, part.clone(), self.quote_for(peer, part).await) }
                })
                .collect::<Vec<_>>()
        }))
        .await;
        let mut quotes = Quotes::new();
        let mut held = HashSet::new();
        let mut failed = HashSet::new();
        for (peer, names, answer) in answers {
            match answer {
                Ok(Some((q, has))) => {
                    quotes.entry(peer).or_insert(q);
                    for (name, h) in names.iter().zip(has) {
                        if h {
                            held.insert((peer, *name));
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(%peer, "no quote: {e}");
                    failed.insert(peer);
                }
            }
        }
        // A member that failed on part of its names is not paid at all.
        for peer in failed {
            quotes.remove(&peer);
        }
        Survey {
            groups,
            quotes,
            held,
        }
    }

    /// Pays for storing the chunks `names` (an upload's, in order) from
    /// `coins` of `wallet`, the change going back to it; at most
    /// `max_cost` nanos.
    /// Every put of these chunks through this connection then carries
    /// its payment. On a network that does not charge, pays nothing.
    pub async fn pay_for(
        &self,
        names: &[XorName],
        coins: Vec<Coin>,
        wallet: &WalletKeys,
        max_cost: Option<u64>,
    ) -> Result<Paid, PayError> {
        self.pay_for_with(names, coins, wallet, max_cost, &Hooks::NONE)
            .await
    }

    /// [`Connection::pay_for`], telling `hooks` what it is about to pay
    /// and each spend before it goes out.
    pub async fn pay_for_with(
        &self,
        names: &[XorName],
        coins: Vec<Coin>,
        wallet: &WalletKeys,
        max_cost: Option<u64>,
        hooks: &Hooks<'_>,
    ) -> Result<Paid, PayError> {
        let show = hooks.show;
        let names: Vec<XorName> = {
            let mut seen = HashSet::new();
            names.iter().copied().filter(|n| seen.insert(*n)).collect()
        };
        let survey = self.survey(&names).await;
        let quotes = &survey.quotes;
        if quotes.is_empty() {
            return Ok(Paid {
                change: coins,
                ..Paid::default()
            });
        }
        // Cut the upload into batches of at most MAX_PAYEES payees.
        let mut batches: Vec<(Vec<XorName>, BTreeMap<PeerId, u32>)> = Vec::new();
        for name in &names {
            let group = survey.payees(name);
            if group.is_empty() {
                if survey
                    .groups
                    .get(name)
                    .is_some_and(|g| g.iter().any(|p| survey.held.contains(&(*p, *name))))
                {
                    // Held by every member that quoted: stored free.
                    continue;
                }
                return Err(PayError::NoQuotes(*name));
            }
            let fits = batches.last().is_some_and(|(_, counts)| {
                counts.len() + group.iter().filter(|p| !counts.contains_key(p)).count()
                    <= MAX_PAYEES
            });
            if !fits {
                batches.push((Vec::new(), BTreeMap::new()));
            }
            if let Some((batch, counts)) = batches.last_mut() {
                batch.push(*name);
                for p in group {
                    *counts.entry(p).or_default() += 1;
                }
            }
        }
        let cost: u128 = batches
            .iter()
            .flat_map(|(_, counts)| counts.iter())
            .map(|(p, n)| {
                quotes
                    .get(p)
                    .map_or(0, |q| u128::from(q.quote.price) * u128::from(*n))
            })
            .sum();
        let cost =
            u64::try_from(cost).map_err(|_| PayError::TooLarge("the cost overflows".into()))?;
        if let Some(limit) = max_cost.filter(|&l| cost > l) {
            return Err(PayError::OverLimit { cost, limit });
        }
        let have: u64 = coins.iter().map(Coin::amount).fold(0, u64::saturating_add);
        if have < cost {
            return Err(PayError::Insufficient {
                have,
                cost,
                address: wallet.address().to_string(),
            });
        }
        if self.payments.lock().map_or(0, |p| p.len()) + names.len() > MAX_PENDING {
            return Err(PayError::TooLarge(format!(
                "{} chunks to pay for at once; at most {MAX_PENDING}",
                names.len()
            )));
        }
        if cost > 0 {
            show(cost, batches.iter().map(|(b, _)| b.len()).sum());
        }
        let mut paid = Paid {
            charged: true,
            change: coins,
            ..Paid::default()
        };
        for (batch, counts) in batches {
            if let Err(error) = self
                .pay_batch(&batch, &counts, quotes, wallet, hooks, &mut paid)
                .await
            {
                if paid.spends.is_empty() {
                    return Err(error);
                }
                return Err(PayError::Partial {
                    error: Box::new(error),
                    paid: Box::new(paid),
                });
            }
        }
        Ok(paid)
    }

    /// One spend paying every node of `counts`, from `paid.change`.
    async fn pay_batch(
        &self,
        names: &[XorName],
        counts: &BTreeMap<PeerId, u32>,
        quotes: &Quotes,
        wallet: &WalletKeys,
        hooks: &Hooks<'_>,
        paid: &mut Paid,
    ) -> Result<(), PayError> {
        let chunks = u32::try_from(names.len())
            .map_err(|_| PayError::TooLarge("too many chunks in one batch".into()))?;
        let mut entries = Vec::new();
        let mut payees = Vec::new();
        let mut outputs = Vec::new();
        let mut secrets = Vec::new();
        let mut owed: u64 = 0;
        for (peer, &count) in counts {
            let Some(quote) = quotes.get(peer) else {
                continue;
            };
            let count = count.min(quote.quote.max_chunks);
            let amount = quote
                .quote
                .price
                .checked_mul(u64::from(count))
                .ok_or_else(|| PayError::TooLarge("a payment overflows".into()))?;
            let (output, secret) =
                quote.quote.reward.pay_revealing(amount).ok_or_else(|| {
                    PayError::TooLarge("a node's reward address is invalid".into())
                })?;
            owed = owed
                .checked_add(amount)
                .ok_or_else(|| PayError::TooLarge("the cost overflows".into()))?;
            entries.push(Entry {
                quote: quote.clone(),
                count,
            });
            payees.push(*peer);
            outputs.push(output);
            secrets.push(secret);
        }
        let (spent, total) = take_coins(&mut paid.change, owed, wallet)?;
        if total > owed {
            let back = wallet
                .address()
                .pay(total - owed)
                .ok_or_else(|| PayError::TooLarge("the change address is invalid".into()))?;
            outputs.push(back);
        }
        let manifest = Manifest {
            format: PAY_FORMAT,
            batch: batch_root(names),
            chunks,
            entries,
        };
        // What every payee will check, checked before any coin moves.
        if let Err(e) = manifest.check_form() {
            paid.change.extend(spent);
            return Err(PayError::TooLarge(format!("cannot pay this batch: {e}")));
        }
        let genesis = spent
            .first()
            .and_then(|c| c.parent.as_ref().map(|p| p.spend.spend.genesis))
            .or_else(|| quotes.values().next().map(|q| q.quote.genesis))
            .unwrap_or_default();
        let spend = Spend {
            genesis,
            inputs: spent.iter().map(|c| c.input).collect(),
            outputs,
            memo: manifest.hash().to_vec(),
        };
        let keys: Vec<&OneTimeKey> = spent.iter().map(|c| &c.key).collect();
        let parents: Vec<CertifiedSpend> = spent.iter().filter_map(|c| c.parent.clone()).collect();
        let signed = SignedSpend::sign(spend, &keys);
        if let Err(e) = (hooks.sending)(&signed, &parents) {
            paid.change.extend(spent);
            return Err(e);
        }
        let certified = match self.certify(&signed, &parents).await {
            Ok(c) => c,
            Err(e) => {
                // Not certified: the coins may still be spendable (or
                // spent by this very spend at some inputs; the wallet's
                // next look at the network tells).
                paid.change.extend(spent);
                return Err(e.into());
            }
        };
        (hooks.certified)(&certified, owed)?;
        // Show each payee its payment.
        let answers = join_all(payees.iter().zip(&secrets).map(|(peer, secret)| {
            let request = Request::Pay {
                payment: certified.clone(),
                manifest: manifest.clone(),
                secret: *secret,
            };
            async move { (*peer, self.request(*peer, request).await) }
        }))
        .await;
        for (peer, answer) in answers {
            match answer {
                Ok(Response::Paid { .. }) => paid.taken += 1,
                Ok(other) => paid.refused.push(format!("{peer}: {}", other.kind())),
                Err(e) => paid.refused.push(e.to_string()),
            }
        }
        paid.payees += payees.len();
        for (peer, secret) in payees.iter().zip(&secrets) {
            paid.shown.push(Shown {
                peer: *peer,
                spend: paid.spends.len(),
                manifest: manifest.clone(),
                secret: *secret,
            });
        }
        paid.nanos = paid.nanos.saturating_add(owed);
        let hash = certified.spend.spend.hash();
        if let Ok(mut pending) = self.payments.lock() {
            for (i, (name, path)) in names.iter().zip(batch_paths(names)).enumerate() {
                pending.insert(
                    *name,
                    ChunkPayment {
                        spend: hash,
                        index: i as u32,
                        path,
                    },
                );
            }
        }
        // The change of this spend pays for the next batch.
        paid.change.extend(Coin::found(&certified, wallet));
        paid.spends.push(certified);
        Ok(())
    }

    /// The payment made for chunk `name`, if one is pending.
    pub(crate) fn payment_for(&self, name: &XorName) -> Option<ChunkPayment> {
        self.payments.lock().ok()?.get(name).cloned()
    }

    /// Forgets the payment for `name` once the chunk is stored.
    pub(crate) fn paid(&self, name: &XorName) {
        if let Ok(mut p) = self.payments.lock() {
            p.remove(name);
        }
    }
}

/// Takes from `coins` enough to cover `owed` (largest first, at most
/// [`safe_protocol::coin::MAX_INPUTS`]); returns them and their total.
/// `coins` is left as it was if they do not cover it.
fn take_coins(
    coins: &mut Vec<Coin>,
    owed: u64,
    wallet: &WalletKeys,
) -> Result<(Vec<Coin>, u64), PayError> {
    coins.sort_by_key(Coin::amount);
    let mut spent = Vec::new();
    let mut total: u64 = 0;
    while total < owed && spent.len() < safe_protocol::coin::MAX_INPUTS {
        let Some(c) = coins.pop() else {
            break;
        };
        total = total.saturating_add(c.amount());
        spent.push(c);
    }
    if total < owed {
        let have = coins
            .iter()
            .chain(&spent)
            .map(Coin::amount)
            .fold(0, u64::saturating_add);
        let most = total;
        coins.extend(spent);
        return Err(if have >= owed {
            PayError::TooLarge(format!(
                "one spend takes at most {} coins, and the wallet's {} largest hold {}: pay or send in parts (sending yourself that much merges them)",
                safe_protocol::coin::MAX_INPUTS,
                safe_protocol::coin::MAX_INPUTS,
                safe_protocol::coin::format_amount(most)
            ))
        } else {
            PayError::Insufficient {
                have,
                cost: owed,
                address: wallet.address().to_string(),
            }
        });
    }
    Ok((spent, total))
}

impl Connection {
    /// Sends `amount` nanos from `coins` (of `wallet`) to `to` in one
    /// certified spend, the change back to `wallet`. Returns the spend and
    /// the coins left (the unspent ones and the change).
    pub async fn send_coins(
        &self,
        mut coins: Vec<Coin>,
        wallet: &WalletKeys,
        to: &safe_protocol::coin::WalletAddress,
        amount: u64,
        hooks: &Hooks<'_>,
    ) -> Result<(CertifiedSpend, Vec<Coin>), PayError> {
        if amount == 0 {
            return Err(PayError::NothingToSend);
        }
        let (spent, total) = take_coins(&mut coins, amount, wallet)?;
        let bad = || PayError::TooLarge("the wallet address holds an invalid key".into());
        let mut outputs = vec![to.pay(amount).ok_or_else(bad)?];
        if total > amount {
            outputs.push(wallet.address().pay(total - amount).ok_or_else(bad)?);
        }
        let genesis = spent
            .first()
            .and_then(|c| c.parent.as_ref().map(|p| p.spend.spend.genesis))
            .unwrap_or_default();
        let spend = Spend {
            genesis,
            inputs: spent.iter().map(|c| c.input).collect(),
            outputs,
            memo: Vec::new(),
        };
        let keys: Vec<&OneTimeKey> = spent.iter().map(|c| &c.key).collect();
        let parents: Vec<CertifiedSpend> = spent.iter().filter_map(|c| c.parent.clone()).collect();
        let signed = SignedSpend::sign(spend, &keys);
        (hooks.sending)(&signed, &parents)?;
        let certified = self.certify(&signed, &parents).await?;
        coins.extend(Coin::found(&certified, wallet));
        Ok((certified, coins))
    }
}

/// Pays for what a [`crate::Client`] stores, from the wallet in its data
/// directory, when the network charges: a whole upload at once where the
/// chunks are known first ([`Payer::pay_names`]), else the chunks put at
/// about the same moment in one batch ([`Payer::ensure_paid`]).
pub struct Payer {
    home: crate::home::Home,
    /// Pay from the data directory's own wallet even when it is logged in.
    own: bool,
    /// Where the wallet is kept, found on first use.
    place: std::sync::OnceLock<Place>,
    max_cost: std::sync::Mutex<Option<u64>>,
    /// The network's genesis key if it charges (asked until a node says).
    charges: tokio::sync::OnceCell<Option<safe_protocol::coin::Key>>,
    /// One payment at a time (they spend the same coins).
    gate: tokio::sync::Mutex<()>,
    /// Chunks waiting for the next batch payment.
    waiting: std::sync::Mutex<Vec<XorName>>,
    /// Nanos paid so far.
    paid: std::sync::atomic::AtomicU64,
    /// Nanos drawn from the testnet faucet so far.
    drawn: std::sync::atomic::AtomicU64,
    /// Told each payment's cost and chunks before it is made.
    show: std::sync::Mutex<Option<ShowCost>>,
    /// Which testnet this is, on a testnet ([`Connection::testnet_id`]).
    testnet: tokio::sync::OnceCell<safe_protocol::coin::SpendHash>,
}

impl std::fmt::Debug for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payer").finish_non_exhaustive()
    }
}

/// How long a put that needs paying for waits for others to join its
/// batch.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);
/// How long a payment waits for another program paying from the same
/// wallet.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Where a payer's wallet is kept: the logged-in account's
/// ([`crate::account_wallet`]) or the data directory's own.
struct Place {
    dir: std::path::PathBuf,
    account: Option<crate::account::Account>,
}

/// A wallet held for one payment (released on drop: the file lock goes
/// with the file).
pub(crate) struct WalletLock<'a> {
    _gate: tokio::sync::MutexGuard<'a, ()>,
    _file: std::fs::File,
}

/// A send finished late (by the next payment of its wallet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateSend {
    /// The recipient.
    pub to: safe_protocol::coin::WalletAddress,
    /// Where the spend is kept ([`receipt`]).
    pub receipt: XorName,
    /// Nanos sent.
    pub amount: u64,
}

/// What a payment tells its caller as it goes.
pub struct Hooks<'a> {
    /// The cost in nanos and the chunks, once within the limit and the
    /// coins, before any coin moves.
    pub show: &'a (dyn Fn(u64, usize) + Sync),
    /// Each spend (and its inputs' parents) just before it goes out to be
    /// certified: a wallet keeps it, so that a spend sent and never
    /// recorded (the program was killed) is finished later. An error
    /// stops the payment before the spend goes out.
    pub sending: &'a Sending<'a>,
    /// Each spend of the payment once certified, with the nanos it pays
    /// to nodes: the wallet records it at once (an upload of many
    /// batches keeps no more than one spend pending).
    pub certified: &'a Certified<'a>,
}

/// What [`Hooks::sending`] is.
pub type Sending<'a> = dyn Fn(&SignedSpend, &[CertifiedSpend]) -> Result<(), PayError> + Sync + 'a;
/// What [`Hooks::certified`] is.
pub type Certified<'a> = dyn Fn(&CertifiedSpend, u64) -> Result<(), PayError> + Sync + 'a;

impl Hooks<'static> {
    /// Told nothing.
    pub const NONE: Hooks<'static> = Hooks {
        show: &|_, _| {},
        sending: &|_, _| Ok(()),
        certified: &|_, _| Ok(()),
    };
}

/// What a recipient is given to find a spend: where it is kept (the
/// address of its first input's spend record).
pub fn receipt(spend: &CertifiedSpend) -> Option<XorName> {
    receipt_of(&spend.spend.spend)
}

/// [`receipt`] of a spend not certified yet.
pub fn receipt_of(spend: &Spend) -> Option<XorName> {
    let first = spend.inputs.first()?;
    Some(safe_protocol::coin::spend_address(
        &first.id(&spend.genesis),
    ))
}

/// The history's word for a storage payment.
const PAID: &str = "paid for storage";
/// The history's words for a send begin so.
const SENT: &str = "sent to ";

/// What is told a payment's cost in nanos and its chunks before it is made.
pub type ShowCost = std::sync::Arc<dyn Fn(u64, usize) + Send + Sync>;

/// Most faucet draws one payment makes on a testnet (each is
/// [`crate::faucet::DRIP`]); an upload that costs more is refused as
/// unfunded.
pub const MAX_DRAWS: usize = 10;
/// Most times a payment from an account's wallet is made again after
/// another machine of the account spent one of its coins first.
const MAX_RACES: usize = 3;
/// Most chunks one lazily gathered batch pays for.
const MAX_LAZY_BATCH: usize = 4096;

impl Payer {
    /// Paying from the wallet of `home`.
    /// While `home` is logged in, the account's wallet pays
    /// ([`crate::account_wallet`]); else the data directory's own.
    pub fn new(home: crate::home::Home) -> Self {
        Self::with(home, false)
    }

    /// Paying from the own wallet of data directory `home`, logged in or
    /// not (to move its coins into the account's).
    pub fn own(home: crate::home::Home) -> Self {
        Self::with(home, true)
    }

    fn with(home: crate::home::Home, own: bool) -> Self {
        Self {
            home,
            own,
            place: std::sync::OnceLock::new(),
            max_cost: std::sync::Mutex::new(None),
            charges: tokio::sync::OnceCell::new(),
            gate: tokio::sync::Mutex::new(()),
            waiting: std::sync::Mutex::new(Vec::new()),
            paid: std::sync::atomic::AtomicU64::new(0),
            drawn: std::sync::atomic::AtomicU64::new(0),
            show: std::sync::Mutex::new(None),
            testnet: tokio::sync::OnceCell::new(),
        }
    }

    fn place(&self) -> Result<&Place, PayError> {
        if let Some(p) = self.place.get() {
            return Ok(p);
        }
        let account = if self.own {
            None
        } else {
            self.home
                .session()
                .load()
                .map_err(|e| PayError::Session(e.to_string()))?
        };
        let dir = match &account {
            Some(a) => crate::account_wallet::wallet_dir(&self.home, a),
            None => self.home.wallet_dir(),
        };
        Ok(self.place.get_or_init(|| Place { dir, account }))
    }

    /// The account whose wallet pays, if the data directory is logged in
    /// (and this payer is not [`Payer::own`]).
    pub fn account(&self) -> Result<Option<&crate::account::Account>, PayError> {
        Ok(self.place()?.account.as_ref())
    }

    /// The paying wallet's keys (the same on every network).
    pub fn keys(&self) -> Result<WalletKeys, PayError> {
        Ok(match &self.place()?.account {
            Some(a) => WalletKeys::from_secret(&crate::account_wallet::wallet_secret(a)),
            None => crate::wallet::Wallet::keys_of(&self.home)?,
        })
    }

    /// The paying wallet on the network `genesis` and `instance` say, as
    /// kept on this machine.
    fn open_at(
        &self,
        genesis: &safe_protocol::coin::Key,
        instance: Option<&[u8; 32]>,
    ) -> Result<crate::wallet::Wallet, PayError> {
        let dir = &self.place()?.dir;
        Ok(crate::wallet::Wallet::open_in(
            dir,
            self.keys()?,
            genesis,
            instance,
        )?)
    }

    /// After a change to `wallet` (held): an account's wallet record is
    /// brought up to date (if that fails, the next payment does it).
    pub(crate) async fn after(&self, conn: &Connection, wallet: &crate::wallet::Wallet) {
        let Ok(Some(account)) = self.account() else {
            return;
        };
        let Some(genesis) = wallet.genesis().or(self.charges(conn).await) else {
            return;
        };
        let mut written = crate::account_wallet::sync_after(conn, wallet, account, &genesis).await;
        if let Ok(crate::account_wallet::Written::PayFor(name)) = written {
            // The record is created once, paid for as any record is.
            written = match self.pay_with(conn, wallet, &[name]).await {
                Ok(_) => crate::account_wallet::sync_after(conn, wallet, account, &genesis).await,
                Err(e) => Err(e),
            };
            if let Ok(crate::account_wallet::Written::PayFor(_)) = written {
                written = Err(PayError::AccountWallet(
                    "the wallet record's creation could not be paid for".into(),
                ));
            }
        }
        if let Err(e) = written {
            tracing::warn!(
                "the account's wallet record is behind (the next payment writes it): {e}"
            );
        }
    }

    /// Refuses any one payment over `max` nanos (`--max-cost`).
    pub fn set_max_cost(&self, max: Option<u64>) {
        if let Ok(mut m) = self.max_cost.lock() {
            *m = max;
        }
    }

    /// Calls `show(cost, chunks)` before each payment is made (after the
    /// `--max-cost` check): how a command shows the cost first.
    pub fn on_cost(&self, show: ShowCost) {
        if let Ok(mut s) = self.show.lock() {
            *s = Some(show);
        }
    }

    /// Nanos paid through this payer so far.
    pub fn paid(&self) -> u64 {
        self.paid.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The network's genesis key if it charges. If no node answers, the
    /// network is taken as free for now (a put then says what it lacks)
    /// and asked again next time.
    pub async fn charges(&self, conn: &Connection) -> Option<safe_protocol::coin::Key> {
        match self.charges.get_or_try_init(|| conn.charges()).await {
            Ok(charges) => *charges,
            Err(e) => {
                tracing::debug!("{e}");
                None
            }
        }
    }

    /// Holds the wallet for one payment: this payer's gate, then the
    /// wallet directory's lock file, which other payers (in this process
    /// or another) of the same data directory wait for. The wallet is read
    /// after, so a payment spends what the one before it left.
    pub(crate) async fn lock(&self) -> Result<WalletLock<'_>, PayError> {
        let gate = self.gate.lock().await;
        let dir = self.place()?.dir.clone();
        let path = dir.join("lock");
        let io = |source| {
            PayError::Wallet(crate::wallet::WalletError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(PayError::WalletBusy(format!(
                        "another program has held the wallet in {} for {}s; try again when it is done",
                        dir.display(),
                        LOCK_WAIT.as_secs()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        Ok(WalletLock {
            _gate: gate,
            _file: file,
        })
    }

    /// [`Payer::wallet`], held (see [`LOCK_WAIT`]) while it is opened:
    /// for a command that reads the wallet, since opening it on a testnet
    /// may draw into it.
    pub async fn open_wallet(
        &self,
        conn: &Connection,
    ) -> Result<Option<crate::wallet::Wallet>, PayError> {
        let _one = self.lock().await?;
        let wallet = self.wallet(conn).await?;
        if let Some(w) = &wallet {
            self.after(conn, w).await;
        }
        Ok(wallet)
    }

    /// Nanos drawn from the testnet faucet through this payer so far.
    pub fn drawn(&self) -> u64 {
        self.drawn.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The wallet of this payer's data directory on `conn`'s network, if
    /// it charges. On a testnet, where every network shares the genesis
    /// key, the coins of each testnet are kept apart (by its first faucet
    /// draw, which this makes if nobody has yet).
    pub async fn wallet(
        &self,
        conn: &Connection,
    ) -> Result<Option<crate::wallet::Wallet>, PayError> {
        let Some(genesis) = self.charges(conn).await else {
            return Ok(None);
        };
        let wallet = if crate::faucet::is_testnet(&genesis) {
            let id = self
                .testnet
                .get_or_try_init(|| self.first_draw(conn, &genesis))
                .await?;
            self.open_at(&genesis, Some(&id.0))?
        } else {
            self.open_at(&genesis, None)?
        };
        if let Some(account) = self.account()? {
            crate::account_wallet::sync_before(conn, &wallet, account, &genesis).await?;
        }
        Ok(Some(wallet))
    }

    /// Which testnet `conn` reaches; if nobody has drawn from its faucet
    /// yet, draws first (into this payer's wallet).
    async fn first_draw(
        &self,
        conn: &Connection,
        genesis: &safe_protocol::coin::Key,
    ) -> Result<safe_protocol::coin::SpendHash, PayError> {
        if let Some(id) = conn.testnet_id().await {
            return Ok(id);
        }
        let keys = self.keys()?;
        let drawn = conn.draw_from_faucet(&keys.address(), None).await?;
        let first = Coin::genesis(&crate::faucet::testnet_genesis_key()).input;
        let id = if drawn.spend.spend.inputs.contains(&first) {
            drawn.spend.spend.hash()
        } else {
            // Another drawer was first; its spend is certified by now.
            conn.testnet_id()
                .await
                .ok_or(crate::faucet::FaucetError::TooFar)?
        };
        let wallet = self.open_at(genesis, Some(&id.0))?;
        self.note_drawn(&wallet, &drawn)?;
        Ok(id)
    }

    fn note_drawn(
        &self,
        wallet: &crate::wallet::Wallet,
        drawn: &CertifiedSpend,
    ) -> Result<u64, PayError> {
        let got = wallet.receive(drawn, "drawn from the testnet faucet")?;
        // The next draw walks the faucet's chain from here.
        wallet.set_faucet_hint(drawn)?;
        self.drawn
            .fetch_add(got, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            "drew {} coins from the testnet faucet",
            safe_protocol::coin::format_amount(got)
        );
        Ok(got)
    }

    /// Makes sure the wallet holds at least `at_least` nanos, drawing
    /// from the faucet as needed (a testnet only). Returns the wallet.
    pub async fn fund(
        &self,
        conn: &Connection,
        at_least: u64,
    ) -> Result<crate::wallet::Wallet, PayError> {
        let _one = self.lock().await?;
        let wallet = self.wallet(conn).await?.ok_or(PayError::Free)?;
        let drawn = self.draw_up_to(conn, &wallet, at_least).await;
        self.after(conn, &wallet).await;
        drawn?;
        Ok(wallet)
    }

    /// Draws one [`crate::faucet::DRIP`] into the wallet (a testnet
    /// only): `safe wallet faucet`. Returns the wallet and what was drawn.
    pub async fn draw(&self, conn: &Connection) -> Result<(crate::wallet::Wallet, u64), PayError> {
        let _one = self.lock().await?;
        let wallet = self.wallet(conn).await?.ok_or(PayError::Free)?;
        let got = self.draw_once(conn, &wallet).await;
        self.after(conn, &wallet).await;
        Ok((wallet, got?))
    }

    async fn draw_once(
        &self,
        conn: &Connection,
        wallet: &crate::wallet::Wallet,
    ) -> Result<u64, PayError> {
        if !wallet
            .genesis()
            .or(self.charges(conn).await)
            .is_some_and(|g| crate::faucet::is_testnet(&g))
        {
            return Err(PayError::NotTestnet(wallet.address().to_string()));
        }
        let hint = wallet.faucet_hint();
        let drawn = conn
            .draw_from_faucet(&wallet.address(), hint.as_ref())
            .await?;
        self.note_drawn(wallet, &drawn)
    }

    /// Sends `amount` nanos from the wallet to `to` (`safe wallet send`):
    /// one certified spend, recorded in the wallet. Returns the spend; the
    /// recipient takes it in with [`Payer::receive`] given [`receipt`] of
    /// it. If an earlier send was interrupted half way, it is finished
    /// instead and nothing more is sent ([`PayError::FinishedEarlier`]):
    /// the command was most likely being run again for it.
    pub async fn send(
        &self,
        conn: &Connection,
        to: &safe_protocol::coin::WalletAddress,
        amount: u64,
    ) -> Result<CertifiedSpend, PayError> {
        let _one = self.lock().await?;
        let wallet = self.wallet(conn).await?.ok_or(PayError::Free)?;
        let sent = self.send_from(conn, &wallet, to, amount).await;
        self.after(conn, &wallet).await;
        sent
    }

    async fn send_from(
        &self,
        conn: &Connection,
        wallet: &crate::wallet::Wallet,
        to: &safe_protocol::coin::WalletAddress,
        amount: u64,
    ) -> Result<CertifiedSpend, PayError> {
        let late: Vec<LateSend> = self
            .finish_pending(conn, wallet, true)
            .await
            .into_iter()
            .flatten()
            .collect();
        if !late.is_empty() {
            return Err(PayError::FinishedEarlier(late));
        }
        // A send that went out and is not finished may still go through:
        // no new one until it is settled (else a retried send pays twice).
        if let Some(p) = wallet.pending()?.into_iter().find(|p| p.send.is_some()) {
            return Err(PayError::SendUnsettled(p.what));
        }
        let sending = |signed: &SignedSpend, parents: &[CertifiedSpend]| {
            let what = match receipt_of(&signed.spend) {
                Some(r) => format!("{SENT}{to} (receipt {})", r.to_hex()),
                None => format!("{SENT}{to}"),
            };
            wallet
                .add_pending(crate::wallet::Pending {
                    spend: signed.clone(),
                    parents: parents.to_vec(),
                    what,
                    send: Some((*to, amount)),
                })
                .map_err(PayError::from)
        };
        let hooks = Hooks {
            sending: &sending,
            ..Hooks::NONE
        };
        let coins = self.spendable_now(conn, wallet).await?;
        let (certified, left) = conn
            .send_coins(coins, wallet.keys(), to, amount, &hooks)
            .await?;
        let hash = certified.spend.spend.hash();
        let change: Vec<Coin> = left
            .into_iter()
            .filter(|c| {
                c.parent
                    .as_ref()
                    .is_some_and(|p| p.spend.spend.hash() == hash)
            })
            .collect();
        let what = match receipt(&certified) {
            Some(r) => format!("{SENT}{to} (receipt {})", r.to_hex()),
            None => format!("{SENT}{to}"),
        };
        wallet.spent(std::slice::from_ref(&certified), &change, amount, &what)?;
        wallet.clear_pending(&hash)?;
        Ok(certified)
    }

    /// [`Payer::spendable`], and for an account's wallet (whose other
    /// machines spend the same coins) only the largest
    /// [`safe_protocol::coin::MAX_INPUTS`] that their groups say now are
    /// unspent: a coin spent elsewhere, spent again with good ones, would
    /// lock those in a spend never certified. One shown spent has the
    /// wallet checked against the network first.
    async fn spendable_now(
        &self,
        conn: &Connection,
        wallet: &crate::wallet::Wallet,
    ) -> Result<Vec<Coin>, PayError> {
        if self.account()?.is_none() {
            return self.spendable(wallet);
        }
        let Some(genesis) = wallet.genesis() else {
            return self.spendable(wallet);
        };
        let mut rechecked = false;
        loop {
            let mut coins = self.spendable(wallet)?;
            coins.sort_by_key(|c| std::cmp::Reverse(c.amount()));
            coins.truncate(safe_protocol::coin::MAX_INPUTS);
            let answers = join_all(
                coins
                    .iter()
                    .map(|c| async { conn.unspent(&c.input.id(&genesis), &genesis).await }),
            )
            .await;
            if !rechecked && answers.iter().any(|a| matches!(a, Ok(false))) {
                rechecked = true;
                crate::account_wallet::recheck(conn, wallet, &genesis).await?;
                continue;
            }
            // Coins whose groups cannot tell now wait for another time.
            return Ok(coins
                .into_iter()
                .zip(answers)
                .filter_map(|(c, a)| matches!(a, Ok(true)).then_some(c))
                .collect());
        }
    }

    /// The wallet's coins that no unfinished spend has: what a new spend
    /// may use (a stuck spend's coins wait until it is finished).
    pub(crate) fn spendable(&self, wallet: &crate::wallet::Wallet) -> Result<Vec<Coin>, PayError> {
        let held: Vec<Input> = wallet
            .pending()?
            .iter()
            .flat_map(|p| p.spend.spend.inputs.iter().copied())
            .collect();
        Ok(wallet
            .coins()
            .into_iter()
            .filter(|c| !held.contains(&c.input))
            .collect())
    }

    /// Takes into the wallet what the spend at `receipt` (as [`receipt`]
    /// gives it) pays it; returns the nanos added (0 if it pays the wallet
    /// nothing, or nothing it has not taken in already). The spend must be
    /// certified at every input by its groups as this client finds them,
    /// and an output is taken in only if a majority of its group say it
    /// is unspent.
    pub async fn receive(&self, conn: &Connection, receipt: &XorName) -> Result<u64, PayError> {
        let _one = self.lock().await?;
        let wallet = self.wallet(conn).await?.ok_or(PayError::Free)?;
        let got = self.receive_into(conn, &wallet, receipt).await;
        self.after(conn, &wallet).await;
        got
    }

    /// [`Payer::receive`] into `wallet`, held already.
    pub(crate) async fn receive_into(
        &self,
        conn: &Connection,
        wallet: &crate::wallet::Wallet,
        receipt: &XorName,
    ) -> Result<u64, PayError> {
        let genesis = self.charges(conn).await.ok_or(PayError::Free)?;
        let spend = conn
            .certified_spend_at(*receipt, &genesis)
            .await?
            .ok_or(PayError::NoSpend(*receipt))?;
        let unspent = self.unspent_outputs(conn, wallet, &spend).await?;
        Ok(wallet.receive_only(&spend, &unspent, "received")?)
    }

    /// The outputs of `spend` to `wallet` that are unspent (an error if
    /// the network cannot tell).
    async fn unspent_outputs(
        &self,
        conn: &Connection,
        wallet: &crate::wallet::Wallet,
        spend: &CertifiedSpend,
    ) -> Result<Vec<Input>, PayError> {
        let genesis = spend.spend.spend.genesis;
        let mut unspent = Vec::new();
        for coin in Coin::found(spend, wallet.keys()) {
            if conn.unspent(&coin.input.id(&genesis), &genesis).await? {
                unspent.push(coin.input);
            }
        }
        Ok(unspent)
    }

    /// Finishes the spends of the wallet that went out and were never
    /// recorded (the program was stopped, or the network did not answer
    /// in time). Each is certified again (the same spend gets the same
    /// votes) or, if that fails, looked for certified on the network (one
    /// node refusing cannot stop it); then recorded. A spend that another
    /// certified spend of the wallet's coins beat is dropped and that one
    /// recorded. One that cannot be finished now stays pending, its coins
    /// kept out of new spends, and is tried again next time. Returns the
    /// sends finished (`None` for other payments).
    async fn finish_pending(
        &self,
        conn: &Connection,
        wallet: &crate::wallet::Wallet,
        sends: bool,
    ) -> Vec<Option<LateSend>> {
        let before = wallet.coin_refs();
        let finished = self.finish_each(conn, wallet, sends).await;
        if wallet.coin_refs() != before
            && let Ok(Some(_)) = self.account()
            && let Some(genesis) = wallet.genesis()
        {
            // With the account's other machines, change taken from a
            // spend finished late may be spent already: checked.
            if let Err(e) = crate::account_wallet::recheck(conn, wallet, &genesis).await {
                tracing::warn!("the account's coins could not be checked: {e}");
            }
        }
        finished
    }

    async fn finish_each(
        &self,
        conn: &Connection,
        wallet: &crate::wallet::Wallet,
        sends: bool,
    ) -> Vec<Option<LateSend>> {
        let mut finished = Vec::new();
        let Ok(pending) = wallet.pending() else {
            return finished;
        };
        let deadline = std::time::Instant::now() + FINISH_BUDGET;
        for p in pending {
            // Sends are finished by `send` alone, which says so and
            // leaves the notice.
            if p.send.is_some() && !sends {
                continue;
            }
            let hash = p.spend.spend.hash();
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(outcome) = tokio::time::timeout(left, self.finish_one(conn, wallet, &p)).await
            else {
                tracing::warn!("unfinished payments are left for the next time");
                break;
            };
            match outcome {
                Ok(true) => {
                    tracing::info!(spend = %hash, "finished an interrupted payment");
                    finished.push(p.send.and_then(|(to, amount)| {
                        Some(LateSend {
                            to,
                            receipt: receipt_of(&p.spend.spend)?,
                            amount,
                        })
                    }));
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(spend = %hash, "an unfinished payment stays pending: {e}");
                }
            }
        }
        finished
    }

    /// Finishes `p` if it can: `Ok(true)` if it was certified and is now
    /// recorded, `Ok(false)` if it needs nothing more (recorded before, or
    /// beaten by another spend of the wallet, recorded instead).
    async fn finish_one(
        &self,
        conn: &Connection,
        wallet: &crate::wallet::Wallet,
        p: &crate::wallet::Pending,
    ) -> Result<bool, PayError> {
        let hash = p.spend.spend.hash();
        if !wallet.holds_any_input_of(&p.spend) {
            // Recorded already; only forgetting it was cut short.
            wallet.clear_pending(&hash)?;
            return Ok(false);
        }
        let genesis = p.spend.spend.genesis;
        let late = format!("{} (finished late)", p.what);
        let error = match conn.certify(&p.spend, &p.parents).await {
            Ok(certified) => {
                self.record_found(wallet, &certified, &late)?;
                wallet.clear_pending(&hash)?;
                return Ok(true);
            }
            Err(e) => e,
        };
        // Certifying failed: what the network holds at each input decides.
        for address in p.spend.spend.input_addresses() {
            if let Ok(Some(held)) = conn.certified_spend_at(address, &genesis).await {
                if held.spend.spend.hash() == hash {
                    self.record_found(wallet, &held, &late)?;
                    wallet.clear_pending(&hash)?;
                    return Ok(true);
                }
                if wallet.holds_any_input_of(&held.spend) {
                    // Another spend of the wallet's coins won: the record
                    // of that one, and this one can never be.
                    self.record_found(wallet, &held, "spent (found on the network)")?;
                    wallet.clear_pending(&hash)?;
                    return Ok(false);
                }
                if self.account()?.is_some() {
                    // Beaten by a spend recorded already (by another
                    // machine of the account): this one can never be
                    // certified. Its other coins are checked before they
                    // are spent (and dropped if their groups hold it).
                    wallet.clear_pending(&hash)?;
                    return Ok(false);
                }
            }
        }
        Err(error.into())
    }

    /// Records in `wallet` a certified spend of its coins found late: its
    /// inputs go, and its outputs to the wallet come. The wallet still
    /// holds an input of it (the callers check), so it was never recorded,
    /// its outputs were never in the wallet, and only the wallet could
    /// have spent them: they are unspent.
    fn record_found(
        &self,
        wallet: &crate::wallet::Wallet,
        certified: &CertifiedSpend,
        what: &str,
    ) -> Result<(), PayError> {
        let change = Coin::found(certified, wallet.keys());
        let spent = certified
            .spend
            .spend
            .inputs
            .iter()
            .map(|i| i.amount)
            .fold(0, u64::saturating_add);
        let back = change.iter().map(Coin::amount).fold(0, u64::saturating_add);
        wallet.spent(
            std::slice::from_ref(certified),
            &change,
            spent.saturating_sub(back),
            what,
        )?;
        Ok(())
    }

    /// Draws until `wallet` holds `at_least` nanos, at most
    /// [`MAX_DRAWS`] times; on a network that is not a testnet, nothing.
    async fn draw_up_to(
        &self,
        conn: &Connection,
        wallet: &crate::wallet::Wallet,
        at_least: u64,
    ) -> Result<(), PayError> {
        let Some(genesis) = self.charges(conn).await else {
            return Ok(());
        };
        if !crate::faucet::is_testnet(&genesis) {
            return Ok(());
        }
        for _ in 0..MAX_DRAWS {
            let spendable: u64 = self
                .spendable(wallet)?
                .iter()
                .map(Coin::amount)
                .fold(0, u64::saturating_add);
            if spendable >= at_least {
                break;
            }
            self.draw_once(conn, wallet).await?;
        }
        Ok(())
    }

    /// Pays for storing `names`, unless the network is free.
    pub async fn pay_names(&self, conn: &Connection, names: &[XorName]) -> Result<u64, PayError> {
        if self.charges(conn).await.is_none() {
            return Ok(0);
        }
        // The wallet is read under the gate: a payment that waited for
        // another one spends what that one left, not what it spent.
        let _one = self.lock().await?;
        let Some(wallet) = self.wallet(conn).await? else {
            return Ok(0);
        };
        let names: Vec<XorName> = names
            .iter()
            .filter(|n| conn.payment_for(n).is_none())
            .copied()
            .collect();
        let paid = self.pay_with(conn, &wallet, &names).await;
        self.after(conn, &wallet).await;
        paid
    }

    async fn pay_with(
        &self,
        conn: &Connection,
        wallet: &crate::wallet::Wallet,
        names: &[XorName],
    ) -> Result<u64, PayError> {
        if names.is_empty() {
            return Ok(0);
        }
        self.finish_pending(conn, wallet, false).await;
        let max = self.max_cost.lock().ok().and_then(|m| *m);
        let show = self.show.lock().ok().and_then(|s| s.clone());
        let show = move |cost: u64, chunks: usize| {
            if let Some(f) = &show {
                f(cost, chunks);
            }
        };
        let sent = std::sync::Mutex::new(Vec::new());
        let sending = |signed: &SignedSpend, parents: &[CertifiedSpend]| {
            if let Ok(mut sent) = sent.lock() {
                sent.push(signed.spend.hash());
            }
            wallet
                .add_pending(crate::wallet::Pending {
                    spend: signed.clone(),
                    parents: parents.to_vec(),
                    what: PAID.into(),
                    send: None,
                })
                .map_err(PayError::from)
        };
        // Each batch's spend recorded as soon as it is certified.
        let certified = |spend: &CertifiedSpend, owed: u64| {
            let change = Coin::found(spend, wallet.keys());
            wallet.spent(std::slice::from_ref(spend), &change, owed, PAID)?;
            wallet.clear_pending(&spend.spend.spend.hash())?;
            self.paid
                .fetch_add(owed, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        };
        let hooks = Hooks {
            show: &show,
            sending: &sending,
            certified: &certified,
        };
        let mut names = names.to_vec();
        let mut earlier = 0u64;
        let mut raced = 0;
        loop {
            let mut paying = conn
                .pay_for_with(
                    &names,
                    self.spendable_now(conn, wallet).await?,
                    wallet.keys(),
                    max,
                    &hooks,
                )
                .await;
            if let Err(PayError::Insufficient { cost, .. }) = &paying {
                // On a testnet, coins are free: draw what is missing, then pay.
                let cost = *cost;
                let before = wallet.balance();
                self.draw_up_to(conn, wallet, cost).await?;
                if wallet.balance() > before {
                    paying = conn
                        .pay_for_with(
                            &names,
                            self.spendable_now(conn, wallet).await?,
                            wallet.keys(),
                            max,
                            &hooks,
                        )
                        .await;
                }
            }
            let error = match paying {
                Ok(paid) => return Ok(earlier.saturating_add(paid.nanos)),
                // The batches paid before the failure are recorded already.
                Err(PayError::Partial { error, paid }) => {
                    earlier = earlier.saturating_add(paid.nanos);
                    *error
                }
                Err(e) => e,
            };
            if let PayError::Insufficient { cost, .. } = error
                && raced < MAX_RACES
                && wallet.balance() >= cost
                && self.account()?.is_some()
            {
                // The coins are there, but another machine of the account
                // is spending them right now: once its spend is certified,
                // its change (ours too) is found, and paid with.
                raced += 1;
                tracing::info!("another machine of the account is paying; waiting for its change");
                tokio::time::sleep(std::time::Duration::from_millis(400 * raced as u64)).await;
                if let Some(genesis) = wallet.genesis() {
                    crate::account_wallet::recheck(conn, wallet, &genesis).await?;
                }
                continue;
            }
            let lost = matches!(error, PayError::Spend(CoinError::DoubleSpend { .. }));
            if lost && raced < MAX_RACES && self.account()?.is_some() {
                // Another machine of the account spent a coin of this
                // payment first: settle what that did, and pay again, but
                // only once the spend that lost is settled as beaten (one
                // still pending may yet go through: paying again would
                // pay twice).
                raced += 1;
                let mut settled = false;
                // The winner may still be gathering its votes: a moment.
                for wait in [0, 200, 400, 800, 1600] {
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    self.finish_pending(conn, wallet, false).await;
                    let pending: Vec<SpendHash> = wallet
                        .pending()?
                        .iter()
                        .map(|p| p.spend.spend.hash())
                        .collect();
                    settled = sent
                        .lock()
                        .is_ok_and(|s| !s.iter().any(|h| pending.contains(h)));
                    if settled {
                        break;
                    }
                }
                if !settled {
                    return Err(error);
                }
                tracing::info!(
                    "another machine of the account spent the same coin first; paying again"
                );
                names.retain(|n| conn.payment_for(n).is_none());
                if names.is_empty() {
                    return Ok(earlier);
                }
                continue;
            }
            return Err(error);
        }
    }

    /// Makes sure chunk `name` is paid for before it is put: joins the
    /// batch being gathered, and the first put to get the gate pays for
    /// every chunk waiting.
    pub async fn ensure_paid(&self, conn: &Connection, name: XorName) -> Result<(), PayError> {
        if self.charges(conn).await.is_none() {
            return Ok(());
        }
        if let Ok(mut w) = self.waiting.lock()
            && w.len() < MAX_LAZY_BATCH
        {
            w.push(name);
        }
        let _one = self.lock().await?;
        if conn.payment_for(&name).is_some() {
            return Ok(());
        }
        let Some(wallet) = self.wallet(conn).await? else {
            return Ok(());
        };
        tokio::time::sleep(BATCH_WINDOW).await;
        let mut names: Vec<XorName> = self
            .waiting
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        if !names.contains(&name) {
            names.push(name);
        }
        names.retain(|n| conn.payment_for(n).is_none());
        let paid = self.pay_with(conn, &wallet, &names).await;
        self.after(conn, &wallet).await;
        paid.map(|_| ())
    }
}
