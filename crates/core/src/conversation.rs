//! Conversations: type, name, avatar and members, and the [`ConversationStore`] contract. This is
//! the membership the gateway checks before a client may subscribe to `chat:<id>` or type in it;
//! messages, unread counters and per-user lists ([`crate::message`]) build on it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::{ConversationId, UserId};
use crate::time::Timestamp;

/// Direct (two people) or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConversationKind {
    /// A one-to-one conversation: at most two members.
    Direct,
    /// A group conversation.
    #[default]
    Group,
}

impl ConversationKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Direct => "direct",
            ConversationKind::Group => "group",
        }
    }
}

/// What a conversation is made of, as the backend puts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationSpec {
    /// `direct` or `group` (default `group`).
    #[serde(default, rename = "type")]
    pub kind: ConversationKind,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Members (duplicates are ignored).
    #[serde(default)]
    pub members: Vec<UserId>,
}

/// A stored conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// `direct` or `group`.
    #[serde(rename = "type")]
    pub kind: ConversationKind,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Members, sorted.
    pub members: Vec<UserId>,
    /// First put.
    pub created_at: Timestamp,
    /// Last put or member change.
    pub updated_at: Timestamp,
}

/// Storage of conversations and their members.
///
/// Contract, for every engine: each method is atomic; member lists are sets (sorted on output);
/// a conversation never holds more than `max_members` members — a change that would pass it fails
/// with [`crate::Error::Conflict`] and changes nothing; a `direct` conversation never holds more
/// than two.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// Creates or replaces the conversation (metadata and the whole member set). `created_at` is
    /// kept across replacements.
    async fn put(&self, id: &ConversationId, spec: &ConversationSpec, max_members: u32) -> Result<Conversation>;

    /// The conversation, or `None`.
    async fn get(&self, id: &ConversationId) -> Result<Option<Conversation>>;

    /// Deletes it; `false` if there was none.
    async fn delete(&self, id: &ConversationId) -> Result<bool>;

    /// Adds and removes members in one step (a user in both lists ends up removed). `None` if the
    /// conversation does not exist.
    async fn update_members(
        &self,
        id: &ConversationId,
        add: &[UserId],
        remove: &[UserId],
        max_members: u32,
    ) -> Result<Option<Conversation>>;

    /// Whether `user` is a member (`false` when the conversation does not exist).
    async fn is_member(&self, id: &ConversationId, user: &UserId) -> Result<bool>;
}
