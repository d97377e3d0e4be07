//! Proves that the mediasoup worker built by `mediasoup-build-kit` really forwards media.
//!
//! A producer is fed SRTP-protected RTP over one PlainTransport; a consumer of it sends on a
//! second PlainTransport to a UDP socket of this test, which decrypts and counts what comes
//! out, and decrypts the consumers' SRTCP. Two crypto suites run here; `srtp_shim.rs` tests the
//! libsrtp substitution of the kit in all four.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroU8};
use std::time::{Duration, Instant};

use base64::Engine as _;
use mediasoup::prelude::*;
use mediasoup::types::data_structures::{DtlsFingerprint, DtlsRole, TransportTuple};
use mediasoup::types::srtp_parameters::SrtpParameters;
use rtc_srtp::context::Context;
use rtc_srtp::protection_profile::ProtectionProfile;
use tokio::net::UdpSocket;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const AUDIO_SSRC: u32 = 0x1111_1111;
const VIDEO_SSRC: u32 = 0x2222_2222;
const OPUS_PT: u8 = 100;
const VP8_PT: u8 = 101;
const PACKETS: u16 = 50;

fn media_codecs() -> Vec<RtpCodecCapability> {
    vec![
        RtpCodecCapability::Audio {
            mime_type: MimeTypeAudio::Opus,
            preferred_payload_type: None,
            clock_rate: NonZeroU32::new(48_000).expect("non-zero"),
            channels: NonZeroU8::new(2).expect("non-zero"),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp8,
            preferred_payload_type: None,
            clock_rate: NonZeroU32::new(90_000).expect("non-zero"),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        },
    ]
}

/// What a receiving endpoint (the test) can decode: the same two codecs.
fn receiver_capabilities() -> RtpCapabilities {
    RtpCapabilities {
        codecs: vec![
            RtpCodecCapability::Audio {
                mime_type: MimeTypeAudio::Opus,
                preferred_payload_type: Some(OPUS_PT),
                clock_rate: NonZeroU32::new(48_000).expect("non-zero"),
                channels: NonZeroU8::new(2).expect("non-zero"),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: vec![],
            },
            RtpCodecCapability::Video {
                mime_type: MimeTypeVideo::Vp8,
                preferred_payload_type: Some(VP8_PT),
                clock_rate: NonZeroU32::new(90_000).expect("non-zero"),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: vec![],
            },
        ],
        header_extensions: vec![],
    }
}

fn producer_parameters(kind: MediaKind) -> RtpParameters {
    let (codec, ssrc) = match kind {
        MediaKind::Audio => (
            RtpCodecParameters::Audio {
                mime_type: MimeTypeAudio::Opus,
                payload_type: OPUS_PT,
                clock_rate: NonZeroU32::new(48_000).expect("non-zero"),
                channels: NonZeroU8::new(2).expect("non-zero"),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: vec![],
            },
            AUDIO_SSRC,
        ),
        MediaKind::Video => (
            RtpCodecParameters::Video {
                mime_type: MimeTypeVideo::Vp8,
                payload_type: VP8_PT,
                clock_rate: NonZeroU32::new(90_000).expect("non-zero"),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: vec![],
            },
            VIDEO_SSRC,
        ),
    };
    RtpParameters {
        codecs: vec![codec],
        encodings: vec![RtpEncodingParameters {
            ssrc: Some(ssrc),
            ..RtpEncodingParameters::default()
        }],
        ..RtpParameters::default()
    }
}

