//! Last-N video: a peer that asked for it (`setLastN`, or `lastN` at join) receives the
//! videos of the N most recent speakers of its room plus those it pinned; its other video
//! consumers stay paused on the node (no bandwidth, nothing for it to decode), and it is told
//! whose videos flow (`forwardedVideos`). Audio likewise when it asks for the `loudest` few:
//! the audio of the K most recent speakers (only peers that spoke) plus the pinned. The
//! speakers' order is the room's: the primary router's active speaker observer sees every
//! producer of the room, so the order is the same for a room spread over routers, nodes and
//! hosts. Peers who never spoke follow in the order they joined (for video).
//!
//! A consumer's state at the node is paused when its client paused it or last-N holds it:
//! the two are kept apart ([`super::ConsumerEntry`]), so that a client's `resumeConsumer` of
//! a held consumer only records its wish, and a release resumes only what the client wants.
//! What changes the forwarded sets (a speaker, a video producer that comes or goes, a
//! `setLastN`) marks the room; marked rooms are brought up to date once per input.

use std::collections::{BTreeSet, HashMap};

use ipc::calls as call;
use ipc::messages::{ConsumerId, MediaKind, ProducerId, RoomId, RouterId};
use signaling_api::notifications::Notification;
use signaling_api::{ClientError, ClientErrorCode, Kind, LastNArgs, PeerId, MAX_PINNED};

use super::contract::Pending;
use super::{Room, RoomCore};
use crate::NodeId;

/// A peer's last-N choice and what it was last told.
#[derive(Clone, Debug, Default)]
pub(crate) struct VideoView {
    /// How many speakers' videos; `None`: every video.
    pub(crate) last_n: Option<u32>,
    /// Videos (and audio) it keeps regardless.
    pub(crate) pinned: Vec<PeerId>,
    /// How many speakers' audio; `None`: every audio.
    pub(crate) loudest: Option<u32>,
    /// The forwarded set it was last told, while it uses last-N (or has to be told that it no
    /// longer does).
    told: Option<Vec<PeerId>>,
    /// Told its set at the next refresh, changed or not (it asked).
    ask: bool,
}

impl VideoView {
    /// A view with `last_n` and `pinned`, never told anything.
    pub(crate) fn new(last_n: Option<u32>, pinned: Vec<PeerId>, loudest: Option<u32>) -> Self {
        VideoView {
            last_n,
            pinned,
            loudest,
            told: None,
            ask: last_n.is_some(),
        }
    }

    /// Whether the room must look at this peer: it uses last-N, or stopped using it.
    fn active(&self) -> bool {
        self.last_n.is_some() || self.told.is_some() || self.ask || self.loudest.is_some()
    }
}

/// The room's peers with video, in last-N order: speakers (most recent first), then the
/// others in the order they joined.
fn video_order(room: &Room) -> Vec<PeerId> {
    let has_video = |id: &PeerId| {
        room.peers
            .get(id)
            .is_some_and(|p| p.producers.values().any(|e| e.kind == Kind::Video))
    };
    let mut order: Vec<PeerId> = Vec::new();
    let mut seen = BTreeSet::new();
    for id in &room.speakers {
        if has_video(id) && seen.insert(*id) {
            order.push(*id);
        }
    }
    let mut rest: Vec<(std::time::Instant, PeerId)> = (room.peers.iter())
        .filter(|(id, _)| !seen.contains(id) && has_video(id))
        .map(|(id, p)| (p.joined_at, *id))
        .collect();
    rest.sort();
    order.extend(rest.into_iter().map(|(_, id)| id));
    order
}

/// The room's peers with audio that spoke, the most recent first.
fn audio_order(room: &Room) -> Vec<PeerId> {
    let mut seen = BTreeSet::new();
    (room.speakers.iter().copied())
        .filter(|id| {
            room.peers
                .get(id)
                .is_some_and(|p| p.producers.values().any(|e| e.kind == Kind::Audio))
        })
        .filter(|id| seen.insert(*id))
        .collect()
}

