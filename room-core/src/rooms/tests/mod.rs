//! The room core driven through its transitions, one scenario per test: inputs in, outputs
//! (answers, notifications, monitor events, cleanups for nodes) checked. No process, no socket.
//! Helpers here; joining and leaving in `membership`, media and node events in `media`, data
//! channels in `data`.

mod announce;
mod answered;
mod contract;
mod data;
mod drain;
mod handoff;
mod last_n;
mod media;
mod membership;
mod model;
mod resume;
mod spanning;

use std::time::Instant;

use ipc::calls as call;
use ipc::messages::{ConsumerId, Json, MediaKind, ProducerId, RoomId, RouterId, TransportId};
use monitor_api::EventKind;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::*;
use crate::placement::Placement;
use signaling_api::{
    ConsumeArgs, Consumed, ConsumerAction, JoinArgs, Joined, ProduceArgs, ProducerAction,
    MAX_APP_DATA_BYTES,
};

pub(super) const NODE: NodeId = NodeId(1);
pub(super) const OTHER_NODE: NodeId = NodeId(2);

/// A core whose resume tokens count up (unique, and long as real ones).
pub(super) fn new_core(limits: Limits) -> RoomCore {
    let mut n = 0u64;
    RoomCore::new(
        limits,
        Box::new(move || {
            n += 1;
            format!("test-resume-token-{n:032}")
        }),
    )
}

pub(super) fn limits() -> Limits {
    Limits {
        max_peers_per_room: 3,
        max_producers_per_peer: 2,
        max_transports_per_peer: 3,
        max_consumers_per_peer: 100,
        max_consumers_per_worker: 100,
        max_nodes: 2,
        list_watchers_up_to: 100,
    }
}

pub(super) fn args(room: &str, name: &str) -> JoinArgs {
    JoinArgs {
        room: room.into(),
        display_name: name.into(),
        token: None,
        watch_only: false,
        last_n: None,
    }
}

/// What the core says, with the joins and leaves it gathered told (their tick is over).
pub(super) fn drain(core: &mut RoomCore) -> Vec<Output> {
    core.announce_all();
    std::iter::from_fn(|| core.poll_queued()).collect()
}

/// `peersChanged` of peers that left.
pub(super) fn left(peers: &[PeerId]) -> Notification {
    Notification::PeersChanged {
        joined: Vec::new(),
        left: peers.to_vec(),
        watching: None,
    }
}

/// `peersChanged` of one peer that joined.
pub(super) fn joined(peer: PeerId, name: &str) -> Notification {
    Notification::PeersChanged {
        joined: vec![signaling_api::JoinedPeer {
            peer_id: peer,
            display_name: name.into(),
        }],
        left: Vec::new(),
        watching: None,
    }
}

