//! The coin's rules: supply is conserved by any sequence of valid spends,
//! and no invalid spend, vote or certificate is accepted.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// A network: its genesis key and a close group of 5 voters that every
/// address maps to (the rules take the group as a membership test).
struct Net {
    genesis: SigningKey,
    voters: Vec<SigningKey>,
    /// What each address's voters hold: one spend per input, for ever.
    votes: BTreeMap<XorName, SpendHash>,
    /// Certified spends by hash.
    spends: BTreeMap<SpendHash, CertifiedSpend>,
    /// Unspent outputs: id → (input as a spender states it, its key).
    unspent: BTreeMap<OutputId, (Input, OneTimeKey)>,
}

impl Net {
    fn new(seed: u8) -> Self {
        let genesis = SigningKey::from_bytes(&[seed; 32]);
        let voters = (0..5u8)
            .map(|i| SigningKey::from_bytes(&[100 + i; 32]))
            .collect();
        let g = genesis.verifying_key().to_bytes();
        let mut unspent = BTreeMap::new();
        let input = Input {
            parent: Parent::Genesis,
            index: 0,
            amount: GENESIS_AMOUNT,
            owner: g,
        };
        unspent.insert(
            OutputId::genesis(&g),
            (input, OneTimeKey::from_signing_key(&genesis)),
        );
        Self {
            genesis,
            voters,
            votes: BTreeMap::new(),
            spends: BTreeMap::new(),
            unspent,
        }
    }

    fn g(&self) -> Key {
        self.genesis.verifying_key().to_bytes()
    }

    fn members(&self) -> Vec<Key> {
        self.voters
            .iter()
            .map(|k| k.verifying_key().to_bytes())
            .collect()
    }

    /// The parents `spend` needs, as a spender would send them.
    fn parents(&self, spend: &Spend) -> Vec<CertifiedSpend> {
        let mut out: Vec<CertifiedSpend> = Vec::new();
        for i in &spend.inputs {
            if let Parent::Spend(h) = i.parent
                && let Some(p) = self.spends.get(&h)
                && !out.contains(p)
            {
                out.push(p.clone());
            }
        }
        out
    }

    /// What a group's member checks before voting, then the votes (each
    /// member votes once per address), then the certificate check.
    fn submit(&mut self, signed: &SignedSpend) -> Result<CertifiedSpend, SpendError> {
        signed.verify()?;
        let spend = &signed.spend;
        let members = self.members();
        check_parents(spend, &self.g(), &self.parents(spend), quorum(5), |_| {
            |k: &Key| members.contains(k)
        })?;
        let hash = spend.hash();
        let addresses: Vec<XorName> = spend
            .inputs
            .iter()
            .map(|i| spend_address(&i.id(&spend.genesis)))
            .collect();
        for a in &addresses {
            if let Some(held) = self.votes.get(a)
                && *held != hash
            {
                return Err(SpendError::AlreadySpent(*held));
            }
        }
        let certs = addresses
            .iter()
            .map(|a| {
                self.votes.insert(*a, hash);
                Certificate {
                    votes: self
                        .voters
                        .iter()
                        .take(quorum(5))
                        .map(|k| Vote::sign(k, &spend.genesis, a, &hash))
                        .collect(),
                }
            })
            .collect();
        let certified = CertifiedSpend {
            spend: signed.clone(),
            certs,
        };
        certified.check(quorum(5), |_| |k: &Key| members.contains(k))?;
        Ok(certified)
    }

    /// Applies a certified spend to the unspent set, keeping the outputs
    /// paid to `wallet`.
    fn apply(&mut self, certified: CertifiedSpend, wallet: &WalletKeys) {
        let spend = &certified.spend.spend;
        let hash = spend.hash();
        for i in &spend.inputs {
            self.unspent.remove(&i.id(&spend.genesis));
        }
        for (n, o) in spend.outputs.iter().enumerate() {
            let key = wallet.owns(o).expect("paid to the test wallet");
            let input = Input {
                parent: Parent::Spend(hash),
                index: n as u32,
                amount: o.amount,
                owner: o.owner,
            };
            self.unspent
                .insert(OutputId::of(&hash, n as u32), (input, key));
        }
        self.spends.insert(hash, certified);
    }

    fn total(&self) -> u128 {
        self.unspent
            .values()
            .map(|(i, _)| u128::from(i.amount))
            .sum()
    }

