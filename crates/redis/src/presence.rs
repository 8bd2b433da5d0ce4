//! `RedisPresence`: per-user presence, devices and contacts under the user's hash tag, each
//! operation one script; the online set and the due set of offline checks share a global slot.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, ScriptInvocation};
use serde::{Deserialize, Serialize};
use switchboard_core::presence::{DeviceMeta, PRESENCE_RETENTION};
use switchboard_core::{
    ConnRef, ConnectionInfo, Device, DeviceId, DevicePresence, DeviceRegistration, Error, NodeReport, OnlinePage,
    Platform, PresenceStatus, PresenceStore, RefreshOutcome, Result, StatusChange, StatusSetting, Timestamp,
    Transition, UserId, UserPresence,
};

use crate::connection::{Conn, lua};
use crate::keys::Keys;
use crate::sweep::{DueSet, Next};

/// Helpers every presence script starts with (after `common.lua`).
const PRESENCE_LUA: &str = include_str!("../lua/presence_common.lua");

fn presence_lua(body: &str) -> Script {
    lua(&format!("{PRESENCE_LUA}{body}"))
}

static NODES: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/presence_nodes.lua")));
static ENTER: LazyLock<Script> = LazyLock::new(|| presence_lua(include_str!("../lua/presence_enter.lua")));
static REFRESH: LazyLock<Script> = LazyLock::new(|| presence_lua(include_str!("../lua/presence_refresh.lua")));
static LEAVE: LazyLock<Script> = LazyLock::new(|| presence_lua(include_str!("../lua/presence_leave.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| presence_lua(include_str!("../lua/presence_settle.lua")));
static GET: LazyLock<Script> = LazyLock::new(|| presence_lua(include_str!("../lua/presence_get.lua")));
static CONNECTIONS: LazyLock<Script> = LazyLock::new(|| presence_lua(include_str!("../lua/presence_connections.lua")));
static STATUS: LazyLock<Script> = LazyLock::new(|| presence_lua(include_str!("../lua/presence_status.lua")));
static DEVICE_UPSERT: LazyLock<Script> = LazyLock::new(|| presence_lua(include_str!("../lua/device_upsert.lua")));
static DEVICE_LIST: LazyLock<Script> = LazyLock::new(|| presence_lua(include_str!("../lua/device_list.lua")));
static DEVICE_REMOVE: LazyLock<Script> = LazyLock::new(|| presence_lua(include_str!("../lua/device_remove.lua")));
static CONTACTS_SET: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/contacts_set.lua")));
static CONTACTS_ADD: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/contacts_add.lua")));

/// Presence in Redis. See [`PresenceStore`] for the contract.
///
/// Per user (tag `{<user id>}`, see `keys.rs`): a state hash (reported-online flag `on`,
/// status, when the last entry ended `off`, per-device last seen, connection info) and a ZSET
/// of live entries -> expiry (server clock). Connect, heartbeat, refresh, disconnect, status and
/// reads are single-slot scripts; bulk reads and batch refreshes pipeline one script per user,
/// one round trip per call.
///
/// Offline detection: the global due set (`{presence}` slot) holds every reported-online user
/// at a time *no later than* their next possible offline transition. Connect and heartbeat add
/// the end of the user's last entry (`ZADD LT`, second round trip), a last disconnect adds
/// `now + grace` (second round trip, only then); refreshes only move the real time later, so
/// they never touch it and stay one round trip. A sweep claims due users atomically (lease),
/// settles each with a per-user script that flips `on` from 1 to 0 at most once (exactly one
/// node reports each transition), and reschedules the others. Only due users are visited.
pub(crate) struct RedisPresence {
    conn: Conn,
    keys: Keys,
    due: DueSet,
    /// Users reported online (in the due set's slot).
    online: String,
}

/// The device registration as stored (times live in the activity index and `r:` field).
#[derive(Serialize, Deserialize)]
struct StoredRegistration {
    platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    push_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_version: Option<String>,
    #[serde(default)]
    meta: DeviceMeta,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn conn_member(device: &DeviceId, conn_id: &str) -> String {
    format!("c {device} {conn_id}")
}

fn heartbeat_member(device: &DeviceId) -> String {
    format!("h {device}")
}

/// A connection id goes into a space-separated member: refuse anything the id rule refuses.
fn check_conn_id(conn_id: &str) -> Result<()> {
    switchboard_core::ids::validate_id("conn_id", conn_id, switchboard_core::limits::MAX_ID_BYTES, &[])
}

fn bad(what: &str) -> Error {
    Error::Internal(format!("redis: presence state has a malformed {what}"))
}

impl RedisPresence {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        let online = keys.presence_online();
        let due = DueSet { due: keys.presence_due(), claimed: keys.presence_claimed(), index: Some(online.clone()) };
        RedisPresence { conn, keys, due, online }
    }

    fn user_keys<'a>(&self, script: &'a Script, user: &UserId) -> ScriptInvocation<'a> {
        let mut invocation = script.key(self.keys.presence_state(user));
        invocation.key(self.keys.presence_live(user));
        invocation
    }

    /// Adds a live entry, then records the user in the online and due sets (their own slot).
    async fn enter(
        &self,
        user: &UserId,
        device: &DeviceId,
        member: String,
        ttl: Duration,
        conn: Option<(&str, String)>,
    ) -> Result<Transition> {
        let mut invocation = self.user_keys(&ENTER, user);
        invocation
            .key(self.keys.devices(user))
            .key(self.keys.device_activity(user))
            .arg(member)
            .arg(device.as_str())
            .arg(millis(ttl))
            .arg(millis(PRESENCE_RETENTION));
        match conn {
            Some((id, info)) => invocation.arg(id).arg(info),
            None => invocation.arg("").arg(""),
        };
        let (went_online, due_at): (i64, i64) = self.conn.script("presence.enter", &invocation).await?;
        // Every enter re-records the user (idempotent, LT keeps an earlier time): a lost update
        // after an earlier enter heals here instead of leaving the user unswept.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZADD")
            .arg(&self.online)
            .arg(0)
            .arg(user.as_str())
            .ignore()
            .cmd("ZADD")
            .arg(&self.due.due)
            .arg("LT")
            .arg(due_at)
            .arg(user.as_str())
            .ignore();
        self.conn.pipe::<()>("presence.enter.index", &pipe).await?;
        Ok(if went_online == 1 { Transition::WentOnline } else { Transition::Unchanged })
    }
}

impl RedisPresence {
    /// Ends one live entry; on the user's last, records `now + grace` in the due set (second
    /// round trip, only then).
    async fn leave(
        &self,
        user: &UserId,
        device: &DeviceId,
        member: String,
        conn_id: &str,
        grace: Duration,
    ) -> Result<Transition> {
        let mut invocation = self.user_keys(&LEAVE, user);
        invocation.arg(member).arg(conn_id).arg(device.as_str());
        let (maybe_offline, now): (i64, i64) = self.conn.script("presence.disconnect", &invocation).await?;
        if maybe_offline != 1 {
            return Ok(Transition::Unchanged);
        }
        let settle_at = Timestamp::from_millis(now).plus(grace).as_millis();
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(&self.due.due).arg("LT").arg(settle_at).arg(user.as_str());
        self.conn.cmd::<()>("presence.disconnect.due", &cmd).await?;
        Ok(Transition::MaybeOffline)
    }
}

#[async_trait]
impl PresenceStore for RedisPresence {
    async fn upsert_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        registration: DeviceRegistration,
    ) -> Result<Device> {
        let stored = StoredRegistration {
            platform: registration.platform,
            push_token: registration.push_token,
            app_version: registration.app_version,
            meta: registration.meta,
        };
        let json = serde_json::to_string(&stored)
            .map_err(|e| Error::Internal(format!("redis: cannot encode a device registration: {e}")))?;
        let mut invocation = DEVICE_UPSERT.key(self.keys.devices(user));
        invocation.key(self.keys.device_activity(user)).arg(device.as_str()).arg(json).arg(millis(PRESENCE_RETENTION));
        let (registered_at, now): (i64, i64) = self.conn.script("presence.upsert_device", &invocation).await?;
        Ok(Device {
            user_id: user.clone(),
            device_id: device.clone(),
            platform: stored.platform,
            push_token: stored.push_token,
            app_version: stored.app_version,
            meta: stored.meta,
            registered_at: Timestamp::from_millis(registered_at),
            last_active_at: Timestamp::from_millis(now),
        })
    }

    async fn devices(&self, user: &UserId) -> Result<Vec<Device>> {
        let mut invocation = DEVICE_LIST.key(self.keys.devices(user));
        invocation.key(self.keys.device_activity(user)).arg(millis(PRESENCE_RETENTION));
        let rows: Vec<(String, i64, i64, String)> = self.conn.script("presence.devices", &invocation).await?;
        rows.into_iter()
            .map(|(device, last_active, registered, json)| {
                let stored: StoredRegistration = serde_json::from_str(&json).map_err(|_| bad("device registration"))?;
                Ok(Device {
                    user_id: user.clone(),
                    device_id: DeviceId::new(device).map_err(|_| bad("device id"))?,
                    platform: stored.platform,
                    push_token: stored.push_token,
                    app_version: stored.app_version,
                    meta: stored.meta,
                    registered_at: Timestamp::from_millis(registered),
                    last_active_at: Timestamp::from_millis(last_active),
                })
            })
            .collect()
    }

    async fn remove_device(&self, user: &UserId, device: &DeviceId) -> Result<bool> {
        let mut invocation = DEVICE_REMOVE.key(self.keys.devices(user));
        invocation.key(self.keys.device_activity(user)).arg(device.as_str()).arg(millis(PRESENCE_RETENTION));
        let removed: i64 = self.conn.script("presence.remove_device", &invocation).await?;
        Ok(removed == 1)
    }

    async fn connect(&self, conn: &ConnectionInfo, ttl: Duration) -> Result<Transition> {
        check_conn_id(&conn.conn_id)?;
        let info = serde_json::to_string(conn)
            .map_err(|e| Error::Internal(format!("redis: cannot encode a connection: {e}")))?;
        let member = conn_member(&conn.device_id, &conn.conn_id);
        self.enter(&conn.user_id, &conn.device_id, member, ttl, Some((&conn.conn_id, info))).await
    }

    async fn refresh(&self, conns: &[ConnRef], ttl: Duration) -> Result<RefreshOutcome> {
        // One script per user (its own slot), all in one pipeline: one round trip per batch.
        let mut by_user: BTreeMap<&UserId, Vec<&ConnRef>> = BTreeMap::new();
        for conn in conns {
            check_conn_id(&conn.conn_id)?;
            by_user.entry(&conn.user_id).or_default().push(conn);
        }
        let groups: Vec<(&UserId, Vec<&ConnRef>)> = by_user.into_iter().collect();
        let invocations: Vec<ScriptInvocation<'_>> = groups
            .iter()
            .map(|(user, conns)| {
                let mut invocation = self.user_keys(&REFRESH, user);
                invocation.arg(millis(ttl)).arg(millis(PRESENCE_RETENTION));
                for conn in conns {
                    invocation.arg(conn_member(&conn.device_id, &conn.conn_id));
                }
                invocation
            })
            .collect();
        let replies: Vec<Vec<usize>> = self.conn.script_batch("presence.refresh", &REFRESH, &invocations).await?;
        let mut outcome = RefreshOutcome::default();
        for ((_, conns), missing) in groups.iter().zip(replies) {
            outcome.refreshed += conns.len().saturating_sub(missing.len());
            for position in missing {
                let conn = position.checked_sub(1).and_then(|i| conns.get(i)).ok_or_else(|| bad("refresh reply"))?;
                outcome.missing.push((*conn).clone());
            }
        }
        Ok(outcome)
    }

    async fn disconnect(&self, conn: &ConnRef, grace: Duration) -> Result<Transition> {
        check_conn_id(&conn.conn_id)?;
        let member = conn_member(&conn.device_id, &conn.conn_id);
        self.leave(&conn.user_id, &conn.device_id, member, &conn.conn_id, grace).await
    }

    async fn end_heartbeat(&self, user: &UserId, device: &DeviceId, grace: Duration) -> Result<Transition> {
        // No connection info goes with a heartbeat: the empty conn id names no `c:` field.
        self.leave(user, device, heartbeat_member(device), "", grace).await
    }

    async fn heartbeat(&self, user: &UserId, device: &DeviceId, ttl: Duration) -> Result<Transition> {
        self.enter(user, device, heartbeat_member(device), ttl, None).await
    }

    async fn connections(&self, user: &UserId) -> Result<Vec<ConnectionInfo>> {
        let invocation = self.user_keys(&CONNECTIONS, user);
        let infos: Vec<String> = self.conn.script("presence.connections", &invocation).await?;
        let mut conns = infos
            .iter()
            .map(|json| serde_json::from_str::<ConnectionInfo>(json).map_err(|_| bad("connection")))
            .collect::<Result<Vec<_>>>()?;
        conns.sort_by(|a, b| a.conn_id.cmp(&b.conn_id));
        Ok(conns)
    }

    async fn set_status(&self, user: &UserId, setting: &StatusSetting, grace: Duration) -> Result<StatusChange> {
        let mut invocation = self.user_keys(&STATUS, user);
        invocation
            .arg(setting.status.as_str())
            .arg(if setting.text.is_some() { "1" } else { "0" })
            .arg(setting.text.as_deref().unwrap_or(""))
            .arg(if setting.invisible { "1" } else { "0" })
            .arg(millis(PRESENCE_RETENTION));
        type Reply = ((String, String, String, String), Vec<String>, Vec<String>, i64, i64);
        let ((status, has_text, text, invisible), fields, live, now, off): Reply =
            self.conn.script("presence.set_status", &invocation).await?;
        let previous = StatusSetting {
            status: if status.is_empty() {
                PresenceStatus::Online
            } else {
                PresenceStatus::parse(&status).ok_or_else(|| bad("status"))?
            },
            text: (has_text == "1").then_some(text),
            invisible: invisible == "1",
        };
        Ok(StatusChange { previous, presence: decode(user, Snapshot { fields, live, now, off }, grace)? })
    }

    async fn get(&self, user: &UserId, grace: Duration) -> Result<UserPresence> {
        let invocation = self.user_keys(&GET, user);
        let (fields, live, now, off): SnapshotReply = self.conn.script("presence.get", &invocation).await?;
        decode(user, Snapshot { fields, live, now, off }, grace)
    }

    async fn bulk(&self, users: &[UserId], grace: Duration) -> Result<Vec<UserPresence>> {
        let invocations: Vec<ScriptInvocation<'_>> = users.iter().map(|u| self.user_keys(&GET, u)).collect();
        let replies: Vec<SnapshotReply> = self.conn.script_batch("presence.bulk", &GET, &invocations).await?;
        users
            .iter()
            .zip(replies)
            .map(|(user, (fields, live, now, off))| decode(user, Snapshot { fields, live, now, off }, grace))
            .collect()
    }

    async fn online_users(&self, cursor: Option<&str>, limit: usize) -> Result<OnlinePage> {
        let start = match cursor {
            Some(c) => {
                // Ids never contain '[' or '(' (the id rule), so the range stays exact.
                UserId::parse_field("cursor", c)?;
                format!("({c}")
            }
            None => "-".to_owned(),
        };
        let mut cmd = redis::cmd("ZRANGEBYLEX");
        cmd.arg(&self.online).arg(start).arg("+").arg("LIMIT").arg(0).arg(limit);
        let ids: Vec<String> = self.conn.cmd("presence.online_users", &cmd).await?;
        let users =
            ids.into_iter().map(|id| UserId::new(id).map_err(|_| bad("online user id"))).collect::<Result<Vec<_>>>()?;
        let next_cursor = (users.len() == limit).then(|| users.last().map(|u| u.to_string())).flatten();
        Ok(OnlinePage { users, next_cursor })
    }

    async fn online_count(&self) -> Result<u64> {
        let mut cmd = redis::cmd("ZCARD");
        cmd.arg(&self.online);
        self.conn.cmd("presence.online_count", &cmd).await
    }

    async fn sweep(&self, grace: Duration, limit: usize) -> Result<Vec<UserId>> {
        let claimed = self.due.claim(&self.conn, "presence.sweep.claim", limit).await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        // Members were written by this engine; one that is not a user id is dropped.
        let users: Vec<(String, Option<UserId>)> = claimed
            .into_iter()
            .map(|m| {
                let id = UserId::new(m.clone()).ok();
                (m, id)
            })
            .collect();
        let invocations: Vec<ScriptInvocation<'_>> = users
            .iter()
            .filter_map(|(_, id)| id.as_ref())
            .map(|user| {
                let mut invocation = self.user_keys(&SETTLE, user);
                invocation.arg(millis(grace));
                invocation
            })
            .collect();
        let replies: Vec<(i64, i64)> = self.conn.script_batch("presence.sweep.settle", &SETTLE, &invocations).await?;
        let mut replies = replies.into_iter();
        let mut settled = Vec::with_capacity(users.len());
        let mut offline = Vec::new();
        for (member, id) in users {
            let Some(user) = id else {
                settled.push((member, Next::Done));
                continue;
            };
            match replies.next().ok_or_else(|| bad("settle reply"))? {
                (1, at) => settled.push((member, Next::At(at))),
                (2, _) => {
                    settled.push((member, Next::Done));
                    offline.push(user);
                }
                _ => settled.push((member, Next::Done)),
            }
        }
        self.due.reschedule(&self.conn, "presence.sweep.reschedule", &settled).await?;
        Ok(offline)
    }

    async fn set_contacts(&self, user: &UserId, contacts: &[UserId], ttl: Option<Duration>) -> Result<Vec<UserId>> {
        let mut invocation = CONTACTS_SET.key(self.keys.contacts(user));
        invocation.arg(ttl.map_or(0, millis));
        for contact in contacts {
            invocation.arg(contact.as_str());
        }
        let previous: Vec<String> = self.conn.script("presence.set_contacts", &invocation).await?;
        // Only valid ids are ever stored; anything else in the set was not written by us.
        Ok(previous.into_iter().filter_map(|id| UserId::new(id).ok()).collect())
    }

    async fn add_contacts(&self, user: &UserId, contacts: &[UserId], max: usize) -> Result<usize> {
        let distinct: BTreeSet<&UserId> = contacts.iter().collect();
        let mut invocation = CONTACTS_ADD.key(self.keys.contacts(user));
        invocation.arg(max);
        for contact in distinct {
            invocation.arg(contact.as_str());
        }
        let added: i64 = self.conn.script("presence.add_contacts", &invocation).await?;
        usize::try_from(added).map_err(|_| Error::invalid("contacts", format!("at most {max} per user")))
    }

    async fn remove_contacts(&self, user: &UserId, contacts: &[UserId]) -> Result<usize> {
        if contacts.is_empty() {
            return Ok(0);
        }
        let distinct: HashSet<&str> = contacts.iter().map(UserId::as_str).collect();
        let mut cmd = redis::cmd("SREM");
        cmd.arg(self.keys.contacts(user)).arg(distinct.into_iter().collect::<Vec<_>>());
        self.conn.cmd("presence.remove_contacts", &cmd).await
    }

    async fn contacts(&self, user: &UserId) -> Result<Vec<UserId>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.keys.contacts(user));
        let ids: Vec<String> = self.conn.cmd("presence.contacts", &cmd).await?;
        let mut users =
            ids.into_iter().map(|id| UserId::new(id).map_err(|_| bad("contact id"))).collect::<Result<Vec<_>>>()?;
        users.sort();
        Ok(users)
    }

    async fn is_contact(&self, user: &UserId, other: &UserId) -> Result<bool> {
        let mut cmd = redis::cmd("SISMEMBER");
        cmd.arg(self.keys.contacts(user)).arg(other.as_str());
        self.conn.cmd("presence.is_contact", &cmd).await
    }

    async fn report_node(&self, node_id: &str, connections: u64, ttl: Duration) -> Result<()> {
        let mut invocation = NODES.key(self.keys.presence_nodes());
        invocation.arg("put").arg(node_id).arg(connections).arg(millis(ttl));
        self.conn.script::<()>("presence.report_node", &invocation).await
    }

    async fn nodes(&self) -> Result<Vec<NodeReport>> {
        let mut invocation = NODES.key(self.keys.presence_nodes());
        invocation.arg("list");
        let reply: Vec<redis::Value> = self.conn.script("presence.nodes", &invocation).await?;
        let mut nodes = Vec::with_capacity(reply.len().saturating_sub(1));
        for raw in reply.into_iter().skip(1) {
            let raw: String = redis::FromRedisValue::from_redis_value(raw)
                .map_err(|_| Error::Internal("presence.nodes: unexpected reply".into()))?;
            let stored: StoredNode = serde_json::from_str(&raw)
                .map_err(|_| Error::Internal("presence.nodes: unexpected report in redis".into()))?;
            nodes.push(NodeReport {
                node_id: stored.node_id,
                connections: stored.connections.max(0.0) as u64,
                reported_at: Timestamp::from_millis(stored.reported_at as i64),
            });
        }
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(nodes)
    }
}

