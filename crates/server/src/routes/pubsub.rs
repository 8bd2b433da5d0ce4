//! `/publish`, `/broadcast` and `/channels/{channel}`: publications, history and channel
//! presence.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::limits::MAX_BATCH;
use switchboard_core::presence::UserPresence;
use switchboard_core::{
    Audience, ChannelName, ConversationId, DeviceId, NewPublication, StreamPosition, StreamRead, UserId,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::ChannelPath;
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Default page size of `history`.
const DEFAULT_HISTORY_LIMIT: usize = 100;
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(broadcast))
        .routes(routes!(history))
        .routes(routes!(channel_presence))
}

/// A publication on one channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishRequest {
    /// `user:<user_id>`, `chat:<conversation_id>` or `presence:<user_id>`.
    channel: ChannelName,
    /// The event, by convention `{"type": "<event>", "data": {...}}`; at most 32 KiB.
    #[schema(value_type = Object, example = json!({"type": "order.shipped", "data": {"order_id": "o-1"}}))]
    data: Value,
    /// A device of the channel's user that must not receive it (the source of a sync action).
    #[serde(default)]
    exclude_device: Option<DeviceId>,
    /// When given, only these devices receive it (at most 1000).
    #[serde(default)]
    only_devices: Vec<DeviceId>,
}

/// The same publication on many channels: the ones listed, or the `user:` channels of an
/// audience (exactly one of `channels`, `contacts_of` and `members_of`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BroadcastRequest {
    /// 1 to 1000 channels.
    #[serde(default)]
    channels: Vec<ChannelName>,
    /// The `user:` channels of this user's contacts.
    #[serde(default)]
    contacts_of: Option<UserId>,
    /// The `user:` channels of this conversation's members (`404` when it does not exist).
    #[serde(default)]
    members_of: Option<ConversationId>,
    /// Users of the audience left out (the sender, say); at most 1000.
    #[serde(default)]
    except_users: Vec<UserId>,
    /// The event, at most 32 KiB.
    #[schema(value_type = Object)]
    data: Value,
    /// A device that must not receive it.
    #[serde(default)]
    exclude_device: Option<DeviceId>,
    /// When given, only these devices receive it (at most 1000).
    #[serde(default)]
    only_devices: Vec<DeviceId>,
}

/// The outcome of a broadcast, per channel in the order given.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BroadcastAnswer {
    /// One entry per channel.
    results: Vec<BroadcastResult>,
}

/// Published on one channel, or why not.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum BroadcastResult {
    /// Published at this position.
    Published {
        /// The channel.
        channel: ChannelName,
        /// The stream's epoch.
        epoch: String,
        /// The publication's offset.
        offset: u64,
    },
    /// Not published.
    Failed {
        /// The channel.
        channel: ChannelName,
        /// Why, as in the error envelope.
        error: ErrorDetail,
    },
}

/// Which part of the history to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Most publications to return, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Read what was published after this offset (with `since_epoch`) instead of the newest;
    /// at most 2^53 − 1.
    #[param(minimum = 0, maximum = 9007199254740991_u64)]
    since_offset: Option<u64>,
    /// The epoch `since_offset` belongs to.
    #[param(max_length = 64)]
    since_epoch: Option<String>,
}

/// Members of a conversation who are online.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChannelPresence {
    /// Their presence as other users see it (invisible members are left out).
    presence: Vec<UserPresence>,
}

fn publication(
    data: Value,
    exclude_device: Option<DeviceId>,
    only_devices: Vec<DeviceId>,
) -> Result<NewPublication, ApiError> {
    // Before anything is written, for the whole broadcast (the service checks each publish too).
    switchboard_core::control::refuse_reserved(&data)?;
    Ok(NewPublication { data, exclude_device, only_devices })
}

/// Publish on a channel: stored in its stream (within the namespace's retention: `user:` 1000
/// publications / 7 d, `chat:` 100 / 24 h) and delivered to every subscriber on every node.
#[utoipa::path(
    post,
    path = "/publish",
    tag = "pubsub",
    request_body = PublishRequest,
    responses(
        (status = OK, description = "The publication's position", body = StreamPosition),
        (status = BAD_REQUEST, description = "Invalid channel (or unknown namespace), ids or reserved type", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "`data` over 32 KiB", body = ErrorBody),
    )
)]
pub(crate) async fn publish(
    State(state): State<AppState>,
    Json(req): Json<PublishRequest>,
) -> Result<Json<StreamPosition>, ApiError> {
    let publication = publication(req.data, req.exclude_device, req.only_devices)?;
    Ok(Json(state.sb().streams().publish(&req.channel, publication).await?))
}

