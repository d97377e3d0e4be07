//! One WebRTC transport of a test peer, written with str0m: ICE (controlling) and DTLS
//! (client) against a mediasoup WebRtcTransport, RTP out of declared send streams and, per
//! SSRC received, every packet's tag (which stream sent it, its sequence number). Anything
//! going wrong on the media path (a send or receive error, str0m refusing input, ICE lost, a
//! write to an undeclared stream) is kept and fails the test at its next look.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signaling_api::media::{self, DtlsParameters, IceCandidate, IceParameters};
use signaling_api::TransportCreated;
use str0m::config::{DtlsVersion, Fingerprint};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::channels::{ChannelCommand, ChannelLog, Channels};
pub use super::codecs::{PayloadTypes, VideoCodec};

enum Command {
    DeclareSend {
        mid: String,
        rid: Option<String>,
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
        /// The audio level (dBov, 0 loudest to -127) in the ssrc-audio-level extension.
        audio_level: Option<i8>,
        /// The RTP marker bit (the last packet of a video frame).
        marker: bool,
    },
    /// New ICE credentials of the server (after `restartIce`).
    RemoteIce(IceCreds),
    /// Ask the sender of `ssrc` for a key frame (RTCP PLI).
    RequestKeyframe { ssrc: u32 },
    /// Lose the `nth` (1-based) RTP datagram arriving on `ssrc`, as a lossy network would.
    DropIncoming { ssrc: u32, nth: u64 },
    /// Stop everything at once, as a peer whose network went away: no more STUN consent
    /// checks, RTCP or DTLS.
    Vanish,
    /// Data channels.
    Channel(ChannelCommand),
}

/// What arrived on one received SSRC.
#[derive(Clone, Debug, Default)]
pub struct Arrivals {
    /// When the first packet arrived.
    pub first_at: Option<Instant>,
    /// Each packet's tag, in arrival order: (SSRC it was sent on, sequence number it was
    /// sent with), read from the payload the sending test peer wrote.
    pub tags: Vec<(u32, u64)>,
    /// Packets whose payload carried no tag.
    pub untagged: u64,
}

impl Arrivals {
    /// Packets received.
    pub fn count(&self) -> u64 {
        self.tags.len() as u64 + self.untagged
    }
}

/// What every tag starts with, so that a payload that merely ends with 12 bytes is no tag.
const TAG_MAGIC: [u8; 4] = *b"sfuT";

/// The tag a test peer appends to every payload: a marker, its SSRC and the packet's
/// sequence number.
pub fn tag(ssrc: u32, seq: u64) -> [u8; 16] {
    let mut tag = [0; 16];
    tag[..4].copy_from_slice(&TAG_MAGIC);
    tag[4..8].copy_from_slice(&ssrc.to_be_bytes());
    tag[8..].copy_from_slice(&seq.to_be_bytes());
    tag
}

/// The (SSRC, sequence number) of a payload ending with a [`tag`]; `None` for any other.
fn read_tag(payload: &[u8]) -> Option<(u32, u64)> {
    let at = payload.len().checked_sub(16)?;
    let tag = &payload[at..];
    if tag[..4] != TAG_MAGIC {
        return None;
    }
    let ssrc = u32::from_be_bytes(tag[4..8].try_into().ok()?);
    let seq = u64::from_be_bytes(tag[8..].try_into().ok()?);
    Some((ssrc, seq))
}

#[derive(Default)]
struct Shared {
    arrivals: HashMap<u32, Arrivals>,
    connected: bool,
    keyframe_requests: u64,
    channels: ChannelLog,
    /// The first thing that went wrong on the media path.
    failure: Option<String>,
}

type SharedState = Arc<Mutex<Shared>>;

/// A transport to mediasoup, driven by its own task.
pub struct RtcTransport {
    commands: mpsc::UnboundedSender<Command>,
    shared: SharedState,
    /// The `createWebRtcTransport` answer it was made from.
    pub server: TransportCreated,
    /// The DTLS parameters to send in `connectWebRtcTransport`.
    pub dtls_parameters: DtlsParameters,
}

