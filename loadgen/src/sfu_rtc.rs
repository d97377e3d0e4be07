//! The str0m side of a participant's transports against mediasoup, without SDP: the payload
//! types the router chose, what we can receive, the RTP parameters we announce, and an `Rtc`
//! set up as ICE controlling (the server is ICE lite) and DTLS client.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{json, Map, Value};
use signaling_api::media::{
    self, CodecCapability, CodecParameters, DtlsParameters, Encoding, Fingerprint, IceParameters,
    Rtcp, RtcpFeedback, RtpCapabilities, RtpParameters, RtxSsrc,
};
use signaling_api::TransportCreated;
use str0m::config::{DtlsVersion, Fingerprint as DtlsFingerprint};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, Pt};
use str0m::net::{Protocol, TcpType};
use str0m::{Candidate, IceCreds, Rtc};

use crate::media::Kind;
use crate::media_path;
use crate::participant::{failed, Failed};

/// Payload types the router gave our codecs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PayloadTypes {
    pub(crate) opus: u8,
    pub(crate) vp8: u8,
    pub(crate) vp8_rtx: u8,
}

impl PayloadTypes {
    pub(crate) fn from_router(caps: &Value) -> Result<PayloadTypes, String> {
        let caps: RtpCapabilities =
            media::read(caps).map_err(|e| format!("router RTP capabilities: {e}"))?;
        let find = |mime: &str, apt: Option<u8>| {
            caps.payload_type(mime, apt)
                .ok_or(format!("router has no {mime}"))
        };
        let opus = find("audio/opus", None)?;
        let vp8 = find("video/VP8", None)?;
        let vp8_rtx = find("video/rtx", Some(vp8))?;
        Ok(PayloadTypes { opus, vp8, vp8_rtx })
    }

    /// What this participant can receive: Opus, VP8 with RTX, no header extensions.
    pub(crate) fn device_capabilities(&self) -> Map<String, Value> {
        let codec = |kind: &str, mime: &str, pt: u8, clock_rate: u32| CodecCapability {
            kind: kind.into(),
            mime_type: mime.into(),
            preferred_payload_type: Some(pt),
            clock_rate,
            channels: None,
            parameters: HashMap::new(),
            rtcp_feedback: vec![],
        };
        let opus = CodecCapability {
            channels: Some(2),
            ..codec("audio", "audio/opus", self.opus, 48_000)
        };
        let vp8 = CodecCapability {
            rtcp_feedback: video_feedback(),
            ..codec("video", "video/VP8", self.vp8, 90_000)
        };
        let rtx = CodecCapability {
            parameters: HashMap::from([("apt".to_string(), json!(self.vp8))]),
            ..codec("video", "video/rtx", self.vp8_rtx, 90_000)
        };
        media::object(&RtpCapabilities {
            codecs: vec![opus, vp8, rtx],
            header_extensions: vec![],
        })
    }
}

/// The RTCP feedback our video answers: NACK, PLI and FIR.
fn video_feedback() -> Vec<RtcpFeedback> {
    vec![
        RtcpFeedback::new("nack", ""),
        RtcpFeedback::new("nack", "pli"),
        RtcpFeedback::new("ccm", "fir"),
    ]
}

