//! The data protocol's wire codec: one message per stream, encoded with the
//! versioned codec of `safe_protocol`, at most [`MAX_MESSAGE_SIZE`] bytes.
//! A peer that sends more, or bytes that do not decode, gets its stream
//! closed with an error; nothing is buffered past the limit.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;
use safe_protocol::codec;
use safe_protocol::messages::{DATA_FORMAT, MAX_MESSAGE_SIZE, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Codec for [`Request`] / [`Response`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DataCodec;

async fn read_message<T, M>(io: &mut T) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: DeserializeOwned,
{
    let mut buf = Vec::new();
    io.take(MAX_MESSAGE_SIZE as u64 + 1)
        .read_to_end(&mut buf)
        .await?;
    codec::decode(DATA_FORMAT, &buf, MAX_MESSAGE_SIZE)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_message<T, M>(io: &mut T, message: &M) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: Serialize,
{
    let bytes = codec::encode(DATA_FORMAT, message)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "message over the protocol size limit",
        ));
    }
    io.write_all(&bytes).await?;
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
        read_message(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io).await
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
        write_message(io, &req).await
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
        write_message(io, &res).await
    }
}
