//! A model-based property test of the core: random sequences of joins, leaves, transports,
//! produces, consumes, node answers (in any order, some failing, some after their peer left),
//! producer closes, the node's own events and the node's loss. After every step the core's
//! rooms are compared with a simple model of what must be there, and the invariants checked:
//! no consumer whose producer is gone, no room without peers, every answer accepted exactly
//! when the model says the request still makes sense. As on the wire, a peer's requests come
//! one at a time (its session awaits each answer); different peers' interleave freely.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use ipc::calls as call;
use ipc::messages::{ConsumerId, NodeEvent, ProducerId, RoomId, TransportId};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::rooms::media::{PendingConsume, PendingProduce};
use signaling_api::{ClientErrorCode, Direction, Kind, ProducerAction};

/// Peers the sequences pick from (more than a room takes).
const SLOTS: u8 = 5;

#[derive(Clone, Debug)]
enum Op {
    Join(u8),
    Leave(u8),
    Transport(u8, bool),
    Produce(u8),
    Consume(u8, u8),
    /// The node answers the pending request at this index (modulo), or fails it.
    Answer(u8, bool),
    CloseProducer(u8),
    NodeClosesConsumer(u8),
    NodeLost,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..SLOTS).prop_map(Op::Join),
        1 => (0..SLOTS).prop_map(Op::Leave),
        3 => (0..SLOTS, any::<bool>()).prop_map(|(s, send)| Op::Transport(s, send)),
        3 => (0..SLOTS).prop_map(Op::Produce),
        4 => (0..SLOTS, 0..SLOTS).prop_map(|(s, from)| Op::Consume(s, from)),
        8 => (any::<u8>(), prop::bool::weighted(0.85)).prop_map(|(i, ok)| Op::Answer(i, ok)),
        1 => (0..SLOTS).prop_map(Op::CloseProducer),
        1 => (0..SLOTS).prop_map(Op::NodeClosesConsumer),
        1 => Just(Op::NodeLost),
    ]
}

/// A request on its way to the node, with the join of its peer it was made in (an answer
/// for an earlier join of the same peer, on a router since lost, does not stand).
enum Pending {
    Transport(u8, u32, Target, Direction),
    Produce(u8, u32, PendingProduce),
    Consume(u8, u32, PendingConsume),
}

/// What must be in the room, by slot.
#[derive(Default)]
struct Model {
    joined: BTreeSet<u8>,
    /// How many times each slot joined.
    joins: BTreeMap<u8, u32>,
    transports: BTreeMap<u8, Vec<(TransportId, Direction)>>,
    producers: BTreeMap<u8, Vec<ProducerId>>,
    /// Consumer → (its owner, the producer it receives).
    consumers: BTreeMap<ConsumerId, (u8, ProducerId)>,
}

impl Model {
    fn owner_of(&self, producer: ProducerId) -> Option<u8> {
        self.producers
            .iter()
            .find(|(_, ps)| ps.contains(&producer))
            .map(|(s, _)| *s)
    }

    fn forget_producer(&mut self, producer: ProducerId) {
        for ps in self.producers.values_mut() {
            ps.retain(|p| *p != producer);
        }
        self.consumers.retain(|_, (_, p)| *p != producer);
    }

    fn leave(&mut self, slot: u8) {
        self.joined.remove(&slot);
        self.transports.remove(&slot);
        for producer in self.producers.remove(&slot).unwrap_or_default() {
            self.forget_producer(producer);
        }
        self.consumers.retain(|_, (owner, _)| *owner != slot);
    }

    /// Whether `slot` is in the room in the join `epoch`.
    fn still(&self, slot: u8, epoch: u32) -> bool {
        self.joined.contains(&slot) && self.epoch(slot) == epoch
    }

    fn epoch(&self, slot: u8) -> u32 {
        self.joins.get(&slot).copied().unwrap_or(0)
    }

    fn transport(&self, slot: u8, direction: Direction) -> Option<TransportId> {
        self.transports
            .get(&slot)?
            .iter()
            .find(|(_, d)| *d == direction)
            .map(|(t, _)| *t)
    }
}

struct World {
    core: RoomCore,
    model: Model,
    peers: Vec<PeerId>,
    pending: Vec<Pending>,
}

fn room() -> RoomId {
    RoomId("model".into())
}

impl World {
    fn new() -> World {
        let limits = Limits {
            max_peers_per_room: 4,
            max_producers_per_peer: 2,
            max_transports_per_peer: 2,
            max_consumers_per_peer: 8,
            max_consumers_per_worker: 10_000,
            max_nodes: 1,
            list_watchers_up_to: 100,
        };
        World {
            core: new_core(limits),
            model: Model::default(),
            peers: (0..SLOTS).map(|_| Uuid::new_v4()).collect(),
            pending: Vec::new(),
        }
    }

    fn slot_of(&self, peer: PeerId) -> u8 {
        self.peers.iter().position(|p| *p == peer).expect("a slot") as u8
    }

