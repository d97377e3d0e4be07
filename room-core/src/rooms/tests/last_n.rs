//! Scenarios of last-N video: a viewer receives the videos of the N latest speakers plus its
//! pins; the others' consumers are paused at the node and resumed when their peer speaks.

use std::time::Instant;

use ipc::calls as call;
use ipc::messages::{ConsumerId, MediaKind, NodeEvent, ProducerId};
use signaling_api::{Answer, LastNArgs, Request};
use uuid::Uuid;

use super::*;

/// A room of `publishers` (each sending audio and video) and one viewer receiving them all:
/// (core, publishers with their (audio, video) producers, viewer, its video consumers by
/// publisher).
struct Meeting {
    core: RoomCore,
    publishers: Vec<(PeerId, ProducerId, ProducerId)>,
    viewer: PeerId,
    videos: Vec<ConsumerId>,
    recv: TransportId,
}

fn producer_of(core: &mut RoomCore, peer: PeerId, send: TransportId, kind: Kind) -> ProducerId {
    let pending = core.begin_produce(peer, produce_args(send, kind)).unwrap();
    let answer = call::Produced {
        producer: ProducerId(Uuid::new_v4()),
    };
    let produced = core.handle_produced(peer, pending, answer).unwrap();
    settle(core);
    produced.producer_id
}

fn meeting(publishers: usize, last_n: Option<u32>) -> Meeting {
    let mut core = new_core(Limits {
        max_peers_per_room: 20,
        ..limits()
    });
    let mut list = Vec::new();
    for i in 0..publishers {
        let peer = join(&mut core, "big", &format!("P{i}"));
        let send = transport(&mut core, peer, Direction::Send);
        let audio = producer_of(&mut core, peer, send, Kind::Audio);
        let video = producer_of(&mut core, peer, send, Kind::Video);
        list.push((peer, audio, video));
    }
    let viewer = Uuid::new_v4();
    let mut join_args = args("big", "Viewer");
    join_args.last_n = last_n;
    let step = core.handle_join(viewer, &join_args, Rights::ALL, Instant::now());
    assert!(matches!(step, Ok(JoinStep::Joined(_))), "{step:?}");
    let recv = transport(&mut core, viewer, Direction::Recv);
    let mut videos = Vec::new();
    for (_, _, video) in &list {
        let pending = core
            .begin_consume(viewer, consume_args(recv, *video))
            .unwrap();
        let answer = call::Consumed {
            kind: MediaKind::Video,
            ..consumed_answer()
        };
        videos.push(
            core.handle_consumed(viewer, pending, answer)
                .unwrap()
                .consumer_id,
        );
    }
    drain(&mut core);
    Meeting {
        core,
        publishers: list,
        viewer,
        videos,
        recv,
    }
}

impl Meeting {
    fn request(&mut self, request: Request) -> Vec<Output> {
        let input = Input::Request {
            session: self.viewer,
            peer: self.viewer,
            id: 7,
            request,
        };
        self.core.handle(input, Instant::now());
        drain(&mut self.core)
    }

    fn resume(&mut self, consumer: ConsumerId) -> Vec<Output> {
        self.request(Request::Consumer {
            consumer_id: consumer.to_string(),
            action: ConsumerAction::Resume,
        })
    }

    fn set(&mut self, last_n: Option<u32>, pinned: Vec<PeerId>) -> Vec<Output> {
        self.request(Request::SetLastN(LastNArgs {
            last_n,
            pinned,
            loudest: None,
        }))
    }

    /// The viewer consumes every publisher's audio: its consumers, by publisher.
    fn consume_audio(&mut self) -> Vec<ConsumerId> {
        let mut audio = Vec::new();
        for i in 0..self.publishers.len() {
            let producer = self.publishers[i].1;
            let pending = (self.core)
                .begin_consume(self.viewer, consume_args(self.recv, producer))
                .unwrap();
            let answer = call::Consumed {
                kind: MediaKind::Audio,
                ..consumed_answer()
            };
            let consumed = self.core.handle_consumed(self.viewer, pending, answer);
            audio.push(consumed.unwrap().consumer_id);
        }
        drain(&mut self.core);
        for consumer in &audio {
            self.resume(*consumer);
        }
        audio
    }

