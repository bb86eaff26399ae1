//! One client connection: CONNECT (`connect.rs`), then a loop that reads packets, hands each to
//! its handler (`publish.rs`, `subscribe.rs`, `outbound.rs` for the acknowledgements of what the
//! broker sent), and writes what the session has queued, until the connection ends. Socket I/O
//! and the acknowledgements held for the durable store are in `io.rs` and `held.rs`.
//!
//! The connection speaks; the session (`crate::session`) remembers: every change of session
//! state, the QoS 1/2 flows included, is a session method, and attaching and detaching are
//! `crate::lifecycle`'s.

mod connect;
mod held;
mod io;
mod outbound;
mod publish;
mod subscribe;
#[cfg(test)]
mod tests;
mod violation;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use auth::Identity;
use bytes::BytesMut;
use codec::{LastWill, Packet, ProtocolVersion, ReasonCode, TopicName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch};
use tracing::{Instrument, debug, info, info_span};
use transport::rustls::pki_types::CertificateDer;

use crate::broker::Shared;
use crate::lifecycle::{self, Close};
use crate::session::{Awaiting, Eviction, Owner, Session};
use held::DurableWait;
pub(crate) use publish::MAX_TOPIC_LEVELS;
use violation::Violation;

/// Packets a connection holds for the durable store at most before it stops reading from its
/// client and taking messages from its session's queue.
const HELD_LIMIT: usize = 1024;

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
/// task (see [`Running::serve`]).
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
    let conn = connect::establish(&mut stream, peer, &certificates, shared, connect_deadline)
        .instrument(span.clone())
        .await;
    let Some(mut conn) = conn else {
        io::close(&mut stream).instrument(span).await;
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
        io::close(&mut stream).instrument(span).await;
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
            Box::pin(io::close(stream)).await;
        });
        // The span is entered for each poll (as `Instrument` does) without a second copy of it.
        std::future::poll_fn(|cx| {
            let _entered = span.enter();
            work.as_mut().poll(cx)
        })
        .await
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

/// Why handling a packet ended the connection.
enum Ended {
    /// The client broke a rule: it is told why.
    Violation(Violation),
    /// The client sent DISCONNECT.
    Disconnected(Close),
}

impl From<Violation> for Ended {
    fn from(violation: Violation) -> Self {
        Ended::Violation(violation)
    }
}

/// Topic aliases of a v5 connection (§3.3.2.3.4).
#[derive(Default)]
struct Aliases {
    /// Set by the client's PUBLISH packets.
    inbound: HashMap<u16, TopicName>,
    /// Assigned by the broker to the topics it sends.
    outbound: HashMap<TopicName, u16>,
}

/// The limits a v5 client announced in its CONNECT.
struct ClientLimits {
    receive_maximum: u16,
    max_packet_size: u32,
    topic_alias_max: u16,
}

