//! End to end through the real binary: `safe testnet up`, `safe put`,
//! `safe get`, then SIGTERM stops the network cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn testnet_put_get_stop_restart() {
    let home = tempfile::tempdir().unwrap();
    // The default testnet of this data directory: its contacts are the
    // ones clients read by default.
    let net_dir = home.path().join("testnet");
    let guard = up(home.path(), &net_dir);
    assert!(net_dir.join("contacts").exists());
    assert!(home.path().join("contacts").exists());

    // A directory's worth of files of different sizes.
    let data_dir = tempfile::tempdir().unwrap();
    let mut stored = Vec::new();
    for (name, size) in [
        ("empty", 0usize),
        ("small.txt", 11),
        ("mid.bin", 1_500_000),
        ("big.bin", 6_000_000),
    ] {
        let path = data_dir.path().join(name);
        let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let put = safe(home.path(), &["put", path.to_str().unwrap()]);
        assert!(
            put.status.success(),
            "put {name}: {}",
            String::from_utf8_lossy(&put.stderr)
        );
        let address = String::from_utf8(put.stdout).unwrap().trim().to_string();
        assert!(address.starts_with("safe://f"), "{address}");
        let out = data_dir.path().join(format!("{name}.out"));
        let get = safe(home.path(), &["get", &address, "-o", out.to_str().unwrap()]);
        assert!(
            get.status.success(),
            "get {name}: {}",
            String::from_utf8_lossy(&get.stderr)
        );
        assert_eq!(std::fs::read(&out).unwrap(), bytes, "{name} round trip");
        stored.push((address, bytes));
    }
    // Read anonymously, through relay circuits: the same bytes. A put
    // through circuits cannot pay yet, so on this testnet (which charges)
    // it is refused in one line; the message test below puts through
    // circuits on a free testnet.
    let (address, bytes) = &stored[3];
    let anon = safe(home.path(), &["get", "--anonymous", address]);
    assert!(
        anon.status.success(),
        "anonymous get: {}",
        String::from_utf8_lossy(&anon.stderr)
    );
    assert_eq!(&anon.stdout, bytes, "anonymous round trip");
    let hidden = home.path().join("hidden.bin");
    std::fs::write(&hidden, safe_testkit::bytes_for(77, 1_500_000)).unwrap();
    let put_anon = fails(
        home.path(),
        &["put", "--anonymous", hidden.to_str().unwrap()],
    );
    assert!(
        put_anon.contains("anonymous puts cannot pay yet"),
        "{put_anon}"
    );
    // The whole directory as a snapshot over the network, back identical.
    // (Files changed in the last two seconds are never taken from the put
    // cache, so these are dated a minute back.)
    let minute_ago = std::time::SystemTime::now() - Duration::from_secs(60);
    for f in std::fs::read_dir(data_dir.path()).unwrap() {
        let f = std::fs::File::options()
            .write(true)
            .open(f.unwrap().path())
            .unwrap();
        f.set_modified(minute_ago).unwrap();
    }
    let tree = ok(home.path(), &["put", data_dir.path().to_str().unwrap()]);
    assert!(tree.starts_with("safe://d"), "{tree}");
    let tree_out = home.path().join("tree-out");
    ok(
        home.path(),
        &["get", &tree, "-o", tree_out.to_str().unwrap()],
    );
    let diff = Command::new("diff")
        .arg("-r")
        .arg(data_dir.path())
        .arg(&tree_out)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let listing = ok(home.path(), &["ls", &tree]);
    assert!(listing.contains("big.bin"), "{listing}");
    // Put again: the put cache and the network agree nothing changed, so
    // nothing is sent; one changed file sends a little.
    let again = json(&ok(
        home.path(),
        &["put", data_dir.path().to_str().unwrap(), "--json"],
    ));
    assert_eq!(again["address"], tree.as_str());
    assert_eq!(again["sent_bytes"], 0, "{again}");
    std::fs::write(data_dir.path().join("small.txt"), b"changed").unwrap();
    let changed = json(&ok(
        home.path(),
        &["put", data_dir.path().to_str().unwrap(), "--json"],
    ));
    assert_ne!(changed["address"], tree.as_str());
    let sent = changed["sent_bytes"].as_u64().unwrap();
    assert!(
        sent > 0 && sent < 1_000_000,
        "only the changed manifest: {changed}"
    );

    // A mutable record, to read back after the restart.
    let record = ok(home.path(), &["mutable", "create", "survivor"]);
    ok(home.path(), &["mutable", "set", &record, "k", "kept"]);
    down(guard);

    // Up again from the same directory: the data is still there.
    let guard = up(home.path(), &net_dir);
    for (address, bytes) in &stored {
        let get = safe(home.path(), &["get", address]);
        assert!(
            get.status.success(),
            "get after restart: {}",
            String::from_utf8_lossy(&get.stderr)
        );
        assert_eq!(&get.stdout, bytes);
    }
    assert_eq!(ok(home.path(), &["mutable", "get", &record, "k"]), "kept");
    down(guard);
}

