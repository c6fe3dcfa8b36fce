//! The bodies of the fuzz targets (`fuzz/`, `cargo fuzz`), shared with
//! the test that replays their corpora on every CI run
//! (`tests/fuzz_corpora.rs`): everything the network or a disk hands to
//! a node or a client as bytes, decoded and checked as the real code
//! does. Each must return (an error is fine) and never panic, loop or
//! allocate without bound, whatever the input.

use std::str::FromStr;

use bytes::Bytes;
use safe_protocol::SafeUrl;
use safe_protocol::manifest::Manifest;
use safe_protocol::mutable::{Record, Write, apply_write, record_address};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, for the replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_request", wire_request),
    ("wire_response", wire_response),
    ("record", record),
    ("manifest", manifest),
    ("root", root),
    ("url", url),
    ("relay", relay),
    ("letter", letter),
];

/// A data-protocol request frame body, as a node decodes it.
pub fn wire_request(data: &[u8]) {
    let _ = safe_network::codec::decode_request(&Bytes::copy_from_slice(data));
}

/// A data-protocol response frame body, as a client decodes it.
pub fn wire_response(data: &[u8]) {
    let _ = safe_network::codec::decode_response(&Bytes::copy_from_slice(data));
}

/// A record as served by a node (decoded, then verified against its own
/// address), and a write as put to one (decoded, then applied).
pub fn record(data: &[u8]) {
    if let Ok(r) = Record::decode(data) {
        let address = record_address(&r.genesis.body.name, r.genesis.body.tag);
        let _ = r.verify(&address);
    }
    if let Ok(w) = Write::decode(data) {
        let _ = apply_write(None, &w);
    }
}

/// A directory manifest, as read from a snapshot.
pub fn manifest(data: &[u8]) {
    let _ = Manifest::decode(data);
}

/// A file's root chunk and its data-map levels, as a client opens them.
pub fn root(data: &[u8]) {
    if let Ok(root) = safe_selfenc::open_root(data, None) {
        let _ = root.descend(data);
    }
}

/// A `safe://` URL, as every front end parses one.
pub fn url(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SafeUrl::from_str(text);
    }
}

/// What the relay fuzz target needs made once: a relay's secret.
struct RelayFixture {
    node: [u8; 32],
    secret: safe_relay::RelaySecret,
}

const FUZZ_NETWORK: [u8; 32] = [0x5a; 32];

fn relay_fixture() -> &'static RelayFixture {
    static FIXTURE: std::sync::OnceLock<RelayFixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let node = ed25519_dalek::SigningKey::from_bytes(&[0x11; 32]);
        let secret = safe_relay::RelaySecret::generate(&node, FUZZ_NETWORK, 1_000, None)
            .expect("randomness for the fuzz fixture");
        RelayFixture {
            node: node.verifying_key().to_bytes(),
            secret,
        }
    })
}

