//! Safecoin's pure rules (issue 17; `docs/DESIGN-currency.md`, revision 2).
//!
//! Coins are **outputs** owned by one-time keys. A [`Spend`] consumes
//! inputs (outputs of earlier spends, or the network's genesis output) and
//! creates outputs whose amounts add up to exactly the same total. The
//! close group of each input's [`spend_address`] votes for at most one
//! spend of it, for ever; [`quorum`] votes of that group are the input's
//! [`Certificate`], and a spend certified at every input is final
//! ([`CertifiedSpend`]). Everything here is checked without I/O: the
//! caller supplies its view of each group as a membership test.

mod keys;
pub mod pay;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::XorName;
use crate::codec;

pub use keys::{OneTimeKey, WalletAddress, WalletAddressError, WalletKeys};

/// A 32-byte ed25519 public key.
pub type Key = [u8; 32];

/// Format version of every encoded coin value (spends, certificates).
pub const COIN_FORMAT: u8 = 1;
/// Nanos in one coin: amounts are integers of nanos, never floats.
pub const NANOS_PER_COIN: u64 = 1_000_000_000;
/// Every coin there can ever be: 2^32 coins.
pub const TOTAL_SUPPLY: u64 = 4_294_967_296 * NANOS_PER_COIN;
/// The genesis output: 30 % of the supply. The other 70 % is reserved for
/// farming rewards, which version 1 does not issue.
pub const GENESIS_AMOUNT: u64 = TOTAL_SUPPLY / 10 * 3;
/// Most inputs one spend may consume.
pub const MAX_INPUTS: usize = 16;
/// Most outputs one spend may create.
pub const MAX_OUTPUTS: usize = 64;
/// Longest memo (e.g. the root of the quotes a payment covers).
pub const MAX_MEMO: usize = 256;
/// Most votes a certificate may carry (the largest close group).
pub const MAX_VOTES: usize = 8;
/// Largest encoded [`SignedSpend`]: every list at its bound fits.
pub const MAX_SPEND_SIZE: usize = 16 * 1024;
/// Largest encoded [`CertifiedSpend`].
pub const MAX_CERTIFIED_SIZE: usize = MAX_SPEND_SIZE + MAX_INPUTS * (MAX_VOTES * 100 + 8);

/// The hash of a [`Spend`]: what its input owners and voters sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SpendHash(pub [u8; 32]);

impl std::fmt::Display for SpendHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The identity of an output: where it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OutputId(pub [u8; 32]);

impl OutputId {
    /// Output `index` of the spend `spend`.
    pub fn of(spend: &SpendHash, index: u32) -> Self {
        let mut h = blake3::Hasher::new_derive_key("safe coin output id v1");
        h.update(&spend.0);
        h.update(&index.to_le_bytes());
        Self(*h.finalize().as_bytes())
    }

    /// The genesis output of the network whose genesis key is `genesis`.
    pub fn genesis(genesis: &Key) -> Self {
        Self(blake3::derive_key("safe coin genesis output v1", genesis))
    }
}

/// Whether `key` is a usable public key: a canonical encoding of a curve
/// point not of small order (a genesis, owner or address key must be).
pub fn valid_key(key: &Key) -> bool {
    keys::point(key).is_some()
}

/// Where the record of an output's spend lives: its close group votes.
pub fn spend_address(id: &OutputId) -> XorName {
    XorName(blake3::derive_key("safe coin spend address v1", &id.0))
}

/// An amount paid to a one-time key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Nanos, more than 0.
    pub amount: u64,
    /// The one-time public key that may spend it.
    pub owner: Key,
    /// `R = r·G`: lets the recipient find it (see [`WalletKeys::owns`]).
    pub ephemeral: Key,
}

/// The spend an input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Parent {
    /// The network's genesis output (index 0).
    Genesis,
    /// An output of this spend.
    Spend(SpendHash),
}

