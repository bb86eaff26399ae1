//! [`OcspChecker`]: the OCSP client (RFC 6960) that runs after the TLS handshake, and the
//! [`OcspCache`] that [`ClientVerifier`](crate::ClientVerifier) reads during it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use der::asn1::{Null, ObjectIdentifier, OctetString};
use der::oid::AssociatedOid;
use der::{Decode, Encode};
use moka::sync::Cache;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::ext::Nonce;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    ResponseData, TbsRequest, Version,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{BuildError, OcspError};

/// `id-sha1`: the CertID hash every responder understands (RFC 5019 §2.1.1).
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// `id-pkix-ocsp-basic` (RFC 6960 §4.2.1).
const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// `id-kp-OCSPSigning` as DER content bytes (1.3.6.1.5.5.7.3.9), for webpki's EKU check.
const OCSP_SIGNING_EKU: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09];
/// Clock skew allowed between us and the responder on `thisUpdate` / `nextUpdate`.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Nonce length in bytes (RFC 8954 §2.1 recommends 32 at most).
const NONCE_LEN: usize = 16;

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
    /// How long a `good` or `revoked` answer is reused, capped by the response's `nextUpdate`.
    pub cache_ttl: Duration,
}

/// Cache key: the certificate's issuer name (DER) and serial number, both computable from the
/// end-entity certificate alone, so the verifier can look it up mid-handshake.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    issuer: Vec<u8>,
    serial: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct CachedStatus {
    status: Status,
    /// The response's `nextUpdate`, if any: the answer is not used past it.
    valid_until: Option<SystemTime>,
}

/// OCSP answers already obtained, shared by [`OcspChecker`] (writes) and
/// [`ClientVerifier`](crate::ClientVerifier) (reads). Cheap to clone. Only `good` and `revoked`
/// are cached; failures and `unknown` never are.
#[derive(Clone)]
pub struct OcspCache {
    entries: Cache<CacheKey, CachedStatus>,
}

impl fmt::Debug for OcspCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcspCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl OcspCache {
    fn new(ttl: Duration) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The cached status of the DER end-entity certificate `cert`, if still fresh.
    pub fn get(&self, cert: &[u8]) -> Option<Status> {
        let key = cache_key(&Certificate::from_der(cert).ok()?).ok()?;
        self.lookup(&key)
    }

    fn lookup(&self, key: &CacheKey) -> Option<Status> {
        let cached = self.entries.get(key)?;
        match cached.valid_until {
            Some(until) if until < SystemTime::now() => {
                self.entries.invalidate(key);
                None
            }
            _ => Some(cached.status),
        }
    }
}

fn cache_key(cert: &Certificate) -> Result<CacheKey, der::Error> {
    Ok(CacheKey {
        issuer: cert.tbs_certificate.issuer.to_der()?,
        serial: cert.tbs_certificate.serial_number.as_bytes().to_vec(),
    })
}

/// Checks client certificates with their issuer's OCSP responder, asynchronously.
///
/// Run [`OcspChecker::check`] after the TLS handshake and before CONNACK, on the chain from
/// `ServerConnection::peer_certificates()`; decide with [`FailureMode::allows`]. Answers land in
/// [`OcspChecker::cache`], which the verifier consults so a cached `revoked` fails the next
/// handshake outright.
#[derive(Debug, Clone)]
pub struct OcspChecker {
    http: reqwest::Client,
    cas: Vec<CertificateDer<'static>>,
    timeout: Duration,
    cache: OcspCache,
    in_flight: Arc<InFlightMap>,
    rng: SystemRandom,
}

/// Certificates being checked right now, each with the lock its checks queue on.
type InFlightMap = Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>;

/// One check's place in [`InFlightMap`]; the last one out removes the entry, also when the
/// check is cancelled by the timeout.
struct InFlight<'a> {
    map: &'a InFlightMap,
    key: CacheKey,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> InFlight<'a> {
    fn join(map: &'a InFlightMap, key: CacheKey) -> Self {
        let gate = map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        Self { map, key, gate }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        // Clones are only made under the map lock: two left means the map's and ours.
        if Arc::strong_count(&self.gate) == 2 {
            map.remove(&self.key);
        }
    }
}

