//! The wallet of a logged-in account (issue 17): the same on every
//! machine the account logs in on. `docs/DESIGN-currency.md`, "The wallet
//! in the account", has the design and its threat model.
//!
//! - Its keys derive from the account's root secret ([`wallet_secret`]),
//!   so the address is the same everywhere and the recovery phrase gives
//!   the wallet back too.
//! - Its files are kept per account in the data directory ([`wallet_dir`]),
//!   as a data directory's own wallet keeps them ([`crate::wallet`]), plus
//!   `synced-<net>`: how far this machine agrees with the wallet record.
//! - The **wallet record**, sealed with a key from the root secret, lists
//!   the account's coins on each network ([`WalletHint`]). It is a hint:
//!   every coin it names is checked as a receipt is (certified, owned by
//!   the wallet, unspent) before it comes in, and a coin spent elsewhere is
//!   followed to the spend that spent it, whose change comes in in turn.
//!   Before each payment the wallet is brought up to date with the record
//!   ([`sync_before`]); after, the record with the wallet ([`sync_after`]).

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use safe_protocol::XorName;
use safe_protocol::account::WALLET_TAG;
use safe_protocol::coin::{CertifiedSpend, Input, Key, OutputId, SpendHash, spend_address};
use safe_protocol::mutable::{Change, Record, RecordError, SigningKey, record_address};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::account::Account;
use crate::home::Home;
use crate::mutable::{MutableError, create_owned, update_from};
use crate::network::Connection;
use crate::pay::{Coin, PayError};
use crate::wallet::{Pending, Wallet, WalletError};

/// Format of a sealed [`WalletHint`].
pub const HINT_FORMAT: u8 = 1;
/// Most coins the record lists per network (the largest, if more): 512
/// coins of about 120 bytes fit a record entry (64 KiB).
pub const MAX_HINT_COINS: usize = 512;
/// Most spends followed, one reconcile, from a coin spent elsewhere to
/// the coins it made.
pub const MAX_CHASE: usize = 256;
/// Most coins checked with their groups one reconcile (the rest the next
/// time, [`Synced::resume`]).
pub const MAX_CHECKS: usize = 1024;
/// Tries of a record write that another machine's write beat.
const WRITE_TRIES: usize = 3;
/// Largest `synced-<net>` file read.
const MAX_SYNCED_FILE: usize = 128 * 1024;

/// What the wallet record says of one network's coins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletHint {
    /// Each coin, with where its parent spend is kept (the spend
    /// address of the parent's first input, as a receipt).
    pub coins: Vec<(XorName, Input)>,
    /// Every notice slot below this was read.
    pub notices_next: u64,
}

/// How far this machine agrees with the record, for one network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Synced {
    /// The record version last read or written, and a hash of its entry
    /// for this network (none: the record or entry did not exist).
    seen: Option<(u64, [u8; 32])>,
    /// A hash of the hint this machine and the record last agreed on.
    agreed: [u8; 32],
    /// Coins the record named that could not be checked yet: kept in the
    /// record until they can.
    carry: Vec<(XorName, Input)>,
    /// A reconcile stopped at its limits: the next command goes on
    /// checking from the coins it reached (held now).
    resume: bool,
}

/// The secret the account's wallet keys derive from.
pub fn wallet_secret(account: &Account) -> Zeroizing<[u8; 32]> {
    account.root().derive("safe account wallet v1")
}

/// Where `account`'s wallet files are kept in data directory `home`.
pub fn wallet_dir(home: &Home, account: &Account) -> PathBuf {
    let id = account.address().to_string();
    home.wallet_dir()
        .join(format!("account-{}", &id[..16.min(id.len())]))
}

/// The wallet record's address.
pub fn record_of(account: &Account) -> XorName {
    record_address(&*account.root().derive("wallet record"), WALLET_TAG)
}

fn owner(account: &Account) -> SigningKey {
    SigningKey::from_bytes(&account.root().derive("wallet owner"))
}

fn cipher(account: &Account) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(account.root().derive("wallet seal").as_ref().into())
}

fn aad(account: &Account, entry: &[u8]) -> Vec<u8> {
    let mut aad = record_of(account).as_bytes().to_vec();
    aad.extend_from_slice(entry);
    aad
}

