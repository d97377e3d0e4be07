//! A participant of Janus' VideoRoom, for the side-by-side comparison: one Janus session per
//! participant; a publisher handle that joins (and, for publishers, sends an SDP offer with
//! `configure`); one subscriber handle and PeerConnection per remote feed, answering Janus'
//! offer and `start`ing it. Same synthetic media and checks as against our SFU.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::Rtc;
use tokio::net::UdpSocket;
use tokio::sync::{watch, Mutex};

use crate::janus_api::{
    FeedRef, JanusFailure, JanusMessage, JanusSession, JoinRole, Jsep, PublisherInfo,
    VideoRoomRequest,
};
use crate::media::{publisher_tag, Kind};
use crate::participant::{self, failed, Failed, Record};
use crate::transport::{sdp_payload_types, sdp_rtc, RecvTrack, Transport};

/// ICE and DTLS must be up within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Publishers a room admits (Janus' default is 3).
const ROOM_PUBLISHERS: u32 = 1000;

/// A Janus server with the run's rooms created.
pub struct JanusTarget {
    url: String,
    tls: Arc<rustls::ClientConfig>,
    local_ip: IpAddr,
    rooms: HashMap<String, u64>,
    admin: Mutex<Option<(JanusSession, u64)>>,
}

/// Janus rooms are numbered: a stable number per room name.
pub fn room_number(name: &str) -> u64 {
    u64::from(publisher_tag(name)) + 1
}

impl JanusTarget {
    /// Connects and creates `rooms` (replacing leftovers of an earlier run).
    pub async fn prepare(
        url: &str,
        tls: Arc<rustls::ClientConfig>,
        local_ip: IpAddr,
        rooms: &[String],
        recording: Option<Option<String>>,
    ) -> anyhow::Result<JanusTarget> {
        let mut session = JanusSession::open(url, &tls).await.map_err(|e| {
            anyhow::anyhow!("{e} (is Janus running with its WebSocket transport at {url}?)")
        })?;
        let handle = session.attach().await?;
        let mut numbers = HashMap::new();
        for name in rooms {
            let room = room_number(name);
            // Janus' 426 "no such room" is fine here.
            let _ = session
                .message(handle, VideoRoomRequest::Destroy { room }, None)
                .await;
            session
                .message(
                    handle,
                    VideoRoomRequest::Create {
                        room,
                        description: name.clone(),
                        publishers: ROOM_PUBLISHERS,
                        audiocodec: "opus",
                        videocodec: "vp8",
                        permanent: false,
                        is_private: false,
                        record: recording.is_some(),
                        rec_dir: recording.clone().flatten(),
                    },
                    None,
                )
                .await
                .map_err(|e| anyhow::anyhow!("creating Janus room {room} for {name}: {e}"))?;
            numbers.insert(name.clone(), room);
        }
        Ok(JanusTarget {
            url: url.into(),
            tls,
            local_ip,
            rooms: numbers,
            admin: Mutex::new(Some((session, handle))),
        })
    }

    /// Destroys the rooms and the admin session.
    pub async fn finish(&self) {
        if let Some((mut session, handle)) = self.admin.lock().await.take() {
            for &room in self.rooms.values() {
                let _ = session
                    .message(handle, VideoRoomRequest::Destroy { room }, None)
                    .await;
            }
            session.destroy().await;
        }
    }
}

impl From<JanusFailure> for Failed {
    fn from(e: JanusFailure) -> Self {
        Failed {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// Runs one participant until `stop` turns true; what happens is written to `record`.
pub async fn run(target: Arc<JanusTarget>, record: Arc<Record>, stop: watch::Receiver<bool>) {
    let mut session = match JanusSession::open(&target.url, &target.tls).await {
        Ok(session) => session,
        Err(e) => return record.fail(e.into()),
    };
    if let Err(e) = participate(&target, &record, &mut session, stop).await {
        record.fail(e);
    }
    session.destroy().await;
}

/// A subscription to one remote feed.
struct Subscription {
    transport: Transport,
    mids: Vec<String>,
}

async fn participate(
    target: &JanusTarget,
    record: &Record,
    session: &mut JanusSession,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Failed> {
    let plan = &record.plan;
    let room = *target
        .rooms
        .get(&plan.room)
        .ok_or_else(|| failed("internal", format!("room {} was not created", plan.room)))?;
    let publisher_handle = session.attach().await?;
    let joined = session
        .message(
            publisher_handle,
            VideoRoomRequest::Join {
                room,
                role: JoinRole::Publisher {
                    display: plan.name.clone(),
                },
            },
            None,
        )
        .await?;
    record.joined();
    let joined = joined
        .videoroom_event()
        .ok_or_else(|| failed("malformed", "join answered without VideoRoom data"))?;
    // Janus makes no PeerConnection without media: an idle participant is a joined handle.
    let _publishing = if !plan.kinds().is_empty() {
        Some(publish(target, record, session, publisher_handle).await?)
    } else {
        None
    };
    let mut subscriptions: HashMap<u64, Subscription> = HashMap::new();
    for publisher in joined.publishers {
        let sub = subscribe(target, record, session, room, &publisher, record.started).await?;
        subscriptions.insert(publisher.id, sub);
    }
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Ok(());
                }
            }
            event = session.events.recv() => {
                let Some(event) = event else {
                    return Err(failed("connection", "Janus closed the connection"));
                };
                handle_event(target, record, session, room, &mut subscriptions, event).await?;
            }
        }
    }
}

