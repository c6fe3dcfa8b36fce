//! Mutable records on a node: writes, reads, replication and conflicts.
//!
//! Every write is validated against the record the node holds, inside one
//! store transaction ([`crate::NodeStore::update_record`]), so two racing
//! writes are applied one after the other and the second sees the first:
//! a node accepts a create only where it holds nothing, and an operation
//! only on the exact version and state it names. The node answers for
//! itself alone; the client collects a majority of the close group.
//!
//! Replication offers `(address, digest)` pairs; a member whose copy differs
//! fetches the offerer's, verifies the whole proof and merges it
//! ([`Record::merge`]). Copies that cannot be merged (two creates that
//! raced, or two different states at one version) are settled by asking
//! the close group and adopting what its majority holds
//! ([`safe_protocol::mutable::resolve`]), so every replica ends with the
//! record the client that got a majority was told it wrote.

use bytes::Bytes;
use futures::future::join_all;
use safe_network::close_group::{majority, sign_record_receipt};
use safe_network::libp2p::PeerId;
use safe_protocol::XorName;
use safe_protocol::account::{is_account, signatures_valid, signed_by_owner};
use safe_protocol::coin::pay::ChunkPayment;
use safe_protocol::inbox::is_inbox;
use safe_protocol::messages::{MAX_OFFER_NAMES, Refusal, Request, Response};
use safe_protocol::mutable::{Hash, Merge, Record, RecordError, Write, accept_write, resolve};

use crate::accounts;
use crate::fetch::Kind;
use crate::node::{FORWARD_TIMEOUT, Node};
use crate::store::NodeStoreError;

/// Validates and applies a write; answers with this node's receipt.
///
/// On an account record, only a write signed by an owner gets its true
/// answer: any other refused operation or append is answered as if
/// nothing were there, and creates of account addresses draw on the
/// address's rate limit (see [`crate::accounts`]).
pub(crate) async fn put(node: &Node, bytes: Bytes, payment: Option<ChunkPayment>) -> Response {
    let write = match Write::decode(&bytes) {
        Ok(w) => w,
        Err(e) => return Response::RecordRefused(e),
    };
    let name = write.address();
    // Checked before the lookup, whatever is stored (see
    // `signed_by_owner` below).
    let signatures_ok = signatures_valid(&write);
    // A create is taken only near its address: a node far from it would
    // hold a copy that nobody reads, replicates or hands off.
    if matches!(write, Write::Create(_)) && !node.in_group(&name).await {
        return Response::Refused(Refusal::NotResponsible);
    }
    if let Write::Create(c) = &write
        && accounts::is_account_tag(c.body.tag)
        && !node.limits.take(&name)
    {
        return Response::Refused(Refusal::RateLimited);
    }
    // On a network that charges, creating a record this node does not hold
    // yet takes one chunk's credit of a payment for its address (a retry
    // of a create it holds is free, as a re-put of a chunk is). An
    // account's create always needs it, held or not (and gets it back if
    // refused): an unpaid create must not tell whether an account exists.
    let mut credit = None;
    if let Write::Create(c) = &write
        && crate::payments::charges(node).is_some()
        && (accounts::is_account_tag(c.body.tag)
            || !matches!(node.blocking(move |s| s.record(&name)).await, Ok(Some(_))))
    {
        match crate::payments::use_credit(node, &name, payment.as_ref()).await {
            Ok(spend) => credit = Some(spend),
            Err(no) => return no.into(),
        }
    }
    let (response, created) = write_record(node, write, name, signatures_ok).await;
    if let Some(spend) = credit
        && !created
    {
        // Nothing created after all (refused, or created by a racing
        // copy of the write): the credit was not used.
        crate::payments::refund(node, spend).await;
    }
    response
}

