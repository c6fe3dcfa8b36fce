//! Chunks on a node: puts (stored, then forwarded to the rest of the close
//! group), gets, replication offers of chunk names, and fetching a chunk
//! a peer offered.
//!
//! Every chunk is validated before it is stored (its name is the hash of
//! its bytes, its size within the limit) and again when it is read.

use bytes::Bytes;
use futures::future::join_all;
use safe_network::close_group::{receipt_signer, sign_receipt};
use safe_network::libp2p::PeerId;
use safe_protocol::coin::pay::ChunkPayment;
use safe_protocol::messages::{MAX_OFFER_NAMES, MAX_RECEIPTS, Refusal, Request, Response};
use safe_protocol::{Chunk, ChunkError, XorName};

use crate::fetch::Kind;
use crate::node::{FORWARD_TIMEOUT, Node};
use crate::store::{NodeStoreError, Put};

/// Validates and stores a chunk; with `replicate`, forwards it to the rest
/// of the close group (as this node sees it) and returns every receipt.
/// On a network that charges, a chunk not held yet needs `payment`
/// ([`crate::payments`]); one held already is answered as stored, free.
pub(crate) async fn put(
    node: &Node,
    bytes: Bytes,
    replicate: bool,
    payment: Option<ChunkPayment>,
) -> Response {
    let chunk = match Chunk::new(bytes) {
        Ok(c) => c,
        Err(ChunkError::TooLarge { .. }) => return Response::Refused(Refusal::TooLarge),
        Err(_) => return Response::Refused(Refusal::OverLimit),
    };
    let name = *chunk.name();
    let mut credit = None;
    if crate::payments::charges(node).is_some()
        && !matches!(node.blocking(move |s| s.contains(&name)).await, Ok(true))
    {
        match crate::payments::use_credit(node, &name, payment.as_ref()).await {
            Ok(spend) => credit = Some(spend),
            Err(no) => return no.into(),
        }
    }
    let stored = {
        let chunk = chunk.clone();
        node.blocking(move |s| s.put(&chunk)).await
    };
    if let (Err(_) | Ok(Put::AlreadyHeld), Some(spend)) = (&stored, credit) {
        // Not stored after all, or stored by a racing put: the credit
        // was not used.
        crate::payments::refund(node, spend).await;
    }
    match stored {
        Ok(Put::Stored) => node.note_disk_ok(),
        Ok(Put::AlreadyHeld) => {}
        Err(NodeStoreError::Full { .. }) => return Response::Refused(Refusal::Full),
        Err(e @ NodeStoreError::DiskFull { .. }) => {
            node.note_disk_full(&e);
            return Response::Refused(Refusal::Full);
        }
        Err(e) => {
            tracing::error!(%name, "cannot store a chunk: {e}");
            return Response::Refused(Refusal::StorageFailed);
        }
    }
    let Some(own) = sign_receipt(&node.keypair, &name) else {
        return Response::Refused(Refusal::StorageFailed);
    };
    let mut receipts = vec![own];
    if replicate {
        let group = node.group_peers(&name).await;
        // Answer within FORWARD_TIMEOUT, well inside the client's own
        // request timeout, with whatever receipts have come: one slow
        // member must not make the client give up and send the bytes again.
        let (chunk, payment) = (&chunk, &payment);
        let answers = join_all(group.into_iter().map(|peer| async move {
            let answer = tokio::time::timeout(
                FORWARD_TIMEOUT,
                node.net.request(
                    peer,
                    Request::PutChunk {
                        bytes: chunk.bytes().clone(),
                        replicate: false,
                        payment: payment.clone(),
                    },
                ),
            )
            .await;
            (peer, answer)
        }))
        .await;
        for (peer, answer) in answers {
            if let Ok(Ok(Response::Stored { receipts: theirs })) = answer {
                // Only the answering holder's own receipt, for this chunk.
                // Its signature is not checked here: the client checks
                // every receipt itself (signer in the group, signature
                // valid), so a check here would repeat that work per copy.
                receipts.extend(
                    theirs
                        .into_iter()
                        .take(1)
                        .filter(|r| r.name == name && receipt_signer(r) == Some(peer)),
                );
            }
        }
        receipts.truncate(MAX_RECEIPTS);
    }
    Response::Stored { receipts }
}

