//! Health endpoints (unauthenticated): `/health`, `/health/live`, `/health/ready`,
//! `/health/{component}`.
//!
//! Components, checked at once under one deadline: `engine` (a ping), `pubsub` (the broker's
//! connection), `gateway` (accepting, with this node's connections), and one per capability that
//! answers a real query: `jobs` (the queues), `cache` (the namespaces' counters), `sessions` (the
//! live count, with the online users) and `rate_limits` (a status read that consumes nothing).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

/// A check slower than this makes its component `degraded`.
const SLOW_CHECK: Duration = Duration::from_millis(500);

/// The kind reported for a component whose connection is known to be down.
const DISCONNECTED: &str = "engine_unavailable";

/// Health of one component, or of the whole server (the worst component).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Working normally.
    Healthy,
    /// Working, but slow or partly impaired.
    Degraded,
    /// Not working.
    Unhealthy,
}

/// One component's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComponentHealth {
    /// Its status.
    pub status: HealthStatus,
    /// How long the check took, in milliseconds, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Why it is unhealthy (an error kind, never connection details).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Counts the check read on the way: `connections` (gateway), `sessions_active` and
    /// `online_users` (sessions).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<&'static str, u64>,
}

/// The server's health: the worst of its components.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthReport {
    /// Overall status.
    pub status: HealthStatus,
    /// Each component by name (`engine`, `pubsub`, `gateway`, `jobs`, `cache`, `sessions`,
    /// `rate_limits`).
    pub components: BTreeMap<String, ComponentHealth>,
}

/// Liveness or readiness answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Probe {
    /// `alive`, `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
}

/// Checks every component concurrently, each bounded by the same deadline
/// ([`crate::ServerConfig::health_timeout`]), so an unreachable engine costs the deadline once,
/// not once per component.
async fn check_components(state: &AppState) -> BTreeMap<String, ComponentHealth> {
    let timeout = state.config().health_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let engine = state.sb().engine();
    let ping = async {
        // A connection known to be down is reported without a round trip.
        if !engine.health.connected() {
            return Err(switchboard_core::Error::Unavailable("engine: not connected".into()));
        }
        engine.health.ping().await
    };
    let sb = state.sb();
    let timed = |started: std::time::Instant| started.elapsed();
    let jobs = async {
        let started = std::time::Instant::now();
        sb.jobs().queues().await.map(|_| timed(started))
    };
    let cache = async {
        let started = std::time::Instant::now();
        sb.cache().stats_all().await.map(|_| timed(started))
    };
    let mut session_counts = BTreeMap::new();
    let sessions = async {
        let started = std::time::Instant::now();
        let (active, online) = tokio::try_join!(sb.sessions().count_active(), sb.presence().online_count())?;
        session_counts = BTreeMap::from([("sessions_active", active), ("online_users", online)]);
        Ok(timed(started))
    };
    let rate_limits = async {
        let started = std::time::Instant::now();
        let key = switchboard_core::RateLimitKey::new("switchboard:health")?;
        let policy = switchboard_core::PolicyRef::Inline(switchboard_core::Policy::gcra(1, 1000));
        sb.rate_limits().status(&key, &policy).await.map(|_| timed(started))
    };
    let (engine_health, jobs, cache, sessions, rate_limits) = tokio::join!(
        check("engine", deadline, timeout, ping),
        check("jobs", deadline, timeout, jobs),
        check("cache", deadline, timeout, cache),
        check("sessions", deadline, timeout, sessions),
        check("rate_limits", deadline, timeout, rate_limits),
    );
    let sessions = ComponentHealth { counts: session_counts, ..sessions };
    let pubsub = match engine.broker.connected() {
        true => ComponentHealth::healthy(),
        false => ComponentHealth::unhealthy(DISCONNECTED.to_owned()),
    };
    let gateway = state.gateway();
    let gateway = match gateway.stopping().is_cancelled() {
        false => ComponentHealth::healthy(),
        true => ComponentHealth::unhealthy("shutting_down".to_owned()),
    };
    let gateway =
        ComponentHealth { counts: BTreeMap::from([("connections", state.gateway().connections() as u64)]), ..gateway };
    BTreeMap::from([
        ("engine".to_owned(), engine_health),
        ("pubsub".to_owned(), pubsub),
        ("gateway".to_owned(), gateway),
        ("jobs".to_owned(), jobs),
        ("cache".to_owned(), cache),
        ("sessions".to_owned(), sessions),
        ("rate_limits".to_owned(), rate_limits),
    ])
}

