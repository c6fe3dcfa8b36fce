//! Signing keys of the people who own mutable data.
//!
//! [`KeyStore`] is the small interface the rest of the client uses; today
//! [`KeyDir`] keeps each key in a file of its own (mode 0600) under the
//! user's data directory, and a later account layer can keep them inside an
//! account instead.
//!
//! File format (version 1): the line `safe signing key v1`, then the 32-byte
//! ed25519 secret as 64 lowercase hex characters and a newline.

use std::io::Write;
use std::path::{Path, PathBuf};

use safe_protocol::mutable::{PublicKey, SigningKey};

/// First line of a key file.
const HEADER: &str = "safe signing key v1";
/// Longest key name.
pub const MAX_KEY_NAME: usize = 64;

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Names are 1 to 64 of `A-Z a-z 0-9 _ - .`, not starting with `.`.
    #[error("invalid key name {0:?}: use 1 to {MAX_KEY_NAME} letters, digits, '_', '-' or '.'")]
    BadName(String),
    /// A key of that name exists (it is never overwritten).
    #[error("a key named {0:?} already exists")]
    Exists(String),
    /// No key of that name.
    #[error("no key named {0:?} (make one with `safe keys create {0}`)")]
    NotFound(String),
    /// The key file is not a key file of a version we read.
    #[error("key file {0} is damaged or of an unknown format")]
    Damaged(PathBuf),
    /// The file system failed.
    #[error("key store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// Where owners' keys are kept.
pub trait KeyStore {
    /// Makes and keeps a new key called `name`; never overwrites one.
    fn create(&self, name: &str) -> Result<SigningKey, KeyError>;
    /// The key called `name`.
    fn get(&self, name: &str) -> Result<SigningKey, KeyError>;
    /// Every key's name and public key, sorted by name.
    fn list(&self) -> Result<Vec<(String, PublicKey)>, KeyError>;
}

/// A new random signing key (from the operating system's generator).
pub fn new_signing_key() -> SigningKey {
    let secret = safe_network::libp2p::identity::ed25519::SecretKey::generate();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(secret.as_ref());
    SigningKey::from_bytes(&bytes)
}

/// Checks a key name: 1 to [`MAX_KEY_NAME`] of `A-Z a-z 0-9 _ - .`, not
/// starting with `.`.
pub fn check_key_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_KEY_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadName(name.to_string()))
    }
}

/// The key used when none is named.
pub const DEFAULT_KEY: &str = "default";

/// Keys as files in a directory.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// Keys under `dir` (created on first key).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key called [`DEFAULT_KEY`], made if missing; `true` when it was
    /// made now.
    pub fn default_key(&self) -> Result<(SigningKey, bool), KeyError> {
        match self.get(DEFAULT_KEY) {
            Ok(k) => Ok((k, false)),
            Err(KeyError::NotFound(_)) => match self.create(DEFAULT_KEY) {
                Ok(k) => Ok((k, true)),
                // Made by another process meanwhile.
                Err(KeyError::Exists(_)) => Ok((self.get(DEFAULT_KEY)?, false)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// A public key given as 64 hex characters, or as the name of a key
    /// kept here.
    pub fn public_key_of(&self, text: &str) -> Result<PublicKey, KeyError> {
        if text.len() == 64
            && let Ok(bytes) = hex::decode(text)
            && let Ok(pk) = <[u8; 32]>::try_from(bytes)
        {
            return Ok(pk);
        }
        Ok(self.get(text)?.verifying_key().to_bytes())
    }

    fn path(&self, name: &str) -> Result<PathBuf, KeyError> {
        check_key_name(name)?;
        Ok(self.dir.join(format!("{name}.key")))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
        move |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn read(path: &Path) -> Result<SigningKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(Self::io(path))?;
        let mut lines = text.lines();
        let damaged = || KeyError::Damaged(path.to_path_buf());
        if lines.next() != Some(HEADER) {
            return Err(damaged());
        }
        let secret = lines.next().ok_or_else(damaged)?;
        let bytes: [u8; 32] = hex::decode(secret.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(damaged)?;
        Ok(SigningKey::from_bytes(&bytes))
    }
}

impl KeyStore for KeyDir {
    fn create(&self, name: &str) -> Result<SigningKey, KeyError> {
        let path = self.path(name)?;
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let key = new_signing_key();
        // Written beside, then linked into place: never overwrites, and a
        // crash leaves no half-written key under the name.
        let mut tmp = tempfile::Builder::new()
            .prefix(".key-")
            .tempfile_in(&self.dir)
            .map_err(Self::io(&self.dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(Self::io(tmp.path()))?;
        }
        writeln!(tmp, "{HEADER}\n{}", hex::encode(key.to_bytes())).map_err(Self::io(&path))?;
        tmp.as_file().sync_all().map_err(Self::io(&path))?;
        match tmp.persist_noclobber(&path) {
            Ok(_) => Ok(key),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(KeyError::Exists(name.to_string()))
            }
            Err(e) => Err(Self::io(&path)(e.error)),
        }
    }

    fn get(&self, name: &str) -> Result<SigningKey, KeyError> {
        let path = self.path(name)?;
        if !path.exists() {
            return Err(KeyError::NotFound(name.to_string()));
        }
        Self::read(&path)
    }

    fn list(&self) -> Result<Vec<(String, PublicKey)>, KeyError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Self::io(&self.dir))?;
            let file = entry.file_name();
            let Some(name) = file.to_str().and_then(|n| n.strip_suffix(".key")) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let key = Self::read(&entry.path())?;
            out.push((name.to_string(), key.verifying_key().to_bytes()));
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_get_list_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::new(dir.path().join("keys"));
        assert!(keys.list().unwrap().is_empty());
        let a = keys.create("alice").unwrap();
        assert_eq!(keys.get("alice").unwrap().to_bytes(), a.to_bytes());
        assert!(matches!(keys.create("alice"), Err(KeyError::Exists(_))));
        assert_eq!(keys.get("alice").unwrap().to_bytes(), a.to_bytes());
        keys.create("bob").unwrap();
        let list = keys.list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], ("alice".into(), a.verifying_key().to_bytes()));
        assert!(matches!(keys.get("carol"), Err(KeyError::NotFound(_))));
        assert!(matches!(keys.create("../x"), Err(KeyError::BadName(_))));
        assert!(matches!(keys.create(""), Err(KeyError::BadName(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("keys/alice.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("keys/bad.key"), "junk").unwrap();
        assert!(matches!(keys.get("bad"), Err(KeyError::Damaged(_))));
    }
}
