//! `RedisSessions`: each session is a hash, each user's sessions are indexed by a ZSET in the
//! same slot, every operation is one script; a separate set backs `count_active`.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Pipeline, Script};
use serde_json::Value;
use switchboard_core::ids::user_shard;
use switchboard_core::{
    CreatedSession, DeviceId, DeviceInfo, Error, NewSession, Result, Session, SessionData, SessionId, SessionStore,
    Timestamp, UserId,
};

use crate::connection::{Conn, lua};
use crate::keys::Keys;

static CREATE: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/session_create.lua")));
static GET: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/session_get.lua")));
static TOUCH: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/session_touch.lua")));
static UPDATE_DATA: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/session_update_data.lua")));
static DELETE: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/session_delete.lua")));
static LIST: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/session_list.lua")));
static DELETE_USER: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/session_delete_user.lua")));
static COUNT: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/session_count.lua")));
static ALIAS: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/session_alias.lua")));

/// Fields of a session hash. Data fields are stored one per hash field, `d:<name>` = compact
/// JSON, so concurrent updates of different fields never overwrite each other.
mod field {
    pub(super) const USER: &str = "uid";
    pub(super) const DEVICE: &str = "dev";
    pub(super) const IP: &str = "ip";
    pub(super) const USER_AGENT: &str = "ua";
    pub(super) const CREATED: &str = "ca";
    pub(super) const LAST_ACTIVE: &str = "la";
    pub(super) const IDLE_TTL: &str = "it";
    pub(super) const ABSOLUTE: &str = "ax";
    pub(super) const DATA_PREFIX: &str = "d:";
}

/// Sessions in Redis. See [`SessionStore`] for the contract.
///
/// Layout (see `keys.rs`): the session hash expires (`PEXPIREAT`) at its `expires_at`, and
/// scripts also compare with the server clock, so a session is never returned at or past that
/// time. The user's index (session id -> last active ms) sits in the same slot, so create with
/// eviction, list and delete-all are single-slot scripts; index entries of ended sessions are
/// dropped lazily whenever a script walks the index.
///
/// `count_active` counts a separate set (own slot) of session id -> *counted-until*, a time at
/// or after the session's end: `min(expires_at + idle_ttl / 8, absolute_expires_at)` when
/// recorded. Create and delete update it in one more round trip after their script (the set
/// is in another slot); create also drops entries that have ended, so the set stays bounded.
/// `touch` refreshes it only when the session's new expiry passes the recorded time, so at
/// most once per eighth of the idle TTL and never on most touches. The count therefore lags behind idle expiries by at most
/// `idle_ttl / 8` (absolute expiries are exact), and never counts a session deleted through
/// this engine, except in two narrow races: a session deleted while its create or refreshing
/// touch is between its script and the set update may be counted until its recorded time.
///
/// A caller-chosen id carries no shard, so its session is found through an alias key in the
/// id's own slot holding the user's shard (`session_alias.lua`, kept as long as the session can
/// live): one more round trip for such ids. The alias reserves the id for that user's shard
/// until it expires.
pub(crate) struct RedisSessions {
    conn: Conn,
    keys: Keys,
}

impl RedisSessions {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisSessions { conn, keys }
    }

    /// The shard holding the session: carried by a generated id, looked up for a caller-chosen
    /// one (`None`: no session ever had it, or its alias expired with it).
    async fn shard_of(&self, id: &SessionId) -> Result<Option<u16>> {
        if !id.is_custom() {
            return Ok(Some(id.shard()));
        }
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.keys.session_alias(id));
        let held: Option<String> = self.conn.cmd("sessions.alias", &cmd).await?;
        held.map(|hex| {
            u16::from_str_radix(&hex, 16).map_err(|_| Error::Internal("redis: malformed session alias".into()))
        })
        .transpose()
    }

    /// The session's hash key in `shard` (the user's; a generated id carries it).
    fn session_key(&self, id: &SessionId, shard: u16) -> String {
        if !id.is_custom() {
            return self.keys.session(id);
        }
        let mut key = self.keys.session_prefix(shard);
        key.push_str(id.as_str());
        key
    }

    /// Applies a change to the active-sessions set. The session operation itself has already
    /// happened, so a failure here is logged rather than returned; the set corrects itself as
    /// recorded times pass.
    async fn update_count(&self, op: &'static str, pipe: &Pipeline) {
        if let Err(e) = self.conn.pipe::<()>(op, pipe).await {
            tracing::warn!(error = %e, "redis: the active-sessions count was not updated");
        }
    }
}

