//! Notifications and cross-device sync: what a notification is, its read/dismissed
//! state, the retention bounds, and the [`NotificationStore`] contract every engine implements.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids::{NotificationId, UserId};
use crate::time::Timestamp;

/// Default most notifications kept per user.
pub const DEFAULT_MAX_NOTIFICATIONS: u32 = 100;
/// Default retention of a notification: 7 days.
pub const DEFAULT_NOTIFICATION_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
/// Largest `max_per_user` accepted: reads scan a user's notifications.
pub const MAX_NOTIFICATIONS_PER_USER: u32 = 1000;

/// How urgent a notification is (picks the push queue's priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Priority {
    /// Deliver as soon as possible.
    High,
    /// The default.
    #[default]
    Normal,
}

/// A notification as the backend creates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewNotification {
    /// The backend's id: creating the same id again is a no-op that returns the stored one.
    pub id: NotificationId,
    /// The app it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// Title (at most 256 bytes).
    pub title: String,
    /// Body text (at most 4 KiB).
    #[serde(default)]
    pub body: String,
    /// Free-form data for the app (serialized at most 4 KiB).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
    /// `high` or `normal` (default).
    #[serde(default)]
    pub priority: Priority,
    /// Notifications with the same key replace each other on a device's push tray.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
}

/// A stored notification with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    /// The backend's id.
    pub id: NotificationId,
    /// The app it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// Free-form data for the app.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
    /// `high` or `normal`.
    pub priority: Priority,
    /// Replacement key on a device's push tray.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
    /// When it was stored (the engine's clock).
    pub created_at: Timestamp,
    /// Read on some device.
    pub read: bool,
    /// Dismissed on some device.
    pub dismissed: bool,
    /// The last real change of `read` or `dismissed` (or `created_at`).
    pub updated_at: Timestamp,
}

impl Notification {
    /// The stored form of `new` with a fresh state at `now`.
    pub fn from_new(new: NewNotification, now: Timestamp) -> Self {
        Notification {
            id: new.id,
            app_name: new.app_name,
            title: new.title,
            body: new.body,
            data: new.data,
            priority: new.priority,
            collapse_key: new.collapse_key,
            created_at: now,
            read: false,
            dismissed: false,
            updated_at: now,
        }
    }

    /// Its state.
    pub fn status(&self) -> NotificationStatus {
        NotificationStatus { read: self.read, dismissed: self.dismissed, updated_at: self.updated_at }
    }

    /// Counted as unread: neither read nor dismissed.
    pub fn is_unread(&self) -> bool {
        !self.read && !self.dismissed
    }
}

/// A notification's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationStatus {
    /// Read on some device.
    pub read: bool,
    /// Dismissed on some device.
    pub dismissed: bool,
    /// The last real change.
    pub updated_at: Timestamp,
}

/// One real change of a notification's state; also the data of `notification.updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationChange {
    /// The notification.
    pub id: NotificationId,
    /// Its state after the change.
    pub read: bool,
    /// Its state after the change.
    pub dismissed: bool,
    /// When the change happened (the engine's clock).
    pub updated_at: Timestamp,
}

/// The answer to [`NotificationStore::create`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedNotification {
    /// The stored notification (the earlier one when the id existed).
    pub notification: Notification,
    /// `false` when the id was already stored: nothing changed.
    pub created: bool,
}

/// One page of a user's notifications, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationPage {
    /// Notifications, newest first.
    pub notifications: Vec<Notification>,
    /// Pass it as `cursor` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What a mark operation changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Set `read`.
    Read,
    /// Set `dismissed`.
    Dismissed,
    /// Clear `read` (mark unread again; `dismissed` is kept).
    Unread,
}

/// How many notifications a user keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationRetention {
    /// Most notifications kept; creating one more evicts the oldest.
    pub max_per_user: u32,
    /// A notification older than this is gone.
    pub max_age: Duration,
}

