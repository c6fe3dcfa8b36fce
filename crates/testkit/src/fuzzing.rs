//! The bodies of the fuzz targets (`fuzz/`, `cargo fuzz`), shared with
//! the test that replays their corpora on every CI run
//! (`tests/fuzz_corpora.rs`): everything the network or a disk hands to
//! a node or a client as bytes, decoded and checked as the real code
//! does. Each must return (an error is fine) and never panic, loop or
//! allocate without bound, whatever the input.

use std::str::FromStr;

use bytes::Bytes;
use safe_protocol::SafeUrl;
use safe_protocol::manifest::Manifest;
use safe_protocol::mutable::{Record, Write, apply_write, record_address};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, for the replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_request", wire_request),
    ("wire_response", wire_response),
    ("record", record),
    ("manifest", manifest),
    ("root", root),
    ("url", url),
];

/// A data-protocol request frame body, as a node decodes it.
pub fn wire_request(data: &[u8]) {
    let _ = safe_network::codec::decode_request(&Bytes::copy_from_slice(data));
}

/// A data-protocol response frame body, as a client decodes it.
pub fn wire_response(data: &[u8]) {
    let _ = safe_network::codec::decode_response(&Bytes::copy_from_slice(data));
}

/// A record as served by a node (decoded, then verified against its own
/// address), and a write as put to one (decoded, then applied).
pub fn record(data: &[u8]) {
    if let Ok(r) = Record::decode(data) {
        let address = record_address(&r.genesis.body.name, r.genesis.body.tag);
        let _ = r.verify(&address);
    }
    if let Ok(w) = Write::decode(data) {
        let _ = apply_write(None, &w);
    }
}

/// A directory manifest, as read from a snapshot.
pub fn manifest(data: &[u8]) {
    let _ = Manifest::decode(data);
}

/// A file's root chunk and its data-map levels, as a client opens them.
pub fn root(data: &[u8]) {
    if let Ok(root) = safe_selfenc::open_root(data, None) {
        let _ = root.descend(data);
    }
}

/// A `safe://` URL, as every front end parses one.
pub fn url(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SafeUrl::from_str(text);
    }
}
