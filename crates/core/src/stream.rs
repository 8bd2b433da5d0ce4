//! Channel streams: bounded per-channel histories with `(epoch, offset)` positions, the
//! [`StreamStore`] contract (append and fan-out in one atomic step, read since a position) and the
//! [`CursorStore`] contract (per-device delivery cursors on `user:` channels).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::channel::{ChannelName, NAMESPACES};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, UserId};
use crate::time::Timestamp;

/// How long a device cursor is kept after its last ack (the device registry's retention).
pub const CURSOR_TTL: Duration = Duration::from_secs(30 * 86_400);

/// Longest epoch accepted from a client, in bytes (engines make 16).
pub const MAX_EPOCH_BYTES: usize = 64;

/// A place in a channel's stream: the offset of the last publication seen, in the stream's
/// epoch. Offsets start at 1 and grow by 1 per publication; `offset: 0` is "before the first".
/// A different epoch means the history the offset refers to is gone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamPosition {
    /// Identifies one unbroken history of the channel.
    pub epoch: String,
    /// Offset of the last publication (0 = none yet).
    pub offset: u64,
}

/// How much of a channel's history is kept: at most `max_len` publications, none older than
/// `max_age`. The stream itself (its epoch and offset counter) is forgotten `max_age` after its
/// last publication, after which its epoch changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most publications kept (0 = no history; offsets still count).
    pub max_len: u32,
    /// Oldest publication kept; also how long an idle stream is remembered. Must be > 0.
    pub max_age: Duration,
}

impl Retention {
    /// The default of the channel's namespace (see [`NAMESPACES`]).
    pub fn for_channel(channel: &ChannelName) -> Retention {
        NAMESPACES
            .iter()
            .find(|(ns, _)| *ns == channel.namespace())
            .map(|(_, r)| *r)
            // The control channel: live events only.
            .unwrap_or(Retention { max_len: 0, max_age: Duration::from_secs(86_400) })
    }

    /// Checks the bounds (`max_age` 1 ms..=365 d, `max_len` <= 100 000).
    pub fn validate(&self, field: &str) -> Result<()> {
        if self.max_age.is_zero() || self.max_age > Duration::from_secs(365 * 86_400) {
            return Err(Error::invalid(field, "max_age must be between 1 ms and 365 days"));
        }
        if self.max_len > 100_000 {
            return Err(Error::invalid(field, "max_len must be at most 100000"));
        }
        Ok(())
    }
}

/// A publication to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPublication {
    /// The event, `{"type": "<event>", "data": {...}}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
    /// A device that must not receive it (the source of a sync action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_device: Option<DeviceId>,
    /// When not empty, only these devices receive it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only_devices: Vec<DeviceId>,
}

impl NewPublication {
    /// A publication for every device.
    pub fn new(data: Value) -> Self {
        NewPublication { data, exclude_device: None, only_devices: Vec::new() }
    }
}

/// A publication in a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Publication {
    /// Its offset in the stream's epoch.
    pub offset: u64,
    /// The event, `{"type": "<event>", "data": {...}}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
    /// When it was appended (the engine's clock).
    pub time: Timestamp,
    /// A device that must not receive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_device: Option<DeviceId>,
    /// When not empty, only these devices receive it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only_devices: Vec<DeviceId>,
}

impl Publication {
    /// Whether `device` should receive it.
    pub fn is_for(&self, device: &DeviceId) -> bool {
        self.exclude_device.as_ref() != Some(device)
            && (self.only_devices.is_empty() || self.only_devices.contains(device))
    }
}

/// The answer to a read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamRead {
    /// Publications, oldest first.
    pub publications: Vec<Publication>,
    /// The stream's current top: its epoch and the offset of its newest publication.
    pub position: StreamPosition,
    /// For [`StreamStore::read_since`]: false when the publications after the given position
    /// are no longer all retained (or its epoch is not the stream's); always true for history.
    pub recovered: bool,
}

/// The epoch of ephemeral publications (see [`StreamStore::publish_ephemeral`]); never the epoch
/// of a stream, which is hex.
pub const EPHEMERAL_EPOCH: &str = "-";

