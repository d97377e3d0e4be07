//! A test participant: signaling plus a send and a receive transport, publishing one audio
//! and one video track and consuming what the others publish.

use std::time::Duration;

use serde_json::{json, Value};
use str0m::media::MediaKind;

use super::rtc::{PayloadTypes, RtcTransport};
use super::Signaling;

/// One participant of a call.
pub struct TestPeer {
    /// Its signaling connection.
    pub signaling: Signaling,
    /// Its peer id.
    pub peer_id: String,
    pts: PayloadTypes,
    send: RtcTransport,
    recv: RtcTransport,
    recv_id: String,
    audio_ssrc: u32,
    video_ssrc: u32,
    seq: u64,
    /// Consumers: (consumer id, producer id, kind, ssrc).
    pub consumers: Vec<(String, String, String, u32)>,
    /// The join answer.
    pub joined: Value,
}

async fn transport(
    signaling: &mut Signaling,
    direction: &str,
    pts: PayloadTypes,
) -> (String, RtcTransport) {
    let server = signaling
        .ok("createWebRtcTransport", json!({"direction": direction}))
        .await;
    let id = server["transportId"]
        .as_str()
        .expect("transportId")
        .to_string();
    let rtc = RtcTransport::new(&server, pts).await;
    signaling
        .ok(
            "connectWebRtcTransport",
            json!({"transportId": id, "dtlsParameters": rtc.dtls_parameters}),
        )
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
        Self::join_with_token(url, ca, room, name, ssrc_base, None).await
    }

    /// [`TestPeer::join`] with a join token.
    pub async fn join_with_token(
        url: &str,
        ca: Option<&str>,
        room: &str,
        name: &str,
        ssrc_base: u32,
        token: Option<&str>,
    ) -> TestPeer {
        let mut signaling = Signaling::connect(url, ca).await;
        let mut join = json!({"room": room, "displayName": name});
        if let Some(token) = token {
            join["token"] = json!(token);
        }
        let joined = signaling.ok("join", join).await;
        let peer_id = joined["peerId"].as_str().expect("peerId").to_string();
        let pts = PayloadTypes::from_router(&joined["routerRtpCapabilities"]);
        let (send_id, send) = transport(&mut signaling, "send", pts).await;
        let (recv_id, recv) = transport(&mut signaling, "recv", pts).await;
        let (audio_ssrc, video_ssrc) = (ssrc_base, ssrc_base + 1);
        send.declare_send("0", MediaKind::Audio, audio_ssrc);
        send.declare_send("1", MediaKind::Video, video_ssrc);
        for (mid, kind, mime, pt, clock, ssrc) in [
            ("0", "audio", "audio/opus", pts.opus, 48000, audio_ssrc),
            ("1", "video", "video/VP8", pts.vp8, 90000, video_ssrc),
        ] {
            let mut codec = json!({"mimeType": mime, "payloadType": pt, "clockRate": clock, "parameters": {}, "rtcpFeedback": []});
            if kind == "audio" {
                codec["channels"] = json!(2);
            }
            signaling
                .ok(
                    "produce",
                    json!({"transportId": send_id, "kind": kind, "rtpParameters": {
                        "mid": mid, "codecs": [codec], "headerExtensions": [],
                        "encodings": [{"ssrc": ssrc}], "rtcp": {"cname": name, "reducedSize": true},
                    }}),
                )
                .await;
        }
        TestPeer {
            signaling,
            peer_id,
            pts,
            send,
            recv,
            recv_id,
            audio_ssrc,
            video_ssrc,
            seq: 0,
            consumers: Vec::new(),
            joined,
        }
    }

    /// Consumes `producer` and resumes the consumer.
    pub async fn consume(&mut self, producer: &str) {
        let answer = self
            .signaling
            .ok(
                "consume",
                json!({"transportId": self.recv_id, "producerId": producer, "rtpCapabilities": self.pts.device_capabilities()}),
            )
            .await;
        let kind = answer["kind"].as_str().expect("kind").to_string();
        let params = &answer["rtpParameters"];
        let ssrc = params["encodings"][0]["ssrc"].as_u64().expect("ssrc") as u32;
        let mid = params["mid"].as_str().expect("mid");
        let media = if kind == "audio" {
            MediaKind::Audio
        } else {
            MediaKind::Video
        };
        self.recv.expect_receive(mid, media, ssrc);
        let consumer = answer["consumerId"]
            .as_str()
            .expect("consumerId")
            .to_string();
        self.signaling
            .ok("resumeConsumer", json!({"consumerId": consumer}))
            .await;
        self.consumers
            .push((consumer, producer.to_string(), kind, ssrc));
    }

    /// Consumes the producers announced by the next `count` `newProducer` notifications.
    pub async fn consume_announced(&mut self, count: usize) {
        for _ in 0..count {
            let announced = self.signaling.notification("newProducer").await;
            let producer = announced["producerId"]
                .as_str()
                .expect("producerId")
                .to_string();
            self.consume(&producer).await;
        }
    }

    /// Sends one audio and one video packet (a VP8 key frame, so forwarding starts at once).
    pub fn send_media(&mut self) {
        self.seq += 1;
        let seq = self.seq;
        let mut opus = b"opus".to_vec();
        opus.extend_from_slice(&seq.to_be_bytes());
        self.send.write(
            self.audio_ssrc,
            self.pts.opus,
            seq,
            (seq * 960) as u32,
            opus,
        );
        let vp8 = vec![
            0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0, 0, 0,
        ];
        self.send
            .write(self.video_ssrc, self.pts.vp8, seq, (seq * 3000) as u32, vp8);
    }

    /// The receive transport goes silent for good (no consent checks, no RTCP), as a phone
    /// that lost its network; signaling stays.
    pub fn vanish_receive(&self) {
        self.recv.vanish();
    }

    /// When the first packet arrived through each consumer (`None`: none yet).
    pub fn first_packets(&self) -> Vec<Option<std::time::Instant>> {
        self.consumers
            .iter()
            .map(|(_, _, _, ssrc)| self.recv.first_packet_at(*ssrc))
            .collect()
    }

    /// RTP packets received through each consumer: (kind, count).
    pub fn received(&self) -> Vec<(String, u64)> {
        self.consumers
            .iter()
            .map(|(_, _, kind, ssrc)| (kind.clone(), self.recv.received(*ssrc)))
            .collect()
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
