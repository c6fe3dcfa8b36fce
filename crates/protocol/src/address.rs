//! User-facing addresses: `safe://<53 lowercase base32 characters>`.
//!
//! The text after `safe://` is the base32 (RFC 4648 alphabet, lowercase, no
//! padding) of 33 bytes: one *kind* byte saying what the address points to,
//! then the 32-byte [`XorName`]. It fits in one DNS label (at most 63
//! characters), so a browser gateway can later give every site its own origin.
//!
//! The kind byte is chosen so that its top five bits spell a letter: every
//! file address starts `safe://f`, every raw chunk `safe://c`, every
//! mutable record `safe://m` and every directory snapshot `safe://d` — a
//! reader can tell them apart at a glance. The
//! low three bits are the address format version (0 today).
//!
//! 33 bytes are 264 bits, and 53 characters hold 265: the last character
//! carries the last four bits and one zero bit, so only the 16 characters
//! with that bit clear ([`LAST_CHARACTERS`]) can end an address. About half
//! the mistypes of the last character are caught that way, and the error
//! says so rather than blaming the alphabet.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::xorname::{XOR_NAME_LEN, XorName};

/// The scheme every address starts with.
pub const SCHEME: &str = "safe://";

/// Number of base32 characters after the scheme.
pub const ENCODED_LEN: usize = 53;

/// The base32 alphabet, lowercase, in index order.
const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz234567";

/// The characters an address can end with: every second character of the
/// base32 alphabet, those whose unused lowest bit is zero.
pub const LAST_CHARACTERS: &str = "acegikmoqsuwy246";

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
    /// A directory snapshot: the name is that of the root chunk of the
    /// self-encrypted [`crate::manifest::Manifest`] of its top directory.
    Directory,
}

impl DataKind {
    fn to_byte(self) -> u8 {
        // Top five bits: base32 index of the letter; low three bits: version 0.
        match self {
            DataKind::File => 5 << 3,      // 'f'
            DataKind::Chunk => 2 << 3,     // 'c'
            DataKind::Mutable => 12 << 3,  // 'm'
            DataKind::Directory => 3 << 3, // 'd'
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
            3 => Ok(DataKind::Directory),
            _ => Err(AddressError::UnknownKind),
        }
    }

    /// A word for messages: "file", "chunk", "mutable record", "directory".
    pub fn describe(self) -> &'static str {
        match self {
            DataKind::File => "file",
            DataKind::Chunk => "chunk",
            DataKind::Mutable => "mutable record",
            DataKind::Directory => "directory",
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
    /// A character outside the base32 alphabet (a-z, 2-7).
    #[error(
        "address contains {character:?} at position {position} after safe://, \
         but addresses use only a-z and 2-7"
    )]
    BadCharacter {
        /// The first offending character.
        character: char,
        /// Its position after `safe://`, counting from 1.
        position: usize,
    },
    /// A last character that is in the alphabet but cannot end an address:
    /// it would set the bit past the end of the data. Usually a typo.
    #[error(
        "the last character of an address must be one of {}, not {character:?} \
         (it carries only 4 bits); the address is probably mistyped",
        spaced(LAST_CHARACTERS)
    )]
    BadLastCharacter {
        /// The character found.
        character: char,
    },
    /// The kind byte names no known kind.
    #[error("address is of an unknown kind (its first character should be f, c, m or d)")]
    UnknownKind,
    /// The address format version is newer than this program understands.
    #[error("address uses format version {0}, which this version of safe does not understand")]
    UnsupportedVersion(u8),
}

/// `"abc"` as `"a, b or c"`, for messages.
fn spaced(chars: &str) -> String {
    let list: Vec<String> = chars.chars().map(String::from).collect();
    match list.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => list.concat(),
    }
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

