//! `MemoryMessages`: each conversation's recent messages, ordered by `(created_at, id)`, with
//! per-recipient receipts, under one mutex; expiry checked on every access and by the sweeper.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;
use switchboard_core::message::{
    CacheBounds, DeliveryStatus, Message, MessageStore, NewMessage, PostOutcome, RecentMessages,
};
use switchboard_core::{ConversationId, MessageId, Result, Timestamp, UserId};

use crate::journal::{self, Durable, Journal, Sink, Ticket, store};
use crate::sweeper::Sweepable;
use crate::{codec, lock};

#[derive(Default)]
pub(crate) struct MemoryMessages {
    state: Mutex<HashMap<ConversationId, Cache>>,
    journal: Journal,
}

/// A journal record is the list of one operation's changes.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change<'a> {
    /// A message as it now stands, with its receipts, the cache's expiry and its count bound.
    Put {
        conversation: Cow<'a, ConversationId>,
        message: Cow<'a, Message>,
        receipts: Vec<(Cow<'a, UserId>, DeliveryStatus)>,
        expires_at: Timestamp,
        max_len: u32,
    },
    /// The cache's new expiry.
    Touch { conversation: Cow<'a, ConversationId>, expires_at: Timestamp },
    /// The whole cache dropped.
    Dropped(Cow<'a, ConversationId>),
}

impl<'a> Change<'a> {
    fn put(conversation: &'a ConversationId, cache: &'a Cache, id: &MessageId, max_len: u32) -> Option<Self> {
        let created = *cache.index.get(id)?;
        let stored = cache.messages.get(&(created, id.clone()))?;
        Some(Change::Put {
            conversation: Cow::Borrowed(conversation),
            message: Cow::Borrowed(&stored.message),
            receipts: stored.receipts.iter().map(|(u, s)| (Cow::Borrowed(u), *s)).collect(),
            expires_at: cache.expires_at,
            max_len,
        })
    }
}

/// The kind byte of a binary record of one message as it now stands, as [`Change::Put`] holds
/// it: the conversation, the message (content as JSON text), its receipts, the cache's expiry and
/// its count bound.
const PUT: u8 = 1;

fn status_of(rank: u8) -> serde_json::Result<DeliveryStatus> {
    [DeliveryStatus::Sent, DeliveryStatus::Delivered, DeliveryStatus::Read]
        .into_iter()
        .find(|s| s.rank() == rank)
        .ok_or_else(|| codec::error("unknown delivery status"))
}

/// Writes the [`PUT`] record of `stored` in `cache`.
fn write_put(w: &mut codec::Writer<'_>, conversation: &ConversationId, cache: &Cache, stored: &Stored, max_len: u32) {
    let m = &stored.message;
    w.str(conversation.as_str()).str(m.id.as_str()).str(m.conversation_id.as_str()).str(m.sender.as_str());
    w.json(&m.content).i64(m.created_at.as_millis()).opt_i64(m.edited_at.map(Timestamp::as_millis));
    w.u8(u8::from(m.deleted)).u8(m.status.rank()).u64(u64::from(m.delivered_count)).u64(u64::from(m.read_count));
    w.u64(stored.receipts.len() as u64);
    for (user, status) in &stored.receipts {
        w.str(user.as_str()).u8(status.rank());
    }
    w.i64(cache.expires_at.as_millis()).u64(u64::from(max_len));
}

/// Reads a [`PUT`] record back.
fn read_put(mut r: codec::Reader<'_>) -> serde_json::Result<Change<'static>> {
    let count = |v: u64| u32::try_from(v).map_err(|_| codec::error("count out of range"));
    let conversation = Cow::Owned(r.parse("conversation id")?);
    let (id, conversation_id, sender) = (r.parse("message id")?, r.parse("conversation id")?, r.parse("user id")?);
    let (content, created_at) = (r.json()?, Timestamp::from_millis(r.i64()?));
    let edited_at = r.opt_i64()?.map(Timestamp::from_millis);
    let (deleted, status) = (r.u8()? != 0, status_of(r.u8()?)?);
    let (delivered_count, read_count) = (count(r.u64()?)?, count(r.u64()?)?);
    let message = Message {
        id,
        conversation_id,
        sender,
        content,
        created_at,
        edited_at,
        deleted,
        status,
        delivered_count,
        read_count,
    };
    let mut receipts = Vec::new();
    for _ in 0..r.u64()? {
        receipts.push((Cow::Owned(r.parse("user id")?), status_of(r.u8()?)?));
    }
    let expires_at = Timestamp::from_millis(r.i64()?);
    let max_len = count(r.u64()?)?;
    r.end()?;
    Ok(Change::Put { conversation, message: Cow::Owned(message), receipts, expires_at, max_len })
}

impl MemoryMessages {
    pub(crate) fn new(journal: Journal) -> Self {
        MemoryMessages { state: Mutex::default(), journal }
    }

    /// Appends the changed messages `ids` of the conversation's cache (no bound on its count).
    fn log_changed(&self, conversation: &ConversationId, cache: &Cache, ids: &[MessageId]) -> Option<Ticket> {
        let changes: Vec<Change<'_>> =
            ids.iter().filter_map(|id| Change::put(conversation, cache, id, u32::MAX)).collect();
        (!changes.is_empty()).then(|| self.journal.append(store::MESSAGES, &changes))
    }
}

async fn settle(written: Option<Ticket>) -> Result<()> {
    match written {
        Some(written) => written.wait().await,
        None => Ok(()),
    }
}

impl Durable for MemoryMessages {
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()> {
        journal::restore_from(self, Self::new(Journal::default()), records, |s| &s.state)
    }

    fn replay(&self, record: &[u8]) -> serde_json::Result<()> {
        let changes: Vec<Change<'_>> = match codec::Reader::of(record) {
            Some((PUT, r)) => vec![read_put(r)?],
            Some(_) => return Err(codec::error("unknown message record")),
            None => serde_json::from_slice(record)?,
        };
        let mut state = lock(&self.state);
        for change in changes {
            match change {
                Change::Put { conversation, message, receipts, expires_at, max_len } => {
                    let cache = state.entry(conversation.into_owned()).or_insert_with(Cache::new);
                    cache.expires_at = expires_at;
                    let message = message.into_owned();
                    if let Some(created) = cache.index.remove(&message.id) {
                        cache.messages.remove(&(created, message.id.clone()));
                    }
                    let created = message.created_at.as_millis();
                    cache.index.insert(message.id.clone(), created);
                    let receipts = receipts.into_iter().map(|(u, s)| (u.into_owned(), s)).collect();
                    cache.messages.insert((created, message.id.clone()), Stored { message, receipts });
                    cache.trim(max_len as usize);
                }
                Change::Touch { conversation, expires_at } => {
                    state.entry(conversation.into_owned()).or_insert_with(Cache::new).expires_at = expires_at;
                }
                Change::Dropped(conversation) => drop(state.remove(conversation.as_ref())),
            }
        }
        Ok(())
    }

    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()> {
        let state = lock(&self.state);
        sink.begin();
        for (conversation, cache) in state.iter() {
            let touch = Change::Touch { conversation: Cow::Borrowed(conversation), expires_at: cache.expires_at };
            sink.record(&[touch])?;
            for stored in cache.messages.values() {
                sink.record_binary(PUT, |w| write_put(w, conversation, cache, stored, u32::MAX));
            }
        }
        Ok(())
    }
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
        self.journal.writable()?;
        let now = Timestamp::now();
        let (outcome, written) = {
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
            let stored = match outcome.duplicate {
                false => cache.index.get(&message.id).and_then(|c| cache.messages.get(&(*c, message.id.clone()))),
                true => None,
            };
            let written = match stored {
                Some(stored) => self
                    .journal
                    .append_binary(store::MESSAGES, PUT, |w| write_put(w, conversation, cache, stored, bounds.max_len)),
                None => {
                    let touch =
                        Change::Touch { conversation: Cow::Borrowed(conversation), expires_at: cache.expires_at };
                    self.journal.append(store::MESSAGES, &[touch])
                }
            };
            (outcome, written)
        };
        written.wait().await?;
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
        self.journal.writable()?;
        let now = Timestamp::now();
        let (added, written) = {
            let mut state = lock(&self.state);
            if state.get(conversation).is_some_and(|c| c.expires_at <= now) {
                state.remove(conversation);
            }
            let cache = state.entry(conversation.clone()).or_insert_with(Cache::new);
            cache.touch(now, bounds);
            let added: Vec<MessageId> = messages
                .iter()
                .filter(|m| cache.insert(conversation, m, now).is_some())
                .map(|m| m.id.clone())
                .collect();
            cache.trim(bounds.max_len as usize);
            let mut changes =
                vec![Change::Touch { conversation: Cow::Borrowed(conversation), expires_at: cache.expires_at }];
            changes.extend(added.iter().filter_map(|id| Change::put(conversation, cache, id, bounds.max_len)));
            (added.len(), self.journal.append(store::MESSAGES, &changes))
        };
        written.wait().await?;
        Ok(added)
    }

    async fn edit(&self, conversation: &ConversationId, id: &MessageId, content: &Value) -> Result<Option<Message>> {
        self.journal.writable()?;
        let edited = self.with_live(conversation, |cache, now| {
            let stored = cache.get_mut(id).filter(|s| !s.message.deleted)?;
            stored.message.content = content.clone();
            stored.message.edited_at = Some(now);
            let message = stored.message.clone();
            Some((message, self.log_changed(conversation, cache, std::slice::from_ref(id))))
        });
        let Some((message, written)) = edited.flatten() else { return Ok(None) };
        settle(written).await?;
        Ok(Some(message))
    }

    async fn delete(&self, conversation: &ConversationId, id: &MessageId) -> Result<bool> {
        self.journal.writable()?;
        let deleted = self.with_live(conversation, |cache, _| match cache.get_mut(id) {
            Some(stored) if !stored.message.deleted => {
                stored.message.deleted = true;
                stored.message.content = Value::Null;
                Some(self.log_changed(conversation, cache, std::slice::from_ref(id)))
            }
            _ => None,
        });
        let Some(written) = deleted.flatten() else { return Ok(false) };
        settle(written).await?;
        Ok(true)
    }

    async fn delete_cache(&self, conversation: &ConversationId) -> Result<bool> {
        self.journal.writable()?;
        let live = self.with_live(conversation, |_, _| ()).is_some();
        let written = {
            let mut state = lock(&self.state);
            state
                .remove(conversation)
                .map(|_| self.journal.append(store::MESSAGES, &[Change::Dropped(Cow::Borrowed(conversation))]))
        };
        settle(written).await?;
        Ok(live)
    }

    async fn set_status(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        ids: &[MessageId],
        status: DeliveryStatus,
    ) -> Result<Vec<MessageId>> {
        self.journal.writable()?;
        let (moved, written) = self
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
                let written = self.log_changed(conversation, cache, &moved);
                (moved, written)
            })
            .unwrap_or_default();
        settle(written).await?;
        Ok(moved)
    }
}

impl Sweepable for MemoryMessages {
    fn sweep(&self, now: Timestamp) {
        lock(&self.state).retain(|_, cache| cache.expires_at > now);
    }
}
