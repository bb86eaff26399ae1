//! [`ClientVerifier`] in real rustls handshakes (in memory), with the xtask test PKI: required
//! and optional client authentication, and the user taken from the peer's certificate.

use std::sync::Arc;

use mtls_verifier::{ClientVerifier, UserMapping, VerifierOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use xtask::pki::{Credential, Pki, PkiOptions};

fn pki() -> Pki {
    xtask::pki::generate(&PkiOptions::default()).expect("generating the test PKI")
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("parsing certificates")
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("parsing a private key")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server(pki: &Pki, required: bool) -> ServerConnection {
    let verifier = ClientVerifier::new(&VerifierOptions {
        ca_bundle_pem: pki.ca.cert_pem.clone().into_bytes(),
        required,
    })
    .expect("building the verifier");
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier.into_arc())
        .with_single_cert(certs(&pki.server.chain_pem), key(&pki.server.key_pem))
        .expect("server config");
    ServerConnection::new(Arc::new(config)).expect("server connection")
}

fn client(pki: &Pki, identity: Option<&Credential>) -> ClientConnection {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca.cert_der.clone()))
        .expect("adding the root");
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(client) => builder
            .with_client_auth_cert(certs(&client.chain_pem), key(&client.key_pem))
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").expect("a server name");
    ClientConnection::new(Arc::new(config), name).expect("client connection")
}

/// Runs the handshake to completion; the server's error if it fails.
fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).expect("writing client records");
        }
        if !buf.is_empty() {
            server
                .read_tls(&mut buf.as_slice())
                .expect("reading client records");
            server.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).expect("writing server records");
        }
        if !buf.is_empty() {
            client
                .read_tls(&mut buf.as_slice())
                .expect("reading server records");
            // The client learns of a rejection only from the server's alert.
            let _ = client.process_new_packets();
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn required_mode_accepts_a_valid_certificate_and_names_its_user() {
    let pki = pki();
    let (mut c, mut s) = (client(&pki, Some(&pki.alice)), server(&pki, true));
    assert_eq!(handshake(&mut c, &mut s), Ok(()));
    let chain = s.peer_certificates().expect("the client's chain");
    assert_eq!(
        UserMapping::CommonName.user_for(&chain[0]),
        Ok(Some("alice".to_owned()))
    );
}

#[test]
fn required_mode_accepts_an_intermediate_issued_certificate_with_its_chain() {
    let pki = pki();
    let (mut c, mut s) = (client(&pki, Some(&pki.carol)), server(&pki, true));
    assert_eq!(handshake(&mut c, &mut s), Ok(()));
}

#[test]
fn required_mode_rejects_a_client_without_a_certificate() {
    let pki = pki();
    let (mut c, mut s) = (client(&pki, None), server(&pki, true));
    assert_eq!(
        handshake(&mut c, &mut s),
        Err(rustls::Error::NoCertificatesPresented)
    );
}

#[test]
fn optional_mode_accepts_a_client_without_a_certificate() {
    let pki = pki();
    let (mut c, mut s) = (client(&pki, None), server(&pki, false));
    assert_eq!(handshake(&mut c, &mut s), Ok(()));
    assert!(s.peer_certificates().is_none());
}

#[test]
fn optional_mode_still_rejects_a_certificate_from_another_ca() {
    let pki = pki();
    let (mut c, mut s) = (client(&pki, Some(&pki.stranger)), server(&pki, false));
    assert_eq!(
        handshake(&mut c, &mut s),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    );
}
