//! One client connection: the CONNECT handshake, then a loop that reads packets, acts on them,
//! and writes what the session has queued, until the connection ends.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use auth::{ConnectRequest, Identity, PublishAction, Refusal};
use bytes::{Buf, BytesMut};
use codec::{
    ConnAck, Connect, DecodeError, Disconnect, LastWill, MqttString, Packet, PacketId,
    ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, PublishProperties, QoS, QosPid,
    ReasonCode, RetainHandling, SubAck, Subscribe, TopicName, UnsubAck, Unsubscribe,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{oneshot, watch};
use tracing::{Instrument, debug, info, info_span, warn};
use transport::rustls::pki_types::CertificateDer;

use crate::broker::Shared;
use crate::index::Subscriber;
use crate::message::{Delivery, Message};
use crate::session::{Awaiting, Eviction, Expiry, Outbound, Session, SessionState, Subscription};

/// Bytes encoded into the write buffer before it is written out, so a long queue does not
/// build one huge buffer.
const WRITE_CHUNK: usize = 64 * 1024;
/// Room past `WRITE_CHUNK` for the packet that crosses it.
const WRITE_SLACK: usize = 4 * 1024;
/// Read buffers larger than this are released when they empty.
const READ_CHUNK: usize = 16 * 1024;
/// Packets a connection holds for the durable store at most before it stops reading from its
/// client and taking messages from its session's queue.
const HELD_LIMIT: usize = 1024;

/// How a connection ended; decides what happens to the will and the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The client sent DISCONNECT 0x00: discard the will.
    Normal,
    /// The client sent DISCONNECT 0x04, or the connection failed: publish the will.
    WithWill,
    /// Another connection took the session.
    TakenOver,
    /// The broker is shutting down.
    Shutdown,
}

/// A connection past its CONNECT: what stays in memory while the client is connected.
pub(crate) struct Running<S> {
    conn: Connection,
    stream: S,
    span: tracing::Span,
    /// Counts the connection in the metrics while it lives.
    pub open: Option<crate::metrics::OpenConnection>,
}

/// Reads the CONNECT, authenticates the client, attaches its session and queues the CONNACK.
/// `None` when the connection ended here: refused (and told so), failed, or the broker is
/// shutting down. Callers box this future: its state (authentication, CONNACK, the CONNECT
/// deadline) is large and needed only once, so it must not stay part of every connection's
/// task (see [`run`]).
pub(crate) async fn setup<S>(
    mut stream: S,
    peer: SocketAddr,
    certificates: Vec<CertificateDer<'static>>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    connect_deadline: tokio::time::Instant,
) -> Option<Box<Running<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = info_span!("conn", %peer, client_id = tracing::field::Empty);
    let conn = establish_stream(&mut stream, peer, &certificates, shared, connect_deadline)
        .instrument(span.clone())
        .await;
    let Some(mut conn) = conn else {
        close(&mut stream).instrument(span).await;
        return None;
    };
    // The broker tells attached connections about a shutdown through their session (see
    // `Broker::serve`); one that attached after that sees the flag here.
    if *shutdown.borrow() {
        let _enter = span.enter();
        conn.send_disconnect(ReasonCode::ServerShuttingDown);
        drop(_enter);
        let _ = conn.flush(&mut stream).instrument(span.clone()).await;
        span.in_scope(|| conn.finish(Close::Shutdown));
        close(&mut stream).instrument(span).await;
        return None;
    }
    Some(Box::new(Running {
        conn,
        stream,
        span,
        open: None,
    }))
}

impl<S> Running<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Serves a connection [`setup`] accepted until it closes. Never returns an error: every
    /// failure ends this connection only, and is logged here.
    ///
    /// This future is the state of an idle connection's task, so it is kept small: it borrows
    /// the boxed connection, and the wait stores no futures of its own (see
    /// `Connection::poll_wait`).
    pub(crate) async fn serve(&mut self) {
        let Running {
            conn, stream, span, ..
        } = self;
        let mut work = std::pin::pin!(async {
            let end = conn.run(stream).await;
            conn.finish(end);
            Box::pin(close(stream)).await;
        });
        // The span is entered for each poll (as `Instrument` does) without a second copy of it.
        std::future::poll_fn(|cx| {
            let _entered = span.enter();
            work.as_mut().poll(cx)
        })
        .await
    }
}

/// Closes politely (TCP FIN, TLS close_notify, WebSocket Close frame) so clients see a clean
/// end rather than a reset; a peer that does not read gets a second at most.
async fn close<S>(stream: &mut S)
where
    S: AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_GRACE, stream.shutdown()).await;
}

/// How long closing a connection may wait for the peer.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Reads the CONNECT within the deadline and establishes the connection; refusals are answered
/// here.
async fn establish_stream<S>(
    stream: &mut S,
    peer: SocketAddr,
    certificates: &[CertificateDer<'static>],
    shared: Arc<Shared>,
    connect_deadline: tokio::time::Instant,
) -> Option<Connection>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut rbuf = BytesMut::with_capacity(1024);
    let connect = tokio::time::timeout_at(
        connect_deadline,
        read_connect(stream, &mut rbuf, shared.options.max_packet_size.get()),
    )
    .await;
    let connect = match connect {
        Err(_) => {
            debug!("no CONNECT within the connect timeout; closing");
            return None;
        }
        Ok(Err(Some(e))) if e.is_connect_refusal() => {
            // [MQTT-3.1.2-2]: answer an unsupported level with a v3 CONNACK 0x01.
            debug!(error = %e, "refusing CONNECT");
            let mut out = BytesMut::new();
            let ack = ConnAck::new(ReasonCode::UnsupportedProtocolVersion, false);
            if ack.encode(&mut out, false).is_ok() {
                let _ = stream.write_all(&out).await;
            }
            return None;
        }
        Ok(Err(Some(e))) => {
            debug!(error = %e, "malformed first packet; closing");
            return None;
        }
        Ok(Err(None)) => return None,
        Ok(Ok(connect)) => connect,
    };
    let mut conn = Connection::establish(stream, peer, certificates, shared, connect).await?;
    // Packets already buffered behind the CONNECT are handled by the main loop first.
    if !rbuf.is_empty() {
        conn.rbuf = rbuf;
    }
    Some(conn)
}

/// Waits, at most `CONGESTION_WAIT`, until a congested subscriber's queue has drained below its
/// low-water mark. Publishers then read no faster than their subscribers take: TCP flow control
/// slows them instead of the broker dropping QoS 0 messages or queueing without end. A subscriber
/// that stays behind costs each publisher at most this wait per batch of packets read; its queue
/// limit applies as before.
async fn wait_for_space(session: &Session) {
    let space = session.space.notified();
    tokio::pin!(space);
    space.as_mut().enable();
    if session.lock().congested {
        let _ = tokio::time::timeout(CONGESTION_WAIT, space).await;
    }
}

/// Levels a topic name or filter may have at most (as EMQX's default `max_topic_levels`). Each
/// level of a subscription or retained topic is a node in a trie; without a limit one packet of
/// 64 KB of `/` would build tens of thousands of them.
pub(crate) const MAX_TOPIC_LEVELS: usize = 128;

fn too_many_levels(topic: &str) -> bool {
    topic.bytes().filter(|&b| b == b'/').count() >= MAX_TOPIC_LEVELS
}

/// The longest a publisher waits for a congested subscriber before reading on.
const CONGESTION_WAIT: Duration = Duration::from_millis(5);