/// [`put`] once paid for: the write applied to the record held, and
/// whether it created the record.
async fn write_record(
    node: &Node,
    write: Write,
    name: XorName,
    signatures_ok: bool,
) -> (Response, bool) {
    let mut created = false;
    // An append to an inbox is taken only near its address too: a node that
    // left the group would take appends past what the group's limits allow.
    let near = !matches!(write, Write::Append(_)) || node.in_group(&name).await;
    if !node.faults.drops_record_writes() {
        let w = write.clone();
        let result = node
            .blocking(move |s| {
                s.update_record(&name, move |current| {
                    if !near && current.as_ref().is_some_and(is_inbox) {
                        return (None, Err((RecordError::NotFound, Answer::NotResponsible)));
                    }
                    let hidden = !matches!(w, Write::Create(_))
                        && current.as_ref().is_some_and(|r| {
                            is_account(r) && !(signatures_ok && signed_by_owner(r, &w))
                        });
                    let answer = if hidden {
                        Answer::Hidden
                    } else {
                        Answer::Shown
                    };
                    let was_none = current.is_none();
                    let (next, result) = apply(current, &w);
                    let made = was_none && next.is_some();
                    (next, result.map(|()| made).map_err(|e| (e, answer)))
                })
            })
            .await;
        match result {
            Ok(Ok(made)) => created = made,
            Ok(Err((_, Answer::NotResponsible))) => {
                return (Response::Refused(Refusal::NotResponsible), false);
            }
            Ok(Err((_, Answer::Hidden))) => {
                return (Response::RecordRefused(RecordError::NotFound), false);
            }
            Ok(Err((e, Answer::Shown))) => return (Response::RecordRefused(e), false),
            Err(NodeStoreError::Full { .. }) => return (Response::Refused(Refusal::Full), false),
            Err(e @ NodeStoreError::DiskFull { .. }) => {
                node.note_disk_full(&e);
                return (Response::Refused(Refusal::Full), false);
            }
            Err(e) => {
                tracing::error!(%name, "cannot store a record write: {e}");
                return (Response::Refused(Refusal::StorageFailed), false);
            }
        }
    }
    match sign_record_receipt(&node.keypair, &name, &write.proof()) {
        Some(receipt) => (Response::RecordStored(receipt), created),
        None => (Response::Refused(Refusal::StorageFailed), created),
    }
}

/// How a refused write is answered.
enum Answer {
    /// With its reason.
    Shown,
    /// As if nothing were there (an account's write by a stranger).
    Hidden,
    /// "Not responsible" (an inbox append to a node outside its group).
    NotResponsible,
}

/// The rule of a write against what the node holds (the one the client's
/// local store applies too): the record to store (if any) and the answer.
fn apply(current: Option<Record>, write: &Write) -> (Option<Record>, Result<(), RecordError>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match accept_write(current, write, now) {
        Ok(next) => (next, Ok(())),
        Err(e) => (None, Err(e)),
    }
}

/// Serves the record at `name` to `peer`. An account record is served
/// here only to nodes near its address (replication and settling): to
/// anyone else it is "not found", as if absent; clients fetch accounts
/// with a signed [`crate::accounts::get`].
pub(crate) async fn get(node: &Node, peer: PeerId, name: XorName) -> Response {
    // Asked whatever is stored, so the time taken does not tell whether
    // an account is there.
    let near = node.is_near(&peer, &name).await;
    // A failure is not "not found": readers count that as a vote.
    let record = match node.blocking(move |s| s.record(&name)).await {
        Ok(Some(r)) => r,
        Ok(None) => return Response::NotFound,
        Err(e) => {
            tracing::error!(%name, "cannot read a record: {e}");
            return Response::Refused(Refusal::StorageFailed);
        }
    };
    if is_account(&record) && !near {
        return Response::NotFound;
    }
    serve(node, name, node.faults.record(record))
}

/// The answer that carries `record` (stored at `name`).
pub(crate) fn serve(node: &Node, name: XorName, record: Record) -> Response {
    match record.encode() {
        Ok(bytes) => {
            node.metrics.served(bytes.len());
            Response::Record(bytes.into())
        }
        Err(e) => {
            tracing::error!(%name, "cannot encode a record: {e}");
            Response::Refused(Refusal::StorageFailed)
        }
    }
}

/// A replication offer of records: fetches those whose copy differs here
/// (and that this node is responsible for); answers with the differing
/// names.
pub(crate) async fn offer(node: &Node, peer: PeerId, items: Vec<(XorName, Hash)>) -> Response {
    if items.len() > MAX_OFFER_NAMES {
        return Response::Refused(Refusal::OverLimit);
    }
    let scope = node.fetch_scope(peer).await;
    if !scope.trusted() {
        // A stranger learns nothing of what this node holds (see
        // `Scope::trusted`).
        return Response::OfferTaken {
            missing: items.into_iter().map(|(name, _)| name).collect(),
        };
    }
    let differing = node
        .blocking(move |s| {
            let mut out = Vec::new();
            for (name, digest) in items {
                if s.record_digest(&name)? != Some(digest) {
                    out.push(name);
                }
            }
            Ok(out)
        })
        .await;
    scope.answer_offer(&node.fetches, Kind::Record, differing)
}

