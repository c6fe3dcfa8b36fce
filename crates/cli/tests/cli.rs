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

/// `safe` with its own data directory (keys) and the given stdin.
fn safe_in(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_safe"))
        .args(args)
        .env("SAFE_HOME", home)
        .env_remove("SAFE_PEERS")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run safe");
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("run safe");
    writer.join().unwrap();
    out
}

/// Runs a shell `script` in which `$0` is the `safe` binary (for umasks
/// and redirections a test needs around it).
fn safe_in_shell(script: &str) -> std::process::ExitStatus {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_safe"))
        .status()
        .expect("run sh")
}

fn ok_in(home: &Path, args: &[&str]) -> String {
    let out = safe_in(home, args, b"");
    assert!(
        out.status.success(),
        "safe {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
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
    assert!(e.contains("starts past the end"), "{e}");
    err(&["get", address, "--local-store", s(&store), "--range", "5-1"]);
}

#[test]
fn bad_input_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let e = err(&["put", "/definitely/not/here", "--local-store", s(&store)]);
    assert!(e.contains("cannot read"), "{e}");
    let e = err(&["get", "safe://no_pe", "--local-store", s(&store)]);
    assert!(e.contains("neither an address nor a name"), "{e}");
    // A failed put leaves no store behind; a real one makes it.
    assert!(!store.exists());
    let file = dir.path().join("real");
    std::fs::write(&file, b"real").unwrap();
    let real = ok(&["put", s(&file), "--local-store", s(&store)]);
    // A mistyped last character is named as such (it carries only 4 bits,
    // so only some letters may stand there).
    let real = real.trim();
    let last = real.chars().last().unwrap();
    let typo = format!(
        "{}{}",
        &real[..real.len() - 1],
        if last == 'b' { 'd' } else { 'b' }
    );
    let e = err(&["get", &typo, "--local-store", s(&store)]);
    assert!(
        e.contains("the last character of an address must be one of"),
        "{e}"
    );
    // A directory with a FIFO in it is refused, naming it (directories
    // themselves are snapshots now: see directory_snapshots_round_trip).
    let odd = dir.path().join("odd");
    std::fs::create_dir(&odd).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(odd.join("pipe"))
            .status()
            .unwrap()
            .success()
    );
    let e = err(&["put", s(&odd), "--local-store", s(&store)]);
    assert!(
        e.contains("pipe") && e.contains("not a file, directory or symlink"),
        "{e}"
    );
    let nobody = format!("safe://f{}aa", "ab".repeat(25));
    let nobody = nobody.as_str();
    let e = err(&["get", nobody, "--local-store", s(&store)]);
    assert!(e.contains("nothing found"), "{e}");
    // A node directory that does not exist is named as such.
    let e = err(&["node", "chunks", "--dir", s(&dir.path().join("no-node"))]);
    assert!(e.contains("is not a node directory"), "{e}");
    assert!(!dir.path().join("no-node").exists(), "and not made");
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

#[test]
fn standard_input_and_pipes_can_be_put() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let bytes = data(3 * 1024 * 1024 + 17, 21);
    let file = dir.path().join("f");
    std::fs::write(&file, &bytes).unwrap();
    let from_file = ok(&["put", s(&file), "--local-store", s(&store)]);
    for path in ["-", "/dev/stdin"] {
        let out = safe_in(
            dir.path(),
            &["put", path, "--local-store", s(&store)],
            &bytes,
        );
        assert!(
            out.status.success(),
            "put {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            from_file,
            "same address as the file"
        );
    }
    let back = safe(&["get", from_file.trim(), "--local-store", s(&store)]);
    assert_eq!(back.stdout, bytes);
}

