//! Public names on the network: register, point services at data, resolve
//! `safe://[service.]name[/path][?v=N]` URLs.
//!
//! The record format is [`safe_protocol::name`]: a name is a record at an
//! address made from the name, so the first registration wins; each change
//! is a new [`NameVersion`] (all services), written with
//! [`Client::update_with`] so two writers never lose each other's change.

use safe_protocol::mutable::{Change, Record, RecordError, SigningKey, Write};
use safe_protocol::name::{
    MAX_SERVICES, NAME_TAG, NameError, NameVersion, check_label, follows, name_address,
};
use safe_protocol::{Address, DataKind, Host, SafeUrl, XorName};

use crate::client::Client;
use crate::mutable::{MutableError, new_create};

/// Why a name operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NameOpError {
    /// Not a valid name or service.
    #[error(transparent)]
    Invalid(#[from] NameError),
    /// Someone else registered it first.
    #[error("name {0:?} is taken")]
    Taken(String),
    /// Nobody registered it.
    #[error("no name {0:?} is registered")]
    NotRegistered(String),
    /// The name has no such service (in that version).
    #[error("the name {name:?} has no service {service:?}{}", version.map(|v| format!(" in version {v}")).unwrap_or_default())]
    NoService {
        /// The name.
        name: String,
        /// The service.
        service: String,
        /// The version looked in.
        version: Option<u64>,
    },
    /// No such version (never made, or dropped out).
    #[error("the name {0:?} has no version {1} (see `safe name show`)")]
    NoVersion(String, u64),
    /// Too many services.
    #[error("a name maps at most {MAX_SERVICES} services")]
    TooManyServices,
    /// A target that is not data a service can point at.
    #[error(
        "a service points at a directory (safe://d…), a file (safe://f…) or a record (safe://m…), not a chunk"
    )]
    BadTarget,
    /// The record store failed or refused.
    #[error(transparent)]
    Mutable(#[from] MutableError),
}

/// A name's record and its versions (oldest first).
#[derive(Clone, Debug)]
pub struct NameInfo {
    /// The normalised name.
    pub name: String,
    /// Its record (owners, threshold, version).
    pub record: Record,
    /// Its versions kept, oldest first.
    pub versions: Vec<NameVersion>,
}

impl NameInfo {
    /// The latest version (an empty one if none was set yet).
    pub fn latest(&self) -> NameVersion {
        self.versions.last().cloned().unwrap_or_default()
    }
}

impl Client {
    /// Registers `name` (normalised) owned by `owners` (empty: `creator`
    /// alone) with `threshold`; its address. The first registration wins;
    /// a second by someone else is [`NameOpError::Taken`], and the same
    /// registration again is [`MutableError::AlreadyCreated`].
    pub async fn register_name(
        &self,
        name: &str,
        owners: Vec<safe_protocol::mutable::PublicKey>,
        threshold: u8,
        creator: &SigningKey,
    ) -> Result<XorName, NameOpError> {
        let name = check_label(name)?;
        let create = new_create(name.as_bytes(), NAME_TAG, owners, threshold, false, creator)?;
        match self.submit(&Write::Create(create)).await {
            Ok(()) => Ok(name_address(&name)),
            Err(MutableError::Refused(RecordError::AlreadyExists)) => Err(NameOpError::Taken(name)),
            Err(e) => Err(e.into()),
        }
    }

    /// The record and versions of `name`.
    pub async fn name_info(&self, name: &str) -> Result<NameInfo, NameOpError> {
        let name = check_label(name)?;
        let record = match self.get_record(name_address(&name)).await {
            Ok(r) => r,
            Err(MutableError::NotFound(_)) => return Err(NameOpError::NotRegistered(name)),
            Err(e) => return Err(e.into()),
        };
        if record.genesis.body.tag != NAME_TAG {
            return Err(NameOpError::NotRegistered(name));
        }
        let versions = NameVersion::all_of(&record);
        Ok(NameInfo {
            name,
            record,
            versions,
        })
    }

