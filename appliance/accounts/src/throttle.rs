//! Per-client counting of failed sign-ins, with an exponentially growing wait.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How [`LoginThrottle`] slows down a client that keeps failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures allowed without any wait.
    pub free_failures: u32,
    /// Wait after the first failure beyond the free ones; doubles with each further failure.
    pub first_delay: Duration,
    /// Longest wait.
    pub max_delay: Duration,
    /// A client with no failure for this long starts afresh.
    pub forget_after: Duration,
    /// Most clients remembered; when full, forgotten clients are dropped, then the oldest.
    pub max_clients: usize,
}

impl Default for ThrottleConfig {
    /// 5 free failures, then 1 s doubling up to 60 s, forgotten after 15 min, 10 000 clients.
    fn default() -> Self {
        ThrottleConfig {
            free_failures: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            forget_after: Duration::from_secs(15 * 60),
            max_clients: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
}

/// Failed sign-in counts per client address, in bounded memory. Shared across request
/// handlers (`Send + Sync`); times are passed in so tests and callers control the clock.
///
/// IPv6 clients are counted per /64, since one host usually owns a whole /64, and
/// IPv4-mapped IPv6 addresses count as their IPv4 address.
#[derive(Debug)]
pub struct LoginThrottle {
    counter: Counter<IpAddr>,
}

impl LoginThrottle {
    /// An empty throttle; `max_clients` below 1 is treated as 1.
    pub fn new(config: ThrottleConfig) -> Self {
        LoginThrottle {
            counter: Counter::new(config),
        }
    }

    /// `Ok` if `client` may try to sign in at `now`, otherwise `Err(retry_after)`.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        self.counter.check(&client_key(client), now)
    }

    /// Counts a failed sign-in by `client` at `now`.
    pub fn record_failure(&self, client: IpAddr, now: Instant) {
        self.counter.record_failure(client_key(client), now);
    }

    /// Forgets `client`'s failures after it signed in.
    pub fn record_success(&self, client: IpAddr) {
        self.counter.record_success(&client_key(client));
    }

    /// How many clients are remembered, for the admin status page.
    pub fn tracked_clients(&self) -> usize {
        self.counter.tracked()
    }
}

/// Failed sign-in counts per account name (case-insensitive), with the same schedule as
/// [`LoginThrottle`]: slows a password guesser that spreads over many addresses. A target
/// account is at worst delayed (never locked out) while someone guesses at it.
#[derive(Debug)]
pub struct AccountThrottle {
    counter: Counter<String>,
}

impl AccountThrottle {
    /// An empty throttle; `max_clients` bounds the accounts remembered.
    pub fn new(config: ThrottleConfig) -> Self {
        AccountThrottle {
            counter: Counter::new(config),
        }
    }

    /// `Ok` if `account` may be tried at `now`, otherwise `Err(retry_after)`.
    pub fn check(&self, account: &str, now: Instant) -> Result<(), Duration> {
        self.counter.check(&account.to_lowercase(), now)
    }

    /// Counts a failed sign-in to `account` at `now`.
    pub fn record_failure(&self, account: &str, now: Instant) {
        self.counter.record_failure(account.to_lowercase(), now);
    }

    /// Forgets `account`'s failures after a successful sign-in.
    pub fn record_success(&self, account: &str) {
        self.counter.record_success(&account.to_lowercase());
    }

