//! [`Notifications`]: validation and bounds over a [`NotificationStore`], the `notification.new`
//! and `notification.updated` events on the user's personal channel, and the push hook.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::{Presence, Streams, check_text, observe};
use crate::channel::ChannelName;
use crate::config::NotificationsConfig;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, NotificationId, UserId};
use crate::limits::{MAX_BATCH, MAX_DATA_BYTES, MAX_SHORT_TEXT_BYTES};
use crate::notification::{
    CreatedNotification, Mark, NewNotification, Notification, NotificationChange, NotificationPage, NotificationStatus,
    NotificationStore,
};
use crate::session::json_len;
use crate::stream::NewPublication;

/// Longest notification body, in bytes.
const MAX_BODY_BYTES: usize = 4 * 1024;

/// Asks for a push when a notification finds no device of its user online. Given at construction
/// ([`crate::SwitchboardBuilder::push_hook`], [`crate::SwitchboardBuilder::push_hook_with`]); the
/// server's `builtin_jobs::queue_pushes` enqueues a `push.send` job. The default does nothing.
#[async_trait]
pub trait PushHook: Send + Sync + 'static {
    /// `notification` was created for `user` while none of their devices was online. An
    /// implementation logs its own failures.
    async fn no_device_online(&self, user: &UserId, notification: &Notification) {
        let _ = (user, notification);
    }
}

/// [`PushHook`] that asks for nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPushHook;

impl PushHook for NoPushHook {}

