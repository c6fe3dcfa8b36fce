//! Relaying for anonymous access (issue 16; `docs/DESIGN-anonymity.md`):
//! every node is a relay on `/safe/relay/1`, and the exit of circuits
//! that end at it.
//!
//! - **Keys.** The node's relay key and certificate for this period
//!   ([`RelayKeys`], `DIR/relay.key`), and the certificates of its routing
//!   peers ([`CertCache`]), which it hands to clients (`RelayCerts`) so
//!   that a client never has to ask a relay for its own.
//! - **Links.** A relay link is one stream of fixed-size cells with one
//!   peer. A reader task per link hands cells to the relay's one core
//!   task ([`serve`]); a writer task per link writes what the core queues
//!   for it. The core owns every circuit and is the only one to touch the
//!   crypto state, so cells of a circuit are handled in order.
//! - **Circuits.** `CREATE` makes one (the handshake); `RELAY` cells are
//!   checked and unwrapped and either acted on or passed to the next hop;
//!   cells from the next hop get this hop's layer and go back. `EXTEND`
//!   opens (or reuses) a link to a peer id found in the routing table.
//! - **Exit.** `BEGIN` asks the exit to act as a client would: a chunk get
//!   (from its own store, the holders the client named, or its close group
//!   as this node sees it; checked against its name), a record get (copies
//!   verified and resolved), a record write, or a chunk put (its bytes
//!   following in `DATA` cells). The answer streams back in `DATA` cells,
//!   then `END`. For writes and puts the answer is what the members said:
//!   their signed receipts, which the client checks; an exit cannot forge
//!   them.
//!
//! Bounds: [`MAX_LINKS`], [`MAX_CIRCUITS`], [`MAX_CIRCUITS_PER_LINK`],
//! [`LINK_QUEUE`] cells per link and [`RELAY_BUDGET`] cells queued in all,
//! [`MAX_EXIT_STREAMS`] per circuit, one upload per circuit,
//! [`UPLOAD_BUDGET`] and [`MAX_EXIT_PUTS`], [`CIRCUIT_IDLE`]. A circuit that
//! would break one is destroyed; a shared link is never stopped for one
//! circuit. Relays never log which previous hop maps to which next hop.
//!
//! Not built yet (see the design's build order): flow control (`SENDME`;
//! for now one answer is at most one chunk, 65 cells, and a circuit has
//! at most [`MAX_EXIT_STREAMS`] at once), `SAMPLE`, per-source limits on
//! first hops.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::{AsyncRead, AsyncWrite, StreamExt};
use safe_network::libp2p::PeerId;
use safe_network::libp2p_stream::Control;
use safe_protocol::XorName;
use safe_protocol::messages::{MAX_CERT_PEERS, Refusal, Request, Response};
use safe_relay::cell::{
    BODY, CELL, FORWARD_ROOM, Forwarded, LinkCell, LinkCommand, forward_message,
};
use safe_relay::handshake::{self, CREATE_LEN};
use safe_relay::message::{
    BACKWARD_DATA, BEGIN_GET_CHUNK, BEGIN_GET_RECORD, BEGIN_PUT_CHUNK, BEGIN_PUT_RECORD, Command,
    END_BUSY, END_DONE, END_NOT_FOUND, END_UNPAID, END_UNSUPPORTED, Message,
};
use safe_relay::{HopState, RelayCert, RelaySecret, cert};
use tokio::sync::{mpsc, watch};

use crate::node::Node;

/// Most relay links at once.
pub const MAX_LINKS: usize = 1024;
/// Most circuits through this relay at once.
pub const MAX_CIRCUITS: usize = 512;
/// Most circuits on one link (from one previous hop).
pub const MAX_CIRCUITS_PER_LINK: usize = 64;
/// Cells queued for one link's writer.
pub const LINK_QUEUE: usize = 512;
/// Cells queued for all links together (64 MiB): past it, the circuit
/// that would queue more is destroyed.
pub const RELAY_BUDGET: usize = 4096;
/// Requests at once on one circuit at its exit.
pub const MAX_EXIT_STREAMS: usize = 4;
/// A circuit with no cell for this long is destroyed.
pub const CIRCUIT_IDLE: Duration = Duration::from_secs(60);
/// Events queued for the core task.
const EVENTS: usize = 1024;
/// How long one cell may take to be written to a link before the link is
/// dropped (its peer is not reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Links one peer may hold to this relay at once.
pub const MAX_LINKS_PER_PEER: usize = 4;
/// Bytes of chunk uploads an exit holds while they arrive, over all its
/// circuits (each circuit uploads one chunk at a time); past this a new
/// upload is refused as busy.
pub const UPLOAD_BUDGET: usize = 64 << 20;
/// Exit requests that hold much memory (putting an uploaded chunk, or
/// getting up to K + 2 copies of a record), at once over all circuits;
/// past this such a request is refused as busy.
pub const MAX_EXIT_PUTS: usize = 32;
/// The longest an exit works on one request: less than a client waits for
/// the next cell, so a slow member ends in an answer the client can act on.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(12);
/// How long opening a link to the next hop may take.
const EXTEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the exit waits for one holder's answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an exit waits for one holder's copy of a chunk before it asks
/// the next (several fit in [`EXIT_DEADLINE`]).
const GET_TIMEOUT: Duration = Duration::from_secs(3);
/// Certificates of other nodes kept for clients.
const MAX_CACHED_CERTS: usize = 2048;
/// How often routing peers' certificates are fetched.
const CERT_INTERVAL: Duration = Duration::from_secs(2);
const KEY_FILE: &str = "relay.key";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The node's relay keys: this period's and, after a rotation, the last
/// (clients may hold its certificate for [`cert::OVERLAP`] after its
/// period; a handshake takes whichever key the client named).
pub(crate) struct RelayKeys {
    secrets: Mutex<Vec<RelaySecret>>,
    network: [u8; 32],
    /// Signs each period's certificate.
    node: ed25519_dalek::SigningKey,
    /// `DIR/relay.key`: this period's key, kept across restarts.
    path: std::path::PathBuf,
}

impl RelayKeys {
    /// Loads `DIR/relay.key`, or makes a new key when there is none or its
    /// period is over.
    pub(crate) fn load_or_create(
        dir: &Path,
        node: &ed25519_dalek::SigningKey,
        network: [u8; 32],
    ) -> std::io::Result<Self> {
        Self::load_or_create_at(dir, node, network, now())
    }

