//! A test participant: signaling plus a send and a receive transport, publishing one audio
//! and one video track and consuming what the others publish; [`Joining`] puts peers into a
//! call where everyone consumes everyone, and [`assert_exact_media`] checks that each
//! consumer delivered exactly what its producer sent.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use signaling_api::calls::ResumeConsumer;
use signaling_api::client::Client;
use signaling_api::media::{self, CodecParameters, Encoding, Rtcp, RtpParameters};
use signaling_api::{
    ConnectTransportArgs, ConsumeArgs, ConsumerArgs, ConsumerId, CreateTransportArgs, Direction,
    Joined, Kind, Notification, PeerId, ProduceArgs, ProducerId, TransportId,
};
use str0m::media::MediaKind;

use super::rtc::{tag, Arrivals, PayloadTypes, RtcTransport, VideoCodec};
use super::signaling::{self, join, notified, Expect};
pub use super::streams::assert_exact_media;

/// A producer this peer published, as the `produce` answer named it.
#[derive(Clone, Debug)]
pub struct Produced {
    /// Producer id.
    pub id: ProducerId,
    /// Audio or video.
    pub kind: Kind,
    /// The SSRC this peer sends it on (its lowest simulcast layer's).
    pub ssrc: u32,
    /// The SSRC of each simulcast layer, lowest first (just `ssrc` without simulcast).
    pub layers: Vec<u32>,
}

/// A consumer this peer opened.
#[derive(Clone, Debug)]
pub struct Consumed {
    /// Consumer id.
    pub id: ConsumerId,
    /// The producer it consumes.
    pub producer: ProducerId,
    /// Audio or video.
    pub kind: Kind,
    /// The SSRC the SFU sends it on.
    pub ssrc: u32,
    /// The MIME type of the codec it sends, as the `consume` answer said.
    pub mime: String,
}

/// The RTP header extension of audio levels (RFC 6464).
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// One participant of a call.
pub struct TestPeer {
    /// Its signaling connection.
    pub signaling: Client,
    /// Its peer id.
    pub peer_id: PeerId,
    /// Its display name.
    pub name: String,
    pub(super) pts: PayloadTypes,
    /// The codec it publishes video in.
    pub video: VideoCodec,
    /// The audio level its audio packets carry, when it declared the ssrc-audio-level
    /// extension ([`Joining::audio_levels`]); `None`: no level.
    pub audio_level: Option<i8>,
    /// Its send transport (the producers').
    pub send: RtcTransport,
    /// Its receive transport (the consumers').
    pub recv: RtcTransport,
    /// The send transport's id.
    pub send_id: TransportId,
    /// The receive transport's id.
    pub recv_id: TransportId,
    pub(super) seq: u64,
    /// Its producers: audio, then video.
    pub producers: Vec<Produced>,
    /// Its consumers, in the order they were opened.
    pub consumers: Vec<Consumed>,
    /// The join answer.
    pub joined: Joined,
    /// What it had before its media moved in a drain (`support::moving`).
    pub moved: Option<super::moving::Left>,
}

/// How test peers join: where, trusting what, with which token, asking for RTCP feedback
/// or not.
#[derive(Clone, Copy)]
pub struct Joining<'a> {
    url: &'a str,
    ca: Option<&'a str>,
    token: Option<&'a str>,
    feedback: bool,
    simulcast: bool,
    data: bool,
    video: VideoCodec,
    audio_levels: bool,
}

impl<'a> Joining<'a> {
    /// Joining the SFU at `url`.
    pub fn new(url: &'a str) -> Self {
        Joining {
            url,
            ca: None,
            token: None,
            feedback: false,
            simulcast: false,
            data: false,
            video: VideoCodec::Vp8,
            audio_levels: false,
        }
    }

    /// Declaring the ssrc-audio-level header extension (id 1) on audio: each peer's audio
    /// packets carry [`TestPeer::audio_level`] (silence, -127, at first).
    pub fn audio_levels(self) -> Self {
        Joining {
            audio_levels: true,
            ..self
        }
    }

    /// Publishing video in `codec` (VP8 by default).
    pub fn video(self, video: VideoCodec) -> Self {
        Joining { video, ..self }
    }

    /// Trusting `ca` (PEM) for `wss://`.
    pub fn ca(self, ca: Option<&'a str>) -> Self {
        Joining { ca, ..self }
    }

    /// With a join token.
    pub fn token(self, token: Option<&'a str>) -> Self {
        Joining { token, ..self }
    }

    /// Declaring NACK and PLI feedback for video (both directions).
    pub fn feedback(self) -> Self {
        Joining {
            feedback: true,
            ..self
        }
    }

