//! Wallet notices (issue 17; `docs/DESIGN-currency.md`, "Wallet notices"):
//! a sender tells a recipient that is not online where the coins it sent
//! are, with nothing but the recipient's wallet address.
//!
//! Each wallet address has a row of **slots**, records at addresses every
//! holder of the address can work out ([`slot`]). A sender creates the
//! first free slot with a fresh key of its own (so the record tells
//! nobody who sent it) and puts in it one entry: the spend's receipt and
//! amount, sealed to the address ([`seal`]: a key shared by
//! [`WalletAddress::share`], ChaCha20-Poly1305). The recipient reads its
//! slots from where it stopped last time up to the senders' frontier
//! ([`Payer::read_notices`]) and takes in each spend a notice names the
//! way `safe wallet receive` does: only if it is certified, pays the
//! wallet, and is not spent.
//!
//! Anyone can fill slots with junk, paying for each (creating a record is
//! paid for on a network that charges): that costs a recipient reads
//! (bounded per run), and filling the gallop's 25 probe slots makes
//! senders fail with [`NoticeError::NoSlot`], when the receipt must be
//! handed over by hand.
//!
//! A notice proves nothing by itself, so a forged one gains its writer
//! nothing; junk in a slot is skipped. What the slots do show anyone who
//! knows the address is how many notices it got, and when.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key as AeadKey, Nonce};
use safe_protocol::XorName;
use safe_protocol::coin::{WalletAddress, WalletKeys};
use safe_protocol::mutable::{RecordError, SigningKey, record_address};
use serde::{Deserialize, Serialize};

use crate::client::{Client, NewRecord};
use crate::mutable::MutableError;
use crate::pay::{PayError, Payer};

/// The type tag of notice slots.
pub const NOTICE_TAG: u64 = 0x5afe_5741_4c00_0001;
/// Format of a sealed notice and of the scan state.
pub const NOTICE_FORMAT: u8 = 1;
/// The entry of a slot that holds the notice.
pub const NOTICE_ENTRY: &[u8] = b"notice";
/// Slots read at most per scan (the rest wait for the next one).
pub const MAX_SCAN: u64 = 256;
/// Highest slot a sender looks for a free one below.
pub const MAX_SLOT: u64 = 1 << 24;
/// Slots taken by others while one sender tries, before it gives up.
const MAX_RACES: usize = 16;
/// Slots kept to read again, at most.
const MAX_RETRY: usize = 64;
/// Times a slot is read again before it is given up.
pub const MAX_TRIES: u8 = 5;
/// Notices whose spends one run checks at most (each costs lookups).
pub const MAX_TAKEN: usize = 32;
/// Newest slots also read each run when the backlog is long.
pub const NEWEST: u64 = 32;
/// Bytes of a sealed notice: `R`, then the sealed format byte, receipt
/// and amount, then the tag.
const SEALED_LEN: usize = 32 + 1 + 32 + 8 + 16;

/// Why a notice could not be left or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeError {
    /// The recipient's address has an invalid key.
    #[error("the wallet address holds an invalid key")]
    BadAddress,
    /// The slots are full or kept being taken.
    #[error("could not find a free notice slot for that wallet; hand the receipt over yourself")]
    NoSlot,
    /// A record operation failed.
    #[error("notice: {0}")]
    Record(#[from] MutableError),
    /// Taking in a noticed spend failed.
    #[error(transparent)]
    Pay(#[from] PayError),
}

/// The name of slot `n` of `address` (its record address is that name
/// with [`NOTICE_TAG`]).
fn slot_name(address: &WalletAddress, n: u64) -> Vec<u8> {
    let mut h = blake3::Hasher::new_derive_key("safe wallet notice slot v1");
    h.update(&address.view);
    h.update(&address.spend);
    h.update(&n.to_le_bytes());
    h.finalize().as_bytes().to_vec()
}

/// The record address of slot `n` of `address`.
pub fn slot(address: &WalletAddress, n: u64) -> XorName {
    record_address(&slot_name(address, n), NOTICE_TAG)
}

/// `receipt` and `amount` sealed to `to`: only its holder opens it.
pub fn seal(to: &WalletAddress, receipt: &XorName, amount: u64) -> Option<Vec<u8>> {
    let (key, public) = to.share()?;
    let mut plain = Vec::with_capacity(41);
    plain.push(NOTICE_FORMAT);
    plain.extend_from_slice(receipt.as_bytes());
    plain.extend_from_slice(&amount.to_le_bytes());
    // A fresh key per notice: a fixed nonce is safe.
    let sealed = ChaCha20Poly1305::new(AeadKey::from_slice(&key))
        .encrypt(
            Nonce::from_slice(&[0; 12]),
            Payload {
                msg: &plain,
                aad: &public,
            },
        )
        .ok()?;
    let mut out = public.to_vec();
    out.extend_from_slice(&sealed);
    Some(out)
}

/// The receipt and amount of a notice sealed to `keys`' wallet, or `None`
/// for anything else.
pub fn open(keys: &WalletKeys, sealed: &[u8]) -> Option<(XorName, u64)> {
    if sealed.len() != SEALED_LEN {
        return None;
    }
    let public: [u8; 32] = sealed[..32].try_into().ok()?;
    let key = keys.shared(&public)?;
    let plain = ChaCha20Poly1305::new(AeadKey::from_slice(&key))
        .decrypt(
            Nonce::from_slice(&[0; 12]),
            Payload {
                msg: &sealed[32..],
                aad: &public,
            },
        )
        .ok()?;
    if plain.len() != 41 || plain[0] != NOTICE_FORMAT {
        return None;
    }
    let receipt = XorName(plain[1..33].try_into().ok()?);
    let amount = u64::from_le_bytes(plain[33..41].try_into().ok()?);
    Some((receipt, amount))
}

/// Where a recipient's scan of its slots stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanState {
    /// Every slot below this was read (or is a hole no sender fills).
    pub next: u64,
    /// Slots to read again, with the tries so far: created but without
    /// their notice yet, or whose spend could not be checked.
    pub retry: Vec<(u64, u8)>,
}

