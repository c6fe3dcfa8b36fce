//! Accounts on the wire: the tags of account records, the login entry a
//! node reads to decide who may fetch one, and the signed fetch request.
//!
//! The design (and its threat model) is `docs/DESIGN-accounts.md`. An
//! account is an ordinary mutable record under [`ACCOUNT_TAG`]; nodes serve
//! it only to a [`AccountFetch`] signed by the password-derived key named
//! in its [`LoginEntry`], or by one of its owners.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::mutable::{Change, Create, PublicKey, Record, RecordError, Write};
use crate::xorname::XorName;

/// Type tag of account records (name: the locator).
pub const ACCOUNT_TAG: u64 = 0x5afe_acc0_0000_0001;
/// Type tag of an account's keys record.
pub const KEYS_TAG: u64 = 0x5afe_acc0_0000_0002;
/// Type tag of an account's wallet record (its coins, sealed: issue 17).
pub const WALLET_TAG: u64 = 0x5afe_acc0_0000_0003;

/// The entry of an account record that holds the [`LoginEntry`].
pub const LOGIN_KEY: &[u8] = b"login";

/// Format version of an encoded [`LoginEntry`].
pub const LOGIN_FORMAT: u8 = 1;
/// Largest encoded login entry.
pub const MAX_LOGIN_ENTRY: usize = 4096;

/// How far (seconds) a fetch's time may be from the node's clock.
pub const FETCH_WINDOW_SECS: u64 = 3600;

/// Per node and account address: most fetches in a burst.
pub const RATE_BURST: u32 = 8;
/// Per node and account address: one more fetch allowed this often.
pub const RATE_REFILL_SECS: u64 = 15;
/// Rate-limit buckets a node keeps (addresses share them by a keyed hash).
pub const RATE_SLOTS: usize = 65_536;

/// What the login entry of an account record holds: which key may fetch
/// it, and the root secret sealed under a password-derived key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginEntry {
    /// The stretching parameter set the entry was sealed with.
    pub kdf: u8,
    /// The password-derived public key that may fetch the record.
    pub auth: PublicKey,
    /// The sealing nonce (random, new for every seal).
    pub nonce: [u8; 24],
    /// The sealed secrets (opaque to nodes).
    pub sealed: Vec<u8>,
}

impl LoginEntry {
    /// Its encoding, as stored in the record's [`LOGIN_KEY`] entry.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(LOGIN_FORMAT, self)
    }

    /// Decodes an entry value.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(LOGIN_FORMAT, bytes, MAX_LOGIN_ENTRY)
    }

    /// The login entry of `record`, if it is an account record that has a
    /// valid one.
    pub fn of(record: &Record) -> Option<Self> {
        if !is_account(record) {
            return None;
        }
        let value = record.state.entries.get(LOGIN_KEY)?;
        Self::decode(value).ok()
    }
}

/// Whether `record` is an account record (and so is served only to
/// signed fetches).
pub fn is_account(record: &Record) -> bool {
    record.genesis.body.tag == ACCOUNT_TAG
}

/// A fetch of an account record, signed by a key that may fetch it, for
/// one node and one moment (so it cannot be replayed elsewhere or later).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFetch {
    /// The account record's address.
    pub address: XorName,
    /// The public key (network identity) of the node asked.
    pub to: [u8; 32],
    /// The client's clock, in seconds since the Unix epoch.
    pub time: u64,
    /// The key that signed: the login's `auth`, or an owner.
    pub key: PublicKey,
    /// ed25519 signature over [`AccountFetch::signed_bytes`].
    pub signature: Vec<u8>,
}

impl AccountFetch {
    /// The exact bytes a fetch signs.
    pub fn signed_bytes(address: &XorName, to: &[u8; 32], time: u64, key: &PublicKey) -> Vec<u8> {
        let mut m = b"safe account fetch v1\0".to_vec();
        m.extend_from_slice(address.as_bytes());
        m.extend_from_slice(to);
        m.extend_from_slice(&time.to_be_bytes());
        m.extend_from_slice(key);
        m
    }

