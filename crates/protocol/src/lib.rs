//! The base crate of `safe`: names, addresses, chunks, limits and the versioned
//! binary codec.
//!
//! Everything else depends on this crate and it depends on nothing heavy: no
//! networking, no storage, no async runtime. Types here are what travels on the
//! wire and what is written to disk, so every encoded form carries a format
//! version (see [`codec`]).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod account;
pub mod address;
pub mod chunk;
pub mod codec;
pub mod coin;
pub mod inbox;
pub mod manifest;
pub mod messages;
pub mod mutable;
pub mod name;
pub mod url;
pub mod xorname;

pub use address::{Address, AddressError, DataKind};
pub use chunk::{Chunk, ChunkError, MAX_CHUNK_SIZE};
pub use codec::CodecError;
pub use url::{Host, SafeUrl, UrlError};
pub use xorname::XorName;
