//! What every simulated participant shares with the run, whatever the SFU it talks to: its
//! plan (room, name, what it publishes) and its record (join time, error, transports).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::Candidate;
use tokio::net::UdpSocket;

use crate::media::{publisher_tag, Kind};
use crate::transport::{Layer, SendTrack, Shared, Transport};

/// What one participant does.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The room it joins.
    pub room: String,
    /// Its display name (its payloads carry its hash).
    pub name: String,
    /// It publishes (everyone subscribes).
    pub publish: bool,
    /// How many videos it asks for (last-N); `None`: every video.
    pub last_n: Option<u32>,
    /// What it publishes.
    pub media: MediaPlan,
    /// It starts the recording of its room once it publishes.
    pub record: bool,
}

/// The media of a publisher.
#[derive(Clone, Copy, Debug)]
pub struct MediaPlan {
    /// No video.
    pub audio_only: bool,
    /// Three VP8 layers.
    pub simulcast: bool,
    /// Video bit rate (the top layer with simulcast).
    pub video_kbps: u32,
    /// Publish nothing (transports only).
    pub idle: bool,
    /// Not even transports: joined only.
    pub no_transports: bool,
}

impl Plan {
    /// Sends its tracks on an SDP-negotiated `transport` (Janus, WHIP): each `mids` entry
    /// with the payload type the negotiation gave Opus or VP8.
    pub async fn send_negotiated(
        &self,
        transport: &Transport,
        mids: &[(Kind, str0m::media::Mid)],
        (opus, vp8): (Option<u8>, Option<u8>),
    ) -> Result<(), Failed> {
        for (kind, mid) in mids {
            let pt = match kind {
                Kind::Audio => opus,
                Kind::Video => vp8,
            }
            .ok_or_else(|| failed("sdp", "no payload type for our codec"))?;
            transport
                .send(self.send_track(*kind, &mid.to_string(), pt, false))
                .await;
        }
        Ok(())
    }

    /// The tag of this participant's payloads.
    pub fn tag(&self) -> u32 {
        publisher_tag(&self.name)
    }

    /// The kinds it publishes.
    pub fn kinds(&self) -> Vec<Kind> {
        match (self.publish && !self.media.idle, self.media.audio_only) {
            (false, _) => vec![],
            (true, true) => vec![Kind::Audio],
            (true, false) => vec![Kind::Audio, Kind::Video],
        }
    }

    /// The send track of `kind` with signalled SSRCs (the SFU's direct RTP mode), or with
    /// SSRCs left to SDP (`signalled` false).
    pub fn send_track(&self, kind: Kind, mid: &str, pt: u8, signalled: bool) -> SendTrack {
        let tag = self.tag();
        // Distinct per participant and stream; collisions across transports are harmless.
        let ssrc = |n: u32| signalled.then(|| tag.wrapping_add(n.wrapping_mul(0x9e37_79b9)) | 1);
        let layers = match kind {
            Kind::Audio => vec![Layer {
                ssrc: ssrc(1),
                rtx: None,
                rid: None,
                kbps: 40,
                size: (0, 0),
            }],
            Kind::Video if self.media.simulcast => {
                [(16, (320, 180)), (4, (640, 360)), (1, (1280, 720))]
                    .iter()
                    .enumerate()
                    .map(|(i, (div, size))| Layer {
                        ssrc: ssrc(10 + 2 * i as u32),
                        rtx: ssrc(11 + 2 * i as u32),
                        rid: Some(["l", "m", "h"][i].to_string()),
                        kbps: (self.media.video_kbps / div).max(30),
                        size: *size,
                    })
                    .collect()
            }
            Kind::Video => vec![Layer {
                ssrc: ssrc(2),
                rtx: ssrc(3),
                rid: None,
                kbps: self.media.video_kbps,
                size: (640, 360),
            }],
        };
        SendTrack {
            mid: mid.into(),
            kind,
            pt,
            tag,
            layers,
        }
    }
}

