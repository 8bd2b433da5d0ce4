//! `/users/{user_id}/devices/{device_id}/pending` and `/ack`: what a device has not received yet
//! on its user's personal channel, and its delivery cursor.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use switchboard_core::{Pending, StreamPosition};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::DevicePath;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Default page size of `pending`.
const DEFAULT_LIMIT: usize = 100;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pending)).routes(routes!(ack))
}

/// Page size of `pending`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PendingQuery {
    /// Most publications to return, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The position a device has received everything up to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckBody {
    /// The epoch of the position (`ack_position.epoch` of `pending`), at most 64 bytes.
    #[schema(max_length = 64)]
    epoch: String,
    /// The offset of the position (`ack_position.offset` of `pending`), at most 2^53 − 1.
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    offset: u64,
}

/// The device's cursor after an ack.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AckAnswer {
    /// The cursor in force; `null` when the ack was ignored because its epoch is no longer the
    /// stream's (its history was lost: read `pending` again).
    position: Option<StreamPosition>,
}

/// Publications of `user:<user_id>` meant for this device (not excluded, or targeted at it)
/// after its cursor, oldest first. `recovered: false` means some were lost (retention or a new
/// epoch): the list then starts at the oldest retained one and the device should resync. Ack
/// `ack_position` once they are handled.
#[utoipa::path(
    get,
    path = "/users/{user_id}/devices/{device_id}/pending",
    tag = "pubsub",
    params(DevicePath, PendingQuery),
    responses(
        (status = OK, body = Pending),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn pending(
    State(state): State<AppState>,
    Path(DevicePath { user_id: user, device_id: device }): Path<DevicePath>,
    Query(query): Query<PendingQuery>,
) -> Result<Json<Pending>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    Ok(Json(state.sb().streams().pending(&user, &device, limit).await?))
}

/// Record that the device received everything up to `{epoch, offset}`. A cursor never moves
/// backwards; an offset beyond the stream's top is refused.
#[utoipa::path(
    post,
    path = "/users/{user_id}/devices/{device_id}/ack",
    tag = "pubsub",
    params(DevicePath),
    request_body = AckBody,
    responses(
        (status = OK, body = AckAnswer),
        (status = BAD_REQUEST, description = "Invalid input, or an offset beyond the stream's top", body = ErrorBody),
    )
)]
pub(crate) async fn ack(
    State(state): State<AppState>,
    Path(DevicePath { user_id: user, device_id: device }): Path<DevicePath>,
    Json(body): Json<AckBody>,
) -> Result<Json<AckAnswer>, ApiError> {
    let position = StreamPosition { epoch: body.epoch, offset: body.offset };
    let position = state.sb().streams().ack(&user, &device, &position).await?;
    Ok(Json(AckAnswer { position }))
}
