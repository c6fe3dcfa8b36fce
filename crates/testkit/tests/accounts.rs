//! Accounts on an in-process network of real nodes on 127.0.0.1, through
//! the real client and raw requests: what a stranger is told, what an
//! owner may do, the rate limit, and two password changes at once.
//!
//! Every node answers at most `RATE_BURST` password-key fetches of one
//! account in a burst, so each test counts the logins it makes on one
//! account and uses fresh accounts for more.

use std::sync::Arc;

use bytes::Bytes;
use safe_client::RootSecret;
use safe_client::account::AccountError;
use safe_client::mutable::prepare;
use safe_client::{Client, Connection, RecordStore};
use safe_protocol::XorName;
use safe_protocol::account::{ACCOUNT_TAG, AccountFetch, RATE_BURST};
use safe_protocol::messages::{Refusal, Request, Response};
use safe_protocol::mutable::{Change, Op, RecordError, Signed, SigningKey, Write, record_address};
use safe_testkit::{K, client};

const PASSWORD: &str = "correct horse battery";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn node_key(peer: &safe_network::libp2p::PeerId) -> [u8; 32] {
    safe_network::close_group::peer_to_key(peer).expect("an ed25519 node")
}

async fn ask(c: &Connection, peer: safe_network::libp2p::PeerId, r: Request) -> Response {
    c.request(peer, r).await.expect("the node answers")
}

