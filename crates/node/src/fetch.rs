//! The fetch queue: chunks and records this node should hold and lacks
//! (or holds a different copy of), each to be fetched from the peer that
//! offered it.
//!
//! Offers are answered at once and the fetches done later, by a bounded
//! number of workers ([`crate::replication`] runs them), so an offer never
//! waits for a transfer. The queue is bounded ([`FETCH_QUEUE`]) and
//! **fair**: each offering peer has a queue of its own of at most
//! [`PER_PEER_QUEUE`], the workers take from the peers in turn, and at
//! most [`PER_PEER_IN_FLIGHT`] fetches from one peer run at once. A peer
//! whose offered items do not arrive is put on a leash: after
//! [`LEASH_AFTER`] failures in a row its queue is dropped and its offers
//! are ignored for [`LEASH`]. So a peer that offers thousands of names it
//! never serves can slow only its own share, not replication from the
//! others. Offers beyond any limit are dropped; the next round offers
//! them again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use safe_network::libp2p::PeerId;
use safe_protocol::XorName;
use safe_protocol::messages::{Refusal, Response};
use tokio::sync::Notify;

use crate::store::NodeStoreError;

/// Chunks and records waiting to be fetched, over all peers; offers
/// beyond this are dropped (the next round offers them again).
pub const FETCH_QUEUE: usize = 4096;
/// Fetches queued from one peer at most.
pub const PER_PEER_QUEUE: usize = 512;
/// Fetches from one peer running at once at most.
pub const PER_PEER_IN_FLIGHT: usize = 2;
/// Failed fetches in a row after which a peer is put on the leash.
pub const LEASH_AFTER: u32 = 8;
/// How long a leashed peer's offers are ignored.
pub const LEASH: Duration = Duration::from_secs(60);

/// What a fetch is of, which decides how it is fetched and stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// An immutable chunk (`GetChunk`, verified against its name).
    Chunk,
    /// A mutable record (`GetRecord`, verified, then merged).
    Record,
}

/// One queued fetch.
pub(crate) type Job = (Kind, XorName, PeerId);

#[derive(Default)]
struct PeerState {
    queue: VecDeque<(Kind, XorName)>,
    in_flight: usize,
    failures: u32,
    leashed_until: Option<Instant>,
}

#[derive(Default)]
struct Queues {
    peers: HashMap<PeerId, PeerState>,
    /// Peers with queued fetches, in turn.
    turn: VecDeque<PeerId>,
    total: usize,
    pending: HashSet<(Kind, XorName)>,
}

impl Queues {
    /// The next fetch to run: from the first peer in turn that has room
    /// for one more in flight.
    fn take(&mut self) -> Option<Job> {
        for _ in 0..self.turn.len() {
            let peer = self.turn.pop_front()?;
            let Some(state) = self.peers.get_mut(&peer) else {
                continue;
            };
            if state.in_flight >= PER_PEER_IN_FLIGHT {
                self.turn.push_back(peer);
                continue;
            }
            let Some((kind, name)) = state.queue.pop_front() else {
                continue;
            };
            state.in_flight += 1;
            self.total -= 1;
            if !state.queue.is_empty() {
                self.turn.push_back(peer);
            }
            return Some((kind, name, peer));
        }
        None
    }

    /// Forgets peers with nothing queued, in flight or remembered.
    fn tidy(&mut self, peer: &PeerId) {
        if let Some(s) = self.peers.get(peer)
            && s.queue.is_empty()
            && s.in_flight == 0
            && s.failures == 0
            && s.leashed_until.is_none()
        {
            self.peers.remove(peer);
        }
    }
}

/// Fair queue of chunks and records to fetch from peers, without
/// duplicates.
pub(crate) struct Fetcher {
    queues: Mutex<Queues>,
    ready: Notify,
}

impl Fetcher {
    pub(crate) fn new() -> Self {
        Self {
            queues: Mutex::new(Queues::default()),
            ready: Notify::new(),
        }
    }

    /// Queues a fetch of `name` from `peer` unless one is queued already,
    /// the peer has its share queued, the queue is full, or the peer is
    /// on the leash.
    pub(crate) fn enqueue(&self, kind: Kind, name: XorName, peer: PeerId) {
        let Ok(mut q) = self.queues.lock() else {
            return;
        };
        if q.total >= FETCH_QUEUE || q.pending.contains(&(kind, name)) {
            return;
        }
        let state = q.peers.entry(peer).or_default();
        if let Some(until) = state.leashed_until {
            if Instant::now() < until {
                return;
            }
            state.leashed_until = None;
            state.failures = 0;
        }
        if state.queue.len() >= PER_PEER_QUEUE {
            return;
        }
        let first = state.queue.is_empty();
        state.queue.push_back((kind, name));
        q.total += 1;
        q.pending.insert((kind, name));
        if first && !q.turn.contains(&peer) {
            q.turn.push_back(peer);
        }
        drop(q);
        self.ready.notify_one();
    }

    /// The next fetch to run, waiting until there is one.
    pub(crate) async fn next(&self) -> Job {
        loop {
            // Registered before looking, so a wake-up in between is kept.
            let notified = self.ready.notified();
            if let Some(job) = self.queues.lock().ok().and_then(|mut q| q.take()) {
                return job;
            }
            notified.await;
        }
    }