/// The RTP parameters we announce for a send track: its codec and RTX, its encodings.
pub(crate) fn rtp_parameters(
    track: &crate::transport::SendTrack,
    pts: PayloadTypes,
    cname: &str,
) -> RtpParameters {
    let mut codecs = Vec::new();
    match track.kind {
        Kind::Audio => codecs.push(CodecParameters {
            mime_type: "audio/opus".into(),
            payload_type: pts.opus,
            clock_rate: 48_000,
            channels: Some(2),
            parameters: HashMap::new(),
            rtcp_feedback: vec![],
        }),
        Kind::Video => {
            codecs.push(CodecParameters {
                mime_type: "video/VP8".into(),
                payload_type: pts.vp8,
                clock_rate: 90_000,
                channels: None,
                parameters: HashMap::new(),
                rtcp_feedback: video_feedback(),
            });
            codecs.push(CodecParameters {
                mime_type: "video/rtx".into(),
                payload_type: pts.vp8_rtx,
                clock_rate: 90_000,
                channels: None,
                parameters: HashMap::from([("apt".to_string(), json!(pts.vp8))]),
                rtcp_feedback: vec![],
            });
        }
    }
    RtpParameters {
        mid: track.mid.clone(),
        codecs,
        header_extensions: vec![],
        encodings: track
            .layers
            .iter()
            .filter_map(|layer| {
                Some(Encoding {
                    ssrc: layer.ssrc?,
                    rtx: layer.rtx.map(|ssrc| RtxSsrc { ssrc }),
                })
            })
            .collect(),
        rtcp: Rtcp {
            cname: cname.into(),
            reduced_size: true,
        },
    }
}

/// A str0m `Rtc` set up against a mediasoup WebRtcTransport: we are ICE controlling (the
/// server is ICE lite) and the DTLS client.
pub(crate) fn direct_rtc(
    server: &TransportCreated,
    pts: PayloadTypes,
    host: Candidate,
    protocol: Protocol,
) -> Result<(Rtc, DtlsParameters), Failed> {
    let mut config = crate::transport::rtc_config()
        .set_ice_lite(false)
        .set_rtp_mode(true)
        .set_dtls_version(DtlsVersion::Dtls12)
        .set_local_ice_credentials(IceCreds::new())
        .clear_codecs();
    config.codec_config().add_config(
        Pt::from(pts.opus),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        FormatParams::default(),
    );
    config.codec_config().add_config(
        Pt::from(pts.vp8),
        Some(Pt::from(pts.vp8_rtx)),
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        FormatParams::default(),
    );
    let mut rtc = config.build(Instant::now());
    rtc.add_local_candidate(host);
    let malformed = |what: &str, e: serde_json::Error| failed("malformed", format!("{what}: {e}"));
    let ice: IceParameters =
        media::read(&server.ice_parameters).map_err(|e| malformed("ICE parameters", e))?;
    let dtls: DtlsParameters =
        media::read(&server.dtls_parameters).map_err(|e| malformed("DTLS parameters", e))?;
    let remote = match protocol {
        Protocol::Tcp => Candidate::builder()
            .tcp()
            .host(media_path::server_candidate(server, "tcp")?)
            .tcptype(TcpType::Passive)
            .build(),
        _ => Candidate::host(media_path::server_candidate(server, "udp")?, "udp"),
    }
    .map_err(|e| failed("malformed", e.to_string()))?;
    rtc.add_remote_candidate(remote);
    let fingerprint = dtls
        .fingerprints
        .iter()
        .find(|f| f.algorithm == "sha-256")
        .ok_or_else(|| failed("malformed", "no sha-256 fingerprint"))?;
    let bytes = fingerprint
        .value
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|e| failed("malformed", format!("fingerprint: {e}")))?;
    let local_fingerprint = {
        let mut api = rtc.direct_api();
        api.set_ice_controlling(true);
        api.set_remote_ice_credentials(IceCreds {
            ufrag: ice.username_fragment.clone(),
            pass: ice.password.clone(),
        });
        api.set_remote_fingerprint(DtlsFingerprint {
            hash_func: "sha-256".into(),
            bytes,
        });
        let local = api.local_dtls_fingerprint().clone();
        api.start_dtls(true)
            .map_err(|e| failed("ice_dtls", e.to_string()))?;
        local
    };
    let value = local_fingerprint
        .bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok((
        rtc,
        DtlsParameters {
            role: Some("client".into()),
            fingerprints: vec![Fingerprint {
                algorithm: local_fingerprint.hash_func,
                value,
            }],
        },
    ))
}