    /// Publisher `i` speaks (the room's primary router says so).
    fn speaks(&mut self, i: usize) -> Vec<Output> {
        let router = target_of(&self.core, self.viewer).router;
        let producer = self.publishers[i].1;
        let input = Input::NodeEvent {
            node: NODE,
            event: NodeEvent::ActiveSpeaker { router, producer },
        };
        self.core.handle(input, Instant::now());
        drain(&mut self.core)
    }

    fn peer(&self, i: usize) -> PeerId {
        self.publishers[i].0
    }
}

/// The consumer pauses (`true`) and resumes among `outputs`' node calls.
fn holds(outputs: &[Output]) -> Vec<(ConsumerId, bool)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Call { request, .. } => match request {
                call::Request::PauseConsumer(c) => Some((c.consumer, true)),
                call::Request::ResumeConsumer(c) => Some((c.consumer, false)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn forwarded(outputs: &[Output], peer: PeerId) -> Vec<Vec<PeerId>> {
    told(outputs, peer)
        .into_iter()
        .filter_map(|n| match n {
            Notification::ForwardedVideos { peer_ids } => Some(peer_ids),
            _ => None,
        })
        .collect()
}

fn answered_done(outputs: &[Output]) -> bool {
    outputs.iter().any(|o| {
        matches!(
            o,
            Output::Reply {
                result: Ok(Answer::Done(_)),
                ..
            }
        )
    })
}

#[test]
fn a_viewer_asking_for_two_videos_gets_the_first_two_and_its_resumes_of_the_others_wait() {
    let mut m = meeting(4, None);
    let outputs = m.set(Some(2), Vec::new());
    // Nobody spoke yet: the first two to join, in that order.
    assert_eq!(
        forwarded(&outputs, m.viewer),
        vec![vec![m.peer(0), m.peer(1)]]
    );
    // Its consumers are still paused by the client: nothing to tell the nodes.
    assert!(holds(&outputs).is_empty(), "{outputs:?}");
    // The client resumes every consumer: only the forwarded ones are resumed at the node.
    for (i, consumer) in m.videos.clone().into_iter().enumerate() {
        let outputs = m.resume(consumer);
        if i < 2 {
            assert_eq!(
                holds(&outputs),
                vec![(consumer, false)],
                "resumed at its node"
            );
        } else {
            assert!(
                answered_done(&outputs),
                "a held consumer's resume is answered at once"
            );
            assert!(
                !outputs.iter().any(|o| matches!(o, Output::Call { .. })),
                "{outputs:?}"
            );
        }
    }
}

#[test]
fn a_new_speaker_takes_the_place_of_the_least_recent_and_its_video_is_resumed() {
    let mut m = meeting(4, Some(2));
    for consumer in m.videos.clone() {
        m.resume(consumer);
    }
    let outputs = m.speaks(3);
    assert_eq!(
        forwarded(&outputs, m.viewer),
        vec![vec![m.peer(3), m.peer(0)]]
    );
    let mut changes = holds(&outputs);
    changes.sort();
    let mut expected = vec![(m.videos[3], false), (m.videos[1], true)];
    expected.sort();
    assert_eq!(changes, expected);
    // The same speaker again changes nothing.
    let again = m.speaks(3);
    assert!(holds(&again).is_empty() && forwarded(&again, m.viewer).is_empty());
    // A speaker already forwarded only reorders the list: no pause, no resume.
    let reorder = m.speaks(0);
    assert!(holds(&reorder).is_empty(), "{reorder:?}");
    assert_eq!(
        forwarded(&reorder, m.viewer),
        vec![vec![m.peer(0), m.peer(3)]]
    );
}

#[test]
fn a_pinned_peer_is_forwarded_whether_it_speaks_or_not_and_null_brings_every_video_back() {
    let mut m = meeting(4, Some(1));
    for consumer in m.videos.clone() {
        m.resume(consumer);
    }
    let pinned = m.peer(2);
    let outputs = m.set(Some(1), vec![pinned]);
    assert_eq!(forwarded(&outputs, m.viewer), vec![vec![m.peer(0), pinned]]);
    assert_eq!(holds(&outputs), vec![(m.videos[2], false)]);
    let outputs = m.speaks(3);
    assert_eq!(forwarded(&outputs, m.viewer), vec![vec![m.peer(3), pinned]]);
    // Every video again: the two held ones (P0's and P1's) resume.
    let outputs = m.set(None, Vec::new());
    assert_eq!(forwarded(&outputs, m.viewer).len(), 1);
    assert_eq!(forwarded(&outputs, m.viewer)[0].len(), 4);
    let mut resumed = holds(&outputs);
    resumed.sort();
    let mut expected = vec![(m.videos[0], false), (m.videos[1], false)];
    expected.sort();
    assert_eq!(resumed, expected);
    // And nothing more is told once it no longer uses last-N.
    assert!(forwarded(&m.speaks(1), m.viewer).is_empty());
}

#[test]
fn a_held_consumer_the_client_paused_stays_paused_when_released() {
    let mut m = meeting(3, Some(1));
    // Resumed by the client: P0 only (P1 and P2 held).
    m.resume(m.videos[0]);
    m.resume(m.videos[1]);
    // P2 speaks: P0 is held (paused at the node), P2 released but its client never resumed
    // it, so the node is not asked.
    let outputs = m.speaks(2);
    assert_eq!(holds(&outputs), vec![(m.videos[0], true)]);
    // P1 speaks: released and wanted by the client: resumed.
    let outputs = m.speaks(1);
    assert_eq!(holds(&outputs), vec![(m.videos[1], false)]);
}

#[test]
fn the_forwarded_set_follows_a_video_that_closes_and_one_that_arrives() {
    let mut m = meeting(3, Some(2));
    for consumer in m.videos.clone() {
        m.resume(consumer);
    }
    // P0's video closes: P2 takes its place.
    let (p0, _, video0) = m.publishers[0];
    m.core
        .producer_request(p0, &video0.to_string(), ProducerAction::Close)
        .unwrap();
    m.core.refresh_last_n();
    let outputs = drain(&mut m.core);
    assert_eq!(
        forwarded(&outputs, m.viewer),
        vec![vec![m.peer(1), m.peer(2)]]
    );
    assert_eq!(holds(&outputs), vec![(m.videos[2], false)]);
    // Too many pins are refused.
    let many = (0..20).map(|_| Uuid::new_v4()).collect();
    let outputs = m.set(Some(2), many);
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Reply { result: Err(e), .. } if e.code == ClientErrorCode::InvalidArgument
    )));
}

