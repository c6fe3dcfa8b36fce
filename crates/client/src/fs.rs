//! The user's own filesystem: private directory snapshots with a version
//! log, changed by compare-and-swap and merged three ways when two
//! machines change it at once.
//!
//! - **Private.** The tree is a snapshot ([`crate::tree`]) whose files and
//!   manifests are self-encrypted in private mode with a secret derived
//!   from the account's root secret, so nobody without the account can
//!   list or read anything. Unchanged subtrees keep their addresses, so a
//!   change costs the path from it to the root.
//! - **Versions.** A record owned by a key derived from the root secret
//!   (tag [`FS_TAG`]) keeps the last [`MAX_VERSIONS`] versions, each the
//!   root manifest with its number, parent, time, size and file count,
//!   sealed (XChaCha20-Poly1305, a key from the root secret). The head is
//!   the highest number. Every command builds a new root from the head and
//!   commits it as the next version with one owner operation on the
//!   record's version (compare-and-swap): interrupted before that, nothing
//!   changed.
//! - **Two machines at once.** When the commit finds that another version
//!   got in first, the change is merged three ways (the version it started
//!   from, its own result, the other's) and committed again: changes to
//!   different files both survive; the same file changed on both sides
//!   keeps both, the other's under its name and ours under
//!   `NAME.conflict-N`; a file removed on one side and changed on the
//!   other is kept.
//!
//! Design notes: docs/DESIGN-fs.md.

use std::path::Path;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use safe_protocol::manifest::{Entry, FileData, Manifest, Meta, Node, check_name};
use safe_protocol::mutable::{Change, Record, RecordError, SigningKey, Write, record_address};
use safe_protocol::name::{FOLLOW_ENTRY, PUBLICATION_TAG};
use safe_protocol::{Address, DataKind, XorName, codec};
use safe_selfenc::Secret;
use serde::{Deserialize, Serialize};

use crate::account::Account;
use crate::client::{Client, PutOptions};
use crate::mutable::{MutableError, new_create, update_from};
use crate::store::RecordStore;
use crate::tree::{Found, TreeError, TreeOptions, TreeReport};

/// Type tag of an account's version log.
pub const FS_TAG: u64 = 0x5afe_acc0_0000_0003;
/// Versions kept in the log (older ones drop out, oldest first).
pub const MAX_VERSIONS: u64 = 1000;
/// Commits tried before giving up on a log that keeps changing.
pub const COMMIT_ATTEMPTS: usize = 8;
/// Format of a sealed version.
const VERSION_FORMAT: u8 = 1;
/// Largest encoded version.
const MAX_VERSION_BYTES: usize = 1024;
/// Every version is padded to this many bytes before it is sealed.
const SEALED_VERSION_BYTES: usize = 512;

/// Why a filesystem operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// No such path.
    #[error("no {0} in your filesystem")]
    NotFound(String),
    /// A path that must be a directory is not.
    #[error("{0} is not a directory")]
    NotADirectory(String),
    /// The path exists already.
    #[error("{0} exists already")]
    Exists(String),
    /// `rm` of a non-empty directory without `-r`.
    #[error("{0} is a directory that is not empty (use -r to remove it and everything in it)")]
    NotEmpty(String),
    /// A path that is not valid.
    #[error("invalid path {0:?}: {1}")]
    BadPath(String, String),
    /// No such version.
    #[error("no version {0} (see `safe fs history`)")]
    NoVersion(u64),
    /// The root itself cannot be changed this way.
    #[error("this cannot be done to the root directory")]
    Root,
    /// Moving a directory into itself.
    #[error("cannot move or copy {0} into itself")]
    IntoItself(String),
    /// A tree operation failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The version log could not be read or written.
    #[error(transparent)]
    Mutable(#[from] MutableError),
    /// Another machine kept committing.
    #[error("the filesystem kept changing underneath; nothing was changed, try again")]
    Busy,
    /// Sealing failed (no randomness).
    #[error("{0}")]
    Seal(String),
    /// The output could not be written.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// The version log holds an entry this program cannot open.
    #[error(
        "your filesystem's version log holds an entry this program cannot read (written by a newer version?); nothing was changed"
    )]
    Damaged,
    /// A change of kind that would lose what is there.
    #[error("{0}; nothing was changed")]
    KindChange(String),
}

impl From<crate::files::PutError> for FsError {
    fn from(e: crate::files::PutError) -> Self {
        FsError::Tree(TreeError::Put(e))
    }
}

impl From<crate::files::GetError> for FsError {
    fn from(e: crate::files::GetError) -> Self {
        FsError::Tree(TreeError::Get(e))
    }
}

/// One version of the filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// 1, 2, … (0 is the empty filesystem, never stored).
    pub number: u64,
    /// The root directory's manifest (private).
    pub root: XorName,
    /// When it was committed, seconds since the Unix epoch.
    pub time: i64,
    /// Bytes of all files.
    pub size: u64,
    /// Files.
    pub files: u64,
    /// What made it (the command, for `history`).
    pub note: String,
}

/// A path in the filesystem: its components (empty: the root).
pub fn parse_path(text: &str) -> Result<Vec<String>, FsError> {
    let mut out = Vec::new();
    for part in text.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        check_name(part).map_err(|e| FsError::BadPath(text.to_string(), e.to_string()))?;
        out.push(part.to_string());
    }
    if out.len() > safe_protocol::url::MAX_PATH_DEPTH {
        return Err(FsError::BadPath(text.to_string(), "too deep".into()));
    }
    Ok(out)
}

fn shown(path: &[String]) -> String {
    format!("/{}", path.join("/"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The filesystem of one account, through one client.
pub struct Fs<'a> {
    client: &'a Client,
    secret: Secret,
    log: XorName,
    log_name: Vec<u8>,
    owner: SigningKey,
    seal: XChaCha20Poly1305,
    /// Where publication records' names come from.
    publications: [u8; 32],
}

/// What a change did, for the user.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The version committed (`None`: nothing changed, nothing committed).
    pub version: Option<Version>,
    /// Names kept under conflict names by a merge.
    pub conflicts: Vec<String>,
}

/// What `sync` found different, in files (a link counts as one file; a
/// directory added or removed counts the files in it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Files new.
    pub added: u64,
    /// Files changed.
    pub changed: u64,
    /// Files gone.
    pub removed: u64,
}

