//! MQTT over TLS, WebSocket and secure WebSocket, against the real broker with real clients:
//! a rustls client, `mosquitto_pub --cafile`, and a tokio-tungstenite WebSocket client.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use codec::{
    Connect, MqttString, Packet, ProtocolVersion, Publish, QoS, Subscribe, SubscriptionOptions,
    TopicFilter, TopicName,
};
use common::{Raw, Serving, WAIT};
use futures_util::{SinkExt, StreamExt};
use server::{Broker, BrokerOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use transport::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};
use transport::{
    HandshakeLimit, IdentityFiles, KeySource, Listener, Protocol, ServerTls, TlsIdentity,
};
use xtask::pki::{Pki, PkiOptions};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V3: ProtocolVersion = ProtocolVersion::V3_1_1;

/// Handshake timeout of the test listeners: short, so the silent-client test is quick.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(800);

/// A broker with one listener of every kind on loopback ephemeral ports.
struct Broker4 {
    tcp: SocketAddr,
    tls: SocketAddr,
    ws: SocketAddr,
    wss: SocketAddr,
    pki: Pki,
    serving: Serving,
}

impl Broker4 {
    async fn start() -> Self {
        let pki = xtask::pki::generate(&PkiOptions::default()).unwrap();
        let identity = TlsIdentity::from_pem(
            pki.server.chain_pem.as_bytes(),
            pki.server.key_pem.as_bytes(),
        )
        .unwrap();
        Self::with_tls(pki, ServerTls::new(identity).unwrap()).await
    }

    async fn with_tls(pki: Pki, tls: ServerTls) -> Self {
        Self::with(pki, tls, HANDSHAKE_TIMEOUT, None).await
    }

    async fn with(
        pki: Pki,
        tls: ServerTls,
        handshake_timeout: Duration,
        limit: Option<HandshakeLimit>,
    ) -> Self {
        let protocols = [
            Protocol::Tcp,
            Protocol::Tls(tls.clone()),
            Protocol::WebSocket,
            Protocol::SecureWebSocket(tls),
        ];
        let broker = Broker::new(BrokerOptions {
            sys_interval: None,
            ..BrokerOptions::default()
        });
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for protocol in protocols {
            let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(tcp.local_addr().unwrap());
            let listener = Listener::new(tcp, protocol, handshake_timeout)
                .with_http_status(broker.http_status());
            listeners.push(match &limit {
                Some(limit) => listener.with_handshake_limit(limit.clone()),
                None => listener,
            });
        }
        let serving = Serving::spawn(|shutdown| async move {
            broker.serve(listeners, shutdown).await;
        });
        Self {
            tcp: addrs[0],
            tls: addrs[1],
            ws: addrs[2],
            wss: addrs[3],
            pki,
            serving,
        }
    }

    async fn stop(self) {
        self.serving.stop().await;
    }

    /// A rustls client trusting the test root, offering `alpn`, limited to `versions`.
    fn tls_connector(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.pki.ca.cert_der.clone().into()).unwrap();
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }

    async fn tls_stream(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
        addr: SocketAddr,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        self.tls_connector(alpn, versions)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// A TLS handshake with the TLS listener by a client trusting `pki`'s root.
    async fn handshake_trusting(&self, pki: &Pki) -> std::io::Result<()> {
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.cert_der.clone().into()).unwrap();
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let tcp = TcpStream::connect(self.tls).await.unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map(drop)
    }
}

/// An MQTT client over any byte stream, connected (CONNECT answered with success).
async fn connect_over<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    version: ProtocolVersion,
    client_id: &str,
) -> Raw<S> {
    let mut client = Raw::over(stream, version);
    client.send(connect(version, client_id)).await;
    match client.recv().await {
        Some(Packet::ConnAck(ack)) => assert!(ack.reason_code.is_success(), "{ack:?}"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    client
}

fn connect(version: ProtocolVersion, client_id: &str) -> Packet {
    Packet::Connect(Box::new(Connect::new(
        version,
        MqttString::try_from(client_id).unwrap(),
        60,
    )))
}

fn subscribe(filter: &str) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: codec::PacketId::new(1).unwrap(),
        properties: Default::default(),
        filters: vec![(
            TopicFilter::try_from(filter).unwrap(),
            SubscriptionOptions::with_qos(QoS::AtMostOnce),
        )],
    })
}

