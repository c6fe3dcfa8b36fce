//! A safe node: stores, validates, serves and replicates chunks and
//! mutable records.
//!
//! [`start`] opens the node's directory (identity, chunks and records),
//! joins the network through the given peers and serves the data protocol
//! until [`RunningNode::stop`]. Every chunk is validated before it is
//! stored (its name is the hash of its bytes, its size is within the
//! limit) and again when it is read. [`replication`] keeps each chunk and
//! record on the close group of its name as nodes come and go; [`testnet`]
//! starts many nodes in one process.
//!
//! Inside, imports run one way only (no two modules import each other):
//!
//! ```text
//! lib (start) ─> handler ─> chunks, records ─> node ─> fetch, store, metrics, faults
//!             └> replication ─> chunks, records, fetch
//! ```
//!
//! `handler` only dispatches a request to `chunks` or `records`, which own
//! their put, get, offer and fetch; `fetch` is the queue of what to fetch
//! and from whom; `node` is the state they share; `store` (with
//! `segments`) is the disk.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod accounts;
pub mod audit;
pub mod cache;
mod chunks;
mod faults;
mod fetch;
mod handler;
mod loglimit;
pub mod metrics;
mod node;
mod payments;
mod records;
pub mod relay;
pub mod replication;
mod segments;
pub mod spends;
pub mod store;
pub mod testnet;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use safe_network::Role;
use safe_network::driver;
use safe_network::libp2p;
use safe_protocol::XorName;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

#[cfg(feature = "test-faults")]
pub use faults::Faults;
use node::Node;
pub use payments::reward_wallet;
pub use store::{NodeStore, NodeStoreError};

/// File in the node's directory holding its metrics address while it runs
/// with metrics (so `safe node chunks --dir` can ask it for its live
/// chunks); removed when it stops.
pub const METRICS_FILE: &str = "metrics.addr";
/// File name of the node's identity key inside its directory.
pub const IDENTITY_FILE: &str = "identity.key";
/// Default capacity: 10 GiB.
pub const DEFAULT_MAX_STORAGE: u64 = 10 * 1024 * 1024 * 1024;
/// Inbound requests handled at once; more wait in the driver's bounded queue.
pub const MAX_CONCURRENT_HANDLERS: usize = 64;

/// How a node runs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Directory for the identity, chunks and records.
    pub dir: PathBuf,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to join through (none: the first node of a network).
    pub peers: Vec<Multiaddr>,
    /// Capacity limit in bytes.
    pub max_storage: u64,
    /// Disk space writes must leave free, in bytes.
    pub disk_reserve: u64,
    /// Serve Prometheus metrics here.
    pub metrics: Option<SocketAddr>,
    /// Close group size K (the same for the whole network).
    pub close_group: usize,
    /// Time between replication rounds.
    pub replication_interval: Duration,
    /// Bytes of popular chunks cached in memory for clients
    /// ([`cache::DEFAULT_CACHE_BYTES`]; 0 turns the cache off).
    pub cache_bytes: u64,
    /// Who may enter the routing table and lookup answers, the same on
    /// every node of a network: the id difficulty
    /// ([`safe_network::identity::valid_id`]; this node's own key must meet
    /// it too) and the places one network block may hold
    /// ([`safe_network::diversity`]); and whether loopback addresses count
    /// for the per-address limits.
    pub admission: safe_network::Admission,
    /// The network's genesis key (`docs/DESIGN-currency.md`): nodes with
    /// one vote on spends; `None`, a network without a currency.
    pub genesis: Option<[u8; 32]>,
    /// Where storage payments to this node go (`--reward-key`); `None`,
    /// the wallet derived from the node's key ([`reward_wallet`]).
    pub reward: Option<safe_protocol::coin::WalletAddress>,
    /// Time between storage audit rounds ([`audit`]); zero turns them off.
    pub audit_interval: Duration,
}

impl NodeConfig {
    /// Defaults for a node in `dir`: listen on all interfaces, TCP and
    /// QUIC, ports chosen by the OS.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            listen: vec![
                "/ip4/0.0.0.0/tcp/0".parse().expect("valid literal"),
                "/ip4/0.0.0.0/udp/0/quic-v1".parse().expect("valid literal"),
            ],
            peers: Vec::new(),
            max_storage: DEFAULT_MAX_STORAGE,
            disk_reserve: store::DISK_RESERVE,
            metrics: None,
            close_group: safe_network::DEFAULT_CLOSE_GROUP,
            replication_interval: replication::DEFAULT_INTERVAL,
            cache_bytes: cache::DEFAULT_CACHE_BYTES,
            admission: safe_network::Admission::new(safe_network::identity::DEFAULT_ID_DIFFICULTY),
            genesis: None,
            reward: None,
            audit_interval: audit::DEFAULT_AUDIT_INTERVAL,
        }
    }
}

