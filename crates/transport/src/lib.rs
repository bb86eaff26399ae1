//! TCP, TLS and WebSocket listeners turned into MQTT byte streams.
//!
//! A [`Listener`] only accepts: [`Listener::accept`] returns an [`Accepted`] TCP connection at
//! once, and the connection's own task calls [`Accepted::handshake`], which runs the TLS and
//! WebSocket handshakes under the listener's handshake timeout. Every kind of listener ends in
//! the same [`Stream`] (an `AsyncRead + AsyncWrite` byte stream) plus [`PeerInfo`].
//!
//! TLS uses rustls with the `ring` provider, TLS 1.2 and 1.3. One [`ServerTls`] is built from
//! the certificate and key and shared by every TLS listener; [`ServerTls::replace_identity`]
//! swaps the certificate for new connections, and [`ServerTls::watch_files`] does so whenever
//! the certificate or key file changes. MQTT over WebSocket (MQTT 5.0 §6) needs the `mqtt`
//! subprotocol and binary frames; packets may span frames and frames may hold several packets.
//! The WebSocket port also answers `GET /health` and `GET /metrics` from an [`HttpStatus`];
//! `/metrics` may ask for a bearer token, upgrades may be limited to some browser origins, and
//! a port may serve the endpoints only ([`Listener::status_only`]). A [`HandshakeLimit`] caps
//! the handshakes in progress, over all listeners and per client address.
//!
//! This crate does not read the broker's configuration: the server maps it onto
//! [`Protocol`] and [`ServerTls`].

mod error;
mod http;
mod limit;
mod listener;
mod reload;
mod stream;
mod tls;
mod ws;

pub use error::{HandshakeError, TlsError};
pub use http::HttpStatus;
pub use limit::HandshakeLimit;
pub use listener::{Accepted, Listener, Protocol};
pub use reload::{IdentityFiles, KeySource, LoadError};
pub use stream::{PeerInfo, Stream, TransportKind};
pub use tls::{ServerTls, TlsIdentity};

/// The rustls types callers need (certificates in [`PeerInfo`], client configurations in tests).
pub use rustls;
