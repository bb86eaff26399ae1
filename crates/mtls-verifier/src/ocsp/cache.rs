//! [`OcspCache`]: `good` and `revoked` answers by issuer and serial, each kept for the TTL or
//! while the answer is fresh, whichever ends first.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use der::{Decode, Encode};
use moka::Expiry;
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
struct CachedStatus {
    status: Status,
    /// The end of the TTL or of the answer's freshness, whichever comes first: the answer is
    /// not used past it.
    valid_until: SystemTime,
}

/// Evicts an entry at its `valid_until` (moka's own clock is monotonic; [`OcspCache::lookup`]
/// checks the wall clock again).
struct UntilValid;

impl Expiry<CacheKey, CachedStatus> for UntilValid {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &CachedStatus,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.remaining())
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &CachedStatus,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        // A new answer brings its own freshness; moka would otherwise keep the old deadline.
        Some(value.remaining())
    }
}

impl CachedStatus {
    fn remaining(&self) -> Duration {
        self.valid_until
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }
}

/// OCSP answers already obtained, shared by [`OcspChecker`](super::OcspChecker) (writes) and
/// [`ClientVerifier`](crate::ClientVerifier) (reads). Cheap to clone. Only `good` and `revoked`
/// are cached; failures and `unknown` never are.
#[derive(Clone)]
pub struct OcspCache {
    entries: Cache<CacheKey, CachedStatus>,
    ttl: Duration,
}

impl fmt::Debug for OcspCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcspCache")
            .field("entries", &self.entries.entry_count())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl OcspCache {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .expire_after(UntilValid)
                .build(),
            ttl,
        }
    }

    /// Keeps `status` for `key` until the TTL ends or the answer stops being fresh at
    /// `fresh_until`, whichever comes first; an answer no longer fresh is not kept.
    pub(super) fn insert(&self, key: CacheKey, status: Status, fresh_until: SystemTime) {
        let now = SystemTime::now();
        let valid_until = now
            .checked_add(self.ttl)
            .map_or(fresh_until, |end_of_ttl| end_of_ttl.min(fresh_until));
        if valid_until > now {
            self.entries.insert(
                key,
                CachedStatus {
                    status,
                    valid_until,
                },
            );
        }
    }

    /// The cached status of the DER end-entity certificate `cert`, if still fresh.
    pub fn get(&self, cert: &[u8]) -> Option<Status> {
        let key = cache_key(&Certificate::from_der(cert).ok()?).ok()?;
        self.lookup(&key)
    }

    pub(super) fn lookup(&self, key: &CacheKey) -> Option<Status> {
        let cached = self.entries.get(key)?;
        if cached.valid_until <= SystemTime::now() {
            self.entries.invalidate(key);
            return None;
        }
        Some(cached.status)
    }
}

pub(super) fn cache_key(cert: &Certificate) -> Result<CacheKey, der::Error> {
    Ok(CacheKey {
        issuer: cert.tbs_certificate.issuer.to_der()?,
        serial: cert.tbs_certificate.serial_number.as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey {
            issuer: vec![0x30, 0x00],
            serial: vec![1],
        }
    }

    fn valid_until(cache: &OcspCache) -> Option<SystemTime> {
        cache.entries.get(&key()).map(|cached| cached.valid_until)
    }

    #[test]
    fn keeps_an_answer_until_the_ttl_or_its_freshness_ends_whichever_is_first() {
        let cache = OcspCache::new(Duration::from_secs(3600));
        let now = SystemTime::now();
        let fresh_until = now + Duration::from_secs(60);
        cache.insert(key(), Status::Good, fresh_until);
        assert_eq!(valid_until(&cache), Some(fresh_until));
        assert_eq!(cache.lookup(&key()), Some(Status::Good));

        let short = OcspCache::new(Duration::from_secs(10));
        short.insert(key(), Status::Good, now + Duration::from_secs(3600));
        let until = valid_until(&short).expect("cached");
        assert!(until <= SystemTime::now() + Duration::from_secs(10));
    }

    #[test]
    fn does_not_keep_an_answer_that_is_no_longer_fresh() {
        let cache = OcspCache::new(Duration::from_secs(3600));
        cache.insert(
            key(),
            Status::Good,
            SystemTime::now() - Duration::from_secs(1),
        );
        assert_eq!(cache.lookup(&key()), None);
        assert_eq!(valid_until(&cache), None);
    }
}