/// The notifications `peer` was sent among `outputs`.
pub(super) fn told(outputs: &[Output], peer: PeerId) -> Vec<Notification> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Notify { to, notification } if to.contains(&peer) => Some(notification.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn cleanups(outputs: &[Output]) -> Vec<(NodeId, Cleanup)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Node { node, cleanup } => Some((*node, cleanup.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn monitor_events(outputs: &[Output]) -> Vec<EventKind> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Monitor(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Carries out every link and pipe the core orders, as nodes that always succeed would,
/// until nothing is left; returns every output on the way.
pub(super) fn settle(core: &mut RoomCore) -> Vec<Output> {
    let mut all = Vec::new();
    loop {
        let outputs = drain(core);
        if outputs.is_empty() {
            return all;
        }
        for output in &outputs {
            match output {
                Output::Link(order) => {
                    let pair = (TransportId(Uuid::new_v4()), TransportId(Uuid::new_v4()));
                    core.handle_linked(order.low, order.high, Ok(pair));
                }
                Output::Pipe(order) => core.handle_piped(order, Ok(())),
                _ => {}
            }
        }
        all.extend(outputs);
    }
}

/// A router's RTP capabilities (what mediasoup answers, cut down): Opus and VP8.
pub(super) fn router_caps() -> Value {
    json!({"codecs": [
        {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000},
        {"kind": "video", "mimeType": "video/rtx", "clockRate": 90000},
    ]})
}

/// A router of `room` on `worker` of `node`, as if just created there, linked and given the
/// room's producers.
pub(super) fn open_router(core: &mut RoomCore, room: &str, at: (NodeId, u32)) -> RouterId {
    let caps = Json(router_caps().to_string());
    let router = RouterId(Uuid::new_v4());
    core.handle_router_created(RoomId(room.into()), router, at, &caps, Instant::now())
        .unwrap();
    settle(core);
    router
}

/// A room on `node`'s worker 0, as if its router had just been created there.
pub(super) fn create_room(core: &mut RoomCore, room: &str, node: NodeId) -> RouterId {
    open_router(core, room, (node, 0))
}

/// Joins `name` to `room`, opening a router where placement says (nodes `ready`, each with
/// two workers) when none can take it; drains the outputs.
pub(super) fn join_on(
    core: &mut RoomCore,
    room: &str,
    name: &str,
    ready: &[(NodeId, u32)],
) -> PeerId {
    let peer = Uuid::new_v4();
    let step = core
        .handle_join(peer, &args(room, name), Rights::ALL, Instant::now())
        .unwrap();
    if step == JoinStep::NeedsRouter {
        let running = ready.len() as u32;
        let at = match core.place_router(&RoomId(room.into()), ready, running, Instant::now()) {
            Placement::Worker(node, worker) => (node, worker),
            other => panic!("no room for {name}: {other:?}"),
        };
        open_router(core, room, at);
        let step = core.handle_join(peer, &args(room, name), Rights::ALL, Instant::now());
        assert!(matches!(step, Ok(JoinStep::Joined(_))), "{step:?}");
    }
    settle(core);
    peer
}

/// Joins `name` to `room` (on `NODE`, one worker).
pub(super) fn join(core: &mut RoomCore, room: &str, name: &str) -> PeerId {
    join_on(core, room, name, &[(NODE, 1)])
}

/// Where `peer`'s requests go.
pub(super) fn target_of(core: &RoomCore, peer: PeerId) -> Target {
    core.target(peer).unwrap()
}

/// What a node answers to `CreateWebRtcTransport` (a new id, empty parameters).
pub(super) fn transport_created() -> call::TransportCreated {
    call::TransportCreated {
        transport: TransportId(Uuid::new_v4()),
        ice_parameters: Json("{}".into()),
        ice_candidates: Json("[]".into()),
        dtls_parameters: Json("{}".into()),
        sctp_parameters: None,
    }
}

pub(super) fn transport(core: &mut RoomCore, peer: PeerId, direction: Direction) -> TransportId {
    let at = core.begin_create_transport(peer).unwrap();
    let answer = transport_created();
    let created = core
        .handle_transport_created(peer, &at, direction, answer)
        .unwrap();
    created.transport_id
}

pub(super) fn produce_args(transport: TransportId, kind: Kind) -> ProduceArgs {
    let mime = match kind {
        Kind::Audio => "audio/opus",
        Kind::Video => "video/VP8",
    };
    let rtp: Map<String, Value> =
        serde_json::from_value(json!({"codecs": [{"mimeType": mime}]})).unwrap();
    ProduceArgs {
        transport_id: transport.to_string(),
        kind,
        rtp_parameters: rtp,
        app_data: None,
    }
}

pub(super) fn produce(core: &mut RoomCore, peer: PeerId, transport: TransportId) -> ProducerId {
    let pending = core
        .begin_produce(peer, produce_args(transport, Kind::Audio))
        .unwrap();
    let answer = call::Produced {
        producer: ProducerId(Uuid::new_v4()),
    };
    let produced = core.handle_produced(peer, pending, answer).unwrap();
    settle(core);
    produced.producer_id
}

pub(super) fn consume_args(transport: TransportId, producer: ProducerId) -> ConsumeArgs {
    ConsumeArgs {
        transport_id: transport.to_string(),
        producer_id: producer.to_string(),
        rtp_capabilities: Map::new(),
    }
}

pub(super) fn consumed_answer() -> call::Consumed {
    call::Consumed {
        consumer: ConsumerId(Uuid::new_v4()),
        kind: MediaKind::Audio,
        rtp_parameters: Json("{}".into()),
        consumer_type: "simple".into(),
        producer_paused: false,
    }
}

pub(super) fn consume(
    core: &mut RoomCore,
    peer: PeerId,
    transport: TransportId,
    producer: ProducerId,
) -> Consumed {
    let pending = core
        .begin_consume(peer, consume_args(transport, producer))
        .unwrap();
    core.handle_consumed(peer, pending, consumed_answer())
        .unwrap()
}

/// Alice sends audio, Bob receives it: (core, alice, bob, alice's producer, bob's consumer).
pub(super) fn call_of_two() -> (RoomCore, PeerId, PeerId, ProducerId, ConsumerId) {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let bob = join(&mut core, "demo", "Bob");
    let send = transport(&mut core, alice, Direction::Send);
    let producer = produce(&mut core, alice, send);
    let recv = transport(&mut core, bob, Direction::Recv);
    let consumer = consume(&mut core, bob, recv, producer).consumer_id;
    drain(&mut core);
    (core, alice, bob, producer, consumer)
}
