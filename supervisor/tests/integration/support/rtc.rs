//! One WebRTC transport of a test peer, written with str0m: ICE (controlling) and DTLS
//! (client) against a mediasoup WebRtcTransport, RTP out of declared send streams and a
//! count of RTP received per SSRC.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::config::{DtlsVersion, Fingerprint};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Payload types the router gave Opus and VP8 (its RTP capabilities).
#[derive(Clone, Copy, Debug)]
pub struct PayloadTypes {
    /// Opus.
    pub opus: u8,
    /// VP8.
    pub vp8: u8,
}

impl PayloadTypes {
    /// Reads them from `routerRtpCapabilities`.
    pub fn from_router(caps: &Value) -> PayloadTypes {
        let pt = |mime: &str| {
            caps["codecs"]
                .as_array()
                .expect("codecs")
                .iter()
                .find(|c| {
                    c["mimeType"]
                        .as_str()
                        .is_some_and(|m| m.eq_ignore_ascii_case(mime))
                })
                .and_then(|c| c["preferredPayloadType"].as_u64())
                .unwrap_or_else(|| panic!("router has no {mime}")) as u8
        };
        PayloadTypes {
            opus: pt("audio/opus"),
            vp8: pt("video/VP8"),
        }
    }

    /// The RTP capabilities of this test device.
    pub fn device_capabilities(&self) -> Value {
        json!({
            "codecs": [
                {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": self.opus,
                 "clockRate": 48000, "channels": 2, "parameters": {}, "rtcpFeedback": []},
                {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": self.vp8,
                 "clockRate": 90000, "parameters": {}, "rtcpFeedback": []},
            ],
            "headerExtensions": [],
        })
    }
}

enum Command {
    DeclareSend {
        mid: String,
        kind: MediaKind,
        ssrc: u32,
    },
    ExpectReceive {
        mid: String,
        kind: MediaKind,
        ssrc: u32,
    },
    Write {
        ssrc: u32,
        pt: u8,
        seq: u64,
        time: u32,
        payload: Vec<u8>,
    },
    /// Stop everything at once, as a peer whose network went away: no more STUN consent
    /// checks, RTCP or DTLS.
    Vanish,
}

/// A transport to mediasoup, driven by its own task.
pub struct RtcTransport {
    commands: mpsc::UnboundedSender<Command>,
    /// Per SSRC: packets received, and when the first arrived.
    received: Arc<Mutex<HashMap<u32, (u64, Instant)>>>,
    connected: Arc<Mutex<bool>>,
    /// The DTLS parameters to send in `connectWebRtcTransport`.
    pub dtls_parameters: Value,
}

