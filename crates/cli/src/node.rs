//! `safe node …` and `safe testnet …`: running nodes.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use safe_client::Home;
use safe_network::libp2p::Multiaddr;

use crate::args::{Network, parse_size};

#[derive(Subcommand)]
pub(crate) enum NodeCommand {
    /// Run a node in the foreground until Ctrl-C or SIGTERM.
    Run {
        /// The node's directory (identity and stored data); reused on restart.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Address to listen on (repeatable). Default: TCP and QUIC on all
        /// interfaces, ports chosen by the OS.
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<Multiaddr>,
        /// Peer to join through (repeatable); none starts a new network.
        #[arg(long = "peer", value_name = "MULTIADDR")]
        peers: Vec<Multiaddr>,
        /// Storage limit (bytes, or with a unit: 10G, 500MiB); a full node
        /// refuses new data.
        #[arg(long, value_name = "SIZE", default_value_t = safe_node::DEFAULT_MAX_STORAGE, value_parser = parse_size)]
        max_storage: u64,
        /// Disk space to leave free (bytes, or with a unit): below it the
        /// node refuses new data as full (room for its index and compaction).
        #[arg(long, value_name = "SIZE", default_value_t = safe_node::store::DISK_RESERVE, value_parser = parse_size)]
        disk_reserve: u64,
        /// Memory for popular chunks clients offer for caching (bytes, or
        /// with a unit); 0 turns the cache off. Cached chunks are served,
        /// never counted as replicas.
        #[arg(long, value_name = "SIZE", default_value_t = safe_node::cache::DEFAULT_CACHE_BYTES, value_parser = parse_size)]
        cache_size: u64,
        /// Serve Prometheus metrics on http://ADDR/metrics.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// The network's node id difficulty: a node id is valid only if
        /// its key's work hash starts with this many zero bits (each bit
        /// doubles the work of making one; 16 is about a second). The
        /// same on every node of a network.
        #[arg(long, value_name = "BITS", default_value_t = safe_network::identity::DEFAULT_ID_DIFFICULTY, value_parser = clap::value_parser!(u32).range(0..=32))]
        id_difficulty: u32,
        /// At most this many peers from one network block (IPv4 /24, IPv6
        /// /48) in each k-bucket and each lookup answer, so in a close
        /// group; 0 turns the limit off. Loopback addresses are exempt.
        /// The same on every node of a network.
        #[arg(long, value_name = "N", default_value_t = safe_network::diversity::DEFAULT_MAX_PER_SUBNET)]
        max_per_subnet: usize,
        /// Data requests a second that one peer may send; more are
        /// refused, and a peer that keeps on is banned for 10 minutes.
        /// 0 turns the limit off.
        #[arg(long, value_name = "N", default_value_t = safe_network::peer_limits::DEFAULT_REQUEST_RATE)]
        request_rate: u32,
        /// The network's genesis key (64 hex digits, the same on every
        /// node): nodes with one keep spends of its coin and charge for
        /// storing new chunks; without one the network is free.
        #[arg(long, value_name = "HEX", value_parser = parse_genesis)]
        genesis: Option<[u8; 32]>,
        /// Where storage payments to this node go (a wallet address,
        /// safe://w…). Default: a wallet derived from the node's own key.
        #[arg(long, value_name = "ADDRESS", value_parser = parse_reward)]
        reward_key: Option<Box<safe_protocol::coin::WalletAddress>>,
    },
    /// List the storage payments a node took, one per line: `RECEIPT
    /// NANOS`, and the total on stderr. A wallet whose address the node
    /// was run with (`--reward-key`) takes them in with `safe wallet
    /// receive RECEIPT…`. Read from its directory when it is stopped, or
    /// asked of it (on its --metrics address) while it runs.
    Earnings {
        /// The node's directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// List the names of the chunks a node holds, one per line: from its
    /// index when it is stopped, or asked of it (on its --metrics address)
    /// while it runs. Read-only.
    #[command(alias = "records")]
    Chunks {
        /// The node's directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// List the entries of the segment files instead, read from the
        /// files alone (works while the node runs, with or without
        /// metrics, but includes chunks dropped and not yet compacted
        /// away).
        #[arg(long)]
        segments: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum TestnetCommand {
    /// Start N nodes on 127.0.0.1 and run until Ctrl-C or SIGTERM.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = safe_node::testnet::DEFAULT_NODES)]
        nodes: usize,
        /// Directory for the nodes' data (kept across restarts). Default:
        /// the data directory's `testnet/`, whose contacts clients read by
        /// default; a testnet elsewhere leaves those alone.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Node id difficulty (see `safe node run --help`); 0, the
        /// default for a local testnet, makes ids free. Clients filter
        /// lookups by it when SAFE_ID_DIFFICULTY says the same.
        #[arg(long, value_name = "BITS", default_value_t = safe_node::testnet::TESTNET_ID_DIFFICULTY, value_parser = clap::value_parser!(u32).range(0..=32))]
        id_difficulty: u32,
        /// Storing costs nothing. By default a testnet of at least K (and
        /// 5) nodes charges for storage in testnet coins, as a real
        /// network does, and funds the data directory's wallet from its
        /// faucet (any wallet can draw more: `safe wallet faucet`).
        #[arg(long)]
        free: bool,
    },
}

pub(crate) async fn node(command: NodeCommand, network: Network) -> Result<()> {
    match command {
        NodeCommand::Run {
            dir,
            listen,
            peers,
            max_storage,
            disk_reserve,
            cache_size,
            metrics,
            id_difficulty,
            max_per_subnet,
            request_rate,
            genesis,
            reward_key,
        } => {
            let mut config = safe_node::NodeConfig::new(dir);
            config.genesis = genesis;
            config.reward = reward_key.map(|r| *r);
            if !listen.is_empty() {
                config.listen = listen;
            }
            config.peers = peers;
            config.max_storage = max_storage;
            config.disk_reserve = disk_reserve;
            config.cache_bytes = cache_size;
            config.metrics = metrics;
            config.close_group = network.close_group;
            config.admission.id_difficulty = id_difficulty;
            config.admission.max_per_subnet = max_per_subnet;
            config.admission.request_rate = request_rate;
            run(config).await
        }
        NodeCommand::Chunks { dir, segments } => list_chunks(&dir, segments).await,
        NodeCommand::Earnings { dir } => list_earnings(&dir).await,
    }
}

/// A genesis key: 64 hex digits of an ed25519 public key.
fn parse_genesis(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or("a genesis key is 64 hex digits")?;
    if !safe_protocol::coin::valid_key(&bytes) {
        return Err("the genesis key is not a valid ed25519 public key".into());
    }
    Ok(bytes)
}

/// A reward address: a wallet address as `safe wallet address` prints it.
fn parse_reward(text: &str) -> Result<safe_protocol::coin::WalletAddress, String> {
    text.trim()
        .parse()
        .map_err(|e: safe_protocol::coin::WalletAddressError| e.to_string())
}

/// `safe node chunks`: see its help.
async fn list_chunks(dir: &Path, segments: bool) -> Result<()> {
    let context = || format!("listing the chunks in {}", dir.display());
    if !dir.is_dir() {
        bail!(
            "{} is not a node directory (no such directory); give the --dir a node was run with",
            dir.display()
        );
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut written = Ok(());
    let emit = |name: safe_protocol::XorName| {
        if written.is_ok() {
            written = writeln!(out, "{}", name.to_hex());
        }
    };
    let listed = if segments {
        safe_node::store::segment_names(dir, emit)
    } else {
        safe_node::store::index_names(dir, emit)
    };
    match listed {
        Ok(()) => {}
        Err(safe_node::store::NodeStoreError::InUse(_)) => {
            drop(out);
            let mut stdout = std::io::stdout().lock();
            return ask_running_node(dir, "/chunks", &mut stdout)
                .await
                .with_context(context);
        }
        Err(e @ safe_node::store::NodeStoreError::Unclean(_)) => {
            bail!("{e} (until then, --segments lists its segment files)")
        }
        Err(e) => return Err(e).with_context(context),
    }
    written.and_then(|()| out.flush())?;
    Ok(())
}

/// `safe node earnings`: see its help.
async fn list_earnings(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!(
            "{} is not a node directory (no such directory); give the --dir a node was run with",
            dir.display()
        );
    }
    let text = match safe_node::store::read_earnings(dir) {
        Ok(rows) => safe_node::metrics::earning_lines(&rows),
        Err(safe_node::store::NodeStoreError::InUse(_)) => {
            let mut body = Vec::new();
            ask_running_node(dir, "/earnings", &mut body)
                .await
                .with_context(|| {
                    format!("listing the earnings of the node in {}", dir.display())
                })?;
            String::from_utf8(body).context("the node's /earnings is not text")?
        }
        Err(e) => {
            return Err(e).with_context(|| format!("reading the earnings in {}", dir.display()));
        }
    };
    let mut total: u64 = 0;
    let mut count = 0usize;
    for line in text.lines() {
        if let Some(n) = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
        {
            total = total.saturating_add(n);
            count += 1;
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    eprintln!(
        "{count} payment{} taken, {} coins in all",
        if count == 1 { "" } else { "s" },
        safe_protocol::coin::format_amount(total)
    );
    Ok(())
}

/// Copies `path` (a listing) from the running node whose directory is
/// `dir`, found through the metrics address it wrote there, to `out`.
async fn ask_running_node(dir: &Path, path: &str, out: &mut impl Write) -> Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let file = dir.join(safe_node::METRICS_FILE);
    let Ok(addr) = std::fs::read_to_string(&file) else {
        let instead = if path == "/chunks" {
            ", or list the segment files with --segments"
        } else {
            ", or stop it first"
        };
        bail!(
            "a running node has the store open, and it serves no metrics: \
             restart it with --metrics 127.0.0.1:0 to ask it{instead}"
        );
    };
    let addr: std::net::SocketAddr = addr
        .trim()
        .parse()
        .with_context(|| format!("{} holds no address", file.display()))?;
    let connect = tokio::net::TcpStream::connect(addr);
    let mut stream = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
        .await
        .map_err(|_| anyhow::anyhow!("the node's metrics address {addr} does not answer"))?
        .with_context(|| {
            format!("the store is in use, but its node's metrics address {addr} does not answer")
        })?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut reader = tokio::io::BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).await?;
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("the node at {addr} answered {}", status.trim());
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
    }
    // The listing is as long as the node's store: passed on a buffer at a time.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    out.flush()?;
    Ok(())
}

async fn run(config: safe_node::NodeConfig) -> Result<()> {
    let dir = config.dir.clone();
    let node = safe_node::start(config).await?;
    // Give the listeners a moment to report their addresses.
    let mut addrs = Vec::new();
    for _ in 0..100 {
        addrs = node.listen_addrs().await;
        if !addrs.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    println!("node {} (data in {})", node.peer_id(), dir.display());
    for a in &addrs {
        println!("listening on {a}");
    }
    if let Some(m) = node.metrics_addr() {
        println!("metrics on http://{m}/metrics");
    }
    shutdown_signal().await;
    node.stop().await;
    eprintln!("node stopped");
    Ok(())
}

pub(crate) async fn testnet(command: TestnetCommand, network: Network) -> Result<()> {
    let TestnetCommand::Up {
        nodes,
        dir,
        id_difficulty,
        free,
    } = command;
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let home = Home::from_env();
    let dir = dir.unwrap_or_else(|| home.testnet_dir());
    let mut config = safe_node::testnet::TestnetConfig::new(&dir);
    config.nodes = nodes;
    config.node.close_group = network.close_group;
    config.node.admission.id_difficulty = id_difficulty;
    // Spends are certified by K−1 of a close group of K ≥ 5: a smaller
    // testnet cannot have coins.
    let charges = !free
        && network.close_group >= safe_protocol::coin::MIN_CURRENCY_GROUP
        && nodes >= network.close_group;
    if charges {
        config.node.genesis = Some(safe_client::faucet::testnet_genesis());
    }
    let started = std::time::Instant::now();
    let net = safe_node::testnet::Testnet::up(config).await?;
    let own = dir.join(safe_network::contacts::CONTACTS_FILE);
    // Only the default testnet's contacts go where clients look by
    // default: a testnet elsewhere must not take the default one over.
    let default = home.is_default_testnet(&dir);
    let mut contacts = vec![own.clone()];
    if default {
        contacts.push(home.contacts());
    }
    net.write_contacts(&contacts)
        .await
        .context("cannot write the contacts file")?;
    let how = if default {
        format!(
            "contacts in {}. In another terminal: safe put FILE, then safe get ADDRESS -o OUT",
            home.contacts().display()
        )
    } else {
        let first = net.contacts().await.into_iter().next();
        format!(
            "contacts in {}; not the default testnet, so point clients at it: SAFE_PEERS={}",
            own.display(),
            first.map(|a| a.to_string()).unwrap_or_default()
        )
    };
    let coins = if charges {
        match fund(&net, &home, network).await {
            Ok(said) => said,
            Err(e) => {
                net.down().await;
                return Err(e.context("cannot fund the wallet from the testnet faucet"));
            }
        }
    } else {
        "Storing is free on this testnet.".to_string()
    };
    println!(
        "ready: {nodes} nodes on 127.0.0.1 in {:.1} s (data in {}, {how}). {coins} Ctrl-C stops the network.",
        started.elapsed().as_secs_f64(),
        dir.display(),
    );
    std::io::stdout().flush().ok();
    shutdown_signal().await;
    net.down().await;
    eprintln!("testnet stopped");
    Ok(())
}

/// Funds the wallet of `home` on the testnet `net` from its faucet (if it
/// holds less than one draw); says what it holds.
async fn fund(net: &safe_node::testnet::Testnet, home: &Home, network: Network) -> Result<String> {
    let options = safe_client::ConnectOptions {
        peers: net.contacts().await,
        close_group: network.close_group,
        home: home.clone(),
    };
    let client = safe_client::Client::connect_with(options).await?;
    let funded = async {
        let conn = client
            .connection()
            .context("a testnet client has a connection")?;
        let wallet = client.payer().fund(conn, safe_client::faucet::DRIP).await?;
        anyhow::Ok(format!(
            "Storing costs testnet coins: your wallet ({}) holds {} coins from the testnet faucet.",
            wallet.address(),
            safe_protocol::coin::format_amount(wallet.balance())
        ))
    }
    .await;
    client.shutdown().await;
    funded
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
