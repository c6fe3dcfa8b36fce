//! Answers to data-protocol requests: each request is counted and handed
//! to the module that owns its kind of data ([`crate::chunks`],
//! [`crate::records`]); refusals are counted and logged here, in one place.

use safe_network::close_group::key_to_peer;
use safe_network::driver::Inbound;
use safe_network::libp2p::PeerId;
use safe_protocol::messages::{MAX_AGE_PEERS, Refusal, Request, Response};

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
    tracing::debug!(%peer, request = %describe(&request), "inbound request");
    let response = match request {
        Request::PutChunk {
            bytes,
            replicate,
            payment,
        } => {
            node.metrics.request(Kind::PutChunk);
            chunks::put(node, bytes, replicate, payment).await
        }
        Request::GetChunk { name } => {
            node.metrics.request(Kind::GetChunk);
            chunks::get(node, name).await
        }
        Request::OfferChunks { names } => {
            node.metrics.request(Kind::OfferChunks);
            chunks::offer(node, peer, names).await
        }
        Request::PutRecord { write, payment } => {
            node.metrics.request(Kind::PutRecord);
            records::put(node, write, payment).await
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
        Request::PeerAges { peers } => {
            node.metrics.request(Kind::PeerAges);
            peer_ages(node, &peers).await
        }
        Request::RelayCerts { peers } => {
            node.metrics.request(Kind::RelayCerts);
            crate::relay::answer_certs(node, &peers)
        }
        Request::Spend {
            spend,
            parents,
            input,
            sequencer,
        } => {
            node.metrics.request(Kind::Spend);
            crate::spends::vote(node, spend, parents, input, sequencer).await
        }
        Request::GetSpend { address } => {
            node.metrics.request(Kind::GetSpend);
            crate::spends::get(node, address).await
        }
        Request::Quote { names } => {
            node.metrics.request(Kind::Quote);
            crate::payments::quote(node, names).await
        }
        Request::Pay {
            payment,
            manifest,
            secret,
        } => {
            node.metrics.request(Kind::Pay);
            crate::payments::pay(node, payment, manifest, secret).await
        }
        Request::Audit { name, nonce } => {
            node.metrics.request(Kind::Audit);
            crate::audit::answer(node, peer, name, nonce).await
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
        Response::SpendRefused(reason) => {
            node.metrics.refused();
            tracing::debug!(%peer, "refused a spend: {reason}");
        }
        Response::PaymentRefused(reason) => {
            node.metrics.refused();
            tracing::debug!(%peer, "refused a payment or an unpaid put: {reason}");
        }
        _ => {}
    }
    node.net.respond(channel, response).await;
}

/// How long this node has had each of `keys` (node public keys) in its
/// routing table, in whole seconds (0 for a key that is not, or is not a
/// node's).
async fn peer_ages(node: &Node, keys: &[[u8; 32]]) -> Response {
    if keys.len() > MAX_AGE_PEERS {
        return Response::Refused(Refusal::OverLimit);
    }
    let peers: Vec<Option<PeerId>> = keys.iter().map(key_to_peer).collect();
    let known: Vec<PeerId> = peers.iter().flatten().copied().collect();
    let mut ages = node.net.peer_ages(known).await.into_iter();
    Response::PeerAges(
        peers
            .iter()
            .map(|p| match p {
                Some(_) => ages.next().map_or(0, |a| a.as_secs()),
                None => 0,
            })
            .collect(),
    )
}

/// What a request asks for, for the debug log: its kind and the name it
/// names (never its bytes).
fn describe(request: &Request) -> String {
    match request {
        Request::PutChunk { bytes, .. } => {
            format!("put chunk {}", safe_protocol::XorName::from_content(bytes))
        }
        Request::GetChunk { name } => format!("get chunk {name}"),
        Request::OfferChunks { names } => format!("offer of {} chunks", names.len()),
        Request::PutRecord { .. } => "put record".into(),
        Request::GetRecord { name } => format!("get record {name}"),
        Request::OfferRecords { items } => format!("offer of {} records", items.len()),
        Request::GetAccount(_) => "get account".into(),
        Request::CacheChunk { bytes } => {
            format!(
                "cache chunk {}",
                safe_protocol::XorName::from_content(bytes)
            )
        }
        Request::PeerAges { peers } => format!("ages of {} peers", peers.len()),
        Request::RelayCerts { peers } => format!("relay certificates of {} peers", peers.len()),
        Request::Spend { spend, input, .. } => {
            format!("spend {} (input {input})", spend.spend.hash())
        }
        Request::GetSpend { address } => format!("get spend {address}"),
        Request::Quote { names } => format!("quote for {} chunks", names.len()),
        Request::Pay { payment, .. } => format!("payment {}", payment.spend.spend.hash()),
        Request::Audit { name, .. } => format!("audit of chunk {name}"),
    }
}
