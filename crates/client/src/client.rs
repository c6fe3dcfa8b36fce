//! [`Client`]: the one entry point for every front end (the CLI, the
//! gateway, tests, third-party apps).
//!
//! A client reaches its data through a backend: the network (a
//! [`Connection`]) or a local directory ([`LocalStore`], offline). Files,
//! chunks and records work the same on both, because both implement
//! [`ChunkStore`] and [`RecordStore`] and the logic above them
//! ([`crate::files`], [`crate::mutable`]) is written against those traits.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use safe_client::Client;
//! let client = Client::from_env().await?; // SAFE_PEERS, else the local testnet
//! let report = client.put_bytes(b"hello".to_vec()).await?;
//! assert_eq!(client.get_bytes(&report.address, 1 << 20).await?, b"hello");
//! client.shutdown().await;
//! # Ok(()) }
//! ```

use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use safe_network::libp2p::Multiaddr;
use safe_protocol::mutable::{
    Change, Hash, PublicKey, Record, RecordError, Signed, SigningKey, Write, record_address,
};
use safe_protocol::{Address, Chunk, DataKind, XorName};
use safe_selfenc::{Config, Secret};

use crate::bootstrap::{Bootstrap, ConnectError};
use crate::cache::Caches;
use crate::files::{self, GetError, Opened, PutError, PutReport};
use crate::home::Home;
use crate::local::LocalStore;
use crate::mutable::{MutableError, new_append, new_create};
use crate::network::Connection;
use crate::store::{ChunkStore, RecordStore, StoreError};

/// Most rounds of [`Client::update_with`] before a record that keeps
/// changing underneath it is reported as the last refusal.
pub const UPDATE_ATTEMPTS: usize = 8;

/// How to join the network.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Peers to bootstrap from; empty means from the environment
    /// ([`Bootstrap::from_env`]).
    pub peers: Vec<Multiaddr>,
    /// Close group size K of the network.
    pub close_group: usize,
    /// The data directory (for the contacts file).
    pub home: Home,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            close_group: safe_network::DEFAULT_CLOSE_GROUP,
            home: Home::from_env(),
        }
    }
}

/// Options of a file put.
#[derive(Clone, Default)]
pub struct PutOptions {
    /// Private mode: mixed into every chunk key (see [`Secret`]).
    pub secret: Option<Secret>,
    /// Called with the number of plaintext bytes read so far.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl PutOptions {
    fn split(&self) -> (Config, Arc<dyn Fn(u64) + Send + Sync>) {
        let config = Config {
            secret: self.secret.clone(),
            ..Config::default()
        };
        let progress = self.progress.clone().unwrap_or_else(|| Arc::new(|_| {}));
        (config, progress)
    }
}

/// A new record's claim: where it lives and who owns it.
#[derive(Clone, Debug)]
pub struct NewRecord {
    /// The name the address is made from (with `tag`).
    pub name: Vec<u8>,
    /// The type tag: different apps use different tags for one name.
    pub tag: u64,
    /// Owners' public keys; empty means the creator alone.
    pub owners: Vec<PublicKey>,
    /// Owner signatures each change needs.
    pub threshold: u8,
    /// Whether anyone may append.
    pub public_append: bool,
}

impl NewRecord {
    /// A record owned by its creator alone, appends by owners only.
    pub fn named(name: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            tag: 0,
            owners: Vec::new(),
            threshold: 1,
            public_append: false,
        }
    }

    /// The address the record will have.
    pub fn address(&self) -> XorName {
        record_address(&self.name, self.tag)
    }
}

/// What an address holds, as [`Client::open`] finds it.
pub enum Opening {
    /// A file or chunk, ready to be read ([`Client::read_range`]).
    Bytes(Opened),
    /// A mutable record.
    Record(Box<Record>),
}

