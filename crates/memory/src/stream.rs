//! `MemoryStreams`: every channel's stream and every device cursor behind one mutex; publishing
//! appends and hands the publication to the in-process broker under that lock.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::stream::{CURSOR_TTL, new_epoch};
use switchboard_core::{
    ChannelName, CursorStore, DeviceId, Error, NewPublication, Publication, Result, Retention, StreamPosition,
    StreamRead, StreamStore, Timestamp, UserId,
};

use crate::broker::MemoryBroker;
use crate::journal::{self, Durable, Journal, Sink, Ticket, store};
use crate::sweeper::Sweepable;
use crate::{codec, lock};

/// Streams and cursors in memory. See [`StreamStore`] and [`CursorStore`] for the contracts.
///
/// A stream is created (with a fresh epoch) the first time a channel is touched and forgotten
/// `max_age` after its last publication (or creation); a restart forgets everything, so every
/// epoch changes unless the engine is durable. One mutex for all streams keeps publish + deliver atomic and cheap; the
/// critical sections are short (no I/O, `limit`-bounded copies).
pub(crate) struct MemoryStreams {
    state: Mutex<State>,
    broker: Arc<MemoryBroker>,
    journal: Journal,
}

/// A journal record.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change<'a> {
    /// A stream as created (or, in a snapshot, as it stands without its publications).
    Stream {
        channel: Cow<'a, ChannelName>,
        epoch: Cow<'a, str>,
        top: u64,
        max_len: u32,
        max_age_ms: u64,
        expires_at: Timestamp,
    },
    /// A publication appended with the retention it was published under.
    Published {
        channel: Cow<'a, ChannelName>,
        publication: Cow<'a, Publication>,
        max_len: u32,
        max_age_ms: u64,
        expires_at: Timestamp,
    },
    Removed(Cow<'a, ChannelName>),
    Cursor {
        user: Cow<'a, UserId>,
        device: Cow<'a, DeviceId>,
        position: Cow<'a, StreamPosition>,
        until: Timestamp,
    },
}

/// The kind byte of a binary publication record: the channel, the publication (offset, data as
/// JSON text, time, excluded device, only devices) and the stream's retention and expiry, as
/// [`Change::Published`] holds them.
const PUBLISHED: u8 = 1;

/// Writes the [`PUBLISHED`] record of `publication` appended to `s`.
fn write_published(w: &mut codec::Writer<'_>, channel: &ChannelName, s: &Stream, publication: &Publication) {
    w.str(channel.as_str()).u64(publication.offset).json(&publication.data).i64(publication.time.as_millis());
    w.opt_bytes(publication.exclude_device.as_ref().map(|d| d.as_str().as_bytes()));
    w.u64(publication.only_devices.len() as u64);
    for device in &publication.only_devices {
        w.str(device.as_str());
    }
    w.u64(u64::from(s.retention.max_len)).u64(millis_of(s.retention.max_age)).i64(s.expires_at.as_millis());
}

