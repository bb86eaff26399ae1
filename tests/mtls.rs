//! Client certificates (`mqtt.network.mtls`) end to end: a broker with a TLS listener (and a
//! plain one) asking for certificates from the xtask PKI, clients presenting them over real TLS,
//! and a real `openssl ocsp` responder for revocation, plus small fault-injecting responders for
//! what openssl cannot do (hang, answer garbage, redirect, replay an old answer).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use auth::{UsersAccess, hash_password};
use bytes::BytesMut;
use codec::{
    Connect, MqttString, Packet, PacketId, ProtocolVersion, QoS, ReasonCode, Subscribe,
    SubscriptionOptions, TopicFilter,
};
use mtls_verifier::{FailureMode, UserMapping};
use server::{Broker, BrokerOptions, ClientAuth, ClientAuthSettings, OcspSettings};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use transport::rustls::pki_types::pem::PemObject;
use transport::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use transport::rustls::{self, ClientConfig, RootCertStore};
use transport::{Listener, Protocol, ServerTls, TlsIdentity};
use xtask::pki::{Credential, OcspResponder, Pki, PkiOptions};

use common::{Raw, Serving, WAIT, require_program};

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// Users known to the broker; every one may read and write `devices/<own name>/#` only, so a
/// SUBACK tells which user a connection logged in as.
fn users_yaml(include_alice: bool) -> String {
    let hash = hash_password("secret").unwrap();
    let alice = if include_alice {
        "  alice: { roles: [devices] }\n"
    } else {
        ""
    };
    format!(
        "users:
{alice}  carol: {{ roles: [devices] }}
  revoked: {{ roles: [devices] }}
  stranger: {{ roles: [devices] }}
  service: {{ roles: [devices] }}
  bob: {{ roles: [devices], active: false }}
  dave: {{ password: '{hash}', roles: [devices] }}
roles:
  devices:
    permissions:
      - {{ topic: 'devices/%u/#', read: true, insert: true, update: true, delete: true }}
"
    )
}

/// What the test broker's `mtls` section would say.
struct Mtls {
    user: UserMapping,
    required: bool,
    /// CA bundle for client certificates; the PKI root when `None`.
    ca_pem: Option<Vec<u8>>,
    ocsp: Option<OcspSettings>,
}

impl Default for Mtls {
    fn default() -> Self {
        Self {
            user: UserMapping::CommonName,
            required: false,
            ca_pem: None,
            ocsp: None,
        }
    }
}

fn ocsp(failure_mode: FailureMode, timeout_ms: u64, cache_ttl_ms: u64) -> Option<OcspSettings> {
    Some(OcspSettings {
        timeout: Duration::from_millis(timeout_ms),
        cache_ttl: Duration::from_millis(cache_ttl_ms),
        failure_mode,
    })
}

/// A PKI whose certificates name `http://127.0.0.1:<port>` as their OCSP responder.
fn pki_with_responder_port(port: u16) -> Pki {
    xtask::pki::generate(&PkiOptions {
        ocsp_url: format!("http://127.0.0.1:{port}"),
        ..PkiOptions::default()
    })
    .unwrap()
}

/// A loopback port nobody listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct MtlsBroker {
    tls: SocketAddr,
    tcp: SocketAddr,
    wss: SocketAddr,
    broker: Broker,
    pki: Pki,
    _dir: tempfile::TempDir,
    serving: Serving,
}

impl MtlsBroker {
    async fn start(pki: Pki, mtls: Mtls) -> Self {
        Self::start_with(pki, mtls, true, true).await
    }

