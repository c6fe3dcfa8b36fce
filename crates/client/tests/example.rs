//! The quickstart example runs offline, against `Client::local`.

#[path = "../examples/quickstart.rs"]
mod quickstart;

#[tokio::test]
async fn quickstart_runs_against_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let client = safe_client::Client::local(dir.path()).unwrap();
    let o = quickstart::run(&client).await.unwrap();
    assert_eq!(o.read_back, b"hello from a third-party app");
    assert!(o.file.starts_with("safe://f"), "{}", o.file);
    assert!(o.record.starts_with("safe://m"), "{}", o.record);
    assert_eq!(o.version, 1);
    assert_eq!(o.greeting, b"hello, network");
    // The data really is in the store: a second client on the same
    // directory reads it.
    let again = safe_client::Client::local(dir.path()).unwrap();
    let address: safe_client::Address = o.record.parse().unwrap();
    assert_eq!(
        again.get_record(address.name).await.unwrap().state.version,
        1
    );
}
