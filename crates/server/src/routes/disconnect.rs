//! `/users/{user_id}/disconnect`, and [`disconnect_quietly`] for the routes whose changes end
//! WebSocket connections (deleted sessions, revoked tokens). Orders reach every node.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use switchboard_core::{DeviceId, UserId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::UserPath;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, Path};
use crate::gateway::{DisconnectTarget, disconnect_everywhere};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(disconnect_user))
}

/// Which connections to end.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisconnectBody {
    /// Only this device's connections (default: all of the user's).
    #[serde(default)]
    device_id: Option<DeviceId>,
    /// Let the clients reconnect (default `false`: they stop).
    #[serde(default)]
    reconnect: bool,
}

/// Sends a disconnect order; a failure is logged, not returned: the change that called for it
/// (a deleted session, a revocation) is already made, and the gateway refuses the stale session
/// or token at the client's next connect anyway.
pub(super) async fn disconnect_quietly(state: &AppState, user: &UserId, target: DisconnectTarget) {
    if let Err(e) = disconnect_everywhere(state.sb(), user, &target).await {
        tracing::warn!(user.id = %user, error = %e, "disconnect order not sent");
    }
}

/// End a user's WebSocket connections on every node: all of them, or one device's. With
/// `reconnect: true` the clients reconnect (with a fresh token); otherwise they stop. The body
/// is optional. Accepted once the order is sent; connections close moments later.
#[utoipa::path(
    post,
    path = "/users/{user_id}/disconnect",
    tag = "pubsub",
    params(UserPath),
    request_body(content = Option<DisconnectBody>, description = "Optional; an empty body ends every connection, without reconnect"),
    responses(
        (status = ACCEPTED, description = "The order is sent"),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn disconnect_user(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    body: JsonBody,
) -> Result<StatusCode, ApiError> {
    let req: DisconnectBody = body.parse_optional()?.unwrap_or_default();
    let target = DisconnectTarget { device_id: req.device_id, reconnect: req.reconnect, ..DisconnectTarget::default() };
    disconnect_everywhere(state.sb(), &user, &target).await?;
    Ok(StatusCode::ACCEPTED)
}
