//! The codecs of the test peers: the payload types the router gave Opus, VP8, VP9 and H.264,
//! the fmtp parameters each is declared with (the router's), the start of a key frame of
//! each video codec as mediasoup reads it, and the RTP capabilities of the test device.

use std::collections::HashMap;

use serde_json::Value;
use signaling_api::media::{self, CodecCapability, RtcpFeedback, RtpCapabilities};

/// The video codec a test peer publishes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8 (the default).
    #[default]
    Vp8,
    /// VP9, profile 2, one spatial layer.
    Vp9,
    /// H.264, packetization mode 1, constrained baseline 3.1 (the router's).
    H264,
}

impl VideoCodec {
    /// Its MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "video/VP8",
            VideoCodec::Vp9 => "video/VP9",
            VideoCodec::H264 => "video/H264",
        }
    }

    /// The fmtp parameters a producer and a device declare for it (the router's: VP9's
    /// profile, H.264's profile and packetization mode must match them).
    pub fn parameters(self) -> HashMap<String, Value> {
        match self {
            VideoCodec::H264 => HashMap::from([
                ("packetization-mode".to_string(), Value::from(1)),
                ("profile-level-id".to_string(), Value::from("42e01f")),
                ("level-asymmetry-allowed".to_string(), Value::from(1)),
            ]),
            VideoCodec::Vp9 => HashMap::from([("profile-id".to_string(), Value::from(2))]),
            VideoCodec::Vp8 => HashMap::new(),
        }
    }

    /// The start of a key frame's RTP payload, as mediasoup reads it: a VP8 key frame's
    /// descriptor and header, a VP9 descriptor that begins a frame without reference
    /// (non-flexible, spatial layer 0), or an H.264 sequence parameter set (NAL type 7).
    pub fn key_frame(self) -> Vec<u8> {
        match self {
            VideoCodec::Vp8 => vec![
                0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0, 0, 0,
            ],
            VideoCodec::Vp9 => vec![0x0c, 0, 0, 0],
            VideoCodec::H264 => vec![0x67, 0x42, 0xe0, 0x1f],
        }
    }
}

/// Payload types the router gave Opus, VP8, VP9 and H.264 (its RTP capabilities), and
/// whether this device asks for RTCP feedback (NACK and PLI on video).
#[derive(Clone, Copy, Debug)]
pub struct PayloadTypes {
    /// Opus.
    pub opus: u8,
    /// VP8.
    pub vp8: u8,
    /// VP9.
    pub vp9: u8,
    /// H.264.
    pub h264: u8,
    /// Declare `nack` and `nack pli` for video.
    pub feedback: bool,
}

impl PayloadTypes {
    /// Reads them from `routerRtpCapabilities`.
    pub fn from_router(caps: &Value) -> PayloadTypes {
        let caps: RtpCapabilities = media::read(caps).expect("routerRtpCapabilities");
        let pt = |mime: &str| {
            caps.payload_type(mime, None)
                .unwrap_or_else(|| panic!("router has no {mime}"))
        };
        for video in [VideoCodec::Vp9, VideoCodec::H264] {
            let codec = caps
                .codecs
                .iter()
                .find(|c| c.mime_type.eq_ignore_ascii_case(video.mime()))
                .unwrap_or_else(|| panic!("router has no {}", video.mime()));
            for (name, value) in video.parameters() {
                assert_eq!(codec.parameters.get(&name), Some(&value), "router's {name}");
            }
        }
        PayloadTypes {
            opus: pt("audio/opus"),
            vp8: pt("video/VP8"),
            vp9: pt("video/VP9"),
            h264: pt("video/H264"),
            feedback: false,
        }
    }

    /// The payload type of `codec`.
    pub fn video(&self, codec: VideoCodec) -> u8 {
        match codec {
            VideoCodec::Vp8 => self.vp8,
            VideoCodec::Vp9 => self.vp9,
            VideoCodec::H264 => self.h264,
        }
    }

    /// The RTCP feedback this device declares for VP8.
    pub fn video_feedback(&self) -> Vec<RtcpFeedback> {
        if self.feedback {
            vec![
                RtcpFeedback::new("nack", ""),
                RtcpFeedback::new("nack", "pli"),
            ]
        } else {
            Vec::new()
        }
    }

    /// The RTP capabilities of this test device.
    pub fn device_capabilities(&self) -> RtpCapabilities {
        let codec =
            |kind: &str, mime: &str, pt, clock_rate, channels, rtcp_feedback| CodecCapability {
                kind: kind.into(),
                mime_type: mime.into(),
                preferred_payload_type: Some(pt),
                clock_rate,
                channels,
                parameters: Default::default(),
                rtcp_feedback,
            };
        let mut codecs = vec![codec(
            "audio",
            "audio/opus",
            self.opus,
            48000,
            Some(2),
            Vec::new(),
        )];
        for video in [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264] {
            let mut capability = codec(
                "video",
                video.mime(),
                self.video(video),
                90000,
                None,
                self.video_feedback(),
            );
            capability.parameters = video.parameters();
            codecs.push(capability);
        }
        RtpCapabilities {
            codecs,
            header_extensions: Vec::new(),
        }
    }
}
