//! Answers to data-protocol requests: each request is counted and handed
//! to the module that owns its kind of data ([`crate::chunks`],
//! [`crate::records`]); refusals are counted and logged here, in one place.

use safe_network::driver::Inbound;
use safe_protocol::messages::{Request, Response};

use crate::metrics::Kind;
use crate::node::Node;
use crate::{accounts, chunks, records};

/// Answers one inbound request.
pub(crate) async fn handle(node: &Node, inbound: Inbound) {
    let Inbound {
        peer,
        request,
        channel,
    } = inbound;
    let response = match request {
        Request::PutChunk { bytes, replicate } => {
            node.metrics.request(Kind::PutChunk);
            chunks::put(node, bytes, replicate).await
        }
        Request::GetChunk { name } => {
            node.metrics.request(Kind::GetChunk);
            chunks::get(node, name).await
        }
        Request::OfferChunks { names } => {
            node.metrics.request(Kind::OfferChunks);
            chunks::offer(node, peer, names).await
        }
        Request::PutRecord { write } => {
            node.metrics.request(Kind::PutRecord);
            records::put(node, write).await
        }
        Request::GetRecord { name } => {
            node.metrics.request(Kind::GetRecord);
            records::get(node, peer, name).await
        }
        Request::OfferRecords { items } => {
            node.metrics.request(Kind::OfferRecords);
            records::offer(node, peer, items).await
        }
        Request::GetAccount(fetch) => {
            node.metrics.request(Kind::GetAccount);
            accounts::get(node, fetch).await
        }
        Request::CacheChunk { bytes } => {
            node.metrics.request(Kind::CacheChunk);
            chunks::cache(node, bytes).await
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
