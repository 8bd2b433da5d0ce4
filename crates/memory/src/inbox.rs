//! `MemoryInbox`: each user's conversation list and unread totals under one mutex, so a user's
//! entries and totals always change together.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard_core::message::{
    ImportOutcome, InboxChange, InboxFilter, InboxPage, InboxPost, InboxSettings, InboxStore, ReadOutcome, UnreadSet,
    UnreadTotals, UserConversation, page_of, parse_cursor,
};
use switchboard_core::{ConversationId, MessageId, Result, Timestamp, UserId};

use crate::journal::{self, Durable, Journal, Sink, Ticket, store};
use crate::{codec, lock};

/// Most message ids an entry remembers as counted (beyond it, posts still count but a retried
/// one would count twice).
const MAX_COUNTED_IDS: usize = 1000;

#[derive(Default)]
pub(crate) struct MemoryInbox {
    state: Mutex<HashMap<UserId, Inbox>>,
    journal: Journal,
}

/// A journal record is the list of one operation's changes, each an entry's new state (or its
/// removal) with its user's new totals, or a list marked loaded.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change<'a> {
    Put {
        user: Cow<'a, UserId>,
        view: Cow<'a, UserConversation>,
        counted: Vec<Cow<'a, MessageId>>,
        totals: UnreadTotals,
    },
    Remove {
        user: Cow<'a, UserId>,
        conversation: Cow<'a, ConversationId>,
        totals: UnreadTotals,
    },
    Loaded {
        user: Cow<'a, UserId>,
    },
}

impl<'a> Change<'a> {
    fn put(user: &'a UserId, entry: &'a Entry, totals: UnreadTotals) -> Self {
        Change::Put {
            user: Cow::Borrowed(user),
            view: Cow::Borrowed(&entry.view),
            counted: entry.counted.iter().map(Cow::Borrowed).collect(),
            totals,
        }
    }
}

impl MemoryInbox {
    pub(crate) fn new(journal: Journal) -> Self {
        MemoryInbox { state: Mutex::default(), journal }
    }

    /// Appends the record of one entry's new state.
    fn log_entry(&self, user: &UserId, conversation: &ConversationId, inbox: &Inbox) -> Ticket {
        let changes = inbox.entries.get(conversation).map(|entry| Change::put(user, entry, inbox.totals));
        self.journal.append(store::INBOX, &Vec::from_iter(changes))
    }
}

impl Durable for MemoryInbox {
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()> {
        journal::restore_from(self, Self::new(Journal::default()), records, |s| &s.state)
    }

