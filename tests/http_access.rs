//! What the transports refuse, against the real broker with real clients: idle sockets from a
//! few addresses taking every handshake slot, `/metrics` without its bearer token (raw HTTP and
//! curl), WebSocket upgrades from origins not allowed (tokio-tungstenite), and upgrades on an
//! HTTP port that serves `/health` and `/metrics` only.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use codec::{Connect, MqttString, Packet, ProtocolVersion};
use common::{Raw, Serving, WAIT};
use futures_util::{SinkExt, StreamExt};
use server::{Broker, BrokerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use transport::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};
use transport::{HandshakeLimit, Listener, Protocol, ServerTls, TlsIdentity};
use xtask::pki::{Pki, PkiOptions};

const V5: ProtocolVersion = ProtocolVersion::V5;

const TOKEN: &str = "metrics-token-0123456789abcdef";

/// One listener in front of a fresh broker, until [`Served::stop`].
struct Served {
    addr: SocketAddr,
    serving: Serving,
}

impl Served {
    /// Serves `protocol` on a loopback port; `edit` configures the listener.
    async fn start(protocol: Protocol, edit: impl FnOnce(Listener) -> Listener) -> Self {
        let broker = Broker::new(BrokerOptions {
            sys_interval: None,
            ..BrokerOptions::default()
        });
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = edit(
            Listener::new(tcp, protocol, Duration::from_secs(60))
                .with_http_status(broker.http_status()),
        );
        let serving = Serving::spawn(|shutdown| async move {
            broker.serve(vec![listener], shutdown).await;
        });
        Served { addr, serving }
    }

    async fn stop(self) {
        self.serving.stop().await;
    }
}

/// An HTTP/1.1 request with `headers` over a raw TCP connection; the whole response.
async fn http_get(addr: SocketAddr, path: &str, headers: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .expect("no complete response")
        .unwrap();
    response
}

/// A WebSocket upgrade offering `mqtt`, with `origin` as the `Origin` header if given.
async fn ws_upgrade(
    addr: SocketAddr,
    origin: Option<&'static str>,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, WsError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("ws://localhost:{}/mqtt", addr.port())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("mqtt"),
    );
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert(header::ORIGIN, HeaderValue::from_static(origin));
    }
    tokio_tungstenite::client_async(request, tcp)
        .await
        .map(|(ws, _)| ws)
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    Packet::Connect(Box::new(Connect::new(
        V5,
        MqttString::try_from(client_id).unwrap(),
        60,
    )))
    .encode(V5, &mut out)
    .unwrap();
    out.to_vec()
}

/// CONNECT over an open WebSocket, answered by a successful CONNACK.
async fn mqtt_over(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>, client_id: &str) {
    ws.send(Message::binary(connect_packet(client_id)))
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    loop {
        if let Some(packet) = codec::decode(&mut buf, V5, u32::MAX).unwrap() {
            match packet {
                Packet::ConnAck(ack) => assert!(ack.reason_code.is_success(), "{ack:?}"),
                other => panic!("expected CONNACK, got {other:?}"),
            }
            return;
        }
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(data))) => buf.extend_from_slice(&data),
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

fn expect_refused(result: Result<impl Sized, WsError>, status: StatusCode) -> String {
    match result {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), status);
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned()
        }
        Err(e) => panic!("expected HTTP {status}, got {e}"),
        Ok(_) => panic!("expected HTTP {status}, the upgrade succeeded"),
    }
}