impl OcspChecker {
    /// Builds the checker. The HTTP client speaks plain HTTP only (OCSP responders are `http://`,
    /// RFC 6960 Appendix A) and ignores proxy environment variables.
    pub fn new(options: &OcspOptions) -> Result<Self, BuildError> {
        let cas = CertificateDer::pem_slice_iter(&options.ca_bundle_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(BuildError::CaBundlePem)?;
        if cas.is_empty() {
            return Err(BuildError::EmptyCaBundle);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            // Checks are rare thanks to the cache; a pooled connection the responder has since
            // closed would only turn into a spurious failure.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| BuildError::HttpClient(e.to_string()))?;
        Ok(Self {
            http,
            cas,
            timeout: options.timeout,
            cache: OcspCache::new(options.cache_ttl),
            in_flight: Arc::default(),
            rng: SystemRandom::new(),
        })
    }

    /// The cache this checker fills; give it to
    /// [`ClientVerifier::with_ocsp_cache`](crate::ClientVerifier::with_ocsp_cache).
    pub fn cache(&self) -> OcspCache {
        self.cache.clone()
    }

    /// The revocation status of `chain[0]`, from the cache or from the responder named in its
    /// Authority Information Access extension, within the configured timeout.
    ///
    /// `chain` is the client's chain as sent (leaf first), already verified by the handshake;
    /// the issuer is `chain[1]` or a certificate of the CA bundle.
    pub async fn check(&self, chain: &[CertificateDer<'_>]) -> Result<Status, OcspError> {
        let leaf_der = chain.first().ok_or(OcspError::EmptyChain)?;
        let leaf = Certificate::from_der(leaf_der).map_err(OcspError::certificate)?;
        let key = cache_key(&leaf).map_err(OcspError::certificate)?;
        if let Some(status) = self.cache.lookup(&key) {
            return Ok(status);
        }
        let issuer_der = self.issuer_of(&leaf, &chain[1..])?;
        let url = ocsp_url(leaf_der)?;
        tokio::time::timeout(
            self.timeout,
            self.check_uncached(key, &url, &leaf, &issuer_der),
        )
        .await
        .map_err(|_| OcspError::Timeout {
            url: url.clone(),
            timeout: self.timeout,
        })?
    }

    /// Asks the responder, one request at a time per certificate: concurrent checks of the same
    /// certificate wait for the first and then find its answer in the cache.
    async fn check_uncached(
        &self,
        key: CacheKey,
        url: &str,
        leaf: &Certificate,
        issuer_der: &CertificateDer<'static>,
    ) -> Result<Status, OcspError> {
        let turn = InFlight::join(&self.in_flight, key);
        let _guard = turn.gate.lock().await;
        if let Some(status) = self.cache.lookup(&turn.key) {
            return Ok(status);
        }
        let (status, valid_until) = self.fetch(url, leaf, issuer_der).await?;
        if status != Status::Unknown {
            self.cache.entries.insert(
                turn.key.clone(),
                CachedStatus {
                    status,
                    valid_until,
                },
            );
        }
        Ok(status)
    }

    fn issuer_of(
        &self,
        leaf: &Certificate,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<CertificateDer<'static>, OcspError> {
        let wanted = &leaf.tbs_certificate.issuer;
        intermediates
            .iter()
            .chain(self.cas.iter())
            .find(|candidate| {
                Certificate::from_der(candidate).is_ok_and(|c| &c.tbs_certificate.subject == wanted)
            })
            .map(|der| der.clone().into_owned())
            .ok_or_else(|| OcspError::NoIssuer {
                issuer: wanted.to_string(),
            })
    }

    async fn fetch(
        &self,
        url: &str,
        leaf: &Certificate,
        issuer_der: &CertificateDer<'static>,
    ) -> Result<(Status, Option<SystemTime>), OcspError> {
        let issuer = Certificate::from_der(issuer_der).map_err(OcspError::certificate)?;
        let cert_id = cert_id(leaf, &issuer).map_err(OcspError::certificate)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| OcspError::Malformed("no randomness for the nonce".to_owned()))?;
        let request = request(cert_id.clone(), &nonce).map_err(OcspError::malformed)?;

        let response = self
            .http
            .post(url)
            .header("content-type", "application/ocsp-request")
            .body(request)
            .send()
            .await
            .map_err(|e| OcspError::Http {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        if !response.status().is_success() {
            return Err(OcspError::HttpStatus {
                url: url.to_owned(),
                status: response.status().as_u16(),
            });
        }
        let body = response.bytes().await.map_err(|e| OcspError::Http {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        verify_response(&body, &cert_id, &nonce, issuer_der, SystemTime::now())
    }
}

/// The OCSP URL from the certificate's Authority Information Access extension.
fn ocsp_url(cert: &[u8]) -> Result<String, OcspError> {
    let (_, parsed) = X509Certificate::from_der(cert).map_err(OcspError::certificate)?;
    for ext in parsed.extensions() {
        if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
            for desc in &aia.accessdescs {
                if desc.access_method == OID_PKIX_ACCESS_DESCRIPTOR_OCSP
                    && let GeneralName::URI(uri) = desc.access_location
                {
                    return Ok(uri.to_owned());
                }
            }
        }
    }
    Err(OcspError::NoOcspUrl {
        subject: parsed.subject().to_string(),
    })
}

/// CertID for `leaf` issued by `issuer` (RFC 6960 §4.1.1), SHA-1 hashed.
fn cert_id(leaf: &Certificate, issuer: &Certificate) -> Result<CertId, der::Error> {
    let name = issuer.tbs_certificate.subject.to_der()?;
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let sha1 = |data: &[u8]| digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: ID_SHA1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1(&name).as_ref())?,
        issuer_key_hash: OctetString::new(sha1(key).as_ref())?,
        serial_number: leaf.tbs_certificate.serial_number.clone(),
    })
}

/// An unsigned OCSPRequest for one certificate, with a nonce extension (RFC 6960 §4.4.1).
fn request(cert_id: CertId, nonce: &[u8]) -> Result<Vec<u8>, der::Error> {
    let nonce = Nonce::new(nonce)?;
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions: Some(vec![Extension {
                extn_id: Nonce::OID,
                critical: false,
                extn_value: OctetString::new(nonce.to_der()?)?,
            }]),
        },
        optional_signature: None,
    }
    .to_der()
}