#[cfg(unix)]
#[test]
fn get_output_writes_devices_follows_symlinks_and_honours_the_umask() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("f");
    let bytes = data(200_000, 5);
    std::fs::write(&file, &bytes).unwrap();
    let address = ok(&["put", s(&file), "--local-store", s(&store)]);
    let address = address.trim();

    // A device is written, never replaced.
    ok(&[
        "get",
        address,
        "--local-store",
        s(&store),
        "-o",
        "/dev/null",
    ]);
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );

    // `-` is stdout.
    let out = safe(&["get", address, "--local-store", s(&store), "-o", "-"]);
    assert_eq!(out.stdout, bytes);

    // A symlink is written through, and stays a symlink.
    let target = dir.path().join("target");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    ok(&["get", address, "--local-store", s(&store), "-o", s(&link)]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), bytes);

    // A FIFO is written to, not replaced.
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(&["get", address, "--local-store", s(&store), "-o", s(&fifo)]);
    assert_eq!(reader.join().unwrap(), bytes);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // /dev/stdout is standard output, whatever it is: appending to a log
    // keeps what was there.
    let log = dir.path().join("log");
    std::fs::write(&log, b"before\n").unwrap();
    let status = safe_in_shell(&format!(
        "exec \"$0\" get {address} --local-store {} -o /dev/stdout >> {}",
        s(&store),
        s(&log)
    ));
    assert!(status.success());
    let mut want = b"before\n".to_vec();
    want.extend_from_slice(&bytes);
    assert_eq!(std::fs::read(&log).unwrap(), want);

    // A replaced file keeps its mode.
    let private = dir.path().join("private");
    std::fs::write(&private, b"old").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(&[
        "get",
        address,
        "--local-store",
        s(&store),
        "-o",
        s(&private),
    ]);
    assert_eq!(
        std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read(&private).unwrap(), bytes);

    // A new file's mode is 0666 less the umask, as with cp.
    for (umask, mode) in [("022", 0o644), ("077", 0o600)] {
        let out_path = dir.path().join(format!("new-{umask}"));
        let status = safe_in_shell(&format!(
            "umask {umask} && exec \"$0\" get {address} --local-store {} -o {}",
            s(&store),
            s(&out_path)
        ));
        assert!(status.success());
        let got = std::fs::metadata(&out_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode, "umask {umask}");
    }
}

#[test]
fn ranges_of_empty_files_and_suffix_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let address = ok(&["put", s(&empty), "--local-store", s(&store)]);
    let address = address.trim();
    assert!(
        safe(&["get", address, "--local-store", s(&store)])
            .stdout
            .is_empty()
    );
    // Every range of an empty file is past its end, whatever its form.
    for range in ["0-10", "5-", "0-", "-10"] {
        let e = err(&["get", address, "--local-store", s(&store), "--range", range]);
        assert!(
            e.contains("starts past the end: the data has 0 byte(s)"),
            "{range}: {e}"
        );
    }
    // `-N` is the last N bytes, as in HTTP.
    let file = dir.path().join("f");
    let bytes = data(5000, 2);
    std::fs::write(&file, &bytes).unwrap();
    let address = ok(&["put", s(&file), "--local-store", s(&store)]);
    let out = safe(&[
        "get",
        address.trim(),
        "--local-store",
        s(&store),
        "--range",
        "-10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, &bytes[4990..]);
}

#[test]
fn help_names_the_environment() {
    let help = ok(&["--help"]);
    for var in [
        "SAFE_HOME",
        "SAFE_PEERS",
        "SAFE_LOG",
        "SAFE_MIN_NODE_AGE",
        "SAFE_ANONYMOUS",
    ] {
        assert!(help.contains(var), "{var} in {help}");
    }
}

#[test]
fn records_offline_with_json_binary_values_and_truthful_repeats() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let store = h.join("store");
    let st = s(&store);
    let json = |text: String| -> serde_json::Value {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let created = json(ok_in(
        h,
        &["mutable", "create", "notes", "--local-store", st, "--json"],
    ));
    let addr = created["address"].as_str().unwrap().to_string();
    assert!(addr.starts_with("safe://m"));

    // Text and binary values; JSON says which is which.
    ok_in(
        h,
        &[
            "mutable",
            "set",
            &addr,
            "colour",
            "\u{1b}[31mred",
            "--local-store",
            st,
        ],
    );
    let bin = h.join("bin");
    std::fs::write(&bin, [0xff, 0x00, 0x10]).unwrap();
    ok_in(
        h,
        &[
            "mutable",
            "set",
            &addr,
            "raw",
            "--value-file",
            s(&bin),
            "--local-store",
            st,
        ],
    );
    let r = json(ok_in(h, &["get", &addr, "--local-store", st, "--json"]));
    assert_eq!(r["version"], 2);
    assert_eq!(
        r["entries"],
        serde_json::json!([
            { "key": "colour", "value": "\u{1b}[31mred" },
            { "key": "raw", "value_base64": "/wAQ" },
        ])
    );
    let one = json(ok_in(
        h,
        &[
            "mutable",
            "get",
            &addr,
            "raw",
            "--local-store",
            st,
            "--json",
        ],
    ));
    assert_eq!(one["value_base64"], "/wAQ");

    // The same create again: the truth, status 3, the address on stdout.
    let again = safe_in(h, &["mutable", "create", "notes", "--local-store", st], b"");
    assert_eq!(again.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), addr);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains("already exists (created by you, now at version 2"),
        "{said}"
    );

    // Prepared operations print JSON too, and a replay is reported.
    let op = h.join("op");
    let prepared = json(ok_in(
        h,
        &[
            "mutable",
            "remove",
            &addr,
            "colour",
            "--prepare",
            s(&op),
            "--json",
            "--local-store",
            st,
        ],
    ));
    assert_eq!(prepared["version"], 3);
    assert_eq!(prepared["signatures"], 1);
    let done = json(ok_in(
        h,
        &["mutable", "submit", s(&op), "--local-store", st, "--json"],
    ));
    assert_eq!(done["version"], 3);
    let replay = safe_in(h, &["mutable", "submit", s(&op), "--local-store", st], b"");
    assert_eq!(replay.status.code(), Some(3));
    let said = String::from_utf8_lossy(&replay.stderr);
    assert!(
        said.contains("already applied (the record is at version 3)"),
        "{said}"
    );
    let sign = json(ok_in(h, &["mutable", "sign", s(&op), "--json"]));
    assert_eq!(
        sign["signatures"], 1,
        "the same key signing again adds nothing"
    );
}