/// Reads what the client sent into `rbuf`. With bytes of a partial packet already there it
/// reads straight into `rbuf`; with nothing there it reads into a small buffer on the stack
/// instead, so an idle connection holds no read buffer, then takes whatever else is ready
/// without waiting. Returns the bytes read; 0 is end of stream. Keeps nothing between polls
/// (the caller's task stays small; see [`run`]).
fn poll_read_more<S>(
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

/// Reads until a whole first packet is buffered. `Err(None)` is a closed or failed socket.
async fn read_connect<S>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    max: u32,
) -> Result<Box<Connect>, Option<DecodeError>>
where
    S: AsyncRead + Unpin,
{
    loop {
        match codec::decode(rbuf, ProtocolVersion::V5, max) {
            Ok(Some(Packet::Connect(c))) => return Ok(c),
            Ok(Some(other)) => {
                // [MQTT-3.1.0-1]: the first packet must be CONNECT.
                debug!(packet = ?other.packet_type(), "first packet is not CONNECT; closing");
                return Err(None);
            }
            Ok(None) => match stream.read_buf(rbuf).await {
                Ok(0) | Err(_) => return Err(None),
                Ok(_) => {}
            },
            Err(e) => return Err(Some(e)),
        }
    }
}

/// What ended a connection's wait (see `Connection::poll_wait`).
enum Woken {
    Evicted(Result<Eviction, oneshot::error::RecvError>),
    Read(std::io::Result<usize>),
    /// The client was silent past its keep-alive deadline.
    KeepAliveExpired,
    /// The session's queue gained messages.
    Queue,
    /// The store's durable ticket advanced.
    Durable,
}

/// Topic aliases of a v5 connection (§3.3.2.3.4).
#[derive(Default)]
struct Aliases {
    /// Set by the client's PUBLISH packets.
    inbound: HashMap<u16, TopicName>,
    /// Assigned by the broker to the topics it sends.
    outbound: HashMap<TopicName, u16>,
}

/// Waits for the durable store's ticket to advance. The wait is boxed and exists only while a
/// connection holds packets for the store, so an idle connection stores no future for it.
enum DurableWait {
    /// No store, or its sender is gone: nothing more becomes durable.
    Never,
    Idle(watch::Receiver<u64>),
    Waiting(Pin<Box<dyn Future<Output = Option<watch::Receiver<u64>>> + Send>>),
}

impl DurableWait {
    /// Drops a wait in progress (its receiver with it) for a fresh receiver.
    fn stop_waiting(&mut self, shared: &Shared) {
        if let DurableWait::Waiting(_) = self {
            *self = match &shared.persist {
                Some(p) => DurableWait::Idle(p.store.watch()),
                None => DurableWait::Never,
            };
        }
    }

    fn poll_advanced(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match std::mem::replace(self, DurableWait::Never) {
                DurableWait::Never => return Poll::Pending,
                DurableWait::Idle(mut rx) => {
                    *self = DurableWait::Waiting(Box::pin(async move {
                        rx.changed().await.ok().map(|()| rx)
                    }));
                }
                DurableWait::Waiting(mut wait) => match wait.as_mut().poll(cx) {
                    Poll::Ready(Some(rx)) => {
                        *self = DurableWait::Idle(rx);
                        return Poll::Ready(());
                    }
                    Poll::Ready(None) => return Poll::Pending,
                    Poll::Pending => {
                        *self = DurableWait::Waiting(wait);
                        return Poll::Pending;
                    }
                },
            }
        }
    }
}

/// A connection after a successful CONNECT.
struct Connection {
    shared: Arc<Shared>,
    session: Arc<Session>,
    /// The session generation this connection owns.
    generation: u64,
    version: ProtocolVersion,
    client_id: Arc<str>,
    identity: Arc<Identity>,
    /// How long the client may stay silent, in milliseconds (1.5 times its keep alive); the
    /// deadline is in the session, checked by `keep_alive`'s sweeper.
    keep_alive_ms: u64,
    /// Bytes were written since the stream was last flushed.
    unflushed: bool,
    /// When the client last took bytes (in `Shared::clock_ms` time).
    wrote_at_ms: u64,
    /// Reading is paused while too much is held for the store; the keep-alive deadline is not
    /// watched meanwhile.
    reading_paused: bool,
    will: Option<Box<LastWill>>,
    evict: oneshot::Receiver<Eviction>,
    /// The client's limits (v5 CONNECT properties).
    client_receive_maximum: u16,
    client_max_packet_size: u32,
    client_topic_alias_max: u16,
    /// Whether the session expiry started at 0, which DISCONNECT may not raise [MQTT-3.14.2-2].
    expiry_was_zero: bool,
    /// Topic aliases both ways, made when the client first uses or accepts one.
    aliases: Option<Box<Aliases>>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Packets waiting for a durable-store ticket (acknowledgements of changes not yet on disk),
    /// and every packet after them, in order.
    held: VecDeque<(u64, Packet)>,
    /// Tells when the store's durable ticket advances.
    durable: DurableWait,
    /// A subscriber this client's messages went to that is falling behind: before reading more,
    /// give it a moment to catch up.
    congested: Option<Arc<Session>>,
}

