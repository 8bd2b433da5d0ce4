//! Sessions: a user's logged-in devices, with sliding idle expiry capped by an absolute expiry,
//! and the [`SessionStore`] contract every engine implements.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::ids::{DeviceId, SessionId, UserId};
use crate::time::Timestamp;

/// The free-form data object of a session (at most [`crate::limits::MAX_DATA_BYTES`]).
pub type SessionData = Map<String, Value>;

/// What is known about the device a session was created on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceInfo {
    /// The app's own id for the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
    /// Kind of device, e.g. `mobile`, `desktop`, `web`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Operating system, e.g. `iOS 19`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Browser, e.g. `Firefox 150`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// Coarse location, e.g. `Berlin, DE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Version of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
}

/// A validated request to create a session, with its TTLs resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// Owner of the session.
    pub user_id: UserId,
    /// Device the session lives on.
    pub device: DeviceInfo,
    /// Client IP address, as the backend saw it.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Initial data.
    pub data: SessionData,
    /// Idle expiry: the session ends this long after its last activity.
    pub idle_ttl: Duration,
    /// Absolute expiry: the session ends this long after creation, whatever its activity.
    pub absolute_ttl: Duration,
    /// A caller-chosen id ([`SessionId::custom`]); `None` generates one.
    pub id: Option<SessionId>,
    /// Replace the user's live sessions on this device (one session per device).
    pub replace_device: Option<DeviceId>,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// The session id (a bearer secret).
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Device the session lives on.
    pub device: DeviceInfo,
    /// Client IP address at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Client user agent at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Free-form data, updated field by field.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: SessionData,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last create or touch.
    pub last_active_at: Timestamp,
    /// When the session ends unless touched: min(last_active_at + idle, absolute_expires_at).
    pub expires_at: Timestamp,
    /// When the session ends whatever its activity.
    pub absolute_expires_at: Timestamp,
    /// The idle TTL, in milliseconds.
    pub idle_ttl_ms: u64,
}

/// The answer to [`SessionStore::create`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedSession {
    /// The new session.
    pub session: Session,
    /// Sessions of the same user removed to respect the per-user maximum, least recently
    /// active first.
    pub evicted: Vec<SessionId>,
    /// The user's sessions on the same device that this one replaced
    /// ([`NewSession::replace_device`]).
    pub replaced: Vec<SessionId>,
}

/// Storage of sessions. All times come from the engine's clock (the Redis server's for Redis).
///
/// Contract, for every engine:
/// - A session is *live* while `now < expires_at`, where `expires_at = min(last_active_at +
///   idle_ttl, absolute_expires_at)`. No method ever returns or counts a session that is not live;
///   an expired session behaves exactly like a deleted one (`None` / `false`).
/// - Every method is atomic: concurrent callers observe each call either fully applied or not.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session with a fresh id, or with [`NewSession::id`] when given (fails with
    /// [`crate::Error::Conflict`], changing nothing, while a live session has that id). With
    /// [`NewSession::replace_device`], the user's live sessions whose `device.device_id` is that
    /// device are deleted first and returned in `replaced`. Then, when `max_per_user > 0` and
    /// the user still has that many live sessions, the least recently active ones are deleted so
    /// the user ends with exactly `max_per_user`; their ids are returned in `evicted`. Done in
    /// one atomic step, so concurrent creates never leave a user above the maximum (nor, with
    /// `replace_device`, with two sessions on one device).
    async fn create(&self, new: NewSession, max_per_user: u32) -> Result<CreatedSession>;

    /// The live session with this id, or `None`.
    async fn get(&self, id: &SessionId) -> Result<Option<Session>>;

    /// Marks activity: `last_active_at = now` and `expires_at = min(now + idle_ttl,
    /// absolute_expires_at)`. `None` if the session is not live.
    async fn touch(&self, id: &SessionId) -> Result<Option<Session>>;

    /// Merges `patch` into the session's data field by field: a `null` value deletes the field,
    /// any other value replaces that field only. Concurrent patches of different fields never
    /// lose each other's writes. Fails with [`crate::Error::PayloadTooLarge`] (and changes
    /// nothing) if the merged data would exceed `max_data_bytes` as measured by [`data_size`].
    /// Does not count as activity. `None` if the session is not live.
    async fn update_data(&self, id: &SessionId, patch: &SessionData, max_data_bytes: usize) -> Result<Option<Session>>;

    /// Deletes the session; `false` if it was not live.
    async fn delete(&self, id: &SessionId) -> Result<bool>;

    /// The user's live sessions, most recently active first (ties: newest id order unspecified).
    async fn list(&self, user: &UserId) -> Result<Vec<Session>>;

    /// Deletes all of the user's live sessions except `except` (if given and live); returns the
    /// deleted ids.
    async fn delete_user_sessions(&self, user: &UserId, except: Option<&SessionId>) -> Result<Vec<SessionId>>;

    /// The number of live sessions across all users, for metrics. Never counts a deleted or
    /// absolutely expired session; an engine that counts lazily may keep counting an idle-expired
    /// one for up to 1/8 of its idle TTL (the Redis engine does, to keep `touch` one round trip).
    async fn count_active(&self) -> Result<u64>;
}

/// The size a data object counts for against its bound: the sum over fields of the field name's
/// length plus the length of its value serialized as compact JSON. Both engines measure this way.
pub fn data_size(data: &SessionData) -> usize {
    data.iter().map(|(k, v)| k.len() + json_len(v)).sum()
}

/// Length of `v` serialized as compact JSON.
pub fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX / 2)
}

/// `value` as session data: it must serialize to a JSON object.
pub fn to_data(value: &impl Serialize) -> Result<SessionData> {
    match serde_json::to_value(value).map_err(|e| Error::invalid("data", e))? {
        Value::Object(data) => Ok(data),
        _ => Err(Error::invalid("data", "must be a JSON object")),
    }
}

impl Session {
    /// The session's data as `T`; data that is not a `T` fails with [`Error::Conflict`].
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(Value::Object(self.data.clone()))
            .map_err(|e| Error::Conflict(format!("session data is not of the type asked for: {e}")))
    }
}