    /// [`RelayKeys::load_or_create`] at unix time `t`.
    fn load_or_create_at(
        dir: &Path,
        node: &ed25519_dalek::SigningKey,
        network: [u8; 32],
        t: u64,
    ) -> std::io::Result<Self> {
        let path = dir.join(KEY_FILE);
        let node_key = node.verifying_key().to_bytes();
        let kept = std::fs::read(&path)
            .ok()
            .and_then(|b| RelaySecret::from_bytes(&b).ok())
            .filter(|s| s.cert.verify(&node_key, &network, t).is_ok())
            .filter(|s| s.cert.body.period == t / cert::PERIOD);
        let secret = match kept {
            Some(s) => s,
            None => new_key(&path, node, network, t)?,
        };
        Ok(Self {
            secrets: Mutex::new(vec![secret]),
            network,
            node: node.clone(),
            path,
        })
    }

    /// Starts a new key when the period of the current one is over (at
    /// unix time `t`), keeping the last one beside it; the new one is saved
    /// first. Returns the new period if it rotated.
    pub(crate) fn rotate(&self, t: u64) -> std::io::Result<Option<u64>> {
        let period = t / cert::PERIOD;
        let current = self
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .map(|s| s.cert.body.period);
        if current == Some(period) {
            return Ok(None);
        }
        let fresh = new_key(&self.path, &self.node, self.network, t)?;
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        let last = secrets.first().cloned();
        *secrets = std::iter::once(fresh).chain(last).collect();
        Ok(Some(period))
    }

    fn secrets(&self) -> Vec<RelaySecret> {
        self.secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn cert(&self) -> Option<RelayCert> {
        self.secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .map(|s| s.cert.clone())
    }
}

/// A new relay key for the period of unix time `t`, saved (0600) at
/// `path` before it is used.
fn new_key(
    path: &Path,
    node: &ed25519_dalek::SigningKey,
    network: [u8; 32],
    t: u64,
) -> std::io::Result<RelaySecret> {
    let s = RelaySecret::generate(node, network, t, None)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // The relay secret: readable by the node's user only.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(s.to_bytes().as_slice())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(s)
}

/// Certificates of other nodes, fetched from each node itself and checked,
/// to hand to clients.
#[derive(Default)]
pub(crate) struct CertCache {
    certs: Mutex<HashMap<[u8; 32], RelayCert>>,
}

impl CertCache {
    fn get(&self, key: &[u8; 32]) -> Option<RelayCert> {
        self.certs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }
}

/// The answer to `RelayCerts`: this node's own certificate and those it
/// holds of others, in the order asked (empty bytes: none).
pub(crate) fn answer_certs(node: &Node, keys: &[[u8; 32]]) -> Response {
    if keys.len() > MAX_CERT_PEERS {
        return Response::Refused(Refusal::OverLimit);
    }
    let me = node_key(node);
    let t = now();
    Response::RelayCerts(
        keys.iter()
            .map(|k| {
                let cert = if Some(*k) == me {
                    node.relay_keys.cert()
                } else {
                    node.certs.get(k)
                };
                cert.filter(|c| c.verify(k, &node.relay_keys.network, t).is_ok())
                    .map_or_else(Bytes::new, |c| Bytes::from(c.to_bytes()))
            })
            .collect(),
    )
}

fn node_key(node: &Node) -> Option<[u8; 32]> {
    safe_network::close_group::peer_to_key(&node.net.peer_id())
}

/// Fetches the certificates of routing peers this node lacks (or holds
/// for a past period), from each peer itself, every [`CERT_INTERVAL`].
pub(crate) async fn cert_loop(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(CERT_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let t = now();
        // A node that runs past its key's period goes on relaying with a
        // new key (clients fetch its new certificate as they fetch any).
        match node.relay_keys.rotate(t) {
            Ok(Some(period)) => tracing::info!(period, "relay key rotated for a new period"),
            Ok(None) => {}
            Err(e) => crate::loglimit::warn_limited!("cannot make a new relay key: {e}"),
        }
        let peers = node.net.routing_peers().await;
        let network = node.relay_keys.network;
        {
            // Forget peers that left the routing table once the cache is full.
            let mut certs = node
                .certs
                .certs
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if certs.len() >= MAX_CACHED_CERTS {
                let keep: std::collections::HashSet<[u8; 32]> = peers
                    .iter()
                    .filter_map(safe_network::close_group::peer_to_key)
                    .collect();
                certs.retain(|k, _| keep.contains(k));
            }
        }
        for peer in peers {
            let Some(key) = safe_network::close_group::peer_to_key(&peer) else {
                continue;
            };
            let fresh = node
                .certs
                .get(&key)
                .is_some_and(|c| c.body.period == t / cert::PERIOD);
            if fresh {
                continue;
            }
            let answer = tokio::time::timeout(
                FETCH_TIMEOUT,
                node.net
                    .request(peer, Request::RelayCerts { peers: vec![key] }),
            )
            .await;
            if let Ok(Ok(Response::RelayCerts(certs))) = answer {
                let cert = certs
                    .first()
                    .and_then(|b| RelayCert::from_bytes(b).ok())
                    .filter(|c| c.verify(&key, &network, t).is_ok());
                if let Some(cert) = cert {
                    let mut certs = node
                        .certs
                        .certs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if certs.len() < MAX_CACHED_CERTS || certs.contains_key(&key) {
                        certs.insert(key, cert);
                    }
                }
            }
        }
    }
}

type LinkId = u64;
/// A circuit on a link: the link and the circuit id on it.
type Side = (LinkId, u32);

enum Event {
    /// A link this relay opened for an `EXTEND` is up.
    Opened {
        link: LinkId,
        peer: PeerId,
        tasks: LinkTasks,
    },
    /// A cell came in on a link.
    Cell { link: LinkId, cell: LinkCell },
    /// A link closed.
    Closed { link: LinkId },
    /// The link for an `EXTEND` is up (`Some`) or could not be opened.
    Extended {
        circuit: Side,
        serial: u64,
        peer: PeerId,
        link: Option<LinkId>,
        create: [u8; CREATE_LEN],
    },
    /// The exit's answer to a request.
    Answer {
        circuit: Side,
        serial: u64,
        stream: u32,
        answer: Result<Bytes, u8>,
    },
}

struct Link {
    peer: PeerId,
    tx: mpsc::Sender<Box<[u8; CELL]>>,
    /// Stops the link's reader (dropping `tx` stops its writer).
    reader: tokio::task::AbortHandle,
    circuits: usize,
    next_id: u32,
    last: Instant,
}

impl Link {
    fn new(peer: PeerId, (tx, reader): LinkTasks) -> Self {
        Self {
            peer,
            tx,
            reader,
            circuits: 0,
            next_id: 1,
            last: Instant::now(),
        }
    }
}

/// A link's writer queue and its reader task.
type LinkTasks = (mpsc::Sender<Box<[u8; CELL]>>, tokio::task::AbortHandle);

struct Circuit {
    /// Unique for the relay's lifetime: events for a circuit that is gone
    /// must not act on a later one that reuses its id.
    serial: u64,
    hop: HopState,
    next: Option<Side>,
    extending: bool,
    streams: usize,
    last: Instant,
    /// A chunk arriving for a put, at the exit.
    upload: Option<Upload>,
}

/// A chunk an exit is receiving in `DATA` cells before it puts it.
struct Upload {
    stream: u32,
    holders: Vec<PeerId>,
    want: usize,
    bytes: Vec<u8>,
}

/// The relay: links, circuits and the exit.
struct Relay {
    node: Arc<Node>,
    control: Control,
    events: mpsc::Sender<Event>,
    links: HashMap<LinkId, Link>,
    /// Links this relay opened, by peer, for reuse by later `EXTEND`s.
    out_links: HashMap<PeerId, LinkId>,
    next_link: LinkId,
    /// Circuits by their previous side.
    circuits: HashMap<Side, Circuit>,
    /// The next circuit's serial.
    next_serial: u64,
    /// Peers a link is being opened to (one at a time each).
    pending: std::collections::HashSet<PeerId>,
    /// Next sides, to the previous side of their circuit.
    backs: HashMap<Side, Side>,
    queued: Arc<AtomicUsize>,
    /// Bytes reserved by uploads in progress ([`UPLOAD_BUDGET`]).
    uploading: usize,
    /// Puts and record gets running ([`MAX_EXIT_PUTS`]).
    puts: Arc<tokio::sync::Semaphore>,
}

/// Runs the relay until `stop`: accepts links on `/safe/relay/1` and
/// handles every cell.
pub(crate) async fn serve(node: Arc<Node>, mut control: Control, mut stop: watch::Receiver<bool>) {
    let mut incoming = match control.accept(safe_network::RELAY_PROTOCOL) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!("cannot accept relay links: {e}");
            return;
        }
    };
    let (events, mut rx) = mpsc::channel(EVENTS);
    let mut relay = Relay {
        node,
        control,
        events,
        links: HashMap::new(),
        out_links: HashMap::new(),
        next_link: 1,
        circuits: HashMap::new(),
        next_serial: 1,
        pending: std::collections::HashSet::new(),
        backs: HashMap::new(),
        queued: Arc::new(AtomicUsize::new(0)),
        uploading: 0,
        puts: Arc::new(tokio::sync::Semaphore::new(MAX_EXIT_PUTS)),
    };
    let mut tick = tokio::time::interval(CIRCUIT_IDLE / 4);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = incoming.next() => {
                let Some((peer, stream)) = accepted else { break };
                let from_peer = relay.links.values().filter(|l| l.peer == peer).count();
                if relay.links.len() + relay.pending.len() >= MAX_LINKS || from_peer >= MAX_LINKS_PER_PEER {
                    tracing::debug!(%peer, "relay link refused: too many links");
                    continue;
                }
                tracing::debug!(%peer, "relay link from peer");
                let link = relay.new_link_id();
                let link_tasks = spawn_link(&mut tasks, link, stream, relay.events.clone(), relay.queued.clone());
                relay.links.insert(link, Link::new(peer, link_tasks));
            }
            event = rx.recv() => {
                let Some(event) = event else { break };
                relay.handle(event, &mut tasks);
            }
            _ = tick.tick() => relay.expire(),
            _ = stop.changed() => break,
        }
        while tasks.try_join_next().is_some() {}
    }
    tasks.shutdown().await;
}

