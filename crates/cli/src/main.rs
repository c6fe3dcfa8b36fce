//! `safe`: the command-line face of the network.
//!
//! Errors print as one line on stderr (`error: …`) and exit with status 1.

use std::io::{IsTerminal, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use safe_client::{ChunkStore, LocalStore, NetworkStore, files};
use safe_network::libp2p::Multiaddr;
use safe_protocol::{Address, DataKind};

mod mutable;
use safe_selfenc::{Config, Secret};

/// Files at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;
/// Largest secret file read.
const MAX_SECRET_FILE: u64 = 64 * 1024;

#[derive(Parser)]
#[command(
    name = "safe",
    version,
    about = "SAFE network: store and fetch self-encrypted data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Self-encrypt a file into chunks and print its safe:// address.
    Put {
        /// The file to store.
        path: PathBuf,
        #[command(flatten)]
        target: Target,
        /// Print one JSON object (address, size, chunks, stored_bytes, sent_bytes).
        #[arg(long)]
        json: bool,
        /// Private mode: mix the contents of this key file into every chunk
        /// key. The same file is needed to get the data back.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
    /// Fetch a file (or part of it) by its safe:// address.
    Get {
        /// A safe:// address printed by `safe put`.
        address: String,
        #[command(flatten)]
        target: Target,
        /// Write here instead of stdout; nothing is left here if the get fails.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Only bytes START to END inclusive (as in HTTP), or START- for the rest.
        #[arg(long, value_name = "START-END")]
        range: Option<String>,
        /// The key file a private file was put with.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
    /// Run a node.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// A local network for trying things out.
    Testnet {
        #[command(subcommand)]
        command: TestnetCommand,
    },
    /// Your signing keys (for owning mutable data).
    Keys {
        #[command(subcommand)]
        command: mutable::KeysCommand,
    },
    /// Mutable records: owned, signed, versioned data at a name you claim.
    Mutable {
        #[command(subcommand)]
        command: mutable::MutableCommand,
    },
}

/// Where chunks go: the network (default) or a local directory.
#[derive(clap::Args)]
struct Target {
    /// Use this local directory instead of the network (offline use).
    #[arg(long, value_name = "DIR", conflicts_with = "peers")]
    local_store: Option<PathBuf>,
    #[command(flatten)]
    net: Peers,
}

/// How to reach the network.
#[derive(clap::Args)]
struct Peers {
    /// Bootstrap peer (repeatable). Default: $SAFE_PEERS (comma-separated),
    /// else the contacts file `safe testnet up` writes.
    #[arg(
        long = "peer",
        value_name = "MULTIADDR",
        env = "SAFE_PEERS",
        value_delimiter = ','
    )]
    peers: Vec<Multiaddr>,
    /// Close group size K of the network.
    #[arg(long, default_value_t = safe_network::DEFAULT_CLOSE_GROUP, value_name = "K")]
    close_group: usize,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Run a node in the foreground until Ctrl-C or SIGTERM.
    Run {
        /// The node's directory (identity and records); reused on restart.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Address to listen on (repeatable). Default: TCP and QUIC on all
        /// interfaces, ports chosen by the OS.
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<Multiaddr>,
        /// Peer to join through (repeatable); none starts a new network.
        #[arg(long = "peer", value_name = "MULTIADDR")]
        peers: Vec<Multiaddr>,
        /// Storage limit in bytes; a full node refuses new data.
        #[arg(long, value_name = "BYTES", default_value_t = safe_node::DEFAULT_MAX_STORAGE)]
        max_storage: u64,
        /// Disk space to leave free, in bytes: below it the node refuses new
        /// data as full (room for its index and compaction).
        #[arg(long, value_name = "BYTES", default_value_t = safe_node::store::DISK_RESERVE)]
        disk_reserve: u64,
        /// Serve Prometheus metrics on http://ADDR/metrics.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// Close group size K (the same for the whole network).
        #[arg(long, default_value_t = safe_network::DEFAULT_CLOSE_GROUP, value_name = "K")]
        close_group: usize,
    },
    /// List the names of the chunks in a node's segment files, one per line
    /// (read-only: safe while the node runs; includes chunks dropped but
    /// not yet compacted away).
    Records {
        /// The node's directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TestnetCommand {
    /// Start N nodes on 127.0.0.1 and run until Ctrl-C or SIGTERM.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = safe_node::testnet::DEFAULT_NODES)]
        nodes: usize,
        /// Directory for the nodes' data (kept across restarts).
        /// Default: the safe data directory's `testnet/`.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Close group size K.
        #[arg(long, default_value_t = safe_network::DEFAULT_CLOSE_GROUP, value_name = "K")]
        close_group: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SAFE_LOG")
                // Kademlia warns when a lone first node has no one to
                // bootstrap from; that is normal, not a warning to users.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,libp2p_kad=error")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, skipping a cause whose text an
/// outer error already includes.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Put {
            path,
            target,
            json,
            secret_file,
        } => {
            let secret = read_secret(secret_file.as_deref())?;
            match &target.local_store {
                Some(dir) => put(Arc::new(LocalStore::open(dir)?), &path, json, secret, None).await,
                None => {
                    let store = Arc::new(connect(&target.net).await?);
                    let result = put(store.clone(), &path, json, secret, Some(&store)).await;
                    store.shutdown().await;
                    result
                }
            }
        }
        Command::Get {
            address,
            target,
            output,
            range,
            secret_file,
        } => {
            let text = address;
            let address: Address = text
                .parse()
                .with_context(|| format!("invalid address {text:?}"))?;
            if address.kind == DataKind::Mutable {
                if target.local_store.is_some() || output.is_some() || range.is_some() {
                    bail!(
                        "{text} is a mutable record: --local-store, -o and --range do not apply (see `safe mutable get --help`)"
                    );
                }
                return mutable::get(&text, None, &target.net, false).await;
            }
            let range = range.as_deref().map(parse_range).transpose()?;
            let secret = read_secret(secret_file.as_deref())?;
            match &target.local_store {
                Some(dir) => {
                    if !dir.is_dir() {
                        bail!("local store {} does not exist", dir.display());
                    }
                    let store = Arc::new(LocalStore::open(dir)?);
                    get(store, &address, output.as_deref(), range, secret).await
                }
                None => {
                    let store = Arc::new(connect(&target.net).await?);
                    let result =
                        get(store.clone(), &address, output.as_deref(), range, secret).await;
                    store.shutdown().await;
                    result
                }
            }
        }
        Command::Node {
            command:
                NodeCommand::Run {
                    dir,
                    listen,
                    peers,
                    max_storage,
                    disk_reserve,
                    metrics,
                    close_group,
                },
        } => {
            let mut config = safe_node::NodeConfig::new(dir);
            if !listen.is_empty() {
                config.listen = listen;
            }
            config.peers = peers;
            config.max_storage = max_storage;
            config.disk_reserve = disk_reserve;
            config.metrics = metrics;
            config.close_group = close_group;
            node_run(config).await
        }
        Command::Node {
            command: NodeCommand::Records { dir },
        } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut written = Ok(());
            safe_node::store::segment_names(&dir, |name| {
                if written.is_ok() {
                    written = writeln!(out, "{}", name.to_hex());
                }
            })
            .with_context(|| format!("listing the records in {}", dir.display()))?;
            written.and_then(|()| out.flush())?;
            Ok(())
        }
        Command::Testnet {
            command:
                TestnetCommand::Up {
                    nodes,
                    dir,
                    close_group,
                },
        } => testnet_up(nodes, dir, close_group).await,
        Command::Keys { command } => mutable::keys(command),
        Command::Mutable { command } => mutable::mutable(command).await,
    }
}

