//! Mutable data: owned, signed, versioned records.
//!
//! A record lives at an address its creator claims: the hash of a name it
//! picks and a numeric type tag ([`record_address`]), so two apps can use the
//! same name with different tags. Anyone may read it; only its owners may
//! change it.
//!
//! - **Owners** are ed25519 public keys with a threshold M: an owner
//!   operation is valid when signed by at least M current owners.
//! - **State** ([`State`]): the version, owners, threshold, whether anyone
//!   may append, bounded entries (key → value) and the ids of appends the
//!   owners removed.
//! - **Operations** ([`Op`]) name the version they replace, the hash of the
//!   state they replace and the hash of the state they produce, and are
//!   signed over their exact encoded bytes. Changing owners and threshold is
//!   an operation like any other: that is ownership transfer.
//! - **Appends** ([`Append`]) carry no version: appends by different people
//!   commute, so concurrent appends never lose one. When the record is
//!   public-append anyone may append (signing with any key); otherwise an
//!   append needs the owners' threshold. Owners remove appends with an
//!   operation, which leaves a tombstone so no replica brings them back.
//!
//! A [`Record`] carries its own proof: the signed create (the *genesis*),
//! every ownership change since, and the last operation, whose signed
//! `result` is the hash of the current state. [`Record::verify`] checks the
//! whole chain, so a reader needs to trust no node. Each state also carries
//! the hashes of the states before it, signed with it, so copies can be
//! proven to lie on one line of descent. Which of several valid records
//! for one address wins is decided by [`resolve`]: the genesis held by
//! most, then the line of descent most copies support.
//!
//! Every rule is a plain function of the values involved: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};

/// The signing key type owners use (re-exported so callers need no
/// direct ed25519 dependency).
mod apply;
pub use apply::apply_write;
pub use ed25519_dalek::SigningKey;
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::xorname::XorName;

/// Format version of encoded records and writes.
pub const RECORD_FORMAT: u8 = 1;
/// Largest encoded [`Record`]: its owned part and its appends together.
pub const MAX_RECORD_SIZE: usize = 960 * 1024;
/// Largest encoded owned part of a record: genesis, ownership history, last
/// operation and state (everything but the appends).
pub const MAX_OWNED_SIZE: usize = 512 * 1024;
/// Largest encoded [`Write`].
pub const MAX_WRITE_SIZE: usize = 128 * 1024;
/// Longest record name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest entry key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Longest entry value or appended value, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Most entries in one record.
pub const MAX_ENTRIES: usize = 1024;
/// Most owners of one record (and most signatures on one write).
pub const MAX_OWNERS: usize = 16;
/// A node accepts an append only while the record holds fewer appends.
pub const MAX_APPENDS: usize = 1024;
/// A node accepts an append only while the record's encoded appends stay
/// within this many bytes.
pub const MAX_APPEND_BYTES: usize = 192 * 1024;
/// Appends accepted at once by different replicas can pass the accept
/// limits when the copies are united; a record keeps at most twice them
/// (lowest ids first), so only an inbox flooded past full can lose one.
pub const HELD_APPENDS: usize = 2 * MAX_APPENDS;
/// See [`HELD_APPENDS`].
pub const HELD_APPEND_BYTES: usize = 2 * MAX_APPEND_BYTES;
/// Most tombstones of removed appends in one record.
pub const MAX_REMOVED: usize = 4096;
/// States a record's state remembers the hashes of ([`State::ancestry`]):
/// how far apart two copies can be and still be proven one the other's
/// past.
pub const ANCESTRY: usize = 64;
/// Most ownership changes in one record's history.
pub const MAX_OWNER_CHANGES: usize = 256;

/// An ed25519 public key, as its 32 bytes.
pub type PublicKey = [u8; 32];

/// A 32-byte BLAKE3 hash.
pub type Hash = [u8; 32];

/// The address of the record called `name` under type tag `tag`.
pub fn record_address(name: &[u8], tag: u64) -> XorName {
    let mut h = blake3::Hasher::new_derive_key("safe record address v1");
    h.update(&tag.to_be_bytes());
    h.update(name);
    XorName(*h.finalize().as_bytes())
}