#[async_trait]
impl SessionStore for RedisSessions {
    async fn create(&self, new: NewSession, max_per_user: u32) -> Result<CreatedSession> {
        let shard = user_shard(&new.user_id);
        let id = match &new.id {
            Some(id) => id.clone(),
            None => SessionId::generate(&new.user_id)?,
        };
        let idle_ms = millis(new.idle_ttl);
        let absolute_ms = millis(new.absolute_ttl);
        if id.is_custom() {
            // Reserved first (its own slot); a create that then fails leaves a harmless alias.
            let mut alias = ALIAS.key(self.keys.session_alias(&id));
            alias.arg(format!("{shard:04x}")).arg(absolute_ms);
            let reserved: i64 = self.conn.script("sessions.create.alias", &alias).await?;
            if reserved != 1 {
                return Err(in_use());
            }
        }
        let mut invocation = CREATE.prepare_invoke();
        invocation
            .key(self.session_key(&id, shard))
            .key(self.keys.user_index(&new.user_id))
            .arg(self.keys.session_prefix(shard))
            .arg(id.as_str())
            .arg(idle_ms)
            .arg(absolute_ms)
            .arg(max_per_user)
            .arg(new.replace_device.as_ref().map_or("", DeviceId::as_str))
            .arg(field::USER)
            .arg(new.user_id.as_str())
            .arg(field::DEVICE)
            .arg(to_json(&new.device)?);
        if let Some(ip) = &new.ip {
            invocation.arg(field::IP).arg(ip);
        }
        if let Some(ua) = &new.user_agent {
            invocation.arg(field::USER_AGENT).arg(ua);
        }
        for (name, value) in &new.data {
            invocation.arg(format!("{}{name}", field::DATA_PREFIX)).arg(to_json(value)?);
        }
        type Reply = (i64, i64, Vec<String>, Vec<String>);
        let (now, counted, evicted, replaced): Reply = self.conn.script("sessions.create", &invocation).await?;
        if now < 0 {
            return Err(in_use());
        }
        self.conn.replicated("sessions.create", &self.keys.session(&id)).await?;

        let active = self.keys.active_sessions();
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD").arg(&active).arg(counted).arg(id.as_str()).ignore();
        // Entries recorded to end by now are dropped here too (with the server's `now`), so the
        // set stays bounded by live sessions even if `count_active` is never called.
        pipe.cmd("ZREMRANGEBYSCORE").arg(&active).arg("-inf").arg(now).ignore();
        if !evicted.is_empty() {
            pipe.cmd("ZREM").arg(&active).arg(&evicted).ignore();
        }
        if !replaced.is_empty() {
            pipe.cmd("ZREM").arg(&active).arg(&replaced).ignore();
        }
        self.update_count("sessions.create.count", &pipe).await;

        let now = Timestamp::from_millis(now);
        let absolute_expires_at = now.plus(new.absolute_ttl);
        let session = Session {
            id,
            user_id: new.user_id,
            device: new.device,
            ip: new.ip,
            user_agent: new.user_agent,
            data: new.data,
            created_at: now,
            last_active_at: now,
            expires_at: now.plus(new.idle_ttl).min(absolute_expires_at),
            absolute_expires_at,
            idle_ttl_ms: idle_ms,
        };
        let evicted = evicted.into_iter().map(session_id).collect::<Result<Vec<_>>>()?;
        let replaced = replaced.into_iter().map(session_id).collect::<Result<Vec<_>>>()?;
        Ok(CreatedSession { session, evicted, replaced })
    }

