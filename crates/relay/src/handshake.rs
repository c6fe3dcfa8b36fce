//! The circuit handshake, one per hop (ntor-like).
//!
//! The client knows the hop's node key `ID` and certified relay key `B`
//! ([`RelayCert`]). It sends `CREATE`, the hop answers `CREATED`:
//!
//! ```text
//! CREATE  (41 bytes): version u8 (1) ‖ key id (8: BLAKE3(B)[..8]) ‖ X = x·G (32)
//! CREATED (64 bytes): Y = y·G (32) ‖ auth (32)
//!
//! secret = x·Y ‖ x·B          (the hop: y·X ‖ b·X; both must be contributory)
//! seed   = BLAKE3-derive-key("safe relay v1 handshake",
//!                            version ‖ secret ‖ network ‖ ID ‖ B ‖ X ‖ Y)
//! auth   = BLAKE3-keyed(derive-key("safe relay v1 auth", seed),
//!                       "server" ‖ ID ‖ B ‖ X ‖ Y)
//! ```
//!
//! Only the holder of `b` can compute `x·B`, so a good `auth` shows the
//! client that it shares the keys with the certified hop and nobody else;
//! `x·Y` gives forward secrecy once `b` is replaced. The traffic keys
//! ([`HopKeys`]) come from `seed` under their own contexts.

use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

use crate::cert::{CertError, RelayCert, RelaySecret, key_id};
use crate::keys::HopKeys;

/// Handshake format version.
pub const HANDSHAKE_VERSION: u8 = 1;
/// Bytes of a `CREATE`.
pub const CREATE_LEN: usize = 41;
/// Bytes of a `CREATED`.
pub const CREATED_LEN: usize = 64;

/// Why a handshake failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    /// The hop's certificate did not verify.
    #[error("the hop's relay certificate: {0}")]
    Cert(#[from] CertError),
    /// Not a `CREATE` or `CREATED` of this version and size.
    #[error("malformed handshake message")]
    Malformed,
    /// The `CREATE` names a relay key this hop does not hold.
    #[error("the handshake names a relay key this node does not hold")]
    UnknownKey,
    /// A peer sent a point that makes the shared secret predictable.
    #[error("the handshake's shared secret is not contributory")]
    NotContributory,
    /// The hop did not prove that it holds the certified key.
    #[error("the hop failed to authenticate")]
    BadAuth,
}

/// The client's side of a handshake in progress.
pub struct ClientHandshake {
    x: StaticSecret,
    big_x: [u8; 32],
    node: [u8; 32],
    key: [u8; 32],
    network: [u8; 32],
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientHandshake(…)")
    }
}

fn random_secret() -> Result<StaticSecret, CertError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| CertError::Random(e.to_string()))?;
    Ok(StaticSecret::from(*seed))
}

fn contributory(s: &SharedSecret) -> Result<(), HandshakeError> {
    if s.was_contributory() {
        Ok(())
    } else {
        Err(HandshakeError::NotContributory)
    }
}

struct Transcript<'a> {
    network: &'a [u8; 32],
    node: &'a [u8; 32],
    key: &'a [u8; 32],
    big_x: &'a [u8; 32],
    big_y: &'a [u8; 32],
}

impl Transcript<'_> {
    /// The traffic keys and the expected `auth`.
    fn derive(&self, first: &SharedSecret, second: &SharedSecret) -> (HopKeys, [u8; 32]) {
        let seed = Zeroizing::new(
            *blake3::Hasher::new_derive_key("safe relay v1 handshake")
                .update(&[HANDSHAKE_VERSION])
                .update(first.as_bytes())
                .update(second.as_bytes())
                .update(self.network)
                .update(self.node)
                .update(self.key)
                .update(self.big_x)
                .update(self.big_y)
                .finalize()
                .as_bytes(),
        );
        let auth_key = Zeroizing::new(blake3::derive_key("safe relay v1 auth", seed.as_slice()));
        let auth = blake3::Hasher::new_keyed(&auth_key)
            .update(b"server")
            .update(self.node)
            .update(self.key)
            .update(self.big_x)
            .update(self.big_y)
            .finalize();
        (HopKeys::from_seed(&seed), *auth.as_bytes())
    }
}