/// The notifications service. Cheap to clone; clones share their push hook.
#[derive(Clone)]
pub struct Notifications {
    store: Arc<dyn NotificationStore>,
    config: NotificationsConfig,
    streams: Streams,
    presence: Presence,
    push: Arc<dyn PushHook>,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Notifications {
    /// Wraps `store`; events go out through `streams`, `presence` says who is online, and `push`
    /// is asked when nobody is ([`NoPushHook`] for no pushes).
    pub fn new(
        store: Arc<dyn NotificationStore>,
        config: NotificationsConfig,
        streams: Streams,
        presence: Presence,
        push: Arc<dyn PushHook>,
    ) -> Self {
        Notifications { store, config, streams, presence, push }
    }

    /// The settings in force.
    pub fn config(&self) -> &NotificationsConfig {
        &self.config
    }

    /// Stores a notification (idempotent by id) and, when it is new, publishes
    /// `notification.new` on `user:<user>` (stored: offline devices get it on reconnect) and asks
    /// the push hook when no device of the user is online. See [`NotificationStore::create`].
    pub async fn create(&self, user: &UserId, new: NewNotification) -> Result<CreatedNotification> {
        check(&new)?;
        let created =
            observe("notifications", "create", self.store.create(user, &new, self.config.retention())).await?;
        if !created.created {
            return Ok(created);
        }
        metrics::counter!("switchboard_notifications_created_total").increment(1);
        let event = json!({"type": "notification.new", "data": created.notification});
        self.publish(user, NewPublication::new(event), "notification.new").await;
        match self.presence.get(user).await {
            // A device live now, not the user's grace period: a user who just left gets the push.
            Ok(presence) if presence.devices.iter().any(|d| d.online) => {}
            Ok(_) => {
                self.push.no_device_online(user, &created.notification).await;
            }
            Err(e) => tracing::warn!(user.id = %user, error = %e, "presence unknown: no push asked"),
        }
        Ok(created)
    }

    /// A page of the user's notifications, newest first (`limit` 1..=1000).
    pub async fn list(
        &self,
        user: &UserId,
        cursor: Option<&str>,
        limit: usize,
        unread_only: bool,
    ) -> Result<NotificationPage> {
        if limit == 0 || limit > MAX_BATCH {
            return Err(Error::invalid("limit", format!("must be 1..={MAX_BATCH}")));
        }
        if cursor.is_some_and(|c| c.is_empty() || c.len() > 64) {
            return Err(Error::invalid("cursor", "is not a cursor"));
        }
        observe("notifications", "list", self.store.list(user, cursor, limit, unread_only)).await
    }

    /// The notification, or `None`.
    pub async fn get(&self, user: &UserId, id: &NotificationId) -> Result<Option<Notification>> {
        observe("notifications", "get", self.store.get(user, id)).await
    }

    /// The notification's state, or `None`.
    pub async fn status(&self, user: &UserId, id: &NotificationId) -> Result<Option<NotificationStatus>> {
        observe("notifications", "status", self.store.status(user, id)).await
    }

    /// How many notifications are unread (neither read nor dismissed).
    pub async fn unread_count(&self, user: &UserId) -> Result<u64> {
        observe("notifications", "unread_count", self.store.unread_count(user)).await
    }

    /// Marks `ids` read; publishes `notification.updated` for each real change to the user's
    /// devices but `source_device`. Returns the real changes.
    pub async fn read(
        &self,
        user: &UserId,
        ids: &[NotificationId],
        source_device: Option<&DeviceId>,
    ) -> Result<Vec<NotificationChange>> {
        check_ids(ids)?;
        let changes = observe("notifications", "read", self.store.read(user, ids)).await?;
        self.announce(user, &changes, source_device).await;
        Ok(changes)
    }

    /// Marks `ids` dismissed; like [`Notifications::read`].
    pub async fn dismiss(
        &self,
        user: &UserId,
        ids: &[NotificationId],
        source_device: Option<&DeviceId>,
    ) -> Result<Vec<NotificationChange>> {
        check_ids(ids)?;
        let changes = observe("notifications", "dismiss", self.store.dismiss(user, ids)).await?;
        self.announce(user, &changes, source_device).await;
        Ok(changes)
    }

    /// Marks `ids` unread again (clears `read`; a dismissed one stays dismissed, so it does not
    /// count as unread); like [`Notifications::read`].
    pub async fn unread(
        &self,
        user: &UserId,
        ids: &[NotificationId],
        source_device: Option<&DeviceId>,
    ) -> Result<Vec<NotificationChange>> {
        check_ids(ids)?;
        let changes = observe("notifications", "unread", self.store.mark(user, ids, Mark::Unread)).await?;
        self.announce(user, &changes, source_device).await;
        Ok(changes)
    }

    /// Marks every notification read; like [`Notifications::read`].
    pub async fn read_all(&self, user: &UserId, source_device: Option<&DeviceId>) -> Result<Vec<NotificationChange>> {
        let changes = observe("notifications", "read_all", self.store.read_all(user)).await?;
        self.announce(user, &changes, source_device).await;
        Ok(changes)
    }

    async fn announce(&self, user: &UserId, changes: &[NotificationChange], source: Option<&DeviceId>) {
        for change in changes {
            let event = json!({"type": "notification.updated", "data": change});
            let publication = NewPublication { exclude_device: source.cloned(), ..NewPublication::new(event) };
            self.publish(user, publication, "notification.updated").await;
        }
    }

    /// Publishes on `user:<user>`. The state change already happened, so a failure is logged,
    /// not returned: the list stays the source of truth for a device that resyncs.
    async fn publish(&self, user: &UserId, publication: NewPublication, event: &'static str) {
        if let Err(e) = self.streams.publish(&ChannelName::user(user), publication).await {
            tracing::warn!(user.id = %user, event, error = %e, "notification event not published");
        }
    }
}

fn check(new: &NewNotification) -> Result<()> {
    if new.title.len() > MAX_SHORT_TEXT_BYTES {
        return Err(Error::invalid("title", format!("must be at most {MAX_SHORT_TEXT_BYTES} bytes")));
    }
    if new.body.len() > MAX_BODY_BYTES {
        return Err(Error::invalid("body", format!("must be at most {MAX_BODY_BYTES} bytes")));
    }
    check_text("app_name", &new.app_name, MAX_SHORT_TEXT_BYTES)?;
    check_text("collapse_key", &new.collapse_key, MAX_SHORT_TEXT_BYTES)?;
    let size = json_len(&new.data);
    if size > MAX_DATA_BYTES {
        return Err(Error::PayloadTooLarge(format!("data: {size} bytes is over the limit of {MAX_DATA_BYTES} bytes")));
    }
    Ok(())
}

fn check_ids(ids: &[NotificationId]) -> Result<()> {
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(Error::invalid("ids", format!("must hold 1..={MAX_BATCH} ids")));
    }
    Ok(())
}
