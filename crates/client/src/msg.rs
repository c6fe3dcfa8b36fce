//! Private messages between accounts, with no mail server
//! (`docs/DESIGN-messaging.md`).
//!
//! Every account has a public **profile** record (its inbox's address and
//! the keys a sender needs) and an **inbox**, a public-append record. A
//! message is a signed [`Letter`] sealed with HPKE (RFC 9180: X25519,
//! HKDF-SHA256, ChaCha20-Poly1305) to the recipient's key and appended to
//! their inbox by a one-time key, with a proof of work the inbox's nodes
//! check ([`safe_protocol::inbox`]). Only the recipient can open it, and only
//! the recipient learns who wrote it. Bodies over [`MAX_INLINE`] bytes go as
//! a private self-encrypted file with a fresh secret, referenced from the
//! letter.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use safe_protocol::inbox::{
    DEFAULT_WORK, EPOCH_SECS, FLOOR_ENTRY, INBOX_TAG, InboxAppend, MAX_ENVELOPE, MAX_FULL_BITS,
    MAX_WORK, MIN_WORK, PROFILE_ENTRY, PROFILE_TAG, Profile, WORK_ENTRY, asked_work, find_nonce,
    floor, full_bits, is_full, is_inbox, size_bits,
};
use safe_protocol::mutable::{
    Append, Change, Hash, Limit, RecordError, Signed, SigningKey, Write, record_address,
};
use safe_protocol::name::check_label;
use safe_protocol::{Address, DataKind, Host, SafeUrl, XorName, codec};
use safe_selfenc::Secret;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::account::{Account, AccountError, RootSecret};
use crate::client::{Client, NewRecord};
use crate::files::{GetError, PutError};
use crate::mutable::MutableError;
use crate::names::NameOpError;
use crate::store::RecordStore;

/// Codec format of a signed letter.
pub const LETTER_FORMAT: u8 = 1;
/// Largest body sent inside the letter; larger ones go as a private file.
pub const MAX_INLINE: usize = 3 * 1024;
/// Largest message body.
pub const MAX_MESSAGE: u64 = 64 << 20;
/// The service of a public name that points at its owner's profile.
pub const PROFILE_SERVICE: &str = "profile";
/// Envelopes are padded to a multiple of this many bytes.
pub const PAD_STEP: usize = 1024;
/// A letter whose time is further than this from its append's epoch is
/// dropped as a replay (an old envelope appended again).
pub const REPLAY_WINDOW_SECS: u64 = 2 * 3600;
/// The inbox's floor is raised (to this many hours ago at most) when it
/// lags more than [`FLOOR_LAG_HOURS`] behind: appends older than the floor
/// are invalid everywhere, so an old envelope can never be appended again.
pub const FLOOR_BEHIND_HOURS: u64 = 5;
/// How far the floor may lag before a read raises it.
pub const FLOOR_LAG_HOURS: u64 = 12;
/// Most sender keys one account blocks.
pub const MAX_BLOCKED: usize = 512;
/// Most deleted ids remembered at once (the oldest go first).
pub const MAX_DELETED: usize = 1024;
/// Times a send redoes its work when the inbox's nodes ask for more.
pub const WORK_RETRIES: usize = 2;

const BLOCKED_ENTRY: &[u8] = b"msg blocked";
const DELETED_ENTRY: &[u8] = b"msg deleted";
const LETTER_DOMAIN: &[u8] = b"safe msg letter v1\0";
const SEAL_INFO: &[u8] = b"safe msg v1\0";
/// Encapsulated key (32) and AEAD tag (16) around the padded plaintext.
const SEAL_OVERHEAD: usize = 48;
/// Largest encoded signed letter: what fits the largest envelope.
const MAX_LETTER: usize = MAX_ENVELOPE - SEAL_OVERHEAD - 4;

