//! Private messages on an in-process network of real nodes on 127.0.0.1,
//! through the real client: alice writes to bob's name, bob reads it after
//! logging in again, carol cannot open it, and tampered, replayed,
//! unworked and flooding appends are caught (docs/DESIGN-messaging.md).

use safe_client::msg::{MsgError, MsgKeys, Sender, open_letter};
use safe_client::{Account, Client, MutableError, RecordStore, RootSecret};
use safe_protocol::XorName;
use safe_protocol::inbox::{EPOCH_SECS, InboxAppend, MIN_WORK, find_nonce, size_bits};
use safe_protocol::mutable::{Append, RecordError, Signed, SigningKey, Write};
use safe_testkit::client;

const PASSWORD: &str = "correct horse battery";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn account(c: &Client, name: &str) -> Account {
    c.create_account(name, PASSWORD, RootSecret::generate().unwrap(), |_| {})
        .await
        .unwrap()
}

/// Appends `envelope` to `inbox` as anyone could: a fresh key, this hour,
/// `bits` bits of work.
async fn raw_append(
    c: &Client,
    inbox: XorName,
    envelope: Vec<u8>,
    bits: u8,
) -> Result<(), MutableError> {
    let value = InboxAppend {
        epoch: now() / EPOCH_SECS,
        work: MIN_WORK,
        envelope,
    }
    .encode()
    .unwrap();
    let start = u64::from_le_bytes(rand_key()[..8].try_into().unwrap());
    let nonce = find_nonce(&inbox, &value, start, bits);
    let mut a = Signed::new(Append {
        address: inbox,
        value,
        nonce,
    });
    a.sign(&SigningKey::from_bytes(&rand_key()));
    RecordStore::write_record(c, &Write::Append(a)).await
}

/// A one-time key, different each call.
fn rand_key() -> [u8; 32] {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut key = [0u8; 32];
    key.copy_from_slice(
        XorName::from_content(&[n.to_be_bytes(), now().to_be_bytes()].concat()).as_bytes(),
    );
    key
}