impl Connection {
    /// Authenticates, attaches the session and sends CONNACK. `None` means the connection was
    /// refused (and told so) or failed.
    async fn establish<S>(
        stream: &mut S,
        peer: SocketAddr,
        certificates: &[CertificateDer<'static>],
        shared: Arc<Shared>,
        connect: Box<Connect>,
    ) -> Option<Self>
    where
        S: AsyncWrite + Unpin,
    {
        let connect = *connect;
        let version = connect.protocol;
        let v5 = version.is_v5();
        let mut wbuf = BytesMut::new();
        let refuse = |code: ReasonCode, wbuf: &mut BytesMut| {
            let _ = ConnAck::new(code, false).encode(wbuf, v5);
        };

        if connect.properties.authentication_method.is_some() {
            // Enhanced authentication (§4.12) is not offered.
            refuse(ReasonCode::BadAuthenticationMethod, &mut wbuf);
            let _ = stream.write_all(&wbuf).await;
            return None;
        }

        let mut assigned = None;
        let client_id: Arc<str> = if connect.client_id.is_empty() {
            // [MQTT-3.1.3-8]: v3.1.1 assigns an identifier only with clean session; 3.1 never.
            if version == ProtocolVersion::V3_1
                || (version == ProtocolVersion::V3_1_1 && !connect.clean_start)
            {
                refuse(ReasonCode::ClientIdentifierNotValid, &mut wbuf);
                let _ = stream.write_all(&wbuf).await;
                return None;
            }
            let id = generate_client_id();
            assigned = Some(id.clone());
            Arc::from(id.as_str())
        } else {
            Arc::from(connect.client_id.as_str())
        };
        tracing::Span::current().record("client_id", &*client_id);

        // The client certificate first (its revocation check, the user it names), then the
        // credentials.
        let mut certificate_user = None;
        if let Some(client_auth) = &shared.client_auth {
            // Boxed: the OCSP check is a large future, and most connections skip it.
            match Box::pin(client_auth.admit(certificates)).await {
                Ok(verdict) => {
                    if verdict.credentials_required && connect.username.is_none() {
                        info!(
                            "mqtt.network.mtls.user is null: the certificate needs CONNECT credentials too; refusing"
                        );
                        shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                        refuse(ReasonCode::BadUserNameOrPassword, &mut wbuf);
                        let _ = stream.write_all(&wbuf).await;
                        return None;
                    }
                    certificate_user = verdict.user;
                }
                Err(code) => {
                    shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                    refuse(code, &mut wbuf);
                    let _ = stream.write_all(&wbuf).await;
                    return None;
                }
            }
        }

        // Password hashing is deliberately slow: verify off the async worker threads. Without a
        // password nothing is hashed, so the answer comes at once.
        let access = shared.access.clone();
        let (id, username, password) = (
            client_id.clone(),
            connect.username.clone(),
            connect.password.clone(),
        );
        let ask = move || {
            access.authenticate(&ConnectRequest {
                client_id: &id,
                username: username.as_deref(),
                password: password.as_deref(),
                peer,
                certificate_user: certificate_user.as_deref(),
            })
        };
        let verdict = if connect.password.is_some() {
            tokio::task::spawn_blocking(ask).await
        } else {
            Ok(ask())
        };
        let identity = match verdict {
            Ok(Ok(identity)) => {
                shared.failed_logins.succeeded(peer.ip());
                Arc::new(identity)
            }
            Ok(Err(refusal)) => {
                shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                let delay = shared.failed_logins.failed(peer.ip());
                warn!(user = ?connect.username.as_deref(), reason = %refusal, delay_ms = delay.as_millis() as u64, "authentication failed");
                // Repeated failures from one address wait longer and longer for their answer.
                tokio::time::sleep(delay).await;
                let code = match refusal {
                    Refusal::BadCredentials => ReasonCode::BadUserNameOrPassword,
                    Refusal::NotAuthorized => ReasonCode::NotAuthorized,
                };
                refuse(code, &mut wbuf);
                let _ = stream.write_all(&wbuf).await;
                return None;
            }
            Err(e) => {
                warn!(error = %e, "authentication task failed");
                refuse(ReasonCode::ServerUnavailable, &mut wbuf);
                let _ = stream.write_all(&wbuf).await;
                return None;
            }
        };
        if let Some(will) = &connect.will
            && too_many_levels(will.topic.as_str())
        {
            info!(topic = %will.topic, "will topic has more than {MAX_TOPIC_LEVELS} levels; refusing");
            refuse(ReasonCode::TopicNameInvalid, &mut wbuf);
            let _ = stream.write_all(&wbuf).await;
            return None;
        }
        if let Some(will) = &connect.will
            && !shared.access.may_publish(
                &identity,
                &client_id,
                will.topic.as_str(),
                publish_action(will.retain, will.payload.is_empty()),
            )
        {
            info!(user = ?identity.user, topic = %will.topic, "will topic not authorized; refusing");
            refuse(ReasonCode::NotAuthorized, &mut wbuf);
            let _ = stream.write_all(&wbuf).await;
            return None;
        }

        let options = &shared.options;
        let max_keep_alive = options.max_keep_alive.get();
        let keep_alive = if connect.keep_alive == 0 || connect.keep_alive > max_keep_alive {
            max_keep_alive
        } else {
            connect.keep_alive
        };

        let requested_expiry = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            u32::MAX
        };
        let mut expiry = match requested_expiry {
            0 => Expiry::OnClose,
            u32::MAX => Expiry::Never,
            secs => Expiry::After(Duration::from_secs(u64::from(secs))),
        };
        let mut granted_expiry = None;
        if let Some(cap) = options.max_session_expiry {
            let over = match expiry {
                Expiry::OnClose => false,
                Expiry::Never => true,
                Expiry::After(d) => d > cap,
            };
            if over {
                expiry = Expiry::After(cap);
                granted_expiry = Some(u32::try_from(cap.as_secs()).unwrap_or(u32::MAX - 1));
            }
        }

        let (evict_tx, evict) = oneshot::channel();
        let keep_alive_ms = u64::from(keep_alive) * 1500;
        crate::keep_alive::ensure_sweeper(&shared);
        let (session, generation, present, discarded) = attach(
            &shared,
            &client_id,
            connect.clean_start,
            expiry,
            evict_tx,
            keep_alive_ms,
        );
        // The session's own allocation of the id from now on: the store matches the changes of
        // one queue entry by it (see `store::Op`), and a resumed session has the id of the
        // connection that created it.
        let client_id = session.client_id.clone();
        session.lock().identity = Some(identity.clone());
        let mut connack_ticket = 0;
        if let Some(old) = discarded {
            remove_from_index(&shared, &old);
            connack_ticket = forget_stored(&shared, &old);
        }
        {
            // A persistent session is stored before its CONNACK; one that stopped being
            // persistent leaves the store.
            let will = connect.will.as_ref().map(will_record);
            let mut state = session.lock();
            let record = crate::persist::session_record(
                &client_id,
                &state,
                None,
                will,
                identity.user.as_deref(),
            );
            match (record, &shared.persist) {
                (Some(record), Some(persist)) => {
                    let mut ops = vec![store::Op::PutSession(Box::new(record))];
                    if !state.stored {
                        // A session that becomes persistent stores what it already holds.
                        crate::persist::adopt(persist, &client_id, &mut state, &mut ops);
                    }
                    state.stored = true;
                    connack_ticket = connack_ticket.max(shared.submit_all(ops));
                }
                (None, _) if state.stored => {
                    state.stored = false;
                    connack_ticket = shared.submit([store::Op::DeleteSession {
                        client_id: client_id.to_string(),
                    }]);
                }
                _ => {}
            }
        }
        if present {
            // The resumed subscriptions now read with this connection's identity.
            let subscriptions: Vec<Subscription> =
                session.lock().subscriptions.values().cloned().collect();
            let mut index = shared.index_write();
            for s in subscriptions {
                let subscriber = Subscriber {
                    session: session.clone(),
                    options: s.options,
                    id: s.id,
                    identity: identity.clone(),
                };
                index.insert(&s.filter, subscriber);
            }
        }

        let mut ack = ConnAck::new(ReasonCode::Success, present);
        if v5 {
            let p = &mut ack.properties;
            p.receive_maximum = Some(options.receive_maximum);
            p.maximum_packet_size = Some(options.max_packet_size);
            p.topic_alias_maximum = Some(options.max_topic_alias);
            p.assigned_client_identifier = assigned.and_then(|id| MqttString::try_from(id).ok());
            if keep_alive != connect.keep_alive {
                p.server_keep_alive = Some(keep_alive);
            }
            p.session_expiry_interval = granted_expiry;
        }
        info!(version = ?version, clean_start = connect.clean_start, session_present = present, "client connected");
        shared
            .stats
            .clients_connected
            .fetch_add(1, Ordering::Relaxed);
        shared.stats.clients_total.fetch_add(1, Ordering::Relaxed);

        let mut conn = Connection {
            shared: shared.clone(),
            session,
            generation,
            version,
            client_id,
            identity,
            keep_alive_ms,
            reading_paused: false,
            unflushed: false,
            wrote_at_ms: shared.clock_ms(),
            will: connect.will.map(Box::new),
            evict,
            client_receive_maximum: connect
                .properties
                .receive_maximum
                .map_or(u16::MAX, |r| r.get()),
            client_max_packet_size: connect
                .properties
                .maximum_packet_size
                .map_or(u32::MAX, |m| m.get()),
            client_topic_alias_max: connect.properties.topic_alias_maximum.unwrap_or(0),
            expiry_was_zero: requested_expiry == 0,
            aliases: None,
            rbuf: BytesMut::new(),
            wbuf,
            held: VecDeque::new(),
            durable: match &shared.persist {
                Some(p) => DurableWait::Idle(p.store.watch()),
                None => DurableWait::Never,
            },
            congested: None,
        };
        conn.send_when(connack_ticket, Packet::ConnAck(ack));
        conn.resend_inflight();
        Some(conn)
    }

