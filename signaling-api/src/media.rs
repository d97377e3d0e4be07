//! A typed subset of mediasoup's payloads as the protocol carries them: RTP parameters, ICE
//! and DTLS parameters, candidates. The server passes them between client and node untouched
//! (opaque JSON in [`crate::ProduceArgs`], [`crate::TransportCreated`], …); a client builds
//! and reads them with these types instead of indexing JSON by string. Fields a client of
//! ours does not use are left out (and ignored when read).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// DTLS parameters: the server's in [`crate::TransportCreated`], the client's in
/// `connectWebRtcTransport`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DtlsParameters {
    /// `client` or `server` (the client's); `auto` or absent in the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Certificate fingerprints.
    pub fingerprints: Vec<Fingerprint>,
}

/// A certificate fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `sha-256`, …
    pub algorithm: String,
    /// Colon-separated hex.
    pub value: String,
}

/// ICE credentials of a server transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceParameters {
    /// ufrag.
    pub username_fragment: String,
    /// pwd.
    pub password: String,
}

/// One server candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IceCandidate {
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// `udp` or `tcp`.
    pub protocol: String,
}

/// The RTP parameters of a producer (`produce`) or of a consumer (its answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpParameters {
    /// Its mid on its transport.
    #[serde(default)]
    pub mid: String,
    /// The codec and, for video, its RTX.
    #[serde(default)]
    pub codecs: Vec<CodecParameters>,
    /// RTP header extensions.
    #[serde(default)]
    pub header_extensions: Vec<Value>,
    /// One per simulcast layer.
    #[serde(default)]
    pub encodings: Vec<Encoding>,
    /// RTCP settings.
    #[serde(default)]
    pub rtcp: Rtcp,
}

/// One codec of [`RtpParameters`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodecParameters {
    /// `audio/opus`, `video/VP8`, `video/rtx`, …
    pub mime_type: String,
    /// Its payload type.
    pub payload_type: u8,
    /// Its clock rate.
    pub clock_rate: u32,
    /// Audio channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    /// fmtp parameters (`apt` for RTX).
    #[serde(default)]
    pub parameters: HashMap<String, Value>,
    /// RTCP feedback the sender answers.
    #[serde(default)]
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

/// An RTCP feedback type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtcpFeedback {
    /// `nack`, `ccm`, `goog-remb`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `pli`, `fir` or empty.
    #[serde(default)]
    pub parameter: String,
}

impl RtcpFeedback {
    /// Feedback `kind` with `parameter` (empty for none).
    pub fn new(kind: &str, parameter: &str) -> Self {
        Self {
            kind: kind.into(),
            parameter: parameter.into(),
        }
    }
}

/// One encoding (a simulcast layer, or the one stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoding {
    /// Its SSRC.
    pub ssrc: u32,
    /// Its RTX stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx: Option<RtxSsrc>,
}

/// An RTX SSRC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtxSsrc {
    /// The SSRC.
    pub ssrc: u32,
}

/// RTCP settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rtcp {
    /// Its CNAME.
    #[serde(default)]
    pub cname: String,
    /// RFC 5506.
    #[serde(default)]
    pub reduced_size: bool,
}

/// RTP capabilities: a router's (`routerRtpCapabilities`), or a device's (`consume`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCapabilities {
    /// The codecs.
    #[serde(default)]
    pub codecs: Vec<CodecCapability>,
    /// RTP header extensions.
    #[serde(default)]
    pub header_extensions: Vec<Value>,
}

/// One codec of [`RtpCapabilities`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodecCapability {
    /// `audio` or `video`.
    pub kind: String,
    /// `audio/opus`, `video/VP8`, `video/rtx`, …
    pub mime_type: String,
    /// The payload type the router (or device) gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_payload_type: Option<u8>,
    /// Its clock rate.
    pub clock_rate: u32,
    /// Audio channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    /// fmtp parameters (`apt` for RTX).
    #[serde(default)]
    pub parameters: HashMap<String, Value>,
    /// RTCP feedback.
    #[serde(default)]
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

impl RtpCapabilities {
    /// The payload type of `mime_type` (for RTX: the one whose `apt` is `apt`).
    pub fn payload_type(&self, mime_type: &str, apt: Option<u8>) -> Option<u8> {
        self.codecs
            .iter()
            .find(|c| {
                c.mime_type.eq_ignore_ascii_case(mime_type)
                    && apt.is_none_or(|apt| {
                        c.parameters.get("apt").and_then(Value::as_u64) == Some(u64::from(apt))
                    })
            })
            .and_then(|c| c.preferred_payload_type)
    }
}

/// The codecs of RTP parameters or capabilities, by name: what the SFU itself reads of them
/// (which codec a producer sends, whether the router takes it). Everything else is ignored,
/// so any well-formed mediasoup payload reads as this.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodecNames {
    /// The codecs, in the payload's order.
    #[serde(default)]
    pub codecs: Vec<CodecName>,
}

/// One codec of [`CodecNames`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodecName {
    /// `audio` or `video` (capabilities only).
    #[serde(default)]
    pub kind: Option<String>,
    /// `audio/opus`, `video/VP8`, `video/rtx`, …
    pub mime_type: String,
}

impl CodecName {
    /// Whether it is a media codec (not RTX, which only repairs another).
    pub fn is_media(&self) -> bool {
        !self.mime_type.to_ascii_lowercase().ends_with("/rtx")
    }
}

/// `value` as the JSON object a request argument of mediasoup's shape takes (e.g.
/// [`crate::ProduceArgs::rtp_parameters`]).
pub fn object<T: Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        // These types are structs: they serialize to objects.
        _ => Map::new(),
    }
}

/// Reads a payload the server passes as JSON into its type.
pub fn read<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_what_mediasoup_sends_and_write_what_it_takes() {
        let server = serde_json::json!({
            "role": "auto",
            "fingerprints": [{"algorithm": "sha-256", "value": "AB:CD"}],
        });
        let dtls: DtlsParameters = read(&server).unwrap();
        assert_eq!(dtls.fingerprints[0].value, "AB:CD");
        let consumer = serde_json::json!({
            "mid": "3",
            "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000,
                        "rtcpFeedback": [{"type": "nack", "parameter": ""}, {"type": "transport-cc"}]}],
            "headerExtensions": [],
            "encodings": [{"ssrc": 1234, "rtx": {"ssrc": 1235}, "maxBitrate": 900000}],
            "rtcp": {"cname": "x", "reducedSize": true, "mux": true},
        });
        let rtp: RtpParameters = read(&consumer).unwrap();
        assert_eq!(rtp.encodings[0].rtx.as_ref().map(|r| r.ssrc), Some(1235));
        assert_eq!(rtp.codecs[0].rtcp_feedback[1].parameter, "");
        let written = object(&rtp);
        assert_eq!(written["encodings"][0]["ssrc"], 1234);
        assert_eq!(written["rtcp"]["reducedSize"], true);
        let router = serde_json::json!({"codecs": [
            {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 101, "clockRate": 90000},
            {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 102, "clockRate": 90000, "parameters": {"apt": 101}},
            {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 104, "clockRate": 90000, "parameters": {"apt": 103}},
        ], "headerExtensions": []});
        let caps: RtpCapabilities = read(&router).unwrap();
        assert_eq!(caps.payload_type("video/vp8", None), Some(101));
        assert_eq!(caps.payload_type("video/rtx", Some(103)), Some(104));
        assert_eq!(caps.payload_type("audio/opus", None), None);
    }
}
