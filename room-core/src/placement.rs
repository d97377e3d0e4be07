//! Where a new router goes: a plain decision over what the supervisor knows of each worker.
//! A router is opened for a new room, or for a room whose routers are all full (the room then
//! spans several workers, piped together). It spills worker → node → host: a worker of this
//! host's nodes, else a new node of this host, else a worker of another host's node (in a
//! cluster).

use crate::NodeId;

/// What placement sees of one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerView {
    /// Index of the worker in its node.
    pub index: u32,
    /// Consumers on it: clients' and pipes', as the directory counts them.
    pub consumers: u32,
    /// Routers the supervisor placed on it.
    pub routers: u32,
    /// Whether it already hosts a router of the room being placed (a second one there would
    /// gain nothing).
    pub hosts_room: bool,
}

/// What placement sees of one ready node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// The node.
    pub id: NodeId,
    /// Its workers.
    pub workers: Vec<WorkerView>,
    /// Whether it runs on another host of the cluster (taken only when this host's nodes are
    /// full and its pool cannot grow: pipes between hosts cost more than within one).
    pub remote: bool,
}

/// What the new router must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterAsk {
    /// Consumers its first peer adds on its worker.
    pub needed: u32,
    /// The node of the room's other routers: pipes within a node are cheaper, so its workers
    /// come first.
    pub prefer: Option<NodeId>,
    /// `--max-consumers-per-worker`.
    pub max_consumers: u32,
    /// Nodes running or starting.
    pub nodes_running: u32,
    /// `--max-nodes`.
    pub max_nodes: u32,
}

/// Where a new router goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On this worker of this node.
    Worker(NodeId, u32),
    /// No worker fits (or no node is ready) and the pool may grow: start a node and place the
    /// router there.
    SpawnNode,
    /// No worker fits and the pool is at its cap: refuse with `capacity`.
    Full,
}

/// Whether a worker with `consumers` takes `needed` more: it must be below the cap, and stay
/// within it, unless it carries nothing yet (a peer alone on a worker is the least a room can
/// be split into; refusing it would cap a room at what one worker carries).
pub fn fits(consumers: u32, needed: u32, max_consumers: u32) -> bool {
    consumers == 0 || (consumers < max_consumers && consumers + needed <= max_consumers)
}

