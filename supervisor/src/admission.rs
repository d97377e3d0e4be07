//! Who may open a `/ws` session and how fast it may ask: caps on connections (in total and
//! per source address), the allowed page origins, and a token bucket per connection. Plain
//! state and decisions; `http` and `signaling` apply them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a connection is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `--max-connections` reached.
    #[error("the SFU has {0} connections, its limit (--max-connections)")]
    Total(u32),
    /// `--max-connections-per-ip` reached for this address.
    #[error("{0} connections from this address, the limit (--max-connections-per-ip)")]
    PerAddress(u32),
}

/// The open `/ws` connections, counted against their caps.
#[derive(Debug)]
pub struct ConnectionCaps {
    total: u32,
    per_address: u32,
    open: Mutex<Open>,
}

/// Connections open, in total and by address (kept together: every connect reads both).
#[derive(Debug, Default)]
struct Open {
    total: u32,
    by_address: HashMap<IpAddr, u32>,
}

/// One open connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionSlot {
    caps: Arc<ConnectionCaps>,
    address: IpAddr,
}

impl ConnectionCaps {
    /// At most `total` connections, `per_address` of them from one address.
    pub fn new(total: u32, per_address: u32) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_address,
            open: Mutex::new(Open::default()),
        })
    }

    /// A place for a connection from `address`, or why not.
    pub fn open(self: &Arc<Self>, address: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.total {
            return Err(Refusal::Total(open.total));
        }
        let mine = open.by_address.entry(address).or_insert(0);
        if *mine >= self.per_address {
            return Err(Refusal::PerAddress(*mine));
        }
        *mine += 1;
        open.total += 1;
        Ok(ConnectionSlot {
            caps: self.clone(),
            address,
        })
    }

    /// Connections open now.
    pub fn count(&self) -> u32 {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

/// Whether a `/ws` upgrade from a page of `origin` is allowed: any when no origin is listed
/// (`ALLOWED_ORIGINS` unset), else only those listed (a request without `Origin`, from a
/// non-browser client, is allowed: cross-site hijacking needs a browser, which always sends
/// it).
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        _ if allowed.is_empty() => true,
        None => true,
        Some(origin) => allowed.iter().any(|a| {
            a.trim_end_matches('/')
                .eq_ignore_ascii_case(origin.trim_end_matches('/'))
        }),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn connections_are_capped_in_total_and_per_address_and_freed_on_drop() {
        let caps = ConnectionCaps::new(3, 2);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let first = caps.open(a).unwrap();
        let _second = caps.open(a).unwrap();
        assert_eq!(caps.open(a).unwrap_err(), Refusal::PerAddress(2));
        let _third = caps.open(b).unwrap();
        assert_eq!(caps.open(b).unwrap_err(), Refusal::Total(3));
        drop(first);
        assert_eq!(caps.count(), 2);
        assert!(caps.open(a).is_ok(), "a place was freed");
    }

    #[test]
    fn origins_are_checked_only_when_listed() {
        assert!(origin_allowed(&[], Some("https://evil.example")));
        let allowed = vec!["https://meet.example.org".to_string()];
        assert!(origin_allowed(&allowed, Some("https://meet.example.org")));
        assert!(origin_allowed(&allowed, Some("HTTPS://MEET.example.org/")));
        assert!(!origin_allowed(&allowed, Some("https://evil.example")));
        assert!(origin_allowed(&allowed, None), "no browser, no hijacking");
    }

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
}