    /// A fetch of `address` from the node `to`, signed by `key`.
    pub fn new(address: XorName, to: [u8; 32], time: u64, key: &ed25519_dalek::SigningKey) -> Self {
        use ed25519_dalek::Signer;
        let public = key.verifying_key().to_bytes();
        let signature = key.sign(&Self::signed_bytes(&address, &to, time, &public));
        AccountFetch {
            address,
            to,
            time,
            key: public,
            signature: signature.to_bytes().to_vec(),
        }
    }

    /// True if the fetch is addressed to `node`, within
    /// [`FETCH_WINDOW_SECS`] of `now`, and signed by its `key` (strict
    /// ed25519).
    pub fn verify(&self, node: &[u8; 32], now: u64) -> bool {
        if &self.to != node || self.time.abs_diff(now) > FETCH_WINDOW_SECS {
            return false;
        }
        let Ok(key) = VerifyingKey::from_bytes(&self.key) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&self.signature) else {
            return false;
        };
        let bytes = Self::signed_bytes(&self.address, &self.to, self.time, &self.key);
        key.verify_strict(&bytes, &sig).is_ok()
    }
}

/// May the holder of `key` fetch `record`? Only an account record's owner
/// or its login key. (`owner` tells which: owners are not rate-limited.)
pub fn may_fetch(record: &Record, key: &PublicKey) -> Option<Fetcher> {
    if !is_account(record) {
        return None;
    }
    if record.state.owners.contains(key) {
        return Some(Fetcher::Owner);
    }
    match LoginEntry::of(record) {
        Some(login) if &login.auth == key => Some(Fetcher::Login),
        _ => None,
    }
}

/// The account policy for a create: one owner, threshold 1, nobody else
/// may append. (Other tags: anything.)
pub fn check_create(c: &Create) -> Result<(), RecordError> {
    if c.tag == ACCOUNT_TAG && (c.owners.len() != 1 || c.threshold != 1 || c.public_append) {
        return Err(RecordError::NotAllowed);
    }
    Ok(())
}

/// The account policy for a write to an account record: only setting the
/// login entry to a well-formed [`LoginEntry`]. No ownership change (so
/// nobody, not even a holder of the root secret, can take the recovery
/// phrase's power away), no removal, no appends.
pub fn check_write(write: &Write) -> Result<(), RecordError> {
    match write {
        Write::Op(op) => match &op.body.change {
            Change::Set { key, value } if key == LOGIN_KEY && LoginEntry::decode(value).is_ok() => {
                Ok(())
            }
            _ => Err(RecordError::NotAllowed),
        },
        Write::Append(_) => Err(RecordError::NotAllowed),
        Write::Create(_) => Ok(()),
    }
}

/// The account policy for a whole record (checked by
/// [`Record::verify`], so no copy that breaks it is taken anywhere).
pub fn check_record(record: &Record) -> Result<(), RecordError> {
    if !is_account(record) {
        return Ok(());
    }
    let state = &record.state;
    let entries_ok = state
        .entries
        .iter()
        .all(|(k, v)| k == LOGIN_KEY && LoginEntry::decode(v).is_ok());
    // After its first operation an account always has its login: no
    // copy, however signed, may take it away.
    let login_kept = state.version == 0 || state.entries.contains_key(LOGIN_KEY);
    if !record.owner_changes.is_empty()
        || !login_kept
        || !record.appends.is_empty()
        || !state.removed.is_empty()
        || state.owners.len() != 1
        || state.threshold != 1
        || state.public_append
        || !entries_ok
    {
        return Err(RecordError::NotAllowed);
    }
    Ok(())
}

/// Whether every signature of `write` verifies with the key it names
/// (strict ed25519), whoever that is. Nodes check this before looking the
/// address up, so the work does not depend on what is stored there.
pub fn signatures_valid(write: &Write) -> bool {
    fn all_valid<T: crate::mutable::Signable>(s: &crate::mutable::Signed<T>) -> bool {
        let msg = s.signing_bytes();
        !s.sigs.is_empty()
            && s.sigs.iter().all(|sig| {
                let (Ok(key), Ok(signature)) = (
                    VerifyingKey::from_bytes(&sig.key),
                    Signature::from_slice(&sig.sig),
                ) else {
                    return false;
                };
                key.verify_strict(&msg, &signature).is_ok()
            })
    }
    match write {
        Write::Create(c) => all_valid(c),
        Write::Op(o) => all_valid(o),
        Write::Append(a) => all_valid(a),
    }
}

