//! [`Presence`]: validation, defaults, metrics and `presence.changed` events over a
//! [`PresenceStore`], including the offline grace period.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{check_text, observe};
use crate::config::PresenceConfig;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, UserId, validate_id};
use crate::limits::{
    MAX_BATCH, MAX_CONTACTS_TTL_SECONDS, MAX_DATA_BYTES, MAX_ID_BYTES, MAX_SHORT_TEXT_BYTES, MAX_USER_AGENT_BYTES,
};
use crate::presence::{
    ConnRef, ConnectionInfo, Device, DeviceRegistration, MAX_PUSH_TOKEN_BYTES, MAX_STATUS_TEXT_CHARS, OnlinePage,
    PendingFrom, PresenceStatus, PresenceStore, RefreshOutcome, StatusSetting, Transition, UserPresence,
};
use crate::session::json_len;

/// Where `presence.changed` events and contact removals go. The facade wires this to the streams
/// capability (channel `presence:<user_id>`); the default does nothing.
#[async_trait]
pub trait PresenceEvents: Send + Sync + 'static {
    /// The user's presence as *other users* may see it (already passed through
    /// [`UserPresence::visible_to_others`]) changed: online, offline, or status. Called only on
    /// real transitions; an implementation logs its own failures.
    async fn presence_changed(&self, presence: &UserPresence) {
        let _ = presence;
    }

    /// Also deliver `presence` to each of `followers` on their `user:` channel
    /// ([`PresenceConfig::contacts_on_user_channel`]); an implementation logs its own failures.
    async fn presence_changed_for(&self, followers: &[UserId], presence: &UserPresence) {
        let _ = (followers, presence);
    }

    /// `user` no longer has `removed` as contacts (already stored): `user`'s subscriptions to
    /// their presence must end on every node before anything else of theirs reaches `user`.
    /// An error means the subscribers may not have been told; the caller reports it.
    async fn contacts_removed(&self, user: &UserId, removed: &[UserId]) -> Result<()> {
        let _ = (user, removed);
        Ok(())
    }

    /// `device` of `user` was registered asking for [`PendingFrom::Now`]: if it has no
    /// delivery cursor yet, its cursor starts at the current top of `user:<user>`.
    async fn device_registered(&self, user: &UserId, device: &DeviceId) -> Result<()> {
        let _ = (user, device);
        Ok(())
    }
}

/// [`PresenceEvents`] that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPresenceEvents;

impl PresenceEvents for NoPresenceEvents {}

/// A status change request (`PUT /users/{u}/presence/status`, RPC `presence.status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetStatus {
    /// `online`, `away` or `busy`.
    pub status: PresenceStatus,
    /// Status text, at most 128 characters.
    #[serde(default)]
    pub text: Option<String>,
    /// Appear offline to others.
    #[serde(default)]
    pub invisible: bool,
}

/// The presence service. Cheap to clone; clones share their event sink.
#[derive(Clone)]
pub struct Presence {
    store: Arc<dyn PresenceStore>,
    config: PresenceConfig,
    events: Arc<dyn PresenceEvents>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Presence {
    /// Wraps `store`; changes are announced to `events` ([`NoPresenceEvents`] for none).
    pub fn new(store: Arc<dyn PresenceStore>, config: PresenceConfig, events: Arc<dyn PresenceEvents>) -> Self {
        Presence { store, config, events }
    }

    /// The settings in force.
    pub fn config(&self) -> &PresenceConfig {
        &self.config
    }

    /// How often [`Presence::sweep`] should run on each node.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.config.sweep_interval_ms)
    }

    fn grace(&self) -> Duration {
        Duration::from_millis(self.config.offline_grace_ms)
    }

    fn events(&self) -> &dyn PresenceEvents {
        self.events.as_ref()
    }

    async fn emit(&self, presence: &UserPresence) {
        let events = self.events();
        metrics::counter!("switchboard_presence_events_total").increment(1);
        let visible = presence.visible_to_others();
        events.presence_changed(&visible).await;
        if self.config.contacts_on_user_channel {
            match self.followers(&presence.user_id).await {
                Ok(followers) if !followers.is_empty() => events.presence_changed_for(&followers, &visible).await,
                Ok(_) => {}
                Err(e) => tracing::warn!(user.id = %presence.user_id, error = %e, "presence: followers not told"),
            }
        }
    }

