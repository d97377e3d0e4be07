//! One track's file, written by GStreamer (Debian's plugins, through gstreamer-rs): the
//! in-order RTP packets go into an `appsrc`, are depacketized (`rtpopusdepay`,
//! `rtpvp8depay`, …, which drop a broken frame until the next key frame and say when they
//! want one) and muxed (WebM, or Matroska for H.264) straight to disk, unbuffered, so a
//! recorder killed mid-way leaves a file that plays up to that moment.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// The codecs the recorder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Opus audio, into WebM.
    Opus,
    /// VP8 video, into WebM.
    Vp8,
    /// VP9 video, into WebM.
    Vp9,
    /// H.264 video, into Matroska.
    H264,
}

impl Codec {
    /// The codec of a mediasoup mime type (`audio/opus`, `video/VP8`, …).
    pub fn from_mime(mime: &str) -> Option<Codec> {
        match mime.to_ascii_lowercase().as_str() {
            "audio/opus" => Some(Codec::Opus),
            "video/vp8" => Some(Codec::Vp8),
            "video/vp9" => Some(Codec::Vp9),
            "video/h264" => Some(Codec::H264),
            _ => None,
        }
    }

    /// `audio` or `video`.
    pub fn media(self) -> &'static str {
        match self {
            Codec::Opus => "audio",
            _ => "video",
        }
    }

    /// The file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::H264 => "mkv",
            _ => "webm",
        }
    }

    fn encoding_name(self) -> &'static str {
        match self {
            Codec::Opus => "OPUS",
            Codec::Vp8 => "VP8",
            Codec::Vp9 => "VP9",
            Codec::H264 => "H264",
        }
    }

    /// What follows the `appsrc`: depacketizer, parser, muxer.
    fn elements(self) -> &'static str {
        match self {
            Codec::Opus => "rtpopusdepay ! opusparse ! webmmux",
            Codec::Vp8 => "rtpvp8depay request-keyframe=true wait-for-keyframe=true ! webmmux",
            Codec::Vp9 => {
                "rtpvp9depay request-keyframe=true wait-for-keyframe=true ! vp9parse ! webmmux"
            }
            Codec::H264 => {
                "rtph264depay request-keyframe=true wait-for-keyframe=true ! h264parse ! matroskamux"
            }
        }
    }
}

/// Why a track cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// GStreamer or one of its plugins is missing.
    #[error("GStreamer cannot build the {codec:?} pipeline: {reason}")]
    Pipeline {
        /// The codec.
        codec: Codec,
        /// Why.
        reason: String,
    },
    /// The file cannot be opened or written (unwritable folder, disk full, …).
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// GStreamer's error message.
        reason: String,
    },
    /// The end of the file was not written in time.
    #[error("{0} was not finished in time")]
    Finish(PathBuf),
}

/// The media description of a track, as the consumer's RTP parameters give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackFormat {
    /// The codec.
    pub codec: Codec,
    /// Its RTP payload type.
    pub payload_type: u8,
    /// Its RTP clock rate.
    pub clock_rate: u32,
}

/// A track being written to its file.
#[derive(Debug)]
pub struct TrackWriter {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    path: PathBuf,
    format: TrackFormat,
    /// First and latest extended RTP timestamps.
    first_ts: Option<i64>,
    last_ts: i64,
    key_frame_wanted: Arc<AtomicBool>,
}

impl TrackWriter {
    /// Starts writing `format` into `path` (created; an existing file is replaced).
    pub fn create(format: TrackFormat, path: &Path) -> Result<Self, WriterError> {
        let codec = format.codec;
        let pipeline_err = |reason: String| WriterError::Pipeline { codec, reason };
        gst::init().map_err(|e| pipeline_err(e.to_string()))?;
        let description = format!(
            "appsrc name=src is-live=true format=time max-bytes=4000000 ! {} name=mux ! filesink name=sink buffer-mode=unbuffered",
            codec.elements()
        );
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| pipeline_err(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| pipeline_err("not a pipeline".into()))?;
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| pipeline_err("no appsrc".into()))?;
        let sink = pipeline
            .by_name("sink")
            .ok_or_else(|| pipeline_err("no filesink".into()))?;
        sink.set_property("location", path.to_string_lossy().as_ref());
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", codec.media())
            .field("encoding-name", codec.encoding_name())
            .field("clock-rate", format.clock_rate as i32)
            .field("payload", i32::from(format.payload_type))
            .build();
        src.set_caps(Some(&caps));

