//! The store interfaces between the client's logic and wherever data
//! lives: [`ChunkStore`] for immutable chunks, [`RecordStore`] for mutable
//! records. The network ([`crate::Connection`]) and a local directory
//! ([`crate::LocalStore`]) implement both, so files, records and the layers
//! above them run unchanged offline and online.

use std::future::Future;

use safe_protocol::mutable::{Record, SigningKey, Write};
use safe_protocol::{Chunk, ChunkError, XorName};

use crate::mutable::MutableError;

/// Why a store could not put or get a chunk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No chunk of that name.
    #[error("chunk {0} not found")]
    NotFound(XorName),
    /// The stored bytes fail their hash or size check.
    #[error("stored chunk is corrupt: {0}")]
    Corrupt(#[from] ChunkError),
    /// The store's own I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The network could not complete the operation.
    #[error("{0}")]
    Network(String),
    /// The store refuses new data.
    #[error("store is full: {0}")]
    Full(String),
    /// Storing needs paying for, and the payment could not be made.
    #[error("{0}")]
    Payment(String),
}

/// Somewhere chunks can be put and got by name.
///
/// Implementations verify what they return: a [`Chunk`] from `get` always
/// hashes to the name asked for (a mismatch is [`StoreError::Corrupt`]).
/// `put` of a chunk already held succeeds without storing it twice.
pub trait ChunkStore: Send + Sync + 'static {
    /// Stores `chunk`; returns once it is durable.
    fn put(&self, chunk: Chunk) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Fetches and verifies the chunk called `name`.
    fn get(&self, name: XorName) -> impl Future<Output = Result<Chunk, StoreError>> + Send;
}

/// Somewhere mutable records can be written and read.
///
/// Both implementations apply the same rules ([`Record::apply`], as the
/// nodes do): a create succeeds only where nothing is held, an owner
/// operation needs the owners' signatures and the current version, and a
/// write already applied succeeds again without changing anything (so a
/// retry is safe). Records returned are verified.
pub trait RecordStore: Send + Sync + 'static {
    /// Applies a signed write; returns once it is durable.
    fn write_record(&self, write: &Write) -> impl Future<Output = Result<(), MutableError>> + Send;

    /// The record at `name`, verified.
    fn get_record(
        &self,
        name: XorName,
    ) -> impl Future<Output = Result<Record, MutableError>> + Send;

    /// The account record at `address`, verified, fetched with requests
    /// signed by `signer` (its login key or an owner). A missing account
    /// and a key that may not fetch it are both [`MutableError::NotFound`].
    fn fetch_account(
        &self,
        address: XorName,
        signer: &SigningKey,
    ) -> impl Future<Output = Result<Record, MutableError>> + Send;
}