    /// A valid spend of the unspent outputs picked by `pick` into outputs
    /// split by `cuts`.
    fn spend_of(&self, pick: &[usize], cuts: &[u64], wallet: &WalletKeys) -> Option<SignedSpend> {
        let all: Vec<&OutputId> = self.unspent.keys().collect();
        let mut chosen: Vec<OutputId> = pick.iter().map(|p| *all[p % all.len()]).collect();
        chosen.sort();
        chosen.dedup();
        chosen.truncate(MAX_INPUTS);
        let inputs: Vec<Input> = chosen.iter().map(|id| self.unspent[id].0).collect();
        let total: u64 = inputs.iter().map(|i| i.amount).sum();
        let mut amounts = Vec::new();
        let mut left = total;
        for c in cuts.iter().take(MAX_OUTPUTS - 1) {
            let a = 1 + c % left.max(1);
            if a >= left {
                break;
            }
            amounts.push(a);
            left -= a;
        }
        amounts.push(left);
        let outputs = amounts
            .iter()
            .map(|&a| wallet.address().pay(a))
            .collect::<Option<Vec<_>>>()?;
        let spend = Spend {
            genesis: self.g(),
            inputs,
            outputs,
            memo: vec![],
        };
        let keys: Vec<&OneTimeKey> = chosen.iter().map(|id| &self.unspent[id].1).collect();
        Some(SignedSpend::sign(spend, &keys))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn supply_is_conserved_by_any_sequence_of_valid_spends(
        steps in prop::collection::vec(
            (prop::collection::vec(any::<usize>(), 1..4), prop::collection::vec(any::<u64>(), 0..4)),
            1..6,
        )
    ) {
        let wallet = WalletKeys::from_secret(&[9; 32]);
        let mut net = Net::new(1);
        for (pick, cuts) in steps {
            let signed = net.spend_of(&pick, &cuts, &wallet).unwrap();
            let certified = net.submit(&signed).unwrap();
            net.apply(certified, &wallet);
            prop_assert_eq!(net.total(), u128::from(GENESIS_AMOUNT));
        }
    }

    #[test]
    fn no_invalid_spend_is_accepted_and_none_changes_anything(
        steps in prop::collection::vec((any::<usize>(), any::<u64>(), 0u8..11), 1..6)
    ) {
        let wallet = WalletKeys::from_secret(&[9; 32]);
        let thief = WalletKeys::from_secret(&[10; 32]);
        let mut net = Net::new(2);
        // Some outputs to work with.
        let first = net.spend_of(&[0], &[7, 1 << 40, 3], &wallet).unwrap();
        let c = net.submit(&first).unwrap();
        net.apply(c, &wallet);
        for (pick, amount, how) in steps {
            let good = net.spend_of(&[pick], &[amount], &wallet).unwrap();
            let mut bad = good.clone();
            match how {
                // More out than in.
                0 => bad.spend.outputs[0].amount += 1,
                // Less out than in.
                1 => if bad.spend.outputs[0].amount > 1 {
                    bad.spend.outputs[0].amount -= 1;
                } else {
                    bad.spend.outputs.push(wallet.address().pay(1).unwrap());
                },
                // An amount that would overflow a u64 sum.
                2 => { bad.spend.outputs.push(wallet.address().pay(u64::MAX).unwrap()); }
                // The same input twice.
                3 => { let i = bad.spend.inputs[0]; bad.spend.inputs.push(i); bad.sigs.push(bad.sigs[0].clone()); }
                // Signed by the wrong key.
                4 => {
                    let k = thief.owns(&thief.address().pay(1).unwrap()).unwrap();
                    bad = SignedSpend::sign(bad.spend.clone(), &[&k]);
                }
                // Another network.
                5 => {
                    bad.spend.genesis = [7; 32];
                }
                // An input that claims more than its parent made.
                6 => { bad.spend.inputs[0].amount += 1; bad.spend.outputs[0].amount += 1; }
                // An input from a parent nobody certified.
                7 => { bad.spend.inputs[0].parent = Parent::Spend(SpendHash([3; 32])); }
                // An amount of zero.
                8 => { bad.spend.outputs.push(Output { amount: 0, ..bad.spend.outputs[0] }); }
                // A replay of a spend already certified, with other outputs:
                // a double spend.
                9 => {
                    let mut conflict = good.spend.clone();
                    conflict.outputs[0] = wallet.address().pay(conflict.outputs[0].amount).unwrap();
                    let keys: Vec<&OneTimeKey> = conflict.inputs.iter()
                        .map(|i| &net.unspent[&i.id(&conflict.genesis)].1)
                        .collect();
                    let conflict = SignedSpend::sign(conflict, &keys);
                    let c = net.submit(&good).unwrap();
                    net.apply(c, &wallet);
                    bad = conflict;
                }
                // Unsigned.
                _ => bad.sigs.clear(),
            }
            let before = (net.total(), net.unspent.len(), net.votes.len());
            // Re-sign where the change was to the spend and the key is ours,
            // so that the rule caught is the one meant, not the signature.
            if matches!(how, 0 | 1 | 2 | 5 | 6 | 7 | 8) {
                let keys: Vec<&OneTimeKey> = bad.spend.inputs.iter()
                    .filter_map(|i| net.unspent.get(&i.id(&good.spend.genesis)).map(|u| &u.1))
                    .collect();
                if keys.len() == bad.spend.inputs.len() {
                    bad = SignedSpend::sign(bad.spend.clone(), &keys);
                }
            }
            let refused = net.submit(&bad);
            prop_assert!(refused.is_err(), "case {} accepted", how);
            if how == 9 {
                prop_assert_eq!(refused.err(), Some(SpendError::AlreadySpent(good.spend.hash())));
            }
            prop_assert_eq!(before, (net.total(), net.unspent.len(), net.votes.len()));
            prop_assert_eq!(net.total(), u128::from(GENESIS_AMOUNT));
        }
    }
}

#[test]
fn a_forged_or_short_certificate_is_refused() {
    let wallet = WalletKeys::from_secret(&[9; 32]);
    let mut net = Net::new(3);
    let s = net.spend_of(&[0], &[5], &wallet).unwrap();
    let c = net.submit(&s).unwrap();
    let members = net.members();
    let ok = |_: &XorName| |k: &Key| members.contains(k);
    c.check(quorum(5), ok).unwrap();
    // Votes by nodes outside the group.
    let mut forged = c.clone();
    let hash = s.spend.hash();
    let address = spend_address(&s.spend.inputs[0].id(&s.spend.genesis));
    forged.certs[0].votes = (0..4u8)
        .map(|i| {
            Vote::sign(
                &SigningKey::from_bytes(&[200 + i; 32]),
                &net.g(),
                &address,
                &hash,
            )
        })
        .collect();
    assert!(matches!(
        forged.check(quorum(5), ok),
        Err(SpendError::NotEnoughVotes { have: 0, need: 4 })
    ));
    // Three of four, or one voter counted twice.
    let mut short = c.clone();
    short.certs[0].votes.truncate(3);
    assert!(short.check(quorum(5), ok).is_err());
    let mut twice = c.clone();
    let v = twice.certs[0].votes[0].clone();
    twice.certs[0].votes[1] = v;
    assert!(twice.check(quorum(5), ok).is_err());
    // A vote for another address or spend.
    let mut moved = c.clone();
    moved.certs[0].votes[0] = Vote::sign(&net.voters[0], &net.g(), &XorName([1; 32]), &hash);
    assert!(moved.check(quorum(5), ok).is_err());
    // Round trip of the encoding.
    assert_eq!(CertifiedSpend::decode(&c.encode()).unwrap(), c);
}

#[test]
fn amounts_parse_exactly_and_refuse_what_is_not_one() {
    assert_eq!(parse_amount("1").unwrap(), NANOS_PER_COIN);
    assert_eq!(parse_amount("0.5").unwrap(), NANOS_PER_COIN / 2);
    assert_eq!(parse_amount(".000000001").unwrap(), 1);
    assert_eq!(parse_amount("4294967296").unwrap(), TOTAL_SUPPLY);
    for bad in [
        "",
        ".",
        "-1",
        "1e9",
        "0.0000000001",
        "4294967297",
        "99999999999999999999",
        "1,5",
        "+1",
    ] {
        assert!(parse_amount(bad).is_err(), "{bad}");
    }
    assert_eq!(format_amount(1), "0.000000001");
    assert_eq!(format_amount(1_500_000_000), "1.5");
    assert_eq!(format_amount(GENESIS_AMOUNT), "1288490188.8");
    for n in [0, 1, 999, NANOS_PER_COIN, TOTAL_SUPPLY, 123_456_789_012] {
        assert_eq!(parse_amount(&format_amount(n)).unwrap(), n);
    }
}

#[test]
fn the_genesis_output_is_spent_by_the_genesis_key_only_and_for_its_amount() {
    let wallet = WalletKeys::from_secret(&[9; 32]);
    let net = Net::new(4);
    let members = net.members();
    let group = |_: &XorName| |k: &Key| members.contains(k);
    let good = net.spend_of(&[0], &[], &wallet).unwrap();
    check_parents(&good.spend, &net.g(), &[], quorum(5), group).unwrap();
    let mut more = good.spend.clone();
    more.inputs[0].amount += 1;
    assert!(check_parents(&more, &net.g(), &[], quorum(5), group).is_err());
    let mut other = good.spend.clone();
    other.inputs[0].owner = wallet.address().spend;
    assert!(check_parents(&other, &net.g(), &[], quorum(5), group).is_err());
    // On another network.
    assert_eq!(
        check_parents(&good.spend, &[8; 32], &[], quorum(5), group),
        Err(SpendError::WrongNetwork)
    );
}
