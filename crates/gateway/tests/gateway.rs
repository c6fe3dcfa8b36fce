//! The gateway over a real testnet on 127.0.0.1: a multi-page site behind
//! a name, fetched with plain HTTP requests as a browser sends them.

use safe_client::Client;
use safe_client::tree::TreeOptions;
use safe_gateway::{Gateway, Options};
use safe_protocol::mutable::SigningKey;

mod common;
use common::Reply;

/// One request without a body.
async fn request(
    gw: &Gateway,
    method: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> Reply {
    common::send(gw.addr(), method, host, path, extra, b"").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_named_site_is_served_as_browsers_expect() {
    let dir = tempfile::tempdir().unwrap();
    let net = safe_testkit::testnet(&dir.path().join("net"), 10).await;
    let client = Client::from((*safe_testkit::client(&net).await).clone());

    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("about")).unwrap();
    std::fs::create_dir_all(site.join("files")).unwrap();
    std::fs::write(site.join("index.html"), b"<h1>home</h1>").unwrap();
    std::fs::write(site.join("about/index.html"), b"<h1>about</h1>").unwrap();
    std::fs::write(site.join("style.css"), b"body{}").unwrap();
    std::fs::write(site.join("404.html"), b"<h1>lost</h1>").unwrap();
    let big = safe_testkit::bytes_for(3, 3 << 20);
    std::fs::write(site.join("files/big.bin"), &big).unwrap();
    std::fs::write(site.join("files/a b.txt"), b"spaced").unwrap();
    let put = client
        .put_tree(&site, &TreeOptions::default())
        .await
        .unwrap();
    let key = SigningKey::from_bytes(&[9; 32]);
    client
        .register_name("mysite", Vec::new(), 1, &key)
        .await
        .unwrap();
    client
        .set_service(
            "mysite",
            "www",
            Some(put.address),
            std::slice::from_ref(&key),
            1,
        )
        .await
        .unwrap();

    let mut options = Options::new("127.0.0.1:0".parse().unwrap());
    options.home = safe_client::Home::at(dir.path().join("home"));
    let gw = Gateway::start(client.clone(), options).await.unwrap();
    let port = gw.addr().port();
    let name = format!("www.mysite.localhost:{port}");

    // A name without a service is the www site, at one origin.
    let bare = request(
        &gw,
        "GET",
        &format!("mysite.localhost:{port}"),
        "/a?b=c",
        &[],
    )
    .await;
    assert_eq!(bare.status, 301);
    assert_eq!(
        bare.headers["location"],
        format!("http://www.mysite.localhost:{port}/a?b=c")
    );

    // Pages, types, caching, policy.
    let home = request(&gw, "GET", &name, "/", &[]).await;
    assert_eq!(home.status, 200);
    assert_eq!(home.body, b"<h1>home</h1>");
    assert_eq!(home.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(home.headers["cache-control"], safe_gateway::THROUGH_NAME);
    assert!(home.headers["content-security-policy"].contains("default-src 'self'"));
    let css = request(&gw, "GET", &name, "/style.css", &[]).await;
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    let about = request(&gw, "GET", &name, "/about", &[]).await;
    assert_eq!(about.status, 301);
    assert_eq!(about.headers["location"], "/about/");
    assert_eq!(
        request(&gw, "GET", &name, "/about/", &[]).await.body,
        b"<h1>about</h1>"
    );
    assert_eq!(
        request(&gw, "GET", &name, "/files/a%20b.txt", &[])
            .await
            .body,
        b"spaced"
    );
    let listing = request(&gw, "GET", &name, "/files/", &[]).await;
    assert!(String::from_utf8_lossy(&listing.body).contains("big.bin"));

    // The site's own 404 page, with status 404.
    let lost = request(&gw, "GET", &name, "/nope.html", &[]).await;
    assert_eq!(lost.status, 404);
    assert_eq!(lost.body, b"<h1>lost</h1>");

    // Ranges, HEAD, ETag.
    let part = request(
        &gw,
        "GET",
        &name,
        "/files/big.bin",
        &[("Range", "bytes=1048570-1048589")],
    )
    .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, big[1_048_570..1_048_590]);
    assert_eq!(
        part.headers["content-range"],
        format!("bytes 1048570-1048589/{}", big.len())
    );
    let tail = request(
        &gw,
        "GET",
        &name,
        "/files/big.bin",
        &[("Range", "bytes=-10")],
    )
    .await;
    assert_eq!(tail.body, big[big.len() - 10..]);
    let past = request(
        &gw,
        "GET",
        &name,
        "/files/big.bin",
        &[("Range", "bytes=99999999-")],
    )
    .await;
    assert_eq!(past.status, 416);
    let whole = request(&gw, "GET", &name, "/files/big.bin", &[]).await;
    assert_eq!(whole.body, big, "streamed whole");
    let head = request(&gw, "HEAD", &name, "/files/big.bin", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], big.len().to_string());
    assert!(head.body.is_empty());
    let etag = whole.headers["etag"].clone();
    let again = request(
        &gw,
        "GET",
        &name,
        "/files/big.bin",
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(again.status, 304);

    // The raw address is its own origin, cached for ever.
    let raw = put
        .address
        .to_string()
        .trim_start_matches("safe://")
        .to_string();
    let by_address = request(&gw, "GET", &format!("{raw}.localhost:{port}"), "/", &[]).await;
    assert_eq!(by_address.body, b"<h1>home</h1>");
    assert_eq!(by_address.headers["cache-control"], safe_gateway::IMMUTABLE);

    // Unknown names, foreign hosts, bad paths, writes.
    let unknown = request(
        &gw,
        "GET",
        &format!("www.nobody.localhost:{port}"),
        "/",
        &[],
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert!(String::from_utf8_lossy(&unknown.body).contains("no name"));
    assert_eq!(
        request(&gw, "GET", "evil.example:80", "/", &[])
            .await
            .status,
        421
    );
    assert_eq!(
        request(&gw, "GET", &name, "/a/%2e%2e/b", &[]).await.status,
        400
    );
    assert_eq!(request(&gw, "POST", &name, "/", &[]).await.status, 405);
    let own = request(&gw, "GET", &format!("localhost:{port}"), "/", &[]).await;
    assert!(String::from_utf8_lossy(&own.body).contains("safe gateway"));

    // Proxy mode: absolute-form requests for *.safe (and *.localhost),
    // and the PAC file that sends only *.safe here.
    let proxied = request(
        &gw,
        "GET",
        "www.mysite.safe",
        "http://www.mysite.safe/about/",
        &[],
    )
    .await;
    assert_eq!(proxied.body, b"<h1>about</h1>");
    // *.safe only as a proxy request: a page whose DNS name was rebound
    // to this machine sends it as an ordinary Host, and is refused.
    let rebound = request(&gw, "GET", "www.mysite.safe", "/about/", &[]).await;
    assert_eq!(rebound.status, 421);
    // No service workers: a site's code must not outlive its name.
    let worker = request(
        &gw,
        "GET",
        &name,
        "/style.css",
        &[("Service-Worker", "script")],
    )
    .await;
    assert_eq!(worker.status, 403);
    let pac = request(&gw, "GET", &format!("localhost:{port}"), "/proxy.pac", &[]).await;
    assert_eq!(
        pac.headers["content-type"],
        "application/x-ns-proxy-autoconfig"
    );
    let pac = String::from_utf8(pac.body).unwrap();
    assert!(
        pac.contains(".safe") && pac.contains(&format!("PROXY 127.0.0.1:{port}")),
        "{pac}"
    );

    gw.stop().await;
    client.shutdown().await;
    net.down().await;
}
