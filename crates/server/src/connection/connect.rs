//! CONNECT (§3.1): read the first packet within the connect deadline, then refuse, or
//! authenticate, negotiate the session's terms, attach to the session and queue the CONNACK.
//! Every refusal goes out through [`refuse`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use auth::{ConnectRequest, Identity, Refusal};
use bytes::BytesMut;
use codec::{ConnAck, Connect, DecodeError, MqttString, Packet, ProtocolVersion, ReasonCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};
use transport::rustls::pki_types::CertificateDer;

use super::held::DurableWait;
use super::publish::too_many_levels;
use super::{ClientLimits, Connection, MAX_TOPIC_LEVELS};
use crate::broker::Shared;
use crate::escape::{Escaped, User};
use crate::lifecycle::{self, publish_action, will_record};
use crate::session::Expiry;

/// Reads the CONNECT within the deadline and establishes the connection. `None`: the
/// connection ends (refused and told so, or failed).
pub(super) async fn establish<S>(
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
    let max = shared.options().max_packet_size.get();
    let first = tokio::time::timeout_at(connect_deadline, read_connect(stream, &mut rbuf, max));
    let connect = match first.await {
        Err(_) => {
            debug!("no CONNECT within the connect timeout; closing");
            return None;
        }
        Ok(Err(Some(e))) if e.is_connect_refusal() => {
            // [MQTT-3.1.2-2]: answer an unsupported level with a v3 CONNACK 0x01.
            debug!(error = %e, "refusing CONNECT");
            refuse(stream, ReasonCode::UnsupportedProtocolVersion, false).await;
            return None;
        }
        Ok(Err(Some(e))) => {
            debug!(error = %e, "malformed first packet; closing");
            return None;
        }
        Ok(Err(None)) => return None,
        Ok(Ok(connect)) => *connect,
    };
    let v5 = connect.protocol.is_v5();
    // Authentication may wait (for its address's turn, for a hashing slot): it does so under
    // the CONNECT deadline, and only while the client is still there.
    let waits = connect.password.is_some() || shared.client_auth().is_some();
    let admitted = if !waits {
        // Nothing to hash or look up: the answer comes at once.
        Ok(admit(&shared, &connect, peer, certificates).await)
    } else {
        let admit = tokio::time::timeout_at(
            connect_deadline,
            admit(&shared, &connect, peer, certificates),
        );
        tokio::select! {
            biased;
            admitted = admit => admitted,
            () = until_closed(stream, &mut rbuf) => {
                debug!("client went away during authentication");
                return None;
            }
        }
    };
    let (client_id, assigned, identity) = match admitted {
        Ok(Ok(admitted)) => admitted,
        Ok(Err(code)) => {
            refuse(stream, code, v5).await;
            return None;
        }
        Err(_) => {
            debug!("authentication did not finish within the connect timeout; refusing");
            refuse(stream, ReasonCode::ServerUnavailable, v5).await;
            return None;
        }
    };
    let revocation = shared.revocation().cloned();
    let Ok(mut conn) = accept(shared, connect, client_id, assigned, identity) else {
        info!("the client id names another user's session; refusing");
        refuse(stream, ReasonCode::NotAuthorized, v5).await;
        return None;
    };
    if let Some(watch) = revocation {
        watch.watch(&conn.session, conn.generation, certificates);
    }
    // Packets already buffered behind the CONNECT are handled by the main loop first.
    if !rbuf.is_empty() {
        conn.rbuf = rbuf;
    }
    Some(conn)
}

/// What a client waiting for its CONNACK may have read ahead at most; the rest waits in the
/// socket.
const READ_AHEAD: usize = 4 * 1024;

