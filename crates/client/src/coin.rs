//! Certifying spends (issue 17; `docs/DESIGN-currency.md`, revision 2):
//! for each input, the client looks up the close group of its spend
//! address, asks the group's first member (the sequencer) for its vote,
//! then the others with that vote, and keeps `K − 1` valid votes as the
//! input's certificate. A spend certified at every input is final.

use std::time::Duration;

use futures::future::join_all;
use safe_network::close_group::{key_to_peer, peer_to_key};
use safe_network::libp2p::PeerId;
use safe_protocol::XorName;
use safe_protocol::coin::{
    Certificate, CertifiedSpend, Key, SignedSpend, SpendError, SpendHash, Vote, parent_of, quorum,
    spend_address,
};
use safe_protocol::messages::{Request, Response};

use crate::network::Connection;

/// How often a member that has only just started (or whose view names
/// another sequencer) is asked again, half a second apart.
const RETRIES: usize = 12;
/// How long between those tries.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Why a spend was not certified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoinError {
    /// The spend breaks a rule (the group's answer, or the client's own
    /// check).
    #[error("{0}")]
    Refused(#[from] SpendError),
    /// An input was spent already, by another spend.
    #[error("input {input} was already spent (by spend {by})")]
    DoubleSpend {
        /// Which input.
        input: usize,
        /// The spend that has it.
        by: SpendHash,
    },
    /// Too few members answered to tell whether an output is spent.
    #[error("{0}")]
    CannotTell(String),
    /// Too few members answered with a vote.
    #[error("input {input}: {have} votes from its close group, {need} needed ({why})")]
    TooFewVotes {
        /// Which input.
        input: usize,
        /// Valid votes.
        have: usize,
        /// The quorum.
        need: usize,
        /// What the others said.
        why: String,
    },
}

impl Connection {
    /// Certifies `spend` at every input, its inputs' parents given as
    /// `parents` (none for the genesis output). Returns the certified spend,
    /// checked against the groups this client looked up.
    pub async fn certify(
        &self,
        spend: &SignedSpend,
        parents: &[CertifiedSpend],
    ) -> Result<CertifiedSpend, CoinError> {
        spend.verify()?;
        let inputs = spend.spend.inputs.len();
        let results = join_all((0..inputs).map(|i| self.certify_input(spend, parents, i))).await;
        let mut certs = Vec::with_capacity(inputs);
        for r in results {
            certs.push(r?);
        }
        let certified = CertifiedSpend {
            spend: spend.clone(),
            certs,
        };
        self.check_certificates(&certified).await?;
        Ok(certified)
    }

    /// Checks that `certified` has a quorum of valid votes at every input
    /// from the members of that input's close group, as this client looks
    /// them up.
    pub async fn check_certificates(&self, certified: &CertifiedSpend) -> Result<(), CoinError> {
        let addresses = certified.spend.spend.input_addresses();
        let groups = join_all(addresses.iter().map(|a| self.group_keys(*a))).await;
        certified.check(quorum(self.k), |a| {
            let members = addresses
                .iter()
                .position(|x| x == a)
                .and_then(|i| groups.get(i).cloned())
                .unwrap_or_default();
            move |k: &Key| members.contains(k)
        })?;
        Ok(())
    }

    /// The spend kept at `address` (the spend address of one of its
    /// inputs), with the votes of every input's close group gathered and
    /// checked: `Ok(None)` if no member holds a spend there, an error if
    /// the spend found is not certified at every input (a spend a lone
    /// node made up, or one stopped half way).
    pub async fn certified_spend_at(
        &self,
        address: XorName,
        genesis: &Key,
    ) -> Result<Option<CertifiedSpend>, CoinError> {
        let Some(found) = self.spend_at(address, genesis).await else {
            return Ok(None);
        };
        let hash = found.spend.spend.hash();
        let addresses = found.spend.spend.input_addresses();
        let mut certs = found.certs.clone();
        let others = join_all(
            addresses
                .iter()
                .enumerate()
                .filter(|(_, a)| **a != address)
                .map(|(i, a)| async move { (i, self.spend_at(*a, genesis).await) }),
        )
        .await;
        for (i, other) in others {
            if let Some(other) = other
                && other.spend.spend.hash() == hash
                && let (Some(cert), Some(slot)) = (other.certs.get(i), certs.get_mut(i))
            {
                *slot = cert.clone();
            }
        }
        let certified = CertifiedSpend {
            spend: found.spend,
            certs,
        };
        self.check_certificates(&certified).await?;
        Ok(Some(certified))
    }

