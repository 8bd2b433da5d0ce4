//! `MemoryTyping`: each conversation's typing entries under one mutex, with a [`Schedule`] of
//! conversations whose earliest entry is due to expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::{ConversationId, Result, Timestamp, TypingEvent, TypingStart, TypingStore, UserId};

use crate::lock;
use crate::schedule::Schedule;

/// Typing indicators in memory. See [`TypingStore`] for the contract.
///
/// A conversation is scheduled no later than its earliest entry's expiry; a conversation with no
/// entries is dropped (with its throttle times: the next start is a transition anyway).
#[derive(Default)]
pub(crate) struct MemoryTyping {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    conversations: HashMap<ConversationId, Conversation>,
    due: Schedule<ConversationId>,
}

#[derive(Default)]
struct Conversation {
    /// User -> entry expiry.
    typing: HashMap<UserId, Timestamp>,
    /// User -> time of the last start that returned `first`.
    last_event: HashMap<UserId, Timestamp>,
}

#[async_trait]
impl TypingStore for MemoryTyping {
    async fn start(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        ttl: Duration,
        throttle: Duration,
    ) -> Result<TypingStart> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let c = state.conversations.entry(conversation.clone()).or_default();
        let was_typing = c.typing.get(user).is_some_and(|at| *at > now);
        let expires = now.plus(ttl);
        c.typing.insert(user.clone(), expires);
        let throttled = c.last_event.get(user).is_some_and(|at| at.plus(throttle) > now);
        let first = !was_typing || !throttled;
        if first {
            c.last_event.insert(user.clone(), now);
        }
        state.due.lower(conversation, expires);
        Ok(TypingStart { first })
    }

    async fn stop(&self, conversation: &ConversationId, user: &UserId) -> Result<bool> {
        let mut state = lock(&self.state);
        let Some(c) = state.conversations.get_mut(conversation) else { return Ok(false) };
        let was = c.typing.remove(user).is_some();
        if c.typing.is_empty() {
            state.conversations.remove(conversation);
            state.due.remove(conversation);
        }
        Ok(was)
    }

    async fn typing_users(&self, conversation: &ConversationId) -> Result<Vec<UserId>> {
        let now = Timestamp::now();
        let state = lock(&self.state);
        let mut users: Vec<UserId> = state
            .conversations
            .get(conversation)
            .map(|c| c.typing.iter().filter(|(_, at)| **at > now).map(|(u, _)| u.clone()).collect())
            .unwrap_or_default();
        users.sort();
        Ok(users)
    }

    async fn sweep(&self, limit: usize) -> Result<Vec<TypingEvent>> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let mut events = Vec::new();
        for conversation in state.due.take_due(now, limit) {
            let Some(c) = state.conversations.get_mut(&conversation) else { continue };
            let mut expired: Vec<UserId> =
                c.typing.iter().filter(|(_, at)| **at <= now).map(|(u, _)| u.clone()).collect();
            expired.sort();
            for user in &expired {
                c.typing.remove(user);
                c.last_event.remove(user);
            }
            match c.typing.values().min().copied() {
                Some(next) => state.due.set(&conversation, next),
                None => {
                    state.conversations.remove(&conversation);
                }
            }
            events.extend(expired.into_iter().map(|user_id| TypingEvent {
                conversation_id: conversation.clone(),
                user_id,
                typing: false,
            }));
        }
        Ok(events)
    }
}

/// How long an expired entry waits for the typing service's sweep to report it before the
/// engine's own sweeper drops it unreported (only when no service sweeps: keeps memory bounded).
const UNREPORTED_GRACE: Duration = Duration::from_secs(300);

impl crate::sweeper::Sweepable for MemoryTyping {
    fn sweep(&self, now: Timestamp) {
        let mut state = lock(&self.state);
        let State { conversations, due } = &mut *state;
        conversations.retain(|id, c| {
            c.typing.retain(|_, at| at.plus(UNREPORTED_GRACE) > now);
            let keep = !c.typing.is_empty();
            if !keep {
                due.remove(id);
            }
            keep
        });
    }
}
