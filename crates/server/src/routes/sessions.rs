//! `/sessions` and `/users/{user_id}/sessions`: create, read, touch, update, delete and list
//! sessions.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_core::{CreateSession, DeviceId, Session, SessionData, SessionId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::disconnect::disconnect_quietly;
use super::paths::{SessionPath, UserPath};
use super::session_id;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::gateway::DisconnectTarget;
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session))
        .routes(routes!(get_session, update_session, delete_session))
        .routes(routes!(touch_session))
        .routes(routes!(list_user_sessions, delete_user_sessions))
}

/// A created session and the sessions it replaced or evicted.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedSessionBody {
    /// The new session.
    session: Session,
    /// Ids of the user's least recently active sessions removed to respect the per-user maximum.
    evicted: Vec<SessionId>,
    /// Ids of the user's sessions on the same device removed by `replace_device`.
    replaced: Vec<SessionId>,
}

/// Filters of a user's session list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListUserSessionsQuery {
    /// Only the sessions created on this device (`device.device_id`).
    device_id: Option<String>,
}

/// A field-by-field update of a session's data.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateSessionBody {
    /// Fields to set; a `null` value deletes that field. Other fields are kept.
    #[schema(value_type = Object, example = json!({"theme": "dark", "cart": null}))]
    data: SessionData,
}

/// A user's live sessions, most recently active first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionList {
    /// The sessions.
    sessions: Vec<Session>,
}

/// Ids of deleted sessions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeletedSessions {
    /// The ids.
    deleted: Vec<SessionId>,
}

/// Options of "log out everywhere".
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteUserSessionsQuery {
    /// A session to keep (usually the caller's current one): "log out other devices".
    except: Option<String>,
}

fn session_not_found() -> ApiError {
    ApiError::not_found("session not found")
}

/// The connections made with a session's tokens, told not to reconnect: the session is gone.
fn session_target(id: &SessionId) -> DisconnectTarget {
    DisconnectTarget { session_id: Some(id.clone()), reconnect: false, ..DisconnectTarget::default() }
}

/// Create a session. With `replace_device`, the user's sessions on `device.device_id` are
/// deleted in the same step and listed in `replaced` (one session per device). When the user
/// still has the maximum number of sessions, the least recently active ones are evicted and
/// listed in `evicted`. The WebSocket connections of replaced and evicted sessions are closed
/// (without reconnect). `id` lets the app choose the session id (32..=128 URL-safe
/// characters; `409` while a live session has it).
#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    request_body = CreateSession,
    responses(
        (status = CREATED, description = "Created", body = CreatedSessionBody),
        (status = BAD_REQUEST, description = "Invalid input", body = ErrorBody),
        (status = CONFLICT, description = "A live session already has the chosen `id`", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "`data` over 4 KiB or body over the limit", body = ErrorBody),
    )
)]
pub(crate) async fn create_session(
    State(state): State<AppState>,
    Json(req): Json<CreateSession>,
) -> Result<(StatusCode, Json<CreatedSessionBody>), ApiError> {
    let created = state.sb().sessions().create(req).await?;
    for gone in created.evicted.iter().chain(&created.replaced) {
        disconnect_quietly(&state, &created.session.user_id, session_target(gone)).await;
    }
    let body = CreatedSessionBody { session: created.session, evicted: created.evicted, replaced: created.replaced };
    Ok((StatusCode::CREATED, Json(body)))
}

/// Get a live session.
#[utoipa::path(
    get,
    path = "/sessions/{session_id}",
    tag = "sessions",
    params(SessionPath),
    responses(
        (status = OK, body = Session),
        (status = BAD_REQUEST, description = "Not a session id", body = ErrorBody),
        (status = NOT_FOUND, description = "No such live session", body = ErrorBody),
    )
)]
pub(crate) async fn get_session(
    State(state): State<AppState>,
    Path(SessionPath { session_id: id }): Path<SessionPath>,
) -> Result<Json<Session>, ApiError> {
    state.sb().sessions().get(&id).await?.map(Json).ok_or_else(session_not_found)
}

