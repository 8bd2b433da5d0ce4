//! The `/api/v1` routes, one module per capability, collected into one [`OpenApiRouter`] so the
//! OpenAPI document is built from the same handlers that serve.

mod info;
mod rate_limits;
mod sessions;
mod tokens;

use switchboard_core::{SessionId, UserId};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

/// Every `/api/v1` route, with paths relative to `/api/v1`.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(sessions::routes())
        .merge(tokens::routes())
        .merge(rate_limits::routes())
        .merge(info::routes())
}

/// A user id from the path, naming `user_id` when invalid.
fn user_id(raw: String) -> Result<UserId, ApiError> {
    Ok(UserId::parse_field("user_id", raw)?)
}

/// A session id from the path or query, naming `field` when invalid.
fn session_id(field: &str, raw: String) -> Result<SessionId, ApiError> {
    SessionId::new(raw).map_err(|_| ApiError::invalid(format!("{field}: is not a session id")))
}
