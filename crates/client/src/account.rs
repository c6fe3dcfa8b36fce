//! Accounts: a username and a password open, from any machine, a random
//! root secret from which every key of the user derives.
//!
//! The design and its threat model are in `docs/DESIGN-accounts.md`; the
//! wire side (tags, the login entry, the signed fetch, the account policy)
//! is [`safe_protocol::account`]. Here:
//!
//! - [`check_username`], [`check_password`]: the rules for both (NFC
//!   normalised);
//! - [`Stretched`]: the two Argon2id stretches (the locator `L` and the
//!   password secret `S`) and what derives from them (the record address,
//!   the login key, the sealing key);
//! - [`RootSecret`]: `R`, its recovery phrase and every key derived from it;
//! - [`Account`]: a logged-in account, and its [`session`](Session) file;
//! - the flows, on [`Client`]: [`Client::create_account`],
//!   [`Client::login`], [`Client::change_password`],
//!   [`Client::recover_account`], and the named keys kept in the account
//!   ([`Client::account_keys`], [`Client::add_account_key`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use safe_protocol::XorName;
use safe_protocol::account::{ACCOUNT_TAG, KEYS_TAG, LOGIN_KEY, LoginEntry};
use safe_protocol::codec;
use safe_protocol::mutable::{Change, PublicKey, Record, SigningKey, Write, record_address};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, Zeroizing};

use crate::client::Client;
use crate::mutable::{MutableError, create_owned, new_create, update_from};
use crate::store::RecordStore;

/// Longest username, in bytes (after normalisation).
pub const MAX_USERNAME_BYTES: usize = 64;
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The stretching parameter set new login entries use (see
/// [`KdfSet`]).
pub const KDF_SET: u8 = 1;

/// Format of the sealed secrets inside a login entry.
const SECRETS_FORMAT: u8 = 1;
/// Largest sealed secrets, decoded.
const MAX_SECRETS: usize = 1024;
/// Format of the sealed key-name list.
const NAMES_FORMAT: u8 = 1;
/// Largest sealed key-name list, decoded (the record value limit bounds
/// it anyway).
const MAX_NAMES_BYTES: usize = 60 * 1024;
/// The entry of the keys record holding the sealed list of names.
const NAMES_KEY: &[u8] = b"names";
/// Entry of the keys record that holds the public names the account
/// registered (sealed like the key names).
const PUBLIC_NAMES_KEY: &[u8] = b"public names";
/// Tries of a password change or key addition that lost a race.
const CAS_ATTEMPTS: usize = 4;

/// Why an account operation failed. The `Display` forms are the one-line
/// errors users see.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The username breaks the rules.
    #[error(
        "invalid username: use 1 to {MAX_USERNAME_BYTES} bytes of UTF-8, no control characters, no white space at either end"
    )]
    BadUsername,
    /// The password is too short or too long.
    #[error(
        "the password must be at least {MIN_PASSWORD_CHARS} characters (and at most {MAX_PASSWORD_BYTES} bytes)"
    )]
    BadPassword,
    /// The username is taken.
    #[error("the username {0:?} is taken")]
    Taken(String),
    /// A wrong password or an unknown username: the two are one answer.
    #[error("wrong username or password")]
    WrongCredentials,
    /// The recovery phrase does not parse.
    #[error("invalid recovery phrase: {0}")]
    BadPhrase(String),
    /// The phrase is fine but no account of that name is opened by it.
    #[error("no account {0:?} is opened by this recovery phrase")]
    PhraseMismatch(String),
    /// Another client changed the password meanwhile; nothing was changed.
    #[error(
        "the password was changed from elsewhere meanwhile; nothing was changed (log in with the new one)"
    )]
    ChangedElsewhere,
    /// The account was claimed but its login could not be set.
    #[error(
        "the account was created but its password could not be set ({0}); run `safe account recover` with the recovery phrase shown"
    )]
    Unfinished(String),
    /// The close group refuses more attempts for now.
    #[error("too many attempts for this account lately; wait a minute and try again")]
    RateLimited,
    /// The network or store failed.
    #[error(transparent)]
    Mutable(MutableError),
    /// The session file is damaged, unsafe or unreadable.
    #[error("session {path}: {reason}")]
    Session {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No session: nobody is logged in here.
    #[error("not logged in (run `safe account login USERNAME` or `safe account create USERNAME`)")]
    NotLoggedIn,
    /// A name for a key that is not allowed.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The operating system's random generator failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// Something that should not fail did (encoding, sealing, a task).
    #[error("{0}")]
    Internal(String),
    /// The account's list of keys cannot be opened (left unchanged).
    #[error("the account's list of keys cannot be read; nothing was changed")]
    KeysUnreadable,
}