    /// Notes a fetch finished: `delivered` when the peer sent what it
    /// offered (or nothing was needed). It may be queued again.
    pub(crate) fn done(&self, kind: Kind, name: &XorName, peer: PeerId, delivered: bool) {
        if let Ok(mut q) = self.queues.lock() {
            q.pending.remove(&(kind, *name));
            let mut dropped = Vec::new();
            if let Some(state) = q.peers.get_mut(&peer) {
                state.in_flight = state.in_flight.saturating_sub(1);
                if delivered {
                    state.failures = 0;
                } else {
                    state.failures += 1;
                    if state.failures >= LEASH_AFTER {
                        state.leashed_until = Some(Instant::now() + LEASH);
                        dropped = state.queue.drain(..).collect();
                        tracing::debug!(%peer, "offers of this peer ignored for a while: its fetches keep failing");
                    }
                }
            }
            q.total -= dropped.len();
            for item in &dropped {
                q.pending.remove(item);
            }
            q.tidy(&peer);
        }
        self.ready.notify_one();
    }

    /// Fetches queued now (a metric).
    pub(crate) fn queued(&self) -> usize {
        self.queues.lock().map(|q| q.total).unwrap_or(0)
    }
}

/// Whom an offer may make us fetch from, and what.
pub(crate) struct Scope {
    me: PeerId,
    peer: PeerId,
    /// Offers are for nodes: a peer not in our routing table (a client, or
    /// a stranger) cannot make us queue fetches from it.
    trusted: bool,
    everyone: Vec<PeerId>,
    k: usize,
}

impl Scope {
    /// The scope of an offer from `peer` to `me`, whose routing table
    /// holds `routing`, in a network of close groups of `k`.
    pub(crate) fn new(me: PeerId, peer: PeerId, mut routing: Vec<PeerId>, k: usize) -> Self {
        let trusted = routing.contains(&peer);
        routing.push(me);
        Self {
            me,
            peer,
            trusted,
            everyone: routing,
            k,
        }
    }

    /// Whether the offerer is in this node's routing table. A stranger's
    /// offer is answered "missing all", checking nothing: it learns
    /// nothing of what this node holds or lacks, and costs no store reads.
    pub(crate) fn trusted(&self) -> bool {
        self.trusted
    }

    /// Whether the offerer is among the `width` closest to `name` that
    /// this node knows (itself included).
    pub(crate) fn offerer_near(&self, name: &XorName, width: usize) -> bool {
        safe_network::close_group::closest(name, self.everyone.iter().copied(), width)
            .contains(&self.peer)
    }

    /// True if the offerer is trusted and we are in `name`'s group.
    fn should_fetch(&self, name: &XorName) -> bool {
        self.trusted
            && safe_network::close_group::closest(name, self.everyone.iter().copied(), self.k)
                .contains(&self.me)
    }

    /// Answers an offer: queues fetches of the `missing` (or differing)
    /// names this node should hold, and tells the offerer which they are.
    pub(crate) fn answer_offer(
        &self,
        fetches: &Fetcher,
        kind: Kind,
        missing: Result<Vec<XorName>, NodeStoreError>,
    ) -> Response {
        self.answer_offer_where(fetches, kind, missing, |_, _| true)
    }

    /// [`Scope::answer_offer`], fetching only the names `ready` allows
    /// (it is told of every name this node should hold).
    pub(crate) fn answer_offer_where(
        &self,
        fetches: &Fetcher,
        kind: Kind,
        missing: Result<Vec<XorName>, NodeStoreError>,
        mut ready: impl FnMut(&XorName, PeerId) -> bool,
    ) -> Response {
        let Ok(missing) = missing else {
            return Response::Refused(Refusal::StorageFailed);
        };
        for name in &missing {
            if self.should_fetch(name) && ready(name, self.peer) {
                fetches.enqueue(kind, *name, self.peer);
            }
        }
        Response::OfferTaken { missing }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: u32) -> XorName {
        let mut n = [0u8; 32];
        n[..4].copy_from_slice(&i.to_be_bytes());
        XorName(n)
    }

    #[tokio::test]
    async fn a_flooding_peer_gets_its_share_and_no_more() {
        let f = Fetcher::new();
        let (bad, good) = (PeerId::random(), PeerId::random());
        for i in 0..5000 {
            f.enqueue(Kind::Chunk, name(i), bad);
        }
        assert_eq!(f.queued(), PER_PEER_QUEUE, "one peer's share");
        f.enqueue(Kind::Chunk, name(100_000), good);
        // The good peer's fetch comes within the first turns, not after
        // the flood.
        let mut from_bad = 0;
        loop {
            let (_, n, p) = f.next().await;
            if p == good {
                assert_eq!(n, name(100_000));
                break;
            }
            from_bad += 1;
            assert!(from_bad <= PER_PEER_IN_FLIGHT, "the flood goes first");
        }
    }

    #[tokio::test]
    async fn a_peer_whose_fetches_fail_is_leashed() {
        let f = Fetcher::new();
        let bad = PeerId::random();
        for i in 0..100 {
            f.enqueue(Kind::Chunk, name(i), bad);
        }
        for _ in 0..LEASH_AFTER {
            let (k, n, p) = f.next().await;
            f.done(k, &n, p, false);
        }
        assert_eq!(f.queued(), 0, "its queue is dropped");
        f.enqueue(Kind::Chunk, name(500), bad);
        assert_eq!(f.queued(), 0, "and its offers ignored");
        let other = PeerId::random();
        f.enqueue(Kind::Chunk, name(500), other);
        assert_eq!(f.queued(), 1, "others are not");
    }
}
