//! Decryption: one chunk at a time (for callers that fetch chunks their own
//! way, such as the network client) or a whole byte range through a
//! [`ChunkSource`], in parallel.

use std::io::Write;
use std::ops::Range;

use bytes::Bytes;
use rayon::prelude::*;
use safe_protocol::XorName;

use crate::Secret;
use crate::crypto::{chunk_key, open_chunk};
use crate::datamap::DataMap;
use crate::error::{DecryptError, FetchError};

/// Chunks fetched and decrypted at once per core by [`decrypt_range`].
const BATCH_PER_THREAD: usize = 2;

/// Where [`decrypt_range`] gets stored chunks from. Implemented for any
/// `Fn(&XorName) -> Result<Bytes, FetchError> + Sync`.
pub trait ChunkSource: Sync {
    /// The stored bytes of the chunk called `name` (unverified: the caller
    /// checks them).
    fn fetch(&self, name: &XorName) -> Result<Bytes, FetchError>;
}

impl<F> ChunkSource for F
where
    F: Fn(&XorName) -> Result<Bytes, FetchError> + Sync,
{
    fn fetch(&self, name: &XorName) -> Result<Bytes, FetchError> {
        self(name)
    }
}

/// Verifies and decrypts chunk `index` of `map` from its stored bytes,
/// returning its plaintext. Decrypts in place: pass a uniquely owned buffer
/// (`Vec::from(bytes)` of an unshared `Bytes` does not copy).
///
/// Checks, in order: the stored bytes hash to the chunk's name; they
/// authenticate under the chunk's key; they decompress to the recorded size;
/// the plaintext hashes to the recorded plaintext hash.
pub fn decrypt_chunk(
    map: &DataMap,
    index: usize,
    stored: Vec<u8>,
    secret: Option<&Secret>,
) -> Result<Vec<u8>, DecryptError> {
    let info = &map.chunks()[index];
    let corrupt = |reason| DecryptError::CorruptChunk {
        index,
        name: info.dst_hash,
        reason,
    };
    if XorName::from_content(&stored) != info.dst_hash {
        return Err(corrupt("content does not match its name"));
    }
    let (prev, next) = map.neighbours(index);
    let key = chunk_key(prev, &info.src_hash, next, secret);
    let plain = open_chunk(stored, &key, info.size as usize).map_err(corrupt)?;
    if XorName::from_content(&plain) != info.src_hash {
        return Err(corrupt("plaintext does not match the data map"));
    }
    Ok(plain)
}

/// Writes bytes `range` of the file described by `map` to `out`, fetching
/// and decrypting only the chunks that cover it, several at a time on all
/// cores. Returns the number of bytes written.
///
/// The range is clamped to the end of the file; a range starting past the
/// end is an error (an empty range at the very end is not).
pub fn decrypt_range(
    map: &DataMap,
    range: Range<u64>,
    secret: Option<&Secret>,
    source: &dyn ChunkSource,
    out: &mut dyn Write,
) -> Result<u64, DecryptError> {
    if range.start > map.size() {
        return Err(DecryptError::RangeOutOfBounds {
            start: range.start,
            size: map.size(),
        });
    }
    let end = range.end.min(map.size());
    let indices = map.chunks_covering(range.start..end);
    let batch = rayon::current_num_threads().max(1) * BATCH_PER_THREAD;
    let all: Vec<usize> = indices.collect();
    let mut written = 0u64;
    for group in all.chunks(batch) {
        let plains: Vec<Result<Vec<u8>, DecryptError>> = group
            .par_iter()
            .map(|&i| {
                let name = map.chunks()[i].dst_hash;
                let stored = source
                    .fetch(&name)
                    .map_err(|e| DecryptError::from_fetch(i, name, e))?;
                decrypt_chunk(map, i, Vec::from(stored), secret)
            })
            .collect();
        for (&i, plain) in group.iter().zip(plains) {
            let plain = plain?;
            let part = map.part_in_range(i, &plain, range.start..end);
            out.write_all(part)?;
            written += part.len() as u64;
        }
    }
    out.flush()?;
    Ok(written)
}

/// Decrypts a whole file into memory.
pub fn decrypt_to_vec(
    map: &DataMap,
    secret: Option<&Secret>,
    source: &dyn ChunkSource,
) -> Result<Vec<u8>, DecryptError> {
    let mut out = Vec::with_capacity(usize::try_from(map.size()).unwrap_or(0));
    decrypt_range(map, 0..map.size(), secret, source, &mut out)?;
    Ok(out)
}
