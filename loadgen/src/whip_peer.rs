//! A participant that speaks WHIP or WHEP instead of `/ws`: a publisher POSTs its offer to
//! `/whip/{room}` and sends the same synthetic media as the others; a viewer POSTs a
//! receive-only offer to `/whep/{room}` and checks what the room's one publisher sends. Each
//! DELETEs its session when the run ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Mid};
use tokio::sync::watch;

use crate::http::{request, Answer};
use crate::media::{publisher_tag, Kind};
use crate::participant::{self, failed, Failed, Record};
use crate::transport::{sdp_payload_types, sdp_rtc, RecvTrack, Transport};

/// ICE and DTLS must be up within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a WHEP viewer asks again while nobody publishes in its room yet (404).
const PUBLISHER_WAIT: Duration = Duration::from_secs(20);

/// Where the WHIP and WHEP endpoints are.
pub struct WhipTarget {
    /// The SFU's HTTP(S) base URL (`http://127.0.0.1:8000`).
    pub base: String,
    /// Trust for https.
    pub tls: Arc<rustls::ClientConfig>,
    /// Join token, sent as the bearer token.
    pub token: Option<String>,
    /// Local address of the media sockets.
    pub local_ip: std::net::IpAddr,
}

/// The HTTP(S) base of a `/ws` URL: `ws://h:p/ws` → `http://h:p`.
pub fn http_base(ws_url: &str) -> String {
    let (scheme, rest) = match ws_url.split_once("://") {
        Some(("wss", rest)) => ("https", rest),
        Some((_, rest)) => ("http", rest),
        None => ("http", ws_url),
    };
    let path_start = rest.find('/').unwrap_or(rest.len());
    let path = &rest[path_start..];
    // A proxy's prefix stays: `/conference/ws` → `/conference`.
    let prefix = path.strip_suffix("/ws").unwrap_or("");
    format!("{scheme}://{}{prefix}", &rest[..path_start])
}

/// Runs one participant until `stop` turns true: a WHIP publisher when its plan publishes,
/// else a WHEP viewer.
pub async fn run(target: Arc<WhipTarget>, record: Arc<Record>, mut stop: watch::Receiver<bool>) {
    let session = match participate(&target, &record).await {
        Ok(session) => session,
        Err(e) => return record.fail(e),
    };
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    let (_transport, location) = session;
    let deleted = request(
        &target.tls,
        Method::DELETE,
        &location,
        &headers(&target, None),
        String::new(),
    )
    .await;
    match deleted {
        Ok(Answer { status: 200, .. }) => {}
        Ok(answer) => record.fail(failed(
            "delete",
            format!("DELETE answered {}: {}", answer.status, answer.body.trim()),
        )),
        Err(e) => record.fail(failed("connection", e)),
    }
}

fn headers(target: &WhipTarget, content_type: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(content_type) = content_type {
        headers.push(("content-type", content_type.to_string()));
    }
    if let Some(token) = &target.token {
        headers.push(("authorization", format!("Bearer {token}")));
    }
    headers
}

/// Sets the session up: its transport and its URL.
async fn participate(target: &WhipTarget, record: &Record) -> Result<(Transport, String), Failed> {
    let plan = &record.plan;
    let mut rtc = sdp_rtc();
    let (socket, host) = participant::local_socket(target.local_ip).await?;
    rtc.add_local_candidate(host);
    let (direction, endpoint, kinds) = if plan.publish {
        (Direction::SendOnly, "whip", plan.kinds())
    } else {
        (Direction::RecvOnly, "whep", vec![Kind::Audio, Kind::Video])
    };
    let mut change = rtc.sdp_api();
    let mids: Vec<(Kind, Mid)> = kinds
        .into_iter()
        .map(|kind| {
            let media = match kind {
                Kind::Audio => MediaKind::Audio,
                Kind::Video => MediaKind::Video,
            };
            (kind, change.add_media(media, direction, None, None, None))
        })
        .collect();
    let (offer, pending) = change
        .apply()
        .ok_or_else(|| failed("internal", "str0m made no offer"))?;
    let url = format!("{}/{endpoint}/{}", target.base, plan.room);
    let offer = offer.to_sdp_string();
    // A viewer may come before its publisher is in: it asks again, as a player would.
    let give_up = Instant::now() + PUBLISHER_WAIT;
    let answer = loop {
        let answer = request(
            &target.tls,
            Method::POST,
            &url,
            &headers(target, Some("application/sdp")),
            offer.clone(),
        )
        .await
        .map_err(|e| failed("connection", e))?;
        let waiting = match answer.status {
            404 => true,
            // The publisher is in but has not produced everything yet (its video comes a
            // moment after its audio): the SFU rejected a section; leave and ask again.
            201 => rejects_a_section(&answer.body),
            _ => false,
        };
        if plan.publish || !waiting || Instant::now() > give_up {
            break answer;
        }
        if let (201, Some(location)) = (answer.status, &answer.location) {
            let _ = request(
                &target.tls,
                Method::DELETE,
                location,
                &headers(target, None),
                String::new(),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if answer.status != 201 {
        return Err(failed(
            &format!("http_{}", answer.status),
            format!("{endpoint} POST: {}", answer.body.trim()),
        ));
    }
    record.joined();
    let location = answer
        .location
        .ok_or_else(|| failed("malformed", "201 without a Location"))?;
    let sdp = SdpAnswer::from_sdp_string(&answer.body)
        .map_err(|e| failed("malformed", format!("the SFU's answer: {e}")))?;
    rtc.sdp_api()
        .accept_answer(pending, sdp)
        .map_err(|e| failed("sdp", format!("accepting the SFU's answer: {e}")))?;
    let pts = sdp_payload_types(&rtc);
    let transport = Transport::spawn(rtc, socket);
    record.add_transport(transport.shared.clone());
    if plan.publish {
        plan.send_negotiated(&transport, &mids, pts).await?;
    } else {
        // A WHEP viewer watches its room's one publisher (`--publishers 1`).
        let publisher = format!("{}-p0", plan.room);
        for (kind, mid) in &mids {
            transport
                .receive(RecvTrack {
                    mid: mid.to_string(),
                    kind: *kind,
                    ssrc: None,
                    tag: publisher_tag(&publisher),
                    reference: record.started,
                    consumed: None,
                })
                .await;
        }
    }
    let connected = transport
        .wait_connected(CONNECT_TIMEOUT)
        .await
        .map_err(|e| failed("ice_dtls", e))?;
    record.connected(connected);
    Ok((transport, location))
}

/// Whether an SDP answer rejects one of the offer's sections (port 0).
fn rejects_a_section(sdp: &str) -> bool {
    sdp.lines().any(|line| {
        line.strip_prefix("m=")
            .and_then(|m| m.split_whitespace().nth(1))
            .is_some_and(|port| port == "0")
    })
}

#[cfg(test)]
mod tests {
    use super::{http_base, rejects_a_section};

    #[test]
    fn an_answer_with_a_port_0_section_rejects_it() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\n";
        assert!(rejects_a_section(answer));
        assert!(!rejects_a_section(&answer.replace("video 0", "video 9")));
    }

    #[test]
    fn the_http_base_is_the_signaling_urls_origin_and_prefix() {
        assert_eq!(http_base("ws://127.0.0.1:8000/ws"), "http://127.0.0.1:8000");
        assert_eq!(
            http_base("wss://sfu.example.org/conference/ws"),
            "https://sfu.example.org/conference"
        );
        assert_eq!(
            http_base("wss://sfu.example.org"),
            "https://sfu.example.org"
        );
    }
}
