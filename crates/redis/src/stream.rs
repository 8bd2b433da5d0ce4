//! `RedisStreams`: each channel's stream is a Redis STREAM plus a meta hash in one slot; every
//! operation is one script, and publishing appends and PUBLISHes in the same script.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;
use switchboard_core::stream::{CURSOR_TTL, new_epoch};
use switchboard_core::{
    ChannelName, CursorStore, DeviceId, Error, NewPublication, Publication, Result, Retention, StreamPosition,
    StreamRead, StreamStore, Timestamp, UserId,
};

use crate::connection::{Conn, lua};
use crate::keys::Keys;

/// A stream script: common.lua, then stream_common.lua, then the operation.
fn stream_lua(body: &str) -> Script {
    lua(&format!("{}{body}", include_str!("../lua/stream_common.lua")))
}

static PUBLISH: LazyLock<Script> = LazyLock::new(|| stream_lua(include_str!("../lua/stream_publish.lua")));
static READ: LazyLock<Script> = LazyLock::new(|| stream_lua(include_str!("../lua/stream_read.lua")));
static HISTORY: LazyLock<Script> = LazyLock::new(|| stream_lua(include_str!("../lua/stream_history.lua")));
static POSITION: LazyLock<Script> = LazyLock::new(|| stream_lua(include_str!("../lua/stream_position.lua")));
static ACK: LazyLock<Script> = LazyLock::new(|| stream_lua(include_str!("../lua/cursor_ack.lua")));

/// Streams and cursors in Redis. See [`StreamStore`] and [`CursorStore`] for the contracts.
///
/// Layout (see `keys.rs`): the meta hash holds the epoch, the top offset and the max age; the
/// STREAM holds the retained publications with id `<offset>-0`. Both expire `max_age` after the
/// last publication; a script that finds no meta creates it with the fresh epoch it is given
/// (made by the caller, since scripts have no good randomness), so a flush or an expiry always
/// changes the epoch. Live publications go out on the channel's pub/sub channel as
/// `<epoch> <offset> <time ms> <payload JSON>` (see `broker.rs`).
pub(crate) struct RedisStreams {
    conn: Conn,
    keys: Keys,
}

impl RedisStreams {
    /// `SPUBLISH` on a Cluster (the broker subscribes on each channel's shard), else `PUBLISH`.
    fn publish_command(&self) -> &'static str {
        if self.conn.is_cluster() { "SPUBLISH" } else { "PUBLISH" }
    }

    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisStreams { conn, keys }
    }

    /// Runs a stream script on `channel`'s keys with a fresh epoch and the namespace's max age
    /// as its first two arguments, then `args`.
    async fn run<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        channel: &ChannelName,
        extra_key: Option<String>,
        args: &[String],
    ) -> Result<T> {
        let mut invocation = script.key(self.keys.stream_meta(channel));
        invocation.key(self.keys.stream_entries(channel));
        if let Some(key) = extra_key {
            invocation.key(key);
        }
        invocation.arg(new_epoch()?).arg(millis(Retention::for_channel(channel).max_age));
        for arg in args {
            invocation.arg(arg);
        }
        self.conn.script(op, &invocation).await
    }
}

