//! `RedisHealth`: PING round-trip time, the circuit's state and a description of the engine
//! (password redacted).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use switchboard_core::{EngineHealth, EngineInfo, Result};

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
