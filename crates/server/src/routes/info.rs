//! `/info` and `/stats`: what this server is and how much it holds.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::Serialize;
use switchboard_core::{CacheStats, EngineInfo, NodeReport, Policy, QueueStats, Timestamp};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(info)).routes(routes!(stats))
}

/// What this server is.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Info {
    /// Switchboard's version.
    #[schema(example = "0.1.0")]
    version: &'static str,
    /// This node's id.
    node_id: String,
    /// The engine in use.
    engine: EngineInfo,
    /// Seconds since the server started.
    uptime_seconds: u64,
    /// The configured rate-limit policies by name.
    policies: BTreeMap<String, Policy>,
}

/// Live counts: the capabilities' totals across every node, and each node's connections.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Stats {
    /// This node's id.
    node_id: String,
    /// Live sessions across all users.
    sessions_active: u64,
    /// Online users (the rule of `GET /presence/online/count`).
    online_users: u64,
    /// WebSocket connections held by this node.
    connections: usize,
    /// WebSocket connections held by every live node (the sum of `nodes`).
    connections_total: u64,
    /// Every node that reported within the presence connection TTL, by id, with its
    /// connections (this node's counted now, the others' as of their last report).
    nodes: Vec<NodeReport>,
    /// Every queue's counts.
    queues: Vec<QueueStats>,
    /// Every cache namespace's counters, by name.
    cache: BTreeMap<String, CacheStats>,
}

/// Version, node, engine, uptime and configured policies.
#[utoipa::path(get, path = "/info", tag = "info", responses((status = OK, body = Info)))]
pub(crate) async fn info(State(state): State<AppState>) -> Json<Info> {
    Json(Info {
        version: env!("CARGO_PKG_VERSION"),
        node_id: state.config().node_id.clone(),
        engine: state.sb().engine().health.info(),
        uptime_seconds: state.started().elapsed().as_secs(),
        policies: state.sb().rate_limits().policies().clone(),
    })
}

/// Live counts for dashboards and health pages: sessions, online users, connections per node
/// and in total, queues and cache namespaces.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "info",
    responses(
        (status = OK, body = Stats),
        (status = SERVICE_UNAVAILABLE, description = "The engine is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let sb = state.sb();
    let node_id = state.config().node_id.clone();
    let connections = state.gateway().connections();
    let mut nodes = sb.presence().nodes().await?;
    nodes.retain(|n| n.node_id != node_id);
    let here = NodeReport { node_id: node_id.clone(), connections: connections as u64, reported_at: Timestamp::now() };
    let at = nodes.partition_point(|n| n.node_id < node_id);
    nodes.insert(at, here);
    Ok(Json(Stats {
        node_id,
        sessions_active: sb.sessions().count_active().await?,
        online_users: sb.presence().online_count().await?,
        connections,
        connections_total: nodes.iter().map(|n| n.connections).sum(),
        nodes,
        queues: sb.jobs().queues().await?,
        cache: sb.cache().stats_all().await?.into_iter().collect(),
    }))
}