/// Joins the network named by `target` (or the local testnet's contacts).
async fn connect(target: &Peers) -> Result<NetworkStore> {
    let mut peers = target.peers.clone();
    if peers.is_empty() {
        let path =
            safe_network::contacts::default_data_dir().join(safe_network::contacts::CONTACTS_FILE);
        match safe_network::contacts::read(&path) {
            Ok(found) => peers = found,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("cannot read contacts file {}: {e}", path.display()),
        }
    }
    Ok(NetworkStore::connect(&peers, target.close_group).await?)
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

async fn node_run(config: safe_node::NodeConfig) -> Result<()> {
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

async fn testnet_up(nodes: usize, dir: Option<PathBuf>, close_group: usize) -> Result<()> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let home = safe_network::contacts::default_data_dir();
    let dir = dir.unwrap_or_else(|| home.join("testnet"));
    let mut config = safe_node::testnet::TestnetConfig::new(&dir);
    config.nodes = nodes;
    config.node.close_group = close_group;
    let started = std::time::Instant::now();
    let net = safe_node::testnet::Testnet::up(config).await?;
    let contacts = [
        dir.join(safe_network::contacts::CONTACTS_FILE),
        home.join(safe_network::contacts::CONTACTS_FILE),
    ];
    net.write_contacts(&contacts)
        .await
        .context("cannot write the contacts file")?;
    println!(
        "ready: {nodes} nodes on 127.0.0.1 in {:.1} s (data in {}, contacts in {}). In another terminal: safe put FILE, then safe get ADDRESS -o OUT. Ctrl-C stops the network.",
        started.elapsed().as_secs_f64(),
        dir.display(),
        contacts[1].display()
    );
    std::io::stdout().flush().ok();
    shutdown_signal().await;
    net.down().await;
    eprintln!("testnet stopped");
    Ok(())
}

fn read_secret(path: Option<&Path>) -> Result<Option<Secret>> {
    let Some(path) = path else { return Ok(None) };
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read secret file {}", path.display()))?;
    if meta.len() > MAX_SECRET_FILE || meta.len() < 16 {
        bail!(
            "secret file {} must hold between 16 bytes and 64 KiB of random data",
            path.display()
        );
    }
    let material = std::fs::read(path)
        .with_context(|| format!("cannot read secret file {}", path.display()))?;
    Ok(Some(Secret::derive_from(&material)))
}

fn progress_bar(size: u64, verb: &str) -> Option<ProgressBar> {
    if size < PROGRESS_MIN_BYTES || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(size);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{verb} {{bar:40}} {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} eta {{eta}}"
    )) {
        bar.set_style(style);
    }
    Some(bar)
}

