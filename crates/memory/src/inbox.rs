//! `MemoryInbox`: each user's conversation list and unread totals under one mutex, so a user's
//! entries and totals always change together.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard_core::message::{
    InboxChange, InboxFilter, InboxPage, InboxPost, InboxSettings, InboxStore, ReadOutcome, UnreadTotals,
    UserConversation, page_of, parse_cursor,
};
use switchboard_core::{ConversationId, MessageId, Result, UserId};

use crate::lock;

/// Most message ids an entry remembers as counted (beyond it, posts still count but a retried
/// one would count twice).
const MAX_COUNTED_IDS: usize = 1000;

#[derive(Default)]
pub(crate) struct MemoryInbox {
    state: Mutex<HashMap<UserId, Inbox>>,
}

#[derive(Default)]
struct Inbox {
    entries: HashMap<ConversationId, Entry>,
    totals: UnreadTotals,
}

struct Entry {
    view: UserConversation,
    /// Message ids counted in `unread` since the last read.
    counted: HashSet<MessageId>,
}

impl Inbox {
    fn add_unread(&mut self, muted: bool, delta: i64) {
        let total = if muted { &mut self.totals.muted_unread } else { &mut self.totals.unread };
        *total = total.saturating_add_signed(delta);
    }
}

#[async_trait]
impl InboxStore for MemoryInbox {
    async fn record_post(&self, members: &[UserId], post: &InboxPost) -> Result<Vec<InboxChange>> {
        let mut state = lock(&self.state);
        let mut changes = Vec::with_capacity(members.len());
        for user in members {
            let inbox = state.entry(user.clone()).or_default();
            let entry = inbox.entries.entry(post.conversation_id.clone()).or_insert_with(|| Entry {
                view: UserConversation {
                    conversation_id: post.conversation_id.clone(),
                    last_message_id: None,
                    last_message_preview: String::new(),
                    last_message_at: post.at,
                    unread: 0,
                    pinned: false,
                    muted: false,
                    archived: false,
                },
                counted: HashSet::new(),
            });
            if entry.view.last_message_id.is_none() || post.at >= entry.view.last_message_at {
                entry.view.last_message_id = Some(post.message_id.clone());
                entry.view.last_message_preview = post.preview.clone();
                entry.view.last_message_at = post.at;
            }
            let counted = user != &post.sender && !entry.counted.contains(&post.message_id);
            if counted {
                if entry.counted.len() < MAX_COUNTED_IDS {
                    entry.counted.insert(post.message_id.clone());
                }
                entry.view.unread += 1;
            }
            let (unread, muted) = (entry.view.unread, entry.view.muted);
            if counted {
                inbox.add_unread(muted, 1);
            }
            changes.push(InboxChange { user_id: user.clone(), unread, totals: inbox.totals, counted });
        }
        Ok(changes)
    }

    async fn list(&self, user: &UserId, filter: InboxFilter, cursor: Option<&str>, limit: usize) -> Result<InboxPage> {
        let offset = parse_cursor(cursor)?;
        let state = lock(&self.state);
        let entries = state
            .get(user)
            .map(|inbox| inbox.entries.values().map(|e| e.view.clone()).filter(|v| filter.admits(v)).collect())
            .unwrap_or_default();
        Ok(page_of(entries, offset, limit))
    }

    async fn get(&self, user: &UserId, conversation: &ConversationId) -> Result<Option<UserConversation>> {
        Ok(lock(&self.state).get(user).and_then(|i| i.entries.get(conversation)).map(|e| e.view.clone()))
    }

    async fn update(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        settings: InboxSettings,
    ) -> Result<Option<UserConversation>> {
        let mut state = lock(&self.state);
        let Some(inbox) = state.get_mut(user) else { return Ok(None) };
        let Some(entry) = inbox.entries.get_mut(conversation) else { return Ok(None) };
        let was_muted = entry.view.muted;
        entry.view.pinned = settings.pinned.unwrap_or(entry.view.pinned);
        entry.view.muted = settings.muted.unwrap_or(entry.view.muted);
        entry.view.archived = settings.archived.unwrap_or(entry.view.archived);
        let view = entry.view.clone();
        if was_muted != view.muted {
            // The entry's unread moves from one total to the other.
            let unread = view.unread as i64;
            inbox.add_unread(was_muted, -unread);
            inbox.add_unread(view.muted, unread);
        }
        Ok(Some(view))
    }

    async fn remove(&self, user: &UserId, conversation: &ConversationId) -> Result<bool> {
        let mut state = lock(&self.state);
        let Some(inbox) = state.get_mut(user) else { return Ok(false) };
        let Some(entry) = inbox.entries.remove(conversation) else { return Ok(false) };
        inbox.add_unread(entry.view.muted, -(entry.view.unread as i64));
        Ok(true)
    }

    async fn read(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        _message: &MessageId,
    ) -> Result<Option<ReadOutcome>> {
        let mut state = lock(&self.state);
        let Some(inbox) = state.get_mut(user) else { return Ok(None) };
        let Some(entry) = inbox.entries.get_mut(conversation) else { return Ok(None) };
        let cleared = entry.view.unread;
        let muted = entry.view.muted;
        entry.view.unread = 0;
        entry.counted.clear();
        inbox.add_unread(muted, -(cleared as i64));
        Ok(Some(ReadOutcome { cleared, totals: inbox.totals }))
    }

    async fn totals(&self, user: &UserId) -> Result<UnreadTotals> {
        Ok(lock(&self.state).get(user).map(|i| i.totals).unwrap_or_default())
    }
}