    async fn start_with(
        pki: Pki,
        mtls: Mtls,
        include_alice: bool,
        require_authentication: bool,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.yaml");
        std::fs::write(&users, users_yaml(include_alice)).unwrap();
        let access = Arc::new(UsersAccess::load(&users, require_authentication).unwrap());
        let client_auth = Arc::new(
            ClientAuth::new(ClientAuthSettings {
                ca_bundle_pem: mtls
                    .ca_pem
                    .unwrap_or_else(|| pki.ca.cert_pem.clone().into()),
                mapping: mtls.user,
                required: mtls.required,
                ocsp: mtls.ocsp,
            })
            .unwrap(),
        );
        let identity = TlsIdentity::from_pem(
            pki.server.chain_pem.as_bytes(),
            pki.server.key_pem.as_bytes(),
        )
        .unwrap();
        let tls =
            ServerTls::with_client_verifier(identity, client_auth.verifier().unwrap()).unwrap();
        let broker = Broker::builder(BrokerOptions {
            sys_interval: None,
            ..BrokerOptions::default()
        })
        .access(access)
        .client_auth(client_auth)
        .build();
        let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let wss_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (tls_addr, tcp_addr, wss_addr) = (
            tls_listener.local_addr().unwrap(),
            tcp_listener.local_addr().unwrap(),
            wss_listener.local_addr().unwrap(),
        );
        let listeners = vec![
            Listener::new(tls_listener, Protocol::Tls(tls.clone()), WAIT),
            Listener::new(tcp_listener, Protocol::Tcp, WAIT),
            Listener::new(wss_listener, Protocol::SecureWebSocket(tls), WAIT),
        ];
        let served = broker.clone();
        let serving = Serving::spawn(|shutdown| async move {
            served.serve(listeners, shutdown).await;
        });
        Self {
            tls: tls_addr,
            tcp: tcp_addr,
            wss: wss_addr,
            broker,
            pki,
            _dir: dir,
            serving,
        }
    }

    async fn stop(self) {
        self.serving.stop().await;
    }

    /// A TLS connection to the MQTT-over-TLS listener presenting `client` (its chain as the file
    /// holds it), or none.
    async fn tls(
        &self,
        client: Option<&Credential>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.tls_to(self.tls, client).await
    }

    async fn tls_to(
        &self,
        addr: SocketAddr,
        client: Option<&Credential>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.pki.ca.cert_der.clone().into()).unwrap();
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
        let config = match client {
            Some(c) => {
                let chain = CertificateDer::pem_slice_iter(c.chain_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        let tcp = TcpStream::connect(addr).await?;
        let mut stream = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        // In TLS 1.3 the server's verdict on the client certificate arrives after the client
        // considers the handshake done: a refused certificate shows up as an alert on first read.
        // Send nothing and read nothing here; the caller's first CONNACK read sees it.
        stream.flush().await?;
        Ok(stream)
    }

    /// The broker's Prometheus text.
    fn metrics(&self) -> String {
        self.broker.http_status().metrics()
    }

    fn metric(&self, line_prefix: &str) -> u64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(line_prefix))
            .unwrap_or_else(|| panic!("no metric {line_prefix} in\n{}", self.metrics()))
            .trim()
            .parse()
            .unwrap()
    }
}

/// How a connection attempt ended, as the client sees it.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// CONNACK with this code.
    ConnAck(ReasonCode),
    /// The TLS handshake failed, or the connection closed before any CONNACK.
    NoConnAck,
}