/// An output being spent, restated (its amount and owner are checked
/// against its parent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// Which spend made it.
    pub parent: Parent,
    /// Its index among that spend's outputs.
    pub index: u32,
    /// Its amount.
    pub amount: u64,
    /// Its owner key, which signs.
    pub owner: Key,
}

impl Input {
    /// The output's id on the network whose genesis key is `genesis`.
    pub fn id(&self, genesis: &Key) -> OutputId {
        match self.parent {
            Parent::Genesis => OutputId::genesis(genesis),
            Parent::Spend(h) => OutputId::of(&h, self.index),
        }
    }
}

/// Inputs consumed and outputs created, on one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    /// The network's genesis key: a spend on one network is nothing on
    /// another.
    pub genesis: Key,
    /// 1 to [`MAX_INPUTS`] distinct outputs.
    pub inputs: Vec<Input>,
    /// 1 to [`MAX_OUTPUTS`] outputs.
    pub outputs: Vec<Output>,
    /// Up to [`MAX_MEMO`] bytes, signed with the rest.
    pub memo: Vec<u8>,
}

/// Why a spend, vote or certificate is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum SpendError {
    /// A list is empty or over its bound, an amount is 0, or an input is
    /// named twice.
    #[error("malformed spend: {0}")]
    Malformed(String),
    /// The outputs do not add up to the inputs.
    #[error("the outputs ({outputs} nanos) do not add up to the inputs ({inputs} nanos)")]
    Unbalanced {
        /// Sum of the inputs.
        inputs: u128,
        /// Sum of the outputs.
        outputs: u128,
    },
    /// A signature is missing, malformed or by the wrong key.
    #[error("input {0} is not signed by its owner")]
    BadSignature(usize),
    /// The spend is for another network.
    #[error("the spend is for another network (another genesis key)")]
    WrongNetwork,
    /// An input does not match its parent (amount, owner, index), or its
    /// parent was not supplied.
    #[error("input {0} is not an output of the parent given")]
    UnknownInput(usize),
    /// A parent's certificate is not valid in the checker's view.
    #[error("input {0}'s parent is not certified: {1}")]
    ParentNotCertified(usize, String),
    /// Not enough valid votes from the close group.
    #[error("{have} valid votes from the close group; {need} needed")]
    NotEnoughVotes {
        /// Valid, distinct votes by members.
        have: usize,
        /// The quorum.
        need: usize,
    },
    /// The input has been spent by another spend (its hash), for which this
    /// node voted.
    #[error("the input was already spent (by spend {0})")]
    AlreadySpent(SpendHash),
    /// The node waits for the sequencer's vote before voting.
    #[error("this node votes only after the close group's first member ({0})")]
    NeedsSequencer(String),
    /// The node serves no currency (no genesis key configured, or a close
    /// group under [`MIN_CURRENCY_GROUP`]).
    #[error("this network has no currency (its nodes have no genesis key)")]
    NoCurrency,
    /// The node started moments ago and does not vote until its view of
    /// the network has settled; another member, or a retry, will do.
    #[error("this node has just started and does not vote yet")]
    NotReady,
}

impl Spend {
    /// The spend's hash: what owners and voters sign.
    pub fn hash(&self) -> SpendHash {
        let mut h = blake3::Hasher::new_derive_key("safe coin spend v1");
        // Our types always encode; an empty encoding would never verify.
        if let Ok(bytes) = postcard::to_allocvec(self) {
            h.update(&bytes);
        }
        SpendHash(*h.finalize().as_bytes())
    }

