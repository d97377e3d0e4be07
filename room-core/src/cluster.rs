//! Who serves a room in a cluster, decided without I/O (the etcd client and the links between
//! supervisors carry the outputs out). Every room has one owner host: the directory (etcd)
//! says who, through a watch; a room without owner is claimed by a transaction that succeeds
//! only if the key is absent, under the claimer's lease. A join reaching this host is served
//! here when this host owns the room, relayed to the owner otherwise; for a room without an
//! owner, this host claims it when it has headroom, else the join is relayed to the host with
//! the most, which claims it. A host whose lease is lost stops acting for every room at once
//! (fenced) and claims nothing until it has a lease again, with one exception: when every
//! other host of the last listing is linked to it and fenced too, nobody can write to etcd,
//! so nobody can have taken a room: joins into rooms with a known owner go on (etcd itself is
//! down), and only new rooms wait. With a new lease the host forgets which rooms it owned
//! until it has put them under that lease (the driver reclaims them).
//!
//! The crate's contract: `handle(Input, now)`, then `poll_output()` until `None`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use ipc::messages::RoomId;

pub use ids::HostId;

/// What placement needs of a host's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLoad {
    /// The host.
    pub id: HostId,
    /// Consumers it can still take (over all its workers and the nodes it may start).
    pub headroom: u32,
}

/// A join waiting for the room's owner to be known, by the caller's ticket.
pub type JoinTicket = u64;

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The live hosts, as the directory lists them now (every host, this one included).
    Hosts(Vec<HostLoad>),
    /// The owner of `room` in the directory changed: a host, or none (its key was deleted
    /// or its lease expired).
    Owner {
        /// The room.
        room: RoomId,
        /// Its owner now.
        owner: Option<HostId>,
    },
    /// A join for `room` reached this host (`relayed`: another host sent it here, which
    /// happens only when it chose this host to own the room).
    Join {
        /// The caller's ticket, given back with the decision.
        ticket: JoinTicket,
        /// The room.
        room: RoomId,
        /// Whether another host relayed it here.
        relayed: bool,
    },
    /// This host's claim of `room` is decided: won, or lost to `owner`.
    Claimed {
        /// The room.
        room: RoomId,
        /// `Ok`: this host owns it; `Err`: the host that does.
        result: Result<(), HostId>,
    },
    /// This host's claim of `room` could not be made (etcd unreachable or failing).
    ClaimFailed(RoomId),
    /// This host's lease: held (granted or renewed) or lost.
    Lease(bool),
    /// `room` closed here (its last peer left): if this host owns it, the key goes, so the
    /// next join may place it anew.
    Closed(RoomId),
    /// Whether every other host of the last listing is linked to this one and says it has no
    /// lease either.
    PeersFenced(bool),
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Create `room`'s key if absent, under this host's lease (answer: [`Input::Claimed`]).
    Claim(RoomId),
    /// Serve this join here: this host owns the room.
    Serve(JoinTicket),
    /// Relay this join to `host`, which owns the room or will.
    Relay(JoinTicket, HostId),
    /// Refuse this join: no host can take the room, or this host is fenced.
    Refuse(JoinTicket, Refusal),
    /// Delete `room`'s key, if it is still this host's (fenced by the claim's revision).
    Release(RoomId),
    /// The lease is lost: stop acting for these rooms now (their peers are told to join
    /// again; another host may own them once the lease has expired).
    Fence(Vec<RoomId>),
}

/// Why a join is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This host has no lease: it may act for no room.
    Fenced,
    /// A relayed join for a room another host claimed meanwhile: the client joins again
    /// (and is relayed to that owner).
    Moved(HostId),
    /// No host has headroom.
    Full,
    /// The directory could not be asked.
    Directory,
}

/// The cluster directory as this host sees it.
pub struct Cluster {
    me: HostId,
    leased: bool,
    /// Every other listed host is linked and fenced too (see [`Input::PeersFenced`]).
    peers_fenced: bool,
    hosts: BTreeMap<HostId, HostLoad>,
    owners: HashMap<RoomId, HostId>,
    /// Joins waiting for this host's claim of their room.
    claiming: HashMap<RoomId, Vec<JoinTicket>>,
    outputs: VecDeque<Output>,
}

