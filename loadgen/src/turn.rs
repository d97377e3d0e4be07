//! A TURN client for one transport (RFC 8656 over UDP, what a client whose only way out is a
//! TURN server does): allocates a relayed address with the long-term credentials the SFU
//! handed out in its join answer, binds a channel to the SFU's candidate, then carries every
//! packet as ChannelData. Refreshes the allocation and the channel while it lives.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};
use ring::hmac;
use tokio::net::UdpSocket;

const MAGIC: u32 = 0x2112_A442;
const ALLOCATE: u16 = 0x003;
const REFRESH: u16 = 0x004;
const CHANNEL_BIND: u16 = 0x009;
const SUCCESS: u16 = 0x100;
const ERROR: u16 = 0x110;
const USERNAME: u16 = 0x0006;
const MESSAGE_INTEGRITY: u16 = 0x0008;
const ERROR_CODE: u16 = 0x0009;
const CHANNEL_NUMBER: u16 = 0x000C;
const LIFETIME: u16 = 0x000D;
const XOR_PEER_ADDRESS: u16 = 0x0012;
const REALM: u16 = 0x0014;
const NONCE: u16 = 0x0015;
const XOR_RELAYED_ADDRESS: u16 = 0x0016;
const REQUESTED_TRANSPORT: u16 = 0x0019;
/// The one channel of an allocation: to the SFU.
const CHANNEL: u16 = 0x4000;
/// Channels and permissions last 10 and 5 minutes: refreshed well before.
const REFRESH_EVERY: Duration = Duration::from_secs(120);

/// An allocation on a TURN server with a channel to one peer.
pub struct TurnLink {
    socket: UdpSocket,
    server: SocketAddr,
    peer: SocketAddr,
    relayed: SocketAddr,
    auth: Auth,
    refreshed: Instant,
}

/// The long-term credential and what the server asked to be signed with.
struct Auth {
    username: String,
    key: hmac::Key,
    realm: String,
    nonce: Vec<u8>,
}

