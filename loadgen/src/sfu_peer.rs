//! A participant of our SFU: joins over `/ws`, opens a send and a receive transport (str0m in
//! direct RTP mode against mediasoup's WebRtcTransports, as the smoke tests do), publishes,
//! and consumes every producer of its room as the demo page does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signaling_api::calls::{Leave, ResumeConsumer};
use signaling_api::client::{CallError, Client};
use signaling_api::media::{self, RtpParameters};
use signaling_api::{
    ConnectTransportArgs, ConsumeArgs, ConsumerArgs, CreateTransportArgs, Direction, JoinArgs,
    Notification, PeerId, ProduceArgs, ProducerId,
};
use tokio::sync::watch;

use crate::media::{publisher_tag, Kind};
use crate::media_path;
pub use crate::media_path::MediaPath;
use crate::participant::{failed, Failed, Record};
use crate::sfu_rtc::{direct_rtc, rtp_parameters, PayloadTypes};
use crate::sfu_session::Session;
use crate::transport::{RecvTrack, Transport};

/// ICE and DTLS must be up within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how participants reach the SFU.
#[derive(Clone)]
pub struct SfuTarget {
    /// `ws://…/ws` or `wss://…/ws`.
    pub url: String,
    /// TLS trust for `wss://`.
    pub tls: Arc<rustls::ClientConfig>,
    /// Join token.
    pub token: Option<String>,
    /// Local address of the media sockets.
    pub local_ip: std::net::IpAddr,
    /// How media reaches the SFU.
    pub path: MediaPath,
}