#[test]
fn with_the_loudest_two_only_the_two_latest_speakers_are_heard_and_video_is_untouched() {
    let mut m = meeting(4, None);
    let audio = m.consume_audio();
    let out = m.request(Request::SetLastN(LastNArgs {
        last_n: None,
        pinned: vec![],
        loudest: Some(2),
    }));
    // Nobody spoke yet: every audio is held, no video.
    let mut paused = holds(&out);
    paused.sort();
    let mut expected: Vec<_> = audio.iter().map(|c| (*c, true)).collect();
    expected.sort();
    assert_eq!(paused, expected);
    assert_eq!(holds(&m.speaks(0)), vec![(audio[0], false)]);
    assert_eq!(holds(&m.speaks(1)), vec![(audio[1], false)]);
    // A third speaker: the least recent of the two is held again.
    let mut changed = holds(&m.speaks(2));
    changed.sort();
    let mut expected = vec![(audio[2], false), (audio[0], true)];
    expected.sort();
    assert_eq!(changed, expected);
    assert!(m
        .videos
        .iter()
        .all(|v| !changed.iter().any(|(c, _)| c == v)));
    // Back to every audio: the held ones resume.
    let out = m.request(Request::SetLastN(LastNArgs::default()));
    let mut resumed = holds(&out);
    resumed.sort();
    let mut expected = vec![(audio[0], false), (audio[3], false)];
    expected.sort();
    assert_eq!(resumed, expected);
}