/// Update a session's data field by field: each field given replaces that field, `null` deletes
/// it, fields not given are kept. Concurrent updates of different fields never lose each other.
/// Does not count as activity.
#[utoipa::path(
    patch,
    path = "/sessions/{session_id}",
    tag = "sessions",
    params(SessionPath),
    request_body = UpdateSessionBody,
    responses(
        (status = OK, description = "The updated session", body = Session),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "The merged data would exceed 4 KiB", body = ErrorBody),
    )
)]
pub(crate) async fn update_session(
    State(state): State<AppState>,
    Path(SessionPath { session_id: id }): Path<SessionPath>,
    Json(body): Json<UpdateSessionBody>,
) -> Result<Json<Session>, ApiError> {
    state.sb().sessions().update_data(&id, &body.data).await?.map(Json).ok_or_else(session_not_found)
}

/// Delete a session and close the WebSocket connections made with it (without reconnect).
#[utoipa::path(
    delete,
    path = "/sessions/{session_id}",
    tag = "sessions",
    params(SessionPath),
    responses(
        (status = NO_CONTENT, description = "Deleted"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "No such live session", body = ErrorBody),
    )
)]
pub(crate) async fn delete_session(
    State(state): State<AppState>,
    Path(SessionPath { session_id: id }): Path<SessionPath>,
) -> Result<StatusCode, ApiError> {
    let sessions = state.sb().sessions();
    // The owner is needed to reach its connections; an expired session is not found either way.
    let Some(session) = sessions.get(&id).await? else { return Err(session_not_found()) };
    if !sessions.delete(&id).await? {
        return Err(session_not_found());
    }
    disconnect_quietly(&state, &session.user_id, session_target(&id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Mark activity: slides the idle expiry (capped by the absolute expiry) and updates
/// `last_active_at`.
#[utoipa::path(
    post,
    path = "/sessions/{session_id}/touch",
    tag = "sessions",
    params(SessionPath),
    responses(
        (status = OK, description = "The touched session", body = Session),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn touch_session(
    State(state): State<AppState>,
    Path(SessionPath { session_id: id }): Path<SessionPath>,
) -> Result<Json<Session>, ApiError> {
    state.sb().sessions().touch(&id).await?.map(Json).ok_or_else(session_not_found)
}

/// List a user's live sessions, most recently active first; with `device_id`, only those on
/// that device.
#[utoipa::path(
    get,
    path = "/users/{user_id}/sessions",
    tag = "sessions",
    params(UserPath, ListUserSessionsQuery),
    responses(
        (status = OK, body = SessionList),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn list_user_sessions(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Query(query): Query<ListUserSessionsQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = match query.device_id {
        Some(raw) => state.sb().sessions().list_device(&user, &DeviceId::parse_field("device_id", raw)?).await?,
        None => state.sb().sessions().list(&user).await?,
    };
    Ok(Json(SessionList { sessions }))
}

/// Log out everywhere: delete all of a user's sessions, or all but `except`, and close the
/// WebSocket connections made with them (without reconnect).
#[utoipa::path(
    delete,
    path = "/users/{user_id}/sessions",
    tag = "sessions",
    params(UserPath, DeleteUserSessionsQuery),
    responses(
        (status = OK, description = "The deleted sessions", body = DeletedSessions),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn delete_user_sessions(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Query(query): Query<DeleteUserSessionsQuery>,
) -> Result<Json<DeletedSessions>, ApiError> {
    let except = query.except.map(|raw| session_id("except", raw)).transpose()?;
    let deleted = state.sb().sessions().delete_user_sessions(&user, except.as_ref()).await?;
    for id in &deleted {
        disconnect_quietly(&state, &user, session_target(id)).await;
    }
    Ok(Json(DeletedSessions { deleted }))
}
