//! Client-certificate verification for rustls servers, with OCSP revocation checks.
//!
//! - [`ClientVerifier`] is a rustls 0.23 [`ClientCertVerifier`](rustls::server::danger::ClientCertVerifier)
//!   (ring provider) wrapping rustls' `WebPkiClientVerifier`: client chains must lead to a
//!   certificate of a PEM CA bundle (clients may send intermediates), be within their validity
//!   period and carry the clientAuth usage. `required: false` asks for a certificate without
//!   insisting; one that is sent must still verify.
//! - [`UserMapping`] turns the verified end-entity certificate into a username.
//! - [`OcspChecker`] asks the certificate's OCSP responder (RFC 6960, URL from its Authority
//!   Information Access) and verifies the answer: signed by the issuer or by a responder the
//!   issuer gave the OCSP-signing usage, matching CertID and nonce, `thisUpdate`/`nextUpdate`
//!   current. An answer that echoes no nonce could be a replay: its `good` (or `unknown`) is
//!   believed only while fresh, that is `nextUpdate` in the future or, without `nextUpdate`,
//!   `thisUpdate` at most 5 minutes old ([`OcspError::StaleWithoutNonce`]). Redirects are not
//!   followed ([`OcspError::Redirect`]) and at most 64 KiB of a response is read
//!   ([`OcspError::ResponseTooLarge`]). [`FailureMode`] says what a missing or untrustworthy
//!   answer means.
//!
//! # Where the OCSP check runs
//!
//! rustls verifiers are synchronous and run inside the handshake, so they must not do network
//! I/O. The split is:
//!
//! 1. During the handshake, [`ClientVerifier`] verifies the chain and consults the
//!    [`OcspCache`] only: a certificate cached as revoked fails the handshake at once.
//! 2. After the handshake and before CONNACK, the server awaits [`OcspChecker::check`] on the
//!    peer's chain in that connection's task (other connections are not blocked), then decides
//!    with [`FailureMode::allows`]. `check` answers from the cache when it can and fills it
//!    with `good` and `revoked` answers, each kept for the TTL or while it is fresh (until its
//!    `nextUpdate`, or 5 minutes after its `thisUpdate` without one), whichever ends first;
//!    failures and `unknown` are never cached. Concurrent checks of one certificate share one
//!    request.
//!
//! # Changes
//!
//! - Since issue #16: [`OcspError`] has three more variants, [`OcspError::StaleWithoutNonce`],
//!   [`OcspError::Redirect`] (kind `http`) and [`OcspError::ResponseTooLarge`] (kind
//!   `bad_response`); a `match` over it needs arms for them. [`OcspOptions::cache_ttl`] is now
//!   an upper bound: an answer is cached no longer than it is fresh.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use mtls_verifier::{
//!     ClientVerifier, FailureMode, OcspChecker, OcspOptions, UserMapping, VerifierOptions,
//! };
//! use rustls::pki_types::{CertificateDer, PrivateKeyDer};
//!
//! # async fn run(
//! #     server_chain: Vec<CertificateDer<'static>>,
//! #     server_key: PrivateKeyDer<'static>,
//! #     conn: rustls::ServerConnection,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! let ca_bundle_pem = std::fs::read("clients-ca.pem")?;
//! let checker = OcspChecker::new(&OcspOptions {
//!     ca_bundle_pem: ca_bundle_pem.clone(),
//!     timeout: Duration::from_secs(3),
//!     cache_ttl: Duration::from_secs(3600),
//! })?;
//! let verifier = ClientVerifier::new(&VerifierOptions { ca_bundle_pem, required: true })?
//!     .with_ocsp_cache(checker.cache());
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let config = rustls::ServerConfig::builder_with_provider(provider)
//!     .with_safe_default_protocol_versions()?
//!     .with_client_cert_verifier(verifier.into_arc())
//!     .with_single_cert(server_chain, server_key)?;
//! # let _ = config;
//!
//! // Per connection, after the handshake and before CONNACK:
//! if let Some(chain) = conn.peer_certificates() {
//!     let result = checker.check(chain).await;
//!     if !FailureMode::FailClosed.allows(&result) {
//!         // CONNACK "not authorized", then close.
//!         return Ok(());
//!     }
//!     let user = UserMapping::CommonName.user_for(&chain[0])?;
//! #   let _ = user;
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod ocsp;
mod user;
mod verifier;

pub use error::{BuildError, OcspError, UserError};
pub use ocsp::{FailureMode, OcspCache, OcspChecker, OcspOptions, OcspStats, Status};
pub use user::{UserMapping, common_name, subject_and_serial};
pub use verifier::{ClientVerifier, VerifierOptions};
