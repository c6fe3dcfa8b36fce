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
        },
        Request::GetChunk { name },
        Request::OfferChunks {
            names: vec![name, XorName([1; 32])],
        },
        Request::PutRecord {
            write: writes[0].encode().unwrap().into(),
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
    println!("seeds written to {}", corpus.display());
}
