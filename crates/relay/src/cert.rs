//! Relay keys and their certificates.
//!
//! A relay's X25519 key `B` is certified by its node's Ed25519 key, which
//! is also its libp2p peer id. A client checks a certificate against the
//! node key of the peer *it* chose, so a certificate may come second-hand
//! (in a sample, through a circuit): nobody but the node can sign one for
//! its peer id.
//!
//! ```text
//! signed bytes: "safe relay cert v1" ‖ postcard(CertBody)
//! RelayCert:    postcard { body: CertBody, sig: 64 bytes }   (≤ MAX_CERT_BYTES)
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// Certificate format version.
pub const CERT_VERSION: u8 = 1;
/// A relay key's period: a node has exactly one certificate per period,
/// numbered from the unix epoch, so two different ones for the same
/// period prove that the node is showing clients different keys.
pub const PERIOD: u64 = 7 * 24 * 3600;
/// How long a certificate stays valid after its period, while clients
/// still hold it.
pub const OVERLAP: u64 = 24 * 3600;
/// How far a peer's clock may be off when checking validity.
pub const CLOCK_SKEW: u64 = 600;
/// The largest encoded certificate accepted.
pub const MAX_CERT_BYTES: usize = 256;

const CERT_DOMAIN: &[u8] = b"safe relay cert v1";

/// Why a certificate was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    /// Not a certificate of this format.
    #[error("relay certificate does not decode (or is over {MAX_CERT_BYTES} bytes)")]
    Encoding,
    /// A version this code does not know.
    #[error("relay certificate version {0} is not supported")]
    Version(u8),
    /// Made for another network.
    #[error("relay certificate is for another network")]
    Network,
    /// Not the node that was asked for.
    #[error("relay certificate names another node")]
    Node,
    /// The node's signature does not verify.
    #[error("relay certificate signature does not verify")]
    Signature,
    /// Outside its period (and the overlap after it).
    #[error("relay certificate is expired or not yet valid")]
    Validity,
    /// A relay key that would make the handshake's secret predictable
    /// (a small-order point).
    #[error("relay certificate holds an unusable key")]
    Key,
    /// Randomness was not available to make a key.
    #[error("no randomness for a relay key: {0}")]
    Random(String),
}

/// What a certificate says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertBody {
    /// [`CERT_VERSION`].
    pub version: u8,
    /// The network it is valid on.
    pub network: [u8; 32],
    /// The node's Ed25519 public key (its peer id).
    pub node: [u8; 32],
    /// The relay's X25519 key `B`.
    pub key: [u8; 32],
    /// The period it is for: valid from `period · PERIOD` to
    /// `(period + 1) · PERIOD + OVERLAP` (unix seconds).
    pub period: u64,
    /// The operator family the node declares, if any.
    pub family: Option<[u8; 32]>,
}

/// A relay key certified by its node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayCert {
    /// What it certifies.
    pub body: CertBody,
    /// The node's signature over `"safe relay cert v1" ‖ postcard(body)`.
    pub sig: Vec<u8>,
}

fn signed_bytes(body: &CertBody) -> Vec<u8> {
    let mut out = CERT_DOMAIN.to_vec();
    // A plain struct of fixed-size fields: encoding cannot fail.
    out.extend(postcard::to_allocvec(body).unwrap_or_default());
    out
}

impl RelayCert {
    /// The 8 bytes a `CREATE` names the key by.
    pub fn key_id(&self) -> [u8; 8] {
        key_id(&self.body.key)
    }

    /// Checks that this certifies a relay key of `node` on `network` at
    /// time `now` (unix seconds).
    pub fn verify(&self, node: &[u8; 32], network: &[u8; 32], now: u64) -> Result<(), CertError> {
        let b = &self.body;
        if b.version != CERT_VERSION {
            return Err(CertError::Version(b.version));
        }
        if &b.network != network {
            return Err(CertError::Network);
        }
        if &b.node != node {
            return Err(CertError::Node);
        }
        let from = b.period.saturating_mul(PERIOD);
        let until = from.saturating_add(PERIOD + OVERLAP);
        if now.saturating_add(CLOCK_SKEW) < from || now > until.saturating_add(CLOCK_SKEW) {
            return Err(CertError::Validity);
        }
        if !usable_key(&b.key) {
            return Err(CertError::Key);
        }
        self.verify_signature()
    }

    /// Checks the node's signature alone (no time, network or key checks).
    pub fn verify_signature(&self) -> Result<(), CertError> {
        let key = VerifyingKey::from_bytes(&self.body.node).map_err(|_| CertError::Signature)?;
        let sig = Signature::from_slice(&self.sig).map_err(|_| CertError::Signature)?;
        key.verify_strict(&signed_bytes(&self.body), &sig)
            .map_err(|_| CertError::Signature)
    }

