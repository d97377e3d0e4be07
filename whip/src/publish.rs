//! A WHIP offer as producers: per media section the codec the room's router takes (the
//! client's first choice among them, with its RTX), the header extensions both know, and the
//! encodings (simulcast rids, or the SSRC and its RTX); the RTP parameters `produce` takes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use signaling_api::media::{CodecCapability, CodecParameters, Rtcp, RtpCapabilities};
use signaling_api::Kind;

use crate::offer::{Codec, Extension, Media, Offer};
use crate::Refusal;

/// What a WHIP session asks of its room.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// Per media section of the offer, in order: its producer, or why it is rejected.
    pub media: Vec<Result<Produce, String>>,
}

/// One producer of a WHIP session.
#[derive(Debug, Clone, PartialEq)]
pub struct Produce {
    /// Audio or video.
    pub kind: Kind,
    /// Its mid.
    pub mid: String,
    /// The codec and its RTX, as the client numbers them.
    pub codecs: Vec<Codec>,
    /// The header extensions both sides know.
    pub extensions: Vec<Extension>,
    /// Its simulcast rids (empty: one stream).
    pub rids: Vec<String>,
    /// What `produce` takes.
    pub rtp_parameters: Map<String, Value>,
}

/// A router's header extension as its capabilities list it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtensionCapability {
    kind: String,
    uri: String,
    #[serde(default)]
    direction: Option<String>,
}

/// The RTP parameters of `produce`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProduceParameters {
    mid: String,
    codecs: Vec<CodecParameters>,
    header_extensions: Vec<HeaderExtension>,
    encodings: Vec<Encoding>,
    rtcp: Rtcp,
}

