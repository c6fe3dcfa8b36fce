//! Crash consistency of a node's store, over the network (issue 15): one
//! `safe node run` process takes chunks and mutable record writes as fast
//! as a client in this test can send them, and is killed with SIGKILL at a
//! random moment. Restarted from the same directory, it must open its store
//! and still hold every write it acknowledged: each chunk with exactly its
//! bytes, each record at the acknowledged version (or at the one write that
//! was in flight when the node died, which may or may not have landed).
//!
//! `SAFE_CRASH_ROUNDS` kills (default 8), `SAFE_CRASH_SEED` to replay a
//! run (the seed is printed). `scripts/crash.sh` runs the long version.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Guard, SAFE};
use safe_client::mutable::{MutableError, new_create, prepare};
use safe_client::{ChunkStore, Connection, Record, SigningKey, XorName};
use safe_network::libp2p::Multiaddr;
use safe_protocol::mutable::{Change, Write, record_address};
use safe_protocol::{Chunk, MAX_CHUNK_SIZE};
use safe_testkit::{Rng, bytes_for};

/// A chunk the node acknowledged: its bytes are `bytes_for(seed, len)`.
#[derive(Clone, Copy)]
struct Acked {
    seed: u64,
    len: usize,
    name: XorName,
}

fn chunk_of(seed: u64, len: usize) -> Chunk {
    Chunk::new(bytes_for(seed, len)).unwrap()
}

/// Mostly small chunks, some of many blocks, a few of the largest size
/// (not too many: a long run writes gigabytes as it is).
fn chunk_len(rng: &mut Rng) -> usize {
    match rng.below(40) {
        0..=23 => 1 + rng.below(8192) as usize,
        24..=38 => 1 + rng.below(64 * 1024) as usize,
        _ => MAX_CHUNK_SIZE - rng.below(4096) as usize,
    }
}

/// One record a writer owns, as far as the client knows it.
struct Tracked {
    address: XorName,
    key: SigningKey,
    /// The record writer that updates it.
    writer: usize,
    /// The last acknowledged version (`None`: the create was not).
    acked: Option<Record>,
    /// The write that failed when the node died, as the record would be
    /// had it landed: the node may hold either.
    pending: Option<Record>,
    /// Written to since it was last checked.
    touched: bool,
}

/// Everything the test remembers across rounds.
#[derive(Default)]
struct Ledger {
    chunks: Vec<Acked>,
    records: Vec<Tracked>,
    chunk_writes: u64,
    record_writes: u64,
    /// Writes that failed before the node was killed (there must be none).
    early_failures: Vec<String>,
}

/// What the checks found, over all rounds.
#[derive(Default)]
struct Checked {
    chunks: u64,
    records: u64,
    /// In-flight record writes found applied after the restart, and not.
    landed: u64,
    not_landed: u64,
}

/// A running node process (killed when dropped) and its address.
struct Node {
    guard: Guard,
    addr: Multiaddr,
}

fn start_node(dir: &Path, log: &Path) -> Node {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Command::new(SAFE)
        .args(["--close-group", "1", "node", "run", "--dir"])
        .arg(dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--id-difficulty", "0"])
        .env("SAFE_HOME", dir.join("home"))
        .env("SAFE_LOG", "warn")
        .env_remove("SAFE_PEERS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("start the node");
    let stdout = child.stdout.take().unwrap();
    let guard = Guard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let addr = addr.trim().parse().expect("a multiaddr");
                    return Node { guard, addr };
                }
            }
            Err(_) => panic!(
                "the node did not start (does its store open?); its log:\n{}",
                tail(log)
            ),
        }
    }
}

/// The last lines of the node's log.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

