//! [`Record`]: a state together with the proof of it.
//!
//! Here are the rules a node and a replica follow: checking a copy's whole
//! proof ([`Record::verify`]), applying a write ([`Record::apply`]) and
//! merging another copy ([`Record::merge`]), which takes only what provably
//! follows.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::error::decode_err;
use super::state::chain_owners;
use super::{
    Append, Change, Create, HELD_APPEND_BYTES, HELD_APPENDS, Hash, Limit, MAX_APPEND_BYTES,
    MAX_APPENDS, MAX_NAME_LEN, MAX_OWNED_SIZE, MAX_OWNER_CHANGES, MAX_RECORD_SIZE, Op,
    RECORD_FORMAT, RecordError, Signed, State, Write, check_owners, encoded_len, record_address,
};
use crate::codec;
use crate::xorname::XorName;

/// A record with the proof of its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The signed create.
    pub genesis: Signed<Create>,
    /// Every ownership change, oldest first.
    pub owner_changes: Vec<Signed<Op>>,
    /// The operation that produced `state` (`None` at version 0).
    pub last: Option<Signed<Op>>,
    /// The current state.
    pub state: State,
    /// Appends, sorted by id, none of them removed.
    pub appends: Vec<Signed<Append>>,
}

/// What [`Record::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The record changed.
    Changed,
    /// The write was already applied (a retry): nothing changed.
    AlreadyApplied,
}

/// What [`Record::merge`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Nothing new in the other copy.
    Unchanged,
    /// Took a newer state or new appends.
    Updated,
    /// A different genesis, or a state on another line of descent: only
    /// the close group's majority can say which wins
    /// ([`resolve`](super::resolve())).
    Conflict,
}

impl Record {
    /// A new record from a create, checking the create.
    pub fn create(genesis: Signed<Create>) -> Result<Self, RecordError> {
        let c = &genesis.body;
        if c.name.len() > MAX_NAME_LEN {
            return Err(RecordError::TooLarge(Limit::Name));
        }
        check_owners(&c.owners, c.threshold)?;
        crate::account::check_create(c)?;
        crate::inbox::check_create(c)?;
        // The creator is one of the owners.
        genesis.check(&c.owners, 1)?;
        let state = State::genesis(c);
        Ok(Self {
            genesis,
            owner_changes: Vec::new(),
            last: None,
            state,
            appends: Vec::new(),
        })
    }

    /// The record's address.
    pub fn address(&self) -> XorName {
        record_address(&self.genesis.body.name, self.genesis.body.tag)
    }

    /// A digest of everything a replica holds, to tell copies apart cheaply.
    pub fn digest(&self) -> Hash {
        let mut h = blake3::Hasher::new_derive_key("safe record digest v1");
        h.update(&self.genesis.id());
        h.update(&self.state.version.to_be_bytes());
        h.update(&self.state.hash());
        for a in &self.appends {
            h.update(&a.id());
        }
        *h.finalize().as_bytes()
    }

