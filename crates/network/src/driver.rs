//! The swarm's event loop, run as one task, and [`Net`], the cheap cloneable
//! handle the rest of the program talks to it through.
//!
//! Only this task touches the [`Swarm`]; everyone else sends it a bounded
//! command and awaits a oneshot reply. Inbound data requests go out on a
//! bounded channel ([`INBOUND_QUEUE`]); when the consumer falls behind, new
//! requests are dropped (the requester sees its stream closed) rather than
//! queued without limit.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::kad::{self, QueryId, QueryResult};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify};
use safe_protocol::XorName;
use safe_protocol::messages::{Refusal, Request, Response};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::peer_limits::{PeerLimits, Verdict};
use crate::{Admission, Behaviour, BehaviourEvent, diversity, learn_from_identify};

/// Most peers a lookup asks Kademlia for when the address-block limit is
/// on (a k-bucket's worth), so that its answer keeps the count wanted after
/// the limit drops peers.
pub const DIVERSE_LOOKUP_WIDTH: usize = 20;
/// Commands waiting for the event loop.
pub const COMMAND_QUEUE: usize = 1024;
/// Inbound data requests waiting for the consumer; more are dropped.
pub const INBOUND_QUEUE: usize = 256;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Inbound requests dropped in this process so far because the queue
/// ([`INBOUND_QUEUE`]) was full (the node's `safe_inbound_dropped_total`).
pub fn inbound_dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// A data request from a peer, with the channel its answer goes back on.
pub struct Inbound {
    /// Who asked.
    pub peer: PeerId,
    /// What they asked.
    pub request: Request,
    /// Where the answer goes (pass to [`Net::respond`]).
    pub channel: ResponseChannel<Response>,
}

/// Why a data request to a peer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// No connection could be made.
    #[error("cannot reach peer {0}")]
    Unreachable(PeerId),
    /// No answer within the request timeout.
    #[error("peer {0} did not answer in time")]
    Timeout(PeerId),
    /// The stream failed or the peer sent something undecodable.
    #[error("request to peer {0} failed: {1}")]
    Failed(PeerId, String),
    /// The network task has stopped.
    #[error("the network task has stopped")]
    Stopped,
}

/// Why a dial failed. The libp2p error is kept as the source: a caller
/// can tell a refused connection from a failed handshake, and print the
/// detail only where it wants it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The dial could not be made or the connection failed before it was
    /// up (refused, unreachable, handshake failed, ...).
    #[error(transparent)]
    Failed(#[from] libp2p::swarm::DialError),
    /// The network task has stopped.
    #[error("the network task has stopped")]
    Stopped,
}

/// What a Kademlia lookup found.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// The peers that answered, closest first.
    pub peers: Vec<PeerId>,
    /// The query ran to its end and every peer asked answered (a lookup cut
    /// short by its timeout, or with peers that failed, may have missed
    /// closer peers).
    pub complete: bool,
}

