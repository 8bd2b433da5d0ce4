//! Messages and unread counters: the recent-messages cache with delivery receipts,
//! the [`MessageStore`] contract, and per-user conversation lists with the [`InboxStore`]
//! contract.
//!
//! Decisions, for both engines:
//! - Message `content` is any JSON value (a string for plain text, an object for rich content),
//!   at most [`MAX_CONTENT_BYTES`] serialized. Switchboard never looks inside, except to build the
//!   list preview (see [`preview_of`]).
//! - Delivery status is kept per message *per recipient* (each recipient's status only moves
//!   forward: sent < delivered < read), so receipts name who delivered or read what. A message
//!   also carries a summary: the highest status any recipient reached and how many recipients
//!   reached `delivered` and `read`. Statuses are tracked only while the message is cached.
//! - The post is idempotent by message id: posting an id the cache already holds changes nothing
//!   and reports `duplicate`, so a retried post never counts twice.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conversation::ConversationKind;
use crate::error::{Error, Result};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::time::Timestamp;

/// Largest message content, serialized JSON, in bytes.
pub const MAX_CONTENT_BYTES: usize = 16 * 1024;
/// Longest last-message preview in a conversation list, in characters.
pub const MAX_PREVIEW_CHARS: usize = 200;
/// Most messages cached per conversation (default).
pub const DEFAULT_CACHE_LEN: u32 = 100;
/// How long a cached message is kept (default).
pub const DEFAULT_CACHE_AGE: Duration = Duration::from_secs(86_400);

/// A message as the backend posts it, after persisting it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewMessage {
    /// The message's id (from the backend's database).
    pub id: MessageId,
    /// Who wrote it; must be a member of the conversation.
    pub sender: UserId,
    /// Any JSON: a string for text, an object for rich content (at most 16 KiB serialized).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub content: Value,
    /// When it was written (default: when it is posted, by the engine's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// The conversation-list preview, at most 200 characters, when the content must not give it
    /// (end-to-end encrypted apps: `"New message"`); default: [`preview_of`] the content. Not
    /// cached with the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

impl NewMessage {
    /// A message from `sender` with `content`, stamped when cached, previewed from its content.
    pub fn new(id: MessageId, sender: UserId, content: Value) -> Self {
        NewMessage { id, sender, content, created_at: None, preview: None }
    }
}

/// Delivery status of a message for one recipient; only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryStatus {
    /// Stored, not yet on the recipient's device.
    #[default]
    Sent,
    /// On the recipient's device.
    Delivered,
    /// Seen by the recipient.
    Read,
}

impl DeliveryStatus {
    /// 1, 2, 3: the order engines store and compare.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered => 2,
            DeliveryStatus::Read => 3,
        }
    }

    /// The status of a stored rank (anything unknown is `sent`).
    pub fn from_rank(rank: i64) -> Self {
        match rank {
            3 => DeliveryStatus::Read,
            2 => DeliveryStatus::Delivered,
            _ => DeliveryStatus::Sent,
        }
    }
}

/// A cached message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Who wrote it.
    pub sender: UserId,
    /// The content (`null` once deleted).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub content: Value,
    /// When it was written.
    pub created_at: Timestamp,
    /// When it was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// Deleted: kept as a tombstone so clients can show "message deleted".
    #[serde(default)]
    pub deleted: bool,
    /// The highest status any recipient reached.
    pub status: DeliveryStatus,
    /// Recipients that reached `delivered` (or `read`).
    pub delivered_count: u32,
    /// Recipients that reached `read`.
    pub read_count: u32,
}

/// The answer of a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostOutcome {
    /// The message as cached (the one already cached when `duplicate`).
    pub message: Message,
    /// The id was already cached: nothing changed and nothing was published.
    pub duplicate: bool,
}

/// Recent messages from the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecentMessages {
    /// Newest first.
    pub messages: Vec<Message>,
    /// `false` when the cache holds nothing for the conversation: the backend should read its
    /// database and fill the cache (`PUT /conversations/{c}/messages`).
    pub cached: bool,
}

