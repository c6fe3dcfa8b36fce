//! Spends on an in-process network of real nodes on 127.0.0.1 (issue 17,
//! `docs/DESIGN-currency.md`): the genesis output is split, 100 pairs of
//! conflicting spends race and each pair gives exactly one certified
//! spend, a certified output can be spent on, and a spend with a forged
//! parent, of another network, or of an output already spent is refused.

use std::sync::Arc;

use safe_client::Connection;
use safe_client::coin::CoinError;
use safe_client::pay::Coin;
use safe_protocol::coin::{
    Certificate, CertifiedSpend, GENESIS_AMOUNT, NANOS_PER_COIN, OneTimeKey, SignedSpend, Spend,
    SpendError, Vote, WalletKeys, spend_address,
};
use safe_protocol::messages::{Request, Response};
use safe_protocol::mutable::SigningKey;
use safe_testkit::{client, start, testnet_config};

/// A spend of `coins` paying `amounts` to `to` (the rest back to `change`).
fn pay(
    genesis: [u8; 32],
    coins: &[&Coin],
    to: &WalletKeys,
    amounts: &[u64],
    change: &WalletKeys,
) -> (SignedSpend, Vec<CertifiedSpend>) {
    let total: u64 = coins.iter().map(|c| c.input.amount).sum();
    let paid: u64 = amounts.iter().sum();
    let mut outputs: Vec<_> = amounts
        .iter()
        .map(|&a| to.address().pay(a).unwrap())
        .collect();
    if total > paid {
        outputs.push(change.address().pay(total - paid).unwrap());
    }
    let spend = Spend {
        genesis,
        inputs: coins.iter().map(|c| c.input).collect(),
        outputs,
        memo: Vec::new(),
    };
    let keys: Vec<&OneTimeKey> = coins.iter().map(|c| &c.key).collect();
    let parents = coins.iter().filter_map(|c| c.parent.clone()).collect();
    (SignedSpend::sign(spend, &keys), parents)
}

