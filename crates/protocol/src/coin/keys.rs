//! Wallet keys and one-time output keys (`docs/DESIGN-currency.md`).
//!
//! A wallet has a view secret `v` and a spend secret `s`; its public
//! address is `(V, S) = (v·G, s·G)`. A payer picks a fresh `r` per output
//! and pays the one-time key `P = H(8·r·V ‖ R)·G + S` with `R = r·G` in
//! the output. Only the holder of `v` finds which outputs are its own
//! (`8·v·R` is the same point), and only the holder of `s` can sign for
//! them (`p = H(…) + s`). Nobody else can link `P` to `(V, S)`.

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::fmt;
use std::str::FromStr;

use super::{Key, Output};

/// A scalar from `data` under `domain`: 64 bytes of blake3 output reduced
/// mod the group order (a wide reduction, so no bias).
fn hash_scalar(domain: &str, parts: &[&[u8]]) -> Scalar {
    let mut hasher = blake3::Hasher::new_derive_key(domain);
    for p in parts {
        hasher.update(p);
    }
    let mut wide = [0u8; 64];
    hasher.finalize_xof().fill(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A point from 32 bytes, refused if not canonical, not on the curve or of
/// small order (an owner or address key must be none of these).
pub(crate) fn point(bytes: &Key) -> Option<EdwardsPoint> {
    let key = VerifyingKey::from_bytes(bytes).ok()?;
    if key.is_weak() {
        return None;
    }
    let p = CompressedEdwardsY(*bytes).decompress()?;
    // Canonical encodings only: re-compressing gives the same bytes.
    (p.compress().to_bytes() == *bytes).then_some(p)
}

/// A wallet's public address: where others send coins. Printed as
/// `safe://w…` with a checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct WalletAddress {
    /// `V`: lets its holder find the wallet's outputs.
    pub view: Key,
    /// `S`: the base of every one-time key paid to the wallet.
    pub spend: Key,
}

/// First byte of an encoded wallet address: base32 `w`, version 0.
const ADDRESS_TAG: u8 = 22 << 3;
/// Bytes of checksum at the end of an encoded wallet address.
const CHECKSUM_LEN: usize = 4;

/// Why text is not a wallet address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalletAddressError {
    /// Not `safe://w…` of the right length in base32.
    #[error("not a wallet address (expected safe://w… as `safe wallet address` prints it)")]
    Malformed,
    /// The checksum does not match: a typo.
    #[error("the wallet address has a typo (its checksum does not match)")]
    Checksum,
    /// A key in it is not a usable curve point.
    #[error("the wallet address holds an invalid key")]
    BadKey,
}

impl WalletAddress {
    fn checksum(&self) -> [u8; CHECKSUM_LEN] {
        let mut h = blake3::Hasher::new_derive_key("safe wallet address checksum v1");
        h.update(&self.view);
        h.update(&self.spend);
        let mut out = [0u8; CHECKSUM_LEN];
        out.copy_from_slice(&h.finalize().as_bytes()[..CHECKSUM_LEN]);
        out
    }

    /// A new output of `amount` to this address, with a fresh one-time key.
    /// `None` if the address's keys are not valid points.
    pub fn pay(&self, amount: u64) -> Option<Output> {
        let mut seed = [0u8; 64];
        getrandom::fill(&mut seed).ok()?;
        let r = Scalar::from_bytes_mod_order_wide(&seed);
        self.pay_with(amount, r)
    }

    /// A new output of `amount` to this address and the secret `r` it was
    /// made with, which lets whoever is given it check (with
    /// [`Self::paid_with`]) that the output pays this address, and learn
    /// nothing else.
    pub fn pay_revealing(&self, amount: u64) -> Option<(Output, [u8; 32])> {
        let mut seed = [0u8; 64];
        getrandom::fill(&mut seed).ok()?;
        let r = Scalar::from_bytes_mod_order_wide(&seed);
        Some((self.pay_with(amount, r)?, r.to_bytes()))
    }

