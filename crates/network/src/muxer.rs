//! Yamux (`/yamux/1.0.0`) over TCP, with data frames sized for chunks.
//!
//! `libp2p-yamux` wraps the same `yamux` crate but fixes its frame size at
//! the crate default, 16 KiB: a 1 MiB chunk leaves as 64 data frames, and
//! `yamux` writes each frame's 12-byte header and its body separately, so
//! every 16 KiB cost two TLS records and two `writev` calls on the way out
//! and as many wake-ups of the receiver. Measured on a 1 GiB upload over
//! the 10-node testnet, the nodes made 622 000 `writev` calls, one per
//! 6.9 KiB sent.
//!
//! This wrapper is the same adaptation to libp2p's [`StreamMuxer`], with
//! one setting changed: a stream's data leaves in frames of up to
//! [`SPLIT_SEND_SIZE`] (and never more than the receiver's window allows).
//! That is within the protocol: a Yamux receiver takes any frame up to its
//! window (256 KiB at the start), and the `yamux` crate accepts bodies up
//! to 1 MiB, so peers using `libp2p-yamux` read these frames unchanged.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::{AsyncRead, AsyncWrite, future};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use yamux::{Connection, ConnectionError, Mode, Stream};

/// The largest data frame sent: a stream's initial receive window, so a
/// fresh stream's first 256 KiB leave as one frame.
///
/// The price is latency for the connection's other streams: a frame leaves
/// whole, so on a 10 Mbit/s link a window update or a small request can
/// wait up to 200 ms behind one (TCP's own send buffer already holds more).
pub const SPLIT_SEND_SIZE: usize = 256 * 1024;

// Stock `yamux` refuses frame bodies over 1 MiB.
const _: () = assert!(SPLIT_SEND_SIZE <= 1 << 20);

/// Inbound streams held while the swarm is not asking for them; more are
/// reset. The same bound as `libp2p-yamux` (Yamux's ACK backlog, which
/// well-behaved peers never exceed).
pub const MAX_BUFFERED_INBOUND_STREAMS: usize = 256;

/// The multiplexer upgrade (`/yamux/1.0.0`).
#[derive(Debug, Clone)]
pub struct Config(yamux::Config);

impl Default for Config {
    fn default() -> Self {
        let mut config = yamux::Config::default();
        config.set_split_send_size(SPLIT_SEND_SIZE);
        Self(config)
    }
}

impl UpgradeInfo for Config {
    type Info = &'static str;
    type InfoIter = std::iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once("/yamux/1.0.0")
    }
}

impl<C> InboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(Connection::new(io, self.0, Mode::Server))))
    }
}

impl<C> OutboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(Connection::new(io, self.0, Mode::Client))))
    }
}

/// A Yamux connection as a libp2p [`StreamMuxer`].
#[derive(Debug)]
pub struct Muxer<C> {
    connection: Connection<C>,
    /// Inbound streams that arrived while the swarm polled the connection
    /// as a whole ([`StreamMuxer::poll`]): Yamux makes progress only
    /// through `poll_next_inbound`, which may yield a stream at any time.
    inbound: VecDeque<Stream>,
    /// Woken when a stream lands in `inbound`.
    inbound_waker: Option<Waker>,
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    fn new(connection: Connection<C>) -> Self {
        Self {
            connection,
            inbound: VecDeque::new(),
            inbound_waker: None,
        }
    }

    fn poll_next_inbound(&mut self, cx: &mut Context<'_>) -> Poll<Result<Stream, ConnectionError>> {
        match self.connection.poll_next_inbound(cx) {
            Poll::Ready(Some(result)) => Poll::Ready(result),
            Poll::Ready(None) => Poll::Ready(Err(ConnectionError::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<C> StreamMuxer for Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Substream = Stream;
    type Error = ConnectionError;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        if let Some(stream) = self.inbound.pop_front() {
            return Poll::Ready(Ok(stream));
        }
        if let Poll::Ready(result) = self.poll_next_inbound(cx) {
            return Poll::Ready(result);
        }
        self.inbound_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        self.connection.poll_new_outbound(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.connection.poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        let stream = match this.poll_next_inbound(cx) {
            Poll::Ready(Ok(stream)) => stream,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        if this.inbound.len() >= MAX_BUFFERED_INBOUND_STREAMS {
            tracing::warn!(%stream, "inbound stream dropped: too many waiting");
            drop(stream);
        } else {
            this.inbound.push_back(stream);
            if let Some(waker) = this.inbound_waker.take() {
                waker.wake();
            }
        }
        // Come back at once: the connection may have more to do.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