/// An owner operation on `address` by a stranger's key, as an attacker
/// would send it without knowing the record.
fn stranger_op(address: XorName) -> Bytes {
    let mut op = Signed::new(Op {
        address,
        replaces: 0,
        prev: [1; 32],
        change: Change::Set {
            key: b"login".to_vec(),
            value: vec![1, 2, 3],
        },
        result: [2; 32],
    });
    op.sign(&SigningKey::from_bytes(&[66; 32]));
    Write::Op(op).encode().unwrap().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_learn_nothing_and_owners_may_only_set_the_login() {
    let dir = tempfile::tempdir().unwrap();
    let net = safe_testkit::testnet(dir.path(), 10).await;
    let conn = client(&net).await;
    let c = Client::from((*conn).clone());

    let mut phrase = None;
    let alice = c
        .create_account("alice", PASSWORD, RootSecret::generate().unwrap(), |root| {
            phrase = Some(root.phrase())
        })
        .await
        .unwrap();
    let phrase = phrase.expect("the phrase is shown");
    // Tokens of alice's rate-limit bucket taken at each member, counted
    // as they go: the create (1).
    let logged = c.login("alice", PASSWORD).await.unwrap(); // 2
    assert_eq!(logged.address(), alice.address());
    assert_eq!(*logged.root().phrase(), *phrase);

    // A wrong password and an unknown user: one answer.
    let wrong = c.login("alice", "wrong horse battery").await.unwrap_err(); // 3
    let unknown = c.login("nobody-at-all", PASSWORD).await.unwrap_err();
    assert!(matches!(wrong, AccountError::WrongCredentials), "{wrong}");
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert!(matches!(
        c.create_account(
            "alice",
            "another good password",
            RootSecret::generate().unwrap(),
            |_| {}
        )
        .await
        .unwrap_err(),
        AccountError::Taken(_)
    )); // 5: the create, and the check with its (not an owner's) key

    // What each member of the group tells a stranger, for alice's account
    // and for an address that holds nothing: the same.
    let empty = record_address(b"no such locator", ACCOUNT_TAG);
    let stranger = SigningKey::from_bytes(&[77; 32]);
    let group = conn.close_group(&alice.address()).await;
    assert_eq!(group.len(), K);
    for peer in &group {
        let to = node_key(peer);
        for address in [alice.address(), empty] {
            let fetch = AccountFetch::new(address, to, now(), &stranger);
            assert_eq!(
                ask(&conn, *peer, Request::GetAccount(fetch)).await,
                Response::NotFound
            ); // 6 on alice's
            assert_eq!(
                ask(&conn, *peer, Request::GetRecord { name: address }).await,
                Response::NotFound,
                "a plain read of an account is not served to a client"
            );
            assert_eq!(
                ask(
                    &conn,
                    *peer,
                    Request::PutRecord {
                        write: stranger_op(address),
                        payment: None,
                    }
                )
                .await,
                Response::RecordRefused(RecordError::NotFound),
                "a stranger's write is answered as if nothing were there"
            );
        }
        // The owner's fetch is served (and takes no token).
        let owner = alice.root().owner_key();
        let fine = AccountFetch::new(alice.address(), to, now(), &owner);
        assert!(matches!(
            ask(&conn, *peer, Request::GetAccount(fine)).await,
            Response::Record(_)
        ));
    }

    // Even the owner may only set the login: no new owners, no other
    // entries, no removal; the recovery phrase keeps its power. Sent to
    // each member as it is (the client would refuse these itself first).
    let owner = alice.root().owner_key();
    let record = c.fetch_account(alice.address(), &owner).await.unwrap();
    let takeover = Change::Owners {
        owners: vec![stranger.verifying_key().to_bytes()],
        threshold: 1,
    };
    for change in [
        takeover,
        Change::Set {
            key: b"other".to_vec(),
            value: b"x".to_vec(),
        },
        Change::Remove {
            key: b"login".to_vec(),
        },
    ] {
        let mut op = prepare(&record, change).unwrap();
        op.sign(&owner);
        let write: Bytes = Write::Op(op).encode().unwrap().into();
        for peer in &group {
            assert_eq!(
                ask(
                    &conn,
                    *peer,
                    Request::PutRecord {
                        write: write.clone(),
                        payment: None,
                    }
                )
                .await,
                Response::RecordRefused(RecordError::NotAllowed)
            );
        }
    }
    let after = c.fetch_account(alice.address(), &owner).await.unwrap();
    assert_eq!(after, record, "nothing changed");
    // (So it still opens with the password; not tried here, to keep
    // each member's tokens for alice, 6 taken by now, under RATE_BURST.)

    conn.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fetches_are_rate_limited_alike_except_for_owners() {
    let dir = tempfile::tempdir().unwrap();
    let net = safe_testkit::testnet(dir.path(), 10).await;
    let conn = client(&net).await;
    let c = Client::from((*conn).clone());
    let bob = c
        .create_account("bob", PASSWORD, RootSecret::generate().unwrap(), |_| {})
        .await
        .unwrap(); // 1 token at each member
    let empty = record_address(b"nobody here", ACCOUNT_TAG);
    let stranger = SigningKey::from_bytes(&[78; 32]);
    let peer = conn.close_group(&bob.address()).await[0];
    let to = node_key(&peer);
    // A fetch signed for another node, or too old, is refused even with
    // the owner's key (and takes a token: 2 and 3).
    let owner = bob.root().owner_key();
    let elsewhere = AccountFetch::new(bob.address(), [9; 32], now(), &owner);
    assert_eq!(
        ask(&conn, peer, Request::GetAccount(elsewhere)).await,
        Response::NotFound
    );
    let stale = AccountFetch::new(bob.address(), to, now() - 7200, &owner);
    assert_eq!(
        ask(&conn, peer, Request::GetAccount(stale)).await,
        Response::NotFound
    );
    for (address, used) in [(bob.address(), 3), (empty, 0)] {
        for _ in used..RATE_BURST {
            let f = AccountFetch::new(address, to, now(), &stranger);
            assert_eq!(
                ask(&conn, peer, Request::GetAccount(f)).await,
                Response::NotFound
            );
        }
        let f = AccountFetch::new(address, to, now(), &stranger);
        assert_eq!(
            ask(&conn, peer, Request::GetAccount(f)).await,
            Response::Refused(Refusal::RateLimited),
            "the same answer whether the account exists or not"
        );
    }
    // A create that stopped after claiming the name (failure, Ctrl-C) is
    // finished by running it again with the same root secret (kept in
    // the pending-create file by the CLI).
    let root = RootSecret::generate().unwrap();
    c.create_account("dave", PASSWORD, root.clone(), |_| {})
        .await
        .unwrap();
    let again = c
        .create_account("dave", "a different password", root, |_| {})
        .await
        .unwrap();
    assert_eq!(
        c.login("dave", "a different password")
            .await
            .unwrap()
            .address(),
        again.address()
    );

    // The owner (holder of the root secret, as with the recovery phrase)
    // is still served.
    let f = AccountFetch::new(bob.address(), to, now(), &owner);
    assert!(matches!(
        ask(&conn, peer, Request::GetAccount(f)).await,
        Response::Record(_)
    ));
    conn.shutdown().await;
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_password_changes_at_once_never_lose_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let net = safe_testkit::testnet(dir.path(), 10).await;
    let one = Arc::new(Client::from((*client(&net).await).clone()));
    let two = Arc::new(Client::from((*client(&net).await).clone()));
    let mut phrase = None;
    one.create_account("carol", PASSWORD, RootSecret::generate().unwrap(), |r| {
        phrase = Some(r.phrase())
    })
    .await
    .unwrap(); // 1
    let phrase = phrase.unwrap();
    let a = {
        let one = one.clone();
        tokio::spawn(async move {
            one.change_password("carol", PASSWORD, "first new password")
                .await
        })
    };
    let b = {
        let two = two.clone();
        tokio::spawn(async move {
            two.change_password("carol", PASSWORD, "second new password")
                .await
        })
    }; // 3
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let results = [("first new password", a), ("second new password", b)];
    let won: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(p, _)| *p)
        .collect();
    for (_, r) in &results {
        if let Err(e) = r {
            assert!(
                matches!(
                    e,
                    AccountError::ChangedElsewhere | AccountError::WrongCredentials
                ),
                "the loser is told: {e}"
            );
        }
    }
    assert!(!won.is_empty(), "{results:?}");
    // What is in force is the password of a change that reported success
    // (the last one, if both did), and the phrase still opens the account.
    let mut opened = 0;
    for (p, _) in &results {
        if one.login("carol", p).await.is_ok() {
            assert!(
                won.contains(p),
                "{p} opens the account but was not reported"
            );
            opened += 1;
        }
    } // 5
    assert_eq!(opened, 1);
    let back = two
        .recover_account("carol", &phrase, "third new password")
        .await
        .unwrap();
    assert_eq!(
        one.login("carol", "third new password")
            .await
            .unwrap()
            .address(),
        back.address()
    ); // 6
    one.shutdown().await;
    two.shutdown().await;
    net.down().await;
}
