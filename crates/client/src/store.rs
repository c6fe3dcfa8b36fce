//! The chunk store interface between files and wherever chunks live.

use std::future::Future;

use safe_protocol::{Chunk, ChunkError, XorName};

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
