//! Recording across hosts, both sides of the link: a room's owner asks the host of a
//! track's router to record it with its own recorder ([`LinkMessage::RecordTrack`], ended
//! with [`LinkMessage::EndTrack`]); that host records only producers of routers the asking
//! host created on its nodes, into its own `RECORD_DIR`, and tells it when such a track
//! fails ([`LinkMessage::RecordedTrackFailed`]).

use std::sync::Arc;

use cluster_api::LinkMessage;
use ids::HostId;
use ipc::recorder::TrackSummary;
use tokio::sync::oneshot;

use super::{Remote, State};
use crate::driver::node_link::NodeId;
use crate::driver::remote::{EndedThere, Place, RecordedThere, RemoteTrack};
use crate::routing::links::Link;

/// Calls to other hosts about recorded tracks, waiting for their answer, by track number.
#[derive(Default)]
pub(super) struct RecordCalls {
    opening: std::collections::HashMap<u64, Waiting<(String, String)>>,
    ending: std::collections::HashMap<u64, Waiting<TrackSummary>>,
}

/// The host and link a call went on, and where its answer goes.
type Waiting<T> = (HostId, u64, oneshot::Sender<Result<T, String>>);

impl RecordCalls {
    /// Drops the calls that went on `link` to `host`: their callers hear that it is down.
    pub(super) fn link_down(&mut self, host: &HostId, link: u64) {
        self.opening
            .retain(|_, (h, l, _)| !(h == host && *l == link));
        self.ending
            .retain(|_, (h, l, _)| !(h == host && *l == link));
    }
}

impl Remote {
    // ---- asking: this host's recordings of tracks on other hosts' nodes ----

    /// Asks the host of `node` to record `track`.
    pub(super) fn ask_record(
        &self,
        node: NodeId,
        track: RemoteTrack,
    ) -> Option<(Place, RecordedThere)> {
        let mut state = self.state();
        let borrowed = state.borrowed.get(&node)?.clone();
        let place = Place {
            host: borrowed.host.clone(),
            node: NodeId(borrowed.node),
        };
        let (answer, answered) = oneshot::channel();
        let Some(link) = (self.links.link(&borrowed.host)).filter(|l| l.id() == borrowed.link)
        else {
            // Dropped: the caller hears the link is down.
            return Some((place, answered));
        };
        let number = track.track;
        (state.records.opening).insert(number, (borrowed.host, borrowed.link, answer));
        drop(state);
        let message = LinkMessage::RecordTrack {
            track: track.track,
            node: borrowed.node,
            router: track.router,
            producer: track.producer,
            room: track.room,
            folder: track.folder,
            name: track.name,
        };
        if !link.try_send(message) {
            self.state().records.opening.remove(&number);
        }
        Some((place, answered))
    }

    /// Asks `host` to end the track `track` it records for this host.
    pub(super) fn ask_end(&self, host: &HostId, track: u64) -> EndedThere {
        let (answer, answered) = oneshot::channel();
        let Some(link) = self.links.link(host) else {
            return answered;
        };
        (self.state().records.ending).insert(track, (host.clone(), link.id(), answer));
        if !link.try_send(LinkMessage::EndTrack { track }) {
            self.state().records.ending.remove(&track);
        }
        answered
    }

    /// `link`'s host answers whether it records track `track`.
    pub fn track_recording(
        &self,
        link: &Arc<Link>,
        track: u64,
        result: Result<(String, String), String>,
    ) {
        let waiter = take_waiter(&mut self.state(), |s| &mut s.records.opening, link, track);
        if let Some(waiter) = waiter {
            let _ = waiter.send(result);
        }
    }

    /// `link`'s host ended track `track`.
    pub fn track_ended(&self, link: &Arc<Link>, track: u64, result: Result<TrackSummary, String>) {
        let waiter = take_waiter(&mut self.state(), |s| &mut s.records.ending, link, track);
        if let Some(waiter) = waiter {
            let _ = waiter.send(result);
        }
    }

