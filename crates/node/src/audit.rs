//! Storage audits (issue 17; `docs/DESIGN-currency.md`, "Storage
//! audits"): proof that a node still holds what it was paid to store.
//!
//! Every [`NodeConfig::audit_interval`](crate::NodeConfig), a node picks
//! one of its chunks at random and, if it is a member of that chunk's
//! close group, challenges each other member it has known for at least
//! [`MIN_AUDITED_AGE`] (a newcomer may still be fetching): a fresh random
//! nonce, answered with the hash of the nonce and the chunk's bytes
//! ([`audit_proof`]). Only a node with the bytes at hand can answer, and
//! a nonce is never reused, so an answer cannot be kept from an earlier
//! audit. Chunks are public, though: a node that dropped a chunk can
//! still pass by fetching it from another member within the answer's
//! time (5 s in version 1), so passing shows the node can get the bytes,
//! not that it stores them; a tight deadline is for the issuance design.
//!
//! The auditor checks the answer against its own copy. The outcomes are
//! kept per peer (at most [`MAX_AUDITED_PEERS`]) and counted in the
//! metrics (`safe_audits_total{outcome=…}`). Replication, not the audit,
//! repairs a member that lost a chunk. New issuance paid against passed
//! audits is a separate option, designed in the note and not built.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use safe_network::libp2p::PeerId;
use safe_protocol::XorName;
use safe_protocol::messages::{Refusal, Request, Response, audit_proof};
use tokio::sync::watch;

use crate::node::{FORWARD_TIMEOUT, GROUP_MARGIN, Node};
use crate::store::NodeStoreError;

/// Time between audit rounds by default.
pub const DEFAULT_AUDIT_INTERVAL: Duration = Duration::from_secs(60);
/// A peer is audited only once it has been in the routing table this
/// long (replication gives a newcomer its chunks within a few rounds).
pub const MIN_AUDITED_AGE: Duration = Duration::from_secs(60);
/// Peers whose audit outcomes are kept (others are audited, and counted
/// in the metrics, but not kept per peer).
pub const MAX_AUDITED_PEERS: usize = 4096;

/// How one audit went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The proof matched the auditor's copy.
    Passed,
    /// The peer said it does not hold the chunk, or its proof was wrong.
    Failed(String),
    /// No answer to count either way (timed out, refused, unreachable).
    NoAnswer(String),
}

/// The audits of one peer so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerAudits {
    /// Audits passed.
    pub passed: u64,
    /// Audits failed.
    pub failed: u64,
    /// Audits not answered.
    pub unanswered: u64,
    /// The chunk and reason of the last failure.
    pub last_failure: Option<(XorName, String)>,
}

/// Audit outcomes per peer, bounded by [`MAX_AUDITED_PEERS`].
#[derive(Debug, Default)]
pub(crate) struct AuditBook(Mutex<HashMap<PeerId, PeerAudits>>);

impl AuditBook {
    fn note(&self, peer: PeerId, name: XorName, outcome: &Outcome) {
        let mut book = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !book.contains_key(&peer) && book.len() >= MAX_AUDITED_PEERS {
            return;
        }
        let entry = book.entry(peer).or_default();
        match outcome {
            Outcome::Passed => entry.passed += 1,
            Outcome::Failed(why) => {
                entry.failed += 1;
                entry.last_failure = Some((name, why.clone()));
            }
            Outcome::NoAnswer(_) => entry.unanswered += 1,
        }
    }

    /// Every peer's audits so far.
    pub(crate) fn snapshot(&self) -> Vec<(PeerId, PeerAudits)> {
        let book = self.0.lock().unwrap_or_else(|e| e.into_inner());
        book.iter().map(|(p, a)| (*p, a.clone())).collect()
    }
}

