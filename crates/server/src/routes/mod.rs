//! The `/api/v1` routes, one module per capability, collected into one [`OpenApiRouter`] so the
//! OpenAPI document is built from the same handlers that serve.

mod cache;
mod contacts;
mod conversations;
mod devices;
mod disconnect;
mod inbox;
mod info;
mod jobs;
mod messages;
mod notifications;
mod paths;
mod pending;
mod presence;
mod pubsub;
mod rate_limits;
mod schedules;
mod sessions;
mod tokens;
mod typing;

use switchboard_core::SessionId;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

/// Every `/api/v1` route, with paths relative to `/api/v1`.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(sessions::routes())
        .merge(tokens::routes())
        .merge(rate_limits::routes())
        .merge(devices::routes())
        .merge(pending::routes())
        .merge(presence::routes())
        .merge(contacts::routes())
        .merge(typing::routes())
        .merge(pubsub::routes())
        .merge(disconnect::routes())
        .merge(conversations::routes())
        .merge(messages::routes())
        .merge(inbox::routes())
        .merge(notifications::routes())
        .merge(cache::routes())
        .merge(jobs::routes())
        .merge(schedules::routes())
        .merge(info::routes())
}

/// A session id from the path or query, naming `field` when invalid.
fn session_id(field: &str, raw: String) -> Result<SessionId, ApiError> {
    SessionId::new(raw).map_err(|_| ApiError::invalid(format!("{field}: is not a session id")))
}
