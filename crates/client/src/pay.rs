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
    CertifiedSpend, Input, OneTimeKey, Parent, SignedSpend, Spend, WalletKeys,
};
use safe_protocol::messages::{Request, Response};

use crate::coin::CoinError;
use crate::network::Connection;

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
    #[error("storing this costs {cost} nanos, over the limit of {limit} (--max-cost)")]
    OverLimit {
        /// What it would cost.
        cost: u64,
        /// The limit.
        limit: u64,
    },
    /// The coins given do not cover the cost.
    #[error("your wallet has {have} nanos; this upload costs {cost} (get coins sent to {address})")]
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
        let mut errors = Vec::new();
        for peer in self.net.routing_peers().await.into_iter().take(8) {
            match self.quote(peer).await {
                Ok(Some(q)) => return Ok(Some(q.quote.genesis)),
                Ok(None) => return Ok(None),
                Err(e) => errors.push(e),
            }
        }
        Err(format!(
            "no node said whether storing costs anything ({})",
            errors.join("; ")
        ))
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
        let mut paid = Paid {
            charged: true,
            change: coins,
            ..Paid::default()
        };
        for (batch, counts) in batches {
            if let Err(error) = self
                .pay_batch(&batch, &counts, quotes, wallet, &mut paid)
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
        // Coins enough for this batch, largest first.
        let mut coins = std::mem::take(&mut paid.change);
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
            coins.extend(spent);
            paid.change = coins;
            return Err(PayError::Insufficient {
                have: total,
                cost: owed,
                address: wallet.address().to_string(),
            });
        }
        paid.change = coins;
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

/// Pays for what a [`crate::Client`] stores, from the wallet in its data
/// directory, when the network charges: a whole upload at once where the
/// chunks are known first ([`Payer::pay_names`]), else the chunks put at
/// about the same moment in one batch ([`Payer::ensure_paid`]).
pub struct Payer {
    home: crate::home::Home,
    max_cost: std::sync::Mutex<Option<u64>>,
    /// The network's genesis key if it charges (asked until a node says).
    charges: tokio::sync::OnceCell<Option<safe_protocol::coin::Key>>,
    /// One payment at a time (they spend the same coins).
    gate: tokio::sync::Mutex<()>,
    /// Chunks waiting for the next batch payment.
    waiting: std::sync::Mutex<Vec<XorName>>,
    /// Nanos paid so far.
    paid: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payer").finish_non_exhaustive()
    }
}

/// How long a put that needs paying for waits for others to join its
/// batch.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);
/// Most chunks one lazily gathered batch pays for.
const MAX_LAZY_BATCH: usize = 4096;

impl Payer {
    /// Paying from the wallet of `home`.
    pub fn new(home: crate::home::Home) -> Self {
        Self {
            home,
            max_cost: std::sync::Mutex::new(None),
            charges: tokio::sync::OnceCell::new(),
            gate: tokio::sync::Mutex::new(()),
            waiting: std::sync::Mutex::new(Vec::new()),
            paid: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Refuses any one payment over `max` nanos (`--max-cost`).
    pub fn set_max_cost(&self, max: Option<u64>) {
        if let Ok(mut m) = self.max_cost.lock() {
            *m = max;
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

    /// The wallet of this payer's data directory on `conn`'s network, if
    /// it charges.
    pub async fn wallet(
        &self,
        conn: &Connection,
    ) -> Result<Option<crate::wallet::Wallet>, PayError> {
        match self.charges(conn).await {
            Some(genesis) => Ok(Some(crate::wallet::Wallet::open(&self.home, &genesis)?)),
            None => Ok(None),
        }
    }

    /// Pays for storing `names`, unless the network is free.
    pub async fn pay_names(&self, conn: &Connection, names: &[XorName]) -> Result<u64, PayError> {
        // The wallet is read under the gate: a payment that waited for
        // another one spends what that one left, not what it spent.
        let _one = self.gate.lock().await;
        let Some(wallet) = self.wallet(conn).await? else {
            return Ok(0);
        };
        let names: Vec<XorName> = names
            .iter()
            .filter(|n| conn.payment_for(n).is_none())
            .copied()
            .collect();
        self.pay_with(conn, &wallet, &names).await
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
        let max = self.max_cost.lock().ok().and_then(|m| *m);
        match conn
            .pay_for(names, wallet.coins(), wallet.keys(), max)
            .await
        {
            Ok(paid) => self.record(wallet, &paid),
            Err(PayError::Partial { error, paid }) => {
                // The coins of the payments made are spent: recorded
                // before the failure is reported.
                self.record(wallet, &paid)?;
                Err(*error)
            }
            Err(e) => Err(e),
        }
    }

    /// Records in `wallet` what `paid` spent and left.
    fn record(&self, wallet: &crate::wallet::Wallet, paid: &Paid) -> Result<u64, PayError> {
        if paid.charged && !paid.spends.is_empty() {
            wallet.spent(&paid.spends, &paid.change, paid.nanos, "paid for storage")?;
            self.paid
                .fetch_add(paid.nanos, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(paid.nanos)
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
        let _one = self.gate.lock().await;
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
        self.pay_with(conn, &wallet, &names).await.map(|_| ())
    }
}
