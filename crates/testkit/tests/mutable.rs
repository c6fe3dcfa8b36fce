//! Mutable records on an in-process network of real nodes on 127.0.0.1,
//! driven through the real client.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use safe_client::Connection;
use safe_client::mutable::{MutableError, new_append, new_create, prepare};
use safe_node::RunningNode;
use safe_node::testnet::Testnet;
use safe_protocol::XorName;
use safe_protocol::mutable::{
    Change, MAX_VALUE_LEN, PublicKey, Record, RecordError, SigningKey, Write, record_address,
};
use safe_testkit::{K, client};

async fn testnet(dir: &std::path::Path) -> Testnet {
    safe_testkit::testnet(dir, 10).await
}

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

fn pk(i: u8) -> PublicKey {
    key(i).verifying_key().to_bytes()
}

fn set(k: &str, v: &str) -> Change {
    Change::Set {
        key: k.into(),
        value: v.into(),
    }
}

async fn create(c: &Connection, name: &str, owners: &[u8], threshold: u8, by: u8) -> XorName {
    let owners = owners.iter().map(|i| pk(*i)).collect();
    let create = new_create(name.as_bytes(), 1, owners, threshold, false, &key(by)).unwrap();
    c.write_record(&Write::Create(create))
        .await
        .expect("create");
    record_address(name.as_bytes(), 1)
}

/// Each running node's copy of `name`.
fn copies(net: &Testnet, name: &XorName) -> Vec<Record> {
    net.nodes()
        .filter_map(|n| n.store().record(name).unwrap())
        .collect()
}

