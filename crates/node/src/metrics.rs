//! Prometheus metrics on `/metrics` (text exposition format 0.0.4).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::store::NodeStore;

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
    refused: AtomicU64,
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
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn served(&self, bytes: usize) {
        self.served_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
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
         safe_requests_total{{kind=\"get_account\"}} {}\n\
         # HELP safe_mutable_records Mutable records stored.\n# TYPE safe_mutable_records gauge\nsafe_mutable_records {}\n\
         # HELP safe_refused_total Requests refused.\n# TYPE safe_refused_total counter\nsafe_refused_total {}\n\
         # HELP safe_served_bytes_total Chunk bytes served.\n# TYPE safe_served_bytes_total counter\nsafe_served_bytes_total {}\n\
         # HELP safe_replicated_total Chunks and records fetched by replication.\n# TYPE safe_replicated_total counter\nsafe_replicated_total {}\n\
         # HELP safe_handed_off_total Chunks handed on and dropped.\n# TYPE safe_handed_off_total counter\nsafe_handed_off_total {}\n\
         # HELP safe_inbound_bytes Bytes of received requests held now (bounded by the inbound budget).\n# TYPE safe_inbound_bytes gauge\nsafe_inbound_bytes {}\n\
         # HELP safe_inbound_budget_bytes The inbound budget.\n# TYPE safe_inbound_budget_bytes gauge\nsafe_inbound_budget_bytes {}\n\
         # HELP safe_fetch_queue Replication fetches queued (at most 4096, 512 per peer).\n# TYPE safe_fetch_queue gauge\nsafe_fetch_queue {}\n",
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
        node.store.record_count(),
        r(&m.refused),
        r(&m.served_bytes),
        r(&m.replicated),
        r(&m.handed_off),
        safe_network::codec::inbound_bytes(),
        safe_network::codec::INBOUND_BUDGET,
        node.node.fetches.queued(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Serves `/metrics` on `addr` until `stop`; returns the bound address.
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
