//! Session resume, performed: a connection that ends without `leave` leaves its peer
//! detached for the grace period ([`RoomCore::handle_detached`](room_core::rooms::RoomCore)) with a
//! timer for its end; `resume` attaches the peer to a new connection (evicting the old one if
//! it is still open) and queues its answer before anything else for it.

use std::sync::Arc;
use std::time::Instant;

use super::Rooms;
use crate::edge::outbox::Outbox;
use signaling_api::{ok_answer, Answer, ClientError, ClientErrorCode, PeerId};

impl Rooms {
    /// A client's connection (whose frames went to `outbox`) ended. Its peer, if in a room,
    /// stays there for the resume grace period, or leaves at once when resume is off; a
    /// peer another connection has taken over is not this connection's any more.
    pub async fn disconnected(self: &Arc<Self>, peer: PeerId, outbox: &Outbox) {
        // One look under the lock: a resume racing this must find the peer either still
        // attached here (and take it over) or detached (and take it back), never between.
        let (until, work) = {
            let mut state = self.state();
            if !state.outboxes.get(&peer).is_some_and(|o| o.same_as(outbox)) {
                return;
            }
            state.outboxes.remove(&peer);
            let until = state
                .core
                .handle_detached(peer, Instant::now(), self.resume_grace);
            (until, self.deliver(&mut state))
        };
        self.drive(work).await;
        match until {
            Some(until) => {
                let rooms = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(until.into()).await;
                    rooms.expire_detached().await;
                });
            }
            None => {
                let _ = self.leave(peer).await;
            }
        }
    }

    /// Detached peers whose grace period is over leave their rooms.
    async fn expire_detached(&self) {
        let now = Instant::now();
        let expired = self.state().core.resume_expired(now);
        for peer in expired {
            let room_id = self.state().core.room_of(peer).cloned();
            // Ordered with the room's joins and leaves, as a `leave` is.
            let room_lock = room_id.map(|id| self.room_lock(&id));
            let _membership = match &room_lock {
                Some(lock) => Some(lock.lock().await),
                None => None,
            };
            let (_, work) = self.with_core(|core| core.handle_resume_expired(peer, now));
            self.drive(work).await;
        }
    }

    /// The connection of `session` (not in a room) presents `token` in request `id`: it
    /// speaks for the token's peer from now on (returned). The answer, then any `roomMoved`
    /// the peer missed, are queued on `outbox` before anything else for the peer.
    pub fn resume(
        &self,
        session: PeerId,
        id: u64,
        token: &str,
        outbox: &Outbox,
    ) -> Result<PeerId, ClientError> {
        if self.resume_grace.is_zero() {
            return Err(ClientError::new(
                ClientErrorCode::Unauthorized,
                "resume is off on this SFU (--resume-grace-secs 0): join again",
            ));
        }
        let mut state = self.state();
        let now_unix = crate::edge::join_tokens::unix_now();
        let resume = state.core.handle_resume(token, Instant::now(), now_unix)?;
        state.outboxes.remove(&session);
        if let Some(old) = state.outboxes.insert(resume.peer, outbox.clone()) {
            if !old.same_as(outbox) {
                tracing::info!(peer = %resume.peer, "a new connection resumed the peer: closing its old one");
                old.evict();
            }
        }
        // A session's first answer: its outbox has room.
        outbox.push(ok_answer(id, &Answer::Resumed(resume.answer)));
        if let Some(missed) = resume.missed {
            outbox.push(missed.to_frame());
        }
        let work = self.deliver(&mut state);
        drop(state);
        if !work.is_empty() {
            tracing::warn!("a resume asked for node requests; none expected");
        }
        Ok(resume.peer)
    }
}