fn millis(d: std::time::Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Parses `{epoch, top, recovered, (offset, time, payload)*}`.
fn parse_read(op: &str, reply: Vec<String>) -> Result<StreamRead> {
    let bad = |why: &str| Error::Internal(format!("redis: {op}: unexpected reply ({why})"));
    let mut it = reply.into_iter();
    let (Some(epoch), Some(top), Some(recovered)) = (it.next(), it.next(), it.next()) else {
        return Err(bad("too short"));
    };
    let offset = top.parse().map_err(|_| bad("top"))?;
    let rest: Vec<String> = it.collect();
    if !rest.len().is_multiple_of(3) {
        return Err(bad("entries"));
    }
    let publications = rest
        .chunks_exact(3)
        .map(|c| parse_publication(&c[0], &c[1], &c[2]).ok_or_else(|| bad("entry")))
        .collect::<Result<Vec<_>>>()?;
    Ok(StreamRead { publications, position: StreamPosition { epoch, offset }, recovered: recovered == "1" })
}

/// A publication from its offset, time (ms) and stored payload.
pub(crate) fn parse_publication(offset: &str, time: &str, payload: &str) -> Option<Publication> {
    let stored: NewPublication = serde_json::from_str(payload).ok()?;
    Some(Publication {
        offset: offset.parse().ok()?,
        data: stored.data,
        time: Timestamp::from_millis(time.parse().ok()?),
        exclude_device: stored.exclude_device,
        only_devices: stored.only_devices,
    })
}

fn parse_position(op: &str, reply: Vec<String>) -> Result<StreamPosition> {
    match reply.as_slice() {
        [epoch, offset] => Ok(StreamPosition {
            epoch: epoch.clone(),
            offset: offset.parse().map_err(|_| Error::Internal(format!("redis: {op}: bad offset")))?,
        }),
        _ => Err(Error::Internal(format!("redis: {op}: unexpected reply"))),
    }
}

#[async_trait]
impl StreamStore for RedisStreams {
    async fn publish(
        &self,
        channel: &ChannelName,
        publication: NewPublication,
        retention: Retention,
    ) -> Result<StreamPosition> {
        let payload = serde_json::to_string(&publication)
            .map_err(|e| Error::Internal(format!("redis: streams.publish: cannot encode: {e}")))?;
        let mut invocation = PUBLISH.key(self.keys.stream_meta(channel));
        invocation
            .key(self.keys.stream_entries(channel))
            .arg(new_epoch()?)
            .arg(retention.max_len)
            .arg(millis(retention.max_age).max(1))
            .arg(payload)
            .arg(self.keys.stream_pubsub(channel))
            .arg(self.publish_command());
        let reply: Vec<String> = self.conn.script("streams.publish", &invocation).await?;
        parse_position("streams.publish", reply)
    }

    async fn publish_ephemeral(&self, channel: &ChannelName, publication: NewPublication) -> Result<()> {
        let payload = serde_json::to_string(&publication)
            .map_err(|e| Error::Internal(format!("redis: streams.publish_ephemeral: cannot encode: {e}")))?;
        // The broker's wire format: `<epoch> <offset> <time ms> <payload>`; nothing is stored.
        let message = format!(
            "{} 0 {} {payload}",
            switchboard_core::stream::EPHEMERAL_EPOCH,
            switchboard_core::Timestamp::now().as_millis()
        );
        let mut cmd = redis::cmd(self.publish_command());
        cmd.arg(self.keys.stream_pubsub(channel)).arg(message);
        let _receivers: i64 = self.conn.cmd("streams.publish_ephemeral", &cmd).await?;
        Ok(())
    }

    async fn read_since(&self, channel: &ChannelName, since: &StreamPosition, limit: usize) -> Result<StreamRead> {
        let args = [since.epoch.clone(), since.offset.to_string(), limit.to_string()];
        let reply = self.run("streams.read_since", &READ, channel, None, &args).await?;
        parse_read("streams.read_since", reply)
    }

    async fn history(&self, channel: &ChannelName, limit: usize) -> Result<StreamRead> {
        let reply = self.run("streams.history", &HISTORY, channel, None, &[limit.to_string()]).await?;
        parse_read("streams.history", reply)
    }

    async fn position(&self, channel: &ChannelName) -> Result<StreamPosition> {
        let reply = self.run("streams.position", &POSITION, channel, None, &[]).await?;
        parse_position("streams.position", reply)
    }

    async fn remove(&self, channel: &ChannelName) -> Result<bool> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.keys.stream_meta(channel)).arg(self.keys.stream_entries(channel));
        let deleted: i64 = self.conn.cmd("streams.remove", &cmd).await?;
        Ok(deleted > 0)
    }
}

#[async_trait]
impl CursorStore for RedisStreams {
    async fn ack(&self, user: &UserId, device: &DeviceId, position: &StreamPosition) -> Result<Option<StreamPosition>> {
        let args =
            [device.to_string(), position.epoch.clone(), position.offset.to_string(), millis(CURSOR_TTL).to_string()];
        let channel = ChannelName::user(user);
        let reply: Vec<String> = self.run("streams.ack", &ACK, &channel, Some(self.keys.cursors(user)), &args).await?;
        match reply.as_slice() {
            [status] if status == "none" => Ok(None),
            [status, top] if status == "beyond" => {
                Err(Error::invalid("offset", format!("is beyond the stream's top ({top})")))
            }
            [status, epoch, offset] if status == "ok" => Ok(Some(StreamPosition {
                epoch: epoch.clone(),
                offset: offset.parse().map_err(|_| Error::Internal("redis: streams.ack: bad offset".into()))?,
            })),
            _ => Err(Error::Internal("redis: streams.ack: unexpected reply".into())),
        }
    }

    async fn cursor(&self, user: &UserId, device: &DeviceId) -> Result<Option<StreamPosition>> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.keys.cursors(user)).arg(device.as_str());
        let stored: Option<String> = self.conn.cmd("streams.cursor", &cmd).await?;
        let Some(stored) = stored else { return Ok(None) };
        let parsed = stored
            .split_once(' ')
            .and_then(|(epoch, offset)| Some(StreamPosition { epoch: epoch.to_owned(), offset: offset.parse().ok()? }));
        parsed.map(Some).ok_or_else(|| Error::Internal("redis: streams.cursor: bad stored cursor".into()))
    }
}