/// A plain RTP packet (version 2, no extensions) with a payload that identifies it.
fn rtp_packet(payload_type: u8, seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(12 + payload.len());
    packet.push(0x80);
    packet.push(payload_type);
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

fn opus_payload(seq: u16) -> Vec<u8> {
    let mut payload = b"opus-frame-".to_vec();
    payload.extend_from_slice(&seq.to_be_bytes());
    payload
}

/// A VP8 key frame: every packet is one, so the consumer forwards from the first packet on.
fn vp8_payload(seq: u16) -> Vec<u8> {
    // Payload descriptor: S=1, partition 0. Then a key-frame header (inverse key-frame bit
    // clear), the start code and a 320x240 size.
    let mut payload = vec![
        0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00,
    ];
    payload.extend_from_slice(&seq.to_be_bytes());
    payload
}

fn profile(suite: SrtpCryptoSuite) -> ProtectionProfile {
    match suite {
        SrtpCryptoSuite::AesCm128HmacSha180 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpCryptoSuite::AesCm128HmacSha132 => ProtectionProfile::Aes128CmHmacSha1_32,
        SrtpCryptoSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpCryptoSuite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
    }
}

/// An SRTP context for `params` (base64 of master key followed by master salt).
fn srtp_context(params: &SrtpParameters) -> Context {
    let profile = profile(params.crypto_suite);
    let key = base64::engine::general_purpose::STANDARD
        .decode(&params.key_base64)
        .expect("mediasoup sends valid base64 keys");
    assert_eq!(
        key.len(),
        profile.key_len() + profile.salt_len(),
        "key length of {:?}",
        params.crypto_suite
    );
    let (master_key, master_salt) = key.split_at(profile.key_len());
    let provider = rtc_crypto::default_provider().expect("a crypto provider");
    Context::new(
        master_key,
        master_salt,
        profile,
        None,
        None,
        provider.crypto(),
    )
    .expect("SRTP context")
}

fn local_port(tuple: &TransportTuple) -> u16 {
    match tuple {
        TransportTuple::WithRemote { local_port, .. }
        | TransportTuple::LocalOnly { local_port, .. } => *local_port,
    }
}

/// Points `transport` at the test's `socket`, whose SRTP key is `params`.
async fn connect_to(transport: &PlainTransport, socket: &UdpSocket, params: &SrtpParameters) {
    transport
        .connect(PlainTransportRemoteParameters {
            ip: Some(LOCALHOST),
            port: Some(socket.local_addr().expect("addr").port()),
            rtcp_port: None,
            srtp_parameters: Some(params.clone()),
        })
        .await
        .expect("connect plain transport");
}

/// UDP on 127.0.0.1, any port.
fn loopback_udp() -> ListenInfo {
    ListenInfo {
        protocol: Protocol::Udp,
        ip: LOCALHOST,
        announced_address: None,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    }
}

fn plain_transport_options(suite: SrtpCryptoSuite) -> PlainTransportOptions {
    let mut options = PlainTransportOptions::new(loopback_udp());
    options.rtcp_mux = true;
    options.comedia = false;
    options.enable_srtp = true;
    options.srtp_crypto_suite = suite;
    options
}

/// The payload of an RTP packet: after the CSRCs and header extension, before padding.
fn rtp_payload(packet: &[u8]) -> Option<&[u8]> {
    let csrc_count = usize::from(packet.first()? & 0x0f);
    let mut offset = 12 + 4 * csrc_count;
    if packet[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*packet.get(offset + 2)?, *packet.get(offset + 3)?]);
        offset += 4 + 4 * usize::from(words);
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*packet.last()?))?;
    }
    packet.get(offset..end)
}

/// What arrived from the consumer transport.
#[derive(Debug, Default)]
struct Received {
    audio: usize,
    video: usize,
    /// SRTCP packets (the consumers' sender reports), each decrypted and checked.
    rtcp: usize,
}

/// Counts, per SSRC, the RTP packets that arrive on `socket` and decrypt with `context`,
/// checking that the audio payload is exactly what was sent, and decrypts the worker's SRTCP
/// (waiting for at least one sender report: mediasoup sends them about once a second).
async fn receive(socket: &UdpSocket, context: &mut Context, want: usize) -> Received {
    let mut got = Received::default();
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut buf = vec![0u8; 2048];
    while (got.audio + got.video < want || got.rtcp == 0) && Instant::now() < deadline {
        let Ok(Ok(len)) =
            tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await
        else {
            continue;
        };
        let packet = &buf[..len];
        // RTCP shares the port (rtcp-mux): packet types 200..=207 in the second byte.
        if len >= 8 && (200..=207).contains(&packet[1]) {
            let plain = context
                .decrypt_rtcp(packet)
                .expect("the worker's SRTCP decrypts with the transport key");
            assert_eq!(plain[0] >> 6, 2, "RTCP version 2");
            assert!(
                plain.len() >= 8 && (200..=207).contains(&plain[1]),
                "well-formed RTCP from the consumer: {plain:?}"
            );
            got.rtcp += 1;
            continue;
        }
        if len < 12 {
            panic!("unexpected {len}-byte datagram");
        }
        let plain = context
            .decrypt_rtp(packet)
            .expect("consumer RTP decrypts with the transport key");
        let payload_type = plain[1] & 0x7f;
        let payload = rtp_payload(&plain).expect("well-formed RTP from the consumer");
        if payload_type == OPUS_PT {
            assert!(
                payload.starts_with(b"opus-frame-"),
                "audio payload forwarded unchanged: {payload:?}"
            );
            got.audio += 1;
        } else if payload_type == VP8_PT {
            // The VP8 payload descriptor may be rewritten (picture ids); the frame follows it.
            assert!(
                payload.windows(3).any(|w| w == [0x9d, 0x01, 0x2a]),
                "VP8 key frame forwarded"
            );
            got.video += 1;
        } else {
            panic!("unexpected packet: payload type {payload_type}, {len} bytes");
        }
    }
    got
}

