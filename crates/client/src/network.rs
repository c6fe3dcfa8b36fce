//! The network as a [`ChunkStore`]: chunks go to, and come from, the close
//! group of their name.
//!
//! - **Put**: the client finds the close group with a Kademlia query, sends
//!   the chunk's bytes *once*, to the closest member, asking it to
//!   replicate to the rest of the group; the member answers with every
//!   member's signed receipt. The client checks each receipt itself (the
//!   signature, the chunk name, and that the signer is in the group the
//!   client found) and accepts the put only with a majority of the group.
//!   Only if that fails does it send the chunk directly to members that did
//!   not sign.
//! - **Get**: asks the group's members one at a time, in a random order
//!   (so reads spread over every holder), and verifies every chunk against
//!   its name; a bad or missing replica means the next member is tried. A
//!   chunk read again and again is asked of nodes just outside its group
//!   first, and offered to them for their caches ([`crate::popular`]).
//! - **Small networks**: a Kademlia lookup per chunk costs the client a
//!   round of requests and every node asked a walk of its routing table.
//!   Every [`WHOLE_NETWORK_TTL`] the client asks a lookup for the
//!   [`LOOKUP_WIDTH`] peers closest to a chunk instead of K. A lookup
//!   returns fewer than that only if no node it asked knows more: the
//!   answer is then the whole network (as far as any lookup can tell), and
//!   until the next such lookup the close group of every chunk is computed
//!   from it, with no query. A bigger network, or a wide lookup cut short
//!   (timed out, peers failing to answer), gets a lookup per chunk. A put
//!   or get through a computed group that fails (fewer receipts than a
//!   majority, no verified copy, "not found") is redone from a real lookup,
//!   so "not found" always comes from one; one that succeeds with a member
//!   missing (no receipt, an error, no copy) makes the next chunk look the
//!   network up again.
//!
//! Every step is bounded in time: dials by [`CONNECT_TIMEOUT`], requests by
//! the swarm's request timeout, queries by Kademlia's query timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use safe_network::close_group::{majority, valid_signers};
use safe_network::driver::{self, Net, RequestError};
use safe_network::libp2p::{Multiaddr, PeerId, identity::Keypair};
use safe_network::{Admission, Role, build_swarm_with};
use safe_protocol::coin::pay::ChunkPayment;
use safe_protocol::messages::{Refusal, Request, Response};
use safe_protocol::{Chunk, XorName};

use crate::bootstrap::{Bootstrap, ConnectError, DialFailure};
use crate::popular::{self, Popular};
use crate::store::{ChunkStore, StoreError};

/// How long connecting to the bootstrap peers may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a looked-up close group is reused before asking again.
pub const GROUP_CACHE_TTL: Duration = Duration::from_secs(10);
/// Most close groups remembered; past this the cache starts afresh.
pub const GROUP_CACHE_SIZE: usize = 4096;

/// How many closest peers the periodic lookup asks for (libp2p-kad's
/// bucket size, the most a node answers with): fewer in the answer means
/// the whole network was found.
pub const LOOKUP_WIDTH: usize = 20;
/// How long a whole (small) network found by a lookup is used before it is
/// looked up again (as long as a looked-up close group is reused).
pub const WHOLE_NETWORK_TTL: Duration = GROUP_CACHE_TTL;

/// A connection to the network: chunks and records go to, and come from,
/// their close groups. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Connection {
    pub(crate) net: Net,
    pub(crate) k: usize,
    sent: Arc<AtomicU64>,
    /// Recent close-group lookups: a record read then written, or written
    /// again, costs one Kademlia query, not one per step.
    groups: Arc<Mutex<GroupCache>>,
    /// What the last wide lookup found the network to be.
    whole: Arc<Mutex<Whole>>,
    /// Kademlia lookups made.
    lookups: Arc<AtomicU64>,
    /// Read counts of chunks, for caching popular ones near their group.
    popular: Arc<Popular>,
    /// Which nodes are old enough to count toward a majority
    /// ([`crate::age`]).
    pub(crate) ages: Arc<crate::age::Ages>,
    /// Payments for chunks about to be put ([`crate::pay`]), by name; at
    /// most [`crate::pay::MAX_PENDING`].
    pub(crate) payments: Arc<Mutex<HashMap<XorName, ChunkPayment>>>,
}