/// Starts a link's reader and writer; returns the writer's queue.
fn spawn_link<S>(
    tasks: &mut tokio::task::JoinSet<()>,
    link: LinkId,
    stream: S,
    events: mpsc::Sender<Event>,
    queued: Arc<AtomicUsize>,
) -> LinkTasks
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = stream.split();
    let (tx, mut rx) = mpsc::channel::<Box<[u8; CELL]>>(LINK_QUEUE);
    tasks.spawn(async move {
        while let Some(cell) = rx.recv().await {
            queued.fetch_sub(1, Ordering::Relaxed);
            // A peer that stops reading holds its queue against the
            // relay's budget: after WRITE_TIMEOUT it loses the link.
            let wrote = tokio::time::timeout(WRITE_TIMEOUT, async {
                writer.write_all(cell.as_slice()).await?;
                if rx.is_empty() {
                    writer.flush().await?;
                }
                Ok::<(), std::io::Error>(())
            })
            .await;
            if !matches!(wrote, Ok(Ok(()))) {
                break;
            }
        }
        // Cells left in the queue no longer count against the budget.
        rx.close();
        while rx.try_recv().is_ok() {
            queued.fetch_sub(1, Ordering::Relaxed);
        }
        let _ = writer.close().await;
    });
    let reader_task = tasks.spawn(async move {
        let mut buf = vec![0u8; CELL];
        loop {
            if reader.read_exact(&mut buf).await.is_err() {
                break;
            }
            let Ok(cell) = LinkCell::decode(&buf) else {
                break;
            };
            if events.send(Event::Cell { link, cell }).await.is_err() {
                return;
            }
        }
        let _ = events.send(Event::Closed { link }).await;
    });
    (tx, reader_task)
}

impl Relay {
    /// Whether `side` is still the circuit of that serial.
    fn is_current(&self, side: Side, serial: u64) -> bool {
        self.circuits.get(&side).is_some_and(|c| c.serial == serial)
    }

    fn new_link_id(&mut self) -> LinkId {
        let id = self.next_link;
        self.next_link += 1;
        id
    }