/// Serves the chunk called `name`.
pub(crate) async fn get(node: &Node, name: XorName) -> Response {
    match node.blocking(move |s| s.get(name)).await {
        Ok(Some(chunk)) => {
            let bytes = node.faults.chunk(chunk.into_bytes());
            node.metrics.served(bytes.len());
            Response::Chunk(bytes)
        }
        Ok(None) => match node.cache.get(&name) {
            Some(bytes) => {
                let bytes = node.faults.chunk(bytes);
                node.metrics.served(bytes.len());
                Response::Chunk(bytes)
            }
            None => Response::NotFound,
        },
        // A failure is not "not found": clients count that answer towards
        // a "not found" majority, and this node may well hold the chunk.
        Err(e) => {
            tracing::error!(%name, "cannot read a chunk: {e}");
            Response::Refused(Refusal::StorageFailed)
        }
    }
}

/// A popular chunk offered for the cache ([`crate::cache`]): kept once it
/// checks out against its name, unless the store holds it already.
pub(crate) async fn cache(node: &Node, bytes: Bytes) -> Response {
    if !node.cache.enabled() {
        return Response::Refused(Refusal::Full);
    }
    // Hashing up to a chunk's bytes: off the async threads.
    let checked = tokio::task::spawn_blocking(move || Chunk::new(bytes)).await;
    let chunk = match checked {
        Ok(Ok(c)) => c,
        Ok(Err(ChunkError::TooLarge { .. })) => return Response::Refused(Refusal::TooLarge),
        _ => return Response::Refused(Refusal::OverLimit),
    };
    let name = *chunk.name();
    if !matches!(node.blocking(move |s| s.contains(&name)).await, Ok(true)) {
        node.cache.insert(name, chunk.into_bytes());
    }
    Response::Cached
}

/// A replication offer of chunk names: queues fetches of those this node
/// lacks (and is responsible for); answers with the names it lacks.
pub(crate) async fn offer(node: &Node, peer: PeerId, names: Vec<XorName>) -> Response {
    if names.len() > MAX_OFFER_NAMES {
        return Response::Refused(Refusal::OverLimit);
    }
    let scope = node.fetch_scope(peer).await;
    if !scope.trusted() {
        return Response::OfferTaken { missing: names };
    }
    let unheld = node
        .blocking(move |s| {
            Ok(names
                .into_iter()
                .filter(|n| !matches!(s.contains(n), Ok(true)))
                .collect::<Vec<_>>())
        })
        .await;
    if crate::payments::charges(node).is_none() {
        return scope.answer_offer(&node.fetches, Kind::Chunk, unheld);
    }
    // Chunks are paid for when put: one member alone cannot make the
    // others store a chunk nobody paid for, and only members of the
    // chunk's group (with the usual margin for differing views) vouch.
    let width = node.k + crate::node::GROUP_MARGIN;
    scope.answer_offer_where(&node.fetches, Kind::Chunk, unheld, |name, peer| {
        scope.offerer_near(name, width) && node.offers.vouched(name, peer)
    })
}

/// Fetches `name` from `peer`, verifies it against its name and stores it.
pub(crate) async fn fetch(node: &Node, name: XorName, peer: PeerId) -> bool {
    // Held already, or no room for it: do not fetch a chunk to refuse it.
    if !matches!(
        node.blocking(move |s| Ok(!s.contains(&name)? && s.has_room()))
            .await,
        Ok(true)
    ) {
        return true;
    }
    let bytes = match node.net.request(peer, Request::GetChunk { name }).await {
        Ok(Response::Chunk(bytes)) => bytes,
        // Asked too fast: not a failed offer; the next round offers it again.
        Ok(Response::Refused(Refusal::PeerRateLimited)) => return true,
        Ok(_) => return false,
        Err(e) => {
            tracing::debug!(%name, "replication fetch failed: {e}");
            return false;
        }
    };
    let chunk = match Chunk::verified(name, bytes) {
        Ok(c) => c,
        Err(e) => {
            crate::loglimit::warn_limited!(%peer, %name, "peer offered a chunk and sent bad bytes: {e}");
            return false;
        }
    };
    match node.blocking(move |s| s.put(&chunk)).await {
        Ok(_) => node.metrics.replicated(),
        Err(e @ NodeStoreError::DiskFull { .. }) => node.note_disk_full(&e),
        Err(e) => tracing::warn!(%name, "cannot store a replicated chunk: {e}"),
    }
    true
}