/// Which limit a write or record broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Limit {
    /// [`MAX_NAME_LEN`].
    Name,
    /// [`MAX_KEY_LEN`].
    Key,
    /// [`MAX_VALUE_LEN`].
    Value,
    /// [`MAX_ENTRIES`].
    Entries,
    /// [`MAX_OWNERS`].
    Owners,
    /// [`MAX_APPENDS`].
    Appends,
    /// [`MAX_REMOVED`].
    Removed,
    /// [`MAX_OWNER_CHANGES`].
    OwnerChanges,
    /// [`MAX_RECORD_SIZE`].
    RecordSize,
    /// [`MAX_WRITE_SIZE`].
    WriteSize,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Limit::Name => format!("names are at most {MAX_NAME_LEN} bytes"),
            Limit::Key => format!("keys are at most {MAX_KEY_LEN} bytes"),
            Limit::Value => format!("values are at most {MAX_VALUE_LEN} bytes"),
            Limit::Entries => format!("a record holds at most {MAX_ENTRIES} entries"),
            Limit::Owners => format!("a record has at most {MAX_OWNERS} owners"),
            Limit::Appends => format!(
                "a record accepts at most {MAX_APPENDS} appends or {MAX_APPEND_BYTES} bytes of them"
            ),
            Limit::Removed => format!("a record keeps at most {MAX_REMOVED} removed appends"),
            Limit::OwnerChanges => {
                format!("a record allows at most {MAX_OWNER_CHANGES} ownership changes")
            }
            Limit::RecordSize => {
                format!("a record's entries, owners and history are at most {MAX_OWNED_SIZE} bytes")
            }
            Limit::WriteSize => format!("an operation is at most {MAX_WRITE_SIZE} bytes"),
        };
        f.write_str(&s)
    }
}

/// Why a write or a record is invalid. Nodes send these back to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A create for an address that already holds a record.
    #[error("a record already exists at this address")]
    AlreadyExists,
    /// An update or append to an address with no record.
    #[error("no record at this address")]
    NotFound,
    /// The write names another address than it was sent to.
    #[error("the operation is for a different address")]
    WrongAddress,
    /// A signature does not verify.
    #[error("a signature is invalid (forged, or over different bytes)")]
    BadSignature,
    /// No signature is by a current owner.
    #[error("not signed by an owner of the record")]
    NotOwner,
    /// Fewer owners signed than the threshold needs.
    #[error("signed by {have} owner(s), but the record needs {need}")]
    NotEnoughSigners {
        /// Distinct current owners that signed.
        have: u8,
        /// The threshold.
        need: u8,
    },
    /// The operation replaces a version that is not the current one: the
    /// record changed since it was prepared, or it is a replay.
    #[error(
        "the operation replaces version {given} but the record is at version {current} (stale or replayed)"
    )]
    WrongVersion {
        /// The record's version.
        current: u64,
        /// The version the operation replaces.
        given: u64,
    },
    /// Right version number, different state: prepared against a copy that
    /// lost a race.
    #[error("the operation was prepared against a different state of this version")]
    Conflict,
    /// The operation's stated result is not what applying it gives.
    #[error("the operation's result does not match the record")]
    ResultMismatch,
    /// Appends are for owners only on this record.
    #[error("only owners may append to this record")]
    AppendNotAllowed,
    /// The owners removed this append.
    #[error("this append was removed by the owners")]
    AppendRemoved,
    /// Owners list empty, unsorted or repeated, or threshold out of range.
    #[error(
        "owners must be 1 to {MAX_OWNERS} distinct keys and the threshold between 1 and their number"
    )]
    BadOwners,
    /// A size or count limit.
    #[error("over a limit: {0}")]
    TooLarge(Limit),
    /// Bytes that do not decode as a record or write.
    #[error("malformed record or operation")]
    Malformed,
    /// The record's proof chain does not hold together.
    #[error("the record's history does not verify")]
    BrokenChain,
}

/// One signature: who signed and the 64 signature bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sig {
    /// The signer's public key.
    pub key: PublicKey,
    /// ed25519 signature over the body's signing bytes.
    pub sig: Vec<u8>,
}

/// A body and its signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// What is signed.
    pub body: T,
    /// At most [`MAX_OWNERS`] signatures, one per key.
    pub sigs: Vec<Sig>,
}

/// Bodies that can be signed, each under its own domain.
pub trait Signable: Serialize {
    /// Prefix of the signed bytes, so a signature over one kind of body is
    /// never valid for another.
    const DOMAIN: &'static [u8];
}

impl<T: Signable> Signed<T> {
    /// An unsigned body.
    pub fn new(body: T) -> Self {
        Self {
            body,
            sigs: Vec::new(),
        }
    }

