//! Who joins and who leaves, announced cheaply: a room's joins and leaves of one short tick
//! ([`ANNOUNCE_TICK`]) go out as one `peersChanged` frame per peer, not one frame per event
//! per peer (which made 1,000 joins into one room a million frames). In a room of more than
//! [`super::Limits::list_watchers_up_to`] peers, a peer that may not publish (it joined
//! `watchOnly`, or its token lacks `canPublish`) is counted (`watching`) rather than listed.
//!
//! Each event carries a sequence number; a peer is told the events after its own join (its
//! join answer showed the room as it was then). A peer that publishes is announced before its
//! first producer is: a room's pending announcements go out at once when one of its peers
//! produces, so that no client hears of a producer of a peer it does not know.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ipc::messages::RoomId;
use signaling_api::notifications::Notification;
use signaling_api::{JoinedPeer, PeerId};

use super::{Room, RoomCore};

/// How long a room's joins and leaves are gathered before they are told.
pub const ANNOUNCE_TICK: Duration = Duration::from_millis(50);

/// A change of the watcher count alone is told at most this often per room: an audience of
/// 1,000 arriving at 50 a second would otherwise be a frame per peer per tick. Larger rooms
/// wait longer ([`count_tick`]).
pub const COUNT_TICK: Duration = Duration::from_secs(1);

/// How often a room of `peers` is told a new watcher count at most: [`COUNT_TICK`], or
/// [`COUNT_TICK_PER_PEER`] per peer when that is longer, so that telling the count costs a
/// room at most ~100 frames a second whatever its size (1,000 peers: every 10 s). While an
/// audience of 1,000 arrives, the count was a third of everything the supervisor sent at
/// 5 ms a peer.
pub fn count_tick(peers: usize) -> Duration {
    COUNT_TICK.max(COUNT_TICK_PER_PEER.saturating_mul(peers.try_into().unwrap_or(u32::MAX)))
}

/// See [`count_tick`].
pub const COUNT_TICK_PER_PEER: Duration = Duration::from_millis(10);

/// A join or a leave not yet told.
#[derive(Clone, Debug)]
struct Event {
    seq: u64,
    peer: PeerId,
    /// The name it joined with; `None` for a leave.
    joined: Option<String>,
}

/// A room's joins and leaves not yet told.
#[derive(Clone, Debug, Default)]
pub(crate) struct Announcements {
    events: Vec<Event>,
    /// A watcher that is counted, not listed, came or went.
    watching_changed: bool,
    /// When the count was last told.
    count_told_at: Option<Instant>,
}

impl Room {
    /// Watchers counted rather than listed.
    pub(crate) fn watching(&self) -> u32 {
        self.peers.values().filter(|p| !p.listed).count() as u32
    }

    /// What `watching` says in this room: the count, once some are counted.
    pub(crate) fn watching_told(&self) -> Option<u32> {
        let watching = self.watching();
        (watching > 0).then_some(watching)
    }
}

impl RoomCore {
    /// The next event's sequence number.
    pub(crate) fn next_announce_seq(&mut self) -> u64 {
        self.announce_seq += 1;
        self.announce_seq
    }

    /// Whether a newcomer that `publishes` (or not) to a room of `size` peers is listed.
    pub(crate) fn listed_on_join(&self, size: usize, publishes: bool) -> bool {
        publishes || size < self.limits.list_watchers_up_to
    }

