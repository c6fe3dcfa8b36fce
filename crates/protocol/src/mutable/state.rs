//! [`State`]: a record's contents as its owners signed them, and how an owner
//! operation's [`Change`] makes the next one ([`State::apply`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    ANCESTRY, Append, Change, Create, Hash, Limit, MAX_ENTRIES, MAX_KEY_LEN, MAX_OWNERS,
    MAX_REMOVED, MAX_VALUE_LEN, PublicKey, RecordError, Signed, body_hash,
};
use crate::xorname::XorName;

/// A record's current contents, as its owners signed them (appends aside).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// 0 at creation, +1 per owner operation.
    pub version: u64,
    /// Current owners, sorted and distinct.
    pub owners: Vec<PublicKey>,
    /// Signatures an owner operation needs.
    pub threshold: u8,
    /// Whether anyone may append.
    pub public_append: bool,
    /// The entries.
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Ids of removed appends (tombstones).
    pub removed: BTreeSet<Hash>,
    /// Hashes of the states before this one, oldest first, at most
    /// [`ANCESTRY`]: signed with the state, they prove which copies are
    /// this one's past.
    pub ancestry: Vec<Hash>,
    /// Hash chain over every ownership change so far (version replaced,
    /// owners, threshold): binds the record's ownership history to the
    /// signed state, so no copy can carry an invented one.
    pub owners_chain: Hash,
}

impl State {
    /// The hash operations name as `prev` and `result`.
    pub fn hash(&self) -> Hash {
        body_hash("safe record state v1", self)
    }

    /// The state a create makes.
    pub fn genesis(create: &Create) -> Self {
        Self {
            version: 0,
            owners: create.owners.clone(),
            threshold: create.threshold,
            public_append: create.public_append,
            entries: BTreeMap::new(),
            removed: BTreeSet::new(),
            ancestry: Vec::new(),
            owners_chain: [0; 32],
        }
    }

    /// The state `change` makes of this one (version + 1), within limits.
    pub fn apply(&self, change: &Change) -> Result<State, RecordError> {
        let mut next = self.clone();
        next.version = self
            .version
            .checked_add(1)
            .ok_or(RecordError::TooLarge(Limit::RecordSize))?;
        next.ancestry.push(self.hash());
        if next.ancestry.len() > ANCESTRY {
            next.ancestry.remove(0);
        }
        match change {
            Change::Set { key, value } => {
                if key.len() > MAX_KEY_LEN {
                    return Err(RecordError::TooLarge(Limit::Key));
                }
                if value.len() > MAX_VALUE_LEN {
                    return Err(RecordError::TooLarge(Limit::Value));
                }
                next.entries.insert(key.clone(), value.clone());
                if next.entries.len() > MAX_ENTRIES {
                    return Err(RecordError::TooLarge(Limit::Entries));
                }
            }
            Change::Remove { key } => {
                next.entries.remove(key);
            }
            Change::Owners { owners, threshold } => {
                check_owners(owners, *threshold)?;
                next.owners = owners.clone();
                next.threshold = *threshold;
                next.owners_chain =
                    chain_owners(&self.owners_chain, self.version, owners, *threshold);
            }
            Change::RemoveAppends { ids } => {
                next.removed.extend(ids.iter().copied());
                if next.removed.len() > MAX_REMOVED {
                    return Err(RecordError::TooLarge(Limit::Removed));
                }
            }
        }
        Ok(next)
    }

    pub(super) fn check_limits(&self) -> Result<(), RecordError> {
        check_owners(&self.owners, self.threshold)?;
        if self.entries.len() > MAX_ENTRIES {
            return Err(RecordError::TooLarge(Limit::Entries));
        }
        for (k, v) in &self.entries {
            if k.len() > MAX_KEY_LEN {
                return Err(RecordError::TooLarge(Limit::Key));
            }
            if v.len() > MAX_VALUE_LEN {
                return Err(RecordError::TooLarge(Limit::Value));
            }
        }
        if self.removed.len() > MAX_REMOVED {
            return Err(RecordError::TooLarge(Limit::Removed));
        }
        let remembered = usize::try_from(self.version).map_or(ANCESTRY, |v| v.min(ANCESTRY));
        if self.ancestry.len() != remembered {
            return Err(RecordError::BrokenChain);
        }
        Ok(())
    }

    /// Checks an append against this state's rules (not its tombstones).
    pub fn check_append(&self, address: &XorName, a: &Signed<Append>) -> Result<(), RecordError> {
        if a.body.address != *address {
            return Err(RecordError::WrongAddress);
        }
        if a.body.value.len() > MAX_VALUE_LEN {
            return Err(RecordError::TooLarge(Limit::Value));
        }
        if self.public_append {
            // Anyone: every signature valid, at least one.
            let keys: Vec<PublicKey> = a.sigs.iter().map(|s| s.key).collect();
            a.check(&keys, 1)
        } else {
            a.check(&self.owners, self.threshold).map_err(|e| match e {
                RecordError::NotOwner => RecordError::AppendNotAllowed,
                other => other,
            })
        }
    }
}

/// The next link of [`State::owners_chain`].
pub(super) fn chain_owners(
    prev: &Hash,
    replaces: u64,
    owners: &[PublicKey],
    threshold: u8,
) -> Hash {
    let mut h = blake3::Hasher::new_derive_key("safe record owners chain v1");
    h.update(prev);
    h.update(&replaces.to_be_bytes());
    h.update(&[threshold]);
    for o in owners {
        h.update(o);
    }
    *h.finalize().as_bytes()
}

/// Owners sorted, distinct, 1..=[`MAX_OWNERS`]; threshold 1..=their number.
pub fn check_owners(owners: &[PublicKey], threshold: u8) -> Result<(), RecordError> {
    if owners.len() > MAX_OWNERS {
        return Err(RecordError::TooLarge(Limit::Owners));
    }
    let sorted = owners.windows(2).all(|w| w[0] < w[1]);
    if owners.is_empty() || !sorted || threshold == 0 || usize::from(threshold) > owners.len() {
        return Err(RecordError::BadOwners);
    }
    Ok(())
}
