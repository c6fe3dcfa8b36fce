//! The apps' API: `/_safe/v1/…` on every site's own origin, JSON in and
//! out, so a page's JavaScript reads and writes records with no server.
//! The whole contract is in `docs/APPS.md`.
//!
//! Writes are signed with the site's own key for the logged-in user
//! ([`safe_client::RootSecret::site_key`]), counted against the site's
//! daily quota ([`crate::grants`]); a named key of the user needs a
//! grant. A write must come from the site's own origin (`Origin`, and
//! `Sec-Fetch-Site` when a browser sends it), so another site cannot make
//! a page's key sign for it.

// Helpers answer either a value or the response that says why not; a
// response is moved once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use safe_client::names::NameOpError;
use safe_client::{Account, MutableError, NewRecord, SigningKey};
use safe_protocol::mutable::{Change, Hash, RecordError};
use safe_protocol::{Address, DataKind, Host, XorName};
use serde_json::{Value, json};

use crate::Shared;
use crate::grants::{self, GrantError};

/// The type tag of records created through the API. Their name is the
/// creating key followed by the name the app gave, so two sites (or two
/// users) never compete for one address.
pub const APP_RECORD_TAG: u64 = 0x5afe_a995_0000_0001;
/// Largest request body the API reads (a record write is at most 128 KiB).
pub const MAX_BODY: usize = 192 << 10;

/// A JSON response.
fn reply(status: StatusCode, value: Value) -> Response {
    let mut r = Response::new(Body::from(value.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    reply(status, json!({ "error": message.to_string() }))
}

/// The answer to a body over [`MAX_BODY`].
pub(crate) fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request bodies are at most {MAX_BODY} bytes"),
    )
}

fn from_mutable(e: MutableError) -> Response {
    match e {
        MutableError::NotFound(_) => error(StatusCode::NOT_FOUND, e),
        MutableError::Refused(
            RecordError::NotAllowed
            | RecordError::NotOwner
            | RecordError::NotEnoughSigners { .. }
            | RecordError::BadSignature,
        ) => error(StatusCode::FORBIDDEN, e),
        MutableError::Refused(_) => error(StatusCode::CONFLICT, e),
        // Refused before sending: too large, too many entries, …
        MutableError::Invalid(_) => error(StatusCode::BAD_REQUEST, e),
        MutableError::Full => error(StatusCode::INSUFFICIENT_STORAGE, e),
        e => error(StatusCode::BAD_GATEWAY, e),
    }
}

fn from_grant(e: GrantError) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}

/// A record address from a path segment (`m…`, with or without
/// `safe://`).
fn record_address(text: &str) -> Result<XorName, Response> {
    let text = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the address is not UTF-8"))?;
    let text = if text.contains("://") {
        text.to_string()
    } else {
        format!("safe://{text}")
    };
    match text.parse::<Address>() {
        Ok(a) if a.kind == DataKind::Mutable => Ok(a.name),
        Ok(a) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("{a} is not a record (records are safe://m…)"),
        )),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, e)),
    }
}

/// A path segment's bytes (an entry key).
fn segment(text: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(text).collect()
}

/// The one value of query parameter `name`.
fn query(uri_query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(uri_query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Whether a write comes from the site's own origin. Browsers send
/// `Origin` with every POST, PUT and DELETE; a tool that sends none is
/// not a page of another site.
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    let fetch_site_ok = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == "same-origin" || v == "none");
    let origin_ok = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(o) => o
            .strip_prefix("http://")
            .is_some_and(|h| h.eq_ignore_ascii_case(host)),
    };
    fetch_site_ok && origin_ok
}

