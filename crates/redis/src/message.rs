//! `RedisMessages`: each conversation's recent messages as an index ZSET and one hash under the
//! conversation's hash tag, receipts in one hash per message in the same slot; every operation is
//! one script.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;
use serde_json::Value;
use switchboard_core::message::{
    CacheBounds, DeliveryStatus, Message, MessageStore, NewMessage, PostOutcome, RecentMessages,
};
use switchboard_core::{ConversationId, Error, MessageId, Result, Timestamp, UserId};

use crate::connection::{Conn, lua};
use crate::keys::Keys;

/// A message script: common.lua, then message_common.lua, then the operation.
fn message_lua(body: &str) -> Script {
    lua(&format!("{}{body}", include_str!("../lua/message_common.lua")))
}

static POST: LazyLock<Script> = LazyLock::new(|| message_lua(include_str!("../lua/message_post.lua")));
static FILL: LazyLock<Script> = LazyLock::new(|| message_lua(include_str!("../lua/message_fill.lua")));
static RECENT: LazyLock<Script> = LazyLock::new(|| message_lua(include_str!("../lua/message_recent.lua")));
static EDIT: LazyLock<Script> = LazyLock::new(|| message_lua(include_str!("../lua/message_edit.lua")));
static DELETE: LazyLock<Script> = LazyLock::new(|| message_lua(include_str!("../lua/message_delete.lua")));
static DROP: LazyLock<Script> = LazyLock::new(|| message_lua(include_str!("../lua/message_drop.lua")));
static STATUS: LazyLock<Script> = LazyLock::new(|| message_lua(include_str!("../lua/message_status.lua")));

/// Message caches in Redis. See [`MessageStore`] for the contract.
pub(crate) struct RedisMessages {
    conn: Conn,
    keys: Keys,
}

impl RedisMessages {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisMessages { conn, keys }
    }

    fn invocation<'a>(&self, script: &'a Script, conversation: &ConversationId) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.key(self.keys.message_index(conversation));
        invocation.key(self.keys.messages(conversation));
        invocation
    }
}

fn millis(bounds: CacheBounds) -> u64 {
    bounds.max_age.as_millis().min(u64::MAX as u128) as u64
}

fn created_arg(m: &NewMessage) -> String {
    m.created_at.map(|t| t.as_millis().to_string()).unwrap_or_default()
}

/// A message from the flat reply of `message_load`.
fn parse(conversation: &ConversationId, f: &[String]) -> Result<Message> {
    let bad = || Error::Internal("unexpected message reply from redis".into());
    let [id, sender, content, created, edited, deleted, status, delivered, read] = f else { return Err(bad()) };
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let edited = num(edited)?;
    Ok(Message {
        id: MessageId::new(id.as_str()).map_err(|_| bad())?,
        conversation_id: conversation.clone(),
        sender: UserId::new(sender.as_str()).map_err(|_| bad())?,
        content: serde_json::from_str(content).map_err(|_| bad())?,
        created_at: Timestamp::from_millis(num(created)?),
        edited_at: (edited > 0).then(|| Timestamp::from_millis(edited)),
        deleted: deleted == "1",
        status: DeliveryStatus::from_rank(num(status)?),
        delivered_count: u32::try_from(num(delivered)?).map_err(|_| bad())?,
        read_count: u32::try_from(num(read)?).map_err(|_| bad())?,
    })
}

#[async_trait]
impl MessageStore for RedisMessages {
    async fn post(
        &self,
        conversation: &ConversationId,
        message: &NewMessage,
        bounds: CacheBounds,
    ) -> Result<PostOutcome> {
        let mut invocation = self.invocation(&POST, conversation);
        invocation
            .arg(self.keys.message_receipts_prefix(conversation))
            .arg(message.id.as_str())
            .arg(message.sender.as_str())
            .arg(message.content.to_string())
            .arg(created_arg(message))
            .arg(bounds.max_len)
            .arg(millis(bounds));
        let (duplicate, fields): (i64, Vec<String>) = self.conn.script("messages.post", &invocation).await?;
        Ok(PostOutcome { message: parse(conversation, &fields)?, duplicate: duplicate == 1 })
    }

    async fn recent(
        &self,
        conversation: &ConversationId,
        limit: usize,
        before: Option<&MessageId>,
    ) -> Result<RecentMessages> {
        let mut invocation = self.invocation(&RECENT, conversation);
        invocation
            .arg(self.keys.message_receipts_prefix(conversation))
            .arg(limit)
            .arg(before.map(MessageId::as_str).unwrap_or(""));
        let (cached, rows): (i64, Vec<Vec<String>>) = self.conn.script("messages.recent", &invocation).await?;
        let messages = rows.iter().map(|r| parse(conversation, r)).collect::<Result<_>>()?;
        Ok(RecentMessages { messages, cached: cached == 1 })
    }

    async fn fill(&self, conversation: &ConversationId, messages: &[NewMessage], bounds: CacheBounds) -> Result<usize> {
        let mut invocation = self.invocation(&FILL, conversation);
        invocation.arg(self.keys.message_receipts_prefix(conversation)).arg(bounds.max_len).arg(millis(bounds));
        for m in messages {
            invocation.arg(m.id.as_str()).arg(m.sender.as_str()).arg(m.content.to_string()).arg(created_arg(m));
        }
        self.conn.script("messages.fill", &invocation).await
    }

    async fn edit(&self, conversation: &ConversationId, id: &MessageId, content: &Value) -> Result<Option<Message>> {
        let mut invocation = self.invocation(&EDIT, conversation);
        invocation.arg(id.as_str()).arg(content.to_string());
        let fields: Option<Vec<String>> = self.conn.script("messages.edit", &invocation).await?;
        fields.map(|f| parse(conversation, &f)).transpose()
    }

    async fn delete(&self, conversation: &ConversationId, id: &MessageId) -> Result<bool> {
        let mut invocation = self.invocation(&DELETE, conversation);
        invocation.arg(id.as_str());
        let changed: i64 = self.conn.script("messages.delete", &invocation).await?;
        Ok(changed == 1)
    }

    async fn delete_cache(&self, conversation: &ConversationId) -> Result<bool> {
        let mut invocation = self.invocation(&DROP, conversation);
        invocation.arg(self.keys.message_receipts_prefix(conversation));
        let cached: i64 = self.conn.script("messages.delete_cache", &invocation).await?;
        Ok(cached == 1)
    }

    async fn set_status(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        ids: &[MessageId],
        status: DeliveryStatus,
    ) -> Result<Vec<MessageId>> {
        let mut invocation = self.invocation(&STATUS, conversation);
        invocation.arg(self.keys.message_receipts_prefix(conversation)).arg(user.as_str()).arg(status.rank());
        for id in ids {
            invocation.arg(id.as_str());
        }
        let moved: Vec<String> = self.conn.script("messages.status", &invocation).await?;
        Ok(moved.into_iter().filter_map(|id| MessageId::new(id).ok()).collect())
    }
}
