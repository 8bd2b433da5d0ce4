//! Switchboard's Redis engine: every capability on Redis 6.2 or later, standalone, under
//! Sentinel or as a Cluster ([`Topology`]), each multi-step operation one Lua script called by
//! SHA whose keys share one hash slot, all times from the Redis server's clock. One multiplexed
//! connection is shared by everything (on a Cluster, one per node behind redis-rs's cluster
//! connection; under Sentinel, one to the master the Sentinels name, replaced after a
//! failover); it reconnects with backoff, and every call has a timeout. docs/REDIS.md says what
//! is atomic on which topology. The first call that sees the connection lost opens a circuit: from then
//! on calls fail at once with [`switchboard_core::Error::Unavailable`] (no wait for a timeout)
//! until a probe's PING is answered again, and work again once Redis is back.
//!
//! ```no_run
//! # async fn demo() -> switchboard_core::Result<()> {
//! use switchboard_core::{Switchboard, SwitchboardConfig};
//! use switchboard_redis::{RedisConfig, RedisEngineExt};
//! let sb = Switchboard::redis(SwitchboardConfig::default(), RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! # let _ = sb; Ok(()) }
//! ```
//!
//! # Layout
//! - `config`: [`RedisConfig`] and [`Topology`], validated, with passwords redacted in logs.
//! - `connection`: the shared connection on each topology (standalone manager, cluster
//!   connection, Sentinel-found master and how it follows a failover), the timeout and circuit
//!   check around every call, the mapping of Redis errors to core's kinds, and how scripts are
//!   built from `lua/*.lua`; and the connect in the background for a Redis not up yet
//!   ([`connect_in_background`]).
//! - `circuit`: the circuit that refuses calls at once while the connection is lost, and the
//!   probe that closes it when Redis answers again (gauge `switchboard_redis_circuit_open`).
//! - `keys`: the only place key names are built (prefix, hash tags, the key layout table).
//! - `session`: `RedisSessions`, the [`switchboard_core::SessionStore`].
//! - `denylist`: `RedisDenylist`, the [`switchboard_core::TokenDenylist`].
//! - `ratelimit`: `RedisRateLimiter`, the [`switchboard_core::RateLimiter`].
//! - `stream`: `RedisStreams`, the [`switchboard_core::StreamStore`] and
//!   [`switchboard_core::CursorStore`].
//! - `broker`: `RedisBroker`, the [`switchboard_core::Broker`]: one pub/sub connection per node
//!   (on a Cluster to one node, which plain `PUBLISH` reaches from every shard).
//! - `presence`: `RedisPresence`, the [`switchboard_core::PresenceStore`].
//! - `conversation`: `RedisConversations`, the [`switchboard_core::ConversationStore`].
//! - `typing`: `RedisTyping`, the [`switchboard_core::TypingStore`].
//! - `message`: `RedisMessages`, the [`switchboard_core::MessageStore`] (`message_common.lua` is
//!   prepended to its scripts).
//! - `inbox`: `RedisInbox`, the [`switchboard_core::InboxStore`].
//! - `notification`: `RedisNotifications`, the [`switchboard_core::NotificationStore`].
//! - `cache`: `RedisCache`, the [`switchboard_core::CacheStore`] (`cache_common.lua` is
//!   prepended to its scripts).
//! - `jobs`: `RedisJobs`, the [`switchboard_core::JobStore`]: on a Cluster each queue in its own
//!   `{jobs:<queue>}` slot with an id index in `{jobs}`; on one server every job key in `{jobs}`;
//!   the schedules in `{jobs}` (`job_common.lua`, with the shared enqueue, settle and retention
//!   steps, is prepended to its scripts).
//! - `sweep`: claim and reschedule of the due sets behind presence and typing expiry detection.
//! - `health`: `RedisHealth`, PING latency, whether the connection is up, and engine info;
//!   `RedisLifecycle`, the broker's loop for the node to run, and closing.
//! - `doctor`: [`diagnose`], the checks behind `switchboard doctor`.
//! - `lua/`: one script per atomic operation, each opening with its KEYS and ARGV;
//!   `common.lua` (server clock, helpers) is prepended to each, and `stream_common.lua` to the
//!   stream scripts, `presence_common.lua` to the presence scripts, `notification_common.lua` to
//!   the notification scripts, `job_common.lua` to the job scripts.