/// What a scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Notices whose spends were taken in.
    pub taken: usize,
    /// Nanos taken in.
    pub nanos: u64,
    /// Slots that held something that is not a notice for this wallet,
    /// or a notice of a spend that pays it nothing new.
    pub skipped: usize,
}

impl Client {
    /// Whether slot `n` of `address` is taken, and its record if so.
    async fn read_slot(
        &self,
        address: &WalletAddress,
        n: u64,
    ) -> Result<Option<safe_protocol::mutable::Record>, MutableError> {
        match self.get_record(slot(address, n)).await {
            Ok(r) => Ok(Some(r)),
            Err(MutableError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The first free slot of `address` as senders find it: a gallop
    /// (0, 1, 3, 7, …) to a free slot, then a binary search between the
    /// last taken one and it. Slots are created and never removed, so
    /// this only moves up; a reader that reads every slot below it misses
    /// nothing, holes included.
    async fn first_free_slot(&self, address: &WalletAddress) -> Result<u64, NoticeError> {
        if self.read_slot(address, 0).await?.is_none() {
            return Ok(0);
        }
        let (mut taken, mut free) = (0u64, 1u64);
        while self.read_slot(address, free).await?.is_some() {
            taken = free;
            free = free.saturating_mul(2).saturating_add(1);
            if free >= MAX_SLOT {
                return Err(NoticeError::NoSlot);
            }
        }
        while free - taken > 1 {
            let mid = taken + (free - taken) / 2;
            if self.read_slot(address, mid).await?.is_some() {
                taken = mid;
            } else {
                free = mid;
            }
        }
        Ok(free)
    }

    /// Leaves a notice for `to` that the spend at `receipt` pays it
    /// `amount` nanos; returns the slot used.
    pub async fn leave_notice(
        &self,
        to: &WalletAddress,
        receipt: &XorName,
        amount: u64,
    ) -> Result<u64, NoticeError> {
        let sealed = seal(to, receipt, amount).ok_or(NoticeError::BadAddress)?;
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| MutableError::Network(e.to_string()))?;
        let writer = SigningKey::from_bytes(&secret);
        let mut n = self.first_free_slot(to).await?;
        for _ in 0..MAX_RACES {
            let new = NewRecord {
                name: slot_name(to, n),
                tag: NOTICE_TAG,
                owners: Vec::new(),
                threshold: 1,
                public_append: false,
            };
            match self.create_record(new, &writer).await {
                Ok(address) => {
                    self.set_entry(address, NOTICE_ENTRY, sealed, std::slice::from_ref(&writer))
                        .await?;
                    return Ok(n);
                }
                // Another sender took it first: the next one.
                Err(MutableError::Refused(RecordError::AlreadyExists)) => n += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Err(NoticeError::NoSlot)
    }
}

impl Payer {
    /// Reads the notices left for this payer's wallet since the last
    /// scan (every slot below the senders' frontier, at most [`MAX_SCAN`]
    /// a run, and at most [`MAX_TAKEN`] spends checked) and takes in the
    /// spends they name ([`Payer::receive`]: certified, paying the wallet,
    /// unspent). A slot that cannot be read yet is tried again on later
    /// runs, [`MAX_TRIES`] times.
    pub async fn read_notices(&self, client: &Client) -> Result<Scanned, NoticeError> {
        let conn = client
            .connection()
            .ok_or_else(|| MutableError::Network("notices need the network directly".into()))?;
        let _one = self.lock().await?;
        let Some(wallet) = self.wallet(conn).await? else {
            return Ok(Scanned::default());
        };
        let address = wallet.address();
        let mut state = wallet.notice_scan();
        let frontier = match client.first_free_slot(&address).await {
            Ok(f) => f,
            // Slots filled past the limit (junk): read what can be read.
            Err(NoticeError::NoSlot) => MAX_SLOT,
            Err(e) => return Err(e),
        };
        let end = frontier.min(state.next.saturating_add(MAX_SCAN));
        // The slots to read: those to read again, the next ones in order,
        // and, when the backlog is long (junk slots pushed the frontier
        // far up), the newest few too, so new notices are not buried.
        let mut look: Vec<(u64, u8, bool)> = std::mem::take(&mut state.retry)
            .into_iter()
            .map(|(n, t)| (n, t, false))
            .collect();
        look.extend((state.next..end).map(|n| (n, 0, true)));
        let top = frontier.saturating_sub(NEWEST).max(end);
        look.extend((top..frontier).map(|n| (n, 0, false)));
        let mut scanned = Scanned::default();
        let mut checked = 0usize;
        for (n, tries, in_order) in look {
            if checked >= MAX_TAKEN {
                // Out of this run's budget: the rest next time, in place.
                if in_order {
                    break;
                }
                if state.retry.len() < MAX_RETRY && tries > 0 {
                    state.retry.push((n, tries));
                }
                continue;
            }
            if in_order {
                state.next = n + 1;
            }
            let again = |state: &mut ScanState| {
                if tries + 1 < MAX_TRIES && state.retry.len() < MAX_RETRY {
                    state.retry.push((n, tries + 1));
                }
            };
            let record = match client.read_slot(&address, n).await {
                Ok(Some(r)) => r,
                // A hole below the frontier: no sender fills it.
                Ok(None) => continue,
                Err(_) => {
                    again(&mut state);
                    continue;
                }
            };
            let Some(sealed) = record.state.entries.get(NOTICE_ENTRY) else {
                // Created, its notice not written yet (or never).
                again(&mut state);
                continue;
            };
            let Some((receipt, _amount)) = open(wallet.keys(), sealed) else {
                scanned.skipped += 1;
                continue;
            };
            checked += 1;
            match self.receive_into(conn, &wallet, &receipt).await {
                Ok(got) if got > 0 => {
                    scanned.taken += 1;
                    scanned.nanos = scanned.nanos.saturating_add(got);
                }
                // Nothing new: taken in already, or spent, or not for us.
                Ok(_) | Err(PayError::NoSpend(_)) => scanned.skipped += 1,
                // Not checkable now: maybe later.
                Err(_) => again(&mut state),
            }
        }
        wallet.set_notice_scan(&state).map_err(PayError::from)?;
        self.after(conn, &wallet).await;
        Ok(scanned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens_a_notice_and_any_change_spoils_it() {
        let alice = WalletKeys::from_secret(&[1; 32]);
        let bob = WalletKeys::from_secret(&[2; 32]);
        let receipt = XorName([7; 32]);
        let sealed = seal(&alice.address(), &receipt, 1234).unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert_eq!(open(&alice, &sealed), Some((receipt, 1234)));
        assert_eq!(open(&bob, &sealed), None);
        for i in [0, 31, 32, 60, SEALED_LEN - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(open(&alice, &bad), None, "byte {i} changed");
        }
        assert_eq!(open(&alice, &sealed[..SEALED_LEN - 1]), None);
        // Two notices of the same payment look unrelated.
        assert_ne!(seal(&alice.address(), &receipt, 1234).unwrap(), sealed);
    }

    #[test]
    fn slots_differ_by_address_and_number() {
        let a = WalletKeys::from_secret(&[1; 32]).address();
        let b = WalletKeys::from_secret(&[2; 32]).address();
        assert_ne!(slot(&a, 0), slot(&a, 1));
        assert_ne!(slot(&a, 0), slot(&b, 0));
        assert_eq!(slot(&a, 5), slot(&a, 5));
    }
}
