//! Listeners: accept TCP connections quickly, and run each connection's handshakes later, in
//! its own task, under a timeout.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::error::HandshakeError;
use crate::http::{HttpAccess, HttpStatus, Outcome, Replay, read_head};
use crate::limit::{HandshakeLimit, Slot};
use crate::stream::{PeerInfo, Stream, TransportKind};
use crate::tls::ServerTls;
use crate::ws::{WsStream, select_subprotocol};

/// What a listener speaks.
#[derive(Debug, Clone)]
pub enum Protocol {
    /// Plain MQTT.
    Tcp,
    /// MQTT over TLS.
    Tls(ServerTls),
    /// MQTT over WebSocket.
    WebSocket,
    /// MQTT over WebSocket over TLS.
    SecureWebSocket(ServerTls),
}

impl Protocol {
    /// The kind of the connections this protocol produces.
    pub fn kind(&self) -> TransportKind {
        match self {
            Protocol::Tcp => TransportKind::Tcp,
            Protocol::Tls(_) => TransportKind::Tls,
            Protocol::WebSocket => TransportKind::WebSocket,
            Protocol::SecureWebSocket(_) => TransportKind::SecureWebSocket,
        }
    }
}

/// A bound TCP listener and the protocol it speaks.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    protocol: Protocol,
    handshake_timeout: Duration,
    limit: Option<HandshakeLimit>,
    http: Option<Arc<dyn HttpStatus>>,
    access: HttpAccess,
    max_message_size: usize,
}

/// The default largest WebSocket message or frame accepted: 1 MiB plus room for framing,
/// matching the broker's default maximum packet size.
pub const DEFAULT_MAX_WEBSOCKET_MESSAGE: usize = (1 << 20) + 64;

impl Listener {
    /// Serves `protocol` on `tcp`; TLS and WebSocket handshakes must finish within
    /// `handshake_timeout`.
    pub fn new(tcp: TcpListener, protocol: Protocol, handshake_timeout: Duration) -> Self {
        Self {
            tcp,
            protocol,
            handshake_timeout,
            limit: None,
            http: None,
            access: HttpAccess::default(),
            max_message_size: DEFAULT_MAX_WEBSOCKET_MESSAGE,
        }
    }

    /// The largest WebSocket message (and frame) accepted; a bigger one closes the connection
    /// before it is buffered. Set it to the broker's maximum packet size: an MQTT packet may span
    /// frames, but no message needs to be larger than the largest packet.
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Answers `GET /health` and `GET /metrics` from `status` (WebSocket listeners only; other
    /// requests go on to the upgrade).
    pub fn with_http_status(mut self, status: Arc<dyn HttpStatus>) -> Self {
        self.http = Some(status);
        self
    }

    /// `GET /metrics` needs `Authorization: Bearer <token>` (compared in constant time); without
    /// it, or with another token, the answer is 401. `/health` stays open.
    pub fn with_metrics_token(mut self, token: &str) -> Self {
        self.access.metrics_token = Some(Arc::from(token));
        self
    }

    /// A WebSocket upgrade whose `Origin` header is not one of `origins` (compared without
    /// regard to ASCII case) is refused with 403. Requests without an `Origin` (clients that are
    /// not browsers) are let through: the header guards against other web pages, not against
    /// programs, which can send any value.
    pub fn with_allowed_origins(mut self, origins: Vec<String>) -> Self {
        self.access.origins = Some(origins.into());
        self
    }

    /// Serves `GET /health` and `GET /metrics` only (WebSocket listeners): every other request,
    /// WebSocket upgrades included, gets 404. For an HTTP port kept for the endpoints while MQTT
    /// over WebSocket is off.
    pub fn status_only(mut self) -> Self {
        self.access.status_only = true;
        self
    }

    /// Caps the concurrent TLS and WebSocket handshakes of this listener (and of every other
    /// listener given the same `limit`). Plain TCP has no handshake and is not capped.
    pub fn with_handshake_limit(mut self, limit: HandshakeLimit) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The kind of the connections this listener produces.
    pub fn kind(&self) -> TransportKind {
        self.protocol.kind()
    }

    /// Waits for the next TCP connection; no handshake happens here. Connections beyond the
    /// handshake limit are closed here and not returned.
    pub async fn accept(&self) -> io::Result<Accepted> {
        loop {
            let (tcp, remote) = self.tcp.accept().await?;
            let slot = match (&self.limit, &self.protocol) {
                (None, _) | (_, Protocol::Tcp) => None,
                (Some(limit), _) => match limit.try_take(remote.ip()) {
                    Ok(slot) => Some(slot),
                    Err(refusal) => {
                        // A flood, most likely: debug only, so it cannot flood the log too.
                        tracing::debug!(peer = %remote, "{refusal}; connection closed");
                        continue;
                    }
                },
            };
            // MQTT packets are small and latency matters more than segment count.
            let _ = tcp.set_nodelay(true);
            return Ok(Accepted {
                tcp,
                remote,
                protocol: self.protocol.clone(),
                handshake_timeout: self.handshake_timeout,
                slot,
                http: self.http.clone(),
                access: self.access.clone(),
                max_message_size: self.max_message_size,
            });
        }
    }
}

/// An accepted TCP connection whose handshakes have not run yet.
#[derive(Debug)]
pub struct Accepted {
    tcp: TcpStream,
    remote: SocketAddr,
    protocol: Protocol,
    handshake_timeout: Duration,
    /// Held until the handshakes end.
    slot: Option<Slot>,
    http: Option<Arc<dyn HttpStatus>>,
    access: HttpAccess,
    max_message_size: usize,
}

impl Accepted {
    /// The remote address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The kind of connection this becomes.
    pub fn kind(&self) -> TransportKind {
        self.protocol.kind()
    }

