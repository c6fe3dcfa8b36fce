//! The apps' API over a real testnet on 127.0.0.1, with an account logged
//! in at the gateway: per-site keys, records created, written and appended
//! to, the same-origin rule, the daily quota and the consent page that
//! lifts it, named keys only by grant, and a public gateway that never
//! writes.

mod common;

use safe_client::{Client, Home, RootSecret};
use safe_gateway::grants::{Grants, SITE_WRITES_PER_DAY, today};
use safe_gateway::{Gateway, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_reads_and_writes_records_with_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let net = safe_testkit::testnet(&dir.path().join("net"), 10).await;
    let client = Client::from((*safe_testkit::client(&net).await).clone());
    let home = Home::at(dir.path().join("home"));

    let mut options = Options::new("127.0.0.1:0".parse().unwrap());
    options.home = home.clone();
    let gw = Gateway::start(client.clone(), options.clone())
        .await
        .unwrap();
    let port = gw.addr().port();
    let app = format!("www.app.localhost:{port}");
    let origin = format!("http://{app}");
    let call = |method: &'static str, path: String, body: Vec<u8>| {
        let (app, origin, addr) = (app.clone(), origin.clone(), gw.addr());
        async move {
            common::send(
                addr,
                method,
                &app,
                &path,
                &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
                &body,
            )
            .await
        }
    };

    // Nobody logged in: no key to offer.
    let who = call("GET", "/_safe/v1/whoami".into(), vec![]).await;
    assert_eq!(who.status, 401, "{}", who.text());

    let root = RootSecret::generate().unwrap();
    let account = client
        .create_account("alice", "correct horse battery staple", root, |_| {})
        .await
        .unwrap();
    home.session().save(&account).unwrap();
    let site_key = account.root().site_key("www.app");
    let who = call("GET", "/_safe/v1/whoami".into(), vec![]).await;
    assert_eq!(who.status, 200, "{}", who.text());
    assert_eq!(who.json()["site"], "www.app");
    assert_eq!(
        who.json()["public_key"],
        hex::encode(site_key.verifying_key().to_bytes())
    );
    // Another site gets another key.
    let other = common::send(
        gw.addr(),
        "GET",
        &format!("www.other.localhost:{port}"),
        "/_safe/v1/whoami",
        &[],
        b"",
    )
    .await;
    assert_ne!(other.json()["public_key"], who.json()["public_key"]);

    // A record of the site's own, created once.
    let made = call(
        "POST",
        "/_safe/v1/records".into(),
        br#"{"name":"book","public_append":true}"#.to_vec(),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text());
    let address = made.json()["address"].as_str().unwrap().to_string();
    let again = call(
        "POST",
        "/_safe/v1/records".into(),
        br#"{"name":"book","public_append":true}"#.to_vec(),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["address"], address.as_str());
    assert_eq!(again.json()["created"], false);
    let bare = address.trim_start_matches("safe://").to_string();

    // Entries: set, read back (verified, as the CLI reads it), remove.
    let set = call(
        "PUT",
        format!("/_safe/v1/records/{bare}/entries/title"),
        b"My book".to_vec(),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.text());
    let got = call("GET", format!("/_safe/v1/records/{bare}"), vec![]).await;
    assert_eq!(got.status, 200);
    let record = got.json();
    assert_eq!(record["entries"][0]["key"], "title");
    assert_eq!(record["entries"][0]["value"], "My book");
    assert_eq!(
        record["owners"][0],
        hex::encode(site_key.verifying_key().to_bytes())
    );
    assert_eq!(record["public_append"], true);

    // Appends, and the owner's moderation.
    let posted = call(
        "POST",
        format!("/_safe/v1/records/{bare}/appends"),
        b"hello".to_vec(),
    )
    .await;
    assert_eq!(posted.status, 201, "{}", posted.text());
    let id = posted.json()["id"].as_str().unwrap().to_string();
    let got = call("GET", format!("/_safe/v1/records/{bare}"), vec![]).await;
    assert_eq!(got.json()["appends"][0]["value"], "hello");
    assert_eq!(got.json()["appends"][0]["id"], id.as_str());
    let removed = call(
        "DELETE",
        format!("/_safe/v1/records/{bare}/appends/{id}"),
        vec![],
    )
    .await;
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(removed.json()["appends"].as_array().unwrap().len(), 0);
    let unset = call(
        "DELETE",
        format!("/_safe/v1/records/{bare}/entries/title"),
        vec![],
    )
    .await;
    assert_eq!(unset.json()["entries"].as_array().unwrap().len(), 0);

    // Another site's page cannot make this site's key write.
    let forged = common::send(
        gw.addr(),
        "POST",
        &app,
        &format!("/_safe/v1/records/{bare}/appends"),
        &[("Origin", &format!("http://www.evil.localhost:{port}"))],
        b"spam",
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.text());
    // Another site's key does not own this record.
    let stranger = common::send(
        gw.addr(),
        "PUT",
        &format!("www.other.localhost:{port}"),
        &format!("/_safe/v1/records/{bare}/entries/x"),
        &[],
        b"y",
    )
    .await;
    assert!(
        stranger.status == 403 || stranger.status == 409,
        "{} {}",
        stranger.status,
        stranger.text()
    );

    // A named key of the user's needs a grant.
    let named = call(
        "POST",
        "/_safe/v1/records?key=default".into(),
        br#"{"name":"mine"}"#.to_vec(),
    )
    .await;
    assert_eq!(named.status, 403);
    assert!(
        named.json()["consent"]
            .as_str()
            .unwrap()
            .contains("grant?site=www.app&key=default")
    );

    // The quota: once used up, writes stop until the user consents.
    let usage = format!(
        r#"{{"version":1,"sites":{{"www.app":{{"day":{},"writes":{SITE_WRITES_PER_DAY},"bytes":0}}}}}}"#,
        today()
    );
    std::fs::write(home.dir().join("gateway-usage.json"), usage).unwrap();
    let over = call(
        "POST",
        format!("/_safe/v1/records/{bare}/appends"),
        b"one too many".to_vec(),
    )
    .await;
    assert_eq!(over.status, 403, "{}", over.text());
    let consent = over.json()["consent"].as_str().unwrap().to_string();
    let consent_path = consent
        .strip_prefix(&format!("http://localhost:{port}"))
        .unwrap()
        .to_string();
    let own = format!("localhost:{port}");
    let page = common::send(gw.addr(), "GET", &own, &consent_path, &[], b"").await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("www.app"), "{html}");
    let token = html
        .split("name=token value=")
        .nth(1)
        .and_then(|t| t.split('>').next())
        .unwrap()
        .to_string();
    // Without the page's token, or from another origin: refused.
    let own_origin = format!("http://localhost:{port}");
    let no_token = common::send(
        gw.addr(),
        "POST",
        &own,
        "/grant",
        &[("Origin", &own_origin)],
        b"site=www.app&writes=5",
    )
    .await;
    assert_eq!(no_token.status, 403);
    let form = format!("token={token}&site=www.app&writes=5&mib=0&key=");
    let cross = common::send(
        gw.addr(),
        "POST",
        &own,
        "/grant",
        &[("Origin", &origin)],
        form.as_bytes(),
    )
    .await;
    assert_eq!(cross.status, 403);
    let allowed = common::send(
        gw.addr(),
        "POST",
        &own,
        "/grant",
        &[("Origin", &own_origin)],
        form.as_bytes(),
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(
        Grants::in_dir(home.dir())
            .of("www.app")
            .unwrap()
            .extra_writes,
        5
    );
    let now = call(
        "POST",
        format!("/_safe/v1/records/{bare}/appends"),
        b"granted".to_vec(),
    )
    .await;
    assert_eq!(now.status, 201, "{}", now.text());

    // A public gateway: nobody is logged in, and nothing is written.
    let mut public = options.clone();
    public.public = true;
    let pub_gw = Gateway::start(client.clone(), public).await.unwrap();
    let pub_app = format!("www.app.localhost:{}", pub_gw.addr().port());
    let who = common::send(pub_gw.addr(), "GET", &pub_app, "/_safe/v1/whoami", &[], b"").await;
    assert_eq!(who.status, 401);
    let write = common::send(
        pub_gw.addr(),
        "POST",
        &pub_app,
        &format!("/_safe/v1/records/{bare}/appends"),
        &[],
        b"nope",
    )
    .await;
    assert_eq!(write.status, 403, "{}", write.text());
    let read = common::send(
        pub_gw.addr(),
        "GET",
        &pub_app,
        &format!("/_safe/v1/records/{bare}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["appends"][0]["value"], "granted");

    // Each client of a public gateway gets a fair share of requests. The
    // burst is sent from as many connections at once as one client may
    // hold, so it outruns the refill however slow each request is on a
    // loaded machine (sequential requests taking over 1/PUBLIC_RATE s
    // each would never empty the bucket): 600 requests in under 8 s.
    let workers = safe_gateway::conn::MAX_PER_CLIENT - 8;
    let each = 600 / workers;
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (addr, host) = (pub_gw.addr(), pub_app.clone());
        burst.spawn(async move {
            let mut refused = 0;
            for _ in 0..each {
                let r = common::send(addr, "GET", &host, "/_safe/v1/names/app", &[], b"").await;
                if r.status == 429 {
                    assert_eq!(r.headers["retry-after"], "1");
                    refused += 1;
                } else {
                    // The name is not registered: what matters is that
                    // the request was served, not refused.
                    assert_eq!(r.status, 404, "{}", r.text());
                }
            }
            refused
        });
    }
    let mut refused = 0;
    while let Some(n) = burst.join_next().await {
        refused += n.unwrap();
    }
    assert!(refused > 0, "a burst past the limit is refused");

    pub_gw.stop().await;
    gw.stop().await;
    client.shutdown().await;
    net.down().await;
}
