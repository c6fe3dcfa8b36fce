//! Public names: `safe://www.mysite` points at data by a name anyone can
//! read and only its owners change.
//!
//! A name is a mutable record (tag [`NAME_TAG`]) at an address made from
//! the normalised name ([`name_address`]), so the first registration wins
//! and ownership, transfer and sharing follow the mutable-data rules. Its
//! entries are the name's versions: slot `v{N mod MAX_NAME_VERSIONS}` holds
//! [`NameVersion`] N, a whole map of services (`www`, `blog`, …) to
//! targets, so every change is one owner operation and the last
//! [`MAX_NAME_VERSIONS`] versions stay resolvable (`?v=N`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::address::{Address, SCHEME};
use crate::codec::{self, CodecError};
use crate::mutable::{Record, record_address};
use crate::xorname::XorName;

/// Type tag of name records.
pub const NAME_TAG: u64 = 0x5afe_4e41_4d45_0001;
/// Type tag of publication records: records a name can follow, whose
/// [`FOLLOW_ENTRY`] says where a published path is now.
pub const PUBLICATION_TAG: u64 = 0x5afe_4e41_4d45_0002;
/// The entry of a record that a name's service follows: the `safe://`
/// address of a directory or file. A service pointing at a record with
/// this entry resolves to where the entry points now (one step, never a
/// chain); a service pointing at a `d…` or `f…` is pinned.
pub const FOLLOW_ENTRY: &[u8] = b"target";
/// The service a URL without one means.
pub const DEFAULT_SERVICE: &str = "www";
/// Longest name or service (a DNS label's limit).
pub const MAX_LABEL: usize = 63;
/// Versions of a name kept (older ones drop out, oldest first).
pub const MAX_NAME_VERSIONS: u64 = 256;
/// Most services one name maps.
pub const MAX_SERVICES: usize = 64;
/// Format of an encoded [`NameVersion`].
pub const NAME_FORMAT: u8 = 1;
/// Largest encoded [`NameVersion`].
pub const MAX_NAME_VERSION_BYTES: usize = 16 * 1024;

/// Why a name or service is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Breaks the label rule.
    #[error(
        "{0:?} is not a valid name: use 1 to 63 lowercase letters a-z, digits and '-', not starting or ending with '-'"
    )]
    Invalid(String),
    /// Reads as an address, which a URL would take it for.
    #[error("{0:?} reads as an address, so it cannot be a name")]
    LooksLikeAddress(String),
}

/// The normalised label (ASCII letters lowercased), if it is a valid name
/// or service: 1 to 63 of `a-z`, `0-9` and `-`, not starting or ending
/// with `-` (so every name is also a DNS label), and not something that
/// reads as an address.
pub fn check_label(text: &str) -> Result<String, NameError> {
    let label = text.to_ascii_lowercase();
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(NameError::Invalid(text.to_string()));
    }
    if looks_like_address(&label) {
        return Err(NameError::LooksLikeAddress(text.to_string()));
    }
    Ok(label)
}

/// Whether `label` has an address's shape (its length, and a kind's first
/// letter): such a label is read as an address, even a mistyped one, and
/// is never a name.
pub fn looks_like_address(label: &str) -> bool {
    label.len() == crate::address::ENCODED_LEN
        && matches!(label.as_bytes().first(), Some(b'f' | b'c' | b'm' | b'd'))
        || format!("{SCHEME}{label}").parse::<Address>().is_ok()
}

/// The address of the record of `name` (normalised).
pub fn name_address(name: &str) -> XorName {
    record_address(name.as_bytes(), NAME_TAG)
}

/// One version of a name: every service and its target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameVersion {
    /// 1, 2, … (the name record's versions count owner operations; these
    /// count the name's own).
    pub number: u64,
    /// When it was set, seconds since the Unix epoch (the setter's clock).
    pub time: i64,
    /// Service → target.
    pub services: BTreeMap<String, Address>,
}

/// Where a record that a name follows points now: its [`FOLLOW_ENTRY`],
/// if that is the address of a directory or file.
pub fn follows(record: &Record) -> Option<Address> {
    let text = std::str::from_utf8(record.state.entries.get(FOLLOW_ENTRY)?).ok()?;
    let address: Address = text.parse().ok()?;
    matches!(
        address.kind,
        crate::address::DataKind::Directory | crate::address::DataKind::File
    )
    .then_some(address)
}

impl NameVersion {
    /// The entry key of version `number`.
    pub fn slot(number: u64) -> Vec<u8> {
        format!("v{:03}", number % MAX_NAME_VERSIONS).into_bytes()
    }

    /// Its encoding (an entry value).
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(NAME_FORMAT, self)
    }

    /// Decodes and checks an entry value: valid service names, at most
    /// [`MAX_SERVICES`].
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let v: Self = codec::decode(NAME_FORMAT, bytes, MAX_NAME_VERSION_BYTES).ok()?;
        let valid = v.services.len() <= MAX_SERVICES
            && v.services
                .keys()
                .all(|s| check_label(s).as_deref() == Ok(s));
        valid.then_some(v)
    }

    /// Every version a name record holds that decodes, oldest first (an
    /// entry in its slot under another number is ignored).
    pub fn all_of(record: &Record) -> Vec<NameVersion> {
        let mut out: Vec<NameVersion> = record
            .state
            .entries
            .iter()
            .filter_map(|(k, v)| Self::decode(v).filter(|n| Self::slot(n.number) == *k))
            .collect();
        out.sort_by_key(|v| v.number);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::DataKind;

    #[test]
    fn labels_follow_the_dns_rule() {
        assert_eq!(check_label("MySite-2").unwrap(), "mysite-2");
        for bad in ["", "-a", "a-", "a_b", "a.b", "é", &"x".repeat(64)] {
            assert!(check_label(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_label(&"x".repeat(63)).unwrap().len(), 63);
        let addr = Address::new(DataKind::Directory, XorName([3; 32])).to_string();
        let label = addr.trim_start_matches(SCHEME);
        assert!(matches!(
            check_label(label),
            Err(NameError::LooksLikeAddress(_))
        ));
        assert_ne!(name_address("a"), name_address("b"));
    }

    #[test]
    fn versions_round_trip_and_bad_ones_are_refused() {
        let mut v = NameVersion {
            number: 300,
            time: 1,
            services: BTreeMap::new(),
        };
        v.services.insert(
            "www".into(),
            Address::new(DataKind::Directory, XorName([1; 32])),
        );
        assert_eq!(NameVersion::decode(&v.encode().unwrap()).unwrap(), v);
        assert_eq!(NameVersion::slot(300), b"v044");
        v.services.insert(
            "Bad_Service".into(),
            Address::new(DataKind::File, XorName([2; 32])),
        );
        assert!(NameVersion::decode(&v.encode().unwrap()).is_none());
    }
}
