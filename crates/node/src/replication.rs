//! Keeping every chunk and record on its close group, with no client
//! involved.
//!
//! Each node runs rounds, every [`DEFAULT_INTERVAL`] and shortly after its
//! routing table changes. A round pages through the node's chunks (never
//! holding them all) and, for each, works out the close group from the
//! node's own routing table:
//!
//! - Chunks it is responsible for are *offered* (names only) to the other
//!   members of their group. A member that lacks an offered chunk it is
//!   responsible for fetches it from the offerer with `GetChunk`, verifies
//!   it and stores it. To keep rounds cheap, a peer is offered its list again
//!   only when the list changed (a BLAKE3 digest per peer) or every
//!   [`REFRESH`].
//! - Chunks it is no longer responsible for are *handed off*: offered to
//!   their group, and deleted only once every member of the group has
//!   answered and none lacks them. A node never drops what might be the
//!   last copy.
//!
//! Mutable records are offered too, with their digest (`OfferRecords`), to
//! their group whether or not this node is still in it, and never dropped
//! here; a member whose copy differs fetches and merges it
//! ([`crate::records`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use safe_network::close_group::closest;
use safe_network::libp2p::PeerId;
use safe_protocol::XorName;
use safe_protocol::messages::{MAX_OFFER_NAMES, Request, Response};
use tokio::sync::watch;

use crate::fetch::Kind;
use crate::node::Node;
use crate::store::NodeStoreError;
use crate::{chunks, records};

/// Time between replication rounds.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Every peer is re-offered its full list at least this often.
pub const REFRESH: Duration = Duration::from_secs(20);
/// Wait after a routing change before a round, so a burst of changes
/// makes one round.
pub const DEBOUNCE: Duration = Duration::from_millis(500);
pub use crate::fetch::FETCH_QUEUE;
/// Chunks and records fetched at once.
pub const FETCH_CONCURRENCY: usize = 8;
/// Chunks handed off per round.
pub const MAX_HANDOFF: usize = 1024;

/// Fetches queued chunks and records, [`FETCH_CONCURRENCY`] at a time.
pub(crate) async fn fetch_loop(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let jobs = futures::stream::unfold(node.clone(), |node| async move {
        let job = node.fetches.next().await;
        Some((job, node))
    });
    let work = jobs.for_each_concurrent(FETCH_CONCURRENCY, |(kind, name, peer)| {
        let node = node.clone();
        async move {
            let delivered = match kind {
                Kind::Chunk => chunks::fetch(&node, name, peer).await,
                Kind::Record => records::fetch(&node, name, peer).await,
            };
            node.fetches.done(kind, &name, peer, delivered);
        }
    });
    tokio::select! {
        _ = work => {}
        _ = stop.changed() => {}
    }
}

/// Runs replication rounds until stopped.
pub(crate) async fn offer_loop(
    node: Arc<Node>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut routing = node.net.routing_watch();
    let mut state = OfferState::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = routing.changed() => {
                if changed.is_err() { break; }
                tokio::time::sleep(DEBOUNCE).await;
                routing.borrow_and_update();
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        if let Err(e) = round(&node, &mut state).await {
            tracing::warn!("replication round failed: {e}");
        }
    }
}

#[derive(Default)]
struct OfferState {
    /// Digest of the list last offered to each peer, and when.
    offered: HashMap<PeerId, ([u8; 32], Instant)>,
    /// Hand-offs resume after this name, so chunks that cannot be handed
    /// off yet do not block those after them.
    handoff_after: Option<XorName>,
}

const PAGE: usize = 1024;

async fn page(node: &Node, after: Option<XorName>) -> Result<Vec<XorName>, NodeStoreError> {
    node.blocking(move |s| s.chunk_names_after(after, PAGE))
        .await
}

