use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

fn pk(i: u8) -> PublicKey {
    key(i).verifying_key().to_bytes()
}

fn owners_of(mask: u8) -> Vec<PublicKey> {
    let mut v: Vec<PublicKey> = (0..3).filter(|i| mask & (1 << i) != 0).map(pk).collect();
    v.sort();
    v
}

fn new_record(owners: &[u8], threshold: u8, public_append: bool, creator: u8) -> Record {
    let mut owners: Vec<PublicKey> = owners.iter().map(|i| pk(*i)).collect();
    owners.sort();
    let mut c = Signed::new(Create {
        name: b"test".to_vec(),
        tag: 7,
        owners,
        threshold,
        public_append,
    });
    c.sign(&key(creator));
    Record::create(c).unwrap()
}

fn op(r: &Record, change: Change, signers: &[u8]) -> Signed<Op> {
    let result = r.state.apply(&change).map(|s| s.hash()).unwrap_or_default();
    let mut o = Signed::new(Op {
        address: r.address(),
        replaces: r.state.version,
        prev: r.state.hash(),
        change,
        result,
    });
    for s in signers {
        o.sign(&key(*s));
    }
    o
}

fn set(k: &str, v: &str) -> Change {
    Change::Set {
        key: k.into(),
        value: v.into(),
    }
}

#[test]
fn owners_change_and_transfer() {
    let mut r = new_record(&[0], 1, false, 0);
    let w = Write::Op(op(&r, set("a", "1"), &[0]));
    assert_eq!(r.apply(&w), Ok(Applied::Changed));
    assert_eq!(
        r.apply(&w),
        Ok(Applied::AlreadyApplied),
        "retry is idempotent"
    );
    // Transfer to key 1.
    let t = Write::Op(op(
        &r,
        Change::Owners {
            owners: vec![pk(1)],
            threshold: 1,
        },
        &[0],
    ));
    r.apply(&t).unwrap();
    r.verify(&r.address()).unwrap();
    let by_old = Write::Op(op(&r, set("a", "2"), &[0]));
    assert_eq!(r.apply(&by_old), Err(RecordError::NotOwner));
    let by_new = Write::Op(op(&r, set("a", "2"), &[1]));
    assert_eq!(r.apply(&by_new), Ok(Applied::Changed));
    assert_eq!(r.state.entries[b"a".as_slice()], b"2");
    r.verify(&r.address()).unwrap();
    // A replay of an applied op is refused as stale.
    let before = r.clone();
    let Write::Op(replayed) = &w else { panic!() };
    assert_eq!(
        r.apply(&Write::Op(replayed.clone())),
        Err(RecordError::WrongVersion {
            current: 3,
            given: 0
        })
    );
    assert_eq!(r, before);
}

#[test]
fn two_of_three() {
    let mut r = new_record(&[0, 1, 2], 2, false, 0);
    let one = Write::Op(op(&r, set("k", "v"), &[2]));
    assert_eq!(
        r.apply(&one),
        Err(RecordError::NotEnoughSigners { have: 1, need: 2 })
    );
    let two = Write::Op(op(&r, set("k", "v"), &[2, 0]));
    assert_eq!(r.apply(&two), Ok(Applied::Changed));
    r.verify(&r.address()).unwrap();
}

#[test]
fn forged_and_outsider_signatures() {
    let mut r = new_record(&[0], 1, false, 0);
    let mut forged = op(&r, set("k", "v"), &[0]);
    forged.body.change = set("k", "evil");
    forged.body.result = r.state.apply(&forged.body.change).unwrap().hash();
    assert_eq!(r.apply(&Write::Op(forged)), Err(RecordError::BadSignature));
    let outsider = op(&r, set("k", "v"), &[3]);
    assert_eq!(r.apply(&Write::Op(outsider)), Err(RecordError::NotOwner));
    let mut wrong_result = op(&r, set("k", "v"), &[]);
    wrong_result.body.result = [9; 32];
    wrong_result.sign(&key(0));
    assert_eq!(
        r.apply(&Write::Op(wrong_result)),
        Err(RecordError::ResultMismatch)
    );
    assert_eq!(r.state.version, 0);
}

