//! Node age (issue 15, Sybil resistance): a node that has just joined holds
//! copies like any other, but its answers do not count toward a client's
//! majority until it has been up for a minimum time.
//!
//! Without an agreed, signed membership there is no authority on when a
//! node joined, so the client asks the ones that would know: the other
//! members of the node's close group, which are its nearest neighbours
//! and saw it arrive. Each node keeps, for every peer in its routing
//! table, when it entered the table (forgotten once it has been out of the
//! table for 5 minutes, so a node that went away is new again when it
//! comes back, and one whose link failed for a moment is not) and answers
//! `Request::PeerAges` with those ages. A member counts as old only when a
//! majority of the whole group (3 of K = 5) among the *other* members
//! report it has been in their tables for the minimum; a member that does
//! not answer, or answers out of form, vouches for no one. So fresh nodes
//! cannot vouch each other into a majority: three attackers that have
//! just joined a group of five have two vouchers each, and count only
//! once the honest members have seen them for the minimum age. The price
//! is liveness, not safety: two lying members can withhold their vouching
//! from the honest three, who then do not count either, and writes to
//! that group fail (with an error that says why) for a client that sets a
//! minimum age.
//!
//! Counted only where a majority is counted: receipts for a put or a
//! record write, and "not found" answers. A young node's chunk bytes and
//! record copies are still used: they are checked against the chunk's name
//! or the owners' signatures, which no age adds to.
//!
//! Off unless set ([`Connection::set_min_node_age`] or `SAFE_MIN_NODE_AGE`
//! in seconds): a fresh network, a local testnet above all, is all young
//! nodes, and nothing could be stored on it for that long. A public
//! network sets it for its clients as it sets the id difficulty.
//! Nodes found old enough are remembered (ages only grow while a node
//! stays), at most [`MAX_KNOWN_OLD`] of them.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;
use safe_network::close_group::{majority, peer_to_key};
use safe_network::libp2p::PeerId;
use safe_protocol::messages::{MAX_AGE_PEERS, Request, Response};

use crate::network::Connection;

/// How long a client waits for a member's report of its group's ages.
pub const AGE_QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Nodes remembered as old enough; past this the memory starts afresh.
pub const MAX_KNOWN_OLD: usize = 4096;

/// The minimum node age `SAFE_MIN_NODE_AGE` gives, in seconds (zero, off,
/// when unset or not a number).
pub fn min_node_age_from_env() -> Duration {
    std::env::var("SAFE_MIN_NODE_AGE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(Duration::ZERO, Duration::from_secs)
}

/// A client's view of node ages.
#[derive(Debug, Default)]
pub(crate) struct Ages {
    min: Mutex<Duration>,
    old: Mutex<HashSet<PeerId>>,
}

impl Ages {
    pub(crate) fn new(min: Duration) -> Self {
        Self {
            min: Mutex::new(min),
            old: Mutex::default(),
        }
    }

    fn min(&self) -> Duration {
        self.min.lock().map_or(Duration::ZERO, |m| *m)
    }

    fn known_old(&self, peer: &PeerId) -> bool {
        self.old.lock().is_ok_and(|o| o.contains(peer))
    }

    fn remember(&self, peer: PeerId) {
        if let Ok(mut old) = self.old.lock() {
            if old.len() >= MAX_KNOWN_OLD {
                old.clear();
            }
            old.insert(peer);
        }
    }
}

/// Whether a member counts as old: `reports` are the other members' (in
/// seconds; a member that did not answer is left out), `group` the size of
/// the whole close group, and a majority of it must vouch.
pub fn vouched_old(reports: &[u64], min_secs: u64, group: usize) -> bool {
    reports.iter().filter(|age| **age >= min_secs).count() >= majority(group)
}

impl Connection {
    /// Counts a node's answers toward a majority only once the rest of its
    /// close group says it has been in their routing tables for `min`
    /// (zero: every node counts, the default).
    pub fn set_min_node_age(&self, min: Duration) {
        if let Ok(mut m) = self.ages.min.lock() {
            *m = min;
        }
    }

    /// The members of `group` whose answers count toward a majority (all
    /// of them when no minimum node age is set).
    pub async fn counted_members(&self, group: &[PeerId]) -> Vec<PeerId> {
        let min = self.ages.min();
        if min.is_zero() {
            return group.to_vec();
        }
        let unknown: Vec<PeerId> = group
            .iter()
            .filter(|p| !self.ages.known_old(p))
            .copied()
            .take(MAX_AGE_PEERS)
            .collect();
        if !unknown.is_empty() {
            let keys: Vec<[u8; 32]> = unknown.iter().filter_map(peer_to_key).collect();
            let asked: Vec<PeerId> = unknown
                .iter()
                .filter(|p| peer_to_key(p).is_some())
                .copied()
                .collect();
            let keys = &keys;
            let reports = join_all(group.iter().map(|member| {
                let request = Request::PeerAges {
                    peers: keys.clone(),
                };
                async move {
                    let answer =
                        tokio::time::timeout(AGE_QUERY_TIMEOUT, self.net.request(*member, request))
                            .await;
                    match answer {
                        Ok(Ok(Response::PeerAges(ages))) if ages.len() == keys.len() => {
                            Some((*member, ages))
                        }
                        _ => None,
                    }
                }
            }))
            .await;
            for (i, peer) in asked.iter().enumerate() {
                let others: Vec<u64> = reports
                    .iter()
                    .flatten()
                    .filter(|(member, _)| member != peer)
                    .filter_map(|(_, ages)| ages.get(i).copied())
                    .collect();
                if vouched_old(&others, min.as_secs(), group.len()) {
                    self.ages.remember(*peer);
                }
            }
        }
        group
            .iter()
            .filter(|p| self.ages.known_old(p))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_needs_a_majority_of_the_group_to_vouch() {
        let min = 600;
        // A group of five: each member has four others.
        // Three fresh attackers vouch for each other: two each. Young.
        assert!(!vouched_old(&[1_000_000, 1_000_000, 0, 0], min, 5));
        // ... and a missing or malformed honest report does not help them.
        assert!(!vouched_old(&[1_000_000, 1_000_000], min, 5));
        // Once the honest members have seen them long enough, they count.
        assert!(vouched_old(&[1_000_000, 1_000_000, 900, 0], min, 5));
        // An honest old node with two lying members: young (liveness lost,
        // never safety).
        assert!(!vouched_old(&[900, 900, 0, 0], min, 5));
        // Three honest vouchers of four: old.
        assert!(vouched_old(&[900, 900, 900, 0], min, 5));
        assert!(!vouched_old(&[], min, 5));
    }
}