impl From<MutableError> for AccountError {
    fn from(e: MutableError) -> Self {
        match e {
            MutableError::RateLimited => AccountError::RateLimited,
            e => AccountError::Mutable(e),
        }
    }
}

/// The username, normalised (NFC), if it follows the rules.
pub fn check_username(name: &str) -> Result<String, AccountError> {
    let name: String = name.nfc().collect();
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME_BYTES
        && !name.chars().any(char::is_control)
        && name.trim() == name;
    if ok {
        Ok(name)
    } else {
        Err(AccountError::BadUsername)
    }
}

/// The password, normalised (NFC), if it is long enough (`new`: one being
/// set) and not too long.
pub fn check_password(password: &str, new: bool) -> Result<Zeroizing<String>, AccountError> {
    let p = Zeroizing::new(password.nfc().collect::<String>());
    if p.len() > MAX_PASSWORD_BYTES
        || p.is_empty()
        || (new && p.chars().count() < MIN_PASSWORD_CHARS)
    {
        return Err(AccountError::BadPassword);
    }
    Ok(p)
}

/// One Argon2id parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfSet {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Passes.
    pub passes: u32,
}

impl KdfSet {
    /// Set 1, for the locator (fixed: it is part of every address).
    pub const LOCATOR: KdfSet = KdfSet {
        memory_kib: 64 * 1024,
        passes: 3,
    };

    /// The password set called `id`, if this program knows it.
    pub fn password(id: u8) -> Option<KdfSet> {
        match id {
            1 => Some(KdfSet {
                memory_kib: 128 * 1024,
                passes: 4,
            }),
            _ => None,
        }
    }

    /// The stretch, or `None` if Argon2 refuses (out-of-range parameters
    /// or salt: never for ours, checked by the tests). Never a fallback
    /// value: that would put every account at one address.
    fn stretch(&self, input: &[u8], salt: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        let mut out = Zeroizing::new([0u8; 32]);
        let params = argon2::Params::new(self.memory_kib, self.passes, 1, Some(32)).ok()?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        a.hash_password_into(input, salt, out.as_mut()).ok()?;
        Some(out)
    }
}

/// The stretched username and password: where the account is and the keys
/// that open it.
pub struct Stretched {
    locator: [u8; 32],
    secret: Zeroizing<[u8; 32]>,
    kdf: u8,
}

impl Stretched {
    /// Stretches `username` and `password` (both checked) with parameter
    /// set `kdf`: about 0.75 s and 128 MiB. Blocking: run it on a blocking
    /// thread.
    pub fn new(username: &str, password: &str, kdf: u8) -> Option<Self> {
        let set = KdfSet::password(kdf)?;
        let locator = locator(username)?;
        let secret = set.stretch(password.as_bytes(), &password_salt(username))?;
        Some(Stretched {
            locator: *locator,
            secret,
            kdf,
        })
    }

    /// The account record's address.
    pub fn address(&self) -> XorName {
        record_address(&self.locator, ACCOUNT_TAG)
    }

    /// The login key: signs fetches of the account.
    fn auth(&self) -> SigningKey {
        SigningKey::from_bytes(&derive_key("safe account auth v1", &*self.secret))
    }

    fn wrap(&self) -> XChaCha20Poly1305 {
        let key = Zeroizing::new(derive_key("safe account wrap v1", &*self.secret));
        XChaCha20Poly1305::new(key.as_ref().into())
    }
}

/// The locator `L` of `username` (the record's name).
fn locator(username: &str) -> Option<Zeroizing<[u8; 32]>> {
    KdfSet::LOCATOR.stretch(username.as_bytes(), b"safe-account-loc")
}

/// The address of `username`'s account (one locator stretch: ~0.2 s).
pub fn account_address(username: &str) -> Option<XorName> {
    Some(record_address(&*locator(username)?, ACCOUNT_TAG))
}

fn password_salt(username: &str) -> [u8; 16] {
    let full = derive_key("safe account salt v1", username.as_bytes());
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&full[..16]);
    salt
}

fn derive_key(context: &str, material: &[u8]) -> [u8; 32] {
    blake3::derive_key(context, material)
}

fn random<const N: usize>() -> Result<[u8; N], AccountError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| AccountError::Random(e.to_string()))?;
    Ok(out)
}

/// The account's root secret `R`: every key of the account derives from
/// it. Zeroized when dropped.
#[derive(Clone)]
pub struct RootSecret(Zeroizing<[u8; 32]>);

impl RootSecret {
    /// A new random root secret.
    pub fn generate() -> Result<Self, AccountError> {
        Ok(RootSecret(Zeroizing::new(random::<32>()?)))
    }