/// A node report as `presence_nodes.lua` stores it (cjson writes numbers as doubles).
#[derive(Deserialize)]
struct StoredNode {
    node_id: String,
    connections: f64,
    reported_at: f64,
}

/// The reply of `snapshot` in `presence_common.lua`: fields, live members, now, last end (ms).
type SnapshotReply = (Vec<String>, Vec<String>, i64, i64);

/// One user's presence as the scripts read it.
struct Snapshot {
    /// The state hash without connection info (flat field, value list).
    fields: Vec<String>,
    /// The members of the live entries.
    live: Vec<String>,
    /// The server's time of the read (ms).
    now: i64,
    /// When the user's last entry ended (ms, 0 if never).
    off: i64,
}

/// Builds a user's presence from a snapshot: online while an entry is live, and within `grace`
/// of the last one's end while reported online (the `on` flag).
fn decode(user: &UserId, snapshot: Snapshot, grace: Duration) -> Result<UserPresence> {
    let Snapshot { fields, live, now, off } = snapshot;
    let mut setting = StatusSetting::default();
    let mut reported = false;
    let mut seen: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut it = fields.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        match name.as_str() {
            "on" => reported = value == "1",
            "st" => setting.status = PresenceStatus::parse(&value).ok_or_else(|| bad("status"))?,
            "tx" => setting.text = Some(value),
            "inv" => setting.invisible = value == "1",
            other => {
                if let Some(device) = other.strip_prefix("s:") {
                    let at = value.parse::<i64>().map_err(|_| bad("last seen time"))?;
                    seen.insert(device.to_owned(), Timestamp::from_millis(at));
                }
            }
        }
    }
    let online: HashSet<&str> = live.iter().filter_map(|m| m.split(' ').nth(1)).collect();
    let devices = seen
        .into_iter()
        .map(|(device, last_seen)| {
            let online = online.contains(device.as_str());
            Ok(DevicePresence { device_id: DeviceId::new(device).map_err(|_| bad("device id"))?, online, last_seen })
        })
        .collect::<Result<Vec<_>>>()?;
    let in_grace = reported && live.is_empty() && now < Timestamp::from_millis(off).plus(grace).as_millis();
    Ok(UserPresence::from_parts_in_grace(user.clone(), setting, devices, in_grace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_presence_hash() {
        let user = UserId::new("alice").unwrap();
        let fields =
            ["on", "1", "st", "busy", "tx", "in a meeting", "inv", "0", "off", "5", "s:phone", "100", "s:web", "200"];
        let live = vec!["c phone conn-1".to_owned(), "h phone".to_owned()];
        let snapshot = Snapshot { fields: fields.iter().map(|s| s.to_string()).collect(), live, now: 300, off: 5 };
        let p = decode(&user, snapshot, Duration::ZERO).unwrap();
        assert!(p.online);
        assert_eq!(p.status, PresenceStatus::Busy);
        assert_eq!(p.status_text.as_deref(), Some("in a meeting"));
        assert_eq!(p.devices.len(), 2);
        assert!(p.devices[0].online && !p.devices[1].online);
        assert_eq!(p.last_seen, Some(Timestamp::from_millis(200)));
        let bad = Snapshot { fields: vec!["s:phone".into(), "soon".into()], live: vec![], now: 0, off: 0 };
        assert!(decode(&user, bad, Duration::ZERO).is_err());
        let left = |now| Snapshot { fields: vec!["on".into(), "1".into()], live: vec![], now, off: 1000 };
        let grace = Duration::from_millis(500);
        assert!(decode(&user, left(1499), grace).unwrap().online, "within the grace period");
        assert!(!decode(&user, left(1500), grace).unwrap().online, "the grace period is over");
    }

    #[test]
    fn members_keep_their_parts_apart() {
        let device = DeviceId::new("web-1").unwrap();
        assert_eq!(conn_member(&device, "k3J9"), "c web-1 k3J9");
        assert_eq!(heartbeat_member(&device), "h web-1");
        assert!(check_conn_id("has space").is_err());
    }
}
