//! The monitor API's answers for a cluster: `hosts` from the directory, `summary` as the
//! hosts' summaries added up (each asked over its link, 2 s at most), `room` from the room's
//! owner. Everything else is the asked host's own (`monitor_socket`).

use std::sync::Arc;
use std::time::Duration;

use monitor_api::{Answer, ApiError, ApiErrorCode, HostView, Query, Request, Summary};

use crate::edge::monitor_socket::{ok, Monitor};
use crate::routing::Routing;

/// How long a host waits for another's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The cluster's answer to `request`, or `None` when it is the asked host's own.
pub async fn answer(
    monitor: &Monitor,
    routing: &Arc<Routing>,
    request: &Request,
) -> Option<Answer> {
    let id = request.id;
    match &request.query {
        Query::Hosts => Some(ok(id, hosts(routing))),
        Query::Summary => Some(ok(id, summary(monitor, routing).await)),
        Query::Room { room } => {
            let owner = routing.owner(room)?;
            if owner == *routing.me() {
                return None;
            }
            let asked = serde_json::to_string(request).unwrap_or_default();
            let answer = routing.links.ask(&owner, asked, ASK_TIMEOUT).await;
            Some(
                answer
                    .and_then(|text| serde_json::from_str::<Answer>(&text).ok())
                    .unwrap_or_else(|| {
                        Answer::error(
                            Some(id),
                            ApiError::new(
                                ApiErrorCode::Unavailable,
                                format!("host {owner} owns room {room:?} and did not answer"),
                            ),
                        )
                    }),
            )
        }
        _ => None,
    }
}

fn hosts(routing: &Arc<Routing>) -> Vec<HostView> {
    let linked = routing.links.linked();
    routing
        .hosts()
        .into_iter()
        .map(|h| HostView {
            this_host: h.id == *routing.me(),
            linked: h.id == *routing.me() || linked.contains(&h.id),
            host: h.id.to_string(),
            cluster_addr: h.cluster_addr.to_string(),
            public_url: h.public_url,
            lease: h.lease,
            nodes: h.nodes,
            workers: h.workers,
            consumers: h.consumers,
            headroom: h.headroom,
            rooms_owned: h.rooms_owned,
        })
        .collect()
}

async fn summary(monitor: &Monitor, routing: &Arc<Routing>) -> Summary {
    let mut total = monitor.stats.summary();
    total.name_host(routing.me().as_str());
    let others: Vec<_> = routing
        .hosts()
        .into_iter()
        .filter(|h| h.id != *routing.me())
        .map(|h| h.id)
        .collect();
    let asked = serde_json::to_string(&Request {
        id: 0,
        query: Query::Summary,
    })
    .unwrap_or_default();
    let answers = futures_util::future::join_all(others.iter().map(|host| {
        let asked = asked.clone();
        async move { routing.links.ask(host, asked, ASK_TIMEOUT).await }
    }))
    .await;
    for (host, answer) in others.iter().zip(answers) {
        let theirs = answer
            .and_then(|text| serde_json::from_str::<Answer>(&text).ok())
            .filter(|a| a.ok)
            .and_then(|a| a.data)
            .and_then(|data| serde_json::from_value::<Summary>(data).ok());
        match theirs {
            Some(theirs) => total.absorb(theirs, host.as_str()),
            None => total.hosts_missing.push(host.to_string()),
        }
    }
    total
}