/// A worker that does not host the room and fits: the preferred node's first, then the
/// fewest consumers, the fewest routers, the lowest node and worker (deterministic).
/// Otherwise a new node if the pool may grow.
pub fn place_router(nodes: &[NodeView], ask: RouterAsk) -> Placement {
    let best = |remote: bool| {
        nodes
            .iter()
            .filter(|node| node.remote == remote)
            .flat_map(|node| node.workers.iter().map(move |w| (node.id, w)))
            .filter(|(_, w)| !w.hosts_room && fits(w.consumers, ask.needed, ask.max_consumers))
            .min_by_key(|(node, w)| {
                let elsewhere = ask.prefer.is_some_and(|p| p != *node);
                (elsewhere, w.consumers, w.routers, *node, w.index)
            })
    };
    match best(false) {
        Some((node, w)) => Placement::Worker(node, w.index),
        None if ask.nodes_running < ask.max_nodes => Placement::SpawnNode,
        None => match best(true) {
            Some((node, w)) => Placement::Worker(node, w.index),
            None => Placement::Full,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, workers: &[(u32, u32)]) -> NodeView {
        NodeView {
            id: NodeId(id),
            workers: workers
                .iter()
                .enumerate()
                .map(|(i, &(consumers, routers))| WorkerView {
                    index: i as u32,
                    consumers,
                    routers,
                    hosts_room: false,
                })
                .collect(),
            remote: false,
        }
    }

    fn remote(id: u32, workers: &[(u32, u32)]) -> NodeView {
        NodeView {
            remote: true,
            ..node(id, workers)
        }
    }

    #[test]
    fn another_hosts_node_is_taken_only_when_this_host_is_full_and_cannot_grow() {
        // This host's worker has room: it wins over an emptier remote worker.
        let nodes = [node(1, &[(4, 1)]), remote(100, &[(0, 0)])];
        assert_eq!(
            place_router(&nodes, ask(5, 1, 1)),
            Placement::Worker(NodeId(1), 0)
        );
        // Full here, but the pool may grow: a new local node first.
        let nodes = [node(1, &[(5, 1)]), remote(100, &[(0, 0)])];
        assert_eq!(place_router(&nodes, ask(5, 1, 2)), Placement::SpawnNode);
        // Full here and at the cap: the remote worker with the fewest consumers.
        let nodes = [
            node(1, &[(5, 1)]),
            remote(100, &[(3, 1)]),
            remote(101, &[(1, 1)]),
        ];
        assert_eq!(
            place_router(&nodes, ask(5, 1, 1)),
            Placement::Worker(NodeId(101), 0)
        );
        // Nothing fits anywhere.
        let nodes = [node(1, &[(5, 1)]), remote(100, &[(5, 1)])];
        assert_eq!(place_router(&nodes, ask(5, 1, 1)), Placement::Full);
    }

    fn ask(max_consumers: u32, nodes_running: u32, max_nodes: u32) -> RouterAsk {
        RouterAsk {
            needed: 0,
            prefer: None,
            max_consumers,
            nodes_running,
            max_nodes,
        }
    }

    #[test]
    fn no_ready_node_spawns_one_within_the_cap() {
        assert_eq!(place_router(&[], ask(500, 0, 2)), Placement::SpawnNode);
        assert_eq!(
            place_router(&[node(1, &[])], ask(500, 1, 2)),
            Placement::SpawnNode
        );
        assert_eq!(place_router(&[], ask(500, 2, 2)), Placement::Full);
    }

    #[test]
    fn picks_fewest_consumers_across_nodes() {
        let nodes = [node(1, &[(10, 1), (4, 3)]), node(2, &[(6, 0)])];
        assert_eq!(
            place_router(&nodes, ask(500, 2, 2)),
            Placement::Worker(NodeId(1), 1)
        );
    }

    #[test]
    fn ties_go_to_fewer_routers_then_lowest_ids() {
        let nodes = [node(1, &[(0, 2)]), node(2, &[(0, 1), (0, 1)])];
        assert_eq!(
            place_router(&nodes, ask(500, 2, 2)),
            Placement::Worker(NodeId(2), 0)
        );
        let nodes = [node(3, &[(0, 0)]), node(2, &[(0, 0)])];
        assert_eq!(
            place_router(&nodes, ask(500, 2, 2)),
            Placement::Worker(NodeId(2), 0)
        );
    }

    #[test]
    fn full_workers_are_skipped_then_the_pool_grows_then_refuses() {
        let nodes = [node(1, &[(4, 1), (2, 1)])];
        assert_eq!(
            place_router(&nodes, ask(4, 1, 2)),
            Placement::Worker(NodeId(1), 1)
        );
        let nodes = [node(1, &[(4, 1), (5, 1)])];
        assert_eq!(place_router(&nodes, ask(4, 1, 2)), Placement::SpawnNode);
        assert_eq!(place_router(&nodes, ask(4, 2, 2)), Placement::Full);
    }

    #[test]
    fn a_spilling_room_prefers_its_own_node_and_skips_workers_it_is_on() {
        let mut nodes = [node(1, &[(3, 1), (5, 1)]), node(2, &[(0, 0)])];
        let spill = RouterAsk {
            needed: 2,
            prefer: Some(NodeId(1)),
            ..ask(8, 2, 2)
        };
        // Node 1's emptier worker, though node 2's is emptier still.
        assert_eq!(place_router(&nodes, spill), Placement::Worker(NodeId(1), 0));
        nodes[0].workers[0].hosts_room = true;
        assert_eq!(place_router(&nodes, spill), Placement::Worker(NodeId(1), 1));
        nodes[0].workers[1].hosts_room = true;
        assert_eq!(place_router(&nodes, spill), Placement::Worker(NodeId(2), 0));
    }

    #[test]
    fn a_worker_takes_a_peer_only_if_it_stays_within_the_cap_unless_it_is_empty() {
        assert!(fits(0, 20, 8), "an empty worker takes its first peer");
        assert!(fits(4, 4, 8));
        assert!(!fits(4, 5, 8));
        assert!(!fits(8, 0, 8), "a worker at its cap takes nothing");
        let nodes = [node(1, &[(6, 1)])];
        let needs_three = RouterAsk {
            needed: 3,
            ..ask(8, 1, 1)
        };
        assert_eq!(place_router(&nodes, needs_three), Placement::Full);
    }
}
