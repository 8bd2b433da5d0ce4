//! [`Messages`]: the post flow (cache, every member's list and unread counter, events, typing
//! cleared), recent messages with cache-aside fill, edit, delete, receipts, per-user lists and
//! read-up-to, over a [`MessageStore`] and an [`InboxStore`].

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::conversations::MAX_URL_BYTES;
use super::{Conversations, Streams, Typing, check_text, observe};
use crate::channel::ChannelName;
use crate::config::MessagesConfig;
use crate::error::{Error, Result};
use crate::ids::{ConversationId, DeviceId, MessageId, UserId};
use crate::limits::{MAX_BATCH, MAX_SHORT_TEXT_BYTES};
use crate::message::{
    CacheBounds, DeliveryStatus, ImportOutcome, InboxFilter, InboxPage, InboxPost, InboxSettings, InboxStore,
    MAX_PREVIEW_CHARS, MAX_UNREAD, Message, MessageStore, NewMessage, PostOutcome, ReadOutcome, RecentMessages,
    StatusChange, UnreadSet, UnreadTotals, UserConversation, check_content, parse_cursor, preview_of,
};
use crate::stream::NewPublication;
use crate::time::Timestamp;

/// The messages service. Cheap to clone.
#[derive(Clone)]
pub struct Messages {
    store: Arc<dyn MessageStore>,
    inbox: Arc<dyn InboxStore>,
    conversations: Conversations,
    streams: Streams,
    typing: Typing,
    bounds: CacheBounds,
    config: MessagesConfig,
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages").field("bounds", &self.bounds).finish_non_exhaustive()
    }
}

impl Messages {
    /// Wires the stores to the services whose state and events a post touches.
    pub fn new(
        store: Arc<dyn MessageStore>,
        inbox: Arc<dyn InboxStore>,
        conversations: Conversations,
        streams: Streams,
        typing: Typing,
    ) -> Self {
        let config = MessagesConfig::default();
        Messages { store, inbox, conversations, streams, typing, bounds: CacheBounds::default(), config }
    }

    /// Applies `config` (delivery on `user:` channels).
    pub fn with_config(mut self, config: MessagesConfig) -> Self {
        self.config = config;
        self
    }

    /// The members of `conversation`, or [`Error::NotFound`].
    async fn members(&self, conversation: &ConversationId) -> Result<Vec<UserId>> {
        match self.conversations.get(conversation).await? {
            Some(c) => Ok(c.members),
            None => Err(Error::NotFound("conversation not found".into())),
        }
    }

