//! The server's TLS set-up: one certificate and key shared by every TLS listener, replaceable
//! while running.
//!
//! rustls with the `ring` provider, named explicitly: the workspace has one crypto provider.

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, version};

use crate::error::TlsError;

/// ALPN protocol ID of MQTT (IANA registry), selected when the client offers it.
const ALPN_MQTT: &[u8] = b"mqtt";
/// ALPN of the HTTP/1.1 upgrade that carries secure WebSocket.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A server certificate chain with its private key, checked to belong together.
#[derive(Clone)]
pub struct TlsIdentity(Arc<CertifiedKey>);

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("certificates", &self.0.cert.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Reads a PEM certificate chain (end entity first) and a PEM private key (PKCS #8, SEC1 or
    /// PKCS #1).
    pub fn from_pem(certificate_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(certificate_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsError::CertificatePem)?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::KeyPem)?;
        let certified =
            CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Rejected)?;
        Ok(Self(Arc::new(certified)))
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The current identity, read at every handshake.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a complete identity: replacing it is a single assignment.
        Some(match self.0.read() {
            Ok(key) => key.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

/// The TLS configurations of the server, built once and shared by every TLS listener.
///
/// MQTT over TLS selects ALPN `mqtt` when the client offers ALPN (a client offering only other
/// protocols is refused, as ALPN requires); secure WebSocket selects `http/1.1`.
#[derive(Debug, Clone)]
pub struct ServerTls {
    resolver: Arc<Resolver>,
    mqtt: Arc<ServerConfig>,
    web_socket: Arc<ServerConfig>,
}

impl ServerTls {
    /// TLS 1.2 and 1.3 with `identity`, no client certificates.
    pub fn new(identity: TlsIdentity) -> Result<Self, TlsError> {
        Self::build(identity, None)
    }

    /// TLS 1.2 and 1.3 with `identity`, asking clients for certificates that `verifier` checks
    /// (for example an `mtls_verifier::ClientVerifier`). The verified chain reaches the server in
    /// [`PeerInfo::client_certificates`](crate::PeerInfo::client_certificates).
    pub fn with_client_verifier(
        identity: TlsIdentity,
        verifier: Arc<dyn ClientCertVerifier>,
    ) -> Result<Self, TlsError> {
        Self::build(identity, Some(verifier))
    }

    fn build(
        identity: TlsIdentity,
        verifier: Option<Arc<dyn ClientCertVerifier>>,
    ) -> Result<Self, TlsError> {
        let resolver = Arc::new(Resolver(RwLock::new(identity.0)));
        let config = |alpn: &[u8]| -> Result<Arc<ServerConfig>, TlsError> {
            let builder = ServerConfig::builder_with_provider(Arc::new(provider()))
                .with_protocol_versions(&[&version::TLS13, &version::TLS12])
                .map_err(TlsError::Rejected)?;
            let builder = match &verifier {
                Some(verifier) => builder.with_client_cert_verifier(verifier.clone()),
                None => builder.with_no_client_auth(),
            };
            let mut config = builder.with_cert_resolver(resolver.clone());
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(config))
        };
        Ok(Self {
            mqtt: config(ALPN_MQTT)?,
            web_socket: config(ALPN_HTTP1)?,
            resolver,
        })
    }

    /// Uses `identity` for every handshake from now on; established connections keep theirs.
    pub fn replace_identity(&self, identity: TlsIdentity) {
        match self.resolver.0.write() {
            Ok(mut current) => *current = identity.0,
            Err(poisoned) => *poisoned.into_inner() = identity.0,
        }
    }

    pub(crate) fn mqtt_config(&self) -> Arc<ServerConfig> {
        self.mqtt.clone()
    }

    pub(crate) fn web_socket_config(&self) -> Arc<ServerConfig> {
        self.web_socket.clone()
    }
}
