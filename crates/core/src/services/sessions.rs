//! [`Sessions`]: session defaults, validation and metrics over a [`SessionStore`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::presence::Presence;
use super::{check_text, observe};
use crate::config::SessionsConfig;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, SessionId, UserId};
use crate::limits::{MAX_SHORT_TEXT_BYTES, MAX_USER_AGENT_BYTES};
use crate::session::{CreatedSession, DeviceInfo, NewSession, Session, SessionData, SessionStore, data_size};

/// Longest TTL a session may ask for: one year.
const MAX_TTL_SECONDS: u64 = 365 * 86_400;

/// A request to create a session; unset TTLs take the configured defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSession {
    /// Owner of the session.
    pub user_id: UserId,
    /// Device the session lives on.
    #[serde(default)]
    pub device: DeviceInfo,
    /// Client IP address.
    #[serde(default)]
    pub ip: Option<String>,
    /// Client user agent.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Initial data (at most 4 KiB).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: SessionData,
    /// Idle TTL in seconds, 1..=31536000 (default from config, 1 h).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 31536000))]
    pub idle_ttl_seconds: Option<u64>,
    /// Absolute TTL in seconds, 1..=31536000 (default from config, 30 d).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 31536000))]
    pub absolute_ttl_seconds: Option<u64>,
    /// The session id, when the app chooses it (e.g. the `sid` of a token it minted first):
    /// 32..=128 characters of `A-Z a-z 0-9 _ -`, drawn at random by the app. `409` while a live
    /// session has it. Absent: a fresh random id.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 32, max_length = 128, pattern = "^[A-Za-z0-9_-]+$"))]
    pub id: Option<String>,
    /// One session per device: the user's live sessions on `device.device_id` (required then)
    /// are deleted in the same step and listed in `replaced`.
    #[serde(default)]
    pub replace_device: bool,
}

impl CreateSession {
    /// This request with `data` as its initial data (it must serialize to a JSON object; read
    /// it back with [`Session::data_as`]).
    pub fn with_data(mut self, data: &impl Serialize) -> Result<Self> {
        self.data = crate::session::to_data(data)?;
        Ok(self)
    }

    /// A request with only the user set.
    pub fn for_user(user_id: UserId) -> Self {
        CreateSession {
            user_id,
            device: DeviceInfo::default(),
            ip: None,
            user_agent: None,
            data: SessionData::new(),
            idle_ttl_seconds: None,
            absolute_ttl_seconds: None,
            id: None,
            replace_device: false,
        }
    }
}

