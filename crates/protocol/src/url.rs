//! `safe://` URLs: an address or a public name, a path inside it, and a
//! version.
//!
//! `safe://<host>[/name/name…][?v=N]`, where the host is
//! - an address, as [`Address`] parses it (tried first, as the original
//!   SAFE resolver did), or
//! - `[service.]name`: a public name ([`crate::name::check_label`]) and a
//!   service, `www` when none is given.
//!
//! Path components are valid entry names ([`crate::manifest::check_name`]);
//! empty components (`a//b`, a trailing `/`) are ignored. `?v=N` asks for
//! version N of a name (the only query there is).

use std::fmt;
use std::str::FromStr;

use crate::address::{Address, AddressError, SCHEME, strip_scheme};
use crate::manifest::{ManifestError, check_name};
use crate::name::{DEFAULT_SERVICE, NameError, check_label};

/// Most path components in a URL.
pub const MAX_PATH_DEPTH: usize = 256;

/// What a URL starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A raw address.
    Address(Address),
    /// A service of a public name.
    Name {
        /// The service (`www` unless given).
        service: String,
        /// The name.
        name: String,
    },
}

/// A parsed `safe://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeUrl {
    /// What the URL starts from.
    pub host: Host,
    /// Path components below it (empty: the host itself).
    pub path: Vec<String>,
    /// The version of the name asked for (`None`: the latest).
    pub version: Option<u64>,
}

impl SafeUrl {
    /// The URL of `address` itself.
    pub fn of(address: Address) -> Self {
        SafeUrl {
            host: Host::Address(address),
            path: Vec::new(),
            version: None,
        }
    }
}

/// Why a text is not a `safe://` URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The address part is not valid.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// Neither an address nor a valid `[service.]name`.
    #[error("{0:?} is neither an address nor a name: {1}")]
    Host(String, NameError),
    /// A path component is not a valid name.
    #[error("invalid path: {0}")]
    Path(#[from] ManifestError),
    /// Too many path components.
    #[error("path has more than {MAX_PATH_DEPTH} components")]
    TooDeep,
    /// A query other than `?v=N`.
    #[error("invalid query {0:?}: the only one is ?v=N (a version number)")]
    Query(String),
    /// A version given with a raw address (which has none).
    #[error("?v=N is for names; an address names one version already")]
    VersionOfAddress,
}

impl FromStr for SafeUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let after = strip_scheme(text)?;
        let (rest, query) = match after.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (after, None),
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let host = match format!("{SCHEME}{host}").parse::<Address>() {
            Ok(a) => Host::Address(a),
            // An address's shape, mistyped: the address's error.
            Err(address_error) if crate::name::looks_like_address(host) => {
                return Err(address_error.into());
            }
            Err(address_error) => {
                let (service, name) = match host.split_once('.') {
                    Some((s, n)) => (s, n),
                    None => (DEFAULT_SERVICE, host),
                };
                match (check_label(service), check_label(name)) {
                    (Ok(service), Ok(name)) => Host::Name { service, name },
                    // Of an address's length: the address's error says more.
                    _ if host.len() == crate::address::ENCODED_LEN && !host.contains('.') => {
                        return Err(address_error.into());
                    }
                    (Err(e), _) | (_, Err(e)) => return Err(UrlError::Host(host.to_string(), e)),
                }
            }
        };
        let path: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(|c| check_name(c).map(|()| c.to_string()))
            .collect::<Result<_, _>>()?;
        if path.len() > MAX_PATH_DEPTH {
            return Err(UrlError::TooDeep);
        }
        let version = match query {
            None => None,
            Some(q) => match q.strip_prefix("v=").and_then(|n| n.parse::<u64>().ok()) {
                Some(n) => Some(n),
                None => return Err(UrlError::Query(q.to_string())),
            },
        };
        if version.is_some() && matches!(host, Host::Address(_)) {
            return Err(UrlError::VersionOfAddress);
        }
        Ok(Self {
            host,
            path,
            version,
        })
    }
}

impl fmt::Display for SafeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Address(a) => write!(f, "{a}")?,
            Host::Name { service, name } => write!(f, "{SCHEME}{service}.{name}")?,
        }
        for c in &self.path {
            write!(f, "/{c}")?;
        }
        if let Some(v) = self.version {
            write!(f, "?v={v}")?;
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
        assert_eq!(url.host, Host::Address(a));
        assert_eq!(url.path, ["docs", "index.html"]);
        assert_eq!(url.to_string(), format!("{a}/docs/index.html"));
        assert!(format!("{a}/../etc").parse::<SafeUrl>().is_err());
        assert!(format!("{a}/a/./b").parse::<SafeUrl>().is_err());
        assert!("safe://Sh_rt/x".parse::<SafeUrl>().is_err());
        assert!("http://x".parse::<SafeUrl>().is_err());
        assert!(format!("{a}?v=2").parse::<SafeUrl>().is_err());
        let plain: SafeUrl = a.to_string().parse().unwrap();
        assert!(plain.path.is_empty());
    }

    #[test]
    fn names_services_and_versions() {
        let url: SafeUrl = "safe://mysite/a/b.html?v=3".parse().unwrap();
        assert_eq!(
            url.host,
            Host::Name {
                service: "www".into(),
                name: "mysite".into()
            }
        );
        assert_eq!(url.path, ["a", "b.html"]);
        assert_eq!(url.version, Some(3));
        assert_eq!(url.to_string(), "safe://www.mysite/a/b.html?v=3");
        let blog: SafeUrl = "safe://Blog.My-Site".parse().unwrap();
        assert_eq!(
            blog.host,
            Host::Name {
                service: "blog".into(),
                name: "my-site".into()
            }
        );
        for bad in [
            "safe://a.b.c",
            "safe://-x",
            "safe://x-",
            "safe://under_score",
            "safe://www.",
            "safe://site?v=x",
            "safe://site?q=1",
        ] {
            assert!(bad.parse::<SafeUrl>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn urls_round_trip(name in any::<[u8; 32]>(), path in proptest::collection::vec("[a-zA-Z0-9._-]{1,12}", 0..6)) {
            let path: Vec<String> = path.into_iter().filter(|c| check_name(c).is_ok()).collect();
            let url = SafeUrl { host: Host::Address(Address::new(DataKind::Directory, XorName(name))), path, version: None };
            prop_assert_eq!(url.to_string().parse::<SafeUrl>().unwrap(), url);
        }

        #[test]
        fn name_urls_round_trip(service in "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", name in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", version in proptest::option::of(any::<u64>())) {
            let url = SafeUrl { host: Host::Name { service, name }, path: vec!["x".into()], version };
            prop_assert_eq!(url.to_string().parse::<SafeUrl>().unwrap(), url);
        }

        #[test]
        fn parsing_anything_never_panics(text in "safe://[ -~]{0,80}") {
            let _ = text.parse::<SafeUrl>();
        }
    }
}
