//! [`LoginThrottle`]: what a password guess costs before it is hashed. Attempts from one address
//! take turns; each waits longer the more attempts its address and its user name made recently
//! (counted when made, not when they fail, so parallel guesses cannot outrun the count); hashes
//! run on one dedicated thread per core, one at a time each (Argon2 takes 19 MiB: a blocking
//! thread per check would let a burst take gigabytes); and the failure lines of one address are
//! rate-limited.
//!
//! A user's own address keeps working while its name is under attack from elsewhere: an
//! address that logged the user in within the last day skips the user name's wait and may use
//! one hashing slot kept for such logins.
//!
//! Every map here is bounded: addresses, user names and known (user, address) pairs are
//! remembered at most [`CAPACITY`] each (the oldest half is forgotten past it), and user names
//! only as keyed hashes.

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
/// Addresses with attempts in progress past which idle turns are pruned.
const TURNS_KEPT: usize = 1024;
/// One failure line per address per this long; the rest are counted.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How long an address that logged a user in stays known for that user.
const KNOWN_FOR: Duration = Duration::from_secs(24 * 3600);

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
    /// (user, address) pairs that logged in recently, as keyed hashes, with when.
    known: Mutex<HashMap<u64, Instant>>,
    user_keys: RandomState,
    /// Each address's turn; entries no attempt holds are pruned as the map grows.
    turns: Mutex<HashMap<IpAddr, Arc<tokio::sync::Mutex<()>>>>,
    hashing: Arc<Semaphore>,
    /// The slot only known pairs may use.
    kept: Arc<Semaphore>,
    pool: HashPool,
    logs: Mutex<HashMap<IpAddr, LogState>>,
}

/// A password check's place: its address's turn, and whether its (user, address) pair is known.
/// Dropping it (the client went away, the deadline passed) frees the turn.
#[derive(Debug)]
pub(crate) struct Attempt {
    _turn: tokio::sync::OwnedMutexGuard<()>,
    ip: IpAddr,
    user: Option<u64>,
    /// The (user, address) pair's key, and whether it logged in recently.
    pair: Option<(u64, bool)>,
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
            known: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
            hashing: Arc::new(Semaphore::new(hashes.max(1))),
            kept: Arc::new(Semaphore::new(1)),
            pool: HashPool::new(hashes.max(1) + 1),
            logs: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the address's turn, counts the attempt for the address and the user name, and
    /// waits as long as the more suspicious of the two asks. The caller keeps the [`Attempt`]
    /// while it checks the password.
    pub async fn attempt(&self, ip: IpAddr, user: Option<&str>) -> Attempt {
        let ip = address_key(ip);
        let turn = {
            let mut turns = lock(&self.turns);
            if turns.len() >= TURNS_KEPT {
                // Held only by the map: no attempt of that address is in progress.
                turns.retain(|_, t| Arc::strong_count(t) > 1);
            }
            turns.entry(ip).or_default().clone()
        };
        let turn = turn.lock_owned().await;
        let now = Instant::now();
        let pair = user.map(|u| {
            let key = self.user_keys.hash_one((u, ip));
            let known = lock(&self.known)
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR);
            (key, known)
        });
        let user = user.map(|u| self.user_keys.hash_one(u));
        let by_ip = lock(&self.by_ip).attempt(ip, now);
        let by_user = user.map_or(0, |u| lock(&self.by_user).attempt(u, now));
        // An address that logged this user in lately is not held up by guesses from elsewhere.
        let by_user = if pair.is_some_and(|(_, known)| known) {
            0
        } else {
            by_user
        };
        let wait = delay(by_ip.max(by_user));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Attempt {
            _turn: turn,
            ip,
            user,
            pair,
        }
    }

    /// Runs `check` (the password hash) on the hashing threads, once a slot is free (a known
    /// pair may also take the kept slot); `None` if the threads are gone. The slot is held until
    /// the hash is done, even when the caller stops waiting.
    pub async fn hash<T: Send + 'static>(
        &self,
        attempt: &Attempt,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let slot = if attempt.pair.is_some_and(|(_, known)| known) {
            tokio::select! {
                slot = self.hashing.clone().acquire_owned() => slot,
                slot = self.kept.clone().acquire_owned() => slot,
            }
        } else {
            self.hashing.clone().acquire_owned().await
        };
        let slot = slot.ok()?;
        self.pool.run(slot, check).await
    }

    /// The attempt succeeded: it no longer counts for its address, the user's count is
    /// forgotten, and the address is known for the user. Other attempts of the address still
    /// count (a login of one user does not clear another's guesses from the same address).
    pub fn succeeded(&self, attempt: &Attempt) {
        lock(&self.by_ip).succeeded(attempt.ip, false);
        if let Some(user) = attempt.user {
            lock(&self.by_user).succeeded(user, true);
        }
        if let Some((pair, _)) = attempt.pair {
            let now = Instant::now();
            let mut known = lock(&self.known);
            if known.len() >= CAPACITY && !known.contains_key(&pair) {
                let mut ages: Vec<Instant> = known.values().copied().collect();
                ages.sort_unstable();
                let cutoff = ages[ages.len() / 2];
                known.retain(|_, at| *at > cutoff);
            }
            known.insert(pair, now);
        }
    }

    /// Whether a failure of `ip` may be logged now; `Some(n)` with the lines suppressed since
    /// the last one, `None` to stay silent (and count it).
    pub fn may_log(&self, ip: IpAddr) -> Option<u32> {
        let ip = address_key(ip);
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

/// The address an attempt counts for: an IPv6 address by its /64 (one host usually has a whole
/// /64 to pick from), an IPv4-mapped one as the IPv4 address.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
        v4 => v4,
    }
}