#[test]
fn oversized_values_and_records_are_refused() {
    let mut r = new_record(&[0], 1, false, 0);
    let big = Change::Set {
        key: b"k".to_vec(),
        value: vec![0; MAX_VALUE_LEN + 1],
    };
    let w = Write::Op(op(&r, big, &[0]));
    assert_eq!(r.apply(&w), Err(RecordError::TooLarge(Limit::Value)));
    // Fill towards the record size limit with maximal values.
    let mut refused = None;
    for i in 0..16u32 {
        let c = Change::Set {
            key: i.to_be_bytes().to_vec(),
            value: vec![1; MAX_VALUE_LEN],
        };
        if let Err(e) = r.apply(&Write::Op(op(&r, c, &[0]))) {
            refused = Some(e);
            break;
        }
    }
    assert_eq!(refused, Some(RecordError::TooLarge(Limit::RecordSize)));
    assert!(r.encode().unwrap().len() <= MAX_RECORD_SIZE);
    r.verify(&r.address()).unwrap();
}

fn append(r: &Record, value: &str, nonce: u64, signer: u8) -> Signed<Append> {
    let mut a = Signed::new(Append {
        address: r.address(),
        value: value.into(),
        nonce,
    });
    a.sign(&key(signer));
    a
}

#[test]
fn appends_commute_and_removals_stick() {
    let base = new_record(&[0], 1, true, 0);
    let (a, b) = (append(&base, "x", 1, 2), append(&base, "y", 2, 3));
    let mut r1 = base.clone();
    let mut r2 = base.clone();
    r1.apply(&Write::Append(a.clone())).unwrap();
    r2.apply(&Write::Append(b.clone())).unwrap();
    assert_eq!(r1.merge(&r2), Merge::Updated);
    assert_eq!(r2.merge(&r1), Merge::Updated);
    assert_eq!(r1, r2);
    assert_eq!(r1.appends.len(), 2);
    r1.verify(&r1.address()).unwrap();
    // Owners remove one; an old copy cannot bring it back.
    let rm = Write::Op(op(&r1, Change::RemoveAppends { ids: vec![a.id()] }, &[0]));
    r1.apply(&rm).unwrap();
    assert_eq!(r1.appends, vec![b.clone()]);
    assert_eq!(r1.merge(&r2), Merge::Unchanged);
    assert_eq!(r1.appends, vec![b]);
    assert_eq!(r1.apply(&Write::Append(a)), Err(RecordError::AppendRemoved));
    // Owners-only records refuse strangers' appends.
    let mut closed = new_record(&[0], 1, false, 0);
    let stranger = append(&closed, "spam", 1, 3);
    assert_eq!(
        closed.apply(&Write::Append(stranger)),
        Err(RecordError::AppendNotAllowed)
    );
    closed
        .apply(&Write::Append(append(&closed, "note", 1, 0)))
        .unwrap();
}

fn winner(copies: &[Record]) -> Record {
    resolve(copies, 1).unwrap().record
}

#[test]
fn first_create_wins_and_resolve_follows_the_majority() {
    let a = new_record(&[0], 1, false, 0);
    let b = new_record(&[1], 1, false, 1);
    assert_eq!(a.address(), b.address());
    let mut held = a.clone();
    assert_eq!(
        held.apply(&Write::Create(b.genesis.clone())),
        Err(RecordError::AlreadyExists)
    );
    assert_eq!(
        held.apply(&Write::Create(a.genesis.clone())),
        Ok(Applied::AlreadyApplied)
    );
    assert_eq!(held.merge(&b), Merge::Conflict);
    let won = resolve(&[b.clone(), a.clone(), a.clone()], 1).unwrap();
    assert_eq!((won.record.genesis, won.support), (a.genesis.clone(), 2));
    // Same version, different states: the majority's state wins.
    let mut x = a.clone();
    x.apply(&Write::Op(op(&a, set("k", "x"), &[0]))).unwrap();
    let mut y = a.clone();
    y.apply(&Write::Op(op(&a, set("k", "y"), &[0]))).unwrap();
    assert_eq!(x.clone().merge(&y), Merge::Conflict);
    assert_eq!(winner(&[x.clone(), y.clone(), y.clone()]), y);
    // A write still reaching the group: its state follows the majority's.
    let r = resolve(&[a.clone(), y.clone(), a.clone()], 1).unwrap();
    assert_eq!((r.record, r.support), (y.clone(), 1));
    // A replica settling with a quorum of 2 stops where two copies agree.
    let r = resolve(&[a.clone(), y.clone(), a.clone()], 2).unwrap();
    assert_eq!((r.record.state, r.support), (a.state.clone(), 3));
    let mut behind = a.clone();
    assert_eq!(behind.merge(&y), Merge::Updated);
    assert_eq!(behind, y);
    assert_eq!(
        behind.merge(&a),
        Merge::Unchanged,
        "older copies give nothing"
    );
}

