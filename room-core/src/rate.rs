//! Token buckets: the request rate of one connection ([`RequestRate`]), and per source
//! address ([`AddressBuckets`]: joins per minute, failed monitor logins).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `rate` requests per second on average, bursts of up to twice that.
#[derive(Clone, Debug)]
pub struct RequestRate {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    refused_in_a_row: u32,
}

/// What to do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateVerdict {
    /// Carry it out.
    Allow,
    /// Answer `rate_limited`.
    Refuse,
    /// Refused again and again: close the connection (1008).
    Close,
}

impl RequestRate {
    /// A full bucket of `rate` requests per second.
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            burst: 2.0 * rate,
            tokens: 2.0 * rate,
            last: now,
            refused_in_a_row: 0,
        }
    }

    /// The verdict on a request arriving at `now`. A client refused as many times in a row as
    /// its burst keeps sending without heeding the answers: it is closed.
    pub fn check(&mut self, now: Instant) -> RateVerdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused_in_a_row = 0;
            return RateVerdict::Allow;
        }
        self.refused_in_a_row += 1;
        if f64::from(self.refused_in_a_row) > self.burst {
            RateVerdict::Close
        } else {
            RateVerdict::Refuse
        }
    }
}

/// A token bucket per source address: `capacity` events, refilled over `period`. Addresses
/// whose bucket is full again are forgotten, so memory follows the addresses active lately.
#[derive(Debug)]
pub struct AddressBuckets {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_address: HashMap<IpAddr, Bucket>,
    /// When full buckets were last swept out (at most once a second: a sweep is O(addresses)).
    swept: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Addresses remembered before the full buckets are swept out.
const SWEEP_ABOVE: usize = 4096;

impl AddressBuckets {
    /// `capacity` events per address every `period`; 0: no limit.
    pub fn new(capacity: u32, period: Duration) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_second: f64::from(capacity) / period.as_secs_f64().max(f64::MIN_POSITIVE),
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Events per period.
    pub fn capacity(&self) -> u32 {
        self.capacity as u32
    }

    /// Whether buckets are on.
    pub fn enabled(&self) -> bool {
        self.capacity > 0.0
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.capacity);
        bucket.last = now;
    }

    /// Takes one token of `address` at `now`: false when its bucket is empty.
    pub fn take(&self, address: IpAddr, now: Instant) -> bool {
        if !self.enabled() {
            return true;
        }
        let mut state = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let due = state
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if state.by_address.len() > SWEEP_ABOVE && due {
            state.swept = Some(now);
            state.by_address.retain(|_, b| {
                let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
                b.tokens + elapsed * self.per_second < self.capacity
            });
        }
        let bucket = state.by_address.entry(address).or_insert(Bucket {
            tokens: self.capacity,
            last: now,
        });
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether `address` has no token left at `now` (without taking one).
    pub fn exhausted(&self, address: IpAddr, now: Instant) -> bool {
        if !self.enabled() {
            return false;
        }
        let mut state = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match state.by_address.get_mut(&address) {
            Some(bucket) => {
                self.refill(bucket, now);
                bucket.tokens < 1.0
            }
            None => false,
        }
    }

    /// Seconds until `address` has a token again (0 if it has one).
    pub fn retry_after(&self, address: IpAddr, now: Instant) -> u64 {
        let state = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match state.by_address.get(&address) {
            Some(b) if self.per_second > 0.0 => {
                let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
                let missing = 1.0 - (b.tokens + elapsed * self.per_second);
                (missing.max(0.0) / self.per_second).ceil() as u64
            }
            _ => 0,
        }
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_address
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_bursts_refuses_floods_and_closes_clients_that_do_not_stop() {
        let start = Instant::now();
        let mut rate = RequestRate::new(10, start);
        for _ in 0..20 {
            assert_eq!(
                rate.check(start),
                RateVerdict::Allow,
                "a burst of twice the rate"
            );
        }
        assert_eq!(rate.check(start), RateVerdict::Refuse);
        // A tenth of a second later one more token is there.
        assert_eq!(
            rate.check(start + Duration::from_millis(100)),
            RateVerdict::Allow
        );
        let later = start + Duration::from_millis(100);
        for _ in 0..20 {
            assert_eq!(rate.check(later), RateVerdict::Refuse);
        }
        assert_eq!(rate.check(later), RateVerdict::Close);
    }

    #[test]
    fn each_address_has_its_own_bucket_refilled_over_the_period() {
        let start = Instant::now();
        let joins = AddressBuckets::new(3, Duration::from_secs(60));
        let (a, b) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        for _ in 0..3 {
            assert!(joins.take(a, start));
        }
        assert!(!joins.take(a, start), "a fourth within the minute");
        assert!(joins.exhausted(a, start));
        assert_eq!(joins.retry_after(a, start), 20, "one join every 20 s");
        assert!(joins.take(b, start), "another address is not affected");
        assert!(joins.take(a, start + Duration::from_secs(20)), "refilled");
    }

    #[test]
    fn zero_means_no_limit_and_full_buckets_are_forgotten() {
        let start = Instant::now();
        let off = AddressBuckets::new(0, Duration::from_secs(60));
        assert!((0..1000).all(|_| off.take(IpAddr::from([192, 0, 2, 1]), start)));
        assert_eq!(off.tracked(), 0);
        let joins = AddressBuckets::new(2, Duration::from_secs(1));
        for i in 0..=SWEEP_ABOVE as u32 {
            joins.take(IpAddr::from(i.to_be_bytes()), start);
        }
        assert!(joins.tracked() > SWEEP_ABOVE);
        joins.take(
            IpAddr::from([198, 51, 100, 1]),
            start + Duration::from_secs(5),
        );
        assert_eq!(joins.tracked(), 1, "every refilled bucket swept out");
    }
}
