//! The gateway's own origin, `http://localhost:PORT/`: the home page (open
//! a `safe://` URL; the user's grants), `/proxy.pac`, and the consent page
//! where the user lets a site do more than its quota allows.
//!
//! A grant or revoke is a form posted from these pages only: it must carry
//! the token the gateway put in the page (random per gateway run, and
//! unreadable by other origins) and come with this origin's `Origin`.
//! The pages cannot be framed, so a site cannot trick a click.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;

use crate::grants::{self, Grant, check_site};
use crate::{Shared, escape, html, page};

/// The `Content-Security-Policy` of the gateway's own pages.
const OWN_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// A request to the gateway's own origin.
pub(crate) fn own(
    shared: &Shared,
    method: &Method,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> Response {
    let mut r = match (method.clone(), uri.path()) {
        (Method::GET | Method::HEAD, "/proxy.pac") => pac(shared, headers),
        (Method::GET | Method::HEAD, "/") => home(shared),
        (Method::GET | Method::HEAD, "/grant") if !shared.options.public => {
            consent(shared, uri.query().unwrap_or(""))
        }
        (Method::POST, "/grant" | "/revoke") if !shared.options.public => {
            decide(shared, uri.path(), headers, body)
        }
        _ => page(
            StatusCode::NOT_FOUND,
            "Not found",
            "No such page on the gateway.",
        ),
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(OWN_CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A site that opened this page (window.open) keeps no handle on it.
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `/proxy.pac`: sends `*.safe` (and nothing else) to this gateway, so a
/// browser set to use it opens `http://www.name.safe/` directly.
fn pac(shared: &Shared, headers: &HeaderMap) -> Response {
    // A public gateway listens on 0.0.0.0: send browsers to the address
    // they reached it by.
    let addr = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if shared.options.public => host.to_string(),
        _ => shared.addr.to_string(),
    };
    if addr.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        return page(
            StatusCode::BAD_REQUEST,
            "Bad host",
            "The Host header is not usable here.",
        );
    }
    let mut r = Response::new(
        format!(
            "function FindProxyForURL(url, host) {{\n  if (dnsDomainIs(host, \".safe\")) return \"PROXY {addr}\";\n  return \"DIRECT\";\n}}\n"
        )
        .into(),
    );
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ns-proxy-autoconfig"),
    );
    r
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn pairs(text: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(text)
        .take(16)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The home page: open a URL; the grants, each with a revoke button.
fn home(shared: &Shared) -> Response {
    let port = shared.addr.port();
    let mut grants_html = String::new();
    if shared.options.public {
        grants_html.push_str("<p>This is a public gateway: it reads, and never writes.</p>");
    } else {
        match shared.grants.all() {
            Ok(all) if all.is_empty() => grants_html.push_str(&format!(
                "<p>No site has been granted more than its own key and quota ({} writes and {} KiB a day).</p>",
                grants::SITE_WRITES_PER_DAY,
                grants::SITE_BYTES_PER_DAY >> 10
            )),
            Ok(all) => {
                grants_html.push_str("<table><tr><th>site<th>extra writes a day<th>your keys<th></tr>");
                for (site, g) in all {
                    grants_html.push_str(&format!(
                        "<tr><td>{s}<td>{w}<td>{k}<td><form method=post action=/revoke><input type=hidden name=token value={t}><input type=hidden name=site value=\"{s}\"><button>Revoke</button></form></tr>",
                        s = escape(&site),
                        w = g.extra_writes,
                        k = escape(&g.keys.join(", ")),
                        t = shared.token
                    ));
                }
                grants_html.push_str("</table>");
            }
            Err(e) => grants_html.push_str(&format!("<p>{}</p>", escape(&e.to_string()))),
        }
    }
    html(
        StatusCode::OK,
        format!(
            r#"<!doctype html><meta charset=utf-8><title>safe gateway</title>
<h1>safe gateway</h1>
<form id=f><input id=u size=60 placeholder="safe://www.name/path or safe://d…"> <button>Open</button></form>
<p>Sites open at <code>http://&lt;service&gt;.&lt;name&gt;.localhost:{port}/</code> and raw addresses at <code>http://&lt;address&gt;.localhost:{port}/</code>, each its own origin.</p>
<h2>What sites may do</h2>
{grants_html}
<script>
document.getElementById('f').onsubmit = function (e) {{
  e.preventDefault();
  var u = document.getElementById('u').value.trim().replace(/^safe:\/\//, '');
  var i = u.search(/[\/?#]/); var host = i < 0 ? u : u.slice(0, i); var rest = i < 0 ? '/' : u.slice(i);
  if (!/^[a-z0-9.-]+$/i.test(host)) {{ alert('Not a safe:// URL: ' + host); return; }}
  if (rest.charAt(0) !== '/') rest = '/' + rest;
  location.href = 'http://' + host.toLowerCase() + '.localhost:{port}' + rest;
}};
</script>"#
        ),
    )
}

/// What a grant request asks for, checked.
fn asked(pairs: &[(String, String)]) -> Result<(String, Grant), String> {
    let site = check_site(field(pairs, "site").unwrap_or("")).map_err(|e| e.to_string())?;
    let number = |name: &str| -> Result<u64, String> {
        match field(pairs, name) {
            None | Some("") => Ok(0),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| format!("{name} must be a whole number")),
        }
    };
    let writes = number("writes")?.min(grants::MAX_GRANT_WRITES);
    let mib = number("mib")?.min(1 << 20);
    let keys = match field(pairs, "key") {
        None | Some("") => Vec::new(),
        Some(k) => {
            safe_client::keys::check_key_name(k).map_err(|e| e.to_string())?;
            vec![k.to_string()]
        }
    };
    Ok((
        site,
        Grant {
            extra_writes: writes,
            extra_bytes: mib << 20,
            keys,
        },
    ))
}

/// Refuses a grant of a key the logged-in account does not have (it
/// would come into force, unseen, when a key of that name is made).
fn keys_known(shared: &Shared, g: &Grant) -> Result<(), String> {
    if g.keys.is_empty() {
        return Ok(());
    }
    let account = match shared.options.home.session().load() {
        Ok(Some(a)) => a,
        Ok(None) => return Err("log in first: keys are granted from your account".into()),
        Err(e) => return Err(e.to_string()),
    };
    match g.keys.iter().find(|k| !account.known_keys().contains(k)) {
        Some(k) => Err(format!(
            "your account has no key {k:?} (see `safe keys list`)"
        )),
        None => Ok(()),
    }
}

/// The consent page: what a site asks for, and a button to allow it.
fn consent(shared: &Shared, query: &str) -> Response {
    let (site, g) = match asked(&pairs(query.as_bytes())) {
        Ok(a) => a,
        Err(e) => return page(StatusCode::BAD_REQUEST, "Bad request", &e),
    };
    if let Err(e) = keys_known(shared, &g) {
        return page(StatusCode::BAD_REQUEST, "Cannot grant that", &e);
    }
    let mut what = Vec::new();
    if g.extra_writes > 0 {
        what.push(format!("make up to {} more writes a day", g.extra_writes));
    }
    if g.extra_bytes > 0 {
        what.push(format!(
            "write up to {} MiB more a day",
            g.extra_bytes >> 20
        ));
    }
    for k in &g.keys {
        what.push(format!(
            "sign with your own key “{}”: change every record it owns, including any public name it owns, as you could",
            escape(k)
        ));
    }
    if what.is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "Nothing was asked for.",
        );
    }
    let site_e = escape(&site);
    html(
        StatusCode::OK,
        format!(
            r#"<!doctype html><meta charset=utf-8><title>Allow {site_e}?</title>
<h1>Allow <code>{site_e}</code>?</h1>
<p>The site <b>{site_e}</b> asks to:</p><ul><li>{list}</ul>
<p>Without this it can still read public data and write with its own key, up to its daily quota. You can revoke this at any time on the <a href="/">gateway's page</a> or with <code>safe gateway revoke {site_e}</code>.</p>
<form method=post action=/grant>
<input type=hidden name=token value={token}>
<input type=hidden name=site value="{site_e}">
<input type=hidden name=writes value={writes}>
<input type=hidden name=mib value={mib}>
<input type=hidden name=key value="{key}">
<button disabled>Allow</button> <a href="/">Don't allow</a>
</form>
<p id=wait>The button turns on after a moment, once this page is in view.</p>
<script>
// Against tricks that put this button under a click meant for something
// else: it works only in a real-sized window, seen and focused for a
// second, after the pointer has moved over the page.
(function () {{
  var button = document.querySelector('button'), since = 0, moved = false;
  document.addEventListener('pointermove', function () {{ moved = true; }});
  setInterval(function () {{
    var fine = document.visibilityState === 'visible' && document.hasFocus()
      && window.innerWidth >= 400 && window.innerHeight >= 250;
    since = fine ? (since || Date.now()) : 0;
    var on = fine && moved && Date.now() - since >= 1000;
    button.disabled = !on;
    document.getElementById('wait').hidden = on;
  }}, 200);
}})();
</script>"#,
            list = what.join("<li>"),
            token = shared.token,
            writes = g.extra_writes,
            mib = g.extra_bytes >> 20,
            key = escape(g.keys.first().map(String::as_str).unwrap_or("")),
        ),
    )
}

/// A posted grant or revoke, accepted only from the gateway's own page.
fn decide(shared: &Shared, path: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let port = shared.addr.port();
    let own_origin = format!("http://localhost:{port}");
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o == own_origin || (port == 80 && o == "http://localhost"));
    let form = pairs(body);
    let token_ok = field(&form, "token").is_some_and(|t| {
        // Compared in constant time.
        t.len() == shared.token.len()
            && t.bytes()
                .zip(shared.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !origin_ok || !token_ok {
        return page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Grants are given on the gateway's own page only.",
        );
    }
    if path == "/revoke" {
        return match check_site(field(&form, "site").unwrap_or("")) {
            Ok(site) => match shared.grants.revoke(&site) {
                Ok(_) => page(
                    StatusCode::OK,
                    "Revoked",
                    &format!("{site} now has its own key and daily quota only."),
                ),
                Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, "Failed", &e.to_string()),
            },
            Err(e) => page(StatusCode::BAD_REQUEST, "Bad request", &e.to_string()),
        };
    }
    match asked(&form).and_then(|(site, g)| keys_known(shared, &g).map(|()| (site, g))) {
        Ok((site, g)) => match shared.grants.grant(&site, &g) {
            Ok(now) => page(
                StatusCode::OK,
                "Allowed",
                &format!(
                    "{site} may now make {} more writes a day and sign with: {}. You can go back to the site.",
                    now.extra_writes,
                    if now.keys.is_empty() {
                        "its own key only".to_string()
                    } else {
                        now.keys.join(", ")
                    }
                ),
            ),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, "Failed", &e.to_string()),
        },
        Err(e) => page(StatusCode::BAD_REQUEST, "Bad request", &e),
    }
}