    /// Queues a cell on a link; false if the link is gone or full, or the
    /// relay is over its budget.
    fn send(&self, (link, circuit): Side, command: LinkCommand, body: Box<[u8; BODY]>) -> bool {
        let Some(l) = self.links.get(&link) else {
            return false;
        };
        if self.queued.load(Ordering::Relaxed) >= RELAY_BUDGET {
            self.node.metrics.relay_destroyed();
            return false;
        }
        let mut bytes = Box::new([0u8; CELL]);
        LinkCell {
            circuit,
            command,
            body,
        }
        .encode(&mut bytes);
        self.queued.fetch_add(1, Ordering::Relaxed);
        if l.tx.try_send(bytes).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn destroy_cell(&self, side: Side) {
        let _ = self.send(side, LinkCommand::Destroy, Box::new([0u8; BODY]));
    }

    /// Tears down the circuit whose previous side is `prev`, telling both
    /// neighbours (with no reason: a reason could carry a mark).
    fn destroy(&mut self, prev: Side) {
        if let Some(c) = self.circuits.remove(&prev) {
            if let Some(u) = &c.upload {
                self.uploading = self.uploading.saturating_sub(u.want);
            }
            self.node.metrics.relay_destroyed();
            self.destroy_cell(prev);
            if let Some(l) = self.links.get_mut(&prev.0) {
                l.circuits = l.circuits.saturating_sub(1);
            }
            if let Some(next) = c.next {
                self.backs.remove(&next);
                self.destroy_cell(next);
                if let Some(l) = self.links.get_mut(&next.0) {
                    l.circuits = l.circuits.saturating_sub(1);
                }
            }
        }
    }

    fn expire(&mut self) {
        // Links that carry no circuit and have been quiet: closed.
        let quiet: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.circuits == 0 && l.last.elapsed() > CIRCUIT_IDLE)
            .map(|(k, _)| *k)
            .collect();
        for link in quiet {
            self.drop_link(link);
        }
        let idle: Vec<Side> = self
            .circuits
            .iter()
            .filter(|(_, c)| c.last.elapsed() > CIRCUIT_IDLE && c.streams == 0)
            .map(|(k, _)| *k)
            .collect();
        for prev in idle {
            self.destroy(prev);
        }
        self.node.metrics.set_relay_circuits(self.circuits.len());
    }

    fn handle(&mut self, event: Event, tasks: &mut tokio::task::JoinSet<()>) {
        match event {
            Event::Opened { link, peer, tasks } => {
                self.links.insert(link, Link::new(peer, tasks));
                self.out_links.insert(peer, link);
            }
            Event::Closed { link } => self.link_closed(link),
            Event::Cell { link, cell } => self.cell(link, cell, tasks),
            Event::Extended {
                circuit,
                serial,
                peer,
                link,
                create,
            } => {
                self.pending.remove(&peer);
                if self.is_current(circuit, serial) {
                    self.extended(circuit, link, create);
                }
            }
            Event::Answer {
                circuit,
                serial,
                stream,
                answer,
            } => {
                if self.is_current(circuit, serial) {
                    self.answer(circuit, stream, answer, true);
                }
            }
        }
    }

    /// Forgets a link and stops its tasks.
    fn drop_link(&mut self, link: LinkId) {
        if let Some(l) = self.links.remove(&link) {
            l.reader.abort();
            if self.out_links.get(&l.peer) == Some(&link) {
                self.out_links.remove(&l.peer);
            }
        }
    }

    fn link_closed(&mut self, link: LinkId) {
        self.drop_link(link);
        let prevs: Vec<Side> = self
            .circuits
            .iter()
            .filter(|(prev, c)| prev.0 == link || c.next.is_some_and(|n| n.0 == link))
            .map(|(k, _)| *k)
            .collect();
        for prev in prevs {
            self.destroy(prev);
        }
    }

    fn cell(&mut self, link: LinkId, cell: LinkCell, tasks: &mut tokio::task::JoinSet<()>) {
        let side = (link, cell.circuit);
        // Only circuit traffic keeps a link from being closed as idle.
        let busy = cell.command == LinkCommand::Create
            || self.backs.contains_key(&side)
            || self.circuits.contains_key(&side);
        match self.links.get_mut(&link) {
            Some(l) if busy => l.last = Instant::now(),
            Some(_) => {}
            // A cell from a link already dropped.
            None => return,
        }
        if let Some(&prev) = self.backs.get(&side) {
            return self.backward_cell(prev, cell);
        }
        match cell.command {
            LinkCommand::Create => self.create(side, &cell.body),
            LinkCommand::Relay | LinkCommand::RelayEarly => {
                let early = cell.command == LinkCommand::RelayEarly;
                self.forward_cell(side, early, cell.body, tasks);
            }
            LinkCommand::Destroy => {
                if self.circuits.contains_key(&side) {
                    self.destroy(side);
                }
            }
            LinkCommand::Padding => {}
            // A CREATED with no extend waiting for it.
            LinkCommand::Created => {
                if self.circuits.contains_key(&side) {
                    self.destroy(side);
                }
            }
        }
    }

    fn create(&mut self, prev: Side, body: &[u8; BODY]) {
        let Some(l) = self.links.get(&prev.0) else {
            return;
        };
        if self.circuits.contains_key(&prev)
            || self.circuits.len() >= MAX_CIRCUITS
            || l.circuits >= MAX_CIRCUITS_PER_LINK
        {
            return self.destroy_cell(prev);
        }
        let secrets = self.node.relay_keys.secrets();
        match handshake::respond(
            &secrets,
            &self.node.relay_keys.network,
            &body[..CREATE_LEN],
            now(),
        ) {
            Ok((created, keys)) => {
                let Ok(cell) = LinkCell::with_prefix(prev.1, LinkCommand::Created, &created) else {
                    return;
                };
                if self.send(prev, LinkCommand::Created, cell.body) {
                    self.circuits.insert(
                        prev,
                        Circuit {
                            serial: self.next_serial,
                            hop: HopState::new(keys),
                            next: None,
                            extending: false,
                            streams: 0,
                            last: Instant::now(),
                            upload: None,
                        },
                    );
                    self.next_serial += 1;
                    if let Some(l) = self.links.get_mut(&prev.0) {
                        l.circuits += 1;
                    }
                    self.node.metrics.relay_circuit_created();
                }
            }
            Err(e) => {
                tracing::debug!("relay CREATE refused: {e}");
                self.destroy_cell(prev);
            }
        }
    }