    fn replay(&self, record: &[u8]) -> serde_json::Result<()> {
        let changes: Vec<Change<'_>> = match codec::Reader::of(record) {
            Some((POST, r)) => {
                let (post, members) = read_post(r)?;
                apply_post(&mut lock(&self.state), &members, &post);
                return Ok(());
            }
            Some(_) => return Err(codec::error("unknown inbox record")),
            None => serde_json::from_slice(record)?,
        };
        let mut state = lock(&self.state);
        for change in changes {
            match change {
                Change::Put { user, view, counted, totals } => {
                    let inbox = state.entry(user.into_owned()).or_default();
                    let view = view.into_owned();
                    let counted = counted.into_iter().map(Cow::into_owned).collect();
                    inbox.entries.insert(view.conversation_id.clone(), Entry { view, counted });
                    inbox.totals = totals;
                }
                Change::Remove { user, conversation, totals } => {
                    let inbox = state.entry(user.into_owned()).or_default();
                    inbox.entries.remove(conversation.as_ref());
                    inbox.totals = totals;
                }
                Change::Loaded { user } => state.entry(user.into_owned()).or_default().loaded = true,
            }
        }
        Ok(())
    }

    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()> {
        let state = lock(&self.state);
        sink.begin();
        for (user, inbox) in state.iter() {
            if inbox.loaded {
                sink.record(&[Change::Loaded { user: Cow::Borrowed(user) }])?;
            }
            for entry in inbox.entries.values() {
                sink.record(&[Change::put(user, entry, inbox.totals)])?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Inbox {
    entries: HashMap<ConversationId, Entry>,
    totals: UnreadTotals,
    /// Imported from the app's database at least once.
    loaded: bool,
}

struct Entry {
    view: UserConversation,
    /// Message ids counted in `unread` since the last read.
    counted: HashSet<MessageId>,
}

/// The kind byte of a binary post record: the conversation, message id, sender, preview and time
/// of an [`InboxPost`], then its members up to the record's end (see [`apply_post`]).
const POST: u8 = 1;

/// Counts `post` in each member's entry (creating it), as `record_post` and its replay do.
fn apply_post(state: &mut HashMap<UserId, Inbox>, members: &[UserId], post: &InboxPost) -> Vec<InboxChange> {
    let mut changes = Vec::with_capacity(members.len());
    for user in members {
        let inbox = state.entry(user.clone()).or_default();
        let entry = inbox.entries.entry(post.conversation_id.clone()).or_insert_with(|| Entry {
            view: UserConversation::new(post.conversation_id.clone(), post.at),
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
    changes
}

/// Reads a [`POST`] record back: the post and its members.
fn read_post(mut r: codec::Reader<'_>) -> serde_json::Result<(InboxPost, Vec<UserId>)> {
    let post = InboxPost {
        conversation_id: r.parse("conversation id")?,
        message_id: r.parse("message id")?,
        sender: r.parse("user id")?,
        preview: r.str()?.to_owned(),
        at: Timestamp::from_millis(r.i64()?),
    };
    let mut members = Vec::new();
    while !r.is_empty() {
        members.push(r.parse("user id")?);
    }
    Ok((post, members))
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
        self.journal.writable()?;
        let (changes, written) = {
            let mut state = lock(&self.state);
            let changes = apply_post(&mut state, members, post);
            // The post itself, not the entries it changed: replay runs the same update, so the
            // record stays the size of the post however many ids the entries remember.
            let written = self.journal.append_binary(store::INBOX, POST, |w| {
                let p = post;
                w.str(p.conversation_id.as_str()).str(p.message_id.as_str()).str(p.sender.as_str());
                w.str(&p.preview).i64(p.at.as_millis());
                for user in members {
                    w.str(user.as_str());
                }
            });
            (changes, written)
        };
        written.wait().await?;
        Ok(changes)
    }

    async fn list(&self, user: &UserId, filter: InboxFilter, cursor: Option<&str>, limit: usize) -> Result<InboxPage> {
        let offset = parse_cursor(cursor)?;
        let state = lock(&self.state);
        let Some(inbox) = state.get(user) else { return Ok(page_of(Vec::new(), offset, limit, false)) };
        let entries = inbox.entries.values().map(|e| e.view.clone()).filter(|v| filter.admits(v)).collect();
        Ok(page_of(entries, offset, limit, inbox.loaded))
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
        self.journal.writable()?;
        let (view, written) = {
            let mut state = lock(&self.state);
            let Some(inbox) = state.get_mut(user) else { return Ok(None) };
            let Some(view) = Self::apply_settings(inbox, conversation, settings) else { return Ok(None) };
            (view, self.log_entry(user, conversation, inbox))
        };
        written.wait().await?;
        Ok(Some(view))
    }

    async fn remove(&self, user: &UserId, conversation: &ConversationId) -> Result<bool> {
        self.journal.writable()?;
        let written = {
            let mut state = lock(&self.state);
            let Some(inbox) = state.get_mut(user) else { return Ok(false) };
            let Some(entry) = inbox.entries.remove(conversation) else { return Ok(false) };
            inbox.add_unread(entry.view.muted, -(entry.view.unread as i64));
            let change = Change::Remove {
                user: Cow::Borrowed(user),
                conversation: Cow::Borrowed(conversation),
                totals: inbox.totals,
            };
            self.journal.append(store::INBOX, &[change])
        };
        written.wait().await?;
        Ok(true)
    }

    async fn read(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        _message: &MessageId,
    ) -> Result<Option<ReadOutcome>> {
        self.journal.writable()?;
        let (outcome, written) = {
            let mut state = lock(&self.state);
            let Some(inbox) = state.get_mut(user) else { return Ok(None) };
            let Some(entry) = inbox.entries.get_mut(conversation) else { return Ok(None) };
            let cleared = entry.view.unread;
            let muted = entry.view.muted;
            entry.view.unread = 0;
            entry.counted.clear();
            inbox.add_unread(muted, -(cleared as i64));
            (ReadOutcome { cleared, totals: inbox.totals }, self.log_entry(user, conversation, inbox))
        };
        written.wait().await?;
        Ok(Some(outcome))
    }

    async fn totals(&self, user: &UserId) -> Result<UnreadTotals> {
        Ok(lock(&self.state).get(user).map(|i| i.totals).unwrap_or_default())
    }

    async fn import(&self, user: &UserId, entries: &[UserConversation]) -> Result<ImportOutcome> {
        self.journal.writable()?;
        let (outcome, written) = {
            let mut state = lock(&self.state);
            let inbox = state.entry(user.clone()).or_default();
            let mut added = Vec::new();
            for imported in entries {
                if inbox.entries.contains_key(&imported.conversation_id) {
                    continue;
                }
                inbox.add_unread(imported.muted, imported.unread as i64);
                inbox.entries.insert(
                    imported.conversation_id.clone(),
                    Entry { view: imported.clone(), counted: HashSet::new() },
                );
                added.push(&imported.conversation_id);
            }
            inbox.loaded = true;
            let mut records = vec![Change::Loaded { user: Cow::Borrowed(user) }];
            records.extend(added.iter().filter_map(|c| Some(Change::put(user, inbox.entries.get(*c)?, inbox.totals))));
            let written = self.journal.append(store::INBOX, &records);
            (ImportOutcome { added: added.len(), totals: inbox.totals }, written)
        };
        written.wait().await?;
        Ok(outcome)
    }

    async fn set_unread(&self, user: &UserId, conversation: &ConversationId, unread: u64) -> Result<Option<UnreadSet>> {
        self.journal.writable()?;
        let (set, written) = {
            let mut state = lock(&self.state);
            let Some(inbox) = state.get_mut(user) else { return Ok(None) };
            let Some(entry) = inbox.entries.get_mut(conversation) else { return Ok(None) };
            let delta = unread as i64 - entry.view.unread as i64;
            entry.view.unread = unread;
            if unread == 0 {
                entry.counted.clear();
            }
            let (view, muted) = (entry.view.clone(), entry.view.muted);
            inbox.add_unread(muted, delta);
            (UnreadSet { entry: view, totals: inbox.totals }, self.log_entry(user, conversation, inbox))
        };
        written.wait().await?;
        Ok(Some(set))
    }
}

impl MemoryInbox {
    /// Applies `settings` to the entry; its new view, or `None` if there is no entry.
    fn apply_settings(
        inbox: &mut Inbox,
        conversation: &ConversationId,
        settings: InboxSettings,
    ) -> Option<UserConversation> {
        let entry = inbox.entries.get_mut(conversation)?;
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
        Some(view)
    }
}
