//! User-facing addresses: `safe://<53 lowercase base32 characters>`.
//!
//! The text after `safe://` is the base32 (RFC 4648 alphabet, lowercase, no
//! padding) of 33 bytes: one *kind* byte saying what the address points to,
//! then the 32-byte [`XorName`]. It fits in one DNS label (at most 63
//! characters), so a browser gateway can later give every site its own origin.
//!
//! The kind byte is chosen so that its top five bits spell a letter: every
//! file address starts `safe://f`, every raw chunk `safe://c`, and every
//! mutable record `safe://m` — a reader can tell them apart at a glance. The
//! low three bits are the address format version (0 today).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::xorname::{XOR_NAME_LEN, XorName};

/// The scheme every address starts with.
pub const SCHEME: &str = "safe://";

/// Number of base32 characters after the scheme.
pub const ENCODED_LEN: usize = 53;

/// What an [`Address`] points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DataKind {
    /// A file: the name is that of the chunk holding the file's root data map.
    File,
    /// A single immutable chunk, returned as stored.
    Chunk,
    /// A mutable record (reserved for the mutable-data layer).
    Mutable,
}

impl DataKind {
    fn to_byte(self) -> u8 {
        // Top five bits: base32 index of the letter; low three bits: version 0.
        match self {
            DataKind::File => 5 << 3,     // 'f'
            DataKind::Chunk => 2 << 3,    // 'c'
            DataKind::Mutable => 12 << 3, // 'm'
        }
    }

    fn from_byte(b: u8) -> Result<Self, AddressError> {
        if b & 0b111 != 0 {
            return Err(AddressError::UnsupportedVersion(b & 0b111));
        }
        match b >> 3 {
            5 => Ok(DataKind::File),
            2 => Ok(DataKind::Chunk),
            12 => Ok(DataKind::Mutable),
            _ => Err(AddressError::UnknownKind),
        }
    }

    /// A word for messages: "file", "chunk", "mutable record".
    pub fn describe(self) -> &'static str {
        match self {
            DataKind::File => "file",
            DataKind::Chunk => "chunk",
            DataKind::Mutable => "mutable record",
        }
    }
}

/// A typed network address: what it is and where it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    /// What the address points to.
    pub kind: DataKind,
    /// Where it lives in the XOR space.
    pub name: XorName,
}

/// Why a string is not a valid `safe://` address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// It does not start with `safe://`.
    #[error("address must start with safe://")]
    MissingScheme,
    /// Wrong number of characters after the scheme.
    #[error("address must have {ENCODED_LEN} characters after safe://, found {0}")]
    BadLength(usize),
    /// A character outside the base32 alphabet (a-z, 2-7), or non-canonical
    /// trailing bits.
    #[error("address contains characters outside base32 (a-z, 2-7)")]
    BadCharacters,
    /// The kind byte names no known kind.
    #[error("address is of an unknown kind (its first character should be f, c or m)")]
    UnknownKind,
    /// The address format version is newer than this program understands.
    #[error("address uses format version {0}, which this version of safe does not understand")]
    UnsupportedVersion(u8),
}

impl Address {
    /// An address of `kind` at `name`.
    pub fn new(kind: DataKind, name: XorName) -> Self {
        Self { kind, name }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; 1 + XOR_NAME_LEN];
        raw[0] = self.kind.to_byte();
        raw[1..].copy_from_slice(&self.name.0);
        let mut text = data_encoding::BASE32_NOPAD.encode(&raw);
        text.make_ascii_lowercase();
        write!(f, "{SCHEME}{text}")
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let rest = s
            .get(..SCHEME.len())
            .filter(|p| p.eq_ignore_ascii_case(SCHEME))
            .map(|_| &s[SCHEME.len()..])
            .ok_or(AddressError::MissingScheme)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.chars().count() != ENCODED_LEN {
            return Err(AddressError::BadLength(rest.chars().count()));
        }
        let upper = rest.to_ascii_uppercase();
        let raw = data_encoding::BASE32_NOPAD
            .decode(upper.as_bytes())
            .map_err(|_| AddressError::BadCharacters)?;
        let kind = DataKind::from_byte(raw[0])?;
        let mut name = [0u8; XOR_NAME_LEN];
        name.copy_from_slice(&raw[1..]);
        Ok(Address::new(kind, XorName(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_kind() -> impl Strategy<Value = DataKind> {
        prop_oneof![
            Just(DataKind::File),
            Just(DataKind::Chunk),
            Just(DataKind::Mutable)
        ]
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(kind in any_kind(), name: [u8; 32]) {
            let a = Address::new(kind, XorName(name));
            let text = a.to_string();
            prop_assert_eq!(text.len(), SCHEME.len() + ENCODED_LEN);
            prop_assert!(text.len() - SCHEME.len() <= 63, "must fit one DNS label");
            prop_assert_eq!(&text, &text.to_ascii_lowercase());
            prop_assert_eq!(text.parse::<Address>().unwrap(), a);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,80}") {
            let _ = s.parse::<Address>();
            let _ = format!("safe://{s}").parse::<Address>();
        }
    }

    #[test]
    fn kinds_have_readable_first_letters() {
        let n = XorName([0xab; 32]);
        assert!(
            Address::new(DataKind::File, n)
                .to_string()
                .starts_with("safe://f")
        );
        assert!(
            Address::new(DataKind::Chunk, n)
                .to_string()
                .starts_with("safe://c")
        );
        assert!(
            Address::new(DataKind::Mutable, n)
                .to_string()
                .starts_with("safe://m")
        );
    }

    #[test]
    fn bad_inputs_give_specific_errors() {
        let good = Address::new(DataKind::File, XorName([7; 32])).to_string();
        assert_eq!(
            "http://x".parse::<Address>(),
            Err(AddressError::MissingScheme)
        );
        assert_eq!(
            good[..good.len() - 1].parse::<Address>(),
            Err(AddressError::BadLength(52))
        );
        let mut bad = good.clone();
        bad.replace_range(10..11, "1");
        assert_eq!(bad.parse::<Address>(), Err(AddressError::BadCharacters));
        // 'z' is index 25: a kind nobody defined.
        let mut unknown = good.clone();
        unknown.replace_range(7..8, "z");
        assert_eq!(unknown.parse::<Address>(), Err(AddressError::UnknownKind));
        // Upper case and a trailing slash are accepted.
        assert_eq!(
            good.to_uppercase()
                .replace("SAFE://", "safe://")
                .parse::<Address>()
                .unwrap(),
            good.parse::<Address>().unwrap()
        );
        assert!(format!("{good}/").parse::<Address>().is_ok());
    }

    #[test]
    fn non_canonical_trailing_bits_are_rejected() {
        let good = Address::new(DataKind::Chunk, XorName([0; 32])).to_string();
        // The last character carries one data bit and four zero bits.
        let mut bad = good.clone();
        bad.replace_range(good.len() - 1.., "b");
        assert_eq!(bad.parse::<Address>(), Err(AddressError::BadCharacters));
    }
}