    /// The main loop. Returns how the connection ended.
    async fn run<S>(&mut self, stream: &mut S) -> Close
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Packets already buffered behind the CONNECT. One place each flushes and waits, so
        // the task stores one future of each.
        let mut end = self.handle_buffered().err();
        loop {
            let mut more = false;
            if end.is_none() {
                self.release_held();
                more = self.drain_queue();
            }
            let flushed = std::future::poll_fn(|cx| self.poll_flush(stream, cx)).await;
            if let Some(close) = end {
                return close;
            }
            if flushed.is_err() {
                return Close::WithWill;
            }
            if more {
                tokio::task::yield_now().await;
                continue;
            }
            if let Some(slow) = self.congested.take() {
                // Boxed: a rare wait, whose timer and notification would otherwise enlarge
                // every connection's task.
                Box::pin(async move { wait_for_space(&slow).await }).await;
            }
            let woken = std::future::poll_fn(|cx| self.poll_wait(stream, cx)).await;
            end = match self.on_woken(woken) {
                Ok(end) => end,
                Err(close) => return close,
            };
        }
    }

    /// Acts on what ended a wait. `Ok(Some)` ends the connection after a last flush, `Err`
    /// at once.
    fn on_woken(&mut self, woken: Woken) -> Result<Option<Close>, Close> {
        Ok(match woken {
            Woken::Evicted(Ok(Eviction::AccessRevoked)) => {
                info!(user = ?self.identity.user, "user removed or deactivated; disconnecting");
                self.send_disconnect(ReasonCode::NotAuthorized);
                Some(Close::WithWill)
            }
            Woken::Evicted(Ok(Eviction::Shutdown)) => {
                self.send_disconnect(ReasonCode::ServerShuttingDown);
                Some(Close::Shutdown)
            }
            Woken::KeepAliveExpired => {
                info!("keep alive expired; closing");
                self.send_disconnect(ReasonCode::KeepAliveTimeout);
                Some(Close::WithWill)
            }
            Woken::Evicted(Ok(Eviction::TakenOver) | Err(_)) => {
                self.send_disconnect(ReasonCode::SessionTakenOver);
                Some(Close::TakenOver)
            }
            Woken::Read(Ok(0)) => {
                debug!("connection closed by peer without DISCONNECT");
                return Err(Close::WithWill);
            }
            Woken::Read(Err(e)) => {
                debug!(error = %e, "read failed");
                return Err(Close::WithWill);
            }
            Woken::Read(Ok(n)) => {
                self.shared
                    .stats
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
                self.heard_from_client();
                self.handle_buffered().err()
            }
            Woken::Queue | Woken::Durable => None,
        })
    }

    /// Waits for the next thing to do. Everything it waits on lives in the connection (the
    /// eviction channel, the keep-alive timer, the session's wake-up, the durable-ticket wait)
    /// or on the stack of this call, so an idle connection's task stores no futures.
    fn poll_wait<S>(&mut self, stream: &mut S, cx: &mut Context<'_>) -> Poll<Woken>
    where
        S: AsyncRead + Unpin,
    {
        if let Poll::Ready(eviction) = Pin::new(&mut self.evict).poll(cx) {
            return Poll::Ready(Woken::Evicted(eviction));
        }
        if self.held.is_empty() {
            // Nothing waits for the store: no boxed wait is kept for it.
            self.durable.stop_waiting(&self.shared);
        } else if self.durable.poll_advanced(cx).is_ready() {
            return Poll::Ready(Woken::Durable);
        }
        // With too much held for the store, stop reading: the client waits, memory does not
        // grow.
        let paused = self.held.len() >= HELD_LIMIT;
        if paused != self.reading_paused {
            self.reading_paused = paused;
            if paused {
                self.session.keep_alive.stop(self.generation);
            } else {
                self.heard_from_client();
            }
        }
        if !paused && let Poll::Ready(read) = poll_read_more(stream, &mut self.rbuf, cx) {
            return Poll::Ready(Woken::Read(read));
        }
        // After the read: what the client sent counts before the deadline is judged.
        if self
            .session
            .keep_alive
            .take_overdue(self.generation, self.shared.clock_ms())
        {
            return Poll::Ready(Woken::KeepAliveExpired);
        }
        if self.session.wake.poll(cx).is_ready() {
            return Poll::Ready(Woken::Queue);
        }
        Poll::Pending
    }

    /// Moves the keep-alive deadline to `keep_alive_ms` from now.
    fn heard_from_client(&self) {
        let deadline = self.shared.clock_ms().saturating_add(self.keep_alive_ms);
        self.session.keep_alive.moved(self.generation, deadline);
    }

    fn aliases(&mut self) -> &mut Aliases {
        self.aliases.get_or_insert_default()
    }

    /// Decodes and handles every whole packet in the read buffer.
    fn handle_buffered(&mut self) -> Result<(), Close> {
        loop {
            let max = self.shared.options.max_packet_size.get();
            match codec::decode(&mut self.rbuf, self.version, max) {
                Ok(Some(packet)) => self.handle(packet)?,
                Ok(None) => break,
                Err(e) => {
                    info!(error = %e, "malformed packet; closing");
                    self.send_disconnect(ReasonCode::from(e));
                    return Err(Close::WithWill);
                }
            }
        }
        if self.rbuf.is_empty() {
            // Nothing partial is waiting: no buffer is held until more arrives (see
            // `read_more`), which keeps idle connections small.
            self.rbuf = BytesMut::new();
        }
        Ok(())
    }

    /// Writes out the write buffer, flushes the stream and releases the buffer: an idle
    /// connection holds no write buffer.
    async fn flush<S>(&mut self, stream: &mut S) -> std::io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        // Polled directly rather than through `write_all`, whose future would be stored in
        // every connection's task.
        std::future::poll_fn(|cx| self.poll_flush(stream, cx)).await
    }

    fn poll_flush<S>(&mut self, stream: &mut S, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>
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
                .stats
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

    /// Sends a packet after those held (see [`Connection::send_when`]).
    fn send(&mut self, packet: Packet) {
        self.send_when(0, packet);
    }

    /// Sends a packet once `ticket` is durable in the store, and after every packet sent before
    /// it: acknowledgements go out only for changes on disk, and in order.
    fn send_when(&mut self, ticket: u64, packet: Packet) {
        if self.held.is_empty() && (ticket == 0 || ticket <= self.shared.durable()) {
            self.encode(&packet);
        } else {
            self.held.push_back((ticket, packet));
        }
    }

    /// Moves held packets whose tickets are durable into the write buffer.
    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let durable = self.shared.durable();
        while let Some((ticket, _)) = self.held.front() {
            if *ticket > durable {
                break;
            }
            if let Some((_, packet)) = self.held.pop_front() {
                self.encode(&packet);
            }
        }
    }

    fn encode(&mut self, packet: &Packet) {
        if let Err(e) = packet.encode(self.version, &mut self.wbuf) {
            warn!(error = %e, packet = ?packet.packet_type(), "could not encode a packet");
        }
    }

    /// A DISCONNECT from the server goes out at once, after what is durable: packets still held
    /// are acknowledgements of changes not on disk and are never sent.
    fn send_disconnect(&mut self, reason: ReasonCode) {
        self.release_held();
        // MQTT 3 has no server DISCONNECT: the connection is just closed.
        if self.version.is_v5() {
            self.encode(&Packet::Disconnect(Disconnect::new(reason)));
        }
    }

    /// A protocol violation by the client: DISCONNECT with `reason` (v5) and close.
    fn violation(&mut self, reason: ReasonCode, what: &str) -> Result<(), Close> {
        info!(reason = ?reason, "{what}; closing");
        self.send_disconnect(reason);
        Err(Close::WithWill)
    }

    fn handle(&mut self, packet: Packet) -> Result<(), Close> {
        match packet {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(a) => {
                self.complete_outbound(a.packet_id, Awaiting::PubAck);
                Ok(())
            }
            Packet::PubRec(r) => {
                self.on_pubrec(r);
                Ok(())
            }
            Packet::PubRel(r) => {
                let mut ticket = 0;
                let known = {
                    let mut state = self.session.lock();
                    let known = state.inbound_qos2.remove(&r.packet_id).is_some();
                    if known && self.owns_stored(&state) {
                        ticket = self.shared.submit([store::Op::InboundRemove {
                            client_id: self.client_id.clone(),
                            packet_id: r.packet_id,
                        }]);
                    }
                    known
                };
                let mut comp = PubComp::new(r.packet_id);
                if !known {
                    comp.reason_code = ReasonCode::PacketIdentifierNotFound;
                }
                self.send_when(ticket, Packet::PubComp(comp));
                Ok(())
            }
            Packet::PubComp(c) => {
                self.complete_outbound(c.packet_id, Awaiting::PubComp);
                Ok(())
            }
            Packet::Subscribe(s) => {
                self.on_subscribe(s);
                Ok(())
            }
            Packet::Unsubscribe(u) => {
                self.on_unsubscribe(u);
                Ok(())
            }
            Packet::PingReq => {
                self.send(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.on_disconnect(d),
            Packet::Connect(_) => {
                self.violation(ReasonCode::ProtocolError, "second CONNECT [MQTT-3.1.0-2]")
            }
            Packet::Auth(_) => self.violation(
                ReasonCode::ProtocolError,
                "AUTH without enhanced authentication",
            ),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => self
                .violation(
                    ReasonCode::ProtocolError,
                    "server-only packet from a client",
                ),
        }
    }

    fn on_publish(&mut self, mut p: Publish) -> Result<(), Close> {
        let stats = &self.shared.stats;
        stats.messages_received.fetch_add(1, Ordering::Relaxed);
        stats.received_by_qos[p.qos.qos() as usize].fetch_add(1, Ordering::Relaxed);
        if let Some(alias) = p.properties.topic_alias.take() {
            if alias.get() > self.shared.options.max_topic_alias {
                return self.violation(ReasonCode::TopicAliasInvalid, "topic alias above maximum");
            }
            if p.topic.is_empty() {
                match self.aliases().inbound.get(&alias.get()) {
                    Some(topic) => p.topic = topic.clone(),
                    None => {
                        return self.violation(ReasonCode::ProtocolError, "unknown topic alias");
                    }
                }
            } else {
                self.aliases().inbound.insert(alias.get(), p.topic.clone());
            }
        }

        if too_many_levels(p.topic.as_str()) {
            return self.violation(
                ReasonCode::TopicNameInvalid,
                "topic name has too many levels",
            );
        }
        let v5 = self.version.is_v5();
        let action = publish_action(p.retain, p.payload.is_empty());
        let mut reason = ReasonCode::Success;
        if !self.shared.access.may_publish(
            &self.identity,
            &self.client_id,
            p.topic.as_str(),
            action,
        ) {
            info!(user = ?self.identity.user, topic = %p.topic, "publish not authorized");
            reason = ReasonCode::NotAuthorized;
        } else if p.properties.payload_format_indicator == Some(codec::PayloadFormat::Utf8)
            && std::str::from_utf8(&p.payload).is_err()
        {
            reason = ReasonCode::PayloadFormatInvalid;
        }

        match p.qos {
            QosPid::AtMostOnce => {
                if reason == ReasonCode::Success {
                    self.accept_publish(p);
                }
            }
            QosPid::AtLeastOnce(id) => {
                let mut ticket = 0;
                if reason == ReasonCode::Success {
                    let (delivered, t) = self.accept_publish(p);
                    ticket = t;
                    if delivered == 0 && v5 {
                        reason = ReasonCode::NoMatchingSubscribers;
                    }
                }
                let mut ack = PubAck::new(id);
                // MQTT 3 has no failure PUBACK; refusing there means acknowledging and dropping.
                if v5 {
                    ack.reason_code = reason;
                }
                self.send_when(ticket, Packet::PubAck(ack));
            }
            QosPid::ExactlyOnce(id) => {
                let mut ticket = 0;
                let duplicate = {
                    let mut state = self.session.lock();
                    if let Some(&first) = state.inbound_qos2.get(&id) {
                        // Acknowledged no sooner than the first copy.
                        ticket = first;
                        true
                    } else if state.inbound_qos2.len()
                        >= usize::from(self.shared.options.receive_maximum.get())
                    {
                        drop(state);
                        return self.violation(
                            ReasonCode::ReceiveMaximumExceeded,
                            "receive maximum exceeded [MQTT-3.3.4-9]",
                        );
                    } else {
                        if reason == ReasonCode::Success {
                            state.inbound_qos2.insert(id, 0);
                            if self.owns_stored(&state) {
                                ticket = self.shared.submit([store::Op::InboundAdd {
                                    client_id: self.client_id.clone(),
                                    packet_id: id,
                                }]);
                            }
                        }
                        false
                    }
                };
                // [MQTT-4.3.3-9]: a repeated PUBLISH before PUBREL is not delivered again.
                if !duplicate && reason == ReasonCode::Success {
                    let (delivered, t) = self.accept_publish(p);
                    ticket = ticket.max(t);
                    if delivered == 0 && v5 {
                        reason = ReasonCode::NoMatchingSubscribers;
                    }
                    if let Some(t) = self.session.lock().inbound_qos2.get_mut(&id) {
                        *t = ticket;
                    }
                }
                let mut rec = PubRec::new(id);
                if v5 {
                    rec.reason_code = reason;
                }
                self.send_when(ticket, Packet::PubRec(rec));
            }
        }
        Ok(())
    }

    /// Stores (if retained) and routes an accepted PUBLISH; returns how many sessions got it and
    /// the ticket of what that put in the durable store.
    fn accept_publish(&mut self, p: Publish) -> (usize, u64) {
        let mut properties = p.properties;
        let expires_at = properties
            .message_expiry_interval
            .take()
            .map(|secs| Instant::now() + Duration::from_secs(u64::from(secs)));
        properties.subscription_identifiers.clear();
        let message = Arc::new(Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos.qos(),
            retain: p.retain,
            properties,
            expires_at,
            origin: self.session.id,
            stored: std::sync::OnceLock::new(),
        });
        let retained = self.shared.retain(&message);
        let routed = self.shared.route(&message);
        if let Some(session) = routed.congested
            && !Arc::ptr_eq(&session, &self.session)
        {
            self.congested = Some(session);
        }
        (routed.delivered, retained.max(routed.ticket))
    }

    fn on_pubrec(&mut self, rec: PubRec) {
        let mut state = self.session.lock();
        let found = state.find_outbound(rec.packet_id);
        match found {
            Some(i) if state.outbound[i].state == Awaiting::PubRec => {
                let seq = state.outbound[i].delivery.seq;
                if rec.reason_code.is_success() {
                    state.outbound[i].state = Awaiting::PubComp;
                    // A PUBREL must not go out before its state is on disk: after a crash the
                    // broker would resend the PUBLISH, which the client, done with the id, would
                    // take for a new message.
                    let ticket = if seq == 0 || !self.owns_stored(&state) {
                        0
                    } else {
                        self.shared.submit([store::Op::UpdateEntry {
                            client_id: self.client_id.clone(),
                            seq,
                            packet_id: Some(rec.packet_id),
                            state: store::EntryState::AwaitingPubComp,
                            // The PUBREL waits for this change.
                            delivered: false,
                        }])
                    };
                    drop(state);
                    self.send_when(ticket, Packet::PubRel(PubRel::new(rec.packet_id)));
                } else {
                    // A failure PUBREC ends the flow (§4.3.3).
                    state.outbound.remove(i);
                    self.dequeue_stored(&state, seq);
                }
            }
            Some(_) => {}
            None => {
                drop(state);
                let mut rel = PubRel::new(rec.packet_id);
                rel.reason_code = ReasonCode::PacketIdentifierNotFound;
                self.send(Packet::PubRel(rel));
            }
        }
    }

    fn complete_outbound(&mut self, id: PacketId, expected: Awaiting) {
        let mut state = self.session.lock();
        if let Some(i) = state.find_outbound(id)
            && state.outbound[i].state == expected
            && let Some(done) = state.outbound.remove(i)
        {
            self.dequeue_stored(&state, done.delivery.seq);
        }
    }

    /// Whether this connection may change the session's stored state: the store holds the
    /// session and no newer connection took it over.
    fn owns_stored(&self, state: &SessionState) -> bool {
        state.stored && state.generation == self.generation
    }

    /// Removes a finished or dropped delivery from the durable store (no acknowledgement waits
    /// for it).
    fn dequeue_stored(&self, state: &SessionState, seq: u64) {
        if seq != 0 && self.owns_stored(state) {
            self.shared.submit([store::Op::Dequeue {
                client_id: self.client_id.clone(),
                seq,
            }]);
        }
    }

    /// Records in the store that the client is gone: when, and the will still pending; a
    /// session that ends now leaves the store.
    fn store_disconnect(&self, will: Option<store::WillRecord>) {
        let mut state = self.session.lock();
        if !self.owns_stored(&state) {
            return;
        }
        let op = match crate::persist::session_record(
            &self.client_id,
            &state,
            Some(std::time::SystemTime::now()),
            will,
            self.identity.user.as_deref(),
        ) {
            Some(record) => store::Op::PutSession(Box::new(record)),
            None => {
                state.stored = false;
                store::Op::DeleteSession {
                    client_id: self.client_id.to_string(),
                }
            }
        };
        self.shared.submit([op]);
    }

    /// Writes the session's current record to the store (persistent sessions only); the ticket
    /// to wait for.
    fn store_session(&self) -> u64 {
        if self.shared.persist.is_none() {
            return 0;
        }
        let will = self.will.as_deref().map(will_record);
        let state = self.session.lock();
        if !self.owns_stored(&state) {
            return 0;
        }
        match crate::persist::session_record(
            &self.client_id,
            &state,
            None,
            will,
            self.identity.user.as_deref(),
        ) {
            Some(record) => self
                .shared
                .submit([store::Op::PutSession(Box::new(record))]),
            None => 0,
        }
    }

    fn on_subscribe(&mut self, s: Subscribe) {
        let sub_id = s.properties.subscription_identifier;
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        let mut added = Vec::new();
        for (filter, options) in s.filters {
            if too_many_levels(filter.filter()) {
                info!(filter = %filter, "topic filter has more than {MAX_TOPIC_LEVELS} levels");
                reasons.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            // A copy of its own: kept for the session's life, it must not keep the whole read
            // buffer it was decoded from alive.
            let Ok(filter) = codec::TopicFilter::try_from(filter.as_str()) else {
                reasons.push(ReasonCode::TopicFilterInvalid);
                continue;
            };
            if !self
                .shared
                .access
                .may_subscribe(&self.identity, &self.client_id, filter.filter())
            {
                info!(user = ?self.identity.user, filter = %filter, "subscribe not authorized");
                reasons.push(ReasonCode::NotAuthorized);
                continue;
            }
            let existed = {
                let mut state = self.session.lock();
                state
                    .subscriptions
                    .insert(
                        filter.as_str().into(),
                        Subscription {
                            filter: filter.clone(),
                            options,
                            id: sub_id,
                        },
                    )
                    .is_some()
            };
            added.push((filter.clone(), options));
            reasons.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            // Retained messages are never sent for shared subscriptions (§4.8.2).
            let send_retained = !filter.is_shared()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                retained.push((filter, options));
            }
        }
        {
            let mut index = self.shared.index_write();
            for (filter, options) in added {
                let subscriber = Subscriber {
                    session: self.session.clone(),
                    options,
                    id: sub_id,
                    identity: self.identity.clone(),
                };
                index.insert(&filter, subscriber);
            }
        }
        let ticket = self.store_session();
        self.send_when(
            ticket,
            Packet::SubAck(SubAck {
                packet_id: s.packet_id,
                properties: Default::default(),
                reason_codes: reasons,
            }),
        );
        let now = Instant::now();
        for (filter, options) in retained {
            for message in self.shared.retained.matching(&filter, now) {
                if !self.shared.access.may_read(
                    &self.identity,
                    &self.client_id,
                    message.topic.as_str(),
                ) {
                    continue;
                }
                let delivery = Delivery {
                    qos: message.qos.min(options.qos),
                    // [MQTT-3.3.1-9]: retained messages sent on subscribe keep RETAIN.
                    retain: true,
                    subscription_ids: sub_id.into_iter().collect(),
                    message,
                    seq: 0,
                    redelivery: false,
                };
                self.shared.deliver(&self.session, delivery);
            }
        }
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let mut reasons = Vec::with_capacity(u.filters.len());
        let mut removed = Vec::new();
        {
            let mut state = self.session.lock();
            for filter in &u.filters {
                if state.subscriptions.remove(filter.as_str()).is_some() {
                    removed.push(filter);
                    reasons.push(ReasonCode::Success);
                } else {
                    reasons.push(ReasonCode::NoSubscriptionExisted);
                }
            }
        }
        {
            let mut index = self.shared.index_write();
            for filter in removed {
                index.remove(filter, self.session.id);
            }
        }
        let ticket = self.store_session();
        self.send_when(
            ticket,
            Packet::UnsubAck(UnsubAck {
                packet_id: u.packet_id,
                properties: Default::default(),
                reason_codes: if self.version.is_v5() {
                    reasons
                } else {
                    Vec::new()
                },
            }),
        );
    }

    fn on_disconnect(&mut self, d: Disconnect) -> Result<(), Close> {
        if let Some(secs) = d.properties.session_expiry_interval {
            if self.expiry_was_zero && secs != 0 {
                return self.violation(
                    ReasonCode::ProtocolError,
                    "session expiry raised from 0 at DISCONNECT [MQTT-3.14.2-2]",
                );
            }
            let mut expiry = match secs {
                0 => Expiry::OnClose,
                u32::MAX => Expiry::Never,
                s => Expiry::After(Duration::from_secs(u64::from(s))),
            };
            // The broker's cap applies here as at CONNECT.
            if let Some(cap) = self.shared.options.max_session_expiry {
                expiry = match expiry {
                    Expiry::Never => Expiry::After(cap),
                    Expiry::After(d) if d > cap => Expiry::After(cap),
                    other => other,
                };
            }
            self.session.lock().expiry = expiry;
        }
        debug!(reason = ?d.reason_code, "client disconnected");
        if d.reason_code == ReasonCode::DisconnectWithWillMessage {
            Err(Close::WithWill)
        } else {
            Err(Close::Normal)
        }
    }

    /// Sends again, with DUP, what the session had in flight when its last connection ended
    /// [MQTT-4.4.0-1].
    fn resend_inflight(&mut self) {
        let state = self.session.lock();
        let mut packets = Vec::with_capacity(state.outbound.len());
        for o in &state.outbound {
            packets.push(match o.state {
                Awaiting::PubAck | Awaiting::PubRec => {
                    let mut p = self.build_publish(&o.delivery, Some(o.packet_id), Instant::now());
                    p.dup = true;
                    Packet::Publish(p)
                }
                Awaiting::PubComp => Packet::PubRel(PubRel::new(o.packet_id)),
            });
        }
        drop(state);
        for p in packets {
            self.send(p);
        }
    }

    fn build_publish(&self, d: &Delivery, id: Option<PacketId>, now: Instant) -> Publish {
        let m = &d.message;
        let mut properties = PublishProperties::default();
        if self.version.is_v5() {
            properties = m.properties.clone();
            properties.message_expiry_interval = m.remaining_expiry(now);
            properties
                .subscription_identifiers
                .clone_from(&d.subscription_ids);
        }
        Publish {
            dup: false,
            qos: match (d.qos, id) {
                (QoS::AtLeastOnce, Some(id)) => QosPid::AtLeastOnce(id),
                (QoS::ExactlyOnce, Some(id)) => QosPid::ExactlyOnce(id),
                _ => QosPid::AtMostOnce,
            },
            retain: d.retain,
            topic: m.topic.clone(),
            properties,
            payload: m.payload.clone(),
        }
    }

    /// Moves queued messages into the write buffer, within the in-flight window. Returns true
    /// when it stopped only because the write buffer is full.
    fn drain_queue(&mut self) -> bool {
        let now = Instant::now();
        let window = usize::from(
            self.client_receive_maximum
                .min(self.shared.options.max_inflight.get()),
        );
        let session = self.session.clone();
        let mut state = session.lock();
        if state.generation != self.generation {
            return false;
        }
        let more = self.drain_locked(&mut state, now, window);
        if state.congested
            && state.queue.len()
                <= crate::session::low_water(self.shared.options.max_queued_messages)
        {
            state.congested = false;
            drop(state);
            session.space.notify_waiters();
        }
        more
    }

    fn drain_locked(&mut self, state: &mut SessionState, now: Instant, window: usize) -> bool {
        // A long queue fills the write buffer: size it once rather than by doubling.
        if state.queue.len() > 32 && self.wbuf.capacity() < WRITE_CHUNK {
            self.wbuf.reserve(WRITE_CHUNK + WRITE_SLACK);
        }
        while let Some(front) = state.queue.front() {
            if self.wbuf.len() >= WRITE_CHUNK {
                return true;
            }
            if self.held.len() >= HELD_LIMIT {
                break;
            }
            if front.qos != QoS::AtMostOnce && state.outbound.len() >= window {
                break;
            }
            let Some(delivery) = state.queue.pop_front() else {
                break;
            };
            if delivery.message.is_expired(now) {
                self.dequeue_stored(state, delivery.seq);
                continue;
            }
            let id = (delivery.qos != QoS::AtMostOnce).then(|| state.allocate_packet_id());
            let mut publish = self.build_publish(&delivery, id, now);
            // Recovered from the store, it may have been sent before the restart.
            publish.dup = delivery.redelivery && id.is_some();
            // [MQTT-3.1.2-24]: never send a packet larger than the client accepts; drop it as
            // if delivered.
            let packet = Packet::Publish(publish);
            let too_big = packet
                .encoded_len(self.version)
                .map_or(true, |len| len > self.client_max_packet_size as usize);
            let Packet::Publish(p) = packet else {
                unreachable!("built as a PUBLISH")
            };
            publish = p;
            if too_big {
                debug!(topic = %publish.topic, "message larger than the client's maximum packet size; dropped");
                self.shared
                    .stats
                    .messages_dropped
                    .fetch_add(1, Ordering::Relaxed);
                self.dequeue_stored(state, delivery.seq);
                continue;
            }
            self.apply_outbound_alias(&mut publish);
            // A stored entry records its packet id. A QoS 2 PUBLISH waits until that is on
            // disk: resent after a crash under another id, the client would take it for a new
            // message.
            let mut ticket = 0;
            if let (Some(packet_id), true) = (id, delivery.seq != 0 && self.owns_stored(state)) {
                let (entry_state, gated) = if delivery.qos == QoS::AtLeastOnce {
                    (store::EntryState::AwaitingPubAck, false)
                } else {
                    (store::EntryState::AwaitingPubRec, true)
                };
                let t = self.shared.submit([store::Op::UpdateEntry {
                    client_id: self.client_id.clone(),
                    seq: delivery.seq,
                    packet_id: Some(packet_id),
                    state: entry_state,
                    // Written now, unless it waits for the store: its acknowledgement may
                    // then cancel the entry before the batch commits.
                    delivered: !gated && self.held.is_empty(),
                }]);
                if gated {
                    ticket = t;
                }
            }
            if self.held.is_empty() && ticket == 0 {
                if let Err(e) = publish.encode(&mut self.wbuf, self.version.is_v5()) {
                    warn!(error = %e, "could not encode a PUBLISH");
                    continue;
                }
            } else {
                self.held.push_back((ticket, Packet::Publish(publish)));
            }
            let stats = &self.shared.stats;
            stats.messages_sent.fetch_add(1, Ordering::Relaxed);
            stats.sent_by_qos[delivery.qos as usize].fetch_add(1, Ordering::Relaxed);
            if let Some(packet_id) = id {
                let state_kind = if delivery.qos == QoS::AtLeastOnce {
                    Awaiting::PubAck
                } else {
                    Awaiting::PubRec
                };
                state.outbound.push_back(Outbound {
                    packet_id,
                    delivery,
                    state: state_kind,
                });
            }
        }
        false
    }

    /// Uses, or assigns, a topic alias when the client accepts them: the first PUBLISH on a
    /// topic carries topic and alias, later ones the alias alone.
    fn apply_outbound_alias(&mut self, publish: &mut Publish) {
        if self.client_topic_alias_max == 0 || !self.version.is_v5() {
            return;
        }
        let aliases = &mut self.aliases.get_or_insert_default().outbound;
        if let Some(&alias) = aliases.get(&publish.topic) {
            publish.properties.topic_alias = std::num::NonZeroU16::new(alias);
            publish.topic = TopicName::empty();
            return;
        }
        let next = aliases.len() + 1;
        if next <= usize::from(self.client_topic_alias_max)
            && let Ok(alias) = u16::try_from(next)
        {
            aliases.insert(publish.topic.clone(), alias);
            publish.properties.topic_alias = std::num::NonZeroU16::new(alias);
        }
    }

    /// Detaches from the session after the loop: publishes or schedules the will, and ends or
    /// schedules the end of the session.
    fn finish(&mut self, close: Close) {
        self.shared
            .stats
            .clients_connected
            .fetch_sub(1, Ordering::Relaxed);
        let will = match close {
            Close::WithWill | Close::TakenOver => self.will.take().map(|will| *will),
            Close::Normal | Close::Shutdown => None,
        };
        let (still_owner, expiry) = {
            let mut state = self.session.lock();
            let owner = state.generation == self.generation;
            if owner {
                state.evict = None;
                state.identity = None;
                self.session.keep_alive.stop(self.generation);
                self.session.wake.clear();
            }
            (owner, state.expiry)
        };
        info!(?close, "client disconnected");
        let mut pending_will = None;
        if let Some(will) = will {
            let delay = will.properties.will_delay_interval.map_or(0, u64::from);
            let delay = match expiry {
                Expiry::OnClose => 0,
                Expiry::After(d) => delay.min(d.as_secs()),
                Expiry::Never => delay,
            };
            if delay == 0 || !still_owner {
                // A takeover reconnects at once, so only an immediate will can still go out.
                if delay == 0 {
                    publish_will(
                        &self.shared,
                        &self.identity,
                        &self.client_id,
                        will,
                        self.session.id,
                    );
                }
            } else {
                pending_will = Some(will_record(&will));
                let shared = self.shared.clone();
                let session = self.session.clone();
                let identity = self.identity.clone();
                let client_id = self.client_id.clone();
                let generation = self.generation;
                let disconnected_at = std::time::SystemTime::now();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(delay)).await;
                    // [MQTT-3.1.3-9]: a reconnect within the delay cancels the will.
                    if session.lock().generation == generation {
                        publish_will(&shared, &identity, &client_id, will, session.id);
                        will_sent(&shared, &session, generation, &identity, disconnected_at);
                    }
                });
            }
        }
        if !still_owner {
            return;
        }
        self.store_disconnect(pending_will);
        if close == Close::Shutdown {
            return;
        }
        match expiry {
            Expiry::OnClose => end_session(&self.shared, &self.session, self.generation),
            Expiry::After(d) => {
                let shared = self.shared.clone();
                let session = self.session.clone();
                let generation = self.generation;
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    end_session(&shared, &session, generation);
                });
            }
            Expiry::Never => {}
        }
    }
}

