//! [`OcspCache`]: `good` and `revoked` answers by issuer and serial, with a TTL.

use std::fmt;
use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use moka::sync::Cache;
use x509_cert::Certificate;

use super::Status;

/// Cache key: the certificate's issuer name (DER) and serial number, both computable from the
/// end-entity certificate alone, so the verifier can look it up mid-handshake.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    pub(super) issuer: Vec<u8>,
    pub(super) serial: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct CachedStatus {
    pub(super) status: Status,
    /// The response's `nextUpdate`, if any: the answer is not used past it.
    pub(super) valid_until: Option<SystemTime>,
}

/// OCSP answers already obtained, shared by [`OcspChecker`](super::OcspChecker) (writes) and
/// [`ClientVerifier`](crate::ClientVerifier) (reads). Cheap to clone. Only `good` and `revoked`
/// are cached; failures and `unknown` never are.
#[derive(Clone)]
pub struct OcspCache {
    pub(super) entries: Cache<CacheKey, CachedStatus>,
}

impl fmt::Debug for OcspCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcspCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl OcspCache {
    pub(super) fn new(ttl: Duration) -> Self {
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

    pub(super) fn lookup(&self, key: &CacheKey) -> Option<Status> {
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

pub(super) fn cache_key(cert: &Certificate) -> Result<CacheKey, der::Error> {
    Ok(CacheKey {
        issuer: cert.tbs_certificate.issuer.to_der()?,
        serial: cert.tbs_certificate.serial_number.as_bytes().to_vec(),
    })
}
