//! Prometheus metrics on `/metrics` (text exposition format 0.0.4), and
//! what the node holds now, for its operator and for checks of copy counts:
//!
//! - `/chunks`: the names of the chunks in the index (live ones only, not
//!   those dropped and waiting for compaction), one hex name per line;
//! - `/records`: the addresses of the mutable records held, each with the
//!   digest of the held version (`ADDRESS DIGEST`, hex);
//! - `/earnings`: the storage payments the node took, `RECEIPT NANOS`
//!   (what `safe wallet receive` takes in, and how much).
//!
//! All are in key order and streamed a page at a time ([`LIST_PAGE`]
//! names), so a node with millions of chunks lists them in bounded memory.
//! The metrics address is the operator's (loopback unless they choose
//! otherwise): the network itself never tells a peer what a node holds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::store::{NodeStore, NodeStoreError};

/// Names read from the index per step of a `/chunks` or `/records` listing.
pub const LIST_PAGE: usize = 4096;

/// What the metrics page reports on: the counters, the store and the size
/// of the routing table (not the whole node, so this module depends on
/// the store alone).
#[derive(Clone)]
pub(crate) struct Sources {
    /// The request counters.
    pub(crate) metrics: Arc<Metrics>,
    /// The node's store.
    pub(crate) store: Arc<NodeStore>,
    /// Peers in the routing table.
    pub(crate) routing: watch::Receiver<usize>,
    /// The node (for its queues).
    pub(crate) node: Arc<crate::node::Node>,
}

/// Kinds of request counted separately.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// PutChunk.
    PutChunk,
    /// GetChunk.
    GetChunk,
    /// OfferChunks.
    OfferChunks,
    /// PutRecord.
    PutRecord,
    /// GetRecord.
    GetRecord,
    /// OfferRecords.
    OfferRecords,
    /// GetAccount.
    GetAccount,
    /// CacheChunk.
    CacheChunk,
    /// PeerAges.
    PeerAges,
    /// RelayCerts.
    RelayCerts,
    /// Spend (a vote asked for).
    Spend,
    /// GetSpend.
    GetSpend,
    /// Quote.
    Quote,
    /// Pay.
    Pay,
    /// Audit (this node audited).
    Audit,
}

/// Counters a node keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    put_chunk: AtomicU64,
    get_chunk: AtomicU64,
    offer_chunks: AtomicU64,
    put_record: AtomicU64,
    get_record: AtomicU64,
    offer_records: AtomicU64,
    get_account: AtomicU64,
    cache_chunk: AtomicU64,
    peer_ages: AtomicU64,
    relay_certs: AtomicU64,
    spend: AtomicU64,
    get_spend: AtomicU64,
    quote: AtomicU64,
    pay: AtomicU64,
    audit: AtomicU64,
    audits_passed: AtomicU64,
    audits_failed: AtomicU64,
    audits_unanswered: AtomicU64,
    relay_circuits_total: AtomicU64,
    relay_circuits: AtomicU64,
    relay_cells: AtomicU64,
    relay_destroyed: AtomicU64,
    refused: AtomicU64,
    served_chunks: AtomicU64,
    served_bytes: AtomicU64,
    replicated: AtomicU64,
    handed_off: AtomicU64,
}