/// Starts a handshake with the hop whose node key is `node` (the peer id
/// the client chose), after checking its certificate. Returns the state to
/// finish with and the `CREATE` to send.
pub fn start(
    cert: &RelayCert,
    node: &[u8; 32],
    network: &[u8; 32],
    now: u64,
) -> Result<(ClientHandshake, [u8; CREATE_LEN]), HandshakeError> {
    cert.verify(node, network, now)?;
    let x = random_secret()?;
    let big_x = PublicKey::from(&x).to_bytes();
    let mut create = [0u8; CREATE_LEN];
    create[0] = HANDSHAKE_VERSION;
    create[1..9].copy_from_slice(&cert.key_id());
    create[9..].copy_from_slice(&big_x);
    let state = ClientHandshake {
        x,
        big_x,
        node: *node,
        key: cert.body.key,
        network: *network,
    };
    Ok((state, create))
}

impl ClientHandshake {
    /// Checks the hop's `CREATED` and returns the keys shared with it.
    pub fn finish(self, created: &[u8]) -> Result<HopKeys, HandshakeError> {
        if created.len() != CREATED_LEN {
            return Err(HandshakeError::Malformed);
        }
        let mut big_y = [0u8; 32];
        big_y.copy_from_slice(&created[..32]);
        let xy = self.x.diffie_hellman(&PublicKey::from(big_y));
        let xb = self.x.diffie_hellman(&PublicKey::from(self.key));
        contributory(&xy)?;
        contributory(&xb)?;
        let t = Transcript {
            network: &self.network,
            node: &self.node,
            key: &self.key,
            big_x: &self.big_x,
            big_y: &big_y,
        };
        let (keys, auth) = t.derive(&xy, &xb);
        // blake3::Hash compares in constant time.
        if blake3::Hash::from_bytes(auth)
            != blake3::Hash::from_slice(&created[32..]).map_err(|_| HandshakeError::Malformed)?
        {
            return Err(HandshakeError::BadAuth);
        }
        Ok(keys)
    }
}

