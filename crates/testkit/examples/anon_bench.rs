//! Anonymous access against direct access, in the same run (issue 16):
//! download speed of one file, get latency of small chunks, circuit build
//! time, and the CPU the process spends per byte each way.
//!
//! ```text
//! cargo run --release -p safe-testkit --example anon_bench [-- NODES MIB GETS]
//! ```
//!
//! Defaults: 16 in-process nodes on 127.0.0.1, a 64 MiB file, 200 gets of
//! 4 KiB chunks. Everything (nodes, relays, client) shares this process
//! and the machine's cores, so CPU per byte counts the whole path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use safe_client::anonymous::{Circuit, choose_path};
use safe_client::{ChunkStore, Client, Connection};
use safe_protocol::{Chunk, XorName};
use safe_testkit::{K, bytes_for, testnet};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("NODES MIB GETS are numbers"))
        .collect();
    let nodes = args.first().copied().unwrap_or(16);
    let mib = args.get(1).copied().unwrap_or(64);
    let gets = args.get(2).copied().unwrap_or(200);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let net = testnet(dir.path(), nodes).await;
    let network = safe_network::network_id();
    let conn = Connection::connect_to(&net.contacts().await, K)
        .await
        .expect("connect");
    let direct = Client::from(conn.clone());
    let anon_conn = Connection::connect_to(&net.contacts().await, K)
        .await
        .expect("connect");
    let anonymous = Client::from(anon_conn.clone()).anonymous(network, None);

    // One file, both ways.
    let data = bytes_for(1, mib << 20);
    let address = direct.put_bytes(data.clone()).await.expect("put").address;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let got = direct
        .get_bytes(&address, u64::MAX)
        .await
        .expect("direct get");
    let (direct_s, direct_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    assert_eq!(got, data);
    // The first anonymous read also takes the sample and builds circuits.
    let _ = anonymous
        .get_bytes(&address, u64::MAX)
        .await
        .expect("warm-up");
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let got = anonymous
        .get_bytes(&address, u64::MAX)
        .await
        .expect("anonymous get");
    let (anon_s, anon_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    assert_eq!(got, data);
    let mb = (mib << 20) as f64 / 1e6;
    println!(
        "== {nodes} nodes, {mib} MiB file, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "download   direct {:>7.1} MB/s ({:.2} CPU-s/GB)   anonymous {:>7.1} MB/s ({:.2} CPU-s/GB)",
        mb / direct_s,
        direct_cpu / mb * 1000.0,
        mb / anon_s,
        anon_cpu / mb * 1000.0
    );

    // Latency of small chunks, both ways.
    let names: Vec<XorName> = {
        let mut v = Vec::new();
        for i in 0..gets {
            let c = Chunk::new(bytes_for(1000 + i as u64, 4096)).expect("a chunk");
            v.push(*c.name());
            conn.put(c).await.expect("put");
        }
        v
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut d = Vec::new();
    for n in &names {
        let t = Instant::now();
        conn.get(*n).await.expect("direct");
        d.push(t.elapsed());
    }
    let store = Arc::new(safe_client::anonymous::AnonymousStore::new(
        anon_conn.clone(),
        network,
    ));
    let mut a = Vec::new();
    for n in &names {
        let t = Instant::now();
        store.get(*n).await.expect("anonymous");
        a.push(t.elapsed());
    }
    let (dp, ap) = (p50(d), p50(a));
    println!(
        "4 KiB get  direct p50 {:>6.2} ms   anonymous p50 {:>6.2} ms   ({:.1}x)",
        dp.as_secs_f64() * 1e3,
        ap.as_secs_f64() * 1e3,
        ap.as_secs_f64() / dp.as_secs_f64()
    );

    // Circuit builds.
    let sample = anon_conn.relay_sample(4, network).await;
    let mut builds = Vec::new();
    for (i, n) in names.iter().enumerate().take(40) {
        let path = choose_path(&sample, n, K).expect("a path");
        let t = Instant::now();
        let c = Circuit::build(&path, network).await.expect("build");
        builds.push(t.elapsed());
        drop(c);
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "circuit build p50 {:.1} ms (of {})",
        p50(builds.clone()).as_secs_f64() * 1e3,
        builds.len()
    );

    // Records: a read (two exits anonymously) and an owner's write (a
    // circuit of its own anonymously), both ways.
    let owner = safe_client::SigningKey::from_bytes(&[9; 32]);
    let record = direct
        .create_record(safe_client::NewRecord::named("bench"), &owner)
        .await
        .expect("create");
    let (mut dr, mut ar, mut dw, mut aw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..20u32 {
        let t = Instant::now();
        direct
            .set_entry(record, "n", i.to_be_bytes(), std::slice::from_ref(&owner))
            .await
            .expect("direct write");
        dw.push(t.elapsed());
        let t = Instant::now();
        direct.get_record(record).await.expect("direct read");
        dr.push(t.elapsed());
        let t = Instant::now();
        anonymous
            .set_entry(record, "m", i.to_be_bytes(), std::slice::from_ref(&owner))
            .await
            .expect("anonymous write");
        aw.push(t.elapsed());
        let t = Instant::now();
        anonymous.get_record(record).await.expect("anonymous read");
        ar.push(t.elapsed());
    }
    let ms = |v: Vec<Duration>| p50(v).as_secs_f64() * 1e3;
    println!(
        "record read  direct p50 {:>6.2} ms   anonymous p50 {:>6.2} ms",
        ms(dr),
        ms(ar)
    );
    println!(
        "record write direct p50 {:>6.2} ms   anonymous p50 {:>6.2} ms (a read and a write)",
        ms(dw),
        ms(aw)
    );
    net.down().await;
}