/// Reads a [`PUBLISHED`] record back.
fn read_published(mut r: codec::Reader<'_>) -> serde_json::Result<Change<'static>> {
    let channel = r.parse("channel")?;
    let (offset, data, time) = (r.u64()?, r.json()?, Timestamp::from_millis(r.i64()?));
    let exclude_device = match r.opt_str()? {
        Some(d) => Some(DeviceId::new(d).map_err(|_| codec::error("invalid device id"))?),
        None => None,
    };
    let mut only_devices = Vec::new();
    for _ in 0..r.u64()? {
        only_devices.push(r.parse("device id")?);
    }
    let publication = Publication { offset, data, time, exclude_device, only_devices };
    let max_len = u32::try_from(r.u64()?).map_err(|_| codec::error("max_len out of range"))?;
    let (max_age_ms, expires_at) = (r.u64()?, Timestamp::from_millis(r.i64()?));
    r.end()?;
    Ok(Change::Published {
        channel: Cow::Owned(channel),
        publication: Cow::Owned(publication),
        max_len,
        max_age_ms,
        expires_at,
    })
}

fn millis_of(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl<'a> Change<'a> {
    fn stream(channel: &'a ChannelName, s: &'a Stream) -> Self {
        Change::Stream {
            channel: Cow::Borrowed(channel),
            epoch: Cow::Borrowed(&s.epoch),
            top: s.top,
            max_len: s.retention.max_len,
            max_age_ms: millis_of(s.retention.max_age),
            expires_at: s.expires_at,
        }
    }
}

impl Durable for MemoryStreams {
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()> {
        journal::restore_from(self, Self::new(self.broker.clone(), Journal::default()), records, |s| &s.state)
    }

    fn replay(&self, record: &[u8]) -> serde_json::Result<()> {
        let change = match codec::Reader::of(record) {
            Some((PUBLISHED, r)) => read_published(r)?,
            Some(_) => return Err(codec::error("unknown stream record")),
            None => serde_json::from_slice(record)?,
        };
        let mut state = lock(&self.state);
        match change {
            Change::Stream { channel, epoch, top, max_len, max_age_ms, expires_at } => {
                let retention = Retention { max_len, max_age: Duration::from_millis(max_age_ms) };
                let stream = Stream { epoch: epoch.into_owned(), top, entries: VecDeque::new(), retention, expires_at };
                state.streams.insert(channel.into_owned(), stream);
            }
            Change::Published { channel, publication, max_len, max_age_ms, expires_at } => {
                if let Some(stream) = state.streams.get_mut(channel.as_ref()) {
                    stream.retention = Retention { max_len, max_age: Duration::from_millis(max_age_ms) };
                    stream.expires_at = expires_at;
                    stream.top = stream.top.max(publication.offset);
                    stream.entries.push_back(publication.into_owned());
                    while stream.entries.len() > max_len as usize {
                        stream.entries.pop_front();
                    }
                }
            }
            Change::Removed(channel) => drop(state.streams.remove(channel.as_ref())),
            Change::Cursor { user, device, position, until } => {
                let devices = state.cursors.entry(user.into_owned()).or_default();
                devices.insert(device.into_owned(), (position.into_owned(), until));
            }
        }
        Ok(())
    }

    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()> {
        let state = lock(&self.state);
        sink.begin();
        for (channel, stream) in &state.streams {
            let mut head = Change::stream(channel, stream);
            if let Change::Stream { top, .. } = &mut head {
                // Each publication record below raises it back.
                *top = stream.top - stream.entries.len() as u64;
            }
            sink.record(&head)?;
            for publication in &stream.entries {
                sink.record_binary(PUBLISHED, |w| write_published(w, channel, stream, publication));
            }
        }
        for (user, devices) in &state.cursors {
            for (device, (position, until)) in devices {
                let (user, device, position) = (Cow::Borrowed(user), Cow::Borrowed(device), Cow::Borrowed(position));
                sink.record(&Change::Cursor { user, device, position, until: *until })?;
            }
        }
        Ok(())
    }
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
    /// The channel's live stream, created with a fresh epoch if it has none (recorded in the
    /// journal: the ticket to wait for before the epoch is given out).
    fn stream(
        &mut self,
        channel: &ChannelName,
        now: Timestamp,
        journal: &Journal,
    ) -> Result<(&mut Stream, Option<Ticket>)> {
        if self.streams.get(channel).is_some_and(|s| s.expires_at <= now) {
            self.streams.remove(channel);
        }
        let mut created = None;
        if !self.streams.contains_key(channel) {
            let retention = Retention::for_channel(channel);
            let stream = Stream {
                epoch: new_epoch()?,
                top: 0,
                entries: VecDeque::new(),
                retention,
                expires_at: now.plus(retention.max_age),
            };
            created = Some(journal.append(store::STREAMS, &Change::stream(channel, &stream)));
            self.streams.insert(channel.clone(), stream);
        }
        let stream = self.streams.get_mut(channel).ok_or_else(|| Error::Internal("memory: stream vanished".into()))?;
        Ok((stream, created))
    }
}

impl MemoryStreams {
    pub(crate) fn new(broker: Arc<MemoryBroker>, journal: Journal) -> Self {
        MemoryStreams { state: Mutex::new(State::default()), broker, journal }
    }
}

/// Waits for the creation record of a stream, if the call created one.
async fn created(ticket: Option<Ticket>) -> Result<()> {
    match ticket {
        Some(ticket) => ticket.wait().await,
        None => Ok(()),
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
        self.journal.writable()?;
        let now = Timestamp::now();
        let (position, written) = {
            let mut state = lock(&self.state);
            let (stream, _created) = state.stream(channel, now, &self.journal)?;
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
            let written = self
                .journal
                .append_binary(store::STREAMS, PUBLISHED, |w| write_published(w, channel, stream, &publication));
            stream.entries.push_back(publication);
            while stream.entries.len() > retention.max_len as usize {
                stream.entries.pop_front();
            }
            let expired = stream.first_live(now);
            stream.entries.drain(..expired);
            (stream.position(), written)
        };
        // The creation record, if any, is earlier: this wait covers it.
        written.wait().await?;
        Ok(position)
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
        let (read, ticket) = {
            let mut state = lock(&self.state);
            let (stream, ticket) = state.stream(channel, now, &self.journal)?;
            (read_from(stream, since, limit, now), ticket)
        };
        created(ticket).await?;
        Ok(read)
    }

    async fn history(&self, channel: &ChannelName, limit: usize) -> Result<StreamRead> {
        let now = Timestamp::now();
        let (read, ticket) = {
            let mut state = lock(&self.state);
            let (stream, ticket) = state.stream(channel, now, &self.journal)?;
            let first = stream.first_live(now);
            let start = first.max(stream.entries.len().saturating_sub(limit));
            let publications = stream.entries.iter().skip(start).cloned().collect();
            (StreamRead { publications, position: stream.position(), recovered: true }, ticket)
        };
        created(ticket).await?;
        Ok(read)
    }

    async fn position(&self, channel: &ChannelName) -> Result<StreamPosition> {
        let now = Timestamp::now();
        let (position, ticket) = {
            let mut state = lock(&self.state);
            let (stream, ticket) = state.stream(channel, now, &self.journal)?;
            (stream.position(), ticket)
        };
        created(ticket).await?;
        Ok(position)
    }

    async fn remove(&self, channel: &ChannelName) -> Result<bool> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let (live, written) = {
            let mut state = lock(&self.state);
            let Some(stream) = state.streams.remove(channel) else { return Ok(false) };
            (stream.expires_at > now, self.journal.append(store::STREAMS, &Change::Removed(Cow::Borrowed(channel))))
        };
        written.wait().await?;
        Ok(live)
    }
}

#[async_trait]
impl CursorStore for MemoryStreams {
    async fn ack(&self, user: &UserId, device: &DeviceId, position: &StreamPosition) -> Result<Option<StreamPosition>> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let (cursor, ticket, written) = {
            let mut state = lock(&self.state);
            let (stream, ticket) = state.stream(&ChannelName::user(user), now, &self.journal)?;
            let (epoch, top) = (stream.epoch.clone(), stream.top);
            let devices = state.cursors.entry(user.clone()).or_default();
            let current = devices.get(device).filter(|(_, until)| *until > now).map(|(c, _)| c.clone());
            if position.epoch != epoch {
                (current, ticket, None)
            } else {
                if position.offset > top {
                    return Err(Error::invalid("offset", format!("is beyond the stream's top ({top})")));
                }
                let offset = match current {
                    Some(c) if c.epoch == epoch => c.offset.max(position.offset),
                    _ => position.offset,
                };
                let cursor = StreamPosition { epoch, offset };
                let until = now.plus(CURSOR_TTL);
                devices.insert(device.clone(), (cursor.clone(), until));
                let change = Change::Cursor {
                    user: Cow::Borrowed(user),
                    device: Cow::Borrowed(device),
                    position: Cow::Borrowed(&cursor),
                    until,
                };
                let written = self.journal.append(store::STREAMS, &change);
                (Some(cursor), ticket, Some(written))
            }
        };
        match written {
            Some(written) => written.wait().await?,
            None => created(ticket).await?,
        }
        Ok(cursor)
    }

    async fn cursor(&self, user: &UserId, device: &DeviceId) -> Result<Option<StreamPosition>> {
        let now = Timestamp::now();
        let state = lock(&self.state);
        let cursor = state.cursors.get(user).and_then(|d| d.get(device));
        Ok(cursor.filter(|(_, until)| *until > now).map(|(c, _)| c.clone()))
    }
}

/// What `since` reads of `stream`: the publications after it, or `recovered: false` if some
/// are gone (or it is of another epoch).
fn read_from(stream: &Stream, since: &StreamPosition, limit: usize, now: Timestamp) -> StreamRead {
    let position = stream.position();
    let lost = StreamRead { publications: Vec::new(), position: position.clone(), recovered: false };
    if since.epoch != stream.epoch || since.offset > stream.top {
        return lost;
    }
    if since.offset == stream.top {
        return StreamRead { publications: Vec::new(), position, recovered: true };
    }
    let first = stream.first_live(now);
    let Some(oldest) = stream.entries.get(first).map(|p| p.offset) else { return lost };
    if oldest > since.offset + 1 {
        return lost;
    }
    let start = first + (since.offset + 1 - oldest) as usize;
    let publications = stream.entries.iter().skip(start).take(limit).cloned().collect();
    StreamRead { publications, position, recovered: true }
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