/// An MQTT session over any stream, driven through the codec.
struct Mqtt<S>(Raw<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> Mqtt<S> {
    /// Sends CONNECT (with `credentials`) and reads the answer.
    async fn connect(
        stream: S,
        version: ProtocolVersion,
        client_id: &str,
        credentials: Option<(&str, &str)>,
    ) -> (Outcome, Self) {
        let mut mqtt = Self(Raw::over(stream, version));
        let mut connect = Connect::new(version, MqttString::try_from(client_id).unwrap(), 60);
        if let Some((user, password)) = credentials {
            connect.username = Some(MqttString::try_from(user).unwrap());
            connect.password = Some(bytes::Bytes::copy_from_slice(password.as_bytes()));
        }
        if !mqtt.0.try_send(Packet::Connect(Box::new(connect))).await {
            return (Outcome::NoConnAck, mqtt);
        }
        let outcome = match mqtt.recv().await {
            Some(Packet::ConnAck(ack)) => Outcome::ConnAck(ack.reason_code),
            _ => Outcome::NoConnAck,
        };
        (outcome, mqtt)
    }

    async fn recv(&mut self) -> Option<Packet> {
        self.0.recv().await
    }

    /// Whether subscribing to `filter` is granted: tells which user the connection is.
    async fn may_subscribe(&mut self, filter: &str) -> bool {
        assert!(
            self.0
                .try_send(Packet::Subscribe(Subscribe {
                    packet_id: PacketId::new(1).unwrap(),
                    properties: Default::default(),
                    filters: vec![(
                        TopicFilter::try_from(filter).unwrap(),
                        SubscriptionOptions::with_qos(QoS::AtLeastOnce),
                    )],
                }))
                .await
        );
        match self.recv().await {
            Some(Packet::SubAck(ack)) => ack.reason_codes[0].is_success(),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
}

impl MtlsBroker {
    /// Connects over TLS presenting `cert`, and returns what the client saw.
    async fn try_tls(
        &self,
        cert: Option<&Credential>,
        version: ProtocolVersion,
        credentials: Option<(&str, &str)>,
    ) -> (
        Outcome,
        Option<Mqtt<tokio_rustls::client::TlsStream<TcpStream>>>,
    ) {
        match self.tls(cert).await {
            Err(_) => (Outcome::NoConnAck, None),
            Ok(stream) => {
                static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let id = format!(
                    "c{}",
                    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                );
                let (outcome, mqtt) = Mqtt::connect(stream, version, &id, credentials).await;
                (outcome, Some(mqtt))
            }
        }
    }

    async fn tls_outcome(&self, cert: Option<&Credential>, version: ProtocolVersion) -> Outcome {
        self.try_tls(cert, version, None).await.0
    }

    /// Logs in over TLS with `cert` and asserts which user the connection is.
    async fn assert_logs_in_as(&self, cert: &Credential, user: &str) {
        let (outcome, mqtt) = self.try_tls(Some(cert), V5, None).await;
        assert_eq!(outcome, Outcome::ConnAck(ReasonCode::Success), "{cert:?}");
        let mut mqtt = mqtt.unwrap();
        assert!(mqtt.may_subscribe(&format!("devices/{user}/#")).await);
        let other = if user == "dave" { "alice" } else { "dave" };
        assert!(!mqtt.may_subscribe(&format!("devices/{other}/#")).await);
    }
}

// ---- user mapping, CA, required ----

#[tokio::test]
async fn common_name_is_the_user_and_carol_chains_through_the_intermediate() {
    let b = MtlsBroker::start(
        xtask::pki::generate(&PkiOptions::default()).unwrap(),
        Mtls::default(),
    )
    .await;
    b.assert_logs_in_as(&b.pki.alice.clone(), "alice").await;
    b.assert_logs_in_as(&b.pki.carol.clone(), "carol").await;
    // A certificate from the mapped user beats the CONNECT user name.
    let (outcome, mqtt) = b
        .try_tls(Some(&b.pki.alice.clone()), V3, Some(("dave", "secret")))
        .await;
    assert_eq!(outcome, Outcome::ConnAck(ReasonCode::Success));
    assert!(mqtt.unwrap().may_subscribe("devices/alice/#").await);
    b.stop().await;
}

#[tokio::test]
async fn optional_mtls_lets_password_clients_in_and_turns_bad_certificates_away() {
    let b = MtlsBroker::start(
        xtask::pki::generate(&PkiOptions::default()).unwrap(),
        Mtls::default(),
    )
    .await;
    // No certificate: credentials, over TLS and over plain TCP.
    let (outcome, mqtt) = b.try_tls(None, V5, Some(("dave", "secret"))).await;
    assert_eq!(outcome, Outcome::ConnAck(ReasonCode::Success));
    assert!(mqtt.unwrap().may_subscribe("devices/dave/#").await);
    let tcp = TcpStream::connect(b.tcp).await.unwrap();
    let (outcome, _) = Mqtt::connect(tcp, V3, "p", Some(("dave", "secret"))).await;
    assert_eq!(outcome, Outcome::ConnAck(ReasonCode::Success));
    // No certificate and no credentials: authentication is required.
    assert_eq!(
        b.tls_outcome(None, V5).await,
        Outcome::ConnAck(ReasonCode::NotAuthorized)
    );
    // A certificate from another CA, or an expired one, fails the handshake.
    assert_eq!(
        b.tls_outcome(Some(&b.pki.stranger.clone()), V5).await,
        Outcome::NoConnAck
    );
    assert_eq!(
        b.tls_outcome(Some(&b.pki.expired.clone()), V5).await,
        Outcome::NoConnAck
    );
    b.stop().await;
}

#[tokio::test]
async fn a_certificate_of_an_unknown_or_deactivated_user_is_not_authorized() {
    for require_authentication in [true, false] {
        let b = MtlsBroker::start_with(
            xtask::pki::generate(&PkiOptions::default()).unwrap(),
            Mtls::default(),
            false,
            require_authentication,
        )
        .await;
        // An unknown user is anonymous when authentication is not required, as the same client
        // without a certificate would be; a deactivated one is refused either way.
        let unknown = if require_authentication {
            ReasonCode::NotAuthorized
        } else {
            ReasonCode::Success
        };
        for version in [V3, V5] {
            assert_eq!(
                b.tls_outcome(Some(&b.pki.alice.clone()), version).await,
                Outcome::ConnAck(unknown),
                "unknown user, {version:?}, {require_authentication}"
            );
            assert_eq!(
                b.tls_outcome(Some(&b.pki.bob.clone()), version).await,
                Outcome::ConnAck(ReasonCode::NotAuthorized),
                "deactivated user, {version:?}, {require_authentication}"
            );
        }
        b.stop().await;
    }
}

#[tokio::test]
async fn a_fixed_user_is_who_every_certificate_logs_in_as() {
    let b = MtlsBroker::start(
        xtask::pki::generate(&PkiOptions::default()).unwrap(),
        Mtls {
            user: UserMapping::Fixed("service".to_owned()),
            required: true,
            ..Mtls::default()
        },
    )
    .await;
    b.assert_logs_in_as(&b.pki.alice.clone(), "service").await;
    b.assert_logs_in_as(&b.pki.carol.clone(), "service").await;
    b.stop().await;
}

#[tokio::test]
async fn required_refuses_tls_without_a_certificate_and_every_plaintext_client() {
    let b = MtlsBroker::start(
        xtask::pki::generate(&PkiOptions::default()).unwrap(),
        Mtls {
            required: true,
            ..Mtls::default()
        },
    )
    .await;
    assert_eq!(b.tls_outcome(None, V5).await, Outcome::NoConnAck);
    for (version, code) in [
        (V3, ReasonCode::NotAuthorized),
        (V5, ReasonCode::NotAuthorized),
    ] {
        let tcp = TcpStream::connect(b.tcp).await.unwrap();
        let (outcome, mut mqtt) = Mqtt::connect(tcp, version, "p", Some(("dave", "secret"))).await;
        assert_eq!(outcome, Outcome::ConnAck(code), "{version:?}");
        assert!(mqtt.recv().await.is_none(), "the connection closes");
    }
    b.assert_logs_in_as(&b.pki.alice.clone(), "alice").await;
    b.stop().await;
}

#[tokio::test]
async fn user_null_with_required_needs_the_certificate_and_the_credentials() {
    let b = MtlsBroker::start(
        xtask::pki::generate(&PkiOptions::default()).unwrap(),
        Mtls {
            user: UserMapping::None,
            required: true,
            ..Mtls::default()
        },
    )
    .await;
    let alice = b.pki.alice.clone();
    // Certificate alone: not enough.
    assert_eq!(
        b.tls_outcome(Some(&alice), V5).await,
        Outcome::ConnAck(ReasonCode::BadUserNameOrPassword)
    );
    assert_eq!(
        b.tls_outcome(Some(&alice), V3).await,
        Outcome::ConnAck(ReasonCode::BadUserNameOrPassword)
    );
    // Certificate and a wrong password: refused.
    let (outcome, _) = b.try_tls(Some(&alice), V5, Some(("dave", "nope"))).await;
    assert_eq!(outcome, Outcome::ConnAck(ReasonCode::BadUserNameOrPassword));
    // Credentials alone: no handshake without a certificate.
    let (outcome, _) = b.try_tls(None, V5, Some(("dave", "secret"))).await;
    assert_eq!(outcome, Outcome::NoConnAck);
    // Both: logged in as the credentials' user, not the certificate's CN.
    let (outcome, mqtt) = b.try_tls(Some(&alice), V5, Some(("dave", "secret"))).await;
    assert_eq!(outcome, Outcome::ConnAck(ReasonCode::Success));
    let mut mqtt = mqtt.unwrap();
    assert!(mqtt.may_subscribe("devices/dave/#").await);
    assert!(!mqtt.may_subscribe("devices/alice/#").await);
    b.stop().await;
}

#[tokio::test]
async fn the_mtls_certificate_authority_is_separate_from_the_tls_one() {
    let pki = xtask::pki::generate(&PkiOptions::default()).unwrap();
    let other_ca = pki.other_ca.cert_pem.clone().into_bytes();
    let b = MtlsBroker::start(
        pki,
        Mtls {
            ca_pem: Some(other_ca),
            ..Mtls::default()
        },
    )
    .await;
    // alice's CA issued the server certificate, but not for client certificates here.
    assert_eq!(
        b.tls_outcome(Some(&b.pki.alice.clone()), V5).await,
        Outcome::NoConnAck
    );
    b.assert_logs_in_as(&b.pki.stranger.clone(), "stranger")
        .await;
    b.stop().await;
}

#[tokio::test]
async fn secure_websocket_clients_log_in_with_certificates_too() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

    let b = MtlsBroker::start(
        xtask::pki::generate(&PkiOptions::default()).unwrap(),
        Mtls {
            required: true,
            ..Mtls::default()
        },
    )
    .await;
    let request = || {
        let mut request = format!("wss://localhost:{}/mqtt", b.wss.port())
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("mqtt"),
        );
        request
    };
    // No certificate: the TLS handshake under the WebSocket fails.
    let refused = async {
        let tls = b.tls_to(b.wss, None).await?;
        tokio_tungstenite::client_async(request(), tls)
            .await
            .map_err(std::io::Error::other)
    };
    assert!(refused.await.is_err());

    let tls = b.tls_to(b.wss, Some(&b.pki.alice.clone())).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request(), tls)
        .await
        .unwrap();
    let mut out = BytesMut::new();
    Packet::Connect(Box::new(Connect::new(
        V5,
        MqttString::try_from("wss-alice").unwrap(),
        60,
    )))
    .encode(V5, &mut out)
    .unwrap();
    ws.send(Message::binary(out.to_vec())).await.unwrap();
    let mut buf = BytesMut::new();
    let ack = loop {
        if let Some(p) = codec::decode(&mut buf, V5, u32::MAX).unwrap() {
            break p;
        }
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(data))) => buf.extend_from_slice(&data),
            other => panic!("expected CONNACK bytes, got {other:?}"),
        }
    };
    match ack {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    b.stop().await;
}

