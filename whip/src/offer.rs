//! A client's SDP offer, read: its ICE credentials and DTLS fingerprint, and per media section
//! its mid, direction, codecs (rtpmap, fmtp, rtcp-fb), header extensions, simulcast rids and
//! SSRCs. The `sdp` crate reads the lines; what they mean for a WebRTC offer is read here.

use std::collections::BTreeMap;
use std::io::Cursor;

use sdp::{MediaDescription, SessionDescription};
use serde_json::Value;
use signaling_api::media::{DtlsParameters, Fingerprint, RtcpFeedback};
use signaling_api::Kind;

use crate::Refusal;

/// The largest offer read (a browser's offer with simulcast is ~6 KB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// An offer, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// The client's ICE username fragment (a PATCH with another one restarts ICE).
    pub ice_ufrag: String,
    /// The client's DTLS role as the SFU's transport takes it (`client` when the offer says
    /// `actpass` or `active`) and its fingerprints.
    pub dtls: DtlsParameters,
    /// Whether the client sends header extensions of one and two bytes mixed.
    pub extmap_allow_mixed: bool,
    /// Its media sections, in order.
    pub media: Vec<Media>,
}

/// The direction of a media section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `sendrecv` (the default).
    SendRecv,
    /// `sendonly`.
    SendOnly,
    /// `recvonly`.
    RecvOnly,
    /// `inactive`.
    Inactive,
}

impl Direction {
    /// Whether the client sends on it.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the client receives on it.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// One media section of an offer.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// Its mid (`a=mid`).
    pub mid: String,
    /// Audio or video; `None` for anything else (data channels, …), which the SFU rejects.
    pub kind: Option<Kind>,
    /// The `m=` line's media, protocol and formats, echoed by a rejected section's answer.
    pub media_type: String,
    /// The `m=` line's protocol.
    pub protocol: String,
    /// The `m=` line's formats.
    pub formats: Vec<String>,
    /// Whether the section is rejected already (port 0 without `a=bundle-only`).
    pub rejected: bool,
    /// Its direction.
    pub direction: Direction,
    /// Its codecs, in the client's order of preference.
    pub codecs: Vec<Codec>,
    /// Its header extensions.
    pub extensions: Vec<Extension>,
    /// The rids it sends, lowest layer first as listed in `a=simulcast:send`.
    pub rids: Vec<String>,
    /// Its SSRC (the first of an `FID` group, else the first listed).
    pub ssrc: Option<u32>,
    /// The RTX SSRC of an `FID` group.
    pub rtx_ssrc: Option<u32>,
    /// The CNAME of its SSRC.
    pub cname: Option<String>,
}

/// A codec of a media section.
#[derive(Debug, Clone, PartialEq)]
pub struct Codec {
    /// Its payload type.
    pub payload_type: u8,
    /// `audio/opus`, `video/VP8`, `video/rtx`, …
    pub mime_type: String,
    /// Its clock rate.
    pub clock_rate: u32,
    /// Audio channels.
    pub channels: Option<u8>,
    /// Its fmtp parameters (numbers as numbers, `profile-level-id` always as text).
    pub parameters: BTreeMap<String, Value>,
    /// Its RTCP feedback (`a=rtcp-fb`, including those for `*`).
    pub feedback: Vec<RtcpFeedback>,
}

impl Codec {
    /// Whether it is RTX, which repairs another codec (`apt`).
    pub fn is_rtx(&self) -> bool {
        self.mime_type.to_ascii_lowercase().ends_with("/rtx")
    }

    /// The payload type an RTX codec repairs.
    pub fn apt(&self) -> Option<u8> {
        self.parameters
            .get("apt")
            .and_then(Value::as_u64)
            .and_then(|apt| u8::try_from(apt).ok())
    }

    /// Its fmtp parameters as the signaling types hold them.
    pub fn parameter_map(&self) -> std::collections::HashMap<String, Value> {
        self.parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Its `a=rtpmap` value.
    pub fn rtpmap(&self) -> String {
        let name = self.mime_type.split('/').nth(1).unwrap_or_default();
        match self.channels {
            Some(channels) if channels > 1 => {
                format!(
                    "{} {name}/{}/{channels}",
                    self.payload_type, self.clock_rate
                )
            }
            _ => format!("{} {name}/{}", self.payload_type, self.clock_rate),
        }
    }

    /// Its `a=fmtp` value, if it has parameters.
    pub fn fmtp(&self) -> Option<String> {
        if self.parameters.is_empty() {
            return None;
        }
        let parameters: Vec<String> = self
            .parameters
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => format!("{key}={text}"),
                other => format!("{key}={other}"),
            })
            .collect();
        Some(format!("{} {}", self.payload_type, parameters.join(";")))
    }
}

