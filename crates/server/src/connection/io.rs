//! The connection's socket: reading what the client sent without holding a buffer while idle,
//! writing and flushing the write buffer (and judging a client that stopped taking data), and
//! closing politely.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tracing::info;

use super::Connection;

/// Read buffers larger than this are released when they empty.
const READ_CHUNK: usize = 16 * 1024;
/// How long closing a connection may wait for the peer.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// What a closing connection reads (and discards) from its client at most.
const CLOSE_DRAIN: usize = 256 * 1024;

/// Closes politely (TCP FIN, TLS close_notify, WebSocket Close frame), then reads and discards
/// what the client still sends until it closes too, for a second and 256 KiB at most: closing a
/// socket with unread input makes the kernel answer with a reset, and a client still writing
/// (more PUBLISHes, PUBRELs) would get that instead of the DISCONNECT or CONNACK that says why.
pub(super) async fn close<S>(stream: &mut S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + CLOSE_GRACE;
    let _ = tokio::time::timeout_at(deadline, stream.shutdown()).await;
    let _ = tokio::time::timeout_at(deadline, async {
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < CLOSE_DRAIN {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Reads what the client sent into `rbuf`. With bytes of a partial packet already there it
/// reads straight into `rbuf`; with nothing there it reads into a small buffer on the stack
/// instead, so an idle connection holds no read buffer, then takes whatever else is ready
/// without waiting. Returns the bytes read; 0 is end of stream. Keeps nothing between polls
/// (the caller's task stays small).
pub(super) fn poll_read_more<S>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>>
where
    S: AsyncRead + Unpin,
{
    if !rbuf.is_empty() {
        rbuf.reserve(READ_CHUNK);
        return std::pin::pin!(stream.read_buf(rbuf)).poll(cx);
    }
    let mut first = [0u8; 128];
    let mut filled = ReadBuf::new(&mut first);
    ready!(Pin::new(&mut *stream).poll_read(cx, &mut filled))?;
    let n = filled.filled().len();
    if n == 0 {
        return Poll::Ready(Ok(0));
    }
    if n < first.len() {
        // A small packet: an exact allocation, since what is decoded from it (a retained
        // message, a subscription) may keep the allocation alive for long.
        rbuf.extend_from_slice(&first[..n]);
        return Poll::Ready(Ok(n));
    }
    rbuf.reserve(READ_CHUNK);
    rbuf.extend_from_slice(&first[..n]);
    // The small buffer filled up: more is probably waiting. Take it if it is there; the bytes
    // already read are handled first, and the next read reports an error.
    let more = match std::pin::pin!(stream.read_buf(&mut *rbuf)).poll(cx) {
        Poll::Ready(Ok(more)) => more,
        Poll::Ready(Err(_)) | Poll::Pending => 0,
    };
    Poll::Ready(Ok(n + more))
}

impl Connection {
    /// Writes out the write buffer, flushes the stream and releases the buffer: an idle
    /// connection holds no write buffer.
    pub(super) async fn flush<S>(&mut self, stream: &mut S) -> std::io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        // Polled directly rather than through `write_all`, whose future would be stored in
        // every connection's task.
        std::future::poll_fn(|cx| self.poll_flush(stream, cx)).await
    }

    pub(super) fn poll_flush<S>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>>
    where
        S: AsyncWrite + Unpin,
    {
        while !self.wbuf.is_empty() {
            let n = match Pin::new(&mut *stream).poll_write(cx, &self.wbuf) {
                Poll::Ready(written) => written?,
                Poll::Pending => return self.write_stalled(cx),
            };
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.shared
                .stats()
                .bytes_sent
                .fetch_add(n as u64, Ordering::Relaxed);
            self.wbuf.advance(n);
            self.unflushed = true;
            self.wrote_at_ms = self.shared.clock_ms();
        }
        if self.unflushed {
            match Pin::new(&mut *stream).poll_flush(cx) {
                Poll::Ready(flushed) => flushed?,
                Poll::Pending => return self.write_stalled(cx),
            }
            self.unflushed = false;
        }
        // Released, reserved or not: an idle connection holds no write buffer. (After `advance`
        // an empty buffer reports no capacity but still owns its allocation.)
        self.wbuf = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    /// The client takes no more bytes. While waiting for it, this connection reads nothing, so
    /// keep alive cannot be judged the usual way; a client that has also taken nothing for its
    /// whole keep-alive period while its deadline passed is gone (a vanished host resets
    /// nothing, and the kernel would keep retrying for many minutes): the write fails. One that
    /// takes data, however slowly, is judged once it can be read again.
    fn write_stalled(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // A connection that was taken over leaves the session's wake-up and keep-alive mark to
        // its successor; the socket wakes it when its client takes data (and its last flush is
        // bounded, see `Connection::run`).
        if self.session.lock().generation() != self.generation {
            return Poll::Pending;
        }
        // The sweeper's mark reaches this wait through the session's wake-up.
        self.session.wake.register(cx.waker());
        let now = self.shared.clock_ms();
        // The mark is taken either way: while the deadline stays passed the sweeper marks it
        // again, and wakes this wait, every sweep.
        let overdue = self.session.keep_alive.take_overdue(self.generation, now);
        if overdue && now.saturating_sub(self.wrote_at_ms) >= self.keep_alive_ms {
            info!("client neither sends nor takes data past its keep alive; closing");
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped taking data",
            )));
        }
        Poll::Pending
    }
}
