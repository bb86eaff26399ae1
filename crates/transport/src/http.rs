//! The HTTP side of the WebSocket port: `GET /health` and `GET /metrics` are answered there;
//! every other request goes on to the WebSocket upgrade.
//!
//! The request head is parsed with `httparse` (the parser under hyper and tungstenite) and
//! replayed to tungstenite when it is an upgrade.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::HandshakeError;

/// Largest request head read before the request is refused (with the connection closed).
const MAX_HEAD: usize = 8 * 1024;

/// What the HTTP endpoints report; the broker implements it.
pub trait HttpStatus: Send + Sync + std::fmt::Debug {
    /// `GET /health`: 200 when true, 503 when false.
    fn healthy(&self) -> bool;
    /// `GET /metrics`: Prometheus text exposition format (version 0.0.4).
    fn metrics(&self) -> String;
}

/// A request head read from a connection, with any bytes after it.
pub(crate) struct Head {
    bytes: Vec<u8>,
    endpoint: Option<Endpoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Health,
    Metrics,
}

/// Reads one request head. Requests that are not a complete, parseable HTTP/1.x head within
/// [`MAX_HEAD`] are left to tungstenite, which refuses them.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Head, HandshakeError> {
    let mut bytes = Vec::with_capacity(1024);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&bytes) {
            Ok(httparse::Status::Complete(_)) => {
                let endpoint = endpoint(&request);
                return Ok(Head { bytes, endpoint });
            }
            Ok(httparse::Status::Partial) if bytes.len() < MAX_HEAD => {}
            // Malformed or too large: tungstenite gives the peer its error.
            _ => {
                return Ok(Head {
                    bytes,
                    endpoint: None,
                });
            }
        }
        let mut chunk = [0u8; 1024];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(HandshakeError::Http)?;
        if n == 0 {
            return Err(HandshakeError::Http(io::ErrorKind::UnexpectedEof.into()));
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// `GET /health` or `GET /metrics` without an upgrade; anything else is for the WebSocket side.
fn endpoint(request: &httparse::Request<'_, '_>) -> Option<Endpoint> {
    if request.method != Some("GET") {
        return None;
    }
    let upgrade = request
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("upgrade"));
    if upgrade {
        return None;
    }
    let path = request.path?.split('?').next()?;
    match path {
        "/health" => Some(Endpoint::Health),
        "/metrics" => Some(Endpoint::Metrics),
        _ => None,
    }
}

impl Head {
    /// Answers the request if it is for an endpoint; `false` if it is for the WebSocket side.
    pub(crate) async fn answer<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        status: Option<&dyn HttpStatus>,
    ) -> Result<bool, HandshakeError> {
        let (Some(endpoint), Some(status)) = (self.endpoint, status) else {
            return Ok(false);
        };
        let (code, content_type, body) = match endpoint {
            Endpoint::Health if status.healthy() => ("200 OK", "text/plain", "ok\n".to_owned()),
            Endpoint::Health => (
                "503 Service Unavailable",
                "text/plain",
                "unavailable\n".to_owned(),
            ),
            Endpoint::Metrics => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                status.metrics(),
            ),
        };
        let response = format!(
            "HTTP/1.1 {code}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(response.as_bytes())
            .await
            .map_err(HandshakeError::Http)?;
        stream.flush().await.map_err(HandshakeError::Http)?;
        let _ = stream.shutdown().await;
        Ok(true)
    }

    /// The stream with the bytes read so far put back in front.
    pub(crate) fn replay<S>(self, stream: S) -> Replay<S> {
        Replay {
            prefix: self.bytes,
            offset: 0,
            stream,
        }
    }
}

/// A stream whose first reads return bytes already read from it.
pub(crate) struct Replay<S> {
    prefix: Vec<u8>,
    offset: usize,
    stream: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = this.prefix.get(this.offset..).unwrap_or_default();
        if !rest.is_empty() {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.offset += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
