//! [`OcspChecker`]: builds the request, POSTs it to the certificate's responder under a timeout,
//! and caches trustworthy answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use der::asn1::{Null, ObjectIdentifier, OctetString};
use der::oid::AssociatedOid;
use der::{Decode, Encode};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::ext::Nonce;
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest, Version};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::cache::{CacheKey, OcspCache, cache_key};
use super::response::{Answer, verify_response};
use super::{OcspOptions, Status};
use crate::error::{BuildError, OcspError};

/// `id-sha1`: the CertID hash every responder understands (RFC 5019 §2.1.1).
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// Nonce length in bytes (RFC 8954 §2.1 recommends 32 at most).
pub(super) const NONCE_LEN: usize = 16;
/// The most response bytes read. A response for one certificate is a few hundred bytes to a
/// few KiB (with the responder's certificate); anything near this is not an OCSP answer.
pub(super) const MAX_RESPONSE_LEN: usize = 64 * 1024;

/// Checks client certificates with their issuer's OCSP responder, asynchronously.
///
/// Run [`OcspChecker::check`] after the TLS handshake and before CONNACK, on the chain from
/// `ServerConnection::peer_certificates()`; decide with [`FailureMode::allows`](super::FailureMode::allows). Answers land in
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
    counters: Arc<Counters>,
}

/// What [`OcspChecker::stats`] reports: running totals since the checker was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OcspStats {
    /// Checks answered from the cache, without asking a responder.
    pub cache_hits: u64,
    /// Requests sent to responders.
    pub requests: u64,
}

#[derive(Debug, Default)]
struct Counters {
    cache_hits: AtomicU64,
    requests: AtomicU64,
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
    /// RFC 6960 Appendix A), ignores proxy environment variables, follows no redirects (a
    /// redirect is a failure, [`OcspError::Redirect`]) and reads at most 64 KiB of a response
    /// ([`OcspError::ResponseTooLarge`]).
    pub fn new(options: &OcspOptions) -> Result<Self, BuildError> {
        let cas = CertificateDer::pem_slice_iter(&options.ca_bundle_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(BuildError::CaBundlePem)?;
        if cas.is_empty() {
            return Err(BuildError::EmptyCaBundle);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            // The certificate names its responder; a redirect could send the request (and the
            // connection slot it holds) anywhere.
            .redirect(reqwest::redirect::Policy::none())
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
            counters: Arc::default(),
        })
    }

    /// The cache this checker fills; give it to
    /// [`ClientVerifier::with_ocsp_cache`](crate::ClientVerifier::with_ocsp_cache).
    pub fn cache(&self) -> OcspCache {
        self.cache.clone()
    }

    /// Cache hits and responder requests so far, for metrics.
    pub fn stats(&self) -> OcspStats {
        OcspStats {
            cache_hits: self.counters.cache_hits.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
        }
    }

    fn hit(&self, status: Status) -> Result<Status, OcspError> {
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        Ok(status)
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
            return self.hit(status);
        }
        let issuer_der = self.issuer_of(leaf_der, &leaf, &chain[1..])?;
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
            return self.hit(status);
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let Answer {
            status,
            fresh_until,
        } = self.fetch(url, leaf, issuer_der).await?;
        if status != Status::Unknown {
            self.cache.insert(turn.key.clone(), status, fresh_until);
        }
        Ok(status)
    }

    /// The certificate that issued `leaf`: named as its issuer and holding the key that signed
    /// it. The CA bundle is searched before the client's own certificates, and a name alone
    /// never suffices: a client could append a certificate named like its CA, whose key would
    /// then anchor the CertID and the response signature.
    fn issuer_of(
        &self,
        leaf_der: &[u8],
        leaf: &Certificate,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<CertificateDer<'static>, OcspError> {
        let wanted = &leaf.tbs_certificate.issuer;
        let (_, parsed_leaf) =
            X509Certificate::from_der(leaf_der).map_err(OcspError::certificate)?;
        self.cas
            .iter()
            .chain(intermediates.iter())
            .find(|candidate| {
                Certificate::from_der(candidate).is_ok_and(|c| &c.tbs_certificate.subject == wanted)
                    && X509Certificate::from_der(candidate).is_ok_and(|(_, issuer)| {
                        parsed_leaf
                            .verify_signature(Some(issuer.public_key()))
                            .is_ok()
                    })
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
    ) -> Result<Answer, OcspError> {
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
        if response.status().is_redirection() {
            return Err(OcspError::Redirect {
                url: url.to_owned(),
                status: response.status().as_u16(),
                location: location(&response),
            });
        }
        if !response.status().is_success() {
            return Err(OcspError::HttpStatus {
                url: url.to_owned(),
                status: response.status().as_u16(),
            });
        }
        let body = read_body(response, url).await?;
        verify_response(&body, &cert_id, &nonce, issuer_der, SystemTime::now())
    }
}

/// The body of `response`, read chunk by chunk and given up on past [`MAX_RESPONSE_LEN`]: a
/// responder cannot make us hold more than that (plus one chunk of the HTTP client's buffer).
async fn read_body(mut response: reqwest::Response, url: &str) -> Result<Vec<u8>, OcspError> {
    let too_large = || OcspError::ResponseTooLarge {
        url: url.to_owned(),
        limit: MAX_RESPONSE_LEN,
    };
    let declared = response.content_length().unwrap_or(0);
    if declared > MAX_RESPONSE_LEN as u64 {
        return Err(too_large());
    }
    // `declared` is at most MAX_RESPONSE_LEN here.
    let mut body = Vec::with_capacity(usize::try_from(declared).unwrap_or(MAX_RESPONSE_LEN));
    while let Some(chunk) = response.chunk().await.map_err(|e| OcspError::Http {
        url: url.to_owned(),
        reason: e.to_string(),
    })? {
        if body.len() + chunk.len() > MAX_RESPONSE_LEN {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A redirect's `Location`, cut to 256 characters (it is the peer's text, shown in logs).
fn location(response: &reqwest::Response) -> String {
    let value = response
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    value.chars().take(256).collect()
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
pub(super) fn cert_id(leaf: &Certificate, issuer: &Certificate) -> Result<CertId, der::Error> {
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
pub(super) fn request(cert_id: CertId, nonce: &[u8]) -> Result<Vec<u8>, der::Error> {
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
