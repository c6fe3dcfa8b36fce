//! A chunk and record store in a local directory, for offline use and
//! tests: [`crate::Client::local`].
//!
//! Layout (format 1):
//!
//! ```text
//! DIR/FORMAT            "safe-local-store 1"
//! DIR/chunks/ab/abcd…   one file per chunk, named by the hex of its name,
//!                       fanned out by the first byte
//! DIR/records/abcd…     one file per mutable record, the record encoded
//!                       as on the wire (its own format byte first)
//! DIR/records.lock      flock(2)ed by a record write, across processes
//! DIR/tmp/              files being written
//! ```
//!
//! `records/` came after the first stores were made; it is created when a
//! store is opened, so older stores gain it without a format change.
//!
//! A chunk or record is written to `tmp/`, fsynced, renamed into place and
//! its directory fsynced, so after a crash a file is either complete or
//! absent. Record writes follow the nodes' rules
//! ([`safe_protocol::mutable::apply_write`]), one at a time per store.
//! Reads re-hash chunk files and verify records, so damage on disk is
//! reported, never returned. Large chunk files bypass the page cache
//! (`O_DIRECT`, see [`safe_direct`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use safe_direct::Direct;
use safe_protocol::mutable::{
    MAX_RECORD_SIZE, Record, RecordError, SigningKey, Write, accept_write,
};
use safe_protocol::{Chunk, MAX_CHUNK_SIZE, XorName};

use crate::mutable::MutableError;
use crate::store::{ChunkStore, RecordStore, StoreError};

const FORMAT_FILE: &str = "FORMAT";
const FORMAT: &str = "safe-local-store 1\n";

/// A directory of chunk files.
#[derive(Clone, Debug)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    direct: Direct,
    /// Held across a record's read, apply and write by this store's
    /// threads; [`RecordsLock`] does the same across processes and other
    /// stores on the same directory.
    records: std::sync::Mutex<()>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

impl LocalStore {
    /// Opens the store at `dir`, creating it if needed. Refuses a directory
    /// that holds another format or unrelated files.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let root = dir.as_ref().to_path_buf();
        fs::create_dir_all(&root).map_err(io(format!("creating {}", root.display())))?;
        let format_path = root.join(FORMAT_FILE);
        match fs::read_to_string(&format_path) {
            Ok(found) if found == FORMAT => {}
            Ok(found) => {
                return Err(StoreError::Io {
                    context: format!("opening {}", root.display()),
                    source: std::io::Error::other(format!(
                        "unsupported store format {:?} (this program reads {:?})",
                        found.trim(),
                        FORMAT.trim()
                    )),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let non_empty = fs::read_dir(&root)
                    .map_err(io(format!("reading {}", root.display())))?
                    .next()
                    .is_some();
                if non_empty {
                    return Err(StoreError::Io {
                        context: format!("opening {}", root.display()),
                        source: std::io::Error::other(
                            "directory is not empty and is not a safe local store",
                        ),
                    });
                }
                write_durably(
                    &Direct::new(),
                    &root.join("FORMAT.tmp"),
                    &format_path,
                    FORMAT.as_bytes(),
                )
                .map_err(io(format!("initialising {}", root.display())))?;
            }
            Err(e) => return Err(io(format!("reading {}", format_path.display()))(e)),
        }
        for sub in ["chunks", "records", "tmp"] {
            fs::create_dir_all(root.join(sub)).map_err(io(format!("creating {sub}/")))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                direct: Direct::new(),
                records: std::sync::Mutex::new(()),
            }),
        })
    }

    /// Where the chunk called `name` lives.
    pub fn chunk_path(&self, name: &XorName) -> PathBuf {
        let hex = name.to_hex();
        self.inner.root.join("chunks").join(&hex[..2]).join(hex)
    }

    /// Stores `chunk` durably on the calling thread (see the module docs).
    pub fn put_blocking(&self, chunk: &Chunk) -> Result<(), StoreError> {
        let path = self.chunk_path(chunk.name());
        if path.exists() {
            return Ok(());
        }
        let tmp = self.tmp_path(&chunk.name().to_hex());
        let write = || write_durably(&self.inner.direct, &tmp, &path, chunk.bytes());
        match write() {
            // The fan-out directory is made the first time it is needed
            // (not checked on every put), and its entry made durable at
            // once (later syncs only cover the fan-out directories).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let dir = path.parent().unwrap_or(&self.inner.root);
                fs::create_dir_all(dir)
                    .and_then(|()| fs::File::open(self.inner.root.join("chunks"))?.sync_all())
                    .map_err(io(format!("creating {}", dir.display())))?;
                write()
            }
            other => other,
        }
        .map_err(io(format!("writing chunk {}", chunk.name())))
    }

    /// Reads and verifies the chunk called `name` on the calling thread.
    pub fn get_blocking(&self, name: XorName) -> Result<Chunk, StoreError> {
        let path = self.chunk_path(&name);
        // Never read more than a chunk can be, whatever is on disk.
        let bytes = match self.inner.direct.read(&path, MAX_CHUNK_SIZE) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name));
            }
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        };
        Ok(Chunk::verified(name, bytes)?)
    }
}