/// What happened to one participant, shared with the progress reports and the summary.
#[derive(Debug)]
pub struct Record {
    /// Its plan.
    pub plan: Plan,
    /// When it started to join.
    pub started: Instant,
    /// Start → join answered.
    pub join_latency: Mutex<Option<Duration>>,
    /// Start of the join → its receive transport connected (ICE and DTLS).
    pub connect_latency: Mutex<Option<Duration>>,
    /// The first error it met: (code, message).
    pub error: Mutex<Option<(String, String)>>,
    /// Its transports' counters.
    pub transports: Mutex<Vec<Arc<Shared>>>,
    /// Sessions taken back (`resume`) after its signaling connection closed.
    pub resumes: std::sync::atomic::AtomicU32,
    /// Moves of its media to another server in a drain (`mediaMoving`).
    pub moves: std::sync::atomic::AtomicU32,
    /// Under last-N: the names of the peers whose video the SFU last said it forwards.
    pub forwarded: Mutex<Option<std::collections::BTreeSet<String>>>,
}

impl Record {
    /// A record for `plan`, starting now.
    pub fn new(plan: Plan) -> Record {
        Record {
            plan,
            started: Instant::now(),
            join_latency: Mutex::new(None),
            connect_latency: Mutex::new(None),
            error: Mutex::new(None),
            transports: Mutex::new(Vec::new()),
            resumes: std::sync::atomic::AtomicU32::new(0),
            moves: std::sync::atomic::AtomicU32::new(0),
            forwarded: Mutex::new(None),
        }
    }

    /// Its receive transport connected at `at` (the first time counts).
    pub fn connected(&self, at: Instant) {
        if let Ok(mut latency) = self.connect_latency.lock() {
            latency.get_or_insert(at.saturating_duration_since(self.started));
        }
    }

    /// The join was answered now.
    pub fn joined(&self) {
        if let Ok(mut latency) = self.join_latency.lock() {
            *latency = Some(self.started.elapsed());
        }
    }

    /// Its session was taken back on a new connection.
    pub fn resumed(&self) {
        self.resumes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The SFU forwards it the videos of `names` (last-N).
    pub fn forwarded(&self, names: std::collections::BTreeSet<String>) {
        if let Ok(mut forwarded) = self.forwarded.lock() {
            *forwarded = Some(names);
        }
    }

    /// Whether the video of `publisher` is expected: every video, or last-N's.
    pub fn expects_video_of(&self, publisher: &str) -> bool {
        (self.forwarded.lock().ok())
            .and_then(|f| f.as_ref().map(|names| names.contains(publisher)))
            .unwrap_or(true)
    }

    /// Its media moved to another server (a drain).
    pub fn moved(&self) {
        self.moves
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Keeps the first error.
    pub fn fail(&self, failure: Failed) {
        if let Ok(mut error) = self.error.lock() {
            error.get_or_insert((failure.code, failure.message));
        }
    }

    /// Counts a transport.
    pub fn add_transport(&self, shared: Arc<Shared>) {
        if let Ok(mut transports) = self.transports.lock() {
            transports.push(shared);
        }
    }
}

/// Why a participant stopped: the code the report counts and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// An error code (the SFU's, `janus_N`, or the loadgen's own: `connection`, `ice_dtls`, …).
    pub code: String,
    /// What happened.
    pub message: String,
}

/// A [`Failed`] with `code`.
pub fn failed(code: &str, message: impl Into<String>) -> Failed {
    Failed {
        code: code.into(),
        message: message.into(),
    }
}

/// A UDP socket on `ip` for one transport, and its host candidate.
pub async fn local_socket(ip: IpAddr) -> Result<(UdpSocket, Candidate), Failed> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|e| failed("socket", format!("bind UDP: {e}")))?;
    let local = socket
        .local_addr()
        .map_err(|e| failed("socket", e.to_string()))?;
    let host = Candidate::host(local, "udp").map_err(|e| failed("ice_dtls", e.to_string()))?;
    Ok((socket, host))
}
