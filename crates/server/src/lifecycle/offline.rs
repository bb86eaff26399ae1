//! The clock of a session with no client: the will it still owes goes out after its delay, and
//! the session ends when its expiry runs out, unless a client attaches first. Runs for sessions
//! whose connection just ended and for those recovered from the store.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth::Identity;

use super::{end_session, publish_will};
use crate::broker::Shared;
use crate::message::Message;
use crate::session::{Owner, Session};

/// A session without a client, and what its clock has to do.
#[derive(Debug)]
pub(crate) struct Offline {
    pub session: Arc<Session>,
    /// The generation of the connection that left; any other attached since cancels the clock.
    pub generation: u64,
    /// Who the client was (its rights decide whether the will may go out).
    pub identity: Arc<Identity>,
    /// Time left before the session ends; `None`: never.
    pub ends_in: Option<Duration>,
    /// The will still owed, and its delay from now.
    pub will: Option<(Arc<Message>, Duration)>,
    /// When the client went away (the restart, for one connected when the broker stopped).
    pub disconnected_at: SystemTime,
}

/// Runs the clock of an offline session; see the module documentation.
pub(crate) async fn run_offline(shared: Arc<Shared>, offline: Offline) {
    let Offline {
        session,
        generation,
        identity,
        ends_in,
        will,
        disconnected_at,
    } = offline;
    let started = tokio::time::Instant::now();
    if let Some((message, delay)) = will {
        // At the latest when the session ends.
        let delay = ends_in.map_or(delay, |end| delay.min(end));
        tokio::time::sleep(delay).await;
        // [MQTT-3.1.3-9]: a client back within the delay cancels the will.
        if attached_since(&session, generation) {
            return;
        }
        publish_will(&shared, &identity, &session.client_id, &message);
        will_sent(&shared, &session, generation, disconnected_at);
    }
    if let Some(end) = ends_in.and_then(|end| started.checked_add(end)) {
        tokio::time::sleep_until(end).await;
        end_session(&shared, &session, generation);
    }
}

fn attached_since(session: &Session, generation: u64) -> bool {
    let state = session.lock();
    state.generation() != generation || state.is_connected()
}

/// After a delayed will went out: the stored session no longer owes it, so a restart does not
/// send it again.
fn will_sent(shared: &Shared, session: &Session, generation: u64, disconnected_at: SystemTime) {
    let mut state = session.lock();
    if state.is_connected() {
        return;
    }
    let owner = Owner {
        client_id: &session.client_id,
        generation,
        persist: shared.persist(),
    };
    state.store_record(owner, Some(disconnected_at), None, session.owner.as_deref());
}