impl LocalStore {
    /// A temporary file name no other writer uses: this process's id and a
    /// counter shared by every store in the process.
    fn tmp_path(&self, stem: &str) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.inner
            .root
            .join("tmp")
            .join(format!("{stem}.{}.{n}", std::process::id()))
    }

    /// Where the record at `name` lives.
    pub fn record_path(&self, name: &XorName) -> PathBuf {
        self.inner.root.join("records").join(name.to_hex())
    }

    /// The record at `name`, verified (`None`: none held).
    pub fn record_blocking(&self, name: XorName) -> Result<Option<Record>, StoreError> {
        let path = self.record_path(&name);
        let bytes = match read_at_most(&path, MAX_RECORD_SIZE) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        };
        let damaged = |e: RecordError| StoreError::Io {
            context: format!("reading {}", path.display()),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("damaged record: {e}"),
            ),
        };
        let record = Record::decode(&bytes).map_err(damaged)?;
        record.verify(&name).map_err(damaged)?;
        Ok(Some(record))
    }

    /// Applies `write` by the nodes' rules and stores the result durably,
    /// on the calling thread.
    pub fn write_record_blocking(&self, write: &Write) -> Result<(), MutableError> {
        let name = write.address();
        let _one_at_a_time = self
            .inner
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _nor_any_other = RecordsLock::take(&self.inner.root).map_err(io(format!(
            "locking the records of {}",
            self.inner.root.display()
        )))?;
        let current = self.record_blocking(name)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let Some(next) = accept_write(current, write, now).map_err(MutableError::Refused)? else {
            return Ok(());
        };
        let bytes = next.encode().map_err(MutableError::Refused)?;
        let tmp = self.tmp_path(&format!("record.{}", name.to_hex()));
        let path = self.record_path(&name);
        write_durably(&self.inner.direct, &tmp, &path, &bytes)
            .map_err(io(format!("writing record {name}")))
            .map_err(MutableError::Store)
    }
}

/// An exclusive lock on a store's records (`DIR/records.lock`, with
/// `flock`), held while one write reads, applies and replaces a record:
/// two processes, or two stores on one directory, never both apply a
/// write to the same old state. Released when dropped.
struct RecordsLock {
    #[cfg(unix)]
    _file: fs::File,
}

impl RecordsLock {
    fn take(root: &Path) -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            let file = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(root.join("records.lock"))?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
            Ok(Self { _file: file })
        }
        #[cfg(not(unix))]
        {
            let _ = root;
            Ok(Self {})
        }
    }
}

/// Reads a whole file of at most `max` bytes (a larger one is an error,
/// never read into memory).
fn read_at_most(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Writes `bytes` to `tmp`, fsyncs it, renames it to `dest` and fsyncs
/// the directory: after a crash `dest` is whole or absent.
fn write_durably(direct: &Direct, tmp: &Path, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let result = (|| {
        let f = direct.write(tmp, bytes)?;
        f.sync_all()?;
        fs::rename(tmp, dest)?;
        if let Some(dir) = dest.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

impl ChunkStore for LocalStore {
    async fn put(&self, chunk: Chunk) -> Result<(), StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.put_blocking(&chunk))
            .await
            .map_err(|e| io("chunk writer task")(std::io::Error::other(e)))?
    }

    async fn get(&self, name: XorName) -> Result<Chunk, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.get_blocking(name))
            .await
            .map_err(|e| io("chunk reader task")(std::io::Error::other(e)))?
    }
}

impl RecordStore for LocalStore {
    async fn write_record(&self, write: &Write) -> Result<(), MutableError> {
        let (this, write) = (self.clone(), write.clone());
        tokio::task::spawn_blocking(move || this.write_record_blocking(&write))
            .await
            .map_err(|e| MutableError::Store(io("record writer task")(std::io::Error::other(e))))?
    }

    async fn get_record(&self, name: XorName) -> Result<Record, MutableError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.record_blocking(name))
            .await
            .map_err(|e| MutableError::Store(io("record reader task")(std::io::Error::other(e))))??
            .ok_or(MutableError::NotFound(name))
    }

    /// The same rule as the nodes': only an owner or the login key.
    async fn fetch_account(
        &self,
        address: XorName,
        signer: &SigningKey,
    ) -> Result<Record, MutableError> {
        let record = RecordStore::get_record(self, address).await?;
        let key = signer.verifying_key().to_bytes();
        match safe_protocol::account::may_fetch(&record, &key) {
            Some(_) => Ok(record),
            None => Err(MutableError::NotFound(address)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let chunk = Chunk::new(b"hello".to_vec()).unwrap();
        store.put(chunk.clone()).await.unwrap();
        store.put(chunk.clone()).await.unwrap();
        assert_eq!(store.get(*chunk.name()).await.unwrap(), chunk);
        let missing = XorName([9; 32]);
        assert!(matches!(store.get(missing).await, Err(StoreError::NotFound(n)) if n == missing));
        fs::write(store.chunk_path(chunk.name()), b"hellp").unwrap();
        assert!(matches!(
            store.get(*chunk.name()).await,
            Err(StoreError::Corrupt(_))
        ));
        // Nothing left behind in tmp/.
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn refuses_foreign_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        assert!(LocalStore::open(dir.path()).is_err());
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join(FORMAT_FILE), b"safe-local-store 9\n").unwrap();
        let err = LocalStore::open(other.path()).unwrap_err().to_string();
        assert!(err.contains("unsupported store format"), "{err}");
        // Reopening a real store works.
        let ok = tempfile::tempdir().unwrap();
        LocalStore::open(ok.path()).unwrap();
        LocalStore::open(ok.path()).unwrap();
    }
}