/// The network as the last wide lookup found it.
#[derive(Default)]
enum Whole {
    /// Not known (never looked up, or forgotten after a failure).
    #[default]
    Unknown,
    /// Fewer than [`LOOKUP_WIDTH`] peers: all of them, and when.
    Small(Vec<PeerId>, Instant),
    /// At least [`LOOKUP_WIDTH`] peers, or the wide lookup was cut short
    /// (timed out, or peers failed to answer): a lookup per chunk until
    /// the next wide one.
    PerChunk(Instant),
}

/// Where a chunk's close group came from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A Kademlia lookup (or the cache of them).
    Lookup,
    /// Computed from the whole (small) network found by a recent lookup,
    /// of this many nodes.
    Local(usize),
}

/// The network's node id difficulty as `SAFE_ID_DIFFICULTY` says (0 when
/// unset or not a number): the client drops peers whose ids do not meet
/// it from its routing table and lookups, so they never count in a
/// close group.
pub fn id_difficulty_from_env() -> u32 {
    std::env::var("SAFE_ID_DIFFICULTY")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Close groups by name, with when they were looked up.
type GroupCache = HashMap<XorName, (Vec<PeerId>, Instant)>;

impl Connection {
    /// Joins the network through `peers`, with close group size `k`.
    pub async fn connect_to(peers: &[Multiaddr], k: usize) -> Result<Self, ConnectError> {
        Self::connect(&Bootstrap::given(peers.to_vec()), k).await
    }

    /// Joins the network through the peers of `bootstrap`, with close
    /// group size `k`.
    pub async fn connect(bootstrap: &Bootstrap, k: usize) -> Result<Self, ConnectError> {
        Self::connect_with_difficulty(bootstrap, k, id_difficulty_from_env()).await
    }

    /// [`Connection::connect`] to a network whose node ids must meet
    /// `id_difficulty` ([`safe_network::identity::valid_id`]).
    pub async fn connect_with_difficulty(
        bootstrap: &Bootstrap,
        k: usize,
        id_difficulty: u32,
    ) -> Result<Self, ConnectError> {
        Self::connect_with_admission(bootstrap, k, Admission::new(id_difficulty)).await
    }

    /// [`Connection::connect`] with every admission setting given (which
    /// peers may enter the client's routing table and lookup answers, so
    /// its close groups; see [`safe_network::Admission`]).
    pub async fn connect_with_admission(
        bootstrap: &Bootstrap,
        k: usize,
        admission: Admission,
    ) -> Result<Self, ConnectError> {
        let peers = &bootstrap.peers;
        if peers.is_empty() {
            return Err(ConnectError::EmptyPeers {
                source_of: bootstrap.source.clone(),
            });
        }
        let swarm = build_swarm_with(Keypair::generate_ed25519(), Role::Client, admission)
            .map_err(ConnectError::Stack)?;
        let (net, _task) = driver::spawn(swarm, None, admission);
        let dials = join_all(peers.iter().map(|addr| {
            let net = net.clone();
            async move {
                let r = match tokio::time::timeout(CONNECT_TIMEOUT, net.dial(addr.clone())).await {
                    Ok(r) => r.map_err(DialFailure::Dial),
                    Err(_) => Err(DialFailure::TimedOut(CONNECT_TIMEOUT)),
                };
                (addr.clone(), r)
            }
        }))
        .await;
        let total = dials.len();
        let tried: Vec<(Multiaddr, DialFailure)> = dials
            .into_iter()
            .filter_map(|(a, r)| r.err().map(|e| (a, e)))
            .collect();
        for (addr, e) in &tried {
            tracing::debug!(%addr, "cannot dial: {e}");
        }
        if tried.len() == total {
            net.shutdown().await;
            return Err(ConnectError::Unreachable {
                source_of: bootstrap.source.clone(),
                tried,
            });
        }
        // Identify tells us the nodes' listen addresses; then Kademlia can route.
        let mut routing = net.routing_watch();
        // (The watch guard is dropped at once: the future stays `Send`.)
        let ok = matches!(
            tokio::time::timeout(CONNECT_TIMEOUT, routing.wait_for(|n| *n > 0)).await,
            Ok(Ok(_))
        );
        if !ok {
            net.shutdown().await;
            return Err(ConnectError::NotRouting {
                source_of: bootstrap.source.clone(),
                peers: peers.len(),
            });
        }
        net.bootstrap().await;
        Ok(Self {
            net,
            k: k.max(1),
            sent: Arc::new(AtomicU64::new(0)),
            groups: Arc::default(),
            whole: Arc::default(),
            lookups: Arc::default(),
            popular: Arc::default(),
            ages: Arc::new(crate::age::Ages::new(crate::age::min_node_age_from_env())),
            payments: Arc::default(),
        })
    }

    /// Turns the caching of popular chunks near their close groups on (the
    /// default) or off ([`crate::popular`]); reads still spread over the
    /// group either way.
    pub fn set_popular_caching(&self, on: bool) {
        self.popular.set_enabled(on);
    }

    /// Kademlia lookups this client has made (close groups taken from the
    /// routing table or the cache are not counted).
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Chunk bytes this client has sent in put requests.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The close group of `name` as this client finds it (a lookup less
    /// than [`GROUP_CACHE_TTL`] old is reused).
    pub async fn close_group(&self, name: &XorName) -> Vec<PeerId> {
        if let Ok(groups) = self.groups.lock()
            && let Some((group, at)) = groups.get(name)
            && at.elapsed() < GROUP_CACHE_TTL
        {
            return group.clone();
        }
        self.lookup_group(name).await
    }

    /// The close group of chunk `name`: computed from the whole network
    /// when a recent wide lookup found it small, else looked up (see the
    /// module docs).
    pub(crate) async fn chunk_group(&self, name: &XorName) -> (Vec<PeerId>, Source) {
        let known = {
            let whole = self.whole.lock().unwrap_or_else(|e| e.into_inner());
            match &*whole {
                Whole::Small(peers, at) if at.elapsed() < WHOLE_NETWORK_TTL => {
                    Some(Some(peers.clone()))
                }
                Whole::PerChunk(at) if at.elapsed() < WHOLE_NETWORK_TTL => Some(None),
                _ => None,
            }
        };
        match known {
            Some(Some(peers)) => {
                let network = peers.len();
                let group = safe_network::close_group::closest(name, peers, self.k);
                (group, Source::Local(network))
            }
            Some(None) => (self.close_group(name).await, Source::Lookup),
            None => {
                // The wide lookup: this chunk's group, and the network's size.
                self.lookups.fetch_add(1, Ordering::Relaxed);
                let found = self.net.lookup(*name, LOOKUP_WIDTH).await;
                if found.peers.is_empty() {
                    // No answer: the ordinary lookup and its fallback.
                    return (self.lookup_group(name).await, Source::Lookup);
                }
                let group = safe_network::close_group::closest(name, found.peers.clone(), self.k);
                // Only a lookup that ran to its end with every peer asked
                // answering shows the whole network; one cut short may have
                // missed nodes, so lookups go on per chunk for a while.
                *self.whole.lock().unwrap_or_else(|e| e.into_inner()) =
                    match found.complete && found.peers.len() < LOOKUP_WIDTH {
                        true => Whole::Small(found.peers, Instant::now()),
                        false => Whole::PerChunk(Instant::now()),
                    };
                (group, Source::Lookup)
            }
        }
    }

    /// Forgets what the network was found to be (a put or get through a
    /// group computed from it did not fully succeed).
    fn forget_whole(&self) {
        tracing::debug!("a computed close group failed; looking the network up again");
        *self.whole.lock().unwrap_or_else(|e| e.into_inner()) = Whole::Unknown;
    }

    /// Forgets the cached group of `name` (a member failed to answer).
    pub(crate) fn forget_group(&self, name: &XorName) {
        if let Ok(mut groups) = self.groups.lock() {
            groups.remove(name);
        }
    }

    /// Looks the close group of `name` up afresh with a Kademlia query
    /// (which also learns the members' current addresses), and remembers it.
    pub async fn lookup_group(&self, name: &XorName) -> Vec<PeerId> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let mut group = self.net.closest(*name, self.k).await;
        if group.is_empty() {
            // The query found no one; fall back on what we know.
            group =
                safe_network::close_group::closest(name, self.net.routing_peers().await, self.k);
        }
        group.truncate(self.k);
        if group.len() == self.k
            && let Ok(mut groups) = self.groups.lock()
        {
            if groups.len() >= GROUP_CACHE_SIZE {
                groups.retain(|_, (_, at)| at.elapsed() < GROUP_CACHE_TTL);
                if groups.len() >= GROUP_CACHE_SIZE {
                    groups.clear();
                }
            }
            groups.insert(*name, (group.clone(), Instant::now()));
        }
        group
    }

    /// Receipts a write to `group` needs: a majority of the group as it
    /// should be (K, or every node we know of if the network is smaller).
    /// A short lookup answer must not lower the bar.
    pub(crate) async fn majority_for(&self, group: &[PeerId]) -> usize {
        self.majority_of(self.net.routing_peers().await.len(), group)
    }

    /// [`Connection::majority_for`] in a network of `known` nodes.
    fn majority_of(&self, known: usize, group: &[PeerId]) -> usize {
        majority(self.k.min(known.max(group.len())))
    }

    async fn send_put(
        &self,
        peer: PeerId,
        chunk: &Chunk,
        replicate: bool,
    ) -> Result<Response, RequestError> {
        self.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        let payment = self.payment_for(chunk.name());
        self.net
            .request(
                peer,
                Request::PutChunk {
                    bytes: chunk.bytes().clone(),
                    replicate,
                    payment,
                },
            )
            .await
    }

    /// Asks one node for a chunk and verifies it (diagnostics and tests).
    pub async fn get_from(&self, peer: PeerId, name: XorName) -> Result<Chunk, StoreError> {
        match self.net.request(peer, Request::GetChunk { name }).await {
            Ok(Response::Chunk(bytes)) => Ok(Chunk::verified(name, bytes)?),
            Ok(Response::NotFound) => Err(StoreError::NotFound(name)),
            Ok(other) => Err(network_err(
                &name,
                &format!("unexpected answer ({})", other.kind()),
                &[],
            )),
            Err(e) => Err(network_err(&name, "request failed", &[e.to_string()])),
        }
    }

    /// Sends one request to one node and returns its answer, unchecked
    /// (for tools and tests that speak the protocol directly). At most
    /// [`crate::mutable::RECORD_TIMEOUT`].
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, StoreError> {
        match tokio::time::timeout(
            crate::mutable::RECORD_TIMEOUT,
            self.net.request(peer, request),
        )
        .await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(StoreError::Network(format!("{peer}: {e}"))),
            Err(_) => Err(StoreError::Network(format!("{peer}: no answer"))),
        }
    }

    /// Closes every connection.
    pub async fn shutdown(&self) {
        self.net.shutdown().await;
    }
}

