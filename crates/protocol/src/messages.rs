//! Messages of the data protocol (`/safe/data/1`) and signed receipts.
//!
//! Every message is encoded with [`crate::codec`] under
//! [`DATA_FORMAT`], and no message may exceed [`MAX_MESSAGE_SIZE`]; the
//! transport refuses to read more.

use bytes::Bytes;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::chunk::MAX_CHUNK_SIZE;
use crate::mutable::{Hash, RecordError};
use crate::xorname::XorName;

/// Format version of data protocol messages (2: a put carries a
/// storage payment, and nodes quote and take payments; 3: so does a
/// record write, for a record's creation).
pub const DATA_FORMAT: u8 = 3;

/// Largest encoded request or response: one chunk plus room for receipts.
pub const MAX_MESSAGE_SIZE: usize = MAX_CHUNK_SIZE + 64 * 1024;

/// Most names in one replication offer; longer lists are split.
pub const MAX_OFFER_NAMES: usize = 1024;

/// Most receipts in one response (a close group is far smaller).
pub const MAX_RECEIPTS: usize = 64;

/// Most nodes asked about in one [`Request::PeerAges`].
pub const MAX_AGE_PEERS: usize = 64;
/// Most relay certificates asked for in one [`Request::RelayCerts`].
pub const MAX_CERT_PEERS: usize = 64;
/// Largest relay certificate carried (`safe_relay::cert::MAX_CERT_BYTES`).
pub const MAX_RELAY_CERT: usize = 256;

