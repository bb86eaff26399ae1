//! The MQTT broker: sessions, routing and the retained store.
//!
//! [`Broker`] holds the shared state; [`Broker::serve`] serves `transport` listeners (TCP, TLS,
//! WebSocket) until a shutdown future completes, [`Broker::run`] does the same for plain TCP
//! listeners, and [`Broker::serve_connection`] serves one already-established byte stream.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let broker = server::Broker::new(server::BrokerOptions::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:1883").await?;
//! broker.run(vec![listener], async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

#[doc(hidden)]
pub mod bench_api;
mod broker;
mod client_auth;
mod connection;
mod escape;
mod index;
mod keep_alive;
mod lifecycle;
mod login_throttle;
mod message;
mod metrics;
mod options;
mod persist;
mod rate;
mod retained;
mod revocation;
mod session;
mod sys;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use auth::{AccessControl, AllowAll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

pub use client_auth::{ClientAuth, ClientAuthSettings, ClientAuthStats, OCSP_TARGET, OcspSettings};
pub use options::BrokerOptions;
pub use persist::Storage;

/// A broker: its shared state and the way to serve connections.
#[derive(Debug, Clone)]
pub struct Broker {
    shared: Arc<broker::Shared>,
    /// Sessions recovered from the store, whose clocks start when serving does.
    offline: Arc<std::sync::Mutex<Vec<lifecycle::Offline>>>,
    shutdown_tx: Arc<watch::Sender<bool>>,
    connections: Arc<metrics::Connections>,
    serving: Arc<std::sync::atomic::AtomicBool>,
}

impl Broker {
    /// A broker that lets everyone in and allows everything (see [`auth::AllowAll`]).
    pub fn new(options: BrokerOptions) -> Self {
        Self::with_access(options, Arc::new(AllowAll))
    }

    /// A broker that asks `access` about every connection, publish and subscribe.
    pub fn with_access(options: BrokerOptions, access: Arc<dyn AccessControl>) -> Self {
        Self::builder(options).access(access).build()
    }

    /// A broker with more than options: access control, client certificates.
    pub fn builder(options: BrokerOptions) -> BrokerBuilder {
        BrokerBuilder {
            options,
            access: Arc::new(AllowAll),
            client_auth: None,
            store: None,
        }
    }

    /// What `GET /health` and `GET /metrics` report, for [`transport::Listener::with_http_status`]:
    /// healthy until shutdown begins; the broker's counters and connections by transport.
    pub fn http_status(&self) -> Arc<dyn transport::HttpStatus> {
        Arc::new(metrics::Status {
            shared: self.shared.clone(),
            connections: self.connections.clone(),
            serving: self.serving.clone(),
        })
    }

    /// Serves one accepted connection until it ends or the broker shuts down. Its CONNECT must
    /// arrive within `BrokerOptions::connect_timeout` from now. The stream counts as plaintext:
    /// it carries no client certificate.
    pub async fn serve_connection<S>(&self, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let deadline = tokio::time::Instant::now() + self.shared.options().connect_timeout;
        self.serve_connection_until(stream, peer, Vec::new(), deadline)
            .await;
    }

    /// Like [`Broker::serve_connection`], with the CONNECT deadline given: a connection that
    /// spent part of its time in a TLS or WebSocket handshake has only the rest for CONNECT.
    async fn serve_connection_until<S>(
        &self,
        stream: S,
        peer: SocketAddr,
        certificates: Vec<transport::rustls::pki_types::CertificateDer<'static>>,
        deadline: tokio::time::Instant,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let setup = Box::pin(connection::setup(
            stream,
            peer,
            certificates,
            self.shared.clone(),
            self.shutdown_tx.subscribe(),
            deadline,
        ));
        // A `let` statement frees the finished setup future before the connection runs.
        let Some(mut running) = setup.await else {
            return;
        };
        running.serve().await;
    }