/// `hint` sealed for entry `entry` of the record.
fn seal(account: &Account, entry: &[u8], hint: &WalletHint) -> Result<Vec<u8>, PayError> {
    let plain = safe_protocol::codec::encode(HINT_FORMAT, hint)
        .map_err(|e| PayError::AccountWallet(format!("cannot encode the wallet record: {e}")))?;
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|e| {
        PayError::AccountWallet(format!("no randomness for the wallet record: {e}"))
    })?;
    let sealed = cipher(account)
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad(account, entry),
            },
        )
        .map_err(|_| PayError::AccountWallet("sealing the wallet record failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The hint sealed in `value`, if it opens (the account's key, this entry).
fn open(account: &Account, entry: &[u8], value: &[u8]) -> Option<WalletHint> {
    if value.len() < 24 {
        return None;
    }
    let (nonce, sealed) = value.split_at(24);
    let plain = cipher(account)
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad(account, entry),
            },
        )
        .ok()?;
    safe_protocol::codec::decode(HINT_FORMAT, &plain, 64 * 1024).ok()
}

fn hash_of(hint: &WalletHint) -> [u8; 32] {
    let bytes = safe_protocol::codec::encode(HINT_FORMAT, hint).unwrap_or_default();
    *blake3::hash(&bytes).as_bytes()
}