impl From<CallError> for Failed {
    fn from(e: CallError) -> Self {
        Failed {
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

/// Runs one participant until `stop` turns true; what happens is written to `record`.
pub async fn run(target: Arc<SfuTarget>, record: Arc<Record>, stop: watch::Receiver<bool>) {
    if let Err(e) = participate(&target, &record, stop).await {
        record.fail(e);
    }
}

async fn participate(
    target: &SfuTarget,
    record: &Record,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Failed> {
    let plan = &record.plan;
    let mut signaling = Client::connect(&target.url, Some(target.tls.clone())).await?;
    let joined = signaling
        .call(&JoinArgs {
            room: plan.room.clone(),
            display_name: plan.name.clone(),
            token: target.token.clone(),
            // A subscriber only watches: no publishing room is kept for it.
            watch_only: !plan.publish,
            last_n: plan.last_n,
        })
        .await?;
    record.joined();
    let pts = PayloadTypes::from_router(&joined.router_rtp_capabilities)
        .map_err(|e| failed("malformed", e))?;
    // Through TURN: with this participant's credentials from its join answer.
    let with_turn;
    let target = if target.path == MediaPath::Turn(None) {
        with_turn = SfuTarget {
            path: MediaPath::Turn(Some(
                media_path::turn_credentials(&joined.ice_servers).await?,
            )),
            ..target.clone()
        };
        &with_turn
    } else {
        target
    };
    // Where to take the session back when the connection closes (a host stopped or was
    // drained): the host it had, then the others the join answer and `hostsChanged` list.
    let mut session = Session {
        url: target.url.clone(),
        hosts: joined.hosts.clone(),
        token: joined.resume_token.clone(),
    };
    let mut names: HashMap<PeerId, String> = HashMap::new();
    let mut existing = Vec::new();
    for peer in joined.peers {
        for producer in peer.producers {
            existing.push((producer.producer_id, peer.display_name.clone()));
        }
        names.insert(peer.peer_id, peer.display_name);
    }
    if plan.media.no_transports {
        return stay_joined(signaling, stop).await;
    }
    let mut send = publish(target, &mut signaling, record, pts).await?;
    if plan.record {
        signaling
            .call(&signaling_api::StartRecordingArgs::default())
            .await?;
    }
    let mut receiver = Receiver::open(target, &mut signaling, record, pts).await?;
    // After a move (mediaMoving): the old transports, closed once the others had time to
    // take this participant's new producers.
    let mut retiring: Option<(tokio::time::Instant, Vec<(String, Transport)>)> = None;
    // Consumed while ICE and DTLS come up, as the demo page (mediasoup-client) does: the
    // consumers' key frames are asked for once the transport is connected.
    for (producer, name) in existing {
        receiver
            .consume(&mut signaling, producer, &name, record.started)
            .await?;
    }
    record.connected(connected(&receiver.transport).await?);
    loop {
        let retire_at = retiring.as_ref().map(|(at, _)| *at);
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            () = sleep_until(retire_at) => {
                for (id, _transport) in retiring.take().map(|(_, t)| t).unwrap_or_default() {
                    let close = signaling_api::calls::CloseTransport(signaling_api::TransportArgs {
                        transport_id: id,
                    });
                    signaling.call(&close).await?;
                }
            }
            notification = signaling.notifications.recv() => {
                let Some(notification) = notification else {
                    // Only signaling dropped: the media goes on; take the session back.
                    let resumed = session.resume(target).await?;
                    signaling = resumed.0;
                    record.resumed();
                    receiver.reconcile(&mut signaling, &resumed.1, &mut names, record.started).await?;
                    continue;
                };
                match notification {
                    Notification::PeersChanged { joined, .. } => {
                        for peer in joined {
                            names.insert(peer.peer_id, peer.display_name);
                        }
                    }
                    Notification::ForwardedVideos { peer_ids } => {
                        let forwarded = peer_ids.iter().filter_map(|id| names.get(id).cloned());
                        record.forwarded(forwarded.collect());
                    }
                    Notification::NewProducer { peer_id, producer_id, .. } => {
                        let name = names.get(&peer_id).cloned().unwrap_or_default();
                        receiver.consume(&mut signaling, producer_id, &name, Instant::now()).await?;
                    }
                    Notification::ConsumerClosed { consumer_id, .. } => {
                        if let Some(mid) = receiver.mids.remove(&consumer_id.to_string()) {
                            receiver.transport.forget(&mid).await;
                        }
                    }
                    Notification::RoomMoved { .. } => {
                        return Err(failed("roomMoved", "the room's node failed"));
                    }
                    Notification::ShuttingDown { .. } => {
                        return Err(failed("shuttingDown", "the SFU is stopping"));
                    }
                    Notification::HostsChanged { urls } => session.hosts = urls,
                    Notification::MediaMoving { peers } => {
                        // Make before break: a new receive transport consuming what is
                        // listed, a new send transport publishing again; the old ones
                        // close a moment later.
                        let mut fresh = Receiver::open(target, &mut signaling, record, pts).await?;
                        for peer in peers {
                            names.insert(peer.peer_id, peer.display_name.clone());
                            for p in peer.producers {
                                fresh.consume(&mut signaling, p.producer_id, &peer.display_name, Instant::now()).await?;
                            }
                        }
                        connected(&fresh.transport).await?;
                        let old_recv = std::mem::replace(&mut receiver, fresh);
                        let new_send = publish(target, &mut signaling, record, pts).await?;
                        let old_send = std::mem::replace(&mut send, new_send);
                        let old = old_send.into_iter().chain([(old_recv.transport_id, old_recv.transport)]).collect();
                        retiring = Some((tokio::time::Instant::now() + MOVE_LINGER, old));
                        record.moved();
                    }
                    // Scores, layers, speakers, others' leaves: nothing a participant acts on.
                    _ => {}
                }
            }
        }
    }
    // Leaving is a courtesy: the SFU closes what a vanished participant had anyway.
    let _ = signaling.call(&Leave {}).await;
    Ok(())
}

/// How long the old transports keep working after a move, for the others to switch.
const MOVE_LINGER: Duration = Duration::from_millis(1500);

/// Resolves at `at`, never without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A participant without transports: reads what the SFU says until told to stop.
async fn stay_joined(mut signaling: Client, mut stop: watch::Receiver<bool>) -> Result<(), Failed> {
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Ok(());
                }
            }
            notification = signaling.notifications.recv() => {
                if notification.is_none() {
                    return Err(failed("signaling", "the SFU closed the connection"));
                }
            }
        }
    }
}

/// Opens a send transport and produces the plan's tracks on it (nothing for a subscriber).
async fn publish(
    target: &SfuTarget,
    signaling: &mut Client,
    record: &Record,
    pts: PayloadTypes,
) -> Result<Option<(String, Transport)>, Failed> {
    let plan = &record.plan;
    if !plan.publish {
        return Ok(None);
    }
    let (id, send) = open_transport(target, signaling, Direction::Send, pts).await?;
    connected(&send).await?;
    record.add_transport(send.shared.clone());
    for (i, kind) in plan.kinds().into_iter().enumerate() {
        let mid = i.to_string();
        let pt = match kind {
            Kind::Audio => pts.opus,
            Kind::Video => pts.vp8,
        };
        let track = plan.send_track(kind, &mid, pt, true);
        signaling
            .call(&ProduceArgs {
                transport_id: id.clone(),
                kind: match kind {
                    Kind::Audio => signaling_api::Kind::Audio,
                    Kind::Video => signaling_api::Kind::Video,
                },
                rtp_parameters: media::object(&rtp_parameters(&track, pts, &plan.name)),
                app_data: None,
            })
            .await?;
        send.send(track).await;
    }
    Ok(Some((id, send)))
}