/// Runs safe and returns stdout, asserting success.
fn ok(home: &Path, args: &[&str]) -> String {
    let out = safe(home, args);
    assert!(
        out.status.success(),
        "safe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs safe and returns its one-line error, asserting failure.
fn fails(home: &Path, args: &[&str]) -> String {
    let out = safe(home, args);
    assert!(!out.status.success(), "safe {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn mutable_records_through_the_cli() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let guard = up(h, &h.join("testnet"));

    let alice = ok(h, &["keys", "create", "alice"]);
    assert_eq!(alice.len(), 64, "prints the public key: {alice}");
    let bob = json(&ok(h, &["keys", "create", "bob", "--json"]))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    ok(h, &["keys", "create", "carol"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.join("keys/alice.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let list = json(&ok(h, &["keys", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(fails(h, &["keys", "create", "alice"]).contains("already exists"));

    // Create, set, read back.
    let created = json(&ok(
        h,
        &["mutable", "create", "profile", "--key", "alice", "--json"],
    ));
    let addr = created["address"].as_str().unwrap().to_string();
    assert!(addr.starts_with("safe://m"), "{addr}");
    assert!(fails(h, &["mutable", "create", "profile", "--key", "bob"]).contains("already exists"));
    // The creator repeating the create is told the truth, with status 3,
    // and still gets the address.
    let again = safe(h, &["mutable", "create", "profile", "--key", "alice"]);
    assert_eq!(again.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), addr);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains("already exists (created by you, now at version 0"),
        "{said}"
    );
    ok(
        h,
        &["mutable", "set", &addr, "colour", "blue", "--key", "alice"],
    );
    assert_eq!(ok(h, &["mutable", "get", &addr, "colour"]), "blue");
    let shown = ok(h, &["get", &addr]);
    assert!(
        shown.contains("version: 1") && shown.contains(&alice),
        "{shown}"
    );

    // Transfer to bob: alice refused, bob accepted.
    let moved = json(&ok(
        h,
        &[
            "mutable", "owners", &addr, "--set", &bob, "--key", "alice", "--json",
        ],
    ));
    assert_eq!(moved["version"], 2);
    let err = fails(
        h,
        &["mutable", "set", &addr, "colour", "red", "--key", "alice"],
    );
    assert!(err.contains("not signed by an owner"), "{err}");
    ok(
        h,
        &["mutable", "set", &addr, "colour", "red", "--key", "bob"],
    );
    let r = json(&ok(h, &["mutable", "get", &addr, "--json"]));
    assert_eq!(r["version"], 3);
    // Alice repeating her create after the record changed hands: the
    // truth, with who owns it now.
    let again = safe(h, &["mutable", "create", "profile", "--key", "alice"]);
    assert_eq!(again.status.code(), Some(3));
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains(&format!(
            "already exists (created by you, now at version 3, owned by {bob})"
        )),
        "{said}"
    );
    assert_eq!(r["owners"], serde_json::json!([bob]));
    assert_eq!(
        r["entries"],
        serde_json::json!([{ "key": "colour", "value": "red" }])
    );

    // 2 of 3: prepared by one owner, signed by another, submitted by anyone.
    let shared = ok(
        h,
        &[
            "mutable",
            "create",
            "shared",
            "--tag",
            "7",
            "--owners",
            "alice,bob,carol",
            "--threshold",
            "2",
            "--key",
            "carol",
        ],
    );
    let err = fails(h, &["mutable", "set", &shared, "k", "v", "--key", "alice"]);
    assert!(err.contains("needs 2"), "{err}");
    let file = h.join("op.txt");
    let file = file.to_str().unwrap();
    ok(
        h,
        &[
            "mutable",
            "set",
            &shared,
            "k",
            "v",
            "--key",
            "alice",
            "--prepare",
            file,
        ],
    );
    let signed = json(&ok(h, &["mutable", "sign", file, "--key", "bob", "--json"]));
    assert_eq!(signed["signatures"], 2);
    assert_eq!(signed["signed_by"], serde_json::json!([bob]));
    let done = json(&ok(h, &["mutable", "submit", file, "--json"]));
    assert_eq!(done["version"], 1);
    assert_eq!(ok(h, &["mutable", "get", &shared, "k"]), "v");
    // Shrinking the owners below the threshold needs an explicit one.
    let err = fails(
        h,
        &[
            "mutable", "owners", &shared, "--set", "alice", "--key", "alice",
        ],
    );
    assert!(err.contains("give --threshold"), "{err}");
    // Submitting the same operation again changes nothing, and says so.
    let replay = safe(h, &["mutable", "submit", file]);
    assert_eq!(replay.status.code(), Some(3));
    let said = String::from_utf8_lossy(&replay.stderr);
    assert!(
        said.contains("already applied (the record is at version 1)"),
        "{said}"
    );
    let r = json(&ok(h, &["mutable", "get", &shared, "--json"]));
    assert_eq!(r["version"], 1);

    // An inbox anyone appends to.
    let inbox = ok(
        h,
        &[
            "mutable",
            "create",
            "inbox",
            "--public-append",
            "--key",
            "alice",
        ],
    );
    for word in ["hello", "zebra", "apple", "middle"] {
        ok(h, &["mutable", "append", &inbox, word, "--key", "bob"]);
    }
    let r = json(&ok(h, &["mutable", "get", &inbox, "--json"]));
    let order: Vec<&str> = r["appends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["hello", "zebra", "apple", "middle"],
        "in the order made"
    );
    // `safe get` of a record takes --json too.
    assert_eq!(
        json(&ok(h, &["get", &inbox, "--json"]))["appends"],
        r["appends"]
    );

    // Bad input: one clear line.
    assert!(fails(h, &["mutable", "get", "safe://nonsense"]).contains("invalid address"));
    let nobody = "safe://mbcw2k6fvxkcqbzwgbxlh5t4ciwr3kidlkm3xrggacnyqdoakd7iw";
    let err = fails(h, &["mutable", "get", nobody]);
    assert!(err.contains("no mutable record at safe://m"), "{err}");
    down(guard);
}

#[test]
fn a_testnet_elsewhere_leaves_the_default_contacts_alone() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mine = "# the default testnet's contacts\n";
    std::fs::write(h.join("contacts"), mine).unwrap();
    let (guard, ready) = start(h, &h.join("elsewhere"));
    assert_eq!(std::fs::read_to_string(h.join("contacts")).unwrap(), mine);
    assert!(h.join("elsewhere/contacts").exists());
    // It says how to reach it instead, and that works.
    let peers = ready
        .split("SAFE_PEERS=")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no SAFE_PEERS hint: {ready}"))
        .to_string();
    let file = h.join("f.txt");
    std::fs::write(&file, b"reached through SAFE_PEERS").unwrap();
    let put = Command::new(SAFE)
        .args(["put", file.to_str().unwrap()])
        .env("SAFE_HOME", h)
        .env("SAFE_PEERS", &peers)
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    down(guard);
    assert_eq!(std::fs::read_to_string(h.join("contacts")).unwrap(), mine);
}

#[test]
fn node_sizes_take_units() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("node");
    let mut child = Command::new(SAFE)
        .args([
            "node",
            "run",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--max-storage",
            "10G",
            "--disk-reserve",
            "1MiB",
            "--dir",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = Guard(child);
    let first = BufReader::new(stdout).lines().next().unwrap().unwrap();
    assert!(first.starts_with("node "), "the node started: {first}");
    drop(guard);
    let bad = safe(
        home.path(),
        &[
            "node",
            "run",
            "--dir",
            dir.to_str().unwrap(),
            "--max-storage",
            "10X",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown unit"));
    // A genesis key and a reward address are checked before anything
    // starts.
    for (flag, value, says) in [
        ("--genesis", "abc", "64 hex digits"),
        (
            "--genesis",
            &"00".repeat(32),
            "not a valid ed25519 public key",
        ),
        (
            "--reward-key",
            "safe://wnotanaddress",
            "not a wallet address",
        ),
    ] {
        let bad = safe(
            home.path(),
            &["node", "run", "--dir", dir.to_str().unwrap(), flag, value],
        );
        assert_eq!(bad.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
}

#[test]
fn an_unreachable_network_is_one_short_line() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Ten peers that refuse connections: ports just freed.
    let mut contacts = String::new();
    for _ in 0..10 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        contacts.push_str(&format!("/ip4/127.0.0.1/tcp/{port}\n"));
    }
    std::fs::write(h.join("contacts"), contacts).unwrap();
    let file = h.join("f");
    std::fs::write(&file, b"x").unwrap();
    let err = fails(h, &["put", file.to_str().unwrap()]);
    let want = format!(
        "error: cannot reach the network: none of the 10 peers in {} answered (connection refused) — is 'safe testnet up' running?",
        h.join("contacts").display()
    );
    assert_eq!(err.trim(), want);
    // The details are there for whoever asks, without colour codes when
    // not on a terminal.
    let out = Command::new(SAFE)
        .args(["put", file.to_str().unwrap()])
        .env("SAFE_HOME", h)
        .env_remove("SAFE_PEERS")
        .env("SAFE_LOG", "debug")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("cannot dial"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI colours in a redirected log"
    );
    // No contacts at all: says what to do.
    std::fs::remove_file(h.join("contacts")).unwrap();
    let err = fails(h, &["put", file.to_str().unwrap()]);
    assert!(err.contains("safe testnet up"), "{err}");
}

/// The peers in `home`'s contacts file, as `SAFE_PEERS` takes them.
fn fails_with(home: &Path, peers: &str, args: &[&str], stdin: &str) -> String {
    let out = safe_with(home, peers, args, stdin);
    assert!(!out.status.success(), "safe {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err.trim().to_string()
}

#[test]
fn an_account_opens_from_another_home_with_the_password_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let guard = up(&one, &one.join("testnet"));
    let peers = peers_of(&one);
    let p = peers.as_str();
    let pw = "correct horse battery\n";
    let login = ["account", "login", "alice", "--password-stdin"];

    assert_eq!(
        ok_with(&one, p, &["account", "status"], ""),
        "not logged in"
    );
    let short = fails_with(
        &one,
        p,
        &["account", "create", "alice", "--password-stdin"],
        "short\n",
    );
    assert!(short.contains("at least 10 characters"), "{short}");
    let no_tty = fails_with(&one, p, &["account", "login", "alice"], "");
    assert!(no_tty.contains("--password-stdin"), "{no_tty}");
    let fs_free = fails_with(&one, p, &["account", "password", "--password-stdin"], "");
    assert!(fs_free.contains("log in first"), "{fs_free}");

    // Create: the phrase is printed once, the session is private.
    let phrase = ok_with(
        &one,
        p,
        &["account", "create", "alice", "--password-stdin"],
        pw,
    );
    assert_eq!(phrase.split_whitespace().count(), 24, "{phrase}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(one.join("session"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let status = json(&ok_with(&one, p, &["account", "status", "--json"], ""));
    assert_eq!(status["username"], "alice");
    let work = ok_with(&one, p, &["keys", "create", "work"], "");
    // A record owned by the account's default key.
    let record = ok_with(&one, p, &["mutable", "create", "profile"], "");
    ok_with(&one, p, &["mutable", "set", &record, "colour", "blue"], "");

    // Another machine: a wrong password and an unknown user are one
    // answer; the right one gives back every key and the records.
    let wrong = fails_with(&two, p, &login, "wrong horse battery\n");
    let unknown = fails_with(
        &two,
        p,
        &["account", "login", "nobody", "--password-stdin"],
        pw,
    );
    assert_eq!(wrong, "error: wrong username or password");
    assert_eq!(unknown, wrong);
    let keys_before = json(&ok_with(&one, p, &["keys", "list", "--json"], ""));
    ok_with(&two, p, &login, pw);
    let keys_after = json(&ok_with(&two, p, &["keys", "list", "--json"], ""));
    assert_eq!(keys_after, keys_before);
    assert!(keys_after.to_string().contains(&work));
    ok_with(&two, p, &["mutable", "set", &record, "colour", "red"], "");
    assert_eq!(
        ok_with(&one, p, &["mutable", "get", &record, "colour"], ""),
        "red"
    );

    // A new password from the second machine; then the phrase sets another.
    ok_with(
        &two,
        p,
        &["account", "password", "--password-stdin"],
        "correct horse battery\nnew password 1234\n",
    );
    // (The old password's refusal is checked in the library's tests:
    // each node answers 8 password attempts per account in a burst, and
    // this test keeps to 6.)
    ok_with(&one, p, &login, "new password 1234\n");
    let bad_phrase = fails_with(
        &two,
        p,
        &["account", "recover", "alice", "--password-stdin"],
        "not a phrase\nrecovered pw 5678\n",
    );
    assert!(bad_phrase.contains("recovery phrase"), "{bad_phrase}");
    ok_with(
        &two,
        p,
        &["account", "recover", "alice", "--password-stdin"],
        &format!("{phrase}\nrecovered pw 5678\n"),
    );

    // Logout erases the session; the name stays taken.
    ok_with(&two, p, &["account", "logout"], "");
    assert!(!two.join("session").exists());
    assert_eq!(
        ok_with(&two, p, &["account", "status"], ""),
        "not logged in"
    );
    // Whether a username is taken is told only to a create that pays (an
    // unpaid one must not learn whether an account exists): the cost
    // line, then one error line.
    let out = safe_with(
        &two,
        p,
        &["account", "create", "alice", "--password-stdin"],
        "another long password\n",
    );
    assert!(!out.status.success());
    let said = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = said.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{said}");
    assert!(
        lines[0].starts_with("storing 1 new chunk or record costs"),
        "{said}"
    );
    assert!(
        lines[1].starts_with("error: ") && lines[1].contains("taken"),
        "{said}"
    );
    down(guard);
}

#[test]
fn a_message_to_a_name_is_read_from_another_home_and_by_nobody_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (alice, bob, bob2, carol) = (
        d.join("alice"),
        d.join("bob"),
        d.join("bob2"),
        d.join("carol"),
    );
    // Free: the anonymous sends below put chunks through circuits, which
    // cannot carry a payment yet.
    let guard = up_free(&alice, &alice.join("testnet"));
    let peers = peers_of(&alice);
    let p = peers.as_str();
    let pw = "correct horse battery\n";

    let logged_out = fails_with(&bob, p, &["msg", "list"], "");
    assert!(logged_out.contains("log in first"), "{logged_out}");
    for (home, user) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol")] {
        ok_with(
            home,
            p,
            &["account", "create", user, "--password-stdin"],
            pw,
        );
    }
    // Bob's name points at his profile.
    ok_with(&bob, p, &["name", "register", "bob"], "");
    let profile = ok_with(&bob, p, &["msg", "setup", "--name", "bob"], "");
    assert!(profile.starts_with("safe://m"), "{profile}");

    // Alice writes to the name; a file too large for a letter goes along
    // as a private file.
    let id = ok_with(&alice, p, &["msg", "send", "bob", "lunch at noon?"], "");
    assert_eq!(id.len(), 32, "{id}");
    let attachment = d.join("notes.bin");
    std::fs::write(&attachment, safe_testkit::bytes_for(3, 50_000)).unwrap();
    let sent = json(&ok_with(
        &alice,
        p,
        &[
            "msg",
            "send",
            "bob",
            "--file",
            attachment.to_str().unwrap(),
            "--json",
        ],
        "",
    ));
    assert_eq!(sent["as_file"], true);
    let unknown = fails_with(&alice, p, &["msg", "send", "nobody-here", "hi"], "");
    assert!(unknown.contains("nobody-here"), "{unknown}");
    // Through relay circuits: the inbox's nodes see only exits.
    let hidden = ok_with(
        &alice,
        p,
        &["msg", "send", "bob", "sent anonymously", "--anonymous"],
        "",
    );
    assert_eq!(hidden.len(), 32, "{hidden}");
    // A file body too: stored through circuits as well.
    let big = json(&ok_with(
        &alice,
        p,
        &[
            "msg",
            "send",
            "bob",
            "--file",
            attachment.to_str().unwrap(),
            "--anonymous",
            "--json",
        ],
        "",
    ));
    assert_eq!(big["as_file"], true);
    // Logging in is never done anonymously: refused, not sent directly.
    let login = fails_with(
        &carol,
        p,
        &[
            "account",
            "login",
            "carol",
            "--password-stdin",
            "--anonymous",
        ],
        pw,
    );
    assert!(login.contains("anonymously"), "{login}");

    // Bob, in another home with his password alone, reads both.
    ok_with(
        &bob2,
        p,
        &["account", "login", "bob", "--password-stdin"],
        pw,
    );
    let listed = json(&ok_with(&bob2, p, &["msg", "list", "--json"], ""));
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "{listed}");
    let read = json(&ok_with(
        &bob2,
        p,
        &["msg", "read", &id[..10], "--json"],
        "",
    ));
    assert_eq!(read["body"], "lunch at noon?");
    assert_eq!(read["verified"], true);
    let out = d.join("got.bin");
    let file_id = sent["id"].as_str().unwrap();
    ok_with(
        &bob2,
        p,
        &["msg", "read", file_id, "-o", out.to_str().unwrap()],
        "",
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&attachment).unwrap()
    );

    // Carol has no such message, and cannot read bob's.
    let not_hers = fails_with(&carol, p, &["msg", "read", &id], "");
    assert!(not_hers.contains("no message"), "{not_hers}");

    // Deleted from one home (through circuits), gone from the other.
    ok_with(&bob, p, &["msg", "delete", &id[..10], "--anonymous"], "");
    let listed = json(&ok_with(&bob2, p, &["msg", "list", "--json"], ""));
    assert_eq!(listed["messages"].as_array().unwrap().len(), 3, "{listed}");
    let read = json(&ok_with(
        &bob2,
        p,
        &["msg", "read", &hidden, "--json", "--anonymous"],
        "",
    ));
    assert_eq!(read["body"], "sent anonymously");
    down(guard);
}

/// A tree with a bit of everything the filesystem keeps.
fn sample_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deep")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("index.html"), b"<h1>hello</h1>").unwrap();
    std::fs::write(
        root.join("sub/big.bin"),
        safe_testkit::bytes_for(7, 700_000),
    )
    .unwrap();
    std::fs::write(root.join("sub/deep/x.txt"), b"deep").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::symlink("index.html", root.join("link")).unwrap();
        let run = root.join("run.sh");
        std::fs::write(&run, b"#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn same_tree(a: &Path, b: &Path) {
    let status = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .status()
        .expect("run diff");
    assert!(
        status.success(),
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

#[test]
fn the_filesystem_follows_the_account_to_another_home() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (one, two, three) = (d.join("one"), d.join("two"), d.join("three"));
    let guard = up(&one, &one.join("testnet"));
    let peers = peers_of(&one);
    let p = peers.as_str();
    let pw = "correct horse battery\n";

    let logged_out = fails_with(&three, p, &["fs", "ls"], "");
    assert!(logged_out.contains("not logged in"), "{logged_out}");

    // The coins the testnet gave this home move into the account.
    let own = ok(&one, &["wallet", "address"]);
    let created = safe_with(
        &one,
        p,
        &["account", "create", "alice", "--password-stdin"],
        pw,
    );
    let said = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{said}");
    assert!(
        said.contains("coins from this data directory's wallet into the account's wallet"),
        "{said}"
    );
    let address = ok(&one, &["wallet", "address"]);
    assert_ne!(address, own, "the account's wallet pays now");
    // The 100 the testnet gave, less the account's records.
    let moved = balance(&one, p);
    assert!(
        moved > 99 * 1_000_000_000 && moved < 100 * 1_000_000_000,
        "{moved}"
    );
    let tree = d.join("tree");
    sample_tree(&tree);
    let original = d.join("original");
    sample_tree(&original);
    ok_with(&one, p, &["fs", "put", tree.to_str().unwrap(), "/site"], "");

    // Another home, the password alone: the same tree back.
    ok_with(
        &two,
        p,
        &["account", "login", "alice", "--password-stdin"],
        pw,
    );
    let listed = json(&ok_with(&two, p, &["fs", "ls", "/site", "--json"], ""));
    assert_eq!(listed.as_array().unwrap().len(), 5, "{listed}");
    // The same wallet, its coins less what the put on the first home paid.
    assert_eq!(ok(&two, &["wallet", "address"]), address);
    let left = balance(&one, p);
    assert!(left < 100 * 1_000_000_000);
    assert_eq!(balance(&two, p), left);
    let got = d.join("got");
    ok_with(
        &two,
        p,
        &["fs", "get", "/site", "-o", got.to_str().unwrap()],
        "",
    );
    same_tree(&tree, &got);

    // A change, synced from the first home: only it is reported; the old
    // version stays readable.
    std::thread::sleep(Duration::from_millis(2100)); // past the racy window
    std::fs::write(tree.join("sub/deep/x.txt"), b"deeper").unwrap();
    let synced = ok_with(
        &one,
        p,
        &["fs", "sync", tree.to_str().unwrap(), "/site"],
        "",
    );
    assert_eq!(synced, "0 added, 1 changed, 0 removed");
    let history = json(&ok_with(&two, p, &["fs", "history", "/site", "--json"], ""));
    let versions = history.as_array().unwrap();
    assert_eq!(versions.len(), 2, "{history}");
    assert_eq!(versions[0]["version"], 1);
    let old = d.join("old");
    ok_with(
        &two,
        p,
        &[
            "fs",
            "get",
            "/site",
            "--version",
            "1",
            "-o",
            old.to_str().unwrap(),
        ],
        "",
    );
    same_tree(&original, &old);

    // Two homes changing different files at the same moment: both kept.
    std::fs::write(d.join("a.txt"), b"from one").unwrap();
    std::fs::write(d.join("b.txt"), b"from two").unwrap();
    let spawn = |home: &Path, file: &str, to: &str| {
        Command::new(SAFE)
            .args(["fs", "put"])
            .arg(d.join(file))
            .arg(to)
            .env("SAFE_HOME", home)
            .env("SAFE_PEERS", p)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let versions = |home: &Path| {
        json(&ok_with(home, p, &["fs", "history", "--json"], ""))
            .as_array()
            .unwrap()
            .len()
    };
    let before = versions(&one);
    let (a, b) = (
        spawn(&one, "a.txt", "/inbox/a.txt"),
        spawn(&two, "b.txt", "/inbox/b.txt"),
    );
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{said}");
        assert!(!said.contains("conflict"), "{said}");
    }
    assert_eq!(versions(&two), before + 2, "one version each");
    let last = json(&ok_with(&one, p, &["fs", "history", "--json"], ""));
    let last = last.as_array().unwrap().last().unwrap().clone();
    assert!(last["time"].as_i64().unwrap() > 1_700_000_000, "{last}");
    assert!(last["size"].as_u64().unwrap() > 700_000, "{last}");
    let inbox = json(&ok_with(&one, p, &["fs", "ls", "/inbox", "--json"], ""));
    let names: Vec<&str> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "b.txt"]);
    // Both paid from the account's one wallet, at the same moment: they
    // agree on what is left.
    assert_eq!(balance(&one, p), balance(&two, p));

    // Bad input: one line each, nothing changed.
    let before = versions(&one);
    let not_empty = fails_with(&one, p, &["fs", "rm", "/site"], "");
    assert!(not_empty.contains("not empty"), "{not_empty}");
    let missing = fails_with(&one, p, &["fs", "get", "/nope"], "");
    assert!(missing.contains("no /nope"), "{missing}");
    let long = format!("/{}", "n".repeat(256));
    let too_long = fails_with(&one, p, &["fs", "mkdir", &long], "");
    assert!(too_long.contains("invalid path"), "{too_long}");
    assert_eq!(versions(&one), before, "no version for a refused command");
    ok_with(&one, p, &["fs", "cp", "/site", "/copy"], "");
    ok_with(&one, p, &["fs", "rm", "-r", "/copy"], "");
    assert_eq!(versions(&one), before + 2);

    // kill -9 in the middle of a put: the filesystem is at a committed
    // version, whole (the one before, or the put's if it got that far).
    let big = d.join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..4 {
        std::fs::write(
            big.join(format!("{i}.bin")),
            safe_testkit::bytes_for(i, 8 << 20),
        )
        .unwrap();
    }
    let before = versions(&one);
    let mut put = Command::new(SAFE)
        .args(["fs", "put"])
        .arg(&big)
        .arg("/big")
        .env("SAFE_HOME", &one)
        .env("SAFE_PEERS", p)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    put.kill().unwrap(); // SIGKILL
    put.wait().unwrap();
    let after = versions(&one);
    assert!(
        after == before || after == before + 1,
        "{before} -> {after}"
    );
    let listing = json(&ok_with(&one, p, &["fs", "ls", "--json"], ""));
    let has_big = listing.to_string().contains("\"big\"");
    assert_eq!(has_big, after == before + 1, "{listing}");
    if has_big {
        let back = d.join("big-back");
        ok_with(
            &one,
            p,
            &["fs", "get", "/big", "-o", back.to_str().unwrap()],
            "",
        );
        same_tree(&big, &back);
    }

    // Publishing: anyone, logged in or not, reads that path and no more.
    let public = ok_with(&one, p, &["fs", "publish", "/site"], "");
    assert!(public.starts_with("safe://d"), "{public}");
    let published = d.join("published");
    ok_with(
        &three,
        p,
        &["get", &public, "-o", published.to_str().unwrap()],
        "",
    );
    same_tree(&tree, &published);

    // A public name for it, resolved by anyone.
    let named = ok_with(
        &one,
        p,
        &["publish", tree.to_str().unwrap(), "--name", "alice-site"],
        "",
    );
    assert_eq!(named, "safe://www.alice-site");
    assert_eq!(
        ok_with(&three, p, &["get", "safe://alice-site/index.html"], ""),
        "<h1>hello</h1>"
    );
    down(guard);
}

#[test]
fn a_name_follows_a_published_path_or_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one");
    let guard = up(&one, &one.join("testnet"));
    let peers = peers_of(&one);
    let p = peers.as_str();
    ok_with(
        &one,
        p,
        &["account", "create", "carol", "--password-stdin"],
        "correct horse battery\n",
    );
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), b"first").unwrap();
    ok_with(&one, p, &["fs", "put", site.to_str().unwrap(), "/site"], "");
    let url = ok_with(&one, p, &["fs", "publish", "/site", "--name", "carol"], "");
    assert_eq!(url, "safe://www.carol");
    assert_eq!(
        ok_with(&one, p, &["get", "safe://carol/index.html"], ""),
        "first"
    );

    // Published again: the name follows, with no `name set`.
    std::fs::write(site.join("index.html"), b"second").unwrap();
    ok_with(
        &one,
        p,
        &["fs", "sync", site.to_str().unwrap(), "/site"],
        "",
    );
    ok_with(&one, p, &["fs", "publish", "/site"], "");
    assert_eq!(
        ok_with(&one, p, &["get", "safe://carol/index.html"], ""),
        "second"
    );

    // Pinned: later publishes no longer move it.
    let info = json(&ok_with(&one, p, &["name", "show", "carol", "--json"], ""));
    let follows = info["versions"][0]["services"]["www"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(follows.starts_with("safe://m"), "{info}");
    ok_with(
        &one,
        p,
        &["name", "set", "carol", "www", &follows, "--pin"],
        "",
    );
    std::fs::write(site.join("index.html"), b"third").unwrap();
    ok_with(
        &one,
        p,
        &["fs", "sync", site.to_str().unwrap(), "/site"],
        "",
    );
    ok_with(&one, p, &["fs", "publish", "/site"], "");
    assert_eq!(
        ok_with(&one, p, &["get", "safe://carol/index.html"], ""),
        "second"
    );
    // The old version, that followed, still resolves (to where it points now).
    assert_eq!(
        ok_with(&one, p, &["get", "safe://carol/index.html?v=1"], ""),
        "third"
    );

    // The account lists the names it registered.
    ok_with(&one, p, &["name", "register", "carol-blog"], "");
    let listed = json(&ok_with(&one, p, &["name", "list", "--json"], ""));
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol", "carol-blog"], "{listed}");
    assert_eq!(listed[0]["owned"], true);
    down(guard);
}

