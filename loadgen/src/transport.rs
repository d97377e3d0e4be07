//! One WebRTC transport of a simulated participant: a str0m `Rtc` in RTP mode on its own UDP
//! socket, driven by its own task. It sends the synthetic media of its send tracks on time
//! (answering PLI/FIR with a key frame and NACKs with RTX, which str0m does from its send
//! cache), and accounts for every packet of its receive tracks in [`StreamStats`].

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequest, MediaKind, Mid, Pt, Rid};
use str0m::net::Receive;
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::link::Link;
use tokio::sync::mpsc;

use crate::media::{Kind, OpusSource, Packet, Vp8Source};
use crate::stream_stats::StreamStats;

/// How often a publisher sends a key frame by itself (frames; 30 fps).
const KEY_FRAME_INTERVAL: u32 = 90;
/// Commands queued to one transport at most (a participant sends a handful).
const COMMAND_QUEUE: usize = 256;
/// Datagrams taken from the socket per wake-up at most, so that sending stays on time.
const RECEIVE_BATCH: usize = 64;

/// One simulcast layer (or the only encoding) of a send track.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Its SSRC; `None` when SDP negotiation chose it (looked up by mid).
    pub ssrc: Option<u32>,
    /// Its RTX SSRC, for answering NACKs.
    pub rtx: Option<u32>,
    /// Its rid, for simulcast layers.
    pub rid: Option<String>,
    /// Video bit rate of this layer.
    pub kbps: u32,
    /// Key frame dimensions.
    pub size: (u16, u16),
}

/// A track this transport publishes.
#[derive(Clone, Debug)]
pub struct SendTrack {
    /// Its mid.
    pub mid: String,
    /// Audio or video.
    pub kind: Kind,
    /// The payload type to write.
    pub pt: u8,
    /// The publisher's tag in every payload.
    pub tag: u32,
    /// Encodings (one unless simulcast).
    pub layers: Vec<Layer>,
}

/// A track this transport receives.
#[derive(Clone, Debug)]
pub struct RecvTrack {
    /// Its mid.
    pub mid: String,
    /// Audio or video.
    pub kind: Kind,
    /// (SSRC, RTX SSRC) when known from signaling; `None` when SDP negotiation tells str0m.
    pub ssrc: Option<(u32, Option<u32>)>,
    /// The tag its publisher puts in every payload.
    pub tag: u32,
    /// When it could first be expected.
    pub reference: Instant,
    /// When the SFU answered the consume (`None`: not consumed by request, e.g. Janus).
    pub consumed: Option<Instant>,
}

enum Command {
    Send(SendTrack),
    Receive(RecvTrack),
    Forget(String),
}

/// What the transport's task shares with the participant and the progress reports.
#[derive(Debug, Default)]
pub struct Shared {
    /// ICE and DTLS are up.
    pub connected: AtomicBool,
    /// When they first were.
    pub connected_at: std::sync::OnceLock<Instant>,
    /// Receive streams by mid.
    pub streams: Mutex<HashMap<String, StreamStats>>,
    /// RTP packets sent (RTX excluded).
    pub packets_sent: AtomicU64,
    /// PLI/FIR received.
    pub key_frame_requests: AtomicU64,
    /// RTP packets on an SSRC nobody expected.
    pub unexpected: AtomicU64,
    /// Why the task stopped early, if it did.
    pub failure: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, why: String) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(why);
        }
    }
}

/// A str0m configuration whose DTLS certificate is the loadgen's one (made once): generating
/// an EC key and signing a certificate for every transport made the loadgen, not the SFU, the
/// bottleneck of a join storm. Falls back to str0m's own per-transport certificate.
pub fn rtc_config() -> str0m::RtcConfig {
    use std::sync::OnceLock;
    static CERT: OnceLock<Option<str0m::crypto::dtls::DtlsCert>> = OnceLock::new();
    let cert = CERT.get_or_init(|| {
        str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
    });
    let config = str0m::RtcConfig::new();
    match cert {
        Some(cert) => config.set_dtls_cert(cert.clone()),
        None => config,
    }
}

/// A PeerConnection negotiated by SDP (Janus, WHIP, WHEP): RTP mode (the loadgen writes its
/// own packets), Opus and VP8 only.
pub fn sdp_rtc() -> Rtc {
    rtc_config()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(std::time::Instant::now())
}

