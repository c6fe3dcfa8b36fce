//! End to end through the real binary: `safe testnet up`, `safe put`,
//! `safe get`, then SIGTERM stops the network cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SAFE: &str = env!("CARGO_BIN_EXE_safe");

/// Kills the testnet if the test fails before stopping it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn safe(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(SAFE)
        .args(args)
        .env("SAFE_HOME", home)
        .env_remove("SAFE_PEERS")
        .output()
        .expect("run safe")
}

fn up(home: &Path, net_dir: &Path) -> Guard {
    let mut child = Command::new(SAFE)
        .args(["testnet", "up", "--nodes", "10", "--dir"])
        .arg(net_dir)
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
    assert!(
        ready.contains("safe put"),
        "tells the user what to type next: {ready}"
    );
    guard
}

/// SIGTERM: every node stops and the process exits cleanly.
fn down(mut guard: Guard) {
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

#[test]
fn testnet_put_get_stop_restart() {
    let home = tempfile::tempdir().unwrap();
    let net_dir = home.path().join("net");
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
    down(guard);
}
