//! The web gateway: the network served over HTTP to an ordinary browser.
//!
//! Every site gets an origin of its own, so sites cannot read each
//! other's storage or cookies:
//!
//! - `http://<service>.<name>.localhost:PORT/…` for a public name
//!   (`http://<name>.localhost` means the `www` service);
//! - `http://<address>.localhost:PORT/…` for a raw `d…` or `f…` address;
//! - `http://localhost:PORT/` is the gateway's own page.
//!
//! Chromium and Firefox resolve `*.localhost` to loopback by themselves.
//! Any other `Host` is refused, which stops DNS rebinding.
//!
//! Responses are what browsers and caches expect: content types from
//! file extensions, `index.html` for directories (a listing when there is
//! none, and a redirect to the trailing `/` so relative links work), the
//! site's own `404.html`, `HEAD`, single `Range` requests (only the
//! covering chunks are fetched), `ETag`, `Cache-Control: immutable` for
//! content-addressed hosts and a short max-age through names, a strict
//! `Content-Security-Policy`, and bodies streamed a chunk's worth at a
//! time whatever the file size.
//!
//! **Proxy mode**: the same port answers absolute-form proxy requests for
//! those hosts and for `http://<service>.<name>.safe/` and
//! `http://<address>.safe/`, so `http_proxy=http://127.0.0.1:PORT wget
//! --mirror …` works; `http://localhost:PORT/proxy.pac` sends only
//! `*.safe` to the gateway, so a browser can open `http://www.name.safe/`.
//!
//! **Apps**: every site's origin also answers the apps' API under
//! `/_safe/v1/` ([`api`](crate) module; contract in `docs/APPS.md`): records
//! read and written with a key of the site's own for the logged-in user,
//! within a daily quota that only the user can raise ([`grants`], the
//! consent page on the gateway's own origin, `safe gateway grant`).
//!
//! **Caches**: verified chunks and decoded directory listings
//! ([`safe_client::cache`]), and name resolutions for [`NAME_CACHE_SECS`].
//!
//! **`--public`**: read-only for other hosts; no account, no writes, and
//! per-client rate limits ([`PUBLIC_RATE`], [`PUBLIC_BURST`]).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod api;
pub mod conn;
pub mod grants;
mod pages;

use grants::Grants;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use safe_client::cache::{DEFAULT_CHUNK_CACHE_BYTES, DEFAULT_MANIFEST_CACHE_BYTES};
use safe_client::files::Opened;
use safe_client::names::NameOpError;
use safe_client::tree::{Found, TreeError};
use safe_client::{ByteRange, Client, Home, RangeError};
use safe_protocol::manifest::{Entry, FileData, Manifest, Node, check_name};
use safe_protocol::name::check_label;
use safe_protocol::{Address, DataKind, Host, SafeUrl};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bytes read from the network per step of a streamed body (about a
/// chunk): what one response holds in memory at a time.
pub const STREAM_STEP: u64 = 1 << 20;
/// Body steps being read from the network at once, over every response:
/// what bounds the memory of streaming under any load (each step holds
/// at most [`STREAM_STEP`] bytes plus the chunks it decrypts), however
/// many clients download at once. Others wait their turn.
pub const MAX_STREAM_STEPS: usize = 32;
static STREAM_STEPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_STREAM_STEPS);
/// Bodies longer than one step being sent at once (more wait): each may
/// hold a step's bytes for a slow reader, so this bounds what slow
/// readers can make the gateway keep, with [`MAX_STREAM_STEPS`] and the
/// caches: 32 + 32 × (1 MiB and its chunks) + 80 MiB, under 256 MiB.
pub const MAX_STREAMS: usize = 32;
static STREAMS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_STREAMS);

/// `Cache-Control` of content-addressed responses.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of responses reached through a name (which can change).
pub const THROUGH_NAME: &str = "public, max-age=60";
/// The `Content-Security-Policy` every site's page gets: everything from
/// its own origin only (scripts, styles, images, fonts, and every
/// `fetch`), never framed by another. Inline scripts and styles are
/// allowed, because the static sites people publish rely on them (mdbook
/// output has six inline scripts per page); they still cannot load from
/// or talk to any other origin.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'none'";