    /// The secret from its 24-word recovery phrase (case and white space
    /// normalised, checksum checked).
    pub fn from_phrase(phrase: &str) -> Result<Self, AccountError> {
        let words: Zeroizing<String> = Zeroizing::new(
            phrase
                .split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(" "),
        );
        let m = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &words)
            .map_err(|e| AccountError::BadPhrase(e.to_string()))?;
        let entropy = Zeroizing::new(m.to_entropy());
        let bytes: [u8; 32] = entropy
            .as_slice()
            .try_into()
            .map_err(|_| AccountError::BadPhrase("it must be 24 words".into()))?;
        Ok(RootSecret(Zeroizing::new(bytes)))
    }

    /// The 24-word recovery phrase.
    pub fn phrase(&self) -> Zeroizing<String> {
        match bip39::Mnemonic::from_entropy_in(bip39::Language::English, &*self.0) {
            Ok(m) => Zeroizing::new(m.to_string()),
            // 32 bytes is always valid entropy.
            Err(_) => Zeroizing::new(String::new()),
        }
    }

    /// A root secret from its bytes (tests only).
    #[cfg(test)]
    pub(crate) fn from_bytes_for_tests(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// `derive(R, purpose)`: 32 bytes for one purpose.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key("safe account v1");
        h.update(&(purpose.len() as u64).to_be_bytes());
        h.update(purpose.as_bytes());
        h.update(&*self.0);
        Zeroizing::new(*h.finalize().as_bytes())
    }

    /// The key that owns the account record.
    pub fn owner_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.derive("owner"))
    }

    /// The named signing key `name` of the account.
    pub fn named_key(&self, name: &str) -> SigningKey {
        SigningKey::from_bytes(&self.derive(&format!("key:{name}")))
    }

    /// The key a site (`www.name`, or a `d…` address) gets for this
    /// account in the gateway's apps API: one per site, so a site can
    /// never sign with another site's key or the user's own.
    pub fn site_key(&self, site: &str) -> SigningKey {
        SigningKey::from_bytes(&self.derive(&format!("site:{site}")))
    }

    fn hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.0))
    }
}

/// What a login entry seals.
#[derive(Serialize, Deserialize)]
struct Secrets {
    root: [u8; 32],
    username: String,
}

impl Drop for Secrets {
    fn drop(&mut self) {
        self.root.zeroize();
    }
}

fn login_aad(address: &XorName, kdf: u8, auth: &PublicKey) -> Vec<u8> {
    let mut aad = b"safe account login v1".to_vec();
    aad.extend_from_slice(address.as_bytes());
    aad.push(kdf);
    aad.extend_from_slice(auth);
    aad
}

/// Seals `root` for `username` under the stretched password.
fn seal(
    stretched: &Stretched,
    root: &RootSecret,
    username: &str,
) -> Result<LoginEntry, AccountError> {
    let address = stretched.address();
    let auth = stretched.auth().verifying_key().to_bytes();
    let nonce = random::<24>()?;
    let secrets = Secrets {
        root: *root.0,
        username: username.to_string(),
    };
    let plain = Zeroizing::new(
        codec::encode(SECRETS_FORMAT, &secrets)
            .map_err(|e| AccountError::Internal(format!("cannot encode secrets: {e}")))?,
    );
    let aad = login_aad(&address, stretched.kdf, &auth);
    let sealed = stretched
        .wrap()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| AccountError::Internal("sealing failed".into()))?;
    Ok(LoginEntry {
        kdf: stretched.kdf,
        auth,
        nonce,
        sealed,
    })
}

/// Opens a login entry with the stretched password: the root secret, if
/// the entry is this password's and names this user.
fn open(entry: &LoginEntry, stretched: &Stretched, username: &str) -> Option<RootSecret> {
    let auth = stretched.auth().verifying_key().to_bytes();
    if entry.auth != auth || entry.kdf != stretched.kdf {
        return None;
    }
    let aad = login_aad(&stretched.address(), entry.kdf, &auth);
    let plain = Zeroizing::new(
        stretched
            .wrap()
            .decrypt(
                XNonce::from_slice(&entry.nonce),
                Payload {
                    msg: &entry.sealed,
                    aad: &aad,
                },
            )
            .ok()?,
    );
    let secrets: Secrets = codec::decode(SECRETS_FORMAT, &plain, MAX_SECRETS).ok()?;
    (secrets.username == username).then(|| RootSecret(Zeroizing::new(secrets.root)))
}