/// A recipient's status change that took effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusChange {
    /// The messages whose status for this recipient moved forward.
    pub message_ids: Vec<MessageId>,
    /// The new status.
    pub status: DeliveryStatus,
}

/// Bounds of a conversation's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBounds {
    /// Most messages kept.
    pub max_len: u32,
    /// How long the cache lives after its last post or fill. It counts from caching, not from
    /// the messages' `created_at`: history filled from the app's database is served whatever
    /// its age.
    pub max_age: Duration,
}

impl Default for CacheBounds {
    fn default() -> Self {
        CacheBounds { max_len: DEFAULT_CACHE_LEN, max_age: DEFAULT_CACHE_AGE }
    }
}

/// The recent-messages cache of every conversation.
///
/// Contract, for every engine: each method is atomic for its conversation. The cache holds at
/// most `bounds.max_len` messages (the newest by `(created_at, id)`; older ones are dropped on
/// each post and fill); the whole cache is forgotten `max_age` after its last post or fill.
/// Retention counts from caching, never from `created_at`: what was posted or filled is served
/// until then, however old. Times default to the engine's clock.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Appends `message` to the cache, unless a message with its id is cached already (then
    /// nothing changes and the outcome says `duplicate`).
    async fn post(
        &self,
        conversation: &ConversationId,
        message: &NewMessage,
        bounds: CacheBounds,
    ) -> Result<PostOutcome>;

    /// Up to `limit` messages, newest first, older than the message `before` when given (an
    /// unknown `before` gives an empty page). `cached: false` when nothing is cached for the
    /// conversation (never posted or filled, expired, or deleted).
    async fn recent(
        &self,
        conversation: &ConversationId,
        limit: usize,
        before: Option<&MessageId>,
    ) -> Result<RecentMessages>;

    /// Cache-aside fill: adds the messages not cached yet (a cached one, maybe edited since, is
    /// kept), applies the bounds and marks the conversation cached even when `messages` is empty.
    /// Returns how many were added.
    async fn fill(&self, conversation: &ConversationId, messages: &[NewMessage], bounds: CacheBounds) -> Result<usize>;

    /// Replaces a cached message's content and sets `edited_at`; `None` when it is not cached
    /// (or deleted).
    async fn edit(&self, conversation: &ConversationId, id: &MessageId, content: &Value) -> Result<Option<Message>>;

    /// Turns a cached message into a tombstone (content `null`, `deleted: true`); `false` when it
    /// is not cached or already deleted.
    async fn delete(&self, conversation: &ConversationId, id: &MessageId) -> Result<bool>;

    /// Forgets the conversation's whole cache; `false` when it held nothing.
    async fn delete_cache(&self, conversation: &ConversationId) -> Result<bool>;

    /// Moves `user`'s status of each message forward to `status`. Only cached messages of which
    /// `user` is not the sender count; a status never goes backwards (a `delivered` after `read`
    /// changes nothing). Returns the ids whose status actually moved, in input order.
    async fn set_status(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        ids: &[MessageId],
        status: DeliveryStatus,
    ) -> Result<Vec<MessageId>>;
}

/// Largest unread count an import or a repair may set.
pub const MAX_UNREAD: u64 = 1_000_000_000;

/// One conversation in a user's list. Also the shape of an imported entry
/// ([`InboxStore::import`]), where everything but the conversation and the last message time may
/// be left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserConversation {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The last message's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_id: Option<MessageId>,
    /// The last message's preview (at most 200 characters).
    #[serde(default)]
    pub last_message_preview: String,
    /// When the last message was written.
    pub last_message_at: Timestamp,
    /// Messages not read yet (an import gives at most 1000000000).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1_000_000_000))]
    pub unread: u64,
    /// Listed first.
    #[serde(default)]
    pub pinned: bool,
    /// Its unread count is totalled apart.
    #[serde(default)]
    pub muted: bool,
    /// Hidden from the main list.
    #[serde(default)]
    pub archived: bool,
    /// The conversation's display name: the registered conversation's (`PUT
    /// /conversations/{id}`) when there is one, else the imported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `direct` or `group`, from the same sources as `name`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ConversationKind>,
    /// The conversation's avatar URL, from the same sources as `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

