//! Helpers for tests that cross the layers: an in-process testnet of real
//! nodes on 127.0.0.1, a client connected to it, and deterministic data.
//!
//! A crate of its own (never published) so that the node does not depend
//! on the client, not even for its tests: the tests that drive nodes
//! through the real client live here, in `tests/`, and the helpers they
//! used to copy into each file live here once. Everything panics on
//! failure, as test code should: a testnet that does not start is a failed
//! test, not an error to handle.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod fuzzing;
pub mod hostile;
pub mod load;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use safe_client::{Connection, files};
use safe_node::testnet::{Testnet, TestnetConfig};
use safe_protocol::Address;
use safe_selfenc::Config;

pub use safe_client;
pub use safe_node;

/// The close group size of the tests' networks (the network default).
pub const K: usize = 5;

/// SplitMix64: reproducible pseudo-random numbers for tests and load runs
/// (the same seed gives the same sequence; a run prints its seed so that a
/// failure can be repeated), without a `rand` dependency.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// An index into something `len` long (0 if it is empty).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Deterministic pseudo-random bytes (xorshift): the same `seed` and
/// `len` give the same bytes, different seeds give unrelated ones.
pub fn bytes_for(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The settings of the tests' usual network: `nodes` nodes in `dir`,
/// close groups of [`K`], a replication round every second (so healing
/// is seen within a test's patience).
pub fn testnet_config(dir: &Path, nodes: usize) -> TestnetConfig {
    let mut config = TestnetConfig::new(dir);
    config.nodes = nodes;
    config.node.close_group = K;
    config.node.replication_interval = Duration::from_secs(1);
    config
}

/// Starts [`testnet_config`]'s network and waits until it is ready.
pub async fn testnet(dir: &Path, nodes: usize) -> Testnet {
    start(testnet_config(dir, nodes)).await
}

/// Starts [`testnet_config`]'s network charging for storage: its genesis
/// key is made from `seed` (and returned, to fund wallets with [`fund`]).
pub async fn charging(
    dir: &Path,
    nodes: usize,
    seed: u8,
) -> (Testnet, safe_protocol::mutable::SigningKey) {
    let genesis_key = safe_protocol::mutable::SigningKey::from_bytes(&[seed; 32]);
    let mut config = testnet_config(dir, nodes);
    config.node.genesis = Some(genesis_key.verifying_key().to_bytes());
    (start(config).await, genesis_key)
}

/// Starts a testnet as configured and waits until it is ready.
pub async fn start(config: TestnetConfig) -> Testnet {
    Testnet::up(config).await.expect("testnet starts")
}

/// A client of `net` that expects close groups of [`K`].
pub async fn client(net: &Testnet) -> Arc<Connection> {
    client_with(net, K).await
}

/// A client of `net` that expects close groups of `k`.
pub async fn client_with(net: &Testnet, k: usize) -> Arc<Connection> {
    Arc::new(
        Connection::connect_to(&net.contacts().await, k)
            .await
            .expect("client connects"),
    )
}

/// Self-encrypts `data` into `store` as a public file; its address.
pub async fn put(store: &Arc<Connection>, data: Vec<u8>) -> Address {
    let size = data.len() as u64;
    files::put_reader(
        store.clone(),
        std::io::Cursor::new(data),
        size,
        Config::default(),
        Arc::new(|_| {}),
    )
    .await
    .expect("put")
    .address
}

/// The whole file at `address`, read back from `store`.
pub async fn get(store: &Arc<Connection>, address: &Address) -> Vec<u8> {
    let mut out = Vec::new();
    files::get(store, address, None, 0..u64::MAX, &mut out)
        .await
        .expect("get");
    out
}

/// Waits (up to 30 s) for every node in this process to give back the
/// inbound budget ([`safe_network::codec::INBOUND_BUDGET`]) once the
/// requests are over, and returns the bytes still held: 0 unless something
/// keeps request bytes beyond their request (which starves every node in
/// the process of the budget, and so of requests, in the end). Only for a
/// test that runs alone in its binary: the budget is one per process.
pub async fn inbound_bytes_after_requests() -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let held = safe_network::codec::inbound_bytes();
        if held == 0 || std::time::Instant::now() >= deadline {
            return held;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Certifies a spend of the genesis output of `genesis_key`'s network
/// paying `amount` to `to` and the rest to a wallet of no one in
/// particular (the tests' and benchmarks' way to fund a wallet).
pub async fn fund(
    c: &Connection,
    genesis_key: &safe_protocol::mutable::SigningKey,
    to: &safe_protocol::coin::WalletAddress,
    amount: u64,
) -> safe_protocol::coin::CertifiedSpend {
    use safe_protocol::coin::{GENESIS_AMOUNT, SignedSpend, Spend, WalletKeys};
    let coin = safe_client::pay::Coin::genesis(genesis_key);
    let spend = Spend {
        genesis: coin.input.owner,
        inputs: vec![coin.input],
        outputs: vec![
            to.pay(amount).expect("a valid address"),
            WalletKeys::from_secret(&[9; 32])
                .address()
                .pay(GENESIS_AMOUNT - amount)
                .expect("a valid address"),
        ],
        memo: Vec::new(),
    };
    let signed = SignedSpend::sign(spend, &[&coin.key]);
    c.certify(&signed, &[])
        .await
        .expect("the genesis output is spent")
}
