//! Anonymous reads (issue 16) on 12 node processes, each logging every
//! inbound request and relay link with the peer that sent it
//! (`SAFE_LOG=safe_node=debug`): who saw the client, and who saw what it
//! read.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::SAFE;

const NODES: usize = 12;

struct Node {
    child: Child,
    id: String,
    addr: String,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `safe node run` in `dir`, logging at debug to `dir/node.log`; its peer
/// id and TCP address.
fn spawn_node(dir: &Path, peers: &[String]) -> Node {
    std::fs::create_dir_all(dir).unwrap();
    let log = dir.join("node.log");
    let mut cmd = Command::new(SAFE);
    cmd.args(["node", "run", "--dir"])
        .arg(dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--id-difficulty", "0"])
        .env(
            "SAFE_LOG",
            "warn,safe_node=debug,safe_network::driver=debug",
        )
        .env_remove("SAFE_PEERS")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    for p in peers {
        cmd.args(["--peer", p]);
    }
    let mut child = cmd.spawn().expect("start a node");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut id = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node in {} did not start", dir.display());
        };
        if let Some(rest) = line.strip_prefix("node ") {
            id = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(a) = line.strip_prefix("listening on ")
            && a.contains("/tcp/")
        {
            return Node {
                child,
                id: id.expect("the node line comes first"),
                addr: a.to_string(),
                log,
            };
        }
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The value after `key=` on a log line (peer ids and names have no spaces).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)? + key.len();
    line[at..]
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
}

#[test]
fn only_the_guard_sees_the_client_and_no_node_sees_both_the_client_and_what_it_reads() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = Vec::new();
    nodes.push(spawn_node(&root.path().join("n0"), &[]));
    let seed = nodes[0].addr.clone();
    for i in 1..NODES {
        nodes.push(spawn_node(
            &root.path().join(format!("n{i}")),
            std::slice::from_ref(&seed),
        ));
    }
    let peers = nodes
        .iter()
        .map(|n| n.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let safe = |args: &[&str], log: &str| {
        Command::new(SAFE)
            .args(args)
            .env("SAFE_HOME", &home)
            .env("SAFE_PEERS", &peers)
            .env("SAFE_LOG", log)
            .output()
            .unwrap()
    };

    // A 3 MiB file, put directly, as anyone might.
    let data: Vec<u8> = (0..3 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = root.path().join("file.bin");
    std::fs::write(&file, &data).unwrap();
    let mut address = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while address.is_empty() {
        let put = safe(&["put", file.to_str().unwrap()], "warn");
        if put.status.success() {
            address = String::from_utf8(put.stdout).unwrap().trim().to_string();
        } else {
            assert!(
                Instant::now() < deadline,
                "put: {}",
                String::from_utf8_lossy(&put.stderr)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // A first anonymous read (of something else) takes the relay sample
    // and keeps it in SAFE_HOME; the read watched below starts from it, so
    // nothing it does names the client to a node but its circuits.
    let warm = root.path().join("warm.bin");
    std::fs::write(&warm, b"another file, read first").unwrap();
    let put = safe(&["put", warm.to_str().unwrap()], "warn");
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let warm_address = String::from_utf8(put.stdout).unwrap().trim().to_string();
    let first = safe(&["get", "--anonymous", &warm_address], "warn");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(home.join("relays").exists(), "the sample is kept");
    assert!(home.join("guard").exists(), "the guard is kept");
    let before: Vec<usize> = nodes.iter().map(|n| read(&n.log).len()).collect();

    // Read it anonymously.
    let out = root.path().join("out.bin");
    let get = safe(
        &["get", "--anonymous", &address, "-o", out.to_str().unwrap()],
        "warn,safe_client::anonymous=debug",
    );
    let client_log = String::from_utf8_lossy(&get.stderr).into_owned();
    assert!(get.status.success(), "anonymous get: {client_log}");
    assert_eq!(std::fs::read(&out).unwrap(), data, "the bytes read back");

    // Who the client was: one identity per circuit (the kept sample was
    // used: no sampling during this read).
    assert!(!client_log.contains("sampling relays"), "{client_log}");
    let circuits: Vec<(String, String)> = client_log
        .lines()
        .filter(|l| l.contains("circuit built"))
        .map(|l| {
            (
                field(l, "identity").unwrap().to_string(),
                field(l, "guard").unwrap().to_string(),
            )
        })
        .collect();
    assert!(!circuits.is_empty(), "{client_log}");
    // Every identity that dialed a guard, built or not (a circuit whose
    // EXTEND failed was still a connection from a fresh identity).
    let tried: Vec<(String, String)> = client_log
        .lines()
        .filter(|l| l.contains("building a circuit"))
        .map(|l| {
            (
                field(l, "identity").unwrap().to_string(),
                field(l, "guard").unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        circuits.iter().all(|c| tried.contains(c)),
        "every built circuit was first tried: {client_log}"
    );
    // One guard for every circuit: the one kept by the first read.
    assert!(
        circuits.iter().all(|(_, g)| *g == circuits[0].1),
        "{client_log}"
    );

    // What each node logged during the read.
    let logs: Vec<(&Node, String)> = nodes
        .iter()
        .zip(&before)
        .map(|(n, &from)| (n, read(&n.log)[from..].to_string()))
        .collect();
    // The chunks the read fetched: every chunk an exit fetched (from its
    // own store or a holder), and every chunk get any node was asked for.
    let mut chunks: Vec<String> = Vec::new();
    for (_, log) in &logs {
        for line in log.lines().filter(|l| l.contains("get chunk")) {
            let name = line
                .split("get chunk ")
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            let name = name
                .trim_matches(|c: char| !c.is_ascii_hexdigit())
                .to_string();
            if !name.is_empty() && !chunks.contains(&name) {
                chunks.push(name);
            }
        }
        for line in log.lines().filter(|l| l.contains("exit fetches a chunk")) {
            let name = field(line, "chunk=").unwrap_or("").to_string();
            if !name.is_empty() && !chunks.contains(&name) {
                chunks.push(name);
            }
        }
    }
    assert!(
        chunks.len() >= 3,
        "a file is at least 3 chunks: {chunks:?}\n{client_log}"
    );
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    for (node, log) in &logs {
        for (identity, guard) in &tried {
            // Only the guard's log names a circuit's identity.
            if log.contains(identity.as_str()) {
                assert_eq!(
                    &node.id, guard,
                    "{} saw circuit identity {identity}",
                    node.id
                );
            }
            // And no log names both it and a chunk of the file.
            if log.contains(identity.as_str()) {
                for c in &chunks {
                    assert!(
                        !log.contains(c.as_str()),
                        "{} saw {identity} and chunk {c}",
                        node.id
                    );
                }
            }
        }
        // Every chunk request a holder got came from a node (an exit).
        for line in log
            .lines()
            .filter(|l| l.contains("inbound request") && l.contains("get chunk"))
        {
            let from = field(line, "peer=").unwrap_or("");
            assert!(
                ids.contains(&from),
                "{} was asked for a chunk by {from}: {line}",
                node.id
            );
        }
    }
    // The read made no connection but its circuits' (the kept sample and
    // guard meant no sampling, so no ordinary connection at all).
    for (node, log) in &logs {
        for line in log.lines().filter(|l| l.contains("connection with peer")) {
            let peer = field(line, "peer=").unwrap_or("");
            let circuit = tried.iter().any(|(id, _)| id == peer);
            assert!(
                ids.contains(&peer) || circuit,
                "{} had a connection from {peer}, neither a node nor a circuit: {client_log}",
                node.id
            );
        }
    }
    // Each circuit's guard logged the link from its identity.
    for (identity, guard) in &circuits {
        let (_, log) = logs.iter().find(|(n, _)| &n.id == guard).unwrap();
        assert!(
            log.contains(identity.as_str()),
            "guard {guard} never saw {identity}"
        );
    }
}