/// The payload types an SDP-negotiated `rtc` settled on for Opus and VP8.
pub fn sdp_payload_types(rtc: &Rtc) -> (Option<u8>, Option<u8>) {
    let pt = |codec: str0m::format::Codec| {
        rtc.codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == codec)
            .map(|p| *p.pt())
    };
    (
        pt(str0m::format::Codec::Opus),
        pt(str0m::format::Codec::Vp8),
    )
}

/// A handle on a running transport; dropping it stops the task.
pub struct Transport {
    commands: mpsc::Sender<Command>,
    /// Counters and receive statistics.
    pub shared: Arc<Shared>,
}

struct Sender {
    mid: Mid,
    rid: Option<Rid>,
    ssrc: Option<Ssrc>,
    pt: Pt,
    nackable: bool,
    source: Source,
    seq: u64,
    due: Instant,
}

enum Source {
    Opus(OpusSource),
    Vp8(Vp8Source),
}

impl Sender {
    fn period(&self) -> Duration {
        match self.source {
            Source::Opus(_) => Duration::from_millis(20),
            Source::Vp8(_) => Duration::from_micros(33_333),
        }
    }

    fn next(&mut self) -> Vec<Packet> {
        match &mut self.source {
            Source::Opus(source) => vec![source.next_packet()],
            Source::Vp8(source) => source.next_frame(),
        }
    }
}

impl Transport {
    /// Starts driving `rtc` (already given its local candidate and remote parameters) on
    /// `socket`.
    pub fn spawn(rtc: Rtc, link: impl Into<Link>) -> Transport {
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let shared = Arc::new(Shared::default());
        tokio::spawn(drive(rtc, link.into(), rx, shared.clone()));
        Transport { commands, shared }
    }

    /// Starts publishing `track`.
    pub async fn send(&self, track: SendTrack) {
        let _ = self.commands.send(Command::Send(track)).await;
    }

    /// Starts accounting for `track`.
    pub async fn receive(&self, track: RecvTrack) {
        let _ = self.commands.send(Command::Receive(track)).await;
    }

    /// Stops expecting the track of `mid` (its producer closed); its statistics stay.
    pub async fn forget(&self, mid: &str) {
        let _ = self.commands.send(Command::Forget(mid.into())).await;
    }

