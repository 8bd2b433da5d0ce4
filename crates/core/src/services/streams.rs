//! [`Streams`]: publish, history, recovery and per-device pending/ack over a [`StreamStore`] and
//! a [`CursorStore`], with bounds and metrics.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::observe;
use crate::channel::ChannelName;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, UserId};
use crate::limits::{MAX_BATCH, MAX_PUBLICATION_BYTES, MAX_STREAM_OFFSET};
use crate::session::json_len;
use crate::stream::{
    CursorStore, MAX_EPOCH_BYTES, NewPublication, Publication, Retention, StreamPosition, StreamRead, StreamStore,
};

/// Most pages one `pending` call reads while skipping publications not meant for the device.
const MAX_PENDING_PAGES: usize = 32;

/// What a device has not received yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pending {
    /// Publications for the device after its cursor, oldest first.
    pub publications: Vec<Publication>,
    /// The user's stream's current top.
    pub position: StreamPosition,
    /// False when publications after the cursor were lost (retention or a new epoch): the list
    /// then starts at the oldest retained publication and the device should resync.
    pub recovered: bool,
    /// The position to ack once these are handled: the last publication examined, including
    /// ones skipped because they were not for this device.
    pub ack_position: StreamPosition,
}

/// The streams service.
#[derive(Clone)]
pub struct Streams {
    store: Arc<dyn StreamStore>,
    cursors: Arc<dyn CursorStore>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams").finish_non_exhaustive()
    }
}

impl Streams {
    /// Wraps the engine's stores.
    pub fn new(store: Arc<dyn StreamStore>, cursors: Arc<dyn CursorStore>) -> Self {
        Streams { store, cursors }
    }

    /// Publishes with the namespace's retention; returns the new position.
    /// See [`StreamStore::publish`].
    pub async fn publish(&self, channel: &ChannelName, publication: NewPublication) -> Result<StreamPosition> {
        self.publish_with(channel, publication, Retention::for_channel(channel)).await
    }

    /// Delivers a publication live to current subscribers without storing it. See
    /// [`StreamStore::publish_ephemeral`]. Reserved types are refused (see
    /// [`Streams::publish_control`]).
    pub async fn publish_ephemeral(&self, channel: &ChannelName, publication: NewPublication) -> Result<()> {
        crate::control::refuse_reserved(&publication.data)?;
        self.deliver_live(channel, publication).await
    }

    /// Delivers a control event (a publication of a reserved type, [`crate::control`]) live
    /// only; any other type is refused. Subscribers act on it; clients never see it.
    pub async fn publish_control(&self, channel: &ChannelName, publication: NewPublication) -> Result<()> {
        if !crate::control::is_reserved(&publication.data) {
            return Err(Error::invalid("data.type", "a control event has a reserved type"));
        }
        self.deliver_live(channel, publication).await
    }

    async fn deliver_live(&self, channel: &ChannelName, publication: NewPublication) -> Result<()> {
        check_data(&publication)?;
        observe("streams", "publish_ephemeral", self.store.publish_ephemeral(channel, publication)).await
    }

