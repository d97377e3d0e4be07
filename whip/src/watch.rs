//! A WHEP offer as a viewer: the player's RTP capabilities (its codecs and header extensions,
//! numbered as it numbers them, so that mediasoup's consumers send what its offer expects)
//! and which of its sections receive the audio and the video.

use serde::Serialize;
use signaling_api::media::{CodecCapability, RtpCapabilities};
use signaling_api::Kind;

use crate::offer::Offer;
use crate::Refusal;

/// What a WHEP session consumes with: only the player's codecs that it numbers as the router
/// does (Chromium's numbers, which the SFU's routers use; RTX as mediasoup numbers it).
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    /// The player's capabilities, for `consume`.
    pub capabilities: RtpCapabilities,
    /// Per media section of the offer, in order: the kind it receives, or `None` when it is
    /// rejected (a second section of a kind, data channels, one that receives nothing).
    pub media: Vec<Option<Kind>>,
}

/// A header extension of the player's capabilities.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtensionCapability<'a> {
    kind: &'a str,
    uri: &'a str,
    preferred_id: u8,
    preferred_encrypt: bool,
    direction: &'a str,
}

impl Offer {
    /// What a WHEP session consumes from a router with `router`'s capabilities: the player's
    /// codecs of the names the router knows (spelled as the router spells them) and its header
    /// extensions the router knows; refused when no section receives audio or video.
    pub fn watch(&self, router: &RtpCapabilities) -> Result<Watch, Refusal> {
        // Not the mid: mediasoup numbers its consumers' mids itself, which are not the
        // player's; without it the player maps the streams by the answer's SSRCs.
        let known_uri = |uri: &str| {
            uri != "urn:ietf:params:rtp-hdrext:sdes:mid"
                && router
                    .header_extensions
                    .iter()
                    .any(|e| e.get("uri").and_then(serde_json::Value::as_str) == Some(uri))
        };
        let mut capabilities = RtpCapabilities::default();
        let mut media = Vec::with_capacity(self.media.len());
        let (mut audio, mut video) = (false, false);
        for m in &self.media {
            let taken = match m.kind {
                Some(Kind::Audio) => &mut audio,
                Some(Kind::Video) => &mut video,
                None => {
                    media.push(None);
                    continue;
                }
            };
            if *taken || m.rejected || !m.direction.receives() {
                media.push(None);
                continue;
            }
            *taken = true;
            media.push(m.kind);
            for codec in &m.codecs {
                // mediasoup's consumers send the router's payload types: a codec the player
                // numbers otherwise would arrive under a number it does not expect.
                let Some(known) = router.codecs.iter().find(|c| {
                    c.preferred_payload_type == Some(codec.payload_type)
                        && c.mime_type.eq_ignore_ascii_case(&codec.mime_type)
                        && (!codec.is_rtx()
                            || c.parameters.get("apt").and_then(serde_json::Value::as_u64)
                                == codec.apt().map(u64::from))
                        && (codec.is_rtx() || crate::publish::matches(codec, c))
                }) else {
                    continue;
                };
                capabilities.codecs.push(CodecCapability {
                    kind: m.media_type.clone(),
                    mime_type: known.mime_type.clone(),
                    preferred_payload_type: Some(codec.payload_type),
                    clock_rate: codec.clock_rate,
                    channels: codec.channels.filter(|_| m.kind == Some(Kind::Audio)),
                    parameters: codec.parameter_map(),
                    rtcp_feedback: codec.feedback.clone(),
                });
            }
            for extension in m.extensions.iter().filter(|e| known_uri(&e.uri)) {
                let capability = ExtensionCapability {
                    kind: &m.media_type,
                    uri: &extension.uri,
                    preferred_id: extension.id,
                    preferred_encrypt: false,
                    direction: "sendrecv",
                };
                if let Ok(value) = serde_json::to_value(&capability) {
                    capabilities.header_extensions.push(value);
                }
            }
        }
        if !audio && !video {
            return Err(Refusal::NoMedia(
                "receive (no audio or video section it receives)",
            ));
        }
        Ok(Watch {
            capabilities,
            media,
        })
    }
}