    /// Whether `output` was made by paying this address with the secret
    /// `r` (see [`Self::pay_revealing`]).
    pub fn paid_with(&self, output: &Output, r: &[u8; 32]) -> bool {
        let Some(r) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*r)) else {
            return false;
        };
        r != Scalar::ZERO
            && self
                .pay_with(output.amount, r)
                .is_some_and(|o| o.owner == output.owner && o.ephemeral == output.ephemeral)
    }

    /// A key shared with this address's holder, and the public value `R`
    /// that lets the holder alone (by its view key, [`WalletKeys::shared`])
    /// derive the same key: for sealing a notice to the wallet. A fresh
    /// `R` each time. `None` if the address's view key is not a valid
    /// point.
    pub fn share(&self) -> Option<([u8; 32], Key)> {
        let view = point(&self.view)?;
        let mut seed = [0u8; 64];
        getrandom::fill(&mut seed).ok()?;
        let r = Scalar::from_bytes_mod_order_wide(&seed);
        let public = (&r * ED25519_BASEPOINT_TABLE).compress().to_bytes();
        let shared = (r * view).mul_by_cofactor().compress().to_bytes();
        Some((notice_key(&shared, &public, &self.view), public))
    }

    fn pay_with(&self, amount: u64, r: Scalar) -> Option<Output> {
        let view = point(&self.view)?;
        let spend = point(&self.spend)?;
        let ephemeral = (&r * ED25519_BASEPOINT_TABLE).compress().to_bytes();
        let shared = (r * view).mul_by_cofactor().compress().to_bytes();
        let h = hash_scalar("safe coin one-time key v1", &[&shared, &ephemeral]);
        let owner = (&h * ED25519_BASEPOINT_TABLE + spend).compress().to_bytes();
        Some(Output {
            amount,
            owner,
            ephemeral,
        })
    }
}

impl fmt::Display for WalletAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(1 + 64 + CHECKSUM_LEN);
        raw.push(ADDRESS_TAG);
        raw.extend_from_slice(&self.view);
        raw.extend_from_slice(&self.spend);
        raw.extend_from_slice(&self.checksum());
        let mut text = data_encoding::BASE32_NOPAD.encode(&raw);
        text.make_ascii_lowercase();
        write!(f, "{}{text}", crate::address::SCHEME)
    }
}

impl FromStr for WalletAddress {
    type Err = WalletAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = crate::address::strip_scheme(s).map_err(|_| WalletAddressError::Malformed)?;
        let raw = data_encoding::BASE32_NOPAD
            .decode(rest.to_ascii_uppercase().as_bytes())
            .map_err(|_| WalletAddressError::Malformed)?;
        if raw.len() != 1 + 64 + CHECKSUM_LEN || raw[0] != ADDRESS_TAG {
            return Err(WalletAddressError::Malformed);
        }
        let mut view = [0u8; 32];
        let mut spend = [0u8; 32];
        view.copy_from_slice(&raw[1..33]);
        spend.copy_from_slice(&raw[33..65]);
        let address = WalletAddress { view, spend };
        if raw[65..] != address.checksum() {
            return Err(WalletAddressError::Checksum);
        }
        if point(&view).is_none() || point(&spend).is_none() {
            return Err(WalletAddressError::BadKey);
        }
        Ok(address)
    }
}

/// The key of a notice from the shared point, `R` and the view key.
fn notice_key(shared: &[u8; 32], public: &Key, view: &Key) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("safe wallet notice key v1");
    h.update(shared);
    h.update(public);
    h.update(view);
    *h.finalize().as_bytes()
}

/// A wallet's secrets, derived from a 32-byte secret (the account's).
pub struct WalletKeys {
    view: Scalar,
    spend: Scalar,
}

impl fmt::Debug for WalletKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletKeys").finish_non_exhaustive()
    }
}

impl WalletKeys {
    /// The wallet keys of `secret`: the same secret gives the same wallet
    /// on every machine.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            view: hash_scalar("safe wallet view key v1", &[secret]),
            spend: hash_scalar("safe wallet spend key v1", &[secret]),
        }
    }

    /// The public address.
    pub fn address(&self) -> WalletAddress {
        WalletAddress {
            view: (&self.view * ED25519_BASEPOINT_TABLE).compress().to_bytes(),
            spend: (&self.spend * ED25519_BASEPOINT_TABLE)
                .compress()
                .to_bytes(),
        }
    }

    /// The key [`WalletAddress::share`] made with `public` for this
    /// wallet; `None` if `public` is not a valid point.
    pub fn shared(&self, public: &Key) -> Option<[u8; 32]> {
        let p = point(public)?;
        let shared = (self.view * p).mul_by_cofactor().compress().to_bytes();
        Some(notice_key(&shared, public, &self.address().view))
    }

    /// The secret of `output`'s one-time key if the output pays this
    /// wallet, else `None`.
    pub fn owns(&self, output: &Output) -> Option<OneTimeKey> {
        let ephemeral = point(&output.ephemeral)?;
        let shared = (self.view * ephemeral)
            .mul_by_cofactor()
            .compress()
            .to_bytes();
        let h = hash_scalar("safe coin one-time key v1", &[&shared, &output.ephemeral]);
        let secret = h + self.spend;
        let public = (&secret * ED25519_BASEPOINT_TABLE).compress().to_bytes();
        (public == output.owner).then(|| OneTimeKey::from_scalar(secret))
    }
}