    /// True if `other` is a different certificate of the same node for the
    /// same period, both signed by the node: proof that it hands different
    /// relay keys to different clients, to recognise them.
    pub fn conflicts(&self, other: &RelayCert) -> bool {
        self.body.node == other.body.node
            && self.body.network == other.body.network
            && self.body.period == other.body.period
            && self.body != other.body
            && self.verify_signature().is_ok()
            && other.verify_signature().is_ok()
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a certificate (not yet verified). Only the canonical
    /// encoding is taken, so one certificate has one byte string, and two
    /// sources can be compared byte for byte.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CertError> {
        if bytes.len() > MAX_CERT_BYTES {
            return Err(CertError::Encoding);
        }
        match postcard::take_from_bytes::<Self>(bytes) {
            Ok((cert, [])) if cert.to_bytes() == bytes => Ok(cert),
            _ => Err(CertError::Encoding),
        }
    }
}

/// Whether `key` is a point an X25519 exchange with it is contributory
/// for (not of small order).
fn usable_key(key: &[u8; 32]) -> bool {
    let probe = StaticSecret::from([0x5a; 32]);
    probe
        .diffie_hellman(&PublicKey::from(*key))
        .was_contributory()
}

/// Whether a certificate was valid at `now` (its period and the overlap).
pub(crate) fn current(cert: &RelayCert, now: u64) -> bool {
    let from = cert.body.period.saturating_mul(PERIOD);
    let until = from.saturating_add(PERIOD + OVERLAP);
    now.saturating_add(CLOCK_SKEW) >= from && now <= until.saturating_add(CLOCK_SKEW)
}

pub(crate) fn key_id(key: &[u8; 32]) -> [u8; 8] {
    let mut id = [0u8; 8];
    id.copy_from_slice(&blake3::hash(key).as_bytes()[..8]);
    id
}

/// A relay's secret key `b` with its certificate.
#[derive(Clone)]
pub struct RelaySecret {
    pub(crate) secret: StaticSecret,
    /// The certificate of `B = b·G`.
    pub cert: RelayCert,
}

impl std::fmt::Debug for RelaySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySecret")
            .field("cert", &self.cert)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u8,
    secret: [u8; 32],
    cert: RelayCert,
}

