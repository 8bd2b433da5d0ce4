//! `MemoryConversations`: conversations with their member sets under one mutex.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard_core::conversation::{Conversation, ConversationKind, ConversationSpec, ConversationStore};
use switchboard_core::{ConversationId, Error, Result, Timestamp, UserId};

use crate::journal::{self, Durable, Journal, Sink, store};
use crate::lock;

#[derive(Default)]
pub(crate) struct MemoryConversations {
    state: Mutex<HashMap<ConversationId, Stored>>,
    journal: Journal,
}

/// A journal record: a conversation as it now stands, or its deletion.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change<'a> {
    Put(Cow<'a, Conversation>),
    Delete(Cow<'a, ConversationId>),
}

impl MemoryConversations {
    pub(crate) fn new(journal: Journal) -> Self {
        MemoryConversations { state: Mutex::default(), journal }
    }
}

impl Durable for MemoryConversations {
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()> {
        journal::restore_from(self, Self::new(Journal::default()), records, |s| &s.state)
    }

    fn replay(&self, record: &[u8]) -> serde_json::Result<()> {
        let mut state = lock(&self.state);
        match serde_json::from_slice(record)? {
            Change::Put(c) => {
                let c = c.into_owned();
                let stored = Stored {
                    kind: c.kind,
                    name: c.name,
                    avatar_url: c.avatar_url,
                    members: c.members.into_iter().collect(),
                    created_at: c.created_at,
                    updated_at: c.updated_at,
                };
                state.insert(c.id, stored);
            }
            Change::Delete(id) => drop(state.remove(id.as_ref())),
        }
        Ok(())
    }

    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()> {
        let state = lock(&self.state);
        sink.begin();
        for (id, stored) in state.iter() {
            sink.record(&Change::Put(Cow::Owned(stored.view(id))))?;
        }
        Ok(())
    }
}

struct Stored {
    kind: ConversationKind,
    name: Option<String>,
    avatar_url: Option<String>,
    members: BTreeSet<UserId>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl Stored {
    fn view(&self, id: &ConversationId) -> Conversation {
        Conversation {
            id: id.clone(),
            kind: self.kind,
            name: self.name.clone(),
            avatar_url: self.avatar_url.clone(),
            members: self.members.iter().cloned().collect(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn check_size(kind: ConversationKind, members: usize, max_members: u32) -> Result<()> {
    if members > max_members as usize {
        return Err(Error::Conflict(format!("a conversation has at most {max_members} members")));
    }
    if kind == ConversationKind::Direct && members > 2 {
        return Err(Error::Conflict("a direct conversation has at most 2 members".into()));
    }
    Ok(())
}

#[async_trait]
impl ConversationStore for MemoryConversations {
    async fn put(&self, id: &ConversationId, spec: &ConversationSpec, max_members: u32) -> Result<Conversation> {
        self.journal.writable()?;
        let members: BTreeSet<UserId> = spec.members.iter().cloned().collect();
        check_size(spec.kind, members.len(), max_members)?;
        let now = Timestamp::now();
        let (view, written) = {
            let mut state = lock(&self.state);
            let created_at = state.get(id).map_or(now, |c| c.created_at);
            let stored = Stored {
                kind: spec.kind,
                name: spec.name.clone(),
                avatar_url: spec.avatar_url.clone(),
                members,
                created_at,
                updated_at: now,
            };
            let view = stored.view(id);
            state.insert(id.clone(), stored);
            let written = self.journal.append(store::CONVERSATIONS, &Change::Put(Cow::Borrowed(&view)));
            (view, written)
        };
        written.wait().await?;
        Ok(view)
    }

    async fn get(&self, id: &ConversationId) -> Result<Option<Conversation>> {
        Ok(lock(&self.state).get(id).map(|c| c.view(id)))
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        self.journal.writable()?;
        let written = {
            let mut state = lock(&self.state);
            if state.remove(id).is_none() {
                return Ok(false);
            }
            self.journal.append(store::CONVERSATIONS, &Change::Delete(Cow::Borrowed(id)))
        };
        written.wait().await?;
        Ok(true)
    }

    async fn update_members(
        &self,
        id: &ConversationId,
        add: &[UserId],
        remove: &[UserId],
        max_members: u32,
    ) -> Result<Option<Conversation>> {
        self.journal.writable()?;
        let (view, written) = {
            let mut state = lock(&self.state);
            let Some(stored) = state.get_mut(id) else { return Ok(None) };
            let mut members = stored.members.clone();
            members.extend(add.iter().cloned());
            for user in remove {
                members.remove(user);
            }
            check_size(stored.kind, members.len(), max_members)?;
            stored.members = members;
            stored.updated_at = Timestamp::now();
            let view = stored.view(id);
            let written = self.journal.append(store::CONVERSATIONS, &Change::Put(Cow::Borrowed(&view)));
            (view, written)
        };
        written.wait().await?;
        Ok(Some(view))
    }

    async fn is_member(&self, id: &ConversationId, user: &UserId) -> Result<bool> {
        Ok(lock(&self.state).get(id).is_some_and(|c| c.members.contains(user)))
    }
}
