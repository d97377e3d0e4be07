//! A drained host leaves without ending its rooms: once its drain has moved their media off
//! its nodes (to other hosts' nodes, lent to it), it hands each room it owns to one of those
//! hosts, whole (room-core's `RoomExport`, each router's node named by its host). The
//! successor imports it, takes the room's key over in etcd (one transaction, fenced by the
//! old owner's name and the key's create revision) and serves it from then on; the lenders
//! hear that their routers belong to the successor now; every host learns that the room's
//! resume tokens go to the successor; and the old host closes its clients' connections
//! (1012), so that each resumes — through any host — where its room is now. Nothing on the
//! nodes is touched: the media goes on throughout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_api::LinkMessage;
use ids::HostId;
use ipc::messages::RoomId;
use monitor_api::EventKind;
use room_core::cluster::Input;
use room_core::rooms::{RoomExport, DRAIN_DEADLINE};
use tokio::sync::{oneshot, watch};

use super::links::Link;
use super::Routing;
use crate::driver::rooms::Rooms;

/// How long a handoff waits for its successor's word.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);

/// A room's state sent over a link at most (a larger link frame would end the link): a
/// room of some hundreds of peers; a larger one is not handed over (nor kept on standby).
pub(crate) const MAX_EXPORT_BYTES: usize = cluster_api::sealed::MAX_MESSAGE_BYTES - 4096;

/// Resume tokens forwarded at most (a bound on what other hosts can make this one keep).
const MAX_FORWARDS: usize = 100_000;

/// Handoffs under way, and where handed-over rooms' resume tokens go.
pub(crate) struct Handoffs {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Result<(), String>>>>,
    forwards: Mutex<HashMap<String, HostId>>,
    /// Set once this host's drain is over (its rooms handed over).
    drained: watch::Sender<bool>,
}

impl Default for Handoffs {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(1),
            waiting: Mutex::default(),
            forwards: Mutex::default(),
            drained: watch::channel(false).0,
        }
    }
}