impl RtcTransport {
    /// A transport to the mediasoup transport described by a `createWebRtcTransport` answer.
    pub async fn new(server: &Value, pts: PayloadTypes) -> RtcTransport {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        let local = socket.local_addr().expect("local addr");
        let mut config = RtcConfig::new()
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
            None,
            Codec::Vp8,
            Frequency::NINETY_KHZ,
            None,
            FormatParams::default(),
        );
        let mut rtc = config.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("host candidate"));
        let remote = server["iceCandidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .find(|c| c["protocol"] == "udp")
            .expect("a UDP candidate");
        let remote_addr: SocketAddr = format!(
            "{}:{}",
            remote["address"].as_str().expect("address"),
            remote["port"].as_u64().expect("port")
        )
        .parse()
        .expect("candidate address");
        rtc.add_remote_candidate(Candidate::host(remote_addr, "udp").expect("remote candidate"));
        let fingerprint = server["dtlsParameters"]["fingerprints"]
            .as_array()
            .expect("fingerprints")
            .iter()
            .find(|f| f["algorithm"] == "sha-256")
            .expect("sha-256 fingerprint");
        let bytes = fingerprint["value"]
            .as_str()
            .expect("value")
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).expect("hex"))
            .collect();
        let local_fingerprint;
        {
            let mut api = rtc.direct_api();
            api.set_ice_controlling(true);
            api.set_remote_ice_credentials(IceCreds {
                ufrag: server["iceParameters"]["usernameFragment"]
                    .as_str()
                    .expect("ufrag")
                    .into(),
                pass: server["iceParameters"]["password"]
                    .as_str()
                    .expect("password")
                    .into(),
            });
            api.set_remote_fingerprint(Fingerprint {
                hash_func: "sha-256".into(),
                bytes,
            });
            local_fingerprint = api.local_dtls_fingerprint().clone();
            api.start_dtls(true).expect("start DTLS");
        }
        let value = local_fingerprint
            .bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let dtls_parameters = json!({
            "role": "client",
            "fingerprints": [{"algorithm": local_fingerprint.hash_func, "value": value}],
        });
        let (commands, command_rx) = mpsc::unbounded_channel();
        let received = Arc::new(Mutex::new(HashMap::new()));
        let connected = Arc::new(Mutex::new(false));
        tokio::spawn(drive(
            rtc,
            socket,
            command_rx,
            received.clone(),
            connected.clone(),
        ));
        RtcTransport {
            commands,
            received,
            connected,
            dtls_parameters,
        }
    }

    /// Goes silent for good, as if the network went away.
    pub fn vanish(&self) {
        let _ = self.commands.send(Command::Vanish);
    }

    /// Declares a stream this transport sends.
    pub fn declare_send(&self, mid: &str, kind: MediaKind, ssrc: u32) {
        let _ = self.commands.send(Command::DeclareSend {
            mid: mid.into(),
            kind,
            ssrc,
        });
    }

    /// Declares a stream this transport receives (a consumer's mid and SSRC).
    pub fn expect_receive(&self, mid: &str, kind: MediaKind, ssrc: u32) {
        let _ = self.commands.send(Command::ExpectReceive {
            mid: mid.into(),
            kind,
            ssrc,
        });
    }

    /// Sends one RTP packet on a declared stream.
    pub fn write(&self, ssrc: u32, pt: u8, seq: u64, time: u32, payload: Vec<u8>) {
        let _ = self.commands.send(Command::Write {
            ssrc,
            pt,
            seq,
            time,
            payload,
        });
    }

    /// RTP packets received on `ssrc` so far.
    pub fn received(&self, ssrc: u32) -> u64 {
        self.received
            .lock()
            .unwrap()
            .get(&ssrc)
            .map_or(0, |(count, _)| *count)
    }

    /// When the first RTP packet on `ssrc` arrived.
    pub fn first_packet_at(&self, ssrc: u32) -> Option<Instant> {
        self.received.lock().unwrap().get(&ssrc).map(|(_, at)| *at)
    }

    /// Waits until ICE and DTLS are up.
    pub async fn wait_connected(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !*self.connected.lock().unwrap() {
            assert!(
                Instant::now() < deadline,
                "transport did not connect within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn drive(
    mut rtc: Rtc,
    socket: UdpSocket,
    mut commands: mpsc::UnboundedReceiver<Command>,
    received: Arc<Mutex<HashMap<u32, (u64, Instant)>>>,
    connected: Arc<Mutex<bool>>,
) {
    let local = socket.local_addr().expect("local addr");
    let mut buf = vec![0u8; 2000];
    loop {
        let deadline = match rtc.poll_output() {
            Ok(Output::Timeout(at)) => at,
            Ok(Output::Transmit(t)) => {
                let _ = socket.send_to(&t.contents, t.destination).await;
                continue;
            }
            Ok(Output::Event(event)) => {
                match event {
                    Event::Connected => *connected.lock().unwrap() = true,
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => return,
                    Event::RtpPacket(packet) => {
                        received
                            .lock()
                            .unwrap()
                            .entry(*packet.header.ssrc)
                            .or_insert((0, Instant::now()))
                            .0 += 1;
                    }
                    _ => {}
                }
                continue;
            }
            Err(e) => panic!("str0m: {e}"),
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let Ok((n, source)) = got else { return };
                if let Ok(contents) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                    if let Err(e) = rtc.handle_input(Input::Receive(Instant::now(), contents)) {
                        panic!("str0m input: {e}");
                    }
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return };
                if matches!(command, Command::Vanish) {
                    return;
                }
                apply(&mut rtc, command);
            }
            _ = tokio::time::sleep(wait) => {
                if let Err(e) = rtc.handle_input(Input::Timeout(Instant::now())) {
                    panic!("str0m timeout: {e}");
                }
            }
        }
    }
}

fn apply(rtc: &mut Rtc, command: Command) {
    let mut api = rtc.direct_api();
    match command {
        Command::Vanish => {}
        Command::DeclareSend { mid, kind, ssrc } => {
            let mid = Mid::from(mid.as_str());
            api.declare_media(mid, kind);
            api.declare_stream_tx(Ssrc::from(ssrc), None, mid, None);
        }
        Command::ExpectReceive { mid, kind, ssrc } => {
            let mid = Mid::from(mid.as_str());
            api.declare_media(mid, kind);
            api.expect_stream_rx(Ssrc::from(ssrc), None, mid, None);
        }
        Command::Write {
            ssrc,
            pt,
            seq,
            time,
            payload,
        } => {
            if let Some(stream) = api.stream_tx(&Ssrc::from(ssrc)) {
                stream.write_rtp(
                    RtpWrite::new(
                        Pt::from(pt),
                        SeqNo::from(seq),
                        time,
                        Instant::now(),
                        payload,
                    )
                    .marker(true),
                );
            }
        }
    }
}
