//! `MemoryMessages`: each conversation's recent messages, ordered by `(created_at, id)`, with
//! per-recipient receipts, under one mutex; expiry checked on every access and by the sweeper.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;
use switchboard_core::message::{
    CacheBounds, DeliveryStatus, Message, MessageStore, NewMessage, PostOutcome, RecentMessages,
};
use switchboard_core::{ConversationId, MessageId, Result, Timestamp, UserId};

use crate::lock;
use crate::sweeper::Sweepable;

#[derive(Default)]
pub(crate) struct MemoryMessages {
    state: Mutex<HashMap<ConversationId, Cache>>,
}

struct Cache {
    /// `(created ms, id)` -> message: iteration order is the cache's order.
    messages: BTreeMap<(i64, MessageId), Stored>,
    /// id -> created ms, to find a message by id.
    index: HashMap<MessageId, i64>,
    /// The whole cache is forgotten after this.
    expires_at: Timestamp,
}

struct Stored {
    message: Message,
    receipts: HashMap<UserId, DeliveryStatus>,
}

impl Cache {
    fn new() -> Self {
        Cache { messages: BTreeMap::new(), index: HashMap::new(), expires_at: Timestamp::from_millis(0) }
    }

    fn touch(&mut self, now: Timestamp, bounds: CacheBounds) {
        self.expires_at = now.plus(bounds.max_age);
    }

    /// Drops the oldest messages beyond the count.
    fn trim(&mut self, max_len: usize) {
        while let Some(((_, id), _)) = self.messages.first_key_value() {
            if self.messages.len() <= max_len {
                break;
            }
            let id = id.clone();
            self.messages.pop_first();
            self.index.remove(&id);
        }
    }

    fn get_mut(&mut self, id: &MessageId) -> Option<&mut Stored> {
        let created = *self.index.get(id)?;
        self.messages.get_mut(&(created, id.clone()))
    }

    fn insert(&mut self, conversation: &ConversationId, m: &NewMessage, now: Timestamp) -> Option<Message> {
        if self.index.contains_key(&m.id) {
            return None;
        }
        let created = m.created_at.unwrap_or(now);
        let message = Message {
            id: m.id.clone(),
            conversation_id: conversation.clone(),
            sender: m.sender.clone(),
            content: m.content.clone(),
            created_at: created,
            edited_at: None,
            deleted: false,
            status: DeliveryStatus::Sent,
            delivered_count: 0,
            read_count: 0,
        };
        self.index.insert(m.id.clone(), created.as_millis());
        self.messages
            .insert((created.as_millis(), m.id.clone()), Stored { message: message.clone(), receipts: HashMap::new() });
        Some(message)
    }
}

impl MemoryMessages {
    /// Runs `f` on the conversation's live cache (a missing or expired one is `None`).
    fn with_live<T>(&self, conversation: &ConversationId, f: impl FnOnce(&mut Cache, Timestamp) -> T) -> Option<T> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        if state.get(conversation).is_some_and(|c| c.expires_at <= now) {
            state.remove(conversation);
        }
        let cache = state.get_mut(conversation)?;
        Some(f(cache, now))
    }
}

#[async_trait]
impl MessageStore for MemoryMessages {
    async fn post(
        &self,
        conversation: &ConversationId,
        message: &NewMessage,
        bounds: CacheBounds,
    ) -> Result<PostOutcome> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        if state.get(conversation).is_some_and(|c| c.expires_at <= now) {
            state.remove(conversation);
        }
        let cache = state.entry(conversation.clone()).or_insert_with(Cache::new);
        cache.touch(now, bounds);
        let outcome = match cache.insert(conversation, message, now) {
            Some(stored) => PostOutcome { message: stored, duplicate: false },
            None => match cache.get_mut(&message.id) {
                Some(existing) => PostOutcome { message: existing.message.clone(), duplicate: true },
                None => return Err(switchboard_core::Error::Internal("message index out of step".into())),
            },
        };
        cache.trim(bounds.max_len as usize);
        Ok(outcome)
    }

    async fn recent(
        &self,
        conversation: &ConversationId,
        limit: usize,
        before: Option<&MessageId>,
    ) -> Result<RecentMessages> {
        let page = self.with_live(conversation, |cache, _| {
            let upper = match before {
                Some(id) => match cache.index.get(id) {
                    Some(created) => Some((*created, id.clone())),
                    None => return Vec::new(),
                },
                None => None,
            };
            let iter: Box<dyn Iterator<Item = &Stored>> = match upper {
                Some(key) => Box::new(cache.messages.range(..key).rev().map(|(_, s)| s)),
                None => Box::new(cache.messages.values().rev()),
            };
            iter.take(limit).map(|s| s.message.clone()).collect()
        });
        Ok(match page {
            Some(messages) => RecentMessages { messages, cached: true },
            None => RecentMessages { messages: Vec::new(), cached: false },
        })
    }

    async fn fill(&self, conversation: &ConversationId, messages: &[NewMessage], bounds: CacheBounds) -> Result<usize> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        if state.get(conversation).is_some_and(|c| c.expires_at <= now) {
            state.remove(conversation);
        }
        let cache = state.entry(conversation.clone()).or_insert_with(Cache::new);
        cache.touch(now, bounds);
        let added = messages.iter().filter(|m| cache.insert(conversation, m, now).is_some()).count();
        cache.trim(bounds.max_len as usize);
        Ok(added)
    }

    async fn edit(&self, conversation: &ConversationId, id: &MessageId, content: &Value) -> Result<Option<Message>> {
        Ok(self
            .with_live(conversation, |cache, now| {
                let stored = cache.get_mut(id).filter(|s| !s.message.deleted)?;
                stored.message.content = content.clone();
                stored.message.edited_at = Some(now);
                Some(stored.message.clone())
            })
            .flatten())
    }

    async fn delete(&self, conversation: &ConversationId, id: &MessageId) -> Result<bool> {
        Ok(self
            .with_live(conversation, |cache, _| match cache.get_mut(id) {
                Some(stored) if !stored.message.deleted => {
                    stored.message.deleted = true;
                    stored.message.content = Value::Null;
                    true
                }
                _ => false,
            })
            .unwrap_or(false))
    }

    async fn delete_cache(&self, conversation: &ConversationId) -> Result<bool> {
        let live = self.with_live(conversation, |_, _| ()).is_some();
        lock(&self.state).remove(conversation);
        Ok(live)
    }

    async fn set_status(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        ids: &[MessageId],
        status: DeliveryStatus,
    ) -> Result<Vec<MessageId>> {
        Ok(self
            .with_live(conversation, |cache, _| {
                let mut moved = Vec::new();
                for id in ids {
                    let Some(stored) = cache.get_mut(id) else { continue };
                    if &stored.message.sender == user {
                        continue;
                    }
                    let before = stored.receipts.get(user).copied().unwrap_or(DeliveryStatus::Sent);
                    if status <= before {
                        continue;
                    }
                    stored.receipts.insert(user.clone(), status);
                    let m = &mut stored.message;
                    if before < DeliveryStatus::Delivered {
                        m.delivered_count += 1;
                    }
                    if status == DeliveryStatus::Read {
                        m.read_count += 1;
                    }
                    m.status = m.status.max(status);
                    if !moved.contains(id) {
                        moved.push(id.clone());
                    }
                }
                moved
            })
            .unwrap_or_default())
    }
}

impl Sweepable for MemoryMessages {
    fn sweep(&self, now: Timestamp) {
        lock(&self.state).retain(|_, cache| cache.expires_at > now);
    }
}
