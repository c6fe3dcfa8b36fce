//! Root chunks: one small chunk that names a whole file.
//!
//! A file's data map is stored in a root chunk if its encoding is at most
//! [`MAX_ROOT_MAP_BYTES`]. A larger map is encoded and self-encrypted like any
//! file, giving a smaller map one *depth* up; this repeats until the map fits.
//! Reading walks back down: decrypt the map at depth *d* to get the encoded
//! map at depth *d-1*, until depth 0 is the file's own map.
//!
//! In private mode the root is additionally sealed with a key derived from the
//! secret, so the stored root reveals neither the plaintext hashes nor the
//! chunk list.

use safe_protocol::{Chunk, CodecError, MAX_CHUNK_SIZE, codec};
use serde::{Deserialize, Serialize};

use crate::crypto::{open, root_key, seal};
use crate::datamap::{ChunkInfo, DataMap};
use crate::decrypt::{ChunkSource, decrypt_to_vec};
use crate::encrypt::encrypt_bytes;
use crate::error::{BoxError, DecryptError, EncryptError};
use crate::{Config, Secret};

/// Format version of a root chunk.
pub const ROOT_FORMAT: u8 = 1;

/// Largest encoded data map kept directly in a root chunk (4 KiB, about 60
/// chunks: files up to about 60 MiB need no nesting).
pub const MAX_ROOT_MAP_BYTES: usize = 4096;

/// Deepest nesting accepted. Each level divides the map by about 15 000, so
/// real files never need more than three.
pub const MAX_DEPTH: u8 = 8;

/// Flag byte in front of the sealed form of a private root.
const SEALED_FLAG: u8 = 0;

#[derive(Serialize, Deserialize)]
enum RootChunk {
    /// A convergent file's map, `depth` levels above the file.
    Public { depth: u8, chunks: Vec<ChunkInfo> },
    /// A private file's root: the encoded `Public` form, sealed.
    Sealed(Vec<u8>),
}

/// An opened root: a data map `depth` levels above the file's own.
#[derive(Debug, Clone)]
pub struct Root {
    /// Levels of nesting left to undo (0: `map` is the file's map).
    pub depth: u8,
    /// The map at that depth.
    pub map: DataMap,
    /// Whether the file is private (its chunks need the secret).
    pub private: bool,
}

impl Root {
    /// Decodes the map one level down from the plaintext of this level.
    pub fn descend(&self, level_plaintext: &[u8]) -> Result<Root, DecryptError> {
        if self.depth == 0 {
            return Err(DecryptError::MalformedDataMap(
                "no deeper level to descend to".into(),
            ));
        }
        Ok(Root {
            depth: self.depth - 1,
            map: DataMap::decode_level(level_plaintext)?,
            private: self.private,
        })
    }
}

/// Stores `map` (nesting as needed, handing extra chunks to `sink`) and
/// returns the root chunk, whose name is the file's address.
pub fn pack_root(
    map: DataMap,
    config: &Config,
    sink: &mut dyn FnMut(Chunk) -> Result<(), BoxError>,
) -> Result<Chunk, EncryptError> {
    let mut depth = 0u8;
    let mut map = map;
    loop {
        let level = map.encode_level()?;
        if level.len() <= MAX_ROOT_MAP_BYTES {
            let public = codec::encode(
                ROOT_FORMAT,
                &RootChunk::Public {
                    depth,
                    chunks: map.into_chunks(),
                },
            )?;
            let bytes = match &config.secret {
                None => public,
                Some(secret) => codec::encode(
                    ROOT_FORMAT,
                    &RootChunk::Sealed(seal(SEALED_FLAG, &public, &root_key(secret))),
                )?,
            };
            return Ok(Chunk::new(bytes)?);
        }
        if depth == MAX_DEPTH {
            return Err(EncryptError::TooDeep);
        }
        map = encrypt_bytes(&level, config, sink)?;
        depth += 1;
    }
}

fn malformed(e: CodecError) -> DecryptError {
    DecryptError::MalformedDataMap(format!("root chunk: {e}"))
}

/// Opens a root chunk's bytes. A private root needs `secret`.
pub fn open_root(bytes: &[u8], secret: Option<&Secret>) -> Result<Root, DecryptError> {
    let (root, private) = match codec::decode(ROOT_FORMAT, bytes, MAX_CHUNK_SIZE)
        .map_err(malformed)?
    {
        RootChunk::Sealed(sealed) => {
            let secret = secret.ok_or(DecryptError::SecretNeeded)?;
            let plain = open(sealed, &root_key(secret)).map_err(|_| DecryptError::WrongSecret)?;
            let inner = plain
                .split_last()
                .filter(|(flag, _)| **flag == SEALED_FLAG)
                .map(|(_, rest)| rest)
                .ok_or(DecryptError::WrongSecret)?;
            (
                codec::decode(ROOT_FORMAT, inner, MAX_CHUNK_SIZE).map_err(malformed)?,
                true,
            )
        }
        public => (public, false),
    };
    match root {
        RootChunk::Public { depth, chunks } if depth <= MAX_DEPTH => Ok(Root {
            depth,
            map: DataMap::new(chunks)?,
            private,
        }),
        RootChunk::Public { depth, .. } => Err(DecryptError::MalformedDataMap(format!(
            "root claims {depth} levels of nesting, at most {MAX_DEPTH} allowed"
        ))),
        RootChunk::Sealed(_) => Err(DecryptError::MalformedDataMap(
            "sealed root inside a sealed root".into(),
        )),
    }
}

/// Opens a root chunk and undoes all nesting, fetching the intermediate
/// levels from `source`: the file's own data map.
pub fn resolve_root(
    bytes: &[u8],
    secret: Option<&Secret>,
    source: &dyn ChunkSource,
) -> Result<(DataMap, bool), DecryptError> {
    let mut root = open_root(bytes, secret)?;
    let chunk_secret = if root.private { secret } else { None };
    while root.depth > 0 {
        let level = decrypt_to_vec(&root.map, chunk_secret, source)?;
        root = root.descend(&level)?;
    }
    Ok((root.map, root.private))
}
