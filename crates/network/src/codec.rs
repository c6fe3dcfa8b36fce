//! The data protocol's wire codec: one message per stream.
//!
//! A frame is a 4-byte big-endian length `n` followed by `n` bytes: the
//! message encoded with the versioned codec of `safe_protocol` (format
//! [`DATA_FORMAT`]). `n` is checked against [`MAX_MESSAGE_SIZE`] *before*
//! anything is read, so a peer cannot make us buffer more; bytes that do not
//! decode close the stream with an error.
//!
//! Chunk bodies are not copied out of the received frame: the frame is read
//! into one buffer and the message's bytes are slices of it.

use std::io;

use bytes::Bytes;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;
use safe_protocol::account::AccountFetch;
use safe_protocol::coin::pay::{
    ChunkPayment, MAX_PATH, MAX_PAYEES, MAX_QUOTE_NAMES, Manifest, PaymentError, SignedQuote,
};
use safe_protocol::coin::{CertifiedSpend, MAX_INPUTS, SignedSpend, SpendError, Vote};
use safe_protocol::messages::{
    DATA_FORMAT, MAX_AGE_PEERS, MAX_CERT_PEERS, MAX_MESSAGE_SIZE, MAX_RECEIPTS, MAX_RELAY_CERT,
    Receipt, RecordReceipt, Refusal, Request, Response,
};
use safe_protocol::mutable::RecordError;
use safe_protocol::{XorName, codec};
use serde::{Deserialize, Serialize};

/// Codec for [`Request`] / [`Response`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DataCodec;

/// Bytes of the length prefix.
const PREFIX: usize = 4;

/// [`Request`] borrowing its chunk bytes from the frame. Must list the same
/// variants and fields in the same order (checked by a test).
#[derive(Deserialize)]
enum RequestRef<'a> {
    PutChunk {
        #[serde(borrow)]
        bytes: &'a [u8],
        replicate: bool,
        payment: Option<ChunkPayment>,
    },
    GetChunk {
        name: XorName,
    },
    OfferChunks {
        names: Vec<XorName>,
    },
    PutRecord {
        #[serde(borrow)]
        write: &'a [u8],
        payment: Option<ChunkPayment>,
    },
    GetRecord {
        name: XorName,
    },
    OfferRecords {
        items: Vec<(XorName, [u8; 32])>,
    },
    GetAccount(AccountFetch),
    CacheChunk {
        #[serde(borrow)]
        bytes: &'a [u8],
    },
    PeerAges {
        peers: Vec<[u8; 32]>,
    },
    RelayCerts {
        peers: Vec<[u8; 32]>,
    },
    Spend {
        spend: SignedSpend,
        parents: Vec<CertifiedSpend>,
        input: u8,
        sequencer: Option<Vote>,
    },
    GetSpend {
        address: XorName,
    },
    Quote {
        names: Vec<XorName>,
    },
    Pay {
        payment: CertifiedSpend,
        manifest: Manifest,
        secret: [u8; 32],
    },
    Audit {
        name: XorName,
        nonce: [u8; 32],
    },
}

