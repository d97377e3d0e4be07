//! What the node offers: the codecs of every router and where transports listen.

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU8};
use std::ops::RangeInclusive;

use mediasoup::prelude::*;

/// Codecs of every room's router: Opus for audio; VP8, VP9 and H.264 for video, which
/// covers every browser. Feedback (NACK, PLI, transport-cc) is added by mediasoup.
///
/// Payload types as Chromium numbers them (Opus 111, VP8 96, H.264 108): mediasoup's consumers send
/// the router's payload types, and a WHEP player, which offers first, takes only its own
/// (clients of `/ws` follow the router's, whatever they are). RTX keeps mediasoup's.
pub fn router_codecs() -> Vec<RtpCodecCapability> {
    let hz = |rate| NonZeroU32::new(rate).expect("non-zero clock rate");
    vec![
        RtpCodecCapability::Audio {
            mime_type: MimeTypeAudio::Opus,
            preferred_payload_type: Some(111),
            clock_rate: hz(48_000),
            channels: NonZeroU8::new(2).expect("two channels"),
            parameters: RtpCodecParametersParameters::from_iter([("useinbandfec", 1_u32.into())]),
            rtcp_feedback: vec![],
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp8,
            preferred_payload_type: Some(96),
            clock_rate: hz(90_000),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp9,
            // Chromium's 100 is taken by VP8's RTX (mediasoup numbers RTX as it goes).
            preferred_payload_type: None,
            clock_rate: hz(90_000),
            parameters: RtpCodecParametersParameters::from_iter([("profile-id", 2_u32.into())]),
            rtcp_feedback: vec![],
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::H264,
            preferred_payload_type: Some(108),
            clock_rate: hz(90_000),
            parameters: RtpCodecParametersParameters::from_iter([
                ("packetization-mode", 1_u32.into()),
                ("profile-level-id", "42e01f".into()),
                ("level-asymmetry-allowed", 1_u32.into()),
            ]),
            rtcp_feedback: vec![],
        },
    ]
}

/// UDP on `ip`, any port, nothing announced: a pipe transport between nodes.
pub fn pipe_listen_info(ip: IpAddr) -> ListenInfo {
    ListenInfo {
        protocol: Protocol::Udp,
        ip,
        announced_address: None,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    }
}

/// What clients may send on data channels.
#[derive(Clone, Copy, Debug)]
pub struct DataLimits {
    /// Largest message, in bytes (SCTP drops larger ones).
    pub max_message_bytes: u32,
    /// Messages per second of one data producer.
    pub max_messages_per_sec: u32,
}

/// Where WebRTC transports listen and what address they announce.
#[derive(Clone, Debug)]
pub struct MediaListen {
    /// Local address the UDP and TCP sockets bind.
    pub ip: IpAddr,
    /// Address put in ICE candidates (the public one behind NAT); `ip` when absent.
    pub announced_address: Option<String>,
    /// Ports the sockets may take.
    pub ports: RangeInclusive<u16>,
    /// One-port-per-worker mode: worker `i` listens on this port + `i`, UDP and TCP, and
    /// every transport on it shares them (mediasoup's `WebRtcServer`).
    pub port: Option<u16>,
    /// Seconds without consent checks before a transport's ICE is `disconnected`.
    pub ice_consent_timeout_secs: u8,
}

impl MediaListen {
    fn listen_info(&self, protocol: Protocol) -> ListenInfo {
        ListenInfo {
            protocol,
            ip: self.ip,
            announced_address: self.announced_address.clone(),
            expose_internal_ip: false,
            port: None,
            port_range: Some(self.ports.clone()),
            flags: None,
            send_buffer_size: None,
            recv_buffer_size: None,
        }
    }

    /// The port worker `index` listens on in the one-port-per-worker mode (checked against
    /// overflow when the node starts).
    pub fn worker_port(&self, index: u32) -> Option<u16> {
        let port = u32::from(self.port?) + index;
        u16::try_from(port).ok()
    }

    /// A worker's `WebRtcServer`: UDP and TCP on `port`.
    pub fn webrtc_server_options(&self, port: u16) -> WebRtcServerOptions {
        let on_port = |protocol| ListenInfo {
            port: Some(port),
            port_range: None,
            ..self.listen_info(protocol)
        };
        WebRtcServerOptions::new(
            WebRtcServerListenInfos::new(on_port(Protocol::Udp)).insert(on_port(Protocol::Tcp)),
        )
    }

    /// Options of a client's WebRTC transport: on the worker's shared ports when it has a
    /// `server`, else on ports of its own; UDP preferred, TCP as a fallback for networks that
    /// block UDP; with `data`, SCTP for data channels, messages up to its size.
    pub fn webrtc_transport_options(
        &self,
        server: Option<&WebRtcServer>,
        data: Option<DataLimits>,
    ) -> WebRtcTransportOptions {
        let mut options = match server {
            Some(server) => WebRtcTransportOptions::new_with_server(server.clone()),
            None => WebRtcTransportOptions::new(
                WebRtcTransportListenInfos::new(self.listen_info(Protocol::Udp))
                    .insert(self.listen_info(Protocol::Tcp)),
            ),
        };
        options.enable_udp = true;
        options.enable_tcp = true;
        options.prefer_udp = true;
        options.initial_available_outgoing_bitrate = 1_000_000;
        options.ice_consent_timeout = self.ice_consent_timeout_secs;
        if let Some(data) = data {
            options.enable_sctp = true;
            options.max_receive_message_size = data.max_message_bytes;
            options.max_send_message_size = data.max_message_bytes;
        }
        options
    }
}