/// A connection after a successful CONNECT.
struct Connection {
    shared: Arc<Shared>,
    session: Arc<Session>,
    /// The session generation this connection owns.
    generation: u64,
    version: ProtocolVersion,
    /// The session's own allocation of the client id.
    client_id: Arc<str>,
    identity: Arc<Identity>,
    /// How long the client may stay silent, in milliseconds (1.5 times its keep alive); the
    /// deadline is in the session, checked by the keep-alive sweeper.
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
    client: ClientLimits,
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
    /// This connection as the owner of its session's state.
    fn owner(&self) -> Owner<'_> {
        Owner {
            client_id: &self.client_id,
            generation: self.generation,
            persist: self.shared.persist(),
        }
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
            if let Some(close) = end {
                // The last words (a DISCONNECT, say) to a client that may no longer read: a
                // second at most. Boxed: the timer would otherwise enlarge every connection.
                let last = std::future::poll_fn(|cx| self.poll_flush(stream, cx));
                let _ = Box::pin(tokio::time::timeout(io::CLOSE_GRACE, last)).await;
                return close;
            }
            let flushed = std::future::poll_fn(|cx| self.poll_flush(stream, cx)).await;
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
                Box::pin(async move { publish::wait_for_space(&slow).await }).await;
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
                info!("user removed or deactivated; disconnecting");
                self.send_disconnect(ReasonCode::NotAuthorized);
                Some(Close::Revoked)
            }
            Woken::Evicted(Ok(Eviction::CertificateRevoked)) => {
                info!("client certificate revoked since it connected; disconnecting");
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
                    .stats()
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
                self.heard_from_client();
                self.handle_buffered().err()
            }
            Woken::Queue | Woken::Durable => None,
        })
    }

    /// Waits for the next thing to do. Everything it waits on lives in the connection (the
    /// eviction channel, the keep-alive deadline, the session's wake-up, the durable-ticket
    /// wait) or on the stack of this call, so an idle connection's task stores no futures.
    fn poll_wait<S>(&mut self, stream: &mut S, cx: &mut Context<'_>) -> Poll<Woken>
    where
        S: AsyncRead + Unpin,
    {
        if let Poll::Ready(eviction) = Pin::new(&mut self.evict).poll(cx) {
            return Poll::Ready(Woken::Evicted(eviction));
        }
        if self.held.is_empty() {
            // Nothing waits for the store: no boxed wait is kept for it.
            self.durable.stop_waiting(self.shared.persist());
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
        if !paused && let Poll::Ready(read) = io::poll_read_more(stream, &mut self.rbuf, cx) {
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
            let max = self.shared.options().max_packet_size.get();
            let handled = match codec::decode(&mut self.rbuf, self.version, max) {
                Ok(Some(packet)) => self.handle(packet),
                Ok(None) => break,
                Err(e) => Err(Violation::Malformed(e).into()),
            };
            match handled {
                Ok(()) => {}
                Err(Ended::Violation(violation)) => return Err(self.violation(violation)),
                Err(Ended::Disconnected(close)) => return Err(close),
            }
        }
        if self.rbuf.is_empty() {
            // Nothing partial is waiting: no buffer is held until more arrives (see
            // `io::poll_read_more`), which keeps idle connections small.
            self.rbuf = BytesMut::new();
        }
        Ok(())
    }

    /// A protocol violation by the client: DISCONNECT with its reason code (v5), then close.
    fn violation(&mut self, violation: Violation) -> Close {
        let reason = violation.reason_code();
        info!(reason = ?reason, "{violation}; closing");
        self.send_disconnect(reason);
        Close::WithWill
    }

    /// Hands one packet to its handler. `Err` ends the connection.
    fn handle(&mut self, packet: Packet) -> Result<(), Ended> {
        match packet {
            Packet::Publish(p) => self.on_publish(p)?,
            Packet::PubAck(a) => self.on_acknowledged(a.packet_id, Awaiting::PubAck),
            Packet::PubRec(r) => self.on_pubrec(r),
            Packet::PubRel(r) => self.on_pubrel(r),
            Packet::PubComp(c) => self.on_acknowledged(c.packet_id, Awaiting::PubComp),
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            Packet::PingReq => self.send(Packet::PingResp),
            Packet::Disconnect(d) => return Err(Ended::Disconnected(self.on_disconnect(d)?)),
            Packet::Connect(_) => return Err(Violation::SecondConnect.into()),
            Packet::Auth(_) => return Err(Violation::UnexpectedAuth.into()),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return Err(Violation::ServerOnlyPacket.into());
            }
        }
        Ok(())
    }

    /// Detaches from the session after the loop (see `lifecycle::detach`).
    fn finish(&mut self, close: Close) {
        info!(?close, "client disconnected");
        lifecycle::detach(
            &self.shared,
            lifecycle::Detach {
                session: &self.session,
                generation: self.generation,
                identity: &self.identity,
                will: self.will.take().map(|will| *will),
                close,
            },
        );
    }
}