impl<'a> Fs<'a> {
    /// The filesystem of `account`.
    pub fn new(client: &'a Client, account: &Account) -> Self {
        let root = account.root();
        let log_name = root.derive("fs log").to_vec();
        Fs {
            client,
            secret: Secret::from_bytes(*root.derive("fs data")),
            log: record_address(&log_name, FS_TAG),
            log_name,
            owner: SigningKey::from_bytes(&root.derive("fs owner")),
            seal: XChaCha20Poly1305::new(root.derive("fs seal").as_ref().into()),
            publications: *root.derive("fs publications"),
        }
    }

    /// The secret the tree is encrypted with (for a put cache's name).
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    // ---- the version log ----

    fn slot(number: u64) -> Vec<u8> {
        format!("v{:04}", number % MAX_VERSIONS).into_bytes()
    }

    fn seal_version(&self, v: &Version) -> Result<Vec<u8>, FsError> {
        let encoded = codec::encode(VERSION_FORMAT, v).map_err(|e| FsError::Seal(e.to_string()))?;
        // Padded to one size, so the sealed length tells nothing of the
        // note (the command and its path).
        let len = u16::try_from(encoded.len())
            .ok()
            .filter(|n| usize::from(*n) + 2 <= SEALED_VERSION_BYTES)
            .ok_or_else(|| FsError::Seal("version too large".into()))?;
        let mut plain = len.to_be_bytes().to_vec();
        plain.extend_from_slice(&encoded);
        plain.resize(SEALED_VERSION_BYTES, 0);
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| FsError::Seal(e.to_string()))?;
        let aad = [self.log.as_bytes().as_slice(), &Self::slot(v.number)].concat();
        let sealed = self
            .seal
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| FsError::Seal("sealing failed".into()))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    fn open_version(&self, slot: &[u8], value: &[u8]) -> Option<Version> {
        if value.len() < 24 {
            return None;
        }
        let (nonce, sealed) = value.split_at(24);
        let aad = [self.log.as_bytes().as_slice(), slot].concat();
        let plain = self
            .seal
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()?;
        let len = usize::from(u16::from_be_bytes([*plain.first()?, *plain.get(1)?]));
        let encoded = plain.get(2..2 + len)?;
        let v: Version = codec::decode(VERSION_FORMAT, encoded, MAX_VERSION_BYTES).ok()?;
        (Self::slot(v.number) == slot).then_some(v)
    }

    /// The versions a log record holds, oldest first. A slot that does not
    /// open (a newer format, damage) is an error, never skipped: skipping
    /// it could make an older version look like the head.
    fn versions_of(&self, record: &Record) -> Result<Vec<Version>, FsError> {
        let mut versions = Vec::with_capacity(record.state.entries.len());
        for (k, v) in &record.state.entries {
            versions.push(self.open_version(k, v).ok_or(FsError::Damaged)?);
        }
        versions.sort_by_key(|v| v.number);
        Ok(versions)
    }

    /// Every version kept, oldest first, and the log record (`None`: no
    /// version yet).
    async fn log(&self) -> Result<(Vec<Version>, Option<Record>), FsError> {
        match self.client.get_record(self.log).await {
            Ok(r) => Ok((self.versions_of(&r)?, Some(r))),
            Err(MutableError::NotFound(_)) => Ok((Vec::new(), None)),
            Err(e) => Err(e.into()),
        }
    }

    /// Every version kept, oldest first.
    pub async fn history(&self) -> Result<Vec<Version>, FsError> {
        Ok(self.log().await?.0)
    }

    /// The latest version (`None`: the filesystem is empty, never
    /// changed).
    pub async fn head(&self) -> Result<Option<Version>, FsError> {
        Ok(self.log().await?.0.pop())
    }

    /// The root manifest of version `number` (`None`: the latest).
    pub async fn root_of(&self, number: Option<u64>) -> Result<Option<XorName>, FsError> {
        let versions = self.history().await?;
        match number {
            None => Ok(versions.last().map(|v| v.root)),
            Some(0) => Ok(None),
            Some(n) => versions
                .iter()
                .find(|v| v.number == n)
                .map(|v| Some(v.root))
                .ok_or(FsError::NoVersion(n)),
        }
    }

    // ---- reading ----

    async fn manifest(&self, name: Option<XorName>) -> Result<Manifest, FsError> {
        match name {
            Some(n) => Ok(self.client.read_manifest_in(n, Some(&self.secret)).await?),
            None => Ok(Manifest::default()),
        }
    }

    /// What `path` names in version `version` (`None`: the latest).
    pub async fn find(&self, path: &[String], version: Option<u64>) -> Result<Found, FsError> {
        let root = self.root_of(version).await?;
        self.find_in(root, path).await
    }

    /// What `path` names under the root manifest `root` (a
    /// [`Version::root`]; `None`: the empty filesystem).
    pub async fn find_at(&self, root: Option<XorName>, path: &[String]) -> Result<Found, FsError> {
        self.find_in(root, path).await
    }

    async fn find_in(&self, root: Option<XorName>, path: &[String]) -> Result<Found, FsError> {
        match root {
            Some(r) => match self.client.find_in(r, path, Some(&self.secret)).await {
                Ok(f) => Ok(f),
                Err(TreeError::NotFound(p)) => Err(FsError::NotFound(format!("/{p}"))),
                Err(TreeError::NotADirectory(p)) => Err(FsError::NotADirectory(format!("/{p}"))),
                Err(e) => Err(e.into()),
            },
            None if path.is_empty() => Ok(Found::Dir {
                manifest: XorName([0; 32]),
                listing: Arc::default(),
            }),
            None => Err(FsError::NotFound(shown(path))),
        }
    }

    /// Writes what `path` names (a file or a whole directory) to `out`,
    /// from version `version` (`None`: the latest).
    pub async fn get(
        &self,
        path: &[String],
        version: Option<u64>,
        out: &Path,
    ) -> Result<TreeReport, FsError> {
        self.get_with(path, version, out, None).await
    }

    /// [`Fs::get`], calling `progress` with bytes written so far and the
    /// total.
    pub async fn get_with(
        &self,
        path: &[String],
        version: Option<u64>,
        out: &Path,
        progress: Option<std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>>,
    ) -> Result<TreeReport, FsError> {
        let root = self.root_of(version).await?;
        self.get_at(root, path, out, progress).await
    }

    /// [`Fs::get_with`] under the root manifest `root`.
    async fn get_at(
        &self,
        root: Option<XorName>,
        path: &[String],
        out: &Path,
        progress: Option<std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>>,
    ) -> Result<TreeReport, FsError> {
        match self.find_in(root, path).await? {
            Found::Dir { manifest, listing } => {
                if listing.entries().is_empty() {
                    let empty_already =
                        std::fs::read_dir(out).is_ok_and(|mut items| items.next().is_none());
                    if !empty_already {
                        std::fs::create_dir(out).map_err(|source| TreeError::Write {
                            path: out.to_path_buf(),
                            source,
                        })?;
                    }
                    return Ok(TreeReport {
                        address: Address::new(DataKind::Directory, manifest),
                        files: 0,
                        dirs: 1,
                        links: 0,
                        bytes: 0,
                    });
                }
                Ok(self
                    .client
                    .get_tree_with(manifest, out, Some(&self.secret), progress)
                    .await?)
            }
            Found::Entry(entry) => {
                let Node::File { data, size } = &entry.node else {
                    return Err(FsError::BadPath(
                        shown(path),
                        "a symlink; get the directory it is in instead".into(),
                    ));
                };
                let mut file = crate::output::OutputFile::create(out)?;
                match data {
                    FileData::Inline(b) => {
                        file.writer()
                            .write_all(b)
                            .map_err(|source| TreeError::Write {
                                path: out.to_path_buf(),
                                source,
                            })?
                    }
                    FileData::Stored(name) => {
                        let address = Address::new(DataKind::File, *name);
                        let opened = self.client.open_file(&address, Some(&self.secret)).await?;
                        let mut w = Counting {
                            inner: file.writer(),
                            done: 0,
                            total: *size,
                            progress: progress.as_deref(),
                        };
                        self.client.read_range(&opened, 0..*size, &mut w).await?;
                    }
                }
                file.finish()?;
                Ok(TreeReport {
                    address: Address::new(DataKind::File, XorName([0; 32])),
                    files: 1,
                    dirs: 0,
                    links: 0,
                    bytes: *size,
                })
            }
        }
    }

    // ---- changing ----

    /// Stores `manifest` (private); its name.
    async fn store(&self, manifest: &Manifest) -> Result<XorName, FsError> {
        let bytes = manifest.encode().map_err(TreeError::Manifest)?;
        Ok(self
            .client
            .put_bytes_with(bytes, Some(&self.secret))
            .await?
            .address
            .name)
    }

    /// A directory entry for the stored `manifest`.
    fn dir_entry(name: &str, manifest: XorName, listing: &Manifest, meta: Meta) -> Entry {
        Entry {
            name: name.to_string(),
            node: Node::Dir {
                manifest,
                size: listing.total_size(),
                files: listing.total_files(),
            },
            meta,
        }
    }

    /// The root after replacing what `path` names by `f(what is there)`
    /// (`None` removes it). Missing parents are made (as `mkdir -p`).
    async fn edit(
        &self,
        root: Option<XorName>,
        path: &[String],
        f: impl FnOnce(Option<&Entry>) -> Result<Option<Entry>, FsError>,
    ) -> Result<XorName, FsError> {
        let Some((last, parents)) = path.split_last() else {
            return Err(FsError::Root);
        };
        // Down: the manifests along the way.
        let mut chain: Vec<(Manifest, Meta)> = Vec::new();
        let mut here = Some(self.manifest(root).await?);
        for (i, part) in parents.iter().enumerate() {
            let listing = here.take().unwrap_or_default();
            let next = match listing.get(part) {
                Some(Entry {
                    node: Node::Dir { manifest, .. },
                    meta,
                    ..
                }) => Some((self.manifest(Some(*manifest)).await?, *meta)),
                Some(_) => return Err(FsError::NotADirectory(shown(&path[..=i]))),
                None => None,
            };
            let (child, meta) = next.unwrap_or_else(|| {
                (
                    Manifest::default(),
                    Meta {
                        executable: false,
                        modified: Some(now()),
                    },
                )
            });
            chain.push((listing, meta));
            here = Some(child);
        }
        let leaf = here.unwrap_or_default();
        let mut entries: Vec<Entry> = leaf.entries().to_vec();
        let replaced = f(leaf.get(last))?;
        entries.retain(|e| e.name != *last);
        entries.extend(replaced);
        let mut listing = Manifest::new(entries).map_err(TreeError::Manifest)?;
        let mut name = self.store(&listing).await?;
        // Up: each parent now names its new child.
        for (depth, (parent, meta)) in chain.into_iter().enumerate().rev() {
            let part = &parents[depth];
            let mut entries: Vec<Entry> = parent.entries().to_vec();
            entries.retain(|e| e.name != *part);
            entries.push(Self::dir_entry(part, name, &listing, meta));
            listing = Manifest::new(entries).map_err(TreeError::Manifest)?;
            name = self.store(&listing).await?;
        }
        Ok(name)
    }

    /// Runs `change` on the latest root and commits the result as the next
    /// version; when another machine committed first, merges three ways
    /// and commits again.
    ///
    /// Each attempt takes the head and the next number from the very log
    /// record its compare-and-swap runs against, and after a merge the
    /// head merged with becomes the base of the next merge.
    pub async fn commit<F, Fut>(&self, note: &str, change: F) -> Result<Committed, FsError>
    where
        F: FnOnce(Option<XorName>) -> Fut,
        Fut: std::future::Future<Output = Result<XorName, FsError>>,
    {
        let (versions, mut record) = self.log().await?;
        let mut base = versions.last().map(|v| v.root);
        let mut root = change(base).await?;
        if Some(root) == base {
            return Ok(Committed {
                version: None,
                conflicts: Vec::new(),
            });
        }
        let mut conflicts = Vec::new();
        for _ in 0..COMMIT_ATTEMPTS {
            let record_now = match record.take() {
                Some(r) => r,
                None => self.create_log().await?,
            };
            let head = self.versions_of(&record_now)?.pop();
            let head_root = head.as_ref().map(|v| v.root);
            if head_root != base {
                if head_root == Some(root) {
                    // Ours, committed after all (a retry after a timeout).
                    return Ok(Committed {
                        version: head,
                        conflicts,
                    });
                }
                // Another machine got in first: merge its version with ours.
                root = self
                    .merge(base, Some(root), head_root, &mut conflicts, &mut Vec::new())
                    .await?;
                base = head_root;
                if Some(root) == head_root {
                    return Ok(Committed {
                        version: None,
                        conflicts,
                    });
                }
            }
            let listing = self.manifest(Some(root)).await?;
            let version = Version {
                number: head.as_ref().map_or(0, |v| v.number) + 1,
                root,
                time: now(),
                size: listing.total_size(),
                files: listing.total_files(),
                note: short(note),
            };
            let change = Change::Set {
                key: Self::slot(version.number),
                value: self.seal_version(&version)?,
            };
            match update_from(
                self.client,
                record_now,
                change,
                std::slice::from_ref(&self.owner),
            )
            .await
            {
                Ok(_) => {
                    return Ok(Committed {
                        version: Some(version),
                        conflicts,
                    });
                }
                Err(MutableError::Refused(
                    RecordError::WrongVersion { .. } | RecordError::Conflict,
                )) => record = self.log().await?.1,
                Err(e) => return Err(e.into()),
            }
        }
        Err(FsError::Busy)
    }

    async fn create_log(&self) -> Result<Record, FsError> {
        let create = new_create(
            &self.log_name,
            FS_TAG,
            vec![self.owner.verifying_key().to_bytes()],
            1,
            false,
            &self.owner,
        )?;
        match RecordStore::write_record(self.client, &Write::Create(create)).await {
            Ok(()) | Err(MutableError::Refused(RecordError::AlreadyExists)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self.client.get_record(self.log).await?)
    }

    /// The three-way merge of directory manifests `base`, `ours` and
    /// `theirs` (`None`: empty); the full paths of entries kept under a
    /// conflict name go to `conflicts`. `at` is the directory's path.
    fn merge<'b>(
        &'b self,
        base: Option<XorName>,
        ours: Option<XorName>,
        theirs: Option<XorName>,
        conflicts: &'b mut Vec<String>,
        at: &'b mut Vec<String>,
    ) -> futures::future::BoxFuture<'b, Result<XorName, FsError>> {
        Box::pin(async move {
            if at.len() > safe_protocol::url::MAX_PATH_DEPTH {
                return Err(FsError::BadPath(shown(at), "too deep".into()));
            }
            let (b, o, t) = (
                self.manifest(base).await?,
                self.manifest(ours).await?,
                self.manifest(theirs).await?,
            );
            let mut names: Vec<&str> = o
                .entries()
                .iter()
                .chain(t.entries())
                .chain(b.entries())
                .map(|e| e.name.as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            let mut out: Vec<Entry> = Vec::new();
            let mut extra: Vec<Entry> = Vec::new();
            for name in names {
                let (be, oe, te) = (b.get(name), o.get(name), t.get(name));
                let pick = match (oe, te) {
                    _ if oe == be => te.cloned(),
                    _ if te == be || oe == te => oe.cloned(),
                    // The same content both sides (times aside): theirs.
                    (Some(x), Some(y)) if x.node == y.node => te.cloned(),
                    (
                        Some(
                            x @ Entry {
                                node: Node::Dir { manifest: om, .. },
                                ..
                            },
                        ),
                        Some(Entry {
                            node: Node::Dir { manifest: tm, .. },
                            ..
                        }),
                    ) => {
                        let bm = match be {
                            Some(Entry {
                                node: Node::Dir { manifest, .. },
                                ..
                            }) => Some(*manifest),
                            _ => None,
                        };
                        at.push(name.to_string());
                        let merged = self.merge(bm, Some(*om), Some(*tm), conflicts, at).await;
                        at.pop();
                        let merged = merged?;
                        let listing = self.manifest(Some(merged)).await?;
                        Some(Self::dir_entry(name, merged, &listing, x.meta))
                    }
                    // Changed on one side, removed on the other: kept.
                    (Some(x), None) | (None, Some(x)) => Some(x.clone()),
                    (Some(mine), Some(other)) => {
                        let taken = |c: &str| {
                            b.get(c).is_some()
                                || o.get(c).is_some()
                                || t.get(c).is_some()
                                || extra.iter().any(|e| e.name == c)
                        };
                        let mut n = 1;
                        let mut candidate = conflict_name(name, n);
                        while taken(&candidate) {
                            n += 1;
                            candidate = conflict_name(name, n);
                        }
                        at.push(candidate.clone());
                        conflicts.push(shown(at));
                        at.pop();
                        extra.push(Entry {
                            name: candidate,
                            ..mine.clone()
                        });
                        Some(other.clone())
                    }
                    (None, None) => None,
                };
                out.extend(pick);
            }
            out.extend(extra);
            let listing = Manifest::new(out).map_err(TreeError::Manifest)?;
            self.store(&listing).await
        })
    }

    // ---- commands ----

    /// `mkdir`: an empty directory at `path` (parents made as needed).
    pub async fn mkdir(&self, path: &[String]) -> Result<Committed, FsError> {
        let note = format!("mkdir {}", shown(path));
        let empty = self.store(&Manifest::default()).await?;
        self.commit(&note, |root| async move {
            self.edit(root, path, |there| match there {
                Some(_) => Err(FsError::Exists(shown(path))),
                None => Ok(Some(Self::dir_entry(
                    path.last().map_or("", String::as_str),
                    empty,
                    &Manifest::default(),
                    Meta {
                        executable: false,
                        modified: Some(now()),
                    },
                ))),
            })
            .await
        })
        .await
    }

    /// Stores the local file or directory `local` at `path`, replacing
    /// what is there. `cache`: the put cache (for directories).
    pub async fn put(
        &self,
        local: &Path,
        path: &[String],
        options: &TreeOptions,
    ) -> Result<(Committed, TreeReport), FsError> {
        // A file put at a directory goes into it, under its own name.
        let mut path = path.to_vec();
        let is_dir = local.is_dir();
        if !is_dir
            && let Ok(Found::Dir { .. }) = self.find(&path, None).await
            && let Some(name) = local.file_name().and_then(|n| n.to_str())
        {
            path.push(name.to_string());
        }
        let path = &path[..];
        let (entry, report) = self.upload(local, path, options).await?;
        let note = format!("put {}", shown(path));
        let committed = self
            .commit(&note, |root| async move {
                self.edit(root, path, |there| match there {
                    Some(Entry {
                        node: Node::Dir { .. },
                        ..
                    }) if !is_dir => Err(FsError::KindChange(format!(
                        "{} is a directory",
                        shown(path)
                    ))),
                    Some(Entry {
                        node: Node::File { .. } | Node::Symlink { .. },
                        ..
                    }) if is_dir => Err(FsError::KindChange(format!(
                        "{} is a file; remove it first to put a directory there",
                        shown(path)
                    ))),
                    _ => Ok(Some(entry)),
                })
                .await
            })
            .await?;
        Ok((committed, report))
    }

    /// The entry `local` becomes at `path` (stored, private).
    async fn upload(
        &self,
        local: &Path,
        path: &[String],
        options: &TreeOptions,
    ) -> Result<(Entry, TreeReport), FsError> {
        let Some(name) = path.last() else {
            return Err(FsError::Root);
        };
        let meta = std::fs::metadata(local).map_err(|source| TreeError::Read {
            path: local.to_path_buf(),
            source,
        })?;
        let options = TreeOptions {
            secret: Some(self.secret.clone()),
            ..options.clone()
        };
        if meta.is_dir() {
            let report = self.client.put_tree(local, &options).await?;
            let listing = self.manifest(Some(report.address.name)).await?;
            let entry = Self::dir_entry(
                name,
                report.address.name,
                &listing,
                crate::tree::meta_of(&meta),
            );
            return Ok((entry, report));
        }
        let put = PutOptions {
            secret: Some(self.secret.clone()),
            ..PutOptions::default()
        };
        let stored = self.client.put_file(local, &put).await?;
        let entry = Entry {
            name: name.clone(),
            node: Node::File {
                size: stored.size,
                data: FileData::Stored(stored.address.name),
            },
            meta: crate::tree::meta_of(&meta),
        };
        let report = TreeReport {
            address: stored.address,
            files: 1,
            dirs: 0,
            links: 0,
            bytes: stored.size,
        };
        Ok((entry, report))
    }

    /// Removes `path`; a non-empty directory only with `recursive`.
    pub async fn rm(&self, path: &[String], recursive: bool) -> Result<Committed, FsError> {
        let note = format!("rm {}", shown(path));
        self.commit(&note, |root| async move {
            if let Found::Dir { listing, .. } = self.find_in(root, path).await?
                && !recursive
                && !listing.entries().is_empty()
            {
                return Err(FsError::NotEmpty(shown(path)));
            }
            self.edit(root, path, |there| match there {
                None => Err(FsError::NotFound(shown(path))),
                Some(_) => Ok(None),
            })
            .await
        })
        .await
    }

    /// Copies (`keep`) or moves `from` to `to`. Copying costs nothing on
    /// the network beyond the new manifests: the entry is the same data.
    pub async fn copy(
        &self,
        from: &[String],
        to: &[String],
        keep: bool,
    ) -> Result<Committed, FsError> {
        if from.is_empty() || to.is_empty() {
            return Err(FsError::Root);
        }
        if to.len() > from.len() && to.starts_with(from) {
            return Err(FsError::IntoItself(shown(from)));
        }
        let note = format!(
            "{} {} {}",
            if keep { "cp" } else { "mv" },
            shown(from),
            shown(to)
        );
        self.commit(&note, |root| async move {
            let entry = match self.find_in(root, from).await? {
                Found::Entry(e) => e,
                Found::Dir { manifest, listing } => {
                    let meta = match self.find_in(root, &from[..from.len() - 1]).await? {
                        Found::Dir {
                            listing: parent, ..
                        } => parent
                            .get(&from[from.len() - 1])
                            .map(|e| e.meta)
                            .unwrap_or_default(),
                        Found::Entry(_) => Meta::default(),
                    };
                    Self::dir_entry("", manifest, &listing, meta)
                }
            };
            let parent = &to[..to.len() - 1];
            match self.find_in(root, parent).await? {
                Found::Dir { .. } => {}
                Found::Entry(_) => return Err(FsError::NotADirectory(shown(parent))),
            }
            let name = to[to.len() - 1].clone();
            let root = if keep {
                root
            } else {
                Some(self.edit(root, from, |_| Ok(None)).await?)
            };
            self.edit(root, to, |there| match there {
                Some(_) => Err(FsError::Exists(shown(to))),
                None => Ok(Some(Entry { name, ..entry })),
            })
            .await
        })
        .await
    }

    /// Makes the directory at `path` hold exactly the local directory
    /// `local`, sending only what changed (with the put cache); says what
    /// changed. Commits nothing when nothing did.
    pub async fn sync(
        &self,
        local: &Path,
        path: &[String],
        options: &TreeOptions,
    ) -> Result<(Committed, Diff, TreeReport), FsError> {
        if !local.is_dir() {
            return Err(FsError::NotADirectory(local.display().to_string()));
        }
        let (entry, report) = self.upload(local, path, options).await?;
        let Node::Dir { manifest: new, .. } = entry.node else {
            return Err(FsError::NotADirectory(local.display().to_string()));
        };
        let old = match self.find(path, None).await {
            Ok(Found::Dir { manifest, .. }) => Some(manifest),
            Ok(Found::Entry(_)) => return Err(FsError::NotADirectory(shown(path))),
            Err(FsError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let mut diff = Diff::default();
        self.diff(old, Some(new), &mut diff, 0).await?;
        // Committed whenever the tree differs, even by what the counts
        // leave out (an empty directory, a time).
        if old == Some(new) {
            let committed = Committed {
                version: None,
                conflicts: Vec::new(),
            };
            return Ok((committed, diff, report));
        }
        let note = format!("sync {}", shown(path));
        let committed = self
            .commit(&note, |root| async move {
                self.edit(root, path, |_| Ok(Some(entry))).await
            })
            .await?;
        Ok((committed, diff, report))
    }

    /// Counts what differs between two trees, skipping equal subtrees.
    fn diff<'b>(
        &'b self,
        old: Option<XorName>,
        new: Option<XorName>,
        out: &'b mut Diff,
        depth: usize,
    ) -> futures::future::BoxFuture<'b, Result<(), FsError>> {
        Box::pin(async move {
            if old == new {
                return Ok(());
            }
            if depth > safe_protocol::url::MAX_PATH_DEPTH {
                return Err(FsError::BadPath(String::new(), "too deep".into()));
            }
            let (a, b) = (self.manifest(old).await?, self.manifest(new).await?);
            // A directory counts its files; a file or link, one.
            let count = |e: &Entry| match &e.node {
                Node::Dir { files, .. } => *files,
                _ => 1,
            };
            for e in b.entries() {
                match a.get(&e.name) {
                    None => out.added += count(e),
                    Some(x) if x == e => {}
                    Some(x) => match (&x.node, &e.node) {
                        (Node::Dir { manifest: m1, .. }, Node::Dir { manifest: m2, .. }) => {
                            self.diff(Some(*m1), Some(*m2), out, depth + 1).await?;
                        }
                        (Node::Dir { .. }, _) | (_, Node::Dir { .. }) => {
                            out.removed += count(x);
                            out.added += count(e);
                        }
                        _ => out.changed += 1,
                    },
                }
            }
            for e in a.entries() {
                if b.get(&e.name).is_none() {
                    out.removed += count(e);
                }
            }
            Ok(())
        })
    }

    /// The publication record of `path`: a record of the account's that
    /// a name can follow ([`safe_protocol::name::FOLLOW_ENTRY`]), pointing
    /// at where `path` was last published.
    pub fn publication(&self, path: &[String]) -> XorName {
        record_address(&self.publication_name(path), PUBLICATION_TAG)
    }

    fn publication_name(&self, path: &[String]) -> Vec<u8> {
        let mut h = blake3::Hasher::new_keyed(&self.publications);
        h.update(shown(path).as_bytes());
        h.finalize().as_bytes().to_vec()
    }

    /// Points the publication record of `path` at `target` (creating the
    /// record the first time); its address.
    pub async fn set_publication(
        &self,
        path: &[String],
        target: Address,
    ) -> Result<XorName, FsError> {
        let address = self.publication(path);
        let new = crate::NewRecord {
            name: self.publication_name(path),
            tag: PUBLICATION_TAG,
            owners: Vec::new(),
            threshold: 1,
            public_append: false,
        };
        match self.client.create_record(new, &self.owner).await {
            Ok(_) | Err(MutableError::AlreadyCreated { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let value = target.to_string().into_bytes();
        self.client
            .update_with(address, std::slice::from_ref(&self.owner), |_| {
                Ok(Change::Set {
                    key: FOLLOW_ENTRY.to_vec(),
                    value: value.clone(),
                })
            })
            .await?;
        Ok(address)
    }

    /// Publishes `path`: the same contents as a public snapshot or file
    /// that anyone can read, and only them (what `path` holds is fetched
    /// and stored again in public mode; nothing outside it is touched).
    pub async fn publish(&self, path: &[String], scratch: &Path) -> Result<Address, FsError> {
        let out = scratch.join("publish");
        let _ = std::fs::remove_dir_all(&out);
        let result = async {
            // One version throughout.
            let root = self.root_of(None).await?;
            match self.find_in(root, path).await? {
                Found::Dir { .. } => {
                    self.get_at(root, path, &out, None).await?;
                    let report = self.client.put_tree(&out, &TreeOptions::default()).await?;
                    Ok(report.address)
                }
                Found::Entry(Entry {
                    node: Node::File { .. },
                    ..
                }) => {
                    self.get_at(root, path, &out, None).await?;
                    let report = self.client.put_file(&out, &PutOptions::default()).await?;
                    Ok(report.address)
                }
                Found::Entry(_) => Err(FsError::BadPath(
                    shown(path),
                    "a symlink cannot be published on its own".into(),
                )),
            }
        }
        .await;
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_file(&out);
        result
    }
}

/// `NAME.conflict-N`, the name cut (on a character boundary) so that the
/// whole stays a valid name of at most 255 bytes.
fn conflict_name(name: &str, n: u32) -> String {
    let suffix = format!(".conflict-{n}");
    let room = safe_protocol::manifest::MAX_NAME_BYTES - suffix.len();
    let mut end = name.len().min(room);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &name[..end])
}

/// A writer that reports bytes written.
struct Counting<'w> {
    inner: &'w mut (dyn std::io::Write + Send),
    done: u64,
    total: u64,
    progress: Option<&'w (dyn Fn(u64, u64) + Send + Sync)>,
}