impl RelaySecret {
    /// A new relay key for `node` on `network`, for the period holding
    /// `now` (unix seconds). A node makes one per period and keeps it.
    pub fn generate(
        node: &SigningKey,
        network: [u8; 32],
        now: u64,
        family: Option<[u8; 32]>,
    ) -> Result<Self, CertError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| CertError::Random(e.to_string()))?;
        Ok(Self::from_secret(
            node,
            network,
            now / PERIOD,
            family,
            StaticSecret::from(*seed),
        ))
    }

    fn from_secret(
        node: &SigningKey,
        network: [u8; 32],
        period: u64,
        family: Option<[u8; 32]>,
        secret: StaticSecret,
    ) -> Self {
        let body = CertBody {
            version: CERT_VERSION,
            network,
            node: node.verifying_key().to_bytes(),
            key: PublicKey::from(&secret).to_bytes(),
            period,
            family,
        };
        let sig = node.sign(&signed_bytes(&body)).to_bytes().to_vec();
        Self {
            secret,
            cert: RelayCert { body, sig },
        }
    }

    /// The encoding kept in a node's directory (secret included).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut stored = Stored {
            version: CERT_VERSION,
            secret: self.secret.to_bytes(),
            cert: self.cert.clone(),
        };
        let bytes = Zeroizing::new(postcard::to_allocvec(&stored).unwrap_or_default());
        stored.secret.zeroize();
        bytes
    }

    /// Reads what [`RelaySecret::to_bytes`] wrote, and checks that the
    /// certificate is of this secret's key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CertError> {
        let mut stored: Stored = postcard::from_bytes(bytes).map_err(|_| CertError::Encoding)?;
        if stored.version != CERT_VERSION {
            stored.secret.zeroize();
            return Err(CertError::Version(stored.version));
        }
        let secret = StaticSecret::from(stored.secret);
        stored.secret.zeroize();
        if PublicKey::from(&secret).to_bytes() != stored.cert.body.key {
            return Err(CertError::Encoding);
        }
        Ok(Self {
            secret,
            cert: stored.cert,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: [u8; 32] = [7; 32];

    #[test]
    fn a_certificate_verifies_for_its_node_only() {
        let node = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let now = 3000 * PERIOD + 1000;
        let s = RelaySecret::generate(&node, NET, now, None).unwrap();
        let me = node.verifying_key().to_bytes();
        assert_eq!(s.cert.verify(&me, &NET, now), Ok(()));
        let them = other.verifying_key().to_bytes();
        assert_eq!(s.cert.verify(&them, &NET, now), Err(CertError::Node));
        assert_eq!(s.cert.verify(&me, &[8; 32], now), Err(CertError::Network));
        // Valid through its period and the overlap, not after.
        let end = 3001 * PERIOD + OVERLAP + CLOCK_SKEW;
        assert_eq!(s.cert.verify(&me, &NET, end), Ok(()));
        assert_eq!(s.cert.verify(&me, &NET, end + 1), Err(CertError::Validity));
        assert_eq!(
            s.cert.verify(&me, &NET, 3000 * PERIOD - CLOCK_SKEW - 1),
            Err(CertError::Validity)
        );
    }

    #[test]
    fn two_keys_for_one_period_are_proof_of_cheating() {
        let node = SigningKey::from_bytes(&[1; 32]);
        let now = 3000 * PERIOD;
        let a = RelaySecret::generate(&node, NET, now, None).unwrap();
        let b = RelaySecret::generate(&node, NET, now + 10, None).unwrap();
        assert!(a.cert.conflicts(&b.cert));
        assert!(!a.cert.conflicts(&a.cert.clone()));
        // The next period's key is a rotation, not a conflict.
        let next = RelaySecret::generate(&node, NET, now + PERIOD, None).unwrap();
        assert!(!a.cert.conflicts(&next.cert));
        let other =
            RelaySecret::generate(&SigningKey::from_bytes(&[2; 32]), NET, now, None).unwrap();
        assert!(!a.cert.conflicts(&other.cert));
    }

    #[test]
    fn a_substituted_key_or_a_foreign_signature_fails() {
        let node = SigningKey::from_bytes(&[1; 32]);
        let me = node.verifying_key().to_bytes();
        let s = RelaySecret::generate(&node, NET, 1000, None).unwrap();
        // A relay on the path swaps in its own key, keeping the signature.
        let mut swapped = s.cert.clone();
        swapped.body.key = [9; 32];
        assert_eq!(swapped.verify(&me, &NET, 1000), Err(CertError::Signature));
        // Or signs a certificate for the victim's node with its own key.
        let mallory = SigningKey::from_bytes(&[3; 32]);
        let mut forged = swapped.clone();
        forged.sig = mallory
            .sign(&signed_bytes(&forged.body))
            .to_bytes()
            .to_vec();
        assert_eq!(forged.verify(&me, &NET, 1000), Err(CertError::Signature));
    }

    #[test]
    fn a_small_order_key_is_refused_even_when_signed() {
        let node = SigningKey::from_bytes(&[1; 32]);
        let me = node.verifying_key().to_bytes();
        let mut s = RelaySecret::generate(&node, NET, 1000, None).unwrap();
        s.cert.body.key = [0; 32];
        s.cert.sig = node.sign(&signed_bytes(&s.cert.body)).to_bytes().to_vec();
        assert_eq!(s.cert.verify(&me, &NET, 1000), Err(CertError::Key));
    }

    #[test]
    fn encodings_round_trip_and_bad_ones_are_refused() {
        let node = SigningKey::from_bytes(&[1; 32]);
        let s = RelaySecret::generate(&node, NET, 1000, Some([4; 32])).unwrap();
        let bytes = s.cert.to_bytes();
        assert!(bytes.len() <= MAX_CERT_BYTES);
        assert_eq!(RelayCert::from_bytes(&bytes), Ok(s.cert.clone()));
        assert_eq!(
            RelayCert::from_bytes(&bytes[..bytes.len() - 1]),
            Err(CertError::Encoding)
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(RelayCert::from_bytes(&long), Err(CertError::Encoding));
        // An overlong varint for the period (0x80 0x00 is a second
        // encoding of 0... here of the period's low byte): not canonical.
        let mut cert = s.cert.clone();
        cert.body.period = 5;
        let canonical = cert.to_bytes();
        // The period follows version (1), network, node and key (32 each).
        let at = 1 + 32 + 32 + 32;
        assert_eq!(canonical[at], 5);
        let mut overlong = canonical[..at].to_vec();
        overlong.extend([0x85, 0x00]);
        overlong.extend(&canonical[at + 1..]);
        assert_eq!(
            postcard::from_bytes::<RelayCert>(&overlong).map(|c| c.body.period),
            Ok(5)
        );
        assert_eq!(RelayCert::from_bytes(&overlong), Err(CertError::Encoding));
        let again = RelaySecret::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(again.cert, s.cert);
        assert_eq!(again.secret.to_bytes(), s.secret.to_bytes());
        // A stored secret whose certificate is of another key is refused.
        let other = RelaySecret::generate(&node, NET, 1000, None).unwrap();
        let mut mixed: Stored = postcard::from_bytes(&s.to_bytes()).unwrap();
        mixed.cert = other.cert;
        let mixed = postcard::to_allocvec(&mixed).unwrap();
        assert!(RelaySecret::from_bytes(&mixed).is_err());
    }
}