async fn forwards_media_with(suite: SrtpCryptoSuite) {
    let manager = WorkerManager::new();
    let worker = manager
        .create_worker(WorkerSettings::default())
        .await
        .expect("worker starts");
    let router = worker
        .create_router(RouterOptions::new(media_codecs()))
        .await
        .expect("router");

    // Sender side: the test's socket sends SRTP with its own key to the producer transport.
    let sender = UdpSocket::bind((LOCALHOST, 0)).await.expect("bind sender");
    let send_transport = router
        .create_plain_transport(plain_transport_options(suite))
        .await
        .expect("producer plain transport");
    let sender_key = send_transport
        .srtp_parameters()
        .expect("SRTP is enabled on the transport");
    // The test encrypts with its own key, of the length the suite needs: mediasoup's key
    // with every byte flipped.
    let sender_params = SrtpParameters {
        crypto_suite: suite,
        key_base64: base64::engine::general_purpose::STANDARD.encode(
            base64::engine::general_purpose::STANDARD
                .decode(&sender_key.key_base64)
                .expect("valid base64")
                .iter()
                .map(|b| b ^ 0x5a)
                .collect::<Vec<_>>(),
        ),
    };
    connect_to(&send_transport, &sender, &sender_params).await;
    let audio_producer = send_transport
        .produce(ProducerOptions::new(
            MediaKind::Audio,
            producer_parameters(MediaKind::Audio),
        ))
        .await
        .expect("audio producer");
    let video_producer = send_transport
        .produce(ProducerOptions::new(
            MediaKind::Video,
            producer_parameters(MediaKind::Video),
        ))
        .await
        .expect("video producer");

    // Receiver side: the consumer transport sends to the test's second socket.
    let receiver = UdpSocket::bind((LOCALHOST, 0))
        .await
        .expect("bind receiver");
    let recv_transport = router
        .create_plain_transport(plain_transport_options(suite))
        .await
        .expect("consumer plain transport");
    connect_to(&recv_transport, &receiver, &sender_params).await;
    let consumer_key = recv_transport
        .srtp_parameters()
        .expect("SRTP is enabled on the transport");
    assert_eq!(consumer_key.crypto_suite, suite);
    let audio_consumer = recv_transport
        .consume(ConsumerOptions::new(
            audio_producer.id(),
            receiver_capabilities(),
        ))
        .await
        .expect("audio consumer");
    let video_consumer = recv_transport
        .consume(ConsumerOptions::new(
            video_producer.id(),
            receiver_capabilities(),
        ))
        .await
        .expect("video consumer");
    assert!(!audio_consumer.paused() && !video_consumer.paused());

    let producer_port = local_port(&send_transport.tuple());
    let target = SocketAddr::new(LOCALHOST, producer_port);
    let mut encrypt = srtp_context(&sender_params);
    for seq in 0..PACKETS {
        for packet in [
            rtp_packet(OPUS_PT, seq, AUDIO_SSRC, &opus_payload(seq)),
            rtp_packet(VP8_PT, seq, VIDEO_SSRC, &vp8_payload(seq)),
        ] {
            let protected = encrypt.encrypt_rtp(&packet).expect("encrypt");
            sender.send_to(&protected, target).await.expect("send");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let mut decrypt = srtp_context(&consumer_key);
    let Received { audio, video, rtcp } =
        receive(&receiver, &mut decrypt, 2 * usize::from(PACKETS)).await;
    println!(
        "{suite:?}: sent {PACKETS} audio + {PACKETS} video, received {audio} audio + {video} video + {rtcp} SRTCP"
    );
    // Loopback loses nothing in practice; allow a little for the first packets racing the
    // consumer's creation.
    assert!(
        audio >= usize::from(PACKETS) - 5,
        "audio forwarded: {audio}/{PACKETS}"
    );
    assert!(
        video >= usize::from(PACKETS) - 5,
        "video forwarded: {video}/{PACKETS}"
    );
    assert!(
        rtcp >= 1,
        "the consumers' SRTCP sender reports arrive and decrypt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_srtp_aes_cm_128_hmac_sha1_80() {
    forwards_media_with(SrtpCryptoSuite::AesCm128HmacSha180).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_srtp_aead_aes_256_gcm() {
    forwards_media_with(SrtpCryptoSuite::AeadAes256Gcm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_transport_has_ice_and_dtls_parameters() {
    let manager = WorkerManager::new();
    let worker = manager
        .create_worker(WorkerSettings::default())
        .await
        .expect("worker starts");
    let router = worker
        .create_router(RouterOptions::new(media_codecs()))
        .await
        .expect("router");
    let listen = loopback_udp();
    let transport = router
        .create_webrtc_transport(WebRtcTransportOptions::new(
            WebRtcTransportListenInfos::new(listen),
        ))
        .await
        .expect("webrtc transport");

    let ice = transport.ice_parameters();
    assert_eq!(ice.ice_lite, Some(true), "mediasoup is ICE-lite");
    assert!(
        ice.username_fragment.len() >= 4 && ice.password.len() >= 22,
        "{ice:?}"
    );
    let candidates = transport.ice_candidates();
    assert!(!candidates.is_empty());
    for candidate in candidates {
        assert_eq!(candidate.address, "127.0.0.1");
        assert_ne!(candidate.port, 0);
    }
    let dtls = transport.dtls_parameters();
    assert_eq!(dtls.role, DtlsRole::Auto);
    let sha256 = dtls
        .fingerprints
        .iter()
        .find_map(|fingerprint| match fingerprint {
            DtlsFingerprint::Sha256 { value } => Some(*value),
            _ => None,
        })
        .expect("a sha-256 fingerprint of the worker's certificate");
    assert_ne!(sha256, [0u8; 32]);
}