impl std::io::Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if let Some(p) = self.progress {
            p(self.done, self.total);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A note cut to at most 200 bytes (on a character boundary).
fn short(note: &str) -> String {
    let mut end = note.len().min(200);
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RootSecret;

    fn p(text: &str) -> Vec<String> {
        parse_path(text).unwrap()
    }

    fn file(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    async fn names(fs: &Fs<'_>, path: &str) -> Vec<String> {
        match fs.find(&p(path), None).await.unwrap() {
            Found::Dir { listing, .. } => {
                listing.entries().iter().map(|e| e.name.clone()).collect()
            }
            Found::Entry(e) => vec![e.name],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_private_versioned_tree_with_merges() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::local(dir.path().join("store")).unwrap();
        let account = client
            .create_account(
                "tester",
                "a long enough password",
                RootSecret::generate().unwrap(),
                |_| {},
            )
            .await
            .unwrap();
        let fs = Fs::new(&client, &account);
        let other = Fs::new(&client, &account); // a second machine
        let (fs, other) = (&fs, &other);
        let local = dir.path().join("local");
        file(&local.join("sub"), "a.txt", b"alpha");
        file(&local, "big.bin", &vec![7u8; 200_000]);
        std::fs::create_dir_all(local.join("empty")).unwrap();

        // Put, list, get back whole; versions count up.
        let (c, report) = fs
            .put(&local, &p("/docs"), &TreeOptions::default())
            .await
            .unwrap();
        assert_eq!(c.version.as_ref().unwrap().number, 1);
        assert_eq!(report.files, 2);
        assert_eq!(names(fs, "/docs").await, ["big.bin", "empty", "sub"]);
        let out = dir.path().join("out");
        fs.get(&p("/docs"), None, &out).await.unwrap();
        assert_eq!(std::fs::read(out.join("sub/a.txt")).unwrap(), b"alpha");
        assert!(out.join("empty").is_dir());

        // Private: the root manifest does not open without the secret.
        let head = fs.head().await.unwrap().unwrap();
        assert!(client.read_manifest(head.root).await.is_err());
        assert!(
            client
                .read_manifest_in(head.root, Some(fs.secret()))
                .await
                .is_ok()
        );

        // rm refuses a non-empty directory without -r; old versions stay.
        assert!(matches!(
            fs.rm(&p("/docs"), false).await.unwrap_err(),
            FsError::NotEmpty(_)
        ));
        fs.rm(&p("/docs/empty"), false).await.unwrap();
        fs.rm(&p("/docs"), true).await.unwrap();
        assert!(matches!(
            fs.find(&p("/docs"), None).await.unwrap_err(),
            FsError::NotFound(_)
        ));
        assert_eq!(names(fs, "/").await, Vec::<String>::new());
        let back = dir.path().join("back");
        fs.get(&p("/docs/sub/a.txt"), Some(1), &back).await.unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), b"alpha");
        assert_eq!(fs.history().await.unwrap().len(), 3);
        assert!(matches!(
            fs.get(&p("/x"), Some(99), &dir.path().join("no"))
                .await
                .unwrap_err(),
            FsError::NoVersion(99)
        ));

        // Two machines, different files: both changes survive.
        fs.mkdir(&p("/shared")).await.unwrap();
        let one = dir.path().join("one.txt");
        std::fs::write(&one, b"from one").unwrap();
        let two = dir.path().join("two.txt");
        std::fs::write(&two, b"from two").unwrap();
        let (one, two) = (&one, &two);
        let merged = fs
            .commit("put one", |root| async move {
                // The other machine commits while this one works.
                other
                    .put(two, &p("/shared/two.txt"), &TreeOptions::default())
                    .await
                    .unwrap();
                let (entry, _) = fs
                    .upload(one, &p("/shared/one.txt"), &TreeOptions::default())
                    .await?;
                fs.edit(root, &p("/shared/one.txt"), |_| Ok(Some(entry)))
                    .await
            })
            .await
            .unwrap();
        assert!(merged.conflicts.is_empty());
        assert_eq!(names(fs, "/shared").await, ["one.txt", "two.txt"]);

        // The same file on both: both kept, ours under a conflict name.
        std::fs::write(one, b"ours").unwrap();
        std::fs::write(two, b"theirs").unwrap();
        let clash = fs
            .commit("put same", |root| async move {
                other
                    .put(two, &p("/shared/same.txt"), &TreeOptions::default())
                    .await
                    .unwrap();
                let (entry, _) = fs
                    .upload(one, &p("/shared/same.txt"), &TreeOptions::default())
                    .await?;
                fs.edit(root, &p("/shared/same.txt"), |_| Ok(Some(entry)))
                    .await
            })
            .await
            .unwrap();
        assert_eq!(clash.conflicts, ["/shared/same.txt.conflict-1"]);
        let got = dir.path().join("got");
        fs.get(&p("/shared/same.txt"), None, &got).await.unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), b"theirs");
        std::fs::remove_file(&got).unwrap();
        fs.get(&p("/shared/same.txt.conflict-1"), None, &got)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), b"ours");

        // Removed here, changed there: the change is kept.
        std::fs::write(two, b"changed there").unwrap();
        fs.commit("rm one", |root| async move {
            other
                .put(two, &p("/shared/one.txt"), &TreeOptions::default())
                .await
                .unwrap();
            fs.edit(root, &p("/shared/one.txt"), |_| Ok(None)).await
        })
        .await
        .unwrap();
        fs.get(&p("/shared/one.txt"), None, &got).await.unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), b"changed there");

        // mv, cp, and sync reporting what changed.
        fs.copy(&p("/shared"), &p("/copy"), true).await.unwrap();
        fs.copy(&p("/copy/two.txt"), &p("/copy/moved.txt"), false)
            .await
            .unwrap();
        assert!(names(fs, "/copy").await.contains(&"moved.txt".to_string()));
        assert!(!names(fs, "/copy").await.contains(&"two.txt".to_string()));
        assert!(names(fs, "/shared").await.contains(&"two.txt".to_string()));
        assert!(matches!(
            fs.copy(&p("/copy"), &p("/copy/inner"), false)
                .await
                .unwrap_err(),
            FsError::IntoItself(_)
        ));
        let (c, diff, _) = fs
            .sync(&local, &p("/synced"), &TreeOptions::default())
            .await
            .unwrap();
        assert!(c.version.is_some());
        assert_eq!(diff.added, 2);
        let (c, diff, _) = fs
            .sync(&local, &p("/synced"), &TreeOptions::default())
            .await
            .unwrap();
        assert!(c.version.is_none(), "nothing changed, nothing committed");
        assert_eq!(diff, Diff::default());
        file(&local.join("sub"), "a.txt", b"alpha, changed");
        file(&local, "new.txt", b"new");
        std::fs::remove_file(local.join("big.bin")).unwrap();
        let (_, diff, _) = fs
            .sync(&local, &p("/synced"), &TreeOptions::default())
            .await
            .unwrap();
        assert_eq!(
            diff,
            Diff {
                added: 1,
                changed: 1,
                removed: 1
            }
        );

        // Publishing: a public snapshot with that subtree and nothing else.
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let public = fs.publish(&p("/shared"), &scratch).await.unwrap();
        assert_eq!(public.kind, DataKind::Directory);
        let listing = client.read_manifest(public.name).await.unwrap();
        let published: Vec<&str> = listing.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            published,
            ["one.txt", "same.txt", "same.txt.conflict-1", "two.txt"]
        );
        let f = fs.publish(&p("/shared/two.txt"), &scratch).await.unwrap();
        assert_eq!(f.kind, DataKind::File);
        assert_eq!(
            client.get_bytes(&f, 1 << 20).await.unwrap(),
            b"from two".to_vec()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn merges_races_and_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::local(dir.path().join("store")).unwrap();
        let account = client
            .create_account(
                "racer",
                "a long enough password",
                RootSecret::generate().unwrap(),
                |_| {},
            )
            .await
            .unwrap();
        let (a, b) = (Fs::new(&client, &account), Fs::new(&client, &account));
        let (a, b) = (&a, &b);
        let f = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let (one, two) = (f("one", b"one"), f("two", b"two"));
        let (one, two) = (&one, &two);
        let opts = TreeOptions::default();
        let opts = &opts;

        // Two first commits at once (no log yet on either side): both
        // kept, numbered 1 and 2.
        let c = a
            .commit("first", |root| async move {
                assert!(root.is_none());
                b.put(two, &p("/b.txt"), opts).await.unwrap();
                let (entry, _) = a.upload(one, &p("/a.txt"), opts).await?;
                a.edit(root, &p("/a.txt"), |_| Ok(Some(entry))).await
            })
            .await
            .unwrap();
        assert_eq!(c.version.as_ref().unwrap().number, 2);
        assert_eq!(names(a, "/").await, ["a.txt", "b.txt"]);
        let numbers: Vec<u64> = a
            .history()
            .await
            .unwrap()
            .iter()
            .map(|v| v.number)
            .collect();
        assert_eq!(numbers, [1, 2]);

        // A conflict deep down, next to an existing conflict name: the
        // full path is reported, and the name is not reused.
        a.mkdir(&p("/d/e")).await.unwrap();
        a.put(one, &p("/d/e/x"), opts).await.unwrap();
        a.put(two, &p("/d/e/x.conflict-1"), opts).await.unwrap();
        let (mine, theirs) = (f("mine", b"mine"), f("theirs", b"theirs!"));
        let (mine, theirs) = (&mine, &theirs);
        let c = a
            .commit("put x", |root| async move {
                b.put(theirs, &p("/d/e/x"), opts).await.unwrap();
                let (entry, _) = a.upload(mine, &p("/d/e/x"), opts).await?;
                a.edit(root, &p("/d/e/x"), |_| Ok(Some(entry))).await
            })
            .await
            .unwrap();
        assert_eq!(c.conflicts, ["/d/e/x.conflict-2"]);
        // The version's totals are its tree's.
        let v = c.version.unwrap();
        let listing = a.manifest(Some(v.root)).await.unwrap();
        assert_eq!(
            (v.size, v.files),
            (listing.total_size(), listing.total_files())
        );
        assert_eq!(
            (v.files, v.size),
            (5, 20),
            "a.txt b.txt x x.conflict-1 x.conflict-2"
        );
        // A conflict name never grows past the limit.
        let long = "n".repeat(255);
        assert_eq!(conflict_name(&long, 12).len(), 255);

        // A file put at a directory goes into it; a directory is not put
        // over a file.
        a.put(one, &p("/d"), opts).await.unwrap();
        assert!(names(a, "/d").await.contains(&"one".to_string()));
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("empty")).unwrap();
        assert!(matches!(
            a.put(&tree, &p("/a.txt"), opts).await.unwrap_err(),
            FsError::KindChange(_)
        ));
        // mv needs the destination's directory.
        assert!(matches!(
            a.copy(&p("/a.txt"), &p("/nowhere/a.txt"), false)
                .await
                .unwrap_err(),
            FsError::NotFound(_)
        ));

        // A sync that adds only an empty directory still commits.
        std::fs::remove_dir(tree.join("empty")).unwrap();
        a.sync(&tree, &p("/t"), opts).await.unwrap();
        std::fs::create_dir_all(tree.join("empty")).unwrap();
        let (c, diff, _) = a.sync(&tree, &p("/t"), opts).await.unwrap();
        assert_eq!(diff, Diff::default());
        assert!(c.version.is_some(), "the tree changed");

        // Publishing a directory gives exactly its subtree.
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let public = a.publish(&p("/d"), &scratch).await.unwrap();
        let out = dir.path().join("published");
        client.get_tree(public.name, &out).await.unwrap();
        let mut found: Vec<String> = walkdir(&out);
        found.sort();
        assert_eq!(found, ["e/x", "e/x.conflict-1", "e/x.conflict-2", "one"]);
        assert_eq!(std::fs::read(out.join("e/x")).unwrap(), b"theirs!");
        assert_eq!(
            std::fs::read_dir(&scratch).unwrap().count(),
            0,
            "scratch left clean"
        );
    }

    fn walkdir(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    let rel = e
                        .path()
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    out.push(rel);
                }
            }
        }
        out
    }

    #[test]
    fn paths_are_checked() {
        assert_eq!(p("/a//b/./c/"), ["a", "b", "c"]);
        assert!(p("/").is_empty());
        assert!(parse_path("/a/../b").is_err());
        assert!(parse_path(&format!("/{}", "x".repeat(256))).is_err());
    }
}
