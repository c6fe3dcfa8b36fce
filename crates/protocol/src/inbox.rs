//! Inboxes and profiles for private messages (`docs/DESIGN-messaging.md`).
//!
//! An inbox is a public-append record (tag [`INBOX_TAG`]) whose appends
//! each carry an [`InboxAppend`]: a sealed envelope, the hour it was made
//! in and the proof of work claimed for it. Nodes hold every append to the
//! rules here:
//!
//! - at any time ([`check_stored`], from `Record::verify` and merges): the
//!   value decodes, the claimed work is within [`MIN_WORK`]..=[`MAX_WORK`],
//!   and the append's [`work_bits`] reach the claim plus [`size_bits`]. This
//!   depends on the append alone, so no later change of the owner's
//!   difficulty makes a stored copy invalid;
//! - when a node first accepts it ([`check_accept`], with the node's
//!   clock): the hour is current (±1), the claim is at least the inbox's
//!   own difficulty, and the work also pays [`full_bits`] for how full the
//!   inbox is.
//!
//! A profile (tag [`PROFILE_TAG`]) is an ordinary owned record whose one
//! entry, [`PROFILE_ENTRY`], is a [`Profile`]: where the account's inbox is
//! and the keys a sender needs.

use serde::{Deserialize, Serialize};

use crate::XorName;
use crate::codec::{self, CodecError};
use crate::mutable::{
    Append, Change, Create, HELD_APPEND_BYTES, HELD_APPENDS, Limit, Record, RecordError, Signed,
    State, Write,
};

/// Tag of profile records.
pub const PROFILE_TAG: u64 = 0x5afe_4d53_4700_0001;
/// Tag of inbox records.
pub const INBOX_TAG: u64 = 0x5afe_4d53_4700_0002;
/// The profile record's one entry: an encoded [`Profile`].
pub const PROFILE_ENTRY: &[u8] = b"profile";
/// The inbox's entry holding its owner's minimum difficulty (one byte).
pub const WORK_ENTRY: &[u8] = b"work";
/// The inbox's entry holding its **floor**: the oldest epoch (u64, big
/// endian) an append may carry. The owner raises it as it reads, so old
/// envelopes cannot be appended again by anyone, not even a node that
/// offers a copy of the record.
pub const FLOOR_ENTRY: &[u8] = b"floor";
/// The most close-group members an inbox is assumed to have: each member
/// accepts at most 1/`MAX_GROUP` of what a record holds, so the union of
/// what every member accepted always fits in a replica and no delivered
/// letter is pushed out by appends sent to other members.
pub const MAX_GROUP: usize = 8;
/// Most appends a member accepts into one inbox.
pub const INBOX_ACCEPT_APPENDS: usize = HELD_APPENDS / MAX_GROUP;
/// Most bytes of appends a member accepts into one inbox.
pub const INBOX_ACCEPT_BYTES: usize = HELD_APPEND_BYTES / MAX_GROUP;
// What every member accepts at once fits what one replica holds.
const _: () = assert!(INBOX_ACCEPT_BYTES * MAX_GROUP <= HELD_APPEND_BYTES);
const _: () = assert!(INBOX_ACCEPT_APPENDS * MAX_GROUP <= HELD_APPENDS);
/// Codec format of [`Profile`].
pub const PROFILE_FORMAT: u8 = 1;
/// Codec format of [`InboxAppend`].
pub const INBOX_FORMAT: u8 = 1;
/// Least difficulty (leading zero bits) an inbox may ask or an append claim.
pub const MIN_WORK: u8 = 16;
/// Greatest difficulty an inbox may ask or an append claim.
pub const MAX_WORK: u8 = 28;
/// Difficulty of a new inbox.
pub const DEFAULT_WORK: u8 = 18;
/// Largest sealed envelope in one append.
pub const MAX_ENVELOPE: usize = 4096;
/// Largest encoded [`InboxAppend`]: the envelope and its few header bytes.
pub const MAX_INBOX_VALUE: usize = MAX_ENVELOPE + 32;
/// Largest encoded [`Profile`].
pub const MAX_PROFILE: usize = 256;
const PROFILE_DOMAIN: &[u8] = b"safe msg profile v1\0";
/// Length of an epoch, the unit [`InboxAppend::epoch`] counts in.
pub const EPOCH_SECS: u64 = 3600;
/// Largest extra work [`full_bits`] asks of an almost full inbox.
pub const MAX_FULL_BITS: u8 = 6;