/// Waits until exactly `k` running nodes hold `name`, all the same copy.
async fn wait_for_agreement(net: &Testnet, name: &XorName, k: usize) -> Record {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let all = copies(net, name);
        if all.len() == k && all.windows(2).all(|w| w[0] == w[1]) {
            return all[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "replicas of {name} never agreed: {} copies, versions {:?}",
            all.len(),
            all.iter().map(|r| r.state.version).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn group_nodes<'a>(
    net: &'a Testnet,
    group: &[safe_network::libp2p::PeerId],
) -> Vec<&'a RunningNode> {
    assert_eq!(group.len(), K);
    net.nodes()
        .filter(|n| group.contains(&n.peer_id()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_update_transfer_and_two_of_three() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path()).await;
    let (a, b) = (client(&net).await, client(&net).await);

    let name = create(&a, "profile", &[1], 1, 1).await;
    a.update_record(name, set("colour", "blue"), &[key(1)])
        .await
        .unwrap();
    // Another client reads it back.
    let r = b.get_record(name).await.unwrap();
    assert_eq!(r.state.version, 1);
    assert_eq!(r.state.entries[b"colour".as_slice()], b"blue");
    assert_eq!(r.state.owners, vec![pk(1)]);

    // Transfer to key 2: the old owner is refused, the new one accepted.
    let transfer = Change::Owners {
        owners: vec![pk(2)],
        threshold: 1,
    };
    a.update_record(name, transfer, &[key(1)]).await.unwrap();
    let old = prepare(&b.get_record(name).await.unwrap(), set("colour", "red")).unwrap();
    let mut by_old = old.clone();
    by_old.sign(&key(1));
    let err = b.write_record(&Write::Op(by_old)).await.unwrap_err();
    assert!(
        matches!(err, MutableError::Refused(RecordError::NotOwner)),
        "{err}"
    );
    b.update_record(name, set("colour", "red"), &[key(2)])
        .await
        .unwrap();
    let r = a.get_record(name).await.unwrap();
    assert_eq!((r.state.version, r.state.owners.clone()), (3, vec![pk(2)]));
    assert_eq!(r.state.entries[b"colour".as_slice()], b"red");

    // 2 of 3: one signature refused, two accepted.
    let shared = create(&a, "shared", &[1, 2, 3], 2, 3).await;
    let record = b.get_record(shared).await.unwrap();
    let mut op = prepare(&record, set("k", "v")).unwrap();
    op.sign(&key(1));
    let err = b.write_record(&Write::Op(op.clone())).await.unwrap_err();
    assert!(
        matches!(
            err,
            MutableError::Refused(RecordError::NotEnoughSigners { have: 1, need: 2 })
        ),
        "{err}"
    );
    assert_eq!(b.get_record(shared).await.unwrap().state.version, 0);
    op.sign(&key(3)); // a second owner, on "their own machine"
    b.write_record(&Write::Op(op)).await.unwrap();
    let r = a.get_record(shared).await.unwrap();
    assert_eq!(r.state.version, 1);
    assert_eq!(r.state.entries[b"k".as_slice()], b"v");

    a.shutdown().await;
    b.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_writes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path()).await;
    let c = client(&net).await;
    let name = create(&c, "guarded", &[1], 1, 1).await;
    let replayed = {
        let r = c.get_record(name).await.unwrap();
        let mut op = prepare(&r, set("a", "1")).unwrap();
        op.sign(&key(1));
        c.write_record(&Write::Op(op.clone())).await.unwrap();
        op
    };
    c.update_record(name, set("a", "2"), &[key(1)])
        .await
        .unwrap();
    let before = wait_for_agreement(&net, &name, K).await;
    assert_eq!(before.state.version, 2);

    let current = c.get_record(name).await.unwrap();
    let refused = |err: MutableError| match err {
        MutableError::Refused(e) => e,
        other => panic!("expected a refusal, got {other}"),
    };
    // Forged signature: signed, then the change swapped.
    let mut forged = prepare(&current, set("a", "mine")).unwrap();
    forged.sign(&key(1));
    forged.body.change = set("a", "evil");
    forged.body.result = current.state.apply(&forged.body.change).unwrap().hash();
    let e = refused(c.write_record(&Write::Op(forged)).await.unwrap_err());
    assert_eq!(e, RecordError::BadSignature);
    // Stale version.
    let mut stale = prepare(&current, set("a", "late")).unwrap();
    stale.body.replaces = 1;
    stale.sign(&key(1));
    let e = refused(c.write_record(&Write::Op(stale)).await.unwrap_err());
    assert_eq!(
        e,
        RecordError::WrongVersion {
            current: 2,
            given: 1
        }
    );
    // Replay of an applied operation.
    let e = refused(c.write_record(&Write::Op(replayed)).await.unwrap_err());
    assert!(matches!(e, RecordError::WrongVersion { .. }), "{e}");
    assert!(e.to_string().contains("stale or replayed"), "{e}");
    // Non-owner.
    let mut stranger = prepare(&current, set("a", "x")).unwrap();
    stranger.sign(&key(9));
    let e = refused(c.write_record(&Write::Op(stranger)).await.unwrap_err());
    assert_eq!(e, RecordError::NotOwner);
    // Oversized value (built by hand: the client's own checks would stop it).
    let mut big = prepare(&current, set("a", "x")).unwrap();
    big.body.change = Change::Set {
        key: b"a".to_vec(),
        value: vec![0; MAX_VALUE_LEN + 1],
    };
    big.sign(&key(1));
    let e = refused(c.write_record(&Write::Op(big)).await.unwrap_err());
    assert!(matches!(e, RecordError::TooLarge(_)), "{e}");
    assert!(e.to_string().contains("at most"), "{e}");
    // Updates to and reads of a record nobody created.
    let nowhere = record_address(b"nobody made this", 1);
    let e = c
        .update_record(nowhere, set("a", "b"), &[key(1)])
        .await
        .unwrap_err();
    assert!(matches!(e, MutableError::NotFound(_)), "{e}");

    // Nothing changed, on any replica.
    for copy in copies(&net, &name) {
        assert_eq!(copy, before);
    }
    assert_eq!(c.get_record(name).await.unwrap(), before);
    c.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_have_one_winner_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path()).await;
    let (a, b) = (client(&net).await, client(&net).await);
    let mut names = Vec::new();
    for round in 0..20 {
        let name = format!("contested-{round}");
        let ca = new_create(name.as_bytes(), 1, vec![], 1, false, &key(1)).unwrap();
        let cb = new_create(name.as_bytes(), 1, vec![], 1, false, &key(2)).unwrap();
        let (wa, wb) = (Write::Create(ca.clone()), Write::Create(cb.clone()));
        let (ra, rb) = tokio::join!(a.write_record(&wa), b.write_record(&wb));
        let winner = match (&ra, &rb) {
            (Ok(()), Err(e)) => {
                assert!(
                    matches!(e, MutableError::Refused(RecordError::AlreadyExists)),
                    "{e}"
                );
                ca
            }
            (Err(e), Ok(())) => {
                assert!(
                    matches!(e, MutableError::Refused(RecordError::AlreadyExists)),
                    "{e}"
                );
                cb
            }
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        names.push((record_address(name.as_bytes(), 1), winner));
    }
    for (name, winner) in &names {
        let agreed = wait_for_agreement(&net, name, K).await;
        assert_eq!(&agreed.genesis, winner, "replicas hold the loser of {name}");
        assert_eq!(&a.get_record(*name).await.unwrap().genesis, winner);
    }

    // Two owners racing to change one version of a shared record: exactly
    // one change is acknowledged, and every replica ends with it.
    let shared = new_create(b"shared", 1, vec![pk(1), pk(2)], 1, false, &key(1)).unwrap();
    a.write_record(&Write::Create(shared)).await.unwrap();
    let name = record_address(b"shared", 1);
    for round in 0..10 {
        let current = a.get_record(name).await.unwrap();
        let mut oa = prepare(&current, set("turn", &format!("a{round}"))).unwrap();
        oa.sign(&key(1));
        let mut ob = prepare(&current, set("turn", &format!("b{round}"))).unwrap();
        ob.sign(&key(2));
        let (wa, wb) = (Write::Op(oa), Write::Op(ob));
        let (ra, rb) = tokio::join!(a.write_record(&wa), b.write_record(&wb));
        let won = match (&ra, &rb) {
            (Ok(()), Err(_)) => format!("a{round}"),
            (Err(_), Ok(())) => format!("b{round}"),
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        let agreed = wait_for_agreement(&net, &name, K).await;
        assert_eq!(agreed.state.version, round + 1);
        assert_eq!(agreed.state.entries[b"turn".as_slice()], won.as_bytes());
    }
    a.shutdown().await;
    b.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lying_nodes_cannot_mislead_readers() {
    let dir = tempfile::tempdir().unwrap();
    let net = testnet(dir.path()).await;
    let c = client(&net).await;
    let name = create(&c, "contested truth", &[1], 1, 1).await;
    c.update_record(name, set("v", "1"), &[key(1)])
        .await
        .unwrap();
    wait_for_agreement(&net, &name, K).await;
    let peers = c.close_group(&name).await;
    let group = group_nodes(&net, &peers);

    // One member drops writes (and so serves an old version), another
    // serves a validly signed record of an attacker at a higher version.
    group[0]
        .faults()
        .drop_record_writes
        .store(true, Ordering::Relaxed);
    group[1]
        .faults()
        .forge_records
        .store(true, Ordering::Relaxed);
    for i in 2..6 {
        c.update_record(name, set("v", &i.to_string()), &[key(1)])
            .await
            .unwrap();
    }
    let reader = client(&net).await;
    let r = reader.get_record(name).await.unwrap();
    assert_eq!(r.state.version, 5);
    assert_eq!(r.state.entries[b"v".as_slice()], b"5");
    assert_eq!(r.state.owners, vec![pk(1)]);
    assert_eq!(
        group[0]
            .store()
            .record(&name)
            .unwrap()
            .unwrap()
            .state
            .version,
        1,
        "the lying node really kept the old version"
    );

    // Now a tampered copy too: still the right record.
    group[1]
        .faults()
        .forge_records
        .store(false, Ordering::Relaxed);
    group[1]
        .faults()
        .tamper_records
        .store(true, Ordering::Relaxed);
    let r = reader.get_record(name).await.unwrap();
    assert_eq!(r.state.version, 5);
    assert!(!r.state.entries.contains_key(b"tampered".as_slice()));

    // Two forgers agreeing on one false record are still outvoted.
    group[1]
        .faults()
        .tamper_records
        .store(false, Ordering::Relaxed);
    group[1]
        .faults()
        .forge_records
        .store(true, Ordering::Relaxed);
    group[0]
        .faults()
        .forge_records
        .store(true, Ordering::Relaxed);
    let r = reader.get_record(name).await.unwrap();
    assert_eq!((r.state.version, r.state.owners.clone()), (5, vec![pk(1)]));

    reader.shutdown().await;
    c.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_are_never_lost_and_records_survive_node_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = testnet(dir.path()).await;
    let owner = client(&net).await;
    let inbox = new_create(b"inbox", 9, vec![], 1, true, &key(1)).unwrap();
    owner.write_record(&Write::Create(inbox)).await.unwrap();
    let name = record_address(b"inbox", 9);

    // Three people append at once.
    let writers = [client(&net).await, client(&net).await, client(&net).await];
    let jobs = writers.iter().enumerate().map(|(w, c)| async move {
        for i in 0..10u8 {
            let a = new_append(name, vec![w as u8, i], &[key(10 + w as u8)]);
            c.write_record(&Write::Append(a)).await.expect("append");
        }
    });
    futures::future::join_all(jobs).await;
    let r = owner.get_record(name).await.unwrap();
    assert_eq!(r.appends.len(), 30, "every append is there");
    let agreed = wait_for_agreement(&net, &name, K).await;
    assert_eq!(agreed.appends.len(), 30);

    // The owner removes one; it stays removed.
    let gone = r.appends[0].id();
    owner
        .update_record(name, Change::RemoveAppends { ids: vec![gone] }, &[key(1)])
        .await
        .unwrap();
    let r = owner.get_record(name).await.unwrap();
    assert_eq!(r.appends.len(), 29);
    assert!(r.appends.iter().all(|a| a.id() != gone));

    // Two members of the group stop: the record is still read, and it is
    // back on K running nodes.
    let group = owner.close_group(&name).await;
    let stopped: Vec<usize> = (0..net.len())
        .filter(|i| group.contains(&net.node(*i).unwrap().peer_id()))
        .take(2)
        .collect();
    for i in &stopped {
        net.stop_node(*i).await;
    }
    let r2 = owner.get_record(name).await.unwrap();
    assert_eq!(r2, r);
    let healed = wait_for_agreement(&net, &name, K).await;
    assert_eq!(healed, r);
    // A stopped member restarted from its directory still holds the record.
    net.restart_node(stopped[0]).await.unwrap();
    let back = net.node(stopped[0]).unwrap().store().record(&name).unwrap();
    assert_eq!(back.map(|b| b.genesis), Some(r.genesis.clone()));
    for c in &writers {
        c.shutdown().await;
    }
    owner.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_far_from_an_address_refuses_to_create_there() {
    use safe_protocol::messages::{Refusal, Request, Response};
    let dir = tempfile::tempdir().unwrap();
    let net = safe_testkit::testnet(dir.path(), 10).await;
    let conn = safe_testkit::client(&net).await;
    let key = safe_protocol::mutable::SigningKey::from_bytes(&[5; 32]);
    let create = safe_client::mutable::new_create(b"far", 0, Vec::new(), 1, false, &key).unwrap();
    let write = safe_protocol::mutable::Write::Create(create);
    let address = write.address();
    let write = write.encode().unwrap();
    let peers: Vec<_> = net.nodes().map(|n| n.peer_id()).collect();
    let order = safe_network::close_group::closest(&address, peers.clone(), peers.len());
    let farthest = *order.last().unwrap();
    let nearest = order[0];
    let far = conn
        .request(
            farthest,
            Request::PutRecord {
                write: write.clone().into(),
                payment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(far, Response::Refused(Refusal::NotResponsible));
    let near = conn
        .request(
            nearest,
            Request::PutRecord {
                write: write.into(),
                payment: None,
            },
        )
        .await
        .unwrap();
    assert!(matches!(near, Response::RecordStored(_)), "{near:?}");
    net.down().await;
}