    /// The contacts of `user` who have `user` among their own contacts: the ones allowed to
    /// watch `user` (a `presence:` subscription needs exactly that) whom `user` knows of. The
    /// checks run concurrently: one round trip's wait on Redis.
    async fn followers(&self, user: &UserId) -> Result<Vec<UserId>> {
        let mut checks = tokio::task::JoinSet::new();
        for contact in self.store.contacts(user).await? {
            let (store, user) = (self.store.clone(), user.clone());
            checks.spawn(async move {
                let follows = store.is_contact(&contact, &user).await;
                follows.map(|f| f.then_some(contact))
            });
        }
        let mut followers = Vec::new();
        while let Some(joined) = checks.join_next().await {
            let checked = joined.map_err(|e| Error::Internal(format!("contact check: {e}")))?;
            followers.extend(checked?);
        }
        followers.sort();
        Ok(followers)
    }

    /// Emits the user's presence after a transition, unless the user is invisible (others
    /// already see them offline, and keep doing so).
    async fn announce(&self, user: &UserId) -> Result<()> {
        let presence = self.get(user).await?;
        if !presence.invisible {
            self.emit(&presence).await;
        }
        Ok(())
    }

    /// Registers or updates a device. A device without a delivery cursor yet starts its pending
    /// list at the current position of `user:<user>` unless `pending_from` is `oldest`. See
    /// [`PresenceStore::upsert_device`].
    pub async fn register_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        registration: DeviceRegistration,
    ) -> Result<Device> {
        check_text("push_token", &registration.push_token, MAX_PUSH_TOKEN_BYTES)?;
        check_text("app_version", &registration.app_version, MAX_SHORT_TEXT_BYTES)?;
        let meta_bytes: usize = registration.meta.iter().map(|(k, v)| k.len() + json_len(v)).sum();
        if meta_bytes > MAX_DATA_BYTES {
            return Err(Error::PayloadTooLarge(format!("meta: must be at most {MAX_DATA_BYTES} bytes")));
        }
        let from = registration.pending_from;
        let stored = observe("presence", "upsert_device", self.store.upsert_device(user, device, registration)).await?;
        if from == PendingFrom::Now {
            self.events().device_registered(user, device).await?;
        }
        Ok(stored)
    }

    /// The user's devices, most recently active first.
    pub async fn devices(&self, user: &UserId) -> Result<Vec<Device>> {
        observe("presence", "devices", self.store.devices(user)).await
    }

    /// Forgets a device's registration.
    pub async fn remove_device(&self, user: &UserId, device: &DeviceId) -> Result<bool> {
        observe("presence", "remove_device", self.store.remove_device(user, device)).await
    }

    /// Registers a gateway connection with the configured TTL; announces the user online on
    /// [`Transition::WentOnline`]. See [`PresenceStore::connect`].
    pub async fn connect(&self, conn: &ConnectionInfo) -> Result<Transition> {
        validate_id("conn_id", &conn.conn_id, MAX_ID_BYTES, &[])?;
        validate_id("node_id", &conn.node_id, MAX_ID_BYTES, &[])?;
        check_text("ip", &conn.ip, 64)?;
        check_text("user_agent", &conn.user_agent, MAX_USER_AGENT_BYTES)?;
        let ttl = Duration::from_secs(self.config.connection_ttl_seconds);
        let transition = observe("presence", "connect", self.store.connect(conn, ttl)).await?;
        self.after(&conn.user_id, transition).await;
        Ok(transition)
    }

    /// Extends this node's connections, in batches of at most [`MAX_BATCH`] (one engine round
    /// trip each). See [`PresenceStore::refresh`].
    pub async fn refresh(&self, conns: &[ConnRef]) -> Result<RefreshOutcome> {
        let ttl = Duration::from_secs(self.config.connection_ttl_seconds);
        let mut total = RefreshOutcome::default();
        for batch in conns.chunks(MAX_BATCH) {
            let outcome = observe("presence", "refresh", self.store.refresh(batch, ttl)).await?;
            total.refreshed += outcome.refreshed;
            total.missing.extend(outcome.missing);
        }
        Ok(total)
    }

    /// Ends a connection; going offline is announced by a later [`Presence::sweep`] once the
    /// grace period passes without a reconnect. See [`PresenceStore::disconnect`].
    pub async fn disconnect(&self, conn: &ConnRef) -> Result<Transition> {
        observe("presence", "disconnect", self.store.disconnect(conn, self.grace())).await
    }

    /// Marks a device online without a socket for `ttl_seconds` (default from config).
    pub async fn heartbeat(&self, user: &UserId, device: &DeviceId, ttl_seconds: Option<u64>) -> Result<Transition> {
        let seconds = ttl_seconds.unwrap_or(self.config.heartbeat_ttl_seconds);
        if seconds == 0 || seconds > 86_400 {
            return Err(Error::invalid("ttl_seconds", "must be 1..=86400"));
        }
        let transition =
            observe("presence", "heartbeat", self.store.heartbeat(user, device, Duration::from_secs(seconds))).await?;
        self.after(user, transition).await;
        Ok(transition)
    }

    /// Ends the device's heartbeat now: explicit offline for a device without a socket. As for a
    /// disconnect, the user goes offline once the grace period passes without a new entry. See
    /// [`PresenceStore::end_heartbeat`].
    pub async fn end_heartbeat(&self, user: &UserId, device: &DeviceId) -> Result<Transition> {
        observe("presence", "end_heartbeat", self.store.end_heartbeat(user, device, self.grace())).await
    }

    async fn after(&self, user: &UserId, transition: Transition) {
        if transition == Transition::WentOnline {
            metrics::counter!("switchboard_presence_transitions_total", "to" => "online").increment(1);
            // The transition is stored; failing to read it back only loses this event.
            if let Err(e) = self.announce(user).await {
                tracing::warn!(user.id = %user, error = %e, "presence: online event not sent");
            }
        }
    }

    /// The user's live connections.
    pub async fn connections(&self, user: &UserId) -> Result<Vec<ConnectionInfo>> {
        observe("presence", "connections", self.store.connections(user)).await
    }

    /// Sets status, text and invisibility; announces the change if what others see changed.
    pub async fn set_status(&self, user: &UserId, req: SetStatus) -> Result<UserPresence> {
        if req.status == PresenceStatus::Offline {
            return Err(Error::invalid("status", "must be online, away or busy (use invisible to appear offline)"));
        }
        if let Some(text) = &req.text
            && text.chars().count() > MAX_STATUS_TEXT_CHARS
        {
            return Err(Error::invalid("text", format!("must be at most {MAX_STATUS_TEXT_CHARS} characters")));
        }
        let setting = StatusSetting { status: req.status, text: req.text, invisible: req.invisible };
        let change = observe("presence", "set_status", self.store.set_status(user, &setting, self.grace())).await?;
        let in_grace = change.presence.online && !change.presence.devices.iter().any(|d| d.online);
        let before = UserPresence::from_parts_in_grace(
            change.presence.user_id.clone(),
            change.previous.clone(),
            change.presence.devices.clone(),
            in_grace,
        );
        if before.visible_to_others() != change.presence.visible_to_others() {
            self.emit(&change.presence).await;
        }
        Ok(change.presence)
    }

    /// The user's full presence (for the user and backends): online while a device has a live
    /// connection or heartbeat and for the offline grace period after the last one ended — the
    /// rule [`Presence::online_users`], [`Presence::online_count`] and `presence.changed`
    /// events follow too.
    pub async fn get(&self, user: &UserId) -> Result<UserPresence> {
        observe("presence", "get", self.store.get(user, self.grace())).await
    }

    /// `user`'s presence as `viewer` may see it: full for the user themself, else
    /// [`UserPresence::visible_to_others`]. Whether `viewer` may look at all (contacts) is the
    /// caller's check.
    pub async fn get_for(&self, viewer: &UserId, user: &UserId) -> Result<UserPresence> {
        let presence = self.get(user).await?;
        Ok(if viewer == user { presence } else { presence.visible_to_others() })
    }

    /// Presence of up to [`MAX_BATCH`] users, full, in the given order.
    pub async fn bulk(&self, users: &[UserId]) -> Result<Vec<UserPresence>> {
        if users.len() > MAX_BATCH {
            return Err(Error::invalid("user_ids", format!("at most {MAX_BATCH} per call")));
        }
        observe("presence", "bulk", self.store.bulk(users, self.grace())).await
    }

    /// One page of online users (`limit` 1..=1000, default 100), by the rule [`Presence::get`]
    /// follows: a [`Presence::sweep`] runs first, so a user whose grace period has passed is
    /// not listed (and is announced offline now if no node has done it yet). Its cost is that of
    /// the due transitions only.
    pub async fn online_users(&self, cursor: Option<&str>, limit: Option<usize>) -> Result<OnlinePage> {
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > MAX_BATCH {
            return Err(Error::invalid("limit", format!("must be 1..={MAX_BATCH}")));
        }
        if let Some(cursor) = cursor {
            validate_id("cursor", cursor, MAX_ID_BYTES, &[])?;
        }
        self.sweep().await?;
        observe("presence", "online_users", self.store.online_users(cursor, limit)).await
    }

    /// Number of online users, by the same rule as [`Presence::online_users`] (sweeps first).
    pub async fn online_count(&self) -> Result<u64> {
        self.sweep().await?;
        observe("presence", "online_count", self.store.online_count()).await
    }

    /// One sweep: announces every user whose offline transition is due (grace period over,
    /// whether after a disconnect or after their entries expired). Run it every
    /// [`Presence::sweep_interval`] on every node; each transition is announced by exactly one
    /// node. Returns how many users went offline.
    pub async fn sweep(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let batch = self.config.sweep_batch;
            let offline = observe("presence", "sweep", self.store.sweep(self.grace(), batch)).await?;
            metrics::counter!("switchboard_presence_transitions_total", "to" => "offline")
                .increment(offline.len() as u64);
            total += offline.len();
            for user in &offline {
                if let Err(e) = self.announce(user).await {
                    tracing::warn!(user.id = %user, error = %e, "presence: offline event not sent");
                }
            }
            if offline.len() < batch {
                return Ok(total);
            }
        }
    }

    /// Replaces the user's contacts (at most `max_contacts`), optionally expiring after
    /// `ttl_seconds` (1..=365 days).
    pub async fn set_contacts(&self, user: &UserId, contacts: &[UserId], ttl_seconds: Option<u64>) -> Result<()> {
        if contacts.len() > self.config.max_contacts {
            return Err(Error::invalid("contacts", format!("at most {} per user", self.config.max_contacts)));
        }
        let ttl = match ttl_seconds {
            Some(s) if s == 0 || s > MAX_CONTACTS_TTL_SECONDS => {
                return Err(Error::invalid("ttl_seconds", format!("must be 1..={MAX_CONTACTS_TTL_SECONDS}")));
            }
            Some(s) => Some(Duration::from_secs(s)),
            None => None,
        };
        let replaced = observe("presence", "set_contacts", self.store.set_contacts(user, contacts, ttl)).await?;
        let kept: std::collections::HashSet<&UserId> = contacts.iter().collect();
        let removed: Vec<UserId> = replaced.into_iter().filter(|c| !kept.contains(c)).collect();
        self.events().contacts_removed(user, &removed).await
    }

    /// Adds contacts (at most [`MAX_BATCH`] per call); returns how many were new.
    pub async fn add_contacts(&self, user: &UserId, contacts: &[UserId]) -> Result<usize> {
        check_batch(contacts)?;
        observe("presence", "add_contacts", self.store.add_contacts(user, contacts, self.config.max_contacts)).await
    }

    /// Removes contacts (at most [`MAX_BATCH`] per call); returns how many were present.
    pub async fn remove_contacts(&self, user: &UserId, contacts: &[UserId]) -> Result<usize> {
        check_batch(contacts)?;
        let removed = observe("presence", "remove_contacts", self.store.remove_contacts(user, contacts)).await?;
        if removed > 0 {
            // The store counts but does not name them; telling one who was not a contact only
            // makes subscribers check again, which changes nothing for them.
            self.events().contacts_removed(user, contacts).await?;
        }
        Ok(removed)
    }

    /// The user's contacts.
    pub async fn contacts(&self, user: &UserId) -> Result<Vec<UserId>> {
        observe("presence", "contacts", self.store.contacts(user)).await
    }

    /// Whether `other` is one of `user`'s contacts.
    pub async fn is_contact(&self, user: &UserId, other: &UserId) -> Result<bool> {
        observe("presence", "is_contact", self.store.is_contact(user, other)).await
    }

    /// Reports this node alive with `connections` connections, for [`Presence::nodes`] on
    /// every node; the report lasts three connection refreshes (the gateway reports at each).
    pub async fn report_node(&self, node_id: &str, connections: u64) -> Result<()> {
        if node_id.is_empty() || node_id.len() > MAX_NODE_ID_BYTES {
            return Err(Error::invalid("node_id", format!("must be 1..={MAX_NODE_ID_BYTES} bytes")));
        }
        let ttl = Duration::from_secs(self.config.connection_ttl_seconds);
        observe("presence", "report_node", self.store.report_node(node_id, connections, ttl)).await
    }

    /// The nodes that reported within their TTL, by node id.
    pub async fn nodes(&self) -> Result<Vec<crate::presence::NodeReport>> {
        observe("presence", "nodes", self.store.nodes()).await
    }
}

/// Longest node id a node may report.
const MAX_NODE_ID_BYTES: usize = 128;

fn check_batch(ids: &[UserId]) -> Result<()> {
    if ids.len() > MAX_BATCH {
        return Err(Error::invalid("contacts", format!("at most {MAX_BATCH} per call")));
    }
    Ok(())
}
