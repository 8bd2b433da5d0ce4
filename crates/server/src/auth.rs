//! API-key authentication of `/api/v1`: `Authorization: Bearer <key>`, compared in constant time
//! against every configured key.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::config::ApiKey;
use crate::error::ApiError;
use crate::state::AppState;

/// The name of the API key that authenticated a request (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyName(pub String);

/// Middleware: rejects the request with 401 `unauthenticated` unless it carries a configured key.
pub(crate) async fn require_api_key(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match authenticate(&state.config().api_keys, req.headers()) {
        Ok(name) => {
            let name = name.to_owned();
            tracing::Span::current().record("api_key", name.as_str());
            req.extensions_mut().insert(ApiKeyName(name));
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// The name of the key `headers` present, or the 401 to answer.
pub(crate) fn authenticate<'k>(keys: &'k [ApiKey], headers: &HeaderMap) -> Result<&'k str, ApiError> {
    let missing = || ApiError::unauthenticated("missing `Authorization: Bearer <api key>` header");
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?.as_bytes();
    // The scheme is case-insensitive (RFC 7235); the key is everything after one space.
    let presented = match value.split_at_checked(7) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
        _ => return Err(missing()),
    };
    if presented.is_empty() {
        return Err(missing());
    }
    // Every key is compared, whatever matched before, and the winner is picked without a branch,
    // so the time taken does not tell which key (or how many) matched. Lengths may still leak
    // through `ct_eq`, which is accepted practice for API keys.
    let mut found = Choice::from(0);
    let mut index = 0u64;
    for (i, key) in keys.iter().enumerate() {
        let usable = Choice::from(u8::from(!key.key.is_empty()));
        let hit = key.key.as_bytes().ct_eq(presented) & usable & !found;
        index = u64::conditional_select(&index, &(i as u64), hit);
        found |= hit;
    }
    if bool::from(found) {
        let name = usize::try_from(index).ok().and_then(|i| keys.get(i)).map(|k| k.name.as_str());
        return name.ok_or_else(|| ApiError::unauthenticated("invalid API key"));
    }
    Err(ApiError::unauthenticated("invalid API key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn finds_the_matching_key_by_name() {
        let keys = [ApiKey::new("a", "key-a"), ApiKey::new("b", "key-b"), ApiKey::new("empty", "")];
        assert_eq!(authenticate(&keys, &headers("Bearer key-b")).unwrap(), "b");
        assert_eq!(authenticate(&keys, &headers("bearer key-a")).unwrap(), "a");
        assert!(authenticate(&keys, &headers("Bearer key-c")).is_err());
        assert!(authenticate(&keys, &headers("Bearer ")).is_err());
        assert!(authenticate(&keys, &headers("Basic key-a")).is_err());
        assert!(authenticate(&keys, &headers("key-a")).is_err());
        assert!(authenticate(&keys, &HeaderMap::new()).is_err());
        assert!(authenticate(&[], &headers("Bearer key-a")).is_err());
    }
}
