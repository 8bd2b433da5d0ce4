//! `/users/{user_id}/presence` and `/presence`: a user's presence and status, bulk queries,
//! online users and their count.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use switchboard_core::presence::{OnlinePage, UserPresence};
use switchboard_core::{SetStatus, UserId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::UserPath;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_presence))
        .routes(routes!(set_status))
        .routes(routes!(query_presence))
        .routes(routes!(online_users))
        .routes(routes!(online_count))
}

/// Users whose presence to read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PresenceQuery {
    /// At most 1000 users.
    user_ids: Vec<UserId>,
}

/// Presence of several users.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PresenceList {
    /// One entry per requested user, in the order asked.
    presences: Vec<UserPresence>,
}

/// A page of online users.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OnlineQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Users per page, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// How many users are online.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OnlineCount {
    /// Online users (the rule of `GET /users/{user_id}/presence`).
    count: u64,
}

/// A user's presence, full (the backend's view: an invisible user shows as invisible, with
/// their devices).
#[utoipa::path(
    get,
    path = "/users/{user_id}/presence",
    tag = "presence",
    params(UserPath),
    responses(
        (status = OK, body = UserPresence),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn get_presence(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
) -> Result<Json<UserPresence>, ApiError> {
    Ok(Json(state.sb().presence().get(&user).await?))
}

/// Set a user's status (`online`, `away` or `busy`), status text and invisibility. Others are
/// told (`presence.changed`) only when what they see changes.
#[utoipa::path(
    put,
    path = "/users/{user_id}/presence/status",
    tag = "presence",
    params(UserPath),
    request_body = SetStatus,
    responses(
        (status = OK, description = "The user's presence after the change", body = UserPresence),
        (status = BAD_REQUEST, description = "`offline` as status, or text over 128 characters", body = ErrorBody),
    )
)]
pub(crate) async fn set_status(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Json(req): Json<SetStatus>,
) -> Result<Json<UserPresence>, ApiError> {
    Ok(Json(state.sb().presence().set_status(&user, req).await?))
}

/// Presence of up to 1000 users at once, full (the backend's view).
#[utoipa::path(
    post,
    path = "/presence/query",
    tag = "presence",
    request_body = PresenceQuery,
    responses(
        (status = OK, body = PresenceList),
        (status = BAD_REQUEST, description = "Invalid ids, or more than 1000", body = ErrorBody),
    )
)]
pub(crate) async fn query_presence(
    State(state): State<AppState>,
    Json(req): Json<PresenceQuery>,
) -> Result<Json<PresenceList>, ApiError> {
    Ok(Json(PresenceList { presences: state.sb().presence().bulk(&req.user_ids).await? }))
}

/// One page of the online users, in ascending id order: online by the same rule as
/// `GET /users/{user_id}/presence` (a live connection or heartbeat, or within the offline grace
/// period after the last one ended). Pass `next_cursor` back as
/// `cursor` for the next page until it is absent (a page after a full one may be empty). The
/// count is `GET /presence/online/count`.
#[utoipa::path(
    get,
    path = "/presence/online",
    tag = "presence",
    params(OnlineQuery),
    responses(
        (status = OK, body = OnlinePage),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn online_users(
    State(state): State<AppState>,
    Query(query): Query<OnlineQuery>,
) -> Result<Json<OnlinePage>, ApiError> {
    Ok(Json(state.sb().presence().online_users(query.cursor.as_deref(), query.limit).await?))
}

/// How many users are online, by the rule of `GET /presence/online`.
#[utoipa::path(
    get,
    path = "/presence/online/count",
    tag = "presence",
    responses((status = OK, body = OnlineCount))
)]
pub(crate) async fn online_count(State(state): State<AppState>) -> Result<Json<OnlineCount>, ApiError> {
    Ok(Json(OnlineCount { count: state.sb().presence().online_count().await? }))
}