    /// Encodes under [`RECORD_FORMAT`], refusing records over the limit.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let bytes = codec::encode(RECORD_FORMAT, self).map_err(|_| RecordError::Malformed)?;
        if bytes.len() > MAX_RECORD_SIZE {
            return Err(RecordError::TooLarge(Limit::RecordSize));
        }
        Ok(bytes)
    }

    /// Decodes at most [`MAX_RECORD_SIZE`] bytes. Does not verify.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        codec::decode(RECORD_FORMAT, bytes, MAX_RECORD_SIZE).map_err(decode_err(Limit::RecordSize))
    }

    /// Encoded size of everything but the appends.
    fn owned_size(&self) -> usize {
        encoded_len(&(&self.genesis, &self.owner_changes, &self.last, &self.state))
    }

    /// Checks the whole proof: the create, every ownership change signed by
    /// the owners before it, the last operation signed by the owners of its
    /// time and naming this state's hash, the limits, and every append.
    pub fn verify(&self, address: &XorName) -> Result<(), RecordError> {
        if self.address() != *address {
            return Err(RecordError::WrongAddress);
        }
        let fresh = Record::create(self.genesis.clone())?;
        if self.owner_changes.len() > MAX_OWNER_CHANGES {
            return Err(RecordError::TooLarge(Limit::OwnerChanges));
        }
        let (mut owners, mut threshold) = (fresh.state.owners.clone(), fresh.state.threshold);
        let mut chain = fresh.state.owners_chain;
        let mut next_free = 0u64; // lowest version the next change may replace
        for change in &self.owner_changes {
            let op = &change.body;
            let Change::Owners {
                owners: new,
                threshold: t,
            } = &op.change
            else {
                return Err(RecordError::BrokenChain);
            };
            if op.address != *address
                || op.replaces < next_free
                || op.replaces >= self.state.version
            {
                return Err(RecordError::BrokenChain);
            }
            change.check(&owners, threshold)?;
            check_owners(new, *t)?;
            chain = chain_owners(&chain, op.replaces, new, *t);
            (owners, threshold) = (new.clone(), *t);
            next_free = op.replaces + 1;
        }
        match &self.last {
            None => {
                if self.state != fresh.state || !self.owner_changes.is_empty() {
                    return Err(RecordError::BrokenChain);
                }
            }
            Some(last) => {
                let op = &last.body;
                if op.address != *address
                    || op.replaces.checked_add(1) != Some(self.state.version)
                    || op.result != self.state.hash()
                    || self.state.ancestry.last() != Some(&op.prev)
                {
                    return Err(RecordError::BrokenChain);
                }
                if matches!(op.change, Change::Owners { .. }) {
                    // Checked in the loop, against the owners before it.
                    if self.owner_changes.last() != Some(last) {
                        return Err(RecordError::BrokenChain);
                    }
                } else {
                    if self
                        .owner_changes
                        .last()
                        .is_some_and(|c| c.body.replaces >= op.replaces)
                    {
                        return Err(RecordError::BrokenChain);
                    }
                    last.check(&owners, threshold)?;
                }
            }
        }
        if self.state.owners != owners
            || self.state.threshold != threshold
            || self.state.owners_chain != chain
            || self.state.public_append != self.genesis.body.public_append
        {
            return Err(RecordError::BrokenChain);
        }
        self.state.check_limits()?;
        if self.owned_size() > MAX_OWNED_SIZE {
            return Err(RecordError::TooLarge(Limit::RecordSize));
        }
        if self.appends.len() > HELD_APPENDS || appends_size(&self.appends) > HELD_APPEND_BYTES {
            return Err(RecordError::TooLarge(Limit::Appends));
        }
        let mut prev: Option<Hash> = None;
        for a in &self.appends {
            let id = a.id();
            if prev.is_some_and(|p| p >= id) || self.state.removed.contains(&id) {
                return Err(RecordError::BrokenChain);
            }
            self.state.check_append(address, a)?;
            crate::inbox::check_stored(&self.state, self.genesis.body.tag, a)?;
            prev = Some(id);
        }
        crate::account::check_record(self)
    }

    /// Applies a write to this (valid) record, as a node does: every rule
    /// checked, nothing changed on error.
    pub fn apply(&mut self, write: &Write) -> Result<Applied, RecordError> {
        let address = self.address();
        if write.address() != address {
            return Err(RecordError::WrongAddress);
        }
        match write {
            Write::Create(c) if *c == self.genesis => return Ok(Applied::AlreadyApplied),
            Write::Create(c) if c.body == self.genesis.body => {
                // Same claim, other signatures: still the same record.
                Record::create(c.clone())?;
                return Ok(Applied::AlreadyApplied);
            }
            Write::Create(_) => return Err(RecordError::AlreadyExists),
            w if crate::account::is_account(self) => crate::account::check_write(w)?,
            w if crate::inbox::is_inbox(self) => crate::inbox::check_write(w)?,
            _ => {}
        }
        let mut next = self.clone();
        let applied = match write {
            Write::Create(_) => return Err(RecordError::AlreadyExists),
            Write::Op(op) => {
                if self.last.as_ref().is_some_and(|l| l.body == op.body) {
                    // The same operation again (maybe with other signers).
                    return Ok(Applied::AlreadyApplied);
                }
                let body = &op.body;
                if body.replaces != self.state.version {
                    return Err(RecordError::WrongVersion {
                        current: self.state.version,
                        given: body.replaces,
                    });
                }
                let state = self.state.apply(&body.change)?;
                // `apply` remembers the current state's hash last.
                if state.ancestry.last() != Some(&body.prev) {
                    return Err(RecordError::Conflict);
                }
                op.check(&self.state.owners, self.state.threshold)?;
                if state.hash() != body.result {
                    return Err(RecordError::ResultMismatch);
                }
                if matches!(body.change, Change::Owners { .. }) {
                    if next.owner_changes.len() >= MAX_OWNER_CHANGES {
                        return Err(RecordError::TooLarge(Limit::OwnerChanges));
                    }
                    next.owner_changes.push(op.clone());
                }
                // On an inbox any change may raise its floor.
                let prunes = crate::inbox::is_inbox(self)
                    || matches!(
                        body.change,
                        Change::Owners { .. } | Change::RemoveAppends { .. }
                    );
                next.state = state;
                next.last = Some(op.clone());
                if prunes {
                    next.keep_valid_appends();
                }
                if next.owned_size() > MAX_OWNED_SIZE {
                    return Err(RecordError::TooLarge(Limit::RecordSize));
                }
                Applied::Changed
            }
            Write::Append(a) => {
                self.state.check_append(&address, a)?;
                crate::inbox::check_stored(&self.state, self.genesis.body.tag, a)?;
                let id = a.id();
                if self.state.removed.contains(&id) {
                    return Err(RecordError::AppendRemoved);
                }
                match next.appends.binary_search_by(|x| x.id().cmp(&id)) {
                    Ok(_) => return Ok(Applied::AlreadyApplied),
                    Err(at) => {
                        if next.appends.len() >= MAX_APPENDS
                            || appends_size(&next.appends) + encoded_len(a) > MAX_APPEND_BYTES
                        {
                            return Err(RecordError::TooLarge(Limit::Appends));
                        }
                        next.appends.insert(at, a.clone());
                    }
                }
                Applied::Changed
            }
        };
        *self = next;
        Ok(applied)
    }

    /// Drops appends the state removed or no longer allows (after a change
    /// of owners on an owners-only record).
    fn keep_valid_appends(&mut self) {
        let (address, state, tag) = (self.address(), &self.state, self.genesis.body.tag);
        self.appends.retain(|a| {
            !state.removed.contains(&a.id())
                && state.check_append(&address, a).is_ok()
                && crate::inbox::check_stored(state, tag, a).is_ok()
        });
    }

    /// Adds `others`' appends that this state allows. Past [`HELD_APPENDS`]
    /// or [`HELD_APPEND_BYTES`] the highest ids are dropped, so every
    /// replica that holds the same appends keeps the same ones. Returns
    /// whether the set changed.
    pub(crate) fn add_appends<'a>(
        &mut self,
        others: impl IntoIterator<Item = &'a Signed<Append>>,
    ) -> bool {
        let address = self.address();
        let mut by_id: BTreeMap<Hash, Signed<Append>> =
            self.appends.iter().map(|a| (a.id(), a.clone())).collect();
        for a in others {
            let id = a.id();
            if !by_id.contains_key(&id)
                && !self.state.removed.contains(&id)
                && self.state.check_append(&address, a).is_ok()
                && crate::inbox::check_stored(&self.state, self.genesis.body.tag, a).is_ok()
            {
                by_id.insert(id, a.clone());
            }
        }
        let (mut kept, mut bytes) = (Vec::with_capacity(by_id.len()), 0usize);
        if crate::inbox::is_inbox(self) {
            // An inbox never gives up a letter it holds for ones a copy
            // offers: a hostile offerer could otherwise push delivered
            // letters out with appends of lower ids. Past the limits the
            // offered ones are left out, so replicas may then differ.
            let held: BTreeSet<Hash> = self.appends.iter().map(|a| a.id()).collect();
            let (mine, offered): (Vec<_>, Vec<_>) =
                by_id.into_values().partition(|a| held.contains(&a.id()));
            bytes = appends_size(&mine);
            kept = mine;
            for a in offered {
                let size = encoded_len(&a);
                if kept.len() < HELD_APPENDS && bytes + size <= HELD_APPEND_BYTES {
                    bytes += size;
                    kept.push(a);
                }
            }
            kept.sort_by_key(|a| a.id());
        } else {
            for a in by_id.into_values() {
                let size = encoded_len(&a);
                if kept.len() >= HELD_APPENDS || bytes + size > HELD_APPEND_BYTES {
                    break;
                }
                bytes += size;
                kept.push(a);
            }
        }
        let changed = kept != self.appends;
        self.appends = kept;
        changed
    }

    /// True if `ancestor` is a past state of this record: its state hash is
    /// in this state's signed [`State::ancestry`] at its version, and its
    /// ownership history is the start of this one's (so a former owner's
    /// fork, which lacks the transfer, never descends from the honest copy).
    pub fn descends_from(&self, ancestor: &Record) -> bool {
        if self.genesis.id() != ancestor.genesis.id()
            || ancestor.state.version >= self.state.version
        {
            return false;
        }
        let back = self.state.version - ancestor.state.version;
        let Ok(back) = usize::try_from(back) else {
            return false;
        };
        let Some(at) = self.state.ancestry.len().checked_sub(back) else {
            return false;
        };
        let theirs = &ancestor.owner_changes;
        self.state.ancestry.get(at) == Some(&ancestor.state.hash())
            && theirs.len() <= self.owner_changes.len()
            && theirs
                .iter()
                .zip(&self.owner_changes)
                .all(|(a, b)| a.body == b.body)
    }

    /// Merges another verified copy into this one, as a replica does during
    /// replication. Only what provably follows is taken: the same state
    /// (its appends are united) or a later state that descends from this
    /// one ([`Record::descends_from`]). A copy of this one's past gives
    /// only its appends. Anything else — another genesis, or a state on
    /// another line, older or newer — is a conflict for the close group's
    /// majority to settle.
    pub fn merge(&mut self, other: &Record) -> Merge {
        if self.genesis.id() != other.genesis.id() {
            return Merge::Conflict;
        }
        if other.state == self.state || self.descends_from(other) {
            return if self.add_appends(&other.appends) {
                Merge::Updated
            } else {
                Merge::Unchanged
            };
        }
        if other.descends_from(self) {
            // Mine first (those the new state still allows), then theirs:
            // the same union, and an inbox keeps what it held.
            self.owner_changes = other.owner_changes.clone();
            self.last = other.last.clone();
            self.state = other.state.clone();
            self.keep_valid_appends();
            self.add_appends(&other.appends);
            return Merge::Updated;
        }
        Merge::Conflict
    }
}

/// Encoded size of appends, as the append limits count it.
fn appends_size(appends: &[Signed<Append>]) -> usize {
    appends.iter().map(encoded_len).sum()
}
