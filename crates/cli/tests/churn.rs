//! Churn soak (issue 15; the model is Autonomi's `data_with_churn`): real
//! `safe node run` processes on 127.0.0.1 are killed with `kill -9`,
//! restarted from their directories and replaced by brand-new ones while
//! clients keep putting files and records and reading back everything put
//! so far.
//!
//! Passes when every acknowledged write reads back identical throughout
//! and at the end, and when, within 60 s of the churn stopping, every
//! chunk any node holds has K live copies and every record K copies of
//! its latest version, counted by asking every node for its live listing
//! (`/chunks`, `/records` on its metrics address).
//!
//! Settings (environment): `SAFE_CHURN_SECS` (how long the churn lasts;
//! 120 by default, the CI run; `scripts/churn.sh` runs 600),
//! `SAFE_CHURN_NODES` (25), `SAFE_CHURN_EVERY_SECS` (a node changes this
//! often; 10), `SAFE_CHURN_SEED` (the random choices; printed, so a
//! failing run can be repeated).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::SAFE;
use safe_testkit::Rng;
use safe_testkit::safe_client::{Address, Record};
use safe_testkit::safe_client::{Client, Connection, NewRecord, SigningKey, XorName};

/// The close group size of the network (the default).
const K: usize = 5;
/// The heal deadline: every copy back within this long after the churn.
const HEAL_WITHIN: Duration = Duration::from_secs(60);
/// How long one client operation may take before it counts as failed.
const OP_TIMEOUT: Duration = Duration::from_secs(90);
/// A writer's pause between operations.
const PAUSE: Duration = Duration::from_millis(50);
/// Attempts at reading an acknowledged item before it counts as lost.
const READ_ATTEMPTS: u32 = 4;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One node: its directory, and its process while it runs.
struct Node {
    dir: PathBuf,
    running: Option<Running>,
    /// Abandoned for good (killed and never restarted).
    gone: bool,
}

struct Running {
    child: Child,
    addr: String,
    metrics: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(r) = &mut self.running {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// Starts `safe node run` in `dir` joining through `peers`; waits for its
/// listening and metrics addresses.
fn spawn_node(dir: &Path, peers: &[String]) -> Running {
    std::fs::create_dir_all(dir).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))
        .unwrap();
    let mut cmd = Command::new(SAFE);
    cmd.args(["node", "run", "--dir"])
        .arg(dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--metrics", "127.0.0.1:0", "--id-difficulty", "0"])
        .env("RUST_LOG", "warn")
        .env_remove("SAFE_PEERS")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    for p in peers {
        cmd.args(["--peer", p]);
    }
    let mut child = cmd.spawn().expect("start a node");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node in {} did not report its addresses", dir.display());
        };
        if let Some(a) = line.strip_prefix("listening on ")
            && a.contains("/tcp/")
        {
            addr = Some(a.to_string());
        }
        if let Some(m) = line.strip_prefix("metrics on http://") {
            let metrics = m.trim_end_matches("/metrics").parse().unwrap();
            return Running {
                child,
                addr: addr.expect("a TCP address before the metrics line"),
                metrics,
            };
        }
    }
}

/// The body of `GET path` on a node's metrics address (`None` if the node
/// cannot be asked, e.g. it was just killed).
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then_some(())
        .or_else(|| head.starts_with("HTTP/1.1 200").then_some(()))?;
    Some(body.to_string())
}

/// The network under churn.
struct Net {
    root: PathBuf,
    nodes: Vec<Node>,
    next_id: usize,
}

impl Net {
    fn running(&self) -> impl Iterator<Item = (usize, &Running)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.running.as_ref().map(|r| (i, r)))
    }

    fn contacts(&self, rng: &mut Rng, n: usize) -> Vec<String> {
        let live: Vec<String> = self.running().map(|(_, r)| r.addr.clone()).collect();
        (0..n.min(live.len()))
            .map(|_| live[rng.index(live.len())].clone())
            .collect()
    }

    fn add(&mut self, rng: &mut Rng) -> usize {
        let dir = self.root.join(format!("node-{}", self.next_id));
        self.next_id += 1;
        let peers = self.contacts(rng, 3);
        let running = spawn_node(&dir, &peers);
        self.nodes.push(Node {
            dir,
            running: Some(running),
            gone: false,
        });
        self.nodes.len() - 1
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut r) = self.nodes[i].running.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    fn restart(&mut self, i: usize, rng: &mut Rng) {
        let peers = self.contacts(rng, 3);
        let running = spawn_node(&self.nodes[i].dir, &peers);
        self.nodes[i].running = Some(running);
    }

    fn down(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.running.is_none() && !n.gone)
            .map(|(i, _)| i)
            .collect()
    }
}

