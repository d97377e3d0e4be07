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

/// The least-loaded worker of all ready nodes: fewest consumers, then fewest rooms, then the
/// lowest node and worker (so the choice is deterministic). `None` when no node is ready.
pub fn least_loaded_worker(nodes: &[NodeView]) -> Option<(NodeId, u32)> {
    nodes
        .iter()
        .flat_map(|node| node.workers.iter().map(move |w| (node.id, w)))
        .min_by_key(|(node, w)| (w.consumers, w.rooms, *node, w.index))
        .map(|(node, w)| (node, w.index))
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
    fn no_ready_node_means_no_placement() {
        assert_eq!(least_loaded_worker(&[]), None);
        assert_eq!(least_loaded_worker(&[node(1, &[])]), None);
    }

    #[test]
    fn picks_fewest_consumers_across_nodes() {
        let nodes = [node(1, &[(10, 1), (4, 3)]), node(2, &[(6, 0)])];
        assert_eq!(least_loaded_worker(&nodes), Some((NodeId(1), 1)));
    }

    #[test]
    fn ties_go_to_fewer_rooms_then_lowest_ids() {
        let nodes = [node(1, &[(0, 2)]), node(2, &[(0, 1), (0, 1)])];
        assert_eq!(least_loaded_worker(&nodes), Some((NodeId(2), 0)));
        let nodes = [node(3, &[(0, 0)]), node(2, &[(0, 0)])];
        assert_eq!(least_loaded_worker(&nodes), Some((NodeId(2), 0)));
    }
}
