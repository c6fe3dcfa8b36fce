//! [`RecordError`]: why a write or a record is invalid, in words a user can act
//! on. Nodes send these back to clients.

use serde::{Deserialize, Serialize};

use super::{Limit, MAX_OWNERS};
use crate::codec::CodecError;

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
    /// A write or record that breaks the rules of its kind (an account
    /// record allows only setting its login entry).
    #[error("not allowed on a record of this kind")]
    NotAllowed,
    /// An append to an inbox carries too little proof of work (see
    /// `safe_protocol::inbox`): `need` leading zero bits would be taken.
    #[error("the append carries too little proof of work: {need} bits are needed")]
    NotEnoughWork {
        /// Bits of work the node would accept now.
        need: u8,
    },
    /// An append to an inbox was worked for an hour too far from now.
    #[error("the append's proof of work is for another hour; redo it now")]
    StaleWork,
}

/// Maps a codec error to [`RecordError`], naming `limit` if the bytes were
/// too many.
pub(super) fn decode_err(limit: Limit) -> impl Fn(CodecError) -> RecordError {
    move |e| match e {
        CodecError::TooLarge { .. } => RecordError::TooLarge(limit),
        _ => RecordError::Malformed,
    }
}