    /// The exact bytes a signature covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = T::DOMAIN.to_vec();
        // Our bodies always encode (no maps with non-string keys problem in
        // postcard, no floats); an empty body would never verify.
        if let Ok(body) = postcard::to_allocvec(&self.body) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// Adds (or replaces) `key`'s signature.
    pub fn sign(&mut self, key: &SigningKey) {
        let public = key.verifying_key().to_bytes();
        let sig = key.sign(&self.signing_bytes()).to_bytes().to_vec();
        self.sigs.retain(|s| s.key != public);
        self.sigs.push(Sig { key: public, sig });
        self.sigs.sort_by_key(|s| s.key);
    }

    /// Checks every signature and that at least `threshold` of them are by
    /// distinct members of `owners`.
    pub fn check(&self, owners: &[PublicKey], threshold: u8) -> Result<(), RecordError> {
        if self.sigs.len() > MAX_OWNERS {
            return Err(RecordError::TooLarge(Limit::Owners));
        }
        // One canonical form: sorted by key, one signature per key, so two
        // copies of one write cannot differ in their signature lists' order.
        if !self.sigs.windows(2).all(|w| w[0].key < w[1].key) {
            return Err(RecordError::Malformed);
        }
        let msg = self.signing_bytes();
        let mut signers = BTreeSet::new();
        for s in &self.sigs {
            let key = VerifyingKey::from_bytes(&s.key).map_err(|_| RecordError::BadSignature)?;
            let sig = Signature::from_slice(&s.sig).map_err(|_| RecordError::BadSignature)?;
            key.verify_strict(&msg, &sig)
                .map_err(|_| RecordError::BadSignature)?;
            if owners.contains(&s.key) {
                signers.insert(s.key);
            }
        }
        let have = signers.len() as u8;
        if have >= threshold {
            Ok(())
        } else if have == 0 {
            Err(RecordError::NotOwner)
        } else {
            Err(RecordError::NotEnoughSigners {
                have,
                need: threshold,
            })
        }
    }
}

/// The signed claim of an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Create {
    /// The name the creator picked.
    pub name: Vec<u8>,
    /// The type tag (an app's own number).
    pub tag: u64,
    /// The first owners, sorted and distinct.
    pub owners: Vec<PublicKey>,
    /// Signatures owner operations need.
    pub threshold: u8,
    /// Whether anyone (not only owners) may append.
    pub public_append: bool,
}

impl Signable for Create {
    const DOMAIN: &'static [u8] = b"safe record v1 create\0";
}

/// A change owners make, replacing one exact version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The record's address.
    pub address: XorName,
    /// The version this replaces; the result is version `replaces + 1`.
    pub replaces: u64,
    /// [`State::hash`] of the state this replaces.
    pub prev: Hash,
    /// What changes.
    pub change: Change,
    /// [`State::hash`] of the state this produces.
    pub result: Hash,
}

impl Signable for Op {
    const DOMAIN: &'static [u8] = b"safe record v1 op\0";
}

/// What an [`Op`] changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Sets an entry.
    Set {
        /// Entry key.
        key: Vec<u8>,
        /// New value.
        value: Vec<u8>,
    },
    /// Removes an entry.
    Remove {
        /// Entry key.
        key: Vec<u8>,
    },
    /// New owners and threshold: transfer, sharing, or giving up a share.
    Owners {
        /// The new owners, sorted and distinct.
        owners: Vec<PublicKey>,
        /// The new threshold.
        threshold: u8,
    },
    /// Removes appends (by [`Signed::<Append>::id`]).
    RemoveAppends {
        /// Ids of the appends to remove.
        ids: Vec<Hash>,
    },
}

/// A value added to a record without a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Append {
    /// The record's address.
    pub address: XorName,
    /// The value.
    pub value: Vec<u8>,
    /// Makes two appends of one value by one author distinct.
    pub nonce: u64,
}

impl Signable for Append {
    const DOMAIN: &'static [u8] = b"safe record v1 append\0";
}

impl Signed<Append> {
    /// The append's id: the hash of its body.
    pub fn id(&self) -> Hash {
        body_hash("safe record append id v1", &self.body)
    }
}

impl Signed<Create> {
    /// The genesis id: the hash of the create's body.
    pub fn id(&self) -> Hash {
        body_hash("safe record genesis id v1", &self.body)
    }
}

fn body_hash<T: Serialize>(context: &str, body: &T) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(context);
    if let Ok(bytes) = postcard::to_allocvec(body) {
        h.update(&bytes);
    }
    *h.finalize().as_bytes()
}

/// What a client sends to change the network's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Claim an address.
    Create(Signed<Create>),
    /// An owner operation.
    Op(Signed<Op>),
    /// An append.
    Append(Signed<Append>),
}