/// Why [`Client::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Reading a file or chunk failed.
    #[error(transparent)]
    Get(#[from] GetError),
    /// Reading a record failed.
    #[error(transparent)]
    Record(#[from] MutableError),
}

#[derive(Clone)]
enum Backend {
    Network(Connection),
    Local(LocalStore),
    /// Reads through relay circuits only (`--anonymous`).
    Anonymous(Arc<crate::anonymous::AnonymousStore>),
    /// Keeps only the names of the chunks put, storing nothing: the first
    /// pass of a paid tree upload ([`Client::put_tree`]).
    Names(Arc<files::Names>),
}

/// A client of the network, or of a local store: files, chunks and
/// records. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Client {
    backend: Backend,
    caches: Option<Arc<Caches>>,
    /// Pays for storage from the data directory's wallet when the network
    /// charges ([`crate::pay`]).
    payer: Arc<crate::pay::Payer>,
    /// Paid for already, as a whole (a tree upload's second pass): a file
    /// put makes no payment of its own first, and a chunk the payment
    /// missed is paid for as it is put.
    prepaid: bool,
}

impl Client {
    /// Joins the network named by the environment: `SAFE_PEERS`, else the
    /// contacts file of the local testnet (`safe testnet up`).
    pub async fn from_env() -> Result<Self, ConnectError> {
        Self::connect_with(ConnectOptions::default()).await
    }

    /// Joins the network through `peers` (close group size K = 5).
    pub async fn connect(peers: &[Multiaddr]) -> Result<Self, ConnectError> {
        Self::connect_with(ConnectOptions {
            peers: peers.to_vec(),
            ..ConnectOptions::default()
        })
        .await
    }

    /// Joins the network as `options` say.
    pub async fn connect_with(options: ConnectOptions) -> Result<Self, ConnectError> {
        let bootstrap = if options.peers.is_empty() {
            Bootstrap::from_env(&options.home)?
        } else {
            Bootstrap::given(options.peers)
        };
        let connection = Connection::connect(&bootstrap, options.close_group).await?;
        let mut client = Self::from(connection);
        client.payer = Arc::new(crate::pay::Payer::new(options.home));
        Ok(client)
    }

    /// This network client in anonymous mode: chunks are read through
    /// 3-hop relay circuits ([`crate::anonymous`]) on `network`
    /// (`safe_network::network_id`); everything else is refused, never
    /// done directly instead. A local client stays as it is.
    ///
    /// With `sample_file`, the relay sample is kept there and reused for
    /// [`crate::anonymous::SAMPLE_TTL`].
    pub fn anonymous(self, network: [u8; 32], sample_file: Option<std::path::PathBuf>) -> Self {
        match self.backend {
            Backend::Network(c) => {
                let mut store = crate::anonymous::AnonymousStore::new(c, network);
                if let Some(path) = sample_file {
                    store = store.with_sample_file(path);
                }
                Self {
                    backend: Backend::Anonymous(Arc::new(store)),
                    caches: self.caches,
                    payer: self.payer,
                    prepaid: false,
                }
            }
            backend => Self {
                backend,
                caches: self.caches,
                payer: self.payer,
                prepaid: false,
            },
        }
    }

    /// A client in anonymous mode ([`Client::anonymous`]) that connects to
    /// the network as `options` say only when it must sample relays: with
    /// a kept sample and guard in `sample_file`'s directory, reading makes
    /// no connection but its circuits'.
    pub fn connect_anonymous(
        options: ConnectOptions,
        network: [u8; 32],
        sample_file: Option<std::path::PathBuf>,
    ) -> Result<Self, ConnectError> {
        let bootstrap = if options.peers.is_empty() {
            Bootstrap::from_env(&options.home)?
        } else {
            Bootstrap::given(options.peers)
        };
        let mut store =
            crate::anonymous::AnonymousStore::lazy(bootstrap, options.close_group, network);
        if let Some(path) = sample_file {
            store = store.with_sample_file(path);
        }
        Ok(Self {
            backend: Backend::Anonymous(Arc::new(store)),
            caches: None,
            payer: Arc::new(crate::pay::Payer::new(options.home)),
            prepaid: false,
        })
    }

