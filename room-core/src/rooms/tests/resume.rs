//! Resume: a peer whose connection dropped stays (nobody told), comes back with its token to
//! its state as it is now, or leaves when its grace period ends.

use std::time::{Duration, Instant};

use super::*;

const GRACE: Duration = Duration::from_secs(30);

/// The wall clock of these scenarios, in Unix seconds.
const UNIX_NOW: u64 = 1_800_000_000;

fn token(core: &RoomCore, peer: PeerId) -> String {
    core.resumption.token(peer).expect("a resume token")
}

#[test]
fn the_join_answer_carries_a_token_that_names_the_peer() {
    let mut core = new_core(limits());
    create_room(&mut core, "demo", NODE);
    let alice = Uuid::new_v4();
    let step = core.handle_join(alice, &args("demo", "Alice"), Rights::ALL, Instant::now());
    let Ok(JoinStep::Joined(joined)) = step else {
        panic!("{step:?}");
    };
    assert!(
        joined.resume_token.len() >= 22,
        "128 bits or more: {}",
        joined.resume_token
    );
    assert_eq!(token(&core, alice), joined.resume_token);
    let bob = join(&mut core, "demo", "Bob");
    assert_ne!(token(&core, bob), joined.resume_token, "one token per peer");
}

#[test]
fn a_peer_whose_connection_drops_stays_in_its_room_and_nobody_is_told() {
    let (mut core, alice, bob, ..) = call_of_two();
    let now = Instant::now();
    assert_eq!(core.handle_detached(bob, now, GRACE), Some(now + GRACE));
    let outputs = drain(&mut core);
    assert!(told(&outputs, alice).is_empty(), "{outputs:?}");
    assert!(cleanups(&outputs).is_empty(), "nothing closed: {outputs:?}");
    assert_eq!(
        monitor_events(&outputs),
        vec![EventKind::PeerDisconnected {
            room: "demo".into(),
            peer_id: bob.to_string(),
            resumable_secs: 30,
        }]
    );
    assert!(core.is_joined(bob));
    assert_eq!(core.detached_until(bob), Some(now + GRACE));
}

#[test]
fn resuming_gives_the_state_as_it_is_now_with_a_fresh_single_use_token() {
    let (mut core, alice, bob, producer, consumer) = call_of_two();
    let old = token(&core, bob);
    core.handle_detached(bob, Instant::now(), GRACE);
    // Meanwhile Carol joins and publishes, and Alice's producer closes (Bob's consumer too).
    let carol = join(&mut core, "demo", "Carol");
    let send = transport(&mut core, carol, Direction::Send);
    let carols = produce(&mut core, carol, send);
    core.producer_request(alice, &producer.to_string(), ProducerAction::Close)
        .unwrap();
    drain(&mut core);

    let resume = core.handle_resume(&old, Instant::now(), UNIX_NOW).unwrap();
    assert_eq!(resume.peer, bob);
    assert_eq!(resume.missed, None);
    let answer = resume.answer;
    assert!(answer.joined);
    let fresh = answer.resume_token.clone().expect("a fresh token");
    assert_ne!(fresh, old);
    let names: Vec<&str> = answer
        .peers
        .iter()
        .map(|p| p.display_name.as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"Alice") && names.contains(&"Carol"));
    let carol_info = answer.peers.iter().find(|p| p.peer_id == carol).unwrap();
    assert_eq!(
        carol_info.producers[0].producer_id, carols,
        "Carol's producer, to consume"
    );
    assert!(
        !answer.consumers.iter().any(|c| c.consumer_id == consumer),
        "the consumer of the closed producer is gone"
    );
    assert_eq!(answer.transports.len(), 1, "its receive transport");
    assert_eq!(core.detached_until(bob), None, "attached again");
    let outputs = drain(&mut core);
    assert!(monitor_events(&outputs).contains(&EventKind::PeerResumed {
        room: "demo".into(),
        peer_id: bob.to_string(),
    }));

    // The old token worked once; the fresh one works.
    let refused = core
        .handle_resume(&old, Instant::now(), UNIX_NOW)
        .unwrap_err();
    assert_eq!(refused.code, ClientErrorCode::Unauthorized);
    assert!(core.handle_resume(&fresh, Instant::now(), UNIX_NOW).is_ok());
}

#[test]
fn an_unknown_token_is_refused_unauthorized() {
    let (mut core, ..) = call_of_two();
    let refused = core
        .handle_resume("guess", Instant::now(), UNIX_NOW)
        .unwrap_err();
    assert_eq!(refused.code, ClientErrorCode::Unauthorized);
}

