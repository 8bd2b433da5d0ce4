//! The accept loop: HTTP/1.1 connections over hyper with a header-read timeout, a cap on open
//! connections with a reserve that only serves `/health*`, and a graceful drain.
//!
//! A connection takes a slot of `max_connections` when one is free. Otherwise it takes one of
//! `health_reserve_connections`: such a connection serves one request, and only `/health*`
//! (anything else gets 503 `unavailable`), so probes answer while the server is full. When the
//! reserve is full too, its oldest connection that has not sent a request yet is closed to make
//! way; if every reserve connection is being served, the new one is closed at once, so a flood
//! costs no file descriptors. A connection upgraded to WebSocket gives its slot back: the
//! gateway has its own limits.
//!
//! # Layout
//! - `slots`: the cap, the health reserve, and fitting the cap under the open-files limit.

mod slots;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use self::slots::{Slot, Slots};
use crate::config::ServerConfig;
use crate::error::ApiError;

/// How long accepting pauses after an error such as running out of file descriptors, so the
/// loop does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `stop` completes, then lets in-flight requests finish
/// (connections close after their current response) and returns once every connection is done.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Slots::new(slots::fitted_cap(config), config.health_reserve_connections);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(config.header_read_timeout);
    let mut reserve_builder = builder.clone();
    reserve_builder.keep_alive(false);
    let connections = TaskTracker::new();
    let draining = CancellationToken::new();
    let mut starved = false;
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, remote) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors (or memory): existing connections must close
                    // first. Logged once per episode, not once per retry.
                    if !starved {
                        tracing::error!(error = %e, "cannot accept connections; retrying (check max_connections against `ulimit -n`)");
                        starved = true;
                    }
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        starved = false;
        let Some(slot) = slots.admit() else {
            // Closing now frees the descriptor; the client sees a reset or EOF.
            metrics::counter!("switchboard_http_connections_rejected_total", "reason" => "full").increment(1);
            tracing::debug!(peer.addr = %remote, "connection cap and health reserve full: closed");
            drop(tcp);
            continue;
        };
        // Small writes (pushes, replies) go out at once instead of waiting for Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let builder = if slot.health_only() { reserve_builder.clone() } else { builder.clone() };
        connections.spawn(serve_connection(builder, tcp, remote, app.clone(), slot, draining.clone()));
    }
    draining.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serves one connection until the client or the server ends it.
async fn serve_connection(
    builder: http1::Builder,
    tcp: TcpStream,
    remote: SocketAddr,
    app: Router,
    slot: Slot,
    draining: CancellationToken,
) {
    let health_only = slot.health_only();
    let state = slot.state().clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        state.head_received();
        // The gateway reads the client's address (per-IP connect limits).
        req.extensions_mut().insert(ConnectInfo(remote));
        let app = app.clone();
        let state = state.clone();
        async move {
            if health_only && !is_health(req.uri().path()) {
                return Ok::<_, Infallible>(at_capacity());
            }
            let response = match app.oneshot(req.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            // A WebSocket stops counting against the cap: the gateway has its own limits.
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                state.give_back();
            }
            Ok(response)
        }
    });
    let conn = builder.serve_connection(TokioIo::new(tcp), service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut drain = std::pin::pin!(draining.cancelled());
    let mut drain_started = false;
    let shared = slot.state().clone();
    let mut evicted = std::pin::pin!(shared.evicted());
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            // Pushed out of the health reserve before sending a request: just close.
            () = &mut evicted => return,
            () = &mut drain, if !drain_started => {
                // Finishes the request in flight, then closes; an idle connection closes now.
                conn.as_mut().graceful_shutdown();
                drain_started = true;
            }
        }
    };
    if let Err(e) = result {
        // Header timeouts, resets and malformed requests end up here: the client's doing.
        tracing::debug!(peer.addr = %remote, error = %e, "HTTP connection ended with an error");
    }
    // An upgraded connection ends here too, its socket handed to the gateway's task; its slot
    // was given back when the upgrade was answered.
    drop(slot);
}

/// `/health` and everything under it.
fn is_health(path: &str) -> bool {
    path == "/health" || path.starts_with("/health/")
}

/// The answer of a reserve connection to anything but `/health*`.
fn at_capacity() -> Response {
    let message = "the server is at its connection limit (max_connections); retry later";
    let mut response = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Errors of one connection that was being accepted; the listener itself is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_health_routes_are_health() {
        for path in ["/health", "/health/live", "/health/ready", "/health/engine"] {
            assert!(is_health(path), "{path}");
        }
        for path in ["/healthz", "/api/v1/health", "/", "/metrics"] {
            assert!(!is_health(path), "{path}");
        }
    }
}
