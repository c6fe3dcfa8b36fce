//! Headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`; `scripts/test` installs them when absent), against
//! `safe gateway` on a testnet started with the real binary:
//!
//! - the example guestbook is published, a book is created and a message
//!   posted through the page's own JavaScript, and a second client reads
//!   the message with `safe mutable get`;
//! - a large real static site (the Rust book, mdbook output) is mirrored
//!   back through the proxy mode with `wget --mirror`, byte for byte, and
//!   its JavaScript search finds results in Chromium.
//!
//! Everything stays on 127.0.0.1 (Chromium resolves `*.localhost` to
//! loopback itself; its background networking is off), and every process
//! is killed when the test ends, pass or fail.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(names: &[&str]) -> Option<PathBuf> {
    for name in names {
        let p = Path::new(name);
        if p.is_absolute() {
            if p.exists() {
                return Some(p.to_path_buf());
            }
            continue;
        }
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            if dir.join(name).is_file() {
                return Some(dir.join(name));
            }
        }
    }
    None
}

/// One HTTP/1.1 exchange with chromedriver (JSON in and out).
fn webdriver(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut s = TcpStream::connect(addr).expect("connect to chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver may keep the connection open: read the headers, then
    // exactly Content-Length bytes.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = s.read(&mut buf).expect("chromedriver answers");
        assert!(
            n > 0,
            "chromedriver closed the connection: {}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length: {head}"));
    let mut body = raw[split + 4..].to_vec();
    while body.len() < length {
        let n = s.read(&mut buf).expect("chromedriver answers");
        assert!(n > 0, "chromedriver cut its answer short");
        body.extend_from_slice(&buf[..n]);
    }
    serde_json::from_slice(&body[..length])
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
}

/// A headless Chromium session.
struct Browser {
    addr: SocketAddr,
    session: String,
    // Dropped in this order: the driver, then any Chromium left.
    _driver: Killed,
    _profile: Profile,
}