fn network_err(name: &XorName, what: &str, errors: &[String]) -> StoreError {
    StoreError::Network(format!("chunk {name}: {what}: {}", errors.join("; ")))
}

impl ChunkStore for Connection {
    async fn put(&self, chunk: Chunk) -> Result<(), StoreError> {
        let name = *chunk.name();
        let stored = self.put_unpaid(chunk).await;
        if stored.is_ok() {
            self.paid(&name);
        }
        stored
    }

    async fn get(&self, name: XorName) -> Result<Chunk, StoreError> {
        self.get_chunk(name).await
    }
}

impl Connection {
    /// [`ChunkStore::put`], with whatever payment was made for the chunk.
    async fn put_unpaid(&self, chunk: Chunk) -> Result<(), StoreError> {
        let name = *chunk.name();
        let (group, source) = self.chunk_group(&name).await;
        if let Source::Local(network) = source {
            if self.put_once(&chunk, &group, network).await {
                return Ok(());
            }
            // Redone, in full, from what the network says.
            self.forget_whole();
            let group = self.lookup_group(&name).await;
            return self.put_to(&chunk, group).await;
        }
        self.put_to(&chunk, group).await
    }

    async fn get_chunk(&self, name: XorName) -> Result<Chunk, StoreError> {
        let hot = self.popular.note_read(&name);
        let (group, source) = self.chunk_group(&name).await;
        let ring = match hot {
            true => self.ring(&name, &group, source).await,
            false => Vec::new(),
        };
        if !ring.is_empty() {
            let peer = ring[popular::random_below(ring.len())];
            let asked = self.net.request(peer, Request::GetChunk { name });
            if let Ok(Ok(Response::Chunk(bytes))) =
                tokio::time::timeout(popular::RING_TIMEOUT, asked).await
                && let Ok(chunk) = Chunk::verified(name, bytes)
            {
                return Ok(chunk);
            }
        }
        let local = matches!(source, Source::Local(_));
        let got = match self.get_from_group(name, group, local).await {
            Err(_) if local => {
                self.forget_whole();
                let group = self.lookup_group(&name).await;
                self.get_from_group(name, group, false).await
            }
            other => other,
        };
        if let Ok(chunk) = &got {
            self.offer_to_ring(chunk, ring);
        }
        got
    }
}

