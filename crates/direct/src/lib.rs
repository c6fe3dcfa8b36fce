//! Chunk file I/O that bypasses the kernel's page cache where it can.
//!
//! A crate of its own because three layers need the same bytes on the same
//! boundaries: the client's local chunk store writes chunk files with it,
//! the node's segment files use its aligned buffers and `O_DIRECT` opens,
//! and the network codec places received chunk bytes on an [`ALIGN`]
//! boundary so the node can write them without copying. Declaring the
//! alignment once here keeps the three in step; the crate depends on
//! nothing of `safe`, so none of them has to depend on another for it.
//!
//! Chunk files are written once and read rarely, so caching them only costs:
//! copying a MiB into the page cache (allocating pages for it) and writing
//! it back later costs more CPU than the disk transfer itself. Measured on
//! the 2-core benchmark VM (ext4 on virtio): `dd bs=1M conv=fsync` of 2 GiB
//! spends 4.4 s of system time buffered and 0.34 s with `oflag=direct`; a
//! cold buffered read of the same file 3.7 s, a direct one 0.14 s.
//!
//! So on Linux, files of at least [`DIRECT_MIN`] bytes are written and read
//! with `O_DIRECT`: the bytes are written in whole blocks (in place when
//! they start block-aligned, as chunks received from the network do; the
//! last partial block, or everything otherwise, copied into an aligned
//! buffer padded with zeros), and the file is truncated back to its real
//! length. A filesystem that refuses `O_DIRECT` (tmpfs before Linux
//! 6.6, some network filesystems) gets ordinary buffered I/O, decided once
//! per [`Direct`]; any other failure of the direct path retries that one
//! file buffered, so bytes are never lost to it.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

/// Offsets, lengths and buffer addresses of direct I/O are multiples of
/// this (the largest logical block size in common use).
pub const ALIGN: usize = 4096;

/// Files smaller than this go through the page cache: for a few blocks the
/// alignment copy saves nothing.
pub const DIRECT_MIN: usize = 64 * 1024;

/// An aligned buffer could not be placed: the allocator returned memory
/// whose block boundary is out of reach (it does not happen with the
/// standard allocator, but is reported rather than assumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot place a buffer on a {ALIGN}-byte boundary")]
pub struct AlignError;

impl From<AlignError> for std::io::Error {
    fn from(e: AlignError) -> Self {
        std::io::Error::other(e)
    }
}

/// Whether a store's filesystem accepts `O_DIRECT` (cleared on the first
/// refusal). One per store: a store lives on one filesystem.
#[derive(Debug)]
pub struct Direct(AtomicBool);

impl Default for Direct {
    fn default() -> Self {
        Self::new()
    }
}

impl Direct {
    /// Starts by trying direct I/O where the platform has it.
    pub fn new() -> Self {
        Self(AtomicBool::new(cfg!(target_os = "linux")))
    }

    fn wanted(&self, len: usize) -> bool {
        len >= DIRECT_MIN && self.0.load(Ordering::Relaxed)
    }

    /// Notes a failed direct write or read (retried buffered by the
    /// caller). `EINVAL` means this filesystem takes `O_DIRECT` at open but
    /// not the I/O itself (a block size over 4 KiB, some FUSE filesystems):
    /// stop trying, rather than copy and fail once per chunk.
    fn failed(&self, path: &Path, what: &str, e: &std::io::Error) {
        tracing::debug!(
            "{}: direct {what} failed ({e}), retrying buffered",
            path.display()
        );
        if refused(e) {
            self.0.store(false, Ordering::Relaxed);
        }
    }

    /// Opens `path` with `options` plus `O_DIRECT`, or `None` when the
    /// platform or filesystem has no direct I/O (a refusal is remembered).
    fn open(
        &self,
        options: &mut fs::OpenOptions,
        path: &Path,
    ) -> std::io::Result<Option<fs::File>> {
        let f = open_direct(options, path)?;
        if f.is_none() {
            self.0.store(false, Ordering::Relaxed);
        }
        Ok(f)
    }