/// Whether one of the keys that signed `write` is a current owner of
/// `record` (signatures checked apart, by [`signatures_valid`]). Nodes
/// give the true answer to a write on an account record only then;
/// anyone else is told what a missing record would tell.
pub fn signed_by_owner(record: &Record, write: &Write) -> bool {
    let owners = &record.state.owners;
    let sigs = match write {
        Write::Create(_) => return false,
        Write::Op(o) => &o.sigs,
        Write::Append(a) => &a.sigs,
    };
    sigs.iter().any(|s| owners.contains(&s.key))
}

/// Who signed an accepted fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetcher {
    /// An owner of the record (holds the root secret).
    Owner,
    /// The password-derived login key.
    Login,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutable::{Op, Signed};
    use ed25519_dalek::SigningKey;

    #[test]
    fn a_fetch_verifies_only_for_its_node_window_and_key() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let node = [9; 32];
        let f = AccountFetch::new(XorName([1; 32]), node, 1_000_000, &key);
        assert!(f.verify(&node, 1_000_000));
        assert!(f.verify(&node, 1_000_000 + FETCH_WINDOW_SECS));
        assert!(!f.verify(&node, 1_000_000 + FETCH_WINDOW_SECS + 1));
        assert!(!f.verify(&[8; 32], 1_000_000), "another node");
        let mut other = f.clone();
        other.address = XorName([2; 32]);
        assert!(!other.verify(&node, 1_000_000), "another address");
        let mut swapped = f.clone();
        swapped.key = SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes();
        assert!(!swapped.verify(&node, 1_000_000), "another key");
        let mut short = f;
        short.signature.truncate(63);
        assert!(!short.verify(&node, 1_000_000));
    }

    fn account_create(owners: &[u8], threshold: u8, public_append: bool) -> Signed<Create> {
        let mut keys: Vec<PublicKey> = owners
            .iter()
            .map(|i| SigningKey::from_bytes(&[*i; 32]).verifying_key().to_bytes())
            .collect();
        keys.sort();
        let mut c = Signed::new(Create {
            name: b"locator".to_vec(),
            tag: ACCOUNT_TAG,
            owners: keys,
            threshold,
            public_append,
        });
        c.sign(&SigningKey::from_bytes(&[owners[0]; 32]));
        c
    }

    fn op_on(r: &Record, change: Change, by: u8) -> Write {
        let result = r.state.apply(&change).map(|s| s.hash()).unwrap_or_default();
        let mut o = Signed::new(Op {
            address: r.address(),
            replaces: r.state.version,
            prev: r.state.hash(),
            change,
            result,
        });
        o.sign(&SigningKey::from_bytes(&[by; 32]));
        Write::Op(o)
    }

    fn login_value() -> Vec<u8> {
        LoginEntry {
            kdf: 1,
            auth: [5; 32],
            nonce: [6; 24],
            sealed: vec![7; 40],
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn account_records_have_one_owner_and_only_a_login() {
        for (owners, threshold, public) in [(&[1u8, 2][..], 1, false), (&[1][..], 1, true)] {
            assert_eq!(
                Record::create(account_create(owners, threshold, public)).unwrap_err(),
                RecordError::NotAllowed
            );
        }
        let mut r = Record::create(account_create(&[1], 1, false)).unwrap();
        let refused = [
            Change::Set {
                key: b"other".to_vec(),
                value: vec![1],
            },
            Change::Set {
                key: LOGIN_KEY.to_vec(),
                value: b"not a login entry".to_vec(),
            },
            Change::Remove {
                key: LOGIN_KEY.to_vec(),
            },
            Change::Owners {
                owners: vec![SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes()],
                threshold: 1,
            },
        ];
        for change in refused {
            let before = r.clone();
            assert_eq!(r.apply(&op_on(&r, change, 1)), Err(RecordError::NotAllowed));
            assert_eq!(r, before, "nothing changes on a refusal");
        }
        let login = Change::Set {
            key: LOGIN_KEY.to_vec(),
            value: login_value(),
        };
        assert!(r.apply(&op_on(&r, login, 1)).is_ok());
        assert!(r.verify(&r.address()).is_ok());
        assert!(LoginEntry::of(&r).is_some());
        let mut append = Signed::new(crate::mutable::Append {
            address: r.address(),
            value: vec![1],
            nonce: 1,
        });
        append.sign(&SigningKey::from_bytes(&[1; 32]));
        assert_eq!(
            r.apply(&Write::Append(append)),
            Err(RecordError::NotAllowed)
        );
        // The rule is the account rule; only account records follow it.
        assert!(check_write(&op_on(&r, Change::Remove { key: b"x".to_vec() }, 1)).is_err());
        assert!(!is_account(
            &Record::create({
                let mut c = account_create(&[1], 1, false);
                c.body.tag = 7;
                c.sigs.clear();
                c.sign(&SigningKey::from_bytes(&[1; 32]));
                c
            })
            .unwrap()
        ));
    }

    /// A copy made by an owner who signs an operation the rules refuse,
    /// put together by hand (as a node of the group could).
    fn forged_copy(r: &Record, change: Change) -> Record {
        let state = r.state.apply(&change).unwrap();
        let Write::Op(op) = op_on(r, change, 1) else {
            unreachable!()
        };
        Record {
            last: Some(op),
            state,
            ..r.clone()
        }
    }

    #[test]
    fn no_copy_breaking_the_account_rules_verifies() {
        let mut r = Record::create(account_create(&[1], 1, false)).unwrap();
        let login = Change::Set {
            key: LOGIN_KEY.to_vec(),
            value: login_value(),
        };
        r.apply(&op_on(&r, login, 1)).unwrap();
        let address = r.address();
        assert!(r.verify(&address).is_ok());
        // The same kind of copy of an ordinary record verifies: only the
        // account rules refuse these.
        let other = forged_copy(
            &r,
            Change::Set {
                key: b"other".to_vec(),
                value: vec![1],
            },
        );
        assert_eq!(other.verify(&address), Err(RecordError::NotAllowed));
        let no_login = forged_copy(
            &r,
            Change::Remove {
                key: LOGIN_KEY.to_vec(),
            },
        );
        assert_eq!(no_login.verify(&address), Err(RecordError::NotAllowed));
        let fine = forged_copy(
            &r,
            Change::Set {
                key: LOGIN_KEY.to_vec(),
                value: login_value(),
            },
        );
        assert!(fine.verify(&address).is_ok(), "the rule is what refuses");
    }

    #[test]
    fn signatures_are_checked_apart_from_owners() {
        let r = Record::create(account_create(&[1], 1, false)).unwrap();
        let by_owner = op_on(&r, Change::Remove { key: b"x".to_vec() }, 1);
        assert!(signatures_valid(&by_owner));
        assert!(signed_by_owner(&r, &by_owner));
        let by_stranger = op_on(&r, Change::Remove { key: b"x".to_vec() }, 9);
        assert!(signatures_valid(&by_stranger));
        assert!(!signed_by_owner(&r, &by_stranger));
        let Write::Op(mut forged) = by_owner else {
            unreachable!()
        };
        forged.sigs[0].sig[0] ^= 1;
        assert!(!signatures_valid(&Write::Op(forged)));
    }

    #[test]
    fn login_entries_round_trip_and_refuse_garbage() {
        let e = LoginEntry {
            kdf: 1,
            auth: [5; 32],
            nonce: [6; 24],
            sealed: vec![7; 100],
        };
        assert_eq!(LoginEntry::decode(&e.encode().unwrap()).unwrap(), e);
        assert!(LoginEntry::decode(&[1, 2, 3]).is_err());
        assert!(LoginEntry::decode(&vec![LOGIN_FORMAT; MAX_LOGIN_ENTRY + 1]).is_err());
    }
}
