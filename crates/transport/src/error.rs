//! Errors of this crate: loading a TLS identity (configuration) and handshakes (peer).

use std::time::Duration;

/// A certificate or key that cannot be used; the operator's configuration is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate PEM holds no certificate.
    #[error("no certificate found in the certificate PEM")]
    NoCertificate,
    /// The certificate PEM could not be parsed.
    #[error("certificate PEM cannot be read: {0}")]
    CertificatePem(rustls::pki_types::pem::Error),
    /// The key PEM holds no usable private key.
    #[error("private key PEM cannot be read: {0}")]
    KeyPem(rustls::pki_types::pem::Error),
    /// rustls refused the key, or the key does not belong to the certificate.
    #[error("certificate and key cannot be used: {0}")]
    Rejected(rustls::Error),
}

/// Why a connection never reached MQTT; the peer (or the network) is at fault.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// TLS and WebSocket handshakes did not finish in time.
    #[error("handshake not finished within {0:?}")]
    Timeout(Duration),
    /// The TLS handshake failed.
    #[error("tls handshake failed: {0}")]
    Tls(std::io::Error),
    /// The WebSocket upgrade did not offer the `mqtt` subprotocol (MQTT 5.0 §6.0); refused with
    /// HTTP 400.
    #[error("websocket upgrade refused with 400: the mqtt subprotocol was not offered")]
    NoMqttSubprotocol,
    /// The WebSocket upgrade came from a browser page whose `Origin` (the first 64 characters
    /// here) is not allowed; refused with HTTP 403.
    #[error("websocket upgrade refused with 403: origin {0:?} is not allowed")]
    OriginNotAllowed(String),
    /// `GET /metrics` without the bearer token it needs, or with a wrong one; refused with 401.
    #[error("metrics request refused with 401: missing or wrong bearer token")]
    MetricsUnauthorized,
    /// A request other than `/health` and `/metrics` on a port that serves only those (MQTT over
    /// WebSocket is off there); refused with 404.
    #[error("http request refused with 404: this port serves /health and /metrics only")]
    NotFound,
    /// Reading the HTTP request or writing the answer failed.
    #[error("http request failed: {0}")]
    Http(std::io::Error),
    /// The WebSocket upgrade failed.
    #[error("websocket handshake failed: {0}")]
    WebSocket(tokio_tungstenite::tungstenite::Error),
}