    /// Applies a change of the access rules (a users file reload) to what exists: every session
    /// whose owner was removed or deactivated ends, and its client, if connected, is told to go
    /// (v5 DISCONNECT 0x87). Returns how many clients were told.
    pub fn enforce_access(&self) -> usize {
        lifecycle::enforce_access(&self.shared)
    }

    /// Accepts connections on every listener until `shutdown` completes, then tells every
    /// client the server is going away (v5 DISCONNECT 0x8B) and waits for their connections
    /// to close, at most `BrokerOptions::shutdown_grace`.
    pub async fn run(&self, listeners: Vec<TcpListener>, shutdown: impl Future<Output = ()>) {
        let timeout = self.shared.options().connect_timeout;
        let listeners = listeners
            .into_iter()
            .map(|tcp| transport::Listener::new(tcp, transport::Protocol::Tcp, timeout))
            .collect();
        self.serve(listeners, shutdown).await;
    }

    /// Like [`Broker::run`], for listeners of any transport. The accept loop only accepts: each
    /// connection's TLS and WebSocket handshakes run in its own task, under the listener's
    /// handshake timeout.
    pub async fn serve(
        &self,
        listeners: Vec<transport::Listener>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut connections = JoinSet::new();
        let mut accepts = JoinSet::new();
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(64);
        for listener in listeners {
            let conn_tx = conn_tx.clone();
            accepts.spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok(accepted) => {
                            if conn_tx.send(accepted).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        }
        drop(conn_tx);
        let offline: Vec<_> = std::mem::take(
            &mut *self
                .offline
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for session in offline {
            tokio::spawn(lifecycle::run_offline(self.shared.clone(), session));
        }
        let sys = self.shared.options().sys_interval.map(|every| {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    sys::publish(&shared);
                }
            })
        });
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = conn_rx.recv() => {
                    let Some(accepted) = accepted else { break };
                    if let Some(limit) = self.shared.connection_rate()
                        && !limit.allow(accepted.remote().ip(), std::time::Instant::now())
                    {
                        // Closed before any handshake; debug, so a flood cannot flood the log.
                        debug!(peer = %accepted.remote(), "connection rate per address exceeded; closed");
                        self.shared.stats().connections_rate_limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    connections.spawn(self.connection_task(accepted));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        accepts.abort_all();
        if let Some(sys) = sys {
            sys.abort();
        }
        self.shut_down(connections).await;
    }

    /// After the accept loop: tells every client the server is going away (v5 DISCONNECT
    /// 0x8B), waits for their connections to close (at most `BrokerOptions::shutdown_grace`),
    /// then makes everything submitted to the store durable.
    async fn shut_down(&self, mut connections: JoinSet<()>) {
        info!(connections = connections.len(), "shutting down");
        self.serving
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // `send_replace`: `send` stores nothing when no receiver is left, and idle connections
        // hold none; a connection still in its setup must see the flag.
        self.shutdown_tx.send_replace(true);
        // Connections wait on their session's eviction channel, not on `shutdown_tx` (which
        // would cost every idle connection a stored future); one attaching after this loop sees
        // the flag at the end of `connection::setup`.
        for session in self.shared.all_sessions() {
            session.lock().evict(session::Eviction::Shutdown);
        }
        let grace = self.shared.options().shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                left = connections.len(),
                "connections still open after the grace period; closing them"
            );
            connections.abort_all();
        }
        if self.shared.persist().is_on() {
            // Everything submitted so far reaches the disk before the process ends.
            let persist = self.shared.persist().clone();
            let _ = tokio::task::spawn_blocking(move || persist.close()).await;
        }
        debug!("shutdown complete");
    }

    /// The task of one accepted connection: transport handshakes, CONNECT, then the main loop.
    ///
    /// Everything up to the CONNACK is one boxed future, freed when the connection starts
    /// running, so that an idle connection's task holds only what it needs to wait for its
    /// client (see `connection::run`).
    fn connection_task(
        &self,
        accepted: transport::Accepted,
    ) -> impl Future<Output = ()> + Send + use<> {
        let broker = self.clone();
        let setup = Box::pin(async move { broker.handshake_and_setup(accepted).await });
        async move {
            // A `let` statement, so the finished setup future is freed before the connection
            // runs (an `if let` would keep it for the whole block).
            let Some(mut running) = setup.await else {
                return;
            };
            running.serve().await;
        }
    }

