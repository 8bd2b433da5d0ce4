//! Switchboard's HTTP server: the `/api/v1` JSON API for app backends (sessions, token denylist,
//! rate limits, devices, presence, contacts, typing, conversations, publish/history, pending/ack,
//! disconnect, info), API-key authentication, health, Prometheus metrics, and the OpenAPI 3.1
//! document with Swagger UI. Handlers are thin: they validate ids, call the core services, and
//! turn answers and errors into JSON.
//!
//! # Layout
//! - [`config`]: [`ServerConfig`] and [`ApiKey`].
//! - [`state`]: [`AppState`], what every handler shares.
//! - [`error`]: [`ApiError`], the JSON error envelope, logged once at the boundary.
//! - [`extract`]: `Json` / `Path` / `Query` extractors whose rejections become the envelope.
//! - [`auth`]: bearer API-key check, constant time over every key.
//! - [`metrics`]: the Prometheus recorder ([`metrics_handle`]), request metrics, `/metrics`.
//! - [`health`]: `/health`, `/health/live`, `/health/ready`, `/health/{component}`.
//! - `listener`: the accept loop: connection cap with a health-only reserve, header-read
//!   timeout, TCP_NODELAY, graceful drain.
//! - `declared_input`: query parameters and bodies an operation does not declare refused (400),
//!   what it declares taken from the OpenAPI document.
//! - `request_limits`: up-front 413 from `Content-Length`, body-read deadline (408), the
//!   `/api/v1` request time limit (503).
//! - [`openapi`](mod@openapi): the OpenAPI document ([`openapi()`]), served at `/api/v1/openapi.json`.
//! - `routes`: the `/api/v1` handlers: `sessions`, `tokens`, `rate_limits`, `devices`,
//!   `pending`, `presence`, `contacts`, `typing`, `pubsub`, `disconnect`, `conversations`,
//!   `messages`, `inbox`, `notifications`, `cache`, `jobs`, `schedules`, `info`; `paths` holds
//!   their typed path parameters.
//! - [`builtin_jobs`]: `webhook.deliver`, `notification.deliver`, `push.send` and their worker.
//! - [`gateway`]: the WebSocket gateway's protocol codec, codes and client-token verification.
//!
//! # Example
//! ```no_run
//! # async fn demo(sb: switchboard_core::Switchboard) -> std::io::Result<()> {
//! use switchboard_server::{ApiKey, AppState, ServerConfig, serve};
//! let config = ServerConfig { api_keys: vec![ApiKey::new("backend", "s3cret")], ..ServerConfig::default() };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! serve(listener, AppState::new(sb, config), shutdown).await
//! # }
//! ```

pub mod auth;
pub mod builtin_jobs;
pub mod config;
mod declared_input;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod health;
mod listener;
pub mod metrics;
pub mod openapi;
mod request_limits;
mod routes;
pub mod state;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

pub use config::{ApiKey, ServerConfig};
pub use error::ApiError;
pub use metrics::metrics_handle;
pub use openapi::openapi;
pub use state::AppState;

/// The whole HTTP application: `/api/v1` (authenticated), health, `/metrics`, the OpenAPI
/// document at `/api/v1/openapi.json` and Swagger UI at `/docs`.
pub fn router(state: AppState) -> Router {
    if state.config().api_keys.iter().all(|k| k.key.is_empty()) {
        tracing::warn!("no API keys configured: every /api/v1 request will be rejected with 401");
    }
    // The time limit wraps authentication and the handler, body reading included.
    let api = routes::api()
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_api_key))
        .layer(middleware::from_fn_with_state(state.clone(), request_limits::limit_duration));
    let (app, doc) = openapi::assemble(api);
    let declared = declared_input::DeclaredInput::from_doc(&doc);
    let max_body = state.config().max_body_bytes;
    app.merge(SwaggerUi::new("/docs").url(openapi::SPEC_PATH, doc))
        .route("/connection/websocket", axum::routing::get(gateway::upgrade))
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(declared, declared_input::refuse_undeclared))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), request_limits::guard_body))
        .layer(middleware::from_fn(method_not_allowed))
        .layer(middleware::from_fn(metrics::track))
        // ApiError logs each failure once at the boundary; the trace layer would log it again.
        .layer(TraceLayer::new_for_http().make_span_with(request_span).on_failure(()))
        .with_state(state)
}

/// Runs the node and serves `router(state)` on `listener` until `shutdown` is cancelled: starts
/// the node unless it runs already ([`Switchboard::start`](switchboard_core::Switchboard::start):
/// sweeps, schedules, the engine's loops), the gateway's loops and the built-in worker; at the
/// end stops accepting, closes the WebSocket connections, waits for in-flight requests, and
/// shuts the node down (drained within `drain_timeout`, the engine closed last) — also when
/// serving fails. Connections are capped at `max_connections` (plus a reserve that only serves
/// `/health*`), headers must arrive within `header_read_timeout`; an invalid [`ServerConfig`] is
/// refused with [`std::io::ErrorKind::InvalidInput`] before anything starts.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let config = state.config().clone();
    config.validate().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let sb = state.sb().clone();
    // Servers may share one node (one `Switchboard`, two listeners): when two start at once, the
    // one whose start loses the race serves on the node the other one started.
    if !sb.is_running()
        && let Err(e) = sb.start()
        && !sb.is_running()
    {
        return Err(std::io::Error::other(e));
    }
    let served = serve_started(listener, state, shutdown, &config).await;
    let report = sb.shutdown(config.drain_timeout).await;
    if !report.drained() {
        tracing::warn!(unfinished = ?report.unfinished, "node: some tasks did not end within the drain timeout");
    }
    served?;
    tracing::info!(took_ms = report.took.as_millis() as u64, "HTTP server stopped");
    Ok(())
}

/// Everything on top of a running node; whatever it started ends with the node.
async fn serve_started(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    config: &ServerConfig,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listen.addr = %addr, max_connections = config.max_connections, "HTTP server listening");
    }
    let gateway = state.gateway().clone();
    gateway.start().map_err(std::io::Error::other)?;
    // Every node runs the built-in job types; the worker stops with the node.
    let builtin = builtin_jobs::start(state.sb(), &config.jobs).map_err(std::io::Error::other)?;
    let app = router(state);
    let draining = gateway.clone();
    let stop = async move {
        shutdown.cancelled().await;
        // Upgraded sockets are not HTTP connections any more: the gateway closes them first.
        draining.shutdown().await;
    };
    let served = listener::run(listener, app, config, stop).await;
    if let Some(worker) = builtin {
        worker.shutdown().await;
    }
    served
}

/// One span per request: method and route template only. Never the raw URI: session ids in
/// paths are bearer secrets.
fn request_span(req: &Request) -> tracing::Span {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!("http", http.method = %req.method(), http.route = route, api_key = tracing::field::Empty)
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// Gives axum's bare 405 answers the JSON envelope. axum adds the `Allow` header afterwards.
async fn method_not_allowed(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let response = next.run(req).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED || response.headers().contains_key(header::CONTENT_TYPE) {
        return response;
    }
    let message = format!("method {method} is not allowed on this route (see the Allow header)");
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_argument", message).into_response()
}
