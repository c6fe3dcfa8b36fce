//! Mutable-record benchmark on a 10-node loopback testnet (K = 5).
//!
//! ```text
//! cargo run --release -p safe-testkit --example bench_mutable [RECORDS] [UPDATES] [CONCURRENCY]
//! ```
//!
//! Starts 10 nodes in this process on 127.0.0.1 (ephemeral ports, a temp
//! dir removed at the end), then measures, each through the real client
//! (every write to the whole close group, durable on each node before it
//! answers; every read from the whole group, every copy verified):
//!
//! 1. creates of RECORDS records (default 200);
//! 2. updates across those records, CONCURRENCY in flight (default 64),
//!    UPDATES in all (default 4000): each writer keeps its record's last
//!    state, as an app that owns it does, so an update is one write;
//! 3. the same with a read before every write (`update_record`, what the
//!    CLI does);
//! 4. sequential updates to one record (each waits for the previous);
//! 5. read latency: 1000 sequential verified reads, median and p99.

use std::time::{Duration, Instant};

use futures::StreamExt;
use safe_client::Connection;
use safe_client::mutable::{new_create, prepare};
use safe_node::testnet::TestnetConfig;
use safe_protocol::XorName;
use safe_protocol::mutable::{Change, Record, SigningKey, Write, record_address};

use safe_testkit::K;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn set(i: usize) -> Change {
    Change::Set {
        key: b"counter".to_vec(),
        value: i.to_string().into_bytes(),
    }
}

/// One write on a record whose state the caller keeps.
async fn write_next(c: &Connection, record: &mut Record, key: &SigningKey, i: usize) {
    let mut op = prepare(record, set(i)).expect("prepare");
    op.sign(key);
    let write = Write::Op(op);
    c.write_record(&write).await.expect("update");
    record.apply(&write).expect("apply locally");
}

fn rate(n: usize, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let (records, updates, concurrency) = (arg(1, 200), arg(2, 4000), arg(3, 64));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = TestnetConfig::new(dir.path());
    config.nodes = 10;
    config.node.close_group = K;
    let net = safe_testkit::start(config).await;
    let c = safe_testkit::client(&net).await;
    let key = SigningKey::from_bytes(&[7; 32]);

    // 1. Creates.
    let started = Instant::now();
    let names: Vec<(String, XorName)> = (0..records)
        .map(|i| {
            let n = format!("bench-{i}");
            let a = record_address(n.as_bytes(), 1);
            (n, a)
        })
        .collect();
    let mut states: Vec<Record> = futures::stream::iter(names.iter().map(|(n, _)| {
        let (c, key) = (c.clone(), key.clone());
        async move {
            let create = new_create(n.as_bytes(), 1, vec![], 1, false, &key).expect("create");
            c.write_record(&Write::Create(create.clone()))
                .await
                .expect("create");
            Record::create(create).expect("record")
        }
    }))
    .buffer_unordered(concurrency)
    .collect()
    .await;
    let t = started.elapsed();
    println!(
        "creates: {records} in {:.2} s = {:.0}/s",
        t.as_secs_f64(),
        rate(records, t)
    );

    // 2. Updates across many records, state kept by the writer.
    let per = updates.div_ceil(concurrency.min(records));
    let started = Instant::now();
    let lanes = concurrency.min(records);
    let mut chunks: Vec<Vec<Record>> = (0..lanes).map(|_| Vec::new()).collect();
    for (i, r) in states.drain(..).enumerate() {
        chunks[i % lanes].push(r);
    }
    let chunks: Vec<Vec<Record>> = futures::future::join_all(chunks.into_iter().map(|mut mine| {
        let (c, key) = (c.clone(), key.clone());
        async move {
            for i in 0..per {
                let n = mine.len();
                write_next(&c, &mut mine[i % n], &key, i).await;
            }
            mine
        }
    }))
    .await;
    let t = started.elapsed();
    let done = per * lanes;
    println!(
        "updates across {records} records ({lanes} in flight, state kept): {done} in {:.2} s = {:.0}/s",
        t.as_secs_f64(),
        rate(done, t)
    );

    // 3. The same with a read before each write.
    let n = (updates / 4).max(lanes);
    let per = n.div_ceil(lanes);
    let started = Instant::now();
    futures::future::join_all((0..lanes).map(|lane| {
        let (c, key) = (c.clone(), key.clone());
        let names = &names;
        async move {
            // Each lane has records of its own: racing writers would make
            // some updates fail (correctly), which is not what is measured.
            let own = names.len().saturating_sub(lane).div_ceil(lanes).max(1);
            for i in 0..per {
                let (_, name) = &names[(lane + (i % own) * lanes) % names.len()];
                c.update_record(*name, set(i), std::slice::from_ref(&key))
                    .await
                    .expect("update_record");
            }
        }
    }))
    .await;
    let t = started.elapsed();
    println!(
        "updates across {records} records ({lanes} in flight, read + write): {} in {:.2} s = {:.0}/s",
        per * lanes,
        t.as_secs_f64(),
        rate(per * lanes, t)
    );

    // 4. One record, sequential.
    let first = chunks
        .into_iter()
        .next()
        .and_then(|v| v.into_iter().next())
        .expect("a record");
    // Step 3 moved it on: start from the network's current state.
    let mut one = c.get_record(first.address()).await.expect("read");
    let single = 500;
    let started = Instant::now();
    for i in 0..single {
        write_next(&c, &mut one, &key, i).await;
    }
    let t = started.elapsed();
    println!(
        "sequential updates to one record (state kept): {single} in {:.2} s = {:.0}/s",
        t.as_secs_f64(),
        rate(single, t)
    );
    let started = Instant::now();
    let name = one.address();
    for i in 0..single / 5 {
        c.update_record(name, set(i), std::slice::from_ref(&key))
            .await
            .expect("update_record");
    }
    let t = started.elapsed();
    println!(
        "sequential updates to one record (read + write): {} in {:.2} s = {:.0}/s",
        single / 5,
        t.as_secs_f64(),
        rate(single / 5, t)
    );

    // 5. Read latency.
    let mut lat = Vec::with_capacity(1000);
    for i in 0..1000 {
        let (_, name) = &names[i % names.len()];
        let started = Instant::now();
        c.get_record(*name).await.expect("read");
        lat.push(started.elapsed());
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "verified reads: 1000 sequential, median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(lat[lat.len() / 2]),
        ms(lat[lat.len() * 99 / 100]),
        ms(lat[lat.len() - 1])
    );

    c.shutdown().await;
    net.down().await;
}