    /// Runs the transport handshakes of one connection, then reads its CONNECT.
    async fn handshake_and_setup(
        &self,
        accepted: transport::Accepted,
    ) -> Option<Box<connection::Running<transport::Stream>>> {
        let remote = accepted.remote();
        let kind = accepted.kind();
        // One budget from accept to CONNECT, handshakes included.
        let deadline = tokio::time::Instant::now() + self.shared.options().connect_timeout;
        let mut shutdown = self.shutdown_tx.subscribe();
        let handshake = tokio::select! {
            handshake = accepted.handshake() => handshake,
            _ = shutdown.wait_for(|down| *down) => return None,
        };
        match handshake {
            Ok(Some((stream, peer))) => {
                let open = self.connections.open(peer.kind);
                let mut running = connection::setup(
                    stream,
                    peer.remote,
                    peer.client_certificates,
                    self.shared.clone(),
                    shutdown,
                    deadline,
                )
                .await?;
                running.open = Some(open);
                Some(running)
            }
            // An HTTP request (`/health`, `/metrics`), answered.
            Ok(None) => None,
            // The peer's doing: info at most, so a hostile client cannot flood the log.
            Err(e @ transport::HandshakeError::NoMqttSubprotocol) => {
                info!(peer = %remote, transport = %kind, error = %e, "connection refused");
                None
            }
            Err(e) => {
                debug!(peer = %remote, transport = %kind, error = %e, "handshake failed");
                None
            }
        }
    }
}

/// Builds a [`Broker`] from its parts; see [`Broker::builder`].
pub struct BrokerBuilder {
    options: BrokerOptions,
    access: Arc<dyn AccessControl>,
    client_auth: Option<Arc<ClientAuth>>,
    store: Option<(Arc<dyn Storage>, store::Recovered)>,
}

impl std::fmt::Debug for BrokerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("options", &self.options)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl BrokerBuilder {
    /// Asks `access` about every connection, publish and subscribe (default: allow all).
    pub fn access(mut self, access: Arc<dyn AccessControl>) -> Self {
        self.access = access;
        self
    }

    /// Client certificates: who they log in as, OCSP, `required` (default: none requested).
    /// Give the TLS listeners `client_auth.verifier()` as well.
    pub fn client_auth(mut self, client_auth: Arc<ClientAuth>) -> Self {
        self.client_auth = Some(client_auth);
        self
    }

    /// Keeps persistent sessions, their queues and in-flight messages, and retained messages in
    /// `store` (opened with [`store::Store::open`]), starting from what it `recovered`.
    /// Acknowledgements wait for their changes to be durable, per the store's policy.
    pub fn store(self, store: store::Store, recovered: store::Recovered) -> Self {
        self.storage(Arc::new(store), recovered)
    }

    /// Like [`BrokerBuilder::store`], with any [`Storage`] implementation.
    pub fn storage(mut self, storage: Arc<dyn Storage>, recovered: store::Recovered) -> Self {
        self.store = Some((storage, recovered));
        self
    }

    /// The broker.
    pub fn build(self) -> Broker {
        let (shutdown_tx, _) = watch::channel(false);
        let (persist, recovered) = match self.store {
            Some((store, recovered)) => (persist::Persist::new(store), Some(recovered)),
            None => (persist::Persist::default(), None),
        };
        let shared = broker::Shared::new(self.options, self.access, self.client_auth, persist);
        let offline = recovered.map_or_else(Vec::new, |r| lifecycle::restore(&shared, r));
        Broker {
            shared: Arc::new(shared),
            offline: Arc::new(std::sync::Mutex::new(offline)),
            shutdown_tx: Arc::new(shutdown_tx),
            connections: Arc::default(),
            serving: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }
}
