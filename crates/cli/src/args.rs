//! Arguments several commands share, and turning them into a [`Client`].

use std::path::PathBuf;

use anyhow::{Result, bail};
use safe_client::{Client, ConnectOptions, Home};
use safe_network::libp2p::Multiaddr;

/// Settings of the whole network, given once for every command.
#[derive(clap::Args, Clone, Copy)]
pub(crate) struct Network {
    /// Close group size K: how many nodes hold each piece of data (the
    /// same for the whole network), 1 to 8.
    #[arg(long, global = true, default_value_t = safe_network::DEFAULT_CLOSE_GROUP, value_name = "K", value_parser = parse_close_group)]
    pub(crate) close_group: usize,
}

/// K is at most [`safe_protocol::inbox::MAX_GROUP`]: inboxes size what
/// each member accepts so that K members' shares fit in one copy.
fn parse_close_group(text: &str) -> Result<usize, String> {
    let max = safe_protocol::inbox::MAX_GROUP;
    match text.parse::<usize>() {
        Ok(k) if (1..=max).contains(&k) => Ok(k),
        _ => Err(format!("the close group is 1 to {max} nodes")),
    }
}

/// Where data goes: the network (default) or a local directory.
#[derive(clap::Args)]
pub(crate) struct Target {
    /// Use this local directory instead of the network (offline use;
    /// holds files and records).
    #[arg(long, value_name = "DIR", conflicts_with = "peers")]
    pub(crate) local_store: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) net: Peers,
}

/// How to reach the network.
#[derive(clap::Args)]
pub(crate) struct Peers {
    /// Bootstrap peer (repeatable). Default: $SAFE_PEERS (comma-separated),
    /// else the contacts file `safe testnet up` writes.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    pub(crate) peers: Vec<Multiaddr>,
    /// Go through 3-hop relay circuits, so that no node that holds the
    /// data learns who reads or writes it (docs/DESIGN-anonymity.md):
    /// files, directories, records, names and messages. Logging in is
    /// refused (it would hand an exit your password verifier: log in
    /// without it first); nothing is ever done directly instead. Also
    /// $SAFE_ANONYMOUS=1.
    #[arg(long, env = "SAFE_ANONYMOUS")]
    pub(crate) anonymous: bool,
    /// Refuse to pay more than this many coins (e.g. 0.01) for any one
    /// storage payment; nothing is spent then. Where the network charges,
    /// the cost is shown before paying.
    #[arg(long, value_name = "COINS", value_parser = safe_protocol::coin::parse_amount)]
    pub(crate) max_cost: Option<u64>,
}

impl Peers {
    /// Joins the network.
    pub(crate) async fn connect(&self, network: Network) -> Result<Client> {
        let options = ConnectOptions {
            peers: self.peers.clone(),
            close_group: network.close_group,
            home: Home::from_env(),
        };
        if self.anonymous {
            // Connects only when it must sample relays (kept an hour).
            let kept = options.home.dir().join("relays");
            return Ok(Client::connect_anonymous(
                options,
                safe_network::network_id(),
                Some(kept),
            )?);
        }
        let client = Client::connect_with(options).await?;
        client.payer().set_max_cost(self.max_cost);
        client.payer().on_cost(std::sync::Arc::new(|cost, chunks| {
            eprintln!(
                "storing {chunks} new chunk{} or record{} costs {} coins; paying",
                if chunks == 1 { "" } else { "s" },
                if chunks == 1 { "" } else { "s" },
                safe_protocol::coin::format_amount(cost)
            );
        }));
        Ok(client)
    }
}

impl Target {
    /// The local store, or the network. A local store must exist unless
    /// `create` (a put makes one; a get from a missing one is a typo).
    pub(crate) async fn client(&self, network: Network, create: bool) -> Result<Client> {
        match &self.local_store {
            Some(dir) => {
                if !create && !dir.is_dir() {
                    bail!("local store {} does not exist", dir.display());
                }
                Ok(Client::local(dir)?)
            }
            None => self.net.connect(network).await,
        }
    }
}

/// Runs `f` with a client and always closes it afterwards.
pub(crate) async fn with_client<F, Fut, T>(client: Client, f: F) -> Result<T>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let result = f(client.clone()).await;
    client.shutdown().await;
    result
}

/// A size in bytes, with an optional unit: `10G`, `512MiB`, `1.5T`,
/// `100MB`. K, M, G, T (with or without `iB`) are powers of 1024; KB, MB,
/// GB, TB are powers of 1000.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use bytes, or K, M, G, T (1024s) or KB, MB, GB, TB (1000s)"
            ));
        }
    };
    let bad =
        || format!("invalid size {text:?}: expected a number with an optional unit, e.g. 10G");
    if number.is_empty() {
        return Err(bad());
    }
    let bytes = match number.split_once('.') {
        None => number.parse::<u64>().map_err(|_| bad())?.checked_mul(scale),
        Some(_) => {
            let value: f64 = number.parse().map_err(|_| bad())?;
            let bytes = (value * scale as f64).round();
            (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
        }
    };
    bytes.ok_or_else(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("123").unwrap(), 123);
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("10 GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert!(parse_size("10X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("G").is_err());
        assert!(parse_size("").is_err());
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }
}
