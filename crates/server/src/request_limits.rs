//! Per-request guards against slow or lying clients: an up-front 413 from `Content-Length`, a
//! deadline on reading the body (408), and the time limit of `/api/v1` requests (503).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::state::AppState;

/// Routes that wait by design, with the longest wait each accepts: their time limit is
/// `request_timeout` plus that wait, so a valid long-poll is never cut short while a hung one
/// is still bounded.
const LONG_POLLS: [(&str, Duration); 2] = [
    ("/api/v1/queues/fetch", switchboard_core::services::MAX_FETCH_WAIT),
    ("/api/v1/cache/{namespace}/{key}/lease", Duration::from_millis(switchboard_core::limits::MAX_CACHE_LEASE_WAIT_MS)),
];

/// Outer guard of every route: refuses a declared body over `max_body_bytes` before reading a
/// byte of it, and answers 408 when the body does not arrive within `body_read_timeout`.
pub(crate) async fn guard_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let config = state.config();
    let limit = config.max_body_bytes;
    if declared_length(req.headers()).is_some_and(|n| n > limit as u64) {
        let message = format!("request body (Content-Length) is larger than the limit of {limit} bytes");
        return closing(ApiError::too_large(message));
    }
    // Most requests (GETs, upgrades) have no body: no timer for them.
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + config.body_read_timeout;
    let req = req.map(|body| Body::new(DeadlineBody::new(body, deadline, expired.clone())));
    let response = next.run(req).await;
    // Whatever the handler made of the failed read (usually a 400), the cause was the deadline.
    if expired.load(Ordering::Relaxed) {
        tracing::debug!(timeout_ms = config.body_read_timeout.as_millis() as u64, "request body timed out");
        let message = format!("the request body did not arrive within {} ms", config.body_read_timeout.as_millis());
        return closing(ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message));
    }
    response
}

/// Time limit of `/api/v1` requests: 503 `unavailable` once `request_timeout` (plus the route's
/// own longest wait, for long-polls) has passed.
pub(crate) async fn limit_duration(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Cloning a `MatchedPath` is cheap (shared string): kept for the log line.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let limit = state.config().request_timeout + route.as_ref().map_or(Duration::ZERO, |r| long_poll_wait(r.as_str()));
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let limit_ms = limit.as_millis() as u64;
            tracing::warn!(
                http.route = route.as_ref().map_or("unmatched", MatchedPath::as_str),
                timeout_ms = limit_ms,
                "request timed out"
            );
            let message = format!(
                "the request did not finish within {limit_ms} ms and was abandoned; it may or may not have \
                 taken effect, retry later"
            );
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).into_response()
        }
    }
}

/// The extra time a long-poll route may wait, zero for every other route.
fn long_poll_wait(route: &str) -> Duration {
    LONG_POLLS.iter().find(|(path, _)| *path == route).map_or(Duration::ZERO, |(_, wait)| *wait)
}

/// `Content-Length` as a number, when present and valid (hyper has refused invalid ones).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The error with `Connection: close`: the unread body is still on the wire, so the connection
/// cannot carry another request.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A body that fails once its deadline passes, and says so through `expired`.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Body, deadline: Instant, expired: Arc<AtomicBool>) -> Self {
        DeadlineBody { inner, deadline: Box::pin(tokio::time::sleep_until(deadline)), expired }
    }
}

/// The error a [`DeadlineBody`] fails with.
#[derive(Debug, thiserror::Error)]
#[error("request body read timed out")]
struct BodyTimedOut;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        // Data already here is taken even past the deadline; only waiting is cut short.
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        ready!(this.deadline.as_mut().poll(cx));
        this.expired.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_polls_name_real_routes() {
        let doc = crate::openapi();
        for (path, _) in LONG_POLLS {
            let relative = path.trim_start_matches("/api/v1");
            assert!(
                doc.paths.paths.contains_key(relative) || doc.paths.paths.contains_key(path),
                "{path} is not a route"
            );
        }
        assert_eq!(long_poll_wait("/api/v1/queues/fetch"), switchboard_core::services::MAX_FETCH_WAIT);
        assert_eq!(long_poll_wait("/api/v1/sessions"), Duration::ZERO);
    }

    #[test]
    fn declared_length_reads_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(declared_length(&headers), None);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99999999999"));
        assert_eq!(declared_length(&headers), Some(99_999_999_999));
    }
}
