//! Close groups: the K nodes closest to a name, in Kademlia's metric.
//!
//! Pure functions of the peers a caller knows, so nodes and clients decide
//! alike and the rules can be tested without sockets.

use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey, ed25519};
use libp2p::kad::KBucketKey;
use safe_protocol::XorName;
use safe_protocol::messages::{Receipt, RecordReceipt};
use safe_protocol::mutable::Hash;

/// Kademlia key of a data name.
pub fn data_key(name: &XorName) -> KBucketKey<Vec<u8>> {
    KBucketKey::new(name.0.to_vec())
}

/// The `k` peers of `peers` closest to `name`, closest first.
pub fn closest(name: &XorName, peers: impl IntoIterator<Item = PeerId>, k: usize) -> Vec<PeerId> {
    let target = data_key(name);
    let mut all: Vec<(libp2p::kad::KBucketDistance, PeerId)> = peers
        .into_iter()
        .map(|p| (KBucketKey::from(p).distance(&target), p))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    all.dedup_by(|a, b| a.1 == b.1);
    all.into_iter().take(k).map(|(_, p)| p).collect()
}

/// Votes needed for a majority of a group of `k`.
pub fn majority(k: usize) -> usize {
    k / 2 + 1
}

/// A receipt for `name` signed with `keypair` (must be ed25519).
pub fn sign_receipt(keypair: &Keypair, name: &XorName) -> Option<Receipt> {
    let public = keypair.public().try_into_ed25519().ok()?;
    let signature = keypair.sign(&Receipt::signed_bytes(name)).ok()?;
    Some(Receipt {
        name: *name,
        node_key: public.to_bytes(),
        signature,
    })
}

/// This node's signed receipt for record `name` holding a write with `proof`.
pub fn sign_record_receipt(
    keypair: &Keypair,
    name: &XorName,
    proof: &Hash,
) -> Option<RecordReceipt> {
    let public = keypair.public().try_into_ed25519().ok()?;
    let signature = keypair
        .sign(&RecordReceipt::signed_bytes(name, proof))
        .ok()?;
    Some(RecordReceipt {
        name: *name,
        proof: *proof,
        node_key: public.to_bytes(),
        signature,
    })
}

/// The peer id behind a node key, if it is a valid ed25519 key.
pub fn key_to_peer(node_key: &[u8; 32]) -> Option<PeerId> {
    let key = ed25519::PublicKey::try_from_bytes(node_key).ok()?;
    Some(PublicKey::from(key).to_peer_id())
}

/// The node key behind a peer id, if the id carries an ed25519 key (as
/// every safe node's does: ids of ed25519 keys inline the key).
pub fn peer_to_key(peer: &PeerId) -> Option<[u8; 32]> {
    let multihash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let key = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

/// The peer id behind a receipt's key, if the key is a valid ed25519 key.
pub fn receipt_signer(receipt: &Receipt) -> Option<PeerId> {
    key_to_peer(&receipt.node_key)
}

/// The distinct members of `group` that gave a valid receipt for `name`.
/// Receipts for another name, with bad signatures, or from peers outside the
/// group the caller looked up itself are ignored: a node cannot invent a
/// group or vote twice.
pub fn valid_signers(name: &XorName, group: &[PeerId], receipts: &[Receipt]) -> Vec<PeerId> {
    let mut signers: Vec<PeerId> = receipts
        .iter()
        .filter(|r| r.name == *name && r.verify())
        .filter_map(receipt_signer)
        .filter(|p| group.contains(p))
        .collect();
    signers.sort();
    signers.dedup();
    signers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_keys_and_peer_ids_convert_both_ways() {
        let key = Keypair::generate_ed25519();
        let bytes = key.public().try_into_ed25519().unwrap().to_bytes();
        let peer = key_to_peer(&bytes).unwrap();
        assert_eq!(peer, key.public().to_peer_id());
        assert_eq!(peer_to_key(&peer), Some(bytes));
        // A peer id that hashes its key (not ed25519) carries none.
        assert_eq!(peer_to_key(&PeerId::random()), None);
    }

    #[test]
    fn closest_orders_and_truncates() {
        let peers: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
        let name = XorName([3; 32]);
        let five = closest(&name, peers.clone(), 5);
        assert_eq!(five.len(), 5);
        let all = closest(&name, peers.iter().rev().copied(), 20);
        assert_eq!(&all[..5], &five[..], "order does not depend on input order");
        let target = data_key(&name);
        for w in all.windows(2) {
            assert!(
                KBucketKey::from(w[0]).distance(&target)
                    <= KBucketKey::from(w[1]).distance(&target)
            );
        }
    }

    #[test]
    fn receipts_count_once_per_group_member() {
        let keys: Vec<Keypair> = (0..4).map(|_| Keypair::generate_ed25519()).collect();
        let group: Vec<PeerId> = keys[..3].iter().map(|k| k.public().to_peer_id()).collect();
        let name = XorName([1; 32]);
        let r: Vec<Receipt> = keys
            .iter()
            .map(|k| sign_receipt(k, &name).unwrap())
            .collect();
        // Outsider (keys[3]) ignored, duplicates ignored.
        let mut receipts = r.clone();
        receipts.push(r[0].clone());
        assert_eq!(valid_signers(&name, &group, &receipts).len(), 3);
        // Wrong name ignored.
        assert!(valid_signers(&XorName([2; 32]), &group, &r).is_empty());
        assert_eq!(majority(5), 3);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(1), 1);
    }
}
