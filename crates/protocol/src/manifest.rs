//! Directory manifests: what a directory snapshot (`safe://d…`) holds.
//!
//! A manifest lists one directory: each entry's name, what it is and its
//! metadata. A subdirectory is named by the address of its own manifest,
//! so a tree of manifests is a Merkle tree: an unchanged subtree keeps its
//! address, and a change to one file changes only the manifests on the
//! path from it to the root. Manifests are stored as self-encrypted files
//! (the client's job), so the nodes see only ciphertext, and identical
//! directories give identical manifests (convergent, de-duplicated).
//!
//! Small files are kept inside their directory's manifest
//! ([`FileData::Inline`]) instead of costing a self-encrypted file (at
//! least four chunks) each.
//!
//! Rules, checked by [`Manifest::decode`] and [`Manifest::new`] alike:
//! entry names are UTF-8, 1 to [`MAX_NAME_BYTES`] bytes, never `.` or `..`,
//! and contain no `/` or NUL; entries are sorted by name and unique; and
//! every count and size is bounded (below). Everything is a plain function
//! of its input: no I/O.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::xorname::XorName;

/// Format version of an encoded [`Manifest`].
pub const MANIFEST_FORMAT: u8 = 1;
/// Largest encoded manifest read.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024 * 1024;
/// Most entries in one directory.
pub const MAX_ENTRIES: usize = 1 << 20;
/// Longest entry name, in bytes (as most file systems allow).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest symlink target, in bytes.
pub const MAX_LINK_BYTES: usize = 4096;
/// Largest file kept inline in its directory's manifest.
pub const MAX_INLINE_BYTES: usize = 64 * 1024;

/// One directory's entries, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    entries: Vec<Entry>,
}

/// A named thing in a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The name (one path component).
    pub name: String,
    /// What it is.
    pub node: Node,
    /// Its metadata.
    pub meta: Meta,
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    /// A regular file.
    File {
        /// Its size in bytes.
        size: u64,
        /// Where its bytes are.
        data: FileData,
    },
    /// A subdirectory.
    Dir {
        /// The root chunk name of its manifest, stored as a file.
        manifest: XorName,
        /// Bytes of all files under it.
        size: u64,
        /// Files under it.
        files: u64,
    },
    /// A symbolic link, kept as a link (its target is never followed).
    Symlink {
        /// The target, as the link holds it.
        target: String,
    },
}

/// Where a file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileData {
    /// In the manifest itself (at most [`MAX_INLINE_BYTES`]).
    Inline(Vec<u8>),
    /// A self-encrypted file: the name of its root chunk.
    Stored(XorName),
}

/// An entry's metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Whether the file is executable (by its owner).
    pub executable: bool,
    /// Last modification, in seconds since the Unix epoch.
    pub modified: Option<i64>,
}

/// Why a manifest or an entry name is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A name that cannot be one path component.
    #[error("invalid name {0:?}: names are 1 to 255 bytes of UTF-8, not . or .., without / or NUL")]
    BadName(String),
    /// Two entries of one name.
    #[error("two entries named {0:?}")]
    Duplicate(String),
    /// Entries out of order (a manifest not made by [`Manifest::new`]).
    #[error("entries are not sorted by name")]
    Unsorted,
    /// A count or size over its limit.
    #[error("over a limit: {0}")]
    TooLarge(&'static str),
    /// Bytes that do not decode.
    #[error("malformed manifest: {0}")]
    Malformed(#[from] CodecError),
}

/// Checks that `name` can be one path component.
pub fn check_name(name: &str) -> Result<(), ManifestError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0']);
    if ok {
        Ok(())
    } else {
        Err(ManifestError::BadName(name.to_string()))
    }
}

impl Entry {
    fn check(&self) -> Result<(), ManifestError> {
        check_name(&self.name)?;
        match &self.node {
            Node::File {
                size,
                data: FileData::Inline(bytes),
            } => {
                if bytes.len() > MAX_INLINE_BYTES {
                    return Err(ManifestError::TooLarge("an inline file"));
                }
                if *size != bytes.len() as u64 {
                    return Err(ManifestError::TooLarge("an inline file's stated size"));
                }
            }
            Node::Symlink { target }
                if target.len() > MAX_LINK_BYTES || target.is_empty() || target.contains('\0') =>
            {
                return Err(ManifestError::TooLarge(
                    "a symlink target (or one with NUL)",
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

impl Manifest {
    /// A manifest of `entries` (sorted here), checking every rule.
    pub fn new(mut entries: Vec<Entry>) -> Result<Self, ManifestError> {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in entries.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(ManifestError::Duplicate(pair[0].name.clone()));
            }
        }
        let manifest = Self { entries };
        manifest.check()?;
        Ok(manifest)
    }

    /// The entries, sorted by name.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Bytes of all files in this directory and below it.
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match &e.node {
                Node::File { size, .. } | Node::Dir { size, .. } => *size,
                Node::Symlink { .. } => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Files in this directory and below it.
    pub fn total_files(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match &e.node {
                Node::File { .. } => 1,
                Node::Dir { files, .. } => *files,
                Node::Symlink { .. } => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    fn check(&self) -> Result<(), ManifestError> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(ManifestError::TooLarge("entries in one directory"));
        }
        for pair in self.entries.windows(2) {
            match pair[0].name.cmp(&pair[1].name) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(ManifestError::Duplicate(pair[0].name.clone()));
                }
                std::cmp::Ordering::Greater => return Err(ManifestError::Unsorted),
            }
        }
        self.entries.iter().try_for_each(Entry::check)
    }

    /// Encodes under [`MANIFEST_FORMAT`].
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        let bytes = codec::encode(MANIFEST_FORMAT, self)?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge("the encoded manifest"));
        }
        Ok(bytes)
    }

