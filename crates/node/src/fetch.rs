//! The fetch queue: chunks and records this node should hold and lacks
//! (or holds a different copy of), each to be fetched from the peer that
//! offered it.
//!
//! Offers are answered at once and the fetches done later, by a bounded
//! number of workers ([`crate::replication`] runs them), so an offer never
//! waits for a transfer. The queue is bounded ([`FETCH_QUEUE`]): offers
//! beyond it are dropped, and the next round offers them again.

use std::collections::HashSet;
use std::sync::Mutex;

use safe_network::libp2p::PeerId;
use safe_protocol::XorName;
use safe_protocol::messages::{Refusal, Response};
use tokio::sync::mpsc;

use crate::store::NodeStoreError;

/// Chunks and records waiting to be fetched; offers beyond this are
/// dropped (the next round offers them again).
pub const FETCH_QUEUE: usize = 4096;

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

/// Queue of chunks and records to fetch from peers, without duplicates.
pub(crate) struct Fetcher {
    tx: mpsc::Sender<Job>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
    pending: Mutex<HashSet<(Kind, XorName)>>,
}

impl Fetcher {
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::channel(FETCH_QUEUE);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            pending: Mutex::new(HashSet::new()),
        }
    }

    /// The receiving end, for the one task that runs the fetches (`None`
    /// once taken).
    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Job>> {
        self.rx.lock().ok().and_then(|mut r| r.take())
    }

    /// Queues a fetch of `name` from `peer` unless one is queued already.
    pub(crate) fn enqueue(&self, kind: Kind, name: XorName, peer: PeerId) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if pending.insert((kind, name)) && self.tx.try_send((kind, name, peer)).is_err() {
            pending.remove(&(kind, name));
        }
    }

    /// Notes a fetch finished (whatever its outcome): it may be queued again.
    pub(crate) fn done(&self, kind: Kind, name: &XorName) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&(kind, *name));
        }
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
        let Ok(missing) = missing else {
            return Response::Refused(Refusal::StorageFailed);
        };
        for name in &missing {
            if self.should_fetch(name) {
                fetches.enqueue(kind, *name, self.peer);
            }
        }
        Response::OfferTaken { missing }
    }
}
