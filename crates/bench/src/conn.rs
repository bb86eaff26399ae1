//! One client connection over TCP, TLS or WebSocket, opened with CONNECT/CONNACK and split into a
//! reading half ([`Rx`]) and a writing half ([`Tx`]) so a client's reads and writes can run in
//! separate tasks. Writes go out as one batch per call (one WebSocket binary frame; flushed on
//! TLS).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use codec::{Connect, MqttString, Packet, ProtocolVersion};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

use crate::args::Transport;

/// The protocol every loadgen client speaks.
pub const V: ProtocolVersion = ProtocolVersion::V3_1_1;
/// Keep alive asked for in CONNECT: long, so idle connections need no PINGREQ during a run.
const KEEP_ALIVE_SECS: u16 = 600;
/// Free space ensured in a read buffer before each read, so one read can take many packets.
const READ_CHUNK: usize = 64 * 1024;

type Ws = WebSocketStream<TcpStream>;

/// What every connection of a run shares: where and how to connect.
pub struct Dialer {
    addr: SocketAddr,
    transport: Transport,
    tls: Option<TlsConnector>,
    /// Close with RST instead of FIN (`SO_LINGER` 0), so thousands of closed connections leave no
    /// TIME_WAIT entries holding loopback ports for the next round.
    reset_on_close: bool,
}

impl Dialer {
    /// A dialer for `transport`; `ca` is the PEM CA trusted for TLS.
    pub fn new(addr: SocketAddr, transport: Transport, ca: Option<&Path>) -> anyhow::Result<Self> {
        let tls = match (transport, ca) {
            (Transport::Tls, Some(ca)) => Some(tls_connector(ca)?),
            (Transport::Tls, None) => bail!("TLS needs a CA certificate"),
            _ => None,
        };
        Ok(Self {
            addr,
            transport,
            tls,
            reset_on_close: false,
        })
    }

    /// Makes connections from this dialer close with RST (see the field).
    pub fn reset_on_close(mut self) -> Self {
        self.reset_on_close = true;
        self
    }

    /// Connects (from the address and port `source` when given, else the kernel's choice), sends
    /// CONNECT with clean session and waits for a successful CONNACK. The returned buffer holds
    /// whatever arrived after the CONNACK.
    pub async fn open(
        &self,
        client_id: &str,
        source: Option<SocketAddr>,
    ) -> anyhow::Result<(Rx, Tx, BytesMut)> {
        let (rx, tx, buf, _) = self.connect(client_id, source, true).await?;
        Ok((rx, tx, buf))
    }

    /// Opens a persistent session (MQTT 3.1.1 clean session 0, §3.1.2.4) that starts empty: a
    /// clean connection first discards whatever session an earlier run left under `client_id`
    /// and is closed, then the persistent one connects and must find no session present.
    pub async fn open_persistent(&self, client_id: &str) -> anyhow::Result<(Rx, Tx, BytesMut)> {
        let (mut rx, mut tx, mut buf, _) = self.connect(client_id, None, true).await?;
        // Wait for the broker to close the clean connection, so the persistent CONNECT cannot
        // take over a session that is still being discarded.
        disconnect_and_wait(client_id, &mut rx, &mut tx, &mut buf).await?;
        let (rx, tx, buf, present) = self.connect(client_id, None, false).await?;
        if present {
            bail!("{client_id}: session present after a clean connection cleared it");
        }
        Ok((rx, tx, buf))
    }

    /// Reconnects to the persistent session of `client_id` and reports whether the broker kept
    /// it (CONNACK Session Present), then disconnects again, leaving the session as it was.
    pub async fn session_kept(&self, client_id: &str) -> anyhow::Result<bool> {
        let (mut rx, mut tx, mut buf, present) = self.connect(client_id, None, false).await?;
        disconnect_and_wait(client_id, &mut rx, &mut tx, &mut buf).await?;
        Ok(present)
    }

    /// Connects, sends CONNECT with the given Clean Session flag and waits for a successful
    /// CONNACK; returns the halves, whatever arrived after the CONNACK, and Session Present.
    async fn connect(
        &self,
        client_id: &str,
        source: Option<SocketAddr>,
        clean: bool,
    ) -> anyhow::Result<(Rx, Tx, BytesMut, bool)> {
        let stream = self.tcp(source).await?;
        let (mut rx, mut tx) = match self.transport {
            Transport::Tcp => {
                let (r, w) = stream.into_split();
                (Rx::Tcp(r), Tx::Tcp(w))
            }
            Transport::Tls => {
                let connector = self
                    .tls
                    .as_ref()
                    .context("TLS dialer without a connector")?;
                let name = ServerName::IpAddress(self.addr.ip().into());
                let tls = connector
                    .connect(name, stream)
                    .await
                    .with_context(|| format!("TLS handshake with {}", self.addr))?;
                let (r, w) = tokio::io::split(tls);
                (Rx::Tls(r), Tx::Tls(w))
            }
            Transport::Ws => {
                let ws = ws_handshake(stream, self.addr).await?;
                let (w, r) = ws.split();
                (Rx::Ws(r), Tx::Ws(w))
            }
        };
        let mut out = BytesMut::with_capacity(64);
        let mut connect = Connect::new(V, MqttString::try_from(client_id)?, KEEP_ALIVE_SECS);
        connect.clean_start = clean;
        Packet::Connect(Box::new(connect)).encode(V, &mut out)?;
        tx.send(&mut out).await?;
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            if let Some(p) = codec::decode(&mut buf, V, u32::MAX)? {
                match p {
                    Packet::ConnAck(a) if a.reason_code.is_success() => {
                        return Ok((rx, tx, buf, a.session_present));
                    }
                    other => bail!("{client_id}: expected a successful CONNACK, got {other:?}"),
                }
            }
            if rx.read(&mut buf).await? == 0 {
                bail!("{client_id}: closed before CONNACK");
            }
        }
    }

    async fn tcp(&self, source: Option<SocketAddr>) -> anyhow::Result<TcpStream> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(source) = source {
            socket
                .bind(source)
                .with_context(|| format!("binding a client socket to {source}"))?;
        }
        let stream = socket
            .connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        if self.reset_on_close {
            stream.set_zero_linger()?;
        }
        Ok(stream)
    }
}