    /// Points `service` of `name` at `target` (`None`: removes the
    /// service), as a new version signed by `signers`; the version made.
    pub async fn set_service(
        &self,
        name: &str,
        service: &str,
        target: Option<Address>,
        signers: &[SigningKey],
        time: i64,
    ) -> Result<NameVersion, NameOpError> {
        let name = check_label(name)?;
        let service = check_label(service)?;
        if target.is_some_and(|t| t.kind == DataKind::Chunk) {
            return Err(NameOpError::BadTarget);
        }
        let mut made = None;
        let mut refusal = None;
        let result = self
            .update_with(name_address(&name), signers, |record| {
                let mut next = NameVersion::all_of(record).pop().unwrap_or_default();
                next.number += 1;
                next.time = time;
                match target {
                    Some(t) => {
                        next.services.insert(service.clone(), t);
                    }
                    None => {
                        next.services.remove(&service);
                    }
                }
                if next.services.len() > MAX_SERVICES {
                    refusal = Some(NameOpError::TooManyServices);
                    return Err(MutableError::Invalid(RecordError::TooLarge(
                        safe_protocol::mutable::Limit::Entries,
                    )));
                }
                let value = next
                    .encode()
                    .map_err(|_| MutableError::Invalid(RecordError::Malformed))?;
                let change = Change::Set {
                    key: NameVersion::slot(next.number),
                    value,
                };
                made = Some(next);
                Ok(change)
            })
            .await;
        match result {
            Ok(_) => made.ok_or(NameOpError::NotRegistered(name)),
            Err(MutableError::NotFound(_)) => Err(NameOpError::NotRegistered(name)),
            // Our own refusal (too many services), else the store's.
            Err(e) => Err(refusal.unwrap_or_else(|| e.into())),
        }
    }

    /// What `url` names: an address and a path inside it. A name is
    /// looked up (its latest version, or the one the URL asks for).
    pub async fn resolve(&self, url: &SafeUrl) -> Result<(Address, Vec<String>), NameOpError> {
        let (service, name) = match &url.host {
            Host::Address(a) => return Ok((*a, url.path.clone())),
            Host::Name { service, name } => (service, name),
        };
        let info = self.name_info(name).await?;
        let version = match url.version {
            None => info.latest(),
            Some(n) => info
                .versions
                .iter()
                .find(|v| v.number == n)
                .cloned()
                .ok_or_else(|| NameOpError::NoVersion(name.clone(), n))?,
        };
        let target =
            version
                .services
                .get(service)
                .copied()
                .ok_or_else(|| NameOpError::NoService {
                    name: name.clone(),
                    service: service.clone(),
                    version: url.version,
                })?;
        // A record with a `target` entry is followed to where it points
        // now (a published path); any other record is the target itself.
        if target.kind == DataKind::Mutable
            && let Ok(record) = self.get_record(target.name).await
            && let Some(now) = follows(&record)
        {
            return Ok((now, url.path.clone()));
        }
        Ok((target, url.path.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    #[tokio::test]
    async fn register_point_resolve_and_keep_versions() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::local(dir.path()).unwrap();
        client
            .register_name("MySite", Vec::new(), 1, &key(1))
            .await
            .unwrap();
        assert!(matches!(
            client
                .register_name("mysite", Vec::new(), 1, &key(2))
                .await
                .unwrap_err(),
            NameOpError::Taken(_)
        ));
        let site = Address::new(DataKind::Directory, XorName([5; 32]));
        let blog = Address::new(DataKind::File, XorName([6; 32]));
        let v1 = client
            .set_service("mysite", "www", Some(site), &[key(1)], 10)
            .await
            .unwrap();
        assert_eq!(v1.number, 1);
        client
            .set_service("mysite", "blog", Some(blog), &[key(1)], 11)
            .await
            .unwrap();
        // Not an owner: refused.
        assert!(
            client
                .set_service("mysite", "www", Some(blog), &[key(2)], 12)
                .await
                .is_err()
        );
        let url: SafeUrl = "safe://mysite/index.html".parse().unwrap();
        assert_eq!(
            client.resolve(&url).await.unwrap(),
            (site, vec!["index.html".to_string()])
        );
        let url: SafeUrl = "safe://blog.mysite".parse().unwrap();
        assert_eq!(client.resolve(&url).await.unwrap().0, blog);
        let old: SafeUrl = "safe://blog.mysite?v=1".parse().unwrap();
        assert!(matches!(
            client.resolve(&old).await.unwrap_err(),
            NameOpError::NoService { .. }
        ));
        let info = client.name_info("mysite").await.unwrap();
        assert_eq!(info.versions.len(), 2);
        assert!(matches!(
            client
                .resolve(&"safe://nosuchname".parse().unwrap())
                .await
                .unwrap_err(),
            NameOpError::NotRegistered(_)
        ));
        assert!(matches!(
            client
                .set_service(
                    "mysite",
                    "www",
                    Some(Address::new(DataKind::Chunk, XorName([1; 32]))),
                    &[key(1)],
                    1
                )
                .await
                .unwrap_err(),
            NameOpError::BadTarget
        ));
    }
}
