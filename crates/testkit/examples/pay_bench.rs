//! A paid upload against an unpaid one, in the same run (issue 17): two
//! in-process testnets on 127.0.0.1, one whose nodes charge (a genesis
//! key) and one free; the same file put through [`Client::put_file`] on
//! each, alternating, and the rates compared.
//!
//! ```text
//! cargo run --release -p safe-testkit --example pay_bench [-- MIB NODES ROUNDS]
//! ```

use std::time::Instant;

use safe_client::wallet::Wallet;
use safe_client::{Client, Connection, Home, PutOptions};
use safe_protocol::coin::NANOS_PER_COIN;
use safe_protocol::mutable::SigningKey;
use safe_testkit::{K, bytes_for, fund, start, testnet_config};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let mib = arg(1, 256);
    let nodes = arg(2, 12);
    let rounds = arg(3, 3);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("upload.bin");
    let mut data = Vec::with_capacity(mib << 20);
    for i in 0..mib {
        data.extend(bytes_for(i as u64, 1 << 20));
    }
    std::fs::write(&file, &data).expect("the file is written");
    drop(data);

    let genesis_key = SigningKey::from_bytes(&[42; 32]);
    let genesis = genesis_key.verifying_key().to_bytes();
    let mut paid_config = testnet_config(&dir.path().join("paid"), nodes);
    paid_config.node.genesis = Some(genesis);
    let paid_net = start(paid_config).await;
    let free_net = start(testnet_config(&dir.path().join("free"), nodes)).await;

    // The paying client's wallet, funded from genesis.
    let home = Home::at(dir.path().join("home"));
    let wallet = Wallet::open(&home, &genesis).expect("a wallet");
    let paid_conn = Connection::connect_to(&paid_net.contacts().await, K)
        .await
        .expect("connected");
    let funding = fund(
        &paid_conn,
        &genesis_key,
        &wallet.address(),
        1000 * NANOS_PER_COIN,
    )
    .await;
    wallet.receive(&funding, "funded").expect("received");
    let paid = Client::from(paid_conn).paying_from(home.clone());
    let free = Client::from(
        Connection::connect_to(&free_net.contacts().await, K)
            .await
            .expect("connected"),
    )
    .paying_from(home);

    println!("{mib} MiB file, {nodes} nodes per network, K = {K}, {rounds} rounds");
    let mut paid_secs = Vec::new();
    let mut free_secs = Vec::new();
    for round in 0..rounds {
        // A different file each round (so nothing is a free re-put): the
        // private-mode secret changes every chunk.
        let options = PutOptions {
            secret: Some(safe_client::Secret::derive_from(&round.to_le_bytes())),
            progress: None,
        };
        let t = Instant::now();
        let r = free.put_file(&file, &options).await.expect("free put");
        let f = t.elapsed().as_secs_f64();
        assert_eq!(r.paid_nanos, 0);
        let t = Instant::now();
        let r = paid.put_file(&file, &options).await.expect("paid put");
        let p = t.elapsed().as_secs_f64();
        assert!(r.paid_nanos > 0);
        println!(
            "round {round}: unpaid {f:.2} s ({:.1} MB/s), paid {p:.2} s ({:.1} MB/s, {} nanos in {} chunks), paid/unpaid {:.2}",
            (mib << 20) as f64 / f / 1e6,
            (mib << 20) as f64 / p / 1e6,
            r.paid_nanos,
            r.chunks,
            f / p
        );
        paid_secs.push(p);
        free_secs.push(f);
    }
    paid_secs.sort_by(f64::total_cmp);
    free_secs.sort_by(f64::total_cmp);
    let (p, f) = (paid_secs[rounds / 2], free_secs[rounds / 2]);
    println!(
        "median: unpaid {:.1} MB/s, paid {:.1} MB/s: paid is {:.0}% of unpaid",
        (mib << 20) as f64 / f / 1e6,
        (mib << 20) as f64 / p / 1e6,
        100.0 * f / p
    );
    paid.shutdown().await;
    free.shutdown().await;
    paid_net.down().await;
    free_net.down().await;
}