/// Decodes and checks an OCSP response body; on success the status of `cert_id` and its
/// `nextUpdate`.
fn verify_response(
    body: &[u8],
    cert_id: &CertId,
    nonce: &[u8],
    issuer_der: &CertificateDer<'static>,
    now: SystemTime,
) -> Result<(Status, Option<SystemTime>), OcspError> {
    let response = OcspResponse::from_der(body).map_err(OcspError::malformed)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(OcspError::Responder(format!(
            "{:?}",
            response.response_status
        )));
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| OcspError::Malformed("successful response without a body".to_owned()))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(OcspError::Malformed(format!(
            "response type {} is not id-pkix-ocsp-basic",
            bytes.response_type
        )));
    }
    let basic =
        BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(OcspError::malformed)?;
    // The signature covers tbsResponseData as received; `der` rejects non-canonical encodings,
    // so re-encoding the decoded value reproduces those bytes exactly.
    let signed = basic
        .tbs_response_data
        .to_der()
        .map_err(OcspError::malformed)?;
    verify_signature(&basic, &signed, issuer_der, now)?;
    let data: &ResponseData = &basic.tbs_response_data;

    if let Some(echoed) = data
        .response_extensions
        .iter()
        .flatten()
        .find(|ext| ext.extn_id == Nonce::OID)
    {
        let echoed = Nonce::from_der(echoed.extn_value.as_bytes()).map_err(OcspError::malformed)?;
        if echoed.0.as_bytes() != nonce {
            return Err(OcspError::NonceMismatch);
        }
    }

    let single = data
        .responses
        .iter()
        .find(|single| same_cert(&single.cert_id, cert_id))
        .ok_or(OcspError::NoMatchingResponse)?;
    let this_update = single.this_update.0.to_system_time();
    if this_update > now + CLOCK_SKEW {
        return Err(OcspError::NotYetValid);
    }
    let next_update = single.next_update.map(|t| t.0.to_system_time());
    if next_update.is_some_and(|next| next + CLOCK_SKEW < now) {
        return Err(OcspError::Stale);
    }
    let status = match single.cert_status {
        CertStatus::Good(_) => Status::Good,
        CertStatus::Revoked(_) => Status::Revoked,
        CertStatus::Unknown(_) => Status::Unknown,
    };
    Ok((status, next_update))
}

