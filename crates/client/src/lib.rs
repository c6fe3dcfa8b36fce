//! The client library of `safe`: the one way every front end (the CLI, the
//! gateway, apps, tests) reaches the network.
//!
//! Start at [`Client`]: [`Client::from_env`] joins the network the way the
//! `safe` command does, [`Client::local`] uses a directory instead, with the
//! same API.
//!
//! Underneath, files are self-encrypted ([`safe_selfenc`]) into chunks that
//! go to a [`ChunkStore`], and mutable records go to a [`RecordStore`]. The
//! stores are the only thing that changes between offline use
//! ([`LocalStore`], a directory) and the network ([`Connection`]): [`files`]
//! and [`mutable`] work the same against both, verifying everything they
//! read.
//!
//! Modules, by layer:
//! - front-end support: [`home`] (the data directory), [`bootstrap`]
//!   (finding peers), [`range`] (byte ranges), [`output`] (writing to a
//!   user's path), [`prepared`] (multisig operation files), [`keys`],
//!   [`json`] (JSON views for front ends);
//! - logic: [`files`], [`tree`] (directory snapshots), [`mutable`],
//!   [`account`] (log in with a username and password);
//! - stores: [`store`] (the traits), [`local`], [`network`], and
//!   [`cache`] (verified chunks and manifests kept in memory).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod account;
pub mod account_wallet;
pub mod age;
pub mod anonymous;
pub mod bootstrap;
pub mod cache;
mod client;
pub mod coin;
pub mod faucet;
pub mod files;
pub mod fs;
pub mod home;
pub mod json;
pub mod keys;
pub mod local;
pub mod msg;
pub mod mutable;
pub mod names;
pub mod network;
pub mod notices;
pub mod output;
pub mod pay;
pub mod popular;
pub mod prepared;
pub mod range;
pub mod store;
pub mod tree;
pub mod tree_cache;
pub mod wallet;

pub use account::{Account, AccountError, PendingCreate, RootSecret, Session};
pub use bootstrap::{Bootstrap, ConnectError, PeerSource};
pub use client::{
    Client, ConnectOptions, NewRecord, OpenError, Opening, PutOptions, UPDATE_ATTEMPTS,
    signed_create,
};
pub use files::{GetError, Opened, PutError, PutReport};
pub use home::Home;
pub use keys::{KeyDir, KeyError, KeyStore};
pub use local::LocalStore;
pub use mutable::MutableError;
pub use network::Connection;
pub use range::{ByteRange, RangeError};
pub use safe_protocol::mutable::{PublicKey, Record, SigningKey};
pub use safe_protocol::{Address, DataKind, XorName};
pub use safe_selfenc::Secret;
pub use store::{ChunkStore, RecordStore, StoreError};
pub use tree::{Found, TreeError, TreeOptions, TreeReport};
