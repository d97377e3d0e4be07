//! The client's address behind a reverse proxy: the socket's peer, unless that peer is a
//! listed proxy (`TRUSTED_PROXIES`), in which case the `X-Forwarded-For` entry the nearest
//! untrusted hop added. Never trust the header from anyone else: a client could name any
//! address and dodge every per-address limit.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// An entry of `TRUSTED_PROXIES` that is neither an address nor a network.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("TRUSTED_PROXIES: {0:?} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/8, ::1)")]
pub struct BadProxy(pub String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// Comma-separated addresses and networks.
    fn from_str(list: &str) -> Result<Self, BadProxy> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadProxy(entry.to_string()))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The address of the client of a request from `peer` carrying `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        // Proxies append: walk from the nearest hop back, past the trusted ones.
        let mut client = peer;
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(address) => {
                    client = canonical(address);
                    if !self.trusts(client) {
                        return client;
                    }
                }
                // Garbage: what the trusted proxies vouched for ends here.
                Err(_) => return client,
            }
        }
        client
    }
}

/// IPv4 addresses mapped into IPv6 (`::ffff:a.b.c.d`, from a dual-stack socket) as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        let none = TrustedProxies::default();
        let forged = headers(&["198.51.100.7"]);
        assert_eq!(
            none.client_address(ip("203.0.113.9"), &forged),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let proxies: TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
        // The client claims an address; the edge proxy appends the one it saw; an inner proxy
        // appends the edge's.
        let chain = headers(&["1.2.3.4, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(
            proxies.client_address(ip("127.0.0.1"), &chain),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_address(ip("::ffff:127.0.0.1"), &headers(&["198.51.100.8"])),
            ip("198.51.100.8"),
            "IPv4-mapped peers are matched as IPv4"
        );
        assert_eq!(
            proxies.client_address(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1"),
            "no header: the proxy itself"
        );
        assert_eq!(
            proxies.client_address(ip("127.0.0.1"), &headers(&["junk, 10.0.0.9"])),
            ip("10.0.0.9"),
            "garbage stops the walk"
        );
    }

    #[test]
    fn the_list_takes_addresses_and_networks_and_names_a_bad_entry() {
        assert_eq!(
            "10.0.0.5,::1, 192.168.0.0/16"
                .parse::<TrustedProxies>()
                .map(|p| p.0.len()),
            Ok(3)
        );
        assert_eq!(
            "10.0.0.5, proxy.example".parse::<TrustedProxies>(),
            Err(BadProxy("proxy.example".into()))
        );
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
    }
}
