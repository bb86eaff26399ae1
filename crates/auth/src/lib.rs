//! Authentication and authorization for the broker: who a client is, and what it may publish
//! and read.
//!
//! The broker calls an [`AccessControl`] for every CONNECT, PUBLISH and SUBSCRIBE, and for every
//! delivery. This crate owns that interface and two implementations: [`UsersAccess`], users and
//! roles from a YAML users file with Argon2id password hashes, and [`AllowAll`] for tests.
//!
//! Permissions use Harper's verbs: `read` (subscribe and receive), `insert` (publish),
//! `update` (publish retained), `delete` (clear a retained message). In each role the first rule
//! whose filter matches and that names the verb decides; a verb no rule decides is denied.

mod filter;
mod policy;
mod users;

pub use policy::{ANONYMOUS_ROLE, Policy, UsersAccess};
pub use users::{
    RoleEntry, RuleEntry, UserEntry, UsersFile, UsersFileError, generate_password, hash_password,
};

use std::net::SocketAddr;
use std::sync::Arc;

/// What a client presented when it connected.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRequest<'a> {
    /// The client identifier (after the broker assigned one, if it did).
    pub client_id: &'a str,
    /// CONNECT user name.
    pub username: Option<&'a str>,
    /// CONNECT password. Never log it.
    pub password: Option<&'a [u8]>,
    /// The remote address.
    pub peer: SocketAddr,
    /// The user a verified client certificate maps to, if any.
    pub certificate_user: Option<&'a str>,
}

/// The authenticated identity of a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user name, or `None` for an anonymous client.
    pub user: Option<Arc<str>>,
}

/// Why a connection was refused; the broker maps it onto a CONNACK code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Missing or wrong credentials.
    #[error("bad user name or password")]
    BadCredentials,
    /// Known user, but not allowed to connect.
    #[error("not authorized")]
    NotAuthorized,
}

/// What a PUBLISH would do to the topic, in Harper's verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishAction {
    /// A message without retain.
    Insert,
    /// A retained message, replacing the stored one.
    Update,
    /// A retained empty payload, clearing the stored message.
    Delete,
}

/// The broker's questions to an access policy. Implementations must be cheap: the broker calls
/// `may_read` for every delivery through a wildcard subscription.
pub trait AccessControl: Send + Sync + 'static {
    /// Decides whether a CONNECT logs in, and as whom.
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Identity, Refusal>;
    /// Whether `identity` may publish to `topic`.
    fn may_publish(
        &self,
        identity: &Identity,
        client_id: &str,
        topic: &str,
        action: PublishAction,
    ) -> bool;
    /// Whether `identity` may subscribe to `filter` (the part after any `$share/{group}/`).
    fn may_subscribe(&self, identity: &Identity, client_id: &str, filter: &str) -> bool;
    /// Whether a message on `topic` may be delivered to `identity`.
    fn may_read(&self, identity: &Identity, client_id: &str, topic: &str) -> bool;
    /// Whether a connected identity may stay connected (false once its user was removed or
    /// deactivated). The broker asks after a policy reload.
    fn is_identity_valid(&self, _identity: &Identity) -> bool {
        true
    }
    /// Changes whenever a decision may have changed (a reload of the rules): the broker checks a
    /// queued message again before sending it only when the revision moved since routing.
    /// Implementations whose rules never change keep the default, 0.
    fn revision(&self) -> u64 {
        0
    }
}

/// Lets every client in as the user it names and allows every publish and subscribe. For tests
/// and for `requireAuthentication: false` set-ups with no rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl AccessControl for AllowAll {
    fn authenticate(&self, request: &ConnectRequest<'_>) -> Result<Identity, Refusal> {
        let user = request.certificate_user.or(request.username);
        Ok(Identity {
            user: user.map(Arc::from),
        })
    }

    fn may_publish(&self, _: &Identity, _: &str, _: &str, _: PublishAction) -> bool {
        true
    }

    fn may_subscribe(&self, _: &Identity, _: &str, _: &str) -> bool {
        true
    }

    fn may_read(&self, _: &Identity, _: &str, _: &str) -> bool {
        true
    }
}