    /// Publishing video in three simulcast layers, on `ssrc + 1` (lowest) to `ssrc + 3`.
    pub fn simulcast(self) -> Self {
        Joining {
            simulcast: true,
            ..self
        }
    }

    /// With data channels: both transports are asked for with `"data": true`.
    pub fn data(self) -> Self {
        Joining { data: true, ..self }
    }

    /// Joins `room` as `name`, opens both transports and publishes audio on `ssrc` and video
    /// on `ssrc + 1` (and up, in simulcast); consumes nothing.
    pub async fn peer(&self, room: &str, name: &str, ssrc: u32) -> TestPeer {
        let mut signaling = signaling::connect(self.url, self.ca).await;
        let mut args = join(room, name);
        args.token = self.token.map(str::to_string);
        let joined = signaling.ok(&args).await;
        let mut pts = PayloadTypes::from_router(&joined.router_rtp_capabilities);
        pts.feedback = self.feedback;
        let (send_id, send) = transport(&mut signaling, Direction::Send, pts, self.data).await;
        let (recv_id, recv) = transport(&mut signaling, Direction::Recv, pts, self.data).await;
        let layers: Vec<u32> = match self.simulcast {
            true => (ssrc + 1..ssrc + 4).collect(),
            false => vec![ssrc + 1],
        };
        let how = Publishing {
            name,
            pts,
            video: self.video,
            audio_levels: self.audio_levels,
            audio: ssrc,
            layers,
        };
        let producers = publish(&mut signaling, &send, send_id, &how).await;
        TestPeer {
            signaling,
            peer_id: joined.peer_id,
            name: name.into(),
            pts,
            video: self.video,
            audio_level: self.audio_levels.then_some(-127),
            send,
            recv,
            send_id,
            recv_id,
            seq: 0,
            producers,
            consumers: Vec::new(),
            joined,
            moved: None,
        }
    }

    /// Joins `name` to the call of `others` in `room`: it consumes every producer its join
    /// answer lists (all of theirs), and each of them consumes its two producers as they are
    /// announced. No media is sent.
    pub async fn join_call(
        &self,
        room: &str,
        name: &str,
        ssrc: u32,
        others: &mut [&mut TestPeer],
    ) -> TestPeer {
        let mut peer = self.peer(room, name, ssrc).await;
        let listed: Vec<ProducerId> = peer
            .joined
            .peers
            .iter()
            .flat_map(|p| p.producers.iter().map(|p| p.producer_id))
            .collect();
        assert_eq!(
            listed.len(),
            2 * others.len(),
            "{name} is offered every producer of the room at once: {:?}",
            peer.joined
        );
        for producer in &listed {
            peer.consume(producer).await;
        }
        for other in others.iter_mut() {
            other.consume_announced(2).await;
        }
        peer
    }

    /// Two peers in `room`, each consuming the other: `names[0]` publishes on SSRCs
    /// `ssrc`, `ssrc + 1`, `names[1]` on `ssrc + 10`, `ssrc + 11`.
    pub async fn pair(&self, room: &str, names: [&str; 2], ssrc: u32) -> (TestPeer, TestPeer) {
        let mut first = self.join_call(room, names[0], ssrc, &mut []).await;
        let second = self
            .join_call(room, names[1], ssrc + 10, &mut [&mut first])
            .await;
        (first, second)
    }
}

/// What a test peer publishes: its audio on `audio`, its video on `layers` (one, or three
/// simulcast layers, lowest first).
pub(super) struct Publishing<'a> {
    pub(super) name: &'a str,
    pub(super) pts: PayloadTypes,
    pub(super) video: VideoCodec,
    pub(super) audio_levels: bool,
    pub(super) audio: u32,
    pub(super) layers: Vec<u32>,
}