/// Finds or creates the session for `client_id` and attaches a connection to it. Returns the
/// session, its new generation, Session Present, and a discarded old session whose
/// subscriptions must leave the index.
fn attach(
    shared: &Shared,
    client_id: &Arc<str>,
    clean_start: bool,
    expiry: Expiry,
    evict: oneshot::Sender<Eviction>,
    keep_alive_ms: u64,
) -> (Arc<Session>, u64, bool, Option<Arc<Session>>) {
    let mut sessions = shared.sessions();
    let existing = sessions.get(client_id).cloned();
    let mut discarded = None;
    let (session, present) = match existing {
        Some(old) => {
            let mut state = old.lock();
            if let Some(tx) = state.evict.take() {
                let _ = tx.send(Eviction::TakenOver);
            }
            if clean_start {
                // The old connection must stop draining a session that no longer exists.
                state.generation += 1;
                let next_seq = state.next_seq;
                drop(state);
                let fresh = Session::new(client_id.clone(), expiry);
                // Store positions are never reused for one client id, even across sessions.
                fresh.lock().next_seq = next_seq;
                sessions.insert(client_id.clone(), fresh.clone());
                discarded = Some(old);
                (fresh, false)
            } else {
                drop(state);
                (old, true)
            }
        }
        None => {
            let fresh = Session::new(client_id.clone(), expiry);
            sessions.insert(client_id.clone(), fresh.clone());
            (fresh, false)
        }
    };
    let mut state = session.lock();
    state.generation += 1;
    // This connection's deadline replaces its predecessor's.
    session.keep_alive.start(
        state.generation,
        shared.clock_ms().saturating_add(keep_alive_ms),
    );
    state.evict = Some(evict);
    state.expiry = expiry;
    let generation = state.generation;
    drop(state);
    drop(sessions);
    (session, generation, present, discarded)
}