/// Why a messaging operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MsgError {
    /// The recipient has no messaging profile.
    #[error("{0} has no messaging profile (they must run `safe msg setup` first)")]
    NoProfile(String),
    /// The target is not a profile record.
    #[error("{0} is not a messaging profile")]
    NotAProfile(String),
    /// Not a name or a profile address.
    #[error(
        "{0:?} is neither a public name nor a profile address (safe://m…); try e.g. `safe msg send bob …`"
    )]
    BadRecipient(String),
    /// The recipient's inbox takes no more until they delete messages.
    #[error("{0}'s inbox is full; they must delete messages before it takes more")]
    InboxFull(String),
    /// Too large a message.
    #[error("a message is at most {MAX_MESSAGE} bytes; this one is {0}")]
    TooLarge(u64),
    /// No message with that id.
    #[error("no message {0} in your inbox (see `safe msg list`)")]
    NoSuchMessage(String),
    /// More than one message starts with that id.
    #[error("{0} is the start of more than one message id; give more of it")]
    Ambiguous(String),
    /// The id names an append that is not a readable message.
    #[error("{0} is not a message you can read ({1}); `safe msg delete` removes it")]
    Unreadable(String, String),
    /// The inbox's nodes refused the work as out of date.
    #[error(
        "the inbox's nodes refused the proof of work as made for another hour: check this computer's clock"
    )]
    Clock,
    /// Not a sender key.
    #[error("{0:?} is not a sender key (64 hex digits), a public name or a profile address")]
    BadKey(String),
    /// The network refused or failed a record operation.
    #[error(transparent)]
    Mutable(#[from] MutableError),
    /// The account's keys record failed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A name did not resolve.
    #[error(transparent)]
    Name(#[from] NameOpError),
    /// Storing a large message failed.
    #[error(transparent)]
    Put(#[from] PutError),
    /// Reading a large message failed.
    #[error(transparent)]
    Get(#[from] GetError),
    /// Sealing or randomness failed (a local fault).
    #[error("{0}")]
    Internal(String),
}

/// A message's body: in the letter, or a private file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// The bytes themselves (at most [`MAX_INLINE`]).
    Inline(Vec<u8>),
    /// A private self-encrypted file.
    File {
        /// Its address.
        address: Address,
        /// Its private-mode secret.
        secret: [u8; 32],
        /// Its size in bytes.
        size: u64,
    },
}

/// What the sender signs and seals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letter {
    /// Random: tells copies of one letter apart from other letters.
    pub id: [u8; 16],
    /// The sender's profile record.
    pub from: XorName,
    /// A public name the sender says is theirs.
    pub from_name: Option<String>,
    /// The recipient's profile record.
    pub to: XorName,
    /// The recipient's sealing key.
    pub to_seal: [u8; 32],
    /// The inbox appended to.
    pub inbox: XorName,
    /// When it was written (unix seconds).
    pub time: u64,
    /// The message.
    pub body: Body,
    /// The sender's signing key.
    pub sign: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct SignedLetter {
    letter: Letter,
    signature: Vec<u8>,
}

/// The messaging keys of an account, all derived from its root secret.
pub struct MsgKeys {
    profile_name: Zeroizing<[u8; 32]>,
    profile_owner: SigningKey,
    inbox_owner: SigningKey,
    inbox_name: Zeroizing<[u8; 32]>,
    seal_secret: <X25519HkdfSha256 as Kem>::PrivateKey,
    seal: [u8; 32],
    sign: SigningKey,
}

impl MsgKeys {
    /// The keys of `account`.
    pub fn of(account: &Account) -> Self {
        Self::from_root(account.root())
    }

    /// The keys of the account whose root secret is `root`.
    pub fn from_root(root: &RootSecret) -> Self {
        let (seal_secret, seal_public) =
            X25519HkdfSha256::derive_keypair(&*root.derive("msg seal"));
        let mut seal = [0u8; 32];
        seal.copy_from_slice(&seal_public.to_bytes());
        Self {
            profile_name: root.derive("profile"),
            profile_owner: SigningKey::from_bytes(&root.derive("profile owner")),
            inbox_owner: SigningKey::from_bytes(&root.derive("inbox owner")),
            inbox_name: root.derive("inbox:0"),
            seal_secret,
            seal,
            sign: SigningKey::from_bytes(&root.derive("msg sign")),
        }
    }

    /// The profile record's address.
    pub fn profile_address(&self) -> XorName {
        record_address(&*self.profile_name, PROFILE_TAG)
    }

    /// The first inbox's address.
    pub fn inbox_address(&self) -> XorName {
        record_address(&*self.inbox_name, INBOX_TAG)
    }

    /// The X25519 key letters to this account are sealed to.
    pub fn seal_key(&self) -> [u8; 32] {
        self.seal
    }

    /// The key that signs this account's letters (what others block).
    pub fn sign_key(&self) -> [u8; 32] {
        self.sign.verifying_key().to_bytes()
    }
}

/// What a send did.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The letter's id (hex).
    pub id: String,
    /// The recipient's profile.
    pub to: XorName,
    /// Their inbox.
    pub inbox: XorName,
    /// The message's size in bytes.
    pub size: u64,
    /// Whether it went as a private file.
    pub as_file: bool,
    /// Bits of work the append carried.
    pub work: u8,
}

/// How far a letter's sender is confirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    /// Not looked at yet: listing checks no sender, since fetching a
    /// profile the letter names would tell whoever holds it that this
    /// inbox is being read. Reading a message checks.
    Unchecked,
    /// The sender's profile holds the key that signed the letter (and,
    /// with a name, `safe://profile.NAME` is that profile).
    Verified,
    /// The claim could not be confirmed; why.
    Unverified(String),
}

/// One message in an inbox.
#[derive(Clone, Debug)]
pub struct Message {
    /// The letter's id (32 hex digits).
    pub id: String,
    /// The letter.
    pub letter: Letter,
    /// Whether the sender is who the letter says.
    pub sender: Sender,
    /// The body's size in bytes.
    pub size: u64,
    /// The appends carrying it (copies included).
    pub appends: Vec<Hash>,
}

/// An append that is not a message this account can read.
#[derive(Clone, Debug)]
pub struct Unreadable {
    /// The append's id (hex).
    pub id: String,
    /// Why.
    pub reason: String,
}

/// An inbox as read.
#[derive(Clone, Debug)]
pub struct InboxView {
    /// The inbox's address.
    pub inbox: XorName,
    /// Readable messages, oldest first.
    pub messages: Vec<Message>,
    /// Appends that are not.
    pub unreadable: Vec<Unreadable>,
    /// Messages from blocked senders removed by this read.
    pub removed_blocked: usize,
    /// The inbox's floor (the oldest epoch it takes) as read.
    pub floor: u64,
    /// Clean-ups that failed (the view is complete without them).
    pub warnings: Vec<String>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random<const N: usize>() -> Result<[u8; N], MsgError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| MsgError::Internal(format!("no randomness: {e}")))?;
    Ok(out)
}

fn seal_info(inbox: &XorName, seal: &[u8; 32]) -> Vec<u8> {
    [SEAL_INFO, inbox.as_bytes(), seal].concat()
}

