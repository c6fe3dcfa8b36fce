//! The load run of `scripts/load.sh`: many clients of the network named
//! by `SAFE_PEERS` (comma-separated multiaddrs) at once.
//!
//! ```text
//! SAFE_PEERS=/ip4/127.0.0.1/tcp/…/p2p/… \
//!   cargo run --release -p safe-testkit --example load -- [CLIENTS [SECONDS]]
//! ```
//!
//! With `SAFE_LOAD_DISTINCT=N`, puts re-put contents from a fixed pool of
//! N files, so the nodes' stores stop growing once the pool is stored.
//!
//! Prints p50/p99/max latency and failures per operation; exits 1 if any
//! operation failed.

use std::time::Duration;

use safe_testkit::load::{LoadConfig, run};

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("CLIENTS SECONDS are numbers"))
        .collect();
    let config = LoadConfig {
        clients: args.first().copied().unwrap_or(100) as usize,
        duration: Duration::from_secs(args.get(1).copied().unwrap_or(300)),
        distinct: std::env::var("SAFE_LOAD_DISTINCT")
            .ok()
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().expect("SAFE_LOAD_DISTINCT is a number")),
        ..LoadConfig::default()
    };
    let peers: Vec<_> = std::env::var("SAFE_PEERS")
        .expect("SAFE_PEERS names the network")
        .split(',')
        .map(|a| a.trim().parse().expect("SAFE_PEERS holds multiaddrs"))
        .collect();
    println!(
        "load: {} clients for {:?} against {} contacts",
        config.clients,
        config.duration,
        peers.len()
    );
    let report = run(&peers, &config).await;
    println!("{report}");
    for e in &report.errors {
        println!("error: {e}");
    }
    if report.failures() > 0 {
        std::process::exit(1);
    }
}
