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

/// Crash consistency against damage on disk, in the manner of redb's crash
/// tests: a store is written and closed, then copies of it have a segment
/// file cut short, or the index cut or overwritten, at many offsets, and
/// each copy is opened and checked. Deterministic (a fixed seed per case).
mod damage {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use safe_protocol::mutable::{Change, Create, Op, Signed, SigningKey, Write, record_address};

    use super::*;

    /// SplitMix64: reproducible numbers without a `rand` dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Segments are sealed small, so the store has several.
    const SEGMENT_LIMIT: u64 = 256 * 1024;

    /// What was written to the store, and where each chunk went.
    struct Written {
        chunks: Vec<(Chunk, Location)>,
        /// Each record's address and every version it was written at
        /// (the last is the one the store must hold).
        records: Vec<(XorName, Vec<Record>)>,
    }

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    /// `record` with entry `k` set to `v`, through a signed operation.
    fn updated(record: &Record, k: &[u8], v: Vec<u8>, signer: &SigningKey) -> Record {
        let change = Change::Set {
            key: k.to_vec(),
            value: v,
        };
        let next = record.state.apply(&change).unwrap();
        let mut op = Signed::new(Op {
            address: record.address(),
            replaces: record.state.version,
            prev: record.state.hash(),
            change,
            result: next.hash(),
        });
        op.sign(signer);
        let mut out = record.clone();
        out.apply(&Write::Op(op)).unwrap();
        out
    }

    fn write_record(store: &NodeStore, name: XorName, record: &Record) {
        let record = record.clone();
        store
            .update_record(&name, move |_| (Some(record), ()))
            .unwrap();
    }

    /// Writes chunks of varied sizes (a flush after the first 60, the last
    /// 40 only written) and six records updated before and after the
    /// flush, then closes the store.
    fn write_store(dir: &Path, rng: &mut Rng) -> Written {
        let store = NodeStore::open_with_segment_limit(dir, 1 << 30, SEGMENT_LIMIT).unwrap();
        let mut chunks = Vec::new();
        let mut records: Vec<(XorName, Vec<Record>)> = (0..6u8)
            .map(|i| {
                let owner = key(i + 1);
                let mut create = Signed::new(Create {
                    name: vec![b'r', i],
                    tag: 7,
                    owners: vec![owner.verifying_key().to_bytes()],
                    threshold: 1,
                    public_append: false,
                });
                create.sign(&owner);
                let name = record_address(&[b'r', i], 7);
                let record = Record::create(create).unwrap();
                write_record(&store, name, &record);
                (name, vec![record])
            })
            .collect();
        let update =
            |store: &NodeStore, records: &mut Vec<(XorName, Vec<Record>)>, rng: &mut Rng| {
                let i = rng.below(records.len() as u64) as usize;
                let (name, versions) = &mut records[i];
                let last = versions.last().unwrap();
                let len = rng.below(3000) as usize;
                let next = updated(last, b"v", rng.bytes(len), &key(i as u8 + 1));
                write_record(store, *name, &next);
                versions.push(next);
            };
        for n in 0..100 {
            // Mostly small chunks, some of several blocks, a few large.
            let len = match rng.below(10) {
                0..=5 => rng.below(4097),
                6..=8 => rng.below(40_000),
                _ => rng.below(150_000),
            } as usize;
            let chunk = Chunk::new(rng.bytes(len)).unwrap();
            assert_eq!(store.put(&chunk).unwrap(), Put::Stored);
            let loc = store.lookup(chunk.name()).unwrap().unwrap();
            chunks.push((chunk, loc));
            if n % 10 == 0 {
                update(&store, &mut records, rng);
            }
            if n == 59 {
                store.flush().unwrap();
            }
        }
        assert!(
            chunks.iter().map(|(_, l)| l.segment).max().unwrap() >= 3,
            "the chunks span several segments"
        );
        Written { chunks, records }
    }