/// The secret key of one output: signs the spend that consumes it.
pub struct OneTimeKey {
    expanded: ExpandedSecretKey,
    public: VerifyingKey,
}

impl fmt::Debug for OneTimeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl OneTimeKey {
    fn from_scalar(scalar: Scalar) -> Self {
        // The nonce prefix is derived from the scalar itself, so two keys
        // never share one (two inputs of one spend signing the same message
        // with one prefix and different scalars would give away both).
        let hash_prefix = blake3::derive_key("safe coin nonce prefix v1", scalar.as_bytes());
        let expanded = ExpandedSecretKey {
            scalar,
            hash_prefix,
        };
        let public = VerifyingKey::from(&expanded);
        Self { expanded, public }
    }

    /// An ordinary ed25519 key used as a one-time key (the genesis key).
    pub fn from_signing_key(key: &SigningKey) -> Self {
        Self {
            expanded: ExpandedSecretKey::from(&key.to_bytes()),
            public: key.verifying_key(),
        }
    }

    /// The public key (the output's `owner`).
    pub fn public(&self) -> Key {
        self.public.to_bytes()
    }

    /// An ed25519 signature over `message`, verifiable with [`Self::public`].
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        raw_sign::<sha2::Sha512>(&self.expanded, message, &self.public).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wallet_finds_and_can_sign_for_what_is_paid_to_it_and_nothing_else() {
        let alice = WalletKeys::from_secret(&[1; 32]);
        let bob = WalletKeys::from_secret(&[2; 32]);
        let out = alice.address().pay(5).unwrap();
        let key = alice.owns(&out).expect("alice finds her output");
        assert_eq!(key.public(), out.owner);
        assert!(bob.owns(&out).is_none());
        let sig = key.sign(b"message");
        let vk = VerifyingKey::from_bytes(&out.owner).unwrap();
        vk.verify_strict(b"message", &ed25519_dalek::Signature::from_bytes(&sig))
            .unwrap();
        // Two payments to one address share no key.
        let again = alice.address().pay(5).unwrap();
        assert_ne!(again.owner, out.owner);
        assert_ne!(again.ephemeral, out.ephemeral);
    }

    #[test]
    fn only_the_wallet_derives_a_notice_key_shared_with_its_address() {
        let alice = WalletKeys::from_secret(&[4; 32]);
        let bob = WalletKeys::from_secret(&[5; 32]);
        let (key, public) = alice.address().share().unwrap();
        assert_eq!(alice.shared(&public), Some(key));
        assert_ne!(bob.shared(&public), Some(key));
        let (again, public2) = alice.address().share().unwrap();
        assert_ne!((again, public2), (key, public), "fresh each time");
        assert_eq!(alice.shared(&[0; 32]), None, "not a usable point");
    }

    #[test]
    fn two_one_time_keys_sign_one_message_with_different_nonces() {
        let w = WalletKeys::from_secret(&[3; 32]);
        let a = w.owns(&w.address().pay(1).unwrap()).unwrap();
        let b = w.owns(&w.address().pay(1).unwrap()).unwrap();
        let (sa, sb) = (a.sign(b"one spend"), b.sign(b"one spend"));
        assert_ne!(sa[..32], sb[..32], "R differs");
    }

    #[test]
    fn addresses_round_trip_and_typos_are_caught() {
        let a = WalletKeys::from_secret(&[4; 32]).address();
        let text = a.to_string();
        assert!(text.starts_with("safe://w"), "{text}");
        assert_eq!(text.parse::<WalletAddress>().unwrap(), a);
        assert_eq!(text.to_uppercase().parse::<WalletAddress>().unwrap(), a);
        // One character changed: the checksum catches it.
        let mut typo: Vec<char> = text.chars().collect();
        let i = 20;
        typo[i] = if typo[i] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        assert!(typo.parse::<WalletAddress>().is_err());
        assert_eq!(
            "safe://fabc".parse::<WalletAddress>(),
            Err(WalletAddressError::Malformed)
        );
    }

    #[test]
    fn small_order_and_non_canonical_points_are_refused() {
        // The identity point, and an encoding with y ≥ p.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(point(&identity).is_none());
        assert!(point(&[0xff; 32]).is_none());
        let good = WalletKeys::from_secret(&[5; 32]).address();
        assert!(point(&good.view).is_some());
    }
}