/// What a peer asks of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Store this chunk (named by its hash). With `replicate`, the receiver
    /// also forwards it to the rest of the close group as it sees it and
    /// returns their receipts with its own: the client sends the bytes once.
    PutChunk {
        /// The chunk's bytes.
        bytes: Bytes,
        /// Forward to the rest of the close group.
        replicate: bool,
        /// On a network that charges, what pays for a chunk the receiver
        /// does not hold yet (see [`crate::coin::pay`]).
        payment: Option<crate::coin::pay::ChunkPayment>,
    },
    /// Send the chunk called `name`.
    GetChunk {
        /// Its name.
        name: XorName,
    },
    /// Replication of chunks: "I hold these and you are in their close
    /// group". The receiver fetches those it lacks with `GetChunk`. (Third
    /// variant, as it always was: the wire encoding is the variant's index,
    /// not its name.)
    OfferChunks {
        /// At most [`MAX_OFFER_NAMES`] names.
        names: Vec<XorName>,
    },
    /// Apply a write to a mutable record (an encoded
    /// [`crate::mutable::Write`]); the receiver validates and stores it
    /// and answers for itself only.
    PutRecord {
        /// The encoded write, at most [`crate::mutable::MAX_WRITE_SIZE`].
        write: Bytes,
        /// On a network that charges, what pays for creating a record the
        /// receiver does not hold yet (its address is paid for as a chunk
        /// name is, [`crate::coin::pay`]); other writes are free.
        payment: Option<crate::coin::pay::ChunkPayment>,
    },
    /// Send the mutable record at `name`.
    GetRecord {
        /// Its address.
        name: XorName,
    },
    /// Replication of mutable records: "I hold these, in this state (a
    /// [`crate::mutable::Record::digest`]), and you are in their close
    /// group". The receiver fetches those whose digest differs from its own
    /// copy with `GetRecord` and merges them.
    OfferRecords {
        /// At most [`MAX_OFFER_NAMES`] (address, digest) pairs.
        items: Vec<(XorName, [u8; 32])>,
    },
    /// Send the account record this fetch names, if its signer may have
    /// it (see [`crate::account`]). Every refusal is `NotFound`, alike
    /// for a missing account and a wrong key; `Refused(RateLimited)` is
    /// given alike too.
    GetAccount(crate::account::AccountFetch),
    /// A popular chunk, for the receiver's cache (not its store): sent by a
    /// client that read it, to nodes just outside its close group, so that
    /// later reads find a copy there. The receiver keeps it only after
    /// checking it against its name; a cached copy is never counted as a
    /// replica, signed for, or offered on.
    CacheChunk {
        /// The chunk (at most [`crate::MAX_CHUNK_SIZE`] bytes).
        bytes: Bytes,
    },
    /// How long the receiver has had each of these nodes in its routing
    /// table (node age): a client counts a node's answers toward a
    /// majority only once the rest of the node's close group says it has
    /// been up long enough.
    PeerAges {
        /// The nodes' ed25519 public keys, at most [`MAX_AGE_PEERS`].
        peers: Vec<[u8; 32]>,
    },
    /// The relay certificates (anonymous access, `safe_relay::cert`) of
    /// these nodes, as the receiver holds them: its own, or those it
    /// fetched from its routing peers. A client asks for a relay's
    /// certificate from two nodes other than the relay and uses it only if
    /// both hand over the same one.
    RelayCerts {
        /// The nodes' ed25519 public keys, at most [`MAX_CERT_PEERS`].
        peers: Vec<[u8; 32]>,
    },
    /// Vote for this spend at its input `input`'s spend address (see
    /// [`crate::coin`]): the receiver checks the spend and its parents,
    /// and answers [`Response::Voted`] if it holds this spend there (now
    /// or already), or [`Response::SpendRefused`].
    Spend {
        /// The spend, signed by its input owners.
        spend: crate::coin::SignedSpend,
        /// The certified spends its inputs come from (none for the
        /// genesis output), at most [`crate::coin::MAX_INPUTS`].
        parents: Vec<crate::coin::CertifiedSpend>,
        /// Which input's address this vote is for.
        input: u8,
        /// The vote of the group's first member (the sequencer), which the
        /// other members need before they vote.
        sequencer: Option<crate::coin::Vote>,
    },
    /// The spend the receiver holds at this spend address, with its vote.
    GetSpend {
        /// The spend address.
        address: XorName,
    },
    /// The receiver's price for storing chunks, and which of `names` (at
    /// most [`crate::coin::pay::MAX_QUOTE_NAMES`]) it holds already (those
    /// cost nothing): [`Response::Quote`], or [`Response::PaymentRefused`]
    /// on a free network.
    Quote {
        /// Chunks the asker means to store at the receiver.
        names: Vec<XorName>,
    },
    /// A certified batch payment to the receiver (among others), which
    /// credits it the chunks its manifest entry counts: answered with
    /// [`Response::Paid`] or [`Response::PaymentRefused`].
    Pay {
        /// The spend paying the batch, certified at each input.
        payment: crate::coin::CertifiedSpend,
        /// What it pays for (its hash is the spend's memo).
        manifest: crate::coin::pay::Manifest,
        /// The secret `r` of the output paying the receiver, which shows
        /// that output is to its reward address.
        secret: [u8; 32],
    },
    /// A storage audit: prove holding chunk `name` by the hash of a fresh
    /// `nonce` and the chunk's bytes ([`audit_proof`]), which only a
    /// holder of the bytes can compute. Answered with
    /// [`Response::AuditProof`], or [`Response::NotFound`].
    Audit {
        /// The chunk.
        name: XorName,
        /// The auditor's fresh challenge.
        nonce: [u8; 32],
    },
}

/// The answer to an audit of a chunk with `bytes` under `nonce`: BLAKE3
/// (derive-key "safe storage audit v1") of the nonce and the bytes.
pub fn audit_proof(nonce: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("safe storage audit v1");
    h.update(nonce);
    h.update(bytes);
    *h.finalize().as_bytes()
}

/// Why a node refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The chunk is over the size limit.
    #[error("chunk too large")]
    TooLarge,
    /// The node's storage is full.
    #[error("node is full")]
    Full,
    /// The request broke a limit (too many names, ...).
    #[error("request over a protocol limit")]
    OverLimit,
    /// The node failed to store the chunk.
    #[error("node failed to store the chunk")]
    StorageFailed,
    /// Too many requests for this address lately (account fetches).
    #[error("too many requests for this address; wait and try again")]
    RateLimited,
    /// The node is not in the close group of what it was asked to create
    /// (it would hold a copy nobody reads or replicates).
    #[error("this node is not in the close group of that address")]
    NotResponsible,
    /// This peer sent more requests than the node takes from one peer
    /// (its `--request-rate`); a peer that keeps on is banned for a while.
    #[error("too many requests from this peer; slow down")]
    PeerRateLimited,
}

