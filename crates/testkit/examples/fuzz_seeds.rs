//! Writes seed inputs for the fuzz targets into `fuzz/corpus/<target>/`:
//! real encodings of every kind of message, record, manifest, root chunk
//! and URL, which the fuzzer then mutates.
//!
//! Usage: cargo run -p safe-testkit --example fuzz_seeds

use std::path::{Path, PathBuf};

use bytes::Bytes;
use safe_client::Client;
use safe_client::mutable::{new_append, new_create, prepare};
use safe_network::codec::encode_frame;
use safe_protocol::XorName;
use safe_protocol::manifest::{Entry, FileData, Manifest, Meta, Node};
use safe_protocol::messages::{Refusal, Request, Response};
use safe_protocol::mutable::{Change, Record, SigningKey, Write, apply_write};

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A frame body (the 4-byte length prefix left off).
fn body(frame: Vec<u8>) -> Vec<u8> {
    frame[4..].to_vec()
}

#[tokio::main]
async fn main() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let key = SigningKey::from_bytes(&[7; 32]);
    let name = XorName([9; 32]);

    // Records and writes.
    let create = new_create(b"seed", 1, Vec::new(), 1, true, &key).unwrap();
    let record = apply_write(None, &Write::Create(create.clone()))
        .unwrap()
        .unwrap();
    let op = prepare(
        &record,
        Change::Set {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
    )
    .unwrap();
    let mut op = op;
    op.sign(&key);
    let record2: Record = apply_write(Some(record.clone()), &Write::Op(op.clone()))
        .unwrap()
        .unwrap();
    let address = Write::Create(create.clone()).address();
    let append = new_append(address, b"hello".to_vec(), std::slice::from_ref(&key));
    let writes = [Write::Create(create), Write::Op(op), Write::Append(append)];
    let records = corpus.join("record");
    put(&records, "record-1", &record.encode().unwrap());
    put(&records, "record-2", &record2.encode().unwrap());
    for (i, w) in writes.iter().enumerate() {
        put(&records, &format!("write-{i}"), &w.encode().unwrap());
    }

    // Wire messages.
    let requests = [
        Request::PutChunk {
            bytes: Bytes::from(vec![1u8; 100]),
            replicate: true,
            payment: None,
        },
        Request::GetChunk { name },
        Request::OfferChunks {
            names: vec![name, XorName([1; 32])],
        },
        Request::PutRecord {
            write: writes[0].encode().unwrap().into(),
            payment: None,
        },
        Request::GetRecord { name },
        Request::OfferRecords {
            items: vec![(name, [2; 32])],
        },
        Request::CacheChunk {
            bytes: Bytes::from(vec![4u8; 100]),
        },
    ];
    for (i, r) in requests.iter().enumerate() {
        put(
            &corpus.join("wire_request"),
            &format!("request-{i}"),
            &body(encode_frame(r).unwrap()),
        );
    }
    let responses = [
        Response::Chunk(Bytes::from(vec![3u8; 100])),
        Response::NotFound,
        Response::OfferTaken {
            missing: vec![name],
        },
        Response::Refused(Refusal::Full),
        Response::Record(record.encode().unwrap().into()),
        Response::Cached,
    ];
    for (i, r) in responses.iter().enumerate() {
        put(
            &corpus.join("wire_response"),
            &format!("response-{i}"),
            &body(encode_frame(r).unwrap()),
        );
    }

    // Manifests.
    let entries = vec![
        Entry {
            name: "a.txt".into(),
            node: Node::File {
                data: FileData::Inline(b"inline".to_vec()),
                size: 6,
            },
            meta: Meta::default(),
        },
        Entry {
            name: "b".into(),
            node: Node::Dir {
                manifest: name,
                size: 10,
                files: 1,
            },
            meta: Meta::default(),
        },
        Entry {
            name: "c".into(),
            node: Node::Symlink {
                target: "a.txt".into(),
            },
            meta: Meta {
                executable: false,
                modified: Some(1_700_000_000),
            },
        },
    ];
    let manifest = Manifest::new(entries).unwrap();
    put(
        &corpus.join("manifest"),
        "manifest-1",
        &manifest.encode().unwrap(),
    );
    put(
        &corpus.join("manifest"),
        "manifest-empty",
        &Manifest::default().encode().unwrap(),
    );

    // Root chunks of files of several sizes.
    let dir = tempfile::tempdir().unwrap();
    let client = Client::local(dir.path()).unwrap();
    for size in [0usize, 1, 3000, 5000, 3 << 20] {
        let report = client.put_bytes(vec![5u8; size]).await.unwrap();
        let root = client.get_chunk(report.address.name).await.unwrap();
        put(&corpus.join("root"), &format!("root-{size}"), root.bytes());
    }

    // URLs.
    for (i, u) in [
        "safe://www.name/path/file.html",
        "safe://name?v=3",
        "safe://blog.my-site/a/b/c",
        "SAFE://Name/",
        "safe://dckhusvpxv2ngnmngfc6keexy4tv4wklvvrzmdu6qg75m56kkfrsi/index.html",
        "safe://",
        "safe://a..b",
    ]
    .iter()
    .enumerate()
    {
        put(&corpus.join("url"), &format!("url-{i}"), u.as_bytes());
    }
    relay_seeds(&corpus.join("relay"));
    letter_seeds(&corpus.join("letter"), &key, name);
    println!("seeds written to {}", corpus.display());
}