#[derive(Serialize)]
struct HeaderExtension {
    uri: String,
    id: u8,
    /// RFC 6904 encryption, which WebRTC does not use (mediasoup needs the field).
    encrypt: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Encoding {
    Rid { rid: String },
    Ssrc { ssrc: u32, rtx: Option<RtxSsrc> },
}

#[derive(Serialize)]
struct RtxSsrc {
    ssrc: u32,
}

/// The header extensions simulcast needs to tell its layers apart.
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

impl Offer {
    /// What a WHIP session publishes into a room whose router has `router`'s capabilities:
    /// refused when no section has media the router takes.
    pub fn publish(&self, router: &RtpCapabilities) -> Result<Publish, Refusal> {
        let router_extensions: Vec<ExtensionCapability> = router
            .header_extensions
            .iter()
            .filter_map(|e| ExtensionCapability::deserialize(e).ok())
            .collect();
        let media: Vec<Result<Produce, String>> = self
            .media
            .iter()
            .map(|m| produce(m, router, &router_extensions))
            .collect();
        if self
            .media
            .iter()
            .all(|m| m.kind.is_none() || m.rejected || !m.direction.sends())
        {
            return Err(Refusal::NoMedia("publish (no audio or video it sends)"));
        }
        if media.iter().all(Result::is_err) {
            let why: Vec<&str> = media
                .iter()
                .filter_map(|m| m.as_ref().err())
                .map(String::as_str)
                .collect();
            return Err(Refusal::NoCodec(why.join("; ")));
        }
        Ok(Publish { media })
    }
}

fn produce(
    media: &Media,
    router: &RtpCapabilities,
    router_extensions: &[ExtensionCapability],
) -> Result<Produce, String> {
    let mid = &media.mid;
    let Some(kind) = media.kind else {
        return Err(format!(
            "section {mid}: {} is not forwarded",
            media.media_type
        ));
    };
    if media.rejected || !media.direction.sends() {
        return Err(format!("section {mid}: it sends nothing"));
    }
    let Some((codec, capability)) = media.codecs.iter().filter(|c| !c.is_rtx()).find_map(|c| {
        router
            .codecs
            .iter()
            .find(|cap| matches(c, cap))
            .map(|cap| (c, cap))
    }) else {
        let offered: Vec<&str> = media
            .codecs
            .iter()
            .filter(|c| !c.is_rtx())
            .map(|c| c.mime_type.as_str())
            .collect();
        return Err(format!(
            "section {mid}: none of {} is forwarded (the SFU takes {})",
            if offered.is_empty() {
                "no codec".to_string()
            } else {
                offered.join(", ")
            },
            taken(router, kind)
        ));
    };
    let mut chosen = codec.clone();
    chosen
        .feedback
        .retain(|f| capability.rtcp_feedback.iter().any(|c| c == f));
    let mut codecs = vec![chosen];
    // RTX only if the router repairs video at all (it does for every video codec).
    let router_rtx = router.codecs.iter().any(|c| {
        c.mime_type
            .eq_ignore_ascii_case(&format!("{}/rtx", media.media_type))
    });
    if let Some(rtx) = media
        .codecs
        .iter()
        .find(|c| c.is_rtx() && c.apt() == Some(codec.payload_type))
        .filter(|_| router_rtx)
    {
        let mut rtx = rtx.clone();
        rtx.feedback.clear();
        codecs.push(rtx);
    }
    let kind_name = media.media_type.as_str();
    let extensions: Vec<Extension> = media
        .extensions
        .iter()
        .filter(|e| {
            router_extensions.iter().any(|cap| {
                cap.kind == kind_name
                    && cap.uri == e.uri
                    && matches!(
                        cap.direction.as_deref(),
                        None | Some("sendrecv") | Some("recvonly")
                    )
            })
        })
        .cloned()
        .collect();
    let encodings = if !media.rids.is_empty() {
        let has = |uri: &str| extensions.iter().any(|e| e.uri == uri);
        if !has(MID_URI) || !has(RID_URI) {
            return Err(format!(
                "section {mid}: simulcast needs the mid and rtp-stream-id header extensions"
            ));
        }
        media
            .rids
            .iter()
            .map(|rid| Encoding::Rid { rid: rid.clone() })
            .collect()
    } else if let Some(ssrc) = media.ssrc {
        let rtx = media
            .rtx_ssrc
            .filter(|_| codecs.len() > 1)
            .map(|ssrc| RtxSsrc { ssrc });
        vec![Encoding::Ssrc { ssrc, rtx }]
    } else {
        return Err(format!(
            "section {mid}: no `a=ssrc` and no simulcast rids: its stream cannot be told apart"
        ));
    };
    let parameters = ProduceParameters {
        mid: mid.clone(),
        codecs: codecs.iter().map(codec_parameters).collect(),
        header_extensions: extensions
            .iter()
            .map(|e| HeaderExtension {
                uri: e.uri.clone(),
                id: e.id,
                encrypt: false,
            })
            .collect(),
        encodings,
        rtcp: Rtcp {
            cname: media.cname.clone().unwrap_or_else(|| format!("whip-{mid}")),
            reduced_size: true,
        },
    };
    Ok(Produce {
        kind,
        mid: mid.clone(),
        codecs,
        extensions,
        rids: media.rids.clone(),
        rtp_parameters: signaling_api::media::object(&parameters),
    })
}

fn codec_parameters(codec: &Codec) -> CodecParameters {
    CodecParameters {
        mime_type: codec.mime_type.clone(),
        payload_type: codec.payload_type,
        clock_rate: codec.clock_rate,
        channels: codec.channels.filter(|_| !codec.is_rtx()),
        parameters: codec.parameter_map(),
        rtcp_feedback: codec.feedback.clone(),
    }
}

/// The codecs of `kind` the router takes, for a refusal.
fn taken(router: &RtpCapabilities, kind: Kind) -> String {
    let kind = match kind {
        Kind::Audio => "audio",
        Kind::Video => "video",
    };
    let names: Vec<&str> = router
        .codecs
        .iter()
        .filter(|c| c.kind == kind && !c.mime_type.to_ascii_lowercase().ends_with("/rtx"))
        .map(|c| c.mime_type.as_str())
        .collect();
    names.join(", ")
}

/// Whether the router's codec `cap` takes the offered `codec` (as mediasoup matches a
/// producer's codec: name, clock rate, channels, and the parameters that change the stream).
pub(crate) fn matches(codec: &Codec, cap: &CodecCapability) -> bool {
    if !codec.mime_type.eq_ignore_ascii_case(&cap.mime_type) || codec.clock_rate != cap.clock_rate {
        return false;
    }
    if cap.kind == "audio" && codec.channels.unwrap_or(1) != cap.channels.unwrap_or(1) {
        return false;
    }
    let number = |parameters: Option<&Value>, default: u64| {
        parameters
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(default)
    };
    match cap.mime_type.to_ascii_lowercase().as_str() {
        "video/h264" => {
            number(codec.parameters.get("packetization-mode"), 0)
                == number(cap.parameters.get("packetization-mode"), 0)
                && h264_profile(codec.parameters.get("profile-level-id"))
                    == h264_profile(cap.parameters.get("profile-level-id"))
        }
        "video/vp9" => {
            number(codec.parameters.get("profile-id"), 0)
                == number(cap.parameters.get("profile-id"), 0)
        }
        _ => true,
    }
}

/// An H.264 profile (RFC 6184 `profile-level-id`), as libwebrtc and mediasoup compare them:
/// by `profile_idc` and the constraint flags that matter (the level does not).
#[derive(Debug, PartialEq, Eq)]
enum H264Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    ConstrainedHigh,
    High,
    PredictiveHigh444,
    Unknown,
}

fn h264_profile(value: Option<&Value>) -> H264Profile {
    // Absent: constrained baseline, as libwebrtc and mediasoup read it.
    let text = match value {
        None => return H264Profile::ConstrainedBaseline,
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    if text.len() != 6 {
        return H264Profile::Unknown;
    }
    let Ok(bits) = u32::from_str_radix(&text, 16) else {
        return H264Profile::Unknown;
    };
    let idc = (bits >> 16) as u8;
    let iop = (bits >> 8) as u8;
    match (idc, iop) {
        (0x42, iop) if iop & 0x4f == 0x40 => H264Profile::ConstrainedBaseline,
        (0x4d, iop) if iop & 0x8f == 0x80 => H264Profile::ConstrainedBaseline,
        (0x58, iop) if iop & 0xcf == 0xc0 => H264Profile::ConstrainedBaseline,
        (0x42, iop) if iop & 0x4f == 0x00 => H264Profile::Baseline,
        (0x58, iop) if iop & 0xcf == 0x80 => H264Profile::Baseline,
        (0x4d, iop) if iop & 0xaf == 0x00 => H264Profile::Main,
        (0x64, 0x00) => H264Profile::High,
        (0x64, 0x0c) => H264Profile::ConstrainedHigh,
        (0xf4, 0x00) => H264Profile::PredictiveHigh444,
        _ => H264Profile::Unknown,
    }
}