// ---- OCSP against a real responder ----

/// A broker configured with `mtls`, its PKI written to `dir`, and a real `openssl ocsp`
/// responder on the port the PKI's certificates name.
struct WithResponder {
    b: MtlsBroker,
    dir: tempfile::TempDir,
    _responder: OcspResponder,
}

async fn with_openssl_responder(mtls: Mtls) -> WithResponder {
    let pki = pki_with_responder_port(free_port());
    let dir = tempfile::tempdir().unwrap();
    let responder = start_openssl_responder(&pki, dir.path());
    let b = MtlsBroker::start(pki, mtls).await;
    WithResponder {
        b,
        dir,
        _responder: responder,
    }
}

/// `openssl ocsp` serving the PKI's `index.txt` on the port in its certificates.
fn start_openssl_responder(pki: &Pki, dir: &Path) -> OcspResponder {
    pki.write_to(dir).unwrap();
    OcspResponder::start(
        pki.ocsp_responder_args(dir).unwrap(),
        dir.join("ocsp.stderr"),
        Duration::from_secs(10),
    )
    .unwrap()
}

#[tokio::test]
async fn ocsp_good_passes_revoked_is_refused_and_answers_are_cached() {
    if !require_program("openssl") {
        return;
    }
    let WithResponder {
        b,
        dir: _dir,
        _responder,
    } = with_openssl_responder(Mtls {
        ocsp: ocsp(FailureMode::FailClosed, 5_000, 600_000),
        ..Mtls::default()
    })
    .await;
    b.assert_logs_in_as(&b.pki.alice.clone(), "alice").await;
    assert_eq!(b.metric("mqtt_ocsp_requests_total "), 1);
    // Within the TTL: no second request.
    b.assert_logs_in_as(&b.pki.alice.clone(), "alice").await;
    assert_eq!(b.metric("mqtt_ocsp_requests_total "), 1);
    assert_eq!(b.metric("mqtt_ocsp_cache_hits_total "), 1);
    assert_eq!(b.metric("mqtt_ocsp_checks_total{outcome=\"good\"} "), 2);
    for version in [V3, V5] {
        assert_eq!(
            b.tls_outcome(Some(&b.pki.revoked.clone()), version).await,
            // The first refusal comes as CONNACK; once cached as revoked, the handshake fails.
            if version == V3 {
                Outcome::ConnAck(ReasonCode::NotAuthorized)
            } else {
                Outcome::NoConnAck
            },
            "{version:?}"
        );
    }
    assert_eq!(b.metric("mqtt_ocsp_checks_total{outcome=\"revoked\"} "), 1);
    assert_eq!(b.metric("mqtt_ocsp_requests_total "), 2);
    b.stop().await;
}

