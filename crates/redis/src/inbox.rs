//! `RedisInbox`: each user's conversation list (one hash of JSON entries), unread totals (with the
//! list's loaded flag) and counted message ids, all under the user's hash tag. A post's fan-out is one script per member,
//! all in one pipeline: each member's change is atomic and exact, members' slots may differ.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;
use serde::{Deserialize, Serialize};
use switchboard_core::conversation::ConversationKind;
use switchboard_core::message::{
    ImportOutcome, InboxChange, InboxFilter, InboxPage, InboxPost, InboxSettings, InboxStore, ReadOutcome, UnreadSet,
    UnreadTotals, UserConversation, page_of, parse_cursor,
};
use switchboard_core::{ConversationId, Error, MessageId, Result, Timestamp, UserId};

use crate::connection::{Conn, lua};
use crate::keys::Keys;

static POST: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/inbox_post.lua")));
static UPDATE: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/inbox_update.lua")));
static REMOVE: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/inbox_remove.lua")));
static READ: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/inbox_read.lua")));
static IMPORT: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/inbox_import.lua")));
static SET_UNREAD: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/inbox_set_unread.lua")));

/// Most message ids an entry remembers as counted (beyond it, posts still count but a retried
/// one would count twice).
const MAX_COUNTED_IDS: usize = 1000;

/// Conversation lists in Redis. See [`InboxStore`] for the contract.
pub(crate) struct RedisInbox {
    conn: Conn,
    keys: Keys,
}

impl RedisInbox {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisInbox { conn, keys }
    }
}

/// An entry as the scripts store it (cjson writes numbers as doubles). The scripts keep fields
/// they do not touch (the imported name, type and avatar) as they are.
#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<String>,
    #[serde(default)]
    p: String,
    t: f64,
    u: f64,
    #[serde(default)]
    pin: bool,
    #[serde(default)]
    mute: bool,
    #[serde(default)]
    arch: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<ConversationKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<String>,
}

impl Record {
    fn of(entry: &UserConversation) -> Self {
        Record {
            i: entry.last_message_id.as_ref().map(|i| i.as_str().to_owned()),
            p: entry.last_message_preview.clone(),
            t: entry.last_message_at.as_millis() as f64,
            u: entry.unread as f64,
            pin: entry.pinned,
            mute: entry.muted,
            arch: entry.archived,
            n: entry.name.clone(),
            k: entry.kind,
            a: entry.avatar_url.clone(),
        }
    }
}

fn parse(conversation: ConversationId, raw: &str) -> Result<UserConversation> {
    let r: Record = serde_json::from_str(raw).map_err(|_| Error::Internal("unexpected inbox entry in redis".into()))?;
    Ok(UserConversation {
        conversation_id: conversation,
        last_message_id: r.i.and_then(|i| MessageId::new(i).ok()),
        last_message_preview: r.p,
        last_message_at: Timestamp::from_millis(r.t as i64),
        unread: r.u.max(0.0) as u64,
        pinned: r.pin,
        muted: r.mute,
        archived: r.arch,
        name: r.n,
        kind: r.k,
        avatar_url: r.a,
    })
}

fn totals(unread: i64, muted: i64) -> UnreadTotals {
    UnreadTotals { unread: unread.max(0) as u64, muted_unread: muted.max(0) as u64 }
}

fn flag(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "1",
        Some(false) => "0",
        None => "",
    }
}

#[async_trait]
impl InboxStore for RedisInbox {
    async fn record_post(&self, members: &[UserId], post: &InboxPost) -> Result<Vec<InboxChange>> {
        let invocations: Vec<_> = members
            .iter()
            .map(|user| {
                let mut invocation = POST.key(self.keys.inbox(user));
                invocation.key(self.keys.inbox_totals(user)).key(self.keys.inbox_counted(user, &post.conversation_id));
                invocation
                    .arg(post.conversation_id.as_str())
                    .arg(post.message_id.as_str())
                    .arg(if user == &post.sender { "0" } else { "1" })
                    .arg(post.preview.as_str())
                    .arg(post.at.as_millis())
                    .arg(MAX_COUNTED_IDS);
                invocation
            })
            .collect();
        let replies: Vec<(i64, i64, i64, i64)> = self.conn.script_batch("inbox.post", &POST, &invocations).await?;
        if replies.len() != members.len() {
            return Err(Error::Internal("inbox.post: reply count differs from member count".into()));
        }
        Ok(members
            .iter()
            .zip(replies)
            .map(|(user, (unread, total, muted, counted))| InboxChange {
                user_id: user.clone(),
                unread: unread.max(0) as u64,
                totals: totals(total, muted),
                counted: counted == 1,
            })
            .collect())
    }

