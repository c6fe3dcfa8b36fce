//! Answers to data-protocol requests.

use bytes::Bytes;
use futures::future::join_all;
use safe_network::close_group::{receipt_signer, sign_receipt};
use safe_network::driver::Inbound;
use safe_network::libp2p::PeerId;
use safe_protocol::messages::{MAX_OFFER_NAMES, MAX_RECEIPTS, Refusal, Request, Response};
use safe_protocol::{Chunk, ChunkError, XorName};

use crate::Node;
use crate::metrics::Kind;
use crate::replication::What;
use crate::store::{NodeStoreError, Put};

/// How long the first member of a close group waits for the others'
/// receipts before answering the client with those it has.
pub const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) async fn handle(node: &Node, inbound: Inbound) {
    let Inbound {
        peer,
        request,
        channel,
    } = inbound;
    let response = match request {
        Request::PutChunk { bytes, replicate } => {
            node.metrics.request(Kind::Put);
            put(node, bytes, replicate).await
        }
        Request::GetChunk { name } => {
            node.metrics.request(Kind::Get);
            get(node, name).await
        }
        Request::Offer { names } => {
            node.metrics.request(Kind::Offer);
            offer(node, peer, names).await
        }
        Request::PutRecord { write } => {
            node.metrics.request(Kind::PutRecord);
            crate::mutable::put(node, write).await
        }
        Request::GetRecord { name } => {
            node.metrics.request(Kind::GetRecord);
            crate::mutable::get(node, name).await
        }
        Request::OfferRecords { items } => {
            node.metrics.request(Kind::OfferRecords);
            crate::mutable::offer(node, peer, items).await
        }
    };
    match &response {
        Response::Refused(reason) => {
            node.metrics.refused();
            tracing::debug!(%peer, "refused a request: {reason}");
        }
        Response::RecordRefused(reason) => {
            node.metrics.refused();
            tracing::debug!(%peer, "refused a record write: {reason}");
        }
        _ => {}
    }
    node.net.respond(channel, response).await;
}

/// Validates and stores a chunk; with `replicate`, forwards it to the rest
/// of the close group (as this node sees it) and returns every receipt.
async fn put(node: &Node, bytes: Bytes, replicate: bool) -> Response {
    let chunk = match Chunk::new(bytes) {
        Ok(c) => c,
        Err(ChunkError::TooLarge { .. }) => return Response::Refused(Refusal::TooLarge),
        Err(_) => return Response::Refused(Refusal::OverLimit),
    };
    let name = *chunk.name();
    let stored = {
        let chunk = chunk.clone();
        node.blocking(move |s| s.put(&chunk)).await
    };
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
        let chunk = &chunk;
        let answers = join_all(group.into_iter().map(|peer| async move {
            let answer = tokio::time::timeout(
                FORWARD_TIMEOUT,
                node.net.request(
                    peer,
                    Request::PutChunk {
                        bytes: chunk.bytes().clone(),
                        replicate: false,
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

async fn get(node: &Node, name: XorName) -> Response {
    match node.blocking(move |s| s.get(name)).await {
        Ok(Some(chunk)) => {
            let bytes = node.faults.chunk(chunk.into_bytes());
            node.metrics.served(bytes.len());
            Response::Chunk(bytes)
        }
        Ok(None) => Response::NotFound,
        Err(e) => {
            tracing::error!(%name, "cannot read a record: {e}");
            Response::NotFound
        }
    }
}

async fn offer(node: &Node, peer: PeerId, names: Vec<XorName>) -> Response {
    if names.len() > MAX_OFFER_NAMES {
        return Response::Refused(Refusal::OverLimit);
    }
    let scope = fetch_scope(node, peer).await;
    let unheld = node
        .blocking(move |s| {
            Ok(names
                .into_iter()
                .filter(|n| !matches!(s.contains(n), Ok(true)))
                .collect::<Vec<_>>())
        })
        .await;
    scope.answer_offer(node, What::Chunk, unheld)
}

/// Whom an offer may make us fetch from, and what.
pub(crate) struct FetchScope {
    me: PeerId,
    peer: PeerId,
    /// Offers are for nodes: a peer not in our routing table (a client, or
    /// a stranger) cannot make us queue fetches from it.
    trusted: bool,
    everyone: Vec<PeerId>,
}

impl FetchScope {
    /// True if the offerer is trusted and we are in `name`'s group.
    fn should_fetch(&self, node: &Node, name: &XorName) -> bool {
        self.trusted
            && safe_network::close_group::closest(name, self.everyone.iter().copied(), node.k)
                .contains(&self.me)
    }

    /// Answers an offer: queues fetches of the `missing` (or differing)
    /// names this node should hold, and tells the offerer which they are.
    pub(crate) fn answer_offer(
        &self,
        node: &Node,
        what: What,
        missing: Result<Vec<XorName>, NodeStoreError>,
    ) -> Response {
        let Ok(missing) = missing else {
            return Response::Refused(Refusal::StorageFailed);
        };
        for name in &missing {
            if self.should_fetch(node, name) {
                node.fetches.enqueue(what, *name, self.peer);
            }
        }
        Response::OfferTaken { missing }
    }
}

pub(crate) async fn fetch_scope(node: &Node, peer: PeerId) -> FetchScope {
    let me = node.net.peer_id();
    let mut everyone = node.net.routing_peers().await;
    let trusted = everyone.contains(&peer);
    everyone.push(me);
    FetchScope {
        me,
        peer,
        trusted,
        everyone,
    }
}