/// One API request on site `site` (whose `Host` was `host`). `rest` is
/// the path after `/_safe/v1/`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn handle(
    shared: &Shared,
    site: &Host,
    host: &str,
    method: &Method,
    headers: &HeaderMap,
    rest: &str,
    uri_query: Option<&str>,
    body: Bytes,
) -> Response {
    let parts: Vec<&str> = rest.split('/').collect();
    let site_id = grants::site_id(site);
    let writing = *method != Method::GET && *method != Method::HEAD;
    if writing && !same_origin(headers, host) {
        return error(
            StatusCode::FORBIDDEN,
            "writes are accepted only from the site's own pages",
        );
    }
    match (method.clone(), parts.as_slice()) {
        (Method::GET, ["whoami"]) => whoami(shared, &site_id),
        (Method::GET, ["records", addr]) => match record_address(addr) {
            Ok(a) => match shared.client.get_record(a).await {
                Ok(r) => reply(StatusCode::OK, safe_client::json::record(a, &r)),
                Err(e) => from_mutable(e),
            },
            Err(r) => r,
        },
        (Method::GET, ["names", name]) => match shared.client.name_info(name).await {
            Ok(info) => reply(StatusCode::OK, safe_client::json::name_info(&info)),
            Err(NameOpError::Mutable(e)) => from_mutable(e),
            Err(e @ NameOpError::NotRegistered(_)) => error(StatusCode::NOT_FOUND, e),
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        (m, ["records", ..]) if m != Method::GET && shared.options.public => error(
            StatusCode::FORBIDDEN,
            "this is a public gateway: it reads, and never writes",
        ),
        (Method::POST, ["records"]) => create(shared, &site_id, uri_query, &body).await,
        (Method::PUT, ["records", addr, "entries", key]) => {
            let change = Change::Set {
                key: segment(key),
                value: body.to_vec(),
            };
            owner_write(shared, &site_id, uri_query, addr, change).await
        }
        (Method::DELETE, ["records", addr, "entries", key]) => {
            let change = Change::Remove { key: segment(key) };
            owner_write(shared, &site_id, uri_query, addr, change).await
        }
        (Method::DELETE, ["records", addr, "appends", id]) => {
            let Some(id) = hex::decode(id)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                return error(StatusCode::BAD_REQUEST, "an append id is 64 hex digits");
            };
            let change = Change::RemoveAppends {
                ids: vec![id as Hash],
            };
            owner_write(shared, &site_id, uri_query, addr, change).await
        }
        (Method::POST, ["records", addr, "appends"]) => {
            append(shared, &site_id, uri_query, addr, body).await
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no API endpoint {method} /_safe/v1/{rest} (see docs/APPS.md)"),
        ),
    }
}

/// The logged-in account, or the response that says why there is none.
fn account(shared: &Shared) -> Result<Account, Response> {
    if shared.options.public {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "this is a public gateway: nobody is logged in here",
        ));
    }
    match shared.options.home.session().load() {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(error(
            StatusCode::UNAUTHORIZED,
            "no account is logged in at the gateway (run `safe account login`)",
        )),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

fn whoami(shared: &Shared, site: &str) -> Response {
    let account = match account(shared) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let key = account.root().site_key(site);
    let (used, grant) = match (shared.grants.used(site), shared.grants.of(site)) {
        (Ok(u), Ok(g)) => (u, g),
        (Err(e), _) | (_, Err(e)) => return from_grant(e),
    };
    reply(
        StatusCode::OK,
        json!({
            "site": site,
            "public_key": hex::encode(key.verifying_key().to_bytes()),
            "quota": {
                "writes_per_day": grants::SITE_WRITES_PER_DAY + grant.extra_writes,
                "bytes_per_day": grants::SITE_BYTES_PER_DAY.saturating_add(grant.extra_bytes),
                "writes_today": used.writes,
                "bytes_today": used.bytes,
            },
            "keys": grant.keys,
        }),
    )
}

/// The key a write signs with: the site's own, or a named key of the
/// user's that was granted to this site (`?key=NAME`).
fn signer(shared: &Shared, site: &str, uri_query: Option<&str>) -> Result<SigningKey, Response> {
    let account = account(shared)?;
    let Some(name) = query(uri_query, "key") else {
        return Ok(account.root().site_key(site));
    };
    let grant = shared.grants.of(site).map_err(from_grant)?;
    if grant.keys.contains(&name) && account.known_keys().contains(&name) {
        return Ok(account.root().named_key(&name));
    }
    let consent = format!(
        "{}grant?site={}&key={}",
        shared.home_url(),
        form_urlencoded::byte_serialize(site.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    );
    Err(reply(
        StatusCode::FORBIDDEN,
        json!({
            "error": format!("this site may not sign with your key {name:?} unless you allow it"),
            "consent": consent,
        }),
    ))
}

/// Counts a write against the site's quota, or answers why not.
async fn spend(shared: &Shared, site: &str, bytes: usize) -> Result<(), Response> {
    let _one_at_a_time = shared.usage_lock.lock().await;
    match shared.grants.spend(site, bytes as u64) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(limits)) => {
            // Ask for what ran out: more writes, and more MiB when this
            // write would not fit in the bytes left.
            let mib = if limits.bytes_left < bytes as u64 {
                (bytes as u64 >> 20) + 1
            } else {
                0
            };
            let consent = format!(
                "{}grant?site={}&writes=1000&mib={mib}",
                shared.home_url(),
                form_urlencoded::byte_serialize(site.as_bytes()).collect::<String>()
            );
            Err(reply(
                StatusCode::FORBIDDEN,
                json!({
                    "error": format!(
                        "this site has used its daily quota ({} writes, {} bytes; {} writes and {} bytes left)",
                        limits.writes_per_day, limits.bytes_per_day, limits.writes_left, limits.bytes_left
                    ),
                    "consent": consent,
                }),
            ))
        }
        Err(e) => Err(from_grant(e)),
    }
}