/// What the clients wrote and had acknowledged.
#[derive(Default)]
struct Acked {
    files: Vec<(Address, Arc<Vec<u8>>)>,
    /// Record address -> (owner index, version acknowledged).
    records: BTreeMap<XorName, (usize, u64)>,
}

#[derive(Default)]
struct Counts {
    puts: AtomicU64,
    put_failed: AtomicU64,
    record_writes: AtomicU64,
    record_failed: AtomicU64,
    reads: AtomicU64,
    read_retried: AtomicU64,
    lost: AtomicU64,
    wrong: AtomicU64,
}

fn record_ok(record: &Record, acked_version: u64) -> Result<(), String> {
    let v = record.state.version;
    if v < acked_version {
        return Err(format!("version {v} < acknowledged {acked_version}"));
    }
    // Each update sets "n" to the version it makes.
    let n = record.state.entries.get(b"n".as_slice()).cloned();
    let expected = (v > 0).then(|| v.to_string().into_bytes());
    if n != expected {
        return Err(format!("version {v} holds n = {n:?}"));
    }
    Ok(())
}

/// Reads back one acknowledged item with `read`, whose answer says
/// whether what it read is right; retries a failed read (not a wrong
/// one), and counts the outcome.
async fn check<F, Fut>(what: String, counts: &Counts, mut read: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<(), String>, String>>,
{
    for attempt in 1..=READ_ATTEMPTS {
        match tokio::time::timeout(OP_TIMEOUT, read()).await {
            Ok(Ok(verdict)) => {
                counts.reads.fetch_add(1, Ordering::Relaxed);
                if let Err(why) = verdict {
                    counts.wrong.fetch_add(1, Ordering::Relaxed);
                    eprintln!("WRONG {what}: {why}");
                }
                return;
            }
            Ok(Err(e)) if attempt == READ_ATTEMPTS => eprintln!("LOST {what}: {e}"),
            Err(_) if attempt == READ_ATTEMPTS => eprintln!("LOST {what}: timed out"),
            _ => {
                counts.read_retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(3)).await;
                continue;
            }
        }
        counts.lost.fetch_add(1, Ordering::Relaxed);
    }
}

async fn check_file(client: &Client, address: &Address, bytes: &[u8], counts: &Counts) {
    check(format!("file {address}"), counts, || async {
        let got = client.get_bytes(address, 1 << 30).await;
        got.map(|got| match got == bytes {
            true => Ok(()),
            false => Err("other bytes".to_string()),
        })
        .map_err(|e| e.to_string())
    })
    .await
}

async fn check_record(client: &Client, address: XorName, version: u64, counts: &Counts) {
    check(format!("record {address}"), counts, || async {
        let got = client.get_record(address).await;
        got.map(|r| record_ok(&r, version))
            .map_err(|e| e.to_string())
    })
    .await
}

/// Reads back everything acknowledged so far, once.
async fn sweep(client: &Client, acked: &Mutex<Acked>, counts: &Counts) {
    let (files, records) = {
        let a = acked.lock().unwrap();
        (a.files.clone(), a.records.clone())
    };
    for (address, bytes) in &files {
        check_file(client, address, bytes, counts).await;
    }
    for (address, (_, version)) in records {
        check_record(client, address, version, counts).await;
    }
}