/// Why a node could not start. Each variant keeps its cause as its
/// `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The directory or identity could not be used.
    #[error("node directory {dir}: {source}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] NodeStoreError),
    /// The network stack (transports, Kademlia, the data protocol) could
    /// not be built.
    #[error(transparent)]
    Build(#[from] safe_network::BuildError),
    /// An address to listen on was refused (malformed, unsupported, or in
    /// use).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        source: libp2p::TransportError<std::io::Error>,
    },
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A start-up task (opening the store) could not be run to its end.
    #[error("node start-up task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// A node did not report a listening address in time (testnet).
    #[error("node did not start listening within {0:?}")]
    NotListening(Duration),
    /// The testnet's routing tables did not fill in time.
    #[error("routing tables not populated after {0:?}")]
    NotReady(Duration),
}

/// A node that is running; stop it with [`RunningNode::stop`].
pub struct RunningNode {
    node: Arc<Node>,
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    metrics_addr: Option<SocketAddr>,
    dir: PathBuf,
}

/// Starts a node.
pub async fn start(config: NodeConfig) -> Result<RunningNode, StartError> {
    let dir_err = |source| StartError::Dir {
        dir: config.dir.clone(),
        source,
    };
    std::fs::create_dir_all(&config.dir).map_err(dir_err)?;
    let keypair = safe_network::identity::load_or_create(
        &config.dir.join(IDENTITY_FILE),
        config.admission.id_difficulty,
    )
    .map_err(dir_err)?;
    let store = {
        let dir = config.dir.clone();
        let cap = config.max_storage;
        tokio::task::spawn_blocking(move || NodeStore::open(&dir, cap))
            .await
            .map_err(StartError::Task)??
    };
    store.set_disk_reserve(config.disk_reserve);
    let admission = config.admission;
    let mut swarm = safe_network::build_swarm_with(keypair.clone(), Role::Node, admission)?;
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|source| StartError::Listen {
                addr: addr.clone(),
                source,
            })?;
    }
    let relay_control = swarm.behaviour().relay.new_control();
    let signing = {
        let not_ed25519 = |e: &dyn std::fmt::Display| {
            dir_err(std::io::Error::other(format!(
                "the node key is not ed25519: {e}"
            )))
        };
        let pair = keypair
            .clone()
            .try_into_ed25519()
            .map_err(|e| not_ed25519(&e))?;
        let secret: [u8; 32] = pair
            .secret()
            .as_ref()
            .try_into()
            .map_err(|e| not_ed25519(&e))?;
        ed25519_dalek::SigningKey::from_bytes(&secret)
    };
    let relay_keys =
        relay::RelayKeys::load_or_create(&config.dir, &signing, safe_network::network_id())
            .map_err(dir_err)?;
    let (inbound_tx, mut inbound_rx) = mpsc::channel(driver::INBOUND_QUEUE);
    let (net, driver_task) = driver::spawn(swarm, Some(inbound_tx), admission);
    let metrics = Arc::new(metrics::Metrics::default());
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let fetches = fetch::Fetcher::new();
    let reward = payments::reward_address(config.reward, &signing);
    let node = Arc::new(Node {
        net: net.clone(),
        keypair,
        store: Arc::new(store),
        k: config.close_group.max(1),
        metrics: metrics.clone(),
        faults: faults::Faults::default(),
        fetches,
        cache: cache::ChunkCache::new(config.cache_bytes),
        disk_full: AtomicBool::new(false),
        limits: accounts::RateLimits::default(),
        relay_keys,
        signing,
        genesis: config.genesis,
        reward,
        offers: crate::payments::OfferBook::default(),
        started: std::time::Instant::now(),
        verified: spends::Verified::default(),
        certs: relay::CertCache::default(),
        audits: audit::AuditBook::default(),
    });

    // Inbound requests, at most MAX_CONCURRENT_HANDLERS at a time.
    {
        let node = node.clone();
        let mut stop_rx = stop_rx.clone();
        tasks.spawn(async move {
            let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_HANDLERS));
            let mut handlers = JoinSet::new();
            loop {
                let inbound = tokio::select! {
                    i = inbound_rx.recv() => match i { Some(i) => i, None => break },
                    _ = stop_rx.changed() => break,
                };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let node = node.clone();
                handlers.spawn(async move {
                    handler::handle(&node, inbound).await;
                    drop(permit);
                });
                while handlers.try_join_next().is_some() {}
            }
            handlers.shutdown().await;
        });
    }
    tasks.spawn(replication::fetch_loop(node.clone(), stop_rx.clone()));
    tasks.spawn(relay::serve(node.clone(), relay_control, stop_rx.clone()));
    tasks.spawn(relay::cert_loop(node.clone(), stop_rx.clone()));
    tasks.spawn(audit::audit_loop(
        node.clone(),
        config.audit_interval,
        stop_rx.clone(),
    ));
    tasks.spawn(replication::offer_loop(
        node.clone(),
        config.replication_interval,
        stop_rx.clone(),
    ));
    // Index flusher: one durable commit per second covers every put.
    {
        let store = node.store.clone();
        let mut stop_rx = stop_rx.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            // The last failure logged: the same failure every second is
            // logged once, not once a second.
            let mut failing: Option<String> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => break,
                }
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.flush()).await {
                    Ok(Err(e)) => {
                        let e = e.to_string();
                        if failing.as_deref() != Some(&e) {
                            tracing::error!("cannot flush the store index: {e}");
                            failing = Some(e);
                        }
                    }
                    Ok(Ok(_)) if failing.take().is_some() => {
                        tracing::info!("the store index flushes again");
                    }
                    _ => {}
                }
            }
            let _ = tokio::task::spawn_blocking(move || store.flush()).await;
        });
    }
    // Driver: stopped on stop().
    {
        let net = net.clone();
        let mut stop_rx = stop_rx.clone();
        tasks.spawn(async move {
            let _ = stop_rx.changed().await;
            net.shutdown().await;
            let _ = driver_task.await;
        });
    }
    let metrics_addr = match config.metrics {
        Some(addr) => Some(
            metrics::serve(
                addr,
                metrics::Sources {
                    metrics: metrics.clone(),
                    store: node.store.clone(),
                    routing: net.routing_watch(),
                    node: node.clone(),
                },
                stop_rx.clone(),
                &mut tasks,
            )
            .await
            .map_err(|source| StartError::Metrics { addr, source })?,
        ),
        None => None,
    };

    // Join: dial the given peers; Kademlia fills the rest.
    for addr in &config.peers {
        if let Err(e) = net.dial(addr.clone()).await {
            tracing::warn!(%addr, "cannot reach peer: {e}");
        }
    }
    if !config.peers.is_empty() {
        net.bootstrap().await;
    }
    if let Some(addr) = metrics_addr {
        // Best effort: it only helps `safe node chunks --dir` find the node.
        if let Err(e) = std::fs::write(config.dir.join(METRICS_FILE), addr.to_string()) {
            tracing::debug!("cannot write {METRICS_FILE}: {e}");
        }
    }
    Ok(RunningNode {
        node,
        tasks,
        stop,
        metrics_addr,
        dir: config.dir.clone(),
    })
}