/// Declares the audio and video tracks of `how` on `send` and produces them on transport
/// `send_id`: audio, then video.
pub(super) async fn publish(
    signaling: &mut Client,
    send: &RtcTransport,
    send_id: TransportId,
    how: &Publishing<'_>,
) -> Vec<Produced> {
    let pts = how.pts;
    let mut producers = Vec::new();
    for (mid, kind, mime, pt, clock, layers) in [
        (
            "0",
            Kind::Audio,
            "audio/opus",
            pts.opus,
            48000,
            vec![how.audio],
        ),
        (
            "1",
            Kind::Video,
            how.video.mime(),
            pts.video(how.video),
            90000,
            how.layers.clone(),
        ),
    ] {
        let ssrc = layers[0];
        let rtcp_feedback = if kind == Kind::Audio {
            send.declare_send(mid, None, MediaKind::Audio, ssrc);
            Vec::new()
        } else {
            for (index, layer) in layers.iter().enumerate() {
                let rid = (layers.len() > 1).then(|| index.to_string());
                send.declare_send(mid, rid.as_deref(), MediaKind::Video, *layer);
            }
            pts.video_feedback()
        };
        let codec = CodecParameters {
            mime_type: mime.into(),
            payload_type: pt,
            clock_rate: clock,
            channels: (kind == Kind::Audio).then_some(2),
            parameters: match kind {
                Kind::Audio => Default::default(),
                Kind::Video => how.video.parameters(),
            },
            rtcp_feedback,
        };
        let rtp = RtpParameters {
            mid: mid.into(),
            codecs: vec![codec],
            header_extensions: if kind == Kind::Audio && how.audio_levels {
                vec![serde_json::json!({
                    "uri": AUDIO_LEVEL_URI,
                    "id": 1,
                    "encrypt": false,
                    "parameters": {},
                })]
            } else {
                Vec::new()
            },
            encodings: layers
                .iter()
                .map(|&ssrc| Encoding { ssrc, rtx: None })
                .collect(),
            rtcp: Rtcp {
                cname: how.name.into(),
                reduced_size: true,
            },
        };
        let produced = signaling
            .ok(&ProduceArgs {
                transport_id: send_id.to_string(),
                kind,
                rtp_parameters: media::object(&rtp),
                app_data: None,
            })
            .await;
        producers.push(Produced {
            id: produced.producer_id,
            kind,
            ssrc,
            layers,
        });
    }
    producers
}

pub(super) async fn transport(
    signaling: &mut Client,
    direction: Direction,
    pts: PayloadTypes,
    data: bool,
) -> (TransportId, RtcTransport) {
    let server = signaling.ok(&CreateTransportArgs { direction, data }).await;
    let id = server.transport_id;
    let rtc = RtcTransport::new(&server, pts).await;
    signaling
        .ok(&ConnectTransportArgs {
            transport_id: id.to_string(),
            dtls_parameters: media::object(&rtc.dtls_parameters),
        })
        .await;
    rtc.wait_connected().await;
    (id, rtc)
}

impl TestPeer {
    /// Joins `room` as `name`, opens both transports and publishes audio and video.
    pub async fn join(
        url: &str,
        ca: Option<&str>,
        room: &str,
        name: &str,
        ssrc_base: u32,
    ) -> TestPeer {
        Joining::new(url).ca(ca).peer(room, name, ssrc_base).await
    }

    /// The `consume` arguments of this peer for `producer` on its receive transport.
    pub fn consume_args(&self, producer: &ProducerId) -> ConsumeArgs {
        ConsumeArgs {
            transport_id: self.recv_id.to_string(),
            producer_id: producer.to_string(),
            rtp_capabilities: self.device_capabilities(),
        }
    }

    /// Consumes `producer` and resumes the consumer; its id.
    pub async fn consume(&mut self, producer: &ProducerId) -> ConsumerId {
        let args = self.consume_args(producer);
        let answer = self.signaling.ok(&args).await;
        assert_eq!(answer.producer_id, *producer, "{answer:?}");
        let params: RtpParameters =
            media::read(&answer.rtp_parameters).expect("the consumer's RTP parameters");
        let ssrc = params.encodings.first().expect("an encoding").ssrc;
        let mime = params.codecs.first().expect("a codec").mime_type.clone();
        let media = match answer.kind {
            Kind::Audio => MediaKind::Audio,
            Kind::Video => MediaKind::Video,
        };
        self.recv.expect_receive(&params.mid, media, ssrc);
        let consumer = answer.consumer_id;
        self.signaling
            .ok(&ResumeConsumer(ConsumerArgs {
                consumer_id: consumer.to_string(),
            }))
            .await;
        self.consumers.push(Consumed {
            id: consumer,
            producer: *producer,
            kind: answer.kind,
            ssrc,
            mime,
        });
        consumer
    }

    /// Consumes the producers announced by the next `count` `newProducer` notifications.
    pub async fn consume_announced(&mut self, count: usize) {
        for _ in 0..count {
            let producer = notified!(
                self.signaling,
                Notification::NewProducer { producer_id, .. } => producer_id
            );
            self.consume(&producer).await;
        }
    }

    /// The RTP capabilities this peer's device declares, as `consume` takes them.
    pub fn device_capabilities(&self) -> Map<String, Value> {
        media::object(&self.pts.device_capabilities())
    }

