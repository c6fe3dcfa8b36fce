//! Immutable chunks: bytes whose name is the BLAKE3 hash of those bytes.
//!
//! A chunk can only be built through a constructor that hashes or checks its
//! bytes, so holding a [`Chunk`] means holding bytes that match their name and
//! fit the size limit. Every node and client re-checks what it receives.

use bytes::Bytes;

use crate::xorname::XorName;

/// Largest chunk in bytes (1 MiB of plaintext plus room for the encryption
/// header, the authentication tag and small stored structures such as data
/// maps). Anything larger is refused everywhere.
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024 + 4096;

/// An immutable, content-addressed piece of data.
#[derive(Clone, PartialEq, Eq)]
pub struct Chunk {
    name: XorName,
    bytes: Bytes,
}

/// Why some bytes are not a valid chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// Over [`MAX_CHUNK_SIZE`].
    #[error("chunk is {size} bytes, over the limit of {max}")]
    TooLarge {
        /// Size offered.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes do not hash to the name they were offered under.
    #[error("chunk {expected} has content hashing to {actual}")]
    HashMismatch {
        /// The name asked for.
        expected: XorName,
        /// The hash of the bytes received.
        actual: XorName,
    },
}

impl Chunk {
    /// A chunk holding `bytes`, named by their hash.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Self, ChunkError> {
        let bytes = bytes.into();
        check_size(bytes.len())?;
        Ok(Self {
            name: XorName::from_content(&bytes),
            bytes,
        })
    }

    /// Accepts `bytes` as the chunk called `name` only if they hash to it.
    pub fn verified(name: XorName, bytes: impl Into<Bytes>) -> Result<Self, ChunkError> {
        let bytes = bytes.into();
        check_size(bytes.len())?;
        let actual = XorName::from_content(&bytes);
        if actual != name {
            return Err(ChunkError::HashMismatch {
                expected: name,
                actual,
            });
        }
        Ok(Self { name, bytes })
    }

    /// The chunk's name (hash of its bytes).
    pub fn name(&self) -> &XorName {
        &self.name
    }

    /// The stored bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Gives up the bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Number of stored bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for the empty chunk.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunk({:?}, {} bytes)", self.name, self.bytes.len())
    }
}

fn check_size(size: usize) -> Result<(), ChunkError> {
    if size > MAX_CHUNK_SIZE {
        return Err(ChunkError::TooLarge {
            size,
            max: MAX_CHUNK_SIZE,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_hash_and_verification_checks_it() {
        let c = Chunk::new(b"hello".to_vec()).unwrap();
        assert_eq!(*c.name(), XorName::from_content(b"hello"));
        assert!(Chunk::verified(*c.name(), b"hello".to_vec()).is_ok());
        let err = Chunk::verified(*c.name(), b"hellp".to_vec()).unwrap_err();
        assert!(matches!(err, ChunkError::HashMismatch { .. }));
    }

    #[test]
    fn size_limit_is_inclusive() {
        assert!(Chunk::new(vec![0u8; MAX_CHUNK_SIZE]).is_ok());
        assert_eq!(
            Chunk::new(vec![0u8; MAX_CHUNK_SIZE + 1]).unwrap_err(),
            ChunkError::TooLarge {
                size: MAX_CHUNK_SIZE + 1,
                max: MAX_CHUNK_SIZE
            }
        );
    }
}
