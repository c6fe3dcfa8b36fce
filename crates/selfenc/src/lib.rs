//! Self-encryption: turning a file into encrypted, content-addressed chunks and
//! back, as in SAFE.
//!
//! 1. The file is split into chunks ([`layout`]): at least three for any file
//!    of three bytes or more, each at most [`MAX_CHUNK_PLAINTEXT`], sizes as
//!    equal as possible.
//! 2. Each chunk's plaintext is hashed. The key and nonce of chunk *i* derive
//!    from the hashes of chunks *i-1*, *i* and *i+1* (wrapping round), so a
//!    chunk alone cannot be decrypted, and the same file always gives the same
//!    chunks (convergent encryption, network-wide de-duplication). The chunk's
//!    own hash is part of its key: two files that share neighbours but differ
//!    in this chunk never reuse a key.
//! 3. The plaintext is compressed with zstd when a sample shows it helps, then
//!    encrypted with AES-256-GCM-SIV (authenticated and nonce-misuse
//!    resistant), and the result is named by its BLAKE3 hash.
//! 4. The [`DataMap`] lists (plaintext hash, stored hash, size) for every
//!    chunk. A large data map is itself self-encrypted, repeatedly, until it
//!    fits one small *root* chunk ([`root`]); the root's name is the file's
//!    address.
//!
//! **Private mode** ([`Secret`]) mixes a caller-held secret into every key and
//! seals the root, so chunks are not convergent: nobody can confirm that a
//! known file is stored, at the price of no de-duplication with other users.
//!
//! This crate does no I/O of its own beyond reading the caller's reader: chunk
//! storage is the caller's business, through closures.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod crypto;
pub mod datamap;
mod decrypt;
mod encrypt;
mod error;
pub mod layout;
pub mod root;

pub use crypto::Secret;
pub use datamap::{ChunkInfo, DataMap};
pub use decrypt::{ChunkSource, decrypt_chunk, decrypt_range, decrypt_to_vec};
pub use encrypt::{encrypt_bytes, encrypt_stream};
pub use error::{BoxError, DecryptError, EncryptError, FetchError};
pub use root::{Root, open_root, pack_root, resolve_root};

/// Largest plaintext in one chunk: 1 MiB.
pub const MAX_CHUNK_PLAINTEXT: usize = 1024 * 1024;

/// Fewest chunks a file of [`MIN_CHUNKS`] bytes or more is split into.
pub const MIN_CHUNKS: u64 = 3;

/// How a file is self-encrypted. The defaults are what the network uses;
/// tests shrink `max_chunk_size` to reach many-chunk cases cheaply.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest plaintext per chunk, at most [`MAX_CHUNK_PLAINTEXT`].
    pub max_chunk_size: usize,
    /// Private mode: a secret mixed into every key. `None` is convergent.
    pub secret: Option<Secret>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_chunk_size: MAX_CHUNK_PLAINTEXT,
            secret: None,
        }
    }
}

impl Config {
    /// The default configuration in private mode with `secret`.
    pub fn private(secret: Secret) -> Self {
        Self {
            secret: Some(secret),
            ..Self::default()
        }
    }

    pub(crate) fn chunk_size(&self) -> usize {
        self.max_chunk_size.clamp(1, MAX_CHUNK_PLAINTEXT)
    }
}
