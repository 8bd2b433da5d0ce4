//! `RedisNotifications`: per user, an index of ids in creation order and a hash of the
//! notifications and their state, both under the user's hash tag; every operation is one script.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;
use switchboard_core::notification::{
    CreatedNotification, Mark, NewNotification, Notification, NotificationChange, NotificationPage,
    NotificationRetention, NotificationStore,
};
use switchboard_core::{Error, NotificationId, Result, Timestamp, UserId};

use crate::connection::{Conn, lua};
use crate::keys::Keys;

/// A notification script: common.lua, then notification_common.lua, then the operation.
fn notification_lua(body: &str) -> Script {
    lua(&format!("{}{body}", include_str!("../lua/notification_common.lua")))
}

static CREATE: LazyLock<Script> = LazyLock::new(|| notification_lua(include_str!("../lua/notification_create.lua")));
static LIST: LazyLock<Script> = LazyLock::new(|| notification_lua(include_str!("../lua/notification_list.lua")));
static GET: LazyLock<Script> = LazyLock::new(|| notification_lua(include_str!("../lua/notification_get.lua")));
static UNREAD: LazyLock<Script> = LazyLock::new(|| notification_lua(include_str!("../lua/notification_unread.lua")));
static MARK: LazyLock<Script> = LazyLock::new(|| notification_lua(include_str!("../lua/notification_mark.lua")));

/// Notifications in Redis. See [`NotificationStore`] for the contract.
pub(crate) struct RedisNotifications {
    conn: Conn,
    keys: Keys,
}

impl RedisNotifications {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisNotifications { conn, keys }
    }

    fn invocation<'a>(&self, script: &'a Script, user: &UserId) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.key(self.keys.notification_index(user));
        invocation.key(self.keys.notifications(user));
        invocation
    }
}

/// A stored state, `<created ms> <updated ms> <read> <dismissed>`.
struct State {
    created: i64,
    updated: i64,
    read: bool,
    dismissed: bool,
}

fn parse_state(s: &str) -> Result<State> {
    let bad = || Error::Internal(format!("redis: notification state {s:?} is malformed"));
    let mut parts = s.split(' ');
    let mut next = || parts.next().and_then(|p| p.parse::<i64>().ok()).ok_or_else(bad);
    Ok(State { created: next()?, updated: next()?, read: next()? == 1, dismissed: next()? == 1 })
}

fn assemble(state: &str, json: &str) -> Result<Notification> {
    let new: NewNotification = serde_json::from_str(json)
        .map_err(|e| Error::Internal(format!("redis: stored notification is not valid JSON: {e}")))?;
    let state = parse_state(state)?;
    let mut n = Notification::from_new(new, Timestamp::from_millis(state.created));
    n.read = state.read;
    n.dismissed = state.dismissed;
    n.updated_at = Timestamp::from_millis(state.updated);
    Ok(n)
}

fn changes(flat: Vec<String>) -> Result<Vec<NotificationChange>> {
    flat.chunks(2)
        .filter_map(|pair| match pair {
            [id, state] => Some((id, state)),
            _ => None,
        })
        .map(|(id, state)| {
            let s = parse_state(state)?;
            let id = NotificationId::new(id.as_str())?;
            Ok(NotificationChange {
                id,
                read: s.read,
                dismissed: s.dismissed,
                updated_at: Timestamp::from_millis(s.updated),
            })
        })
        .collect()
}

#[async_trait]
impl NotificationStore for RedisNotifications {
    async fn create(
        &self,
        user: &UserId,
        new: &NewNotification,
        retention: NotificationRetention,
    ) -> Result<CreatedNotification> {
        let json = serde_json::to_string(new).map_err(|e| Error::Internal(format!("notification to JSON: {e}")))?;
        let mut invocation = self.invocation(&CREATE, user);
        invocation
            .arg(new.id.as_str())
            .arg(json)
            .arg(retention.max_per_user)
            .arg(retention.max_age.as_millis().min(i64::MAX as u128) as i64);
        let (created, state, json): (i64, String, String) =
            self.conn.script("notifications.create", &invocation).await?;
        self.conn.replicated("notifications.create", &self.keys.notifications(user)).await?;
        Ok(CreatedNotification { notification: assemble(&state, &json)?, created: created == 1 })
    }

    async fn list(
        &self,
        user: &UserId,
        cursor: Option<&str>,
        limit: usize,
        unread_only: bool,
    ) -> Result<NotificationPage> {
        let cursor = match cursor {
            None => String::new(),
            Some(c) => c.parse::<u64>().map_err(|_| Error::invalid("cursor", "is not a cursor"))?.to_string(),
        };
        let mut invocation = self.invocation(&LIST, user);
        invocation.arg(cursor).arg(limit).arg(if unread_only { "1" } else { "0" });
        let (more, rows): (i64, Vec<(String, String, String, String)>) =
            self.conn.script("notifications.list", &invocation).await?;
        let next_cursor = if more == 1 { rows.last().map(|(seq, ..)| seq.clone()) } else { None };
        let notifications = rows.iter().map(|(_, _, state, json)| assemble(state, json)).collect::<Result<Vec<_>>>()?;
        Ok(NotificationPage { notifications, next_cursor })
    }

    async fn get(&self, user: &UserId, id: &NotificationId) -> Result<Option<Notification>> {
        let mut invocation = self.invocation(&GET, user);
        invocation.arg(id.as_str());
        let found: Vec<String> = self.conn.script("notifications.get", &invocation).await?;
        match found.as_slice() {
            [state, json] => Ok(Some(assemble(state, json)?)),
            _ => Ok(None),
        }
    }

    async fn unread_count(&self, user: &UserId) -> Result<u64> {
        let invocation = self.invocation(&UNREAD, user);
        let count: u64 = self.conn.script("notifications.unread_count", &invocation).await?;
        Ok(count)
    }

    async fn mark(&self, user: &UserId, ids: &[NotificationId], mark: Mark) -> Result<Vec<NotificationChange>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.invocation(&MARK, user);
        invocation.arg(match mark {
            Mark::Read => "read",
            Mark::Dismissed => "dismiss",
            Mark::Unread => "unread",
        });
        for id in ids {
            invocation.arg(id.as_str());
        }
        changes(self.conn.script("notifications.mark", &invocation).await?)
    }

    async fn read_all(&self, user: &UserId) -> Result<Vec<NotificationChange>> {
        let mut invocation = self.invocation(&MARK, user);
        invocation.arg("read_all");
        changes(self.conn.script("notifications.read_all", &invocation).await?)
    }
}