    async fn check_member(&self, conversation: &ConversationId, user: &UserId) -> Result<()> {
        if self.conversations.is_member(conversation, user).await? {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!("{user} is not a member of this conversation")))
        }
    }

    /// Posts a message the backend persisted: caches it, updates every member's list (unread +1
    /// for all but the sender), publishes `message.new` on `chat:<id>` (and on every member's
    /// `user:` channel for conversations of at most
    /// [`MessagesConfig::user_channel_max_members`] members) and `unread.changed` on each
    /// counted member's `user:` channel, and clears the sender's typing.
    ///
    /// A repeated post of a cached id publishes no `message.new` but re-runs the list update,
    /// which counts each member at most once per message id: a retry after a crash between the
    /// two steps repairs the counters instead of counting twice.
    pub async fn post(&self, conversation: &ConversationId, message: NewMessage) -> Result<PostOutcome> {
        check_content(&message.content)?;
        if let Some(preview) = &message.preview
            && preview.chars().count() > MAX_PREVIEW_CHARS
        {
            return Err(Error::invalid("preview", format!("must be at most {MAX_PREVIEW_CHARS} characters")));
        }
        let members = self.members(conversation).await?;
        if !members.contains(&message.sender) {
            return Err(Error::PermissionDenied(format!("{} is not a member of this conversation", message.sender)));
        }
        let outcome = observe("messages", "post", self.store.post(conversation, &message, self.bounds)).await?;
        let cached = &outcome.message;
        if !outcome.duplicate {
            let event = json!({"type": "message.new", "data": cached});
            if members.len() <= self.config.user_channel_max_members as usize {
                for member in &members {
                    self.publish_user(member, NewPublication::new(event.clone()), "message.new").await;
                }
            }
            self.publish_chat(conversation, event).await;
        }
        let post = InboxPost {
            conversation_id: conversation.clone(),
            message_id: cached.id.clone(),
            sender: cached.sender.clone(),
            preview: message.preview.clone().unwrap_or_else(|| preview_of(&cached.content)),
            at: cached.created_at,
        };
        let changes = observe("inbox", "record_post", self.inbox.record_post(&members, &post)).await?;
        for change in changes.iter().filter(|c| c.counted) {
            self.unread_changed(conversation, &change.user_id, change.unread, change.totals, None).await;
        }
        if let Err(e) = self.typing.stop(conversation, &message.sender).await {
            tracing::warn!(conversation.id = %conversation, error = %e, "typing not cleared after a post");
        }
        metrics::counter!("switchboard_messages_posted_total").increment(1);
        Ok(outcome)
    }

    /// Up to `limit` (1..=100) cached messages, newest first, older than `before`.
    pub async fn recent(
        &self,
        conversation: &ConversationId,
        limit: usize,
        before: Option<&MessageId>,
    ) -> Result<RecentMessages> {
        if limit == 0 || limit > self.bounds.max_len as usize {
            return Err(Error::invalid("limit", format!("must be 1..={}", self.bounds.max_len)));
        }
        observe("messages", "recent", self.store.recent(conversation, limit, before)).await
    }

    /// Cache-aside fill with messages from the backend's database. See [`MessageStore::fill`].
    pub async fn fill(&self, conversation: &ConversationId, messages: &[NewMessage]) -> Result<usize> {
        if messages.len() > MAX_BATCH {
            return Err(Error::invalid("messages", format!("at most {MAX_BATCH} messages per fill")));
        }
        for m in messages {
            check_content(&m.content)?;
        }
        observe("messages", "fill", self.store.fill(conversation, messages, self.bounds)).await
    }

    /// Edits a message: the cached copy (if any) changes and `message.edited` is published.
    pub async fn edit(&self, conversation: &ConversationId, id: &MessageId, content: Value) -> Result<Option<Message>> {
        check_content(&content)?;
        self.members(conversation).await?;
        let edited = observe("messages", "edit", self.store.edit(conversation, id, &content)).await?;
        let edited_at = edited.as_ref().and_then(|m| m.edited_at).unwrap_or_else(Timestamp::now);
        let data =
            json!({"conversation_id": conversation, "message_id": id, "content": content, "edited_at": edited_at});
        self.publish_chat(conversation, json!({"type": "message.edited", "data": data})).await;
        Ok(edited)
    }

    /// Deletes a message: the cached copy (if any) becomes a tombstone and `message.deleted` is
    /// published. Returns whether the cache changed.
    pub async fn delete(&self, conversation: &ConversationId, id: &MessageId) -> Result<bool> {
        self.members(conversation).await?;
        let changed = observe("messages", "delete", self.store.delete(conversation, id)).await?;
        let data = json!({"conversation_id": conversation, "message_id": id});
        self.publish_chat(conversation, json!({"type": "message.deleted", "data": data})).await;
        Ok(changed)
    }

    /// Forgets a conversation's cached messages.
    pub async fn delete_cache(&self, conversation: &ConversationId) -> Result<bool> {
        observe("messages", "delete_cache", self.store.delete_cache(conversation)).await
    }

    /// `user` (a member) has the messages at `status`; a `message.status` receipt is published
    /// on `chat:<id>` for the ones whose status moved forward.
    pub async fn set_status(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        ids: &[MessageId],
        status: DeliveryStatus,
    ) -> Result<StatusChange> {
        if ids.is_empty() || ids.len() > MAX_BATCH {
            return Err(Error::invalid("message_ids", format!("must hold 1..={MAX_BATCH} ids")));
        }
        if status == DeliveryStatus::Sent {
            return Err(Error::invalid("status", "must be delivered or read"));
        }
        self.check_member(conversation, user).await?;
        let moved = observe("messages", "set_status", self.store.set_status(conversation, user, ids, status)).await?;
        if !moved.is_empty() {
            let data =
                json!({"conversation_id": conversation, "user_id": user, "message_ids": moved, "status": status});
            self.publish_chat(conversation, json!({"type": "message.status", "data": data})).await;
        }
        Ok(StatusChange { message_ids: moved, status })
    }

    /// A page of `user`'s conversation list (`limit` 1..=1000).
    pub async fn list(
        &self,
        user: &UserId,
        filter: InboxFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<InboxPage> {
        if limit == 0 || limit > MAX_BATCH {
            return Err(Error::invalid("limit", format!("must be 1..={MAX_BATCH}")));
        }
        parse_cursor(cursor)?;
        let mut page = observe("inbox", "list", self.inbox.list(user, filter, cursor, limit)).await?;
        self.describe(&mut page.conversations).await?;
        Ok(page)
    }

    /// One entry of `user`'s list.
    pub async fn entry(&self, user: &UserId, conversation: &ConversationId) -> Result<Option<UserConversation>> {
        let Some(entry) = observe("inbox", "get", self.inbox.get(user, conversation)).await? else { return Ok(None) };
        let mut entries = [entry];
        self.describe(&mut entries).await?;
        let [entry] = entries;
        Ok(Some(entry))
    }

    /// Gives each entry of a registered conversation that conversation's current name, type and
    /// avatar (a rename shows at once); entries of conversations the app keeps to itself keep
    /// what was imported. The lookups run concurrently: one round trip's wait on Redis.
    async fn describe(&self, entries: &mut [UserConversation]) -> Result<()> {
        let mut lookups = tokio::task::JoinSet::new();
        for (i, entry) in entries.iter().enumerate() {
            let (conversations, id) = (self.conversations.clone(), entry.conversation_id.clone());
            lookups.spawn(async move { (i, conversations.get(&id).await) });
        }
        while let Some(joined) = lookups.join_next().await {
            let (i, found) = joined.map_err(|e| Error::Internal(format!("conversation lookup: {e}")))?;
            if let Some(conversation) = found? {
                let entry = &mut entries[i];
                entry.name = conversation.name;
                entry.kind = Some(conversation.kind);
                entry.avatar_url = conversation.avatar_url;
            }
        }
        Ok(())
    }

    /// Loads `user`'s list from the app's database (at most 1000 entries, each conversation
    /// once): adds the entries the list does not hold yet and marks it loaded, so an empty list
    /// then means "no conversations". See [`InboxStore::import`].
    pub async fn import(&self, user: &UserId, entries: &[UserConversation]) -> Result<ImportOutcome> {
        if entries.len() > MAX_BATCH {
            return Err(Error::invalid("conversations", format!("at most {MAX_BATCH} entries per import")));
        }
        let mut seen = HashSet::with_capacity(entries.len());
        for entry in entries {
            if !seen.insert(&entry.conversation_id) {
                return Err(Error::invalid("conversations", format!("{} is listed twice", entry.conversation_id)));
            }
            if entry.last_message_preview.chars().count() > MAX_PREVIEW_CHARS {
                return Err(Error::invalid(
                    "last_message_preview",
                    format!("must be at most {MAX_PREVIEW_CHARS} characters"),
                ));
            }
            check_unread(entry.unread)?;
            check_text("name", &entry.name, MAX_SHORT_TEXT_BYTES)?;
            check_text("avatar_url", &entry.avatar_url, MAX_URL_BYTES)?;
        }
        observe("inbox", "import", self.inbox.import(user, entries)).await
    }

    /// Sets an entry's unread count (a repair from the app's database); `unread.changed` goes to
    /// the user's devices. `None` when the user has no entry for the
    /// conversation.
    pub async fn set_unread(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        unread: u64,
    ) -> Result<Option<UnreadSet>> {
        check_unread(unread)?;
        let Some(mut set) = observe("inbox", "set_unread", self.inbox.set_unread(user, conversation, unread)).await?
        else {
            return Ok(None);
        };
        self.unread_changed(conversation, user, set.entry.unread, set.totals, None).await;
        self.describe(std::slice::from_mut(&mut set.entry)).await?;
        Ok(Some(set))
    }

    /// Pins, mutes or archives an entry of `user`'s list; `None` when there is no such entry.
    pub async fn update_entry(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        settings: InboxSettings,
    ) -> Result<Option<UserConversation>> {
        observe("inbox", "update", self.inbox.update(user, conversation, settings)).await
    }

    /// Removes a conversation from `user`'s list (a later message brings it back).
    pub async fn remove_entry(&self, user: &UserId, conversation: &ConversationId) -> Result<bool> {
        observe("inbox", "remove", self.inbox.remove(user, conversation)).await
    }

    /// `user` (a member) read up to `message`: their unread count becomes 0, `unread.changed`
    /// goes to their other devices (never `source`), and the message's receipt moves to `read`.
    pub async fn read(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        message: &MessageId,
        source: Option<&DeviceId>,
    ) -> Result<ReadOutcome> {
        self.check_member(conversation, user).await?;
        let outcome = observe("inbox", "read", self.inbox.read(user, conversation, message)).await?;
        let outcome = match outcome {
            Some(o) => o,
            None => ReadOutcome { cleared: 0, totals: self.totals(user).await? },
        };
        if outcome.cleared > 0 {
            self.unread_changed(conversation, user, 0, outcome.totals, source).await;
        }
        let ids = std::slice::from_ref(message);
        let moved =
            observe("messages", "set_status", self.store.set_status(conversation, user, ids, DeliveryStatus::Read))
                .await?;
        if !moved.is_empty() {
            let data = json!({"conversation_id": conversation, "user_id": user, "message_ids": moved, "status": DeliveryStatus::Read});
            self.publish_chat(conversation, json!({"type": "message.status", "data": data})).await;
        }
        Ok(outcome)
    }

    /// `user`'s unread totals (muted conversations apart).
    pub async fn totals(&self, user: &UserId) -> Result<UnreadTotals> {
        observe("inbox", "totals", self.inbox.totals(user)).await
    }

    async fn publish_chat(&self, conversation: &ConversationId, event: Value) {
        let Ok(channel) = ChannelName::chat(conversation.as_str()) else { return };
        if let Err(e) = self.streams.publish(&channel, NewPublication::new(event)).await {
            tracing::warn!(conversation.id = %conversation, error = %e, "chat event not published");
        }
    }

    async fn unread_changed(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        unread: u64,
        totals: UnreadTotals,
        source: Option<&DeviceId>,
    ) {
        let data = json!({
            "conversation_id": conversation,
            "unread": unread,
            "total_unread": totals.unread,
            "muted_unread": totals.muted_unread,
        });
        let mut publication = NewPublication::new(json!({"type": "unread.changed", "data": data}));
        publication.exclude_device = source.cloned();
        self.publish_user(user, publication, "unread.changed").await;
    }

    async fn publish_user(&self, user: &UserId, publication: NewPublication, what: &str) {
        if let Err(e) = self.streams.publish(&ChannelName::user(user), publication).await {
            tracing::warn!(user.id = %user, error = %e, event = what, "event not published on the user channel");
        }
    }
}

fn check_unread(unread: u64) -> Result<()> {
    if unread > MAX_UNREAD {
        return Err(Error::invalid("unread", format!("must be at most {MAX_UNREAD}")));
    }
    Ok(())
}