    /// The bytes each input's owner signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = b"safe coin spend signature v1".to_vec();
        out.extend_from_slice(&self.hash().0);
        out
    }

    /// The spend address of each input, in order: where the spend is
    /// kept and voted on.
    pub fn input_addresses(&self) -> Vec<XorName> {
        self.inputs
            .iter()
            .map(|i| spend_address(&i.id(&self.genesis)))
            .collect()
    }

    /// The id of output `index` of this spend.
    pub fn output_id(&self, index: u32) -> OutputId {
        OutputId::of(&self.hash(), index)
    }

    /// Bounds, distinct inputs, amounts above 0 and an exact balance
    /// (sums in `u128`: no overflow is possible with the bounds).
    pub fn check_form(&self) -> Result<(), SpendError> {
        let bad = |s: &str| Err(SpendError::Malformed(s.into()));
        if self.inputs.is_empty() || self.inputs.len() > MAX_INPUTS {
            return bad("1 to 16 inputs");
        }
        if self.outputs.is_empty() || self.outputs.len() > MAX_OUTPUTS {
            return bad("1 to 64 outputs");
        }
        if self.memo.len() > MAX_MEMO {
            return bad("memo over 256 bytes");
        }
        if self.inputs.iter().any(|i| i.amount == 0) || self.outputs.iter().any(|o| o.amount == 0) {
            return bad("an amount of 0");
        }
        let ids: BTreeSet<OutputId> = self.inputs.iter().map(|i| i.id(&self.genesis)).collect();
        if ids.len() != self.inputs.len() {
            return bad("an input named twice");
        }
        if self
            .inputs
            .iter()
            .any(|i| i.parent == Parent::Genesis && i.index != 0)
        {
            return bad("the genesis output is output 0");
        }
        if self
            .outputs
            .iter()
            .any(|o| keys::point(&o.owner).is_none() || keys::point(&o.ephemeral).is_none())
        {
            return bad("an output key is not a valid point");
        }
        let inputs: u128 = self.inputs.iter().map(|i| u128::from(i.amount)).sum();
        let outputs: u128 = self.outputs.iter().map(|o| u128::from(o.amount)).sum();
        if inputs != outputs {
            return Err(SpendError::Unbalanced { inputs, outputs });
        }
        Ok(())
    }
}

/// A spend and one signature per input, by that input's owner, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSpend {
    /// The spend.
    pub spend: Spend,
    /// 64-byte ed25519 signatures over [`Spend::signing_bytes`].
    pub sigs: Vec<Vec<u8>>,
}

impl SignedSpend {
    /// Signs `spend` with each input's key (`keys[i]` for input `i`).
    pub fn sign(spend: Spend, keys: &[&OneTimeKey]) -> Self {
        let msg = spend.signing_bytes();
        let sigs = keys.iter().map(|k| k.sign(&msg).to_vec()).collect();
        Self { spend, sigs }
    }

    /// Form, balance and every owner's signature (not the parents: see
    /// [`check_parents`]).
    pub fn verify(&self) -> Result<(), SpendError> {
        self.spend.check_form()?;
        if self.sigs.len() != self.spend.inputs.len() {
            return Err(SpendError::Malformed("one signature per input".into()));
        }
        let msg = self.spend.signing_bytes();
        for (i, (input, sig)) in self.spend.inputs.iter().zip(&self.sigs).enumerate() {
            let ok = keys::point(&input.owner).is_some()
                && VerifyingKey::from_bytes(&input.owner)
                    .ok()
                    .zip(Signature::from_slice(sig).ok())
                    .is_some_and(|(k, s)| k.verify_strict(&msg, &s).is_ok());
            if !ok {
                return Err(SpendError::BadSignature(i));
            }
        }
        Ok(())
    }

    /// Encoded, behind [`COIN_FORMAT`].
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(COIN_FORMAT, self).unwrap_or_default()
    }

    /// Decoded from [`Self::encode`]'s bytes, at most [`MAX_SPEND_SIZE`].
    pub fn decode(bytes: &[u8]) -> Result<Self, SpendError> {
        codec::decode(COIN_FORMAT, bytes, MAX_SPEND_SIZE)
            .map_err(|e| SpendError::Malformed(e.to_string()))
    }
}

/// A node's vote: "at `address`, I hold spend `hash` and no other, for
/// ever".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The node's ed25519 public key (its peer id's key).
    pub node: Key,
    /// Its signature over [`vote_bytes`].
    pub sig: Vec<u8>,
}