impl Browser {
    fn start() -> Browser {
        let driver = which(&["chromedriver", "/usr/lib/chromium/chromedriver"]).expect(
            "chromedriver is needed: apt-get install -y chromium chromium-driver (scripts/test installs them)",
        );
        let chromium = which(&["/usr/lib/chromium/chromium", "chromium", "chromium-browser"])
            .expect("chromium is needed: apt-get install -y chromium chromium-driver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let killed = Killed(child);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = Profile(tempfile::tempdir().unwrap());
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-default-apps".into(),
            "--disable-domain-reliability".into(),
            "--disable-client-side-phishing-detection".into(),
            "--dns-prefetch-disable".into(),
            "--no-pings".into(),
            "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication".into(),
            format!("--user-data-dir={}", profile.0.path().display()),
        ];
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": chromium, "args": args }
            }}
        });
        let made = webdriver(addr, "POST", "/session", Some(&caps));
        let session = made["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {made}"))
            .to_string();
        Browser {
            addr,
            session,
            _driver: killed,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = webdriver(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        );
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Waits (up to 60 s) until `script` returns something truthy; that.
    fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.script(script);
            let truthy = !(v.is_null()
                || v == json!(false)
                || v == json!("")
                || v == json!(0)
                || v.get("error").is_some());
            if truthy {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; page says: {}",
                self.script("return document.body ? document.body.innerText : ''")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = webdriver(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

/// Kills every process started with `profile` on its command line (the
/// Chromium that a failed or killed chromedriver would leave behind).
fn kill_chromium_of(profile: &Path) {
    let needle = profile.to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(p.file_name())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The profile directory, removed after every Chromium using it is gone.
struct Profile(tempfile::TempDir);

impl Drop for Profile {
    fn drop(&mut self) {
        kill_chromium_of(self.0.path());
    }
}

/// `safe gateway` on a free port; its port.
fn gateway(home: &Path, peers: &str) -> (Killed, u16) {
    let mut child = Command::new(SAFE)
        .args(["gateway", "--listen", "127.0.0.1:0"])
        .env("SAFE_HOME", home)
        .env("SAFE_PEERS", peers)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the gateway");
    let stdout = child.stdout.take().unwrap();
    let killed = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with("gateway http://localhost:"), "{line}");
    let port = line["gateway http://localhost:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (killed, port)
}

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn the_guestbook_posts_from_chromium_and_the_cli_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let net = up(&one, &one.join("testnet"));
    let peers = peers_of(&one);
    let p = peers.as_str();
    ok_with(
        &one,
        p,
        &["account", "create", "alice", "--password-stdin"],
        "correct horse battery\n",
    );
    let guestbook = repo_path("examples/apps/guestbook");
    let published = ok_with(
        &one,
        p,
        &[
            "publish",
            guestbook.to_str().unwrap(),
            "--name",
            "guestbook",
        ],
        "",
    );
    assert!(published.contains("safe://www.guestbook"), "{published}");
    let (_gw, port) = gateway(&one, p);

    let browser = Browser::start();
    browser.open(&format!("http://guestbook.localhost:{port}/"));
    browser.wait_for(
        "the create button",
        "return document.getElementById('create') && document.getElementById('create').offsetParent !== null",
    );
    browser.click("#create");
    let url = browser.wait_for(
        "the new book's address in the URL",
        "return location.search.indexOf('book=') >= 0 ? location.href : ''",
    );
    let url = url.as_str().unwrap().to_string();
    let book = url
        .split("book=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .replace("%3A", ":")
        .replace("%2F", "/");
    browser.wait_for(
        "the post form",
        "return document.getElementById('post') && document.getElementById('post').offsetParent !== null",
    );
    browser.type_into("#name", "Tester");
    browser.type_into("#message", "hello from chromium");
    browser.click("#post");
    browser.wait_for(
        "the post to be acknowledged",
        "var s = document.getElementById('status'); return s && s.textContent.indexOf('posted') >= 0",
    );
    browser.wait_for(
        "the post in the list",
        "var p = document.getElementById('posts'); return p && p.textContent.indexOf('hello from chromium') >= 0",
    );

    // Another client, elsewhere, reads the same record from the network.
    let shown = ok_with(&two, p, &["mutable", "get", &book], "");
    assert!(shown.contains("hello from chromium"), "{shown}");
    assert!(shown.contains("Tester"), "{shown}");

    drop(browser);
    down(net);
}

#[test]
fn a_real_mdbook_site_mirrors_byte_for_byte_and_its_search_works() {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc");
    let book = PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim())
        .join("share/doc/rust/html/book");
    assert!(
        book.join("searchindex.js").exists() || book.join("index.html").exists(),
        "the Rust book (mdbook output) is needed at {}: rustup component add rust-docs",
        book.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one");
    let net = up(&one, &one.join("testnet"));
    let peers = peers_of(&one);
    let p = peers.as_str();
    ok_with(
        &one,
        p,
        &["publish", book.to_str().unwrap(), "--name", "book"],
        "",
    );
    let (_gw, port) = gateway(&one, p);

    // wget through the proxy mode, as a tool that knows nothing of
    // *.localhost would.
    let mirror = dir.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let wget = Command::new("wget")
        .args(["--mirror", "--no-parent", "-q", "-e", "robots=off"])
        .arg("http://www.book.safe/")
        .env("http_proxy", format!("http://127.0.0.1:{port}"))
        .current_dir(&mirror)
        .status()
        .expect("wget is needed (apt-get install -y wget)");
    // wget exits 8 when some link gave 404: the book links to sibling
    // books (../std/…) that are not part of this site.
    assert!(matches!(wget.code(), Some(0 | 8)), "{wget}");
    let got = mirror.join("www.book.safe");
    let mut files = 0;
    let mut pages = 0;
    let mut stack = vec![got.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
                continue;
            }
            let rel = e.path().strip_prefix(&got).unwrap().to_path_buf();
            let original = std::fs::read(book.join(&rel))
                .unwrap_or_else(|_| panic!("{} is not in the book", rel.display()));
            assert!(
                std::fs::read(e.path()).unwrap() == original,
                "{} differs from the book",
                rel.display()
            );
            files += 1;
            pages += usize::from(rel.extension().is_some_and(|x| x == "html"));
        }
    }
    // Complete: every page of the book that a mirrored page links to was
    // mirrored too (links out of the book, to ../std and the like, are
    // not part of this site).
    let mut checked = 0;
    let mut stack = vec![got.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "html") {
                continue;
            }
            let html = std::fs::read_to_string(&path).unwrap_or_default();
            let here = path.parent().unwrap();
            for part in html.split("href=\"").skip(1) {
                let target = part.split(['"', '#', '?']).next().unwrap_or("");
                if target.is_empty()
                    || target.contains(':')
                    || target.contains("..")
                    || target.starts_with('/')
                {
                    continue;
                }
                let rel = here.strip_prefix(&got).unwrap().join(target);
                if book.join(&rel).is_file() {
                    assert!(
                        got.join(&rel).is_file(),
                        "{} links to {}, which was not mirrored",
                        path.display(),
                        rel.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 500, "{checked} links checked");
    assert!(pages > 50, "{pages} pages");
    assert!(files > pages, "{files} files");

    // The book's own JavaScript search, in Chromium, on the gateway.
    let browser = Browser::start();
    browser.open(&format!(
        "http://book.localhost:{port}/ch04-01-what-is-ownership.html?search=borrowing"
    ));
    let hits = browser.wait_for(
        "search results",
        "var r = document.getElementById('mdbook-searchresults'); return r ? r.querySelectorAll('li').length : 0",
    );
    assert!(hits.as_u64().unwrap() > 0, "{hits}");
    let first = browser
        .script("return document.querySelector('#mdbook-searchresults li a').getAttribute('href')");
    assert!(first.as_str().unwrap().contains(".html"), "{first}");

    drop(browser);
    down(net);
}
