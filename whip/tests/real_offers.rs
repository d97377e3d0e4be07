//! Offers real clients sent (captured from GStreamer's webrtcbin 1.22 and Chromium 156 by the
//! WHIP tests, tests/whip/gst_whip.py and tests/browser/whip.mjs), read against the router
//! capabilities a room's router really has (captured from a `join` answer).

use signaling_api::media::{read, RtpCapabilities};
use signaling_api::Kind;
use whip::{answer, AnswerMedia, Candidate, Fragment, Offer, Refusal, ServerTransport};

const GSTREAMER: &str = include_str!("fixtures/gstreamer-webrtcbin-1.22.sdp");
const CHROMIUM_SIMULCAST: &str = include_str!("fixtures/chromium-156-whip-simulcast.sdp");
const CHROMIUM_WHEP: &str = include_str!("fixtures/chromium-156-whep.sdp");
const ROUTER: &str = include_str!("fixtures/router-capabilities.json");

fn router() -> RtpCapabilities {
    read(&serde_json::from_str(ROUTER).expect("JSON")).expect("router capabilities")
}

fn server() -> ServerTransport {
    ServerTransport {
        ice: serde_json::from_value(serde_json::json!({
            "usernameFragment": "sfuufrag", "password": "sfupassword"
        }))
        .expect("ICE"),
        candidates: vec![Candidate {
            foundation: "udpcandidate".into(),
            priority: 1076302079,
            address: "192.0.2.2".into(),
            protocol: "udp".into(),
            port: 40000,
            tcp_type: None,
        }],
        dtls: serde_json::from_value(serde_json::json!({
            "role": "auto",
            "fingerprints": [{"algorithm": "sha-256", "value": "AA:BB"}]
        }))
        .expect("DTLS"),
    }
}

/// The answer of the SFU receiving every section `publish` produces.
fn receiving(offer: &Offer, publish: whip::Publish) -> String {
    let media: Vec<AnswerMedia> = publish
        .media
        .into_iter()
        .map(|m| AnswerMedia::Receive(m.expect("produced")))
        .collect();
    answer(offer, &server(), &media).expect("an answer")
}

#[test]
fn gstreamer_publishes_vp8_and_opus_with_its_ssrcs_and_gets_an_answer_it_can_read() {
    let offer = Offer::read(GSTREAMER).expect("GStreamer's offer reads");
    assert_eq!(
        offer.dtls.role.as_deref(),
        Some("client"),
        "actpass: the SFU is DTLS server"
    );
    assert_eq!(offer.media.len(), 2);
    assert!(
        !offer.media[1].rejected,
        "a bundle-only section (port 0) is not a rejected one"
    );
    let publish = offer.publish(&router()).expect("something to publish");
    let produced: Vec<_> = publish
        .media
        .iter()
        .map(|m| m.as_ref().expect("both sections produce"))
        .collect();
    assert_eq!(produced[0].kind, Kind::Video);
    assert_eq!(produced[0].codecs[0].mime_type, "video/VP8");
    assert_eq!(
        produced[0].codecs[0].payload_type, 96,
        "the client's own number"
    );
    let feedback: Vec<String> = produced[0].codecs[0]
        .feedback
        .iter()
        .map(|f| format!("{} {}", f.kind, f.parameter))
        .collect();
    assert_eq!(feedback, ["nack pli", "ccm fir", "transport-cc "]);
    let rtp = &produced[0].rtp_parameters;
    assert_eq!(
        rtp["encodings"][0]["ssrc"],
        offer.media[0].ssrc.expect("an SSRC"),
        "the stream is told apart by its SSRC"
    );
    assert_eq!(produced[1].kind, Kind::Audio);
    assert_eq!(produced[1].codecs[0].mime_type, "audio/OPUS");
    assert_eq!(rtp["rtcp"]["cname"], offer.media[0].cname.clone().unwrap());

    let text = receiving(&offer, publish);
    for line in [
        "a=ice-lite",
        "a=group:BUNDLE video0 audio1",
        "a=setup:passive",
        "a=recvonly",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:111 OPUS/48000/2",
        "a=candidate:udpcandidate 1 udp 1076302079 192.0.2.2 40000 typ host",
        "a=fingerprint:sha-256 AA:BB",
    ] {
        assert!(text.contains(line), "the answer has `{line}`:\n{text}");
    }
    // It reads back as SDP, with the SFU's credentials.
    let back = Offer::read(&text).expect("the answer is SDP");
    assert_eq!(back.ice_ufrag, "sfuufrag");
    assert_eq!(back.media.len(), 2);
}