    /// Creates (or truncates) `path` holding exactly `bytes`, returning the
    /// open file for the caller to sync.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<fs::File> {
        if self.wanted(bytes.len()) {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            if let Some(mut f) = self.open(&mut options, path)? {
                let written =
                    write_direct(&mut f, bytes).and_then(|()| f.set_len(bytes.len() as u64));
                match written {
                    Ok(()) => return Ok(f),
                    Err(e) => self.failed(path, "write", &e),
                }
            }
        }
        let mut f = fs::File::create(path)?;
        f.write_all(bytes)?;
        Ok(f)
    }

    /// Reads `path` whole, but never more than `limit + 1` bytes (so a
    /// caller checking a size limit sees an oversized file as such).
    pub fn read(&self, path: &Path, limit: usize) -> std::io::Result<Bytes> {
        let mut file = fs::File::open(path)?;
        let len = file.metadata()?.len();
        if usize::try_from(len).is_ok_and(|len| len <= limit && self.wanted(len)) {
            // A second handle, with O_DIRECT; its own length is the one
            // read (the path may have been replaced in between). Any
            // failure here falls back to the handle already open.
            let direct = self
                .open(fs::OpenOptions::new().read(true), path)
                .and_then(|f| match f {
                    Some(f) => {
                        let len = usize::try_from(f.metadata()?.len()).unwrap_or(usize::MAX);
                        if len > limit {
                            return Ok(None);
                        }
                        read_direct(f, len).map(Some)
                    }
                    None => Ok(None),
                });
            match direct {
                Ok(Some(bytes)) => return Ok(bytes),
                Ok(None) => {}
                Err(e) => self.failed(path, "read", &e),
            }
        }
        let mut bytes = Vec::new();
        (&mut file).take(limit as u64 + 1).read_to_end(&mut bytes)?;
        Ok(bytes.into())
    }
}

/// Opens `path` with `options` plus `O_DIRECT`, or `None` when the
/// platform or filesystem has no direct I/O (the caller then opens it
/// buffered). Other errors (not found, permissions) are returned.
pub fn open_direct(
    options: &mut fs::OpenOptions,
    path: &Path,
) -> std::io::Result<Option<fs::File>> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match options.custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!("{}: no O_DIRECT here, using buffered I/O", path.display());
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (options, path);
        Ok(None)
    }
}

/// True if `e` says direct I/O is not supported for this file or buffer
/// (`EINVAL`: a block size over 4 KiB, some FUSE filesystems).
pub fn refused(e: &std::io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        e.raw_os_error() == Some(libc::EINVAL)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = e;
        false
    }
}

/// Writes `bytes` to a file opened with `O_DIRECT`, padded with zeros to
/// whole blocks. Bytes that already start on a block boundary (the network
/// codec receives chunks that way) are written where they are, and only the
/// last partial block is copied; others are copied into an aligned buffer.
pub fn write_direct(f: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let (blocks, tail) = if bytes.as_ptr().align_offset(ALIGN) == 0 {
        bytes.split_at(bytes.len() / ALIGN * ALIGN)
    } else {
        (&[][..], bytes)
    };
    f.write_all(blocks)?;
    if !tail.is_empty() {
        let aligned = Aligned::copy_of(tail)?;
        f.write_all(aligned.blocks())?;
    }
    Ok(())
}