    /// Waits up to `limit` for ICE and DTLS; when they came up.
    pub async fn wait_connected(&self, limit: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + limit;
        while !self.shared.connected.load(Ordering::Relaxed) {
            if let Some(why) = self.shared.failure.lock().ok().and_then(|f| f.clone()) {
                return Err(why);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ICE/DTLS not connected within {} s",
                    limit.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(*self.shared.connected_at.get_or_init(Instant::now))
    }
}

fn media_kind(kind: Kind) -> MediaKind {
    match kind {
        Kind::Audio => MediaKind::Audio,
        Kind::Video => MediaKind::Video,
    }
}

async fn drive(rtc: Rtc, link: Link, mut commands: mpsc::Receiver<Command>, shared: Arc<Shared>) {
    let local = match link.local_addr() {
        Ok(local) => local,
        Err(e) => return shared.fail(format!("socket: {e}")),
    };
    let mut driver = Driver {
        rtc,
        link,
        local,
        shared,
        senders: Vec::new(),
        mids_by_ssrc: HashMap::new(),
    };
    if let Err(why) = driver.run(&mut commands).await {
        driver.shared.fail(why);
    }
}

/// What a poll of str0m ended on.
enum Polled {
    /// Nothing more until then.
    Timeout(Instant),
    /// It gave the received RTP packet (polling was asked to stop there).
    Packet,
}

/// One transport's str0m, socket and media, driven by its task.
struct Driver {
    rtc: Rtc,
    link: Link,
    local: SocketAddr,
    shared: Arc<Shared>,
    senders: Vec<Sender>,
    mids_by_ssrc: HashMap<u32, String>,
}

impl Driver {
    async fn run(&mut self, commands: &mut mpsc::Receiver<Command>) -> Result<(), String> {
        let mut buf = vec![0u8; 2048];
        loop {
            // str0m's timeout and its transmits are looked at once per wake-up, not per
            // packet: both walk every stream, which at ~100 streams per transport cost more
            // than the packet itself.
            let Polled::Timeout(rtc_due) = self.poll(false).await? else {
                continue;
            };
            let wake =
                (self.senders.iter().map(|s| s.due).min()).map_or(rtc_due, |d| d.min(rtc_due));
            tokio::select! {
                got = self.link.recv(&mut buf) => {
                    let (n, source) = match got {
                        Ok(got) => got,
                        // ICMP "port unreachable" of a closed peer: keep going.
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                        Err(e) => return Err(format!("{} receive: {e}", self.link.protocol())),
                    };
                    self.take(source, &buf[..n]).await?;
                    // Whatever else has arrived is taken now, without a trip through the
                    // timer and the select per datagram.
                    for _ in 0..RECEIVE_BATCH {
                        let (n, source) = match self.link.try_recv(&mut buf) {
                            Ok(got) => got,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                            Err(e) => return Err(format!("{} receive: {e}", self.link.protocol())),
                        };
                        self.take(source, &buf[..n]).await?;
                    }
                }
                command = commands.recv() => {
                    let Some(command) = command else { return Ok(()) };
                    apply(&mut self.rtc, &mut self.senders, &self.shared, command);
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            let wrote = self.shared.connected.load(Ordering::Relaxed)
                && send_due(&mut self.rtc, &mut self.senders, &self.shared, now);
            if wrote || now >= rtc_due {
                (self.rtc)
                    .handle_input(Input::Timeout(now))
                    .map_err(|e| format!("str0m: {e}"))?;
            }
        }
    }

    /// Gives one datagram to str0m (what is not for it, e.g. a stray packet, is dropped) and
    /// takes the RTP packet it makes out: str0m holds one received packet at a time.
    async fn take(&mut self, source: SocketAddr, datagram: &[u8]) -> Result<(), String> {
        if let Ok(contents) = Receive::new(self.link.protocol(), source, self.local, datagram) {
            let input = Input::Receive(Instant::now(), contents);
            if self.rtc.accepts(&input) {
                (self.rtc)
                    .handle_input(input)
                    .map_err(|e| format!("str0m: {e}"))?;
                self.poll(true).await?;
            }
        }
        Ok(())
    }

    /// Hands str0m's output to the socket and the statistics until it asks to wait, or, with
    /// `until_packet`, until it gave a received RTP packet.
    async fn poll(&mut self, until_packet: bool) -> Result<Polled, String> {
        loop {
            match self.rtc.poll_output().map_err(|e| format!("str0m: {e}"))? {
                Output::Timeout(at) => return Ok(Polled::Timeout(at)),
                Output::Transmit(t) => send(&mut self.link, &t.contents, t.destination).await?,
                Output::Event(event) => {
                    let packet = matches!(event, Event::RtpPacket(_));
                    self.handle_event(event)?;
                    if packet && until_packet {
                        return Ok(Polled::Packet);
                    }
                }
            }
        }
    }

    fn handle_event(&mut self, event: Event) -> Result<(), String> {
        let shared = &self.shared;
        match event {
            Event::Connected => {
                let _ = shared.connected_at.set(Instant::now());
                shared.connected.store(true, Ordering::Relaxed);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                shared.connected.store(false, Ordering::Relaxed);
            }
            Event::KeyframeRequest(KeyframeRequest { mid, rid, .. }) => {
                shared.key_frame_requests.fetch_add(1, Ordering::Relaxed);
                for sender in self.senders.iter_mut() {
                    if sender.mid == mid && (rid.is_none() || sender.rid == rid) {
                        if let Source::Vp8(source) = &mut sender.source {
                            source.request_key_frame();
                            // Answer now rather than at the next frame time.
                            sender.due = Instant::now();
                        }
                    }
                }
            }
            Event::RtpPacket(packet) => {
                let ssrc = *packet.header.ssrc;
                if let Entry::Vacant(slot) = self.mids_by_ssrc.entry(ssrc) {
                    // First packet of an SSRC: learn its mid once (SDP-negotiated streams).
                    if let Some(stream) = self.rtc.direct_api().stream_rx(&packet.header.ssrc) {
                        slot.insert(stream.mid().to_string());
                    }
                }
                let mut streams = shared.streams.lock().map_err(|e| e.to_string())?;
                match (self.mids_by_ssrc.get(&ssrc)).and_then(|mid| streams.get_mut(mid)) {
                    Some(stats) => {
                        stats.handle_packet(packet.timestamp, *packet.seq_no, &packet.payload)
                    }
                    None => {
                        shared.unexpected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn send(link: &mut Link, contents: &[u8], to: SocketAddr) -> Result<(), String> {
    match link.send(contents, to).await {
        Ok(()) => Ok(()),
        // The other side is gone (ICMP): the statistics will show it; do not stop.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(format!("{} send to {to}: {e}", link.protocol())),
    }
}

impl From<UdpSocket> for Link {
    fn from(socket: UdpSocket) -> Link {
        Link::Udp(socket)
    }
}

fn apply(rtc: &mut Rtc, senders: &mut Vec<Sender>, shared: &Shared, command: Command) {
    let mut api = rtc.direct_api();
    match command {
        Command::Send(track) => {
            let mid = Mid::from(track.mid.as_str());
            if api.stream_tx_by_mid(mid, None).is_none()
                && track.layers.iter().any(|l| l.ssrc.is_some())
            {
                api.declare_media(mid, media_kind(track.kind));
            }
            for layer in &track.layers {
                let rid = layer.rid.as_deref().map(Rid::from);
                let ssrc = layer.ssrc.map(|ssrc| {
                    let stream = api.declare_stream_tx(
                        Ssrc::from(ssrc),
                        layer.rtx.map(Ssrc::from),
                        mid,
                        rid,
                    );
                    stream.ssrc()
                });
                let source = match track.kind {
                    Kind::Audio => Source::Opus(OpusSource::new(track.tag)),
                    Kind::Video => Source::Vp8(Vp8Source::new(
                        track.tag,
                        layer.kbps,
                        KEY_FRAME_INTERVAL,
                        layer.size.0,
                        layer.size.1,
                    )),
                };
                senders.push(Sender {
                    mid,
                    rid,
                    ssrc,
                    pt: Pt::from(track.pt),
                    nackable: track.kind == Kind::Video,
                    source,
                    seq: 1,
                    due: Instant::now(),
                });
            }
        }
        Command::Receive(track) => {
            let mid = Mid::from(track.mid.as_str());
            if let Some((ssrc, rtx)) = track.ssrc {
                if api.stream_rx_by_mid(mid, None).is_none() {
                    api.declare_media(mid, media_kind(track.kind));
                }
                api.expect_stream_rx(Ssrc::from(ssrc), rtx.map(Ssrc::from), mid, None);
            }
            if let Ok(mut streams) = shared.streams.lock() {
                let mut stats = StreamStats::new(track.kind, track.tag, track.reference);
                stats.consumed = track.consumed;
                streams.insert(track.mid, stats);
            }
        }
        Command::Forget(mid) => {
            if let Ok(mut streams) = shared.streams.lock() {
                if let Some(stats) = streams.get_mut(&mid) {
                    stats.closed = true;
                }
            }
        }
    }
}

/// Writes the frames whose time has come; whether it wrote any.
fn send_due(rtc: &mut Rtc, senders: &mut [Sender], shared: &Shared, now: Instant) -> bool {
    let mut wrote = false;
    let mut api = rtc.direct_api();
    for sender in senders.iter_mut() {
        if sender.due > now {
            continue;
        }
        if sender.ssrc.is_none() {
            // Negotiated by SDP: the stream exists once the answer was applied.
            sender.ssrc = api
                .stream_tx_by_mid(sender.mid, sender.rid)
                .map(|s| s.ssrc());
        }
        let Some(ssrc) = sender.ssrc else { continue };
        let period = sender.period();
        // Catch up after a stall without bursting more than one frame's worth.
        sender.due = (sender.due + period).max(now.checked_sub(period / 2).unwrap_or(now));
        let packets = sender.next();
        let Some(stream) = api.stream_tx(&ssrc) else {
            continue;
        };
        for packet in packets {
            stream.write_rtp(
                RtpWrite::new(
                    sender.pt,
                    SeqNo::from(sender.seq),
                    packet.time,
                    now,
                    packet.payload,
                )
                .marker(packet.marker)
                .nackable(sender.nackable),
            );
            sender.seq += 1;
            shared.packets_sent.fetch_add(1, Ordering::Relaxed);
            wrote = true;
        }
    }
    wrote
}
