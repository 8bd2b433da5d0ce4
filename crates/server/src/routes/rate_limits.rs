//! `/rate-limits`: checks (single or multi-key, atomic), status and reset, with the
//! IETF draft `RateLimit-Policy` / `RateLimit` headers and `Retry-After` on denial.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::IgnoredAny;
use switchboard_core::{Algorithm, CheckOutcome, Error, KeyDecision, Policy, PolicyRef, RateLimitCheck, RateLimitKey};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody, ceil_secs};
use crate::extract::{Json, JsonBody, Query};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(check)).routes(routes!(status)).routes(routes!(reset))
}

/// Several keys decided together, all or nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckBatch {
    /// 1 to 1000 distinct keys.
    checks: Vec<RateLimitCheck>,
}

/// One check, or several decided atomically.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only describes the body in the OpenAPI document; `parse_checks` reads it.
pub(crate) enum CheckRequest {
    /// One key.
    Single(RateLimitCheck),
    /// Several keys, all or nothing.
    Batch(CheckBatch),
}

/// The key and policy of a status query: `policy` names a configured policy, or `limit` and
/// `window_ms` (with optional `algorithm` and `burst`) give one inline.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatusQuery {
    /// The limited thing, e.g. `ip:10.0.0.1`.
    key: String,
    /// A configured policy's name.
    policy: Option<String>,
    /// Inline policy: requests per window, 1..=1000000.
    #[param(minimum = 1, maximum = 1000000)]
    limit: Option<u32>,
    /// Inline policy: window length in milliseconds, 1..=2592000000 (30 d).
    #[param(minimum = 1, maximum = 2592000000_u64)]
    window_ms: Option<u64>,
    /// Inline policy: algorithm (default `gcra`).
    #[param(inline)]
    algorithm: Option<Algorithm>,
    /// Inline GCRA policy: requests allowed at once, 1..=1000000 (default `limit`).
    #[param(minimum = 1, maximum = 1000000)]
    burst: Option<u32>,
}

/// The key to reset.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ResetQuery {
    /// The limited thing, e.g. `ip:10.0.0.1`.
    key: String,
}

/// Reads either body shape: an object with `checks` is a batch (`true`), any other object one
/// check.
fn parse_checks(body: &JsonBody) -> Result<(Vec<RateLimitCheck>, bool), ApiError> {
    let fields: BTreeMap<String, IgnoredAny> = body.parse()?;
    if fields.contains_key("checks") {
        Ok((body.parse::<CheckBatch>()?.checks, true))
    } else {
        Ok((vec![body.parse::<RateLimitCheck>()?], false))
    }
}

/// Check (and consume) one or several rate limits.
///
/// The body is one check `{"key", "policy", "cost"?}` or several `{"checks": [...]}` decided
/// atomically: either every key allows it and all are consumed, or nothing is consumed. `policy`
/// is a configured policy's name or an inline `{"algorithm"?, "limit", "window_ms", "burst"?}`.
///
/// **A denied check still answers 200** with `"allowed": false`: the caller (your backend) asked
/// a question and got its answer; it is not itself being limited. The answer carries the
/// `RateLimit-Policy` and `RateLimit` headers (IETF draft, for the tightest key) and
/// `Retry-After` (seconds, rounded up) when denied, ready to be relayed to your client.
#[utoipa::path(
    post,
    path = "/rate-limits/check",
    tag = "rate-limits",
    request_body = CheckRequest,
    responses(
        (status = OK, description = "The decision (allowed or denied)", body = CheckOutcome, headers(
            ("RateLimit-Policy" = String, description = "`\"<policy name or key>\";q=<limit>;w=<window seconds>`"),
            ("RateLimit" = String, description = "`\"<policy name or key>\";r=<remaining>;t=<reset seconds>`"),
            ("Retry-After" = u64, description = "Seconds until a retry could succeed (only when denied)"),
        )),
        (status = BAD_REQUEST, description = "Invalid input or unknown policy name", body = ErrorBody),
    )
)]
pub(crate) async fn check(State(state): State<AppState>, body: JsonBody) -> Result<Response, ApiError> {
    let (checks, batch) = parse_checks(&body)?;
    let outcome = match state.sb().rate_limits().check(&checks).await {
        Ok(outcome) => outcome,
        // The service names fields `checks[i].*`; a single check has no `checks`.
        Err(Error::InvalidArgument(m)) if !batch => {
            return Err(ApiError::invalid(m.strip_prefix("checks[0].").unwrap_or(&m)));
        }
        Err(e) => return Err(e.into()),
    };
    let mut headers = HeaderMap::new();
    if let Some(tightest) = outcome.tightest() {
        let retry_after = (!outcome.allowed).then_some(outcome.retry_after_ms);
        set_rate_limit_headers(&mut headers, tightest, retry_after);
    }
    Ok((headers, Json(outcome)).into_response())
}

