//! The reading half of a link: every message the peer sends, dispatched — relayed
//! sessions and their frames, monitor asks, node calls and events for rooms spanning hosts,
//! drains, handoffs and standbys, recorded tracks, the peer's fenced state, pings.

use super::*;

impl Links {
    pub(super) async fn read_link(
        &self,
        mut reader: SealedReader<OwnedReadHalf>,
        link: &Arc<Link>,
        last_pong: &Mutex<Instant>,
    ) -> LinkError {
        let mut ended = link.ended.subscribe();
        loop {
            let message = tokio::select! {
                message = reader.recv() => match message {
                    Ok(message) => message,
                    Err(e) => return e,
                },
                _ = ended.wait_for(|ended| *ended) => return LinkError::Closed,
            };
            match message {
                LinkMessage::Open { session, client } => self.opened(link, session, client),
                LinkMessage::Frame { session, text } => {
                    let sessions = link.sessions();
                    match sessions.get(&session) {
                        Some(SessionEnd::Client { outbox, .. }) => {
                            self.metrics.relayed_frame();
                            outbox.push(text);
                        }
                        Some(SessionEnd::Served { inbound }) => {
                            inbound.push(text);
                        }
                        // A frame after the session ended on this side: nobody to tell.
                        None => {}
                    }
                }
                LinkMessage::Close {
                    session,
                    code,
                    reason,
                } => {
                    let end = link.sessions().remove(&session);
                    if let Some(SessionEnd::Client { close, .. }) = end {
                        let _ = close.try_send((code, reason));
                    }
                    // A served session: dropping its queue ends its reader.
                }
                LinkMessage::Ask { id, query } => {
                    let Some(monitor) = self.monitor.get().cloned() else {
                        continue;
                    };
                    let link = link.clone();
                    tokio::spawn(async move {
                        let answer =
                            crate::edge::monitor_socket::answer_here(&monitor, &query).await;
                        let answer = serde_json::to_string(&answer).unwrap_or_default();
                        link.send(LinkMessage::Told { id, answer }).await;
                    });
                }
                LinkMessage::Told { id, answer } => {
                    let waiter = link
                        .asks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(answer);
                    }
                }
                LinkMessage::NodeCall { id, node, request } => match self.remote.get() {
                    Some(remote) => remote.called(link, id, node, request),
                    None => {
                        let refused = ipc::messages::NodeError::new(
                            ipc::messages::NodeErrorCode::Internal,
                            "this host lends no nodes yet",
                        );
                        let _ = link.try_send(LinkMessage::NodeAnswer {
                            id,
                            answer: Err(refused),
                        });
                    }
                },
                LinkMessage::NodeAnswer { id, answer } => {
                    if let Some(remote) = self.remote.get() {
                        remote.answered(link, id, answer);
                    }
                }
                LinkMessage::NodeEvent { node, event } => {
                    if let Some(remote) = self.remote.get() {
                        remote.remote_event(link, node, event);
                    }
                }
                LinkMessage::NodeGone { node, reason } => {
                    if let Some(remote) = self.remote.get() {
                        remote.remote_gone(link, node, &reason);
                    }
                }
                LinkMessage::Handoff {
                    id,
                    room,
                    revision,
                    export,
                } => {
                    if let Some(server) = self.server.get() {
                        let routing = server.routing.clone();
                        tokio::spawn(routing.take_over(link.clone(), id, room, revision, export));
                    }
                }
                LinkMessage::HandoffDone { id, result } => {
                    if let Some(server) = self.server.get() {
                        server.routing.handoff_done(id, result);
                    }
                }
                LinkMessage::Standby { room, export } => {
                    if let Some(remote) = self.remote.get() {
                        remote.standby(link, room, export);
                    }
                }
                LinkMessage::LentMoved { routers, to } => {
                    if let Some(remote) = self.remote.get() {
                        remote.lent_moved(link, &routers, &to);
                    }
                }
                LinkMessage::Forward { tokens, to } => {
                    if let Some(server) = self.server.get() {
                        server.routing.forward(&tokens, &to);
                    }
                }
                LinkMessage::Draining { nodes } => {
                    if let Some(remote) = self.remote.get() {
                        remote.remote_draining(link, &nodes);
                    }
                }
                LinkMessage::RecordTrack {
                    track,
                    node,
                    router,
                    producer,
                    room,
                    folder,
                    name,
                } => {
                    if let Some(remote) = self.remote.get() {
                        let order = crate::driver::remote::RemoteTrack {
                            track,
                            router,
                            producer,
                            room,
                            folder,
                            name,
                        };
                        remote.record_track(link, node, order);
                    }
                }
                LinkMessage::TrackRecording { track, result } => {
                    if let Some(remote) = self.remote.get() {
                        remote.track_recording(link, track, result);
                    }
                }
                LinkMessage::EndTrack { track } => {
                    if let Some(remote) = self.remote.get() {
                        remote.end_track(link, track);
                    }
                }
                LinkMessage::TrackEnded { track, result } => {
                    if let Some(remote) = self.remote.get() {
                        remote.track_ended(link, track, result);
                    }
                }
                LinkMessage::RecordedTrackFailed { track, summary } => {
                    if let Some(remote) = self.remote.get() {
                        remote.recorded_track_failed(link, track, summary);
                    }
                }
                LinkMessage::Fenced(fenced) => {
                    self.peers_fenced
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(link.peer().clone(), fenced);
                    self.fenced_changed.notify_one();
                }
                LinkMessage::Ping(n) => {
                    let _ = link.try_send(LinkMessage::Pong(n));
                }
                LinkMessage::Pong(sent_micros) => {
                    *last_pong.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                    let now = micros_now();
                    if now >= sent_micros {
                        self.metrics
                            .relay_round_trip(Duration::from_micros(now - sent_micros));
                    }
                }
            }
        }
    }

    /// The peer relays a session here.
    fn opened(&self, link: &Arc<Link>, session: SessionId, client: IpAddr) {
        // The peer numbers its sessions with the other parity; anything else is refused.
        let peers_parity = session.0 % 2 == u64::from(!link.odd);
        let Some(server) = self.server.get() else {
            return;
        };
        let mut sessions = link.sessions();
        if !peers_parity || sessions.contains_key(&session) {
            tracing::warn!(peer = %link.peer, %session, "refusing a relayed session with a bad number");
            return;
        }
        let (inbound, inbox) = Outbox::new(OUTBOX_BYTES);
        sessions.insert(session, SessionEnd::Served { inbound });
        drop(sessions);
        tokio::spawn(server.clone().serve(link.clone(), session, client, inbox));
    }
}
