//! The engine a library workload runs on: the embedded one or Redis, with the defaults a fresh
//! `switchboard serve` has.

use anyhow::Context;
use switchboard_core::{Switchboard, SwitchboardConfig};
use switchboard_memory::MemoryEngineExt;
use switchboard_redis::{RedisConfig, RedisEngineExt};

/// Which engine to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EngineKind {
    /// In-process, single node.
    Memory,
    /// Redis at `--redis-url`, or the Redis Cluster `REDIS_CLUSTER_NODES` names when set.
    Redis,
}

impl EngineKind {
    /// `memory` or `redis`, for the tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            EngineKind::Memory => "memory",
            EngineKind::Redis => "redis",
        }
    }

    /// The services over this engine with the default configuration; Redis keys go under
    /// `key_prefix`, so a run never reads an earlier run's keys.
    pub(crate) async fn build(self, redis_url: Option<&str>, key_prefix: &str) -> anyhow::Result<Switchboard> {
        let config = SwitchboardConfig::default();
        Ok(match self {
            EngineKind::Memory => Switchboard::memory(config)?,
            EngineKind::Redis => {
                let cluster: Vec<String> = std::env::var("REDIS_CLUSTER_NODES")
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(String::from)
                    .collect();
                let redis = match cluster.is_empty() {
                    true => {
                        let url = redis_url.context("--engine redis needs --redis-url (or REDIS_URL)")?;
                        RedisConfig::new(url)
                    }
                    false => RedisConfig::default().with_cluster_nodes(cluster),
                };
                let redis = redis.with_key_prefix(key_prefix);
                redis.validate()?;
                Switchboard::redis(config, redis).await?
            }
        })
    }
}
