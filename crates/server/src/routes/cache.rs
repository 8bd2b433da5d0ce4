//! `/cache`: get/set/delete, mget/mset, invalidation by tags or prefix, stats, and the lease
//! protocol (stampede protection across processes, stale-while-revalidate).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::limits::MAX_BATCH;
use switchboard_core::{
    CacheKeyPage, CacheLeaseAnswer, CacheLeaseOptions, CacheSetOptions, CacheStats, LeaseToken, Timestamp,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::{CacheKeyPath, NamespacePath};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_value, get_value, delete_value))
        .routes(routes!(mget))
        .routes(routes!(mset))
        .routes(routes!(lease))
        .routes(routes!(invalidate))
        .routes(routes!(stats))
        .routes(routes!(list_keys))
}

/// A value to store.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutBody {
    /// Any JSON value (its encoding at most 1 MiB).
    value: Value,
    /// Fresh for this long (default: the namespace's TTL from config; 1..=2592000).
    #[schema(minimum = 1, maximum = 2592000)]
    ttl_seconds: Option<u64>,
    /// Stale-while-revalidate grace after the TTL (default 0): the lease endpoint still answers
    /// the value, marked stale, while one caller recomputes it; plain reads miss.
    #[schema(minimum = 0, maximum = 2592000)]
    stale_seconds: Option<u64>,
    /// Tags to invalidate it by (at most 32 id-like names). Not with `lease_token`: a leased
    /// value takes the tags given to the lease.
    tags: Option<Vec<String>>,
    /// The token of this key's lease: store only if it still holds the lease, and release it.
    lease_token: Option<String>,
}

/// A stored value.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ValueAnswer {
    /// The value.
    value: Value,
}

/// Keys to read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MgetBody {
    /// At most 1000 keys.
    keys: Vec<String>,
}

/// One key's answer in an mget.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MgetEntry {
    /// The key.
    key: String,
    /// Whether a fresh value was found.
    hit: bool,
    /// The value, on a hit.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
}

/// The answers of an mget, in the order of the keys asked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MgetAnswer {
    /// One entry per key asked.
    entries: Vec<MgetEntry>,
}

/// One value of an mset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MsetEntry {
    /// The key (1..=512 bytes).
    key: String,
    /// Any JSON value.
    value: Value,
}

/// Values to store together, atomically, with one TTL and one set of tags.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MsetBody {
    /// At most 1000 entries.
    entries: Vec<MsetEntry>,
    /// As in `PUT`.
    #[schema(minimum = 1, maximum = 2592000)]
    ttl_seconds: Option<u64>,
    /// As in `PUT`.
    #[schema(minimum = 0, maximum = 2592000)]
    stale_seconds: Option<u64>,
    /// As in `PUT`.
    tags: Option<Vec<String>>,
}

/// How many values an mset stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MsetAnswer {
    /// Values stored.
    stored: usize,
}

/// A lease request; every field is optional (an empty body is fine).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeaseBody {
    /// How long a granted lease is held, 1..=300000 (default 10000). Store the value before it
    /// runs out; after it, the next caller gets the lease.
    #[schema(minimum = 1, maximum = 300000)]
    lease_ms: Option<u64>,
    /// How long to wait for the value while another caller holds the lease, 0..=30000
    /// (default 5000).
    #[schema(minimum = 0, maximum = 30000)]
    wait_ms: Option<u64>,
    /// The tags the value will carry. Their versions are recorded now, so a value computed
    /// across an invalidation of one of them is a miss as soon as it is stored.
    tags: Option<Vec<String>>,
}

/// The answer of a lease call: a value (`hit`), the lease (`lease_token`), both (a stale value
/// and the lease to revalidate it), or neither (`retry_after_ms`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LeaseAnswer {
    /// Whether `value` is present (fresh, or stale when `stale`).
    hit: bool,
    /// The value is past its TTL, within its stale grace.
    stale: bool,
    /// The value, when `hit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    /// Present (not null) when this caller holds the lease: compute the value and `PUT` it with
    /// this token.
    #[schema(value_type = Option<String>)]
    lease_token: Option<LeaseToken>,
    /// When the lease runs out, with `lease_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_expires_at: Option<Timestamp>,
    /// No value and no lease: another caller still computes it; retry after at most this.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