/// What a vote signs: the network, the spend address and the spend.
pub fn vote_bytes(genesis: &Key, address: &XorName, hash: &SpendHash) -> Vec<u8> {
    let mut out = b"safe coin spend vote v1".to_vec();
    out.extend_from_slice(genesis);
    out.extend_from_slice(&address.0);
    out.extend_from_slice(&hash.0);
    out
}

impl Vote {
    /// `key`'s vote for `hash` at `address`.
    pub fn sign(key: &SigningKey, genesis: &Key, address: &XorName, hash: &SpendHash) -> Self {
        Self {
            node: key.verifying_key().to_bytes(),
            sig: key
                .sign(&vote_bytes(genesis, address, hash))
                .to_bytes()
                .to_vec(),
        }
    }

    /// Whether the signature is the node's, for `hash` at `address`.
    pub fn valid(&self, genesis: &Key, address: &XorName, hash: &SpendHash) -> bool {
        VerifyingKey::from_bytes(&self.node)
            .ok()
            .zip(Signature::from_slice(&self.sig).ok())
            .is_some_and(|(k, s)| {
                k.verify_strict(&vote_bytes(genesis, address, hash), &s)
                    .is_ok()
            })
    }
}

/// The smallest close group a currency runs on: with `K` members and a
/// quorum of `K − 1`, `K − 3` members may vote twice without two
/// certificates for different spends; under 5 that is at most one.
pub const MIN_CURRENCY_GROUP: usize = 5;

/// Votes needed from a close group of `k` for a certificate: all of a group
/// of 1 or 2, else `k − 1`. Two certificates for different spends then
/// need at least `k − 2` members to have voted twice (3 of 5).
pub fn quorum(k: usize) -> usize {
    if k <= 2 { k } else { k - 1 }
}

/// The votes of one input's close group for one spend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// At most [`MAX_VOTES`], one per node.
    pub votes: Vec<Vote>,
}

impl Certificate {
    /// Whether at least `need` distinct members (by `is_member`, the
    /// checker's view of the K closest to `address`) voted for `hash`.
    pub fn check(
        &self,
        genesis: &Key,
        address: &XorName,
        hash: &SpendHash,
        need: usize,
        is_member: impl Fn(&Key) -> bool,
    ) -> Result<(), SpendError> {
        if self.votes.len() > MAX_VOTES {
            return Err(SpendError::Malformed("too many votes".into()));
        }
        let mut voters = BTreeSet::new();
        for v in &self.votes {
            if is_member(&v.node) && v.valid(genesis, address, hash) {
                voters.insert(v.node);
            }
        }
        if voters.len() >= need {
            Ok(())
        } else {
            Err(SpendError::NotEnoughVotes {
                have: voters.len(),
                need,
            })
        }
    }
}

/// A spend and a certificate for each of its inputs (in order): final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedSpend {
    /// The spend.
    pub spend: SignedSpend,
    /// `certs[i]` certifies the spend at input `i`'s spend address.
    pub certs: Vec<Certificate>,
}

impl CertifiedSpend {
    /// The spend is valid and certified at every input, each input's group
    /// as `group_of(address)` says (a membership test for that address).
    pub fn check<F: Fn(&Key) -> bool>(
        &self,
        need: usize,
        group_of: impl Fn(&XorName) -> F,
    ) -> Result<(), SpendError> {
        self.spend.verify()?;
        let spend = &self.spend.spend;
        if self.certs.len() != spend.inputs.len() {
            return Err(SpendError::Malformed("one certificate per input".into()));
        }
        let hash = spend.hash();
        for (input, cert) in spend.inputs.iter().zip(&self.certs) {
            let address = spend_address(&input.id(&spend.genesis));
            cert.check(&spend.genesis, &address, &hash, need, group_of(&address))?;
        }
        Ok(())
    }