#[test]
fn chromium_simulcast_becomes_three_rid_encodings_lowest_first() {
    let offer = Offer::read(CHROMIUM_SIMULCAST).expect("Chromium's offer reads");
    let publish = offer.publish(&router()).expect("something to publish");
    let video = publish.media[1].as_ref().expect("the video produces");
    assert_eq!(video.rids, ["q", "h", "f"]);
    let encodings = video.rtp_parameters["encodings"]
        .as_array()
        .expect("encodings");
    let rids: Vec<&str> = encodings.iter().filter_map(|e| e["rid"].as_str()).collect();
    assert_eq!(rids, ["q", "h", "f"]);
    let uris: Vec<&str> = video.extensions.iter().map(|e| e.uri.as_str()).collect();
    assert!(
        uris.contains(&"urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
        "{uris:?}"
    );
    assert_eq!(video.codecs[0].payload_type, 96, "VP8, Chromium's first");
    assert_eq!(video.codecs[1].mime_type, "video/rtx");
    let text = receiving(&offer, publish);
    assert!(text.contains("a=simulcast:recv q;h;f"), "{text}");
    assert!(text.contains("a=rid:h recv"), "{text}");
    assert!(text.contains("a=extmap-allow-mixed"), "echoed: {text}");
}

#[test]
fn chromium_as_a_whep_player_gets_only_codecs_it_numbers_as_the_router_does() {
    let offer = Offer::read(CHROMIUM_WHEP).expect("Chromium's offer reads");
    let watch = offer.watch(&router()).expect("something to receive");
    assert_eq!(watch.media, [Some(Kind::Audio), Some(Kind::Video)]);
    let codecs: Vec<(&str, u8)> = watch
        .capabilities
        .codecs
        .iter()
        .map(|c| (c.mime_type.as_str(), c.preferred_payload_type.unwrap_or(0)))
        .collect();
    assert!(codecs.contains(&("audio/opus", 111)), "{codecs:?}");
    assert!(codecs.contains(&("video/VP8", 96)), "{codecs:?}");
    assert!(codecs.contains(&("video/H264", 108)), "{codecs:?}");
    assert!(
        !codecs.iter().any(|(m, _)| *m == "video/VP9"),
        "Chromium's VP9 profile 2 is 100, the router's VP8 RTX: {codecs:?}"
    );
    assert!(
        !codecs.iter().any(|(m, pt)| *m == "video/rtx" && *pt == 97),
        "Chromium's RTX 97 is not the router's: {codecs:?}"
    );
    let uris: Vec<&str> = watch
        .capabilities
        .header_extensions
        .iter()
        .filter_map(|e| e["uri"].as_str())
        .collect();
    assert!(
        !uris.contains(&"urn:ietf:params:rtp-hdrext:sdes:mid"),
        "mediasoup numbers its own mids: {uris:?}"
    );
}

#[test]
fn a_publisher_sending_only_codecs_the_sfu_does_not_forward_is_refused_406_saying_which() {
    let offer = GSTREAMER
        .replace("VP8/90000", "AV1/90000")
        .replace("OPUS/48000/2", "PCMU/8000");
    let refusal = Offer::read(&offer)
        .expect("reads")
        .publish(&router())
        .expect_err("nothing to forward");
    assert_eq!(refusal.status(), 406);
    let text = refusal.to_string();
    assert!(
        text.contains("video/AV1") && text.contains("video/VP8"),
        "{text}"
    );
}

#[test]
fn an_h264_publisher_is_taken_only_in_the_routers_profile_and_packetization() {
    let h264 = |profile: &str, mode: u8| {
        GSTREAMER.replace("a=rtpmap:96 VP8/90000", &format!("a=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id={profile};packetization-mode={mode}"))
    };
    let takes = |text: String| {
        Offer::read(&text)
            .expect("reads")
            .publish(&router())
            .expect("audio at least")
            .media[0]
            .is_ok()
    };
    assert!(takes(h264("42e01f", 1)), "constrained baseline, mode 1");
    assert!(
        takes(h264("42e034", 1)),
        "another level of the same profile"
    );
    assert!(!takes(h264("42e01f", 0)), "packetization mode 0");
    assert!(!takes(h264("640c1f", 1)), "constrained high");
}

#[test]
fn not_sdp_and_incomplete_offers_are_refused_400_and_media_less_ones_422() {
    let refused = |text: &str| {
        Offer::read(text)
            .and_then(|o| o.publish(&router()))
            .expect_err("refused")
    };
    assert!(matches!(refused("hello"), Refusal::NotSdp(_)));
    assert_eq!(refused("hello").status(), 400);
    let no_fingerprint: String = GSTREAMER
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert!(refused(&no_fingerprint).to_string().contains("fingerprint"));
    let inactive = GSTREAMER.replace("a=sendrecv", "a=recvonly");
    assert_eq!(refused(&inactive).status(), 422, "nothing it sends");
}

#[test]
fn a_patch_restarts_ice_only_with_new_credentials_and_needs_both() {
    let trickle = Fragment::read("a=ice-ufrag:old\r\na=ice-pwd:pw\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 1 192.0.2.9 5000 typ host\r\n").expect("reads");
    assert_eq!(trickle.candidates, 1);
    assert!(!trickle.restarts("old"), "the same credentials: trickle");
    assert!(trickle.restarts("other"), "new credentials: a restart");
    let half = Fragment::read("a=ice-ufrag:new\r\n").expect_err("a restart needs both");
    assert_eq!(half.status(), 400);
    assert!(Fragment::read("not sdp").is_err());
    let text = whip::restart_fragment(&server(), "video", "video0");
    assert!(
        text.contains("a=ice-ufrag:sfuufrag") && text.contains("a=mid:video0"),
        "{text}"
    );
}