/// What a sender needs to write to an account: its inbox and keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The inbox record's address.
    pub inbox: XorName,
    /// The X25519 public key letters are sealed to.
    pub seal: [u8; 32],
    /// The ed25519 key that signs this account's letters.
    pub sign: [u8; 32],
    /// The inbox's minimum difficulty (as its [`WORK_ENTRY`] says).
    pub work: u8,
    /// Signature by `sign` over [`Profile::signed_bytes`]: the signing key
    /// vouches for this profile, so no other profile can claim it.
    pub proof: Vec<u8>,
}

impl Profile {
    /// Encodes under [`PROFILE_FORMAT`].
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(PROFILE_FORMAT, self)
    }

    /// Decodes at most [`MAX_PROFILE`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(PROFILE_FORMAT, bytes, MAX_PROFILE)
    }

    /// What [`Profile::proof`] signs: the profile record's address, the
    /// inbox and the sealing key.
    pub fn signed_bytes(&self, address: &XorName) -> Vec<u8> {
        [
            PROFILE_DOMAIN,
            address.as_bytes(),
            self.inbox.as_bytes(),
            &self.seal,
        ]
        .concat()
    }

    /// Signs the profile at `address` with its signing key.
    pub fn sign_with(&mut self, address: &XorName, key: &ed25519_dalek::SigningKey) {
        use ed25519_dalek::Signer;
        self.sign = key.verifying_key().to_bytes();
        self.proof = key.sign(&self.signed_bytes(address)).to_bytes().to_vec();
    }

    /// The profile a record holds, if it is a well-formed profile record
    /// whose signing key vouches for it.
    pub fn of(record: &Record) -> Option<Self> {
        if record.genesis.body.tag != PROFILE_TAG {
            return None;
        }
        let p = Self::decode(record.state.entries.get(PROFILE_ENTRY)?).ok()?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&p.sign).ok()?;
        let sig = ed25519_dalek::Signature::from_slice(&p.proof).ok()?;
        key.verify_strict(&p.signed_bytes(&record.address()), &sig)
            .ok()?;
        (MIN_WORK..=MAX_WORK).contains(&p.work).then_some(p)
    }
}

/// The value of one append to an inbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxAppend {
    /// The hour (unix seconds / [`EPOCH_SECS`]) the work was done in.
    pub epoch: u64,
    /// The difficulty the sender worked for.
    pub work: u8,
    /// The sealed letter.
    pub envelope: Vec<u8>,
}

impl InboxAppend {
    /// Encodes under [`INBOX_FORMAT`].
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(INBOX_FORMAT, self)
    }

    /// Decodes at most [`MAX_INBOX_VALUE`] bytes, checking the envelope's
    /// size and the claimed work's range.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let a: Self = codec::decode(INBOX_FORMAT, bytes, MAX_INBOX_VALUE)
            .map_err(|_| RecordError::Malformed)?;
        if a.envelope.len() > MAX_ENVELOPE || !(MIN_WORK..=MAX_WORK).contains(&a.work) {
            return Err(RecordError::Malformed);
        }
        Ok(a)
    }
}

/// Whether `record` is an inbox.
pub fn is_inbox(record: &Record) -> bool {
    record.genesis.body.tag == INBOX_TAG
}

/// The proof of work of an append: leading zero bits of a hash of its body
/// (the value hashed first, so a sender trying nonces hashes it once).
pub fn work_bits(address: &XorName, value: &[u8], nonce: u64) -> u8 {
    work_bits_of(address, blake3::hash(value).as_bytes(), nonce)
}