/// Everything a relay or a client reads from a relay link or a relay key
/// file: link cells, relay certificates, `CREATE` and `CREATED`, layered
/// cells in both directions and relay messages; and, since a MAC stops
/// any changed cell, the layering itself with arbitrary messages: the
/// first byte picks the hop, the rest is the message, which must arrive
/// intact there and back.
pub fn relay(data: &[u8]) {
    use safe_relay::cell::{
        BACKWARD_ROOM, BODY, FORWARD_ROOM, Forwarded, LinkCell, forward_message,
    };
    use safe_relay::message::Message;
    use safe_relay::{ClientCircuit, HopKeys, HopState, RelayCert, RelaySecret, handshake};
    let f = relay_fixture();
    let _ = LinkCell::decode(data);
    if let Ok(cert) = RelayCert::from_bytes(data) {
        let _ = cert.verify(&f.node, &FUZZ_NETWORK, 1_000);
    }
    let _ = RelaySecret::from_bytes(data);
    let _ = handshake::respond(std::slice::from_ref(&f.secret), &FUZZ_NETWORK, data, 1_000);
    if let Ok((hs, _)) = handshake::start(&f.secret.cert, &f.node, &FUZZ_NETWORK, 1_000) {
        let _ = hs.finish(data);
    }
    let _ = Message::decode(data, FORWARD_ROOM);
    let _ = Message::decode(data, BACKWARD_ROOM);
    let seed = |i: u8| [0x20 + i; 32];
    let mut body = [0u8; BODY];
    let n = data.len().min(BODY);
    body[..n].copy_from_slice(&data[..n]);
    let early = data.first() == Some(&1);
    let _ = HopState::new(HopKeys::from_seed(&seed(0))).forward(&mut body.clone(), early);
    let _ = HopState::new(HopKeys::from_seed(&seed(0))).backward(&mut body.clone());
    let Ok(mut client) = ClientCircuit::new() else {
        return;
    };
    let mut relays = Vec::new();
    for i in 0..3 {
        if client.push(HopKeys::from_seed(&seed(i))).is_err() {
            return;
        }
        relays.push(HopState::new(HopKeys::from_seed(&seed(i))));
    }
    let _ = client.open(&mut body);
    let Some((&pick, message)) = data.split_first() else {
        return;
    };
    let target = pick as usize % 3;
    let early = pick & 0x80 != 0;
    if let Ok(mut cell) = client.seal(target, message, early) {
        for (j, r) in relays.iter_mut().enumerate() {
            match r.forward(&mut cell, early) {
                Ok(Forwarded::Mine) => {
                    assert_eq!(j, target, "recognised at the wrong hop");
                    assert_eq!(&forward_message(&cell)[..message.len()], message);
                    break;
                }
                Ok(Forwarded::Pass) => assert!(j < target, "passed beyond its hop"),
                Err(e) => panic!("a cell the client built failed at hop {j}: {e}"),
            }
        }
    }
    if let Ok(mut back) = relays[target].originate(message) {
        for r in relays[..target].iter_mut().rev() {
            if r.backward(&mut back).is_err() {
                return;
            }
        }
        match client.open(&mut back) {
            Ok((from, area)) => {
                assert_eq!(from, target, "backward cell from the wrong hop");
                assert_eq!(&area[..message.len()], message);
            }
            Err(e) => panic!("a backward cell failed at the client: {e}"),
        }
    }
}

/// What the letter fuzz target needs made once: a recipient's keys and
/// an inbox record.
struct LetterFixture {
    keys: safe_client::msg::MsgKeys,
    inbox: Record,
    appender: ed25519_dalek::SigningKey,
}

/// The clock the letter target's accept rules run at.
pub const LETTER_NOW: u64 = 1_000 * safe_protocol::inbox::EPOCH_SECS;

/// The recipient the letter target opens letters as (its seeds are
/// written to it).
pub fn letter_keys() -> &'static safe_client::msg::MsgKeys {
    &letter_fixture().keys
}

fn letter_fixture() -> &'static LetterFixture {
    use safe_protocol::mutable::{Create, Signed};
    static FIXTURE: std::sync::OnceLock<LetterFixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let phrase = [["abandon"; 23].join(" ").as_str(), "art"].join(" ");
        let root = safe_client::RootSecret::from_phrase(&phrase).expect("a valid phrase");
        let keys = safe_client::msg::MsgKeys::from_root(&root);
        let owner = ed25519_dalek::SigningKey::from_bytes(&[0x33; 32]);
        let mut create = Signed::new(Create {
            name: b"fuzz inbox".to_vec(),
            tag: safe_protocol::inbox::INBOX_TAG,
            owners: vec![owner.verifying_key().to_bytes()],
            threshold: 1,
            public_append: true,
        });
        create.sign(&owner);
        let inbox = Record::create(create).expect("a valid inbox");
        LetterFixture {
            keys,
            inbox,
            appender: ed25519_dalek::SigningKey::from_bytes(&[0x44; 32]),
        }
    })
}

/// What a recipient reads from its inbox and a node holds an inbox to: the
/// bytes as an opened letter's plaintext (unpadded, decoded, its
/// signature and addressing checked), and as an append's value (decoded,
/// then held to the inbox rules at any time and on accept).
pub fn letter(data: &[u8]) {
    use safe_protocol::inbox::{check_accept, check_stored};
    use safe_protocol::mutable::{Append, Signed};
    let f = letter_fixture();
    let address = f.inbox.address();
    let _ = safe_client::msg::read_plain(data, &f.keys, &f.keys.inbox_address());
    let _ = safe_protocol::inbox::InboxAppend::decode(data);
    let mut a = Signed::new(Append {
        address,
        value: data.to_vec(),
        nonce: 0,
    });
    a.sign(&f.appender);
    let _ = check_stored(&f.inbox.state, f.inbox.genesis.body.tag, &a);
    let _ = check_accept(Some(&f.inbox), &Write::Append(a), LETTER_NOW);
}
