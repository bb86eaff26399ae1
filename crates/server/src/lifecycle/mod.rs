//! When a session starts, changes hands and ends: a connection attaches to a session (new,
//! resumed or taken over), detaches from it (will, expiry), and the session ends when its
//! expiry runs out with no client back. Wills live in `will.rs`, the clock of a detached
//! session in `offline.rs`, rebuilding sessions from the store at start-up in `recovery.rs`.

mod offline;
mod recovery;
#[cfg(test)]
mod tests;
mod will;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use auth::Identity;
use codec::LastWill;
use tokio::sync::oneshot;
use tracing::debug;

pub(crate) use offline::{Offline, run_offline};
pub(crate) use recovery::restore;
pub(crate) use will::{publish_action, publish_will, will_message, will_record};

use crate::broker::Shared;
use crate::escape::Escaped;
use crate::session::{Eviction, Expiry, Owner, Session};

/// What a connection asks for when it attaches (from its CONNECT).
pub(crate) struct Attach<'a> {
    pub client_id: &'a Arc<str>,
    pub clean_start: bool,
    pub expiry: Expiry,
    pub identity: &'a Arc<Identity>,
    /// The way to tell this connection to go.
    pub evict: oneshot::Sender<Eviction>,
    pub keep_alive_ms: u64,
    /// The will, as stored with a persistent session.
    pub will: Option<store::WillRecord>,
}

/// A connection attached to its session.
pub(crate) struct Attached {
    pub session: Arc<Session>,
    /// The generation this connection owns.
    pub generation: u64,
    /// Session Present: an existing session was resumed.
    pub present: bool,
    /// What the CONNACK waits for in the store.
    pub ticket: u64,
}

/// The client id names a session that belongs to another identity: the CONNECT is refused, and
/// the session and its connection are left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotOwner;

/// Finds or creates the session for a connecting client and attaches the connection to it.
/// A session belongs to the identity that created it: another identity is refused
/// ([`NotOwner`]) before anything changes. A connection of the owner already attached is told to
/// go ([`Eviction::TakenOver`]); with Clean Start the old session is discarded (it leaves the
/// index and the store) and a fresh one takes its place. The session is stored (persistent) or
/// forgotten (not), and a resumed session's subscriptions read with the new connection's
/// identity from now on.
pub(crate) fn attach(shared: &Shared, request: Attach<'_>) -> Result<Attached, NotOwner> {
    let Attach {
        client_id,
        clean_start,
        expiry,
        identity,
        evict,
        keep_alive_ms,
        will,
    } = request;
    let mut sessions = shared.sessions();
    let existing = sessions.get(client_id).cloned();
    if let Some(old) = &existing
        && old.owner.as_deref() != identity.user.as_deref()
    {
        return Err(NotOwner);
    }
    let owner = identity.user.clone();
    let mut discarded = None;
    let (session, present) = match existing {
        Some(old) => {
            let mut state = old.lock();
            state.evict(Eviction::TakenOver);
            if clean_start {
                // The old connection must stop draining a session that no longer exists.
                state.retire();
                let last_seq = state.last_seq();
                drop(state);
                let fresh = Session::owned_by(client_id.clone(), expiry, owner);
                // Store positions are never reused for one client id, even across sessions.
                fresh.lock().continue_seq_after(last_seq);
                sessions.insert(client_id.clone(), fresh.clone());
                discarded = Some(old);
                (fresh, false)
            } else {
                drop(state);
                (old, true)
            }
        }
        None => {
            let fresh = Session::owned_by(client_id.clone(), expiry, owner);
            sessions.insert(client_id.clone(), fresh.clone());
            (fresh, false)
        }
    };
    let mut state = session.lock();
    let generation = state.attach(evict, expiry);
    // This connection's deadline replaces its predecessor's.
    session
        .keep_alive
        .start(generation, shared.clock_ms().saturating_add(keep_alive_ms));
    drop(state);
    drop(sessions);

    let mut ticket = 0;
    if let Some(old) = discarded {
        shared.unindex_session(&old);
        ticket = old.lock().forget_stored(&old.client_id, shared.persist());
    }
    let owner = Owner {
        // The session's own allocation of the id (a resumed session keeps the one of the
        // connection that created it): the store matches an entry's changes by it.
        client_id: &session.client_id,
        generation,
        persist: shared.persist(),
    };
    let stored = session
        .lock()
        .store_attached(owner, will, session.owner.as_deref());
    ticket = ticket.max(stored);
    if present {
        let subscriptions: Vec<_> = session.lock().subscriptions().cloned().collect();
        shared.index_subscriptions(&session, &subscriptions, identity);
    }
    Ok(Attached {
        session,
        generation,
        present,
        ticket,
    })
}

