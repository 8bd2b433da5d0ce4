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
mod pending;
mod presence;
mod pubsub;
mod rate_limits;
mod schedules;
mod sessions;
mod tokens;
mod typing;

use switchboard_core::{ChannelName, ConversationId, DeviceId, SessionId, UserId};
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

/// A user id from the path, naming `user_id` when invalid.
fn user_id(raw: String) -> Result<UserId, ApiError> {
    Ok(UserId::parse_field("user_id", raw)?)
}

/// A device id from the path, naming `device_id` when invalid.
fn device_id(raw: String) -> Result<DeviceId, ApiError> {
    Ok(DeviceId::parse_field("device_id", raw)?)
}

/// A conversation id from the path, naming `conversation_id` when invalid.
fn conversation_id(raw: String) -> Result<ConversationId, ApiError> {
    Ok(ConversationId::parse_field("conversation_id", raw)?)
}

/// A channel name from the path, naming `channel` when invalid (or of an unknown namespace).
fn channel(raw: String) -> Result<ChannelName, ApiError> {
    Ok(ChannelName::parse_field("channel", raw)?)
}

/// A session id from the path or query, naming `field` when invalid.
fn session_id(field: &str, raw: String) -> Result<SessionId, ApiError> {
    SessionId::new(raw).map_err(|_| ApiError::invalid(format!("{field}: is not a session id")))
}