impl Metrics {
    pub(crate) fn request(&self, kind: Kind) {
        let c = match kind {
            Kind::PutChunk => &self.put_chunk,
            Kind::GetChunk => &self.get_chunk,
            Kind::OfferChunks => &self.offer_chunks,
            Kind::PutRecord => &self.put_record,
            Kind::GetRecord => &self.get_record,
            Kind::OfferRecords => &self.offer_records,
            Kind::GetAccount => &self.get_account,
            Kind::CacheChunk => &self.cache_chunk,
            Kind::PeerAges => &self.peer_ages,
            Kind::RelayCerts => &self.relay_certs,
            Kind::Spend => &self.spend,
            Kind::GetSpend => &self.get_spend,
            Kind::Quote => &self.quote,
            Kind::Pay => &self.pay,
            Kind::Audit => &self.audit,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn audited(&self, outcome: &crate::audit::Outcome) {
        use crate::audit::Outcome;
        let c = match outcome {
            Outcome::Passed => &self.audits_passed,
            Outcome::Failed(_) => &self.audits_failed,
            Outcome::NoAnswer(_) => &self.audits_unanswered,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn relay_circuits_created(&self) -> u64 {
        self.relay_circuits_total.load(Ordering::Relaxed)
    }
    pub(crate) fn relay_circuit_created(&self) {
        self.relay_circuits_total.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn set_relay_circuits(&self, n: usize) {
        self.relay_circuits.store(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn relay_cell(&self) {
        self.relay_cells.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn relay_destroyed(&self) {
        self.relay_destroyed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn served(&self, bytes: usize) {
        self.served_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.served_chunks.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn chunks_served(&self) -> u64 {
        self.served_chunks.load(Ordering::Relaxed)
    }
    pub(crate) fn replicated(&self) {
        self.replicated.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn handed_off(&self, n: usize) {
        self.handed_off.fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn render(State(node): State<Sources>) -> impl IntoResponse {
    let m = &node.metrics;
    let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let routing = *node.routing.borrow();
    let body = format!(
        "# HELP safe_chunks Chunks stored.\n# TYPE safe_chunks gauge\nsafe_chunks {}\n\
         # HELP safe_stored_bytes Bytes stored (chunks and records).\n# TYPE safe_stored_bytes gauge\nsafe_stored_bytes {}\n\
         # HELP safe_capacity_bytes Storage capacity.\n# TYPE safe_capacity_bytes gauge\nsafe_capacity_bytes {}\n\
         # HELP safe_routing_peers Peers in the routing table.\n# TYPE safe_routing_peers gauge\nsafe_routing_peers {routing}\n\
         # HELP safe_requests_total Requests served, by kind.\n# TYPE safe_requests_total counter\n\
         safe_requests_total{{kind=\"put\"}} {}\nsafe_requests_total{{kind=\"get\"}} {}\nsafe_requests_total{{kind=\"offer\"}} {}\n\
         safe_requests_total{{kind=\"put_record\"}} {}\nsafe_requests_total{{kind=\"get_record\"}} {}\nsafe_requests_total{{kind=\"offer_records\"}} {}\n\
         safe_requests_total{{kind=\"get_account\"}} {}\nsafe_requests_total{{kind=\"cache_chunk\"}} {}\nsafe_requests_total{{kind=\"peer_ages\"}} {}\nsafe_requests_total{{kind=\"relay_certs\"}} {}\n\
         safe_requests_total{{kind=\"spend\"}} {}\nsafe_requests_total{{kind=\"get_spend\"}} {}\n\
         safe_requests_total{{kind=\"quote\"}} {}\nsafe_requests_total{{kind=\"pay\"}} {}\nsafe_requests_total{{kind=\"audit\"}} {}\n\
         # HELP safe_audits_total Storage audits this node made of other members, by outcome.\n# TYPE safe_audits_total counter\n\
         safe_audits_total{{outcome=\"passed\"}} {}\nsafe_audits_total{{outcome=\"failed\"}} {}\nsafe_audits_total{{outcome=\"unanswered\"}} {}\n\
         # HELP safe_relay_circuits_total Circuits created through this relay.\n# TYPE safe_relay_circuits_total counter\nsafe_relay_circuits_total {}\n\
         # HELP safe_relay_circuits Circuits through this relay now (at most 512).\n# TYPE safe_relay_circuits gauge\nsafe_relay_circuits {}\n\
         # HELP safe_relay_cells_total Relay cells passed on.\n# TYPE safe_relay_cells_total counter\nsafe_relay_cells_total {}\n\
         # HELP safe_relay_destroyed_total Circuits destroyed (closed, refused, idle, or over a limit).\n# TYPE safe_relay_destroyed_total counter\nsafe_relay_destroyed_total {}\n\
         # HELP safe_chunks_served_total Chunks served (from the store or the cache).\n# TYPE safe_chunks_served_total counter\nsafe_chunks_served_total {}\n\
         # HELP safe_cache_hits_total Chunks served from the cache of popular chunks.\n# TYPE safe_cache_hits_total counter\nsafe_cache_hits_total {}\n\
         # HELP safe_cache_inserts_total Popular chunks taken into the cache.\n# TYPE safe_cache_inserts_total counter\nsafe_cache_inserts_total {}\n\
         # HELP safe_cache_bytes Bytes held in the cache of popular chunks (bounded by --cache-size).\n# TYPE safe_cache_bytes gauge\nsafe_cache_bytes {}\n\
         # HELP safe_mutable_records Mutable records stored.\n# TYPE safe_mutable_records gauge\nsafe_mutable_records {}\n\
         # HELP safe_refused_total Requests refused.\n# TYPE safe_refused_total counter\nsafe_refused_total {}\n\
         # HELP safe_served_bytes_total Chunk bytes served.\n# TYPE safe_served_bytes_total counter\nsafe_served_bytes_total {}\n\
         # HELP safe_replicated_total Chunks and records fetched by replication.\n# TYPE safe_replicated_total counter\nsafe_replicated_total {}\n\
         # HELP safe_handed_off_total Chunks handed on and dropped.\n# TYPE safe_handed_off_total counter\nsafe_handed_off_total {}\n\
         # HELP safe_inbound_bytes Bytes of received requests held now (bounded by the inbound budget).\n# TYPE safe_inbound_bytes gauge\nsafe_inbound_bytes {}\n\
         # HELP safe_inbound_budget_bytes The inbound budget.\n# TYPE safe_inbound_budget_bytes gauge\nsafe_inbound_budget_bytes {}\n\
         # HELP safe_connections_denied_total Incoming connections refused by the per-source limits.\n# TYPE safe_connections_denied_total counter\nsafe_connections_denied_total {}\n\
         # HELP safe_fetch_queue Replication fetches queued (at most 4096, 512 per peer).\n# TYPE safe_fetch_queue gauge\nsafe_fetch_queue {}\n\
         # HELP safe_requests_rate_limited_total Requests refused because their peer was over its --request-rate.\n# TYPE safe_requests_rate_limited_total counter\nsafe_requests_rate_limited_total {}\n\
         # HELP safe_peers_banned_total Peers banned for sending on after being rate limited.\n# TYPE safe_peers_banned_total counter\nsafe_peers_banned_total {}\n\
         # HELP safe_inbound_dropped_total Requests dropped because the inbound queue (256) was full.\n# TYPE safe_inbound_dropped_total counter\nsafe_inbound_dropped_total {}\n",
        node.store.chunk_count(),
        node.store.used(),
        node.store.capacity(),
        r(&m.put_chunk),
        r(&m.get_chunk),
        r(&m.offer_chunks),
        r(&m.put_record),
        r(&m.get_record),
        r(&m.offer_records),
        r(&m.get_account),
        r(&m.cache_chunk),
        r(&m.peer_ages),
        r(&m.relay_certs),
        r(&m.spend),
        r(&m.get_spend),
        r(&m.quote),
        r(&m.pay),
        r(&m.audit),
        r(&m.audits_passed),
        r(&m.audits_failed),
        r(&m.audits_unanswered),
        r(&m.relay_circuits_total),
        r(&m.relay_circuits),
        r(&m.relay_cells),
        r(&m.relay_destroyed),
        r(&m.served_chunks),
        node.node.cache.hits(),
        node.node.cache.inserts(),
        node.node.cache.held(),
        node.store.record_count(),
        r(&m.refused),
        r(&m.served_bytes),
        r(&m.replicated),
        r(&m.handed_off),
        safe_network::codec::inbound_bytes(),
        safe_network::codec::INBOUND_BUDGET,
        safe_network::ip_limits::denied(),
        node.node.fetches.queued(),
        safe_network::peer_limits::limited(),
        safe_network::peer_limits::banned(),
        safe_network::driver::inbound_dropped(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// One listing line per item of a page, and the key to page on from.
type Page<K = safe_protocol::XorName> = (String, Option<K>);

/// Streams a listing: `page(after)` reads the next page from the store
/// (off the async threads); the stream ends after a short page. A store
/// failure ends the body with an error, so the client sees a broken
/// transfer, never a short list presented as whole.
fn listing<K: Send + 'static>(
    store: Arc<NodeStore>,
    page: fn(&NodeStore, Option<K>) -> Result<Page<K>, NodeStoreError>,
) -> impl IntoResponse {
    let pages = futures::stream::unfold(Some(None), move |after| {
        let store = store.clone();
        async move {
            let after = after?;
            let read = tokio::task::spawn_blocking(move || page(&store, after)).await;
            match read {
                Ok(Ok((text, next))) => Some((Ok(text), next.map(Some))),
                Ok(Err(e)) => Some((Err(std::io::Error::other(e)), None)),
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(pages),
    )
}

async fn list_chunks(State(node): State<Sources>) -> impl IntoResponse {
    listing(node.store, |store, after| {
        let names = store.chunk_names_after(after, LIST_PAGE)?;
        let next = (names.len() == LIST_PAGE)
            .then(|| names.last().copied())
            .flatten();
        let mut text = String::with_capacity(names.len() * 65);
        for n in &names {
            text.push_str(&n.to_hex());
            text.push('\n');
        }
        Ok((text, next))
    })
}

async fn list_records(State(node): State<Sources>) -> impl IntoResponse {
    listing(node.store, |store, after| {
        let records = store.records_after(after, LIST_PAGE)?;
        let next = (records.len() == LIST_PAGE)
            .then(|| records.last().map(|(n, _)| *n))
            .flatten();
        let mut text = String::with_capacity(records.len() * 130);
        for (n, digest) in &records {
            text.push_str(&n.to_hex());
            text.push(' ');
            text.push_str(&hex::encode(digest));
            text.push('\n');
        }
        Ok((text, next))
    })
}

/// `/earnings`: one line per storage payment taken, `RECEIPT NANOS`
/// (`-` for a receipt not kept), in spend order.
async fn list_earnings(State(node): State<Sources>) -> impl IntoResponse {
    listing(node.store, |store, after| {
        let rows = store.earnings_after(after, LIST_PAGE)?;
        let next = (rows.len() == LIST_PAGE)
            .then(|| rows.last().map(|e| (e.spend, e.output)))
            .flatten();
        Ok((earning_lines(&rows), next))
    })
}

/// Earnings as `/earnings` lists them.
pub fn earning_lines(rows: &[crate::store::Earning]) -> String {
    let mut text = String::with_capacity(rows.len() * 90);
    for e in rows {
        match e.receipt {
            Some(r) => text.push_str(&hex::encode(r)),
            None => text.push('-'),
        }
        text.push(' ');
        text.push_str(&e.amount.to_string());
        text.push('\n');
    }
    text
}

/// Serves `/metrics`, `/chunks`, `/records` and `/earnings` on `addr`
/// until `stop`; returns the bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    sources: Sources,
    mut stop: watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/chunks", get(list_chunks))
        .route("/records", get(list_records))
        .route("/earnings", get(list_earnings))
        .with_state(sources);
    tasks.spawn(async move {
        let shutdown = async move {
            let _ = stop.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("metrics server failed: {e}");
        }
    });
    Ok(bound)
}