/// One writer: files of 1 byte to 1.5 MiB, record creates and updates.
async fn writer(
    id: usize,
    client: Client,
    acked: Arc<Mutex<Acked>>,
    keys: Arc<Vec<SigningKey>>,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng = Rng(seed | 1);
    let mut serial = 0u64;
    let mut mine: Vec<XorName> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(PAUSE).await;
        serial += 1;
        let roll = rng.index(100);
        if roll < 60 || (roll >= 75 && mine.is_empty()) {
            // Mostly small files, a fifth up to 1.5 MiB (several chunks):
            // the soak is about keeping data, not about throughput, and a
            // 10-minute run must not fill the disk.
            let len = if rng.chance(80) {
                1 + rng.index(64 * 1024)
            } else {
                1 + rng.index(1536 * 1024)
            };
            let bytes = safe_testkit::bytes_for(seed ^ (serial << 20), len);
            match tokio::time::timeout(OP_TIMEOUT, client.put_bytes(bytes.clone())).await {
                Ok(Ok(report)) => {
                    counts.puts.fetch_add(1, Ordering::Relaxed);
                    acked
                        .lock()
                        .unwrap()
                        .files
                        .push((report.address, Arc::new(bytes)));
                }
                _ => {
                    counts.put_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else if roll < 75 {
            let new = NewRecord::named(format!("churn {seed} {id} {serial}"));
            let address = new.address();
            match tokio::time::timeout(OP_TIMEOUT, client.create_record(new, &keys[id])).await {
                Ok(Ok(_)) => {
                    counts.record_writes.fetch_add(1, Ordering::Relaxed);
                    mine.push(address);
                    acked.lock().unwrap().records.insert(address, (id, 0));
                }
                _ => {
                    counts.record_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else {
            let address = mine[rng.index(mine.len())];
            // The version this update makes: one past the record's own
            // (the writer is its only owner, so no one else changes it).
            let current = match tokio::time::timeout(OP_TIMEOUT, client.get_record(address)).await {
                Ok(Ok(r)) => r.state.version,
                _ => {
                    counts.record_failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let next = current + 1;
            let write = client.set_entry(address, "n", next.to_string(), &keys[id..=id]);
            match tokio::time::timeout(OP_TIMEOUT, write).await {
                Ok(Ok(record)) => {
                    counts.record_writes.fetch_add(1, Ordering::Relaxed);
                    let v = record.state.version;
                    let mut a = acked.lock().unwrap();
                    let entry = a.records.entry(address).or_insert((id, 0));
                    entry.1 = entry.1.max(v);
                }
                _ => {
                    counts.record_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Copies of every chunk and record on the running nodes: (chunks with
/// fewer than K, records with fewer than K holders of `latest`, a
/// histogram of chunk copy counts).
fn copy_counts(
    net: &Net,
    latest: &HashMap<XorName, String>,
) -> Option<(usize, usize, BTreeMap<usize, usize>)> {
    let mut chunks: HashMap<String, usize> = HashMap::new();
    let mut records: HashMap<String, usize> = HashMap::new();
    for (_, r) in net.running() {
        for line in http_get(r.metrics, "/chunks")?.lines() {
            *chunks.entry(line.to_string()).or_default() += 1;
        }
        for line in http_get(r.metrics, "/records")?.lines() {
            *records.entry(line.to_string()).or_default() += 1;
        }
    }
    let short_chunks = chunks.values().filter(|&&c| c < K).count();
    let short_records = latest
        .iter()
        .filter(|(address, digest)| {
            records
                .get(&format!("{} {digest}", address.to_hex()))
                .copied()
                .unwrap_or(0)
                < K
        })
        .count();
    let mut histogram = BTreeMap::new();
    for c in chunks.values() {
        *histogram.entry(*c).or_default() += 1;
    }
    Some((short_chunks, short_records, histogram))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_data_survives_churn_and_heals_to_k_copies() {
    let secs = env_u64("SAFE_CHURN_SECS", 120);
    let size = env_u64("SAFE_CHURN_NODES", 25) as usize;
    let every = Duration::from_secs(env_u64("SAFE_CHURN_EVERY_SECS", 10).max(1));
    let seed = env_u64(
        "SAFE_CHURN_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    eprintln!("churn: {size} nodes, {secs} s, a change every {every:?}, seed {seed}");
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed | 1);
    let net = Arc::new(Mutex::new(Net {
        root: tmp.path().to_path_buf(),
        nodes: Vec::new(),
        next_id: 0,
    }));
    let started = Instant::now();
    {
        let mut n = net.lock().unwrap();
        for _ in 0..size {
            n.add(&mut rng);
        }
    }
    eprintln!("started {size} node processes in {:?}", started.elapsed());
    // Let routing tables fill before the clients join.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let contacts: Vec<_> = {
        let n = net.lock().unwrap();
        n.running()
            .take(4)
            .map(|(_, r)| r.addr.parse().unwrap())
            .collect()
    };
    let connect = || async {
        Client::from(
            Connection::connect_to(&contacts, K)
                .await
                .expect("client connects"),
        )
    };
    let writers = 2;
    let keys: Arc<Vec<SigningKey>> = Arc::new(
        (0..writers)
            .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
            .collect(),
    );
    let acked = Arc::new(Mutex::new(Acked::default()));
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..writers {
        let client = connect().await;
        tasks.spawn(writer(
            id,
            client,
            acked.clone(),
            keys.clone(),
            counts.clone(),
            stop.clone(),
            seed.wrapping_add(id as u64 + 1),
        ));
    }
    // The reader: sweeps everything acknowledged so far, over and over.
    let reader = connect().await;
    let sweeps = Arc::new(AtomicU64::new(0));
    {
        let (acked, counts, stop, sweeps) =
            (acked.clone(), counts.clone(), stop.clone(), sweeps.clone());
        let reader = reader.clone();
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                sweep(&reader, &acked, &counts).await;
                sweeps.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    // The churn.
    let max_down = size / 3;
    let churn_end = Instant::now() + Duration::from_secs(secs);
    let (mut kills, mut restarts, mut fresh, mut max_seen_down) = (0, 0, 0, 0);
    while Instant::now() < churn_end {
        tokio::time::sleep(every).await;
        let net = net.clone();
        let mut r = Rng(rng.next_u64() | 1);
        let (k, rs, f, down) = tokio::task::spawn_blocking(move || {
            let mut n = net.lock().unwrap();
            let down = n.down();
            let running: Vec<usize> = n.running().map(|(i, _)| i).collect();
            let (mut k, mut rs, mut f) = (0, 0, 0);
            // Kill while fewer than a third are down, at most running
            // `size` nodes; otherwise bring one back (its data intact) or
            // give it up for a brand-new node.
            if down.len() < max_down && (r.chance(65) || running.len() > size) {
                n.kill(running[r.index(running.len())]);
                k = 1;
            } else if !down.is_empty() && r.chance(60) {
                n.restart(down[r.index(down.len())], &mut r);
                rs = 1;
            } else {
                if let Some(&i) = down.get(r.index(down.len())) {
                    n.nodes[i].gone = true;
                }
                n.add(&mut r);
                f = 1;
            }
            let down = n.down().len();
            (k, rs, f, down)
        })
        .await
        .unwrap();
        kills += k;
        restarts += rs;
        fresh += f;
        max_seen_down = max_seen_down.max(down);
        let (files, records) = {
            let a = acked.lock().unwrap();
            (a.files.len(), a.records.len())
        };
        eprintln!(
            "t={:>4}s kills {kills} restarts {restarts} new {fresh}; down now {down}; \
             acked files {files} records {records}; reads {} retried {} lost {} wrong {}",
            started.elapsed().as_secs(),
            counts.reads.load(Ordering::Relaxed),
            counts.read_retried.load(Ordering::Relaxed),
            counts.lost.load(Ordering::Relaxed),
            counts.wrong.load(Ordering::Relaxed),
        );
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let churn_stopped = Instant::now();

    // The latest version of every record, as a client reads it now.
    let records: Vec<XorName> = acked.lock().unwrap().records.keys().copied().collect();
    let mut latest = HashMap::new();
    for address in records {
        let record = tokio::time::timeout(OP_TIMEOUT, reader.get_record(address))
            .await
            .expect("record read in time")
            .expect("record read");
        latest.insert(address, hex::encode(record.digest()));
    }

    // Healing: every chunk and record back to K live copies.
    let mut healed = None;
    let mut last = None;
    while churn_stopped.elapsed() < HEAL_WITHIN {
        let counted = {
            let net = net.clone();
            let latest = latest.clone();
            tokio::task::spawn_blocking(move || copy_counts(&net.lock().unwrap(), &latest))
                .await
                .unwrap()
        };
        if let Some((short_chunks, short_records, histogram)) = counted {
            let done = short_chunks == 0 && short_records == 0;
            last = Some((short_chunks, short_records, histogram));
            if done {
                healed = Some(churn_stopped.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (short_chunks, short_records, histogram) = last.expect("every node could be asked");
    let total_chunks: usize = histogram.values().sum();
    eprintln!(
        "after the churn: {total_chunks} chunks, copies {histogram:?}; \
         {short_chunks} chunks and {short_records} records short of {K}; healed in {healed:?}"
    );

    // `safe node chunks --dir` of a running node is its live listing.
    {
        let n = net.lock().unwrap();
        let (i, r) = n.running().next().expect("a running node");
        let listed = Command::new(SAFE)
            .args(["node", "chunks", "--dir"])
            .arg(&n.nodes[i].dir)
            .output()
            .unwrap();
        assert!(listed.status.success(), "{listed:?}");
        assert_eq!(
            String::from_utf8(listed.stdout).unwrap(),
            http_get(r.metrics, "/chunks").unwrap(),
            "the CLI lists what the running node says it holds"
        );
    }

    // A last read of everything.
    sweep(&reader, &acked, &counts).await;
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (files, recs) = {
        let a = acked.lock().unwrap();
        (a.files.len(), a.records.len())
    };
    eprintln!(
        "churn result: {secs} s, {size} nodes, {kills} kills, {restarts} restarts, {fresh} new, \
         at most {max_seen_down} down; {files} files ({} puts failed unacknowledged), \
         {recs} records ({} record writes acknowledged, {} failed); {} sweeps, {} reads, \
         {} retried, {} lost, {} wrong",
        c(&counts.put_failed),
        c(&counts.record_writes),
        c(&counts.record_failed),
        sweeps.load(Ordering::Relaxed),
        c(&counts.reads),
        c(&counts.read_retried),
        c(&counts.lost),
        c(&counts.wrong),
    );
    assert!(files > 0 && recs > 0, "the clients got writes through");
    assert!(kills > 0 && (restarts + fresh) > 0, "the network churned");
    assert_eq!(c(&counts.wrong), 0, "an acknowledged write read back wrong");
    assert_eq!(
        c(&counts.lost),
        0,
        "an acknowledged write could not be read"
    );
    assert!(
        healed.is_some(),
        "not every chunk and record was back to {K} copies within {HEAL_WITHIN:?}"
    );
    drop(net);
}
