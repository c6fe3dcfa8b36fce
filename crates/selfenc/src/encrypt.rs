//! Streaming, parallel encryption.
//!
//! The reader is consumed in batches of a few chunks. While one batch is
//! hashed and encrypted on all cores, the next is read; encrypted chunks go to
//! the caller's sink in file order. Chunk *i* needs the hash of chunk *i+1*,
//! so the last chunk of a batch waits for the next batch, and chunk 0 (which
//! needs the hash of the last chunk) is kept until the end. Memory is thus
//! about three batches plus one chunk, whatever the file size.

use std::io::Read;

use rayon::prelude::*;
use safe_protocol::{Chunk, XorName};

use crate::crypto::{chunk_key, seal_chunk};
use crate::datamap::{ChunkInfo, DataMap};
use crate::error::{BoxError, EncryptError};
use crate::layout::Layout;
use crate::{Config, Secret};

/// Chunks per batch for each core: enough to keep every core busy while the
/// next batch is read.
const BATCH_PER_THREAD: usize = 2;

/// A chunk read and hashed, waiting for its next neighbour's hash.
struct Plain {
    index: usize,
    bytes: Vec<u8>,
}

/// Self-encrypts exactly `size` bytes from `reader`, handing each encrypted
/// chunk to `sink` in file order, and returns the file's data map.
///
/// Fails if the reader yields fewer or more than `size` bytes.
pub fn encrypt_stream<R: Read + Send>(
    mut reader: R,
    size: u64,
    config: &Config,
    sink: &mut dyn FnMut(Chunk) -> Result<(), BoxError>,
) -> Result<DataMap, EncryptError> {
    let layout = Layout::new(size, config.chunk_size());
    let count = layout.count() as usize;
    if count == 0 {
        expect_end(&mut reader, size)?;
        return Ok(DataMap::empty());
    }
    let secret = config.secret.as_ref();
    let batch = rayon::current_num_threads().max(1) * BATCH_PER_THREAD;
    let mut hashes = vec![XorName([0; 32]); count];
    let mut infos: Vec<Option<ChunkInfo>> = vec![None; count];
    let mut first: Option<Plain> = None;
    let mut waiting: Option<Plain> = None;
    let mut next = 0usize;
    let mut current = read_batch(&mut reader, &layout, &mut next, batch)?;

    while !current.is_empty() {
        let batch_hashes: Vec<XorName> = current
            .par_iter()
            .map(|p| XorName::from_content(&p.bytes))
            .collect();
        for (p, h) in current.iter().zip(batch_hashes) {
            hashes[p.index] = h;
        }
        // Everything whose next neighbour's hash is now known can go.
        let mut ready: Vec<Plain> = waiting.take().into_iter().collect();
        for p in current {
            if p.index == 0 {
                first = Some(p);
            } else {
                ready.push(p);
            }
        }
        if next < count && ready.last().is_some_and(|p| p.index + 1 == next) {
            waiting = ready.pop();
        }
        let hashes_ref = &hashes;
        let (read, sealed) = rayon::join(
            || read_batch(&mut reader, &layout, &mut next, batch),
            || {
                ready
                    .par_iter()
                    .map(|p| seal(p, hashes_ref, secret))
                    .collect::<Vec<_>>()
            },
        );
        for sealed in sealed {
            let (index, info, chunk) = sealed?;
            infos[index] = Some(info);
            sink(chunk).map_err(EncryptError::Sink)?;
        }
        current = read?;
    }
    expect_end(&mut reader, size)?;
    debug_assert!(waiting.is_none(), "the last chunk never waits");
    if let Some(p) = first.take() {
        let (index, info, chunk) = seal(&p, &hashes, secret)?;
        infos[index] = Some(info);
        sink(chunk).map_err(EncryptError::Sink)?;
    }
    let chunks: Option<Vec<ChunkInfo>> = infos.into_iter().collect();
    let chunks = chunks.ok_or(EncryptError::Internal("a chunk was never encrypted"))?;
    DataMap::new(chunks).map_err(|_| EncryptError::Internal("chunk sizes out of bounds"))
}

/// Self-encrypts an in-memory buffer; see [`encrypt_stream`].
pub fn encrypt_bytes(
    data: &[u8],
    config: &Config,
    sink: &mut dyn FnMut(Chunk) -> Result<(), BoxError>,
) -> Result<DataMap, EncryptError> {
    encrypt_stream(data, data.len() as u64, config, sink)
}

fn seal(
    p: &Plain,
    hashes: &[XorName],
    secret: Option<&Secret>,
) -> Result<(usize, ChunkInfo, Chunk), EncryptError> {
    let n = hashes.len();
    let i = p.index;
    let key = chunk_key(
        &hashes[(i + n - 1) % n],
        &hashes[i],
        &hashes[(i + 1) % n],
        secret,
    );
    let chunk = Chunk::new(seal_chunk(&p.bytes, &key))?;
    let info = ChunkInfo {
        src_hash: hashes[i],
        dst_hash: *chunk.name(),
        size: p.bytes.len() as u32,
    };
    Ok((i, info, chunk))
}

/// Reads up to `max` whole chunks starting at chunk `*next`.
fn read_batch<R: Read>(
    reader: &mut R,
    layout: &Layout,
    next: &mut usize,
    max: usize,
) -> Result<Vec<Plain>, EncryptError> {
    let mut out = Vec::with_capacity(max);
    while out.len() < max && (*next as u64) < layout.count() {
        let range = layout.chunk_range(*next as u64);
        let mut bytes = vec![0u8; (range.end - range.start) as usize];
        let mut filled = 0;
        while filled < bytes.len() {
            match reader.read(&mut bytes[filled..]) {
                Ok(0) => {
                    return Err(EncryptError::InputShorter {
                        expected: layout.size(),
                        actual: range.start + filled as u64,
                    });
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        out.push(Plain {
            index: *next,
            bytes,
        });
        *next += 1;
    }
    Ok(out)
}

fn expect_end<R: Read>(reader: &mut R, size: u64) -> Result<(), EncryptError> {
    let mut probe = [0u8; 1];
    loop {
        match reader.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(EncryptError::InputLonger { expected: size }),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}