    fn forward_cell(
        &mut self,
        prev: Side,
        early: bool,
        mut body: Box<[u8; BODY]>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        // A cell for no circuit is dropped: answering it would let a peer
        // make this relay write as much as it sends.
        let Some(c) = self.circuits.get_mut(&prev) else {
            return;
        };
        c.last = Instant::now();
        let next = c.next;
        match c.hop.forward(&mut body, early) {
            Ok(Forwarded::Pass) => {
                let command = if early {
                    LinkCommand::RelayEarly
                } else {
                    LinkCommand::Relay
                };
                self.node.metrics.relay_cell();
                if !next.is_some_and(|next| self.send(next, command, body)) {
                    self.destroy(prev);
                }
            }
            Ok(Forwarded::Mine) => self.message(prev, early, &body, tasks),
            Err(e) => {
                tracing::debug!("relay cell refused: {e}");
                self.destroy(prev);
            }
        }
    }

    fn backward_cell(&mut self, prev: Side, cell: LinkCell) {
        let Some(c) = self.circuits.get_mut(&prev) else {
            return;
        };
        c.last = Instant::now();
        match cell.command {
            LinkCommand::Relay if !c.extending => {
                let mut body = cell.body;
                if c.hop.backward(&mut body).is_ok() {
                    self.node.metrics.relay_cell();
                    if self.send(prev, LinkCommand::Relay, body) {
                        return;
                    }
                }
                self.destroy(prev);
            }
            LinkCommand::Created if c.extending => {
                c.extending = false;
                let created = &cell.body[..handshake::CREATED_LEN];
                let message = Message {
                    command: Command::Extended,
                    stream: 0,
                    data: created,
                };
                let back = message
                    .to_bytes(safe_relay::cell::BACKWARD_ROOM)
                    .ok()
                    .and_then(|m| c.hop.originate(&m).ok());
                let sent = back.is_some_and(|body| self.send(prev, LinkCommand::Relay, body));
                match sent {
                    true => {}
                    false => self.destroy(prev),
                }
            }
            LinkCommand::Padding => {}
            // DESTROY, a backward RELAY_EARLY, or anything out of turn.
            _ => self.destroy(prev),
        }
    }

    /// A relay message for this hop.
    fn message(
        &mut self,
        prev: Side,
        early: bool,
        body: &[u8; BODY],
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        let Ok(m) = Message::decode(forward_message(body), FORWARD_ROOM) else {
            return self.destroy(prev);
        };
        match m.command {
            Command::Extend if early => self.extend(prev, m.data, tasks),
            Command::Begin => self.begin(prev, m.stream, m.data, tasks),
            Command::Data => self.upload(prev, m.stream, m.data, tasks),
            Command::Padding => {}
            _ => self.destroy(prev),
        }
    }

    /// `EXTEND`: peer id length (1), peer id, `CREATE`.
    fn extend(&mut self, prev: Side, data: &[u8], tasks: &mut tokio::task::JoinSet<()>) {
        let parsed = data.split_first().and_then(|(&n, rest)| {
            let n = n as usize;
            (rest.len() == n + CREATE_LEN).then(|| (&rest[..n], &rest[n..]))
        });
        let Some((id, create)) = parsed else {
            return self.destroy(prev);
        };
        let Ok(peer) = PeerId::from_bytes(id) else {
            return self.destroy(prev);
        };
        let prev_peer = self.links.get(&prev.0).map(|l| l.peer);
        let ok = self
            .circuits
            .get(&prev)
            .is_some_and(|c| c.next.is_none() && !c.extending);
        if !ok || peer == self.node.net.peer_id() || Some(peer) == prev_peer {
            return self.destroy(prev);
        }
        let mut create_bytes = [0u8; CREATE_LEN];
        create_bytes.copy_from_slice(create);
        if let Some(c) = self.circuits.get_mut(&prev) {
            c.extending = true;
        }
        if let Some(&link) = self.out_links.get(&peer) {
            return self.extended(prev, Some(link), create_bytes);
        }
        if self.links.len() + self.pending.len() >= MAX_LINKS || !self.pending.insert(peer) {
            return self.destroy(prev);
        }
        let serial = self.circuits.get(&prev).map_or(0, |c| c.serial);
        let (node, mut control, events, queued) = (
            self.node.clone(),
            self.control.clone(),
            self.events.clone(),
            self.queued.clone(),
        );
        let link = self.new_link_id();
        tasks.spawn(async move {
            // Only a peer this node routes to: never an address a client gave.
            let known = node.net.routing_peers().await.contains(&peer);
            let stream = if known {
                tokio::time::timeout(
                    EXTEND_TIMEOUT,
                    control.open_stream(peer, safe_network::RELAY_PROTOCOL),
                )
                .await
                .ok()
                .and_then(Result::ok)
            } else {
                None
            };
            let mut opened = None;
            if let Some(stream) = stream {
                let mut tasks = tokio::task::JoinSet::new();
                let link_tasks = spawn_link(&mut tasks, link, stream, events.clone(), queued);
                // The link's tasks live as long as the link.
                tokio::spawn(async move { while tasks.join_next().await.is_some() {} });
                let up = Event::Opened {
                    link,
                    peer,
                    tasks: link_tasks,
                };
                if events.send(up).await.is_err() {
                    return;
                }
                opened = Some(link);
            }
            let _ = events
                .send(Event::Extended {
                    circuit: prev,
                    serial,
                    peer,
                    link: opened,
                    create: create_bytes,
                })
                .await;
        });
    }

    fn extended(&mut self, prev: Side, link: Option<LinkId>, create: [u8; CREATE_LEN]) {
        let Some(link) = link else {
            return self.destroy(prev);
        };
        if !self.circuits.contains_key(&prev) {
            return;
        }
        let Some(l) = self.links.get_mut(&link) else {
            return self.destroy(prev);
        };
        if l.circuits >= MAX_CIRCUITS_PER_LINK {
            return self.destroy(prev);
        }
        let id = l.next_id;
        l.next_id = l.next_id.wrapping_add(1).max(1);
        l.circuits += 1;
        let next = (link, id);
        if let Some(c) = self.circuits.get_mut(&prev) {
            c.next = Some(next);
        }
        self.backs.insert(next, prev);
        let sent = LinkCell::with_prefix(id, LinkCommand::Create, &create)
            .is_ok_and(|cell| self.send(next, LinkCommand::Create, cell.body));
        if !sent {
            self.destroy(prev);
        }
    }

