//! Where a user's `safe` files live on this machine: the data directory.
//!
//! `$SAFE_HOME` if set, else `$XDG_DATA_HOME/safe`, else
//! `~/.local/share/safe`. Inside it:
//!
//! ```text
//! contacts    peers of the local testnet (`safe testnet up` writes it)
//! keys/       signing keys, one file each (mode 0600), see [`crate::keys`]
//! put-cache   what earlier directory puts stored, see [`crate::tree_cache`]
//! session     the logged-in account (mode 0600), see [`crate::account::Session`]
//! pending-account  the root secret of an account being created (0600)
//! fs-cache-…  the put cache of an account's filesystem
//! tmp/        scratch space (`safe fs publish`)
//! wallet/     the wallet's secret and coins (0600), see [`crate::wallet`]
//! testnet/    the default local testnet's nodes
//! ```
//!
//! Every front end (CLI, gateway, apps) finds these through [`Home`], so
//! they agree on where things are.

use std::path::{Path, PathBuf};

use safe_network::contacts::CONTACTS_FILE;

use crate::keys::KeyDir;

/// The environment variable naming the data directory.
pub const SAFE_HOME: &str = "SAFE_HOME";

/// A user's data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// The data directory from the environment: `$SAFE_HOME`, else
    /// `$XDG_DATA_HOME/safe`, else `~/.local/share/safe` (`./.local/share/safe`
    /// when `HOME` is unset).
    pub fn from_env() -> Self {
        let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let dir = if let Some(dir) = non_empty(SAFE_HOME) {
            PathBuf::from(dir)
        } else if let Some(dir) = non_empty("XDG_DATA_HOME") {
            PathBuf::from(dir).join("safe")
        } else {
            let home = non_empty("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".local").join("share").join("safe")
        };
        Self { dir }
    }

    /// The data directory `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory itself (it may not exist yet).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The put cache of a logged-in account's filesystem (one per
    /// account: its files are encrypted with the account's secret).
    pub fn fs_cache(&self, account: &crate::account::Account) -> PathBuf {
        let id = account.address().to_string();
        self.dir
            .join(format!("fs-cache-{}", &id[..16.min(id.len())]))
    }

    /// A directory for scratch files (publishing fetches there).
    pub fn scratch(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Where an account being created keeps its root secret until it is
    /// whole.
    pub fn pending_create(&self) -> crate::account::PendingCreate {
        crate::account::PendingCreate::at(self.dir.join("pending-account"))
    }

    /// The session file (the logged-in account).
    pub fn session(&self) -> crate::account::Session {
        crate::account::Session::at(self.dir.join("session"))
    }

    /// The contacts file of the default local testnet, which clients read
    /// when no peers are given.
    pub fn contacts(&self) -> PathBuf {
        self.dir.join(CONTACTS_FILE)
    }

    /// Where the user's signing keys are kept.
    pub fn keys(&self) -> KeyDir {
        KeyDir::new(self.dir.join("keys"))
    }

    /// What earlier directory puts stored ([`crate::tree_cache`]).
    pub fn put_cache(&self) -> PathBuf {
        self.dir.join("put-cache")
    }

    /// The wallet's directory ([`crate::wallet`]).
    pub fn wallet_dir(&self) -> PathBuf {
        self.dir.join("wallet")
    }

    /// The default local testnet's directory.
    pub fn testnet_dir(&self) -> PathBuf {
        self.dir.join("testnet")
    }

    /// Whether `dir` is the default testnet directory (the one whose
    /// contacts belong in [`Home::contacts`]). Compared after resolving
    /// symlinks and `..` where the paths exist.
    pub fn is_default_testnet(&self, dir: &Path) -> bool {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        canonical(dir) == canonical(&self.testnet_dir())
    }
}

/// Writes `bytes` to `path` readable by its owner only (mode 0600),
/// atomically: to a temporary file beside it, synced, then renamed over
/// it, so a crash leaves the old contents or the new, never a mix.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    persist_private(path, bytes, true)
}

/// Like [`write_private`], but only if `path` does not exist yet:
/// `AlreadyExists` if it does (another process made it first).
pub(crate) fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    persist_private(path, bytes, false)
}

fn persist_private(path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if replace {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    // The rename itself, made durable.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_testnet_is_recognised_through_other_spellings() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::at(tmp.path());
        std::fs::create_dir_all(home.testnet_dir()).unwrap();
        std::fs::create_dir_all(home.keys().dir()).unwrap();
        assert!(home.is_default_testnet(&tmp.path().join("testnet")));
        assert!(home.is_default_testnet(&tmp.path().join("keys/../testnet")));
        assert!(!home.is_default_testnet(&tmp.path().join("other")));
        assert_eq!(home.contacts(), tmp.path().join("contacts"));
    }
}