#[test]
fn a_higher_version_does_not_beat_the_majority() {
    // x was acknowledged by a majority; y lost the race on a minority and
    // someone built on it: y2 is further ahead but on the losing branch.
    let a = new_record(&[0], 1, false, 0);
    let mut x = a.clone();
    x.apply(&Write::Op(op(&a, set("k", "x"), &[0]))).unwrap();
    let mut y2 = a.clone();
    y2.apply(&Write::Op(op(&a, set("k", "y"), &[0]))).unwrap();
    y2.apply(&Write::Op(op(&y2, set("k", "y2"), &[0]))).unwrap();
    assert_eq!(
        winner(&[x.clone(), x.clone(), x.clone(), y2.clone(), y2.clone()]),
        x
    );
    let mut replica = x.clone();
    assert_eq!(
        replica.merge(&y2),
        Merge::Conflict,
        "not a provable next step"
    );
    assert_eq!(replica, x);
}

#[test]
fn signatures_are_canonical_and_retries_idempotent() {
    let mut r = new_record(&[0, 1, 2], 1, false, 0);
    let mut o = op(&r, set("k", "v"), &[0, 1]);
    o.sigs.reverse();
    assert_eq!(r.apply(&Write::Op(o.clone())), Err(RecordError::Malformed));
    let mut dup = op(&r, set("k", "v"), &[0]);
    dup.sigs.push(dup.sigs[0].clone());
    assert_eq!(r.apply(&Write::Op(dup)), Err(RecordError::Malformed));
    o.sigs.reverse();
    assert_eq!(r.apply(&Write::Op(o.clone())), Ok(Applied::Changed));
    // The same operation with another signer set is a retry, not a change.
    let mut other = o.clone();
    other.sigs.clear();
    other.sign(&key(2));
    assert_eq!(r.apply(&Write::Op(other)), Ok(Applied::AlreadyApplied));
    assert_eq!(r.state.version, 1);
}

#[test]
fn an_old_owner_cannot_fork_past_a_transfer() {
    let mut honest = new_record(&[0], 1, false, 0);
    let base = honest.clone();
    honest
        .apply(&Write::Op(op(
            &honest,
            Change::Owners {
                owners: vec![pk(1)],
                threshold: 1,
            },
            &[0],
        )))
        .unwrap();
    honest
        .apply(&Write::Op(op(&honest, set("k", "new owner"), &[1])))
        .unwrap();
    // The old owner keeps signing on the pre-transfer copy, even inventing
    // an ownership change of its own, and reaches a higher version.
    let mut fork = base;
    fork.apply(&Write::Op(op(
        &fork,
        Change::Owners {
            owners: vec![pk(0), pk(2)],
            threshold: 1,
        },
        &[0],
    )))
    .unwrap();
    for i in 0..3 {
        fork.apply(&Write::Op(op(&fork, set("k", &i.to_string()), &[0])))
            .unwrap();
    }
    fork.verify(&fork.address()).unwrap();
    assert!(fork.state.version > honest.state.version);
    // One lying node serves the fork; the group holds the honest record.
    let copies = [fork.clone(), honest.clone(), honest.clone(), honest.clone()];
    assert_eq!(winner(&copies), honest);
    let mut replica = honest.clone();
    assert_eq!(replica.merge(&fork), Merge::Conflict);
    assert_eq!(replica, honest);
}