async fn put<S: ChunkStore>(
    store: Arc<S>,
    path: &Path,
    json: bool,
    secret: Option<Secret>,
    network: Option<&NetworkStore>,
) -> Result<()> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let bar = progress_bar(size, "encrypting");
    let progress: Arc<dyn Fn(u64) + Send + Sync> = match bar.clone() {
        Some(bar) => Arc::new(move |n| bar.set_position(n)),
        None => Arc::new(|_| {}),
    };
    let config = Config {
        secret,
        ..Config::default()
    };
    let report = files::put_file(store, path, config, progress).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    if json {
        let value = serde_json::json!({
            "address": report.address.to_string(),
            "size": report.size,
            "chunks": report.chunks,
            "stored_bytes": report.stored_bytes,
            "sent_bytes": network.map(NetworkStore::bytes_sent),
        });
        println!("{value}");
    } else {
        println!("{}", report.address);
    }
    Ok(())
}

/// Parses `START-END` (inclusive) or `START-` into a half-open range.
fn parse_range(text: &str) -> Result<Range<u64>> {
    let bad = || {
        anyhow::anyhow!(
            "invalid range {text:?}: expected START-END or START- (bytes, END inclusive)"
        )
    };
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end = match end.trim() {
        "" => u64::MAX,
        e => {
            let e: u64 = e.parse().map_err(|_| bad())?;
            if e < start {
                bail!("invalid range {text:?}: END is before START");
            }
            e.saturating_add(1)
        }
    };
    Ok(start..end)
}

async fn get<S: ChunkStore>(
    store: Arc<S>,
    address: &Address,
    output: Option<&Path>,
    range: Option<Range<u64>>,
    secret: Option<Secret>,
) -> Result<()> {
    let opened = files::open(&store, address, secret.as_ref()).await?;
    let range = range.unwrap_or(0..u64::MAX);
    let shown = range.end.min(opened.size).saturating_sub(range.start);
    let bar = progress_bar(shown, "decrypting");
    match output {
        None => {
            let mut out = Progress {
                inner: std::io::BufWriter::with_capacity(1 << 20, std::io::stdout()),
                bar: bar.clone(),
            };
            files::read_range(&store, &opened, range, &mut out).await?;
            out.flush().context("writing to stdout")?;
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if path.is_dir() {
                bail!(
                    "{} is a directory; give a file name with -o",
                    path.display()
                );
            }
            // Written beside OUT and renamed into place only when complete:
            // a failed get leaves nothing at OUT.
            let tmp = tempfile::Builder::new()
                .prefix(".safe-get-")
                .tempfile_in(dir)
                .with_context(|| format!("cannot create a file in {}", dir.display()))?;
            let mut out = Progress {
                inner: std::io::BufWriter::with_capacity(1 << 20, tmp),
                bar: bar.clone(),
            };
            files::read_range(&store, &opened, range, &mut out).await?;
            let tmp = out
                .inner
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("writing {}", path.display()))?;
            tmp.as_file()
                .sync_all()
                .with_context(|| format!("writing {}", path.display()))?;
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// A writer that advances a progress bar.
struct Progress<W> {
    inner: W,
    bar: Option<ProgressBar>,
}

impl<W: Write> Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::{one_line, parse_range};

    #[test]
    fn causes_are_not_repeated() {
        let e = anyhow::Error::new(std::io::Error::other("disk on fire"))
            .context("writing x: disk on fire");
        assert_eq!(one_line(&e), "writing x: disk on fire");
        let e = anyhow::Error::new(std::io::Error::other("inner")).context("outer");
        assert_eq!(one_line(&e), "outer: inner");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0-0").unwrap(), 0..1);
        assert_eq!(parse_range("10-19").unwrap(), 10..20);
        assert_eq!(parse_range("5-").unwrap(), 5..u64::MAX);
        assert!(parse_range("9-3").is_err());
        assert!(parse_range("abc").is_err());
        assert!(parse_range("-5").is_err());
    }
}