/// [`Response`] borrowing its chunk bytes from the frame.
#[derive(Deserialize)]
enum ResponseRef<'a> {
    Stored { receipts: Vec<Receipt> },
    Chunk(#[serde(borrow)] &'a [u8]),
    NotFound,
    OfferTaken { missing: Vec<XorName> },
    Refused(Refusal),
    RecordStored(RecordReceipt),
    Record(#[serde(borrow)] &'a [u8]),
    RecordRefused(RecordError),
    Cached,
    PeerAges(Vec<u64>),
    RelayCerts(#[serde(borrow)] Vec<&'a [u8]>),
    Voted(Vote),
    SpendRefused(SpendError),
    HeldSpend { spend: SignedSpend, vote: Vote },
    Quote { quote: SignedQuote, held: Vec<bool> },
    Paid { remaining: u32 },
    PaymentRefused(PaymentError),
    AuditProof([u8; 32]),
}

/// The postcard variant index of `Request::PutChunk` (checked by a test).
const PUT_CHUNK_VARIANT: u8 = 0;
/// The postcard variant index of `Response::Chunk` (checked by a test).
const CHUNK_VARIANT: u8 = 1;

/// The chunk or record bytes a request carries (written without copying).
fn request_payload(req: &Request) -> &[u8] {
    match req {
        Request::PutChunk { bytes, .. } | Request::CacheChunk { bytes } => bytes,
        Request::PutRecord { write, .. } => write,
        _ => &[],
    }
}

/// The chunk or record bytes a response carries (written without copying).
fn response_payload(res: &Response) -> &[u8] {
    match res {
        Response::Chunk(bytes) | Response::Record(bytes) => bytes,
        _ => &[],
    }
}

/// A message as one frame (length prefix included).
pub fn encode_frame<M: Serialize>(message: &M) -> io::Result<Vec<u8>> {
    Ok(frame_around(message, &[])?.0)
}

/// The frame of `message` with the bytes of `payload` (a slice the message
/// holds) left out: the frame is `head[..at]`, `payload`, `head[at..]`, or
/// just `head` if the message did not contain `payload`.
fn frame_around<M: Serialize>(message: &M, payload: &[u8]) -> io::Result<(Vec<u8>, Option<usize>)> {
    let invalid =
        |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    let mut start = Vec::with_capacity(PREFIX + 256);
    start.extend_from_slice(&[0; PREFIX]);
    let (mut head, at) =
        codec::encode_around(start, DATA_FORMAT, message, payload).map_err(|e| invalid(&e))?;
    let len = head.len() - PREFIX + at.map_or(0, |_| payload.len());
    if len > MAX_MESSAGE_SIZE {
        return Err(invalid(&"message over the protocol size limit"));
    }
    head[..PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok((head, at))
}

/// Chunk bytes in a received frame start at a multiple of this, so a node
/// can write them to disk with direct I/O without copying them first: the
/// block size that [`safe_direct`] writes in, declared there once.
pub const CHUNK_ALIGN: usize = safe_direct::ALIGN;

/// How many bytes of a frame body are looked at to place its chunk.
const PEEK: usize = 16;

/// Where the chunk bytes begin in a frame body whose first bytes are
/// `head`, if it is the message variant `variant` (whose first field is the
/// chunk): after the format byte, the variant index and the length varint.
/// Only placement depends on this; a wrong guess costs a copy, not data.
fn chunk_offset(head: &[u8], variant: u8) -> Option<usize> {
    if head.get(..2)? != [DATA_FORMAT, variant] {
        return None;
    }
    let varint = head.get(2..)?.iter().position(|b| b & 0x80 == 0)?;
    Some(2 + varint + 1)
}

/// Bytes of inbound request frames held at once, over every connection:
/// a frame's bytes are reserved from this budget before its buffer is
/// taken, and given back when the request is dropped. Peers announcing
/// large frames and sending them slowly (or never) wait for room instead
/// of growing the node's memory; the node's own requests' responses are
/// not counted (they are bounded by its requests in flight).
pub const INBOUND_BUDGET: usize = 128 << 20;
/// Seconds a frame's body may take to arrive once its length is read; a
/// peer that announces a frame and stalls loses the stream (and its
/// reservation) after this.
pub const FRAME_BODY_SECS: u64 = 30;

/// The budget, counted in KiB (every frame reserves at least 1 KiB).
static INBOUND: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(INBOUND_BUDGET >> 10);

/// Bytes of the inbound budget in use now (a metric: `safe_inbound_bytes`).
pub fn inbound_bytes() -> usize {
    ((INBOUND_BUDGET >> 10) - INBOUND.available_permits()) << 10
}

/// A reservation of inbound budget, held by the frame it was taken for.
struct Reserved(#[allow(dead_code)] Option<tokio::sync::SemaphorePermit<'static>>);

/// Reads one frame body. For the message variant `chunk_variant` the body
/// is placed so that its chunk bytes start on a [`CHUNK_ALIGN`] boundary.
/// With `budget`, the frame's bytes are reserved from [`INBOUND_BUDGET`]
/// first; every body must arrive within [`FRAME_BODY_SECS`].
async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    chunk_variant: u8,
    budget: bool,
) -> io::Result<Bytes> {
    read_frame_within(io, chunk_variant, budget, FRAME_BODY_SECS * 1000).await
}

/// [`read_frame`] with a deadline for the body of `deadline_ms`.
async fn read_frame_within<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    chunk_variant: u8,
    budget: bool,
    deadline_ms: u64,
) -> io::Result<Bytes> {
    let mut prefix = [0u8; PREFIX];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_MESSAGE_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the limit of {MAX_MESSAGE_SIZE}"),
        ));
    }
    let reserved = if budget {
        let kib = (len >> 10) as u32 + 1;
        match INBOUND.acquire_many(kib).await {
            Ok(p) => Reserved(Some(p)),
            Err(_) => return Err(io::Error::other("inbound budget closed")),
        }
    } else {
        Reserved(None)
    };
    match tokio::time::timeout(
        std::time::Duration::from_millis(deadline_ms),
        read_body(io, chunk_variant, len, reserved),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("a frame body did not arrive within {deadline_ms} ms"),
        )),
    }
}

