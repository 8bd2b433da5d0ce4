//! `RedisHealth`: PING round-trip time, the circuit's state and a description of the engine
//! (password redacted). `RedisLifecycle`: the broker's loop, and closing the engine.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use switchboard_core::{BackgroundTask, EngineHealth, EngineInfo, EngineLifecycle, Result};
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerTask;

use crate::config::RedisConfig;
use crate::connection::Conn;

/// Liveness of the Redis engine. See [`EngineHealth`].
pub(crate) struct RedisHealth {
    conn: Conn,
    info: EngineInfo,
}

impl RedisHealth {
    pub(crate) fn new(conn: Conn, config: &RedisConfig) -> Self {
        let info = EngineInfo {
            name: "redis".into(),
            location: config.redacted_location(),
            key_prefix: config.key_prefix.clone(),
        };
        RedisHealth { conn, info }
    }
}

#[async_trait]
impl EngineHealth for RedisHealth {
    async fn ping(&self) -> Result<Duration> {
        let started = Instant::now();
        let _pong: String = self.conn.cmd("health.ping", &redis::cmd("PING")).await?;
        Ok(started.elapsed())
    }

    fn connected(&self) -> bool {
        self.conn.connected()
    }

    fn info(&self) -> EngineInfo {
        self.info.clone()
    }
}

pub(crate) struct RedisLifecycle {
    conn: Conn,
    broker: Mutex<Option<BrokerTask>>,
}

impl RedisLifecycle {
    pub(crate) fn new(conn: Conn, broker: BrokerTask) -> Self {
        RedisLifecycle { conn, broker: Mutex::new(Some(broker)) }
    }
}

#[async_trait]
impl EngineLifecycle for RedisLifecycle {
    fn background(&self, stop: CancellationToken) -> Vec<(&'static str, BackgroundTask)> {
        let Some(broker) = self.broker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else {
            return Vec::new();
        };
        let mut tasks = Vec::new();
        if let Some(watch) = self.conn.sentinel_watch() {
            let stop = stop.clone();
            let watch = async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = watch => {}
                }
            };
            tasks.push(("redis.sentinel_watch", Box::pin(watch) as BackgroundTask));
        }
        tasks.push(("redis.broker", Box::pin(broker.run_until(stop)) as BackgroundTask));
        tasks
    }

    /// Every call from now on fails at once; the connections close as the engine is dropped.
    async fn close(&self) {
        self.conn.circuit().shut();
    }
}