mod broker;
mod cache;
mod circuit;
mod config;
mod connection;
mod conversation;
mod denylist;
mod doctor;
mod health;
mod inbox;
mod jobs;
mod keys;
mod message;
mod notification;
mod presence;
mod ratelimit;
mod session;
mod stream;
mod sweep;
mod typing;

use std::future::Future;
use std::sync::Arc;

use switchboard_core::{Engine, Result, Switchboard, SwitchboardConfig};

pub use config::{RedisConfig, Topology};
pub use doctor::{Check, CheckLevel, diagnose};

/// Connects to Redis and builds the engine. Fails with
/// [`switchboard_core::Error::InvalidArgument`] if `config` is invalid and with
/// [`switchboard_core::Error::Unavailable`] if Redis cannot be reached within
/// `connect_timeout` (or is older than 6.2).
pub async fn connect(config: RedisConfig) -> Result<Engine> {
    config.validate()?;
    let conn = connection::Conn::connect(&config).await?;
    Ok(engine(conn, &config))
}

/// Builds the engine without waiting for Redis: when Redis answers at once this is
/// [`connect`]; otherwise every call fails at once with
/// [`switchboard_core::Error::Unavailable`] (health: engine and pub/sub unhealthy) while a
/// background task keeps trying (50 ms doubling to 1 s apart), and the engine serves from the
/// moment Redis first answers. For servers that may start before their Redis (containers
/// started together). Fails only if `config` is invalid. Needs a Tokio runtime.
pub async fn connect_in_background(config: RedisConfig) -> Result<Engine> {
    config.validate()?;
    let conn = connection::Conn::connect_in_background(&config).await?;
    Ok(engine(conn, &config))
}

/// The engine over `conn`.
fn engine(conn: connection::Conn, config: &RedisConfig) -> Engine {
    let keys = keys::Keys::new(&config.key_prefix);
    let streams = Arc::new(stream::RedisStreams::new(conn.clone(), keys.clone()));
    let (broker, broker_task) = broker::RedisBroker::new(&conn, keys.clone());
    Engine {
        sessions: Arc::new(session::RedisSessions::new(conn.clone(), keys.clone())),
        denylist: Arc::new(denylist::RedisDenylist::new(conn.clone(), keys.clone())),
        rate_limiter: Arc::new(ratelimit::RedisRateLimiter::new(conn.clone(), keys.clone())),
        presence: Arc::new(presence::RedisPresence::new(conn.clone(), keys.clone())),
        typing: Arc::new(typing::RedisTyping::new(conn.clone(), keys.clone())),
        notifications: Arc::new(notification::RedisNotifications::new(conn.clone(), keys.clone())),
        cache: Arc::new(cache::RedisCache::new(conn.clone(), keys.clone())),
        jobs: Arc::new(jobs::RedisJobs::new(conn.clone(), keys.clone())),
        conversations: Arc::new(conversation::RedisConversations::new(conn.clone(), keys.clone())),
        messages: Arc::new(message::RedisMessages::new(conn.clone(), keys.clone())),
        inbox: Arc::new(inbox::RedisInbox::new(conn.clone(), keys.clone())),
        streams: streams.clone(),
        cursors: streams,
        broker: Arc::new(broker),
        health: Arc::new(health::RedisHealth::new(conn.clone(), config)),
        lifecycle: Arc::new(health::RedisLifecycle::new(conn, broker_task)),
    }
}

/// `Switchboard::redis(config, redis_config).await`: the facade on a Redis engine.
pub trait RedisEngineExt {
    /// Connects to Redis (see [`connect`]) and wires the services with `config`.
    fn redis(config: SwitchboardConfig, redis: RedisConfig) -> impl Future<Output = Result<Switchboard>> + Send;
}

impl RedisEngineExt for Switchboard {
    async fn redis(config: SwitchboardConfig, redis: RedisConfig) -> Result<Switchboard> {
        // Check the service settings before opening a connection.
        config.validate()?;
        Switchboard::new(connect(redis).await?, config)
    }
}
