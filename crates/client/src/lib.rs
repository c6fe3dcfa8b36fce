//! The client library of `safe`.
//!
//! Files are self-encrypted ([`safe_selfenc`]) into chunks that go to a
//! [`ChunkStore`]. The store is the only thing that changes between offline
//! use ([`LocalStore`], a directory) and the network: [`files`] works the
//! same against both.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod files;
pub mod local;
pub mod network;
pub mod store;

pub use files::{GetError, PutError, PutReport, get, put_file};
pub use local::LocalStore;
pub use network::{ConnectError, NetworkStore};
pub use store::{ChunkStore, StoreError};