/// Completes when the client has gone away (closed its side, or its socket failed) while it
/// waits for its CONNACK, having sent nothing more. What it sends meanwhile is kept for the
/// main loop (up to [`READ_AHEAD`]): a client that sent packets behind its CONNECT and then
/// closed is still answered, and its packets handled.
async fn until_closed<S>(stream: &mut S, rbuf: &mut BytesMut)
where
    S: AsyncRead + Unpin,
{
    while rbuf.len() < READ_AHEAD {
        rbuf.reserve(READ_AHEAD - rbuf.len());
        let mut limited = (&mut *stream).take((READ_AHEAD - rbuf.len()) as u64);
        match limited.read_buf(rbuf).await {
            Ok(0) | Err(_) if rbuf.is_empty() => return,
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    std::future::pending::<()>().await;
}

/// Answers a CONNECT with a refusing CONNACK (the connection then closes).
async fn refuse<S>(stream: &mut S, code: ReasonCode, v5: bool)
where
    S: AsyncWrite + Unpin,
{
    let mut out = BytesMut::new();
    if ConnAck::new(code, false).encode(&mut out, v5).is_ok() {
        let _ = stream.write_all(&out).await;
    }
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

/// Decides whether the client may connect: what it asks for, who it is, its will. Returns its
/// client id (the one assigned to it, if it sent none) and identity, or the refusal's reason.
async fn admit(
    shared: &Shared,
    connect: &Connect,
    peer: SocketAddr,
    certificates: &[CertificateDer<'static>],
) -> Result<(Arc<str>, Option<String>, Arc<Identity>), ReasonCode> {
    if connect.properties.authentication_method.is_some() {
        // Enhanced authentication (§4.12) is not offered.
        return Err(ReasonCode::BadAuthenticationMethod);
    }
    let (client_id, assigned) = client_identifier(connect)?;
    tracing::Span::current().record("client_id", tracing::field::display(Escaped(&client_id)));
    let identity = authenticate(shared, connect, &client_id, peer, certificates).await?;
    if let Some(will) = &connect.will {
        if too_many_levels(will.topic.as_str()) {
            info!(topic = %Escaped(will.topic.as_str()), "will topic has more than {MAX_TOPIC_LEVELS} levels; refusing");
            return Err(ReasonCode::TopicNameInvalid);
        }
        let action = publish_action(will.retain, will.payload.is_empty());
        if !shared
            .access()
            .may_publish(&identity, &client_id, will.topic.as_str(), action)
        {
            info!(user = %User(identity.user.as_deref()), topic = %Escaped(will.topic.as_str()), "will topic not authorized; refusing");
            return Err(ReasonCode::NotAuthorized);
        }
    }
    Ok((client_id, assigned, identity))
}

/// The client id, or one assigned when the client sent none (returned second as well).
fn client_identifier(connect: &Connect) -> Result<(Arc<str>, Option<String>), ReasonCode> {
    if !connect.client_id.is_empty() {
        return Ok((Arc::from(connect.client_id.as_str()), None));
    }
    // [MQTT-3.1.3-8]: v3.1.1 assigns an identifier only with clean session; 3.1 never.
    let version = connect.protocol;
    if version == ProtocolVersion::V3_1
        || (version == ProtocolVersion::V3_1_1 && !connect.clean_start)
    {
        return Err(ReasonCode::ClientIdentifierNotValid);
    }
    let id = generate_client_id();
    Ok((Arc::from(id.as_str()), Some(id)))
}

/// Who the client is: its certificate first (revocation check, the user it names), then its
/// credentials. Failures are counted, and repeated ones from one address wait longer and
/// longer for their answer.
async fn authenticate(
    shared: &Shared,
    connect: &Connect,
    client_id: &Arc<str>,
    peer: SocketAddr,
    certificates: &[CertificateDer<'static>],
) -> Result<Arc<Identity>, ReasonCode> {
    let failed = || {
        shared.stats().auth_failures.fetch_add(1, Ordering::Relaxed);
    };
    let mut certificate_user = None;
    if let Some(client_auth) = shared.client_auth() {
        // Boxed: the OCSP check is a large future, and most connections skip it.
        match Box::pin(client_auth.admit(certificates)).await {
            Ok(verdict) => {
                if verdict.credentials_required && connect.username.is_none() {
                    info!(
                        "mqtt.network.mtls.user is null: the certificate needs CONNECT credentials too; refusing"
                    );
                    failed();
                    return Err(ReasonCode::BadUserNameOrPassword);
                }
                certificate_user = verdict.user;
            }
            Err(code) => {
                failed();
                return Err(code);
            }
        }
    }

    let access = shared.access().clone();
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
    let refused = |refusal: Refusal| {
        failed();
        if let Some(suppressed) = shared.login_throttle().may_log(peer.ip()) {
            warn!(
                %peer,
                client_id = %Escaped(client_id),
                user = %User(connect.username.as_deref()),
                reason = %refusal,
                suppressed,
                "authentication failed"
            );
        }
        match refusal {
            Refusal::BadCredentials => ReasonCode::BadUserNameOrPassword,
            Refusal::NotAuthorized => ReasonCode::NotAuthorized,
        }
    };
    if connect.password.is_none() {
        // Nothing to hash: the answer comes at once.
        return match ask() {
            Ok(identity) => Ok(anonymous_certificate(identity, certificates)),
            Err(refusal) => Err(refused(refusal)),
        };
    }
    // Password hashing is deliberately slow and memory-hungry: attempts take their address's
    // turn and wait out its recent guesses first, then hash on the throttle's threads, at most
    // one per core at once. The slot stays with the hash even if this connection goes.
    let throttle = shared.login_throttle();
    let attempt = throttle
        .attempt(peer.ip(), connect.username.as_deref())
        .await;
    match throttle.hash(&attempt, ask).await {
        Some(Ok(identity)) => {
            throttle.succeeded(&attempt);
            Ok(anonymous_certificate(identity, certificates))
        }
        Some(Err(refusal)) => Err(refused(refusal)),
        None => {
            warn!("password check failed to run");
            Err(ReasonCode::ServerUnavailable)
        }
    }
}

/// Logs a client whose certificate named no user and who was let in anonymously
/// (`requireAuthentication: false`).
fn anonymous_certificate(
    identity: Identity,
    certificates: &[CertificateDer<'static>],
) -> Arc<Identity> {
    if identity.user.is_none() && !certificates.is_empty() {
        info!("the client certificate names no user; connected anonymously");
    }
    Arc::new(identity)
}

/// The terms the broker grants: keep alive and session expiry, under its limits.
struct Terms {
    /// Keep alive granted, in seconds.
    keep_alive: u16,
    expiry: Expiry,
    /// The Session Expiry Interval granted, when the broker's cap lowered the one asked for.
    granted_expiry: Option<u32>,
    /// The client asked for Session Expiry Interval 0 (DISCONNECT may not raise it).
    expiry_was_zero: bool,
}

fn negotiate(shared: &Shared, connect: &Connect) -> Terms {
    let options = shared.options();
    let max_keep_alive = options.max_keep_alive.get();
    let keep_alive = if connect.keep_alive == 0 || connect.keep_alive > max_keep_alive {
        max_keep_alive
    } else {
        connect.keep_alive
    };
    let requested_expiry = if connect.protocol.is_v5() {
        connect.properties.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        u32::MAX
    };
    let (expiry, capped) = Expiry::from_interval(requested_expiry, options.max_session_expiry);
    let granted_expiry = match expiry {
        Expiry::After(d) if capped => Some(u32::try_from(d.as_secs()).unwrap_or(u32::MAX - 1)),
        _ => None,
    };
    Terms {
        keep_alive,
        expiry,
        granted_expiry,
        expiry_was_zero: requested_expiry == 0,
    }
}

/// An admitted client: attaches its session, builds the connection and queues the CONNACK
/// (held until the session's stored state is durable) and the resends of what was in flight.
fn accept(
    shared: Arc<Shared>,
    connect: Connect,
    client_id: Arc<str>,
    assigned: Option<String>,
    identity: Arc<Identity>,
) -> Result<Connection, lifecycle::NotOwner> {
    let terms = negotiate(&shared, &connect);
    let (evict_tx, evict) = oneshot::channel();
    let keep_alive_ms = u64::from(terms.keep_alive) * 1500;
    shared.ensure_keep_alive_sweeper();
    let attached = lifecycle::attach(
        &shared,
        lifecycle::Attach {
            client_id: &client_id,
            clean_start: connect.clean_start,
            expiry: terms.expiry,
            identity: &identity,
            evict: evict_tx,
            keep_alive_ms,
            will: connect.will.as_ref().map(will_record),
        },
    )?;

    let version = connect.protocol;
    let mut ack = ConnAck::new(ReasonCode::Success, attached.present);
    if version.is_v5() {
        let options = shared.options();
        let p = &mut ack.properties;
        p.receive_maximum = Some(options.receive_maximum);
        p.maximum_packet_size = Some(options.max_packet_size);
        p.topic_alias_maximum = Some(options.max_topic_alias);
        p.assigned_client_identifier = assigned.and_then(|id| MqttString::try_from(id).ok());
        if terms.keep_alive != connect.keep_alive {
            p.server_keep_alive = Some(terms.keep_alive);
        }
        p.session_expiry_interval = terms.granted_expiry;
    }
    info!(version = ?version, clean_start = connect.clean_start, session_present = attached.present, "client connected");
    let stats = shared.stats();
    stats.clients_connected.fetch_add(1, Ordering::Relaxed);
    stats.clients_total.fetch_add(1, Ordering::Relaxed);

    let props = &connect.properties;
    let mut conn = Connection {
        durable: DurableWait::new(shared.persist()),
        wrote_at_ms: shared.clock_ms(),
        shared,
        // The session's own allocation of the id from now on: the store matches the changes of
        // one queue entry by it, and a resumed session has the id of the connection that
        // created it.
        client_id: attached.session.client_id.clone(),
        session: attached.session,
        generation: attached.generation,
        version,
        identity,
        keep_alive_ms,
        reading_paused: false,
        unflushed: false,
        will: connect.will.map(Box::new),
        evict,
        client: ClientLimits {
            receive_maximum: props.receive_maximum.map_or(u16::MAX, |r| r.get()),
            max_packet_size: props.maximum_packet_size.map_or(u32::MAX, |m| m.get()),
            topic_alias_max: props.topic_alias_maximum.unwrap_or(0),
        },
        expiry_was_zero: terms.expiry_was_zero,
        aliases: None,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        held: VecDeque::new(),
        congested: None,
    };
    conn.send_when(attached.ticket, Packet::ConnAck(ack));
    conn.resend_in_flight();
    Ok(conn)
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

impl Connection {
    /// DISCONNECT from the client (§3.14): it may change the Session Expiry Interval (under the
    /// broker's cap, never up from 0); returns how the connection ends, with or without the will.
    pub(super) fn on_disconnect(
        &mut self,
        d: codec::Disconnect,
    ) -> Result<lifecycle::Close, super::violation::Violation> {
        if let Some(secs) = d.properties.session_expiry_interval {
            if self.expiry_was_zero && secs != 0 {
                return Err(super::violation::Violation::SessionExpiryRaisedFromZero);
            }
            let (expiry, _) = Expiry::from_interval(secs, self.shared.options().max_session_expiry);
            self.session.lock().set_expiry(expiry);
        }
        debug!(reason = ?d.reason_code, "client disconnected");
        Ok(if d.reason_code == ReasonCode::DisconnectWithWillMessage {
            lifecycle::Close::WithWill
        } else {
            lifecycle::Close::Normal
        })
    }
}