#[tokio::test]
async fn ocsp_unknown_follows_the_failure_mode() {
    if !require_program("openssl") {
        return;
    }
    // The responder's index lacks alice, so it answers `unknown` for her certificate.
    let pki = pki_with_responder_port(free_port());
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();
    let index: String = pki
        .index_txt
        .lines()
        .filter(|line| !line.contains(&pki.alice.serial))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(index, pki.index_txt, "alice is in the index to begin with");
    std::fs::write(dir.path().join("index.txt"), index).unwrap();
    let _responder = OcspResponder::start(
        pki.ocsp_responder_args(dir.path()).unwrap(),
        dir.path().join("ocsp.stderr"),
        Duration::from_secs(10),
    )
    .unwrap();
    let closed = MtlsBroker::start(
        pki.clone(),
        Mtls {
            ocsp: ocsp(FailureMode::FailClosed, 5_000, 600_000),
            ..Mtls::default()
        },
    )
    .await;
    assert_eq!(
        closed.tls_outcome(Some(&pki.alice), V5).await,
        Outcome::ConnAck(ReasonCode::NotAuthorized)
    );
    assert_eq!(
        closed.metric("mqtt_ocsp_checks_total{outcome=\"unknown\"} "),
        1
    );
    closed.stop().await;
    let open = MtlsBroker::start(
        pki.clone(),
        Mtls {
            ocsp: ocsp(FailureMode::FailOpen, 5_000, 600_000),
            ..Mtls::default()
        },
    )
    .await;
    open.assert_logs_in_as(&pki.alice, "alice").await;
    // Unknown is never cached: the next connection asks again.
    open.assert_logs_in_as(&pki.alice, "alice").await;
    assert_eq!(open.metric("mqtt_ocsp_requests_total "), 2);
    assert_eq!(
        open.metric("mqtt_ocsp_checks_total{outcome=\"unknown\"} "),
        2
    );
    open.stop().await;
}