/// The sessions service.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    config: SessionsConfig,
    /// Told of session activity when [`SessionsConfig::count_as_online`] is on.
    presence: Option<Presence>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Sessions {
    /// Wraps `store` with `config`'s defaults.
    pub fn new(store: Arc<dyn SessionStore>, config: SessionsConfig) -> Self {
        Sessions { store, config, presence: None }
    }

    /// Gives the service the presence capability, used when
    /// [`SessionsConfig::count_as_online`] is on: an active session then keeps its device online.
    pub fn with_presence(mut self, presence: Presence) -> Self {
        self.presence = Some(presence);
        self
    }

    /// The presence service to tell about session activity, if the option is on.
    fn online_hook(&self) -> Option<&Presence> {
        self.presence.as_ref().filter(|_| self.config.count_as_online)
    }

    /// The session's device was active: a heartbeat for it. The session operation has happened
    /// already, so a failure here is logged, not returned.
    async fn mark_active(&self, session: &Session) {
        let (Some(presence), Some(device)) = (self.online_hook(), &session.device.device_id) else { return };
        if let Err(e) = presence.heartbeat(&session.user_id, device, None).await {
            tracing::warn!(user.id = %session.user_id, device.id = %device, error = %e, "sessions: device not marked online");
        }
    }

    /// Sessions on these devices of `user` ended: each device with no live session left stops
    /// counting as online (its heartbeat ends).
    async fn mark_ended(&self, user: &UserId, ended: Vec<Session>) {
        let Some(presence) = self.online_hook() else { return };
        let devices: std::collections::BTreeSet<DeviceId> =
            ended.into_iter().filter_map(|s| s.device.device_id).collect();
        if devices.is_empty() {
            return;
        }
        let remaining = match self.store.list(user).await {
            Ok(sessions) => sessions,
            Err(e) => {
                tracing::warn!(user.id = %user, error = %e, "sessions: devices not marked offline");
                return;
            }
        };
        for device in devices {
            if remaining.iter().any(|s| s.device.device_id.as_ref() == Some(&device)) {
                continue;
            }
            if let Err(e) = presence.end_heartbeat(user, &device).await {
                tracing::warn!(user.id = %user, device.id = %device, error = %e, "sessions: device not marked offline");
            }
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &SessionsConfig {
        &self.config
    }

    /// Creates a session, evicting the user's least recently active ones beyond the maximum.
    /// See [`SessionStore::create`].
    pub async fn create(&self, req: CreateSession) -> Result<CreatedSession> {
        let new = self.validate(req)?;
        let created = observe("sessions", "create", self.store.create(new, self.config.max_per_user)).await?;
        metrics::counter!("switchboard_sessions_created_total").increment(1);
        if !created.evicted.is_empty() {
            metrics::counter!("switchboard_sessions_evicted_total").increment(created.evicted.len() as u64);
        }
        if !created.replaced.is_empty() {
            metrics::counter!("switchboard_sessions_replaced_total").increment(created.replaced.len() as u64);
        }
        self.mark_active(&created.session).await;
        Ok(created)
    }

    fn validate(&self, req: CreateSession) -> Result<NewSession> {
        let d = &req.device;
        for (field, value) in [
            ("device.type", &d.kind),
            ("device.os", &d.os),
            ("device.browser", &d.browser),
            ("device.location", &d.location),
            ("device.app_version", &d.app_version),
        ] {
            check_text(field, value, MAX_SHORT_TEXT_BYTES)?;
        }
        check_text("ip", &req.ip, 64)?;
        check_text("user_agent", &req.user_agent, MAX_USER_AGENT_BYTES)?;
        self.check_data_size(&req.data)?;
        let idle = ttl("idle_ttl_seconds", req.idle_ttl_seconds.unwrap_or(self.config.idle_ttl_seconds))?;
        let absolute =
            ttl("absolute_ttl_seconds", req.absolute_ttl_seconds.unwrap_or(self.config.absolute_ttl_seconds))?;
        let id = req.id.map(|id| SessionId::custom("id", id)).transpose()?;
        let replace_device = match (&req.device.device_id, req.replace_device) {
            (_, false) => None,
            (Some(device), true) => Some(device.clone()),
            (None, true) => return Err(Error::invalid("replace_device", "needs device.device_id")),
        };
        Ok(NewSession {
            user_id: req.user_id,
            device: req.device,
            ip: req.ip,
            user_agent: req.user_agent,
            data: req.data,
            idle_ttl: idle,
            absolute_ttl: absolute,
            id,
            replace_device,
        })
    }

    fn check_data_size(&self, data: &SessionData) -> Result<()> {
        let max = self.config.max_data_bytes;
        if data_size(data) > max {
            return Err(Error::PayloadTooLarge(format!("data: must be at most {max} bytes")));
        }
        Ok(())
    }

    /// The live session, or `None`. See [`SessionStore::get`].
    pub async fn get(&self, id: &SessionId) -> Result<Option<Session>> {
        observe("sessions", "get", self.store.get(id)).await
    }

    /// Slides the idle expiry. See [`SessionStore::touch`].
    pub async fn touch(&self, id: &SessionId) -> Result<Option<Session>> {
        let touched = observe("sessions", "touch", self.store.touch(id)).await?;
        if let Some(session) = &touched {
            self.mark_active(session).await;
        }
        Ok(touched)
    }

    /// [`Sessions::update_data`] with the fields of `patch`, which must serialize to a JSON object.
    pub async fn update_data_as(&self, id: &SessionId, patch: &impl Serialize) -> Result<Option<Session>> {
        self.update_data(id, &crate::session::to_data(patch)?).await
    }

    /// Merges `patch` into the data field by field (`null` deletes). See
    /// [`SessionStore::update_data`].
    pub async fn update_data(&self, id: &SessionId, patch: &SessionData) -> Result<Option<Session>> {
        self.check_data_size(patch)?;
        observe("sessions", "update", self.store.update_data(id, patch, self.config.max_data_bytes)).await
    }

    /// Deletes one session. See [`SessionStore::delete`].
    pub async fn delete(&self, id: &SessionId) -> Result<bool> {
        // With the option on, the session is read first to know its device.
        let before = match self.online_hook() {
            Some(_) => self.get(id).await?,
            None => None,
        };
        let deleted = observe("sessions", "delete", self.store.delete(id)).await?;
        if deleted && let Some(session) = before {
            let user = session.user_id.clone();
            self.mark_ended(&user, vec![session]).await;
        }
        Ok(deleted)
    }

    /// The user's live sessions, most recently active first.
    pub async fn list(&self, user: &UserId) -> Result<Vec<Session>> {
        observe("sessions", "list", self.store.list(user)).await
    }

    /// The user's live sessions on one device (`device.device_id`), most recently active first:
    /// at most one when every login on it used `replace_device`.
    pub async fn list_device(&self, user: &UserId, device: &DeviceId) -> Result<Vec<Session>> {
        let mut sessions = self.list(user).await?;
        sessions.retain(|s| s.device.device_id.as_ref() == Some(device));
        Ok(sessions)
    }

    /// Logout everywhere (or everywhere else, keeping `except`).
    pub async fn delete_user_sessions(&self, user: &UserId, except: Option<&SessionId>) -> Result<Vec<SessionId>> {
        let before = match self.online_hook() {
            Some(_) => self.list(user).await?,
            None => Vec::new(),
        };
        let deleted = observe("sessions", "delete_user", self.store.delete_user_sessions(user, except)).await?;
        if !before.is_empty() {
            let ended = before.into_iter().filter(|s| deleted.contains(&s.id)).collect();
            self.mark_ended(user, ended).await;
        }
        Ok(deleted)
    }

    /// Number of live sessions.
    pub async fn count_active(&self) -> Result<u64> {
        observe("sessions", "count", self.store.count_active()).await
    }
}

fn ttl(field: &str, seconds: u64) -> Result<Duration> {
    if seconds == 0 || seconds > MAX_TTL_SECONDS {
        return Err(Error::invalid(field, format!("must be 1..={MAX_TTL_SECONDS}")));
    }
    Ok(Duration::from_secs(seconds))
}
