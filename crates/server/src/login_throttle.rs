//! [`LoginThrottle`]: what a password guess costs before it is hashed. Attempts from one address
//! take turns; each waits longer the more attempts its address and its user name made recently
//! (counted when made, not when they fail, so parallel guesses cannot outrun the count); at most
//! one hash per core runs at a time; and the failure lines of one address are rate-limited.
//!
//! Every map here is bounded: addresses and user names are remembered at most [`CAPACITY`] each
//! (the oldest half is forgotten past it), and user names only as keyed hashes.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Addresses (and user names) remembered at most.
const CAPACITY: usize = 10_000;
/// An attempt older than this no longer counts.
const MEMORY: Duration = Duration::from_secs(300);
/// Turns: attempts whose addresses hash to one stripe take turns.
const STRIPES: usize = 256;
/// One failure line per address per this long; the rest are counted.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Recent attempts of one address or user name.
#[derive(Debug, Clone, Copy)]
struct Recent {
    attempts: u32,
    last: Instant,
}

impl Recent {
    /// Counts one attempt at `now`; returns the attempts made recently, this one included.
    fn attempt(&mut self, now: Instant) -> u32 {
        if now.duration_since(self.last) > MEMORY {
            self.attempts = 0;
        }
        self.attempts = self.attempts.saturating_add(1);
        self.last = now;
        self.attempts
    }
}

/// A map that forgets its oldest half when full.
#[derive(Debug)]
struct Bounded<K>(HashMap<K, Recent>);

impl<K: std::hash::Hash + Eq + Copy> Bounded<K> {
    fn attempt(&mut self, key: K, now: Instant) -> u32 {
        if self.0.len() >= CAPACITY && !self.0.contains_key(&key) {
            let mut ages: Vec<Instant> = self.0.values().map(|r| r.last).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            self.0.retain(|_, r| r.last > cutoff);
        }
        self.0
            .entry(key)
            .or_insert(Recent {
                attempts: 0,
                last: now,
            })
            .attempt(now)
    }

    /// Takes back one attempt (it succeeded).
    fn succeeded(&mut self, key: K, forget: bool) {
        if forget {
            self.0.remove(&key);
        } else if let Some(r) = self.0.get_mut(&key) {
            r.attempts = r.attempts.saturating_sub(1);
        }
    }
}

/// The wait before an attempt is checked, by how many were made recently: none for the first
/// two, then doubling from 250 ms up to 8 s.
fn delay(attempts: u32) -> Duration {
    match attempts {
        0..=2 => Duration::ZERO,
        n => Duration::from_millis(250u64 << (n - 3).min(5)),
    }
}

/// Failure lines of one address.
#[derive(Debug, Clone, Copy)]
struct LogState {
    logged_at: Instant,
    suppressed: u32,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    by_ip: Mutex<Bounded<IpAddr>>,
    by_user: Mutex<Bounded<u64>>,
    user_keys: RandomState,
    turns: Box<[Arc<tokio::sync::Mutex<()>>]>,
    hashing: Arc<Semaphore>,
    logs: Mutex<HashMap<IpAddr, LogState>>,
}

/// A password check's place: its address's turn and, once [`Attempt::hashing`] returns, one of
/// the hashing slots. Dropping it (the client went away, the deadline passed) frees both.
#[derive(Debug)]
pub(crate) struct Attempt {
    _turn: tokio::sync::OwnedMutexGuard<()>,
    ip: IpAddr,
    user: Option<u64>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(cores)
    }
}