async fn connect(node: &Node) -> Arc<Connection> {
    let mut last = None;
    for _ in 0..20 {
        match Connection::connect_to(std::slice::from_ref(&node.addr), 1).await {
            Ok(c) => return Arc::new(c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to the node at {}: {last:?}", node.addr)
}

/// Notes a failed write: expected once the node is killed, a failure of
/// the test before.
fn failed(ledger: &mut Ledger, killed: &AtomicBool, what: String) {
    if !killed.load(Ordering::Acquire) {
        ledger.early_failures.push(what);
    }
}

/// Puts chunks until one fails (the node was killed); remembers those the
/// node acknowledged.
async fn chunk_writer(
    conn: Arc<Connection>,
    ledger: Arc<Mutex<Ledger>>,
    killed: Arc<AtomicBool>,
    mut rng: Rng,
) {
    loop {
        let (seed, len) = (rng.next_u64(), chunk_len(&mut rng));
        let chunk = chunk_of(seed, len);
        let name = *chunk.name();
        let result = conn.put(chunk).await;
        let mut ledger = ledger.lock().unwrap();
        match result {
            Ok(()) => {
                ledger.chunks.push(Acked { seed, len, name });
                ledger.chunk_writes += 1;
            }
            Err(e) => return failed(&mut ledger, &killed, format!("put {name}: {e}")),
        }
    }
}

fn signing_key(rng: &mut Rng) -> SigningKey {
    let mut bytes = [0u8; 32];
    for part in bytes.chunks_mut(8) {
        part.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    SigningKey::from_bytes(&bytes)
}

/// Creates and updates records until a write fails (the node was killed).
/// A write to a record is sent only once the one before it is
/// acknowledged; each record's acknowledged version is remembered, and the
/// write in flight when the node died.
async fn record_writer(
    conn: Arc<Connection>,
    ledger: Arc<Mutex<Ledger>>,
    killed: Arc<AtomicBool>,
    mut rng: Rng,
    writer: usize,
    round: usize,
) {
    for n in 0.. {
        let (index, write, next) = {
            let mut ledger = ledger.lock().unwrap();
            let mine: Vec<usize> = (0..ledger.records.len())
                .filter(|&i| {
                    ledger.records[i].writer == writer && ledger.records[i].acked.is_some()
                })
                .collect();
            if mine.len() < 4 || rng.below(16) == 0 {
                // A new record.
                let key = signing_key(&mut rng);
                let name = format!("crash {round} {writer} {n}").into_bytes();
                let create = new_create(&name, 9, Vec::new(), 1, false, &key).unwrap();
                let record = Record::create(create.clone()).unwrap();
                ledger.records.push(Tracked {
                    address: record_address(&name, 9),
                    key,
                    writer,
                    acked: None,
                    pending: Some(record.clone()),
                    touched: true,
                });
                (ledger.records.len() - 1, Write::Create(create), record)
            } else {
                // An entry of one of them set to new bytes.
                let index = mine[rng.below(mine.len() as u64) as usize];
                let tracked = &mut ledger.records[index];
                let mut next = tracked.acked.clone().unwrap();
                let change = Change::Set {
                    key: format!("k{}", rng.below(8)).into_bytes(),
                    value: bytes_for(rng.next_u64(), rng.below(2000) as usize),
                };
                let mut op = prepare(&next, change).unwrap();
                op.sign(&tracked.key);
                let write = Write::Op(op);
                next.apply(&write).unwrap();
                tracked.pending = Some(next.clone());
                tracked.touched = true;
                (index, write, next)
            }
        };
        let result = conn.write_record(&write).await;
        let mut ledger = ledger.lock().unwrap();
        match result {
            Ok(()) => {
                let tracked = &mut ledger.records[index];
                tracked.acked = Some(next);
                tracked.pending = None;
                ledger.record_writes += 1;
            }
            Err(e) => {
                let address = ledger.records[index].address;
                return failed(
                    &mut ledger,
                    &killed,
                    format!("write to record {address}: {e}"),
                );
            }
        }
    }
}

/// Checks that the node holds the chunks `which` of the ledger, each with
/// exactly its bytes (16 gets at a time).
async fn check_chunks(conn: &Arc<Connection>, chunks: Vec<Acked>, log: &Path) -> u64 {
    let mut checked = 0;
    let mut set = tokio::task::JoinSet::new();
    let mut todo = chunks.into_iter();
    loop {
        while set.len() < 16 {
            let Some(acked) = todo.next() else { break };
            let conn = conn.clone();
            set.spawn(async move { (acked, conn.get(acked.name).await) });
        }
        let Some(done) = set.join_next().await else {
            break;
        };
        let (acked, got) = done.unwrap();
        match got {
            Ok(chunk) => assert!(
                chunk.bytes()[..] == bytes_for(acked.seed, acked.len)[..],
                "chunk {} came back with other bytes",
                acked.name
            ),
            Err(e) => panic!(
                "acknowledged chunk {} ({} bytes) lost: {e}; the node's log:\n{}",
                acked.name,
                acked.len,
                tail(log)
            ),
        }
        checked += 1;
    }
    checked
}

/// Checks the records `which` against what was acknowledged: each must be
/// at its acknowledged version, or at the write that was in flight. The
/// node's copy becomes the one to build on.
async fn check_records(
    conn: &Connection,
    ledger: &Mutex<Ledger>,
    which: Vec<usize>,
    checked: &mut Checked,
    log: &Path,
) {
    for index in which {
        let (address, acked, pending) = {
            let ledger = ledger.lock().unwrap();
            let t = &ledger.records[index];
            (t.address, t.acked.clone(), t.pending.clone())
        };
        let found = match conn.get_record(address).await {
            Ok(r) => Some(r),
            Err(MutableError::NotFound(_)) => None,
            Err(e) => panic!(
                "reading record {address}: {e}; the node's log:\n{}",
                tail(log)
            ),
        };
        let as_acked = found == acked;
        let as_pending = pending.is_some() && found == pending;
        assert!(
            as_acked || as_pending,
            "record {address}: acknowledged at version {:?}, in flight {:?}, found {:?}; \
             the node's log:\n{}",
            acked.as_ref().map(|r| r.state.version),
            pending.as_ref().map(|r| r.state.version),
            found.as_ref().map(|r| r.state.version),
            tail(log)
        );
        if pending.is_some() {
            match as_pending {
                true => checked.landed += 1,
                false => checked.not_landed += 1,
            }
        }
        checked.records += 1;
        let mut ledger = ledger.lock().unwrap();
        let t = &mut ledger.records[index];
        t.acked = found;
        t.pending = None;
        t.touched = false;
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}: not a number")),
    )
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let rounds = env_number("SAFE_CRASH_ROUNDS").unwrap_or(8) as usize;
    let seed = env_number("SAFE_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("crash test: {rounds} rounds, SAFE_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let (dir, log) = (tmp.path().join("node"), tmp.path().join("node.log"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut checked = Checked::default();
    let started = Instant::now();
    let mut node = start_node(&dir, &log);
    let mut conn = rt.block_on(connect(&node));
    // Chunks acknowledged before this index were checked after an earlier
    // crash: a sample of them is checked again after each one.
    let mut checked_before = 0;
    for round in 0..rounds {
        let killed = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for _ in 0..3 {
            let (c, l, k) = (conn.clone(), ledger.clone(), killed.clone());
            writers.push(rt.spawn(chunk_writer(c, l, k, Rng(rng.next_u64()))));
        }
        for w in 0..2 {
            let (c, l, k) = (conn.clone(), ledger.clone(), killed.clone());
            writers.push(rt.spawn(record_writer(c, l, k, Rng(rng.next_u64()), w, round)));
        }
        std::thread::sleep(Duration::from_millis(50 + rng.below(1451)));
        killed.store(true, Ordering::Release);
        node.guard.0.kill().unwrap();
        node.guard.0.wait().unwrap();
        rt.block_on(async {
            conn.shutdown().await;
            for w in writers {
                match tokio::time::timeout(Duration::from_secs(30), w).await {
                    Ok(joined) => joined.unwrap(),
                    Err(_) => panic!("a writer is stuck 30 s after the node was killed"),
                }
            }
        });
        {
            let ledger = ledger.lock().unwrap();
            assert!(
                ledger.early_failures.is_empty(),
                "writes failed before the node was killed: {:?}; the node's log:\n{}",
                ledger.early_failures,
                tail(&log)
            );
        }

        // Up again from the same directory: everything acknowledged is there.
        node = start_node(&dir, &log);
        conn = rt.block_on(connect(&node));
        let (chunks, records) = {
            let ledger = ledger.lock().unwrap();
            let mut chunks = ledger.chunks[checked_before..].to_vec();
            for _ in 0..64.min(checked_before) {
                chunks.push(ledger.chunks[rng.below(checked_before as u64) as usize]);
            }
            let records: Vec<usize> = (0..ledger.records.len())
                .filter(|&i| ledger.records[i].touched)
                .collect();
            checked_before = ledger.chunks.len();
            (chunks, records)
        };
        checked.chunks += rt.block_on(check_chunks(&conn, chunks, &log));
        rt.block_on(check_records(&conn, &ledger, records, &mut checked, &log));
    }
    // Last, every write acknowledged in the whole run, once more.
    let (chunks, records) = {
        let ledger = ledger.lock().unwrap();
        (ledger.chunks.clone(), (0..ledger.records.len()).collect())
    };
    checked.chunks += rt.block_on(check_chunks(&conn, chunks, &log));
    rt.block_on(check_records(&conn, &ledger, records, &mut checked, &log));
    rt.block_on(conn.shutdown());
    drop(node);

    let ledger = ledger.lock().unwrap();
    let recoveries = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("store recovered")
        .count();
    eprintln!(
        "crash test: {rounds} SIGKILLs in {:.1} s; acknowledged {} chunk puts ({} MiB) and {} \
         record writes ({} records); checked {} chunk reads and {} record reads, all intact; \
         {} writes in flight at a kill had landed, {} had not; {recoveries} restarts \
         re-indexed chunks written after the last flush",
        started.elapsed().as_secs_f64(),
        ledger.chunk_writes,
        ledger.chunks.iter().map(|c| c.len as u64).sum::<u64>() >> 20,
        ledger.record_writes,
        ledger.records.len(),
        checked.chunks,
        checked.records,
        checked.landed,
        checked.not_landed,
    );
    assert!(
        ledger.chunk_writes > 0 && ledger.record_writes > 0,
        "nothing was written"
    );
}
