//! `XorName`: a 256-bit name in the network's address space.
//!
//! Data and nodes share one space. The distance between two names is their
//! bitwise XOR read as a big-endian number, so "closest to X" is a total order
//! for any fixed X (no two different names are at the same distance from X).

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Length of a name in bytes.
pub const XOR_NAME_LEN: usize = 32;

/// A 256-bit name: the address of a chunk (the BLAKE3 hash of its bytes), of a
/// record, or of a node (derived from its public key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct XorName(pub [u8; XOR_NAME_LEN]);

impl XorName {
    /// The name of some content: its BLAKE3 hash.
    pub fn from_content(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; XOR_NAME_LEN] {
        &self.0
    }

    /// XOR distance to `other`, as a big-endian 256-bit number.
    pub fn distance(&self, other: &XorName) -> XorName {
        let mut d = [0u8; XOR_NAME_LEN];
        for (i, out) in d.iter_mut().enumerate() {
            *out = self.0[i] ^ other.0[i];
        }
        XorName(d)
    }

    /// Orders `a` and `b` by their distance to `self` (closer first).
    pub fn cmp_distance(&self, a: &XorName, b: &XorName) -> Ordering {
        for i in 0..XOR_NAME_LEN {
            let da = a.0[i] ^ self.0[i];
            let db = b.0[i] ^ self.0[i];
            match da.cmp(&db) {
                Ordering::Equal => continue,
                other => return other,
            }
        }
        Ordering::Equal
    }

    /// Sorts `names` by closeness to `self`, closest first.
    pub fn sort_by_closeness(&self, names: &mut [XorName]) {
        names.sort_unstable_by(|a, b| self.cmp_distance(a, b));
    }

    /// Lowercase hex of all 32 bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits; anything else is `None`.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut name = [0u8; XOR_NAME_LEN];
        hex::decode_to_slice(text, &mut name).ok()?;
        Some(Self(name))
    }
}

impl fmt::Debug for XorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight hex digits identify a name in logs without drowning them.
        write!(f, "{}..", &hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for XorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(b: [u8; 32]) -> XorName {
        XorName(b)
    }

    #[test]
    fn content_name_is_blake3() {
        assert_eq!(
            XorName::from_content(b"abc").0,
            *blake3::hash(b"abc").as_bytes()
        );
    }

    proptest! {
        #[test]
        fn distance_is_symmetric_and_zero_only_to_self(a: [u8; 32], b: [u8; 32]) {
            let (a, b) = (name(a), name(b));
            prop_assert_eq!(a.distance(&b), b.distance(&a));
            prop_assert_eq!(a.distance(&b) == XorName([0; 32]), a == b);
        }

        #[test]
        fn cmp_distance_matches_distance_order(t: [u8; 32], a: [u8; 32], b: [u8; 32]) {
            let (t, a, b) = (name(t), name(a), name(b));
            prop_assert_eq!(t.cmp_distance(&a, &b), t.distance(&a).cmp(&t.distance(&b)));
        }

        #[test]
        fn sorting_puts_target_first(t: [u8; 32], mut others: Vec<[u8; 32]>) {
            let t = name(t);
            others.push(t.0);
            let mut names: Vec<XorName> = others.into_iter().map(name).collect();
            t.sort_by_closeness(&mut names);
            prop_assert_eq!(names[0], t);
            for w in names.windows(2) {
                prop_assert!(t.distance(&w[0]) <= t.distance(&w[1]));
            }
        }
    }
}