    /// `BEGIN` at the exit: a request, answered on `stream`.
    fn begin(
        &mut self,
        prev: Side,
        stream: u32,
        data: &[u8],
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        let Some(c) = self.circuits.get_mut(&prev) else {
            return;
        };
        if c.next.is_some() {
            // Only the last hop of a circuit is its exit.
            return self.destroy(prev);
        }
        if c.streams >= MAX_EXIT_STREAMS {
            return self.answer(prev, stream, Err(END_BUSY), false);
        }
        let Some(request) = parse_begin(data) else {
            return self.answer(prev, stream, Err(END_UNSUPPORTED), false);
        };
        if let ExitRequest::Write(write, _) = &request
            && crate::payments::charges(&self.node).is_some()
            && matches!(
                safe_protocol::mutable::Write::decode(write),
                Ok(safe_protocol::mutable::Write::Create(_))
            )
        {
            // A create needs a payment, which cannot come through a
            // circuit yet: the members would refuse it.
            return self.answer(prev, stream, Err(END_UNPAID), false);
        }
        if let ExitRequest::PutChunk(holders, want) = request {
            if crate::payments::charges(&self.node).is_some() {
                // The members would refuse it unpaid: said at once,
                // before any byte of it comes.
                return self.answer(prev, stream, Err(END_UNPAID), false);
            }
            if c.upload.is_some() || self.uploading + want > UPLOAD_BUDGET {
                return self.answer(prev, stream, Err(END_BUSY), false);
            }
            c.streams += 1;
            c.upload = Some(Upload {
                stream,
                holders,
                want,
                bytes: Vec::with_capacity(want),
            });
            self.uploading += want;
            return;
        }
        c.streams += 1;
        let serial = c.serial;
        let (node, events) = (self.node.clone(), self.events.clone());
        let fetches = self.puts.clone();
        tasks.spawn(async move {
            let work = async {
                match request {
                    ExitRequest::Chunk(name, holders) => exit_get(&node, name, holders).await,
                    ExitRequest::Record(name, holders) => {
                        // Up to K + 2 copies of up to ~1 MiB each: shares
                        // MAX_EXIT_PUTS with puts.
                        let Ok(_permit) = fetches.try_acquire_owned() else {
                            return Err(END_BUSY);
                        };
                        exit_get_record(&node, name, holders).await
                    }
                    ExitRequest::Write(write, holders) => exit_write(&node, write, holders).await,
                    ExitRequest::PutChunk(..) => Err(END_UNSUPPORTED),
                }
            };
            let answer = exit_answer(&node, work).await;
            let _ = events
                .send(Event::Answer {
                    circuit: prev,
                    serial,
                    stream,
                    answer,
                })
                .await;
        });
    }

    /// `DATA` at the exit: the next bytes of the circuit's upload; once it
    /// has them all, the chunk is put to its close group and the members'
    /// receipts are the answer. Bytes for no upload, or past its size, end
    /// the circuit.
    fn upload(
        &mut self,
        prev: Side,
        stream: u32,
        data: &[u8],
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        let Some(c) = self.circuits.get_mut(&prev) else {
            return;
        };
        let fits = c.upload.as_ref().is_some_and(|u| {
            u.stream == stream && c.next.is_none() && u.bytes.len() + data.len() <= u.want
        });
        if !fits {
            return self.destroy(prev);
        }
        c.last = Instant::now();
        let Some(u) = c.upload.as_mut() else { return };
        u.bytes.extend_from_slice(data);
        if u.bytes.len() < u.want {
            return;
        }
        let Some(u) = c.upload.take() else { return };
        self.uploading = self.uploading.saturating_sub(u.want);
        let Ok(permit) = self.puts.clone().try_acquire_owned() else {
            return self.answer(prev, stream, Err(END_BUSY), true);
        };
        let serial = c.serial;
        let (node, events) = (self.node.clone(), self.events.clone());
        tasks.spawn(async move {
            let answer = exit_answer(&node, exit_put(&node, Bytes::from(u.bytes), u.holders)).await;
            drop(permit);
            let _ = events
                .send(Event::Answer {
                    circuit: prev,
                    serial,
                    stream,
                    answer,
                })
                .await;
        });
    }

    /// Streams an exit's answer back: `DATA` cells, then `END`.
    /// `counted`: the answer ends a request that took one of the circuit's
    /// exit streams (a refusal before it started took none).
    fn answer(&mut self, prev: Side, stream: u32, answer: Result<Bytes, u8>, counted: bool) {
        let Some(c) = self.circuits.get_mut(&prev) else {
            return;
        };
        if counted {
            c.streams = c.streams.saturating_sub(1);
        }
        c.last = Instant::now();
        let (bytes, reason) = match &answer {
            Ok(b) => (b.as_ref(), END_DONE),
            Err(r) => (&[][..], *r),
        };
        let room = safe_relay::cell::BACKWARD_ROOM;
        let end = [reason];
        let parts = bytes
            .chunks(BACKWARD_DATA)
            .map(|part| (Command::Data, part))
            .chain(std::iter::once((Command::End, &end[..])));
        let mut bodies = Vec::with_capacity(bytes.len() / BACKWARD_DATA + 2);
        for (command, data) in parts {
            let m = Message {
                command,
                stream,
                data,
            };
            match m.to_bytes(room).map(|m| c.hop.originate(&m)) {
                Ok(Ok(body)) => bodies.push(body),
                _ => return self.destroy(prev),
            }
        }
        for body in bodies {
            if !self.send(prev, LinkCommand::Relay, body) {
                return self.destroy(prev);
            }
        }
    }
}

/// An exit request's answer: `work` within [`EXIT_DEADLINE`] (else
/// "busy"), through the fault switch tests use.
async fn exit_answer(
    node: &Node,
    work: impl std::future::Future<Output = Result<Bytes, u8>>,
) -> Result<Bytes, u8> {
    tokio::time::timeout(EXIT_DEADLINE, work)
        .await
        .unwrap_or(Err(END_BUSY))
        .map(|b| node.faults.exit_answer(b))
}

/// What a `BEGIN` asks of the exit.
enum ExitRequest {
    /// A chunk, and the holders to ask (none: the close group).
    Chunk(XorName, Vec<PeerId>),
    /// A record, and the holders to ask.
    Record(XorName, Vec<PeerId>),
    /// An encoded write, and the holders to send it to.
    Write(Bytes, Vec<PeerId>),
    /// A chunk to put, which follows in `DATA` cells: the holders to send
    /// it to, and its size.
    PutChunk(Vec<PeerId>, usize),
}

