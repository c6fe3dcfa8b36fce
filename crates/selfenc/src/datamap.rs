//! The data map: what it takes to rebuild a file from its chunks.

use std::ops::Range;

use safe_protocol::{XorName, codec};
use serde::{Deserialize, Serialize};

use crate::MAX_CHUNK_PLAINTEXT;
use crate::error::DecryptError;

/// Format version of an encoded data map level.
pub const DATA_MAP_FORMAT: u8 = 1;

/// Largest encoded data map level we will decode: 256 MiB, about 3.5 million
/// chunks, a 3.5 TiB file. A data map costs about 70 bytes of memory per MiB
/// of file.
pub const MAX_DATA_MAP_BYTES: usize = 256 * 1024 * 1024;

/// One chunk of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    /// BLAKE3 of the chunk's plaintext: feeds the keys of it and its
    /// neighbours, and checks the decrypted result.
    pub src_hash: XorName,
    /// BLAKE3 of the stored (encrypted) bytes: the chunk's network name.
    pub dst_hash: XorName,
    /// Plaintext length in bytes.
    pub size: u32,
}

/// The chunks of a file, in order, with their offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataMap {
    chunks: Vec<ChunkInfo>,
    /// `offsets[i]` is where chunk `i` starts; the last entry is the size.
    offsets: Vec<u64>,
}

impl DataMap {
    /// A data map over `chunks`, checked for sane sizes.
    pub fn new(chunks: Vec<ChunkInfo>) -> Result<Self, DecryptError> {
        let mut offsets = Vec::with_capacity(chunks.len() + 1);
        let mut at = 0u64;
        offsets.push(0);
        for (i, c) in chunks.iter().enumerate() {
            if c.size == 0 || c.size as usize > MAX_CHUNK_PLAINTEXT {
                return Err(DecryptError::MalformedDataMap(format!(
                    "chunk {i} claims {} bytes of plaintext",
                    c.size
                )));
            }
            at += u64::from(c.size);
            offsets.push(at);
        }
        Ok(Self { chunks, offsets })
    }

    /// The map of the empty file.
    pub fn empty() -> Self {
        Self {
            chunks: Vec::new(),
            offsets: vec![0],
        }
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// The chunks in file order.
    pub fn chunks(&self) -> &[ChunkInfo] {
        &self.chunks
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// True for the empty file.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Byte range of chunk `i` in the file.
    pub fn chunk_range(&self, i: usize) -> Range<u64> {
        self.offsets[i]..self.offsets[i + 1]
    }

    /// Indices of the chunks holding any byte of `range` (clamped to the file).
    pub fn chunks_covering(&self, range: Range<u64>) -> Range<usize> {
        let end = range.end.min(self.size());
        if range.start >= end {
            return 0..0;
        }
        // Index of the last offset ≤ x is the chunk containing byte x.
        let first = self.offsets.partition_point(|&o| o <= range.start) - 1;
        let last = self.offsets.partition_point(|&o| o < end) - 1;
        first..last + 1
    }

    /// The part of chunk `i`'s plaintext `plain` that falls in `range`.
    pub fn part_in_range<'a>(&self, i: usize, plain: &'a [u8], range: Range<u64>) -> &'a [u8] {
        let chunk = self.chunk_range(i);
        let from = range.start.clamp(chunk.start, chunk.end) - chunk.start;
        let to = range.end.clamp(chunk.start, chunk.end) - chunk.start;
        let to = (to as usize).min(plain.len());
        &plain[(from as usize).min(to)..to]
    }

    /// Plaintext hashes of the chunks before and after chunk `i`, wrapping.
    pub(crate) fn neighbours(&self, i: usize) -> (&XorName, &XorName) {
        let n = self.chunks.len();
        (
            &self.chunks[(i + n - 1) % n].src_hash,
            &self.chunks[(i + 1) % n].src_hash,
        )
    }

    /// Encodes this map as one level of a nested data map.
    pub(crate) fn encode_level(&self) -> Result<Vec<u8>, safe_protocol::CodecError> {
        codec::encode(DATA_MAP_FORMAT, &self.chunks)
    }

    /// Decodes one level written by [`DataMap::encode_level`].
    pub(crate) fn decode_level(bytes: &[u8]) -> Result<Self, DecryptError> {
        let chunks = codec::decode(DATA_MAP_FORMAT, bytes, MAX_DATA_MAP_BYTES)
            .map_err(|e| DecryptError::MalformedDataMap(e.to_string()))?;
        Self::new(chunks)
    }

    pub(crate) fn into_chunks(self) -> Vec<ChunkInfo> {
        self.chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(sizes: &[u32]) -> DataMap {
        DataMap::new(
            sizes
                .iter()
                .map(|&size| ChunkInfo {
                    src_hash: XorName([0; 32]),
                    dst_hash: XorName([0; 32]),
                    size,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn covering_chunks() {
        let m = map(&[10, 10, 10]);
        assert_eq!(m.size(), 30);
        assert_eq!(m.chunks_covering(0..30), 0..3);
        assert_eq!(m.chunks_covering(0..1), 0..1);
        assert_eq!(m.chunks_covering(9..11), 0..2);
        assert_eq!(m.chunks_covering(10..20), 1..2);
        assert_eq!(m.chunks_covering(29..100), 2..3);
        assert_eq!(m.chunks_covering(30..40), 0..0);
        assert_eq!(m.chunks_covering(5..5), 0..0);
    }

    #[test]
    fn rejects_zero_and_oversized_chunks() {
        let bad = |size| ChunkInfo {
            src_hash: XorName([0; 32]),
            dst_hash: XorName([0; 32]),
            size,
        };
        assert!(DataMap::new(vec![bad(0)]).is_err());
        assert!(DataMap::new(vec![bad(MAX_CHUNK_PLAINTEXT as u32 + 1)]).is_err());
    }
}