impl Write {
    /// The address written to.
    pub fn address(&self) -> XorName {
        match self {
            Write::Create(c) => record_address(&c.body.name, c.body.tag),
            Write::Op(o) => o.body.address,
            Write::Append(a) => a.body.address,
        }
    }

    /// What a holder's receipt for this write binds: the genesis id, the
    /// op's result, or the append id.
    pub fn proof(&self) -> Hash {
        match self {
            Write::Create(c) => c.id(),
            Write::Op(o) => o.body.result,
            Write::Append(a) => a.id(),
        }
    }

    /// Encodes under [`RECORD_FORMAT`].
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let bytes = codec::encode(RECORD_FORMAT, self).map_err(|_| RecordError::Malformed)?;
        if bytes.len() > MAX_WRITE_SIZE {
            return Err(RecordError::TooLarge(Limit::WriteSize));
        }
        Ok(bytes)
    }

    /// Decodes at most [`MAX_WRITE_SIZE`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        codec::decode(RECORD_FORMAT, bytes, MAX_WRITE_SIZE).map_err(decode_err(Limit::WriteSize))
    }
}

fn decode_err(limit: Limit) -> impl Fn(CodecError) -> RecordError {
    move |e| match e {
        CodecError::TooLarge { .. } => RecordError::TooLarge(limit),
        _ => RecordError::Malformed,
    }
}

/// A record's current contents, as its owners signed them (appends aside).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// 0 at creation, +1 per owner operation.
    pub version: u64,
    /// Current owners, sorted and distinct.
    pub owners: Vec<PublicKey>,
    /// Signatures an owner operation needs.
    pub threshold: u8,
    /// Whether anyone may append.
    pub public_append: bool,
    /// The entries.
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Ids of removed appends (tombstones).
    pub removed: BTreeSet<Hash>,
    /// Hashes of the states before this one, oldest first, at most
    /// [`ANCESTRY`]: signed with the state, they prove which copies are
    /// this one's past.
    pub ancestry: Vec<Hash>,
    /// Hash chain over every ownership change so far (version replaced,
    /// owners, threshold): binds the record's ownership history to the
    /// signed state, so no copy can carry an invented one.
    pub owners_chain: Hash,
}

impl State {
    /// The hash operations name as `prev` and `result`.
    pub fn hash(&self) -> Hash {
        body_hash("safe record state v1", self)
    }

    /// The state a create makes.
    pub fn genesis(create: &Create) -> Self {
        Self {
            version: 0,
            owners: create.owners.clone(),
            threshold: create.threshold,
            public_append: create.public_append,
            entries: BTreeMap::new(),
            removed: BTreeSet::new(),
            ancestry: Vec::new(),
            owners_chain: [0; 32],
        }
    }

    /// The state `change` makes of this one (version + 1), within limits.
    pub fn apply(&self, change: &Change) -> Result<State, RecordError> {
        let mut next = self.clone();
        next.version = self
            .version
            .checked_add(1)
            .ok_or(RecordError::TooLarge(Limit::RecordSize))?;
        next.ancestry.push(self.hash());
        if next.ancestry.len() > ANCESTRY {
            next.ancestry.remove(0);
        }
        match change {
            Change::Set { key, value } => {
                if key.len() > MAX_KEY_LEN {
                    return Err(RecordError::TooLarge(Limit::Key));
                }
                if value.len() > MAX_VALUE_LEN {
                    return Err(RecordError::TooLarge(Limit::Value));
                }
                next.entries.insert(key.clone(), value.clone());
                if next.entries.len() > MAX_ENTRIES {
                    return Err(RecordError::TooLarge(Limit::Entries));
                }
            }
            Change::Remove { key } => {
                next.entries.remove(key);
            }
            Change::Owners { owners, threshold } => {
                check_owners(owners, *threshold)?;
                next.owners = owners.clone();
                next.threshold = *threshold;
                next.owners_chain =
                    chain_owners(&self.owners_chain, self.version, owners, *threshold);
            }
            Change::RemoveAppends { ids } => {
                next.removed.extend(ids.iter().copied());
                if next.removed.len() > MAX_REMOVED {
                    return Err(RecordError::TooLarge(Limit::Removed));
                }
            }
        }
        Ok(next)
    }