struct Receiver {
    transport_id: String,
    transport: Transport,
    pts: PayloadTypes,
    /// Consumer id → mid.
    mids: HashMap<String, String>,
}

impl Receiver {
    /// A new receive transport.
    async fn open(
        target: &SfuTarget,
        signaling: &mut Client,
        record: &Record,
        pts: PayloadTypes,
    ) -> Result<Receiver, Failed> {
        let (transport_id, transport) =
            open_transport(target, signaling, Direction::Recv, pts).await?;
        record.add_transport(transport.shared.clone());
        Ok(Receiver {
            transport_id,
            transport,
            pts,
            mids: HashMap::new(),
        })
    }

    /// After a resume: consumers closed while away are forgotten, producers that came
    /// meanwhile are consumed.
    async fn reconcile(
        &mut self,
        signaling: &mut Client,
        resumed: &signaling_api::Resumed,
        names: &mut HashMap<PeerId, String>,
        reference: Instant,
    ) -> Result<(), Failed> {
        let alive: std::collections::HashSet<String> = (resumed.consumers.iter())
            .map(|c| c.consumer_id.to_string())
            .collect();
        let gone: Vec<String> = (self.mids.keys())
            .filter(|id| !alive.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(mid) = self.mids.remove(&id) {
                self.transport.forget(&mid).await;
            }
        }
        let consumed: std::collections::HashSet<ProducerId> =
            resumed.consumers.iter().map(|c| c.producer_id).collect();
        for peer in &resumed.peers {
            names.insert(peer.peer_id, peer.display_name.clone());
            for producer in &peer.producers {
                if !consumed.contains(&producer.producer_id) {
                    self.consume(
                        signaling,
                        producer.producer_id,
                        &peer.display_name,
                        reference,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn consume(
        &mut self,
        signaling: &mut Client,
        producer_id: ProducerId,
        publisher: &str,
        reference: Instant,
    ) -> Result<(), Failed> {
        let consumed = signaling
            .call(&ConsumeArgs {
                transport_id: self.transport_id.clone(),
                producer_id: producer_id.to_string(),
                rtp_capabilities: self.pts.device_capabilities(),
            })
            .await?;
        let answered = Instant::now();
        let kind = match consumed.kind {
            signaling_api::Kind::Audio => Kind::Audio,
            signaling_api::Kind::Video => Kind::Video,
        };
        let rtp: RtpParameters = media::read(&consumed.rtp_parameters)
            .map_err(|e| failed("malformed", format!("consumer RTP parameters: {e}")))?;
        let encoding = rtp
            .encodings
            .first()
            .ok_or_else(|| failed("malformed", "consumer without encoding"))?;
        let mid = rtp.mid.clone();
        self.transport
            .receive(RecvTrack {
                mid: mid.clone(),
                kind,
                ssrc: Some((encoding.ssrc, encoding.rtx.as_ref().map(|r| r.ssrc))),
                tag: publisher_tag(publisher),
                reference,
                consumed: Some(answered),
            })
            .await;
        let consumer_id = consumed.consumer_id.to_string();
        self.mids.insert(consumer_id.clone(), mid);
        signaling
            .call(&ResumeConsumer(ConsumerArgs { consumer_id }))
            .await?;
        Ok(())
    }
}

/// Creates and connects a transport; returns its id and the running str0m side, whose ICE
/// and DTLS may still be under way (see [`connected`]).
async fn open_transport(
    target: &SfuTarget,
    signaling: &mut Client,
    direction: Direction,
    pts: PayloadTypes,
) -> Result<(String, Transport), Failed> {
    let server = signaling
        .call(&CreateTransportArgs {
            direction,
            data: false,
        })
        .await?;
    let (link, host) = media_path::open(&target.path, target.local_ip, &server).await?;
    let protocol = link.protocol();
    let (rtc, dtls_parameters) = direct_rtc(&server, pts, host, protocol)?;
    let transport = Transport::spawn(rtc, link);
    let transport_id = server.transport_id.to_string();
    signaling
        .call(&ConnectTransportArgs {
            transport_id: transport_id.clone(),
            dtls_parameters: media::object(&dtls_parameters),
        })
        .await?;
    Ok((transport_id, transport))
}

/// Waits for a transport's ICE and DTLS; when they came up.
async fn connected(transport: &Transport) -> Result<Instant, Failed> {
    (transport.wait_connected(CONNECT_TIMEOUT).await).map_err(|e| failed("ice_dtls", e))
}