/// A logged-in account.
#[derive(Clone)]
pub struct Account {
    username: String,
    address: XorName,
    root: RootSecret,
    /// The names of the account's keys as last read (kept in the session
    /// so that naming a key needs no network).
    known_keys: Vec<String>,
}

impl Account {
    /// An account of `username` with a root made from it (tests only).
    #[cfg(test)]
    pub(crate) fn for_tests(username: &str) -> Self {
        let root = RootSecret::from_bytes_for_tests(*blake3::hash(username.as_bytes()).as_bytes());
        Self {
            username: username.into(),
            address: record_address(username.as_bytes(), ACCOUNT_TAG),
            root,
            known_keys: Vec::new(),
        }
    }

    /// The names of the account's keys as last read.
    pub fn known_keys(&self) -> &[String] {
        &self.known_keys
    }

    /// Records the names of the account's keys as just read.
    pub fn set_known_keys(&mut self, names: Vec<String>) {
        self.known_keys = names;
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The account record's address.
    pub fn address(&self) -> XorName {
        self.address
    }

    /// The root secret.
    pub fn root(&self) -> &RootSecret {
        &self.root
    }

    /// The address of the account's keys record.
    pub fn keys_record(&self) -> XorName {
        record_address(&*self.root.derive("keys record"), KEYS_TAG)
    }

    fn keys_cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.root.derive("keys seal").as_ref().into())
    }
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The session file: the logged-in account of a data directory.
///
/// Format 1: the line `safe session v1`, then one line of JSON
/// `{"username": …, "address": hex, "root": hex, "keys": [names]}`. Created with
/// `O_EXCL | O_NOFOLLOW` and mode 0600; refused on read when it is not a
/// regular file owned by this user with no group or other permissions.
pub struct Session {
    path: PathBuf,
}

const SESSION_HEADER: &str = "safe session v1";
/// Largest session file.
const MAX_SESSION_BYTES: u64 = 4096;

#[derive(Serialize, Deserialize)]
struct SessionBody {
    username: String,
    address: String,
    root: String,
    #[serde(default)]
    keys: Vec<String>,
}

impl Drop for SessionBody {
    fn drop(&mut self) {
        self.root.zeroize();
    }
}

impl Session {
    /// The session file at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Session { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, reason: impl Into<String>) -> AccountError {
        AccountError::Session {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Saves `account` as the session, replacing any other.
    pub fn save(&self, account: &Account) -> Result<(), AccountError> {
        let body = SessionBody {
            username: account.username.clone(),
            address: hex::encode(account.address.as_bytes()),
            root: account.root.hex().to_string(),
            keys: account.known_keys.clone(),
        };
        let json =
            Zeroizing::new(serde_json::to_string(&body).map_err(|e| self.err(e.to_string()))?);
        let text = Zeroizing::new(format!("{SESSION_HEADER}\n{}\n", *json));
        write_private(&self.path, &text).map_err(|e| self.err(e.to_string()))
    }

    /// Saves `account` (with the key names it now knows) only if the
    /// session is still that account's: a logout or another login since
    /// it was loaded is not undone.
    pub fn save_if_current(&self, account: &Account) -> Result<bool, AccountError> {
        match self.load()? {
            Some(now) if now.address == account.address && *now.root.0 == *account.root.0 => {
                self.save(account)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The logged-in account, if any.
    pub fn load(&self) -> Result<Option<Account>, AccountError> {
        let Some(text) = read_private(&self.path).map_err(|reason| self.err(reason))? else {
            return Ok(None);
        };
        let mut lines = text.lines();
        if lines.next() != Some(SESSION_HEADER) {
            return Err(self.err("damaged or of an unknown format"));
        }
        let body: SessionBody = lines
            .next()
            .and_then(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| self.err("damaged"))?;
        let root = Zeroizing::new(
            hex::decode(&body.root)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| self.err("damaged"))?,
        );
        let address: [u8; 32] = hex::decode(&body.address)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| self.err("damaged"))?;
        Ok(Some(Account {
            username: body.username.clone(),
            address: XorName(address),
            root: RootSecret(root),
            known_keys: body.keys.clone(),
        }))
    }

    /// The logged-in account, or [`AccountError::NotLoggedIn`].
    pub fn require(&self) -> Result<Account, AccountError> {
        self.load()?.ok_or(AccountError::NotLoggedIn)
    }

    /// Ends the session: removes the file (and any temporary copy a
    /// crash left beside it). Overwriting it first would be no assurance
    /// on SSDs or copy-on-write file systems. `false` if there was none.
    pub fn erase(&self) -> Result<bool, AccountError> {
        remove_leftovers(&self.path);
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(e.to_string())),
        }
    }
}

