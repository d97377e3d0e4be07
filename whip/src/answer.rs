//! The SDP answer: the SFU's transport (ICE-lite credentials, candidates, DTLS fingerprint and
//! role) and, per section of the offer, what the SFU receives (a WHIP producer), sends (a
//! WHEP consumer) or rejects.

use std::collections::BTreeMap;

use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaName, RangedPort};
use sdp::{MediaDescription, SessionDescription};
use serde::Deserialize;
use serde_json::Value;
use signaling_api::media::{DtlsParameters, IceParameters, RtpParameters};
use signaling_api::TransportCreated;

use crate::offer::{Codec, Extension, Offer};
use crate::publish::Produce;
use crate::Refusal;

/// The SFU's side of a session's transport.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTransport {
    /// Its ICE credentials.
    pub ice: IceParameters,
    /// Its candidates.
    pub candidates: Vec<Candidate>,
    /// Its DTLS fingerprints.
    pub dtls: DtlsParameters,
}

/// A candidate of the SFU's transport, as mediasoup describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Its foundation.
    pub foundation: String,
    /// Its priority.
    pub priority: u32,
    /// Its address.
    #[serde(alias = "ip")]
    pub address: String,
    /// `udp` or `tcp`.
    pub protocol: String,
    /// Its port.
    pub port: u16,
    /// `passive` for TCP.
    #[serde(default)]
    pub tcp_type: Option<String>,
}

impl Candidate {
    /// Its `a=candidate` value.
    pub fn line(&self) -> String {
        let tcp = match (&self.protocol[..], &self.tcp_type) {
            ("tcp", Some(tcp_type)) => format!(" tcptype {tcp_type}"),
            _ => String::new(),
        };
        format!(
            "{} 1 {} {} {} {} typ host{tcp}",
            self.foundation, self.protocol, self.priority, self.address, self.port
        )
    }
}

impl ServerTransport {
    /// From the answer to `createWebRtcTransport`.
    pub fn from_created(created: &TransportCreated) -> Result<ServerTransport, String> {
        let read = |what: &str, value: &Value| format!("the SFU's {what} are unreadable: {value}");
        Ok(ServerTransport {
            ice: IceParameters::deserialize(&created.ice_parameters)
                .map_err(|_| read("ICE parameters", &created.ice_parameters))?,
            candidates: Vec::<Candidate>::deserialize(&created.ice_candidates)
                .map_err(|_| read("candidates", &created.ice_candidates))?,
            dtls: DtlsParameters::deserialize(&created.dtls_parameters)
                .map_err(|_| read("DTLS parameters", &created.dtls_parameters))?,
        })
    }
}

/// What the SFU does with one section of the offer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerMedia {
    /// Receives a WHIP publisher's producer.
    Receive(Produce),
    /// Sends a consumer to a WHEP player (`stream` names the publisher for `a=msid`).
    Send {
        /// The consumer's RTP parameters.
        consumer: RtpParameters,
        /// The msid stream id.
        stream: String,
    },
    /// Rejects it.
    Reject,
}

/// A header extension in RTP parameters.
#[derive(Deserialize)]
struct HeaderExtension {
    uri: String,
    id: u8,
}