    /// A copy of the store in `from`, in a new temporary directory.
    fn copy_store(from: &Path) -> tempfile::TempDir {
        let to = tempfile::tempdir().unwrap();
        std::fs::copy(from.join("index.redb"), to.path().join("index.redb")).unwrap();
        std::fs::create_dir(to.path().join("segments")).unwrap();
        for f in std::fs::read_dir(from.join("segments")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.path().join("segments").join(f.file_name())).unwrap();
        }
        to
    }

    fn set_len(path: &Path, len: u64) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    /// Runs `check` on a thread of its own: a panic fails the test with
    /// `what`, and so does taking longer than a minute (a hang).
    fn bounded<T: Send + 'static>(what: &str, check: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let _ = tx.send(check());
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(out) => {
                worker.join().unwrap();
                out
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let e = worker.join().unwrap_err();
                let why = e
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("?");
                panic!("{what}: panicked: {why}")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hung"),
        }
    }

    #[test]
    fn a_cut_segment_loses_only_what_lies_past_the_cut() {
        const CASES: u64 = 96;
        let mut rng = Rng(1);
        let original = tempfile::tempdir().unwrap();
        let written = Arc::new(write_store(original.path(), &mut rng));
        let segments: Vec<(u32, u64)> = {
            let (_, found) = Segments::open(&original.path().join("segments")).unwrap();
            found
        };
        for case in 0..CASES {
            let (segment, len) = segments[rng.below(segments.len() as u64) as usize];
            // Anywhere: on an entry boundary, a block boundary, or a byte.
            let cut = match case % 3 {
                0 => {
                    let ends: Vec<u64> = written
                        .chunks
                        .iter()
                        .filter(|(_, l)| l.segment == segment)
                        .flat_map(|(_, l)| [l.offset, l.end()])
                        .collect();
                    ends[rng.below(ends.len() as u64) as usize]
                }
                1 => rng.below(len / 4096 + 1) * 4096,
                _ => rng.below(len + 1),
            };
            let copy = copy_store(original.path());
            set_len(
                &copy
                    .path()
                    .join("segments")
                    .join(format!("{segment:08x}.seg")),
                cut,
            );
            let what = format!("segment {segment} of {len} bytes cut at {cut}");
            let written = written.clone();
            bounded(&what.clone(), move || {
                let store = NodeStore::open_with_segment_limit(copy.path(), 1 << 30, SEGMENT_LIMIT)
                    .unwrap_or_else(|e| panic!("{what}: the store does not open: {e}"));
                let mut expected = 0u64;
                for (chunk, loc) in &written.chunks {
                    let whole = loc.segment != segment || loc.end() <= cut;
                    let got = store.get(*chunk.name()).unwrap();
                    match (&got, whole) {
                        (Some(c), _) => assert_eq!(c, chunk, "{what}: {} read back", loc.offset),
                        (None, true) => panic!(
                            "{what}: chunk at {}:{}..{} lost",
                            loc.segment,
                            loc.offset,
                            loc.end()
                        ),
                        (None, false) => {}
                    }
                    assert!(
                        whole || got.is_none(),
                        "{what}: chunk at {}:{} is past the cut but served",
                        loc.segment,
                        loc.offset
                    );
                    expected += u64::from(whole);
                }
                assert_eq!(store.chunk_count(), expected, "{what}");
                for (name, versions) in &written.records {
                    let record = store.record(name).unwrap();
                    assert_eq!(record.as_ref(), versions.last(), "{what}: record {name}");
                }
                // The store goes on: a new chunk is stored, and all of it
                // is there after a clean reopen.
                let more = Chunk::new(format!("after {what}").into_bytes()).unwrap();
                assert_eq!(store.put(&more).unwrap(), Put::Stored);
                store.flush().unwrap();
                drop(store);
                let store = NodeStore::open_with_segment_limit(copy.path(), 1 << 30, SEGMENT_LIMIT)
                    .unwrap();
                assert_eq!(store.chunk_count(), expected + 1, "{what}");
                assert_eq!(store.get(*more.name()).unwrap().as_ref(), Some(&more));
            });
        }
    }

    /// Checks a store opened over a damaged index. Opening checks the
    /// index's checksums and rolls it back to its last intact commit if it
    /// must; the chunks indexed since are in segments past that commit's
    /// watermarks, which recovery reads. So every chunk is there with its
    /// bytes, and every record is at a version that was written (the last
    /// one unless the damage forced a roll-back).
    fn check_damaged_index(store: &NodeStore, written: &Written, what: &str) -> bool {
        for (chunk, loc) in &written.chunks {
            let got = store
                .get(*chunk.name())
                .unwrap_or_else(|e| panic!("{what}: reading a chunk: {e}"));
            assert_eq!(got.as_ref(), Some(chunk), "{what}: chunk at {loc:?}");
        }
        let mut latest = true;
        for (name, versions) in &written.records {
            let record = store
                .record(name)
                .unwrap_or_else(|e| panic!("{what}: reading record {name}: {e}"))
                .unwrap_or_else(|| panic!("{what}: record {name} lost"));
            assert!(versions.contains(&record), "{what}: a record never written");
            latest &= versions.last() == Some(&record);
        }
        assert_eq!(store.chunk_count(), written.chunks.len() as u64, "{what}");
        assert_eq!(store.index_len().unwrap(), written.chunks.len() as u64);
        let names = store.chunk_names_after(None, 10_000).unwrap();
        assert_eq!(names.len(), written.chunks.len(), "{what}");
        let records = store.records_after(None, 10_000).unwrap();
        assert_eq!(records.len(), written.records.len(), "{what}");
        store.flush().unwrap();
        latest
    }

    #[test]
    fn a_damaged_index_is_repaired_or_refused_and_never_serves_wrong_bytes() {
        const CASES: u64 = 256;
        let mut rng = Rng(2);
        let original = tempfile::tempdir().unwrap();
        let written = Arc::new(write_store(original.path(), &mut rng));
        let len = std::fs::metadata(original.path().join("index.redb"))
            .unwrap()
            .len();
        let (mut latest, mut rolled_back, mut refused) = (0, 0, Vec::new());
        for case in 0..CASES {
            let copy = copy_store(original.path());
            let path = copy.path().join("index.redb");
            let mut bytes = std::fs::read(&path).unwrap();
            let at = rng.below(len) as usize;
            let what = match case % 4 {
                0 => {
                    bytes.truncate(at);
                    format!("index of {len} bytes cut at {at}")
                }
                1 => {
                    let bit = rng.below(8);
                    bytes[at] ^= 1 << bit;
                    format!("index of {len} bytes with bit {bit} of byte {at} flipped")
                }
                2 => {
                    let end = (at + 1 + rng.below(512) as usize).min(bytes.len());
                    let junk = rng.bytes(end - at);
                    bytes[at..end].copy_from_slice(&junk);
                    format!("index of {len} bytes overwritten at {at}..{end}")
                }
                _ => {
                    // A page that never reached the disk.
                    let page = at / 4096 * 4096;
                    let end = (page + 4096).min(bytes.len());
                    bytes[page..end].fill(0);
                    format!("index of {len} bytes with the page at {page} zeroed")
                }
            };
            std::fs::write(&path, bytes).unwrap();
            let written = written.clone();
            let result = bounded(
                &what.clone(),
                move || match NodeStore::open_with_segment_limit(
                    copy.path(),
                    1 << 30,
                    SEGMENT_LIMIT,
                ) {
                    Ok(store) => Ok(check_damaged_index(&store, &written, &what)),
                    Err(e) => Err(e),
                },
            );
            match result {
                Ok(true) => latest += 1,
                Ok(false) => rolled_back += 1,
                Err(e) => {
                    assert!(matches!(e, NodeStoreError::Index(_)), "{e}");
                    refused.push(e.to_string());
                }
            }
        }
        assert!(latest > 0, "some damage leaves the data intact");
        assert!(!refused.is_empty(), "some damage is beyond repair");
        eprintln!(
            "damaged index: {latest} of {CASES} copies opened intact, {rolled_back} opened \
             rolled back, {} refused (e.g. {:?})",
            refused.len(),
            refused.first()
        );
    }
}