/// Reads up to `len` bytes of a file opened with `O_DIRECT`.
fn read_direct(mut f: fs::File, len: usize) -> std::io::Result<Bytes> {
    let mut aligned = Aligned::zeroed(len)?;
    let mut filled = 0;
    let blocks = aligned.blocks_mut();
    while filled < len {
        // After a short read that is not a whole number of blocks the next
        // read would be misaligned and fail, sending the caller to the
        // buffered path; files only end short at EOF.
        match f.read(&mut blocks[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(aligned.into_bytes(filled.min(len)))
}

/// A block-aligned run of whole blocks inside an ordinary `Vec` (found by
/// over-allocating one block, so no unsafe code is needed).
pub struct Aligned {
    buf: Vec<u8>,
    offset: usize,
}

impl Aligned {
    fn with_len(len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Result<Self, AlignError> {
        let padded = len.div_ceil(ALIGN).max(1) * ALIGN;
        let mut buf: Vec<u8> = Vec::with_capacity(padded + ALIGN);
        let offset = buf.as_ptr().align_offset(ALIGN);
        if offset >= ALIGN {
            return Err(AlignError);
        }
        buf.resize(offset, 0);
        fill(&mut buf);
        // Capacity was reserved up front, so the buffer never moves.
        buf.resize(offset + padded, 0);
        Ok(Self { buf, offset })
    }

    /// `bytes` followed by zeros up to a whole block.
    pub fn copy_of(bytes: &[u8]) -> Result<Self, AlignError> {
        Self::with_len(bytes.len(), |buf| buf.extend_from_slice(bytes))
    }

    /// Zeros, `len` rounded up to whole blocks.
    pub fn zeroed(len: usize) -> Result<Self, AlignError> {
        Self::with_len(len, |_| {})
    }

    /// The whole blocks.
    pub fn blocks(&self) -> &[u8] {
        &self.buf[self.offset..]
    }

    /// The whole blocks, to fill.
    pub fn blocks_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.offset..]
    }

    /// The first `len` bytes of the blocks, without copying them.
    fn into_bytes(self, len: usize) -> Bytes {
        self.slice(0, len)
    }

    /// `len` bytes of the blocks from `start`, without copying them.
    /// Panics if that runs past the blocks.
    pub fn slice(self, start: usize, len: usize) -> Bytes {
        let from = self.offset + start;
        Bytes::from(self.buf).slice(from..from + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_every_size_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let direct = Direct::new();
        for len in [
            0,
            1,
            4095,
            4096,
            DIRECT_MIN - 1,
            DIRECT_MIN,
            DIRECT_MIN + 1,
            1 << 20,
            (1 << 20) + 7,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            direct.write(&path, &bytes).unwrap().sync_all().unwrap();
            assert_eq!(
                fs::metadata(&path).unwrap().len(),
                len as u64,
                "size of {len}"
            );
            assert_eq!(fs::read(&path).unwrap(), bytes, "buffered read of {len}");
            assert_eq!(direct.read(&path, 2 << 20).unwrap(), bytes, "read of {len}");
            // Rewriting a longer file with a shorter one leaves no tail.
            direct.write(&path, &bytes[..len / 2]).unwrap();
            assert_eq!(direct.read(&path, 2 << 20).unwrap(), &bytes[..len / 2]);
        }
    }

    #[test]
    fn block_aligned_bytes_are_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let direct = Direct::new();
        for len in [DIRECT_MIN, DIRECT_MIN + 1, (1 << 20) + 4095] {
            let source =
                Aligned::copy_of(&(0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
            let bytes = &source.blocks()[..len];
            assert_eq!(bytes.as_ptr().align_offset(ALIGN), 0);
            let path = dir.path().join(format!("a{len}"));
            direct.write(&path, bytes).unwrap();
            assert_eq!(fs::read(&path).unwrap(), bytes, "{len} bytes");
            // And from an unaligned start.
            direct.write(&path, &bytes[1..]).unwrap();
            assert_eq!(
                fs::read(&path).unwrap(),
                &bytes[1..],
                "{len} bytes, unaligned"
            );
        }
    }

    #[test]
    fn reads_stop_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let direct = Direct::new();
        let path = dir.path().join("big");
        let bytes = vec![5u8; 200 * 1024];
        direct.write(&path, &bytes).unwrap();
        assert_eq!(
            direct.read(&path, 100 * 1024).unwrap().len(),
            100 * 1024 + 1
        );
        assert_eq!(direct.read(&path, 200 * 1024).unwrap().len(), 200 * 1024);
    }
}