impl Connection {
    /// The ring of a popular chunk ([`crate::popular`]): from the whole
    /// network when it is known, else from the routing table.
    async fn ring(&self, name: &XorName, group: &[PeerId], source: Source) -> Vec<PeerId> {
        let known = match source {
            Source::Local(_) => match &*self.whole.lock().unwrap_or_else(|e| e.into_inner()) {
                Whole::Small(peers, _) => Some(peers.clone()),
                _ => None,
            },
            Source::Lookup => None,
        };
        let known = match known {
            Some(k) => k,
            None => self.net.routing_peers().await,
        };
        popular::ring(name, known, group)
    }

    /// Offers a popular `chunk` to [`popular::OFFER_TO`] random nodes of
    /// its `ring`, in the background, if the offer budget allows.
    fn offer_to_ring(&self, chunk: &Chunk, ring: Vec<PeerId>) {
        if ring.is_empty() {
            return;
        }
        let Ok(permit) = self.popular.offers.clone().try_acquire_owned() else {
            return;
        };
        let to: Vec<PeerId> = popular::shuffled(ring)
            .into_iter()
            .take(popular::OFFER_TO)
            .collect();
        let net = self.net.clone();
        let bytes = chunk.bytes().clone();
        tokio::spawn(async move {
            for peer in to {
                let offer = Request::CacheChunk {
                    bytes: bytes.clone(),
                };
                if let Err(e) = net.request(peer, offer).await {
                    tracing::debug!(%peer, "cache offer failed: {e}");
                }
            }
            drop(permit);
        });
    }

