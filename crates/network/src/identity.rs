//! A node's persistent identity: an ed25519 key pair in its directory.
//!
//! **Node ids cost work.** A node's place in the XOR space follows from
//! its key, so without a cost an attacker could make keys until it had
//! enough near any address it chose, and fill that close group. A node id
//! is valid on a network only if `BLAKE3-derive-key("safe node id v1",
//! public key)` starts with at least the network's `id_difficulty` zero
//! bits ([`valid_id`]); honest peers keep invalid ids out of their routing
//! tables, and so out of every close group they compute, and clients
//! drop them from lookups. Each bit doubles the work: 16 bits is about a
//! second on one core, per key, and a place among the K closest to a
//! chosen address costs about N/K valid keys.

use std::io::Write;
use std::path::Path;

use libp2p::PeerId;
use libp2p::identity::Keypair;

/// The id difficulty of a network that does not say (a real network).
pub const DEFAULT_ID_DIFFICULTY: u32 = 16;

/// Leading zero bits of a node id's work hash (0 for a key that is not
/// ed25519).
pub fn id_work(peer: &PeerId) -> u32 {
    let Some(key) = crate::close_group::peer_to_key(peer) else {
        return 0;
    };
    let hash = blake3::Hasher::new_derive_key("safe node id v1")
        .update(&key)
        .finalize();
    let mut bits = 0;
    for byte in hash.as_bytes() {
        bits += byte.leading_zeros();
        if *byte != 0 {
            break;
        }
    }
    bits
}

/// Whether `peer` is a valid node id on a network of `difficulty`.
pub fn valid_id(peer: &PeerId, difficulty: u32) -> bool {
    difficulty == 0 || id_work(peer) >= difficulty
}

/// A fresh key pair whose id meets `difficulty` (2^difficulty tries on
/// average).
pub fn generate(difficulty: u32) -> Keypair {
    loop {
        let keypair = Keypair::generate_ed25519();
        if valid_id(&keypair.public().to_peer_id(), difficulty) {
            return keypair;
        }
    }
}

/// Loads the key pair at `path`, or creates one whose id meets
/// `difficulty` (file mode 0600, written durably) if there is none. A key
/// that does not meet `difficulty` is an error: the network would refuse
/// the node.
pub fn load_or_create(path: &Path, difficulty: u32) -> std::io::Result<Keypair> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let keypair = Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a valid identity key: {e}", path.display()),
                )
            })?;
            if !valid_id(&keypair.public().to_peer_id(), difficulty) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the key in {} does not meet this network's node id difficulty of {difficulty} bits (it was made for another network); start the node in a new directory, or with the --id-difficulty of its own network",
                        path.display()
                    ),
                ));
            }
            Ok(keypair)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = generate(difficulty);
            let bytes = keypair
                .to_protobuf_encoding()
                .map_err(std::io::Error::other)?;
            let tmp = path.with_extension("tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            Ok(keypair)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_meet_their_difficulty_and_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let keypair = load_or_create(&path, 8).unwrap();
        assert!(id_work(&keypair.public().to_peer_id()) >= 8);
        assert_eq!(
            load_or_create(&path, 8).unwrap().public(),
            keypair.public(),
            "loaded again"
        );
        // A key made without work is refused on a network that asks for it.
        let cheap = loop {
            let k = Keypair::generate_ed25519();
            if id_work(&k.public().to_peer_id()) < 4 {
                break k;
            }
        };
        let cheap_path = dir.path().join("cheap.key");
        std::fs::write(&cheap_path, cheap.to_protobuf_encoding().unwrap()).unwrap();
        let err = load_or_create(&cheap_path, 8).unwrap_err();
        assert!(err.to_string().contains("difficulty"), "{err}");
        assert!(
            load_or_create(&cheap_path, 0).is_ok(),
            "no difficulty, no check"
        );
    }
}