impl UserConversation {
    /// A new entry for a conversation whose first known message is at `at`: nothing unread, no
    /// flags, no metadata.
    pub fn new(conversation_id: ConversationId, at: Timestamp) -> Self {
        UserConversation {
            conversation_id,
            last_message_id: None,
            last_message_preview: String::new(),
            last_message_at: at,
            unread: 0,
            pinned: false,
            muted: false,
            archived: false,
            name: None,
            kind: None,
            avatar_url: None,
        }
    }
}

/// The answer of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportOutcome {
    /// Entries added (the ones the list did not hold yet).
    pub added: usize,
    /// The user's totals after it.
    pub totals: UnreadTotals,
}

/// An entry after its unread count was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnreadSet {
    /// The entry.
    pub entry: UserConversation,
    /// The user's totals after it.
    pub totals: UnreadTotals,
}

/// What a post changes in each member's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxPost {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The message (posts already counted for a member by this id are not counted again).
    pub message_id: MessageId,
    /// Its sender, whose unread count does not grow.
    pub sender: UserId,
    /// Its preview (see [`preview_of`]).
    pub preview: String,
    /// When it was written.
    pub at: Timestamp,
}

/// A member's counters after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnreadTotals {
    /// Unread messages in conversations that are not muted.
    pub unread: u64,
    /// Unread messages in muted conversations (counted apart).
    pub muted_unread: u64,
}

/// One member's list after a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxChange {
    /// The member.
    pub user_id: UserId,
    /// Their unread count in the conversation.
    pub unread: u64,
    /// Their totals.
    pub totals: UnreadTotals,
    /// Whether their unread count grew (false for the sender and for a message already counted).
    pub counted: bool,
}

/// Which conversations a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum InboxFilter {
    /// Every conversation that is not archived.
    #[default]
    All,
    /// Not archived, with unread messages.
    Unread,
    /// Not archived, pinned.
    Pinned,
    /// Not archived, muted.
    Muted,
    /// Archived only.
    Archived,
}

impl InboxFilter {
    /// Whether `entry` belongs to this list.
    pub fn admits(self, entry: &UserConversation) -> bool {
        match self {
            InboxFilter::Archived => entry.archived,
            _ if entry.archived => false,
            InboxFilter::All => true,
            InboxFilter::Unread => entry.unread > 0,
            InboxFilter::Pinned => entry.pinned,
            InboxFilter::Muted => entry.muted,
        }
    }
}

/// One page of a user's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxPage {
    /// Pinned first, then by last message time, newest first (ties by conversation id).
    pub conversations: Vec<UserConversation>,
    /// Whether the list was ever imported from the app's database
    /// (`PUT /users/{user_id}/conversations`). `false` with no conversations means "never
    /// loaded" — read the database and import — not "no conversations"; entries that posts
    /// created are listed either way.
    #[serde(default)]
    pub loaded: bool,
    /// Pass it back for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Flags to change on a list entry (absent = unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxSettings {
    /// Listed first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
    /// Unread totalled apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
    /// Hidden from the main list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

/// A user's answer after reading up to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadOutcome {
    /// Unread messages the read cleared (0: nothing changed).
    pub cleared: u64,
    /// The user's totals after it.
    pub totals: UnreadTotals,
}