    /// Runs the TLS and WebSocket handshakes, at most the listener's handshake timeout. `None`:
    /// the connection carried an HTTP request that has been answered (`/health`, `/metrics`).
    pub async fn handshake(self) -> Result<Option<(Stream, PeerInfo)>, HandshakeError> {
        let timeout = self.handshake_timeout;
        let remote = self.remote;
        let kind = self.protocol.kind();
        let upgraded = match self.protocol {
            // Nothing to wait for.
            Protocol::Tcp => Some((Stream::tcp(self.tcp), Vec::new())),
            // Boxed: the TLS and WebSocket handshakes make a future of about 11 KB, which
            // would otherwise enlarge the caller's future for plain TCP connections too.
            protocol => Box::pin(tokio::time::timeout(
                timeout,
                upgrade(
                    self.tcp,
                    protocol,
                    Http {
                        status: self.http.as_deref(),
                        access: &self.access,
                    },
                    self.max_message_size,
                ),
            ))
            .await
            .map_err(|_| HandshakeError::Timeout(timeout))??,
        };
        drop(self.slot);
        let Some((stream, client_certificates)) = upgraded else {
            return Ok(None);
        };
        Ok(Some((
            stream,
            PeerInfo {
                remote,
                kind,
                client_certificates,
            },
        )))
    }
}

type Certificates = Vec<rustls::pki_types::CertificateDer<'static>>;

/// The HTTP side of a WebSocket listener: what it reports and who may use it.
#[derive(Clone, Copy)]
struct Http<'a> {
    status: Option<&'a dyn HttpStatus>,
    access: &'a HttpAccess,
}

async fn upgrade(
    tcp: TcpStream,
    protocol: Protocol,
    http: Http<'_>,
    max_message: usize,
) -> Result<Option<(Stream, Certificates)>, HandshakeError> {
    Ok(match protocol {
        Protocol::Tcp => Some((Stream::tcp(tcp), Vec::new())),
        Protocol::Tls(tls) => {
            let (tls, certificates) = accept_tls(tcp, tls.mqtt_config()).await?;
            Some((Stream::tls(tls), certificates))
        }
        Protocol::WebSocket => accept_ws(tcp, http, max_message)
            .await?
            .map(|ws| (Stream::ws(ws), Vec::new())),
        Protocol::SecureWebSocket(tls) => {
            let (tls, certificates) = accept_tls(tcp, tls.web_socket_config()).await?;
            accept_ws(tls, http, max_message)
                .await?
                .map(|ws| (Stream::wss(ws), certificates))
        }
    })
}

async fn accept_tls(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
) -> Result<(tokio_rustls::server::TlsStream<TcpStream>, Certificates), HandshakeError> {
    let tls = TlsAcceptor::from(config)
        .accept(tcp)
        .await
        .map_err(HandshakeError::Tls)?;
    let certificates = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    Ok((tls, certificates))
}

/// Answers `/health` and `/metrics` (`None`), refuses what [`HttpAccess`] does not allow, or
/// upgrades to WebSocket.
async fn accept_ws<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    http: Http<'_>,
    max_message: usize,
) -> Result<Option<WsStream<Replay<S>>>, HandshakeError> {
    let head = read_head(&mut stream).await?;
    match head.answer(&mut stream, http.status, http.access).await? {
        Outcome::Answered => return Ok(None),
        Outcome::Refused(e) => return Err(e),
        Outcome::Upgrade => {}
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    match tokio_tungstenite::accept_hdr_async_with_config(
        head.replay(stream),
        select_subprotocol,
        Some(config),
    )
    .await
    {
        Ok(ws) => Ok(Some(WsStream::new(ws))),
        Err(WsError::Http(response)) if response.status() == StatusCode::BAD_REQUEST => {
            Err(HandshakeError::NoMqttSubprotocol)
        }
        Err(e) => Err(HandshakeError::WebSocket(e)),
    }
}
