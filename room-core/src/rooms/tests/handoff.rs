//! A room handed to another host's core whole: nothing closed on the nodes, every peer and
//! what it owns there, each resuming with the token it had; refused while busy; peers that
//! never come back leave at the end of their grace period.

use std::time::{Duration, Instant};

use super::*;
use crate::rooms::{HandoffError, Input};

const GRACE: Duration = Duration::from_secs(30);
const UNIX_NOW: u64 = 1_800_000_000;

fn successor() -> RoomCore {
    let mut n = 0u64;
    let tokens = Box::new(move || {
        n += 1;
        format!("successor-token-{n:032}")
    });
    RoomCore::with_resume_grace(limits(), tokens, GRACE)
}

#[test]
fn a_room_handed_over_keeps_every_peer_and_what_it_owns_and_each_resumes_with_its_token() {
    let (mut core, alice, bob, producer, consumer) = call_of_two();
    let tokens = [alice, bob].map(|p| core.resumption.token(p).expect("a token"));
    let export = core.export_room(&RoomId("demo".into())).expect("exported");
    // Nothing on the nodes is closed, nobody told; the room is gone here.
    let outputs = drain(&mut core);
    assert!(outputs.is_empty(), "{outputs:?}");
    assert!(core.rooms().is_empty());
    assert!(!core.is_joined(alice));
    // Through the wire and into the successor.
    let wire = serde_json::to_string(&export).expect("serialized");
    let export: RoomExport = serde_json::from_str(&wire).expect("parsed");
    let mut next = successor();
    let now = Instant::now();
    next.import_room(export, now).expect("imported");
    assert_eq!(
        next.detached_until(bob),
        Some(now + GRACE),
        "detached until it resumes"
    );
    let resume = next
        .handle_resume(&tokens[1], now, UNIX_NOW)
        .expect("resumed there");
    assert_eq!(resume.peer, bob);
    let answer = resume.answer;
    assert!(answer.joined);
    assert_eq!(answer.consumers.len(), 1);
    assert_eq!(answer.consumers[0].consumer_id, consumer);
    assert_eq!(answer.peers[0].producers[0].producer_id, producer);
    // Requests go on against what the nodes still have: Bob pauses his consumer, Alice
    // (resumed too) closes her producer and Bob is told.
    let pause = next.consumer_request(bob, &consumer.to_string(), ConsumerAction::Pause);
    assert!(pause.is_ok(), "{pause:?}");
    next.handle_resume(&tokens[0], now, UNIX_NOW)
        .expect("alice resumed");
    drain(&mut next);
    next.producer_request(alice, &producer.to_string(), ProducerAction::Close)
        .expect("closed");
    let outputs = drain(&mut next);
    assert!(told(&outputs, bob).iter().any(|n| matches!(n,
        Notification::ConsumerClosed { consumer_id, .. } if *consumer_id == consumer)));
}

#[test]
fn a_room_with_a_join_under_way_is_not_handed_over() {
    let (mut core, ..) = call_of_two();
    // Carol's join waits for a router (the room is full): the room is busy.
    core.limits.max_consumers_per_worker = 1;
    let carol = Uuid::new_v4();
    core.handle(
        Input::Join {
            session: carol,
            peer: carol,
            id: 1,
            args: args("demo", "Carol"),
            credentials: Rights::ALL.into(),
        },
        Instant::now(),
    );
    drain(&mut core);
    let busy = core.export_room(&RoomId("demo".into()));
    assert_eq!(busy, Err(HandoffError::Busy("demo".into())));
    assert_eq!(core.rooms().len(), 1, "still served here");
    let unknown = core.export_room(&RoomId("nowhere".into()));
    assert_eq!(unknown, Err(HandoffError::Unknown("nowhere".into())));
}

#[test]
fn a_handed_over_peer_that_never_comes_back_leaves_when_its_grace_ends() {
    let (mut core, alice, bob, ..) = call_of_two();
    let token = core.resumption.token(alice).expect("a token");
    let export = core.export_room(&RoomId("demo".into())).expect("exported");
    let mut next = successor();
    let now = Instant::now();
    next.import_room(export.clone(), now).expect("imported");
    // Importing it twice is refused.
    assert!(matches!(
        next.import_room(export, now),
        Err(HandoffError::Exists(_))
    ));
    next.handle_resume(&token, now, UNIX_NOW)
        .expect("alice came back");
    drain(&mut next);
    next.handle(Input::Timeout, now + GRACE + Duration::from_millis(1));
    let outputs = drain(&mut next);
    assert!(told(&outputs, alice).contains(&left(&[bob])));
    assert!(!next.is_joined(bob));
    assert!(next.is_joined(alice));
}
