//! `RedisConversations`: a hash of metadata and a SET of members per conversation, under the
//! conversation's hash tag; puts and member changes are one script each.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;
use switchboard_core::conversation::{Conversation, ConversationKind, ConversationSpec, ConversationStore};
use switchboard_core::{ConversationId, Error, Result, Timestamp, UserId};

use crate::connection::{Conn, lua};
use crate::keys::Keys;

static PUT: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/conversation_put.lua")));
static MEMBERS: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/conversation_members.lua")));

/// Conversations in Redis. See [`ConversationStore`] for the contract.
pub(crate) struct RedisConversations {
    conn: Conn,
    keys: Keys,
}

impl RedisConversations {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisConversations { conn, keys }
    }
}

fn too_many(kind: ConversationKind, max_members: u32) -> Error {
    match kind {
        ConversationKind::Direct => Error::Conflict("a direct conversation has at most 2 members".into()),
        ConversationKind::Group => Error::Conflict(format!("a conversation has at most {max_members} members")),
    }
}

#[async_trait]
impl ConversationStore for RedisConversations {
    async fn put(&self, id: &ConversationId, spec: &ConversationSpec, max_members: u32) -> Result<Conversation> {
        let mut members: Vec<UserId> = spec.members.clone();
        members.sort();
        members.dedup();
        let limit = if spec.kind == ConversationKind::Direct { 2 } else { max_members };
        if members.len() > limit as usize {
            return Err(too_many(spec.kind, max_members));
        }
        let mut invocation = PUT.key(self.keys.conversation(id));
        invocation.key(self.keys.conversation_members(id));
        invocation
            .arg(spec.kind.as_str())
            .arg(spec.name.as_deref().unwrap_or(""))
            .arg(spec.avatar_url.as_deref().unwrap_or(""));
        for m in &members {
            invocation.arg(m.as_str());
        }
        let (created, updated): (i64, i64) = self.conn.script("conversations.put", &invocation).await?;
        Ok(Conversation {
            id: id.clone(),
            kind: spec.kind,
            name: spec.name.clone(),
            avatar_url: spec.avatar_url.clone(),
            members,
            created_at: Timestamp::from_millis(created),
            updated_at: Timestamp::from_millis(updated),
        })
    }

    async fn get(&self, id: &ConversationId) -> Result<Option<Conversation>> {
        let mut pipe = redis::pipe();
        pipe.atomic().hgetall(self.keys.conversation(id)).smembers(self.keys.conversation_members(id));
        let (meta, members): (std::collections::HashMap<String, String>, Vec<String>) =
            self.conn.pipe("conversations.get", &pipe).await?;
        if meta.is_empty() {
            return Ok(None);
        }
        let kind = match meta.get("k").map(String::as_str) {
            Some("direct") => ConversationKind::Direct,
            _ => ConversationKind::Group,
        };
        let text = |f: &str| meta.get(f).filter(|v| !v.is_empty()).cloned();
        let time = |f: &str| Timestamp::from_millis(meta.get(f).and_then(|v| v.parse().ok()).unwrap_or(0));
        let mut members: Vec<UserId> = members.into_iter().filter_map(|m| UserId::new(m).ok()).collect();
        members.sort();
        Ok(Some(Conversation {
            id: id.clone(),
            kind,
            name: text("n"),
            avatar_url: text("a"),
            members,
            created_at: time("c"),
            updated_at: time("u"),
        }))
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.keys.conversation(id)).arg(self.keys.conversation_members(id));
        let removed: i64 = self.conn.cmd("conversations.delete", &cmd).await?;
        Ok(removed > 0)
    }

    async fn update_members(
        &self,
        id: &ConversationId,
        add: &[UserId],
        remove: &[UserId],
        max_members: u32,
    ) -> Result<Option<Conversation>> {
        let mut invocation = MEMBERS.key(self.keys.conversation(id));
        invocation.key(self.keys.conversation_members(id));
        invocation.arg(max_members).arg(add.len());
        for u in add.iter().chain(remove) {
            invocation.arg(u.as_str());
        }
        let outcome: i64 = self.conn.script("conversations.members", &invocation).await?;
        match outcome {
            0 => Ok(None),
            -1 => {
                let kind = self.get(id).await?.map_or(ConversationKind::Group, |c| c.kind);
                Err(too_many(kind, max_members))
            }
            _ => self.get(id).await,
        }
    }

    async fn is_member(&self, id: &ConversationId, user: &UserId) -> Result<bool> {
        let mut cmd = redis::cmd("SISMEMBER");
        cmd.arg(self.keys.conversation_members(id)).arg(user.as_str());
        let member: i64 = self.conn.cmd("conversations.is_member", &cmd).await?;
        Ok(member == 1)
    }
}
