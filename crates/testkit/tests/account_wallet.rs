//! The wallet in the account (issue 17; `docs/DESIGN-currency.md`, "The
//! wallet in the account") on an in-process charging network of real
//! nodes on 127.0.0.1: a data directory's coins move into the account at
//! login; another machine that logs in has the same address and coins;
//! machines that take turns spend from one account without spending a
//! coin twice, including after one spent and never wrote the record.

use std::sync::Arc;

use safe_client::account_wallet::{move_in, wallet_secret};
use safe_client::pay::{Coin, Payer};
use safe_client::wallet::Wallet;
use safe_client::{Client, Connection, Home, RootSecret};
use safe_protocol::coin::{NANOS_PER_COIN, SignedSpend, Spend, WalletKeys};
use safe_testkit::{bytes_for, charging, client, fund};

const PASSWORD: &str = "correct horse battery";

/// A client of `net` paying from data directory `home`.
async fn client_in(net: &safe_node::testnet::Testnet, home: &Home) -> Client {
    let conn = Connection::connect_to(&net.contacts().await, 5)
        .await
        .unwrap();
    Client::from(conn).paying_from(home.clone())
}

/// The wallet `home` pays from, brought up to date.
async fn wallet(client: &Client, home: &Home) -> Wallet {
    let conn = client.connection().unwrap();
    Payer::new(home.clone())
        .open_wallet(conn)
        .await
        .unwrap()
        .unwrap()
}

/// Its balance.
async fn balance(client: &Client, home: &Home) -> u64 {
    wallet(client, home).await.balance()
}

/// How many lines of its history say `what`.
async fn said(client: &Client, home: &Home, what: &str) -> usize {
    let history = wallet(client, home).await.history();
    history.iter().filter(|l| l.what == what).count()
}