#[test]
fn parallel_record_writers_on_one_local_store_lose_nothing() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let store = h.join("store");
    let st = s(&store);
    let addr = ok_in(h, &["mutable", "create", "busy", "--local-store", st]);
    // Many processes at once: each either lands its write or is refused
    // as stale (it read a version someone else replaced); none is lost.
    let children: Vec<_> = (0..16)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_safe"))
                .args([
                    "mutable",
                    "set",
                    &addr,
                    &format!("k{i}"),
                    "v",
                    "--local-store",
                    st,
                ])
                .env("SAFE_HOME", h)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut landed = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            landed.push(format!("k{i}"));
        } else {
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(
                e.contains("stale or replayed") || e.contains("different state"),
                "{e}"
            );
        }
    }
    assert!(!landed.is_empty());
    let r: serde_json::Value = serde_json::from_str(&ok_in(
        h,
        &["mutable", "get", &addr, "--local-store", st, "--json"],
    ))
    .unwrap();
    let keys: Vec<&str> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    landed.sort();
    assert_eq!(
        keys, landed,
        "every write that said it landed is there, and only those"
    );
    assert_eq!(r["version"], landed.len());
}

#[cfg(unix)]
#[test]
fn directory_snapshots_round_trip() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let st = s(&store);
    let src = dir.path().join("site");
    std::fs::create_dir_all(src.join("css")).unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    std::fs::write(src.join("index.html"), b"<h1>hello</h1>").unwrap();
    std::fs::write(src.join("css/site.css"), b"body{}").unwrap();
    let big = data(300_000, 9);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    std::fs::write(src.join("tool.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(src.join("tool.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("css/site.css", src.join("style")).unwrap();

    let address = ok(&["put", s(&src), "--local-store", st]);
    let address = address.trim();
    assert!(address.starts_with("safe://d"), "{address}");
    // The same tree, the same address.
    assert_eq!(ok(&["put", s(&src), "--local-store", st]).trim(), address);

    // The whole tree back, identical (diff -r compares contents and links).
    let out = dir.path().join("out");
    ok(&["get", address, "--local-store", st, "-o", s(&out)]);
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference", s(&src), s(&out)])
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert!(out.join("empty").is_dir());
    assert_ne!(
        std::fs::metadata(out.join("tool.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o100,
        0
    );
    // An output that exists is refused, and left as it was.
    let e = err(&["get", address, "--local-store", st, "-o", s(&out)]);
    assert!(e.contains("exists"), "{e}");

    // One file, a range of one, a subdirectory.
    let one = safe(&[
        "get",
        &format!("{address}/css/site.css"),
        "--local-store",
        st,
    ]);
    assert_eq!(one.stdout, b"body{}");
    let part = safe(&[
        "get",
        &format!("{address}/big.bin"),
        "--local-store",
        st,
        "--range",
        "-100",
    ]);
    assert_eq!(part.stdout, &big[big.len() - 100..]);
    let sub = dir.path().join("css-only");
    ok(&[
        "get",
        &format!("{address}/css"),
        "--local-store",
        st,
        "-o",
        s(&sub),
    ]);
    assert_eq!(std::fs::read(sub.join("site.css")).unwrap(), b"body{}");

    // ls, in text and JSON.
    let listing = ok(&["ls", address, "--local-store", st]);
    assert!(
        listing.contains("index.html")
            && listing.contains("dir ")
            && listing.contains("-> css/site.css"),
        "{listing}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["ls", address, "--local-store", st, "--json"])).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["big.bin", "css", "empty", "index.html", "style", "tool.sh"]
    );
    assert!(
        json[0]["address"].as_str().unwrap().starts_with("safe://f"),
        "big files are files of their own"
    );
    assert_eq!(json[4]["target"], "css/site.css");

    // Bad input: one clear line each.
    let e = err(&["get", address, "--local-store", st]);
    assert!(e.contains("give -o OUTDIR"), "{e}");
    let e = err(&["get", &format!("{address}/nope"), "--local-store", st]);
    assert!(e.contains("no nope in the snapshot"), "{e}");
    let e = err(&["get", &format!("{address}/../etc"), "--local-store", st]);
    assert!(e.contains("invalid"), "{e}");
}

#[test]
fn names_point_at_data_and_keep_their_versions() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = dir.path().join("store");
    let st = s(&store);
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::write(site.join("index.html"), b"<h1>v1</h1>").unwrap();
    std::fs::write(site.join("css/a.css"), b"body{}").unwrap();
    let run = |args: &[&str]| safe_in(&home, args, b"");
    let ok = |args: &[&str]| ok_in(&home, args);
    let fails = |args: &[&str]| {
        let out = run(args);
        assert!(!out.status.success(), "safe {args:?} should fail");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        err
    };

    // Names follow the DNS label rule, normalised to lowercase.
    let bad = fails(&["name", "register", "bad_name", "--local-store", st]);
    assert!(bad.contains("lowercase letters"), "{bad}");
    assert_eq!(
        ok(&["name", "register", "MySite", "--local-store", st]),
        "safe://mysite"
    );
    ok(&["keys", "create", "other"]);
    let taken = fails(&[
        "name",
        "register",
        "mysite",
        "--key",
        "other",
        "--local-store",
        st,
    ]);
    assert!(taken.contains("is taken"), "{taken}");

    // Publish: the snapshot, and the name pointed at it.
    assert_eq!(
        ok(&["publish", s(&site), "--name", "mysite", "--local-store", st]),
        "safe://www.mysite"
    );
    assert_eq!(
        ok(&["get", "safe://mysite/index.html", "--local-store", st]),
        "<h1>v1</h1>"
    );
    let listing = ok(&["ls", "safe://www.mysite/", "--local-store", st]);
    assert!(
        listing.contains("index.html") && listing.contains("css"),
        "{listing}"
    );

    // A new version; the old one stays resolvable.
    std::fs::write(site.join("index.html"), b"<h1>v2</h1>").unwrap();
    ok(&["publish", s(&site), "--name", "mysite", "--local-store", st]);
    assert_eq!(
        ok(&["get", "safe://mysite/index.html", "--local-store", st]),
        "<h1>v2</h1>"
    );
    assert_eq!(
        ok(&["get", "safe://mysite/index.html?v=1", "--local-store", st]),
        "<h1>v1</h1>"
    );
    let shown: serde_json::Value = serde_json::from_str(&ok(&[
        "name",
        "show",
        "mysite",
        "--json",
        "--local-store",
        st,
    ]))
    .unwrap();
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["versions"].as_array().unwrap().len(), 2);

    // Services, and who may change them.
    let file = ok(&["put", s(&site.join("css/a.css")), "--local-store", st]);
    ok(&["name", "set", "mysite", "style", &file, "--local-store", st]);
    assert_eq!(
        ok(&["get", "safe://style.mysite", "--local-store", st]),
        "body{}"
    );
    let not_owner = fails(&[
        "name",
        "set",
        "mysite",
        "www",
        &file,
        "--key",
        "other",
        "--local-store",
        st,
    ]);
    assert!(not_owner.contains("owner"), "{not_owner}");
    let missing = fails(&["get", "safe://blog.mysite", "--local-store", st]);
    assert!(missing.contains("no service \"blog\""), "{missing}");
    let nobody = fails(&["get", "safe://nobody-here", "--local-store", st]);
    assert!(nobody.contains("no name \"nobody-here\""), "{nobody}");

    // Transfer: the old owner is refused afterwards, the new one is not.
    let other = ok(&["keys", "list", "--json"]);
    let other: serde_json::Value = serde_json::from_str(&other).unwrap();
    let other_pk = other
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "other")
        .unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&[
        "name",
        "transfer",
        "mysite",
        "--to",
        &other_pk,
        "--local-store",
        st,
    ]);
    fails(&["name", "set", "mysite", "www", "none", "--local-store", st]);
    ok(&[
        "name",
        "set",
        "mysite",
        "www",
        "none",
        "--key",
        "other",
        "--local-store",
        st,
    ]);
    let gone = fails(&["get", "safe://mysite", "--local-store", st]);
    assert!(gone.contains("no service \"www\""), "{gone}");
}
