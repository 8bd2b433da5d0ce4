//! [`Conversations`]: validation and limits over a [`ConversationStore`], and the end of live
//! access when membership shrinks.

use std::sync::Arc;

use super::{Streams, check_text, observe};
use crate::channel::ChannelName;
use crate::control;
use crate::conversation::{Conversation, ConversationKind, ConversationSpec, ConversationStore};
use crate::error::{Error, Result};
use crate::ids::{ConversationId, UserId};
use crate::limits::{MAX_BATCH, MAX_SHORT_TEXT_BYTES};

/// Default most members per conversation.
pub const DEFAULT_MAX_MEMBERS: u32 = 10_000;
/// Longest avatar URL.
pub(crate) const MAX_URL_BYTES: usize = 2048;

/// The conversations service.
#[derive(Clone)]
pub struct Conversations {
    store: Arc<dyn ConversationStore>,
    max_members: u32,
    /// Where access changes are announced to the subscribers of `chat:<id>`.
    streams: Streams,
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations").field("max_members", &self.max_members).finish_non_exhaustive()
    }
}

impl Conversations {
    /// Wraps `store`, allowing at most `max_members` members per conversation; access changes
    /// go to `streams`.
    pub fn new(store: Arc<dyn ConversationStore>, max_members: u32, streams: Streams) -> Self {
        Conversations { store, max_members, streams }
    }

    /// Tells the subscribers of the conversation's channel (`users`, or all) to check their
    /// membership again, on every node, before anything published after this change reaches
    /// them. Called after the change is stored; an error is the caller's to report.
    async fn access_changed(&self, id: &ConversationId, users: Option<&[UserId]>) -> Result<()> {
        let channel = ChannelName::chat(id.as_str())?;
        let events = control::access_changed(users).into_iter().map(|p| (channel.clone(), p)).collect();
        self.streams.publish_control_all(events).await
    }

    /// Creates or replaces a conversation. See [`ConversationStore::put`].
    pub async fn put(&self, id: &ConversationId, spec: ConversationSpec) -> Result<Conversation> {
        check_text("name", &spec.name, MAX_SHORT_TEXT_BYTES)?;
        check_text("avatar_url", &spec.avatar_url, MAX_URL_BYTES)?;
        if spec.members.len() > self.max_members as usize {
            return Err(Error::invalid("members", format!("at most {} members", self.max_members)));
        }
        if spec.kind == ConversationKind::Direct && distinct(&spec.members) > 2 {
            return Err(Error::invalid("members", "a direct conversation has at most 2 members"));
        }
        let conversation = observe("conversations", "put", self.store.put(id, &spec, self.max_members)).await?;
        // A replacement may drop members; every subscriber checks again.
        self.access_changed(id, None).await?;
        Ok(conversation)
    }

    /// The conversation, or `None`.
    pub async fn get(&self, id: &ConversationId) -> Result<Option<Conversation>> {
        observe("conversations", "get", self.store.get(id)).await
    }

    /// Deletes a conversation; its live subscriptions end.
    pub async fn delete(&self, id: &ConversationId) -> Result<bool> {
        let deleted = observe("conversations", "delete", self.store.delete(id)).await?;
        if deleted {
            self.access_changed(id, None).await?;
        }
        Ok(deleted)
    }

    /// Adds and removes members (each list at most 1000).
    pub async fn update_members(
        &self,
        id: &ConversationId,
        add: &[UserId],
        remove: &[UserId],
    ) -> Result<Option<Conversation>> {
        for (field, list) in [("add", add), ("remove", remove)] {
            if list.len() > MAX_BATCH {
                return Err(Error::invalid(field, format!("at most {MAX_BATCH} users per call")));
            }
        }
        let updated =
            observe("conversations", "members", self.store.update_members(id, add, remove, self.max_members)).await?;
        if updated.is_some() && !remove.is_empty() {
            self.access_changed(id, Some(remove)).await?;
        }
        Ok(updated)
    }

    /// Whether `user` belongs to the conversation.
    pub async fn is_member(&self, id: &ConversationId, user: &UserId) -> Result<bool> {
        observe("conversations", "is_member", self.store.is_member(id, user)).await
    }
}

fn distinct(users: &[UserId]) -> usize {
    users.iter().collect::<std::collections::HashSet<_>>().len()
}
