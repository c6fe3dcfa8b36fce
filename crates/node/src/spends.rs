//! Votes on spends (`docs/DESIGN-currency.md`, revision 2): each node of a
//! spend address's close group holds at most one spend there, for ever,
//! and signs a vote for it; `K − 1` votes are the input's certificate.
//!
//! Before voting a member checks, cheapest first: what it holds already
//! (a retry gets the same vote at once, a conflict the held spend's hash);
//! that it is in the group and has been up long enough to know it; the
//! sequencer's vote (the member closest to the address in this node's
//! view votes first, and the others follow it, so two racing spends give
//! one certified spend); the spend's form and signatures; the parent of
//! the input, certified by the parent's groups as a lookup finds them;
//! and, before its first vote at the address, what every other member
//! holds there, so that a node that joined the group late never votes
//! against a spend the group already certified.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;
use safe_network::close_group::{key_to_peer, peer_to_key};
use safe_protocol::XorName;
use safe_protocol::coin::{
    CertifiedSpend, Key, MIN_CURRENCY_GROUP, SignedSpend, SpendError, SpendHash, Vote, parent_of,
    quorum, spend_address,
};
use safe_protocol::messages::{Refusal, Request, Response};

use crate::node::Node;

/// How long after starting a node waits before it votes: its routing
/// table must hold its close neighbours first (the bootstrap lookup).
pub const VOTE_WARMUP: Duration = Duration::from_secs(2);
/// How long a member waits for another member's answer about what it
/// holds, before its first vote at an address.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Certified spends checked already (by hash), kept so that a parent is
/// checked once: at most this many, then forgotten all at once.
const VERIFIED_CACHE: usize = 4096;

/// Hashes of spends this node has seen certified.
#[derive(Default)]
pub(crate) struct Verified(Mutex<HashSet<SpendHash>>);

impl Verified {
    fn contains(&self, h: &SpendHash) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(h)
    }

    fn insert(&self, h: SpendHash) {
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if set.len() >= VERIFIED_CACHE {
            set.clear();
        }
        set.insert(h);
    }
}

/// This node's vote for `hash` at `address`.
fn my_vote(node: &Node, genesis: &Key, address: &XorName, hash: &SpendHash) -> Vote {
    Vote::sign(&node.signing, genesis, address, hash)
}

/// Answers a [`Request::Spend`].
pub(crate) async fn vote(
    node: &Node,
    spend: SignedSpend,
    parents: Vec<CertifiedSpend>,
    input: u8,
    sequencer: Option<Vote>,
) -> Response {
    match try_vote(node, spend, parents, usize::from(input), sequencer).await {
        Ok(vote) => Response::Voted(vote),
        Err(Answer::Refused(e)) => Response::SpendRefused(e),
        Err(Answer::Node(r)) => Response::Refused(r),
    }
}

enum Answer {
    Refused(SpendError),
    Node(Refusal),
}

impl From<SpendError> for Answer {
    fn from(e: SpendError) -> Self {
        Answer::Refused(e)
    }
}

async fn try_vote(
    node: &Node,
    spend: SignedSpend,
    parents: Vec<CertifiedSpend>,
    input: usize,
    sequencer: Option<Vote>,
) -> Result<Vote, Answer> {
    let genesis = node
        .genesis
        .filter(|_| node.k >= MIN_CURRENCY_GROUP)
        .ok_or(SpendError::NoCurrency)?;
    if spend.spend.genesis != genesis {
        return Err(SpendError::WrongNetwork.into());
    }
    let id = spend
        .spend
        .inputs
        .get(input)
        .ok_or_else(|| SpendError::Malformed(format!("no input {input}")))?
        .id(&genesis);
    let address = spend_address(&id);
    let hash = spend.spend.hash();
    // What is held decides at once: the same spend (a retry) gets the same
    // vote, another one never gets any.
    let held = node
        .blocking(move |s| s.spend_at(&address))
        .await
        .map_err(|_| Answer::Node(Refusal::StorageFailed))?;
    if let Some(held) = held {
        return if held.hash == hash.0 {
            Ok(my_vote(node, &genesis, &address, &hash))
        } else {
            Err(SpendError::AlreadySpent(SpendHash(held.hash)).into())
        };
    }
    if !node.in_group(&address).await {
        return Err(Answer::Node(Refusal::NotResponsible));
    }
    if node.started.elapsed() < VOTE_WARMUP {
        return Err(SpendError::NotReady.into());
    }
    // The sequencer votes first; the others follow its vote.
    let me = node.net.peer_id();
    let mut view = node.net.routing_peers().await;
    view.push(me);
    let first = safe_network::close_group::closest(&address, view, 1);
    let first = first.first().copied().unwrap_or(me);
    if first != me {
        let led = sequencer.as_ref().is_some_and(|v| {
            key_to_peer(&v.node) == Some(first) && v.valid(&genesis, &address, &hash)
        });
        if !led {
            return Err(SpendError::NeedsSequencer(first.to_string()).into());
        }
    }
    spend.verify()?;
    check_parent(node, &spend, input, &genesis, &parents).await?;
    // Before the first vote here: does any other member hold another spend
    // of this input?
    if let Some(other) = held_elsewhere(node, &address, &id, &hash, &genesis).await {
        return Err(SpendError::AlreadySpent(other).into());
    }
    let bytes = spend.encode();
    let held = node
        .blocking(move |s| s.hold_spend(&address, hash.0, &bytes))
        .await
        .map_err(|e| {
            tracing::error!(%address, "cannot hold a spend: {e}");
            Answer::Node(Refusal::StorageFailed)
        })?;
    if held.hash != hash.0 {
        return Err(SpendError::AlreadySpent(SpendHash(held.hash)).into());
    }
    tracing::debug!(%address, spend = %hash, "voted for a spend");
    Ok(my_vote(node, &genesis, &address, &hash))
}