/// The root secret of an account being created, kept (mode 0600) from
/// before the name is claimed until the account is whole, so that an
/// interrupted or failed create can be finished by running it again.
///
/// Format 1: the line `safe pending account v1`, then one line of JSON
/// `{"username": …, "root": hex}`.
pub struct PendingCreate {
    path: PathBuf,
}

const PENDING_HEADER: &str = "safe pending account v1";

#[derive(Serialize, Deserialize)]
struct PendingBody {
    username: String,
    root: String,
}

impl Drop for PendingBody {
    fn drop(&mut self) {
        self.root.zeroize();
    }
}

impl PendingCreate {
    /// The file at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        PendingCreate { path: path.into() }
    }

    fn err(&self, reason: impl Into<String>) -> AccountError {
        AccountError::Session {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// The root secret to create `username` with: the one kept from an
    /// unfinished create of that name, else a new one (kept now).
    pub fn root_for(&self, username: &str) -> Result<RootSecret, AccountError> {
        if let Some(text) = read_private(&self.path).map_err(|r| self.err(r))? {
            let mut lines = text.lines();
            if lines.next() == Some(PENDING_HEADER)
                && let Some(body) = lines
                    .next()
                    .and_then(|l| serde_json::from_str::<PendingBody>(l).ok())
                && body.username == username
                && let Some(root) = hex::decode(&body.root)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            {
                return Ok(RootSecret(Zeroizing::new(root)));
            }
        }
        let root = RootSecret::generate()?;
        let body = PendingBody {
            username: username.to_string(),
            root: root.hex().to_string(),
        };
        let json =
            Zeroizing::new(serde_json::to_string(&body).map_err(|e| self.err(e.to_string()))?);
        let text = Zeroizing::new(format!("{PENDING_HEADER}\n{}\n", *json));
        write_private(&self.path, &text).map_err(|e| self.err(e.to_string()))?;
        Ok(root)
    }

    /// Forgets the kept secret (the account is whole, or the name taken).
    pub fn clear(&self) {
        remove_leftovers(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `text` to `path` whole: into a new private file beside it
/// (`O_EXCL | O_NOFOLLOW`, mode 0600), synced, then renamed over it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes temporary copies of `path` a crash may have left.
fn remove_leftovers(path: &Path) {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{}.tmp", stem.to_string_lossy());
    if let Ok(items) = std::fs::read_dir(dir) {
        for item in items.flatten() {
            if item.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(item.path());
            }
        }
    }
}

/// The contents of the private file at `path` (`None`: there is none),
/// opened without following a symlink and checked on the open file: a
/// regular file of at most 4 KiB, this user's, readable by no one else.
fn read_private(path: &Path) -> Result<Option<Zeroizing<String>>, String> {
    use std::io::Read;
    let file = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() || meta.len() > MAX_SESSION_BYTES {
        return Err("not a session file".into());
    }
    check_private(&meta)?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_SESSION_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(Some(text))
}

#[cfg(unix)]
fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_nofollow())
        .open(path)
}

#[cfg(not(unix))]
fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_nofollow())
        .open(path)
}

#[cfg(unix)]
fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn check_private(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "readable by others (mode {:o}); remove it and log in again",
            meta.mode() & 0o777
        ));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err("owned by another user".into());
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

/// Runs a stretch on a blocking thread.
async fn stretch(username: &str, password: &str) -> Result<Stretched, AccountError> {
    let (u, p) = (username.to_string(), Zeroizing::new(password.to_string()));
    tokio::task::spawn_blocking(move || Stretched::new(&u, &p, KDF_SET))
        .await
        .map_err(|e| AccountError::Internal(format!("stretching failed: {e}")))?
        .ok_or_else(|| AccountError::Internal("the password could not be stretched".into()))
}

