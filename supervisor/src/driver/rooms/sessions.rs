//! What a client's connection asks of the rooms: it registers its outbox, sends each request
//! as an input and waits for its reply (a connection's requests go one at a time, as the
//! protocol's clients send them), and on the way out leaves its peer resumable or gone. A
//! `join`'s token is checked here, before the core sees it: who the peer is and what it may
//! do come from the token, never from the client.

use std::sync::Arc;

use super::recording::Asked;
use super::Rooms;
use crate::edge::join_tokens::unix_now;
use crate::edge::outbox::Outbox;
use room_core::rooms::{Credentials, Input, Rights, Via};
use signaling_api::{ClientError, ClientErrorCode, JoinArgs, PeerId, Request};

impl Rooms {
    /// A client connected: its connection `session` speaks for the peer of the same id, and
    /// what the core says to either goes to `outbox`.
    pub fn connected(&self, session: PeerId, outbox: Outbox) {
        self.connected_via(session, outbox, Via::Ws);
    }

    /// [`Rooms::connected`] for a session that came by `via` (WHIP, WHEP): its peer is
    /// shown so.
    pub fn connected_via(&self, session: PeerId, outbox: Outbox, via: Via) {
        let mut state = self.state();
        state.sessions.insert(session, outbox.clone());
        state.outboxes.insert(session, outbox);
        if via != Via::Ws {
            state.via.insert(session, via);
        }
    }

    /// Request `id` of `session` (speaking for `peer`), answered on its outbox once the core
    /// replies. Returns the peer the connection speaks for after a `resume`.
    async fn ask(self: &Arc<Self>, session: PeerId, id: u64, input: Input) -> Option<PeerId> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.state().waiters.insert((session, id), tx);
        self.input(input);
        rx.await.ok().flatten()
    }

    /// Any request but `join` and `resume`.
    pub async fn request(
        self: &Arc<Self>,
        session: PeerId,
        peer: PeerId,
        id: u64,
        request: Request,
    ) {
        // Recordings run outside the core (a recorder process, files).
        let asked = match request {
            Request::StartRecording(args) => Asked::Start { only: args.peer },
            Request::StopRecording => Asked::Stop,
            request => {
                let input = Input::Request {
                    session,
                    peer,
                    id,
                    request,
                };
                self.ask(session, id, input).await;
                return;
            }
        };
        self.client_recording((session, peer, id), asked).await;
    }

    /// `join`: refused here if its token is not good, else answered by the core once the peer
    /// is in (or refused).
    pub async fn join(
        self: &Arc<Self>,
        session: PeerId,
        peer: PeerId,
        id: u64,
        args: JoinArgs,
    ) -> Result<(), ClientError> {
        let (args, mut credentials) = self.admit(args)?;
        credentials.via = self.state().via.get(&session).copied().unwrap_or_default();
        let input = Input::Join {
            session,
            peer,
            id,
            args,
            credentials,
        };
        self.ask(session, id, input).await;
        Ok(())
    }

    /// `resume` with `token`: the peer the connection speaks for from now on (the same one
    /// when refused).
    pub async fn resume(
        self: &Arc<Self>,
        session: PeerId,
        peer: PeerId,
        id: u64,
        token: String,
    ) -> PeerId {
        let input = Input::Resume {
            session,
            peer,
            id,
            token,
            unix_now: unix_now(),
        };
        self.ask(session, id, input).await.unwrap_or(peer)
    }

    /// The connection `session` (whose frames went to `outbox`), speaking for `peer`, ended.
    /// The peer, if in a room, stays there for the resume grace period, or leaves at once
    /// when resume is off; a peer another connection has taken over is not this one's any
    /// more.
    pub fn disconnected(self: &Arc<Self>, session: PeerId, peer: PeerId, outbox: &Outbox) {
        {
            let mut state = self.state();
            state.sessions.remove(&session);
            state.via.remove(&session);
            state.waiters.retain(|(s, _), _| *s != session);
            state.attached.remove(&session);
            if !state.outboxes.get(&peer).is_some_and(|o| o.same_as(outbox)) {
                return;
            }
            state.outboxes.remove(&peer);
        }
        self.input(Input::Detached { peer });
    }

    /// The join as its token allows it (the token's name, else its identity, as the display
    /// name: a client cannot pick a name to pass for someone else) and the credentials the
    /// token gives; everything, and the name asked for, when join tokens are off.
    fn admit(&self, mut args: JoinArgs) -> Result<(JoinArgs, Credentials), ClientError> {
        let Some(verifier) = &self.join_verifier else {
            return Ok((args, Rights::OPEN.into()));
        };
        match verifier.verify(args.token.as_deref(), &args.room, unix_now()) {
            Ok(grant) => {
                tracing::info!(
                    room = %args.room,
                    identity = %grant.identity,
                    publish = grant.can_publish,
                    subscribe = grant.can_subscribe,
                    record = grant.can_record,
                    "join token accepted"
                );
                // An identity longer than a display name may be shows its first 64 characters.
                args.display_name = grant
                    .name
                    .unwrap_or_else(|| grant.identity.chars().take(64).collect());
                let rights = Rights {
                    publish: grant.can_publish,
                    subscribe: grant.can_subscribe,
                    record: grant.can_record,
                };
                let credentials = Credentials {
                    rights,
                    identity: Some(grant.identity),
                    expires_at: Some(grant.expires_at),
                    via: Via::Ws,
                };
                Ok((args, credentials))
            }
            Err(e) => {
                tracing::warn!(room = %args.room, reason = %e, "join refused: token");
                Err(ClientError::new(
                    ClientErrorCode::Unauthorized,
                    e.to_string(),
                ))
            }
        }
    }
}
