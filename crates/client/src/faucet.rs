//! The testnet faucet (`docs/DESIGN-currency.md`, "Testnets: funding
//! every data directory"): a testnet's genesis key is derived from a
//! well-known seed, so anyone can tell a testnet from a real network and
//! draw coins on it. The faucet is a chain of spends: each draw spends the
//! faucet's current coin into a drip to the drawer and the rest back to
//! the faucet wallet (whose keys are well known too). The current coin is
//! found by following the chain from the genesis output; two drawers
//! racing for one coin are settled by its close group, and the loser
//! walks on and tries again.

use safe_protocol::coin::{
    CertifiedSpend, Key, NANOS_PER_COIN, SignedSpend, Spend, SpendError, SpendHash, WalletAddress,
    WalletKeys, spend_address,
};
use safe_protocol::mutable::SigningKey;

use crate::coin::CoinError;
use crate::network::Connection;
use crate::pay::Coin;

/// Nanos one draw gives.
pub const DRIP: u64 = 100 * NANOS_PER_COIN;
/// Most spends of the chain one draw follows (then it gives up).
pub const MAX_WALK: usize = 10_000;
/// Draws lost to another drawer before giving up.
const ATTEMPTS: usize = 20;
/// Pause after a lost race, before walking again.
const RACE_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// The genesis key every testnet uses: anyone may spend its coins.
pub fn testnet_genesis_key() -> SigningKey {
    SigningKey::from_bytes(&blake3::derive_key("safe testnet genesis v1", b""))
}

/// Its public key: what a testnet's nodes are given and quote.
pub fn testnet_genesis() -> Key {
    testnet_genesis_key().verifying_key().to_bytes()
}

/// Whether `genesis` is the testnet one: a network anyone may draw from.
pub fn is_testnet(genesis: &Key) -> bool {
    *genesis == testnet_genesis()
}

/// The faucet's wallet, which holds what has not been drawn.
fn faucet_wallet() -> WalletKeys {
    WalletKeys::from_secret(&blake3::derive_key("safe testnet faucet wallet v1", b""))
}

/// Why a draw failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaucetError {
    /// The faucet's coins are all drawn.
    #[error("the testnet faucet is empty")]
    Empty,
    /// The chain of draws is longer than [`MAX_WALK`], or others kept
    /// winning the race for its current coin.
    #[error("could not draw from the testnet faucet (others kept drawing first); try again")]
    TooFar,
    /// The spend was refused for another reason.
    #[error("the faucet's spend failed: {0}")]
    Spend(#[from] CoinError),
}

impl Connection {
    /// Which testnet this is: every testnet shares the genesis key, so its
    /// coins are told apart by the first draw from its faucet (the spend
    /// of the genesis output, which differs from testnet to testnet,
    /// taken only once certified by its group). `None` if nobody has drawn
    /// yet (or no node answered).
    pub async fn testnet_id(&self) -> Option<SpendHash> {
        let genesis = testnet_genesis();
        let first = Coin::genesis(&testnet_genesis_key());
        let spent = self
            .certified_spend_at(spend_address(&first.input.id(&genesis)), &genesis)
            .await
            .ok()??;
        Some(spent.spend.spend.hash())
    }

    /// Draws [`DRIP`] nanos from the testnet faucet to `to`, starting the
    /// walk at `from` (a draw made before, to skip the chain up to it) or
    /// at the genesis output. Returns the certified spend that paid `to`.
    pub async fn draw_from_faucet(
        &self,
        to: &WalletAddress,
        from: Option<&CertifiedSpend>,
    ) -> Result<CertifiedSpend, FaucetError> {
        let genesis = testnet_genesis();
        let faucet = faucet_wallet();
        let start = || match from.and_then(|s| Coin::found(s, &faucet).pop()) {
            Some(c) => c,
            None => Coin::genesis(&testnet_genesis_key()),
        };
        let mut coin = start();
        let mut steps = 0;
        for _ in 0..ATTEMPTS {
            // Walk to the coin nobody has spent yet.
            loop {
                steps += 1;
                if steps > MAX_WALK {
                    return Err(FaucetError::TooFar);
                }
                let address = spend_address(&coin.input.id(&genesis));
                match self.spend_at(address, &genesis).await {
                    Some(spent) => {
                        coin = Coin::found(&spent, &faucet)
                            .pop()
                            .ok_or(FaucetError::Empty)?;
                    }
                    None => break,
                }
            }
            if coin.amount() < DRIP {
                return Err(FaucetError::Empty);
            }
            let mut outputs = vec![to.pay(DRIP).ok_or(FaucetError::Empty)?];
            if coin.amount() > DRIP {
                outputs.push(
                    faucet
                        .address()
                        .pay(coin.amount() - DRIP)
                        .ok_or(FaucetError::Empty)?,
                );
            }
            let spend = Spend {
                genesis,
                inputs: vec![coin.input],
                outputs,
                memo: Vec::new(),
            };
            let signed = SignedSpend::sign(spend, &[&coin.key]);
            let parents: Vec<CertifiedSpend> = coin.parent.iter().cloned().collect();
            match self.certify(&signed, &parents).await {
                Ok(done) => return Ok(done),
                // Another drawer won this coin, or the spend before it is
                // still being certified: a moment, then walk again from
                // the start (the winner's spend is found on the way).
                Err(CoinError::DoubleSpend { .. })
                | Err(CoinError::Refused(SpendError::ParentNotCertified(..))) => {
                    tokio::time::sleep(RACE_PAUSE).await;
                    coin = start();
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(FaucetError::TooFar)
    }
}