const FOUND: &str = "found in the account's wallet";
const GONE: &str = "spent from another machine of the account";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_wallet_follows_the_account_to_every_machine() {
    let dir = tempfile::tempdir().unwrap();
    let (net, genesis_key) = charging(dir.path(), 12, 44).await;
    let genesis = genesis_key.verifying_key().to_bytes();
    let c: Arc<Connection> = client(&net).await;

    // Machine A's data directory has a wallet of its own with 5 coins.
    let a_dir = tempfile::tempdir().unwrap();
    let home_a = Home::at(a_dir.path());
    let own = Wallet::open(&home_a, &genesis).unwrap();
    let funded = 5 * NANOS_PER_COIN;
    let funding = fund(&c, &genesis_key, &own.address(), funded).await;
    assert_eq!(own.receive(&funding, "received").unwrap(), funded);

    // An account is made on A (its records paid from A's own wallet): A's
    // coins move into the account's wallet, which pays for its record.
    let a = client_in(&net, &home_a).await;
    let account = a
        .create_account("carol", PASSWORD, RootSecret::generate().unwrap(), |_| {})
        .await
        .unwrap();
    home_a.session().save(&account).unwrap();
    let own_left = Wallet::open(&home_a, &genesis).unwrap().balance();
    assert!(own_left < funded, "the account's records were paid for");
    assert_eq!(move_in(&a, &home_a).await.unwrap(), own_left);
    assert_eq!(Wallet::open(&home_a, &genesis).unwrap().balance(), 0);
    assert_eq!(move_in(&a, &home_a).await.unwrap(), 0, "moved once");
    let address = WalletKeys::from_secret(&wallet_secret(&account)).address();
    assert_eq!(
        Payer::new(home_a.clone()).keys().unwrap().address(),
        address
    );
    assert_ne!(address, own.address());
    let moved = balance(&a, &home_a).await;
    assert!(
        moved < own_left && moved > own_left - NANOS_PER_COIN / 100,
        "the wallet record's creation was paid: {moved} of {own_left}"
    );

    // A pays for an upload from the account's wallet.
    let a = client_in(&net, &home_a).await;
    let first = a.put_bytes(bytes_for(1, 1024 * 1024 + 1)).await.unwrap();
    assert!(first.paid_nanos > 0);
    let mut left = moved - first.paid_nanos;
    assert_eq!(balance(&a, &home_a).await, left);

    // Machine B logs in with nothing but the username and password: the
    // same address, the same coins.
    let b_dir = tempfile::tempdir().unwrap();
    let home_b = Home::at(b_dir.path());
    let b = client_in(&net, &home_b).await;
    let on_b = b.login("carol", PASSWORD).await.unwrap();
    home_b.session().save(&on_b).unwrap();
    assert_eq!(
        Payer::new(home_b.clone()).keys().unwrap().address(),
        address
    );
    assert_eq!(balance(&b, &home_b).await, left);
    assert_eq!(move_in(&b, &home_b).await.unwrap(), 0, "B had nothing");

    // B pays; then A, whose copy is stale (its coin is spent now), pays
    // with what B left: no coin is spent twice, and both agree after.
    let b = client_in(&net, &home_b).await;
    let second = b.put_bytes(bytes_for(2, 1024 * 1024 + 2)).await.unwrap();
    assert!(second.paid_nanos > 0);
    left -= second.paid_nanos;
    let a = client_in(&net, &home_a).await;
    assert_eq!(said(&b, &home_b, FOUND).await, 1, "B found the coin A left");
    let third = a.put_bytes(bytes_for(3, 1024 * 1024 + 3)).await.unwrap();
    assert!(third.paid_nanos > 0, "A paid with B's change");
    assert_eq!(said(&a, &home_a, GONE).await, 1, "A's coin went");
    assert_eq!(said(&a, &home_a, FOUND).await, 1, "B's change came");
    left -= third.paid_nanos;
    assert_eq!(balance(&a, &home_a).await, left);
    assert_eq!(balance(&b, &home_b).await, left);

    // Both pay at the same moment, from the same coins: one spend of a
    // coin is certified, the other machine settles that and pays again.
    let (a, b) = (
        client_in(&net, &home_a).await,
        client_in(&net, &home_b).await,
    );
    let (x, y) = tokio::join!(
        a.put_bytes(bytes_for(5, 1024 * 1024 + 5)),
        b.put_bytes(bytes_for(6, 1024 * 1024 + 6)),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert!(x.paid_nanos > 0 && y.paid_nanos > 0);
    left -= x.paid_nanos + y.paid_nanos;
    assert_eq!(balance(&a, &home_a).await, left);
    assert_eq!(balance(&b, &home_b).await, left);

    let (gone, found) = (
        said(&a, &home_a, GONE).await,
        said(&a, &home_a, FOUND).await,
    );
    // B spends every coin and is "killed" before it writes the record
    // (the spend made by hand and recorded only in B's files): A's next
    // payment finds its coins spent, follows the spend to its change and
    // pays with that.
    let keys = WalletKeys::from_secret(&wallet_secret(&on_b));
    let b_wallet = Payer::new(home_b.clone())
        .open_wallet(b.connection().unwrap())
        .await
        .unwrap()
        .unwrap();
    let coins = b_wallet.coins();
    assert!(!coins.is_empty());
    let gift = NANOS_PER_COIN / 4;
    let elsewhere = WalletKeys::from_secret(&[7; 32]).address();
    let spend = Spend {
        genesis,
        inputs: coins.iter().map(|c| c.input).collect(),
        outputs: vec![
            elsewhere.pay(gift).unwrap(),
            address.pay(left - gift).unwrap(),
        ],
        memo: Vec::new(),
    };
    let signers: Vec<_> = coins.iter().map(|c| &c.key).collect();
    let signed = SignedSpend::sign(spend, &signers);
    let parents: Vec<_> = coins.iter().filter_map(|c| c.parent.clone()).collect();
    let certified = c.certify(&signed, &parents).await.unwrap();
    let change = Coin::found(&certified, &keys);
    b_wallet
        .spent(std::slice::from_ref(&certified), &change, gift, "sent")
        .unwrap();
    left -= gift;
    let a = client_in(&net, &home_a).await;
    let fourth = a.put_bytes(bytes_for(4, 1024 * 1024 + 4)).await.unwrap();
    assert!(
        fourth.paid_nanos > 0,
        "A paid with the change it followed to"
    );
    assert_eq!(said(&a, &home_a, GONE).await, gone + 1);
    assert_eq!(said(&a, &home_a, FOUND).await, found + 1);
    left -= fourth.paid_nanos;
    assert_eq!(balance(&a, &home_a).await, left);
    assert_eq!(balance(&b, &home_b).await, left);

    // A third machine, logged in last, agrees too; the data directory's
    // own wallet of A is untouched by all this.
    let c_dir = tempfile::tempdir().unwrap();
    let home_c = Home::at(c_dir.path());
    let third_machine = client_in(&net, &home_c).await;
    let on_c = third_machine.login("carol", PASSWORD).await.unwrap();
    home_c.session().save(&on_c).unwrap();
    assert_eq!(balance(&third_machine, &home_c).await, left);
    assert_eq!(Wallet::open(&home_a, &genesis).unwrap().balance(), 0);
    for client in [a, b, third_machine] {
        client.shutdown().await;
    }
    c.shutdown().await;
    net.down().await;
}
