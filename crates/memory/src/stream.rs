//! `MemoryStreams`: every channel's stream and every device cursor behind one mutex; publishing
//! appends and hands the publication to the in-process broker under that lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use switchboard_core::stream::{CURSOR_TTL, new_epoch};
use switchboard_core::{
    ChannelName, CursorStore, DeviceId, Error, NewPublication, Publication, Result, Retention, StreamPosition,
    StreamRead, StreamStore, Timestamp, UserId,
};

use crate::broker::MemoryBroker;
use crate::lock;
use crate::sweeper::Sweepable;

/// Streams and cursors in memory. See [`StreamStore`] and [`CursorStore`] for the contracts.
///
/// A stream is created (with a fresh epoch) the first time a channel is touched and forgotten
/// `max_age` after its last publication (or creation); a restart forgets everything, so every
/// epoch changes. One mutex for all streams keeps publish + deliver atomic and cheap; the
/// critical sections are short (no I/O, `limit`-bounded copies).
pub(crate) struct MemoryStreams {
    state: Mutex<State>,
    broker: Arc<MemoryBroker>,
}

#[derive(Default)]
struct State {
    streams: HashMap<ChannelName, Stream>,
    /// user -> device -> (cursor, kept until).
    cursors: HashMap<UserId, HashMap<DeviceId, (StreamPosition, Timestamp)>>,
}

struct Stream {
    epoch: String,
    top: u64,
    /// Retained publications, oldest first, consecutive offsets ending at `top`.
    entries: VecDeque<Publication>,
    retention: Retention,
    /// When the whole stream is forgotten.
    expires_at: Timestamp,
}

impl Stream {
    fn position(&self) -> StreamPosition {
        StreamPosition { epoch: self.epoch.clone(), offset: self.top }
    }

    /// Index in `entries` of the oldest publication still within `max_age`.
    fn first_live(&self, now: Timestamp) -> usize {
        let oldest_kept = now.as_millis().saturating_sub(self.retention.max_age.as_millis() as i64);
        self.entries.iter().position(|p| p.time.as_millis() > oldest_kept).unwrap_or(self.entries.len())
    }
}

impl State {
    /// The channel's live stream, created with a fresh epoch if it has none.
    fn stream(&mut self, channel: &ChannelName, now: Timestamp) -> Result<&mut Stream> {
        if self.streams.get(channel).is_some_and(|s| s.expires_at <= now) {
            self.streams.remove(channel);
        }
        if !self.streams.contains_key(channel) {
            let retention = Retention::for_channel(channel);
            let stream = Stream {
                epoch: new_epoch()?,
                top: 0,
                entries: VecDeque::new(),
                retention,
                expires_at: now.plus(retention.max_age),
            };
            self.streams.insert(channel.clone(), stream);
        }
        self.streams.get_mut(channel).ok_or_else(|| Error::Internal("memory: stream vanished".into()))
    }
}

impl MemoryStreams {
    pub(crate) fn new(broker: Arc<MemoryBroker>) -> Self {
        MemoryStreams { state: Mutex::new(State::default()), broker }
    }
}