/// Whose videos `viewer` gets with `view`: `None` for every video.
fn forwarded(order: &[PeerId], viewer: PeerId, view: &VideoView) -> Option<Vec<PeerId>> {
    chosen(order, viewer, view.last_n?, &view.pinned)
}

/// Whose audio `viewer` gets with `view` (`order` from [`audio_order`]; pins that have audio
/// are in `with_audio`): `None` for every audio.
fn audible(
    order: &[PeerId],
    with_audio: &BTreeSet<PeerId>,
    viewer: PeerId,
    view: &VideoView,
) -> Option<Vec<PeerId>> {
    let pinned: Vec<PeerId> = (view.pinned.iter().copied())
        .filter(|id| with_audio.contains(id))
        .collect();
    let mut set = chosen(order, viewer, view.loudest?, &[])?;
    for pin in pinned {
        if pin != viewer && !set.contains(&pin) {
            set.push(pin);
        }
    }
    Some(set)
}

/// The first `n` of `order` but `viewer`, then the pins in `order`.
fn chosen(order: &[PeerId], viewer: PeerId, n: u32, pinned: &[PeerId]) -> Option<Vec<PeerId>> {
    let n = n as usize;
    let mut set: Vec<PeerId> = (order.iter().copied())
        .filter(|id| *id != viewer)
        .take(n)
        .collect();
    for pin in pinned {
        if *pin != viewer && order.contains(pin) && !set.contains(pin) {
            set.push(*pin);
        }
    }
    Some(set)
}

/// The room's peers that publish audio.
fn with_audio(room: &Room) -> BTreeSet<PeerId> {
    (room.peers.iter())
        .filter(|(_, p)| p.producers.values().any(|e| e.kind == Kind::Audio))
        .map(|(id, _)| *id)
        .collect()
}

/// A node call that pauses or resumes one consumer for last-N.
struct Hold {
    node: NodeId,
    router: RouterId,
    consumer: ConsumerId,
    pause: bool,
}

impl RoomCore {
    /// `setLastN` of `peer`.
    pub(crate) fn set_last_n(&mut self, peer: PeerId, args: LastNArgs) -> Result<(), ClientError> {
        if args.pinned.len() > MAX_PINNED {
            return Err(ClientError::new(
                ClientErrorCode::InvalidArgument,
                format!("at most {MAX_PINNED} pinned peers"),
            ));
        }
        let room_id = self
            .peer_room
            .get(&peer)
            .cloned()
            .ok_or_else(super::not_joined)?;
        let p = (self.rooms.get_mut(&room_id))
            .and_then(|r| r.peers.get_mut(&peer))
            .ok_or_else(super::not_joined)?;
        p.view.last_n = args.last_n;
        p.view.pinned = args.pinned;
        p.view.loudest = args.loudest;
        // An unchanged set is told again: the client asked.
        p.view.ask = true;
        self.last_n_dirty.insert(room_id);
        Ok(())
    }