enum Command {
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, RequestError>>,
    },
    Respond {
        channel: ResponseChannel<Response>,
        response: Response,
    },
    Closest {
        name: XorName,
        count: NonZeroUsize,
        reply: oneshot::Sender<Lookup>,
    },
    RoutingPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Addresses {
        peer: PeerId,
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    PeerAges {
        peers: Vec<PeerId>,
        reply: oneshot::Sender<Vec<Duration>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, DialError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    RemovePeer {
        peer: PeerId,
    },
    Bootstrap,
    Shutdown,
}

/// Handle to a running swarm task. Cloning is cheap; the task stops when
/// [`Net::shutdown`] is called or every handle is dropped.
#[derive(Clone)]
pub struct Net {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    routing: watch::Receiver<usize>,
    /// Peers that refused a request for its rate: until when every request
    /// to them waits, and how many pauses in a row ([`Net::request`]).
    paused: std::sync::Arc<std::sync::Mutex<HashMap<PeerId, (Instant, u32)>>>,
}

/// How long every request to a peer waits after the peer refused one for
/// its rate ([`Refusal::PeerRateLimited`]), doubled for each refusal that
/// follows within [`RATE_LIMIT_PAUSE_MAX`], up to that: at the default rate
/// the peer's bucket refills far more than that meanwhile, and a sender
/// that waits so after each refusal stays below the refusals that get a
/// peer banned ([`crate::peer_limits`]) unless it keeps more than about a
/// fifth of the peer's rate in flight to it.
pub const RATE_LIMIT_PAUSE: Duration = Duration::from_millis(250);
/// The longest pause.
pub const RATE_LIMIT_PAUSE_MAX: Duration = Duration::from_secs(2);
/// Times a request refused for its rate is sent again before the refusal
/// is returned.
pub const RATE_LIMIT_RETRIES: usize = 8;
/// Peers remembered as paused at once (more: the oldest pauses go).
const MAX_PAUSED: usize = 1024;
/// How long a peer may be out of the routing table and keep its age (a
/// moment's lost link does not make a node new again).
pub const AGE_GRACE: Duration = Duration::from_secs(300);
/// Peers whose ages are kept at once, in and recently out of the table
/// (more: those out of it are forgotten at once).
const MAX_AGE_ENTRIES: usize = 8192;

impl Net {
    /// This peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.ok()?;
        rx.await.ok()
    }

    /// Sends `request` to `peer` and waits for its answer (bounded by the
    /// request timeout of the swarm). Paced: a peer that refuses a request
    /// for its rate gets nothing from this peer for [`RATE_LIMIT_PAUSE`]
    /// (doubling while refusals go on, up to [`RATE_LIMIT_PAUSE_MAX`]), and
    /// the request is sent again, up to [`RATE_LIMIT_RETRIES`] times.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, RequestError> {
        let mut attempt = 0;
        loop {
            self.wait_unpaused(&peer).await;
            let answer = self.request_unpaced(peer, request.clone()).await;
            match answer {
                Ok(Response::Refused(Refusal::PeerRateLimited)) if attempt < RATE_LIMIT_RETRIES => {
                    attempt += 1;
                    self.pause(peer);
                }
                other => return other,
            }
        }
    }

    /// Waits while requests to `peer` are paused (a pause made longer
    /// meanwhile is waited out too).
    async fn wait_unpaused(&self, peer: &PeerId) {
        loop {
            let until = self
                .paused
                .lock()
                .ok()
                .and_then(|p| p.get(peer).map(|(until, _)| *until));
            match until {
                Some(until) if until > Instant::now() => {
                    tokio::time::sleep_until(until.into()).await;
                }
                _ => return,
            }
        }
    }

    /// Pauses requests to `peer` after a refusal for its rate.
    fn pause(&self, peer: PeerId) {
        let now = Instant::now();
        if let Ok(mut paused) = self.paused.lock() {
            // Refusals of requests sent before a pause began change
            // nothing; one soon after a pause ended doubles the next.
            let level = match paused.get(&peer) {
                Some((until, _)) if *until > now => return,
                Some((until, level)) if *until + RATE_LIMIT_PAUSE_MAX > now => (level + 1).min(3),
                _ => 0,
            };
            paused.retain(|_, (until, _)| *until + RATE_LIMIT_PAUSE_MAX > now);
            if paused.len() >= MAX_PAUSED
                && let Some(first) = paused.iter().min_by_key(|(_, t)| t.0).map(|(p, _)| *p)
            {
                paused.remove(&first);
            }
            let pause = (RATE_LIMIT_PAUSE * (1 << level)).min(RATE_LIMIT_PAUSE_MAX);
            paused.insert(peer, (now + pause, level));
        }
    }

    /// [`Net::request`] sent once, whatever the answer: for tests and
    /// tools that must see every refusal.
    pub async fn request_unpaced(
        &self,
        peer: PeerId,
        request: Request,
    ) -> Result<Response, RequestError> {
        self.ask(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await
        .unwrap_or(Err(RequestError::Stopped))
    }

    /// Answers an inbound request.
    pub async fn respond(&self, channel: ResponseChannel<Response>, response: Response) {
        let _ = self.tx.send(Command::Respond { channel, response }).await;
    }

    /// Asks the network (a Kademlia query) for the `count` peers closest to
    /// `name`, closest first. Never includes this peer. A small `count`
    /// ends the query as soon as that many of the closest have answered.
    pub async fn closest(&self, name: XorName, count: usize) -> Vec<PeerId> {
        self.lookup(name, count).await.peers
    }

    /// As [`Net::closest`], also saying whether the query ran to its end
    /// with every peer asked answering (not cut short by its timeout).
    pub async fn lookup(&self, name: XorName, count: usize) -> Lookup {
        let count = NonZeroUsize::new(count).unwrap_or(NonZeroUsize::MIN);
        let found = self
            .ask(|reply| Command::Closest { name, count, reply })
            .await
            .unwrap_or_default();
        Lookup {
            peers: crate::close_group::closest(&name, found.peers, usize::MAX),
            complete: found.complete,
        }
    }

    /// The peers in this peer's own routing table.
    pub async fn routing_peers(&self) -> Vec<PeerId> {
        self.ask(|reply| Command::RoutingPeers { reply })
            .await
            .unwrap_or_default()
    }

    /// The addresses this peer's routing table holds for `peer` (none if
    /// it is not in it).
    pub async fn addresses_of(&self, peer: PeerId) -> Vec<Multiaddr> {
        self.ask(|reply| Command::Addresses { peer, reply })
            .await
            .unwrap_or_default()
    }

    /// How long each of `peers` has been in this peer's routing table
    /// without a break (zero for one not in it): its node age as this peer
    /// sees it.
    pub async fn peer_ages(&self, peers: Vec<PeerId>) -> Vec<Duration> {
        let n = peers.len();
        self.ask(|reply| Command::PeerAges { peers, reply })
            .await
            .unwrap_or_else(|| vec![Duration::ZERO; n])
    }

    /// Dials `addr`; resolves when the connection is up (with the remote's
    /// id) or has failed (with the reason).
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, DialError> {
        self.ask(|reply| Command::Dial { addr, reply })
            .await
            .unwrap_or(Err(DialError::Stopped))
    }

    /// The addresses this peer listens on.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.ask(|reply| Command::ListenAddrs { reply })
            .await
            .unwrap_or_default()
    }

    /// Forgets a peer (it failed us).
    pub async fn remove_peer(&self, peer: PeerId) {
        let _ = self.tx.send(Command::RemovePeer { peer }).await;
    }

    /// Starts a Kademlia bootstrap (fills the routing table).
    pub async fn bootstrap(&self) {
        let _ = self.tx.send(Command::Bootstrap).await;
    }

    /// Number of peers in the routing table; changes are signalled.
    pub fn routing_watch(&self) -> watch::Receiver<usize> {
        self.routing.clone()
    }

    /// Stops the swarm task, closing every connection.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }
}