    /// `peer` (event `seq`) joined `room_id`: told at the end of the tick.
    pub(crate) fn announce_join(&mut self, room_id: &RoomId, peer: PeerId, name: &str, seq: u64) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        match room.peers.get(&peer).map(|p| p.listed) {
            Some(true) => room.announce.events.push(Event {
                seq,
                peer,
                joined: Some(name.to_string()),
            }),
            Some(false) => room.announce.watching_changed = true,
            None => return,
        }
        self.schedule_announcements(room_id.clone());
    }

    /// `peer` left `room_id` (it was `listed` or counted): told at the end of the tick.
    pub(crate) fn announce_leave(&mut self, room_id: &RoomId, peer: PeerId, listed: bool) {
        let seq = self.next_announce_seq();
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if listed {
            room.announce.events.push(Event {
                seq,
                peer,
                joined: None,
            });
        } else {
            room.announce.watching_changed = true;
        }
        self.schedule_announcements(room_id.clone());
    }

    fn schedule_announcements(&mut self, room_id: RoomId) {
        self.announcing.insert(room_id);
        self.announce_at_most(self.now + ANNOUNCE_TICK);
    }

    /// Announcements are due at `at`, or earlier.
    fn announce_at_most(&mut self, at: Instant) {
        self.announce_at = Some(self.announce_at.map_or(at, |due| due.min(at)));
    }

    /// Tells what every room gathered, if its tick is over at `now`; a room whose only news
    /// is its watcher count told less than [`COUNT_TICK`] ago waits.
    pub(crate) fn announce_due(&mut self, now: Instant) {
        if self.announce_at.is_some_and(|at| at <= now) {
            self.announce_at = None;
            for room_id in std::mem::take(&mut self.announcing) {
                if let Some(later) = self.tell_room(&room_id, Some(now)) {
                    self.announcing.insert(room_id);
                    self.announce_at_most(later);
                }
            }
        }
    }

    /// Tells what every room gathered, now, counts included (the scenario tests' end of
    /// every tick).
    #[cfg(test)]
    pub(crate) fn announce_all(&mut self) {
        self.announce_at = None;
        for room_id in std::mem::take(&mut self.announcing) {
            self.tell_room(&room_id, None);
        }
    }

    /// Tells `room_id`'s peers what it gathered, now.
    pub(crate) fn announce_room(&mut self, room_id: &RoomId) {
        self.tell_room(room_id, None);
    }

    /// Tells `room_id`'s peers what it gathered; with `throttle_at`, a count alone told too
    /// recently is not: when it may be told instead.
    fn tell_room(&mut self, room_id: &RoomId, throttle_at: Option<Instant>) -> Option<Instant> {
        let room = self.rooms.get_mut(room_id)?;
        let tick = count_tick(room.peers.len());
        let announce = &mut room.announce;
        if announce.events.is_empty() {
            if !announce.watching_changed {
                return None;
            }
            let next = (announce.count_told_at).map(|at| at + tick);
            if let (Some(now), Some(next)) = (throttle_at, next) {
                if now < next {
                    return Some(next);
                }
            }
        }
        let pending = Announcements {
            events: std::mem::take(&mut announce.events),
            watching_changed: std::mem::take(&mut announce.watching_changed),
            count_told_at: None,
        };
        if pending.watching_changed {
            announce.count_told_at = Some(throttle_at.unwrap_or(self.now));
        }
        let watching = match pending.watching_changed {
            true => Some(room.watching()),
            false => room.watching_told(),
        };
        // Everyone who joined before the first event sees every event: one frame; each later
        // joiner sees those after its own join.
        let mut by_start: BTreeMap<usize, Vec<PeerId>> = BTreeMap::new();
        for (id, p) in &room.peers {
            let start = pending.events.partition_point(|e| e.seq <= p.announce_seq);
            by_start.entry(start).or_default().push(*id);
        }
        let mut frames = Vec::new();
        for (start, to) in by_start {
            let events = &pending.events[start..];
            if events.is_empty() && !pending.watching_changed {
                continue;
            }
            frames.push((to, changes(events, watching)));
        }
        for (to, frame) in frames {
            self.notify(to, frame);
        }
        None
    }
}

/// The `peersChanged` of `events` (in order): each peer by its last event.
fn changes(events: &[Event], watching: Option<u32>) -> Notification {
    let mut last: HashMap<PeerId, &Event> = HashMap::new();
    let mut order = Vec::new();
    for e in events {
        if last.insert(e.peer, e).is_none() {
            order.push(e.peer);
        }
    }
    let mut joined = Vec::new();
    let mut left = Vec::new();
    for peer in order {
        match last.get(&peer).and_then(|e| e.joined.as_ref()) {
            Some(name) => joined.push(JoinedPeer {
                peer_id: peer,
                display_name: name.clone(),
            }),
            None => left.push(peer),
        }
    }
    Notification::PeersChanged {
        joined,
        left,
        watching,
    }
}
