//! `/users/{user_id}/notifications`: create (idempotent by id), list, get, unread count, read,
//! dismiss and read-all. Every real change is published to the user's other devices
//! as `notification.updated`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_core::notification::Mark;
use switchboard_core::{
    DeviceId, NewNotification, Notification, NotificationChange, NotificationId, NotificationStatus,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::{NotificationPath, UserPath};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, JsonBody, Path, Query};
use crate::state::AppState;

/// Default page size of the list.
const DEFAULT_LIMIT: usize = 50;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_notification, list_notifications))
        .routes(routes!(unread_count))
        .routes(routes!(read_all))
        .routes(routes!(get_notification, dismiss_by_delete))
        .routes(routes!(read_notification))
        .routes(routes!(dismiss_notification))
        .routes(routes!(unread_notification))
}

/// A page of the list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Most notifications to return, 1..=1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only unread ones (neither read nor dismissed).
    #[serde(default)]
    unread_only: bool,
}

/// The device a change comes from (optional body of read, dismiss and read-all).
#[derive(Debug, Default, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SourceDevice {
    /// This device does not get the `notification.updated` event (it made the change).
    #[serde(default)]
    source_device: Option<DeviceId>,
}

/// A page of notifications, newest first, with the unread count.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NotificationList {
    /// Notifications, newest first.
    notifications: Vec<Notification>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    /// How many of the user's notifications are unread (all pages).
    unread: u64,
}

/// The unread count.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UnreadCount {
    /// Notifications neither read nor dismissed.
    unread: u64,
}

/// The answer to a read or dismiss of one notification.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MarkAnswer {
    /// `false` when it already was read (dismissed): nothing changed and no event was sent.
    changed: bool,
    /// Its state now.
    status: NotificationStatus,
}

/// The real changes of a read-all.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChangesAnswer {
    /// Each notification that was not read before, newest first.
    changes: Vec<NotificationChange>,
}

fn not_found() -> ApiError {
    ApiError::not_found("notification not found")
}

fn source(body: &JsonBody) -> Result<Option<DeviceId>, ApiError> {
    Ok(body.parse_optional::<SourceDevice>()?.unwrap_or_default().source_device)
}

/// Create a notification: stored unread, `notification.new` published on `user:<user_id>`
/// (offline devices get it on reconnect) and a push asked for when no device is online. The
/// same id again changes nothing and answers 200 with the stored one.
#[utoipa::path(
    post,
    path = "/users/{user_id}/notifications",
    tag = "notifications",
    params(UserPath),
    request_body = NewNotification,
    responses(
        (status = CREATED, description = "Created", body = Notification),
        (status = OK, description = "The id existed: the stored notification, unchanged", body = Notification),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "`data` over 4 KiB", body = ErrorBody),
    )
)]
pub(crate) async fn create_notification(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Json(new): Json<NewNotification>,
) -> Result<(StatusCode, Json<Notification>), ApiError> {
    let created = state.sb().notifications().create(&user, new).await?;
    let status = if created.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(created.notification)))
}