    fn join(&mut self, slot: u8) {
        let peer = self.peers[slot as usize];
        let args = args("model", &format!("P{slot}"));
        let mut step = self
            .core
            .handle_join(peer, &args, Rights::ALL, Instant::now());
        if step == Ok(JoinStep::NeedsRouter) {
            create_room(&mut self.core, "model", NODE);
            step = self
                .core
                .handle_join(peer, &args, Rights::ALL, Instant::now());
        }
        let expect_in = !self.model.joined.contains(&slot) && self.model.joined.len() < 4;
        match step {
            Ok(JoinStep::Joined(_)) => {
                assert!(expect_in, "P{slot} admitted against the model");
                self.model.joined.insert(slot);
                *self.model.joins.entry(slot).or_default() += 1;
            }
            Ok(JoinStep::NeedsRouter) => panic!("a one-router room asks for another"),
            Err(e) => {
                assert!(!expect_in, "P{slot} refused: {e}");
                let expected = if self.model.joined.contains(&slot) {
                    ClientErrorCode::AlreadyJoined
                } else {
                    ClientErrorCode::RoomFull
                };
                assert_eq!(e.code, expected, "{e}");
            }
        }
    }

    /// Whether `slot` waits for the answer to a request: a connection's requests are handled
    /// one at a time (the session awaits each), so it sends nothing else meanwhile.
    fn busy(&self, slot: u8) -> bool {
        self.pending.iter().any(|p| match p {
            Pending::Transport(s, ..) | Pending::Produce(s, ..) | Pending::Consume(s, ..) => {
                *s == slot
            }
        })
    }

    fn apply(&mut self, op: &Op) {
        let requester = match *op {
            Op::Join(s)
            | Op::Leave(s)
            | Op::Transport(s, _)
            | Op::Produce(s)
            | Op::Consume(s, _)
            | Op::CloseProducer(s) => Some(s),
            Op::Answer(..) | Op::NodeClosesConsumer(_) | Op::NodeLost => None,
        };
        if requester.is_some_and(|s| self.busy(s)) {
            return;
        }
        match *op {
            Op::Join(slot) => self.join(slot),
            Op::Leave(slot) => {
                let left = self.core.handle_leave(self.peers[slot as usize]);
                assert_eq!(left.is_ok(), self.model.joined.contains(&slot), "{left:?}");
                self.model.leave(slot);
            }
            Op::Transport(slot, send) => {
                let direction = if send {
                    Direction::Send
                } else {
                    Direction::Recv
                };
                if let Ok(at) = self.core.begin_create_transport(self.peers[slot as usize]) {
                    assert!(self.model.joined.contains(&slot));
                    let epoch = self.model.epoch(slot);
                    self.pending
                        .push(Pending::Transport(slot, epoch, at, direction));
                }
            }
            Op::Produce(slot) => {
                let Some(send) = self.model.transport(slot, Direction::Send) else {
                    return;
                };
                let args = produce_args(send, Kind::Audio);
                match self.core.begin_produce(self.peers[slot as usize], args) {
                    Ok(pending) => {
                        let epoch = self.model.epoch(slot);
                        self.pending.push(Pending::Produce(slot, epoch, pending))
                    }
                    Err(e) => assert_eq!(e.code, ClientErrorCode::TooManyProducers, "{e}"),
                }
            }
            Op::Consume(slot, from) => {
                let Some(recv) = self.model.transport(slot, Direction::Recv) else {
                    return;
                };
                let consumed: BTreeSet<ProducerId> = (self.model.consumers.values())
                    .filter(|(owner, _)| *owner == slot)
                    .map(|(_, p)| *p)
                    .collect();
                let wanted = self
                    .model
                    .producers
                    .get(&from)
                    .and_then(|ps| ps.iter().find(|p| !consumed.contains(p)).copied());
                let Some(producer) = wanted else { return };
                let peer = self.peers[slot as usize];
                match self.core.begin_consume(peer, consume_args(recv, producer)) {
                    Ok(pending) => {
                        let epoch = self.model.epoch(slot);
                        self.pending.push(Pending::Consume(slot, epoch, pending))
                    }
                    Err(e) => {
                        let own = from == slot && e.code == ClientErrorCode::InvalidArgument;
                        assert!(own || e.code == ClientErrorCode::TooManyConsumers, "{e}");
                    }
                }
            }
            Op::Answer(index, ok) => {
                if self.pending.is_empty() {
                    return;
                }
                let pending = self.pending.remove(index as usize % self.pending.len());
                if ok {
                    self.answer(pending);
                }
                // A failed call is answered to its client by the driver; the core never hears
                // of it, and nothing changes.
            }
            Op::CloseProducer(slot) => {
                let Some(&producer) = self.model.producers.get(&slot).and_then(|ps| ps.first())
                else {
                    return;
                };
                let peer = self.peers[slot as usize];
                let closed =
                    self.core
                        .producer_request(peer, &producer.to_string(), ProducerAction::Close);
                assert!(closed.is_ok(), "{closed:?}");
                self.model.forget_producer(producer);
            }
            Op::NodeClosesConsumer(slot) => {
                let Some((&consumer, &(_, producer))) =
                    self.model.consumers.iter().find(|(_, (o, _))| *o == slot)
                else {
                    return;
                };
                let router = target_of(&self.core, self.peers[slot as usize]).router;
                let event = NodeEvent::ConsumerClosed {
                    router,
                    consumer,
                    producer,
                };
                self.core.handle_node_event(NODE, event);
                self.model.consumers.remove(&consumer);
            }
            Op::NodeLost => {
                self.core.handle_node_lost(NODE, "killed");
                for slot in std::mem::take(&mut self.model.joined) {
                    self.model.leave(slot);
                }
            }
        }
    }