/// What [`seal_letter`] seals: `letter` signed by `sign` and padded, so
/// that the envelope is a whole number of [`PAD_STEP`]s.
pub fn letter_plaintext(
    letter: &Letter,
    sign: &SigningKey,
) -> Result<Zeroizing<Vec<u8>>, MsgError> {
    let body = postcard::to_allocvec(letter).map_err(|e| MsgError::Internal(e.to_string()))?;
    let signature = sign
        .sign(&[LETTER_DOMAIN, &body].concat())
        .to_bytes()
        .to_vec();
    let signed = codec::encode(
        LETTER_FORMAT,
        &SignedLetter {
            letter: letter.clone(),
            signature,
        },
    )
    .map_err(|e| MsgError::Internal(e.to_string()))?;
    if signed.len() > MAX_LETTER {
        return Err(MsgError::Internal(
            "the letter does not fit an envelope".into(),
        ));
    }
    // 4-byte length, the letter, zeros: the envelope a whole number of steps.
    let steps = (signed.len() + 4 + SEAL_OVERHEAD).div_ceil(PAD_STEP);
    let mut plain = Zeroizing::new(vec![0u8; steps * PAD_STEP - SEAL_OVERHEAD]);
    plain[..4].copy_from_slice(&(signed.len() as u32).to_be_bytes());
    plain[4..4 + signed.len()].copy_from_slice(&signed);
    Ok(plain)
}

/// Signs, pads and seals `letter` to its `to_seal` key: the envelope.
pub fn seal_letter(letter: &Letter, sign: &SigningKey) -> Result<Vec<u8>, MsgError> {
    let plain = letter_plaintext(letter, sign)?;
    let recipient = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(&letter.to_seal)
        .map_err(|_| MsgError::Internal("the recipient's sealing key is invalid".into()))?;
    let (enc, sealed) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &recipient,
        &seal_info(&letter.inbox, &letter.to_seal),
        &plain,
        b"",
    )
    .map_err(|e| MsgError::Internal(format!("cannot seal: {e}")))?;
    Ok([enc.to_bytes().as_slice(), &sealed].concat())
}

/// Opens an envelope appended to `inbox` with the keys of its owner, checks
/// the sender's signature and that the letter was written to this profile,
/// key and inbox.
pub fn open_letter(envelope: &[u8], keys: &MsgKeys, inbox: &XorName) -> Result<Letter, String> {
    if envelope.len() < SEAL_OVERHEAD {
        return Err("too short to be sealed".into());
    }
    let (enc, sealed) = envelope.split_at(32);
    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(enc)
        .map_err(|_| "not sealed to a valid key".to_string())?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &keys.seal_secret,
            &enc,
            &seal_info(inbox, &keys.seal),
            sealed,
            b"",
        )
        .map_err(|_| "not sealed to you, or tampered with".to_string())?,
    );
    read_plain(&plain, keys, inbox)
}

/// The second half of [`open_letter`]: the opened plaintext, unpadded,
/// decoded and checked. Never panics, whatever the bytes (a sender
/// chooses them).
pub fn read_plain(plain: &[u8], keys: &MsgKeys, inbox: &XorName) -> Result<Letter, String> {
    let head: [u8; 4] = plain
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or("too short")?;
    let len = u32::from_be_bytes(head) as usize;
    let end = len.checked_add(4).ok_or("bad padding")?;
    let signed = plain.get(4..end).ok_or("bad padding")?;
    if plain[end..].iter().any(|b| *b != 0) {
        return Err("bad padding".into());
    }
    let signed: SignedLetter =
        codec::decode(LETTER_FORMAT, signed, MAX_LETTER).map_err(|_| "malformed letter")?;
    let letter = signed.letter;
    let key = VerifyingKey::from_bytes(&letter.sign).map_err(|_| "bad sender key")?;
    let signature = Signature::from_slice(&signed.signature).map_err(|_| "bad signature")?;
    let body = postcard::to_allocvec(&letter).map_err(|_| "malformed letter")?;
    key.verify_strict(&[LETTER_DOMAIN, &body].concat(), &signature)
        .map_err(|_| "the sender's signature does not verify".to_string())?;
    if letter.to != keys.profile_address() || letter.to_seal != keys.seal || letter.inbox != *inbox
    {
        return Err("written to someone else (forwarded)".into());
    }
    if let Body::Inline(b) = &letter.body
        && b.len() > MAX_INLINE
    {
        return Err("malformed letter".into());
    }
    // A name is shown to the reader: only a valid name, as typed.
    if let Some(name) = &letter.from_name
        && check_label(name).ok().as_deref() != Some(name.as_str())
    {
        return Err("the sender's name is not a valid name".into());
    }
    Ok(letter)
}

/// A `safe://m…` profile address or a public name, as given on the
/// command line: the profile's address, and the name if it was one.
fn parse_recipient(to: &str) -> Result<(Option<XorName>, Option<String>), MsgError> {
    let url = if to.contains("://") {
        to.to_string()
    } else {
        format!("safe://{to}")
    };
    match url.parse::<SafeUrl>() {
        Ok(u) if !u.path.is_empty() || u.version.is_some() => {
            Err(MsgError::BadRecipient(to.into()))
        }
        Ok(SafeUrl {
            host: Host::Address(a),
            ..
        }) if a.kind == DataKind::Mutable => Ok((Some(a.name), None)),
        Ok(SafeUrl {
            host: Host::Name { name, .. },
            ..
        }) => Ok((None, Some(name))),
        _ => Err(MsgError::BadRecipient(to.into())),
    }
}