fn publish(topic: &str, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish::new(
        TopicName::try_from(topic).unwrap(),
        Bytes::from_static(payload),
    ))
}

fn encode(packets: &[Packet], version: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    for p in packets {
        p.encode(version, &mut out).unwrap();
    }
    out.to_vec()
}

fn expect_suback(packet: Option<Packet>) {
    match packet {
        Some(Packet::SubAck(ack)) => assert!(ack.reason_codes[0].is_success(), "{ack:?}"),
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

fn expect_publish(packet: Option<Packet>, topic: &str, payload: &[u8]) {
    match packet {
        Some(Packet::Publish(p)) => {
            assert_eq!(p.topic.as_str(), topic);
            assert_eq!(&p.payload[..], payload);
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

// ---- TLS ----

#[tokio::test]
async fn tls_clients_publish_and_subscribe_over_tls_1_3_and_1_2() {
    let broker = Broker4::start().await;
    let sub_stream = broker
        .tls_stream(&[b"mqtt"], &[&rustls::version::TLS13], broker.tls)
        .await;
    assert_eq!(sub_stream.get_ref().1.alpn_protocol(), Some(&b"mqtt"[..]));
    assert_eq!(
        sub_stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let mut sub = connect_over(sub_stream, V5, "tls-sub").await;
    sub.send(subscribe("tls/#")).await;
    expect_suback(sub.recv().await);

    // No ALPN at all is accepted too.
    let pub_stream = broker
        .tls_stream(&[], &[&rustls::version::TLS12], broker.tls)
        .await;
    assert_eq!(
        pub_stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let mut publisher = connect_over(pub_stream, V3, "tls-pub").await;
    publisher.send(publish("tls/t", b"over tls")).await;
    expect_publish(sub.recv().await, "tls/t", b"over tls");
    broker.stop().await;
}

#[tokio::test]
async fn mosquitto_pub_publishes_over_tls_with_the_test_ca() {
    if !common::require_program("mosquitto_pub") {
        return;
    }
    let broker = Broker4::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &broker.pki.ca.cert_pem).unwrap();
    let mut sub = Raw::connect(broker.tcp, V5, "plain-sub").await;
    sub.send(subscribe("mosq/#")).await;
    expect_suback(sub.recv().await);

    let status = tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &broker.tls.port().to_string()])
        .arg("--cafile")
        .arg(&ca)
        .args([
            "-V",
            "mqttv311",
            "-q",
            "1",
            "-t",
            "mosq/tls",
            "-m",
            "from mosquitto",
        ])
        .status();
    let status = tokio::time::timeout(WAIT, status).await.unwrap().unwrap();
    assert!(status.success(), "mosquitto_pub failed: {status}");
    expect_publish(sub.recv().await, "mosq/tls", b"from mosquitto");
    broker.stop().await;
}

#[tokio::test]
async fn silent_client_on_the_tls_port_is_dropped_after_the_handshake_timeout() {
    let broker = Broker4::start().await;
    let mut silent = TcpStream::connect(broker.tls).await.unwrap();

    // While the silent one holds its connection, others are served.
    let stream = broker
        .tls_stream(&[b"mqtt"], rustls::DEFAULT_VERSIONS, broker.tls)
        .await;
    let mut other = connect_over(stream, V5, "not-silent").await;
    other.send(subscribe("x")).await;
    expect_suback(other.recv().await);

    let started = tokio::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(HANDSHAKE_TIMEOUT + WAIT, silent.read(&mut byte))
        .await
        .expect("the silent client was not dropped");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Dropped by the timeout, not at once (the connect happened before `started`).
    assert!(started.elapsed() < HANDSHAKE_TIMEOUT + WAIT);
    broker.stop().await;
}

#[tokio::test]
async fn certificate_swap_on_disk_is_used_by_new_connections_and_a_broken_file_is_ignored() {
    let first = xtask::pki::generate(&PkiOptions::default()).unwrap();
    let second = xtask::pki::generate(&PkiOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = IdentityFiles {
        certificate: dir.path().join("certificate.pem"),
        private_key: KeySource::File(dir.path().join("privateKey.pem")),
    };
    // Each file is replaced by a rename, as deployment tools do.
    let replace = |name: &str, contents: &str| {
        let tmp = dir.path().join(format!("{name}.new"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, dir.path().join(name)).unwrap();
    };
    replace("certificate.pem", &first.server.chain_pem);
    replace("privateKey.pem", &first.server.key_pem);
    let tls = ServerTls::new(files.load().unwrap()).unwrap();
    let (tx, mut reloads) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(tls.clone().watch_files(
        files,
        Duration::from_millis(20),
        move |outcome| {
            let _ = tx.send(outcome.map_err(|e| e.to_string()));
        },
    ));
    let broker = Broker4::with_tls(first.clone(), tls).await;
    broker.handshake_trusting(&first).await.unwrap();

    replace("certificate.pem", &second.server.chain_pem);
    replace("privateKey.pem", &second.server.key_pem);
    // The watcher may look between the two renames and refuse a mismatched pair first.
    loop {
        let outcome = tokio::time::timeout(WAIT, reloads.recv())
            .await
            .expect("no reload within the wait")
            .unwrap();
        if outcome.is_ok() {
            break;
        }
    }
    broker.handshake_trusting(&second).await.unwrap();
    assert!(broker.handshake_trusting(&first).await.is_err());

    // A broken certificate file is reported and the current identity stays.
    replace(
        "certificate.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    );
    let outcome = tokio::time::timeout(WAIT, reloads.recv())
        .await
        .expect("no reload attempt within the wait")
        .unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
    broker.handshake_trusting(&second).await.unwrap();

    watcher.abort();
    broker.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_handshake_limit_are_closed_at_once() {
    let pki = xtask::pki::generate(&PkiOptions::default()).unwrap();
    let identity = TlsIdentity::from_pem(
        pki.server.chain_pem.as_bytes(),
        pki.server.key_pem.as_bytes(),
    )
    .unwrap();
    let tls = ServerTls::new(identity).unwrap();
    // A long handshake timeout: only the limit can close the second connection within WAIT.
    let broker = Broker4::with(
        pki,
        tls,
        Duration::from_secs(60),
        Some(HandshakeLimit::new(1)),
    )
    .await;

    // The first connection takes the only handshake slot and sends nothing yet.
    let first = TcpStream::connect(broker.tls).await.unwrap();
    let mut second = TcpStream::connect(broker.tls).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, second.read(&mut byte))
        .await
        .expect("the second connection was not closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // The first one is served; once its handshake is over the slot is free again.
    let tls = broker
        .tls_connector(&[b"mqtt"], rustls::DEFAULT_VERSIONS)
        .connect(ServerName::try_from("localhost").unwrap(), first)
        .await
        .unwrap();
    let _first = connect_over(tls, V5, "first").await;
    let third = broker
        .tls_stream(&[b"mqtt"], rustls::DEFAULT_VERSIONS, broker.tls)
        .await;
    let _third = connect_over(third, V5, "third").await;
    broker.stop().await;
}

// ---- WebSocket ----

type Ws<S> = tokio_tungstenite::WebSocketStream<S>;

async fn ws_open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    scheme: &str,
    addr: SocketAddr,
    protocols: Option<&'static str>,
) -> Result<Ws<S>, WsError> {
    let mut request = format!("{scheme}://localhost:{}/mqtt", addr.port())
        .into_client_request()
        .unwrap();
    if let Some(p) = protocols {
        request
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
    assert_eq!(
        response.headers().get(header::SEC_WEBSOCKET_PROTOCOL),
        Some(&HeaderValue::from_static("mqtt"))
    );
    Ok(ws)
}

/// Reads binary messages until one whole packet is buffered.
async fn ws_recv<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut Ws<S>,
    buf: &mut BytesMut,
    version: ProtocolVersion,
) -> Option<Packet> {
    loop {
        if let Some(p) = codec::decode(buf, version, u32::MAX).unwrap() {
            return Some(p);
        }
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a frame")
        {
            Some(Ok(Message::Binary(data))) => buf.extend_from_slice(&data),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(other)) => panic!("unexpected message {other:?}"),
        }
    }
}

/// CONNECT split across two frames; then SUBSCRIBE and PUBLISH together in one frame.
async fn ws_round_trip<S: AsyncRead + AsyncWrite + Unpin>(mut ws: Ws<S>, client_id: &str) {
    let mut buf = BytesMut::new();
    let connect = encode(&[connect(V5, client_id)], V5);
    let (first, second) = connect.split_at(connect.len() / 2);
    ws.send(Message::binary(first.to_vec())).await.unwrap();
    ws.send(Message::binary(second.to_vec())).await.unwrap();
    match ws_recv(&mut ws, &mut buf, V5).await {
        Some(Packet::ConnAck(ack)) => assert!(ack.reason_code.is_success(), "{ack:?}"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    let both = encode(&[subscribe("ws/#"), publish("ws/t", b"over websocket")], V5);
    ws.send(Message::binary(both)).await.unwrap();
    expect_suback(ws_recv(&mut ws, &mut buf, V5).await);
    expect_publish(
        ws_recv(&mut ws, &mut buf, V5).await,
        "ws/t",
        b"over websocket",
    );

    // A text frame closes the connection [MQTT-6.0.0-1].
    ws.send(Message::text("not mqtt")).await.unwrap();
    assert!(ws_recv(&mut ws, &mut buf, V5).await.is_none());
}

#[tokio::test]
async fn websocket_client_offering_mqtt_in_a_list_publishes_and_subscribes() {
    let broker = Broker4::start().await;
    let tcp = TcpStream::connect(broker.ws).await.unwrap();
    let ws = ws_open(tcp, "ws", broker.ws, Some("mqtt, mqttv3.1"))
        .await
        .unwrap();
    ws_round_trip(ws, "ws-client").await;
    broker.stop().await;
}

#[tokio::test]
async fn secure_websocket_client_publishes_and_subscribes() {
    let broker = Broker4::start().await;
    let tls = broker
        .tls_stream(&[b"http/1.1"], rustls::DEFAULT_VERSIONS, broker.wss)
        .await;
    let ws = ws_open(tls, "wss", broker.wss, Some("mqtt")).await.unwrap();
    ws_round_trip(ws, "wss-client").await;
    broker.stop().await;
}

/// A plain HTTP/1.1 GET on `addr`; the whole response (the broker closes after it).
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .expect("no complete response")
        .unwrap();
    response
}

#[tokio::test]
async fn http_port_answers_health_and_metrics() {
    let broker = Broker4::start().await;
    let health = http_get(broker.ws, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(health.ends_with("\r\n\r\nok\n"), "{health}");

    // One MQTT client over WebSocket and one over TCP, past CONNECT.
    let tcp = TcpStream::connect(broker.ws).await.unwrap();
    let mut ws = ws_open(tcp, "ws", broker.ws, Some("mqtt")).await.unwrap();
    ws.send(Message::binary(encode(&[connect(V5, "metrics-ws")], V5)))
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    assert!(matches!(
        ws_recv(&mut ws, &mut buf, V5).await,
        Some(Packet::ConnAck(_))
    ));
    let mut raw = Raw::connect(broker.tcp, V5, "metrics-tcp").await;
    // Subscribed to its own topic at QoS 1: one QoS 1 message in (acknowledged) and one out.
    raw.send(Packet::Subscribe(Subscribe {
        packet_id: codec::PacketId::new(1).unwrap(),
        properties: Default::default(),
        filters: vec![(
            TopicFilter::try_from("m/q1").unwrap(),
            SubscriptionOptions::with_qos(QoS::AtLeastOnce),
        )],
    }))
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let mut p = Publish::new(
        TopicName::try_from("m/q1").unwrap(),
        Bytes::from_static(b"x"),
    );
    p.qos = codec::QosPid::AtLeastOnce(codec::PacketId::new(2).unwrap());
    raw.send(Packet::Publish(p)).await;
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        match raw.recv().await {
            Some(Packet::PubAck(_)) => acked = true,
            Some(Packet::Publish(_)) => delivered = true,
            other => panic!("expected PUBACK and PUBLISH, got {other:?}"),
        }
    }

    let metrics = http_get(broker.ws, "/metrics?x=1").await;
    assert!(
        metrics.contains("content-type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    for line in [
        "# TYPE mqtt_connections gauge",
        "mqtt_connections{transport=\"ws\"} 1",
        "mqtt_connections{transport=\"tcp\"} 1",
        "mqtt_connections{transport=\"tls\"} 0",
        "mqtt_clients_connected 2",
        "# TYPE mqtt_messages_received_total counter",
        "mqtt_messages_received_total{qos=\"1\"} 1",
        "mqtt_messages_received_total{qos=\"0\"} 0",
        "mqtt_messages_sent_total{qos=\"1\"} 1",
        "mqtt_messages_sent_total{qos=\"0\"} 0",
        "mqtt_retained_messages 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line:?} missing from\n{metrics}"
        );
    }
    // Secure WebSocket's port answers too.
    let mut tls = broker
        .tls_stream(&[b"http/1.1"], rustls::DEFAULT_VERSIONS, broker.wss)
        .await;
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut response))
        .await
        .expect("no complete response");
    assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"));
    broker.stop().await;
}

#[tokio::test]
async fn websocket_upgrade_without_mqtt_subprotocol_gets_400() {
    let broker = Broker4::start().await;
    for offered in [None, Some("mqttv3.1")] {
        let tcp = TcpStream::connect(broker.ws).await.unwrap();
        match ws_open(tcp, "ws", broker.ws, offered).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), StatusCode::BAD_REQUEST),
            Err(e) => panic!("expected HTTP 400, got {e}"),
            Ok(_) => panic!("expected HTTP 400, the upgrade succeeded"),
        }
    }
    broker.stop().await;
}

/// MQTT.js from npm, the client browser dashboards use, over WebSocket (3.1.1 and 5.0) and over
/// WSS with the test CA. `.ci/run` installs it (`npm ci` in `tests/js`).
#[tokio::test]
async fn mqtt_js_round_trips_over_websocket_and_secure_websocket() {
    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    if !common::require_program("node") {
        return;
    }
    if !js.join("node_modules/mqtt").exists() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "MQTT.js is required when CI=true (.ci/run runs npm ci in tests/js)"
        );
        eprintln!("skipped: MQTT.js is not installed (run `npm ci` in tests/js)");
        return;
    }
    let broker = Broker4::start().await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &broker.pki.ca.cert_pem).unwrap();
    let runs = [
        (
            format!("ws://127.0.0.1:{}/mqtt", broker.ws.port()),
            "4",
            None,
        ),
        (format!("ws://127.0.0.1:{}/", broker.ws.port()), "5", None),
        (
            format!("wss://localhost:{}/mqtt", broker.wss.port()),
            "5",
            Some(ca.path()),
        ),
    ];
    for (url, version, ca) in runs {
        let mut command = tokio::process::Command::new("node");
        command.arg(js.join("roundtrip.js")).arg(&url).arg(version);
        if let Some(ca) = ca {
            command.arg(ca);
        }
        let out = tokio::time::timeout(Duration::from_secs(20), command.output())
            .await
            .expect("node finishes")
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
            "{url} v{version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn websocket_message_above_the_limit_closes_the_connection() {
    let broker = Broker4::start().await;
    let tcp = TcpStream::connect(broker.ws).await.unwrap();
    let mut ws = ws_open(tcp, "ws", broker.ws, Some("mqtt")).await.unwrap();
    // A CONNECT followed by padding, 2 MiB in one message: twice the default limit (the
    // default maximum packet size, 1 MiB). The message is refused before the broker sees any
    // of it, so not even the CONNECT is answered.
    let mut big = encode(&[connect(V5, "big-ws")], V5);
    big.resize(2 << 20, 0);
    let _ = ws.send(Message::binary(big)).await;
    let mut buf = BytesMut::new();
    assert!(ws_recv(&mut ws, &mut buf, V5).await.is_none());
    broker.stop().await;
}