impl TurnLink {
    /// Allocates on `server` from `ip` with `username`/`password` and binds a channel to `peer`.
    pub async fn allocate(
        ip: IpAddr,
        server: SocketAddr,
        username: &str,
        password: &str,
        peer: SocketAddr,
    ) -> io::Result<TurnLink> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        // The first Allocate is refused (401) with the realm and nonce to sign with.
        let first = message(ALLOCATE, &[(REQUESTED_TRANSPORT, vec![17, 0, 0, 0])], None);
        let refusal = exchange(&socket, server, &first).await?;
        let attrs = attributes(&refusal).ok_or_else(|| bad("a malformed answer"))?;
        let realm = text(&attrs, REALM).ok_or_else(|| bad("no REALM in the 401"))?;
        let nonce = find(&attrs, NONCE)
            .ok_or_else(|| bad("no NONCE in the 401"))?
            .to_vec();
        let long_term = Md5::digest(format!("{username}:{realm}:{password}").as_bytes());
        let auth = Auth {
            username: username.into(),
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &long_term),
            realm,
            nonce,
        };
        let allocate = auth.sign(ALLOCATE, vec![(REQUESTED_TRANSPORT, vec![17, 0, 0, 0])]);
        let answer = exchange(&socket, server, &allocate).await?;
        let relayed = success(&answer, ALLOCATE).and_then(|attrs| {
            find(&attrs, XOR_RELAYED_ADDRESS)
                .and_then(xor_address)
                .ok_or_else(|| bad("no IPv4 XOR-RELAYED-ADDRESS in the answer"))
        })?;
        let bind = auth.sign(CHANNEL_BIND, channel_bind(peer));
        success(&exchange(&socket, server, &bind).await?, CHANNEL_BIND)?;
        Ok(TurnLink {
            socket,
            server,
            peer,
            relayed,
            auth,
            refreshed: Instant::now(),
        })
    }

    /// The relayed address: our candidate.
    pub fn relayed(&self) -> SocketAddr {
        self.relayed
    }

    /// Our socket's address (the allocation's client side).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The next packet from the peer into `buf` (cancel-safe); what else arrives (the
    /// server's answers to refreshes) is taken in passing.
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            if let Some(got) = self.take(buf, n, from) {
                return Ok(got);
            }
        }
    }

    /// A packet already there (`WouldBlock` when none is).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.try_recv_from(buf)?;
            if let Some(got) = self.take(buf, n, from) {
                return Ok(got);
            }
        }
    }

    /// ChannelData from the server: its payload moved to the front of `buf`.
    fn take(&mut self, buf: &mut [u8], n: usize, from: SocketAddr) -> Option<(usize, SocketAddr)> {
        if from != self.server || n < 4 {
            return None;
        }
        if (0x40..0x80).contains(&buf[0]) {
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if 4 + len > n {
                return None;
            }
            buf.copy_within(4..4 + len, 0);
            return Some((len, self.peer));
        }
        // A refresh refused with a new nonce (438 stale nonce): sign again with it, now.
        let kind = u16::from_be_bytes([buf[0], buf[1]]);
        if kind & ERROR == ERROR {
            if let Some(nonce) =
                attributes(&buf[..n]).and_then(|a| find(&a, NONCE).map(<[u8]>::to_vec))
            {
                self.auth.nonce = nonce;
                self.refreshed = Instant::now()
                    .checked_sub(REFRESH_EVERY)
                    .unwrap_or(self.refreshed);
            }
        }
        None
    }

    /// Sends `contents` to the peer as ChannelData (refreshing first when due).
    pub async fn send(&mut self, contents: &[u8]) -> io::Result<()> {
        if self.refreshed.elapsed() >= REFRESH_EVERY {
            self.refreshed = Instant::now();
            let refresh = self
                .auth
                .sign(REFRESH, vec![(LIFETIME, 600u32.to_be_bytes().to_vec())]);
            self.socket.send_to(&refresh, self.server).await?;
            let bind = self.auth.sign(CHANNEL_BIND, channel_bind(self.peer));
            self.socket.send_to(&bind, self.server).await?;
        }
        let len = u16::try_from(contents.len()).map_err(|_| bad("a packet above 65535 bytes"))?;
        let mut data = Vec::with_capacity(contents.len() + 8);
        data.extend_from_slice(&CHANNEL.to_be_bytes());
        data.extend_from_slice(&len.to_be_bytes());
        data.extend_from_slice(contents);
        // Padded to 4 bytes, as over TCP (harmless over UDP).
        data.resize(data.len().next_multiple_of(4), 0);
        self.socket.send_to(&data, self.server).await.map(|_| ())
    }
}

impl Auth {
    /// A request of `method` with `attrs`, the credential's attributes and its integrity.
    fn sign(&self, method: u16, mut attrs: Vec<(u16, Vec<u8>)>) -> Vec<u8> {
        attrs.push((USERNAME, self.username.as_bytes().to_vec()));
        attrs.push((REALM, self.realm.as_bytes().to_vec()));
        attrs.push((NONCE, self.nonce.clone()));
        message(method, &attrs, Some(&self.key))
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::other(format!("TURN: {what}"))
}

/// CHANNEL-NUMBER and XOR-PEER-ADDRESS of a ChannelBind to `peer`.
fn channel_bind(peer: SocketAddr) -> Vec<(u16, Vec<u8>)> {
    let mut channel = CHANNEL.to_be_bytes().to_vec();
    channel.extend_from_slice(&[0, 0]);
    vec![
        (CHANNEL_NUMBER, channel),
        (XOR_PEER_ADDRESS, encode_xor_address(peer)),
    ]
}

/// A STUN request: header, attributes (each padded to 4 bytes), and MESSAGE-INTEGRITY when
/// `key` is given (an HMAC-SHA1 of what precedes it, the length counting it).
fn message(method: u16, attrs: &[(u16, Vec<u8>)], key: Option<&hmac::Key>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&method.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&transaction_id());
    for (kind, value) in attrs {
        push_attribute(&mut out, *kind, value);
    }
    if let Some(key) = key {
        set_length(&mut out, 24);
        let tag = hmac::sign(key, &out);
        push_attribute(&mut out, MESSAGE_INTEGRITY, tag.as_ref());
    }
    set_length(&mut out, 0);
    out
}

