//! Session resume, decided. A peer whose signaling connection ends without `leave` stays in
//! its room for a grace period: its transports (straight between client and node) keep
//! carrying media and nobody is told. A new connection that presents the peer's resume token
//! takes it back and gets its state as it is now; the token is single-use (every join and
//! resume hands out a fresh one). When the grace period ends first, the peer leaves as if it
//! had asked. A `roomMoved` the peer missed while away is kept for its resume.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use monitor_api::EventKind;

use super::{not_joined, Output, RoomCore};
use signaling_api::notifications::Notification;
use signaling_api::{
    Answer, ClientError, ClientErrorCode, ConsumerInfo, DataConsumerInfo, DataProducerInfo, PeerId,
    PeerInfo, ProducerInfo, Resumed, TransportInfo,
};

/// Makes resume tokens: the core's entropy, given to it (the supervisor draws 256 random bits
/// from the system; tests count).
pub type TokenSource = Box<dyn FnMut() -> String + Send>;

/// The resume side of the directory (when each peer's grace period ends is on the peer).
#[derive(Default)]
pub(crate) struct Resumption {
    /// The valid token of each peer that has one, and back.
    pub(super) peer_of: HashMap<String, PeerId>,
    pub(super) token_of: HashMap<PeerId, String>,
    /// Detached peers whose room moved meanwhile (so they are in no room): the room, the
    /// notification they missed, and when their grace period ends.
    missed_move: HashMap<PeerId, (String, Notification, Instant)>,
}

impl Resumption {
    /// Makes `token` the one valid token of `peer`.
    pub(super) fn grant(&mut self, peer: PeerId, token: String) {
        if let Some(old) = self.token_of.insert(peer, token.clone()) {
            self.peer_of.remove(&old);
        }
        self.peer_of.insert(token, peer);
    }

    /// `peer`'s valid token.
    #[cfg(test)]
    pub(crate) fn token(&self, peer: PeerId) -> Option<String> {
        self.token_of.get(&peer).cloned()
    }

    /// Forgets everything about `peer`: its token stops working.
    pub(crate) fn forget(&mut self, peer: PeerId) {
        if let Some(token) = self.token_of.remove(&peer) {
            self.peer_of.remove(&token);
        }
        self.missed_move.remove(&peer);
    }

    /// `peer` was moved out of its room by a node failure: a detached peer (`away` until
    /// then) keeps its token to learn it on resume; an attached one was told and joins again.
    pub(crate) fn room_moved(
        &mut self,
        peer: PeerId,
        away: Option<Instant>,
        room: &str,
        notification: &Notification,
    ) {
        match away {
            Some(until) => {
                self.missed_move
                    .insert(peer, (room.to_string(), notification.clone(), until));
            }
            None => self.forget(peer),
        }
    }
}

/// What a resume gives back.
#[derive(Debug, PartialEq)]
pub struct Resume {
    /// The peer the connection now speaks for.
    pub peer: PeerId,
    /// The answer.
    pub answer: Resumed,
    /// A notification to send right after the answer (the `roomMoved` it missed).
    pub missed: Option<Notification>,
}

impl RoomCore {
    /// A `resume`: the answer, after the connection is attached to the peer.
    pub(super) fn resume_input(
        &mut self,
        session: PeerId,
        asker: PeerId,
        id: u64,
        token: &str,
        unix_now: u64,
        now: Instant,
    ) {
        if self.resume_grace.is_zero() {
            let off = ClientError::new(
                ClientErrorCode::Unauthorized,
                "resume is off on this SFU (--resume-grace-secs 0): join again",
            );
            return self.reply(session, id, Err(off));
        }
        if self.is_joined(asker) {
            let joined = ClientError::new(
                ClientErrorCode::AlreadyJoined,
                "this connection is in a room already: resume on a new connection",
            );
            return self.reply(session, id, Err(joined));
        }
        match self.handle_resume(token, now, unix_now) {
            Ok(resume) => {
                // Requests of the connection it had are not this one's.
                self.bump_epoch(resume.peer);
                self.outputs.push_back(Output::Attach {
                    session,
                    from: asker,
                    to: resume.peer,
                });
                self.reply(session, id, Ok(Answer::Resumed(resume.answer)));
                if let Some(missed) = resume.missed {
                    self.notify(vec![resume.peer], missed);
                }
            }
            Err(e) => self.reply(session, id, Err(e)),
        }
    }

    /// A connection dropped: its peer stays resumable for the grace period, or leaves.
    pub(super) fn detach_input(&mut self, peer: PeerId, now: Instant) {
        self.bump_epoch(peer);
        match self.handle_detached(peer, now, self.resume_grace) {
            Some(until) => {
                self.deadlines.insert(until);
            }
            None => {
                if self.is_joined(peer) {
                    let _ = self.handle_leave(peer);
                }
            }
        }
    }

