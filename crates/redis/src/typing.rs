//! `RedisTyping`: each conversation's typing entries in a ZSET under the conversation's hash
//! tag, each operation one script; expiries are found through a due set in its own slot.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, ScriptInvocation};
use switchboard_core::{ConversationId, Error, Result, TypingEvent, TypingStart, TypingStore, UserId};

use crate::connection::{Conn, lua};
use crate::keys::Keys;
use crate::sweep::{DueSet, Next};

static START: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/typing_start.lua")));
static STOP: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/typing_stop.lua")));
static USERS: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/typing_users.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/typing_settle.lua")));

/// Typing indicators in Redis. See [`TypingStore`] for the contract.
///
/// Per conversation (tag `{<conversation id>}`): a ZSET user -> expiry (server clock) and a hash
/// of throttle times. The due set (`{typing}` slot) holds every conversation with entries at a
/// time no later than its earliest expiry. A start updates it (`ZADD LT`, second round trip)
/// only when its entry may be the earliest or it emits an event (at most once per throttle
/// window per user); stop never needs to. A sweep claims due conversations, removes their
/// expired entries with a per-conversation script (each entry is removed there or by stop, so
/// each stop is reported once), and reschedules them at their next expiry.
pub(crate) struct RedisTyping {
    conn: Conn,
    keys: Keys,
    due: DueSet,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisTyping {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        let due = DueSet { due: keys.typing_due(), claimed: keys.typing_claimed(), index: None };
        RedisTyping { conn, keys, due }
    }

    fn conversation_keys<'a>(&self, script: &'a Script, conversation: &ConversationId) -> ScriptInvocation<'a> {
        let mut invocation = script.key(self.keys.typing(conversation));
        invocation.key(self.keys.typing_throttle(conversation));
        invocation
    }
}

fn user_id(id: String) -> Result<UserId> {
    UserId::new(id).map_err(|_| Error::Internal("redis: a typing set holds a malformed user id".into()))
}

#[async_trait]
impl TypingStore for RedisTyping {
    async fn start(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        ttl: Duration,
        throttle: Duration,
    ) -> Result<TypingStart> {
        let mut invocation = self.conversation_keys(&START, conversation);
        invocation.arg(user.as_str()).arg(millis(ttl)).arg(millis(throttle));
        let (first, due_at): (i64, i64) = self.conn.script("typing.start", &invocation).await?;
        if due_at > 0 {
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(&self.due.due).arg("LT").arg(due_at).arg(conversation.as_str());
            self.conn.cmd::<()>("typing.start.due", &cmd).await?;
        }
        Ok(TypingStart { first: first == 1 })
    }

    async fn stop(&self, conversation: &ConversationId, user: &UserId) -> Result<bool> {
        let mut invocation = self.conversation_keys(&STOP, conversation);
        invocation.arg(user.as_str());
        let removed: i64 = self.conn.script("typing.stop", &invocation).await?;
        Ok(removed == 1)
    }

    async fn typing_users(&self, conversation: &ConversationId) -> Result<Vec<UserId>> {
        let invocation = USERS.key(self.keys.typing(conversation));
        let ids: Vec<String> = self.conn.script("typing.users", &invocation).await?;
        let mut users = ids.into_iter().map(user_id).collect::<Result<Vec<_>>>()?;
        users.sort();
        Ok(users)
    }

    async fn sweep(&self, limit: usize) -> Result<Vec<TypingEvent>> {
        let claimed = self.due.claim(&self.conn, "typing.sweep.claim", limit).await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let conversations: Vec<(String, Option<ConversationId>)> = claimed
            .into_iter()
            .map(|m| {
                let id = ConversationId::new(m.clone()).ok();
                (m, id)
            })
            .collect();
        let invocations: Vec<ScriptInvocation<'_>> = conversations
            .iter()
            .filter_map(|(_, id)| id.as_ref())
            .map(|c| self.conversation_keys(&SETTLE, c))
            .collect();
        let replies: Vec<(i64, Vec<String>)> =
            self.conn.script_batch("typing.sweep.settle", &SETTLE, &invocations).await?;
        let mut replies = replies.into_iter();
        let mut settled = Vec::with_capacity(conversations.len());
        let mut events = Vec::new();
        for (member, id) in conversations {
            let Some(conversation) = id else {
                settled.push((member, Next::Done));
                continue;
            };
            let (next, mut expired) = replies
                .next()
                .ok_or_else(|| Error::Internal("redis: typing sweep: a settle reply is missing".into()))?;
            settled.push((member, if next >= 0 { Next::At(next) } else { Next::Done }));
            expired.sort();
            for user in expired {
                events.push(TypingEvent {
                    conversation_id: conversation.clone(),
                    user_id: user_id(user)?,
                    typing: false,
                });
            }
        }
        self.due.reschedule(&self.conn, "typing.sweep.reschedule", &settled).await?;
        Ok(events)
    }
}