    /// The node carried `pending` out: the core accepts the answer exactly when the model
    /// says the request still stands.
    fn answer(&mut self, pending: Pending) {
        match pending {
            Pending::Transport(slot, epoch, at, direction) => {
                let answer = transport_created();
                let peer = self.peers[slot as usize];
                let created = self
                    .core
                    .handle_transport_created(peer, &at, direction, answer);
                match created {
                    Ok(created) => {
                        assert!(self.model.still(slot, epoch), "a left peer's transport");
                        let mine = self.model.transports.entry(slot).or_default();
                        mine.push((created.transport_id, direction));
                    }
                    Err(e) => {
                        assert!(!self.model.still(slot, epoch), "refused: {e}");
                        assert_eq!(e.code, ClientErrorCode::NotJoined, "{e}");
                    }
                }
            }
            Pending::Produce(slot, epoch, pending) => {
                let answer = call::Produced {
                    producer: ProducerId(Uuid::new_v4()),
                };
                let peer = self.peers[slot as usize];
                let transport = pending.call.transport;
                match self.core.handle_produced(peer, pending, answer) {
                    Ok(produced) => {
                        let has = self.model.transports.get(&slot);
                        assert!(has.is_some_and(|ts| ts.iter().any(|(t, _)| *t == transport)));
                        let mine = self.model.producers.entry(slot).or_default();
                        mine.push(produced.producer_id);
                    }
                    Err(e) => assert!(!self.model.still(slot, epoch), "refused: {e}"),
                }
            }
            Pending::Consume(slot, epoch, pending) => {
                let answer = consumed_answer();
                let peer = self.peers[slot as usize];
                let producer = pending.call.producer;
                let standing =
                    self.model.still(slot, epoch) && self.model.owner_of(producer).is_some();
                match self.core.handle_consumed(peer, pending, answer) {
                    Ok(consumed) => {
                        assert!(standing, "a consumer of a gone producer or by a gone peer");
                        self.model
                            .consumers
                            .insert(consumed.consumer_id, (slot, producer));
                    }
                    Err(e) => assert!(!standing, "refused: {e}"),
                }
            }
        }
    }

    /// The core's rooms agree with the model, and hold the invariants.
    fn check(&mut self) {
        settle(&mut self.core);
        let views = self.core.views(None);
        let Some(room) = views.get(&room()) else {
            assert!(
                self.model.joined.is_empty(),
                "the room is gone with peers in it"
            );
            assert!(views.is_empty());
            return;
        };
        assert!(!room.peers.is_empty(), "a room without peers stays open");
        let joined: BTreeSet<u8> = room.peers.keys().map(|p| self.slot_of(*p)).collect();
        assert_eq!(joined, self.model.joined, "who is in the room");
        let producers: BTreeSet<ProducerId> = room
            .peers
            .values()
            .flat_map(|p| p.producers.keys().copied())
            .collect();
        for (peer, view) in &room.peers {
            let slot = self.slot_of(*peer);
            let want: BTreeSet<ProducerId> = self
                .model
                .producers
                .get(&slot)
                .map(|ps| ps.iter().copied().collect())
                .unwrap_or_default();
            let have: BTreeSet<ProducerId> = view.producers.keys().copied().collect();
            assert_eq!(have, want, "P{slot}'s producers");
            let want: BTreeSet<ConsumerId> = (self.model.consumers.iter())
                .filter(|(_, (o, _))| *o == slot)
                .map(|(c, _)| *c)
                .collect();
            let have: BTreeSet<ConsumerId> = view.consumers.keys().copied().collect();
            assert_eq!(have, want, "P{slot}'s consumers");
            for consumer in view.consumers.values() {
                assert!(
                    producers.contains(&consumer.producer),
                    "P{slot} consumes a producer that is gone"
                );
            }
            let transports = self.model.transports.get(&slot).map_or(0, Vec::len);
            assert_eq!(view.transports.len(), transports, "P{slot}'s transports");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_requests_answers_and_failures_keeps_the_room_consistent(
        ops in prop::collection::vec(op(), 1..120)
    ) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
            world.check();
        }
        // Every request still on its way is answered in the end.
        while !world.pending.is_empty() {
            let pending = world.pending.remove(0);
            world.answer(pending);
            world.check();
        }
    }
}