    /// Decodes at most [`MAX_MANIFEST_BYTES`] and checks every rule: a
    /// manifest from the network is never trusted to be well formed.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest: Self = codec::decode(MANIFEST_FORMAT, bytes, MAX_MANIFEST_BYTES)?;
        manifest.check()?;
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(name: &str, bytes: &[u8]) -> Entry {
        Entry {
            name: name.into(),
            node: Node::File {
                size: bytes.len() as u64,
                data: FileData::Inline(bytes.to_vec()),
            },
            meta: Meta::default(),
        }
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", ".", "..", "a/b", "a\0b", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "...", ".hidden", "ünïcode", &"x".repeat(255)] {
            check_name(good).unwrap();
        }
        assert!(matches!(
            Manifest::new(vec![file("a", b"1"), file("a", b"2")]),
            Err(ManifestError::Duplicate(_))
        ));
    }

    #[test]
    fn unsorted_or_oversized_bytes_from_the_network_are_refused() {
        let m = Manifest::new(vec![file("b", b"1"), file("a", b"2")]).unwrap();
        assert_eq!(m.entries()[0].name, "a");
        let unsorted = Manifest {
            entries: vec![file("b", b"1"), file("a", b"2")],
        };
        let bytes = codec::encode(MANIFEST_FORMAT, &unsorted).unwrap();
        assert!(matches!(
            Manifest::decode(&bytes),
            Err(ManifestError::Unsorted)
        ));
        let liar = Manifest {
            entries: vec![Entry {
                name: "a".into(),
                node: Node::File {
                    size: 99,
                    data: FileData::Inline(vec![1]),
                },
                meta: Meta::default(),
            }],
        };
        let bytes = codec::encode(MANIFEST_FORMAT, &liar).unwrap();
        assert!(Manifest::decode(&bytes).is_err());
        assert!(Manifest::decode(b"\x01garbage").is_err());
        assert!(Manifest::decode(&[]).is_err());
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let name = "[a-zA-Z0-9._ -]{1,20}".prop_filter("a valid name", |n| check_name(n).is_ok());
        let node = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..100).prop_map(|b| Node::File {
                size: b.len() as u64,
                data: FileData::Inline(b)
            }),
            (any::<[u8; 32]>(), any::<u64>()).prop_map(|(n, size)| Node::File {
                size,
                data: FileData::Stored(XorName(n))
            }),
            (any::<[u8; 32]>(), any::<u64>(), any::<u64>()).prop_map(|(n, size, files)| {
                Node::Dir {
                    manifest: XorName(n),
                    size,
                    files,
                }
            }),
            "[a-z/.]{1,30}".prop_map(|target| Node::Symlink { target }),
        ];
        let meta = (any::<bool>(), proptest::option::of(any::<i64>())).prop_map(
            |(executable, modified)| Meta {
                executable,
                modified,
            },
        );
        (name, node, meta).prop_map(|(name, node, meta)| Entry { name, node, meta })
    }

    proptest! {
        #[test]
        fn manifests_round_trip(entries in proptest::collection::vec(entry(), 0..40)) {
            let mut seen = std::collections::BTreeSet::new();
            let entries: Vec<Entry> = entries.into_iter().filter(|e| seen.insert(e.name.clone())).collect();
            let m = Manifest::new(entries).unwrap();
            let bytes = m.encode().unwrap();
            prop_assert_eq!(Manifest::decode(&bytes).unwrap(), m.clone());
            // The same entries in any order give the same bytes (convergence).
            let mut reversed = m.entries().to_vec();
            reversed.reverse();
            prop_assert_eq!(Manifest::new(reversed).unwrap().encode().unwrap(), bytes);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Manifest::decode(&bytes);
        }
    }
}