/// What to invalidate: `{namespace, tags}`, `{tags}` (every namespace) or `{namespace, prefix}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvalidateBody {
    /// The namespace. Leave it out with `tags` to invalidate those tags in every namespace;
    /// required with `prefix`.
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,64}$")]
    namespace: Option<String>,
    /// Every value carrying one of these tags (1..=32) becomes a miss, atomically.
    #[schema(max_items = 32)]
    tags: Option<Vec<String>>,
    /// Every value whose key starts with this (1..=512 bytes) is removed.
    #[schema(min_length = 1, max_length = 512)]
    prefix: Option<String>,
}

/// What an invalidation did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InvalidateAnswer {
    /// Values removed (prefix invalidation only: tag invalidation does not visit values).
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<u64>,
    /// Namespaces the tags were invalidated in (tags without a namespace only).
    #[serde(skip_serializing_if = "Option::is_none")]
    namespaces: Option<u64>,
}

/// Which namespace's stats.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// Only this namespace (default: every configured namespace and every one used).
    #[param(pattern = "^[A-Za-z0-9._:@-]{1,64}$")]
    namespace: Option<String>,
}

/// Counters by namespace.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatsAnswer {
    /// Namespace -> its counters.
    namespaces: BTreeMap<String, CacheStats>,
}

fn secs(field: Option<u64>) -> Option<Duration> {
    field.map(Duration::from_secs)
}

fn not_found() -> ApiError {
    ApiError::not_found("cache key not found")
}

/// Store a value. With `lease_token` it is stored only if that token still holds the key's
/// lease (409 otherwise: the lease ran out and was taken over, or the key was deleted or
/// prefix-invalidated since the lease was granted — a value computed before those must not
/// outlive them).
#[utoipa::path(
    put,
    path = "/cache/{namespace}/{key}",
    tag = "cache",
    params(CacheKeyPath),
    request_body = PutBody,
    responses(
        (status = NO_CONTENT, description = "Stored"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = CONFLICT, description = "`lease_token` does not hold the lease: nothing stored", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "Value over 1 MiB", body = ErrorBody),
    )
)]
pub(crate) async fn put_value(
    State(state): State<AppState>,
    Path(CacheKeyPath { namespace, key }): Path<CacheKeyPath>,
    Json(body): Json<PutBody>,
) -> Result<StatusCode, ApiError> {
    let lease_token = body.lease_token.map(LeaseToken::new).transpose()?;
    let options = CacheSetOptions {
        ttl: secs(body.ttl_seconds),
        stale: secs(body.stale_seconds),
        tags: body.tags.unwrap_or_default(),
        lease_token,
    };
    if state.sb().cache().set_with(&namespace, &key, &body.value, &options).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "lease_token: does not hold the lease of this key (it ran out, or the key was deleted or invalidated); \
             nothing was stored",
        ))
    }
}

/// A fresh value. Values past their TTL are misses here, even within a stale grace (only the
/// lease endpoint serves stale values).
#[utoipa::path(
    get,
    path = "/cache/{namespace}/{key}",
    tag = "cache",
    params(CacheKeyPath),
    responses(
        (status = OK, body = ValueAnswer),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "Miss", body = ErrorBody),
    )
)]
pub(crate) async fn get_value(
    State(state): State<AppState>,
    Path(CacheKeyPath { namespace, key }): Path<CacheKeyPath>,
) -> Result<Json<ValueAnswer>, ApiError> {
    let value = state.sb().cache().get(&namespace, &key).await?.ok_or_else(not_found)?;
    Ok(Json(ValueAnswer { value }))
}