/// A node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Stored; receipts of every holder that confirmed (the receiver's first).
    Stored {
        /// Signed receipts.
        receipts: Vec<Receipt>,
    },
    /// The chunk asked for.
    Chunk(Bytes),
    /// The node does not hold it.
    NotFound,
    /// An offer was taken note of; `missing` are the offered names the
    /// receiver does not hold (it fetches those it is responsible for).
    OfferTaken {
        /// Offered names the receiver lacks.
        missing: Vec<XorName>,
    },
    /// The request was refused.
    Refused(Refusal),
    /// A record write was applied (or had been): the holder's receipt.
    RecordStored(RecordReceipt),
    /// The record asked for (an encoded [`crate::mutable::Record`]).
    Record(Bytes),
    /// A record write broke a rule.
    RecordRefused(RecordError),
    /// A `CacheChunk` was taken (kept in the cache, or held already).
    Cached,
    /// Seconds the answering node has had each node asked about in its
    /// routing table, in the order asked (0: not in it).
    PeerAges(Vec<u64>),
    /// The certificates asked for by `RelayCerts`, in the order asked
    /// (empty: not held), each at most [`MAX_RELAY_CERT`] bytes.
    RelayCerts(Vec<Bytes>),
    /// The receiver's vote for the spend asked about.
    Voted(crate::coin::Vote),
    /// Why the receiver does not vote for the spend.
    SpendRefused(crate::coin::SpendError),
    /// The spend held at the address asked about, and the receiver's vote.
    HeldSpend {
        /// The spend.
        spend: crate::coin::SignedSpend,
        /// The receiver's vote for it.
        vote: crate::coin::Vote,
    },
    /// The receiver's signed price, and for each name asked about
    /// whether it holds that chunk already.
    Quote {
        /// The price.
        quote: crate::coin::pay::SignedQuote,
        /// One per name asked about, in order.
        held: Vec<bool>,
    },
    /// The payment is taken: chunks it may still store at the receiver.
    Paid {
        /// Chunks of the batch the receiver will still store under it.
        remaining: u32,
    },
    /// Why the receiver takes no payment, or will not store a chunk
    /// without one.
    PaymentRefused(crate::coin::pay::PaymentError),
    /// The answer to an [`Request::Audit`].
    AuditProof([u8; 32]),
}

impl Response {
    /// A short name for the kind of answer (for messages: never the bytes).
    pub fn kind(&self) -> String {
        match self {
            Response::Stored { .. } => "stored".into(),
            Response::Chunk(_) => "a chunk".into(),
            Response::NotFound => "not found".into(),
            Response::OfferTaken { .. } => "offer taken".into(),
            Response::Refused(r) => format!("refused: {r}"),
            Response::RecordStored(_) => "record stored".into(),
            Response::Record(_) => "a record".into(),
            Response::RecordRefused(e) => format!("refused: {e}"),
            Response::Cached => "cached".into(),
            Response::PeerAges(_) => "peer ages".into(),
            Response::RelayCerts(_) => "relay certificates".into(),
            Response::Voted(_) => "a vote".into(),
            Response::SpendRefused(e) => format!("spend refused: {e}"),
            Response::HeldSpend { .. } => "a held spend".into(),
            Response::Quote { .. } => "a quote".into(),
            Response::Paid { .. } => "payment taken".into(),
            Response::PaymentRefused(e) => format!("payment refused: {e}"),
            Response::AuditProof(_) => "an audit proof".into(),
        }
    }
}

/// A node's signed statement "I hold chunk `name`".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The chunk.
    pub name: XorName,
    /// The signer's ed25519 public key (its network identity).
    pub node_key: [u8; 32],
    /// ed25519 signature over [`Receipt::signed_bytes`].
    pub signature: Vec<u8>,
}

impl Receipt {
    /// The exact bytes a receipt signs.
    pub fn signed_bytes(name: &XorName) -> Vec<u8> {
        let mut m = b"safe receipt v1: holds chunk ".to_vec();
        m.extend_from_slice(name.as_bytes());
        m
    }

