//! Directory snapshots: a local tree in, a `safe://d…` address out, and
//! back.
//!
//! A tree is stored bottom-up: every directory's files first (small ones
//! inline in its manifest, the rest as self-encrypted files), then its
//! manifest ([`safe_protocol::manifest`]) as a self-encrypted file, so a
//! directory's address exists only once everything under it is stored, and
//! an unchanged subtree gets the address it had.
//!
//! - Symlinks are stored as links and never followed, so a link cannot
//!   pull in anything outside the tree, and a loop of links is harmless.
//! - Devices, FIFOs and sockets are refused, as are names that are not
//!   UTF-8 or not valid entry names, and files that cannot be read: the
//!   error names the path, and no address is printed for a partial tree.
//! - A tree is fetched into a temporary directory beside the output and
//!   renamed into place only when every file is verified.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use safe_protocol::manifest::{
    Entry, FileData, MAX_INLINE_BYTES, MAX_MANIFEST_BYTES, Manifest, ManifestError, Meta, Node,
    check_name,
};
use safe_protocol::url::MAX_PATH_DEPTH;
use safe_protocol::{Address, DataKind, XorName};

use crate::client::{Client, PutOptions};
use crate::files::{GetError, PutError};
use crate::tree_cache::{Key, PutCache};
use safe_selfenc::Secret;

/// Files of at most this many bytes go inline in their directory's
/// manifest (while the directory's inline budget lasts).
pub const INLINE_FILE_BYTES: u64 = MAX_INLINE_BYTES as u64;
/// Inline bytes one manifest takes at most; further small files are
/// stored as files of their own. Bounds what one change re-uploads (a
/// directory's manifest, at most this and its entries), while keeping a
/// directory of thousands of small files from costing thousands of files
/// of their own (each at least one chunk and one round trip): the Rust
/// documentation's 52 000 files become 1 144 stored files at 32 MiB,
/// 19 243 at 4 MiB.
pub const INLINE_BUDGET_BYTES: u64 = 32 * 1024 * 1024;
/// Inline bytes held by all the manifests being built at once (so memory
/// stays bounded however large the directories).
pub const MANIFEST_MEMORY_BYTES: u64 = 48 * 1024 * 1024;
const MANIFEST_MEMORY_MIB: u32 = (MANIFEST_MEMORY_BYTES >> 20) as u32;

/// Most directories fetched in one snapshot.
pub const MAX_TREE_DIRS: u64 = 1 << 20;
/// Files fetched at once within a directory.
pub const FILE_CONCURRENCY: usize = 8;
/// Files stored on their own at once, across the whole tree (each is
/// itself a few chunks in flight).
pub const TREE_CONCURRENCY: usize = 16;
/// Directory manifests built and stored at once (holding at most
/// [`MANIFEST_MEMORY_BYTES`] of inline files in memory between them).
pub const MANIFEST_CONCURRENCY: usize = 8;

/// Options of [`Client::put_tree`].
#[derive(Clone, Default)]
pub struct TreeOptions {
    /// Called with files stored so far and the total.
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    /// A file remembering what earlier puts stored (see
    /// [`crate::tree_cache`]); with it, putting a tree again sends only
    /// what changed. Use one cache file per `secret`.
    pub cache: Option<PathBuf>,
    /// Private mode: files and manifests are self-encrypted with this
    /// secret mixed into every key, so only its holder can list or read
    /// the tree. `None`: public (convergent).
    pub secret: Option<Secret>,
}

/// What a tree put or get did.
#[derive(Clone, Debug)]
pub struct TreeReport {
    /// The snapshot's address (`safe://d…`).
    pub address: Address,
    /// Files in the tree.
    pub files: u64,
    /// Directories in the tree, the top one included.
    pub dirs: u64,
    /// Symlinks in the tree.
    pub links: u64,
    /// Bytes of all files.
    pub bytes: u64,
}

/// What a path inside a snapshot names.
#[derive(Clone, Debug)]
pub enum Found {
    /// A directory, with its manifest.
    Dir {
        /// The manifest's name (its address as a `safe://d…`).
        manifest: XorName,
        /// The manifest (shared with the client's cache, when it has one).
        listing: Arc<Manifest>,
    },
    /// A file, or a symlink.
    Entry(Entry),
}