#[test]
fn verify_rejects_tampering() {
    let mut r = new_record(&[0], 1, false, 0);
    r.apply(&Write::Op(op(&r, set("k", "v"), &[0]))).unwrap();
    let addr = r.address();
    r.verify(&addr).unwrap();
    let mut t = r.clone();
    t.state.entries.insert(b"k".to_vec(), b"evil".to_vec());
    assert_eq!(t.verify(&addr), Err(RecordError::BrokenChain));
    let mut t = r.clone();
    t.state.owners = vec![pk(3)];
    assert!(t.verify(&addr).is_err());
    let mut t = r.clone();
    t.state.version = 5;
    assert_eq!(t.verify(&addr), Err(RecordError::BrokenChain));
    assert_eq!(r.verify(&XorName([0; 32])), Err(RecordError::WrongAddress));
    // A record re-signed by an attacker for the same state is not the owner's.
    let mut t = r.clone();
    let mut last = t.last.take().unwrap();
    last.sigs.clear();
    last.sign(&key(3));
    t.last = Some(last);
    assert_eq!(t.verify(&addr), Err(RecordError::NotOwner));
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    /// An owner op; `stale` shifts the version it claims to replace.
    Op {
        change: u8,
        key: u8,
        signers: u8,
        stale: i8,
    },
    /// An append signed by key `by`.
    Append { by: u8, nonce: u8 },
    /// Re-send the n-th accepted op.
    Replay(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..4, 0u8..3, 0u8..16, prop_oneof![4 => Just(0i8), 1 => -2i8..3])
            .prop_map(|(change, key, signers, stale)| Step::Op { change, key, signers, stale }),
        2 => (0u8..4, any::<u8>()).prop_map(|(by, nonce)| Step::Append { by, nonce }),
        1 => any::<u8>().prop_map(Step::Replay),
    ]
}

/// The simple model the rules are checked against.
#[derive(Debug, Default, PartialEq)]
struct Model {
    version: u64,
    owners: Vec<PublicKey>,
    threshold: u8,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    appends: usize,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_histories_follow_the_model(
        owner_mask in 1u8..8,
        threshold in 1u8..3,
        public_append in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let first: Vec<u8> = (0..3).filter(|i| owner_mask & (1 << i) != 0).collect();
        let threshold = threshold.min(first.len() as u8);
        let mut r = new_record(&first, threshold, public_append, first[0]);
        let mut m = Model { owners: owners_of(owner_mask), threshold, ..Model::default() };
        let mut accepted: Vec<Signed<Op>> = Vec::new();
        for s in steps {
            let before = r.clone();
            match s {
                Step::Op { change, key: k, signers, stale } => {
                    let entry = vec![k];
                    let change = match change {
                        0 => Change::Set { key: entry.clone(), value: vec![k; 3] },
                        1 => Change::Remove { key: entry.clone() },
                        2 => {
                            let mask = (signers >> 1) & 7;
                            Change::Owners { owners: owners_of(mask), threshold: 1 + (k % 2) }
                        }
                        _ => Change::Set { key: entry.clone(), value: vec![] },
                    };
                    let signer_ids: Vec<u8> = (0..4).filter(|i| signers & (1 << i) != 0).collect();
                    let mut o = op(&r, change.clone(), &[]);
                    o.body.replaces = (r.state.version as i64 + stale as i64).max(0) as u64;
                    for i in &signer_ids { o.sign(&key(*i)); }
                    let result = r.apply(&Write::Op(o.clone()));
                    let owner_signers = signer_ids.iter().filter(|i| m.owners.contains(&pk(**i))).count();
                    let owners_ok = match &change {
                        Change::Owners { owners, threshold } =>
                            !owners.is_empty() && usize::from(*threshold) <= owners.len(),
                        _ => true,
                    };
                    let valid = o.body.replaces == m.version
                        && owner_signers >= usize::from(m.threshold)
                        && owners_ok;
                    prop_assert_eq!(result.is_ok(), valid, "{:?} -> {:?}", change, result);
                    if valid {
                        m.version += 1;
                        match change {
                            Change::Set { key, value } => { m.entries.insert(key, value); }
                            Change::Remove { key } => { m.entries.remove(&key); }
                            Change::Owners { owners, threshold } => {
                                m.owners = owners;
                                m.threshold = threshold;
                                if !public_append {
                                    // Appends by the old owners no longer count.
                                    m.appends = r.appends.len();
                                }
                            }
                            Change::RemoveAppends { .. } => {}
                        }
                        accepted.push(o);
                    }
                }
                Step::Append { by, nonce } => {
                    let a = append(&r, "hello", nonce.into(), by);
                    let fresh = !r.appends.iter().any(|x| x.id() == a.id());
                    let result = r.apply(&Write::Append(a));
                    let allowed = public_append
                        || (m.threshold == 1 && m.owners.contains(&pk(by)));
                    prop_assert_eq!(result.is_ok(), allowed);
                    if allowed && fresh { m.appends += 1; }
                }
                Step::Replay(n) => {
                    if let Some(o) = accepted.get(n as usize % accepted.len().max(1)) {
                        let result = r.apply(&Write::Op(o.clone()));
                        if r.last.as_ref() == Some(o) {
                            prop_assert_eq!(result, Ok(Applied::AlreadyApplied));
                        } else {
                            prop_assert!(
                                matches!(result, Err(RecordError::WrongVersion { .. })),
                                "replay accepted: {:?}", result
                            );
                        }
                    }
                }
            }
            if r.state.version == before.state.version && r.appends.len() == before.appends.len() {
                prop_assert_eq!(&r, &before, "a refused write changed the record");
            }
            prop_assert_eq!(r.state.version, m.version);
            prop_assert_eq!(&r.state.owners, &m.owners);
            prop_assert_eq!(r.state.threshold, m.threshold);
            prop_assert_eq!(&r.state.entries, &m.entries);
            prop_assert_eq!(r.appends.len(), m.appends);
            prop_assert_eq!(r.verify(&r.address()), Ok(()));
            let round = Record::decode(&r.encode().unwrap()).unwrap();
            prop_assert_eq!(&round, &r);
        }
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(w) = Write::decode(&bytes) {
            let mut r = new_record(&[0], 1, true, 0);
            let _ = r.apply(&w);
        }
        if let Ok(r) = Record::decode(&bytes) {
            let _ = r.verify(&r.address());
        }
    }

