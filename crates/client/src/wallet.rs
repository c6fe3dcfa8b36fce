//! A wallet on this machine (issue 17): its keys and the coins it holds,
//! in the data directory (`wallet/`, see [`crate::home`]).
//!
//! ```text
//! wallet/secret         32 random bytes (mode 0600): the wallet's keys derive from it
//! wallet/coins-<net>    format byte, then the unspent outputs on network <net>
//!                       (the first 8 bytes of its genesis key, hex; on a
//!                       testnet also of its first faucet draw) with the
//!                       certified spends that made them, and the history (0600)
//! wallet/pending-<net>  format byte, then the spends sent to be certified
//!                       and not yet recorded (0600), finished by the next
//!                       payment
//! wallet/faucet-<net>   the last testnet faucet draw seen (where the next
//!                       walk of the faucet's chain starts)
//! wallet/notices-<net>  where the scan of the wallet's notices stands
//! wallet/lock           held by the program paying from the wallet
//! ```
//!
//! Every change is written to a new file, synced and renamed over the old
//! one, so a crash leaves the old state or the new one, never half of
//! either. A coin is removed only after the spend that consumes it is
//! certified; a spend that was not certified leaves the coins in place.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use safe_protocol::XorName;
use safe_protocol::coin::{
    CertifiedSpend, Input, Key, OutputId, SignedSpend, SpendHash, WalletAddress, WalletKeys,
};
use serde::{Deserialize, Serialize};

use crate::home::Home;
use crate::pay::Coin;

/// Format of the coins file.
pub const WALLET_FORMAT: u8 = 1;
/// Largest coins file read (the history is cut to [`MAX_HISTORY`]).
pub const MAX_WALLET_FILE: usize = 64 << 20;
/// History lines kept (the oldest are dropped).
pub const MAX_HISTORY: usize = 10_000;
/// Spends kept as pending at most (a payment refuses to start beyond it).
pub const MAX_PENDING_SPENDS: usize = 64;

/// A spend sent to be certified and not yet recorded in the wallet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    /// The spend.
    pub spend: SignedSpend,
    /// Its inputs' parents.
    pub parents: Vec<CertifiedSpend>,
    /// What it is, for the history ("paid for storage", "sent to …").
    pub what: String,
    /// For a send: the recipient and the nanos sent (to leave a notice
    /// if it is finished late).
    pub send: Option<(WalletAddress, u64)>,
}

/// Why a wallet could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// Reading or writing a wallet file failed.
    #[error("wallet {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The coins file is not one this version reads.
    #[error("wallet {0} is damaged or of another version; it was left as it is")]
    Corrupt(String),
    /// The coins given are of another network.
    #[error("these coins are of another network (genesis key) than the wallet's")]
    OtherNetwork,
    /// Too many spends wait to be finished.
    #[error(
        "{0} earlier payments of this wallet are still unfinished; try again when the network answers"
    )]
    TooManyPending(usize),
}

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryLine {
    /// Unix seconds.
    pub when: u64,
    /// What happened: "received", "paid for storage", "sent".
    pub what: String,
    /// Nanos in (positive) or out (negative).
    pub nanos: i128,
    /// The spend, hex.
    pub spend: String,
}

/// A coin as stored: the output (as an input names it) and its parent.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredCoin {
    input: Input,
    parent: CertifiedSpend,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    genesis: Option<Key>,
    coins: Vec<StoredCoin>,
    history: Vec<HistoryLine>,
}

