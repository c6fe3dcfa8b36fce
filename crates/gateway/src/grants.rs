//! What each site may do with the logged-in user's account: its daily
//! write quota, anything the user granted beyond it, and what it used.
//!
//! Two files in the data directory, JSON with a format version:
//! - `gateway-grants.json`: the user's grants, written by
//!   `safe gateway grant|revoke` and by the consent page;
//! - `gateway-usage.json`: what each site wrote today, written by the
//!   gateway only (so a grant and a write never overwrite each other).
//!
//! Both are replaced whole through a temporary file and a rename, so a
//! crash leaves the old file or the new one, never half of one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Writes a site may make each day (UTC) with its own key, ungranted.
pub const SITE_WRITES_PER_DAY: u64 = 100;
/// Bytes (keys and values) a site may write each day, ungranted.
pub const SITE_BYTES_PER_DAY: u64 = 1 << 20;
/// Writes a day all sites without a grant may make together: however
/// many sites (services, addresses) a page hops between, this bounds what
/// they write for the user unasked.
pub const UNGRANTED_WRITES_PER_DAY: u64 = 1000;
/// Most writes a single grant may add per day.
pub const MAX_GRANT_WRITES: u64 = 1_000_000;
/// Most sites a grants or usage file keeps.
pub const MAX_SITES: usize = 4096;
/// Format version of both files.
const FORMAT: u32 = 1;

/// Why grants could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a grants file this version understands.
    #[error("{path} is not a grants file this version of safe can read: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Not a site the gateway serves.
    #[error("{0:?} is not a site: give www.name, service.name or a safe://d… address")]
    BadSite(String),
    /// Too many sites.
    #[error("grants are kept for at most {MAX_SITES} sites")]
    TooMany,
}

/// What the user granted one site.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Writes per day allowed on top of [`SITE_WRITES_PER_DAY`].
    #[serde(default)]
    pub extra_writes: u64,
    /// Bytes per day allowed on top of [`SITE_BYTES_PER_DAY`].
    #[serde(default)]
    pub extra_bytes: u64,
    /// The user's named keys the site may sign with.
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct GrantsFile {
    version: u32,
    sites: BTreeMap<String, Grant>,
}

/// What one site wrote on one day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    /// Days since the Unix epoch (UTC).
    pub day: u64,
    /// Writes made.
    pub writes: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// A site's daily limits and what is left of them, when a write does not
/// fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Writes allowed a day (the default plus the grant).
    pub writes_per_day: u64,
    /// Bytes allowed a day.
    pub bytes_per_day: u64,
    /// Writes left today.
    pub writes_left: u64,
    /// Bytes left today.
    pub bytes_left: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsageFile {
    version: u32,
    sites: BTreeMap<String, Used>,
}

/// The grants and usage files of one data directory.
#[derive(Clone, Debug)]
pub struct Grants {
    grants: PathBuf,
    usage: PathBuf,
}

fn read<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, GrantError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => {
            return Err(GrantError::Io {
                path: path.into(),
                source,
            });
        }
    };
    let format = |reason: String| GrantError::Format {
        path: path.into(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format(e.to_string()))?;
    if value.get("version").and_then(|v| v.as_u64()) != Some(FORMAT as u64) {
        return Err(format(format!("not format version {FORMAT}")));
    }
    serde_json::from_value(value).map_err(|e| format(e.to_string()))
}

fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), GrantError> {
    let io = |source| GrantError::Io {
        path: path.into(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    serde_json::to_writer_pretty(&mut tmp, value).map_err(|e| io(e.into()))?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Today, in days since the Unix epoch (UTC).
pub fn today() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0)
}

/// A site's name as grants and keys use it: `service.name` for a name,
/// the bare `d…`/`f…` text for an address. `safe://` in front is allowed.
pub fn check_site(site: &str) -> Result<String, GrantError> {
    let bad = || GrantError::BadSite(site.to_string());
    let url: safe_protocol::SafeUrl = if site.contains("://") {
        site.parse().map_err(|_| bad())?
    } else {
        format!("safe://{site}").parse().map_err(|_| bad())?
    };
    if !url.path.is_empty() || url.version.is_some() {
        return Err(bad());
    }
    Ok(site_id(&url.host))
}

/// The site's name of a host ([`check_site`]'s form).
pub fn site_id(host: &safe_protocol::Host) -> String {
    match host {
        safe_protocol::Host::Address(a) => a.to_string().trim_start_matches("safe://").to_string(),
        safe_protocol::Host::Name { service, name } => format!("{service}.{name}"),
    }
}

impl Grants {
    /// The files in data directory `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            grants: dir.join("gateway-grants.json"),
            usage: dir.join("gateway-usage.json"),
        }
    }

    /// Every site's grant.
    pub fn all(&self) -> Result<BTreeMap<String, Grant>, GrantError> {
        Ok(read::<GrantsFile>(&self.grants)?.sites)
    }

    /// What `site` was granted (nothing: the default quota only).
    pub fn of(&self, site: &str) -> Result<Grant, GrantError> {
        Ok(self.all()?.remove(site).unwrap_or_default())
    }

    /// Adds to `site`'s grant: more writes and bytes per day, and keys.
    pub fn grant(&self, site: &str, more: &Grant) -> Result<Grant, GrantError> {
        let mut file = read::<GrantsFile>(&self.grants)?;
        if !file.sites.contains_key(site) && file.sites.len() >= MAX_SITES {
            return Err(GrantError::TooMany);
        }
        let g = file.sites.entry(site.to_string()).or_default();
        g.extra_writes = (g.extra_writes + more.extra_writes).min(MAX_GRANT_WRITES);
        g.extra_bytes = g.extra_bytes.saturating_add(more.extra_bytes);
        for k in &more.keys {
            if !g.keys.contains(k) {
                g.keys.push(k.clone());
            }
        }
        let granted = g.clone();
        file.version = FORMAT;
        write(&self.grants, &file)?;
        Ok(granted)
    }

    /// Removes everything granted to `site`; whether there was anything.
    pub fn revoke(&self, site: &str) -> Result<bool, GrantError> {
        let mut file = read::<GrantsFile>(&self.grants)?;
        let had = file.sites.remove(site).is_some();
        if had {
            file.version = FORMAT;
            write(&self.grants, &file)?;
        }
        Ok(had)
    }

    /// What `site` has used today.
    pub fn used(&self, site: &str) -> Result<Used, GrantError> {
        let today = today();
        Ok(read::<UsageFile>(&self.usage)?
            .sites
            .remove(site)
            .filter(|u| u.day == today)
            .unwrap_or(Used {
                day: today,
                ..Used::default()
            }))
    }

    /// Counts a write of `bytes` by `site` if its quota (the default plus
    /// its grant) allows it; the limits when it does not. The caller
    /// holds the gateway's usage lock, so two writes never both pass the
    /// check.
    pub fn spend(&self, site: &str, bytes: u64) -> Result<Result<(), Limits>, GrantError> {
        let grants = self.all()?;
        let grant = grants.get(site).cloned().unwrap_or_default();
        let mut file = read::<UsageFile>(&self.usage)?;
        let today = today();
        // Yesterday's counts go.
        file.sites.retain(|_, u| u.day == today);
        // Sites without a grant share one daily budget on top of their own.
        if grant == Grant::default() {
            let ungranted: u64 = file
                .sites
                .iter()
                .filter(|(s, _)| !grants.contains_key(*s))
                .map(|(_, u)| u.writes)
                .sum();
            if ungranted >= UNGRANTED_WRITES_PER_DAY {
                let used = file.sites.get(site).copied().unwrap_or_default();
                return Ok(Err(Limits {
                    writes_per_day: SITE_WRITES_PER_DAY,
                    bytes_per_day: SITE_BYTES_PER_DAY,
                    writes_left: 0,
                    bytes_left: SITE_BYTES_PER_DAY.saturating_sub(used.bytes),
                }));
            }
        }
        // A full table forgets the site that wrote least today (never
        // failing every other site's writes).
        if !file.sites.contains_key(site)
            && file.sites.len() >= MAX_SITES
            && let Some(least) = file
                .sites
                .iter()
                .min_by_key(|(_, u)| u.writes)
                .map(|(s, _)| s.clone())
        {
            file.sites.remove(&least);
        }
        let used = file.sites.entry(site.to_string()).or_insert(Used {
            day: today,
            ..Used::default()
        });
        let writes_per_day = SITE_WRITES_PER_DAY + grant.extra_writes;
        let bytes_per_day = SITE_BYTES_PER_DAY.saturating_add(grant.extra_bytes);
        let writes_ok = used.writes < writes_per_day;
        let bytes_ok = used.bytes.saturating_add(bytes) <= bytes_per_day;
        if !(writes_ok && bytes_ok) {
            return Ok(Err(Limits {
                writes_per_day,
                bytes_per_day,
                writes_left: writes_per_day.saturating_sub(used.writes),
                bytes_left: bytes_per_day.saturating_sub(used.bytes),
            }));
        }
        used.writes += 1;
        used.bytes = used.bytes.saturating_add(bytes);
        file.version = FORMAT;
        write(&self.usage, &file)?;
        Ok(Ok(()))
    }

    /// Takes back a write of `bytes` counted today for a write that did
    /// not happen (the network refused it).
    pub fn refund(&self, site: &str, bytes: u64) -> Result<(), GrantError> {
        let mut file = read::<UsageFile>(&self.usage)?;
        let today = today();
        if let Some(used) = file.sites.get_mut(site).filter(|u| u.day == today) {
            used.writes = used.writes.saturating_sub(1);
            used.bytes = used.bytes.saturating_sub(bytes);
            file.version = FORMAT;
            write(&self.usage, &file)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_grants_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let g = Grants::in_dir(dir.path());
        for _ in 0..SITE_WRITES_PER_DAY {
            assert!(g.spend("www.a", 10).unwrap().is_ok());
        }
        let limits = g.spend("www.a", 10).unwrap().unwrap_err();
        assert_eq!(limits.writes_left, 0, "past the daily quota");
        g.refund("www.a", 10).unwrap();
        assert!(
            g.spend("www.a", 10).unwrap().is_ok(),
            "a refused write is given back"
        );
        assert!(g.spend("www.a", 10).unwrap().is_err());
        assert!(g.spend("www.b", 10).unwrap().is_ok(), "quotas are per site");
        let limits = g.spend("www.b", SITE_BYTES_PER_DAY).unwrap().unwrap_err();
        assert_eq!(limits.bytes_left, SITE_BYTES_PER_DAY - 10, "bytes too");
        g.grant(
            "www.a",
            &Grant {
                extra_writes: 2,
                ..Grant::default()
            },
        )
        .unwrap();
        assert!(g.spend("www.a", 10).unwrap().is_ok());
        assert!(g.spend("www.a", 10).unwrap().is_ok());
        assert!(g.spend("www.a", 10).unwrap().is_err());
        assert_eq!(g.used("www.a").unwrap().writes, SITE_WRITES_PER_DAY + 2);
        assert!(g.revoke("www.a").unwrap());
        assert!(!g.revoke("www.a").unwrap());
        assert_eq!(g.of("www.a").unwrap(), Grant::default());
    }

    #[test]
    fn sites_without_grants_share_a_daily_budget() {
        let dir = tempfile::tempdir().unwrap();
        let g = Grants::in_dir(dir.path());
        let sites = UNGRANTED_WRITES_PER_DAY / SITE_WRITES_PER_DAY;
        for i in 0..sites {
            for _ in 0..SITE_WRITES_PER_DAY {
                assert!(g.spend(&format!("s{i}.hop"), 1).unwrap().is_ok());
            }
        }
        assert!(g.spend("one-more.hop", 1).unwrap().is_err(), "budget spent");
        g.grant(
            "www.granted",
            &Grant {
                extra_writes: 1,
                ..Grant::default()
            },
        )
        .unwrap();
        assert!(
            g.spend("www.granted", 1).unwrap().is_ok(),
            "a grant is outside it"
        );
    }

    #[test]
    fn sites_are_names_or_addresses() {
        assert_eq!(check_site("www.guestbook").unwrap(), "www.guestbook");
        assert_eq!(check_site("safe://guestbook").unwrap(), "www.guestbook");
        assert_eq!(check_site("Blog.X").unwrap(), "blog.x");
        assert!(check_site("www.x/path").is_err());
        assert!(check_site("bad_name").is_err());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_an_empty_grant() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gateway-grants.json"), b"{oops").unwrap();
        let g = Grants::in_dir(dir.path());
        assert!(matches!(g.all(), Err(GrantError::Format { .. })));
    }
}