struct Driver {
    swarm: Swarm<Behaviour>,
    inbound: Option<mpsc::Sender<Inbound>>,
    requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, RequestError>>>,
    /// Lookups under way: what they found so far, where the answer goes,
    /// and how many peers were asked for.
    queries: HashMap<QueryId, (Lookup, oneshot::Sender<Lookup>, usize)>,
    dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, DialError>>>,
    listen: Vec<Multiaddr>,
    routing: watch::Sender<usize>,
    /// Who may enter the routing table and lookup answers.
    admission: Admission,
    /// Per-peer request rates and bans (nodes only).
    peer_limits: PeerLimits,
    /// When each peer in the routing table entered it (node age), and
    /// when it left, if it did; kept in step with the table by
    /// [`Driver::routing_changed`].
    joined: HashMap<PeerId, (Instant, Option<Instant>)>,
}

/// Starts the event loop for `swarm`. Inbound data requests are delivered
/// on `inbound` (a client passes `None` and never gets any).
/// Peers `admission` keeps out are dropped from lookups.
pub fn spawn(
    swarm: Swarm<Behaviour>,
    inbound: Option<mpsc::Sender<Inbound>>,
    admission: Admission,
) -> (Net, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (routing_tx, routing_rx) = watch::channel(0);
    let peer_id = *swarm.local_peer_id();
    let driver = Driver {
        swarm,
        inbound,
        requests: HashMap::new(),
        queries: HashMap::new(),
        dials: HashMap::new(),
        listen: Vec::new(),
        routing: routing_tx,
        admission,
        peer_limits: PeerLimits::new(admission.request_rate),
        joined: HashMap::new(),
    };
    let task = tokio::spawn(driver.run(rx));
    (
        Net {
            tx,
            peer_id,
            routing: routing_rx,
            paused: Default::default(),
        },
        task,
    )
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        // Bans end within a second of their time.
        let mut bans = tokio::time::interval(Duration::from_secs(1));
        bans.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None | Some(Command::Shutdown) => break,
                    Some(command) => self.command(command),
                },
                event = self.swarm.select_next_some() => self.event(event),
                _ = bans.tick(), if self.peer_limits.banned_now() > 0 => {
                    for peer in self.peer_limits.expire(Instant::now()) {
                        self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                    }
                }
            }
        }
        tracing::debug!("network task stopped");
    }

    /// Signals watchers only when the routing table's size changed, so
    /// repeated identify messages do not wake replication. Notes when
    /// peers entered the table, and forgets those that left it.
    fn routing_changed(&mut self) {
        let now = Instant::now();
        let mut present: std::collections::HashSet<PeerId> = std::collections::HashSet::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                present.insert(*entry.node.key.preimage());
            }
        }
        for (peer, (_, left)) in self.joined.iter_mut() {
            if present.contains(peer) {
                *left = None;
            } else if left.is_none() {
                *left = Some(now);
            }
        }
        self.joined.retain(|_, (_, left)| {
            left.is_none_or(|t| now.saturating_duration_since(t) < AGE_GRACE)
        });
        if self.joined.len() > MAX_AGE_ENTRIES {
            self.joined.retain(|_, (_, left)| left.is_none());
        }
        let n = present.len();
        for p in &present {
            self.joined.entry(*p).or_insert((now, None));
        }
        self.swarm.behaviour_mut().per_source.set_known(present);
        self.routing.send_if_modified(|old| {
            let changed = *old != n;
            *old = n;
            changed
        });
    }

    fn command(&mut self, command: Command) {
        let b = self.swarm.behaviour_mut();
        match command {
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = b.data.send_request(&peer, request);
                self.requests.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                // Err means the requester went away; nothing to do.
                let _ = b.data.send_response(channel, response);
            }
            Command::Closest { name, count, reply } => {
                // With the address-block limit on, ask for more than wanted
                // (up to a k-bucket's worth), so that the answer still has
                // `count` peers after the limit drops some.
                let ask = match self.admission.max_per_subnet {
                    0 => count,
                    _ => NonZeroUsize::new((count.get() * 4).min(DIVERSE_LOOKUP_WIDTH))
                        .map_or(count, |n| n.max(count)),
                };
                let id = b.kad.get_n_closest_peers(name.0.to_vec(), ask);
                let found = Lookup {
                    peers: Vec::new(),
                    complete: true,
                };
                self.queries.insert(id, (found, reply, count.get()));
            }
            Command::Addresses { peer, reply } => {
                let addrs = b
                    .kad
                    .kbucket(peer)
                    .and_then(|bucket| {
                        bucket
                            .iter()
                            .find(|e| *e.node.key.preimage() == peer)
                            .map(|e| e.node.value.iter().cloned().collect())
                    })
                    .unwrap_or_default();
                let _ = reply.send(addrs);
            }
            Command::RoutingPeers { reply } => {
                let peers = b
                    .kad
                    .kbuckets()
                    .flat_map(|bucket| {
                        bucket
                            .iter()
                            .map(|e| *e.node.key.preimage())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::PeerAges { peers, reply } => {
                let now = Instant::now();
                let ages = peers
                    .iter()
                    .map(|p| match self.joined.get(p) {
                        Some((since, None)) => now.saturating_duration_since(*since),
                        _ => Duration::ZERO,
                    })
                    .collect();
                let _ = reply.send(ages);
            }
            Command::Dial { addr, reply } => {
                let opts = DialOpts::unknown_peer_id().address(addr).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.listen.clone());
            }
            Command::RemovePeer { peer } => {
                b.kad.remove_peer(&peer);
                self.routing_changed();
            }
            Command::Bootstrap => {
                let _ = b.kad.bootstrap();
            }
            Command::Shutdown => {}
        }
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Data(e)) => self.data_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.kad_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                learn_from_identify(
                    &mut self.swarm.behaviour_mut().kad,
                    &peer_id,
                    &info,
                    &self.admission,
                );
                self.routing_changed();
            }
            SwarmEvent::NewListenAddr { address, .. } => self.listen.push(address),
            SwarmEvent::ExpiredListenAddr { address, .. } => self.listen.retain(|a| a != &address),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } => {
                tracing::debug!(peer = %peer_id, "connection with peer");
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                peer_id,
            } => {
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(error.into()));
                }
                if let Some(peer) = peer_id {
                    self.swarm.behaviour_mut().kad.remove_peer(&peer);
                    self.routing_changed();
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause: Some(cause @ libp2p::swarm::ConnectionError::IO(_)),
                ..
            } => {
                // Closed by an I/O error (the peer died), not by idling out
                // (that is `KeepAliveTimeout` on our side and a clean EOF,
                // or this, on theirs; a live peer comes back through
                // identify when it next connects).
                tracing::debug!(%peer_id, %cause, "connection lost");
                self.swarm.behaviour_mut().kad.remove_peer(&peer_id);
                self.routing_changed();
            }
            _ => {}
        }
    }

    fn data_event(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let Some(inbound) = &self.inbound else {
                        return; // clients answer nothing; dropping closes the stream
                    };
                    let verdict = self.peer_limits.check(peer, Instant::now());
                    if verdict != Verdict::Allow {
                        let refusal = Response::Refused(Refusal::PeerRateLimited);
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .data
                            .send_response(channel, refusal);
                        if verdict == Verdict::Ban {
                            self.ban(peer);
                        }
                        return;
                    }
                    if let Err(e) = inbound.try_send(Inbound {
                        peer,
                        request,
                        channel,
                    }) {
                        // Logged at the 1st, 2nd, 4th, 8th, ... drop: a
                        // full queue is a flood, and must not flood the log.
                        let n = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_power_of_two() {
                            tracing::warn!(%peer, "inbound queue full or closed, dropping a request ({n} dropped so far): {e}");
                        }
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let err = match error {
                    OutboundFailure::DialFailure => {
                        self.swarm.behaviour_mut().kad.remove_peer(&peer);
                        self.routing_changed();
                        RequestError::Unreachable(peer)
                    }
                    OutboundFailure::Timeout => RequestError::Timeout(peer),
                    other => RequestError::Failed(peer, other.to_string()),
                };
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Err(err));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "inbound request failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Bans `peer` for [`crate::peer_limits::BAN`]: its connections are
    /// closed and refused, and it leaves the routing table.
    fn ban(&mut self, peer: PeerId) {
        tracing::info!(%peer, "banned for {} s: it kept sending requests over its rate after being refused", crate::peer_limits::BAN.as_secs());
        let ended = self.peer_limits.ban(peer, Instant::now());
        let b = self.swarm.behaviour_mut();
        if let Some(early) = ended {
            b.blocked.unblock_peer(early);
        }
        b.blocked.block_peer(peer);
        b.kad.remove_peer(&peer);
        self.routing_changed();
    }

    fn kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id,
                result: QueryResult::GetClosestPeers(result),
                step,
                stats,
            } => {
                let clean = result.is_ok() && stats.num_failures() == 0;
                let found = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                let Admission {
                    id_difficulty,
                    max_per_subnet,
                    limit_loopback_subnets,
                    ..
                } = self.admission;
                if let Some((lookup, _, _)) = self.queries.get_mut(&id) {
                    // Ids without the network's work never count as found,
                    // nor more than the limit from one address block
                    // (closest first: the answer is in distance order).
                    let valid: Vec<_> = found
                        .into_iter()
                        .filter(|p| crate::identity::valid_id(&p.peer_id, id_difficulty))
                        .collect();
                    let before = valid.len();
                    let diverse = diversity::keep_diverse(valid, max_per_subnet, |p| {
                        diversity::first_subnet(&p.addrs, limit_loopback_subnets)
                    });
                    for _ in diverse.len()..before {
                        diversity::note_refused();
                    }
                    lookup.peers.extend(diverse.into_iter().map(|p| p.peer_id));
                    lookup.complete &= clean;
                }
                if step.last
                    && let Some((mut lookup, reply, wanted)) = self.queries.remove(&id)
                {
                    lookup.peers.truncate(wanted);
                    let _ = reply.send(lookup);
                }
            }
            kad::Event::RoutingUpdated { .. } => self.routing_changed(),
            _ => {}
        }
    }
}