/// Publish the same data on up to 1000 channels, in order — or on the `user:` channel of each of
/// a user's contacts (`contacts_of`) or of a conversation's members (`members_of`), in user
/// order, without `except_users`. Each channel's outcome is reported on its own: `{channel,
/// epoch, offset}` or `{channel, error: {code, message}}`. A request-wide problem (data too
/// large, too many channels, no such conversation) fails the whole request and publishes nothing.
#[utoipa::path(
    post,
    path = "/broadcast",
    tag = "pubsub",
    request_body = BroadcastRequest,
    responses(
        (status = OK, body = BroadcastAnswer),
        (status = BAD_REQUEST, description = "No channel or more than 1000, invalid channel or ids, not exactly one target", body = ErrorBody),
        (status = NOT_FOUND, description = "`members_of` names no conversation", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "`data` over 32 KiB", body = ErrorBody),
    )
)]
pub(crate) async fn broadcast(
    State(state): State<AppState>,
    Json(req): Json<BroadcastRequest>,
) -> Result<Json<BroadcastAnswer>, ApiError> {
    if req.except_users.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!("except_users: at most {MAX_BATCH} users")));
    }
    let audience = match (req.channels.is_empty(), req.contacts_of, req.members_of) {
        (true, Some(user), None) => Some(Audience::ContactsOf(user)),
        (true, None, Some(conversation)) => Some(Audience::MembersOf(conversation)),
        (false, None, None) if req.except_users.is_empty() => None,
        (false, None, None) => return Err(ApiError::invalid("except_users: only with `contacts_of` or `members_of`")),
        _ => {
            return Err(ApiError::invalid("channels: give exactly one of `channels`, `contacts_of` and `members_of`"));
        }
    };
    let channels = match &audience {
        Some(audience) => state.sb().user_channels(audience, &req.except_users).await?,
        None if req.channels.len() > MAX_BATCH => {
            return Err(ApiError::invalid(format!("channels: must hold 1..={MAX_BATCH} channels")));
        }
        None => req.channels,
    };
    let publication = publication(req.data, req.exclude_device, req.only_devices)?;
    let streams = state.sb().streams();
    let mut channels = channels.into_iter();
    let Some(first) = channels.next() else { return Ok(Json(BroadcastAnswer { results: Vec::new() })) };
    // The same data and devices go to every channel: a bad request fails on the first one,
    // before anything is published. The others then go out concurrently, a window at a time
    // (on a Cluster each to its own shard, pipelined on that shard's connection).
    let mut results = Vec::with_capacity(channels.len() + 1);
    match streams.publish(&first, publication.clone()).await.map_err(ApiError::from) {
        Err(error) if error.status().is_client_error() => return Err(error),
        outcome => results.push(broadcast_result(first, outcome)),
    }
    let rest: Vec<ChannelName> = channels.collect();
    for window in rest.chunks(BROADCAST_WINDOW) {
        let publishes = window.iter().map(|channel| streams.publish(channel, publication.clone()));
        let outcomes = futures_util::future::join_all(publishes).await;
        let outcomes = outcomes.into_iter().map(|outcome| outcome.map_err(ApiError::from));
        results
            .extend(window.iter().cloned().zip(outcomes).map(|(channel, outcome)| broadcast_result(channel, outcome)));
    }
    Ok(Json(BroadcastAnswer { results }))
}

/// Publications of a broadcast in flight at once.
const BROADCAST_WINDOW: usize = 64;

fn broadcast_result(channel: ChannelName, outcome: Result<StreamPosition, ApiError>) -> BroadcastResult {
    match outcome {
        Ok(p) => BroadcastResult::Published { channel, epoch: p.epoch, offset: p.offset },
        Err(error) => {
            let error = ErrorDetail { code: error.code(), message: error.message().to_owned() };
            BroadcastResult::Failed { channel, error }
        }
    }
}

/// A channel's retained publications, oldest first: the newest `limit`, or with `since_offset`
/// and `since_epoch` those published after that position. When that position is no longer
/// covered (retention passed it, or the epoch changed) the answer is still `200`, with
/// `recovered: false` and the retained publications: resync from your database.
#[utoipa::path(
    get,
    path = "/channels/{channel}/history",
    tag = "pubsub",
    params(ChannelPath, HistoryQuery),
    responses(
        (status = OK, body = StreamRead),
        (status = BAD_REQUEST, description = "Invalid channel, limit, or only one of `since_offset` / `since_epoch`", body = ErrorBody),
    )
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    Path(ChannelPath { channel: raw }): Path<ChannelPath>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<StreamRead>, ApiError> {
    let channel = raw;
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    let streams = state.sb().streams();
    let read = match (query.since_offset, query.since_epoch) {
        (None, None) => streams.history(&channel, limit).await?,
        (Some(offset), Some(epoch)) => streams.read_since(&channel, &StreamPosition { epoch, offset }, limit).await?,
        (Some(_), None) => return Err(ApiError::invalid("since_epoch: required with since_offset")),
        (None, Some(_)) => return Err(ApiError::invalid("since_offset: required with since_epoch")),
    };
    Ok(Json(read))
}

/// The online members of a `chat:` channel's conversation, as other users see them (invisible
/// members are left out). Other namespaces have no channel presence (`400`).
#[utoipa::path(
    get,
    path = "/channels/{channel}/presence",
    tag = "pubsub",
    params(ChannelPath),
    responses(
        (status = OK, body = ChannelPresence),
        (status = BAD_REQUEST, description = "Invalid channel, or not a `chat:` channel", body = ErrorBody),
        (status = NOT_FOUND, description = "No such conversation", body = ErrorBody),
    )
)]
pub(crate) async fn channel_presence(
    State(state): State<AppState>,
    Path(ChannelPath { channel: raw }): Path<ChannelPath>,
) -> Result<Json<ChannelPresence>, ApiError> {
    let channel = raw;
    if channel.namespace() != "chat" {
        return Err(ApiError::invalid("channel: only chat:<conversation_id> channels have presence"));
    }
    let conversation = ConversationId::parse_field("channel", channel.id())?;
    let sb = state.sb();
    let Some(conversation) = sb.conversations().get(&conversation).await? else {
        return Err(ApiError::not_found("conversation not found"));
    };
    let mut presence = Vec::new();
    for members in conversation.members.chunks(MAX_BATCH) {
        let found = sb.presence().bulk(members).await?;
        presence.extend(found.iter().map(UserPresence::visible_to_others).filter(|p| p.online));
    }
    Ok(Json(ChannelPresence { presence }))
}