fn push_attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Sets the header's length: the attributes after it, plus `extra` bytes still to come.
fn set_length(out: &mut [u8], extra: usize) {
    let len = (out.len() - 20 + extra) as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
}

fn transaction_id() -> [u8; 12] {
    use ring::rand::SecureRandom as _;
    let mut id = [0u8; 12];
    // A transaction id only needs to be unlikely to repeat: the clock will do if the system's
    // random source fails.
    if ring::rand::SystemRandom::new().fill(&mut id).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        id.copy_from_slice(&nanos.to_be_bytes()[4..]);
    }
    id
}

/// Sends `request` to `server` and waits for its answer (resending twice, 500 ms apart).
async fn exchange(socket: &UdpSocket, server: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    for _ in 0..3 {
        socket.send_to(request, server).await?;
        let wait = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                let (n, from) = socket.recv_from(&mut buf).await?;
                // The answer to this request: same transaction id.
                if from == server && n >= 20 && buf[8..20] == request[8..20] {
                    return Ok::<usize, io::Error>(n);
                }
            }
        })
        .await;
        if let Ok(answer) = wait {
            return answer.map(|n| buf[..n].to_vec());
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("TURN: no answer from {server}"),
    ))
}

/// The attributes of a success answer to `method`, or the error the server answered.
fn success(answer: &[u8], method: u16) -> io::Result<Vec<(u16, &[u8])>> {
    let kind = u16::from_be_bytes([answer[0], answer[1]]);
    let attrs = attributes(answer).ok_or_else(|| bad("a malformed answer"))?;
    if kind == method | SUCCESS {
        return Ok(attrs);
    }
    if kind == method | ERROR {
        let reason = find(&attrs, ERROR_CODE)
            .filter(|v| v.len() >= 4)
            .map(|v| {
                let code = u16::from(v[2] & 7) * 100 + u16::from(v[3]);
                format!("{code} {}", String::from_utf8_lossy(&v[4..]))
            })
            .unwrap_or_else(|| "an error".into());
        return Err(bad(&format!("the server refused: {reason}")));
    }
    Err(bad(&format!("an unexpected answer type {kind:#06x}")))
}

/// The attributes of a STUN message; `None` if it is not one.
fn attributes(message: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    if message.len() < 20 || message[4..8] != MAGIC.to_be_bytes() {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([message[2], message[3]]));
    let body = message.get(20..20 + len)?;
    let mut attrs = Vec::new();
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let size = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + size)?;
        attrs.push((kind, value));
        at += (4 + size).next_multiple_of(4);
    }
    Some(attrs)
}

fn find<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

fn text(attrs: &[(u16, &[u8])], kind: u16) -> Option<String> {
    find(attrs, kind).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn xor_address(value: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC >> 16) as u16;
    match value.get(1).copied()? {
        0x01 => {
            let raw = u32::from_be_bytes(value.get(4..8)?.try_into().ok()?) ^ MAGIC;
            Some(SocketAddr::new(IpAddr::from(raw.to_be_bytes()), port))
        }
        _ => None, // IPv6 relayed addresses: not asked for
    }
}

fn encode_xor_address(addr: SocketAddr) -> Vec<u8> {
    let port = addr.port() ^ (MAGIC >> 16) as u16;
    let mut out = vec![0, 0x01];
    out.extend_from_slice(&port.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&(u32::from(ip) ^ MAGIC).to_be_bytes()),
        IpAddr::V6(_) => {} // the SFU's IPv6 candidates: not used by the loadgen
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_addresses_read_back_what_was_written() {
        let addr: SocketAddr = "10.79.3.1:40000".parse().unwrap();
        assert_eq!(xor_address(&encode_xor_address(addr)), Some(addr));
    }

    #[test]
    fn a_signed_request_counts_its_integrity_in_its_length() {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"k");
        let request = message(
            ALLOCATE,
            &[(REQUESTED_TRANSPORT, vec![17, 0, 0, 0])],
            Some(&key),
        );
        let attrs = attributes(&request).unwrap();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[1].0, MESSAGE_INTEGRITY);
        // The integrity covers everything before it, with the final length in the header.
        let covered = &request[..request.len() - 24];
        assert!(hmac::verify(&key, covered, attrs[1].1).is_ok());
    }
}
