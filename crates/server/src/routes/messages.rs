//! `/conversations/{conversation_id}/messages`: post, recent messages, cache-aside fill, edit and
//! delete.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::message::StatusChange;
use switchboard_core::{DeliveryStatus, Message, MessageId, NewMessage, PostOutcome, RecentMessages, UserId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::{ConversationPath, MessagePath};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_message, recent_messages, fill_messages, clear_messages))
        .routes(routes!(edit_message, delete_message))
        .routes(routes!(delivered))
}

/// Default page size of recent messages.
const DEFAULT_RECENT: usize = 50;

/// A page of recent messages.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RecentQuery {
    /// Messages per page, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Only messages older than this message id.
    before: Option<String>,
}

/// Messages for the cache-aside fill.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FillRequest {
    /// Messages read from the backend's database (at most 1000; the cache keeps the newest 100).
    messages: Vec<NewMessage>,
}

/// How many messages a fill added.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FillOutcome {
    /// Messages not cached before.
    added: usize,
}

/// A message's new content.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditRequest {
    /// Any JSON (at most 16 KiB serialized).
    #[schema(value_type = Object)]
    content: Value,
}

/// Messages that reached a recipient's device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveredRequest {
    /// The recipient (a member of the conversation).
    user_id: UserId,
    /// 1..=1000 message ids.
    message_ids: Vec<MessageId>,
}

/// Delivery receipts reported by a backend that runs its own socket layer (the HTTP form of the
/// WebSocket RPC `messages.delivered`): the messages' status for `user_id` moves to `delivered`
/// (never backwards), and `message.status` is published on `chat:<id>` for the ones that moved.
#[utoipa::path(
    post,
    path = "/conversations/{conversation_id}/delivered",
    tag = "messages",
    params(ConversationPath),
    request_body = DeliveredRequest,
    responses(
        (status = OK, description = "The messages whose status moved", body = StatusChange),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = FORBIDDEN, description = "The user is not a member", body = ErrorBody),
        (status = NOT_FOUND, description = "No such conversation", body = ErrorBody),
    )
)]
pub(crate) async fn delivered(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: id }): Path<ConversationPath>,
    Json(req): Json<DeliveredRequest>,
) -> Result<Json<StatusChange>, ApiError> {
    let messages = state.sb().messages();
    Ok(Json(messages.set_status(&id, &req.user_id, &req.message_ids, DeliveryStatus::Delivered).await?))
}

fn message_id(raw: String) -> Result<MessageId, ApiError> {
    Ok(MessageId::parse_field("message_id", raw)?)
}

/// Post a message the backend has persisted: it is cached, every member's conversation list and
/// unread counter is updated, `message.new` goes to `chat:<id>`, `unread.changed` to each member,
/// and the sender's typing is cleared. Posting a cached id again publishes nothing new.
#[utoipa::path(
    post,
    path = "/conversations/{conversation_id}/messages",
    tag = "messages",
    params(ConversationPath),
    request_body = NewMessage,
    responses(
        (status = OK, description = "The cached message", body = PostOutcome),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = FORBIDDEN, description = "The sender is not a member", body = ErrorBody),
        (status = NOT_FOUND, description = "No such conversation", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "Content over 16 KiB", body = ErrorBody),
    )
)]
pub(crate) async fn post_message(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: id }): Path<ConversationPath>,
    Json(message): Json<NewMessage>,
) -> Result<Json<PostOutcome>, ApiError> {
    Ok(Json(state.sb().messages().post(&id, message).await?))
}

/// Recent messages from the cache, newest first; `cached: false` means the backend should read
/// its database and fill the cache (`PUT`).
#[utoipa::path(
    get,
    path = "/conversations/{conversation_id}/messages",
    tag = "messages",
    params(ConversationPath, RecentQuery),
    responses(
        (status = OK, body = RecentMessages),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn recent_messages(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: id }): Path<ConversationPath>,
    Query(query): Query<RecentQuery>,
) -> Result<Json<RecentMessages>, ApiError> {
    let before = query.before.map(message_id).transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_RECENT);
    Ok(Json(state.sb().messages().recent(&id, limit, before.as_ref()).await?))
}

/// Cache-aside fill: caches the given messages that are not cached yet and marks the
/// conversation cached (also with an empty list).
#[utoipa::path(
    put,
    path = "/conversations/{conversation_id}/messages",
    tag = "messages",
    params(ConversationPath),
    request_body = FillRequest,
    responses(
        (status = OK, body = FillOutcome),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, body = ErrorBody),
    )
)]
pub(crate) async fn fill_messages(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: id }): Path<ConversationPath>,
    Json(req): Json<FillRequest>,
) -> Result<Json<FillOutcome>, ApiError> {
    let added = state.sb().messages().fill(&id, &req.messages).await?;
    Ok(Json(FillOutcome { added }))
}

/// Forget the conversation's cached messages (the next read answers `cached: false`, so the
/// backend fills it again from its database). Members, lists and unread counters are untouched.
#[utoipa::path(
    delete,
    path = "/conversations/{conversation_id}/messages",
    tag = "messages",
    params(ConversationPath),
    responses(
        (status = NO_CONTENT, description = "Forgotten"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "Nothing was cached", body = ErrorBody),
    )
)]
pub(crate) async fn clear_messages(
    State(state): State<AppState>,
    Path(ConversationPath { conversation_id: id }): Path<ConversationPath>,
) -> Result<StatusCode, ApiError> {
    if state.sb().messages().delete_cache(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no cached messages"))
    }
}

/// Edit a message: the cached copy changes (204 when none is cached) and `message.edited` is
/// published on `chat:<id>`.
#[utoipa::path(
    patch,
    path = "/conversations/{conversation_id}/messages/{message_id}",
    tag = "messages",
    params(MessagePath),
    request_body = EditRequest,
    responses(
        (status = OK, description = "The cached message after the edit", body = Message),
        (status = NO_CONTENT, description = "Published; no cached copy"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "No such conversation", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, body = ErrorBody),
    )
)]
pub(crate) async fn edit_message(
    State(state): State<AppState>,
    Path(MessagePath { conversation_id: conversation, message_id: message }): Path<MessagePath>,
    Json(req): Json<EditRequest>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    Ok(match state.sb().messages().edit(&conversation, &message, req.content).await? {
        Some(m) => Json(m).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Delete a message: the cached copy becomes a tombstone and `message.deleted` is published.
#[utoipa::path(
    delete,
    path = "/conversations/{conversation_id}/messages/{message_id}",
    tag = "messages",
    params(MessagePath),
    responses(
        (status = NO_CONTENT, description = "Deleted and published"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "No such conversation", body = ErrorBody),
    )
)]
pub(crate) async fn delete_message(
    State(state): State<AppState>,
    Path(MessagePath { conversation_id: conversation, message_id: message }): Path<MessagePath>,
) -> Result<StatusCode, ApiError> {
    state.sb().messages().delete(&conversation, &message).await?;
    Ok(StatusCode::NO_CONTENT)
}
