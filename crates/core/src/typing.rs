//! Typing indicators: who is typing in a conversation, with a TTL, throttled start
//! events and stop events on expiry, and the [`TypingStore`] contract every engine implements.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::{ConversationId, UserId};

/// The answer to [`TypingStore::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypingStart {
    /// Emit a `typing: true` event: the user was not typing, or the last start event of this
    /// user in this conversation is at least the throttle window old.
    pub first: bool,
}

/// A `typing` event, published on the conversation's channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TypingEvent {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Who started or stopped typing.
    pub user_id: UserId,
    /// Started (`true`) or stopped (`false`).
    pub typing: bool,
}

/// Storage of typing indicators. All times come from the engine's clock.
///
/// Contract, for every engine:
/// - A *typing entry* (conversation, user) is live from [`start`](Self::start) until
///   `now + ttl`; a new start extends it. It ends on [`stop`](Self::stop) or when it expires.
/// - Every entry that was started ends with exactly one reported stop: either the `stop` call
///   that returns `true`, or the [`sweep`](Self::sweep) that returns it after it expired —
///   never both, even with several nodes sweeping concurrently. A start that replaces an
///   expired entry not yet swept continues it (no stop is reported for the old one).
/// - Every method is atomic per conversation.
#[async_trait]
pub trait TypingStore: Send + Sync + 'static {
    /// Marks `user` typing in `conversation` until `now + ttl`. `first` is true when the user
    /// had no live entry, or the last start that returned `first` is at least `throttle` old:
    /// at most one start event per user per conversation per `throttle` while typing.
    async fn start(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        ttl: Duration,
        throttle: Duration,
    ) -> Result<TypingStart>;

    /// Ends the user's entry; `true` when there was one whose stop has not been reported
    /// (a live one, or an expired one not yet swept), so the caller reports this stop.
    async fn stop(&self, conversation: &ConversationId, user: &UserId) -> Result<bool>;

    /// Users with a live entry in the conversation, in ascending id order.
    async fn typing_users(&self, conversation: &ConversationId) -> Result<Vec<UserId>>;

    /// Removes expired entries and returns them (at most `limit` conversations' worth per call),
    /// each exactly once across all callers. Cost is proportional to the conversations with an
    /// expiry due. Call it periodically on every node.
    async fn sweep(&self, limit: usize) -> Result<Vec<TypingEvent>>;
}