#[test]
fn when_the_grace_period_ends_the_peer_leaves_and_the_others_are_told() {
    let (mut core, alice, bob, _, _) = call_of_two();
    let old = token(&core, bob);
    let start = Instant::now();
    core.handle_detached(bob, start, GRACE);
    drain(&mut core);
    assert!(core
        .resume_expired(start + GRACE - Duration::from_secs(1))
        .is_empty());
    assert!(!core.handle_resume_expired(bob, start + Duration::from_secs(29)));
    // A resume right at the end is too late.
    let late = core
        .handle_resume(&old, start + GRACE, UNIX_NOW)
        .unwrap_err();
    assert_eq!(late.code, ClientErrorCode::NotFound);

    assert_eq!(core.resume_expired(start + GRACE), vec![bob]);
    assert!(core.handle_resume_expired(bob, start + GRACE));
    let outputs = drain(&mut core);
    assert_eq!(told(&outputs, alice), vec![left(&[bob])]);
    assert!(
        monitor_events(&outputs).contains(&EventKind::ResumeExpired {
            room: "demo".into(),
            peer_id: bob.to_string(),
        })
    );
    assert!(!core.is_joined(bob));
    assert!(core.resume_expired(start + GRACE).is_empty());
    let gone = core
        .handle_resume(&old, start + GRACE, UNIX_NOW)
        .unwrap_err();
    assert_eq!(gone.code, ClientErrorCode::Unauthorized, "forgotten");
}

#[test]
fn a_resume_before_the_timer_fires_keeps_the_peer() {
    let (mut core, _, bob, ..) = call_of_two();
    let start = Instant::now();
    core.handle_detached(bob, start, GRACE);
    core.handle_resume(
        &token(&core, bob),
        start + Duration::from_secs(10),
        UNIX_NOW,
    )
    .unwrap();
    // The timer of the drop fires later: the peer is attached, nothing happens.
    assert!(core.resume_expired(start + GRACE).is_empty());
    assert!(!core.handle_resume_expired(bob, start + GRACE));
    assert!(core.is_joined(bob));
}

#[test]
fn a_room_moved_while_the_peer_was_away_is_told_on_resume() {
    let (mut core, alice, bob, ..) = call_of_two();
    let old = token(&core, bob);
    core.handle_detached(bob, Instant::now(), GRACE);
    core.handle_node_lost(NODE, "killed");
    let outputs = drain(&mut core);
    assert!(matches!(
        told(&outputs, alice).as_slice(),
        [Notification::RoomMoved { .. }]
    ));
    let resume = core.handle_resume(&old, Instant::now(), UNIX_NOW).unwrap();
    assert!(!resume.answer.joined);
    assert_eq!(resume.answer.resume_token, None);
    assert!(
        matches!(resume.missed, Some(Notification::RoomMoved { ref room, .. }) if room == "demo")
    );
    // Attached peers were told at once and join again: their tokens are gone.
    let refused = core.handle_resume("whatever alice had", Instant::now(), UNIX_NOW);
    assert!(refused.is_err());
    assert_eq!(core.resumption.token(alice), None);
}

#[test]
fn a_peer_that_left_or_never_joined_has_nothing_to_keep() {
    let (mut core, alice, bob, ..) = call_of_two();
    let old = token(&core, bob);
    core.handle_leave(bob).unwrap();
    assert_eq!(core.handle_detached(bob, Instant::now(), GRACE), None);
    assert_eq!(
        core.handle_resume(&old, Instant::now(), UNIX_NOW)
            .unwrap_err()
            .code,
        ClientErrorCode::Unauthorized
    );
    // Resume off: the peer leaves at once (the caller's `leave`).
    assert_eq!(
        core.handle_detached(alice, Instant::now(), Duration::ZERO),
        None
    );
    assert!(core.is_joined(alice));
}

#[test]
fn a_session_whose_join_token_expired_is_not_resumed() {
    let mut core = new_core(limits());
    create_room(&mut core, "demo", NODE);
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let expiring = |peer_expires: u64| Credentials {
        rights: Rights::ALL,
        identity: Some("someone".into()),
        expires_at: Some(peer_expires),
        via: Via::Ws,
    };
    for (peer, name) in [(alice, "Alice"), (bob, "Bob")] {
        let step = core.handle_join(
            peer,
            &args("demo", name),
            expiring(UNIX_NOW),
            Instant::now(),
        );
        assert!(matches!(step, Ok(JoinStep::Joined(_))), "{step:?}");
    }
    let (alice_token, bob_token) = (token(&core, alice), token(&core, bob));
    let now = Instant::now();
    core.handle_detached(alice, now, GRACE);
    core.handle_detached(bob, now, GRACE);
    // Within the clock skew tolerated at the join, the token still holds.
    let skew = crate::TOKEN_CLOCK_SKEW.as_secs();
    assert!(core
        .handle_resume(&alice_token, now, UNIX_NOW + skew)
        .is_ok());
    let refused = core
        .handle_resume(&bob_token, now, UNIX_NOW + skew + 1)
        .unwrap_err();
    assert_eq!(refused.code, ClientErrorCode::Unauthorized);
    assert!(refused.message.contains("expired"), "{}", refused.message);
}
