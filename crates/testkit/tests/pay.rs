//! Paying for storage on an in-process network of real nodes on
//! 127.0.0.1 (issue 17, `docs/DESIGN-currency.md`, "Paying for storage,
//! version 1"): an unpaid put is refused, an upload is paid in one spend
//! and the nodes' recorded earnings rise by exactly what the client paid,
//! a replayed payment earns nothing more, re-puts are free, and a payment
//! covers only its own batch at its own payees.

use std::sync::{Arc, Mutex};

use safe_client::pay::{Coin, PayError};
use safe_client::wallet::Wallet;
use safe_client::{ChunkStore, Client, Connection, Home, StoreError, files};
use safe_protocol::coin::pay::{ChunkPayment, PaymentError};
use safe_protocol::coin::{CertifiedSpend, NANOS_PER_COIN, SignedSpend, Spend, WalletKeys};
use safe_protocol::messages::{Request, Response};
use safe_protocol::mutable::SigningKey;
use safe_protocol::{Chunk, XorName};
use safe_selfenc::Config;
use safe_testkit::{bytes_for, charging, client, fund, start, testnet_config};

/// Chunks kept in memory: an upload's chunks, to pay for before they are
/// put.
#[derive(Default)]
struct Collect(Mutex<Vec<Chunk>>);

impl ChunkStore for Collect {
    async fn put(&self, chunk: Chunk) -> Result<(), StoreError> {
        self.0.lock().unwrap().push(chunk);
        Ok(())
    }

    async fn get(&self, name: XorName) -> Result<Chunk, StoreError> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.name() == &name)
            .cloned()
            .ok_or(StoreError::NotFound(name))
    }
}