/// How a gateway runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen (port 0: any free one).
    pub listen: SocketAddr,
    /// Bytes of verified chunks kept in memory.
    pub chunk_cache_bytes: u64,
    /// Bytes (estimated) of decoded directory listings kept in memory.
    pub manifest_cache_bytes: u64,
    /// Serve other hosts read-only: no account, no app writes, and each
    /// client limited to [`PUBLIC_RATE`] requests a second.
    pub public: bool,
    /// Domains whose subdomains are sites, besides `localhost` and
    /// `safe` (a public gateway's own domain, e.g. `gw.example.org`).
    pub domains: Vec<String>,
    /// The data directory: the logged-in account (the session) and the
    /// grants.
    pub home: Home,
}

impl Options {
    /// Listening on `listen`, with the default caches.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            chunk_cache_bytes: DEFAULT_CHUNK_CACHE_BYTES,
            manifest_cache_bytes: DEFAULT_MANIFEST_CACHE_BYTES,
            public: false,
            domains: Vec::new(),
            home: Home::from_env(),
        }
    }
}

/// A running gateway.
pub struct Gateway {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Gateway {
    /// Serves the network through `client` as `options` say.
    pub async fn start(client: Client, options: Options) -> std::io::Result<Gateway> {
        let listener = tokio::net::TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let listener = conn::Limited::new(listener, options.public);
        let client = client.with_caches(options.chunk_cache_bytes, options.manifest_cache_bytes);
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).map_err(|e| std::io::Error::other(e.to_string()))?;
        if !options.public && !options.domains.is_empty() {
            return Err(std::io::Error::other(
                "--domain is for a --public gateway only: a name in ordinary DNS could be rebound to this machine",
            ));
        }
        let mut domains = vec!["localhost".to_string()];
        domains.extend(options.domains.iter().map(|d| d.to_ascii_lowercase()));
        let mut proxy_domains = domains.clone();
        proxy_domains.push("safe".to_string());
        let state = Arc::new(Shared {
            client,
            names: NameCache::new(),
            addr,
            grants: Grants::in_dir(options.home.dir()),
            usage_lock: tokio::sync::Mutex::new(()),
            token: hex::encode(token),
            limits: RateLimits::new(),
            domains,
            proxy_domains,
            options,
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(state)
            .into_make_service_with_connect_info::<conn::Peer>();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.changed().await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!("gateway failed: {e}");
            }
        });
        Ok(Gateway { addr, stop, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its own page: `http://localhost:PORT/`.
    pub fn url(&self) -> String {
        format!("http://localhost:{}/", self.addr.port())
    }

    /// The gateway URL of a `safe://` URL (names and raw addresses).
    pub fn url_of(&self, url: &SafeUrl) -> String {
        url_of(url, self.addr.port())
    }

    /// Stops serving and waits for open requests to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The gateway URL of `url` on a gateway at `port`.
pub fn url_of(url: &SafeUrl, port: u16) -> String {
    let host = match &url.host {
        Host::Address(a) => a.to_string().trim_start_matches("safe://").to_string(),
        Host::Name { service, name } => format!("{service}.{name}"),
    };
    let path: Vec<String> = url
        .path
        .iter()
        .map(|c| percent_encoding::utf8_percent_encode(c, PATH_SEGMENT).to_string())
        .collect();
    format!("http://{host}.localhost:{port}/{}", path.join("/"))
}

/// Characters escaped in a path segment.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

struct Shared {
    client: Client,
    names: NameCache,
    addr: SocketAddr,
    options: Options,
    grants: Grants,
    /// Held while a write is counted, so two writes never both pass a
    /// quota with room for one.
    usage_lock: tokio::sync::Mutex<()>,
    /// Proves a grant or revoke was posted from the gateway's own page.
    token: String,
    /// Per-client request rates (public mode).
    limits: RateLimits,
    /// Domains whose subdomains are sites: `localhost` and the
    /// `--domain`s of a public gateway.
    domains: Vec<String>,
    /// The same and `safe`, for proxy requests only: `*.safe` is not
    /// pinned to loopback as `*.localhost` is, so a `Host: x.safe` in an
    /// ordinary request may come from a page whose DNS was rebound here.
    proxy_domains: Vec<String>,
}

impl Shared {
    /// The gateway's own page (where consent is given).
    fn home_url(&self) -> String {
        format!("http://localhost:{}/", self.addr.port())
    }
}

/// Requests a second each client may make of a public gateway, on
/// average.
pub const PUBLIC_RATE: f64 = 50.0;
/// Requests a client of a public gateway may make at once after a quiet
/// spell.
pub const PUBLIC_BURST: f64 = 200.0;
/// Slots of the per-client rate table: clients are hashed (with a key
/// chosen at start) onto a fixed table, so memory stays bounded however
/// many addresses a flood comes from.
pub const RATE_SLOTS: usize = 16_384;

/// Token buckets, one per slot of client addresses.
struct RateLimits {
    hasher: std::collections::hash_map::RandomState,
    slots: std::sync::Mutex<Vec<(f64, Instant)>>,
}

impl RateLimits {
    fn new() -> Self {
        Self {
            hasher: std::collections::hash_map::RandomState::new(),
            slots: std::sync::Mutex::new(vec![(PUBLIC_BURST, Instant::now()); RATE_SLOTS]),
        }
    }

    /// Takes a token for `ip`; whether there was one.
    fn allow(&self, ip: std::net::IpAddr) -> bool {
        use std::hash::BuildHasher;
        let slot = (self.hasher.hash_one(ip) % RATE_SLOTS as u64) as usize;
        let Ok(mut slots) = self.slots.lock() else {
            return false;
        };
        let (tokens, at) = &mut slots[slot];
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * PUBLIC_RATE).min(PUBLIC_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Seconds a name's resolution is reused before the name record is read
/// again (responses through names say `max-age=60`, so browsers already
/// wait longer than this).
pub const NAME_CACHE_SECS: u64 = 10;
/// Most names whose resolution is kept.
pub const NAME_CACHE_ENTRIES: usize = 4096;

/// Recent name resolutions: `(service, name)` to the target and when it
/// was read.
struct NameCache {
    entries: quick_cache::sync::Cache<(String, String), (Address, Instant)>,
}

impl NameCache {
    fn new() -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(NAME_CACHE_ENTRIES),
        }
    }

    /// What `url` points at, through the cache for names.
    async fn resolve(
        &self,
        client: &Client,
        url: &SafeUrl,
    ) -> Result<(Address, Vec<String>), NameOpError> {
        let Host::Name { service, name } = &url.host else {
            return client.resolve(url).await;
        };
        let key = (service.clone(), name.clone());
        if url.version.is_none()
            && let Some((target, at)) = self.entries.get(&key)
            && at.elapsed() < Duration::from_secs(NAME_CACHE_SECS)
        {
            return Ok((target, url.path.clone()));
        }
        let (target, path) = client.resolve(url).await?;
        if url.version.is_none() {
            self.entries.insert(key, (target, Instant::now()));
        }
        Ok((target, path))
    }
}

/// What a request's `Host` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Site {
    /// The gateway's own page.
    Home,
    /// A name without a service: the same site as `www.<name>`, sent
    /// there so that each site has one origin.
    Bare(String),
    /// A site: a name's service, or an address.
    Safe(Host),
}

/// The site a `Host` header names, if it is one of the gateway's forms
/// (`domains`: `localhost`, `safe` for proxy requests, and any a public
/// gateway serves).
fn site_of(host: &str, domains: &[String]) -> Option<Site> {
    let host = host.to_ascii_lowercase();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
        _ => host,
    };
    if host == "localhost" || (host != "safe" && domains.contains(&host)) {
        return Some(Site::Home);
    }
    // `.safe` hosts come through proxy mode (a browser using /proxy.pac,
    // or `http_proxy=` for tools).
    let label = domains
        .iter()
        .find_map(|d| host.strip_suffix(d.as_str())?.strip_suffix('.'))?;
    if let Ok(a) = format!("safe://{label}").parse::<Address>() {
        return matches!(a.kind, DataKind::Directory | DataKind::File)
            .then_some(Site::Safe(Host::Address(a)));
    }
    let (service, name) = match label.split_once('.') {
        Some((s, n)) => (s, n),
        None => return Some(Site::Bare(check_label(label).ok()?)),
    };
    Some(Site::Safe(Host::Name {
        service: check_label(service).ok()?,
        name: check_label(name).ok()?,
    }))
}

/// The path's components, percent-decoded and checked (`None`: not a
/// valid path), and whether it ends with `/`.
fn path_of(uri: &Uri) -> Option<(Vec<String>, bool)> {
    let raw = uri.path();
    let mut out = Vec::new();
    for part in raw.split('/').filter(|p| !p.is_empty()) {
        if out.len() == safe_protocol::url::MAX_PATH_DEPTH {
            return None;
        }
        let decoded = percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .ok()?
            .into_owned();
        check_name(&decoded).ok()?;
        out.push(decoded);
    }
    Some((out, raw.ends_with('/')))
}

tokio::task_local! {
    /// Whom the request being answered comes from, on a public gateway
    /// (for per-client shares of long downloads).
    static CLIENT: IpAddr;
}

/// Long downloads (more than one [`STREAM_STEP`]) one client of a public
/// gateway may have at once.
pub const MAX_STREAMS_PER_CLIENT: usize = 4;

/// Long downloads per client of a public gateway.
static STREAMS_BY_CLIENT: std::sync::LazyLock<Arc<conn::PerClient>> =
    std::sync::LazyLock::new(Default::default);

/// A client's place among its [`MAX_STREAMS_PER_CLIENT`] long downloads,
/// given back when the body is done or dropped (none needed when the
/// gateway is not public). `None`: the client has its share already.
fn client_stream() -> Option<Option<conn::Counted>> {
    match CLIENT.try_with(|c| *c) {
        Err(_) => Some(None),
        Ok(client) => STREAMS_BY_CLIENT
            .take(client, MAX_STREAMS_PER_CLIENT)
            .map(Some),
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn::Peer(peer)): ConnectInfo<conn::Peer>,
    request: Request,
) -> Response {
    if shared.options.public {
        let client = conn::client_of(peer.ip());
        CLIENT.scope(client, answer(shared, peer, request)).await
    } else {
        answer(shared, peer, request).await
    }
}

async fn answer(shared: Arc<Shared>, peer: SocketAddr, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (method, headers, uri) = (parts.method, parts.headers, parts.uri);
    // Code of a site must not outlive the site: no service workers.
    if headers
        .get("service-worker")
        .is_some_and(|v| v.as_bytes() == b"script")
    {
        return page(
            StatusCode::FORBIDDEN,
            "No service workers",
            "The gateway does not serve service workers: a site's code must not outlive a change of its name.",
        );
    }
    if shared.options.public && !shared.limits.allow(conn::client_of(peer.ip())) {
        let mut r = page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "Slow down: this public gateway serves each client a fair share.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    // A proxy request (absolute form) names its host in the URI.
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("")
        .to_string();
    let domains = if uri.authority().is_some() {
        &shared.proxy_domains
    } else {
        &shared.domains
    };
    let Some(site) = site_of(&host, domains) else {
        return page(
            StatusCode::MISDIRECTED_REQUEST,
            "Unknown host",
            "This gateway answers only for localhost, <name>.localhost, <service>.<name>.localhost and <address>.localhost.",
        );
    };
    let site = match site {
        Site::Home => {
            let body = match read_body(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            return pages::own(&shared, &method, &headers, &uri, &body);
        }
        Site::Bare(_) => {
            let rest = uri.path_and_query().map_or("/", |p| p.as_str());
            return redirect(&format!("http://www.{host}{rest}"));
        }
        Site::Safe(h) => h,
    };
    if let Some(rest) = uri.path().strip_prefix("/_safe/v1/") {
        let body = match read_body(body).await {
            Ok(b) => b,
            Err(_) => {
                return api::too_large();
            }
        };
        return api::handle(
            &shared,
            &site,
            &host,
            &method,
            &headers,
            rest,
            uri.query(),
            body,
        )
        .await;
    }
    if method != Method::GET && method != Method::HEAD {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "Sites are served with GET and HEAD; apps write through /_safe/v1/.",
        );
    }
    let Some((path, slash)) = path_of(&uri) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Bad path",
            "The path is not valid.",
        );
    };
    let host = site;
    let through_name = matches!(host, Host::Name { .. });
    let url = SafeUrl {
        host,
        path,
        version: None,
    };
    let mut response = match serve(
        &shared.client,
        &shared.names,
        &url,
        slash,
        &headers,
        &method,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let status = response.status();
    let h = response.headers_mut();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        let cache = if through_name {
            THROUGH_NAME
        } else {
            IMMUTABLE
        };
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if method == Method::HEAD {
        *response.body_mut() = Body::empty();
    }
    response
}

/// A request body of at most [`api::MAX_BODY`] bytes, or the response
/// that refuses it.
async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, api::MAX_BODY)
        .await
        .map_err(|_| {
            page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                &format!("Request bodies are at most {} bytes.", api::MAX_BODY),
            )
        })
}

