//! What a recording must do to catch up with its room, decided without I/O from the room as
//! it is and what the recording has: tap the producers it lacks (of everyone, or of the one
//! participant asked for), end the tracks whose producer went, and tell the peers not told yet
//! that the room records. `recordings.rs` carries the plan out.

use std::collections::HashSet;

use ipc::messages::{ProducerId, RouterId};
use room_core::rooms::RoomView;
use signaling_api::{Kind, PeerId};

use crate::driver::node_link::NodeId;

/// A producer to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// The producer.
    pub producer: ProducerId,
    /// Its router.
    pub router: RouterId,
    /// That router's node.
    pub node: NodeId,
    /// Whose (display name).
    pub peer: String,
    /// `audio` or `video`.
    pub kind: &'static str,
}

/// What to do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Producers to tap.
    pub tap: Vec<Wanted>,
    /// Recorded producers that are gone: their tracks end.
    pub end: Vec<ProducerId>,
    /// Peers to tell that the room records.
    pub tell: Vec<PeerId>,
}

/// What the recording has: producers recorded or being tapped (or that cannot be), and peers
/// told.
pub struct Has<'a> {
    /// Only this participant's tracks (display name or peer id), when asked so.
    pub only: Option<&'a str>,
    /// Producers with a track.
    pub recorded: &'a HashSet<ProducerId>,
    /// Producers being tapped, or that could not be (not retried).
    pub busy: &'a HashSet<ProducerId>,
    /// Peers told already.
    pub told: &'a HashSet<PeerId>,
}

/// The plan that brings a recording that `has` this in step with `room`.
pub fn plan(room: &RoomView, has: &Has<'_>) -> Plan {
    let mut plan = Plan::default();
    let mut present = HashSet::new();
    for (peer_id, peer) in &room.peers {
        if !has.told.contains(peer_id) {
            plan.tell.push(*peer_id);
        }
        let chosen = has
            .only
            .is_none_or(|only| only == peer.display_name || only == peer_id.to_string());
        for (producer, p) in &peer.producers {
            present.insert(*producer);
            if !chosen || has.recorded.contains(producer) || has.busy.contains(producer) {
                continue;
            }
            let Some(router) = room.routers.get(&peer.router) else {
                continue;
            };
            plan.tap.push(Wanted {
                producer: *producer,
                router: peer.router,
                node: router.node,
                peer: peer.display_name.clone(),
                kind: match p.kind {
                    Kind::Audio => "audio",
                    Kind::Video => "video",
                },
            });
        }
    }
    plan.end = has
        .recorded
        .iter()
        .filter(|p| !present.contains(p))
        .copied()
        .collect();
    plan.tap.sort_by_key(|w| w.producer);
    plan.end.sort();
    plan.tell.sort();
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::time::Instant;

    use room_core::rooms::{PeerView, ProducerView, RouterView, Via};

    use super::*;

    fn producer(n: u128) -> ProducerId {
        ProducerId(uuid::Uuid::from_u128(n))
    }

    fn peer_id(n: u128) -> PeerId {
        uuid::Uuid::from_u128(n)
    }

    /// A peer: its id, name, and producers as (id, kind).
    type Peer<'a> = (u128, &'a str, &'a [(u128, Kind)]);

    /// A room on router 1 (node 7) with `peers`.
    fn room(peers: &[Peer<'_>]) -> RoomView {
        let router = RouterId(uuid::Uuid::from_u128(1));
        let peers = peers
            .iter()
            .map(|(id, name, producers)| {
                let view = PeerView {
                    router,
                    display_name: name.to_string(),
                    identity: None,
                    via: Via::Ws,
                    joined_at: Instant::now(),
                    detached_until: None,
                    transports: HashMap::new(),
                    producers: producers
                        .iter()
                        .map(|(p, kind)| {
                            let view = ProducerView {
                                kind: *kind,
                                codec: "video/VP8".into(),
                                copies: 0,
                            };
                            (producer(*p), view)
                        })
                        .collect(),
                    consumers: HashMap::new(),
                    data_producers: HashMap::new(),
                    data_consumers: 0,
                };
                (peer_id(*id), view)
            })
            .collect();
        RoomView {
            routers: BTreeMap::from([(
                router,
                RouterView {
                    node: NodeId(7),
                    worker: 0,
                    seq: 0,
                },
            )]),
            created_at: Instant::now(),
            peers,
        }
    }

    #[test]
    fn a_new_recording_taps_every_producer_and_tells_everyone() {
        let room = room(&[
            (1, "alice", &[(10, Kind::Audio), (11, Kind::Video)]),
            (2, "bob", &[]),
        ]);
        let none = HashSet::new();
        let plan = plan(
            &room,
            &Has {
                only: None,
                recorded: &none,
                busy: &none,
                told: &HashSet::new(),
            },
        );
        assert_eq!(plan.tap.len(), 2);
        assert_eq!(
            (
                plan.tap[0].kind,
                plan.tap[0].node,
                plan.tap[0].peer.as_str()
            ),
            ("audio", NodeId(7), "alice")
        );
        assert_eq!(plan.tell, [peer_id(1), peer_id(2)]);
        assert!(plan.end.is_empty());
    }

    #[test]
    fn a_recording_of_one_participant_taps_only_theirs_but_tells_the_whole_room() {
        let room = room(&[
            (1, "alice", &[(10, Kind::Audio)]),
            (2, "bob", &[(20, Kind::Audio)]),
        ]);
        let none = HashSet::new();
        let plan = plan(
            &room,
            &Has {
                only: Some("bob"),
                recorded: &none,
                busy: &none,
                told: &HashSet::new(),
            },
        );
        assert_eq!(
            plan.tap.iter().map(|w| w.producer).collect::<Vec<_>>(),
            [producer(20)]
        );
        assert_eq!(plan.tell.len(), 2);
    }

    #[test]
    fn a_late_producer_is_tapped_a_gone_one_ended_and_only_newcomers_told() {
        let room = room(&[
            (1, "alice", &[(10, Kind::Audio), (12, Kind::Video)]),
            (3, "carol", &[]),
        ]);
        let recorded = HashSet::from([producer(10), producer(11)]);
        let busy = HashSet::new();
        let told = HashSet::from([peer_id(1), peer_id(2)]);
        let plan = plan(
            &room,
            &Has {
                only: None,
                recorded: &recorded,
                busy: &busy,
                told: &told,
            },
        );
        assert_eq!(
            plan.tap.iter().map(|w| w.producer).collect::<Vec<_>>(),
            [producer(12)]
        );
        assert_eq!(plan.end, [producer(11)]);
        assert_eq!(plan.tell, [peer_id(3)]);
    }

    #[test]
    fn a_producer_being_tapped_or_refused_is_not_tapped_again() {
        let room = room(&[(1, "alice", &[(10, Kind::Audio)])]);
        let busy = HashSet::from([producer(10)]);
        let plan = plan(
            &room,
            &Has {
                only: None,
                recorded: &HashSet::new(),
                busy: &busy,
                told: &HashSet::from([peer_id(1)]),
            },
        );
        assert_eq!(plan, Plan::default());
    }
}