impl RunningNode {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.node.net.peer_id()
    }

    /// The addresses this node listens on, each with `/p2p/<peer id>`.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let id = self.peer_id();
        self.node
            .net
            .listen_addrs()
            .await
            .into_iter()
            .map(|a| a.with_p2p(id).unwrap_or_else(|a| a))
            .collect()
    }

    /// Where metrics are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Peers in this node's routing table.
    pub async fn routing_peers(&self) -> Vec<PeerId> {
        self.node.net.routing_peers().await
    }

    /// Challenges `peer` to prove it holds chunk `name`, which this node
    /// holds ([`audit`]); the outcome is also noted in [`Self::audits`].
    pub async fn audit(
        &self,
        peer: PeerId,
        name: XorName,
    ) -> Result<audit::Outcome, audit::AuditError> {
        audit::audit(&self.node, peer, name).await
    }

    /// The outcomes of this node's audits of other members, per peer.
    pub fn audits(&self) -> Vec<(PeerId, audit::PeerAudits)> {
        self.node.audits.snapshot()
    }

    /// True if this node holds a valid copy of `name`.
    pub fn holds(&self, name: &XorName) -> bool {
        matches!(self.node.store.get(*name), Ok(Some(_)))
    }

    /// Chunks this node has served (from its store or its cache).
    pub fn chunks_served(&self) -> u64 {
        self.node.metrics.chunks_served()
    }

    /// Anonymous circuits this node has taken a hop of.
    pub fn relay_circuits_created(&self) -> u64 {
        self.node.metrics.relay_circuits_created()
    }

    /// Chunks this node has served from its cache of popular chunks.
    pub fn cache_hits(&self) -> u64 {
        self.node.cache.hits()
    }

    /// Replication fetches queued now (at most [`replication::FETCH_QUEUE`]).
    pub fn fetch_queue(&self) -> usize {
        self.node.fetches.queued()
    }

    /// The node's store (for inspection).
    pub fn store(&self) -> &NodeStore {
        &self.node.store
    }

    /// Fault switches, for tests of everyone else's resilience (only with
    /// the `test-faults` feature).
    #[cfg(feature = "test-faults")]
    pub fn faults(&self) -> &Faults {
        &self.node.faults
    }

    /// Starts a Kademlia bootstrap (refreshes the routing table).
    pub async fn bootstrap(&self) {
        self.node.net.bootstrap().await;
    }

    /// Stops every task, closes connections and flushes the index.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        if self.metrics_addr.is_some() {
            let _ = std::fs::remove_file(self.dir.join(METRICS_FILE));
        }
    }
}