/// The decision a cost-1 check of `key` would get now, consuming nothing.
#[utoipa::path(
    get,
    path = "/rate-limits/status",
    tag = "rate-limits",
    params(StatusQuery),
    responses(
        (status = OK, body = KeyDecision, headers(
            ("RateLimit-Policy" = String, description = "As for a check"),
            ("RateLimit" = String, description = "As for a check"),
            ("Retry-After" = u64, description = "Only when a check would be denied"),
        )),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn status(
    State(state): State<AppState>,
    Query(query): Query<StatusQuery>,
) -> Result<Response, ApiError> {
    let key = RateLimitKey::parse_field("key", query.key)?;
    let inline =
        query.limit.is_some() || query.window_ms.is_some() || query.algorithm.is_some() || query.burst.is_some();
    let policy = match (query.policy, query.limit, query.window_ms) {
        (Some(_), ..) if inline => {
            return Err(ApiError::invalid("policy: give a policy name or limit and window_ms, not both"));
        }
        (Some(name), ..) => PolicyRef::Named(name),
        (None, Some(limit), Some(window_ms)) => PolicyRef::Inline(Policy {
            algorithm: query.algorithm.unwrap_or_default(),
            limit,
            window_ms,
            burst: query.burst,
        }),
        (None, ..) => return Err(ApiError::invalid("policy: give a policy name, or limit and window_ms")),
    };
    let decision = state.sb().rate_limits().status(&key, &policy).await?;
    let mut headers = HeaderMap::new();
    let retry_after = (!decision.decision.allowed).then_some(decision.decision.retry_after_ms);
    set_rate_limit_headers(&mut headers, &decision, retry_after);
    Ok((headers, Json(decision)).into_response())
}

/// Forget a key's state (its next check starts from a full allowance).
#[utoipa::path(
    delete,
    path = "/rate-limits",
    tag = "rate-limits",
    params(ResetQuery),
    responses(
        (status = NO_CONTENT, description = "Reset"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "The key had no state", body = ErrorBody),
    )
)]
pub(crate) async fn reset(
    State(state): State<AppState>,
    Query(query): Query<ResetQuery>,
) -> Result<StatusCode, ApiError> {
    let key = RateLimitKey::parse_field("key", query.key)?;
    if state.sb().rate_limits().reset(&key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no rate-limit state for this key"))
    }
}

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Sets the draft headers for `d` (named by its policy name, else its key) and, when
/// `retry_after_ms` is given, `Retry-After` in whole seconds (at least 1).
fn set_rate_limit_headers(headers: &mut HeaderMap, d: &KeyDecision, retry_after_ms: Option<u64>) {
    let name = sf_string(d.policy_name.as_deref().unwrap_or(d.key.as_str()));
    let policy = format!("{name};q={};w={}", d.policy.limit, ceil_secs(d.policy.window_ms));
    let current = format!("{name};r={};t={}", d.decision.remaining, ceil_secs(d.decision.reset_after_ms));
    // Names and keys are validated ASCII, so these never fail; if one did, the header is left out.
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert(RATELIMIT_POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&current) {
        headers.insert(RATELIMIT, v);
    }
    if let Some(ms) = retry_after_ms {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(ceil_secs(ms).max(1)));
    }
}

/// A structured-field string (RFC 8941 §3.3.3): quoted, `"` and `\` escaped, non-printable
/// characters dropped.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| matches!(c, ' '..='~')) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sf_strings_are_quoted_and_escaped() {
        assert_eq!(sf_string("login"), "\"login\"");
        assert_eq!(sf_string("a\"b\\c\u{1}é"), "\"a\\\"b\\\\c\"");
    }
}