fn same_cert(a: &CertId, b: &CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number == b.serial_number
}

/// The response must be signed by the issuer itself or by a certificate in the response that
/// the issuer issued with the OCSP-signing EKU (RFC 6960 §4.2.2.2).
fn verify_signature(
    basic: &BasicOcspResponse,
    signed: &[u8],
    issuer_der: &CertificateDer<'static>,
    now: SystemTime,
) -> Result<(), OcspError> {
    let signature = basic
        .signature
        .as_bytes()
        .ok_or_else(|| OcspError::Malformed("signature has unused bits".to_owned()))?;
    let algs = signature_algorithms(&basic.signature_algorithm.oid)?;
    let signed_by = |cert: &EndEntityCert<'_>| {
        algs.iter()
            .any(|alg| cert.verify_signature(*alg, signed, signature).is_ok())
    };

    let issuer = EndEntityCert::try_from(issuer_der).map_err(|_| OcspError::BadSignature)?;
    if signed_by(&issuer) {
        return Ok(());
    }
    let anchor =
        webpki::anchor_from_trusted_cert(issuer_der).map_err(|_| OcspError::BadSignature)?;
    let time = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    for cert in basic.certs.iter().flatten() {
        let Ok(der) = cert.to_der() else { continue };
        let der = CertificateDer::from(der);
        let Ok(responder) = EndEntityCert::try_from(&der) else {
            continue;
        };
        let authorized = responder
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                std::slice::from_ref(&anchor),
                &[],
                time,
                KeyUsage::required(OCSP_SIGNING_EKU),
                None,
                None,
            )
            .is_ok();
        if authorized && signed_by(&responder) {
            return Ok(());
        }
    }
    Err(OcspError::BadSignature)
}