/// A wallet in a data directory.
pub struct Wallet {
    coins_path: PathBuf,
    pending_path: PathBuf,
    faucet_path: PathBuf,
    notices_path: PathBuf,
    keys: WalletKeys,
    state: Mutex<State>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("coins", &self.coins_path)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalletError + '_ {
    move |source| WalletError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Wallet {
    /// The wallet of data directory `home` on the network whose genesis
    /// key is `genesis`, made (with a new secret) if there is none.
    pub fn open(home: &Home, genesis: &Key) -> Result<Self, WalletError> {
        Self::open_on(home, genesis, None)
    }

    /// The wallet of `home` on one of the networks that share the genesis
    /// key `genesis` (testnets do), told apart by `instance`: each such
    /// network's coins are kept in a file of their own.
    pub fn open_on(
        home: &Home,
        genesis: &Key,
        instance: Option<&[u8; 32]>,
    ) -> Result<Self, WalletError> {
        Self::open_in(&home.wallet_dir(), Self::keys_of(home)?, genesis, instance)
    }

    /// The wallet kept in directory `dir` with keys `keys` (an account's
    /// wallet: [`crate::account_wallet`]), on the network `genesis` and
    /// `instance` say, as [`Wallet::open_on`].
    pub fn open_in(
        dir: &Path,
        keys: WalletKeys,
        genesis: &Key,
        instance: Option<&[u8; 32]>,
    ) -> Result<Self, WalletError> {
        let name = Self::file_name(genesis, instance);
        let coins_path = dir.join(&name);
        let pending_path = dir.join(name.replacen("coins-", "pending-", 1));
        let faucet_path = dir.join(name.replacen("coins-", "faucet-", 1));
        let notices_path = dir.join(name.replacen("coins-", "notices-", 1));
        let state = match std::fs::read(&coins_path) {
            Ok(bytes) => {
                if bytes.len() > MAX_WALLET_FILE {
                    return Err(WalletError::Corrupt(coins_path.display().to_string()));
                }
                safe_protocol::codec::decode(WALLET_FORMAT, &bytes, MAX_WALLET_FILE)
                    .map_err(|_| WalletError::Corrupt(coins_path.display().to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(&coins_path)(e)),
        };
        Ok(Self {
            coins_path,
            pending_path,
            faucet_path,
            notices_path,
            keys,
            state: Mutex::new(state),
        })
    }

    /// The coins file's name on the network `genesis` and `instance` say
    /// (`coins-<genesis8>[-<instance8>]`); the wallet's other files of
    /// that network are named alike.
    pub fn file_name(genesis: &Key, instance: Option<&[u8; 32]>) -> String {
        let mut name = format!("coins-{}", hex::encode(&genesis[..8]));
        if let Some(i) = instance {
            name = format!("{name}-{}", hex::encode(&i[..8]));
        }
        name
    }

    /// The coins file.
    pub fn coins_path(&self) -> &Path {
        &self.coins_path
    }

    /// The keys of the wallet of data directory `home` (the same on every
    /// network), made with a new secret if there is none.
    pub fn keys_of(home: &Home) -> Result<WalletKeys, WalletError> {
        let path = home.wallet_dir().join("secret");
        let read = || -> Result<Option<WalletKeys>, WalletError> {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let secret: [u8; 32] = bytes
                        .try_into()
                        .map_err(|_| WalletError::Corrupt(path.display().to_string()))?;
                    Ok(Some(WalletKeys::from_secret(&secret)))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(&path)(e)),
            }
        };
        if let Some(keys) = read()? {
            return Ok(keys);
        }
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut secret[..]).map_err(|e| WalletError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        match crate::home::create_private(&path, &secret[..]) {
            Ok(()) => Ok(WalletKeys::from_secret(&secret)),
            // Another process made the wallet first: its secret is the one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                read()?.ok_or_else(|| WalletError::Corrupt(path.display().to_string()))
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The wallet's keys.
    pub fn keys(&self) -> &WalletKeys {
        &self.keys
    }

    /// Where others send coins.
    pub fn address(&self) -> WalletAddress {
        self.keys.address()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Nanos held.
    pub fn balance(&self) -> u64 {
        self.state()
            .coins
            .iter()
            .map(|c| c.input.amount)
            .fold(0, u64::saturating_add)
    }

    /// The network the coins are of, once the wallet holds any.
    pub fn genesis(&self) -> Option<Key> {
        self.state().genesis
    }

    /// The coins held, with their keys, to spend.
    pub fn coins(&self) -> Vec<Coin> {
        self.state()
            .coins
            .iter()
            .filter_map(|c| {
                let index = usize::try_from(c.input.index).ok()?;
                let output = c.parent.spend.spend.outputs.get(index)?;
                Some(Coin {
                    input: c.input,
                    key: self.keys.owns(output)?,
                    parent: Some(c.parent.clone()),
                })
            })
            .collect()
    }

    /// Each coin held as (where its parent spend is kept, the coin): what
    /// an account's wallet record lists ([`crate::account_wallet`]).
    pub fn coin_refs(&self) -> Vec<(XorName, Input)> {
        self.state()
            .coins
            .iter()
            .filter_map(|c| Some((crate::pay::receipt(&c.parent)?, c.input)))
            .collect()
    }

    /// Each coin held, with the certified spend that made it.
    pub fn held(&self) -> Vec<(Input, CertifiedSpend)> {
        self.state()
            .coins
            .iter()
            .map(|c| (c.input, c.parent.clone()))
            .collect()
    }

    /// Makes `keep` the coins held (the account's coins as the network
    /// shows them, [`crate::account_wallet`]), with a history line for
    /// what came and went: `found` for a coin new here, `gone` for one no
    /// longer held.
    pub fn replace_coins(
        &self,
        keep: Vec<(Input, CertifiedSpend)>,
        found: &str,
        gone: &str,
    ) -> Result<(), WalletError> {
        self.update(|state| {
            let old: Vec<Input> = state.coins.iter().map(|c| c.input).collect();
            let new: Vec<Input> = keep.iter().map(|(i, _)| *i).collect();
            for (input, parent) in &keep {
                if let Some(g) = state.genesis
                    && g != parent.spend.spend.genesis
                {
                    return Err(WalletError::OtherNetwork);
                }
                state.genesis = Some(parent.spend.spend.genesis);
                if !old.contains(input) {
                    push_history(state, found, i128::from(input.amount), parent);
                }
            }
            let went: Vec<StoredCoin> = state
                .coins
                .iter()
                .filter(|c| !new.contains(&c.input))
                .cloned()
                .collect();
            for c in &went {
                push_history(state, gone, -i128::from(c.input.amount), &c.parent);
            }
            state.coins = keep
                .into_iter()
                .map(|(input, parent)| StoredCoin { input, parent })
                .collect();
            Ok(())
        })
    }

    /// The history, oldest first.
    pub fn history(&self) -> Vec<HistoryLine> {
        self.state().history.clone()
    }

    /// Takes in the outputs of `certified` that pay this wallet (those
    /// held already are not counted twice); returns the nanos added. The
    /// caller vouches that `certified` is certified and its outputs
    /// unspent ([`crate::pay::Payer::receive`] checks both).
    pub fn receive(&self, certified: &CertifiedSpend, what: &str) -> Result<u64, WalletError> {
        let all: Vec<Input> = Coin::found(certified, &self.keys)
            .iter()
            .map(|c| c.input)
            .collect();
        self.receive_only(certified, &all, what)
    }

    /// [`Wallet::receive`], taking in only the outputs among `only`.
    pub fn receive_only(
        &self,
        certified: &CertifiedSpend,
        only: &[Input],
        what: &str,
    ) -> Result<u64, WalletError> {
        let mut found = Coin::found(certified, &self.keys);
        found.retain(|c| only.contains(&c.input));
        self.update(|state| {
            let genesis = certified.spend.spend.genesis;
            if state.genesis.is_some_and(|g| g != genesis) {
                return Err(WalletError::OtherNetwork);
            }
            state.genesis = Some(genesis);
            let held: Vec<OutputId> = state.coins.iter().map(|c| c.input.id(&genesis)).collect();
            let mut added = 0u64;
            for coin in found {
                if held.contains(&coin.input.id(&genesis)) {
                    continue;
                }
                added = added.saturating_add(coin.amount());
                state.coins.push(StoredCoin {
                    input: coin.input,
                    parent: certified.clone(),
                });
            }
            if added > 0 {
                push_history(state, what, i128::from(added), certified);
            }
            Ok(added)
        })
    }

    /// Records that `spends` (certified) consumed some of the wallet's
    /// coins and left it `change`: the spent coins go, the change comes.
    pub fn spent(
        &self,
        spends: &[CertifiedSpend],
        change: &[Coin],
        paid: u64,
        what: &str,
    ) -> Result<(), WalletError> {
        self.update(|state| {
            let Some(genesis) = state
                .genesis
                .or_else(|| spends.first().map(|s| s.spend.spend.genesis))
            else {
                return Ok(());
            };
            state.genesis = Some(genesis);
            let consumed: Vec<OutputId> = spends
                .iter()
                .flat_map(|s| s.spend.spend.inputs.iter().map(|i| i.id(&genesis)))
                .collect();
            state
                .coins
                .retain(|c| !consumed.contains(&c.input.id(&genesis)));
            let held: Vec<OutputId> = state.coins.iter().map(|c| c.input.id(&genesis)).collect();
            for coin in change {
                if consumed.contains(&coin.input.id(&genesis))
                    || held.contains(&coin.input.id(&genesis))
                {
                    continue;
                }
                if let Some(parent) = &coin.parent {
                    state.coins.push(StoredCoin {
                        input: coin.input,
                        parent: parent.clone(),
                    });
                }
            }
            if let Some(last) = spends.last() {
                push_history(state, what, -i128::from(paid), last);
            }
            Ok(())
        })
    }

    /// The last faucet draw seen on this testnet (the next walk of the
    /// faucet's chain starts there), if any.
    pub fn faucet_hint(&self) -> Option<CertifiedSpend> {
        let bytes = std::fs::read(&self.faucet_path).ok()?;
        safe_protocol::codec::decode(WALLET_FORMAT, &bytes, MAX_WALLET_FILE).ok()
    }

    /// Keeps `drawn` as [`Wallet::faucet_hint`].
    pub fn set_faucet_hint(&self, drawn: &CertifiedSpend) -> Result<(), WalletError> {
        let path = &self.faucet_path;
        let bytes = safe_protocol::codec::encode(WALLET_FORMAT, drawn)
            .map_err(|e| WalletError::Corrupt(e.to_string()))?;
        crate::home::write_private(path, &bytes).map_err(io(path))
    }

    /// Where the scan of this wallet's notices stands
    /// ([`crate::notices`]); from the start if never scanned.
    pub fn notice_scan(&self) -> crate::notices::ScanState {
        std::fs::read(&self.notices_path)
            .ok()
            .and_then(|b| safe_protocol::codec::decode(WALLET_FORMAT, &b, 64 * 1024).ok())
            .unwrap_or_default()
    }

    /// Keeps where the scan of notices stands.
    pub fn set_notice_scan(&self, state: &crate::notices::ScanState) -> Result<(), WalletError> {
        let path = &self.notices_path;
        let bytes = safe_protocol::codec::encode(WALLET_FORMAT, state)
            .map_err(|e| WalletError::Corrupt(e.to_string()))?;
        crate::home::write_private(path, &bytes).map_err(io(path))
    }

    /// The spends sent and not yet recorded, oldest first.
    pub fn pending(&self) -> Result<Vec<Pending>, WalletError> {
        let path = &self.pending_path;
        match std::fs::read(path) {
            Ok(bytes) => safe_protocol::codec::decode(WALLET_FORMAT, &bytes, MAX_WALLET_FILE)
                .map_err(|_| WalletError::Corrupt(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(path)(e)),
        }
    }

    fn write_pending(&self, pending: &[Pending]) -> Result<(), WalletError> {
        let path = &self.pending_path;
        if pending.is_empty() {
            return match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(path)(e)),
            };
        }
        let bytes = safe_protocol::codec::encode(WALLET_FORMAT, &pending)
            .map_err(|e| WalletError::Corrupt(e.to_string()))?;
        crate::home::write_private(path, &bytes).map_err(io(path))
    }

    /// Keeps `pending` (durably) before its spend goes out.
    pub fn add_pending(&self, pending: Pending) -> Result<(), WalletError> {
        let mut all = self.pending()?;
        if all.len() >= MAX_PENDING_SPENDS {
            return Err(WalletError::TooManyPending(all.len()));
        }
        all.push(pending);
        self.write_pending(&all)
    }

    /// Forgets the pending spend `hash` (recorded, or never to be).
    pub fn clear_pending(&self, hash: &SpendHash) -> Result<(), WalletError> {
        let mut all = self.pending()?;
        let before = all.len();
        all.retain(|p| p.spend.spend.hash() != *hash);
        if all.len() == before {
            return Ok(());
        }
        self.write_pending(&all)
    }

    /// Whether the wallet holds any of the coins `spend` consumes.
    pub fn holds_any_input_of(&self, spend: &SignedSpend) -> bool {
        let state = self.state();
        spend
            .spend
            .inputs
            .iter()
            .any(|i| state.coins.iter().any(|c| c.input == *i))
    }

    fn update<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, WalletError>,
    ) -> Result<T, WalletError> {
        let mut state = self.state();
        let mut next = state.clone();
        let out = f(&mut next)?;
        let path = &self.coins_path;
        let bytes = safe_protocol::codec::encode(WALLET_FORMAT, &next)
            .map_err(|e| WalletError::Corrupt(e.to_string()))?;
        crate::home::write_private(path, &bytes).map_err(io(path))?;
        *state = next;
        Ok(out)
    }
}

fn push_history(state: &mut State, what: &str, nanos: i128, spend: &CertifiedSpend) {
    state.history.push(HistoryLine {
        when: now(),
        what: what.to_string(),
        nanos,
        spend: spend.spend.spend.hash().to_string(),
    });
    if state.history.len() > MAX_HISTORY {
        let extra = state.history.len() - MAX_HISTORY;
        state.history.drain(..extra);
    }
}