/// Why a tree could not be put, fetched or walked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// A local path could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A local path could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A name that cannot be stored (not UTF-8, or not a valid entry name).
    #[error("{}: {reason}", path.display())]
    BadName {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A device, FIFO or socket.
    #[error("{} is not a file, directory or symlink (devices, FIFOs and sockets are not stored)", .0.display())]
    Special(PathBuf),
    /// Deeper than [`MAX_PATH_DEPTH`].
    #[error("{} is nested more than {MAX_PATH_DEPTH} directories deep", .0.display())]
    TooDeep(PathBuf),
    /// Not enough free space for the tree.
    #[error("the snapshot holds {need} bytes but only {free} are free there")]
    NoSpace {
        /// Bytes of all files in the snapshot.
        need: u64,
        /// Bytes free where it would go.
        free: u64,
    },
    /// More directories than a snapshot may have.
    #[error("the snapshot has more than {0} directories")]
    TooMany(u64),
    /// The output exists already.
    #[error("{} exists and is not an empty directory; give a new path with -o", .0.display())]
    Exists(PathBuf),
    /// No such path in the snapshot.
    #[error("no {0} in the snapshot")]
    NotFound(String),
    /// A path goes through something that is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(String),
    /// A manifest is not valid.
    #[error("a directory manifest is invalid: {0}")]
    Manifest(#[from] ManifestError),
    /// Storing a file or manifest failed.
    #[error(transparent)]
    Put(#[from] PutError),
    /// Fetching a file or manifest failed.
    #[error(transparent)]
    Get(#[from] GetError),
}

/// A local directory as the walk found it.
struct Listing {
    path: PathBuf,
    entries: Vec<Local>,
}

enum Local {
    File {
        name: String,
        size: u64,
        meta: Meta,
        /// Its put-cache key; `None` for a file changed in the last
        /// [`RACY_SECONDS`], whose bytes may change again within the same
        /// timestamp (git's "racily clean" files).
        key: Option<Key>,
    },
    Dir {
        name: String,
        meta: Meta,
    },
    Link {
        name: String,
        target: String,
        meta: Meta,
    },
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError + '_ {
    move |source| TreeError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// The metadata a manifest keeps of a local file or directory.
pub(crate) fn meta_of(m: &std::fs::Metadata) -> Meta {
    #[cfg(unix)]
    let executable = {
        use std::os::unix::fs::PermissionsExt;
        m.is_file() && m.permissions().mode() & 0o100 != 0
    };
    #[cfg(not(unix))]
    let executable = false;
    let modified = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    Meta {
        executable,
        modified,
    }
}

/// Files modified this recently are not cached (see `Local::File::key`).
pub const RACY_SECONDS: u64 = 2;

/// Whether a file was last changed long enough ago for its metadata to
/// stand for its bytes.
fn settled(m: &std::fs::Metadata) -> bool {
    let limit = SystemTime::now() - Duration::from_secs(RACY_SECONDS);
    m.modified().is_ok_and(|t| t < limit)
}

/// Every directory under `root`, children before parents, with its
/// entries (symlinks not followed).
fn walk(root: &Path) -> Result<Vec<Listing>, TreeError> {
    // Absolute paths, so that cache keys do not depend on the directory
    // the put was run from.
    let root = &std::fs::canonicalize(root).map_err(read_err(root))?;
    let mut out = Vec::new();
    // (path, depth, listed yet): a directory is emitted after its children.
    let mut stack = vec![(root.to_path_buf(), 0usize, false)];
    let mut pending: HashMap<PathBuf, Vec<Local>> = HashMap::new();
    while let Some((dir, depth, listed)) = stack.pop() {
        if listed {
            let entries = pending.remove(&dir).unwrap_or_default();
            out.push(Listing { path: dir, entries });
            continue;
        }
        if depth > MAX_PATH_DEPTH {
            return Err(TreeError::TooDeep(dir));
        }
        stack.push((dir.clone(), depth, true));
        let mut entries = Vec::new();
        for item in std::fs::read_dir(&dir).map_err(read_err(&dir))? {
            let item = item.map_err(read_err(&dir))?;
            let path = item.path();
            let name = item
                .file_name()
                .into_string()
                .map_err(|_| TreeError::BadName {
                    path: path.clone(),
                    reason: "the name is not UTF-8".into(),
                })?;
            check_name(&name).map_err(|e| TreeError::BadName {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let m = std::fs::symlink_metadata(&path).map_err(read_err(&path))?;
            let meta = meta_of(&m);
            if m.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(read_err(&path))?;
                let target =
                    target
                        .into_os_string()
                        .into_string()
                        .map_err(|_| TreeError::BadName {
                            path: path.clone(),
                            reason: "the link's target is not UTF-8".into(),
                        })?;
                entries.push(Local::Link { name, target, meta });
            } else if m.is_dir() {
                stack.push((path, depth + 1, false));
                entries.push(Local::Dir { name, meta });
            } else if m.is_file() {
                entries.push(Local::File {
                    name,
                    size: m.len(),
                    meta,
                    key: settled(&m).then(|| PutCache::file_key(&path, &m)),
                });
            } else {
                return Err(TreeError::Special(path));
            }
        }
        pending.insert(dir, entries);
    }
    Ok(out)
}

impl Client {
    /// Stores the directory tree at `root` as a snapshot and returns its
    /// `safe://d…` address. `progress` is called with files stored so far
    /// and the total.
    ///
    /// Two passes keep memory bounded and the network busy: first every
    /// file too large to go inline is stored, [`TREE_CONCURRENCY`] at once
    /// across the whole tree (only their addresses are kept); then the
    /// manifests, deepest directories first, [`MANIFEST_CONCURRENCY`] at
    /// once, each reading its inline files as it is built.
    ///
    /// Where storing is paid for, the whole upload is paid for at once
    /// first: a pass that stores nothing learns the name of every chunk
    /// the put will store (as [`Client::put_file`] does for one file).
    pub async fn put_tree(
        &self,
        root: &Path,
        options: &TreeOptions,
    ) -> Result<TreeReport, TreeError> {
        if let Some(c) = self.paying().await {
            let names = Arc::new(crate::files::Names::default());
            let quiet = TreeOptions {
                progress: None,
                ..options.clone()
            };
            // Cached names stand for what earlier puts stored (paid then);
            // anything else a put sends is paid for as it goes.
            let _ = self
                .names_only(names.clone())
                .put_tree_once(root, &quiet, false, true)
                .await?;
            let mut all = names.take();
            all.sort_unstable();
            all.dedup();
            self.pay_for(c, &all).await?;
            return self.prepaid().put_tree_stored(root, options).await;
        }
        self.put_tree_stored(root, options).await
    }

    /// [`Client::put_tree`], paid for as it goes (if at all).
    async fn put_tree_stored(
        &self,
        root: &Path,
        options: &TreeOptions,
    ) -> Result<TreeReport, TreeError> {
        match self.put_tree_once(root, options, false, false).await? {
            Ok(report) => Ok(report),
            // A name the cache gave is gone from the network (another
            // network, or lost data): the whole tree again, and a cache
            // started afresh.
            Err(StaleCache) => {
                tracing::warn!("the put cache names data the network lacks; storing everything");
                match self.put_tree_once(root, options, true, false).await? {
                    Ok(report) => Ok(report),
                    Err(StaleCache) => Err(TreeError::NotFound("data the put cache named".into())),
                }
            }
        }
    }

    /// One try of [`Client::put_tree`]. Names from the put cache are used
    /// unchecked at first; what is checked is only what the result depends
    /// on: the top, when it comes from the cache, and the cached children
    /// of every directory stored afresh — each just before that directory
    /// is stored, so a directory is still stored only after everything
    /// under it is on the network. A cached name that is there stands for
    /// its whole subtree (stored before it). `fresh`: ignore what the
    /// cache file holds. `dry`: a pass that only learns names (on a
    /// [`Client::names_only`]): cached names are taken as present, and the
    /// cache file is left as it was.
    async fn put_tree_once(
        &self,
        root: &Path,
        options: &TreeOptions,
        fresh: bool,
        dry: bool,
    ) -> Result<Result<TreeReport, StaleCache>, TreeError> {
        let progress = options.progress.clone();
        let started = std::time::Instant::now();
        let cache_file = match fresh {
            false => PutCache::open(options.cache.as_deref()),
            true => PutCache::empty(options.cache.as_deref()),
        };
        tracing::debug!("put cache read in {:?}", started.elapsed());
        let root = &std::fs::canonicalize(root).map_err(read_err(root))?;
        let owned = root.to_path_buf();
        let listings = tokio::task::spawn_blocking(move || walk(&owned))
            .await
            .map_err(|e| TreeError::Read {
                path: root.to_path_buf(),
                source: std::io::Error::other(e),
            })??;
        tracing::debug!(
            "walked {} directories in {:?}",
            listings.len(),
            started.elapsed()
        );
        let plans: Vec<DirPlan> = listings.into_iter().map(DirPlan::new).collect();
        let total_files: u64 = plans.iter().map(|p| p.files).sum();
        let done = std::sync::atomic::AtomicU64::new(0);
        let tick = |n: u64| {
            let n = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            if let Some(p) = &progress {
                p(n, total_files);
            }
        };

        // Pass 1: files stored on their own, across the whole tree.
        let to_store: Vec<(PathBuf, Option<Key>, u64)> =
            plans.iter().flat_map(|p| p.stored_paths()).collect();
        let tick = &tick;
        let cache = &cache_file;
        let stored_files: HashMap<PathBuf, Stored> = futures::stream::iter(to_store)
            .map(|(path, key, size)| async move {
                // Stored by an earlier put: checked later, if the result
                // depends on it.
                if let Some(key) = key
                    && let Some(name) = cache.get(&key)
                {
                    cache.note(key, name);
                    tick(1);
                    return Ok((path, (name, size, true)));
                }
                let put = PutOptions {
                    secret: options.secret.clone(),
                    ..PutOptions::default()
                };
                let report = self.put_file(&path, &put).await?;
                if let Some(key) = key {
                    cache.note(key, report.address.name);
                }
                tick(1);
                Ok::<_, TreeError>((path, (report.address.name, report.size, false)))
            })
            .buffer_unordered(TREE_CONCURRENCY)
            .try_collect()
            .await?;

        tracing::debug!("stored files in {:?}", started.elapsed());
        // Pass 2: manifests, deepest first (a directory's children are
        // always deeper than it).
        let mut by_depth: std::collections::BTreeMap<usize, Vec<DirPlan>> = Default::default();
        for plan in plans {
            by_depth.entry(plan.depth(root)).or_default().push(plan);
        }
        let mut dirs_done: HashMap<PathBuf, Done> = HashMap::new();
        let memory = tokio::sync::Semaphore::new(MANIFEST_MEMORY_MIB as usize);
        let (mut dirs, mut links) = (0u64, 0u64);
        while let Some((_, level)) = by_depth.pop_last() {
            let children = &dirs_done;
            let stored_files = &stored_files;
            let memory = &memory;
            let built: Vec<Option<(PathBuf, Done, u64)>> = futures::stream::iter(level)
                .map(|plan| async move {
                    // Permits are MiB of inline data (at least one each).
                    let mib = u32::try_from(plan.inline_bytes.div_ceil(1 << 20).max(1))
                        .unwrap_or(u32::MAX)
                        .min(MANIFEST_MEMORY_MIB);
                    let _held = memory.acquire_many(mib).await.map_err(|_| {
                        TreeError::NotFound("the manifest memory budget (closed)".into())
                    })?;
                    let (entries, inline_files, links, cached) =
                        plan.entries(children, stored_files).await?;
                    tick(inline_files);
                    let manifest = Manifest::new(entries)?;
                    let (size, files) = (manifest.total_size(), manifest.total_files());
                    let bytes = manifest.encode()?;
                    let key = PutCache::manifest_key(&bytes);
                    if let Some(name) = cache.get(&key) {
                        cache.note(key, name);
                        return Ok(Some((plan.path, (name, size, files, true), links)));
                    }
                    // Stored afresh: first, everything it names from the
                    // cache must be on the network.
                    let present = futures::stream::iter(cached)
                        .map(|name| async move { dry || self.get_chunk(name).await.is_ok() })
                        .buffer_unordered(TREE_CONCURRENCY)
                        .all(|ok| async move { ok })
                        .await;
                    if !present {
                        return Ok(None);
                    }
                    let name = self
                        .put_bytes_with(bytes, options.secret.as_ref())
                        .await?
                        .address
                        .name;
                    cache.note(key, name);
                    Ok::<_, TreeError>(Some((plan.path, (name, size, files, false), links)))
                })
                .buffer_unordered(MANIFEST_CONCURRENCY)
                .try_collect()
                .await?;
            let Some(built) = built.into_iter().collect::<Option<Vec<_>>>() else {
                return Ok(Err(StaleCache));
            };
            for (path, done, n) in built {
                dirs += 1;
                links += n;
                dirs_done.insert(path, done);
            }
        }
        let (name, bytes, files, hit) = dirs_done
            .remove(root)
            .ok_or_else(|| TreeError::NotFound(root.display().to_string()))?;
        // The top from the cache: there, it stands for the whole tree.
        if hit && !dry && self.get_chunk(name).await.is_err() {
            return Ok(Err(StaleCache));
        }
        tracing::debug!("manifests in {:?}", started.elapsed());
        if dry {
            // Nothing was stored: the cache must not say it was.
        } else if let Err(e) = cache_file.save() {
            tracing::warn!("cannot save the put cache (the next put sends everything again): {e}");
        }
        tracing::debug!("put cache saved in {:?}", started.elapsed());
        Ok(Ok(TreeReport {
            address: Address::new(DataKind::Directory, name),
            files,
            dirs,
            links,
            bytes,
        }))
    }

    /// The manifest stored under `name`, checked.
    pub async fn read_manifest(&self, name: XorName) -> Result<Manifest, TreeError> {
        self.read_manifest_in(name, None).await
    }

    /// [`Client::read_manifest`] of a private tree (`secret`).
    pub async fn read_manifest_in(
        &self,
        name: XorName,
        secret: Option<&Secret>,
    ) -> Result<Manifest, TreeError> {
        let shared = self.manifest_shared(name, secret).await?;
        Ok(Arc::try_unwrap(shared).unwrap_or_else(|m| (*m).clone()))
    }

    /// The manifest `name`, from the client's cache when it is public and
    /// cached ([`Client::with_caches`]).
    async fn manifest_shared(
        &self,
        name: XorName,
        secret: Option<&Secret>,
    ) -> Result<Arc<Manifest>, TreeError> {
        // Only public manifests are cached: a private one stays readable
        // only by callers that hold its secret.
        let cache = self.caches().filter(|_| secret.is_none());
        if let Some(m) = cache.and_then(|c| c.manifest(&name)) {
            return Ok(m);
        }
        let address = Address::new(DataKind::File, name);
        let bytes = self
            .get_bytes_in(&address, MAX_MANIFEST_BYTES as u64, secret)
            .await?;
        let manifest = Arc::new(Manifest::decode(&bytes)?);
        if let Some(c) = cache {
            c.keep_manifest(name, manifest.clone());
        }
        Ok(manifest)
    }

    /// What `path` names inside the snapshot whose top manifest is `root`.
    pub async fn find(&self, root: XorName, path: &[String]) -> Result<Found, TreeError> {
        self.find_in(root, path, None).await
    }

    /// [`Client::find`] in a private tree (`secret`).
    pub async fn find_in(
        &self,
        root: XorName,
        path: &[String],
        secret: Option<&Secret>,
    ) -> Result<Found, TreeError> {
        let mut manifest = root;
        let mut listing = self.manifest_shared(root, secret).await?;
        for (i, component) in path.iter().enumerate() {
            let shown = || path[..=i].join("/");
            let entry = listing
                .get(component)
                .cloned()
                .ok_or_else(|| TreeError::NotFound(shown()))?;
            match entry.node {
                Node::Dir { manifest: next, .. } => {
                    manifest = next;
                    listing = self.manifest_shared(next, secret).await?;
                }
                _ if i + 1 == path.len() => return Ok(Found::Entry(entry)),
                _ => return Err(TreeError::NotADirectory(shown())),
            }
        }
        Ok(Found::Dir { manifest, listing })
    }

    /// Recreates the snapshot directory whose manifest is `root` at `out`
    /// (which must not exist, or be an empty directory). Files are
    /// verified as they arrive; the tree appears at `out` only when whole.
    pub async fn get_tree(&self, root: XorName, out: &Path) -> Result<TreeReport, TreeError> {
        self.get_tree_in(root, out, None).await
    }

    /// [`Client::get_tree`] of a private tree (`secret`).
    pub async fn get_tree_in(
        &self,
        root: XorName,
        out: &Path,
        secret: Option<&Secret>,
    ) -> Result<TreeReport, TreeError> {
        self.get_tree_with(root, out, secret, None).await
    }

    /// [`Client::get_tree_in`], calling `progress` with the bytes of
    /// files written so far and the tree's total.
    pub async fn get_tree_with(
        &self,
        root: XorName,
        out: &Path,
        secret: Option<&Secret>,
        progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    ) -> Result<TreeReport, TreeError> {
        match std::fs::read_dir(out).map(|mut items| items.next().is_none()) {
            Ok(true) => {}
            Ok(false) => return Err(TreeError::Exists(out.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(TreeError::Exists(out.to_path_buf()));
            }
            Err(e) => return Err(read_err(out)(e)),
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TreeError::Write { path, source }
        };
        let staging = tempfile::Builder::new()
            .prefix(".safe-get-")
            .tempdir_in(parent)
            .map_err(write_err(parent))?;
        let mut report = TreeReport {
            address: Address::new(DataKind::Directory, root),
            files: 0,
            dirs: 0,
            links: 0,
            bytes: 0,
        };
        // (manifest, where it goes, depth, the totals its parent declared).
        // Every manifest must hold what its parent said it does, so the
        // top's totals are true all the way down: a snapshot that reuses
        // one manifest many times to grow without bound is caught by the
        // free-space check below, one deeper than any put makes is
        // refused, and one that lies about its sizes stops at the lie.
        let top = self.read_manifest_in(root, secret).await?;
        let need = top.total_size();
        #[cfg(unix)]
        if let Ok(fs) = rustix::fs::statvfs(parent) {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            if need > free {
                return Err(TreeError::NoSpace { need, free });
            }
        }
        let mut stack = vec![(
            root,
            staging.path().to_path_buf(),
            0usize,
            (need, top.total_files()),
        )];
        let mut cached_top = Some(top);
        let written = std::sync::atomic::AtomicU64::new(0);
        while let Some((manifest, dir, depth, declared)) = stack.pop() {
            if depth > MAX_PATH_DEPTH {
                return Err(TreeError::TooDeep(dir));
            }
            if report.dirs >= MAX_TREE_DIRS {
                return Err(TreeError::TooMany(MAX_TREE_DIRS));
            }
            report.dirs += 1;
            let listing = match cached_top.take() {
                Some(top) => top,
                None => self.read_manifest_in(manifest, secret).await?,
            };
            if (listing.total_size(), listing.total_files()) != declared {
                return Err(TreeError::Manifest(ManifestError::TooLarge(
                    "a directory's contents, against what its parent declared",
                )));
            }
            let mut files = Vec::new();
            for entry in listing.entries() {
                let path = dir.join(&entry.name);
                match &entry.node {
                    Node::Dir {
                        manifest,
                        size,
                        files,
                    } => {
                        std::fs::create_dir(&path).map_err(write_err(&path))?;
                        stack.push((*manifest, path, depth + 1, (*size, *files)));
                    }
                    Node::Symlink { target } => {
                        report.links += 1;
                        #[cfg(unix)]
                        std::os::unix::fs::symlink(target, &path).map_err(write_err(&path))?;
                        #[cfg(not(unix))]
                        let _ = target;
                    }
                    Node::File { size, .. } => {
                        report.files += 1;
                        report.bytes = report.bytes.saturating_add(*size);
                        files.push((entry, path));
                    }
                }
            }
            let progress = &progress;
            let written = &written;
            futures::stream::iter(files)
                .map(|(entry, path)| async move {
                    self.write_file(entry, &path, secret).await?;
                    if let (Some(p), Node::File { size, .. }) = (progress, &entry.node) {
                        let done = written.fetch_add(*size, std::sync::atomic::Ordering::Relaxed);
                        p(done + size, need);
                    }
                    Ok::<(), TreeError>(())
                })
                .buffer_unordered(FILE_CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
        }
        let staged = staging.keep();
        if let Err(e) = std::fs::rename(&staged, out) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(write_err(out)(e));
        }
        Ok(report)
    }

    /// Writes one file entry to `path` (a new file), with its mode and
    /// time.
    pub async fn write_file(
        &self,
        entry: &Entry,
        path: &Path,
        secret: Option<&Secret>,
    ) -> Result<(), TreeError> {
        let write_err = |source| TreeError::Write {
            path: path.to_path_buf(),
            source,
        };
        let Node::File { data, size } = &entry.node else {
            return Ok(());
        };
        // A new file only: never through a symlink or over an entry a
        // case-insensitive file system takes for the same name.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(write_err)?;
        match data {
            FileData::Inline(bytes) => {
                std::io::Write::write_all(&mut file, bytes).map_err(write_err)?;
            }
            FileData::Stored(name) => {
                let address = Address::new(DataKind::File, *name);
                let opened = self.open_file(&address, secret).await?;
                if opened.size != *size {
                    return Err(TreeError::Manifest(ManifestError::TooLarge(
                        "a file's size, against what its directory declared",
                    )));
                }
                let mut out = std::io::BufWriter::new(&mut file);
                self.read_range(&opened, 0..opened.size, &mut out).await?;
                std::io::Write::flush(&mut out).map_err(write_err)?;
            }
        }
        #[cfg(unix)]
        if entry.meta.executable {
            use std::os::unix::fs::PermissionsExt;
            let mut perms = file.metadata().map_err(write_err)?.permissions();
            let mode = perms.mode();
            perms.set_mode(mode | ((mode & 0o444) >> 2));
            file.set_permissions(perms).map_err(write_err)?;
        }
        if let Some(secs) = entry.meta.modified.and_then(|s| u64::try_from(s).ok()) {
            let when = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            file.set_modified(when).map_err(write_err)?;
        }
        Ok(())
    }
}

/// One directory's listing, with each file's place decided: inline in
/// the manifest (while [`INLINE_BUDGET_BYTES`] lasts) or stored on its own.
struct DirPlan {
    path: PathBuf,
    entries: Vec<(Local, bool)>,
    files: u64,
    /// Bytes of its inline files.
    inline_bytes: u64,
}

impl DirPlan {
    fn new(listing: Listing) -> Self {
        let mut budget = INLINE_BUDGET_BYTES;
        let mut files = 0;
        let entries = listing
            .entries
            .into_iter()
            .map(|local| {
                let inline = match &local {
                    Local::File { size, .. } => {
                        files += 1;
                        let fits = *size <= INLINE_FILE_BYTES && *size <= budget;
                        if fits {
                            budget -= size;
                        }
                        fits
                    }
                    _ => false,
                };
                (local, inline)
            })
            .collect();
        Self {
            path: listing.path,
            entries,
            files,
            inline_bytes: INLINE_BUDGET_BYTES - budget,
        }
    }

    fn depth(&self, root: &Path) -> usize {
        self.path
            .strip_prefix(root)
            .map_or(0, |p| p.components().count())
    }

    /// Files of this directory stored on their own, with their cache
    /// keys and sizes.
    fn stored_paths(&self) -> impl Iterator<Item = (PathBuf, Option<Key>, u64)> + '_ {
        self.entries
            .iter()
            .filter_map(|(local, inline)| match local {
                Local::File {
                    name, key, size, ..
                } if !inline => Some((self.path.join(name), *key, *size)),
                _ => None,
            })
    }

    /// The manifest entries, reading inline files now; also how many
    /// inline files and links there were.
    async fn entries(
        &self,
        children: &HashMap<PathBuf, Done>,
        stored: &HashMap<PathBuf, Stored>,
    ) -> Result<(Vec<Entry>, u64, u64, Vec<XorName>), TreeError> {
        let (mut out, mut inline_files, mut links) = (Vec::new(), 0, 0);
        // Children taken from the put cache, unverified.
        let mut cached = Vec::new();
        for (local, inline) in &self.entries {
            let (name, node, meta) = match local {
                Local::Dir { name, meta } => {
                    let (manifest, size, files, hit) = *children
                        .get(&self.path.join(name))
                        .ok_or_else(|| TreeError::NotFound(name.clone()))?;
                    if hit {
                        cached.push(manifest);
                    }
                    let node = Node::Dir {
                        manifest,
                        size,
                        files,
                    };
                    (name, node, meta)
                }
                Local::Link { name, target, meta } => {
                    links += 1;
                    if target.is_empty() || target.len() > safe_protocol::manifest::MAX_LINK_BYTES {
                        return Err(TreeError::BadName {
                            path: self.path.join(name),
                            reason: "the link's target is empty or too long".into(),
                        });
                    }
                    let node = Node::Symlink {
                        target: target.clone(),
                    };
                    (name, node, meta)
                }
                Local::File { name, meta, .. } if *inline => {
                    inline_files += 1;
                    let path = self.path.join(name);
                    let bytes = tokio::fs::read(&path).await.map_err(read_err(&path))?;
                    if bytes.len() > MAX_INLINE_BYTES {
                        // It grew since the walk: this would not be a
                        // snapshot of what was walked.
                        return Err(TreeError::Read {
                            path,
                            source: std::io::Error::other("the file changed while it was stored"),
                        });
                    }
                    let node = Node::File {
                        size: bytes.len() as u64,
                        data: FileData::Inline(bytes),
                    };
                    (name, node, meta)
                }
                Local::File { name, meta, .. } => {
                    let (file, size, hit) = *stored
                        .get(&self.path.join(name))
                        .ok_or_else(|| TreeError::NotFound(name.clone()))?;
                    if hit {
                        cached.push(file);
                    }
                    let node = Node::File {
                        size,
                        data: FileData::Stored(file),
                    };
                    (name, node, meta)
                }
            };
            out.push(Entry {
                name: name.clone(),
                node,
                meta: *meta,
            });
        }
        Ok((out, inline_files, links, cached))
    }
}

/// A file stored on its own: its root name, size, and whether the name
/// came from the put cache (not yet checked on the network).
type Stored = (XorName, u64, bool);
/// A directory done: its manifest's name, totals, and whether the name
/// came from the put cache (not yet checked).
type Done = (XorName, u64, u64, bool);

/// A name from the put cache that the network no longer holds.
struct StaleCache;

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn tree(root: &Path) {
        write(&root.join("a.txt"), b"hello");
        write(&root.join("docs/index.html"), b"<h1>hi</h1>");
        write(&root.join("docs/big.bin"), &vec![7u8; 200_000]);
        write(&root.join("docs/deep/er/x"), b"x");
        std::fs::create_dir_all(root.join("empty")).unwrap();
        write(&root.join("run.sh"), b"#!/bin/sh\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("../outside", root.join("docs/link")).unwrap();
    }

    /// The names at the top of a local directory, sorted.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn trees_round_trip_and_a_change_touches_only_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        tree(&src);
        let client = Client::local(dir.path().join("store")).unwrap();
        let put = client
            .put_tree(&src, &TreeOptions::default())
            .await
            .unwrap();
        assert_eq!(
            (put.files, put.dirs, put.links),
            (5, 5, 1),
            "src, docs, deep, er, empty"
        );
        let again = client
            .put_tree(&src, &TreeOptions::default())
            .await
            .unwrap();
        assert_eq!(
            again.address, put.address,
            "the same tree, the same address"
        );

        let out = dir.path().join("out");
        client.get_tree(put.address.name, &out).await.unwrap();
        for f in [
            "a.txt",
            "docs/index.html",
            "docs/big.bin",
            "docs/deep/er/x",
            "run.sh",
        ] {
            assert_eq!(
                std::fs::read(out.join(f)).unwrap(),
                std::fs::read(src.join(f)).unwrap(),
                "{f}"
            );
        }
        assert!(out.join("empty").is_dir());
        assert_eq!(
            std::fs::read_link(out.join("docs/link")).unwrap(),
            Path::new("../outside")
        );
        use std::os::unix::fs::PermissionsExt;
        assert_ne!(
            std::fs::metadata(out.join("run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o100,
            0
        );
        assert_eq!(
            std::fs::metadata(out.join("a.txt"))
                .unwrap()
                .permissions()
                .mode()
                & 0o100,
            0
        );
        assert_eq!(names_in(&out), names_in(&src));

        // One file deep down changes: its directories' manifests change,
        // every other subtree keeps its address.
        let before = client.find(put.address.name, &[]).await.unwrap();
        write(&src.join("docs/deep/er/x"), b"changed");
        let changed = client
            .put_tree(&src, &TreeOptions::default())
            .await
            .unwrap();
        assert_ne!(changed.address, put.address);
        let after = client.find(changed.address.name, &[]).await.unwrap();
        let (Found::Dir { listing: b, .. }, Found::Dir { listing: a, .. }) = (before, after) else {
            panic!("the top is a directory");
        };
        for (x, y) in b.entries().iter().zip(a.entries()) {
            assert_eq!(x.name, y.name);
            if x.name == "docs" {
                assert_ne!(x, y, "on the path to the change");
            } else {
                assert_eq!(x, y, "{} is off the path and unchanged", x.name);
            }
        }

        // Paths inside the snapshot.
        let found = client
            .find(put.address.name, &["docs".into(), "index.html".into()])
            .await
            .unwrap();
        assert!(matches!(
            found,
            Found::Entry(Entry {
                node: Node::File { size: 11, .. },
                ..
            })
        ));
        assert!(matches!(
            client.find(put.address.name, &["nope".into()]).await,
            Err(TreeError::NotFound(_))
        ));
        assert!(matches!(
            client
                .find(put.address.name, &["a.txt".into(), "x".into()])
                .await,
            Err(TreeError::NotADirectory(_))
        ));
        // An existing, non-empty output is refused and left alone.
        assert!(matches!(
            client.get_tree(put.address.name, &out).await,
            Err(TreeError::Exists(_))
        ));
    }

    #[tokio::test]
    async fn a_cache_from_another_store_costs_uploads_never_a_broken_tree() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        tree(&src);
        let options = TreeOptions {
            progress: None,
            cache: Some(dir.path().join("cache")),
            secret: None,
        };
        let a = Client::local(dir.path().join("a")).unwrap();
        let first = a.put_tree(&src, &options).await.unwrap();
        assert!(dir.path().join("cache").exists());
        // The cache names roots that store b does not hold: b gets every
        // chunk anyway, and the tree reads back whole from b.
        let b = Client::local(dir.path().join("b")).unwrap();
        let second = b.put_tree(&src, &options).await.unwrap();
        assert_eq!(second.address, first.address);
        let out = dir.path().join("out");
        b.get_tree(second.address.name, &out).await.unwrap();
        assert_eq!(
            std::fs::read(out.join("docs/big.bin")).unwrap(),
            vec![7u8; 200_000]
        );
        // The top changed (so it is stored afresh) while the cache names
        // the rest, which store c lacks: checked before the top is
        // stored, and stored again.
        let c = Client::local(dir.path().join("c")).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        write(&src.join("new.txt"), b"new at the top");
        let third = c.put_tree(&src, &options).await.unwrap();
        assert_ne!(third.address, first.address);
        let out = dir.path().join("out-c");
        c.get_tree(third.address.name, &out).await.unwrap();
        assert_eq!(
            std::fs::read(out.join("docs/big.bin")).unwrap(),
            vec![7u8; 200_000]
        );
        assert_eq!(
            std::fs::read(out.join("new.txt")).unwrap(),
            b"new at the top"
        );
    }

    #[tokio::test]
    async fn symlink_loops_are_kept_as_links_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        write(&src.join("sub/file.txt"), b"once");
        std::os::unix::fs::symlink("b", src.join("a")).unwrap();
        std::os::unix::fs::symlink("a", src.join("b")).unwrap();
        std::os::unix::fs::symlink("..", src.join("sub/up")).unwrap();
        std::os::unix::fs::symlink(".", src.join("self")).unwrap();
        let client = Client::local(dir.path().join("store")).unwrap();
        let put = client
            .put_tree(&src, &TreeOptions::default())
            .await
            .unwrap();
        assert_eq!((put.files, put.links), (1, 4), "nothing followed: {put:?}");
        let out = dir.path().join("out");
        client.get_tree(put.address.name, &out).await.unwrap();
        for (link, target) in [("a", "b"), ("b", "a"), ("sub/up", ".."), ("self", ".")] {
            assert_eq!(
                std::fs::read_link(out.join(link)).unwrap(),
                Path::new(target),
                "{link}"
            );
        }
        assert_eq!(std::fs::read(out.join("sub/file.txt")).unwrap(), b"once");
    }

    #[tokio::test]
    async fn a_snapshot_that_lies_about_its_contents_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::local(dir.path().join("store")).unwrap();
        let leaf = Manifest::new(vec![Entry {
            name: "f".into(),
            node: Node::File {
                size: 3,
                data: FileData::Inline(b"abc".to_vec()),
            },
            meta: Meta::default(),
        }])
        .unwrap();
        let leaf_name = client
            .put_bytes(leaf.encode().unwrap())
            .await
            .unwrap()
            .address
            .name;
        // A parent that says its child holds one byte, not three: a bomb
        // would under-declare to get past the free-space check.
        let liar = Manifest::new(vec![Entry {
            name: "d".into(),
            node: Node::Dir {
                manifest: leaf_name,
                size: 1,
                files: 1,
            },
            meta: Meta::default(),
        }])
        .unwrap();
        let liar_name = client
            .put_bytes(liar.encode().unwrap())
            .await
            .unwrap()
            .address
            .name;
        let out = dir.path().join("out");
        let err = client.get_tree(liar_name, &out).await.unwrap_err();
        assert!(err.to_string().contains("declared"), "{err}");
        assert!(!out.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".safe-get-"))
            .collect();
        assert!(leftovers.is_empty(), "the staging directory is removed");
    }

    #[tokio::test]
    async fn special_files_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        write(&src.join("ok"), b"ok");
        let fifo = src.join("pipe");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let client = Client::local(dir.path().join("store")).unwrap();
        assert!(matches!(
            client.put_tree(&src, &TreeOptions::default()).await,
            Err(TreeError::Special(_))
        ));
        std::fs::remove_file(&fifo).unwrap();
        use std::os::unix::ffi::OsStrExt;
        let bad = src.join(std::ffi::OsStr::from_bytes(b"bad\xff"));
        std::fs::write(&bad, b"x").unwrap();
        let err = client
            .put_tree(&src, &TreeOptions::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }
}