/// Why a request could not be served.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Network(String),
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        match self {
            ServeError::NotFound(m) => page(StatusCode::NOT_FOUND, "Not found", &m),
            ServeError::Network(m) => page(
                StatusCode::BAD_GATEWAY,
                "The network did not answer",
                &format!("{m}. Is the network (or your testnet) running?"),
            ),
        }
    }
}

impl From<NameOpError> for ServeError {
    fn from(e: NameOpError) -> Self {
        match e {
            NameOpError::Mutable(m) => ServeError::Network(m.to_string()),
            e => ServeError::NotFound(e.to_string()),
        }
    }
}

impl From<TreeError> for ServeError {
    fn from(e: TreeError) -> Self {
        match e {
            TreeError::NotFound(p) | TreeError::NotADirectory(p) => {
                ServeError::NotFound(format!("No /{p} on this site."))
            }
            e => ServeError::Network(e.to_string()),
        }
    }
}

async fn serve(
    client: &Client,
    names: &NameCache,
    url: &SafeUrl,
    slash: bool,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Response, ServeError> {
    let (address, path) = names.resolve(client, url).await?;
    match address.kind {
        DataKind::File if path.is_empty() => {
            let etag = format!("\"{}\"", address.name);
            if let Some(r) = not_modified(headers, &etag) {
                return Ok(r);
            }
            let opened = client
                .open_file(&address, None)
                .await
                .map_err(|e| ServeError::Network(e.to_string()))?;
            Ok(file(client, opened, &etag, "", headers, method).await)
        }
        DataKind::Directory => match client.find(address.name, &path).await {
            Ok(Found::Dir { listing, .. }) => {
                if !slash && !path.is_empty() {
                    let to = format!("{}/", url_path(&path));
                    return Ok(redirect(&to));
                }
                match listing.get("index.html") {
                    Some(index) => serve_entry(client, index, headers, method).await,
                    None => Ok(dir_listing(&path, &listing)),
                }
            }
            Ok(Found::Entry(entry)) => serve_entry(client, &entry, headers, method).await,
            Err(TreeError::NotFound(_) | TreeError::NotADirectory(_)) => {
                not_found(client, address, &path, method).await
            }
            Err(e) => Err(e.into()),
        },
        _ => Err(ServeError::NotFound(format!(
            "{address} is not a site or a file"
        ))),
    }
}

/// The site's own `404.html` (with status 404), or a plain page.
async fn not_found(
    client: &Client,
    site: Address,
    path: &[String],
    method: &Method,
) -> Result<Response, ServeError> {
    if let Ok(Found::Entry(e)) = client.find(site.name, &["404.html".to_string()]).await
        && let Ok(mut r) = serve_entry(client, &e, &HeaderMap::new(), method).await
    {
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut().remove(header::ETAG);
        return Ok(r);
    }
    Err(ServeError::NotFound(format!(
        "No {} on this site.",
        url_path(path)
    )))
}

async fn serve_entry(
    client: &Client,
    entry: &Entry,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Response, ServeError> {
    let Node::File { data, size } = &entry.node else {
        return Err(ServeError::NotFound(format!(
            "{} is not a file",
            entry.name
        )));
    };
    let (opened, etag) = match data {
        FileData::Inline(bytes) => {
            let etag = format!("\"i{}\"", &hash_hex(bytes)[..32]);
            let opened =
                Opened::inline(bytes.clone()).map_err(|e| ServeError::Network(e.to_string()))?;
            (opened, etag)
        }
        FileData::Stored(name) => {
            let etag = format!("\"{name}\"");
            // A revalidation is answered before the file is opened.
            if let Some(r) = not_modified(headers, &etag) {
                return Ok(r);
            }
            let address = Address::new(DataKind::File, *name);
            let opened = client
                .open_file(&address, None)
                .await
                .map_err(|e| ServeError::Network(e.to_string()))?;
            if opened.size != *size {
                return Err(ServeError::Network(format!(
                    "{} is not the size its directory says",
                    entry.name
                )));
            }
            (opened, etag)
        }
    };
    Ok(file(client, opened, &etag, &entry.name, headers, method).await)
}

fn hash_hex(bytes: &[u8]) -> String {
    safe_protocol::XorName::from_content(bytes).to_string()
}

/// 304 when `If-None-Match` names `etag`.
fn not_modified(headers: &HeaderMap, etag: &str) -> Option<Response> {
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    matches.then(|| {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r
    })
}

/// A file's response: the whole, or the one range asked for.
async fn file(
    client: &Client,
    opened: Opened,
    etag: &str,
    name: &str,
    headers: &HeaderMap,
    method: &Method,
) -> Response {
    if let Some(r) = not_modified(headers, etag) {
        return r;
    }
    let size = opened.size;
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        // Several ranges at once: served whole, as HTTP allows.
        .filter(|v| !v.contains(','))
        .map(|v| v.trim().parse::<ByteRange>());
    let (status, range) = match asked {
        None => (StatusCode::OK, 0..size),
        Some(Ok(r)) => match r.resolve(size) {
            Ok(range) => (StatusCode::PARTIAL_CONTENT, range),
            Err(RangeError::PastEnd { .. }) => {
                let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
            Err(_) => (StatusCode::OK, 0..size),
        },
        // A range we cannot read is ignored (the whole is served).
        Some(Err(_)) => (StatusCode::OK, 0..size),
    };
    let len = range.end - range.start;
    let body = if *method == Method::HEAD || len == 0 {
        Body::empty()
    } else if len > STREAM_STEP {
        let Some(place) = client_stream() else {
            let mut r = page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many downloads",
                &format!(
                    "A client of this public gateway may download {MAX_STREAMS_PER_CLIENT} large files at once."
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        };
        stream(client.clone(), opened, range.clone(), place)
    } else {
        stream(client.clone(), opened, range.clone(), None)
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{size}",
            range.start,
            range.end.saturating_sub(1)
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    r
}

/// The bytes of `range`, [`STREAM_STEP`] at a time: memory stays bounded
/// whatever the size, and only the chunks covering the range are fetched.
/// A body of more than one step holds one of [`MAX_STREAMS`] places for
/// as long as it is sent, since each may keep a step waiting for a slow
/// reader.
fn stream(
    client: Client,
    opened: Opened,
    range: std::ops::Range<u64>,
    client_place: Option<conn::Counted>,
) -> Body {
    let opened = Arc::new(opened);
    let client_place = Arc::new(client_place);
    let long = range.end - range.start > STREAM_STEP;
    let steps = futures::stream::unfold((range.start, None), move |(at, place)| {
        let (client, opened) = (client.clone(), opened.clone());
        // Held as long as the body is.
        let _client_place = client_place.clone();
        let end = range.end;
        async move {
            if at >= end {
                return None;
            }
            let stopping = || {
                Some((
                    Err(std::io::Error::other("the gateway is stopping")),
                    (end, None),
                ))
            };
            let place = match place {
                None if long => match STREAMS.acquire().await {
                    Ok(p) => Some(p),
                    Err(_) => return stopping(),
                },
                place => place,
            };
            let to = (at + STREAM_STEP).min(end);
            let Ok(_turn) = STREAM_STEPS.acquire().await else {
                return stopping();
            };
            let mut buf = Vec::with_capacity((to - at) as usize);
            let step = client
                .read_range(&opened, at..to, &mut buf)
                .await
                .map(|_| Bytes::from(buf))
                .map_err(|e| std::io::Error::other(e.to_string()));
            // After an error the stream ends (the connection is cut, so a
            // client never takes a short body for the whole).
            let next = if step.is_ok() { to } else { end };
            Some((step, (next, place)))
        }
    });
    Body::from_stream(steps)
}

/// A content type from a file name's extension.
fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

fn url_path(path: &[String]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|c| percent_encoding::utf8_percent_encode(c, PATH_SEGMENT).to_string())
        .collect();
    format!("/{}", parts.join("/"))
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// A plain HTML page for errors.
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    html(
        status,
        format!(
            "<!doctype html><meta charset=utf-8><title>{t}</title><h1>{t}</h1><p>{m}</p>",
            t = escape(title),
            m = escape(message)
        ),
    )
}

/// A generated listing of a directory without an `index.html`.
fn dir_listing(path: &[String], listing: &Manifest) -> Response {
    let mut rows = String::new();
    for e in listing.entries().iter().take(MAX_LISTED) {
        let link = percent_encoding::utf8_percent_encode(&e.name, PATH_SEGMENT).to_string();
        let (suffix, size) = match &e.node {
            Node::Dir { size, .. } => ("/", *size),
            Node::File { size, .. } => ("", *size),
            Node::Symlink { .. } => ("", 0),
        };
        rows.push_str(&format!(
            "<li><a href=\"{link}{suffix}\">{}{suffix}</a> <small>{size} bytes</small></li>",
            escape(&e.name)
        ));
    }
    let more = listing.entries().len().saturating_sub(MAX_LISTED);
    let more = if more > 0 {
        format!("<p>… and {more} more, not listed.</p>")
    } else {
        String::new()
    };
    let title = escape(&url_path(path));
    html(
        StatusCode::OK,
        format!(
            "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><ul>{rows}</ul>{more}"
        ),
    )
}

/// Most entries a generated listing shows (it is built in memory).
pub const MAX_LISTED: usize = 5000;

#[cfg(test)]
mod tests {
    use super::*;
    use safe_protocol::XorName;

    fn site_of_(host: &str) -> Option<Site> {
        site_of(host, &["localhost".into(), "safe".into()])
    }

    #[test]
    fn hosts_are_sites_or_refused() {
        assert_eq!(site_of_("localhost:8080"), Some(Site::Home));
        assert_eq!(
            site_of_("Blog.MySite.localhost:8080"),
            Some(Site::Safe(Host::Name {
                service: "blog".into(),
                name: "mysite".into()
            }))
        );
        assert_eq!(
            site_of_("mysite.localhost"),
            Some(Site::Bare("mysite".into()))
        );
        let d = Address::new(DataKind::Directory, XorName([4; 32]));
        let label = d.to_string().trim_start_matches("safe://").to_string();
        assert_eq!(
            site_of_(&format!("{label}.localhost:1")),
            Some(Site::Safe(Host::Address(d)))
        );
        assert_eq!(
            site_of_("blog.mysite.safe"),
            Some(Site::Safe(Host::Name {
                service: "blog".into(),
                name: "mysite".into()
            }))
        );
        for bad in [
            "evil.com",
            "mysite.localhost.evil.com",
            "mysite.safe.evil.com",
            "a.b.c.localhost",
            "bad_name.localhost",
            "",
            "127.0.0.1:8080",
        ] {
            assert_eq!(site_of_(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths_are_decoded_and_checked() {
        let uri: Uri = "/a%20b/c.html".parse().unwrap();
        assert_eq!(
            path_of(&uri),
            Some((vec!["a b".to_string(), "c.html".to_string()], false))
        );
        assert!(path_of(&"/x/..".parse().unwrap()).is_none());
        assert!(path_of(&"/x/%2e%2e/y".parse().unwrap()).is_none());
        assert!(path_of(&"/dir/".parse().unwrap()).unwrap().1);
        assert_eq!(content_type("A.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