    async fn get(&self, id: &SessionId) -> Result<Option<Session>> {
        let Some(shard) = self.shard_of(id).await? else { return Ok(None) };
        let invocation = GET.key(self.session_key(id, shard));
        let fields: Option<Vec<String>> = self.conn.script("sessions.get", &invocation).await?;
        fields.map(|f| decode(id.clone(), f)).transpose()
    }

    async fn touch(&self, id: &SessionId) -> Result<Option<Session>> {
        let Some(shard) = self.shard_of(id).await? else { return Ok(None) };
        let mut invocation = TOUCH.key(self.session_key(id, shard));
        invocation.arg(self.keys.user_index_prefix(shard)).arg(id.as_str());
        let reply: Option<(i64, Vec<String>)> = self.conn.script("sessions.touch", &invocation).await?;
        let Some((refresh, fields)) = reply else { return Ok(None) };
        if refresh > 0 {
            // GT: a slower concurrent refresh can never move the recorded time backwards.
            let mut pipe = redis::pipe();
            pipe.cmd("ZADD").arg(self.keys.active_sessions()).arg("GT").arg(refresh).arg(id.as_str()).ignore();
            self.update_count("sessions.touch.count", &pipe).await;
        }
        decode(id.clone(), fields).map(Some)
    }

    async fn update_data(&self, id: &SessionId, patch: &SessionData, max_data_bytes: usize) -> Result<Option<Session>> {
        let Some(shard) = self.shard_of(id).await? else { return Ok(None) };
        let mut invocation = UPDATE_DATA.key(self.session_key(id, shard));
        invocation.arg(max_data_bytes);
        for (name, value) in patch {
            invocation.arg(name.as_str());
            // '' is never valid JSON, so it can stand for "delete this field".
            if value.is_null() {
                invocation.arg("")
            } else {
                invocation.arg(to_json(value)?)
            };
        }
        let reply: Option<(i64, Vec<String>)> = self.conn.script("sessions.update_data", &invocation).await?;
        match reply {
            None => Ok(None),
            Some((0, _)) => Err(Error::PayloadTooLarge(format!("data: must be at most {max_data_bytes} bytes"))),
            Some((_, fields)) => decode(id.clone(), fields).map(Some),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool> {
        let Some(shard) = self.shard_of(id).await? else { return Ok(false) };
        let mut invocation = DELETE.key(self.session_key(id, shard));
        invocation.arg(self.keys.user_index_prefix(shard)).arg(id.as_str());
        let deleted: i64 = self.conn.script("sessions.delete", &invocation).await?;
        if deleted == 1 {
            let mut pipe = redis::pipe();
            pipe.cmd("ZREM").arg(self.keys.active_sessions()).arg(id.as_str()).ignore();
            self.update_count("sessions.delete.count", &pipe).await;
        }
        Ok(deleted == 1)
    }

    async fn list(&self, user: &UserId) -> Result<Vec<Session>> {
        let mut invocation = LIST.key(self.keys.user_index(user));
        invocation.arg(self.keys.session_prefix(user_shard(user)));
        let sessions: Vec<(String, Vec<String>)> = self.conn.script("sessions.list", &invocation).await?;
        sessions.into_iter().map(|(id, fields)| decode(session_id(id)?, fields)).collect()
    }

    async fn delete_user_sessions(&self, user: &UserId, except: Option<&SessionId>) -> Result<Vec<SessionId>> {
        let mut invocation = DELETE_USER.key(self.keys.user_index(user));
        invocation.arg(self.keys.session_prefix(user_shard(user))).arg(except.map_or("", SessionId::as_str));
        let deleted: Vec<String> = self.conn.script("sessions.delete_user", &invocation).await?;
        if !deleted.is_empty() {
            let mut pipe = redis::pipe();
            pipe.cmd("ZREM").arg(self.keys.active_sessions()).arg(&deleted).ignore();
            self.update_count("sessions.delete_user.count", &pipe).await;
        }
        deleted.into_iter().map(session_id).collect()
    }

    async fn count_active(&self) -> Result<u64> {
        let invocation = COUNT.key(self.keys.active_sessions());
        self.conn.script("sessions.count_active", &invocation).await
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("redis: cannot encode session field: {e}")))
}

fn in_use() -> Error {
    Error::Conflict("session id already in use".into())
}

fn session_id(id: String) -> Result<SessionId> {
    SessionId::new(id).map_err(|_| Error::Internal("redis: a session index holds a malformed session id".into()))
}

/// Builds a session from its hash, given as a flat field, value list.
fn decode(id: SessionId, fields: Vec<String>) -> Result<Session> {
    let bad = |what: &str| Error::Internal(format!("redis: session hash has a malformed {what}"));
    let int = |name: &str, v: Option<String>| -> Result<i64> {
        v.ok_or_else(|| bad(name))?.parse::<i64>().map_err(|_| bad(name))
    };
    let (mut user, mut device, mut ip, mut ua) = (None, None, None, None);
    let (mut created, mut last_active, mut idle, mut absolute) = (None, None, None, None);
    let mut data = SessionData::new();
    let mut it = fields.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        match name.as_str() {
            field::USER => user = Some(value),
            field::DEVICE => device = Some(value),
            field::IP => ip = Some(value),
            field::USER_AGENT => ua = Some(value),
            field::CREATED => created = Some(value),
            field::LAST_ACTIVE => last_active = Some(value),
            field::IDLE_TTL => idle = Some(value),
            field::ABSOLUTE => absolute = Some(value),
            other => {
                if let Some(data_name) = other.strip_prefix(field::DATA_PREFIX) {
                    let value: Value = serde_json::from_str(&value).map_err(|_| bad("data field"))?;
                    data.insert(data_name.to_owned(), value);
                }
            }
        }
    }
    let user_id = UserId::new(user.ok_or_else(|| bad("user id"))?).map_err(|_| bad("user id"))?;
    let device: DeviceInfo = serde_json::from_str(&device.ok_or_else(|| bad("device"))?).map_err(|_| bad("device"))?;
    let created_at = Timestamp::from_millis(int(field::CREATED, created)?);
    let last_active_at = Timestamp::from_millis(int(field::LAST_ACTIVE, last_active)?);
    let idle_ttl_ms = u64::try_from(int(field::IDLE_TTL, idle)?).map_err(|_| bad(field::IDLE_TTL))?;
    let absolute_expires_at = Timestamp::from_millis(int(field::ABSOLUTE, absolute)?);
    Ok(Session {
        id,
        user_id,
        device,
        ip,
        user_agent: ua,
        data,
        created_at,
        last_active_at,
        expires_at: last_active_at.plus(Duration::from_millis(idle_ttl_ms)).min(absolute_expires_at),
        absolute_expires_at,
        idle_ttl_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_session_hash() {
        let user = UserId::new("alice").unwrap();
        let id = SessionId::generate(&user).unwrap();
        let fields = [
            ("uid", "alice"),
            ("dev", r#"{"device_id":"d1","type":"web"}"#),
            ("ip", "10.0.0.1"),
            ("ca", "1000"),
            ("la", "2000"),
            ("it", "500"),
            ("ax", "2300"),
            ("cg", "2300"),
            ("d:theme", r#""dark""#),
            ("d:n", "[1,2]"),
        ];
        let flat = fields.iter().flat_map(|(k, v)| [k.to_string(), v.to_string()]).collect();
        let s = decode(id.clone(), flat).unwrap();
        assert_eq!(s.id, id);
        assert_eq!(s.device.kind.as_deref(), Some("web"));
        assert_eq!(s.expires_at, Timestamp::from_millis(2300));
        assert_eq!(s.idle_ttl_ms, 500);
        assert_eq!(s.data.get("theme"), Some(&Value::from("dark")));
        assert_eq!(s.user_agent, None);
        assert!(decode(id, vec!["uid".into(), "alice".into()]).is_err());
    }
}