    /// Sends `chunk` to the closest member of `group` (computed from the
    /// whole network of `network` nodes) asking it to replicate; true if a
    /// majority of `group` signed receipts for it (of K, or of the whole
    /// network if that is smaller, as [`Connection::majority_for`]).
    async fn put_once(&self, chunk: &Chunk, group: &[PeerId], network: usize) -> bool {
        let Some(first) = group.first() else {
            return false;
        };
        match self.send_put(*first, chunk, true).await {
            Ok(Response::Stored { receipts }) => {
                let signers = valid_signers(chunk.name(), group, &receipts);
                if signers.len() < group.len() {
                    // A member did not confirm: the network may have
                    // changed, so the next chunk looks it up again.
                    self.forget_whole();
                }
                // Only members old enough count ([`crate::age`]).
                let counted = self.counted_members(group).await;
                let signers = signers.iter().filter(|p| counted.contains(p)).count();
                signers >= self.majority_of(network, group)
            }
            _ => false,
        }
    }

    /// Stores `chunk` on `group`, falling back on sending it to each member
    /// that did not confirm it (see the module docs).
    async fn put_to(&self, chunk: &Chunk, group: Vec<PeerId>) -> Result<(), StoreError> {
        let name = *chunk.name();
        if group.is_empty() {
            return Err(network_err(&name, "no nodes found", &[]));
        }
        let need = self.majority_for(&group).await;
        let mut signers: Vec<PeerId> = Vec::new();
        let mut errors = Vec::new();
        let mut full = 0;
        // Send once, to the closest member that accepts it.
        for entry in &group {
            match self.send_put(*entry, chunk, true).await {
                Ok(Response::Stored { receipts }) => {
                    signers = valid_signers(&name, &group, &receipts);
                    break;
                }
                Ok(Response::Refused(r)) => {
                    full += usize::from(r == Refusal::Full);
                    errors.push(format!("{entry}: {r}"));
                }
                Ok(other) => errors.push(format!("{entry}: unexpected answer ({})", other.kind())),
                Err(e) => errors.push(e.to_string()),
            }
        }
        // Only members old enough count ([`crate::age`]).
        let counted = self.counted_members(&group).await;
        let counting = |s: &[PeerId]| s.iter().filter(|p| counted.contains(p)).count();
        if counting(&signers) < need {
            // The entry's view of the group differs from ours, or members
            // failed: send directly to the members that have not signed.
            full = 0; // recounted over the members asked directly
            let rest: Vec<PeerId> = group
                .iter()
                .filter(|p| !signers.contains(p))
                .copied()
                .collect();
            let answers = join_all(rest.iter().map(|p| self.send_put(*p, chunk, false))).await;
            let mut receipts = Vec::new();
            for (p, a) in rest.iter().zip(answers) {
                match a {
                    Ok(Response::Stored { receipts: r }) => receipts.extend(r.into_iter().take(1)),
                    Ok(Response::Refused(r)) => {
                        full += usize::from(r == Refusal::Full);
                        errors.push(format!("{p}: {r}"));
                    }
                    Ok(other) => errors.push(format!("{p}: unexpected answer ({})", other.kind())),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            signers.extend(valid_signers(&name, &group, &receipts));
            signers.sort();
            signers.dedup();
        }
        if !errors.is_empty() {
            self.forget_group(&name);
        }
        let young = signers.len() - counting(&signers);
        signers.retain(|p| counted.contains(p));
        if signers.len() >= need {
            return Ok(());
        }
        if full > 0 && full + signers.len() >= need {
            return Err(StoreError::Full(format!(
                "chunk {name}: {full} of {} nodes of its close group are full",
                group.len()
            )));
        }
        let young = match young {
            0 => String::new(),
            n => format!("; {n} more joined too recently to count"),
        };
        Err(network_err(
            &name,
            &format!(
                "only {} of {} close group members confirmed (need {need}{young})",
                signers.len(),
                group.len()
            ),
            &errors,
        ))
    }

    /// Asks the members of `group` for chunk `name`, in a random order. With
    /// `computed` (a group computed from the whole network), a member that
    /// fails or lacks the chunk makes the next chunk look the network up
    /// again.
    async fn get_from_group(
        &self,
        name: XorName,
        group: Vec<PeerId>,
        computed: bool,
    ) -> Result<Chunk, StoreError> {
        if group.is_empty() {
            return Err(network_err(&name, "no nodes found", &[]));
        }
        let mut errors = Vec::new();
        let mut not_found_from = Vec::new();
        let mut bad_copy = false;
        for peer in &popular::shuffled(group.clone()) {
            match self.net.request(*peer, Request::GetChunk { name }).await {
                Ok(Response::Chunk(bytes)) => match Chunk::verified(name, bytes) {
                    Ok(chunk) => {
                        if !errors.is_empty() {
                            self.forget_group(&name);
                        }
                        if computed && (!errors.is_empty() || !not_found_from.is_empty()) {
                            self.forget_whole();
                        }
                        return Ok(chunk);
                    }
                    Err(e) => {
                        tracing::warn!(%peer, %name, "node served a bad chunk: {e}");
                        bad_copy = true;
                        errors.push(format!("{peer}: bad chunk ({e})"));
                    }
                },
                Ok(Response::NotFound) => not_found_from.push(*peer),
                Ok(other) => errors.push(format!("{peer}: unexpected answer ({})", other.kind())),
                Err(e) => errors.push(e.to_string()),
            }
        }
        self.forget_group(&name);
        // A majority of the group answered "not found" and none served a
        // bad copy: the chunk is not on the network. Fewer answers is a
        // network error, not a verdict. Only members old enough count
        // ([`crate::age`]).
        let not_found = match not_found_from.is_empty() {
            true => 0,
            false => {
                let counted = self.counted_members(&group).await;
                not_found_from.retain(|p| counted.contains(p));
                not_found_from.len()
            }
        };
        if not_found >= majority(group.len()) && !bad_copy {
            return Err(StoreError::NotFound(name));
        }
        Err(network_err(
            &name,
            "no valid copy from its close group",
            &errors,
        ))
    }
}
