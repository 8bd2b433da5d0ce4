//! `/conversations/{conversation_id}/typing`: typing indicators.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_core::UserId;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::ConversationPath;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_typing, typing_users))
}

/// A user started or stopped typing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetTyping {
    /// Who is typing (a member of the conversation).
    user_id: UserId,
    /// Started (`true`) or stopped (`false`).
    typing: bool,
}

/// Who is typing.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TypingUsers {
    /// Users typing in the conversation now.
    user_ids: Vec<UserId>,
}

/// Start or stop a member's typing indicator. A start lasts the typing TTL (default 10 s) unless
/// repeated; `typing` events on `chat:<conversation_id>` are throttled (one start per user per
/// 3 s), and a stop is sent when a typing user stops or the TTL runs out.
#[utoipa::path(
    post,
    path = "/conversations/{conversation_id}/typing",
    tag = "typing",
    params(ConversationPath),
    request_body = SetTyping,
    responses(
        (status = NO_CONTENT, description = "Done"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = FORBIDDEN, description = "The user is not a member of the conversation", body = ErrorBody),
    )
)]
pub(crate) async fn set_typing(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: conversation }): Path<ConversationPath>,
    Json(req): Json<SetTyping>,
) -> Result<StatusCode, ApiError> {
    state.sb().typing().set(&conversation, &req.user_id, req.typing).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Users typing in a conversation now.
#[utoipa::path(
    get,
    path = "/conversations/{conversation_id}/typing",
    tag = "typing",
    params(ConversationPath),
    responses(
        (status = OK, body = TypingUsers),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn typing_users(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: conversation }): Path<ConversationPath>,
) -> Result<Json<TypingUsers>, ApiError> {
    Ok(Json(TypingUsers { user_ids: state.sb().typing().typing_users(&conversation).await? }))
}