impl Handoffs {
    fn forwards(&self) -> std::sync::MutexGuard<'_, HashMap<String, HostId>> {
        self.forwards.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waiting(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<(), String>>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Routing {
    /// Drains this host: its nodes (the peers move to other hosts' nodes, make before
    /// break), then its rooms (handed to other hosts), then `host_drained`. The peers its
    /// rooms move off its nodes.
    pub fn drain_host(self: &Arc<Self>) -> u32 {
        let Some(rooms) = self.rooms.get().and_then(std::sync::Weak::upgrade) else {
            return 0;
        };
        if self.is_draining() {
            return 0;
        }
        self.start_draining();
        let started = Instant::now();
        let peers = rooms.drain_host();
        let this = self.clone();
        tokio::spawn(async move {
            let deadline = started + DRAIN_DEADLINE + Duration::from_secs(5);
            while rooms.nodes_running() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let nodes_left = rooms.nodes_running();
            let handed = this.hand_over_rooms(&rooms).await;
            let rooms_left = this.owned().len() as u32;
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(ms, nodes_left, handed, rooms_left, "host drained");
            rooms.publish(EventKind::HostDrained {
                host: this.me.to_string(),
                ms,
                nodes_left,
                rooms_left,
            });
            this.handoffs.drained.send_replace(true);
        });
        peers
    }

    /// Resolves once this host's drain is over.
    pub async fn drained(&self) {
        let mut done = self.handoffs.drained.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Hands every room this host owns to another host; how many went.
    async fn hand_over_rooms(self: &Arc<Self>, rooms: &Arc<Rooms>) -> usize {
        let mut handed = 0;
        for room in self.owned() {
            match self.hand_over(rooms, &room).await {
                Ok(to) => {
                    handed += 1;
                    tracing::info!(room = %room, %to, "room handed over");
                }
                Err(e) => tracing::error!(room = %room, "cannot hand the room over: {e}"),
            }
        }
        handed
    }

    /// Hands `room` to the host that has most of its routers; that host.
    async fn hand_over(
        self: &Arc<Self>,
        rooms: &Arc<Rooms>,
        room: &RoomId,
    ) -> Result<HostId, String> {
        let started = Instant::now();
        let remote = self.links.remote().cloned().ok_or("no cluster links")?;
        let revision = (self.state().claims.get(room).copied()).ok_or("no claim of it here")?;
        let mut export = None;
        // A join or a node call under way: wait for it.
        for _ in 0..50 {
            match rooms.export_room(room) {
                Ok(e) => {
                    export = Some(e);
                    break;
                }
                Err(room_core::rooms::HandoffError::Busy(_)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let mut export = export.ok_or("its joins or node calls never settled")?;
        remote.globalize(&mut export);
        let to = self.successor(&export).ok_or("no other host is linked")?;
        let result = self.send_handoff(&to, room, revision, &export).await;
        if let Err(e) = result {
            // Served here again, as before (its peers' connections are still here).
            if let Err(back) = remote
                .localize(&mut export)
                .map_err(|e| e.to_string())
                .and_then(|()| rooms.restore_room(export).map_err(|e| e.to_string()))
            {
                tracing::error!(room = %room, "the room is lost: {back}");
            }
            return Err(format!("host {to} did not take it: {e}"));
        }
        // The successor owns it: its lenders, every host's resumes and its clients follow.
        for (host, routers) in remote.lenders(&export, &to) {
            if let Some(link) = self.links.link(&host) {
                let _ = link.try_send(LinkMessage::LentMoved {
                    routers,
                    to: to.clone(),
                });
            }
        }
        let tokens: Vec<String> = (export.peers.iter())
            .filter_map(|p| p.resume_token.clone())
            .collect();
        self.forward(&tokens, &to);
        for host in self.links.linked() {
            if let Some(link) = self.links.link(&host) {
                let forward = LinkMessage::Forward {
                    tokens: tokens.clone(),
                    to: to.clone(),
                };
                let _ = link.try_send(forward);
            }
        }
        {
            let mut state = self.state();
            state.claims.remove(room);
            let owner = Input::Owner {
                room: room.clone(),
                owner: Some(to.clone()),
            };
            self.feed(&mut state, owner);
        }
        let peers: Vec<_> = export.peers.iter().map(|p| p.peer).collect();
        rooms.move_sessions_away(&peers);
        self.metrics.room_handed_over();
        rooms.publish(EventKind::RoomHandedOver {
            room: room.0.clone(),
            to: to.to_string(),
            peers: peers.len() as u32,
            ms: started.elapsed().as_millis() as u64,
        });
        Ok(to)
    }

    /// The host to hand `export` to: the linked host with most of its routers, else the
    /// linked host with the most headroom.
    fn successor(&self, export: &RoomExport) -> Option<HostId> {
        let linked = self.links.linked();
        let mut routers: HashMap<HostId, usize> = HashMap::new();
        for router in &export.routers {
            if let Ok(host) = HostId::parse(&router.host) {
                if host != self.me && linked.contains(&host) {
                    *routers.entry(host).or_default() += 1;
                }
            }
        }
        let headroom = |host: &HostId| {
            self.hosts()
                .iter()
                .find(|h| h.id == *host)
                .map_or(0, |h| h.headroom)
        };
        linked
            .into_iter()
            .filter(|h| *h != self.me)
            .max_by_key(|h| {
                (
                    routers.get(h).copied().unwrap_or(0),
                    headroom(h),
                    std::cmp::Reverse(h.clone()),
                )
            })
    }

    async fn send_handoff(
        &self,
        to: &HostId,
        room: &RoomId,
        revision: i64,
        export: &RoomExport,
    ) -> Result<(), String> {
        let link = self.links.link(to).ok_or("its link is down")?;
        let json = serde_json::to_string(export).map_err(|e| e.to_string())?;
        if json.len() > MAX_EXPORT_BYTES {
            return Err(format!(
                "its state is {} bytes, more than a link message carries ({MAX_EXPORT_BYTES})",
                json.len()
            ));
        }
        let id = self.handoffs.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.handoffs.waiting().insert(id, tx);
        let handoff = LinkMessage::Handoff {
            id,
            room: room.0.clone(),
            revision,
            export: json,
        };
        if !link.send(handoff).await {
            self.handoffs.waiting().remove(&id);
            return Err("its link closed".into());
        }
        let answer = tokio::time::timeout(HANDOFF_TIMEOUT, rx).await;
        self.handoffs.waiting().remove(&id);
        match answer {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("its link closed".into()),
            Err(_) => Err(format!("no answer within {HANDOFF_TIMEOUT:?}")),
        }
    }

    /// The answer to handoff `id`.
    pub(crate) fn handoff_done(&self, id: u64, result: Result<(), String>) {
        if let Some(waiter) = self.handoffs.waiting().remove(&id) {
            let _ = waiter.send(result);
        }
    }

    /// `link`'s host hands room `room` over to this host: import it, take its key over, say
    /// how it went.
    pub(crate) async fn take_over(
        self: Arc<Self>,
        link: Arc<Link>,
        id: u64,
        room: String,
        revision: i64,
        export: String,
    ) {
        let from = link.peer().clone();
        let result = self.take(&from, &room, revision, &export).await;
        match &result {
            Ok(peers) => {
                tracing::info!(room, %from, peers, "took the room over from a drained host");
            }
            Err(e) => tracing::warn!(room, %from, "cannot take the room over: {e}"),
        }
        let done = LinkMessage::HandoffDone {
            id,
            result: result.map(|_| ()),
        };
        let _ = link.send(done).await;
    }

    async fn take(
        self: &Arc<Self>,
        from: &HostId,
        room: &str,
        revision: i64,
        export: &str,
    ) -> Result<u32, String> {
        let rooms = (self.rooms.get().and_then(std::sync::Weak::upgrade)).ok_or("stopping")?;
        let remote = self.links.remote().cloned().ok_or("no cluster links")?;
        let mut export: RoomExport =
            serde_json::from_str(export).map_err(|e| format!("unreadable export: {e}"))?;
        if export.room != room {
            return Err(format!("an export of {} for room {room}", export.room));
        }
        remote.localize(&mut export)?;
        let peers = export.peers.len() as u32;
        rooms.import_room(export).map_err(|e| e.to_string())?;
        let room_id = RoomId(room.to_string());
        let refused = match self.directory.take_over(&room_id, from, revision).await {
            Ok(Ok(())) => None,
            Ok(Err(owner)) => Some(format!("host {owner} owns it")),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = refused {
            // Not this host's: forget it again (nothing on the nodes is touched).
            let _ = rooms.export_room(&room_id);
            return Err(why);
        }
        {
            let mut state = self.state();
            state.claims.insert(room_id.clone(), revision);
            let owner = Input::Owner {
                room: room_id,
                owner: Some(self.me.clone()),
            };
            self.feed(&mut state, owner);
        }
        self.metrics.room_taken_over();
        rooms.publish(EventKind::RoomTakenOver {
            room: room.to_string(),
            from: from.to_string(),
            peers,
        });
        Ok(peers)
    }

    /// A `resume` with one of `tokens` goes to `to` from now on.
    pub(crate) fn forward(&self, tokens: &[String], to: &HostId) {
        let mut forwards = self.handoffs.forwards();
        if forwards.len() + tokens.len() > MAX_FORWARDS {
            forwards.clear();
        }
        for token in tokens {
            forwards.insert(token.clone(), to.clone());
        }
    }

    /// Where a handed-over room's resume token goes now.
    pub(crate) fn forwarded(&self, token: &str) -> Option<HostId> {
        self.handoffs.forwards().get(token).cloned()
    }
}