#[tokio::test]
async fn metrics_needs_the_bearer_token_and_health_stays_open() {
    let served = Served::start(Protocol::WebSocket, |l| l.with_metrics_token(TOKEN)).await;
    let health = http_get(served.addr, "/health", "").await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    for headers in [
        String::new(),
        "Authorization: Bearer not-the-token-0123456789\r\n".to_owned(),
        format!("Authorization: Basic {TOKEN}\r\n"),
    ] {
        let refused = http_get(served.addr, "/metrics", &headers).await;
        assert!(
            refused.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
            "{headers:?}: {refused}"
        );
        assert!(refused.contains("www-authenticate: Bearer"), "{refused}");
        assert!(!refused.contains("mqtt_clients_connected"), "{refused}");
    }
    let metrics = http_get(
        served.addr,
        "/metrics",
        &format!("Authorization: Bearer {TOKEN}\r\n"),
    )
    .await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(
        metrics.contains("\nmqtt_clients_connected 0\n"),
        "{metrics}"
    );
    // WebSocket clients need no token.
    let mut ws = ws_upgrade(served.addr, None).await.unwrap();
    mqtt_over(&mut ws, "no-token-needed").await;

    if common::require_program("curl") {
        let url = format!("http://{}/metrics", served.addr);
        let curl = |extra: &[&str]| {
            let mut command = tokio::process::Command::new("curl");
            command.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5"]);
            command.args(extra).arg(&url);
            async move {
                let out = command.output().await.unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        };
        assert_eq!(curl(&[]).await, "401");
        assert_eq!(
            curl(&["-H", "Authorization: Bearer wrong-token-0123456789ab"]).await,
            "401"
        );
        assert_eq!(curl(&["--oauth2-bearer", TOKEN]).await, "200");
    }
    served.stop().await;
}

#[tokio::test]
async fn metrics_stays_open_without_a_token() {
    let served = Served::start(Protocol::WebSocket, |l| l).await;
    let metrics = http_get(served.addr, "/metrics", "").await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    served.stop().await;
}

#[tokio::test]
async fn websocket_upgrades_from_origins_not_allowed_get_403() {
    let served = Served::start(Protocol::WebSocket, |l| {
        l.with_allowed_origins(vec!["https://dashboard.example".to_owned()])
    })
    .await;
    for origin in ["https://evil.example", "null", "http://dashboard.example"] {
        let body = expect_refused(
            ws_upgrade(served.addr, Some(origin)).await,
            StatusCode::FORBIDDEN,
        );
        assert!(body.contains("origin"), "{body}");
    }
    // The allowed origin (any case), and clients that send none (not browsers), get in.
    for origin in [
        Some("https://dashboard.example"),
        Some("HTTPS://Dashboard.Example"),
        None,
    ] {
        let mut ws = ws_upgrade(served.addr, origin).await.unwrap();
        mqtt_over(&mut ws, "allowed").await;
    }
    served.stop().await;
    // Open by default.
    let served = Served::start(Protocol::WebSocket, |l| l).await;
    let mut ws = ws_upgrade(served.addr, Some("https://evil.example"))
        .await
        .unwrap();
    mqtt_over(&mut ws, "open").await;
    served.stop().await;
}

#[tokio::test]
async fn a_status_only_port_serves_health_and_metrics_and_refuses_upgrades_with_404() {
    let served = Served::start(Protocol::WebSocket, Listener::status_only).await;
    let health = http_get(served.addr, "/health", "").await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    let metrics = http_get(served.addr, "/metrics", "").await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(metrics.contains("mqtt_clients_connected 0"), "{metrics}");
    let body = expect_refused(ws_upgrade(served.addr, None).await, StatusCode::NOT_FOUND);
    assert!(body.contains("MQTT over WebSocket is off"), "{body}");
    served.stop().await;
}

// ---- handshake slots ----

/// A TCP connection to `addr` from `source` (another loopback address), opened and left idle.
async fn idle_from(source: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Waits until the broker closes `stream` (it was refused a slot).
async fn closed(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
        .await
        .expect("the connection was not closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

fn tls_server(pki: &Pki) -> ServerTls {
    let identity = TlsIdentity::from_pem(
        pki.server.chain_pem.as_bytes(),
        pki.server.key_pem.as_bytes(),
    )
    .unwrap();
    ServerTls::new(identity).unwrap()
}

fn tls_connector(pki: &Pki) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.cert_der.clone().into()).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn idle_sockets_from_two_addresses_leave_tls_clients_from_a_third_served() {
    let pki = xtask::pki::generate(&PkiOptions::default()).unwrap();
    // Room for 8 handshakes, 3 per address; the handshake timeout (60 s) outlasts the test, so
    // only the caps decide who is served.
    let served = Served::start(Protocol::Tls(tls_server(&pki)), |l| {
        l.with_handshake_limit(HandshakeLimit::per_address(8, 3))
    })
    .await;
    let mut flood = Vec::new();
    for source in [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)] {
        for _ in 0..3 {
            flood.push(idle_from(source, served.addr).await);
        }
        // A fourth from the same address is closed at once: its address has no slot left.
        closed(&mut idle_from(source, served.addr).await).await;
    }
    // Six of eight slots are taken by idle sockets; 127.0.0.1 still gets in, twice at once.
    let started = tokio::time::Instant::now();
    let both = [
        TcpStream::connect(served.addr).await.unwrap(),
        TcpStream::connect(served.addr).await.unwrap(),
    ];
    let mut clients = Vec::new();
    for (tcp, id) in both.into_iter().zip(["first", "second"]) {
        let tls = tls_connector(&pki)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("a TLS handshake from another address");
        let mut client = Raw::over(tls, V5);
        client
            .send(Packet::Connect(Box::new(Connect::new(
                V5,
                MqttString::try_from(id).unwrap(),
                60,
            ))))
            .await;
        assert!(matches!(client.recv().await, Some(Packet::ConnAck(_))));
        clients.push(client);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(flood);
    served.stop().await;
}