/// The envelopes in `inbox`, in append order.
async fn envelopes(c: &Client, inbox: XorName) -> Vec<Vec<u8>> {
    let r = c.get_record(inbox).await.unwrap();
    r.appends
        .iter()
        .map(|a| InboxAppend::decode(&a.body.value).unwrap().envelope)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alice_writes_to_bobs_name_and_only_bob_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let net = safe_testkit::testnet(dir.path(), 12).await;
    let conn = client(&net).await;
    let c = Client::from((*conn).clone());
    let alice = account(&c, "alice").await;
    let bob = account(&c, "bob").await;
    let carol = account(&c, "carol").await;

    // Bob registers his name, points it at his profile, and asks for the
    // least work so the flood below is quick.
    let bob_key = bob.root().named_key("default");
    c.register_name("bob", Vec::new(), 1, &bob_key)
        .await
        .unwrap();
    let (bob_profile, profile) = c.msg_setup(&bob, Some(MIN_WORK)).await.unwrap();
    c.msg_link_name(&bob, "bob", &bob_key).await.unwrap();
    assert_eq!(profile.work, MIN_WORK);
    assert_eq!(c.msg_profile("bob").await.unwrap().0, bob_profile);

    // Alice writes: a short message, and one stored as a private file.
    let long: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let short = c
        .msg_send(&alice, "bob", b"lunch at noon?".to_vec(), None)
        .await
        .unwrap();
    let file = c.msg_send(&alice, "bob", long.clone(), None).await.unwrap();
    assert!(!short.as_file && file.as_file);

    // Bob, logged in afresh (as on another machine), reads both, and
    // finds alice's profile vouches for them.
    let bob2 = c.login("bob", PASSWORD).await.unwrap();
    let view = c.msg_list(&bob2).await.unwrap();
    let ids: Vec<&str> = view.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(view.messages.len(), 2, "{view:?}");
    assert!(ids.contains(&short.id.as_str()) && ids.contains(&file.id.as_str()));
    assert!(view.unreadable.is_empty(), "{:?}", view.unreadable);
    let (m, body) = c.msg_read(&bob2, &short.id[..8]).await.unwrap();
    assert_eq!(body, b"lunch at noon?");
    assert_eq!(m.sender, Sender::Verified);
    assert_eq!(m.letter.from, c.msg_setup(&alice, None).await.unwrap().0);
    let (_, body) = c.msg_read(&bob2, &file.id).await.unwrap();
    assert_eq!(body, long);

    // Carol reads bob's public inbox and can open none of it, even as if
    // it were her own; her own inbox is empty.
    let inbox = profile.inbox;
    let sealed = envelopes(&c, inbox).await;
    assert_eq!(sealed.len(), 2);
    let carol_keys = MsgKeys::of(&carol);
    for e in &sealed {
        assert!(open_letter(e, &carol_keys, &inbox).is_err());
        assert!(open_letter(e, &carol_keys, &carol_keys.inbox_address()).is_err());
    }
    assert!(c.msg_list(&carol).await.unwrap().messages.is_empty());

    // A tampered copy (one bit of the sealed letter flipped) is listed as
    // unreadable, never as a message.
    let mut tampered = sealed[0].clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    raw_append(
        &c,
        inbox,
        tampered.clone(),
        MIN_WORK + size_bits(tampered.len()),
    )
    .await
    .unwrap();
    let view = c.msg_list(&bob).await.unwrap();
    assert_eq!(view.messages.len(), 2);
    assert_eq!(view.unreadable.len(), 1, "{:?}", view.unreadable);
    assert!(
        view.unreadable[0].reason.contains("tampered"),
        "{:?}",
        view.unreadable
    );

    // The nodes refuse an append without the work the inbox asks.
    let refused = raw_append(&c, inbox, vec![7; 100], 0).await;
    assert!(
        matches!(refused, Err(MutableError::Refused(RecordError::NotEnoughWork { need })) if need >= MIN_WORK),
        "{refused:?}"
    );

    // Someone appends a copy of alice's envelope again: shown once. Once
    // bob deletes the letter, another copy does not bring it back.
    raw_append(&c, inbox, sealed[0].clone(), MIN_WORK)
        .await
        .unwrap();
    let view = c.msg_list(&bob).await.unwrap();
    assert_eq!(view.messages.len(), 2);
    let copied = view.messages.iter().find(|m| m.appends.len() == 2);
    let copied = copied
        .expect("the copy is shown with its original")
        .id
        .clone();
    c.msg_delete(&bob, &copied).await.unwrap();
    raw_append(&c, inbox, sealed[0].clone(), MIN_WORK)
        .await
        .unwrap();
    let view = c.msg_list(&bob2).await.unwrap();
    assert_eq!(view.messages.len(), 1, "{view:?}");
    assert!(view.messages.iter().all(|m| m.id != copied));
    assert_eq!(c.msg_delete_unreadable(&bob).await.unwrap(), 1);

    // Carol floods bob's inbox until it is full: refused with a clear
    // error. Bob blocks her, her messages go, and alice gets through.
    let mut sent = 0;
    let full = loop {
        match c.msg_send(&carol, "bob", vec![b'x'; 900], None).await {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 200, "the inbox never filled");
    };
    assert!(matches!(full, MsgError::InboxFull(_)), "{full}");
    assert!(full.to_string().contains("bob's inbox is full"), "{full}");
    assert!(sent > 10, "{sent}");
    let carol_sign: String = carol_keys
        .sign_key()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Blocked by one of her messages: the key that signed it.
    let view = c.msg_list(&bob).await.unwrap();
    let hers = view
        .messages
        .iter()
        .find(|m| m.letter.sign == carol_keys.sign_key());
    let hers = hers.expect("carol's messages are listed").id.clone();
    let blocked = c.msg_block(&bob, &hers[..12], false).await.unwrap();
    assert_eq!(blocked, carol_sign);
    let view = c.msg_list(&bob).await.unwrap();
    assert_eq!(view.removed_blocked, sent);
    assert_eq!(view.messages.len(), 1);
    c.msg_send(&alice, "bob", b"still there?".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(c.msg_list(&bob).await.unwrap().messages.len(), 2);

    conn.shutdown().await;
    net.down().await;
}