fn work_bits_of(address: &XorName, value_hash: &[u8; 32], nonce: u64) -> u8 {
    let mut h = blake3::Hasher::new_derive_key("safe inbox work v1");
    h.update(address.as_bytes());
    h.update(value_hash);
    h.update(&nonce.to_be_bytes());
    leading_zeros(h.finalize().as_bytes())
}

fn leading_zeros(bytes: &[u8; 32]) -> u8 {
    let mut n = 0u32;
    for b in bytes {
        n += b.leading_zeros();
        if *b != 0 {
            break;
        }
    }
    n.min(255) as u8
}

/// Extra bits an envelope of `len` bytes costs: ⌈log2 ⌈len / 1 KiB⌉⌉.
pub fn size_bits(len: usize) -> u8 {
    let kib = len.div_ceil(1024).max(1);
    kib.next_power_of_two().trailing_zeros() as u8
}

/// Extra bits an append to `record` costs now for how full it is:
/// ⌊log2(capacity / free)⌋ over the fuller of the inbox's two accept
/// limits (0 until half full, 1 to three quarters, …), at most
/// [`MAX_FULL_BITS`].
pub fn full_bits(record: &Record) -> u8 {
    let count = record.appends.len();
    let bits = |used: usize, cap: usize| -> u8 {
        let free = cap.saturating_sub(used).max(1);
        ((cap / free).max(1).ilog2() as u8).min(MAX_FULL_BITS)
    };
    bits(count, INBOX_ACCEPT_APPENDS).max(bits(appends_bytes(record), INBOX_ACCEPT_BYTES))
}

fn appends_bytes(record: &Record) -> usize {
    record.appends.iter().map(encoded_len).sum()
}

fn encoded_len(a: &Signed<Append>) -> usize {
    postcard::to_allocvec(a).map_or(INBOX_ACCEPT_BYTES, |v| v.len())
}

/// Whether `record` (an inbox) has no room for another append of a
/// `value_len`-byte value: what a sender checks before doing the work.
pub fn is_full(record: &Record, value_len: usize) -> bool {
    // An append's encoding: its value, nonce, address and one signature.
    const OVERHEAD: usize = 160;
    record.appends.len() >= INBOX_ACCEPT_APPENDS
        || appends_bytes(record) + value_len + OVERHEAD > INBOX_ACCEPT_BYTES
}

