//! Signed operations: what a client sends to create or change a record.
//!
//! [`Signed`] wraps a body with its signatures, each over the body's exact
//! encoding behind a per-kind domain prefix ([`Signable`]). The bodies are
//! [`Create`] (the claim of an address), [`Op`] (an owner operation replacing
//! one exact version, with the [`Change`] it makes) and [`Append`]; a
//! [`Write`] is one of them, as sent over the wire.

use std::collections::BTreeSet;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::error::decode_err;
use super::{
    Hash, Limit, MAX_OWNERS, MAX_WRITE_SIZE, PublicKey, RECORD_FORMAT, RecordError, body_hash,
    record_address,
};
use crate::codec;
use crate::xorname::XorName;

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
    /// [`State::hash`](super::State::hash) of the state this replaces.
    pub prev: Hash,
    /// What changes.
    pub change: Change,
    /// [`State::hash`](super::State::hash) of the state this produces.
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