#[tokio::test]
async fn the_cache_expires_after_its_ttl_and_simultaneous_checks_share_one_request() {
    if !require_program("openssl") {
        return;
    }
    let WithResponder {
        b,
        dir: _dir,
        _responder,
    } = with_openssl_responder(Mtls {
        ocsp: ocsp(FailureMode::FailClosed, 5_000, 1_000),
        ..Mtls::default()
    })
    .await;
    let alice = b.pki.alice.clone();
    tokio::join!(
        b.assert_logs_in_as(&alice, "alice"),
        b.assert_logs_in_as(&alice, "alice")
    );
    assert_eq!(b.metric("mqtt_ocsp_requests_total "), 1);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    b.assert_logs_in_as(&alice, "alice").await;
    assert_eq!(b.metric("mqtt_ocsp_requests_total "), 2);
    b.stop().await;
}

#[tokio::test]
async fn certificate_verification_false_checks_no_revocation() {
    if !require_program("openssl") {
        return;
    }
    // The responder would say `revoked`, but nobody asks it.
    let WithResponder {
        b,
        dir: _dir,
        _responder,
    } = with_openssl_responder(Mtls::default()).await;
    b.assert_logs_in_as(&b.pki.revoked.clone(), "revoked").await;
    assert!(
        !b.metrics().contains("mqtt_ocsp"),
        "no OCSP checks or metrics with certificateVerification: false"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_responder_that_signs_without_authority_is_not_trusted() {
    if !require_program("openssl") {
        return;
    }
    // openssl signs with bob's certificate, which lacks the OCSP-signing usage.
    let pki = pki_with_responder_port(free_port());
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();
    let mut args = pki.ocsp_responder_args(dir.path()).unwrap();
    for (flag, file) in [("-rsigner", "bob.pem"), ("-rkey", "bob.key")] {
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1] = dir.path().join(file).to_str().unwrap().to_owned();
    }
    let _responder = OcspResponder::start(
        args,
        dir.path().join("ocsp.stderr"),
        Duration::from_secs(10),
    )
    .unwrap();
    for (mode, expected) in [
        (
            FailureMode::FailClosed,
            Outcome::ConnAck(ReasonCode::NotAuthorized),
        ),
        (FailureMode::FailOpen, Outcome::ConnAck(ReasonCode::Success)),
    ] {
        let b = MtlsBroker::start(
            pki.clone(),
            Mtls {
                ocsp: ocsp(mode, 5_000, 600_000),
                ..Mtls::default()
            },
        )
        .await;
        assert_eq!(
            b.tls_outcome(Some(&pki.alice), V5).await,
            expected,
            "{mode:?}"
        );
        b.stop().await;
    }
}

// ---- faults openssl cannot make ----

/// A responder that accepts connections and never answers.
async fn hanging_responder() -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

/// A responder that answers every request with HTTP 200 and bytes that are not OCSP.
async fn garbage_responder() -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                let body = b"this is not an OCSP response";
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/ocsp-response\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body).await;
            });
        }
    });
    (port, task)
}

