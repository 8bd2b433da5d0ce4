//! `/conversations/{conversation_id}`: conversations and their members, which
//! decide who may subscribe to `chat:` channels and type there.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use switchboard_core::{Conversation, ConversationSpec, UserId};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::ConversationPath;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_conversation, get_conversation, delete_conversation))
        .routes(routes!(update_members))
}

/// Members to add and remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MembersChange {
    /// Users to add (at most 1000).
    #[serde(default)]
    add: Vec<UserId>,
    /// Users to remove (at most 1000).
    #[serde(default)]
    remove: Vec<UserId>,
}

fn conversation_not_found() -> ApiError {
    ApiError::not_found("conversation not found")
}

/// Create or replace a conversation: type, name, avatar and the whole member set (`created_at`
/// is kept across replacements).
#[utoipa::path(
    put,
    path = "/conversations/{conversation_id}",
    tag = "conversations",
    params(ConversationPath),
    request_body = ConversationSpec,
    responses(
        (status = OK, description = "The stored conversation", body = Conversation),
        (status = BAD_REQUEST, description = "Invalid input, too many members, or a direct conversation of more than 2", body = ErrorBody),
    )
)]
pub(crate) async fn put_conversation(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: id }): Path<ConversationPath>,
    Json(spec): Json<ConversationSpec>,
) -> Result<Json<Conversation>, ApiError> {
    Ok(Json(state.sb().conversations().put(&id, spec).await?))
}

/// A conversation.
#[utoipa::path(
    get,
    path = "/conversations/{conversation_id}",
    tag = "conversations",
    params(ConversationPath),
    responses(
        (status = OK, body = Conversation),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn get_conversation(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: id }): Path<ConversationPath>,
) -> Result<Json<Conversation>, ApiError> {
    state.sb().conversations().get(&id).await?.map(Json).ok_or_else(conversation_not_found)
}

/// Delete a conversation (its members can no longer subscribe to its channel or type there).
#[utoipa::path(
    delete,
    path = "/conversations/{conversation_id}",
    tag = "conversations",
    params(ConversationPath),
    responses(
        (status = NO_CONTENT, description = "Deleted"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn delete_conversation(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: id }): Path<ConversationPath>,
) -> Result<StatusCode, ApiError> {
    if state.sb().conversations().delete(&id).await? {
        // Its cached messages go with it (members' list entries stay until they remove them).
        state.sb().messages().delete_cache(&id).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(conversation_not_found())
    }
}

/// Add and remove members in one atomic step.
#[utoipa::path(
    post,
    path = "/conversations/{conversation_id}/members",
    tag = "conversations",
    params(ConversationPath),
    request_body = MembersChange,
    responses(
        (status = OK, description = "The conversation after the change", body = Conversation),
        (status = BAD_REQUEST, description = "Invalid ids, or a list over 1000", body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
        (status = CONFLICT, description = "The conversation would pass its member limit (nothing changed)", body = ErrorBody),
    )
)]
pub(crate) async fn update_members(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: id }): Path<ConversationPath>,
    Json(change): Json<MembersChange>,
) -> Result<Json<Conversation>, ApiError> {
    let conversations = state.sb().conversations();
    conversations.update_members(&id, &change.add, &change.remove).await?.map(Json).ok_or_else(conversation_not_found)
}