/// A `BEGIN`'s data: a kind byte, then for a chunk or record get its name
/// (32) and optionally the holders to ask (a count, at most
/// [`safe_relay::message::MAX_HOLDERS`], then that many length-prefixed
/// peer ids); for a record write the holders (always with their count,
/// possibly 0) and then the encoded write to the end.
fn parse_begin(data: &[u8]) -> Option<ExitRequest> {
    let (&kind, rest) = data.split_first()?;
    match kind {
        BEGIN_GET_CHUNK | BEGIN_GET_RECORD => {
            let name = XorName(rest.get(..32)?.try_into().ok()?);
            let rest = &rest[32..];
            let holders = match rest.is_empty() {
                true => Vec::new(),
                false => {
                    let (holders, rest) = parse_holders(rest)?;
                    if !rest.is_empty() {
                        return None;
                    }
                    holders
                }
            };
            Some(match kind {
                BEGIN_GET_CHUNK => ExitRequest::Chunk(name, holders),
                _ => ExitRequest::Record(name, holders),
            })
        }
        BEGIN_PUT_RECORD => {
            let (holders, write) = parse_holders(rest)?;
            (!write.is_empty()).then(|| ExitRequest::Write(Bytes::copy_from_slice(write), holders))
        }
        BEGIN_PUT_CHUNK => {
            let (holders, size) = parse_holders(rest)?;
            let size = u32::from_le_bytes(size.try_into().ok()?) as usize;
            (1..=safe_protocol::MAX_CHUNK_SIZE)
                .contains(&size)
                .then_some(ExitRequest::PutChunk(holders, size))
        }
        _ => None,
    }
}

/// A count of holders and that many length-prefixed peer ids; the rest.
fn parse_holders(data: &[u8]) -> Option<(Vec<PeerId>, &[u8])> {
    let (&count, mut rest) = data.split_first()?;
    if count as usize > safe_relay::message::MAX_HOLDERS {
        return None;
    }
    let mut holders = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (&len, more) = rest.split_first()?;
        let id = more.get(..len as usize)?;
        holders.push(PeerId::from_bytes(id).ok()?);
        rest = &more[len as usize..];
    }
    Some((holders, rest))
}

/// Where an exit looks for a name's close group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    /// Its routing table: no query (enough on a small network, or near
    /// this node's own id).
    Routing,
    /// Its routing table and a lookup, so an exit far from the name still
    /// finds its group.
    Lookup,
}

/// Whom an exit asks for a chunk or record or sends a write or put to: the
/// close group in `view`, or, when the client named holders, those of them
/// that are among its K + 2 closest there (never anyone else: an exit is
/// not a reflector aimed at arbitrary peers), each once. Also whether this
/// node is one of them (it answers from its own store rather than asking
/// itself).
async fn targets(
    node: &Node,
    name: &XorName,
    holders: Vec<PeerId>,
    view: View,
) -> (Vec<PeerId>, bool) {
    let me = node.net.peer_id();
    let mut known = node.net.routing_peers().await;
    if view == View::Lookup {
        known.extend(node.net.lookup(*name, node.k + 2).await.peers);
    }
    known.push(me);
    known.sort();
    known.dedup();
    let near = safe_network::close_group::closest(name, known, node.k + 2);
    let chosen: Vec<PeerId> = if holders.is_empty() {
        near.into_iter().take(node.k).collect()
    } else {
        let mut named: Vec<PeerId> = holders.into_iter().filter(|p| near.contains(p)).collect();
        named.sort();
        named.dedup();
        named
    };
    let me_too = chosen.contains(&me);
    (chosen.into_iter().filter(|p| *p != me).collect(), me_too)
}

/// The exit's record get: every copy it can get (its own, if it is in the
/// group, and each holder's), verified, resolved as a reader resolves
/// them; the encoded record, or "not found". The client checks the record
/// proves itself, and reads through a second exit before it believes a
/// copy is the latest or that there is none.
async fn exit_get_record(node: &Node, name: XorName, holders: Vec<PeerId>) -> Result<Bytes, u8> {
    tracing::debug!(record = %name, "exit fetches a record");
    let (peers, me_too) = targets(node, &name, holders, View::Lookup).await;
    let answers = futures::future::join_all(
        peers
            .iter()
            .map(|p| crate::records::fetch_verified(node, name, *p)),
    )
    .await;
    let mut copies: Vec<safe_protocol::mutable::Record> =
        answers.into_iter().flatten().flatten().collect();
    if me_too && let Ok(Some(mine)) = node.blocking(move |s| s.record(&name)).await {
        copies.push(mine);
    }
    // Account records are served only to signed fetches (the login
    // packet is a password verifier); members hand them to this node as
    // a near peer, so the exit must hold them back itself, as if absent.
    copies.retain(|r| !safe_protocol::account::is_account(r));
    let record = safe_protocol::mutable::resolve(&copies, 1).ok_or(END_NOT_FOUND)?;
    record
        .record
        .encode()
        .map(Bytes::from)
        .map_err(|_| END_NOT_FOUND)
}