    /// A track `link`'s host records for this host stopped on its own.
    pub fn recorded_track_failed(&self, link: &Arc<Link>, track: u64, summary: TrackSummary) {
        let Some(recordings) = self.rooms().and_then(|r| r.recordings().cloned()) else {
            return;
        };
        let host = link.peer().clone();
        tokio::spawn(async move { recordings.track_failed(Some(&host), track, summary).await });
    }

    // ---- recording here for other hosts' rooms ----

    /// `link`'s host asks this host to record a producer of its router on node `node`.
    pub fn record_track(self: &Arc<Self>, link: &Arc<Link>, node: u32, track: RemoteTrack) {
        let host = link.peer().clone();
        let node = NodeId(node);
        let theirs = (self.state().lent.get(&track.router))
            .is_some_and(|l| l.host == host && l.link == link.id() && l.node == node);
        let recordings = self.rooms().and_then(|r| r.recordings().cloned());
        let link = link.clone();
        tokio::spawn(async move {
            let number = track.track;
            let result = match recordings {
                _ if !theirs => Err(format!(
                    "no router {} of host {host} on {node} here",
                    track.router
                )),
                Some(recordings) => recordings.record_for(&host, link.id(), node, track).await,
                None => Err("this host does not record".to_string()),
            };
            if let Err(why) = &result {
                tracing::warn!(%host, track = number, "not recording a track of another host's room: {why}");
            }
            let answer = LinkMessage::TrackRecording {
                track: number,
                result,
            };
            if !link.send(answer).await {
                tracing::debug!(%host, "a recording answer for a closed link");
            }
        });
    }

    /// `link`'s host asks this host to end the track `track` it records for it.
    pub fn end_track(self: &Arc<Self>, link: &Arc<Link>, track: u64) {
        let recordings = self.rooms().and_then(|r| r.recordings().cloned());
        let link = link.clone();
        tokio::spawn(async move {
            let host = link.peer().clone();
            let result = match recordings {
                Some(recordings) => recordings.end_for(&host, link.id(), track).await,
                None => Err("this host does not record".to_string()),
            };
            let _ = link.send(LinkMessage::TrackEnded { track, result }).await;
        });
    }

    /// Tells `host` that the track `track` this host records for it stopped on its own.
    pub(super) fn tell_failed(&self, host: &HostId, link: u64, track: u64, summary: TrackSummary) {
        if let Some(link) = self.links.link(host).filter(|l| l.id() == link) {
            if !link.try_send(LinkMessage::RecordedTrackFailed { track, summary }) {
                tracing::warn!(%host, track, "cannot tell a host that its track failed: the link is full");
            }
        }
    }
}

/// The waiter of call `track` in the table `table` picks, when it went to `link`'s host on
/// that link (anything else is not an answer to this host's call).
fn take_waiter<T>(
    state: &mut State,
    table: impl FnOnce(&mut State) -> &mut std::collections::HashMap<u64, Waiting<T>>,
    link: &Arc<Link>,
    track: u64,
) -> Option<oneshot::Sender<Result<T, String>>> {
    let table = table(state);
    match table.get(&track) {
        Some((host, l, _)) if host == link.peer() && *l == link.id() => {
            table.remove(&track).map(|(_, _, waiter)| waiter)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str) -> HostId {
        HostId::parse(id).expect("a valid host id")
    }

    #[test]
    fn a_link_that_goes_down_answers_only_the_recording_calls_that_went_on_it() {
        let mut calls = RecordCalls::default();
        let (opening, mut opened) = oneshot::channel();
        let (ending, mut ended) = oneshot::channel();
        let (other, mut kept) = oneshot::channel();
        calls.opening.insert(1, (host("h2"), 7, opening));
        calls.ending.insert(2, (host("h2"), 7, ending));
        // The same host through a newer link, and another host: not this link's.
        calls.opening.insert(3, (host("h2"), 8, other));
        let (elsewhere, mut away) = oneshot::channel();
        calls.ending.insert(4, (host("h3"), 7, elsewhere));
        calls.link_down(&host("h2"), 7);
        // Their callers hear it at once (the sender is gone), not at their timeout.
        assert!(matches!(
            opened.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(
            ended.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(
            kept.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        assert!(matches!(
            away.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        assert_eq!((calls.opening.len(), calls.ending.len()), (1, 1));
    }
}