impl RtcTransport {
    /// A transport to the mediasoup transport described by a `createWebRtcTransport` answer.
    pub async fn new(server: &TransportCreated, pts: PayloadTypes) -> RtcTransport {
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
        for (pt, codec, params) in [
            (pts.vp8, Codec::Vp8, FormatParams::default()),
            (
                pts.vp9,
                Codec::Vp9,
                FormatParams {
                    profile_id: Some(2),
                    ..FormatParams::default()
                },
            ),
            (
                pts.h264,
                Codec::H264,
                FormatParams {
                    packetization_mode: Some(1),
                    profile_level_id: Some(0x42e01f),
                    level_asymmetry_allowed: Some(true),
                    ..FormatParams::default()
                },
            ),
        ] {
            config.codec_config().add_config(
                Pt::from(pt),
                None,
                codec,
                Frequency::NINETY_KHZ,
                None,
                params,
            );
        }
        let mut rtc = config.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("host candidate"));
        let remote_addr = server_udp_addr(server);
        rtc.add_remote_candidate(Candidate::host(remote_addr, "udp").expect("remote candidate"));
        let dtls: DtlsParameters =
            media::read(&server.dtls_parameters).expect("the server's dtlsParameters");
        let fingerprint = dtls
            .fingerprints
            .iter()
            .find(|f| f.algorithm == "sha-256")
            .expect("sha-256 fingerprint");
        let bytes = fingerprint
            .value
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).expect("hex"))
            .collect();
        let local_fingerprint;
        {
            let mut api = rtc.direct_api();
            api.set_ice_controlling(true);
            let ice: IceParameters =
                media::read(&server.ice_parameters).expect("the server's iceParameters");
            api.set_remote_ice_credentials(ice_credentials(&ice));
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
        let dtls_parameters = DtlsParameters {
            role: Some("client".into()),
            fingerprints: vec![media::Fingerprint {
                algorithm: local_fingerprint.hash_func.clone(),
                value,
            }],
        };
        let (commands, command_rx) = mpsc::unbounded_channel();
        let shared = SharedState::default();
        tokio::spawn({
            let shared = shared.clone();
            async move {
                let outcome = drive(rtc, socket, command_rx, shared.clone()).await;
                if let Err(failure) = outcome {
                    shared.lock().unwrap().failure.get_or_insert(failure);
                }
            }
        });
        RtcTransport {
            commands,
            shared,
            server: server.clone(),
            dtls_parameters,
        }
    }

    fn command(&self, command: Command) {
        if self.commands.send(command).is_err() {
            self.fail("the transport's task has ended".into());
        }
    }

    fn fail(&self, failure: String) {
        self.shared.lock().unwrap().failure.get_or_insert(failure);
    }

    /// Panics with what went wrong on this transport's media path, if anything did.
    pub fn assert_healthy(&self, what: &str) {
        if let Some(failure) = &self.shared.lock().unwrap().failure {
            panic!("{what}: {failure}");
        }
    }

    /// Goes silent for good, as if the network went away.
    pub fn vanish(&self) {
        let _ = self.commands.send(Command::Vanish);
    }

    /// Declares a stream this transport sends; several streams of one mid (simulcast
    /// layers) need a `rid` each, or str0m sends only one of them.
    pub fn declare_send(&self, mid: &str, rid: Option<&str>, kind: MediaKind, ssrc: u32) {
        self.command(Command::DeclareSend {
            mid: mid.into(),
            rid: rid.map(Into::into),
            kind,
            ssrc,
        });
    }

    /// Declares a stream this transport receives (a consumer's mid and SSRC).
    pub fn expect_receive(&self, mid: &str, kind: MediaKind, ssrc: u32) {
        self.command(Command::ExpectReceive {
            mid: mid.into(),
            kind,
            ssrc,
        });
    }

    /// Sends one RTP packet on a declared stream.
    pub fn write(&self, ssrc: u32, pt: u8, seq: u64, time: u32, payload: Vec<u8>) {
        self.write_with_level(ssrc, pt, seq, time, payload, None);
    }

    /// [`RtcTransport::write`] with an audio level (dBov, 0 loudest to -127) in the
    /// ssrc-audio-level header extension (id 1).
    pub fn write_with_level(
        &self,
        ssrc: u32,
        pt: u8,
        seq: u64,
        time: u32,
        payload: Vec<u8>,
        audio_level: Option<i8>,
    ) {
        self.queue_write((ssrc, pt, seq, time), payload, audio_level, true);
    }

    /// One packet of a frame that spans several: `marker` on its last.
    pub fn write_part(
        &self,
        ssrc: u32,
        pt: u8,
        seq: u64,
        time: u32,
        payload: Vec<u8>,
        marker: bool,
    ) {
        self.queue_write((ssrc, pt, seq, time), payload, None, marker);
    }

    fn queue_write(
        &self,
        (ssrc, pt, seq, time): (u32, u8, u64, u32),
        payload: Vec<u8>,
        audio_level: Option<i8>,
        marker: bool,
    ) {
        self.command(Command::Write {
            ssrc,
            pt,
            seq,
            time,
            payload,
            audio_level,
            marker,
        });
    }

    /// Uses the server's new `iceParameters` (a `restartIce` answer's) from now on.
    pub fn set_remote_ice(&self, params: &IceParameters) {
        self.command(Command::RemoteIce(ice_credentials(params)));
    }

    /// The server's UDP address.
    pub fn server_addr(&self) -> SocketAddr {
        server_udp_addr(&self.server)
    }

    /// Sends a PLI for the received stream `ssrc`.
    pub fn request_keyframe(&self, ssrc: u32) {
        self.command(Command::RequestKeyframe { ssrc });
    }

    /// Loses the `nth` RTP packet that arrives on `ssrc` before str0m sees it.
    pub fn drop_incoming(&self, ssrc: u32, nth: u64) {
        self.command(Command::DropIncoming { ssrc, nth });
    }

    /// What arrived on `ssrc` so far.
    pub fn arrivals(&self, ssrc: u32) -> Arrivals {
        self.shared
            .lock()
            .unwrap()
            .arrivals
            .get(&ssrc)
            .cloned()
            .unwrap_or_default()
    }

    /// Key frame requests (PLI or FIR) received for the streams this transport sends.
    pub fn keyframe_requests(&self) -> u64 {
        self.shared.lock().unwrap().keyframe_requests
    }

    /// Opens a data channel on SCTP stream `stream` (the `streamId` of a `produceData` the
    /// test sends or of a `consumeData` answer) and waits until it is open.
    pub async fn open_channel(&self, stream: u16, label: &str) {
        self.command(Command::Channel(ChannelCommand::Open {
            stream,
            label: label.into(),
        }));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.shared.lock().unwrap().channels.open.contains(&stream) {
            self.assert_healthy("opening a data channel");
            assert!(
                Instant::now() < deadline,
                "the data channel on SCTP stream {stream} did not open within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `text` on the open channel of `stream`.
    pub fn send_text(&self, stream: u16, text: &str) {
        self.command(Command::Channel(ChannelCommand::Send {
            stream,
            text: text.into(),
        }));
    }

    /// The messages that arrived on `stream` so far.
    pub fn received_texts(&self, stream: u16) -> Vec<String> {
        self.shared
            .lock()
            .unwrap()
            .channels
            .received
            .get(&stream)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until ICE and DTLS are up.
    pub async fn wait_connected(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.shared.lock().unwrap().connected {
            self.assert_healthy("connecting");
            assert!(
                Instant::now() < deadline,
                "transport did not connect within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The UDP candidate's address of a `createWebRtcTransport` answer.
fn server_udp_addr(server: &TransportCreated) -> SocketAddr {
    let candidates: Vec<IceCandidate> =
        media::read(&server.ice_candidates).expect("the server's iceCandidates");
    let remote = candidates
        .iter()
        .find(|c| c.protocol == "udp")
        .expect("a UDP candidate");
    format!("{}:{}", remote.address, remote.port)
        .parse()
        .expect("candidate address")
}

/// ICE credentials from `iceParameters`.
pub fn ice_credentials(params: &IceParameters) -> IceCreds {
    IceCreds {
        ufrag: params.username_fragment.clone(),
        pass: params.password.clone(),
    }
}

/// The SSRC of an RTP datagram (SRTP leaves the header in clear), `None` for anything else.
fn rtp_ssrc(datagram: &[u8]) -> Option<u32> {
    let rtp = datagram.len() >= 12
        && (128..=191).contains(&datagram[0])
        && !(192..=223).contains(&datagram[1]);
    rtp.then(|| u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]))
}

struct Losses {
    /// (ssrc, nth) still to lose.
    planned: Vec<(u32, u64)>,
    seen: HashMap<u32, u64>,
}

impl Losses {
    /// Whether this datagram is to be lost.
    fn lose(&mut self, datagram: &[u8]) -> bool {
        let Some(ssrc) = rtp_ssrc(datagram) else {
            return false;
        };
        let seen = self.seen.entry(ssrc).or_default();
        *seen += 1;
        let before = self.planned.len();
        self.planned.retain(|&(s, nth)| (s, nth) != (ssrc, *seen));
        self.planned.len() != before
    }
}

async fn drive(
    mut rtc: Rtc,
    socket: UdpSocket,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shared: SharedState,
) -> Result<(), String> {
    let local = socket
        .local_addr()
        .map_err(|e| format!("local addr: {e}"))?;
    let mut buf = vec![0u8; 2000];
    let mut losses = Losses {
        planned: Vec::new(),
        seen: HashMap::new(),
    };
    let mut channels = Channels::default();
    loop {
        let deadline = match rtc.poll_output().map_err(|e| format!("str0m: {e}"))? {
            Output::Timeout(at) => at,
            Output::Transmit(t) => {
                socket
                    .send_to(&t.contents, t.destination)
                    .await
                    .map_err(|e| format!("UDP send to {}: {e}", t.destination))?;
                continue;
            }
            Output::Event(event) => {
                let mut shared = shared.lock().unwrap();
                if channels.handle_event(&event, &mut shared.channels) {
                    continue;
                }
                match event {
                    Event::Connected => shared.connected = true,
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Err("ICE disconnected".into())
                    }
                    Event::KeyframeRequest(_) => shared.keyframe_requests += 1,
                    Event::RtpPacket(packet) => {
                        let arrivals = shared.arrivals.entry(*packet.header.ssrc).or_default();
                        arrivals.first_at.get_or_insert_with(Instant::now);
                        match read_tag(&packet.payload) {
                            Some(tag) => arrivals.tags.push(tag),
                            None => arrivals.untagged += 1,
                        }
                    }
                    _ => {}
                }
                continue;
            }
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let (n, source) = got.map_err(|e| format!("UDP receive: {e}"))?;
                if losses.lose(&buf[..n]) {
                    continue;
                }
                let contents = Receive::new(Protocol::Udp, source, local, &buf[..n])
                    .map_err(|e| format!("a datagram str0m cannot read from {source}: {e}"))?;
                rtc.handle_input(Input::Receive(Instant::now(), contents))
                    .map_err(|e| format!("str0m input: {e}"))?;
            }
            command = commands.recv() => {
                let Some(command) = command else { return Ok(()) };
                match command {
                    Command::Vanish => return Ok(()),
                    Command::DropIncoming { ssrc, nth } => losses.planned.push((ssrc, nth)),
                    Command::Channel(command) => channels.apply(&mut rtc, command)?,
                    command => apply(&mut rtc, command)?,
                }
            }
            _ = tokio::time::sleep(wait) => {
                rtc.handle_input(Input::Timeout(Instant::now()))
                    .map_err(|e| format!("str0m timeout: {e}"))?;
            }
        }
    }
}

fn apply(rtc: &mut Rtc, command: Command) -> Result<(), String> {
    let mut api = rtc.direct_api();
    match command {
        Command::Vanish | Command::DropIncoming { .. } | Command::Channel(_) => {}
        Command::DeclareSend {
            mid,
            rid,
            kind,
            ssrc,
        } => {
            let mid = Mid::from(mid.as_str());
            api.declare_media(mid, kind);
            let rid = rid.map(|r| Rid::from(r.as_str()));
            api.declare_stream_tx(Ssrc::from(ssrc), None, mid, rid);
        }
        Command::ExpectReceive { mid, kind, ssrc } => {
            let mid = Mid::from(mid.as_str());
            api.declare_media(mid, kind);
            api.expect_stream_rx(Ssrc::from(ssrc), None, mid, None);
        }
        Command::RemoteIce(creds) => api.set_remote_ice_credentials(creds),
        Command::RequestKeyframe { ssrc } => {
            let stream = api.stream_rx(&Ssrc::from(ssrc)).ok_or_else(|| {
                format!("PLI for SSRC {ssrc}, which this transport does not receive")
            })?;
            stream.request_keyframe(KeyframeRequestKind::Pli);
        }
        Command::Write {
            ssrc,
            pt,
            seq,
            time,
            payload,
            audio_level,
            marker,
        } => {
            let stream = api
                .stream_tx(&Ssrc::from(ssrc))
                .ok_or_else(|| format!("RTP written on SSRC {ssrc}, which was never declared"))?;
            let mut write = RtpWrite::new(
                Pt::from(pt),
                SeqNo::from(seq),
                time,
                Instant::now(),
                payload,
            )
            .marker(marker);
            if let Some(level) = audio_level {
                write = write.ext_vals(ExtensionValues {
                    audio_level: Some(level),
                    voice_activity: Some(level > -127),
                    ..ExtensionValues::default()
                });
            }
            stream.write_rtp(write);
        }
    }
    Ok(())
}

#[test]
fn a_tag_is_read_back_and_a_payload_without_one_is_no_tag() {
    let mut payload = b"opus".to_vec();
    payload.extend_from_slice(&tag(1234, 56));
    assert_eq!(read_tag(&payload), Some((1234, 56)));
    // Any 16 bytes are not a tag: the marker is missing, or one byte of it is wrong.
    assert_eq!(read_tag(&[7u8; 16]), None);
    let mut bad = payload.clone();
    let at = bad.len() - 16;
    bad[at] ^= 1;
    assert_eq!(read_tag(&bad), None);
    assert_eq!(read_tag(&payload[..15]), None);
}
