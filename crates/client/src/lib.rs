//! The client library of `safe`.
//!
//! Files are self-encrypted ([`safe_selfenc`]) into chunks that go to a
//! [`ChunkStore`]. The store is the only thing that changes between offline
//! use ([`LocalStore`], a directory) and the network: [`files`] works the
//! same against both.
//!
//! Mutable records ([`mutable`]) are written to and read from the network
//! with the owners' keys ([`keys`]), every copy verified by the client.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod files;
pub mod keys;
pub mod local;
pub mod mutable;
pub mod network;
pub mod store;

pub use files::{GetError, PutError, PutReport, get, put_file};
pub use keys::{KeyDir, KeyError, KeyStore};
pub use local::LocalStore;
pub use mutable::MutableError;
pub use network::{ConnectError, NetworkStore};
pub use store::{ChunkStore, StoreError};