/// The ring algorithms an OCSP signature algorithm OID may mean (the curve comes from the key).
fn signature_algorithms(
    oid: &ObjectIdentifier,
) -> Result<&'static [&'static dyn SignatureVerificationAlgorithm], OcspError> {
    use webpki::ring as alg;
    const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
    const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
    const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
    const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
    static ECDSA_256: [&dyn SignatureVerificationAlgorithm; 2] =
        [alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256];
    static ECDSA_384: [&dyn SignatureVerificationAlgorithm; 2] =
        [alg::ECDSA_P256_SHA384, alg::ECDSA_P384_SHA384];
    static RSA_256: [&dyn SignatureVerificationAlgorithm; 1] = [alg::RSA_PKCS1_2048_8192_SHA256];
    static RSA_384: [&dyn SignatureVerificationAlgorithm; 1] = [alg::RSA_PKCS1_2048_8192_SHA384];
    static RSA_512: [&dyn SignatureVerificationAlgorithm; 1] = [alg::RSA_PKCS1_2048_8192_SHA512];
    static EDDSA: [&dyn SignatureVerificationAlgorithm; 1] = [alg::ED25519];
    Ok(match *oid {
        ECDSA_SHA256 => &ECDSA_256,
        ECDSA_SHA384 => &ECDSA_384,
        RSA_SHA256 => &RSA_256,
        RSA_SHA384 => &RSA_384,
        RSA_SHA512 => &RSA_512,
        ED25519 => &EDDSA,
        other => return Err(OcspError::UnsupportedAlgorithm(other.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    const NONCE: [u8; NONCE_LEN] = [7; NONCE_LEN];

    /// A genuine response from `openssl ocsp` run offline (`-reqin`/`-respout`, no network) to
    /// our request for `alice`, valid for `minutes` from now; `None` without openssl.
    fn signed_response(minutes: u32) -> Option<(Vec<u8>, CertId, CertificateDer<'static>)> {
        if Command::new("openssl").arg("version").output().is_err() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "openssl is required when CI=true"
            );
            eprintln!("skipping: openssl not found on PATH");
            return None;
        }
        let pki = xtask::pki::generate(&xtask::pki::PkiOptions::default()).expect("test PKI");
        let dir = tempfile::tempdir().expect("a temporary directory");
        pki.write_to(dir.path()).expect("writing the PKI");
        let leaf = Certificate::from_der(&pki.alice.cert_der).expect("alice parses");
        let ca = Certificate::from_der(&pki.ca.cert_der).expect("the CA parses");
        let id = cert_id(&leaf, &ca).expect("a CertID");
        let req = dir.path().join("req.der");
        let resp = dir.path().join("resp.der");
        std::fs::write(&req, request(id.clone(), &NONCE).expect("a request")).expect("writing");
        let out = Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "ocsp",
                "-index",
                "index.txt",
                "-CA",
                "ca.pem",
                "-rsigner",
                "ocsp.pem",
            ])
            .args(["-rkey", "ocsp.key", "-nmin", &minutes.to_string(), "-reqin"])
            .arg(&req)
            .arg("-respout")
            .arg(&resp)
            .output()
            .expect("running openssl ocsp");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body = std::fs::read(&resp).expect("reading the response");
        Some((body, id, CertificateDer::from(pki.ca.cert_der.clone())))
    }

    #[test]
    fn accepts_fresh_response_and_reports_next_update() {
        let Some((body, id, ca)) = signed_response(10) else {
            return;
        };
        let now = SystemTime::now();
        let (status, next) = verify_response(&body, &id, &NONCE, &ca, now).expect("valid");
        assert_eq!(status, Status::Good);
        let next = next.expect("-nmin sets nextUpdate");
        assert!(next > now && next <= now + Duration::from_secs(11 * 60));
    }

    #[test]
    fn rejects_response_past_next_update() {
        let Some((body, id, ca)) = signed_response(1) else {
            return;
        };
        // nextUpdate is a minute away; past it plus the allowed skew, the answer is stale.
        let later = SystemTime::now() + Duration::from_secs(60) + CLOCK_SKEW * 2;
        assert_eq!(
            verify_response(&body, &id, &NONCE, &ca, later),
            Err(OcspError::Stale)
        );
    }

    #[test]
    fn rejects_response_from_the_future() {
        let Some((body, id, ca)) = signed_response(10) else {
            return;
        };
        // Our clock runs well behind the responder's: thisUpdate lies in our future.
        let earlier = SystemTime::now() - CLOCK_SKEW * 2;
        assert_eq!(
            verify_response(&body, &id, &NONCE, &ca, earlier),
            Err(OcspError::NotYetValid)
        );
    }

    #[test]
    fn rejects_response_for_another_certificate() {
        let Some((body, mut id, ca)) = signed_response(10) else {
            return;
        };
        id.serial_number = x509_cert::serial_number::SerialNumber::new(&[1]).expect("a serial");
        assert_eq!(
            verify_response(&body, &id, &NONCE, &ca, SystemTime::now()),
            Err(OcspError::NoMatchingResponse)
        );
    }

    #[test]
    fn rejects_response_verified_against_another_issuer() {
        let Some((body, id, _)) = signed_response(10) else {
            return;
        };
        let other = xtask::pki::generate(&xtask::pki::PkiOptions::default()).expect("test PKI");
        let other_ca = CertificateDer::from(other.ca.cert_der);
        assert_eq!(
            verify_response(&body, &id, &NONCE, &other_ca, SystemTime::now()),
            Err(OcspError::BadSignature)
        );
    }
}
