//! The keys one hop of a circuit shares with the client, and the keyed
//! primitives built on them.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroize;

/// Bytes of a MAC tag or a recognition marker.
pub(crate) const TAG: usize = 16;

/// The keys a client and one hop derive from their handshake. Each key has
/// one purpose, so no (key, nonce) pair is used twice: every use takes the
/// cell counter of its direction as the nonce, and counters only grow.
///
/// Not `Clone`: two circuit states from one set of keys would reuse
/// keystreams. (Tests and fuzzing make their own with
/// [`HopKeys::from_seed`].)
pub struct HopKeys {
    pub(crate) fwd_enc: [u8; 32],
    pub(crate) fwd_mac: [u8; 32],
    pub(crate) fwd_rec: [u8; 32],
    pub(crate) fwd_fill: [u8; 32],
    pub(crate) bwd_enc: [u8; 32],
    pub(crate) bwd_mac: [u8; 32],
    pub(crate) bwd_rec: [u8; 32],
}

impl Drop for HopKeys {
    fn drop(&mut self) {
        for k in [
            &mut self.fwd_enc,
            &mut self.fwd_mac,
            &mut self.fwd_rec,
            &mut self.fwd_fill,
            &mut self.bwd_enc,
            &mut self.bwd_mac,
            &mut self.bwd_rec,
        ] {
            k.zeroize();
        }
    }
}

impl std::fmt::Debug for HopKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HopKeys(…)")
    }
}

impl HopKeys {
    /// Every key, from the handshake's seed, each under its own context.
    /// Public for tests and fuzzing; real keys come from a handshake.
    #[doc(hidden)]
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let k = |context: &str| blake3::derive_key(context, seed);
        Self {
            fwd_enc: k("safe relay v1 forward encryption"),
            fwd_mac: k("safe relay v1 forward mac"),
            fwd_rec: k("safe relay v1 forward recognition"),
            fwd_fill: k("safe relay v1 forward filler"),
            bwd_enc: k("safe relay v1 backward encryption"),
            bwd_mac: k("safe relay v1 backward mac"),
            bwd_rec: k("safe relay v1 backward recognition"),
        }
    }
}

fn nonce(n: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&n.to_le_bytes());
    nonce
}

/// XORs `buf` with the ChaCha20 keystream of `key` at cell `n`, from the
/// keystream's start.
pub(crate) fn xor_stream(key: &[u8; 32], n: u64, buf: &mut [u8]) {
    let mut cipher = ChaCha20::new(key.into(), &nonce(n).into());
    cipher.apply_keystream(buf);
}

/// The first `TAG` bytes of the keystream of `key` at cell `n`: a marker or
/// a filler that only the key's holders can predict.
pub(crate) fn stream_tag(key: &[u8; 32], n: u64) -> [u8; TAG] {
    let mut out = [0u8; TAG];
    xor_stream(key, n, &mut out);
    out
}

/// BLAKE3 keyed MAC of cell `n`'s bytes and its link command (so a hop
/// cannot turn `RELAY` into `RELAY_EARLY` or back to mark a cell),
/// truncated to `TAG`.
pub(crate) fn mac(key: &[u8; 32], n: u64, command: u8, bytes: &[u8]) -> [u8; TAG] {
    let hash = blake3::Hasher::new_keyed(key)
        .update(&n.to_le_bytes())
        .update(&[command])
        .update(bytes)
        .finalize();
    let mut out = [0u8; TAG];
    out.copy_from_slice(&hash.as_bytes()[..TAG]);
    out
}

/// Constant-time comparison of two tags.
pub(crate) fn tags_equal(a: &[u8], b: &[u8; TAG]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == TAG && bool::from(a.ct_eq(b.as_slice()))
}