/// Removes a session's subscriptions from the index. Takes no session lock while holding the
/// index lock (lock order: registry, then index, then session).
fn remove_from_index(shared: &Shared, session: &Session) {
    let filters: Vec<_> = session
        .lock()
        .subscriptions
        .drain()
        .map(|(_, s)| s.filter)
        .collect();
    let mut index = shared.index_write();
    for filter in &filters {
        index.remove(filter, session.id);
    }
}

/// Ends a session if no connection attached to it since `generation`.
fn end_session(shared: &Shared, session: &Arc<Session>, generation: u64) {
    let mut sessions = shared.sessions();
    {
        let state = session.lock();
        if state.generation != generation || state.is_connected() {
            return;
        }
    }
    if sessions
        .get(&session.client_id)
        .is_some_and(|s| Arc::ptr_eq(s, session))
    {
        sessions.remove(&session.client_id);
    }
    drop(sessions);
    remove_from_index(shared, session);
    forget_stored(shared, session);
    debug!(client_id = %session.client_id, "session ended");
}

/// Runs the clock of a session recovered offline from the store: publishes the will it still
/// owes (after its delay, at the latest when the session ends) and ends the session when it
/// expires, unless a client attached to it meanwhile.
pub(crate) async fn run_offline(shared: Arc<Shared>, offline: crate::persist::Offline) {
    let crate::persist::Offline {
        session,
        identity,
        ends_in,
        will,
        disconnected_at,
    } = offline;
    let generation = session.lock().generation;
    let attached = |session: &Session| {
        let state = session.lock();
        state.generation != generation || state.is_connected()
    };
    let started = tokio::time::Instant::now();
    if let Some(will) = will {
        let delay = ends_in.map_or(will.delay, |end| will.delay.min(end));
        tokio::time::sleep(delay).await;
        if attached(&session) {
            return;
        }
        let message = Arc::new(crate::persist::message_of(0, &Arc::new(will.message)));
        let action = publish_action(message.retain, message.payload.is_empty());
        if shared.access.may_publish(
            &identity,
            &session.client_id,
            message.topic.as_str(),
            action,
        ) {
            debug!(client_id = %session.client_id, topic = %message.topic, "publishing the will of a session recovered from the store");
            shared.retain(&message);
            shared.route(&message);
        }
        will_sent(&shared, &session, generation, &identity, disconnected_at);
    }
    if let Some(end) = ends_in.and_then(|end| started.checked_add(end)) {
        tokio::time::sleep_until(end).await;
        end_session(&shared, &session, generation);
    }
}

