//! The crypto core of anonymous access (issue 16; the design is
//! `docs/DESIGN-anonymity.md`): no I/O, no async, nothing but bytes in and
//! bytes out, so that it can be read, tested and fuzzed on its own.
//!
//! - [`cert`]: a relay's X25519 key, certified by its node's Ed25519 key,
//!   so that it can travel second-hand and still be checked against the
//!   peer id a client chose.
//! - [`handshake`]: the ntor-like handshake that gives a client and one
//!   hop of its circuit a set of [`HopKeys`].
//! - [`cell`]: fixed-size link cells, and the layered relay cells with a
//!   MAC per hop over every byte (a Sphinx-style filler keeps the size
//!   fixed), for relays ([`cell::HopState`]) and for the client
//!   ([`cell::ClientCircuit`]).
//! - [`message`]: the relay messages inside a recognised cell.
//!
//! Every format starts with a version, and every size here is fixed.

#![deny(missing_docs)]

pub mod cell;
pub mod cert;
pub mod handshake;
mod keys;
pub mod message;

pub use cell::{BODY, CELL, ClientCircuit, HopState};
pub use cert::{RelayCert, RelaySecret};
pub use keys::HopKeys;