async fn round(node: &Node, state: &mut OfferState) -> Result<(), NodeStoreError> {
    let me = node.net.peer_id();
    let mut everyone = node.net.routing_peers().await;
    everyone.push(me);
    let group_of = |name: &XorName| closest(name, everyone.iter().copied(), node.k);

    // Pass 1: what each peer should hold of ours, as a digest; hand-offs.
    let mut digests: HashMap<PeerId, blake3::Hasher> = HashMap::new();
    let mut handoff = Vec::new();
    let mut after = None;
    loop {
        let names = page(node, after).await?;
        let Some(last) = names.last() else { break };
        after = Some(*last);
        for name in &names {
            let group = group_of(name);
            if group.contains(&me) {
                for p in group.into_iter().filter(|p| *p != me) {
                    digests.entry(p).or_default().update(&name.0);
                }
            } else if handoff.len() < MAX_HANDOFF && state.handoff_after.is_none_or(|a| *name > a) {
                handoff.push(*name);
            }
        }
    }
    // Mutable records: offered (with their digest) to their group whether
    // or not this node is still in it; never dropped here (see DESIGN).
    let mut after = None;
    loop {
        let items = record_page(node, after).await?;
        let Some(last) = items.last() else { break };
        after = Some(last.0);
        for (name, digest) in &items {
            for p in group_of(name).into_iter().filter(|p| *p != me) {
                let h = digests.entry(p).or_default();
                h.update(&name.0);
                h.update(digest);
            }
        }
    }
    let now = Instant::now();
    let due: HashSet<PeerId> = digests
        .iter()
        .filter(|(p, h)| match state.offered.get(p) {
            Some((d, at)) => *d != *h.finalize().as_bytes() || now.duration_since(*at) >= REFRESH,
            None => true,
        })
        .map(|(p, _)| *p)
        .collect();
    state.offered.retain(|p, _| digests.contains_key(p));

    // Pass 2: offer each due peer its list, page by page.
    let mut failed: HashSet<PeerId> = HashSet::new();
    if !due.is_empty() {
        let mut after = None;
        loop {
            let names = page(node, after).await?;
            let Some(last) = names.last() else { break };
            after = Some(*last);
            let mut batches: HashMap<PeerId, Vec<XorName>> = HashMap::new();
            for name in &names {
                let group = group_of(name);
                if group.contains(&me) {
                    for p in group.into_iter().filter(|p| due.contains(p)) {
                        batches.entry(p).or_default().push(*name);
                    }
                }
            }
            for (peer, ok) in send_offers(node, batches, offer_names).await {
                if ok.is_none() {
                    failed.insert(peer);
                }
            }
        }
        let mut after = None;
        loop {
            let items = record_page(node, after).await?;
            let Some(last) = items.last() else { break };
            after = Some(last.0);
            let mut batches: HashMap<PeerId, Vec<(XorName, [u8; 32])>> = HashMap::new();
            for item in &items {
                for p in group_of(&item.0).into_iter().filter(|p| due.contains(p)) {
                    batches.entry(p).or_default().push(*item);
                }
            }
            let offered: HashMap<PeerId, HashSet<XorName>> = batches
                .iter()
                .map(|(p, items)| (*p, items.iter().map(|i| i.0).collect()))
                .collect();
            let offer = |items| Request::OfferRecords { items };
            for (peer, differing) in send_offers(node, batches, offer).await {
                match differing {
                    // The peer's copies differ: fetch them back, so a copy
                    // that is behind (this node's, if it left the group)
                    // catches up and one that is ahead is not fetched by
                    // the peer again and again. Only names offered to it:
                    // a peer cannot make us fetch records we do not hold.
                    Some(names) => {
                        let ours = offered.get(&peer);
                        for name in names
                            .into_iter()
                            .filter(|n| ours.is_some_and(|o| o.contains(n)))
                        {
                            node.fetches.enqueue(Kind::Record, name, peer);
                        }
                    }
                    None => {
                        failed.insert(peer);
                    }
                }
            }
        }
    }
    for peer in due {
        if !failed.contains(&peer)
            && let Some(h) = digests.get(&peer)
        {
            state.offered.insert(peer, (*h.finalize().as_bytes(), now));
        }
    }

    // Hand-offs: drop a record only when its whole group holds it.
    state.handoff_after = if handoff.len() == MAX_HANDOFF {
        handoff.last().copied()
    } else {
        None
    };
    if !handoff.is_empty() {
        let mut batches: HashMap<PeerId, Vec<XorName>> = HashMap::new();
        for name in &handoff {
            for p in group_of(name) {
                batches.entry(p).or_default().push(*name);
            }
        }
        let answers: HashMap<PeerId, Option<HashSet<XorName>>> =
            send_offers(node, batches, offer_names)
                .await
                .into_iter()
                .map(|(p, missing)| (p, missing.map(|m| m.into_iter().collect())))
                .collect();
        let mut dropped = 0usize;
        for name in handoff {
            let all_hold = group_of(&name)
                .iter()
                .all(|p| matches!(answers.get(p), Some(Some(missing)) if !missing.contains(&name)));
            if all_hold {
                node.blocking(move |s| s.remove(&name)).await?;
                dropped += 1;
            }
        }
        if dropped > 0 {
            node.metrics.handed_off(dropped);
            tracing::debug!(
                dropped,
                "handed off chunks this node is no longer responsible for"
            );
        }
    }
    Ok(())
}

async fn record_page(
    node: &Node,
    after: Option<XorName>,
) -> Result<Vec<(XorName, [u8; 32])>, NodeStoreError> {
    node.blocking(move |s| s.records_after(after, PAGE)).await
}

fn offer_names(names: Vec<XorName>) -> Request {
    Request::OfferChunks { names }
}

/// Sends each peer its items (in offers of at most [`MAX_OFFER_NAMES`],
/// built by `offer`). Returns, per peer, the names it said it lacks, or
/// `None` if any offer to it failed.
async fn send_offers<T: Clone>(
    node: &Node,
    batches: HashMap<PeerId, Vec<T>>,
    offer: impl Fn(Vec<T>) -> Request + Copy,
) -> Vec<(PeerId, Option<Vec<XorName>>)> {
    join_all(batches.into_iter().map(|(peer, items)| async move {
        let mut missing = Vec::new();
        for part in items.chunks(MAX_OFFER_NAMES) {
            match node.net.request(peer, offer(part.to_vec())).await {
                Ok(Response::OfferTaken { missing: m }) => missing.extend(m),
                other => {
                    tracing::debug!(%peer, "offer not taken: {other:?}");
                    return (peer, None);
                }
            }
        }
        (peer, Some(missing))
    }))
    .await
}