    /// Encoded, behind [`COIN_FORMAT`].
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(COIN_FORMAT, self).unwrap_or_default()
    }

    /// Decoded from [`Self::encode`]'s bytes, at most [`MAX_CERTIFIED_SIZE`].
    pub fn decode(bytes: &[u8]) -> Result<Self, SpendError> {
        codec::decode(COIN_FORMAT, bytes, MAX_CERTIFIED_SIZE)
            .map_err(|e| SpendError::Malformed(e.to_string()))
    }
}

/// The parent of input `i` of `spend`, once the input is shown to be its
/// output (index, amount and owner as the parent made them) on the network
/// of `genesis`: `None` for the genesis output (its amount and key
/// checked). The parent's own certificate is not checked here (see
/// [`CertifiedSpend::check`]).
pub fn parent_of<'a>(
    spend: &Spend,
    i: usize,
    genesis: &Key,
    parents: &'a [CertifiedSpend],
) -> Result<Option<&'a CertifiedSpend>, SpendError> {
    if &spend.genesis != genesis {
        return Err(SpendError::WrongNetwork);
    }
    let input = spend
        .inputs
        .get(i)
        .ok_or_else(|| SpendError::Malformed(format!("no input {i}")))?;
    match input.parent {
        Parent::Genesis => {
            if input.amount != GENESIS_AMOUNT || &input.owner != genesis || input.index != 0 {
                return Err(SpendError::UnknownInput(i));
            }
            Ok(None)
        }
        Parent::Spend(h) => {
            let parent = parents
                .iter()
                .find(|p| p.spend.spend.hash() == h)
                .ok_or(SpendError::UnknownInput(i))?;
            let out = usize::try_from(input.index)
                .ok()
                .and_then(|x| parent.spend.spend.outputs.get(x))
                .ok_or(SpendError::UnknownInput(i))?;
            if out.amount != input.amount || out.owner != input.owner {
                return Err(SpendError::UnknownInput(i));
            }
            if parent.spend.spend.genesis != *genesis {
                return Err(SpendError::WrongNetwork);
            }
            Ok(Some(parent))
        }
    }
}

/// Checks that every input of `spend` exists ([`parent_of`]) and that each
/// parent is certified ([`CertifiedSpend::check`] with `need` and
/// `group_of`).
pub fn check_parents<F: Fn(&Key) -> bool>(
    spend: &Spend,
    genesis: &Key,
    parents: &[CertifiedSpend],
    need: usize,
    group_of: impl Fn(&XorName) -> F,
) -> Result<(), SpendError> {
    if parents.len() > MAX_INPUTS {
        return Err(SpendError::Malformed("more parents than inputs".into()));
    }
    let mut checked: Vec<SpendHash> = Vec::new();
    for i in 0..spend.inputs.len() {
        if let Some(parent) = parent_of(spend, i, genesis, parents)? {
            let h = parent.spend.spend.hash();
            if !checked.contains(&h) {
                parent
                    .check(need, &group_of)
                    .map_err(|e| SpendError::ParentNotCertified(i, e.to_string()))?;
                checked.push(h);
            }
        }
    }
    Ok(())
}

/// Parses an amount of coins ("1", "0.25", "1.000000001") into nanos, with
/// no floating point: at most 9 decimals, no sign, no overflow.
pub fn parse_amount(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not an amount of coins (e.g. 1, 0.5, 0.000000001)");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    if frac.len() > 9 {
        return Err(format!("{text}: at most 9 decimals (1 nano = 0.000000001)"));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: u64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(NANOS_PER_COIN)
        .and_then(|w| w.checked_add(frac))
        .filter(|&n| n <= TOTAL_SUPPLY)
        .ok_or_else(|| format!("{text} is more than all the coins there are"))
}

/// Nanos shown as coins, exactly ("1.5", "0.000000001").
pub fn format_amount(nanos: u64) -> String {
    let whole = nanos / NANOS_PER_COIN;
    let frac = nanos % NANOS_PER_COIN;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:09}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}
