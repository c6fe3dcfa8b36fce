//! The client's quickstart example against a real in-process testnet: a
//! third-party program on `safe_client::Client` alone.

#[path = "../../client/examples/quickstart.rs"]
mod quickstart;

use safe_client::{Client, ConnectOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_runs_against_a_testnet() {
    let dir = tempfile::tempdir().unwrap();
    let net = safe_testkit::testnet(dir.path(), 8).await;
    let client = Client::connect_with(ConnectOptions {
        peers: net.contacts().await,
        close_group: safe_testkit::K,
        ..ConnectOptions::default()
    })
    .await
    .expect("client connects");
    let o = quickstart::run(&client).await.unwrap();
    assert_eq!(o.read_back, b"hello from a third-party app");
    assert_eq!(o.version, 1);
    assert_eq!(o.greeting, b"hello, network");
    // Another client, on its own connection, sees the same record.
    let other = Client::connect(&net.contacts().await).await.unwrap();
    let address: safe_client::Address = o.record.parse().unwrap();
    let record = other.get_record(address.name).await.unwrap();
    assert_eq!(
        record.state.entries[b"greeting".as_slice()],
        b"hello, network"
    );
    let file: safe_client::Address = o.file.parse().unwrap();
    assert_eq!(other.get_bytes(&file, 1 << 20).await.unwrap(), o.read_back);
    other.shutdown().await;
    client.shutdown().await;
    net.down().await;
}
