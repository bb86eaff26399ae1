//! Shared set-up for the black-box tests: a broker on an ephemeral loopback port with a
//! test-controlled shutdown, and a raw MQTT client built on the codec for byte-exact checks.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use codec::{ConnAck, Connect, MqttString, Packet, ProtocolVersion};
use server::{Broker, BrokerOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for something it expects before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// A broker's serve loop in a task of its own, until [`Serving::stop`].
pub struct Serving {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Serving {
    /// Spawns `serve`, given the future that completes when the broker is to shut down (for
    /// `Broker::run` or `Broker::serve`).
    pub fn spawn<S, F>(serve: S) -> Self
    where
        S: FnOnce(Pin<Box<dyn Future<Output = ()> + Send>>) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let (shutdown, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(Box::pin(async move {
            let _ = rx.await;
        })));
        Self { shutdown, task }
    }

    /// Shuts the broker down and waits until it has finished.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

pub struct TestBroker {
    pub addr: SocketAddr,
    /// The broker itself, for calls such as `enforce_access`.
    pub broker: Broker,
    serving: Serving,
}

impl TestBroker {
    pub async fn start() -> Self {
        Self::with_options(BrokerOptions {
            sys_interval: None,
            ..BrokerOptions::default()
        })
        .await
    }

    pub async fn with_options(options: BrokerOptions) -> Self {
        Self::with_broker(Broker::new(options)).await
    }

    pub async fn with_broker(broker: Broker) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = broker.clone();
        let serving = Serving::spawn(|shutdown| async move {
            served.run(vec![listener], shutdown).await;
        });
        Self {
            addr,
            broker,
            serving,
        }
    }

    /// Shuts the broker down and waits until it has finished.
    pub async fn stop(self) {
        self.serving.stop().await;
    }
}

/// A client that speaks MQTT through the codec, for exact and malformed exchanges; over TCP
/// unless made [`Raw::over`] another stream (TLS, for example).
pub struct Raw<S = TcpStream> {
    pub stream: S,
    buf: BytesMut,
    pub version: ProtocolVersion,
}

impl Raw {
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: BytesMut::new(),
            version,
        }
    }

    /// Opens a connection and completes CONNECT/CONNACK; `edit` adjusts the CONNECT.
    pub async fn connect_with(
        addr: SocketAddr,
        version: ProtocolVersion,
        client_id: &str,
        edit: impl FnOnce(&mut Connect),
    ) -> (Self, ConnAck) {
        let mut raw = Self::open(addr, version).await;
        let mut connect = Connect::new(version, MqttString::try_from(client_id).unwrap(), 60);
        edit(&mut connect);
        raw.send(Packet::Connect(Box::new(connect))).await;
        match raw.recv().await {
            Some(Packet::ConnAck(ack)) => (raw, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn connect(addr: SocketAddr, version: ProtocolVersion, client_id: &str) -> Self {
        let (raw, ack) = Self::connect_with(addr, version, client_id, |_| {}).await;
        assert!(ack.reason_code.is_success(), "{ack:?}");
        raw
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    /// A client on an already open stream.
    pub fn over(stream: S, version: ProtocolVersion) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            version,
        }
    }

    pub async fn send(&mut self, packet: Packet) {
        assert!(self.try_send(packet).await, "write failed");
    }

    /// Sends and flushes; false if the stream failed (the broker closed it).
    pub async fn try_send(&mut self, packet: Packet) -> bool {
        let mut out = BytesMut::new();
        packet.encode(self.version, &mut out).unwrap();
        self.stream.write_all(&out).await.is_ok() && self.stream.flush().await.is_ok()
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next packet, or `None` when the broker closed the connection. Fails after
    /// [`WAIT`].
    pub async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(WAIT)
            .await
            .expect("timed out waiting for a packet")
    }

    /// `Err(())` if nothing arrived within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Result<Option<Packet>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(p) = codec::decode(&mut self.buf, self.version, u32::MAX).unwrap() {
                return Ok(Some(p));
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Asserts that nothing arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(p) = self.recv_within(wait).await {
            panic!("expected nothing, got {p:?}");
        }
    }

    /// Asserts that the broker closes the connection (after any packets it sends first, which
    /// are returned).
    pub async fn expect_close(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        while let Some(p) = self.recv().await {
            seen.push(p);
        }
        seen
    }
}

#[allow(unused_imports)] // not every test file needs it
pub use xtask::testing::require_program;

/// The value of the counter or gauge `name` (with its labels, if any) in the broker's
/// `/metrics` text.
pub fn metric(broker: &Broker, name: &str) -> u64 {
    let text = broker.http_status().metrics();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}
