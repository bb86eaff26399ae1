//! OCSP (RFC 6960) for client certificates: [`OcspChecker`] asks after the TLS handshake,
//! [`OcspCache`] is what [`ClientVerifier`](crate::ClientVerifier) reads during it.

mod cache;
mod checker;
mod response;

use std::time::Duration;

use crate::error::OcspError;

pub use cache::OcspCache;
pub use checker::{OcspChecker, OcspStats};

/// The revocation status a trustworthy OCSP response gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not revoked.
    Good,
    /// Revoked: always rejected.
    Revoked,
    /// The responder does not know the certificate: a failure to get an answer, so
    /// [`FailureMode`] decides.
    Unknown,
}

/// What a failure to get a trustworthy answer means ([`FailureMode::allows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Reject the client.
    #[default]
    FailClosed,
    /// Let the client in (the caller logs a warning).
    FailOpen,
}

impl FailureMode {
    /// Whether a client whose check returned `result` may connect: `Good` always, `Revoked`
    /// never, `Unknown` and errors (timeout, refused, bad response...) only under
    /// [`FailureMode::FailOpen`].
    pub fn allows(self, result: &Result<Status, OcspError>) -> bool {
        match result {
            Ok(Status::Good) => true,
            Ok(Status::Revoked) => false,
            Ok(Status::Unknown) | Err(_) => self == Self::FailOpen,
        }
    }
}

/// What [`OcspChecker::new`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspOptions {
    /// The client CA bundle, PEM (the same as [`VerifierOptions::ca_bundle_pem`](crate::VerifierOptions)):
    /// where issuers not sent in the client's chain are found.
    pub ca_bundle_pem: Vec<u8>,
    /// Bounds the whole check: connect, request, response.
    pub timeout: Duration,
    /// How long a `good` or `revoked` answer is reused at most: never past the response's
    /// `nextUpdate` or, without one, past 5 minutes after its `thisUpdate`.
    pub cache_ttl: Duration,
}