/// The coins file's name of `wallet` (which names its network).
fn file_name(wallet: &Wallet) -> String {
    wallet
        .coins_path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The record entry of `wallet`'s network: a keyed hash of its coins
/// file's name, so the record does not say which networks it serves.
fn entry_of(account: &Account, wallet: &Wallet) -> Vec<u8> {
    let key = account.root().derive("wallet entry");
    blake3::keyed_hash(&key, file_name(wallet).as_bytes()).as_bytes()[..16].to_vec()
}

fn synced_path(wallet: &Wallet) -> PathBuf {
    let name = file_name(wallet).replacen("coins-", "synced-", 1);
    wallet
        .coins_path()
        .parent()
        .unwrap_or(Path::new("."))
        .join(name)
}

fn read_synced(wallet: &Wallet) -> Synced {
    std::fs::read(synced_path(wallet))
        .ok()
        .and_then(|b| safe_protocol::codec::decode(HINT_FORMAT, &b, MAX_SYNCED_FILE).ok())
        .unwrap_or_default()
}

fn write_synced(wallet: &Wallet, synced: &Synced) -> Result<(), PayError> {
    let path = synced_path(wallet);
    let bytes = safe_protocol::codec::encode(HINT_FORMAT, synced)
        .map_err(|e| WalletError::Corrupt(e.to_string()))?;
    crate::home::write_private(&path, &bytes).map_err(|source| {
        PayError::Wallet(WalletError::Io {
            path: path.display().to_string(),
            source,
        })
    })
}

/// What the record should say of `wallet`: its coins (the largest
/// [`MAX_HINT_COINS`]), those carried, and where its notice scan stands.
fn hint_of(wallet: &Wallet, carry: &[(XorName, Input)]) -> WalletHint {
    let mut coins = wallet.coin_refs();
    for c in carry {
        if !coins.iter().any(|(_, i)| *i == c.1) {
            coins.push(*c);
        }
    }
    coins.sort_by(|a, b| {
        b.1.amount
            .cmp(&a.1.amount)
            .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
    });
    // A machine that starts from the record reads notices from here: the
    // lowest slot not settled (one still to retry included), or all of
    // them when the record cannot list every coin.
    let scan = wallet.notice_scan();
    let notices_next = if coins.len() > MAX_HINT_COINS {
        0
    } else {
        scan.retry.iter().map(|(n, _)| *n).fold(scan.next, u64::min)
    };
    coins.truncate(MAX_HINT_COINS);
    WalletHint {
        coins,
        notices_next,
    }
}

/// The record and what its entry for `entry` says (none: no record, or
/// no entry yet). An entry that does not open is an error, never an empty
/// hint: writing over it would lose it.
async fn read_record(
    conn: &Connection,
    account: &Account,
    entry: &[u8],
) -> Result<(Option<Record>, Option<(WalletHint, [u8; 32])>), PayError> {
    let record = match conn.get_record(record_of(account)).await {
        Ok(r) => r,
        Err(MutableError::NotFound(_)) => return Ok((None, None)),
        Err(e) => return Err(cannot_tell(&e.to_string())),
    };
    let hint = match record.state.entries.get(entry) {
        Some(value) => {
            let hint = open(account, entry, value).ok_or_else(|| {
                PayError::AccountWallet(
                    "the account's wallet record does not open (damaged, or of a newer version)"
                        .into(),
                )
            })?;
            Some((hint, *blake3::hash(value).as_bytes()))
        }
        None => None,
    };
    Ok((Some(record), hint))
}

fn cannot_tell(why: &str) -> PayError {
    PayError::Spend(crate::coin::CoinError::CannotTell(format!(
        "the account's wallet could not be brought up to date ({why}); nothing was spent: try again"
    )))
}

fn seen_of(
    record: &Option<Record>,
    hint: &Option<(WalletHint, [u8; 32])>,
) -> Option<(u64, [u8; 32])> {
    let version = record.as_ref()?.state.version;
    Some((version, hint.as_ref().map_or([0; 32], |(_, h)| *h)))
}

/// Brings `wallet` (held) up to date with the account's wallet record,
/// if another machine changed the record since this one last saw it.
/// An error leaves the wallet as it was: a payment must not go on with
/// coins that may be spent elsewhere (with good coins, a stale one can
/// lock them in a spend that is never certified).
pub(crate) async fn sync_before(
    conn: &Connection,
    wallet: &Wallet,
    account: &Account,
    genesis: &Key,
) -> Result<(), PayError> {
    let entry = entry_of(account, wallet);
    let (record, hint) = read_record(conn, account, &entry).await?;
    let mut synced = read_synced(wallet);
    let seen = seen_of(&record, &hint);
    if seen == synced.seen {
        if synced.resume {
            synced.resume = reconcile(conn, wallet, None, genesis).await?.cut;
            write_synced(wallet, &synced)?;
        }
        return Ok(());
    }
    catch_up(conn, wallet, hint, seen, genesis, &mut synced).await
}

/// Brings `wallet` up to date with what the record says (`hint`, at
/// `seen`), and notes in `synced` that this machine has.
async fn catch_up(
    conn: &Connection,
    wallet: &Wallet,
    hint: Option<(WalletHint, [u8; 32])>,
    seen: Option<(u64, [u8; 32])>,
    genesis: &Key,
    synced: &mut Synced,
) -> Result<(), PayError> {
    let hint = hint.map(|(h, _)| h).unwrap_or_default();
    let unsettled = reconcile(conn, wallet, Some(&hint), genesis).await?;
    synced.carry = unsettled.carry;
    synced.resume = unsettled.cut;
    synced.seen = seen;
    synced.agreed = hash_of(&hint);
    write_synced(wallet, synced)
}

/// What [`sync_after`] did.
pub(crate) enum Written {
    /// The record says what the wallet holds.
    Done,
    /// The record must be created, and its address paid for first.
    PayFor(XorName),
}

/// Writes `wallet`'s coins (held) to the account's wallet record if they
/// differ from what the record and this machine last agreed on; a write
/// that another machine's beat brings the wallet up to date first and
/// tries again.
pub(crate) async fn sync_after(
    conn: &Connection,
    wallet: &Wallet,
    account: &Account,
    genesis: &Key,
) -> Result<Written, PayError> {
    let entry = entry_of(account, wallet);
    let owner = owner(account);
    for _ in 0..WRITE_TRIES {
        let mut synced = read_synced(wallet);
        let hint = hint_of(wallet, &synced.carry);
        if hash_of(&hint) == synced.agreed
            || (synced.seen.is_none() && hint.coins.is_empty() && hint.notices_next == 0)
        {
            // Agreed already, or nothing to write where nothing is yet.
            return Ok(Written::Done);
        }
        let (record, theirs) = read_record(conn, account, &entry).await?;
        let seen = seen_of(&record, &theirs);
        if seen != synced.seen {
            // Another machine wrote since: take its news in first.
            catch_up(conn, wallet, theirs, seen, genesis, &mut synced).await?;
            continue;
        }
        let record = match record {
            Some(r) => r,
            None if conn.payment_for(&record_of(account)).is_none() => {
                // Creating it is paid for first (by the caller, who holds
                // the wallet).
                return Ok(Written::PayFor(record_of(account)));
            }
            None => {
                let name = account.root().derive("wallet record");
                create_owned(conn, &*name, WALLET_TAG, &owner)
                    .await
                    .map_err(|e| cannot_tell(&e.to_string()))?;
                continue;
            }
        };
        let value = seal(account, &entry, &hint)?;
        let value_hash = *blake3::hash(&value).as_bytes();
        let change = Change::Set {
            key: entry.clone(),
            value,
        };
        match update_from(conn, record, change, std::slice::from_ref(&owner)).await {
            Ok(now) => {
                synced.seen = Some((now.state.version, value_hash));
                synced.agreed = hash_of(&hint);
                return write_synced(wallet, &synced).map(|()| Written::Done);
            }
            Err(MutableError::Refused(
                RecordError::WrongVersion { .. } | RecordError::Conflict,
            )) => {
                continue;
            }
            Err(e) => return Err(cannot_tell(&e.to_string())),
        }
    }
    Err(cannot_tell("the wallet record kept changing"))
}

/// Checks every coin `wallet` (held) holds against the network, as when
/// the record changed ([`reconcile`], with every coin checked).
pub(crate) async fn recheck(
    conn: &Connection,
    wallet: &Wallet,
    genesis: &Key,
) -> Result<(), PayError> {
    reconcile(conn, wallet, None, genesis).await.map(|_| ())
}

/// What [`reconcile`] could not settle.
struct Unsettled {
    /// The record's coins that could not be checked now (kept in the
    /// record, checked again next time).
    carry: Vec<(XorName, Input)>,
    /// Whether it stopped at [`MAX_CHASE`] spends followed or
    /// [`MAX_CHECKS`] coins checked (the next reconcile goes on from where
    /// it stopped: the coins reached are held).
    cut: bool,
}

/// Makes the wallet's coins what the network shows of the wallet's own
/// coins and those of `hint` (the record's; `None`: check every coin
/// held). A coin both hold is kept unchecked (the record's writer held it
/// unspent); any other is checked: unspent, kept; spent by a certified
/// spend, followed to that spend's outputs to the wallet; spent by a spend
/// not certified yet (another machine's payment stopped half way), kept,
/// and kept out of new spends as pending, for the next payment to finish;
/// not decidable now, kept (a payment checks the coins it spends first).
/// Coins of this machine's own unfinished spends are left to
/// [`crate::pay::Payer`]'s finishing.
async fn reconcile(
    conn: &Connection,
    wallet: &Wallet,
    hint: Option<&WalletHint>,
    genesis: &Key,
) -> Result<Unsettled, PayError> {
    let keys = wallet.keys();
    let mine_pending: Vec<Input> = wallet
        .pending()?
        .iter()
        .flat_map(|p| p.spend.spend.inputs.iter().copied())
        .collect();
    let held = wallet.held();
    let mut queue: Vec<(Input, CertifiedSpend)> = held.clone();
    let mut agreed: Vec<Input> = Vec::new();
    let mut unsettled = Unsettled {
        carry: Vec::new(),
        cut: false,
    };
    for (receipt, input) in hint
        .map_or(&[][..], |h| &h.coins[..])
        .iter()
        .take(MAX_HINT_COINS)
    {
        if queue.iter().any(|(i, _)| i == input) {
            agreed.push(*input);
            continue;
        }
        match conn.certified_spend_at(*receipt, genesis).await {
            Ok(Some(parent)) => {
                if Coin::found(&parent, keys).iter().any(|c| c.input == *input) {
                    queue.push((*input, parent));
                }
                // Else the record names what is not this wallet's: ignored.
            }
            Ok(None) | Err(_) => unsettled.carry.push((*receipt, *input)),
        }
    }
    let mut parents: Vec<(Input, CertifiedSpend)> = queue.clone();
    let mut keep: Vec<(Input, CertifiedSpend)> = Vec::new();
    let mut dead: Vec<Input> = Vec::new();
    let mut seen: Vec<OutputId> = Vec::new();
    let mut followed: Vec<SpendHash> = Vec::new();
    let mut checks = 0usize;
    while let Some((input, parent)) = queue.pop() {
        let id = input.id(genesis);
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        if mine_pending.contains(&input) || agreed.contains(&input) {
            keep.push((input, parent));
            continue;
        }
        if followed.len() >= MAX_CHASE || checks >= MAX_CHECKS {
            unsettled.cut = true;
            keep.push((input, parent));
            continue;
        }
        checks += 1;
        match conn.unspent(&id, genesis).await {
            Ok(false) => {}
            // Unspent, or not decidable now: kept.
            Ok(true) | Err(_) => {
                keep.push((input, parent));
                continue;
            }
        }
        let address = spend_address(&id);
        if let Ok(Some(spender)) = conn.certified_spend_at(address, genesis).await
            && spender.spend.spend.inputs.contains(&input)
        {
            let hash = spender.spend.spend.hash();
            if !followed.contains(&hash) {
                followed.push(hash);
                for coin in Coin::found(&spender, keys) {
                    parents.push((coin.input, spender.clone()));
                    queue.push((coin.input, spender.clone()));
                }
            }
            continue;
        }
        // Spent by a spend not certified (yet), or not decidable now.
        let Some(found) = conn.spend_at(address, genesis).await else {
            keep.push((input, parent));
            continue;
        };
        if !found.spend.spend.inputs.contains(&input) {
            keep.push((input, parent));
            continue;
        }
        if beaten(conn, &found, &address, genesis).await {
            // Another input of it went to another spend: it can never be
            // certified, and this coin's group holds it for ever.
            dead.push(input);
            continue;
        }
        keep.push((input, parent));
        // A spend most of the group holds is finished by the next payment
        // if it can be, its coins kept out of new spends until then.
        let votes = found
            .spend
            .spend
            .inputs
            .iter()
            .position(|i| *i == input)
            .and_then(|n| found.certs.get(n))
            .map_or(0, |c| c.votes.len());
        let hash = found.spend.spend.hash();
        if votes < safe_network::close_group::majority(conn.k)
            || wallet
                .pending()?
                .iter()
                .any(|p| p.spend.spend.hash() == hash)
        {
            continue;
        }
        let of_inputs: Vec<CertifiedSpend> = found
            .spend
            .spend
            .inputs
            .iter()
            .filter_map(|i| parents.iter().find(|(p, _)| p == i).map(|(_, s)| s.clone()))
            .collect();
        if let Err(e) = wallet.add_pending(Pending {
            spend: found.spend,
            parents: of_inputs,
            what: "a payment stopped half way (finished later)".into(),
            send: None,
        }) {
            tracing::warn!("a coin's unfinished spend is not kept to finish: {e}");
        }
    }
    keep.extend(queue);
    keep.sort_by_key(|(i, _)| std::cmp::Reverse(i.amount));
    keep.dedup_by_key(|(i, _)| i.id(genesis));
    wallet.replace_coins(
        keep,
        "found in the account's wallet",
        "spent from another machine of the account",
    )?;
    if !dead.is_empty() {
        tracing::warn!(
            "{} coins are held by spends that can never be certified (lost to a race)",
            dead.len()
        );
    }
    // A machine that never scanned notices starts where the record's
    // writer stopped (one that did keeps its own place and retries).
    let mut scan = wallet.notice_scan();
    if let Some(h) = hint
        && scan == crate::notices::ScanState::default()
        && h.notices_next > 0
    {
        scan.next = h.notices_next;
        wallet.set_notice_scan(&scan)?;
    }
    Ok(unsettled)
}

/// Most sends one move of a data directory's coins makes (each spends at
/// most [`safe_protocol::coin::MAX_INPUTS`] coins).
const MAX_MOVES: usize = 16;

/// Moves the coins of data directory `home`'s own wallet into the wallet
/// of the account it is logged in to (after `safe account login` or
/// `create`): sends of all of them to the account's address, each taken
/// in at once. A move cut short is finished by the next one: a send sent
/// and not recorded is finished first, and the receipts of sends to the
/// account in the data directory's history are taken in again (once per
/// coin). Returns the nanos moved; 0 on a free
/// network, when not logged in, or when the data directory's wallet holds
/// nothing.
pub async fn move_in(client: &crate::Client, home: &Home) -> Result<u64, PayError> {
    let Some(conn) = client.connection() else {
        return Ok(0);
    };
    if !home.wallet_dir().join("secret").exists() {
        return Ok(0);
    }
    let account = crate::pay::Payer::new(home.clone());
    if account.account()?.is_none() {
        return Ok(0);
    }
    let Some(genesis) = account.charges(conn).await else {
        return Ok(0);
    };
    // On a testnet nobody drew from yet, the data directory has nothing
    // (and opening its wallet must not draw).
    if crate::faucet::is_testnet(&genesis) && conn.testnet_id().await.is_none() {
        return Ok(0);
    }
    let own = crate::pay::Payer::own(home.clone());
    let to = account.keys()?.address();
    let mut moved = 0u64;
    // Moves made before and cut short after their send (the coins are
    // the account's, and nothing of the account names them yet): the data
    // directory's wallet's history has their receipts. Taking in is done
    // once per coin, so taking in again is harmless.
    let Some(wallet) = own.open_wallet(conn).await? else {
        return Ok(0);
    };
    let to_account = format!("sent to {to} (receipt ");
    let earlier: Vec<XorName> = wallet
        .history()
        .iter()
        .rev()
        .filter_map(|l| {
            let hex = l.what.strip_prefix(&to_account)?.get(..64)?;
            XorName::from_hex(hex)
        })
        .take(MAX_MOVES)
        .collect();
    drop(wallet);
    for receipt in earlier {
        moved = moved.saturating_add(account.receive(conn, &receipt).await?);
    }
    for _ in 0..MAX_MOVES {
        let Some(wallet) = own.open_wallet(conn).await? else {
            break;
        };
        let mut coins = own.spendable(&wallet)?;
        coins.sort_by_key(|c| std::cmp::Reverse(c.amount()));
        coins.truncate(safe_protocol::coin::MAX_INPUTS);
        let amount = coins.iter().map(Coin::amount).fold(0, u64::saturating_add);
        if amount == 0 && wallet.pending()?.is_empty() {
            break;
        }
        drop(wallet);
        let sent: Vec<crate::pay::LateSend> = match own.send(conn, &to, amount).await {
            Ok(sent) => crate::pay::receipt(&sent)
                .map(|receipt| crate::pay::LateSend {
                    to,
                    receipt,
                    amount,
                })
                .into_iter()
                .collect(),
            // An earlier send cut short, finished now: to the account (an
            // earlier move), or to whoever `safe wallet send` named.
            Err(PayError::FinishedEarlier(late)) => late,
            Err(PayError::NothingToSend) => break,
            Err(e) => return Err(e),
        };
        for l in sent {
            if l.to == to {
                // A move cut short here is finished by the next one, from
                // the history (above): no notice needed.
                moved = moved.saturating_add(account.receive(conn, &l.receipt).await?);
            } else if let Err(e) = client.leave_notice(&l.to, &l.receipt, l.amount).await {
                tracing::warn!(
                    "no notice left for a send of {} coins (receipt {}): {e}",
                    safe_protocol::coin::format_amount(l.amount),
                    l.receipt.to_hex()
                );
            }
        }
    }
    Ok(moved)
}

/// Whether `spend` can never be certified: another input of it (than the
/// one at `address`) is certified to another spend.
async fn beaten(
    conn: &Connection,
    spend: &CertifiedSpend,
    address: &XorName,
    genesis: &Key,
) -> bool {
    let hash = spend.spend.spend.hash();
    for other in spend.spend.spend.input_addresses() {
        if other == *address {
            continue;
        }
        if let Ok(Some(held)) = conn.certified_spend_at(other, genesis).await
            && held.spend.spend.hash() != hash
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_opens_only_for_its_account_and_entry() {
        let a = Account::for_tests("alice");
        let b = Account::for_tests("bob");
        let hint = WalletHint {
            coins: Vec::new(),
            notices_next: 7,
        };
        let sealed = seal(&a, b"coins-1", &hint).unwrap();
        assert_eq!(open(&a, b"coins-1", &sealed), Some(hint.clone()));
        assert_eq!(open(&a, b"coins-2", &sealed), None);
        assert_eq!(open(&b, b"coins-1", &sealed), None);
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert_eq!(open(&a, b"coins-1", &bad), None);
        assert_ne!(seal(&a, b"coins-1", &hint).unwrap(), sealed);
        assert_ne!(record_of(&a), record_of(&b));
        assert_ne!(*wallet_secret(&a), *wallet_secret(&b));
    }
}