/// The exit's chunk put: to the holders the client named, each directly;
/// else to the closest member of the close group as this node sees it,
/// which forwards it to the rest (this node itself, if it is a member),
/// then directly to members whose receipts are missing. The answer is
/// every receipt (the client checks them); the chunk is checked against
/// its name by whoever stores it.
async fn exit_put(node: &Node, bytes: Bytes, holders: Vec<PeerId>) -> Result<Bytes, u8> {
    use safe_protocol::messages::{EXIT_ANSWER_FORMAT, ExitPutAnswer};
    let name = XorName::from_content(&bytes);
    tracing::debug!(chunk = %name, "exit puts a chunk");
    let named = !holders.is_empty();
    let (peers, me_too) = targets(node, &name, holders, View::Lookup).await;
    let mut out = ExitPutAnswer::default();
    let take = |answer: Option<Response>, out: &mut ExitPutAnswer| match answer {
        Some(Response::Stored { receipts }) => out.receipts.extend(receipts),
        Some(Response::Refused(Refusal::Full)) => out.full += 1,
        _ => out.failed += 1,
    };
    let ask = |peer: PeerId, replicate: bool| {
        let request = Request::PutChunk {
            bytes: bytes.clone(),
            replicate,
            payment: None,
        };
        async move {
            match tokio::time::timeout(FETCH_TIMEOUT, node.net.request(peer, request)).await {
                Ok(Ok(r)) => Some(r),
                _ => None,
            }
        }
    };
    if me_too {
        // This node is a member: it stores and (unless the client named
        // the holders) forwards to the rest, as any member does.
        take(
            Some(crate::chunks::put(node, bytes.clone(), !named, None).await),
            &mut out,
        );
    }
    let signed = |out: &ExitPutAnswer| -> Vec<PeerId> {
        out.receipts
            .iter()
            .filter_map(safe_network::close_group::receipt_signer)
            .collect()
    };
    let missing: Vec<PeerId> = if named || me_too {
        let have = signed(&out);
        peers.into_iter().filter(|p| !have.contains(p)).collect()
    } else {
        let mut rest = peers.into_iter();
        if let Some(first) = rest.next() {
            take(ask(first, true).await, &mut out);
        }
        let have = signed(&out);
        rest.filter(|p| !have.contains(p)).collect()
    };
    for answer in futures::future::join_all(missing.into_iter().map(|p| ask(p, false))).await {
        take(answer, &mut out);
    }
    out.receipts.truncate(2 * safe_relay::message::MAX_HOLDERS);
    safe_protocol::codec::encode(EXIT_ANSWER_FORMAT, &out)
        .map(Bytes::from)
        .map_err(|_| END_UNSUPPORTED)
}

/// The exit's record write: sent to every holder (and applied here if this
/// node is in the group), answered with what each said. The exit cannot
/// forge a member's receipt; the client counts only those.
async fn exit_write(node: &Node, write: Bytes, holders: Vec<PeerId>) -> Result<Bytes, u8> {
    use safe_protocol::messages::{EXIT_ANSWER_FORMAT, ExitWriteAnswer};
    let Ok(decoded) = safe_protocol::mutable::Write::decode(&write) else {
        return Err(END_UNSUPPORTED);
    };
    let name = decoded.address();
    tracing::debug!(record = %name, "exit writes a record");
    let (peers, me_too) = targets(node, &name, holders, View::Lookup).await;
    let mut answers = futures::future::join_all(peers.iter().map(|p| {
        let request = Request::PutRecord {
            write: write.clone(),
            payment: None,
        };
        tokio::time::timeout(FETCH_TIMEOUT, node.net.request(*p, request))
    }))
    .await
    .into_iter()
    .map(|a| match a {
        Ok(Ok(r)) => Some(r),
        _ => None,
    })
    .collect::<Vec<_>>();
    if me_too {
        answers.push(Some(crate::records::put(node, write.clone(), None).await));
    }
    let mut out = ExitWriteAnswer::default();
    for answer in answers {
        match answer {
            Some(Response::RecordStored(r)) => out.receipts.push(r),
            Some(Response::RecordRefused(e)) => out.refusals.push(e),
            Some(Response::Refused(Refusal::Full)) => out.full += 1,
            _ => out.failed += 1,
        }
    }
    safe_protocol::codec::encode(EXIT_ANSWER_FORMAT, &out)
        .map(Bytes::from)
        .map_err(|_| END_UNSUPPORTED)
}

/// The exit's chunk get: its own store first; then the holders the client
/// named, if it named any (so that it can keep its own guards out of the
/// way), else the close group as this node sees it, in random order. The
/// bytes must hash to the name.
async fn exit_get(node: &Node, name: XorName, holders: Vec<PeerId>) -> Result<Bytes, u8> {
    tracing::debug!(chunk = %name, "exit fetches a chunk");
    if let Response::Chunk(bytes) = crate::chunks::get(node, name).await
        && XorName::from_content(&bytes) == name
    {
        return Ok(bytes);
    }
    // The routing table first (no query); a lookup only if that fails.
    let mut asked = Vec::new();
    for view in [View::Routing, View::Lookup] {
        let (mut group, _) = targets(node, &name, holders.clone(), view).await;
        group.retain(|p| !asked.contains(p));
        shuffle(&mut group);
        for peer in group {
            asked.push(peer);
            let answer = tokio::time::timeout(
                GET_TIMEOUT,
                node.net.request(peer, Request::GetChunk { name }),
            )
            .await;
            if let Ok(Ok(Response::Chunk(bytes))) = answer {
                let checked = tokio::task::spawn_blocking(move || {
                    (XorName::from_content(&bytes) == name).then_some(bytes)
                })
                .await;
                if let Ok(Some(bytes)) = checked {
                    return Ok(bytes);
                }
            }
        }
    }
    Err(END_NOT_FOUND)
}

fn shuffle<T>(items: &mut [T]) {
    let mut seed = [0u8; 32];
    if getrandom::fill(&mut seed).is_err() {
        return;
    }
    let mut rng = blake3::Hasher::new_keyed(&seed).finalize_xof();
    for i in (1..items.len()).rev() {
        let mut b = [0u8; 8];
        rng.fill(&mut b);
        let j = (u64::from_le_bytes(b) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_node_rotates_its_relay_key_and_keeps_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let node = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let network = [1; 32];
        let t0 = 1000 * cert::PERIOD + 5;
        let keys = RelayKeys::load_or_create_at(dir.path(), &node, network, t0).unwrap();
        let first = keys.cert().unwrap();
        assert_eq!(keys.rotate(t0 + 100).unwrap(), None);
        // The period ends: a new key, the last one kept beside it.
        let t1 = t0 + cert::PERIOD;
        assert_eq!(keys.rotate(t1).unwrap(), Some(1001));
        let second = keys.cert().unwrap();
        assert_eq!(second.body.period, 1001);
        assert!(
            second
                .verify(&node.verifying_key().to_bytes(), &network, t1)
                .is_ok()
        );
        let periods: Vec<u64> = keys.secrets().iter().map(|s| s.cert.body.period).collect();
        assert_eq!(periods, vec![1001, 1000]);
        assert_ne!(first.to_bytes(), second.to_bytes());
        // Saved: a restart in the new period takes the new key.
        let again = RelayKeys::load_or_create_at(dir.path(), &node, network, t1 + 1).unwrap();
        assert_eq!(again.cert().unwrap().to_bytes(), second.to_bytes());
        // Two more periods: only the current and the last are held.
        keys.rotate(t1 + cert::PERIOD).unwrap();
        assert_eq!(keys.secrets().len(), 2);
    }
}