    /// How many accounts are remembered.
    pub fn tracked_accounts(&self) -> usize {
        self.counter.tracked()
    }
}

/// The schedule and the bounded map shared by both throttles.
#[derive(Debug)]
struct Counter<K> {
    config: ThrottleConfig,
    clients: Mutex<HashMap<K, Record>>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    fn new(config: ThrottleConfig) -> Self {
        let config = ThrottleConfig {
            max_clients: config.max_clients.max(1),
            ..config
        };
        Counter {
            config,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let clients = self.lock();
        let Some(record) = clients.get(key) else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(record.last_failure);
        if elapsed >= self.config.forget_after {
            return Ok(());
        }
        let wait = self.delay_after(record.failures);
        if elapsed < wait {
            Err(wait - elapsed)
        } else {
            Ok(())
        }
    }

    fn record_failure(&self, key: K, now: Instant) {
        let mut clients = self.lock();
        if !clients.contains_key(&key) && clients.len() >= self.config.max_clients {
            self.make_room(&mut clients, now);
        }
        let record = clients.entry(key).or_insert(Record {
            failures: 0,
            last_failure: now,
        });
        if now.saturating_duration_since(record.last_failure) >= self.config.forget_after {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = record.last_failure.max(now);
    }

    fn record_success(&self, key: &K) {
        self.lock().remove(key);
    }

    fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// The wait imposed after `failures` consecutive failures.
    fn delay_after(&self, failures: u32) -> Duration {
        let Some(over) = failures.checked_sub(self.config.free_failures) else {
            return Duration::ZERO;
        };
        if over == 0 {
            return Duration::ZERO;
        }
        let doublings = (over - 1).min(31);
        self.config
            .first_delay
            .saturating_mul(1 << doublings)
            .min(self.config.max_delay)
    }

    /// Drops forgotten clients; if the map is still full, drops the one whose last failure is oldest.
    fn make_room(&self, clients: &mut HashMap<K, Record>, now: Instant) {
        let forget_after = self.config.forget_after;
        clients
            .retain(|_, record| now.saturating_duration_since(record.last_failure) < forget_after);
        if clients.len() < self.config.max_clients {
            return;
        }
        let oldest = clients
            .iter()
            .min_by_key(|(_, record)| record.last_failure)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            clients.remove(&key);
        }
    }

    /// The map, even if a panicking thread poisoned the lock: the counts stay meaningful.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Record>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The address failures are counted under: IPv4 as is, IPv6 by its /64 prefix.
fn client_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, last))
    }

    fn fail_n(throttle: &LoginThrottle, client: IpAddr, n: u32, at: Instant) {
        for _ in 0..n {
            throttle.record_failure(client, at);
        }
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LoginThrottle>();
    }

    #[test]
    fn schedule_free_then_doubling_then_capped() {
        let throttle = LoginThrottle::new(ThrottleConfig::default());
        let t0 = Instant::now();
        let client = ip(10);

        fail_n(&throttle, client, 5, t0);
        assert_eq!(throttle.check(client, t0), Ok(()), "5 failures are free");

        // Each further failure waits 1, 2, 4, ... s from that failure, capped at 60 s.
        let mut now = t0;
        for expected in [1, 2, 4, 8, 16, 32, 60, 60, 60] {
            throttle.record_failure(client, now);
            let wait = Duration::from_secs(expected);
            assert_eq!(throttle.check(client, now), Err(wait));
            assert_eq!(throttle.check(client, now + SEC / 2), Err(wait - SEC / 2));
            now += wait;
            assert_eq!(
                throttle.check(client, now),
                Ok(()),
                "free after {expected} s"
            );
        }
    }

    #[test]
    fn other_clients_unaffected() {
        let throttle = LoginThrottle::new(ThrottleConfig::default());
        let t0 = Instant::now();
        fail_n(&throttle, ip(1), 10, t0);
        assert!(throttle.check(ip(1), t0).is_err());
        assert_eq!(throttle.check(ip(2), t0), Ok(()));
    }

    #[test]
    fn success_resets() {
        let throttle = LoginThrottle::new(ThrottleConfig::default());
        let t0 = Instant::now();
        fail_n(&throttle, ip(1), 8, t0);
        assert!(throttle.check(ip(1), t0).is_err());
        throttle.record_success(ip(1));
        assert_eq!(throttle.check(ip(1), t0), Ok(()));
        assert_eq!(throttle.tracked_clients(), 0);
        // A fresh start: five free failures again.
        fail_n(&throttle, ip(1), 5, t0);
        assert_eq!(throttle.check(ip(1), t0), Ok(()));
    }

    #[test]
    fn forgotten_after_quiet_period() {
        let config = ThrottleConfig::default();
        let throttle = LoginThrottle::new(config);
        let t0 = Instant::now();
        fail_n(&throttle, ip(1), 20, t0);
        assert_eq!(throttle.check(ip(1), t0 + 59 * SEC), Err(SEC));
        let later = t0 + config.forget_after;
        assert_eq!(throttle.check(ip(1), later), Ok(()));
        // The count restarts: one failure after the quiet period is free.
        throttle.record_failure(ip(1), later);
        assert_eq!(throttle.check(ip(1), later), Ok(()));
    }

    #[test]
    fn memory_is_capped_evicting_oldest() {
        let throttle = LoginThrottle::new(ThrottleConfig {
            max_clients: 3,
            ..ThrottleConfig::default()
        });
        let t0 = Instant::now();
        for (i, last) in [1u8, 2, 3].into_iter().enumerate() {
            fail_n(&throttle, ip(last), 10, t0 + SEC * i as u32);
        }
        assert_eq!(throttle.tracked_clients(), 3);
        throttle.record_failure(ip(4), t0 + 3 * SEC);
        assert_eq!(throttle.tracked_clients(), 3);
        assert_eq!(
            throttle.check(ip(1), t0 + 3 * SEC),
            Ok(()),
            "oldest evicted"
        );
        assert!(throttle.check(ip(3), t0 + 3 * SEC).is_err(), "newer kept");

        let big = LoginThrottle::new(ThrottleConfig::default());
        for n in 0..10_100u32 {
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            big.record_failure(client, t0 + Duration::from_millis(u64::from(n)));
        }
        assert_eq!(big.tracked_clients(), 10_000);
    }

    #[test]
    fn forgotten_clients_make_room_first() {
        let config = ThrottleConfig {
            max_clients: 2,
            ..ThrottleConfig::default()
        };
        let throttle = LoginThrottle::new(config);
        let t0 = Instant::now();
        throttle.record_failure(ip(1), t0);
        let later = t0 + config.forget_after;
        fail_n(&throttle, ip(2), 10, later);
        throttle.record_failure(ip(3), later);
        assert_eq!(throttle.tracked_clients(), 2);
        assert!(throttle.check(ip(2), later).is_err(), "active client kept");
    }

    #[test]
    fn ipv6_counted_per_64() {
        let throttle = LoginThrottle::new(ThrottleConfig::default());
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        fail_n(&throttle, a, 3, t0);
        fail_n(&throttle, b, 3, t0);
        assert!(throttle.check(a, t0).is_err());
        assert_eq!(throttle.check(other, t0), Ok(()));

        let mapped: IpAddr = "::ffff:192.168.1.7".parse().expect("ip");
        fail_n(&throttle, mapped, 6, t0);
        assert!(throttle.check(ip(7), t0).is_err());
    }

    #[test]
    fn accounts_are_throttled_across_addresses_case_insensitively() {
        let throttle = AccountThrottle::new(ThrottleConfig::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            throttle.record_failure("Olivia", t0);
        }
        assert_eq!(throttle.check("olivia", t0), Ok(()), "5 failures are free");
        throttle.record_failure("OLIVIA", t0);
        assert_eq!(throttle.check("olivia", t0), Err(SEC));
        assert_eq!(
            throttle.check("carol", t0),
            Ok(()),
            "other accounts unaffected"
        );
        assert_eq!(throttle.tracked_accounts(), 1);
        throttle.record_success("olivia");
        assert_eq!(throttle.check("Olivia", t0), Ok(()));
        assert_eq!(throttle.tracked_accounts(), 0);
    }

    #[test]
    fn zero_config_is_usable() {
        let throttle = LoginThrottle::new(ThrottleConfig {
            free_failures: 0,
            max_clients: 0,
            ..ThrottleConfig::default()
        });
        let t0 = Instant::now();
        throttle.record_failure(ip(1), t0);
        assert_eq!(throttle.check(ip(1), t0), Err(SEC));
        throttle.record_failure(ip(2), t0);
        assert_eq!(throttle.tracked_clients(), 1);
    }
}
