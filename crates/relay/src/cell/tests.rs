use proptest::prelude::*;

use super::*;
use crate::message::{Command, Message};

/// A 3-hop circuit: the relays' states and the client's, in step.
fn circuit(seed: u8, hops: usize) -> (Vec<HopState>, ClientCircuit) {
    let mut relays = Vec::new();
    let mut client = ClientCircuit::new().unwrap();
    for i in 0..hops {
        let seed = [seed.wrapping_add(i as u8); 32];
        relays.push(HopState::new(HopKeys::from_seed(&seed)));
        client.push(HopKeys::from_seed(&seed)).unwrap();
    }
    (relays, client)
}

/// Passes a forward cell along the relays; the hop that took it, or the
/// first error.
fn deliver(relays: &mut [HopState], body: &mut [u8; BODY]) -> Result<usize, (usize, CellError)> {
    for (j, r) in relays.iter_mut().enumerate() {
        match r.forward(body, false).map_err(|e| (j, e))? {
            Forwarded::Mine => return Ok(j),
            Forwarded::Pass => {}
        }
    }
    panic!("a forward cell passed the exit");
}

/// A backward cell from hop `from`, as it reaches the client.
fn answer(relays: &mut [HopState], from: usize, message: &[u8]) -> Box<[u8; BODY]> {
    let mut body = relays[from].originate(message).unwrap();
    for r in relays[..from].iter_mut().rev() {
        r.backward(&mut body).unwrap();
    }
    body
}

fn data(stream: u32, bytes: &[u8], room: usize) -> Vec<u8> {
    Message {
        command: Command::Data,
        stream,
        data: bytes,
    }
    .to_bytes(room)
    .unwrap()
}

#[test]
fn a_full_cell_reaches_each_hop_intact() {
    let (mut relays, mut client) = circuit(1, 3);
    for target in 0..3 {
        let payload = vec![target as u8 + 1; crate::message::FORWARD_DATA];
        let mut body = client
            .seal(target, &data(7, &payload, FORWARD_ROOM), false)
            .unwrap();
        assert_eq!(deliver(&mut relays, &mut body), Ok(target));
        let m = Message::decode(forward_message(&body), FORWARD_ROOM).unwrap();
        assert_eq!(
            (m.command, m.stream, m.data),
            (Command::Data, 7, payload.as_slice())
        );
    }
    assert_eq!(
        client.seal(0, &[0; FORWARD_ROOM + 1], false).unwrap_err(),
        CellError::TooLong(FORWARD_ROOM + 1)
    );
    assert_eq!(
        client.seal(3, b"x", false).unwrap_err(),
        CellError::NoSuchHop(3)
    );
}

#[test]
fn the_hop_a_cell_is_for_cannot_tell_its_position_from_the_tail() {
    // Each target's message area ends in the same number of random-looking
    // bytes: none are zero blocks that would count the hops before it.
    let (mut relays, mut client) = circuit(8, 3);
    let mut tails = Vec::new();
    for target in [0, 1, 2, 0, 1, 2] {
        let mut body = client.seal(target, b"m", false).unwrap();
        assert_eq!(deliver(&mut relays, &mut body), Ok(target));
        let area = forward_message(&body);
        let tail = &area[area.len() - TAG * (MAX_HOPS - 1)..];
        assert!(
            tail.chunks(TAG).all(|block| block != [0u8; TAG]),
            "{target}: {tail:?}"
        );
        tails.push(tail.to_vec());
        assert!(area[1..FORWARD_ROOM].iter().all(|&b| b == 0));
    }
    // Never the same tail twice: not a constant pad.
    for i in 0..tails.len() {
        for j in i + 1..tails.len() {
            assert_ne!(tails[i], tails[j]);
        }
    }
}

#[test]
fn the_keystream_moves_with_the_counter() {
    // The same message twice gives different cells, at every hop.
    let (mut relays, mut client) = circuit(9, 3);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let mut body = client.seal(2, b"same", false).unwrap();
        let mut at_hops = vec![body.to_vec()];
        for r in &mut relays[..2] {
            assert_eq!(r.forward(&mut body, false), Ok(Forwarded::Pass));
            at_hops.push(body.to_vec());
        }
        seen.push(at_hops);
    }
    for (hop, (first, second)) in seen[0].iter().zip(&seen[1]).enumerate() {
        assert_ne!(first, second, "hop {hop}");
    }
}