#[async_trait]
impl StreamStore for MemoryStreams {
    async fn publish(
        &self,
        channel: &ChannelName,
        publication: NewPublication,
        retention: Retention,
    ) -> Result<StreamPosition> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let stream = state.stream(channel, now)?;
        stream.top += 1;
        stream.retention = retention;
        stream.expires_at = now.plus(retention.max_age);
        let publication = Publication {
            offset: stream.top,
            data: publication.data,
            time: now,
            exclude_device: publication.exclude_device,
            only_devices: publication.only_devices,
        };
        // Delivered before the lock is released: live order is offset order.
        self.broker.deliver(channel, &stream.epoch, &publication);
        stream.entries.push_back(publication);
        while stream.entries.len() > retention.max_len as usize {
            stream.entries.pop_front();
        }
        let expired = stream.first_live(now);
        stream.entries.drain(..expired);
        Ok(stream.position())
    }

    async fn publish_ephemeral(&self, channel: &ChannelName, publication: NewPublication) -> Result<()> {
        let publication = Publication {
            offset: 0,
            data: publication.data,
            time: Timestamp::now(),
            exclude_device: publication.exclude_device,
            only_devices: publication.only_devices,
        };
        // Under the streams lock like `publish`, so it is ordered with the stored ones.
        let _state = lock(&self.state);
        self.broker.deliver(channel, switchboard_core::stream::EPHEMERAL_EPOCH, &publication);
        Ok(())
    }

    async fn read_since(&self, channel: &ChannelName, since: &StreamPosition, limit: usize) -> Result<StreamRead> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let stream = state.stream(channel, now)?;
        let position = stream.position();
        let lost = StreamRead { publications: Vec::new(), position: position.clone(), recovered: false };
        if since.epoch != stream.epoch || since.offset > stream.top {
            return Ok(lost);
        }
        if since.offset == stream.top {
            return Ok(StreamRead { publications: Vec::new(), position, recovered: true });
        }
        let first = stream.first_live(now);
        let Some(oldest) = stream.entries.get(first).map(|p| p.offset) else { return Ok(lost) };
        if oldest > since.offset + 1 {
            return Ok(lost);
        }
        let start = first + (since.offset + 1 - oldest) as usize;
        let publications = stream.entries.iter().skip(start).take(limit).cloned().collect();
        Ok(StreamRead { publications, position, recovered: true })
    }

    async fn history(&self, channel: &ChannelName, limit: usize) -> Result<StreamRead> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let stream = state.stream(channel, now)?;
        let first = stream.first_live(now);
        let start = first.max(stream.entries.len().saturating_sub(limit));
        let publications = stream.entries.iter().skip(start).cloned().collect();
        Ok(StreamRead { publications, position: stream.position(), recovered: true })
    }

    async fn position(&self, channel: &ChannelName) -> Result<StreamPosition> {
        let now = Timestamp::now();
        Ok(lock(&self.state).stream(channel, now)?.position())
    }

    async fn remove(&self, channel: &ChannelName) -> Result<bool> {
        let now = Timestamp::now();
        Ok(lock(&self.state).streams.remove(channel).is_some_and(|s| s.expires_at > now))
    }
}

#[async_trait]
impl CursorStore for MemoryStreams {
    async fn ack(&self, user: &UserId, device: &DeviceId, position: &StreamPosition) -> Result<Option<StreamPosition>> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let stream = state.stream(&ChannelName::user(user), now)?;
        let (epoch, top) = (stream.epoch.clone(), stream.top);
        let devices = state.cursors.entry(user.clone()).or_default();
        let current = devices.get(device).filter(|(_, until)| *until > now).map(|(c, _)| c.clone());
        if position.epoch != epoch {
            return Ok(current);
        }
        if position.offset > top {
            return Err(Error::invalid("offset", format!("is beyond the stream's top ({top})")));
        }
        let offset = match current {
            Some(c) if c.epoch == epoch => c.offset.max(position.offset),
            _ => position.offset,
        };
        let cursor = StreamPosition { epoch, offset };
        devices.insert(device.clone(), (cursor.clone(), now.plus(CURSOR_TTL)));
        Ok(Some(cursor))
    }

    async fn cursor(&self, user: &UserId, device: &DeviceId) -> Result<Option<StreamPosition>> {
        let now = Timestamp::now();
        let state = lock(&self.state);
        let cursor = state.cursors.get(user).and_then(|d| d.get(device));
        Ok(cursor.filter(|(_, until)| *until > now).map(|(c, _)| c.clone()))
    }
}

impl Sweepable for MemoryStreams {
    fn sweep(&self, now: Timestamp) {
        let mut state = lock(&self.state);
        state.streams.retain(|_, s| s.expires_at > now);
        for stream in state.streams.values_mut() {
            let expired = stream.first_live(now);
            stream.entries.drain(..expired);
        }
        state.cursors.retain(|_, devices| {
            devices.retain(|_, (_, until)| *until > now);
            !devices.is_empty()
        });
    }
}
