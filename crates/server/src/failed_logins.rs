//! [`FailedLogins`]: recent authentication failures per remote address, which make repeated
//! password guesses from one address wait longer and longer for their answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Recent authentication failures per remote address, to slow down password guessing.
#[derive(Debug, Default)]
pub(crate) struct FailedLogins {
    by_ip: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

impl FailedLogins {
    /// Addresses remembered at most; past it the oldest half is forgotten.
    const CAPACITY: usize = 10_000;
    /// A failure older than this no longer counts.
    const MEMORY: std::time::Duration = std::time::Duration::from_secs(300);

    /// Records a failure and returns how long to wait before answering it: nothing for the
    /// first two, then doubling from 250 ms up to 8 s.
    pub fn failed(&self, ip: std::net::IpAddr) -> std::time::Duration {
        let mut map = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() >= Self::CAPACITY {
            let mut ages: Vec<Instant> = map.values().map(|(_, t)| *t).collect();
            ages.sort();
            let cutoff = ages[ages.len() / 2];
            map.retain(|_, (_, t)| *t > cutoff);
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) > Self::MEMORY {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        match entry.0 {
            0..=2 => std::time::Duration::ZERO,
            n => std::time::Duration::from_millis(250u64 << (n - 3).min(5)),
        }
    }

    /// Forgets an address after a successful login.
    pub fn succeeded(&self, ip: std::net::IpAddr) {
        self.by_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_from_one_address_are_slowed_down() {
        let logins = FailedLogins::default();
        let ip = std::net::IpAddr::from([10, 0, 0, 1]);
        let delays: Vec<u64> = (0..10)
            .map(|_| logins.failed(ip).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(
            logins
                .failed(std::net::IpAddr::from([10, 0, 0, 2]))
                .as_millis(),
            0
        );
        logins.succeeded(ip);
        assert_eq!(logins.failed(ip).as_millis(), 0);
    }
}
