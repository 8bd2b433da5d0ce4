//! Prometheus metrics: the global recorder ([`metrics_handle`]), the per-request middleware, and
//! the `/metrics` handler.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Histogram buckets in seconds, from 0.5 ms (a memory-engine call) to 10 s.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How long a scrape waits for the active-sessions count.
const COUNT_TIMEOUT: Duration = Duration::from_secs(1);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The handle of the process-wide Prometheus recorder, installing it on the first call. Safe to
/// call any number of times and from many tests: every router in the process shares it. If
/// another global recorder was installed first, a warning is logged and the handle renders only
/// what reaches it (nothing).
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE.get_or_init(install).clone()
}

fn install() -> PrometheusHandle {
    let builder = PrometheusBuilder::new();
    // `set_buckets` only fails on an empty slice.
    let builder = match builder.set_buckets(&BUCKETS) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: histogram buckets refused; latencies render as summaries");
            PrometheusBuilder::new()
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        tracing::warn!(error = %e, "metrics: a global recorder is already installed; /metrics will be empty");
    }
    describe();
    handle
}

fn describe() {
    metrics::describe_counter!("switchboard_http_requests_total", "HTTP requests by method, route and status.");
    metrics::describe_histogram!(
        "switchboard_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by method and route."
    );
    metrics::describe_gauge!(
        "switchboard_http_connections",
        "Open HTTP connections by pool: main (counts against max_connections) or health_reserve."
    );
    metrics::describe_counter!(
        "switchboard_http_connections_rejected_total",
        "Connections closed unserved past the cap: full (cap and health reserve taken) or evicted \
         (a silent reserve connection made way for a new one)."
    );
    metrics::describe_gauge!("switchboard_sessions_active", "Live sessions, counted at scrape time.");
    metrics::describe_gauge!(
        "switchboard_redis_circuit_open",
        "1 while the Redis connection is lost and calls are refused at once, 0 while it serves."
    );
    metrics::describe_gauge!(
        "switchboard_jobs",
        "Jobs by queue and state (waiting, delayed, active, completed, dead), counted at scrape time."
    );
    metrics::describe_counter!("switchboard_jobs_enqueued_total", "Jobs created, by queue.");
    metrics::describe_counter!("switchboard_jobs_fetched_total", "Jobs leased to workers.");
    metrics::describe_counter!("switchboard_jobs_completed_total", "Jobs completed.");
    metrics::describe_counter!(
        "switchboard_jobs_failed_total",
        "Failed attempts reported by workers, by whether the job died."
    );
    metrics::describe_counter!("switchboard_jobs_schedule_fired_total", "Schedule ticks fired by this node.");
    // Cache counters: `namespace` is one of `cache.namespaces` or `other` (bounded cardinality).
    metrics::describe_counter!("switchboard_cache_hits_total", "Cache reads that found a fresh value, by namespace.");
    metrics::describe_counter!(
        "switchboard_cache_misses_total",
        "Cache reads that found no fresh value, by namespace."
    );
    metrics::describe_counter!("switchboard_cache_sets_total", "Cache values stored, by namespace.");
    metrics::describe_counter!(
        "switchboard_cache_invalidations_total",
        "Cache invalidation calls (by tags or prefix), by namespace."
    );
}

/// Middleware: counts every request and records its latency, labelled with the route template
/// (never the raw path, which would carry ids and explode cardinality).
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = match req.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned(),
        None => "unmatched".to_owned(),
    };
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("switchboard_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("switchboard_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Standard methods by name; anything else (extension methods are client-chosen) is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Most queues reported by the `switchboard_jobs` gauges (the first by name).
const MAX_QUEUE_GAUGES: usize = 100;

/// Prometheus text exposition of every metric of the process.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = OK, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub(crate) async fn render(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(COUNT_TIMEOUT, state.sb().sessions().count_active()).await {
        Ok(Ok(count)) => metrics::gauge!("switchboard_sessions_active").set(count as f64),
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: counting active sessions failed"),
        Err(_) => tracing::warn!("metrics: counting active sessions timed out"),
    }
    match tokio::time::timeout(COUNT_TIMEOUT, state.sb().jobs().queues()).await {
        Ok(Ok(queues)) => {
            // At most MAX_QUEUE_GAUGES queues get gauges, so the label set stays bounded.
            for stats in queues.iter().take(MAX_QUEUE_GAUGES) {
                let counts = [
                    ("waiting", stats.waiting),
                    ("delayed", stats.delayed),
                    ("active", stats.active),
                    ("completed", stats.completed),
                    ("dead", stats.dead),
                ];
                for (job_state, n) in counts {
                    metrics::gauge!("switchboard_jobs", "queue" => stats.queue.to_string(), "state" => job_state)
                        .set(n as f64);
                }
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: counting jobs failed"),
        Err(_) => tracing::warn!("metrics: counting jobs timed out"),
    }
    let handle = state.metrics();
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}