impl Cluster {
    /// This host, `me`, without a lease yet.
    pub fn new(me: HostId) -> Self {
        Self {
            me,
            leased: false,
            peers_fenced: false,
            hosts: BTreeMap::new(),
            owners: HashMap::new(),
            claiming: HashMap::new(),
            outputs: VecDeque::new(),
        }
    }

    /// The owner of `room`, as far as this host knows.
    pub fn owner(&self, room: &RoomId) -> Option<&HostId> {
        self.owners.get(room)
    }

    /// The rooms this host owns (none while it has no lease).
    pub fn owned(&self) -> Vec<RoomId> {
        if !self.leased {
            return Vec::new();
        }
        let mut rooms: Vec<RoomId> = self
            .owners
            .iter()
            .filter(|(_, owner)| **owner == self.me)
            .map(|(room, _)| room.clone())
            .collect();
        rooms.sort_by(|a, b| a.0.cmp(&b.0));
        rooms
    }

    /// Takes one input; what follows comes from [`Cluster::poll_output`].
    pub fn handle(&mut self, input: Input, _now: Instant) {
        match input {
            Input::Hosts(hosts) => {
                self.hosts = hosts.into_iter().map(|h| (h.id.clone(), h)).collect();
            }
            Input::Owner { room, owner } => self.owner_changed(room, owner),
            Input::Join {
                ticket,
                room,
                relayed,
            } => self.join(ticket, room, relayed),
            Input::Claimed { room, result } => self.claimed(room, result),
            Input::ClaimFailed(room) => {
                for ticket in self.claiming.remove(&room).unwrap_or_default() {
                    self.outputs
                        .push_back(Output::Refuse(ticket, Refusal::Directory));
                }
            }
            Input::Lease(true) => self.lease_granted(),
            Input::Lease(false) => self.lease_lost(),
            Input::PeersFenced(fenced) => self.peers_fenced = fenced,
            Input::Closed(room) => {
                if self.owners.get(&room) == Some(&self.me) {
                    self.owners.remove(&room);
                    self.outputs.push_back(Output::Release(room));
                }
            }
        }
    }