    async fn list(&self, user: &UserId, filter: InboxFilter, cursor: Option<&str>, limit: usize) -> Result<InboxPage> {
        let offset = parse_cursor(cursor)?;
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.keys.inbox(user));
        let mut loaded = redis::cmd("HEXISTS");
        loaded.arg(self.keys.inbox_totals(user)).arg("l");
        let (raw, loaded) = tokio::join!(self.conn.cmd("inbox.list", &cmd), self.conn.cmd("inbox.loaded", &loaded));
        let (raw, loaded): (HashMap<String, String>, bool) = (raw?, loaded?);
        let mut entries = Vec::with_capacity(raw.len());
        for (conversation, record) in raw {
            let Ok(conversation) = ConversationId::new(conversation) else { continue };
            let entry = parse(conversation, &record)?;
            if filter.admits(&entry) {
                entries.push(entry);
            }
        }
        Ok(page_of(entries, offset, limit, loaded))
    }

    async fn get(&self, user: &UserId, conversation: &ConversationId) -> Result<Option<UserConversation>> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.keys.inbox(user)).arg(conversation.as_str());
        let raw: Option<String> = self.conn.cmd("inbox.get", &cmd).await?;
        raw.map(|r| parse(conversation.clone(), &r)).transpose()
    }

    async fn update(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        settings: InboxSettings,
    ) -> Result<Option<UserConversation>> {
        let mut invocation = UPDATE.key(self.keys.inbox(user));
        invocation.key(self.keys.inbox_totals(user));
        invocation
            .arg(conversation.as_str())
            .arg(flag(settings.pinned))
            .arg(flag(settings.muted))
            .arg(flag(settings.archived));
        let raw: Option<String> = self.conn.script("inbox.update", &invocation).await?;
        raw.map(|r| parse(conversation.clone(), &r)).transpose()
    }

    async fn remove(&self, user: &UserId, conversation: &ConversationId) -> Result<bool> {
        let mut invocation = REMOVE.key(self.keys.inbox(user));
        invocation.key(self.keys.inbox_totals(user)).key(self.keys.inbox_counted(user, conversation));
        invocation.arg(conversation.as_str());
        let removed: i64 = self.conn.script("inbox.remove", &invocation).await?;
        Ok(removed == 1)
    }

    async fn read(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        _message: &MessageId,
    ) -> Result<Option<ReadOutcome>> {
        let mut invocation = READ.key(self.keys.inbox(user));
        invocation.key(self.keys.inbox_totals(user)).key(self.keys.inbox_counted(user, conversation));
        invocation.arg(conversation.as_str());
        let reply: Option<(i64, i64, i64)> = self.conn.script("inbox.read", &invocation).await?;
        Ok(reply.map(|(cleared, unread, muted)| ReadOutcome {
            cleared: cleared.max(0) as u64,
            totals: totals(unread, muted),
        }))
    }

    async fn totals(&self, user: &UserId) -> Result<UnreadTotals> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.keys.inbox_totals(user)).arg("u").arg("m");
        let (unread, muted): (Option<i64>, Option<i64>) = self.conn.cmd("inbox.totals", &cmd).await?;
        Ok(totals(unread.unwrap_or(0), muted.unwrap_or(0)))
    }

    async fn import(&self, user: &UserId, entries: &[UserConversation]) -> Result<ImportOutcome> {
        let mut invocation = IMPORT.key(self.keys.inbox(user));
        invocation.key(self.keys.inbox_totals(user));
        for entry in entries {
            let record =
                serde_json::to_string(&Record::of(entry)).map_err(|e| Error::Internal(format!("inbox entry: {e}")))?;
            invocation.arg(entry.conversation_id.as_str()).arg(record);
        }
        let (added, unread, muted): (i64, i64, i64) = self.conn.script("inbox.import", &invocation).await?;
        Ok(ImportOutcome { added: added.max(0) as usize, totals: totals(unread, muted) })
    }

    async fn set_unread(&self, user: &UserId, conversation: &ConversationId, unread: u64) -> Result<Option<UnreadSet>> {
        let mut invocation = SET_UNREAD.key(self.keys.inbox(user));
        invocation.key(self.keys.inbox_totals(user)).key(self.keys.inbox_counted(user, conversation));
        invocation.arg(conversation.as_str()).arg(unread);
        let reply: Option<(String, i64, i64)> = self.conn.script("inbox.set_unread", &invocation).await?;
        reply
            .map(|(raw, unread, muted)| {
                Ok(UnreadSet { entry: parse(conversation.clone(), &raw)?, totals: totals(unread, muted) })
            })
            .transpose()
    }
}
