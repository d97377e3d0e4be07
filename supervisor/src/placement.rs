//! Where a new room goes: a plain decision over what the supervisor knows of each node.

use crate::node_link::NodeId;

/// What placement sees of one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerView {
    /// Index of the worker in its node.
    pub index: u32,
    /// Consumers on it (last load report).
    pub consumers: u32,
    /// Rooms the supervisor placed on it.
    pub rooms: u32,
}

/// What placement sees of one ready node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// The node.
    pub id: NodeId,
    /// Its workers.
    pub workers: Vec<WorkerView>,
}

/// Where a new room goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On this worker of this node.
    Worker(NodeId, u32),
    /// Every worker is full (or no node is ready) and the pool may grow: start a node and
    /// place the room there.
    SpawnNode,
    /// Every worker is full and the pool is at its cap: refuse with `capacity`.
    Full,
}

/// The least-loaded worker with room to spare (fewer than `max_consumers` consumers): fewest
/// consumers, then fewest rooms, then the lowest node and worker, so the choice is
/// deterministic. Otherwise a new node if `nodes_running` is below `max_nodes`.
pub fn place_room(
    nodes: &[NodeView],
    max_consumers: u32,
    nodes_running: u32,
    max_nodes: u32,
) -> Placement {
    let best = nodes
        .iter()
        .flat_map(|node| node.workers.iter().map(move |w| (node.id, w)))
        .filter(|(_, w)| w.consumers < max_consumers)
        .min_by_key(|(node, w)| (w.consumers, w.rooms, *node, w.index));
    match best {
        Some((node, w)) => Placement::Worker(node, w.index),
        None if nodes_running < max_nodes => Placement::SpawnNode,
        None => Placement::Full,
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
                .map(|(i, &(consumers, rooms))| WorkerView {
                    index: i as u32,
                    consumers,
                    rooms,
                })
                .collect(),
        }
    }

    #[test]
    fn no_ready_node_spawns_one_within_the_cap() {
        assert_eq!(place_room(&[], 500, 0, 2), Placement::SpawnNode);
        assert_eq!(place_room(&[node(1, &[])], 500, 1, 2), Placement::SpawnNode);
        assert_eq!(place_room(&[], 500, 2, 2), Placement::Full);
    }

    #[test]
    fn picks_fewest_consumers_across_nodes() {
        let nodes = [node(1, &[(10, 1), (4, 3)]), node(2, &[(6, 0)])];
        assert_eq!(
            place_room(&nodes, 500, 2, 2),
            Placement::Worker(NodeId(1), 1)
        );
    }

    #[test]
    fn ties_go_to_fewer_rooms_then_lowest_ids() {
        let nodes = [node(1, &[(0, 2)]), node(2, &[(0, 1), (0, 1)])];
        assert_eq!(
            place_room(&nodes, 500, 2, 2),
            Placement::Worker(NodeId(2), 0)
        );
        let nodes = [node(3, &[(0, 0)]), node(2, &[(0, 0)])];
        assert_eq!(
            place_room(&nodes, 500, 2, 2),
            Placement::Worker(NodeId(2), 0)
        );
    }

    #[test]
    fn full_workers_are_skipped_then_the_pool_grows_then_refuses() {
        let nodes = [node(1, &[(4, 1), (2, 1)])];
        assert_eq!(place_room(&nodes, 4, 1, 2), Placement::Worker(NodeId(1), 1));
        let nodes = [node(1, &[(4, 1), (5, 1)])];
        assert_eq!(place_room(&nodes, 4, 1, 2), Placement::SpawnNode);
        assert_eq!(place_room(&nodes, 4, 2, 2), Placement::Full);
    }
}
