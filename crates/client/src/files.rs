//! Files on a [`ChunkStore`]: put a file, get a file or a byte range of it.
//!
//! Putting runs self-encryption on a blocking thread (which itself uses all
//! cores) and streams the chunks through a bounded channel to the store, with
//! a bounded number of puts in flight. The root chunk goes last, so an address
//! is never handed out before everything under it is stored.
//!
//! Getting fetches the root, undoes any nesting of the data map, then fetches
//! the chunks covering the range with a bounded number in flight, decrypts
//! them in parallel and writes them in order.

use std::io::{Read, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use safe_protocol::{Address, Chunk, DataKind, XorName};
use safe_selfenc::{
    Config, DataMap, DecryptError, EncryptError, Root, Secret, decrypt_chunk, encrypt_stream,
    open_root, pack_root,
};
use tokio::sync::mpsc;

use crate::store::{ChunkStore, StoreError};

/// Encrypted chunks waiting between the encryptor and the store (1 MiB each
/// at most): bounds memory while the store is slower than encryption.
pub const PUT_QUEUE_CHUNKS: usize = 8;
/// Chunk puts in flight at once.
pub const PUT_CONCURRENCY: usize = 8;
/// Chunk gets in flight (and decrypted chunks held) at once.
pub const GET_CONCURRENCY: usize = 8;
/// Largest input read from a pipe or standard input. Self-encryption needs
/// the size before it starts, so such input is first copied to an
/// unnamed temporary file (in `$TMPDIR`, which may be memory-backed: point
/// it at a disk for large input), never held in memory. A full temporary
/// directory fails the put with its own error and frees the space.
pub const MAX_SPOOL_BYTES: u64 = 64 << 30;

/// What a put stored.
#[derive(Clone, Debug)]
pub struct PutReport {
    /// The file's address.
    pub address: Address,
    /// File size in bytes.
    pub size: u64,
    /// Chunks written, the root and any nested data map chunks included.
    pub chunks: u64,
    /// Bytes of all those chunks.
    pub stored_bytes: u64,
    /// Nanos paid to store it (0 on a network that does not charge, or
    /// when every chunk was stored already).
    pub paid_nanos: u64,
}

/// A [`ChunkStore`] that keeps only the names of what is put, in order:
/// the first pass of a paid upload, which learns what it will store (and
/// so what to pay for) before storing anything.
#[derive(Default)]
pub struct Names(std::sync::Mutex<Vec<XorName>>);

impl Names {
    /// The names put so far, in order; the list is emptied.
    pub fn take(&self) -> Vec<XorName> {
        self.0
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }
}

impl ChunkStore for Names {
    async fn put(&self, chunk: Chunk) -> Result<(), StoreError> {
        if let Ok(mut n) = self.0.lock() {
            n.push(*chunk.name());
        }
        Ok(())
    }

    async fn get(&self, name: XorName) -> Result<Chunk, StoreError> {
        Err(StoreError::NotFound(name))
    }
}

/// Why a put failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// The path is a directory.
    #[error("{0} is a directory; only single files can be put for now")]
    IsDirectory(String),
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Input from a pipe is larger than [`MAX_SPOOL_BYTES`].
    #[error(
        "{0} is larger than {MAX_SPOOL_BYTES} bytes, the most read from a pipe; store it as a file"
    )]
    TooLarge(String),
    /// Self-encryption failed.
    #[error(transparent)]
    Encrypt(EncryptError),
    /// The store refused a chunk.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a get failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// Nothing at the address.
    #[error("nothing found at {0} (its root chunk {name} is not stored)", name = .0.name)]
    NotFound(Address),
    /// The chunk the address names is damaged.
    #[error("root chunk {0} is corrupt: content does not match its name")]
    CorruptRoot(XorName),
    /// More than the caller will take into memory.
    #[error("{address} holds {size} bytes, more than the {max} asked for")]
    TooLarge {
        /// The address.
        address: Address,
        /// Its size.
        size: u64,
        /// The most the caller would take.
        max: u64,
    },
    /// The address is of a kind this client cannot read yet.
    #[error("{0} is a {kind}, which this version cannot read", kind = .0.kind.describe())]
    Unsupported(Address),
    /// Reading or verifying the data failed; the error names the chunk.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    /// The store failed while fetching the root.
    #[error(transparent)]
    Store(StoreError),
}