/// After a delayed will went out: the stored session no longer owes it, so a restart does not
/// send it again.
fn will_sent(
    shared: &Shared,
    session: &Session,
    generation: u64,
    identity: &Identity,
    disconnected_at: std::time::SystemTime,
) {
    let state = session.lock();
    if !state.stored || state.generation != generation || state.is_connected() {
        return;
    }
    if let Some(record) = crate::persist::session_record(
        &session.client_id,
        &state,
        Some(disconnected_at),
        None,
        identity.user.as_deref(),
    ) {
        shared.submit([store::Op::PutSession(Box::new(record))]);
    }
}

/// Deletes a session from the durable store if it is there; the ticket to wait for.
fn forget_stored(shared: &Shared, session: &Session) -> u64 {
    let mut state = session.lock();
    if !state.stored {
        return 0;
    }
    state.stored = false;
    shared.submit([store::Op::DeleteSession {
        client_id: session.client_id.to_string(),
    }])
}

/// The stored form of a will, with its own Will Delay Interval.
fn will_record(will: &LastWill) -> store::WillRecord {
    let delay = will.properties.will_delay_interval.map_or(0, u64::from);
    store::WillRecord {
        message: crate::persist::record_of(&will_message(will.clone(), 0)),
        delay: Duration::from_secs(delay),
    }
}

