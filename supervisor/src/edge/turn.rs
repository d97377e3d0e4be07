//! TURN credentials for clients (the TURN REST API scheme that coturn's `use-auth-secret`
//! implements): username `expiry:identity`, password base64(HMAC-SHA1(secret, username)).
//! The TURN server checks them with the same secret and refuses them after `expiry`, so no
//! per-user state is shared with it.

use std::net::IpAddr;

use base64::Engine as _;
use ring::hmac;
use signaling_api::IceServer;

/// A TURN setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// Not a `turn:`, `turns:` or `stun:` URL.
    #[error("TURN_URLS: {0:?} is not a turn:, turns: or stun: URL (e.g. turns:turn.example.com:443?transport=tcp)")]
    Url(String),
    /// TURN URLs without the secret to sign credentials with.
    #[error("TURN_URLS lists TURN servers but TURN_SECRET (or TURN_SECRET_FILE) is not set: coturn's static-auth-secret")]
    NoSecret,
}

/// The STUN/TURN servers every client is handed, with credentials signed for it.
#[derive(Clone)]
pub struct TurnServers {
    urls: Vec<String>,
    key: hmac::Key,
    ttl_secs: u64,
    hosts: Vec<String>,
    /// The servers' addresses: those of the URLs, and what their names resolved to.
    relay_ips: Vec<IpAddr>,
}

impl std::fmt::Debug for TurnServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("TurnServers")
            .field("urls", &self.urls)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl TurnServers {
    /// Servers at `urls`, credentials signed with `secret`, valid `ttl_secs`.
    pub fn new(urls: &[String], secret: &[u8], ttl_secs: u64) -> Result<Self, TurnError> {
        let mut hosts = Vec::new();
        let mut needs_secret = false;
        for url in urls {
            let (scheme, host) = url_host(url).ok_or_else(|| TurnError::Url(url.clone()))?;
            needs_secret |= scheme != "stun";
            hosts.push(host.to_string());
        }
        if needs_secret && secret.is_empty() {
            return Err(TurnError::NoSecret);
        }
        Ok(Self {
            urls: urls.to_vec(),
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret),
            ttl_secs,
            relay_ips: hosts.iter().filter_map(|h| h.parse().ok()).collect(),
            hosts,
        })
    }

    /// The servers for the peer `identity`, its credentials valid until `now_unix` + TTL.
    pub fn ice_servers(&self, identity: &str, now_unix: u64) -> Vec<IceServer> {
        let username = format!("{}:{identity}", now_unix.saturating_add(self.ttl_secs));
        let credential = self.credential(&username);
        vec![IceServer {
            urls: self.urls.clone(),
            username: Some(username),
            credential: Some(credential),
        }]
    }

    /// The password of `username`.
    pub fn credential(&self, username: &str) -> String {
        let tag = hmac::sign(&self.key, username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    }

    /// The servers' host names or addresses, as the URLs give them.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Looks up the addresses of the servers named by host name (once, at start: the monitor
    /// tells relayed media by them); a name that does not resolve is logged and skipped.
    pub async fn resolve(&mut self) {
        for host in &self.hosts {
            if host.parse::<IpAddr>().is_ok() {
                continue;
            }
            let lookup = tokio::net::lookup_host((host.as_str(), 0));
            match tokio::time::timeout(std::time::Duration::from_secs(5), lookup).await {
                Ok(Ok(addrs)) => self.relay_ips.extend(addrs.map(|a| a.ip())),
                Ok(Err(e)) => tracing::warn!(%host, "cannot resolve the TURN server: {e}"),
                Err(_) => tracing::warn!(%host, "cannot resolve the TURN server within 5 s"),
            }
        }
    }

    /// Whether media from `ip` comes through one of these servers.
    pub fn relays(&self, ip: IpAddr) -> bool {
        self.relay_ips.contains(&ip)
    }
}

/// The scheme and host of a `turn:`/`turns:`/`stun:` URL (RFC 7065: `scheme:host[:port][?transport=…]`).
fn url_host(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    if !matches!(scheme, "turn" | "turns" | "stun" | "stuns") {
        return None;
    }
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    if let Some(query) = query {
        if !matches!(query, "transport=udp" | "transport=tcp") {
            return None;
        }
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        if !after.is_empty() && !valid_port(after.strip_prefix(':')?) {
            return None;
        }
        host
    } else {
        match authority.split_once(':') {
            Some((host, port)) if valid_port(port) => host,
            Some(_) => return None,
            None => authority,
        }
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    valid.then_some((scheme.trim_end_matches('s'), host))
}

fn valid_port(port: &str) -> bool {
    port.parse::<u16>().is_ok_and(|p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(urls: &[&str], secret: &str) -> Result<TurnServers, TurnError> {
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        TurnServers::new(&urls, secret.as_bytes(), 86_400)
    }

    #[test]
    fn credentials_follow_the_turn_rest_scheme_coturn_checks() {
        let turn = servers(&["turns:turn.example.com:443?transport=tcp"], "north").unwrap();
        let [server] = turn.ice_servers("alice", 1_700_000_000).try_into().unwrap();
        assert_eq!(server.username.as_deref(), Some("1700086400:alice"));
        // python3: base64(hmac.new(b'north', b'1700086400:alice', sha1).digest())
        assert_eq!(
            server.credential.as_deref(),
            Some("SXua5ne/+mDhiHTp0pQJzRO4ESg=")
        );
        assert_eq!(server.urls, ["turns:turn.example.com:443?transport=tcp"]);
    }

    #[test]
    fn urls_that_are_not_turn_or_stun_are_refused_with_an_example() {
        for bad in [
            "http://turn.example.com",
            "turn:",
            "turn:host:0",
            "turn:host:port",
            "turn:host?transport=sctp",
            "turn:ho st",
        ] {
            let error = servers(&[bad], "s").unwrap_err().to_string();
            assert!(
                error.contains("turns:turn.example.com:443"),
                "{bad}: {error}"
            );
        }
        let turn = servers(
            &[
                "turn:10.0.0.1:3478?transport=udp",
                "turn:[2001:db8::1]:3478",
                "stun:stun.example.com",
            ],
            "s",
        )
        .unwrap();
        assert_eq!(
            turn.hosts(),
            ["10.0.0.1", "2001:db8::1", "stun.example.com"]
        );
    }

    #[test]
    fn turn_urls_need_the_secret_but_stun_alone_does_not() {
        assert!(matches!(
            servers(&["turn:turn.example.com"], ""),
            Err(TurnError::NoSecret)
        ));
        assert!(servers(&["stun:stun.example.com:3478"], "").is_ok());
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let turn = servers(&["turn:turn.example.com"], "very-secret-value").unwrap();
        assert!(!format!("{turn:?}").contains("very-secret"));
    }
}
