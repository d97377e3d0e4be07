//! Who is in the room, told cheaply (`peersChanged`): 200 signaling clients join one room
//! within about a second; each builds its view of the room from its join answer and the
//! notifications that follow, and every view ends complete (nobody missing, nobody twice),
//! with far fewer frames than one per join per peer. In a room above `--list-watchers-up-to`,
//! viewers are counted, not listed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use signaling_api::client::Client;
use signaling_api::{Joined, Notification, PeerId};
use tokio::task::JoinSet;

use crate::support::signaling::{self, join, Expect};
use crate::support::Sfu;

const CROWD: usize = 200;

/// A client's view of the room: its join answer, then every `peersChanged` in order; panics
/// on a peer told to have joined that it knew already. With how many frames it took.
fn view(client: &mut Client, joined: &Joined) -> (BTreeSet<PeerId>, usize) {
    let mut room: BTreeSet<PeerId> = BTreeSet::new();
    for peer in &joined.peers {
        assert!(room.insert(peer.peer_id), "{} listed twice", peer.peer_id);
    }
    let mut frames = 0;
    for n in client.seen() {
        if let Notification::PeersChanged { joined, left, .. } = n {
            frames += 1;
            for peer in joined {
                assert!(room.insert(peer.peer_id), "told twice of {}", peer.peer_id);
            }
            for peer in left {
                room.remove(peer);
            }
        }
    }
    (room, frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_peers_joining_within_a_second_all_end_with_the_same_complete_view() {
    // Signaling only: admission's reckoning of the media 200 peers could send is not the point.
    let sfu = Sfu::start(&[
        "--max-peers-per-room",
        "300",
        "--joins-per-minute-per-ip",
        "0",
        "--max-consumers-per-worker",
        "1000000",
    ]);
    let url = sfu.ws_url();
    let started = Instant::now();
    let mut joins = JoinSet::new();
    for i in 0..CROWD {
        let url = url.clone();
        joins.spawn(async move {
            // Spread over a second, as a crowd arrives.
            tokio::time::sleep(Duration::from_millis((i * 1000 / CROWD) as u64)).await;
            let mut client = signaling::connect(&url, None).await;
            let joined = client.ok(&join("crowd", &format!("c{i}"))).await;
            (client, joined)
        });
    }
    let mut crowd = Vec::new();
    while let Some(done) = joins.join_next().await {
        crowd.push(done.expect("a join task"));
    }
    println!("{CROWD} joins in {:?}", started.elapsed());
    // Whatever is still in a tick is told within it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let everyone: BTreeSet<PeerId> = crowd.iter().map(|(_, j)| j.peer_id).collect();
    assert_eq!(everyone.len(), CROWD);
    let mut frames = 0;
    for (client, joined) in &mut crowd {
        let (room, told) = view(client, joined);
        frames += told;
        let mut expected = everyone.clone();
        expected.remove(&joined.peer_id);
        assert_eq!(
            room.len(),
            CROWD - 1,
            "{}'s view: {} peers",
            joined.peer_id,
            room.len()
        );
        assert_eq!(room, expected);
    }
    // One frame per join per peer already there would be CROWD * (CROWD - 1) / 2.
    let one_per_join = CROWD * (CROWD - 1) / 2;
    println!("peersChanged frames: {frames}, against {one_per_join} for one per join");
    assert!(
        frames < one_per_join / 2,
        "{frames} frames: joins were not coalesced"
    );

    // Half leave at once: the others' views lose exactly them.
    let (leaving, staying) = crowd.split_at_mut(CROWD / 2);
    for (client, _) in leaving.iter_mut() {
        client.ok(&signaling_api::calls::Leave {}).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stayed: BTreeSet<PeerId> = staying.iter().map(|(_, j)| j.peer_id).collect();
    for (client, joined) in staying.iter_mut() {
        let (room, _) = view(client, joined);
        let mut expected = stayed.clone();
        expected.remove(&joined.peer_id);
        assert_eq!(room, expected, "{} after the leaves", joined.peer_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_of_a_room_above_the_listing_size_are_counted_not_listed() {
    let sfu = Sfu::start(&["--list-watchers-up-to", "2"]);
    let url = sfu.ws_url();
    let mut host = signaling::connect(&url, None).await;
    host.ok(&join("webinar", "Host")).await;
    let mut cohost = signaling::connect(&url, None).await;
    cohost.ok(&join("webinar", "Cohost")).await;
    let mut viewers = Vec::new();
    for i in 0..3 {
        let mut viewer = signaling::connect(&url, None).await;
        let mut args = join("webinar", &format!("v{i}"));
        args.watch_only = true;
        let joined = viewer.ok(&args).await;
        // The hosts are listed, the viewers before it counted.
        assert_eq!(joined.peers.len(), 2, "{joined:?}");
        assert_eq!(joined.watching, (i > 0).then_some(i as u32));
        viewers.push(viewer);
    }
    let watching = signaling::next_notification(&mut host, "watching 3", |n| match n {
        Notification::PeersChanged {
            watching: Some(3), ..
        } => Some(()),
        _ => None,
    });
    watching.await;
    let told = signaling::told(&mut host, Duration::from_millis(300)).await;
    let listed: Vec<&Notification> = (told.iter())
        .filter(|n| matches!(n, Notification::PeersChanged { joined, .. } if joined.iter().any(|j| j.display_name.starts_with('v'))))
        .collect();
    assert!(listed.is_empty(), "viewers named: {listed:?}");
}