#[test]
fn replayed_reordered_and_dropped_cells_fail_their_mac() {
    let (mut relays, mut client) = circuit(2, 3);
    let first = client.seal(2, b"one", false).unwrap();
    let second = client.seal(2, b"two", false).unwrap();
    // Reordered: the second cell first.
    let mut c = second.clone();
    assert_eq!(deliver(&mut relays, &mut c), Err((0, CellError::BadMac)));
    // In order, then a replay.
    let mut c = first.clone();
    assert_eq!(deliver(&mut relays, &mut c), Ok(2));
    let mut c = first.clone();
    assert_eq!(deliver(&mut relays, &mut c), Err((0, CellError::BadMac)));
    // The guard drops a cell: the middle's counter no longer matches.
    let (mut relays, mut client) = circuit(3, 3);
    let mut one = client.seal(2, b"one", false).unwrap();
    let mut two = client.seal(2, b"two", false).unwrap();
    assert_eq!(relays[0].forward(&mut one, false), Ok(Forwarded::Pass));
    assert_eq!(relays[0].forward(&mut two, false), Ok(Forwarded::Pass));
    assert_eq!(relays[1].forward(&mut two, false), Err(CellError::BadMac));
}

#[test]
fn the_link_command_cannot_carry_a_mark_and_early_cells_are_capped() {
    let (mut relays, mut client) = circuit(5, 3);
    // The guard passes a RELAY cell on as RELAY_EARLY: the middle refuses it.
    let mut body = client.seal(2, b"x", false).unwrap();
    assert_eq!(relays[0].forward(&mut body, false), Ok(Forwarded::Pass));
    assert_eq!(relays[1].forward(&mut body, true), Err(CellError::BadMac));
    // And the other way round.
    let (mut relays, mut client) = circuit(6, 3);
    let mut body = client.seal(2, b"x", true).unwrap();
    assert_eq!(relays[0].forward(&mut body, true), Ok(Forwarded::Pass));
    assert_eq!(relays[1].forward(&mut body, false), Err(CellError::BadMac));
    // At most MAX_EARLY early cells per hop.
    let (mut relays, mut client) = circuit(7, 1);
    for _ in 0..MAX_EARLY {
        let mut body = client.seal(0, b"x", true).unwrap();
        assert_eq!(relays[0].forward(&mut body, true), Ok(Forwarded::Mine));
    }
    let mut body = client.seal(0, b"x", true).unwrap();
    assert_eq!(
        relays[0].forward(&mut body, true),
        Err(CellError::TooManyEarly)
    );
}

#[test]
fn backward_cells_name_the_hop_that_sent_them() {
    let (mut relays, mut client) = circuit(4, 3);
    for from in [2, 1, 2, 0, 2] {
        let payload = vec![from as u8; crate::message::BACKWARD_DATA];
        let mut body = answer(&mut relays, from, &data(3, &payload, BACKWARD_ROOM));
        let (hop, area) = client.open(&mut body).unwrap();
        assert_eq!(hop, from);
        let m = Message::decode(area, BACKWARD_ROOM).unwrap();
        assert_eq!(m.data, payload.as_slice());
    }
    // A backward cell replayed is recognised by no hop.
    let mut body = answer(&mut relays, 2, b"x");
    let replay = body.clone();
    client.open(&mut body).unwrap();
    let mut replay = replay;
    assert_eq!(
        client.open(&mut replay).unwrap_err(),
        CellError::Unrecognised
    );
}

