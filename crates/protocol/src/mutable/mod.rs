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
//!
//! The code follows those seams: `limits` (every bound and [`Limit`]),
//! `signed` (the signed operations a client sends: [`Signed`], [`Create`],
//! [`Op`], [`Append`], [`Write`]), `state` ([`State`] and how an operation
//! changes it), `record` ([`Record`]: verify, apply, merge) and `resolve`
//! ([`resolve`]), with [`RecordError`] in `error` and [`apply_write`] (a
//! write against what a store holds, for nodes and the client's local
//! store alike) in `apply`. Everything is used from
//! here, as `mutable::X`.

mod apply;
mod error;
mod limits;
mod record;
mod resolve;
mod signed;
mod state;

pub use apply::{accept_write, apply_write};
pub use error::RecordError;
pub use limits::{
    ANCESTRY, HELD_APPEND_BYTES, HELD_APPENDS, Limit, MAX_APPEND_BYTES, MAX_APPENDS, MAX_ENTRIES,
    MAX_KEY_LEN, MAX_NAME_LEN, MAX_OWNED_SIZE, MAX_OWNER_CHANGES, MAX_OWNERS, MAX_RECORD_SIZE,
    MAX_REMOVED, MAX_VALUE_LEN, MAX_WRITE_SIZE,
};
pub use record::{Applied, Merge, Record};
pub use resolve::{Resolved, resolve};
pub use signed::{Append, Change, Create, Op, Sig, Signable, Signed, Write};
pub use state::{State, check_owners};

/// The signing key type owners use (re-exported so callers need no
/// direct ed25519 dependency).
pub use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::xorname::XorName;

/// Format version of encoded records and writes.
pub const RECORD_FORMAT: u8 = 1;

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

/// A domain-separated hash of a body's encoding: ids and state hashes.
fn body_hash<T: Serialize>(context: &str, body: &T) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(context);
    if let Ok(bytes) = postcard::to_allocvec(body) {
        h.update(&bytes);
    }
    *h.finalize().as_bytes()
}

/// Size of a value's postcard encoding.
fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::to_allocvec(value).map_or(usize::MAX, |v| v.len())
}

#[cfg(test)]
mod tests;