/// The `len` bytes of a frame body (see [`read_frame`]).
async fn read_body<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    chunk_variant: u8,
    len: usize,
    reserved: Reserved,
) -> io::Result<Bytes> {
    let mut head = [0u8; PEEK];
    let peeked = len.min(PEEK);
    io.read_exact(&mut head[..peeked]).await?;
    let offset = chunk_offset(&head[..peeked], chunk_variant).unwrap_or(0);
    if len >= POOL_MIN {
        // A large frame: into a recycled buffer, which needs no zeroing
        // (every byte handed out is overwritten first).
        let mut buf = pool::take();
        let pad = buf.as_ptr().wrapping_add(offset).align_offset(CHUNK_ALIGN) % CHUNK_ALIGN;
        let frame = &mut buf[pad..pad + len];
        frame[..peeked].copy_from_slice(&head[..peeked]);
        let read = io.read_exact(&mut frame[peeked..]).await;
        return match read {
            Ok(()) => Ok(Bytes::from_owner(pool::Frame {
                buf,
                start: pad,
                len,
                _reserved: reserved,
            })),
            Err(e) => {
                pool::give(buf);
                Err(e)
            }
        };
    }
    let mut buf: Vec<u8> = Vec::with_capacity(len + CHUNK_ALIGN);
    // The capacity is reserved, so the buffer does not move from here on.
    let pad = buf.as_ptr().wrapping_add(offset).align_offset(CHUNK_ALIGN) % CHUNK_ALIGN;
    buf.resize(pad, 0);
    buf.extend_from_slice(&head[..peeked]);
    buf.resize(pad + len, 0);
    io.read_exact(&mut buf[pad + peeked..]).await?;
    Ok(Bytes::from_owner(Small {
        buf,
        start: pad,
        _reserved: reserved,
    }))
}

/// A small received frame and its reservation.
struct Small {
    buf: Vec<u8>,
    start: usize,
    _reserved: Reserved,
}

impl AsRef<[u8]> for Small {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Frames of at least this many bytes are read into recycled buffers.
const POOL_MIN: usize = 64 * 1024;

/// Recycled receive buffers for large frames. Zeroing a fresh MiB for every
/// chunk received was 3% of a node's CPU in an upload; a buffer comes back
/// here when the last [`Bytes`] referring to it is dropped.
mod pool {
    use std::sync::Mutex;

    use super::{CHUNK_ALIGN, MAX_MESSAGE_SIZE, Reserved};

    /// Length of every pooled buffer: the largest frame, plus room to
    /// align its chunk.
    const LEN: usize = MAX_MESSAGE_SIZE + CHUNK_ALIGN;
    /// Buffers kept at most (per process: 8 MiB); beyond, they are freed.
    pub(super) const MAX_POOLED: usize = 8;

    static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    /// A buffer of [`LEN`] initialised bytes (old contents, or zeros).
    pub(super) fn take() -> Vec<u8> {
        let recycled = POOL.lock().ok().and_then(|mut p| p.pop());
        recycled.unwrap_or_else(|| vec![0; LEN])
    }

    /// Returns a buffer to the pool (or frees it, if the pool is full).
    pub(super) fn give(buf: Vec<u8>) {
        if buf.len() != LEN {
            return;
        }
        if let Ok(mut pool) = POOL.lock()
            && pool.len() < MAX_POOLED
        {
            pool.push(buf);
        }
    }