/// The user's notifications, newest first, paged, with the unread count.
#[utoipa::path(
    get,
    path = "/users/{user_id}/notifications",
    tag = "notifications",
    params(UserPath, ListQuery),
    responses(
        (status = OK, body = NotificationList),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn list_notifications(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Query(query): Query<ListQuery>,
) -> Result<Json<NotificationList>, ApiError> {
    let svc = state.sb().notifications();
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let page = svc.list(&user, query.cursor.as_deref(), limit, query.unread_only).await?;
    let unread = svc.unread_count(&user).await?;
    Ok(Json(NotificationList { notifications: page.notifications, next_cursor: page.next_cursor, unread }))
}

/// How many of the user's notifications are unread (neither read nor dismissed).
#[utoipa::path(
    get,
    path = "/users/{user_id}/notifications/unread-count",
    tag = "notifications",
    params(UserPath),
    responses((status = OK, body = UnreadCount), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn unread_count(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
) -> Result<Json<UnreadCount>, ApiError> {
    Ok(Json(UnreadCount { unread: state.sb().notifications().unread_count(&user).await? }))
}

/// Mark every notification read; each real change is published as `notification.updated`.
#[utoipa::path(
    post,
    path = "/users/{user_id}/notifications/read-all",
    tag = "notifications",
    params(UserPath),
    request_body(content = Option<SourceDevice>, description = "Optional source device"),
    responses((status = OK, body = ChangesAnswer), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn read_all(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    body: JsonBody,
) -> Result<Json<ChangesAnswer>, ApiError> {
    let source = source(&body)?;
    let changes = state.sb().notifications().read_all(&user, source.as_ref()).await?;
    Ok(Json(ChangesAnswer { changes }))
}

/// One notification with its state.
#[utoipa::path(
    get,
    path = "/users/{user_id}/notifications/{notification_id}",
    tag = "notifications",
    params(NotificationPath),
    responses(
        (status = OK, body = Notification),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn get_notification(
    State(state): State<AppState>,
    Path(NotificationPath { user_id: user, notification_id: id }): Path<NotificationPath>,
) -> Result<Json<Notification>, ApiError> {
    state.sb().notifications().get(&user, &id).await?.map(Json).ok_or_else(not_found)
}

/// Dismiss a notification (same as `POST .../dismiss`; the source device may be given as a query
/// parameter). Idempotent: 204 whether or not it changed.
#[utoipa::path(
    delete,
    path = "/users/{user_id}/notifications/{notification_id}",
    tag = "notifications",
    params(NotificationPath, SourceDevice),
    responses(
        (status = NO_CONTENT, description = "Dismissed"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn dismiss_by_delete(
    State(state): State<AppState>,
    Path(NotificationPath { user_id: user, notification_id: id }): Path<NotificationPath>,
    Query(query): Query<SourceDevice>,
) -> Result<StatusCode, ApiError> {
    mark(&state, &user, id, query.source_device, Mark::Dismissed).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mark a notification read; a real change is published as `notification.updated` to the
/// user's devices but `source_device`.
#[utoipa::path(
    post,
    path = "/users/{user_id}/notifications/{notification_id}/read",
    tag = "notifications",
    params(NotificationPath),
    request_body(content = Option<SourceDevice>, description = "Optional source device"),
    responses(
        (status = OK, body = MarkAnswer),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn read_notification(
    State(state): State<AppState>,
    Path(NotificationPath { user_id: user, notification_id: id }): Path<NotificationPath>,
    body: JsonBody,
) -> Result<Json<MarkAnswer>, ApiError> {
    Ok(Json(mark(&state, &user, id, source(&body)?, Mark::Read).await?))
}

/// Dismiss a notification; like `read`.
#[utoipa::path(
    post,
    path = "/users/{user_id}/notifications/{notification_id}/dismiss",
    tag = "notifications",
    params(NotificationPath),
    request_body(content = Option<SourceDevice>, description = "Optional source device"),
    responses(
        (status = OK, body = MarkAnswer),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn dismiss_notification(
    State(state): State<AppState>,
    Path(NotificationPath { user_id: user, notification_id: id }): Path<NotificationPath>,
    body: JsonBody,
) -> Result<Json<MarkAnswer>, ApiError> {
    Ok(Json(mark(&state, &user, id, source(&body)?, Mark::Dismissed).await?))
}

/// Mark a notification unread again (clears `read`; a dismissed one stays dismissed); like
/// `read`.
#[utoipa::path(
    post,
    path = "/users/{user_id}/notifications/{notification_id}/unread",
    tag = "notifications",
    params(NotificationPath),
    request_body(content = Option<SourceDevice>, description = "Optional source device"),
    responses(
        (status = OK, body = MarkAnswer),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn unread_notification(
    State(state): State<AppState>,
    Path(NotificationPath { user_id: user, notification_id: id }): Path<NotificationPath>,
    body: JsonBody,
) -> Result<Json<MarkAnswer>, ApiError> {
    Ok(Json(mark(&state, &user, id, source(&body)?, Mark::Unread).await?))
}

async fn mark(
    state: &AppState,
    user: &switchboard_core::UserId,
    id: NotificationId,
    source: Option<DeviceId>,
    how: Mark,
) -> Result<MarkAnswer, ApiError> {
    let svc = state.sb().notifications();
    let ids = [id];
    let changes = match how {
        Mark::Read => svc.read(user, &ids, source.as_ref()).await?,
        Mark::Dismissed => svc.dismiss(user, &ids, source.as_ref()).await?,
        Mark::Unread => svc.unread(user, &ids, source.as_ref()).await?,
    };
    if let Some(change) = changes.first() {
        let status =
            NotificationStatus { read: change.read, dismissed: change.dismissed, updated_at: change.updated_at };
        return Ok(MarkAnswer { changed: true, status });
    }
    let status = svc.status(user, &ids[0]).await?.ok_or_else(not_found)?;
    Ok(MarkAnswer { changed: false, status })
}
