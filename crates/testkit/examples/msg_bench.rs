//! Private messages on an in-process testnet: what a send costs (the
//! proof of work at each difficulty, then a whole send), and how long
//! listing and reading an inbox take, directly and through circuits.
//!
//! ```text
//! cargo run --release -p safe-testkit --example msg_bench [-- NODES SENDS]
//! ```

use std::time::{Duration, Instant};

use safe_client::{Client, Connection, RootSecret};
use safe_protocol::XorName;
use safe_protocol::inbox::{DEFAULT_WORK, MIN_WORK, find_nonce};
use safe_testkit::{K, testnet};

fn p50(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("NODES SENDS are numbers"))
        .collect();
    let nodes = args.first().copied().unwrap_or(12);
    let sends = args.get(1).copied().unwrap_or(20);

    // The work alone: the mean of many solves per difficulty.
    let inbox = XorName::from_content(b"bench inbox");
    for bits in [MIN_WORK, DEFAULT_WORK, 20, 22] {
        let tries = 16u64;
        let t = Instant::now();
        for i in 0..tries {
            find_nonce(&inbox, &i.to_be_bytes(), i << 40, bits);
        }
        println!(
            "work {bits} bits: {:.1} ms a solve (mean of {tries})",
            t.elapsed().as_secs_f64() * 1e3 / tries as f64
        );
    }

    let dir = tempfile::tempdir().expect("a temporary directory");
    let net = testnet(dir.path(), nodes).await;
    let conn = Connection::connect_to(&net.contacts().await, K)
        .await
        .expect("connect");
    let c = Client::from(conn.clone());
    let pw = "correct horse battery";
    let make = |name: &'static str| {
        let c = c.clone();
        async move {
            c.create_account(
                name,
                pw,
                RootSecret::generate().expect("randomness"),
                |_| {},
            )
            .await
            .expect("an account")
        }
    };
    let (alice, bob) = (make("alice").await, make("bob").await);
    let key = bob.root().named_key("default");
    c.register_name("bob", Vec::new(), 1, &key)
        .await
        .expect("name");
    c.msg_setup(&bob, None).await.expect("setup");
    c.msg_link_name(&bob, "bob", &key).await.expect("link");
    c.msg_setup(&alice, None).await.expect("setup");

    let mut sent = Vec::new();
    for i in 0..sends {
        let t = Instant::now();
        c.msg_send(&alice, "bob", format!("message {i}").into_bytes(), None)
            .await
            .expect("send");
        sent.push(t.elapsed());
    }
    let mut listed = Vec::new();
    let mut read = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let view = c.msg_list(&bob).await.expect("list");
        listed.push(t.elapsed());
        ids = view.messages.iter().map(|m| m.id.clone()).collect();
    }
    assert_eq!(ids.len(), sends);
    for id in ids.iter().take(5) {
        let t = Instant::now();
        c.msg_read(&bob, id).await.expect("read");
        read.push(t.elapsed());
    }
    println!("== {nodes} nodes, {DEFAULT_WORK}-bit inbox, directly");
    println!("send (to a name, {sends} sends) p50 {:.1} ms", p50(sent));
    println!("list ({sends} messages) p50 {:.1} ms", p50(listed));
    println!("read (checks the sender) p50 {:.1} ms", p50(read));

    let anon = Client::from(conn.clone()).anonymous(safe_network::network_id(), None);
    let mut asent = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        anon.msg_send(&alice, "bob", format!("hidden {i}").into_bytes(), None)
            .await
            .expect("anonymous send");
        asent.push(t.elapsed());
    }
    let t = Instant::now();
    let view = anon.msg_list(&bob).await.expect("anonymous list");
    let alist = t.elapsed();
    assert_eq!(view.messages.len(), sends + 5);
    println!("== through circuits");
    println!(
        "send p50 {:.1} ms (first one samples relays); list {:.1} ms",
        p50(asent),
        alist.as_secs_f64() * 1e3
    );
    net.down().await;
}