/// Fetches `peer`'s copy of `name`, verifies it and merges it into ours.
/// A copy this node cannot merge by itself (see [`Record::merge`]), or any
/// copy of a record it does not hold yet, is settled by the close group.
pub(crate) async fn fetch(node: &Node, name: XorName, peer: PeerId) -> bool {
    // A node that drops writes (a test's fault) keeps its old versions
    // against replication too, or it would heal before the test looks.
    if node.faults.drops_record_writes() {
        return true;
    }
    // An offerer that then has no copy, or sends one that does not
    // verify, did not deliver what it offered.
    let Ok(Some(incoming)) = fetch_verified(node, name, peer).await else {
        return false;
    };
    let outcome = node
        .blocking(move |s| {
            s.update_record(&name, move |current| match current {
                None => (None, Merge::Conflict),
                Some(mut mine) => match mine.merge(&incoming) {
                    Merge::Updated => (Some(mine), Merge::Updated),
                    other => (None, other),
                },
            })
        })
        .await;
    match outcome {
        Ok(Merge::Updated) => node.metrics.replicated(),
        Ok(Merge::Unchanged) => {}
        Ok(Merge::Conflict) => settle(node, name).await,
        Err(e) => tracing::warn!(%name, "cannot store a replicated record: {e}"),
    }
    true
}

/// `peer`'s copy of `name`: `Ok(None)` if it holds none, `Err` if it did
/// not answer or sent a copy that does not verify.
pub(crate) async fn fetch_verified(
    node: &Node,
    name: XorName,
    peer: PeerId,
) -> Result<Option<Record>, ()> {
    let request = node.net.request(peer, Request::GetRecord { name });
    let bytes = match tokio::time::timeout(FORWARD_TIMEOUT, request).await {
        Ok(Ok(Response::Record(bytes))) => bytes,
        Ok(Ok(Response::NotFound)) => return Ok(None),
        Ok(Ok(_)) => return Err(()),
        Ok(Err(e)) => {
            tracing::debug!(%peer, %name, "record fetch failed: {e}");
            return Err(());
        }
        Err(_) => return Err(()),
    };
    // Verifying checks every signature in the record: off the async threads.
    let verified = tokio::task::spawn_blocking(move || {
        Record::decode(&bytes).and_then(|r| r.verify(&name).map(|()| r))
    })
    .await;
    match verified {
        Ok(Ok(r)) => Ok(Some(r)),
        Ok(Err(e)) => {
            crate::loglimit::warn_limited!(%peer, %name, "peer sent a record that does not verify: {e}");
            Err(())
        }
        Err(_) => Err(()),
    }
}

/// Asks the close group (as this node sees it) for its copies and adopts
/// what a majority of the group supports ([`resolve`] with a quorum), or,
/// when every member answered and the copies are a plain split at one
/// version, the pick every settling member makes alike. Otherwise it waits
/// for a later round: it never follows a minority, and never steps back
/// from a copy that descends from the pick.
async fn settle(node: &Node, name: XorName) {
    let group = node.group_peers(&name).await;
    let answers = join_all(group.iter().map(|p| fetch_verified(node, name, *p))).await;
    let everyone = answers.iter().all(Result::is_ok);
    let mut copies: Vec<Record> = answers.into_iter().flatten().flatten().collect();
    let mine = match node.blocking(move |s| s.record(&name)).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(%name, "cannot read a record to settle it: {e}");
            return;
        }
    };
    let mine_digest = mine.as_ref().map(Record::digest);
    let ahead = mine.clone();
    copies.extend(mine);
    let quorum = majority(node.k);
    // What a majority of the group supports; failing that, when every
    // member answered and the copies are a plain split at one version (so
    // no acknowledged write is among them: that would have a majority),
    // the pick every member that settles makes alike, so the record does
    // not stay split for ever.
    let split = everyone
        && copies.len() >= quorum
        && copies
            .windows(2)
            .all(|w| w[0].state.version == w[1].state.version);
    let resolved =
        resolve(&copies, quorum).or_else(|| split.then(|| resolve(&copies, 1)).flatten());
    let Some(resolved) = resolved else {
        tracing::debug!(%name, "no majority for any copy yet; settling later");
        return;
    };
    let winner = resolved.record;
    if node.faults.drops_record_writes() {
        return;
    }
    if Some(winner.digest()) == mine_digest || ahead.is_some_and(|m| m.descends_from(&winner)) {
        return;
    }
    let adopted = node
        .blocking(move |s| {
            s.update_record(&name, move |current| {
                // Only if nothing was written meanwhile; the next round
                // settles again otherwise.
                if current.as_ref().map(Record::digest) == mine_digest {
                    (Some(winner), true)
                } else {
                    (None, false)
                }
            })
        })
        .await;
    match adopted {
        Ok(true) => {
            node.metrics.replicated();
            tracing::debug!(%name, "adopted the close group's copy of a record");
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(%name, "cannot store a settled record: {e}"),
    }
}