    /// The room's primary observer says `speaker` speaks: it becomes the most recent.
    pub(crate) fn note_speaker(&mut self, room_id: &RoomId, speaker: PeerId) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if room.speakers.first() == Some(&speaker) {
            return;
        }
        room.speakers
            .retain(|id| *id != speaker && room.peers.contains_key(id));
        room.speakers.insert(0, speaker);
        self.last_n_dirty.insert(room_id.clone());
    }

    /// Whether `viewer`'s new consumer of `owner`'s `kind` is held by last-N.
    pub(crate) fn held_at_creation(
        &self,
        room_id: &RoomId,
        viewer: PeerId,
        owner: PeerId,
        kind: MediaKind,
    ) -> bool {
        let Some(room) = self.rooms.get(room_id) else {
            return false;
        };
        let Some(view) = room.peers.get(&viewer).map(|p| &p.view) else {
            return false;
        };
        let set = match kind {
            MediaKind::Video if view.last_n.is_some() => {
                forwarded(&video_order(room), viewer, view)
            }
            MediaKind::Audio if view.loudest.is_some() => {
                audible(&audio_order(room), &with_audio(room), viewer, view)
            }
            _ => None,
        };
        set.is_some_and(|set| !set.contains(&owner))
    }

    /// A client's pause or resume of its consumer: recorded; `false` when last-N holds it
    /// (it is paused at the node already, and stays so until released).
    pub(crate) fn client_pauses(
        &mut self,
        peer: PeerId,
        consumer: ConsumerId,
        pause: bool,
    ) -> bool {
        let Some(entry) = (self.peer_room.get(&peer))
            .and_then(|r| self.rooms.get_mut(r))
            .and_then(|r| r.peers.get_mut(&peer))
            .and_then(|p| p.consumers.get_mut(&consumer))
        else {
            return true;
        };
        entry.client_paused = pause;
        !entry.held
    }

    /// Brings the forwarded sets of every marked room up to date: holds and releases
    /// consumers at their nodes and tells peers whose set changed.
    pub(crate) fn refresh_last_n(&mut self) {
        let dirty = std::mem::take(&mut self.last_n_dirty);
        for room_id in dirty {
            self.refresh_room(&room_id);
        }
    }

    fn refresh_room(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if !room.peers.values().any(|p| p.view.active()) {
            return;
        }
        let order = video_order(room);
        let speaking = audio_order(room);
        let with_audio = with_audio(room);
        let owners: HashMap<ProducerId, PeerId> = (room.peers.iter())
            .flat_map(|(id, p)| p.producers.keys().map(move |producer| (*producer, *id)))
            .collect();
        let nodes: HashMap<RouterId, NodeId> =
            room.routers.iter().map(|(id, r)| (*id, r.node)).collect();
        let mut holds = Vec::new();
        let mut tell = Vec::new();
        for (viewer, p) in room.peers.iter_mut() {
            if !p.view.active() {
                continue;
            }
            let set = forwarded(&order, *viewer, &p.view);
            let heard = audible(&speaking, &with_audio, *viewer, &p.view);
            let moved_from = &p.moved_from;
            let router_of = |t| moved_from.get(&t).copied().unwrap_or(p.router);
            for (id, c) in p.consumers.iter_mut() {
                let set = match c.kind {
                    MediaKind::Video => &set,
                    MediaKind::Audio => &heard,
                };
                let owner = owners.get(&c.producer);
                let hold = match (set, owner) {
                    (Some(set), Some(owner)) => !set.contains(owner),
                    _ => false,
                };
                if hold == c.held {
                    continue;
                }
                c.held = hold;
                let router = router_of(c.transport);
                if let (false, Some(node)) = (c.client_paused, nodes.get(&router)) {
                    holds.push(Hold {
                        node: *node,
                        router,
                        consumer: *id,
                        pause: hold,
                    });
                }
            }
            // Back to every video: told once more (the whole list), then no longer looked at.
            let now_told = set
                .clone()
                .unwrap_or_else(|| (order.iter().copied()).filter(|id| id != viewer).collect());
            if p.view.ask || p.view.told.as_ref() != Some(&now_told) {
                tell.push((*viewer, now_told.clone()));
            }
            p.view.ask = false;
            p.view.told = set.map(|_| now_told);
        }
        for hold in holds {
            let Hold {
                node,
                router,
                consumer,
                pause,
            } = hold;
            let request: call::Request = if pause {
                call::PauseConsumer { router, consumer }.into()
            } else {
                // mediasoup asks the publisher for a key frame when a video consumer resumes.
                call::ResumeConsumer { router, consumer }.into()
            };
            self.call(node, request, Pending::Hold { router, consumer });
        }
        for (viewer, peer_ids) in tell {
            self.notify(vec![viewer], Notification::ForwardedVideos { peer_ids });
        }
    }
}