    /// Delivers each control event `(channel, publication)` live only, a bounded number at a
    /// time (control events that concern many channels). Every one is tried; the first failure
    /// is returned.
    pub async fn publish_control_all(&self, items: Vec<(ChannelName, NewPublication)>) -> Result<()> {
        const IN_FLIGHT: usize = 64;
        let mut running = tokio::task::JoinSet::new();
        let mut first_error = None;
        let mut settle = |joined: std::result::Result<Result<()>, tokio::task::JoinError>| {
            let outcome = joined.unwrap_or_else(|e| Err(Error::Internal(format!("publish task failed: {e}"))));
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
        };
        for (channel, publication) in items {
            if running.len() >= IN_FLIGHT
                && let Some(joined) = running.join_next().await
            {
                settle(joined);
            }
            let streams = self.clone();
            running.spawn(async move { streams.publish_control(&channel, publication).await });
        }
        while let Some(joined) = running.join_next().await {
            settle(joined);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Publishes with an explicit retention.
    pub async fn publish_with(
        &self,
        channel: &ChannelName,
        publication: NewPublication,
        retention: Retention,
    ) -> Result<StreamPosition> {
        retention.validate("retention")?;
        crate::control::refuse_reserved(&publication.data)?;
        check_data(&publication)?;
        let position = observe("streams", "publish", self.store.publish(channel, publication, retention)).await?;
        metrics::counter!("switchboard_publications_total", "namespace" => namespace_label(channel)).increment(1);
        Ok(position)
    }

    /// Publishes the same publication on each channel, in order; stops at the first failure.
    pub async fn broadcast(
        &self,
        channels: &[ChannelName],
        publication: NewPublication,
    ) -> Result<Vec<StreamPosition>> {
        if channels.is_empty() || channels.len() > MAX_BATCH {
            return Err(Error::invalid("channels", format!("must hold 1..={MAX_BATCH} channels")));
        }
        let mut positions = Vec::with_capacity(channels.len());
        for channel in channels {
            positions.push(self.publish(channel, publication.clone()).await?);
        }
        Ok(positions)
    }

    /// The newest `limit` publications, oldest first. See [`StreamStore::history`].
    pub async fn history(&self, channel: &ChannelName, limit: usize) -> Result<StreamRead> {
        check_limit(limit)?;
        observe("streams", "history", self.store.history(channel, limit)).await
    }

    /// What was published after `since`. See [`StreamStore::read_since`].
    pub async fn read_since(&self, channel: &ChannelName, since: &StreamPosition, limit: usize) -> Result<StreamRead> {
        check_limit(limit)?;
        check_position(since)?;
        let read = observe("streams", "read_since", self.store.read_since(channel, since, limit)).await?;
        let outcome = if read.recovered { "recovered" } else { "lost" };
        metrics::counter!("switchboard_stream_recoveries_total", "outcome" => outcome).increment(1);
        Ok(read)
    }

    /// The channel's current top.
    pub async fn position(&self, channel: &ChannelName) -> Result<StreamPosition> {
        observe("streams", "position", self.store.position(channel)).await
    }

    /// Forgets a channel's stream.
    pub async fn remove(&self, channel: &ChannelName) -> Result<bool> {
        observe("streams", "remove", self.store.remove(channel)).await
    }

    /// Up to `limit` publications of `user:<user>` meant for `device` after its cursor (from the
    /// oldest retained one when it has none or its history was lost).
    pub async fn pending(&self, user: &UserId, device: &DeviceId, limit: usize) -> Result<Pending> {
        check_limit(limit)?;
        let channel = ChannelName::user(user);
        let cursor = observe("streams", "cursor", self.cursors.cursor(user, device)).await?;
        let had_cursor = cursor.is_some();
        let since = cursor.unwrap_or(StreamPosition { epoch: String::new(), offset: 0 });
        let mut read = observe("streams", "read_since", self.store.read_since(&channel, &since, limit)).await?;
        let mut recovered = read.recovered;
        if !read.recovered {
            let start = StreamPosition { epoch: read.position.epoch.clone(), offset: 0 };
            read = observe("streams", "read_since", self.store.read_since(&channel, &start, limit)).await?;
            // Without a cursor, "complete since the first publication" counts as recovered.
            recovered = !had_cursor && read.recovered;
        }
        let epoch = read.position.epoch.clone();
        let mut scanned_to = if recovered && had_cursor { since.offset } else { 0 };
        let mut publications = Vec::new();
        'pages: for _ in 0..MAX_PENDING_PAGES {
            if read.publications.is_empty() {
                break;
            }
            for p in read.publications.drain(..) {
                if publications.len() == limit {
                    break 'pages;
                }
                scanned_to = p.offset;
                if p.is_for(device) {
                    publications.push(p);
                }
            }
            if publications.len() == limit || scanned_to >= read.position.offset {
                break;
            }
            let next = StreamPosition { epoch: epoch.clone(), offset: scanned_to };
            read = observe("streams", "read_since", self.store.read_since(&channel, &next, limit)).await?;
            if !read.recovered {
                break;
            }
        }
        metrics::counter!("switchboard_pending_reads_total").increment(1);
        Ok(Pending {
            publications,
            position: read.position,
            recovered,
            ack_position: StreamPosition { epoch, offset: scanned_to },
        })
    }

    /// Records that `device` received everything up to `position`. See [`CursorStore::ack`].
    pub async fn ack(
        &self,
        user: &UserId,
        device: &DeviceId,
        position: &StreamPosition,
    ) -> Result<Option<StreamPosition>> {
        check_position(position)?;
        observe("streams", "ack", self.cursors.ack(user, device, position)).await
    }

    /// Gives a device without a cursor one at the current top of `user:<user>`, so its pending
    /// list holds only what is published from now on; a device with a cursor keeps it. Returns
    /// the cursor in force. A publication racing this call is pending, never lost: the cursor
    /// is the top read before it.
    pub async fn start_cursor(&self, user: &UserId, device: &DeviceId) -> Result<Option<StreamPosition>> {
        if let Some(cursor) = self.cursor(user, device).await? {
            return Ok(Some(cursor));
        }
        let top = self.position(&ChannelName::user(user)).await?;
        observe("streams", "ack", self.cursors.ack(user, device, &top)).await
    }

    /// The device's cursor.
    pub async fn cursor(&self, user: &UserId, device: &DeviceId) -> Result<Option<StreamPosition>> {
        observe("streams", "cursor", self.cursors.cursor(user, device)).await
    }
}

fn check_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_BATCH {
        return Err(Error::invalid("limit", format!("must be 1..={MAX_BATCH}")));
    }
    Ok(())
}

fn check_position(position: &StreamPosition) -> Result<()> {
    if position.epoch.len() > MAX_EPOCH_BYTES {
        return Err(Error::invalid("epoch", format!("must be at most {MAX_EPOCH_BYTES} bytes")));
    }
    if position.offset > MAX_STREAM_OFFSET {
        return Err(Error::invalid("offset", format!("must be at most {MAX_STREAM_OFFSET}")));
    }
    Ok(())
}

/// A bounded label: the namespace (a fixed set), never the channel.
fn namespace_label(channel: &ChannelName) -> String {
    channel.namespace().to_owned()
}

/// The bounds of a publication: its data size and its device list.
fn check_data(publication: &NewPublication) -> Result<()> {
    let size = json_len(&publication.data);
    if size > MAX_PUBLICATION_BYTES {
        return Err(Error::PayloadTooLarge(format!(
            "data: {size} bytes is over the limit of {MAX_PUBLICATION_BYTES} bytes"
        )));
    }
    if publication.only_devices.len() > MAX_BATCH {
        return Err(Error::invalid("only_devices", format!("must hold at most {MAX_BATCH} devices")));
    }
    Ok(())
}