async fn handle_event(
    target: &JanusTarget,
    record: &Record,
    session: &mut JanusSession,
    room: u64,
    subscriptions: &mut HashMap<u64, Subscription>,
    event: JanusMessage,
) -> Result<(), Failed> {
    match event.janus.as_str() {
        "event" => {
            let Some(data) = event.videoroom_event() else {
                return Ok(());
            };
            for publisher in data.publishers {
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    subscriptions.entry(publisher.id)
                {
                    let reference = Instant::now();
                    slot.insert(
                        subscribe(target, record, session, room, &publisher, reference).await?,
                    );
                }
            }
            for gone in [data.unpublished, data.leaving].into_iter().flatten() {
                if let Some(feed) = gone.as_u64() {
                    if let Some(sub) = subscriptions.remove(&feed) {
                        for mid in &sub.mids {
                            sub.transport.forget(mid).await;
                        }
                        // Keep its statistics: the transport stays in the record.
                    }
                }
            }
        }
        "timeout" => return Err(failed("janus_timeout", "Janus timed the session out")),
        _ => {}
    }
    Ok(())
}

/// A socket for one PeerConnection, its host candidate already given to `rtc`.
async fn local_socket(target: &JanusTarget, rtc: &mut Rtc) -> Result<UdpSocket, Failed> {
    let (socket, host) = participant::local_socket(target.local_ip).await?;
    rtc.add_local_candidate(host);
    Ok(socket)
}

async fn publish(
    target: &JanusTarget,
    record: &Record,
    session: &mut JanusSession,
    handle: u64,
) -> Result<Transport, Failed> {
    let plan = &record.plan;
    let mut rtc = sdp_rtc();
    let socket = local_socket(target, &mut rtc).await?;
    let mut change = rtc.sdp_api();
    let mids: Vec<(Kind, Mid)> = plan
        .kinds()
        .into_iter()
        .map(|kind| {
            let media = match kind {
                Kind::Audio => MediaKind::Audio,
                Kind::Video => MediaKind::Video,
            };
            (
                kind,
                change.add_media(media, Direction::SendOnly, None, None, None),
            )
        })
        .collect();
    let (offer, pending) = change
        .apply()
        .ok_or_else(|| failed("internal", "str0m made no offer"))?;
    let answer = session
        .message(
            handle,
            VideoRoomRequest::Configure {
                audio: true,
                video: !plan.media.audio_only,
            },
            Some(Jsep {
                kind: "offer".into(),
                sdp: offer.to_sdp_string(),
            }),
        )
        .await?;
    let jsep = answer
        .jsep
        .ok_or_else(|| failed("malformed", "configure answered without SDP"))?;
    let answer = SdpAnswer::from_sdp_string(&jsep.sdp)
        .map_err(|e| failed("malformed", format!("Janus' answer: {e}")))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| failed("sdp", format!("accepting Janus' answer: {e}")))?;
    let pts = sdp_payload_types(&rtc);
    let transport = Transport::spawn(rtc, socket);
    record.add_transport(transport.shared.clone());
    plan.send_negotiated(&transport, &mids, pts).await?;
    transport
        .wait_connected(CONNECT_TIMEOUT)
        .await
        .map_err(|e| failed("ice_dtls", e))?;
    Ok(transport)
}

async fn subscribe(
    target: &JanusTarget,
    record: &Record,
    session: &mut JanusSession,
    room: u64,
    publisher: &PublisherInfo,
    reference: Instant,
) -> Result<Subscription, Failed> {
    let handle = session.attach().await?;
    let attached = session
        .message(
            handle,
            VideoRoomRequest::Join {
                room,
                role: JoinRole::Subscriber {
                    streams: vec![FeedRef { feed: publisher.id }],
                },
            },
            None,
        )
        .await?;
    let jsep = attached
        .jsep
        .clone()
        .ok_or_else(|| failed("malformed", "subscription answered without SDP offer"))?;
    let streams = attached
        .videoroom_event()
        .map(|e| e.streams)
        .unwrap_or_default();
    let mut rtc = sdp_rtc();
    let socket = local_socket(target, &mut rtc).await?;
    let offer = SdpOffer::from_sdp_string(&jsep.sdp)
        .map_err(|e| failed("malformed", format!("Janus' offer: {e}")))?;
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| failed("sdp", format!("accepting Janus' offer: {e}")))?;
    let transport = Transport::spawn(rtc, socket);
    let display = publisher.display.clone().unwrap_or_default();
    let mut mids = Vec::new();
    for stream in streams {
        let kind = match stream.kind.as_str() {
            "audio" => Kind::Audio,
            "video" => Kind::Video,
            _ => continue,
        };
        let name = stream.feed_display.unwrap_or_else(|| display.clone());
        transport
            .receive(RecvTrack {
                mid: stream.mid.clone(),
                kind,
                ssrc: None,
                tag: publisher_tag(&name),
                reference,
                consumed: None,
            })
            .await;
        mids.push(stream.mid);
    }
    session
        .message(
            handle,
            VideoRoomRequest::Start {},
            Some(Jsep {
                kind: "answer".into(),
                sdp: answer.to_sdp_string(),
            }),
        )
        .await?;
    record.add_transport(transport.shared.clone());
    let connected = transport
        .wait_connected(CONNECT_TIMEOUT)
        .await
        .map_err(|e| failed("ice_dtls", e))?;
    record.connected(connected);
    Ok(Subscription { transport, mids })
}