    /// The ed25519 keys of the close group of `address` (a lookup, or one
    /// made moments ago).
    pub async fn group_keys(&self, address: XorName) -> Vec<Key> {
        self.close_group(&address)
            .await
            .iter()
            .filter_map(peer_to_key)
            .collect()
    }

    async fn certify_input(
        &self,
        spend: &SignedSpend,
        parents: &[CertifiedSpend],
        input: usize,
    ) -> Result<Certificate, CoinError> {
        let genesis = spend.spend.genesis;
        // Only the parent of this input travels: the other inputs' groups
        // check theirs.
        let parent: Vec<CertifiedSpend> = parent_of(&spend.spend, input, &genesis, parents)?
            .into_iter()
            .cloned()
            .collect();
        let address = spend_address(&spend.spend.inputs[input].id(&genesis));
        let hash = spend.spend.hash();
        let group = self.close_group(&address).await;
        let need = quorum(self.k);
        let mut sequencer = group.first().copied();
        let mut why = String::from("no sequencer found");
        // The sequencer's vote first.
        let mut lead: Option<(PeerId, Vote)> = None;
        for _ in 0..RETRIES {
            let Some(seq) = sequencer else { break };
            match self
                .ask_vote(seq, spend, &parent, input, None, &address, &hash)
                .await
            {
                Ok(v) => {
                    lead = Some((seq, v));
                    break;
                }
                Err(Ask::Spent(by)) => return Err(CoinError::DoubleSpend { input, by }),
                Err(Ask::Other(first)) => {
                    // The member's view names another first member.
                    why = format!("{seq} names {first} as the sequencer");
                    sequencer = Some(first);
                }
                Err(Ask::Retry(e)) => {
                    why = e;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(Ask::Fatal(e)) => return Err(e.into()),
            }
        }
        let Some((seq, lead)) = lead else {
            return Err(CoinError::TooFewVotes {
                input,
                have: 0,
                need,
                why,
            });
        };
        let others = group.iter().copied().filter(|p| *p != seq);
        let answers = join_all(others.map(|peer| {
            let parent = &parent;
            let lead = lead.clone();
            async move {
                let mut last = String::new();
                for _ in 0..RETRIES {
                    match self
                        .ask_vote(
                            peer,
                            spend,
                            parent,
                            input,
                            Some(lead.clone()),
                            &address,
                            &hash,
                        )
                        .await
                    {
                        Ok(v) => return Ok(v),
                        Err(Ask::Retry(e)) => {
                            last = e;
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                        Err(Ask::Spent(by)) => return Err(Ask::Spent(by)),
                        Err(Ask::Other(p)) => {
                            return Err(Ask::Retry(format!("{peer} names {p} as the sequencer")));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(Ask::Retry(last))
            }
        }))
        .await;
        let mut votes = vec![lead];
        let mut whys = Vec::new();
        for a in answers {
            match a {
                Ok(v) => votes.push(v),
                Err(Ask::Spent(by)) => return Err(CoinError::DoubleSpend { input, by }),
                Err(Ask::Retry(e)) => whys.push(e),
                Err(Ask::Fatal(e)) => whys.push(e.to_string()),
                Err(Ask::Other(p)) => whys.push(format!("names {p} as the sequencer")),
            }
        }
        if votes.len() < need {
            return Err(CoinError::TooFewVotes {
                input,
                have: votes.len(),
                need,
                why: whys.join("; "),
            });
        }
        Ok(Certificate { votes })
    }

    #[allow(clippy::too_many_arguments)]
    async fn ask_vote(
        &self,
        peer: PeerId,
        spend: &SignedSpend,
        parents: &[CertifiedSpend],
        input: usize,
        sequencer: Option<Vote>,
        address: &XorName,
        hash: &SpendHash,
    ) -> Result<Vote, Ask> {
        let request = Request::Spend {
            spend: spend.clone(),
            parents: parents.to_vec(),
            input: u8::try_from(input)
                .map_err(|_| Ask::Fatal(SpendError::Malformed("input".into())))?,
            sequencer,
        };
        match self.request(peer, request).await {
            Ok(Response::Voted(v))
                if key_to_peer(&v.node) == Some(peer)
                    && v.valid(&spend.spend.genesis, address, hash) =>
            {
                Ok(v)
            }
            Ok(Response::Voted(_)) => Err(Ask::Retry(format!(
                "{peer} sent a vote that is not its own"
            ))),
            Ok(Response::SpendRefused(SpendError::AlreadySpent(by))) => Err(Ask::Spent(by)),
            Ok(Response::SpendRefused(SpendError::NeedsSequencer(first))) => {
                match first.parse::<PeerId>() {
                    Ok(p) if p != peer => Err(Ask::Other(p)),
                    _ => Err(Ask::Retry(format!("{peer}: it needs the sequencer's vote"))),
                }
            }
            Ok(Response::SpendRefused(SpendError::NotReady)) => {
                Err(Ask::Retry(format!("{peer} has just started")))
            }
            Ok(Response::SpendRefused(e)) => Err(Ask::Fatal(e)),
            Ok(other) => Err(Ask::Retry(format!("{peer}: {}", other.kind()))),
            Err(e) => Err(Ask::Retry(e.to_string())),
        }
    }

    /// Whether the output `id` is unspent: `Ok(true)` only if a majority
    /// of its spend address's close group say outright that they hold no
    /// spend there, `Ok(false)` if any member shows a spend of it (with a
    /// valid vote), an error if the group cannot tell (too few answers:
    /// silence is not "unspent").
    pub async fn unspent(
        &self,
        id: &safe_protocol::coin::OutputId,
        genesis: &Key,
    ) -> Result<bool, CoinError> {
        let address = spend_address(id);
        let group = self.lookup_group(&address).await;
        let answers = join_all(group.iter().map(|&peer| async move {
            (
                peer,
                self.request(peer, Request::GetSpend { address }).await,
            )
        }))
        .await;
        let mut absent = 0usize;
        for (peer, answer) in answers {
            match answer {
                Ok(Response::NotFound) => absent += 1,
                // A spend of this very output, signed by its owner: proof
                // it is spent, whoever shows it.
                Ok(Response::HeldSpend { spend, vote })
                    if key_to_peer(&vote.node) == Some(peer)
                        && vote.valid(genesis, &address, &spend.spend.hash())
                        && spend.spend.inputs.iter().any(|i| i.id(genesis) == *id)
                        && spend.verify().is_ok() =>
                {
                    return Ok(false);
                }
                _ => {}
            }
        }
        let need = safe_network::close_group::majority(self.k);
        if absent >= need {
            Ok(true)
        } else {
            Err(CoinError::CannotTell(format!(
                "only {absent} of the close group said the output is unspent ({need} needed)"
            )))
        }
    }

    /// The spend held at `address` by its close group, and the votes of the
    /// members that hold it (checked), if any member holds one.
    pub async fn spend_at(&self, address: XorName, genesis: &Key) -> Option<CertifiedSpend> {
        let group = self.lookup_group(&address).await;
        let answers = join_all(group.iter().map(|&peer| async move {
            match self.request(peer, Request::GetSpend { address }).await {
                Ok(Response::HeldSpend { spend, vote })
                    if key_to_peer(&vote.node) == Some(peer)
                        && vote.valid(genesis, &address, &spend.spend.hash())
                        && spend.verify().is_ok() =>
                {
                    Some((spend, vote))
                }
                _ => None,
            }
        }))
        .await;
        // The spend most members hold (a lying member cannot outvote them).
        let mut found: Vec<(SignedSpend, Vec<Vote>)> = Vec::new();
        for (spend, vote) in answers.into_iter().flatten() {
            let h = spend.spend.hash();
            match found.iter_mut().find(|(s, _)| s.spend.hash() == h) {
                Some((_, votes)) => votes.push(vote),
                None => found.push((spend, vec![vote])),
            }
        }
        found.sort_by_key(|(_, votes)| std::cmp::Reverse(votes.len()));
        let found = found.into_iter().next();
        let (spend, votes) = found?;
        let input = spend
            .spend
            .inputs
            .iter()
            .position(|i| spend_address(&i.id(genesis)) == address)?;
        let mut certs = vec![Certificate { votes: Vec::new() }; spend.spend.inputs.len()];
        certs[input].votes = votes;
        Some(CertifiedSpend { spend, certs })
    }
}

/// One member's answer, as the client acts on it.
enum Ask {
    /// Spent by another spend.
    Spent(SpendHash),
    /// The member names another sequencer.
    Other(PeerId),
    /// Worth asking again (just started, no answer).
    Retry(String),
    /// The spend breaks a rule.
    Fatal(SpendError),
}
