//! Revocation of connected clients: the certificate of a client admitted over mTLS with OCSP
//! is checked again each time its cached answer runs out (`cacheTtl`); a certificate found
//! revoked (or without a trustworthy answer under `fail-closed`) ends the connection (v5
//! DISCONNECT 0x87).
//!
//! One task per broker looks at the watched connections once a second; the checks themselves
//! run as tasks of their own, answered from the OCSP cache while it holds an answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;
use transport::rustls::pki_types::CertificateDer;

use crate::client_auth::ClientAuth;
use crate::session::{Eviction, Session};

/// How often the watch looks for certificates due a check.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// One watched connection.
#[derive(Debug)]
struct Watched {
    session: Weak<Session>,
    generation: u64,
    chain: Arc<[CertificateDer<'static>]>,
    due: Instant,
}

/// The connected clients whose certificates are checked again.
#[derive(Debug)]
pub(crate) struct RevocationWatch {
    client_auth: Arc<ClientAuth>,
    every: Duration,
    /// By session id.
    watched: Mutex<HashMap<u64, Watched>>,
    started: std::sync::Once,
}

impl RevocationWatch {
    /// A watch for `client_auth`'s connections; `None` when it checks no revocation.
    pub fn new(client_auth: &Arc<ClientAuth>) -> Option<Arc<Self>> {
        let every = client_auth.recheck_every()?;
        Some(Arc::new(Self {
            client_auth: client_auth.clone(),
            every: every.max(Duration::from_millis(100)),
            watched: Mutex::new(HashMap::new()),
            started: std::sync::Once::new(),
        }))
    }

    /// Watches the connection `generation` of `session`, admitted with `chain`.
    pub fn watch(
        self: &Arc<Self>,
        session: &Arc<Session>,
        generation: u64,
        chain: &[CertificateDer<'static>],
    ) {
        if chain.is_empty() {
            return;
        }
        self.started.call_once(|| {
            tokio::spawn(look(Arc::downgrade(self)));
        });
        let mut watched = self.lock();
        // Two connections racing for one session: the newer one is watched.
        if watched
            .get(&session.id)
            .is_some_and(|w| w.generation > generation)
        {
            return;
        }
        watched.insert(
            session.id,
            Watched {
                session: Arc::downgrade(session),
                generation,
                chain: chain.into(),
                due: Instant::now() + self.every,
            },
        );
    }

    /// Stops watching connection `generation` of the session `session_id` (it ended).
    pub fn unwatch(&self, session_id: u64, generation: u64) {
        let mut watched = self.lock();
        if watched
            .get(&session_id)
            .is_some_and(|w| w.generation == generation)
        {
            watched.remove(&session_id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Watched>> {
        self.watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The watch's loop; it ends when the broker is dropped.
async fn look(watch: Weak<RevocationWatch>) {
    let mut ticks = tokio::time::interval(LOOK_EVERY.min(Duration::from_millis(250)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(watch) = watch.upgrade() else {
            return;
        };
        let now = Instant::now();
        let due: Vec<(Weak<Session>, u64, Arc<[CertificateDer<'static>]>)> = {
            let mut watched = watch.lock();
            watched.retain(|_, w| w.session.strong_count() > 0);
            watched
                .values_mut()
                .filter(|w| w.due <= now)
                .map(|w| {
                    w.due = now + watch.every;
                    (w.session.clone(), w.generation, w.chain.clone())
                })
                .collect()
        };
        for (session, generation, chain) in due {
            let client_auth = watch.client_auth.clone();
            tokio::spawn(async move {
                if client_auth.still_valid(&chain).await {
                    return;
                }
                let Some(session) = session.upgrade() else {
                    return;
                };
                let mut state = session.lock();
                if state.generation() == generation {
                    state.evict(Eviction::CertificateRevoked);
                }
            });
        }
    }
}