fn publish_will(
    shared: &Shared,
    identity: &Identity,
    client_id: &str,
    will: LastWill,
    origin: u64,
) {
    let action = publish_action(will.retain, will.payload.is_empty());
    if !shared
        .access
        .may_publish(identity, client_id, will.topic.as_str(), action)
    {
        debug!(topic = %will.topic, "will not authorized");
        return;
    }
    let message = Arc::new(will_message(will, origin));
    debug!(topic = %message.topic, "publishing will");
    shared.retain(&message);
    shared.route(&message);
}

/// The message a will publishes.
pub(crate) fn will_message(will: LastWill, origin: u64) -> Message {
    let p = will.properties;
    Message {
        topic: will.topic,
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        properties: PublishProperties {
            payload_format_indicator: p.payload_format_indicator,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
            ..Default::default()
        },
        expires_at: p
            .message_expiry_interval
            .map(|secs| Instant::now() + Duration::from_secs(u64::from(secs))),
        origin,
        stored: std::sync::OnceLock::new(),
    }
}

/// Harper's verb for a PUBLISH: a retained empty payload deletes, other retained messages
/// update, the rest insert.
fn publish_action(retain: bool, empty: bool) -> PublishAction {
    match (retain, empty) {
        (false, _) => PublishAction::Insert,
        (true, false) => PublishAction::Update,
        (true, true) => PublishAction::Delete,
    }
}

fn generate_client_id() -> String {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("auto-{nanos:08x}-{n:x}")
}