    /// Grace periods that ended: their peers leave.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        let later = self
            .deadlines
            .split_off(&(now + std::time::Duration::from_nanos(1)));
        self.deadlines = later;
        for peer in self.resume_expired(now) {
            self.handle_resume_expired(peer, now);
        }
        self.drain_deadlines(now);
    }

    /// A fresh resume token for `peer`, replacing the one it had.
    pub(super) fn issue_resume_token(&mut self, peer: PeerId) -> String {
        let token = (self.tokens)();
        self.resumption.grant(peer, token.clone());
        token
    }

    /// `peer`'s connection ended without `leave`. A joined peer stays in its room until
    /// `now + grace` (returned: when to call [`RoomCore::handle_resume_expired`]); a peer that
    /// is not in a room (or with resume off: `grace` zero) has nothing to keep.
    pub(crate) fn handle_detached(
        &mut self,
        peer: PeerId,
        now: Instant,
        grace: Duration,
    ) -> Option<Instant> {
        let room = self.peer_room.get(&peer)?.clone();
        if grace.is_zero() || !self.resumption.token_of.contains_key(&peer) {
            return None;
        }
        let until = now + grace;
        let room_state = self.rooms.get_mut(&room)?;
        room_state.peers.get_mut(&peer)?.detached_until = Some(until);
        tracing::info!(room = %room, %peer, grace_secs = grace.as_secs(), "peer disconnected: resumable");
        self.monitor(EventKind::PeerDisconnected {
            room: room.0,
            peer_id: peer.to_string(),
            resumable_secs: grace.as_secs(),
        });
        Some(until)
    }

    /// A connection presents `token`: the peer it belongs to is attached to that connection
    /// (taken from another one if it still had one) and gets its state as it is now, with a
    /// fresh token. A peer whose room moved meanwhile is not in a room any more: the answer
    /// says so and the `roomMoved` it missed follows.
    pub(crate) fn handle_resume(
        &mut self,
        token: &str,
        now: Instant,
        unix_now: u64,
    ) -> Result<Resume, ClientError> {
        let Some(&peer) = self.resumption.peer_of.get(token) else {
            return Err(ClientError::new(
                ClientErrorCode::Unauthorized,
                "unknown or already used resume token: join again",
            ));
        };
        // A session does not outlive the join token it was admitted with.
        let expires_at = self.peer(peer).ok().and_then(|(_, p)| p.token_expires_at);
        if expires_at
            .is_some_and(|exp| unix_now > exp.saturating_add(crate::TOKEN_CLOCK_SKEW.as_secs()))
        {
            tracing::info!(%peer, "resume refused: its join token expired");
            return Err(ClientError::new(
                ClientErrorCode::Unauthorized,
                "the join token of this session expired: join again with a new token",
            ));
        }
        if self.detached_until(peer).is_some_and(|until| until <= now) {
            return Err(ClientError::new(
                ClientErrorCode::NotFound,
                "the session expired: its grace period is over; join again",
            ));
        }
        if let Some((room, missed, _)) = self.resumption.missed_move.remove(&peer) {
            self.resumption.forget(peer);
            tracing::info!(room = %room, %peer, "peer resumed after its room moved");
            let answer = Resumed {
                peer_id: peer,
                room,
                joined: false,
                resume_token: None,
                router_rtp_capabilities: serde_json::Value::Null,
                peers: Vec::new(),
                transports: Vec::new(),
                producers: Vec::new(),
                consumers: Vec::new(),
                data_producers: Vec::new(),
                data_consumers: Vec::new(),
                hosts: Vec::new(),
            };
            return Ok(Resume {
                peer,
                answer,
                missed: Some(missed),
            });
        }
        let fresh = self.issue_resume_token(peer);
        let (_, _, me) = self.peer_mut(peer)?;
        me.detached_until = None;
        let (room_id, room) = self.room_of_peer(peer)?;
        let me = room.peers.get(&peer).ok_or_else(not_joined)?;
        let router = me.router;
        let mut transports: Vec<TransportInfo> = me
            .transports
            .iter()
            .map(|(id, direction)| TransportInfo {
                transport_id: *id,
                direction: *direction,
            })
            .collect();
        transports.sort_by_key(|t| t.transport_id.0);
        let mut producers: Vec<ProducerInfo> = me
            .producers
            .iter()
            .map(|(id, e)| ProducerInfo {
                producer_id: *id,
                kind: e.kind,
                app_data: e.app_data.clone(),
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id.0);
        let mut consumers: Vec<ConsumerInfo> = me
            .consumers
            .iter()
            .map(|(id, e)| ConsumerInfo {
                consumer_id: *id,
                producer_id: e.producer,
                kind: match e.kind {
                    ipc::messages::MediaKind::Audio => signaling_api::Kind::Audio,
                    ipc::messages::MediaKind::Video => signaling_api::Kind::Video,
                },
            })
            .collect();
        consumers.sort_by_key(|c| c.consumer_id.0);
        let mut data_consumers: Vec<DataConsumerInfo> = me
            .data_consumers
            .iter()
            .map(|(id, e)| DataConsumerInfo {
                data_consumer_id: *id,
                data_producer_id: e.data_producer,
            })
            .collect();
        data_consumers.sort_by_key(|c| c.data_consumer_id.0);
        let answer = Resumed {
            peer_id: peer,
            room: room_id.0.clone(),
            joined: true,
            resume_token: Some(fresh),
            router_rtp_capabilities: serde_json::Value::clone(&room.rtp_capabilities),
            peers: Self::peer_infos(room, peer, router),
            transports,
            producers,
            consumers,
            data_producers: data_producer_infos(me, None),
            data_consumers,
            hosts: Vec::new(),
        };
        tracing::info!(room = %room_id, %peer, "peer resumed");
        let event = EventKind::PeerResumed {
            room: room_id.0.clone(),
            peer_id: peer.to_string(),
        };
        self.monitor(event);
        Ok(Resume {
            peer,
            answer,
            missed: None,
        })
    }

    /// Detached peers whose grace period is over at `now`.
    pub(crate) fn resume_expired(&self, now: Instant) -> Vec<PeerId> {
        let in_rooms = self
            .rooms
            .values()
            .flat_map(|r| r.peers.iter())
            .filter_map(|(id, p)| p.detached_until.filter(|until| *until <= now).map(|_| *id));
        let moved = self
            .resumption
            .missed_move
            .iter()
            .filter(|(_, (_, _, until))| *until <= now)
            .map(|(id, _)| *id);
        let mut peers: Vec<PeerId> = in_rooms.chain(moved).collect();
        peers.sort();
        peers
    }

    /// When `peer`'s resume grace period ends, if its connection is gone.
    pub(crate) fn detached_until(&self, peer: PeerId) -> Option<Instant> {
        if let Some((_, _, until)) = self.resumption.missed_move.get(&peer) {
            return Some(*until);
        }
        let room = self.rooms.get(self.peer_room.get(&peer)?)?;
        room.peers.get(&peer)?.detached_until
    }

    /// `peer`'s grace period is over: unless it resumed meanwhile, it leaves its room (the
    /// others are told, as for a `leave`). Whether it left.
    pub(crate) fn handle_resume_expired(&mut self, peer: PeerId, now: Instant) -> bool {
        let Some(until) = self.detached_until(peer) else {
            return false;
        };
        if until > now {
            return false;
        }
        let moved = self.resumption.missed_move.contains_key(&peer);
        let room = self.peer_room.get(&peer).cloned();
        self.resumption.forget(peer);
        if moved {
            // Out of its room already (it moved); only the token was waiting.
            return true;
        }
        if let Some(room) = room {
            tracing::info!(room = %room, %peer, "resume grace period over: the peer leaves");
            self.monitor(EventKind::ResumeExpired {
                room: room.0.clone(),
                peer_id: peer.to_string(),
            });
        }
        self.handle_leave(peer).is_ok()
    }

    /// The peers of `room` as `viewer` (on `router`) sees them: everyone else, with the
    /// producers it can consume on its router (the rest is announced as its pipe completes).
    pub(super) fn peer_infos(
        room: &super::Room,
        viewer: PeerId,
        router: ipc::messages::RouterId,
    ) -> Vec<PeerInfo> {
        room.peers
            .iter()
            // Watchers counted rather than listed publish nothing: nothing to show of them.
            .filter(|(id, p)| **id != viewer && p.listed)
            .map(|(id, p)| {
                let mut producers: Vec<ProducerInfo> = p
                    .producers
                    .iter()
                    .filter(|(_, e)| p.offers_on(e.transport, &e.copies, router))
                    .map(|(producer, e)| ProducerInfo {
                        producer_id: *producer,
                        kind: e.kind,
                        app_data: e.app_data.clone(),
                    })
                    .collect();
                producers.sort_by_key(|p| p.producer_id.0);
                PeerInfo {
                    peer_id: *id,
                    display_name: p.display_name.clone(),
                    producers,
                    data_producers: data_producer_infos(p, Some(router)),
                }
            })
            .collect()
    }
}

/// `peer`'s data producers; with `on`, only those that can be consumed on that router (there,
/// or piped there already).
fn data_producer_infos(
    peer: &super::Peer,
    on: Option<ipc::messages::RouterId>,
) -> Vec<DataProducerInfo> {
    let mut infos: Vec<DataProducerInfo> = peer
        .data_producers
        .iter()
        .filter(|(_, e)| on.is_none_or(|router| peer.offers_on(e.transport, &e.copies, router)))
        .map(|(id, e)| DataProducerInfo {
            data_producer_id: *id,
            label: e.label.clone(),
            protocol: e.protocol.clone(),
            app_data: e.app_data.clone(),
        })
        .collect();
    infos.sort_by_key(|p| p.data_producer_id.0);
    infos
}