    /// A received frame: `len` bytes of `buf` from `start`.
    pub(super) struct Frame {
        pub(super) buf: Vec<u8>,
        pub(super) start: usize,
        pub(super) len: usize,
        pub(super) _reserved: Reserved,
    }

    impl AsRef<[u8]> for Frame {
        fn as_ref(&self) -> &[u8] {
            &self.buf[self.start..self.start + self.len]
        }
    }

    impl Drop for Frame {
        fn drop(&mut self) {
            give(std::mem::take(&mut self.buf));
        }
    }
}

fn invalid_data(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Decodes a request frame body (without the prefix).
pub fn decode_request(frame: &Bytes) -> io::Result<Request> {
    let r: RequestRef<'_> =
        codec::decode(DATA_FORMAT, frame, MAX_MESSAGE_SIZE).map_err(invalid_data)?;
    Ok(match r {
        RequestRef::PutChunk {
            payment: Some(ref p),
            ..
        }
        | RequestRef::PutRecord {
            payment: Some(ref p),
            ..
        } if p.path.len() > MAX_PATH => {
            return Err(invalid_data(format!(
                "a payment path of {} hashes, over the limit of {MAX_PATH}",
                p.path.len()
            )));
        }
        RequestRef::PutChunk {
            bytes,
            replicate,
            payment,
        } => Request::PutChunk {
            bytes: frame.slice_ref(bytes),
            replicate,
            payment,
        },
        RequestRef::GetChunk { name } => Request::GetChunk { name },
        RequestRef::OfferChunks { names } => Request::OfferChunks { names },
        RequestRef::PutRecord { write, payment } => Request::PutRecord {
            write: frame.slice_ref(write),
            payment,
        },
        RequestRef::GetRecord { name } => Request::GetRecord { name },
        RequestRef::OfferRecords { items } => Request::OfferRecords { items },
        RequestRef::GetAccount(f) => Request::GetAccount(f),
        RequestRef::CacheChunk { bytes } => Request::CacheChunk {
            bytes: frame.slice_ref(bytes),
        },
        RequestRef::PeerAges { peers } if peers.len() > MAX_AGE_PEERS => {
            return Err(invalid_data(format!(
                "ages of {} peers asked, over the limit of {MAX_AGE_PEERS}",
                peers.len()
            )));
        }
        RequestRef::PeerAges { peers } => Request::PeerAges { peers },
        RequestRef::RelayCerts { peers } if peers.len() > MAX_CERT_PEERS => {
            return Err(invalid_data(format!(
                "certificates of {} peers asked, over the limit of {MAX_CERT_PEERS}",
                peers.len()
            )));
        }
        RequestRef::RelayCerts { peers } => Request::RelayCerts { peers },
        RequestRef::Spend { parents, .. } if parents.len() > MAX_INPUTS => {
            return Err(invalid_data(format!(
                "{} parents, over the limit of {MAX_INPUTS}",
                parents.len()
            )));
        }
        RequestRef::Spend {
            spend,
            parents,
            input,
            sequencer,
        } => Request::Spend {
            spend,
            parents,
            input,
            sequencer,
        },
        RequestRef::GetSpend { address } => Request::GetSpend { address },
        RequestRef::Quote { names } if names.len() > MAX_QUOTE_NAMES => {
            return Err(invalid_data(format!(
                "a quote for {} names, over the limit of {MAX_QUOTE_NAMES}",
                names.len()
            )));
        }
        RequestRef::Quote { names } => Request::Quote { names },
        RequestRef::Pay { ref manifest, .. } if manifest.entries.len() > MAX_PAYEES => {
            return Err(invalid_data(format!(
                "{} payees, over the limit of {MAX_PAYEES}",
                manifest.entries.len()
            )));
        }
        RequestRef::Pay {
            payment,
            manifest,
            secret,
        } => Request::Pay {
            payment,
            manifest,
            secret,
        },
        RequestRef::Audit { name, nonce } => Request::Audit { name, nonce },
    })
}

/// Decodes a response frame body (without the prefix).
pub fn decode_response(frame: &Bytes) -> io::Result<Response> {
    let r: ResponseRef<'_> =
        codec::decode(DATA_FORMAT, frame, MAX_MESSAGE_SIZE).map_err(invalid_data)?;
    Ok(match r {
        ResponseRef::Stored { receipts } if receipts.len() > MAX_RECEIPTS => {
            return Err(invalid_data(format!(
                "{} receipts, over the limit of {MAX_RECEIPTS}",
                receipts.len()
            )));
        }
        ResponseRef::Stored { receipts } => Response::Stored { receipts },
        ResponseRef::Chunk(bytes) => Response::Chunk(frame.slice_ref(bytes)),
        ResponseRef::NotFound => Response::NotFound,
        ResponseRef::OfferTaken { missing } => Response::OfferTaken { missing },
        ResponseRef::Refused(r) => Response::Refused(r),
        ResponseRef::RecordStored(r) => Response::RecordStored(r),
        ResponseRef::Record(bytes) => Response::Record(frame.slice_ref(bytes)),
        ResponseRef::RecordRefused(e) => Response::RecordRefused(e),
        ResponseRef::Cached => Response::Cached,
        ResponseRef::PeerAges(ages) if ages.len() > MAX_AGE_PEERS => {
            return Err(invalid_data(format!(
                "{} ages, over the limit of {MAX_AGE_PEERS}",
                ages.len()
            )));
        }
        ResponseRef::PeerAges(ages) => Response::PeerAges(ages),
        ResponseRef::RelayCerts(certs)
            if certs.len() > MAX_CERT_PEERS || certs.iter().any(|c| c.len() > MAX_RELAY_CERT) =>
        {
            return Err(invalid_data(format!(
                "{} relay certificates, over the limit of {MAX_CERT_PEERS} or of {MAX_RELAY_CERT} bytes each",
                certs.len()
            )));
        }
        ResponseRef::RelayCerts(certs) => {
            Response::RelayCerts(certs.into_iter().map(|c| frame.slice_ref(c)).collect())
        }
        ResponseRef::Voted(v) => Response::Voted(v),
        ResponseRef::SpendRefused(e) => Response::SpendRefused(e),
        ResponseRef::HeldSpend { spend, vote } => Response::HeldSpend { spend, vote },
        ResponseRef::Quote { held, .. } if held.len() > MAX_QUOTE_NAMES => {
            return Err(invalid_data(format!(
                "a quote for {} names, over the limit of {MAX_QUOTE_NAMES}",
                held.len()
            )));
        }
        ResponseRef::Quote { quote, held } => Response::Quote { quote, held },
        ResponseRef::Paid { remaining } => Response::Paid { remaining },
        ResponseRef::PaymentRefused(e) => Response::PaymentRefused(e),
        ResponseRef::AuditProof(p) => Response::AuditProof(p),
    })
}

/// Writes `message` as one frame. The bytes of `payload` (a chunk the
/// message holds) are written straight from where they are, not copied
/// into the frame first.
async fn write_frame<T, M>(io: &mut T, message: &M, payload: &[u8]) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: Serialize,
{
    let (head, at) = frame_around(message, payload)?;
    // The payload is found by address; were serde ever to copy it first,
    // the frame would still be right, only slower.
    debug_assert!(payload.is_empty() || at.is_some(), "payload not found");
    match at {
        Some(at) => {
            io.write_all(&head[..at]).await?;
            io.write_all(payload).await?;
            io.write_all(&head[at..]).await?;
        }
        None => io.write_all(&head).await?,
    }
    io.close().await
}

impl Codec for DataCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode_request(&read_frame(io, PUT_CHUNK_VARIANT, true).await?)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode_response(&read_frame(io, CHUNK_VARIANT, false).await?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, request_payload(&req)).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, response_payload(&res)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `write_frame` sends, payload written separately or not.
    fn written<M: Serialize>(m: &M, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(write_frame(&mut out, m, payload))
            .unwrap();
        out
    }

    fn roundtrip_request(r: Request) {
        let frame = encode_frame(&r).unwrap();
        assert_eq!(written(&r, request_payload(&r)), frame);
        let body = Bytes::from(frame[PREFIX..].to_vec());
        assert_eq!(decode_request(&body).unwrap(), r);
    }

    fn roundtrip_response(r: Response) {
        let frame = encode_frame(&r).unwrap();
        assert_eq!(written(&r, response_payload(&r)), frame);
        let body = Bytes::from(frame[PREFIX..].to_vec());
        assert_eq!(decode_response(&body).unwrap(), r);
    }

    #[test]
    fn borrowed_mirrors_match_the_messages() {
        roundtrip_request(Request::PutChunk {
            bytes: Bytes::from_static(b"chunk"),
            replicate: true,
            payment: None,
        });
        roundtrip_request(Request::PutChunk {
            bytes: Bytes::from_static(b"paid chunk"),
            replicate: false,
            payment: Some(ChunkPayment {
                spend: safe_protocol::coin::SpendHash([1; 32]),
                index: 3,
                path: vec![[2; 32]; 4],
            }),
        });
        roundtrip_request(Request::GetChunk {
            name: XorName([4; 32]),
        });
        roundtrip_request(Request::OfferChunks {
            names: vec![XorName([1; 32]), XorName([2; 32])],
        });
        roundtrip_response(Response::Stored {
            receipts: vec![Receipt {
                name: XorName([1; 32]),
                node_key: [2; 32],
                signature: vec![3; 64],
            }],
        });
        roundtrip_response(Response::Chunk(Bytes::from_static(b"body")));
        roundtrip_response(Response::NotFound);
        roundtrip_response(Response::OfferTaken {
            missing: vec![XorName([9; 32])],
        });
        roundtrip_response(Response::Refused(Refusal::Full));
        roundtrip_request(Request::PutRecord {
            write: Bytes::from_static(b"write"),
            payment: None,
        });
        roundtrip_request(Request::GetRecord {
            name: XorName([5; 32]),
        });
        roundtrip_request(Request::OfferRecords {
            items: vec![(XorName([6; 32]), [7; 32])],
        });
        roundtrip_response(Response::RecordStored(RecordReceipt {
            name: XorName([1; 32]),
            proof: [2; 32],
            node_key: [3; 32],
            signature: vec![4; 64],
        }));
        roundtrip_response(Response::Record(Bytes::from_static(b"record")));
        roundtrip_response(Response::RecordRefused(RecordError::WrongVersion {
            current: 3,
            given: 1,
        }));
        roundtrip_request(Request::CacheChunk {
            bytes: Bytes::from_static(b"popular"),
        });
        roundtrip_response(Response::Cached);
        roundtrip_request(Request::PeerAges {
            peers: vec![[3; 32]; 5],
        });
        roundtrip_response(Response::PeerAges(vec![0, 1, u64::MAX]));
        roundtrip_request(Request::RelayCerts {
            peers: vec![[4; 32]; 3],
        });
        roundtrip_response(Response::RelayCerts(vec![
            Bytes::from_static(b"cert"),
            Bytes::new(),
        ]));
        let spend = safe_protocol::coin::SignedSpend {
            spend: safe_protocol::coin::Spend {
                genesis: [1; 32],
                inputs: vec![safe_protocol::coin::Input {
                    parent: safe_protocol::coin::Parent::Genesis,
                    index: 0,
                    amount: 5,
                    owner: [2; 32],
                }],
                outputs: vec![],
                memo: vec![3],
            },
            sigs: vec![vec![4; 64]],
        };
        let vote = Vote {
            node: [5; 32],
            sig: vec![6; 64],
        };
        roundtrip_request(Request::Spend {
            spend: spend.clone(),
            parents: vec![CertifiedSpend {
                spend: spend.clone(),
                certs: vec![safe_protocol::coin::Certificate {
                    votes: vec![vote.clone()],
                }],
            }],
            input: 0,
            sequencer: Some(vote.clone()),
        });
        roundtrip_request(Request::GetSpend {
            address: XorName([7; 32]),
        });
        roundtrip_response(Response::Voted(vote.clone()));
        roundtrip_response(Response::SpendRefused(SpendError::AlreadySpent(
            safe_protocol::coin::SpendHash([8; 32]),
        )));
        let reward = safe_protocol::coin::WalletKeys::from_secret(&[9; 32]).address();
        let quote = SignedQuote {
            quote: safe_protocol::coin::pay::Quote {
                format: 1,
                genesis: [1; 32],
                node: [2; 32],
                reward,
                price: 1000,
                max_chunks: 9,
                expires: 5,
            },
            sig: vec![3; 64],
        };
        roundtrip_request(Request::Quote {
            names: vec![XorName([6; 32])],
        });
        roundtrip_request(Request::Pay {
            payment: CertifiedSpend {
                spend: spend.clone(),
                certs: vec![],
            },
            manifest: Manifest {
                format: 1,
                batch: [4; 32],
                chunks: 9,
                entries: vec![safe_protocol::coin::pay::Entry {
                    quote: quote.clone(),
                    count: 9,
                }],
            },
            secret: [5; 32],
        });
        roundtrip_response(Response::Quote {
            quote,
            held: vec![true, false],
        });
        roundtrip_response(Response::Paid { remaining: 7 });
        roundtrip_response(Response::PaymentRefused(PaymentError::Exhausted));
        roundtrip_response(Response::HeldSpend { spend, vote });
        roundtrip_request(Request::Audit {
            name: XorName([6; 32]),
            nonce: [7; 32],
        });
        roundtrip_response(Response::AuditProof([8; 32]));
        let frame = encode_frame(&Response::RelayCerts(vec![Bytes::from(vec![
            1u8;
            MAX_RELAY_CERT
                + 1
        ])]))
        .unwrap();
        assert!(decode_response(&Bytes::from(frame[PREFIX..].to_vec())).is_err());
        let frame = encode_frame(&Request::RelayCerts {
            peers: vec![[3; 32]; MAX_CERT_PEERS + 1],
        })
        .unwrap();
        assert!(decode_request(&Bytes::from(frame[PREFIX..].to_vec())).is_err());
        // Over the limit: refused when decoded.
        let frame = encode_frame(&Request::PeerAges {
            peers: vec![[3; 32]; MAX_AGE_PEERS + 1],
        })
        .unwrap();
        assert!(decode_request(&Bytes::from(frame[PREFIX..].to_vec())).is_err());
    }

    #[tokio::test]
    async fn recycled_buffers_hold_only_the_new_frame() {
        // A large frame, then a shorter one of other bytes into the same
        // (recycled) buffer, then a truncated one: each reads back exactly.
        let first = Bytes::from(vec![0xAAu8; 1 << 20]);
        let frame = encode_frame(&Response::Chunk(first.clone())).unwrap();
        let body = read_frame(&mut &frame[..], CHUNK_VARIANT, false)
            .await
            .unwrap();
        assert_eq!(decode_response(&body).unwrap(), Response::Chunk(first));
        drop(body);
        let second = Bytes::from((0..100_000).map(|i| i as u8).collect::<Vec<u8>>());
        let frame = encode_frame(&Response::Chunk(second.clone())).unwrap();
        let body = read_frame(&mut &frame[..], CHUNK_VARIANT, false)
            .await
            .unwrap();
        assert_eq!(body.len(), frame.len() - PREFIX, "no old bytes after it");
        match decode_response(&body).unwrap() {
            Response::Chunk(got) => {
                assert_eq!(got, second);
                assert_eq!(got.as_ptr().align_offset(CHUNK_ALIGN), 0);
            }
            other => panic!("decoded {other:?}"),
        }
        drop(body);
        let cut = &frame[..frame.len() - 10];
        assert!(
            read_frame(&mut &cut[..], CHUNK_VARIANT, false)
                .await
                .is_err()
        );
        // Many frames alive at once: more than the pool keeps.
        let frames: Vec<Bytes> = futures::future::join_all((0..pool::MAX_POOLED + 3).map(|i| {
            let frame = encode_frame(&Response::Chunk(Bytes::from(vec![i as u8; 70_000]))).unwrap();
            async move {
                read_frame(&mut &frame[..], CHUNK_VARIANT, false)
                    .await
                    .unwrap()
            }
        }))
        .await;
        for (i, body) in frames.iter().enumerate() {
            assert_eq!(
                decode_response(body).unwrap(),
                Response::Chunk(Bytes::from(vec![i as u8; 70_000]))
            );
        }
    }

    #[tokio::test]
    async fn received_chunks_start_block_aligned() {
        for len in [1usize, 100, 127, 128, 4096, 16_383, 16_384, 1 << 20] {
            let bytes = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>());
            let request = Request::PutChunk {
                bytes: bytes.clone(),
                replicate: true,
                payment: None,
            };
            let frame = encode_frame(&request).unwrap();
            let body = read_frame(&mut &frame[..], PUT_CHUNK_VARIANT, true)
                .await
                .unwrap();
            match decode_request(&body).unwrap() {
                Request::PutChunk { bytes: got, .. } => {
                    assert_eq!(got, bytes);
                    assert_eq!(
                        got.as_ptr().align_offset(CHUNK_ALIGN),
                        0,
                        "request, {len} bytes"
                    );
                }
                other => panic!("decoded {other:?}"),
            }
            let response = Response::Chunk(bytes.clone());
            let frame = encode_frame(&response).unwrap();
            let body = read_frame(&mut &frame[..], CHUNK_VARIANT, false)
                .await
                .unwrap();
            match decode_response(&body).unwrap() {
                Response::Chunk(got) => {
                    assert_eq!(got, bytes);
                    assert_eq!(
                        got.as_ptr().align_offset(CHUNK_ALIGN),
                        0,
                        "response, {len} bytes"
                    );
                }
                other => panic!("decoded {other:?}"),
            }
        }
        // Other messages read as before.
        let request = Request::GetChunk {
            name: XorName([3; 32]),
        };
        let frame = encode_frame(&request).unwrap();
        let body = read_frame(&mut &frame[..], PUT_CHUNK_VARIANT, true)
            .await
            .unwrap();
        assert_eq!(decode_request(&body).unwrap(), request);
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_before_reading() {
        let mut prefix: &[u8] = &((MAX_MESSAGE_SIZE as u32) + 1).to_be_bytes();
        let err = read_frame(&mut prefix, 0, true).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut short: &[u8] = &[0, 0, 0, 9, 1, 2];
        assert!(
            read_frame(&mut short, 0, true).await.is_err(),
            "truncated frame"
        );
    }

    /// A peer that sends some bytes and then nothing, ever.
    struct Stall(Vec<u8>);

    impl AsyncRead for Stall {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            if self.0.is_empty() {
                return std::task::Poll::Pending;
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            std::task::Poll::Ready(Ok(n))
        }
    }

    #[tokio::test]
    async fn a_stalled_frame_times_out() {
        // 1 MiB announced, 100 bytes sent, then silence.
        let mut sent = (1u32 << 20).to_be_bytes().to_vec();
        sent.extend_from_slice(&[0u8; 100]);
        let err = read_frame_within(&mut Stall(sent), PUT_CHUNK_VARIANT, true, 100)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn inbound_frames_held_at_once_stay_within_the_budget() {
        let request = Request::PutChunk {
            bytes: Bytes::from(vec![7u8; 1 << 20]),
            replicate: false,
            payment: None,
        };
        let frame = encode_frame(&request).unwrap();
        let wait = std::time::Duration::from_millis(300);
        let mut held = Vec::new();
        while let Ok(body) =
            tokio::time::timeout(wait, read_frame(&mut &frame[..], PUT_CHUNK_VARIANT, true)).await
        {
            held.push(body.unwrap());
            assert!(
                held.len() <= INBOUND_BUDGET >> 20,
                "{} frames held",
                held.len()
            );
        }
        // Nearly the whole budget was usable (other tests may hold a little).
        assert!(
            held.len() >= (INBOUND_BUDGET >> 20) - 8,
            "{} frames held",
            held.len()
        );
        assert!(inbound_bytes() >= held.len() << 20);
        // One given back: the next is read.
        held.pop();
        let next = tokio::time::timeout(wait, read_frame(&mut &frame[..], PUT_CHUNK_VARIANT, true))
            .await
            .expect("room again")
            .unwrap();
        assert_eq!(decode_request(&next).unwrap(), request);
        // Responses to our own requests are not held back.
        let response = encode_frame(&Response::Chunk(Bytes::from(vec![1u8; 1 << 20]))).unwrap();
        tokio::time::timeout(wait, read_frame(&mut &response[..], CHUNK_VARIANT, false))
            .await
            .expect("responses are not budgeted")
            .unwrap();
    }
}