/// Per-user conversation lists and unread counters.
///
/// Contract, for every engine: each method is atomic for one user (a user's entries and totals
/// change together, so totals always equal the sum of the entries); [`InboxStore::record_post`]
/// is atomic per member, not across members. Totals keep muted conversations apart. Paging uses
/// an opaque cursor; entries that move between pages (a new message) may show twice or not at
/// all in one walk, as with any live list.
#[async_trait]
pub trait InboxStore: Send + Sync + 'static {
    /// For each member: creates or updates their entry (preview and time follow the newest
    /// message by `at`); unread +1 for every member but the sender, exactly once per message id
    /// and member (a member's entry remembers the message ids it counted since its last read).
    /// Answers in `members` order.
    async fn record_post(&self, members: &[UserId], post: &InboxPost) -> Result<Vec<InboxChange>>;

    /// A page of `user`'s list under `filter`.
    async fn list(&self, user: &UserId, filter: InboxFilter, cursor: Option<&str>, limit: usize) -> Result<InboxPage>;

    /// One entry, or `None`.
    async fn get(&self, user: &UserId, conversation: &ConversationId) -> Result<Option<UserConversation>>;

    /// Changes flags; `None` when the user has no entry for the conversation.
    async fn update(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        settings: InboxSettings,
    ) -> Result<Option<UserConversation>>;

    /// Removes the entry (its unread leaves the totals); `false` when there was none. A later
    /// post brings it back.
    async fn remove(&self, user: &UserId, conversation: &ConversationId) -> Result<bool>;

    /// `user` read up to `message`: their unread in the conversation becomes 0. `None` when the
    /// user has no entry for the conversation.
    async fn read(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Result<Option<ReadOutcome>>;

    /// The user's totals.
    async fn totals(&self, user: &UserId) -> Result<UnreadTotals>;

    /// Loads entries from the app's database, as a cache-aside fill: adds each entry the list
    /// does not hold yet (its unread count joins the totals, it has no counted message ids); an
    /// entry already present is kept as it is, since posts recorded it after the database was
    /// read. Marks the list loaded, even when `entries` is empty. The service has validated the
    /// entries (bounds, no conversation twice).
    async fn import(&self, user: &UserId, entries: &[UserConversation]) -> Result<ImportOutcome>;

    /// Sets an entry's unread count (a repair from the app's database) and moves the totals by
    /// the difference; setting 0 also forgets the counted message ids, as a read does. `None`
    /// when the user has no entry for the conversation.
    async fn set_unread(&self, user: &UserId, conversation: &ConversationId, unread: u64) -> Result<Option<UnreadSet>>;
}

/// The list preview of a content: a string itself, or an object's `text` string, or the
/// serialized JSON; cut to [`MAX_PREVIEW_CHARS`] characters.
pub fn preview_of(content: &Value) -> String {
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("text") {
            Some(Value::String(s)) => s.clone(),
            _ => content.to_string(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    };
    text.chars().take(MAX_PREVIEW_CHARS).collect()
}

/// Checks a message content's size.
pub fn check_content(content: &Value) -> Result<()> {
    let size = crate::session::json_len(content);
    if size > MAX_CONTENT_BYTES {
        return Err(Error::PayloadTooLarge(format!(
            "content: {size} bytes is over the limit of {MAX_CONTENT_BYTES} bytes"
        )));
    }
    Ok(())
}

/// An inbox cursor: the number of entries of the filtered list already returned.
pub fn parse_cursor(cursor: Option<&str>) -> Result<usize> {
    match cursor {
        None | Some("") => Ok(0),
        Some(c) => c.parse().map_err(|_| Error::invalid("cursor", "is not a cursor from a previous page")),
    }
}

/// Orders list entries: pinned first, then newest last message, then conversation id.
pub fn inbox_order(a: &UserConversation, b: &UserConversation) -> std::cmp::Ordering {
    b.pinned
        .cmp(&a.pinned)
        .then(b.last_message_at.cmp(&a.last_message_at))
        .then(a.conversation_id.cmp(&b.conversation_id))
}

/// Cuts a filtered, ordered list into the page at `offset`; `loaded` as the list says.
pub fn page_of(mut entries: Vec<UserConversation>, offset: usize, limit: usize, loaded: bool) -> InboxPage {
    entries.sort_by(inbox_order);
    let total = entries.len();
    let conversations: Vec<_> = entries.into_iter().skip(offset).take(limit).collect();
    let end = offset.saturating_add(conversations.len());
    InboxPage { conversations, loaded, next_cursor: (end < total).then(|| end.to_string()) }
}
