//! Error types of self-encryption. Every error about a chunk names it (its
//! index in the file and its stored name) so a user can tell which piece is
//! missing or damaged.

use safe_protocol::{CodecError, XorName};

/// A boxed error from the caller's storage closures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a chunk fetch closure reports when it cannot supply a chunk.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No such chunk where we looked.
    #[error("not found")]
    NotFound,
    /// Looking failed for another reason.
    #[error(transparent)]
    Failed(BoxError),
}

/// Why a file could not be self-encrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptError {
    /// Reading the input failed.
    #[error("reading the input failed: {0}")]
    Io(#[from] std::io::Error),
    /// The input ended before its stated size.
    #[error(
        "input ended after {actual} bytes but {expected} were expected; did it change while being read?"
    )]
    InputShorter {
        /// Stated size.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// The input went on past its stated size.
    #[error("input is longer than the {expected} bytes expected; did it change while being read?")]
    InputLonger {
        /// Stated size.
        expected: u64,
    },
    /// The caller's chunk sink failed.
    #[error("storing a chunk failed: {0}")]
    Sink(BoxError),
    /// A data map could not be encoded.
    #[error("encoding a data map failed: {0}")]
    Codec(#[from] CodecError),
    /// An encrypted chunk broke the chunk size limit (a bug).
    #[error("encrypted chunk is invalid: {0}")]
    Chunk(#[from] safe_protocol::ChunkError),
    /// An internal invariant failed (a bug).
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// The data map nests deeper than [`crate::root::MAX_DEPTH`] levels.
    #[error("data map nests too deeply")]
    TooDeep,
}

/// Why a file (or part of one) could not be decrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// A chunk is nowhere to be found.
    #[error("chunk {index} ({name}) is missing")]
    MissingChunk {
        /// Position in the file (or data map level).
        index: usize,
        /// Stored name.
        name: XorName,
    },
    /// A chunk was found but is damaged: wrong hash, failed authentication,
    /// bad compression or wrong length.
    #[error("chunk {index} ({name}) is corrupt: {reason}")]
    CorruptChunk {
        /// Position in the file (or data map level).
        index: usize,
        /// Stored name.
        name: XorName,
        /// What check failed.
        reason: &'static str,
    },
    /// Fetching a chunk failed for a reason other than absence.
    #[error("fetching chunk {index} ({name}) failed: {source}")]
    Fetch {
        /// Position in the file (or data map level).
        index: usize,
        /// Stored name.
        name: XorName,
        /// Why.
        source: BoxError,
    },
    /// The data map (or root chunk) is not well formed.
    #[error("malformed data map: {0}")]
    MalformedDataMap(String),
    /// The file is private and no secret was given.
    #[error("this file is private: its secret is needed to read it")]
    SecretNeeded,
    /// The secret given does not open this private file.
    #[error("the secret does not open this private file (or its root chunk is corrupt)")]
    WrongSecret,
    /// The requested range starts past the end of the file.
    #[error("range starts at byte {start} but the file has only {size} bytes")]
    RangeOutOfBounds {
        /// Requested start.
        start: u64,
        /// File size.
        size: u64,
    },
    /// Writing the output failed.
    #[error("writing the output failed: {0}")]
    Write(#[from] std::io::Error),
}

impl DecryptError {
    pub(crate) fn from_fetch(index: usize, name: XorName, err: FetchError) -> Self {
        match err {
            FetchError::NotFound => DecryptError::MissingChunk { index, name },
            FetchError::Failed(source) => DecryptError::Fetch {
                index,
                name,
                source,
            },
        }
    }
}
