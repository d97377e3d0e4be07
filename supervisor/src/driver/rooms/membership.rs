//! Joining and leaving, performed: the core admits or refuses, and when no router of the room
//! can take the peer this places a new one, starts a node if needed, creates the router and
//! carries out the links and pipes that join it to the room's others. Joins and leaves of one
//! room are ordered by its lock; other rooms go on.

use std::time::{Duration, Instant};

use ipc::calls as call;
use ipc::messages::{RoomId, RouterId};

use super::{link_error, Rooms};
use crate::edge::join_tokens::unix_now;
use room_core::lifecycle::SpawnOrigin;
use room_core::placement::Placement;
use room_core::rooms::{Credentials, JoinStep, Rights};
use signaling_api::{ok_answer, Answer, ClientError, ClientErrorCode, Done, JoinArgs, PeerId};

/// How long a join waits for a media node when none is ready.
const NODE_WAIT: Duration = Duration::from_secs(10);

impl Rooms {
    /// Joins `peer` to a room: on the router of the room with the most headroom, or on a new
    /// one (a new room's first, or one more when the room's are full). Admitted, the answer to
    /// request `id` is queued for the peer at once, under the core's lock, so that it reaches
    /// the client before any notification of the room (which the client would not know what
    /// to do with before it knows it joined).
    pub async fn join(&self, peer: PeerId, id: u64, args: JoinArgs) -> Result<(), ClientError> {
        let (args, credentials) = self.admit(args)?;
        let room_id = RoomId(args.room.clone());
        let room_lock = self.room_lock(&room_id);
        let _membership = room_lock.lock().await;
        let answer = |step: &Result<JoinStep, ClientError>| match step {
            Ok(JoinStep::Joined(joined)) => {
                Some((peer, ok_answer(id, &Answer::Joined(joined.clone()))))
            }
            _ => None,
        };
        let (step, work) = self.with_core_replying(
            |core| core.handle_join(peer, &args, credentials.clone(), Instant::now()),
            answer,
        );
        self.drive(work).await;
        if let JoinStep::Joined(_) = step? {
            return Ok(());
        }
        let joined = match self.open_router(&room_id).await {
            Ok(()) => {
                let (step, work) = self.with_core_replying(
                    |core| core.handle_join(peer, &args, credentials.clone(), Instant::now()),
                    answer,
                );
                self.drive(work).await;
                step
            }
            Err(e) => Err(e),
        };
        match joined {
            Ok(JoinStep::Joined(_)) => Ok(()),
            failed => {
                let ((), work) = self.with_core(|core| core.handle_join_abandoned(&room_id));
                self.drive(work).await;
                match failed {
                    Err(e) => Err(e),
                    // Its new router was lost (its node died) or could not be linked.
                    _ => Err(ClientError::new(
                        ClientErrorCode::NodeUnavailable,
                        "the room's node failed while joining; retry",
                    )),
                }
            }
        }
    }

    /// The join as its token allows it (the token's name, else its identity, as the display
    /// name: a client cannot pick a name to pass for someone else) and the credentials the
    /// token gives; everything, and the name asked for, when join tokens are off.
    fn admit(&self, mut args: JoinArgs) -> Result<(JoinArgs, Credentials), ClientError> {
        let Some(verifier) = &self.join_verifier else {
            return Ok((args, Rights::ALL.into()));
        };
        match verifier.verify(args.token.as_deref(), &args.room, unix_now()) {
            Ok(grant) => {
                tracing::info!(
                    room = %args.room,
                    identity = %grant.identity,
                    publish = grant.can_publish,
                    subscribe = grant.can_subscribe,
                    "join token accepted"
                );
                // An identity longer than a display name may be shows its first 64 characters.
                args.display_name = grant
                    .name
                    .unwrap_or_else(|| grant.identity.chars().take(64).collect());
                let rights = Rights {
                    publish: grant.can_publish,
                    subscribe: grant.can_subscribe,
                };
                let credentials = Credentials {
                    rights,
                    identity: Some(grant.identity),
                    expires_at: Some(grant.expires_at),
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

    /// Places a new router of `room_id`, starting a node if every worker is full, creates it,
    /// and links it to the room's other routers and pipes their producers to it.
    async fn open_router(&self, room_id: &RoomId) -> Result<(), ClientError> {
        // Right after a node died its replacement may still be starting: wait for it.
        let links = self.pool.ready_within(NODE_WAIT).await;
        let ready: Vec<_> = links.iter().map(|l| (l.id, l.hello.workers)).collect();
        let running = self.pool.running();
        let placement = self
            .state()
            .core
            .place_router(room_id, &ready, running, Instant::now());
        let (link, worker) = match placement {
            Placement::Worker(node, worker) => (self.node(node)?, worker),
            Placement::SpawnNode => {
                tracing::info!(room = %room_id, "every worker is full: starting another node");
                let link = self.pool.spawn(SpawnOrigin::Placement).await.map_err(|e| {
                    ClientError::new(
                        ClientErrorCode::NodeUnavailable,
                        format!("cannot start a media node: {e:#}"),
                    )
                })?;
                (link, 0)
            }
            Placement::Full => {
                let limits = self.state().core.limits().clone();
                return Err(ClientError::new(
                    ClientErrorCode::Capacity,
                    format!(
                        "every media worker is full ({} consumers each) and the pool is at --max-nodes {}",
                        limits.max_consumers_per_worker, limits.max_nodes
                    ),
                ));
            }
        };
        let router = RouterId(uuid::Uuid::new_v4());
        let call::RouterCreated { rtp_capabilities } = link
            .call(call::CreateRouter { router, worker })
            .await
            .map_err(link_error)?;
        let (created, work) = self.with_core(|core| {
            core.handle_router_created(
                room_id.clone(),
                router,
                (link.id, worker),
                &rtp_capabilities,
                Instant::now(),
            )
        });
        self.drive(work).await;
        created
    }

    /// Takes `peer` out of its room: closes its transports (and so its producers and
    /// consumers), tells the others, and closes its router (and the room) when empty.
    pub async fn leave(&self, peer: PeerId) -> Result<Done, ClientError> {
        // A connection's requests come one at a time, so its room cannot change meanwhile
        // (except by its node's loss, which the core sees).
        let room_id = self.state().core.room_of(peer).cloned();
        let Some(room_id) = room_id else {
            return Err(room_core::rooms::not_joined());
        };
        let room_lock = self.room_lock(&room_id);
        let _membership = room_lock.lock().await;
        let (left, work) = self.with_core(|core| core.handle_leave(peer));
        // Under the room's lock: a join right after must not meet a closing router.
        self.drive(work).await;
        left.map(|()| Done {})
    }
}
