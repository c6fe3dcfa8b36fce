//! The store's tests: crash consistency, capacity, formats, compaction,
//! concurrent record writes.

use redb::Database;
use safe_protocol::mutable::Record;

use super::index::META;
use super::migration::{FORMAT1_RECORDS, format1};
use super::*;

#[test]
fn no_space_and_over_quota_mean_full_other_errors_do_not() {
    // ENOSPC and EDQUOT as the kernel reports them on Linux.
    assert!(out_of_space(&std::io::Error::from_raw_os_error(28)));
    assert!(out_of_space(&std::io::Error::from_raw_os_error(122)));
    assert!(!out_of_space(&std::io::Error::from_raw_os_error(5)));
    assert!(!out_of_space(&std::io::Error::other("boom")));
}

#[test]
fn concurrent_record_writes_are_serialised_and_durable() {
    use safe_protocol::mutable::{Append, Create, Signed, SigningKey, Write, record_address};
    let dir = tempfile::tempdir().unwrap();
    let name = record_address(b"inbox", 0);
    {
        let store = std::sync::Arc::new(NodeStore::open(dir.path(), 1 << 30).unwrap());
        let key = SigningKey::from_bytes(&[1; 32]);
        let mut create = Signed::new(Create {
            name: b"inbox".to_vec(),
            tag: 0,
            owners: vec![key.verifying_key().to_bytes()],
            threshold: 1,
            public_append: true,
        });
        create.sign(&key);
        store
            .update_record(&name, move |_| (Some(Record::create(create).unwrap()), ()))
            .unwrap();
        // Eight writers, each a read-modify-write of the same record:
        // none may be lost to another's write.
        let writers: Vec<_> = (0..8u8)
            .map(|w| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..25u8 {
                        let mut a = Signed::new(Append {
                            address: name,
                            value: vec![w, i],
                            nonce: u64::from(w) << 8 | u64::from(i),
                        });
                        a.sign(&SigningKey::from_bytes(&[w + 2; 32]));
                        store
                            .update_record(&name, move |cur| {
                                let mut r = cur.unwrap();
                                r.apply(&Write::Append(a)).unwrap();
                                (Some(r), ())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(store.record(&name).unwrap().unwrap().appends.len(), 200);
        assert_eq!(store.record_count(), 1);
    }
    // Every acknowledged write was committed durably.
    let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(store.record(&name).unwrap().unwrap().appends.len(), 200);
    assert_eq!(store.record_count(), 1);
}

#[test]
fn a_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = NodeStore::open(dir.path(), 1 << 20).unwrap();
    let err = NodeStore::open(dir.path(), 1 << 20).err().unwrap();
    assert!(matches!(err, NodeStoreError::InUse(_)), "{err}");
    assert!(err.to_string().contains("in use by another running node"));
}

#[test]
fn capacity_and_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let a = Chunk::new(vec![1u8; 1000]).unwrap();
    let b = Chunk::new(vec![2u8; 1000]).unwrap();
    let c = Chunk::new(vec![3u8; 100]).unwrap();
    // Each takes a header block and one body block on disk.
    let store = NodeStore::open(dir.path(), 2 * 8192 + 100).unwrap();
    assert_eq!(store.put(&a).unwrap(), Put::Stored);
    assert_eq!(store.put(&a).unwrap(), Put::AlreadyHeld);
    assert_eq!(store.put(&b).unwrap(), Put::Stored);
    let err = store.put(&c).unwrap_err();
    assert!(
        matches!(err, NodeStoreError::Full { used: 16384, .. }),
        "{err}"
    );
    assert_eq!((store.used(), store.chunk_count()), (16384, 2));
    assert_eq!(store.get(*b.name()).unwrap().unwrap(), b);
    // Damage on disk: never served, dropped.
    let loc = store.lookup(a.name()).unwrap().unwrap();
    let path = store.segments.path(loc.segment);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[loc.offset as usize + 4096 + 7] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert!(store.get(*a.name()).unwrap().is_none());
    assert!(!store.contains(a.name()).unwrap());
    assert_eq!((store.used(), store.chunk_count()), (8192, 1));
    // Room again, and a good copy is taken.
    assert_eq!(store.put(&a).unwrap(), Put::Stored);
    assert_eq!(store.get(*a.name()).unwrap().unwrap(), a);
    let names = store.chunk_names_after(None, 1).unwrap();
    assert_eq!(names.len(), 1);
    let rest = store.chunk_names_after(Some(names[0]), 10).unwrap();
    assert_eq!(rest.len(), 1);
    store.flush().unwrap();
    assert_eq!(store.index_len().unwrap(), 2);
}

#[test]
fn crashes_lose_nothing_acknowledged_and_leave_no_dangling_entries() {
    let dir = tempfile::tempdir().unwrap();
    let chunks: Vec<Chunk> = (0..4u8)
        .map(|i| Chunk::new(vec![i; 5000 + i as usize]).unwrap())
        .collect();
    {
        let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
        store.put(&chunks[0]).unwrap();
        store.put(&chunks[1]).unwrap();
        store.flush().unwrap();
    }
    // Records appended after the last flush whose index entries never
    // reached the disk (a crash between the two): found and indexed.
    {
        let (segs, _) = Segments::open(&dir.path().join("segments")).unwrap();
        segs.append(chunks[2].name(), chunks[2].bytes()).unwrap();
        segs.append(chunks[3].name(), chunks[3].bytes()).unwrap();
    }
    {
        let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(store.chunk_count(), 4);
        let used: u64 = chunks.iter().map(|c| segments::span(c.len())).sum();
        assert_eq!(store.used(), used);
        for c in &chunks {
            assert_eq!(&store.get(*c.name()).unwrap().unwrap(), c);
        }
    }
    // The disk loses the end of the segment (a power cut): the index
    // drops what is no longer there and keeps the rest.
    let path = dir.path().join("segments").join("00000001.seg");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 4096)
        .unwrap();
    let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(store.chunk_count(), 3);
    assert!(!store.contains(chunks[3].name()).unwrap());
    for c in &chunks[..3] {
        assert_eq!(&store.get(*c.name()).unwrap().unwrap(), c);
    }
    // Appends go on from the last whole record.
    assert_eq!(store.put(&chunks[3]).unwrap(), Put::Stored);
    assert_eq!(store.get(*chunks[3].name()).unwrap().unwrap(), chunks[3]);
}

#[test]
fn a_format_1_store_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let chunks: Vec<Chunk> = (0..3u8)
        .map(|i| Chunk::new(vec![i; 70_000]).unwrap())
        .collect();
    {
        // The layout the client's local store wrote then.
        let old = dir.path().join(format1::DIR);
        std::fs::create_dir_all(old.join("tmp")).unwrap();
        std::fs::write(old.join("FORMAT"), "safe-local-store 1\n").unwrap();
        for c in &chunks {
            let path = format1::path(&old, c.name());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c.bytes()).unwrap();
        }
        // A stray file is skipped; a damaged one left behind, not migrated.
        std::fs::write(old.join("chunks").join("stray"), b"x").unwrap();
        std::fs::write(format1::path(&old, chunks[2].name()), b"junk").unwrap();
        // The format 1 index.
        let db = Database::create(dir.path().join("index.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(FORMAT1_RECORDS).unwrap();
            for c in &chunks {
                t.insert(c.name().0, c.len() as u64).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
    assert!(!dir.path().join("records").exists());
    assert_eq!(store.chunk_count(), 2);
    for c in &chunks[..2] {
        assert_eq!(&store.get(*c.name()).unwrap().unwrap(), c);
    }
    assert!(store.get(*chunks[2].name()).unwrap().is_none());
    drop(store);
    let store = NodeStore::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(store.chunk_count(), 2);
}

#[test]
fn a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = NodeStore::open(dir.path(), 1 << 20).unwrap();
        let txn = store.index.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("format", FORMAT + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = NodeStore::open(dir.path(), 1 << 20).err().unwrap();
    assert!(
        matches!(err, NodeStoreError::Format { found: 3, .. }),
        "{err}"
    );
}

#[test]
fn half_dead_segments_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    // Four records of 12 KiB (header and two blocks) per segment.
    let limit = 50_000;
    let store = NodeStore::open_with_segment_limit(dir.path(), 1 << 30, limit).unwrap();
    let chunks: Vec<Chunk> = (0..10u8)
        .map(|i| Chunk::new(vec![i; 8000]).unwrap())
        .collect();
    for c in &chunks {
        store.put(c).unwrap();
    }
    let first = dir.path().join("segments").join("00000001.seg");
    assert!(first.exists());
    // Half of the first segment dies.
    store.remove(chunks[0].name()).unwrap();
    store.flush().unwrap();
    assert!(first.exists(), "a quarter dead is not enough");
    store.remove(chunks[2].name()).unwrap();
    store.flush().unwrap();
    assert!(first.exists(), "live records copied first");
    store.flush().unwrap();
    assert!(!first.exists(), "half dead: compacted");
    assert_eq!(store.chunk_count(), 8);
    for (i, c) in chunks.iter().enumerate() {
        let got = store.get(*c.name()).unwrap();
        if i == 0 || i == 2 {
            assert!(got.is_none(), "{i} was removed");
        } else {
            assert_eq!(got.as_ref(), Some(c), "{i} is still there");
        }
    }
    // And all of it survives a restart.
    drop(store);
    let store = NodeStore::open_with_segment_limit(dir.path(), 1 << 30, limit).unwrap();
    assert_eq!(store.chunk_count(), 8);
    for c in chunks.iter().skip(3).chain([&chunks[1]]) {
        assert_eq!(&store.get(*c.name()).unwrap().unwrap(), c);
    }
}

#[test]
fn the_newest_segment_is_never_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 50_000;
    let chunks: Vec<Chunk> = (0..6u8)
        .map(|i| Chunk::new(vec![i; 8000]).unwrap())
        .collect();
    {
        let store = NodeStore::open_with_segment_limit(dir.path(), 1 << 30, limit).unwrap();
        for c in &chunks {
            store.put(c).unwrap();
        }
        // Segment 2 (the newest) holds chunks 4 and 5: all dead.
        store.remove(chunks[4].name()).unwrap();
        store.remove(chunks[5].name()).unwrap();
        store.flush().unwrap();
    }
    // After a restart nothing is open for appending yet.
    let store = NodeStore::open_with_segment_limit(dir.path(), 1 << 30, limit).unwrap();
    store.flush().unwrap();
    store.flush().unwrap();
    let newest = dir.path().join("segments").join("00000002.seg");
    assert!(newest.exists(), "the newest segment stays");
    // Appends still work, and land in it.
    assert_eq!(store.put(&chunks[4]).unwrap(), Put::Stored);
    assert_eq!(store.lookup(chunks[4].name()).unwrap().unwrap().segment, 2);
    store.flush().unwrap();
    drop(store);
    let store = NodeStore::open_with_segment_limit(dir.path(), 1 << 30, limit).unwrap();
    assert_eq!(store.chunk_count(), 5);
    for c in &chunks[..5] {
        assert_eq!(&store.get(*c.name()).unwrap().unwrap(), c);
    }
}
