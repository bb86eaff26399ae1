//! A per-address limit on new connections: a token bucket per IP, checked in the accept loop
//! before any TLS or WebSocket work, so a connection flood costs an accept and a close.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets of `rate` connections per second (burst `rate`) per address.
#[derive(Debug)]
pub(crate) struct ConnectionRate {
    rate: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl ConnectionRate {
    /// Addresses remembered at most; past it, buckets that have refilled are forgotten.
    const CAPACITY: usize = 65_536;

    pub fn new(per_second: NonZeroU32) -> Self {
        Self {
            rate: f64::from(per_second.get()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `ip`; false when its bucket is empty.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= Self::CAPACITY {
            let rate = self.rate;
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < rate
            });
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let limit = ConnectionRate::new(NonZeroU32::new(5).unwrap());
        let ip = IpAddr::from([192, 0, 2, 1]);
        let t0 = Instant::now();
        assert_eq!((0..8).filter(|_| limit.allow(ip, t0)).count(), 5);
        // Another address has its own bucket.
        assert!(limit.allow(IpAddr::from([192, 0, 2, 2]), t0));
        // A fifth of a second later, one more token.
        let t1 = t0 + Duration::from_millis(200);
        assert!(limit.allow(ip, t1));
        assert!(!limit.allow(ip, t1));
    }
}