        // A depacketizer that lost a frame asks upstream for a key frame: it reaches the
        // appsrc as an upstream GstForceKeyUnit event, which the recorder turns into a PLI.
        let key_frame_wanted = Arc::new(AtomicBool::new(false));
        if let Some(pad) = src.static_pad("src") {
            let wanted = key_frame_wanted.clone();
            pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                if let Some(gst::PadProbeData::Event(event)) = &info.data {
                    if event
                        .structure()
                        .is_some_and(|s| s.has_name("GstForceKeyUnit"))
                    {
                        wanted.store(true, Ordering::Relaxed);
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }

        if let Some(mux) = pipeline.by_name("mux") {
            for pad in mux.sink_pads() {
                keep_timestamps_increasing(&pad);
            }
        }

        let writer = TrackWriter {
            pipeline,
            src,
            path: path.to_path_buf(),
            format,
            first_ts: None,
            last_ts: 0,
            key_frame_wanted,
        };
        if writer.pipeline.set_state(gst::State::Playing).is_err() {
            let error = writer.error().unwrap_or_else(|| WriterError::Write {
                path: path.to_path_buf(),
                reason: "the pipeline did not start".into(),
            });
            let _ = writer.pipeline.set_state(gst::State::Null);
            return Err(error);
        }
        Ok(writer)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The extended timestamp of `timestamp` (the one nearest the latest).
    fn extend(&mut self, timestamp: u32) -> i64 {
        let Some(_) = self.first_ts else {
            self.first_ts = Some(i64::from(timestamp));
            self.last_ts = i64::from(timestamp);
            return self.last_ts;
        };
        let delta = timestamp.wrapping_sub(self.last_ts as u32) as i32;
        self.last_ts += i64::from(delta);
        self.last_ts
    }

    /// Writes the next in-order RTP packet, whose timestamp is `timestamp`.
    pub fn push(&mut self, packet: &[u8], timestamp: u32) -> Result<(), WriterError> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        let ext = self.extend(timestamp);
        let since_first = (ext - self.first_ts.unwrap_or(ext)).max(0) as u128;
        let pts = since_first * 1_000_000_000 / u128::from(self.format.clock_rate.max(1));
        let mut buffer = gst::Buffer::from_slice(packet.to_vec());
        if let Some(buffer) = buffer.get_mut() {
            buffer.set_pts(gst::ClockTime::from_nseconds(pts as u64));
        }
        // Full (the disk stalls): the packet is dropped rather than memory growing.
        if self.src.current_level_bytes() < self.src.max_bytes() {
            let _ = self.src.push_buffer(buffer);
        }
        Ok(())
    }

    /// Media time written so far (from the first packet's timestamp to the latest).
    pub fn duration(&self) -> Duration {
        let ticks = (self.last_ts - self.first_ts.unwrap_or(self.last_ts)).max(0) as u64;
        Duration::from_nanos(
            (u128::from(ticks) * 1_000_000_000 / u128::from(self.format.clock_rate.max(1))) as u64,
        )
    }

    /// Whether the depacketizer asked for a key frame since the last call.
    pub fn take_key_frame_request(&self) -> bool {
        self.key_frame_wanted.swap(false, Ordering::Relaxed)
    }

    /// An error the pipeline reported, if any (checked without waiting).
    pub fn error(&self) -> Option<WriterError> {
        let bus = self.pipeline.bus()?;
        let message = bus.pop_filtered(&[gst::MessageType::Error])?;
        match message.view() {
            gst::MessageView::Error(e) => Some(WriterError::Write {
                path: self.path.clone(),
                reason: e.error().to_string(),
            }),
            _ => None,
        }
    }

    /// Ends the file (the muxer writes its index and duration) within `within`.
    pub fn finish(self, within: Duration) -> Result<(), WriterError> {
        let _ = self.src.end_of_stream();
        let ended = self.pipeline.bus().and_then(|bus| {
            bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(within.as_nanos() as u64),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
        });
        let _ = self.pipeline.set_state(gst::State::Null);
        match ended.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(()),
            Some(gst::MessageView::Error(e)) => Err(WriterError::Write {
                path: self.path.clone(),
                reason: e.error().to_string(),
            }),
            _ => Err(WriterError::Finish(self.path.clone())),
        }
    }
}

/// The muxers write milliseconds, and a player refuses two frames at the same one ("non
/// monotonically increasing dts"): a sender's clock may put two frames under a millisecond
/// apart (or on the same RTP timestamp), and a frame cut by a loss the depacketizer gave up on
/// can come out on the timestamp of the next. Every buffer reaching the muxer is therefore
/// kept at least a millisecond after the one before it; dropping it instead would break every
/// frame predicted from it until the next key frame.
fn keep_timestamps_increasing(pad: &gst::Pad) {
    const STEP: gst::ClockTime = gst::ClockTime::MSECOND;
    // Only the pad's streaming thread takes it.
    let last: Mutex<Option<gst::ClockTime>> = Mutex::new(None);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data {
            if let Some(pts) = buffer.pts() {
                let mut last = last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let earliest = last.map(|l| l + STEP);
                let pts = match earliest {
                    Some(earliest) if pts < earliest => {
                        let buffer = buffer.make_mut();
                        buffer.set_pts(earliest);
                        if buffer.dts().is_some() {
                            buffer.set_dts(earliest);
                        }
                        earliest
                    }
                    _ => pts,
                };
                *last = Some(pts);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

impl Drop for TrackWriter {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
