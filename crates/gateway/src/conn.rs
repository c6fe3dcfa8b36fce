//! Connections: how many the gateway holds, from whom, and for how long.
//!
//! axum serves whatever a [`Listener`] accepts; this one accepts at most
//! [`MAX_CONNECTIONS`] at once (more wait in the kernel's backlog), at most
//! [`MAX_PER_CLIENT`] from one client on a public gateway (more are closed
//! at once), and closes a connection that makes no progress either way
//! for [`IDLE_SECS`]: a slow or silent client (slowloris) holds a socket
//! for a bounded time, and a bounded number of them.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connections held at once (all clients).
pub const MAX_CONNECTIONS: usize = 4096;
/// Connections one client may hold at once on a public gateway.
pub const MAX_PER_CLIENT: usize = 32;
/// Seconds a connection may make no progress (nothing read, nothing
/// written) before it is closed.
pub const IDLE_SECS: u64 = 60;

/// Whom a request comes from, for limits: an IPv4 address, or an IPv6
/// /64 (one subscriber's whole block), with IPv4-mapped IPv6 taken as
/// IPv4.
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
    }
}

/// The address a connection came from (what handlers see).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Limited>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Limited>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Something held per client (connections, long downloads), counted.
#[derive(Default)]
pub(crate) struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One held thing of a client's: given back when dropped.
pub(crate) struct Counted {
    per_client: Arc<PerClient>,
    client: IpAddr,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.per_client.leave(self.client);
    }
}

impl PerClient {
    /// One more for `client`, unless it holds `max` already.
    pub(crate) fn take(self: &Arc<Self>, client: IpAddr, max: usize) -> Option<Counted> {
        self.enter(client, max).then(|| Counted {
            per_client: self.clone(),
            client,
        })
    }

    /// Counts one more for `client`, unless it has `max` already.
    fn enter(&self, client: IpAddr, max: usize) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        let n = m.entry(client).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, client: IpAddr) {
        if let Ok(mut m) = self.0.lock()
            && let Some(n) = m.get_mut(&client)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&client);
            }
        }
    }
}

/// The gateway's listener.
pub struct Limited {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    per_client: Arc<PerClient>,
    /// Per-client cap (public gateways); `None`: none (loopback).
    max_per_client: Option<usize>,
}

impl Limited {
    /// Limits on `inner`; per client only when `public`.
    pub fn new(inner: TcpListener, public: bool) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            per_client: Arc::default(),
            max_per_client: public.then_some(MAX_PER_CLIENT),
        }
    }
}

impl Listener for Limited {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        loop {
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                // Never closed; wait rather than spin if it were.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let (stream, addr) = match self.inner.accept().await {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little.
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let counted = match self.max_per_client {
                None => None,
                Some(max) => match self.per_client.take(client_of(addr.ip()), max) {
                    Some(c) => Some(c),
                    // Over its share: closed at once (dropped).
                    None => continue,
                },
            };
            let _ = stream.set_nodelay(true);
            return (
                Guarded {
                    stream,
                    idle: Box::pin(tokio::time::sleep(Duration::from_secs(IDLE_SECS))),
                    _slot: slot,
                    _counted: counted,
                },
                addr,
            );
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: it gives back its place when dropped, and
/// fails once it has made no progress for [`IDLE_SECS`].
pub struct Guarded {
    stream: TcpStream,
    idle: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
    /// Its place among its client's connections (public gateways).
    _counted: Option<Counted>,
}

impl Guarded {
    fn progressed(&mut self) {
        self.idle
            .as_mut()
            .reset(Instant::now() + Duration::from_secs(IDLE_SECS));
    }

    /// `Pending` while the connection may still wait; an error once it
    /// has waited too long.
    fn waited(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "no progress for too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => self.waited(cx).map(Err),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => self.waited(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => self.waited(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_addresses_or_ipv6_blocks() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(client_of(a), client_of(b));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_ne!(client_of(a), client_of(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_of(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_client_gets_its_share_and_gives_it_back() {
        let p = Arc::new(PerClient::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let one = p.take(ip, 2).unwrap();
        let _two = p.take(ip, 2).unwrap();
        assert!(p.take(ip, 2).is_none());
        drop(one);
        assert!(p.take(ip, 2).is_some());
    }
}