/// A hop's answer to `create`, with `secrets` the relay keys it holds (the
/// current one and, for a day after a rotation, the previous one); a key
/// no longer valid at `now` is not used, for forward secrecy.
pub fn respond(
    secrets: &[RelaySecret],
    network: &[u8; 32],
    create: &[u8],
    now: u64,
) -> Result<([u8; CREATED_LEN], HopKeys), HandshakeError> {
    if create.len() != CREATE_LEN || create[0] != HANDSHAKE_VERSION {
        return Err(HandshakeError::Malformed);
    }
    let mine = secrets
        .iter()
        .filter(|s| crate::cert::current(&s.cert, now))
        .find(|s| key_id(&s.cert.body.key) == create[1..9])
        .ok_or(HandshakeError::UnknownKey)?;
    let mut big_x = [0u8; 32];
    big_x.copy_from_slice(&create[9..]);
    let y = random_secret()?;
    let big_y = PublicKey::from(&y).to_bytes();
    let yx = y.diffie_hellman(&PublicKey::from(big_x));
    let bx = mine.secret.diffie_hellman(&PublicKey::from(big_x));
    contributory(&yx)?;
    contributory(&bx)?;
    let t = Transcript {
        network,
        node: &mine.cert.body.node,
        key: &mine.cert.body.key,
        big_x: &big_x,
        big_y: &big_y,
    };
    let (keys, auth) = t.derive(&yx, &bx);
    let mut created = [0u8; CREATED_LEN];
    created[..32].copy_from_slice(&big_y);
    created[32..].copy_from_slice(&auth);
    Ok((created, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    const NET: [u8; 32] = [7; 32];

    fn relay(seed: u8) -> (SigningKey, RelaySecret) {
        let node = SigningKey::from_bytes(&[seed; 32]);
        let secret = RelaySecret::generate(&node, NET, 1000, None).unwrap();
        (node, secret)
    }

    #[test]
    fn both_sides_get_the_same_keys() {
        let (node, secret) = relay(1);
        let id = node.verifying_key().to_bytes();
        let (hs, create) = start(&secret.cert, &id, &NET, 1000).unwrap();
        let (created, relay_keys) = respond(&[secret], &NET, &create, 1000).unwrap();
        let client_keys = hs.finish(&created).unwrap();
        let all = |k: &HopKeys| {
            [
                k.fwd_enc, k.fwd_mac, k.fwd_rec, k.fwd_fill, k.bwd_enc, k.bwd_mac, k.bwd_rec,
            ]
        };
        assert_eq!(all(&client_keys), all(&relay_keys));
        // Seven different keys, one per purpose.
        let keys = all(&client_keys);
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i], keys[j], "keys {i} and {j}");
            }
        }
    }

    #[test]
    fn a_hop_without_the_certified_key_cannot_authenticate() {
        let (node, secret) = relay(1);
        let id = node.verifying_key().to_bytes();
        let (hs, create) = start(&secret.cert, &id, &NET, 1000).unwrap();
        // A relay in the middle answers with its own key under the same id.
        let (_, mut mallory) = relay(2);
        mallory.cert = secret.cert.clone();
        let (created, _) = respond(&[mallory], &NET, &create, 1000).unwrap();
        assert_eq!(hs.finish(&created).unwrap_err(), HandshakeError::BadAuth);
    }

    #[test]
    fn tampered_or_degenerate_messages_are_refused() {
        let (node, secret) = relay(1);
        let id = node.verifying_key().to_bytes();
        let (hs, create) = start(&secret.cert, &id, &NET, 1000).unwrap();
        let (mut created, _) = respond(std::slice::from_ref(&secret), &NET, &create, 1000).unwrap();
        created[40] ^= 1;
        assert_eq!(hs.finish(&created).unwrap_err(), HandshakeError::BadAuth);
        // A zero X (a small-order point) is refused by the hop.
        let mut zero = create;
        zero[9..].fill(0);
        assert_eq!(
            respond(std::slice::from_ref(&secret), &NET, &zero, 1000).unwrap_err(),
            HandshakeError::NotContributory
        );
        // A zero Y is refused by the client.
        let (hs, create) = start(&secret.cert, &id, &NET, 1000).unwrap();
        let _ = create;
        assert_eq!(
            hs.finish(&[0; CREATED_LEN]).unwrap_err(),
            HandshakeError::NotContributory
        );
        // Wrong sizes, versions and keys.
        assert_eq!(
            respond(std::slice::from_ref(&secret), &NET, &create[..40], 1000).unwrap_err(),
            HandshakeError::Malformed
        );
        let mut v2 = create;
        v2[0] = 2;
        assert_eq!(
            respond(std::slice::from_ref(&secret), &NET, &v2, 1000).unwrap_err(),
            HandshakeError::Malformed
        );
        // An expired key is not used.
        assert_eq!(
            respond(
                std::slice::from_ref(&secret),
                &NET,
                &create,
                100 * crate::cert::PERIOD
            )
            .unwrap_err(),
            HandshakeError::UnknownKey
        );
        let (_, other) = relay(3);
        assert_eq!(
            respond(&[other], &NET, &create, 1000).unwrap_err(),
            HandshakeError::UnknownKey
        );
        // A certificate for another node is refused before anything is sent.
        let (other_node, _) = relay(4);
        let err = start(
            &secret.cert,
            &other_node.verifying_key().to_bytes(),
            &NET,
            1000,
        )
        .unwrap_err();
        assert_eq!(err, HandshakeError::Cert(CertError::Node));
    }
}
