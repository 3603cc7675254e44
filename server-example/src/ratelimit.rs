//! Token-bucket rate limits, per client IP and per signed-in user, kept in
//! this API process's memory (with several API processes behind a balancer,
//! each enforces its own share).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: u32,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets by key (an IP address or a user id).
#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets kept before full ones are dropped (a full bucket is the same as none).
const PRUNE_ABOVE: usize = 100_000;

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `key` at `now`; `Err(wait)` says how long until one is there.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Rate { per_sec, burst } = self.rate;
        if per_sec <= 0.0 || burst == 0 {
            return Ok(()); // unlimited
        }
        let burst = f64::from(burst);
        let Ok(mut map) = self.buckets.lock() else { return Ok(()) };
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let b = map.entry(key.to_string()).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let l = Limiter::new(Rate { per_sec: 2.0, burst: 3 });
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check("a", t).is_ok());
        }
        let wait = l.check("a", t).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        // Another key has its own bucket.
        assert!(l.check("b", t).is_ok());
        // Half a second later one token is back, and only one.
        let t2 = t + Duration::from_millis(500);
        assert!(l.check("a", t2).is_ok());
        assert!(l.check("a", t2).is_err());
        // Never more than the burst, however long the pause.
        let t3 = t2 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.check("a", t3).is_ok());
        }
        assert!(l.check("a", t3).is_err());
    }

    #[test]
    fn zero_means_unlimited() {
        let l = Limiter::new(Rate { per_sec: 0.0, burst: 0 });
        let t = Instant::now();
        assert!((0..10_000).all(|_| l.check("a", t).is_ok()));
    }
}