/// The chunks of `data` self-encrypted, in the order an upload puts them.
async fn chunks_of(data: Vec<u8>) -> (Vec<Chunk>, safe_protocol::Address) {
    let store = Arc::new(Collect::default());
    let size = data.len() as u64;
    let report = files::put_reader(
        store.clone(),
        std::io::Cursor::new(data),
        size,
        Config::default(),
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    let chunks = store.0.lock().unwrap().clone();
    (chunks, report.address)
}

/// A spend of every coin of `wallet`: `amount` to `to`, the rest back;
/// and its inputs' parents.
fn spend_all(
    wallet: &Wallet,
    to: &safe_protocol::coin::WalletAddress,
    amount: u64,
) -> (SignedSpend, Vec<CertifiedSpend>) {
    let coins = wallet.coins();
    let spend = Spend {
        genesis: wallet.genesis().unwrap(),
        inputs: coins.iter().map(|c| c.input).collect(),
        outputs: vec![
            to.pay(amount).unwrap(),
            wallet.address().pay(wallet.balance() - amount).unwrap(),
        ],
        memo: Vec::new(),
    };
    let keys: Vec<_> = coins.iter().map(|c| &c.key).collect();
    let parents = coins.iter().filter_map(|c| c.parent.clone()).collect();
    (SignedSpend::sign(spend, &keys), parents)
}

/// Nanos the nodes recorded as earned from `spends`.
fn earned(net: &safe_node::testnet::Testnet, spends: &[CertifiedSpend]) -> u64 {
    let hashes: Vec<[u8; 32]> = spends.iter().map(|s| s.spend.spend.hash().0).collect();
    net.nodes()
        .flat_map(|n| n.store().earnings().unwrap())
        .filter(|e| hashes.contains(&e.spend))
        .map(|e| e.amount)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_are_paid_once_and_nodes_earn_exactly_what_was_paid() {
    let dir = tempfile::tempdir().unwrap();
    let genesis_key = SigningKey::from_bytes(&[42; 32]);
    let genesis = genesis_key.verifying_key().to_bytes();
    let mut config = testnet_config(dir.path(), 12);
    config.node.genesis = Some(genesis);
    let net = start(config).await;
    let c: Arc<Connection> = client(&net).await;
    let alice = WalletKeys::from_secret(&[1; 32]);

    // Alice is given 10 coins from the genesis output.
    let funded = 10 * NANOS_PER_COIN;
    let funding = fund(&c, &genesis_key, &alice.address(), funded).await;
    let coins = Coin::found(&funding, &alice);
    assert_eq!(coins.len(), 1);

    // An upload of 3 MiB and a bit: its chunks, known before any is put.
    let data = bytes_for(17, 3 * 1024 * 1024 + 4321);
    let (chunks, address) = chunks_of(data.clone()).await;
    let names: Vec<XorName> = chunks.iter().map(|c| *c.name()).collect();

    // Unpaid, a new chunk is refused, saying why, and nobody stores it.
    let err = c.put(chunks[0].clone()).await.unwrap_err().to_string();
    assert!(err.contains("no payment for this chunk"), "{err}");
    assert!(net.nodes().all(|n| !n.holds(&names[0])));

    // The price, and a limit under it refused with nothing spent.
    let price = c.price_of(&names).await.unwrap();
    assert!(price > 0);
    match c.pay_for(&names, coins, &alice, Some(price - 1)).await {
        Err(PayError::OverLimit { cost, limit }) => {
            assert_eq!((cost, limit), (price, price - 1));
        }
        other => panic!("over the limit: {other:?}"),
    }
    let coins = Coin::found(&funding, &alice);

    // Paid in one spend, every payee takes its payment, every chunk is
    // stored, and the file reads back.
    let paid = c.pay_for(&names, coins, &alice, Some(price)).await.unwrap();
    assert!(paid.charged);
    assert_eq!(paid.spends.len(), 1, "one spend for the whole upload");
    assert_eq!(paid.taken, paid.payees, "refused: {:?}", paid.refused);
    assert_eq!(paid.nanos, price);
    for chunk in &chunks {
        c.put(chunk.clone()).await.unwrap();
    }
    assert_eq!(safe_testkit::get(&c, &address).await, data);

    // The nodes earned exactly what alice paid, and alice kept the rest.
    assert_eq!(earned(&net, &paid.spends), paid.nanos);
    let left: u64 = paid.change.iter().map(Coin::amount).sum();
    assert_eq!(left, funded - paid.nanos);

    // A replayed payment earns nothing more and credits nothing more; a
    // payee's secret does not open another payee's output.
    let spend = &paid.spends[0];
    let hash = spend.spend.spend.hash().0;
    let shown = &paid.shown[0];
    let payee = net.nodes().find(|n| n.peer_id() == shown.peer).unwrap();
    let before = payee.store().credit(&hash).unwrap().unwrap();
    let pay = |to: safe_network::libp2p::PeerId, secret: [u8; 32]| {
        c.request(
            to,
            Request::Pay {
                payment: spend.clone(),
                manifest: shown.manifest.clone(),
                secret,
            },
        )
    };
    match pay(shown.peer, shown.secret).await.unwrap() {
        Response::Paid { remaining } => assert_eq!(remaining, before.remaining),
        other => panic!("a replay: {other:?}"),
    }
    let second = &paid.shown[1];
    let answer = pay(second.peer, shown.secret).await.unwrap();
    assert!(
        matches!(answer, Response::PaymentRefused(PaymentError::WrongPayee)),
        "another payee's secret: {answer:?}"
    );
    let mut stale = shown.manifest.clone();
    stale.chunks += 1;
    let answer = c
        .request(
            shown.peer,
            Request::Pay {
                payment: spend.clone(),
                manifest: stale,
                secret: shown.secret,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(answer, Response::PaymentRefused(PaymentError::Malformed(_))),
        "a manifest that is not the memo: {answer:?}"
    );
    assert_eq!(payee.store().credit(&hash).unwrap().unwrap(), before);
    assert_eq!(earned(&net, &paid.spends), paid.nanos);

    // Re-putting what is stored is free: no payment is pending, and every
    // chunk is taken.
    for chunk in &chunks {
        c.put(chunk.clone()).await.unwrap();
    }

    // The payment covers its batch only: another chunk with a path from
    // it is refused.
    let other = Chunk::new(bytes_for(99, 1000)).unwrap();
    let holder = c.lookup_group(other.name()).await[0];
    let answer = c
        .request(
            holder,
            Request::PutChunk {
                bytes: other.bytes().clone(),
                replicate: false,
                payment: Some(ChunkPayment {
                    spend: spend.spend.spend.hash(),
                    index: 0,
                    path: Vec::new(),
                }),
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(
            answer,
            Response::PaymentRefused(PaymentError::NotInBatch | PaymentError::UnknownPayment)
        ),
        "{answer:?}"
    );
    assert!(!net.nodes().any(|n| n.holds(other.name())));

    // Through the Client: a funded wallet in a data directory pays for a
    // whole upload by itself, in one payment, and a re-put costs nothing.
    let home_dir = tempfile::tempdir().unwrap();
    let home = Home::at(home_dir.path());
    let wallet = Wallet::open(&home, &genesis).unwrap();
    // Unfunded, on a network that is not a testnet (no faucet): one line
    // that says how to get coins, and nothing is stored.
    let unfunded_data = bytes_for(29, 1024 * 1024 + 7);
    let (unfunded_chunks, _) = chunks_of(unfunded_data.clone()).await;
    let unfunded = {
        let conn = Connection::connect_to(&net.contacts().await, 5)
            .await
            .unwrap();
        let client = Client::from(conn).paying_from(home.clone());
        let err = client
            .put_bytes(unfunded_data)
            .await
            .unwrap_err()
            .to_string();
        client.shutdown().await;
        err
    };
    assert!(
        unfunded.contains("holds 0 coins")
            && unfunded.contains(&wallet.address().to_string())
            && unfunded.contains("safe wallet send")
            && !unfunded.contains('\n'),
        "{unfunded}"
    );
    assert_eq!(Wallet::open(&home, &genesis).unwrap().balance(), 0);
    for chunk in &unfunded_chunks {
        assert!(
            !net.nodes().any(|n| n.holds(chunk.name())),
            "nothing stored"
        );
    }
    let mut change = paid.change;
    let coin = change.pop().unwrap();
    let gift = NANOS_PER_COIN;
    let spend = Spend {
        genesis,
        inputs: vec![coin.input],
        outputs: vec![
            wallet.address().pay(gift).unwrap(),
            alice.address().pay(coin.amount() - gift).unwrap(),
        ],
        memo: Vec::new(),
    };
    let signed = SignedSpend::sign(spend, &[&coin.key]);
    let parents: Vec<CertifiedSpend> = coin.parent.iter().cloned().collect();
    let gift_spend = c.certify(&signed, &parents).await.unwrap();
    assert_eq!(wallet.receive(&gift_spend, "received").unwrap(), gift);
    assert_eq!(wallet.receive(&gift_spend, "received").unwrap(), 0, "once");
    let conn = Connection::connect_to(&net.contacts().await, 5)
        .await
        .unwrap();
    let client = Client::from(conn).paying_from(home.clone());
    let data2 = bytes_for(23, 2 * 1024 * 1024 + 5);
    let report = client.put_bytes(data2.clone()).await.unwrap();
    assert!(report.paid_nanos > 0);
    let wallet = Wallet::open(&home, &genesis).unwrap();
    assert_eq!(wallet.balance(), gift - report.paid_nanos);
    assert_eq!(
        client.get_bytes(&report.address, 1 << 30).await.unwrap(),
        data2
    );
    let again = client.put_bytes(data2).await.unwrap();
    assert_eq!(again.paid_nanos, 0, "a re-put is free");
    assert_eq!(again.address, report.address);
    // A chunk put on its own is paid for too (in a batch of whatever is
    // put at the same moment).
    let lone = Chunk::new(bytes_for(5, 3000)).unwrap();
    client.put_chunk(lone.clone()).await.unwrap();
    assert!(client.payer().paid() > report.paid_nanos);
    let wallet = Wallet::open(&home, &genesis).unwrap();
    assert_eq!(wallet.balance(), gift - client.payer().paid());
    // A payment stopped after its spend went out, with only one member
    // of its group voting, before the wallet recorded it (a kill): the
    // next payment finishes it first (the same spend gets its votes),
    // takes in its change, and pays on.
    let wallet = Wallet::open(&home, &genesis).unwrap();
    let coins = wallet.coins();
    let before = wallet.balance();
    let elsewhere = WalletKeys::from_secret(&[9; 32]).address();
    let (lost, parents) = spend_all(&wallet, &elsewhere, 1000);
    wallet
        .add_pending(safe_client::wallet::Pending {
            spend: lost.clone(),
            parents: parents.clone(),
            what: "paid for storage".into(),
            send: None,
        })
        .unwrap();
    let first = safe_protocol::coin::spend_address(&coins[0].input.id(&genesis));
    let mut votes = 0;
    for peer in c.lookup_group(&first).await {
        let answer = c
            .request(
                peer,
                Request::Spend {
                    spend: lost.clone(),
                    parents: parents.clone(),
                    input: 0,
                    sequencer: None,
                },
            )
            .await;
        if matches!(answer, Ok(Response::Voted(_))) {
            votes += 1;
            break;
        }
    }
    assert_eq!(votes, 1, "one member voted before the kill");
    let paid_before = client.payer().paid();
    let after_kill = client
        .put_bytes(bytes_for(31, 1024 * 1024 + 3))
        .await
        .unwrap();
    assert!(after_kill.paid_nanos > 0);
    let wallet = Wallet::open(&home, &genesis).unwrap();
    assert_eq!(wallet.balance(), before - 1000 - after_kill.paid_nanos);
    assert!(
        wallet
            .history()
            .iter()
            .any(|l| l.what.contains("finished late")),
        "{:?}",
        wallet.history()
    );
    assert!(wallet.pending().unwrap().is_empty());
    assert_eq!(client.payer().paid(), paid_before + after_kill.paid_nanos);

    // A send cut short before any vote is finished by the next send,
    // which then sends nothing more; the recipient takes it in.
    let bob_dir = tempfile::tempdir().unwrap();
    let bob_home = Home::at(bob_dir.path());
    let bob = Wallet::keys_of(&bob_home).unwrap().address();
    let wallet = Wallet::open(&home, &genesis).unwrap();
    let before = wallet.balance();
    let (cut, parents) = spend_all(&wallet, &bob, 500);
    wallet
        .add_pending(safe_client::wallet::Pending {
            spend: cut,
            parents,
            what: "sent to bob".into(),
            send: Some((bob, 500)),
        })
        .unwrap();
    let conn = client.connection().unwrap();
    let late = match client.payer().send(conn, &bob, 500).await {
        Err(PayError::FinishedEarlier(late)) => late,
        other => panic!("the cut send is finished instead: {other:?}"),
    };
    assert_eq!(late.len(), 1);
    assert_eq!((late[0].to, late[0].amount), (bob, 500));
    assert_eq!(
        Wallet::open(&home, &genesis).unwrap().balance(),
        before - 500,
        "sent once"
    );
    let bob_payer = safe_client::pay::Payer::new(bob_home.clone());
    assert_eq!(
        bob_payer.receive(conn, &late[0].receipt).await.unwrap(),
        500
    );
    assert_eq!(bob_payer.receive(conn, &late[0].receipt).await.unwrap(), 0);
    // A send that went out and cannot be settled (here: its parents were
    // lost, so no node votes for it) blocks new sends, so a retried send
    // can never pay twice; nothing moves.
    let wallet = Wallet::open(&home, &genesis).unwrap();
    let before = wallet.balance();
    let (stuck, _) = spend_all(&wallet, &bob, 700);
    wallet
        .add_pending(safe_client::wallet::Pending {
            spend: stuck,
            parents: Vec::new(),
            what: "sent to bob".into(),
            send: Some((bob, 700)),
        })
        .unwrap();
    match client.payer().send(conn, &bob, 700).await {
        Err(PayError::SendUnsettled(what)) => assert_eq!(what, "sent to bob"),
        other => panic!("an unsettled send blocks the next: {other:?}"),
    }
    assert_eq!(Wallet::open(&home, &genesis).unwrap().balance(), before);

    // Every nano the nodes earned is one somebody paid.
    let all: u64 = net
        .nodes()
        .flat_map(|n| n.store().earnings().unwrap())
        .map(|e| e.amount)
        .sum();
    assert_eq!(all, paid.nanos + client.payer().paid());
    client.shutdown().await;

    c.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_lost_what_it_was_paid_to_store_fails_its_audit() {
    use safe_node::audit::{AuditError, Outcome};
    let dir = tempfile::tempdir().unwrap();
    let genesis_key = SigningKey::from_bytes(&[43; 32]);
    let genesis = genesis_key.verifying_key().to_bytes();
    let mut config = testnet_config(dir.path(), 12);
    config.node.genesis = Some(genesis);
    // Audits made here, by hand; replication would otherwise soon give
    // the loser its chunk back.
    config.node.audit_interval = std::time::Duration::ZERO;
    config.node.replication_interval = std::time::Duration::from_secs(3600);
    let net = start(config).await;
    let c: Arc<Connection> = client(&net).await;
    let alice = WalletKeys::from_secret(&[2; 32]);
    let funding = fund(&c, &genesis_key, &alice.address(), NANOS_PER_COIN).await;
    let data = bytes_for(41, 2 * 1024 * 1024 + 99);
    let (chunks, _) = chunks_of(data).await;
    let names: Vec<XorName> = chunks.iter().map(|c| *c.name()).collect();
    let paid = c
        .pay_for(&names, Coin::found(&funding, &alice), &alice, None)
        .await
        .unwrap();
    assert_eq!(paid.taken, paid.payees, "refused: {:?}", paid.refused);
    for chunk in &chunks {
        c.put(chunk.clone()).await.unwrap();
    }

    let name = names[0];
    let holders: Vec<_> = net.nodes().filter(|n| n.holds(&name)).collect();
    assert!(holders.len() >= 3, "{} holders", holders.len());
    let (auditor, loser, keeper) = (holders[0], holders[1], holders[2]);
    let paid_to = |n: &safe_node::RunningNode| {
        n.store()
            .earnings()
            .unwrap()
            .iter()
            .any(|e| e.spend == paid.spends[0].spend.spend.hash().0)
    };
    assert!(paid_to(loser), "the loser was paid to store it");

    // Before anything is lost, both pass.
    for n in [loser, keeper] {
        assert_eq!(
            auditor.audit(n.peer_id(), name).await.unwrap(),
            Outcome::Passed
        );
    }
    // The loser loses it: it fails, the keeper still passes.
    loser.store().remove(&name).unwrap();
    assert!(!loser.holds(&name));
    match auditor.audit(loser.peer_id(), name).await.unwrap() {
        Outcome::Failed(why) => assert!(why.contains("does not hold"), "{why}"),
        other => panic!("a node without the chunk passed: {other:?}"),
    }
    assert_eq!(
        auditor.audit(keeper.peer_id(), name).await.unwrap(),
        Outcome::Passed
    );
    let book = auditor.audits();
    let of = |p| {
        book.iter()
            .find(|(q, _)| *q == p)
            .map(|(_, a)| a.clone())
            .unwrap()
    };
    let lost = of(loser.peer_id());
    assert_eq!((lost.passed, lost.failed), (1, 1));
    assert_eq!(lost.last_failure.map(|(n, _)| n), Some(name));
    assert_eq!(
        (of(keeper.peer_id()).passed, of(keeper.peer_id()).failed),
        (2, 0)
    );
    // Only a holder can check a proof: the loser cannot audit anyone now.
    assert!(matches!(
        loser.audit(keeper.peer_id(), name).await,
        Err(AuditError::NotHeld(n)) if n == name
    ));

    c.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_directory_upload_is_paid_in_one_payment() {
    let dir = tempfile::tempdir().unwrap();
    let (net, genesis_key) = charging(dir.path(), 12, 45).await;
    let genesis = genesis_key.verifying_key().to_bytes();
    let c: Arc<Connection> = client(&net).await;

    // A tree of files stored on their own, small files kept inline in
    // their manifests, and a subdirectory.
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("sub/deeper")).unwrap();
    std::fs::write(t.join("a.bin"), bytes_for(51, 3 * 1024 * 1024 + 1)).unwrap();
    std::fs::write(t.join("b.bin"), bytes_for(52, 1536 * 1024)).unwrap();
    std::fs::write(t.join("sub/c.bin"), bytes_for(53, 2 * 1024 * 1024 + 3)).unwrap();
    for i in 0..5 {
        std::fs::write(t.join(format!("sub/deeper/{i}.txt")), bytes_for(i, 1000)).unwrap();
    }

    let home_dir = tempfile::tempdir().unwrap();
    let home = Home::at(home_dir.path());
    let wallet = Wallet::open(&home, &genesis).unwrap();
    let funding = fund(&c, &genesis_key, &wallet.address(), 10 * NANOS_PER_COIN).await;
    wallet.receive(&funding, "received").unwrap();
    let conn = Connection::connect_to(&net.contacts().await, 5)
        .await
        .unwrap();
    let client = Client::from(conn).paying_from(home.clone());
    let payments = Arc::new(Mutex::new(Vec::new()));
    let seen = payments.clone();
    client.payer().on_cost(Arc::new(move |cost, chunks| {
        seen.lock().unwrap().push((cost, chunks))
    }));
    let report = client
        .put_tree(t, &safe_client::TreeOptions::default())
        .await
        .unwrap();
    let made = payments.lock().unwrap().clone();
    assert_eq!(made.len(), 1, "one payment for the whole upload: {made:?}");
    let (cost, chunks) = made[0];
    assert_eq!(cost, client.payer().paid());
    // Every chunk the upload stored was in it: the files' chunks (3 + 3 +
    // 3 at least) and the manifests'.
    assert!(chunks >= 12, "{chunks} chunks");
    assert_eq!(
        Wallet::open(&home, &genesis).unwrap().balance(),
        10 * NANOS_PER_COIN - cost
    );
    let back = tempfile::tempdir().unwrap();
    let out = back.path().join("out");
    client.get_tree(report.address.name, &out).await.unwrap();
    assert_eq!(
        std::fs::read(out.join("sub/c.bin")).unwrap(),
        bytes_for(53, 2 * 1024 * 1024 + 3)
    );
    assert_eq!(
        std::fs::read(out.join("sub/deeper/4.txt")).unwrap(),
        bytes_for(4, 1000)
    );
    // Again: nothing new to store, nothing paid.
    client
        .put_tree(t, &safe_client::TreeOptions::default())
        .await
        .unwrap();
    assert_eq!(client.payer().paid(), cost, "a re-put is free");
    client.shutdown().await;
    c.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creating_a_record_is_paid_for_and_changing_it_is_free() {
    use safe_client::NewRecord;
    use safe_protocol::mutable::Change;
    let dir = tempfile::tempdir().unwrap();
    let (net, genesis_key) = charging(dir.path(), 12, 46).await;
    let genesis = genesis_key.verifying_key().to_bytes();
    let c: Arc<Connection> = client(&net).await;
    let owner = SigningKey::from_bytes(&[3; 32]);

    // Unfunded: one line saying how to get coins, and no record.
    let home_dir = tempfile::tempdir().unwrap();
    let home = Home::at(home_dir.path());
    let conn = Connection::connect_to(&net.contacts().await, 5)
        .await
        .unwrap();
    let client_ = Client::from(conn).paying_from(home.clone());
    let new = NewRecord::named(b"paid record".to_vec());
    let err = client_
        .create_record(new.clone(), &owner)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("holds 0 coins") && !err.contains('\n'),
        "{err}"
    );
    assert!(
        client_.get_record(new.address()).await.is_err(),
        "not created"
    );

    // A create sent with no payment is refused by every member, saying so.
    let create = safe_client::mutable::new_create(
        b"paid record",
        0,
        vec![owner.verifying_key().to_bytes()],
        1,
        false,
        &owner,
    )
    .unwrap();
    let bytes: bytes::Bytes = safe_protocol::mutable::Write::Create(create)
        .encode()
        .unwrap()
        .into();
    for peer in c.lookup_group(&new.address()).await {
        let answer = c
            .request(
                peer,
                Request::PutRecord {
                    write: bytes.clone(),
                    payment: None,
                },
            )
            .await
            .unwrap();
        assert!(
            matches!(answer, Response::PaymentRefused(PaymentError::Unpaid)),
            "{answer:?}"
        );
    }

    // Funded: the create is paid (one chunk's price at each member), and
    // changes to the record after cost nothing.
    let wallet = Wallet::open(&home, &genesis).unwrap();
    let funding = fund(&c, &genesis_key, &wallet.address(), NANOS_PER_COIN).await;
    wallet.receive(&funding, "received").unwrap();
    let quoted = c.price_of(&[new.address()]).await.unwrap();
    assert!(quoted > 0);
    let address = client_.create_record(new, &owner).await.unwrap();
    assert_eq!(client_.payer().paid(), quoted, "the quote, to the nano");
    client_
        .update_record(
            address,
            Change::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            },
            std::slice::from_ref(&owner),
        )
        .await
        .unwrap();
    assert_eq!(client_.payer().paid(), quoted, "a change is free");
    let record = client_.get_record(address).await.unwrap();
    assert_eq!(record.state.entries.get(&b"k"[..]).unwrap(), b"v");
    assert_eq!(
        Wallet::open(&home, &genesis).unwrap().balance(),
        NANOS_PER_COIN - quoted
    );
    client_.shutdown().await;
    c.shutdown().await;
    net.down().await;
}