    fn check_limits(&self) -> Result<(), RecordError> {
        check_owners(&self.owners, self.threshold)?;
        if self.entries.len() > MAX_ENTRIES {
            return Err(RecordError::TooLarge(Limit::Entries));
        }
        for (k, v) in &self.entries {
            if k.len() > MAX_KEY_LEN {
                return Err(RecordError::TooLarge(Limit::Key));
            }
            if v.len() > MAX_VALUE_LEN {
                return Err(RecordError::TooLarge(Limit::Value));
            }
        }
        if self.removed.len() > MAX_REMOVED {
            return Err(RecordError::TooLarge(Limit::Removed));
        }
        let remembered = usize::try_from(self.version).map_or(ANCESTRY, |v| v.min(ANCESTRY));
        if self.ancestry.len() != remembered {
            return Err(RecordError::BrokenChain);
        }
        Ok(())
    }

    /// Checks an append against this state's rules (not its tombstones).
    pub fn check_append(&self, address: &XorName, a: &Signed<Append>) -> Result<(), RecordError> {
        if a.body.address != *address {
            return Err(RecordError::WrongAddress);
        }
        if a.body.value.len() > MAX_VALUE_LEN {
            return Err(RecordError::TooLarge(Limit::Value));
        }
        if self.public_append {
            // Anyone: every signature valid, at least one.
            let keys: Vec<PublicKey> = a.sigs.iter().map(|s| s.key).collect();
            a.check(&keys, 1)
        } else {
            a.check(&self.owners, self.threshold).map_err(|e| match e {
                RecordError::NotOwner => RecordError::AppendNotAllowed,
                other => other,
            })
        }
    }
}

/// The next link of [`State::owners_chain`].
fn chain_owners(prev: &Hash, replaces: u64, owners: &[PublicKey], threshold: u8) -> Hash {
    let mut h = blake3::Hasher::new_derive_key("safe record owners chain v1");
    h.update(prev);
    h.update(&replaces.to_be_bytes());
    h.update(&[threshold]);
    for o in owners {
        h.update(o);
    }
    *h.finalize().as_bytes()
}

/// Owners sorted, distinct, 1..=[`MAX_OWNERS`]; threshold 1..=their number.
pub fn check_owners(owners: &[PublicKey], threshold: u8) -> Result<(), RecordError> {
    if owners.len() > MAX_OWNERS {
        return Err(RecordError::TooLarge(Limit::Owners));
    }
    let sorted = owners.windows(2).all(|w| w[0] < w[1]);
    if owners.is_empty() || !sorted || threshold == 0 || usize::from(threshold) > owners.len() {
        return Err(RecordError::BadOwners);
    }
    Ok(())
}

/// A record with the proof of its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The signed create.
    pub genesis: Signed<Create>,
    /// Every ownership change, oldest first.
    pub owner_changes: Vec<Signed<Op>>,
    /// The operation that produced `state` (`None` at version 0).
    pub last: Option<Signed<Op>>,
    /// The current state.
    pub state: State,
    /// Appends, sorted by id, none of them removed.
    pub appends: Vec<Signed<Append>>,
}

/// What [`Record::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The record changed.
    Changed,
    /// The write was already applied (a retry): nothing changed.
    AlreadyApplied,
}

/// What [`Record::merge`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Nothing new in the other copy.
    Unchanged,
    /// Took a newer state or new appends.
    Updated,
    /// A different genesis, or a state on another line of descent: only
    /// the close group's majority can say which wins ([`resolve`]).
    Conflict,
}

impl Record {
    /// A new record from a create, checking the create.
    pub fn create(genesis: Signed<Create>) -> Result<Self, RecordError> {
        let c = &genesis.body;
        if c.name.len() > MAX_NAME_LEN {
            return Err(RecordError::TooLarge(Limit::Name));
        }
        check_owners(&c.owners, c.threshold)?;
        // The creator is one of the owners.
        genesis.check(&c.owners, 1)?;
        let state = State::genesis(c);
        Ok(Self {
            genesis,
            owner_changes: Vec::new(),
            last: None,
            state,
            appends: Vec::new(),
        })
    }

    /// The record's address.
    pub fn address(&self) -> XorName {
        record_address(&self.genesis.body.name, self.genesis.body.tag)
    }

    /// A digest of everything a replica holds, to tell copies apart cheaply.
    pub fn digest(&self) -> Hash {
        let mut h = blake3::Hasher::new_derive_key("safe record digest v1");
        h.update(&self.genesis.id());
        h.update(&self.state.version.to_be_bytes());
        h.update(&self.state.hash());
        for a in &self.appends {
            h.update(&a.id());
        }
        *h.finalize().as_bytes()
    }

