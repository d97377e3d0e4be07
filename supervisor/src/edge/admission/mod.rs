//! Who may open a `/ws` session and how fast it may ask: caps on connections (in total and
//! per source address), the allowed page origins, token buckets per connection and per
//! address (`room_core::rate`), and which address a client has behind a reverse proxy ([`proxies`]).
//! Plain state and decisions; `http` and `signaling` apply them.

pub mod proxies;

pub use proxies::TrustedProxies;
pub use room_core::rate::{AddressBuckets, RateVerdict, RequestRate};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
