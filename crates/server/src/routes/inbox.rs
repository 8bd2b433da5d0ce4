//! `/users/{user_id}/conversations` and `/users/{user_id}/unread`: a user's conversation list,
//! its import from the app's database, its flags, read-up-to, unread repair and totals.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use switchboard_core::message::ReadOutcome;
use switchboard_core::{
    DeviceId, ImportOutcome, InboxFilter, InboxPage, InboxSettings, MessageId, UnreadSet, UnreadTotals,
    UserConversation,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::{UserConversationPath, UserPath};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations, import_conversations))
        .routes(routes!(get_entry, update_entry, remove_entry))
        .routes(routes!(read_conversation))
        .routes(routes!(set_unread))
        .routes(routes!(unread_totals))
}

/// Default page size of a conversation list.
const DEFAULT_LIST: usize = 50;

/// A page of a user's conversation list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Conversations per page, 1..=1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `all` (default: not archived), `unread`, `pinned`, `muted` or `archived`.
    #[param(inline)]
    filter: Option<InboxFilter>,
}

/// Read up to a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadRequest {
    /// The newest message read.
    message_id: MessageId,
    /// The device that read it: it does not get the `unread.changed` event.
    #[serde(default)]
    source_device: Option<DeviceId>,
}

/// A user's list as the app's database has it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportRequest {
    /// At most 1000 entries, each conversation once; only `conversation_id` and
    /// `last_message_at` are required.
    conversations: Vec<UserConversation>,
}

/// An entry's unread count, as the app's database has it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetUnreadRequest {
    /// The count, 0..=1000000000.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    unread: u64,
}

fn entry_not_found() -> ApiError {
    ApiError::not_found("conversation not in the user's list")
}

/// A page of the user's conversations: pinned first, then by last message time.
#[utoipa::path(
    get,
    path = "/users/{user_id}/conversations",
    tag = "messages",
    params(UserPath, ListQuery),
    responses(
        (status = OK, body = InboxPage),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn list_conversations(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Query(query): Query<ListQuery>,
) -> Result<Json<InboxPage>, ApiError> {
    let filter = query.filter.unwrap_or_default();
    let limit = query.limit.unwrap_or(DEFAULT_LIST);
    Ok(Json(state.sb().messages().list(&user, filter, query.cursor.as_deref(), limit).await?))
}

/// Load the user's list from the app's database (cache-aside): adds the entries the list does not
/// hold yet, keeps the ones it holds (posts recorded them after the database was read), and marks
/// the list loaded, so `GET` answers `loaded: true` from then on. Publishes nothing.
#[utoipa::path(
    put,
    path = "/users/{user_id}/conversations",
    tag = "messages",
    params(UserPath),
    request_body = ImportRequest,
    responses(
        (status = OK, body = ImportOutcome),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn import_conversations(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Json(req): Json<ImportRequest>,
) -> Result<Json<ImportOutcome>, ApiError> {
    Ok(Json(state.sb().messages().import(&user, &req.conversations).await?))
}

/// Set an entry's unread count (a repair from the app's database): the totals move by the
/// difference, and `unread.changed` goes to the user's devices.
#[utoipa::path(
    put,
    path = "/users/{user_id}/conversations/{conversation_id}/unread",
    tag = "messages",
    params(UserConversationPath),
    request_body = SetUnreadRequest,
    responses(
        (status = OK, body = UnreadSet),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "Not in the user's list", body = ErrorBody),
    )
)]
pub(crate) async fn set_unread(
    State(state): State<AppState>,
    Path(UserConversationPath { user_id: user, conversation_id: conversation }): Path<UserConversationPath>,
    Json(req): Json<SetUnreadRequest>,
) -> Result<Json<UnreadSet>, ApiError> {
    state.sb().messages().set_unread(&user, &conversation, req.unread).await?.map(Json).ok_or_else(entry_not_found)
}

/// One conversation of the user's list: last message, unread count, pinned, muted, archived.
#[utoipa::path(
    get,
    path = "/users/{user_id}/conversations/{conversation_id}",
    tag = "messages",
    params(UserConversationPath),
    responses(
        (status = OK, body = UserConversation),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, description = "Not in the user's list", body = ErrorBody),
    )
)]
pub(crate) async fn get_entry(
    State(state): State<AppState>,
    Path(UserConversationPath { user_id: user, conversation_id: conversation }): Path<UserConversationPath>,
) -> Result<Json<UserConversation>, ApiError> {
    state.sb().messages().entry(&user, &conversation).await?.map(Json).ok_or_else(entry_not_found)
}

/// Pin, mute or archive a conversation in the user's list (absent fields are unchanged).
#[utoipa::path(
    patch,
    path = "/users/{user_id}/conversations/{conversation_id}",
    tag = "messages",
    params(UserConversationPath),
    request_body = InboxSettings,
    responses(
        (status = OK, body = UserConversation),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn update_entry(
    State(state): State<AppState>,
    Path(UserConversationPath { user_id: user, conversation_id: conversation }): Path<UserConversationPath>,
    Json(settings): Json<InboxSettings>,
) -> Result<Json<UserConversation>, ApiError> {
    state.sb().messages().update_entry(&user, &conversation, settings).await?.map(Json).ok_or_else(entry_not_found)
}

/// Remove a conversation from the user's list (its unread count leaves the totals; the next
/// message brings it back).
#[utoipa::path(
    delete,
    path = "/users/{user_id}/conversations/{conversation_id}",
    tag = "messages",
    params(UserConversationPath),
    responses(
        (status = NO_CONTENT, description = "Removed"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn remove_entry(
    State(state): State<AppState>,
    Path(UserConversationPath { user_id: user, conversation_id: conversation }): Path<UserConversationPath>,
) -> Result<StatusCode, ApiError> {
    if state.sb().messages().remove_entry(&user, &conversation).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(entry_not_found())
    }
}

/// The user read up to a message: unread becomes 0, `unread.changed` goes to the user's other
/// devices (not `source_device`), and the message's read receipt is published.
#[utoipa::path(
    post,
    path = "/users/{user_id}/conversations/{conversation_id}/read",
    tag = "messages",
    params(UserConversationPath),
    request_body = ReadRequest,
    responses(
        (status = OK, body = ReadOutcome),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = FORBIDDEN, description = "The user is not a member", body = ErrorBody),
    )
)]
pub(crate) async fn read_conversation(
    State(state): State<AppState>,
    Path(UserConversationPath { user_id: user, conversation_id: conversation }): Path<UserConversationPath>,
    Json(req): Json<ReadRequest>,
) -> Result<Json<ReadOutcome>, ApiError> {
    let messages = state.sb().messages();
    Ok(Json(messages.read(&user, &conversation, &req.message_id, req.source_device.as_ref()).await?))
}

/// The user's unread totals: conversations not muted, and muted ones apart.
#[utoipa::path(
    get,
    path = "/users/{user_id}/unread",
    tag = "messages",
    params(UserPath),
    responses(
        (status = OK, body = UnreadTotals),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn unread_totals(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
) -> Result<Json<UnreadTotals>, ApiError> {
    Ok(Json(state.sb().messages().totals(&user).await?))
}