/// A job for the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// Threads that run password hashes, started on first use. Their number is fixed, so the
/// memory Argon2 leaves in each thread's allocator arena is bounded too.
#[derive(Debug)]
struct HashPool {
    threads: usize,
    jobs: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Job>>>,
}

impl HashPool {
    fn new(threads: usize) -> Self {
        Self {
            threads,
            jobs: std::sync::OnceLock::new(),
        }
    }

    fn sender(&self) -> Option<&std::sync::mpsc::Sender<Job>> {
        self.jobs
            .get_or_init(|| {
                let (tx, rx) = std::sync::mpsc::channel::<Job>();
                let rx = Arc::new(Mutex::new(rx));
                for i in 0..self.threads {
                    let rx = rx.clone();
                    let started = std::thread::Builder::new()
                        .name(format!("mqtt-auth-{i}"))
                        .spawn(move || {
                            loop {
                                // One job at a time per thread; the lock is held only to take it.
                                let job = lock(&rx).recv();
                                match job {
                                    Ok(job) => job(),
                                    Err(_) => return,
                                }
                            }
                        });
                    if started.is_err() {
                        return None;
                    }
                }
                Some(tx)
            })
            .as_ref()
    }

    /// Runs `check` on a pool thread, holding `slot` until it is done.
    async fn run<T: Send + 'static>(
        &self,
        slot: OwnedSemaphorePermit,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = check();
            drop(slot);
            let _ = tx.send(result);
        });
        self.sender()?.send(job).ok()?;
        rx.await.ok()
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
    async fn hashes_run_a_slot_at_a_time_and_a_known_address_has_one_kept() {
        let throttle = Arc::new(LoginThrottle::new(1));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let stranger = throttle.attempt(OTHER, Some("admin")).await;
        // The one general slot, busy until released.
        let busy = tokio::spawn({
            let throttle = throttle.clone();
            async move { throttle.hash(&stranger, move || held.recv().is_ok()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3));
        let waiting = throttle.attempt(third, Some("bob")).await;
        let second =
            tokio::time::timeout(Duration::from_millis(100), throttle.hash(&waiting, || 2));
        assert!(second.await.is_err(), "a second check waits for the slot");
        // An address that logged admin in before may use the kept slot meanwhile.
        let before = throttle.attempt(IP, Some("admin")).await;
        throttle.succeeded(&before);
        drop(before);
        let known = throttle.attempt(IP, Some("admin")).await;
        let kept = tokio::time::timeout(Duration::from_secs(5), throttle.hash(&known, || 3));
        assert_eq!(kept.await.unwrap(), Some(3));
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Some(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_known_address_skips_the_wait_of_a_user_under_attack() {
        let throttle = LoginThrottle::new(1);
        let mine = throttle.attempt(IP, Some("admin")).await;
        throttle.succeeded(&mine);
        drop(mine);
        for _ in 0..6 {
            let _ = throttle.attempt(OTHER, Some("admin")).await;
        }
        let start = tokio::time::Instant::now();
        let _ = throttle.attempt(IP, Some("admin")).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ipv6_host_counts_as_its_64() {
        let throttle = LoginThrottle::new(1);
        for i in 0..4u16 {
            let ip: IpAddr = format!("2001:db8::{i:x}").parse().unwrap();
            let _ = throttle.attempt(ip, None).await;
        }
        let start = tokio::time::Instant::now();
        let _ = throttle
            .attempt("2001:db8::ff:1".parse().unwrap(), None)
            .await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "the fifth from the /64"
        );
        let start = tokio::time::Instant::now();
        let _ = throttle
            .attempt("2001:db8:0:1::1".parse().unwrap(), None)
            .await;
        assert_eq!(start.elapsed(), Duration::ZERO, "another /64");
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
