//! A local network: N nodes in this process on 127.0.0.1, ports chosen by
//! the OS, each in `DIR/node-<i>` so data persists across restarts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libp2p::Multiaddr;
use safe_network::libp2p;

use crate::{NodeConfig, RunningNode, StartError, start};

/// Default number of nodes.
pub const DEFAULT_NODES: usize = 10;
/// How long `up` waits for routing tables to fill.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Node id difficulty of a local testnet: none, so nodes start at once
/// (and a testnet's existing directories keep working).
pub const TESTNET_ID_DIFFICULTY: u32 = 0;

/// How to start a testnet.
#[derive(Clone, Debug)]
pub struct TestnetConfig {
    /// Directory holding every node's directory and the contacts file.
    pub dir: PathBuf,
    /// Number of nodes.
    pub nodes: usize,
    /// How each node runs (close group size, replication interval,
    /// capacity, disk reserve, ...). Its `dir`, `listen`, `peers` and
    /// `metrics` are set per node: `DIR/node-<i>`, 127.0.0.1 with ports
    /// chosen by the OS, the nodes started before it, and no metrics (one
    /// address cannot serve them all).
    pub node: NodeConfig,
}

impl TestnetConfig {
    /// Defaults: [`DEFAULT_NODES`] nodes, each with [`NodeConfig::new`]'s
    /// defaults (K = 5).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let mut node = NodeConfig::new(&dir);
        node.admission.id_difficulty = TESTNET_ID_DIFFICULTY;
        // Every node is on 127.0.0.1, which the address-block limit exempts
        // anyway: off, so routing tables fill as Kademlia sees peers.
        node.admission.max_per_subnet = 0;
        Self {
            node,
            dir,
            nodes: DEFAULT_NODES,
        }
    }

    fn node_config(&self, i: usize, peers: Vec<Multiaddr>) -> NodeConfig {
        let mut c = self.node.clone();
        c.dir = self.dir.join(format!("node-{i}"));
        c.listen = vec![
            loopback("/ip4/127.0.0.1/tcp/0"),
            loopback("/ip4/127.0.0.1/udp/0/quic-v1"),
        ];
        c.peers = peers;
        c.metrics = None;
        c
    }
}

fn loopback(s: &str) -> Multiaddr {
    s.parse().expect("valid literal multiaddr")
}

/// A running local network.
pub struct Testnet {
    config: TestnetConfig,
    nodes: Vec<Option<RunningNode>>,
    seeds: Vec<Multiaddr>,
}

/// The TCP addresses among `addrs` (what contacts files list).
pub fn tcp_only(addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    addrs.into_iter().filter(safe_network::is_tcp).collect()
}

impl Testnet {
    /// Starts the nodes and waits until every routing table holds at least
    /// `min(N - 1, K)` peers.
    pub async fn up(config: TestnetConfig) -> Result<Self, StartError> {
        let n = config.nodes.max(1);
        std::fs::create_dir_all(&config.dir).map_err(|source| StartError::Dir {
            dir: config.dir.clone(),
            source,
        })?;
        let first = start(config.node_config(0, Vec::new())).await?;
        let seeds = tcp_only(wait_listening(&first).await?);
        let rest =
            futures::future::join_all((1..n).map(|i| start(config.node_config(i, seeds.clone()))))
                .await;
        let mut nodes = vec![Some(first)];
        for node in rest {
            nodes.push(Some(node?));
        }
        let net = Self {
            config,
            nodes,
            seeds,
        };
        net.wait_ready(READY_TIMEOUT).await?;
        Ok(net)
    }

    /// Waits until every running node sees at least `min(N - 1, K)` peers.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), StartError> {
        let live = self.nodes.iter().flatten().count();
        let want = (live.saturating_sub(1)).min(self.config.node.close_group);
        let deadline = Instant::now() + timeout;
        loop {
            let mut ready = true;
            for node in self.nodes.iter().flatten() {
                if node.routing_peers().await.len() < want {
                    ready = false;
                    node.bootstrap().await;
                }
            }
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::NotReady(timeout));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every running node's TCP address, for a contacts file.
    pub async fn contacts(&self) -> Vec<Multiaddr> {
        let mut out = Vec::new();
        for node in self.nodes.iter().flatten() {
            out.extend(tcp_only(node.listen_addrs().await));
        }
        out
    }

    /// Writes the contacts file to each of `paths`.
    pub async fn write_contacts(&self, paths: &[PathBuf]) -> std::io::Result<()> {
        let contacts = self.contacts().await;
        for p in paths {
            safe_network::contacts::write(p, &contacts)?;
        }
        Ok(())
    }

    /// The testnet's directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Node `i`, if running.
    pub fn node(&self, i: usize) -> Option<&RunningNode> {
        self.nodes.get(i).and_then(Option::as_ref)
    }

    /// Every running node.
    pub fn nodes(&self) -> impl Iterator<Item = &RunningNode> {
        self.nodes.iter().flatten()
    }

    /// Number of node slots (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if there are no node slots.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Stops node `i` (its directory stays).
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(node) = self.nodes.get_mut(i).and_then(Option::take) {
            node.stop().await;
        }
    }

    /// Starts node `i` again from its directory, joining through the
    /// running nodes.
    pub async fn restart_node(&mut self, i: usize) -> Result<(), StartError> {
        self.stop_node(i).await;
        let mut peers = self.contacts().await;
        if peers.is_empty() {
            peers = self.seeds.clone();
        }
        let node = start(self.config.node_config(i, peers)).await?;
        if let Some(slot) = self.nodes.get_mut(i) {
            *slot = Some(node);
        }
        Ok(())
    }

    /// Stops every node.
    pub async fn down(mut self) {
        futures::future::join_all(
            self.nodes
                .iter_mut()
                .filter_map(Option::take)
                .map(RunningNode::stop),
        )
        .await;
    }
}

async fn wait_listening(node: &RunningNode) -> Result<Vec<Multiaddr>, StartError> {
    let wait = Duration::from_secs(5);
    let deadline = Instant::now() + wait;
    loop {
        let addrs = node.listen_addrs().await;
        if !tcp_only(addrs.clone()).is_empty() {
            return Ok(addrs);
        }
        if Instant::now() >= deadline {
            return Err(StartError::NotListening(wait));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
