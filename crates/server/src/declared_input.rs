//! Input an operation does not declare is refused, as unknown body fields are: a caller who
//! writes `GET /users/alice/sessions?device_id=x` must not get every session back as if
//! filtered, nor `POST /sessions/{id}/touch {"idle_ttl_seconds": 1800}` a touch that silently
//! ignored the new TTL. What each operation declares (its query parameters, whether it takes a
//! body) comes from the OpenAPI document, so it is the documented input by construction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::ParameterIn;

use crate::error::ApiError;

/// What one documented operation accepts.
#[derive(Debug, Default)]
struct Declared {
    query: HashSet<String>,
    body: bool,
}

/// What each documented operation accepts, by route template, then method (looked up by
/// reference on every request: no allocation on the hot path).
#[derive(Debug, Clone, Default)]
pub(crate) struct DeclaredInput(Arc<HashMap<String, HashMap<Method, Declared>>>);

impl DeclaredInput {
    /// The names of every operation of `doc`.
    pub(crate) fn from_doc(doc: &OpenApi) -> Self {
        let mut names: HashMap<String, HashMap<Method, Declared>> = HashMap::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                let query = op
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| p.parameter_in == ParameterIn::Query)
                    .map(|p| p.name.clone())
                    .collect();
                let declared = Declared { query, body: op.request_body.is_some() };
                names.entry(path.clone()).or_default().insert(method, declared);
            }
        }
        DeclaredInput(Arc::new(names))
    }
}

/// Refuses a request to a documented operation whose query string names a parameter the
/// operation does not have, or that carries a body the operation does not take (400
/// `invalid_argument`).
pub(crate) async fn refuse_undeclared(State(names): State<DeclaredInput>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>();
    let Some(declared) = route.and_then(|route| names.0.get(route.as_str())?.get(req.method())) else {
        return next.run(req).await;
    };
    // The announced length, or what the body knows of itself (a body with neither is streamed
    // and left to the handler).
    let announced = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let body_length = announced.or_else(|| http_body::Body::size_hint(req.body()).exact());
    let req = if !declared.body && body_length.is_some_and(|n| n > 0) {
        match empty_body(req).await {
            Ok(req) => req,
            Err(refused) => return refused,
        }
    } else {
        req
    };
    if let Some(query) = req.uri().query() {
        let known = &declared.query;
        let unknown = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
            .find(|name| !known.contains(*name));
        if let Some(name) = unknown {
            let mut allowed: Vec<&str> = known.iter().map(String::as_str).collect();
            allowed.sort_unstable();
            let allowed = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
            let shown: String = name.chars().take(64).collect();
            return ApiError::invalid(format!(
                "unknown field `{shown}` in the query string; this route takes: {allowed}"
            ))
            .into_response();
        }
    }
    next.run(req).await
}

/// Longest body looked at on a route that takes none: an empty object fits many times over.
const MAX_EMPTY_BODY: usize = 1024;

/// Lets `req` through when its body says nothing (`{}`, `null` or whitespace, as clients send on
/// body-less POSTs); refuses any other body.
async fn empty_body(req: Request) -> Result<Request, Response> {
    let refused = || ApiError::invalid("this route takes no body (send none, or `{}`)").into_response();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_EMPTY_BODY).await.map_err(|_| refused())?;
    let empty = match bytes.trim_ascii() {
        b"" | b"null" => true,
        text => serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(text).is_ok_and(|m| m.is_empty()),
    };
    if !empty {
        return Err(refused());
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}