    /// Encodes under [`RECORD_FORMAT`], refusing records over the limit.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let bytes = codec::encode(RECORD_FORMAT, self).map_err(|_| RecordError::Malformed)?;
        if bytes.len() > MAX_RECORD_SIZE {
            return Err(RecordError::TooLarge(Limit::RecordSize));
        }
        Ok(bytes)
    }

    /// Decodes at most [`MAX_RECORD_SIZE`] bytes. Does not verify.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        codec::decode(RECORD_FORMAT, bytes, MAX_RECORD_SIZE).map_err(decode_err(Limit::RecordSize))
    }

    /// Encoded size of everything but the appends.
    fn owned_size(&self) -> usize {
        encoded_len(&(&self.genesis, &self.owner_changes, &self.last, &self.state))
    }

    /// Checks the whole proof: the create, every ownership change signed by
    /// the owners before it, the last operation signed by the owners of its
    /// time and naming this state's hash, the limits, and every append.
    pub fn verify(&self, address: &XorName) -> Result<(), RecordError> {
        if self.address() != *address {
            return Err(RecordError::WrongAddress);
        }
        let fresh = Record::create(self.genesis.clone())?;
        if self.owner_changes.len() > MAX_OWNER_CHANGES {
            return Err(RecordError::TooLarge(Limit::OwnerChanges));
        }
        let (mut owners, mut threshold) = (fresh.state.owners.clone(), fresh.state.threshold);
        let mut chain = fresh.state.owners_chain;
        let mut next_free = 0u64; // lowest version the next change may replace
        for change in &self.owner_changes {
            let op = &change.body;
            let Change::Owners {
                owners: new,
                threshold: t,
            } = &op.change
            else {
                return Err(RecordError::BrokenChain);
            };
            if op.address != *address
                || op.replaces < next_free
                || op.replaces >= self.state.version
            {
                return Err(RecordError::BrokenChain);
            }
            change.check(&owners, threshold)?;
            check_owners(new, *t)?;
            chain = chain_owners(&chain, op.replaces, new, *t);
            (owners, threshold) = (new.clone(), *t);
            next_free = op.replaces + 1;
        }
        match &self.last {
            None => {
                if self.state != fresh.state || !self.owner_changes.is_empty() {
                    return Err(RecordError::BrokenChain);
                }
            }
            Some(last) => {
                let op = &last.body;
                if op.address != *address
                    || op.replaces.checked_add(1) != Some(self.state.version)
                    || op.result != self.state.hash()
                    || self.state.ancestry.last() != Some(&op.prev)
                {
                    return Err(RecordError::BrokenChain);
                }
                if matches!(op.change, Change::Owners { .. }) {
                    // Checked in the loop, against the owners before it.
                    if self.owner_changes.last() != Some(last) {
                        return Err(RecordError::BrokenChain);
                    }
                } else {
                    if self
                        .owner_changes
                        .last()
                        .is_some_and(|c| c.body.replaces >= op.replaces)
                    {
                        return Err(RecordError::BrokenChain);
                    }
                    last.check(&owners, threshold)?;
                }
            }
        }
        if self.state.owners != owners
            || self.state.threshold != threshold
            || self.state.owners_chain != chain
            || self.state.public_append != self.genesis.body.public_append
        {
            return Err(RecordError::BrokenChain);
        }
        self.state.check_limits()?;
        if self.owned_size() > MAX_OWNED_SIZE {
            return Err(RecordError::TooLarge(Limit::RecordSize));
        }
        if self.appends.len() > HELD_APPENDS || appends_size(&self.appends) > HELD_APPEND_BYTES {
            return Err(RecordError::TooLarge(Limit::Appends));
        }
        let mut prev: Option<Hash> = None;
        for a in &self.appends {
            let id = a.id();
            if prev.is_some_and(|p| p >= id) || self.state.removed.contains(&id) {
                return Err(RecordError::BrokenChain);
            }
            self.state.check_append(address, a)?;
            prev = Some(id);
        }
        Ok(())
    }

    /// Applies a write to this (valid) record, as a node does: every rule
    /// checked, nothing changed on error.
    pub fn apply(&mut self, write: &Write) -> Result<Applied, RecordError> {
        let address = self.address();
        if write.address() != address {
            return Err(RecordError::WrongAddress);
        }
        let mut next = self.clone();
        let applied = match write {
            Write::Create(c) if *c == self.genesis => return Ok(Applied::AlreadyApplied),
            Write::Create(c) if c.body == self.genesis.body => {
                // Same claim, other signatures: still the same record.
                Record::create(c.clone())?;
                return Ok(Applied::AlreadyApplied);
            }
            Write::Create(_) => return Err(RecordError::AlreadyExists),
            Write::Op(op) => {
                if self.last.as_ref().is_some_and(|l| l.body == op.body) {
                    // The same operation again (maybe with other signers).
                    return Ok(Applied::AlreadyApplied);
                }
                let body = &op.body;
                if body.replaces != self.state.version {
                    return Err(RecordError::WrongVersion {
                        current: self.state.version,
                        given: body.replaces,
                    });
                }
                let state = self.state.apply(&body.change)?;
                // `apply` remembers the current state's hash last.
                if state.ancestry.last() != Some(&body.prev) {
                    return Err(RecordError::Conflict);
                }
                op.check(&self.state.owners, self.state.threshold)?;
                if state.hash() != body.result {
                    return Err(RecordError::ResultMismatch);
                }
                if matches!(body.change, Change::Owners { .. }) {
                    if next.owner_changes.len() >= MAX_OWNER_CHANGES {
                        return Err(RecordError::TooLarge(Limit::OwnerChanges));
                    }
                    next.owner_changes.push(op.clone());
                }
                let prunes = matches!(
                    body.change,
                    Change::Owners { .. } | Change::RemoveAppends { .. }
                );
                next.state = state;
                next.last = Some(op.clone());
                if prunes {
                    next.keep_valid_appends();
                }
                if next.owned_size() > MAX_OWNED_SIZE {
                    return Err(RecordError::TooLarge(Limit::RecordSize));
                }
                Applied::Changed
            }
            Write::Append(a) => {
                self.state.check_append(&address, a)?;
                let id = a.id();
                if self.state.removed.contains(&id) {
                    return Err(RecordError::AppendRemoved);
                }
                match next.appends.binary_search_by(|x| x.id().cmp(&id)) {
                    Ok(_) => return Ok(Applied::AlreadyApplied),
                    Err(at) => {
                        if next.appends.len() >= MAX_APPENDS
                            || appends_size(&next.appends) + encoded_len(a) > MAX_APPEND_BYTES
                        {
                            return Err(RecordError::TooLarge(Limit::Appends));
                        }
                        next.appends.insert(at, a.clone());
                    }
                }
                Applied::Changed
            }
        };
        *self = next;
        Ok(applied)
    }

    /// Drops appends the state removed or no longer allows (after a change
    /// of owners on an owners-only record).
    fn keep_valid_appends(&mut self) {
        let (address, state) = (self.address(), &self.state);
        self.appends.retain(|a| {
            !state.removed.contains(&a.id()) && state.check_append(&address, a).is_ok()
        });
    }

    /// Adds `others`' appends that this state allows. Past [`HELD_APPENDS`]
    /// or [`HELD_APPEND_BYTES`] the highest ids are dropped, so every
    /// replica that holds the same appends keeps the same ones. Returns
    /// whether the set changed.
    fn add_appends<'a>(&mut self, others: impl IntoIterator<Item = &'a Signed<Append>>) -> bool {
        let address = self.address();
        let mut by_id: BTreeMap<Hash, Signed<Append>> =
            self.appends.iter().map(|a| (a.id(), a.clone())).collect();
        for a in others {
            let id = a.id();
            if !by_id.contains_key(&id)
                && !self.state.removed.contains(&id)
                && self.state.check_append(&address, a).is_ok()
            {
                by_id.insert(id, a.clone());
            }
        }
        let (mut kept, mut bytes) = (Vec::with_capacity(by_id.len()), 0usize);
        for a in by_id.into_values() {
            let size = encoded_len(&a);
            if kept.len() >= HELD_APPENDS || bytes + size > HELD_APPEND_BYTES {
                break;
            }
            bytes += size;
            kept.push(a);
        }
        let changed = kept != self.appends;
        self.appends = kept;
        changed
    }

    /// True if `ancestor` is a past state of this record: its state hash is
    /// in this state's signed [`State::ancestry`] at its version, and its
    /// ownership history is the start of this one's (so a former owner's
    /// fork, which lacks the transfer, never descends from the honest copy).
    pub fn descends_from(&self, ancestor: &Record) -> bool {
        if self.genesis.id() != ancestor.genesis.id()
            || ancestor.state.version >= self.state.version
        {
            return false;
        }
        let back = self.state.version - ancestor.state.version;
        let Ok(back) = usize::try_from(back) else {
            return false;
        };
        let Some(at) = self.state.ancestry.len().checked_sub(back) else {
            return false;
        };
        let theirs = &ancestor.owner_changes;
        self.state.ancestry.get(at) == Some(&ancestor.state.hash())
            && theirs.len() <= self.owner_changes.len()
            && theirs
                .iter()
                .zip(&self.owner_changes)
                .all(|(a, b)| a.body == b.body)
    }

    /// Merges another verified copy into this one, as a replica does during
    /// replication. Only what provably follows is taken: the same state
    /// (its appends are united) or a later state that descends from this
    /// one ([`Record::descends_from`]). A copy of this one's past gives
    /// only its appends. Anything else — another genesis, or a state on
    /// another line, older or newer — is a conflict for the close group's
    /// majority to settle.
    pub fn merge(&mut self, other: &Record) -> Merge {
        if self.genesis.id() != other.genesis.id() {
            return Merge::Conflict;
        }
        if other.state == self.state || self.descends_from(other) {
            return if self.add_appends(&other.appends) {
                Merge::Updated
            } else {
                Merge::Unchanged
            };
        }
        if other.descends_from(self) {
            let mine = std::mem::take(&mut self.appends);
            self.owner_changes = other.owner_changes.clone();
            self.last = other.last.clone();
            self.state = other.state.clone();
            self.appends = other.appends.clone();
            self.keep_valid_appends();
            self.add_appends(&mine);
            return Merge::Updated;
        }
        Merge::Conflict
    }
}