impl Client {
    /// Creates the account `username` with `password` (both checked) and
    /// the new root secret `root` ([`RootSecret::generate`]), calling
    /// `claimed` as soon as the name is claimed and before the login is
    /// set, so the caller can show the recovery phrase even if what
    /// follows fails. A caller that keeps `root` until this returns (see
    /// [`PendingCreate`]) can call again with it after a failure or an
    /// interruption: a name claimed with this root is taken up again.
    pub async fn create_account(
        &self,
        username: &str,
        password: &str,
        root: RootSecret,
        claimed: impl FnOnce(&RootSecret),
    ) -> Result<Account, AccountError> {
        let username = check_username(username)?;
        let password = check_password(password, true)?;
        let stretched = stretch(&username, &password).await?;
        let owner = root.owner_key();
        let create = new_create(
            &stretched.locator,
            ACCOUNT_TAG,
            vec![owner.verifying_key().to_bytes()],
            1,
            false,
            &owner,
        )?;
        let address = stretched.address();
        let claim = RecordStore::write_record(self, &Write::Create(create)).await;
        let record = match claim {
            Ok(()) => None,
            Err(
                e @ (MutableError::Refused(_)
                | MutableError::NoMajority { .. }
                | MutableError::Network(_)),
            ) => {
                // Taken, or unclear: ours only if our owner key opens it (a
                // retry, or a split the group settled our way).
                match self.fetch_account(address, &owner).await {
                    Ok(r) => Some(r),
                    Err(MutableError::NotFound(_) | MutableError::RateLimited)
                        if matches!(
                            e,
                            MutableError::Refused(
                                safe_protocol::mutable::RecordError::AlreadyExists
                            )
                        ) =>
                    {
                        return Err(AccountError::Taken(username));
                    }
                    Err(_) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        claimed(&root);
        let record = match record {
            Some(r) => r,
            None => self
                .fetch_account(address, &owner)
                .await
                .map_err(|e| AccountError::Unfinished(e.to_string()))?,
        };
        let entry = seal(&stretched, &root, &username)?;
        set_login(self, record, &entry, &owner)
            .await
            .map_err(|e| AccountError::Unfinished(e.to_string()))?;
        Ok(Account {
            username,
            address,
            root,
            known_keys: Vec::new(),
        })
    }

    /// Logs in: the account `username` opened with `password`. A wrong
    /// password and an unknown user are one error,
    /// [`AccountError::WrongCredentials`], after the same work.
    pub async fn login(&self, username: &str, password: &str) -> Result<Account, AccountError> {
        Ok(self.open_account(username, password).await?.0)
    }

    async fn open_account(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(Account, Record, Stretched), AccountError> {
        // Checked, but not refused for being short: an old password may
        // predate a rule.
        let (username, password) = match (check_username(username), check_password(password, false))
        {
            (Ok(u), Ok(p)) => (u, p),
            _ => return Err(AccountError::WrongCredentials),
        };
        let stretched = stretch(&username, &password).await?;
        let address = stretched.address();
        let record = match self.fetch_account(address, &stretched.auth()).await {
            Ok(r) => r,
            Err(MutableError::NotFound(_)) => return Err(AccountError::WrongCredentials),
            Err(e) => return Err(e.into()),
        };
        let root = LoginEntry::of(&record)
            .and_then(|entry| open(&entry, &stretched, &username))
            .ok_or(AccountError::WrongCredentials)?;
        if record.state.owners != [root.owner_key().verifying_key().to_bytes()] {
            return Err(AccountError::WrongCredentials);
        }
        Ok((
            Account {
                username,
                address,
                root,
                known_keys: Vec::new(),
            },
            record,
            stretched,
        ))
    }

    /// Changes the password of `username` from `old` to `new` (checked):
    /// one compare-and-swap of the login entry. Changing the password does
    /// not change the root secret: whoever knew the old password may still
    /// hold it.
    pub async fn change_password(
        &self,
        username: &str,
        old: &str,
        new: &str,
    ) -> Result<Account, AccountError> {
        let new = check_password(new, true)?;
        let (account, record, _) = self.open_account(username, old).await?;
        self.set_password(account, record, &new).await
    }

    /// Sets a new password for `username` with its recovery phrase.
    pub async fn recover_account(
        &self,
        username: &str,
        phrase: &str,
        new: &str,
    ) -> Result<Account, AccountError> {
        let username = check_username(username)?;
        let new = check_password(new, true)?;
        let root = RootSecret::from_phrase(phrase)?;
        let address = {
            let u = username.clone();
            tokio::task::spawn_blocking(move || account_address(&u))
                .await
                .map_err(|e| AccountError::Internal(format!("stretching failed: {e}")))?
                .ok_or_else(|| {
                    AccountError::Internal("the username could not be stretched".into())
                })?
        };
        let record = match self.fetch_account(address, &root.owner_key()).await {
            Ok(r) => r,
            Err(MutableError::NotFound(_)) => return Err(AccountError::PhraseMismatch(username)),
            Err(e) => return Err(e.into()),
        };
        if record.state.owners != [root.owner_key().verifying_key().to_bytes()] {
            return Err(AccountError::PhraseMismatch(username));
        }
        let account = Account {
            username,
            address,
            root,
            known_keys: Vec::new(),
        };
        self.set_password(account, record, &new).await
    }

    /// Seals the account's root under `new` and sets it as the login,
    /// against `record` as just read.
    async fn set_password(
        &self,
        account: Account,
        mut record: Record,
        new: &str,
    ) -> Result<Account, AccountError> {
        let stretched = stretch(&account.username, new).await?;
        let entry = seal(&stretched, &account.root, &account.username)?;
        let owner = account.root.owner_key();
        let read = LoginEntry::of(&record);
        for _ in 0..CAS_ATTEMPTS {
            match set_login(self, record, &entry, &owner).await {
                Ok(()) => return Ok(account),
                Err(first) => {
                    // Ours may have landed even so (a timeout, a split the
                    // group settled our way): compare with what we sealed.
                    let now = self
                        .fetch_account(account.address, &owner)
                        .await
                        .map_err(|e| {
                            AccountError::Unfinished(format!(
                                "{first}, then {e}: the new password may or may not be in force; try both"
                            ))
                        })?;
                    let current = LoginEntry::of(&now);
                    if current.as_ref() == Some(&entry) {
                        return Ok(account);
                    }
                    if current != read {
                        return Err(AccountError::ChangedElsewhere);
                    }
                    if !matches!(
                        first,
                        MutableError::NoMajority { .. } | MutableError::Network(_)
                    ) {
                        return Err(first.into());
                    }
                    record = now;
                }
            }
        }
        Err(AccountError::Unfinished(
            "no majority confirmed the change".into(),
        ))
    }

    /// The names of the keys kept in the account (sorted).
    pub async fn account_keys(&self, account: &Account) -> Result<Vec<String>, AccountError> {
        self.sealed_list(account, NAMES_KEY).await
    }

    /// Adds the key `name` to the account (a no-op if it is there) and
    /// returns it. Two machines adding keys at once both succeed.
    pub async fn add_account_key(
        &self,
        account: &Account,
        name: &str,
    ) -> Result<SigningKey, AccountError> {
        crate::keys::check_key_name(name)?;
        self.add_to_list(account, NAMES_KEY, name).await?;
        Ok(account.root.named_key(name))
    }

    /// The public names the account registered (sorted), whoever owns
    /// them now.
    pub async fn account_names(&self, account: &Account) -> Result<Vec<String>, AccountError> {
        self.sealed_list(account, PUBLIC_NAMES_KEY).await
    }

    /// Remembers in the account that it registered the public name `name`.
    pub async fn add_account_name(
        &self,
        account: &Account,
        name: &str,
    ) -> Result<(), AccountError> {
        self.add_to_list(account, PUBLIC_NAMES_KEY, name).await
    }

    /// Adds `item` to the sealed list in `entry` of the keys record (a
    /// no-op if it is there), by compare-and-swap: two machines adding at
    /// once both succeed.
    async fn add_to_list(
        &self,
        account: &Account,
        entry: &[u8],
        item: &str,
    ) -> Result<(), AccountError> {
        self.update_list(account, entry, |items| {
            if items.iter().any(|n| n == item) {
                return false;
            }
            items.push(item.to_string());
            items.sort();
            true
        })
        .await
    }

    /// The sealed list in `entry` of the keys record (none yet: empty).
    pub(crate) async fn sealed_list(
        &self,
        account: &Account,
        entry: &[u8],
    ) -> Result<Vec<String>, AccountError> {
        match self.get_record(account.keys_record()).await {
            Ok(r) => list_of(account, &r, entry),
            Err(MutableError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes the sealed list in `entry` of the keys record with `change`
    /// (which returns whether it changed anything), by compare-and-swap:
    /// `change` sees the list as it is now, and two machines changing it
    /// at once both succeed.
    pub(crate) async fn update_list(
        &self,
        account: &Account,
        entry: &[u8],
        mut change: impl FnMut(&mut Vec<String>) -> bool,
    ) -> Result<(), AccountError> {
        let address = account.keys_record();
        let owner = SigningKey::from_bytes(&account.root.derive("keys owner"));
        for _ in 0..CAS_ATTEMPTS {
            let record = match self.get_record(address).await {
                Ok(r) => r,
                Err(MutableError::NotFound(_)) => {
                    let name_bytes = account.root.derive("keys record");
                    create_owned(self, &*name_bytes, KEYS_TAG, &owner).await?;
                    self.get_record(address).await?
                }
                Err(e) => return Err(e.into()),
            };
            let mut items = list_of(account, &record, entry)?;
            if !change(&mut items) {
                return Ok(());
            }
            let value = seal_list(account, entry, &items)?;
            let change = Change::Set {
                key: entry.to_vec(),
                value,
            };
            match update_from(self, record, change, std::slice::from_ref(&owner)).await {
                Ok(_) => return Ok(()),
                Err(MutableError::Refused(
                    safe_protocol::mutable::RecordError::WrongVersion { .. }
                    | safe_protocol::mutable::RecordError::Conflict,
                )) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AccountError::Mutable(MutableError::Network(
            "the keys record kept changing; try again".into(),
        )))
    }
}

/// Sets `entry` as the account's login, an operation by the owner against
/// `record`.
async fn set_login(
    client: &Client,
    record: Record,
    entry: &LoginEntry,
    owner: &SigningKey,
) -> Result<(), MutableError> {
    let value = entry
        .encode()
        .map_err(|e| MutableError::Network(format!("cannot encode the login: {e}")))?;
    let change = Change::Set {
        key: LOGIN_KEY.to_vec(),
        value,
    };
    update_from(client, record, change, std::slice::from_ref(owner))
        .await
        .map(|_| ())
}

fn seal_list(account: &Account, entry: &[u8], names: &[String]) -> Result<Vec<u8>, AccountError> {
    let plain = codec::encode(NAMES_FORMAT, &names)
        .map_err(|e| AccountError::Internal(format!("cannot encode a list: {e}")))?;
    let nonce = random::<24>()?;
    let aad = list_aad(account, entry);
    let sealed = account
        .keys_cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| AccountError::Internal("sealing failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The additional data a sealed list is bound to: the keys record, and
/// the entry for any list but the key names (whose format predates it).
fn list_aad(account: &Account, entry: &[u8]) -> Vec<u8> {
    let mut aad = account.keys_record().as_bytes().to_vec();
    if entry != NAMES_KEY {
        aad.extend_from_slice(entry);
    }
    aad
}

/// The sealed list in `entry` of the keys record (none yet: empty). A list
/// that does not open is an error, never an empty list: adding to it would
/// then overwrite it.
fn list_of(account: &Account, record: &Record, entry: &[u8]) -> Result<Vec<String>, AccountError> {
    let Some(value) = record.state.entries.get(entry) else {
        return Ok(Vec::new());
    };
    if value.len() < 24 {
        return Err(AccountError::KeysUnreadable);
    }
    let (nonce, sealed) = value.split_at(24);
    let aad = list_aad(account, entry);
    let plain = account
        .keys_cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| AccountError::KeysUnreadable)?;
    codec::decode(NAMES_FORMAT, &plain, MAX_NAMES_BYTES).map_err(|_| AccountError::KeysUnreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_passwords_are_checked_and_normalised() {
        assert_eq!(check_username("alice").unwrap(), "alice");
        // "é" composed and decomposed are one name.
        assert_eq!(
            check_username("cafe\u{301}").unwrap(),
            check_username("caf\u{e9}").unwrap()
        );
        for bad in ["", " alice", "alice ", "a\nb", &"x".repeat(65)] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("short", true).is_err());
        assert!(
            check_password("short", false).is_ok(),
            "old passwords are not judged"
        );
        assert!(check_password("long enough!", true).is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_BYTES + 1), false).is_err());
    }

    #[test]
    fn a_phrase_gives_back_its_root_and_nothing_else_does() {
        let root = RootSecret::generate().unwrap();
        let phrase = root.phrase();
        assert_eq!(phrase.split(' ').count(), 24);
        let back = RootSecret::from_phrase(&format!("  {}  ", phrase.to_uppercase())).unwrap();
        assert_eq!(*back.0, *root.0);
        let mut words: Vec<&str> = phrase.split(' ').collect();
        words.swap(0, 1);
        assert!(RootSecret::from_phrase(&words.join(" ")).is_err() || words[0] == words[1]);
        assert!(RootSecret::from_phrase("abandon abandon").is_err());
        assert_ne!(
            root.derive("owner").as_ref(),
            root.derive("keys owner").as_ref()
        );
    }

    #[test]
    fn a_seal_opens_only_with_its_password_and_user() {
        let s = Stretched::new("alice", "correct horse", KDF_SET).unwrap();
        let wrong = Stretched::new("alice", "wrong horse!", KDF_SET).unwrap();
        let root = RootSecret::generate().unwrap();
        let entry = seal(&s, &root, "alice").unwrap();
        assert_eq!(*open(&entry, &s, "alice").unwrap().0, *root.0);
        assert!(open(&entry, &wrong, "alice").is_none());
        assert!(open(&entry, &s, "bob").is_none());
        let mut tampered = entry.clone();
        tampered.sealed[0] ^= 1;
        assert!(open(&tampered, &s, "alice").is_none());
        // A fresh nonce every time.
        assert_ne!(seal(&s, &root, "alice").unwrap().nonce, entry.nonce);
        assert_ne!(
            s.address(),
            Stretched::new("bob", "correct horse", KDF_SET)
                .unwrap()
                .address()
        );
        assert_eq!(Some(s.address()), account_address("alice"));
    }
}
