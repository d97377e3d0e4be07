//! WHIP and WHEP: GStreamer's webrtcbin (a WebRTC stack we did not write,
//! tests/whip/gst_whip.py) publishes into a room over plain HTTP and over TLS, and a str0m
//! peer of the room receives it; a str0m WHEP player watches it; bad input gets a clear
//! status and leaves nobody behind.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::support::peer::TestPeer;
use crate::support::signaling::notified;
use crate::support::{monitor_query, Sfu, TestCert};
use signaling_api::Notification;

const TOKEN: &str = "whip-monitor-token-whip-monitor-token";

/// This machine's first global IPv4 address. libnice (GStreamer's ICE) gathers no loopback
/// candidates, so the SFU's media listens and is announced there for these tests; the
/// packets still never leave the machine.
fn host_ip() -> String {
    let output = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("ip addr");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .expect("a global IPv4 address for GStreamer's ICE (libnice skips loopback)")
}

/// An SFU whose media libnice reaches (on [`host_ip`]), with `extra` arguments; over TLS
/// with `cert`.
pub(crate) fn start_for_libnice(extra: &[&str], cert: Option<&TestCert>) -> Sfu {
    let ip = host_ip();
    let mut args = vec!["--rtc-ip", ip.as_str(), "--public-ip", ip.as_str()];
    args.extend_from_slice(extra);
    match cert {
        Some(cert) => Sfu::start_tls(cert, &args),
        None => Sfu::start(&args),
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/whip/gst_whip.py")
}

/// The GStreamer WHIP publisher, publishing to `url` for `seconds`.
pub(crate) fn publisher(url: &str, seconds: u32, ca: Option<&PathBuf>) -> tokio::process::Child {
    let mut command = tokio::process::Command::new("/usr/bin/python3");
    command
        .arg(script())
        .arg(url)
        .args(["--seconds", &seconds.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ca) = ca {
        command.arg("--cafile").arg(ca);
    }
    command
        .spawn()
        .expect("GStreamer's WHIP client (scripts/setup.sh --tests installs it)")
}

/// The publisher's output once it ended; fails the test if it did not succeed.
pub(crate) async fn finished(child: tokio::process::Child) -> String {
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the WHIP client ends")
        .expect("the WHIP client's output");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the WHIP client failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port`: status, headers (lower-case names) and
/// body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `room`'s participants as the monitor shows them: display name (with how it came, for a
/// WHIP or WHEP session) and how many producers.
fn participants(sfu: &Sfu, cert: &TestCert, room: &str) -> Vec<(String, usize)> {
    let detail = monitor_query(sfu, cert, TOKEN, &["room", room]);
    detail["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut name = p["displayName"].as_str().unwrap_or_default().to_string();
            if let Some(client) = p["client"].as_str() {
                name = format!("{name} [{client}]");
            }
            let producers = p["producers"].as_array().map_or(0, Vec::len);
            (name, producers)
        })
        .collect()
}

async fn wait_participants(
    sfu: &Sfu,
    cert: &TestCert,
    room: &str,
    what: impl Fn(&[(String, usize)]) -> bool,
) -> Vec<(String, usize)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = participants(sfu, cert, room);
        if what(&now) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The peers that left, told to `peer` in the next `peersChanged` that has any.
pub(crate) async fn someone_left(peer: &mut TestPeer) -> Vec<signaling_api::PeerId> {
    loop {
        let left = notified!(peer.signaling, Notification::PeersChanged { left, .. } => left);
        if !left.is_empty() {
            return left;
        }
    }
}

/// A room peer consumes the WHIP publisher's two producers and receives packets of both.
async fn received_by_a_peer(
    ws: &str,
    ca: Option<&str>,
    room: &str,
    url: &str,
    tls_ca: Option<&PathBuf>,
    sfu: &Sfu,
    cert: &TestCert,
) {
    let mut viewer = TestPeer::join(ws, ca, room, "Viewer", 7000).await;
    let child = publisher(url, 8, tls_ca);
    viewer.consume_announced(2).await;
    let whip = wait_participants(sfu, cert, room, |p| {
        p.iter()
            .any(|(n, c)| n == "WHIP publisher [whip]" && *c == 2)
    })
    .await;
    assert!(
        whip.iter()
            .any(|(n, c)| n == "WHIP publisher [whip]" && *c == 2),
        "the monitor shows the WHIP publisher with its two producers: {whip:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let counts = loop {
        let counts = (viewer.arrivals(0).count(), viewer.arrivals(1).count());
        if (counts.0 > 100 && counts.1 > 100) || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("{url}: the room peer received {counts:?} packets of the WHIP publisher's two tracks");
    assert!(
        counts.0 > 100 && counts.1 > 100,
        "packets of both tracks arrive: {counts:?}"
    );
    let output = finished(child).await;
    assert!(output.contains("delete 200"), "{output}");
    let left = someone_left(&mut viewer).await;
    assert_eq!(left.len(), 1, "the WHIP publisher left at its DELETE");
    let after = participants(sfu, cert, room);
    assert_eq!(
        after,
        [("Viewer".to_string(), 2)],
        "nothing of the session is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gstreamer_whip_publisher_reaches_the_room_over_http_and_over_tls() {
    let cert = TestCert::new("whip");
    let plain = start_for_libnice(&["--monitor-token", TOKEN], None);
    let tls = start_for_libnice(&["--monitor-token", TOKEN], Some(&cert));
    let room = format!("whip-{}", std::process::id());
    // The monitor speaks TLS only: the plain supervisor's room is checked by its peer alone.
    let url = format!("http://127.0.0.1:{}/whip/{room}", plain.port);
    let mut viewer = TestPeer::join(&plain.ws_url(), None, &room, "Viewer", 7000).await;
    let child = publisher(&url, 6, None);
    viewer.consume_announced(2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = (viewer.arrivals(0).count(), viewer.arrivals(1).count());
    println!("plain HTTP: the room peer received {counts:?} packets");
    assert!(
        counts.0 > 50 && counts.1 > 50,
        "packets of both tracks: {counts:?}"
    );
    let output = finished(child).await;
    assert!(
        output.contains("status 201") && output.contains("delete 200"),
        "{output}"
    );
    drop(viewer);

    let ca = cert.dir.join("cert.pem");
    let url = format!("https://127.0.0.1:{}/whip/{room}", tls.port);
    received_by_a_peer(
        &tls.ws_url(),
        Some(&cert.cert_pem),
        &room,
        &url,
        Some(&ca),
        &tls,
        &cert,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_receives_a_whip_publisher_plays_it_with_whep_and_publishes_simulcast_with_whip() {
    crate::browser::check_prerequisites();
    let sfu = start_for_libnice(&[], None);
    let room = format!("whip-browser-{}", std::process::id());
    let base = format!("http://127.0.0.1:{}", sfu.port);
    let child = publisher(&format!("{base}/whip/{room}"), 50, None);
    let output = tokio::task::spawn_blocking(move || {
        crate::browser::run_browser_script(
            "whip.mjs",
            &base,
            &[("SFU_ROOM", room.as_str())],
            Duration::from_secs(120),
        )
    })
    .await
    .expect("the browser script");
    println!("{output}");
    assert!(
        output.contains("demo page: WHIP publisher decoded"),
        "{output}"
    );
    assert!(output.contains("DELETE 200, again 404"), "{output}");
    assert!(output.contains("Chromium WHIP simulcast"), "{output}");
    assert!(
        output.contains("WHEP player of the simulcast publisher"),
        "{output}"
    );
    drop(child);
}

/// A str0m WHEP player: offers to receive audio and video, then counts the frames of each
/// for `seconds`. Returns (audio frames, video frames, the session's URL).
fn whep_player(port: u16, path: &str, seconds: u64) -> (u64, u64, String, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = socket.local_addr().expect("address");
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().expect("an offer");
    let (status, headers, body) = http(
        port,
        "POST",
        path,
        &[("Content-Type", "application/sdp")],
        &offer.to_sdp_string(),
    );
    assert_eq!(status, 201, "WHEP POST: {body}");
    let location = header(&headers, "location").expect("Location").to_string();
    let etag = header(&headers, "etag").expect("ETag").to_string();
    let answer = SdpAnswer::from_sdp_string(&body).expect("the answer is SDP");
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .expect("str0m takes the answer");
    let (mut audio, mut video) = (0, 0);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut buf = vec![0u8; 2000];
    while Instant::now() < end {
        let timeout = match rtc.poll_output().expect("str0m") {
            Output::Timeout(at) => at,
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination);
                continue;
            }
            Output::Event(event) => {
                match event {
                    Event::MediaData(data) if data.params.spec().codec.is_audio() => audio += 1,
                    Event::MediaData(_) => video += 1,
                    Event::IceConnectionStateChange(state) => {
                        println!("WHEP player: ICE {state:?}")
                    }
                    Event::Connected => println!("WHEP player: connected"),
                    _ => {}
                }
                continue;
            }
        };
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        socket.set_read_timeout(Some(wait)).expect("timeout");
        match socket.recv_from(&mut buf) {
            Ok((n, source)) => {
                let Ok(contents) = buf[..n].try_into() else {
                    continue;
                };
                let input = Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: local,
                        contents,
                    },
                );
                rtc.handle_input(input).expect("str0m input");
            }
            Err(_) => rtc
                .handle_input(Input::Timeout(Instant::now()))
                .expect("str0m timeout"),
        }
    }
    (audio, video, location, etag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_player_watches_the_whip_publisher_restarts_ice_with_its_etag_and_delete_ends_it() {
    let plain = start_for_libnice(&[], None);
    let room = format!("whep-{}", std::process::id());
    let child = publisher(
        &format!("http://127.0.0.1:{}/whip/{room}", plain.port),
        12,
        None,
    );
    // The player comes once the publisher is in.
    let mut watcher = TestPeer::join(&plain.ws_url(), None, &room, "Watcher", 8000).await;
    watcher.consume_announced(2).await;
    // The watcher publishes too (silently): the player asks for the WHIP publisher by id.
    let publisher_id = watcher
        .signaling
        .seen()
        .iter()
        .find_map(|n| match n {
            Notification::NewProducer { peer_id, .. } => Some(*peer_id),
            _ => None,
        })
        .expect("the WHIP publisher's producers were announced");
    let port = plain.port;
    let path = format!("/whep/{room}?peer={publisher_id}");
    let (audio, video, location, etag) =
        tokio::task::spawn_blocking(move || whep_player(port, &path, 4))
            .await
            .expect("the player");
    println!("the WHEP player assembled {audio} audio and {video} video frames");
    assert!(audio > 50, "Opus frames: {audio}");
    assert!(video > 30, "VP8 frames: {video}");
    let (location_room, id) = location.split_once('/').expect("Location is `{room}/{id}`");
    assert_eq!(location_room, room, "Location is relative to the endpoint");
    let session = format!("/whep/{room}/{id}");
    let frag = [("Content-Type", "application/trickle-ice-sdpfrag")];
    let restart = "a=ice-ufrag:newu\r\na=ice-pwd:newpasswordnewpassword1\r\n";
    let (status, _, text) = http(port, "PATCH", &session, &frag, restart);
    assert_eq!(status, 428, "a PATCH without If-Match: {text}");
    let wrong = [frag[0], ("If-Match", "\"not-the-etag\"")];
    let (status, _, text) = http(port, "PATCH", &session, &wrong, restart);
    assert_eq!(status, 412, "a PATCH with a wrong ETag: {text}");
    let right = [frag[0], ("If-Match", etag.as_str())];
    // Candidates alone: trickle, which the ICE-lite SFU takes and needs not.
    let trickle = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n";
    let (status, _, text) = http(port, "PATCH", &session, &right, trickle);
    assert_eq!(status, 204, "trickled candidates: {text}");
    let (status, headers, text) = http(port, "PATCH", &session, &right, restart);
    assert_eq!(status, 200, "an ICE restart: {text}");
    let new_etag = header(&headers, "etag").expect("a new ETag").to_string();
    assert_ne!(new_etag, etag, "an ICE restart changes the ETag");
    assert!(
        text.contains("a=ice-ufrag:") && text.contains("a=candidate:"),
        "the SFU's new credentials and candidates: {text}"
    );
    let (status, _, _) = http(port, "PATCH", &session, &right, restart);
    assert_eq!(status, 412, "the old ETag no longer matches");
    let (status, _, text) = http(port, "DELETE", &session, &[], "");
    assert_eq!(status, 200, "DELETE ends the session: {text}");
    let left = someone_left(&mut watcher).await;
    assert_eq!(
        left.len(),
        1,
        "the WHEP viewer left at its DELETE: {left:?}"
    );
    let (status, _, _) = http(port, "DELETE", &session, &[], "");
    assert_eq!(status, 404, "a session ended is unknown");
    finished(child).await;
}
