//! The command line of `loadgen`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Which SFU the participants talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// This project's SFU (`/ws`, docs/protocol.md).
    Sfu,
    /// Janus' VideoRoom plugin over its WebSocket transport.
    Janus,
}

/// Simulated WebRTC participants (str0m) that join rooms, publish synthetic but realistic
/// Opus and VP8, consume everyone else and check every packet they get.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    after_help = "Each room gets --publishers participants that publish (and subscribe) and \
--subscribers that only subscribe. Every subscriber must receive every other publisher's \
audio and video; the exit status is 1 when a stream that should flow does not, a packet \
carries another publisher's payload, or a participant fails, and 2 for bad arguments.\n\n\
Examples:\n  loadgen --rooms 2 --publishers 3 --duration 5\n  \
loadgen --url wss://sfu.example.com/ws --ca cert.pem --publishers 1 --subscribers 100 --ramp 20\n  \
loadgen --target janus --url ws://127.0.0.1:8188 --publishers 1 --subscribers 50 --json\n  \
loadgen --rooms 20 --publishers 1 --subscribers 10 --whip --whep   (WHIP in, WHEP out)"
)]
pub struct Args {
    /// The SFU under test.
    #[arg(long, value_enum, default_value_t = TargetKind::Sfu)]
    pub target: TargetKind,
    /// Signaling URL [default: ws://127.0.0.1:8000/ws for sfu, ws://127.0.0.1:8188 for janus].
    #[arg(long)]
    pub url: Option<String>,
    /// Accept any TLS certificate (a self-signed test SFU).
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
    /// Trust the certificates in this PEM file (the SFU's own, or its CA).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Join token every peer sends, for an SFU with JOIN_SECRET: one for room `*`
    /// (`supervisor token --room '*' --identity loadgen`).
    #[arg(long, env = "SFU_JOIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Rooms.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rooms: u32,
    /// Participants per room that publish audio and video (they also subscribe).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub publishers: u32,
    /// Participants per room that only subscribe.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub subscribers: u32,
    /// Publish audio only.
    #[arg(long)]
    pub audio_only: bool,
    /// Each participant asks the SFU for the videos of this many speakers only (last-N):
    /// only those are expected to flow. Janus has no last-N: ignored there.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub last_n: Option<u32>,
    /// Join and open transports, but publish nothing (the idle cost of participants).
    #[arg(long, conflicts_with_all = ["audio_only", "simulcast"])]
    pub idle: bool,
    /// With --idle: join only, open no transport (what an idle Janus participant is: a joined
    /// handle without a PeerConnection), for an idle cost compared like for like.
    #[arg(long, requires = "idle")]
    pub no_transports: bool,
    /// Publish video as three simulcast layers (1/16, 1/4 and all of --video-kbps).
    #[arg(long)]
    pub simulcast: bool,
    /// Video bit rate of a publisher (kbit/s, 30 fps).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(30..=20_000))]
    pub video_kbps: u32,
    /// Joins per second.
    #[arg(long, default_value_t = 20.0)]
    pub ramp: f64,
    /// Seconds of media once everyone has joined.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// A stream counts as flowing if it delivered a packet in this last part of the run (s).
    #[arg(long, default_value_t = 2.0)]
    pub flowing_window: f64,
    /// Print one JSON document instead of a table (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Room names are PREFIX-0, PREFIX-1, … (Janus: numeric ids from a hash of them).
    #[arg(long, default_value = "load")]
    pub room_prefix: String,
    /// Publishers publish with WHIP (`POST /whip/{room}` on the SFU's HTTP port) instead of
    /// `/ws`; they receive nothing. Needs --publishers 1.
    #[arg(long)]
    pub whip: bool,
    /// Subscribers watch with WHEP (`POST /whep/{room}`): each receives its room's one
    /// publisher. Needs --publishers 1.
    #[arg(long)]
    pub whep: bool,
    /// Where the SFU's HTTP endpoints are, for --whip and --whep (`https://example.com/conference`
    /// behind a proxy's prefix) [default: --url's origin and path without `/ws`].
    #[arg(long, value_name = "URL")]
    pub http_url: Option<String>,
    /// Local address of the participants' media sockets.
    #[arg(long, default_value = "127.0.0.1")]
    pub local_ip: IpAddr,
    /// Media over ICE-TCP: each transport one TCP connection to the SFU's passive TCP
    /// candidate, as a client behind a firewall that drops UDP (our SFU over `/ws` only).
    #[arg(long, conflicts_with = "turn")]
    pub ice_tcp: bool,
    /// Media through the TURN server the SFU's join answer names (`iceServers`: its first
    /// `turn:` URL over UDP, with the participant's own credentials), an allocation per
    /// transport, as a client whose only way out is TURN (our SFU over `/ws` only).
    #[arg(long)]
    pub turn: bool,
    /// Record every room: its first publisher starts the recording once it publishes
    /// (`startRecording`; the SFU needs RECORD_DIR and --token must grant canRecord); with
    /// --target janus the rooms are created with Janus' recording on.
    #[arg(long)]
    pub record: bool,
    /// Where Janus writes the recordings (`.mjr`) of --record [default: Janus' own folder].
    #[arg(long, value_name = "DIR", requires = "record")]
    pub janus_rec_dir: Option<String>,
}

