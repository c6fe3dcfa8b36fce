//! A third-party program on `safe_client::Client` alone: put a file, read
//! it back, create a record and update it.
//!
//! ```sh
//! cargo run --example quickstart                       # the local testnet
//! cargo run --example quickstart -- --local /tmp/store # offline
//! ```

use safe_client::keys::new_signing_key;
use safe_client::{Address, Client, DataKind, NewRecord};

/// What the example did, for whoever runs it (and for the tests).
pub struct Outcome {
    /// The file's address.
    pub file: String,
    /// The bytes read back.
    pub read_back: Vec<u8>,
    /// The record's address.
    pub record: String,
    /// The record's version after the update.
    pub version: u64,
    /// The value read back from the record.
    pub greeting: Vec<u8>,
}

/// The example itself, on any client.
pub async fn run(client: &Client) -> Result<Outcome, Box<dyn std::error::Error>> {
    // A file: self-encrypted into chunks, one address.
    let report = client
        .put_bytes(b"hello from a third-party app".to_vec())
        .await?;
    let read_back = client.get_bytes(&report.address, 1 << 20).await?;

    // A record only our key may change.
    let key = new_signing_key();
    let mut new = NewRecord::named(format!(
        "quickstart-{}",
        hex(&key.verifying_key().to_bytes()[..8])
    ));
    new.tag = 42;
    let address = client.create_record(new, &key).await?;
    let record = client
        .set_entry(address, "greeting", "hello, network", &[key])
        .await?;
    let greeting = client.get_record(address).await?.state.entries[b"greeting".as_slice()].clone();
    Ok(Outcome {
        file: report.address.to_string(),
        read_back,
        record: Address::new(DataKind::Mutable, address).to_string(),
        version: record.state.version,
        greeting,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[allow(dead_code)] // run by `cargo run --example`; the tests call `run`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let client = match args.as_slice() {
        [flag, dir] if flag == "--local" => Client::local(dir)?,
        [] => Client::from_env().await?,
        _ => return Err("usage: quickstart [--local DIR]".into()),
    };
    let outcome = run(&client).await;
    client.shutdown().await;
    let o = outcome?;
    println!("file   {} ({} bytes read back)", o.file, o.read_back.len());
    println!(
        "record {} at version {}: greeting = {}",
        o.record,
        o.version,
        String::from_utf8_lossy(&o.greeting)
    );
    Ok(())
}
