//! The one byte stream every transport ends in, and what is known about its peer.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::http::Replay;
use crate::ws::WsStream;

/// What a connection arrived over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Plain MQTT over TCP.
    Tcp,
    /// MQTT over TLS.
    Tls,
    /// MQTT over WebSocket.
    WebSocket,
    /// MQTT over WebSocket over TLS.
    SecureWebSocket,
}

impl fmt::Display for TransportKind {
    /// `TCP`, `TLS`, `WS`, `WSS`, as the start-up banner names them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
            TransportKind::WebSocket => "WS",
            TransportKind::SecureWebSocket => "WSS",
        })
    }
}

/// Facts about the peer of a [`Stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The remote address.
    pub remote: SocketAddr,
    /// What the connection arrived over.
    pub kind: TransportKind,
    /// The client's certificate chain (end entity first), if it presented one over TLS.
    pub client_certificates: Vec<CertificateDer<'static>>,
}

/// A connection after its handshakes: MQTT bytes in and out, whatever the transport.
///
/// Writes to TLS and WebSocket streams are buffered: callers flush after each batch of packets.
pub struct Stream(Inner);

enum Inner {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Ws(Box<WsStream<Replay<TcpStream>>>),
    Wss(Box<WsStream<Replay<TlsStream<TcpStream>>>>),
}

impl Stream {
    pub(crate) fn tcp(s: TcpStream) -> Self {
        Stream(Inner::Tcp(s))
    }
    pub(crate) fn tls(s: TlsStream<TcpStream>) -> Self {
        Stream(Inner::Tls(Box::new(s)))
    }
    pub(crate) fn ws(s: WsStream<Replay<TcpStream>>) -> Self {
        Stream(Inner::Ws(Box::new(s)))
    }
    pub(crate) fn wss(s: WsStream<Replay<TlsStream<TcpStream>>>) -> Self {
        Stream(Inner::Wss(Box::new(s)))
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Inner::Tcp(_) => TransportKind::Tcp,
            Inner::Tls(_) => TransportKind::Tls,
            Inner::Ws(_) => TransportKind::WebSocket,
            Inner::Wss(_) => TransportKind::SecureWebSocket,
        };
        f.debug_tuple("Stream").field(&kind).finish()
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut $self.get_mut().0 {
            Inner::Tcp($s) => $e,
            Inner::Tls($s) => $e,
            Inner::Ws($s) => $e,
            Inner::Wss($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        dispatch!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        dispatch!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