/// Checks that input `input` is an output of its parent, and the parent
/// certified at each of its inputs by the group a lookup finds there.
async fn check_parent(
    node: &Node,
    spend: &SignedSpend,
    input: usize,
    genesis: &Key,
    parents: &[CertifiedSpend],
) -> Result<(), SpendError> {
    let Some(parent) = parent_of(&spend.spend, input, genesis, parents)? else {
        return Ok(());
    };
    check_certified(node, parent, genesis)
        .await
        .map_err(|e| SpendError::ParentNotCertified(input, e))
}

/// Checks that `spend` is valid and certified at each of its inputs by
/// the group a lookup finds there (remembered once it is).
pub(crate) async fn check_certified(
    node: &Node,
    spend: &CertifiedSpend,
    genesis: &Key,
) -> Result<(), String> {
    let hash = spend.spend.spend.hash();
    if node.verified.contains(&hash) {
        return Ok(());
    }
    if &spend.spend.spend.genesis != genesis {
        return Err("the spend is for another network".into());
    }
    // Every signature and enough distinct votes first, with no lookup: a
    // forged certificate costs the node nothing but this.
    spend
        .check(quorum(node.k), |_| |_: &Key| true)
        .map_err(|e| e.to_string())?;
    // The spend's genesis is `genesis` (checked above).
    let addresses = spend.spend.spend.input_addresses();
    let groups = join_all(addresses.iter().map(|a| group_keys(node, a))).await;
    let group_of = |a: &XorName| {
        let members: Vec<Key> = addresses
            .iter()
            .position(|x| x == a)
            .and_then(|i| groups.get(i).cloned())
            .unwrap_or_default();
        move |k: &Key| members.contains(k)
    };
    spend
        .check(quorum(node.k), group_of)
        .map_err(|e| e.to_string())?;
    node.verified.insert(hash);
    Ok(())
}

/// The keys of the K closest nodes to `address`, by a lookup (a node's own
/// routing table is sparse far from its id), this node included if it is
/// one of them.
async fn group_keys(node: &Node, address: &XorName) -> Vec<Key> {
    let mut peers = node.net.closest(*address, node.k).await;
    peers.push(node.net.peer_id());
    safe_network::close_group::closest(address, peers, node.k)
        .iter()
        .filter_map(peer_to_key)
        .collect()
}

/// Another spend of the input `id` that a member of its group (as this
/// node sees it) holds and has voted for, if any.
async fn held_elsewhere(
    node: &Node,
    address: &XorName,
    id: &safe_protocol::coin::OutputId,
    hash: &SpendHash,
    genesis: &Key,
) -> Option<SpendHash> {
    let peers = node.group_peers(address).await;
    let asks = peers.iter().map(|&peer| async move {
        let answer = tokio::time::timeout(
            ASK_TIMEOUT,
            node.net
                .request(peer, Request::GetSpend { address: *address }),
        )
        .await;
        match answer {
            Ok(Ok(Response::HeldSpend { spend, vote })) => {
                let other = spend.spend.hash();
                let spends_it = spend.spend.inputs.iter().any(|i| i.id(genesis) == *id);
                (other != *hash
                    && spends_it
                    && key_to_peer(&vote.node) == Some(peer)
                    && vote.valid(genesis, address, &other)
                    && spend.verify().is_ok())
                .then_some(other)
            }
            _ => None,
        }
    });
    join_all(asks).await.into_iter().flatten().next()
}

/// Answers a [`Request::GetSpend`]: the spend held at `address` and this
/// node's vote for it.
pub(crate) async fn get(node: &Node, address: XorName) -> Response {
    let Some(genesis) = node.genesis else {
        return Response::SpendRefused(SpendError::NoCurrency);
    };
    match node.blocking(move |s| s.spend_at(&address)).await {
        Ok(Some(held)) => match SignedSpend::decode(&held.spend) {
            Ok(spend) => {
                let vote = my_vote(node, &genesis, &address, &SpendHash(held.hash));
                Response::HeldSpend { spend, vote }
            }
            Err(e) => {
                tracing::error!(%address, "a held spend does not decode: {e}");
                Response::Refused(Refusal::StorageFailed)
            }
        },
        Ok(None) => Response::NotFound,
        Err(_) => Response::Refused(Refusal::StorageFailed),
    }
}
