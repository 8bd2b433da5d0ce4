//! The path parameters of the routes, one struct per shape: each field is a validated id, so a
//! handler receives ids it can trust (an invalid one is a 400 naming the parameter before the
//! handler runs), and the same struct documents the parameters in the OpenAPI document.

use serde::Deserialize;
use switchboard_core::{
    ChannelName, ConversationId, DeviceId, JobId, MessageId, NotificationId, QueueName, ScheduleName, SessionId,
    TokenId, UserId,
};
use utoipa::IntoParams;

/// `/users/{user_id}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// User id.
    pub(crate) user_id: UserId,
}

/// `/users/{user_id}/devices/{device_id}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct DevicePath {
    /// User id.
    pub(crate) user_id: UserId,
    /// Device id.
    pub(crate) device_id: DeviceId,
}

/// `/users/{user_id}/notifications/{notification_id}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct NotificationPath {
    /// User id.
    pub(crate) user_id: UserId,
    /// Notification id.
    pub(crate) notification_id: NotificationId,
}

/// `/users/{user_id}/conversations/{conversation_id}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserConversationPath {
    /// User id.
    pub(crate) user_id: UserId,
    /// Conversation id.
    pub(crate) conversation_id: ConversationId,
}

/// `/conversations/{conversation_id}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ConversationPath {
    /// Conversation id.
    pub(crate) conversation_id: ConversationId,
}

/// `/conversations/{conversation_id}/messages/{message_id}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct MessagePath {
    /// Conversation id.
    pub(crate) conversation_id: ConversationId,
    /// Message id.
    pub(crate) message_id: MessageId,
}

/// `/sessions/{session_id}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct SessionPath {
    /// Session id.
    pub(crate) session_id: SessionId,
}

/// `/tokens/deny/{jti}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TokenPath {
    /// The token's `jti`.
    pub(crate) jti: TokenId,
}

/// `/channels/{channel}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ChannelPath {
    /// Channel name (`user:<id>`, `chat:<id>` or `presence:<id>`).
    pub(crate) channel: ChannelName,
}

/// `/queues/{queue}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct QueuePath {
    /// Queue name.
    pub(crate) queue: QueueName,
}

/// `/jobs/{job_id}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct JobPath {
    /// Job id.
    pub(crate) job_id: JobId,
}

/// `/schedules/{name}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct SchedulePath {
    /// Schedule name.
    pub(crate) name: ScheduleName,
}

/// `/cache/{namespace}/...`; the cache service checks the namespace rule.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct NamespacePath {
    /// Namespace: 1..=64 bytes of `[A-Za-z0-9._:@-]`.
    #[param(pattern = "^[A-Za-z0-9._:@-]{1,64}$")]
    pub(crate) namespace: String,
}

/// `/cache/{namespace}/{key}/...`; the cache service checks both.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct CacheKeyPath {
    /// Namespace: 1..=64 bytes of `[A-Za-z0-9._:@-]`.
    #[param(pattern = "^[A-Za-z0-9._:@-]{1,64}$")]
    pub(crate) namespace: String,
    /// Key: 1..=512 bytes of UTF-8 (percent-encode `/`).
    #[param(min_length = 1, max_length = 512)]
    pub(crate) key: String,
}
