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
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
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
    pub fn spawn(rtc: Rtc, socket: UdpSocket) -> Transport {
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let shared = Arc::new(Shared::default());
        tokio::spawn(drive(rtc, socket, rx, shared.clone()));
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

    /// Waits up to `limit` for ICE and DTLS.
    pub async fn wait_connected(&self, limit: Duration) -> Result<(), String> {
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
        Ok(())
    }
}

fn media_kind(kind: Kind) -> MediaKind {
    match kind {
        Kind::Audio => MediaKind::Audio,
        Kind::Video => MediaKind::Video,
    }
}

async fn drive(
    mut rtc: Rtc,
    socket: UdpSocket,
    mut commands: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
) {
    let local = match socket.local_addr() {
        Ok(local) => local,
        Err(e) => return shared.fail(format!("UDP socket: {e}")),
    };
    let mut senders: Vec<Sender> = Vec::new();
    let mut mids_by_ssrc: HashMap<u32, String> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = match poll(&mut rtc, &socket, &shared, &mut senders, &mut mids_by_ssrc).await
        {
            Ok(timeout) => timeout,
            Err(why) => return shared.fail(why),
        };
        let wake = senders
            .iter()
            .map(|s| s.due)
            .min()
            .map_or(timeout, |due| due.min(timeout));
        tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let (n, source) = match got {
                    Ok(got) => got,
                    // ICMP "port unreachable" of a closed peer: keep going.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return shared.fail(format!("UDP receive: {e}")),
                };
                if let Err(why) = receive(&mut rtc, local, source, &buf[..n]) {
                    return shared.fail(why);
                }
                // Whatever else has arrived is taken now, without a trip through the timer and
                // the select per datagram: at thousands of streams per loadgen core that trip
                // cost more than the packet. str0m holds one received RTP packet at a time, so
                // its output is drained after each.
                for _ in 0..RECEIVE_BATCH {
                    if let Err(why) = poll(&mut rtc, &socket, &shared, &mut senders, &mut mids_by_ssrc).await {
                        return shared.fail(why);
                    }
                    let (n, source) = match socket.try_recv_from(&mut buf) {
                        Ok(got) => got,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                        Err(e) => return shared.fail(format!("UDP receive: {e}")),
                    };
                    if let Err(why) = receive(&mut rtc, local, source, &buf[..n]) {
                        return shared.fail(why);
                    }
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return };
                apply(&mut rtc, &mut senders, &shared, command);
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        if shared.connected.load(Ordering::Relaxed) {
            send_due(&mut rtc, &mut senders, &shared, now);
        }
        if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
            return shared.fail(format!("str0m: {e}"));
        }
    }
}

/// Gives one datagram to str0m (what is not for it, e.g. a stray packet, is dropped).
fn receive(
    rtc: &mut Rtc,
    local: SocketAddr,
    source: SocketAddr,
    datagram: &[u8],
) -> Result<(), String> {
    if let Ok(contents) = Receive::new(Protocol::Udp, source, local, datagram) {
        let input = Input::Receive(Instant::now(), contents);
        if rtc.accepts(&input) {
            rtc.handle_input(input).map_err(|e| format!("str0m: {e}"))?;
        }
    }
    Ok(())
}

/// Hands str0m's output to the socket and the statistics until it asks to wait.
async fn poll(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    shared: &Shared,
    senders: &mut [Sender],
    mids_by_ssrc: &mut HashMap<u32, String>,
) -> Result<Instant, String> {
    loop {
        match rtc.poll_output().map_err(|e| format!("str0m: {e}"))? {
            Output::Timeout(at) => return Ok(at),
            Output::Transmit(t) => send_datagram(socket, &t.contents, t.destination).await?,
            Output::Event(event) => match event {
                Event::Connected => shared.connected.store(true, Ordering::Relaxed),
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    shared.connected.store(false, Ordering::Relaxed);
                }
                Event::KeyframeRequest(KeyframeRequest { mid, rid, .. }) => {
                    shared.key_frame_requests.fetch_add(1, Ordering::Relaxed);
                    for sender in senders.iter_mut() {
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
                    if let Entry::Vacant(slot) = mids_by_ssrc.entry(ssrc) {
                        // First packet of an SSRC: learn its mid once (SDP-negotiated streams).
                        if let Some(stream) = rtc.direct_api().stream_rx(&packet.header.ssrc) {
                            slot.insert(stream.mid().to_string());
                        }
                    }
                    let mut streams = shared.streams.lock().map_err(|e| e.to_string())?;
                    match mids_by_ssrc.get(&ssrc).and_then(|mid| streams.get_mut(mid)) {
                        Some(stats) => {
                            stats.handle_packet(packet.timestamp, *packet.seq_no, &packet.payload)
                        }
                        None => {
                            shared.unexpected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                _ => {}
            },
        }
    }
}

async fn send_datagram(socket: &UdpSocket, contents: &[u8], to: SocketAddr) -> Result<(), String> {
    match socket.send_to(contents, to).await {
        Ok(_) => Ok(()),
        // The other side is gone (ICMP): the statistics will show it; do not stop.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(format!("UDP send to {to}: {e}")),
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
                streams.insert(
                    track.mid,
                    StreamStats::new(track.kind, track.tag, track.reference),
                );
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

/// Writes the frames whose time has come.
fn send_due(rtc: &mut Rtc, senders: &mut [Sender], shared: &Shared, now: Instant) {
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
        }
    }
}