/// Size of a value's postcard encoding.
fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::to_allocvec(value).map_or(usize::MAX, |v| v.len())
}

fn appends_size(appends: &[Signed<Append>]) -> usize {
    appends.iter().map(encoded_len).sum()
}

/// The record a set of verified copies of one address stands for, and how
/// many of the copies stand behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The record: the winning state, with the appends of every copy of its
    /// genesis.
    pub record: Record,
    /// Copies that hold its state or a state descending from it: how many
    /// replicas stand behind it.
    pub support: usize,
}

/// A distinct state in [`resolve`]: support, hash (lower first), a copy
/// holding it.
type Ranked<'a> = (usize, std::cmp::Reverse<Hash>, &'a Record);

fn best<'a, 'b>(pool: impl Iterator<Item = &'b Ranked<'a>>) -> Option<Ranked<'a>>
where
    'a: 'b,
{
    pool.max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1))).copied()
}

/// Picks what verified copies of one address stand for, as a reader (or a
/// replica settling a conflict) does: the genesis most copies hold (ties:
/// lowest id); on it, the state with the most *support* — copies holding it
/// or a state that descends from it ([`Record::descends_from`]); then, down
/// that line, the best-supported descendant, again and again (a write still
/// reaching the group), but only through states with at least `quorum`
/// support. `None` if no state has `quorum`. Ties between states on
/// different lines go to the lowest state hash, never to the higher
/// version: support decides, so a copy built on a write that failed to
/// reach a majority, or a former owner's fork, never outranks the line the
/// majority holds. A reader passes `quorum` 1; a replica settling passes
/// a majority of its group.
pub fn resolve(copies: &[Record], quorum: usize) -> Option<Resolved> {
    let mut votes: BTreeMap<Hash, usize> = BTreeMap::new();
    for c in copies {
        *votes.entry(c.genesis.id()).or_default() += 1;
    }
    let (&genesis, _) = votes
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
    let same: Vec<&Record> = copies
        .iter()
        .filter(|c| c.genesis.id() == genesis)
        .collect();
    // Distinct states, with a copy holding each and its support.
    let mut states: BTreeMap<Hash, &Record> = BTreeMap::new();
    for c in &same {
        states.entry(c.state.hash()).or_insert(c);
    }
    let support = |r: &Record| {
        same.iter()
            .filter(|c| c.state == r.state || c.descends_from(r))
            .count()
    };
    let ranked: Vec<Ranked<'_>> = states
        .iter()
        .map(|(h, r)| (support(r), std::cmp::Reverse(*h), *r))
        .filter(|e| e.0 >= quorum.max(1))
        .collect();
    let (mut backing, _, mut pick) = best(ranked.iter())?;
    while let Some((n, _, next)) = best(ranked.iter().filter(|e| e.2.descends_from(pick))) {
        (backing, pick) = (n, next);
    }
    let mut record = pick.clone();
    record.add_appends(same.iter().flat_map(|c| c.appends.iter()));
    Some(Resolved {
        record,
        support: backing,
    })
}

#[cfg(test)]
mod tests;
