//! Media statistics collected from the nodes for one answer: every router asked at once, each
//! with a deadline; what does not arrive in time is reported missing, never waited for. Each
//! collection of a room counts in `sfu_stats_collections_total`, which shows that nothing is
//! collected while no monitor asks.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ipc::calls::GetMediaStats;
use ipc::messages::{RouterId, RouterStats};

use super::Stats;
use crate::driver::node_link::NodeId;

/// How long a collection waits for a node.
pub const COLLECT_DEADLINE: Duration = Duration::from_secs(1);

/// The media statistics of some routers.
#[derive(Debug, Default)]
pub struct Media {
    pub(super) by_router: HashMap<RouterId, RouterStats>,
    missing: BTreeSet<NodeId>,
}

impl Media {
    /// Nodes that did not answer in time (or were gone), as `node-N`.
    pub fn missing(&self) -> Vec<String> {
        self.missing.iter().map(NodeId::to_string).collect()
    }

    /// The statistics of `router`, if they arrived.
    pub fn router(&self, router: &RouterId) -> Option<&RouterStats> {
        self.by_router.get(router)
    }
}

impl Stats {
    /// Collects the statistics of `routers` (each on its node), all at once.
    pub(super) async fn collect(&self, routers: &[(RouterId, NodeId)]) -> Media {
        self.metrics.stats_collected();
        // A router on another host's node is asked through that host.
        let asks = routers.iter().map(|&(router, node)| {
            let rooms = self.rooms.clone();
            async move {
                let asked = tokio::time::timeout(COLLECT_DEADLINE, rooms.node_call(node, GetMediaStats { router }));
                match asked.await {
                    Ok(Ok(answer)) => (node, Some(answer.stats)),
                    Ok(Err(e)) => {
                        tracing::debug!(%node, %router, "no media statistics: {e}");
                        (node, None)
                    }
                    Err(_) => {
                        tracing::info!(%node, %router, "media statistics late (over {COLLECT_DEADLINE:?}): left out");
                        (node, None)
                    }
                }
            }
        });
        let mut media = Media::default();
        for (node, stats) in futures_util::future::join_all(asks).await {
            match stats {
                Some(stats) => {
                    media.by_router.insert(stats.router, stats);
                }
                None => {
                    media.missing.insert(node);
                }
            }
        }
        media
    }
}