#[test]
fn cells_from_a_real_handshake_work() {
    use crate::{RelaySecret, handshake};
    use ed25519_dalek::SigningKey;
    let net = [5; 32];
    let mut relays = Vec::new();
    let mut client = ClientCircuit::new().unwrap();
    for i in 0..3u8 {
        let node = SigningKey::from_bytes(&[i + 10; 32]);
        let secret = RelaySecret::generate(&node, net, 50, None).unwrap();
        let id = node.verifying_key().to_bytes();
        let (hs, create) = handshake::start(&secret.cert, &id, &net, 60).unwrap();
        let (created, keys) = handshake::respond(&[secret], &net, &create, 60).unwrap();
        relays.push(HopState::new(keys));
        client.push(hs.finish(&created).unwrap()).unwrap();
    }
    let mut body = client.seal(2, b"GET", false).unwrap();
    assert_eq!(deliver(&mut relays, &mut body), Ok(2));
    let mut back = answer(&mut relays, 2, b"chunk");
    assert_eq!(&client.open(&mut back).unwrap().1[..5], b"chunk");
}

#[test]
fn link_cells_round_trip_and_bad_ones_are_refused() {
    let cell = LinkCell::with_prefix(77, LinkCommand::Create, &[1, 2, 3]).unwrap();
    let mut bytes = [0u8; CELL];
    cell.encode(&mut bytes);
    assert_eq!(LinkCell::decode(&bytes), Ok(cell));
    assert_eq!(
        LinkCell::decode(&bytes[..CELL - 1]),
        Err(CellError::Malformed)
    );
    let mut bad = bytes;
    bad[4] = 0;
    assert_eq!(LinkCell::decode(&bad), Err(CellError::Malformed));
    let mut bad = bytes;
    bad[6] = 1;
    assert_eq!(LinkCell::decode(&bad), Err(CellError::Malformed));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any interleaving of forward and backward cells, to any hop, arrives
    /// where it was sent, intact.
    #[test]
    fn any_sequence_arrives(
        seed in any::<u8>(),
        ops in proptest::collection::vec((any::<bool>(), 0usize..3, proptest::collection::vec(any::<u8>(), 0..200)), 1..12),
    ) {
        let (mut relays, mut client) = circuit(seed, 3);
        for (forward, hop, bytes) in ops {
            if forward {
                let mut body = client.seal(hop, &data(1, &bytes, FORWARD_ROOM), false).unwrap();
                prop_assert_eq!(deliver(&mut relays, &mut body), Ok(hop));
                let m = Message::decode(forward_message(&body), FORWARD_ROOM).unwrap();
                prop_assert_eq!(m.data, bytes.as_slice());
            } else {
                let mut body = answer(&mut relays, hop, &data(1, &bytes, BACKWARD_ROOM));
                let (from, area) = client.open(&mut body).unwrap();
                prop_assert_eq!(from, hop);
                prop_assert_eq!(Message::decode(area, BACKWARD_ROOM).unwrap().data, bytes.as_slice());
            }
        }
    }

    /// A bit flipped anywhere in a forward cell, by anyone before hop k
    /// (the link, or hop k−1 tagging it), fails hop k's MAC: no hop acts
    /// on an altered cell, and no pattern survives to a colluding hop.
    #[test]
    fn any_forward_change_fails_the_next_mac(
        seed in any::<u8>(), target in 0usize..3, at in 0usize..BODY, bit in 0u8..8, k_pick in any::<usize>(),
    ) {
        let (mut relays, mut client) = circuit(seed, 3);
        let mut body = client.seal(target, b"hello", false).unwrap();
        let k = k_pick % (target + 1);
        for r in &mut relays[..k] {
            prop_assert_eq!(r.forward(&mut body, false), Ok(Forwarded::Pass));
        }
        body[at] ^= 1 << bit;
        prop_assert_eq!(relays[k].forward(&mut body, false), Err(CellError::BadMac));
    }

    /// A bit flipped anywhere in a backward cell on its way is caught by
    /// the client.
    #[test]
    fn any_backward_change_is_caught(
        seed in any::<u8>(), from in 0usize..3, at in 0usize..BODY, bit in 0u8..8,
    ) {
        let (mut relays, mut client) = circuit(seed, 3);
        let mut body = answer(&mut relays, from, b"answer");
        body[at] ^= 1 << bit;
        prop_assert!(client.open(&mut body).is_err());
    }
}