impl ComponentHealth {
    fn healthy() -> Self {
        ComponentHealth { status: HealthStatus::Healthy, latency_ms: None, error: None, counts: BTreeMap::new() }
    }

    fn unhealthy(error: String) -> Self {
        ComponentHealth { error: Some(error), status: HealthStatus::Unhealthy, ..Self::healthy() }
    }
}

/// Runs one component's check (a call answering how long it took) until `deadline` (`timeout`
/// from the start of the whole report).
async fn check(
    component: &'static str,
    deadline: tokio::time::Instant,
    timeout: Duration,
    call: impl Future<Output = switchboard_core::Result<Duration>>,
) -> ComponentHealth {
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(took)) => ComponentHealth {
            status: if took > SLOW_CHECK { HealthStatus::Degraded } else { HealthStatus::Healthy },
            latency_ms: Some((took.as_secs_f64() * 1e6).round() / 1e3),
            ..ComponentHealth::healthy()
        },
        Ok(Err(e)) => {
            // The detail can name hosts; it goes to the log, the kind to the caller.
            tracing::warn!(component, error = %e, "health: check failed");
            ComponentHealth::unhealthy(e.kind().to_owned())
        }
        Err(_) => {
            tracing::warn!(component, timeout_ms = timeout.as_millis() as u64, "health: check timed out");
            ComponentHealth::unhealthy(format!("check timed out after {} ms", timeout.as_millis()))
        }
    }
}

fn status_code(status: HealthStatus) -> StatusCode {
    match status {
        HealthStatus::Healthy | HealthStatus::Degraded => StatusCode::OK,
        HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Overall health: 200 when healthy or degraded, 503 when unhealthy.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = OK, description = "Healthy or degraded", body = HealthReport),
        (status = SERVICE_UNAVAILABLE, description = "Unhealthy", body = HealthReport),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let components = check_components(&state).await;
    let status = components.values().map(|c| c.status).max().unwrap_or(HealthStatus::Healthy);
    (status_code(status), Json(HealthReport { status, components })).into_response()
}

/// Liveness: 200 whenever the process answers.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = OK, body = Probe)))]
pub(crate) async fn live() -> Json<Probe> {
    Json(Probe { status: "alive" })
}

/// Readiness: 200 when every component answers in time (the engine its ping, pub/sub connected,
/// the job store its query), else 503.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    responses(
        (status = OK, description = "Ready to serve", body = Probe),
        (status = SERVICE_UNAVAILABLE, description = "The engine or pub/sub is unreachable", body = Probe),
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let components = check_components(&state).await;
    if components.values().any(|c| c.status == HealthStatus::Unhealthy) {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Probe { status: "not_ready" })).into_response()
    } else {
        Json(Probe { status: "ready" }).into_response()
    }
}

/// `/health/{component}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ComponentPath {
    /// Component name: `engine`, `pubsub` or `jobs`.
    component: String,
}

/// One component's health: 200 when healthy or degraded, 503 when unhealthy, 404 if unknown.
#[utoipa::path(
    get,
    path = "/health/{component}",
    tag = "operations",
    params(ComponentPath),
    responses(
        (status = OK, body = ComponentHealth),
        (status = SERVICE_UNAVAILABLE, body = ComponentHealth),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn component(
    State(state): State<AppState>,
    Path(ComponentPath { component: name }): Path<ComponentPath>,
) -> Result<Response, ApiError> {
    // Checking only the one asked for would be cheaper, but the checks run at once anyway.
    let mut components = check_components(&state).await;
    let known = components.keys().cloned().collect::<Vec<_>>().join(", ");
    match components.remove(&name) {
        Some(c) => Ok((status_code(c.status), Json(c)).into_response()),
        None => Err(ApiError::not_found(format!("unknown health component; known: {known}"))),
    }
}