/// A header extension of a media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Its id in the client's packets.
    pub id: u8,
    /// What it is.
    pub uri: String,
}

impl Offer {
    /// Reads `text` (at most [`MAX_OFFER_BYTES`]).
    pub fn read(text: &str) -> Result<Offer, Refusal> {
        if text.len() > MAX_OFFER_BYTES {
            return Err(Refusal::NotSdp(format!(
                "larger than {MAX_OFFER_BYTES} bytes"
            )));
        }
        if !text.trim_start().starts_with("v=") {
            return Err(Refusal::NotSdp("it does not start with `v=`".into()));
        }
        let session = SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
            .map_err(|e| Refusal::NotSdp(e.to_string()))?;
        let level = |media: &MediaDescription, key: &str| -> Option<String> {
            media
                .attribute(key)
                .flatten()
                .or_else(|| session.attribute(key).map(String::as_str))
                .map(str::to_string)
        };
        let first = session.media_descriptions.first();
        let ice_ufrag = first
            .and_then(|m| level(m, "ice-ufrag"))
            .ok_or_else(|| Refusal::Incomplete("no `a=ice-ufrag`".into()))?;
        if first.and_then(|m| level(m, "ice-pwd")).is_none() {
            return Err(Refusal::Incomplete("no `a=ice-pwd`".into()));
        }
        let fingerprints: Vec<Fingerprint> = first
            .map(|m| {
                let media = m.attributes.iter().filter(|a| a.key == "fingerprint");
                let session_level = session.attributes.iter().filter(|a| a.key == "fingerprint");
                media
                    .chain(session_level)
                    .filter_map(|a| a.value.as_deref())
                    .filter_map(|v| v.split_once(' '))
                    .map(|(algorithm, value)| Fingerprint {
                        algorithm: algorithm.to_ascii_lowercase(),
                        value: value.trim().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if fingerprints.is_empty() {
            return Err(Refusal::Incomplete(
                "no DTLS `a=fingerprint`: WebRTC media is encrypted".into(),
            ));
        }
        // The SFU takes the role the client leaves it: `passive` unless the client insists on
        // being the server.
        let setup = first.and_then(|m| level(m, "setup"));
        let role = match setup.as_deref() {
            Some("passive") => "server",
            Some("holdconn") => {
                return Err(Refusal::Incomplete(
                    "`a=setup:holdconn` holds no media".into(),
                ))
            }
            _ => "client",
        };
        let media = session
            .media_descriptions
            .iter()
            .enumerate()
            .map(|(index, m)| read_media(index, m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Offer {
            ice_ufrag,
            dtls: DtlsParameters {
                role: Some(role.into()),
                fingerprints,
            },
            extmap_allow_mixed: session.attribute("extmap-allow-mixed").is_some()
                || session.has_attribute("extmap-allow-mixed"),
            media,
        })
    }
}

/// The values of every `a=<key>` of `media`.
fn values<'a>(media: &'a MediaDescription, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    media
        .attributes
        .iter()
        .filter(move |a| a.key == key)
        .filter_map(|a| a.value.as_deref())
}

fn read_media(index: usize, m: &MediaDescription) -> Result<Media, Refusal> {
    let media_type = m.media_name.media.clone();
    let kind = match media_type.as_str() {
        "audio" => Some(Kind::Audio),
        "video" => Some(Kind::Video),
        _ => None,
    };
    let mid = m
        .attribute("mid")
        .flatten()
        .map(str::to_string)
        .unwrap_or_else(|| index.to_string());
    let direction = if m.has_attribute("sendonly") {
        Direction::SendOnly
    } else if m.has_attribute("recvonly") {
        Direction::RecvOnly
    } else if m.has_attribute("inactive") {
        Direction::Inactive
    } else {
        Direction::SendRecv
    };
    let mut codecs = Vec::new();
    for rtpmap in values(m, "rtpmap") {
        let Some((pt, encoding)) = rtpmap.split_once(' ') else {
            continue;
        };
        let Ok(payload_type) = pt.trim().parse::<u8>() else {
            continue;
        };
        let mut parts = encoding.trim().split('/');
        let name = parts.next().unwrap_or_default();
        let Some(clock_rate) = parts.next().and_then(|r| r.parse::<u32>().ok()) else {
            continue;
        };
        let channels = parts.next().and_then(|c| c.parse::<u8>().ok());
        codecs.push(Codec {
            payload_type,
            mime_type: format!("{media_type}/{name}"),
            clock_rate,
            channels: channels.or((kind == Some(Kind::Audio)).then_some(1)),
            parameters: BTreeMap::new(),
            feedback: Vec::new(),
        });
    }
    for fmtp in values(m, "fmtp") {
        let Some((pt, parameters)) = fmtp.split_once(' ') else {
            continue;
        };
        let Some(codec) = codecs
            .iter_mut()
            .find(|c| pt.trim().parse() == Ok(c.payload_type))
        else {
            continue;
        };
        for pair in parameters.split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            let number = value
                .parse::<u64>()
                .ok()
                .filter(|_| key != "profile-level-id");
            let value = number.map_or_else(|| Value::String(value.into()), Value::from);
            codec.parameters.insert(key.to_string(), value);
        }
    }
    for feedback in values(m, "rtcp-fb") {
        let mut parts = feedback.split_whitespace();
        let pt = parts.next().unwrap_or_default();
        let Some(kind) = parts.next() else { continue };
        let parameter = parts.next().unwrap_or_default();
        for codec in codecs
            .iter_mut()
            .filter(|c| pt == "*" || pt.parse() == Ok(c.payload_type))
        {
            codec.feedback.push(RtcpFeedback::new(kind, parameter));
        }
    }
    let extensions = values(m, "extmap")
        .filter_map(|value| {
            let (id, uri) = value.split_once(' ')?;
            // `1/sendonly`: the direction is not ours to keep.
            let id = id.split('/').next()?.parse::<u8>().ok()?;
            let uri = uri.split_whitespace().next()?.to_string();
            Some(Extension { id, uri })
        })
        .collect();
    let sent_rids: Vec<&str> = values(m, "rid")
        .filter_map(|value| {
            let mut parts = value.split_whitespace();
            let rid = parts.next()?;
            (parts.next() == Some("send")).then_some(rid)
        })
        .collect();
    let rids = values(m, "simulcast")
        .find_map(|value| {
            let mut parts = value.split_whitespace();
            while let Some(part) = parts.next() {
                if part == "send" {
                    return parts.next();
                }
            }
            None
        })
        .map(|list| {
            list.split(';')
                .filter_map(|alternatives| alternatives.split(',').next())
                .map(|rid| rid.trim_start_matches('~').to_string())
                .filter(|rid| sent_rids.contains(&rid.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let fid: Option<(u32, u32)> = values(m, "ssrc-group").find_map(|value| {
        let mut parts = value.split_whitespace();
        if parts.next() != Some("FID") {
            return None;
        }
        let main = parts.next()?.parse().ok()?;
        let rtx = parts.next()?.parse().ok()?;
        Some((main, rtx))
    });
    let ssrc_lines: Vec<(u32, &str)> = values(m, "ssrc")
        .filter_map(|value| {
            let (ssrc, attribute) = value.split_once(' ')?;
            Some((ssrc.parse().ok()?, attribute))
        })
        .collect();
    let ssrc = fid
        .map(|(main, _)| main)
        .or_else(|| ssrc_lines.first().map(|(ssrc, _)| *ssrc));
    let cname = ssrc.and_then(|ssrc| {
        ssrc_lines
            .iter()
            .filter(|(s, _)| *s == ssrc)
            .find_map(|(_, attribute)| attribute.strip_prefix("cname:"))
            .map(str::to_string)
    });
    Ok(Media {
        mid,
        kind,
        media_type,
        protocol: m.media_name.protos.join("/"),
        formats: m.media_name.formats.clone(),
        rejected: m.media_name.port.value == 0 && !m.has_attribute("bundle-only"),
        direction,
        codecs,
        extensions,
        rids,
        ssrc,
        rtx_ssrc: fid.map(|(_, rtx)| rtx),
        cname,
    })
}