/// Connects alice under both failure modes with a responder on `port` and checks the outcomes.
async fn assert_failure_modes(port: u16, timeout_ms: u64, what: &str) {
    let pki = pki_with_responder_port(port);
    for (mode, expected, outcome_metric) in [
        (
            FailureMode::FailClosed,
            Outcome::ConnAck(ReasonCode::NotAuthorized),
            "failed_closed",
        ),
        (
            FailureMode::FailOpen,
            Outcome::ConnAck(ReasonCode::Success),
            "failed_open",
        ),
    ] {
        let b = MtlsBroker::start(
            pki.clone(),
            Mtls {
                ocsp: ocsp(mode, timeout_ms, 600_000),
                ..Mtls::default()
            },
        )
        .await;
        assert_eq!(
            b.tls_outcome(Some(&pki.alice), V5).await,
            expected,
            "{what}, {mode:?}"
        );
        assert_eq!(
            b.metric(&format!(
                "mqtt_ocsp_checks_total{{outcome=\"{outcome_metric}\"}} "
            )),
            1,
            "{what}, {mode:?}"
        );
        // Failures are not cached: the next connection asks again.
        let _ = b.tls_outcome(Some(&pki.alice), V5).await;
        assert_eq!(b.metric("mqtt_ocsp_requests_total "), 2, "{what}, {mode:?}");
        b.stop().await;
    }
}

#[tokio::test]
async fn a_hanging_responder_times_out_into_the_failure_mode() {
    let (port, task) = hanging_responder().await;
    let started = std::time::Instant::now();
    assert_failure_modes(port, 300, "hanging responder").await;
    // Four checks of 300 ms each, not four of the default 5 s.
    assert!(started.elapsed() < Duration::from_secs(4));
    task.abort();
}

#[tokio::test]
async fn a_refused_connection_or_a_garbage_answer_follows_the_failure_mode() {
    assert_failure_modes(free_port(), 2_000, "nothing listening").await;
    let (port, task) = garbage_responder().await;
    assert_failure_modes(port, 2_000, "garbage answer").await;
    task.abort();
}