/// How a connection ended; decides what happens to the will and the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// The client sent DISCONNECT 0x00: discard the will.
    Normal,
    /// The client sent DISCONNECT 0x04, or the connection failed: publish the will.
    WithWill,
    /// Another connection took the session.
    TakenOver,
    /// The broker is shutting down.
    Shutdown,
    /// The session's owner was removed or deactivated: the will is due, and the session ends.
    Revoked,
}

/// A connection that ended, as its session sees it.
pub(crate) struct Detach<'a> {
    pub session: &'a Arc<Session>,
    pub generation: u64,
    pub identity: &'a Arc<Identity>,
    pub will: Option<LastWill>,
    pub close: Close,
}

/// Detaches an ended connection from its session: publishes the will now or after its delay
/// (cancelled by a reconnect), records the disconnect in the store, and ends the session now
/// (clean) or when its expiry runs out with no client back.
pub(crate) fn detach(shared: &Arc<Shared>, departure: Detach<'_>) {
    let Detach {
        session,
        generation,
        identity,
        will,
        close,
    } = departure;
    shared
        .stats()
        .clients_connected
        .fetch_sub(1, Ordering::Relaxed);
    let will = match close {
        Close::WithWill | Close::TakenOver | Close::Revoked => will,
        Close::Normal | Close::Shutdown => None,
    };
    let (still_owner, expiry) = {
        let mut state = session.lock();
        let owner = state.detach(generation);
        if owner {
            session.keep_alive.stop(generation);
            session.wake.clear();
        }
        if let Some(watch) = shared.revocation() {
            watch.unwatch(session.id, generation);
        }
        (owner, state.expiry())
    };
    let mut delayed_will = None;
    if let Some(will) = will {
        let delay = Duration::from_secs(will.properties.will_delay_interval.map_or(0, u64::from));
        // The will goes out when the session ends at the latest: at once for a session that
        // ends now (the offline clock caps the delay of the others).
        let delay = if expiry == Expiry::OnClose {
            Duration::ZERO
        } else {
            delay
        };
        if delay.is_zero() {
            let message = Arc::new(will_message(will, session.id));
            publish_will(shared, identity, &session.client_id, &message);
        } else if still_owner {
            delayed_will = Some((will, delay));
        }
        // A takeover reconnects at once: only an immediate will can still go out.
    }
    if !still_owner {
        return;
    }
    let disconnected_at = SystemTime::now();
    let owner = Owner {
        client_id: &session.client_id,
        generation,
        persist: shared.persist(),
    };
    session.lock().store_record(
        owner,
        Some(disconnected_at),
        delayed_will.as_ref().map(|(will, _)| will_record(will)),
        session.owner.as_deref(),
    );
    if close == Close::Shutdown {
        return;
    }
    let ends_in = match expiry {
        _ if close == Close::Revoked => {
            end_session(shared, session, generation);
            return;
        }
        Expiry::OnClose => {
            end_session(shared, session, generation);
            return;
        }
        Expiry::After(d) => Some(d),
        Expiry::Never => None,
    };
    if ends_in.is_none() && delayed_will.is_none() {
        return;
    }
    let offline = Offline {
        session: session.clone(),
        generation,
        identity: identity.clone(),
        ends_in,
        will: delayed_will.map(|(will, delay)| (Arc::new(will_message(will, session.id)), delay)),
        disconnected_at,
    };
    tokio::spawn(run_offline(shared.clone(), offline));
}

/// After a change of the access rules (a users file reload): every session whose owner is no
/// longer valid (removed or deactivated) ends; a connected one is told to go first (v5
/// DISCONNECT 0x87) and ends when its connection does. Returns how many connections were told.
pub(crate) fn enforce_access(shared: &Shared) -> usize {
    let mut evicted = 0;
    for session in shared.all_sessions() {
        if shared.access().is_identity_valid(&session.owner_identity()) {
            continue;
        }
        let mut state = session.lock();
        if state.evict(Eviction::AccessRevoked) {
            evicted += 1;
        } else if !state.is_connected() {
            let generation = state.generation();
            drop(state);
            debug!(client_id = %Escaped(&session.client_id), "session's owner is gone; session ended");
            end_session(shared, &session, generation);
        }
    }
    evicted
}

/// Ends a session if no connection attached to it since `generation`: it leaves the registry,
/// the index and the store.
pub(crate) fn end_session(shared: &Shared, session: &Arc<Session>, generation: u64) {
    let mut sessions = shared.sessions();
    {
        let state = session.lock();
        if state.generation() != generation || state.is_connected() {
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
    shared.unindex_session(session);
    session
        .lock()
        .forget_stored(&session.client_id, shared.persist());
    debug!(client_id = %Escaped(&session.client_id), "session ended");
}
