//! Certified spends on an in-process testnet (issue 17): the latency of
//! one spend at a time, then how many spends per second many wallets
//! certify at once, each spending its last output onwards.
//!
//! ```text
//! cargo run --release -p safe-testkit --example spend_bench [-- NODES SPENDS WALLETS ROUNDS]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use safe_client::Connection;
use safe_client::pay::Coin;
use safe_protocol::coin::{CertifiedSpend, SignedSpend, Spend, WalletKeys};
use safe_protocol::mutable::SigningKey;
use safe_testkit::{K, start, testnet_config};

/// Certifies a spend of `coin` into `parts` equal outputs to `wallet`; the
/// new coins.
async fn split(
    c: &Connection,
    genesis: [u8; 32],
    coin: &Coin,
    parts: u64,
    wallet: &WalletKeys,
) -> Vec<Coin> {
    let each = coin.input.amount / parts;
    let mut amounts = vec![each; parts as usize];
    amounts[0] += coin.input.amount - each * parts;
    let spend = Spend {
        genesis,
        inputs: vec![coin.input],
        outputs: amounts
            .iter()
            .map(|&a| wallet.address().pay(a).expect("a valid address"))
            .collect(),
        memo: Vec::new(),
    };
    let signed = SignedSpend::sign(spend, &[&coin.key]);
    let parents: Vec<CertifiedSpend> = coin.parent.iter().cloned().collect();
    let certified = c.certify(&signed, &parents).await.expect("certified");
    Coin::found(&certified, wallet)
}

fn p(mut v: Vec<Duration>, q: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("NODES SPENDS WALLETS ROUNDS are numbers"))
        .collect();
    let nodes = args.first().copied().unwrap_or(12);
    let spends = args.get(1).copied().unwrap_or(200);
    let wallets = args.get(2).copied().unwrap_or(64).clamp(1, 64);
    let rounds = args.get(3).copied().unwrap_or(10);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let genesis_key = SigningKey::from_bytes(&[42; 32]);
    let genesis = genesis_key.verifying_key().to_bytes();
    let mut config = testnet_config(dir.path(), nodes);
    config.node.genesis = Some(genesis);
    let net = start(config).await;
    let c = Arc::new(
        Connection::connect_to(&net.contacts().await, K)
            .await
            .expect("connect"),
    );
    let wallet = WalletKeys::from_secret(&[1; 32]);
    let genesis_coin = Coin::genesis(&genesis_key);
    let mut coins = split(&c, genesis, &genesis_coin, 2, &wallet).await;

    // One at a time: each spend consumes the last one's output.
    let mut coin = coins.pop().expect("a coin");
    let mut times = Vec::new();
    for _ in 0..spends {
        let t = Instant::now();
        let mut next = split(&c, genesis, &coin, 1, &wallet).await;
        times.push(t.elapsed());
        coin = next.pop().expect("a coin");
    }
    println!(
        "certified spend, one at a time ({spends}): p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        p(times.clone(), 0.5),
        p(times.clone(), 0.9),
        p(times, 1.0)
    );

    // Many wallets at once, each spending its own chain.
    let starts = split(&c, genesis, &coin, wallets as u64, &wallet).await;
    let t = Instant::now();
    let tasks = starts.into_iter().map(|mut coin| {
        let c = c.clone();
        let wallet = WalletKeys::from_secret(&[1; 32]);
        tokio::spawn(async move {
            for _ in 0..rounds {
                coin = split(&c, genesis, &coin, 1, &wallet)
                    .await
                    .pop()
                    .expect("a coin");
            }
        })
    });
    for r in futures::future::join_all(tasks).await {
        r.expect("a wallet's task");
    }
    let total = wallets * rounds;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{wallets} wallets x {rounds} spends: {total} certified spends in {secs:.2} s = {:.0} spends/s",
        total as f64 / secs
    );
    c.shutdown().await;
}
