//! How a file of a given size is cut into chunks.
//!
//! Files of 0 bytes have no chunks. Files of 1 or 2 bytes have one chunk per
//! byte. Larger files have `max(3, ceil(size / max_chunk))` chunks whose sizes
//! differ by at most one byte (the first `size % count` chunks are one byte
//! longer). The layout is a pure function of the size, so encryption never
//! needs to look ahead to know where a chunk ends.

use std::ops::Range;

use crate::MIN_CHUNKS;

/// The chunk boundaries of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    size: u64,
    count: u64,
    base: u64,
    longer: u64,
}

impl Layout {
    /// The layout of a `size`-byte file with chunks of at most `max_chunk`
    /// (at least 1) bytes.
    pub fn new(size: u64, max_chunk: usize) -> Self {
        let max_chunk = (max_chunk as u64).max(1);
        let count = if size < MIN_CHUNKS {
            size
        } else {
            size.div_ceil(max_chunk).max(MIN_CHUNKS)
        };
        let (base, longer) = match count {
            0 => (0, 0),
            n => (size / n, size % n),
        };
        Self {
            size,
            count,
            base,
            longer,
        }
    }

    /// File size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of chunks.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Length of chunk `i`.
    pub fn chunk_len(&self, i: u64) -> u64 {
        self.base + u64::from(i < self.longer)
    }

    /// Byte range of chunk `i` in the file.
    pub fn chunk_range(&self, i: u64) -> Range<u64> {
        let start = i * self.base + i.min(self.longer);
        start..start + self.chunk_len(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_files() {
        assert_eq!(Layout::new(0, 10).count(), 0);
        assert_eq!(Layout::new(1, 10).count(), 1);
        assert_eq!(Layout::new(2, 10).count(), 2);
        assert_eq!(Layout::new(3, 10).count(), 3);
        assert_eq!(Layout::new(30, 10).count(), 3);
        assert_eq!(Layout::new(31, 10).count(), 4);
    }

    proptest! {
        #[test]
        fn chunks_tile_the_file(size in 0u64..100_000, max in 1usize..5_000) {
            let l = Layout::new(size, max);
            let mut next = 0;
            for i in 0..l.count() {
                let r = l.chunk_range(i);
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end - r.start <= max as u64);
                prop_assert!(r.end > r.start);
                prop_assert!(l.chunk_len(0) - l.chunk_len(i) <= 1);
                next = r.end;
            }
            prop_assert_eq!(next, size);
            if size >= MIN_CHUNKS { prop_assert!(l.count() >= MIN_CHUNKS); }
        }
    }
}