impl Args {
    /// The URL to use.
    pub fn url(&self) -> String {
        self.url.clone().unwrap_or_else(|| match self.target {
            TargetKind::Sfu => "ws://127.0.0.1:8000/ws".into(),
            TargetKind::Janus => "ws://127.0.0.1:8188".into(),
        })
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.ramp.is_finite() && self.ramp > 0.0) {
            return Err("--ramp must be a positive number of joins per second".into());
        }
        if !(self.duration.is_finite() && self.duration > 0.0 && self.duration <= 86_400.0) {
            return Err("--duration must be between 0 and 86400 seconds".into());
        }
        if !(self.flowing_window.is_finite() && self.flowing_window > 0.0) {
            return Err("--flowing-window must be positive".into());
        }
        if self.flowing_window > self.duration {
            return Err("--flowing-window cannot be longer than --duration".into());
        }
        if self.publishers == 0 {
            return Err("--publishers must be at least 1: nothing would flow".into());
        }
        if self.publishers == 1 && self.subscribers == 0 && !self.idle {
            return Err(
                "one publisher alone receives nothing: add --subscribers or publishers".into(),
            );
        }
        if self.simulcast && self.audio_only {
            return Err("--simulcast needs video: drop --audio-only".into());
        }
        if self.simulcast && self.target == TargetKind::Janus {
            return Err("--simulcast is only implemented against our SFU".into());
        }
        if (self.ice_tcp || self.turn)
            && (self.target == TargetKind::Janus || self.whip || self.whep)
        {
            return Err(
                "--ice-tcp and --turn are for our SFU over /ws (not Janus, WHIP or WHEP)".into(),
            );
        }
        if self.whip || self.whep {
            if self.target == TargetKind::Janus {
                return Err(
                    "--whip and --whep are for our SFU (Janus needs a separate service)".into(),
                );
            }
            if self.publishers != 1 {
                return Err("--whip and --whep need --publishers 1: a WHEP viewer watches one publisher, a WHIP publisher receives nothing".into());
            }
            if self.simulcast || self.idle || self.last_n.is_some() {
                return Err("--whip and --whep go without --simulcast, --idle and --last-n".into());
            }
        }
        let url = self.url();
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(format!("--url must be ws:// or wss://, not {url}"));
        }
        if u64::from(self.rooms) * u64::from(self.publishers + self.subscribers) > 20_000 {
            return Err("more than 20000 participants: run several loadgens".into());
        }
        Ok(())
    }
}