impl Default for NotificationRetention {
    fn default() -> Self {
        NotificationRetention { max_per_user: DEFAULT_MAX_NOTIFICATIONS, max_age: DEFAULT_NOTIFICATION_MAX_AGE }
    }
}

impl NotificationRetention {
    /// Checks the bounds (`max_per_user` 1..=1000, `max_age` 1 ms..=365 d).
    pub fn validate(&self, field: &str) -> Result<()> {
        if self.max_per_user == 0 || self.max_per_user > MAX_NOTIFICATIONS_PER_USER {
            return Err(Error::invalid(field, format!("max_per_user must be 1..={MAX_NOTIFICATIONS_PER_USER}")));
        }
        if self.max_age.is_zero() || self.max_age > Duration::from_secs(365 * 86_400) {
            return Err(Error::invalid(field, "max_age must be between 1 ms and 365 days"));
        }
        Ok(())
    }
}

/// Storage of each user's notifications. All times come from the engine's clock.
///
/// Contract, for every engine:
/// - Notifications belong to one user; ids are unique per user. Order is creation order: lists
///   are newest first and a page cursor is an opaque position in that order.
/// - Retention: a user keeps at most the `max_per_user` newest notifications of the latest
///   [`create`](Self::create) (creating one more evicts the oldest, whatever its state) and
///   none older than its `max_age` (measured when read: an expired notification is never
///   returned, counted or changed).
/// - *Unread* means neither read nor dismissed.
/// - `read` and `dismissed` only ever go from `false` to `true`. Every mutation returns exactly
///   the notifications whose flag it really changed, each once: of any number of concurrent
///   calls setting the same flag of the same notification, exactly one reports it.
/// - Every method is atomic per user.
#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Stores `new` unread, unless a live notification with its id exists: then nothing changes
    /// and that one is returned with `created: false`. Trims to `retention` in the same step.
    async fn create(
        &self,
        user: &UserId,
        new: &NewNotification,
        retention: NotificationRetention,
    ) -> Result<CreatedNotification>;

    /// Up to `limit` notifications older than `cursor` (from the newest when `None`), newest
    /// first; only unread ones when `unread_only`. `next_cursor` is set when more may follow.
    /// A cursor the engine did not make is refused with [`Error::InvalidArgument`].
    async fn list(
        &self,
        user: &UserId,
        cursor: Option<&str>,
        limit: usize,
        unread_only: bool,
    ) -> Result<NotificationPage>;

    /// The notification, or `None`.
    async fn get(&self, user: &UserId, id: &NotificationId) -> Result<Option<Notification>>;

    /// The notification's state, or `None`.
    async fn status(&self, user: &UserId, id: &NotificationId) -> Result<Option<NotificationStatus>> {
        Ok(self.get(user, id).await?.map(|n| n.status()))
    }

    /// How many of the user's notifications are unread.
    async fn unread_count(&self, user: &UserId) -> Result<u64>;

    /// Applies `mark` to each of `ids` that exists; returns the real changes, in the order of
    /// `ids` (duplicates, unknown ids and flags already so report nothing).
    async fn mark(&self, user: &UserId, ids: &[NotificationId], mark: Mark) -> Result<Vec<NotificationChange>>;

    /// [`mark`](Self::mark) with [`Mark::Read`].
    async fn read(&self, user: &UserId, ids: &[NotificationId]) -> Result<Vec<NotificationChange>> {
        self.mark(user, ids, Mark::Read).await
    }

    /// [`mark`](Self::mark) with [`Mark::Dismissed`].
    async fn dismiss(&self, user: &UserId, ids: &[NotificationId]) -> Result<Vec<NotificationChange>> {
        self.mark(user, ids, Mark::Dismissed).await
    }

    /// Marks every notification of the user read; returns the real changes, newest first.
    async fn read_all(&self, user: &UserId) -> Result<Vec<NotificationChange>>;
}