/// Delete a value and the key's lease (a lease holder's later `PUT` then stores nothing).
#[utoipa::path(
    delete,
    path = "/cache/{namespace}/{key}",
    tag = "cache",
    params(CacheKeyPath),
    responses(
        (status = NO_CONTENT, description = "Deleted"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "No fresh value was stored", body = ErrorBody),
    )
)]
pub(crate) async fn delete_value(
    State(state): State<AppState>,
    Path(CacheKeyPath { namespace, key }): Path<CacheKeyPath>,
) -> Result<StatusCode, ApiError> {
    if state.sb().cache().delete(&namespace, &key).await? { Ok(StatusCode::NO_CONTENT) } else { Err(not_found()) }
}

/// Read several values in one atomic read, answered in the order asked.
#[utoipa::path(
    post,
    path = "/cache/{namespace}/mget",
    tag = "cache",
    params(NamespacePath),
    request_body = MgetBody,
    responses((status = OK, body = MgetAnswer), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn mget(
    State(state): State<AppState>,
    Path(NamespacePath { namespace }): Path<NamespacePath>,
    Json(body): Json<MgetBody>,
) -> Result<Json<MgetAnswer>, ApiError> {
    let values = state.sb().cache().mget(&namespace, &body.keys).await?;
    let entries =
        body.keys.into_iter().zip(values).map(|(key, value)| MgetEntry { key, hit: value.is_some(), value }).collect();
    Ok(Json(MgetAnswer { entries }))
}

/// Store several values atomically with one TTL and one set of tags.
#[utoipa::path(
    post,
    path = "/cache/{namespace}/mset",
    tag = "cache",
    params(NamespacePath),
    request_body = MsetBody,
    responses(
        (status = OK, body = MsetAnswer),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "A value over 1 MiB, or the body over the limit", body = ErrorBody),
    )
)]
pub(crate) async fn mset(
    State(state): State<AppState>,
    Path(NamespacePath { namespace }): Path<NamespacePath>,
    Json(body): Json<MsetBody>,
) -> Result<Json<MsetAnswer>, ApiError> {
    if body.entries.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!("entries: at most {MAX_BATCH} per batch")));
    }
    let options = CacheSetOptions {
        ttl: secs(body.ttl_seconds),
        stale: secs(body.stale_seconds),
        tags: body.tags.unwrap_or_default(),
        lease_token: None,
    };
    let entries: Vec<(String, Value)> = body.entries.into_iter().map(|e| (e.key, e.value)).collect();
    state.sb().cache().mset_with(&namespace, &entries, &options).await?;
    Ok(Json(MsetAnswer { stored: entries.len() }))
}

/// Stampede protection across processes. A fresh value answers `hit: true` at once. On a miss
/// the first caller gets a `lease_token` (computes the value, then `PUT`s it with the token);
/// callers arriving while the lease is held wait up to `wait_ms` and get the value as soon as
/// it is stored, or else `retry_after_ms` (or the lease, if the holder's ran out). Within a
/// value's stale grace every caller gets the stale value at once (`stale: true`) and exactly
/// one also gets a `lease_token` to revalidate it.
#[utoipa::path(
    post,
    path = "/cache/{namespace}/{key}/lease",
    tag = "cache",
    params(CacheKeyPath),
    request_body(content = Option<LeaseBody>, description = "Optional lease settings"),
    responses((status = OK, body = LeaseAnswer), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn lease(
    State(state): State<AppState>,
    Path(CacheKeyPath { namespace, key }): Path<CacheKeyPath>,
    body: crate::extract::JsonBody,
) -> Result<Json<LeaseAnswer>, ApiError> {
    let body = body.parse_optional::<LeaseBody>()?.unwrap_or_default();
    let options = CacheLeaseOptions {
        lease: body.lease_ms.map(Duration::from_millis),
        wait: body.wait_ms.map(Duration::from_millis),
        tags: body.tags.unwrap_or_default(),
    };
    let none = LeaseAnswer {
        hit: false,
        stale: false,
        value: None,
        lease_token: None,
        lease_expires_at: None,
        retry_after_ms: None,
    };
    let answer = match state.sb().cache().lease(&namespace, &key, &options).await? {
        CacheLeaseAnswer::Fresh(value) => LeaseAnswer { hit: true, value: Some(value), ..none },
        CacheLeaseAnswer::Stale { value, lease } => LeaseAnswer {
            hit: true,
            stale: true,
            value: Some(value),
            lease_expires_at: lease.as_ref().map(|l| l.expires_at),
            lease_token: lease.map(|l| l.token),
            ..none
        },
        CacheLeaseAnswer::Granted(lease) => {
            LeaseAnswer { lease_expires_at: Some(lease.expires_at), lease_token: Some(lease.token), ..none }
        }
        CacheLeaseAnswer::Pending { retry_after } => {
            LeaseAnswer { retry_after_ms: Some(u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX)), ..none }
        }
    };
    Ok(Json(answer))
}