/// Gives back a write counted for a write the network refused.
async fn refund(shared: &Shared, site: &str, bytes: usize) {
    let _one_at_a_time = shared.usage_lock.lock().await;
    if let Err(e) = shared.grants.refund(site, bytes as u64) {
        tracing::warn!("cannot give back a refused write of {site}: {e}");
    }
}

async fn create(shared: &Shared, site: &str, uri_query: Option<&str>, body: &[u8]) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Create {
        name: String,
        #[serde(default)]
        public_append: bool,
    }
    let asked: Create = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"name\": string, \"public_append\": bool}}: {e}"),
            );
        }
    };
    if asked.name.is_empty() || asked.name.len() > 200 {
        return error(StatusCode::BAD_REQUEST, "a name is 1 to 200 bytes");
    }
    let key = match signer(shared, site, uri_query) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut name = key.verifying_key().to_bytes().to_vec();
    name.extend_from_slice(asked.name.as_bytes());
    let new = NewRecord {
        name,
        tag: APP_RECORD_TAG,
        owners: Vec::new(),
        threshold: 1,
        public_append: asked.public_append,
    };
    let address = new.address();
    let shown = Address::new(DataKind::Mutable, address).to_string();
    // Asking again for a record that exists is not a write.
    if shared.client.get_record(address).await.is_ok() {
        return reply(
            StatusCode::OK,
            json!({ "address": shown, "created": false }),
        );
    }
    if let Err(r) = spend(shared, site, asked.name.len()).await {
        return r;
    }
    match shared.client.create_record(new, &key).await {
        Ok(_) => reply(
            StatusCode::CREATED,
            json!({ "address": shown, "created": true }),
        ),
        Err(MutableError::AlreadyCreated { .. }) => reply(
            StatusCode::OK,
            json!({ "address": shown, "created": false }),
        ),
        Err(e) => {
            refund(shared, site, asked.name.len()).await;
            from_mutable(e)
        }
    }
}

/// What every write to an existing record starts with: its address, the
/// key that signs, and the write counted against the quota.
async fn prepare(
    shared: &Shared,
    site: &str,
    uri_query: Option<&str>,
    addr: &str,
    bytes: usize,
) -> Result<(XorName, SigningKey), Response> {
    let address = record_address(addr)?;
    let key = signer(shared, site, uri_query)?;
    spend(shared, site, bytes).await?;
    Ok((address, key))
}

async fn owner_write(
    shared: &Shared,
    site: &str,
    uri_query: Option<&str>,
    addr: &str,
    change: Change,
) -> Response {
    let bytes = match &change {
        Change::Set { key, value } => key.len() + value.len(),
        Change::Remove { key } => key.len(),
        _ => 32,
    };
    let (address, key) = match prepare(shared, site, uri_query, addr, bytes).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match shared
        .client
        .update_with(address, std::slice::from_ref(&key), |_| Ok(change.clone()))
        .await
    {
        Ok(r) => reply(StatusCode::OK, safe_client::json::record(address, &r)),
        Err(MutableError::AlreadyApplied { .. }) => match shared.client.get_record(address).await {
            Ok(r) => reply(StatusCode::OK, safe_client::json::record(address, &r)),
            Err(e) => from_mutable(e),
        },
        Err(e) => {
            refund(shared, site, bytes).await;
            from_mutable(e)
        }
    }
}

async fn append(
    shared: &Shared,
    site: &str,
    uri_query: Option<&str>,
    addr: &str,
    body: Bytes,
) -> Response {
    let (address, key) = match prepare(shared, site, uri_query, addr, body.len()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match shared.client.append(address, body.to_vec(), &[key]).await {
        Ok(id) => reply(StatusCode::CREATED, json!({ "id": hex::encode(id) })),
        Err(e) => {
            refund(shared, site, body.len()).await;
            from_mutable(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_from_the_sites_own_origin() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h, "www.a.localhost:8080"), "no Origin: a tool");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://www.a.localhost:8080"),
        );
        assert!(same_origin(&h, "www.a.localhost:8080"));
        assert!(!same_origin(&h, "www.b.localhost:8080"));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h, "www.a.localhost:8080"));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(!same_origin(&h, "www.a.localhost:8080"));
    }

    #[test]
    fn record_addresses_with_or_without_scheme() {
        let a = Address::new(DataKind::Mutable, XorName([7; 32]));
        let text = a.to_string();
        assert_eq!(record_address(&text).ok(), Some(a.name));
        assert_eq!(
            record_address(text.trim_start_matches("safe://")).ok(),
            Some(a.name)
        );
        let d = Address::new(DataKind::Directory, XorName([7; 32])).to_string();
        assert!(record_address(&d).is_err());
        assert!(record_address("nonsense").is_err());
    }
}