/// What the first member of input 0's close group answers to `spend`.
async fn ask_group(
    c: &Connection,
    spend: &SignedSpend,
    parents: &[CertifiedSpend],
    genesis: &[u8; 32],
) -> Response {
    let address = spend_address(&spend.spend.inputs[0].id(genesis));
    let group = c.lookup_group(&address).await;
    c.request(
        group[0],
        Request::Spend {
            spend: spend.clone(),
            parents: parents.to_vec(),
            input: 0,
            sequencer: None,
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_conflicting_spends_give_exactly_one_certified_spend_each() {
    let dir = tempfile::tempdir().unwrap();
    let genesis_key = SigningKey::from_bytes(&[42; 32]);
    let genesis = genesis_key.verifying_key().to_bytes();
    let mut config = testnet_config(dir.path(), 12);
    config.node.genesis = Some(genesis);
    let net = start(config).await;
    let c: Arc<Connection> = client(&net).await;
    let alice = WalletKeys::from_secret(&[1; 32]);
    let bob = WalletKeys::from_secret(&[2; 32]);
    let carol = WalletKeys::from_secret(&[3; 32]);

    // The genesis output, split into 50 coins for alice and the rest.
    let genesis_coin = Coin::genesis(&genesis_key);
    let (first, parents) = pay(
        genesis,
        &[&genesis_coin],
        &alice,
        &[NANOS_PER_COIN; 50],
        &alice,
    );
    // Nodes vote only once they have been up a moment: the client retries.
    let first = c.certify(&first, &parents).await.unwrap();
    let mut coins = Coin::found(&first, &alice);
    assert_eq!(coins.len(), 51);
    let rest = coins.pop().unwrap();
    assert_eq!(rest.input.amount, GENESIS_AMOUNT - 50 * NANOS_PER_COIN);
    let (second, parents) = pay(genesis, &[&rest], &alice, &[NANOS_PER_COIN; 50], &alice);
    let second = c.certify(&second, &parents).await.unwrap();
    let mut more = Coin::found(&second, &alice);
    let change = more.pop().unwrap();
    coins.extend(more);
    assert_eq!(coins.len(), 100);
    // Supply: every nano of the genesis output is in alice's outputs.
    let total: u64 = coins.iter().map(|c| c.input.amount).sum::<u64>() + change.input.amount;
    assert_eq!(total, GENESIS_AMOUNT);

    // The genesis output cannot be spent again.
    let (again, parents) = pay(genesis, &[&genesis_coin], &carol, &[1], &carol);
    match c.certify(&again, &parents).await {
        Err(CoinError::DoubleSpend { by, .. }) => assert_eq!(by, first.spend.spend.hash()),
        other => panic!("genesis spent twice: {other:?}"),
    }

    // 100 pairs of conflicting spends, each pair sent at the same moment
    // (ten pairs at a time): exactly one of each pair is certified.
    let mut winners = Vec::new();
    for batch in coins.chunks(10) {
        let races = batch.iter().map(|coin| {
            let (to_bob, p1) = pay(genesis, &[coin], &bob, &[coin.input.amount], &bob);
            let (to_carol, p2) = pay(genesis, &[coin], &carol, &[coin.input.amount], &carol);
            let c = c.clone();
            async move {
                let (a, b) = tokio::join!(c.certify(&to_bob, &p1), c.certify(&to_carol, &p2));
                (to_bob, to_carol, a, b)
            }
        });
        for (to_bob, to_carol, a, b) in futures::future::join_all(races).await {
            let (won, lost, loser) = match (a, b) {
                (Ok(w), Err(e)) => (w, e, &to_carol),
                (Err(e), Ok(w)) => (w, e, &to_bob),
                (Ok(_), Ok(_)) => panic!("both spends of one coin were certified"),
                (Err(x), Err(y)) => panic!("neither spend was certified: {x}; {y}"),
            };
            assert_ne!(won.spend.spend.hash(), loser.spend.hash());
            assert!(
                matches!(lost, CoinError::DoubleSpend { by, .. } if by == won.spend.spend.hash()),
                "the loser is told which spend won: {lost}"
            );
            winners.push(won);
        }
    }
    assert_eq!(winners.len(), 100);
    // The group holds the winner, each member's vote checked.
    for won in winners.iter().take(5) {
        let input = &won.spend.spend.inputs[0];
        let held = c
            .spend_at(spend_address(&input.id(&genesis)), &genesis)
            .await
            .expect("the group holds the spend");
        assert_eq!(held.spend, won.spend);
        assert!(held.certs[0].votes.len() >= 4);
    }

    // A certified output is spent on: its parent travels and is checked.
    let won = &winners[0];
    let (owner, other) = if Coin::found(won, &bob).is_empty() {
        (&carol, &bob)
    } else {
        (&bob, &carol)
    };
    let coin = Coin::found(won, owner).pop().unwrap();
    let (onward, parents) = pay(genesis, &[&coin], other, &[coin.input.amount], other);
    c.certify(&onward, &parents).await.unwrap();

    // Refused, and nothing held: a forged parent (votes by non-members),
    // a spend for another network, an input its parent never made.
    let target = Coin::found(&winners[1], &bob)
        .pop()
        .or_else(|| Coin::found(&winners[1], &carol).pop())
        .unwrap();
    let mut forged = target.parent.clone().unwrap();
    let hash = forged.spend.spend.hash();
    let address = spend_address(&forged.spend.spend.inputs[0].id(&genesis));
    forged.certs = vec![Certificate {
        votes: (0..5u8)
            .map(|i| {
                Vote::sign(
                    &SigningKey::from_bytes(&[90 + i; 32]),
                    &genesis,
                    &address,
                    &hash,
                )
            })
            .collect(),
    }];
    let (s, _) = pay(genesis, &[&target], &carol, &[1], &carol);
    match c.certify(&s, &[forged]).await {
        Err(CoinError::Refused(SpendError::ParentNotCertified(..))) => {}
        other => panic!("a forged parent was taken: {other:?}"),
    }
    // Straight to the nodes (the client would refuse these itself).
    let mut elsewhere = pay(genesis, &[&target], &carol, &[1], &carol);
    elsewhere.0.spend.genesis = [7; 32];
    let elsewhere = SignedSpend::sign(elsewhere.0.spend, &[&target.key]);
    assert_eq!(
        ask_group(&c, &elsewhere, &[target.parent.clone().unwrap()], &genesis).await,
        Response::SpendRefused(SpendError::WrongNetwork)
    );
    let (mut inflated, p) = pay(genesis, &[&target], &carol, &[target.input.amount], &carol);
    inflated.spend.inputs[0].amount += 1;
    inflated.spend.outputs[0].amount += 1;
    let inflated = SignedSpend::sign(inflated.spend, &[&target.key]);
    assert_eq!(
        ask_group(&c, &inflated, &p, &genesis).await,
        Response::SpendRefused(SpendError::UnknownInput(0))
    );
    // The target is still unspent: its owner spends it now.
    let (s, p) = pay(genesis, &[&target], &carol, &[target.input.amount], &carol);
    c.certify(&s, &p).await.unwrap();
    c.shutdown().await;
}