    /// True if the signature is `node_key`'s over this receipt's chunk.
    pub fn verify(&self) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.node_key) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&self.signature) else {
            return false;
        };
        key.verify(&Self::signed_bytes(&self.name), &sig).is_ok()
    }
}

/// A node's signed statement "I hold record `name` with this write in it".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordReceipt {
    /// The record's address.
    pub name: XorName,
    /// [`crate::mutable::Write::proof`] of the write it holds.
    pub proof: Hash,
    /// The signer's ed25519 public key (its network identity).
    pub node_key: [u8; 32],
    /// ed25519 signature over [`RecordReceipt::signed_bytes`].
    pub signature: Vec<u8>,
}

impl RecordReceipt {
    /// The exact bytes a record receipt signs.
    pub fn signed_bytes(name: &XorName, proof: &Hash) -> Vec<u8> {
        let mut m = b"safe receipt v1: holds record ".to_vec();
        m.extend_from_slice(name.as_bytes());
        m.extend_from_slice(proof);
        m
    }

    /// True if the signature is `node_key`'s over this receipt.
    pub fn verify(&self) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.node_key) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&self.signature) else {
            return false;
        };
        key.verify(&Self::signed_bytes(&self.name, &self.proof), &sig)
            .is_ok()
    }
}

/// Codec format of [`ExitWriteAnswer`].
pub const EXIT_ANSWER_FORMAT: u8 = 1;

/// What an exit relay answers to an anonymous record write: what each
/// member it sent the write to said. The client believes only the receipts
/// that verify, bind the write and are signed by members of the close group
/// as it knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitWriteAnswer {
    /// Receipts the members gave.
    pub receipts: Vec<RecordReceipt>,
    /// Refusals the members gave.
    pub refusals: Vec<crate::mutable::RecordError>,
    /// Members that were full.
    pub full: u16,
    /// Members that did not answer, or answered otherwise.
    pub failed: u16,
}

/// What an exit relay answers to an anonymous chunk put (codec format
/// [`EXIT_ANSWER_FORMAT`]): the receipts it got, and how many members were
/// full or failed. The client counts only receipts that verify and are
/// signed by members of the chunk's close group as it knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitPutAnswer {
    /// Receipts for the chunk.
    pub receipts: Vec<Receipt>,
    /// Members that were full.
    pub full: u16,
    /// Members that did not answer, or answered otherwise.
    pub failed: u16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = codec::decode::<Request>(DATA_FORMAT, &bytes, MAX_MESSAGE_SIZE);
            let _ = codec::decode::<Response>(DATA_FORMAT, &bytes, MAX_MESSAGE_SIZE);
        }
    }

    #[test]
    fn an_audit_proof_needs_the_nonce_and_every_byte() {
        let bytes = vec![7u8; 4096];
        let p = audit_proof(&[1; 32], &bytes);
        assert_eq!(p, audit_proof(&[1; 32], &bytes));
        assert_ne!(
            p,
            audit_proof(&[2; 32], &bytes),
            "a fresh nonce, a fresh proof"
        );
        let mut flipped = bytes.clone();
        flipped[4095] ^= 1;
        assert_ne!(p, audit_proof(&[1; 32], &flipped));
        assert_ne!(p, audit_proof(&[1; 32], &bytes[..4095]));
    }

    #[test]
    fn receipts_verify_only_their_signer_and_chunk() {
        use ed25519_dalek::{Signer, SigningKey};
        let key = SigningKey::from_bytes(&[7; 32]);
        let name = XorName([1; 32]);
        let r = Receipt {
            name,
            node_key: key.verifying_key().to_bytes(),
            signature: key.sign(&Receipt::signed_bytes(&name)).to_bytes().to_vec(),
        };
        assert!(r.verify());
        let mut other = r.clone();
        other.name = XorName([2; 32]);
        assert!(!other.verify());
        let mut forged = r.clone();
        forged.node_key = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert!(!forged.verify());
        let mut short = r;
        short.signature.truncate(10);
        assert!(!short.verify());
    }
}
