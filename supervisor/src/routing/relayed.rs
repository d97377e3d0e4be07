//! The sessions other hosts relay here: each is served like a `/ws` connection of this host
//! (the same request handling, the same outbox bounded in bytes), except that its frames come
//! and go over the link, and what the edge of the relaying host already did (WebSocket
//! keepalive, the request rate) is not done twice. The relaying host does not interpret the
//! frames; this host trusts it to be a member of the cluster (it proved the secret), nothing
//! more: every request is checked here as any client's.

use std::net::IpAddr;
use std::sync::Arc;

use cluster_api::{LinkMessage, SessionId};
use uuid::Uuid;

use super::links::Link;
use super::Routing;
use crate::driver::rooms::Rooms;
use crate::edge::admission::AddressBuckets;
use crate::edge::outbox::{Inbox, Outbox, OUTBOX_BYTES};
use crate::edge::signaling::{handle, Asker, Handled};
use crate::monitoring::metrics::Metrics;
use signaling_api::{error_answer, ClientError, ClientErrorCode};

/// Close code of a session whose client does not read (as on `/ws`).
const CLOSE_TOO_SLOW: u16 = 1013;
/// Close code of a session whose peer another connection resumed (as on `/ws`).
const CLOSE_RESUMED_ELSEWHERE: u16 = 4000;
/// Close code of a relayed client that floods this host faster than it can answer.
const CLOSE_POLICY: u16 = 1008;

/// What serving a relayed session needs.
pub struct RelayServer {
    /// The rooms.
    pub rooms: Arc<Rooms>,
    /// Counters.
    pub metrics: Metrics,
    /// Joins per client address (the client's, as the relaying host saw it).
    pub joins: Arc<AddressBuckets>,
    /// The cluster.
    pub routing: Arc<Routing>,
}

impl RelayServer {
    /// Serves `session`, relayed by `link`'s host for `client`, until either side ends it.
    pub async fn serve(
        self: Arc<Self>,
        link: Arc<Link>,
        session: SessionId,
        client: IpAddr,
        mut inbound: Inbox,
    ) {
        let peer = Uuid::new_v4();
        let (outbox, mut queued) = Outbox::new(OUTBOX_BYTES);
        let overflow = queued.overflow.clone();
        self.rooms.connected(peer, outbox.clone());
        tracing::debug!(%peer, host = %link.peer(), %session, "relayed session opened");
        let mut asker = Asker {
            session: peer,
            peer,
            client,
            joins: &self.joins,
            routing: Some(&self.routing),
            relayed: true,
        };
        // What this host writes to the client goes over the link, in order; a full link
        // makes this writer wait, and the session's own outbox bounds what waits.
        let writing = link.clone();
        let writer = tokio::spawn(async move {
            while let Some(text) = queued.recv().await {
                if !writing.send(LinkMessage::Frame { session, text }).await {
                    break;
                }
            }
        });
        let inbound_overflow = inbound.overflow.clone();
        let (code, reason) = loop {
            let text = tokio::select! {
                biased;
                () = overflow.notified() => {
                    if outbox.is_moved() {
                        break (crate::edge::signaling::CLOSE_ROOM_MOVED, "the room moved to another host: resume");
                    }
                    if outbox.is_evicted() {
                        break (CLOSE_RESUMED_ELSEWHERE, "resumed on another connection");
                    }
                    self.metrics.signaling_error("too_slow");
                    break (CLOSE_TOO_SLOW, "too slow: notifications would be lost; join again");
                }
                () = inbound_overflow.notified() => {
                    break (CLOSE_POLICY, "requests faster than they can be answered");
                }
                text = inbound.recv() => match text {
                    Some(text) => text,
                    // The relaying host ended it (the client left) or the link is gone.
                    None => break (1000, ""),
                },
            };
            match handle(&self.rooms, &self.metrics, &mut asker, &text).await {
                Handled::Answer(answer) => {
                    outbox.push(answer);
                }
                Handled::Done => {}
                // A relayed session is never relayed again (hosts that disagree on an owner
                // would bounce it); the cluster answers such a join with a refusal instead.
                Handled::Relay(host) => {
                    let id = envelope::Envelope::parse(&text).ok().map(|e| e.id);
                    let moved = ClientError::new(
                        ClientErrorCode::ClusterUnavailable,
                        format!("host {host} serves this room: join again"),
                    );
                    outbox.push(error_answer(id, &moved));
                }
            }
        };
        self.rooms.disconnected(asker.session, asker.peer, &outbox);
        drop(outbox);
        // Let the last frames (answers, `shuttingDown`) reach the link before the close.
        let mut writer = writer;
        if tokio::time::timeout(std::time::Duration::from_secs(3), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
        link.served_ended(session, code, reason);
        tracing::debug!(peer = %asker.peer, host = %link.peer(), %session, code, "relayed session ended");
    }
}