fn hex_id(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

impl Client {
    /// Makes sure `account` has its inbox and profile (creating what is
    /// missing) and, with `work`, sets the difficulty its inbox asks.
    /// Returns the profile's address and the profile.
    pub async fn msg_setup(
        &self,
        account: &Account,
        work: Option<u8>,
    ) -> Result<(XorName, Profile), MsgError> {
        let keys = MsgKeys::of(account);
        if let Some(w) = work
            && !(MIN_WORK..=MAX_WORK).contains(&w)
        {
            return Err(MsgError::Internal(format!(
                "the difficulty must be between {MIN_WORK} and {MAX_WORK} bits"
            )));
        }
        let profile_address = keys.profile_address();
        let current = match self.get_record(profile_address).await {
            Ok(r) => Profile::of(&r),
            Err(MutableError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let inbox = current.as_ref().map_or(keys.inbox_address(), |p| p.inbox);
        // The inbox.
        let new = NewRecord {
            name: keys.inbox_name.to_vec(),
            tag: INBOX_TAG,
            owners: Vec::new(),
            threshold: 1,
            public_append: true,
        };
        if inbox == new.address() {
            ignore_existing(self.create_record(new, &keys.inbox_owner).await)?;
        }
        let asked = match work {
            Some(w) => {
                let record = self
                    .update_with(inbox, std::slice::from_ref(&keys.inbox_owner), |_| {
                        Ok(Change::Set {
                            key: WORK_ENTRY.to_vec(),
                            value: vec![w],
                        })
                    })
                    .await?;
                safe_protocol::inbox::asked_work(&record)
            }
            None => current.as_ref().map_or(DEFAULT_WORK, |p| p.work),
        };
        let mut profile = Profile {
            inbox,
            seal: keys.seal,
            sign: keys.sign_key(),
            work: asked,
            proof: Vec::new(),
        };
        profile.sign_with(&profile_address, &keys.sign);
        if current.as_ref() == Some(&profile) {
            return Ok((profile_address, profile));
        }
        let new = NewRecord {
            name: keys.profile_name.to_vec(),
            tag: PROFILE_TAG,
            owners: Vec::new(),
            threshold: 1,
            public_append: false,
        };
        ignore_existing(self.create_record(new, &keys.profile_owner).await)?;
        let value = profile
            .encode()
            .map_err(|e| MsgError::Internal(e.to_string()))?;
        self.update_with(
            profile_address,
            std::slice::from_ref(&keys.profile_owner),
            |_| {
                Ok(Change::Set {
                    key: PROFILE_ENTRY.to_vec(),
                    value: value.clone(),
                })
            },
        )
        .await?;
        Ok((profile_address, profile))
    }

    /// The account's own profile, read; made (with its inbox) only if it is
    /// missing or out of date, so sending and reading write nothing to the
    /// account's own records in the usual case.
    async fn own_profile(&self, account: &Account) -> Result<(XorName, Profile), MsgError> {
        let keys = MsgKeys::of(account);
        let address = keys.profile_address();
        if let Ok(r) = self.get_record(address).await
            && let Some(p) = Profile::of(&r)
            && p.sign == keys.sign_key()
            && p.seal == keys.seal
        {
            return Ok((address, p));
        }
        self.msg_setup(account, None).await
    }

    /// The profile `to` names (a public name, whose `profile` service
    /// points at it, or a `safe://m…` profile address): its address and
    /// the profile.
    pub async fn msg_profile(&self, to: &str) -> Result<(XorName, Profile), MsgError> {
        let (address, name) = parse_recipient(to)?;
        let address = match (address, name) {
            (Some(a), _) => a,
            (None, Some(name)) => {
                let url = SafeUrl {
                    host: Host::Name {
                        service: PROFILE_SERVICE.into(),
                        name: name.clone(),
                    },
                    path: Vec::new(),
                    version: None,
                };
                match self.resolve(&url).await {
                    Ok((a, _)) if a.kind == DataKind::Mutable => a.name,
                    Ok(_) => return Err(MsgError::NotAProfile(to.into())),
                    Err(NameOpError::NoService { .. }) => {
                        return Err(MsgError::NoProfile(name));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            (None, None) => return Err(MsgError::BadRecipient(to.into())),
        };
        let record = match self.get_record(address).await {
            Ok(r) => r,
            Err(MutableError::NotFound(_)) => return Err(MsgError::NoProfile(to.into())),
            Err(e) => return Err(e.into()),
        };
        let profile = Profile::of(&record).ok_or_else(|| MsgError::NotAProfile(to.into()))?;
        Ok((address, profile))
    }

    /// Points the public name `name` (which the account's keys own) at the
    /// account's profile, as its `profile` service.
    pub async fn msg_link_name(
        &self,
        account: &Account,
        name: &str,
        owner: &SigningKey,
    ) -> Result<(), MsgError> {
        let keys = MsgKeys::of(account);
        let target = Address::new(DataKind::Mutable, keys.profile_address());
        let time = i64::try_from(now()).unwrap_or(i64::MAX);
        self.set_service(
            name,
            PROFILE_SERVICE,
            Some(target),
            std::slice::from_ref(owner),
            time,
        )
        .await?;
        Ok(())
    }

    /// Seals `body` to `to` (a public name or profile address) and appends
    /// it to their inbox, signed as `account` (`from_name`: a public name
    /// shown as the sender's if its `profile` service is this account's).
    pub async fn msg_send(
        &self,
        account: &Account,
        to: &str,
        body: Vec<u8>,
        from_name: Option<String>,
    ) -> Result<Sent, MsgError> {
        let size = body.len() as u64;
        if size > MAX_MESSAGE {
            return Err(MsgError::TooLarge(size));
        }
        let keys = MsgKeys::of(account);
        let (from, _) = self.own_profile(account).await?;
        let (to_profile, profile) = self.msg_profile(to).await?;
        // The inbox itself: it must be one (a profile could name any
        // record), and it says what work it asks and whether it has room,
        // before anything is stored.
        let inbox = match self.get_record(profile.inbox).await {
            Ok(r) if is_inbox(&r) => r,
            Ok(_) => return Err(MsgError::NotAProfile(to.into())),
            Err(MutableError::NotFound(_)) => return Err(MsgError::NoProfile(to.into())),
            Err(e) => return Err(e.into()),
        };
        let claim = asked_work(&inbox);
        let as_file = body.len() > MAX_INLINE;
        if is_full(
            &inbox,
            if as_file {
                PAD_STEP
            } else {
                body.len() + PAD_STEP
            },
        ) {
            return Err(MsgError::InboxFull(to.into()));
        }
        let body = if as_file {
            let secret = random::<32>()?;
            let report = self
                .put_bytes_with(body, Some(&Secret::from_bytes(secret)))
                .await?;
            Body::File {
                address: report.address,
                secret,
                size,
            }
        } else {
            Body::Inline(body)
        };
        let letter = Letter {
            id: random::<16>()?,
            from,
            from_name,
            to: to_profile,
            to_seal: profile.seal,
            inbox: profile.inbox,
            time: now(),
            body,
            sign: keys.sign_key(),
        };
        let envelope = seal_letter(&letter, &keys.sign)?;
        let value = InboxAppend {
            epoch: now() / EPOCH_SECS,
            work: claim,
            envelope,
        };
        let base = value.work + size_bits(value.envelope.len());
        let mut need = base + full_bits(&inbox);
        // The most an honest member asks: the difficulty, the size and a
        // full inbox. A member asking more is refused, not obeyed.
        let most = base + MAX_FULL_BITS;
        let value = value
            .encode()
            .map_err(|e| MsgError::Internal(e.to_string()))?;
        let mut attempt = 0;
        loop {
            let append = worked_append(profile.inbox, value.clone(), need).await?;
            match RecordStore::write_record(self, &Write::Append(append)).await {
                Ok(()) | Err(MutableError::AlreadyApplied { .. }) => break,
                Err(MutableError::Refused(RecordError::NotEnoughWork { need: more }))
                    if attempt < WORK_RETRIES && more > need && more <= most =>
                {
                    attempt += 1;
                    need = more;
                }
                Err(MutableError::Refused(RecordError::StaleWork)) => return Err(MsgError::Clock),
                Err(MutableError::Refused(RecordError::TooLarge(Limit::Appends))) => {
                    return Err(MsgError::InboxFull(to.into()));
                }
                Err(MutableError::NotFound(_) | MutableError::Refused(RecordError::NotFound)) => {
                    return Err(MsgError::NoProfile(to.into()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Sent {
            id: hex_id(&letter.id),
            to: to_profile,
            inbox: profile.inbox,
            size,
            as_file,
            work: need,
        })
    }

    /// Reads `account`'s inbox: every message it can open, oldest first,
    /// and what it cannot. Messages from blocked senders, and copies of
    /// deleted ones appended again, are removed from the inbox.
    pub async fn msg_list(&self, account: &Account) -> Result<InboxView, MsgError> {
        let keys = MsgKeys::of(account);
        let (_, profile) = self.own_profile(account).await?;
        let inbox = profile.inbox;
        let record = self.get_record(inbox).await?;
        let blocked = self.sealed_list(account, BLOCKED_ENTRY).await?;
        let deleted: Vec<String> = self
            .sealed_list(account, DELETED_ENTRY)
            .await?
            .into_iter()
            .filter_map(|e| e.split_once(':').map(|(id, _)| id.to_string()))
            .collect();
        let mut view = InboxView {
            inbox,
            messages: Vec::new(),
            unreadable: Vec::new(),
            removed_blocked: 0,
            floor: floor(&record.state),
            warnings: Vec::new(),
        };
        let mut by_id: BTreeMap<String, Message> = BTreeMap::new();
        let mut remove = Vec::new();
        let mut blocked_letters = std::collections::BTreeSet::new();
        for a in &record.appends {
            let id = a.id();
            let letter = InboxAppend::decode(&a.body.value)
                .map_err(|_| "malformed append".to_string())
                .and_then(|v| {
                    let letter = open_letter(&v.envelope, &keys, &inbox)?;
                    if letter.time.abs_diff(v.epoch.saturating_mul(EPOCH_SECS)) > REPLAY_WINDOW_SECS
                    {
                        return Err("an old letter appended again (replay)".into());
                    }
                    Ok(letter)
                });
            let letter = match letter {
                Ok(l) => l,
                Err(reason) => {
                    view.unreadable.push(Unreadable {
                        id: hex_id(&id),
                        reason,
                    });
                    continue;
                }
            };
            let letter_id = hex_id(&letter.id);
            if blocked.contains(&hex::encode(letter.sign)) || deleted.contains(&letter_id) {
                if blocked.contains(&hex::encode(letter.sign)) {
                    blocked_letters.insert(letter_id);
                }
                remove.push(id);
                continue;
            }
            match by_id.get_mut(&letter_id) {
                // A copy of a letter already seen (same id, same contents).
                Some(m) if m.letter == letter => m.appends.push(id),
                Some(_) => view.unreadable.push(Unreadable {
                    id: hex_id(&id),
                    reason: "reuses another letter's id".into(),
                }),
                None => {
                    let size = match &letter.body {
                        Body::Inline(b) => b.len() as u64,
                        Body::File { size, .. } => *size,
                    };
                    by_id.insert(
                        letter_id.clone(),
                        Message {
                            id: letter_id,
                            letter,
                            sender: Sender::Unchecked,
                            size,
                            appends: vec![id],
                        },
                    );
                }
            }
        }
        // The clean-ups below are best effort: the inbox as read is the
        // answer whether or not they are written (a full tombstone list,
        // another device writing at once), and a failure is reported.
        view.removed_blocked = blocked_letters.len();
        if !remove.is_empty()
            && let Err(e) = self
                .update_record(
                    inbox,
                    Change::RemoveAppends { ids: remove },
                    std::slice::from_ref(&keys.inbox_owner),
                )
                .await
        {
            view.removed_blocked = 0;
            view.warnings.push(format!(
                "could not delete messages from blocked senders or deleted messages sent again: {e}"
            ));
        }
        // Raise the floor when it lags: never above a kept letter's epoch,
        // so no unread or kept letter is lost.
        let oldest_kept = record
            .appends
            .iter()
            .filter(|a| by_id.values().any(|m| m.appends.contains(&a.id())))
            .filter_map(|a| InboxAppend::decode(&a.body.value).ok())
            .map(|v| v.epoch)
            .min();
        let target = (now() / EPOCH_SECS)
            .saturating_sub(FLOOR_BEHIND_HOURS)
            .min(oldest_kept.unwrap_or(u64::MAX));
        if target > view.floor.saturating_add(FLOOR_LAG_HOURS)
            && let Err(e) = self
                .update_record(
                    inbox,
                    Change::Set {
                        key: FLOOR_ENTRY.to_vec(),
                        value: target.to_be_bytes().to_vec(),
                    },
                    std::slice::from_ref(&keys.inbox_owner),
                )
                .await
        {
            view.warnings.push(format!(
                "could not raise the inbox's floor (is this computer's clock right?): {e}"
            ));
        }
        view.messages = by_id.into_values().collect();
        view.messages.sort_by_key(|m| (m.letter.time, m.id.clone()));
        Ok(view)
    }

    /// The message whose id starts with `id`, and its body.
    pub async fn msg_read(
        &self,
        account: &Account,
        id: &str,
    ) -> Result<(Message, Vec<u8>), MsgError> {
        let view = self.msg_list(account).await?;
        let mut message = find_message(&view, id)?.clone();
        message.sender = self.msg_check_sender(&message.letter).await;
        let body = match &message.letter.body {
            Body::Inline(b) => b.clone(),
            Body::File {
                address,
                secret,
                size,
            } => {
                // The size is the sender's claim: refused before any chunk
                // but the root is fetched if the file is larger.
                let max = (*size).min(MAX_MESSAGE);
                let bytes = self
                    .get_bytes_in(address, max, Some(&Secret::from_bytes(*secret)))
                    .await?;
                if bytes.len() as u64 != *size {
                    return Err(MsgError::Internal(format!(
                        "the message's file holds {} bytes, not the {size} its letter says",
                        bytes.len()
                    )));
                }
                bytes
            }
        };
        Ok((message, body))
    }

    /// Whether the letter's sender is who it says: the profile it names
    /// holds (and its signing key vouches for) the key that signed it, and
    /// a name it gives points at that profile.
    pub async fn msg_check_sender(&self, letter: &Letter) -> Sender {
        let profile = match self.get_record(letter.from).await {
            Ok(r) => Profile::of(&r),
            Err(_) => None,
        };
        match profile {
            None => Sender::Unverified("the sender's profile cannot be read".into()),
            Some(p) if p.sign != letter.sign => {
                Sender::Unverified("the sender's profile holds another key".into())
            }
            Some(_) => match &letter.from_name {
                None => Sender::Verified,
                Some(name) => match self.msg_profile(name).await {
                    Ok((a, _)) if a == letter.from => Sender::Verified,
                    _ => Sender::Unverified(format!(
                        "the name {name:?} does not point at the sender's profile"
                    )),
                },
            },
        }
    }

    /// Deletes the message (or unreadable append) whose id starts with
    /// `id`; returns its full id.
    pub async fn msg_delete(&self, account: &Account, id: &str) -> Result<String, MsgError> {
        let keys = MsgKeys::of(account);
        let view = self.msg_list(account).await?;
        let (full, appends, letter) = match find(&view, id)? {
            Found::Message(m) => (m.id.clone(), m.appends.clone(), Some(m.letter.time)),
            Found::Unreadable(u) => {
                let mut append = [0u8; 32];
                hex::decode_to_slice(&u.id, &mut append)
                    .map_err(|e| MsgError::Internal(e.to_string()))?;
                (u.id.clone(), vec![append], None)
            }
        };
        if let Some(time) = letter {
            // Remembered first, so a copy appended meanwhile is removed by
            // the next read; forgotten once the floor has passed it (no
            // copy of it can be appended any more).
            let forget_before = view
                .floor
                .saturating_mul(EPOCH_SECS)
                .saturating_sub(REPLAY_WINDOW_SECS);
            self.update_list(account, DELETED_ENTRY, |items| {
                items.retain(|e| {
                    e.split_once(':')
                        .and_then(|(_, t)| t.parse::<u64>().ok())
                        .is_some_and(|t| t >= forget_before)
                });
                items.push(format!("{full}:{time}"));
                while items.len() > MAX_DELETED {
                    items.remove(0);
                }
                true
            })
            .await?;
        }
        self.update_record(
            view.inbox,
            Change::RemoveAppends { ids: appends },
            std::slice::from_ref(&keys.inbox_owner),
        )
        .await?;
        Ok(full)
    }

    /// Deletes every append of the inbox that is not a message this
    /// account can read; returns how many.
    pub async fn msg_delete_unreadable(&self, account: &Account) -> Result<usize, MsgError> {
        let keys = MsgKeys::of(account);
        let view = self.msg_list(account).await?;
        let mut ids = Vec::with_capacity(view.unreadable.len());
        for u in &view.unreadable {
            let mut id = [0u8; 32];
            hex::decode_to_slice(&u.id, &mut id).map_err(|e| MsgError::Internal(e.to_string()))?;
            ids.push(id);
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let n = ids.len();
        self.update_record(
            view.inbox,
            Change::RemoveAppends { ids },
            std::slice::from_ref(&keys.inbox_owner),
        )
        .await?;
        Ok(n)
    }

    /// Blocks (or with `unblock`, unblocks) a sender: `who` is their key
    /// (64 hex digits), the id of a message they signed (or its start), a
    /// public name or a profile address. Returns the key.
    pub async fn msg_block(
        &self,
        account: &Account,
        who: &str,
        unblock: bool,
    ) -> Result<String, MsgError> {
        let key = match hex::decode(who) {
            Ok(k) if k.len() == 32 => hex::encode(k),
            _ => {
                // The start of a message's id: the key that signed it (not
                // the profile it names, which a spoofer chooses).
                let hexish = !who.is_empty() && who.chars().all(|c| c.is_ascii_hexdigit());
                let signer = match hexish {
                    true => {
                        let view = self.msg_list(account).await?;
                        match find(&view, who) {
                            Ok(Found::Message(m)) => Some(hex::encode(m.letter.sign)),
                            _ => None,
                        }
                    }
                    false => None,
                };
                match signer {
                    Some(k) => k,
                    None => match self.msg_profile(who).await {
                        Ok((_, p)) => hex::encode(p.sign),
                        Err(MsgError::BadRecipient(_)) => {
                            return Err(MsgError::BadKey(who.into()));
                        }
                        Err(e) => return Err(e),
                    },
                }
            }
        };
        self.set_blocked(account, &key, !unblock).await?;
        Ok(key)
    }

    /// Adds sender key `item` at the end of the account's blocked list (the
    /// oldest dropped past [`MAX_BLOCKED`]), or with `!blocked` takes it out.
    async fn set_blocked(
        &self,
        account: &Account,
        item: &str,
        blocked: bool,
    ) -> Result<(), MsgError> {
        let remove = !blocked;
        self.update_list(account, BLOCKED_ENTRY, |items| {
            let present = items.iter().any(|k| k == item);
            if remove {
                items.retain(|k| k != item);
                present
            } else if present {
                false
            } else {
                items.push(item.to_string());
                while items.len() > MAX_BLOCKED {
                    items.remove(0);
                }
                true
            }
        })
        .await?;
        Ok(())
    }
}

/// What an id (or its start) names in an inbox.
enum Found<'a> {
    Message(&'a Message),
    Unreadable(&'a Unreadable),
}

/// The one message or unreadable append whose id starts with `id` (any
/// case); more than one across both is ambiguous.
fn find<'a>(view: &'a InboxView, id: &str) -> Result<Found<'a>, MsgError> {
    let id = id.trim().to_ascii_lowercase();
    if id.is_empty() {
        return Err(MsgError::NoSuchMessage(id));
    }
    let mut found: Vec<Found> = view
        .messages
        .iter()
        .filter(|m| m.id.starts_with(&id))
        .map(Found::Message)
        .collect();
    found.extend(
        view.unreadable
            .iter()
            .filter(|u| u.id.starts_with(&id))
            .map(Found::Unreadable),
    );
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(MsgError::NoSuchMessage(id)),
        _ => Err(MsgError::Ambiguous(id)),
    }
}

/// The one message whose id starts with `id`.
fn find_message<'a>(view: &'a InboxView, id: &str) -> Result<&'a Message, MsgError> {
    match find(view, id)? {
        Found::Message(m) => Ok(m),
        Found::Unreadable(u) => Err(MsgError::Unreadable(u.id.clone(), u.reason.clone())),
    }
}

/// A create that exists already (made before by this account's key) is
/// fine.
fn ignore_existing(result: Result<XorName, MutableError>) -> Result<(), MsgError> {
    match result {
        Ok(_) | Err(MutableError::AlreadyCreated { by_you: true, .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// An append of `value` to `inbox` by a fresh one-time key, its nonce
/// ground until it carries `need` bits of work (on a blocking thread).
async fn worked_append(
    inbox: XorName,
    value: Vec<u8>,
    need: u8,
) -> Result<Signed<Append>, MsgError> {
    let start = u64::from_be_bytes(random::<8>()?);
    let one_time = SigningKey::from_bytes(&random::<32>()?);
    tokio::task::spawn_blocking(move || {
        let nonce = find_nonce(&inbox, &value, start, need);
        let mut append = Signed::new(Append {
            address: inbox,
            value,
            nonce,
        });
        append.sign(&one_time);
        append
    })
    .await
    .map_err(|e| MsgError::Internal(format!("the work failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8) -> MsgKeys {
        MsgKeys::from_root(&RootSecret::from_bytes_for_tests([seed; 32]))
    }

    fn letter_for(keys: &MsgKeys, body: &[u8]) -> Letter {
        Letter {
            id: [7; 16],
            from: XorName::from_content(b"sender profile"),
            from_name: None,
            to: keys.profile_address(),
            to_seal: keys.seal,
            inbox: keys.inbox_address(),
            time: 1,
            body: Body::Inline(body.to_vec()),
            sign: [0; 32],
        }
    }

    #[test]
    fn a_letter_opens_for_its_recipient_only_and_unchanged() {
        let (bob, carol) = (keys(2), keys(3));
        let alice = SigningKey::from_bytes(&[1; 32]);
        let mut letter = letter_for(&bob, b"hello bob");
        letter.sign = alice.verifying_key().to_bytes();
        let envelope = seal_letter(&letter, &alice).unwrap();
        assert!(envelope.len().is_multiple_of(PAD_STEP));
        assert_eq!(
            open_letter(&envelope, &bob, &bob.inbox_address()).unwrap(),
            letter
        );
        // Carol, even appending it to her own inbox, cannot open it.
        assert!(open_letter(&envelope, &carol, &carol.inbox_address()).is_err());
        assert!(open_letter(&envelope, &carol, &bob.inbox_address()).is_err());
        // Any flipped bit is refused.
        for at in [0, 31, 32, 100, envelope.len() - 1] {
            let mut bad = envelope.clone();
            bad[at] ^= 1;
            assert!(open_letter(&bad, &bob, &bob.inbox_address()).is_err());
        }
    }

    #[test]
    fn a_forged_or_forwarded_letter_is_refused() {
        let (bob, carol) = (keys(2), keys(3));
        let alice = SigningKey::from_bytes(&[1; 32]);
        // Signed by someone other than the key it names.
        let mut letter = letter_for(&bob, b"from alice, honest");
        letter.sign = alice.verifying_key().to_bytes();
        let mallory = SigningKey::from_bytes(&[9; 32]);
        let forged = seal_letter(&letter, &mallory).unwrap();
        let err = open_letter(&forged, &bob, &bob.inbox_address()).unwrap_err();
        assert!(err.contains("signature"), "{err}");
        // Bob re-seals alice's letter (still naming him) to carol.
        let mut forwarded = letter.clone();
        forwarded.to_seal = carol.seal;
        forwarded.inbox = carol.inbox_address();
        let sealed = seal_letter(&forwarded, &alice).unwrap();
        let err = open_letter(&sealed, &carol, &carol.inbox_address()).unwrap_err();
        assert!(err.contains("someone else"), "{err}");
    }

    #[test]
    fn any_plaintext_is_refused_or_read_never_a_panic() {
        let bob = keys(2);
        let inbox = bob.inbox_address();
        for plain in [
            &[][..],
            &[0][..],
            &[0, 0, 0][..],
            &[0xff, 0xff, 0xff, 0xff][..],
            &[0, 0, 0, 9, 1, 2][..],
            &[0, 0, 0, 0, 0, 0, 1][..],
        ] {
            assert!(read_plain(plain, &bob, &inbox).is_err(), "{plain:?}");
        }
        // A sender's name that is not a plain name (terminal escapes).
        let alice = SigningKey::from_bytes(&[1; 32]);
        let mut letter = letter_for(&bob, b"hi");
        letter.sign = alice.verifying_key().to_bytes();
        letter.from_name = Some("alice\u{1b}[2K, verified".into());
        let sealed = seal_letter(&letter, &alice).unwrap();
        let err = open_letter(&sealed, &bob, &inbox).unwrap_err();
        assert!(err.contains("name"), "{err}");
        letter.from_name = Some("alice".into());
        let sealed = seal_letter(&letter, &alice).unwrap();
        assert!(open_letter(&sealed, &bob, &inbox).is_ok());
    }

    #[test]
    fn envelopes_show_only_the_size_step() {
        let bob = keys(2);
        let alice = SigningKey::from_bytes(&[1; 32]);
        let sizes: Vec<usize> = [0usize, 10, 200, 500]
            .iter()
            .map(|n| {
                let mut l = letter_for(&bob, &vec![b'x'; *n]);
                l.sign = alice.verifying_key().to_bytes();
                seal_letter(&l, &alice).unwrap().len()
            })
            .collect();
        assert!(sizes.iter().all(|s| *s == PAD_STEP), "{sizes:?}");
        let mut big = letter_for(&bob, &vec![b'x'; MAX_INLINE]);
        big.sign = alice.verifying_key().to_bytes();
        let len = seal_letter(&big, &alice).unwrap().len();
        assert!(len <= MAX_ENVELOPE && len.is_multiple_of(PAD_STEP), "{len}");
    }

    #[test]
    fn recipients_parse() {
        assert!(matches!(parse_recipient("bob"), Ok((None, Some(n))) if n == "bob"));
        assert!(matches!(parse_recipient("safe://bob"), Ok((None, Some(_)))));
        assert!(parse_recipient("safe://bob/path").is_err());
        assert!(parse_recipient("not a name!").is_err());
        let m = Address::new(DataKind::Mutable, XorName::from_content(b"p")).to_string();
        assert!(matches!(parse_recipient(&m), Ok((Some(_), None))));
    }
}
