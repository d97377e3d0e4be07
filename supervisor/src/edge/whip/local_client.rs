//! A client of the rooms inside the supervisor: what a WHIP or WHEP session speaks instead of
//! a WebSocket. Its requests are typed calls written as `/ws` frames and handled by the same
//! `signaling::handle` as a WebSocket's (every edge check, token and limit applies), and its
//! answers come back on its own byte-bounded outbox, read back typed; notifications in
//! between are handed to the caller.

use std::net::IpAddr;
use std::sync::Arc;

use signaling_api::calls::Leave;
use signaling_api::frames::{read_answer, request_frame, typed_answer, CallError, ANSWER_TIMEOUT};
use signaling_api::{Call, Notification, PeerId};
use uuid::Uuid;

use crate::driver::rooms::Rooms;
use crate::edge::admission::AddressBuckets;
use crate::edge::outbox::{Inbox, Outbox, OUTBOX_BYTES};
use crate::edge::signaling::{handle, Asker, Handled};
use crate::monitoring::metrics::Metrics;
use crate::routing::Routing;
use room_core::rooms::Via;

/// Why a call of a local client failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Refused by the SFU, or no (readable) answer.
    #[error("{0}")]
    Call(#[from] CallError),
    /// Another host of the cluster serves the room.
    #[error("the room is served by another host of the cluster ({0})")]
    Elsewhere(String),
    /// The session's outbox overflowed or another connection took its peer over.
    #[error("the session was closed by the SFU")]
    Closed,
}

/// One in-process session.
pub struct LocalClient {
    rooms: Arc<Rooms>,
    metrics: Metrics,
    joins: Arc<AddressBuckets>,
    routing: Option<Arc<Routing>>,
    client: IpAddr,
    /// The connection's id, and the peer it speaks for.
    pub peer: PeerId,
    outbox: Outbox,
    inbox: Inbox,
    next_id: u64,
}

impl LocalClient {
    /// A new session from `client`'s address, registered with the rooms.
    pub fn connect(
        rooms: Arc<Rooms>,
        metrics: Metrics,
        joins: Arc<AddressBuckets>,
        routing: Option<Arc<Routing>>,
        client: IpAddr,
        via: Via,
    ) -> LocalClient {
        let peer = Uuid::new_v4();
        let (outbox, inbox) = Outbox::new(OUTBOX_BYTES);
        rooms.connected_via(peer, outbox.clone(), via);
        LocalClient {
            rooms,
            metrics,
            joins,
            routing,
            client,
            peer,
            outbox,
            inbox,
            next_id: 1,
        }
    }

    /// Sends `call` and waits (at most [`ANSWER_TIMEOUT`]) for its answer; the
    /// notifications that came meanwhile go to `seen`.
    pub async fn call<C: Call>(
        &mut self,
        call: &C,
        seen: &mut Vec<Notification>,
    ) -> Result<C::Answer, Failure> {
        let id = self.next_id;
        self.next_id += 1;
        let text = request_frame(id, call)?;
        let mut asker = Asker {
            session: self.peer,
            peer: self.peer,
            client: self.client,
            joins: &self.joins,
            routing: self.routing.as_ref(),
            relayed: false,
        };
        match handle(&self.rooms, &self.metrics, &mut asker, &text).await {
            Handled::Answer(answer) => return answer_of::<C>(&answer, id),
            Handled::Relay(host) => return Err(Failure::Elsewhere(host.to_string())),
            Handled::Done => {}
        }
        let wait = async {
            loop {
                let Some(frame) = self.inbox.recv().await else {
                    return Err(Failure::Closed);
                };
                match read_answer(&frame) {
                    Some((Some(answered), _)) if answered == id => {
                        return answer_of::<C>(&frame, id);
                    }
                    Some(_) => {}
                    None => {
                        if let Ok(notification) = serde_json::from_str(&frame) {
                            seen.push(notification);
                        }
                    }
                }
            }
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, wait).await {
            Ok(answer) => answer,
            Err(_) => Err(CallError::Timeout(C::METHOD).into()),
        }
    }

    /// The next notification; `None` when the SFU closed the session (its queue overflowed,
    /// or its room moved).
    pub async fn notification(&mut self) -> Option<Notification> {
        let overflow = self.inbox.overflow.clone();
        loop {
            let frame = tokio::select! {
                biased;
                () = overflow.notified() => return None,
                frame = self.inbox.recv() => frame?,
            };
            if let Ok(notification) = serde_json::from_str(&frame) {
                return Some(notification);
            }
        }
    }

    /// Leaves the room (at once: a WHIP session is not resumed) and ends the session.
    pub async fn leave(mut self) {
        let mut seen = Vec::new();
        if let Err(e) = self.call(&Leave {}, &mut seen).await {
            tracing::debug!(peer = %self.peer, "leave: {e}");
        }
        self.close();
    }

    /// Ends the session without leaving first (the peer is kept for the resume grace
    /// period, as for a dropped WebSocket).
    pub fn close(self) {
        self.rooms.disconnected(self.peer, self.peer, &self.outbox);
    }
}

fn answer_of<C: Call>(frame: &str, id: u64) -> Result<C::Answer, Failure> {
    match read_answer(frame) {
        Some((_, Ok(data))) => Ok(typed_answer::<C>(data)?),
        Some((_, Err(refused))) => Err(refused.into()),
        None => Err(CallError::Malformed {
            method: C::METHOD,
            reason: format!("no answer to request {id}"),
        }
        .into()),
    }
}
