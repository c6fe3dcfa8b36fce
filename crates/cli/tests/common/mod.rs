//! Helpers shared by the tests that run the real binary on a testnet.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const SAFE: &str = env!("CARGO_BIN_EXE_safe");

/// Kills the testnet if the test fails before stopping it.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn safe(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(SAFE)
        .args(args)
        .env("SAFE_HOME", home)
        .env_remove("SAFE_PEERS")
        .output()
        .expect("run safe")
}

/// The default testnet of `home` (its contacts are what clients read).
pub fn up(home: &Path, net_dir: &Path) -> Guard {
    let (guard, ready) = start(home, net_dir);
    assert!(
        ready.contains("safe put"),
        "tells the user what to type next: {ready}"
    );
    guard
}

/// The default testnet of `home`, where storing is free (`--free`): for
/// what cannot pay yet (anonymous puts).
pub fn up_free(home: &Path, net_dir: &Path) -> Guard {
    let (guard, ready) = start_with(home, net_dir, &["--free"]);
    assert!(ready.contains("Storing is free"), "{ready}");
    guard
}

/// Starts a testnet in `net_dir`; returns it and its `ready` line.
pub fn start(home: &Path, net_dir: &Path) -> (Guard, String) {
    start_with(home, net_dir, &[])
}

/// [`start`] with more arguments for `safe testnet up`.
pub fn start_with(home: &Path, net_dir: &Path, more: &[&str]) -> (Guard, String) {
    let mut child = Command::new(SAFE)
        .args(["testnet", "up", "--nodes", "10", "--dir"])
        .arg(net_dir)
        .args(more)
        .env("SAFE_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start testnet");
    let stdout = child.stdout.take().unwrap();
    let guard = Guard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("testnet prints a line");
    assert!(ready.starts_with("ready"), "{ready}");
    (guard, ready)
}

/// SIGTERM: every node stops and the process exits cleanly.
pub fn down(mut guard: Guard) {
    let pid = guard.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    for _ in 0..300 {
        if let Some(s) = guard.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.expect("testnet exits within 30 s of SIGTERM");
    assert!(status.success(), "{status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(guard.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("testnet stopped"), "{stderr}");
}

pub fn peers_of(home: &Path) -> String {
    let contacts = std::fs::read_to_string(home.join("contacts")).unwrap();
    let peers: Vec<&str> = contacts
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    peers.join(",")
}

/// `safe` in `home` reaching the network through `peers`, with `stdin`.
pub fn safe_with(home: &Path, peers: &str, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(SAFE)
        .args(args)
        .env("SAFE_HOME", home)
        .env("SAFE_PEERS", peers)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run safe");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("run safe")
}

pub fn ok_with(home: &Path, peers: &str, args: &[&str], stdin: &str) -> String {
    let out = safe_with(home, peers, args, stdin);
    assert!(
        out.status.success(),
        "safe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