    #[test]
    fn damaged_records_never_verify_as_something_else(
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut r = new_record(&[0, 1], 1, true, 0);
        r.apply(&Write::Op(op(&r, set("k", "v"), &[1]))).unwrap();
        r.apply(&Write::Append(append(&r, "a", 1, 2))).unwrap();
        let mut bytes = r.encode().unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(d) = Record::decode(&bytes)
            && d.verify(&r.address()).is_ok()
        {
            // Only a flip that changes nothing signed may pass (e.g. none).
            prop_assert_eq!(d.state, r.state);
        }
    }
}

/// `base` followed by `n` sets of `tag`-marked values.
fn line(base: &Record, n: usize, tag: &str) -> Vec<Record> {
    let mut out = vec![base.clone()];
    for i in 0..n {
        let mut next = out[out.len() - 1].clone();
        let o = op(&next, set("k", &format!("{tag}{i}")), &[0]);
        next.apply(&Write::Op(o)).unwrap();
        out.push(next);
    }
    out
}

#[test]
fn support_follows_lines_not_version_numbers() {
    let base = new_record(&[0], 1, false, 0);
    let x = line(&base, 6, "x");
    let y = line(&x[2], 8, "y"); // a minority branch from x[2], further ahead
    // A lagging replica, two up to date, two on the branch.
    let copies = [
        x[4].clone(),
        x[6].clone(),
        x[6].clone(),
        y[8].clone(),
        y[8].clone(),
    ];
    assert!(x[6].descends_from(&x[4]) && !y[8].descends_from(&x[4]));
    let r = resolve(&copies, 1).unwrap();
    assert_eq!((r.record, r.support), (x[6].clone(), 2));
    let r = resolve(&copies, 3).unwrap();
    assert_eq!((r.record.state.clone(), r.support), (x[4].state.clone(), 3));
    // Lagging at the split itself, x[2]'s line holds all five copies and
    // neither branch was ever on three replicas: either may be read.
    let copies = [
        x[2].clone(),
        x[6].clone(),
        x[6].clone(),
        y[8].clone(),
        y[8].clone(),
    ];
    let r = resolve(&copies, 1).unwrap();
    assert!(r.record.descends_from(&x[2]));
    let r = resolve(&copies, 3).unwrap();
    assert_eq!((r.record.state.clone(), r.support), (x[2].state.clone(), 5));
    let mut lagging = x[2].clone();
    assert_eq!(
        lagging.merge(&x[6]),
        Merge::Updated,
        "catches up several steps"
    );
    assert_eq!(lagging, x[6]);
    assert_eq!(lagging.merge(&y[8]), Merge::Conflict);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever a majority of replicas holds (some lagging behind it, some
    /// ahead of it), and wherever a minority branch splits off and however
    /// far it runs, a reader never gets a state that lacks the majority's.
    #[test]
    fn the_acknowledged_state_is_never_lost(
        n in 1usize..7,
        acked in 0usize..7,
        split in 0usize..7,
        branch in 1usize..9,
        ahead in proptest::collection::vec(0usize..3, 3),
        minority in proptest::collection::vec(0usize..9, 2),
    ) {
        let acked = acked.min(n);
        let split = split.min(n.saturating_sub(1));
        let base = new_record(&[0], 1, false, 0);
        let x = line(&base, n, "x");
        let y = line(&x[split], branch, "y");
        let mut copies: Vec<Record> = ahead
            .iter()
            .map(|a| x[(acked + a).min(n)].clone())
            .collect();
        copies.extend(minority.iter().map(|m| y[1 + m % branch].clone()));
        // A reader (quorum 1) and a settling replica (quorum 3) alike.
        for quorum in [1, 3] {
            let r = resolve(&copies, quorum).unwrap();
            let keeps = r.record.state == x[acked].state || r.record.descends_from(&x[acked]);
            prop_assert!(keeps, "picked version {} off the majority's line", r.record.state.version);
            prop_assert!(r.support >= quorum);
        }
    }
}

#[test]
fn settling_with_few_answers_never_follows_a_minority() {
    // The acknowledged state a is on three replicas; b raced it at the same
    // version onto one; p is where both started. A settling replica that
    // heard only a, b and p: p's line has a majority, neither a nor b does.
    let p = new_record(&[0], 1, false, 0);
    let mut a = p.clone();
    a.apply(&Write::Op(op(&p, set("k", "a"), &[0]))).unwrap();
    let mut b = p.clone();
    b.apply(&Write::Op(op(&p, set("k", "b"), &[0]))).unwrap();
    let r = resolve(&[a.clone(), b.clone(), p.clone()], 3).unwrap();
    assert_eq!((r.record.state.clone(), r.support), (p.state.clone(), 3));
    assert!(a.descends_from(&r.record), "a replica holding a keeps it");
    assert!(resolve(&[a.clone(), b.clone()], 3).is_none());
    // With every copy heard, a's majority shows.
    let all = [a.clone(), a.clone(), a.clone(), b.clone(), p.clone()];
    let r = resolve(&all, 3).unwrap();
    assert_eq!((r.record.clone(), r.support), (a.clone(), 3));
    // A replica on another line, behind or ahead, is a conflict to settle.
    let mut on_b = b.clone();
    assert_eq!(on_b.merge(&a), Merge::Conflict);
    let mut b2 = b.clone();
    b2.apply(&Write::Op(op(&b, set("k", "b2"), &[0]))).unwrap();
    let mut on_a = a.clone();
    assert_eq!(on_a.merge(&b2), Merge::Conflict);
    let mut ahead = b2.clone();
    assert_eq!(ahead.merge(&a), Merge::Conflict, "older, but not its past");
    assert_eq!(ahead.merge(&b), Merge::Unchanged, "its own past");
}

#[test]
fn ownership_history_is_bound_to_the_state() {
    let mut r = new_record(&[0], 1, false, 0);
    r.apply(&Write::Op(op(&r, set("k", "v"), &[0]))).unwrap();
    let transfer = Change::Owners {
        owners: vec![pk(1)],
        threshold: 1,
    };
    r.apply(&Write::Op(op(&r, transfer.clone(), &[0]))).unwrap();
    r.verify(&r.address()).unwrap();
    // The former owner invents the same transfer at another version and
    // attaches it to the honest state: it does not verify.
    let base = new_record(&[0], 1, false, 0);
    let invented = op(&base, transfer, &[0]);
    let mut forged = r.clone();
    forged.owner_changes = vec![invented];
    assert_eq!(forged.verify(&r.address()), Err(RecordError::BrokenChain));
}