/// Answers every request on `listener` with HTTP `head` (status line and headers, without the
/// blank line) and `body`.
fn fixed_responder(listener: TcpListener, head: String, body: Vec<u8>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let head = head.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                let head = format!(
                    "{head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    })
}

#[tokio::test]
async fn a_replayed_good_answer_from_before_the_revocation_does_not_let_the_revoked_client_in() {
    if !require_program("openssl") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pki = pki_with_responder_port(listener.local_addr().unwrap().port());
    // A genuine `good` for the revoked certificate, from an hour ago, echoing no nonce.
    let replayed = pki
        .ocsp_answer_from_before_revocation("revoked", Duration::from_secs(60 * 60))
        .unwrap();
    let task = fixed_responder(
        listener,
        "HTTP/1.1 200 OK\r\ncontent-type: application/ocsp-response".to_owned(),
        replayed,
    );
    let b = MtlsBroker::start(
        pki.clone(),
        Mtls {
            ocsp: ocsp(FailureMode::FailClosed, 5_000, 600_000),
            ..Mtls::default()
        },
    )
    .await;
    for _ in 0..2 {
        assert_eq!(
            b.tls_outcome(Some(&pki.revoked), V5).await,
            Outcome::ConnAck(ReasonCode::NotAuthorized)
        );
    }
    assert_eq!(
        b.metric("mqtt_ocsp_checks_total{outcome=\"failed_closed\"} "),
        2
    );
    // Not cached: the second connection asked again.
    assert_eq!(b.metric("mqtt_ocsp_requests_total "), 2);
    b.stop().await;
    task.abort();
}

#[tokio::test]
async fn a_responder_redirecting_to_another_is_not_followed() {
    if !require_program("openssl") {
        return;
    }
    // The certificates name a responder that redirects (307 keeps the POST and its body) to the
    // real one, which would answer `good`.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pki = pki_with_responder_port(listener.local_addr().unwrap().port());
    let real_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();
    let mut args = pki.ocsp_responder_args(dir.path()).unwrap();
    let at = args.iter().position(|arg| arg == "-port").unwrap();
    args[at + 1] = real_port.to_string();
    let _responder = OcspResponder::start(
        args,
        dir.path().join("ocsp.stderr"),
        Duration::from_secs(10),
    )
    .unwrap();
    let task = fixed_responder(
        listener,
        format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{real_port}/"),
        Vec::new(),
    );
    let b = MtlsBroker::start(
        pki.clone(),
        Mtls {
            ocsp: ocsp(FailureMode::FailClosed, 5_000, 600_000),
            ..Mtls::default()
        },
    )
    .await;
    assert_eq!(
        b.tls_outcome(Some(&pki.alice), V5).await,
        Outcome::ConnAck(ReasonCode::NotAuthorized)
    );
    assert_eq!(
        b.metric("mqtt_ocsp_checks_total{outcome=\"failed_closed\"} "),
        1
    );
    b.stop().await;
    task.abort();
}

// ---- an outside client ----

#[tokio::test]
async fn mosquitto_clients_log_in_with_their_certificates() {
    if !require_program("mosquitto_pub") || !require_program("openssl") {
        return;
    }
    let WithResponder { b, dir, _responder } = with_openssl_responder(Mtls {
        required: true,
        ocsp: ocsp(FailureMode::FailClosed, 5_000, 600_000),
        ..Mtls::default()
    })
    .await;
    let port = b.tls.port().to_string();
    // tokio's Command: the broker runs on this test's runtime and must keep running meanwhile.
    let pub_as = |who: &str, topic: &str| {
        let d = dir.path();
        tokio::process::Command::new("mosquitto_pub")
            .args(["-h", "localhost", "-p", &port, "-V", "mqttv5", "-q", "1"])
            .args(["-t", topic, "-m", "hello", "-i", who])
            .arg("--cafile")
            .arg(d.join("ca.pem"))
            .arg("--cert")
            .arg(d.join(format!("{who}.pem")))
            .arg("--key")
            .arg(d.join(format!("{who}.key")))
            .output()
    };
    let out = pub_as("alice", "devices/alice/t").await.unwrap();
    assert!(out.status.success(), "alice: {out:?}");
    // Without a certificate, `required` fails the handshake.
    let out = tokio::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "localhost",
            "-p",
            &port,
            "-t",
            "devices/dave/t",
            "-m",
            "x",
        ])
        .args(["-u", "dave", "-P", "secret", "--cafile"])
        .arg(dir.path().join("ca.pem"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "no certificate: {out:?}");
    let out = pub_as("revoked", "devices/revoked/t").await.unwrap();
    assert!(!out.status.success(), "revoked: {out:?}");
    b.stop().await;
}

#[tokio::test]
async fn a_certificate_revoked_while_connected_ends_the_connection() {
    if !require_program("openssl") {
        return;
    }
    let WithResponder { b, dir, _responder } = with_openssl_responder(Mtls {
        ocsp: ocsp(FailureMode::FailClosed, 5_000, 500),
        ..Mtls::default()
    })
    .await;
    let alice = b.pki.alice.clone();
    let (outcome, mqtt) = b.try_tls(Some(&alice), V5, None).await;
    assert_eq!(outcome, Outcome::ConnAck(ReasonCode::Success));
    let mut mqtt = mqtt.unwrap();
    // Still good after its cached answer ran out: it stays.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    mqtt.0.send(Packet::PingReq).await;
    assert_eq!(mqtt.0.recv().await, Some(Packet::PingResp));
    // The CA revokes alice (the responder re-reads its database when it changes).
    let index = dir.path().join("index.txt");
    let text = std::fs::read_to_string(&index).unwrap();
    let revoked: String = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            if line.ends_with("/CN=alice") && fields.len() == 6 {
                format!(
                    "R\t{}\t260101000000Z\t{}\t{}\t{}\n",
                    fields[1], fields[3], fields[4], fields[5]
                )
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_ne!(revoked, text, "alice's line was found");
    std::fs::write(&index, revoked).unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), mqtt.0.expect_close())
        .await
        .expect("disconnected once the next check finds it revoked");
    assert_eq!(
        closed,
        vec![Packet::Disconnect(codec::Disconnect::new(
            ReasonCode::NotAuthorized
        ))]
    );
    b.stop().await;
}