/// What follows `safe://` (in any case) in `text`, trimmed of white space.
pub(crate) fn strip_scheme(text: &str) -> Result<&str, AddressError> {
    let text = text.trim();
    text.get(..SCHEME.len())
        .filter(|p| p.eq_ignore_ascii_case(SCHEME))
        .map(|_| &text[SCHEME.len()..])
        .ok_or(AddressError::MissingScheme)
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = strip_scheme(s)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.chars().count() != ENCODED_LEN {
            return Err(AddressError::BadLength(rest.chars().count()));
        }
        for (i, c) in rest.chars().enumerate() {
            let lower = c.to_ascii_lowercase();
            if !ALPHABET.contains(lower) {
                return Err(AddressError::BadCharacter {
                    character: c,
                    position: i + 1,
                });
            }
            if i + 1 == ENCODED_LEN && !LAST_CHARACTERS.contains(lower) {
                return Err(AddressError::BadLastCharacter { character: c });
            }
        }
        // Only ASCII is left, so byte positions are character positions; the
        // checks above leave the decoder nothing to refuse.
        let upper = rest.to_ascii_uppercase();
        let raw = data_encoding::BASE32_NOPAD
            .decode(upper.as_bytes())
            .map_err(|e| AddressError::BadCharacter {
                character: rest
                    .as_bytes()
                    .get(e.position)
                    .map_or('?', |b| char::from(*b)),
                position: e.position + 1,
            })?;
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

        /// A one-character typo anywhere is refused with an error naming
        /// what is wrong, or gives another address; only a change of case
        /// (which parsing ignores) gives the same one.
        #[test]
        fn one_character_typo_is_caught_or_changes_the_address(
            kind in any_kind(),
            name: [u8; 32],
            // Anywhere, and the last character (its own rule) more often.
            at in prop_oneof![
                0usize..SCHEME.len() + ENCODED_LEN,
                Just(SCHEME.len() + ENCODED_LEN - 1),
            ],
            typed in prop_oneof![
                proptest::sample::select(
                    "abcdefghijklmnopqrstuvwxyz234567ABCDEFGHIJKLMNOPQRSTUVWXYZ01890/: \u{e9}"
                        .chars()
                        .collect::<Vec<_>>()
                ),
                any::<char>(),
            ],
        ) {
            let good = Address::new(kind, XorName(name));
            let text = good.to_string();
            let mut chars: Vec<char> = text.chars().collect();
            let was = chars[at];
            prop_assume!(typed != was);
            chars[at] = typed;
            let typo: String = chars.into_iter().collect();
            let parsed = typo.parse::<Address>();
            let lower = typed.to_ascii_lowercase();
            let last = at == text.len() - 1;
            if typed.eq_ignore_ascii_case(&was) {
                prop_assert_eq!(parsed, Ok(good));
            } else if at < SCHEME.len() {
                prop_assert_eq!(parsed, Err(AddressError::MissingScheme));
            } else if last && (typed == '/' || typed.is_whitespace()) {
                // Taken for a trailing slash or space, so one short.
                prop_assert_eq!(parsed, Err(AddressError::BadLength(ENCODED_LEN - 1)));
            } else if !ALPHABET.contains(lower) {
                let position = at - SCHEME.len() + 1;
                let err = AddressError::BadCharacter { character: typed, position };
                prop_assert_eq!(parsed, Err(err.clone()));
                let message = err.to_string();
                let names_it = format!("{typed:?} at position {position}");
                prop_assert!(message.contains(&names_it), "{}", message);
            } else if last && !LAST_CHARACTERS.contains(lower) {
                let err = AddressError::BadLastCharacter { character: typed };
                prop_assert_eq!(parsed, Err(err.clone()));
                let message = err.to_string();
                let lists_them = "a, c, e, g, i, k, m, o, q, s, u, w, y, 2, 4 or 6";
                prop_assert!(message.contains(lists_them), "{}", message);
            } else {
                match parsed {
                    Ok(other) => prop_assert_ne!(other, good),
                    // The first character and the top of the second hold
                    // the kind byte.
                    Err(AddressError::UnknownKind | AddressError::UnsupportedVersion(_)) => {
                        prop_assert!(at < SCHEME.len() + 2, "{typo}");
                    }
                    Err(e) => prop_assert!(false, "{typo}: unexpected {e:?}"),
                }
            }
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
        assert_eq!(
            bad.parse::<Address>(),
            Err(AddressError::BadCharacter {
                character: '1',
                position: 4
            })
        );
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
        // The last character carries four data bits and one zero bit.
        let mut bad = good.clone();
        bad.replace_range(good.len() - 1.., "b");
        assert_eq!(
            bad.parse::<Address>(),
            Err(AddressError::BadLastCharacter { character: 'b' })
        );
    }

    #[test]
    fn last_characters_follow_the_bit_layout() {
        // Bits the last character holds beyond the data: they must be zero.
        let spare = ENCODED_LEN * 5 - (1 + XOR_NAME_LEN) * 8;
        assert_eq!(spare, 1);
        let expected: String = ALPHABET
            .chars()
            .enumerate()
            .filter(|(i, _)| i % (1 << spare) == 0)
            .map(|(_, c)| c)
            .collect();
        assert_eq!(LAST_CHARACTERS, expected);
        // And the decoder agrees, letter by letter, in both cases.
        let good = Address::new(DataKind::Mutable, XorName([0x5a; 32])).to_string();
        for c in ALPHABET.chars() {
            for c in [c, c.to_ascii_uppercase()] {
                let text = format!("{}{c}", &good[..good.len() - 1]);
                let parsed = text.parse::<Address>();
                if LAST_CHARACTERS.contains(c.to_ascii_lowercase()) {
                    assert!(parsed.is_ok(), "{text}: {parsed:?}");
                } else {
                    assert_eq!(parsed, Err(AddressError::BadLastCharacter { character: c }));
                }
            }
        }
    }

    #[test]
    fn mistyped_last_letter_says_what_is_wrong() {
        let good = Address::new(DataKind::File, XorName([0; 32])).to_string();
        assert!(good.ends_with('a'));
        let bad = format!("{}x", &good[..good.len() - 1]);
        let message = bad.parse::<Address>().unwrap_err().to_string();
        assert_eq!(
            message,
            "the last character of an address must be one of a, c, e, g, i, k, m, o, q, s, u, w, \
             y, 2, 4 or 6, not 'x' (it carries only 4 bits); the address is probably mistyped"
        );
        assert!(!message.contains("outside"), "{message}");
    }

    #[test]
    fn out_of_alphabet_characters_are_named_with_their_position() {
        let good = Address::new(DataKind::File, XorName([9; 32])).to_string();
        let chars: Vec<char> = good.chars().collect();
        for (at, c) in [
            (SCHEME.len(), '0'),
            (SCHEME.len() + 20, '8'),
            (good.len() - 1, '1'),
        ] {
            let mut bad = chars.clone();
            bad[at] = c;
            let bad: String = bad.into_iter().collect();
            let err = bad.parse::<Address>().unwrap_err();
            let position = at - SCHEME.len() + 1;
            assert_eq!(
                err,
                AddressError::BadCharacter {
                    character: c,
                    position
                }
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "address contains '{c}' at position {position} after safe://, but addresses \
                     use only a-z and 2-7"
                )
            );
        }
        // Not ASCII at all: still one character, named as such.
        let bad = format!("{}é", &good[..good.len() - 1]);
        assert_eq!(
            bad.parse::<Address>(),
            Err(AddressError::BadCharacter {
                character: 'é',
                position: ENCODED_LEN
            })
        );
    }
}
