//! The bounds every record and write is held to, and [`Limit`], which one was
//! broken.
//!
//! Every part of a record has a limit, so what a node takes on when it accepts
//! a record or a write is known in advance; a write that would break one is
//! refused with [`RecordError::TooLarge`](super::RecordError::TooLarge).

use serde::{Deserialize, Serialize};

/// Largest encoded [`Record`](super::Record): its owned part and its
/// appends together.
pub const MAX_RECORD_SIZE: usize = 960 * 1024;
/// Largest encoded owned part of a record: genesis, ownership history, last
/// operation and state (everything but the appends).
pub const MAX_OWNED_SIZE: usize = 512 * 1024;
/// Largest encoded [`Write`](super::Write).
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
/// States a record's state remembers the hashes of
/// ([`State::ancestry`](super::State::ancestry)): how far apart two copies
/// can be and still be proven one the other's past.
pub const ANCESTRY: usize = 64;
/// Most ownership changes in one record's history.
pub const MAX_OWNER_CHANGES: usize = 256;

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