/// Answers an audit of chunk `name` under `nonce`, asked by `peer`: only
/// a member of the chunk's close group (in this node's view, with the
/// usual margin) may ask, so nobody else can make the node read and hash
/// chunks for 64 bytes a request.
pub(crate) async fn answer(node: &Node, peer: PeerId, name: XorName, nonce: [u8; 32]) -> Response {
    let mut members = node.net.routing_peers().await;
    members.push(node.net.peer_id());
    let near = safe_network::close_group::closest(&name, members, node.k + GROUP_MARGIN);
    if !near.contains(&peer) {
        return Response::Refused(Refusal::NotResponsible);
    }
    match node
        .blocking(move |s| Ok(s.get(name)?.map(|c| audit_proof(&nonce, c.bytes()))))
        .await
    {
        Ok(Some(proof)) => Response::AuditProof(proof),
        Ok(None) => Response::NotFound,
        Err(e) => {
            tracing::warn!(chunk = %name, "cannot read a chunk to answer an audit: {e}");
            Response::Refused(Refusal::StorageFailed)
        }
    }
}

/// Why an audit could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The auditor does not hold the chunk itself.
    #[error("this node does not hold chunk {0}, so it cannot check a proof of it")]
    NotHeld(XorName),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] NodeStoreError),
    /// No randomness for a nonce.
    #[error("no randomness for an audit nonce: {0}")]
    Random(String),
}

/// Challenges `peer` to prove it holds chunk `name`, which this node must
/// hold; the outcome is noted and counted.
pub(crate) async fn audit(node: &Node, peer: PeerId, name: XorName) -> Result<Outcome, AuditError> {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|e| AuditError::Random(e.to_string()))?;
    let expected = node
        .blocking(move |s| Ok(s.get(name)?.map(|c| audit_proof(&nonce, c.bytes()))))
        .await?
        .ok_or(AuditError::NotHeld(name))?;
    let asked = node.net.request(peer, Request::Audit { name, nonce });
    let outcome = match tokio::time::timeout(FORWARD_TIMEOUT, asked).await {
        Ok(Ok(Response::AuditProof(proof))) if proof == expected => Outcome::Passed,
        Ok(Ok(Response::AuditProof(_))) => {
            Outcome::Failed("its proof is not of the chunk's bytes".into())
        }
        Ok(Ok(Response::NotFound)) => Outcome::Failed("it does not hold the chunk".into()),
        Ok(Ok(other)) => Outcome::NoAnswer(other.kind()),
        Ok(Err(e)) => Outcome::NoAnswer(e.to_string()),
        Err(_) => Outcome::NoAnswer("no answer in time".into()),
    };
    if let Outcome::Failed(why) = &outcome {
        tracing::info!(%peer, chunk = %name, "failed its storage audit: {why}");
    }
    node.audits.note(peer, name, &outcome);
    node.metrics.audited(&outcome);
    Ok(outcome)
}

/// Runs audit rounds every `interval` until stopped (never, for a zero
/// interval).
pub(crate) async fn audit_loop(
    node: Arc<Node>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: a node that just started audits later.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = round(&node).await {
            tracing::debug!("audit round: {e}");
        }
    }
}

/// One round: a chunk at random, its group's members audited.
async fn round(node: &Node) -> Result<(), AuditError> {
    let mut start = [0u8; 32];
    getrandom::fill(&mut start).map_err(|e| AuditError::Random(e.to_string()))?;
    let mut names = node
        .blocking(move |s| s.chunk_names_after(Some(XorName(start)), 1))
        .await?;
    if names.is_empty() {
        names = node.blocking(|s| s.chunk_names_after(None, 1)).await?;
    }
    let Some(name) = names.pop() else {
        return Ok(());
    };
    if !node.is_near(&node.net.peer_id(), &name).await {
        // Not this node's to audit (it is handing the chunk off).
        return Ok(());
    }
    let peers = node.group_peers(&name).await;
    let ages = node.net.peer_ages(peers.clone()).await;
    for (peer, age) in peers.into_iter().zip(ages) {
        if age >= MIN_AUDITED_AGE {
            audit(node, peer, name).await?;
        }
    }
    Ok(())
}
