//! One recorded track, on a thread of its own: RTP from the SFU's consumer arrives on a UDP
//! socket, is reordered ([`Reorder`]), and written ([`TrackWriter`]); NACKs and key-frame
//! requests go back to where the packets came from; the first sender report ties the track's
//! timestamps to the wall clock, which is how the manifest puts tracks back in sync.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::reorder::{Input, Output, Reorder, ReorderConfig};
use crate::rtp::{self, SenderReport};
use crate::writer::{TrackFormat, TrackWriter, WriterError};

/// The SSRC the recorder signs its feedback with.
const RECORDER_SSRC: u32 = 0x5245_4331;
/// How often the loop wakes without packets (NACK timers, stop requests).
const TICK: Duration = Duration::from_millis(20);
/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET: f64 = 2_208_988_800.0;

/// What a finished (or failed) track reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackReport {
    /// The file.
    pub path: PathBuf,
    /// Media time written.
    pub duration: Duration,
    /// RTP packets written.
    pub packets: u64,
    /// RTP packets given up on (lost even after NACKs).
    pub lost: u64,
    /// When the first packet was sent, in Unix seconds: from the first sender report when
    /// one came (the sender's clock, the same for all tracks of an SFU), else its arrival.
    pub started_unix: Option<f64>,
    /// Whether the sender-report clock gave `started_unix`.
    pub synced_by_sender_report: bool,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// A track being recorded; [`Track::stop`] ends its file.
#[derive(Debug)]
pub struct Track {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<TrackReport>,
}

impl Track {
    /// Opens a UDP socket on `ip` for the track and starts writing what arrives to `path`.
    pub fn start(
        ip: std::net::IpAddr,
        format: TrackFormat,
        path: PathBuf,
    ) -> Result<Track, TrackError> {
        let socket = UdpSocket::bind((ip, 0)).map_err(TrackError::Socket)?;
        socket
            .set_read_timeout(Some(TICK))
            .map_err(TrackError::Socket)?;
        let local = socket.local_addr().map_err(TrackError::Socket)?;
        let writer = TrackWriter::create(format, &path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("track-{}", local.port()))
            .spawn(move || run(socket, writer, format, stopping))
            .map_err(TrackError::Socket)?;
        Ok(Track {
            local,
            stop,
            thread,
        })
    }

    /// Where the SFU sends the track's RTP (and RTCP, multiplexed).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the track stopped on its own (an error).
    pub fn has_ended(&self) -> bool {
        self.thread.is_finished()
    }

    /// Ends the file and reports.
    pub fn stop(self) -> TrackReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_else(|_| TrackReport {
            path: PathBuf::new(),
            duration: Duration::ZERO,
            packets: 0,
            lost: 0,
            started_unix: None,
            synced_by_sender_report: false,
            error: Some("the track's thread panicked".into()),
        })
    }
}

/// Why a track cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// No socket (or thread) for it.
    #[error("cannot open the track's socket: {0}")]
    Socket(std::io::Error),
    /// No file for it.
    #[error(transparent)]
    Writer(#[from] WriterError),
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn run(
    socket: UdpSocket,
    mut writer: TrackWriter,
    format: TrackFormat,
    stop: Arc<AtomicBool>,
) -> TrackReport {
    let mut reorder = Reorder::new(ReorderConfig::default());
    let mut from: Option<SocketAddr> = None;
    let mut media_ssrc = 0u32;
    let mut first: Option<(u32, f64)> = None; // first packet's timestamp and arrival
    let mut report: Option<SenderReport> = None;
    let mut packets = 0u64;
    let mut error = None;
    let mut datagram = vec![0u8; 2048];
    let video = format.codec.media() == "video";
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        match socket.recv_from(&mut datagram) {
            Ok((len, peer)) => {
                from = Some(peer);
                let datagram = &datagram[..len];
                if rtp::is_rtcp(datagram) {
                    if report.is_none() {
                        report = rtp::sender_reports(datagram)
                            .into_iter()
                            .find(|r| r.ssrc == media_ssrc || media_ssrc == 0);
                    }
                } else if let Ok(header) = rtp::parse_rtp(datagram) {
                    if header.payload_type == format.payload_type {
                        media_ssrc = header.ssrc;
                        first.get_or_insert((header.timestamp, unix_now()));
                        reorder.handle(
                            Input::Packet {
                                seq: header.seq,
                                packet: datagram.to_vec(),
                            },
                            now,
                        );
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                error = Some(format!("the track's socket failed: {e}"));
                break;
            }
        }
        reorder.handle(Input::Tick, now);
        let mut want_key_frame = writer.take_key_frame_request();
        while let Some(output) = reorder.poll_output() {
            match output {
                Output::Deliver(packet) => {
                    let Ok(header) = rtp::parse_rtp(&packet) else {
                        continue;
                    };
                    if let Err(e) = writer.push(&packet, header.timestamp) {
                        error = Some(e.to_string());
                        break;
                    }
                    packets += 1;
                }
                Output::Nack(lost) => {
                    if let Some(to) = from {
                        let _ = socket.send_to(&rtp::nack(RECORDER_SSRC, media_ssrc, &lost), to);
                    }
                }
                Output::KeyFrame => want_key_frame = true,
                Output::Lost(_) => {}
            }
        }
        if error.is_some() {
            break;
        }
        if want_key_frame && video {
            if let Some(to) = from {
                let _ = socket.send_to(&rtp::pli(RECORDER_SSRC, media_ssrc), to);
            }
        }
    }
    let duration = writer.duration();
    let path = writer.path().to_path_buf();
    if error.is_none() {
        if let Err(e) = writer.finish(Duration::from_secs(5)) {
            error = Some(e.to_string());
        }
    }
    let (started_unix, synced) = match (first, report) {
        (Some((ts, _)), Some(sr)) => {
            let ticks = ts.wrapping_sub(sr.rtp_timestamp) as i32;
            let at = sr.ntp_seconds() - NTP_UNIX_OFFSET
                + f64::from(ticks) / f64::from(format.clock_rate.max(1));
            (Some(at), true)
        }
        (Some((_, arrival)), None) => (Some(arrival), false),
        _ => (None, false),
    };
    TrackReport {
        path,
        duration,
        packets,
        lost: reorder.lost(),
        started_unix,
        synced_by_sender_report: synced,
        error,
    }
}