impl LoginThrottle {
    /// At most `hashes` password hashes at once (one per core by default).
    pub fn new(hashes: usize) -> Self {
        Self {
            by_ip: Mutex::new(Bounded(HashMap::new())),
            by_user: Mutex::new(Bounded(HashMap::new())),
            user_keys: RandomState::new(),
            turns: (0..STRIPES).map(|_| Arc::default()).collect(),
            hashing: Arc::new(Semaphore::new(hashes.max(1))),
            logs: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the address's turn, counts the attempt for the address and the user name, and
    /// waits as long as the more suspicious of the two asks. The caller keeps the [`Attempt`]
    /// while it checks the password.
    pub async fn attempt(&self, ip: IpAddr, user: Option<&str>) -> Attempt {
        let stripe = self.user_keys.hash_one(ip) as usize % STRIPES;
        let turn = self.turns[stripe].clone().lock_owned().await;
        let now = Instant::now();
        let user = user.map(|u| self.user_keys.hash_one(u));
        let by_ip = lock(&self.by_ip).attempt(ip, now);
        let by_user = user.map_or(0, |u| lock(&self.by_user).attempt(u, now));
        let wait = delay(by_ip.max(by_user));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Attempt {
            _turn: turn,
            ip,
            user,
        }
    }

    /// One of the hashing slots; held by the hashing task until it finishes, even when its
    /// connection is gone.
    pub async fn hashing(&self) -> Option<OwnedSemaphorePermit> {
        self.hashing.clone().acquire_owned().await.ok()
    }

    /// The attempt succeeded: it no longer counts for its address, and the user's count is
    /// forgotten. Other attempts of the address still count (a login of one user does not
    /// clear another's guesses from the same address).
    pub fn succeeded(&self, attempt: &Attempt) {
        lock(&self.by_ip).succeeded(attempt.ip, false);
        if let Some(user) = attempt.user {
            lock(&self.by_user).succeeded(user, true);
        }
    }

    /// Whether a failure of `ip` may be logged now; `Some(n)` with the lines suppressed since
    /// the last one, `None` to stay silent (and count it).
    pub fn may_log(&self, ip: IpAddr) -> Option<u32> {
        let now = Instant::now();
        let mut logs = lock(&self.logs);
        if logs.len() >= CAPACITY && !logs.contains_key(&ip) {
            logs.retain(|_, s| now.duration_since(s.logged_at) < LOG_EVERY);
            if logs.len() >= CAPACITY {
                // Flooded from many addresses at once: stay silent rather than grow.
                return None;
            }
        }
        match logs.get_mut(&ip) {
            Some(s) if now.duration_since(s.logged_at) < LOG_EVERY => {
                s.suppressed = s.suppressed.saturating_add(1);
                None
            }
            Some(s) => {
                let suppressed = s.suppressed;
                *s = LogState {
                    logged_at: now,
                    suppressed: 0,
                };
                Some(suppressed)
            }
            None => {
                logs.insert(
                    ip,
                    LogState {
                        logged_at: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[tokio::test(start_paused = true)]
    async fn attempts_from_one_address_wait_longer_and_longer() {
        let throttle = LoginThrottle::new(1);
        let mut waits = Vec::new();
        for _ in 0..6 {
            let start = tokio::time::Instant::now();
            let _attempt = throttle.attempt(IP, Some("admin")).await;
            waits.push(start.elapsed().as_millis());
        }
        assert_eq!(waits, [0, 0, 250, 500, 1000, 2000]);
        // Another address guessing the same user waits as long: the user counts too.
        let start = tokio::time::Instant::now();
        let _attempt = throttle.attempt(OTHER, Some("admin")).await;
        assert_eq!(start.elapsed().as_millis(), 4000);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_from_one_address_take_turns() {
        let throttle = Arc::new(LoginThrottle::new(4));
        let first = throttle.attempt(IP, None).await;
        let second = tokio::spawn({
            let throttle = throttle.clone();
            async move { throttle.attempt(IP, None).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!second.is_finished(), "waits for the first attempt to end");
        drop(first);
        second.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn another_users_success_does_not_clear_the_guesses_of_an_address() {
        let throttle = LoginThrottle::new(1);
        for _ in 0..4 {
            let _ = throttle.attempt(IP, Some("admin")).await;
        }
        let mine = throttle.attempt(IP, Some("mallory")).await;
        throttle.succeeded(&mine);
        drop(mine);
        let start = tokio::time::Instant::now();
        let _ = throttle.attempt(IP, Some("admin")).await;
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn hashing_slots_are_bounded() {
        let throttle = LoginThrottle::new(2);
        let a = throttle.hashing().await.unwrap();
        let _b = throttle.hashing().await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(50), throttle.hashing()).await;
        assert!(third.is_err(), "a third waits");
        drop(a);
        assert!(throttle.hashing().await.is_some());
    }

    #[test]
    fn failure_lines_of_an_address_are_rate_limited_with_a_count() {
        let throttle = LoginThrottle::new(1);
        assert_eq!(throttle.may_log(IP), Some(0));
        assert_eq!(throttle.may_log(IP), None);
        assert_eq!(throttle.may_log(IP), None);
        assert_eq!(throttle.may_log(OTHER), Some(0));
        lock(&throttle.logs).get_mut(&IP).unwrap().logged_at -= LOG_EVERY;
        assert_eq!(throttle.may_log(IP), Some(2), "two suppressed");
    }
}
