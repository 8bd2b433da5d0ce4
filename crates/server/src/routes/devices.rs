//! `/users/{user_id}/devices`: the device registry and backend heartbeats.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_core::presence::{Device, DeviceRegistration, Transition};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::{DevicePath, UserPath};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, JsonBody, Path};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_device, remove_device))
        .routes(routes!(list_devices))
        .routes(routes!(heartbeat, end_heartbeat))
}

/// A user's registered devices.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeviceList {
    /// The devices, most recently active first.
    devices: Vec<Device>,
}

/// Options of a heartbeat.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeartbeatBody {
    /// How long the device stays online without another heartbeat, 1..=86400 (default from
    /// config, 300).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    ttl_seconds: Option<u64>,
}

/// The answer to a heartbeat.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HeartbeatAnswer {
    /// The user is online (always `true` after a heartbeat: the device is live until its TTL).
    online: bool,
    /// `went_online` when this heartbeat made the user online (a `presence.changed` event was
    /// sent), else `unchanged`.
    transition: Transition,
}

/// Register a device, or update its platform, push token, app version and meta.
#[utoipa::path(
    put,
    path = "/users/{user_id}/devices/{device_id}",
    tag = "devices",
    params(DevicePath),
    request_body = DeviceRegistration,
    responses(
        (status = OK, description = "The registered device", body = Device),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "`meta` over 4 KiB", body = ErrorBody),
    )
)]
pub(crate) async fn register_device(
    State(state): State<AppState>,
    Path(DevicePath { user_id: user, device_id: device }): Path<DevicePath>,
    Json(registration): Json<DeviceRegistration>,
) -> Result<Json<Device>, ApiError> {
    Ok(Json(state.sb().presence().register_device(&user, &device, registration).await?))
}

/// Forget a device's registration (its live connections are not ended).
#[utoipa::path(
    delete,
    path = "/users/{user_id}/devices/{device_id}",
    tag = "devices",
    params(DevicePath),
    responses(
        (status = NO_CONTENT, description = "Removed"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "No such device", body = ErrorBody),
    )
)]
pub(crate) async fn remove_device(
    State(state): State<AppState>,
    Path(DevicePath { user_id: user, device_id: device }): Path<DevicePath>,
) -> Result<StatusCode, ApiError> {
    if state.sb().presence().remove_device(&user, &device).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("device not found"))
    }
}

/// List a user's devices, most recently active first.
#[utoipa::path(
    get,
    path = "/users/{user_id}/devices",
    tag = "devices",
    params(UserPath),
    responses(
        (status = OK, body = DeviceList),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn list_devices(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
) -> Result<Json<DeviceList>, ApiError> {
    Ok(Json(DeviceList { devices: state.sb().presence().devices(&user).await? }))
}

/// Mark a device online without a WebSocket, for `ttl_seconds` (the body is optional). Repeat
/// before the TTL runs out to stay online.
#[utoipa::path(
    post,
    path = "/users/{user_id}/devices/{device_id}/heartbeat",
    tag = "devices",
    params(DevicePath),
    request_body(content = Option<HeartbeatBody>, description = "Optional; an empty body uses the default TTL"),
    responses(
        (status = OK, body = HeartbeatAnswer),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    Path(DevicePath { user_id: user, device_id: device }): Path<DevicePath>,
    body: JsonBody,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let req: HeartbeatBody = body.parse_optional()?.unwrap_or_default();
    let transition = state.sb().presence().heartbeat(&user, &device, req.ttl_seconds).await?;
    Ok(Json(HeartbeatAnswer { online: true, transition }))
}

/// The answer to ending a heartbeat.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndHeartbeatAnswer {
    /// `maybe_offline` when that was the user's last live entry: the user goes offline (and
    /// `presence.changed` is sent) once the offline grace period passes without a new
    /// connection or heartbeat. `unchanged` otherwise, also when the device had no heartbeat.
    transition: Transition,
}

/// Mark a device offline now (explicit offline for a device kept online by heartbeats, e.g. on
/// logout or when the app goes to the background). Only the heartbeat ends: the device's
/// WebSocket connections, if any, keep it online.
#[utoipa::path(
    delete,
    path = "/users/{user_id}/devices/{device_id}/heartbeat",
    tag = "devices",
    params(DevicePath),
    responses(
        (status = OK, body = EndHeartbeatAnswer),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn end_heartbeat(
    State(state): State<AppState>,
    Path(DevicePath { user_id: user, device_id: device }): Path<DevicePath>,
) -> Result<Json<EndHeartbeatAnswer>, ApiError> {
    let transition = state.sb().presence().end_heartbeat(&user, &device).await?;
    Ok(Json(EndHeartbeatAnswer { transition }))
}