/// The answer to `offer`, `media` being one entry per section of it.
pub fn answer(
    offer: &Offer,
    server: &ServerTransport,
    media: &[AnswerMedia],
) -> Result<String, Refusal> {
    if media.len() != offer.media.len() {
        return Err(Refusal::Incomplete(
            "an answer for every section of the offer".into(),
        ));
    }
    let mut session = SessionDescription::new_jsep_session_description(false)
        .with_property_attribute("ice-lite".into());
    let bundled: Vec<&str> = offer
        .media
        .iter()
        .zip(media)
        .filter(|(_, a)| !matches!(a, AnswerMedia::Reject))
        .map(|(m, _)| m.mid.as_str())
        .collect();
    session = session.with_value_attribute("group".into(), format!("BUNDLE {}", bundled.join(" ")));
    if offer.extmap_allow_mixed {
        session = session.with_property_attribute("extmap-allow-mixed".into());
    }
    session = session.with_value_attribute("msid-semantic".into(), " WMS *".into());
    let setup = match offer.dtls.role.as_deref() {
        Some("server") => "active",
        _ => "passive",
    };
    let fingerprint = server
        .dtls
        .fingerprints
        .iter()
        .find(|f| f.algorithm == "sha-256")
        .or_else(|| server.dtls.fingerprints.first())
        .ok_or_else(|| Refusal::Incomplete("the SFU's transport has no fingerprint".into()))?;
    for (offered, answered) in offer.media.iter().zip(media) {
        let (direction, codecs, extensions) = match answered {
            AnswerMedia::Reject => {
                session = session.with_media(rejected(offered));
                continue;
            }
            AnswerMedia::Receive(produce) => (
                "recvonly",
                produce.codecs.clone(),
                produce.extensions.clone(),
            ),
            AnswerMedia::Send { consumer, .. } => (
                "sendonly",
                consumer.codecs.iter().map(consumer_codec).collect(),
                consumer
                    .header_extensions
                    .iter()
                    .filter_map(|e| HeaderExtension::deserialize(e).ok())
                    .map(|e| Extension {
                        id: e.id,
                        uri: e.uri,
                    })
                    .collect(),
            ),
        };
        let mut m = section(&offered.media_type, &offered.protocol)
            .with_value_attribute("mid".into(), offered.mid.clone())
            .with_property_attribute(direction.into())
            .with_ice_credentials(
                server.ice.username_fragment.clone(),
                server.ice.password.clone(),
            )
            .with_fingerprint(fingerprint.algorithm.clone(), fingerprint.value.clone())
            .with_value_attribute("setup".into(), setup.into())
            .with_property_attribute("rtcp-mux".into())
            .with_property_attribute("rtcp-rsize".into());
        for codec in &codecs {
            m.media_name.formats.push(codec.payload_type.to_string());
            m = m.with_value_attribute("rtpmap".into(), codec.rtpmap());
            if let Some(fmtp) = codec.fmtp() {
                m = m.with_value_attribute("fmtp".into(), fmtp);
            }
            for feedback in &codec.feedback {
                let value = if feedback.parameter.is_empty() {
                    format!("{} {}", codec.payload_type, feedback.kind)
                } else {
                    format!(
                        "{} {} {}",
                        codec.payload_type, feedback.kind, feedback.parameter
                    )
                };
                m = m.with_value_attribute("rtcp-fb".into(), value);
            }
        }
        for extension in &extensions {
            m = m.with_value_attribute(
                "extmap".into(),
                format!("{} {}", extension.id, extension.uri),
            );
        }
        match answered {
            AnswerMedia::Receive(produce) if !produce.rids.is_empty() => {
                for rid in &produce.rids {
                    m = m.with_value_attribute("rid".into(), format!("{rid} recv"));
                }
                m = m.with_value_attribute(
                    "simulcast".into(),
                    format!("recv {}", produce.rids.join(";")),
                );
            }
            AnswerMedia::Send { consumer, stream } => {
                let track = format!("{stream}-{}", offered.media_type);
                m = m.with_value_attribute("msid".into(), format!("{stream} {track}"));
                if let Some(encoding) = consumer.encodings.first() {
                    let cname = &consumer.rtcp.cname;
                    m = m.with_value_attribute(
                        "ssrc".into(),
                        format!("{} cname:{cname}", encoding.ssrc),
                    );
                    if let Some(rtx) = &encoding.rtx {
                        m = m
                            .with_value_attribute(
                                "ssrc-group".into(),
                                format!("FID {} {}", encoding.ssrc, rtx.ssrc),
                            )
                            .with_value_attribute(
                                "ssrc".into(),
                                format!("{} cname:{cname}", rtx.ssrc),
                            );
                    }
                }
            }
            _ => {}
        }
        for candidate in &server.candidates {
            m = m.with_value_attribute("candidate".into(), candidate.line());
        }
        m = m.with_property_attribute("end-of-candidates".into());
        session = session.with_media(m);
    }
    Ok(session.marshal())
}

/// An empty section of `media_type` over `protocol`.
fn section(media_type: &str, protocol: &str) -> MediaDescription {
    MediaDescription {
        media_name: MediaName {
            media: media_type.to_string(),
            port: RangedPort {
                value: 9,
                range: None,
            },
            protos: protocol.split('/').map(str::to_string).collect(),
            formats: Vec::new(),
        },
        media_title: None,
        connection_information: Some(ConnectionInformation {
            network_type: "IN".into(),
            address_type: "IP4".into(),
            address: Some(Address {
                address: "0.0.0.0".into(),
                ttl: None,
                range: None,
            }),
        }),
        bandwidth: Vec::new(),
        encryption_key: None,
        attributes: Vec::new(),
    }
}

/// The answer's section for a rejected one: port 0, its first format (with its `rtpmap`:
/// strict parsers, str0m's among them, want one for every format), its mid.
fn rejected(offered: &crate::offer::Media) -> MediaDescription {
    let mut m = section(&offered.media_type, &offered.protocol);
    m.media_name.port.value = 0;
    m.media_name.formats = offered.formats.iter().take(1).cloned().collect();
    m.attributes
        .push(Attribute::new("mid".into(), Some(offered.mid.clone())));
    let first = offered.formats.first();
    if let Some(codec) = offered
        .codecs
        .iter()
        .find(|c| first.is_some_and(|f| *f == c.payload_type.to_string()))
    {
        m.attributes
            .push(Attribute::new("rtpmap".into(), Some(codec.rtpmap())));
    }
    m.attributes.push(Attribute::new("inactive".into(), None));
    m
}

fn consumer_codec(codec: &signaling_api::media::CodecParameters) -> Codec {
    Codec {
        payload_type: codec.payload_type,
        mime_type: codec.mime_type.clone(),
        clock_rate: codec.clock_rate,
        channels: codec.channels,
        parameters: codec
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        feedback: codec.rtcp_feedback.clone(),
    }
}
