//! [`ClientVerifier`]: the rustls [`ClientCertVerifier`] built from a client CA bundle.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};

use crate::error::BuildError;
use crate::ocsp::{OcspCache, Status};

/// What [`ClientVerifier::new`] needs: the crate's own small options type, so this crate does
/// not depend on the broker's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierOptions {
    /// The client CA bundle, PEM: one or more certificates, each a trust anchor. Intermediates
    /// need not be here when clients send them in their chain.
    pub ca_bundle_pem: Vec<u8>,
    /// `true`: a client without a valid certificate fails the handshake. `false`: a certificate is
    /// requested but optional; one that is sent must still verify.
    pub required: bool,
}

/// A rustls client-certificate verifier: rustls' [`WebPkiClientVerifier`] (chain to the CA
/// bundle, validity period, clientAuth usage, signatures) with the ring provider.
///
/// It is synchronous, like every rustls verifier, so it does no network I/O: revocation is
/// checked after the handshake (see the [crate docs](crate)).
pub struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    ocsp: Option<OcspCache>,
}

impl fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientVerifier")
            .field("required", &self.inner.client_auth_mandatory())
            .finish_non_exhaustive()
    }
}

impl ClientVerifier {
    /// Builds the verifier from `options`, with rustls' ring crypto provider.
    pub fn new(options: &VerifierOptions) -> Result<Self, BuildError> {
        let roots = root_store(&options.ca_bundle_pem)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let builder = if options.required {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        Ok(Self {
            inner: builder.build()?,
            ocsp: None,
        })
    }

    /// Also fails the handshake of a client whose certificate `cache` holds as revoked. The
    /// verifier only reads the cache: [`OcspChecker::check`](crate::OcspChecker::check) fills it
    /// after handshakes.
    #[must_use]
    pub fn with_ocsp_cache(mut self, cache: OcspCache) -> Self {
        self.ocsp = Some(cache);
        self
    }

    /// The verifier as rustls' `ServerConfig` builder takes it
    /// (`ServerConfig::builder_with_provider(..).with_client_cert_verifier(..)`).
    pub fn into_arc(self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(self)
    }
}

/// Parses every certificate of `pem` into a root store.
fn root_store(pem: &[u8]) -> Result<RootCertStore, BuildError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(BuildError::CaBundlePem)?;
        roots
            .add(cert)
            .map_err(|source| BuildError::CaCertificate { index, source })?;
    }
    if roots.is_empty() {
        return Err(BuildError::EmptyCaBundle);
    }
    Ok(roots)
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(cache) = &self.ocsp
            && cache.get(end_entity) == Some(Status::Revoked)
        {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rustls::Error;
    use xtask::pki::{Credential, Pki, PkiOptions};

    use super::*;

    fn pki() -> Pki {
        xtask::pki::generate(&PkiOptions::default()).expect("generating the test PKI")
    }

    fn verifier(ca_pem: &str, required: bool) -> ClientVerifier {
        ClientVerifier::new(&VerifierOptions {
            ca_bundle_pem: ca_pem.as_bytes().to_vec(),
            required,
        })
        .expect("building the verifier")
    }

    /// Verifies `client`'s chain as a TLS peer sends it: leaf first, then intermediates.
    fn verify(verifier: &ClientVerifier, client: &Credential) -> Result<(), Error> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(client.chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("parsing the client chain");
        let (leaf, intermediates) = chain.split_first().expect("a non-empty chain");
        verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn accepts_client_issued_by_the_ca() {
        let pki = pki();
        assert_eq!(
            verify(&verifier(&pki.ca.cert_pem, true), &pki.alice),
            Ok(())
        );
    }

    #[test]
    fn accepts_client_issued_by_an_intermediate_sent_in_its_chain() {
        let pki = pki();
        assert_eq!(
            verify(&verifier(&pki.ca.cert_pem, true), &pki.carol),
            Ok(())
        );
    }

    #[test]
    fn rejects_intermediate_client_without_its_chain() {
        let pki = pki();
        let verifier = verifier(&pki.ca.cert_pem, true);
        let leaf = CertificateDer::from(pki.carol.cert_der.clone());
        let result = verifier.verify_client_cert(&leaf, &[], UnixTime::now());
        assert!(matches!(
            result,
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        ));
    }

    #[test]
    fn rejects_client_of_another_ca() {
        let pki = pki();
        assert_eq!(
            verify(&verifier(&pki.ca.cert_pem, true), &pki.stranger),
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        );
    }

    #[test]
    fn accepts_clients_of_every_ca_in_the_bundle() {
        let pki = pki();
        let bundle = format!("{}{}", pki.ca.cert_pem, pki.other_ca.cert_pem);
        let verifier = verifier(&bundle, true);
        assert_eq!(verify(&verifier, &pki.alice), Ok(()));
        assert_eq!(verify(&verifier, &pki.stranger), Ok(()));
    }

    #[test]
    fn rejects_expired_client() {
        let pki = pki();
        let result = verify(&verifier(&pki.ca.cert_pem, true), &pki.expired);
        assert!(
            matches!(
                result,
                Err(Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. }
                ))
            ),
            "{result:?}"
        );
    }

    #[test]
    fn required_flag_decides_whether_a_certificate_is_mandatory() {
        let pki = pki();
        let required = verifier(&pki.ca.cert_pem, true);
        assert!(required.offer_client_auth());
        assert!(required.client_auth_mandatory());
        let optional = verifier(&pki.ca.cert_pem, false);
        assert!(optional.offer_client_auth());
        assert!(!optional.client_auth_mandatory());
    }

    #[test]
    fn rejects_empty_ca_bundle() {
        let result = ClientVerifier::new(&VerifierOptions {
            ca_bundle_pem: b"no certificates here\n".to_vec(),
            required: true,
        });
        assert!(
            matches!(result, Err(BuildError::EmptyCaBundle)),
            "{result:?}"
        );
    }
}
