//! The short load run of CI (issue 15; `scripts/load.sh` is the long
//! one): 16 clients at once for 20 s on a 10-node in-process testnet,
//! mixed puts, checked gets and record updates, with no failure, and the
//! nodes' queues within their limits afterwards.

use std::time::Duration;

use safe_testkit::load::{LoadConfig, Op, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_get_no_errors() {
    let dir = tempfile::tempdir().unwrap();
    let net = safe_testkit::testnet(dir.path(), 10).await;
    let config = LoadConfig {
        clients: 16,
        duration: Duration::from_secs(20),
        large_max: 2 << 20,
        distinct: None,
    };
    let report = run(&net.contacts().await, &config).await;
    eprintln!("{report}");
    assert_eq!(report.failures(), 0, "{:?}", report.errors);
    for (op, r) in &report.ops {
        // Large puts are 4% of the mix: a short run may see few.
        if *op != Op::LargePut {
            assert!(r.ok > 10, "{op:?} ran: {r:?}");
        }
    }
    for node in net.nodes() {
        assert!(node.fetch_queue() <= safe_node::replication::FETCH_QUEUE);
    }
    // Requests over, the nodes (still up, caches full) hold no request bytes.
    assert_eq!(safe_testkit::inbound_bytes_after_requests().await, 0);
    net.down().await;
}