    /// Sends one audio and one video packet (a key frame of its video codec, so forwarding
    /// starts at once), each payload ending with its tag.
    pub fn send_media(&mut self) {
        self.seq += 1;
        let seq = self.seq;
        let (audio, video) = (&self.producers[0], &self.producers[1]);
        let mut opus = b"opus".to_vec();
        opus.extend_from_slice(&tag(audio.ssrc, seq));
        if let Some(old) = self.moved.as_ref().and_then(|m| m.send.as_ref()) {
            old.write(
                audio.ssrc,
                self.pts.opus,
                seq,
                (seq * 960) as u32,
                opus.clone(),
            );
        }
        self.send.write_with_level(
            audio.ssrc,
            self.pts.opus,
            seq,
            (seq * 960) as u32,
            opus,
            // A talker's level comes in bursts, as speech does (600 ms at its level, 400 ms
            // near silence): a constant level is noise to a speaker detector.
            self.audio_level.map(|level| {
                if seq % 50 < 30 {
                    level
                } else {
                    level.min(-100)
                }
            }),
        );
        for layer in &video.layers {
            let mut frame = self.video.key_frame();
            frame.extend_from_slice(&tag(*layer, seq));
            let pt = self.pts.video(self.video);
            // While moving, on the old transport too (the same packets).
            if let Some(old) = self.moved.as_ref().and_then(|m| m.send.as_ref()) {
                old.write(*layer, pt, seq, (seq * 3000) as u32, frame.clone());
            }
            self.send.write(*layer, pt, seq, (seq * 3000) as u32, frame);
        }
    }

    /// Packets sent per track so far (they are numbered 1 to this).
    pub fn sent(&self) -> u64 {
        self.seq
    }

    /// The receive transport goes silent for good (no consent checks, no RTCP), as a phone
    /// that lost its network; signaling stays.
    pub fn vanish_receive(&self) {
        self.recv.vanish();
    }

    /// Panics if anything went wrong on either media transport.
    pub fn assert_healthy(&self) {
        self.send
            .assert_healthy(&format!("{}'s send transport", self.name));
        self.recv
            .assert_healthy(&format!("{}'s receive transport", self.name));
    }

    /// What arrived through consumer `index` (in the order they were opened).
    pub fn arrivals(&self, index: usize) -> Arrivals {
        self.assert_healthy();
        self.recv.arrivals(self.consumers[index].ssrc)
    }

    /// When the first packet arrived through each consumer (`None`: none yet).
    pub fn first_packets(&self) -> Vec<Option<Instant>> {
        (0..self.consumers.len())
            .map(|i| self.arrivals(i).first_at)
            .collect()
    }

    /// The index of this peer's consumer of `producer`.
    pub fn consumer_of(&self, producer: &ProducerId) -> usize {
        self.consumers
            .iter()
            .position(|c| c.producer == *producer)
            .unwrap_or_else(|| panic!("{} does not consume {producer}", self.name))
    }

    /// Sends a PLI for the stream of consumer `index`.
    pub fn request_keyframe(&self, index: usize) {
        self.recv.request_keyframe(self.consumers[index].ssrc);
    }

    /// Loses the `nth` packet arriving through consumer `index`, as a lossy network would.
    pub fn lose_incoming(&self, index: usize, nth: u64) {
        self.recv.drop_incoming(self.consumers[index].ssrc, nth);
    }

    /// Key frame requests the SFU sent for this peer's producers.
    pub fn keyframe_requests(&self) -> u64 {
        self.send.keyframe_requests()
    }
}

/// The RTP parameters of an Opus track on `mid` sent on `ssrc` with payload type `pt`.
pub fn opus_parameters(mid: &str, pt: u8, ssrc: u32, cname: &str) -> RtpParameters {
    RtpParameters {
        mid: mid.into(),
        codecs: vec![CodecParameters {
            mime_type: "audio/opus".into(),
            payload_type: pt,
            clock_rate: 48000,
            channels: Some(2),
            parameters: Default::default(),
            rtcp_feedback: Vec::new(),
        }],
        header_extensions: Vec::new(),
        encodings: vec![Encoding { ssrc, rtx: None }],
        rtcp: Rtcp {
            cname: cname.into(),
            reduced_size: true,
        },
    }
}

/// Sends media from every peer for `duration`, 50 packets per second per track.
pub async fn exchange_media(peers: &mut [&mut TestPeer], duration: Duration) {
    let ticks = duration.as_millis() / 20;
    for _ in 0..ticks {
        for peer in peers.iter_mut() {
            peer.send_media();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
