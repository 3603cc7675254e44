//! Rate limits per client IP and per signed-in user, kept in this API
//! process's memory (with several API processes behind a balancer, each
//! enforces its own share): governor's keyed GCRA limiters, lock-free.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::Rate;

/// The governor quota: one request every 1 / per_sec seconds, `burst` at once.
fn quota(rate: Rate) -> Option<Quota> {
    if !(rate.per_sec.is_finite() && rate.per_sec > 0.0) {
        return None;
    }
    let burst = NonZeroU32::new(rate.burst)?;
    Some(Quota::with_period(Duration::from_secs_f64(1.0 / rate.per_sec))?.allow_burst(burst))
}

/// The API's two limits.
#[derive(Debug)]
pub struct RateLimits {
    pub ip: Limiter,
    pub user: Limiter,
}

impl RateLimits {
    pub fn new(per_ip: Rate, per_user: Rate) -> RateLimits {
        RateLimits { ip: Limiter::new(per_ip), user: Limiter::new(per_user) }
    }
}

/// Keys remembered before those whose bucket is full again are dropped.
const PRUNE_ABOVE: usize = 100_000;

type Keyed<C> = RateLimiter<String, DefaultKeyedStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One limit, by key (an IP address or a user id).
pub struct Limiter<C: Clock = DefaultClock> {
    inner: Option<Keyed<C>>,
}

impl<C: Clock> std::fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("keys", &self.inner.as_ref().map_or(0, |l| l.len())).finish()
    }
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter::with_clock(rate, DefaultClock::default())
    }
}

impl<C: Clock> Limiter<C> {
    pub fn with_clock(rate: Rate, clock: C) -> Self {
        Limiter { inner: quota(rate).map(|q| RateLimiter::new(q, DefaultKeyedStateStore::default(), clock)) }
    }

    /// Takes one request for `key`; `Err(wait)` says how long until one is allowed.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let Some(l) = &self.inner else { return Ok(()) };
        if l.len() > PRUNE_ABOVE {
            l.retain_recent();
        }
        l.check_key(&key.to_string()).map_err(|not_until| not_until.wait_time_from(l.clock().now()))
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn burst_then_rate() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::with_clock(Rate { per_sec: 2.0, burst: 3 }, clock.clone());
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        let wait = l.check("a").unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Another key has its own bucket.
        assert!(l.check("b").is_ok());
        // Half a second later one request is allowed again, and only one.
        clock.advance(Duration::from_millis(500));
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_err());
        // Never more than the burst, however long the pause.
        clock.advance(Duration::from_secs(3600));
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        assert!(l.check("a").is_err());
    }

    #[test]
    fn zero_means_unlimited() {
        for rate in [Rate { per_sec: 0.0, burst: 0 }, Rate { per_sec: 5.0, burst: 0 }, Rate { per_sec: 0.0, burst: 5 }]
        {
            let l = Limiter::new(rate);
            assert!((0..10_000).all(|_| l.check("a").is_ok()));
        }
    }

    #[test]
    fn a_fractional_rate() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::with_clock(Rate { per_sec: 0.5, burst: 1 }, clock.clone());
        assert!(l.check("a").is_ok());
        let wait = l.check("a").unwrap_err();
        assert!((wait.as_secs_f64() - 2.0).abs() < 1e-6, "{wait:?}");
        clock.advance(Duration::from_secs(2));
        assert!(l.check("a").is_ok());
    }
}