    /// A client of the local store in `dir` (created if missing): no
    /// network, the same API.
    pub fn local(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self::from(LocalStore::open(dir)?))
    }

    /// This client with in-memory caches of verified chunks
    /// (`chunk_bytes`) and decoded public manifests (about
    /// `manifest_bytes`), shared by its clones: for clients that read the
    /// same data again and again, such as the gateway. Content-addressed
    /// data never changes, so a cached answer is always the right one.
    pub fn with_caches(mut self, chunk_bytes: u64, manifest_bytes: u64) -> Self {
        self.caches = Some(Arc::new(Caches::new(chunk_bytes, manifest_bytes)));
        self
    }

    /// The caches, if [`Client::with_caches`] made them.
    pub fn caches(&self) -> Option<&Caches> {
        self.caches.as_deref()
    }

    /// The network connection, unless this client is local.
    pub fn connection(&self) -> Option<&Connection> {
        match &self.backend {
            Backend::Network(c) => Some(c),
            Backend::Local(_) | Backend::Anonymous(_) | Backend::Names(_) => None,
        }
    }

    /// Chunk bytes sent to the network so far (`None` for a local client).
    pub fn bytes_sent(&self) -> Option<u64> {
        self.connection().map(Connection::bytes_sent)
    }

    /// Closes the connection (nothing to do for a local client).
    pub async fn shutdown(&self) {
        match &self.backend {
            Backend::Network(c) => c.shutdown().await,
            Backend::Anonymous(a) => {
                if let Some(c) = a.connection() {
                    c.shutdown().await;
                }
            }
            Backend::Local(_) | Backend::Names(_) => {}
        }
    }

    // ---- files and chunks ----

    /// Self-encrypts the file at `path` and stores it. A pipe or device
    /// (`/dev/stdin`) is read to its end first.
    pub async fn put_file(&self, path: &Path, options: &PutOptions) -> Result<PutReport, PutError> {
        let (config, progress) = options.split();
        let meta = std::fs::metadata(path);
        if let (Some(c), Ok(meta)) = (self.paying().await, meta)
            && meta.is_file()
        {
            // The whole upload paid in one payment: its chunks' names first
            // (a pass of self-encryption that stores nothing).
            let names = Arc::new(files::Names::default());
            files::put_file(names.clone(), path, config.clone(), Arc::new(|_| {})).await?;
            let paid = self.pay_for(c, &names.take()).await?;
            let mut report = files::put_file(self.store(), path, config, progress).await?;
            report.paid_nanos = paid;
            return Ok(report);
        }
        files::put_file(self.store(), path, config, progress).await
    }

    /// What storing the file at `path` would cost now, in nanos, without
    /// storing or paying anything (`safe wallet quote`): its chunks'
    /// names by a pass of self-encryption, then the close groups' quotes.
    /// 0 on a free network, and nothing for chunks nodes hold already.
    pub async fn quote_file(&self, path: &Path, options: &PutOptions) -> Result<u64, PutError> {
        let Some(c) = self.paying().await else {
            return Ok(0);
        };
        let (config, progress) = options.split();
        let names = Arc::new(files::Names::default());
        files::put_file(names.clone(), path, config, progress).await?;
        c.price_of(&names.take())
            .await
            .map_err(|e| PutError::Store(StoreError::Payment(e.to_string())))
    }

    /// A client that stores nothing and keeps the names of the chunks put
    /// in `names`: what an upload will store, learnt before paying for it.
    pub(crate) fn names_only(&self, names: Arc<files::Names>) -> Self {
        Self {
            backend: Backend::Names(names),
            caches: None,
            payer: self.payer.clone(),
            prepaid: true,
        }
    }

    /// This client, its uploads paid for as a whole already (the second
    /// pass of [`Client::put_tree`]).
    pub(crate) fn prepaid(&self) -> Self {
        Self {
            prepaid: true,
            ..self.clone()
        }
    }

    /// The connection, if storing on it is paid for (and not paid for
    /// already).
    pub(crate) async fn paying(&self) -> Option<&Connection> {
        if self.prepaid {
            return None;
        }
        match &self.backend {
            Backend::Network(c) => self.payer.charges(c).await.map(|_| c),
            _ => None,
        }
    }

    pub(crate) async fn pay_for(&self, c: &Connection, names: &[XorName]) -> Result<u64, PutError> {
        self.payer
            .pay_names(c, names)
            .await
            .map_err(|e| PutError::Store(StoreError::Payment(e.to_string())))
    }

    /// What pays for this client's storage.
    pub fn payer(&self) -> &crate::pay::Payer {
        &self.payer
    }

    /// This client, paying for storage from the wallet of data directory
    /// `home` (by default, that of the environment).
    pub fn paying_from(mut self, home: Home) -> Self {
        self.payer = Arc::new(crate::pay::Payer::new(home));
        self
    }

    /// Self-encrypts everything `reader` yields (standard input, say);
    /// `name` says what it is, for errors.
    pub async fn put_stream<R: Read + Send + 'static>(
        &self,
        reader: R,
        name: &str,
        options: &PutOptions,
    ) -> Result<PutReport, PutError> {
        let (config, progress) = options.split();
        files::put_stream(self.store(), reader, name.to_string(), config, progress).await
    }

    /// Self-encrypts `bytes` and stores them as a file.
    pub async fn put_bytes(&self, bytes: Vec<u8>) -> Result<PutReport, PutError> {
        self.put_bytes_with(bytes, None).await
    }

    /// [`Client::put_bytes`], in private mode with `secret`.
    pub async fn put_bytes_with(
        &self,
        bytes: Vec<u8>,
        secret: Option<&Secret>,
    ) -> Result<PutReport, PutError> {
        let size = bytes.len() as u64;
        let bytes: Arc<[u8]> = bytes.into();
        let options = PutOptions {
            secret: secret.cloned(),
            progress: None,
        };
        let (config, progress) = options.split();
        let mut paid = 0;
        if let Some(c) = self.paying().await {
            let names = Arc::new(files::Names::default());
            let reader = std::io::Cursor::new(bytes.clone());
            files::put_reader(
                names.clone(),
                reader,
                size,
                config.clone(),
                progress.clone(),
            )
            .await?;
            paid = self.pay_for(c, &names.take()).await?;
        }
        let reader = std::io::Cursor::new(bytes);
        let mut report = files::put_reader(self.store(), reader, size, config, progress).await?;
        report.paid_nanos = paid;
        Ok(report)
    }

    /// Looks a file or chunk address up and prepares to read it
    /// (`secret`: the key of a private file).
    pub async fn open_file(
        &self,
        address: &Address,
        secret: Option<&Secret>,
    ) -> Result<Opened, GetError> {
        files::open(&self.store(), address, secret).await
    }

    /// Writes bytes `range` (clamped to the end) of an opened file to
    /// `out`; returns how many were written.
    pub async fn read_range(
        &self,
        opened: &Opened,
        range: Range<u64>,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, GetError> {
        files::read_range(&self.store(), opened, range, out).await
    }

    /// The whole of a (public) file or chunk, in memory, if it holds at
    /// most `max` bytes ([`GetError::TooLarge`] otherwise, before anything
    /// but the root is fetched).
    pub async fn get_bytes(&self, address: &Address, max: u64) -> Result<Vec<u8>, GetError> {
        self.get_bytes_in(address, max, None).await
    }

    /// [`Client::get_bytes`] of a private file (`secret`).
    pub async fn get_bytes_in(
        &self,
        address: &Address,
        max: u64,
        secret: Option<&Secret>,
    ) -> Result<Vec<u8>, GetError> {
        let opened = self.open_file(address, secret).await?;
        if opened.size > max {
            return Err(GetError::TooLarge {
                address: *address,
                size: opened.size,
                max,
            });
        }
        let mut out = Vec::with_capacity(opened.size as usize);
        self.read_range(&opened, 0..opened.size, &mut out).await?;
        Ok(out)
    }

    /// Stores one chunk as it is.
    pub async fn put_chunk(&self, chunk: Chunk) -> Result<(), StoreError> {
        ChunkStore::put(self, chunk).await
    }

    /// Fetches and verifies the chunk called `name`.
    pub async fn get_chunk(&self, name: XorName) -> Result<Chunk, StoreError> {
        ChunkStore::get(self, name).await
    }

    /// Whatever `address` names: a file or chunk opened for reading, or a
    /// record.
    pub async fn open(
        &self,
        address: &Address,
        secret: Option<&Secret>,
    ) -> Result<Opening, OpenError> {
        match address.kind {
            DataKind::Mutable => Ok(Opening::Record(Box::new(
                self.get_record(address.name).await?,
            ))),
            _ => Ok(Opening::Bytes(self.open_file(address, secret).await?)),
        }
    }

    // ---- records ----

    /// Creates a record signed by `creator` (who must be among the
    /// owners); returns its address.
    ///
    /// A create repeated with the same claim by the same key is reported
    /// as [`MutableError::AlreadyCreated`] (with the record as it is now),
    /// one by anyone else as `Refused(AlreadyExists)`.
    pub async fn create_record(
        &self,
        new: NewRecord,
        creator: &SigningKey,
    ) -> Result<XorName, MutableError> {
        let create = signed_create(&new, creator)?;
        let address = new.address();
        self.submit(&Write::Create(create)).await?;
        Ok(address)
    }

    /// The record at `address`, verified.
    pub async fn get_record(&self, address: XorName) -> Result<Record, MutableError> {
        RecordStore::get_record(self, address).await
    }

    /// Sets entry `key` to `value`; returns the record as it now is.
    pub async fn set_entry(
        &self,
        address: XorName,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        signers: &[SigningKey],
    ) -> Result<Record, MutableError> {
        let change = Change::Set {
            key: key.into(),
            value: value.into(),
        };
        self.update_record(address, change, signers).await
    }

    /// Removes entry `key`; returns the record as it now is.
    pub async fn remove_entry(
        &self,
        address: XorName,
        key: impl Into<Vec<u8>>,
        signers: &[SigningKey],
    ) -> Result<Record, MutableError> {
        let change = Change::Remove { key: key.into() };
        self.update_record(address, change, signers).await
    }

    /// Replaces the owners and threshold (transfer or share ownership).
    pub async fn set_owners(
        &self,
        address: XorName,
        owners: Vec<PublicKey>,
        threshold: u8,
        signers: &[SigningKey],
    ) -> Result<Record, MutableError> {
        let change = Change::Owners { owners, threshold };
        self.update_record(address, change, signers).await
    }

    /// Appends `value` (signed by `signers`; on a public-append record any
    /// key will do); returns the append's id.
    pub async fn append(
        &self,
        address: XorName,
        value: impl Into<Vec<u8>>,
        signers: &[SigningKey],
    ) -> Result<Hash, MutableError> {
        let append = new_append(address, value.into(), signers);
        let id = append.id();
        RecordStore::write_record(self, &Write::Append(append)).await?;
        Ok(id)
    }

    /// Reads the record, makes `change` signed by `signers` and writes it;
    /// returns the record as it now is.
    pub async fn update_record(
        &self,
        address: XorName,
        change: Change,
        signers: &[SigningKey],
    ) -> Result<Record, MutableError> {
        crate::mutable::update(self, address, change, signers).await
    }

    /// Read, decide, write, and again if someone else wrote in between: reads
    /// the record, asks `change` what to do with it as it now is, signs and
    /// writes that. When the write is refused because the record moved on
    /// meanwhile (a stale version, or a different state of that version),
    /// it starts over, up to [`UPDATE_ATTEMPTS`] times. This is the
    /// compare-and-swap a filesystem or account layer builds on: `change`
    /// sees every state it acts on, and no other writer's change is lost.
    pub async fn update_with<F>(
        &self,
        address: XorName,
        signers: &[SigningKey],
        mut change: F,
    ) -> Result<Record, MutableError>
    where
        F: FnMut(&Record) -> Result<Change, MutableError>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.get_record(address).await?;
            let wanted = change(&current)?;
            match crate::mutable::update_from(self, current, wanted, signers).await {
                Err(MutableError::Refused(
                    RecordError::WrongVersion { .. } | RecordError::Conflict,
                )) if attempt < UPDATE_ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    /// Sends a signed write (a create, an owner operation, e.g. one from a
    /// prepared file, or an append).
    ///
    /// A create or operation the record already shows is still sent (the
    /// copy that shows it may be a minority's: a retry is what gets it to
    /// a majority), and once confirmed is reported as
    /// [`MutableError::AlreadyCreated`] or [`MutableError::AlreadyApplied`],
    /// so callers can tell a retry from a change. An operation the record
    /// has since moved past is reported without sending (nodes could only
    /// refuse it as stale).
    pub async fn submit(&self, write: &Write) -> Result<(), MutableError> {
        let current = match write {
            Write::Append(_) => None,
            _ => match self.get_record(write.address()).await {
                Ok(current) => Some(current),
                Err(MutableError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
        };
        self.submit_against(current.as_ref(), write).await
    }

    /// [`Client::submit`] for a caller that has just read the record
    /// (`current`; `None`: there was none), saving a second read.
    pub async fn submit_against(
        &self,
        current: Option<&Record>,
        write: &Write,
    ) -> Result<(), MutableError> {
        let shown = current.and_then(|r| already_shown(r, write));
        if let Some(Shown::Past(e)) = shown {
            return Err(e);
        }
        RecordStore::write_record(self, write).await?;
        match shown {
            Some(Shown::Current(e)) => Err(e),
            _ => Ok(()),
        }
    }

    fn store(&self) -> Arc<Self> {
        Arc::new(self.clone())
    }
}

/// How far a record already shows a write.
enum Shown {
    /// The write is what the record is now: sending it again is harmless
    /// (and makes sure a majority holds it); report this once it is done.
    Current(MutableError),
    /// The record has moved past the write: report this without sending.
    Past(MutableError),
}

/// Whether `record` already shows `write` (see [`Client::submit`]); other
/// writes are for the store to judge.
fn already_shown(record: &Record, write: &Write) -> Option<Shown> {
    let state = &record.state;
    match write {
        Write::Create(c) if c.body == record.genesis.body => {
            let by_you = c
                .sigs
                .iter()
                .any(|s| record.genesis.sigs.iter().any(|g| g.key == s.key));
            Some(Shown::Current(MutableError::AlreadyCreated {
                by_you,
                version: state.version,
                owners: state.owners.clone(),
                threshold: state.threshold,
            }))
        }
        Write::Op(op) if op.body.result == state.hash() => {
            Some(Shown::Current(MutableError::AlreadyApplied {
                version: state.version,
            }))
        }
        Write::Op(op) if state.ancestry.contains(&op.body.result) => {
            Some(Shown::Past(MutableError::AlreadyApplied {
                version: state.version,
            }))
        }
        _ => None,
    }
}

impl From<Connection> for Client {
    fn from(c: Connection) -> Self {
        Self {
            backend: Backend::Network(c),
            caches: None,
            payer: Arc::new(crate::pay::Payer::new(Home::from_env())),
            prepaid: false,
        }
    }
}

impl From<LocalStore> for Client {
    fn from(s: LocalStore) -> Self {
        Self {
            backend: Backend::Local(s),
            caches: None,
            payer: Arc::new(crate::pay::Payer::new(Home::from_env())),
            prepaid: false,
        }
    }
}

impl ChunkStore for Client {
    async fn put(&self, chunk: Chunk) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Network(c) => {
                if c.payment_for(chunk.name()).is_none() && self.payer.charges(c).await.is_some() {
                    self.payer
                        .ensure_paid(c, *chunk.name())
                        .await
                        .map_err(|e| StoreError::Payment(e.to_string()))?;
                }
                c.put(chunk).await
            }
            Backend::Local(s) => s.put(chunk).await,
            Backend::Anonymous(a) => a.put(chunk).await,
            Backend::Names(n) => n.put(chunk).await,
        }
    }

    async fn get(&self, name: XorName) -> Result<Chunk, StoreError> {
        if let Some(chunk) = self.caches.as_ref().and_then(|c| c.chunk(&name)) {
            return Ok(chunk);
        }
        let chunk = match &self.backend {
            Backend::Network(c) => c.get(name).await,
            Backend::Local(s) => s.get(name).await,
            Backend::Anonymous(a) => a.get(name).await,
            Backend::Names(n) => n.get(name).await,
        }?;
        if let Some(c) = &self.caches {
            c.keep_chunk(&chunk);
        }
        Ok(chunk)
    }
}

impl RecordStore for Client {
    async fn write_record(&self, write: &Write) -> Result<(), MutableError> {
        match &self.backend {
            Backend::Network(c) => {
                // Creating a record is paid for, as storing a chunk is.
                let name = write.address();
                if matches!(write, Write::Create(_))
                    && c.payment_for(&name).is_none()
                    && self.payer.charges(c).await.is_some()
                {
                    self.payer
                        .ensure_paid(c, name)
                        .await
                        .map_err(|e| MutableError::Payment(e.to_string()))?;
                }
                RecordStore::write_record(c, write).await
            }
            Backend::Local(s) => RecordStore::write_record(s, write).await,
            Backend::Anonymous(a) => a.write_record(write).await,
            Backend::Names(_) => Err(not_yet()),
        }
    }

    async fn get_record(&self, name: XorName) -> Result<Record, MutableError> {
        match &self.backend {
            Backend::Network(c) => RecordStore::get_record(c, name).await,
            Backend::Local(s) => RecordStore::get_record(s, name).await,
            Backend::Anonymous(a) => a.get_record(name).await,
            Backend::Names(_) => Err(not_yet()),
        }
    }

    async fn fetch_account(
        &self,
        address: XorName,
        signer: &SigningKey,
    ) -> Result<Record, MutableError> {
        match &self.backend {
            Backend::Network(c) => c.fetch_account(address, signer).await,
            Backend::Local(s) => s.fetch_account(address, signer).await,
            Backend::Anonymous(_) | Backend::Names(_) => Err(not_yet()),
        }
    }
}

fn not_yet() -> MutableError {
    MutableError::Network(crate::anonymous::NOT_YET.into())
}

/// The signed create of `new`, for callers that save or inspect it before
/// sending ([`Client::submit`]).
pub fn signed_create(
    new: &NewRecord,
    creator: &SigningKey,
) -> Result<Signed<safe_protocol::mutable::Create>, MutableError> {
    new_create(
        &new.name,
        new.tag,
        new.owners.clone(),
        new.threshold,
        new.public_append,
        creator,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    /// The same code offline: files, chunks and every record operation.
    #[tokio::test]
    async fn local_client_does_files_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::local(dir.path()).unwrap();
        let report = client.put_bytes(b"hello world".to_vec()).await.unwrap();
        assert_eq!(
            client.get_bytes(&report.address, 1 << 20).await.unwrap(),
            b"hello world"
        );

        let (alice, bob) = (key(1), key(2));
        let address = client
            .create_record(NewRecord::named("profile"), &alice)
            .await
            .unwrap();
        let r = client
            .set_entry(address, "colour", "blue", std::slice::from_ref(&alice))
            .await
            .unwrap();
        assert_eq!(r.state.version, 1);
        assert_eq!(
            client.get_record(address).await.unwrap().state.entries[&b"colour".to_vec()],
            b"blue"
        );

        // Not an owner: refused, nothing changes.
        let err = client
            .set_entry(address, "colour", "red", std::slice::from_ref(&bob))
            .await
            .unwrap_err();
        assert!(
            matches!(err, MutableError::Refused(RecordError::NotOwner)),
            "{err}"
        );

        // The same create again is reported truthfully, someone else's refused.
        let again = client
            .create_record(NewRecord::named("profile"), &alice)
            .await;
        assert!(
            matches!(
                again,
                Err(MutableError::AlreadyCreated {
                    by_you: true,
                    version: 1,
                    ..
                })
            ),
            "{again:?}"
        );
        let theirs = client
            .create_record(NewRecord::named("profile"), &bob)
            .await;
        assert!(
            matches!(
                theirs,
                Err(MutableError::Refused(RecordError::AlreadyExists))
            ),
            "{theirs:?}"
        );

        // Transfer: alice is refused afterwards, bob accepted.
        let pk = bob.verifying_key().to_bytes();
        client
            .set_owners(address, vec![pk], 1, std::slice::from_ref(&alice))
            .await
            .unwrap();
        assert!(
            client
                .remove_entry(address, "colour", &[alice])
                .await
                .is_err()
        );
        let r = client
            .remove_entry(address, "colour", &[bob])
            .await
            .unwrap();
        assert!(r.state.entries.is_empty());
        assert_eq!(r.state.version, 3);

        // A replayed operation is reported, not applied twice.
        let mut record = client.get_record(address).await.unwrap();
        let op = crate::mutable::prepare(
            &record,
            Change::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            },
        )
        .unwrap();
        let mut op = op;
        op.sign(&key(2));
        let write = Write::Op(op);
        client.submit(&write).await.unwrap();
        record.apply(&write).unwrap();
        let replay = client.submit(&write).await;
        assert!(
            matches!(replay, Err(MutableError::AlreadyApplied { version: 4 })),
            "{replay:?}"
        );

        // A caller's memory bound is kept.
        let big = client.put_bytes(vec![7; 10_000]).await.unwrap();
        assert!(matches!(
            client.get_bytes(&big.address, 9_999).await,
            Err(GetError::TooLarge { size: 10_000, .. })
        ));
        // A backwards range reads nothing rather than failing or panicking.
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 10..5;
        let opened = client.open_file(&big.address, None).await.unwrap();
        let mut out = Vec::new();
        assert_eq!(
            client
                .read_range(&opened, backwards.clone(), &mut out)
                .await
                .unwrap(),
            0
        );
        let chunk = client.get_chunk(big.address.name).await.unwrap();
        let raw = client
            .open_file(&Address::new(DataKind::Chunk, *chunk.name()), None)
            .await
            .unwrap();
        assert_eq!(
            client.read_range(&raw, backwards, &mut out).await.unwrap(),
            0
        );

        // Reopened from disk: everything is still there.
        drop(client);
        let client = Client::local(dir.path()).unwrap();
        assert_eq!(client.get_record(address).await.unwrap().state.version, 4);
        assert!(matches!(
            client.get_record(XorName([3; 32])).await,
            Err(MutableError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn update_with_starts_over_when_another_writer_got_in_first() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::local(dir.path()).unwrap();
        let other = Client::local(dir.path()).unwrap();
        let owner = key(9);
        let address = client
            .create_record(NewRecord::named("counter"), &owner)
            .await
            .unwrap();
        let count = |r: &Record| -> u64 {
            r.state
                .entries
                .get(b"n".as_slice())
                .map_or(0, |v| String::from_utf8_lossy(v).parse().unwrap())
        };
        let mut seen = Vec::new();
        let r = client
            .update_with(address, std::slice::from_ref(&owner), |r| {
                seen.push(r.state.version);
                if seen.len() == 1 {
                    // Another writer gets in between this read and write.
                    let (other, owner) = (other.clone(), owner.clone());
                    std::thread::spawn(move || {
                        tokio::runtime::Runtime::new().unwrap().block_on(async {
                            other.set_entry(address, "n", "10", &[owner]).await.unwrap();
                        })
                    })
                    .join()
                    .unwrap();
                }
                let n = count(r) + 1;
                Ok(Change::Set {
                    key: b"n".to_vec(),
                    value: n.to_string().into_bytes(),
                })
            })
            .await
            .unwrap();
        assert_eq!(
            seen,
            [0, 1],
            "the second round saw the other writer's state"
        );
        assert_eq!(
            count(&r),
            11,
            "built on the other writer's 10, not lost over it"
        );
        assert_eq!(r.state.version, 2);
    }

    #[tokio::test]
    async fn appends_are_listed_in_the_order_they_were_made() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::local(dir.path()).unwrap();
        let owner = key(5);
        let mut new = NewRecord::named("inbox");
        new.public_append = true;
        let address = client.create_record(new, &owner).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..8u8 {
            ids.push(
                client
                    .append(address, vec![i], &[key(10 + i)])
                    .await
                    .unwrap(),
            );
        }
        let record = client.get_record(address).await.unwrap();
        let listed: Vec<Hash> = crate::mutable::appends_in_order(&record)
            .iter()
            .map(|a| a.id())
            .collect();
        assert_eq!(listed, ids);
    }
}
