//! Checking a basic OCSP response (RFC 6960 §4.2): signer, CertID, nonce, freshness, and how
//! long the answer may be believed.

use std::time::{Duration, SystemTime};

use der::asn1::ObjectIdentifier;
use der::oid::AssociatedOid;
use der::{Decode, Encode};
use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_ocsp::ext::Nonce;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspResponse, OcspResponseStatus, ResponseData,
};

use super::Status;
use crate::error::OcspError;

/// `id-pkix-ocsp-basic` (RFC 6960 §4.2.1).
const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// `id-kp-OCSPSigning` as DER content bytes (1.3.6.1.5.5.7.3.9), for webpki's EKU check.
const OCSP_SIGNING_EKU: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09];
/// Clock skew allowed between us and the responder on `thisUpdate` / `nextUpdate`.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// How long an answer without `nextUpdate` stays fresh after its `thisUpdate`. RFC 6960 §4.2.2.1
/// says such a responder always has newer information; five minutes is the age past which an
/// answer that does not echo our nonce could be a replay of one given before a revocation.
pub(super) const MAX_AGE_WITHOUT_NEXT_UPDATE: Duration = Duration::from_secs(5 * 60);

/// A trustworthy answer for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) status: Status,
    /// Until when the answer is fresh: its `nextUpdate`, or without one
    /// [`MAX_AGE_WITHOUT_NEXT_UPDATE`] after its `thisUpdate`. It is cached no longer.
    pub(super) fresh_until: SystemTime,
}

/// Decodes and checks an OCSP response body to the request that carried `nonce`; on success the
/// status of `cert_id` and until when it is fresh.
///
/// An answer that echoes our nonce was made for this request. One that echoes none (responders
/// that pre-sign their answers, RFC 5019 §2.1) could be a replay of an old one, so its `good` or
/// `unknown` is believed only while fresh: `nextUpdate` in the future or, without `nextUpdate`,
/// `thisUpdate` at most [`MAX_AGE_WITHOUT_NEXT_UPDATE`] old. A `revoked` answer is believed at
/// any age: replaying it lets nobody in.
pub(super) fn verify_response(
    body: &[u8],
    cert_id: &CertId,
    nonce: &[u8],
    issuer_der: &CertificateDer<'static>,
    now: SystemTime,
) -> Result<Answer, OcspError> {
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

    let echoed = data
        .response_extensions
        .iter()
        .flatten()
        .find(|ext| ext.extn_id == Nonce::OID);
    if let Some(echoed) = echoed {
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
    let fresh_until = next_update.unwrap_or_else(|| {
        this_update
            .checked_add(MAX_AGE_WITHOUT_NEXT_UPDATE)
            .unwrap_or(this_update)
    });
    if echoed.is_none() && status != Status::Revoked && fresh_until <= now {
        return Err(OcspError::StaleWithoutNonce);
    }
    Ok(Answer {
        status,
        fresh_until,
    })
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

    use x509_cert::Certificate;
    use x509_ocsp::{OcspRequest, Request, TbsRequest, Version};
    use xtask::testing::require_program;

    use super::super::checker::{NONCE_LEN, cert_id, request};
    use super::*;

    const NONCE: [u8; NONCE_LEN] = [7; NONCE_LEN];

    /// A genuine response from `openssl ocsp` run offline (`-reqin`/`-respout`, no network) to
    /// our request for `alice`, valid for `minutes` from now; `None` without openssl.
    fn signed_response(minutes: u32) -> Option<(Vec<u8>, CertId, CertificateDer<'static>)> {
        openssl_response(Some(minutes), true)
    }

    /// [`signed_response`] with or without `nextUpdate` (`-nmin`), to a request with our nonce
    /// (which openssl echoes) or with none (as a pre-signed answer would be).
    fn openssl_response(
        next_update_minutes: Option<u32>,
        with_nonce: bool,
    ) -> Option<(Vec<u8>, CertId, CertificateDer<'static>)> {
        if !require_program("openssl") {
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
        let request = if with_nonce {
            request(id.clone(), &NONCE).expect("a request")
        } else {
            OcspRequest {
                tbs_request: TbsRequest {
                    version: Version::V1,
                    requestor_name: None,
                    request_list: vec![Request {
                        req_cert: id.clone(),
                        single_request_extensions: None,
                    }],
                    request_extensions: None,
                },
                optional_signature: None,
            }
            .to_der()
            .expect("a request without nonce")
        };
        std::fs::write(&req, request).expect("writing");
        let next_update = next_update_minutes
            .map(|minutes| vec!["-nmin".to_owned(), minutes.to_string()])
            .unwrap_or_default();
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
            .args(["-rkey", "ocsp.key"])
            .args(next_update)
            .arg("-reqin")
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
        let answer = verify_response(&body, &id, &NONCE, &ca, now).expect("valid");
        assert_eq!(answer.status, Status::Good);
        // -nmin sets nextUpdate, which is when the answer stops being fresh.
        let next = answer.fresh_until;
        assert!(next > now && next <= now + Duration::from_secs(11 * 60));
    }

    #[test]
    fn answer_without_our_nonce_or_next_update_is_believed_for_five_minutes_only() {
        // What a replayed answer looks like: openssl echoes no nonce to a request without one,
        // and without -nmin/-ndays it sets no nextUpdate.
        let Some((body, id, ca)) = openssl_response(None, false) else {
            return;
        };
        let now = SystemTime::now();
        let answer = verify_response(&body, &id, &NONCE, &ca, now).expect("fresh: just made");
        assert_eq!(answer.status, Status::Good);
        assert!(answer.fresh_until > now);
        assert!(answer.fresh_until <= now + MAX_AGE_WITHOUT_NEXT_UPDATE);
        // The same bytes replayed six minutes on: thisUpdate is too old to trust without nonce.
        let later = now + Duration::from_secs(6 * 60);
        assert_eq!(
            verify_response(&body, &id, &NONCE, &ca, later),
            Err(OcspError::StaleWithoutNonce)
        );
    }

    #[test]
    fn answer_without_our_nonce_is_not_believed_past_next_update() {
        let Some((body, id, ca)) = openssl_response(Some(1), false) else {
            return;
        };
        let now = SystemTime::now();
        let answer = verify_response(&body, &id, &NONCE, &ca, now).expect("fresh: just made");
        assert!(answer.fresh_until <= now + Duration::from_secs(61));
        // Past nextUpdate but within the clock skew an answer to our nonce would still pass;
        // one that could be a replay does not.
        let later = now + Duration::from_secs(2 * 60);
        assert_eq!(
            verify_response(&body, &id, &NONCE, &ca, later),
            Err(OcspError::StaleWithoutNonce)
        );
    }

    #[test]
    fn answer_to_our_nonce_without_next_update_is_believed_and_fresh_for_five_minutes() {
        let Some((body, id, ca)) = openssl_response(None, true) else {
            return;
        };
        let now = SystemTime::now();
        let answer = verify_response(&body, &id, &NONCE, &ca, now).expect("valid");
        assert_eq!(answer.status, Status::Good);
        assert!(answer.fresh_until > now);
        assert!(answer.fresh_until <= now + MAX_AGE_WITHOUT_NEXT_UPDATE);
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