/// A fresh random epoch: 16 hex digits (64 random bits). Both engines use it, so an epoch never
/// contains a space or a quote.
pub fn new_epoch() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Per-channel streams with fan-out to every node's [`crate::Broker`]. All times come from the
/// engine's clock.
///
/// Contract, for every engine:
/// - A channel's stream has an *epoch*, born (randomly, see [`new_epoch`]) the first time any
///   method touches the channel, and kept with the stream. It changes whenever the history may
///   have been lost: the memory engine restarted, the Redis keys were flushed or expired, the
///   stream was idle for its retention's `max_age`, or [`StreamStore::remove`] was called. Two
///   calls that see the same epoch see the same history.
/// - Offsets grow by exactly 1 per publication within an epoch, with no gap and no duplicate
///   even under concurrent publishers; a new epoch starts again at 0.
/// - Retention: publications beyond the newest `max_len`, or older than `max_age` (measured
///   when read), are never returned. The retention is the one of the latest `publish`.
/// - Every method is atomic.
#[async_trait]
pub trait StreamStore: Send + Sync + 'static {
    /// Appends a publication (offset = previous + 1) and, in the same atomic step, hands it to
    /// every node's broker, so a publication is live-delivered exactly when it is in the stream
    /// and in offset order per channel. Trims to `retention`. Returns the new position.
    async fn publish(
        &self,
        channel: &ChannelName,
        publication: NewPublication,
        retention: Retention,
    ) -> Result<StreamPosition>;

    /// Hands a publication to every node's broker without storing it: it gets offset 0 and the
    /// epoch [`EPHEMERAL_EPOCH`], does not move the stream's offset, and is never recovered.
    /// For events that only matter live (typing indicators, presence changes are stored).
    async fn publish_ephemeral(&self, channel: &ChannelName, publication: NewPublication) -> Result<()>;

    /// The publications after `since`, oldest first, at most `limit`. `recovered` is false (and
    /// `publications` empty) when `since.epoch` is not the stream's epoch, when `since.offset`
    /// is beyond the top, or when some publication after `since.offset` is no longer retained.
    /// `position` is the current top whatever the outcome; fewer than `limit` publications with
    /// the last one below the top cannot happen, so a caller pages until it reaches the top.
    async fn read_since(&self, channel: &ChannelName, since: &StreamPosition, limit: usize) -> Result<StreamRead>;

    /// The newest `limit` retained publications, oldest first; `recovered` is true.
    async fn history(&self, channel: &ChannelName, limit: usize) -> Result<StreamRead>;

    /// The stream's current top. A channel never published to has offset 0 and a stable epoch.
    async fn position(&self, channel: &ChannelName) -> Result<StreamPosition>;

    /// Forgets the stream (history, offset and epoch); `false` if there was none.
    async fn remove(&self, channel: &ChannelName) -> Result<bool>;
}

/// Per-device delivery cursors on a user's personal channel `user:<id>` (the pending/ack of
/// offline delivery).
///
/// Contract, for every engine:
/// - A cursor is the position of the last publication a device has received.
/// - [`CursorStore::ack`] applies only when `position.epoch` is the user's stream's current
///   epoch (an ack for a lost history is ignored); within an epoch a cursor never moves
///   backwards. An offset beyond the stream's top is refused with
///   [`Error::InvalidArgument`]. A cursor is kept [`CURSOR_TTL`] after its last ack.
/// - Every method is atomic with respect to the stream (the epoch check and the update are one
///   step).
#[async_trait]
pub trait CursorStore: Send + Sync + 'static {
    /// Records that `device` received everything up to `position`; returns the cursor in force
    /// (`None` when the ack was ignored and none is stored).
    async fn ack(&self, user: &UserId, device: &DeviceId, position: &StreamPosition) -> Result<Option<StreamPosition>>;

    /// The device's cursor, `None` if it never acked (or its cursor expired).
    async fn cursor(&self, user: &UserId, device: &DeviceId) -> Result<Option<StreamPosition>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_follows_the_namespace() {
        let user = Retention::for_channel(&ChannelName::new("user:a").unwrap());
        assert_eq!((user.max_len, user.max_age), (1000, Duration::from_secs(7 * 86_400)));
        let chat = Retention::for_channel(&ChannelName::new("chat:a").unwrap());
        assert_eq!((chat.max_len, chat.max_age), (100, Duration::from_secs(86_400)));
        assert_eq!(Retention::for_channel(&ChannelName::new("presence:a").unwrap()).max_len, 0);
        for (_, r) in NAMESPACES {
            assert!(r.validate("retention").is_ok());
        }
    }

    #[test]
    fn device_targeting() {
        let d = |s: &str| DeviceId::new(s).unwrap();
        let mut p = Publication {
            offset: 1,
            data: Value::Null,
            time: Timestamp::now(),
            exclude_device: Some(d("a")),
            only_devices: vec![],
        };
        assert!(!p.is_for(&d("a")) && p.is_for(&d("b")));
        p.only_devices = vec![d("b")];
        assert!(p.is_for(&d("b")) && !p.is_for(&d("c")));
        let e = new_epoch().unwrap();
        assert_eq!(e.len(), 16);
        assert_ne!(e, new_epoch().unwrap());
    }
}