/// Link cells, certificates, handshake messages, layered cells and relay
/// messages, made with the fixture the relay target uses.
fn relay_seeds(dir: &Path) {
    use safe_relay::cell::{BACKWARD_ROOM, CELL, FORWARD_ROOM, LinkCell, LinkCommand};
    use safe_relay::message::{Command, Message};
    use safe_relay::{ClientCircuit, HopKeys, HopState, RelaySecret, handshake};
    let network = [0x5a; 32];
    let node = ed25519_dalek::SigningKey::from_bytes(&[0x11; 32]);
    let id = node.verifying_key().to_bytes();
    let secret = RelaySecret::generate(&node, network, 1_000, None).unwrap();
    put(dir, "cert", &secret.cert.to_bytes());
    put(dir, "secret", &secret.to_bytes());
    let (hs, create) = handshake::start(&secret.cert, &id, &network, 1_000).unwrap();
    put(dir, "create", &create);
    let (created, _) =
        handshake::respond(std::slice::from_ref(&secret), &network, &create, 1_000).unwrap();
    put(dir, "created", &created);
    hs.finish(&created).unwrap();
    // The fuzz target's own hop keys (safe_testkit::fuzzing::relay).
    let hop = || HopKeys::from_seed(&[0x20; 32]);
    for target in 0u8..3 {
        let mut seed = vec![target];
        seed.extend_from_slice(b"a message for a hop");
        put(dir, &format!("layered-{target}"), &seed);
    }
    for (i, command) in [
        Command::Extend,
        Command::Begin,
        Command::Data,
        Command::Sendme,
    ]
    .into_iter()
    .enumerate()
    {
        let m = Message {
            command,
            stream: i as u32,
            data: b"seed",
        };
        put(
            dir,
            &format!("message-{i}"),
            &m.to_bytes(FORWARD_ROOM).unwrap(),
        );
        let mut client = ClientCircuit::new().unwrap();
        client.push(hop()).unwrap();
        let body = client
            .seal(0, &m.to_bytes(FORWARD_ROOM).unwrap(), false)
            .unwrap();
        put(dir, &format!("forward-{i}"), body.as_slice());
        let back = HopState::new(hop())
            .originate(&m.to_bytes(BACKWARD_ROOM).unwrap())
            .unwrap();
        put(dir, &format!("backward-{i}"), back.as_slice());
    }
    for (i, command) in [
        LinkCommand::Create,
        LinkCommand::Relay,
        LinkCommand::Destroy,
    ]
    .into_iter()
    .enumerate()
    {
        let cell = LinkCell::with_prefix(i as u32, command, &create).unwrap();
        let mut bytes = [0u8; CELL];
        cell.encode(&mut bytes);
        put(dir, &format!("link-{i}"), &bytes);
    }
}

/// Letters as opened (padded plaintexts) and inbox append values.
fn letter_seeds(letters: &Path, key: &SigningKey, name: XorName) {
    {
        use safe_client::msg::{Body, Letter, letter_plaintext};
        use safe_protocol::inbox::InboxAppend;
        let keys = safe_testkit::fuzzing::letter_keys();
        let bodies = [
            Body::Inline(b"hello".to_vec()),
            Body::Inline(vec![b'x'; 2000]),
            Body::File {
                address: safe_protocol::Address::new(safe_protocol::DataKind::File, name),
                secret: [5; 32],
                size: 123_456,
            },
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            let letter = Letter {
                id: [i as u8; 16],
                from: name,
                from_name: (i == 1).then(|| "alice".to_string()),
                to: keys.profile_address(),
                to_seal: keys.seal_key(),
                inbox: keys.inbox_address(),
                time: safe_testkit::fuzzing::LETTER_NOW,
                body,
                sign: key.verifying_key().to_bytes(),
            };
            let plain = letter_plaintext(&letter, key).unwrap();
            put(letters, &format!("plain-{i}"), &plain);
            put(
                letters,
                &format!("plain-{i}-cut"),
                &plain[..plain.len() / 2],
            );
            let value = InboxAppend {
                epoch: safe_testkit::fuzzing::LETTER_NOW / 3600,
                work: 16,
                envelope: plain[..plain.len().min(4096)].to_vec(),
            };
            put(letters, &format!("append-{i}"), &value.encode().unwrap());
        }
        put(letters, "short", &[0, 0, 0]);
        put(letters, "long-length", &[0xff, 0xff, 0xff, 0xff, 1]);
    }
}
