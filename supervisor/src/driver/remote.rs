//! Other hosts' nodes, as the rooms of this host see them in a cluster: a room whose host is
//! full opens routers on another host's node, and calls it through that host's supervisor.
//! To the room core such a node is a node like any other, under a number of this host's
//! ([`NodeId`] aliases); the cluster layer (`routing::remote`) implements this. A track of
//! such a node is recorded by that host's recorder, asked through the same trait.

use ids::HostId;
use ipc::messages::{NodeEvent, ProducerId, Request, RouterId};
use ipc::recorder::TrackSummary;
use tokio::sync::oneshot;

use crate::driver::node_link::{LinkError, NodeId, Sent};

/// A remote node offered for a new router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    /// This host's number for it.
    pub node: NodeId,
    /// Consumers on each of its workers, as its host last reported them.
    pub consumers: Vec<u32>,
}

/// Where a remote node is, for the monitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// Its host.
    pub host: ids::HostId,
    /// Its number on its host.
    pub node: NodeId,
}

/// A track for another host to record: a producer of a router this host created on its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteTrack {
    /// This host's number for the track.
    pub track: u64,
    /// The router.
    pub router: RouterId,
    /// The producer.
    pub producer: ProducerId,
    /// The room.
    pub room: String,
    /// The recording's folder (its last part).
    pub folder: String,
    /// The file's name without its extension.
    pub name: String,
}

/// What the other host answers to a [`RemoteTrack`]: its file's name and the codec, or why
/// not.
pub type RecordedThere = oneshot::Receiver<Result<(String, String), String>>;

/// What the other host answers when its track ends: what the file holds, or why not.
pub type EndedThere = oneshot::Receiver<Result<TrackSummary, String>>;

/// Other hosts' nodes, and this host's nodes as other hosts use them.
pub trait RemoteNodes: Send + Sync {
    /// Other hosts' nodes a new router may go on (their link is up).
    fn offered(&self) -> Vec<Offered>;
    /// Sends `request` to `node` when it is another host's (`None`: it is not).
    fn send(&self, node: NodeId, request: Request) -> Option<Result<Sent, LinkError>>;
    /// Where `node` is, when it is another host's.
    fn place(&self, node: NodeId) -> Option<Place>;
    /// An event of this host's `node`: whether it concerns a router another host owns (it
    /// is sent there, and is none of this host's rooms' business).
    fn lent_event(&self, node: NodeId, event: &NodeEvent) -> bool;
    /// This host's `node` is gone: the hosts with routers on it hear it.
    fn local_node_lost(&self, node: NodeId, reason: &str);
    /// This host drains its `nodes`: the hosts with routers on them move their peers off.
    fn drain_local(&self, nodes: &[NodeId]);
    /// Routers other hosts' rooms still have on this host's `node`.
    fn lent_on(&self, node: NodeId) -> usize;
    /// Asks the host of `node` (`None`: not another host's) to record `track` with its own
    /// recorder; also where the track is recorded.
    fn record(&self, node: NodeId, track: RemoteTrack) -> Option<(Place, RecordedThere)>;
    /// Ends the track `track` that `host` records for this host.
    fn end_recorded(&self, host: &HostId, track: u64) -> EndedThere;
    /// A track this host records for `host` (through its link `link`, as that host numbers
    /// it: `track`) stopped on its own: that host hears it.
    fn recorded_failed(&self, host: &HostId, link: u64, track: u64, summary: TrackSummary);
}