/// The inbox's floor ([`FLOOR_ENTRY`]; none: 0).
pub fn floor(state: &State) -> u64 {
    state
        .entries
        .get(FLOOR_ENTRY)
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// The difficulty the inbox's owner asks: its [`WORK_ENTRY`] (none:
/// [`DEFAULT_WORK`]).
pub fn asked_work(record: &Record) -> u8 {
    match record.state.entries.get(WORK_ENTRY).map(Vec::as_slice) {
        Some([d]) if (MIN_WORK..=MAX_WORK).contains(d) => *d,
        _ => DEFAULT_WORK,
    }
}

/// The inbox policy for a create: an inbox is public-append.
pub fn check_create(c: &Create) -> Result<(), RecordError> {
    if c.tag == INBOX_TAG && !c.public_append {
        return Err(RecordError::NotAllowed);
    }
    Ok(())
}

/// The inbox policy for an owner operation: its [`WORK_ENTRY`], if set, is
/// one byte within [`MIN_WORK`]..=[`MAX_WORK`]; its [`FLOOR_ENTRY`] eight.
pub fn check_write(write: &Write) -> Result<(), RecordError> {
    match write {
        Write::Op(op) => match &op.body.change {
            Change::Set { key, value } if key == WORK_ENTRY => match value.as_slice() {
                [d] if (MIN_WORK..=MAX_WORK).contains(d) => Ok(()),
                _ => Err(RecordError::NotAllowed),
            },
            Change::Set { key, value } if key == FLOOR_ENTRY && value.len() != 8 => {
                Err(RecordError::NotAllowed)
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The rule every stored append to an inbox meets at any time, under the
/// record's current `state`: one signature (so every copy of an append is
/// the same bytes), a well-formed [`InboxAppend`] no older than the
/// inbox's floor, whose work reaches its claim and its size.
pub fn check_stored(state: &State, tag: u64, a: &Signed<Append>) -> Result<(), RecordError> {
    if tag != INBOX_TAG {
        return Ok(());
    }
    if a.sigs.len() != 1 {
        return Err(RecordError::NotAllowed);
    }
    let value = InboxAppend::decode(&a.body.value)?;
    if value.epoch < floor(state) {
        return Err(RecordError::StaleWork);
    }
    let need = value.work + size_bits(value.envelope.len());
    if work_bits(&a.body.address, &a.body.value, a.body.nonce) < need {
        return Err(RecordError::NotEnoughWork { need });
    }
    Ok(())
}

/// The rules a node adds when it first accepts an append to an inbox, at
/// unix time `now` (seconds): the work is for this hour (±1), claims at
/// least the inbox's difficulty, and pays for how full the inbox is. Other
/// writes, and other records, pass.
///
/// An owner may not set the floor past the node's last hour: a reader with
/// a clock running ahead would otherwise shut the inbox to every sender.
pub fn check_accept(current: Option<&Record>, write: &Write, now: u64) -> Result<(), RecordError> {
    let Some(record) = current.filter(|r| is_inbox(r)) else {
        return Ok(());
    };
    let a = match write {
        Write::Append(a) => a,
        Write::Op(op) => {
            if let Change::Set { key, value } = &op.body.change
                && key == FLOOR_ENTRY
                && <[u8; 8]>::try_from(value.as_slice())
                    .is_ok_and(|v| u64::from_be_bytes(v) >= now / EPOCH_SECS)
            {
                return Err(RecordError::NotAllowed);
            }
            return Ok(());
        }
        Write::Create(_) => return Ok(()),
    };
    // A retry of an append held already: the record answers it.
    let id = a.id();
    if record.appends.iter().any(|x| x.id() == id) {
        return Ok(());
    }
    let value = InboxAppend::decode(&a.body.value)?;
    if value.epoch.abs_diff(now / EPOCH_SECS) > 1 {
        return Err(RecordError::StaleWork);
    }
    if record.appends.len() >= INBOX_ACCEPT_APPENDS
        || appends_bytes(record) + encoded_len(a) > INBOX_ACCEPT_BYTES
    {
        return Err(RecordError::TooLarge(Limit::Appends));
    }
    let claim = value.work.max(asked_work(record));
    let need = claim
        .saturating_add(size_bits(value.envelope.len()))
        .saturating_add(full_bits(record));
    if value.work < asked_work(record)
        || work_bits(&a.body.address, &a.body.value, a.body.nonce) < need
    {
        return Err(RecordError::NotEnoughWork { need });
    }
    Ok(())
}

/// The first nonce from `start` on whose [`work_bits`] reach `need`: what a
/// sender grinds. Expect 2^`need` tries.
pub fn find_nonce(address: &XorName, value: &[u8], start: u64, need: u8) -> u64 {
    let value_hash = *blake3::hash(value).as_bytes();
    let mut nonce = start;
    while work_bits_of(address, &value_hash, nonce) < need {
        nonce = nonce.wrapping_add(1);
    }
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutable::{Op, SigningKey, apply_write};

    const NOW: u64 = 1_000 * EPOCH_SECS + 17;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    fn inbox() -> Record {
        let mut c = Signed::new(Create {
            name: b"inbox".to_vec(),
            tag: INBOX_TAG,
            owners: vec![key(0).verifying_key().to_bytes()],
            threshold: 1,
            public_append: true,
        });
        c.sign(&key(0));
        Record::create(c).unwrap()
    }

    /// An append of `envelope` for `epoch`, claiming `work`, carrying `bits`
    /// bits of work, signed by `signers`.
    fn letter(
        r: &Record,
        epoch: u64,
        work: u8,
        envelope: Vec<u8>,
        bits: u8,
        signers: &[u8],
    ) -> Write {
        let value = InboxAppend {
            epoch,
            work,
            envelope,
        }
        .encode()
        .unwrap();
        let nonce = find_nonce(&r.address(), &value, 0, bits);
        let mut a = Signed::new(Append {
            address: r.address(),
            value,
            nonce,
        });
        for s in signers {
            a.sign(&key(*s));
        }
        Write::Append(a)
    }

    fn owner_set(r: &Record, k: &[u8], v: Vec<u8>) -> Write {
        let change = Change::Set {
            key: k.to_vec(),
            value: v,
        };
        let result = r.state.apply(&change).unwrap().hash();
        let mut o = Signed::new(Op {
            address: r.address(),
            replaces: r.state.version,
            prev: r.state.hash(),
            change,
            result,
        });
        o.sign(&key(0));
        Write::Op(o)
    }

    fn short_value(w: &Write) -> Vec<u8> {
        match w {
            Write::Append(a) => a.body.value.clone(),
            _ => unreachable!(),
        }
    }

    fn short_nonce(w: &Write) -> u64 {
        match w {
            Write::Append(a) => a.body.nonce,
            _ => unreachable!(),
        }
    }

    fn accept(r: &Record, w: &Write) -> Result<Record, RecordError> {
        check_accept(Some(r), w, NOW)?;
        Ok(apply_write(Some(r.clone()), w)?.unwrap_or_else(|| r.clone()))
    }

    #[test]
    fn an_inbox_takes_worked_current_singly_signed_appends_only() {
        let r = inbox();
        let epoch = NOW / EPOCH_SECS;
        let ok = letter(&r, epoch, DEFAULT_WORK, vec![1; 100], DEFAULT_WORK, &[5]);
        let r2 = accept(&r, &ok).unwrap();
        r2.verify(&r2.address()).unwrap();
        // Claiming less than the inbox asks (its default).
        let low = letter(&r, epoch, MIN_WORK, vec![2; 100], MIN_WORK, &[5]);
        assert_eq!(
            accept(&r, &low),
            Err(RecordError::NotEnoughWork { need: DEFAULT_WORK })
        );
        // Work for two hours ago, or ahead.
        for e in [epoch - 2, epoch + 2] {
            let stale = letter(&r, e, DEFAULT_WORK, vec![3; 100], DEFAULT_WORK, &[5]);
            assert_eq!(accept(&r, &stale), Err(RecordError::StaleWork));
        }
        // Two signatures: copies could differ in bytes.
        let two = letter(&r, epoch, DEFAULT_WORK, vec![4; 100], DEFAULT_WORK, &[5, 6]);
        assert_eq!(accept(&r, &two), Err(RecordError::NotAllowed));
        // Larger envelopes cost more.
        let big = letter(&r, epoch, DEFAULT_WORK, vec![5; 3000], DEFAULT_WORK, &[5]);
        assert_eq!(
            accept(&r, &big),
            Err(RecordError::NotEnoughWork {
                need: DEFAULT_WORK + 2
            })
        );
        // A create of an inbox that is not public-append is refused.
        let mut c = Signed::new(Create {
            name: b"x".to_vec(),
            tag: INBOX_TAG,
            owners: vec![key(0).verifying_key().to_bytes()],
            threshold: 1,
            public_append: false,
        });
        c.sign(&key(0));
        assert_eq!(Record::create(c).err(), Some(RecordError::NotAllowed));
    }

    #[test]
    fn raising_the_difficulty_keeps_stored_appends_and_the_floor_drops_old_ones() {
        let mut r = inbox();
        let epoch = NOW / EPOCH_SECS;
        assert_eq!(
            accept(
                &r,
                &letter(&r, epoch - 1, MIN_WORK, vec![1; 10], MIN_WORK, &[5])
            ),
            Err(RecordError::NotEnoughWork { need: DEFAULT_WORK })
        );
        r = accept(
            &r,
            &letter(&r, epoch - 1, DEFAULT_WORK, vec![1; 10], DEFAULT_WORK, &[5]),
        )
        .unwrap();
        r = accept(
            &r,
            &letter(&r, epoch, DEFAULT_WORK, vec![2; 10], DEFAULT_WORK, &[5]),
        )
        .unwrap();
        // The owner asks more: the stored appends stay valid.
        r = accept(&r, &owner_set(&r, WORK_ENTRY, vec![DEFAULT_WORK + 1])).unwrap();
        assert_eq!(r.appends.len(), 2);
        r.verify(&r.address()).unwrap();
        assert_eq!(asked_work(&r), DEFAULT_WORK + 1);
        // Out-of-range difficulties and malformed floors are refused.
        assert_eq!(
            accept(&r, &owner_set(&r, WORK_ENTRY, vec![MAX_WORK + 1])),
            Err(RecordError::NotAllowed)
        );
        assert_eq!(
            accept(&r, &owner_set(&r, FLOOR_ENTRY, vec![1, 2])),
            Err(RecordError::NotAllowed)
        );
        // The floor passes the older append: it is gone, and cannot be
        // offered back by a replica that still holds it.
        let old = r.clone();
        // (Two hours later: a node takes no floor at or past its hour.)
        let floor_w = owner_set(&r, FLOOR_ENTRY, epoch.to_be_bytes().to_vec());
        assert_eq!(
            check_accept(Some(&r), &floor_w, NOW),
            Err(RecordError::NotAllowed)
        );
        check_accept(Some(&r), &floor_w, NOW + 2 * EPOCH_SECS).unwrap();
        r = apply_write(Some(r), &floor_w).unwrap().unwrap();
        assert_eq!(r.appends.len(), 1);
        r.verify(&r.address()).unwrap();
        let mut merged = r.clone();
        merged.merge(&old);
        assert_eq!(merged.appends.len(), 1);
        merged.verify(&merged.address()).unwrap();
    }

    #[test]
    fn a_full_inbox_refuses_and_filling_it_costs_more() {
        let mut r = inbox();
        r = accept(&r, &owner_set(&r, WORK_ENTRY, vec![MIN_WORK])).unwrap();
        let epoch = NOW / EPOCH_SECS;
        let (mut i, mut most) = (0u32, 0u8);
        let refused = loop {
            // Each append carries just the work the inbox asks now.
            let need = MIN_WORK + full_bits(&r);
            most = most.max(need);
            let w = letter(&r, epoch, MIN_WORK, i.to_be_bytes().repeat(250), need, &[5]);
            match check_accept(Some(&r), &w, NOW) {
                Ok(()) => r = apply_write(Some(r), &w).unwrap().unwrap(),
                Err(e) => break e,
            }
            // One bit less than asked is refused.
            if need > MIN_WORK {
                let short = letter(&r, epoch, MIN_WORK, vec![9; 10], need - 1, &[5]);
                if work_bits(&r.address(), &short_value(&short), short_nonce(&short)) < need {
                    assert!(check_accept(Some(&r), &short, NOW).is_err());
                }
            }
            i += 1;
            assert!(i < 1000, "never full");
        };
        // Between the accept limits, the extra work grew; then: full.
        assert_eq!(refused, RecordError::TooLarge(Limit::Appends));
        assert!(appends_bytes(&r) <= INBOX_ACCEPT_BYTES);
        assert!(most >= MIN_WORK + 3, "{most}");
    }

    #[test]
    fn an_offered_copy_never_pushes_out_held_letters_and_floors_stay_in_the_past() {
        let epoch = NOW / EPOCH_SECS;
        let base = inbox();
        // Bob's replica holds one letter.
        let letter_w = letter(&base, epoch, DEFAULT_WORK, vec![1; 900], DEFAULT_WORK, &[5]);
        let mine = accept(&base, &letter_w).unwrap();
        // A hostile copy, built around the accept rules (as a node offering
        // a copy can), stuffed with appends up to what a replica holds.
        let mut hostile = base.clone();
        let mut i = 0u32;
        while appends_bytes(&hostile) + 4300 <= HELD_APPEND_BYTES {
            let w = letter(
                &hostile,
                epoch,
                MIN_WORK,
                i.to_be_bytes().repeat(1000),
                MIN_WORK + 2,
                &[6],
            );
            let Write::Append(a) = &w else { unreachable!() };
            hostile.add_appends([a]);
            i += 1;
        }
        hostile.verify(&hostile.address()).unwrap();
        let mut merged = mine.clone();
        merged.merge(&hostile);
        merged.verify(&merged.address()).unwrap();
        let Write::Append(held) = &letter_w else {
            unreachable!()
        };
        assert!(merged.appends.iter().any(|a| a.id() == held.id()));
        // A retry of a held letter is accepted again, even when full.
        assert!(check_accept(Some(&merged), &letter_w, NOW).is_ok());
        // A floor at or past the node's hour is refused.
        for f in [epoch, epoch + 100] {
            let w = owner_set(&mine, FLOOR_ENTRY, f.to_be_bytes().to_vec());
            assert_eq!(
                check_accept(Some(&mine), &w, NOW),
                Err(RecordError::NotAllowed)
            );
        }
        let w = owner_set(&mine, FLOOR_ENTRY, (epoch - 5).to_be_bytes().to_vec());
        assert_eq!(check_accept(Some(&mine), &w, NOW), Ok(()));
    }

    #[test]
    fn a_profile_is_only_what_its_signing_key_vouches_for() {
        let mut c = Signed::new(Create {
            name: b"p".to_vec(),
            tag: PROFILE_TAG,
            owners: vec![key(0).verifying_key().to_bytes()],
            threshold: 1,
            public_append: false,
        });
        c.sign(&key(0));
        let r = Record::create(c).unwrap();
        let mut p = Profile {
            inbox: XorName::from_content(b"i"),
            seal: [3; 32],
            sign: [0; 32],
            work: DEFAULT_WORK,
            proof: Vec::new(),
        };
        p.sign_with(&r.address(), &key(9));
        let with = |p: &Profile| {
            let w = owner_set(&r, PROFILE_ENTRY, p.encode().unwrap());
            apply_write(Some(r.clone()), &w).unwrap().unwrap()
        };
        assert_eq!(Profile::of(&with(&p)), Some(p.clone()));
        // Someone else's signing key, with a proof for another profile.
        let mut other = p.clone();
        other.inbox = XorName::from_content(b"elsewhere");
        assert_eq!(Profile::of(&with(&other)), None);
    }

    #[test]
    fn size_bits_grow_with_each_doubling() {
        assert_eq!(size_bits(0), 0);
        assert_eq!(size_bits(1024), 0);
        assert_eq!(size_bits(1025), 1);
        assert_eq!(size_bits(2048), 1);
        assert_eq!(size_bits(3000), 2);
        assert_eq!(size_bits(4096), 2);
    }

    #[test]
    fn found_nonces_carry_the_work_asked() {
        let address = XorName::from_content(b"inbox");
        for need in [0u8, 4, 10] {
            let n = find_nonce(&address, b"value", 7, need);
            assert!(work_bits(&address, b"value", n) >= need);
            // Work is bound to the address and the value.
            if need == 10 {
                let other = XorName::from_content(b"other inbox");
                assert!(
                    work_bits(&other, b"value", n) < 10 || work_bits(&address, b"valu3", n) < 10
                );
            }
        }
    }

    #[test]
    fn leading_zeros_counts_across_bytes() {
        let mut b = [0u8; 32];
        b[1] = 0b0001_0000;
        assert_eq!(leading_zeros(&b), 11);
        assert_eq!(leading_zeros(&[0u8; 32]), 255);
    }
}