/// Smallest and largest secret file ([`read_secret_file`]).
pub const SECRET_FILE_BYTES: std::ops::RangeInclusive<u64> = 16..=64 * 1024;

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// It cannot be read.
    #[error("cannot read secret file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Too small or too large.
    #[error("secret file {0} must hold between 16 bytes and 64 KiB of random data")]
    Size(String),
}

/// The private-mode secret kept in a key file: 16 bytes to 64 KiB of
/// random data (e.g. `head -c 32 /dev/urandom > my.key`), hashed into a
/// [`Secret`].
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretFileError> {
    let shown = path.display().to_string();
    let read = |source| SecretFileError::Read {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if !SECRET_FILE_BYTES.contains(&meta.len()) {
        return Err(SecretFileError::Size(shown));
    }
    let material = std::fs::read(path).map_err(read)?;
    if !SECRET_FILE_BYTES.contains(&(material.len() as u64)) {
        return Err(SecretFileError::Size(shown));
    }
    Ok(Secret::derive_from(&material))
}

/// Self-encrypts the file at `path` into `store` and returns its address.
/// `progress` is called with the number of plaintext bytes read so far.
pub async fn put_file<S: ChunkStore>(
    store: Arc<S>,
    path: &Path,
    config: Config,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<PutReport, PutError> {
    let shown = path.display().to_string();
    let read_err = |source| PutError::Read {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.is_dir() {
        return Err(PutError::IsDirectory(shown));
    }
    let file = std::fs::File::open(path).map_err(read_err)?;
    if !meta.is_file() {
        // A pipe, FIFO or device (`/dev/stdin`): its size is not known.
        return put_stream(store, file, shown, config, progress).await;
    }
    put_reader(store, file, meta.len(), config, progress).await
}

/// Self-encrypts everything `reader` yields (standard input, a pipe) into
/// `store`, copying it to a temporary file first (see [`MAX_SPOOL_BYTES`]).
/// `name` says what the input is, for errors.
pub async fn put_stream<S: ChunkStore, R: Read + Send + 'static>(
    store: Arc<S>,
    reader: R,
    name: String,
    config: Config,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<PutReport, PutError> {
    let shown = name.clone();
    let spooled = tokio::task::spawn_blocking(move || spool(reader, &name)).await;
    let (file, size) = spooled.map_err(|e| PutError::Read {
        path: shown,
        source: std::io::Error::other(e),
    })??;
    put_reader(store, file, size, config, progress).await
}

/// Copies `reader` to an unnamed temporary file; returns it rewound, and
/// its size.
fn spool<R: Read>(reader: R, name: &str) -> Result<(std::fs::File, u64), PutError> {
    use std::io::{Seek, SeekFrom};
    let err = |source| PutError::Read {
        path: name.to_string(),
        source,
    };
    let mut file = tempfile::tempfile().map_err(err)?;
    let mut limited = reader.take(MAX_SPOOL_BYTES + 1);
    let size = std::io::copy(&mut limited, &mut file).map_err(err)?;
    if size > MAX_SPOOL_BYTES {
        return Err(PutError::TooLarge(name.to_string()));
    }
    file.seek(SeekFrom::Start(0)).map_err(err)?;
    Ok((file, size))
}

/// Self-encrypts exactly `size` bytes from `reader` into `store`.
pub async fn put_reader<S: ChunkStore, R: Read + Send + 'static>(
    store: Arc<S>,
    reader: R,
    size: u64,
    config: Config,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<PutReport, PutError> {
    let (tx, rx) = mpsc::channel::<Chunk>(PUT_QUEUE_CHUNKS);
    let encryptor = tokio::task::spawn_blocking(move || {
        let mut sink = |chunk: Chunk| -> Result<(), safe_selfenc::BoxError> {
            tx.blocking_send(chunk)
                .map_err(|_| "the store stopped accepting chunks".into())
        };
        let reader = Counting {
            inner: reader,
            read: 0,
            progress,
        };
        let map = encrypt_stream(reader, size, &config, &mut sink)?;
        let root = pack_root(map, &config, &mut sink)?;
        Ok::<Chunk, EncryptError>(root)
    });
    let uploads =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
            .map(|chunk| {
                let store = store.clone();
                async move {
                    let len = chunk.len() as u64;
                    store.put(chunk).await.map(|()| len)
                }
            })
            .buffer_unordered(PUT_CONCURRENCY)
            .try_fold((0u64, 0u64), |(n, bytes), len| async move {
                Ok((n + 1, bytes + len))
            });
    let (uploaded, encrypted) = tokio::join!(uploads, encryptor);
    let root = match encrypted {
        Ok(Ok(root)) => root,
        // A store failure surfaces in the encryptor as a closed channel:
        // report the store's own error, which says what went wrong.
        Ok(Err(e)) => return Err(uploaded.err().map_or(PutError::Encrypt(e), PutError::Store)),
        Err(join) => {
            return Err(PutError::Encrypt(EncryptError::Internal(
                if join.is_panic() {
                    "encryption panicked"
                } else {
                    "encryption was cancelled"
                },
            )));
        }
    };
    let (chunks, stored_bytes) = uploaded?;
    let root_len = root.len() as u64;
    let name = *root.name();
    store.put(root).await?;
    Ok(PutReport {
        address: Address::new(DataKind::File, name),
        size,
        chunks: chunks + 1,
        stored_bytes: stored_bytes + root_len,
        paid_nanos: 0,
    })
}

/// Reports bytes read to a progress callback.
struct Counting<R> {
    inner: R,
    read: u64,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(self.read);
        Ok(n)
    }
}

/// What [`get`] found at an address, before any bytes are written.
pub struct Opened {
    /// Total size in bytes of what the address holds.
    pub size: u64,
    content: Content,
}

impl Opened {
    /// Bytes already at hand (a file kept inline in a directory manifest),
    /// read like any other: at most a chunk's worth.
    pub fn inline(bytes: Vec<u8>) -> Result<Self, safe_protocol::ChunkError> {
        let chunk = Chunk::new(bytes)?;
        Ok(Self {
            size: chunk.len() as u64,
            content: Content::Chunk(chunk),
        })
    }
}

enum Content {
    File {
        map: Arc<DataMap>,
        secret: Option<Secret>,
    },
    Chunk(Chunk),
}

/// Looks up `address` and prepares to read it: fetches the root chunk and
/// undoes any nesting of the data map. `secret` opens private files.
pub async fn open<S: ChunkStore>(
    store: &Arc<S>,
    address: &Address,
    secret: Option<&Secret>,
) -> Result<Opened, GetError> {
    let fetched = match store.get(address.name).await {
        Ok(c) => c,
        Err(StoreError::NotFound(_)) => return Err(GetError::NotFound(*address)),
        Err(StoreError::Corrupt(_)) => return Err(GetError::CorruptRoot(address.name)),
        Err(e) => return Err(GetError::Store(e)),
    };
    match address.kind {
        DataKind::Chunk => Ok(Opened {
            size: fetched.len() as u64,
            content: Content::Chunk(fetched),
        }),
        DataKind::File => {
            let mut root: Root = open_root(fetched.bytes(), secret)?;
            let secret = if root.private { secret.cloned() } else { None };
            while root.depth > 0 {
                let mut level = Vec::new();
                let map = Arc::new(root.map.clone());
                read_chunks(store, &map, secret.as_ref(), 0..map.size(), &mut level).await?;
                root = root.descend(&level)?;
            }
            Ok(Opened {
                size: root.map.size(),
                content: Content::File {
                    map: Arc::new(root.map),
                    secret,
                },
            })
        }
        _ => Err(GetError::Unsupported(*address)),
    }
}

/// Writes bytes `range` (clamped to the end) of what `opened` holds to `out`;
/// returns the number of bytes written.
pub async fn read_range<S: ChunkStore>(
    store: &Arc<S>,
    opened: &Opened,
    range: Range<u64>,
    out: &mut (dyn Write + Send),
) -> Result<u64, GetError> {
    if range.start > opened.size {
        return Err(DecryptError::RangeOutOfBounds {
            start: range.start,
            size: opened.size,
        }
        .into());
    }
    // An end before the start (a caller's mistake) reads nothing.
    let range = range.start..range.end.min(opened.size).max(range.start);
    match &opened.content {
        Content::Chunk(chunk) => {
            let part = &chunk.bytes()[range.start as usize..range.end as usize];
            out.write_all(part).map_err(DecryptError::Write)?;
            out.flush().map_err(DecryptError::Write)?;
            Ok(part.len() as u64)
        }
        Content::File { map, secret } => {
            Ok(read_chunks(store, map, secret.as_ref(), range, out).await?)
        }
    }
}

/// Opens `address` and writes bytes `range` of it to `out`.
pub async fn get<S: ChunkStore>(
    store: &Arc<S>,
    address: &Address,
    secret: Option<&Secret>,
    range: Range<u64>,
    out: &mut (dyn Write + Send),
) -> Result<u64, GetError> {
    let opened = open(store, address, secret).await?;
    read_range(store, &opened, range, out).await
}

async fn read_chunks<S: ChunkStore>(
    store: &Arc<S>,
    map: &Arc<DataMap>,
    secret: Option<&Secret>,
    range: Range<u64>,
    out: &mut (dyn Write + Send),
) -> Result<u64, DecryptError> {
    let indices = map.chunks_covering(range.clone());
    let mut plains = futures::stream::iter(indices)
        .map(|i| {
            let store = store.clone();
            let map = map.clone();
            let secret = secret.cloned();
            async move {
                let name = map.chunks()[i].dst_hash;
                let chunk = store.get(name).await.map_err(|e| fetch_error(i, name, e))?;
                // CPU work goes to rayon's pool (one thread a core), not to
                // tokio's blocking pool, which would grow a thread per chunk.
                let (tx, rx) = tokio::sync::oneshot::channel();
                rayon::spawn(move || {
                    let stored = Vec::from(chunk.into_bytes());
                    let _ = tx.send(decrypt_chunk(&map, i, stored, secret.as_ref()));
                });
                let plain = rx.await.map_err(|_| DecryptError::Fetch {
                    index: i,
                    name,
                    source: "decryption worker stopped".into(),
                })??;
                Ok::<_, DecryptError>((i, plain))
            }
        })
        .buffered(GET_CONCURRENCY);
    let mut written = 0;
    while let Some(next) = plains.next().await {
        let (i, plain) = next?;
        let part = map.part_in_range(i, &plain, range.clone());
        out.write_all(part)?;
        written += part.len() as u64;
    }
    out.flush()?;
    Ok(written)
}

fn fetch_error(index: usize, name: XorName, e: StoreError) -> DecryptError {
    match e {
        StoreError::NotFound(_) => DecryptError::MissingChunk { index, name },
        StoreError::Corrupt(_) => DecryptError::CorruptChunk {
            index,
            name,
            reason: "content does not match its name",
        },
        other => DecryptError::Fetch {
            index,
            name,
            source: Box::new(other),
        },
    }
}
