//! Choosing among copies: [`resolve`] says which record verified copies of
//! one address stand for, as a reader (or a replica settling a conflict)
//! does.

use std::collections::BTreeMap;

use super::{Hash, Record};

/// The record a set of verified copies of one address stands for, and how
/// many of the copies stand behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The record: the winning state, with the appends of every copy of its
    /// genesis.
    pub record: Record,
    /// Copies that hold its state or a state descending from it: how many
    /// replicas stand behind it.
    pub support: usize,
}

/// A distinct state in [`resolve`]: support, hash (lower first), a copy
/// holding it.
type Ranked<'a> = (usize, std::cmp::Reverse<Hash>, &'a Record);

fn best<'a, 'b>(pool: impl Iterator<Item = &'b Ranked<'a>>) -> Option<Ranked<'a>>
where
    'a: 'b,
{
    pool.max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1))).copied()
}

/// Picks what verified copies of one address stand for, as a reader (or a
/// replica settling a conflict) does: the genesis most copies hold (ties:
/// lowest id); on it, the state with the most *support* — copies holding it
/// or a state that descends from it ([`Record::descends_from`]); then, down
/// that line, the best-supported descendant, again and again (a write still
/// reaching the group), but only through states with at least `quorum`
/// support. `None` if no state has `quorum`. Ties between states on
/// different lines go to the lowest state hash, never to the higher
/// version: support decides, so a copy built on a write that failed to
/// reach a majority, or a former owner's fork, never outranks the line the
/// majority holds. A reader passes `quorum` 1; a replica settling passes
/// a majority of its group.
pub fn resolve(copies: &[Record], quorum: usize) -> Option<Resolved> {
    let mut votes: BTreeMap<Hash, usize> = BTreeMap::new();
    for c in copies {
        *votes.entry(c.genesis.id()).or_default() += 1;
    }
    let (&genesis, _) = votes
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
    let same: Vec<&Record> = copies
        .iter()
        .filter(|c| c.genesis.id() == genesis)
        .collect();
    // Distinct states, with a copy holding each and its support.
    let mut states: BTreeMap<Hash, &Record> = BTreeMap::new();
    for c in &same {
        states.entry(c.state.hash()).or_insert(c);
    }
    let support = |r: &Record| {
        same.iter()
            .filter(|c| c.state == r.state || c.descends_from(r))
            .count()
    };
    let ranked: Vec<Ranked<'_>> = states
        .iter()
        .map(|(h, r)| (support(r), std::cmp::Reverse(*h), *r))
        .filter(|e| e.0 >= quorum.max(1))
        .collect();
    let (mut backing, _, mut pick) = best(ranked.iter())?;
    while let Some((n, _, next)) = best(ranked.iter().filter(|e| e.2.descends_from(pick))) {
        (backing, pick) = (n, next);
    }
    let mut record = pick.clone();
    record.add_appends(same.iter().flat_map(|c| c.appends.iter()));
    Some(Resolved {
        record,
        support: backing,
    })
}
