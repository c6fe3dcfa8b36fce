//! `safe://` URLs: an address and, inside a directory snapshot, a path.
//!
//! `safe://<address>[/name/name…]`: the address as [`Address`] parses it,
//! then path components, each a valid entry name
//! ([`crate::manifest::check_name`]); empty components (`a//b`, a trailing
//! `/`) are ignored. Public names (`safe://www.name/…`) come with the
//! naming layer and will extend this one parser.

use std::fmt;
use std::str::FromStr;

use crate::address::{Address, AddressError, ENCODED_LEN, SCHEME, strip_scheme};
use crate::manifest::{ManifestError, check_name};

/// Most path components in a URL.
pub const MAX_PATH_DEPTH: usize = 256;

/// A parsed `safe://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeUrl {
    /// What the URL starts from.
    pub address: Address,
    /// Path components below it (empty: the address itself).
    pub path: Vec<String>,
}

/// Why a text is not a `safe://` URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The address part is not valid.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// A path component is not a valid name.
    #[error("invalid path: {0}")]
    Path(#[from] ManifestError),
    /// Too many path components.
    #[error("path has more than {MAX_PATH_DEPTH} components")]
    TooDeep,
}

impl FromStr for SafeUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let after = strip_scheme(text)?;
        let (address, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i + 1..]),
            None => (after, ""),
        };
        // Too short or long is the address's error to name.
        if address.chars().count() != ENCODED_LEN {
            return Err(AddressError::BadLength(address.chars().count()).into());
        }
        let address: Address = format!("{SCHEME}{address}").parse()?;
        let path: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(|c| check_name(c).map(|()| c.to_string()))
            .collect::<Result<_, _>>()?;
        if path.len() > MAX_PATH_DEPTH {
            return Err(UrlError::TooDeep);
        }
        Ok(Self { address, path })
    }
}

impl fmt::Display for SafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        for c in &self.path {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::DataKind;
    use crate::xorname::XorName;
    use proptest::prelude::*;

    #[test]
    fn paths_are_split_and_checked() {
        let a = Address::new(DataKind::Directory, XorName([7; 32]));
        let url: SafeUrl = format!("{a}/docs//index.html/").parse().unwrap();
        assert_eq!(url.address, a);
        assert_eq!(url.path, ["docs", "index.html"]);
        assert_eq!(url.to_string(), format!("{a}/docs/index.html"));
        assert!(format!("{a}/../etc").parse::<SafeUrl>().is_err());
        assert!(format!("{a}/a/./b").parse::<SafeUrl>().is_err());
        assert!("safe://short/x".parse::<SafeUrl>().is_err());
        assert!("http://x".parse::<SafeUrl>().is_err());
        let plain: SafeUrl = a.to_string().parse().unwrap();
        assert!(plain.path.is_empty());
    }

    proptest! {
        #[test]
        fn urls_round_trip(name in any::<[u8; 32]>(), path in proptest::collection::vec("[a-zA-Z0-9._-]{1,12}", 0..6)) {
            let path: Vec<String> = path.into_iter().filter(|c| check_name(c).is_ok()).collect();
            let url = SafeUrl { address: Address::new(DataKind::Directory, XorName(name)), path };
            prop_assert_eq!(url.to_string().parse::<SafeUrl>().unwrap(), url);
        }
    }
}