/// Invalidate a namespace's values by tags (atomic and race-free: a value written before the
/// invalidation is never read after it, whatever the interleaving), every namespace's values by
/// tags (no `namespace`: the same guarantee in each namespace, e.g. everything cached about one
/// user), or a namespace's values by key prefix (also drops the leases of those keys).
#[utoipa::path(
    post,
    path = "/cache/invalidate",
    tag = "cache",
    request_body = InvalidateBody,
    responses((status = OK, body = InvalidateAnswer), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn invalidate(
    State(state): State<AppState>,
    Json(body): Json<InvalidateBody>,
) -> Result<Json<InvalidateAnswer>, ApiError> {
    let cache = state.sb().cache();
    match (body.namespace, body.tags, body.prefix) {
        (Some(namespace), Some(tags), None) => {
            cache.invalidate_tags(&namespace, &tags).await?;
            Ok(Json(InvalidateAnswer { removed: None, namespaces: None }))
        }
        (None, Some(tags), None) => {
            let namespaces = cache.invalidate_tags_everywhere(&tags).await?;
            Ok(Json(InvalidateAnswer { removed: None, namespaces: Some(namespaces) }))
        }
        (Some(namespace), None, Some(prefix)) => {
            let removed = cache.invalidate_prefix(&namespace, &prefix).await?;
            Ok(Json(InvalidateAnswer { removed: Some(removed), namespaces: None }))
        }
        (None, None, Some(_)) => Err(ApiError::invalid("`prefix` needs a `namespace`")),
        _ => Err(ApiError::invalid("give exactly one of `tags` and `prefix`")),
    }
}

/// Which keys to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct KeysQuery {
    /// The namespace.
    namespace: String,
    /// Only keys starting with this (default: all).
    prefix: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Keys per page, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// List a namespace's stored keys (values not expired), by prefix, in ascending byte order,
/// paged: pass `next_cursor` back as `cursor` until it is absent (a page may be short, even
/// empty, before it). For debugging and tooling (the `KEYS pattern*` of a Redis cache); a value
/// invalidated by a tag may be listed until it is read.
#[utoipa::path(
    get,
    path = "/cache",
    tag = "cache",
    params(KeysQuery),
    responses((status = OK, body = CacheKeyPage), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    Query(query): Query<KeysQuery>,
) -> Result<Json<CacheKeyPage>, ApiError> {
    let prefix = query.prefix.unwrap_or_default();
    let page = state.sb().cache().keys(&query.namespace, &prefix, query.cursor.as_deref(), query.limit).await?;
    Ok(Json(page))
}

/// Hits, misses, sets, invalidations, evictions and stored keys per namespace: one namespace, or
/// every configured one and every one used (at most 1000).
#[utoipa::path(
    get,
    path = "/cache/stats",
    tag = "cache",
    params(StatsQuery),
    responses((status = OK, body = StatsAnswer), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Query(query): Query<StatsQuery>,
) -> Result<Json<StatsAnswer>, ApiError> {
    let cache = state.sb().cache();
    let namespaces = match query.namespace {
        Some(name) => {
            let stats = cache.stats(&name).await?;
            BTreeMap::from([(name, stats)])
        }
        None => cache.stats_all().await?.into_iter().collect(),
    };
    Ok(Json(StatsAnswer { namespaces }))
}
