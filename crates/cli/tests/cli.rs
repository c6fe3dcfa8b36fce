//! End-to-end tests of the real `safe` binary against a local store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn safe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safe"))
        .args(args)
        .output()
        .expect("run safe")
}

fn ok(args: &[&str]) -> String {
    let out = safe(args);
    assert!(
        out.status.success(),
        "safe {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn err(args: &[&str]) -> String {
    let out = safe(args);
    assert!(!out.status.success(), "safe {args:?} should fail");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    safe_testkit::bytes_for(seed, len)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn chunk_files(store: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for fan in std::fs::read_dir(store.join("chunks")).unwrap() {
        for f in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            out.insert(f.unwrap().path());
        }
    }
    out
}

#[test]
fn files_of_many_sizes_and_kinds_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mib = 1024 * 1024;
    let mut inputs: Vec<(String, Vec<u8>)> = [0, 1, 2, 3, 1000, mib - 1, mib, mib + 1, 3 * mib + 1]
        .iter()
        .map(|&n| (format!("random-{n}"), data(n, n as u64)))
        .collect();
    // A small HTML site and the test binary itself (a real executable).
    for i in 0..5 {
        let page = format!(
            "<!doctype html><html><head><title>Page {i}</title></head><body>{}</body></html>\n",
            "<p>Self-encrypted, served by nobody in particular.</p>\n".repeat(500 * i + 1)
        );
        inputs.push((format!("page{i}.html"), page.into_bytes()));
    }
    inputs.push((
        "safe-binary".into(),
        std::fs::read(env!("CARGO_BIN_EXE_safe")).unwrap(),
    ));
    for (name, bytes) in inputs {
        let path = dir.path().join(&name);
        std::fs::write(&path, &bytes).unwrap();
        let json = ok(&["put", s(&path), "--local-store", s(&store), "--json"]);
        let address = json.split('"').nth(3).unwrap().to_string();
        assert!(address.starts_with("safe://f"), "{json}");
        assert!(
            json.contains(&format!("\"size\":{}", bytes.len())),
            "{json}"
        );
        let out = dir.path().join(format!("{name}.out"));
        ok(&["get", &address, "--local-store", s(&store), "-o", s(&out)]);
        assert_eq!(std::fs::read(&out).unwrap(), bytes, "{name} via -o");
        let stdout = Command::new(env!("CARGO_BIN_EXE_safe"))
            .args(["get", &address, "--local-store", s(&store)])
            .output()
            .unwrap()
            .stdout;
        assert_eq!(stdout, bytes, "{name} via stdout");
    }
}

#[test]
fn same_input_same_address_and_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, data(2_500_000, 42)).unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let addr_a = ok(&["put", s(&file), "--local-store", s(&a)]);
    let addr_b = ok(&["put", s(&file), "--local-store", s(&b)]);
    assert_eq!(addr_a, addr_b);
    let names = |p: &Path| -> BTreeSet<_> {
        chunk_files(p)
            .iter()
            .map(|f| f.file_name().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&a), names(&b));
    // Putting again adds nothing.
    let before = names(&a);
    assert_eq!(ok(&["put", s(&file), "--local-store", s(&a)]), addr_a);
    assert_eq!(names(&a), before);
}

#[test]
fn every_damaged_or_missing_chunk_is_named_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("f");
    std::fs::write(&file, data(3 * 1024 * 1024 + 7, 5)).unwrap();
    let address = ok(&["put", s(&file), "--local-store", s(&store)]);
    let address = address.trim();
    let out = dir.path().join("out");
    for chunk in chunk_files(&store) {
        let name = chunk.file_name().unwrap().to_str().unwrap().to_string();
        let original = std::fs::read(&chunk).unwrap();
        let mut flipped = original.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x01;
        std::fs::write(&chunk, &flipped).unwrap();
        let e = err(&["get", address, "--local-store", s(&store), "-o", s(&out)]);
        assert!(e.contains(&name) && e.contains("corrupt"), "{e}");
        assert!(!out.exists(), "no partial file after corruption");
        std::fs::remove_file(&chunk).unwrap();
        let e = err(&["get", address, "--local-store", s(&store), "-o", s(&out)]);
        assert!(e.contains(&name), "{e}");
        assert!(!out.exists(), "no partial file after a missing chunk");
        std::fs::write(&chunk, &original).unwrap();
    }
    // No temporary files left beside the output either.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".safe-get-"))
        .collect();
    assert!(leftovers.is_empty());
    ok(&["get", address, "--local-store", s(&store), "-o", s(&out)]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&file).unwrap());
}

#[test]
fn range_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("f");
    let bytes = data(2 * 1024 * 1024 + 333, 8);
    std::fs::write(&file, &bytes).unwrap();
    let address = ok(&["put", s(&file), "--local-store", s(&store)]);
    let address = address.trim();
    for (range, want) in [
        ("0-0", &bytes[0..1]),
        ("100-199", &bytes[100..200]),
        ("700000-1500000", &bytes[700_000..1_500_001]),
        ("2097000-", &bytes[2_097_000..]),
        ("2097000-99999999", &bytes[2_097_000..]),
    ] {
        let out = safe(&["get", address, "--local-store", s(&store), "--range", range]);
        assert!(out.status.success());
        assert_eq!(out.stdout, want, "range {range}");
    }
    let e = err(&[
        "get",
        address,
        "--local-store",
        s(&store),
        "--range",
        "99999999-",
    ]);
    assert!(e.contains("range starts at byte"), "{e}");
    err(&["get", address, "--local-store", s(&store), "--range", "5-1"]);
}

#[test]
fn bad_input_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let e = err(&["put", s(dir.path()), "--local-store", s(&store)]);
    assert!(e.contains("is a directory"), "{e}");
    let e = err(&["put", "/definitely/not/here", "--local-store", s(&store)]);
    assert!(e.contains("cannot read"), "{e}");
    let e = err(&["get", "safe://nope", "--local-store", s(&store)]);
    assert!(e.contains("invalid address"), "{e}");
    let nobody = format!("safe://f{}aa", "ab".repeat(25));
    let nobody = nobody.as_str();
    let e = err(&["get", nobody, "--local-store", s(&store)]);
    assert!(e.contains("nothing found"), "{e}");
}

#[test]
fn private_files_need_their_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("f");
    let key = dir.path().join("key");
    let other = dir.path().join("other");
    std::fs::write(&file, data(100_000, 3)).unwrap();
    std::fs::write(&key, data(32, 1)).unwrap();
    std::fs::write(&other, data(32, 2)).unwrap();
    let public = ok(&["put", s(&file), "--local-store", s(&store)]);
    let private = ok(&[
        "put",
        s(&file),
        "--local-store",
        s(&store),
        "--secret-file",
        s(&key),
    ]);
    assert_ne!(public, private);
    let private = private.trim();
    let e = err(&["get", private, "--local-store", s(&store)]);
    assert!(e.contains("private"), "{e}");
    err(&[
        "get",
        private,
        "--local-store",
        s(&store),
        "--secret-file",
        s(&other),
    ]);
    let out = safe(&[
        "get",
        private,
        "--local-store",
        s(&store),
        "--secret-file",
        s(&key),
    ]);
    assert_eq!(out.stdout, std::fs::read(&file).unwrap());
}