/// The balance of `home`'s wallet on the testnet `peers` reach, in nanos.
fn balance(home: &Path, peers: &str) -> u64 {
    let out = ok_with(home, peers, &["wallet", "balance", "--json"], "");
    json(&out)["nanos"].as_u64().unwrap()
}

#[test]
fn a_testnet_charges_in_coins_and_funds_every_wallet() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let (guard, ready) = start(h, &h.join("testnet"));
    assert!(
        ready.contains("holds 100 coins from the testnet faucet"),
        "the ready line says the wallet is funded: {ready}"
    );
    let peers = peers_of(h);
    let coin = 1_000_000_000u64;
    assert_eq!(balance(h, &peers), 100 * coin);

    // The quote is what the put then charges, to the nano.
    let file = h.join("photo.jpg");
    std::fs::write(&file, safe_testkit::bytes_for(3, 3 << 20)).unwrap();
    let f = file.to_str().unwrap();
    let quote = json(&ok(h, &["wallet", "quote", f, "--json"]))["nanos"]
        .as_u64()
        .unwrap();
    assert!(quote > 0, "storing costs something");
    let put = safe(h, &["put", f, "--json"]);
    assert!(put.status.success(), "{put:?}");
    let said = String::from_utf8_lossy(&put.stderr);
    assert!(
        said.contains("costs") && said.contains("coins"),
        "the cost is shown: {said}"
    );
    let report = json(String::from_utf8_lossy(&put.stdout).trim());
    assert_eq!(report["paid_nanos"].as_u64(), Some(quote));
    assert_eq!(balance(h, &peers), 100 * coin - quote);
    let again = json(&ok(h, &["put", f, "--json"]));
    assert_eq!(again["paid_nanos"].as_u64(), Some(0), "a re-put is free");
    assert_eq!(again["address"], report["address"]);

    // Over --max-cost: refused, nothing spent, nothing stored.
    let other = h.join("other.bin");
    std::fs::write(&other, safe_testkit::bytes_for(4, 2 << 20)).unwrap();
    let o = other.to_str().unwrap();
    let err = fails(h, &["put", o, "--max-cost", "0.000000001"]);
    assert!(err.contains("over the limit"), "{err}");
    assert_eq!(balance(h, &peers), 100 * coin - quote);

    // Sending to a wallet in another data directory, which takes it in.
    let second = tempfile::tempdir().unwrap();
    let h2 = second.path();
    let to = ok(h2, &["wallet", "address"]);
    assert!(to.starts_with("safe://w"), "{to}");
    let sent = json(&ok(h, &["wallet", "send", &to, "1.5", "--json"]));
    let receipt = sent["receipt"].as_str().unwrap().to_string();
    // The notice left for the recipient is a record, paid for by the
    // sender.
    let notice = sent["paid_nanos"].as_u64().unwrap();
    assert!(notice > 0 && sent["notice"] == true, "{sent}");
    assert_eq!(
        balance(h, &peers),
        100 * coin - quote - 1_500_000_000 - notice
    );
    let got = ok_with(h2, &peers, &["wallet", "receive", &receipt], "");
    assert!(got.contains("received 1.5 coins"), "{got}");
    let twice = fails_with(h2, &peers, &["wallet", "receive", &receipt], "");
    assert!(twice.contains("nothing new"), "{twice}");
    assert_eq!(balance(h2, &peers), 1_500_000_000);
    // The received coins pay: spent, and not taken in again after.
    let small = h.join("small.bin");
    std::fs::write(&small, safe_testkit::bytes_for(5, 1 << 20)).unwrap();
    let spent = json(&ok_with(
        h2,
        &peers,
        &["put", small.to_str().unwrap(), "--json"],
        "",
    ))["paid_nanos"]
        .as_u64()
        .unwrap();
    assert!(spent > 0);
    assert_eq!(balance(h2, &peers), 1_500_000_000 - spent);
    let again = fails_with(h2, &peers, &["wallet", "receive", &receipt], "");
    assert!(again.contains("nothing new"), "{again}");
    assert_eq!(balance(h2, &peers), 1_500_000_000 - spent);

    // A recipient that was not there: the notice left for it is found by
    // its next balance, once.
    let fourth = tempfile::tempdir().unwrap();
    let h4 = fourth.path();
    let to4 = ok(h4, &["wallet", "address"]);
    let notice4 = json(&ok(h, &["wallet", "send", &to4, "2", "--json"]))["paid_nanos"]
        .as_u64()
        .unwrap();
    let seen = json(&ok_with(h4, &peers, &["wallet", "balance", "--json"], ""));
    assert_eq!(seen["nanos"].as_u64(), Some(2 * coin), "{seen}");
    assert_eq!(seen["noticed_nanos"].as_u64(), Some(2 * coin), "{seen}");
    let again = json(&ok_with(h4, &peers, &["wallet", "balance", "--json"], ""));
    assert_eq!(again["nanos"].as_u64(), Some(2 * coin), "{again}");
    assert_eq!(again["noticed_nanos"].as_u64(), Some(0), "{again}");

    // Bad input: a clear line each, and nothing changes.
    let before = balance(h, &peers);
    for (args, says) in [
        (vec!["wallet", "send", &to, "1000"], "holds"),
        (vec!["wallet", "send", &to, "0"], "nothing to send"),
        (
            vec!["wallet", "send", "safe://wxyz", "1"],
            "not a wallet address",
        ),
        (
            vec!["wallet", "send", &to, "1.0000000001"],
            "at most 9 decimals",
        ),
        (
            vec!["wallet", "send", &to, "99999999999999"],
            "more than all the coins",
        ),
        (vec!["wallet", "receive", "abcd"], "64 hex digits"),
    ] {
        let out = safe(h, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(balance(h, &peers), before);

    // A data directory that never saw the testnet pays by drawing from
    // its faucet first, with no extra step.
    let third = tempfile::tempdir().unwrap();
    let h3 = third.path();
    let paid = json(&ok_with(h3, &peers, &["put", o, "--json"], ""))["paid_nanos"]
        .as_u64()
        .unwrap();
    assert!(paid > 0);
    assert_eq!(balance(h3, &peers), 100 * coin - paid);
    let drawn = ok_with(h2, &peers, &["wallet", "faucet"], "");
    assert!(drawn.contains("drew 100 coins"), "{drawn}");
    assert_eq!(balance(h2, &peers), 101_500_000_000 - spent);

    let history = ok(h, &["wallet", "history"]);
    for what in [
        "drawn from the testnet faucet",
        "paid for storage",
        "sent to safe://w",
    ] {
        assert!(history.contains(what), "{what}: {history}");
    }
    down(guard);

    // The nodes earned exactly what the two uploads paid, each payment
    // listed with the receipt a wallet takes it in with.
    let mut earned = 0u64;
    for i in 0..10 {
        let dir = h.join(format!("testnet/node-{i}"));
        let out = safe(h, &["node", "earnings", "--dir", dir.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let (receipt, nanos) = line.split_once(' ').unwrap();
            assert_eq!(receipt.len(), 64, "{line}");
            earned += nanos.parse::<u64>().unwrap();
        }
        assert!(String::from_utf8_lossy(&out.stderr).contains("coins in all"));
    }
    assert_eq!(earned, quote + paid + spent + notice + notice4);
}
