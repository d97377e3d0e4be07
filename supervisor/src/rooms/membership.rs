//! Joining and leaving, performed: the core admits or refuses, and when a room does not exist
//! this places it, starts a node if needed and creates its router. Joins and leaves of one
//! room are ordered by its lock; other rooms go on.

use std::time::{Duration, Instant};

use ipc::calls as call;
use ipc::messages::RoomId;

use super::core::JoinStep;
use super::{link_error, perform, Rooms};
use crate::node_lifecycle::SpawnOrigin;
use crate::placement::Placement;
use crate::protocol::{ClientError, ClientErrorCode, Done, JoinArgs, Joined, PeerId};

/// How long a join waits for a media node when none is ready.
const NODE_WAIT: Duration = Duration::from_secs(10);

impl Rooms {
    /// Joins `peer` to a room, creating the room on the least-loaded worker if needed.
    pub async fn join(&self, peer: PeerId, args: JoinArgs) -> Result<Joined, ClientError> {
        let room_id = RoomId(args.room.clone());
        let room_lock = self.room_lock(&room_id);
        let _membership = room_lock.lock().await;
        let (step, cleanups) = self.with_core(|core| core.handle_join(peer, &args, Instant::now()));
        perform(&self.pool, cleanups).await;
        if let JoinStep::Joined(answer) = step? {
            return Ok(answer);
        }
        self.create_room(&room_id).await?;
        let (step, cleanups) = self.with_core(|core| core.handle_join(peer, &args, Instant::now()));
        perform(&self.pool, cleanups).await;
        match step? {
            JoinStep::Joined(answer) => Ok(answer),
            // Created and lost again already (its node died).
            JoinStep::NeedsRoom => Err(ClientError::new(
                ClientErrorCode::NodeUnavailable,
                "the room's node failed while joining; retry",
            )),
        }
    }

    async fn create_room(&self, room_id: &RoomId) -> Result<(), ClientError> {
        // Right after a node died its replacement may still be starting: wait for it.
        let links = self.pool.ready_within(NODE_WAIT).await;
        let ready: Vec<_> = links.iter().map(|l| (l.id, l.hello.workers)).collect();
        let running = self.pool.running();
        let placement = self.state().core.place_room(&ready, running);
        let (link, worker) = match placement {
            Placement::Worker(node, worker) => (self.link(node)?, worker),
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
        let call::RouterCreated { rtp_capabilities } = link
            .call(call::CreateRouter {
                room: room_id.clone(),
                worker,
            })
            .await
            .map_err(link_error)?;
        let (created, cleanups) = self.with_core(|core| {
            core.handle_room_created(
                room_id.clone(),
                link.id,
                worker,
                &rtp_capabilities,
                Instant::now(),
            )
        });
        perform(&self.pool, cleanups).await;
        created
    }

    /// Takes `peer` out of its room: closes its transports (and so its producers and
    /// consumers), tells the others, and closes the room when it is empty.
    pub async fn leave(&self, peer: PeerId) -> Result<Done, ClientError> {
        // A connection's requests come one at a time, so its room cannot change meanwhile
        // (except by its node's loss, which the core sees).
        let room_id = self.state().core.room_of(peer).cloned();
        let Some(room_id) = room_id else {
            return Err(super::core::not_joined());
        };
        let room_lock = self.room_lock(&room_id);
        let _membership = room_lock.lock().await;
        let (left, cleanups) = self.with_core(|core| core.handle_leave(peer));
        // Under the room's lock: a join right after must not meet the closing router.
        perform(&self.pool, cleanups).await;
        left.map(|()| Done {})
    }
}