/// How long the broker gets to close a connection after DISCONNECT.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Sends DISCONNECT and waits until the broker closes the connection (§3.14.4: it must), reading
/// and dropping anything still arriving. Whatever was sent before is then processed, so a
/// reconnection cannot overtake it.
pub async fn disconnect_and_wait(
    client_id: &str,
    rx: &mut Rx,
    tx: &mut Tx,
    buf: &mut BytesMut,
) -> anyhow::Result<()> {
    let mut out = BytesMut::with_capacity(2);
    Packet::Disconnect(Default::default()).encode(V, &mut out)?;
    tx.send(&mut out).await?;
    let closed = tokio::time::timeout(CLOSE_WAIT, async {
        loop {
            buf.clear();
            match rx.read(buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    if closed.is_err() {
        bail!(
            "{client_id}: the broker did not close the connection within {} s of DISCONNECT",
            CLOSE_WAIT.as_secs()
        );
    }
    Ok(())
}

/// A TLS connector trusting the CA certificates in the PEM file `ca`, with the `ring` provider
/// named explicitly (the workspace's only provider).
fn tls_connector(ca: &Path) -> anyhow::Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading CA certificates from {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
    }
    if roots.is_empty() {
        bail!("no certificate in {}", ca.display());
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Upgrades `stream` to a WebSocket asking for the `mqtt` subprotocol, and checks the broker
/// selected it.
async fn ws_handshake(stream: TcpStream, addr: SocketAddr) -> anyhow::Result<Ws> {
    let mut request = format!("ws://{addr}/mqtt").into_client_request()?;
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("mqtt"),
    );
    let (ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .with_context(|| format!("WebSocket handshake with {addr}"))?;
    if response.headers().get(header::SEC_WEBSOCKET_PROTOCOL)
        != Some(&HeaderValue::from_static("mqtt"))
    {
        bail!("{addr}: the WebSocket upgrade did not select the `mqtt` subprotocol");
    }
    Ok(ws)
}

/// The reading half of a connection.
pub enum Rx {
    /// Plain TCP.
    Tcp(OwnedReadHalf),
    /// TLS over TCP.
    Tls(ReadHalf<TlsStream<TcpStream>>),
    /// WebSocket over TCP.
    Ws(SplitStream<Ws>),
}

impl Rx {
    /// Appends the next bytes that arrive to `buf`; `Ok(0)` when the broker closed the
    /// connection.
    pub async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Tcp(r) => {
                buf.reserve(READ_CHUNK);
                r.read_buf(buf).await
            }
            Self::Tls(r) => {
                buf.reserve(READ_CHUNK);
                r.read_buf(buf).await
            }
            Self::Ws(r) => loop {
                match r.next().await {
                    Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                        buf.extend_from_slice(&data);
                        return Ok(data.len());
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(0),
                    Some(Ok(Message::Text(_))) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "text frame from the broker; MQTT over WebSocket is binary",
                        ));
                    }
                    // Empty binary frames, pings (tungstenite answers them) and pongs.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            },
        }
    }

    /// Whether the broker has closed a plain TCP connection, seen without waiting. Always false
    /// for TLS and WebSocket, whose state cannot be read without driving the protocol.
    pub fn is_closed(&self) -> bool {
        match self {
            Self::Tcp(r) => {
                let mut byte = [0u8; 1];
                match r.try_read(&mut byte) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => e.kind() != io::ErrorKind::WouldBlock,
                }
            }
            Self::Tls(_) | Self::Ws(_) => false,
        }
    }
}

/// The writing half of a connection.
pub enum Tx {
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
    /// TLS over TCP.
    Tls(WriteHalf<TlsStream<TcpStream>>),
    /// WebSocket over TCP.
    Ws(SplitSink<Ws, Message>),
}

impl Tx {
    /// Sends all of `out` as one write (one binary frame over WebSocket) and leaves `out` empty
    /// with its capacity, ready for the next batch.
    pub async fn send(&mut self, out: &mut BytesMut) -> io::Result<()> {
        match self {
            Self::Tcp(w) => w.write_all(out).await?,
            Self::Tls(w) => {
                w.write_all(out).await?;
                w.flush().await?;
            }
            Self::Ws(w) => {
                // `split` hands the bytes over without copying; once the frame is written and
                // dropped, `out` reclaims the same allocation on its next `reserve`.
                w.send(Message::Binary(out.split().freeze()))
                    .await
                    .map_err(io::Error::other)?;
            }
        }
        out.clear();
        Ok(())
    }
}