    /// The next thing to do, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn join(&mut self, ticket: JoinTicket, room: RoomId, relayed: bool) {
        if !self.leased {
            // etcd is down for every host: nobody can have moved a room, its last known
            // owner serves it; a new room waits.
            let decision = match self.owners.get(&room) {
                Some(owner) if self.peers_fenced && *owner == self.me => Output::Serve(ticket),
                Some(owner) if self.peers_fenced && !relayed => {
                    Output::Relay(ticket, owner.clone())
                }
                _ => Output::Refuse(ticket, Refusal::Fenced),
            };
            self.outputs.push_back(decision);
            return;
        }
        match self.owners.get(&room) {
            Some(owner) if *owner == self.me => self.outputs.push_back(Output::Serve(ticket)),
            // A relayed join is never relayed again: hosts that disagree on the owner would
            // bounce it between them.
            Some(owner) if relayed => {
                let moved = Refusal::Moved(owner.clone());
                self.outputs.push_back(Output::Refuse(ticket, moved));
            }
            Some(owner) => {
                let relay = Output::Relay(ticket, owner.clone());
                self.outputs.push_back(relay);
            }
            None => {
                let target = if relayed {
                    Some(self.me.clone())
                } else {
                    self.new_room_host()
                };
                match target {
                    None => self
                        .outputs
                        .push_back(Output::Refuse(ticket, Refusal::Full)),
                    Some(host) if host == self.me => self.claim(room, ticket),
                    Some(host) => self.outputs.push_back(Output::Relay(ticket, host)),
                }
            }
        }
    }

    /// Where a new room goes: this host if it has headroom, else the host with the most
    /// (the lowest id among equals); none when no host has any. A host whose own record the
    /// directory has not listed yet (it just joined) counts as having headroom: its room core
    /// refuses with `capacity` if it has none.
    fn new_room_host(&self) -> Option<HostId> {
        if self.hosts.get(&self.me).is_none_or(|h| h.headroom > 0) {
            return Some(self.me.clone());
        }
        self.hosts
            .values()
            .filter(|h| h.headroom > 0)
            .max_by(|a, b| a.headroom.cmp(&b.headroom).then(b.id.cmp(&a.id)))
            .map(|h| h.id.clone())
    }

    /// Claims `room` for `ticket` (one claim per room at a time; later joins wait with it).
    fn claim(&mut self, room: RoomId, ticket: JoinTicket) {
        let waiting = self.claiming.entry(room.clone()).or_default();
        waiting.push(ticket);
        if waiting.len() == 1 {
            self.outputs.push_back(Output::Claim(room));
        }
    }

    fn claimed(&mut self, room: RoomId, result: Result<(), HostId>) {
        let waiting = self.claiming.remove(&room).unwrap_or_default();
        let owner = match result {
            // Fenced meanwhile: the claim does not count for anything this host does.
            Ok(()) if !self.leased => {
                for ticket in waiting {
                    self.outputs
                        .push_back(Output::Refuse(ticket, Refusal::Fenced));
                }
                return;
            }
            Ok(()) => self.me.clone(),
            Err(owner) => owner,
        };
        self.owners.insert(room, owner.clone());
        for ticket in waiting {
            let decision = if owner == self.me {
                Output::Serve(ticket)
            } else {
                Output::Relay(ticket, owner.clone())
            };
            self.outputs.push_back(decision);
        }
    }

    fn owner_changed(&mut self, room: RoomId, owner: Option<HostId>) {
        match owner {
            Some(owner) => {
                self.owners.insert(room, owner);
            }
            None => {
                self.owners.remove(&room);
            }
        }
    }

    /// A new lease: the rooms this host owned under the old one are not its until it has
    /// put them under the new one (another host may have taken one meanwhile); the watch
    /// says so.
    fn lease_granted(&mut self) {
        if std::mem::replace(&mut self.leased, true) {
            return;
        }
        let me = self.me.clone();
        self.owners.retain(|_, owner| *owner != me);
    }

    fn lease_lost(&mut self) {
        let mine = self.owned();
        if !std::mem::replace(&mut self.leased, false) {
            return;
        }
        // The owners as last listed stay: they serve joins while every host is fenced.
        let claiming: Vec<(RoomId, Vec<JoinTicket>)> = self.claiming.drain().collect();
        for (_, tickets) in claiming {
            for ticket in tickets {
                self.outputs
                    .push_back(Output::Refuse(ticket, Refusal::Fenced));
            }
        }
        self.outputs.push_back(Output::Fence(mine));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str) -> HostId {
        HostId::parse(id).expect("valid host id")
    }

    fn room(name: &str) -> RoomId {
        RoomId(name.into())
    }

    fn record(id: &str, headroom: u32) -> HostLoad {
        HostLoad {
            id: host(id),
            headroom,
        }
    }

    /// Host `me` with a lease, among `hosts`.
    fn cluster(me: &str, hosts: &[(&str, u32)]) -> Cluster {
        let mut cluster = Cluster::new(host(me));
        let records = hosts.iter().map(|(id, h)| record(id, *h)).collect();
        run(&mut cluster, Input::Hosts(records));
        run(&mut cluster, Input::Lease(true));
        cluster
    }

    fn run(cluster: &mut Cluster, input: Input) -> Vec<Output> {
        cluster.handle(input, Instant::now());
        std::iter::from_fn(|| cluster.poll_output()).collect()
    }

    fn join(cluster: &mut Cluster, ticket: JoinTicket, name: &str) -> Vec<Output> {
        let input = Input::Join {
            ticket,
            room: room(name),
            relayed: false,
        };
        run(cluster, input)
    }

    #[test]
    fn a_new_room_is_claimed_by_the_first_joins_host_and_served_there_once_won() {
        let mut h1 = cluster("h1", &[("h1", 10), ("h2", 50)]);
        assert_eq!(join(&mut h1, 1, "demo"), [Output::Claim(room("demo"))]);
        // A second join while the claim is out waits for it: one claim.
        assert_eq!(join(&mut h1, 2, "demo"), []);
        let won = Input::Claimed {
            room: room("demo"),
            result: Ok(()),
        };
        assert_eq!(run(&mut h1, won), [Output::Serve(1), Output::Serve(2)]);
        assert_eq!(join(&mut h1, 3, "demo"), [Output::Serve(3)]);
        assert_eq!(h1.owned(), [room("demo")]);
    }

    #[test]
    fn an_owned_room_that_closes_releases_its_key_and_another_hosts_room_does_not() {
        let mut h1 = cluster("h1", &[("h1", 10), ("h2", 10)]);
        join(&mut h1, 1, "demo");
        let won = Input::Claimed {
            room: room("demo"),
            result: Ok(()),
        };
        run(&mut h1, won);
        let theirs = Input::Owner {
            room: room("other"),
            owner: Some(host("h2")),
        };
        run(&mut h1, theirs);
        assert_eq!(run(&mut h1, Input::Closed(room("other"))), []);
        assert_eq!(
            run(&mut h1, Input::Closed(room("demo"))),
            [Output::Release(room("demo"))]
        );
        assert!(h1.owned().is_empty());
        assert_eq!(join(&mut h1, 2, "demo"), [Output::Claim(room("demo"))]);
    }

    #[test]
    fn a_claim_lost_to_another_host_relays_the_waiting_joins_to_it() {
        let mut h1 = cluster("h1", &[("h1", 10), ("h2", 10)]);
        join(&mut h1, 1, "demo");
        join(&mut h1, 2, "demo");
        let lost = Input::Claimed {
            room: room("demo"),
            result: Err(host("h2")),
        };
        assert_eq!(
            run(&mut h1, lost),
            [Output::Relay(1, host("h2")), Output::Relay(2, host("h2"))]
        );
        assert_eq!(join(&mut h1, 3, "demo"), [Output::Relay(3, host("h2"))]);
    }

    #[test]
    fn a_full_host_sends_a_new_room_to_the_host_with_the_most_headroom_which_claims_it() {
        let mut h1 = cluster("h1", &[("h1", 0), ("h2", 20), ("h3", 40)]);
        assert_eq!(join(&mut h1, 1, "demo"), [Output::Relay(1, host("h3"))]);
        let mut h3 = cluster("h3", &[("h1", 0), ("h2", 20), ("h3", 40)]);
        let relayed = Input::Join {
            ticket: 9,
            room: room("demo"),
            relayed: true,
        };
        assert_eq!(run(&mut h3, relayed), [Output::Claim(room("demo"))]);
    }

    #[test]
    fn a_claim_that_cannot_be_made_refuses_its_joins_and_the_next_join_claims_again() {
        let mut h1 = cluster("h1", &[("h1", 10)]);
        join(&mut h1, 1, "demo");
        join(&mut h1, 2, "demo");
        assert_eq!(
            run(&mut h1, Input::ClaimFailed(room("demo"))),
            [
                Output::Refuse(1, Refusal::Directory),
                Output::Refuse(2, Refusal::Directory)
            ]
        );
        assert_eq!(join(&mut h1, 3, "demo"), [Output::Claim(room("demo"))]);
    }

    #[test]
    fn a_host_not_yet_listed_claims_a_new_room_itself() {
        // Leased, but the watch has not listed any host yet (this one included).
        let mut h1 = Cluster::new(host("h1"));
        run(&mut h1, Input::Lease(true));
        assert_eq!(join(&mut h1, 1, "demo"), [Output::Claim(room("demo"))]);
        // Listed among others but not itself: the same.
        let mut h2 = cluster("h2", &[("h1", 50)]);
        assert_eq!(join(&mut h2, 1, "demo"), [Output::Claim(room("demo"))]);
    }

    #[test]
    fn no_headroom_anywhere_refuses_a_new_room() {
        let mut h1 = cluster("h1", &[("h1", 0), ("h2", 0)]);
        assert_eq!(join(&mut h1, 1, "demo"), [Output::Refuse(1, Refusal::Full)]);
    }

    #[test]
    fn a_known_owner_gets_the_join_and_a_relayed_join_is_never_relayed_again() {
        let mut h1 = cluster("h1", &[("h1", 10), ("h2", 10)]);
        let owner = Input::Owner {
            room: room("demo"),
            owner: Some(host("h2")),
        };
        run(&mut h1, owner);
        assert_eq!(join(&mut h1, 1, "demo"), [Output::Relay(1, host("h2"))]);
        let relayed = Input::Join {
            ticket: 2,
            room: room("demo"),
            relayed: true,
        };
        assert_eq!(
            run(&mut h1, relayed),
            [Output::Refuse(2, Refusal::Moved(host("h2")))]
        );
        // The owner's key goes (its lease expired): the next join claims it.
        let gone = Input::Owner {
            room: room("demo"),
            owner: None,
        };
        run(&mut h1, gone);
        assert_eq!(join(&mut h1, 3, "demo"), [Output::Claim(room("demo"))]);
    }

    #[test]
    fn a_lost_lease_fences_every_owned_room_and_refuses_joins_until_it_is_back() {
        let mut h1 = cluster("h1", &[("h1", 10), ("h2", 10)]);
        for (ticket, name) in [(1, "a"), (2, "b")] {
            join(&mut h1, ticket, name);
            let won = Input::Claimed {
                room: room(name),
                result: Ok(()),
            };
            run(&mut h1, won);
        }
        join(&mut h1, 3, "c");
        let outputs = run(&mut h1, Input::Lease(false));
        assert_eq!(
            outputs,
            [
                Output::Refuse(3, Refusal::Fenced),
                Output::Fence(vec![room("a"), room("b")])
            ]
        );
        assert!(h1.owned().is_empty());
        assert_eq!(join(&mut h1, 4, "a"), [Output::Refuse(4, Refusal::Fenced)]);
        // A claim that succeeds after the lease was lost does not make this host the owner.
        let late = Input::Claimed {
            room: room("c"),
            result: Ok(()),
        };
        assert_eq!(run(&mut h1, late), []);
        assert!(h1.owned().is_empty());
        run(&mut h1, Input::Lease(true));
        assert_eq!(join(&mut h1, 5, "d"), [Output::Claim(room("d"))]);
    }
    #[test]
    fn with_every_host_fenced_joins_into_known_rooms_go_on_and_new_rooms_wait() {
        let mut h1 = cluster("h1", &[("h1", 10), ("h2", 10)]);
        join(&mut h1, 1, "a");
        let won = Input::Claimed {
            room: room("a"),
            result: Ok(()),
        };
        run(&mut h1, won);
        let theirs = Input::Owner {
            room: room("b"),
            owner: Some(host("h2")),
        };
        run(&mut h1, theirs);
        run(&mut h1, Input::Lease(false));
        // h2 is fenced too: nobody can write to etcd, nobody can have moved a room.
        run(&mut h1, Input::PeersFenced(true));
        assert_eq!(join(&mut h1, 2, "a"), [Output::Serve(2)]);
        assert_eq!(join(&mut h1, 3, "b"), [Output::Relay(3, host("h2"))]);
        let relayed = Input::Join {
            ticket: 4,
            room: room("a"),
            relayed: true,
        };
        assert_eq!(run(&mut h1, relayed), [Output::Serve(4)]);
        // Where a new room goes cannot be decided.
        assert_eq!(
            join(&mut h1, 5, "new"),
            [Output::Refuse(5, Refusal::Fenced)]
        );
        assert!(
            h1.owned().is_empty(),
            "no room counts as owned without a lease"
        );
        // One host has a lease again (or cannot be reached): it may take rooms, so no more.
        run(&mut h1, Input::PeersFenced(false));
        assert_eq!(join(&mut h1, 6, "a"), [Output::Refuse(6, Refusal::Fenced)]);
        // A new lease: this host's rooms are its own again only once reclaimed and listed.
        run(&mut h1, Input::Lease(true));
        assert_eq!(join(&mut h1, 7, "a"), [Output::Claim(room("a"))]);
        assert_eq!(join(&mut h1, 8, "b"), [Output::Relay(8, host("h2"))]);
    }
}
