//! How a participant's transports reach the SFU (`--ice-tcp`, `--turn`, else UDP): the
//! TURN credentials a join answer hands out, and opening a transport's link and our ICE
//! candidate for it.

use std::net::{IpAddr, SocketAddr};

use signaling_api::media::{self, IceCandidate};
use signaling_api::{IceServer, TransportCreated};
use str0m::Candidate;

use crate::link::Link;
use crate::participant::{failed, local_socket, Failed};
use crate::turn::TurnLink;

/// How a participant's transports reach the SFU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaPath {
    /// UDP, a socket per transport.
    Udp,
    /// ICE-TCP, a connection per transport.
    Tcp,
    /// Through the TURN server of the join answer (over UDP), an allocation per transport;
    /// its address and credentials once joined.
    Turn(Option<TurnCredentials>),
}

/// A TURN server and a participant's credentials for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnCredentials {
    server: SocketAddr,
    username: String,
    password: String,
}

/// The first TURN server over UDP among the join answer's `iceServers`, resolved.
pub async fn turn_credentials(servers: &[IceServer]) -> Result<TurnCredentials, Failed> {
    for server in servers {
        let (Some(username), Some(password)) = (&server.username, &server.credential) else {
            continue;
        };
        for url in &server.urls {
            let Some(rest) = url.strip_prefix("turn:") else {
                continue;
            };
            let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
            if !(query.is_empty() || query == "transport=udp") {
                continue;
            }
            let with_port = if authority
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                authority.to_string()
            } else {
                format!("{authority}:3478")
            };
            let server = tokio::net::lookup_host(with_port.as_str())
                .await
                .ok()
                .and_then(|mut found| found.next())
                .ok_or_else(|| failed("turn", format!("cannot resolve {url}")))?;
            return Ok(TurnCredentials {
                server,
                username: username.clone(),
                password: password.clone(),
            });
        }
    }
    Err(failed(
        "turn",
        "the join answer has no turn: URL over UDP with credentials (is TURN_URLS set?)",
    ))
}

/// The address of the server's candidate over `protocol` (`udp` or `tcp`).
pub fn server_candidate(server: &TransportCreated, protocol: &str) -> Result<SocketAddr, Failed> {
    let candidates: Vec<IceCandidate> = media::read(&server.ice_candidates)
        .map_err(|e| failed("malformed", format!("ICE candidates: {e}")))?;
    let found = candidates
        .iter()
        .find(|c| c.protocol == protocol)
        .ok_or_else(|| {
            failed(
                "malformed",
                format!("the transport has no {protocol} candidate"),
            )
        })?;
    format!("{}:{}", found.address, found.port)
        .parse()
        .map_err(|e| failed("malformed", format!("candidate address: {e}")))
}

/// Opens the link of a transport the SFU created (`server`) from `ip` along `path`; the link
/// and our candidate on it.
pub async fn open(
    path: &MediaPath,
    ip: IpAddr,
    server: &TransportCreated,
) -> Result<(Link, Candidate), Failed> {
    match path {
        MediaPath::Tcp => {
            let remote = server_candidate(server, "tcp")?;
            Link::connect_tcp(ip, remote)
                .await
                .map_err(|e| failed("socket", format!("TCP to {remote}: {e}")))
        }
        MediaPath::Turn(Some(turn)) => {
            let peer = server_candidate(server, "udp")?;
            let link = TurnLink::allocate(ip, turn.server, &turn.username, &turn.password, peer)
                .await
                .map_err(|e| failed("turn", format!("{}: {e}", turn.server)))?;
            let local = link
                .local_addr()
                .map_err(|e| failed("socket", e.to_string()))?;
            let host = Candidate::relayed(link.relayed(), local, "udp")
                .map_err(|e| failed("turn", e.to_string()))?;
            Ok((Link::Turn(Box::new(link)), host))
        }
        MediaPath::Turn(None) => Err(failed("turn", "no TURN credentials")),
        MediaPath::Udp => {
            let (socket, host) = local_socket(ip).await?;
            Ok((Link::Udp(socket), host))
        }
    }
}
